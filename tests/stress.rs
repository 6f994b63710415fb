//! A busy box (issue 15): `openat2` fails with `EAGAIN` when a path crosses `..` while
//! any rename or mount happens anywhere on the system. orc retries; 200 runs and 200
//! status reads while other threads rename files and mount/unmount a tmpfs in a loop
//! (in a temp dir of their own) must all succeed.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use common::*;

/// A root whose every path crosses `..`: a relative symlinked base dir, /etc/orc and a
/// script, so resolution in the root walks back up where renames can disturb it.
fn busy_root() -> Sandbox {
    let sb = Sandbox::new();
    let base = sb.path("opt/base");
    write_mode(&base.join("configure.d/10-a"), "#!/bin/sh\necho a\n", 0o755);
    write_mode(&sb.path("opt/shared/20-b"), "#!/bin/sh\necho b\n", 0o755);
    symlink("../../shared/20-b", base.join("configure.d/20-b")).unwrap();
    write_mode(&base.join("environment.d/10-env"), "export X=1\n", 0o644);
    fs::create_dir_all(sb.path("usr/libexec")).unwrap();
    symlink("../../opt/base", sb.base()).unwrap();
    write_mode(&sb.path("opt/etc-orc/orc.json"), "{}\n", 0o644);
    symlink("../opt/etc-orc", sb.path("etc/orc")).unwrap_or_else(|_| {
        fs::create_dir_all(sb.path("etc")).unwrap();
        symlink("../opt/etc-orc", sb.path("etc/orc")).unwrap();
    });
    sb
}

/// Renames and mounts in a loop until `stop`; counts what it did.
fn churn(stop: Arc<AtomicBool>, done: Arc<AtomicU64>) -> Vec<thread::JoinHandle<()>> {
    let dir = tempfile::Builder::new()
        .prefix("orc-churn")
        .tempdir()
        .unwrap();
    let dir = Arc::new(dir);
    let mut v = Vec::new();
    for t in 0..2 {
        let (stop, done, dir) = (stop.clone(), done.clone(), dir.clone());
        v.push(thread::spawn(move || {
            let a = dir.path().join(format!("a{t}"));
            let b = dir.path().join(format!("b{t}"));
            fs::create_dir(&a).unwrap();
            while !stop.load(Ordering::Relaxed) {
                fs::rename(&a, &b).unwrap();
                fs::rename(&b, &a).unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let (stop, done) = (stop.clone(), done.clone());
    v.push(thread::spawn(move || {
        let m = dir.path().join("m");
        fs::create_dir(&m).unwrap();
        while !stop.load(Ordering::Relaxed) {
            nix::mount::mount(
                Some("tmpfs"),
                &m,
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                Some("size=16k"),
            )
            .unwrap();
            nix::mount::umount(&m).unwrap();
            done.fetch_add(1, Ordering::Relaxed);
        }
    }));
    v
}

#[test]
fn two_hundred_runs_on_a_busy_box_never_fail() {
    assert!(nix::unistd::geteuid().is_root(), "runs as root");
    let sb = busy_root();
    let o = sb.orc().args(["run", "--skip-state"]).output().unwrap();
    expect_code(&o, 0);
    assert_eq!(out(&o), "a\nb\n");
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let threads = churn(stop.clone(), done.clone());
    let mut failures = Vec::new();
    for i in 0..200 {
        let o = sb.orc().args(["run", "--skip-state"]).output().unwrap();
        if o.status.code() != Some(0) || out(&o) != "a\nb\n" {
            failures.push(format!("run {i}: {:?} {}", o.status.code(), err(&o)));
        }
        let o = sb.orc().arg("status").output().unwrap();
        if o.status.code() != Some(0) {
            failures.push(format!("status {i}: {:?} {}", o.status.code(), err(&o)));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let churned = done.load(Ordering::Relaxed);
    eprintln!(
        "churn: {churned} renames and mounts; failures: {}",
        failures.len()
    );
    assert!(churned > 1000, "the box was not busy: {churned}");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
