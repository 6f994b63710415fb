//! The box's networks (`/etc/orc/networks.d/*.json`): their format and
//! validation, the canonical hash that labels them, and the pure plan that
//! says which to create, recreate or remove.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::fields;
use super::fields::{is_spec_name, name_ok};
use super::spec::Bad;
use crate::error::{Result, invalid};
use crate::trust::Opener;

/// One declared network. Field order is the canonical order of the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl NetSpec {
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).expect("network specs serialize");
        Sha256::digest(&json)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// `a.b.c.d/n` or an IPv6 CIDR.
fn cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, n) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let n: u8 = n.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (n <= max).then_some((ip, n))
}

fn in_subnet(ip: IpAddr, (net, n): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(n)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(n)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Whether a static address fits the network: it needs a subnet that holds it.
pub fn holds(n: &NetSpec, ip: IpAddr) -> std::result::Result<(), String> {
    match n.subnet.as_deref().and_then(cidr) {
        Some(s) if in_subnet(ip, s) => Ok(()),
        Some(_) => Err(format!("{ip} is not in the subnet of network {}", n.name)),
        None => Err(format!(
            "a static address needs a subnet on network {}",
            n.name
        )),
    }
}

/// Field-level problems of one network spec.
pub fn check(n: &NetSpec) -> std::result::Result<(), String> {
    if !name_ok(&n.name) {
        return Err(format!("name: {:?} is not a valid network name", n.name));
    }
    if matches!(
        n.name.as_str(),
        "bridge" | "host" | "none" | "default" | "podman"
    ) {
        return Err(format!("name: {:?} is the engine's own network", n.name));
    }
    if let Some(d) = &n.driver
        && !fields::word_ok(d, b"")
    {
        return Err(format!("driver: {d:?} is not a driver name"));
    }
    let subnet = match &n.subnet {
        Some(s) => {
            Some(cidr(s).ok_or_else(|| format!("subnet: {s:?} is not a CIDR like 10.1.0.0/24"))?)
        }
        None => None,
    };
    if let Some(g) = &n.gateway {
        let ip: IpAddr = g
            .parse()
            .map_err(|_| format!("gateway: {g:?} is not an IP address"))?;
        match subnet {
            None => return Err("gateway: needs a subnet".into()),
            Some(s) if !in_subnet(ip, s) => {
                return Err(format!("gateway: {g} is not in the subnet"));
            }
            _ => {}
        }
    }
    for (k, v) in &n.labels {
        if k.starts_with("orc.") || k.is_empty() || k.contains('=') || !fields::text_ok(k, 256) {
            return Err(format!(
                "labels: {k:?} is reserved (orc.*) or not a label name"
            ));
        }
        if !fields::text_ok(v, 4096) {
            return Err(format!("labels: the value of {k} is too long"));
        }
    }
    Ok(())
}

/// The declared networks (each with its file), and the files that are not valid.
pub type Loaded = (Vec<(NetSpec, PathBuf)>, Vec<Bad>);

/// Reads and validates every network spec in `dir` (sorted by file name), with the file
/// each came from; a file that is not valid fails alone.
pub fn load_dir(opener: Opener, root: &crate::root::Root, dir: &Path) -> Result<Loaded> {
    let kind = super::sources::Kind {
        want: &is_spec_name,
        holds: "JSON network specs (*.json)",
    };
    let inputs = super::sources::read_dir(opener, root, dir, &kind)?.unwrap_or_default();
    let mut out: Vec<(NetSpec, PathBuf)> = Vec::new();
    let mut bad = Vec::new();
    for i in inputs {
        let (shown, text) = (i.shown, i.text);
        let net = crate::json::parse_object::<NetSpec>(&text, &shown).and_then(|net| {
            check(&net).map_err(|m| invalid(format!("{}: {m}", shown.display())))?;
            match out.iter().find(|(o, _)| o.name == net.name) {
                Some((_, first)) => Err(invalid(format!(
                    "{}: name: {:?} is already used by {}",
                    shown.display(),
                    net.name,
                    first.display()
                ))),
                None => Ok(net),
            }
        });
        match net {
            Ok(net) => out.push((net, shown)),
            Err(e) => bad.push(Bad {
                name: None,
                file: shown,
                error: e.to_string(),
            }),
        }
    }
    Ok((out, bad))
}

/// A managed network as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActualNet {
    pub name: String,
    pub scope: Option<String>,
    pub hash: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetKind {
    Keep,
    Create,
    Recreate,
    Remove,
    /// The name is taken by a network outside this scope: left alone, an error.
    Conflict,
}

impl NetKind {
    pub fn name(self) -> &'static str {
        match self {
            NetKind::Keep => "keep",
            NetKind::Create => "create",
            NetKind::Recreate => "recreate",
            NetKind::Remove => "remove",
            NetKind::Conflict => "conflict",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetAction {
    pub name: String,
    pub kind: NetKind,
    pub reason: String,
}

/// One action per declared network and per managed network of this scope no longer declared.
pub fn plan(declared: &[NetSpec], actual: &[ActualNet], scope: &str) -> Vec<NetAction> {
    let by_name: HashMap<&str, &ActualNet> = actual.iter().map(|a| (a.name.as_str(), a)).collect();
    let mut out: Vec<NetAction> = declared
        .iter()
        .map(|n| {
            let (kind, reason) = match by_name.get(n.name.as_str()) {
                None => (NetKind::Create, "missing".to_string()),
                Some(a) if a.scope.as_deref() != Some(scope) => (
                    NetKind::Conflict,
                    format!(
                        "the name is taken by a network of scope {}",
                        a.scope.as_deref().unwrap_or("(none)")
                    ),
                ),
                Some(a) if a.hash.as_deref() != Some(n.hash().as_str()) => {
                    (NetKind::Recreate, "spec changed".to_string())
                }
                Some(_) => (NetKind::Keep, "up to date".to_string()),
            };
            NetAction {
                name: n.name.clone(),
                kind,
                reason,
            }
        })
        .collect();
    let mut gone: Vec<&ActualNet> = actual
        .iter()
        .filter(|a| a.scope.as_deref() == Some(scope))
        .filter(|a| !declared.iter().any(|n| n.name == a.name))
        .collect();
    gone.sort_by(|a, b| a.name.cmp(&b.name));
    out.extend(gone.into_iter().map(|a| NetAction {
        name: a.name.clone(),
        kind: NetKind::Remove,
        reason: "no longer declared".into(),
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(j: serde_json::Value) -> NetSpec {
        serde_json::from_value(j).unwrap()
    }

    #[test]
    fn hash_is_sha256_of_the_canonical_json() {
        // Pinned to `printf '%s' JSON | sha256sum` of the canonical form written by hand:
        // fields in declaration order, unset ones left out, labels sorted.
        let n = net(
            serde_json::json!({"labels": {"tier": "x", "a": "1"}, "internal": true,
            "subnet": "10.9.0.0/24", "name": "front"}),
        );
        // {"name":"front","subnet":"10.9.0.0/24","internal":true,"labels":{"a":"1","tier":"x"}}
        assert_eq!(
            n.hash(),
            "ba6d5eee78c5cf039809dcf734caf5eb2fb1803433e5b98f52dd690195805545"
        );
        // {"name":"front"}
        assert_eq!(
            net(serde_json::json!({"name": "front"})).hash(),
            "8b6eed641102ad0e1dc4445c97442c690ea9603ce3b692143202ebed26f01635"
        );
    }

    #[test]
    fn checks() {
        assert!(check(&net(serde_json::json!({"name": "front", "subnet": "10.9.0.0/24", "gateway": "10.9.0.1", "internal": true}))).is_ok());
        for (j, want) in [
            (serde_json::json!({"name": "bridge"}), "name:"),
            (serde_json::json!({"name": "-x"}), "name:"),
            (
                serde_json::json!({"name": "n", "subnet": "10.9.0.0"}),
                "subnet:",
            ),
            (
                serde_json::json!({"name": "n", "gateway": "10.9.0.1"}),
                "gateway: needs",
            ),
            (
                serde_json::json!({"name": "n", "subnet": "10.9.0.0/24", "gateway": "10.8.0.1"}),
                "gateway: 10.8.0.1 is not",
            ),
            (serde_json::json!({"name": "n", "driver": "a b"}), "driver:"),
            (
                serde_json::json!({"name": "n", "labels": {"orc.scope": "x"}}),
                "labels:",
            ),
        ] {
            let e = check(&net(j.clone())).unwrap_err();
            assert!(e.starts_with(want), "{j}: {e}");
        }
        assert!(
            serde_json::from_value::<NetSpec>(serde_json::json!({"name": "n", "ipv9": 1})).is_err()
        );
    }

    #[test]
    fn plan_creates_recreates_removes_and_never_touches_other_scopes() {
        let a = net(serde_json::json!({"name": "a"}));
        let b = net(serde_json::json!({"name": "b", "internal": true}));
        let c = net(serde_json::json!({"name": "c"}));
        let actual = vec![
            ActualNet {
                name: "b".into(),
                scope: Some("me".into()),
                hash: Some("old".into()),
            },
            ActualNet {
                name: "c".into(),
                scope: Some("other".into()),
                hash: Some(c.hash()),
            },
            ActualNet {
                name: "gone".into(),
                scope: Some("me".into()),
                hash: None,
            },
            ActualNet {
                name: "theirs".into(),
                scope: Some("other".into()),
                hash: None,
            },
        ];
        let p = plan(&[a.clone(), b, c], &actual, "me");
        let kinds: Vec<(&str, NetKind)> = p.iter().map(|x| (x.name.as_str(), x.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("a", NetKind::Create),
                ("b", NetKind::Recreate),
                ("c", NetKind::Conflict),
                ("gone", NetKind::Remove)
            ]
        );
        let same = vec![ActualNet {
            name: "a".into(),
            scope: Some("me".into()),
            hash: Some(a.hash()),
        }];
        assert_eq!(plan(&[a], &same, "me")[0].kind, NetKind::Keep);
    }
}
