//! A fake engine for unit tests of the converge's pure logic: what is called,
//! in which order, how calls are batched, and what a failure leaves behind.
//! Behaviour against a real engine is tested in tests/containers.rs.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::engine::{Engine, EngineError, EngineResult, Runner};
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
    fn call(&self, args: &[String], _: &[BorrowedFd]) -> EngineResult<Vec<u8>> {
        let line = args.join(" ");
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(line.clone());
            calls.iter().filter(|c| **c == line).count()
        };
        if let Some(r) = (self.respond)(args, n) {
            return r.map_err(|e| EngineError::Exit {
                call: args[..2.min(args.len())].join(" "),
                code: 1,
                timed_out: false,
                stderr: e.to_string(),
            });
        }
        answer(args, &self.ps, &self.nets).map_err(|e| EngineError::Exit {
            call: args[0].clone(),
            code: 1,
            timed_out: false,
            stderr: e,
        })
    }

    fn relay(&self, args: &[String], what: &str) -> Result<()> {
        self.call(args, &[])
            .map(drop)
            .map_err(|e| Error::Failed(format!("{what} failed (exit 1): {}", Error::from(e))))
    }
}

/// What the fake answers by default: its listings, `sha256:1` for every image, the
/// id `new-NAME` for a container created as `NAME.orc-new`, a running container for
/// `inspect`, and "no such container" when asked whether one exists.
fn answer(args: &[String], ps: &str, nets: &str) -> std::result::Result<Vec<u8>, String> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    Ok(match a[..] {
        ["ps", ..] => ps.as_bytes().to_vec(),
        ["network", "ls", ..] => nets.as_bytes().to_vec(),
        ["network", "inspect", ..] => return Err("no such network".into()),
        ["image", "inspect", "--format", _, ref refs @ ..] => refs
            .iter()
            .map(|_| "sha256:1\n")
            .collect::<String>()
            .into_bytes(),
        ["inspect", "--type", "container", "--format", ..] => {
            return Err("no such container".into());
        }
        ["inspect", ..] => br#"[{"State": {"Status": "running", "ExitCode": 0}}]"#.to_vec(),
        ["create", "--name", name, ..] => {
            format!("new-{}\n", name.trim_end_matches(".orc-new")).into_bytes()
        }
        _ => Vec::new(),
    })
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
                   "orc.spec-hash": s.hash("sha256:1"), "orc.stop-timeout": "1",
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
fn a_recreate_creates_the_new_one_before_the_old_one_stops() {
    let s = specs(&[
        serde_json::json!({"name": "a"}),
        serde_json::json!({"name": "b"}),
    ]);
    let ps: Vec<_> = s.specs.iter().map(|x| running(x, "1", "Up")).collect();
    let (c, calls) = run(&s, &ps, &[], "1", "2", |_, _| None);
    assert!(c.ok, "{:?}", errors(&c));
    for x in ["a", "b"] {
        let order = [
            format!("create --name {x}.orc-new"),
            format!("rename id-{x} {x}.orc-old"),
            format!("stop -t 1 id-{x}"),
            format!("start new-{x}"),
            format!("rename new-{x} {x}"),
            format!("inspect --type container {x}"),
        ];
        let at: Vec<usize> = order.iter().map(|o| pos(&calls, o)).collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{x}: {calls:#?}");
    }
    // A service is down between its old one's stop and its new one's start only. Each
    // old one goes once its new one runs (and was looked at).
    for x in ["a", "b"] {
        assert!(
            pos(&calls, &format!("inspect --type container {x}"))
                < pos(&calls, &format!("rm id-{x}")),
            "{calls:#?}"
        );
    }
    assert_eq!(calls.iter().filter(|c| c.starts_with("rm")).count(), 2);
    assert!(calls.iter().all(|c| !c.starts_with("run")), "{calls:#?}");
}

#[test]
fn a_new_one_that_cannot_be_created_leaves_the_old_one_untouched() {
    let s = specs(&[serde_json::json!({"name": "a"})]);
    let ps = [running(&s.specs[0], "1", "Up")];
    let (c, calls) = run(&s, &ps, &[], "1", "2", |a, _| {
        (a[0] == "create").then(|| failed("unknown capability"))?
    });
    assert!(
        errors(&c)["a"].contains("unknown capability"),
        "{:?}",
        errors(&c)
    );
    assert!(calls.iter().all(|c| !c.contains("id-a")), "{calls:#?}");
}

#[test]
fn a_new_one_that_exits_is_rolled_back_and_the_old_one_runs_again() {
    let s = specs(&[serde_json::json!({"name": "a"})]);
    let ps = [running(&s.specs[0], "1", "Up")];
    let (c, calls) = run(&s, &ps, &[], "1", "2", |a, _| match a[..] {
        [ref i, _, _, ref n] if i == "inspect" && n == "a" => Some(Ok(
            br#"[{"State": {"Status": "exited", "ExitCode": 3}}]"#.to_vec(),
        )),
        [ref l, ..] if l == "logs" => Some(Ok(b"boom\n".to_vec())),
        _ => None,
    });
    let e = errors(&c)["a"].clone();
    assert!(
        e.contains("rolled back: a exited (code 3)")
            && e.contains("boom")
            && e.contains("runs again"),
        "{e}"
    );
    let at: Vec<usize> = ["start new-a", "rm -f new-a", "rename id-a a", "start id-a"]
        .iter()
        .map(|o| calls.iter().position(|c| c == o).unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{calls:#?}");
    assert!(calls.iter().all(|c| c != "rm id-a"), "{calls:#?}");
}

#[test]
fn a_new_image_id_under_the_same_name_recreates() {
    let s = specs(&[serde_json::json!({"name": "a"})]);
    let ps = [running(&s.specs[0], "1", "Up")];
    let (c, calls) = run(&s, &ps, &[], "1", "1", |a, _| {
        (a[0] == "image").then(|| Some(Ok(b"sha256:2\n".to_vec())))?
    });
    assert!(c.ok, "{:?}", errors(&c));
    assert_eq!(c.reports[0].action, "recreate");
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("create --name a.orc-new"))
    );
}

#[test]
fn an_invalid_spec_fails_alone_and_holds_removals() {
    let mut s = specs(&[serde_json::json!({"name": "a"})]);
    s.invalid.push(spec::Bad {
        name: None,
        file: "/etc/orc/containers.d/b.json".into(),
        error: "/etc/orc/containers.d/b.json: line 1 column 2: unknown field".into(),
    });
    let gone = specs(&[serde_json::json!({"name": "gone"})]);
    let ps = [running(&gone.specs[0], "1", "Up")];
    let (c, calls) = run(&s, &ps, &[], "1", "1", |_, _| None);
    assert!(!c.ok);
    let e = errors(&c);
    assert!(
        e["/etc/orc/containers.d/b.json"].contains("unknown field"),
        "{e:?}"
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(calls.iter().any(|c| c.starts_with("run -d --name a")));
    assert!(calls.iter().all(|c| !c.contains("id-gone")), "{calls:#?}");
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
    // ps, network ls and image inspect, in parallel.
    assert_eq!(calls.len(), 3, "{calls:#?}");
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
fn a_failed_store_data_keeps_the_old_one_and_its_dependents() {
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
    assert_eq!(e["web"], "not recreated: its dependency db failed");
    assert!(!e.contains_key("other"), "{e:?}");
    assert!(pos(&calls, "rm -f new-db") > pos(&calls, "exec db dump"));
    assert!(
        calls
            .iter()
            .all(|c| !c.contains("id-db") && !c.contains("id-web") && !c.contains("--name web")),
        "{calls:#?}"
    );
    assert!(calls.iter().any(|c| c == "rm id-other"), "{calls:#?}");
}

#[test]
fn a_failed_stop_keeps_the_old_one_and_removes_the_new_one() {
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
    assert!(calls.contains(&"rm id-a".to_string()), "{calls:#?}");
    // Set aside, then given its name back and started (it may have stopped anyway).
    let at: Vec<usize> = [
        "rename id-b b.orc-old",
        "stop -t 1 id-b",
        "rm -f new-b",
        "rename id-b b",
        "start id-b",
    ]
    .iter()
    .map(|o| calls.iter().position(|c| c == o).unwrap())
    .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{calls:#?}");
    assert!(
        calls
            .iter()
            .all(|c| c != "rm id-b" && !c.starts_with("start new-b"))
    );
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

#[test]
fn a_slow_create_holds_back_only_its_own_service() {
    let s = specs(&[
        serde_json::json!({"name": "a"}),
        serde_json::json!({"name": "b"}),
    ]);
    let ps: Vec<_> = s.specs.iter().map(|x| running(x, "1", "Up")).collect();
    let (c, calls) = run(&s, &ps, &[], "1", "2", |a, _| {
        if a[0] == "create" && a[2] == "b.orc-new" {
            std::thread::sleep(Duration::from_millis(1500));
        }
        None
    });
    assert!(c.ok, "{:?}", errors(&c));
    // a is replaced and checked while b's new one is still being created.
    assert!(
        pos(&calls, "inspect --type container a") < pos(&calls, "rename id-b b.orc-old"),
        "{calls:#?}"
    );
}

/// What a run killed during a recreate's check left: the old one set aside (stopped),
/// the new one holding the name.
fn killed_in_check(s: &Spec, state: &str, status: &str) -> Vec<serde_json::Value> {
    let mut old = running(s, "1", "Exited (137)");
    old["Id"] = format!("old-{}", s.name).into();
    old["Names"] = serde_json::json!([format!("{}.orc-old", s.name)]);
    old["State"] = "exited".into();
    old["Labels"]["orc.for"] = s.name.clone().into();
    let mut new = running(s, "2", status);
    new["Id"] = format!("new-{}", s.name).into();
    new["State"] = state.into();
    new["Labels"]["orc.for"] = s.name.clone().into();
    vec![old, new]
}

#[test]
fn an_old_one_set_aside_is_removed_only_when_its_new_one_runs() {
    let s = specs(&[serde_json::json!({"name": "a", "healthcheck": {"test": "true"}})]);
    // Killed after the swap, the new one healthy: it took over, the old one goes.
    let ps = killed_in_check(&s.specs[0], "running", "Up 1 minute (healthy)");
    let (_, calls) = run(&s, &ps, &[], "2", "2", |_, _| None);
    assert!(calls.iter().any(|c| c == "rm old-a"), "{calls:#?}");
    assert!(calls.iter().all(|c| c != "rm -f new-a"), "{calls:#?}");
    // Killed (or timed out) while the new one was still starting, or after it exited
    // or turned unhealthy: it never showed it works, so the old one comes back.
    for (state, status) in [
        ("running", "Up 3 seconds (health: starting)"),
        ("running", "Up 1 minute (unhealthy)"),
        ("exited", "Exited (3) 2 seconds ago"),
        ("restarting", "Restarting (1) 1 second ago"),
    ] {
        let ps = killed_in_check(&s.specs[0], state, status);
        let (_, calls) = run(&s, &ps, &[], "2", "2", |_, _| None);
        let at: Vec<usize> = ["rm -f new-a", "rename old-a a", "start a"]
            .iter()
            .map(|o| pos(&calls, o))
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{status}: {calls:#?}");
        assert!(
            calls.iter().all(|c| c != "rm old-a"),
            "{status}: {calls:#?}"
        );
    }
}
