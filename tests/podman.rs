//! The same engine layer on podman: create, no-op and recreate. Requires podman
//! wherever it runs (scripts/container-engine.sh podman installs it): without it the
//! tests fail, they never pass unrun.

mod common;

use std::process::Command;

use common::*;

/// Fails the test when podman is not installed (true otherwise).
fn podman_available() -> bool {
    let here = Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        here,
        "podman is not installed: the podman tests need it (scripts/container-engine.sh podman)"
    );
    here
}

fn podman(args: &[&str]) -> String {
    let o = Command::new("podman").args(args).output().unwrap();
    assert!(o.status.success(), "podman {args:?}: {}", err(&o));
    out(&o).trim().to_string()
}

#[test]
fn podman_create_noop_recreate() {
    if !podman_available() {
        return;
    }
    let sb = Sandbox::new();
    let image = format!(
        "localhost/{}",
        std::env::var("ORC_TEST_IMAGE").unwrap_or_else(|_| "orc-test/busybox:latest".into())
    );
    let prefix = unique("orcpm");
    let config = |v: &str| {
        sb.config(&format!(
            r#"{{"containers": {{"engine": "podman", "infra_version": "{v}", "scope": "{prefix}"}}}}"#
        ))
    };
    config("1");
    for n in ["db", "web"] {
        let deps = if n == "web" {
            format!(r#"["{prefix}-db"]"#)
        } else {
            "[]".into()
        };
        write_mode(
            &sb.path(&format!("etc/orc/containers.d/{n}.json")),
            &format!(
                r#"{{"name": "{prefix}-{n}", "image": "{image}", "command": ["sleep", "3600"], "init": true,
                    "stop_timeout": 1, "depends_on": {deps}, "volumes": [{{"source": "data", "target": "/data"}}]}}"#
            ),
            0o644,
        );
    }
    let actions = |sb: &Sandbox| -> Vec<String> {
        sb.last_report()["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["action"].as_str().unwrap().to_string())
            .collect()
    };
    let cleanup = || remove_scope("podman", &prefix);
    let run = || {
        let mut c = sb.orc();
        if let Some(conf) = std::env::var_os("CONTAINERS_CONF") {
            c.env("CONTAINERS_CONF", conf);
        }
        c.arg("run").output().unwrap()
    };
    let result = std::panic::catch_unwind(|| {
        expect_code(&run(), 0);
        assert_eq!(actions(&sb), ["create", "create"]);
        let label = podman(&[
            "inspect",
            "--format",
            "{{index .Config.Labels \"orc.managed\"}} {{index .Config.Labels \"orc.scope\"}}",
            &format!("{prefix}-web"),
        ]);
        assert_eq!(label, format!("true {prefix}"));
        podman(&[
            "exec",
            &format!("{prefix}-db"),
            "sh",
            "-c",
            "echo kept > /data/f",
        ]);
        let id = podman(&["inspect", "--format", "{{.Id}}", &format!("{prefix}-db")]);
        expect_code(&run(), 0);
        assert_eq!(actions(&sb), ["keep", "keep"]);
        assert_eq!(
            podman(&["inspect", "--format", "{{.Id}}", &format!("{prefix}-db")]),
            id
        );
        config("2");
        expect_code(&run(), 0);
        assert_eq!(actions(&sb), ["recreate", "recreate"]);
        assert_ne!(
            podman(&["inspect", "--format", "{{.Id}}", &format!("{prefix}-db")]),
            id
        );
        assert_eq!(
            podman(&["exec", &format!("{prefix}-db"), "cat", "/data/f"]),
            "kept"
        );
    });
    cleanup();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

fn started_at(name: &str) -> f64 {
    let t = podman(&["inspect", "--format", "{{.State.StartedAt}}", name]);
    // podman prints Go's time format: "2026-11-23 16:14:21.5 +0000 UTC".
    let t = t.trim_end_matches(" UTC");
    let o = Command::new("date")
        .args(["-d", t, "+%s.%N"])
        .output()
        .unwrap();
    out(&o)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("date of {t:?}"))
}

#[test]
fn podman_scope_health_and_networks() {
    if !podman_available() {
        return;
    }
    let sb = Sandbox::new();
    let image = format!(
        "localhost/{}",
        std::env::var("ORC_TEST_IMAGE").unwrap_or_else(|_| "orc-test/busybox:latest".into())
    );
    let prefix = unique("orcpmh");
    let n = |s: &str| format!("{prefix}-{s}");
    sb.config(&format!(
        r#"{{"containers": {{"engine": "podman", "infra_version": "1", "scope": "{prefix}"}}}}"#
    ));
    let write = |rel: &str, v: serde_json::Value| {
        write_mode(&sb.path(rel), &v.to_string(), 0o644);
    };
    write(
        "etc/orc/networks.d/net.json",
        serde_json::json!({"name": n("net")}),
    );
    write(
        "etc/orc/containers.d/db.json",
        serde_json::json!({"name": n("db"), "image": image, "init": true, "stop_timeout": 1,
            "command": ["sh", "-c", "sleep 3; touch /tmp/ready; exec sleep 3600"],
            "healthcheck": {"test": ["CMD", "test", "-f", "/tmp/ready"], "interval": "500ms", "retries": 30},
            "networks": {n("net"): {"aliases": ["database"]}}}),
    );
    write(
        "etc/orc/containers.d/web.json",
        serde_json::json!({"name": n("web"), "image": image, "init": true, "stop_timeout": 1,
            "command": ["sleep", "3600"], "networks": [n("net")],
            "depends_on": {n("db"): {"condition": "service_healthy"}}}),
    );
    let run = || {
        let mut c = sb.orc();
        if let Some(conf) = std::env::var_os("CONTAINERS_CONF") {
            c.env("CONTAINERS_CONF", conf);
        }
        c.arg("run").output().unwrap()
    };
    let cleanup = || remove_scope("podman", &prefix);
    let result = std::panic::catch_unwind(|| {
        // Another box's container on the same engine, orc-made, in another scope.
        podman(&[
            "run",
            "-d",
            "--init",
            "--name",
            &n("theirs"),
            "--label",
            "orc.managed=true",
            "--label",
            "orc.scope=someone-else",
            "--label",
            &format!("orc-test.scope={prefix}"),
            &image,
            "sleep",
            "3600",
        ]);
        let o = run();
        expect_code(&o, 0);
        assert_eq!(
            podman(&["inspect", "--format", "{{.State.Health.Status}}", &n("db")]),
            "healthy"
        );
        let gap = started_at(&n("web")) - started_at(&n("db"));
        assert!(gap >= 3.0, "web started {gap:.2} s after db");
        podman(&["exec", &n("web"), "ping", "-c", "1", "-W", "2", "database"]);
        podman(&["exec", &n("web"), "ping", "-c", "1", "-W", "2", &n("db")]);
        let scope = podman(&[
            "network",
            "inspect",
            "--format",
            "{{index .Labels \"orc.scope\"}}",
            &n("net"),
        ]);
        assert_eq!(scope, prefix);
        assert_eq!(
            podman(&["inspect", "--format", "{{.State.Status}}", &n("theirs")]),
            "running"
        );
        // Converged: kept, healthy, the other scope's container untouched.
        expect_code(&run(), 0);
        let actions: Vec<String> = sb.last_report()["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["action"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(actions, ["keep", "keep", "keep"]);
        // The network and its containers go: the network is removed after them.
        std::fs::remove_file(sb.path("etc/orc/networks.d/net.json")).unwrap();
        std::fs::remove_file(sb.path("etc/orc/containers.d/db.json")).unwrap();
        std::fs::remove_file(sb.path("etc/orc/containers.d/web.json")).unwrap();
        expect_code(&run(), 0);
        let gone = Command::new("podman")
            .args(["network", "exists", &n("net")])
            .status()
            .unwrap();
        assert!(!gone.success(), "network still there");
        assert_eq!(
            podman(&["inspect", "--format", "{{.State.Status}}", &n("theirs")]),
            "running"
        );
    });
    cleanup();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

/// Builds `tag` with podman from a Dockerfile (in a context dir of its own).
fn podman_build(tag: &str, dockerfile: &str) {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("Dockerfile"), dockerfile).unwrap();
    podman(&["build", "-q", "-t", tag, d.path().to_str().unwrap()]);
}

#[test]
fn podman_new_first_recreate_rolls_back_and_keeps_the_old_one() {
    if !podman_available() {
        return;
    }
    let sb = Sandbox::new();
    let base = format!(
        "localhost/{}",
        std::env::var("ORC_TEST_IMAGE").unwrap_or_else(|_| "orc-test/busybox:latest".into())
    );
    let prefix = unique("orcpmr");
    let n = |s: &str| format!("{prefix}-{s}");
    let tag = format!("localhost/orc-test/rollback:{prefix}");
    sb.config(&format!(
        r#"{{"containers": {{"engine": "podman", "infra_version": "1", "scope": "{prefix}"}}}}"#
    ));
    let db = |extra: serde_json::Value| {
        let mut v = serde_json::json!({"name": n("db"), "image": tag, "init": true, "stop_timeout": 1,
            "command": ["sleep", "3600"],
            "healthcheck": {"test": ["CMD", "test", "-e", "/ok"], "interval": "300ms", "retries": 3}});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        write_mode(
            &sb.path("etc/orc/containers.d/db.json"),
            &v.to_string(),
            0o644,
        );
    };
    db(serde_json::json!({}));
    write_mode(
        &sb.path("etc/orc/containers.d/web.json"),
        &serde_json::json!({"name": n("web"), "image": base, "init": true, "stop_timeout": 1,
            "command": ["sleep", "3600"],
            "depends_on": {n("db"): {"condition": "service_healthy"}}})
        .to_string(),
        0o644,
    );
    let run = || {
        let mut c = sb.orc();
        if let Some(conf) = std::env::var_os("CONTAINERS_CONF") {
            c.env("CONTAINERS_CONF", conf);
        }
        c.arg("run").output().unwrap()
    };
    let id = |s: &str| podman(&["inspect", "--format", "{{.Id}} {{.State.Status}}", &n(s)]);
    let db_error = || -> String {
        sb.last_report()["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n("db"))
            .and_then(|c| c["error"].as_str().map(String::from))
            .unwrap_or_default()
    };
    let cleanup = || {
        remove_scope("podman", &prefix);
        for t in ["", "-v1", "-exits", "-sick"] {
            let _ = Command::new("podman")
                .args(["rmi", "-f", &format!("{tag}{t}")])
                .output();
        }
    };
    let result = std::panic::catch_unwind(|| {
        podman_build(
            &format!("{tag}-v1"),
            &format!("FROM {base}\nRUN touch /ok\n"),
        );
        podman_build(
            &format!("{tag}-exits"),
            &format!("FROM {base}\nENTRYPOINT [\"sh\", \"-c\", \"echo boom; exit 3\"]\n"),
        );
        podman_build(
            &format!("{tag}-sick"),
            &format!("FROM {base}\nRUN rm -f /ok\n"),
        );
        podman(&["tag", &format!("{tag}-v1"), &tag]);
        expect_code(&run(), 0);
        let before = (id("db"), id("web"));
        assert!(before.0.ends_with(" running") && before.1.ends_with(" running"));
        for (new, want) in [("exits", "boom"), ("sick", "not healthy")] {
            podman(&["tag", &format!("{tag}-{new}"), &tag]);
            let o = run();
            expect_code(&o, 1);
            assert_eq!((id("db"), id("web")), before, "{new}");
            let e = db_error();
            assert!(
                e.contains("rolled back") && e.contains(want) && e.contains("runs again"),
                "{new}: {e}"
            );
        }
        // A new container that cannot be created: the old one is not touched.
        podman(&["tag", &format!("{tag}-v1"), &tag]);
        db(serde_json::json!({"cap_add": ["CAP_NOT_A_REAL_ONE"]}));
        expect_code(&run(), 1);
        assert_eq!((id("db"), id("web")), before);
        assert!(db_error().contains("CAP_NOT_A_REAL_ONE"), "{}", db_error());
        // The old image back, the spec back: nothing to do.
        db(serde_json::json!({}));
        expect_code(&run(), 0);
        assert_eq!((id("db"), id("web")), before);
    });
    cleanup();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn podman_a_network_change_that_fails_midway_leaves_every_service_running() {
    if !podman_available() {
        return;
    }
    let sb = Sandbox::new();
    let image = format!(
        "localhost/{}",
        std::env::var("ORC_TEST_IMAGE").unwrap_or_else(|_| "orc-test/busybox:latest".into())
    );
    let prefix = format!("orcpmn-{}", std::process::id());
    let n = |s: &str| format!("{prefix}-{s}");
    let subnet = format!("10.{}.{}.0/24", 150 + std::process::id() % 50, {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        nanos % 250
    });
    sb.config(&format!(
        r#"{{"containers": {{"engine": "podman", "infra_version": "1", "scope": "{prefix}"}}}}"#
    ));
    let write = |rel: &str, v: serde_json::Value| {
        write_mode(&sb.path(rel), &v.to_string(), 0o644);
    };
    let net = |extra: serde_json::Value| {
        let mut v = serde_json::json!({"name": n("net")});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        write("etc/orc/networks.d/net.json", v);
    };
    let web = |command: serde_json::Value| {
        write(
            "etc/orc/containers.d/web.json",
            serde_json::json!({"name": n("web"), "image": image, "init": true, "stop_timeout": 1,
                "command": command, "networks": [n("net")]}),
        );
    };
    net(serde_json::json!({}));
    write(
        "etc/orc/containers.d/db.json",
        serde_json::json!({"name": n("db"), "image": image, "init": true, "stop_timeout": 1,
            "command": ["sleep", "3600"], "networks": {n("net"): {"aliases": ["database"]}}}),
    );
    web(serde_json::json!(["sleep", "3600"]));
    let run = || {
        let mut c = sb.orc();
        if let Some(conf) = std::env::var_os("CONTAINERS_CONF") {
            c.env("CONTAINERS_CONF", conf);
        }
        c.arg("run").output().unwrap()
    };
    let id = |s: &str| podman(&["inspect", "--format", "{{.Id}} {{.State.Status}}", &n(s)]);
    let ping = || podman(&["exec", &n("web"), "ping", "-c", "1", "-W", "2", "database"]);
    let error = |name: &str| -> String {
        sb.last_report()["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["error"].as_str().map(String::from))
            .unwrap_or_default()
    };
    let gone = |s: &str| {
        !Command::new("podman")
            .args(["container", "exists", s])
            .status()
            .unwrap()
            .success()
    };
    let cleanup = || {
        let _ = Command::new("podman")
            .args(["rm", "-f", "--ignore", "-t", "0", &n("db"), &n("web")])
            .args([
                format!("{}.orc-old", n("db")),
                format!("{}.orc-old", n("web")),
            ])
            .output();
        for x in [n("net"), n("blocker")] {
            let _ = Command::new("podman").args(["network", "rm", &x]).output();
        }
    };
    let result = std::panic::catch_unwind(|| {
        expect_code(&run(), 0);
        let before = (id("db"), id("web"));
        assert!(before.0.ends_with(" running") && before.1.ends_with(" running"));
        ping();
        // The new network cannot be made (its subnet is taken): the old network is made
        // again and the parked old containers run on it again.
        podman(&["network", "create", "--subnet", &subnet, &n("blocker")]);
        net(serde_json::json!({"subnet": subnet}));
        expect_code(&run(), 1);
        assert_eq!((id("db"), id("web")), before);
        ping();
        for s in ["db", "web"] {
            let e = error(&n(s));
            assert!(
                e.contains("rolled back") && e.contains("runs again"),
                "{s}: {e}"
            );
        }
        let e = error(&format!("network:{}", n("net")));
        assert!(e.contains("the old network is back"), "{e}");
        assert!(gone(&format!("{}.orc-old", n("web"))));
        podman(&["network", "rm", &n("blocker")]);
        // The new network is made, the new web exits at once: the old web comes back.
        web(serde_json::json!(["sh", "-c", "echo boom; exit 3"]));
        expect_code(&run(), 1);
        assert_ne!(id("db"), before.0);
        assert!(id("db").ends_with(" running"));
        assert_eq!(id("web"), before.1);
        ping();
        let e = error(&n("web"));
        assert!(
            e.contains("rolled back") && e.contains("boom") && e.contains("runs again"),
            "{e}"
        );
        assert!(gone(&format!("{}.orc-old", n("web"))));
        // Once a new web can run, it replaces the old one.
        web(serde_json::json!(["sleep", "3601"]));
        expect_code(&run(), 0);
        assert_ne!(id("web"), before.1);
        ping();
    });
    cleanup();
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}
