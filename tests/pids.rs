//! A real pids limit (issue 15): `orc run` seeding many files inside a cgroup whose
//! `pids.max` is so small that thread spawns fail (as under `TasksMax=` at boot). Fewer
//! copying threads, or none and a clear error: never a panic or a hang; every file
//! copied (or none, and the path seeded next time), the lock released, and `orc
//! status` telling the truth.
//!
//! The limit is a real pids controller: cgroup v2 (a child cgroup, `+pids` enabled in
//! its parent's `subtree_control` when needed) or v1's `pids` hierarchy. A machine with
//! neither writable fails the test with a message saying so: it never passes by
//! skipping. The cgroup is removed afterwards.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

/// A cgroup of its own with a pids controller, removed on drop.
struct PidsCgroup {
    dir: PathBuf,
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // Every process in it has exited (the runs are waited for); the kernel may take a
        // moment to notice.
        let t = Instant::now();
        while fs::remove_dir(&self.dir).is_err() && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `(mount point, root of the mount, super options)` of each mounted cgroup hierarchy
/// of type `fstype`.
fn mounts(fstype: &str) -> Vec<(PathBuf, String, String)> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            (r.first() == Some(&fstype)).then(|| {
                (
                    PathBuf::from(f[4]),
                    f[3].to_string(),
                    r.get(2).unwrap_or(&"").to_string(),
                )
            })
        })
        .collect()
}

/// This process's cgroup path in the hierarchy whose `/proc/self/cgroup` line matches.
fn own_path(matches: impl Fn(&str) -> bool) -> Option<String> {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap();
    text.lines().find_map(|l| {
        let mut p = l.splitn(3, ':');
        let (_, ctrl, path) = (p.next()?, p.next()?, p.next()?);
        matches(ctrl).then(|| path.to_string())
    })
}

/// `mount` + `own` (as seen from the mount's root), then `mount` itself.
fn candidates(mount: &Path, root: &str, own: Option<String>) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(own) = own {
        let rel = own
            .strip_prefix(root)
            .unwrap_or(&own)
            .trim_start_matches('/');
        if !rel.is_empty() {
            v.push(mount.join(rel));
        }
    }
    v.push(mount.to_path_buf());
    v
}

fn try_child(parent: &Path, name: &str) -> Result<PidsCgroup, String> {
    let dir = parent.join(name);
    fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let g = PidsCgroup { dir };
    if !g.dir.join("pids.max").exists() {
        return Err(format!("{}: no pids.max", g.dir.display()));
    }
    Ok(g)
}

/// A new cgroup with a writable pids controller, or why there is none.
fn pids_cgroup() -> Result<PidsCgroup, String> {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let name = format!("orc-test-pids-{}-{n}", std::process::id());
    let mut why = Vec::new();
    for (mount, root, _) in mounts("cgroup2") {
        if !fs::read_to_string(mount.join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .any(|c| c == "pids")
        {
            why.push(format!("{}: no pids controller", mount.display()));
            continue;
        }
        for parent in candidates(&mount, &root, own_path(|c| c.is_empty())) {
            let sub = parent.join("cgroup.subtree_control");
            let on = fs::read_to_string(&sub).unwrap_or_default();
            if !on.split_whitespace().any(|c| c == "pids")
                && let Err(e) = fs::write(&sub, "+pids")
            {
                why.push(format!("{}: +pids: {e}", sub.display()));
                continue;
            }
            match try_child(&parent, &name) {
                Ok(g) => return Ok(g),
                Err(e) => why.push(e),
            }
        }
    }
    for (mount, root, opts) in mounts("cgroup") {
        if !opts.split(',').any(|o| o == "pids") {
            continue;
        }
        let own = own_path(|c| c.split(',').any(|c| c == "pids"));
        for parent in candidates(&mount, &root, own) {
            match try_child(&parent, &name) {
                Ok(g) => return Ok(g),
                Err(e) => why.push(e),
            }
        }
    }
    Err(why.join("; "))
}

/// The cgroup, or a failed test naming what is missing.
fn cgroup() -> PidsCgroup {
    pids_cgroup().unwrap_or_else(|why| {
        panic!(
            "no writable pids controller (cgroup v2 with +pids, or v1 pids) to test a real \
             pids limit: {why}. Run as root with /sys/fs/cgroup writable."
        )
    })
}

/// `orc ARGS` started inside the cgroup (the shell joins it, then execs orc), killed
/// after 60 s.
fn orc_in(sb: &Sandbox, g: &PidsCgroup, args: &[&str]) -> Output {
    let mut cmd = sb.orc();
    let argv: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .chain(args.iter().map(|s| s.to_string()))
        .collect();
    // A hang is a failure (exit 124), not a test that never ends.
    let mut sh = Command::new("timeout");
    sh.env_clear()
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .args(["-s", "KILL", "60", "sh", "-c"])
        .arg("echo $$ > \"$0/cgroup.procs\" && exec \"$@\"")
        .arg(&g.dir)
        .arg(bin())
        .args(argv);
    cmd = sh;
    cmd.output().unwrap()
}

/// Times the limit refused a new task in the cgroup (`pids.events`' `max`).
fn refused(g: &PidsCgroup) -> u64 {
    fs::read_to_string(g.dir.join("pids.events"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("max ")?.trim().parse().ok())
        .unwrap_or(0)
}

/// A finalised image with `/var/lib/many`: 40 dirs of 60 files.
fn image() -> Sandbox {
    let sb = Sandbox::new();
    let top = sb.path("var/lib/many");
    for d in 0..40 {
        let dir = top.join(format!("d{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..60 {
            fs::write(dir.join(format!("f{f:02}")), format!("{d}/{f}")).unwrap();
        }
    }
    let o = sb
        .orc()
        .args(["state", "register", "/var/lib/many"])
        .output();
    expect_code(&o.unwrap(), 0);
    expect_code(&sb.orc().args(["state", "finalise"]).output().unwrap(), 0);
    sb
}

fn lock_is_free(sb: &Sandbox) -> bool {
    let f = fs::File::open(sb.lock_file()).unwrap();
    f.try_lock().is_ok()
}

#[test]
fn a_pids_limit_means_fewer_copying_threads_and_every_file_copied() {
    let g = cgroup();
    let sb = image();
    // orc's own thread and two more: most of the copying threads cannot start.
    fs::write(g.dir.join("pids.max"), "3").unwrap();
    let o = orc_in(&sb, &g, &["run", "--skip-containers"]);
    expect_code(&o, 0);
    assert!(refused(&g) > 0, "the limit was never hit: {}", err(&o));
    assert!(err(&o).contains("threads"), "{}", err(&o));
    assert!(!err(&o).contains("panicked"), "{}", err(&o));
    assert_same(
        &snapshot(&sb.path("var/lib/use-ephemeral/var/lib/many")),
        &snapshot(&sb.path("mnt/state/var/lib/many")),
        "every file copied",
    );
    assert!(lock_is_free(&sb), "the lock is released");
    let s = sb.orc().arg("status").output().unwrap();
    expect_code(&s, 0);
}

#[test]
fn no_thread_at_all_is_a_clear_error_the_lock_released_and_status_failed() {
    let g = cgroup();
    let sb = image();
    // orc alone: no thread can start.
    fs::write(g.dir.join("pids.max"), "1").unwrap();
    let o = orc_in(&sb, &g, &["run", "--skip-containers"]);
    expect_code(&o, 1);
    assert!(refused(&g) > 0, "the limit was never hit: {}", err(&o));
    assert!(
        err(&o).contains("cannot start a copying thread"),
        "{}",
        err(&o)
    );
    assert!(!err(&o).contains("panicked"), "{}", err(&o));
    assert!(
        !sb.path("mnt/state/var/lib/many").exists(),
        "no partial state path"
    );
    assert!(lock_is_free(&sb), "the lock is released");
    let s = sb.orc().arg("status").output().unwrap();
    expect_code(&s, 1);
    assert!(out(&s).contains("failed"), "{}", out(&s));
    // Without the limit, the next run seeds it whole.
    let again = sb
        .orc()
        .args(["run", "--skip-containers"])
        .output()
        .unwrap();
    expect_code(&again, 0);
    assert_same(
        &snapshot(&sb.path("var/lib/use-ephemeral/var/lib/many")),
        &snapshot(&sb.path("mnt/state/var/lib/many")),
        "seeded by the next run",
    );
}
