//! `orc run`: plans and validates every input, takes the lock, sources
//! environment.d, runs every step of the plan in order (scripts and the
//! built-in steps), runs error.d on failure, and keeps the report.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::containers;
use crate::envd::{self, Env, EnvFile};
use crate::error::{Error, Result};
use crate::exec::{self, CArgs, Exit, GRACE, Job, Output, Program};
use crate::lock::{self, Lock, Wait};
use crate::notify::Notifier;
use crate::phases::{Phase, Slot};
use crate::plan::{self, At, Plan, Selection, Step, StepKind};
use crate::procs::Live;
use crate::progress::Progress;
use crate::report::{Reports, RunReport, RunResult, SkippedReport, StepReport};
use crate::setup::{Loc, Setup};
use crate::signals;
use crate::state;
use crate::step::{StepCtx, StepResult};
use crate::time::{self, ms};
use crate::trust::{ExecBy, Opener};

/// What to do after a failing step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnError {
    #[default]
    Exit,
    Continue,
}

/// Everything `orc run` was asked.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub only: Vec<Phase>,
    pub skip_state: bool,
    pub skip_containers: bool,
    pub timeout: Option<Duration>,
    pub script_timeout: Option<Duration>,
    pub wait: Wait,
    pub lock_file: Loc,
    pub on_error: OnError,
    /// Speak os-refresh-config's log lines.
    pub compat: bool,
}

impl RunOptions {
    pub fn new(setup: &Setup) -> RunOptions {
        RunOptions {
            only: Vec::new(),
            skip_state: false,
            skip_containers: false,
            timeout: None,
            script_timeout: None,
            wait: Wait::No,
            lock_file: setup.paths.lock_file.clone(),
            on_error: OnError::Exit,
            compat: false,
        }
    }
}

/// The opener for scripts under `loc`'s root: strict when running as root.
pub fn opener<'a>(setup: &'a Setup, loc: &Loc) -> Opener<'a> {
    Opener::new(setup.at(loc))
}

/// The plan for a run with these options (nothing is executed).
pub fn plan(setup: &Setup, opts: &RunOptions) -> Result<Plan> {
    let sel = Selection {
        order: setup.config.order(opts.compat),
        only: &opts.only,
        state: !opts.skip_state,
        containers: !opts.skip_containers,
    };
    let base = &setup.paths.base_dir;
    plan::plan(opener(setup, base), &base.path, sel, &setup.rule)
}

/// Refuses a plan with entries that must not run as root.
pub fn refuse_unsafe(plan: &Plan) -> Result<()> {
    match plan.unsafe_entries.first() {
        None => Ok(()),
        Some(u) => {
            let more = match plan.unsafe_entries.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            Err(Error::Refused {
                path: u.path.clone(),
                reason: format!("{}{more}", u.reason),
            })
        }
    }
}

/// The inputs of the built-in steps, parsed and validated once, before the lock.
struct Inputs {
    registry: Option<Vec<state::registry::Entry>>,
}

/// orc's data dir and its runs dir, when they exist, must be directories that only root
/// can change (reports are read back by `orc status`).
fn check_data_dir(setup: &Setup) -> Result<()> {
    let data = &setup.paths.data_dir;
    let from_config = if setup.config.data_dir.is_some() {
        " (data_dir in the config)"
    } else {
        ""
    };
    for sys in [data.clone(), data.join("runs")] {
        let Some(st) = setup.root.stat(&sys)? else {
            continue;
        };
        let shown = setup.root.shown(&sys);
        if crate::root::kind(&st) != libc::S_IFDIR {
            return Err(crate::error::invalid(format!(
                "{}: not a directory{from_config}",
                shown.display()
            )));
        }
        // Too open a mode is fixed when the reports are opened; another owner is refused.
        if crate::trust::running_as_root() && st.st_uid != 0 {
            return Err(Error::Refused {
                path: shown,
                reason: format!("owned by uid {}, not root", st.st_uid),
            });
        }
    }
    Ok(())
}

fn inputs(setup: &Setup, plan: &Plan) -> Result<Inputs> {
    check_data_dir(setup)?;
    let has = |k| plan.steps.iter().any(|s| s.kind == k);
    Ok(Inputs {
        registry: if has(StepKind::State) {
            Some(state::load(setup)?)
        } else {
            None
        },
    })
}

/// The point of no return: deadline arithmetic that cannot overflow.
fn deadline_after(t: Instant, d: Option<Duration>) -> Option<Instant> {
    d.and_then(|d| t.checked_add(d))
}

struct Failure {
    phase: String,
    step: String,
    exit: i32,
}

/// The state of one run.
struct Runner<'a> {
    setup: &'a Setup,
    opts: &'a RunOptions,
    plan: &'a Plan,
    opener: Opener<'a>,
    notifier: Notifier,
    /// The running step, for `orc status`.
    progress: Progress,
    lock: Lock,
    deadline: Option<Instant>,
    env: Env,
    report: RunReport,
    external: Duration,
    result: RunResult,
    failure: Option<Failure>,
    refused: bool,
}

/// A planned environment.d file, opened and checked now: what is sourced is this fd.
fn checked_fd(opener: &Opener, plan: &Plan, at: &At) -> Result<OwnedFd> {
    let pd = &plan.dirs[at.dir];
    Ok(opener.open_in(pd.dir.as_fd(), &pd.resolved, &at.name)?.fd)
}

/// A planned script, checked now along its whole path: how to execute it.
fn checked_path(opener: &Opener, plan: &Plan, at: &At) -> Result<ExecBy> {
    let pd = &plan.dirs[at.dir];
    opener.exec_path(pd.dir.shown(), &pd.resolved, &at.name)
}

/// Every environment.d file of the plan, opened and checked.
fn env_files(opener: &Opener, plan: &Plan) -> Result<Vec<(PathBuf, OwnedFd)>> {
    plan.env
        .iter()
        .map(|at| {
            Ok((
                plan.dirs[at.dir].dir.child_shown(&at.name),
                checked_fd(opener, plan, at)?,
            ))
        })
        .collect()
}

/// Sources the opened environment.d files.
fn source_env(
    files: &[(PathBuf, OwnedFd)],
    base: Env,
    deadline: Option<Instant>,
    live: &Live,
) -> Result<Env> {
    let files: Vec<EnvFile> = files
        .iter()
        .map(|(shown, fd)| EnvFile {
            shown: shown.clone(),
            fd: fd.as_fd(),
        })
        .collect();
    envd::source(&files, base, deadline, live)
}

/// Sources environment.d as a run would and records the result for compose
/// interpolation: `orc containers plan` and `reconcile` see what `orc run` sees.
pub fn record_run_env(setup: &Setup, live: &Live) -> Result<()> {
    let plan = plan(setup, &RunOptions::new(setup))?;
    refuse_unsafe(&plan)?;
    let files = env_files(&opener(setup, &setup.paths.base_dir), &plan)?;
    let env = source_env(&files, envd::inherited(), None, live)?;
    crate::containers::compose::interp::set_run_env(&env);
    Ok(())
}

fn fd_bash_argv() -> &'static CArgs {
    static ARGV: std::sync::OnceLock<CArgs> = std::sync::OnceLock::new();
    ARGV.get_or_init(|| CArgs::new(["bash", "/dev/fd/3"]))
}

/// Runs a planned script by its checked path (`bash PATH` for a file without `#!`), or
/// as its checked open file when the path is too long to execute by.
fn exec_script(
    by: &ExecBy,
    shown: &Path,
    env: &CArgs,
    deadline: Option<Instant>,
    live: &Live,
) -> Result<exec::Outcome> {
    let path = match by {
        ExecBy::Path(p) => p.as_path(),
        ExecBy::Fd(_) => shown,
    };
    let argv = CArgs::new([path.as_os_str()]);
    let bash_argv = CArgs::new([OsStr::new("bash"), path.as_os_str()]);
    let name = shown.display().to_string();
    let mut var = b"ORC_SCRIPT=".to_vec();
    var.extend(shown.as_os_str().as_bytes().iter().filter(|b| **b != 0));
    let var = CString::new(var).expect("NUL removed");
    let bash = exec::bash()?;
    let (program, extra) = match by {
        ExecBy::Path(_) => (
            Program::Script {
                path: &argv.strings()[0],
                bash,
                bash_argv: &bash_argv,
            },
            None,
        ),
        ExecBy::Fd(fd) => (
            Program::Fd {
                bash,
                bash_argv: fd_bash_argv(),
            },
            Some(fd.as_fd()),
        ),
    };
    let job = Job {
        program,
        argv: &argv,
        env,
        env_extra: Some(&var),
        extra: extra.as_slice(),
        name: &name,
        live,
        shielded: false,
    };
    exec::run(&job, deadline, Output::Relay)
}

impl Runner<'_> {
    fn step_deadline(&self) -> Option<Instant> {
        let script = deadline_after(Instant::now(), self.opts.script_timeout);
        match (script, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The environment of a phase's scripts, built once per phase.
    fn env_for(&self, phase: &str, extra: &[(&str, String)]) -> CArgs {
        let run_id = OsString::from(&self.report.run_id);
        let root = self.setup.root.path().as_os_str();
        let own = [
            (OsStr::new("ORC_PHASE"), OsStr::new(phase)),
            (OsStr::new("ORC_RUN_ID"), run_id.as_os_str()),
            (OsStr::new("ORC_ROOT"), root),
        ];
        let skip: Vec<&OsStr> = own
            .iter()
            .map(|(k, _)| *k)
            .chain(extra.iter().map(|(k, _)| OsStr::new(*k)))
            .collect();
        CArgs::env(
            self.env
                .iter()
                .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
                .filter(|(k, _)| !skip.contains(k))
                .chain(own)
                .chain(
                    extra
                        .iter()
                        .map(|(k, v)| (OsStr::new(*k), OsStr::new(v.as_str()))),
                ),
        )
    }

    /// Runs a script between its two log lines: `running configure/20-foo`, then its exit
    /// code and time (dib-run-parts' `Running PATH` and `NAME completed` in the
    /// os-refresh-config front end, as upstream).
    fn script(&mut self, step: &Step, env: &CArgs) -> Result<StepReport> {
        let what = format!("{}/{}", step.phase, crate::logging::escape(&step.name));
        let path = step.path.as_deref().unwrap_or(Path::new(""));
        if self.opts.compat {
            crate::logging::dib_line(&format!("Running {}", path.display()));
        } else {
            log::info!("running {what}");
        }
        let s = self.run_script(step, env)?;
        if self.opts.compat {
            if s.result.is_success() {
                crate::logging::dib_line(&format!("{} completed", step.name));
            }
        } else {
            let end = match (s.exit_code, s.signal) {
                (_, Some(sig)) => format!("killed by signal {sig}"),
                (Some(c), _) => format!("exit {c}"),
                _ => "not run".into(),
            };
            log::info!("{what}: {end} in {:.1} ms", s.duration_ms);
        }
        Ok(s)
    }

    fn run_script(&mut self, step: &Step, env: &CArgs) -> Result<StepReport> {
        let started = SystemTime::now();
        let t = Instant::now();
        let at = step.at.as_ref().expect("scripts have a place");
        let shown = step.path.clone().unwrap_or_default();
        let mut rep = begin_report(step, started);
        let opened = match checked_path(&self.opener, self.plan, at) {
            Ok(o) => o,
            Err(e) => {
                self.refused |= e.exit_code() == 2;
                rep.exit_code = Some(126);
                rep.note = Some(e.to_string());
                return Ok(rep);
            }
        };
        let deadline = self.step_deadline();
        if let Some(d) = deadline {
            self.notifier.extend(
                d.saturating_duration_since(Instant::now()) + GRACE + Duration::from_secs(5),
            );
        }
        match exec_script(&opened, &shown, env, deadline, self.lock.live()) {
            Ok(o) => {
                rep.result = if o.interrupted.is_some() {
                    StepResult::Interrupted
                } else if o.timed_out {
                    StepResult::Timeout
                } else if o.exit.success() {
                    StepResult::Ok
                } else {
                    StepResult::Failed
                };
                match o.exit {
                    Exit::Code(c) => rep.exit_code = Some(c),
                    Exit::Signal(s) => rep.signal = Some(s),
                }
                rep.timed_out = o.timed_out;
                let tail = String::from_utf8_lossy(&o.tail);
                rep.output_tail = if o.tail.len() >= exec::TAIL_BYTES {
                    crate::redact::apply_cut(&tail)
                } else {
                    tail.into_owned()
                };
            }
            Err(Error::Interrupted(s)) => return Err(Error::Interrupted(s)),
            Err(e) => {
                rep.exit_code = Some(127);
                rep.note = Some(e.to_string());
            }
        }
        rep.duration_ms = ms(t.elapsed());
        Ok(rep)
    }

    fn run_builtin(&mut self, step: &Step, inputs: &Inputs) -> StepReport {
        let started = SystemTime::now();
        let t = Instant::now();
        let interrupted = signals::pending;
        let ctx = StepCtx {
            deadline: self.deadline,
            progress: &self.notifier,
            interrupted: &interrupted,
            live: self.lock.live(),
        };
        let (result, note, external) = match step.kind {
            StepKind::State => {
                let o =
                    state::seed_step(self.setup, inputs.registry.as_deref().unwrap_or(&[]), &ctx);
                self.report.state.extend(o.detail);
                (o.result, o.note, o.external)
            }
            _ => {
                // Specs are read here, after configure rendered them.
                let o = containers::converge_step(self.setup, &ctx);
                self.report.containers.extend(o.detail);
                (o.result, o.note, o.external)
            }
        };
        self.external += external;
        StepReport {
            duration_ms: ms(t.elapsed()),
            result,
            exit_code: Some(i32::from(!result.is_success())),
            timed_out: result == StepResult::Timeout,
            note,
            ..begin_report(step, started)
        }
    }

    fn log_failure(&self, s: &StepReport, path: Option<&Path>) {
        let what = describe_end(s);
        if self.opts.compat {
            let cmd = path.map_or_else(|| s.name.clone(), |p| p.display().to_string());
            log::error!(message_id = crate::journal::STEP_FAILED; "during {} phase. [Command '{cmd}' {what}.]\n", s.phase);
        } else {
            let note = s
                .note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default();
            log::error!(
                message_id = crate::journal::STEP_FAILED;
                "{}/{} {what}{note}",
                s.phase,
                crate::logging::escape(&s.name)
            );
        }
    }

    /// Records a step's end; false when the run must stop here.
    fn record(&mut self, step: &Step, s: StepReport) -> bool {
        let res = s.result;
        if !res.is_success() {
            if res != StepResult::Interrupted {
                self.log_failure(&s, step.path.as_deref());
            }
            if self.failure.is_none() {
                self.failure = Some(Failure {
                    phase: step.phase.into(),
                    step: step.name.clone(),
                    exit: match (s.exit_code, s.signal) {
                        (Some(c), _) => c,
                        (None, Some(sig)) => 128 + sig,
                        _ => 1,
                    },
                });
            }
        }
        self.report.steps.push(s);
        match res {
            StepResult::Interrupted => {
                self.result = RunResult::Interrupted;
                false
            }
            StepResult::Ok | StepResult::Skipped => true,
            _ => {
                let run_expired = self.deadline.is_some_and(|d| Instant::now() >= d);
                if self.result == RunResult::Ok || run_expired {
                    self.result = if run_expired
                        || res == StepResult::Timeout && self.opts.script_timeout.is_none()
                    {
                        RunResult::Timeout
                    } else {
                        RunResult::Failed
                    };
                }
                self.opts.on_error == OnError::Continue
            }
        }
    }

    /// Runs one slot's steps; false when the run must stop.
    fn slot(&mut self, slot: &'static str, inputs: &Inputs) -> Result<bool> {
        let plan = self.plan;
        let present = plan.present_phases.contains(&slot);
        let has_steps = plan.steps.iter().any(|s| s.phase == slot);
        crate::journal::set_step(slot, "");
        if present && self.opts.compat {
            log::info!("Starting phase {slot}");
        } else if has_steps && !self.opts.compat {
            log::info!("starting {slot}");
        }
        let phase_t = Instant::now();
        let env = self.env_for(slot, &[]);
        let failures = self.failed_steps();
        for step in plan.steps.iter().filter(|s| s.phase == slot) {
            if signals::pending().is_some() {
                self.result = RunResult::Interrupted;
                return Ok(false);
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                log::error!("run timed out before {}/{}", step.phase, step.name);
                self.result = RunResult::Timeout;
                return Ok(false);
            }
            let what = format!("{}/{}", step.phase, step.name);
            self.notifier.status(&what);
            crate::journal::set_step(step.phase, &step.name);
            self.progress.step(&what);
            let s = match step.kind {
                StepKind::Script => match self.script(step, &env) {
                    Ok(s) => s,
                    Err(_) => {
                        self.result = RunResult::Interrupted;
                        return Ok(false);
                    }
                },
                _ => {
                    log::debug!("running {}/{}", step.phase, step.name);
                    self.run_builtin(step, inputs)
                }
            };
            if !self.record(step, s) {
                return Ok(false);
            }
        }
        exec::spawn::reap_orphans();
        crate::journal::set_step(slot, "");
        let phase_ok = self.failed_steps() == failures;
        if present && phase_ok && self.opts.compat {
            log::info!("Completed phase {slot}");
        } else if has_steps && phase_ok && !self.opts.compat {
            log::info!("completed {slot} in {:.1} ms", ms(phase_t.elapsed()));
        }
        Ok(true)
    }

    fn failed_steps(&self) -> usize {
        self.report
            .steps
            .iter()
            .filter(|s| !s.result.is_success())
            .count()
    }

    /// Sources environment.d (each file opened and checked now); false on failure.
    fn source_env(&mut self) -> bool {
        let plan = self.plan;
        let base = envd::inherited();
        let files = match env_files(&self.opener, plan) {
            Ok(f) => f,
            Err(e) => return self.env_failed(e),
        };
        // bash sourcing the files is a process of the run, as a script is: its time is
        // not orc's own overhead.
        let t = Instant::now();
        let sourced = source_env(&files, base.clone(), self.deadline, self.lock.live());
        self.external += t.elapsed();
        log::debug!("environment.d sourced in {:.1} ms", ms(t.elapsed()));
        match sourced {
            Ok(env) => {
                let names = envd::changed_names(&base, &env);
                if !names.is_empty() {
                    log::debug!("environment.d sets: {}", names.join(" "));
                }
                crate::containers::compose::interp::set_run_env(&env);
                self.env = env;
                true
            }
            Err(Error::Interrupted(_)) => {
                self.result = RunResult::Interrupted;
                false
            }
            Err(e) => self.env_failed(e),
        }
    }

    fn env_failed(&mut self, e: Error) -> bool {
        log::error!("{e}");
        self.refused |= e.exit_code() == 2;
        self.result = if matches!(e, Error::TimedOut(_)) {
            RunResult::Timeout
        } else {
            RunResult::Failed
        };
        self.report.error = Some(e.to_string());
        self.failure = Some(Failure {
            phase: "environment".into(),
            step: "environment.d".into(),
            exit: 1,
        });
        false
    }

    fn error_handlers(&mut self) {
        let Some(f) = &self.failure else {
            return;
        };
        if self.plan.error_handlers.is_empty()
            || !matches!(self.result, RunResult::Failed | RunResult::Timeout)
        {
            return;
        }
        if self.opts.compat {
            log::info!("Calling error handlers.");
        } else {
            log::info!(
                "running error.d for {}/{}",
                f.phase,
                crate::logging::escape(&f.step)
            );
        }
        let extra = [
            ("ORC_FAILED_PHASE", f.phase.clone()),
            ("ORC_FAILED_STEP", f.step.clone()),
            ("ORC_FAILED_EXIT", f.exit.to_string()),
        ];
        let env = self.env_for("error", &extra);
        for step in &self.plan.error_handlers {
            if signals::pending().is_some() {
                return;
            }
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                log::error!("no time left to run error.d/{}", step.name);
                return;
            }
            let what = format!("error/{}", step.name);
            self.notifier.status(&what);
            self.progress.step(&what);
            let Ok(s) = self.script(step, &env) else {
                return;
            };
            if !s.result.is_success() {
                log::warn!(
                    "error.d/{} {}",
                    crate::logging::escape(&step.name),
                    describe_end(&s)
                );
            }
            self.report.steps.push(s);
        }
    }
}

/// A step's report as it begins: failed, with nothing yet measured.
fn begin_report(step: &Step, started: SystemTime) -> StepReport {
    StepReport {
        phase: step.phase.into(),
        name: step.name.clone(),
        kind: step.kind,
        started: time::rfc3339(started),
        duration_ms: 0.0,
        result: StepResult::Failed,
        exit_code: None,
        signal: None,
        timed_out: false,
        note: None,
        output_tail: String::new(),
    }
}

fn describe_end(s: &StepReport) -> String {
    match (s.result, s.exit_code, s.signal) {
        (StepResult::Timeout, ..) => "timed out and was killed".into(),
        (StepResult::Interrupted, ..) => "was interrupted".into(),
        (_, Some(126), _) if s.note.is_some() => "was refused".into(),
        (_, Some(c), _) => format!("returned non-zero exit status {c}"),
        (_, _, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "failed".into(),
    }
}

fn warn_skipped(plan: &Plan) {
    for s in &plan.skipped {
        log::warn!(
            "skipping {}: {}",
            crate::logging::escape(&s.path.to_string_lossy()),
            s.reason
        );
    }
}

/// Takes the lock, speaking upstream's line when busy in the compatible front end.
fn take_lock(setup: &Setup, opts: &RunOptions) -> Result<Lock> {
    let cmd = if opts.compat {
        "os-refresh-config"
    } else {
        "run"
    };
    match lock::acquire(setup.at(&opts.lock_file), &opts.lock_file, opts.wait, cmd) {
        Err(Error::Busy(m)) if opts.compat => {
            log::error!(
                "Could not lock {}. [Errno 11] Resource temporarily unavailable",
                setup.shown(&opts.lock_file).display()
            );
            Err(Error::Busy(m))
        }
        r => r,
    }
}

/// Tells whether the lock a report names is held by a run now (the configured lock for
/// reports that name none); `None` when it cannot be told.
pub fn lock_probe(setup: &Setup) -> impl Fn(&RunReport) -> Option<bool> + '_ {
    move |r: &RunReport| {
        let loc = match &r.lock_file {
            Some(p) if r.lock_on_host => Loc::given(Path::new(p)),
            Some(p) => Loc::in_root(p),
            None => setup.paths.lock_file.clone(),
        };
        lock::held(setup.at(&loc), &loc.path)
    }
}

/// Runs a whole refresh; returns the exit code.
pub fn run(setup: &Setup, opts: &RunOptions) -> Result<i32> {
    let t0 = Instant::now();
    crate::redact::set_names(&setup.config.redact);
    let plan = plan(setup, opts)?;
    refuse_unsafe(&plan)?;
    crate::procs::require_proc()?;
    let inputs = inputs(setup, &plan)?;
    warn_skipped(&plan);
    let t_lock = Instant::now();
    let lock = take_lock(setup, opts)?;
    let waited = t_lock.elapsed();
    let mut reports = Reports::open(&setup.root, &setup.paths.data_dir)?;
    // A run that named the lock this run holds now cannot be running; one that named
    // another lock (`--lockfile`) may be.
    let probe = lock_probe(setup);
    let held = |r: &RunReport| match (&r.lock_file, r.lock_on_host) {
        (Some(p), host) if host == opts.lock_file.host && Path::new(p) == opts.lock_file.path => {
            Some(false)
        }
        (None, _) if opts.lock_file == setup.paths.lock_file => Some(false),
        _ => probe(r),
    };
    if let Some(id) = reports.settle_last(&held)? {
        log::warn!("run {id} did not finish (orc was killed); it is recorded as crashed");
    }
    let mut report = RunReport::starting(
        reports.next_id(SystemTime::now())?,
        plan.base_dir.clone(),
        plan.phase_order.iter().map(|s| s.to_string()).collect(),
    );
    report.skipped = plan
        .skipped
        .iter()
        .map(|s| SkippedReport {
            path: s.path.clone(),
            reason: s.reason.clone(),
        })
        .collect();
    report.waited_ms = ms(waited);
    report.lock_file = Some(opts.lock_file.path.to_string_lossy().into_owned());
    report.lock_on_host = opts.lock_file.host;
    reports.start(&report)?;
    crate::journal::set_run(&report.run_id);
    // The start is an entry of its own in the journal; on a terminal the phases say it.
    let level = if crate::journal::active() && !opts.compat {
        log::Level::Info
    } else {
        log::Level::Debug
    };
    log::log!(level, message_id = crate::journal::RUN_STARTED; "run {} started", report.run_id);
    let t_run = Instant::now();
    let mut r = Runner {
        setup,
        opts,
        plan: &plan,
        opener: opener(setup, &setup.paths.base_dir),
        notifier: Notifier::from_env(),
        progress: Progress::open(reports.data(), &report.run_id),
        lock,
        deadline: deadline_after(t_run, opts.timeout),
        env: Env::new(),
        report,
        external: Duration::ZERO,
        result: RunResult::Ok,
        failure: None,
        refused: false,
    };
    if r.source_env() {
        for slot in setup.config.order(opts.compat).slots() {
            let name = match slot {
                Slot::Phase(p) => p.name(),
                Slot::Containers => "containers",
            };
            if !r.slot(name, &inputs)? {
                break;
            }
        }
    }
    r.error_handlers();
    finish(r, &reports, t0, waited)
}

/// Completes the report, tells systemd, releases the lock; returns the exit code.
fn finish(mut r: Runner, reports: &Reports, t0: Instant, waited: Duration) -> Result<i32> {
    if signals::pending().is_some() {
        r.result = RunResult::Interrupted;
    }
    let result = r.result;
    if r.opts.compat && !matches!(result, RunResult::Ok | RunResult::Interrupted) {
        log::error!("Aborting...");
    }
    let exit_code = match result {
        RunResult::Ok => 0,
        RunResult::Interrupted => 128 + signals::pending().unwrap_or(libc::SIGTERM),
        _ if r.refused => 2,
        _ => 1,
    };
    let total = t0.elapsed();
    let scripts: Duration = r
        .report
        .steps
        .iter()
        .filter(|s| matches!(s.kind, StepKind::Script | StepKind::ErrorHandler))
        .map(|s| Duration::from_secs_f64(s.duration_ms / 1e3))
        .sum();
    let rep = &mut r.report;
    rep.ended = Some(time::rfc3339(SystemTime::now()));
    rep.duration_ms = ms(total.saturating_sub(waited));
    rep.overhead_ms = ms(total.saturating_sub(waited + scripts + r.external));
    rep.result = result;
    rep.exit_code = Some(exit_code);
    let mut code = exit_code;
    match reports.finish(rep) {
        Ok(true) => {}
        Ok(false) => log::warn!("the run report was completed without all its details"),
        Err(e) => {
            log::error!("writing the run report: {e}");
            code = code.max(1);
        }
    }
    if let Some(dir) = &r.setup.config.metrics.textfile_dir
        && let Err(e) = crate::metrics::write(&r.setup.root, &dir.0, rep, SystemTime::now())
    {
        log::warn!("writing the metrics textfile: {e}");
    }
    crate::journal::set_step("", "");
    r.progress.done(reports.data());
    let summary = format!(
        "run {} {} in {:.0} ms",
        rep.run_id,
        result.name(),
        rep.duration_ms
    );
    if !r.opts.compat {
        match result {
            RunResult::Ok => log::info!(message_id = crate::journal::RUN_ENDED; "{summary}"),
            _ => log::error!(message_id = crate::journal::RUN_FAILED; "{summary}"),
        }
    }
    r.notifier.done(code == 0, &summary);
    drop(r.lock);
    Ok(code)
}

/// `dib-run-parts DIR`: runs one dir's scripts in order (with `DIR/../environment.d`);
/// exits with the first failing script's code.
pub fn run_parts(setup: &Setup, dir: &Path) -> Result<i32> {
    crate::redact::set_names(&setup.config.redact);
    let loc = Loc::given(dir);
    let opener = opener(setup, &loc);
    let plan = parts_plan(opener, &loc.path, &setup.rule)?;
    crate::procs::require_proc()?;
    warn_skipped(&plan);
    let files = env_files(&opener, &plan)?;
    let live = Live::none();
    let env = source_env(&files, envd::inherited(), None, &live)?;
    let env = CArgs::env(&env);
    for step in &plan.steps {
        let at = step.at.as_ref().expect("scripts have a place");
        let shown = step.path.clone().unwrap_or_default();
        log::info!(
            "Running {}",
            crate::logging::escape(&shown.to_string_lossy())
        );
        let by = checked_path(&opener, &plan, at)?;
        let out = exec_script(&by, &shown, &env, None, &live)?;
        if let Some(sig) = out.interrupted {
            return Err(Error::Interrupted(sig));
        }
        if !out.exit.success() {
            log::error!(
                "{} {}",
                crate::logging::escape(&shown.to_string_lossy()),
                match out.exit {
                    Exit::Code(c) => format!("exited with {c}"),
                    Exit::Signal(s) => format!("was killed by signal {s}"),
                }
            );
            return Ok(out.exit.shell_code());
        }
        log::info!("{} completed", crate::logging::escape(&step.name));
    }
    Ok(0)
}

/// The plan of one dib-run-parts dir: its scripts, and `DIR/../environment.d`.
pub fn parts_plan(opener: Opener, dir: &Path, rule: &crate::phases::NameRule) -> Result<Plan> {
    let plan = plan::plan_dir(opener, dir, rule)?;
    refuse_unsafe(&plan)?;
    Ok(plan)
}
