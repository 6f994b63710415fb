//! The optional JSON config file (`/etc/orc/orc.json`): its format, checked in
//! full when read (unknown keys, wrong types and abnormal paths are errors
//! naming the file, line and column).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::error::{Result, invalid};
use crate::phases::PhaseOrder;
use crate::root::{Root, abnormal};

pub const DEFAULT_CONFIG: &str = "/etc/orc/orc.json";

/// Where the config holds objects (never to be read from an array, field by position).
pub const OBJECTS: &[&str] = &["state", "containers", "metrics"];

/// A system path from the config: absolute and normal (no empty, `.` or `..` parts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysPath(pub PathBuf);

/// Checks a string where it is read, so an error points at the value's line and column.
struct Checked<T>(fn(&str) -> std::result::Result<T, String>, &'static str);

impl<T> serde::de::Visitor<'_> for Checked<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.1)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for SysPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<SysPath, D::Error> {
        let check = |v: &str| {
            let p = PathBuf::from(v);
            match abnormal(&p) {
                None => Ok(SysPath(p)),
                Some(why) => Err(format!(
                    "{v:?} {why}; paths in the config must be normal absolute paths"
                )),
            }
        };
        d.deserialize_str(Checked(check, "an absolute path"))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the phase dirs live.
    pub base_dir: Option<SysPath>,
    pub lock_file: Option<SysPath>,
    /// orc's own data: reports, INFRA_VERSION, container runtime dirs.
    pub data_dir: Option<SysPath>,
    /// Unset: the design card's order for `orc run`, upstream's for `os-refresh-config`.
    pub phase_order: Option<PhaseOrder>,
    pub state: StateConfig,
    pub containers: ContainersConfig,
    pub metrics: MetricsConfig,
    /// environment.d variables whose values are masked, besides the names that say secret.
    pub redact: Vec<String>,
}

/// `metrics`: where the node-exporter textfile goes (see `crate::metrics`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// A directory under the root; `orc.prom` is written there after each run.
    pub textfile_dir: Option<SysPath>,
}

impl Config {
    /// The phase order of a run: the configured one, else the personality's default
    /// (upstream's for the `os-refresh-config` front end, the design card's for `orc run`).
    pub fn order(&self, compat: bool) -> PhaseOrder {
        self.phase_order.unwrap_or(if compat {
            PhaseOrder::Upstream
        } else {
            PhaseOrder::Design
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    pub root: Option<SysPath>,
    pub pristine_root: Option<SysPath>,
    pub registry: Option<SysPath>,
    /// Refuse to seed when the state root is on the same filesystem as `/`.
    pub require_mount: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainersConfig {
    pub engine: Option<Engine>,
    pub infra_version: Option<InfraVersion>,
    pub specs_dir: Option<SysPath>,
    pub networks_dir: Option<SysPath>,
    pub compose_dir: Option<SysPath>,
    /// Which containers and networks are this box's (default: the root's machine id).
    #[serde(deserialize_with = "scope")]
    pub scope: Option<String>,
}

/// `containers.scope`: `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 128 bytes (it is a label value
/// and part of filters).
fn scope<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c));
    if !ok {
        return Err(serde::de::Error::custom(format!(
            "containers.scope {s:?} must match [A-Za-z0-9][A-Za-z0-9_.-]* (at most 128 bytes)"
        )));
    }
    Ok(Some(s))
}

/// `containers.infra_version`: a non-empty single-line string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfraVersion(pub String);

impl<'de> Deserialize<'de> for InfraVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<InfraVersion, D::Error> {
        let check = |v: &str| {
            if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) {
                return Err(
                    "infra_version must be a non-empty single-line string of at most 128 bytes"
                        .to_string(),
                );
            }
            Ok(InfraVersion(v.to_string()))
        };
        d.deserialize_str(Checked(check, "a version string"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Docker,
    Podman,
}

/// Where the config comes from: an explicit `--config FILE` (host path, must exist)
/// or the default under the root (optional).
pub fn load(root: &Root, host: Option<&Root>, explicit: Option<&Path>) -> Result<Config> {
    let (at, file) = match (explicit, host) {
        (Some(p), Some(h)) => (
            h,
            std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()),
        ),
        _ => (root, PathBuf::from(DEFAULT_CONFIG)),
    };
    match at.read_input(&file)? {
        Some(text) => crate::json::parse_object_with(&text, &at.shown(&file), OBJECTS),
        None if explicit.is_some() => Err(invalid(format!(
            "{}: no such file",
            at.shown(&file).display()
        ))),
        None => Ok(Config::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        crate::json::parse_object_with(text.as_bytes(), Path::new("/etc/orc/orc.json"), OBJECTS)
    }

    #[test]
    fn unknown_key_names_file_line_and_column() {
        let e = parse("{\n  \"phase_order\": \"upstream\",\n  \"bogus\": 1\n}").unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("orc.json: line 3, column 9: unknown field `bogus`"),
            "{m}"
        );
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn wrong_types_bad_json_and_abnormal_paths_are_invalid() {
        for (text, want) in [
            (
                "{\"state\": {\"require_mount\": \"yes\"}}",
                "line 1, column 33: invalid type",
            ),
            ("{\"phase_order\": ", "EOF while parsing"),
            (
                "{\"phase_order\": \"sideways\"}",
                "unknown variant `sideways`",
            ),
            ("{\"data_dir\": \"var/lib\"}", "is not an absolute path"),
            (
                "{\"data_dir\": \"/../../x\"}",
                "line 1, column 23: \"/../../x\" has a '.' or '..' component",
            ),
            (
                "{\"state\": {\"root\": \"/mnt//state\"}}",
                "empty component",
            ),
            ("[\"/x\", null]", "top level must be a JSON object"),
            (
                "{\"containers\": {\"infra_version\": \"a\\nb\"}}",
                "single-line",
            ),
            (
                "{\"containers\": {\"scope\": \"a b\"}}",
                "line 1, column 31: containers.scope \"a b\" must match",
            ),
        ] {
            let m = parse(text).unwrap_err().to_string();
            assert!(m.contains(want), "{text}: {m}");
        }
    }

    #[test]
    fn valid_config() {
        let c = parse(
            r#"{"containers": {"engine": "docker", "infra_version": "7", "scope": "box-1.a"}, "data_dir": "/srv/orc"}"#,
        )
        .unwrap();
        assert_eq!(c.containers.engine, Some(Engine::Docker));
        assert_eq!(c.containers.scope.as_deref(), Some("box-1.a"));
        assert_eq!(c.data_dir, Some(SysPath("/srv/orc".into())));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn parse(bytes: &[u8]) -> Result<Config> {
        crate::json::parse_object(bytes, Path::new("/etc/orc/orc.json"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any bytes: a config or a clean invalid-input error, never a panic.
        #[test]
        fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Err(e) = parse(&bytes) {
                prop_assert_eq!(e.exit_code(), 2);
                prop_assert!(e.to_string().starts_with("/etc/orc/orc.json: "));
            }
        }

        /// Config-shaped JSON with arbitrary values in every place.
        #[test]
        fn config_shaped_json_parses_or_fails_cleanly(
            key in proptest::sample::select(vec!["base_dir", "lock_file", "data_dir", "phase_order", "state", "containers", "x"]),
            inner in proptest::sample::select(vec!["root", "pristine_root", "registry", "require_mount", "engine", "infra_version", "specs_dir", "scope"]),
            value in "\\PC{0,40}",
        ) {
            let v = serde_json::to_string(&value).unwrap();
            for text in [
                format!("{{\"{key}\": {v}}}"),
                format!("{{\"{key}\": {{\"{inner}\": {v}}}}}"),
                format!("{{\"{key}\": [{v}, {v}]}}"),
            ] {
                if let Ok(c) = parse(text.as_bytes()) {
                    for p in [&c.base_dir, &c.lock_file, &c.data_dir, &c.state.root, &c.state.pristine_root, &c.state.registry, &c.containers.specs_dir].into_iter().flatten() {
                        prop_assert_eq!(abnormal(&p.0), None);
                    }
                } else {
                    prop_assert_eq!(parse(text.as_bytes()).unwrap_err().exit_code(), 2);
                }
            }
        }
    }
}
