//! Container specs (`/etc/orc/containers.d/*.json`): the format, complete
//! validation before any engine call, the canonical hash that labels a
//! container, and the dependency levels work follows.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::fields::{
    self, Cpus, DependsOn, Healthcheck, Logging, NetAttach, Ulimit, de_extra_hosts, de_networks,
    de_sysctls, de_tmpfs,
};
pub use super::fields::{is_spec_name, name_ok};
use super::sources;
use crate::error::{Result, invalid};
use crate::root::Root;
use crate::trust::Opener;

/// Where a spec holds objects (never to be read from an array, field by position).
pub const OBJECTS: &[&str] = &[
    "volumes.*",
    "hooks",
    "healthcheck",
    "logging",
    "ulimits.*",
    "networks.*",
    "depends_on.*",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// Relative to the container's runtime dir, or absolute (under the root).
    pub source: PathBuf,
    pub target: PathBuf,
    #[serde(default)]
    pub read_only: bool,
    /// SELinux relabelling: `z` (shared) or `Z` (private); absent from the hash unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux: Option<Relabel>,
}

/// A bind mount's SELinux relabelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Relabel {
    #[serde(rename = "z")]
    Shared,
    #[serde(rename = "Z")]
    Private,
}

impl Relabel {
    pub fn flag(self) -> &'static str {
        match self {
            Relabel::Shared => "z",
            Relabel::Private => "Z",
        }
    }
}

/// The restart policy; `on-failure:N` caps the retries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Restart {
    No,
    Always,
    #[default]
    UnlessStopped,
    OnFailure(Option<u32>),
}

impl Restart {
    /// The policy's name (without a retry count).
    pub fn flag(self) -> &'static str {
        match self {
            Restart::No => "no",
            Restart::Always => "always",
            Restart::UnlessStopped => "unless-stopped",
            Restart::OnFailure(_) => "on-failure",
        }
    }

    /// As `--restart` takes it (and as the hash has always written it).
    pub fn arg(self) -> String {
        match self {
            Restart::OnFailure(Some(n)) => format!("on-failure:{n}"),
            r => r.flag().to_string(),
        }
    }
}

impl Serialize for Restart {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.arg())
    }
}

impl<'de> Deserialize<'de> for Restart {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let max = |n: &str| n.parse::<u32>().ok().filter(|n| *n > 0);
        Ok(match s.as_str() {
            "no" => Restart::No,
            "always" => Restart::Always,
            "unless-stopped" => Restart::UnlessStopped,
            "on-failure" => Restart::OnFailure(None),
            other => match other.strip_prefix("on-failure:").and_then(max) {
                Some(n) => Restart::OnFailure(Some(n)),
                None => {
                    return Err(serde::de::Error::custom(format!(
                        "restart {s:?}: no, always, unless-stopped, on-failure or on-failure:N"
                    )));
                }
            },
        })
    }
}

/// A host file mounted read-only into the container (`secrets`, `configs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMount {
    /// The host file (absolute, under the root).
    pub source: PathBuf,
    /// Secrets: a name (mounted at `/run/secrets/NAME`) or an absolute path; configs: an
    /// absolute path.
    pub target: String,
}

impl FileMount {
    /// Where a secret is mounted.
    pub fn secret_target(&self) -> String {
        if self.target.starts_with('/') {
            self.target.clone()
        } else {
            format!("/run/secrets/{}", self.target)
        }
    }
}

/// `pull_policy`: when the engine pulls the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PullPolicy {
    Always,
    Never,
    Missing,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Host argv, run before the container is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_create: Option<Vec<String>>,
    /// Argv run inside the old container before it is stopped for recreation or removal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_data: Option<Vec<String>>,
    /// Argv run inside the new container after a recreation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_data: Option<Vec<String>>,
    /// Argv run inside the container after it was created and started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_start: Option<Vec<String>>,
}

/// One box container. Field order here is the canonical order of the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// The first element becomes `--entrypoint`, the rest go before the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub volumes: Vec<Volume>,
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    #[serde(default)]
    pub restart: Restart,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub depends_on: DependsOn,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default)]
    pub init: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_archive: Option<PathBuf>,
    #[serde(default)]
    pub hooks: Hooks,
    // The compose-level fields: absent from the canonical JSON unless used, so adding
    // them changed no existing spec's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(
        default,
        deserialize_with = "de_networks",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub networks: BTreeMap<String, NetAttach>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    #[serde(
        default,
        deserialize_with = "de_tmpfs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub tmpfs: Vec<String>,
    #[serde(
        default,
        deserialize_with = "de_extra_hosts",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub extra_hosts: Vec<String>,
    #[serde(
        default,
        deserialize_with = "de_sysctls",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub sysctls: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Cpus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<String>,
    // The box fields: absent from the canonical JSON unless used, like the compose ones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    #[serde(
        default,
        deserialize_with = "fields::de_one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dns: Vec<String>,
    #[serde(
        default,
        deserialize_with = "fields::de_one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dns_search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    #[serde(
        default,
        deserialize_with = "fields::de_strings",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub group_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    #[serde(
        default,
        deserialize_with = "fields::de_strings",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub expose: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_reservation: Option<String>,
    /// A size, or `-1` (unlimited swap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memswap_limit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_swappiness: Option<u8>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_kill_disable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<u32>,
    /// CPUs the container may run on (`0-3,6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    /// `host`: the host's PID namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// `host`, `private`, `shareable` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    /// `host`: the host's UTS namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
    /// Files of `NAME=value` lines read by orc; the values reach the engine through a
    /// 0600 file, never its argv.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_file: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<FileMount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<FileMount>,
    /// sha256 of the contents of the env files, secrets and configs (set when they are
    /// read, never by a spec), so a changed file recreates the container.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub files_digest: Option<String>,
    /// The variables of the env files (never serialized, so never hashed or shown).
    #[serde(skip)]
    pub file_env: BTreeMap<String, String>,
}

impl Spec {
    /// `orc.spec-hash`: sha256 of the canonical JSON (sorted maps, fixed field order)
    /// without `depends_on` and the hooks (they change the order or a hook next time,
    /// not the container), and of the image ID the image resolves to.
    pub fn hash(&self, image_id: &str) -> String {
        let core = Spec {
            depends_on: DependsOn::default(),
            hooks: Hooks::default(),
            ..self.clone()
        };
        let mut json = serde_json::to_vec(&core).expect("specs serialize");
        json.extend_from_slice(b"\nimage ");
        json.extend_from_slice(image_id.as_bytes());
        hex(&Sha256::digest(&json))
    }

    /// The hash orc labelled containers with before image identity: the whole canonical
    /// JSON. A container that carries it matches its spec (upgrading recreates nothing).
    pub fn legacy_hash(&self) -> String {
        hex(&Sha256::digest(
            serde_json::to_vec(self).expect("specs serialize"),
        ))
    }

    /// The healthcheck orc waits for, if the spec has an active one.
    pub fn health(&self) -> Option<&Healthcheck> {
        self.healthcheck.as_ref().filter(|h| h.active())
    }

    /// The `store_data` hook, if set.
    pub fn store_data(&self) -> &[String] {
        self.hooks.store_data.as_deref().unwrap_or_default()
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The engines' image reference grammar: `[registry[:port]/]path[:tag][@digest]`, path
/// components lowercase `[a-z0-9]+` joined by `.`, `_`, `__` or `-`s.
pub fn image_ok(r: &str) -> std::result::Result<(), &'static str> {
    if r.is_empty() || r.len() > 512 {
        return Err("empty or longer than 512 bytes");
    }
    let (name, digest) = match r.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (r, None),
    };
    if let Some(d) = digest {
        let (algo, hex) = d.split_once(':').ok_or("a digest is algorithm:hex")?;
        let algo_ok = algo.split(['+', '.', '_', '-']).all(|p| {
            p.bytes().next().is_some_and(|c| c.is_ascii_alphabetic())
                && p.bytes().all(|c| c.is_ascii_alphanumeric())
        });
        if !algo_ok || hex.len() < 32 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err("a digest is algorithm:hex (at least 32 hex digits)");
        }
    }
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    if let Some(t) = tag {
        let b = t.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 128
            && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c));
        if !ok {
            return Err("a tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}");
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains(['.', ':']) || first == "localhost" {
            domain_ok(first)?;
            parts.remove(0);
        }
    }
    if name.len() > 255 {
        return Err("the name is longer than 255 bytes");
    }
    if parts.iter().all(|p| path_component_ok(p)) {
        Ok(())
    } else {
        Err("path components are lowercase [a-z0-9] joined by '.', '_', '__' or '-'")
    }
}

fn domain_ok(d: &str) -> std::result::Result<(), &'static str> {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err("a registry port is a number");
    }
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    if host.split('.').all(label_ok) {
        Ok(())
    } else {
        Err("a registry is host[:port]")
    }
}

fn path_component_ok(p: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let b = p.as_bytes();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let sep_start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &p[sep_start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
    true
}

/// A port or a range `a-b` (a <= b).
fn port_range(s: &str) -> Option<(u16, u16)> {
    let num = |s: &str| s.parse::<u16>().ok().filter(|n| *n > 0);
    match s.split_once('-') {
        Some((a, b)) => Some((num(a)?, num(b)?)).filter(|(a, b)| a <= b),
        None => num(s).map(|n| (n, n)),
    }
}

/// `[ip:][host:]container[/proto]`, where host and container may be ranges of one length
/// (or a host range for one container port).
pub fn port_ok(p: &str) -> bool {
    let (body, proto) = match p.rsplit_once('/') {
        Some((b, proto)) => (b, Some(proto)),
        None => (p, None),
    };
    if proto.is_some_and(|p| !matches!(p, "tcp" | "udp" | "sctp")) {
        return false;
    }
    let (ip, rest) = match body.strip_prefix('[') {
        Some(b) => match b.split_once("]:") {
            Some((ip, rest)) => (Some(ip), rest),
            None => return false,
        },
        None => match body.matches(':').count() {
            2 => {
                let (ip, rest) = body.split_once(':').expect("two colons");
                (Some(ip), rest)
            }
            _ => (None, body),
        },
    };
    if ip.is_some_and(|ip| ip.parse::<std::net::IpAddr>().is_err()) {
        return false;
    }
    let len = |(a, b): (u16, u16)| b - a;
    match rest.split_once(':') {
        None => port_range(rest).is_some(),
        Some(("", c)) if ip.is_some() => port_range(c).is_some(),
        Some((h, c)) => match (port_range(h), port_range(c)) {
            (Some(h), Some(c)) => len(h) == len(c) || len(c) == 0,
            _ => false,
        },
    }
}

/// An environment variable name.
pub fn env_key_ok(k: &str) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Most items a list or map of a spec may hold, and the longest argv string.
const MAX_ITEMS: usize = 1024;
const MAX_ARG: usize = 64 * 1024;

type Check = std::result::Result<(), String>;

fn argv_ok(field: &str, argv: &[String], may_be_empty: bool) -> Check {
    if argv.is_empty() && !may_be_empty {
        return Err(format!("{field}: must not be empty"));
    }
    if argv.first().is_some_and(|a| a.is_empty()) {
        return Err(format!("{field}: the program (first element) is empty"));
    }
    if argv.len() > MAX_ITEMS || argv.iter().any(|a| a.len() > MAX_ARG || a.contains('\0')) {
        return Err(format!("{field}: too long, or contains NUL"));
    }
    Ok(())
}

fn check_basics(spec: &Spec) -> Check {
    if !name_ok(&spec.name) {
        return Err(format!(
            "name: {:?} is not a valid container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 128)",
            spec.name
        ));
    }
    if [".orc-new", ".orc-old"]
        .iter()
        .any(|x| spec.name.ends_with(x))
    {
        return Err(format!(
            "name: {:?} ends like the temporary names of a recreate (.orc-new, .orc-old)",
            spec.name
        ));
    }
    if let Err(why) = image_ok(&spec.image) {
        return Err(format!(
            "image: {:?} is not an image reference: {why}",
            spec.image
        ));
    }
    if let Some(c) = &spec.command {
        argv_ok("command", c, true)?;
    }
    if let Some(e) = &spec.entrypoint {
        argv_ok("entrypoint", e, false)?;
    }
    let hooks = [
        ("hooks.pre_create", &spec.hooks.pre_create),
        ("hooks.store_data", &spec.hooks.store_data),
        ("hooks.restore_data", &spec.hooks.restore_data),
        ("hooks.post_start", &spec.hooks.post_start),
    ];
    for (field, argv) in hooks {
        if let Some(a) = argv {
            argv_ok(field, a, false)?;
        }
    }
    if spec.env.len() > MAX_ITEMS {
        return Err("env: too many variables".into());
    }
    for (k, v) in &spec.env {
        if !env_key_ok(k) {
            return Err(format!(
                "env: {k:?} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"
            ));
        }
        if v.len() > MAX_ARG || v.contains('\0') {
            return Err(format!("env: the value of {k} is too long or contains NUL"));
        }
    }
    for (what, v) in [("user", &spec.user), ("hostname", &spec.hostname)] {
        if v.as_ref()
            .is_some_and(|v| v.is_empty() || !fields::word_ok(v, b":"))
        {
            return Err(format!(
                "{what}: {v:?} has characters outside [A-Za-z0-9_.:-]"
            ));
        }
    }
    Ok(())
}

fn check_volumes(spec: &Spec) -> Check {
    if spec.volumes.len() > MAX_ITEMS {
        return Err("volumes: too many".into());
    }
    for (i, v) in spec.volumes.iter().enumerate() {
        if !v.target.is_absolute() {
            return Err(format!(
                "volumes[{i}].target: {:?} is not absolute",
                v.target
            ));
        }
        if v.source.as_os_str().is_empty()
            || v.source
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(format!(
                "volumes[{i}].source: {:?} is empty or has '..'",
                v.source
            ));
        }
        for p in [&v.source, &v.target] {
            let s = p.to_string_lossy();
            if s.contains([':', ',']) || !fields::text_ok(&s, 4096) {
                return Err(format!(
                    "volumes[{i}]: {p:?} contains ':', ',' or a control character"
                ));
            }
        }
    }
    Ok(())
}

fn check_misc(spec: &Spec) -> Check {
    for p in &spec.ports {
        if !port_ok(p) {
            return Err(format!("ports: {p:?} is not [ip:][host:]container[/proto]"));
        }
    }
    for (k, v) in &spec.labels {
        if k.starts_with("orc.") {
            return Err(format!("labels: {k:?} is reserved (orc.*)"));
        }
        if k.is_empty() || !fields::text_ok(k, 256) || k.contains('=') || !fields::text_ok(v, 4096)
        {
            return Err(format!(
                "labels: {k:?} is not a label name, or its value is too long"
            ));
        }
    }
    for (what, m) in [("memory", &spec.memory), ("shm_size", &spec.shm_size)] {
        if let Some(m) = m
            && !fields::size_ok(m)
        {
            return Err(format!("{what}: {m:?} is not a size like \"512m\""));
        }
    }
    if let Some(a) = &spec.image_archive
        && let Some(why) = crate::root::abnormal(a)
    {
        return Err(format!("image_archive: {a:?} {why}"));
    }
    if spec.depends_on.contains(&spec.name) {
        return Err("depends_on: a container cannot depend on itself".into());
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(d) = spec.depends_on.names().find(|n| !seen.insert(*n)) {
        return Err(format!("depends_on: {d:?} is listed twice"));
    }
    if let Some(n) = &spec.network
        && !fields::word_ok(n, b":")
    {
        return Err(format!("network: {n:?} is not a network name"));
    }
    if spec.network.is_some() && !spec.networks.is_empty() {
        return Err("network and networks: use one of them".into());
    }
    for (n, a) in &spec.networks {
        if !name_ok(n) {
            return Err(format!("networks: {n:?} is not a network name"));
        }
        if let Some(bad) = a.aliases.iter().find(|a| !fields::hostname_ok(a)) {
            return Err(format!("networks.{n}.aliases: {bad:?} is not a host name"));
        }
    }
    Ok(())
}

fn check_compose(spec: &Spec) -> Check {
    if let Some(h) = &spec.healthcheck {
        h.validate().map_err(|e| format!("healthcheck.{e}"))?;
    }
    type ValueCheck = fn(&str) -> bool;
    let lists: [(&str, &Vec<String>, ValueCheck); 6] = [
        ("cap_add", &spec.cap_add, fields::capability_ok),
        ("cap_drop", &spec.cap_drop, fields::capability_ok),
        ("devices", &spec.devices, fields::device_ok),
        ("tmpfs", &spec.tmpfs, fields::tmpfs_ok),
        ("extra_hosts", &spec.extra_hosts, fields::extra_host_ok),
        ("security_opt", &spec.security_opt, |s| {
            !s.is_empty() && fields::text_ok(s, 4096) && !s.starts_with('-')
        }),
    ];
    for (field, list, ok) in lists {
        if list.len() > MAX_ITEMS {
            return Err(format!("{field}: too many"));
        }
        if let Some(bad) = list.iter().find(|v| !ok(v)) {
            return Err(format!("{field}: {bad:?} is not valid"));
        }
    }
    for (k, v) in &spec.sysctls {
        if !fields::sysctl_ok(k, v) {
            return Err(format!("sysctls: {k:?}={v:?} is not valid"));
        }
    }
    for (k, u) in &spec.ulimits {
        fields::ulimit_ok(k, *u).map_err(|e| format!("ulimits: {e}"))?;
    }
    if spec.pids_limit.is_some_and(|p| p == 0 || p < -1) {
        return Err("pids_limit: -1 (unlimited) or a positive number".into());
    }
    if let Some(l) = &spec.logging {
        if l.driver.as_ref().is_some_and(|d| !fields::word_ok(d, b"")) {
            return Err(format!(
                "logging.driver: {:?} is not a driver name",
                l.driver
            ));
        }
        for (k, v) in &l.options {
            if !fields::word_ok(k, b"") || !fields::text_ok(v, 4096) {
                return Err(format!("logging.options: {k:?} is not valid"));
            }
        }
    }
    if let Some(s) = &spec.stop_signal
        && !fields::signal_ok(s)
    {
        return Err(format!("stop_signal: {s:?} is not a signal"));
    }
    if let Some(w) = &spec.working_dir
        && (!w.is_absolute() || !fields::text_ok(&w.to_string_lossy(), 4096))
    {
        return Err(format!("working_dir: {w:?} is not an absolute path"));
    }
    Ok(())
}

fn check_box(spec: &Spec) -> Check {
    type ValueCheck = fn(&str) -> bool;
    let lists: [(&str, &Vec<String>, ValueCheck); 6] = [
        ("dns", &spec.dns, |s| s.parse::<std::net::IpAddr>().is_ok()),
        ("dns_search", &spec.dns_search, |s| {
            s == "." || fields::hostname_ok(s)
        }),
        ("dns_opt", &spec.dns_opt, |s| fields::word_ok(s, b":")),
        ("group_add", &spec.group_add, |s| fields::word_ok(s, b"")),
        (
            "device_cgroup_rules",
            &spec.device_cgroup_rules,
            fields::cgroup_rule_ok,
        ),
        ("expose", &spec.expose, |s| {
            let (p, proto) = s.split_once('/').unwrap_or((s, "tcp"));
            port_range(p).is_some() && matches!(proto, "tcp" | "udp" | "sctp")
        }),
    ];
    for (field, list, ok) in lists {
        if list.len() > MAX_ITEMS {
            return Err(format!("{field}: too many"));
        }
        if let Some(bad) = list.iter().find(|v| !ok(v)) {
            return Err(format!("{field}: {bad:?} is not valid"));
        }
    }
    if spec
        .oom_score_adj
        .is_some_and(|o| !(-1000..=1000).contains(&o))
    {
        return Err("oom_score_adj: must be -1000..=1000".into());
    }
    if let Some(c) = &spec.cgroup_parent
        && (!fields::word_ok(c, b"/") || c.starts_with('-'))
    {
        return Err(format!("cgroup_parent: {c:?} is not a cgroup path"));
    }
    check_resources(spec)?;
    check_files(spec)
}

fn check_resources(spec: &Spec) -> Check {
    type Opt<'a> = (&'a str, &'a Option<String>, fn(&str) -> bool);
    let opts: [Opt; 7] = [
        ("domainname", &spec.domainname, fields::hostname_ok),
        ("mac_address", &spec.mac_address, |m| {
            m.split(':').count() == 6
                && m.split(':')
                    .all(|b| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit()))
        }),
        ("mem_reservation", &spec.mem_reservation, fields::size_ok),
        ("memswap_limit", &spec.memswap_limit, |m| {
            m == "-1" || fields::size_ok(m)
        }),
        ("cpuset", &spec.cpuset, |c| {
            !c.is_empty()
                && c.len() <= 256
                && c.split(',').all(|r| {
                    let mut ends = r.splitn(2, '-');
                    ends.all(|n| {
                        !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit())
                    })
                })
        }),
        ("pid", &spec.pid, |p| p == "host"),
        ("uts", &spec.uts, |p| p == "host"),
    ];
    for (field, v, ok) in opts {
        if let Some(v) = v
            && !ok(v)
        {
            return Err(format!("{field}: {v:?} is not valid"));
        }
    }
    if let Some(i) = &spec.ipc
        && !matches!(i.as_str(), "host" | "private" | "shareable" | "none")
    {
        return Err(format!(
            "ipc: {i:?} is not host, private, shareable or none (sharing another container's is not supported)"
        ));
    }
    if spec.domainname.is_some() && spec.uts.is_some() {
        return Err("domainname: the host's UTS namespace (uts: host) has its own".into());
    }
    if spec.mem_swappiness.is_some_and(|s| s > 100) {
        return Err("mem_swappiness: 0..=100".into());
    }
    if spec.cpu_shares.is_some_and(|s| s < 2) {
        return Err("cpu_shares: at least 2".into());
    }
    if spec
        .cpu_period
        .is_some_and(|p| !(1000..=1_000_000).contains(&p))
    {
        return Err("cpu_period: 1000..=1000000 (microseconds)".into());
    }
    if spec.cpu_quota.is_some_and(|q| q != -1 && q < 1000) {
        return Err("cpu_quota: -1 or at least 1000 (microseconds)".into());
    }
    Ok(())
}

fn check_files(spec: &Spec) -> Check {
    let plain = |p: &Path| {
        p.is_absolute()
            && !p.components().any(|c| c == std::path::Component::ParentDir)
            && !p.to_string_lossy().contains([':', ','])
            && fields::text_ok(&p.to_string_lossy(), 4096)
    };
    if let Some(p) = spec.env_file.iter().find(|p| !plain(p)) {
        return Err(format!(
            "env_file: {p:?} is not an absolute path without '..'"
        ));
    }
    let mut targets = std::collections::HashSet::new();
    for (field, list) in [("secrets", &spec.secrets), ("configs", &spec.configs)] {
        for m in list {
            if !plain(&m.source) {
                return Err(format!(
                    "{field}: source {:?} is not an absolute path without '..'",
                    m.source
                ));
            }
            let t = if field == "secrets" {
                m.secret_target()
            } else {
                m.target.clone()
            };
            let ok = if m.target.starts_with('/') {
                plain(Path::new(&m.target))
            } else {
                field == "secrets" && name_ok(&m.target)
            };
            if !ok {
                return Err(format!("{field}: target {:?} is not valid", m.target));
            }
            if !targets.insert(t.clone()) {
                return Err(format!("{field}: {t} is mounted twice"));
            }
        }
    }
    for (k, v) in &spec.env {
        if v.contains('\n') {
            return Err(format!(
                "env: the value of {k} has a line break (the engines' env files cannot carry it)"
            ));
        }
    }
    Ok(())
}

/// Field-level problems of one spec, as `field: problem`.
pub fn check(spec: &Spec) -> std::result::Result<(), String> {
    check_basics(spec)?;
    check_volumes(spec)?;
    check_misc(spec)?;
    check_compose(spec)?;
    check_box(spec)
}

/// Parses and checks one spec file's bytes; the error names `shown`.
pub fn parse(text: &[u8], shown: &Path) -> Result<Spec> {
    let spec: Spec = crate::json::parse_object_with(text, shown, OBJECTS)?;
    check(&spec).map_err(|m| invalid(format!("{}: {m}", shown.display())))?;
    Ok(spec)
}

/// Each spec's dependency level: 0 without dependencies, else 1 + the deepest dependency.
/// An error names the spec at fault and an unknown dependency or a cycle.
pub fn levels(specs: &[Spec]) -> std::result::Result<HashMap<String, usize>, (String, String)> {
    let by_name: HashMap<&str, &Spec> = specs.iter().map(|s| (s.name.as_str(), s)).collect();
    for s in specs {
        for d in s.depends_on.names() {
            if !by_name.contains_key(d) {
                return Err((
                    s.name.clone(),
                    format!("depends_on: unknown container {d:?}"),
                ));
            }
        }
    }
    fn visit<'a>(
        n: &'a str,
        by_name: &HashMap<&'a str, &'a Spec>,
        done: &mut HashMap<String, usize>,
        path: &mut Vec<&'a str>,
    ) -> std::result::Result<usize, (String, String)> {
        if let Some(l) = done.get(n) {
            return Ok(*l);
        }
        if let Some(at) = path.iter().position(|p| *p == n) {
            let mut cycle = path[at..].to_vec();
            cycle.push(n);
            return Err((
                n.to_string(),
                format!("depends_on: cycle {}", cycle.join(" -> ")),
            ));
        }
        path.push(n);
        let mut level = 0;
        for d in by_name[n].depends_on.names() {
            level = level.max(1 + visit(d, by_name, done, path)?);
        }
        path.pop();
        done.insert(n.to_string(), level);
        Ok(level)
    }
    let mut done = HashMap::new();
    for s in specs {
        visit(&s.name, &by_name, &mut done, &mut Vec::new())?;
    }
    Ok(done)
}

/// A dependency that must complete successfully must not be restarted by the engine when
/// it exits (`restart` `no` or `on-failure`), or it never completes.
pub fn check_conditions(specs: &[Spec]) -> std::result::Result<(), (String, String)> {
    for s in specs {
        for d in &s.depends_on.0 {
            if d.condition != fields::Condition::ServiceCompletedSuccessfully {
                continue;
            }
            let Some(dep) = specs.iter().find(|x| x.name == d.name) else {
                continue;
            };
            if matches!(dep.restart, Restart::Always | Restart::UnlessStopped) {
                return Err((
                    s.name.clone(),
                    format!(
                        "depends_on: {} must complete successfully, but its restart policy {} restarts it when it exits (use \"no\" or \"on-failure\")",
                        d.name,
                        dep.restart.flag()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A spec (or network) file that could not be used, or a spec that depends on one: that
/// container fails, the others converge, and nothing is removed as undeclared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    /// The container's name when it is known (else the file stands for it).
    pub name: Option<String>,
    pub file: PathBuf,
    /// One line naming the file and the problem.
    pub error: String,
}

impl Bad {
    /// The name it is reported under: the container's, else the file's.
    pub fn key(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.file.display().to_string())
    }
}

/// Every spec of a box, validated, with the dependency levels work follows.
#[derive(Debug, Clone, Default)]
pub struct Specs {
    pub specs: Vec<Spec>,
    pub levels: HashMap<String, usize>,
    /// The file each spec came from (shown), by name.
    pub files: HashMap<String, PathBuf>,
    /// The declared networks, with the file each came from.
    pub networks: Vec<super::network::NetSpec>,
    pub net_files: HashMap<String, PathBuf>,
    /// What could not be read, and the specs that depend on it.
    pub invalid: Vec<Bad>,
    /// `orc containers reconcile NAME... --force-recreate NAME`: what this converge is for.
    pub targets: super::targets::Targets,
}

impl Specs {
    /// Moves the spec `name` (and, transitively, its dependents) to `invalid`.
    pub fn fail(&mut self, name: &str, error: String) {
        let Some(at) = self.specs.iter().position(|s| s.name == name) else {
            return;
        };
        let s = self.specs.remove(at);
        let file = self.files.remove(&s.name).unwrap_or_default();
        self.invalid.push(Bad {
            name: Some(s.name.clone()),
            file,
            error,
        });
        let dependents: Vec<String> = self
            .specs
            .iter()
            .filter(|d| d.depends_on.contains(&s.name))
            .map(|d| d.name.clone())
            .collect();
        for d in dependents {
            let file = self.files.get(&d).cloned().unwrap_or_default();
            self.fail(
                &d,
                format!(
                    "{}: not converged: its dependency {} is invalid",
                    file.display(),
                    s.name
                ),
            );
        }
    }

    /// Fails the specs with an unknown dependency, a cycle or an impossible condition,
    /// until the rest has levels.
    fn settle(&mut self) {
        loop {
            let bad = levels(&self.specs).and_then(|l| {
                check_conditions(&self.specs)?;
                Ok(l)
            });
            match bad {
                Ok(l) => {
                    self.levels = l;
                    return;
                }
                Err((name, m)) => {
                    let file = self.files.get(&name).cloned().unwrap_or_default();
                    let dep_bad = self.invalid.iter().find_map(|b| {
                        let n = b.name.as_deref()?;
                        let s = self.specs.iter().find(|s| s.name == name)?;
                        s.depends_on.contains(n).then_some(n.to_string())
                    });
                    let m = match dep_bad {
                        Some(d) => format!("not converged: its dependency {d} is invalid"),
                        None => m,
                    };
                    self.fail(&name, format!("{}: {m}", file.display()));
                }
            }
        }
    }
}

/// Specs each with its file, and the files that are not valid.
pub type Listed = (Vec<(Spec, PathBuf)>, Vec<Bad>);

/// Reads and validates every spec in `dir` (sorted by file name) through the root, with
/// the file each came from; a file that sets a secret-looking variable must be private.
/// A file that is not a valid spec fails alone (in the second list); only a dir that
/// cannot be read is an error.
pub fn load_dir(opener: Opener, root: &Root, dir: &Path) -> Result<Listed> {
    let kind = sources::Kind {
        want: &is_spec_name,
        holds: "JSON container specs (*.json)",
    };
    let inputs = sources::read_dir(opener, root, dir, &kind)?.unwrap_or_default();
    let (mut out, mut bad) = (Vec::new(), Vec::new());
    for i in inputs {
        let (name, checked) = match parse(&i.text, &i.shown) {
            Ok(spec) => (
                Some(spec.name.clone()),
                super::secrets::check_spec_file(&i.shown, i.mode, &spec).map(|()| spec),
            ),
            Err(e) => (name_in(&i.text), Err(e)),
        };
        match checked {
            Ok(spec) => out.push((spec, i.shown)),
            Err(e) => bad.push(Bad {
                name,
                file: i.shown,
                error: e.to_string(),
            }),
        }
    }
    Ok((out, bad))
}

/// The container name an invalid spec file gives, when it gives a valid one: the failure
/// is reported under it (and its running container is shown).
fn name_in(text: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(text).ok()?;
    let n = v.get("name")?.as_str()?;
    fields::name_ok(n).then(|| n.to_string())
}

/// The box's specs from every source, names unique, dependencies known and acyclic (a
/// spec that is not fails, with its dependents, into `invalid`); `None` when there is
/// none, valid or not.
pub fn assemble(list: Vec<(Spec, PathBuf)>, bad: Vec<Bad>) -> Option<Specs> {
    if list.is_empty() && bad.is_empty() {
        return None;
    }
    let mut out = Specs {
        invalid: bad,
        ..Specs::default()
    };
    let mut dups: Vec<(String, String)> = Vec::new();
    for (spec, shown) in list {
        if let Some(first) = out.files.get(&spec.name) {
            let m = format!(
                "{}: name: {:?} is already used by {}",
                shown.display(),
                spec.name,
                first.display()
            );
            dups.push((spec.name.clone(), m));
            continue;
        }
        out.files.insert(spec.name.clone(), shown);
        out.specs.push(spec);
    }
    for (name, m) in dups {
        out.fail(&name, m);
    }
    out.settle();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, deps: &[&str]) -> Spec {
        serde_json::from_value(serde_json::json!({
            "name": name, "image": "busybox", "depends_on": deps
        }))
        .unwrap()
    }

    #[test]
    fn hash_is_canonical() {
        let a: Spec =
            serde_json::from_str(r#"{"name":"w","image":"i","env":{"B":"2","A":"1"}}"#).unwrap();
        let b: Spec =
            serde_json::from_str(r#"{ "env": {"A":"1", "B":"2"}, "image":"i", "name":"w" }"#)
                .unwrap();
        assert_eq!(a.hash("sha256:1"), b.hash("sha256:1"));
        assert_eq!(a.hash("sha256:1").len(), 64);
        let c: Spec =
            serde_json::from_str(r#"{"name":"w","image":"i","env":{"A":"1","B":"3"}}"#).unwrap();
        assert_ne!(a.hash("sha256:1"), c.hash("sha256:1"));
        assert_ne!(
            a.hash("sha256:1"),
            a.hash("sha256:2"),
            "the image ID is in it"
        );
    }

    #[test]
    fn hash_of_a_spec_without_new_fields_is_unchanged() {
        // The canonical JSON orc has always hashed for this spec: the new fields must not
        // appear in it (upgrading orc must recreate nothing).
        let s: Spec = serde_json::from_str(
            r#"{"name":"w","image":"i","depends_on":["db"],"hooks":{"store_data":["a"]}}"#,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"name":"w","image":"i","env":{},"volumes":[],"ports":[],"restart":"unless-stopped","labels":{},"depends_on":["db"],"init":false,"hooks":{"store_data":["a"]}}"#
        );
        // `printf '%s' <the JSON above> | sha256sum`, computed outside orc.
        assert_eq!(
            s.legacy_hash(),
            "db93e53ac2605850ae8034a9154303e4e4db741fbc7f665434f64898706fe1b4"
        );
        let long: Spec = serde_json::from_str(
            r#"{"name":"w","image":"i","depends_on":{"db":{"condition":"service_started"}},"hooks":{"store_data":["a"]}}"#,
        )
        .unwrap();
        assert_eq!(s.legacy_hash(), long.legacy_hash());
        let healthy: Spec = serde_json::from_str(
            r#"{"name":"w","image":"i","depends_on":{"db":{"condition":"service_healthy"}}}"#,
        )
        .unwrap();
        assert_ne!(s.legacy_hash(), healthy.legacy_hash());
        // The hash without depends_on and hooks hashes the same canonical JSON as before
        // for a spec that has neither, followed by the image ID.
        let plain: Spec = serde_json::from_str(r#"{"name":"w","image":"i"}"#).unwrap();
        let mut want = serde_json::to_vec(&plain).unwrap();
        want.extend_from_slice(b"\nimage sha256:1");
        assert_eq!(plain.hash("sha256:1"), hex(&Sha256::digest(&want)));
        assert_eq!(
            plain.legacy_hash(),
            hex(&Sha256::digest(
                br#"{"name":"w","image":"i","env":{},"volumes":[],"ports":[],"restart":"unless-stopped","labels":{},"depends_on":[],"init":false,"hooks":{}}"#
            ))
        );
    }

    #[test]
    fn depends_on_and_hooks_are_not_in_the_hash() {
        let a: Spec = serde_json::from_str(r#"{"name":"w","image":"i"}"#).unwrap();
        let b: Spec = serde_json::from_str(
            r#"{"name":"w","image":"i","depends_on":{"db":{"condition":"service_healthy"}},"hooks":{"post_start":["x"],"store_data":["y"]}}"#,
        )
        .unwrap();
        assert_eq!(a.hash("sha256:1"), b.hash("sha256:1"));
        assert_ne!(a.legacy_hash(), b.legacy_hash());
    }

    #[test]
    fn levels_follow_dependencies() {
        let l = levels(&[
            spec("web", &["db", "cache"]),
            spec("db", &[]),
            spec("cache", &["db"]),
        ])
        .unwrap();
        assert_eq!((l["db"], l["cache"], l["web"]), (0, 1, 2));
        let (who, e) =
            levels(&[spec("a", &["b"]), spec("b", &["c"]), spec("c", &["a"])]).unwrap_err();
        assert_eq!(who, "a");
        assert!(e.contains("cycle a -> b -> c -> a"), "{e}");
        let (who, e) = levels(&[spec("a", &["ghost"])]).unwrap_err();
        assert_eq!(who, "a");
        assert!(e.contains("unknown container \"ghost\""), "{e}");
    }

    #[test]
    fn field_checks() {
        let ok = |j: serde_json::Value| check(&serde_json::from_value::<Spec>(j).unwrap());
        assert!(ok(serde_json::json!({"name":"a","image":"i","ports":["8080:80","127.0.0.1:53:53/udp","9000","8000-8010:8000-8010/udp","8000-8001:80","127.0.0.1::9000-9001","[::1]:53:53"],"memory":"512m"})).is_ok());
        for (j, field) in [
            (serde_json::json!({"name":"-bad","image":"i"}), "name:"),
            (
                serde_json::json!({"name":"a","image":"has space"}),
                "image:",
            ),
            (
                serde_json::json!({"name":"a","image":"i","ports":["80:http"]}),
                "ports:",
            ),
            (
                serde_json::json!({"name":"a","image":"i","ports":["8000-8010:80-81/udp"]}),
                "ports:",
            ),
            (
                serde_json::json!({"name":"a","image":"i","ports":["9-8:9-8"]}),
                "ports:",
            ),
            (
                serde_json::json!({"name":"a","image":"i","memory":"lots"}),
                "memory:",
            ),
            (
                serde_json::json!({"name":"a","image":"i","labels":{"orc.managed":"x"}}),
                "labels:",
            ),
            (
                serde_json::json!({"name":"a","image":"i","volumes":[{"source":"data","target":"rel"}]}),
                "volumes[0].target",
            ),
            (
                serde_json::json!({"name":"a","image":"i","volumes":[{"source":"../x","target":"/x"}]}),
                "volumes[0].source",
            ),
            (
                serde_json::json!({"name":"a","image":"i","depends_on":["a"]}),
                "depends_on",
            ),
            (
                serde_json::json!({"name":"a","image":"i","image_archive":"rel.tar"}),
                "image_archive",
            ),
            (
                serde_json::json!({"name":"a","image":"i","image_archive":"/srv/../../etc/shadow"}),
                "image_archive",
            ),
        ] {
            let e = ok(j.clone()).unwrap_err();
            assert!(e.starts_with(field), "{j}: {e}");
        }
        assert!(
            serde_json::from_value::<Spec>(serde_json::json!({"name":"a","image":"i","colour":1}))
                .is_err()
        );
    }

    #[test]
    fn a_dependency_that_must_complete_is_not_restarted() {
        let specs: Vec<Spec> = serde_json::from_value(serde_json::json!([
            {"name": "init", "image": "i"},
            {"name": "app", "image": "i", "depends_on": {"init": {"condition": "service_completed_successfully"}}}
        ]))
        .unwrap();
        let (who, e) = check_conditions(&specs).unwrap_err();
        assert_eq!(who, "app");
        assert!(e.contains("restart policy unless-stopped"), "{e}");
        let mut ok = specs.clone();
        ok[0].restart = Restart::No;
        assert!(check_conditions(&ok).is_ok());
    }

    #[test]
    fn image_references() {
        for good in [
            "busybox",
            "busybox:1.36",
            "library/busybox:latest",
            "localhost/orc-test/busybox:latest",
            "registry.example.com:5000/team/app_x__y.z-w:v1.2-rc_3",
            "mariadb@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "quay.io/a/b:tag@sha256:0123456789abcdef0123456789abcdef",
            "my-registry.example.com:5000/a",
        ] {
            assert_eq!(image_ok(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "-rm",
            "--privileged",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "a//b",
            "a/",
            "a..b",
            "a_.b",
            "reg:xx/a",
            "a@sha256:xyz",
            "has space",
            "a\nb",
            "a:b:c",
            "/busybox",
            "-reg.io/a",
            "reg-.io/a",
            "re_g.io/a",
            "reg.io:http/a",
            // A digest: an algorithm of letters then letters and digits, 32+ hex digits.
            "a@sha256:0123456789abcdef",
            "a@1sha:0123456789abcdef0123456789abcdef",
            "a@sha256+:0123456789abcdef0123456789abcdef",
            &format!("a@sha256:{}", "g".repeat(32)),
        ] {
            assert!(image_ok(bad).is_err(), "{bad}");
        }
        // 512 bytes at most, the whole reference (the name alone: 255).
        let at = |n: usize| {
            format!(
                "{}:{}@sha256:{}",
                "a".repeat(200),
                "t".repeat(128),
                "0".repeat(n - 337)
            )
        };
        assert_eq!(image_ok(&at(512)), Ok(()));
        for n in [513, 600] {
            assert_eq!(
                image_ok(&at(n)),
                Err("empty or longer than 512 bytes"),
                "{n}"
            );
        }
    }

    #[test]
    fn only_an_active_healthcheck_is_waited_for() {
        let with = |h: serde_json::Value| -> Spec {
            serde_json::from_value(serde_json::json!({"name": "a", "image": "i", "healthcheck": h}))
                .unwrap()
        };
        assert!(
            with(serde_json::json!({"test": ["CMD", "true"]}))
                .health()
                .is_some()
        );
        assert!(with(serde_json::json!({"test": "true"})).health().is_some());
        assert!(
            with(serde_json::json!({"test": ["NONE"]}))
                .health()
                .is_none()
        );
        assert!(
            with(serde_json::json!({"test": ["CMD", "true"], "disable": true}))
                .health()
                .is_none()
        );
        assert!(spec("a", &[]).health().is_none());
    }

    #[test]
    fn new_field_checks() {
        let ok = |j: serde_json::Value| check(&serde_json::from_value::<Spec>(j).unwrap());
        assert!(ok(serde_json::json!({"name":"a","image":"i",
            "healthcheck": {"test": ["CMD", "true"], "interval": "1s", "retries": 3},
            "cap_add": ["NET_ADMIN"], "cap_drop": ["ALL"], "devices": ["/dev/fuse"],
            "tmpfs": "/run", "extra_hosts": {"db": "10.0.0.2"}, "sysctls": ["net.core.somaxconn=1024"],
            "ulimits": {"nofile": {"soft": 1024, "hard": 2048}, "nproc": 512}, "read_only": true,
            "security_opt": ["no-new-privileges"], "pids_limit": 100, "cpus": 0.5,
            "logging": {"driver": "json-file", "options": {"max-size": "10m"}},
            "stop_signal": "SIGQUIT", "working_dir": "/srv", "shm_size": "64m",
            "networks": {"front": {"aliases": ["www"]}}}))
        .is_ok());
        for (j, field) in [
            (
                serde_json::json!({"name":"a","image":"i","hooks":{"store_data":[]}}),
                "hooks.store_data: must not be empty",
            ),
            (
                serde_json::json!({"name":"a","image":"i","hooks":{"post_start":[""]}}),
                "hooks.post_start: the program",
            ),
            (
                serde_json::json!({"name":"a","image":"i","entrypoint":[""]}),
                "entrypoint:",
            ),
            (
                serde_json::json!({"name":"a","image":"i","env":{"1X":"v"}}),
                "env:",
            ),
            (
                serde_json::json!({"name":"a","image":"i","env":{"A-B":"v"}}),
                "env:",
            ),
            (serde_json::json!({"name":"a","image":"-v"}), "image:"),
            (
                serde_json::json!({"name":"a","image":"i","healthcheck":{"interval":"1s"}}),
                "healthcheck.test",
            ),
            (
                serde_json::json!({"name":"a","image":"i","cap_add":["net admin"]}),
                "cap_add:",
            ),
            (
                serde_json::json!({"name":"a","image":"i","devices":["dev/x"]}),
                "devices:",
            ),
            (
                serde_json::json!({"name":"a","image":"i","tmpfs":["run"]}),
                "tmpfs:",
            ),
            (
                serde_json::json!({"name":"a","image":"i","extra_hosts":["db:nope"]}),
                "extra_hosts:",
            ),
            (
                serde_json::json!({"name":"a","image":"i","sysctls":{"a b":"1"}}),
                "sysctls:",
            ),
            (
                serde_json::json!({"name":"a","image":"i","ulimits":{"nofile":{"soft":9,"hard":1}}}),
                "ulimits:",
            ),
            (
                serde_json::json!({"name":"a","image":"i","pids_limit":0}),
                "pids_limit:",
            ),
            (
                serde_json::json!({"name":"a","image":"i","logging":{"driver":"a b"}}),
                "logging.driver:",
            ),
            (
                serde_json::json!({"name":"a","image":"i","stop_signal":"SIGNOPE"}),
                "stop_signal:",
            ),
            (
                serde_json::json!({"name":"db.orc-old","image":"i"}),
                "name: \"db.orc-old\" ends like the temporary names",
            ),
            (
                serde_json::json!({"name":"db.orc-new","image":"i"}),
                "name:",
            ),
            (
                serde_json::json!({"name":"a","image":"i","working_dir":"rel"}),
                "working_dir:",
            ),
            (
                serde_json::json!({"name":"a","image":"i","shm_size":"big"}),
                "shm_size:",
            ),
            (
                serde_json::json!({"name":"a","image":"i","network":"x","networks":["y"]}),
                "network and networks",
            ),
            (
                serde_json::json!({"name":"a","image":"i","networks":{"n":{"aliases":["bad alias"]}}}),
                "networks.n.aliases",
            ),
            (
                serde_json::json!({"name":"a","image":"i","depends_on":["b","b"]}),
                "depends_on:",
            ),
        ] {
            let e = ok(j.clone()).unwrap_err();
            assert!(e.starts_with(field), "{j}: {e}");
        }
        for bad in [
            serde_json::json!({"name":"a","image":"i","cpus":0}),
            serde_json::json!({"name":"a","image":"i","cpus":"many"}),
            serde_json::json!({"name":"a","image":"i","healthcheck":{"test":"x","interval":"soon"}}),
            serde_json::json!({"name":"a","image":"i","ulimits":{"nofile":{"soft":1}}}),
            serde_json::json!({"name":"a","image":"i","logging":{"driver":"x","opts":{}}}),
        ] {
            assert!(
                serde_json::from_value::<Spec>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse(&bytes, Path::new("/etc/orc/containers.d/x.json"));
        }

        #[test]
        fn json_shaped_input_parses_or_fails_cleanly(
            name in "[ -~]{0,20}", image in "[ -~]{0,40}", key in "(name|image|env|healthcheck|depends_on|ulimits|cpus|networks|extra_hosts|tmpfs|hooks|ports|volumes)",
            val in "(\\[\\]|\\{\\}|\"[ -~]{0,12}\"|-?[0-9]{1,20}(\\.[0-9]+)?|null|true|\\[\"[ -~]{0,8}\"\\]|\\{\"[a-z_]{1,8}\":\\{\"[a-z_]{1,10}\":\"[ -~]{0,8}\"\\}\\})",
        ) {
            let text = format!(
                "{{\"name\": {}, \"image\": {}, \"{key}\": {val}}}",
                serde_json::to_string(&name).unwrap(),
                serde_json::to_string(&image).unwrap()
            );
            match parse(text.as_bytes(), Path::new("/x.json")) {
                Ok(s) => { let _ = s.hash("x"); }
                Err(e) => proptest::prop_assert!(e.to_string().starts_with("/x.json: "), "{}", e),
            }
        }
    }
}

#[cfg(test)]
mod box_field_tests {
    use super::*;

    fn check_json(j: serde_json::Value) -> std::result::Result<(), String> {
        check(&serde_json::from_value::<Spec>(j).unwrap())
    }

    #[test]
    fn box_fields_are_checked_and_hashed_only_when_used() {
        let all = serde_json::json!({"name":"a","image":"i",
            "privileged": true, "pull_policy": "never", "dns": "10.0.0.1", "dns_search": ["example.org"],
            "dns_opt": ["ndots:2"], "group_add": ["audio", 1000], "oom_score_adj": -500,
            "device_cgroup_rules": ["c 1:3 mr"], "cgroup_parent": "box.slice", "expose": [80, "90-91/udp"],
            "domainname": "example.org", "mac_address": "02:42:ac:11:00:02", "mem_reservation": "64m",
            "memswap_limit": "-1", "mem_swappiness": 10, "oom_kill_disable": true, "cpu_shares": 512,
            "cpu_quota": 50_000, "cpu_period": 100_000, "cpuset": "0-1,3", "pid": "host", "ipc": "shareable",
            "restart": "on-failure:5",
            "networks": {"n": {"ipv4_address": "10.1.0.5"}}});
        assert_eq!(check_json(all.clone()), Ok(()));
        let plain: Spec =
            serde_json::from_value(serde_json::json!({"name":"a","image":"i"})).unwrap();
        let used: Spec = serde_json::from_value(all).unwrap();
        assert_ne!(plain.hash("sha256:1"), used.hash("sha256:1"));
        for (k, bad) in [
            ("cap_add", serde_json::json!(["NET_ADMN"])),
            ("dns", serde_json::json!(["not-an-ip"])),
            ("dns_search", serde_json::json!(["bad host"])),
            ("oom_score_adj", serde_json::json!(1001)),
            ("device_cgroup_rules", serde_json::json!(["x 1:3 r"])),
            ("cgroup_parent", serde_json::json!("-x")),
            ("expose", serde_json::json!(["0"])),
            ("mac_address", serde_json::json!("02:42")),
            ("mem_reservation", serde_json::json!("lots")),
            ("memswap_limit", serde_json::json!("-2")),
            ("mem_swappiness", serde_json::json!(101)),
            ("cpu_shares", serde_json::json!(1)),
            ("cpu_period", serde_json::json!(10)),
            ("cpu_quota", serde_json::json!(5)),
            ("cpuset", serde_json::json!("0-a")),
            ("pid", serde_json::json!("container:x")),
            ("ipc", serde_json::json!("container:x")),
            ("uts", serde_json::json!("private")),
            ("domainname", serde_json::json!("a.example")),
            ("env_file", serde_json::json!(["rel.env"])),
            (
                "secrets",
                serde_json::json!([{"source": "/s", "target": "a/b"}]),
            ),
            (
                "configs",
                serde_json::json!([{"source": "/s", "target": "rel"}]),
            ),
            ("env", serde_json::json!({"A": "two\nlines"})),
        ] {
            let mut j = serde_json::json!({"name":"a","image":"i"});
            j[k] = bad.clone();
            if k == "domainname" {
                j["uts"] = "host".into();
            }
            let e = check_json(j).unwrap_err();
            assert!(e.starts_with(k), "{k}={bad}: {e}");
        }
        for (k, bad) in [
            ("restart", serde_json::json!("on-failure:0")),
            ("restart", serde_json::json!("sometimes")),
            ("pull_policy", serde_json::json!("daily")),
            (
                "networks",
                serde_json::json!({"n": {"ipv4_address": "10.1.0"}}),
            ),
            ("files_digest", serde_json::json!("x")),
            ("file_env", serde_json::json!({})),
        ] {
            let mut j = serde_json::json!({"name":"a","image":"i"});
            j[k] = bad.clone();
            assert!(serde_json::from_value::<Spec>(j).is_err(), "{k}={bad}");
        }
    }
}
