//! Compose files (`/etc/orc/compose.d/*.yaml`, `*.yml`) as a spec source: the
//! compose specification's `services`, `networks`, `volumes`, `secrets` and
//! `configs`, interpolated from the run's environment, read into the same
//! [`Spec`] and [`NetSpec`] model as the JSON specs, so both converge, hash and
//! validate alike. Every key is converted or refused with file, line and
//! column; none is dropped.
//!
//! YAML is read with saphyr-parser (yaml-rust2's successor, pure Rust, two small
//! dependencies): its events carry spans, so every key has its place, and it does
//! not expand aliases itself, so orc caps the expansion (alias bombs).

pub mod interp;
pub mod service;
pub mod yaml;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use super::network::{self, NetSpec};
use super::spec::{self, Spec};
use crate::error::invalid;
use yaml::{Mark, Node};

/// The services and networks of the valid files (each with its file), and the files
/// that are not valid.
pub type DirLoaded = (
    Vec<(Spec, PathBuf)>,
    Vec<(NetSpec, PathBuf)>,
    Vec<spec::Bad>,
);

/// A problem at a place in the file.
pub type Fail = (Mark, String);

/// What converting one file needs and collects.
pub struct Conv<'a> {
    env: interp::Lookup<'a>,
    unset: Vec<String>,
    literal_secrets: Vec<String>,
    /// Each service's container name: `container_name`, else `<project>-<service>`.
    names: BTreeMap<String, String>,
    /// The service being converted (its name is its alias on its networks).
    service: String,
    /// The compose file's directory (relative paths are relative to it).
    dir: PathBuf,
    /// orc's data dir (named volumes live in `<data_dir>/volumes/`).
    data_dir: PathBuf,
    project: String,
    nets: BTreeMap<String, String>,
    default_net: Option<String>,
    default_used: bool,
    default_declared: bool,
    volumes: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
    configs: BTreeMap<String, String>,
}

impl Conv<'_> {
    fn text(&mut self, text: &str, at: Mark) -> Result<String, Fail> {
        interp::interpolate(text, self.env, &mut self.unset).map_err(|e| (at, e))
    }

    /// A node as JSON: scalars interpolated, then typed when written plain (YAML 1.2's
    /// core schema: true/false, null, integers, floats).
    pub fn json(&mut self, n: &Node) -> Result<Value, Fail> {
        Ok(match n {
            Node::Scalar { text, plain, at } => {
                let t = self.text(text, *at)?;
                if *plain { typed(&t) } else { Value::String(t) }
            }
            Node::Seq(items, _) => Value::Array(
                items
                    .iter()
                    .map(|i| self.json(i))
                    .collect::<Result<_, _>>()?,
            ),
            Node::Map(es, _) => {
                let mut m = Map::new();
                for e in es {
                    m.insert(e.key.clone(), self.json(&e.value)?);
                }
                Value::Object(m)
            }
        })
    }

    /// A scalar as its (interpolated) text, whatever its type.
    pub fn string(&mut self, n: &Node, path: &str) -> Result<String, Fail> {
        match n {
            Node::Scalar { text, at, .. } => self.text(text, *at),
            _ => Err((n.at(), format!("{path}: must be a single value"))),
        }
    }

    /// A list of scalars (or, when `one` allows, a single scalar).
    pub fn strings(&mut self, n: &Node, path: &str, one: bool) -> Result<Vec<String>, Fail> {
        match n {
            Node::Seq(items, _) => items.iter().map(|i| self.string(i, path)).collect(),
            Node::Scalar { .. } if one => Ok(vec![self.string(n, path)?]),
            _ => Err((n.at(), format!("{path}: must be a list"))),
        }
    }

    /// A map of strings, or a list of `key<sep>value`.
    pub fn kv(&mut self, n: &Node, path: &str, sep: char) -> Result<Map<String, Value>, Fail> {
        let mut m = Map::new();
        match n {
            Node::Map(es, _) => {
                for e in es {
                    let v = self.string(&e.value, path)?;
                    m.insert(e.key.clone(), Value::String(v));
                }
            }
            _ => {
                for s in self.strings(n, path, false)? {
                    let (k, v) = s.split_once(sep).unwrap_or((&s, ""));
                    m.insert(k.to_string(), Value::String(v.to_string()));
                }
            }
        }
        Ok(m)
    }

    /// A host path: absolute, or relative to the compose file's directory.
    pub fn host_path(&mut self, p: &str, at: Mark, path: &str) -> Result<String, Fail> {
        if p.starts_with('~') {
            return Err((
                at,
                format!("{path}: {p:?}: ~ is not supported (write the path)"),
            ));
        }
        if p.is_empty() {
            return Err((at, format!("{path}: an empty path")));
        }
        Ok(normalise(&self.dir.join(p)).display().to_string())
    }

    /// A named volume's host directory.
    pub fn named_volume(&mut self, name: &str, at: Mark, path: &str) -> Result<String, Fail> {
        self.volumes.get(name).cloned().ok_or((
            at,
            format!("{path}: volume {name:?} is not in this file's volumes"),
        ))
    }

    pub fn network_name(&self, n: &str) -> Option<String> {
        if n == "default"
            && let Some(d) = &self.default_net
        {
            return Some(d.clone());
        }
        self.nets.get(n).cloned()
    }

    /// Notes a secret-looking variable whose value is written in the file itself.
    pub fn note_literal(&mut self, k: &str, raw: &Node) {
        if let Node::Scalar { text, .. } = raw
            && !text.is_empty()
            && !text.contains('$')
            && crate::containers::secrets::secret_name(k)
        {
            self.literal_secrets.push(k.to_string());
        }
    }

    pub fn top_file(&self, what: &str, name: &str) -> Option<String> {
        match what {
            "secrets" => self.secrets.get(name).cloned(),
            _ => self.configs.get(name).cloned(),
        }
    }
}

/// A plain scalar's JSON type.
fn typed(t: &str) -> Value {
    match t {
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        _ => {}
    }
    if let Ok(i) = t.parse::<i64>() {
        return Value::from(i);
    }
    if t.bytes().any(|c| c.is_ascii_digit())
        && t.bytes().all(|c| b"0123456789.eE+-".contains(&c))
        && let Some(n) = t.parse::<f64>().ok().and_then(serde_json::Number::from_f64)
    {
        return Value::Number(n);
    }
    Value::String(t.to_string())
}

/// `a/./b/../c` as `a/c` (never above `/`).
fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// A project name: the file's `name`, else its stem, lowercased to `[a-z0-9_-]`.
fn project_name(stem: &str) -> String {
    let p: String = stem
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        .collect();
    p.trim_start_matches(['_', '-']).to_string()
}

/// What one compose file declares.
#[derive(Debug, Default)]
pub struct Loaded {
    pub specs: Vec<Spec>,
    pub networks: Vec<NetSpec>,
    /// Variables the file uses that the run's environment does not set.
    pub unset: Vec<String>,
    /// Secret-looking variables whose values the file writes out (not `${...}`).
    pub literal_secrets: Vec<String>,
}

/// Where a file is and what converting it needs from the box.
pub struct Source<'a> {
    /// The file as shown in messages.
    pub shown: &'a Path,
    /// The file's system path (relative paths in it are relative to its directory).
    pub sys: &'a Path,
    pub data_dir: &'a Path,
    pub env: interp::Lookup<'a>,
}

/// Parses and checks one compose file; an error names the file, line, column and key.
pub fn parse(text: &[u8], src: &Source) -> crate::error::Result<Loaded> {
    let at = |(m, msg): Fail| {
        invalid(format!(
            "{}: line {}, column {}: {msg}",
            src.shown.display(),
            m.line,
            m.col
        ))
    };
    let text = std::str::from_utf8(text)
        .map_err(|_| invalid(format!("{}: not UTF-8", src.shown.display())))?;
    let doc = yaml::parse(text).map_err(at)?;
    let stem = src
        .sys
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut c = Conv {
        env: src.env,
        unset: Vec::new(),
        literal_secrets: Vec::new(),
        names: BTreeMap::new(),
        service: String::new(),
        dir: src.sys.parent().unwrap_or(Path::new("/")).to_path_buf(),
        data_dir: src.data_dir.to_path_buf(),
        project: project_name(&stem),
        nets: BTreeMap::new(),
        default_net: None,
        default_used: false,
        default_declared: false,
        volumes: BTreeMap::new(),
        secrets: BTreeMap::new(),
        configs: BTreeMap::new(),
    };
    convert(&mut c, &doc).map_err(at)
}

fn top_level(doc: &Node) -> Result<BTreeMap<&str, &Node>, Fail> {
    let Node::Map(es, _) = doc else {
        return Err((doc.at(), "the top level must be a mapping".into()));
    };
    let mut out = BTreeMap::new();
    for e in es {
        match e.key.as_str() {
            "services" | "networks" | "volumes" | "secrets" | "configs" | "name" | "version" => {
                out.insert(e.key.as_str(), &e.value);
            }
            k if k.starts_with("x-") => {}
            k => {
                return Err((
                    e.at,
                    format!(
                        "{k}: unsupported top-level key (orc reads services, networks, volumes, secrets, configs, name)"
                    ),
                ));
            }
        }
    }
    Ok(out)
}

fn convert(c: &mut Conv, doc: &Node) -> Result<Loaded, Fail> {
    let top = top_level(doc)?;
    if let Some(n) = top.get("name") {
        c.project = project_name(&c.string(n, "name")?);
    }
    if !spec::name_ok(&c.project) {
        return Err((
            doc.at(),
            format!("name: {:?} is not a project name (set name:)", c.project),
        ));
    }
    let mut nets = declared_networks(c, top.get("networks").copied())?;
    top_volumes(c, top.get("volumes").copied())?;
    for what in ["secrets", "configs"] {
        top_files(c, what, top.get(what).copied())?;
    }
    let mut specs = Vec::new();
    if let Some(s) = top.get("services") {
        let Node::Map(es, _) = s else {
            return Err((s.at(), "services: must be a mapping".into()));
        };
        container_names(c, es)?;
        for e in es {
            let (value, marks) = service::service(c, &e.key, &e.value)?;
            specs.push(to_spec(value, &marks, e)?);
        }
    }
    if c.default_used
        && !c.default_declared
        && let Some(d) = &c.default_net
    {
        nets.push(NetSpec {
            name: d.clone(),
            driver: None,
            subnet: None,
            gateway: None,
            internal: false,
            labels: BTreeMap::new(),
        });
    }
    Ok(Loaded {
        specs,
        networks: nets,
        unset: std::mem::take(&mut c.unset),
        literal_secrets: std::mem::take(&mut c.literal_secrets),
    })
}

/// Every service's container name, known before any is converted.
fn container_names(c: &mut Conv, es: &[yaml::Entry]) -> Result<(), Fail> {
    for e in es {
        let mut name = format!("{}-{}", c.project, e.key);
        if let Node::Map(keys, _) = &e.value
            && let Some(k) = keys.iter().find(|k| k.key == "container_name")
        {
            name = c.string(&k.value, &format!("services.{}.container_name", e.key))?;
        }
        c.names.insert(e.key.clone(), name);
    }
    Ok(())
}

/// The service's JSON form as a [`Spec`], checked; a problem points at the key.
fn to_spec(value: Value, marks: &service::Marks, e: &yaml::Entry) -> Result<Spec, Fail> {
    let svc = format!("services.{}", e.key);
    if let Some(bad) = crate::json::array_where_object(&value, spec::OBJECTS) {
        let (at, key) = marks.find(&bad).unwrap_or((e.at, svc.as_str()));
        return Err((at, format!("{key}: must be a mapping, not a list")));
    }
    let spec: Spec = serde_json::from_value(value.clone()).map_err(|err| {
        let (at, key) = failing_key(&value, marks).unwrap_or((e.at, svc.as_str()));
        (at, format!("{key}: {err}"))
    })?;
    spec::check(&spec).map_err(|m| {
        let (at, key) = marks.find(&m).unwrap_or((e.at, svc.as_str()));
        let detail = m.split_once(": ").map_or(m.as_str(), |(_, d)| d);
        (at, format!("{key}: {detail}"))
    })?;
    Ok(spec)
}

/// The key whose value alone fails to deserialize (serde's errors do not say which).
fn failing_key<'m>(value: &Value, marks: &'m service::Marks) -> Option<(Mark, &'m str)> {
    let Value::Object(m) = value else { return None };
    m.iter()
        .find(|(k, v)| {
            let mut one = Map::new();
            one.insert("name".into(), "n".into());
            one.insert("image".into(), "i".into());
            one.insert((*k).clone(), (*v).clone());
            serde_json::from_value::<Spec>(Value::Object(one)).is_err()
        })
        .and_then(|(k, _)| marks.find(k))
}

/// The top-level `networks`: this file's networks, named `<project>_<key>` (or `name`);
/// `external: true` refers to a network declared elsewhere (networks.d) by its name.
fn declared_networks(c: &mut Conv, n: Option<&Node>) -> Result<Vec<NetSpec>, Fail> {
    c.default_net = Some(format!("{}_default", c.project));
    let Some(n) = n else { return Ok(Vec::new()) };
    let Node::Map(es, _) = n else {
        return Err((n.at(), "networks: must be a mapping".into()));
    };
    let mut out = Vec::new();
    for e in es {
        let path = format!("networks.{}", e.key);
        let mut net = Map::new();
        let mut name = format!("{}_{}", c.project, e.key);
        let mut external = false;
        if let Node::Map(opts, _) = &e.value {
            for o in opts {
                let p = format!("{path}.{}", o.key);
                match o.key.as_str() {
                    "name" => name = c.string(&o.value, &p)?,
                    "external" => external = c.string(&o.value, &p)? == "true",
                    "driver" | "internal" => {
                        net.insert(o.key.clone(), c.json(&o.value)?);
                    }
                    "labels" => {
                        net.insert("labels".into(), Value::Object(c.kv(&o.value, &p, '=')?));
                    }
                    "ipam" => ipam(c, &o.value, &p, &mut net)?,
                    k if k.starts_with("x-") => {}
                    k => return Err((o.at, format!("{p}: unsupported key {k:?}"))),
                }
            }
        } else if !e.value.is_null() {
            return Err((e.value.at(), format!("{path}: must be a mapping")));
        }
        c.nets.insert(e.key.clone(), name.clone());
        if e.key == "default" {
            // Declared here (or external): services without networks join it as it is.
            c.default_net = Some(name.clone());
            c.default_declared = true;
        }
        if external {
            continue;
        }
        net.insert("name".into(), Value::String(name));
        let spec: NetSpec = serde_json::from_value(Value::Object(net))
            .map_err(|err| (e.at, format!("{path}: {err}")))?;
        network::check(&spec).map_err(|m| (e.at, format!("{path}: {m}")))?;
        out.push(spec);
    }
    Ok(out)
}

fn ipam(c: &mut Conv, n: &Node, path: &str, net: &mut Map<String, Value>) -> Result<(), Fail> {
    let Node::Map(es, _) = n else {
        return Err((n.at(), format!("{path}: must be a mapping")));
    };
    for e in es {
        let p = format!("{path}.{}", e.key);
        match (e.key.as_str(), &e.value) {
            ("driver", v) if c.string(v, &p)? == "default" => {}
            ("config", Node::Seq(items, _)) if items.len() <= 1 => {
                if let Some(Node::Map(cfg, _)) = items.first() {
                    for k in cfg {
                        match k.key.as_str() {
                            "subnet" | "gateway" => {
                                net.insert(k.key.clone(), c.string(&k.value, &p)?.into());
                            }
                            other => return Err((k.at, format!("{p}.{other}: unsupported key"))),
                        }
                    }
                }
            }
            (k, _) => {
                return Err((
                    e.at,
                    format!(
                        "{p}: {k}: not supported (driver default, one config with subnet and gateway)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The top-level `volumes`: named volumes are directories `<data_dir>/volumes/<project>_<key>`
/// (or `<name>`), created when missing, never removed.
fn top_volumes(c: &mut Conv, n: Option<&Node>) -> Result<(), Fail> {
    let Some(n) = n else { return Ok(()) };
    let Node::Map(es, _) = n else {
        return Err((n.at(), "volumes: must be a mapping".into()));
    };
    for e in es {
        let path = format!("volumes.{}", e.key);
        let mut name = format!("{}_{}", c.project, e.key);
        if let Node::Map(opts, _) = &e.value {
            for o in opts {
                let p = format!("{path}.{}", o.key);
                match o.key.as_str() {
                    "name" => name = c.string(&o.value, &p)?,
                    "driver" if c.string(&o.value, &p)? == "local" => {}
                    k if k.starts_with("x-") => {}
                    k => {
                        return Err((
                            o.at,
                            format!(
                                "{p}: unsupported key {k:?} (a named volume is a directory under {}/volumes)",
                                c.data_dir.display()
                            ),
                        ));
                    }
                }
            }
        } else if !e.value.is_null() {
            return Err((e.value.at(), format!("{path}: must be a mapping")));
        }
        if !spec::name_ok(&name) {
            return Err((e.at, format!("{path}: {name:?} is not a volume name")));
        }
        let dir = c.data_dir.join("volumes").join(&name);
        c.volumes.insert(e.key.clone(), dir.display().to_string());
    }
    Ok(())
}

/// The top-level `secrets` or `configs`: each a `file` on the host.
fn top_files(c: &mut Conv, what: &str, n: Option<&Node>) -> Result<(), Fail> {
    let Some(n) = n else { return Ok(()) };
    let Node::Map(es, _) = n else {
        return Err((n.at(), format!("{what}: must be a mapping")));
    };
    for e in es {
        let path = format!("{what}.{}", e.key);
        let Node::Map(opts, at) = &e.value else {
            return Err((e.value.at(), format!("{path}: must be a mapping with file")));
        };
        let mut file = None;
        for o in opts {
            let p = format!("{path}.{}", o.key);
            match o.key.as_str() {
                "file" => {
                    let f = c.string(&o.value, &p)?;
                    file = Some(c.host_path(&f, o.value.at(), &p)?);
                }
                k if k.starts_with("x-") => {}
                k => {
                    return Err((
                        o.at,
                        format!("{p}: unsupported key {k:?} (orc takes {what} from files: file:)"),
                    ));
                }
            }
        }
        let file = file.ok_or((*at, format!("{path}: file is required")))?;
        match what {
            "secrets" => c.secrets.insert(e.key.clone(), file),
            _ => c.configs.insert(e.key.clone(), file),
        };
    }
    Ok(())
}

/// Whether a name in compose.d is a compose file: `*.yaml` or `*.yml`, not hidden.
pub fn is_compose_name(name: &std::ffi::OsStr) -> bool {
    let b = std::os::unix::ffi::OsStrExt::as_bytes(name);
    !b.starts_with(b".")
        && ((b.ends_with(b".yaml") && b.len() > 5) || (b.ends_with(b".yml") && b.len() > 4))
}

/// Reads every compose file of the box's compose dir: the specs and networks they
/// declare, each with its file. A file that writes a secret-looking variable's value in
/// plain text must be private. A file that is not valid fails alone (its services are
/// not converged, nothing is removed as undeclared).
pub fn load_dir(
    opener: crate::trust::Opener,
    setup: &crate::setup::Setup,
    env: interp::Lookup,
) -> crate::error::Result<DirLoaded> {
    let kind = super::sources::Kind {
        want: &is_compose_name,
        holds: "compose files (*.yaml, *.yml)",
    };
    let dir = &setup.paths.compose_dir;
    let inputs = super::sources::read_dir(opener, &setup.root, dir, &kind)?.unwrap_or_default();
    let (mut specs, mut nets, mut bad) = (Vec::new(), Vec::new(), Vec::new());
    for i in inputs {
        let src = Source {
            shown: &i.shown,
            sys: &i.sys,
            data_dir: &setup.paths.data_dir,
            env,
        };
        let loaded = parse(&i.text, &src).and_then(|loaded| {
            if i.mode & 0o044 != 0
                && let Some(k) = loaded.literal_secrets.first()
            {
                return Err(super::secrets::readable(
                    &i.shown,
                    &format!("environment {k}"),
                    i.mode,
                ));
            }
            Ok(loaded)
        });
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => {
                bad.push(spec::Bad {
                    name: None,
                    file: i.shown,
                    error: e.to_string(),
                });
                continue;
            }
        };
        for u in &loaded.unset {
            log::warn!(
                "{}: the variable {u} is not set; it stands for an empty string",
                i.shown.display()
            );
        }
        specs.extend(loaded.specs.into_iter().map(|s| (s, i.shown.clone())));
        nets.extend(loaded.networks.into_iter().map(|n| (n, i.shown.clone())));
    }
    Ok((specs, nets, bad))
}

#[cfg(test)]
mod stacks;
#[cfg(test)]
mod tests;
