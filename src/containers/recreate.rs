//! Recreate, the new one first: the new container is created under a
//! temporary name while the old one still serves; only then store_data, the
//! old one's graceful stop, the renames and the new one's start. If the new
//! one does not start, exits, or never becomes healthy, it is removed and the
//! old one (stopped, renamed aside, never removed before this point) takes its
//! name back and runs again. A run killed midway leaves containers a next run
//! recognizes (by the `orc.for` label and the aside name) and resolves.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::converge::{Converger, Tally, parallel};
use super::engine::Engine;
use super::health;
use super::plan::{Action, Actual};
use super::spec::Spec;
use crate::error::{Error, Result};

/// A recreate made ready: the new one created, the old one set aside.
struct Prepared {
    a: Action,
    old: Actual,
    new: String,
}

/// How many services are swapped (old one stopped, new one started) at a time.
const SWAPS: usize = 2;

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

/// Resolves what a killed run left: a new one that never took over is removed; an old
/// one set aside is removed when its name is in use again (the new one took over), else
/// it takes its name back and runs again. Returns whether anything was there.
pub fn resolve_leftovers(engine: &Engine, mine: &[&Actual]) -> Result<bool> {
    let mut any = false;
    for a in mine {
        match leftover(a) {
            Some(Leftover::New { name }) => {
                log::warn!("{name}: removing a new container an interrupted run left");
                engine.discard(&a.id)?;
            }
            Some(Leftover::Aside { name }) => {
                if engine.exists(&name)? {
                    log::warn!("{name}: removing the old container an interrupted run set aside");
                    engine.rm(std::slice::from_ref(&a.id))?;
                } else {
                    log::warn!(
                        "{name}: an interrupted run set the old container aside; it runs again"
                    );
                    engine.rename(&a.id, &name)?;
                    engine.start(std::slice::from_ref(&name))?;
                }
            }
            None => continue,
        }
        any = true;
    }
    Ok(any)
}

impl Converger<'_> {
    /// The level's recreates, the new ones first: each new one created and its old one's
    /// data stored and set aside (in parallel); then each old one stopped and its new one
    /// started, a few at a time, so that a service is down only between the two; then
    /// each new one checked (in parallel), rolled back where it fails. The old ones are
    /// removed with the level (one `rm`).
    pub(super) fn recreate_level(&self, group: &[&Action], t: &mut Tally) {
        if group.is_empty() {
            return;
        }
        let started = Instant::now();
        let mut ready: Vec<Prepared> = Vec::new();
        for (name, _, r) in parallel(group, &|a| self.prepare_new(a)) {
            match r {
                Ok(p) => ready.push(p),
                Err(e) => t.fail(&name, e),
            }
        }
        if let Err(e) = self.swap(&mut ready, t) {
            t.fail("", e);
            return;
        }
        let refs: Vec<&Action> = ready.iter().map(|p| &p.a).collect();
        let checked = parallel(&refs, &|a| {
            let p = ready.iter().find(|p| p.a.name == a.name).expect("prepared");
            let s = self.specs[&a.name];
            self.engine
                .rename(&p.new, &s.name)
                .and_then(|()| self.check_new(a, s))
                .map_err(|e| self.roll_back(s, &p.old, &p.new, e))
        });
        for (name, _, r) in checked {
            match r {
                Ok(()) => {
                    let p = ready.iter().find(|p| p.a.name == name).expect("prepared");
                    self.retired
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(p.old.id.clone());
                }
                Err(e) => t.fail(&name, e),
            }
        }
        for a in group {
            *t.times.entry(a.name.clone()).or_default() += started.elapsed();
        }
    }

    /// Each old one stopped and its new one started, [`SWAPS`] services at a time: a
    /// service is down for its own stop and start, not while the engine starts all the
    /// others. Those whose stop or start failed are rolled back and leave `ready`.
    fn swap(&self, ready: &mut Vec<Prepared>, t: &mut Tally) -> Result<()> {
        let next = AtomicUsize::new(0);
        let done: Mutex<Vec<(usize, Result<()>)>> = Mutex::new(Vec::new());
        std::thread::scope(|sc| {
            // A worker that cannot start (a pids limit) does its share inline.
            for _ in 0..SWAPS.min(ready.len()) {
                crate::threads::start(sc, "orc-swap", || {
                    while let Some(p) = ready.get(next.fetch_add(1, Ordering::SeqCst)) {
                        let r = self.swap_one(p);
                        let i = ready.iter().position(|x| x.a.name == p.a.name);
                        done.lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push((i.expect("in ready"), r));
                    }
                });
            }
        });
        let mut failed: HashMap<String, Error> = HashMap::new();
        for (i, r) in done
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            match r {
                Ok(()) => {}
                Err(e @ Error::Interrupted(_)) => return Err(e),
                Err(e) => {
                    failed.insert(ready[i].a.name.clone(), e);
                }
            }
        }
        ready.retain(|p| match failed.remove(&p.a.name) {
            None => true,
            Some(e) => {
                let s = self.specs[&p.a.name];
                t.fail(&p.a.name, self.roll_back(s, &p.old, &p.new, e));
                false
            }
        });
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

    /// The new one, started: it must stay up, then be ready (health, hooks).
    fn check_new(&self, a: &Action, s: &Spec) -> Result<()> {
        let waits = s.health().is_some() || self.needs.contains_key(&s.name);
        if !waits || s.restart != super::spec::Restart::No {
            health::stays_up(self.engine, self.ctx, s, SETTLE)?;
        }
        self.ready(a, s, false)
    }

    /// Removes the new one and gives the old one its name back, running as it was.
    fn roll_back(&self, s: &Spec, old: &Actual, new: &str, e: Error) -> Error {
        if let Error::Interrupted(_) = e {
            // The next run resolves what is left (the old one is set aside, not lost).
            return e;
        }
        let last = self.engine.last_output(new);
        let mut what = vec![format!("rolled back: {e}")];
        if !last.is_empty() {
            what.push(format!("the new container's last output: {last}"));
        }
        let back = self
            .engine
            .discard(new)
            .and_then(|()| self.engine.rename(&old.id, &s.name))
            .and_then(|()| {
                if old.running {
                    self.engine.start(std::slice::from_ref(&old.id))
                } else {
                    Ok(())
                }
            });
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
    use crate::containers::plan::Health;

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
