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
        "pre-configure\tconfigure\tmigration\tpost-configure\n"
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
    // Another prefix: the unit follows it.
    install(&sb, "/opt/orc");
    let unit = fs::read_to_string(sb.path("etc/systemd/system/orc.service")).unwrap();
    assert!(unit.contains("ExecStart=/opt/orc/bin/orc run"), "{unit}");
}
