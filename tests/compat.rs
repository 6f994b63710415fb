//! The `os-refresh-config` and `dib-run-parts` personalities side by side with
//! the real os-refresh-config 14.1.0 from PyPI (its venv's bin dir is in
//! `ORC_UPSTREAM_BIN`; scripts/test.sh installs it).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn upstream_bin() -> PathBuf {
    let dir = std::env::var_os("ORC_UPSTREAM_BIN")
        .map(PathBuf::from)
        .expect("ORC_UPSTREAM_BIN must point at a venv bin dir with os-refresh-config 14.1.0 (scripts/test.sh sets it)");
    assert!(
        dir.join("os-refresh-config").exists(),
        "no os-refresh-config in {}",
        dir.display()
    );
    dir
}

/// A dir holding orc's personalities as symlinks, as install.sh lays them out.
fn personalities(sb: &Sandbox) -> PathBuf {
    let dir = sb.path("orc-bin");
    if !dir.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["os-refresh-config", "dib-run-parts"] {
            std::os::unix::fs::symlink(bin(), dir.join(name)).unwrap();
        }
    }
    dir
}

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn command(sb: &Sandbox, bindir: &Path, tool: &str, args: &[&str]) -> Command {
    let mut c = Command::new(bindir.join(tool));
    c.env_clear()
        .env("PATH", path_with(bindir))
        .env("LC_ALL", "C")
        .env("OS_REFRESH_CONFIG_BASE_DIR", sb.base())
        .env("ORC_ROOT", sb.root())
        .stdin(Stdio::null())
        .args(args);
    c
}

/// Runs `os-refresh-config --lockfile L ARGS` with upstream, then orc.
fn both(sb: &Sandbox, args: &[&str]) -> (Output, Output) {
    sb.config(r#"{"phase_order": "upstream"}"#);
    let lock = sb.path("lock");
    let mut full = vec!["--lockfile", lock.to_str().unwrap()];
    full.extend_from_slice(args);
    let up = command(sb, &upstream_bin(), "os-refresh-config", &full)
        .output()
        .unwrap();
    let ours = command(sb, &personalities(sb), "os-refresh-config", &full)
        .output()
        .unwrap();
    (up, ours)
}

/// `(LEVEL, message)` of os-refresh-config's own log lines, timestamps dropped.
fn log_lines(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter_map(|l| l.split_once("] (os-refresh-config) ["))
        .filter_map(|(_, rest)| rest.split_once("] "))
        .map(|(lvl, msg)| {
            let msg = match msg.find(" phase. [") {
                Some(i) => msg[..i + 7].to_string(),
                None => msg.to_string(),
            };
            (lvl.to_string(), msg)
        })
        .collect()
}

#[track_caller]
fn same(up: &Output, ours: &Output) {
    assert_eq!(
        up.status.code(),
        ours.status.code(),
        "exit codes\nupstream: {}\norc: {}",
        err(up),
        err(ours)
    );
    assert_eq!(
        out(up),
        out(ours),
        "stdout\nupstream stderr: {}\norc stderr: {}",
        err(up),
        err(ours)
    );
}

#[test]
fn empty_base_prints_nothing() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.base()).unwrap();
    let (up, ours) = both(&sb, &[]);
    same(&up, &ours);
    assert_eq!(up.status.code(), Some(0));
    assert_eq!(err(&up), "");
    assert_eq!(err(&ours), "");
    assert_eq!(out(&ours), "");
}

#[test]
fn scripts_over_several_phases() {
    let sb = Sandbox::new();
    for phase in ["pre-configure", "configure", "post-configure", "migration"] {
        let short = &phase[..4];
        sb.upstream_script(phase, &format!("20-{short}-second"), 0, 0);
        sb.upstream_script(phase, &format!("10-{short}-first"), 0, 0);
    }
    let (up, ours) = both(&sb, &[]);
    same(&up, &ours);
    assert_eq!(ours.status.code(), Some(0));
    assert!(
        out(&ours)
            .starts_with("10-pre--first starting\n10-pre--first done\n20-pre--second starting\n")
    );
    assert!(out(&ours).ends_with("20-migr-second done\n"));
    assert_eq!(log_lines(&err(&up)), log_lines(&err(&ours)));
    assert_eq!(log_lines(&err(&ours)).len(), 8);
}

#[test]
fn failing_script_stops_the_run_and_calls_error_handlers() {
    let sb = Sandbox::new();
    sb.upstream_script("pre-configure", "10-pre-first", 0, 0);
    sb.upstream_script("pre-configure", "20-pre-second", 99, 0);
    sb.upstream_script("configure", "10-conf-first", 0, 0);
    sb.script("error.d", "10-handler", "echo handled");
    let (up, ours) = both(&sb, &[]);
    same(&up, &ours);
    assert_eq!(ours.status.code(), Some(1));
    assert_eq!(
        out(&ours),
        "10-pre-first starting\n10-pre-first done\n20-pre-second starting\n20-pre-second done\nhandled\n"
    );
    let lines = log_lines(&err(&ours));
    assert_eq!(log_lines(&err(&up)), lines);
    assert!(lines.contains(&("INFO".into(), "Calling error handlers.".into())));
    assert_eq!(
        lines.last().unwrap(),
        &("ERROR".to_string(), "Aborting...".to_string())
    );
}

#[test]
fn timeout_stops_the_run() {
    let sb = Sandbox::new();
    sb.upstream_script("pre-configure", "10-pre-first", 0, 5);
    sb.upstream_script("pre-configure", "20-pre-second", 0, 5);
    sb.upstream_script("configure", "10-conf-first", 0, 5);
    sb.config(r#"{"phase_order": "upstream"}"#);
    let lock = sb.path("lock");
    let args = [
        "--lockfile",
        lock.to_str().unwrap(),
        "--timeout",
        "2",
        "--log-level",
        "DEBUG",
    ];
    for dir in [upstream_bin(), personalities(&sb)] {
        let t = Instant::now();
        let o = command(&sb, &dir, "os-refresh-config", &args)
            .output()
            .unwrap();
        let took = t.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(5),
            "{took:?}"
        );
        expect_code(&o, 1);
        assert_eq!(out(&o), "10-pre-first starting\n");
    }
}

#[test]
fn debug_logs_but_prints_nothing() {
    let sb = Sandbox::new();
    let (up, ours) = both(&sb, &["--log-level", "DEBUG"]);
    same(&up, &ours);
    assert_ne!(err(&up), "");
    assert_ne!(err(&ours), "");
}

#[test]
fn print_phases_and_print_base() {
    let sb = Sandbox::new();
    for flag in ["--print-phases", "--print-base"] {
        let (up, ours) = both(&sb, &[flag]);
        same(&up, &ours);
        assert_eq!(err(&ours), "");
    }
    let (_, ours) = both(&sb, &["--print-phases"]);
    assert_eq!(
        out(&ours),
        "pre-configure\tconfigure\tpost-configure\tmigration\n"
    );
    let (_, ours) = both(&sb, &["--print-base"]);
    assert_eq!(out(&ours), format!("{}\n", sb.base().display()));
    // Without a configured order, upstream's is printed; the config can still choose.
    let print = |config: &str| {
        sb.config(config);
        let o = command(
            &sb,
            &personalities(&sb),
            "os-refresh-config",
            &["--print-phases"],
        )
        .output()
        .unwrap();
        out(&o)
    };
    assert_eq!(
        print("{}"),
        "pre-configure\tconfigure\tpost-configure\tmigration\n"
    );
    assert_eq!(
        print(r#"{"phase_order": "design"}"#),
        "pre-configure\tconfigure\tmigration\tpost-configure\n"
    );
}

#[test]
fn without_a_config_the_personality_runs_upstreams_order_and_orc_run_the_cards() {
    let sb = Sandbox::new();
    for phase in ["pre-configure", "configure", "post-configure", "migration"] {
        sb.upstream_script(phase, &format!("10-{}", &phase[..4]), 0, 0);
    }
    let lock = sb.path("lock");
    let args = ["--lockfile", lock.to_str().unwrap()];
    let up = command(&sb, &upstream_bin(), "os-refresh-config", &args)
        .output()
        .unwrap();
    let ours = command(&sb, &personalities(&sb), "os-refresh-config", &args)
        .output()
        .unwrap();
    same(&up, &ours);
    assert_eq!(log_lines(&err(&up)), log_lines(&err(&ours)));
    let order = |o: &Output| -> Vec<String> {
        out(o)
            .lines()
            .filter(|l| l.ends_with(" done"))
            .map(|l| l[3..7].to_string())
            .collect()
    };
    assert_eq!(order(&ours), ["pre-", "conf", "post", "migr"]);
    // `orc run` keeps the design card's order.
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 0);
    assert_eq!(order(&o), ["pre-", "conf", "migr", "post"]);
}

#[test]
fn bad_usage_exits_2() {
    let sb = Sandbox::new();
    for args in [
        &["--bogus"][..],
        &["--log-level", "debug"],
        &["--timeout", "soon"],
    ] {
        let (up, ours) = both(&sb, args);
        assert_eq!(up.status.code(), Some(2));
        assert_eq!(ours.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn busy_lock_exits_11_and_the_lock_is_shared_with_upstream() {
    let sb = Sandbox::new();
    let lock = sb.path("lock");
    std::fs::create_dir_all(sb.base()).unwrap();
    let holder = std::fs::File::create(&lock).unwrap();
    holder.lock().unwrap();
    let (up, ours) = both(&sb, &[]);
    drop(holder);
    same(&up, &ours);
    assert_eq!(ours.status.code(), Some(11));
    assert_eq!(log_lines(&err(&up)), log_lines(&err(&ours)));

    // A running orc blocks upstream, and a running upstream blocks orc.
    let started = sb.path("started");
    let go_on = sb.path("go-on");
    sb.script(
        "configure.d",
        "10-hold",
        &format!("touch {}; {}", started.display(), hold_until(&go_on)),
    );
    let args = ["--lockfile", lock.to_str().unwrap()];
    for (first, second) in [
        (personalities(&sb), upstream_bin()),
        (upstream_bin(), personalities(&sb)),
    ] {
        let _ = std::fs::remove_file(&started);
        let _ = std::fs::remove_file(&go_on);
        let running = command(&sb, &first, "os-refresh-config", &args)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for(&started);
        let o = command(&sb, &second, "os-refresh-config", &args)
            .output()
            .unwrap();
        expect_code(&o, 11);
        release(&go_on);
        running.wait_with_output().unwrap();
    }
}

#[test]
fn environment_d_exports() {
    let sb = Sandbox::new();
    write_mode(
        &sb.base().join("environment.d/10-a"),
        "export GREETING=hello\n",
        0o644,
    );
    write_mode(
        &sb.base().join("environment.d/20-b"),
        "export TARGET=\"$GREETING-world\"\n",
        0o644,
    );
    sb.script("configure.d", "10-show", "echo \"$GREETING $TARGET\"");
    sb.script("post-configure.d", "10-show", "echo \"post $TARGET\"");
    let (up, ours) = both(&sb, &[]);
    same(&up, &ours);
    assert_eq!(out(&ours), "hello hello-world\npost hello-world\n");
}

#[test]
fn dib_run_parts_lists_and_runs_like_upstream() {
    let sb = Sandbox::new();
    let dir = sb.base().join("configure.d");
    for name in ["10-a", "9-b", "100-c", "20-fails", "30-never"] {
        let body = match name {
            "20-fails" => "echo failing; exit 7".to_string(),
            _ => format!("echo {name}"),
        };
        sb.script("configure.d", name, &body);
    }
    sb.script("configure.d", "40-x.sh", "echo dotted");
    write_mode(&dir.join("50-noexec"), "#!/bin/sh\n", 0o644);
    let d = dir.to_str().unwrap();
    for args in [&["--list", d][..], &[d]] {
        let up = command(&sb, &upstream_bin(), "dib-run-parts", args)
            .output()
            .unwrap();
        let ours = command(&sb, &personalities(&sb), "dib-run-parts", args)
            .output()
            .unwrap();
        same(&up, &ours);
    }
    let ours = command(&sb, &personalities(&sb), "dib-run-parts", &[d])
        .output()
        .unwrap();
    assert_eq!(ours.status.code(), Some(7));
    assert_eq!(out(&ours), "9-b\n10-a\nfailing\n");
}

#[test]
fn empty_and_shebang_less_scripts_run_under_bash_like_upstream() {
    let sb = Sandbox::new();
    let dir = sb.base().join("configure.d");
    write_mode(&dir.join("10-empty"), "", 0o755);
    write_mode(
        &dir.join("20-plain"),
        "echo \"plain ${BASH_VERSION:+under bash}\"\nset -o | grep -c posix >/dev/null\n",
        0o755,
    );
    let (up, ours) = both(&sb, &[]);
    same(&up, &ours);
    assert_eq!(ours.status.code(), Some(0));
    assert_eq!(out(&ours), "plain under bash\n");
    // A shebang-less script that fails stops the run as upstream's does.
    write_mode(&dir.join("30-fails"), "echo failing\nexit 3\n", 0o755);
    write_mode(&dir.join("40-never"), "echo never\n", 0o755);
    let (up, ours) = both(&sb, &[]);
    same(&up, &ours);
    assert_eq!(ours.status.code(), Some(1));
    assert_eq!(out(&ours), "plain under bash\nfailing\n");
    let d = dir.to_str().unwrap();
    let up = command(&sb, &upstream_bin(), "dib-run-parts", &[d])
        .output()
        .unwrap();
    let ours = command(&sb, &personalities(&sb), "dib-run-parts", &[d])
        .output()
        .unwrap();
    same(&up, &ours);
    assert_eq!(ours.status.code(), Some(3));
}

/// An element as existing ones are written: scripts that find their files through `$0`.
fn dollar0_element(sb: &Sandbox) {
    let base = sb.base();
    write_mode(
        &base.join("configure.d/common.sh"),
        "GREETING=\"from common\"\nhelper() { echo \"helper for $1\"; }\n",
        0o644,
    );
    sb.script(
        "pre-configure.d",
        "10-name",
        "echo \"$(basename $0) in $(basename \"$(dirname \"$0\")\")\"",
    );
    write_mode(
        &base.join("configure.d/20-uses-common"),
        "#!/bin/bash\nset -eu\nsource \"$(dirname \"$0\")/common.sh\"\necho \"$(basename $0): $GREETING\"\nhelper $(basename $0)\n",
        0o755,
    );
    write_mode(
        &base.join("configure.d/25-no-shebang"),
        "source \"$(dirname \"$0\")/common.sh\"\necho \"$(basename $0) plain: $GREETING\"\n",
        0o755,
    );
    write_mode(
        &base.join("shared/30-real"),
        "#!/bin/sh\necho \"$(basename $0) via $(basename \"$(dirname \"$0\")\")\"\n",
        0o755,
    );
    std::os::unix::fs::symlink("../shared/30-real", base.join("configure.d/30-link")).unwrap();
    sb.script(
        "post-configure.d",
        "10-post",
        "echo \"$(basename $0) post\"",
    );
    sb.script(
        "migration.d",
        "10-migrate",
        "echo \"$(basename $0) migration\"",
    );
}

/// Upstream's own lines, without orc's warnings about skipped entries (upstream is silent).
fn own_lines(stderr: &str) -> Vec<(String, String)> {
    log_lines(stderr)
        .into_iter()
        .filter(|(lvl, msg)| !(lvl == "WARNING" && msg.starts_with("skipping ")))
        .collect()
}

#[test]
fn scripts_get_their_own_path_as_dollar0_like_upstream() {
    let sb = Sandbox::new();
    dollar0_element(&sb);
    let (up, ours) = both(&sb, &[]);
    same(&up, &ours);
    expect_code(&ours, 0);
    assert_eq!(
        out(&ours),
        "10-name in pre-configure.d\n20-uses-common: from common\nhelper for 20-uses-common\n\
         25-no-shebang plain: from common\n30-link via configure.d\n10-post post\n10-migrate migration\n"
    );
    assert_eq!(own_lines(&err(&up)), own_lines(&err(&ours)));
    // A failing script named by its own `$0`: the same output, order and exit code.
    sb.script(
        "configure.d",
        "40-fails",
        "echo \"$(basename $0) fails\"; exit 3",
    );
    let (up, ours) = both(&sb, &[]);
    same(&up, &ours);
    expect_code(&ours, 1);
    assert!(out(&ours).ends_with("30-link via configure.d\n40-fails fails\n"));
    assert_eq!(own_lines(&err(&up)), own_lines(&err(&ours)));
    // dib-run-parts gives the same `$0`.
    let d = sb.base().join("configure.d");
    let d = d.to_str().unwrap();
    let up = command(&sb, &upstream_bin(), "dib-run-parts", &[d])
        .output()
        .unwrap();
    let ours = command(&sb, &personalities(&sb), "dib-run-parts", &[d])
        .output()
        .unwrap();
    same(&up, &ours);
    expect_code(&ours, 3);
}

/// dib-run-parts' per-script lines (`Running PATH`, `NAME completed`), dates dropped.
fn script_lines(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.starts_with("dib-run-parts "))
        .filter_map(|l| {
            ["Running ", " completed"].iter().find_map(|k| {
                let i = l.find(k)?;
                let start = if k.starts_with(' ') {
                    l[..i].rfind(' ').map_or(0, |s| s + 1)
                } else {
                    i
                };
                Some(l[start..].to_string())
            })
        })
        .collect()
}

#[test]
fn each_script_is_named_as_it_starts_and_ends_like_upstream() {
    let sb = Sandbox::new();
    sb.upstream_script("configure", "10-first", 0, 0);
    sb.upstream_script("configure", "20-second", 0, 0);
    sb.upstream_script("post-configure", "10-post", 5, 0);
    let (up, ours) = both(&sb, &[]);
    same(&up, &ours);
    let lines = script_lines(&err(&ours));
    assert_eq!(script_lines(&err(&up)), lines);
    let conf = sb.base().join("configure.d");
    assert_eq!(
        lines,
        [
            format!("Running {}/10-first", conf.display()),
            "10-first completed".into(),
            format!("Running {}/20-second", conf.display()),
            "20-second completed".into(),
            format!(
                "Running {}/10-post",
                sb.base().join("post-configure.d").display()
            ),
        ]
    );
}
