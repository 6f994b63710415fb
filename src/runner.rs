//! `orc run`: takes the lock, sources environment.d, runs every step of the
//! plan in order (scripts and the built-in steps), runs error.d on failure,
//! and writes the report.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{Config, Paths};
use crate::envd::{self, Env};
use crate::error::{Error, Result, invalid};
use crate::exec::{self, Exit, GRACE, Signals, Stdout};
use crate::lock::{self, Wait};
use crate::notify::Notifier;
use crate::phases::{self, NameRule, Phase, Plan, Selection, Slot, Step, StepKind};
use crate::report::{self, RunReport, RunResult, SkippedReport, StepReport, StepResult};
use crate::time::{self, ms};

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
    pub lock_file: PathBuf,
    pub on_error: OnError,
    /// Speak os-refresh-config's log lines.
    pub compat: bool,
}

/// The resolved setup shared by every command.
#[derive(Debug)]
pub struct Setup {
    pub config: Config,
    pub paths: Paths,
    pub rule: NameRule,
}

/// What a built-in step hands back to the runner.
#[derive(Debug, Default)]
pub struct BuiltinOutcome {
    pub result: Option<StepResult>,
    pub note: Option<String>,
    pub state: Vec<report::StatePathReport>,
    pub containers: Vec<report::ContainerReport>,
    /// Time spent waiting on something else (the container engine).
    pub external: Duration,
}

/// What a built-in step may use.
pub struct StepCtx<'a> {
    pub setup: &'a Setup,
    pub signals: &'a Signals,
    pub notifier: &'a Notifier,
    pub deadline: Option<Instant>,
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The plan for a run with these options (nothing is executed).
pub fn plan(setup: &Setup, opts: &RunOptions) -> Result<Plan> {
    let sel = Selection {
        order: setup.config.phase_order,
        only: &opts.only,
        state: !opts.skip_state,
        containers: !opts.skip_containers,
        check_owner: is_root(),
    };
    phases::plan(&setup.paths.base_dir, sel, &setup.rule)
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
            Err(invalid(format!(
                "refusing to run as root: {}: {}{more}",
                u.path.display(),
                u.reason
            )))
        }
    }
}

/// Interpreted scripts without `#!` run through bash, as dib-run-parts' bash does.
fn command_for(path: &Path) -> Command {
    let mut head = [0u8; 4];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let known = head[..n].starts_with(b"#!") || head[..n].starts_with(b"\x7fELF");
    if known || n == 0 {
        Command::new(path)
    } else {
        let mut c = Command::new("bash");
        c.arg(path);
        c
    }
}

struct Failure {
    phase: String,
    step: String,
    exit: i32,
}

struct Runner<'a> {
    setup: &'a Setup,
    opts: &'a RunOptions,
    signals: &'a Signals,
    notifier: Notifier,
    run_id: String,
    deadline: Option<Instant>,
    env: Env,
    steps: Vec<StepReport>,
    state: Vec<report::StatePathReport>,
    containers: Vec<report::ContainerReport>,
    external: Duration,
}

impl Runner<'_> {
    fn step_deadline(&self) -> Option<Instant> {
        let script = self.opts.script_timeout.map(|d| Instant::now() + d);
        match (script, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn run_script(&mut self, step: &Step, extra: &[(&str, String)]) -> Result<StepReport> {
        let path = step.path.as_deref().expect("scripts have a path");
        let deadline = self.step_deadline();
        if let Some(d) = deadline {
            self.notifier.extend(
                d.saturating_duration_since(Instant::now()) + GRACE + Duration::from_secs(5),
            );
        }
        let mut cmd = command_for(path);
        cmd.env_clear()
            .envs(&self.env)
            .env("ORC_PHASE", step.phase)
            .env("ORC_RUN_ID", &self.run_id)
            .env("ORC_ROOT", self.setup.paths.root.path());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let started = SystemTime::now();
        let t = Instant::now();
        let (result, exit_code, signal, timed_out, note, tail) =
            match exec::run(cmd, deadline, Stdout::Relay, self.signals) {
                Ok(o) => {
                    let result = if o.interrupted.is_some() {
                        StepResult::Interrupted
                    } else if o.timed_out {
                        StepResult::Timeout
                    } else if o.exit.success() {
                        StepResult::Ok
                    } else {
                        StepResult::Failed
                    };
                    let (code, sig) = match o.exit {
                        Exit::Code(c) => (Some(c), None),
                        Exit::Signal(s) => (None, Some(s)),
                    };
                    (result, code, sig, o.timed_out, None, o.tail)
                }
                Err(Error::Interrupted(s)) => return Err(Error::Interrupted(s)),
                Err(e) => (
                    StepResult::Failed,
                    Some(127),
                    None,
                    false,
                    Some(e.to_string()),
                    Vec::new(),
                ),
            };
        Ok(StepReport {
            phase: step.phase.into(),
            name: step.name.clone(),
            kind: step.kind,
            started: time::rfc3339(started),
            duration_ms: ms(t.elapsed()),
            result,
            exit_code,
            signal,
            timed_out,
            note,
            output_tail: String::from_utf8_lossy(&tail).into_owned(),
        })
    }

    fn run_builtin(&mut self, step: &Step) -> StepReport {
        let started = SystemTime::now();
        let t = Instant::now();
        let ctx = StepCtx {
            setup: self.setup,
            signals: self.signals,
            notifier: &self.notifier,
            deadline: self.deadline,
        };
        let out = match step.kind {
            StepKind::State => crate::state::seed_step(&ctx),
            _ => crate::containers::converge_step(&ctx),
        };
        self.state.extend(out.state);
        self.containers.extend(out.containers);
        self.external += out.external;
        let result = out.result.unwrap_or(StepResult::Ok);
        StepReport {
            phase: step.phase.into(),
            name: step.name.clone(),
            kind: step.kind,
            started: time::rfc3339(started),
            duration_ms: ms(t.elapsed()),
            result,
            exit_code: Some(i32::from(!matches!(
                result,
                StepResult::Ok | StepResult::Skipped
            ))),
            signal: None,
            timed_out: result == StepResult::Timeout,
            note: out.note,
            output_tail: String::new(),
        }
    }

    fn log_failure(&self, s: &StepReport, path: Option<&Path>) {
        let what = describe_end(s);
        if self.opts.compat {
            let cmd = path.map_or_else(|| s.name.clone(), |p| p.display().to_string());
            log::error!("during {} phase. [Command '{cmd}' {what}.]\n", s.phase);
        } else {
            let note = s
                .note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default();
            log::error!("{}/{} {what}{note}", s.phase, s.name);
        }
    }
}

fn describe_end(s: &StepReport) -> String {
    match (s.result, s.exit_code, s.signal) {
        (StepResult::Timeout, ..) => "timed out and was killed".into(),
        (StepResult::Interrupted, ..) => "was interrupted".into(),
        (_, Some(c), _) => format!("returned non-zero exit status {c}"),
        (_, _, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "failed".into(),
    }
}

fn warn_skipped(plan: &Plan) {
    for s in &plan.skipped {
        log::warn!("skipping {}: {}", s.path.display(), s.reason);
    }
}

/// Runs a whole refresh; returns the exit code.
pub fn run(setup: &Setup, opts: &RunOptions) -> Result<i32> {
    let signals = Signals::install()?;
    let started = SystemTime::now();
    let t0 = Instant::now();
    let plan = plan(setup, opts)?;
    refuse_unsafe(&plan)?;
    if plan.steps.iter().any(|s| s.kind == StepKind::State) {
        crate::state::validate(setup)?;
    }
    if plan.steps.iter().any(|s| s.kind == StepKind::Containers) {
        crate::containers::load(setup)?;
    }
    warn_skipped(&plan);
    let run_id = time::run_id(started);
    let notifier = Notifier::from_env();
    let lock = match lock::acquire(&opts.lock_file, opts.wait, &signals, &run_id) {
        Ok(l) => l,
        Err(Error::Busy(m)) if opts.compat => {
            log::error!(
                "Could not lock {}. [Errno 11] Resource temporarily unavailable",
                opts.lock_file.display()
            );
            return Err(Error::Busy(m));
        }
        Err(e) => return Err(e),
    };
    let mut r = Runner {
        setup,
        opts,
        signals: &signals,
        notifier,
        run_id,
        deadline: opts.timeout.map(|d| t0 + d),
        env: Env::new(),
        steps: Vec::new(),
        state: Vec::new(),
        containers: Vec::new(),
        external: Duration::ZERO,
    };
    let mut result = RunResult::Ok;
    let mut error = None;
    let mut failure: Option<Failure> = None;
    let base_env = envd::inherited();
    match envd::source(&plan.env_files, base_env.clone(), r.deadline, &signals) {
        Ok(env) => {
            let names = envd::changed_names(&base_env, &env);
            if !names.is_empty() {
                log::debug!("environment.d sets: {}", names.join(" "));
            }
            r.env = env;
        }
        Err(Error::Interrupted(_)) => result = RunResult::Interrupted,
        Err(e) => {
            log::error!("{e}");
            error = Some(e.to_string());
            result = RunResult::Failed;
            failure = Some(Failure {
                phase: "environment".into(),
                step: "environment.d".into(),
                exit: 1,
            });
        }
    }
    let slots: Vec<&'static str> = setup
        .config
        .phase_order
        .slots()
        .iter()
        .map(|s| match s {
            Slot::Phase(p) => p.name(),
            Slot::Containers => "containers",
        })
        .collect();
    'slots: for slot in slots {
        if result != RunResult::Ok && opts.on_error == OnError::Exit {
            break;
        }
        let present = plan.present_phases.contains(&slot);
        let has_steps = plan.steps.iter().any(|s| s.phase == slot);
        if present && opts.compat {
            log::info!("Starting phase {slot}");
        } else if has_steps && !opts.compat {
            log::info!("starting {slot}");
        }
        let phase_t = Instant::now();
        let mut phase_ok = true;
        for step in plan.steps.iter().filter(|s| s.phase == slot) {
            if signals.pending().is_some() {
                result = RunResult::Interrupted;
                break 'slots;
            }
            if r.deadline.is_some_and(|d| Instant::now() >= d) {
                log::error!("run timed out before {}/{}", step.phase, step.name);
                result = RunResult::Timeout;
                break 'slots;
            }
            r.notifier.status(&format!("{}/{}", step.phase, step.name));
            log::debug!("running {}/{}", step.phase, step.name);
            let s = match step.kind {
                StepKind::Script => match r.run_script(step, &[]) {
                    Ok(s) => s,
                    Err(_) => {
                        result = RunResult::Interrupted;
                        break 'slots;
                    }
                },
                _ => r.run_builtin(step),
            };
            let res = s.result;
            if !matches!(res, StepResult::Ok | StepResult::Skipped) {
                phase_ok = false;
                if res != StepResult::Interrupted {
                    r.log_failure(&s, step.path.as_deref());
                }
                if failure.is_none() {
                    failure = Some(Failure {
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
            r.steps.push(s);
            match res {
                StepResult::Interrupted => {
                    result = RunResult::Interrupted;
                    break 'slots;
                }
                StepResult::Ok | StepResult::Skipped => {}
                _ => {
                    let run_expired = r.deadline.is_some_and(|d| Instant::now() >= d);
                    if result == RunResult::Ok || run_expired {
                        result = if run_expired {
                            RunResult::Timeout
                        } else {
                            RunResult::Failed
                        };
                    }
                    if opts.on_error == OnError::Exit {
                        break 'slots;
                    }
                }
            }
        }
        if present && phase_ok && opts.compat {
            log::info!("Completed phase {slot}");
        } else if has_steps && phase_ok && !opts.compat {
            log::info!("completed {slot} in {:.1} ms", ms(phase_t.elapsed()));
        }
    }
    if let (Some(f), RunResult::Failed | RunResult::Timeout) = (&failure, result) {
        run_error_handlers(&mut r, &plan, f);
    }
    if signals.pending().is_some() {
        result = RunResult::Interrupted;
    }
    if opts.compat && result != RunResult::Ok && result != RunResult::Interrupted {
        log::error!("Aborting...");
    }
    let exit_code = match result {
        RunResult::Ok => 0,
        RunResult::Failed | RunResult::Timeout => 1,
        RunResult::Interrupted => 128 + signals.pending().unwrap_or(libc::SIGTERM),
    };
    let duration = t0.elapsed();
    let scripts: Duration = r
        .steps
        .iter()
        .filter(|s| matches!(s.kind, StepKind::Script | StepKind::ErrorHandler))
        .map(|s| Duration::from_secs_f64(s.duration_ms / 1e3))
        .sum();
    let rep = RunReport {
        run_id: r.run_id.clone(),
        started: time::rfc3339(started),
        ended: time::rfc3339(SystemTime::now()),
        duration_ms: ms(duration),
        overhead_ms: ms(duration.saturating_sub(scripts + r.external)),
        result,
        exit_code,
        base_dir: plan.base_dir.clone(),
        phase_order: plan.phase_order.iter().map(|s| s.to_string()).collect(),
        error,
        steps: r.steps,
        skipped: plan
            .skipped
            .iter()
            .map(|s| SkippedReport {
                path: s.path.clone(),
                reason: s.reason.clone(),
            })
            .collect(),
        state: r.state,
        containers: r.containers,
    };
    let mut code = exit_code;
    if let Err(e) = report::write(&setup.paths.data_dir, &rep) {
        log::error!("writing the run report: {e}");
        code = code.max(1);
    }
    let summary = format!(
        "run {} {} in {:.0} ms",
        rep.run_id,
        format!("{result:?}").to_lowercase(),
        rep.duration_ms
    );
    if !opts.compat {
        match result {
            RunResult::Ok => log::info!("{summary}"),
            _ => log::error!("{summary}"),
        }
    }
    r.notifier.ready(&summary);
    drop(lock);
    Ok(code)
}

fn run_error_handlers(r: &mut Runner, plan: &Plan, f: &Failure) {
    if plan.error_handlers.is_empty() {
        return;
    }
    if r.opts.compat {
        log::info!("Calling error handlers.");
    } else {
        log::info!("running error.d for {}/{}", f.phase, f.step);
    }
    let extra = [
        ("ORC_FAILED_PHASE", f.phase.clone()),
        ("ORC_FAILED_STEP", f.step.clone()),
        ("ORC_FAILED_EXIT", f.exit.to_string()),
    ];
    for step in &plan.error_handlers {
        if r.signals.pending().is_some() {
            return;
        }
        if r.deadline.is_some_and(|d| Instant::now() >= d) {
            log::error!("no time left to run error.d/{}", step.name);
            return;
        }
        r.notifier.status(&format!("error/{}", step.name));
        let Ok(s) = r.run_script(step, &extra) else {
            return;
        };
        if !matches!(s.result, StepResult::Ok) {
            log::warn!("error.d/{} {}", step.name, describe_end(&s));
        }
        r.steps.push(s);
    }
}

/// Used by `orc list` and `dib-run-parts`: the environment a script would get.
pub fn script_env(files: &[PathBuf], signals: &Signals) -> Result<Env> {
    envd::source(files, envd::inherited(), None, signals)
}

/// Runs one dir's scripts in order (dib-run-parts); exits with the first failing script's code.
pub fn run_parts(dir: &Path, rule: &NameRule) -> Result<i32> {
    let signals = Signals::install()?;
    let (scripts, skipped) = phases::scan_dir(dir, rule)?;
    for s in &skipped {
        log::warn!("skipping {}: {}", s.path.display(), s.reason);
    }
    let env_dir = dir.join("..");
    let (files, _) = phases::env_files(&env_dir)?;
    let env = script_env(&files, &signals)?;
    for (_, path) in scripts {
        log::info!("Running {}", path.display());
        let mut cmd = command_for(&path);
        cmd.env_clear().envs(&env);
        let out = exec::run(cmd, None, Stdout::Relay, &signals)?;
        if let Some(sig) = out.interrupted {
            return Err(Error::Interrupted(sig));
        }
        if !out.exit.success() {
            log::error!(
                "{} {}",
                path.display(),
                match out.exit {
                    Exit::Code(c) => format!("exited with {c}"),
                    Exit::Signal(s) => format!("was killed by signal {s}"),
                }
            );
            return Ok(out.exit.shell_code());
        }
        let name: OsString = path.file_name().unwrap_or_default().to_os_string();
        log::info!("{} completed", name.to_string_lossy());
    }
    Ok(0)
}
