//! Box containers against a real Docker engine (scripts/container-engine.sh
//! starts one; these tests fail, not skip, without it). Tests share the
//! engine, so they take turns and name their containers uniquely.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::*;

static ENGINE: Mutex<()> = Mutex::new(());

fn image() -> String {
    std::env::var("ORC_TEST_IMAGE").unwrap_or_else(|_| "orc-test/busybox:latest".into())
}

fn docker(args: &[&str]) -> String {
    let o = Command::new("docker").args(args).output().unwrap();
    assert!(o.status.success(), "docker {args:?}: {}", err(&o));
    out(&o).trim().to_string()
}

fn real_docker() -> PathBuf {
    let o = Command::new("sh")
        .args(["-c", "command -v docker"])
        .output()
        .unwrap();
    PathBuf::from(out(&o).trim())
}

/// A sandbox box with specs, a call-logging `docker` wrapper first on PATH, and cleanup.
struct BoxUnderTest {
    sb: Sandbox,
    prefix: String,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl BoxUnderTest {
    fn new(tag: &str) -> BoxUnderTest {
        let turn = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
        let v = Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .output();
        assert!(
            v.is_ok_and(|o| o.status.success()),
            "no Docker engine answers: run scripts/container-engine.sh start (scripts/test.sh does)"
        );
        let sb = Sandbox::new();
        let prefix = format!("orct-{tag}-{}", std::process::id());
        let wrapper = sb.path("bin/docker");
        write_mode(
            &wrapper,
            &format!(
                "#!/bin/sh\necho \"$*\" >> {}\nexec {} \"$@\"\n",
                sb.path("engine-calls").display(),
                real_docker().display()
            ),
            0o755,
        );
        let b = BoxUnderTest {
            sb,
            prefix,
            _turn: turn,
        };
        b.infra("1");
        b
    }

    fn name(&self, short: &str) -> String {
        format!("{}-{short}", self.prefix)
    }

    fn infra(&self, v: &str) {
        self.sb.config(&format!(
            r#"{{"containers": {{"engine": "docker", "infra_version": "{v}"}}}}"#
        ));
    }

    /// Writes a spec; `extra` is merged into a sleeping busybox container.
    fn spec(&self, short: &str, extra: serde_json::Value) {
        let mut v = serde_json::json!({
            "name": self.name(short),
            "image": image(),
            "command": ["sleep", "3600"],
            "init": true,
            "stop_timeout": 1,
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        write_mode(
            &self.sb.path(&format!("etc/orc/containers.d/{short}.json")),
            &serde_json::to_string_pretty(&v).unwrap(),
            0o644,
        );
    }

    fn orc(&self) -> Command {
        let mut c = self.sb.orc();
        c.env(
            "PATH",
            format!(
                "{}:{}",
                self.sb.path("bin").display(),
                std::env::var("PATH").unwrap()
            ),
        );
        c
    }

    fn converge(&self) -> std::process::Output {
        let _ = fs::remove_file(self.sb.path("engine-calls"));
        self.orc().arg("run").output().unwrap()
    }

    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.sb.path("engine-calls"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn id(&self, short: &str) -> String {
        docker(&["inspect", "--format", "{{.Id}}", &self.name(short)])
    }

    fn running(&self, short: &str) -> bool {
        docker(&[
            "inspect",
            "--format",
            "{{.State.Running}}",
            &self.name(short),
        ]) == "true"
    }

    fn exists(&self, short: &str) -> bool {
        Command::new("docker")
            .args(["inspect", &self.name(short)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    fn infra_file(&self) -> String {
        fs::read_to_string(self.sb.path("var/lib/orc/INFRA_VERSION")).unwrap_or_default()
    }

    fn actions(&self) -> Vec<(String, String)> {
        self.sb.last_report()["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches(&format!("{}-", self.prefix))
                        .to_string(),
                    c["action"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

impl Drop for BoxUnderTest {
    fn drop(&mut self) {
        let ids = Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("name={}", self.prefix)])
            .output()
            .unwrap();
        let ids: Vec<String> = out(&ids).split_whitespace().map(String::from).collect();
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .arg("rm")
                .arg("-f")
                .args(&ids)
                .output();
        }
    }
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn db_with_hooks(b: &BoxUnderTest) {
    b.spec(
        "db",
        serde_json::json!({
            "volumes": [{"source": "data", "target": "/data"}],
            "hooks": {
                "store_data": ["sh", "-c", "echo stored >> /data/hooks.log"],
                "restore_data": ["sh", "-c", "echo restored >> /data/hooks.log"],
                "post_start": ["sh", "-c", "echo started >> /data/hooks.log"]
            }
        }),
    );
}

#[test]
fn first_boot_creates_then_second_boot_does_nothing_in_one_engine_call() {
    let b = BoxUnderTest::new("first");
    db_with_hooks(&b);
    b.spec(
        "web",
        serde_json::json!({"depends_on": [b.name("db")], "labels": {"app": "web"}}),
    );
    let o = b.converge();
    expect_code(&o, 0);
    assert_eq!(b.actions(), pairs(&[("db", "create"), ("web", "create")]));
    for c in ["db", "web"] {
        assert!(b.running(c), "{c}");
        let labels = docker(&["inspect", "--format", "{{json .Config.Labels}}", &b.name(c)]);
        let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
        assert_eq!(labels["orc.managed"], "true");
        assert_eq!(labels["orc.infra-version"], "1");
        assert_eq!(labels["orc.spec-hash"].as_str().unwrap().len(), 64);
        for sub in ["data", "etc", "log", "run"] {
            assert!(
                b.sb.path(&format!("var/lib/orc/containers/{}/{sub}", b.name(c)))
                    .is_dir()
            );
        }
    }
    // db (a dependency) was created before web.
    let creates: Vec<String> = b
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("create"))
        .collect();
    assert!(
        creates[0].contains(&b.name("db")) && creates[1].contains(&b.name("web")),
        "{creates:?}"
    );
    assert_eq!(b.infra_file(), "1\n");
    assert_eq!(
        fs::read_to_string(b.sb.path(&format!(
            "var/lib/orc/containers/{}/data/hooks.log",
            b.name("db")
        )))
        .unwrap(),
        "started\n"
    );
    let ids = (b.id("db"), b.id("web"));
    let o = b.converge();
    expect_code(&o, 0);
    assert_eq!(b.actions(), pairs(&[("db", "keep"), ("web", "keep")]));
    assert_eq!(b.calls().len(), 1, "{:?}", b.calls());
    assert_eq!((b.id("db"), b.id("web")), ids);
    let list = b
        .orc()
        .args(["containers", "list", "--json"])
        .output()
        .unwrap();
    expect_code(&list, 0);
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows[0]["actual"], "running");
    assert_eq!(rows[0]["action"], "keep");
}

#[test]
fn infra_version_bump_recreates_all_and_volume_data_survives() {
    let b = BoxUnderTest::new("infra");
    db_with_hooks(&b);
    b.spec("web", serde_json::json!({}));
    expect_code(&b.converge(), 0);
    docker(&[
        "exec",
        &b.name("db"),
        "sh",
        "-c",
        "echo precious > /data/table",
    ]);
    let old = (b.id("db"), b.id("web"));
    b.infra("2");
    let o = b.converge();
    expect_code(&o, 0);
    assert_eq!(
        b.actions(),
        pairs(&[("db", "recreate"), ("web", "recreate")])
    );
    assert_ne!(b.id("db"), old.0);
    assert_ne!(b.id("web"), old.1);
    assert_eq!(
        docker(&["exec", &b.name("db"), "cat", "/data/table"]),
        "precious"
    );
    assert_eq!(
        docker(&["exec", &b.name("db"), "cat", "/data/hooks.log"]),
        "started\nstored\nrestored\nstarted"
    );
    assert_eq!(b.infra_file(), "2\n");
    let r = b.sb.last_report();
    assert_eq!(r["containers"][0]["reason"], "infra version 1 -> 2");
}

#[test]
fn changing_one_spec_recreates_only_that_one_and_a_stopped_one_is_started() {
    let b = BoxUnderTest::new("change");
    b.spec("a", serde_json::json!({}));
    b.spec("b", serde_json::json!({}));
    b.spec("c", serde_json::json!({}));
    expect_code(&b.converge(), 0);
    let (a, bb, c) = (b.id("a"), b.id("b"), b.id("c"));
    b.spec("b", serde_json::json!({"env": {"NEW": "1"}}));
    docker(&["stop", "-t", "1", &b.name("c")]);
    let o = b.converge();
    expect_code(&o, 0);
    assert_eq!(
        b.actions(),
        pairs(&[("a", "keep"), ("b", "recreate"), ("c", "start")])
    );
    assert_eq!(b.id("a"), a);
    assert_ne!(b.id("b"), bb);
    assert_eq!(b.id("c"), c);
    assert!(b.running("c"));
    assert_eq!(
        docker(&["exec", &b.name("b"), "sh", "-c", "echo $NEW"]),
        "1"
    );
}

#[test]
fn removed_spec_is_stored_then_removed_and_strangers_are_untouched() {
    let b = BoxUnderTest::new("remove");
    db_with_hooks(&b);
    b.spec("keep", serde_json::json!({}));
    expect_code(&b.converge(), 0);
    // A container orc did not create, same image, even a name in orc's pattern.
    let stranger = b.name("stranger");
    docker(&[
        "run",
        "-d",
        "--init",
        "--name",
        &stranger,
        &image(),
        "sleep",
        "3600",
    ]);
    fs::remove_file(b.sb.path("etc/orc/containers.d/db.json")).unwrap();
    let o = b.converge();
    expect_code(&o, 0);
    assert_eq!(b.actions(), pairs(&[("db", "remove"), ("keep", "keep")]));
    assert!(!b.exists("db"));
    let data =
        b.sb.path(&format!("var/lib/orc/containers/{}/data", b.name("db")));
    assert_eq!(
        fs::read_to_string(data.join("hooks.log")).unwrap(),
        "started\nstored\n"
    );
    assert!(b.running("stranger"), "an unlabelled container was touched");
    assert!(
        b.calls().iter().all(|c| !c.contains(&stranger)),
        "{:?}",
        b.calls()
    );
}

#[test]
fn failing_store_data_keeps_the_old_container_and_infra_version() {
    let b = BoxUnderTest::new("storefail");
    b.spec(
        "db",
        serde_json::json!({"hooks": {"store_data": ["sh", "-c", "echo cannot dump >&2; exit 3"]}}),
    );
    b.spec("web", serde_json::json!({}));
    expect_code(&b.converge(), 0);
    let db = b.id("db");
    b.infra("2");
    let o = b.converge();
    expect_code(&o, 1);
    assert_eq!(b.id("db"), db, "old container replaced");
    assert!(b.running("db"));
    assert_eq!(b.infra_file(), "1\n");
    let r = b.sb.last_report();
    let e = r["containers"][0]["error"].as_str().unwrap();
    assert!(
        e.contains("store_data")
            && e.contains("exit 3")
            && e.contains("cannot dump")
            && e.contains("kept"),
        "{e}"
    );
    assert_eq!(r["result"], "failed");
}

#[test]
fn an_invalid_spec_changes_nothing() {
    let b = BoxUnderTest::new("invalid");
    b.spec("a", serde_json::json!({}));
    expect_code(&b.converge(), 0);
    let a = b.id("a");
    for (file, body, want) in [
        (
            "bad.json",
            r#"{"name": "x", "image": "i", "colour": 1}"#.to_string(),
            "unknown field `colour`",
        ),
        (
            "ghost.json",
            format!(
                r#"{{"name": "{}", "image": "i", "depends_on": ["{}"]}}"#,
                b.name("cy1"),
                b.name("nobody")
            ),
            "unknown container",
        ),
        (
            "self.json",
            format!(
                r#"{{"name": "{}", "image": "i", "depends_on": ["{}"]}}"#,
                b.name("cy1"),
                b.name("cy1")
            ),
            "cannot depend on itself",
        ),
        (
            "zcycle.json",
            format!(
                r#"{{"name": "{}", "image": "i", "depends_on": ["{}"]}}"#,
                b.name("cy2"),
                b.name("a")
            ),
            "cycle",
        ),
        (
            "dup.json",
            format!(r#"{{"name": "{}", "image": "i"}}"#, b.name("a")),
            "already used",
        ),
    ] {
        let p = b.sb.path(&format!("etc/orc/containers.d/{file}"));
        fs::write(&p, body).unwrap();
        let deps = if file == "zcycle.json" {
            vec![b.name("cy2")]
        } else {
            vec![]
        };
        b.spec(
            "a",
            serde_json::json!({"env": {"CHANGED": "1"}, "depends_on": deps}),
        );
        let o = b.converge();
        expect_code(&o, 2);
        let named = if file == "zcycle.json" {
            "a.json"
        } else {
            file
        };
        assert!(
            err(&o).contains(named) && err(&o).contains(want),
            "{}",
            err(&o)
        );
        assert!(b.calls().is_empty(), "engine called: {:?}", b.calls());
        assert_eq!(b.id("a"), a);
        fs::remove_file(p).unwrap();
    }
}

#[test]
fn killing_orc_mid_converge_then_rerunning_converges() {
    let b = BoxUnderTest::new("kill");
    for c in ["a", "b", "c", "d"] {
        b.spec(c, serde_json::json!({}));
    }
    b.spec(
        "e",
        serde_json::json!({"depends_on": [b.name("a"), b.name("b")]}),
    );
    for (i, delay) in [300u64, 900, 1600].into_iter().enumerate() {
        b.infra(&format!("{}", i + 2));
        let mut child = b
            .orc()
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        child.wait().unwrap();
        let o = b.converge();
        expect_code(&o, 0);
        for c in ["a", "b", "c", "d", "e"] {
            assert!(b.running(c), "{c} after kill at {delay} ms");
            let v = docker(&[
                "inspect",
                "--format",
                "{{index .Config.Labels \"orc.infra-version\"}}",
                &b.name(c),
            ]);
            assert_eq!(v, format!("{}", i + 2));
        }
        assert_eq!(b.infra_file(), format!("{}\n", i + 2));
        expect_code(&b.converge(), 0);
        assert!(
            b.actions().iter().all(|(_, a)| a == "keep"),
            "{:?}",
            b.actions()
        );
    }
}

#[test]
fn a_missing_image_is_loaded_from_its_archive() {
    let b = BoxUnderTest::new("archive");
    let tag = format!("orc-test/archived:{}", std::process::id());
    docker(&["tag", &image(), &tag]);
    let archive = b.sb.path("srv/images/archived.tar");
    fs::create_dir_all(archive.parent().unwrap()).unwrap();
    docker(&["save", "-o", archive.to_str().unwrap(), &tag]);
    docker(&["rmi", &tag]);
    b.spec(
        "app",
        serde_json::json!({"image": tag, "image_archive": "/srv/images/archived.tar"}),
    );
    let o = b.converge();
    expect_code(&o, 0);
    assert!(b.running("app"));
    assert!(
        b.calls().iter().any(|c| c.starts_with("load -i")),
        "{:?}",
        b.calls()
    );
    drop(b);
    let _ = Command::new("docker").args(["rmi", &tag]).output();
}
