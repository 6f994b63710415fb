//! Targeted operations: `orc containers reconcile NAME...` converges the
//! named containers and what they depend on, nothing else (no removal of
//! undeclared containers or networks, INFRA_VERSION untouched);
//! `--force-recreate NAME` recreates a container whose spec did not change,
//! through the normal path (store_data, the new one first, rollback).

use std::collections::BTreeSet;

use super::network::{NetAction, NetKind};
use super::plan::{Action, Kind};
use super::spec::{Bad, Spec};

/// What an admin asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// The containers to converge (empty: all).
    pub only: BTreeSet<String>,
    /// Containers to recreate even when up to date.
    pub force: BTreeSet<String>,
}

impl Targets {
    /// Whether this is a partial converge (then nothing undeclared is removed and
    /// INFRA_VERSION is not written).
    pub fn partial(&self) -> bool {
        !self.only.is_empty()
    }

    /// Every name must be a valid spec's: the error names the first that is not, and for
    /// a container whose file is invalid (or files whose containers are unknown) the file
    /// and its error.
    pub fn check(&self, specs: &[Spec], invalid: &[Bad]) -> Result<(), String> {
        let known: BTreeSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let Some(n) = self
            .only
            .iter()
            .chain(&self.force)
            .find(|n| !known.contains(n.as_str()))
        else {
            return Ok(());
        };
        if let Some(b) = invalid.iter().find(|b| b.name.as_deref() == Some(n)) {
            return Err(format!("container {n:?} is not valid: {}", b.error));
        }
        let unread: Vec<&str> = invalid
            .iter()
            .filter(|b| b.name.is_none())
            .map(|b| b.error.as_str())
            .collect();
        if unread.is_empty() {
            return Err(format!("no container {n:?} in the specs"));
        }
        Err(format!(
            "no container {n:?} in the valid specs; not read: {}",
            unread.join("; ")
        ))
    }

    /// The named containers and, transitively, their dependencies (and the forced ones).
    fn wanted(&self, specs: &[Spec]) -> BTreeSet<String> {
        let mut todo: Vec<String> = self.only.iter().chain(&self.force).cloned().collect();
        let mut out = BTreeSet::new();
        while let Some(n) = todo.pop() {
            if !out.insert(n.clone()) {
                continue;
            }
            if let Some(s) = specs.iter().find(|s| s.name == n) {
                todo.extend(s.depends_on.names().map(str::to_string));
            }
        }
        out
    }

    /// Narrows a converge's plan: only the wanted containers (and the networks they join),
    /// forced ones recreated.
    pub fn apply(&self, specs: &[Spec], actions: &mut Vec<Action>, nets: &mut Vec<NetAction>) {
        for a in actions.iter_mut() {
            if self.force.contains(&a.name) && matches!(a.kind, Kind::Keep | Kind::Start) {
                a.kind = Kind::Recreate;
                a.reason = "forced (--force-recreate)".into();
            }
        }
        if !self.partial() {
            return;
        }
        let wanted = self.wanted(specs);
        actions.retain(|a| wanted.contains(&a.name));
        let joined: BTreeSet<&str> = specs
            .iter()
            .filter(|s| wanted.contains(&s.name))
            .flat_map(|s| s.networks.keys().map(String::as_str))
            .collect();
        nets.retain(|n| n.kind != NetKind::Remove && joined.contains(n.name.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, deps: &[&str], nets: &[&str]) -> Spec {
        serde_json::from_value(serde_json::json!({
            "name": name, "image": "i", "depends_on": deps, "networks": nets
        }))
        .unwrap()
    }

    fn action(name: &str, kind: Kind) -> Action {
        Action {
            name: name.into(),
            kind,
            reason: "r".into(),
            level: 0,
        }
    }

    fn net(name: &str, kind: NetKind) -> NetAction {
        NetAction {
            name: name.into(),
            kind,
            reason: "r".into(),
        }
    }

    #[test]
    fn named_containers_their_dependencies_and_nothing_else() {
        let specs = [
            spec("web", &["db"], &["front"]),
            spec("db", &[], &["back"]),
            spec("mail", &[], &["mailnet"]),
        ];
        let t = Targets {
            only: ["web".to_string()].into(),
            force: ["db".to_string()].into(),
        };
        assert_eq!(t.check(&specs, &[]), Ok(()));
        let mut actions = vec![
            action("db", Kind::Keep),
            action("web", Kind::Create),
            action("mail", Kind::Recreate),
            action("old", Kind::Remove),
        ];
        let mut nets = vec![
            net("front", NetKind::Create),
            net("back", NetKind::Keep),
            net("mailnet", NetKind::Recreate),
            net("gone", NetKind::Remove),
        ];
        t.apply(&specs, &mut actions, &mut nets);
        let got: Vec<(&str, Kind)> = actions.iter().map(|a| (a.name.as_str(), a.kind)).collect();
        assert_eq!(got, [("db", Kind::Recreate), ("web", Kind::Create)]);
        assert_eq!(actions[0].reason, "forced (--force-recreate)");
        let got: Vec<&str> = nets.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(got, ["front", "back"]);
        let bad = Targets {
            only: ["ghost".to_string()].into(),
            ..Targets::default()
        };
        assert_eq!(
            bad.check(&specs, &[]).unwrap_err(),
            "no container \"ghost\" in the specs"
        );
        let broken = |name: Option<&str>| Bad {
            name: name.map(String::from),
            file: "/etc/orc/compose.d/g.yaml".into(),
            error:
                "/etc/orc/compose.d/g.yaml: line 3 column 5: services.ghost: unknown key \"foo\""
                    .into(),
        };
        assert_eq!(
            bad.check(&specs, &[broken(Some("ghost"))]).unwrap_err(),
            "container \"ghost\" is not valid: /etc/orc/compose.d/g.yaml: line 3 column 5: services.ghost: unknown key \"foo\""
        );
        let e = bad.check(&specs, &[broken(None)]).unwrap_err();
        assert!(
            e.starts_with("no container \"ghost\" in the valid specs; not read: /etc/orc/compose.d/g.yaml: line 3"),
            "{e}"
        );
    }

    #[test]
    fn force_alone_keeps_the_whole_converge() {
        let specs = [spec("a", &[], &[]), spec("b", &[], &[])];
        let t = Targets {
            force: ["a".to_string()].into(),
            ..Targets::default()
        };
        let mut actions = vec![action("a", Kind::Start), action("b", Kind::Keep)];
        let mut nets = vec![net("gone", NetKind::Remove)];
        t.apply(&specs, &mut actions, &mut nets);
        assert_eq!(actions[0].kind, Kind::Recreate);
        assert_eq!(actions[1].kind, Kind::Keep);
        assert_eq!(nets.len(), 1, "a full converge still removes what is gone");
        assert!(!t.partial());
    }
}
