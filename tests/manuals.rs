//! The manuals as `man -l` shows them: every section-1 page has EXIT STATUS,
//! ENVIRONMENT, FILES and EXAMPLES; the section-5 pages of orc's file formats exist
//! and render.

mod common;

use std::process::Command;

use common::{Sandbox, expect_code, out};

/// `man -l PAGE` rendered as plain text.
fn man(page: &std::path::Path) -> String {
    let o = Command::new("man")
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C")
        .arg("-l")
        .arg(page)
        .output()
        .expect("man (man-db) must be installed");
    expect_code(&o, 0);
    assert!(
        o.stderr.is_empty(),
        "{}: {}",
        page.display(),
        common::err(&o)
    );
    out(&o)
}

#[test]
fn every_page_shows_the_sections() {
    let sb = Sandbox::new();
    let dir = sb.path("man");
    expect_code(&sb.orc().arg("man").arg(&dir).output().unwrap(), 0);
    let mut ones = 0;
    let mut fives = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let text = man(&p);
        let headers: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ')).collect();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let want: &[&str] = if name.ends_with(".1") {
            ones += 1;
            &[
                "NAME",
                "SYNOPSIS",
                "EXIT STATUS",
                "ENVIRONMENT",
                "FILES",
                "EXAMPLES",
            ]
        } else {
            fives.push(name.clone());
            &[
                "NAME",
                "SYNOPSIS",
                "DESCRIPTION",
                "FILES",
                "EXAMPLES",
                "SEE ALSO",
            ]
        };
        for h in want {
            assert!(headers.contains(h), "{name} has no {h} section:\n{text}");
        }
        if name == "orc-run.1" {
            for v in ["ORC_ROOT", "RUST_LOG", "OS_REFRESH_CONFIG_BASE_DIR", "77"] {
                assert!(text.contains(v), "orc-run(1) does not mention {v}");
            }
        }
    }
    assert!(ones >= 15, "{ones} section-1 pages");
    fives.sort();
    assert_eq!(
        fives,
        ["orc-report.5", "orc-state-registry.5", "orc.json.5"],
        "the file-format pages"
    );
}
