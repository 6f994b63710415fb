//! The converge plan as a pure function: specs + the managed containers that
//! exist + the stored INFRA_VERSION → one action per container, with a reason.

use std::collections::HashMap;

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Keep,
    Start,
    Create,
    Recreate,
    Remove,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Keep => "keep",
            Kind::Start => "start",
            Kind::Create => "create",
            Kind::Recreate => "recreate",
            Kind::Remove => "remove",
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

/// One action per spec (in level, then name order) and per orphaned managed container.
pub fn plan(
    specs: &[Spec],
    levels: &HashMap<String, usize>,
    actual: &[Actual],
    stored_infra: &str,
    infra: &str,
) -> Vec<Action> {
    let top = levels.values().max().map_or(0, |m| m + 1);
    let mut out: Vec<Action> = actual
        .iter()
        .filter(|a| !specs.iter().any(|s| s.name == a.name))
        .map(|a| Action {
            name: a.name.clone(),
            kind: Kind::Remove,
            reason: "no longer in the specs".into(),
            level: top,
        })
        .collect();
    let mut ordered: Vec<&Spec> = specs.iter().collect();
    ordered.sort_by_key(|s| (levels.get(&s.name).copied().unwrap_or(0), s.name.clone()));
    for s in ordered {
        let (kind, reason) = match actual.iter().find(|a| a.name == s.name) {
            None => (Kind::Create, "missing".to_string()),
            Some(_) if stored_infra != infra => (
                Kind::Recreate,
                format!("infra version {stored_infra} -> {infra}"),
            ),
            Some(a) if a.spec_hash.as_deref() != Some(s.hash().as_str()) => {
                (Kind::Recreate, "spec changed".to_string())
            }
            Some(a) if !a.running => (Kind::Start, "stopped".to_string()),
            Some(_) => (Kind::Keep, "up to date".to_string()),
        };
        out.push(Action {
            name: s.name.clone(),
            kind,
            reason,
            level: levels.get(&s.name).copied().unwrap_or(0),
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
            spec_hash: Some(s.hash()),
            infra_version: Some("7".into()),
            store_data: Vec::new(),
            stop_timeout: None,
        }
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
        assert_eq!(p[2].reason, "spec changed");
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
}
