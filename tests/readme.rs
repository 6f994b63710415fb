//! The README's walkthrough, run as written: every ```sh walk block, in order, as one
//! bash script (`set -eu`) against a temp root (ORC_ROOT) with the real Docker engine
//! and orc first on PATH. Then the result is checked from outside: the run is ok, the
//! script ran, the state path was seeded, both containers run in the walk's scope and
//! the second run kept them. The walk's scope and names (`walk-…`) are made unique to the
//! run, and what it left is removed by its scope's label, so checkouts sharing one engine
//! never meet.

mod common;

use std::fs;
use std::process::Command;

use common::{Sandbox, err, expect_code, out, remove_scope, unique};

const README: &str = include_str!("../README.md");

/// The walkthrough's shell blocks, joined.
fn walk_script() -> String {
    let mut script = String::new();
    let mut inside = false;
    for line in README.lines() {
        if inside {
            if line.trim_end() == "```" {
                inside = false;
            } else {
                script.push_str(line);
                script.push('\n');
            }
        } else if line.trim_end() == "```sh walk" {
            inside = true;
        }
    }
    script
}

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().unwrap()
}

#[test]
fn the_readme_walk_converges_an_empty_box() {
    // walk-box, walk-web, walk-worker become ID-box, ID-web, ID-worker.
    let id = unique("walk");
    let script = walk_script().replace("walk-", &format!("{id}-"));
    let scope = format!("{id}-box");
    let names = [format!("{id}-web"), format!("{id}-worker")];
    assert!(
        script.matches("orc run").count() >= 2,
        "walk blocks not found:\n{script}"
    );
    let v = docker(&["version", "--format", "{{.Server.Version}}"]);
    assert!(
        v.status.success(),
        "no Docker engine: run scripts/container-engine.sh start"
    );
    let sb = Sandbox::new();
    let bin = sb.path("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(common::bin(), bin.join("orc")).unwrap();
    let image =
        std::env::var("ORC_TEST_IMAGE").unwrap_or_else(|_| "orc-test/busybox:latest".into());
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!("set -eu\n{script}"))
        .env_clear()
        .env("PATH", path)
        .env("LC_ALL", "C")
        .env("ORC_ROOT", sb.root())
        .env("IMAGE", &image)
        .output()
        .unwrap();
    let running: Vec<String> = names
        .iter()
        .map(|n| {
            out(&docker(&["inspect", "--format", "{{.State.Running}}", n]))
                .trim()
                .to_string()
        })
        .collect();
    remove_scope("docker", &scope);
    expect_code(&o, 0);
    let text = out(&o);
    assert!(
        text.contains(&names[0]) && text.contains(&names[1]),
        "{text}"
    );
    assert_eq!(running, ["true", "true"], "{text}\n{}", err(&o));
    let report = sb.last_report();
    assert_eq!(report["result"], "ok");
    let greeting = fs::read_to_string(sb.path("etc/greeting")).unwrap();
    assert!(greeting.starts_with("configured by run "), "{greeting}");
    assert_eq!(
        fs::read_to_string(sb.path("mnt/state/var/lib/app/settings")).unwrap(),
        "v1 defaults\n"
    );
    assert_eq!(
        fs::read_link(sb.path("var/lib/app")).unwrap(),
        std::path::Path::new("/mnt/state/var/lib/app")
    );
    let actions: Vec<&str> = report["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["keep", "keep"], "the second run: {report}");
    // A report with state paths and containers in it follows the published schema too.
    let python = std::env::var_os("ORC_CHECK_PYTHON").map_or_else(
        || concat!(env!("CARGO_MANIFEST_DIR"), "/target/check-venv/bin/python").into(),
        std::path::PathBuf::from,
    );
    let o = Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/check.py"))
        .arg("schema")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/orc-report-1.schema.json"
        ))
        .arg(sb.path("var/lib/orc/last-run.json"))
        .output()
        .expect("the check venv: . scripts/lib.sh; ensure_check_venv");
    expect_code(&o, 0);
}
