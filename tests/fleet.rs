//! What a fleet reads without scraping: `status --json` and the reports checked against
//! the published JSON Schema (an ok, a failed, a crashed and a running run), the
//! node-exporter textfile parsed by prometheus_client's parser, and journal entries
//! with fields sent by the journal's native protocol to a socket standing in for
//! journald. The checkers run in a venv (scripts/lib.sh ensure_check_venv).

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Sandbox, err, expect_code, out, wait_for};

const SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/schema/orc-report-1.schema.json"
);
const CHECK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/check.py");

/// The venv's python with jsonschema and prometheus_client.
fn python() -> PathBuf {
    let p = std::env::var_os("ORC_CHECK_PYTHON").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/target/check-venv/bin/python"
            ))
        },
        PathBuf::from,
    );
    assert!(
        p.exists(),
        "{} is missing: run `. scripts/lib.sh; ensure_check_venv`",
        p.display()
    );
    p
}

fn check(args: &[&Path]) -> std::process::Output {
    Command::new(python())
        .arg(CHECK)
        .args(args)
        .output()
        .unwrap()
}

/// Saves `orc status --json` (and the report file it came from) under `name`.
fn save_status(sb: &Sandbox, dir: &Path, name: &str, want: &str) -> Vec<PathBuf> {
    let o = sb.orc().args(["status", "--json"]).output().unwrap();
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["result"], want, "{}", out(&o));
    let status = dir.join(format!("{name}-status.json"));
    fs::write(&status, &o.stdout).unwrap();
    let file = sb.path(&format!(
        "var/lib/orc/runs/{}.json",
        j["run_id"].as_str().unwrap()
    ));
    let copy = dir.join(format!("{name}-report.json"));
    fs::copy(file, &copy).unwrap();
    vec![status, copy]
}

#[test]
fn the_schema_validates_ok_failed_crashed_and_running_runs() {
    let keep = tempfile::tempdir().unwrap();
    let dir = keep.path();
    let mut files = Vec::new();
    // Never ran: null.
    let sb = Sandbox::new();
    let o = sb.orc().args(["status", "--json"]).output().unwrap();
    expect_code(&o, 3);
    fs::write(dir.join("never.json"), &o.stdout).unwrap();
    files.push(dir.join("never.json"));
    // ok, with a skipped file.
    sb.script("configure.d", "10-ok", "echo fine");
    sb.script("configure.d", "skip.sh", "true");
    expect_code(
        &sb.orc()
            .args(["run", "--skip-containers"])
            .output()
            .unwrap(),
        0,
    );
    files.extend(save_status(&sb, dir, "ok", "ok"));
    // failed.
    sb.script("configure.d", "20-fail", "echo broken >&2; exit 3");
    expect_code(
        &sb.orc()
            .args(["run", "--skip-containers"])
            .output()
            .unwrap(),
        1,
    );
    files.extend(save_status(&sb, dir, "failed", "failed"));
    // running: a step waits for the test to let it go.
    let sb = Sandbox::new();
    let (started, release) = (sb.path("started"), sb.path("release"));
    sb.script(
        "configure.d",
        "10-wait",
        &format!(
            "touch {}; while [ ! -e {} ]; do sleep 0.05; done",
            started.display(),
            release.display()
        ),
    );
    let mut run = sb
        .orc()
        .args(["run", "--skip-containers"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&started);
    files.extend(save_status(&sb, dir, "running", "running"));
    fs::write(&release, "").unwrap();
    assert!(run.wait().unwrap().success());
    // crashed: orc killed with SIGKILL mid-step.
    let sb = Sandbox::new();
    let (started, pid) = (sb.path("started"), sb.path("pid"));
    sb.script(
        "configure.d",
        "10-long",
        &format!(
            "echo $$ > {}; touch {}; exec sleep 60",
            pid.display(),
            started.display()
        ),
    );
    let mut run = sb
        .orc()
        .args(["run", "--skip-containers"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&started);
    run.kill().unwrap();
    run.wait().unwrap();
    let o = sb.orc().args(["status", "--json"]).output().unwrap();
    expect_code(&o, 1);
    files.extend(save_status(&sb, dir, "crashed", "crashed"));
    let leftover = fs::read_to_string(&pid).unwrap();
    let _ = Command::new("kill").arg("-9").arg(leftover.trim()).status();

    let mut args: Vec<&Path> = vec![Path::new("schema"), Path::new(SCHEMA)];
    args.extend(files.iter().map(PathBuf::as_path));
    let o = check(&args);
    expect_code(&o, 0);
    assert!(
        out(&o).contains(&format!("{} checked, 0 errors", files.len())),
        "{}",
        out(&o)
    );
}

#[test]
fn the_schema_rejects_what_it_does_not_describe() {
    let keep = tempfile::tempdir().unwrap();
    let sb = Sandbox::new();
    sb.script("configure.d", "10-ok", "true");
    expect_code(
        &sb.orc()
            .args(["run", "--skip-containers"])
            .output()
            .unwrap(),
        0,
    );
    let o = sb.orc().args(["status", "--json"]).output().unwrap();
    let mut j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    j["steps"][0]["result"] = "fine".into();
    j["surprise"] = 1.into();
    let bad = keep.path().join("bad.json");
    fs::write(&bad, j.to_string()).unwrap();
    let o = check(&[Path::new("schema"), Path::new(SCHEMA), &bad]);
    expect_code(&o, 1);
    assert!(out(&o).contains("steps/0/result"), "{}", out(&o));
    assert!(out(&o).contains("surprise"), "{}", out(&o));
}

/// The samples of a textfile as prometheus_client parses them.
fn samples(file: &Path) -> Vec<serde_json::Value> {
    let o = check(&[Path::new("prom"), file]);
    expect_code(&o, 0);
    serde_json::from_slice(&o.stdout).unwrap()
}

fn value(s: &[serde_json::Value], name: &str, labels: serde_json::Value) -> f64 {
    s.iter()
        .find(|x| x["name"] == name && x["labels"] == labels)
        .unwrap_or_else(|| panic!("no {name} {labels} in {s:#?}"))["value"]
        .as_f64()
        .unwrap()
}

#[test]
fn the_textfile_is_written_after_each_run_and_parses() {
    let sb = Sandbox::new();
    sb.config(r#"{"metrics": {"textfile_dir": "/var/lib/node-exporter"}}"#);
    let prom = sb.path("var/lib/node-exporter/orc.prom");
    sb.script("configure.d", "10-ok", "sleep 0.2");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    expect_code(
        &sb.orc()
            .args(["run", "--skip-containers"])
            .output()
            .unwrap(),
        0,
    );
    let s = samples(&prom);
    let no = serde_json::json!({});
    assert_eq!(value(&s, "orc_last_run_success", no.clone()) as i64, 1);
    assert!(value(&s, "orc_last_run_timestamp_seconds", no.clone()) >= before.floor());
    assert!(value(&s, "orc_last_run_duration_seconds", no.clone()) >= 0.2);
    let step = serde_json::json!({"phase": "configure", "step": "10-ok"});
    assert!(value(&s, "orc_step_duration_seconds", step.clone()) >= 0.2);
    assert!(s.iter().all(|x| x["type"] == "gauge"));
    // Only orc.prom is left in the dir (the temporary name was renamed).
    let names: Vec<_> = fs::read_dir(prom.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["orc.prom"]);
    // A failed run replaces it.
    sb.script("configure.d", "20-fail", "exit 4");
    expect_code(
        &sb.orc()
            .args(["run", "--skip-containers"])
            .output()
            .unwrap(),
        1,
    );
    let s = samples(&prom);
    assert_eq!(value(&s, "orc_last_run_success", no.clone()) as i64, 0);
    assert_eq!(value(&s, "orc_last_run_exit_code", no) as i64, 1);
    let failed = serde_json::json!({"phase": "configure", "step": "20-fail"});
    assert_eq!(value(&s, "orc_step_success", failed) as i64, 0);
    assert_eq!(value(&s, "orc_step_success", step) as i64, 1);
}

#[test]
fn no_textfile_without_the_config() {
    let sb = Sandbox::new();
    sb.script("configure.d", "10-ok", "true");
    expect_code(
        &sb.orc()
            .args(["run", "--skip-containers"])
            .output()
            .unwrap(),
        0,
    );
    let found = walk(sb.root())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "prom"))
        .count();
    assert_eq!(found, 0);
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// Each datagram as its fields (the plain `KEY=value` form orc uses for one-line values).
fn entries(sock: &UnixDatagram) -> Vec<std::collections::BTreeMap<String, String>> {
    common::datagrams(sock)
        .iter()
        .map(|d| {
            d.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// Runs orc with stderr in a file that JOURNAL_STREAM names (or not) and the test's
/// socket standing in for journald.
fn run_logged(sb: &Sandbox, sock: &Path, journal: bool) -> (std::process::Output, String) {
    let log = sb.path("stderr.log");
    let f = fs::File::create(&log).unwrap();
    let m = f.metadata().unwrap();
    let mut c = sb.orc();
    c.args(["run", "--skip-containers"])
        .env("ORC_JOURNAL_SOCKET", sock)
        .stderr(f);
    if journal {
        c.env("JOURNAL_STREAM", format!("{}:{}", m.dev(), m.ino()));
    }
    let o = c.output().unwrap();
    (o, fs::read_to_string(&log).unwrap())
}

#[test]
fn journal_entries_carry_run_phase_step_and_message_ids() {
    let sb = Sandbox::new();
    let sock_path = sb.path("journal.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sb.script("configure.d", "10-ok", "true");
    sb.script("configure.d", "20-fail", "exit 5");
    let (o, stderr) = run_logged(&sb, &sock_path, true);
    expect_code(&o, 1);
    assert!(
        !stderr.contains("orc:"),
        "orc's own lines went to stderr: {stderr}"
    );
    let run_id = sb.last_report()["run_id"].as_str().unwrap().to_string();
    let e = entries(&sock);
    let with_id = |id: &str| {
        e.iter()
            .find(|x| x.get("MESSAGE_ID").map(String::as_str) == Some(id))
            .unwrap_or_else(|| panic!("no entry with MESSAGE_ID {id}: {e:#?}"))
    };
    let start = with_id("b22682ea496b4faeacae54eeb9bbf50f");
    assert_eq!(start["ORC_RUN_ID"], run_id);
    assert_eq!(start["SYSLOG_IDENTIFIER"], "orc");
    let step = with_id("75c7e34b954f476691c6041a24c8cb5e");
    assert_eq!(step["ORC_PHASE"], "configure");
    assert_eq!(step["ORC_STEP"], "20-fail");
    assert_eq!(step["PRIORITY"], "3");
    assert!(step["MESSAGE"].contains("20-fail"), "{step:?}");
    let end = with_id("a77d075d83b94b25aa5204c9b1d6944d");
    assert_eq!(end["ORC_RUN_ID"], run_id);
    assert!(
        !end.contains_key("ORC_STEP"),
        "the run's end is no step's: {end:?}"
    );
    let phase_start = e
        .iter()
        .find(|x| x["MESSAGE"] == "starting configure")
        .unwrap_or_else(|| panic!("{e:#?}"));
    assert_eq!(phase_start["ORC_PHASE"], "configure");
    assert!(!phase_start.contains_key("ORC_STEP"), "{phase_start:?}");
    let ok = Sandbox::new();
    ok.script("configure.d", "10-ok", "true");
    let (o, _) = run_logged(&ok, &sock_path, true);
    expect_code(&o, 0);
    let e = entries(&sock);
    let done = e
        .iter()
        .find(|x| x["MESSAGE"].starts_with("completed configure"))
        .unwrap_or_else(|| panic!("{e:#?}"));
    assert_eq!(done["ORC_PHASE"], "configure");
    assert!(
        !done.contains_key("ORC_STEP"),
        "a phase's end is no step's: {done:?}"
    );
    assert!(end["MESSAGE"].contains("failed"), "{end:?}");
    assert!(
        e.iter()
            .all(|x| x.contains_key("MESSAGE") && x.contains_key("PRIORITY"))
    );
    // An ok run ends with the run-end id.
    fs::remove_file(sb.base().join("configure.d/20-fail")).unwrap();
    let (o, _) = run_logged(&sb, &sock_path, true);
    expect_code(&o, 0);
    let e = entries(&sock);
    assert!(
        e.iter()
            .any(|x| x.get("MESSAGE_ID").map(String::as_str)
                == Some("3afb5522721943a9a4b60d3e0763b0b2")),
        "{e:#?}"
    );
}

#[test]
fn without_the_journal_stream_orc_writes_plain_lines() {
    let sb = Sandbox::new();
    let sock_path = sb.path("journal.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sb.script("configure.d", "20-fail", "exit 5");
    let (o, stderr) = run_logged(&sb, &sock_path, false);
    expect_code(&o, 1);
    assert!(stderr.contains("orc: error: configure/20-fail"), "{stderr}");
    assert!(entries(&sock).is_empty(), "{}", err(&o));
}

#[test]
fn fleet_sh_puts_many_roots_in_one_table() {
    let (ok, failed, never) = (Sandbox::new(), Sandbox::new(), Sandbox::new());
    ok.script("configure.d", "10-ok", "true");
    failed.script("configure.d", "20-bad", "exit 3");
    expect_code(
        &ok.orc()
            .args(["run", "--skip-containers"])
            .output()
            .unwrap(),
        0,
    );
    expect_code(
        &failed
            .orc()
            .args(["run", "--skip-containers"])
            .output()
            .unwrap(),
        1,
    );
    let fleet = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fleet.sh");
    let o = Command::new(fleet)
        .env("ORC", common::bin())
        .args([ok.root(), failed.root(), never.root()])
        .output()
        .unwrap();
    expect_code(&o, 1);
    let text = out(&o);
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 4, "{text}");
    assert_eq!(rows[0][..2], ["ROOT", "RESULT"]);
    let find = |sb: &Sandbox| {
        let root = sb.root().to_str().unwrap();
        rows.iter()
            .find(|r| r[0] == root)
            .unwrap_or_else(|| panic!("{root}: {text}"))
    };
    assert_eq!(find(&ok)[1], "ok");
    let f = find(&failed);
    assert_eq!((f[1], f[5]), ("failed", "configure/20-bad"), "{text}");
    assert_eq!(find(&never)[1], "never");
    // All ok: exit 0.
    let o = Command::new(fleet)
        .env("ORC", common::bin())
        .arg(ok.root())
        .output()
        .unwrap();
    expect_code(&o, 0);
}
