//! `orc status` during a run (its own exit code, the running step and its
//! elapsed time) and after a failed one (the failing step's output tail).

mod common;

use std::process::Stdio;

use common::*;

#[test]
fn status_during_a_run_exits_4_naming_the_running_step_and_its_time() {
    let sb = Sandbox::new();
    let started = sb.path("started");
    let go = sb.path("go");
    sb.script("configure.d", "10-quick", "true");
    sb.script(
        "configure.d",
        "20-hold",
        &format!(
            "touch {}; while [ ! -e {} ]; do sleep 0.05; done",
            started.display(),
            go.display()
        ),
    );
    let run = sb
        .orc()
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&started);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let o = sb.orc().arg("status").output().unwrap();
    let j = sb.orc().args(["status", "--json"]).output().unwrap();
    std::fs::write(&go, "").unwrap();
    let done = run.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(0));
    expect_code(&o, 4);
    let text = out(&o);
    assert!(text.contains(": running (pid "), "{text}");
    assert!(!text.contains("took 0.0 ms"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("running configure/20-hold for "))
        .unwrap_or_else(|| panic!("no running step in:\n{text}"));
    let secs: f64 = line
        .split("running configure/20-hold for ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.2..30.0).contains(&secs), "{line}");
    expect_code(&j, 4);
    let v: serde_json::Value = serde_json::from_str(&out(&j)).unwrap();
    assert_eq!(v["result"], "running");
    assert_eq!(v["running_step"]["step"], "configure/20-hold");
    assert!(v["running_step"]["step_elapsed_ms"].as_u64().unwrap() >= 200);
    // Once the run is over: ok, and no running step.
    let o = sb.orc().arg("status").output().unwrap();
    expect_code(&o, 0);
    assert!(!out(&o).contains("running "), "{}", out(&o));
    assert!(!sb.path("var/lib/orc/running-step").exists());
}

#[test]
fn status_of_a_failed_run_shows_the_failing_steps_output_tail() {
    let sb = Sandbox::new();
    sb.script("configure.d", "10-ok", "echo all-good");
    sb.script(
        "configure.d",
        "20-fails",
        "for i in $(seq 1 15); do echo \"line $i\"; done; echo 'cannot bind 0.0.0.0:8080' >&2; exit 3",
    );
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 1);
    let o = sb.orc().arg("status").output().unwrap();
    expect_code(&o, 1);
    let text = out(&o);
    assert!(text.contains("failed (exit 3)"), "{text}");
    assert!(
        text.contains("      | cannot bind 0.0.0.0:8080\n"),
        "{text}"
    );
    assert!(text.contains("      | line 15\n"), "{text}");
    assert!(text.contains("      | line 7\n"), "{text}");
    assert!(!text.contains("| line 6\n"), "only the last lines: {text}");
    assert!(
        !text.contains("all-good"),
        "a step that passed shows no output: {text}"
    );
}
