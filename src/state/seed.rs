//! Seeding, at every boot: each registered path whose state copy is absent is
//! copied from its pristine copy with full fidelity, built under a unique
//! temporary name (leftovers of an interrupted copy are swept first, under
//! the lock), synced and renamed into place. Each path is handled on its own.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{OFlag, RenameFlags, renameat2};
use nix::sys::stat::fstat;

use super::copy;
use super::dirs::{DirAttrs, ensure_dirs, lstat_at, open_beneath, split};
use super::registry::Entry;
use crate::error::{Context, Result};
use crate::report::{StateOutcome, StatePathReport};
use crate::root::{DIR_FLAGS, Dir, remove_tree, tmp_name};
use crate::setup::Setup;
use crate::step::{Outcome, StepCtx, StepResult};

struct Seeder<'a> {
    setup: &'a Setup,
    state: OwnedFd,
    pristine: Option<OwnedFd>,
    ctx: &'a StepCtx<'a>,
}

impl Seeder<'_> {
    /// Owner and mode for a state parent: the pristine parent's, else the image's.
    fn mirror(&self, prefix: &Path) -> DirAttrs {
        let from_pristine = self
            .pristine
            .as_ref()
            .and_then(|p| open_beneath(p.as_fd(), prefix).and_then(|d| fstat(&d)).ok());
        let from_image = || {
            self.setup
                .root
                .open_raw(&Path::new("/").join(prefix), OFlag::O_PATH)
                .and_then(|d| fstat(&d))
                .ok()
        };
        from_pristine
            .or_else(from_image)
            .map_or(DirAttrs::DEFAULT, |st| DirAttrs::of(&st))
    }

    fn seed_one(&self, path: &Path, counters: &copy::Counters) -> Result<StateOutcome> {
        let (parent_rel, name) = split(path);
        let pristine_parent = match &self.pristine {
            None => None,
            Some(p) => match open_beneath(p.as_fd(), &parent_rel) {
                Ok(fd) => Some(fd),
                Err(Errno::ENOENT) => None,
                Err(e) => {
                    return Err(e)
                        .ctx(|| format!("opening the pristine parent {}", parent_rel.display()));
                }
            },
        };
        let (state_parent, _) = ensure_dirs(&self.state, &parent_rel, &|p| self.mirror(p))?;
        let state_dir = Dir::from_fd(state_parent, parent_rel.clone());
        state_dir.sweep_tmp()?;
        if lstat_at(state_dir.as_fd(), &name)
            .ctx(|| "reading the state path")?
            .is_some()
        {
            return Ok(StateOutcome::Present);
        }
        let Some(src_parent) =
            pristine_parent.filter(|d| lstat_at(d.as_fd(), &name).is_ok_and(|s| s.is_some()))
        else {
            return Ok(StateOutcome::NoPristine);
        };
        self.copy_into_place(&src_parent, &state_dir, &name, path, counters)?;
        Ok(StateOutcome::Seeded)
    }

    fn copy_into_place(
        &self,
        src_parent: &OwnedFd,
        state_dir: &Dir,
        name: &OsStr,
        path: &Path,
        counters: &copy::Counters,
    ) -> Result<()> {
        let shown = path.display().to_string();
        let mut progress = || {
            let (b, f) = (
                counters.bytes.load(Ordering::Relaxed),
                counters.files.load(Ordering::Relaxed),
            );
            let msg = format!(
                "seeding {shown}: {f} files, {:.1} MiB so far",
                b as f64 / 1_048_576.0
            );
            log::info!("{msg}");
            self.ctx.progress.status(&msg);
            self.ctx.progress.extend(Duration::from_secs(30));
        };
        let tmp = tmp_name();
        let abort = || self.ctx.should_stop();
        let t = Instant::now();
        let copied = copy::copy_tree(
            src_parent.as_fd(),
            name,
            state_dir.as_fd(),
            &tmp,
            counters,
            &abort,
            &mut progress,
        );
        if let Err(e) = copied {
            let _ = remove_tree(state_dir.as_fd(), &tmp);
            return Err(e);
        }
        let copied_at = t.elapsed();
        nix::unistd::syncfs(state_dir).ctx(|| format!("syncing the copy of {shown}"))?;
        log::debug!(
            "{shown}: copied in {:.0} ms, synced in {:.0} ms",
            crate::time::ms(copied_at),
            crate::time::ms(t.elapsed().saturating_sub(copied_at))
        );
        renameat2(
            state_dir,
            tmp.as_os_str(),
            state_dir,
            name,
            RenameFlags::RENAME_NOREPLACE,
        )
        .and_then(|()| nix::unistd::fsync(state_dir))
        .ctx(|| format!("putting {shown} in place"))
    }
}

fn all_failed(entries: &[Entry], msg: &str) -> Vec<StatePathReport> {
    entries
        .iter()
        .map(|e| StatePathReport {
            path: e.path.display().to_string(),
            outcome: StateOutcome::Error,
            bytes: 0,
            files: 0,
            duration_ms: 0.0,
            error: Some(msg.to_string()),
        })
        .collect()
}

/// Opens the state and pristine roots; an error is the message for every path.
fn open_roots(setup: &Setup) -> std::result::Result<(OwnedFd, Option<OwnedFd>), String> {
    let root = &setup.root;
    let state_sys = &setup.paths.state_root;
    let state = root
        .create_dir_all(state_sys, 0o755)
        .map_err(|e| e.to_string())?
        .into_fd();
    if setup.config.state.require_mount {
        let same = fstat(&state)
            .ok()
            .zip(fstat(root.fd()).ok())
            .map(|(a, b)| a.st_dev == b.st_dev);
        if same != Some(false) {
            return Err(format!(
                "refusing to seed: {} is not a mounted filesystem of its own (state.require_mount)",
                state_sys.display()
            ));
        }
    }
    let pristine_sys = &setup.paths.pristine_root;
    let pristine = match root.open_raw(pristine_sys, DIR_FLAGS) {
        Ok(fd) => Some(fd),
        Err(Errno::ENOENT) => None,
        Err(e) => {
            return Err(format!(
                "opening {}: {}",
                pristine_sys.display(),
                std::io::Error::from(e)
            ));
        }
    };
    Ok((state, pristine))
}

/// Seeds every registered path; each is handled on its own. Returns a report for every
/// path handled (also when stopped early) and whether all succeeded.
pub fn seed(setup: &Setup, entries: &[Entry], ctx: &StepCtx) -> (Vec<StatePathReport>, bool) {
    if entries.is_empty() {
        return (Vec::new(), true);
    }
    let (state, pristine) = match open_roots(setup) {
        Ok(r) => r,
        Err(msg) => {
            log::error!("{msg}");
            return (all_failed(entries, &msg), false);
        }
    };
    let seeder = Seeder {
        setup,
        state,
        pristine,
        ctx,
    };
    let mut reports = Vec::new();
    let mut ok = true;
    for e in entries {
        if ctx.should_stop() {
            return (reports, false);
        }
        let t = Instant::now();
        let counters = copy::Counters::default();
        let (outcome, error) = match seeder.seed_one(&e.path, &counters) {
            Ok(o) => (o, None),
            Err(_) if ctx.should_stop() => return (reports, false),
            Err(err) => {
                ok = false;
                log::error!("seeding {}: {err}", e.path.display());
                (StateOutcome::Error, Some(err.to_string()))
            }
        };
        let r = StatePathReport {
            path: e.path.display().to_string(),
            outcome,
            bytes: counters.bytes.load(Ordering::Relaxed),
            files: counters.files.load(Ordering::Relaxed),
            duration_ms: crate::time::ms(t.elapsed()),
            error,
        };
        match outcome {
            StateOutcome::Seeded => log::info!(
                "seeded {} into {} ({} files, {} bytes, {:.0} ms)",
                r.path,
                setup.paths.state_root.display(),
                r.files,
                r.bytes,
                r.duration_ms
            ),
            o => log::debug!("{}: {}", r.path, o.name()),
        }
        reports.push(r);
    }
    (reports, ok)
}

/// The built-in `pre-configure/01-orc-state` step.
pub fn seed_step(setup: &Setup, entries: &[Entry], ctx: &StepCtx) -> Outcome<Vec<StatePathReport>> {
    let (reports, ok) = seed(setup, entries, ctx);
    let count = |o: StateOutcome| reports.iter().filter(|r| r.outcome == o).count();
    let mut note = if entries.is_empty() {
        "nothing registered".to_string()
    } else {
        format!(
            "{} seeded, {} present, {} without pristine copy, {} failed",
            count(StateOutcome::Seeded),
            count(StateOutcome::Present),
            count(StateOutcome::NoPristine),
            count(StateOutcome::Error)
        )
    };
    let result = if ok {
        StepResult::Ok
    } else if ctx.should_stop() {
        let left = entries.len() - reports.len();
        note.push_str(&format!(", {left} not reached"));
        ctx.stopped_result()
    } else {
        StepResult::Failed
    };
    Outcome {
        result,
        note: Some(note),
        external: Duration::ZERO,
        detail: reports,
    }
}
