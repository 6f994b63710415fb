//! The compose-level fields of a spec: their JSON forms (compose's short and
//! long forms where compose has both), normalised so that the canonical hash
//! does not depend on the form used, and each one's validation.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A container or network name the engines accept: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 128.
pub fn name_ok(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// Whether a name in a specs dir is a spec: `*.json`, not hidden (editor files are not).
pub fn is_spec_name(name: &std::ffi::OsStr) -> bool {
    let b = std::os::unix::ffi::OsStrExt::as_bytes(name);
    b.ends_with(b".json") && b.len() > 5 && !b.starts_with(b".")
}

/// A `depends_on` condition (compose's long form).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    #[default]
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

impl Condition {
    pub fn name(self) -> &'static str {
        match self {
            Condition::ServiceStarted => "service_started",
            Condition::ServiceHealthy => "service_healthy",
            Condition::ServiceCompletedSuccessfully => "service_completed_successfully",
        }
    }
}

/// One dependency and the condition it must meet before the dependent starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    pub name: String,
    pub condition: Condition,
}

/// `depends_on`: `["db"]` or `{"db": {"condition": "service_healthy"}}`. Serialised as the
/// list form whenever every condition is `service_started`, so a spec that does not use
/// conditions hashes as it always did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DependsOn(pub Vec<Dep>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LongDep {
    #[serde(default)]
    condition: Condition,
}

#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "a list of container names, or a map of name to {\"condition\": ...} with condition service_started, service_healthy or service_completed_successfully"
)]
enum DepsIn {
    Short(Vec<String>),
    Long(BTreeMap<String, LongDep>),
}

impl<'de> Deserialize<'de> for DependsOn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(DependsOn(match DepsIn::deserialize(d)? {
            DepsIn::Short(v) => v
                .into_iter()
                .map(|name| Dep {
                    name,
                    condition: Condition::ServiceStarted,
                })
                .collect(),
            DepsIn::Long(m) => m
                .into_iter()
                .map(|(name, l)| Dep {
                    name,
                    condition: l.condition,
                })
                .collect(),
        }))
    }
}

impl Serialize for DependsOn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self
            .0
            .iter()
            .all(|d| d.condition == Condition::ServiceStarted)
        {
            return s.collect_seq(self.0.iter().map(|d| &d.name));
        }
        #[derive(Serialize)]
        struct Long {
            condition: Condition,
        }
        let m: BTreeMap<&str, Long> = self
            .0
            .iter()
            .map(|d| {
                (
                    d.name.as_str(),
                    Long {
                        condition: d.condition,
                    },
                )
            })
            .collect();
        m.serialize(s)
    }
}

impl DependsOn {
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|d| d.name.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names().any(|n| n == name)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A Go duration as the engines take it (`"1m30s"`, `"500ms"`), kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GoDuration(pub String);

impl GoDuration {
    pub fn get(&self) -> Duration {
        parse_go_duration(&self.0).expect("validated when read")
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match parse_go_duration(&s) {
            Some(t) if t <= Duration::from_secs(24 * 3600) => Ok(GoDuration(s)),
            _ => Err(serde::de::Error::custom(format!(
                "{s:?} is not a duration like \"10s\", \"1m30s\" or \"500ms\" (at most 24h)"
            ))),
        }
    }
}

/// Parses `1h2m3.5s4ms` (units h, m, s, ms, us, µs, ns); `None` when malformed.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() || rest.len() > 64 {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..n].parse().ok().filter(|_| n > 0)?;
        rest = &rest[n..];
        let (unit, len) = [
            ("ns", 1e-9),
            ("us", 1e-6),
            ("µs", 1e-6),
            ("ms", 1e-3),
            ("h", 3600.0),
            ("m", 60.0),
            ("s", 1.0),
        ]
        .iter()
        .find(|(u, _)| rest.starts_with(u))
        .map(|(u, f)| (*f, u.len()))?;
        total += num * unit;
        rest = &rest[len..];
    }
    (total.is_finite() && total < 1e9).then(|| Duration::from_secs_f64(total))
}

/// `healthcheck.test`: a shell string, or `["CMD", argv...]`, `["CMD-SHELL", "cmd"]`, `["NONE"]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a shell command string or a list [\"CMD\", ...], [\"CMD-SHELL\", \"...\"] or [\"NONE\"]"
)]
pub enum HealthTest {
    Shell(String),
    List(Vec<String>),
}

/// compose's `healthcheck`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<HealthTest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable: bool,
}

/// What the engine is told to run as the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCmd {
    Shell(String),
    Exec(Vec<String>),
    Disabled,
}

impl Healthcheck {
    pub fn cmd(&self) -> HealthCmd {
        if self.disable {
            return HealthCmd::Disabled;
        }
        match &self.test {
            Some(HealthTest::Shell(s)) => HealthCmd::Shell(s.clone()),
            Some(HealthTest::List(l)) => match l.first().map(String::as_str) {
                Some("CMD-SHELL") => HealthCmd::Shell(l[1].clone()),
                Some("CMD") => HealthCmd::Exec(l[1..].to_vec()),
                _ => HealthCmd::Disabled,
            },
            None => HealthCmd::Disabled,
        }
    }

    /// Whether the container has a check orc waits for.
    pub fn active(&self) -> bool {
        self.cmd() != HealthCmd::Disabled
    }

    /// How long a new container may take to become healthy: the engines mark it unhealthy
    /// after `retries` failures past `start_period`; this leaves one more round of slack.
    pub fn patience(&self) -> Duration {
        let d = |v: &Option<GoDuration>, def: u64| {
            v.as_ref()
                .map(GoDuration::get)
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(def))
        };
        let round = d(&self.interval, 30) + d(&self.timeout, 30);
        let retries = self.retries.unwrap_or(3).max(1);
        d(&self.start_period, 0) + round * (retries + 1) + Duration::from_secs(5)
    }

    /// How often the check runs.
    pub fn interval(&self) -> Duration {
        self.interval
            .as_ref()
            .map(GoDuration::get)
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(30))
    }

    /// Field-level validation (for the spec's check).
    pub fn validate(&self) -> Result<(), String> {
        match &self.test {
            None if !self.disable => return Err("test: required (or \"disable\": true)".into()),
            Some(HealthTest::Shell(s)) if s.trim().is_empty() => {
                return Err("test: empty command".into());
            }
            Some(HealthTest::List(l)) => match l.first().map(String::as_str) {
                Some("NONE") if l.len() == 1 => {}
                Some("CMD") if l.len() >= 2 && !l[1].is_empty() => {}
                Some("CMD-SHELL") if l.len() == 2 && !l[1].trim().is_empty() => {}
                _ => {
                    return Err(
                        "test: must be [\"CMD\", program, args...], [\"CMD-SHELL\", \"command\"] or [\"NONE\"]"
                            .into(),
                    );
                }
            },
            _ => {}
        }
        let strings: Vec<&str> = match &self.test {
            Some(HealthTest::Shell(s)) => vec![s],
            Some(HealthTest::List(l)) => l.iter().map(String::as_str).collect(),
            None => vec![],
        };
        if strings.iter().any(|s| s.contains('\0')) {
            return Err("test: contains NUL".into());
        }
        if self.retries.is_some_and(|r| r == 0 || r > 1000) {
            return Err("retries: must be 1..=1000".into());
        }
        for (name, v) in [("interval", &self.interval), ("timeout", &self.timeout)] {
            if v.as_ref()
                .is_some_and(|d| d.get() < Duration::from_millis(1) && !d.get().is_zero())
            {
                return Err(format!("{name}: at least 1ms"));
            }
        }
        Ok(())
    }
}

/// A ulimit: one number (soft = hard) or `{"soft": n, "hard": n}`; -1 is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, expecting = "a number or {\"soft\": n, \"hard\": n}")]
pub enum Ulimit {
    One(i64),
    Two(SoftHard),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftHard {
    pub soft: i64,
    pub hard: i64,
}

impl Ulimit {
    /// `soft:hard` as `--ulimit name=soft:hard` takes it.
    pub fn flag(self) -> String {
        match self {
            Ulimit::One(n) => n.to_string(),
            Ulimit::Two(SoftHard { soft, hard }) => format!("{soft}:{hard}"),
        }
    }
}

pub const ULIMITS: [&str; 15] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// compose's `logging`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// `cpus`: a number or a numeric string (`0.5`, `"2"`), kept as a decimal string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cpus(pub String);

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a number of CPUs like 0.5 or \"2\"")]
        enum In {
            N(f64),
            S(String),
        }
        let v = match In::deserialize(d)? {
            In::N(n) => n,
            In::S(s) => s
                .parse::<f64>()
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a number of CPUs")))?,
        };
        if !(v > 0.0 && v <= 1024.0) {
            return Err(serde::de::Error::custom("cpus must be > 0 and <= 1024"));
        }
        Ok(Cpus(format!("{v}")))
    }
}

/// A network a container joins, with its aliases on it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetAttach {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// A static address on the network (it needs a subnet that holds it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<std::net::Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<std::net::Ipv6Addr>,
}

/// `networks`: `["front"]` or `{"front": {"aliases": ["www"]}}` (a null value is allowed).
pub fn de_networks<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, NetAttach>, D::Error> {
    #[derive(Deserialize)]
    #[serde(
        untagged,
        expecting = "a list of network names or a map of name to {\"aliases\": [...]}"
    )]
    enum In {
        List(Vec<String>),
        Map(BTreeMap<String, Option<NetAttach>>),
    }
    Ok(match In::deserialize(d)? {
        In::List(v) => v.into_iter().map(|n| (n, NetAttach::default())).collect(),
        In::Map(m) => m
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect(),
    })
}

/// `extra_hosts`: `["host:ip"]` (or `host=ip`) or `{"host": "ip"}`, kept as `host:ip`.
pub fn de_extra_hosts<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a list of \"host:ip\" or a map of host to ip")]
    enum In {
        List(Vec<String>),
        Map(BTreeMap<String, String>),
    }
    Ok(match In::deserialize(d)? {
        In::List(v) => v
            .into_iter()
            .map(|e| match (e.split_once('='), e.split_once(':')) {
                (Some((h, ip)), _) if !h.contains(':') => format!("{h}:{ip}"),
                _ => e,
            })
            .collect(),
        In::Map(m) => m.into_iter().map(|(h, ip)| format!("{h}:{ip}")).collect(),
    })
}

/// `sysctls`: `{"k": "v"}` or `["k=v"]`.
pub fn de_sysctls<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(
        untagged,
        expecting = "a map of name to value or a list of \"name=value\""
    )]
    enum In {
        Map(BTreeMap<String, serde_json::Value>),
        List(Vec<String>),
    }
    let scalar = |v: serde_json::Value| match v {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        serde_json::Value::Bool(b) => Ok(b.to_string()),
        _ => Err(serde::de::Error::custom(
            "a sysctl value is a string or a number",
        )),
    };
    match In::deserialize(d)? {
        In::Map(m) => m.into_iter().map(|(k, v)| Ok((k, scalar(v)?))).collect(),
        In::List(v) => v
            .into_iter()
            .map(|e| {
                e.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| serde::de::Error::custom(format!("{e:?} is not name=value")))
            })
            .collect(),
    }
}

/// `tmpfs`: one `"/path[:options]"` or a list of them.
pub fn de_tmpfs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a path or a list of \"/path[:options]\"")]
    enum In {
        One(String),
        List(Vec<String>),
    }
    Ok(match In::deserialize(d)? {
        In::One(s) => vec![s],
        In::List(v) => v,
    })
}

/// A word of safe characters (names of drivers, capabilities, signals, options).
pub fn word_ok(s: &str, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_-.".contains(&c) || extra.contains(&c))
}

/// A text value: no control characters but tab, bounded.
pub fn text_ok(s: &str, max: usize) -> bool {
    s.len() <= max && !s.chars().any(|c| c.is_control() && c != '\t')
}

const SIGNALS: [&str; 31] = [
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV",
    "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU",
    "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR",
];

pub fn signal_ok(s: &str) -> bool {
    if let Ok(n) = s.parse::<u8>() {
        return (1..=64).contains(&n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    SIGNALS.contains(&name)
        || name
            .strip_prefix("RTMIN+")
            .or_else(|| name.strip_prefix("RTMAX-"))
            .is_some_and(|n| n.parse::<u8>().is_ok_and(|n| n <= 30))
}

/// The kernel's capabilities (linux/capability.h, 6.x), without `CAP_`.
pub const CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// `ALL` or one of the kernel's capabilities, with or without `CAP_`, in any case (as the
/// engines take them).
pub fn capability_ok(s: &str) -> bool {
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
    name == "ALL" || CAPABILITIES.contains(&name)
}

/// One string or a list of them (`dns: 10.0.0.1` or `dns: [..]`).
pub fn de_one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    de_tmpfs(d)
}

/// A list of strings or numbers (`group_add: [audio, 1000]`, `expose: [80, "443/tcp"]`),
/// kept as strings.
pub fn de_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a string or a number")]
    enum In {
        S(String),
        N(u64),
    }
    Ok(Vec::<In>::deserialize(d)?
        .into_iter()
        .map(|i| match i {
            In::S(s) => s,
            In::N(n) => n.to_string(),
        })
        .collect())
}

/// A device cgroup rule: `c|b|a major:minor perms` (`*` for any number).
pub fn cgroup_rule_ok(r: &str) -> bool {
    let parts: Vec<&str> = r.split(' ').collect();
    let num = |s: &str| {
        s == "*" || (!s.is_empty() && s.len() <= 10 && s.bytes().all(|c| c.is_ascii_digit()))
    };
    match parts.as_slice() {
        [t, mm, perms] => {
            matches!(*t, "a" | "b" | "c")
                && mm.split_once(':').is_some_and(|(a, b)| num(a) && num(b))
                && !perms.is_empty()
                && perms.len() <= 3
                && perms.bytes().all(|c| b"rwm".contains(&c))
        }
        _ => false,
    }
}

/// `host[:container[:perms]]` with absolute paths and perms of `rwm`.
pub fn device_ok(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    let abs = |p: &str| p.starts_with('/') && text_ok(p, 4096) && !p.contains([' ', ',']);
    let perms = |p: &str| !p.is_empty() && p.len() <= 3 && p.bytes().all(|c| b"rwm".contains(&c));
    match parts.as_slice() {
        [h] => abs(h),
        [h, c] => abs(h) && (abs(c) || perms(c)),
        [h, c, p] => abs(h) && abs(c) && perms(p),
        _ => false,
    }
}

/// `/path[:options]` with an absolute path and comma-separated options.
pub fn tmpfs_ok(s: &str) -> bool {
    let (path, opts) = s.split_once(':').unwrap_or((s, ""));
    path.starts_with('/')
        && text_ok(s, 4096)
        && !path.contains([' ', ','])
        && opts.split(',').all(|o| o.is_empty() || word_ok(o, b"=+"))
}

/// A hostname (RFC 1123 labels).
pub fn hostname_ok(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

/// `host:ip` with a hostname and an IP address (or docker's `host-gateway`).
pub fn extra_host_ok(e: &str) -> bool {
    e.split_once(':').is_some_and(|(h, ip)| {
        hostname_ok(h) && (ip == "host-gateway" || ip.parse::<std::net::IpAddr>().is_ok())
    })
}

/// A size like `512m` (bytes, or b/k/m/g suffixed).
pub fn size_ok(m: &str) -> bool {
    let digits = m.trim_end_matches(['b', 'k', 'm', 'g', 'B', 'K', 'M', 'G']);
    !digits.is_empty()
        && digits.len() <= 18
        && m.len() - digits.len() <= 1
        && digits.bytes().all(|c| c.is_ascii_digit())
}

pub fn ulimit_ok(name: &str, u: Ulimit) -> Result<(), String> {
    if !ULIMITS.contains(&name) {
        return Err(format!("{name:?} is not a ulimit ({})", ULIMITS.join(", ")));
    }
    let ok = |n: i64| n >= -1;
    match u {
        Ulimit::One(n) if ok(n) => Ok(()),
        Ulimit::Two(SoftHard { soft, hard })
            if ok(soft) && ok(hard) && (hard == -1 || (soft != -1 && soft <= hard)) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "{name}: values are -1 (unlimited) or >= 0, soft <= hard"
        )),
    }
}

pub fn sysctl_ok(k: &str, v: &str) -> bool {
    !k.is_empty()
        && k.len() <= 256
        && k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-/".contains(&c))
        && text_ok(v, 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let d = |s| parse_go_duration(s);
        assert_eq!(d("10s"), Some(Duration::from_secs(10)));
        assert_eq!(d("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(d("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(d("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(d("0"), Some(Duration::ZERO));
        for bad in ["", "10", "s", "1x", "-1s", "1s ", "1e3s", "..s"] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }

    #[test]
    fn depends_on_forms_and_hash_form() {
        let short: DependsOn = serde_json::from_str(r#"["db", "cache"]"#).unwrap();
        assert_eq!(serde_json::to_string(&short).unwrap(), r#"["db","cache"]"#);
        let long: DependsOn =
            serde_json::from_str(r#"{"db": {"condition": "service_healthy"}, "cache": {}}"#)
                .unwrap();
        assert_eq!(long.0[1].condition, Condition::ServiceHealthy);
        assert_eq!(
            serde_json::to_string(&long).unwrap(),
            r#"{"cache":{"condition":"service_started"},"db":{"condition":"service_healthy"}}"#
        );
        let started: DependsOn =
            serde_json::from_str(r#"{"db": {"condition": "service_started"}}"#).unwrap();
        assert_eq!(serde_json::to_string(&started).unwrap(), r#"["db"]"#);
        for bad in [
            r#"{"db": {"condition": "sometime"}}"#,
            r#"{"db": {"when": 1}}"#,
            r#""db""#,
        ] {
            assert!(serde_json::from_str::<DependsOn>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn healthcheck_forms() {
        let h = |j: &str| serde_json::from_str::<Healthcheck>(j).unwrap();
        assert_eq!(
            h(r#"{"test": "pg_isready"}"#).cmd(),
            HealthCmd::Shell("pg_isready".into())
        );
        assert_eq!(
            h(r#"{"test": ["CMD", "test", "-f", "/ok"]}"#).cmd(),
            HealthCmd::Exec(vec!["test".into(), "-f".into(), "/ok".into()])
        );
        assert_eq!(h(r#"{"test": ["NONE"]}"#).cmd(), HealthCmd::Disabled);
        assert!(!h(r#"{"test": "x", "disable": true}"#).active());
        for bad in [
            r#"{"interval": "1s"}"#,
            r#"{"test": []}"#,
            r#"{"test": ["CMD"]}"#,
            r#"{"test": ["CMD-SHELL", "a", "b"]}"#,
            r#"{"test": ["sh", "-c", "x"]}"#,
            r#"{"test": " "}"#,
            r#"{"test": "x", "retries": 0}"#,
        ] {
            assert!(h(bad).validate().is_err(), "{bad}");
        }
        let p = h(
            r#"{"test": "x", "interval": "1s", "timeout": "1s", "retries": 3, "start_period": "10s"}"#,
        );
        assert_eq!(p.patience(), Duration::from_secs(10 + 2 * 4 + 5));
    }

    #[test]
    fn value_checks() {
        assert!(
            signal_ok("SIGTERM") && signal_ok("QUIT") && signal_ok("9") && signal_ok("SIGRTMIN+3")
        );
        assert!(!signal_ok("SIGFOO") && !signal_ok("0") && !signal_ok("-9"));
        assert!(
            capability_ok("NET_ADMIN") && capability_ok("CAP_SYS_TIME") && capability_ok("ALL")
        );
        assert!(!capability_ok("net admin") && !capability_ok("") && !capability_ok("NET_ADMN"));
        assert!(capability_ok("cap_net_raw") && capability_ok("CHECKPOINT_RESTORE"));
        assert!(cgroup_rule_ok("c 1:3 mr") && cgroup_rule_ok("a *:* rwm"));
        assert!(
            !cgroup_rule_ok("x 1:3 r") && !cgroup_rule_ok("c 1 r") && !cgroup_rule_ok("c 1:3 rx")
        );
        assert!(
            device_ok("/dev/fuse") && device_ok("/dev/sda:/dev/xvda:rwm") && device_ok("/dev/x:r")
        );
        assert!(!device_ok("dev/fuse") && !device_ok("/dev/x:/y:z") && !device_ok("/a:/b:r:x"));
        assert!(tmpfs_ok("/run") && tmpfs_ok("/tmp:size=64m,mode=1777"));
        assert!(!tmpfs_ok("tmp") && !tmpfs_ok("/tmp:size 64m"));
        assert!(
            extra_host_ok("db.local:10.0.0.2")
                && extra_host_ok("h:::1")
                && extra_host_ok("gw:host-gateway")
        );
        assert!(!extra_host_ok("bad host:1.2.3.4") && !extra_host_ok("h:notanip"));
        assert!(ulimit_ok("nofile", Ulimit::Two(SoftHard { soft: 10, hard: 20 })).is_ok());
        assert!(ulimit_ok("nofile", Ulimit::Two(SoftHard { soft: 30, hard: 20 })).is_err());
        assert!(ulimit_ok("files", Ulimit::One(1)).is_err());
        assert!(size_ok("64m") && !size_ok("64mb") && !size_ok("m"));
        let hosts: Vec<String> = de_extra_hosts(serde_json::json!(["a=1.2.3.4", "b:::1"])).unwrap();
        assert_eq!(hosts, ["a:1.2.3.4", "b:::1"]);
    }
}
