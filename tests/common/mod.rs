//! A sandbox root for driving the real binary: everything lives in a temp dir.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Sandbox {
    pub dir: tempfile::TempDir,
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
