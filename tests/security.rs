//! The promises an attacker tests: nothing outside `--root` is touched (a
//! symlink inside the root never leads out), every writer takes the lock (a
//! state path is absent or complete, never partial), and what runs as root is
//! exactly the file that was checked.

mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn root_only() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test must run as root (scripts/test.sh does)"
    );
}

/// A directory outside the root with something precious in it, including files shaped
/// like run reports (so pruning there would show).
fn outside() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("orc-outside")
        .tempdir()
        .unwrap();
    fs::write(d.path().join("precious"), "keep me").unwrap();
    for i in 0..25 {
        fs::write(d.path().join(format!("0000000{i:02}-x.json")), "{}").unwrap();
    }
    fs::create_dir(d.path().join("var")).unwrap();
    d
}

/// Points `place` (relative to the root) at `target`, absolute or relative to the root.
fn link_out(sb: &Sandbox, place: &str, target: &Path, relative: bool) {
    let at = sb.path(place);
    fs::create_dir_all(at.parent().unwrap()).unwrap();
    let _ = fs::remove_dir_all(&at);
    if relative {
        // Enough `..` to climb out of any real path, then the target.
        let ups = "../".repeat(at.components().count() + 2);
        symlink(format!("{ups}{}", target.display()), &at).unwrap();
    } else {
        symlink(target, &at).unwrap();
    }
}

/// A box with a registered, finalised state path, a script, and a container spec.
fn box_with_everything(sb: &Sandbox, bin: &Path) {
    sb.script("configure.d", "10-hello", "echo hello");
    fs::create_dir_all(sb.path("var/lib/use-ephemeral/var/lib/app")).unwrap();
    fs::write(
        sb.path("var/lib/use-ephemeral/var/lib/app/data"),
        "pristine",
    )
    .unwrap();
    write_mode(
        &sb.path("var/lib/use-ephemeral/stateful-paths"),
        "/var/lib/app;true\n",
        0o644,
    );
    sb.config(r#"{"containers": {"engine": "docker", "infra_version": "1"}}"#);
    write_mode(
        &sb.path("etc/orc/containers.d/app.json"),
        r#"{"name": "orc-sec-app", "image": "busybox", "volumes": [{"source": "data", "target": "/data"}, {"source": "/srv/vol", "target": "/v"}]}"#,
        0o644,
    );
    fake_engine(bin);
}

/// A `docker` that answers every call with success and logs its arguments.
fn fake_engine(bin: &Path) {
    write_mode(
        &bin.join("docker"),
        "#!/bin/sh\necho \"$@\" >> \"$(dirname \"$0\")/calls\"\ncase \"$1\" in create|run) echo fake-id ;; esac\nexit 0\n",
        0o755,
    );
}

fn orc_with(sb: &Sandbox, bin: &Path) -> Command {
    let mut c = sb.orc();
    c.env(
        "PATH",
        format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
    );
    c
}

#[test]
fn no_symlink_inside_the_root_leads_out_of_it() {
    root_only();
    let places = [
        "var/lib/orc",
        "var/lib/orc/runs",
        "run",
        "mnt",
        "mnt/state",
        "var/lib/use-ephemeral",
        "var/lib/orc/containers",
        "srv",
    ];
    for place in places {
        for relative in [false, true] {
            let out = outside();
            let sb = Sandbox::new();
            let bin = sb.path("fake-bin");
            box_with_everything(&sb, &bin);
            let before = snapshot(out.path());
            if place == "var/lib/use-ephemeral" {
                // Finalise moves image content to the pristine root through the link.
                fs::create_dir_all(sb.path("var/lib/app")).unwrap();
                fs::write(sb.path("var/lib/app/data"), "image").unwrap();
                fs::remove_dir_all(sb.path("var/lib/use-ephemeral/var")).unwrap();
                link_out(&sb, place, out.path(), relative);
                let o = orc_with(&sb, &bin)
                    .args(["state", "finalise"])
                    .output()
                    .unwrap();
                expect_code(&o, 0);
            } else {
                link_out(&sb, place, out.path(), relative);
                for args in [
                    &["run"][..],
                    &["state", "seed"],
                    &["containers", "reconcile"],
                    &["state", "register", "/var/lib/other"],
                ] {
                    let o = orc_with(&sb, &bin).args(args).output().unwrap();
                    expect_code(&o, 0);
                }
            }
            assert_same(
                &before,
                &snapshot(out.path()),
                &format!("outside dir ({place} -> outside, relative={relative})"),
            );
            let calls = fs::read_to_string(bin.join("calls")).unwrap_or_default();
            for line in calls.lines().filter(|l| l.contains("--volume")) {
                for v in line.split(" --volume ").skip(1) {
                    let src = v.split(':').next().unwrap();
                    assert!(
                        Path::new(src).starts_with(sb.root()),
                        "{place}: volume source {src} is outside the root"
                    );
                }
            }
        }
    }
}

#[test]
fn config_paths_with_dot_dot_are_refused_and_nothing_is_touched() {
    let out = outside();
    for (key, value) in [
        ("data_dir", "/../../../../tmp/x"),
        ("lock_file", "/run/../../x.lock"),
        ("base_dir", "/usr/./libexec"),
        ("state", "{\"root\": \"/mnt/../../..\"}"),
        ("containers", "{\"specs_dir\": \"/etc//orc\"}"),
    ] {
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo must-not-run");
        let value = if value.starts_with('{') {
            value.to_string()
        } else {
            format!("\"{value}\"")
        };
        sb.config(&format!("{{\n  \"{key}\": {value}\n}}\n"));
        let before = (snapshot(sb.root()), snapshot(out.path()));
        for args in [
            &["run"][..],
            &["state", "seed"],
            &["containers", "reconcile"],
        ] {
            let o = sb.orc().args(args).output().unwrap();
            expect_code(&o, 2);
            let e = err(&o);
            assert_eq!(e.lines().count(), 1, "{e}");
            assert!(e.contains("etc/orc/orc.json: line 2, column"), "{e}");
            assert!(e.contains("normal absolute paths"), "{e}");
        }
        assert_same(&before.0, &snapshot(sb.root()), "the root");
        assert_same(&before.1, &snapshot(out.path()), "the outside dir");
    }
}

fn spawn_quiet(mut c: Command) -> Child {
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn count_files(p: &Path) -> usize {
    walkdir::WalkDir::new(p)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .count()
}

#[test]
fn a_run_and_a_manual_seed_race_but_a_state_path_is_absent_or_complete() {
    const FILES: usize = 3000;
    let sb = Sandbox::new();
    let pristine = sb.path("var/lib/use-ephemeral/var/lib/big");
    for d in 0..30 {
        fs::create_dir_all(pristine.join(format!("d{d}"))).unwrap();
        for f in 0..FILES / 30 {
            fs::write(pristine.join(format!("d{d}/f{f}")), format!("{d}/{f}")).unwrap();
        }
    }
    write_mode(
        &sb.path("var/lib/use-ephemeral/stateful-paths"),
        "/var/lib/big;true\n",
        0o644,
    );
    let state = sb.path("mnt/state/var/lib/big");
    for round in 0..20 {
        let _ = fs::remove_dir_all(&state);
        let mut run = sb.orc();
        run.args(["run", "--wait"]);
        let mut seed = sb.orc();
        seed.args(["state", "seed", "--wait"]);
        let (a, b) = if round % 2 == 0 {
            (run, seed)
        } else {
            (seed, run)
        };
        let mut children = [spawn_quiet(a), spawn_quiet(b)];
        let t = Instant::now();
        loop {
            if state.exists() {
                let n = count_files(&state);
                assert_eq!(n, FILES, "round {round}: a partial state path ({n} files)");
            }
            if children.iter_mut().all(|c| c.try_wait().unwrap().is_some()) {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(120), "round {round} hung");
        }
        for c in &mut children {
            assert_eq!(c.wait().unwrap().code(), Some(0), "round {round}");
        }
        assert_eq!(count_files(&state), FILES, "round {round}");
        let leftovers: Vec<_> = fs::read_dir(state.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "big")
            .collect();
        assert!(leftovers.is_empty(), "round {round}: {leftovers:?}");
    }
}

#[test]
fn every_writer_is_refused_while_a_run_holds_the_lock() {
    let sb = Sandbox::new();
    let started = sb.path("started");
    let go_on = sb.path("go-on");
    sb.script(
        "configure.d",
        "10-hold",
        &format!("touch {}; {}", started.display(), hold_until(&go_on)),
    );
    write_mode(
        &sb.path("var/lib/use-ephemeral/stateful-paths"),
        "/var/lib/a;true\n",
        0o644,
    );
    let run = spawn_quiet({
        let mut c = sb.orc();
        c.arg("run");
        c
    });
    wait_for(&started);
    let registry = fs::read(sb.path("var/lib/use-ephemeral/stateful-paths")).unwrap();
    for args in [
        &["state", "seed"][..],
        &["state", "register", "/var/lib/b"],
        &["state", "finalise"],
        &["containers", "reconcile"],
        &["run"],
    ] {
        let o = sb.orc().args(args).output().unwrap();
        expect_code(&o, 11);
        assert!(
            err(&o).contains(&format!("pid={}", run.id())),
            "{}",
            err(&o)
        );
        assert!(err(&o).contains("cmd=run"), "{}", err(&o));
    }
    assert_eq!(
        fs::read(sb.path("var/lib/use-ephemeral/stateful-paths")).unwrap(),
        registry
    );
    assert!(!sb.path("mnt/state/var/lib/a").exists());
    release(&go_on);
    let o = run.wait_with_output().unwrap();
    expect_code(&o, 0);
}

#[test]
fn os_refresh_config_locks_the_configured_lock_under_the_root_not_the_host() {
    let sb = Sandbox::new();
    let dir = sb.path("orc-bin");
    fs::create_dir_all(&dir).unwrap();
    symlink(bin(), dir.join("os-refresh-config")).unwrap();
    sb.script("configure.d", "10-a", "echo ran");
    let host_lock = Path::new("/var/run/os-refresh-config.lock");
    let host_before = fs::symlink_metadata(host_lock).ok().map(|m| {
        use std::os::unix::fs::MetadataExt;
        (m.ino(), m.mtime(), m.mtime_nsec(), m.size())
    });
    fs::create_dir_all(sb.path("run")).unwrap();
    let holder = fs::File::create(sb.lock_file()).unwrap();
    holder.lock().unwrap();
    let run = |env_root: bool| {
        let mut c = Command::new(dir.join("os-refresh-config"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("OS_REFRESH_CONFIG_BASE_DIR", sb.base());
        if env_root {
            c.env("ORC_ROOT", sb.root());
        }
        c.output().unwrap()
    };
    let o = run(true);
    expect_code(&o, 11);
    drop(holder);
    let o = run(true);
    expect_code(&o, 0);
    assert_eq!(out(&o), "ran\n");
    let host_after = fs::symlink_metadata(host_lock).ok().map(|m| {
        use std::os::unix::fs::MetadataExt;
        (m.ino(), m.mtime(), m.mtime_nsec(), m.size())
    });
    assert_eq!(host_before, host_after, "the host's lock was touched");
}

/// Runs `f` as uid 1000 in a child process (the other user of the attack).
fn as_other_user(script: &str) -> Child {
    Command::new("setpriv")
        .args([
            "--reuid=1000",
            "--regid=1000",
            "--clear-groups",
            "sh",
            "-c",
            script,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_script_in_a_directory_another_user_can_write_never_runs() {
    root_only();
    let sb = Sandbox::new();
    let marker = sb.path("earlier-ran");
    let pwned = sb.path("pwned");
    sb.script(
        "configure.d",
        "10-sleep",
        &format!("touch {}; sleep 2", marker.display()),
    );
    let evil = sb.path("opt/evil");
    fs::create_dir_all(&evil).unwrap();
    write_mode(&evil.join("x"), "#!/bin/sh\necho innocent\n", 0o755);
    std::os::unix::fs::chown(&evil, Some(1000), Some(1000)).unwrap();
    symlink("/opt/evil/x", sb.base().join("configure.d/20-linked")).unwrap();
    // The other user swaps the target for a payload, again and again, during the run.
    fs::set_permissions(sb.root(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(sb.path("."), fs::Permissions::from_mode(0o755)).unwrap();
    let attacker = as_other_user(&format!(
        "end=$(($(date +%s) + 4)); while [ $(date +%s) -lt $end ]; do \
         printf '#!/bin/sh\\ntouch {}\\n' > {e}/y && chmod 755 {e}/y && mv -f {e}/y {e}/x; done",
        pwned.display(),
        e = evil.display()
    ));
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 2);
    let e = err(&o);
    assert!(e.contains("refusing to run as root"), "{e}");
    assert!(e.contains("opt/evil: owned by uid 1000"), "{e}");
    let _ = attacker.wait_with_output();
    assert!(
        !marker.exists(),
        "a script ran although the plan was refused"
    );
    assert!(!pwned.exists(), "the other user's payload ran as root");
}

#[test]
fn a_script_swapped_after_planning_is_checked_again_when_it_runs() {
    root_only();
    let sb = Sandbox::new();
    let started = sb.path("started");
    let go = sb.path("go");
    sb.script(
        "configure.d",
        "10-wait",
        &format!(
            "touch {}; while [ ! -e {} ]; do sleep 0.05; done",
            started.display(),
            go.display()
        ),
    );
    sb.script("configure.d", "20-checked", "echo checked-version");
    let run = sb
        .orc()
        .arg("run")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&started);
    // Planned as a safe file; by its turn, a file another user owns is in its place.
    let swapped = sb.base().join("configure.d/.new");
    write_mode(&swapped, "#!/bin/sh\necho swapped-version\n", 0o755);
    std::os::unix::fs::chown(&swapped, Some(1000), Some(1000)).unwrap();
    fs::rename(&swapped, sb.base().join("configure.d/20-checked")).unwrap();
    fs::write(&go, "").unwrap();
    let o = run.wait_with_output().unwrap();
    expect_code(&o, 2);
    assert_eq!(out(&o), "", "neither version ran");
    assert!(
        err(&o).contains("20-checked: owned by uid 1000"),
        "{}",
        err(&o)
    );
    let r = sb.last_report();
    assert_eq!(r["result"], "failed");
    let step = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "20-checked")
        .unwrap();
    assert_eq!(step["result"], "failed");
    assert!(
        step["note"]
            .as_str()
            .unwrap()
            .contains("refusing to run as root")
    );
}

#[test]
fn scripts_and_environment_files_are_checked_along_their_whole_path() {
    root_only();
    let sb = Sandbox::new();
    sb.script("configure.d", "10-a", "echo must-not-run");
    write_mode(
        &sb.base().join("environment.d/10-env"),
        "export A=1\n",
        0o644,
    );
    let cases: Vec<(PathBuf, u32, &str)> = vec![
        (
            sb.base().join("environment.d"),
            0o777,
            "environment.d: writable by group or others",
        ),
        (
            sb.base().join("environment.d/10-env"),
            0o666,
            "10-env: writable by group or others",
        ),
        (
            sb.path("usr/libexec"),
            0o775,
            "usr/libexec: writable by group or others",
        ),
        (
            sb.base(),
            0o757,
            "os-refresh-config: writable by group or others",
        ),
    ];
    for (p, mode, want) in cases {
        let old = fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        let before = snapshot(sb.root());
        let o = sb.orc().arg("run").output().unwrap();
        expect_code(&o, 2);
        assert!(err(&o).contains(want), "{want}: {}", err(&o));
        assert_eq!(out(&o), "");
        assert_same(&before, &snapshot(sb.root()), "the root");
        fs::set_permissions(&p, fs::Permissions::from_mode(old)).unwrap();
    }
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 0);
}

#[test]
fn dib_run_parts_as_root_checks_what_it_runs() {
    root_only();
    let sb = Sandbox::new();
    let dir = sb.base().join("install.d");
    write_mode(&dir.join("10-ok"), "#!/bin/sh\necho ok\n", 0o755);
    write_mode(&dir.join("20-other"), "#!/bin/sh\necho other\n", 0o755);
    std::os::unix::fs::chown(dir.join("20-other"), Some(1000), None).unwrap();
    let o = sb.orc().args(["dib-run-parts"]).arg(&dir).output().unwrap();
    expect_code(&o, 2);
    assert!(
        err(&o).contains("20-other: owned by uid 1000"),
        "{}",
        err(&o)
    );
    assert_eq!(out(&o), "", "nothing runs when one script is unsafe");
}

#[test]
fn a_directory_opened_to_others_after_planning_is_refused_when_the_script_runs() {
    root_only();
    let sb = Sandbox::new();
    let dir = sb.base().join("configure.d");
    sb.script(
        "configure.d",
        "10-open-up",
        &format!("chmod 777 {}", dir.display()),
    );
    sb.script("configure.d", "20-after", "echo must-not-run");
    let o = sb.orc().arg("run").output().unwrap();
    expect_code(&o, 2);
    assert_eq!(out(&o), "");
    assert!(
        err(&o).contains("configure.d: writable by group or others (mode 777)"),
        "{}",
        err(&o)
    );
}

#[test]
fn the_directories_above_the_root_are_checked_before_a_script_runs_by_its_path() {
    root_only();
    let sb = Sandbox::new();
    let open = sb.path("open");
    let root = open.join("root");
    let base = root.join(BASE);
    write_mode(
        &base.join("configure.d/10-a"),
        "#!/bin/sh\necho ran\n",
        0o755,
    );
    let run = || {
        Command::new(bin())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .arg("--root")
            .arg(&root)
            .arg("run")
            .output()
            .unwrap()
    };
    let o = run();
    expect_code(&o, 0);
    assert_eq!(out(&o), "ran\n");
    fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
    let o = run();
    expect_code(&o, 2);
    assert_eq!(out(&o), "");
    assert!(
        err(&o).contains("open: writable by group or others (mode 777)"),
        "{}",
        err(&o)
    );
}
