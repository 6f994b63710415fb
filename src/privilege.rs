//! Which commands need root, decided before anything else runs: a writing
//! command run by another user is refused with one line and its own exit code
//! ([`crate::error::EXIT_NEEDS_ROOT`]) rather than failing later on a
//! permission error. Reading commands (`list`, `status`, the `list` forms,
//! `--print-base`/`--print-phases`, `dib-run-parts`) stay open to everyone.

use crate::cli::{Cmd, ContainersCmd, StateCmd};
use crate::error::{Error, Result};

/// What a command writes that only root may write, or `None` for a reading command.
pub fn needs_root(cmd: &Cmd) -> Option<&'static str> {
    const RUN: &str = "it takes the lock and writes run reports under /var/lib/orc";
    const STATE: &str = "it takes the lock and writes the state registry and roots";
    match cmd {
        Cmd::Run(_) => Some(RUN),
        Cmd::OsRefreshConfig(a) if !a.print_base && !a.print_phases => Some(RUN),
        Cmd::State(
            StateCmd::Register { .. } | StateCmd::Finalise { .. } | StateCmd::Seed { .. },
        )
        | Cmd::RegisterStatePath { .. } => Some(STATE),
        Cmd::Containers(ContainersCmd::Reconcile { .. }) => {
            Some("it takes the lock and creates, starts and removes containers")
        }
        _ => None,
    }
}

/// The command's name as typed, for the refusal line.
fn shown(cmd: &Cmd) -> &'static str {
    match cmd {
        Cmd::Run(_) => "orc run",
        Cmd::OsRefreshConfig(_) => "os-refresh-config",
        Cmd::State(StateCmd::Register { .. }) => "orc state register",
        Cmd::State(StateCmd::Finalise { .. }) => "orc state finalise",
        Cmd::State(StateCmd::Seed { .. }) => "orc state seed",
        Cmd::RegisterStatePath { .. } => "register-state-path",
        Cmd::Containers(_) => "orc containers reconcile",
        _ => "orc",
    }
}

/// Refuses a writing command when the effective user is not root.
pub fn check(cmd: &Cmd, euid_is_root: bool) -> Result<()> {
    match needs_root(cmd) {
        Some(why) if !euid_is_root => Err(Error::NeedsRoot(format!(
            "{} needs root: {why} (run it as root; `orc list` and `orc status` work as any user)",
            shown(cmd)
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn cmd(args: &[&str]) -> Cmd {
        Cli::try_parse_from(args).unwrap().command
    }

    #[test]
    fn writers_need_root_readers_do_not() {
        for w in [
            &["orc", "run"][..],
            &["orc", "os-refresh-config"],
            &["orc", "state", "register", "/x"],
            &["orc", "state", "finalise"],
            &["orc", "state", "seed"],
            &["orc", "register-state-path", "/x"],
            &["orc", "containers", "reconcile"],
        ] {
            let e = check(&cmd(w), false).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::EXIT_NEEDS_ROOT, "{w:?}");
            assert!(e.to_string().contains("needs root"), "{w:?}");
            assert!(check(&cmd(w), true).is_ok());
        }
        for r in [
            &["orc", "list"][..],
            &["orc", "status", "--json"],
            &["orc", "state", "list"],
            &["orc", "containers", "list"],
            &["orc", "os-refresh-config", "--print-base"],
            &["orc", "dib-run-parts", "--list", "/d"],
        ] {
            assert!(check(&cmd(r), false).is_ok(), "{r:?}");
        }
    }
}
