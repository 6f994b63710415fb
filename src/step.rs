//! The contract between the runner and a built-in step (state seeding,
//! containers): what a step is given and what it hands back. It imports
//! nothing else of orc, so the steps never depend on the runner.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepResult {
    Ok,
    Failed,
    Timeout,
    Interrupted,
    Skipped,
}

impl StepResult {
    pub fn is_success(self) -> bool {
        matches!(self, StepResult::Ok | StepResult::Skipped)
    }
}

/// Where a long step reports progress (systemd's `STATUS=` and start timeout).
pub trait Progress: Sync {
    fn status(&self, text: &str);
    /// Asks for at least `d` more before the unit's start timeout fires.
    fn extend(&self, d: Duration);
}

/// What a built-in step is given besides its own inputs.
pub struct StepCtx<'a> {
    /// When the run's time is up.
    pub deadline: Option<Instant>,
    pub progress: &'a dyn Progress,
    /// The signal orc received, if any: the step stops at the next safe point.
    pub interrupted: &'a (dyn Fn() -> Option<i32> + Sync),
    /// Where the processes the step starts are recorded (the lock's holder line).
    pub live: &'a crate::procs::Live,
}

impl StepCtx<'_> {
    pub fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// True when the step must stop: a signal arrived or the run's time is up.
    pub fn should_stop(&self) -> bool {
        (self.interrupted)().is_some() || self.expired()
    }

    /// The result for a step that stopped early: interrupted, timed out, or failed.
    pub fn stopped_result(&self) -> StepResult {
        if (self.interrupted)().is_some() {
            StepResult::Interrupted
        } else if self.expired() {
            StepResult::Timeout
        } else {
            StepResult::Failed
        }
    }
}

/// What a built-in step hands back: its result, a one-line note and its records.
#[derive(Debug)]
pub struct Outcome<D> {
    pub result: StepResult,
    pub note: Option<String>,
    /// Time spent waiting on something else (the container engine), not orc's own.
    pub external: Duration,
    pub detail: D,
}
