//! The optional JSON config file (`/etc/orc/orc.json`): its format, checked in
//! full when read (unknown keys, wrong types and abnormal paths are errors
//! naming the file, line and column).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::error::{Result, invalid};
use crate::phases::PhaseOrder;
use crate::root::{Root, abnormal};

pub const DEFAULT_CONFIG: &str = "/etc/orc/orc.json";

/// A system path from the config: absolute and normal (no empty, `.` or `..` parts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysPath(pub PathBuf);

impl<'de> Deserialize<'de> for SysPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<SysPath, D::Error> {
        let p = PathBuf::deserialize(d)?;
        match abnormal(&p) {
            None => Ok(SysPath(p)),
            Some(why) => Err(serde::de::Error::custom(format!(
                "{:?} {why}; paths in the config must be normal absolute paths",
                p.as_os_str()
            ))),
        }
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
    pub phase_order: PhaseOrder,
    pub state: StateConfig,
    pub containers: ContainersConfig,
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
        let v = String::deserialize(d)?;
        if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) {
            return Err(serde::de::Error::custom(
                "infra_version must be a non-empty single-line string of at most 128 bytes",
            ));
        }
        Ok(InfraVersion(v))
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
        Some(text) => crate::json::parse_object(&text, &at.shown(&file)),
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
        crate::json::parse_object(text.as_bytes(), Path::new("/etc/orc/orc.json"))
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
                "line 1, column 24: \"/../../x\" has a '.' or '..' component",
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
