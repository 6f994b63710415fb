//! Box containers: converge the box's own containers (those labelled
//! `orc.managed=true`) to the specs, recreating only what changed, storing and
//! restoring data through hooks, and never deleting a runtime dir.

pub mod engine;
pub mod plan;
pub mod spec;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::exec::{self, Signals, Stdout};
use crate::fsutil;
use crate::notify::Notifier;
use crate::report::{ContainerReport, StepResult};
use crate::root::Root;
use crate::runner::{BuiltinOutcome, Setup, StepCtx};
use engine::Engine;
use plan::{Action, Actual, Kind};
use spec::Spec;

const RUNTIME_SUBDIRS: [&str; 4] = ["data", "etc", "log", "run"];

fn runtime_dir(setup: &Setup, name: &str) -> PathBuf {
    setup.paths.data_dir.join("containers").join(name)
}

fn infra_file(setup: &Setup) -> PathBuf {
    setup.paths.data_dir.join("INFRA_VERSION")
}

/// The stored INFRA_VERSION; a missing file reads as `none`.
fn stored_infra(setup: &Setup) -> String {
    std::fs::read_to_string(infra_file(setup))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "none".into())
}

fn desired_infra(setup: &Setup) -> String {
    setup
        .config
        .containers
        .infra_version
        .clone()
        .unwrap_or_else(|| "none".into())
}

/// The specs, validated completely; `None` when this box has no containers at all.
pub fn load(setup: &Setup) -> Result<Option<Vec<Spec>>> {
    let specs = spec::load_dir(&setup.paths.specs_dir)?;
    if specs.is_none() && setup.config.containers.infra_version.is_none() {
        return Ok(None);
    }
    Ok(Some(specs.unwrap_or_default()))
}

/// `docker create` arguments for a spec (pure).
pub fn create_args(s: &Spec, infra: &str, runtime: &Path, root: &Root) -> Vec<String> {
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
    for v in &s.volumes {
        let src = if v.source.is_absolute() {
            root.join(&v.source)
        } else {
            runtime.join(&v.source)
        };
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
    signals: &'a Signals,
    notifier: &'a Notifier,
    deadline: Option<Instant>,
    specs: HashMap<String, Spec>,
    actual: HashMap<String, Actual>,
    infra: String,
}

impl Converger<'_> {
    /// Runs a hook (`inside` = `engine exec NAME`), relaying its output.
    fn hook(&self, name: &str, what: &str, argv: &[String], inside: bool) -> Result<()> {
        let cmd = if inside {
            let mut c = self.engine.command();
            c.args(["exec", name]).args(argv);
            c
        } else {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..])
                .env_remove("NOTIFY_SOCKET")
                .env("ORC_CONTAINER", name)
                .env("ORC_RUNTIME_DIR", runtime_dir(self.setup, name))
                .env("ORC_ROOT", self.setup.paths.root.path());
            c
        };
        let out = exec::run(cmd, self.deadline, Stdout::Relay, self.signals);
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
        let spec = self.specs.get(&a.name);
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
                self.notifier
                    .status(&format!("containers: storing data of {}", a.name));
                self.hook(&a.name, "store_data", &store, true)
                    .map_err(|e| e.context("the old container is kept"))?;
            }
        }
        let timeout = old
            .stop_timeout
            .or(spec.and_then(|s| s.stop_timeout))
            .unwrap_or(10);
        self.notifier
            .status(&format!("containers: stopping {}", a.name));
        self.engine
            .call(&["stop", "-t", &timeout.to_string(), &old.id])?;
        self.engine.remove(&old.id)?;
        Ok(())
    }

    /// Start, or pre_create → create → start → restore_data → post_start.
    fn bringup(&self, a: &Action) -> Result<()> {
        let s = &self.specs[&a.name];
        self.notifier.status(&format!(
            "containers: {} {} ({})",
            a.kind.name(),
            a.name,
            a.reason
        ));
        if a.kind == Kind::Start {
            self.engine.call(&["start", &s.name])?;
        } else {
            let rt = runtime_dir(self.setup, &s.name);
            for sub in RUNTIME_SUBDIRS {
                let d = rt.join(sub);
                std::fs::create_dir_all(&d)
                    .map_err(|e| Error::Failed(format!("creating {}: {e}", d.display())))?;
            }
            if let Some(archive) = &s.image_archive
                && !self.engine.image_present(&s.image)
            {
                let archive = self.setup.paths.root.join(archive);
                log::info!("{}: loading {} from {}", s.name, s.image, archive.display());
                self.engine
                    .call(&["load".as_ref(), "-i".as_ref(), archive.as_os_str()])?;
            }
            if !s.hooks.pre_create.is_empty() {
                self.hook(&s.name, "pre_create", &s.hooks.pre_create, false)?;
            }
            self.engine
                .call(&create_args(s, &self.infra, &rt, &self.setup.paths.root))?;
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

    fn interrupted(&self) -> Option<i32> {
        self.signals.pending()
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
pub fn converge(
    setup: &Setup,
    signals: &Signals,
    notifier: &Notifier,
    deadline: Option<Instant>,
) -> Result<Converged> {
    let Some(specs) = load(setup)? else {
        return Ok(Converged {
            ok: true,
            skipped: true,
            ..Converged::default()
        });
    };
    let levels =
        spec::levels(&specs).map_err(|(n, m)| crate::error::invalid(format!("{n}: {m}")))?;
    let engine = Engine::choose(setup.config.containers.engine);
    // Wall time waiting on the engine and hooks (a level's containers run in parallel).
    let mut engine_time = Duration::ZERO;
    let t = Instant::now();
    let actual = engine.list_managed()?;
    engine_time += t.elapsed();
    let (stored, infra) = (stored_infra(setup), desired_infra(setup));
    let actions = plan::plan(&specs, &levels, &actual, &stored, &infra);
    let c = Converger {
        setup,
        engine,
        signals,
        notifier,
        deadline,
        specs: specs.into_iter().map(|s| (s.name.clone(), s)).collect(),
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
        fsutil::write_atomic(&infra_file(setup), format!("{infra}\n").as_bytes(), 0o644)?;
    }
    Ok(Converged {
        reports,
        ok,
        engine_time,
        skipped: false,
    })
}

/// The built-in containers step between configure and migration.
pub fn converge_step(ctx: &StepCtx) -> BuiltinOutcome {
    match converge(ctx.setup, ctx.signals, ctx.notifier, ctx.deadline) {
        Ok(c) if c.skipped => BuiltinOutcome {
            result: Some(StepResult::Skipped),
            note: Some("no container specs".into()),
            ..BuiltinOutcome::default()
        },
        Ok(c) => {
            let changed = c.reports.iter().filter(|r| r.action != "keep").count();
            let failed = c.reports.iter().filter(|r| r.error.is_some()).count();
            BuiltinOutcome {
                result: Some(if c.ok {
                    StepResult::Ok
                } else {
                    StepResult::Failed
                }),
                note: Some(format!(
                    "{} containers, {changed} changed, {failed} failed",
                    c.reports.len()
                )),
                containers: c.reports,
                external: c.engine_time,
                ..BuiltinOutcome::default()
            }
        }
        Err(Error::Interrupted(_)) => BuiltinOutcome {
            result: Some(StepResult::Interrupted),
            note: Some("interrupted".into()),
            ..BuiltinOutcome::default()
        },
        Err(e) => BuiltinOutcome {
            result: Some(StepResult::Failed),
            note: Some(e.to_string()),
            ..BuiltinOutcome::default()
        },
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
    let specs = load(setup)?.unwrap_or_default();
    let levels =
        spec::levels(&specs).map_err(|(n, m)| crate::error::invalid(format!("{n}: {m}")))?;
    let engine = Engine::choose(setup.config.containers.engine);
    let actual = engine.list_managed()?;
    let names: HashSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    Ok(plan::plan(
        &specs,
        &levels,
        &actual,
        &stored_infra(setup),
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
            Path::new("/r/var/lib/orc/containers/db"),
            &Root::new("/r"),
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
