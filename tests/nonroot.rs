//! A non-root user: writing commands are refused up front (one line, exit 77, nothing
//! written); `list` and `status` work. The binary really runs as `nobody` (setpriv).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{Sandbox, assert_same, err, expect_code, snapshot};

/// `setpriv` as nobody, running orc against the sandbox with `args`.
fn as_nobody(sb: &Sandbox, args: &[&str]) -> std::process::Output {
    let mut c = Command::new("setpriv");
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LC_ALL", "C")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .arg(common::bin())
        .arg("--root")
        .arg(sb.root())
        .args(args);
    c.output().unwrap()
}

fn readable_sandbox() -> Sandbox {
    let sb = Sandbox::new();
    std::fs::set_permissions(sb.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    sb.script("configure.d", "10-a", "echo ran > /tmp/never");
    sb
}

#[test]
fn writing_commands_are_refused_with_one_line_and_exit_77() {
    let sb = readable_sandbox();
    let before = snapshot(sb.root());
    for args in [
        &["run"][..],
        &["os-refresh-config"],
        &["state", "register", "/var/lib/x"],
        &["state", "finalise"],
        &["state", "seed"],
        &["register-state-path", "/var/lib/x"],
        &["containers", "reconcile"],
    ] {
        let o = as_nobody(&sb, args);
        expect_code(&o, 77);
        let e = err(&o);
        assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
        assert!(e.contains("needs root"), "{args:?}: {e}");
        assert!(!e.contains("Permission denied"), "{args:?}: {e}");
    }
    assert_same(&before, &snapshot(sb.root()), "a refused non-root run");
}

#[test]
fn list_and_status_work_as_any_user() {
    let sb = readable_sandbox();
    let o = as_nobody(&sb, &["list"]);
    expect_code(&o, 0);
    assert!(common::out(&o).contains("10-a"));
    let o = as_nobody(&sb, &["status"]);
    expect_code(&o, 3);
    let o = as_nobody(&sb, &["os-refresh-config", "--print-phases"]);
    expect_code(&o, 0);
}
