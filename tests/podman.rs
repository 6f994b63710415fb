//! The same engine layer on podman: create, no-op and recreate. Runs when
//! podman is installed (scripts/test.sh installs it and requires this test:
//! `ORC_REQUIRE_PODMAN=1`); elsewhere it says it did not run.

mod common;

use std::process::Command;

use common::*;

fn podman_available() -> bool {
    let here = Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !here && std::env::var_os("ORC_REQUIRE_PODMAN").is_some() {
        panic!(
            "ORC_REQUIRE_PODMAN is set but podman is not installed (scripts/container-engine.sh podman)"
        );
    }
    if !here {
        eprintln!("podman is not installed: the podman test did not run");
    }
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
    let prefix = format!("orcpm-{}", std::process::id());
    let config = |v: &str| {
        sb.config(&format!(
            r#"{{"containers": {{"engine": "podman", "infra_version": "{v}"}}}}"#
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
    let cleanup = || {
        let _ = Command::new("podman")
            .args([
                "rm",
                "-f",
                &format!("{prefix}-db"),
                &format!("{prefix}-web"),
            ])
            .output();
    };
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
            "{{index .Config.Labels \"orc.managed\"}}",
            &format!("{prefix}-web"),
        ]);
        assert_eq!(label, "true");
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
