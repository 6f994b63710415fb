//! A converge walked through without running it: every engine call it would make,
//! in its order (image loads and pulls, what a killed run left, store_data hooks,
//! stops, removals, networks, creates under the temporary name, connects, renames,
//! starts, restore_data and post_start hooks), and its waits and host hooks as what
//! they are. Built from the same plan and the same argument builders
//! ([`super::args`]) the converge uses; read-only (`orc containers plan --argv`).

use std::collections::{HashMap, HashSet};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use serde::Serialize;

use super::args::{self, ArgCtx};
use super::converge::{by_level, needs, torn_down};
use super::engine::Engine;
use super::fields::Condition;
use super::network::NetKind;
use super::plan::{Action, Actual, Health, Kind};
use super::recreate::{Resolve, aside_name, temp_name};
use super::spec::{Restart, Spec};
use super::{Planned, images, secrets};
use crate::error::Result;
use crate::root::Dir;
use crate::setup::Setup;

/// One thing a converge does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Call {
    /// An engine call (without the engine's name).
    Engine(Vec<String>),
    /// A wait: until the container is `healthy`, has `completed`, or (just started) is
    /// still `up` a moment later. The engine is asked by `inspect`.
    Wait {
        wait: &'static str,
        container: String,
    },
    /// A hook run on the host.
    Host {
        host: &'static str,
        argv: Vec<String>,
    },
}

/// A system path's real host path when it exists, else where it would be.
fn host_path(setup: &Setup, sys: &Path) -> PathBuf {
    match setup.root.open_raw(sys, OFlag::O_PATH) {
        Ok(fd) => Dir::from_fd(fd, sys.to_path_buf())
            .real_path()
            .unwrap_or_else(|_| sys.to_path_buf()),
        Err(_) => {
            let root = std::fs::read_link(format!("/proc/self/fd/{}", setup.root.fd().as_raw_fd()))
                .unwrap_or_else(|_| setup.root.path().to_path_buf());
            root.join(sys.strip_prefix("/").unwrap_or(sys))
        }
    }
}

struct Sim<'a> {
    setup: &'a Setup,
    p: &'a Planned,
    engine: &'a Engine,
    specs: HashMap<&'a str, &'a Spec>,
    mine: HashMap<&'a str, &'a Actual>,
    needs: HashMap<String, Condition>,
    torn: HashSet<String>,
    /// The networks being recreated.
    changed: HashSet<String>,
    out: Vec<(String, Call)>,
}

/// Every call of a converge of `p` now, each with whose it is (a container's name,
/// `network:NAME`, or the first of a batch).
pub(super) fn calls(setup: &Setup, p: &Planned, engine: &Engine) -> Result<Vec<(String, Call)>> {
    let (changed, torn) = p.changed_networks();
    let specs = &p.specs.specs;
    let mut sim = Sim {
        setup,
        p,
        engine,
        specs: specs.iter().map(|s| (s.name.as_str(), s)).collect(),
        mine: p
            .actual
            .iter()
            .filter(|a| super::plan::is_mine(a, &p.scope, specs))
            .map(|a| (a.name.as_str(), a))
            .collect(),
        needs: needs(specs),
        torn,
        changed,
        out: Vec::new(),
    };
    sim.images();
    sim.leftovers();
    sim.teardown();
    for a in p.net_actions.iter().filter(|a| a.kind != NetKind::Remove) {
        sim.network(&a.name, a.kind);
    }
    for group in by_level(&p.actions) {
        sim.level(&group)?;
    }
    sim.remove_parked();
    for a in p.net_actions.iter().filter(|a| a.kind == NetKind::Remove) {
        sim.network(&a.name, a.kind);
    }
    Ok(sim.out)
}

impl Sim<'_> {
    fn push(&mut self, owner: &str, call: Call) {
        self.out.push((owner.to_string(), call));
    }

    fn engine_call(&mut self, owner: &str, argv: Vec<String>) {
        self.push(owner, Call::Engine(argv));
    }

    /// The archives loaded and the images pulled before anything else.
    fn images(&mut self) {
        let specs = &self.p.specs.specs;
        let known: HashMap<String, Option<String>> = specs
            .iter()
            .map(|s| (s.image.clone(), self.p.image_ids.get(&s.name).cloned()))
            .collect();
        for archive in images::loads(self.setup, specs, &known) {
            let owner = specs
                .iter()
                .find(|s| s.image_archive.as_deref() == Some(archive.as_path()))
                .map_or(String::new(), |s| s.name.clone());
            self.engine_call(&owner, args::load());
        }
        let present = |i: &str| matches!(known.get(i), Some(Some(_)));
        for (image, names) in images::pulls(specs, &present).0 {
            self.engine_call(&names[0], args::pull(&image));
        }
    }

    /// What an interrupted run left, resolved as the converge resolves it.
    fn leftovers(&mut self) {
        let p = self.p;
        for r in &p.leftovers {
            match r {
                Resolve::Discard { name, id } => self.engine_call(name, args::discard(id)),
                Resolve::Remove { name, id } => {
                    self.engine_call(name, args::rm(std::slice::from_ref(id)));
                }
                Resolve::Restore { name, id, unproven } => {
                    if let Some(new) = unproven {
                        self.engine_call(name, args::discard(new));
                    }
                    self.engine_call(name, args::rename(id, name));
                    self.engine_call(name, args::start(std::slice::from_ref(name)));
                }
            }
        }
    }

    fn stop_timeout(&self, name: &str) -> u32 {
        self.mine
            .get(name)
            .and_then(|a| a.stop_timeout)
            .or(self.specs.get(name).and_then(|s| s.stop_timeout))
            .unwrap_or(10)
    }

    /// The store_data hook before an old container goes (when it runs and has one).
    fn store(&mut self, name: &str) {
        let Some(old) = self.mine.get(name) else {
            return;
        };
        let store = if old.store_data.is_empty() {
            self.specs
                .get(name)
                .map(|s| s.store_data().to_vec())
                .unwrap_or_default()
        } else {
            old.store_data.clone()
        };
        if !store.is_empty() && old.running {
            self.engine_call(name, args::exec(name, &store));
        }
    }

    /// Removals (and recreates on a recreated network): per level in reverse, the
    /// store_data hooks, one stop per distinct timeout; then one `rm`.
    fn teardown(&mut self) {
        let mut stopped: Vec<String> = Vec::new();
        for group in by_level(&self.p.actions).into_iter().rev() {
            let group: Vec<&Action> = group
                .into_iter()
                .filter(|a| torn_down(a, &self.torn))
                .collect();
            for a in &group {
                self.store(&a.name);
            }
            let mut by_timeout: Vec<(u32, Vec<&Action>)> = Vec::new();
            for a in &group {
                if !self.mine.get(a.name.as_str()).is_some_and(|o| o.running) {
                    stopped.push(a.name.clone());
                    continue;
                }
                let t = self.stop_timeout(&a.name);
                match by_timeout.iter_mut().find(|(x, _)| *x == t) {
                    Some((_, v)) => v.push(a),
                    None => by_timeout.push((t, vec![a])),
                }
            }
            by_timeout.sort_by_key(|(t, _)| *t);
            for (t, items) in by_timeout {
                let ids: Vec<String> = items.iter().map(|a| self.id(&a.name)).collect();
                self.engine_call(&items[0].name, args::stop(&ids, t));
                stopped.extend(items.iter().map(|a| a.name.clone()));
            }
        }
        let (torn, gone): (Vec<String>, Vec<String>) =
            stopped.into_iter().partition(|n| self.torn.contains(n));
        for name in &torn {
            self.park(name);
        }
        if let Some(first) = gone.first() {
            let ids: Vec<String> = gone.iter().map(|n| self.id(n)).collect();
            self.engine_call(&first.clone(), args::rm(&ids));
        }
    }

    /// An old container on a changed network parked (see netswap.rs): set aside and
    /// disconnected from the changed networks it is on.
    fn park(&mut self, name: &str) {
        let id = self.id(name);
        self.engine_call(name, args::rename(&id, &aside_name(name)));
        let on: Vec<String> = self
            .mine
            .get(name)
            .map_or_else(Vec::new, |a| a.networks.clone());
        let nets: Vec<String> = self.specs[name]
            .networks
            .keys()
            .filter(|n| self.changed.contains(*n) && on.contains(n))
            .cloned()
            .collect();
        for net in nets {
            self.engine_call(name, args::network_disconnect(&net, &id));
        }
    }

    /// The parked old containers removed (one `rm`) once their new ones came up.
    fn remove_parked(&mut self) {
        let parked: Vec<&Action> = self
            .p
            .actions
            .iter()
            .filter(|a| a.kind == Kind::Recreate && self.torn.contains(&a.name))
            .collect();
        if let Some(first) = parked.first() {
            let ids: Vec<String> = parked.iter().map(|a| self.id(&a.name)).collect();
            self.engine_call(&first.name.clone(), args::rm(&ids));
        }
    }

    fn id(&self, name: &str) -> String {
        self.mine
            .get(name)
            .map_or_else(|| name.to_string(), |a| a.id.clone())
    }

    fn network(&mut self, name: &str, kind: NetKind) {
        let owner = format!("network:{name}");
        if matches!(kind, NetKind::Remove | NetKind::Recreate) {
            self.engine_call(&owner, args::network_rm(name));
        }
        if matches!(kind, NetKind::Create | NetKind::Recreate)
            && let Some(n) = self.p.specs.networks.iter().find(|n| n.name == name)
        {
            self.engine_call(&owner, args::network_args(n, &self.p.scope));
        }
    }

    /// A level's bring-up: one `start` for the stopped ones, each new one created, each
    /// changed one recreated the new one first, then the old ones removed.
    fn level(&mut self, group: &[&Action]) -> Result<()> {
        let todo: Vec<&Action> = group
            .iter()
            .copied()
            .filter(|a| !matches!(a.kind, Kind::Remove | Kind::Conflict))
            .collect();
        let starts: Vec<String> = todo
            .iter()
            .filter(|a| a.kind == Kind::Start)
            .map(|a| a.name.clone())
            .collect();
        if let Some(first) = starts.first() {
            self.engine_call(&first.clone(), args::start(&starts));
        }
        let (swaps, rest): (Vec<&Action>, Vec<&Action>) = todo
            .into_iter()
            .partition(|a| a.kind == Kind::Recreate && !self.torn.contains(&a.name));
        for a in rest {
            self.up(a)?;
        }
        self.recreate(&swaps)
    }

    fn up(&mut self, a: &Action) -> Result<()> {
        let s = self.specs[a.name.as_str()];
        if matches!(a.kind, Kind::Create | Kind::Recreate) {
            let single = args::single_call(s, self.engine.kind);
            self.pre_create(s);
            let run = self.create_args(s, &s.name, single)?;
            self.engine_call(&s.name, run);
            if !single {
                self.connect(s, &s.name);
                self.engine_call(&s.name, args::start(std::slice::from_ref(&s.name)));
            }
        }
        if a.kind == Kind::Recreate {
            // On a changed network: checked as a recreate (its parked old one waits).
            self.check(a, s);
            return Ok(());
        }
        let known_healthy = a.kind == Kind::Keep
            && self
                .mine
                .get(s.name.as_str())
                .is_some_and(|x| x.health == Health::Healthy);
        self.ready(a, s, known_healthy);
        Ok(())
    }

    fn pre_create(&mut self, s: &Spec) {
        if let Some(h) = &s.hooks.pre_create {
            self.push(
                &s.name,
                Call::Host {
                    host: "pre_create",
                    argv: h.clone(),
                },
            );
        }
    }

    fn connect(&mut self, s: &Spec, as_name: &str) {
        for (net, opts) in args::later_networks(s, self.engine.kind) {
            self.engine_call(&s.name, args::network_connect(&net, as_name, &opts));
        }
    }

    fn wait(&mut self, s: &Spec, wait: &'static str) {
        let container = s.name.clone();
        self.push(&s.name, Call::Wait { wait, container });
    }

    fn ready(&mut self, a: &Action, s: &Spec, known_healthy: bool) {
        let need = self.needs.get(&s.name).copied().unwrap_or_default();
        if (s.health().is_some() || need == Condition::ServiceHealthy) && !known_healthy {
            self.wait(s, "healthy");
        }
        if a.kind == Kind::Recreate
            && let Some(h) = &s.hooks.restore_data
        {
            self.engine_call(&s.name, args::exec(&s.name, h));
        }
        if a.kind != Kind::Keep
            && let Some(h) = &s.hooks.post_start
        {
            self.engine_call(&s.name, args::exec(&s.name, h));
        }
        if need == Condition::ServiceCompletedSuccessfully {
            self.wait(s, "completed");
        }
    }

    /// Recreates, the new one first, each service on its own: created under its
    /// temporary name and connected, the old one's data stored and the old one renamed
    /// aside; the old one stopped and the new one started; the new one renamed and
    /// checked; the old one removed. The new one is named by its temporary name where the
    /// converge uses the ID `create` prints.
    fn recreate(&mut self, group: &[&Action]) -> Result<()> {
        for a in group {
            let s = self.specs[a.name.as_str()];
            let (temp, old) = (temp_name(&s.name), self.id(&s.name));
            self.pre_create(s);
            let create = self.create_args(s, &temp, false)?;
            self.engine_call(&s.name, create);
            self.connect(s, &temp);
            self.store(&s.name);
            self.engine_call(&s.name, args::rename(&old, &aside_name(&s.name)));
            if self.mine.get(a.name.as_str()).is_some_and(|o| o.running) {
                let t = self.stop_timeout(&a.name);
                self.engine_call(&a.name, args::stop(std::slice::from_ref(&old), t));
            }
            self.engine_call(&a.name, args::start(std::slice::from_ref(&temp)));
            self.engine_call(&s.name, args::rename(&temp, &s.name));
            self.check(a, s);
            self.engine_call(&s.name, args::rm(&[old]));
        }
        Ok(())
    }

    /// A recreated one's check as the converge makes it: its health first (where it has a
    /// healthcheck), that it stays up (unless a wait for health or a dependent's condition
    /// says more), then the rest of its readiness.
    fn check(&mut self, a: &Action, s: &Spec) {
        let waits = s.health().is_some() || self.needs.contains_key(&s.name);
        if s.health().is_some() {
            self.wait(s, "healthy");
        }
        if !waits || s.restart != Restart::No {
            self.wait(s, "up");
        }
        self.ready(a, s, s.health().is_some());
    }

    /// The `run -d` (or `create`) arguments of `s` as `as_name`, as the converge builds them.
    fn create_args(&self, s: &Spec, as_name: &str, detach: bool) -> Result<Vec<String>> {
        let setup = self.setup;
        let rt = host_path(
            setup,
            &setup.paths.data_dir.join("containers").join(&s.name),
        );
        let sources: Vec<PathBuf> = s
            .volumes
            .iter()
            .map(|v| {
                if v.source.is_absolute() {
                    host_path(setup, &v.source)
                } else {
                    rt.join(&v.source)
                }
            })
            .collect();
        let prepared = secrets::prepare(setup, s, &rt, false)?;
        let hash = s.hash(self.p.image_ids.get(&s.name).map_or("", String::as_str));
        let c = ArgCtx {
            kind: self.engine.kind,
            scope: &self.p.scope,
            infra: &self.p.infra,
            sources: &sources,
            prepared: &prepared,
            name: as_name,
            hash: &hash,
        };
        Ok(args::run_args(s, &c, detach))
    }
}
