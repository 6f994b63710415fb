//! Box containers: converge the box's own containers and networks (those
//! labelled `orc.managed=true` and `orc.scope=<scope>`) to the specs,
//! recreating only what changed, waiting for readiness, storing and restoring
//! data through hooks, and never deleting a runtime dir.

pub mod args;
pub mod compose;
pub mod converge;
pub mod dryrun;
pub mod engine;
pub mod fields;
pub mod health;
pub mod images;
pub mod netswap;
pub mod network;
pub mod plan;
pub mod planview;
pub mod recreate;
pub mod secrets;
pub mod sources;
pub mod spec;
pub mod targets;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use serde::Serialize;

use crate::error::{Context, Error, Result};
use crate::report::ContainerReport;
use crate::root::{Dir, Durable};
use crate::setup::Setup;
use crate::step::{Outcome, StepCtx, StepResult};
use converge::{Converger, Tally};
use engine::Engine;
use network::NetKind;
use plan::{Action, Kind};
pub use spec::{Spec, Specs};

const RUNTIME_SUBDIRS: [&str; 4] = ["data", "etc", "log", "run"];
/// In the runtime dirs' parent: the containers and networks the last converge left, so
/// that removing the last spec still removes its container.
const MARKER: &str = ".orc-managed";

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

fn marker_file(setup: &Setup) -> PathBuf {
    setup.paths.data_dir.join("containers").join(MARKER)
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

/// This box's scope: `containers.scope` (checked when the config is read), else the root's
/// `/etc/machine-id`, else `default`.
pub fn scope(setup: &Setup) -> String {
    if let Some(s) = &setup.config.containers.scope {
        return s.clone();
    }
    let id = setup
        .root
        .read_input(Path::new("/etc/machine-id"))
        .unwrap_or(None)
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    if spec::name_ok(&id) {
        id
    } else {
        "default".into()
    }
}

/// The specs and networks, validated, read when the step starts; `None` when this box
/// has no containers at all (no spec, no network, no infra version, and none left by an
/// earlier converge): then no engine is called. A file that is not valid fails its
/// container (and its dependents) in `invalid`; only a dir that cannot be read is an error.
pub fn load(setup: &Setup) -> Result<Option<Specs>> {
    load_with(setup, &compose::interp::run_var)
}

/// [`load`], compose files interpolated from `env` (the run's environment).
pub fn load_with(setup: &Setup, env: compose::interp::Lookup) -> Result<Option<Specs>> {
    let (specs, (nets, bad_nets)) = read_all(setup, env)?;
    let left = setup.root.read_input(&marker_file(setup))?.is_some();
    if specs.is_none()
        && nets.is_empty()
        && bad_nets.is_empty()
        && setup.config.containers.infra_version.is_none()
        && !left
    {
        return Ok(None);
    }
    let mut specs = specs.unwrap_or_default();
    for (n, file) in nets {
        specs.net_files.insert(n.name.clone(), file);
        specs.networks.push(n);
    }
    specs.invalid.extend(bad_nets);
    let shown = setup.root.shown(&setup.paths.networks_dir);
    let unfit: Vec<(String, String)> = specs
        .specs
        .iter()
        .filter_map(|s| Some((s.name.clone(), net_misfit(&specs, s, &shown)?)))
        .collect();
    for (name, m) in unfit {
        specs.fail(&name, m);
    }
    Ok(Some(specs))
}

/// Every source read through the root: the specs (JSON and compose, with the env files,
/// secrets and configs they name), the networks, and the network files not valid.
fn read_all(
    setup: &Setup,
    env: compose::interp::Lookup,
) -> Result<(Option<Specs>, network::Loaded)> {
    let opener = crate::trust::Opener::new(&setup.root);
    let (mut list, mut bad) = spec::load_dir(opener, &setup.root, &setup.paths.specs_dir)?;
    let (mut nets, mut bad_nets) =
        network::load_dir(opener, &setup.root, &setup.paths.networks_dir)?;
    let (c_specs, c_nets, c_bad) = compose::load_dir(opener, setup, env)?;
    list.extend(c_specs);
    bad.extend(c_bad);
    for (n, file) in c_nets {
        if let Some((_, first)) = nets.iter().find(|(o, _)| o.name == n.name) {
            bad_nets.push(spec::Bad {
                name: None,
                error: format!(
                    "{}: networks: {:?} is already declared by {}",
                    file.display(),
                    n.name,
                    first.display()
                ),
                file,
            });
            continue;
        }
        nets.push((n, file));
    }
    let shown = |p: &Path| setup.root.shown(p);
    let mut ok = Vec::with_capacity(list.len());
    for (mut s, file) in list {
        match secrets::load_files(opener, &shown, &mut s) {
            Ok(()) => ok.push((s, file)),
            Err(e) => bad.push(spec::Bad {
                name: Some(s.name.clone()),
                file,
                error: e.to_string(),
            }),
        }
    }
    Ok((spec::assemble(ok, bad), (nets, bad_nets)))
}

/// Why a spec cannot join its networks: one not declared (or its file invalid), or a
/// static address outside the network's subnet.
fn net_misfit(specs: &Specs, s: &Spec, nets_dir: &Path) -> Option<String> {
    let file = specs.files[&s.name].display();
    if let Some(n) = s
        .networks
        .keys()
        .find(|n| !specs.net_files.contains_key(*n))
    {
        return Some(format!(
            "{file}: networks: {n:?} is not declared in {} (or its file is invalid)",
            nets_dir.display()
        ));
    }
    for (n, att) in &s.networks {
        let ips = att.ipv4_address.map(std::net::IpAddr::V4).into_iter();
        for ip in ips.chain(att.ipv6_address.map(std::net::IpAddr::V6)) {
            let net = specs.networks.iter().find(|x| &x.name == n);
            if let Some(Err(m)) = net.map(|net| network::holds(net, ip)) {
                return Some(format!("{file}: networks.{n}: {m}"));
            }
        }
    }
    None
}

/// `/etc/orc/containers.d/app.json, db.json`: the files that want an engine.
fn wanted_by(specs: &Specs, setup: &Setup) -> String {
    let mut files: Vec<&PathBuf> = specs
        .files
        .values()
        .chain(specs.net_files.values())
        .collect();
    files.sort();
    let mut out: Vec<String> = Vec::new();
    let mut dir: Option<&Path> = None;
    for f in files {
        if f.parent() == dir {
            out.push(f.file_name().map_or_else(
                || f.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ));
        } else {
            dir = f.parent();
            out.push(f.display().to_string());
        }
    }
    if out.is_empty() {
        let m = setup.root.shown(&marker_file(setup));
        return format!("{} (containers left by removed specs)", m.display());
    }
    out.join(", ")
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

/// What a converge did.
#[derive(Debug, Default)]
pub struct Converged {
    pub reports: Vec<ContainerReport>,
    pub ok: bool,
    pub engine_time: Duration,
    pub skipped: bool,
}

/// Converges the containers through the engine CLI. Errors are per container (in the
/// reports) unless the engine is missing or cannot even be listed.
pub fn converge(setup: &Setup, specs: Option<&Specs>, ctx: &StepCtx) -> Result<Converged> {
    let Some(specs) = specs else {
        return Ok(Converged {
            ok: true,
            skipped: true,
            ..Converged::default()
        });
    };
    if specs.specs.is_empty() && specs.networks.is_empty() && !specs.invalid.is_empty() {
        // Nothing valid to converge, and nothing is removed while a file is invalid.
        let t = Tally {
            errors: specs
                .invalid
                .iter()
                .map(|b| (b.key(), b.error.clone()))
                .collect(),
            ..Tally::default()
        };
        return Ok(Converged {
            reports: specs
                .invalid
                .iter()
                .map(|b| report(&b.key(), "invalid", "not converged", &t))
                .collect(),
            ..Converged::default()
        });
    }
    let engine = Engine::cli(
        setup.config.containers.engine,
        ctx.deadline,
        ctx.live.clone(),
    )
    .map_err(|e| Error::Failed(format!("{e}; wanted by {}", wanted_by(specs, setup))))?;
    converge_with(setup, specs, ctx, &engine)
}

fn report(name: &str, action: &str, reason: &str, t: &Tally) -> ContainerReport {
    let error = t.errors.get(name).cloned();
    match &error {
        Some(e) => log::error!("{name}: {action} ({reason}) failed: {e}"),
        None if action != "keep" => log::info!("{name}: {action} ({reason})"),
        None => log::debug!("{name}: up to date"),
    }
    ContainerReport {
        name: name.to_string(),
        action: action.into(),
        reason: reason.to_string(),
        duration_ms: t.times.get(name).map_or(0.0, |d| crate::time::ms(*d)),
        error,
    }
}

/// The listing and the plan made from it.
struct Planned {
    scope: String,
    /// The specs planned: those read, less those whose image could not be made present.
    specs: Specs,
    image_ids: HashMap<String, String>,
    actual: Vec<plan::Actual>,
    actions: Vec<Action>,
    net_actions: Vec<network::NetAction>,
    stored: String,
    infra: String,
    /// Only some containers are converged (`reconcile NAME...`).
    partial: bool,
    /// What an interrupted run left, not yet resolved (a plan that changes nothing).
    leftovers: Vec<recreate::Resolve>,
}

impl Planned {
    /// The networks being recreated, and the containers on them (torn down and parked
    /// while their network is made anew).
    fn changed_networks(&self) -> (HashSet<String>, HashSet<String>) {
        let changed: HashSet<String> = self
            .net_actions
            .iter()
            .filter(|a| a.kind == NetKind::Recreate)
            .map(|a| a.name.clone())
            .collect();
        let torn = self
            .specs
            .specs
            .iter()
            .filter(|s| s.networks.keys().any(|n| changed.contains(n)))
            .map(|s| s.name.clone())
            .collect();
        (changed, torn)
    }
}

/// One listing (containers, networks and images, in parallel), the images made present
/// and what a killed run left resolved (when `apply`), and the pure plans made from it.
fn make_plan(setup: &Setup, specs: &Specs, engine: &Engine, apply: bool) -> Result<Planned> {
    let scope = scope(setup);
    let mut specs = specs.clone();
    let (listed, resolved) = std::thread::scope(|t| {
        let images = crate::threads::start(t, "orc-images", || {
            images::resolve(setup, engine, &specs.specs, apply)
        });
        (engine.list(), images.join())
    });
    let (mut actual, nets) = listed?;
    let resolved =
        resolved.ok_or_else(|| Error::Failed("resolving images: the thread panicked".into()))??;
    for (name, why) in resolved.failed {
        specs.fail(&name, format!("{why}; the old container is untouched"));
    }
    let mine: Vec<&plan::Actual> = actual
        .iter()
        .filter(|a| a.scope.as_deref() == Some(scope.as_str()))
        .collect();
    let mut leftovers = recreate::resolution(setup, engine, &mine)?;
    if apply {
        if recreate::resolve_leftovers(engine, &leftovers)? {
            actual = engine.list()?.0;
        }
        leftovers.clear();
    } else {
        // Planned as the converge plans after resolving: an old one set aside holds its
        // name again (started), the unproven new one it replaces gone.
        for r in &leftovers {
            if let recreate::Resolve::Restore { name, id, unproven } = r {
                actual.retain(|a| Some(&a.id) != unproven.as_ref());
                if let Some(a) = actual.iter_mut().find(|a| a.id == *id) {
                    a.name.clone_from(name);
                    a.running = true;
                }
            }
        }
    }
    actual.retain(|a| recreate::leftover(a).is_none());
    // Nothing undeclared is removed while a file is invalid, nor by a targeted converge.
    let remove_undeclared = specs.invalid.is_empty() && !specs.targets.partial();
    let mut net_actions = network::plan(&specs.networks, &nets, &scope);
    net_actions.retain(|a| remove_undeclared || a.kind != NetKind::Remove);
    let changed: HashSet<String> = net_actions
        .iter()
        .filter(|a| a.kind == NetKind::Recreate)
        .map(|a| a.name.clone())
        .collect();
    let (stored, infra) = (stored_infra(setup)?, desired_infra(setup));
    let mut actions = plan::plan(&plan::Inputs {
        specs: &specs.specs,
        levels: &specs.levels,
        actual: &actual,
        scope: &scope,
        stored_infra: &stored,
        infra: &infra,
        changed_networks: &changed,
        image_ids: &resolved.ids,
        remove_undeclared,
    });
    specs
        .targets
        .apply(&specs.specs, &mut actions, &mut net_actions);
    let partial = specs.targets.partial();
    Ok(Planned {
        scope,
        specs,
        image_ids: resolved.ids,
        actual,
        actions,
        net_actions,
        stored,
        infra,
        partial,
        leftovers,
    })
}

/// Converges through `engine`: images, the plan's removals, networks and bring-up.
pub fn converge_with(
    setup: &Setup,
    specs: &Specs,
    ctx: &StepCtx,
    engine: &Engine,
) -> Result<Converged> {
    let t0 = Instant::now();
    let p = make_plan(setup, specs, engine, true)?;
    let (scope, actions, specs) = (&p.scope, &p.actions, &p.specs);
    let (changed_nets, torn) = p.changed_networks();
    let c = Converger {
        setup,
        engine,
        ctx,
        specs: specs.specs.iter().map(|s| (s.name.clone(), s)).collect(),
        networks: &specs.networks,
        mine: p
            .actual
            .iter()
            .filter(|a| plan::is_mine(a, scope, &specs.specs))
            .map(|a| (a.name.clone(), a.clone()))
            .collect(),
        scope,
        infra: &p.infra,
        needs: converge::needs(&specs.specs),
        image_ids: p.image_ids.clone(),
        torn,
        changed_nets,
        parked: Default::default(),
    };
    let mut t = Tally::default();
    for b in &specs.invalid {
        t.errors.insert(b.key(), b.error.clone());
    }
    for a in actions.iter().filter(|a| a.kind == Kind::Conflict) {
        t.errors.insert(
            a.name.clone(),
            format!(
                "{}; it was left untouched (this box's scope is {scope})",
                a.reason
            ),
        );
    }
    if actions
        .iter()
        .any(|a| matches!(a.kind, Kind::Create | Kind::Recreate))
    {
        // The runtime dirs' parent, made once here: the parallel bring-up then creates
        // only each container's own dir (Root::create_dir_all is not safe against a
        // concurrent creation of the same component).
        setup
            .root
            .create_dir_all(&setup.paths.data_dir.join("containers"), 0o755)?;
    }
    c.teardown(actions, &mut t);
    // Networks no longer declared go last: a container recreated the new one first
    // leaves them only when its old one goes.
    let (gone, nets): (Vec<_>, Vec<_>) = p
        .net_actions
        .iter()
        .cloned()
        .partition(|a| a.kind == NetKind::Remove);
    let failed_nets = if t.interrupted.is_none() {
        c.converge_networks(&nets, &mut t)
    } else {
        HashMap::new()
    };
    c.bringup(actions, &failed_nets, &mut t);
    c.settle_parked(actions, &mut t);
    if t.interrupted.is_none() {
        c.converge_networks(&gone, &mut t);
    }
    if let Some(sig) = t.interrupted {
        return Err(Error::Interrupted(sig));
    }
    finish(setup, &p, t, t0)
}

fn finish(setup: &Setup, p: &Planned, t: Tally, t0: Instant) -> Result<Converged> {
    let (actions, net_actions) = (&p.actions, &p.net_actions);
    let (stored, infra) = (&p.stored, &p.infra);
    let net_report = |a: &network::NetAction| {
        report(&format!("network:{}", a.name), a.kind.name(), &a.reason, &t)
    };
    let mut reports: Vec<ContainerReport> = p
        .specs
        .invalid
        .iter()
        .map(|b| report(&b.key(), "invalid", "not converged", &t))
        .collect();
    reports.extend(
        net_actions
            .iter()
            .filter(|a| a.kind != NetKind::Remove)
            .map(net_report),
    );
    reports.extend(
        actions
            .iter()
            .map(|a| report(&a.name, a.kind.name(), &a.reason, &t)),
    );
    reports.extend(
        net_actions
            .iter()
            .filter(|a| a.kind == NetKind::Remove)
            .map(net_report),
    );
    if t.errors.contains_key("") {
        // An engine call that belongs to no one container (a batch that failed whole).
        reports.push(report("", "converge", "engine", &t));
    }
    let ok = t.errors.is_empty();
    // A targeted converge leaves the others as they are: it records nothing box-wide.
    let whole = !p.partial;
    if ok && whole && stored != infra {
        setup.root.write_file(
            &infra_file(setup),
            format!("{infra}\n").as_bytes(),
            0o644,
            Durable::Full,
        )?;
    }
    if ok && whole {
        write_marker(setup, actions, net_actions)?;
    }
    Ok(Converged {
        reports,
        ok,
        engine_time: t0.elapsed(),
        skipped: false,
    })
}

/// Records what this scope has after a converge (or removes the record when nothing is
/// left); written only when it changed.
fn write_marker(setup: &Setup, actions: &[Action], nets: &[network::NetAction]) -> Result<()> {
    let mut left: Vec<String> = actions
        .iter()
        .filter(|a| !matches!(a.kind, Kind::Remove | Kind::Conflict))
        .map(|a| a.name.clone())
        .chain(
            nets.iter()
                .filter(|a| !matches!(a.kind, NetKind::Remove | NetKind::Conflict))
                .map(|a| format!("network:{}", a.name)),
        )
        .collect();
    left.sort();
    let file = marker_file(setup);
    let old = setup.root.read_input(&file)?;
    if left.is_empty() {
        if old.is_some() {
            let (dir, name) = crate::root::split(&file)?;
            if let Some(d) = setup.root.open_dir(dir)? {
                d.remove(name)?;
            }
        }
        return Ok(());
    }
    let text = format!("{}\n", left.join("\n"));
    if old.as_deref() != Some(text.as_bytes()) {
        setup
            .root
            .write_file(&file, text.as_bytes(), 0o644, Durable::Full)?;
    }
    Ok(())
}

/// The built-in containers step between configure and migration.
pub fn converge_step(setup: &Setup, ctx: &StepCtx) -> Outcome<Vec<ContainerReport>> {
    let t = Instant::now();
    // A converge that ended in an error spent its time waiting on the engine or a hook.
    let outcome = |result, note: String| Outcome {
        result,
        note: Some(note),
        external: t.elapsed(),
        detail: Vec::new(),
    };
    match load(setup).and_then(|specs| converge(setup, specs.as_ref(), ctx)) {
        Ok(c) if c.skipped => Outcome {
            external: Duration::ZERO,
            ..outcome(StepResult::Skipped, "no container specs".into())
        },
        Ok(c) => {
            let changed = c.reports.iter().filter(|r| r.action != "keep").count();
            let failed = c.reports.iter().filter(|r| r.error.is_some()).count();
            if c.ok {
                log::debug!("containers: {} converged", c.reports.len());
            }
            Outcome {
                result: if c.ok {
                    StepResult::Ok
                } else if ctx.expired() {
                    StepResult::Timeout
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
    pub scope: String,
    pub in_specs: bool,
    /// `running`, `stopped` or `missing`.
    pub actual: &'static str,
    /// `healthy`, `starting`, `unhealthy` or `-` (no healthcheck).
    pub health: &'static str,
    pub networks: Vec<String>,
    pub action: &'static str,
    pub reason: String,
}

/// `orc containers plan`: what a converge would do now (with the engine calls when
/// `argv`); nothing is changed.
pub fn plan_steps(setup: &Setup, argv: bool) -> Result<(&'static str, Vec<planview::Step>)> {
    let Some(specs) = load(setup)? else {
        return Ok(("-", Vec::new()));
    };
    let engine = Engine::cli(
        setup.config.containers.engine,
        None,
        crate::procs::Live::none(),
    )?;
    Ok((engine.bin(), planview::steps(setup, &specs, &engine, argv)?))
}

pub fn rows(setup: &Setup) -> Result<Vec<Row>> {
    let Some(specs) = load(setup)? else {
        return Ok(Vec::new());
    };
    if specs.specs.is_empty() && specs.networks.is_empty() {
        // Nothing valid: no engine call (and nothing is removed while files are invalid).
        return Ok(invalid_rows(&specs, &scope(setup), &[]));
    }
    let engine = Engine::cli(
        setup.config.containers.engine,
        None,
        crate::procs::Live::none(),
    )?;
    let p = make_plan(setup, &specs, &engine, false)?;
    let names: HashSet<&str> = specs.specs.iter().map(|s| s.name.as_str()).collect();
    let mut rows: Vec<Row> = p
        .actions
        .iter()
        .map(|a| {
            let found = p.actual.iter().find(|x| {
                x.name == a.name
                    && (plan::is_mine(x, &p.scope, &specs.specs) || a.kind == Kind::Conflict)
            });
            Row {
                in_specs: names.contains(a.name.as_str()),
                scope: found
                    .and_then(|x| x.scope.clone())
                    .unwrap_or_else(|| p.scope.clone()),
                actual: state(found),
                health: found.map_or("-", |x| x.health.name()),
                networks: found.map(|x| x.networks.clone()).unwrap_or_default(),
                action: a.kind.name(),
                reason: a.reason.clone(),
                name: a.name.clone(),
            }
        })
        .collect();
    rows.extend(invalid_rows(&p.specs, &p.scope, &p.actual));
    Ok(rows)
}

fn state(found: Option<&plan::Actual>) -> &'static str {
    match found {
        Some(x) if x.running => "running",
        Some(_) => "stopped",
        None => "missing",
    }
}

/// A row per file that is not valid (and per spec that depends on one).
fn invalid_rows(specs: &Specs, scope: &str, actual: &[plan::Actual]) -> Vec<Row> {
    specs
        .invalid
        .iter()
        .map(|b| Row {
            name: b.key(),
            scope: scope.to_string(),
            in_specs: true,
            actual: state(actual.iter().find(|x| Some(&x.name) == b.name.as_ref())),
            health: "-",
            networks: Vec::new(),
            action: "invalid",
            reason: b.error.clone(),
        })
        .collect()
}

/// The refusal for a listing that found invalid files (exit 2), naming the first.
pub fn refuse_invalid(rows: &[Row]) -> Result<()> {
    let bad: Vec<&Row> = rows.iter().filter(|r| r.action == "invalid").collect();
    match bad.first() {
        None => Ok(()),
        Some(r) => Err(Error::Invalid(match bad.len() {
            1 => r.reason.clone(),
            n => format!("{} (and {} more invalid)", r.reason, n - 1),
        })),
    }
}

/// The containers step's part of `orc list`: each spec in the order work follows, with
/// its file, then the files that are not valid (their errors).
pub fn plan_lines(setup: &Setup) -> Result<(String, Vec<String>)> {
    let Some(specs) = load(setup)? else {
        return Ok((String::new(), Vec::new()));
    };
    let mut ordered: Vec<&Spec> = specs.specs.iter().collect();
    ordered.sort_by_key(|s| (specs.levels.get(&s.name).copied(), s.name.clone()));
    let mut out = String::new();
    for s in ordered {
        out.push_str(&format!(
            "{:<15} {:<30} {}\n",
            "container",
            s.name,
            specs.files[&s.name].display()
        ));
    }
    for n in &specs.networks {
        out.push_str(&format!(
            "{:<15} {:<30} {}\n",
            "network",
            n.name,
            specs.net_files[&n.name].display()
        ));
    }
    let errors = specs.invalid.iter().map(|b| b.error.clone()).collect();
    Ok((out, errors))
}

pub fn render(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<24} {:<12} {:>4} {:>8} {:>9} {:<16} {:>9}  reason\n",
        "name", "scope", "spec", "actual", "health", "networks", "action"
    );
    for r in rows {
        let scope: String = r.scope.chars().take(12).collect();
        let nets = if r.networks.is_empty() {
            "-".to_string()
        } else {
            r.networks.join(",")
        };
        out.push_str(&format!(
            "{:<24} {:<12} {:>4} {:>8} {:>9} {:<16} {:>9}  {}\n",
            r.name,
            scope,
            if r.in_specs { "yes" } else { "no" },
            r.actual,
            r.health,
            nets,
            r.action,
            r.reason
        ));
    }
    out
}

#[cfg(test)]
mod fake;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_is_the_config_else_the_machine_id_else_default() {
        let d = tempfile::tempdir().unwrap();
        let setup = || Setup::new(d.path(), None, None, None).unwrap();
        assert_eq!(scope(&setup()), "default");
        std::fs::create_dir_all(d.path().join("etc/orc")).unwrap();
        std::fs::write(d.path().join("etc/machine-id"), "").unwrap();
        assert_eq!(scope(&setup()), "default");
        std::fs::write(
            d.path().join("etc/machine-id"),
            "4f1e2d3c4b5a69788796a5b4c3d2e1f0\n",
        )
        .unwrap();
        assert_eq!(scope(&setup()), "4f1e2d3c4b5a69788796a5b4c3d2e1f0");
        std::fs::write(
            d.path().join("etc/orc/orc.json"),
            r#"{"containers": {"scope": "shop-1"}}"#,
        )
        .unwrap();
        assert_eq!(scope(&setup()), "shop-1");
    }

    #[test]
    fn wanted_by_names_the_first_file_in_full_and_the_rest_by_name() {
        let d = tempfile::tempdir().unwrap();
        let setup = Setup::new(d.path(), None, None, None).unwrap();
        let mut specs = Specs::default();
        for n in ["db", "app"] {
            specs
                .files
                .insert(n.into(), format!("/r/etc/orc/containers.d/{n}.json").into());
        }
        specs
            .net_files
            .insert("front".into(), "/r/etc/orc/networks.d/front.json".into());
        assert_eq!(
            wanted_by(&specs, &setup),
            "/r/etc/orc/containers.d/app.json, db.json, /r/etc/orc/networks.d/front.json"
        );
    }
}
