//! The classic TripleO agent stack drives orc: the real os-collect-config
//! 14.1.0 (local collector, `--one-time`) runs orc's `os-refresh-config`
//! personality when the metadata changes, and a configure script runs the real
//! os-apply-config 14.1.0, as TripleO images do. Templates are rendered,
//! re-rendered on new metadata, left alone when nothing changed, and retried
//! after a failure (os-collect-config keeps the old cache when orc fails).
//! The venv is `ORC_UPSTREAM_BIN` (scripts/lib.sh ensure_upstream_venv).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

fn agents_bin() -> PathBuf {
    let dir = std::env::var_os("ORC_UPSTREAM_BIN")
        .map(PathBuf::from)
        .expect("ORC_UPSTREAM_BIN must point at the venv with os-collect-config and os-apply-config 14.1.0 (scripts/test.sh sets it)");
    for tool in ["os-collect-config", "os-apply-config"] {
        assert!(
            dir.join(tool).exists(),
            "no {tool} in {} (scripts/lib.sh ensure_upstream_venv installs it)",
            dir.display()
        );
    }
    dir
}

struct Box {
    sb: Sandbox,
    bin: PathBuf,
}

impl Box {
    fn new() -> Box {
        let sb = Sandbox::new();
        let agents = agents_bin();
        let bin = sb.path("orc-bin");
        fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(common::bin(), bin.join("os-refresh-config")).unwrap();
        write_mode(
            &sb.path("templates/etc/app.conf"),
            "port={{app.port}}\nname={{app.name}}\n",
            0o644,
        );
        write_mode(&sb.path("occ.conf"), "", 0o644);
        sb.script(
            "configure.d",
            "20-os-apply-config",
            &format!(
                "echo run >> {count}\n\
                 if [ -e {fail} ]; then echo 'failing on purpose' >&2; exit 5; fi\n\
                 exec {apply} -t {tpl} -o {out}",
                count = sb.path("count").display(),
                fail = sb.path("fail").display(),
                apply = agents.join("os-apply-config").display(),
                tpl = sb.path("templates").display(),
                out = sb.path("out").display(),
            ),
        );
        Box { sb, bin }
    }

    fn metadata(&self, port: u32, name: &str) {
        write_mode(
            &self.sb.path("md/app.json"),
            &format!(r#"{{"app": {{"port": {port}, "name": "{name}"}}}}"#),
            0o644,
        );
    }

    /// `os-collect-config --one-time --command os-refresh-config ... local`.
    fn collect(&self) -> Output {
        let sb = &self.sb;
        Command::new(agents_bin().join("os-collect-config"))
            .env_clear()
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("LC_ALL", "C")
            .env("OS_REFRESH_CONFIG_BASE_DIR", sb.base())
            .env("ORC_ROOT", sb.root())
            .arg("--config-file")
            .arg(sb.path("occ.conf"))
            .arg("--one-time")
            .arg("--cachedir")
            .arg(sb.path("cache"))
            .args(["--command", "os-refresh-config", "--local-path"])
            .arg(sb.path("md"))
            .arg("local")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn rendered(&self) -> String {
        fs::read_to_string(self.sb.path("out/etc/app.conf")).unwrap_or_default()
    }

    fn runs(&self) -> usize {
        fs::read_to_string(self.sb.path("count"))
            .unwrap_or_default()
            .lines()
            .count()
    }
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        out(o),
        err(o)
    );
}

#[test]
fn os_collect_config_and_os_apply_config_drive_orc() {
    let b = Box::new();
    b.metadata(8080, "one");
    ok(&b.collect());
    assert_eq!(b.rendered(), "port=8080\nname=one\n");
    assert_eq!(b.runs(), 1);
    assert_eq!(b.sb.last_report()["result"], "ok");

    // Nothing changed: os-collect-config does not run orc again.
    ok(&b.collect());
    assert_eq!(b.runs(), 1);

    // New metadata: rendered again.
    b.metadata(8080, "two");
    ok(&b.collect());
    assert_eq!(b.rendered(), "port=8080\nname=two\n");
    assert_eq!(b.runs(), 2);

    // orc fails: os-collect-config keeps the old cache, the file is left as it was...
    fs::write(b.sb.path("fail"), "").unwrap();
    b.metadata(9090, "three");
    let o = b.collect();
    assert!(!o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("will not cache new data"), "{}", err(&o));
    assert_eq!(b.rendered(), "port=8080\nname=two\n");
    assert_eq!(b.sb.last_report()["result"], "failed");
    assert_eq!(b.runs(), 3);

    // ...and retries on the next poll with the same metadata, which now renders.
    fs::remove_file(b.sb.path("fail")).unwrap();
    ok(&b.collect());
    assert_eq!(b.rendered(), "port=9090\nname=three\n");
    assert_eq!(b.runs(), 4);
    assert!(Path::new(&b.sb.path("var/lib/orc/last-run.json")).exists());
}
