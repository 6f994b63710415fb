//! One compose service into orc's JSON spec form (the same serde model the
//! JSON specs use): every key either converted, with compose's short forms
//! normalised, or refused with its place. `x-*` keys are compose extensions:
//! `x-orc` carries orc's own keys, the others are ignored as compose does.

use std::path::Path;

use serde_json::{Map, Value};

use super::yaml::{Entry, Mark, Node};
use super::{Conv, Fail};

/// Service keys passed through as they are: orc's JSON field has compose's name and form.
const SAME: &[&str] = &[
    "image",
    "user",
    "hostname",
    "init",
    "read_only",
    "privileged",
    "cap_add",
    "cap_drop",
    "security_opt",
    "extra_hosts",
    "sysctls",
    "ulimits",
    "pids_limit",
    "cpus",
    "logging",
    "stop_signal",
    "working_dir",
    "shm_size",
    "devices",
    "dns_opt",
    "device_cgroup_rules",
    "cgroup_parent",
    "oom_score_adj",
    "pull_policy",
    "healthcheck",
    "mem_swappiness",
    "oom_kill_disable",
    "cpu_shares",
    "cpu_quota",
    "cpu_period",
];

/// Keys passed through as strings (compose allows a number where orc keeps text).
const TEXT: &[&str] = &[
    "mem_reservation",
    "memswap_limit",
    "cpuset",
    "domainname",
    "mac_address",
    "pid",
    "ipc",
    "uts",
];

/// Keys orc refuses, with why (the README's table says the same).
pub const REFUSED: &[(&str, &str)] = &[
    (
        "build",
        "a box does not build images: ship them (x-orc.image_archive)",
    ),
    ("deploy", "swarm-only; use mem_limit, cpus, restart"),
    ("profiles", "every service in compose.d is wanted"),
    (
        "links",
        "legacy: containers on a network reach each other by name",
    ),
    ("external_links", "legacy"),
    ("volumes_from", "name the volumes instead"),
    ("scale", "one container per service"),
    ("platform", "the box runs its own architecture"),
    ("userns_mode", "not supported"),
    ("stdin_open", "box containers are not interactive"),
    ("tty", "box containers are not interactive"),
    ("develop", "development only"),
    ("gpus", "not supported"),
    ("runtime", "not supported"),
    ("env_file.format", "not supported"),
];

pub(super) fn service(c: &mut Conv, name: &str, node: &Node) -> Result<(Value, Marks), Fail> {
    let Node::Map(entries, at) = node else {
        return Err((node.at(), format!("services.{name}: must be a mapping")));
    };
    let mut out = Map::new();
    let mut marks = Marks::default();
    let full = c.names.get(name).cloned().unwrap_or_default();
    out.insert("name".into(), Value::String(full));
    marks.push("name", *at, &format!("services.{name}"));
    c.service = name.to_string();
    for e in entries {
        let path = format!("services.{name}.{}", e.key);
        if let Some(v) = convert(c, name, e, &path, &mut out, &mut marks)? {
            out.insert(orc_key(&e.key).to_string(), v);
            marks.push(orc_key(&e.key), e.at, &path);
        }
    }
    if !out.contains_key("image") {
        return Err((*at, format!("services.{name}: image is required")));
    }
    if !out.contains_key("networks")
        && !out.contains_key("network")
        && let Some(d) = &c.default_net
    {
        let mut att = Map::new();
        att.insert("aliases".into(), Value::Array(vec![name.into()]));
        let mut m = Map::new();
        m.insert(d.clone(), Value::Object(att));
        out.insert("networks".into(), Value::Object(m));
        c.default_used = true;
    }
    Ok((Value::Object(out), marks))
}

/// The place of each orc field a service set, for errors found after conversion.
#[derive(Debug, Default)]
pub struct Marks(Vec<(String, Mark, String)>);

impl Marks {
    fn push(&mut self, field: &str, at: Mark, path: &str) {
        self.0.push((field.to_string(), at, path.to_string()));
    }

    /// The place and compose key of a `field: problem` message's field.
    pub fn find(&self, msg: &str) -> Option<(Mark, &str)> {
        let field = msg.split([':', '.', '[', ' ']).next()?;
        self.0
            .iter()
            .rev()
            .find(|(f, ..)| f == field)
            .map(|(_, at, p)| (*at, p.as_str()))
    }
}

fn orc_key(key: &str) -> &str {
    match key {
        "environment" => "env",
        "mem_limit" => "memory",
        "container_name" => "name",
        "stop_grace_period" => "stop_timeout",
        "network_mode" => "network",
        other => other,
    }
}

fn convert(
    c: &mut Conv,
    svc: &str,
    e: &Entry,
    path: &str,
    out: &mut Map<String, Value>,
    marks: &mut Marks,
) -> Result<Option<Value>, Fail> {
    let v = &e.value;
    let key = e.key.as_str();
    if SAME.contains(&key) {
        return c.json(v).map(Some);
    }
    if TEXT.contains(&key) {
        return c.string(v, path).map(|s| Some(Value::String(s)));
    }
    Ok(Some(match key {
        // Read before the services, so that depends_on can name it.
        "container_name" => return Ok(None),
        "mem_limit" => Value::String(c.string(v, path)?),
        "command" | "entrypoint" => return argv(c, v, path),
        "environment" => environment(c, v, path)?,
        "env_file" => env_files(c, v, path)?,
        "volumes" => return volumes(c, v, path, out, marks),
        "tmpfs" => {
            let items = c.strings(v, path, true)?;
            append(out, "tmpfs", items.into_iter().map(Into::into).collect());
            marks.push("tmpfs", e.at, path);
            return Ok(None);
        }
        "ports" => ports(c, v, path)?,
        "expose" | "dns" | "dns_search" | "group_add" => Value::Array(
            c.strings(v, path, true)?
                .into_iter()
                .map(Into::into)
                .collect(),
        ),
        "labels" => Value::Object(c.kv(v, path, '=')?),
        "restart" => Value::String(c.string(v, path)?),
        "depends_on" => depends_on(c, v, path)?,
        "stop_grace_period" => grace(c, v, path)?,
        "networks" => networks(c, v, path)?,
        "network_mode" => network_mode(c, v, path)?,
        "secrets" => mounts(c, v, path, "secrets")?,
        "configs" => mounts(c, v, path, "configs")?,
        "x-orc" => return x_orc(c, v, path, out, marks),
        k if k.starts_with("x-") => return Ok(None),
        k => {
            let why = REFUSED
                .iter()
                .find(|(r, _)| *r == k)
                .map_or("not supported by orc", |(_, w)| w);
            return Err((e.at, format!("{svc}: {path}: unsupported key ({why})")));
        }
    }))
}

/// `command`/`entrypoint`: a list, or a string split as a POSIX shell would (compose's
/// rule), or null.
fn argv(c: &mut Conv, v: &Node, path: &str) -> Result<Option<Value>, Fail> {
    if v.is_null() {
        return Ok(None);
    }
    let words = match v {
        Node::Seq(..) => c.strings(v, path, false)?,
        _ => split_shell(&c.string(v, path)?).map_err(|e| (v.at(), format!("{path}: {e}")))?,
    };
    Ok(Some(Value::Array(
        words.into_iter().map(Into::into).collect(),
    )))
}

/// Splits a command line into words like a POSIX shell (quotes and backslashes; no
/// expansion).
pub fn split_shell(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        match ch {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err("an unclosed ' quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\' | '$' | '`')) => cur.push(x),
                            Some('\n') => {}
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => return Err("an unclosed \" quote".into()),
                        },
                        Some(x) => cur.push(x),
                        None => return Err("an unclosed \" quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(x) => cur.push(x),
                    None => cur.push('\\'),
                }
            }
            x => {
                in_word = true;
                cur.push(x);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// `environment`: a map (a null value takes the variable from the run's environment, and
/// is left out when unset there) or a list of `NAME=value` / `NAME`.
fn environment(c: &mut Conv, v: &Node, path: &str) -> Result<Value, Fail> {
    let mut out = Map::new();
    let mut put = |c: &mut Conv, k: String, val: Option<String>| {
        if let Some(val) = val.or_else(|| (c.env)(&k)) {
            out.insert(k, Value::String(val));
        }
    };
    match v {
        Node::Map(es, _) => {
            for e in es {
                c.note_literal(&e.key, &e.value);
                let val = if e.value.is_null() {
                    None
                } else {
                    Some(c.string(&e.value, &format!("{path}.{}", e.key))?)
                };
                put(c, e.key.clone(), val);
            }
        }
        Node::Seq(items, _) => {
            for i in items {
                let s = c.string(i, path)?;
                if let (Some((k, _)), Node::Scalar { text, at, plain }) = (s.split_once('='), i) {
                    let raw = text.split_once('=').map_or("", |(_, v)| v).to_string();
                    let node = Node::Scalar {
                        text: raw,
                        at: *at,
                        plain: *plain,
                    };
                    c.note_literal(k, &node);
                }
                match s.split_once('=') {
                    Some((k, val)) => put(c, k.to_string(), Some(val.to_string())),
                    None => put(c, s, None),
                }
            }
        }
        Node::Scalar { .. } => {
            return Err((v.at(), format!("{path}: a mapping or a list of NAME=value")));
        }
    }
    Ok(Value::Object(out))
}

/// `env_file`: a path, a list of paths, or a list of `{path, required}`; relative to the
/// compose file's directory.
fn env_files(c: &mut Conv, v: &Node, path: &str) -> Result<Value, Fail> {
    let items: Vec<&Node> = match v {
        Node::Seq(items, _) => items.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for i in items {
        let p = match i {
            Node::Map(es, at) => {
                let mut p = None;
                for e in es {
                    match e.key.as_str() {
                        "path" => p = Some(c.string(&e.value, path)?),
                        "required" if c.string(&e.value, path)? == "true" => {}
                        k => {
                            return Err((
                                e.at,
                                format!("{path}.{k}: unsupported key (an env file is required)"),
                            ));
                        }
                    }
                }
                p.ok_or((*at, format!("{path}: path is required")))?
            }
            other => c.string(other, path)?,
        };
        out.push(Value::String(c.host_path(&p, i.at(), path)?));
    }
    Ok(Value::Array(out))
}

/// `volumes`: `source:target[:ro|rw]` strings (a source that is not a path is a named
/// volume) or the long form (`type` bind, volume or tmpfs).
fn volumes(
    c: &mut Conv,
    v: &Node,
    path: &str,
    out: &mut Map<String, Value>,
    marks: &mut Marks,
) -> Result<Option<Value>, Fail> {
    let Node::Seq(items, at) = v else {
        return Err((v.at(), format!("{path}: must be a list")));
    };
    let mut vols = Vec::new();
    for i in items {
        let (source, target, ro, label, kind) = match i {
            Node::Map(..) => long_volume(c, i, path)?,
            _ => short_volume(c, i, path)?,
        };
        if kind == "tmpfs" {
            append(out, "tmpfs", vec![Value::String(target)]);
            marks.push("tmpfs", i.at(), path);
            continue;
        }
        let source = match kind {
            "volume" => c.named_volume(&source, i.at(), path)?,
            _ => c.host_path(&source, i.at(), path)?,
        };
        let mut m = Map::new();
        m.insert("source".into(), source.into());
        m.insert("target".into(), target.into());
        if ro {
            m.insert("read_only".into(), true.into());
        }
        if let Some(l) = label {
            m.insert("selinux".into(), l.into());
        }
        vols.push(Value::Object(m));
    }
    append(out, "volumes", vols);
    marks.push("volumes", *at, path);
    Ok(None)
}

fn append(out: &mut Map<String, Value>, key: &str, items: Vec<Value>) {
    match out.get_mut(key) {
        Some(Value::Array(l)) => l.extend(items),
        _ => {
            out.insert(key.into(), Value::Array(items));
        }
    }
}

/// Source, target, read-only, SELinux relabel, kind.
type Vol = (String, String, bool, Option<&'static str>, &'static str);

fn short_volume(c: &mut Conv, i: &Node, path: &str) -> Result<Vol, Fail> {
    let s = c.string(i, path)?;
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [src, dst] => (*src, *dst, ""),
        [src, dst, mode] => (*src, *dst, *mode),
        [_] => {
            return Err((
                i.at(),
                format!("{path}: {s:?}: an anonymous volume is not supported (name it: name:{s})"),
            ));
        }
        _ => return Err((i.at(), format!("{path}: {s:?} is not source:target[:mode]"))),
    };
    let (mut ro, mut label) = (false, None);
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "rw" => {}
            "ro" => ro = true,
            "z" => label = Some("z"),
            "Z" => label = Some("Z"),
            m => {
                return Err((
                    i.at(),
                    format!("{path}: {s:?}: mode {m:?} is not supported (ro, rw, z, Z)"),
                ));
            }
        }
    }
    let kind = if src.starts_with(['.', '/', '~']) {
        "bind"
    } else {
        "volume"
    };
    Ok((src.to_string(), dst.to_string(), ro, label, kind))
}

fn long_volume(c: &mut Conv, i: &Node, path: &str) -> Result<Vol, Fail> {
    let Node::Map(es, at) = i else { unreachable!() };
    let (mut kind, mut src, mut dst, mut ro, mut label) = (None, None, None, false, None);
    for e in es {
        let p = format!("{path}.{}", e.key);
        match e.key.as_str() {
            "type" => kind = Some(c.string(&e.value, &p)?),
            "source" => src = Some(c.string(&e.value, &p)?),
            "target" => dst = Some(c.string(&e.value, &p)?),
            "read_only" => ro = c.string(&e.value, &p)? == "true",
            "bind" | "volume" | "tmpfs" if matches!(&e.value, Node::Map(m, _) if m.is_empty()) => {}
            "bind" => label = selinux(c, &e.value, &p)?,
            k => return Err((e.at, format!("{p}: unsupported key {k:?} in a volume"))),
        }
    }
    let dst = dst.ok_or((*at, format!("{path}: target is required")))?;
    let kind = match kind.as_deref() {
        Some("bind") => "bind",
        Some("volume") => "volume",
        Some("tmpfs") => return Ok((String::new(), dst, false, None, "tmpfs")),
        other => {
            return Err((
                *at,
                format!("{path}: type {other:?} is not supported (bind, volume or tmpfs)"),
            ));
        }
    };
    let src = src.ok_or((*at, format!("{path}: source is required")))?;
    Ok((src, dst, ro, label, kind))
}

/// A long-form volume's `bind: {selinux: z|Z}`.
fn selinux(c: &mut Conv, n: &Node, path: &str) -> Result<Option<&'static str>, Fail> {
    let Node::Map(es, _) = n else {
        return Err((n.at(), format!("{path}: must be a mapping")));
    };
    let mut label = None;
    for e in es {
        match (e.key.as_str(), c.string(&e.value, path)?.as_str()) {
            ("selinux", "z") => label = Some("z"),
            ("selinux", "Z") => label = Some("Z"),
            ("create_host_path", "true") => {}
            (k, v) => return Err((e.at, format!("{path}.{k}: {v} is not supported"))),
        }
    }
    Ok(label)
}

/// `depends_on`: a list, or a map of name to `{condition, required, restart}` (only the
/// condition matters to orc; `required: false` is not supported).
fn depends_on(c: &mut Conv, v: &Node, path: &str) -> Result<Value, Fail> {
    let full = |c: &Conv, n: &str, at: Mark| {
        c.names
            .get(n)
            .cloned()
            .ok_or((at, format!("{path}: {n:?} is not a service of this file")))
    };
    let Node::Map(es, _) = v else {
        let names = c.strings(v, path, false)?;
        return names
            .iter()
            .map(|n| full(c, n, v.at()).map(Value::String))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    };
    let mut out = Map::new();
    for e in es {
        let name = full(c, &e.key, e.at)?;
        let mut cond = Map::new();
        if let Node::Map(opts, _) = &e.value {
            for o in opts {
                let p = format!("{path}.{}.{}", e.key, o.key);
                match (o.key.as_str(), c.string(&o.value, &p)?.as_str()) {
                    ("condition", x) => {
                        cond.insert("condition".into(), x.into());
                    }
                    ("required", "true") | ("restart", "true" | "false") => {}
                    (k, x) => return Err((o.at, format!("{p}: {k}: {x} is not supported"))),
                }
            }
        }
        out.insert(name, Value::Object(cond));
    }
    Ok(Value::Object(out))
}

/// `ports`: strings (`[ip:][host:]container[/proto]`, ranges allowed), numbers, or the
/// long form `{target, published, host_ip, protocol}`.
fn ports(c: &mut Conv, v: &Node, path: &str) -> Result<Value, Fail> {
    let Node::Seq(items, _) = v else {
        return Err((v.at(), format!("{path}: must be a list")));
    };
    let mut out = Vec::new();
    for i in items {
        let Node::Map(es, at) = i else {
            out.push(Value::String(c.string(i, path)?));
            continue;
        };
        let (mut target, mut published, mut ip, mut proto) = (None, None, None, None);
        for e in es {
            let p = format!("{path}.{}", e.key);
            let val = c.string(&e.value, &p)?;
            match e.key.as_str() {
                "target" => target = Some(val),
                "published" => published = Some(val),
                "host_ip" => ip = Some(val),
                "protocol" => proto = Some(val),
                "mode" if val == "host" => {}
                "name" | "app_protocol" => {}
                k => return Err((e.at, format!("{p}: {k}: {val} is not supported"))),
            }
        }
        let target = target.ok_or((*at, format!("{path}: target is required")))?;
        let mut s = String::new();
        if let Some(ip) = ip {
            s.push_str(&format!("{ip}:{}:", published.as_deref().unwrap_or("")));
        } else if let Some(p) = published {
            s.push_str(&format!("{p}:"));
        }
        s.push_str(&target);
        if let Some(p) = proto {
            s.push_str(&format!("/{p}"));
        }
        out.push(Value::String(s));
    }
    Ok(Value::Array(out))
}

/// `stop_grace_period` (a duration) as orc's `stop_timeout` (whole seconds, rounded up).
fn grace(c: &mut Conv, v: &Node, path: &str) -> Result<Value, Fail> {
    let s = c.string(v, path)?;
    let d = crate::containers::fields::parse_go_duration(&s).ok_or((
        v.at(),
        format!("{path}: {s:?} is not a duration like \"30s\""),
    ))?;
    Ok(Value::from(d.as_secs() + u64::from(d.subsec_nanos() > 0)))
}

/// `networks`: names of this file's networks (list, or map to `{aliases, ipv4_address,
/// ipv6_address}`), turned into the engine networks' names.
fn networks(c: &mut Conv, v: &Node, path: &str) -> Result<Value, Fail> {
    let mut out = Map::new();
    let items: Vec<(String, Mark, Option<&Node>)> = match v {
        Node::Map(es, _) => es
            .iter()
            .map(|e| (e.key.clone(), e.at, Some(&e.value)))
            .collect(),
        _ => c
            .strings(v, path, false)?
            .into_iter()
            .map(|n| (n, v.at(), None))
            .collect(),
    };
    for (n, at, opts) in items {
        let full = c
            .network_name(&n)
            .ok_or((at, format!("{path}: {n:?} is not in this file's networks")))?;
        let att = match opts {
            Some(o) if !o.is_null() => {
                let Node::Map(es, _) = o else {
                    return Err((o.at(), format!("{path}.{n}: must be a mapping")));
                };
                let mut m = Map::new();
                m.insert(
                    "aliases".into(),
                    Value::Array(vec![c.service.clone().into()]),
                );
                for e in es {
                    let p = format!("{path}.{n}.{}", e.key);
                    match e.key.as_str() {
                        "aliases" => {
                            let mut all = vec![c.service.clone()];
                            for a in c.strings(&e.value, &p, false)? {
                                if !all.contains(&a) {
                                    all.push(a);
                                }
                            }
                            m.insert(e.key.clone(), all.into_iter().map(Value::from).collect());
                        }
                        "ipv4_address" | "ipv6_address" => {
                            m.insert(e.key.clone(), c.json(&e.value)?);
                        }
                        k if k.starts_with("x-") => {}
                        k => return Err((e.at, format!("{p}: unsupported key {k:?}"))),
                    }
                }
                Value::Object(m)
            }
            _ => {
                let mut m = Map::new();
                m.insert(
                    "aliases".into(),
                    Value::Array(vec![c.service.clone().into()]),
                );
                Value::Object(m)
            }
        };
        out.insert(full, att);
    }
    Ok(Value::Object(out))
}

fn network_mode(c: &mut Conv, v: &Node, path: &str) -> Result<Value, Fail> {
    let m = c.string(v, path)?;
    match m.as_str() {
        "host" | "none" | "bridge" => Ok(Value::String(m)),
        _ => Err((
            v.at(),
            format!("{path}: {m:?} is not supported (host, none or bridge)"),
        )),
    }
}

/// A service's `secrets` or `configs`: names of the file's top-level entries, or
/// `{source, target}`; the mount targets follow compose (`/run/secrets/NAME`, `/NAME`).
fn mounts(c: &mut Conv, v: &Node, path: &str, what: &str) -> Result<Value, Fail> {
    let Node::Seq(items, _) = v else {
        return Err((v.at(), format!("{path}: must be a list")));
    };
    let mut out = Vec::new();
    for i in items {
        let (src, target) = match i {
            Node::Map(es, at) => {
                let (mut s, mut t) = (None, None);
                for e in es {
                    let p = format!("{path}.{}", e.key);
                    match e.key.as_str() {
                        "source" => s = Some(c.string(&e.value, &p)?),
                        "target" => t = Some(c.string(&e.value, &p)?),
                        k => {
                            return Err((
                                e.at,
                                format!(
                                    "{p}: unsupported key {k:?} (files are mounted as they are: set owner and mode on the host)"
                                ),
                            ));
                        }
                    }
                }
                (s.ok_or((*at, format!("{path}: source is required")))?, t)
            }
            other => (c.string(other, path)?, None),
        };
        let file = c.top_file(what, &src).ok_or((
            i.at(),
            format!("{path}: {src:?} is not in this file's {what}"),
        ))?;
        let target = target.unwrap_or_else(|| {
            if what == "configs" {
                format!("/{src}")
            } else {
                src.clone()
            }
        });
        let mut m = Map::new();
        m.insert("source".into(), file.into());
        m.insert("target".into(), target.into());
        out.push(Value::Object(m));
    }
    Ok(Value::Array(out))
}

/// `x-orc`: orc's own keys — `hooks`, `image_archive`, and `volumes` in orc's form
/// (sources relative to the container's runtime dir).
fn x_orc(
    c: &mut Conv,
    v: &Node,
    path: &str,
    out: &mut Map<String, Value>,
    marks: &mut Marks,
) -> Result<Option<Value>, Fail> {
    let Node::Map(es, _) = v else {
        return Err((v.at(), format!("{path}: must be a mapping")));
    };
    for e in es {
        let p = format!("{path}.{}", e.key);
        match e.key.as_str() {
            "hooks" | "image_archive" => {
                out.insert(e.key.clone(), c.json(&e.value)?);
            }
            "volumes" => match c.json(&e.value)? {
                Value::Array(items) => append(out, "volumes", items),
                _ => return Err((e.at, format!("{p}: must be a list"))),
            },
            k => {
                return Err((
                    e.at,
                    format!(
                        "{p}: unsupported key {k:?} (x-orc takes hooks, image_archive, volumes)"
                    ),
                ));
            }
        }
        marks.push(&e.key, e.at, &p);
    }
    Ok(None)
}

/// Whether `p` is absolute (orc's forms want absolute host paths).
pub fn is_abs(p: &str) -> bool {
    Path::new(p).is_absolute()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_split_like_compose() {
        let s = |x: &str| split_shell(x).unwrap();
        assert_eq!(s("sleep 1d"), ["sleep", "1d"]);
        assert_eq!(
            s(r#"sh -c 'echo "a b"; exit 0'"#),
            ["sh", "-c", r#"echo "a b"; exit 0"#]
        );
        assert_eq!(s(r#"a "b \"c\" \x" d\ e"#), ["a", r#"b "c" \x"#, "d e"]);
        assert_eq!(s("  "), Vec::<String>::new());
        assert_eq!(s("''"), [""]);
        assert!(split_shell("a 'b").is_err() && split_shell("\"x").is_err());
    }
}
