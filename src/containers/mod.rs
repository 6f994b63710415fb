//! Box containers: converge the box's own containers (those labelled
//! `orc.managed=true`) to the specs, recreating only what changed, storing and
//! restoring data through hooks, and never deleting a runtime dir.

pub mod engine;
pub mod plan;
pub mod spec;

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use serde::Serialize;

use crate::error::{Context, Error, Result};
use crate::exec::{self, CArgs, Job, Output, Program};
use crate::report::ContainerReport;
use crate::root::{Dir, Durable};
use crate::setup::Setup;
use crate::step::{Outcome, StepCtx, StepResult};
use engine::Engine;
use plan::{Action, Actual, Kind};
pub use spec::{Spec, Specs};

const RUNTIME_SUBDIRS: [&str; 4] = ["data", "etc", "log", "run"];

/// A container's runtime dir (with its subdirs), created beneath the root; never deleted.
fn runtime_dir(setup: &Setup, name: &str) -> Result<Dir> {
    let sys = setup.paths.data_dir.join("containers").join(name);
    for sub in RUNTIME_SUBDIRS {
        setup.root.create_dir_all(&sys.join(sub), 0o755)?;
    }
    setup.root.create_dir_all(&sys, 0o755)
}

fn infra_file(setup: &Setup) -> PathBuf {
    setup.paths.data_dir.join("INFRA_VERSION")
}

/// The stored INFRA_VERSION; a missing file reads as `none`.
fn stored_infra(setup: &Setup) -> Result<String> {
    let text = setup
        .root
        .read_input(&infra_file(setup))?
        .unwrap_or_default();
    let v = String::from_utf8_lossy(&text).trim().to_string();
    Ok(if v.is_empty() { "none".into() } else { v })
}

fn desired_infra(setup: &Setup) -> String {
    setup
        .config
        .containers
        .infra_version
        .as_ref()
        .map_or_else(|| "none".into(), |v| v.0.clone())
}

/// The specs, validated completely; `None` when this box has no containers at all (no
/// spec and no infra version): then no engine is called.
pub fn load(setup: &Setup) -> Result<Option<Specs>> {
    let specs = spec::load_dir(&setup.root, &setup.paths.specs_dir)?;
    if specs.is_none() && setup.config.containers.infra_version.is_none() {
        return Ok(None);
    }
    Ok(Some(specs.unwrap_or_else(|| Specs {
        specs: Vec::new(),
        levels: HashMap::new(),
        files: HashMap::new(),
    })))
}

/// A volume's source on the host: relative to the runtime dir, or a system path
/// resolved beneath the root (created as a directory when missing, as the engine would).
fn volume_source(setup: &Setup, runtime: &Path, source: &Path) -> Result<PathBuf> {
    if !source.is_absolute() {
        return Ok(runtime.join(source));
    }
    let fd = match setup.root.open_raw(source, OFlag::O_PATH) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => setup.root.create_dir_all(source, 0o755)?.into_fd(),
        Err(e) => return Err(e).ctx(|| format!("opening {}", setup.root.shown(source).display())),
    };
    Dir::from_fd(fd, setup.root.shown(source)).real_path()
}

/// `docker create` arguments for a spec (pure); `sources` are the volumes' host paths.
pub fn create_args(s: &Spec, infra: &str, sources: &[PathBuf]) -> Vec<String> {
    let mut a: Vec<String> = vec!["create".into(), "--name".into(), s.name.clone()];
    let mut label = |k: &str, v: &str| {
        a.push("--label".into());
        a.push(format!("{k}={v}"));
    };
    label(engine::MANAGED, "true");
    label(engine::INFRA, infra);
    label(engine::HASH, &s.hash());
    if !s.hooks.store_data.is_empty() {
        label(
            engine::STORE,
            &serde_json::to_string(&s.hooks.store_data).expect("strings"),
        );
    }
    if let Some(t) = s.stop_timeout {
        label(engine::STOP_TIMEOUT, &t.to_string());
    }
    for (k, v) in &s.labels {
        label(k, v);
    }
    a.extend(["--restart".into(), s.restart.flag().into()]);
    for (k, v) in &s.env {
        a.extend(["--env".into(), format!("{k}={v}")]);
    }
    for (v, src) in s.volumes.iter().zip(sources) {
        let ro = if v.read_only { ":ro" } else { "" };
        a.extend([
            "--volume".into(),
            format!("{}:{}{ro}", src.display(), v.target.display()),
        ]);
    }
    for p in &s.ports {
        a.extend(["--publish".into(), p.clone()]);
    }
    let mut opt = |flag: &str, v: &Option<String>| {
        if let Some(v) = v {
            a.extend([flag.to_string(), v.clone()]);
        }
    };
    opt("--network", &s.network);
    opt("--user", &s.user);
    opt("--hostname", &s.hostname);
    opt("--memory", &s.memory);
    if s.init {
        a.push("--init".into());
    }
    if let Some(t) = s.stop_timeout {
        a.extend(["--stop-timeout".into(), t.to_string()]);
    }
    let mut tail: Vec<String> = Vec::new();
    if let Some(ep) = &s.entrypoint {
        a.extend(["--entrypoint".into(), ep[0].clone()]);
        tail.extend(ep[1..].iter().cloned());
    }
    a.push(s.image.clone());
    a.extend(tail);
    a.extend(s.command.iter().flatten().cloned());
    a
}

struct Converger<'a> {
    setup: &'a Setup,
    engine: Engine,
    ctx: &'a StepCtx<'a>,
    specs: HashMap<String, &'a Spec>,
    actual: HashMap<String, Actual>,
    infra: String,
}

impl Converger<'_> {
    /// Runs a hook (`inside` = `engine exec NAME`), relaying its output.
    fn hook(&self, name: &str, what: &str, argv: &[String], inside: bool) -> Result<()> {
        let (program, args, env) = if inside {
            let (p, a) = self.engine.exec_argv(name, argv)?;
            (p, a, None)
        } else {
            let p = exec::find_program(OsStr::new(&argv[0]))
                .map(|c| PathBuf::from(OsString::from(std::ffi::OsStr::from_bytes(c.as_bytes()))))
                .ok_or_else(|| Error::Failed(format!("{what} of {name}: {} not found", argv[0])))?;
            let rt = runtime_dir(self.setup, name)?.real_path()?;
            let mut env = crate::envd::inherited();
            env.insert("ORC_CONTAINER".into(), name.into());
            env.insert("ORC_RUNTIME_DIR".into(), rt.into());
            env.insert("ORC_ROOT".into(), self.setup.root.path().into());
            let env = CArgs::env(
                env.iter()
                    .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
                    .collect::<Vec<_>>(),
            );
            (p, argv.iter().map(OsString::from).collect(), Some(env))
        };
        let exe = std::ffi::CString::new(program.as_os_str().as_bytes())
            .map_err(|_| Error::Failed(format!("{}: NUL in path", program.display())))?;
        let cargs = CArgs::new(&args);
        let job_name = format!("{what} of {name}");
        let job = Job {
            program: Program::Path(&exe),
            argv: &cargs,
            env: env.as_ref().unwrap_or(self.engine.env()),
            extra: &[],
            env_extra: None,
            name: &job_name,
        };
        let out = exec::run(&job, self.ctx.deadline, Output::Relay, &mut |_| {});
        let out = out.map_err(|e| e.context(format!("{what} of {name}")))?;
        if let Some(sig) = out.interrupted {
            return Err(Error::Interrupted(sig));
        }
        if out.exit.success() {
            return Ok(());
        }
        let tail = String::from_utf8_lossy(&out.tail);
        let last = tail
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        Err(Error::Failed(format!(
            "{what} of {name} {} (exit {}){}",
            if out.timed_out { "timed out" } else { "failed" },
            out.exit.shell_code(),
            if last.is_empty() {
                String::new()
            } else {
                format!(": {last}")
            }
        )))
    }

    /// store_data → graceful stop → rm, for a recreation or a removal.
    fn teardown(&self, a: &Action) -> Result<()> {
        let old = &self.actual[&a.name];
        let spec = self.specs.get(&a.name).copied();
        let store = if old.store_data.is_empty() {
            spec.map(|s| s.hooks.store_data.clone()).unwrap_or_default()
        } else {
            old.store_data.clone()
        };
        if !store.is_empty() {
            if !old.running {
                log::warn!(
                    "{}: not running, so its store_data hook cannot run before {}",
                    a.name,
                    a.kind.name()
                );
            } else {
                self.ctx
                    .progress
                    .status(&format!("containers: storing data of {}", a.name));
                self.hook(&a.name, "store_data", &store, true)
                    .map_err(|e| e.context("the old container is kept"))?;
            }
        }
        let timeout = old
            .stop_timeout
            .or(spec.and_then(|s| s.stop_timeout))
            .unwrap_or(10);
        self.ctx
            .progress
            .status(&format!("containers: stopping {}", a.name));
        self.engine
            .call(&["stop", "-t", &timeout.to_string(), &old.id])?;
        self.engine.remove(&old.id)?;
        Ok(())
    }

    /// Start, or pre_create → create → start → restore_data → post_start.
    fn bringup(&self, a: &Action) -> Result<()> {
        let s = self.specs[&a.name];
        self.ctx.progress.status(&format!(
            "containers: {} {} ({})",
            a.kind.name(),
            a.name,
            a.reason
        ));
        if a.kind == Kind::Start {
            self.engine.call(&["start", &s.name])?;
        } else {
            let rt = runtime_dir(self.setup, &s.name)?.real_path()?;
            if let Some(archive) = &s.image_archive
                && !self.engine.image_present(&s.image)
            {
                self.load_archive(s, archive)?;
            }
            if !s.hooks.pre_create.is_empty() {
                self.hook(&s.name, "pre_create", &s.hooks.pre_create, false)?;
            }
            let sources = s
                .volumes
                .iter()
                .map(|v| volume_source(self.setup, &rt, &v.source))
                .collect::<Result<Vec<_>>>()?;
            self.engine.call(&create_args(s, &self.infra, &sources))?;
            self.engine.call(&["start", &s.name])?;
            if a.kind == Kind::Recreate && !s.hooks.restore_data.is_empty() {
                self.hook(&s.name, "restore_data", &s.hooks.restore_data, true)?;
            }
        }
        if !s.hooks.post_start.is_empty() {
            self.hook(&s.name, "post_start", &s.hooks.post_start, true)?;
        }
        Ok(())
    }

    /// `engine load` of an image archive, read through the root handle (given as fd 3).
    fn load_archive(&self, s: &Spec, archive: &Path) -> Result<()> {
        let root = &self.setup.root;
        let shown = root.shown(archive);
        log::info!("{}: loading {} from {}", s.name, s.image, shown.display());
        let fd = root
            .open_raw(
                archive,
                OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
            )
            .ctx(|| format!("opening {}", shown.display()))?;
        let st = nix::sys::stat::fstat(&fd).ctx(|| format!("reading {}", shown.display()))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(Error::Failed(format!(
                "{}: not a regular file",
                shown.display()
            )));
        }
        self.engine
            .call_with(&["load", "-i", "/dev/fd/3"], &[fd.as_fd()])?;
        Ok(())
    }

    fn interrupted(&self) -> Option<i32> {
        (self.ctx.interrupted)()
    }
}

/// What a converge did.
#[derive(Debug, Default)]
pub struct Converged {
    pub reports: Vec<ContainerReport>,
    pub ok: bool,
    pub engine_time: Duration,
    pub skipped: bool,
}

/// Per-container outcomes gathered across the teardown and bring-up passes.
#[derive(Default)]
struct Tally {
    errors: HashMap<String, String>,
    times: HashMap<String, Duration>,
    interrupted: Option<i32>,
}

impl Tally {
    fn absorb(&mut self, done: Vec<(String, Duration, Result<()>)>) {
        for (name, t, r) in done {
            *self.times.entry(name.clone()).or_default() += t;
            match r {
                Err(Error::Interrupted(sig)) => self.interrupted = Some(sig),
                Err(e) => {
                    self.errors.insert(name, e.to_string());
                }
                Ok(()) => {}
            }
        }
    }
}

fn by_level(actions: &[Action]) -> Vec<Vec<&Action>> {
    let max = actions.iter().map(|a| a.level).max().unwrap_or(0);
    (0..=max)
        .map(|l| actions.iter().filter(|a| a.level == l).collect())
        .collect()
}

/// Converges the containers. Errors are per container (in the reports) unless the engine
/// cannot even be listed.
pub fn converge(setup: &Setup, specs: Option<&Specs>, ctx: &StepCtx) -> Result<Converged> {
    let Some(Specs { specs, levels, .. }) = specs else {
        return Ok(Converged {
            ok: true,
            skipped: true,
            ..Converged::default()
        });
    };
    let mut engine = Engine::choose(setup.config.containers.engine);
    engine.deadline = ctx.deadline;
    // Wall time waiting on the engine and hooks (a level's containers run in parallel).
    let mut engine_time = Duration::ZERO;
    let t = Instant::now();
    let actual = engine.list_managed()?;
    engine_time += t.elapsed();
    let (stored, infra) = (stored_infra(setup)?, desired_infra(setup));
    let actions = plan::plan(specs, levels, &actual, &stored, &infra);
    let c = Converger {
        setup,
        engine,
        ctx,
        specs: specs.iter().map(|s| (s.name.clone(), s)).collect(),
        actual: actual.into_iter().map(|a| (a.name.clone(), a)).collect(),
        infra: infra.clone(),
    };
    let mut tally = Tally::default();
    let run_level = |group: Vec<&Action>,
                     f: &(dyn Fn(&Action) -> Result<()> + Sync)|
     -> Vec<(String, Duration, Result<()>)> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = group
                .into_iter()
                .map(|a| {
                    scope.spawn(move || {
                        let t = Instant::now();
                        let r = f(a);
                        (a.name.clone(), t.elapsed(), r)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panics"))
                .collect()
        })
    };
    for group in by_level(&actions).into_iter().rev() {
        let group: Vec<&Action> = group
            .into_iter()
            .filter(|a| matches!(a.kind, Kind::Recreate | Kind::Remove))
            .collect();
        if group.is_empty() {
            continue;
        }
        if let Some(sig) = c.interrupted() {
            tally.interrupted = Some(sig);
            break;
        }
        let t = Instant::now();
        let done = run_level(group, &|a| c.teardown(a));
        engine_time += t.elapsed();
        tally.absorb(done);
    }
    let deps_failed = |a: &Action, errors: &HashMap<String, String>| -> Option<String> {
        c.specs[&a.name]
            .depends_on
            .iter()
            .find(|d| errors.contains_key(*d))
            .cloned()
    };
    for group in by_level(&actions) {
        if tally.interrupted.is_some() {
            break;
        }
        if let Some(sig) = c.interrupted() {
            tally.interrupted = Some(sig);
            break;
        }
        let mut todo = Vec::new();
        for a in group {
            if !matches!(a.kind, Kind::Create | Kind::Recreate | Kind::Start)
                || tally.errors.contains_key(&a.name)
            {
                continue;
            }
            match deps_failed(a, &tally.errors) {
                Some(d) => {
                    tally.errors.insert(
                        a.name.clone(),
                        format!("not {}d: its dependency {d} failed", a.kind.name()),
                    );
                }
                None => todo.push(a),
            }
        }
        let t = Instant::now();
        let done = run_level(todo, &|a| c.bringup(a));
        engine_time += t.elapsed();
        tally.absorb(done);
    }
    if let Some(sig) = tally.interrupted {
        return Err(Error::Interrupted(sig));
    }
    let Tally { errors, times, .. } = tally;
    let reports: Vec<ContainerReport> = actions
        .iter()
        .map(|a| {
            let error = errors.get(&a.name).cloned();
            match &error {
                Some(e) => log::error!(
                    "container {}: {} ({}) failed: {e}",
                    a.name,
                    a.kind.name(),
                    a.reason
                ),
                None if a.kind != Kind::Keep => {
                    log::info!("container {}: {} ({})", a.name, a.kind.name(), a.reason)
                }
                None => log::debug!("container {}: up to date", a.name),
            }
            ContainerReport {
                name: a.name.clone(),
                action: a.kind.name().into(),
                reason: a.reason.clone(),
                duration_ms: times.get(&a.name).map_or(0.0, |t| crate::time::ms(*t)),
                error,
            }
        })
        .collect();
    let ok = errors.is_empty();
    if ok && stored != infra {
        setup.root.write_file(
            &infra_file(setup),
            format!("{infra}\n").as_bytes(),
            0o644,
            Durable::Full,
        )?;
    }
    Ok(Converged {
        reports,
        ok,
        engine_time,
        skipped: false,
    })
}

/// The built-in containers step between configure and migration.
pub fn converge_step(
    setup: &Setup,
    specs: Option<&Specs>,
    ctx: &StepCtx,
) -> Outcome<Vec<ContainerReport>> {
    let outcome = |result, note: String| Outcome {
        result,
        note: Some(note),
        external: Duration::ZERO,
        detail: Vec::new(),
    };
    match converge(setup, specs, ctx) {
        Ok(c) if c.skipped => outcome(StepResult::Skipped, "no container specs".into()),
        Ok(c) => {
            let changed = c.reports.iter().filter(|r| r.action != "keep").count();
            let failed = c.reports.iter().filter(|r| r.error.is_some()).count();
            Outcome {
                result: if c.ok {
                    StepResult::Ok
                } else {
                    StepResult::Failed
                },
                note: Some(format!(
                    "{} containers, {changed} changed, {failed} failed",
                    c.reports.len()
                )),
                external: c.engine_time,
                detail: c.reports,
            }
        }
        Err(Error::Interrupted(_)) => outcome(StepResult::Interrupted, "interrupted".into()),
        Err(e) => outcome(ctx.stopped_result(), e.to_string()),
    }
}

/// Desired vs actual, for `orc containers list`.
#[derive(Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub in_specs: bool,
    /// `running`, `stopped` or `missing`.
    pub actual: &'static str,
    pub action: &'static str,
    pub reason: String,
}

pub fn rows(setup: &Setup) -> Result<Vec<Row>> {
    let Some(Specs { specs, levels, .. }) = load(setup)? else {
        return Ok(Vec::new());
    };
    let engine = Engine::choose(setup.config.containers.engine);
    let actual = engine.list_managed()?;
    let names: HashSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    Ok(plan::plan(
        &specs,
        &levels,
        &actual,
        &stored_infra(setup)?,
        &desired_infra(setup),
    )
    .into_iter()
    .map(|a| Row {
        in_specs: names.contains(a.name.as_str()),
        actual: match actual.iter().find(|x| x.name == a.name) {
            Some(x) if x.running => "running",
            Some(_) => "stopped",
            None => "missing",
        },
        action: a.kind.name(),
        reason: a.reason,
        name: a.name,
    })
    .collect())
}

pub fn render(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<24} {:>6} {:>8} {:>9}  reason\n",
        "name", "spec", "actual", "action"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<24} {:>6} {:>8} {:>9}  {}\n",
            r.name,
            if r.in_specs { "yes" } else { "no" },
            r.actual,
            r.action,
            r.reason
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_args_carry_labels_and_options() {
        let s: Spec = serde_json::from_value(serde_json::json!({
            "name": "db", "image": "busybox:1", "command": ["sleep", "1d"],
            "entrypoint": ["/bin/sh", "-c"], "env": {"B": "2", "A": "1"},
            "volumes": [{"source": "data", "target": "/data"}, {"source": "/srv/x", "target": "/x", "read_only": true}],
            "ports": ["8080:80"], "network": "host", "labels": {"app": "db"}, "user": "1000",
            "hostname": "db1", "memory": "64m", "init": true, "stop_timeout": 5,
            "hooks": {"store_data": ["sh", "-c", "dump > /data/dump"]}
        }))
        .unwrap();
        let a = create_args(
            &s,
            "7",
            &[
                "/r/var/lib/orc/containers/db/data".into(),
                "/r/srv/x".into(),
            ],
        );
        let line = a.join(" ");
        for want in [
            "create --name db --label orc.managed=true --label orc.infra-version=7",
            &format!("--label orc.spec-hash={}", s.hash()),
            r#"--label orc.store-data=["sh","-c","dump > /data/dump"]"#,
            "--label orc.stop-timeout=5 --label app=db --restart unless-stopped",
            "--env A=1 --env B=2",
            "--volume /r/var/lib/orc/containers/db/data:/data --volume /r/srv/x:/x:ro",
            "--publish 8080:80 --network host --user 1000 --hostname db1 --memory 64m --init --stop-timeout 5",
            "--entrypoint /bin/sh busybox:1 -c sleep 1d",
        ] {
            assert!(line.contains(want), "missing {want:?} in {line}");
        }
        assert!(line.ends_with("busybox:1 -c sleep 1d"));
    }
}
