//! Container specs (`/etc/orc/containers.d/*.json`): the format, complete
//! validation before any engine call, the canonical hash that labels a
//! container, and the dependency levels work follows.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, invalid};
use crate::root::Root;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// Relative to the container's runtime dir, or absolute (under the root).
    pub source: PathBuf,
    pub target: PathBuf,
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    No,
    Always,
    #[default]
    UnlessStopped,
    OnFailure,
}

impl Restart {
    pub fn flag(self) -> &'static str {
        match self {
            Restart::No => "no",
            Restart::Always => "always",
            Restart::UnlessStopped => "unless-stopped",
            Restart::OnFailure => "on-failure",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Host argv, run before the container is created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_create: Vec<String>,
    /// Argv run inside the old container before it is stopped for recreation or removal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub store_data: Vec<String>,
    /// Argv run inside the new container after a recreation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restore_data: Vec<String>,
    /// Argv run inside the container after it was created and started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_start: Vec<String>,
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
    pub depends_on: Vec<String>,
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
}

impl Spec {
    /// sha256 of the canonical JSON (sorted maps, fixed field order).
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).expect("specs serialize");
        let digest = Sha256::digest(&json);
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn name_ok(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

fn port_ok(p: &str) -> bool {
    let (body, proto) = match p.rsplit_once('/') {
        Some((b, proto)) => (b, Some(proto)),
        None => (p, None),
    };
    if proto.is_some_and(|p| !matches!(p, "tcp" | "udp" | "sctp")) {
        return false;
    }
    let parts: Vec<&str> = body.split(':').collect();
    let num = |s: &str| s.parse::<u16>().is_ok_and(|n| n > 0);
    match parts.as_slice() {
        [c] => num(c),
        [h, c] => num(h) && num(c),
        [ip, h, c] => ip.parse::<std::net::IpAddr>().is_ok() && (h.is_empty() || num(h)) && num(c),
        _ => false,
    }
}

fn memory_ok(m: &str) -> bool {
    let digits = m.trim_end_matches(['b', 'k', 'm', 'g', 'B', 'K', 'M', 'G']);
    !digits.is_empty() && m.len() - digits.len() <= 1 && digits.bytes().all(|c| c.is_ascii_digit())
}

/// Field-level problems of one spec, as `field: problem`.
pub fn check(spec: &Spec) -> std::result::Result<(), String> {
    if !name_ok(&spec.name) {
        return Err(format!(
            "name: {:?} is not a valid container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)",
            spec.name
        ));
    }
    if spec.image.is_empty()
        || spec.image.starts_with('-')
        || spec
            .image
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!("image: {:?} is not an image reference", spec.image));
    }
    if spec.entrypoint.as_ref().is_some_and(|e| e.is_empty()) {
        return Err("entrypoint: must not be empty".into());
    }
    for k in spec.env.keys() {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(format!("env: {k:?} is not a variable name"));
        }
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
            if p.to_string_lossy().contains([':', ',']) {
                return Err(format!("volumes[{i}]: {p:?} contains ':' or ','"));
            }
        }
    }
    for p in &spec.ports {
        if !port_ok(p) {
            return Err(format!("ports: {p:?} is not [ip:][host:]container[/proto]"));
        }
    }
    for k in spec.labels.keys() {
        if k.starts_with("orc.") {
            return Err(format!("labels: {k:?} is reserved (orc.*)"));
        }
    }
    if let Some(m) = &spec.memory
        && !memory_ok(m)
    {
        return Err(format!("memory: {m:?} is not a size like \"512m\""));
    }
    if let Some(a) = &spec.image_archive
        && !a.is_absolute()
    {
        return Err(format!("image_archive: {a:?} is not absolute"));
    }
    if spec.depends_on.contains(&spec.name) {
        return Err("depends_on: a container cannot depend on itself".into());
    }
    Ok(())
}

/// Each spec's dependency level: 0 without dependencies, else 1 + the deepest dependency.
/// An error names the spec at fault and an unknown dependency or a cycle.
pub fn levels(specs: &[Spec]) -> std::result::Result<HashMap<String, usize>, (String, String)> {
    let by_name: HashMap<&str, &Spec> = specs.iter().map(|s| (s.name.as_str(), s)).collect();
    for s in specs {
        for d in &s.depends_on {
            if !by_name.contains_key(d.as_str()) {
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
        for d in &by_name[n].depends_on {
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

/// Whether a name in a specs dir is a spec: `*.json`, not hidden (editor files are not).
pub fn is_spec_name(name: &std::ffi::OsStr) -> bool {
    let b = std::os::unix::ffi::OsStrExt::as_bytes(name);
    b.ends_with(b".json") && b.len() > 5 && !b.starts_with(b".")
}

/// Every spec of a box, validated, with the dependency levels work follows.
#[derive(Debug, Clone)]
pub struct Specs {
    pub specs: Vec<Spec>,
    pub levels: HashMap<String, usize>,
    /// The file each spec came from (shown), by name.
    pub files: HashMap<String, PathBuf>,
}

/// Reads and validates every spec in `dir` (sorted by file name) through the root;
/// `None` when the dir does not exist or holds no spec.
pub fn load_dir(root: &Root, dir: &Path) -> Result<Option<Specs>> {
    let Some(d) = root.open_dir(dir)? else {
        return Ok(None);
    };
    let mut names: Vec<_> = d.names()?.into_iter().filter(|n| is_spec_name(n)).collect();
    names.sort();
    if names.is_empty() {
        return Ok(None);
    }
    let mut specs: Vec<Spec> = Vec::new();
    let mut files: HashMap<String, PathBuf> = HashMap::new();
    for n in names {
        let sys = dir.join(&n);
        let shown = root.shown(&sys);
        let text = root
            .read_input(&sys)?
            .ok_or_else(|| invalid(format!("{}: vanished while being read", shown.display())))?;
        let spec: Spec = crate::json::parse_object(&text, &shown)?;
        check(&spec).map_err(|m| invalid(format!("{}: {m}", shown.display())))?;
        if let Some(first) = files.get(&spec.name) {
            return Err(invalid(format!(
                "{}: name: {:?} is already used by {}",
                shown.display(),
                spec.name,
                first.display()
            )));
        }
        files.insert(spec.name.clone(), shown);
        specs.push(spec);
    }
    let levels =
        levels(&specs).map_err(|(name, m)| invalid(format!("{}: {m}", files[&name].display())))?;
    Ok(Some(Specs {
        specs,
        levels,
        files,
    }))
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
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.hash().len(), 64);
        let c: Spec =
            serde_json::from_str(r#"{"name":"w","image":"i","env":{"A":"1","B":"3"}}"#).unwrap();
        assert_ne!(a.hash(), c.hash());
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
        assert!(ok(serde_json::json!({"name":"a","image":"i","ports":["8080:80","127.0.0.1:53:53/udp","9000"],"memory":"512m"})).is_ok());
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
        ] {
            let e = ok(j.clone()).unwrap_err();
            assert!(e.starts_with(field), "{j}: {e}");
        }
        assert!(
            serde_json::from_value::<Spec>(serde_json::json!({"name":"a","image":"i","colour":1}))
                .is_err()
        );
    }
}
