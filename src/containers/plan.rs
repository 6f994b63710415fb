//! The converge plan as a pure function: specs + the managed containers that
//! exist (of every scope) + the stored INFRA_VERSION + the networks being
//! recreated → one action per container of this scope, with a reason.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::spec::Spec;

/// A managed container as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actual {
    pub id: String,
    pub name: String,
    pub running: bool,
    pub spec_hash: Option<String>,
    pub infra_version: Option<String>,
    /// The `store_data` hook it was created with (argv), from its label.
    pub store_data: Vec<String>,
    pub stop_timeout: Option<u32>,
    /// `orc.scope`; `None` on containers made before orc had scopes.
    pub scope: Option<String>,
    /// `orc.for`: the name a container made under a temporary name is for.
    pub for_name: Option<String>,
    pub health: Health,
    pub networks: Vec<String>,
}

/// A container's health as the engine reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No healthcheck.
    #[default]
    None,
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    /// From `ps`'s status column: `Up 3 minutes (healthy)`, `(health: starting)`, ...
    pub fn from_status(status: &str) -> Health {
        if status.contains("(healthy)") {
            Health::Healthy
        } else if status.contains("(unhealthy)") {
            Health::Unhealthy
        } else if status.contains("starting)") {
            Health::Starting
        } else {
            Health::None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Health::None => "-",
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Keep,
    Start,
    Create,
    Recreate,
    Remove,
    /// The name is taken by a container outside this scope: left alone, an error.
    Conflict,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Keep => "keep",
            Kind::Start => "start",
            Kind::Create => "create",
            Kind::Recreate => "recreate",
            Kind::Remove => "remove",
            Kind::Conflict => "conflict",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub name: String,
    pub kind: Kind,
    pub reason: String,
    /// Dependency level (removals of unknown containers sit above every spec).
    pub level: usize,
}

/// What the plan is made from.
pub struct Inputs<'a> {
    pub specs: &'a [Spec],
    pub levels: &'a HashMap<String, usize>,
    /// Every managed container the engine listed, of any scope.
    pub actual: &'a [Actual],
    pub scope: &'a str,
    pub stored_infra: &'a str,
    pub infra: &'a str,
    /// Networks recreated in this converge: their containers are recreated too.
    pub changed_networks: &'a HashSet<String>,
    /// The image ID each spec's image resolves to, by spec name.
    pub image_ids: &'a HashMap<String, String>,
    /// Whether a container no longer in the specs is removed: not while a spec or
    /// network file is invalid (the container it describes keeps running).
    pub remove_undeclared: bool,
}

/// Whether a listed container is this box's: its scope, or (made before scopes) a
/// spec's name.
pub fn is_mine(a: &Actual, scope: &str, specs: &[Spec]) -> bool {
    match &a.scope {
        Some(s) => s == scope,
        None => specs.iter().any(|s| s.name == a.name),
    }
}

impl Inputs<'_> {
    pub fn mine(&self, a: &Actual) -> bool {
        is_mine(a, self.scope, self.specs)
    }
}

/// Whether a container is what its spec and image make: its hash label is the spec's
/// with this image ID, or the whole-spec hash of an orc from before image identity.
pub fn matches(a: &Actual, s: &Spec, image_id: Option<&String>) -> bool {
    let Some(h) = a.spec_hash.as_deref() else {
        return false;
    };
    image_id.is_some_and(|id| h == s.hash(id)) || h == s.legacy_hash()
}

fn spec_action(i: &Inputs, s: &Spec) -> (Kind, String) {
    let changed_net = s.networks.keys().find(|n| i.changed_networks.contains(*n));
    match i.actual.iter().find(|a| a.name == s.name && i.mine(a)) {
        None => match i.actual.iter().find(|a| a.name == s.name) {
            Some(other) => (
                Kind::Conflict,
                format!(
                    "the name is taken by a container of scope {}",
                    other.scope.as_deref().unwrap_or("(none)")
                ),
            ),
            None => (Kind::Create, "missing".to_string()),
        },
        Some(_) if i.stored_infra != i.infra => (
            Kind::Recreate,
            format!("infra version {} -> {}", i.stored_infra, i.infra),
        ),
        Some(a) if !matches(a, s, i.image_ids.get(&s.name)) => {
            (Kind::Recreate, "spec or image changed".to_string())
        }
        Some(_) if changed_net.is_some() => (
            Kind::Recreate,
            format!("network {} changed", changed_net.expect("checked")),
        ),
        // A running one off a network of its spec (an old one a killed run had parked
        // and the next run started again): it would serve no one there.
        Some(a) if a.running && s.networks.keys().any(|n| !a.networks.contains(n)) => {
            let n = s.networks.keys().find(|n| !a.networks.contains(n));
            (
                Kind::Recreate,
                format!("not on network {}", n.expect("checked")),
            )
        }
        Some(a) if !a.running => (Kind::Start, "stopped".to_string()),
        Some(_) => (Kind::Keep, "up to date".to_string()),
    }
}

/// One action per spec (in level, then name order) and per orphaned container of this scope.
pub fn plan(i: &Inputs) -> Vec<Action> {
    let top = i.levels.values().max().map_or(0, |m| m + 1);
    let mut out: Vec<Action> = i
        .actual
        .iter()
        .filter(|a| i.remove_undeclared && a.scope.as_deref() == Some(i.scope))
        .filter(|a| !i.specs.iter().any(|s| s.name == a.name))
        .map(|a| Action {
            name: a.name.clone(),
            kind: Kind::Remove,
            reason: "no longer in the specs".into(),
            level: top,
        })
        .collect();
    let mut ordered: Vec<&Spec> = i.specs.iter().collect();
    ordered.sort_by_key(|s| (i.levels.get(&s.name).copied().unwrap_or(0), s.name.clone()));
    for s in ordered {
        let (kind, reason) = spec_action(i, s);
        out.push(Action {
            name: s.name.clone(),
            kind,
            reason,
            level: i.levels.get(&s.name).copied().unwrap_or(0),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, deps: &[&str]) -> Spec {
        serde_json::from_value(
            serde_json::json!({"name": name, "image": "busybox", "depends_on": deps}),
        )
        .unwrap()
    }

    fn actual(s: &Spec, running: bool) -> Actual {
        Actual {
            id: format!("id-{}", s.name),
            name: s.name.clone(),
            running,
            spec_hash: Some(s.hash("sha256:1")),
            infra_version: Some("7".into()),
            store_data: Vec::new(),
            stop_timeout: None,
            scope: Some("me".into()),
            for_name: None,
            health: Health::None,
            networks: Vec::new(),
        }
    }

    fn ids(specs: &[Spec]) -> HashMap<String, String> {
        specs
            .iter()
            .map(|s| (s.name.clone(), "sha256:1".to_string()))
            .collect()
    }

    fn plan(
        specs: &[Spec],
        levels: &HashMap<String, usize>,
        actual: &[Actual],
        stored: &str,
        infra: &str,
    ) -> Vec<Action> {
        super::plan(&Inputs {
            specs,
            levels,
            actual,
            scope: "me",
            stored_infra: stored,
            infra,
            changed_networks: &HashSet::new(),
            image_ids: &ids(specs),
            remove_undeclared: true,
        })
    }

    fn kinds(actions: &[Action]) -> Vec<(&str, Kind)> {
        actions.iter().map(|a| (a.name.as_str(), a.kind)).collect()
    }

    fn setup() -> (Vec<Spec>, HashMap<String, usize>) {
        let specs = vec![spec("web", &["db"]), spec("db", &[])];
        let levels = super::super::spec::levels(&specs).unwrap();
        (specs, levels)
    }

    #[test]
    fn first_boot_creates_in_dependency_order() {
        let (specs, levels) = setup();
        let p = plan(&specs, &levels, &[], "none", "7");
        assert_eq!(kinds(&p), [("db", Kind::Create), ("web", Kind::Create)]);
        assert_eq!((p[0].level, p[1].level), (0, 1));
    }

    #[test]
    fn converged_box_keeps_everything() {
        let (specs, levels) = setup();
        let act: Vec<Actual> = specs.iter().map(|s| actual(s, true)).collect();
        let p = plan(&specs, &levels, &act, "7", "7");
        assert_eq!(kinds(&p), [("db", Kind::Keep), ("web", Kind::Keep)]);
    }

    #[test]
    fn infra_version_change_recreates_all() {
        let (specs, levels) = setup();
        let act: Vec<Actual> = specs.iter().map(|s| actual(s, true)).collect();
        let p = plan(&specs, &levels, &act, "7", "8");
        assert_eq!(kinds(&p), [("db", Kind::Recreate), ("web", Kind::Recreate)]);
        assert_eq!(p[0].reason, "infra version 7 -> 8");
        let p = plan(&specs, &levels, &act, "none", "7");
        assert_eq!(p[0].reason, "infra version none -> 7");
    }

    #[test]
    fn spec_change_stopped_missing_and_orphans() {
        let (mut specs, levels) = setup();
        let mut act: Vec<Actual> = specs.iter().map(|s| actual(s, true)).collect();
        act[1].running = false; // db stopped
        specs[0].env.insert("NEW".into(), "1".into()); // web changed
        act.push(actual(&spec("old", &[]), true));
        let p = plan(&specs, &levels, &act, "7", "7");
        assert_eq!(
            kinds(&p),
            [
                ("old", Kind::Remove),
                ("db", Kind::Start),
                ("web", Kind::Recreate)
            ]
        );
        assert_eq!(p[0].level, 2);
        assert_eq!(p[2].reason, "spec or image changed");
        let p = plan(&specs, &levels, &act[..1], "7", "7");
        assert_eq!(kinds(&p)[0], ("db", Kind::Create));
    }

    #[test]
    fn a_missing_hash_label_counts_as_changed() {
        let (specs, levels) = setup();
        let mut act: Vec<Actual> = specs.iter().map(|s| actual(s, true)).collect();
        act[0].spec_hash = None;
        let p = plan(&specs, &levels, &act, "7", "7");
        assert_eq!(kinds(&p), [("db", Kind::Keep), ("web", Kind::Recreate)]);
    }

    #[test]
    fn other_scopes_are_never_planned_and_their_names_conflict() {
        let (specs, levels) = setup();
        let mut theirs = actual(&specs[1], true); // "db" of another box
        theirs.scope = Some("other".into());
        let mut orphan = actual(&spec("their-old", &[]), true);
        orphan.scope = Some("other".into());
        let p = plan(&specs, &levels, &[theirs, orphan], "7", "7");
        assert_eq!(kinds(&p), [("db", Kind::Conflict), ("web", Kind::Create)]);
        assert!(p[0].reason.contains("scope other"), "{}", p[0].reason);
    }

    #[test]
    fn containers_from_before_scopes_are_adopted_by_name_only() {
        let (specs, levels) = setup();
        let mut legacy = actual(&specs[1], true);
        legacy.scope = None;
        let mut stranger = actual(&spec("someone", &[]), true);
        stranger.scope = None;
        let p = plan(&specs, &levels, &[legacy, stranger], "7", "7");
        assert_eq!(kinds(&p), [("db", Kind::Keep), ("web", Kind::Create)]);
    }

    #[test]
    fn a_changed_network_recreates_its_containers() {
        let mut specs = vec![spec("web", &[]), spec("db", &[])];
        specs[0].networks.insert("front".into(), Default::default());
        let levels = super::super::spec::levels(&specs).unwrap();
        let act: Vec<Actual> = specs.iter().map(|s| actual(s, true)).collect();
        let changed: HashSet<String> = ["front".to_string()].into();
        let p = super::plan(&Inputs {
            specs: &specs,
            levels: &levels,
            actual: &act,
            scope: "me",
            stored_infra: "7",
            infra: "7",
            changed_networks: &changed,
            image_ids: &ids(&specs),
            remove_undeclared: true,
        });
        assert_eq!(kinds(&p), [("db", Kind::Keep), ("web", Kind::Recreate)]);
        assert_eq!(p[1].reason, "network front changed");
    }

    #[test]
    fn a_running_one_off_a_network_of_its_spec_is_recreated() {
        let mut specs = vec![spec("web", &[]), spec("db", &[])];
        specs[0].networks.insert("front".into(), Default::default());
        specs[1].networks.insert("front".into(), Default::default());
        let levels = super::super::spec::levels(&specs).unwrap();
        let mut act: Vec<Actual> = specs.iter().map(|s| actual(s, true)).collect();
        act[1].networks = vec!["front".into()];
        let p = plan(&specs, &levels, &act, "7", "7");
        assert_eq!(kinds(&p), [("db", Kind::Keep), ("web", Kind::Recreate)]);
        assert_eq!(p[1].reason, "not on network front");
        // A stopped one is started (an engine may not list a stopped one's networks).
        act[0].running = false;
        let p = plan(&specs, &levels, &act, "7", "7");
        assert_eq!(kinds(&p), [("db", Kind::Keep), ("web", Kind::Start)]);
    }

    #[test]
    fn health_from_ps_status() {
        assert_eq!(
            Health::from_status("Up 3 minutes (healthy)"),
            Health::Healthy
        );
        assert_eq!(
            Health::from_status("Up 1 second (health: starting)"),
            Health::Starting
        );
        assert_eq!(
            Health::from_status("Up 1 second ago (starting)"),
            Health::Starting
        );
        assert_eq!(
            Health::from_status("Up 2 hours (unhealthy)"),
            Health::Unhealthy
        );
        assert_eq!(
            Health::from_status("Exited (0) 2 seconds ago"),
            Health::None
        );
    }
}
