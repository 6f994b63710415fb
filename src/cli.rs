//! The command line: one clap definition for `orc` and its personalities
//! (`os-refresh-config`, `dib-run-parts`, `register-state-path`), chosen by
//! rewriting argv[0] into a subcommand before parsing once.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::error::{Context, Error, Result};
use crate::lock::{self, Lock, Wait};
use crate::logging::{self, Style};
use crate::notify::Notifier;
use crate::phases::Phase;
use crate::report;
use crate::runner::{self, OnError, RunOptions};
use crate::setup::{Loc, Setup};
use crate::signals;
use crate::step::StepCtx;

/// The longest timeout accepted, in seconds (a year); 0 means none.
pub const MAX_TIMEOUT: u64 = 365 * 24 * 3600;

fn timeout_parser() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(0..=MAX_TIMEOUT)
}

/// `--wait[=SECONDS]`, for every command that takes the lock.
#[derive(Debug, Args, Clone, Copy)]
pub struct WaitArg {
    /// Wait for a busy lock (forever, or SECONDS).
    #[arg(long, value_name = "S", num_args = 0..=1, require_equals = true, value_parser = timeout_parser())]
    pub wait: Option<Option<u64>>,
}

/// orc: makes an appliance-style box right at every boot.
#[derive(Debug, Parser)]
#[command(name = "orc", version, about, long_about = None)]
pub struct Cli {
    /// Resolve every system path under this directory.
    #[arg(
        long,
        global = true,
        env = "ORC_ROOT",
        default_value = "/",
        value_name = "DIR"
    )]
    pub root: PathBuf,
    /// Config file (default: /etc/orc/orc.json under the root).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less log output (repeat for less).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// One full refresh: phases, state seeding, containers.
    Run(RunArgs),
    /// The plan: every step in run order and every skipped file with the reason.
    List {
        /// Print the plan as JSON (steps, environment files, skipped and unsafe entries).
        #[arg(long)]
        json: bool,
    },
    /// The last run's report (exit 0 ok, 1 failed or crashed, 3 never ran, 4 running).
    Status {
        /// Print the whole report as JSON (schema: orc-report(5)); `null` if orc never ran.
        #[arg(long)]
        json: bool,
        /// Block while a run holds the lock.
        #[arg(long)]
        wait: bool,
    },
    /// Stateful paths relocated onto the state root.
    #[command(subcommand)]
    State(StateCmd),
    /// The box's containers.
    #[command(subcommand)]
    Containers(ContainersCmd),
    /// Relays fds to orc's stdout/stderr for background processes after orc exits.
    #[command(hide = true)]
    Relay {
        /// The fd of the secrets to mask (orc's memfd).
        #[arg(long)]
        masks: Option<i32>,
        /// FROM:TO file descriptor pairs to copy until end of file.
        pairs: Vec<String>,
    },
    /// os-refresh-config compatible front end.
    #[command(name = "os-refresh-config", hide = true)]
    OsRefreshConfig(CompatArgs),
    /// dib-run-parts compatible: run (or list) one directory.
    #[command(name = "dib-run-parts", hide = true)]
    DibRunParts {
        /// Print the scripts that would run, in order.
        #[arg(long)]
        list: bool,
        /// The directory whose scripts run (or are listed).
        dir: PathBuf,
    },
    /// use-ephemeral compatible: record a stateful path.
    #[command(name = "register-state-path", hide = true)]
    RegisterStatePath {
        /// Leave a symlink at PATH pointing into the state root after finalise.
        #[arg(long)]
        leave_symlink: bool,
        /// The absolute path of the stateful file or directory.
        path: PathBuf,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Write the man pages into DIR.
    #[command(hide = true)]
    Man {
        /// Directory to write the pages into (created if missing).
        dir: PathBuf,
    },
    /// Print shell completions (for orc, or for a personality with --name).
    #[command(hide = true)]
    Completions {
        /// The shell to write completions for.
        shell: clap_complete::Shell,
        /// A personality: os-refresh-config, dib-run-parts or register-state-path.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(PERSONALITIES))]
        name: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run only this phase (repeatable); the containers step then does not run.
    #[arg(long, value_enum, value_name = "PHASE")]
    pub only: Vec<Phase>,
    /// Do not run the built-in containers step.
    #[arg(long)]
    pub skip_containers: bool,
    /// Do not run the built-in state seeding step.
    #[arg(long)]
    pub skip_state: bool,
    /// Seconds for the whole run, error.d included (0 = none).
    #[arg(long, value_name = "S", default_value_t = 0, value_parser = timeout_parser())]
    pub timeout: u64,
    /// Seconds for each step (0 = none).
    #[arg(long, value_name = "S", default_value_t = 0, value_parser = timeout_parser())]
    pub script_timeout: u64,
    #[command(flatten)]
    pub wait: WaitArg,
    /// Lock file (default: /run/os-refresh-config.lock under the root).
    #[arg(long, value_name = "P")]
    pub lockfile: Option<PathBuf>,
    /// After a failed step: stop (exit) or run the remaining steps (continue); exit 1 either way.
    #[arg(long, value_enum, default_value_t = OnError::Exit)]
    pub on_error: OnError,
}

#[derive(Debug, Subcommand)]
pub enum StateCmd {
    /// Record stateful paths (image build time).
    Register {
        /// Leave a symlink at each PATH pointing into the state root after finalise.
        #[arg(long)]
        leave_symlink: bool,
        /// Absolute paths of the stateful files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// End of image build: move registered content to the pristine root.
    Finalise {
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Seed the state root from the pristine copies (the boot step alone).
    Seed {
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Each registered path and how it stands.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContainersCmd {
    /// Converge the containers (the step alone), or only the named ones and what they
    /// depend on.
    Reconcile {
        /// Containers to converge (default: all).
        names: Vec<String>,
        /// Recreate this container even if it is up to date (repeatable), through the
        /// normal path: store_data, the new one first, rollback.
        #[arg(long = "force-recreate", value_name = "NAME")]
        force_recreate: Vec<String>,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Desired vs actual, and the action each would get.
    List {
        /// Print the rows as JSON.
        #[arg(long)]
        json: bool,
    },
    /// What a converge would do, each action with its reason; changes nothing.
    Plan {
        /// Also the engine calls that create each container and network.
        #[arg(long)]
        argv: bool,
        /// One JSON array of the actions (name, action, reason, calls).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum LogLevel {
    Error,
    Warn,
    Critical,
    Info,
    Debug,
}

#[derive(Debug, Args)]
pub struct CompatArgs {
    /// Print base dir and exit.
    #[arg(long)]
    pub print_base: bool,
    /// Print phases (tab separated) and exit.
    #[arg(long)]
    pub print_phases: bool,
    /// Log level, as upstream spells it.
    #[arg(long, value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
    /// Lock file to prevent multiple running copies (default: the configured one under the root).
    #[arg(long)]
    pub lockfile: Option<PathBuf>,
    /// Seconds until the current run will be terminated.
    #[arg(long, value_parser = timeout_parser())]
    pub timeout: Option<u64>,
}

/// The personalities and the subcommand each one becomes.
pub const PERSONALITIES: &[&str] = &["os-refresh-config", "dib-run-parts", "register-state-path"];

/// Rewrites `os-refresh-config ARGS` into `orc os-refresh-config ARGS` (bootc's callname trick).
pub fn rewrite_argv(mut args: Vec<OsString>) -> Vec<OsString> {
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .map(str::to_owned);
    if let Some(name) = name
        && PERSONALITIES.contains(&name.as_str())
    {
        args[0] = "orc".into();
        args.insert(1, name.into());
    }
    args
}

fn secs(s: u64) -> Option<Duration> {
    (s > 0).then(|| Duration::from_secs(s))
}

fn setup(cli: &Cli) -> Result<Setup> {
    let base = match std::env::var_os("OS_REFRESH_CONFIG_BASE_DIR") {
        Some(b) if b.is_empty() => {
            return Err(crate::error::invalid(
                "OS_REFRESH_CONFIG_BASE_DIR is set but empty (unset it for the default)",
            ));
        }
        b => b.map(PathBuf::from),
    };
    let regex = match std::env::var_os("RUN_PARTS_REGEX") {
        Some(r) => Some(r.into_string().map_err(|r| {
            crate::error::invalid(format!("RUN_PARTS_REGEX {r:?}: not valid UTF-8"))
        })?),
        None => None,
    };
    Setup::new(&cli.root, cli.config.as_deref(), base, regex)
}

/// Takes the configured lock for a writing command.
fn lock(setup: &Setup, wait: WaitArg, cmd: &str) -> Result<Lock> {
    let l = &setup.paths.lock_file;
    lock::acquire(setup.at(l), l, Wait::from_flag(wait.wait), cmd)
}

fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .ctx(|| "writing to stdout")
}

fn json_line<T: serde::Serialize>(v: &T) -> Result<String> {
    let mut s =
        serde_json::to_string_pretty(v).map_err(|e| Error::Failed(format!("writing JSON: {e}")))?;
    s.push('\n');
    Ok(s)
}

fn list(setup: &Setup, json: bool) -> Result<i32> {
    let plan = runner::plan(setup, &RunOptions::new(setup))?;
    if json {
        print(&json_line(&plan)?)?;
    } else {
        let esc = |p: &Path| logging::escape(&p.to_string_lossy()).into_owned();
        let mut out = format!("base dir {}\n", esc(&plan.base_dir));
        for f in &plan.env_files {
            out.push_str(&format!("env    {}\n", esc(f)));
        }
        for s in plan.steps.iter().chain(&plan.error_handlers) {
            let what = match &s.path {
                Some(p) => esc(p),
                None => format!("(built-in {:?})", s.kind).to_lowercase(),
            };
            out.push_str(&format!(
                "{:<15} {:<30} {what}\n",
                s.phase,
                logging::escape(&s.name)
            ));
        }
        for s in &plan.skipped {
            out.push_str(&format!("skip   {}: {}\n", esc(&s.path), s.reason));
        }
        for s in &plan.unsafe_entries {
            out.push_str(&format!("UNSAFE {}: {}\n", esc(&s.path), s.reason));
        }
        print(&out)?;
    }
    runner::refuse_unsafe(&plan)?;
    if !json
        && plan
            .steps
            .iter()
            .any(|s| s.kind == crate::plan::StepKind::Containers)
    {
        // The containers step's specs, read and checked as the step reads them.
        let (lines, errors) = crate::containers::plan_lines(setup)?;
        let bad: String = errors
            .iter()
            .map(|e| format!("INVALID {}\n", logging::escape(e)))
            .collect();
        print(&format!("{lines}{bad}"))?;
        if let Some(e) = errors.first() {
            return Err(Error::Invalid(e.clone()));
        }
    }
    Ok(0)
}

/// `orc status`'s exit code while a run holds the lock.
pub const STATUS_RUNNING: i32 = 4;

fn status(setup: &Setup, json: bool, wait: bool) -> Result<i32> {
    if wait {
        let l = &setup.paths.lock_file;
        lock::wait_free(setup.at(l), &l.path)?;
    }
    match report::last(
        &setup.root,
        &setup.paths.data_dir,
        &runner::lock_probe(setup),
    )? {
        None => {
            print(if json {
                "null\n"
            } else {
                "orc has never run here\n"
            })?;
            Ok(3)
        }
        Some(r) => {
            let running = if r.result == report::RunResult::Running {
                crate::progress::read(&setup.root, &setup.paths.data_dir, &r.run_id)?
            } else {
                None
            };
            print(&if json {
                json_line(&report::with_running(&r, running.as_ref())?)?
            } else {
                report::render(&r, running.as_ref())
            })?;
            Ok(match r.result {
                report::RunResult::Ok => 0,
                report::RunResult::Running => STATUS_RUNNING,
                _ => 1,
            })
        }
    }
}

fn compat(setup: &Setup, args: &CompatArgs) -> Result<i32> {
    if args.print_base {
        print(&format!(
            "{}\n",
            setup.shown(&setup.paths.base_dir).display()
        ))?;
        return Ok(0);
    }
    if args.print_phases {
        let names: Vec<&str> = setup
            .config
            .order(true)
            .phases()
            .iter()
            .map(|p| p.name())
            .collect();
        print(&format!("{}\n", names.join("\t")))?;
        return Ok(0);
    }
    let mut opts = RunOptions::new(setup);
    opts.timeout = args.timeout.and_then(secs);
    opts.compat = true;
    if let Some(l) = &args.lockfile {
        opts.lock_file = Loc::given(l);
    }
    runner::run(setup, &opts)
}

/// The step context for a built-in step run on its own, under `lock`.
fn standalone<T>(lock: &Lock, f: impl FnOnce(&StepCtx) -> T) -> T {
    let notifier = Notifier::from_env();
    let interrupted = signals::pending;
    f(&StepCtx {
        deadline: None,
        progress: &notifier,
        interrupted: &interrupted,
        live: lock.live(),
    })
}

fn state_cmd(setup: &Setup, cmd: &StateCmd) -> Result<i32> {
    match cmd {
        StateCmd::Register {
            leave_symlink,
            paths,
            wait,
        } => {
            crate::state::check_register(setup, paths)?;
            let _l = lock(setup, *wait, "state-register")?;
            crate::state::register(setup, paths, *leave_symlink)
        }
        StateCmd::Finalise { wait } => {
            let entries = crate::state::load(setup)?;
            let _l = lock(setup, *wait, "state-finalise")?;
            crate::state::finalise(setup, &entries)
        }
        StateCmd::Seed { wait } => {
            let entries = crate::state::load(setup)?;
            let l = lock(setup, *wait, "state-seed")?;
            let (reports, ok) = standalone(&l, |ctx| crate::state::seed(setup, &entries, ctx));
            for r in &reports {
                print(&format!("{}: {}\n", r.path, r.outcome.name()))?;
            }
            if let Some(sig) = signals::pending() {
                return Err(Error::Interrupted(sig));
            }
            Ok(i32::from(!ok))
        }
        StateCmd::List { json } => {
            let list = crate::state::status(setup)?;
            print(&if *json {
                json_line(&list)?
            } else {
                crate::state::render(&list)
            })?;
            Ok(0)
        }
    }
}

fn containers_cmd(setup: &Setup, cmd: &ContainersCmd) -> Result<i32> {
    match cmd {
        ContainersCmd::List { json } => {
            crate::runner::record_run_env(setup, &crate::procs::Live::none())?;
            let rows = crate::containers::rows(setup)?;
            print(&if *json {
                json_line(&rows)?
            } else {
                crate::containers::render(&rows)
            })?;
            crate::containers::refuse_invalid(&rows)?;
            Ok(0)
        }
        ContainersCmd::Plan { argv, json } => {
            crate::runner::record_run_env(setup, &crate::procs::Live::none())?;
            let (bin, steps) = crate::containers::plan_steps(setup, *argv)?;
            print(&if *json {
                json_line(&steps)?
            } else {
                crate::containers::planview::render(&steps, bin)
            })?;
            Ok(0)
        }
        ContainersCmd::Reconcile {
            names,
            force_recreate,
            wait,
        } => {
            let l = lock(setup, *wait, "containers-reconcile")?;
            crate::runner::record_run_env(setup, l.live())?;
            let mut specs = crate::containers::load(setup)?;
            let targets = crate::containers::targets::Targets {
                only: names.iter().cloned().collect(),
                force: force_recreate.iter().cloned().collect(),
            };
            if targets != Default::default() {
                let (all, bad) = specs
                    .as_ref()
                    .map_or((&[][..], &[][..]), |s| (&s.specs[..], &s.invalid[..]));
                targets.check(all, bad).map_err(crate::error::invalid)?;
            }
            if let Some(s) = &mut specs {
                s.targets = targets;
            }
            let c = standalone(&l, |ctx| {
                crate::containers::converge(setup, specs.as_ref(), ctx)
            })?;
            for r in &c.reports {
                print(&format!(
                    "{}: {} ({}){}\n",
                    r.name,
                    r.action,
                    r.reason,
                    r.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ))?;
            }
            Ok(i32::from(!c.ok))
        }
    }
}

fn dib_run_parts(setup: &Setup, list: bool, dir: &Path) -> Result<i32> {
    if !list {
        return runner::run_parts(setup, dir);
    }
    let loc = Loc::given(dir);
    let plan = runner::parts_plan(runner::opener(setup, &loc), &loc.path, &setup.rule)?;
    let shown = setup.shown(&loc);
    let mut out = String::new();
    for s in &plan.steps {
        out.push_str(&format!(
            "{}/{}\n",
            shown.display(),
            logging::escape(&s.name)
        ));
    }
    print(&out)?;
    Ok(0)
}

/// Shell completions for orc, or for a personality (its subcommand, under its own name).
fn completions(shell: clap_complete::Shell, name: Option<&str>) -> String {
    let cmd = Cli::command();
    let mut cmd = match name.and_then(|n| cmd.find_subcommand(n).cloned()) {
        Some(sub) => sub.bin_name(name.unwrap_or_default()),
        None => cmd,
    };
    let bin = name.unwrap_or("orc").to_string();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, bin, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn dispatch(cli: &Cli) -> Result<i32> {
    match &cli.command {
        Cmd::Man { dir } => return crate::manual::write(dir),
        Cmd::Completions { shell, name } => {
            print(&completions(*shell, name.as_deref()))?;
            return Ok(0);
        }
        Cmd::Relay { pairs, masks } => return crate::exec::relay(pairs, *masks),
        _ => {}
    }
    crate::privilege::check(&cli.command, nix::unistd::geteuid().is_root())?;
    signals::reset_inherited()?;
    signals::own_umask();
    crate::exec::become_subreaper();
    let setup = setup(cli)?;
    match &cli.command {
        Cmd::Run(a) => {
            let mut opts = RunOptions::new(&setup);
            opts.only.clone_from(&a.only);
            opts.skip_state = a.skip_state;
            opts.skip_containers = a.skip_containers;
            opts.timeout = secs(a.timeout);
            opts.script_timeout = secs(a.script_timeout);
            opts.wait = Wait::from_flag(a.wait.wait);
            opts.on_error = a.on_error;
            if let Some(l) = &a.lockfile {
                opts.lock_file = Loc::given(l);
            }
            runner::run(&setup, &opts)
        }
        Cmd::List { json } => list(&setup, *json),
        Cmd::Status { json, wait } => status(&setup, *json, *wait),
        Cmd::OsRefreshConfig(a) => compat(&setup, a),
        Cmd::DibRunParts { list, dir } => dib_run_parts(&setup, *list, dir),
        Cmd::RegisterStatePath {
            leave_symlink,
            path,
            wait,
        } => state_cmd(
            &setup,
            &StateCmd::Register {
                leave_symlink: *leave_symlink,
                paths: vec![path.clone()],
                // Parallel image-build elements register at once: wait, as upstream's
                // append never fails.
                wait: WaitArg {
                    wait: wait.wait.or(Some(None)),
                },
            },
        ),
        Cmd::State(c) => state_cmd(&setup, c),
        Cmd::Containers(c) => containers_cmd(&setup, c),
        Cmd::Man { .. } | Cmd::Completions { .. } | Cmd::Relay { .. } => unreachable!(),
    }
}

fn style_and_level(cli: &Cli) -> (Style, log::LevelFilter) {
    let counted = logging::level_from_counts(cli.verbose, cli.quiet);
    match &cli.command {
        Cmd::OsRefreshConfig(a) => (
            Style::Upstream("os-refresh-config"),
            match a.log_level {
                LogLevel::Error | LogLevel::Critical => log::LevelFilter::Error,
                LogLevel::Warn => log::LevelFilter::Warn,
                LogLevel::Info => log::LevelFilter::Info,
                LogLevel::Debug => log::LevelFilter::Debug,
            },
        ),
        Cmd::DibRunParts { .. } => (Style::Plain("dib-run-parts"), counted),
        Cmd::RegisterStatePath { .. } => (Style::Plain("register-state-path"), counted),
        _ => (Style::Plain("orc"), counted),
    }
}

/// Parses argv (after the personality rewrite), runs, and returns the exit code.
pub fn main() -> i32 {
    let args = rewrite_argv(std::env::args_os().collect());
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let (style, level) = style_and_level(&cli);
    logging::init(style, level);
    let code = match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            let compat_busy =
                matches!(e, Error::Busy(_)) && matches!(cli.command, Cmd::OsRefreshConfig(_));
            if !matches!(e, Error::Interrupted(_)) && !compat_busy {
                log::error!("{e}");
            }
            if matches!(cli.command, Cmd::Run(_) | Cmd::OsRefreshConfig(_)) {
                Notifier::from_env().done(false, &format!("failed: {e}"));
            }
            e.exit_code()
        }
    };
    crate::exec::hand_off_output();
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every argument of every command, hidden ones included, says what it does.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if a.get_help().is_none() && !matches!(id, "help" | "version") {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (no about)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        let mut cmd = Cli::command();
        cmd.build();
        walk(&cmd, "orc", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:#?}");
    }

    #[test]
    fn argv0_becomes_a_subcommand() {
        assert_eq!(
            rewrite_argv(os(&["/usr/bin/os-refresh-config", "--print-base"])),
            os(&["orc", "os-refresh-config", "--print-base"])
        );
        assert_eq!(
            rewrite_argv(os(&["dib-run-parts", "--list", "/d"])),
            os(&["orc", "dib-run-parts", "--list", "/d"])
        );
        assert_eq!(rewrite_argv(os(&["/x/orc", "run"])), os(&["/x/orc", "run"]));
        assert_eq!(
            rewrite_argv(os(&["orc-custom", "run"])),
            os(&["orc-custom", "run"])
        );
    }

    #[test]
    fn wait_flag_forms() {
        let parse = |v: &[&str]| match Cli::try_parse_from(os(v)).unwrap().command {
            Cmd::Run(a) => Wait::from_flag(a.wait.wait),
            _ => unreachable!(),
        };
        assert_eq!(parse(&["orc", "run"]), Wait::No);
        assert_eq!(parse(&["orc", "run", "--wait"]), Wait::Forever);
        assert_eq!(
            parse(&["orc", "run", "--wait=5"]),
            Wait::For(Duration::from_secs(5))
        );
    }

    #[test]
    fn compat_flags_parse_like_argparse() {
        let c = Cli::try_parse_from(os(&[
            "orc",
            "os-refresh-config",
            "--log-level",
            "DEBUG",
            "--timeout=3",
        ]))
        .unwrap();
        match c.command {
            Cmd::OsRefreshConfig(a) => {
                assert_eq!(a.log_level, LogLevel::Debug);
                assert_eq!(a.timeout, Some(3));
            }
            _ => unreachable!(),
        }
        assert!(
            Cli::try_parse_from(os(&["orc", "os-refresh-config", "--log-level", "debug"])).is_err()
        );
    }

    #[test]
    fn timeouts_are_range_checked() {
        for bad in [
            &["orc", "run", "--timeout=9300000000000000000"][..],
            &["orc", "run", "--script-timeout", "31536001"],
            &["orc", "run", "--wait=99999999999"],
            &["orc", "os-refresh-config", "--timeout", "-1"],
            &["orc", "state", "seed", "--wait=1e9"],
        ] {
            let e = Cli::try_parse_from(os(bad)).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
        assert!(Cli::try_parse_from(os(&["orc", "run", "--timeout", "31536000"])).is_ok());
    }
}
