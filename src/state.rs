//! State relocation onto the state root (use-ephemeral): not implemented yet.

use crate::report::StepResult;
use crate::runner::{BuiltinOutcome, StepCtx};

/// The built-in `pre-configure/01-orc-state` step.
pub fn seed_step(_ctx: &StepCtx) -> BuiltinOutcome {
    BuiltinOutcome {
        result: Some(StepResult::Skipped),
        note: Some("state seeding is not implemented yet".into()),
        ..BuiltinOutcome::default()
    }
}
