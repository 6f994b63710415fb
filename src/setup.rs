//! The resolved setup every command works from: the root handle, the config,
//! and every path orc uses. Paths from the config and the defaults are system
//! paths resolved beneath the root; a path given on the command line (or in
//! `OS_REFRESH_CONFIG_BASE_DIR`) is used as given, through the host's root.

use std::path::{Path, PathBuf};

use crate::config::{self, Config, SysPath};
use crate::error::Result;
use crate::phases::NameRule;
use crate::root::Root;

pub const DEFAULT_BASE_DIR: &str = "/usr/libexec/os-refresh-config";
pub const OLD_BASE_DIR: &str = "/opt/stack/os-config-refresh";
pub const DEFAULT_LOCK: &str = "/run/os-refresh-config.lock";

/// A path and what it is resolved under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    /// Given on the command line: resolved from the host's `/`, not the root.
    pub host: bool,
    pub path: PathBuf,
}

impl Loc {
    pub fn in_root(p: impl Into<PathBuf>) -> Loc {
        Loc {
            host: false,
            path: p.into(),
        }
    }

    /// A path given by the user, made absolute against the working directory.
    pub fn given(p: &Path) -> Loc {
        Loc {
            host: true,
            path: std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()),
        }
    }
}

/// Every path orc uses. All but `base_dir` and `lock_file` are always under the root.
#[derive(Debug, Clone)]
pub struct Paths {
    pub base_dir: Loc,
    pub lock_file: Loc,
    pub data_dir: PathBuf,
    pub state_root: PathBuf,
    pub pristine_root: PathBuf,
    pub registry: PathBuf,
    pub specs_dir: PathBuf,
    pub networks_dir: PathBuf,
    pub compose_dir: PathBuf,
}

/// The root handle, the config and the paths: passed down to every step as a value.
#[derive(Debug)]
pub struct Setup {
    pub root: Root,
    /// The host's own `/`, for paths given as they are.
    pub host: Root,
    pub config: Config,
    pub paths: Paths,
    pub rule: NameRule,
}

fn or(p: &Option<SysPath>, default: &str) -> PathBuf {
    p.as_ref()
        .map_or_else(|| PathBuf::from(default), |p| p.0.clone())
}

impl Setup {
    /// Opens the root, reads the config and resolves every path.
    pub fn new(
        root: &Path,
        config_file: Option<&Path>,
        env_base: Option<PathBuf>,
        run_parts_regex: Option<String>,
    ) -> Result<Setup> {
        let root = Root::open(root)?;
        let host = Root::host()?;
        let config = config::load(&root, Some(&host), config_file)?;
        let rule = NameRule::from_env(run_parts_regex)?;
        let base_dir = match (env_base, &config.base_dir) {
            (Some(b), _) => Loc::given(&b),
            (None, Some(b)) => Loc::in_root(&b.0),
            (None, None) => Loc::in_root(default_base(&root)?),
        };
        let c = &config;
        let paths = Paths {
            base_dir,
            lock_file: Loc::in_root(or(&c.lock_file, DEFAULT_LOCK)),
            data_dir: or(&c.data_dir, "/var/lib/orc"),
            state_root: or(&c.state.root, "/mnt/state"),
            pristine_root: or(&c.state.pristine_root, "/var/lib/use-ephemeral"),
            registry: or(&c.state.registry, "/var/lib/use-ephemeral/stateful-paths"),
            specs_dir: or(&c.containers.specs_dir, "/etc/orc/containers.d"),
            networks_dir: or(&c.containers.networks_dir, "/etc/orc/networks.d"),
            compose_dir: or(&c.containers.compose_dir, "/etc/orc/compose.d"),
        };
        Ok(Setup {
            root,
            host,
            config,
            paths,
            rule,
        })
    }

    /// The handle a location is resolved under.
    pub fn at(&self, loc: &Loc) -> &Root {
        if loc.host { &self.host } else { &self.root }
    }

    /// How a location is shown in messages.
    pub fn shown(&self, loc: &Loc) -> PathBuf {
        self.at(loc).shown(&loc.path)
    }
}

/// The default base dir, or the deprecated one when only it exists (with a warning).
fn default_base(root: &Root) -> Result<PathBuf> {
    let is_dir = |p: &str| {
        root.stat(Path::new(p))
            .map(|s| s.is_some_and(|s| crate::root::kind(&s) == libc::S_IFDIR))
    };
    if !is_dir(DEFAULT_BASE_DIR)? && is_dir(OLD_BASE_DIR)? {
        log::warn!(
            "base directory {} is deprecated; the recommended base directory is {}",
            root.shown(Path::new(OLD_BASE_DIR)).display(),
            root.shown(Path::new(DEFAULT_BASE_DIR)).display()
        );
        return Ok(OLD_BASE_DIR.into());
    }
    Ok(DEFAULT_BASE_DIR.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_under_root_unless_given() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc/orc")).unwrap();
        std::fs::write(
            d.path().join("etc/orc/orc.json"),
            r#"{"data_dir": "/srv/orc", "containers": {"engine": "podman"}}"#,
        )
        .unwrap();
        let s = Setup::new(d.path(), None, None, None).unwrap();
        assert_eq!(s.paths.data_dir, PathBuf::from("/srv/orc"));
        assert_eq!(s.paths.lock_file, Loc::in_root(DEFAULT_LOCK));
        assert_eq!(s.paths.base_dir, Loc::in_root(DEFAULT_BASE_DIR));
        assert_eq!(
            s.shown(&s.paths.lock_file),
            d.path().join("run/os-refresh-config.lock")
        );
        let s = Setup::new(d.path(), None, Some("/given".into()), None).unwrap();
        assert_eq!(s.paths.base_dir, Loc::given(Path::new("/given")));
        assert_eq!(s.shown(&s.paths.base_dir), PathBuf::from("/given"));
    }

    #[test]
    fn missing_default_config_is_fine_but_explicit_is_not() {
        let d = tempfile::tempdir().unwrap();
        assert!(Setup::new(d.path(), None, None, None).is_ok());
        let e = Setup::new(d.path(), Some(&d.path().join("nope.json")), None, None).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("nope.json: no such file"), "{e}");
    }
}
