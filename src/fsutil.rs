//! Crash-safe file writes: temp file in the same dir, fsync, rename, fsync the dir.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Context, Result};

/// fsyncs a directory so a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(|| format!("syncing {}", dir.display()))
}

fn tmp_sibling(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.orc-tmp"))
}

/// Replaces `path` with `data` atomically (mode `mode`); a crash leaves the old or the new content.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    let tmp = tmp_sibling(path);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.ctx(|| format!("writing {}", path.display()))?;
    sync_dir(dir)
}

/// Points the symlink `link` at `target` atomically.
pub fn symlink_atomic(target: &Path, link: &Path) -> Result<()> {
    let tmp = tmp_sibling(link);
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .and_then(|()| fs::rename(&tmp, link))
        .ctx(|| format!("pointing {} at {}", link.display(), target.display()))?;
    sync_dir(link.parent().unwrap_or(Path::new("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/f");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(d.path().join("sub")).unwrap().count(), 1);
        symlink_atomic(Path::new("f"), &d.path().join("sub/l")).unwrap();
        symlink_atomic(Path::new("g"), &d.path().join("sub/l")).unwrap();
        assert_eq!(
            fs::read_link(d.path().join("sub/l")).unwrap(),
            Path::new("g")
        );
    }
}
