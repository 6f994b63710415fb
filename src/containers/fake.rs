//! A fake engine for unit tests of the converge's pure logic: what is called,
//! in which order, how calls are batched, and what a failure leaves behind.
//! Behaviour against a real engine is tested in tests/containers.rs.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::engine::{Engine, Runner};
use super::spec::{self, Spec, Specs};
use super::{Converged, converge_with};
use crate::config::Engine as Kind;
use crate::error::{Error, Result};
use crate::setup::Setup;
use crate::step::{Progress, StepCtx};

type Respond = dyn Fn(&[String], usize) -> Option<Result<Vec<u8>>> + Send + Sync;

/// Records every call; answers `ps` and `network ls` from its lists, and whatever
/// `respond` says (given the args and how many times this exact call was made).
pub struct Fake {
    pub calls: Arc<Mutex<Vec<String>>>,
    ps: String,
    nets: String,
    respond: Box<Respond>,
}

impl Runner for Fake {
    fn call(&self, args: &[String], _: &[BorrowedFd]) -> Result<Vec<u8>> {
        let line = args.join(" ");
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(line.clone());
            calls.iter().filter(|c| **c == line).count()
        };
        if let Some(r) = (self.respond)(args, n) {
            return r;
        }
        Ok(match (args[0].as_str(), args.get(1).map(String::as_str)) {
            ("ps", _) => self.ps.clone().into_bytes(),
            ("network", Some("ls")) => self.nets.clone().into_bytes(),
            _ => Vec::new(),
        })
    }

    fn relay(&self, args: &[String], what: &str) -> Result<()> {
        self.call(args, &[])
            .map(drop)
            .map_err(|e| Error::Failed(format!("{what} failed (exit 1): {e}")))
    }
}

struct Quiet;

impl Progress for Quiet {
    fn status(&self, _: &str) {}
    fn extend(&self, _: Duration) {}
}

/// A container of scope `me` in `ps` (podman's JSON shape).
pub fn running(s: &Spec, infra: &str, status: &str) -> serde_json::Value {
    serde_json::json!({
        "Id": format!("id-{}", s.name), "Names": [s.name], "State": "running", "Status": status,
        "Labels": {"orc.managed": "true", "orc.scope": "me", "orc.infra-version": infra,
                   "orc.spec-hash": s.hash(), "orc.stop-timeout": "1",
                   "orc.store-data": s.hooks.store_data.as_ref().map(|h| serde_json::to_string(h).unwrap()).unwrap_or_default()}
    })
}

pub fn specs(list: &[serde_json::Value]) -> Specs {
    let specs: Vec<Spec> = list
        .iter()
        .map(|j| {
            let mut j = j.clone();
            j["image"] = "busybox".into();
            j["stop_timeout"] = 1.into();
            let s: Spec = serde_json::from_value(j).unwrap();
            spec::check(&s).unwrap();
            s
        })
        .collect();
    let levels = spec::levels(&specs).unwrap();
    Specs {
        files: specs
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    format!("/etc/orc/containers.d/{}.json", s.name).into(),
                )
            })
            .collect(),
        specs,
        levels,
        ..Specs::default()
    }
}

/// A box in a temp root (scope `me`, infra `infra`, stored infra `stored`) converged with
/// the fake; returns what it did and every call.
pub fn run(
    specs: &Specs,
    ps: &[serde_json::Value],
    nets: &[serde_json::Value],
    stored: &str,
    infra: &str,
    respond: impl Fn(&[String], usize) -> Option<Result<Vec<u8>>> + Send + Sync + 'static,
) -> (Converged, Vec<String>) {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("etc/orc")).unwrap();
    std::fs::write(
        d.path().join("etc/orc/orc.json"),
        format!(r#"{{"containers": {{"scope": "me", "infra_version": "{infra}"}}}}"#),
    )
    .unwrap();
    std::fs::create_dir_all(d.path().join("var/lib/orc")).unwrap();
    std::fs::write(
        d.path().join("var/lib/orc/INFRA_VERSION"),
        format!("{stored}\n"),
    )
    .unwrap();
    let setup = Setup::new(d.path(), None, None, None).unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let fake = Fake {
        calls: calls.clone(),
        ps: serde_json::to_string(ps).unwrap(),
        nets: serde_json::to_string(nets).unwrap(),
        respond: Box::new(respond),
    };
    let engine = Engine::new(Kind::Docker, Box::new(fake));
    let interrupted = || None;
    let ctx = StepCtx {
        deadline: Some(std::time::Instant::now() + Duration::from_secs(60)),
        progress: &Quiet,
        interrupted: &interrupted,
        live: &crate::procs::Live::none(),
    };
    let c = converge_with(&setup, specs, &ctx, &engine).unwrap();
    let calls = calls.lock().unwrap().clone();
    (c, calls)
}

pub fn errors(c: &Converged) -> HashMap<String, String> {
    c.reports
        .iter()
        .filter_map(|r| r.error.clone().map(|e| (r.name.clone(), e)))
        .collect()
}

pub fn failed(msg: &str) -> Option<Result<Vec<u8>>> {
    Some(Err(Error::Failed(msg.to_string())))
}

pub fn inspect(status: &str, health: &str, output: &str) -> Option<Result<Vec<u8>>> {
    Some(Ok(serde_json::to_vec(&serde_json::json!([{"State": {
        "Status": status, "ExitCode": 0,
        "Health": {"Status": health, "Log": [{"ExitCode": i32::from(health != "healthy"), "Output": output}]}
    }}]))
    .unwrap()))
}

fn pos(calls: &[String], prefix: &str) -> usize {
    calls
        .iter()
        .position(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("no call {prefix:?} in {calls:#?}"))
}

#[test]
fn full_recreate_batches_stop_and_rm_and_runs_each_once() {
    let s = specs(&[
        serde_json::json!({"name": "a"}),
        serde_json::json!({"name": "b"}),
        serde_json::json!({"name": "c"}),
    ]);
    let ps: Vec<_> = s.specs.iter().map(|x| running(x, "1", "Up")).collect();
    let (c, calls) = run(&s, &ps, &[], "1", "2", |_, _| None);
    assert!(c.ok, "{:?}", errors(&c));
    let mut kinds: Vec<&str> = calls.iter().map(|c| c.split(' ').next().unwrap()).collect();
    kinds[..2].sort(); // the two listings run in parallel
    assert_eq!(
        kinds,
        ["network", "ps", "stop", "rm", "run", "run", "run"],
        "{calls:#?}"
    );
    assert!(
        calls.contains(&"stop -t 1 id-a id-b id-c".to_string()),
        "{calls:#?}"
    );
    assert!(
        calls.contains(&"rm id-a id-b id-c".to_string()),
        "{calls:#?}"
    );
    assert!(
        calls
            .iter()
            .all(|c| !c.starts_with("create") && !c.starts_with("start"))
    );
}

#[test]
fn a_converged_box_with_healthchecks_makes_two_calls() {
    let s = specs(&[
        serde_json::json!({"name": "db", "healthcheck": {"test": "true"}}),
        serde_json::json!({"name": "web", "depends_on": {"db": {"condition": "service_healthy"}}}),
    ]);
    let ps = [
        running(&s.specs[0], "1", "Up 1 hour (healthy)"),
        running(&s.specs[1], "1", "Up 1 hour"),
    ];
    let (c, calls) = run(&s, &ps, &[], "1", "1", |_, _| None);
    assert!(c.ok);
    assert_eq!(calls.len(), 2, "{calls:#?}");
}

#[test]
fn a_dependent_waits_until_its_dependency_is_healthy() {
    let s = specs(&[
        serde_json::json!({"name": "db", "healthcheck": {"test": ["CMD", "true"], "interval": "100ms"}}),
        serde_json::json!({"name": "web", "depends_on": {"db": {"condition": "service_healthy"}}}),
    ]);
    let (c, calls) = run(&s, &[], &[], "1", "1", |a, n| {
        (a[0] == "inspect").then(|| {
            if n < 3 {
                inspect("running", "starting", "")
            } else {
                inspect("running", "healthy", "")
            }
        })?
    });
    assert!(c.ok, "{:?}", errors(&c));
    let inspects: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.starts_with("inspect"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(inspects.len(), 3, "{calls:#?}");
    assert!(pos(&calls, "run -d --name db") < inspects[0]);
    assert!(pos(&calls, "run -d --name web") > inspects[2], "{calls:#?}");
}

#[test]
fn a_dependency_that_turns_unhealthy_fails_by_name_and_its_dependents_never_start() {
    let s = specs(&[
        serde_json::json!({"name": "db", "healthcheck": {"test": "true", "interval": "100ms"}}),
        serde_json::json!({"name": "web", "depends_on": {"db": {"condition": "service_healthy"}}}),
        serde_json::json!({"name": "api", "depends_on": ["web"]}),
    ]);
    let (c, calls) = run(&s, &[], &[], "1", "1", |a, _| {
        (a[0] == "inspect").then(|| inspect("running", "unhealthy", "connection refused\n"))?
    });
    assert!(!c.ok);
    let e = errors(&c);
    assert!(
        e["db"].contains("db is not healthy: unhealthy") && e["db"].contains("connection refused"),
        "{e:?}"
    );
    assert_eq!(e["web"], "not created: its dependency db failed");
    assert_eq!(e["api"], "not created: its dependency web failed");
    assert!(
        calls
            .iter()
            .all(|c| !c.contains("--name web") && !c.contains("--name api")),
        "{calls:#?}"
    );
}

#[test]
fn a_failed_store_data_keeps_the_container_and_brings_its_dependents_back() {
    let s = specs(&[
        serde_json::json!({"name": "db", "hooks": {"store_data": ["dump"]}}),
        serde_json::json!({"name": "web", "depends_on": ["db"]}),
        serde_json::json!({"name": "other"}),
    ]);
    let ps: Vec<_> = s.specs.iter().map(|x| running(x, "1", "Up")).collect();
    let (c, calls) = run(&s, &ps, &[], "1", "2", |a, _| {
        (a[0] == "exec" && a[1] == "db").then(|| failed("cannot dump"))?
    });
    assert!(!c.ok);
    let e = errors(&c);
    assert!(
        e["db"].contains("cannot dump") && e["db"].contains("kept"),
        "{e:?}"
    );
    assert!(
        e["web"].contains("dependency db failed before its teardown")
            && e["web"].contains("runs again"),
        "{e:?}"
    );
    assert!(!e.contains_key("other"), "{e:?}");
    // web was stopped before db's hook (its writes are in the dump), then started again.
    assert!(pos(&calls, "stop -t 1 id-web") < pos(&calls, "exec db dump"));
    assert!(pos(&calls, "start id-web") > pos(&calls, "exec db dump"));
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("rm"))
            .collect::<Vec<_>>(),
        ["rm id-other"]
    );
    assert!(
        calls
            .iter()
            .all(|c| !c.contains("--name web") && !c.contains("--name db")),
        "{calls:#?}"
    );
    assert!(calls.iter().any(|c| c.starts_with("run -d --name other")));
}

#[test]
fn a_failed_batched_stop_is_pinned_on_its_container() {
    let s = specs(&[
        serde_json::json!({"name": "a"}),
        serde_json::json!({"name": "b"}),
    ]);
    let ps: Vec<_> = s.specs.iter().map(|x| running(x, "1", "Up")).collect();
    let (c, calls) = run(&s, &ps, &[], "1", "2", |a, _| {
        (a[0] == "stop" && a.contains(&"id-b".to_string())).then(|| failed("b is stuck"))?
    });
    let e = errors(&c);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e["b"].contains("b is stuck") && e["b"].contains("kept"),
        "{e:?}"
    );
    assert!(
        calls.contains(&"stop -t 1 id-a".to_string()) && calls.contains(&"rm id-a".to_string()),
        "{calls:#?}"
    );
    assert!(calls.iter().all(|c| c != "rm id-b"));
}

#[test]
fn another_scopes_container_is_never_touched() {
    let s = specs(&[
        serde_json::json!({"name": "db"}),
        serde_json::json!({"name": "mine"}),
    ]);
    let mut theirs = running(&s.specs[0], "1", "Up");
    theirs["Labels"]["orc.scope"] = "other".into();
    let mut their_orphan = running(
        &specs(&[serde_json::json!({"name": "x"})]).specs[0],
        "1",
        "Up",
    );
    their_orphan["Labels"]["orc.scope"] = "other".into();
    let (c, calls) = run(&s, &[theirs, their_orphan], &[], "1", "1", |_, _| None);
    let e = errors(&c);
    assert!(
        e["db"].contains("taken by a container of scope other")
            && e["db"].contains("left untouched"),
        "{e:?}"
    );
    assert!(
        calls
            .iter()
            .all(|c| !c.contains("id-db") && !c.contains("id-x") && !c.contains("--name db")),
        "{calls:#?}"
    );
    assert!(calls.iter().any(|c| c.starts_with("run -d --name mine")));
}

#[test]
fn networks_are_created_before_and_removed_after_their_containers() {
    let mut s =
        specs(&[serde_json::json!({"name": "web", "networks": {"front": {"aliases": ["www"]}}})]);
    s.networks = vec![serde_json::from_value(serde_json::json!({"name": "front"})).unwrap()];
    let old = specs(&[serde_json::json!({"name": "gone"})]);
    let ps = [running(&old.specs[0], "1", "Up")];
    let nets = [
        serde_json::json!({"name": "oldnet", "labels": {"orc.managed": "true", "orc.scope": "me"}}),
        serde_json::json!({"name": "theirs", "labels": {"orc.managed": "true", "orc.scope": "other"}}),
    ];
    let (c, calls) = run(&s, &ps, &nets, "1", "1", |_, _| None);
    assert!(c.ok, "{:?}", errors(&c));
    assert!(pos(&calls, "rm id-gone") < pos(&calls, "network rm oldnet"));
    assert!(pos(&calls, "network create") < pos(&calls, "run -d --name web"));
    assert!(
        calls
            .iter()
            .any(|c| c.contains("--network front --network-alias www")),
        "{calls:#?}"
    );
    assert!(calls.iter().all(|c| !c.contains("theirs")), "{calls:#?}");
}
