//! The plan of a run, read from the base dir through the checked opener: which
//! phase dirs and scripts exist, which entries are skipped and why, which must
//! not run as root, in which order everything runs, and where the built-in
//! steps sit. Nothing is executed; the checked directories stay open so that
//! each script is opened again, and checked, when it runs.

use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::dir::Type;
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{FileStat, fstatat};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::phases::{NameRule, Phase, PhaseOrder, Slot, classify, compare_names, env_name_ok};
use crate::root::{Dir, kind};
use crate::trust::{Opener, unsafe_reason};

pub const STATE_STEP: &str = "01-orc-state";
pub const CONTAINERS_STEP: &str = "orc-containers";

/// What kind of work a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    Script,
    State,
    Containers,
    ErrorHandler,
}

/// Where a script is: an entry of one of the plan's open, checked directories. It is
/// opened, checked again, and run as that open file when its turn comes (holding every
/// script open would make each exec close them all).
#[derive(Debug, Clone)]
pub struct At {
    pub dir: usize,
    pub name: OsString,
}

/// One unit of work, in run order.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// A phase name, `containers` or `error`.
    pub phase: &'static str,
    pub name: String,
    pub kind: StepKind,
    /// The script's path as shown (under the root).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::json::lossy::opt"
    )]
    pub path: Option<PathBuf>,
    #[serde(skip)]
    pub at: Option<At>,
}

/// An entry that will not run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    #[serde(serialize_with = "crate::json::lossy::path")]
    pub path: PathBuf,
    pub reason: String,
}

/// An open, checked directory of the plan.
#[derive(Debug)]
pub struct PlanDir {
    pub dir: Dir,
    /// Its resolved system path (under the root).
    pub resolved: PathBuf,
}

/// Everything a run will do, computed before anything is done.
#[derive(Debug, Default, Serialize)]
pub struct Plan {
    #[serde(serialize_with = "crate::json::lossy::path")]
    pub base_dir: PathBuf,
    pub phase_order: Vec<&'static str>,
    /// Phase dirs that exist (upstream logs "Starting phase" only for these).
    pub present_phases: Vec<&'static str>,
    #[serde(serialize_with = "crate::json::lossy::vec")]
    pub env_files: Vec<PathBuf>,
    pub steps: Vec<Step>,
    pub error_handlers: Vec<Step>,
    pub skipped: Vec<Skipped>,
    /// Entries that must not run as root: the run is refused while any is here.
    pub unsafe_entries: Vec<Skipped>,
    #[serde(skip)]
    pub dirs: Vec<PlanDir>,
    /// The environment.d files, as entries of `dirs`.
    #[serde(skip)]
    pub env: Vec<At>,
}

/// What to put in the plan besides scripts.
#[derive(Debug, Clone, Copy)]
pub struct Selection<'a> {
    pub order: PhaseOrder,
    /// Empty = every phase.
    pub only: &'a [Phase],
    pub state: bool,
    pub containers: bool,
}

/// A runnable entry: its name's bytes (the sort key) and where it is.
type Entry = (Vec<u8>, At);

struct Scanner<'a> {
    opener: Opener<'a>,
    rule: &'a NameRule,
    plan: Plan,
}

fn builtin(phase: &'static str, name: &str, kind: StepKind) -> Step {
    Step {
        phase,
        name: name.into(),
        kind,
        path: None,
        at: None,
    }
}

/// Scripts run in name order; a name in two dirs of one phase runs in dir order.
fn run_order(a: &Entry, b: &Entry) -> std::cmp::Ordering {
    compare_names(&a.0, &b.0).then_with(|| a.1.dir.cmp(&b.1.dir))
}

impl Scanner<'_> {
    /// Opens a checked directory; a refusal is recorded, not returned.
    fn open_dir(&mut self, sys: &Path) -> Result<Option<usize>> {
        match self.opener.open_dir(sys) {
            Ok(Some((dir, resolved))) => {
                self.plan.dirs.push(PlanDir { dir, resolved });
                Ok(Some(self.plan.dirs.len() - 1))
            }
            Ok(None) => Ok(None),
            Err(Error::Refused { path, reason }) => {
                self.plan.unsafe_entries.push(Skipped { path, reason });
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn shown(&self, d: usize, name: &OsStr) -> PathBuf {
        self.plan.dirs[d].dir.child_shown(name)
    }

    /// Follows a symlinked entry inside the root, checking the whole way.
    fn follow(&mut self, d: usize, name: &OsStr) -> Option<FileStat> {
        let target = self.plan.dirs[d].resolved.join(name);
        match self.opener.open_file(&target) {
            Ok(o) => Some(o.st),
            Err(Error::Refused { path, reason }) => {
                self.plan.unsafe_entries.push(Skipped { path, reason });
                None
            }
            Err(_) => self.opener.root.stat(&target).ok().flatten(),
        }
    }

    /// The node an entry names: one `statx`; a symlink is followed inside the root, checked.
    fn stat_entry(&mut self, d: usize, name: &OsStr, t: Option<Type>) -> Result<Option<FileStat>> {
        if t == Some(Type::Symlink) {
            return Ok(self.follow(d, name));
        }
        match fstatat(
            self.plan.dirs[d].dir.as_fd(),
            name,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) if kind(&st) == libc::S_IFLNK => Ok(self.follow(d, name)),
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(e).ctx(|| format!("reading {}", self.shown(d, name).display())),
        }
    }

    /// Why an entry does not run, by its name alone (no syscall for those), if it does not.
    fn name_reason(&self, name: &OsStr, env: bool) -> Option<String> {
        if env {
            (!env_name_ok(name))
                .then(|| "name does not match ^[0-9A-Za-z_.-]+$ (or ends with ~)".into())
        } else {
            classify(name, None, self.rule).filter(|r| r.starts_with("name"))
        }
    }

    /// The scripts of one directory in run order; the rest go to `skipped`.
    fn scan(&mut self, d: usize, env: bool) -> Result<Vec<Entry>> {
        let mut run = Vec::new();
        for (name, t) in self.plan.dirs[d].dir.entries()? {
            if let Some(reason) = self.name_reason(&name, env) {
                let path = self.shown(d, &name);
                self.plan.skipped.push(Skipped { path, reason });
                continue;
            }
            let unsafe_before = self.plan.unsafe_entries.len();
            let st = self.stat_entry(d, &name, t)?;
            if self.plan.unsafe_entries.len() > unsafe_before {
                continue;
            }
            let reason = if env {
                match st {
                    Some(s) if kind(&s) == libc::S_IFREG => None,
                    _ => Some("not a regular file".into()),
                }
            } else {
                classify(&name, st.as_ref(), self.rule)
            };
            let path = self.shown(d, &name);
            match reason {
                Some(reason) => self.plan.skipped.push(Skipped { path, reason }),
                None => {
                    if self.opener.strict
                        && let Some(reason) = st.as_ref().and_then(unsafe_reason)
                    {
                        self.plan.unsafe_entries.push(Skipped { path, reason });
                        continue;
                    }
                    run.push((name.as_bytes().to_vec(), At { dir: d, name }));
                }
            }
        }
        run.sort_by(run_order);
        Ok(run)
    }

    fn script(&self, phase: &'static str, kind: StepKind, (name, at): Entry) -> Step {
        Step {
            phase,
            name: String::from_utf8_lossy(&name).into_owned(),
            kind,
            path: Some(self.shown(at.dir, &at.name)),
            at: Some(at),
        }
    }

    /// The environment.d files of `dir`, in byte order.
    fn environment(&mut self, dir: &Path) -> Result<()> {
        let Some(d) = self.open_dir(dir)? else {
            return Ok(());
        };
        let mut files = self.scan(d, true)?;
        files.sort_by(|a, b| a.0.cmp(&b.0));
        self.plan.env_files = files
            .iter()
            .map(|(_, at)| self.shown(at.dir, &at.name))
            .collect();
        self.plan.env = files.into_iter().map(|(_, at)| at).collect();
        Ok(())
    }

    fn phase(&mut self, base: &Path, phase: Phase, state: bool) -> Result<()> {
        let mut scripts = Vec::new();
        for dir in phase.dirs() {
            let Some(d) = self.open_dir(&base.join(dir))? else {
                continue;
            };
            if !self.plan.present_phases.contains(&phase.name()) {
                self.plan.present_phases.push(phase.name());
            }
            scripts.extend(self.scan(d, false)?);
        }
        if phase == Phase::PreConfigure && state {
            let at = At {
                dir: usize::MAX,
                name: STATE_STEP.into(),
            };
            scripts.push((STATE_STEP.as_bytes().to_vec(), at));
        }
        scripts.sort_by(run_order);
        for e in scripts {
            let step = if e.1.dir == usize::MAX {
                builtin(phase.name(), STATE_STEP, StepKind::State)
            } else {
                self.script(phase.name(), StepKind::Script, e)
            };
            self.plan.steps.push(step);
        }
        Ok(())
    }
}

/// Reads the base dir `base` (a system path under the opener's root) and builds the plan.
pub fn plan(opener: Opener, base: &Path, sel: Selection, rule: &NameRule) -> Result<Plan> {
    let mut s = Scanner {
        opener,
        rule,
        plan: Plan {
            base_dir: opener.root.shown(base),
            phase_order: sel.order.phases().iter().map(|p| p.name()).collect(),
            ..Plan::default()
        },
    };
    if s.open_dir(base)?.is_none() {
        if sel.state && sel.only.is_empty_or_has(Phase::PreConfigure) {
            s.plan
                .steps
                .push(builtin("pre-configure", STATE_STEP, StepKind::State));
        }
        if sel.containers && sel.only.is_empty() {
            s.plan
                .steps
                .push(builtin("containers", CONTAINERS_STEP, StepKind::Containers));
        }
        return Ok(s.plan);
    }
    s.environment(&base.join("environment.d"))?;
    for slot in sel.order.slots() {
        match slot {
            Slot::Containers if sel.containers && sel.only.is_empty() => {
                s.plan
                    .steps
                    .push(builtin("containers", CONTAINERS_STEP, StepKind::Containers));
            }
            Slot::Containers => {}
            Slot::Phase(p) if sel.only.is_empty_or_has(p) => s.phase(base, p, sel.state)?,
            Slot::Phase(_) => {}
        }
    }
    if let Some(d) = s.open_dir(&base.join("error.d"))? {
        let handlers = s.scan(d, false)?;
        for e in handlers {
            let step = s.script("error", StepKind::ErrorHandler, e);
            s.plan.error_handlers.push(step);
        }
    }
    s.plan.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(s.plan)
}

trait Only {
    fn is_empty_or_has(&self, p: Phase) -> bool;
}

impl Only for &[Phase] {
    fn is_empty_or_has(&self, p: Phase) -> bool {
        self.is_empty() || self.contains(&p)
    }
}

/// The plan of one directory for `dib-run-parts`: its scripts as steps of a phase named
/// after it, and the files of `DIR/../environment.d`.
pub fn plan_dir(opener: Opener, dir: &Path, rule: &NameRule) -> Result<Plan> {
    let mut s = Scanner {
        opener,
        rule,
        plan: Plan {
            base_dir: opener.root.shown(dir),
            ..Plan::default()
        },
    };
    let Some(d) = s.open_dir(dir)? else {
        if s.plan.unsafe_entries.is_empty() {
            return Err(crate::error::invalid(format!(
                "Scripts directory [{}] must exist and be a directory",
                opener.root.shown(dir).display()
            )));
        }
        return Ok(s.plan);
    };
    for e in s.scan(d, false)? {
        let step = s.script("run-parts", StepKind::Script, e);
        s.plan.steps.push(step);
    }
    s.environment(&dir.join("../environment.d"))?;
    Ok(s.plan)
}
