//! A sandbox root for driving the real binary: everything lives in a temp dir.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

/// A name unique to this run, even across checkouts and pid namespaces sharing one
/// engine: `TAG-PID-NANOS`.
pub fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{tag}-{}-{nanos:08x}", std::process::id())
}

/// Removes from `engine` what a test put there under `scope`, found by label, never by
/// name: the containers labelled `orc.scope=SCOPE` (orc's) or `orc-test.scope=SCOPE`
/// (the test's own), then orc's networks of that scope.
pub fn remove_scope(engine: &str, scope: &str) {
    let list = |args: &[&str]| -> Vec<String> {
        let o = Command::new(engine).args(args).output().unwrap();
        out(&o).split_whitespace().map(String::from).collect()
    };
    let mut ids = Vec::new();
    for label in ["orc.scope", "orc-test.scope"] {
        ids.extend(list(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label={label}={scope}"),
        ]));
    }
    if !ids.is_empty() {
        let _ = Command::new(engine).args(["rm", "-f"]).args(&ids).output();
    }
    let nets = list(&[
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("label=orc.scope={scope}"),
    ]);
    if !nets.is_empty() {
        let _ = Command::new(engine)
            .args(["network", "rm"])
            .args(&nets)
            .output();
    }
}

pub const BASE: &str = "usr/libexec/os-refresh-config";

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::Builder::new()
                .prefix("orc-test")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn base(&self) -> PathBuf {
        self.root().join(BASE)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// Writes an executable script `<base>/<dir>/<name>`.
    pub fn script(&self, dir: &str, name: &str, body: &str) -> PathBuf {
        let p = self.base().join(dir).join(name);
        write_mode(&p, &format!("#!/bin/sh\n{body}\n"), 0o755);
        p
    }

    /// The sample script of upstream's functional tests.
    pub fn upstream_script(&self, phase: &str, name: &str, code: i32, sleep: u32) -> PathBuf {
        self.script(
            &format!("{phase}.d"),
            name,
            &format!("echo {name} starting\nsleep {sleep}\necho {name} done\nexit {code}"),
        )
    }

    pub fn config(&self, json: &str) {
        write_mode(&self.path("etc/orc/orc.json"), json, 0o644);
    }

    /// `orc --root <sandbox> ARGS` with a clean environment.
    pub fn orc(&self) -> Command {
        let mut c = Command::new(bin());
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("LC_ALL", "C")
            .arg("--root")
            .arg(self.root());
        c
    }

    pub fn last_report(&self) -> serde_json::Value {
        let p = self.path("var/lib/orc/last-run.json");
        serde_json::from_slice(&fs::read(&p).unwrap()).unwrap()
    }

    pub fn lock_file(&self) -> PathBuf {
        self.path("run/os-refresh-config.lock")
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_orc"))
}

pub fn write_mode(p: &Path, text: &str, mode: u32) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails with both streams shown when the exit code is not `code`.
#[track_caller]
pub fn expect_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        out(o),
        err(o)
    );
}

/// Waits (up to 20 s) until `p` exists.
pub fn wait_for(p: &Path) {
    let t = std::time::Instant::now();
    while !p.exists() {
        assert!(t.elapsed().as_secs() < 20, "{} never appeared", p.display());
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A shell line that holds a script until the test creates `release` (at most 60 s):
/// the window is the test's to close, not a fixed sleep that a slow machine outlasts.
pub fn hold_until(release: &Path) -> String {
    format!(
        "i=0; while [ ! -e '{}' ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done",
        release.display()
    )
}

/// Lets a script held by [`hold_until`] go on.
pub fn release(p: &Path) {
    fs::write(p, "").unwrap();
}

/// Waits (up to 20 s) until the file `p` contains `needle`.
pub fn wait_for_text(p: &Path, needle: &str) {
    let t = std::time::Instant::now();
    while !fs::read_to_string(p).is_ok_and(|s| s.contains(needle)) {
        assert!(
            t.elapsed().as_secs() < 20,
            "{} never said {needle:?}",
            p.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Every datagram waiting on a notify socket bound by the test.
pub fn datagrams(sock: &std::os::unix::net::UnixDatagram) -> Vec<String> {
    sock.set_nonblocking(true).unwrap();
    let mut v = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        v.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    v
}

/// Everything about a tree that a change could touch: per entry (relative path) its
/// kind, mode, owner, size, mtime, content hash or link target. Compare two to prove
/// that nothing changed.
pub fn snapshot(top: &Path) -> std::collections::BTreeMap<PathBuf, String> {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    if fs::symlink_metadata(top).is_err() {
        return out;
    }
    for e in walkdir::WalkDir::new(top).follow_links(false) {
        let e = e.unwrap();
        let m = e.path().symlink_metadata().unwrap();
        let what = if m.file_type().is_symlink() {
            format!("link {}", fs::read_link(e.path()).unwrap().display())
        } else if m.is_file() {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            fs::read(e.path()).unwrap_or_default().hash(&mut h);
            format!("file {:x}", h.finish())
        } else {
            format!("other {:o}", m.mode() & 0o170_000)
        };
        let rel = e.path().strip_prefix(top).unwrap().to_path_buf();
        let times = if m.is_dir() {
            0
        } else {
            m.mtime_nsec() + m.mtime() * 1_000_000_000
        };
        out.insert(
            rel,
            format!(
                "{what} mode={:o} uid={} gid={} size={} mtime={times}",
                m.mode(),
                m.uid(),
                m.gid(),
                if m.is_dir() { 0 } else { m.size() }
            ),
        );
    }
    out
}

/// Asserts two snapshots are equal, listing what differs.
#[track_caller]
pub fn assert_same(
    before: &std::collections::BTreeMap<PathBuf, String>,
    after: &std::collections::BTreeMap<PathBuf, String>,
    what: &str,
) {
    let mut diff = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            None => diff.push(format!("- {} {v}", k.display())),
            Some(w) if w != v => diff.push(format!("~ {} {v} -> {w}", k.display())),
            _ => {}
        }
    }
    for (k, v) in after {
        if !before.contains_key(k) {
            diff.push(format!("+ {} {v}", k.display()));
        }
    }
    assert!(diff.is_empty(), "{what} changed:\n{}", diff.join("\n"));
}
