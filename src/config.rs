//! The optional JSON config file (`/etc/orc/orc.json`) and the paths it resolves.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Result, invalid};
use crate::phases::PhaseOrder;
use crate::root::Root;

pub const DEFAULT_CONFIG: &str = "/etc/orc/orc.json";
pub const DEFAULT_BASE_DIR: &str = "/usr/libexec/os-refresh-config";
pub const OLD_BASE_DIR: &str = "/opt/stack/os-config-refresh";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the phase dirs live.
    pub base_dir: Option<PathBuf>,
    pub lock_file: Option<PathBuf>,
    /// orc's own data: reports, INFRA_VERSION, container runtime dirs.
    pub data_dir: Option<PathBuf>,
    pub phase_order: PhaseOrder,
    pub state: StateConfig,
    pub containers: ContainersConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    pub root: Option<PathBuf>,
    pub pristine_root: Option<PathBuf>,
    pub registry: Option<PathBuf>,
    /// Refuse to seed when the state root is on the same filesystem as `/`.
    pub require_mount: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainersConfig {
    pub engine: Option<Engine>,
    pub infra_version: Option<String>,
    pub specs_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    Docker,
    Podman,
}

/// Every path orc uses, resolved under the root.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: Root,
    pub base_dir: PathBuf,
    pub lock_file: PathBuf,
    pub data_dir: PathBuf,
    pub state_root: PathBuf,
    pub pristine_root: PathBuf,
    pub registry: PathBuf,
    pub specs_dir: PathBuf,
}

/// Turns a serde_json error into `file: line L, column C: message`.
pub fn json_error(file: &Path, e: &serde_json::Error) -> crate::error::Error {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = full.strip_suffix(&suffix).unwrap_or(&full);
    invalid(format!(
        "{}: line {}, column {}: {msg}",
        file.display(),
        e.line(),
        e.column()
    ))
}

impl Config {
    /// Reads the config: `explicit` (as given, must exist) or the default under the root (optional).
    pub fn load(root: &Root, explicit: Option<&Path>) -> Result<Config> {
        let file = match explicit {
            Some(p) => p.to_path_buf(),
            None => root.join(DEFAULT_CONFIG),
        };
        let text = match std::fs::read(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
                return Ok(Config::default());
            }
            Err(e) => return Err(invalid(format!("{}: {e}", file.display()))),
        };
        let cfg: Config = serde_json::from_slice(&text).map_err(|e| json_error(&file, &e))?;
        cfg.check(&file)?;
        Ok(cfg)
    }

    fn check(&self, file: &Path) -> Result<()> {
        let paths = [
            ("base_dir", &self.base_dir),
            ("lock_file", &self.lock_file),
            ("data_dir", &self.data_dir),
            ("state.root", &self.state.root),
            ("state.pristine_root", &self.state.pristine_root),
            ("state.registry", &self.state.registry),
            ("containers.specs_dir", &self.containers.specs_dir),
        ];
        for (key, p) in paths {
            if let Some(p) = p
                && !p.is_absolute()
            {
                return Err(invalid(format!(
                    "{}: {key}: {:?} is not an absolute path",
                    file.display(),
                    p
                )));
            }
        }
        if let Some(v) = &self.containers.infra_version
            && (v.is_empty() || v.contains(['\n', '\0']))
        {
            return Err(invalid(format!(
                "{}: containers.infra_version: must be a non-empty single-line string",
                file.display()
            )));
        }
        Ok(())
    }

    /// Resolves every path. `env_base` is `$OS_REFRESH_CONFIG_BASE_DIR`, used as given.
    pub fn paths(&self, root: &Root, env_base: Option<PathBuf>) -> Paths {
        let under = |p: &Option<PathBuf>, default: &str| {
            root.join(p.as_deref().unwrap_or(Path::new(default)))
        };
        let base_dir = match (env_base, &self.base_dir) {
            (Some(b), _) => b,
            (None, Some(b)) => root.join(b),
            (None, None) => {
                let new = root.join(DEFAULT_BASE_DIR);
                let old = root.join(OLD_BASE_DIR);
                if !new.is_dir() && old.is_dir() {
                    log::warn!(
                        "base directory {} is deprecated; the recommended base directory is {}",
                        old.display(),
                        new.display()
                    );
                    old
                } else {
                    new
                }
            }
        };
        Paths {
            root: root.clone(),
            base_dir,
            lock_file: under(&self.lock_file, "/run/os-refresh-config.lock"),
            data_dir: under(&self.data_dir, "/var/lib/orc"),
            state_root: under(&self.state.root, "/mnt/state"),
            pristine_root: under(&self.state.pristine_root, "/var/lib/use-ephemeral"),
            registry: under(
                &self.state.registry,
                "/var/lib/use-ephemeral/stateful-paths",
            ),
            specs_dir: under(&self.containers.specs_dir, "/etc/orc/containers.d"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("orc.json");
        std::fs::write(&f, text).unwrap();
        Config::load(&Root::new(dir.path()), Some(&f))
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
    fn wrong_type_and_bad_json_are_invalid() {
        let m = parse("{\"state\": {\"require_mount\": \"yes\"}}")
            .unwrap_err()
            .to_string();
        assert!(m.contains("line 1, column 33: invalid type"), "{m}");
        let m = parse("{\"phase_order\": ").unwrap_err().to_string();
        assert!(m.contains("EOF while parsing"), "{m}");
        let m = parse("{\"phase_order\": \"sideways\"}")
            .unwrap_err()
            .to_string();
        assert!(m.contains("unknown variant `sideways`"), "{m}");
        let m = parse("{\"data_dir\": \"var/lib\"}")
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("data_dir: \"var/lib\" is not an absolute path"),
            "{m}"
        );
    }

    #[test]
    fn paths_resolve_under_root() {
        let cfg = parse("{\"containers\": {\"engine\": \"docker\", \"infra_version\": \"7\"}, \"data_dir\": \"/srv/orc\"}").unwrap();
        let root = Root::new("/r");
        let p = cfg.paths(&root, None);
        assert_eq!(p.data_dir, PathBuf::from("/r/srv/orc"));
        assert_eq!(p.lock_file, PathBuf::from("/r/run/os-refresh-config.lock"));
        assert_eq!(
            p.base_dir,
            PathBuf::from("/r/usr/libexec/os-refresh-config")
        );
        let p = cfg.paths(&root, Some("/given".into()));
        assert_eq!(p.base_dir, PathBuf::from("/given"));
        assert_eq!(cfg.containers.engine, Some(Engine::Docker));
    }

    #[test]
    fn missing_default_config_is_fine_but_explicit_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        assert!(Config::load(&root, None).is_ok());
        let e = Config::load(&root, Some(&dir.path().join("nope.json"))).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }
}
