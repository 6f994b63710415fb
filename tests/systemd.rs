//! systemd integration: the unit verifies cleanly, and orc speaks the notify
//! protocol to a real datagram socket (never through a script).

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;

use common::*;

#[test]
fn unit_passes_systemd_analyze_verify_without_any_warning() {
    let sb = Sandbox::new();
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/orc.service"))
        .unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/orc run"));
    let unit = unit.replace("/usr/local/bin/orc", bin().to_str().unwrap());
    let path = sb.path("orc.service");
    std::fs::write(&path, unit).unwrap();
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze must be installed (scripts/test.sh installs systemd)");
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        format!("{}{}", out(&o), err(&o)),
        "",
        "systemd-analyze verify printed something"
    );
}

#[test]
fn notify_status_extend_and_ready_reach_systemd_but_not_scripts() {
    let sb = Sandbox::new();
    let sock_path = sb.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let env_dump = sb.path("script-env");
    sb.script(
        "configure.d",
        "10-a",
        &format!("env > {}", env_dump.display()),
    );
    sb.script("post-configure.d", "10-b", "true");
    let o = sb
        .orc()
        .env("NOTIFY_SOCKET", &sock_path)
        .args(["run", "--script-timeout", "60"])
        .output()
        .unwrap();
    expect_code(&o, 0);
    let msgs = datagrams(&sock);
    let pos = |needle: &str| {
        msgs.iter()
            .position(|m| m.contains(needle))
            .unwrap_or_else(|| panic!("no {needle} in {msgs:?}"))
    };
    let a = pos("STATUS=configure/10-a");
    let b = pos("STATUS=post-configure/10-b");
    let ready = pos("READY=1");
    assert!(a < b && b < ready, "{msgs:?}");
    let extend = msgs
        .iter()
        .find(|m| m.starts_with("EXTEND_TIMEOUT_USEC="))
        .expect("extend sent");
    let usec: u64 = extend
        .trim_start_matches("EXTEND_TIMEOUT_USEC=")
        .trim()
        .parse()
        .unwrap();
    assert!((60_000_000..=80_000_000).contains(&usec), "{usec}");
    assert_eq!(
        msgs.last().unwrap().lines().next(),
        Some("READY=1"),
        "{msgs:?}"
    );
    let env = std::fs::read_to_string(&env_dump).unwrap();
    assert!(!env.contains("NOTIFY_SOCKET"), "{env}");
}

#[test]
fn a_failed_run_never_sends_ready() {
    let sb = Sandbox::new();
    let sock_path = sb.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sb.script("configure.d", "10-bad", "exit 4");
    sb.script("post-configure.d", "10-after", "true");
    let o = sb
        .orc()
        .env("NOTIFY_SOCKET", &sock_path)
        .arg("run")
        .output()
        .unwrap();
    expect_code(&o, 1);
    let msgs = datagrams(&sock);
    assert!(msgs.iter().all(|m| !m.contains("READY=1")), "{msgs:?}");
    let last = msgs.last().expect("a message");
    assert!(
        last.starts_with("STATUS=run ") && last.contains("failed"),
        "{msgs:?}"
    );

    // Nor when the config is invalid and nothing runs.
    sb.config("{\"nope\": 1}");
    let o = sb
        .orc()
        .env("NOTIFY_SOCKET", &sock_path)
        .arg("run")
        .output()
        .unwrap();
    expect_code(&o, 2);
    let msgs = datagrams(&sock);
    assert!(msgs.iter().all(|m| !m.contains("READY=1")), "{msgs:?}");
    assert!(
        msgs.last().unwrap().starts_with("STATUS=failed: "),
        "{msgs:?}"
    );

    // The same box, fixed: READY=1 at the end.
    std::fs::remove_file(sb.path("etc/orc/orc.json")).unwrap();
    sb.script("configure.d", "10-bad", "true");
    let o = sb
        .orc()
        .env("NOTIFY_SOCKET", &sock_path)
        .arg("run")
        .output()
        .unwrap();
    expect_code(&o, 0);
    let msgs = datagrams(&sock);
    assert!(
        msgs.last().unwrap().starts_with("READY=1\nSTATUS=run "),
        "{msgs:?}"
    );
}

#[test]
fn the_unit_is_a_failed_unit_on_failure_and_orders_after_cloud_init() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/orc.service"))
        .unwrap();
    let keys: Vec<&str> = unit.lines().filter(|l| !l.starts_with('#')).collect();
    for want in [
        "Type=notify",
        "RemainAfterExit=yes",
        "Before=multi-user.target cloud-final.service",
        "Wants=network-online.target",
    ] {
        assert!(keys.contains(&want), "{want} missing:\n{unit}");
    }
    let after = keys.iter().find(|l| l.starts_with("After=")).unwrap();
    for u in ["network-online.target", "cloud-config.service"] {
        assert!(after.contains(u), "{after}");
    }
}
