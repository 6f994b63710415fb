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
fn a_result_line_a_failing_test_printed_counts_nothing() {
    // libtest prints a failing test's output before its binary's own result line.
    let log = [
        running("a"),
        "---- x stdout ----\nthread 'x' panicked at tests/a.rs:1:1:\n".into(),
        result(99, 0),
        "\nfailures:\n    x\n\n".into(),
        result(3, 1),
        running("b"),
        result(4, 0),
    ]
    .concat();
    fails(&log, 101, None, "7 passed, 1 failed");
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

/// A small crate whose tests the real cargo runs: 2 unit tests (and one ignored), 3 in
/// `tests/a.rs` (one fails, printing a forged result line), 2 in `tests/b.rs` (one waits
/// for `GO` when `FIXTURE_HOLD` is set). Every test that runs appends its name to
/// `$FIXTURE_MARKS` first: the count of what really ran, independent of any log.
fn fixture(dir: &Path) {
    let w = |rel: &str, text: &str| {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    };
    w(
        "Cargo.toml",
        "[package]\nname = \"fixture\"\nversion = \"0.0.0\"\nedition = \"2021\"\n",
    );
    w(
        "src/lib.rs",
        r#"pub fn mark(name: &str) {
    use std::io::Write;
    let p = std::env::var("FIXTURE_MARKS").unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(p).unwrap();
    // One write (O_APPEND): a line of a test running beside it never lands inside it.
    let line = format!("{name} {}\n", std::process::id());
    f.write_all(line.as_bytes()).unwrap();
}
#[cfg(test)]
mod tests {
    #[test] fn l1() { crate::mark("l1") }
    #[test] fn l2() { crate::mark("l2") }
    #[test] #[ignore] fn l3() { crate::mark("l3") }
}
"#,
    );
    w(
        "tests/a.rs",
        r#"#[test] fn a1() { fixture::mark("a1") }
#[test] fn a2() { fixture::mark("a2") }
#[test] fn a3() {
    fixture::mark("a3");
    panic!("\ntest result: ok. 99 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s\n");
}
"#,
    );
    w(
        "tests/b.rs",
        r#"#[test] fn b1() { fixture::mark("b1") }
#[test] fn b2() {
    fixture::mark("b2");
    if let Ok(go) = std::env::var("FIXTURE_HOLD") {
        let t = std::time::Instant::now();
        while !std::path::Path::new(&go).exists() {
            assert!(t.elapsed().as_secs() < 60, "never released");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
"#,
    );
}

/// test.sh's pipeline on the fixture, with its marks in `marks`; `during` runs while
/// cargo does. Returns verdict.sh's output and whether it exited 0.
fn real_run(
    dir: &Path,
    marks: &Path,
    hold: Option<&Path>,
    during: impl FnOnce(),
) -> (String, bool) {
    let log = dir.join("test.log");
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(
            "set +e; cargo test --offline --all-targets --no-fail-fast 2>&1 | tee \"$1\" >/dev/null; \
             rc=${PIPESTATUS[0]}; bash \"$2\" \"$1\" \"$rc\"",
        )
        .arg("sh")
        .arg(&log)
        .arg(script("verdict.sh"))
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env("FIXTURE_MARKS", marks)
        .env_remove("FIXTURE_HOLD")
        .stdout(std::process::Stdio::piped());
    if let Some(h) = hold {
        c.env("FIXTURE_HOLD", h);
    }
    let child = c.spawn().unwrap();
    during();
    let o = child.wait_with_output().unwrap();
    let all = String::from_utf8(o.stdout).unwrap();
    (all, o.status.success())
}

/// The lines of `marks` (one per test that ran), waiting until `n` are there.
fn marks_when(marks: &Path, n: usize) -> Vec<String> {
    let t = std::time::Instant::now();
    loop {
        let text = fs::read_to_string(marks).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(String::from).collect();
        if lines.len() >= n || t.elapsed().as_secs() > 120 {
            return lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_real_cargo_run_counts_each_test_it_ran_once_and_a_kill_fails() {
    let d = tempfile::tempdir().unwrap();
    fixture(d.path());
    let built = Command::new("cargo")
        .args(["test", "-q", "--offline", "--all-targets", "--no-run"])
        .current_dir(d.path())
        .env("CARGO_TARGET_DIR", d.path().join("target"))
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );

    // A whole run: the count is what ran (the marks), the forged line counts nothing.
    let marks = d.path().join("marks-whole");
    let (all, ok) = real_run(d.path(), &marks, None, || ());
    let ran = marks_when(&marks, 0).len();
    assert_eq!(ran, 7, "the fixture's 7 tests that are not ignored");
    assert_eq!(all.lines().last(), Some("6 passed, 1 failed"), "{all}");
    assert!(!ok);

    // Killed half-way: b2 holds its binary; SIGKILL to that binary once b2 runs.
    let marks = d.path().join("marks-killed");
    let go = d.path().join("go-never");
    let (all, ok) = real_run(d.path(), &marks, Some(&go), || {
        let b2 = marks_when(&marks, 7)
            .into_iter()
            .find(|l| l.starts_with("b2 "))
            .expect("b2 never ran");
        let pid: i32 = b2.split(' ').nth(1).unwrap().parse().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    });
    assert!(!ok, "a run killed half-way exited 0: {all}");
    // a's 2 passed and 1 failed, the lib's 2 passed; b's binary never reported: 1 failure.
    assert_eq!(all.lines().last(), Some("4 passed, 2 failed"), "{all}");
}
