//! `orc run` behaviour through the binary: order, selection, failures,
//! timeouts, signals, the lock, the report and exit codes.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use assert_cmd::prelude::*;
use common::*;
use predicates::prelude::*;

#[test]
fn phases_run_in_design_order_and_upstream_order() {
    let sb = Sandbox::new();
    for (dir, name) in [
        ("pre-configure.d", "10-pre"),
        ("configure.d", "10-conf"),
        ("migration.d", "20-mig"),
        ("migrations.d", "10-migs"),
        ("post-configure.d", "10-post"),
    ] {
        sb.script(dir, name, &format!("echo {name}"));
    }
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 0);
    assert_eq!(out(&o), "10-pre\n10-conf\n10-migs\n20-mig\n10-post\n");
    sb.config(r#"{"phase_order": "upstream"}"#);
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 0);
    assert_eq!(out(&o), "10-pre\n10-conf\n10-post\n10-migs\n20-mig\n");
}

/// `sort(1)` of `lines` under `locale`; fails unless `locale -a` lists the locale.
fn sorted_under(locale: &str, lines: &str) -> String {
    let listed = std::process::Command::new("locale")
        .arg("-a")
        .output()
        .unwrap();
    let want = locale.replace(".UTF-8", ".utf8");
    assert!(
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .any(|l| l == want),
        "{locale} is not generated (`locale -a`; scripts/test.sh makes it)"
    );
    let mut c = std::process::Command::new("sort")
        .env("LC_ALL", locale)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
    String::from_utf8(c.wait_with_output().unwrap().stdout).unwrap()
}

#[test]
fn numeric_order_with_bytewise_ties_whatever_the_locale() {
    let sb = Sandbox::new();
    for name in ["100-z", "9-y", "10-b", "10-B", "10_a", "x"] {
        sb.script("configure.d", name, &format!("echo {name}"));
    }
    let names = "100-z\n9-y\n10-b\n10-B\n10_a\nx\n";
    let bytewise = sorted_under("C", names);
    for locale in [
        "C",
        "en_US.UTF-8",
        "de_DE.UTF-8",
        "tr_TR.UTF-8",
        "sv_SE.UTF-8",
    ] {
        if locale != "C" {
            // The locale exists and is in force: sort(1) orders the names differently.
            assert_ne!(
                sorted_under(locale, names),
                bytewise,
                "{locale} is not generated (`locale -a`; scripts/test.sh makes it)"
            );
        }
        let o = sb
            .orc()
            .env("LC_ALL", locale)
            .env("LANG", locale)
            .arg("run")
            .output()
            .unwrap();
        expect_code(&o, 0);
        assert_eq!(
            out(&o),
            "x\n9-y\n10-B\n10-b\n10_a\n100-z\n",
            "LC_ALL={locale}"
        );
    }
}

#[test]
fn skipped_entries_are_named_with_the_reason() {
    let sb = Sandbox::new();
    sb.script("configure.d", "10-ok", "echo ran-ok");
    sb.script("configure.d", "20-setup.sh", "echo ran-dotted");
    sb.script("configure.d", "30-backup~", "echo ran-backup");
    write_mode(
        &sb.base().join("configure.d/40-noexec"),
        "#!/bin/sh\necho ran-noexec\n",
        0o644,
    );
    fs::create_dir_all(sb.base().join("configure.d/50-dir")).unwrap();
    std::os::unix::fs::symlink("/nonexistent", sb.base().join("configure.d/60-dangling")).unwrap();
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 0);
    assert_eq!(out(&o), "ran-ok\n");
    let e = err(&o);
    for (name, why) in [
        ("20-setup.sh", "name does not match ^[0-9A-Za-z_-]+$"),
        ("30-backup~", "name does not match"),
        ("40-noexec", "not executable"),
        ("50-dir", "is a directory"),
        ("60-dangling", "dangling symlink"),
    ] {
        assert!(
            e.lines()
                .any(|l| l.contains("warning: skipping") && l.contains(name) && l.contains(why)),
            "no warning for {name}: {e}"
        );
    }
    let list = sb.orc().args(["list", "--json"]).output().unwrap();
    expect_code(&list, 0);
    let plan: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(plan["skipped"].as_array().unwrap().len(), 5);
    assert_eq!(sb.last_report()["skipped"].as_array().unwrap().len(), 5);
}

#[test]
fn run_parts_regex_overrides_the_name_rule() {
    let sb = Sandbox::new();
    sb.script("configure.d", "10-a.sh", "echo dotted");
    let o = sb
        .orc()
        .env("RUN_PARTS_REGEX", r"^[0-9a-z.-]+$")
        .arg("run")
        .output()
        .unwrap();
    expect_code(&o, 0);
    assert_eq!(out(&o), "dotted\n");
}

#[test]
fn symlinked_phase_dir_is_followed_inside_the_root() {
    let sb = Sandbox::new();
    let real = sb.path("elsewhere/configure");
    write_mode(&real.join("10-linked"), "#!/bin/sh\necho linked\n", 0o755);
    write_mode(
        &sb.path("elsewhere/post/10-rel"),
        "#!/bin/sh\necho relative\n",
        0o755,
    );
    fs::create_dir_all(sb.base()).unwrap();
    // Absolute targets mean root + target; relative ones resolve as usual.
    std::os::unix::fs::symlink("/elsewhere/configure", sb.base().join("configure.d")).unwrap();
    std::os::unix::fs::symlink(
        "../../../elsewhere/post",
        sb.base().join("post-configure.d"),
    )
    .unwrap();
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 0);
    assert_eq!(out(&o), "linked\nrelative\n");
}

#[test]
fn environment_d_exports_reach_scripts_and_values_are_never_logged() {
    let sb = Sandbox::new();
    write_mode(
        &sb.base().join("environment.d/10-db"),
        "export DB_PASSWORD=hunter2-secret\nexport DB_HOST=db.example\n",
        0o644,
    );
    write_mode(
        &sb.base().join("environment.d/20-derived"),
        "export DB_URL=\"mysql://$DB_HOST\"\n",
        0o644,
    );
    sb.script(
        "configure.d",
        "10-use",
        "echo \"$DB_URL\"; test \"$DB_PASSWORD\" = hunter2-secret",
    );
    let o = sb.orc().args(["run", "-vv"]).output().unwrap();
    expect_code(&o, 0);
    assert_eq!(out(&o), "mysql://db.example\n");
    assert!(
        err(&o).contains("DB_PASSWORD"),
        "debug log names the variables: {}",
        err(&o)
    );
    assert!(!err(&o).contains("hunter2"), "{}", err(&o));
    let report = fs::read_to_string(sb.path("var/lib/orc/last-run.json")).unwrap();
    assert!(!report.contains("hunter2"));
}

#[test]
fn empty_environment_d_is_fine() {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.base().join("environment.d")).unwrap();
    sb.script("configure.d", "10-a", "echo ran");
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 0);
    assert_eq!(out(&o), "ran\n");
}

#[test]
fn failing_environment_file_is_named_and_nothing_runs() {
    let sb = Sandbox::new();
    write_mode(
        &sb.base().join("environment.d/10-good"),
        "export A=1\n",
        0o644,
    );
    write_mode(
        &sb.base().join("environment.d/20-broken"),
        "export B=2\nnosuchcommand-xyz --flag\n",
        0o644,
    );
    sb.script("configure.d", "10-a", "echo must-not-run");
    sb.script(
        "error.d",
        "10-err",
        "echo \"error.d: $ORC_FAILED_PHASE $ORC_FAILED_STEP\"",
    );
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 1);
    assert!(!out(&o).contains("must-not-run"));
    assert!(out(&o).contains("error.d: environment environment.d"));
    let e = err(&o);
    assert!(
        e.lines()
            .any(|l| l.contains("20-broken") && l.contains("nosuchcommand-xyz: command not found")),
        "{e}"
    );
    assert!(
        sb.last_report()["error"]
            .as_str()
            .unwrap()
            .contains("20-broken")
    );
}

#[test]
fn failure_stops_the_run_and_error_d_gets_the_details() {
    let sb = Sandbox::new();
    sb.script("pre-configure.d", "10-ok", "echo one");
    sb.script("pre-configure.d", "20-bad", "echo two; exit 42");
    sb.script("configure.d", "10-never", "echo never");
    sb.script(
        "error.d",
        "10-report",
        "echo \"handler $ORC_FAILED_PHASE/$ORC_FAILED_STEP=$ORC_FAILED_EXIT\"; exit 3",
    );
    sb.script("error.d", "20-second", "echo second-handler");
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 1);
    assert_eq!(
        out(&o),
        "one\ntwo\nhandler pre-configure/20-bad=42\nsecond-handler\n"
    );
    let r = sb.last_report();
    assert_eq!(r["result"], "failed");
    assert_eq!(r["exit_code"], 1);
    let bad = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "20-bad")
        .unwrap();
    assert_eq!(bad["exit_code"], 42);
    assert_eq!(bad["result"], "failed");
    assert_eq!(bad["output_tail"], "two\n");
    let handler = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "10-report")
        .unwrap();
    assert_eq!(handler["kind"], "error-handler");
    assert_eq!(handler["exit_code"], 3);
}

#[test]
fn on_error_continue_runs_the_rest_and_still_fails() {
    let sb = Sandbox::new();
    sb.script("configure.d", "10-bad", "exit 1");
    sb.script("configure.d", "20-next", "echo next");
    sb.script("post-configure.d", "10-post", "echo post");
    let o = sb
        .orc()
        .args(["run", "--on-error", "continue"])
        .output()
        .unwrap();
    expect_code(&o, 1);
    assert_eq!(out(&o), "next\npost\n");
}

#[test]
fn only_runs_the_named_phases() {
    let sb = Sandbox::new();
    sb.script("pre-configure.d", "10-pre", "echo pre");
    sb.script("configure.d", "10-conf", "echo conf");
    sb.script("post-configure.d", "10-post", "echo post");
    let o = sb
        .orc()
        .args(["run", "--only", "post-configure", "--only", "configure"])
        .output()
        .unwrap();
    expect_code(&o, 0);
    assert_eq!(out(&o), "conf\npost\n");
    let names: Vec<String> = sb.last_report()["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["10-conf", "10-post"]);
    sb.orc().args(["run", "--only", "bogus"]).assert().code(2);
}

#[test]
fn script_environment_and_stdin() {
    let sb = Sandbox::new();
    sb.script(
        "configure.d",
        "10-env",
                "echo \"$ORC_PHASE|$ORC_ROOT|${ORC_RUN_ID:+id}\"; cat; echo stdin-closed\n\
                  echo \"$0 $ORC_SCRIPT\"\n\
         for f in /proc/self/fd/*; do readlink $f; done | grep -c -e '\\.lock$' -e var/lib/orc -e environment.d || true",
    );
    let o = sb.orc().arg("run").stdin(Stdio::piped()).output().unwrap();
    expect_code(&o, 0);
    // The interpreter reads the checked open file (fd 3); ORC_SCRIPT says where it is.
    // Nothing of orc's own (the lock, its data dir, environment.d) is open in a script.
    assert_eq!(
        out(&o),
        format!(
            "configure|{}|id\nstdin-closed\n/dev/fd/3 {}\n0\n",
            sb.root().display(),
            sb.base().join("configure.d/10-env").display()
        )
    );
}

#[test]
fn script_timeout_kills_the_whole_process_group() {
    let sb = Sandbox::new();
    let pidfile = sb.path("bg.pid");
    sb.script(
        "configure.d",
        "10-hang",
        &format!(
            "sleep 300 &\necho $! > {}\necho started\nsleep 300",
            pidfile.display()
        ),
    );
    sb.script("configure.d", "20-never", "echo never");
    let t = Instant::now();
    let o = sb
        .orc()
        .args(["run", "--script-timeout", "1"])
        .output()
        .unwrap();
    expect_code(&o, 1);
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(out(&o), "started\n");
    let bg: i32 = fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(bg), None).is_err(),
        "background child {bg} survived"
    );
    let r = sb.last_report();
    assert_eq!(r["result"], "failed");
    let s = &r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "10-hang")
        .unwrap();
    assert_eq!(s["result"], "timeout");
    assert_eq!(s["timed_out"], true);
    assert_eq!(s["signal"], 15);
}

#[test]
fn term_ignoring_script_is_killed_after_the_grace() {
    let sb = Sandbox::new();
    sb.script(
        "configure.d",
        "10-stubborn",
        "trap '' TERM\necho up\nwhile :; do sleep 0.1; done",
    );
    let t = Instant::now();
    let o = sb
        .orc()
        .args(["run", "--script-timeout", "1"])
        .output()
        .unwrap();
    expect_code(&o, 1);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(11) && took < Duration::from_secs(20),
        "{took:?}"
    );
    let r = sb.last_report();
    assert_eq!(r["steps"][1]["signal"], 9);
}

#[test]
fn whole_run_timeout() {
    let sb = Sandbox::new();
    sb.upstream_script("pre-configure", "10-a", 0, 5);
    sb.upstream_script("configure", "10-b", 0, 5);
    sb.script("error.d", "10-e", "echo error-handler");
    let t = Instant::now();
    let o = sb.orc().args(["run", "--timeout", "1"]).output().unwrap();
    expect_code(&o, 1);
    assert!(t.elapsed() < Duration::from_secs(4));
    assert_eq!(out(&o), "10-a starting\n");
    assert_eq!(sb.last_report()["result"], "timeout");
    assert!(
        err(&o).contains("no time left to run error.d/10-e"),
        "{}",
        err(&o)
    );
}

fn spawn_and_signal(sig: nix::sys::signal::Signal, code: i32) {
    let sb = Sandbox::new();
    let started = sb.path("started");
    let log = sb.path("log");
    let lock = sb.lock_file();
    sb.script(
        "configure.d",
        "10-long",
        &format!(
            "trap 'echo got-term >> {log}; sleep 1; flock -n {lock} true && echo lock-free >> {log} || echo lock-held >> {log}; exit 0' TERM INT\n\
             touch {started}\nsleep 300 & wait",
            log = log.display(),
            lock = lock.display(),
            started = started.display()
        ),
    );
    sb.script("configure.d", "20-never", "echo never >> /dev/stderr");
    let child = sb
        .orc()
        .arg("run")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&started);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
    let o = child.wait_with_output().unwrap();
    expect_code(&o, code);
    assert_eq!(fs::read_to_string(&log).unwrap(), "got-term\nlock-held\n");
    assert!(!err(&o).contains("never"));
    let r = sb.last_report();
    assert_eq!(r["result"], "interrupted");
    assert_eq!(r["exit_code"], code);
    // The lock is free once orc has exited.
    let f = fs::File::open(&lock).unwrap();
    f.try_lock().unwrap();
}

#[test]
fn sigterm_is_forwarded_and_waited_for_before_the_lock_is_released() {
    spawn_and_signal(nix::sys::signal::Signal::SIGTERM, 143);
}

#[test]
fn sigint_is_forwarded_too() {
    spawn_and_signal(nix::sys::signal::Signal::SIGINT, 130);
}

#[test]
fn lock_busy_exits_11_naming_the_holder_or_waits() {
    let sb = Sandbox::new();
    let started = sb.path("started");
    sb.script(
        "configure.d",
        "10-hold",
        &format!("touch {}; sleep 2", started.display()),
    );
    let first = sb.orc().arg("run").stderr(Stdio::piped()).spawn().unwrap();
    wait_for(&started);
    let pid = first.id();
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 11);
    assert!(err(&o).contains(&format!("pid={pid}")), "{}", err(&o));
    assert!(err(&o).contains("os-refresh-config.lock"));
    let t = Instant::now();
    let o = sb
        .orc()
        .args(["run", "--wait=30", "--only", "pre-configure"])
        .output()
        .unwrap();
    expect_code(&o, 0);
    assert!(t.elapsed() > Duration::from_millis(500));
    let first = first.wait_with_output().unwrap();
    expect_code(&first, 0);
    assert_eq!(
        fs::read_to_string(sb.lock_file()).unwrap(),
        "",
        "holder line cleared"
    );
}

#[test]
fn status_reports_last_run_and_exit_codes() {
    let sb = Sandbox::new();
    sb.orc()
        .arg("status")
        .assert()
        .code(3)
        .stdout(predicate::str::contains("never run"));
    sb.script("configure.d", "10-a", "echo hello");
    sb.orc().arg("run").assert().success();
    sb.orc().arg("status").assert().code(0).stdout(
        predicate::str::contains("ok (exit 0)").and(predicate::str::contains("configure/10-a")),
    );
    sb.script("configure.d", "20-b", "exit 5");
    sb.orc().arg("run").assert().code(1);
    let o = sb.orc().args(["status", "--json"]).output().unwrap();
    expect_code(&o, 1);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["result"], "failed");
    let o = sb.orc().args(["status", "--wait"]).output().unwrap();
    expect_code(&o, 1);
}

#[test]
fn report_contents_and_retention() {
    let sb = Sandbox::new();
    sb.script(
        "configure.d",
        "10-big",
        "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done",
    );
    for _ in 0..22 {
        sb.orc().arg("run").stdout(Stdio::null()).assert().success();
    }
    let runs: Vec<_> = fs::read_dir(sb.path("var/lib/orc/runs")).unwrap().collect();
    assert_eq!(runs.len(), 20);
    let r = sb.last_report();
    for key in [
        "run_id",
        "started",
        "ended",
        "duration_ms",
        "overhead_ms",
        "result",
        "steps",
    ] {
        assert!(!r[key].is_null(), "{key} missing");
    }
    let link = fs::read_link(sb.path("var/lib/orc/last-run.json")).unwrap();
    assert_eq!(
        link.to_str().unwrap(),
        format!("runs/{}.json", r["run_id"].as_str().unwrap())
    );
    let steps = r["steps"].as_array().unwrap();
    let kinds: Vec<&str> = steps.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["state", "script", "containers"]);
    let big = &steps[1];
    let tail = big["output_tail"].as_str().unwrap();
    assert!(tail.len() <= 8192 && tail.len() > 8000, "{}", tail.len());
    assert!(tail.ends_with("line-1999\n"));
    assert_eq!(big["phase"], "configure");
    assert_eq!(big["exit_code"], 0);
    assert!(big["duration_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(steps[0]["note"], "nothing registered");
    assert_eq!(steps[2]["result"], "skipped");
    assert_eq!(steps[2]["note"], "no container specs");
}

#[test]
fn unsafe_scripts_are_refused_when_root() {
    if !nix::unistd::geteuid().is_root() {
        panic!("this test must run as root (scripts/test.sh does)");
    }
    let sb = Sandbox::new();
    sb.script("configure.d", "10-a", "echo must-not-run");
    let bad = sb.script("configure.d", "20-writable", "echo must-not-run");
    fs::set_permissions(&bad, fs::Permissions::from_mode(0o777)).unwrap();
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 2);
    assert_eq!(out(&o), "");
    let e = err(&o);
    assert!(
        e.contains("refusing to run as root")
            && e.contains("20-writable")
            && e.contains("writable by group or others"),
        "{e}"
    );
    assert!(!sb.path("var/lib/orc").exists(), "nothing changed");
    fs::set_permissions(&bad, fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&bad, Some(1000), Some(1000)).unwrap();
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 2);
    assert!(err(&o).contains("owned by uid 1000"), "{}", err(&o));
    std::os::unix::fs::chown(&bad, Some(0), Some(0)).unwrap();
    fs::set_permissions(
        sb.base().join("configure.d"),
        fs::Permissions::from_mode(0o757),
    )
    .unwrap();
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 2);
    assert!(
        err(&o).contains("configure.d: writable by group or others"),
        "{}",
        err(&o)
    );
}

#[test]
fn invalid_config_exits_2_naming_file_line_and_column() {
    let sb = Sandbox::new();
    sb.script("configure.d", "10-a", "echo must-not-run");
    sb.config("{\n  \"phase_order\": \"upstream\",\n  \"colour\": 1\n}\n");
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 2);
    assert_eq!(out(&o), "");
    let e = err(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.contains("etc/orc/orc.json: line 3, column 10: unknown field `colour`"),
        "{e}"
    );
    assert!(!sb.path("var/lib/orc").exists());
    assert!(!sb.lock_file().exists());
}

/// Under journald with its socket out of reach (here: a path with nothing at it, never the
/// real journal), every line of orc's own gets a `<N>` prefix instead.
#[test]
fn journald_gets_priority_prefixes_on_every_line() {
    use std::os::unix::fs::MetadataExt;
    let sb = Sandbox::new();
    sb.script("configure.d", "10.sh", "true");
    sb.script("configure.d", "20-a", "true");
    let log = sb.path("journal");
    let f = fs::File::create(&log).unwrap();
    let m = f.metadata().unwrap();
    let o = sb
        .orc()
        .env("JOURNAL_STREAM", format!("{}:{}", m.dev(), m.ino()))
        .env("ORC_JOURNAL_SOCKET", sb.path("no-journal.sock"))
        .arg("run")
        .stderr(f)
        .output()
        .unwrap();
    expect_code(&o, 0);
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.lines().any(|l| l.starts_with("<4>skipping")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("<6>run ")), "{text}");
    assert!(text.lines().all(|l| l.starts_with('<')), "{text}");
    // A JOURNAL_STREAM that is not our stderr (inherited by a script's child) is ignored.
    let o = sb
        .orc()
        .env("JOURNAL_STREAM", "1:2")
        .arg("run")
        .output()
        .unwrap();
    assert!(err(&o).contains("orc: warning: skipping"), "{}", err(&o));
}

#[test]
fn scripts_without_shebang_run_through_bash() {
    let sb = Sandbox::new();
    write_mode(
        &sb.base().join("configure.d/10-plain"),
        "echo ${BASH_VERSION:+bash}\n",
        0o755,
    );
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 0);
    assert_eq!(out(&o), "bash\n");
}

#[test]
fn missing_base_dir_runs_nothing_and_succeeds() {
    let sb = Sandbox::new();
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 0);
    assert_eq!(out(&o), "");
}

#[test]
fn help_and_man_and_completions_come_from_one_definition() {
    let sb = Sandbox::new();
    sb.orc()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("status"));
    sb.orc()
        .args(["run", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--script-timeout"));
    let man = sb.path("man");
    sb.orc().arg("man").arg(&man).assert().success();
    let page = fs::read_to_string(man.join("orc.1")).unwrap();
    assert!(page.contains(".TH orc"), "{page}");
    assert!(man.join("orc-run.1").exists());
    sb.orc()
        .args(["completions", "bash"])
        .assert()
        .success()
        .stdout(predicate::str::contains("_orc()"));
}

#[test]
fn a_daemon_a_script_starts_keeps_its_stdout_after_orc_exits() {
    let sb = Sandbox::new();
    let marker = sb.path("daemon-wrote");
    sb.script(
        "configure.d",
        "10-daemon",
        &format!(
            "(sleep 1; echo daemon-alive; echo daemon-err >&2; touch {}) &\necho script-done",
            marker.display()
        ),
    );
    let log = sb.path("stdout.log");
    let o = sb
        .orc()
        .arg("run")
        .stdout(fs::File::create(&log).unwrap())
        .output()
        .unwrap();
    expect_code(&o, 0);
    // orc is gone; the daemon writes a second later and must not die of SIGPIPE.
    wait_for(&marker);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "script-done\ndaemon-alive\n"
    );
}

#[test]
fn a_timed_out_step_does_not_wait_for_its_zombie_orphans() {
    let sb = Sandbox::new();
    // The child exits at once; once the script is killed it is an orphan. Were orc not
    // its reaper, it would go to this test process, which (like a container's PID 1
    // that never reaps) leaves it a zombie in the step's process group forever.
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    sb.script("configure.d", "10-z", "sh -c 'exit 0' &\nsleep 30");
    let t = Instant::now();
    let o = sb
        .orc()
        .args(["run", "--script-timeout", "1"])
        .output()
        .unwrap();
    expect_code(&o, 1);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(sb.last_report()["result"], "failed");
}
