//! Recreate, the new one first: the new container is created under a
//! temporary name while the old one still serves; only then store_data, the
//! old one's graceful stop, the renames and the new one's start. If the new
//! one does not start, exits, or never becomes healthy, it is removed and the
//! old one (stopped, renamed aside, never removed before this point) takes its
//! name back and runs again. A run killed midway leaves containers a next run
//! recognizes (by the `orc.for` label and the aside name) and resolves.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::converge::{Converger, Tally, parallel};
use super::engine::Engine;
use super::health;
use super::plan::{Action, Actual, Health};
use super::spec::Spec;
use crate::error::{Error, Result};
use crate::root::Durable;
use crate::setup::Setup;

/// A recreate made ready: the new one created, the old one set aside.
struct Prepared {
    a: Action,
    old: Actual,
    new: String,
}

/// How many services are swapped (old one stopped, new one started) at a time.
/// Measured with 10 services on a loaded 2-core box (docker 20.10): 2 at a time took
/// 10.9 s with a median downtime of 1.5 s, 4 took 7.6 s and 1.7 s, all 10 took 7.1 s
/// and 4.0 s.
const SWAPS: usize = 4;

/// How long a container just started must stay up before it counts as started.
const SETTLE: Duration = Duration::from_millis(500);

/// The temporary name of a container's new one.
pub fn temp_name(name: &str) -> String {
    format!("{name}.orc-new")
}

/// The name an old container waits under while its new one starts.
pub fn aside_name(name: &str) -> String {
    format!("{name}.orc-old")
}

/// What a listed container of this scope is left over from: a new one that never took
/// over (made for another name), or an old one set aside (its name says whose).
#[derive(Debug, PartialEq, Eq)]
pub enum Leftover {
    New { name: String },
    Aside { name: String },
}

pub fn leftover(a: &Actual) -> Option<Leftover> {
    if let Some(f) = &a.for_name
        && *f != a.name
        && a.name == temp_name(f)
    {
        return Some(Leftover::New { name: f.clone() });
    }
    let name = a.name.strip_suffix(".orc-old")?;
    (a.for_name.as_deref().is_none_or(|f| f == name)).then(|| Leftover::Aside {
        name: name.to_string(),
    })
}

/// What is done about one thing a killed run left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolve {
    /// A new one that never took over: removed.
    Discard { name: String, id: String },
    /// An old one set aside whose new one took over (it runs): removed.
    Remove { name: String, id: String },
    /// An old one set aside takes its name back and runs again; `unproven` is the new
    /// one that holds the name without having passed its check (it is not running, or
    /// not healthy yet, or unhealthy), removed first.
    Restore {
        name: String,
        id: String,
        unproven: Option<String>,
    },
}

/// Where a recreate notes that its new one holds the name but has not passed its check
/// yet (restore_data, post_start and health included); removed once it has.
fn checking_file(setup: &Setup, name: &str) -> PathBuf {
    setup
        .paths
        .data_dir
        .join("containers")
        .join(format!(".orc-checking.{name}"))
}

/// Whether `name`'s new one holds the name unchecked (a recreate noted it, and it has not
/// passed its check yet).
pub(super) fn is_checking(setup: &Setup, name: &str) -> Result<bool> {
    Ok(setup
        .root
        .read_input(&checking_file(setup, name))?
        .is_some())
}

/// Notes that `name`'s new one is about to hold the name unchecked.
pub(super) fn mark_checking(setup: &Setup, name: &str) -> Result<()> {
    setup
        .root
        .write_file(&checking_file(setup, name), b"", 0o644, Durable::Full)
}

/// `name`'s new one passed its check (or was rolled back).
pub(super) fn unmark_checking(setup: &Setup, name: &str) -> Result<()> {
    let file = checking_file(setup, name);
    let (dir, base) = crate::root::split(&file)?;
    match setup.root.open_dir(dir)? {
        Some(d) => d.remove(base),
        None => Ok(()),
    }
}

/// The old one of `name` is back: no check is under way any more. A failure to remove
/// the note only warns (a note left behind only makes a later interrupted recreate put
/// the old one back rather than keep the new).
pub(super) fn rolled_back(setup: &Setup, name: &str) {
    if let Err(e) = unmark_checking(setup, name) {
        log::warn!("{name}: {e}");
    }
}

/// A new one of `name` that holds its name but never showed it works: the run that
/// made it was killed before its check passed (or its rollback could not finish).
fn unproven(setup: &Setup, holder: &Actual, name: &str) -> Result<bool> {
    Ok(holder.for_name.as_deref() == Some(name)
        && (!holder.running
            || matches!(holder.health, Health::Starting | Health::Unhealthy)
            || is_checking(setup, name)?))
}

/// What a killed run left and how it is resolved (read-only: `mine` is this scope's
/// listing, the engine is only asked whether a name is taken). A new one that never
/// took over is removed; an old one set aside is removed when its name is held by a new
/// one that runs, else it takes its name back (the unproven new one removed first).
pub fn resolution(setup: &Setup, engine: &Engine, mine: &[&Actual]) -> Result<Vec<Resolve>> {
    let mut out = Vec::new();
    for a in mine {
        let id = a.id.clone();
        match leftover(a) {
            Some(Leftover::New { name }) => out.push(Resolve::Discard { name, id }),
            Some(Leftover::Aside { name }) => {
                let holder = mine.iter().find(|x| x.name == name);
                out.push(match holder {
                    Some(h) if unproven(setup, h, &name)? => Resolve::Restore {
                        name,
                        id,
                        unproven: Some(h.id.clone()),
                    },
                    Some(_) => Resolve::Remove { name, id },
                    None if engine.exists(&name)? => Resolve::Remove { name, id },
                    None => Resolve::Restore {
                        name,
                        id,
                        unproven: None,
                    },
                });
            }
            None => {}
        }
    }
    Ok(out)
}

/// Resolves what a killed run left (see [`resolution`]). Returns whether anything was
/// there.
pub fn resolve_leftovers(engine: &Engine, left: &[Resolve]) -> Result<bool> {
    for r in left {
        match r {
            Resolve::Discard { name, id } => {
                log::warn!("{name}: removing a new container an interrupted run left");
                engine.discard(id)?;
            }
            Resolve::Remove { name, id } => {
                log::warn!("{name}: removing the old container an interrupted run set aside");
                engine.rm(std::slice::from_ref(id))?;
            }
            Resolve::Restore { name, id, unproven } => {
                if let Some(new) = unproven {
                    log::warn!(
                        "{name}: removing a new container an interrupted run never saw working"
                    );
                    engine.discard(new)?;
                }
                log::warn!("{name}: an interrupted run set the old container aside; it runs again");
                engine.rename(id, name)?;
                engine.start(std::slice::from_ref(name))?;
            }
        }
    }
    Ok(!left.is_empty())
}

/// At most a few holders at a time (a counting semaphore).
struct Gate {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Gate {
    fn new(n: usize) -> Gate {
        Gate {
            free: Mutex::new(n),
            freed: Condvar::new(),
        }
    }

    /// Runs `f` holding one place.
    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= 1;
        drop(free);
        let r = f();
        *self.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.freed.notify_one();
        r
    }
}

impl Converger<'_> {
    /// The level's recreates, each service on its own (no lockstep between them): the new
    /// one created and the old one's data stored and set aside; then, [`SWAPS`] services
    /// at a time, the old one stopped and the new one started, so that a service is down
    /// only between the two; then the new one checked, rolled back where it fails, and the
    /// old one removed.
    pub(super) fn recreate_level(&self, group: &[&Action], t: &mut Tally) {
        if group.is_empty() {
            return;
        }
        let gate = Gate::new(SWAPS);
        for (name, took, r) in parallel(group, &|a| self.recreate_one(a, &gate)) {
            *t.times.entry(name.clone()).or_default() += took;
            if let Err(e) = r {
                t.fail(&name, e);
            }
        }
    }

    /// One service's recreate; its old container is removed as soon as the new one took
    /// over (while the other services go on).
    fn recreate_one(&self, a: &Action, gate: &Gate) -> Result<()> {
        let p = self.prepare_new(a)?;
        let s = self.specs[&a.name];
        mark_checking(self.setup, &s.name)
            .and_then(|()| gate.with(|| self.swap_one(&p)))
            .and_then(|()| self.engine.rename(&p.new, &s.name))
            .and_then(|()| self.check_new(a, s))
            .and_then(|()| unmark_checking(self.setup, &s.name))
            .map_err(|e| self.roll_back(s, &p.old, &p.new, e))?;
        if let Err(e) = self.engine.rm(std::slice::from_ref(&p.old.id)) {
            log::warn!(
                "{}: the replaced container could not be removed (the next run removes it): {e}",
                a.name
            );
        }
        Ok(())
    }

    /// The old one's graceful stop, then the new one's start.
    fn swap_one(&self, p: &Prepared) -> Result<()> {
        if p.old.running {
            self.ctx
                .progress
                .status(&format!("containers: replacing {}", p.a.name));
            self.engine
                .stop(
                    std::slice::from_ref(&p.old.id),
                    self.stop_timeout(&p.a.name),
                )
                .map_err(|e| e.context("the old container is kept"))?;
        }
        self.engine.start(std::slice::from_ref(&p.new))
    }

    /// The new one created under its temporary name (joined to its networks, not started),
    /// the old one's data stored, the old one renamed aside (it still runs).
    fn prepare_new(&self, a: &Action) -> Result<Prepared> {
        let s = self.specs[&a.name];
        let old = self.mine[&a.name].clone();
        self.ctx
            .progress
            .status(&format!("containers: recreate {} ({})", a.name, a.reason));
        let args = self.prepare(s, &temp_name(&s.name), false)?;
        let new = String::from_utf8_lossy(&self.engine.call(&args)?)
            .trim()
            .to_string();
        let kept = |e: Error| {
            let _ = self.engine.discard(&new);
            e.context("the old container is kept")
        };
        self.connect(s, &new).map_err(kept)?;
        self.store(a).inspect_err(|_| {
            let _ = self.engine.discard(&new);
        })?;
        // A running container can be renamed: its name is free before it stops.
        self.engine
            .rename(&old.id, &aside_name(&s.name))
            .map_err(kept)?;
        Ok(Prepared {
            a: a.clone(),
            old,
            new,
        })
    }

    /// The new one, started: it must stay up, then be ready (health, hooks). With a
    /// healthcheck the health wait comes first and the settle time runs inside it (its
    /// first check comes an interval after the start): then one look says it is still up
    /// and never restarted.
    pub(super) fn check_new(&self, a: &Action, s: &Spec) -> Result<()> {
        let started = Instant::now();
        let waits = s.health().is_some() || self.needs.contains_key(&s.name);
        let settles = !waits || s.restart != super::spec::Restart::No;
        if s.health().is_some() {
            health::wait(self.engine, self.ctx, s, health::Want::Healthy)?;
        }
        if settles {
            let left = SETTLE.saturating_sub(started.elapsed());
            health::stays_up(self.engine, self.ctx, s, left)?;
        }
        self.ready(a, s, s.health().is_some())
    }

    /// Removes the new one and gives the old one its name back, running as it was.
    fn roll_back(&self, s: &Spec, old: &Actual, new: &str, e: Error) -> Error {
        // Past the run's deadline and a signal to orc too (the check may have ended
        // there): a service is not left down until the next run.
        let engine = &self.engine.late();
        let last = engine.last_output(new);
        let mut what = vec![format!("rolled back: {e}")];
        if !last.is_empty() {
            what.push(format!("the new container's last output: {last}"));
        }
        let back = engine
            .discard(new)
            .and_then(|()| engine.rename(&old.id, &s.name))
            .and_then(|()| {
                if old.running {
                    engine.start(std::slice::from_ref(&old.id))
                } else {
                    Ok(())
                }
            });
        if back.is_ok() {
            rolled_back(self.setup, &s.name);
        }
        if let Error::Interrupted(_) = e {
            if let Err(b) = back {
                log::error!("{}: restoring the old container failed: {b}", s.name);
            }
            return e;
        }
        what.push(match back {
            Ok(()) if old.running => "the old container runs again".into(),
            Ok(()) => "the old container is back (it was stopped)".into(),
            Err(e) => format!("restoring the old container failed: {e}"),
        });
        Error::Failed(what.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actual(name: &str, for_name: Option<&str>) -> Actual {
        Actual {
            id: format!("id-{name}"),
            name: name.into(),
            running: false,
            spec_hash: None,
            infra_version: None,
            store_data: Vec::new(),
            stop_timeout: None,
            scope: Some("me".into()),
            for_name: for_name.map(String::from),
            health: Health::None,
            networks: Vec::new(),
        }
    }

    #[test]
    fn leftovers_are_recognized_by_label_and_name() {
        assert_eq!(leftover(&actual("db", Some("db"))), None);
        assert_eq!(leftover(&actual("db", None)), None);
        assert_eq!(
            leftover(&actual("db.orc-new", Some("db"))),
            Some(Leftover::New { name: "db".into() })
        );
        assert_eq!(
            leftover(&actual("db.orc-old", Some("db"))),
            Some(Leftover::Aside { name: "db".into() })
        );
        assert_eq!(
            leftover(&actual("db.orc-old", None)),
            Some(Leftover::Aside { name: "db".into() })
        );
        assert_eq!(leftover(&actual("db.orc-old", Some("web"))), None);
        assert_eq!(leftover(&actual("x.orc-new", Some("db"))), None);
    }
}
