//! The hostile suite: orc attacked as a hostile admin or another local user would.
//!
//! Every input orc reads is fed garbage, the wrong kind of file, symlinks in and out of
//! the root, control characters and sizes past every limit; secrets are provoked into
//! error messages; runs are killed, interrupted and raced; the container engine hangs.
//! The contract checked (see SPEC.md and issue 9):
//!
//! - bad input: exit 2, ONE line on stderr naming the file (line/column for JSON, line
//!   for the registry) and the problem, no raw control character, nothing changed in the
//!   root or outside it (before/after snapshots), never a panic (101), never a hang;
//! - no value environment.d sets reaches stderr, a report or `orc status`;
//! - `orc status` tells the truth: crashed runs, clocks set back, interrupted steps;
//! - every child (scripts, the engine CLI, hooks) runs in its own process group under the
//!   run's deadline, gets SIGTERM forwarded, and never outlives a crashed run.
//!
//! Cases are rows of tables; each row runs on its own and every failing row is listed
//! at the end of its test (`CASE FAILED <test>::<row>` on stderr as it happens; run with
//! `--nocapture` to see every `CASE ok` too). Every command has a watchdog (a hang fails
//! the case and kills the whole process tree), and every orc started here has stand-ins
//! for `docker` and `podman` first on PATH: no case can reach an engine others share.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use common::*;

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// How long any single orc command may take before the test calls it hung.
const LIMIT: Duration = Duration::from_secs(60);

const REGISTRY: &str = "var/lib/use-ephemeral/stateful-paths";
const CONFIG: &str = "etc/orc/orc.json";
const SPECS: &str = "etc/orc/containers.d";

fn root_only() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the hostile suite runs as root (scripts/test.sh does)"
    );
}

/// A table of cases: each row runs on its own (a failure does not hide the next row),
/// and the test fails at the end listing every failing row.
struct Cases {
    test: &'static str,
    passed: usize,
    failed: Vec<String>,
}

impl Cases {
    fn new(test: &'static str) -> Cases {
        root_only();
        Cases {
            test,
            passed: 0,
            failed: Vec::new(),
        }
    }

    fn case(&mut self, name: &str, f: impl FnOnce()) {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(()) => {
                self.passed += 1;
                eprintln!("CASE ok     {}::{name}", self.test);
            }
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                eprintln!("CASE FAILED {}::{name}", self.test);
                self.failed.push(format!("--- {name}\n{msg}"));
            }
        }
    }

    fn finish(self) {
        eprintln!(
            "CASES {} passed={} failed={}",
            self.test,
            self.passed,
            self.failed.len()
        );
        assert!(
            self.failed.is_empty(),
            "{} of {} cases of {} failed:\n\n{}",
            self.failed.len(),
            self.failed.len() + self.passed,
            self.test,
            self.failed.join("\n\n")
        );
    }
}

/// Runs `c` with stdin from /dev/null, collecting its output; a command still running
/// after `limit` is killed and the case fails as hung.
fn output_within(c: &mut Command, limit: Duration) -> Output {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let so = reader(child.stdout.take().unwrap());
    let se = reader(child.stderr.take().unwrap());
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > limit {
            kill_tree(&mut child);
            panic!("hung: still running after {limit:?} (killed)");
        }
        thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: drained(so, "stdout"),
        stderr: drained(se, "stderr"),
    }
}

/// All a child wrote on one stream; a stream still open 30 s after the child exited
/// (something it left behind holds it) fails the case rather than reading as empty.
fn drained(rx: mpsc::Receiver<Vec<u8>>, what: &str) -> Vec<u8> {
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("{what} still open 30 s after the command exited"))
}

/// Kills a hung child and every process below it (found through /proc before the
/// child dies, while they are still its descendants).
fn kill_tree(child: &mut Child) {
    let mut tree = vec![child.id() as i32];
    let mut i = 0;
    while i < tree.len() {
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if ppid == Some(tree[i]) && !tree.contains(&pid) {
                tree.push(pid);
            }
        }
        i += 1;
    }
    for pid in tree.iter().skip(1) {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn reader(mut r: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        let _ = tx.send(v);
    });
    rx
}

fn go(c: &mut Command) -> Output {
    output_within(c, LIMIT)
}

/// A directory of stand-ins for the real `docker` and `podman`, first on every PATH the
/// suite gives orc: a misparsed config must never reach an engine shared with others.
fn guard_bin() -> &'static Path {
    static GUARD: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    GUARD.get_or_init(|| {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("orc-hostile-guard");
        for engine in ["docker", "podman"] {
            write_mode(
                &d.join(engine),
                "#!/bin/sh\necho \"guard: the real $0 would have run: $*\" >&2\nexit 1\n",
                0o755,
            );
        }
        d
    })
}

/// `orc --root <sandbox>` with the engine guard first on PATH.
fn orc(sb: &Sandbox) -> Command {
    let mut c = sb.orc();
    c.env(
        "PATH",
        format!(
            "{}:{}",
            guard_bin().display(),
            std::env::var("PATH").unwrap()
        ),
    );
    c
}

/// A directory outside every root, with something precious in it.
fn outside() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("orc-hostile-outside")
        .tempdir()
        .unwrap();
    fs::write(d.path().join("precious"), "keep me").unwrap();
    fs::create_dir(d.path().join("sub")).unwrap();
    fs::write(d.path().join("sub/also"), "keep me too").unwrap();
    d
}

type Snap = BTreeMap<PathBuf, String>;

/// Before/after snapshots of the root and of a directory outside it.
struct Frozen {
    root: Snap,
    out: Snap,
}

fn freeze(sb: &Sandbox, out: &Path) -> Frozen {
    Frozen {
        root: snapshot(sb.root()),
        out: snapshot(out),
    }
}

impl Frozen {
    #[track_caller]
    fn unchanged(&self, sb: &Sandbox, out: &Path) {
        assert_same(&self.root, &snapshot(sb.root()), "the root");
        assert_same(&self.out, &snapshot(out), "the directory outside the root");
    }

    /// As [`Frozen::unchanged`], but the lock file (and its dir) may have been made: for
    /// commands that take the lock before they read what they refuse (tested strictly
    /// on their own).
    #[track_caller]
    fn unchanged_but_the_lock(&self, sb: &Sandbox, out: &Path) {
        let strip = |s: &Snap| -> Snap {
            s.iter()
                .filter(|(k, _)| !k.starts_with("run"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        assert_same(&strip(&self.root), &strip(&snapshot(sb.root())), "the root");
        assert_same(&self.out, &snapshot(out), "the directory outside the root");
    }
}

/// No raw control character (a tab aside) in what orc printed: a name from an input can
/// never start a line of its own or rewrite the terminal.
#[track_caller]
fn no_raw_controls(text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|c| c.is_control() && *c != '\n' && *c != '\t')
        .collect();
    assert!(
        bad.is_empty(),
        "raw control characters {bad:?} in orc's output: {text:?}"
    );
}

/// The containers step failed on a spec while the phases ran: exit 1, the report names
/// every `want` (in a container's error or the step's note), no runtime dir was made.
#[track_caller]
fn spec_step_failed(o: &Output, sb: &Sandbox, want: &[&str]) {
    let e = err(o);
    assert_ne!(o.status.code(), Some(101), "orc panicked:\n{e}");
    assert_eq!(o.status.code(), Some(1), "exit code (want 1)\nstderr: {e}");
    no_raw_controls(&e);
    let r = sb.last_report();
    let mut said: Vec<String> = r["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["error"].as_str().map(String::from))
        .collect();
    said.extend(
        r["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["phase"] == "containers")
            .filter_map(|s| s["note"].as_str().map(String::from)),
    );
    for w in want {
        assert!(
            said.iter().any(|s| s.contains(w)),
            "the report does not name {w:?}: {said:?}"
        );
    }
    assert_eq!(r["result"], "failed");
    assert!(
        !sb.path("var/lib/orc/containers").exists(),
        "a runtime dir was made"
    );
}

/// Invalid input: exit 2, one line on stderr naming every `want`, nothing on stdout.
#[track_caller]
fn refused(o: &Output, want: &[&str]) {
    let e = err(o);
    assert_ne!(o.status.code(), Some(101), "orc panicked:\n{e}");
    assert_eq!(
        o.status.code(),
        Some(2),
        "exit code (want 2)\nstderr: {e}\nstdout: {}",
        out(o)
    );
    assert_eq!(e.lines().count(), 1, "want ONE line on stderr, got: {e:?}");
    no_raw_controls(&e);
    for w in want {
        assert!(e.contains(w), "stderr does not name {w:?}: {e:?}");
    }
    assert_eq!(out(o), "", "nothing on stdout");
}

/// The kinds of node an attacker can put where orc expects a file.
#[derive(Clone)]
enum Node {
    Bytes(Vec<u8>),
    Fifo,
    Dir,
    /// A symlink to a missing name in the same directory.
    Dangling,
    /// A symlink to a missing name in a missing directory.
    DanglingDeep,
    Loop,
    Socket,
    CharDev,
    /// A relative symlink climbing out of the root to a file with these bytes outside.
    LinkOut(Vec<u8>),
}

fn b(s: &str) -> Node {
    Node::Bytes(s.as_bytes().to_vec())
}

/// Deterministic garbage.
fn garbage(n: usize, first: u8) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = vec![first];
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push((x >> 24) as u8);
    }
    v
}

/// A symlink at `at` whose relative target climbs out of any root to `target`.
fn link_climbing_out(at: &Path, target: &Path) {
    let ups = "../".repeat(at.components().count() + 2);
    symlink(format!("{ups}{}", target.display()), at).unwrap();
}

/// Puts `node` at `p` (parents created); outside files go into `out`.
fn place(p: &Path, node: &Node, out: &Path) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o644);
    match node {
        Node::Bytes(bytes) => {
            fs::write(p, bytes).unwrap();
            fs::set_permissions(p, fs::Permissions::from_mode(0o644)).unwrap();
        }
        Node::Fifo => nix::unistd::mkfifo(p, mode).unwrap(),
        Node::Dir => fs::create_dir(p).unwrap(),
        Node::Dangling => symlink("missing-target", p).unwrap(),
        Node::DanglingDeep => symlink("/nonexistent/orc-hostile-target", p).unwrap(),
        Node::Loop => symlink(p.file_name().unwrap(), p).unwrap(),
        Node::Socket => drop(std::os::unix::net::UnixListener::bind(p).unwrap()),
        Node::CharDev => nix::sys::stat::mknod(
            p,
            nix::sys::stat::SFlag::S_IFCHR,
            mode,
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap(),
        Node::LinkOut(bytes) => {
            let target = out.join(p.file_name().unwrap());
            fs::write(&target, bytes).unwrap();
            link_climbing_out(p, &target);
        }
    }
}

/// `orc` with a fake engine directory first on PATH.
fn orc_with_bin(sb: &Sandbox, bin: &Path) -> Command {
    let mut c = sb.orc();
    c.env(
        "PATH",
        format!(
            "{}:{}:{}",
            bin.display(),
            guard_bin().display(),
            std::env::var("PATH").unwrap()
        ),
    );
    c
}

/// A fake `docker`: logs every call (and its process group) next to itself, prints
/// `ps` rows from `ps` (honouring `--filter label=K=V`), answers `create` with an id,
/// and hangs (until SIGTERM, which it records) on a subcommand named by a `hang-CMD` file.
fn fake_docker(bin: &Path) {
    write_mode(
        &bin.join("docker"),
        r#"#!/bin/sh
d="$(dirname "$0")"
printf '%s\n' "$*" >> "$d/calls"
echo "$$ $(cut -d' ' -f5 /proc/$$/stat)" >> "$d/groups"
if [ -f "$d/hang-$1" ]; then
  trap 'echo term >> "$d/got-term"; exit 143' TERM
  sleep 1000 &
  # Hanging only once the child runs sleep: a SIGTERM between its fork and its exec
  # runs the inherited trap in the child, then sleep survives and waits out the grace.
  until grep -q '^Name:[[:space:]]*sleep$' /proc/$!/status 2>/dev/null; do :; done
  touch "$d/hanging"
  wait
  exit 0
fi
case "$1" in
  create|run) echo fake-id ;;
  ps)
    [ -f "$d/ps" ] || exit 0
    while IFS= read -r row; do
      ok=1
      prev=
      for a in "$@"; do
        if [ "$prev" = "--filter" ]; then
          case "$a" in
            label=*=*)
              kv="${a#label=}"; k="${kv%%=*}"; v="${kv#*=}"
              case "$row" in *"\"$k\":\"$v\""*) ;; *) ok=0 ;; esac ;;
          esac
        fi
        prev="$a"
      done
      [ "$ok" = 1 ] && printf '%s\n' "$row"
    done < "$d/ps"
    ;;
esac
exit 0
"#,
        0o755,
    );
}

fn calls(bin: &Path) -> String {
    fs::read_to_string(bin.join("calls")).unwrap_or_default()
}

/// Live (not zombie) processes whose command line mentions `needle`.
fn live_processes_mentioning(needle: &str) -> Vec<i32> {
    let mut v = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .unwrap_or("Z");
        if state != "Z" && cmd.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            v.push(pid);
        }
    }
    v
}

/// An idle process for a script to leave behind: `sh <path>`, so its command line names
/// the sandbox. `ignore_term`: it (and its sleep) ignore SIGTERM.
fn idle_script(sb: &Sandbox, ignore_term: bool) -> PathBuf {
    let p = sb.path("idle");
    let trap = if ignore_term { "trap '' TERM\n" } else { "" };
    write_mode(&p, &format!("{trap}sleep 1000\n"), 0o644);
    p
}

fn signal(child: &Child, sig: Signal) {
    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
}

/// Waits for a child, failing (and killing it) after `limit`.
fn wait_output(mut child: Child, limit: Duration) -> Output {
    let so = child.stdout.take().map(reader);
    let se = child.stderr.take().map(reader);
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > limit {
            kill_tree(&mut child);
            panic!("hung: still running after {limit:?} (killed)");
        }
        thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: so.map(|r| drained(r, "stdout")).unwrap_or_default(),
        stderr: se.map(|r| drained(r, "stderr")).unwrap_or_default(),
    }
}

/// Starts `c` (stderr to a temp file outside the root) and returns once it says it waits for the
/// lock, failing after 20 s.
fn spawn_waiting(c: &mut Command) -> (Child, tempfile::TempPath) {
    let log = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for_text(&log, "waiting for");
    (child, log)
}

fn spawn_piped(c: &mut Command) -> Child {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Every file under the runs dir, read as text (for leaks).
fn all_reports(sb: &Sandbox) -> String {
    let mut s = String::new();
    for e in walkdir::WalkDir::new(sb.path("var/lib/orc"))
        .into_iter()
        .flatten()
    {
        if e.file_type().is_file() {
            s.push_str(&String::from_utf8_lossy(&fs::read(e.path()).unwrap()));
        }
    }
    s
}

// ---------------------------------------------------------------------------------------
// Input: the config file
// ---------------------------------------------------------------------------------------

#[test]
fn config_file_attacks_exit_2_naming_the_file_and_change_nothing() {
    let mut cases = Cases::new("config_file");
    let valid_elsewhere = br#"{"data_dir": "/srv/evil"}"#.to_vec();
    let too_large = {
        let mut v = b"{\"base_dir\": \"/".to_vec();
        v.extend(std::iter::repeat_n(b'a', 17 << 20));
        v.extend(b"\"}");
        v
    };
    let rows: Vec<(&str, Node, Vec<&str>)> = vec![
        (
            "array_field_by_position",
            b(r#"["/x", "/y", "/run/l.lock"]"#),
            vec![CONFIG, "line 1, column 1", "JSON object"],
        ),
        (
            "array_after_blank_lines",
            b("\n\n  [1]"),
            vec![CONFIG, "line 3, column 3", "JSON object"],
        ),
        ("null", b("null"), vec![CONFIG, "JSON object"]),
        ("string", b("\"/srv\""), vec![CONFIG, "JSON object"]),
        ("number", b("42"), vec![CONFIG, "JSON object"]),
        ("empty", b(""), vec![CONFIG, "empty"]),
        ("blank", b(" \n\t\r\n"), vec![CONFIG, "empty"]),
        ("byte_order_mark", b("\u{feff}{}"), vec![CONFIG, "line 1"]),
        (
            "invalid_utf8",
            Node::Bytes(b"{\"data_dir\": \"/srv/\xff\xfe\"}".to_vec()),
            vec![CONFIG, "line 1, column"],
        ),
        (
            "nul_bytes",
            Node::Bytes(b"{\0\0\0}".to_vec()),
            vec![CONFIG, "line 1, column"],
        ),
        (
            "binary_garbage",
            Node::Bytes(garbage(4096, b'{')),
            vec![CONFIG, "line "],
        ),
        (
            "trailing_garbage",
            b("{}\n{}"),
            vec![CONFIG, "line 2", "trailing"],
        ),
        (
            "duplicate_key",
            b("{\"phase_order\": \"design\",\n \"phase_order\": \"upstream\"}"),
            vec![CONFIG, "line 2", "duplicate"],
        ),
        (
            "unknown_key",
            b("{\n  \"bogus\": 1\n}"),
            vec![CONFIG, "line 2, column", "unknown field `bogus`"],
        ),
        (
            "wrong_type",
            b(r#"{"state": {"require_mount": "yes"}}"#),
            vec![CONFIG, "line 1, column", "invalid type"],
        ),
        (
            "nested_object_as_array_state",
            b(r#"{"state": ["/srv/state", "/srv/pristine"]}"#),
            vec![CONFIG, "line 1, column"],
        ),
        (
            "nested_object_as_array_containers",
            b(r#"{"containers": ["podman", "7"]}"#),
            vec![CONFIG, "line 1, column"],
        ),
        (
            "deep_nesting",
            Node::Bytes(vec![b'['; 200_000]),
            vec![CONFIG, "line 1"],
        ),
        (
            "nul_in_path",
            b(r#"{"data_dir": "/var/\u0000x"}"#),
            vec![CONFIG, "NUL"],
        ),
        (
            "dot_dot_path",
            b(r#"{"lock_file": "/run/../x.lock"}"#),
            vec![CONFIG, "'..'"],
        ),
        (
            "relative_path",
            b(r#"{"base_dir": "usr/libexec"}"#),
            vec![CONFIG, "not an absolute path"],
        ),
        (
            "trailing_slash",
            b(r#"{"data_dir": "/var/lib/orc/"}"#),
            vec![CONFIG, "ends with '/'"],
        ),
        (
            "infra_version_newline",
            b(r#"{"containers": {"infra_version": "7\nforged"}}"#),
            vec![CONFIG, "single-line"],
        ),
        (
            "infra_version_too_long",
            Node::Bytes(
                format!(
                    r#"{{"containers": {{"infra_version": "{}"}}}}"#,
                    "v".repeat(200)
                )
                .into_bytes(),
            ),
            vec![CONFIG, "128 bytes"],
        ),
        (
            "phase_order_unknown",
            b(r#"{"phase_order": "sideways"}"#),
            vec![CONFIG, "unknown variant"],
        ),
        (
            "engine_unknown",
            b(r#"{"containers": {"engine": "lxc"}}"#),
            vec![CONFIG, "unknown variant"],
        ),
        (
            "unknown_key_with_a_newline",
            b("{\"a\\norc: error: forged\": 1}"),
            vec![CONFIG, "unknown field"],
        ),
        (
            "too_large",
            Node::Bytes(too_large),
            vec![CONFIG, "too large"],
        ),
        ("fifo", Node::Fifo, vec![CONFIG, "FIFO"]),
        ("directory", Node::Dir, vec![CONFIG, "directory"]),
        ("socket", Node::Socket, vec![CONFIG]),
        (
            "char_device",
            Node::CharDev,
            vec![CONFIG, "character device"],
        ),
        ("dangling_symlink", Node::Dangling, vec![CONFIG, "dangling"]),
        ("symlink_loop", Node::Loop, vec![CONFIG, "symbolic links"]),
        (
            "symlink_out_of_the_root",
            Node::LinkOut(valid_elsewhere),
            vec![CONFIG, "dangling"],
        ),
    ];
    for (name, node, want) in rows {
        cases.case(name, || {
            let ext = outside();
            let sb = Sandbox::new();
            sb.script("configure.d", "10-a", "echo must-not-run");
            place(&sb.path(CONFIG), &node, ext.path());
            let before = freeze(&sb, ext.path());
            for args in [
                &["run"][..],
                &["status"],
                &["list"],
                &["state", "register", "/var/lib/x"],
                &["containers", "reconcile"],
            ] {
                let o = go(orc(&sb).args(args));
                refused(&o, &want);
            }
            before.unchanged(&sb, ext.path());
        });
    }
    cases.case("data_dir_that_is_a_regular_file", || {
        // A config whose data_dir names a file: invalid input, found before the lock.
        let ext = outside();
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo must-not-run");
        sb.config(r#"{"data_dir": "/etc/orc/orc.json"}"#);
        let before = freeze(&sb, ext.path());
        let o = go(orc(&sb).arg("run"));
        refused(&o, &[CONFIG, "not a directory"]);
        before.unchanged(&sb, ext.path());
    });
    cases.finish();
}

#[test]
fn command_line_paths_and_numbers_are_checked_before_anything_is_touched() {
    let mut cases = Cases::new("command_line");
    let ext = outside();
    let fifo = ext.path().join("config-fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let p = |p: &Path| p.display().to_string();
    // (name, args, what stderr names, a clap usage error rather than orc's own line)
    let rows: Vec<(&str, Vec<String>, Vec<&str>, bool)> = vec![
        (
            "config_missing",
            s(&["--config", "/nonexistent/orc.json", "run"]),
            vec!["/nonexistent/orc.json", "no such file"],
            false,
        ),
        (
            "config_dev_null",
            s(&["--config", "/dev/null", "run"]),
            vec!["/dev/null", "character device"],
            false,
        ),
        (
            "config_fifo_outside",
            s(&["--config", &p(&fifo), "run"]),
            vec!["config-fifo", "FIFO"],
            false,
        ),
        (
            "config_a_directory",
            s(&["--config", &p(ext.path()), "run"]),
            vec!["directory"],
            false,
        ),
        (
            "config_name_with_newline",
            s(&["--config", "/nonexistent/a\norc: error: forged", "run"]),
            vec!["no such file"],
            false,
        ),
        (
            "timeout_past_u64_seconds_as_duration",
            s(&["run", "--timeout=9300000000000000000"]),
            vec!["--timeout"],
            true,
        ),
        (
            "timeout_past_a_year",
            s(&["run", "--timeout=31536001"]),
            vec!["--timeout"],
            true,
        ),
        (
            "script_timeout_negative",
            s(&["run", "--script-timeout=-1"]),
            vec!["--script-timeout"],
            true,
        ),
        (
            "wait_in_float_notation",
            s(&["run", "--wait=1e9"]),
            vec!["--wait"],
            true,
        ),
        (
            "compat_timeout_overflow",
            s(&["os-refresh-config", "--timeout", "99999999999999999999"]),
            vec!["--timeout"],
            true,
        ),
        (
            "state_seed_wait_overflow",
            s(&["state", "seed", "--wait=18446744073709551615"]),
            vec!["--wait"],
            true,
        ),
        (
            "lockfile_a_directory",
            s(&["run", "--lockfile", &p(&ext.path().join("sub"))]),
            vec!["sub", "directory"],
            false,
        ),
        (
            "lockfile_empty",
            s(&["run", "--lockfile", ""]),
            vec!["--lockfile"],
            true,
        ),
    ];
    for (name, args, want, clap) in rows {
        cases.case(name, || {
            let sb = Sandbox::new();
            sb.script("configure.d", "10-a", "echo must-not-run");
            let before = freeze(&sb, ext.path());
            let o = go(orc(&sb).args(&args));
            if clap {
                // clap's own usage error: several lines, but exit 2 naming the flag.
                let e = err(&o);
                assert_ne!(o.status.code(), Some(101), "orc panicked:\n{e}");
                assert_eq!(o.status.code(), Some(2), "stderr: {e}");
                assert_eq!(out(&o), "", "nothing ran");
                for w in &want {
                    assert!(e.contains(w), "stderr does not name {w:?}: {e}");
                }
            } else {
                refused(&o, &want);
            }
            before.unchanged(&sb, ext.path());
        });
    }
    for (name, node) in [
        ("root_a_file", b("x")),
        ("root_a_fifo", Node::Fifo),
        ("root_dangling", Node::Dangling),
    ] {
        cases.case(name, || {
            let sb = Sandbox::new();
            let r = sb.path("not-a-root");
            place(&r, &node, ext.path());
            let before = freeze(&sb, ext.path());
            let o = go(Command::new(bin()).arg("--root").arg(&r).arg("run"));
            refused(&o, &["--root", "not-a-root"]);
            before.unchanged(&sb, ext.path());
        });
    }
    cases.finish();
}

// ---------------------------------------------------------------------------------------
// Input: the registry of stateful paths
// ---------------------------------------------------------------------------------------

#[test]
fn registry_attacks_exit_2_naming_file_and_line_and_change_nothing() {
    let mut cases = Cases::new("registry");
    let long_component = format!("/var/{};true\n", "x".repeat(256));
    let too_long = format!("{};\n", "/d".repeat(2100));
    let deep_bad = "/var/lib/a;true\n/var/lib/b;\n/srv/c;true\n/etc/d\nrelative/e;true\n";
    let too_large = "/var/lib/a;true\n".repeat((17 << 20) / 16 + 1);
    let rows: Vec<(&str, Node, Vec<&str>)> = vec![
        (
            "crlf_legacy_line",
            b("/var/lib/mysql\r\n"),
            vec!["line 1", "control character"],
        ),
        (
            "crlf_flagged_line",
            b("/var/lib/mysql;true\r\n"),
            vec!["line 1", "neither"],
        ),
        (
            "crlf_on_the_second_line",
            b("/var/lib/a;true\n/var/lib/mysql\r\n"),
            vec!["line 2", "control character"],
        ),
        ("lone_cr", b("\r\n"), vec!["line 1", "control character"]),
        (
            "tab_in_path",
            b("/var/lib/a\tb;true\n"),
            vec!["line 1", "control character"],
        ),
        (
            "escape_sequence_in_path",
            b("/var/lib/\x1b[2Jx;true\n"),
            vec!["line 1", "control character"],
        ),
        (
            "nul_in_path",
            Node::Bytes(b"/var/lib/a\0b;true\n".to_vec()),
            vec!["line 1", "NUL"],
        ),
        (
            "relative_path",
            b("var/lib/a;true\n"),
            vec!["line 1", "not an absolute path"],
        ),
        (
            "root_itself",
            b("/;true\n"),
            vec!["line 1", "root directory"],
        ),
        (
            "trailing_slash",
            b("/var/lib/a/;true\n"),
            vec!["line 1", "ends with '/'"],
        ),
        (
            "dot_dot_escape",
            b("/var/lib/../../etc;true\n"),
            vec!["line 1", "'.' or '..'"],
        ),
        ("dot", b("/var/./lib;\n"), vec!["line 1", "'.' or '..'"]),
        (
            "empty_component",
            b("/var//lib;\n"),
            vec!["line 1", "empty component"],
        ),
        ("empty_path", b(";true\n"), vec!["line 1", "empty path"]),
        (
            "inside_the_state_root",
            b("/mnt/state/x;true\n"),
            vec!["line 1", "inside /mnt/state"],
        ),
        (
            "containing_the_pristine_root",
            b("/var/lib;true\n"),
            vec!["line 1", "contains /var/lib/use-ephemeral"],
        ),
        (
            "component_of_256_bytes",
            b(&long_component),
            vec!["line 1", "256 bytes"],
        ),
        ("path_past_4095_bytes", b(&too_long), vec!["line 1", "4095"]),
        (
            "unknown_flag",
            b("/var/lib/a;yes\n"),
            vec!["line 1", "neither"],
        ),
        (
            "bad_line_five",
            b(deep_bad),
            vec!["line 5", "not an absolute path"],
        ),
        (
            "binary_garbage",
            Node::Bytes(garbage(4096, b'/')),
            vec!["line "],
        ),
        ("too_large", b(&too_large), vec!["too large"]),
        ("fifo", Node::Fifo, vec!["FIFO"]),
        ("directory", Node::Dir, vec!["directory"]),
        ("char_device", Node::CharDev, vec!["character device"]),
        ("dangling_symlink", Node::Dangling, vec!["dangling"]),
        ("symlink_loop", Node::Loop, vec!["symbolic links"]),
        (
            "symlink_out_of_the_root",
            Node::LinkOut(b"/var/lib/evil;true\n".to_vec()),
            vec!["dangling"],
        ),
    ];
    for (name, node, want) in rows {
        cases.case(name, || {
            let ext = outside();
            let sb = Sandbox::new();
            sb.script("configure.d", "10-a", "echo must-not-run");
            fs::create_dir_all(sb.path("var/lib/use-ephemeral/var/lib/a")).unwrap();
            fs::write(sb.path("var/lib/use-ephemeral/var/lib/a/f"), "pristine").unwrap();
            fs::create_dir_all(sb.path("var/lib/app")).unwrap();
            place(&sb.path(REGISTRY), &node, ext.path());
            let before = freeze(&sb, ext.path());
            let mut want = want.clone();
            want.push("stateful-paths");
            for args in [
                &["run"][..],
                &["state", "seed"],
                &["state", "finalise"],
                &["state", "list"],
            ] {
                let o = go(orc(&sb).args(args));
                refused(&o, &want);
            }
            before.unchanged(&sb, ext.path());
            let o = go(orc(&sb).args(["state", "register", "/var/lib/app"]));
            refused(&o, &want);
            before.unchanged_but_the_lock(&sb, ext.path());
        });
    }
    cases.case("twenty_thousand_paths_are_read_in_linear_time", || {
        // 20,000 lines are 330 KB, far below the size limit: reading them must not take
        // quadratic time (a 16 MiB registry would then hang every boot for hours).
        let sb = Sandbox::new();
        let text: String = (0..20_000).map(|i| format!("/srv/p{i};true\n")).collect();
        write_mode(&sb.path(REGISTRY), &text, 0o644);
        let t = Instant::now();
        let o = output_within(
            orc(&sb).args(["state", "register", "/srv/new"]),
            Duration::from_secs(15),
        );
        expect_code(&o, 0);
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "took {:?}",
            t.elapsed()
        );
    });
    cases.case("register_with_a_corrupt_registry_creates_nothing", || {
        // Invalid input is found before anything changes: not even the lock file.
        let ext = outside();
        let sb = Sandbox::new();
        write_mode(&sb.path(REGISTRY), "/var/lib/mysql\r\n", 0o644);
        let before = freeze(&sb, ext.path());
        let o = go(orc(&sb).args(["state", "register", "/var/lib/app"]));
        assert_eq!(o.status.code(), Some(2), "{}", err(&o));
        before.unchanged(&sb, ext.path());
    });
    cases.finish();
}

#[test]
fn hostile_paths_to_register_exit_2_and_leave_the_registry_alone() {
    let mut cases = Cases::new("register");
    let rows: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "newline",
            b"/var/lib/a\norc: error: forged".to_vec(),
            "newline",
        ),
        (
            "carriage_return",
            b"/var/lib/a\r".to_vec(),
            "control character",
        ),
        ("escape", b"/var/lib/\x1b[2J".to_vec(), "control character"),
        ("semicolon", b"/var/lib/a;true".to_vec(), "';'"),
        ("relative", b"var/lib/a".to_vec(), "not an absolute path"),
        ("root", b"/".to_vec(), "root directory"),
        ("trailing_slash", b"/var/lib/a/".to_vec(), "ends with '/'"),
        ("dot_dot", b"/var/lib/../../etc".to_vec(), "'.' or '..'"),
        (
            "state_root",
            b"/mnt/state/var/lib/a".to_vec(),
            "inside /mnt/state",
        ),
        (
            "long_component",
            format!("/var/{}", "x".repeat(256)).into_bytes(),
            "256 bytes",
        ),
        ("too_long", "/d".repeat(2100).into_bytes(), "4095"),
    ];
    for (name, path, why) in rows {
        cases.case(name, || {
            let ext = outside();
            let sb = Sandbox::new();
            write_mode(&sb.path(REGISTRY), "/var/lib/kept;true\n", 0o644);
            let before = freeze(&sb, ext.path());
            let p = std::ffi::OsStr::from_bytes(&path);
            for mut c in [
                {
                    let mut c = orc(&sb);
                    c.args(["state", "register", "--leave-symlink"]).arg(p);
                    c
                },
                {
                    let mut c = orc(&sb);
                    c.args(["register-state-path"]).arg(p);
                    c
                },
            ] {
                let o = go(&mut c);
                refused(&o, &["cannot register", why]);
            }
            before.unchanged_but_the_lock(&sb, ext.path());
        });
    }
    cases.case("an_invalid_path_creates_nothing", || {
        // Invalid input is found before anything changes: not even the lock file.
        let ext = outside();
        let sb = Sandbox::new();
        let before = freeze(&sb, ext.path());
        let o = go(orc(&sb).args(["state", "register", "relative/path"]));
        refused(&o, &["cannot register", "not an absolute path"]);
        before.unchanged(&sb, ext.path());
    });
    cases.finish();
}

// ---------------------------------------------------------------------------------------
// Input: container specs
// ---------------------------------------------------------------------------------------

/// A box with one script that must not run, a fake engine, and the config naming docker.
fn spec_box() -> (Sandbox, PathBuf) {
    let sb = Sandbox::new();
    sb.script("configure.d", "10-a", "echo must-not-run");
    sb.config(r#"{"containers": {"engine": "docker", "infra_version": "1"}}"#);
    let bin = sb.path("fake-bin");
    fake_docker(&bin);
    (sb, bin)
}

#[test]
fn spec_attacks_fail_their_container_naming_the_file_before_any_engine_call() {
    let mut cases = Cases::new("spec_values");
    let spec = |extra: &str| format!(r#"{{"name": "db", "image": "busybox"{extra}}}"#);
    let rows: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "array_field_by_position",
            r#"["db", "busybox", ["sh"]]"#.into(),
            vec!["line 1, column 1", "JSON object"],
        ),
        ("empty", String::new(), vec!["empty"]),
        (
            "image_is_a_flag_privileged",
            r#"{"name": "db", "image": "--privileged"}"#.into(),
            vec!["image"],
        ),
        (
            "image_is_a_short_flag",
            r#"{"name": "db", "image": "-v/:/host"}"#.into(),
            vec!["image"],
        ),
        (
            "image_with_a_space",
            r#"{"name": "db", "image": "busybox --privileged"}"#.into(),
            vec!["image"],
        ),
        (
            "image_with_a_newline",
            r#"{"name": "db", "image": "busybox\n--privileged"}"#.into(),
            vec!["image"],
        ),
        (
            "image_empty",
            r#"{"name": "db", "image": ""}"#.into(),
            vec!["image"],
        ),
        (
            "name_empty",
            r#"{"name": "", "image": "busybox"}"#.into(),
            vec!["name"],
        ),
        (
            "name_a_flag",
            r#"{"name": "-x", "image": "busybox"}"#.into(),
            vec!["name"],
        ),
        (
            "name_with_slash",
            r#"{"name": "a/b", "image": "busybox"}"#.into(),
            vec!["name"],
        ),
        (
            "name_dot_dot",
            r#"{"name": "..", "image": "busybox"}"#.into(),
            vec!["name"],
        ),
        (
            "name_129_bytes",
            format!(r#"{{"name": "{}", "image": "busybox"}}"#, "n".repeat(129)),
            vec!["name"],
        ),
        (
            "name_non_ascii",
            r#"{"name": "dé", "image": "busybox"}"#.into(),
            vec!["name"],
        ),
        (
            "name_with_newline",
            r#"{"name": "db\nforged", "image": "busybox"}"#.into(),
            vec!["name"],
        ),
        (
            "env_key_with_newline",
            spec(r#", "env": {"A\nB": "x"}"#),
            vec!["env"],
        ),
        ("env_key_empty", spec(r#", "env": {"": "x"}"#), vec!["env"]),
        (
            "env_key_with_equals",
            spec(r#", "env": {"A=B": "x"}"#),
            vec!["env"],
        ),
        (
            "env_value_with_nul",
            spec(r#", "env": {"A": "x\u0000--privileged"}"#),
            vec!["env"],
        ),
        (
            "command_with_nul",
            spec(r#", "command": ["sh", "-c", "true\u0000; rm -rf /data"]"#),
            vec!["command"],
        ),
        (
            "label_reserved",
            spec(r#", "labels": {"orc.managed": "false"}"#),
            vec!["labels"],
        ),
        (
            "volume_target_relative",
            spec(r#", "volumes": [{"source": "data", "target": "data"}]"#),
            vec!["volumes[0].target"],
        ),
        (
            "volume_source_climbs_out",
            spec(r#", "volumes": [{"source": "../../../../etc", "target": "/x"}]"#),
            vec!["volumes[0].source"],
        ),
        (
            "volume_absolute_source_climbs_out",
            spec(r#", "volumes": [{"source": "/srv/../../etc", "target": "/x"}]"#),
            vec!["volumes[0].source"],
        ),
        (
            "volume_source_with_colon",
            spec(r#", "volumes": [{"source": "/:/host", "target": "/x"}]"#),
            vec!["volumes[0]"],
        ),
        (
            "volume_target_with_comma",
            spec(r#", "volumes": [{"source": "data", "target": "/x,ro"}]"#),
            vec!["volumes[0]"],
        ),
        (
            "volume_as_array",
            spec(r#", "volumes": [["/", "/host", false]]"#),
            vec!["volumes"],
        ),
        (
            "hooks_as_array",
            spec(r#", "hooks": [["sh", "-c", "id"]]"#),
            vec!["hooks"],
        ),
        (
            "port_not_a_number",
            spec(r#", "ports": ["80:http"]"#),
            vec!["ports"],
        ),
        ("port_zero", spec(r#", "ports": ["0"]"#), vec!["ports"]),
        (
            "memory_not_a_size",
            spec(r#", "memory": "lots""#),
            vec!["memory"],
        ),
        (
            "depends_on_itself",
            spec(r#", "depends_on": ["db"]"#),
            vec!["depends_on"],
        ),
        (
            "depends_on_unknown",
            spec(r#", "depends_on": ["ghost"]"#),
            vec!["depends_on", "ghost"],
        ),
        (
            "stop_timeout_negative",
            spec(r#", "stop_timeout": -1"#),
            vec!["line 1, column"],
        ),
        (
            "image_archive_relative",
            spec(r#", "image_archive": "images/db.tar""#),
            vec!["image_archive"],
        ),
        (
            "unknown_field_userns_mode",
            spec(r#", "userns_mode": "host""#),
            vec!["unknown field `userns_mode`"],
        ),
        (
            "hook_pre_create_empty_program",
            spec(r#", "hooks": {"pre_create": [""]}"#),
            vec!["hooks"],
        ),
        (
            "hook_post_start_empty_program",
            spec(r#", "hooks": {"post_start": [""]}"#),
            vec!["hooks"],
        ),
        (
            "hook_store_data_empty_program",
            spec(r#", "hooks": {"store_data": [""]}"#),
            vec!["hooks"],
        ),
        (
            "hook_restore_data_empty_program",
            spec(r#", "hooks": {"restore_data": [""]}"#),
            vec!["hooks"],
        ),
        (
            "entrypoint_empty",
            spec(r#", "entrypoint": []"#),
            vec!["entrypoint"],
        ),
        (
            "duplicate_key",
            r#"{"name": "db", "name": "web", "image": "busybox"}"#.into(),
            vec!["duplicate"],
        ),
    ];
    for (name, text, want) in rows {
        cases.case(name, || {
            let ext = outside();
            let (sb, bin) = spec_box();
            write_mode(&sb.path(&format!("{SPECS}/db.json")), &text, 0o644);
            let before = freeze(&sb, ext.path());
            let mut want = want.clone();
            want.push("containers.d/db.json");
            // Listing refuses it (the table names it too); nothing changes.
            let o = go(orc_with_bin(&sb, &bin).args(["containers", "list"]));
            assert_eq!(o.status.code(), Some(2), "{}", err(&o));
            assert_eq!(err(&o).lines().count(), 1, "{}", err(&o));
            for w in &want {
                assert!(err(&o).contains(w), "{w:?}: {}", err(&o));
            }
            before.unchanged(&sb, ext.path());
            // The step and reconcile fail that container only (exit 1, naming it).
            let o = go(orc_with_bin(&sb, &bin).args(["containers", "reconcile"]));
            assert_eq!(o.status.code(), Some(1), "{}", err(&o));
            for w in &want {
                assert!(out(&o).contains(w), "{w:?}: {}", out(&o));
            }
            let o = go(orc_with_bin(&sb, &bin).arg("run"));
            spec_step_failed(&o, &sb, &want);
            assert_eq!(calls(&bin), "", "the engine was called");
        });
    }
    let pairs: Vec<(&str, &str, &str, Vec<&str>)> = vec![
        (
            "duplicate_names_in_two_files",
            r#"{"name": "db", "image": "busybox"}"#,
            r#"{"name": "db", "image": "busybox:2"}"#,
            vec!["b.json", "already used", "a.json"],
        ),
        (
            "dependency_cycle_across_files",
            r#"{"name": "db", "image": "busybox", "depends_on": ["web"]}"#,
            r#"{"name": "web", "image": "busybox", "depends_on": ["db"]}"#,
            vec!["cycle"],
        ),
    ];
    for (name, a, bb, want) in pairs {
        cases.case(name, || {
            let ext = outside();
            let (sb, bin) = spec_box();
            write_mode(&sb.path(&format!("{SPECS}/a.json")), a, 0o644);
            write_mode(&sb.path(&format!("{SPECS}/b.json")), bb, 0o644);
            let _ = ext;
            let o = go(orc_with_bin(&sb, &bin).arg("run"));
            spec_step_failed(&o, &sb, &want);
            assert_eq!(calls(&bin), "", "the engine was called");
        });
    }
    cases.finish();
}

#[test]
fn spec_files_of_the_wrong_kind_fail_the_step_without_hanging() {
    let mut cases = Cases::new("spec_kinds");
    let rows: Vec<(&str, &str, Node, Vec<&str>)> = vec![
        ("fifo", "db.json", Node::Fifo, vec!["db.json", "FIFO"]),
        (
            "directory",
            "db.json",
            Node::Dir,
            vec!["db.json", "directory"],
        ),
        (
            "char_device",
            "db.json",
            Node::CharDev,
            vec!["db.json", "character device"],
        ),
        ("socket", "db.json", Node::Socket, vec!["db.json"]),
        (
            "dangling_symlink",
            "db.json",
            Node::Dangling,
            vec!["db.json", "dangling"],
        ),
        (
            "symlink_loop",
            "db.json",
            Node::Loop,
            vec!["db.json", "symbolic links"],
        ),
        (
            "symlink_out_of_the_root",
            "db.json",
            Node::LinkOut(br#"{"name": "evil", "image": "--privileged"}"#.to_vec()),
            vec!["db.json", "dangling"],
        ),
        (
            "too_large",
            "db.json",
            Node::Bytes({
                let mut v = br#"{"name": "db", "image": ""#.to_vec();
                v.extend(std::iter::repeat_n(b'a', 17 << 20));
                v.extend(b"\"}");
                v
            }),
            vec!["db.json", "too large"],
        ),
        (
            "invalid_utf8",
            "db.json",
            Node::Bytes(b"{\"name\": \"db\xff\", \"image\": \"busybox\"}".to_vec()),
            vec!["db.json", "line 1, column"],
        ),
        (
            "binary_garbage",
            "db.json",
            Node::Bytes(garbage(4096, b'{')),
            vec!["db.json", "line "],
        ),
    ];
    for (name, file, node, want) in rows {
        cases.case(name, || {
            let ext = outside();
            let (sb, bin) = spec_box();
            place(&sb.path(&format!("{SPECS}/{file}")), &node, ext.path());
            let o = go(orc_with_bin(&sb, &bin).arg("run"));
            spec_step_failed(&o, &sb, &want);
            assert_eq!(calls(&bin), "", "the engine was called");
        });
    }
    for (name, node, want) in [
        (
            "specs_dir_a_file",
            b("{}"),
            vec!["containers.d", "not a directory"],
        ),
        (
            "specs_dir_dangling",
            Node::Dangling,
            vec!["containers.d", "dangling"],
        ),
        (
            "specs_dir_fifo",
            Node::Fifo,
            vec!["containers.d", "not a directory"],
        ),
    ] {
        cases.case(name, || {
            let ext = outside();
            let (sb, bin) = spec_box();
            place(&sb.path(SPECS), &node, ext.path());
            let o = go(orc_with_bin(&sb, &bin).arg("run"));
            spec_step_failed(&o, &sb, &want);
            assert_eq!(calls(&bin), "", "the engine was called");
        });
    }
    cases.finish();
}

#[test]
fn editor_and_hidden_files_in_containers_d_are_not_specs() {
    let mut cases = Cases::new("spec_names");
    let junk = b"{ half-written by an editor".to_vec();
    let rows: Vec<(&str, Node)> = vec![
        (".#db.json", Node::Dangling),
        (".db.json.swp", Node::Bytes(garbage(512, 0))),
        (".db.json", Node::Bytes(junk.clone())),
        ("db.json~", Node::Bytes(junk.clone())),
        ("#db.json#", Node::Bytes(junk.clone())),
        ("db.json.bak", Node::Bytes(junk.clone())),
        (".json", Node::Bytes(junk.clone())),
        ("4913", Node::Bytes(Vec::new())),
        ("db.json.tmp", Node::Fifo),
        ("README", b("notes")),
    ];
    for (file, node) in rows {
        cases.case(file, || {
            let ext = outside();
            let (sb, bin) = spec_box();
            fs::remove_file(sb.base().join("configure.d/10-a")).unwrap();
            write_mode(
                &sb.path(&format!("{SPECS}/web.json")),
                r#"{"name": "web", "image": "busybox"}"#,
                0o644,
            );
            place(&sb.path(&format!("{SPECS}/{file}")), &node, ext.path());
            let before_out = snapshot(ext.path());
            let o = go(orc_with_bin(&sb, &bin).arg("run"));
            expect_code(&o, 0);
            let e = err(&o);
            // Not read, but named in a warning with the reason (issue 18).
            assert!(!e.contains("error"), "{file} was looked at: {e}");
            assert!(
                e.lines()
                    .any(|l| l.contains("warning") && l.contains(&format!("containers.d/{file}: "))),
                "{file} was not named in a warning: {e}"
            );
            let c = calls(&bin);
            // A container is made by `run -d` (or `create` when a hook runs in between).
            assert!(c.contains(" --name web "), "web was not created: {c}");
            assert_eq!(c.matches(" --name ").count(), 1, "{c}");
            assert_same(&before_out, &snapshot(ext.path()), "the outside dir");
        });
    }
    cases.finish();
}

#[test]
fn another_boxs_containers_on_a_shared_engine_are_never_touched() {
    let mut cases = Cases::new("scope");
    cases.case("stranger_with_another_scope", || {
        let (sb, bin) = spec_box();
        fs::remove_file(sb.base().join("configure.d/10-a")).unwrap();
        sb.config(r#"{"containers": {"engine": "docker", "infra_version": "1", "scope": "box-a"}}"#);
        write_mode(
            &sb.path(&format!("{SPECS}/web.json")),
            r#"{"name": "web", "image": "busybox"}"#,
            0o644,
        );
        fs::write(
            bin.join("ps"),
            r#"{"Id":"stranger-id","Names":"db","State":"running","Labels":{"orc.managed":"true","orc.scope":"box-b","orc.infra-version":"1","orc.spec-hash":"abc","orc.store-data":"","orc.stop-timeout":""}}
"#,
        )
        .unwrap();
        let o = go(orc_with_bin(&sb, &bin).arg("run"));
        expect_code(&o, 0);
        let c = calls(&bin);
        assert!(
            c.lines().any(|l| !l.starts_with("ps ")),
            "orc made no engine call but ps: nothing to check\n{c}"
        );
        for line in c.lines().filter(|l| !l.starts_with("ps ")) {
            assert!(
                !line.contains("stranger-id") && !line.split(' ').any(|w| w == "db"),
                "orc touched another box's container: {line}\nall calls:\n{c}"
            );
        }
    });
    cases.finish();
}

// ---------------------------------------------------------------------------------------
// Input: the base dir, phase dirs, scripts and environment.d entries
// ---------------------------------------------------------------------------------------

#[test]
fn phase_and_base_dirs_of_the_wrong_kind_exit_2_naming_them() {
    let mut cases = Cases::new("phase_dirs");
    let rows: Vec<(&str, &str, Node, Vec<&str>)> = vec![
        (
            "phase_dir_dangling",
            "configure.d",
            Node::Dangling,
            vec!["configure.d", "dangling"],
        ),
        (
            "phase_dir_dangling_into_a_missing_dir",
            "configure.d",
            Node::DanglingDeep,
            vec!["configure.d", "dangling"],
        ),
        (
            "phase_dir_regular_file",
            "configure.d",
            b("#!/bin/sh\n"),
            vec!["configure.d", "not a directory"],
        ),
        (
            "phase_dir_fifo",
            "configure.d",
            Node::Fifo,
            vec!["configure.d", "not a directory"],
        ),
        (
            "phase_dir_loop",
            "configure.d",
            Node::Loop,
            vec!["configure.d", "symlinks"],
        ),
        (
            "phase_dir_out_of_the_root",
            "configure.d",
            Node::LinkOut(b"not a dir".to_vec()),
            vec!["configure.d", "dangling"],
        ),
        (
            "migrations_dir_dangling",
            "migrations.d",
            Node::Dangling,
            vec!["migrations.d", "dangling"],
        ),
        (
            "post_configure_dir_char_device",
            "post-configure.d",
            Node::CharDev,
            vec!["post-configure.d", "not a directory"],
        ),
        (
            "error_dir_a_file",
            "error.d",
            b("x"),
            vec!["error.d", "not a directory"],
        ),
        (
            "error_dir_dangling",
            "error.d",
            Node::DanglingDeep,
            vec!["error.d", "dangling"],
        ),
        (
            "environment_dir_a_file",
            "environment.d",
            b("export A=1\n"),
            vec!["environment.d", "not a directory"],
        ),
        (
            "environment_dir_dangling",
            "environment.d",
            Node::Dangling,
            vec!["environment.d", "dangling"],
        ),
    ];
    for (name, dir, node, want) in rows {
        cases.case(name, || {
            let ext = outside();
            let sb = Sandbox::new();
            sb.script("pre-configure.d", "10-a", "echo must-not-run");
            place(&sb.base().join(dir), &node, ext.path());
            let before = freeze(&sb, ext.path());
            for args in [&["run"][..], &["list"]] {
                let o = go(orc(&sb).args(args));
                refused(&o, &want);
            }
            before.unchanged(&sb, ext.path());
        });
    }
    let base_rows: Vec<(&str, Node, Vec<&str>)> = vec![
        ("base_env_a_file", b("x"), vec!["base", "not a directory"]),
        (
            "base_env_dangling",
            Node::Dangling,
            vec!["base", "dangling"],
        ),
        (
            "base_env_dangling_into_a_missing_dir",
            Node::DanglingDeep,
            vec!["base", "dangling"],
        ),
        ("base_env_fifo", Node::Fifo, vec!["base", "not a directory"]),
    ];
    for (name, node, want) in base_rows {
        cases.case(name, || {
            let ext = outside();
            let sb = Sandbox::new();
            let base = sb.path("base");
            place(&base, &node, ext.path());
            let before = freeze(&sb, ext.path());
            let o = go(orc(&sb).env("OS_REFRESH_CONFIG_BASE_DIR", &base).arg("run"));
            refused(&o, &want);
            before.unchanged(&sb, ext.path());
        });
    }
    cases.case("base_env_proc_self_fd_0", || {
        let ext = outside();
        let sb = Sandbox::new();
        let before = freeze(&sb, ext.path());
        let o = go(orc(&sb)
            .env("OS_REFRESH_CONFIG_BASE_DIR", "/proc/self/fd/0")
            .arg("run"));
        refused(&o, &["/proc/self/fd/0", "not a directory"]);
        before.unchanged(&sb, ext.path());
    });
    cases.case("base_env_empty", || {
        // `OS_REFRESH_CONFIG_BASE_DIR=` must not silently become the host's `/` (or the
        // current directory): it is invalid input.
        let ext = outside();
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo must-not-run");
        let before = freeze(&sb, ext.path());
        let o = go(orc(&sb).env("OS_REFRESH_CONFIG_BASE_DIR", "").arg("run"));
        refused(&o, &["OS_REFRESH_CONFIG_BASE_DIR"]);
        before.unchanged(&sb, ext.path());
    });
    cases.case("base_config_a_file", || {
        let ext = outside();
        let sb = Sandbox::new();
        write_mode(&sb.path("srv/base"), "x", 0o644);
        sb.config(r#"{"base_dir": "/srv/base"}"#);
        let before = freeze(&sb, ext.path());
        let o = go(orc(&sb).arg("run"));
        refused(&o, &["srv/base", "not a directory"]);
        before.unchanged(&sb, ext.path());
    });
    cases.finish();
}

#[test]
fn odd_entries_in_phase_dirs_are_skipped_with_a_reason_and_never_block() {
    let mut cases = Cases::new("script_entries");
    // Where the script outside the root would leave its mark: this run's own name.
    let pwned = std::env::temp_dir().join(format!("orc-hostile-pwned-{}", std::process::id()));
    let rows: Vec<(&str, Node, &str)> = vec![
        ("10-fifo", Node::Fifo, "not a regular file"),
        ("10-chardev", Node::CharDev, "not a regular file"),
        ("10-socket", Node::Socket, "not a regular file"),
        ("10-dir", Node::Dir, "is a directory"),
        ("10-dangling", Node::Dangling, "dangling"),
        ("10-loop", Node::Loop, ""),
        (
            "10-out",
            Node::LinkOut(format!("#!/bin/sh\ntouch {}\n", pwned.display()).into_bytes()),
            "dangling",
        ),
        (
            "10-noexec",
            b("#!/bin/sh\necho must-not-run\n"),
            "not executable",
        ),
        (
            "10-dotted.sh",
            b("#!/bin/sh\necho must-not-run\n"),
            "name does not match",
        ),
        (
            "10-backup~",
            b("#!/bin/sh\necho must-not-run\n"),
            "name does not match",
        ),
    ];
    for (name, node, why) in rows {
        cases.case(name, || {
            let ext = outside();
            let sb = Sandbox::new();
            sb.script("configure.d", "20-ok", "echo ok-ran");
            let p = sb.base().join("configure.d").join(name);
            place(&p, &node, ext.path());
            if matches!(node, Node::Fifo | Node::CharDev | Node::Socket) {
                fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
            }
            let before_out = snapshot(ext.path());
            let o = go(orc(&sb).arg("run"));
            expect_code(&o, 0);
            assert_eq!(out(&o), "ok-ran\n");
            let e = err(&o);
            let line = e
                .lines()
                .find(|l| l.contains("skipping") && l.contains(name))
                .unwrap_or_else(|| panic!("no warning names {name}: {e}"));
            assert!(line.contains(why), "{line}");
            assert_same(&before_out, &snapshot(ext.path()), "the outside dir");
            assert!(!pwned.exists());
        });
    }
    cases.case("name_of_255_bytes_runs", || {
        let sb = Sandbox::new();
        let name = format!("10-{}", "x".repeat(252));
        sb.script("configure.d", &name, "echo long-ran");
        let o = go(orc(&sb).arg("run"));
        expect_code(&o, 0);
        assert_eq!(out(&o), "long-ran\n");
    });
    cases.case("more_scripts_than_file_descriptors", || {
        // A plan keeps scripts open; running out of fds must not stop the run.
        let sb = Sandbox::new();
        for i in 1..=300 {
            sb.script("configure.d", &format!("{i}-s"), "true");
        }
        sb.script("configure.d", "999-last", "echo last-ran");
        let o = go(Command::new("sh")
            .arg("-c")
            .arg("ulimit -n 128 && exec \"$@\"")
            .arg("sh")
            .args(orc(&sb).get_program().to_str())
            .arg("--root")
            .arg(sb.root())
            .arg("run")
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    guard_bin().display(),
                    std::env::var("PATH").unwrap()
                ),
            ));
        expect_code(&o, 0);
        assert_eq!(out(&o), "last-ran\n");
    });
    cases.case("invalid_utf8_name_is_skipped_with_a_warning", || {
        let sb = Sandbox::new();
        sb.script("configure.d", "20-ok", "echo ok-ran");
        let p = sb
            .base()
            .join("configure.d")
            .join(std::ffi::OsStr::from_bytes(b"10-\xff\xfe"));
        write_mode(&p, "#!/bin/sh\necho must-not-run\n", 0o755);
        let o = go(orc(&sb).arg("run"));
        expect_code(&o, 0);
        assert_eq!(out(&o), "ok-ran\n");
        assert!(err(&o).contains("name does not match"), "{}", err(&o));
        no_raw_controls(&err(&o));
    });
    cases.case("environment_d_fifo_and_dir_are_skipped", || {
        let ext = outside();
        let sb = Sandbox::new();
        sb.script("configure.d", "20-ok", "echo \"ok-$A\"");
        write_mode(
            &sb.base().join("environment.d/10-a"),
            "export A=set\n",
            0o644,
        );
        place(
            &sb.base().join("environment.d/20-fifo"),
            &Node::Fifo,
            ext.path(),
        );
        place(
            &sb.base().join("environment.d/30-dir"),
            &Node::Dir,
            ext.path(),
        );
        let o = go(orc(&sb).arg("run"));
        expect_code(&o, 0);
        assert_eq!(out(&o), "ok-set\n");
        let e = err(&o);
        assert!(e.contains("20-fifo: not a regular file"), "{e}");
        assert!(e.contains("30-dir: not a regular file"), "{e}");
    });
    cases.case("base_dir_deeper_than_path_max", || {
        // A base dir whose path is longer than PATH_MAX still runs: orc walks it by fd.
        let sb = Sandbox::new();
        let mut dir = nix::fcntl::open(
            sb.root(),
            nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        let part = "d".repeat(40);
        let mut long = sb.root().to_path_buf();
        for _ in 0..120 {
            nix::sys::stat::mkdirat(
                &dir,
                part.as_str(),
                nix::sys::stat::Mode::from_bits_truncate(0o755),
            )
            .unwrap();
            dir = nix::fcntl::openat(
                &dir,
                part.as_str(),
                nix::fcntl::OFlag::O_DIRECTORY,
                nix::sys::stat::Mode::empty(),
            )
            .unwrap();
            long.push(&part);
        }
        assert!(long.as_os_str().len() > 4096);
        nix::sys::stat::mkdirat(
            &dir,
            "configure.d",
            nix::sys::stat::Mode::from_bits_truncate(0o755),
        )
        .unwrap();
        let cd = nix::fcntl::openat(
            &dir,
            "configure.d",
            nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        let f = nix::fcntl::openat(
            &cd,
            "10-deep",
            nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_WRONLY,
            nix::sys::stat::Mode::from_bits_truncate(0o755),
        )
        .unwrap();
        nix::unistd::write(&f, b"#!/bin/sh\necho deep-ran\n").unwrap();
        drop(f);
        let o = go(orc(&sb).env("OS_REFRESH_CONFIG_BASE_DIR", &long).args([
            "run",
            "--skip-state",
            "--skip-containers",
        ]));
        expect_code(&o, 0);
        assert_eq!(out(&o), "deep-ran\n");
    });
    cases.finish();
}

#[test]
fn run_parts_regex_is_checked_and_cannot_stall_orc() {
    let mut cases = Cases::new("run_parts_regex");
    cases.case("invalid_regex", || {
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo must-not-run");
        let before = snapshot(sb.root());
        let o = go(orc(&sb).env("RUN_PARTS_REGEX", "(").arg("run"));
        refused(&o, &["RUN_PARTS_REGEX"]);
        assert_same(&before, &snapshot(sb.root()), "the root");
    });
    cases.case("invalid_utf8_regex", || {
        // Not silently replaced by the default rule: invalid input.
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo must-not-run");
        let before = snapshot(sb.root());
        let o = go(orc(&sb)
            .env(
                "RUN_PARTS_REGEX",
                std::ffi::OsStr::from_bytes(b"^[a\xff]+$"),
            )
            .arg("run"));
        refused(&o, &["RUN_PARTS_REGEX"]);
        assert_same(&before, &snapshot(sb.root()), "the root");
    });
    cases.case("huge_regex", || {
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo ran");
        let huge = format!("^({}10-a)$", "x|".repeat(50_000));
        let t = Instant::now();
        let o = go(orc(&sb).env("RUN_PARTS_REGEX", &huge).arg("run"));
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "took {:?}",
            t.elapsed()
        );
        match o.status.code() {
            Some(0) => assert_eq!(out(&o), "ran\n"),
            _ => refused(&o, &["RUN_PARTS_REGEX"]),
        }
    });
    cases.case("pathological_regex_on_long_names", || {
        let sb = Sandbox::new();
        for i in 0..50 {
            sb.script("configure.d", &format!("{i}-{}", "a".repeat(200)), "true");
        }
        let t = Instant::now();
        let o = go(orc(&sb)
            .env("RUN_PARTS_REGEX", "^(a*)*(a|aa)*b$")
            .arg("list"));
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "took {:?}",
            t.elapsed()
        );
        expect_code(&o, 0);
    });
    cases.case("regex_allowing_newlines_still_escapes_logs", || {
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a\norc: error: forged", "exit 3");
        let o = go(orc(&sb).env("RUN_PARTS_REGEX", "(?s)^.*$").arg("run"));
        expect_code(&o, 1);
        assert!(!err(&o).is_empty(), "a failed run said nothing on stderr");
        for l in err(&o).lines() {
            assert!(l.starts_with("orc: "), "a line orc did not write: {l:?}");
            assert!(!l.starts_with("orc: error: forged"), "forged: {l:?}");
        }
    });
    cases.finish();
}

// ---------------------------------------------------------------------------------------
// Names in log lines
// ---------------------------------------------------------------------------------------

/// True when no line of `text` was forged by a name (every line has orc's prefix).
#[track_caller]
fn lines_are_orcs(text: &str, prefix: &str) {
    assert!(!text.is_empty(), "nothing written: no line to check");
    no_raw_controls(text);
    for l in text.lines() {
        assert!(
            l.starts_with(prefix),
            "a line orc did not write: {l:?}\nall:\n{text}"
        );
        assert!(
            !l.starts_with(&format!("{prefix}error: forged")),
            "forged line: {l:?}"
        );
    }
}

#[test]
fn names_never_forge_a_log_line() {
    let mut cases = Cases::new("log_forging");
    let evil = "a\norc: error: forged";
    cases.case("script_name_with_newline", || {
        let sb = Sandbox::new();
        sb.script("configure.d", &format!("10-{evil}"), "echo must-not-run");
        let o = go(orc(&sb).arg("run"));
        expect_code(&o, 0);
        lines_are_orcs(&err(&o), "orc: ");
        let o = go(orc(&sb).arg("list"));
        expect_code(&o, 0);
        no_raw_controls(&out(&o));
        assert!(!out(&o).lines().any(|l| l.starts_with("orc: error: forged")));
    });
    cases.case("script_name_with_escape_and_cr", || {
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a\x1b[2J\rorc: error: forged", "exit 3");
        let o = go(orc(&sb).env("RUN_PARTS_REGEX", "(?s).*").arg("run"));
        expect_code(&o, 1);
        lines_are_orcs(&err(&o), "orc: ");
        let o = go(orc(&sb).arg("status"));
        no_raw_controls(&out(&o));
    });
    cases.case("failing_script_named_with_newline_in_status", || {
        let sb = Sandbox::new();
        sb.script("configure.d", &format!("10-{evil}"), "exit 4");
        let o = go(orc(&sb).env("RUN_PARTS_REGEX", "(?s).*").arg("run"));
        expect_code(&o, 1);
        lines_are_orcs(&err(&o), "orc: ");
        let o = go(orc(&sb).arg("status"));
        expect_code(&o, 1);
        assert!(
            !out(&o).lines().any(|l| l.starts_with("orc: error: forged")),
            "{}",
            out(&o)
        );
        no_raw_controls(&out(&o));
    });
    cases.case("environment_file_name_with_newline", || {
        let sb = Sandbox::new();
        write_mode(
            &sb.base().join(format!("environment.d/10-{evil}")),
            "export A=1\n",
            0o644,
        );
        let o = go(orc(&sb).arg("run"));
        expect_code(&o, 0);
        lines_are_orcs(&err(&o), "orc: ");
    });
    cases.case("spec_file_name_with_newline", || {
        let (sb, bin) = spec_box();
        write_mode(&sb.path(&format!("{SPECS}/{evil}.json")), "[1]", 0o644);
        let o = go(orc_with_bin(&sb, &bin).arg("run"));
        spec_step_failed(&o, &sb, &["JSON object"]);
        lines_are_orcs(&err(&o), "orc: ");
    });
    cases.case("config_key_with_newline", || {
        let sb = Sandbox::new();
        sb.config("{\"a\\norc: error: forged\": 1}");
        let o = go(orc(&sb).arg("run"));
        refused(&o, &[CONFIG, "unknown field"]);
        lines_are_orcs(&err(&o), "orc: ");
    });
    cases.case("config_flag_path_with_newline", || {
        let sb = Sandbox::new();
        let o = go(orc(&sb)
            .arg("--config")
            .arg(format!("/nonexistent/{evil}"))
            .arg("run"));
        refused(&o, &["no such file"]);
        lines_are_orcs(&err(&o), "orc: ");
    });
    cases.case("base_dir_name_with_newline", || {
        let sb = Sandbox::new();
        let base = sb.path(&format!("base-{evil}"));
        write_mode(&base, "x", 0o644);
        let o = go(orc(&sb).env("OS_REFRESH_CONFIG_BASE_DIR", &base).arg("run"));
        refused(&o, &["not a directory"]);
        lines_are_orcs(&err(&o), "orc: ");
    });
    cases.case("dib_run_parts_dir_with_newline", || {
        let sb = Sandbox::new();
        let o = go(orc(&sb)
            .arg("dib-run-parts")
            .arg(format!("/nonexistent/{evil}")));
        refused(&o, &["must exist"]);
        lines_are_orcs(&err(&o), "dib-run-parts: ");
    });
    cases.case("registry_path_with_escape", || {
        let sb = Sandbox::new();
        write_mode(
            &sb.path(REGISTRY),
            "/var/lib/\x1b[2J\rorc: error: forged;true\n",
            0o644,
        );
        let o = go(orc(&sb).arg("run"));
        refused(&o, &["stateful-paths", "line 1"]);
        lines_are_orcs(&err(&o), "orc: ");
    });
    cases.case("register_path_with_newline", || {
        let sb = Sandbox::new();
        let o = go(orc(&sb).args(["state", "register", &format!("/var/lib/{evil}")]));
        refused(&o, &["cannot register"]);
        lines_are_orcs(&err(&o), "orc: ");
    });
    cases.finish();
}

// ---------------------------------------------------------------------------------------
// The lock file
// ---------------------------------------------------------------------------------------

/// A live process leading a group of its own, and a dead holder's line naming that group
/// in the format orc writes (src/lock.rs `Holder::line`): this boot, and the start-tick
/// window of the group's leader, read here from /proc.
fn victim_and_holder_line() -> (Child, String) {
    let mut victim = Command::new("sleep");
    std::os::unix::process::CommandExt::process_group(&mut victim, 0);
    let victim = victim.arg("300").spawn().unwrap();
    let vpid = victim.id();
    let stat = fs::read_to_string(format!("/proc/{vpid}/stat")).unwrap();
    let start: u64 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let ns = std::os::unix::fs::MetadataExt::ino(&fs::metadata("/proc/self/ns/pid").unwrap());
    let line = format!(
        "pid=999999 since=2026-01-01T00:00:00Z cmd=run start=1 boot={} ns={ns} groups={vpid}:{start}:{start}\n",
        boot.trim()
    );
    (victim, line)
}

#[test]
fn lock_file_attacks() {
    let mut cases = Cases::new("lock_file");
    let lock = "run/os-refresh-config.lock";
    let rows: Vec<(&str, Node, Vec<&str>)> = vec![
        (
            "symlink_out_of_the_root",
            Node::LinkOut(b"precious lock target".to_vec()),
            vec!["os-refresh-config.lock", "symlink"],
        ),
        (
            "dangling_symlink",
            Node::Dangling,
            vec!["os-refresh-config.lock", "symlink"],
        ),
        ("fifo", Node::Fifo, vec!["os-refresh-config.lock", "FIFO"]),
        (
            "directory",
            Node::Dir,
            vec!["os-refresh-config.lock", "directory"],
        ),
        (
            "char_device",
            Node::CharDev,
            vec!["os-refresh-config.lock", "character device"],
        ),
        ("socket", Node::Socket, vec!["os-refresh-config.lock"]),
    ];
    for (name, node, want) in rows {
        cases.case(name, || {
            let ext = outside();
            let sb = Sandbox::new();
            sb.script("configure.d", "10-a", "echo must-not-run");
            place(&sb.path(lock), &node, ext.path());
            let before = freeze(&sb, ext.path());
            for args in [
                &["run"][..],
                &["state", "register", "/var/lib/x"],
                &["state", "seed"],
            ] {
                let o = go(orc(&sb).args(args));
                refused(&o, &want);
            }
            before.unchanged(&sb, ext.path());
        });
    }
    cases.case("config_lock_file_is_the_root", || {
        let ext = outside();
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo must-not-run");
        sb.config(r#"{"lock_file": "/"}"#);
        let before = freeze(&sb, ext.path());
        let o = go(orc(&sb).arg("run"));
        refused(&o, &[]);
        before.unchanged(&sb, ext.path());
    });
    cases.case("garbage_left_in_a_free_lock", || {
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo ran");
        let mut g = garbage(1 << 20, b'p');
        g.extend(b"\npid=1 pgid=1 from=0 to=99999999999\n");
        place(&sb.lock_file(), &Node::Bytes(g), Path::new("/nonexistent"));
        let o = go(orc(&sb).arg("run"));
        // Either cleared and used, or refused as not a lock file: never a kill or a panic.
        match o.status.code() {
            Some(0) => {
                assert_eq!(out(&o), "ran\n");
                assert_eq!(
                    fs::read(sb.lock_file()).unwrap(),
                    b"",
                    "the holder line is cleared"
                );
            }
            _ => refused(&o, &["os-refresh-config.lock"]),
        }
        no_raw_controls(&err(&o));
    });
    cases.case(
        "lockfile_naming_a_file_with_data_does_not_clobber_it",
        || {
            // `--lockfile /etc/fstab` (a typo) must not truncate the file: upstream only
            // opens it for append and flocks it.
            let ext = outside();
            let sb = Sandbox::new();
            sb.script("configure.d", "10-a", "echo ran");
            let precious = ext.path().join("precious");
            let o = go(orc(&sb).arg("run").arg("--lockfile").arg(&precious));
            assert!(
                matches!(o.status.code(), Some(0 | 2)),
                "exit {:?}: {}",
                o.status.code(),
                err(&o)
            );
            assert_eq!(
                fs::read_to_string(&precious).unwrap(),
                "keep me",
                "orc truncated the file named as its lock"
            );
        },
    );
    cases.case("garbage_in_a_busy_lock", || {
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo must-not-run");
        place(
            &sb.lock_file(),
            &Node::Bytes(garbage(4096, b'\x1b')),
            Path::new("/nonexistent"),
        );
        let holder = fs::OpenOptions::new()
            .read(true)
            .open(sb.lock_file())
            .unwrap();
        holder.lock().unwrap();
        let o = go(orc(&sb).arg("run"));
        expect_code(&o, 11);
        let e = err(&o);
        assert_eq!(e.lines().count(), 1, "{e:?}");
        no_raw_controls(&e);
        assert!(e.contains("os-refresh-config.lock"), "{e}");
        assert_eq!(out(&o), "");
    });
    cases.case(
        "holder_line_in_a_root_only_lock_file_ends_its_group",
        || {
            // The control for the case below: the same line, in a lock file only root could
            // have written, is believed and its process group ended. So the line is one orc
            // reads, and the next case's survival is the trust check's doing.
            let sb = Sandbox::new();
            sb.script("configure.d", "10-a", "echo ran");
            let (mut victim, line) = victim_and_holder_line();
            write_mode(&sb.lock_file(), &line, 0o644);
            let o = go(orc(&sb).arg("run"));
            let status = victim.try_wait().unwrap();
            if status.is_none() {
                let _ = victim.kill();
            }
            let _ = victim.wait();
            expect_code(&o, 0);
            assert!(
                status.is_some(),
                "a believable holder line did not end its group:\n{}",
                err(&o)
            );
            assert!(err(&o).contains("ended 1 leftover process"), "{}", err(&o));
        },
    );
    cases.case("holder_line_forged_by_another_user_kills_nothing", || {
        // Another user who can write the lock file (it made it, mode 0666) forges a
        // "crashed holder" line naming a victim's process group: root's orc must not
        // end processes on the word of a file another user controls.
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo ran");
        let (mut victim, line) = victim_and_holder_line();
        let vpid = victim.id();
        write_mode(&sb.lock_file(), &line, 0o666);
        std::os::unix::fs::chown(sb.lock_file(), Some(1000), Some(1000)).unwrap();
        let before = fs::read(sb.lock_file()).unwrap();
        let o = go(orc(&sb).arg("run"));
        // orc ends a dead holder's groups before it runs anything: by its exit, a
        // victim it ended is gone.
        let alive = victim.try_wait().unwrap().is_none();
        let _ = victim.kill();
        let _ = victim.wait();
        // The file is not orc's (another user's): refused whole, left as it was.
        expect_code(&o, 2);
        assert!(
            alive,
            "orc killed process group {vpid} named by a lock file uid 1000 wrote:\n{}",
            err(&o)
        );
        assert!(err(&o).contains("not orc's lock file"), "{}", err(&o));
        assert_eq!(fs::read(sb.lock_file()).unwrap(), before);
        assert_eq!(out(&o), "", "a script ran");
    });
    cases.case("two_runs_at_once_never_overlap", || {
        let sb = Sandbox::new();
        let started = sb.path("started");
        let go_on = sb.path("go-on");
        sb.script(
            "configure.d",
            "10-hold",
            &format!("touch {}; {}", started.display(), hold_until(&go_on)),
        );
        let first = spawn_piped(orc(&sb).arg("run"));
        wait_for(&started);
        let o = go(orc(&sb).arg("run"));
        expect_code(&o, 11);
        assert!(
            err(&o).contains(&format!("pid={}", first.id())),
            "{}",
            err(&o)
        );
        release(&go_on);
        let o = wait_output(first, LIMIT);
        expect_code(&o, 0);
    });
    cases.finish();
}

// ---------------------------------------------------------------------------------------
// The report dir
// ---------------------------------------------------------------------------------------

#[test]
fn report_dir_attacks() {
    let mut cases = Cases::new("report_dir");
    for (name, node) in [
        ("last_run_garbage", Node::Bytes(garbage(4096, b'{'))),
        ("last_run_array", b("[1, 2]")),
        ("last_run_fifo", Node::Fifo),
        ("last_run_char_device", Node::CharDev),
    ] {
        cases.case(name, || {
            let sb = Sandbox::new();
            sb.script("configure.d", "10-a", "echo ran");
            place(
                &sb.path("var/lib/orc/last-run.json"),
                &node,
                Path::new("/none"),
            );
            let before = snapshot(sb.root());
            for args in [&["status"][..], &["status", "--json"]] {
                let o = go(orc(&sb).args(args));
                refused(&o, &["last-run.json"]);
            }
            assert_same(&before, &snapshot(sb.root()), "the root");
            let o = go(orc(&sb).arg("run"));
            expect_code(&o, 0);
            let o = go(orc(&sb).arg("status"));
            expect_code(&o, 0);
        });
    }
    cases.case("last_run_a_directory", || {
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo must-not-run");
        fs::create_dir_all(sb.path("var/lib/orc/last-run.json")).unwrap();
        let o = go(orc(&sb).arg("run"));
        assert_ne!(o.status.code(), Some(101), "{}", err(&o));
        assert_ne!(o.status.code(), Some(0));
        assert!(err(&o).contains("last-run.json"), "{}", err(&o));
        assert_eq!(out(&o), "", "no script runs without a report");
    });
    cases.case("last_run_symlink_out_of_the_root", || {
        let ext = outside();
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo ran");
        let o = go(orc(&sb).arg("run"));
        expect_code(&o, 0);
        let mut forged = sb.last_report();
        forged["run_id"] = "00000099-OUTSIDE".into();
        let forged = serde_json::to_vec(&forged).unwrap();
        let l = sb.path("var/lib/orc/last-run.json");
        fs::remove_file(&l).unwrap();
        place(&l, &Node::LinkOut(forged), ext.path());
        let before = freeze(&sb, ext.path());
        let o = go(orc(&sb).arg("status"));
        assert!(
            !out(&o).contains("OUTSIDE"),
            "status read outside the root: {}",
            out(&o)
        );
        assert_ne!(o.status.code(), Some(0));
        before.unchanged(&sb, ext.path());
    });
    cases.case("runs_dir_full_of_junk", || {
        let ext = outside();
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo ran");
        let runs = sb.path("var/lib/orc/runs");
        fs::create_dir_all(&runs).unwrap();
        for i in 0..30 {
            fs::write(runs.join(format!("{i:08}-junk.json")), garbage(100, b'x')).unwrap();
        }
        link_climbing_out(
            &runs.join("00000031-link.json"),
            &ext.path().join("precious"),
        );
        symlink(ext.path().join("sub"), runs.join("00000032-abs.json")).unwrap();
        nix::unistd::mkfifo(
            &runs.join("00000033-fifo.json"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        fs::create_dir_all(runs.join("00000034-dir.json/deep")).unwrap();
        fs::write(
            runs.join(std::ffi::OsStr::from_bytes(b"0000003\xff-x.json")),
            "x",
        )
        .unwrap();
        fs::write(runs.join("00000035-\nforged.json"), "x").unwrap();
        fs::write(runs.join(".json"), "x").unwrap();
        let before_out = snapshot(ext.path());
        let mut ids = Vec::new();
        for _ in 0..2 {
            let o = go(orc(&sb).arg("run"));
            expect_code(&o, 0);
            no_raw_controls(&err(&o));
            ids.push(sb.last_report()["run_id"].as_str().unwrap().to_string());
        }
        assert!(ids[0] < ids[1], "run ids sort by run order: {ids:?}");
        let o = go(orc(&sb).arg("status"));
        expect_code(&o, 0);
        assert!(out(&o).contains(&ids[1]), "{}", out(&o));
        assert_same(&before_out, &snapshot(ext.path()), "the outside dir");
        for id in &ids {
            assert!(runs.join(format!("{id}.json")).exists(), "{id} was pruned");
        }
    });
    cases.case("sequence_wrap_keeps_run_ids_unique_and_ordered", || {
        // A report named with the highest sequence (left by anything) must not make the
        // next runs reuse ids (two runs in one second would overwrite each other) or
        // sort before older runs.
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo ran");
        let runs = sb.path("var/lib/orc/runs");
        fs::create_dir_all(&runs).unwrap();
        fs::write(runs.join("99999999-20000101T000000Z.json"), "{}").unwrap();
        let mut ids = Vec::new();
        for _ in 0..3 {
            let o = go(orc(&sb).arg("run"));
            expect_code(&o, 0);
            ids.push(sb.last_report()["run_id"].as_str().unwrap().to_string());
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids, "three runs, three ids in run order: {ids:?}");
        for id in &ids {
            assert!(
                runs.join(format!("{id}.json")).exists(),
                "{id}'s report is gone"
            );
        }
        // Run order as orc defines it (the sequence, then the name): the newest run last.
        let seq = |n: &str| -> u64 {
            let b = n.as_bytes();
            if b.len() > 9 && b[8] == b'-' && b[..8].iter().all(u8::is_ascii_digit) {
                n[..8].parse().unwrap()
            } else {
                0
            }
        };
        let mut names: Vec<String> = fs::read_dir(&runs)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort_by(|a, b| seq(a).cmp(&seq(b)).then_with(|| a.cmp(b)));
        assert_eq!(
            names.last().unwrap(),
            &format!("{}.json", ids[2]),
            "the newest run is not last in run order: {names:?}"
        );
    });
    cases.case("world_writable_runs_dir_is_made_root_only", || {
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo ran");
        let runs = sb.path("var/lib/orc/runs");
        fs::create_dir_all(&runs).unwrap();
        fs::set_permissions(&runs, fs::Permissions::from_mode(0o777)).unwrap();
        let o = go(orc(&sb).arg("run"));
        expect_code(&o, 0);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&runs), 0o700);
        for e in fs::read_dir(&runs).unwrap() {
            assert_eq!(mode(&e.unwrap().path()), 0o600);
        }
    });
    cases.finish();
}

// ---------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------

const SECRET: &str = "hunter2-s3cret-value";

/// Everything orc wrote for a run: stderr, every report, `status` and `status --json`.
fn written_by_orc(sb: &Sandbox, run: &Output) -> String {
    let mut s = err(run);
    s.push_str(&all_reports(sb));
    for args in [&["status"][..], &["status", "--json"]] {
        let o = go(orc(sb).args(args));
        s.push_str(&out(&o));
        s.push_str(&err(&o));
    }
    s
}

#[test]
fn environment_d_values_never_reach_anything_orc_writes() {
    let mut cases = Cases::new("secrets");
    let rows: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "exported_value_in_bash_error",
            format!("export DB_PASSWORD={SECRET}\ncd \"$DB_PASSWORD\"\n"),
            vec!["run", "--timeout=30"],
        ),
        (
            "unexported_value_in_bash_error",
            format!("DB_PASSWORD={SECRET}\ncd \"$DB_PASSWORD\"\n"),
            vec!["run"],
        ),
        (
            "value_with_spaces",
            format!("export DB_PASSWORD='{SECRET} and more'\ncd \"$DB_PASSWORD\"\n"),
            vec!["run"],
        ),
        (
            "multi_line_value_quoted_by_bash",
            format!("export DB_PASSWORD=$'{SECRET}\\nsecond-line-{SECRET}'\ncd \"$DB_PASSWORD\"\n"),
            vec!["run"],
        ),
        (
            "value_with_a_tab_quoted_by_bash",
            format!("export DB_PASSWORD=$'{SECRET}\\tx'\ncd \"$DB_PASSWORD\"\n"),
            vec!["run"],
        ),
        (
            "value_echoed_by_the_file_then_failing",
            format!("export DB_PASSWORD={SECRET}\necho \"$DB_PASSWORD\" >&2\nfalse\n"),
            vec!["run"],
        ),
        (
            "value_in_xtrace",
            format!("set -x\nexport DB_PASSWORD={SECRET}\ncd \"$DB_PASSWORD\"\n"),
            vec!["run"],
        ),
        (
            "environment_d_timeout",
            format!("export DB_PASSWORD={SECRET}\nsleep 30\n"),
            vec!["run", "--timeout=1"],
        ),
        (
            "value_printed_by_a_failing_script",
            format!("export DB_PASSWORD={SECRET}\n"),
            vec!["run"],
        ),
    ];
    for (name, file, args) in rows {
        cases.case(name, || {
            let sb = Sandbox::new();
            write_mode(&sb.base().join("environment.d/10-db"), &file, 0o644);
            sb.script(
                "configure.d",
                "10-leaky",
                "echo \"password is $DB_PASSWORD\"; echo \"$DB_PASSWORD\" >&2; exit 1",
            );
            let o = go(orc(&sb).args(&args));
            expect_code(&o, 1);
            let all = written_by_orc(&sb, &o);
            // The script's own stdout passes through unchanged; orc's own words may not
            // carry the value (the report keeps the script's output tail, redacted).
            let orcs: String = all
                .lines()
                .filter(|l| *l != SECRET && !l.starts_with("password is"))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                !orcs.contains(SECRET) && !orcs.contains("hunter2"),
                "the value leaked:\n{}",
                orcs.lines()
                    .filter(|l| l.contains("hunter2"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            let runs = sb.path("var/lib/orc/runs");
            assert_eq!(
                fs::metadata(&runs).unwrap().permissions().mode() & 0o777,
                0o700
            );
            for e in fs::read_dir(&runs).unwrap() {
                let m = fs::metadata(e.unwrap().path())
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(m & 0o777, 0o600, "a report readable by others");
            }
        });
    }
    cases.finish();
}

// ---------------------------------------------------------------------------------------
// Honest status
// ---------------------------------------------------------------------------------------

#[test]
fn a_killed_run_reads_crashed_and_the_next_run_ends_its_leftovers() {
    let mut cases = Cases::new("crash");
    for (name, sig, ignore_term, in_env) in [
        ("sigkill", Signal::SIGKILL, false, false),
        ("sighup", Signal::SIGHUP, false, false),
        (
            "sigkill_leftover_ignores_sigterm",
            Signal::SIGKILL,
            true,
            false,
        ),
        (
            "sigkill_while_sourcing_environment_d",
            Signal::SIGKILL,
            false,
            true,
        ),
    ] {
        cases.case(name, || {
            let sb = Sandbox::new();
            let started = sb.path("started");
            let idle = idle_script(&sb, ignore_term);
            sb.script("configure.d", "05-first", "echo first");
            let o = go(orc(&sb).arg("run").arg("--only=post-configure"));
            expect_code(&o, 0);
            let previous = sb.last_report()["run_id"].as_str().unwrap().to_string();
            let body = format!("touch {}\nsh {}\n", started.display(), idle.display());
            let long = if in_env {
                let p = sb.base().join("environment.d/10-long");
                write_mode(&p, &body, 0o644);
                p
            } else {
                sb.script("configure.d", "10-long", &body)
            };
            let mut run = orc(&sb)
                .arg("run")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            wait_for(&started);
            let needle = idle.display().to_string();
            let t = Instant::now();
            while live_processes_mentioning(&needle).is_empty() {
                assert!(t.elapsed() < Duration::from_secs(10), "the script never started idling");
                thread::sleep(Duration::from_millis(10));
            }
            signal(&run, sig);
            run.wait().unwrap();
            let leftover = live_processes_mentioning(&needle);
            assert!(!leftover.is_empty(), "the test needs a leftover");
            let o = go(orc(&sb).arg("status"));
            assert_eq!(o.status.code(), Some(1), "status of a crashed run: {}", out(&o));
            assert!(out(&o).contains("crashed"), "{}", out(&o));
            assert!(!out(&o).contains(&previous), "status shows the previous run: {}", out(&o));
            let o = go(orc(&sb).args(["status", "--json"]));
            let j: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
            assert_eq!(j["result"], "crashed");
            // The next run: the leftover group ends before any script of it runs.
            fs::remove_file(&long).unwrap();
            let overlap = sb.path("overlap");
            sb.script(
                "configure.d",
                "20-check",
                &format!(
                    "for p in /proc/[0-9]*; do if grep -qs '{needle}' $p/cmdline && ! grep -qs '^State:.Z' $p/status; then echo $p >> {}; fi; done; true",
                    overlap.display()
                ),
            );
            let o = go(orc(&sb).arg("run"));
            expect_code(&o, 0);
            assert!(!overlap.exists(), "the crashed run's step overlapped the next run");
            assert!(live_processes_mentioning(&needle).is_empty(), "leftover still running");
            let o = go(orc(&sb).arg("status"));
            expect_code(&o, 0);
            let crashed: Vec<String> = fs::read_dir(sb.path("var/lib/orc/runs"))
                .unwrap()
                .map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
                .filter(|t| t.contains("\"crashed\""))
                .collect();
            assert_eq!(crashed.len(), 1, "the killed run's report is recorded as crashed");
        });
    }

    for (name, hook) in [
        ("sigkill_while_the_engine_cli_hangs", false),
        ("sigkill_while_a_pre_create_hook_hangs", true),
    ] {
        cases.case(name, || {
            // The engine CLI and hooks run in process groups of their own, like scripts:
            // a crashed run's hung call must not outlive it into the next run.
            let (sb, bin) = spec_box();
            fs::remove_file(sb.base().join("configure.d/10-a")).unwrap();
            let idle = idle_script(&sb, false);
            let spec = sb.path(&format!("{SPECS}/db.json"));
            let plain = r#"{"name": "db", "image": "busybox"}"#;
            if hook {
                write_mode(
                    &spec,
                    &format!(
                        r#"{{"name": "db", "image": "busybox", "hooks": {{"pre_create": ["sh", "{}"]}}}}"#,
                        idle.display()
                    ),
                    0o644,
                );
            } else {
                write_mode(&spec, plain, 0o644);
                fs::write(bin.join("hang-ps"), "").unwrap();
            }
            let needle = if hook {
                idle.display().to_string()
            } else {
                bin.join("docker").display().to_string()
            };
            let mut run = orc_with_bin(&sb, &bin)
                .arg("run")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let t = Instant::now();
            while live_processes_mentioning(&needle).is_empty() {
                assert!(t.elapsed() < Duration::from_secs(10), "never hung");
                thread::sleep(Duration::from_millis(10));
            }
            signal(&run, Signal::SIGKILL);
            run.wait().unwrap();
            let o = go(orc(&sb).arg("status"));
            assert!(out(&o).contains("crashed"), "{}", out(&o));
            let _ = fs::remove_file(bin.join("hang-ps"));
            write_mode(&spec, plain, 0o644);
            let o = go(orc_with_bin(&sb, &bin).arg("run"));
            let left = live_processes_mentioning(&needle);
            for pid in &left {
                // Clean up after a failure: the leftover leads its own process group.
                let _ = nix::sys::signal::killpg(Pid::from_raw(*pid), Signal::SIGKILL);
            }
            expect_code(&o, 0);
            assert!(
                left.is_empty(),
                "the crashed run's {} still ran during the next run: pids {left:?}",
                if hook { "pre_create hook" } else { "docker ps" }
            );
        });
    }
    cases.finish();
}

/// A report as orc wrote it, for crafting.
fn report_template() -> serde_json::Value {
    let sb = Sandbox::new();
    let o = go(orc(&sb).arg("run"));
    expect_code(&o, 0);
    sb.last_report()
}

#[test]
fn status_tells_a_dead_run_from_a_live_one() {
    let mut cases = Cases::new("settle");
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_string();
    let start_of = |pid: u32| -> u64 {
        let s = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let rest = &s[s.rfind(')').unwrap() + 1..];
        rest.split_whitespace().nth(19).unwrap().parse().unwrap()
    };
    let mut live = Command::new("sleep").arg("60").spawn().unwrap();
    let live_pid = live.id();
    let live_start = start_of(live_pid);
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let rows: Vec<(&str, u32, u64, String, &str)> = vec![
        ("dead_pid", dead_pid, 1, boot.clone(), "crashed"),
        (
            "reused_pid",
            live_pid,
            live_start + 1000,
            boot.clone(),
            "crashed",
        ),
        (
            "previous_boot",
            live_pid,
            live_start,
            "00000000-other-boot".into(),
            "crashed",
        ),
        ("pid_1_claimed", 1, 0, boot.clone(), "crashed"),
        ("live", live_pid, live_start, boot.clone(), "running"),
    ];
    let template = report_template();
    for (name, pid, start, boot_id, want) in rows {
        cases.case(name, || {
            let sb = Sandbox::new();
            let mut r = template.clone();
            r["run_id"] = "00000001-20260101T000000Z".into();
            r["result"] = "running".into();
            r["exit_code"] = serde_json::Value::Null;
            r.as_object_mut().unwrap().remove("ended");
            r["pid"] = pid.into();
            r["pid_start"] = start.into();
            r["boot_id"] = boot_id.clone().into();
            let runs = sb.path("var/lib/orc/runs");
            fs::create_dir_all(&runs).unwrap();
            fs::write(
                runs.join("00000001-20260101T000000Z.json"),
                serde_json::to_vec(&r).unwrap(),
            )
            .unwrap();
            symlink(
                "runs/00000001-20260101T000000Z.json",
                sb.path("var/lib/orc/last-run.json"),
            )
            .unwrap();
            let o = go(orc(&sb).arg("status"));
            assert!(out(&o).contains(&format!(": {want}")), "{}", out(&o));
            if want == "crashed" {
                assert_eq!(o.status.code(), Some(1));
            }
            let o = go(orc(&sb).args(["status", "--json"]));
            let j: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
            assert_eq!(j["result"], want);
        });
    }
    cases.case("a_real_run_in_progress", || {
        let sb = Sandbox::new();
        let started = sb.path("started");
        let go_on = sb.path("go-on");
        sb.script(
            "configure.d",
            "10-wait",
            &format!("touch {}; {}", started.display(), hold_until(&go_on)),
        );
        let run = spawn_piped(orc(&sb).arg("run"));
        wait_for(&started);
        let o = go(orc(&sb).arg("status"));
        assert!(
            out(&o).contains(&format!(": running (pid {})", run.id())),
            "{}",
            out(&o)
        );
        release(&go_on);
        let o = wait_output(run, LIMIT);
        expect_code(&o, 0);
        let o = go(orc(&sb).args(["status", "--wait"]));
        expect_code(&o, 0);
        assert!(out(&o).contains(": ok"), "{}", out(&o));
    });
    let _ = live.kill();
    let _ = live.wait();
    cases.finish();
}

#[test]
fn a_clock_set_back_never_hides_the_new_run() {
    let mut cases = Cases::new("clock_back");
    for (name, names) in [
        (
            "sequenced_reports_from_the_future",
            (1..=25)
                .map(|i| format!("{i:08}-2099123123{i:02}00Z.json"))
                .collect::<Vec<_>>(),
        ),
        (
            "unsequenced_reports_from_the_future",
            (1..=25)
                .map(|i| format!("2099123123{i:02}00Z.json"))
                .collect::<Vec<_>>(),
        ),
        (
            "mixed",
            (1..=12)
                .map(|i| format!("{i:08}-2099123123{i:02}00Z.json"))
                .chain((1..=12).map(|i| format!("2098123123{i:02}00.123456Z.json")))
                .collect::<Vec<_>>(),
        ),
    ] {
        cases.case(name, || {
            let sb = Sandbox::new();
            sb.script("configure.d", "10-a", "echo ran");
            let template = {
                let o = go(orc(&sb).arg("run"));
                expect_code(&o, 0);
                sb.last_report()
            };
            let runs = sb.path("var/lib/orc/runs");
            for e in fs::read_dir(&runs).unwrap() {
                fs::remove_file(e.unwrap().path()).unwrap();
            }
            for n in &names {
                let mut r = template.clone();
                r["run_id"] = n.trim_end_matches(".json").into();
                r["started"] = "2099-12-31T23:00:00.000Z".into();
                fs::write(runs.join(n), serde_json::to_vec(&r).unwrap()).unwrap();
            }
            let l = sb.path("var/lib/orc/last-run.json");
            fs::remove_file(&l).unwrap();
            symlink(format!("runs/{}", names.last().unwrap()), &l).unwrap();
            let o = go(orc(&sb).arg("run"));
            expect_code(&o, 0);
            let id = sb.last_report()["run_id"].as_str().unwrap().to_string();
            assert!(
                runs.join(format!("{id}.json")).exists(),
                "the new run was pruned"
            );
            let o = go(orc(&sb).arg("status"));
            expect_code(&o, 0);
            assert!(
                out(&o).contains(&id),
                "status does not show the new run: {}",
                out(&o)
            );
            let n = fs::read_dir(&runs).unwrap().count();
            assert_eq!(n, 20, "the newest 20 are kept");
            // One more run: the previous one is still there (pruning is by run order).
            let o = go(orc(&sb).arg("run"));
            expect_code(&o, 0);
            assert!(
                runs.join(format!("{id}.json")).exists(),
                "the previous run was pruned"
            );
        });
    }
    cases.finish();
}

#[test]
fn interrupted_and_timed_out_steps_keep_what_was_done() {
    let mut cases = Cases::new("interrupted");
    let big_box = || {
        let sb = Sandbox::new();
        let p = sb.path("var/lib/use-ephemeral/var/lib");
        fs::create_dir_all(p.join("a")).unwrap();
        fs::write(p.join("a/f"), "small").unwrap();
        for d in 0..40 {
            let dir = p.join(format!("big/d{d}"));
            fs::create_dir_all(&dir).unwrap();
            for f in 0..750 {
                fs::write(dir.join(format!("f{f}")), "x").unwrap();
            }
        }
        write_mode(&sb.path(REGISTRY), "/var/lib/a;\n/var/lib/big;\n", 0o644);
        sb
    };
    for (name, args) in [
        ("run_sigterm_mid_seed", &["run"][..]),
        ("state_seed_sigterm_mid_seed", &["state", "seed"]),
    ] {
        cases.case(name, || {
            let sb = big_box();
            let child = spawn_piped(orc(&sb).args(args));
            let small = sb.path("mnt/state/var/lib/a");
            wait_for(&small);
            signal(&child, Signal::SIGTERM);
            let o = wait_output(child, LIMIT);
            expect_code(&o, 143);
            let big = sb.path("mnt/state/var/lib/big");
            assert!(!big.exists(), "race lost: big was seeded before the signal");
            if args[0] == "run" {
                let r = sb.last_report();
                assert_eq!(r["result"], "interrupted");
                let state = r["state"].as_array().unwrap();
                assert!(
                    state
                        .iter()
                        .any(|s| s["path"] == "/var/lib/a" && s["outcome"] == "seeded"),
                    "the outcome of the path already seeded was dropped: {state:?}"
                );
            } else {
                assert!(out(&o).contains("/var/lib/a: seeded"), "{}", out(&o));
            }
            let o = go(orc(&sb).arg("run"));
            expect_code(&o, 0);
            assert!(big.exists());
        });
    }
    cases.case("environment_d_timeout_reads_timeout", || {
        let sb = Sandbox::new();
        write_mode(
            &sb.base().join("environment.d/10-slow"),
            "sleep 30\n",
            0o644,
        );
        sb.script("configure.d", "10-a", "echo must-not-run");
        let t = Instant::now();
        let o = go(orc(&sb).args(["run", "--timeout=1"]));
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "took {:?}",
            t.elapsed()
        );
        expect_code(&o, 1);
        assert_eq!(out(&o), "");
        let r = sb.last_report();
        assert_eq!(r["result"], "timeout");
        let e = r["error"].as_str().unwrap_or_default();
        assert!(e.contains("10-slow") && e.contains("timed out"), "{e}");
        assert!(e.len() < 1000, "the error is one readable line: {e:?}");
        let o = go(orc(&sb).arg("status"));
        assert!(out(&o).contains(": timeout"), "{}", out(&o));
    });
    cases.case("lock_wait_is_waited_not_overhead", || {
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo ran");
        fs::create_dir_all(sb.path("run")).unwrap();
        let holder = fs::File::create(sb.lock_file()).unwrap();
        holder.lock().unwrap();
        let (child, _log) = spawn_waiting(orc(&sb).args(["run", "--wait"]));
        // The lock stays held for a measured time once orc waits for it.
        thread::sleep(Duration::from_millis(1500));
        drop(holder);
        let o = wait_output(child, LIMIT);
        expect_code(&o, 0);
        let r = sb.last_report();
        let (waited, overhead, dur) = (
            r["waited_ms"].as_f64().unwrap(),
            r["overhead_ms"].as_f64().unwrap(),
            r["duration_ms"].as_f64().unwrap(),
        );
        assert!(waited >= 1400.0, "waited_ms {waited}");
        assert!(overhead < 1000.0, "overhead_ms {overhead} counts the wait");
        assert!(dur < 1400.0, "duration_ms {dur} counts the wait");
    });
    cases.case("reading_inputs_is_not_lock_wait", || {
        // Nobody holds the lock: `waited_ms` is ~0 however long orc read its inputs.
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo ran");
        let text: String = (0..5_000).map(|i| format!("/srv/p{i};\n")).collect();
        write_mode(&sb.path(REGISTRY), &text, 0o644);
        let o = go(orc(&sb).args(["run", "--skip-state"]));
        expect_code(&o, 0);
        let o = go(orc(&sb).arg("run"));
        expect_code(&o, 0);
        let waited = sb.last_report()["waited_ms"].as_f64().unwrap();
        assert!(
            waited < 200.0,
            "waited_ms {waited} with no other holder of the lock"
        );
    });
    cases.case("a_hung_engine_is_not_orcs_overhead", || {
        let (sb, bin) = spec_box();
        fs::remove_file(sb.base().join("configure.d/10-a")).unwrap();
        write_mode(
            &sb.path(&format!("{SPECS}/db.json")),
            r#"{"name": "db", "image": "busybox"}"#,
            0o644,
        );
        fs::write(bin.join("hang-ps"), "").unwrap();
        let o = go(orc_with_bin(&sb, &bin).args(["run", "--timeout=2"]));
        expect_code(&o, 1);
        let r = sb.last_report();
        let overhead = r["overhead_ms"].as_f64().unwrap();
        assert!(
            overhead < 1000.0,
            "overhead_ms {overhead}: 2 s waiting on a hung docker counted as orc's own time"
        );
    });
    cases.finish();
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

#[test]
fn the_engine_cli_and_hooks_obey_the_deadline_and_signals() {
    let mut cases = Cases::new("engine_processes");
    // `run -d` makes a container (create + start only where a hook or networks need it).
    for hang in ["ps", "network", "run"] {
        cases.case(&format!("hung_docker_{hang}_obeys_timeout"), || {
            let (sb, bin) = spec_box();
            fs::remove_file(sb.base().join("configure.d/10-a")).unwrap();
            write_mode(
                &sb.path(&format!("{SPECS}/db.json")),
                r#"{"name": "db", "image": "busybox"}"#,
                0o644,
            );
            fs::write(bin.join(format!("hang-{hang}")), "").unwrap();
            let t = Instant::now();
            let o = go(orc_with_bin(&sb, &bin).args(["run", "--timeout=2"]));
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "took {:?}",
                t.elapsed()
            );
            expect_code(&o, 1);
            assert!(
                bin.join("got-term").exists(),
                "docker {hang} never got SIGTERM"
            );
            let r = sb.last_report();
            assert_eq!(r["result"], "timeout");
            let step = r["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["kind"] == "containers")
                .unwrap()
                .clone();
            assert_eq!(step["result"], "timeout", "{step}");
            assert!(live_processes_mentioning(&bin.display().to_string()).is_empty());
        });
    }
    cases.case("hung_pre_create_hook_obeys_timeout", || {
        let (sb, bin) = spec_box();
        fs::remove_file(sb.base().join("configure.d/10-a")).unwrap();
        write_mode(
            &sb.path(&format!("{SPECS}/db.json")),
            r#"{"name": "db", "image": "busybox", "hooks": {"pre_create": ["sh", "-c", "sleep 1000"]}}"#,
            0o644,
        );
        let t = Instant::now();
        let o = go(orc_with_bin(&sb, &bin).args(["run", "--timeout=2"]));
        assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
        expect_code(&o, 1);
        assert!(!calls(&bin).contains(" --name db "), "created after a failed hook");
    });
    cases.case("hung_docker_gets_sigterm_forwarded", || {
        let (sb, bin) = spec_box();
        fs::remove_file(sb.base().join("configure.d/10-a")).unwrap();
        write_mode(
            &sb.path(&format!("{SPECS}/db.json")),
            r#"{"name": "db", "image": "busybox"}"#,
            0o644,
        );
        fs::write(bin.join("hang-ps"), "").unwrap();
        let child = spawn_piped(orc_with_bin(&sb, &bin).arg("run"));
        wait_for(&bin.join("hanging"));
        let t = Instant::now();
        signal(&child, Signal::SIGTERM);
        let o = wait_output(child, Duration::from_secs(30));
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "took {:?}",
            t.elapsed()
        );
        expect_code(&o, 143);
        assert!(bin.join("got-term").exists(), "docker never got SIGTERM");
        assert_eq!(sb.last_report()["result"], "interrupted");
        assert!(live_processes_mentioning(&bin.display().to_string()).is_empty());
    });
    cases.case("engine_cli_runs_in_its_own_process_group", || {
        let (sb, bin) = spec_box();
        write_mode(
            &sb.path(&format!("{SPECS}/db.json")),
            r#"{"name": "db", "image": "busybox"}"#,
            0o644,
        );
        fs::remove_file(sb.base().join("configure.d/10-a")).unwrap();
        let o = go(orc_with_bin(&sb, &bin).arg("run"));
        expect_code(&o, 0);
        let groups = fs::read_to_string(bin.join("groups")).unwrap();
        assert!(groups.lines().count() >= 3, "{groups}");
        for l in groups.lines() {
            let (pid, pgid) = l.split_once(' ').unwrap();
            assert_eq!(pid, pgid.trim(), "docker shares a process group: {l}");
        }
    });
    cases.finish();
}

#[test]
fn steps_background_processes_and_orcs_own_output() {
    let mut cases = Cases::new("step_processes");
    cases.case("daemon_keeps_a_working_stdout_after_orc_exits", || {
        let sb = Sandbox::new();
        let ok = sb.path("daemon-wrote");
        let go_on = sb.path("go-on");
        sb.script(
            "configure.d",
            "10-daemon",
            &format!(
                "({}; echo late-out; echo late-err >&2; touch {}) &\necho early",
                hold_until(&go_on),
                ok.display()
            ),
        );
        let mut child = spawn_piped(orc(&sb).arg("run"));
        let so = reader(child.stdout.take().unwrap());
        let se = reader(child.stderr.take().unwrap());
        // The daemon is held until orc has exited: an orc that waited for it never would.
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if t.elapsed() > Duration::from_secs(20) {
                release(&go_on);
                panic!("orc waited for the daemon");
            }
            thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(status.code(), Some(0));
        release(&go_on);
        let stdout = String::from_utf8(so.recv_timeout(Duration::from_secs(20)).unwrap()).unwrap();
        let stderr = String::from_utf8_lossy(&se.recv_timeout(Duration::from_secs(20)).unwrap())
            .into_owned();
        wait_for(&ok);
        assert_eq!(stdout, "early\nlate-out\n");
        assert!(stderr.contains("late-err"), "{stderr}");
    });
    cases.case("timed_out_step_with_orphans_ends_promptly", || {
        let sb = Sandbox::new();
        let idle = idle_script(&sb, false);
        sb.script(
            "configure.d",
            "10-forks",
            &format!(
                "sh -c 'sh {i} & sh {i} &'\nsh -c 'sh {i} &'\nsleep 1000",
                i = idle.display()
            ),
        );
        let t = Instant::now();
        let o = go(orc(&sb).args(["run", "--script-timeout=1"]));
        let took = t.elapsed();
        expect_code(&o, 1);
        assert!(
            took < Duration::from_secs(6),
            "the step's end waited {took:?}"
        );
        assert_eq!(sb.last_report()["steps"][1]["result"], "timeout");
        assert!(
            live_processes_mentioning(&idle.display().to_string()).is_empty(),
            "orphans survived the timeout"
        );
    });
    cases.case(
        "timed_out_step_whose_daemon_left_the_group_ends_promptly",
        || {
            // The step's group is gone at once; a daemon in a session of its own still holds
            // the output pipe. The step's end must not wait out the grace for it.
            let sb = Sandbox::new();
            let idle = idle_script(&sb, false);
            sb.script(
                "configure.d",
                "10-daemonises",
                &format!("setsid sh {} &\nsleep 1000", idle.display()),
            );
            let mut child = orc(&sb)
                .args(["run", "--script-timeout=1"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let t = Instant::now();
            let status = loop {
                if let Some(s) = child.try_wait().unwrap() {
                    break s;
                }
                assert!(t.elapsed() < LIMIT, "hung");
                thread::sleep(Duration::from_millis(10));
            };
            let took = t.elapsed();
            for pid in live_processes_mentioning(&idle.display().to_string()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            assert_eq!(status.code(), Some(1));
            assert!(
                took < Duration::from_secs(6),
                "the step's end waited {took:?}"
            );
        },
    );
    cases.case("closed_stdout_does_not_fail_the_run", || {
        let sb = Sandbox::new();
        sb.script(
            "configure.d",
            "10-a",
            "for i in $(seq 1000); do echo line $i; done",
        );
        sb.script("configure.d", "20-b", "echo more");
        let mut child = spawn_piped(orc(&sb).arg("run"));
        drop(child.stdout.take());
        let o = wait_output(child, LIMIT);
        assert_ne!(o.status.code(), Some(101), "{}", err(&o));
        let r = sb.last_report();
        assert_eq!(r["result"], "ok", "{r}");
        assert_eq!(r["steps"].as_array().unwrap().len(), 4, "{r}");
    });
    cases.case("sigterm_while_waiting_for_the_lock", || {
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo must-not-run");
        fs::create_dir_all(sb.path("run")).unwrap();
        let holder = fs::File::create(sb.lock_file()).unwrap();
        holder.lock().unwrap();
        let before = snapshot(sb.root());
        let (child, _log) = spawn_waiting(orc(&sb).args(["run", "--wait"]));
        let t = Instant::now();
        signal(&child, Signal::SIGTERM);
        let o = wait_output(child, LIMIT);
        assert!(t.elapsed() < Duration::from_secs(3));
        expect_code(&o, 143);
        assert_eq!(out(&o), "");
        assert_same(&before, &snapshot(sb.root()), "the root");
    });
    cases.case("sigint_while_sourcing_environment_d", || {
        let sb = Sandbox::new();
        let started = sb.path("sourcing");
        write_mode(
            &sb.base().join("environment.d/10-slow"),
            &format!("touch {}\nsleep 30\n", started.display()),
            0o644,
        );
        sb.script("configure.d", "10-a", "echo must-not-run");
        let child = spawn_piped(orc(&sb).arg("run"));
        wait_for(&started);
        signal(&child, Signal::SIGINT);
        let o = wait_output(child, Duration::from_secs(20));
        expect_code(&o, 130);
        assert_eq!(out(&o), "");
        assert_eq!(sb.last_report()["result"], "interrupted");
    });
    cases.finish();
}

// ---------------------------------------------------------------------------------------
// Valid but unusual input
// ---------------------------------------------------------------------------------------

/// `orc --root ROOT` (any bytes) with the engine guard on PATH.
fn orc_at(root: &Path) -> Command {
    let mut c = Command::new(bin());
    c.env_clear()
        .env(
            "PATH",
            format!(
                "{}:{}",
                guard_bin().display(),
                std::env::var("PATH").unwrap()
            ),
        )
        .env("LC_ALL", "C")
        .arg("--root")
        .arg(root);
    c
}

/// The last report lists exactly one skipped entry, ending in `tail` (its invalid bytes
/// shown as U+FFFD), with a reason.
#[track_caller]
fn skipped_in_the_report(sb: &Sandbox, tail: &str) {
    let r = sb.last_report();
    let skipped = r["skipped"].as_array().expect("a skipped list");
    assert_eq!(skipped.len(), 1, "{r:#}");
    let path = skipped[0]["path"].as_str().unwrap();
    assert!(path.ends_with(tail), "{path:?} does not end in {tail:?}");
    assert!(
        skipped[0]["reason"].as_str().is_some_and(|s| !s.is_empty()),
        "{r:#}"
    );
}

#[test]
fn names_that_are_not_utf8_are_valid_input_and_never_panic() {
    let mut cases = Cases::new("non_utf8");
    let raw = |b: &[u8]| std::ffi::OsStr::from_bytes(b).to_os_string();
    cases.case("skipped_script_name_in_the_report", || {
        let sb = Sandbox::new();
        sb.script("configure.d", "20-ok", "echo ok-ran");
        let p = sb.base().join("configure.d").join(raw(b"10-\xff"));
        write_mode(&p, "#!/bin/sh\n", 0o755);
        let o = go(orc(&sb).arg("run"));
        expect_code(&o, 0);
        assert_eq!(out(&o), "ok-ran\n");
        skipped_in_the_report(&sb, "configure.d/10-\u{fffd}");
        let o = go(orc(&sb).args(["status", "--json"]));
        expect_code(&o, 0);
    });
    cases.case("skipped_environment_file_name_in_the_report", || {
        let sb = Sandbox::new();
        sb.script("configure.d", "20-ok", "echo ok-ran");
        let p = sb.base().join("environment.d").join(raw(b"10-\xfe"));
        write_mode(&p, "export A=1\n", 0o644);
        let o = go(orc(&sb).arg("run"));
        expect_code(&o, 0);
        assert_eq!(out(&o), "ok-ran\n");
        skipped_in_the_report(&sb, "environment.d/10-\u{fffd}");
    });
    cases.case("list_json_with_a_skipped_name", || {
        let sb = Sandbox::new();
        let p = sb.base().join("configure.d").join(raw(b"10-\xff"));
        write_mode(&p, "#!/bin/sh\n", 0o755);
        let o = go(orc(&sb).args(["list", "--json"]));
        expect_code(&o, 0);
        serde_json::from_str::<serde_json::Value>(&out(&o)).unwrap();
    });
    cases.case("base_dir_name", || {
        let sb = Sandbox::new();
        let base = sb.path("x").join(raw(b"base-\xff"));
        write_mode(
            &base.join("configure.d/10-a"),
            "#!/bin/sh\necho base-ran\n",
            0o755,
        );
        let o = go(orc(&sb).env("OS_REFRESH_CONFIG_BASE_DIR", &base).arg("run"));
        expect_code(&o, 0);
        assert_eq!(out(&o), "base-ran\n");
        let o = go(orc(&sb).args(["status", "--json"]));
        expect_code(&o, 0);
    });
    cases.case("root_dir_name", || {
        let sb = Sandbox::new();
        let root = sb.path("x").join(raw(b"root-\xff"));
        write_mode(
            &root.join(format!("{BASE}/configure.d/10-a")),
            "#!/bin/sh\necho root-ran\n",
            0o755,
        );
        let o = go(orc_at(&root).arg("run"));
        expect_code(&o, 0);
        assert_eq!(out(&o), "root-ran\n");
        let o = go(orc_at(&root).args(["status", "--json"]));
        expect_code(&o, 0);
    });
    cases.case("registered_path", || {
        let sb = Sandbox::new();
        let path = raw(b"/var/lib/app-\xff");
        let o = go(orc(&sb)
            .args(["state", "register", "--leave-symlink"])
            .arg(&path));
        expect_code(&o, 0);
        let pristine = sb
            .path("var/lib/use-ephemeral/var/lib")
            .join(raw(b"app-\xff"));
        fs::create_dir_all(&pristine).unwrap();
        fs::write(pristine.join("f"), "data").unwrap();
        for args in [
            &["state", "list"][..],
            &["state", "list", "--json"],
            &["run"],
        ] {
            let o = go(orc(&sb).args(args));
            expect_code(&o, 0);
        }
        assert!(
            sb.path("mnt/state/var/lib")
                .join(raw(b"app-\xff"))
                .join("f")
                .exists()
        );
        let o = go(orc(&sb).args(["status", "--json"]));
        expect_code(&o, 0);
    });
    cases.case("spec_file_name", || {
        let (sb, bin) = spec_box();
        fs::remove_file(sb.base().join("configure.d/10-a")).unwrap();
        let p = sb.path(SPECS).join(raw(b"web-\xff.json"));
        write_mode(&p, r#"{"name": "web", "image": "busybox"}"#, 0o644);
        let o = go(orc_with_bin(&sb, &bin).arg("run"));
        expect_code(&o, 0);
        assert!(calls(&bin).contains(" --name web "), "{}", calls(&bin));
    });
    cases.finish();
}

#[test]
fn environment_d_files_cannot_lose_the_environment() {
    // Ordinary shell in an environment.d file must not make its exports (or the whole
    // inherited environment) silently vanish for the scripts.
    let mut cases = Cases::new("environment_d_shell");
    let rows: Vec<(&str, &str)> = vec![
        ("sets_ifs_to_a_colon", "IFS=:\nexport A=from-env-d\n"),
        ("sets_ifs_empty", "IFS=\nexport A=from-env-d\n"),
        (
            "installs_its_own_exit_trap",
            "trap 'rm -f /nonexistent/orc-hostile-tmp' EXIT\nexport A=from-env-d\n",
        ),
        ("turns_on_xtrace", "set -x\nexport A=from-env-d\n"),
        ("turns_off_errexit", "set +e\nexport A=from-env-d\n"),
        (
            "exports_a_function",
            "f() { :; }\nexport -f f\nexport A=from-env-d\n",
        ),
        (
            "exports_a_multi_line_value",
            "export B=$'two\\nlines'\nexport A=from-env-d\n",
        ),
    ];
    cases.case("twenty_environment_files", || {
        // Every file is handed to bash as an fd: more files than fds a child gets must
        // neither hang (bash reading one of its own pipes) nor drop a file.
        let sb = Sandbox::new();
        for i in 10..30 {
            write_mode(
                &sb.base().join(format!("environment.d/{i}-env")),
                &format!("export V{i}={i}\n"),
                0o644,
            );
        }
        sb.script("configure.d", "10-show", "echo \"$V10 $V25 $V29\"");
        let o = output_within(
            orc(&sb).args(["run", "--timeout=10"]),
            Duration::from_secs(30),
        );
        expect_code(&o, 0);
        assert_eq!(out(&o), "10 25 29\n");
    });
    for (name, file) in rows {
        cases.case(name, || {
            let sb = Sandbox::new();
            write_mode(&sb.base().join("environment.d/10-env"), file, 0o644);
            sb.script(
                "configure.d",
                "10-show",
                "echo \"A=$A\"; echo \"HOME=${ORC_HOSTILE_MARK:-unset}\"",
            );
            let o = go(orc(&sb).env("ORC_HOSTILE_MARK", "inherited").arg("run"));
            expect_code(&o, 0);
            assert_eq!(out(&o), "A=from-env-d\nHOME=inherited\n", "{}", err(&o));
        });
    }
    cases.finish();
}

// ---------------------------------------------------------------------------------------
// What another local user controls
// ---------------------------------------------------------------------------------------

#[test]
fn container_specs_and_orc_data_another_user_controls() {
    // A spec's `pre_create` hook is a host command orc runs as root: a spec (or spec
    // dir) another user can write is as dangerous as a script they can write, and must
    // be refused the same way (exit 2 naming it, nothing run).
    let mut cases = Cases::new("other_user");
    let rows: Vec<(&str, u32, u32, u32, &str)> = vec![
        // (name, spec uid, spec mode, dir mode, what the refusal names)
        ("spec_owned_by_another_user", 1000, 0o644, 0o755, "db.json"),
        ("spec_group_writable", 0, 0o664, 0o755, "db.json"),
        ("specs_dir_world_writable", 0, 0o644, 0o777, "containers.d"),
    ];
    for (name, uid, mode, dir_mode, want) in rows {
        cases.case(name, || {
            let ext = outside();
            let (sb, bin) = spec_box();
            fs::remove_file(sb.base().join("configure.d/10-a")).unwrap();
            let pwned = ext.path().join("pwned");
            let spec = sb.path(&format!("{SPECS}/db.json"));
            write_mode(
                &spec,
                &format!(
                    r#"{{"name": "db", "image": "busybox", "hooks": {{"pre_create": ["touch", "{}"]}}}}"#,
                    pwned.display()
                ),
                mode,
            );
            std::os::unix::fs::chown(&spec, Some(uid), Some(uid)).unwrap();
            fs::set_permissions(sb.path(SPECS), fs::Permissions::from_mode(dir_mode)).unwrap();
            let o = go(orc_with_bin(&sb, &bin).arg("run"));
            assert!(!pwned.exists(), "another user's hook ran as root");
            spec_step_failed(&o, &sb, &[want]);
            assert_eq!(calls(&bin), "", "the engine was called");
        });
    }
    cases.case("data_dir_owned_by_another_user", || {
        // Reports are root-only: 0600 files in a 0700 dir that only root can change. A
        // data dir another user owns (an image built with `cp -a` by a normal user) lets
        // them replace the reports `orc status` reads.
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "exit 3");
        let data = sb.path("var/lib/orc");
        fs::create_dir_all(data.join("runs")).unwrap();
        for d in [data.clone(), data.join("runs")] {
            std::os::unix::fs::chown(&d, Some(1000), Some(1000)).unwrap();
        }
        let o = go(orc(&sb).arg("run"));
        if o.status.code() == Some(2) {
            refused(&o, &["var/lib/orc"]);
            return;
        }
        expect_code(&o, 1);
        use std::os::unix::fs::MetadataExt;
        for d in [data.clone(), data.join("runs")] {
            let m = fs::metadata(&d).unwrap();
            assert_eq!(
                m.uid(),
                0,
                "{} is still owned by uid {}: that user can forge `orc status`",
                d.display(),
                m.uid()
            );
        }
    });
    cases.finish();
}

// ---------------------------------------------------------------------------------------
// Issue 15: the lock is orc's alone; runs in other pid namespaces; full disks; symlinked
// bases; whatever orc inherits
// ---------------------------------------------------------------------------------------

/// `orc status --json`'s result (or "never").
fn status_result(sb: &Sandbox) -> String {
    let o = go(orc(sb).args(["status", "--json"]));
    let j: serde_json::Value = serde_json::from_str(&out(&o)).unwrap_or_default();
    j["result"].as_str().unwrap_or("never").to_string()
}

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_path_that_is_not_orcs_lock_is_never_written() {
    let mut cases = Cases::new("not_orcs_lock");
    let lock = "run/os-refresh-config.lock";
    // (name, how the lock path is set up, what the refusal names)
    type Setup = fn(&Sandbox, &Path) -> Vec<&'static str>;
    let rows: Vec<(&str, Setup)> = vec![
        ("hardlink_to_a_file_outside", |sb, ext| {
            fs::create_dir_all(sb.path("run")).unwrap();
            fs::hard_link(ext.join("precious"), sb.path("run/os-refresh-config.lock")).unwrap();
            vec!["os-refresh-config.lock", "2 links"]
        }),
        ("hardlink_to_an_empty_file", |sb, ext| {
            fs::write(ext.join("empty"), "").unwrap();
            fs::create_dir_all(sb.path("run")).unwrap();
            fs::hard_link(ext.join("empty"), sb.path("run/os-refresh-config.lock")).unwrap();
            vec!["os-refresh-config.lock", "links"]
        }),
        ("config_lock_file_typo_names_a_real_file", |sb, _| {
            write_mode(
                &sb.path("etc/fstab"),
                "UUID=1234 / ext4 defaults 0 1\n",
                0o644,
            );
            sb.config(r#"{"lock_file": "/etc/fstab"}"#);
            vec!["etc/fstab", "other content"]
        }),
        ("other_content_in_a_0600_root_file", |sb, _| {
            write_mode(&sb.path("run/os-refresh-config.lock"), "hello\n", 0o600);
            vec!["os-refresh-config.lock", "other content"]
        }),
        ("holder_line_followed_by_more", |sb, _| {
            let text = format!(
                "pid=1 since=x cmd=run start=1 boot=b ns=1 groups=\n{}",
                "x".repeat(5000)
            );
            write_mode(&sb.path("run/os-refresh-config.lock"), &text, 0o600);
            vec!["os-refresh-config.lock", "other content"]
        }),
        ("empty_but_another_owner", |sb, _| {
            write_mode(&sb.path("run/os-refresh-config.lock"), "", 0o600);
            std::os::unix::fs::chown(
                sb.path("run/os-refresh-config.lock"),
                Some(1000),
                Some(1000),
            )
            .unwrap();
            vec!["os-refresh-config.lock", "uid 1000"]
        }),
    ];
    for (name, setup) in rows {
        cases.case(name, || {
            let ext = outside();
            let sb = Sandbox::new();
            let ran = sb.path("ran");
            sb.script("configure.d", "10-a", &format!("touch {}", ran.display()));
            let want = setup(&sb, ext.path());
            let before = freeze(&sb, ext.path());
            for args in [
                &["run"][..],
                &["state", "seed"],
                &["register-state-path", "/var/lib/x"],
            ] {
                let o = go(orc(&sb).args(args));
                refused(&o, &want);
                before.unchanged(&sb, ext.path());
            }
            assert!(!ran.exists(), "a script ran");
            assert_eq!(status_result(&sb), "never");
            let _ = lock;
        });
    }
    cases.case("lockfile_flag_naming_a_file_outside_with_data", || {
        let ext = outside();
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo ran");
        let before = freeze(&sb, ext.path());
        let precious = ext.path().join("precious");
        let o = go(orc(&sb).arg("run").arg("--lockfile").arg(&precious));
        refused(&o, &["precious", "other content"]);
        before.unchanged(&sb, ext.path());
    });
    cases.case("made_0600_and_an_upstream_0644_lock_becomes_0600", || {
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo ran");
        let o = go(orc(&sb).arg("run"));
        expect_code(&o, 0);
        assert_eq!(mode_of(&sb.lock_file()), 0o600);
        assert_eq!(fs::read(sb.lock_file()).unwrap(), b"");
        // Upstream's os-refresh-config makes it 0644 (open for append): still orc's.
        fs::set_permissions(sb.lock_file(), fs::Permissions::from_mode(0o644)).unwrap();
        let o = go(orc(&sb).arg("run"));
        expect_code(&o, 0);
        assert_eq!(mode_of(&sb.lock_file()), 0o600);
        assert_eq!(status_result(&sb), "ok");
    });
    cases.case("another_user_cannot_flock_it", || {
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo ran");
        expect_code(&go(orc(&sb).arg("run")), 0);
        // The sandbox dirs are 0700 tempdirs: open the path up to the lock's own mode.
        let mut p = sb.lock_file();
        while p.pop() && p.starts_with(std::env::temp_dir()) && p != std::env::temp_dir() {
            let m = mode_of(&p);
            fs::set_permissions(&p, fs::Permissions::from_mode(m | 0o755)).unwrap();
        }
        let o = go(Command::new("setpriv")
            .args([
                "--reuid=1000",
                "--regid=1000",
                "--clear-groups",
                "flock",
                "-n",
            ])
            .arg(sb.lock_file())
            .arg("true"));
        assert_ne!(
            o.status.code(),
            Some(0),
            "uid 1000 took orc's lock: {}",
            err(&o)
        );
        expect_code(&go(orc(&sb).arg("run")), 0);
    });
    cases.finish();
}

#[test]
fn parallel_register_state_path_all_succeed() {
    let mut cases = Cases::new("parallel_register");
    cases.case("twenty_at_once", || {
        let sb = Sandbox::new();
        let kids: Vec<Child> = (0..20)
            .map(|i| {
                spawn_piped(
                    orc(&sb)
                        .arg("register-state-path")
                        .arg(format!("/var/lib/p{i:02}")),
                )
            })
            .collect();
        for k in kids {
            let o = wait_output(k, LIMIT);
            expect_code(&o, 0);
        }
        let reg = fs::read_to_string(sb.path(REGISTRY)).unwrap();
        for i in 0..20 {
            assert!(
                reg.contains(&format!("/var/lib/p{i:02}")),
                "p{i:02} missing:\n{reg}"
            );
        }
        assert_eq!(reg.lines().count(), 20, "{reg}");
        // `orc state register` keeps failing at once unless told to wait.
        let hold = fs::OpenOptions::new()
            .read(true)
            .open(sb.lock_file())
            .unwrap();
        hold.lock().unwrap();
        let o = go(orc(&sb).args(["state", "register", "/var/lib/q"]));
        expect_code(&o, 11);
    });
    cases.finish();
}

#[test]
fn runs_in_another_pid_namespace_are_told_from_the_lock() {
    let mut cases = Cases::new("pid_namespaces");
    cases.case("live_run_in_a_container_is_running_not_crashed", || {
        let sb = Sandbox::new();
        let started = sb.path("started");
        let go_on = sb.path("go-on");
        sb.script(
            "configure.d",
            "10-wait",
            &format!(
                "touch {}\nwhile [ ! -e {} ]; do sleep 0.05; done",
                started.display(),
                go_on.display()
            ),
        );
        let mut c = Command::new("unshare");
        c.args(["--pid", "--fork", "--mount-proc"])
            .arg(bin())
            .arg("--root")
            .arg(sb.root());
        c.args(["run", "--skip-state", "--skip-containers"]);
        let inner = spawn_piped(&mut c);
        wait_for(&started);
        let o = go(orc(&sb).arg("status"));
        assert!(out(&o).contains(": running"), "{}", out(&o));
        assert_eq!(status_result(&sb), "running");
        let o = go(orc(&sb).arg("run"));
        expect_code(&o, 11);
        let e = err(&o);
        assert!(e.contains("another pid namespace"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        fs::write(&go_on, "").unwrap();
        let o = wait_output(inner, LIMIT);
        expect_code(&o, 0);
        assert_eq!(status_result(&sb), "ok");
    });
    cases.case(
        "dead_holder_of_another_namespace_has_nothing_killed",
        || {
            // A holder line left by a run in another pid namespace names groups that mean
            // other processes here: they are never signalled.
            let sb = Sandbox::new();
            sb.script("configure.d", "10-a", "echo ran");
            let mut victim = Command::new("sleep");
            std::os::unix::process::CommandExt::process_group(&mut victim, 0);
            let mut victim = victim.arg("300").spawn().unwrap();
            let vpid = victim.id();
            let stat = fs::read_to_string(format!("/proc/{vpid}/stat")).unwrap();
            let start: u64 = stat
                .rsplit(')')
                .next()
                .unwrap()
                .split_whitespace()
                .nth(19)
                .unwrap()
                .parse()
                .unwrap();
            let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
            let line = format!(
                "pid=1 since=x cmd=run start=1 boot={} ns=4026599999 groups={vpid}:{start}:{start}",
                boot.trim()
            );
            write_mode(&sb.lock_file(), &format!("{line:<1023}\n"), 0o600);
            let o = go(orc(&sb).arg("run"));
            thread::sleep(Duration::from_millis(300));
            let alive = victim.try_wait().unwrap().is_none();
            let _ = victim.kill();
            let _ = victim.wait();
            expect_code(&o, 0);
            assert!(
                alive,
                "orc killed group {vpid} named by another namespace's holder"
            );
            assert!(err(&o).contains("another pid namespace"), "{}", err(&o));
        },
    );
    cases.finish();
}

#[test]
fn a_full_data_dir_at_the_end_still_completes_the_report() {
    let mut cases = Cases::new("full_data_dir");
    cases.case("tiny_tmpfs_filled_by_a_script", || {
        let sb = Sandbox::new();
        let data = sb.path("var/lib/orc");
        fs::create_dir_all(&data).unwrap();
        let m = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=128k,mode=0755", "tmpfs"])
            .arg(&data)
            .status()
            .unwrap();
        assert!(m.success(), "the test needs to mount a tmpfs");
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = Command::new("umount").arg("-l").arg(&self.0).status();
            }
        }
        let _u = Unmount(data.clone());
        let fill = data.join("fill");
        // Much output (a long tail to keep), then the disk filled.
        sb.script(
            "configure.d",
            "10-noisy",
            "i=0; while [ $i -lt 300 ]; do echo \"line $i of output that the report would keep\"; i=$((i+1)); done",
        );
        sb.script(
            "configure.d",
            "20-fill",
            &format!("cat /dev/zero > {} 2>/dev/null; true", fill.display()),
        );
        let o = go(orc(&sb).args(["run", "--skip-state", "--skip-containers"]));
        expect_code(&o, 0);
        assert!(!err(&o).contains("panicked"), "{}", err(&o));
        assert_eq!(status_result(&sb), "ok", "the run is ok, not running or crashed");
        let o = go(orc(&sb).arg("status"));
        expect_code(&o, 0);
        fs::remove_file(&fill).unwrap();
        let o = go(orc(&sb).args(["run", "--skip-state", "--skip-containers", "--only", "migration"]));
        expect_code(&o, 0);
        assert!(!err(&o).contains("crashed"), "{}", err(&o));
        assert!(!err(&o).contains("killed"), "{}", err(&o));
        let runs = fs::read_dir(data.join("runs")).unwrap().count();
        assert_eq!(runs, 2);
    });
    cases.case("a_shared_data_dir_keeps_its_mode", || {
        let sb = Sandbox::new();
        sb.script("configure.d", "10-a", "echo ran");
        let tmp = sb.path("tmp");
        fs::create_dir_all(&tmp).unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)).unwrap();
        sb.config(r#"{"data_dir": "/tmp"}"#);
        let o = go(orc(&sb).arg("run"));
        expect_code(&o, 0);
        assert_eq!(mode_of(&tmp), 0o1777, "/tmp lost its mode");
        assert_eq!(mode_of(&tmp.join("runs")), 0o700);
    });
    cases.finish();
}

#[test]
fn symlinked_base_dirs_and_parents_skip_missing_phase_dirs() {
    let mut cases = Cases::new("symlinked_base");
    // (name, symlinks to make: (link, target), the base dir given (None: default))
    let rows: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "base_dir_a_relative_symlink",
            vec![(BASE, "../../opt/orc-base")],
        ),
        (
            "base_dir_an_absolute_symlink",
            vec![(BASE, "/opt/orc-base")],
        ),
        (
            "a_symlinked_parent",
            vec![("usr/libexec", "../opt/libexec")],
        ),
        ("etc_orc_a_symlink", vec![("etc/orc", "../opt/etc-orc")]),
    ];
    for (name, links) in rows {
        cases.case(name, || {
            let ext = outside();
            let sb = Sandbox::new();
            let ran = sb.path("ran");
            // Only configure.d: no migration.d, migrations.d, environment.d, containers.d.
            sb.script("configure.d", "10-a", &format!("touch {}", ran.display()));
            for (link, target) in &links {
                let real = if let Some(abs) = target.strip_prefix('/') {
                    sb.path(abs)
                } else {
                    sb.path(link).parent().unwrap().join(target)
                };
                fs::create_dir_all(real.parent().unwrap()).unwrap();
                if sb.path(link).exists() {
                    fs::rename(sb.path(link), &real).unwrap();
                } else {
                    fs::create_dir_all(&real).unwrap();
                }
                fs::create_dir_all(sb.path(link).parent().unwrap()).unwrap();
                symlink(target, sb.path(link)).unwrap();
            }
            let before = freeze(&sb, ext.path());
            let o = go(orc(&sb).arg("list"));
            expect_code(&o, 0);
            assert!(!err(&o).contains("dangling"), "{}", err(&o));
            let o = go(orc(&sb).args(["run", "--skip-state"]));
            expect_code(&o, 0);
            assert!(ran.exists());
            assert!(!err(&o).contains("dangling"), "{}", err(&o));
            assert_eq!(status_result(&sb), "ok");
            assert_same(&before.out, &snapshot(ext.path()), "outside");
        });
    }
    cases.case(
        "a_phase_dir_that_is_itself_a_dangling_symlink_is_still_refused",
        || {
            let ext = outside();
            let sb = Sandbox::new();
            sb.script("configure.d", "10-a", "true");
            symlink(
                "../../../opt/nowhere/x.d",
                sb.base().join("post-configure.d"),
            )
            .unwrap();
            let before = freeze(&sb, ext.path());
            let o = go(orc(&sb).arg("run"));
            refused(&o, &["post-configure.d", "dangling"]);
            before.unchanged(&sb, ext.path());
        },
    );
    cases.finish();
}

#[test]
fn a_step_that_leaves_its_process_group_is_still_timed_out() {
    let mut cases = Cases::new("escapes");
    cases.case("leader_joins_another_group", || {
        let sb = Sandbox::new();
        // The step's leader moves into orc's own process group, then idles: killpg of
        // the step's group misses it; its pidfd does not.
        let pidfile = sb.path("pid");
        sb.script(
            "configure.d",
            "10-escape",
            &format!(
                "echo $$ > {}\nexec python3 -c 'import os,time; os.setpgid(0, os.getpgid(os.getppid())); time.sleep(300)'",
                pidfile.display()
            ),
        );
        let t = Instant::now();
        let o = go(orc(&sb).args(["run", "--skip-state", "--skip-containers", "--script-timeout", "1"]));
        expect_code(&o, 1);
        assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
        let pid: i32 = fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        thread::sleep(Duration::from_millis(200));
        let alive = fs::read_to_string(format!("/proc/{pid}/status"))
            .is_ok_and(|s| !s.contains("State:\tZ"));
        assert!(!alive, "the step's leader outlived --script-timeout");
        assert_eq!(status_result(&sb), "failed");
    });
    cases.finish();
}

#[test]
fn a_full_run_dir_or_a_torn_holder_line_never_stops_a_boot() {
    let mut cases = Cases::new("full_run_dir");
    cases.case("run_is_a_full_tmpfs", || {
        let sb = Sandbox::new();
        let run = sb.path("run");
        fs::create_dir_all(&run).unwrap();
        let m = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs"])
            .arg(&run)
            .status()
            .unwrap();
        assert!(m.success(), "the test needs to mount a tmpfs");
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = Command::new("umount").arg("-l").arg(&self.0).status();
            }
        }
        let _u = Unmount(run.clone());
        fs::write(sb.lock_file(), "").unwrap();
        fs::set_permissions(sb.lock_file(), fs::Permissions::from_mode(0o600)).unwrap();
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("cat /dev/zero > {}/fill", run.display()))
            .status();
        sb.script("configure.d", "10-a", "echo ran");
        for _ in 0..2 {
            let o = go(orc(&sb).args(["run", "--skip-state", "--skip-containers"]));
            expect_code(&o, 0);
            assert_eq!(out(&o), "ran\n");
        }
        assert_eq!(status_result(&sb), "ok");
    });
    let rows: Vec<(&str, Vec<u8>)> = vec![
        (
            "torn_holder_line",
            b"pid=4242 since=2026-12-03T08:00:00Z cm".to_vec(),
        ),
        ("zeros_after_a_power_cut", vec![0u8; 1024]),
    ];
    for (name, bytes) in rows {
        cases.case(name, || {
            let sb = Sandbox::new();
            sb.script("configure.d", "10-a", "echo ran");
            fs::create_dir_all(sb.path("run")).unwrap();
            fs::write(sb.lock_file(), &bytes).unwrap();
            fs::set_permissions(sb.lock_file(), fs::Permissions::from_mode(0o600)).unwrap();
            let o = go(orc(&sb).args(["run", "--skip-state", "--skip-containers"]));
            expect_code(&o, 0);
            assert_eq!(fs::read(sb.lock_file()).unwrap(), b"");
        });
    }
    cases.finish();
}

/// A finalised image with `/var/lib/many` (20 dirs of 30 files, a nested dir each).
fn seeded_image() -> Sandbox {
    let sb = Sandbox::new();
    let top = sb.path("var/lib/use-ephemeral/var/lib/many");
    for d in 0..20 {
        let dir = top.join(format!("d{d:02}"));
        fs::create_dir_all(dir.join("sub/deeper")).unwrap();
        for f in 0..30 {
            fs::write(dir.join(format!("f{f:02}")), format!("{d}/{f}")).unwrap();
        }
    }
    fs::write(
        sb.path("var/lib/use-ephemeral/stateful-paths"),
        "/var/lib/many;\n",
    )
    .unwrap();
    sb
}

/// The state path after a seed: absent, or a complete copy of `pristine` as it is now;
/// never a temp left beside it.
#[track_caller]
fn whole_or_absent(sb: &Sandbox) {
    let state = sb.path("mnt/state/var/lib/many");
    let left: Vec<_> = fs::read_dir(sb.path("mnt/state/var/lib"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter().all(|n| n == "many"),
        "leftovers beside the state path: {left:?}"
    );
    if state.exists() {
        assert_same(
            &snapshot(&sb.path("var/lib/use-ephemeral/var/lib/many")),
            &snapshot(&state),
            "a complete copy",
        );
    }
}

/// Nobody holds the lock (or it was never made).
fn lock_is_free(sb: &Sandbox) -> bool {
    match fs::File::open(sb.lock_file()) {
        Ok(f) => f.try_lock().is_ok(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

#[test]
fn seeding_survives_fd_exhaustion_walker_races_and_relay_abuse() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut cases = Cases::new("walker_and_fds");
    // RLIMIT_NOFILE so small that the root, the lock, the report or the copy runs out:
    // every limit up to 24, so the one where the run's start just fits (which moves with
    // what the environment holds open) is always among them.
    for n in (6u32..=24).chain([32]) {
        cases.case(&format!("rlimit_nofile_{n}"), || {
            let sb = seeded_image();
            let ext = outside();
            let before = snapshot(ext.path());
            let inner = orc(&sb);
            let mut c = Command::new("prlimit");
            c.env_clear()
                .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))))
                .arg(format!("--nofile={n}"))
                .arg(inner.get_program())
                .args(inner.get_args())
                .args(["run", "--skip-containers"]);
            let o = go(&mut c);
            expect_code(&o, 1);
            let e = err(&o);
            assert!(!e.contains("panicked"), "{e}");
            assert!(e.contains("Too many open files"), "{e}");
            assert!(
                e.lines().all(|l| l.starts_with("orc: ")),
                "only orc's own lines: {e}"
            );
            whole_or_absent(&sb);
            assert_same(&before, &snapshot(ext.path()), "outside the root");
            assert!(lock_is_free(&sb), "the lock is released");
            let s = status_result(&sb);
            assert!(s == "failed" || s == "never", "status says {s}");
            // Without the limit, the next run seeds it whole.
            expect_code(&go(orc(&sb).args(["run", "--skip-containers"])), 0);
            assert!(sb.path("mnt/state/var/lib/many/d19/f29").exists());
            whole_or_absent(&sb);
            assert_eq!(status_result(&sb), "ok");
        });
    }
    // Another process renames dirs of the pristine tree out of the root and back, and
    // makes and removes hardlinks, while seeds run: each seed copies all, or stops with
    // one error; nothing outside the root is read into the copy or changed.
    cases.case("walker_races_rename_out_and_hardlinks", || {
        let sb = seeded_image();
        let ext = outside();
        let pristine = sb.path("var/lib/use-ephemeral/var/lib/many");
        let before = snapshot(ext.path());
        let stop = Arc::new(AtomicBool::new(false));
        let racer = {
            let (stop, pristine, away) = (stop.clone(), pristine.clone(), ext.path().join("d05"));
            thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let home = pristine.join("d05/sub");
                    if fs::rename(&home, &away).is_ok() {
                        thread::sleep(Duration::from_micros(300));
                        fs::rename(&away, &home).unwrap();
                    }
                    let hl = pristine.join(format!("d07/hl{}", i % 4));
                    let _ = fs::hard_link(pristine.join("d07/f00"), &hl);
                    let _ = fs::remove_file(&hl);
                    i += 1;
                }
            })
        };
        let (mut ok, mut stopped) = (0, 0);
        for _ in 0..30 {
            let _ = fs::remove_dir_all(sb.path("mnt"));
            let o = go(orc(&sb).args(["state", "seed"]));
            let e = err(&o);
            assert!(!e.contains("panicked"), "{e}");
            match o.status.code() {
                Some(0) => ok += 1,
                Some(1) => {
                    stopped += 1;
                    let why = e.lines().find(|l| l.contains("seeding /var/lib/many"));
                    assert!(why.is_some(), "one line naming the path: {e}");
                    eprintln!("stopped: {}", why.unwrap_or_default());
                }
                c => panic!("exit {c:?}: {e}"),
            }
            assert!(lock_is_free(&sb));
            let copied = snapshot(&sb.path("mnt/state"));
            assert!(
                !copied
                    .keys()
                    .any(|k| k.ends_with("precious") || k.ends_with("also")),
                "read from outside the root into the copy"
            );
        }
        stop.store(true, Ordering::SeqCst);
        racer.join().unwrap();
        assert_same(&before, &snapshot(ext.path()), "outside the root");
        eprintln!("walker race: {ok} seeded, {stopped} stopped with an error");
        let _ = fs::remove_dir_all(sb.path("mnt"));
        expect_code(&go(orc(&sb).args(["state", "seed"])), 0);
        whole_or_absent(&sb);
    });
    // `orc relay` takes over only inherited, open fds named once, into 1 or 2.
    for (name, args) in [
        ("relay_fd_not_open", vec!["999:1"]),
        ("relay_stdio_as_source", vec!["1:2"]),
        ("relay_target_not_stdio", vec!["0:5"]),
        ("relay_stdin_twice", vec!["0:1", "0:2"]),
        ("relay_not_a_pair", vec!["three"]),
    ] {
        cases.case(name, || {
            let sb = Sandbox::new();
            let ext = outside();
            let f = freeze(&sb, ext.path());
            let o = go(orc(&sb).arg("relay").args(&args));
            refused(&o, &["relay: pairs are FD:TO"]);
            f.unchanged(&sb, ext.path());
            assert_eq!(status_result(&sb), "never");
        });
    }
    cases.finish();
}
