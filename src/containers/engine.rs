//! The container engine, driven through its CLI (`docker` or `podman`: one
//! code path, two small dialects), its JSON output parsed, its stderr kept in
//! errors.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Deserialize;

use super::plan::Actual;
use crate::config::Engine as Kind;
use crate::error::{Error, Result};
use crate::exec::{self, CArgs, Job, Output, Program};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

pub const MANAGED: &str = "orc.managed";
pub const INFRA: &str = "orc.infra-version";
pub const HASH: &str = "orc.spec-hash";
pub const STORE: &str = "orc.store-data";
pub const STOP_TIMEOUT: &str = "orc.stop-timeout";

/// One engine CLI, found on PATH once, run through the process engine (own process
/// group, the run's deadline, signals forwarded).
#[derive(Debug)]
pub struct Engine {
    pub kind: Kind,
    program: Option<PathBuf>,
    env: CArgs,
    pub deadline: Option<Instant>,
}

fn on_path(bin: &str) -> bool {
    exec::find_program(OsStr::new(bin)).is_some()
}

/// One row of `ps`: docker's (from [`docker_template`]) and podman's `--format json` agree on these.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsRow {
    id: String,
    names: Names,
    state: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Names {
    One(String),
    Many(Vec<String>),
}

/// A `docker ps` Go template printing one JSON object per container with the labels orc reads.
pub fn docker_template() -> String {
    let labels: Vec<String> = [MANAGED, INFRA, HASH, STORE, STOP_TIMEOUT]
        .iter()
        .map(|k| format!("\"{k}\":{{{{json (.Label \"{k}\")}}}}"))
        .collect();
    format!(
        "{{\"Id\":{{{{json .ID}}}},\"Names\":{{{{json .Names}}}},\"State\":{{{{json .State}}}},\"Labels\":{{{}}}}}",
        labels.join(",")
    )
}

/// Parses `ps` output: a JSON array (podman) or one JSON object per line (docker's template).
pub fn parse_ps(out: &[u8]) -> std::result::Result<Vec<Actual>, serde_json::Error> {
    let text = String::from_utf8_lossy(out);
    let rows: Vec<PsRow> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text)?
    } else {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<std::result::Result<_, _>>()?
    };
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let labels: BTreeMap<String, String> = r
                .labels
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .collect();
            let name = match r.names {
                Names::One(n) => n,
                Names::Many(v) => v.into_iter().next().unwrap_or_default(),
            };
            (labels.get(MANAGED).map(String::as_str) == Some("true")).then(|| Actual {
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
            })
        })
        .collect())
}

impl Engine {
    /// The configured engine, else docker when its CLI and socket are there, else podman.
    pub fn choose(configured: Option<Kind>) -> Engine {
        let kind = configured.unwrap_or_else(|| {
            let docker_up = std::env::var_os("DOCKER_HOST").is_some()
                || Path::new("/var/run/docker.sock").exists();
            if on_path("docker") && (docker_up || !on_path("podman")) {
                Kind::Docker
            } else {
                Kind::Podman
            }
        });
        let program = exec::find_program(OsStr::new(match kind {
            Kind::Docker => "docker",
            Kind::Podman => "podman",
        }))
        .map(|c| PathBuf::from(OsString::from_vec(c.into_bytes())));
        let env = CArgs::env(
            crate::envd::inherited()
                .iter()
                .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
                .collect::<Vec<_>>(),
        );
        Engine {
            kind,
            program,
            env,
            deadline: None,
        }
    }

    /// The engine's CLI, or an error saying it is missing.
    fn program(&self) -> Result<&Path> {
        self.program.as_deref().ok_or_else(|| {
            Error::Failed(format!(
                "no container engine: {} is not on PATH",
                self.bin()
            ))
        })
    }

    pub fn bin(&self) -> &'static str {
        match self.kind {
            Kind::Docker => "docker",
            Kind::Podman => "podman",
        }
    }

    /// Runs `bin args` (fds in `extra` at 3, 4, ...), returning stdout; the error carries
    /// the tail of stderr.
    pub fn call_with<S: AsRef<OsStr>>(&self, args: &[S], extra: &[BorrowedFd]) -> Result<Vec<u8>> {
        let program = self.program()?;
        let shown = || {
            let first: Vec<String> = args
                .iter()
                .take(2)
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect();
            format!("{} {}", self.bin(), first.join(" "))
        };
        let exe = std::ffi::CString::new(program.as_os_str().as_bytes())
            .map_err(|_| Error::Failed(format!("{}: NUL in path", program.display())))?;
        let argv = CArgs::new(
            std::iter::once(OsStr::new(self.bin())).chain(args.iter().map(|a| a.as_ref())),
        );
        let name = shown();
        let job = Job {
            program: Program::Path(&exe),
            argv: &argv,
            env: &self.env,
            extra,
            env_extra: None,
            name: &name,
        };
        let out = exec::run(&job, self.deadline, Output::Capture, &mut |_| {})?;
        if let Some(sig) = out.interrupted {
            return Err(Error::Interrupted(sig));
        }
        if out.exit.success() {
            return Ok(out.captured);
        }
        let err = String::from_utf8_lossy(&out.tail);
        let tail: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(3)..].join(" / ");
        let how = if out.timed_out {
            "timed out".to_string()
        } else {
            format!("failed (exit {})", out.exit.shell_code())
        };
        Err(Error::Failed(format!("{} {how}: {}", shown(), tail.trim())))
    }

    /// [`Engine::call_with`] without extra fds.
    pub fn call<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Vec<u8>> {
        self.call_with(args, &[])
    }

    /// The env and program for running an argv inside a container (`engine exec NAME ...`).
    pub fn exec_argv(&self, name: &str, argv: &[String]) -> Result<(PathBuf, Vec<OsString>)> {
        let mut a: Vec<OsString> = vec![self.bin().into(), "exec".into(), name.into()];
        a.extend(argv.iter().map(OsString::from));
        Ok((self.program()?.to_path_buf(), a))
    }

    pub fn env(&self) -> &CArgs {
        &self.env
    }

    /// Every orc-managed container, in one engine call.
    pub fn list_managed(&self) -> Result<Vec<Actual>> {
        let filter = format!("label={MANAGED}=true");
        let format = match self.kind {
            Kind::Docker => docker_template(),
            Kind::Podman => "json".to_string(),
        };
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

    /// Removes a container; one that is already gone counts as removed.
    pub fn remove(&self, id: &str) -> Result<()> {
        match self.call(&["rm", id]) {
            Err(Error::Failed(m)) if m.to_lowercase().contains("no such container") => Ok(()),
            r => r.map(drop),
        }
    }

    pub fn image_present(&self, image: &str) -> bool {
        self.call(&["image", "inspect", "--format", "{{.Id}}", image])
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_and_podman_ps() {
        let docker = br#"{"Id":"abc","Names":"web","State":"running","Labels":{"orc.managed":"true","orc.infra-version":"7","orc.spec-hash":"h1","orc.store-data":"[\"sh\",\"-c\",\"a,b\"]","orc.stop-timeout":"3"}}
{"Id":"def","Names":"db","State":"exited","Labels":{"orc.managed":"true","orc.infra-version":"","orc.spec-hash":"","orc.store-data":"","orc.stop-timeout":""}}
"#;
        let a = parse_ps(docker).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].name.as_str(), a[0].running), ("web", true));
        assert_eq!(a[0].spec_hash.as_deref(), Some("h1"));
        assert_eq!(a[0].store_data, ["sh", "-c", "a,b"]);
        assert_eq!(a[0].stop_timeout, Some(3));
        assert_eq!(
            (a[1].running, a[1].spec_hash.clone(), a[1].store_data.len()),
            (false, None, 0)
        );
        let podman = br#"[{"Id":"x1","Names":["db"],"State":"running","Labels":{"orc.managed":"true","other":"x"},"Extra":1},
            {"Id":"x2","Names":["mine"],"State":"running","Labels":null}]"#;
        let a = parse_ps(podman).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].name.as_str(), a[0].running), ("db", true));
    }

    #[test]
    fn docker_template_is_json_shaped() {
        let t = docker_template();
        assert!(
            t.starts_with(r#"{"Id":{{json .ID}},"Names":{{json .Names}}"#),
            "{t}"
        );
        assert!(
            t.contains(r#""orc.spec-hash":{{json (.Label "orc.spec-hash")}}"#),
            "{t}"
        );
        assert!(t.ends_with("}}}"), "{t}");
    }
}
