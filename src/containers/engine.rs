//! The container engine, driven through its CLI (`docker` or `podman`: one
//! code path, two small dialects), its JSON output parsed, its stderr kept in
//! errors. The CLI sits behind [`Runner`], so the converge's ordering,
//! batching and failure handling are unit-tested with a fake.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::args;
use super::network::ActualNet;
use super::plan::{Actual, Health};
use crate::config::Engine as Kind;
use crate::error::{Error, Result};
use crate::exec::{self, CArgs, Job, Output, Program};

pub const MANAGED: &str = "orc.managed";
pub const SCOPE: &str = "orc.scope";
pub const INFRA: &str = "orc.infra-version";
pub const HASH: &str = "orc.spec-hash";
pub const STORE: &str = "orc.store-data";
pub const STOP_TIMEOUT: &str = "orc.stop-timeout";
pub const NET_HASH: &str = "orc.network-hash";

pub const FOR: &str = "orc.for";

/// How long a rollback's engine calls may run past the run's deadline.
pub const LATE: Duration = Duration::from_secs(30);

/// How an engine call failed: its exit code and stderr kept apart, so decisions look at
/// the code or at the engine's state, never at the message text.
#[derive(Debug)]
pub enum EngineError {
    /// The CLI ran and failed (or timed out).
    Exit {
        call: String,
        code: i32,
        timed_out: bool,
        stderr: String,
    },
    /// It could not run, or orc was interrupted.
    Other(Error),
}

impl EngineError {
    /// The CLI's exit code, when it ran to an end.
    pub fn code(&self) -> Option<i32> {
        match self {
            EngineError::Exit {
                code,
                timed_out: false,
                ..
            } => Some(*code),
            _ => None,
        }
    }
}

impl From<EngineError> for Error {
    fn from(e: EngineError) -> Error {
        match e {
            EngineError::Exit {
                call,
                code,
                timed_out,
                stderr,
            } => {
                let how = if timed_out {
                    "timed out".to_string()
                } else {
                    format!("failed (exit {code})")
                };
                Error::Failed(format!("{call} {how}: {stderr}"))
            }
            EngineError::Other(e) => e,
        }
    }
}

pub type EngineResult<T> = std::result::Result<T, EngineError>;

/// Runs the engine's CLI: the one place a converge reaches the engine.
pub trait Runner: Send + Sync {
    /// `bin args` with stdout captured (fds in `extra` at 3, 4, ...); a failure carries
    /// its exit code and the tail of stderr.
    fn call(&self, args: &[String], extra: &[BorrowedFd]) -> EngineResult<Vec<u8>>;
    /// `bin args` with its output relayed to orc's (hooks run inside containers); `what`
    /// names it in the error.
    fn relay(&self, args: &[String], what: &str) -> Result<()>;
    /// This runner for a rollback: its calls run to at least `grace` from now (past the
    /// run's deadline, or after a signal to orc) and on when orc is asked to stop, so
    /// they still put the old container back. `None`: the same runner will do.
    fn late(&self, _grace: Duration) -> Option<Box<dyn Runner>> {
        None
    }
}

/// The engine a rollback uses (see [`Engine::late`]): one of its own, or the run's.
pub enum Late<'a> {
    Own(Engine),
    Same(&'a Engine),
}

impl std::ops::Deref for Late<'_> {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        match self {
            Late::Own(e) => e,
            Late::Same(e) => e,
        }
    }
}

/// The real CLI, through the process engine (own process group, the run's deadline,
/// signals forwarded).
pub struct Cli {
    bin: &'static str,
    program: CString,
    env: std::sync::Arc<CArgs>,
    deadline: Option<Instant>,
    live: crate::procs::Live,
    /// Its calls run on when orc is asked to stop (a rollback's).
    shielded: bool,
}

impl Cli {
    fn job<'a>(&'a self, argv: &'a CArgs, extra: &'a [BorrowedFd<'a>], name: &'a str) -> Job<'a> {
        Job {
            program: Program::Path(&self.program),
            argv,
            env: &self.env,
            extra,
            env_extra: None,
            name,
            live: &self.live,
            shielded: self.shielded,
        }
    }

    fn argv(&self, args: &[String]) -> CArgs {
        CArgs::new(std::iter::once(OsStr::new(self.bin)).chain(args.iter().map(OsStr::new)))
    }
}

impl Runner for Cli {
    fn call(&self, args: &[String], extra: &[BorrowedFd]) -> EngineResult<Vec<u8>> {
        let shown = format!(
            "{} {}",
            self.bin,
            args.iter().take(2).cloned().collect::<Vec<_>>().join(" ")
        );
        let argv = self.argv(args);
        let out = exec::run(
            &self.job(&argv, extra, &shown),
            self.deadline,
            Output::Capture,
        )
        .map_err(EngineError::Other)?;
        if let Some(sig) = out.interrupted {
            return Err(EngineError::Other(Error::Interrupted(sig)));
        }
        if out.exit.success() {
            return Ok(out.captured);
        }
        Err(EngineError::Exit {
            call: shown,
            code: out.exit.shell_code(),
            timed_out: out.timed_out,
            stderr: out.last_lines(3),
        })
    }

    fn relay(&self, args: &[String], what: &str) -> Result<()> {
        let argv = self.argv(args);
        let out = exec::run(&self.job(&argv, &[], what), self.deadline, Output::Relay)
            .map_err(|e| e.context(what))?;
        if let Some(sig) = out.interrupted {
            return Err(Error::Interrupted(sig));
        }
        if out.exit.success() {
            return Ok(());
        }
        Err(Error::Failed(out.failure(what)))
    }

    fn late(&self, grace: Duration) -> Option<Box<dyn Runner>> {
        let now = Instant::now();
        // Without a deadline or a signal to orc its calls stay unbounded, as before.
        let deadline = match (self.deadline, crate::signals::pending()) {
            (None, None) => None,
            (d, _) => Some(d.map_or(now + grace, |d| d.max(now + grace))),
        };
        Some(Box::new(Cli {
            bin: self.bin,
            program: self.program.clone(),
            env: self.env.clone(),
            deadline,
            live: self.live.clone(),
            shielded: true,
        }))
    }
}

fn on_path(bin: &str) -> Option<CString> {
    exec::find_program(OsStr::new(bin))
}

fn bin_of(kind: Kind) -> &'static str {
    match kind {
        Kind::Docker => "docker",
        Kind::Podman => "podman",
    }
}

/// The configured engine, else docker when its CLI and socket are there, else podman;
/// the error says which CLI is missing.
pub fn choose(configured: Option<Kind>) -> Result<(Kind, CString)> {
    if let Some(k) = configured {
        return on_path(bin_of(k)).map(|p| (k, p)).ok_or_else(|| {
            Error::Failed(format!(
                "no container engine: {} (containers.engine) is not on PATH",
                bin_of(k)
            ))
        });
    }
    let docker_up =
        std::env::var_os("DOCKER_HOST").is_some() || Path::new("/var/run/docker.sock").exists();
    match (on_path("docker"), on_path("podman")) {
        (Some(d), p) if docker_up || p.is_none() => Ok((Kind::Docker, d)),
        (_, Some(p)) => Ok((Kind::Podman, p)),
        (Some(d), None) => Ok((Kind::Docker, d)),
        (None, None) => Err(Error::Failed(
            "no container engine: neither docker nor podman is on PATH".into(),
        )),
    }
}

/// One row of `ps`: docker's (from [`docker_template`]) and podman's `--format json` agree on these.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsRow {
    id: String,
    names: Names,
    state: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    networks: Option<Names>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// A name list: docker prints one comma-separated string, podman a JSON array.
#[derive(Deserialize)]
#[serde(untagged)]
enum Names {
    One(String),
    Many(Vec<String>),
}

impl Names {
    fn all(self) -> Vec<String> {
        match self {
            Names::One(s) => s
                .split(',')
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect(),
            Names::Many(v) => v,
        }
    }
}

fn label_fields(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("\"{k}\":{{{{json (.Label \"{k}\")}}}}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A `docker ps` Go template printing one JSON object per container with the labels orc reads.
pub fn docker_template() -> String {
    format!(
        "{{\"Id\":{{{{json .ID}}}},\"Names\":{{{{json .Names}}}},\"State\":{{{{json .State}}}},\"Status\":{{{{json .Status}}}},\"Networks\":{{{{json .Networks}}}},\"Labels\":{{{}}}}}",
        label_fields(&[MANAGED, SCOPE, INFRA, HASH, STORE, STOP_TIMEOUT, FOR])
    )
}

/// A `docker network ls` template in the shape of podman's JSON.
pub fn docker_network_template() -> String {
    format!(
        "{{\"name\":{{{{json .Name}}}},\"labels\":{{{}}}}}",
        label_fields(&[MANAGED, SCOPE, NET_HASH])
    )
}

/// JSON output of a list command: an array (podman) or one object per line (docker's template).
fn rows<T: serde::de::DeserializeOwned>(
    out: &[u8],
) -> std::result::Result<Vec<T>, serde_json::Error> {
    let text = String::from_utf8_lossy(out);
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(&text);
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect()
}

/// The non-empty labels of an object orc manages; `None` for anyone else's.
fn managed(labels: Option<BTreeMap<String, String>>) -> Option<BTreeMap<String, String>> {
    let labels: BTreeMap<String, String> = labels
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    (labels.get(MANAGED).map(String::as_str) == Some("true")).then_some(labels)
}

/// Parses `ps` output into the managed containers (of every scope).
pub fn parse_ps(out: &[u8]) -> std::result::Result<Vec<Actual>, serde_json::Error> {
    let rows: Vec<PsRow> = rows(out)?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let labels = managed(r.labels)?;
            let name = r.names.all().into_iter().next().unwrap_or_default();
            Some(Actual {
                id: r.id,
                name: name.trim_start_matches('/').to_string(),
                running: r.state == "running",
                spec_hash: labels.get(HASH).cloned(),
                infra_version: labels.get(INFRA).cloned(),
                store_data: labels
                    .get(STORE)
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or_default(),
                stop_timeout: labels.get(STOP_TIMEOUT).and_then(|s| s.parse().ok()),
                scope: labels.get(SCOPE).cloned(),
                for_name: labels.get(FOR).cloned(),
                health: Health::from_status(&r.status),
                networks: r.networks.map(Names::all).unwrap_or_default(),
            })
        })
        .collect())
}

#[derive(Deserialize)]
struct NetRow {
    name: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Parses `network ls` output into the managed networks (of every scope).
pub fn parse_networks(out: &[u8]) -> std::result::Result<Vec<ActualNet>, serde_json::Error> {
    let rows: Vec<NetRow> = rows(out)?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let labels = managed(r.labels)?;
            Some(ActualNet {
                name: r.name,
                scope: labels.get(SCOPE).cloned(),
                hash: labels.get(NET_HASH).cloned(),
            })
        })
        .collect())
}

/// A container's state from `inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// `running`, `exited`, `created`, ...
    pub status: String,
    pub exit_code: i64,
    pub health: Option<String>,
    /// The last check's exit code and output.
    pub last_check: Option<(i64, String)>,
    /// How often the engine restarted it.
    pub restarts: i64,
    /// Why the engine could not start it, if it said.
    pub error: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectRow {
    state: InspectState,
    #[serde(default)]
    restart_count: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectState {
    #[serde(default)]
    status: String,
    #[serde(default)]
    exit_code: i64,
    #[serde(default, alias = "Healthcheck")]
    health: Option<InspectHealth>,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectHealth {
    #[serde(default)]
    status: String,
    #[serde(default)]
    log: Option<Vec<CheckLog>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CheckLog {
    #[serde(default)]
    exit_code: i64,
    #[serde(default)]
    output: String,
}

pub fn parse_inspect(out: &[u8]) -> std::result::Result<Inspected, serde_json::Error> {
    let rows: Vec<InspectRow> = serde_json::from_slice(out)?;
    let Some(r) = rows.into_iter().next() else {
        return Err(serde::de::Error::custom("empty inspect output"));
    };
    let health = r.state.health.filter(|h| !h.status.is_empty());
    Ok(Inspected {
        status: r.state.status,
        exit_code: r.state.exit_code,
        last_check: health
            .as_ref()
            .and_then(|h| h.log.as_ref())
            .and_then(|l| l.last())
            .map(|c| (c.exit_code, c.output.trim().to_string())),
        health: health.map(|h| h.status),
        restarts: r.restart_count,
        error: r.state.error,
    })
}

/// The engine: its dialect and the runner that reaches it.
pub struct Engine {
    pub kind: Kind,
    runner: Box<dyn Runner>,
}

fn strings<S: AsRef<str>>(args: &[S]) -> Vec<String> {
    args.iter().map(|a| a.as_ref().to_string()).collect()
}

impl Engine {
    pub fn new(kind: Kind, runner: Box<dyn Runner>) -> Engine {
        Engine { kind, runner }
    }

    /// The CLI engine (configured or found), under the run's deadline.
    pub fn cli(
        configured: Option<Kind>,
        deadline: Option<Instant>,
        live: crate::procs::Live,
    ) -> Result<Engine> {
        let (kind, program) = choose(configured)?;
        let env = std::sync::Arc::new(CArgs::env(&crate::envd::inherited()));
        let cli = Cli {
            bin: bin_of(kind),
            program,
            env,
            deadline,
            live,
            shielded: false,
        };
        Ok(Engine::new(kind, Box::new(cli)))
    }

    /// This engine for putting an old container back: its calls run to [`LATE`] from
    /// now, past the run's deadline and a signal to orc (or this one, when it will do).
    pub fn late(&self) -> Late<'_> {
        match self.runner.late(LATE) {
            Some(runner) => Late::Own(Engine::new(self.kind, runner)),
            None => Late::Same(self),
        }
    }

    pub fn bin(&self) -> &'static str {
        bin_of(self.kind)
    }

    pub fn call<S: AsRef<str>>(&self, args: &[S]) -> Result<Vec<u8>> {
        Ok(self.runner.call(&strings(args), &[])?)
    }

    /// A call whose failure the caller decides on (by exit code or the engine's state).
    pub fn try_call<S: AsRef<str>>(&self, args: &[S]) -> EngineResult<Vec<u8>> {
        self.runner.call(&strings(args), &[])
    }

    /// Every managed container and network (of every scope), listed in parallel.
    pub fn list(&self) -> Result<(Vec<Actual>, Vec<ActualNet>)> {
        let (ps, nets) = std::thread::scope(|s| {
            let nets = crate::threads::start(s, "orc-list", || self.networks());
            (self.ps(), nets.join())
        });
        let nets =
            nets.ok_or_else(|| Error::Failed("listing networks: the thread panicked".into()));
        Ok((ps?, nets??))
    }

    fn ps(&self) -> Result<Vec<Actual>> {
        let format = match self.kind {
            Kind::Docker => docker_template(),
            Kind::Podman => "json".to_string(),
        };
        let filter = format!("label={MANAGED}=true");
        let out = self.call(&[
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &filter,
            "--format",
            &format,
        ])?;
        parse_ps(&out)
            .map_err(|e| Error::Failed(format!("{} ps: unexpected output: {e}", self.bin())))
    }

    fn networks(&self) -> Result<Vec<ActualNet>> {
        let format = match self.kind {
            Kind::Docker => docker_network_template(),
            Kind::Podman => "json".to_string(),
        };
        let filter = format!("label={MANAGED}=true");
        let out = self.call(&["network", "ls", "--filter", &filter, "--format", &format])?;
        parse_networks(&out).map_err(|e| {
            Error::Failed(format!("{} network ls: unexpected output: {e}", self.bin()))
        })
    }

    /// One graceful `stop` for several containers.
    pub fn stop(&self, ids: &[String], timeout: u32) -> Result<()> {
        self.call(&args::stop(ids, timeout)).map(drop)
    }

    /// One `rm` for several containers; a single container already gone counts as
    /// removed (asked of the engine, not read from the message).
    pub fn rm(&self, ids: &[String]) -> Result<()> {
        match self.try_call(&args::rm(ids)) {
            Err(e @ EngineError::Exit { .. }) if ids.len() == 1 => {
                if self.exists(&ids[0])? {
                    Err(e.into())
                } else {
                    Ok(())
                }
            }
            r => Ok(r.map(drop)?),
        }
    }

    /// `rm -f` of a container orc just made and never put into service.
    pub fn discard(&self, id: &str) -> Result<()> {
        match self.try_call(&args::discard(id)) {
            Err(e @ EngineError::Exit { .. }) if self.exists(id)? => Err(e.into()),
            Err(EngineError::Other(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// Whether a container of this name or (full) id exists. The engine also takes a
    /// prefix of another container's id for a name (`db` finds `db7c0…`): what it
    /// found must be named so.
    pub fn exists(&self, name: &str) -> Result<bool> {
        match self.try_call(&[
            "inspect",
            "--type",
            "container",
            "--format",
            "{{.Id}} {{.Name}}",
            name,
        ]) {
            Ok(out) => {
                let out = String::from_utf8_lossy(&out);
                let (id, found) = out.trim().split_once(' ').unwrap_or((out.trim(), ""));
                Ok(id == name || found.trim_start_matches('/') == name)
            }
            Err(EngineError::Exit {
                timed_out: false, ..
            }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether a network of this name exists.
    pub fn network_exists(&self, name: &str) -> Result<bool> {
        match self.try_call(&["network", "inspect", "--format", "{{.Name}}", name]) {
            Ok(_) => Ok(true),
            Err(EngineError::Exit {
                timed_out: false, ..
            }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The last lines a container wrote to its stdout.
    pub fn last_output(&self, name: &str) -> String {
        self.call(&["logs", "--tail", "5", name])
            .map(|o| {
                let t = String::from_utf8_lossy(&o);
                let lines: Vec<&str> = t.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
                lines.join(" / ")
            })
            .unwrap_or_default()
    }

    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.call(&args::rename(from, to)).map(drop)
    }

    /// The image IDs `refs` resolve to (`None` for an image that is not there): one call
    /// when every image is there, else one per image.
    pub fn image_ids(&self, refs: &[String]) -> Result<Vec<Option<String>>> {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let mut a = strings(&["image", "inspect", "--format", "{{.Id}}"]);
        a.extend_from_slice(refs);
        if let Ok(out) = self.try_call(&a) {
            let ids: Vec<String> = String::from_utf8_lossy(&out)
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect();
            if ids.len() == refs.len() {
                return Ok(ids.into_iter().map(Some).collect());
            }
        }
        refs.iter().map(|r| self.image_id(r)).collect()
    }

    /// The image ID `image` resolves to, `None` when it is not there.
    pub fn image_id(&self, image: &str) -> Result<Option<String>> {
        match self.try_call(&["image", "inspect", "--format", "{{.Id}}", image]) {
            Ok(out) => Ok(Some(String::from_utf8_lossy(&out).trim().to_string())),
            Err(EngineError::Exit {
                timed_out: false, ..
            }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub fn pull(&self, image: &str) -> Result<()> {
        self.call(&args::pull(image)).map(drop)
    }

    /// One `start` for several containers.
    pub fn start(&self, names: &[String]) -> Result<()> {
        self.call(&args::start(names)).map(drop)
    }

    pub fn inspect(&self, name: &str) -> Result<Inspected> {
        let out = self.call(&["inspect", "--type", "container", name])?;
        parse_inspect(&out)
            .map_err(|e| Error::Failed(format!("{} inspect: unexpected output: {e}", self.bin())))
    }

    /// The `orc.scope` label of a container (`None` when it has none).
    pub fn scope_of(&self, name: &str) -> Result<Option<String>> {
        let format = format!("{{{{index .Config.Labels \"{SCOPE}\"}}}}");
        let out = self.call(&["inspect", "--type", "container", "--format", &format, name])?;
        let s = String::from_utf8_lossy(&out).trim().to_string();
        Ok((!s.is_empty() && s != "<no value>").then_some(s))
    }

    /// Runs a container's healthcheck once (podman: without systemd nothing else runs it).
    pub fn healthcheck_run(&self, name: &str) -> Result<()> {
        match self.try_call(&["healthcheck", "run", name]) {
            Ok(_) => Ok(()),
            // Exit 1 is "unhealthy": the state is read by inspect.
            Err(e) if e.code() == Some(1) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A hook inside a container: `engine exec NAME argv...`, output relayed.
    pub fn exec(&self, name: &str, argv: &[String], what: &str) -> Result<()> {
        self.runner.relay(&args::exec(name, argv), what)
    }

    /// `engine load` from an open archive (given as fd 3).
    pub fn load(&self, fd: BorrowedFd) -> Result<()> {
        Ok(self.runner.call(&args::load(), &[fd]).map(drop)?)
    }

    pub fn network_rm(&self, name: &str) -> Result<()> {
        self.call(&args::network_rm(name)).map(drop)
    }

    pub fn network_connect(&self, net: &str, container: &str, opts: &[String]) -> Result<()> {
        self.call(&args::network_connect(net, container, opts))
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_and_podman_ps() {
        let docker = br#"{"Id":"abc","Names":"web","State":"running","Status":"Up 2 minutes (healthy)","Networks":"front,back","Labels":{"orc.managed":"true","orc.scope":"box1","orc.infra-version":"7","orc.spec-hash":"h1","orc.store-data":"[\"sh\",\"-c\",\"a,b\"]","orc.stop-timeout":"3"}}
{"Id":"def","Names":"db","State":"exited","Status":"Exited (0)","Networks":"","Labels":{"orc.managed":"true","orc.scope":"","orc.infra-version":"","orc.spec-hash":"","orc.store-data":"","orc.stop-timeout":""}}
"#;
        let a = parse_ps(docker).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].name.as_str(), a[0].running), ("web", true));
        assert_eq!(a[0].spec_hash.as_deref(), Some("h1"));
        assert_eq!(a[0].store_data, ["sh", "-c", "a,b"]);
        assert_eq!(a[0].stop_timeout, Some(3));
        assert_eq!(a[0].scope.as_deref(), Some("box1"));
        assert_eq!(a[0].health, Health::Healthy);
        assert_eq!(a[0].networks, ["front", "back"]);
        assert_eq!(
            (
                a[1].running,
                a[1].spec_hash.clone(),
                a[1].store_data.len(),
                a[1].scope.clone()
            ),
            (false, None, 0, None)
        );
        let podman = br#"[{"Id":"x1","Names":["db"],"State":"running","Status":"Up 1 second ago (starting)","Networks":["podman"],"Labels":{"orc.managed":"true","orc.scope":"b","other":"x"},"Extra":1},
            {"Id":"x2","Names":["mine"],"State":"running","Labels":null}]"#;
        let a = parse_ps(podman).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].name.as_str(), a[0].running, a[0].health),
            ("db", true, Health::Starting)
        );
    }

    #[test]
    fn parses_networks_and_inspect() {
        let docker = br#"{"name":"front","labels":{"orc.managed":"true","orc.scope":"s","orc.network-hash":"h"}}
{"name":"bridge","labels":{"orc.managed":"","orc.scope":"","orc.network-hash":""}}"#;
        let n = parse_networks(docker).unwrap();
        assert_eq!(
            n,
            [ActualNet {
                name: "front".into(),
                scope: Some("s".into()),
                hash: Some("h".into())
            }]
        );
        let podman = br#"[{"name":"front","id":"91","driver":"bridge","labels":{"orc.managed":"true","orc.scope":"s"}}]"#;
        assert_eq!(parse_networks(podman).unwrap()[0].hash, None);
        let i = parse_inspect(br#"[{"Name":"/db","State":{"Status":"running","ExitCode":0,"Health":{"Status":"unhealthy","FailingStreak":3,"Log":[{"ExitCode":1,"Output":"a\n"},{"ExitCode":1,"Output":"not ready\n"}]}}}]"#).unwrap();
        assert_eq!(i.health.as_deref(), Some("unhealthy"));
        assert_eq!(i.last_check, Some((1, "not ready".into())));
        let i = parse_inspect(br#"[{"State":{"Status":"exited","ExitCode":3}}]"#).unwrap();
        assert_eq!(
            (i.status.as_str(), i.exit_code, i.health),
            ("exited", 3, None)
        );
    }

    #[test]
    fn docker_templates_are_json_shaped() {
        let t = docker_template();
        assert!(
            t.starts_with(r#"{"Id":{{json .ID}},"Names":{{json .Names}}"#),
            "{t}"
        );
        assert!(
            t.contains(r#""orc.scope":{{json (.Label "orc.scope")}}"#),
            "{t}"
        );
        assert!(t.ends_with("}}}"), "{t}");
        let n = docker_network_template();
        assert!(
            n.starts_with(r#"{"name":{{json .Name}},"labels":{"orc.managed""#),
            "{n}"
        );
    }
}
