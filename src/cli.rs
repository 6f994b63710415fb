//! The command line: one clap definition for `orc` and its personalities
//! (`os-refresh-config`, `dib-run-parts`, `register-state-path`), chosen by
//! rewriting argv[0] into a subcommand before parsing once.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::error::{Error, Result};
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
        #[arg(long)]
        json: bool,
    },
    /// The last run's report (exit 0 ok, 1 failed, 3 never ran).
    Status {
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
    Relay { pairs: Vec<String> },
    /// os-refresh-config compatible front end.
    #[command(name = "os-refresh-config", hide = true)]
    OsRefreshConfig(CompatArgs),
    /// dib-run-parts compatible: run (or list) one directory.
    #[command(name = "dib-run-parts", hide = true)]
    DibRunParts {
        /// Print the scripts that would run, in order.
        #[arg(long)]
        list: bool,
        dir: PathBuf,
    },
    /// use-ephemeral compatible: record a stateful path.
    #[command(name = "register-state-path", hide = true)]
    RegisterStatePath {
        #[arg(long)]
        leave_symlink: bool,
        path: PathBuf,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Write the man pages into DIR.
    #[command(hide = true)]
    Man { dir: PathBuf },
    /// Print shell completions.
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run only this phase (repeatable); the containers step then does not run.
    #[arg(long, value_enum, value_name = "PHASE")]
    pub only: Vec<Phase>,
    #[arg(long)]
    pub skip_containers: bool,
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
    #[arg(long, value_enum, default_value_t = OnError::Exit)]
    pub on_error: OnError,
}

#[derive(Debug, Subcommand)]
pub enum StateCmd {
    /// Record stateful paths (image build time).
    Register {
        #[arg(long)]
        leave_symlink: bool,
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
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContainersCmd {
    /// Converge the containers (the step alone).
    Reconcile {
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Desired vs actual, and the action each would get.
    List {
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
const PERSONALITIES: &[&str] = &["os-refresh-config", "dib-run-parts", "register-state-path"];

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
        .map_err(|e| Error::Failed(format!("writing to stdout: {e}")))
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

fn status(setup: &Setup, json: bool, wait: bool) -> Result<i32> {
    if wait {
        let l = &setup.paths.lock_file;
        lock::wait_free(setup.at(l), &l.path)?;
    }
    match report::last(&setup.root, &setup.paths.data_dir)? {
        None => {
            print(if json {
                "null\n"
            } else {
                "orc has never run here\n"
            })?;
            Ok(3)
        }
        Some(r) => {
            print(&if json {
                json_line(&r)?
            } else {
                report::render(&r)
            })?;
            Ok(i32::from(r.result != report::RunResult::Ok))
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
            .phase_order
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

/// The step context for a built-in step run on its own.
fn standalone<T>(f: impl FnOnce(&StepCtx) -> T) -> T {
    let notifier = Notifier::from_env();
    let interrupted = signals::pending;
    f(&StepCtx {
        deadline: None,
        progress: &notifier,
        interrupted: &interrupted,
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
            let _l = lock(setup, *wait, "state-seed")?;
            let (reports, ok) = standalone(|ctx| crate::state::seed(setup, &entries, ctx));
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
            let rows = crate::containers::rows(setup)?;
            print(&if *json {
                json_line(&rows)?
            } else {
                crate::containers::render(&rows)
            })?;
            crate::containers::refuse_invalid(&rows)?;
            Ok(0)
        }
        ContainersCmd::Reconcile { wait } => {
            let _l = lock(setup, *wait, "containers-reconcile")?;
            let specs = crate::containers::load(setup)?;
            let c = standalone(|ctx| crate::containers::converge(setup, specs.as_ref(), ctx))?;
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

fn relay(pairs: &[String]) -> Result<i32> {
    let parsed: Option<Vec<(i32, i32)>> = pairs
        .iter()
        .map(|p| {
            let (a, b) = p.split_once(':')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect();
    match parsed {
        Some(p) => Ok(crate::exec::relay(&p)),
        None => Err(crate::error::invalid("relay: pairs are FD:FD")),
    }
}

/// `orc man DIR`: a page per command and subcommand, and one per personality.
fn man_pages(dir: &Path) -> Result<i32> {
    let fail =
        |e: std::io::Error| Error::Failed(format!("writing man pages to {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(fail)?;
    clap_mangen::generate_to(Cli::command(), dir).map_err(fail)?;
    let cmd = Cli::command();
    for name in PERSONALITIES {
        let sub = cmd
            .find_subcommand(name)
            .expect("every personality is a subcommand")
            .clone()
            .name(*name)
            .bin_name(*name)
            .hide(false);
        let mut page = Vec::new();
        clap_mangen::Man::new(sub).render(&mut page).map_err(fail)?;
        std::fs::write(dir.join(format!("{name}.1")), page).map_err(fail)?;
    }
    Ok(0)
}

fn dispatch(cli: &Cli) -> Result<i32> {
    match &cli.command {
        Cmd::Man { dir } => return man_pages(dir),
        Cmd::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "orc", &mut out);
            print(&String::from_utf8_lossy(&out))?;
            return Ok(0);
        }
        Cmd::Relay { pairs } => return relay(pairs),
        _ => {}
    }
    signals::install()?;
    crate::exec::become_subreaper();
    let setup = setup(cli)?;
    match &cli.command {
        Cmd::Run(a) => {
            let mut opts = RunOptions::new(&setup);
            opts.only = a.only.clone();
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
                wait: *wait,
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
                Notifier::from_env().ready(&format!("failed: {e}"));
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
