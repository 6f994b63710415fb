//! Whatever process state orc inherits, its scripts start clean (issue 15): every
//! signal disposition default, an empty signal mask, the caller's environment whole
//! (`SHELLOPTS` as the caller had it, names that are not shell identifiers, exported
//! bash functions) plus what environment.d exports; and orc itself still reaps its
//! children (SIGCHLD ignored by the caller) and still hears SIGTERM (blocked and
//! ignored by the caller).

mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The caller's hostile process state, set in the child just before orc is exec'd.
fn hostile_state(c: &mut Command, close_stdio: bool) {
    #[allow(unsafe_code)]
    // SAFETY: only async-signal-safe calls (sigaction, sigprocmask, close) between fork
    // and exec, on the child's own state.
    unsafe {
        c.pre_exec(move || {
            let mut ign: libc::sigaction = std::mem::zeroed();
            ign.sa_sigaction = libc::SIG_IGN;
            for sig in 1..=64 {
                libc::sigaction(sig, &ign, std::ptr::null_mut());
            }
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
            if close_stdio {
                for fd in 0..3 {
                    libc::close(fd);
                }
            }
            Ok(())
        });
    }
}

/// `SigBlk`, `SigIgn` of a process, from its `/proc/PID/status` text.
fn sig_lines(status: &str) -> Vec<String> {
    status
        .lines()
        .filter(|l| l.starts_with("SigBlk") || l.starts_with("SigIgn"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

const CLEAN: [&str; 2] = ["SigBlk: 0000000000000000", "SigIgn: 0000000000000000"];

#[test]
fn scripts_see_a_clean_process_state_whatever_orc_inherits() {
    let sb = Sandbox::new();
    let seen = sb.path("seen");
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("precious"), "keep").unwrap();
    let before_out = snapshot(outside.path());
    write_mode(
        &sb.base().join("environment.d/10-env"),
        "export FROM_ENVD=yes\nunset DROPME\n",
        0o644,
    );
    // A bash script (functions, SHELLOPTS) and a sh script (no errexit leaked).
    write_mode(
        &sb.base().join("configure.d/10-bash"),
        &format!(
            "#!/bin/bash\ngrep -E '^Sig(Blk|Ign)' /proc/self/status > {d}/sig-bash\n\
             echo \"$SHELLOPTS\" > {d}/shellopts\ngreet > {d}/func\n\
             env | grep -c '^A-B=dash-name$' > {d}/dash\n\
             echo \"${{DROPME-unset}} $FROM_ENVD\" > {d}/envd\n\
             false | true; false\necho survived > {d}/errexit\n",
            d = seen.display()
        ),
        0o755,
    );
    write_mode(
        &sb.base().join("configure.d/20-sh"),
        &format!(
            "#!/bin/sh\ngrep -E '^Sig(Blk|Ign)' /proc/self/status > {d}/sig-sh\nsleep 0.2 &\nwait\n",
            d = seen.display()
        ),
        0o755,
    );
    fs::create_dir_all(&seen).unwrap();
    let opts = "braceexpand:hashall:interactive-comments";
    let mut c = sb.orc();
    c.args(["run", "--skip-state", "--skip-containers"])
        .env("SHELLOPTS", opts)
        .env("A-B", "dash-name")
        .env("DROPME", "1")
        .env("BASH_FUNC_greet%%", "() {  echo hello-from-a-function\n}")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    hostile_state(&mut c, true);
    let st = c.status().unwrap();
    let report = sb.last_report();
    assert_eq!(st.code(), Some(0), "report: {report:#}");
    assert_eq!(report["result"], "ok");
    for s in report["steps"].as_array().unwrap() {
        assert_eq!(s["exit_code"], 0, "{s}");
    }
    for f in ["sig-bash", "sig-sh"] {
        let text = fs::read_to_string(seen.join(f)).unwrap();
        assert_eq!(sig_lines(&text), CLEAN, "{f}: {text}");
    }
    let read = |f: &str| fs::read_to_string(seen.join(f)).unwrap();
    assert_eq!(
        read("shellopts").trim(),
        opts,
        "SHELLOPTS as the caller had it"
    );
    assert_eq!(
        read("func").trim(),
        "hello-from-a-function",
        "exported function"
    );
    assert_eq!(
        read("dash").trim(),
        "1",
        "a variable that is not a shell name"
    );
    assert_eq!(
        read("envd").trim(),
        "unset yes",
        "environment.d unset and export"
    );
    assert_eq!(read("errexit").trim(), "survived", "no errexit leaked");
    assert_same(&before_out, &snapshot(outside.path()), "outside the root");
    let o = sb.orc().arg("status").output().unwrap();
    expect_code(&o, 0);
    assert!(out(&o).contains(": ok"), "{}", out(&o));
}

#[test]
fn sigterm_blocked_and_ignored_by_the_caller_still_interrupts_the_run() {
    let sb = Sandbox::new();
    let started = sb.path("started");
    sb.script(
        "configure.d",
        "10-long",
        &format!("touch {}\nsleep 30", started.display()),
    );
    let mut c = sb.orc();
    c.args(["run", "--skip-state", "--skip-containers"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    hostile_state(&mut c, false);
    let mut child = c.spawn().unwrap();
    wait_for(&started);
    let t = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("orc ignored SIGTERM (the caller had it blocked and ignored)");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(st.code(), Some(143));
    assert_eq!(sb.last_report()["result"], "interrupted");
    assert!(t.elapsed() < Duration::from_secs(12), "{:?}", t.elapsed());
}

#[test]
fn without_proc_the_run_is_refused_at_plan_time_with_one_line() {
    let sb = Sandbox::new();
    let ran = sb.path("ran");
    sb.script("configure.d", "10-a", &format!("touch {}", ran.display()));
    let before = snapshot(sb.root());
    // A mount namespace of its own, /proc hidden under an empty tmpfs.
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t tmpfs none /proc && exec "$@""#)
        .arg("sh")
        .arg(bin())
        .arg("--root")
        .arg(sb.root())
        .args(["run", "--skip-state", "--skip-containers"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .output()
        .unwrap();
    expect_code(&o, 2);
    let e = err(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("/proc is not mounted"), "{e}");
    assert!(!ran.exists());
    assert_same(&before, &snapshot(sb.root()), "the root");
}
