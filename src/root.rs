//! The root directory every system path is resolved under (`--root`).

use std::path::{Component, Path, PathBuf};

/// A root directory; `/` on a real box, a temp dir in tests and image builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root(PathBuf);

impl Root {
    pub fn new(dir: impl Into<PathBuf>) -> Root {
        Root(dir.into())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Resolves an absolute system path (`/etc/orc/orc.json`) under the root.
    pub fn join(&self, system_path: impl AsRef<Path>) -> PathBuf {
        let rel: PathBuf = system_path
            .as_ref()
            .components()
            .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
            .collect();
        if rel.as_os_str().is_empty() {
            self.0.clone()
        } else {
            self.0.join(rel)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_under_root() {
        assert_eq!(Root::new("/").join("/etc/orc"), PathBuf::from("/etc/orc"));
        assert_eq!(
            Root::new("/tmp/r").join("/etc/orc"),
            PathBuf::from("/tmp/r/etc/orc")
        );
        assert_eq!(Root::new("/tmp/r").join("/"), PathBuf::from("/tmp/r"));
        assert_eq!(Root::new("/tmp/r").join("var"), PathBuf::from("/tmp/r/var"));
    }
}
