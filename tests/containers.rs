//! Box containers against a real Docker engine (scripts/container-engine.sh
//! starts one; these tests fail, not skip, without it). Tests share the
//! engine, so they take turns and name their containers uniquely.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
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
        // Unique to this run even across checkouts and pid namespaces sharing the engine.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let prefix = format!("orct-{tag}-{}-{nanos:08x}", std::process::id());
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

    /// The label on every container the test itself makes (not orc): its cleanup's key.
    fn test_label(&self) -> String {
        format!("orc-test.scope={}", self.prefix)
    }

    fn infra(&self, v: &str) {
        self.sb.config(&format!(
            r#"{{"containers": {{"engine": "docker", "infra_version": "{v}", "scope": "{}"}}}}"#,
            self.prefix
        ));
    }

    /// Writes a network spec (`networks.d/SHORT.json`), named uniquely.
    fn network(&self, short: &str, extra: serde_json::Value) {
        let mut v = serde_json::json!({"name": self.name(short)});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        write_mode(
            &self.sb.path(&format!("etc/orc/networks.d/{short}.json")),
            &serde_json::to_string_pretty(&v).unwrap(),
            0o644,
        );
    }

    fn inspect(&self, short: &str, format: &str) -> String {
        docker(&["inspect", "--format", format, &self.name(short)])
    }

    fn errors(&self) -> Vec<(String, String)> {
        self.sb.last_report()["containers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| {
                let e = c["error"].as_str()?;
                Some((
                    c["name"]
                        .as_str()
                        .unwrap()
                        .replace(&format!("{}-", self.prefix), ""),
                    e.to_string(),
                ))
            })
            .collect()
    }

    /// The new one of a db with a healthcheck that fails, over an old one that passed
    /// (converged): the old one's id.
    fn db_about_to_turn_unhealthy(&self) -> String {
        let health = |test: &str| serde_json::json!({"test": ["CMD", test], "interval": "1s", "retries": 600});
        self.spec("db", serde_json::json!({"healthcheck": health("true")}));
        expect_code(&self.converge(), 0);
        let db = self.id("db");
        self.spec("db", serde_json::json!({"healthcheck": health("false")}));
        db
    }

    /// Waits (30 s at most) until `short`'s new one holds its name and the old one
    /// (`old`) waits aside: orc is in the new one's check.
    fn wait_swapped(&self, short: &str, old: &str) {
        let t = std::time::Instant::now();
        let aside = format!("{short}.orc-old");
        while !(self.exists(&aside) && self.exists(short) && self.id(short) != old) {
            assert!(t.elapsed() < Duration::from_secs(30), "never swapped");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A converge now exits 0 and keeps every container as it is.
    #[track_caller]
    fn converge_keeps_all(&self) {
        expect_code(&self.converge(), 0);
        assert!(
            self.actions().iter().all(|(_, a)| a == "keep"),
            "{:?}",
            self.actions()
        );
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
    /// Removes what this run put on the engine, found by label, never by name: orc's
    /// containers and networks of this box's scope (or of a scope it names `PREFIX-…`)
    /// and the containers the test made itself (`orc-test.scope`).
    fn drop(&mut self) {
        let ours = |kind: &[&str]| -> Vec<String> {
            let mut args = kind.to_vec();
            args.extend(["--filter", "label=orc.scope", "--format"]);
            args.push("{{.ID}} {{.Label \"orc.scope\"}}");
            let o = Command::new("docker").args(&args).output().unwrap();
            out(&o)
                .lines()
                .filter_map(|l| l.split_once(' '))
                .filter(|(_, s)| *s == self.prefix || s.starts_with(&format!("{}-", self.prefix)))
                .map(|(id, _)| id.to_string())
                .collect()
        };
        let mut ids = ours(&["ps", "-a"]);
        let made = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label={}", self.test_label()),
            ])
            .output()
            .unwrap();
        ids.extend(out(&made).split_whitespace().map(String::from));
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .arg("rm")
                .arg("-f")
                .args(&ids)
                .output();
        }
        let nets = ours(&["network", "ls"]);
        if !nets.is_empty() {
            let _ = Command::new("docker")
                .arg("network")
                .arg("rm")
                .args(&nets)
                .output();
        }
    }
}

/// Whether the report's errors (from [`BoxUnderTest::errors`]) hold one for `name` that
/// says every one of `parts`.
fn has_error(errors: &[(String, String)], name: &str, parts: &[&str]) -> bool {
    errors
        .iter()
        .any(|(n, e)| n == name && parts.iter().all(|p| e.contains(p)))
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

/// The canonical JSON of `db_with_hooks`'s db and the web spec below, written out by
/// hand in the spec's field order (the hash label must be its sha256).
fn canonical(b: &BoxUnderTest, c: &str) -> String {
    let head = format!(
        r#"{{"name":"{}","image":"{}","command":["sleep","3600"],"#,
        b.name(c),
        image()
    );
    let hook = |s: &str| format!(r#"["sh","-c","echo {s} >> /data/hooks.log"]"#);
    match c {
        "db" => format!(
            r#"{head}"env":{{}},"volumes":[{{"source":"data","target":"/data","read_only":false}}],"ports":[],"restart":"unless-stopped","labels":{{}},"depends_on":[],"init":true,"stop_timeout":1,"hooks":{{"store_data":{},"restore_data":{},"post_start":{}}}}}"#,
            hook("stored"),
            hook("restored"),
            hook("started")
        ),
        _ => format!(
            r#"{head}"env":{{}},"volumes":[],"ports":[],"restart":"unless-stopped","labels":{{"app":"web"}},"depends_on":["{}"],"init":true,"stop_timeout":1,"hooks":{{}}}}"#,
            b.name("db")
        ),
    }
}

/// What `orc.spec-hash` hashes: the canonical JSON without `depends_on` and `hooks`
/// (they never need a recreate), then the image's ID.
fn hashed(b: &BoxUnderTest, c: &str) -> String {
    let mut core = canonical(b, c);
    let deps = format!(r#""depends_on":["{}"]"#, b.name("db"));
    core = core.replace(&deps, r#""depends_on":[]"#);
    if let Some(at) = core.find(r#""hooks":{"store_data""#) {
        core.replace_range(at.., r#""hooks":{}}"#);
    }
    let id = docker(&["image", "inspect", "--format", "{{.Id}}", &image()]);
    format!("{core}\nimage {}", id.trim())
}

/// sha256 by coreutils' `sha256sum`, not by orc's code.
fn sha256_hex(text: &str) -> String {
    let mut c = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    String::from_utf8(o.stdout).unwrap()[..64].to_string()
}

#[test]
fn first_boot_creates_then_second_boot_does_nothing_in_two_engine_calls() {
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
        assert_eq!(labels["orc.scope"], b.prefix.as_str());
        assert_eq!(labels["orc.infra-version"], "1");
        assert_eq!(labels["orc.spec-hash"], sha256_hex(&hashed(&b, c)), "{c}");
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
        .filter(|c| c.starts_with("run -d"))
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
    // One listing of the containers, one of the networks and one of the images, in
    // parallel.
    assert_eq!(b.calls().len(), 3, "{:?}", b.calls());
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
        "--label",
        &b.test_label(),
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
fn failing_store_data_leaves_db_and_web_running_and_keeps_infra_version() {
    let b = BoxUnderTest::new("storefail");
    b.spec(
        "db",
        serde_json::json!({"hooks": {"store_data": ["sh", "-c", "echo cannot dump >&2; exit 3"]}}),
    );
    b.spec("web", serde_json::json!({"depends_on": [b.name("db")]}));
    expect_code(&b.converge(), 0);
    let (db, web) = (b.id("db"), b.id("web"));
    b.infra("2");
    let o = b.converge();
    expect_code(&o, 1);
    assert_eq!(b.id("db"), db, "old container replaced");
    assert_eq!(b.id("web"), web, "web replaced");
    assert!(b.running("db"), "db down");
    assert!(b.running("web"), "web (a dependent of db) left down");
    assert_eq!(b.infra_file(), "1\n");
    let errors = b.errors();
    assert!(
        errors.iter().any(|(n, e)| n == "web"
            && e.starts_with("not recreated: its dependency")
            && e.ends_with("-db failed")),
        "{errors:?}"
    );
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
fn an_invalid_spec_fails_alone_the_others_converge_and_nothing_is_removed() {
    let b = BoxUnderTest::new("invalid");
    b.spec("a", serde_json::json!({}));
    b.spec("keep", serde_json::json!({}));
    expect_code(&b.converge(), 0);
    let keep = b.id("keep");
    let cases = [
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
        (
            "hook.json",
            format!(
                r#"{{"name": "{}", "image": "i", "hooks": {{"post_start": []}}}}"#,
                b.name("h")
            ),
            "hooks.post_start: must not be empty",
        ),
        (
            "img.json",
            format!(r#"{{"name": "{}", "image": "--privileged"}}"#, b.name("h")),
            "is not an image reference",
        ),
        (
            "env.json",
            format!(
                r#"{{"name": "{}", "image": "i", "env": {{"A B": "1"}}}}"#,
                b.name("h")
            ),
            "is not a variable name",
        ),
        (
            "net.json",
            format!(
                r#"{{"name": "{}", "image": "i", "networks": ["nowhere"]}}"#,
                b.name("h")
            ),
            "\"nowhere\" is not declared",
        ),
        (
            "health.json",
            format!(
                r#"{{"name": "{}", "image": "i", "healthcheck": {{"test": "true", "interval": "soon"}}}}"#,
                b.name("h")
            ),
            "is not a duration",
        ),
    ];
    for (i, (file, body, want)) in cases.into_iter().enumerate() {
        // configure.d runs, and "keep"'s spec turns invalid too: its container stays.
        b.sb.script(
            "configure.d",
            "10-mark",
            &format!("echo {i} > \"$ORC_ROOT/configured\""),
        );
        let p = b.sb.path(&format!("etc/orc/containers.d/{file}"));
        fs::write(&p, body).unwrap();
        let keep_file = b.sb.path("etc/orc/containers.d/keep.json");
        let keep_text = fs::read_to_string(&keep_file).unwrap();
        fs::write(&keep_file, keep_text.replace("\"init\"", "\"innit\"")).unwrap();
        let deps = if file == "zcycle.json" {
            vec![b.name("cy2")]
        } else {
            vec![]
        };
        b.spec(
            "a",
            serde_json::json!({"env": {"CHANGED": i.to_string()}, "depends_on": deps}),
        );
        let a = b.id("a");
        let o = b.converge();
        expect_code(&o, 1);
        let named = if file == "zcycle.json" {
            "a.json"
        } else {
            file
        };
        let errors = b.errors();
        assert!(
            errors
                .iter()
                .any(|(_, e)| e.contains(named) && e.contains(want)),
            "{file}: {errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|(_, e)| e.contains("keep.json") && e.contains("innit")),
            "{errors:?}"
        );
        assert!(err(&o).contains(named), "{}", err(&o));
        assert_eq!(
            fs::read_to_string(b.sb.path("configured")).unwrap(),
            format!("{i}\n"),
            "configure.d did not run"
        );
        // The others converge; the one an invalid file describes keeps running.
        assert_eq!(b.id("keep"), keep);
        assert!(b.running("keep"));
        assert!(b.running("a"));
        if matches!(file, "zcycle.json" | "dup.json") {
            assert_eq!(b.id("a"), a, "{file}: a was touched");
        } else {
            assert_ne!(b.id("a"), a, "{file}: a was not converged");
        }
        assert_eq!(b.sb.last_report()["result"], "failed");
        fs::remove_file(p).unwrap();
        fs::write(&keep_file, keep_text).unwrap();
    }
    let o = b.converge();
    expect_code(&o, 0);
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
            assert!(
                b.running(c),
                "{c} after kill at {delay} ms: {}\n{}",
                err(&o),
                docker(&[
                    "ps",
                    "-a",
                    "--filter",
                    &format!("name={}", b.prefix),
                    "--format",
                    "{{.Names}} {{.Status}} {{.Label \"orc.for\"}}"
                ])
            );
            let v = docker(&[
                "inspect",
                "--format",
                "{{index .Config.Labels \"orc.infra-version\"}}",
                &b.name(c),
            ]);
            assert_eq!(v, format!("{}", i + 2));
        }
        assert_eq!(b.infra_file(), format!("{}\n", i + 2));
        b.converge_keeps_all();
    }
}

#[test]
fn a_missing_image_is_loaded_from_its_archive() {
    let b = BoxUnderTest::new("archive");
    let tag = format!("orc-test/archived:{}", b.prefix);
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

#[test]
fn two_scopes_on_one_engine_never_touch_each_other() {
    let a = BoxUnderTest::new("scope-a");
    a.spec("app", serde_json::json!({}));
    a.spec("old", serde_json::json!({}));
    expect_code(&a.converge(), 0);
    // Box B: another scope on the same engine (its drop does not hold the engine lock:
    // both boxes live in this one test).
    let sb = Sandbox::new();
    let b_scope = format!("{}-other", a.prefix);
    sb.config(&format!(
        r#"{{"containers": {{"engine": "docker", "infra_version": "1", "scope": "{b_scope}"}}}}"#
    ));
    let b_spec = |short: &str, name: &str| {
        write_mode(
            &sb.path(&format!("etc/orc/containers.d/{short}.json")),
            &format!(
                r#"{{"name": "{name}", "image": "{}", "command": ["sleep", "3600"], "init": true, "stop_timeout": 1}}"#,
                image()
            ),
            0o644,
        )
    };
    b_spec("mine", &a.name("b-mine"));
    let run_b = || sb.orc().arg("run").output().unwrap();
    expect_code(&run_b(), 0);
    let before = (a.id("app"), a.id("old"), a.id("b-mine"));
    // A drops a spec: only A's container goes; B converges again: A's are not B's orphans.
    fs::remove_file(a.sb.path("etc/orc/containers.d/old.json")).unwrap();
    expect_code(&a.converge(), 0);
    assert!(!a.exists("old"));
    expect_code(&run_b(), 0);
    assert_eq!(
        (a.id("app"), a.id("b-mine")),
        (before.0.clone(), before.2.clone())
    );
    assert!(a.running("app") && a.running("b-mine"));
    // B wants a name A's box uses: a clear error, A's container untouched.
    b_spec("clash", &a.name("app"));
    let o = run_b();
    expect_code(&o, 1);
    let r = sb.last_report();
    let clash = r["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == a.name("app").as_str())
        .unwrap()
        .clone();
    let e = clash["error"].as_str().unwrap();
    assert!(
        e.contains(&format!("taken by a container of scope {}", a.prefix))
            && e.contains("untouched"),
        "{e}"
    );
    assert_eq!(a.id("app"), before.0);
    assert!(a.running("app"));
    // A name taken by a container orc did not make at all: the same clear error.
    docker(&[
        "run",
        "-d",
        "--init",
        "--label",
        &a.test_label(),
        "--name",
        &a.name("stranger"),
        &image(),
        "sleep",
        "3600",
    ]);
    fs::remove_file(sb.path("etc/orc/containers.d/clash.json")).unwrap();
    b_spec("stranger", &a.name("stranger"));
    expect_code(&run_b(), 1);
    let e = sb.last_report().to_string();
    assert!(e.contains("is taken by a container outside scope"), "{e}");
    assert!(a.running("stranger"));
}

/// A busybox container that becomes healthy `after` seconds after it starts.
fn slow_db(b: &BoxUnderTest, after: u32, extra: serde_json::Value) {
    let mut v = serde_json::json!({
        "command": ["sh", "-c", format!("sleep {after}; touch /tmp/ready; exec sleep 3600")],
        "healthcheck": {"test": ["CMD", "test", "-f", "/tmp/ready"], "interval": "500ms", "timeout": "2s", "retries": 30},
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    b.spec("db", v);
}

fn started_at(b: &BoxUnderTest, short: &str) -> f64 {
    let t = b.inspect(short, "{{.State.StartedAt}}");
    let o = Command::new("date")
        .args(["-d", &t, "+%s.%N"])
        .output()
        .unwrap();
    out(&o).trim().parse().unwrap()
}

#[test]
fn a_dependent_starts_only_once_its_dependency_is_healthy_and_migrations_see_it_healthy() {
    let b = BoxUnderTest::new("healthy");
    slow_db(&b, 3, serde_json::json!({}));
    b.spec(
        "web",
        serde_json::json!({"depends_on": {b.name("db"): {"condition": "service_healthy"}}}),
    );
    b.sb.script(
        "migration.d",
        "10-migrate",
        &format!(
            "docker inspect --format '{{{{.State.Health.Status}}}}' {} > \"$ORC_ROOT/seen-by-migration\"",
            b.name("db")
        ),
    );
    let sock_path = b.sb.path("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    let o = b
        .orc()
        .env("NOTIFY_SOCKET", &sock_path)
        .arg("run")
        .output()
        .unwrap();
    expect_code(&o, 0);
    assert_eq!(
        fs::read_to_string(b.sb.path("seen-by-migration"))
            .unwrap()
            .trim(),
        "healthy"
    );
    let notes = datagrams(&sock).join("\n");
    assert!(
        notes.contains(&format!(
            "STATUS=containers: waiting for {} to be healthy",
            b.name("db")
        )),
        "{notes}"
    );
    assert!(notes.contains("EXTEND_TIMEOUT_USEC="), "{notes}");
    let list = b
        .orc()
        .args(["containers", "list", "--json"])
        .output()
        .unwrap();
    expect_code(&list, 0);
    let rows: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(rows[0]["health"], "healthy", "{rows}");
    assert_eq!(rows[0]["scope"], b.prefix.as_str(), "{rows}");
    let table = b.orc().args(["containers", "list"]).output().unwrap();
    assert!(out(&table).contains("healthy"), "{}", out(&table));
    let (db, web) = (started_at(&b, "db"), started_at(&b, "web"));
    assert!(web - db >= 3.0, "web started {:.2} s after db", web - db);
    assert_eq!(b.inspect("db", "{{.State.Health.Status}}"), "healthy");
    // Converged, with a healthcheck: the no-op stays at three engine calls (the
    // migration script's own `docker inspect` aside).
    expect_code(&b.converge(), 0);
    let calls: Vec<String> = b
        .calls()
        .into_iter()
        .filter(|c| !c.starts_with("inspect --format {{.State.Health"))
        .collect();
    assert_eq!(calls.len(), 3, "{calls:?}");
}

#[test]
fn a_dependency_that_never_becomes_healthy_fails_the_step_by_name() {
    let b = BoxUnderTest::new("unhealthy");
    b.spec(
        "db",
        serde_json::json!({"healthcheck": {"test": "echo db is not accepting connections; exit 1", "interval": "300ms", "retries": 2}}),
    );
    b.spec(
        "web",
        serde_json::json!({"depends_on": {b.name("db"): {"condition": "service_healthy"}}}),
    );
    b.sb.script("migration.d", "10-migrate", "touch \"$ORC_ROOT/migrated\"");
    let o = b.converge();
    expect_code(&o, 1);
    let errors = b.errors();
    let db = &errors.iter().find(|(n, _)| n == "db").unwrap().1;
    assert!(
        db.contains(&format!("{} is not healthy: unhealthy", b.name("db")))
            && db.contains("db is not accepting connections"),
        "{db}"
    );
    assert!(
        errors
            .iter()
            .any(|(n, e)| n == "web" && e.contains("dependency")),
        "{errors:?}"
    );
    assert!(
        !b.exists("web"),
        "a dependent of an unhealthy container was created"
    );
    assert!(!b.sb.path("migrated").exists(), "migrations ran");
    assert!(err(&o).contains(&b.name("db")), "{}", err(&o));
}

#[test]
fn networks_are_created_joined_changed_and_removed() {
    let b = BoxUnderTest::new("net");
    b.network("front", serde_json::json!({"labels": {"tier": "front"}}));
    b.spec(
        "db",
        serde_json::json!({"networks": {b.name("front"): {"aliases": ["database"]}}}),
    );
    b.spec("web", serde_json::json!({"networks": [b.name("front")]}));
    let o = b.converge();
    expect_code(&o, 0);
    let net = b.name("front");
    let labels = docker(&["network", "inspect", "--format", "{{json .Labels}}", &net]);
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(labels["orc.scope"], b.prefix.as_str());
    assert_eq!(labels["tier"], "front");
    for target in [b.name("db"), "database".to_string()] {
        docker(&[
            "exec",
            &b.name("web"),
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            &target,
        ]);
    }
    let net_id = docker(&["network", "inspect", "--format", "{{.Id}}", &net]);
    let web = b.id("web");
    expect_code(&b.converge(), 0);
    assert_eq!(b.calls().len(), 3, "{:?}", b.calls());
    // A changed network is recreated, after its containers are stopped.
    b.network("front", serde_json::json!({"labels": {"tier": "edge"}}));
    expect_code(&b.converge(), 0);
    assert_ne!(
        docker(&["network", "inspect", "--format", "{{.Id}}", &net]),
        net_id
    );
    assert_ne!(b.id("web"), web);
    docker(&[
        "exec",
        &b.name("web"),
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "database",
    ]);
    assert!(
        b.actions()
            .contains(&("web".to_string(), "recreate".to_string()))
    );
    // No longer declared: removed after its containers left it.
    fs::remove_file(b.sb.path("etc/orc/networks.d/front.json")).unwrap();
    b.spec("db", serde_json::json!({}));
    b.spec("web", serde_json::json!({}));
    expect_code(&b.converge(), 0);
    let gone = Command::new("docker")
        .args(["network", "inspect", &net])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "network {net} still there");
}

#[test]
fn every_compose_field_reaches_the_engine() {
    let b = BoxUnderTest::new("fields");
    b.spec(
        "app",
        serde_json::json!({
            "healthcheck": {"test": ["CMD", "true"], "interval": "1s", "timeout": "2s", "retries": 4, "start_period": "3s"},
            "cap_add": ["NET_ADMIN"], "cap_drop": ["MKNOD"], "devices": ["/dev/zero:/dev/myzero:r"],
            "tmpfs": ["/scratch:size=8m"], "extra_hosts": {"db.box": "10.1.2.3"},
            "sysctls": {"net.core.somaxconn": 1024}, "ulimits": {"nofile": {"soft": 1024, "hard": 2048}},
            "read_only": true, "security_opt": ["no-new-privileges"], "pids_limit": 100, "cpus": 0.5,
            "logging": {"driver": "json-file", "options": {"max-size": "1m"}},
            "stop_signal": "SIGUSR1", "working_dir": "/tmp", "shm_size": "32m"
        }),
    );
    expect_code(&b.converge(), 0);
    let j: serde_json::Value = serde_json::from_str(&b.inspect("app", "{{json .}}")).unwrap();
    let (h, c) = (&j["HostConfig"], &j["Config"]);
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"])
    );
    assert_eq!(c["Healthcheck"]["Interval"], 1_000_000_000u64);
    assert_eq!(c["Healthcheck"]["Timeout"], 2_000_000_000u64);
    assert_eq!(c["Healthcheck"]["StartPeriod"], 3_000_000_000u64);
    assert_eq!(c["Healthcheck"]["Retries"], 4);
    assert!(
        h["CapAdd"].to_string().contains("NET_ADMIN"),
        "{}",
        h["CapAdd"]
    );
    assert!(
        h["CapDrop"].to_string().contains("MKNOD"),
        "{}",
        h["CapDrop"]
    );
    assert_eq!(h["Devices"][0]["PathInContainer"], "/dev/myzero");
    assert_eq!(h["Devices"][0]["CgroupPermissions"], "r");
    assert_eq!(h["Tmpfs"]["/scratch"], "size=8m");
    assert_eq!(h["ExtraHosts"], serde_json::json!(["db.box:10.1.2.3"]));
    assert_eq!(h["Sysctls"]["net.core.somaxconn"], "1024");
    assert_eq!(
        h["Ulimits"][0],
        serde_json::json!({"Name": "nofile", "Soft": 1024, "Hard": 2048})
    );
    assert_eq!(h["ReadonlyRootfs"], true);
    assert_eq!(h["SecurityOpt"], serde_json::json!(["no-new-privileges"]));
    assert_eq!(h["PidsLimit"], 100);
    assert_eq!(h["NanoCpus"], 500_000_000u64);
    assert_eq!(
        h["LogConfig"],
        serde_json::json!({"Type": "json-file", "Config": {"max-size": "1m"}})
    );
    assert_eq!(c["StopSignal"], "SIGUSR1");
    assert_eq!(c["WorkingDir"], "/tmp");
    assert_eq!(h["ShmSize"], 32 * 1024 * 1024);
    assert_eq!(b.inspect("app", "{{.State.Health.Status}}"), "healthy");
}

#[test]
fn a_volume_symlink_leading_out_of_the_root_never_mounts_the_host_path() {
    let b = BoxUnderTest::new("volesc");
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("host-secret"), "secret").unwrap();
    fs::create_dir_all(b.sb.path("srv")).unwrap();
    std::os::unix::fs::symlink(host.path(), b.sb.path("srv/abs")).unwrap();
    std::os::unix::fs::symlink("../../../../../../..", b.sb.path("srv/up")).unwrap();
    b.spec(
        "app",
        serde_json::json!({"volumes": [{"source": "/srv/abs", "target": "/abs"}, {"source": "/srv/up", "target": "/up"}]}),
    );
    expect_code(&b.converge(), 0);
    let mounts = b.inspect("app", "{{range .Mounts}}{{.Source}}\n{{end}}");
    for m in mounts.lines() {
        assert!(
            m.starts_with(b.sb.root().to_str().unwrap()),
            "{m} is outside the root"
        );
    }
    let seen = docker(&["exec", &b.name("app"), "ls", "-a", "/abs", "/up"]);
    assert!(!seen.contains("host-secret"), "{seen}");
    assert!(seen.contains("srv"), "/up is the root itself: {seen}");
}

#[test]
fn no_specs_means_no_engine_call_and_a_missing_engine_names_the_specs() {
    let sb = Sandbox::new();
    let bin = sb.path("bin");
    fs::create_dir_all(&bin).unwrap();
    write_mode(
        &bin.join("docker"),
        &format!(
            "#!/bin/sh\necho \"$*\" >> {}\nexit 1\n",
            sb.path("calls").display()
        ),
        0o755,
    );
    let run = |path: &std::path::Path| {
        let mut c = sb.orc();
        c.env("PATH", path).arg("run");
        c.output().unwrap()
    };
    // No specs dir, then an empty one: no engine call at all.
    expect_code(&run(&bin), 0);
    fs::create_dir_all(sb.path("etc/orc/containers.d")).unwrap();
    write_mode(&sb.path("etc/orc/containers.d/.hidden.json"), "{", 0o644);
    expect_code(&run(&bin), 0);
    assert!(!sb.path("calls").exists(), "the engine was called");
    // Specs but no engine CLI on PATH: one line naming what is missing and who wants it.
    let empty = sb.path("empty-bin");
    fs::create_dir_all(&empty).unwrap();
    for n in ["app", "db"] {
        write_mode(
            &sb.path(&format!("etc/orc/containers.d/{n}.json")),
            &format!(r#"{{"name": "{n}", "image": "busybox"}}"#),
            0o644,
        );
    }
    let o = run(&empty);
    expect_code(&o, 1);
    let want = format!(
        "no container engine: neither docker nor podman is on PATH; wanted by {}, db.json",
        sb.path("etc/orc/containers.d/app.json").display()
    );
    let stderr = err(&o);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("no container engine"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", err(&o));
    assert!(lines[0].contains(&want), "{}", err(&o));
}

#[test]
fn removing_the_last_spec_removes_its_container_then_the_engine_is_left_alone() {
    let b = BoxUnderTest::new("last");
    b.sb.config(&format!(
        r#"{{"containers": {{"engine": "docker", "scope": "{}"}}}}"#,
        b.prefix
    ));
    b.spec("only", serde_json::json!({}));
    expect_code(&b.converge(), 0);
    assert!(b.running("only"));
    fs::remove_file(b.sb.path("etc/orc/containers.d/only.json")).unwrap();
    // No spec and no infra_version, but the last converge left a container: it goes.
    expect_code(&b.converge(), 0);
    assert!(!b.exists("only"));
    assert_eq!(b.actions(), pairs(&[("only", "remove")]));
    // Nothing left: the next boot makes no engine call at all.
    expect_code(&b.converge(), 0);
    assert!(b.calls().is_empty(), "{:?}", b.calls());
}

#[test]
fn a_dependent_of_a_one_shot_job_starts_after_it_completed() {
    let b = BoxUnderTest::new("oneshot");
    b.spec(
        "init",
        serde_json::json!({"restart": "no", "command": ["sh", "-c", "sleep 2; exit 0"]}),
    );
    b.spec(
        "app",
        serde_json::json!({"depends_on": {b.name("init"): {"condition": "service_completed_successfully"}}}),
    );
    expect_code(&b.converge(), 0);
    assert_eq!(
        b.inspect("init", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 0"
    );
    let finished = b.inspect("init", "{{.State.FinishedAt}}");
    let o = Command::new("date")
        .args(["-d", &finished, "+%s.%N"])
        .output()
        .unwrap();
    let finished: f64 = out(&o).trim().parse().unwrap();
    assert!(
        started_at(&b, "app") >= finished,
        "app started before init completed"
    );
    // A job that fails: it is rolled back, and its dependents are not recreated.
    let app = b.id("app");
    b.spec(
        "init",
        serde_json::json!({"restart": "no", "command": ["sh", "-c", "exit 4"]}),
    );
    b.spec(
        "app",
        serde_json::json!({"env": {"V": "2"}, "depends_on": {b.name("init"): {"condition": "service_completed_successfully"}}}),
    );
    expect_code(&b.converge(), 1);
    let errors = b.errors();
    assert!(
        has_error(&errors, "init", &["rolled back", "exited with code 4"]),
        "{errors:?}"
    );
    assert_eq!(
        b.id("app"),
        app,
        "a dependent of a failed job was recreated"
    );
}

/// Builds `tag` from a Dockerfile given on stdin (no context).
fn build(tag: &str, dockerfile: &str) {
    use std::io::Write;
    let mut c = Command::new("docker")
        .args(["build", "-q", "-t", tag, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(dockerfile.as_bytes())
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "docker build {tag}: {}", err(&o));
}

/// Images made for one test, removed when it ends.
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for t in &self.0 {
            let _ = Command::new("docker").args(["rmi", "-f", t]).output();
        }
    }
}

/// What a published port answers over HTTP (`None`: nothing there).
fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], port).into(),
        Duration::from_secs(2),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.split("\r\n\r\n").nth(1).map(|b| b.trim().to_string())
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An httpd answering `body` on host port `port`.
fn web_spec(b: &BoxUnderTest, port: u16, body: &str, extra: serde_json::Value) {
    let mut v = serde_json::json!({
        "command": ["sh", "-c", format!("mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 80 -h /www")],
        "ports": [format!("127.0.0.1:{port}:80")],
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    b.spec("web", v);
}

fn answers(port: u16, want: &str) -> bool {
    for _ in 0..20 {
        if http_get(port).as_deref() == Some(want) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn a_spec_written_by_configure_d_converges_in_the_same_run_and_one_invalid_fails_alone() {
    let b = BoxUnderTest::new("rendered");
    // configure.d renders three specs: two valid, one with a typo.
    let spec = |short: &str, extra: &str| {
        format!(
            r#"{{"name": "{}", "image": "{}", "command": ["sleep", "3600"], "init": true, "stop_timeout": 1{extra}}}"#,
            b.name(short),
            image()
        )
    };
    let render = format!(
        "d=\"$ORC_ROOT/etc/orc/containers.d\"\nmkdir -p \"$d\"\ncat > \"$d/a.json\" <<'X'\n{}\nX\ncat > \"$d/b.json\" <<'X'\n{}\nX\ncat > \"$d/c.json\" <<'X'\n{}\nX\ntouch \"$ORC_ROOT/configured\"",
        spec("a", ""),
        spec("b", r#", "env": {"V": "1"}"#),
        spec("c", r#", "enviroment": {"V": "1"}"#)
    );
    b.sb.script("configure.d", "20-render", &render);
    let o = b.converge();
    expect_code(&o, 1);
    assert!(b.sb.path("configured").exists(), "configure.d did not run");
    assert!(b.running("a") && b.running("b"), "{}", err(&o));
    assert!(!b.exists("c"));
    let errors = b.errors();
    assert!(
        errors
            .iter()
            .any(|(_, e)| e.contains("c.json") && e.contains("enviroment")),
        "{errors:?}"
    );
    assert!(err(&o).contains("c.json"), "{}", err(&o));
    // Fixed by the next rendering: converged (INFRA_VERSION is written only now, so
    // a and b are recreated once), then nothing changes.
    b.sb.script(
        "configure.d",
        "20-render",
        &render.replace("enviroment", "env"),
    );
    expect_code(&b.converge(), 0);
    assert!(b.running("a") && b.running("b") && b.running("c"));
    assert_eq!(b.infra_file(), "1\n");
    let (a, bb) = (b.id("a"), b.id("b"));
    b.converge_keeps_all();
    assert_eq!((b.id("a"), b.id("b")), (a, bb));
}

#[test]
fn a_recreate_that_cannot_create_or_start_leaves_the_old_one_answering() {
    let b = BoxUnderTest::new("keepold");
    let port = free_port();
    web_spec(&b, port, "old", serde_json::json!({}));
    expect_code(&b.converge(), 0);
    assert!(answers(port, "old"));
    let old = b.id("web");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    for (case, extra, want) in [
        (
            "unknown image",
            serde_json::json!({"image": "localhost:1/orc-none/nothing:1"}),
            "image localhost:1/orc-none/nothing:1",
        ),
        (
            "bad capability",
            serde_json::json!({"cap_add": ["CAP_NOT_A_REAL_ONE"]}),
            "CAP_NOT_A_REAL_ONE",
        ),
        (
            "taken port",
            serde_json::json!({"ports": [format!("127.0.0.1:{port}:80"), format!("127.0.0.1:{taken_port}:81")]}),
            "rolled back",
        ),
    ] {
        web_spec(&b, port, "new", extra);
        let o = b.converge();
        expect_code(&o, 1);
        assert_eq!(b.id("web"), old, "{case}: the old container was replaced");
        assert!(b.running("web"), "{case}: the old container is down");
        assert!(
            answers(port, "old"),
            "{case}: the old container does not answer"
        );
        let errors = b.errors();
        assert!(has_error(&errors, "web", &[want]), "{case}: {errors:?}");
        assert!(err(&o).contains(want), "{case}: {}", err(&o));
        assert!(
            !b.exists("web.orc-new") && !b.exists("web.orc-old"),
            "{case}: a temporary container was left"
        );
    }
    drop(taken);
    // Once the new one can run, it replaces the old one.
    web_spec(&b, port, "new", serde_json::json!({}));
    expect_code(&b.converge(), 0);
    assert_ne!(b.id("web"), old);
    assert!(answers(port, "new"));
    assert!(!b.exists("web.orc-old"));
}

#[test]
fn a_new_image_that_exits_or_is_never_healthy_is_rolled_back_with_its_dependents_running() {
    let b = BoxUnderTest::new("rollback");
    let tag = format!("orc-test/rollback:{}", std::process::id());
    let v1 = format!("{tag}-v1");
    let _images = Images(vec![
        tag.clone(),
        v1.clone(),
        format!("{tag}-exits"),
        format!("{tag}-sick"),
    ]);
    build(&v1, &format!("FROM {}\nRUN touch /ok\n", image()));
    build(
        &format!("{tag}-exits"),
        &format!(
            "FROM {}\nENTRYPOINT [\"sh\", \"-c\", \"echo boom; exit 3\"]\n",
            image()
        ),
    );
    build(
        &format!("{tag}-sick"),
        &format!("FROM {}\nRUN rm -f /ok\n", image()),
    );
    docker(&["tag", &v1, &tag]);
    b.spec(
        "db",
        serde_json::json!({"image": tag, "healthcheck": {"test": ["CMD", "test", "-e", "/ok"], "interval": "200ms", "retries": 3, "timeout": "1s"}}),
    );
    b.spec(
        "web",
        serde_json::json!({"depends_on": {b.name("db"): {"condition": "service_healthy"}}}),
    );
    expect_code(&b.converge(), 0);
    let (db, web) = (b.id("db"), b.id("web"));
    for (new, want) in [("exits", "boom"), ("sick", "not healthy")] {
        docker(&["tag", &format!("{tag}-{new}"), &tag]);
        let o = b.converge();
        expect_code(&o, 1);
        assert_eq!(
            (b.id("db"), b.id("web")),
            (db.clone(), web.clone()),
            "{new}"
        );
        assert!(b.running("db") && b.running("web"), "{new}: left down");
        let errors = b.errors();
        assert!(
            has_error(&errors, "db", &["rolled back", want, "runs again"]),
            "{new}: {errors:?}"
        );
        assert!(!b.exists("db.orc-new") && !b.exists("db.orc-old"), "{new}");
        assert_eq!(b.infra_file(), "1\n");
    }
    // The old image back under the tag: nothing to do.
    docker(&["tag", &v1, &tag]);
    b.converge_keeps_all();
}

#[test]
fn a_new_image_in_the_archive_under_the_same_tag_recreates_once_then_nothing() {
    let b = BoxUnderTest::new("newimage");
    let tag = format!("orc-test/archived2:{}", std::process::id());
    let _images = Images(vec![tag.clone(), format!("{tag}-v2")]);
    let archive = b.sb.path("srv/images/app.tar");
    fs::create_dir_all(archive.parent().unwrap()).unwrap();
    docker(&["tag", &image(), &tag]);
    docker(&["save", "-o", archive.to_str().unwrap(), &tag]);
    b.spec(
        "app",
        serde_json::json!({"image": tag, "image_archive": "/srv/images/app.tar"}),
    );
    expect_code(&b.converge(), 0);
    let first = b.id("app");
    // Unchanged archive: not loaded again, and the no-op stays at three calls.
    expect_code(&b.converge(), 0);
    assert!(
        b.calls().iter().all(|c| !c.starts_with("load")),
        "{:?}",
        b.calls()
    );
    assert_eq!(b.calls().len(), 3, "{:?}", b.calls());
    // A new image under the same tag, in a new archive (the engine's tag still points
    // at the old one): loaded, recreated once.
    build(
        &format!("{tag}-v2"),
        &format!("FROM {}\nRUN touch /v2\n", image()),
    );
    docker(&["tag", &format!("{tag}-v2"), &tag]);
    docker(&["save", "-o", archive.to_str().unwrap(), &tag]);
    docker(&["tag", &image(), &tag]);
    expect_code(&b.converge(), 0);
    assert!(
        b.calls().iter().any(|c| c.starts_with("load")),
        "{:?}",
        b.calls()
    );
    assert_eq!(b.actions(), pairs(&[("app", "recreate")]));
    assert_ne!(b.id("app"), first);
    docker(&["exec", &b.name("app"), "test", "-e", "/v2"]);
    expect_code(&b.converge(), 0);
    assert_eq!(b.actions(), pairs(&[("app", "keep")]));
    assert!(
        b.calls().iter().all(|c| !c.starts_with("load")),
        "{:?}",
        b.calls()
    );
    // The same image re-tagged under a new ID (pulled or loaded by hand) recreates too.
    docker(&["tag", &image(), &tag]);
    let o = b.converge();
    expect_code(&o, 0);
    assert!(
        b.calls().iter().any(|c| c.starts_with("load")),
        "{:?}",
        b.calls()
    );
    assert_eq!(
        b.actions(),
        pairs(&[("app", "keep")]),
        "the archive's image is the one wanted"
    );
}

#[test]
fn orc_list_shows_the_container_plan_in_work_order_and_refuses_invalid_files() {
    let sb = Sandbox::new();
    let specs = sb.path("etc/orc/containers.d");
    write_mode(
        &specs.join("a-web.json"),
        r#"{"name": "web", "image": "busybox", "depends_on": ["db"]}"#,
        0o644,
    );
    write_mode(
        &specs.join("b-db.json"),
        r#"{"name": "db", "image": "busybox"}"#,
        0o644,
    );
    let o = sb.orc().arg("list").output().unwrap();
    expect_code(&o, 0);
    let lines: Vec<String> = out(&o)
        .lines()
        .filter(|l| l.starts_with("container "))
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        [
            format!("container db {}", specs.join("b-db.json").display()),
            format!("container web {}", specs.join("a-web.json").display()),
        ],
        "{}",
        out(&o)
    );
    write_mode(
        &specs.join("c.json"),
        r#"{"name": "c", "image": "busybox", "colour": 1}"#,
        0o644,
    );
    let o = sb.orc().arg("list").output().unwrap();
    expect_code(&o, 2);
    assert!(
        out(&o).contains("INVALID") && out(&o).contains("c.json"),
        "{}",
        out(&o)
    );
    assert!(
        err(&o).contains("c.json") && err(&o).contains("colour"),
        "{}",
        err(&o)
    );
}

#[test]
fn a_recreate_killed_midway_is_resolved_by_the_next_run() {
    let b = BoxUnderTest::new("midway");
    b.spec("a", serde_json::json!({}));
    b.spec("b", serde_json::json!({}));
    expect_code(&b.converge(), 0);
    let a = b.id("a");
    let labels = |for_name: &str| {
        vec![
            "--label".to_string(),
            "orc.managed=true".into(),
            "--label".into(),
            format!("orc.scope={}", b.prefix),
            "--label".into(),
            format!("orc.for={for_name}"),
        ]
    };
    // a: killed after its old one was set aside and stopped, the new one made, not started.
    docker(&["rename", &b.name("a"), &b.name("a.orc-old")]);
    docker(&["stop", "-t", "1", &b.name("a.orc-old")]);
    let mut create: Vec<String> = vec!["create".into(), "--name".into(), b.name("a.orc-new")];
    create.extend(labels(&b.name("a")));
    create.extend([image(), "sleep".into(), "3600".into()]);
    docker(&create.iter().map(String::as_str).collect::<Vec<_>>());
    // b: killed after its new one took over, the old one not removed yet.
    docker(&["rename", &b.name("b"), &b.name("b.orc-old")]);
    docker(&["stop", "-t", "1", &b.name("b.orc-old")]);
    let mut run: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--init".into(),
        "--name".into(),
        b.name("b"),
    ];
    run.extend(labels(&b.name("b")));
    run.extend([image(), "sleep".into(), "3600".into()]);
    docker(&run.iter().map(String::as_str).collect::<Vec<_>>());
    let o = b.converge();
    expect_code(&o, 0);
    assert_eq!(b.id("a"), a, "the old a was not restored");
    assert!(b.running("a") && b.running("b"));
    for gone in ["a.orc-new", "a.orc-old", "b.orc-old"] {
        assert!(!b.exists(gone), "{gone} left: {}", err(&o));
    }
    b.converge_keeps_all();
}

#[test]
fn a_network_change_that_fails_midway_leaves_every_service_running() {
    let b = BoxUnderTest::new("netfail");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let subnet = format!("10.{}.{}.0/24", 200 + std::process::id() % 50, nanos % 250);
    b.network("front", serde_json::json!({}));
    b.spec(
        "db",
        serde_json::json!({"networks": {b.name("front"): {"aliases": ["database"]}}}),
    );
    b.spec("web", serde_json::json!({"networks": [b.name("front")]}));
    expect_code(&b.converge(), 0);
    let (db, web) = (b.id("db"), b.id("web"));
    let ping = || {
        docker(&[
            "exec",
            &b.name("web"),
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            "database",
        ])
    };
    ping();
    // The new network cannot be made (its subnet is taken): the old network is made
    // again and the old containers, parked meanwhile, run on it again.
    let blocker = b.name("blocker");
    docker(&[
        "network",
        "create",
        "--label",
        &format!("orc.scope={blocker}"),
        "--subnet",
        &subnet,
        &blocker,
    ]);
    b.network("front", serde_json::json!({"subnet": subnet}));
    let o = b.converge();
    expect_code(&o, 1);
    assert_eq!((b.id("db"), b.id("web")), (db.clone(), web.clone()));
    assert!(b.running("db") && b.running("web"));
    ping();
    let errors = b.errors();
    for n in ["db", "web"] {
        assert!(
            has_error(&errors, n, &["rolled back", "runs again"]),
            "{n}: {errors:?}"
        );
    }
    assert!(
        has_error(&errors, "network:front", &["the old network is back"]),
        "{errors:?}"
    );
    assert!(!b.exists("db.orc-old") && !b.exists("web.orc-old"));
    docker(&["network", "rm", &blocker]);
    // The new network is made, but the new web exits at once: the old web comes back
    // (on the new network), the new db stays.
    b.network("front", serde_json::json!({"subnet": subnet}));
    b.spec(
        "web",
        serde_json::json!({"networks": [b.name("front")], "command": ["sh", "-c", "echo boom; exit 3"]}),
    );
    let o = b.converge();
    expect_code(&o, 1);
    assert_ne!(b.id("db"), db);
    assert_eq!(b.id("web"), web);
    assert!(b.running("db") && b.running("web"));
    ping();
    let errors = b.errors();
    assert!(
        has_error(&errors, "web", &["rolled back", "boom", "runs again"]),
        "{errors:?}"
    );
    assert!(!b.exists("web.orc-old") && !b.exists("db.orc-old"));
    // Once a new web can run, it replaces the old one.
    b.spec(
        "web",
        serde_json::json!({"networks": [b.name("front")], "command": ["sleep", "3601"]}),
    );
    expect_code(&b.converge(), 0);
    assert_ne!(b.id("web"), web);
    ping();
}

/// The networks a container is attached to, by name.
fn attached(b: &BoxUnderTest, short: &str) -> String {
    b.inspect(
        short,
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
    )
}

/// db and web on the network `front`, converged; then `front` changed, and a converge
/// during which web's `pre_create` (hooks are not in the hash) sends orc `signal` once:
/// after the old web was parked and the network made anew, before the new web is created.
/// The box, web's old container's id, and that converge's output.
fn signalled_during_a_network_change(tag: &str, signal: &str) -> (BoxUnderTest, String, Output) {
    let b = BoxUnderTest::new(tag);
    let flag = b.sb.path("signal-orc");
    b.network("front", serde_json::json!({}));
    b.spec(
        "db",
        serde_json::json!({"networks": {b.name("front"): {"aliases": ["database"]}}}),
    );
    let hook = format!(
        "[ -e {0} ] || exit 0; rm {0}; kill -{signal} $PPID",
        flag.display()
    );
    b.spec(
        "web",
        serde_json::json!({"networks": [b.name("front")],
            "hooks": {"pre_create": ["sh", "-c", hook]}}),
    );
    expect_code(&b.converge(), 0);
    let old_web = b.id("web");
    write_mode(&flag, "", 0o644);
    b.network("front", serde_json::json!({"labels": {"v": "2"}}));
    let o = b.converge();
    assert!(!flag.exists(), "the hook did not run: {}", err(&o));
    (b, old_web, o)
}

/// db and web both run on `front` (web reaches db by its alias); nothing is left parked.
fn both_run_on_the_network(b: &BoxUnderTest, o: &Output) {
    for c in ["db", "web"] {
        assert!(b.running(c), "{c}: {}", err(o));
        assert_eq!(attached(b, c).trim(), b.name("front"), "{c}: {}", err(o));
        assert!(!b.exists(&format!("{c}.orc-old")), "{c}: {}", err(o));
    }
    docker(&[
        "exec",
        &b.name("web"),
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "database",
    ]);
}

#[test]
fn a_run_killed_after_a_network_change_leaves_no_service_off_its_network() {
    let (b, _, killed) = signalled_during_a_network_change("netkill", "9");
    assert!(
        killed.status.code().is_none(),
        "orc was not killed: {}",
        err(&killed)
    );
    let o = b.converge();
    expect_code(&o, 0);
    both_run_on_the_network(&b, &o);
    b.converge_keeps_all();
}

#[test]
fn a_run_stopped_during_a_network_change_puts_the_parked_old_ones_back_before_it_exits() {
    let (b, old_web, stopped) = signalled_during_a_network_change("netterm", "TERM");
    assert_ne!(stopped.status.code(), Some(0), "{}", err(&stopped));
    // Before orc exited: web's old one runs again under its name, on the new network;
    // db runs (its new one, or its old one put back).
    assert_eq!(b.id("web"), old_web, "{}", err(&stopped));
    both_run_on_the_network(&b, &stopped);
    expect_code(&b.converge(), 0);
}

/// `orc containers plan --argv --json`, parsed.
fn plan_argv(b: &BoxUnderTest) -> serde_json::Value {
    let o = b
        .orc()
        .args(["containers", "plan", "--argv", "--json"])
        .output()
        .unwrap();
    expect_code(&o, 0);
    serde_json::from_str(&out(&o)).unwrap()
}

#[test]
fn what_a_killed_recreate_left_is_planned_as_resolved_and_an_unproven_new_one_never_wins() {
    let b = BoxUnderTest::new("leftplan");
    b.spec("a", serde_json::json!({}));
    b.spec("b", serde_json::json!({}));
    expect_code(&b.converge(), 0);
    let (a, old_b) = (b.id("a"), b.id("b"));
    // a: killed after its old one was set aside and stopped (no new one yet).
    docker(&["rename", &b.name("a"), &b.name("a.orc-old")]);
    docker(&["stop", "-t", "1", &b.name("a.orc-old")]);
    // b: killed during its new one's check, and the new one exits.
    docker(&["rename", &b.name("b"), &b.name("b.orc-old")]);
    docker(&["stop", "-t", "1", &b.name("b.orc-old")]);
    let new_b = docker(&[
        "run",
        "-d",
        "--name",
        &b.name("b"),
        "--label",
        "orc.managed=true",
        "--label",
        &format!("orc.scope={}", b.prefix),
        "--label",
        &format!("orc.for={}", b.name("b")),
        &image(),
        "sh",
        "-c",
        "exit 3",
    ]);
    let _ = Command::new("docker")
        .args(["wait", &new_b])
        .output()
        .unwrap();
    let plan = plan_argv(&b);
    let step = |short: &str| {
        plan.as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == b.name(short).as_str())
            .cloned()
            .unwrap_or_else(|| panic!("{short} not planned: {plan:#}"))
    };
    let calls = |short: &str| -> Vec<String> {
        step(short)["calls"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| {
                c.as_array()
                    .unwrap()
                    .iter()
                    .map(|w| w.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    assert_eq!(step("a")["action"], "keep", "{plan:#}");
    assert_eq!(
        calls("a"),
        [
            format!("rename {a} {}", b.name("a")),
            format!("start {}", b.name("a"))
        ]
    );
    assert_eq!(step("b")["action"], "keep", "{plan:#}");
    assert_eq!(
        calls("b"),
        [
            format!("rm -f {new_b}"),
            format!("rename {old_b} {}", b.name("b")),
            format!("start {}", b.name("b"))
        ]
    );
    let o = b.converge();
    expect_code(&o, 0);
    let made: Vec<String> = b
        .calls()
        .into_iter()
        .filter(|c| {
            ["rename", "start", "rm", "run", "create", "stop"]
                .contains(&c.split(' ').next().unwrap())
        })
        .collect();
    let mut planned = calls("a");
    planned.extend(calls("b"));
    let (mut x, mut y) = (made.clone(), planned);
    x.sort();
    y.sort();
    assert_eq!(x, y, "planned vs made: {}", err(&o));
    assert_eq!((b.id("a"), b.id("b")), (a, old_b.clone()));
    assert!(b.running("a") && b.running("b"));
    assert!(!b.exists("a.orc-old") && !b.exists("b.orc-old"));
}

#[test]
fn a_recreate_whose_check_ends_at_the_run_deadline_still_puts_the_old_one_back() {
    let b = BoxUnderTest::new("late");
    let db = b.db_about_to_turn_unhealthy();
    let o = b.orc().args(["run", "--timeout=8"]).output().unwrap();
    assert_ne!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(b.id("db"), db, "{}", err(&o));
    assert!(b.running("db"), "{}", err(&o));
    assert!(!b.exists("db.orc-old") && !b.exists("db.orc-new"));
    let errors = b.errors();
    assert!(
        has_error(&errors, "db", &["rolled back", "runs again"]),
        "{errors:?}"
    );
}

#[test]
fn a_new_subnet_whose_new_container_fails_leaves_the_old_one_answering_on_it() {
    let b = BoxUnderTest::new("resubnet");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let (x, y) = (150 + std::process::id() % 50, nanos % 250);
    let net = |third: u32| format!("10.{x}.{third}.0/24");
    let ip = |third: u32| format!("10.{x}.{third}.5");
    let y2 = (y + 1) % 250;
    b.network("front", serde_json::json!({"subnet": net(y)}));
    b.spec("db", serde_json::json!({"networks": [b.name("front")]}));
    let web = |third: u32, command: serde_json::Value| {
        b.spec(
            "web",
            serde_json::json!({"command": command, "networks": {b.name("front"):
                {"aliases": ["www"], "ipv4_address": ip(third)}}}),
        );
    };
    web(y, serde_json::json!(["sleep", "3600"]));
    expect_code(&b.converge(), 0);
    let old = b.id("web");
    // The network moves to a new subnet and web to an address in it, but the new web
    // exits at once: the old one comes back on the new network (at another address).
    b.network("front", serde_json::json!({"subnet": net(y2)}));
    web(y2, serde_json::json!(["sh", "-c", "echo boom; exit 3"]));
    let o = b.converge();
    expect_code(&o, 1);
    assert_eq!(b.id("web"), old, "{}", err(&o));
    assert!(b.running("web"), "{:?}", b.errors());
    assert!(!b.exists("web.orc-old"));
    assert_eq!(attached(&b, "web").trim(), b.name("front"));
    docker(&["exec", &b.name("db"), "ping", "-c", "1", "-W", "2", "www"]);
    let errors = b.errors();
    assert!(
        has_error(&errors, "web", &["boom", "runs again"]),
        "{errors:?}"
    );
}

#[test]
fn a_service_named_like_the_start_of_another_containers_id_is_not_taken_for_it() {
    let b = BoxUnderTest::new("idprefix");
    // A container of the test's own whose id starts with what will be a service's name.
    let other = docker(&["create", "--label", &b.test_label(), &image(), "sleep", "1"]);
    let name = other[..16].to_string();
    write_mode(
        &b.sb.path("etc/orc/containers.d/hex.json"),
        &serde_json::json!({"name": name, "image": image(), "command": ["sleep", "3600"],
            "init": true, "stop_timeout": 1})
        .to_string(),
        0o644,
    );
    expect_code(&b.converge(), 0);
    let id = docker(&["inspect", "--format", "{{.Id}}", &format!("/{name}")]);
    // Killed after it was set aside: its name is free (though the engine resolves it).
    docker(&["rename", &id, &format!("{name}.orc-old")]);
    docker(&["stop", "-t", "1", &id]);
    let o = b.converge();
    expect_code(&o, 0);
    assert_eq!(
        docker(&[
            "inspect",
            "--format",
            "{{.Id}} {{.State.Running}}",
            &format!("/{name}")
        ]),
        format!("{id} true"),
        "the old one was not given its name back: {}",
        err(&o)
    );
}

#[test]
fn a_recreate_interrupted_during_its_check_puts_the_old_one_back_before_orc_exits() {
    let b = BoxUnderTest::new("sigterm");
    let db = b.db_about_to_turn_unhealthy();
    let child = b
        .orc()
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    b.wait_swapped("db", &db);
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let o = child.wait_with_output().unwrap();
    assert_ne!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(
        b.id("db"),
        db,
        "the old db does not hold its name: {}",
        err(&o)
    );
    assert!(b.running("db"), "{}", err(&o));
    assert!(!b.exists("db.orc-old") && !b.exists("db.orc-new"));
}

#[test]
fn a_recreate_killed_during_restore_data_is_redone_not_kept_half_done() {
    let b = BoxUnderTest::new("restorekill");
    let spec = |v: &str| {
        b.spec(
            "db",
            serde_json::json!({
                "env": {"V": v},
                "volumes": [{"source": "data", "target": "/data"}],
                "hooks": {
                    "store_data": ["sh", "-c", "echo stored $V >> /data/hooks.log"],
                    "restore_data": ["sh", "-c", "sleep 5; echo restored $V >> /data/hooks.log"]
                }
            }),
        );
    };
    spec("1");
    expect_code(&b.converge(), 0);
    let db = b.id("db");
    spec("2");
    let mut child = b
        .orc()
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The new one holds the name and runs: orc is in its restore_data (sleep 5).
    b.wait_swapped("db", &db);
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    let o = b.converge();
    expect_code(&o, 0);
    let log = fs::read_to_string(
        b.sb.path("var/lib/orc/containers")
            .join(b.name("db"))
            .join("data/hooks.log"),
    )
    .unwrap();
    assert!(
        log.lines().any(|l| l == "restored 2"),
        "the new db never got its data back: {log:?}: {}",
        err(&o)
    );
    assert!(b.running("db") && !b.exists("db.orc-old"));
}
