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

#[cfg(test)]
mod tests {
    //! The plan read from a real temp dir (no engine, nothing run): which entries
    //! become steps, in which order and with which paths, and why the rest do not.
    use std::fs;
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;
    use crate::root::Root;

    struct Tree {
        tmp: tempfile::TempDir,
        root: Root,
    }

    impl Tree {
        fn new() -> Tree {
            let tmp = tempfile::tempdir().unwrap();
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
            let root = Root::open(tmp.path()).unwrap();
            Tree { tmp, root }
        }

        /// A file at `rel` (under the root) with `mode`, its parents made 0755.
        fn file(&self, rel: &str, mode: u32) {
            let p = self.tmp.path().join(rel);
            let mut dir = p.parent().unwrap().to_path_buf();
            fs::create_dir_all(&dir).unwrap();
            while dir != self.tmp.path() {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
                dir.pop();
            }
            fs::write(&p, "#!/bin/sh\ntrue\n").unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        }

        fn script(&self, rel: &str) {
            self.file(&format!("base/{rel}"), 0o755);
        }

        fn shown(&self, rel: &str) -> PathBuf {
            self.tmp.path().join(rel)
        }

        fn plan_with(&self, strict: bool, sel: Selection) -> Plan {
            let opener = Opener {
                root: &self.root,
                strict,
            };
            plan(opener, Path::new("/base"), sel, &NameRule::Default).unwrap()
        }

        fn plan(&self) -> Plan {
            self.plan_with(false, all())
        }
    }

    fn all() -> Selection<'static> {
        Selection {
            order: PhaseOrder::Design,
            only: &[],
            state: true,
            containers: true,
        }
    }

    /// Each step as `phase/name`.
    fn names(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| format!("{}/{}", s.phase, s.name))
            .collect()
    }

    fn skipped(p: &Plan) -> Vec<(PathBuf, String)> {
        p.skipped
            .iter()
            .map(|s| (s.path.clone(), s.reason.clone()))
            .collect()
    }

    #[test]
    fn steps_in_run_order_with_the_builtins_in_their_slots() {
        let t = Tree::new();
        for s in ["pre-configure.d/00-early", "pre-configure.d/5-late"] {
            t.script(s);
        }
        for s in [
            "configure.d/10-b",
            "configure.d/2-a",
            "configure.d/1-c",
            "configure.d/10-a",
        ] {
            t.script(s);
        }
        // The two migration dirs merge by name; a tie runs in dir order (migration.d first).
        for s in [
            "migration.d/20-a",
            "migrations.d/10-b",
            "migration.d/30-x",
            "migrations.d/30-x",
        ] {
            t.script(s);
        }
        t.script("post-configure.d/90-done");
        let p = t.plan();
        assert_eq!(
            names(&p.steps),
            [
                "pre-configure/00-early",
                "pre-configure/01-orc-state",
                "pre-configure/5-late",
                "configure/1-c",
                "configure/2-a",
                "configure/10-a",
                "configure/10-b",
                "containers/orc-containers",
                "migration/10-b",
                "migration/20-a",
                "migration/30-x",
                "migration/30-x",
                "post-configure/90-done",
            ]
        );
        let paths: Vec<Option<PathBuf>> = p.steps.iter().map(|s| s.path.clone()).collect();
        assert_eq!(paths[0], Some(t.shown("base/pre-configure.d/00-early")));
        assert_eq!(paths[1], None);
        assert_eq!(paths[3], Some(t.shown("base/configure.d/1-c")));
        assert_eq!(paths[8], Some(t.shown("base/migrations.d/10-b")));
        assert_eq!(paths[10], Some(t.shown("base/migration.d/30-x")));
        assert_eq!(paths[11], Some(t.shown("base/migrations.d/30-x")));
        let kinds: Vec<StepKind> = p.steps.iter().map(|s| s.kind).collect();
        assert_eq!(kinds[1], StepKind::State);
        assert_eq!(kinds[7], StepKind::Containers);
        assert!(kinds.iter().filter(|k| **k == StepKind::Script).count() == 11);
        // Each script's `at` names its own open dir and entry.
        for s in p.steps.iter().filter(|s| s.kind == StepKind::Script) {
            let at = s.at.as_ref().unwrap();
            let dir = &p.dirs[at.dir];
            assert_eq!(Some(dir.dir.child_shown(&at.name)), s.path, "{}", s.name);
        }
        assert_eq!(p.base_dir, t.shown("base"));
        assert_eq!(
            p.phase_order,
            ["pre-configure", "configure", "migration", "post-configure"]
        );
        assert_eq!(
            p.present_phases,
            ["pre-configure", "configure", "migration", "post-configure"]
        );
        assert!(p.skipped.is_empty() && p.unsafe_entries.is_empty());
    }

    #[test]
    fn upstream_order_puts_migration_last_and_absent_phases_are_not_present() {
        let t = Tree::new();
        t.script("migration.d/10-m");
        t.script("post-configure.d/10-p");
        let sel = Selection {
            order: PhaseOrder::Upstream,
            ..all()
        };
        let p = t.plan_with(false, sel);
        assert_eq!(
            names(&p.steps),
            [
                "pre-configure/01-orc-state",
                "containers/orc-containers",
                "post-configure/10-p",
                "migration/10-m"
            ]
        );
        assert_eq!(p.present_phases, ["post-configure", "migration"]);
        assert_eq!(
            p.phase_order,
            ["pre-configure", "configure", "post-configure", "migration"]
        );
    }

    #[test]
    fn only_state_and_containers_select_steps() {
        let t = Tree::new();
        t.script("pre-configure.d/10-pre");
        t.script("configure.d/10-c");
        let only = [Phase::Configure];
        let p = t.plan_with(
            false,
            Selection {
                only: &only,
                ..all()
            },
        );
        assert_eq!(names(&p.steps), ["configure/10-c"]);
        let p = t.plan_with(
            false,
            Selection {
                state: false,
                containers: false,
                ..all()
            },
        );
        assert_eq!(names(&p.steps), ["pre-configure/10-pre", "configure/10-c"]);
        let only = [Phase::PreConfigure];
        let p = t.plan_with(
            false,
            Selection {
                only: &only,
                ..all()
            },
        );
        assert_eq!(
            names(&p.steps),
            ["pre-configure/01-orc-state", "pre-configure/10-pre"]
        );
    }

    #[test]
    fn no_base_dir_leaves_the_selected_builtins() {
        let t = Tree::new();
        let p = t.plan();
        assert_eq!(
            names(&p.steps),
            ["pre-configure/01-orc-state", "containers/orc-containers"]
        );
        assert_eq!(p.base_dir, t.shown("base"));
        let p = t.plan_with(
            false,
            Selection {
                state: false,
                ..all()
            },
        );
        assert_eq!(names(&p.steps), ["containers/orc-containers"]);
        let p = t.plan_with(
            false,
            Selection {
                containers: false,
                ..all()
            },
        );
        assert_eq!(names(&p.steps), ["pre-configure/01-orc-state"]);
        let only = [Phase::Configure];
        let p = t.plan_with(
            false,
            Selection {
                only: &only,
                ..all()
            },
        );
        assert!(p.steps.is_empty());
    }

    #[test]
    fn entries_that_do_not_run_are_skipped_with_the_reason() {
        let t = Tree::new();
        t.script("configure.d/10-run");
        t.script("configure.d/foo.sh");
        t.file("base/configure.d/20-not-exec", 0o644);
        fs::create_dir(t.shown("base/configure.d/30-dir")).unwrap();
        symlink("nowhere", t.shown("base/configure.d/40-dangling")).unwrap();
        symlink("10-run", t.shown("base/configure.d/50-link")).unwrap();
        let fifo = t.shown("base/configure.d/60-fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::empty()).unwrap();
        fs::set_permissions(&fifo, fs::Permissions::from_mode(0o755)).unwrap();
        let p = t.plan();
        assert_eq!(
            names(&p.steps),
            [
                "pre-configure/01-orc-state",
                "configure/10-run",
                "configure/50-link",
                "containers/orc-containers"
            ]
        );
        let d = |n: &str| t.shown(&format!("base/configure.d/{n}"));
        assert_eq!(
            skipped(&p),
            [
                (d("20-not-exec"), "not executable".to_string()),
                (d("30-dir"), "is a directory".into()),
                (d("40-dangling"), "dangling symlink".into()),
                (d("60-fifo"), "not a regular file".into()),
                (d("foo.sh"), "name does not match ^[0-9A-Za-z_-]+$".into()),
            ]
        );
    }

    #[test]
    fn environment_files_in_byte_order_and_the_rest_skipped() {
        let t = Tree::new();
        for f in ["20-b", "10-a.sh", "Z-up", "backup~", "a b"] {
            t.file(&format!("base/environment.d/{f}"), 0o644);
        }
        fs::create_dir(t.shown("base/environment.d/30-dir")).unwrap();
        let p = t.plan();
        let e = |n: &str| t.shown(&format!("base/environment.d/{n}"));
        assert_eq!(p.env_files, [e("10-a.sh"), e("20-b"), e("Z-up")]);
        assert_eq!(p.env.len(), 3);
        assert_eq!(
            p.dirs[p.env[2].dir].dir.child_shown(&p.env[2].name),
            e("Z-up")
        );
        let bad_name = "name does not match ^[0-9A-Za-z_.-]+$ (or ends with ~)";
        assert_eq!(
            skipped(&p),
            [
                (e("30-dir"), "not a regular file".to_string()),
                (e("a b"), bad_name.into()),
                (e("backup~"), bad_name.into()),
            ]
        );
    }

    #[test]
    fn error_handlers_are_planned_apart() {
        let t = Tree::new();
        t.script("error.d/20-b");
        t.script("error.d/10-a");
        let p = t.plan();
        assert_eq!(names(&p.error_handlers), ["error/10-a", "error/20-b"]);
        assert!(
            p.error_handlers
                .iter()
                .all(|s| s.kind == StepKind::ErrorHandler)
        );
        assert_eq!(p.error_handlers[0].path, Some(t.shown("base/error.d/10-a")));
    }

    #[test]
    fn strict_refuses_what_others_could_change_and_lax_runs_it() {
        assert!(
            crate::trust::running_as_root(),
            "the plan tests run as root"
        );
        let t = Tree::new();
        t.script("configure.d/10-ok");
        t.file("base/configure.d/20-group-writable", 0o775);
        t.file("elsewhere/30-target", 0o777);
        symlink(
            "../../elsewhere/30-target",
            t.shown("base/configure.d/30-link"),
        )
        .unwrap();
        let p = t.plan_with(true, all());
        let d = |n: &str| t.shown(&format!("base/configure.d/{n}"));
        let refused: Vec<&Path> = p.unsafe_entries.iter().map(|s| s.path.as_path()).collect();
        assert_eq!(refused.len(), 2, "{:?}", p.unsafe_entries);
        assert!(
            refused.contains(&d("20-group-writable").as_path()),
            "{refused:?}"
        );
        assert!(
            p.unsafe_entries
                .iter()
                .all(|s| s.reason.contains("writable by group or others")),
            "{:?}",
            p.unsafe_entries
        );
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(
            names(&p.steps),
            [
                "pre-configure/01-orc-state",
                "configure/10-ok",
                "containers/orc-containers"
            ]
        );
        let p = t.plan_with(false, all());
        assert!(p.unsafe_entries.is_empty());
        assert_eq!(
            names(&p.steps),
            [
                "pre-configure/01-orc-state",
                "configure/10-ok",
                "configure/20-group-writable",
                "configure/30-link",
                "containers/orc-containers"
            ]
        );
    }

    #[test]
    fn one_dir_for_dib_run_parts() {
        let t = Tree::new();
        t.script("configure.d/2-b");
        t.script("configure.d/10-a");
        t.file("base/environment.d/10-env", 0o644);
        let opener = Opener {
            root: &t.root,
            strict: false,
        };
        let p = plan_dir(opener, Path::new("/base/configure.d"), &NameRule::Default).unwrap();
        assert_eq!(names(&p.steps), ["run-parts/2-b", "run-parts/10-a"]);
        assert_eq!(p.base_dir, t.shown("base/configure.d"));
        assert_eq!(p.steps[1].path, Some(t.shown("base/configure.d/10-a")));
        assert_eq!(
            p.env_files,
            [t.shown("base/configure.d/../environment.d/10-env")]
        );
        let e = plan_dir(opener, Path::new("/base/nothing.d"), &NameRule::Default).unwrap_err();
        assert!(
            e.to_string().contains("must exist and be a directory"),
            "{e}"
        );
    }

    #[test]
    fn an_entry_is_shown_by_its_phase_dir_even_when_that_dir_is_a_link() {
        // An unsafe entry of a linked phase dir is named through the link, as the
        // scripts are: only a symlinked entry is followed to where it leads.
        assert!(
            crate::trust::running_as_root(),
            "the plan tests run as root"
        );
        let t = Tree::new();
        t.script("real.d/10-ok");
        t.file("base/real.d/20-group-writable", 0o775);
        symlink("real.d", t.shown("base/configure.d")).unwrap();
        let p = t.plan_with(true, all());
        let refused: Vec<&Path> = p.unsafe_entries.iter().map(|s| s.path.as_path()).collect();
        assert_eq!(refused, [t.shown("base/configure.d/20-group-writable")]);
        assert_eq!(
            p.steps[1].path,
            Some(t.shown("base/configure.d/10-ok")),
            "{:?}",
            names(&p.steps)
        );
    }
}
