//! Box containers: not implemented yet.

use crate::report::StepResult;
use crate::runner::{BuiltinOutcome, StepCtx};

/// The built-in containers step between configure and migration.
pub fn converge_step(_ctx: &StepCtx) -> BuiltinOutcome {
    BuiltinOutcome {
        result: Some(StepResult::Skipped),
        note: Some("container convergence is not implemented yet".into()),
        ..BuiltinOutcome::default()
    }
}
