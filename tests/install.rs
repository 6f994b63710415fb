//! scripts/install.sh into an image tree: everything in place, idempotent,
//! man page readable, completions load in bash.

mod common;

use std::fs;
use std::process::Command;

use common::*;

fn install(sb: &Sandbox, prefix: &str) {
    let o = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install.sh"))
        .args(["--root"])
        .arg(sb.root())
        .args(["--prefix", prefix, "--binary"])
        .arg(bin())
        .output()
        .unwrap();
    expect_code(&o, 0);
}

#[test]
fn installs_into_an_image_tree_idempotently() {
    let sb = Sandbox::new();
    install(&sb, "/usr/local");
    let listing = |sb: &Sandbox| {
        let mut v: Vec<String> = walkdir::WalkDir::new(sb.root())
            .into_iter()
            .map(|e| {
                e.unwrap()
                    .path()
                    .strip_prefix(sb.root())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    };
    let first = listing(&sb);
    install(&sb, "/usr/local");
    assert_eq!(listing(&sb), first, "a second install changed the tree");
    for name in ["os-refresh-config", "dib-run-parts", "register-state-path"] {
        assert_eq!(
            fs::read_link(sb.path(&format!("usr/local/bin/{name}")))
                .unwrap()
                .to_str(),
            Some("orc")
        );
    }
    let unit = fs::read_to_string(sb.path("etc/systemd/system/orc.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/orc run"), "{unit}");
    for d in [
        "pre-configure.d",
        "configure.d",
        "migration.d",
        "post-configure.d",
        "error.d",
        "environment.d",
    ] {
        assert!(sb.base().join(d).is_dir(), "{d}");
    }
    // The installed personality works through its symlink.
    let o = Command::new(sb.path("usr/local/bin/os-refresh-config"))
        .env("ORC_ROOT", sb.root())
        .arg("--print-phases")
        .output()
        .unwrap();
    expect_code(&o, 0);
    assert_eq!(
        out(&o),
        "pre-configure\tconfigure\tpost-configure\tmigration\n"
    );
    let man = Command::new("man")
        .env("MANPATH", sb.path("usr/local/share/man"))
        .env("MANPAGER", "cat")
        .arg("orc")
        .output()
        .expect("man (man-db) must be installed");
    expect_code(&man, 0);
    assert!(out(&man).contains("orc-run(1)"), "{}", out(&man));
    for page in ["orc.json.5", "orc-state-registry.5", "orc-report.5"] {
        assert!(
            sb.path("usr/local/share/man/man5").join(page).is_file(),
            "{page}"
        );
        assert!(
            !sb.path("usr/local/share/man/man1").join(page).exists(),
            "{page} in man1"
        );
    }
    let comp = sb.path("usr/local/share/bash-completion/completions/orc");
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p orc", comp.display()))
        .output()
        .unwrap();
    expect_code(&o, 0);
    assert!(out(&o).contains("-F _orc orc"), "{}", out(&o));
    // Each personality completes under its own name, with its own flags.
    for (name, flag) in [
        ("os-refresh-config", "--print-phases"),
        ("dib-run-parts", "--list"),
        ("register-state-path", "--leave-symlink"),
    ] {
        let comp = sb.path(&format!(
            "usr/local/share/bash-completion/completions/{name}"
        ));
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {} && complete -p {name} && COMP_WORDS=({name} --) COMP_CWORD=1 && \
                 $(complete -p {name} | sed -n 's/.*-F \\([^ ]*\\).*/\\1/p') {name} -- {name} && \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                comp.display()
            ))
            .output()
            .unwrap();
        expect_code(&o, 0);
        assert!(out(&o).contains(flag), "{name}: {}{}", out(&o), err(&o));
    }
    // Another prefix: the unit follows it.
    install(&sb, "/opt/orc");
    let unit = fs::read_to_string(sb.path("etc/systemd/system/orc.service")).unwrap();
    assert!(unit.contains("ExecStart=/opt/orc/bin/orc run"), "{unit}");
}

/// `debian/postrm purge` (with `DPKG_ROOT`, as `dpkg --root` runs it) on a box orc ran on.
fn purge(sb: &Sandbox) {
    let o = Command::new("sh")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/debian/postrm"))
        .arg("purge")
        .env("DPKG_ROOT", sb.root())
        .output()
        .unwrap();
    expect_code(&o, 0);
}

#[test]
fn purge_removes_what_orc_wrote_and_keeps_the_boxs_data() {
    let sb = Sandbox::new();
    install(&sb, "/usr/local");
    // What orc writes: a registry entry (register-state-path), a run's reports.
    let o = sb
        .orc()
        .args(["state", "register", "/var/lib/app"])
        .output()
        .unwrap();
    expect_code(&o, 0);
    assert!(sb.path("var/lib/use-ephemeral/stateful-paths").exists());
    expect_code(&sb.orc().arg("run").output().unwrap(), 0);
    assert!(sb.path("var/lib/orc/last-run.json").exists());
    purge(&sb);
    for gone in [
        "var/lib/use-ephemeral",
        "var/lib/orc",
        "usr/libexec/os-refresh-config",
    ] {
        assert!(!sb.path(gone).exists(), "{gone} left behind");
    }

    // The box's own data stays: pristine copies, container runtime dirs, scripts.
    install(&sb, "/usr/local");
    expect_code(
        &sb.orc()
            .args(["state", "register", "/var/lib/app"])
            .output()
            .unwrap(),
        0,
    );
    write_mode(
        &sb.path("var/lib/use-ephemeral/var/lib/app/data"),
        "pristine\n",
        0o644,
    );
    write_mode(&sb.path("var/lib/orc/containers/app/db"), "rows\n", 0o600);
    sb.script("configure.d", "10-from-an-element", "true");
    expect_code(&sb.orc().arg("run").output().unwrap(), 0);
    purge(&sb);
    assert!(!sb.path("var/lib/use-ephemeral/stateful-paths").exists());
    assert!(!sb.path("var/lib/orc/runs").exists());
    assert!(!sb.path("var/lib/orc/last-run.json").exists());
    assert!(sb.path("var/lib/use-ephemeral/var/lib/app/data").exists());
    assert!(sb.path("var/lib/orc/containers/app/db").exists());
    assert!(sb.base().join("configure.d/10-from-an-element").exists());
    assert!(!sb.base().join("post-configure.d").exists());
}
