//! Compose files and secrets against a real Docker engine (scripts/container-engine.sh
//! starts one; these tests fail, not skip, without it). Run under
//! `flock /work/.engine.lock`; every test has its own scope and project names.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;

static ENGINE: Mutex<()> = Mutex::new(());

const SECRET_PW: &str = "pw-Xq7-zz81-hunter";
const SECRET_FILE: &str = "filesecret-Kp3-77aa";
const SECRET_ENVD: &str = "envd-Lm9-secret-42";

fn image() -> String {
    std::env::var("ORC_TEST_IMAGE").unwrap_or_else(|_| "orc-test/busybox:latest".into())
}

fn docker(args: &[&str]) -> String {
    let o = Command::new("docker").args(args).output().unwrap();
    assert!(o.status.success(), "docker {args:?}: {}", err(&o));
    out(&o).trim().to_string()
}

/// A sandbox box whose engine (`docker`, or `podman`) is a wrapper recording its argv.
struct Stack {
    sb: Sandbox,
    project: String,
    engine: &'static str,
    _turn: std::sync::MutexGuard<'static, ()>,
    /// The published stacks' turn on this host (see [`stacks_turn`]); dropped after the
    /// cleanup.
    stacks: Option<fs::File>,
}

/// The published stacks name their containers and networks themselves (`container_name`,
/// a project `name`), and are converged from stub images tagged as the names they use:
/// those names are shared by every checkout on this host's engines, so stack tests take
/// turns across processes (a flock on /run/lock/orc-test-stacks.lock), held until the
/// stack is cleaned up.
fn stacks_turn() -> fs::File {
    fs::create_dir_all("/run/lock").unwrap();
    let f = fs::File::create("/run/lock/orc-test-stacks.lock").unwrap();
    f.lock().unwrap();
    f
}

impl Stack {
    fn new(tag: &str) -> Stack {
        Stack::on("docker", tag)
    }

    fn on(engine: &'static str, tag: &str) -> Stack {
        let turn = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            Command::new(engine)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "{engine} does not answer: run scripts/container-engine.sh start (or podman)"
        );
        let sb = Sandbox::new();
        let project = unique(&format!("orcc{tag}"));
        let real = Command::new("sh")
            .args(["-c", &format!("command -v {engine}")])
            .output()
            .unwrap();
        write_mode(
            &sb.path(&format!("bin/{engine}")),
            &format!(
                "#!/bin/sh\necho \"$*\" >> {calls}\n[ \"$1\" = pull ] && [ -e {ok} ] && exit 0\nif [ \"$1\" = create ]; then\n  out=$({real} \"$@\") || exit $?\n  echo \"$out\"; echo \"=> $out\" >> {calls}; exit 0\nfi\nexec {real} \"$@\"\n",
                real = out(&real).trim(),
                calls = sb.path("engine-calls").display(),
                ok = sb.path("pull-answered").display(),
            ),
            0o755,
        );
        sb.config(&format!(
            r#"{{"containers": {{"engine": "{engine}", "infra_version": "1", "scope": "{project}"}}}}"#
        ));
        Stack {
            sb,
            project,
            engine,
            _turn: turn,
            stacks: None,
        }
    }

    fn compose(&self, text: &str) {
        let t = text.replace("IMAGE", &image());
        write_mode(
            &self
                .sb
                .path(&format!("etc/orc/compose.d/{}.yaml", self.project)),
            &t,
            0o600,
        );
    }

    fn name(&self, svc: &str) -> String {
        format!("{}-{svc}", self.project)
    }

    fn orc(&self) -> Command {
        let mut c = self.sb.orc();
        if let Some(conf) = std::env::var_os("CONTAINERS_CONF") {
            c.env("CONTAINERS_CONF", conf);
        }
        c.env(
            "PATH",
            format!(
                "{}:{}",
                self.sb.path("bin").display(),
                std::env::var("PATH").unwrap()
            ),
        );
        c
    }

    fn converge(&self) -> Output {
        let _ = fs::remove_file(self.sb.path("engine-calls"));
        self.orc().arg("run").output().unwrap()
    }

    fn calls(&self) -> String {
        fs::read_to_string(self.sb.path("engine-calls")).unwrap_or_default()
    }

    fn exec(&self, svc: &str, cmd: &str) -> String {
        docker(&["exec", &self.name(svc), "sh", "-c", cmd])
    }

    fn actions(&self) -> Vec<(String, String)> {
        self.sb.last_report()["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["action"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let scope = format!("label=orc.scope={}", self.project);
        let list = |args: &[&str]| {
            let o = Command::new(self.engine).args(args).output().unwrap();
            out(&o)
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let ids = list(&["ps", "-aq", "--filter", &scope]);
        if !ids.is_empty() {
            let _ = Command::new(self.engine)
                .args(["rm", "-f"])
                .args(&ids)
                .output();
        }
        let nets = list(&["network", "ls", "-q", "--filter", &scope]);
        if !nets.is_empty() {
            let _ = Command::new(self.engine)
                .args(["network", "rm"])
                .args(&nets)
                .output();
        }
    }
}

/// Every command line of a process whose argv mentions `docker`, sampled from /proc every
/// few milliseconds while `f` runs.
fn scan_cmdlines<T>(f: impl FnOnce() -> T) -> (T, BTreeSet<String>) {
    let stop = AtomicBool::new(false);
    let seen = Mutex::new(BTreeSet::new());
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                for e in fs::read_dir("/proc").unwrap().flatten() {
                    if let Ok(c) = fs::read(e.path().join("cmdline")) {
                        let line = String::from_utf8_lossy(&c).replace('\0', " ");
                        if line.contains("docker") {
                            seen.lock().unwrap().insert(line);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let r = f();
        stop.store(true, Ordering::Relaxed);
        r
    });
    (result, seen.into_inner().unwrap())
}

const STACK: &str = r#"
services:
  db:
    image: IMAGE
    command: sleep 3600
    init: true
    stop_grace_period: 1s
    env_file: ./db.env
    environment:
      DB_USER: app
      FROM_ENVD: ${ENVD_SECRET}
    secrets: [db_pw]
    configs:
      - source: conf
        target: /etc/db.conf
    healthcheck:
      test: ["CMD-SHELL", "test -f /run/secrets/db_pw"]
      interval: 1s
      retries: 5
  app:
    image: IMAGE
    command: ["sleep", "3600"]
    init: true
    stop_grace_period: 1s
    depends_on:
      db:
        condition: service_healthy
    ports: ["127.0.0.1::8000-8001/udp"]
    cap_add: [NET_ADMIN]
    dns: 10.0.0.53
    group_add: ["1234"]
    oom_score_adj: 100
    restart: on-failure:3
    volumes:
      - data:/data
      - ./html:/srv/html:ro
    x-orc:
      hooks:
        post_start: [sh, -c, "echo started > /data/post"]
secrets:
  db_pw:
    file: ./secrets/db_pw
configs:
  conf:
    file: ./db.conf
volumes:
  data:
"#;

fn write_inputs(s: &Stack) {
    let d = "etc/orc/compose.d";
    write_mode(
        &s.sb.path(&format!("{d}/db.env")),
        &format!("# the database\nDB_PASSWORD={SECRET_PW}\n"),
        0o600,
    );
    write_mode(
        &s.sb.path(&format!("{d}/secrets/db_pw")),
        SECRET_FILE,
        0o600,
    );
    write_mode(&s.sb.path(&format!("{d}/db.conf")), "max=1\n", 0o644);
    fs::create_dir_all(s.sb.path(&format!("{d}/html"))).unwrap();
    write_mode(
        &s.sb
            .path("usr/libexec/os-refresh-config/environment.d/10-secret"),
        &format!("export ENVD_SECRET={SECRET_ENVD}\n"),
        0o644,
    );
}

#[test]
fn a_compose_stack_converges_and_no_secret_reaches_argv_logs_report_or_status() {
    let s = Stack::new("sec");
    write_inputs(&s);
    s.compose(STACK);
    let (o, cmdlines) = scan_cmdlines(|| s.converge());
    expect_code(&o, 0);
    let (db, app) = (s.name("db"), s.name("app"));
    assert_eq!(
        s.actions(),
        [
            (
                format!("network:{}_default", s.project),
                "create".to_string()
            ),
            (db.clone(), "create".into()),
            (app.clone(), "create".into())
        ]
    );
    // The values reached the container...
    assert_eq!(s.exec("db", "echo $DB_PASSWORD"), SECRET_PW);
    assert_eq!(s.exec("db", "cat /run/secrets/db_pw"), SECRET_FILE);
    assert_eq!(s.exec("db", "cat /etc/db.conf"), "max=1");
    assert_eq!(s.exec("db", "echo $DB_USER"), "app");
    assert_eq!(s.exec("app", "cat /data/post"), "started");
    assert!(
        s.exec("db", "touch /run/secrets/db_pw 2>&1 || echo ro")
            .ends_with("ro")
    );
    // ...and reached it by the box's network, by service name.
    assert!(
        s.exec("app", "ping -c1 -W2 db >/dev/null && echo ok")
            .ends_with("ok")
    );
    // The fields of the issue reached the engine.
    let inspect = docker(&["inspect", &app]);
    for want in [
        "NET_ADMIN\"",
        "\"10.0.0.53\"",
        "\"1234\"",
        "\"OomScoreAdj\": 100",
        "\"MaximumRetryCount\": 3",
        "\"8000/udp\"",
        "\"8001/udp\"",
    ] {
        assert!(inspect.contains(want), "{want} not in docker inspect");
    }
    // ...but never argv, the log, the report or status.
    let calls = s.calls();
    assert!(calls.contains("--env-file"), "{calls}");
    let status = s.orc().args(["status", "--json"]).output().unwrap();
    let report = fs::read_to_string(s.sb.path("var/lib/orc/last-run.json")).unwrap();
    let runs: String = walkdir::WalkDir::new(s.sb.path("var/lib/orc/runs"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        cmdlines.iter().any(|c| c.contains("run -d")),
        "the scan saw no engine call: {cmdlines:?}"
    );
    for secret in [SECRET_PW, SECRET_FILE, SECRET_ENVD] {
        for (what, text) in [
            ("argv (wrapper)", calls.as_str()),
            ("orc's stdout", &out(&o)),
            ("orc's stderr (the journal)", &err(&o)),
            ("the report", &report),
            ("the runs dir", &runs),
            ("status --json", &out(&status)),
        ] {
            assert!(!text.contains(secret), "{secret} in {what}");
        }
        assert!(
            !cmdlines.iter().any(|c| c.contains(secret)),
            "{secret} in a /proc/*/cmdline"
        );
    }
    let env_file = s.sb.path(&format!("var/lib/orc/containers/{db}/.orc-env"));
    let mode = fs::metadata(&env_file).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    // Nothing changed: nothing recreated. A changed config (or secret) recreates.
    let o = s.converge();
    expect_code(&o, 0);
    assert!(
        s.actions().iter().all(|(_, a)| a == "keep"),
        "{:?}",
        s.actions()
    );
    write_mode(&s.sb.path("etc/orc/compose.d/db.conf"), "max=2\n", 0o644);
    let o = s.converge();
    expect_code(&o, 0);
    assert!(
        s.actions().contains(&(db.clone(), "recreate".into())),
        "{:?}",
        s.actions()
    );
    assert_eq!(s.exec("db", "cat /etc/db.conf"), "max=2");
}

#[test]
fn a_secret_readable_by_non_root_is_refused_and_nothing_changes() {
    let s = Stack::new("ro");
    write_inputs(&s);
    s.compose(STACK);
    for (file, mode, what) in [
        ("etc/orc/compose.d/db.env", 0o644, "env_file of"),
        ("etc/orc/compose.d/secrets/db_pw", 0o640, "a secret of"),
    ] {
        let p = s.sb.path(file);
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
        let before = snapshot(&s.sb.path("var/lib/orc/containers"));
        // Issue 17's contract: an invalid spec fails its container (and its dependents),
        // not the run's other steps; the step fails (exit 1) and names the file.
        let o = s.converge();
        expect_code(&o, 1);
        let e = err(&o);
        assert!(
            e.contains(&format!("{}: holds a secret ({what}", p.display()))
                && e.contains("readable by non-root"),
            "{e}"
        );
        assert_eq!(s.sb.last_report()["result"], "failed");
        // The project's network converges (it is valid); no container is made.
        assert!(
            !s.calls()
                .lines()
                .any(|l| l.starts_with("run ") || l.starts_with("create ")),
            "{}",
            s.calls()
        );
        assert_same(
            &before,
            &snapshot(&s.sb.path("var/lib/orc/containers")),
            "a refused secret",
        );
        fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    // A compose file that writes a password in plain text must be private too.
    s.compose("services:\n  w:\n    image: IMAGE\n    environment:\n      MYSQL_ROOT_PASSWORD: plain-pw-1\n");
    let f = s.sb.path(&format!("etc/orc/compose.d/{}.yaml", s.project));
    fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let o = s.converge();
    expect_code(&o, 1);
    assert!(
        err(&o).contains("holds a secret (environment MYSQL_ROOT_PASSWORD)"),
        "{}",
        err(&o)
    );
}

#[test]
fn unread_entries_are_warned_about_and_compose_errors_name_the_place() {
    let s = Stack::new("warn");
    write_mode(
        &s.sb.path("etc/orc/containers.d/web.yaml"),
        "services: {}\n",
        0o644,
    );
    fs::create_dir_all(s.sb.path("etc/orc/containers.d/old")).unwrap();
    write_mode(&s.sb.path("etc/orc/compose.d/notes.txt"), "x\n", 0o644);
    write_mode(&s.sb.path("etc/orc/networks.d/front.yaml"), "x\n", 0o644);
    let o = s
        .orc()
        .args(["containers", "list"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let e = err(&o);
    for want in [
        "containers.d/web.yaml: not read: this directory holds JSON container specs (*.json); compose files go in compose.d",
        "containers.d/old: a directory: subdirectories are not read",
        "compose.d/notes.txt: not read: this directory holds compose files (*.yaml, *.yml)",
        "networks.d/front.yaml: not read: this directory holds JSON network specs (*.json); compose files go in compose.d",
    ] {
        assert!(e.contains(want), "{want} not in {e}");
    }
    s.compose("services:\n  web:\n    image: IMAGE\n    deploy:\n      replicas: 2\n");
    let o = s.converge();
    expect_code(&o, 1);
    let f = s.sb.path(&format!("etc/orc/compose.d/{}.yaml", s.project));
    assert!(
        err(&o).contains(&format!(
            "{}: line 4, column 5: web: services.web.deploy: unsupported key",
            f.display()
        )),
        "{}",
        err(&o)
    );
}

#[test]
fn pull_policy_never_fails_a_missing_image_and_always_pulls_a_present_one() {
    let s = Stack::new("pull");
    s.compose(
        "services:\n  never:\n    image: localhost:1/orc-none/nothing:1\n    pull_policy: never\n  always:\n    image: IMAGE\n    pull_policy: always\n    command: [sleep, '3600']\n    init: true\n  plain:\n    image: IMAGE\n    command: [sleep, '3600']\n    init: true\n",
    );
    let o = s.converge();
    expect_code(&o, 1);
    let calls = s.calls();
    let pulls: Vec<&str> = calls.lines().filter(|l| l.starts_with("pull ")).collect();
    // `never`: not pulled, the container fails; `always`: pulled although present (no
    // registry is reachable here, so that pull fails the container); `missing`: not pulled.
    assert_eq!(pulls, [format!("pull --quiet {}", image())], "{calls}");
    let e = err(&o);
    assert!(
        e.contains("image localhost:1/orc-none/nothing:1: not present, and pull_policy is never"),
        "{e}"
    );
    assert!(e.contains(&s.name("always")), "{e}");
    assert_eq!(
        on(
            "docker",
            &[
                "inspect",
                "--format",
                "{{.State.Running}}",
                &s.name("plain")
            ]
        ),
        "true"
    );
    // The shim answers the pull (as a registry would): `always` is pulled once, by orc,
    // and the engine is told not to pull again (it would fail: no registry is reachable).
    write_mode(&s.sb.path("pull-answered"), "", 0o644);
    let o = s.converge();
    expect_code(&o, 1);
    let calls = s.calls();
    let pulls: Vec<&str> = calls
        .lines()
        .filter(|l| l.starts_with("pull ") || l.contains(" --pull "))
        .collect();
    assert_eq!(pulls.len(), 2, "{calls}");
    assert_eq!(pulls[0], format!("pull --quiet {}", image()), "{calls}");
    assert!(
        pulls[1].starts_with("run ") && pulls[1].contains(" --pull never "),
        "{calls}"
    );
    assert_eq!(
        on(
            "docker",
            &[
                "inspect",
                "--format",
                "{{.State.Running}}",
                &s.name("always")
            ]
        ),
        "true"
    );
}

#[test]
fn plan_argv_is_what_the_converge_then_calls_and_changes_nothing() {
    let s = Stack::new("plan");
    write_inputs(&s);
    s.compose(STACK);
    let before = snapshot(s.sb.root());
    let _ = fs::remove_file(s.sb.path("engine-calls"));
    let o = s
        .orc()
        .args(["containers", "plan", "--argv", "--json"])
        .output()
        .unwrap();
    expect_code(&o, 0);
    let read_only = s.calls();
    let _ = fs::remove_file(s.sb.path("engine-calls"));
    assert_same(&before, &snapshot(s.sb.root()), "plan");
    for line in read_only.lines() {
        assert!(
            ["ps ", "network ls", "inspect", "image inspect", "version"]
                .iter()
                .any(|p| line.starts_with(p)),
            "plan made a mutating call: {line}"
        );
    }
    let (planned, _) = plan_calls(&out(&o));
    assert_eq!(planned.len(), 4, "{planned:?}");
    let o = s.converge();
    expect_code(&o, 0);
    assert_eq!(planned, changing_calls(&by_name(&s.calls())));
    let text = s.orc().args(["containers", "plan"]).output().unwrap();
    assert!(
        out(&text).contains(&format!("{}-db", s.project)),
        "{}",
        out(&text)
    );
    assert!(out(&text).contains("keep"), "{}", out(&text));
}

/// The engine calls that only read (the converge's listings, inspects and health probes).
const READ_ONLY: [&str; 8] = [
    "ps ",
    "network ls",
    "network inspect",
    "image inspect",
    "inspect ",
    "logs ",
    "healthcheck run",
    "version",
];

/// A shim's log with the ID each `create` printed (logged as `=> ID`) written as the
/// name it was created under: the converge addresses a new container by its ID, the
/// plan (which cannot know it) by its temporary name.
fn by_name(log: &str) -> String {
    let mut ids: Vec<(String, String)> = Vec::new();
    let mut last_name = String::new();
    let mut out = String::new();
    for line in log.lines() {
        if let Some(id) = line.strip_prefix("=> ") {
            ids.push((id.trim().to_string(), last_name.clone()));
            continue;
        }
        let words: Vec<&str> = line.split(' ').collect();
        if words.len() > 2 && words[..2] == ["create", "--name"] {
            last_name = words[2].to_string();
        }
        let line: Vec<&str> = words
            .iter()
            .map(|w| {
                ids.iter()
                    .find(|(id, _)| id == w)
                    .map_or(*w, |(_, n)| n.as_str())
            })
            .collect();
        out.push_str(&line.join(" "));
        out.push('\n');
    }
    out
}

/// The calls in a shim's log that change something or run a hook, sorted.
fn changing_calls(log: &str) -> Vec<String> {
    let mut v: Vec<String> = log
        .lines()
        .filter(|l| !READ_ONLY.iter().any(|p| l.starts_with(p)))
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// `plan --argv --json`: its engine calls (words joined as the shim logs them), sorted,
/// and its other entries (waits, host hooks) as JSON.
fn plan_calls(json: &str) -> (Vec<String>, Vec<String>) {
    let steps: serde_json::Value = serde_json::from_str(json).unwrap();
    let (mut engine, mut other) = (Vec::new(), Vec::new());
    for c in steps
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["calls"].as_array().cloned().unwrap_or_default())
    {
        match c.as_array() {
            Some(words) => engine.push(
                words
                    .iter()
                    .map(|w| w.as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            None => other.push(c.to_string()),
        }
    }
    engine.sort();
    (engine, other)
}

/// Each planned step's engine calls were made in the planned order (the steps of one
/// level run in parallel, so only the order within a step is fixed).
fn in_order(plan: &str, log: &str) {
    let steps: serde_json::Value = serde_json::from_str(plan).unwrap();
    let made: Vec<&str> = log.lines().collect();
    for step in steps.as_array().unwrap() {
        let mut at = 0;
        for c in step["calls"].as_array().into_iter().flatten() {
            let Some(words) = c.as_array() else { continue };
            let line = words
                .iter()
                .map(|w| w.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(" ");
            match made[at..].iter().position(|m| *m == line) {
                Some(i) => at += i + 1,
                None => panic!("{}: {line} made out of order: {made:#?}", step["name"]),
            }
        }
    }
}

/// A stack that makes a converge use every kind of call: an archive load, a pull
/// (`always`), networks created and one recreated (its container torn down first),
/// store_data and restore_data hooks, a recreate the new one first (temporary name,
/// connect, renames, start), a removal, a start, post_start hooks and health waits.
fn every_call_stack(v: &str, old: bool) -> String {
    let old = if old {
        "  old:\n    image: IMAGE\n    command: [sleep, '3600']\n    init: true\n    stop_grace_period: 1s\n    x-orc: {hooks: {store_data: [sh, -c, 'echo bye']}}\n"
    } else {
        ""
    };
    format!(
        r#"
services:
  db:
    image: IMAGE
    command: [sleep, "3600"]
    init: true
    stop_grace_period: 1s
    environment: {{V: "{v}"}}
    healthcheck: {{test: [CMD, "true"], interval: 1s, retries: 5}}
    networks: [front]
    volumes: ["data:/data"]
    x-orc:
      hooks:
        store_data: [sh, -c, "echo stored >> /data/log"]
        restore_data: [sh, -c, "echo restored >> /data/log"]
  web:
    image: IMAGE
    pull_policy: always
    command: [sleep, "3600"]
    init: true
    stop_grace_period: 1s
    depends_on: {{db: {{condition: service_healthy}}}}
    networks: [front, back]
    x-orc:
      hooks:
        post_start: [sh, -c, "echo started > /tmp/post"]
  arch:
    image: IMAGE
    command: [sleep, "3600"]
    init: true
    stop_grace_period: 2s
    x-orc:
      image_archive: /var/lib/images/test.tar
  idle:
    image: IMAGE
    command: [sleep, "3600"]
    init: true
    stop_grace_period: 1s
{old}networks:
  front:
  back:
    labels: {{v: "{v}"}}
volumes:
  data:
"#
    )
}

/// `plan --argv` (changing nothing), then a converge: the converge makes exactly the
/// planned calls, every one (only the read-only listings and probes are left aside).
fn plan_then_converge(s: &Stack) -> (Vec<String>, Vec<String>) {
    let _ = fs::remove_file(s.sb.path("engine-calls"));
    let before = snapshot(s.sb.root());
    let o = s
        .orc()
        .args(["containers", "plan", "--argv", "--json"])
        .output()
        .unwrap();
    expect_code(&o, 0);
    let read = s.calls();
    let _ = fs::remove_file(s.sb.path("engine-calls"));
    assert_same(&before, &snapshot(s.sb.root()), "plan");
    assert_eq!(
        changing_calls(&read),
        Vec::<String>::new(),
        "plan changed something"
    );
    let (planned, other) = plan_calls(&out(&o));
    let c = s.converge();
    expect_code(&c, 0);
    let log = by_name(&s.calls());
    assert_eq!(planned, changing_calls(&log), "planned vs made");
    in_order(&out(&o), &log);
    (planned, other)
}

fn plan_argv_equals_the_converge_on(engine: &'static str) {
    let s = Stack::on(engine, "every");
    write_mode(&s.sb.path("pull-answered"), "", 0o644);
    let img = match engine {
        "podman" => format!("localhost/{}", image()),
        _ => image(),
    };
    fs::create_dir_all(s.sb.path("var/lib/images")).unwrap();
    let tar = s.sb.path("var/lib/images/test.tar");
    on(engine, &["save", "-o", tar.to_str().unwrap(), &img]);
    s.compose(&every_call_stack("1", true).replace("IMAGE", &img));
    let (first, waits) = plan_then_converge(&s);
    let n = |p: &str| first.iter().filter(|c| c.starts_with(p)).count();
    assert_eq!(
        (n("load "), n("pull "), n("network create")),
        (1, 1, 3),
        "{first:#?}"
    );
    assert!(waits.iter().any(|w| w.contains("healthy")), "{waits:?}");
    on(engine, &["stop", "-t", "1", &s.name("idle")]);
    s.compose(&every_call_stack("2", false).replace("IMAGE", &img));
    let (second, waits) = plan_then_converge(&s);
    let has = |p: &str| second.iter().any(|c| c.starts_with(p));
    for want in [
        "pull ",
        "network rm",
        "network create",
        "rm ",
        "rename ",
        "stop ",
        "create --name",
        &format!("start {}", s.name("idle")),
        &format!("start {}.orc-new", s.name("db")),
        &format!("exec {} sh -c echo bye", s.name("old")),
        &format!("exec {} sh -c echo restored", s.name("db")),
        &format!("exec {} sh -c echo started", s.name("web")),
    ] {
        assert!(has(want), "{want} not planned: {second:#?}");
    }
    assert!(!has("load "), "an unchanged archive is not loaded again");
    assert!(waits.iter().any(|w| w.contains("\"up\"")), "{waits:?}");
    assert_eq!(
        on(engine, &["exec", &s.name("db"), "cat", "/data/log"]),
        "stored\nrestored"
    );
}

#[test]
fn plan_argv_equals_every_call_the_converge_makes() {
    plan_argv_equals_the_converge_on("docker");
}

/// The same on podman (one `run`/`create` per container, healthchecks run by orc).
#[test]
fn plan_argv_equals_every_call_the_converge_makes_on_podman() {
    if podman_here() {
        plan_argv_equals_the_converge_on("podman");
    }
}

/// `orc-test/stub`: the busybox test image whose entrypoint waits (whatever the command)
/// and which answers the stacks' health checks and `/cron.sh`; tagged as each image a
/// stack names (no registry is reachable).
fn stub_images(engine: &str, names: &[&str]) {
    let base = match engine {
        "podman" => format!("localhost/{}", image()),
        _ => image(),
    };
    let dockerfile = format!(
        "FROM {base}\n{}\nENTRYPOINT [\"/orc-stub\"]\n",
        r#"RUN ["/bin/sh", "-c", "mkdir -p /usr/bin && printf '%s\\n' '#!/bin/sh' 'trap \"exit 0\" TERM INT' 'sleep 3600 & wait' > /orc-stub && chmod 755 /orc-stub && ln -s /orc-stub /cron.sh && for c in /usr/bin/healthcheck /bin/mysqladmin /bin/redis-cli; do printf '%s\\n' '#!/bin/sh' 'exit 0' > $c; chmod 755 $c; done"]"#
    );
    let ctx = tempfile::tempdir().unwrap();
    fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    let o = Command::new(engine)
        .args(["build", "-q", "-t", "orc-test/stub:latest"])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{engine} build: {}", err(&o));
    for n in names {
        on(engine, &["tag", "orc-test/stub:latest", n]);
    }
}

/// `ENGINE ARGS`, its stdout trimmed; a failure fails the test.
fn on(engine: &str, args: &[&str]) -> String {
    let o = Command::new(engine).args(args).output().unwrap();
    assert!(o.status.success(), "{engine} {args:?}: {}", err(&o));
    out(&o).trim().to_string()
}

/// Converges one of tests/stacks/ from compose.d as published (its environment.d and
/// side files beside it), then again (nothing changes), and checks every service runs.
fn converge_stack(
    engine: &'static str,
    file: &str,
    extra: &[(&str, &str)],
    images: &[&str],
    containers: &[&str],
) -> Stack {
    let mut s = Stack::on(engine, &file.replace('.', ""));
    s.stacks = Some(stacks_turn());
    stub_images(engine, images);
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/stacks");
    write_mode(
        &s.sb.path(&format!("etc/orc/compose.d/{file}.yaml")),
        &fs::read_to_string(src.join(format!("{file}.yaml"))).unwrap(),
        0o600,
    );
    for (from, to) in extra {
        write_mode(
            &s.sb.path(to),
            &fs::read_to_string(src.join(from)).unwrap(),
            0o600,
        );
    }
    let o = s.converge();
    expect_code(&o, 0);
    for c in containers {
        let running = on(engine, &["inspect", "--format", "{{.State.Running}}", c]);
        assert_eq!(running, "true", "{c} is not running");
    }
    let o = s.converge();
    expect_code(&o, 0);
    assert!(
        s.actions().iter().all(|(_, a)| a == "keep"),
        "a second converge changed something: {:?}",
        s.actions()
    );
    s
}

const ENVD: &str = "usr/libexec/os-refresh-config/environment.d";

#[test]
fn stack_nextcloud_mariadb_redis() {
    let s = converge_stack(
        "docker",
        "nextcloud",
        &[("nextcloud.db.env", "etc/orc/compose.d/db.env")],
        &["mariadb:lts", "redis:alpine", "nextcloud:apache"],
        &[
            "nextcloud-db",
            "nextcloud-redis",
            "nextcloud-app",
            "nextcloud-cron",
        ],
    );
    // The app and cron share the named volume; the app reaches db and redis by name.
    docker(&[
        "exec",
        "nextcloud-app",
        "sh",
        "-c",
        "echo x > /var/www/html/shared",
    ]);
    assert_eq!(
        docker(&["exec", "nextcloud-cron", "cat", "/var/www/html/shared"]),
        "x"
    );
    docker(&["exec", "nextcloud-app", "ping", "-c1", "-W2", "db"]);
    docker(&["exec", "nextcloud-app", "ping", "-c1", "-W2", "redis"]);
    assert_eq!(
        docker(&[
            "exec",
            "nextcloud-app",
            "sh",
            "-c",
            "echo $MYSQL_DATABASE:$MYSQL_HOST"
        ]),
        "nextcloud:db"
    );
    drop(s);
}

#[test]
fn stack_mattermost() {
    let s = converge_stack(
        "docker",
        "mattermost",
        &[("mattermost.env.sh", &format!("{ENVD}/10-mattermost"))],
        &[
            "postgres:13-alpine",
            "mattermost/mattermost-enterprise-edition:10.5.2",
        ],
        &["mattermost-postgres", "mattermost-mattermost"],
    );
    assert_eq!(
        docker(&[
            "exec",
            "mattermost-mattermost",
            "sh",
            "-c",
            "echo $MM_SERVICESETTINGS_SITEURL"
        ]),
        "https://mm.example.com"
    );
    let ro = docker(&[
        "inspect",
        "--format",
        "{{.HostConfig.ReadonlyRootfs}}",
        "mattermost-postgres",
    ]);
    assert_eq!(ro, "true");
    assert!(
        s.sb.path("etc/orc/compose.d/volumes/app/mattermost/config")
            .is_dir(),
        "relative binds are relative to the compose file"
    );
}

#[test]
fn stack_gitea() {
    let _s = converge_stack(
        "docker",
        "gitea",
        &[],
        &["docker.gitea.com/gitea:1.24.5", "docker.io/library/mysql:8"],
        &["gitea", "gitea-db"],
    );
    docker(&["exec", "gitea", "ping", "-c1", "-W2", "db"]);
    let nets = docker(&[
        "inspect",
        "--format",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "gitea",
    ]);
    assert_eq!(nets.trim(), "gitea_gitea");
}

/// Whether docker can run a privileged container. On the test machines it cannot: their
/// processes run with a capability bounding set without CAP_SYS_RESOURCE (CapBnd
/// 000001fffeffffff), and dockerd 20.10 asks the runtime for every capability up to
/// cap_last_cap on `--privileged`, which capset(2) refuses (runc: "unable to apply caps:
/// operation not permitted"; crun 1.8.1 the same: "capset: Operation not permitted").
/// podman 4.3 gives a privileged container its own bounding set, so the stack runs there
/// (`stacks_on_podman`).
fn privileged_works() -> bool {
    Command::new("docker")
        .args(["run", "--rm", "--privileged", &image(), "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn stack_home_assistant() {
    let images = ["ghcr.io/home-assistant/home-assistant:stable"];
    if privileged_works() {
        let _s = converge_stack("docker", "homeassistant", &[], &images, &["homeassistant"]);
        let hc = docker(&[
            "inspect",
            "--format",
            "{{.HostConfig.Privileged}} {{.HostConfig.NetworkMode}}",
            "homeassistant",
        ]);
        assert_eq!(hc, "true host");
        return;
    }
    // Here dockerd's runtime refuses --privileged (see privileged_works): orc asks for it,
    // and reports the engine's refusal on the container.
    let s = Stack::new("homeassistant");
    stub_images("docker", &images);
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/stacks/homeassistant.yaml");
    write_mode(
        &s.sb.path("etc/orc/compose.d/homeassistant.yaml"),
        &fs::read_to_string(src).unwrap(),
        0o600,
    );
    let o = s.converge();
    expect_code(&o, 1);
    let calls = s.calls();
    assert!(
        calls.contains("--network host") && calls.contains("--privileged"),
        "{calls}"
    );
    assert!(err(&o).contains("homeassistant: create"), "{}", err(&o));
    assert!(
        err(&o).contains("unable to apply caps: operation not permitted"),
        "{}",
        err(&o)
    );
}

#[test]
fn stack_owncloud() {
    let s = converge_stack(
        "docker",
        "owncloud",
        &[("owncloud.env.sh", &format!("{ENVD}/10-owncloud"))],
        &["owncloud/server:10.15", "mariadb:10.11", "redis:6"],
        &["owncloud_server", "owncloud_mariadb", "owncloud_redis"],
    );
    for c in ["owncloud_server", "owncloud_mariadb", "owncloud_redis"] {
        let h = docker(&["inspect", "--format", "{{.State.Health.Status}}", c]);
        assert_eq!(
            h, "healthy",
            "{c}: orc's step ends when every healthcheck passes"
        );
    }
    drop(s);
}

/// Each of the five stacks as its compose file and as its JSON specs (tests/stacks/json/):
/// the same plan, the same engine calls (so the same spec hashes in the labels).
#[test]
fn the_stacks_as_json_specs_plan_exactly_as_their_compose_files() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/stacks");
    let stacks: [(&str, &[(&str, &str)]); 5] = [
        (
            "nextcloud",
            &[("nextcloud.db.env", "etc/orc/compose.d/db.env")],
        ),
        ("mattermost", &[("mattermost.env.sh", "ENVD/10-mattermost")]),
        ("gitea", &[]),
        ("homeassistant", &[]),
        ("owncloud", &[("owncloud.env.sh", "ENVD/10-owncloud")]),
    ];
    for (stack, extra) in stacks {
        let s = Stack::new(&format!("json{stack}"));
        for (from, to) in extra {
            write_mode(
                &s.sb.path(&to.replace("ENVD", ENVD)),
                &fs::read_to_string(src.join(from)).unwrap(),
                0o600,
            );
        }
        let plan = || {
            let o = s
                .orc()
                .args(["containers", "plan", "--argv", "--json"])
                .output()
                .unwrap();
            expect_code(&o, 0);
            out(&o)
        };
        let compose = s.sb.path(&format!("etc/orc/compose.d/{stack}.yaml"));
        write_mode(
            &compose,
            &fs::read_to_string(src.join(format!("{stack}.yaml"))).unwrap(),
            0o600,
        );
        let from_compose = plan();
        fs::remove_file(&compose).unwrap();
        let mut files = 0;
        for sub in ["containers.d", "networks.d"] {
            let Ok(dir) = fs::read_dir(src.join("json").join(stack).join(sub)) else {
                continue;
            };
            for f in dir {
                let f = f.unwrap().path();
                let to = s.sb.path(&format!(
                    "etc/orc/{sub}/{}",
                    f.file_name().unwrap().to_str().unwrap()
                ));
                write_mode(&to, &fs::read_to_string(&f).unwrap(), 0o600);
                files += 1;
            }
        }
        assert!(files > 0, "{stack}: no JSON specs");
        let from_json = plan();
        let steps: serde_json::Value = serde_json::from_str(&from_json).unwrap();
        assert!(
            steps
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["calls"].is_array()),
            "{stack}: {from_json}"
        );
        assert_eq!(from_compose, from_json, "{stack}: compose vs JSON");
    }
}

/// Whether podman is installed (`ORC_REQUIRE_PODMAN=1` makes a missing podman a failure).
fn podman_here() -> bool {
    let here = Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !here {
        assert!(
            std::env::var_os("ORC_REQUIRE_PODMAN").is_none(),
            "ORC_REQUIRE_PODMAN is set but podman is not installed"
        );
        eprintln!("podman is not installed: the podman tests did not run");
    }
    here
}

/// The stacks on podman (scripts/container-engine.sh podman; `ORC_REQUIRE_PODMAN=1` makes
/// a missing podman a failure).
#[test]
fn stacks_on_podman() {
    if !podman_here() {
        return;
    }
    let s = converge_stack(
        "podman",
        "nextcloud",
        &[("nextcloud.db.env", "etc/orc/compose.d/db.env")],
        &["mariadb:lts", "redis:alpine", "nextcloud:apache"],
        &[
            "nextcloud-db",
            "nextcloud-redis",
            "nextcloud-app",
            "nextcloud-cron",
        ],
    );
    on(
        "podman",
        &["exec", "nextcloud-app", "ping", "-c1", "-W2", "db"],
    );
    drop(s);
    let s = converge_stack(
        "podman",
        "gitea",
        &[],
        &["docker.gitea.com/gitea:1.24.5", "docker.io/library/mysql:8"],
        &["gitea", "gitea-db"],
    );
    on("podman", &["exec", "gitea", "ping", "-c1", "-W2", "db"]);
    drop(s);
    let s = converge_stack(
        "podman",
        "mattermost",
        &[("mattermost.env.sh", &format!("{ENVD}/10-mattermost"))],
        &[
            "postgres:13-alpine",
            "mattermost/mattermost-enterprise-edition:10.5.2",
        ],
        &["mattermost-postgres", "mattermost-mattermost"],
    );
    assert_eq!(
        on(
            "podman",
            &[
                "exec",
                "mattermost-mattermost",
                "sh",
                "-c",
                "echo $MM_SERVICESETTINGS_SITEURL"
            ]
        ),
        "https://mm.example.com"
    );
    drop(s);
    let s = converge_stack(
        "podman",
        "homeassistant",
        &[],
        &["ghcr.io/home-assistant/home-assistant:stable"],
        &["homeassistant"],
    );
    let hc = on(
        "podman",
        &[
            "inspect",
            "--format",
            "{{.HostConfig.Privileged}} {{.HostConfig.NetworkMode}}",
            "homeassistant",
        ],
    );
    assert_eq!(hc, "true host");
    drop(s);
    let s = converge_stack(
        "podman",
        "owncloud",
        &[("owncloud.env.sh", &format!("{ENVD}/10-owncloud"))],
        &["owncloud/server:10.15", "mariadb:10.11", "redis:6"],
        &["owncloud_server", "owncloud_mariadb", "owncloud_redis"],
    );
    for c in ["owncloud_server", "owncloud_mariadb", "owncloud_redis"] {
        let h = on(
            "podman",
            &["inspect", "--format", "{{.State.Health.Status}}", c],
        );
        assert_eq!(h, "healthy", "{c}");
    }
    drop(s);
}

#[test]
fn the_box_fields_reach_the_engine() {
    let s = Stack::new("fields");
    s.compose(
        r#"
networks:
  lan:
    ipam:
      config: [{subnet: 10.231.7.0/24}]
services:
  box:
    image: IMAGE
    command: [sleep, "3600"]
    init: true
    stop_grace_period: 1s
    pull_policy: never
    dns: [10.0.0.1]
    dns_search: example.org
    dns_opt: ["ndots:2"]
    group_add: ["1234"]
    device_cgroup_rules: ["c 1:3 mr"]
    expose: ["80"]
    oom_score_adj: 5
    mem_limit: 64m
    mem_reservation: 32m
    memswap_limit: -1
    cpu_shares: 512
    cpu_quota: 50000
    cpu_period: 100000
    cpuset: "0"
    pid: host
    ipc: shareable
    uts: host
    oom_kill_disable: true
    cgroup_parent: orc-test
    restart: on-failure:2
    ports: ["127.0.0.1:18000-18001:8000-8001"]
    networks:
      lan:
        ipv4_address: 10.231.7.9
"#,
    );
    let o = s.converge();
    expect_code(&o, 0);
    let f = |fmt: &str| docker(&["inspect", "--format", fmt, &s.name("box")]);
    assert_eq!(
        f(
            "{{.HostConfig.Dns}} {{.HostConfig.DnsSearch}} {{.HostConfig.DnsOptions}} {{.HostConfig.GroupAdd}} {{.HostConfig.DeviceCgroupRules}}"
        ),
        "[10.0.0.1] [example.org] [ndots:2] [1234] [c 1:3 mr]"
    );
    assert_eq!(
        f(
            "{{.HostConfig.OomScoreAdj}} {{.HostConfig.MemoryReservation}} {{.HostConfig.MemorySwap}} {{.HostConfig.CpuShares}} {{.HostConfig.CpuQuota}} {{.HostConfig.CpuPeriod}} {{.HostConfig.CpusetCpus}}"
        ),
        "5 33554432 -1 512 50000 100000 0"
    );
    assert_eq!(
        f(
            "{{.HostConfig.PidMode}} {{.HostConfig.IpcMode}} {{.HostConfig.UTSMode}} {{.HostConfig.OomKillDisable}} {{.HostConfig.CgroupParent}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "host shareable host true orc-test on-failure:2"
    );
    let net = format!("{}_lan", s.project);
    assert_eq!(
        f(&format!(
            "{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"
        )),
        "10.231.7.9"
    );
    assert!(f("{{json .HostConfig.PortBindings}}").contains("18001"));
    assert!(f("{{json .Config.ExposedPorts}}").contains("80/tcp"));
    // Converged again: nothing changes (every field hashes the same way each time).
    let o = s.converge();
    expect_code(&o, 0);
    assert!(
        s.actions().iter().all(|(_, a)| a == "keep"),
        "{:?}",
        s.actions()
    );
}

#[test]
fn reconcile_names_and_force_recreate() {
    let s = Stack::new("tgt");
    let text = |v: &str| {
        format!(
            r#"
services:
  db:
    image: IMAGE
    command: [sleep, "3600"]
    init: true
    stop_grace_period: 1s
    environment: {{V: "{v}"}}
    volumes: ["data:/data"]
    x-orc:
      hooks:
        store_data: [sh, -c, "echo stored >> /data/log"]
  web:
    image: IMAGE
    command: [sleep, "3600"]
    init: true
    stop_grace_period: 1s
    environment: {{V: "{v}"}}
    depends_on: [db]
  mail:
    image: IMAGE
    command: [sleep, "3600"]
    init: true
    stop_grace_period: 1s
    environment: {{V: "{v}"}}
volumes:
  data:
"#
        )
    };
    s.compose(&text("1"));
    expect_code(&s.converge(), 0);
    let id = |svc: &str| docker(&["inspect", "--format", "{{.Id}}", &s.name(svc)]);
    let (db, web, mail) = (id("db"), id("web"), id("mail"));
    s.compose(&text("2"));
    let reconcile = |args: &[&str]| {
        let _ = fs::remove_file(s.sb.path("engine-calls"));
        s.orc()
            .args(["containers", "reconcile"])
            .args(args)
            .output()
            .unwrap()
    };
    let o = reconcile(&[&s.name("web")]);
    expect_code(&o, 0);
    assert_ne!(id("web"), web, "web was recreated");
    assert_ne!(id("db"), db, "its dependency too");
    assert_eq!(id("mail"), mail, "mail was left as it is");
    assert!(
        out(&o).contains(&s.name("web")) && !out(&o).contains(&s.name("mail")),
        "{}",
        out(&o)
    );
    // Forced: an up-to-date container is recreated through the normal path (store_data).
    let (db, web) = (id("db"), id("web"));
    let o = reconcile(&["--force-recreate", &s.name("db"), &s.name("db")]);
    expect_code(&o, 0);
    assert_ne!(id("db"), db);
    assert_eq!(id("web"), web);
    assert_eq!(
        s.exec("db", "cat /data/log"),
        "stored\nstored",
        "store_data ran for each recreation"
    );
    assert!(out(&o).contains("forced (--force-recreate)"), "{}", out(&o));
    let o = reconcile(&["ghost"]);
    expect_code(&o, 2);
    assert!(
        err(&o).contains("no container \"ghost\" in the specs"),
        "{}",
        err(&o)
    );
    assert_eq!(s.calls(), "", "no engine call for an unknown name");
    // A container whose file is invalid: the refusal names the file and its error.
    let broken = s.sb.path("etc/orc/containers.d/broken.json");
    write_mode(
        &broken,
        &format!(
            r#"{{"name": "{}", "image": "i", "privileged": "yes"}}"#,
            s.name("broken")
        ),
        0o600,
    );
    let o = reconcile(&[&s.name("broken")]);
    expect_code(&o, 2);
    let e = err(&o);
    assert!(
        e.contains(&format!(
            "container \"{}\" is not valid: {}",
            s.name("broken"),
            broken.display()
        )) && e.contains("expected a boolean"),
        "{e}"
    );
    fs::remove_file(&broken).unwrap();
    // A compose file that cannot be read: its name and error are given too.
    let bad_compose = s.sb.path("etc/orc/compose.d/zz-bad.yaml");
    write_mode(
        &bad_compose,
        "services:\n  late:\n    image: IMAGE\n    deploy: {}\n",
        0o600,
    );
    let o = reconcile(&["late"]);
    expect_code(&o, 2);
    let e = err(&o);
    assert!(
        e.contains("no container \"late\" in the valid specs; not read: ")
            && e.contains(&format!("{}: line 4, column 5: ", bad_compose.display())),
        "{e}"
    );
    assert_eq!(s.calls(), "", "no engine call for an invalid file");
    fs::remove_file(&bad_compose).unwrap();
    // A full converge then does the rest.
    expect_code(&s.converge(), 0);
    assert_ne!(id("mail"), mail);
}

#[test]
fn progress_lines_on_a_terminal_only() {
    let s = Stack::new("tty");
    // Ready after 6 s: orc's first note comes after 2 s of waiting, even when the
    // engine took seconds to start it (a loaded host, another checkout's tests).
    s.compose(
        r#"
services:
  slow:
    image: IMAGE
    command: [sh, -c, "sleep 6; touch /tmp/ready; exec sleep 3600"]
    init: true
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 500ms
      retries: 20
"#,
    );
    // Not a terminal (as under systemd or in a pipe): no progress lines.
    let o = s.orc().args(["containers", "reconcile"]).output().unwrap();
    expect_code(&o, 0);
    assert!(!err(&o).contains("waiting for"), "{}", err(&o));
    docker(&["rm", "-f", &s.name("slow")]);
    // On a terminal (script(1) gives it one): pulling/creating and the health wait with
    // the elapsed time.
    let cmd = format!(
        "env -i PATH={}:{} {} --root {} containers reconcile",
        s.sb.path("bin").display(),
        std::env::var("PATH").unwrap(),
        bin().display(),
        s.sb.root().display()
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    expect_code(&o, 0);
    let text = out(&o);
    assert!(
        text.contains(&format!("containers: create {}", s.name("slow"))),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "containers: waiting for {} to be healthy (",
            s.name("slow")
        )),
        "{text}"
    );
}
