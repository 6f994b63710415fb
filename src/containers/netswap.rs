//! A changed network, with rollback: a network cannot be renamed, so its
//! containers' old ones cannot outlive it running; they are parked instead
//! (stopped, set aside under their aside name, disconnected from the changed
//! networks, never removed). The old network is removed and the new one made;
//! if that fails, the old network is made again as the engine had it. After the
//! bring-up, a parked container whose service did not come up on the new
//! network (its network, its new container or a dependency failed) is given its
//! name back, reconnected as it was and started again; the others are removed.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::args;
use super::converge::{Converger, Tally};
use super::engine::Engine;
use super::network::NetAction;
use super::plan::{Action, Kind};
use super::recreate::aside_name;
use crate::error::{Error, Result};

/// An old container parked while its network is recreated.
#[derive(Debug, Clone)]
pub struct Parked {
    pub id: String,
    pub running: bool,
    /// The changed networks it was disconnected from, with the `network connect`
    /// options that attach it again as it was.
    pub nets: Vec<(String, Vec<String>)>,
}

#[derive(Deserialize)]
struct NetInspect {
    #[serde(alias = "Name")]
    name: String,
    #[serde(default, alias = "Driver")]
    driver: String,
    #[serde(default, alias = "Internal")]
    internal: bool,
    #[serde(default, alias = "Labels")]
    labels: Option<BTreeMap<String, String>>,
    /// docker's.
    #[serde(default, rename = "IPAM")]
    ipam: Option<Ipam>,
    /// podman's.
    #[serde(default)]
    subnets: Option<Vec<Subnet>>,
}

#[derive(Deserialize)]
struct Ipam {
    #[serde(default, rename = "Config")]
    config: Option<Vec<Subnet>>,
}

#[derive(Deserialize)]
struct Subnet {
    #[serde(default, alias = "Subnet")]
    subnet: String,
    #[serde(default, alias = "Gateway")]
    gateway: String,
}

/// The `network create` arguments that make a network again as `network inspect`
/// (docker's or podman's JSON) shows it: driver, subnets, gateways, internal, labels.
pub fn remake_args(inspect: &[u8]) -> std::result::Result<Vec<String>, serde_json::Error> {
    let rows: Vec<NetInspect> = serde_json::from_slice(inspect)?;
    let Some(n) = rows.into_iter().next() else {
        return Err(serde::de::Error::custom("empty network inspect output"));
    };
    let mut a: Vec<String> = vec!["network".into(), "create".into()];
    for (k, v) in n.labels.unwrap_or_default() {
        a.extend(["--label".into(), format!("{k}={v}")]);
    }
    if !n.driver.is_empty() {
        a.extend(["--driver".into(), n.driver]);
    }
    let subnets = n.subnets.or(n.ipam.and_then(|i| i.config));
    for s in subnets.unwrap_or_default() {
        if !s.subnet.is_empty() {
            a.extend(["--subnet".into(), s.subnet]);
        }
        if !s.gateway.is_empty() {
            a.extend(["--gateway".into(), s.gateway]);
        }
    }
    if n.internal {
        a.push("--internal".into());
    }
    a.push(n.name);
    Ok(a)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CtrInspect {
    network_settings: CtrNets,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CtrNets {
    #[serde(default)]
    networks: Option<BTreeMap<String, Endpoint>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Endpoint {
    #[serde(default)]
    aliases: Option<Vec<String>>,
    #[serde(default, rename = "IPAMConfig")]
    ipam_config: Option<serde_json::Value>,
}

/// The `network connect` options that attach a container to `net` again as `inspect`
/// (its JSON) shows it attached (aliases, static addresses); `None` when it is not on it.
pub fn attach_opts(
    inspect: &[u8],
    net: &str,
) -> std::result::Result<Option<Vec<String>>, serde_json::Error> {
    let rows: Vec<CtrInspect> = serde_json::from_slice(inspect)?;
    let Some(ep) = rows
        .into_iter()
        .next()
        .and_then(|r| r.network_settings.networks)
        .and_then(|mut n| n.remove(net))
    else {
        return Ok(None);
    };
    let mut opts = Vec::new();
    for a in ep.aliases.unwrap_or_default() {
        opts.extend(["--alias".into(), a]);
    }
    for (key, flag) in [("IPv4Address", "--ip"), ("IPv6Address", "--ip6")] {
        let ip = ep.ipam_config.as_ref().and_then(|c| c.get(key));
        if let Some(ip) = ip.and_then(|v| v.as_str()).filter(|s| !s.is_empty()) {
            opts.extend([flag.to_string(), ip.to_string()]);
        }
    }
    Ok(Some(opts))
}

/// Whether `network connect` options hold a static address (`--ip`, `--ip6`).
fn pinned(opts: &[String]) -> bool {
    opts.iter().any(|o| o == "--ip" || o == "--ip6")
}

/// `network connect` options without the static addresses (`--ip`, `--ip6`).
fn anywhere(opts: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = opts.iter();
    while let Some(o) = it.next() {
        if o == "--ip" || o == "--ip6" {
            it.next();
        } else {
            out.push(o.clone());
        }
    }
    out
}

impl Converger<'_> {
    /// Parks the stopped old container of `name` (recreated on a changed network): set
    /// aside and disconnected from the changed networks. On a failure it is put back.
    pub(super) fn park(&self, name: &str) -> Result<()> {
        let old = &self.mine[name];
        let mut p = Parked {
            id: old.id.clone(),
            running: old.running,
            nets: Vec::new(),
        };
        let r = self.park_steps(name, &mut p);
        if let Err(e) = r {
            let back = self.unpark(&self.engine.late(), name, &p, false);
            return Err(Error::Failed(format!(
                "{e}; the old container is kept{}",
                back.err().map(|b| format!(" ({b})")).unwrap_or_default()
            )));
        }
        self.parked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_string(), p);
        Ok(())
    }

    fn park_steps(&self, name: &str, p: &mut Parked) -> Result<()> {
        let inspect = self
            .engine
            .call(&["inspect", "--type", "container", &p.id])?;
        self.engine.rename(&p.id, &aside_name(name))?;
        let s = self.specs[name];
        for net in s.networks.keys().filter(|n| self.changed_nets.contains(*n)) {
            let opts = attach_opts(&inspect, net).map_err(|e| {
                Error::Failed(format!(
                    "{} inspect: unexpected output: {e}",
                    self.engine.bin()
                ))
            })?;
            let Some(opts) = opts else { continue };
            self.engine.call(&args::network_disconnect(net, &p.id))?;
            p.nets.push((net.clone(), opts));
        }
        Ok(())
    }

    /// The parked old container back: the new one of its name removed (when `new_made`),
    /// its name back, reconnected as it was, started again if it ran.
    fn unpark(&self, engine: &Engine, name: &str, p: &Parked, new_made: bool) -> Result<()> {
        if new_made {
            engine.discard(name)?;
        }
        for (net, opts) in &p.nets {
            match engine.network_connect(net, &p.id, opts) {
                Err(e) if !matches!(e, Error::Interrupted(_)) && pinned(opts) => {
                    // Its static address is outside the network made anew (a new subnet):
                    // back on it at any address, under its aliases, rather than not at all.
                    log::warn!(
                        "{name}: the old container cannot have its address on network {net} again ({e}); it gets another"
                    );
                    engine.network_connect(net, &p.id, &anywhere(opts))?;
                }
                r => r?,
            }
        }
        if engine.exists(&aside_name(name))? {
            engine.rename(&p.id, name)?;
        }
        if p.running
            && let Err(e) = engine.start(std::slice::from_ref(&p.id))
        {
            // docker takes the address at connect and refuses it only at start.
            let fixed: Vec<&(String, Vec<String>)> =
                p.nets.iter().filter(|(_, o)| pinned(o)).collect();
            if fixed.is_empty() || matches!(e, Error::Interrupted(_)) {
                return Err(e);
            }
            for (net, opts) in fixed {
                log::warn!(
                    "{name}: the old container cannot have its address on network {net} again ({e}); it gets another"
                );
                engine.call(&args::network_disconnect(net, &p.id))?;
                engine.network_connect(net, &p.id, &anywhere(opts))?;
            }
            engine.start(std::slice::from_ref(&p.id))?;
        }
        Ok(())
    }

    /// Removes the old network and makes the new one; if that fails, the old one is made
    /// again as the engine had it (its parked containers come back after the bring-up).
    pub(super) fn recreate_network(&self, a: &NetAction) -> Result<()> {
        let inspect = self.engine.call(&["network", "inspect", &a.name])?;
        let old = remake_args(&inspect).map_err(|e| {
            Error::Failed(format!(
                "{} network inspect: unexpected output: {e}",
                self.engine.bin()
            ))
        })?;
        let r = self
            .engine
            .network_rm(&a.name)
            .and_then(|()| self.create_network(a));
        let e = match r {
            Ok(()) => return Ok(()),
            Err(e @ Error::Interrupted(_)) => return Err(e),
            Err(e) => e,
        };
        let engine = &self.engine.late();
        let back = match engine.network_exists(&a.name) {
            Ok(true) => Ok(()),
            Ok(false) => engine.call(&old).map(drop),
            Err(x) => Err(x),
        };
        Err(Error::Failed(match back {
            Ok(()) => format!("{e}; the old network is back"),
            Err(b) => format!("{e}; making the old network again failed: {b}"),
        }))
    }

    /// Why a parked container's service did not come up in an interrupted run: its new
    /// one does not hold the name, or never passed its check; `None` when it did.
    fn unproven(&self, engine: &super::engine::Engine, name: &str) -> Option<String> {
        let checking = super::recreate::is_checking(self.setup, name);
        match (checking, engine.exists(name)) {
            (Ok(false), Ok(true)) => None,
            (Ok(true), Ok(true)) => {
                Some("interrupted before its new container passed its check".into())
            }
            (_, Ok(false)) => Some("interrupted before its new container was made".into()),
            (Err(e), _) | (_, Err(e)) => Some(format!("interrupted; {e}")),
        }
    }

    /// After the bring-up: each parked container whose service failed comes back (its
    /// failure says so), the others are removed (one `rm`). In a run interrupted by a
    /// signal, a service whose new one did not pass its check counts as failed: its old
    /// one runs again before orc exits instead of staying parked until the next run.
    pub(super) fn settle_parked(&self, actions: &[Action], t: &mut Tally) {
        let mut parked = std::mem::take(
            &mut *self
                .parked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut gone = Vec::new();
        // Past the run's deadline too (a new one may have failed there).
        let engine = &self.engine.late();
        for a in actions.iter().filter(|a| a.kind == Kind::Recreate) {
            let Some(p) = parked.remove(&a.name) else {
                continue;
            };
            let failed = match t.errors.get(&a.name) {
                Some(e) => Some(e.clone()),
                None if t.interrupted.is_some() => self.unproven(engine, &a.name),
                None => None,
            };
            let Some(e) = failed else {
                gone.push(p.id);
                continue;
            };
            let mut what = vec![format!("rolled back: {e}")];
            let last = engine.last_output(&a.name);
            if !last.is_empty() {
                what.push(format!("the new container's last output: {last}"));
            }
            let back = self.unpark(engine, &a.name, &p, true);
            if back.is_ok() {
                super::recreate::rolled_back(self.setup, &a.name);
            }
            what.push(match back {
                Ok(()) if p.running => "the old container runs again".to_string(),
                Ok(()) => "the old container is back (it was stopped)".to_string(),
                Err(b) => format!("restoring the old container failed: {b}"),
            });
            t.errors.insert(a.name.clone(), what.join("; "));
        }
        if !gone.is_empty()
            && let Err(e) = self.engine.rm(&gone)
        {
            log::warn!(
                "the replaced containers could not all be removed (the next run removes them): {e}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_is_made_again_as_docker_or_podman_shows_it() {
        let docker = br#"[{"Name": "front", "Driver": "bridge", "Internal": true,
            "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.1"}]},
            "Labels": {"orc.scope": "me", "orc.network-hash": "old"}}]"#;
        assert_eq!(
            remake_args(docker).unwrap().join(" "),
            "network create --label orc.network-hash=old --label orc.scope=me --driver bridge \
             --subnet 10.9.0.0/24 --gateway 10.9.0.1 --internal front"
        );
        let podman = br#"[{"name": "front", "driver": "bridge", "internal": false,
            "subnets": [{"subnet": "10.88.1.0/24", "gateway": "10.88.1.1"}], "labels": {"a": "b"}}]"#;
        assert_eq!(
            remake_args(podman).unwrap().join(" "),
            "network create --label a=b --driver bridge --subnet 10.88.1.0/24 --gateway 10.88.1.1 front"
        );
        assert!(remake_args(b"[]").is_err());
    }

    #[test]
    fn a_container_is_attached_again_with_its_aliases_and_address() {
        let i = br#"[{"NetworkSettings": {"Networks": {
            "front": {"Aliases": ["web", "www"], "IPAMConfig": {"IPv4Address": "10.9.0.5"}},
            "back": {"Aliases": null, "IPAMConfig": null}}}}]"#;
        assert_eq!(
            attach_opts(i, "front").unwrap().unwrap().join(" "),
            "--alias web --alias www --ip 10.9.0.5"
        );
        assert_eq!(
            attach_opts(i, "back").unwrap().unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(attach_opts(i, "other").unwrap(), None);
        let opts = attach_opts(i, "front").unwrap().unwrap();
        assert_eq!(anywhere(&opts).join(" "), "--alias web --alias www");
        assert!(pinned(&opts));
        assert!(!pinned(&anywhere(&opts)));
    }
}
