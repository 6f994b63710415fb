//! The suite's verdict (scripts/verdict.sh, e2e's closing line in scripts/lib.sh) fed
//! logs of runs that went wrong: each must end "N passed, M failed" with the right M
//! and a non-zero exit.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

fn running(name: &str) -> String {
    format!("     Running tests/{name}.rs (target/debug/deps/{name}-0123456789abcdef)\n")
}

fn result(passed: u32, failed: u32) -> String {
    let word = if failed == 0 { "ok" } else { "FAILED" };
    format!(
        "test result: {word}. {passed} passed; {failed} failed; 0 ignored; 0 measured; \
         0 filtered out; finished in 0.01s\n"
    )
}

const E2E_OK: &str = "ok: something\ne2e: 71 passed, 0 failed\n";

/// Runs verdict.sh on a cargo log and exit code (and e2e's, when given): the closing
/// line, the whole output and whether it exited 0.
fn verdict(cargo: &str, cargo_rc: i32, e2e: Option<(&str, i32)>) -> (String, String, bool) {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("test.log");
    fs::write(&log, cargo).unwrap();
    let mut c = Command::new("bash");
    c.arg(script("verdict.sh"))
        .arg(&log)
        .arg(cargo_rc.to_string());
    if let Some((text, rc)) = e2e {
        let e = d.path().join("e2e.log");
        fs::write(&e, text).unwrap();
        c.arg(&e).arg(rc.to_string());
    }
    let o = c.output().unwrap();
    let all = String::from_utf8(o.stdout).unwrap();
    let last = all.lines().last().unwrap_or_default().to_string();
    (last, all, o.status.success())
}

fn fails(cargo: &str, cargo_rc: i32, e2e: Option<(&str, i32)>, want: &str) {
    let (last, all, ok) = verdict(cargo, cargo_rc, e2e);
    assert_eq!(last, want, "whole output:\n{all}");
    assert!(!ok, "exited 0 with {last:?}");
}

#[test]
fn a_clean_run_passes_with_every_test_counted() {
    let log = [running("a"), result(3, 0), running("b"), result(4, 0)].concat();
    let (last, all, ok) = verdict(&log, 0, Some((E2E_OK, 0)));
    assert_eq!(last, "78 passed, 0 failed", "{all}");
    assert_eq!(all.lines().count(), 1, "{all}");
    assert!(ok);
}

#[test]
fn a_failing_binary_counts_its_failures_once() {
    // cargo --no-fail-fast: the failing binary's result line, its "error: test failed",
    // the next binary, and the summary of failed targets at the end.
    let log = [
        running("a"),
        "test x ... FAILED\n".into(),
        result(3, 2),
        "error: test failed, to rerun pass `--test a`\n".into(),
        running("b"),
        result(4, 0),
        "error: 1 target failed:\n    `--test a`\n".into(),
    ]
    .concat();
    fails(&log, 101, None, "7 passed, 2 failed");
}

#[test]
fn a_run_killed_half_way_fails() {
    // The second binary started, printed some tests, and never finished.
    let log = [
        running("a"),
        result(3, 0),
        running("b"),
        "test y ... ok\n".into(),
    ]
    .concat();
    fails(&log, 143, None, "3 passed, 1 failed");
    // Even when cargo's status is lost: the unfinished binary is a failure.
    fails(&log, 0, None, "3 passed, 1 failed");
}

#[test]
fn a_crashed_binary_is_a_failure() {
    let log = [
        running("a"),
        "error: test failed, to rerun pass `--test a`\n\nCaused by:\n  process didn't exit \
         successfully: `target/debug/deps/a` (signal: 6, SIGABRT: process abort signal)\n"
            .into(),
        running("b"),
        result(4, 0),
    ]
    .concat();
    fails(&log, 101, None, "4 passed, 1 failed");
}

#[test]
fn cargo_failing_with_no_test_failed_is_a_failure() {
    fails(
        "error: could not compile `orc` (test \"a\")\n",
        101,
        None,
        "0 passed, 1 failed",
    );
    fails("", 0, None, "0 passed, 1 failed");
    let log = [running("a"), result(3, 0)].concat();
    fails(&log, 101, None, "3 passed, 1 failed");
}

#[test]
fn e2e_must_close_and_agree_with_its_status() {
    let log = [running("a"), result(3, 0)].concat();
    fails(&log, 0, Some(("ok: one\n", 1)), "3 passed, 1 failed");
    fails(
        &log,
        0,
        Some(("e2e: 16 passed, 0 failed\n", 1)),
        "19 passed, 1 failed",
    );
    fails(
        &log,
        0,
        Some(("e2e: 16 passed, 55 failed\n", 1)),
        "19 passed, 55 failed",
    );
}

/// e2e's closing line for DECLARED checks when PASSED and FAILED ran: the line, its
/// output, and the status.
fn e2e_closing(declared: u32, passed: u32, failed: u32) -> (String, bool) {
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            ". '{}' && e2e_closing {declared} {passed} {failed}",
            script("lib.sh").display()
        ))
        .output()
        .unwrap();
    let all = String::from_utf8(o.stdout).unwrap();
    (
        all.lines().last().unwrap_or_default().into(),
        o.status.success(),
    )
}

#[test]
fn e2e_counts_the_checks_that_did_not_run_as_failed() {
    // The image build left no tarball: 16 checks ran, 55 never did.
    assert_eq!(
        e2e_closing(71, 16, 0),
        ("e2e: 16 passed, 55 failed".into(), false)
    );
    assert_eq!(
        e2e_closing(71, 70, 1),
        ("e2e: 70 passed, 1 failed".into(), false)
    );
    assert_eq!(
        e2e_closing(71, 71, 0),
        ("e2e: 71 passed, 0 failed".into(), true)
    );
    // More checks than declared: the declaration is stale.
    assert_eq!(
        e2e_closing(71, 72, 0),
        ("e2e: 72 passed, 1 failed".into(), false)
    );
}

#[test]
fn a_killed_cargo_keeps_its_status_through_tee() {
    // test.sh's pipeline shape: the status of the command, not of tee.
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("test.log");
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set +e; bash -c 'printf \"{}\"; kill -9 $$' 2>&1 | tee '{}' >/dev/null; \
             rc=${{PIPESTATUS[0]}}; bash '{}' '{}' \"$rc\"",
            running("a").trim_end(),
            log.display(),
            script("verdict.sh").display(),
            log.display()
        ))
        .output()
        .unwrap();
    let all = String::from_utf8(o.stdout).unwrap();
    assert_eq!(all.lines().last(), Some("0 passed, 1 failed"), "{all}");
    assert!(!o.status.success());
}
