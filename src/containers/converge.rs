//! The converge's effects, following the plan: teardown in reverse
//! dependency order (store_data, one batched `stop` per level, one batched
//! `rm` at the end; the old ones on a changed network parked instead, see
//! netswap.rs), the networks, then bring-up level by level (one batched
//! `start`, `run -d` per new container, readiness waits, hooks). A container
//! whose teardown fails keeps running, and its dependents already stopped are
//! started again: a failed converge leaves no service down that was up.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::args::{self, ArgCtx};
use super::engine::Engine;
use super::fields::Condition;
use super::health::{self, Want};
use super::network::{NetAction, NetKind, NetSpec};
use super::plan::{Action, Actual, Health, Kind};
use super::spec::Spec;
use super::{runtime_dir, volume_source};
use crate::error::{Error, Result};
use crate::exec::{self, CArgs, Job, Output, Program};
use crate::setup::Setup;
use crate::step::StepCtx;

/// Per-container (and per-network) outcomes gathered across the passes.
#[derive(Default)]
pub struct Tally {
    pub errors: HashMap<String, String>,
    pub times: HashMap<String, Duration>,
    pub interrupted: Option<i32>,
}

impl Tally {
    pub(super) fn fail(&mut self, name: &str, e: Error) {
        match e {
            Error::Interrupted(sig) => self.interrupted = Some(sig),
            e => {
                self.errors.entry(name.to_string()).or_insert(e.to_string());
            }
        }
    }

    fn absorb(&mut self, done: Vec<(String, Duration, Result<()>)>) {
        for (name, t, r) in done {
            *self.times.entry(name.clone()).or_default() += t;
            if let Err(e) = r {
                self.fail(&name, e);
            }
        }
    }
}

pub fn by_level(actions: &[Action]) -> Vec<Vec<&Action>> {
    let max = actions.iter().map(|a| a.level).max().unwrap_or(0);
    (0..=max)
        .map(|l| actions.iter().filter(|a| a.level == l).collect())
        .collect()
}

/// Whether the teardown stops `a`'s container before the networks change: a removal, or
/// a recreate on a network being recreated (`torn`).
pub(super) fn torn_down(a: &Action, torn: &HashSet<String>) -> bool {
    a.kind == Kind::Remove || (a.kind == Kind::Recreate && torn.contains(&a.name))
}

/// Runs `f` for each action on its own thread; (name, time, result) per action.
pub(super) fn parallel<'a, T: Send>(
    group: &[&'a Action],
    f: &(dyn Fn(&Action) -> Result<T> + Sync),
) -> Vec<(String, Duration, Result<T>)> {
    each(group, &|a| a.name.clone(), &|a| f(a))
}

/// Runs `f` for each name on its own thread; (name, time, result) per name.
fn parallel_names<T: Send>(
    names: &[String],
    f: &(dyn Fn(&str) -> Result<T> + Sync),
) -> Vec<(String, Duration, Result<T>)> {
    each(names, &|n| n.clone(), &|n| f(n))
}

/// Runs `f` for each item on its own thread, or inline where no thread can start (a pids
/// limit); (name, time, result) per item, a panicked thread told as an error.
fn each<I: Sync, T: Send>(
    items: &[I],
    name: &(dyn Fn(&I) -> String + Sync),
    f: &(dyn Fn(&I) -> Result<T> + Sync),
) -> Vec<(String, Duration, Result<T>)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .iter()
            .map(|i| {
                let task = crate::threads::start(scope, "orc-converge", move || {
                    let t = Instant::now();
                    let r = f(i);
                    (t.elapsed(), r)
                });
                (name(i), task)
            })
            .collect();
        handles
            .into_iter()
            .map(|(name, h)| match h.join() {
                Some((t, r)) => (name, t, r),
                None => {
                    let e = Error::Failed(format!("{name}: its thread panicked"));
                    (name, Duration::ZERO, Err(e))
                }
            })
            .collect()
    })
}

pub struct Converger<'a> {
    pub setup: &'a Setup,
    pub engine: &'a Engine,
    pub ctx: &'a StepCtx<'a>,
    pub specs: HashMap<String, &'a Spec>,
    pub networks: &'a [NetSpec],
    /// This scope's containers as listed.
    pub mine: HashMap<String, Actual>,
    pub scope: &'a str,
    pub infra: &'a str,
    /// The strongest condition a dependent sets on each container.
    pub needs: HashMap<String, Condition>,
    /// The image ID each spec's image resolves to.
    pub image_ids: HashMap<String, String>,
    /// Recreated containers on a network being recreated: torn down first (a network
    /// cannot be removed while a container is on it), then created anew.
    pub torn: HashSet<String>,
    /// The networks being recreated.
    pub changed_nets: HashSet<String>,
    /// The old containers parked while their network is recreated, by name.
    pub parked: std::sync::Mutex<HashMap<String, super::netswap::Parked>>,
}

/// The strongest `depends_on` condition set on each container.
pub fn needs(specs: &[Spec]) -> HashMap<String, Condition> {
    let mut out: HashMap<String, Condition> = HashMap::new();
    for s in specs {
        for d in &s.depends_on.0 {
            let e = out.entry(d.name.clone()).or_default();
            *e = (*e).max(d.condition);
        }
    }
    out
}

impl Converger<'_> {
    /// A batched engine call over `items` (name, id); when it fails for several, each is
    /// retried alone so the failure is pinned on the right container.
    pub(super) fn batch(
        &self,
        items: &[(String, String)],
        f: &dyn Fn(&[String]) -> Result<()>,
    ) -> Result<HashMap<String, Error>> {
        let ids: Vec<String> = items.iter().map(|(_, id)| id.clone()).collect();
        let mut failed = HashMap::new();
        match f(&ids) {
            Ok(()) => {}
            Err(Error::Interrupted(s)) => return Err(Error::Interrupted(s)),
            Err(e) if items.len() == 1 => {
                failed.insert(items[0].0.clone(), e);
            }
            Err(_) => {
                for (name, id) in items {
                    match f(std::slice::from_ref(id)) {
                        Ok(()) => {}
                        Err(Error::Interrupted(s)) => return Err(Error::Interrupted(s)),
                        Err(e) => {
                            failed.insert(name.clone(), e);
                        }
                    }
                }
            }
        }
        Ok(failed)
    }

    /// The `store_data` hook before a container is torn down (if it runs and has one).
    pub(super) fn store(&self, a: &Action) -> Result<()> {
        let old = &self.mine[&a.name];
        let store = if old.store_data.is_empty() {
            self.specs
                .get(&a.name)
                .map(|s| s.store_data().to_vec())
                .unwrap_or_default()
        } else {
            old.store_data.clone()
        };
        if store.is_empty() {
            return Ok(());
        }
        if !old.running {
            log::warn!(
                "{}: not running, so its store_data hook cannot run before {}",
                a.name,
                a.kind.name()
            );
            return Ok(());
        }
        self.ctx
            .progress
            .status(&format!("containers: storing data of {}", a.name));
        let what = format!("store_data of {}", a.name);
        self.engine
            .exec(&a.name, &store, &what)
            .map_err(|e| e.context("the old container is kept"))
    }

    pub(super) fn stop_timeout(&self, name: &str) -> u32 {
        self.mine[name]
            .stop_timeout
            .or(self.specs.get(name).and_then(|s| s.stop_timeout))
            .unwrap_or(10)
    }

    /// One graceful `stop` per distinct stop timeout for the running containers of a level.
    fn stop_level(&self, group: &[&Action], t: &mut Tally) -> Result<Vec<String>> {
        let mut by_timeout: HashMap<u32, Vec<(String, String)>> = HashMap::new();
        let mut stopped = Vec::new();
        for a in group {
            let old = &self.mine[&a.name];
            if old.running {
                by_timeout
                    .entry(self.stop_timeout(&a.name))
                    .or_default()
                    .push((a.name.clone(), old.id.clone()));
            } else {
                stopped.push(a.name.clone());
            }
        }
        let mut timeouts: Vec<_> = by_timeout.into_iter().collect();
        timeouts.sort();
        for (timeout, items) in timeouts {
            let names: Vec<&str> = items.iter().map(|(n, _)| n.as_str()).collect();
            self.ctx
                .progress
                .status(&format!("containers: stopping {}", names.join(", ")));
            let failed = self.batch(&items, &|ids| self.engine.stop(ids, timeout))?;
            for (name, _) in items {
                match failed.get(&name) {
                    Some(e) => t.fail(
                        &name,
                        Error::Failed(format!("{e}; the old container is kept")),
                    ),
                    None => stopped.push(name),
                }
            }
        }
        Ok(stopped)
    }

    /// The first container `name` depends on (transitively) that is in `failed`.
    fn failed_dependency(&self, name: &str, failed: &HashSet<String>) -> Option<String> {
        let mut todo: Vec<&str> = vec![name];
        let mut seen = HashSet::new();
        while let Some(n) = todo.pop() {
            let Some(s) = self.specs.get(n) else { continue };
            for d in s.depends_on.names() {
                if failed.contains(d) {
                    return Some(d.to_string());
                }
                if seen.insert(d) {
                    todo.push(d);
                }
            }
        }
        None
    }

    /// Teardown of every container being recreated or removed: per level in reverse, the
    /// store_data hooks (in parallel) then one batched stop; then the dependents of a failed
    /// teardown are started again, and everything else stopped goes in one `rm`.
    pub fn teardown(&self, actions: &[Action], t: &mut Tally) {
        if let Err(e) = self.teardown_inner(actions, t) {
            t.fail("", e);
        }
    }

    fn teardown_inner(&self, actions: &[Action], t: &mut Tally) -> Result<()> {
        let mut stopped: Vec<String> = Vec::new();
        for group in by_level(actions).into_iter().rev() {
            let group: Vec<&Action> = group
                .into_iter()
                .filter(|a| torn_down(a, &self.torn))
                .collect();
            if group.is_empty() {
                continue;
            }
            if let Some(sig) = (self.ctx.interrupted)() {
                return Err(Error::Interrupted(sig));
            }
            let started = Instant::now();
            let stored = parallel(&group, &|a| self.store(a));
            let ok: Vec<&Action> = group
                .iter()
                .zip(&stored)
                .filter(|(_, (_, _, r))| r.is_ok())
                .map(|(a, _)| *a)
                .collect();
            t.absorb(stored);
            stopped.extend(self.stop_level(&ok, t)?);
            for a in &group {
                *t.times.entry(a.name.clone()).or_default() += started.elapsed();
            }
        }
        let failed: HashSet<String> = t.errors.keys().cloned().collect();
        let (back, gone): (Vec<String>, Vec<String>) = stopped
            .into_iter()
            .partition(|n| self.failed_dependency(n, &failed).is_some());
        self.bring_back(&back, &failed, t)?;
        // The old ones of a changed network are parked, not removed, until the new run.
        let (torn, gone): (Vec<String>, Vec<String>) =
            gone.into_iter().partition(|n| self.torn.contains(n));
        for (name, _, r) in parallel_names(&torn, &|n| self.park(n)) {
            if let Err(e) = r {
                t.fail(&name, e);
            }
        }
        let items: Vec<(String, String)> = gone
            .iter()
            .map(|n| (n.clone(), self.mine[n].id.clone()))
            .collect();
        if !items.is_empty() {
            for (name, e) in self.batch(&items, &|ids| self.engine.rm(ids))? {
                // Running again (started by an earlier run killed mid-converge)?
                let r = match self.engine.inspect(&self.mine[&name].id) {
                    Ok(i) if i.status == "running" => self.stop_and_rm(&name),
                    _ => Err(e),
                };
                if let Err(e) = r {
                    t.fail(&name, e);
                }
            }
        }
        Ok(())
    }

    /// A container that runs again between its stop and its rm (started by the engine CLI
    /// of an earlier run that was killed mid-converge): stopped gracefully once more.
    fn stop_and_rm(&self, name: &str) -> Result<()> {
        let id = vec![
            self.mine
                .get(name)
                .map_or_else(|| name.to_string(), |a| a.id.clone()),
        ];
        let timeout = self.mine.get(name).map_or(10, |_| self.stop_timeout(name));
        self.engine.stop(&id, timeout)?;
        self.engine.rm(&id)
    }

    /// Starts again the old containers stopped for a teardown that cannot go on because a
    /// dependency's teardown failed.
    fn bring_back(&self, back: &[String], failed: &HashSet<String>, t: &mut Tally) -> Result<()> {
        if back.is_empty() {
            return Ok(());
        }
        let items: Vec<(String, String)> = back
            .iter()
            .map(|n| (n.clone(), self.mine[n].id.clone()))
            .collect();
        // Past the run's deadline too (a stop may have ended there).
        let engine = &self.engine.late();
        let not_started = self.batch(&items, &|ids| engine.start(ids))?;
        for n in back {
            let dep = self.failed_dependency(n, failed).unwrap_or_default();
            let what = match not_started.get(n) {
                None => "the old container runs again".to_string(),
                Some(e) => format!("starting the old container again failed: {e}"),
            };
            t.fail(
                n,
                Error::Failed(format!(
                    "kept: its dependency {dep} failed before its teardown; {what}"
                )),
            );
        }
        Ok(())
    }

    /// Removes, recreates and creates the networks; returns the ones that failed, by name.
    pub fn converge_networks(
        &self,
        actions: &[NetAction],
        t: &mut Tally,
    ) -> HashMap<String, String> {
        let mut failed = HashMap::new();
        for a in actions {
            let key = format!("network:{}", a.name);
            let r = match a.kind {
                NetKind::Keep => Ok(()),
                NetKind::Conflict => Err(Error::Failed(format!(
                    "network {}: {}; it was left untouched",
                    a.name, a.reason
                ))),
                NetKind::Remove => self.engine.network_rm(&a.name),
                NetKind::Create => self.create_network(a),
                NetKind::Recreate => self.recreate_network(a),
            };
            if let Err(e) = r {
                if matches!(e, Error::Interrupted(_)) {
                    t.fail(&key, e);
                    break;
                }
                failed.insert(a.name.clone(), e.to_string());
                t.fail(&key, e);
            }
        }
        failed
    }

    pub(super) fn create_network(&self, a: &NetAction) -> Result<()> {
        let n = self
            .networks
            .iter()
            .find(|n| n.name == a.name)
            .expect("declared");
        self.ctx
            .progress
            .status(&format!("containers: {} network {}", a.kind.name(), a.name));
        match self.engine.call(&args::network_args(n, self.scope)) {
            Ok(_) => Ok(()),
            Err(e @ Error::Interrupted(_)) => Err(e),
            // Ours were listed: one there now is someone else's.
            Err(_) if self.engine.network_exists(&a.name)? => Err(Error::Failed(format!(
                "network {}: the name is taken by a network outside scope {} (not orc's); it was left untouched",
                a.name, self.scope
            ))),
            Err(e) => Err(e.context(format!("creating network {}", a.name))),
        }
    }

    /// Bring-up, level by level: the containers whose dependencies failed are not started.
    pub fn bringup(
        &self,
        actions: &[Action],
        failed_nets: &HashMap<String, String>,
        t: &mut Tally,
    ) {
        for group in by_level(actions) {
            if t.interrupted.is_some() {
                return;
            }
            if let Some(sig) = (self.ctx.interrupted)() {
                t.interrupted = Some(sig);
                return;
            }
            let mut todo = Vec::new();
            for a in group {
                if matches!(a.kind, Kind::Remove | Kind::Conflict) || t.errors.contains_key(&a.name)
                {
                    continue;
                }
                match self.blocked(a, failed_nets, &t.errors) {
                    // A running container is left as it is.
                    Some(_) if a.kind == Kind::Keep => {}
                    Some(why) => t.fail(&a.name, Error::Failed(why)),
                    None => todo.push(a),
                }
            }
            self.start_level(&todo, t);
            let todo: Vec<&Action> = todo
                .into_iter()
                .filter(|a| !t.errors.contains_key(&a.name))
                .collect();
            let (swaps, rest): (Vec<&Action>, Vec<&Action>) = todo
                .into_iter()
                .partition(|a| a.kind == Kind::Recreate && !self.torn.contains(&a.name));
            let done = parallel(&rest, &|a| self.up(a));
            t.absorb(done);
            self.recreate_level(&swaps, t);
        }
    }

    fn blocked(
        &self,
        a: &Action,
        failed_nets: &HashMap<String, String>,
        errors: &HashMap<String, String>,
    ) -> Option<String> {
        let s = self.specs[&a.name];
        if let Some(d) = s.depends_on.names().find(|d| errors.contains_key(*d)) {
            let verb = match a.kind {
                Kind::Create => "created",
                Kind::Recreate => "recreated",
                _ => "started",
            };
            return Some(format!("not {verb}: its dependency {d} failed"));
        }
        s.networks.keys().find_map(|n| {
            failed_nets
                .get(n)
                .map(|e| format!("network {n} is not available: {e}"))
        })
    }

    /// One batched `start` for the stopped containers of a level.
    fn start_level(&self, todo: &[&Action], t: &mut Tally) {
        let items: Vec<(String, String)> = todo
            .iter()
            .filter(|a| a.kind == Kind::Start)
            .map(|a| (a.name.clone(), a.name.clone()))
            .collect();
        if items.is_empty() {
            return;
        }
        self.ctx.progress.status(&format!(
            "containers: starting {}",
            items
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        match self.batch(&items, &|ids| self.engine.start(ids)) {
            Ok(failed) => failed.into_iter().for_each(|(n, e)| t.fail(&n, e)),
            Err(e) => t.fail("", e),
        }
    }

    /// One container's bring-up after the batched start: a new one created (pre_create,
    /// `run -d`), a changed one recreated the new one first; then readiness and hooks.
    fn up(&self, a: &Action) -> Result<()> {
        let s = self.specs[&a.name];
        match a.kind {
            Kind::Create | Kind::Recreate => {
                self.ctx.progress.status(&format!(
                    "containers: {} {} ({})",
                    a.kind.name(),
                    a.name,
                    a.reason
                ));
                if a.kind == Kind::Recreate {
                    // Its parked old one waits aside until the new one passed its check.
                    super::recreate::mark_checking(self.setup, &s.name)?;
                }
                self.create(s)?;
            }
            _ => {}
        }
        if a.kind == Kind::Recreate {
            // On a changed network: it must stay up, else its parked old one comes back.
            self.check_new(a, s)?;
            return super::recreate::unmark_checking(self.setup, &s.name);
        }
        let known_healthy = a.kind == Kind::Keep
            && self
                .mine
                .get(&a.name)
                .is_some_and(|x| x.health == Health::Healthy);
        self.ready(a, s, known_healthy)
    }

    /// Healthy where it must be, restore_data (after a recreate), post_start (unless
    /// kept), completed where a dependent wants that.
    pub(super) fn ready(&self, a: &Action, s: &Spec, known_healthy: bool) -> Result<()> {
        let need = self.needs.get(&a.name).copied().unwrap_or_default();
        if (s.health().is_some() || need == Condition::ServiceHealthy) && !known_healthy {
            health::wait(self.engine, self.ctx, s, Want::Healthy)?;
        }
        if a.kind == Kind::Recreate
            && let Some(h) = &s.hooks.restore_data
        {
            self.engine
                .exec(&s.name, h, &format!("restore_data of {}", s.name))?;
        }
        if a.kind != Kind::Keep
            && let Some(h) = &s.hooks.post_start
        {
            self.engine
                .exec(&s.name, h, &format!("post_start of {}", s.name))?;
        }
        if need == Condition::ServiceCompletedSuccessfully {
            health::wait(self.engine, self.ctx, s, Want::Completed)?;
        }
        Ok(())
    }

    /// The arguments that create `s` as `name`, and pre_create run before (its image is
    /// present: resolved before the plan).
    pub(super) fn prepare(&self, s: &Spec, name: &str, detach: bool) -> Result<Vec<String>> {
        let rt = runtime_dir(self.setup, &s.name)?.real_path()?;
        if let Some(h) = &s.hooks.pre_create {
            self.host_hook(&s.name, &rt, "pre_create", h)?;
        }
        let sources = s
            .volumes
            .iter()
            .map(|v| volume_source(self.setup, &rt, &v.source))
            .collect::<Result<Vec<_>>>()?;
        let hash = s.hash(self.image_ids.get(&s.name).map_or("", String::as_str));
        let c = ArgCtx {
            kind: self.engine.kind,
            scope: self.scope,
            infra: self.infra,
            sources: &sources,
            prepared: &super::secrets::prepare(self.setup, s, &rt, true)?,
            name,
            hash: &hash,
        };
        Ok(args::run_args(s, &c, detach))
    }

    /// Joins the networks `create` could not give (docker on several networks).
    pub(super) fn connect(&self, s: &Spec, name: &str) -> Result<()> {
        for (net, opts) in args::later_networks(s, self.engine.kind) {
            self.engine.network_connect(&net, name, &opts)?;
        }
        Ok(())
    }

    /// pre_create → `run -d` (docker on several networks: create, connect, start).
    fn create(&self, s: &Spec) -> Result<()> {
        let single = args::single_call(s, self.engine.kind);
        let run = self.prepare(s, &s.name, single)?;
        match self.engine.call(&run) {
            Err(e @ Error::Interrupted(_)) => return Err(e),
            // Not listed a moment ago, there now: whose is it?
            Err(e) if self.engine.exists(&s.name)? => {
                if self.engine.scope_of(&s.name)?.as_deref() != Some(self.scope) {
                    return Err(self.name_taken(s));
                }
                if self.engine.inspect(&s.name)?.status == "created" {
                    // `run` made it, then could not start it (a port taken, ...).
                    self.engine.discard(&s.name)?;
                    return Err(e);
                }
                log::warn!(
                    "{}: a container of this scope appeared meanwhile (an earlier run killed mid-converge?); it is replaced",
                    s.name
                );
                let name = std::slice::from_ref(&s.name);
                self.engine.stop(name, s.stop_timeout.unwrap_or(10))?;
                self.engine.rm(name)?;
                self.engine.call(&run)?;
            }
            r => drop(r?),
        }
        if !single {
            self.connect(s, &s.name)?;
            self.engine.start(std::slice::from_ref(&s.name))?;
        }
        Ok(())
    }

    /// The engine's "name already in use", said plainly.
    fn name_taken(&self, s: &Spec) -> Error {
        Error::Failed(format!(
            "the name {} is taken by a container outside scope {} (not orc's, or another box's); it was left untouched",
            s.name, self.scope
        ))
    }

    /// A hook on the host (`pre_create`), with the container's name and runtime dir.
    fn host_hook(&self, name: &str, rt: &Path, what: &str, argv: &[String]) -> Result<()> {
        let program = exec::find_program(OsStr::new(&argv[0]))
            .ok_or_else(|| Error::Failed(format!("{what} of {name}: {} not found", argv[0])))?;
        let mut env = crate::envd::inherited();
        env.insert("ORC_CONTAINER".into(), name.into());
        env.insert("ORC_RUNTIME_DIR".into(), rt.into());
        env.insert("ORC_ROOT".into(), self.setup.root.path().into());
        let env = CArgs::env(&env);
        let args: Vec<OsString> = argv.iter().map(OsString::from).collect();
        let cargs = CArgs::new(&args);
        let job_name = format!("{what} of {name}");
        let job = Job {
            program: Program::Path(&program),
            argv: &cargs,
            env: &env,
            extra: &[],
            env_extra: None,
            name: &job_name,
            live: self.ctx.live,
            shielded: false,
        };
        let out =
            exec::run(&job, self.ctx.deadline, Output::Relay).map_err(|e| e.context(&job_name))?;
        if let Some(sig) = out.interrupted {
            return Err(Error::Interrupted(sig));
        }
        if out.exit.success() {
            return Ok(());
        }
        let shown = PathBuf::from(OsStr::from_bytes(program.as_bytes()));
        Err(Error::Failed(
            out.failure(&format!("{job_name} ({})", shown.display())),
        ))
    }
}
