//! Directories on the way to a state or pristine path: reached beneath an
//! open base without ever following a symlink, and created with their final
//! owner and mode in one rename (a crash leaves none or all of one).

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, RenameFlags, ResolveFlag, openat, openat2, renameat2};
use nix::sys::stat::{FileStat, Mode, fstatat, mkdirat};
use nix::unistd::{Gid, Uid};

use crate::error::{Context, Error, Result};
use crate::root::{DIR_FLAGS, Dir, remove_tree, tmp_name};

/// Opens a directory beneath `base` by a relative path; no component may be a symlink.
pub fn open_beneath(base: BorrowedFd, rel: &Path) -> nix::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let how = OpenHow::new()
        .flags(DIR_FLAGS | OFlag::O_NOFOLLOW)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    crate::root::retry_eagain(|| openat2(base, rel, how))
}

/// Owner and mode for a directory orc creates.
#[derive(Debug, Clone, Copy)]
pub struct DirAttrs {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl DirAttrs {
    pub const DEFAULT: DirAttrs = DirAttrs {
        uid: 0,
        gid: 0,
        mode: 0o755,
    };

    pub fn of(st: &FileStat) -> DirAttrs {
        DirAttrs {
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode & 0o7777,
        }
    }
}

/// Creates `dir/name` with its final owner and mode in one rename.
fn make_dir(dir: BorrowedFd, name: &OsStr, a: DirAttrs) -> Result<()> {
    let tmp = tmp_name();
    let shown = name.to_string_lossy();
    mkdirat(dir, tmp.as_os_str(), Mode::from_bits_truncate(0o700))
        .and_then(|()| {
            nix::unistd::fchownat(
                dir,
                tmp.as_os_str(),
                Some(Uid::from_raw(a.uid)),
                Some(Gid::from_raw(a.gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
        })
        .and_then(|()| {
            nix::sys::stat::fchmodat(
                dir,
                tmp.as_os_str(),
                Mode::from_bits_truncate(a.mode),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
        })
        .ctx(|| format!("creating {shown}"))?;
    match renameat2(
        dir,
        tmp.as_os_str(),
        dir,
        name,
        RenameFlags::RENAME_NOREPLACE,
    ) {
        Ok(()) => Ok(()),
        Err(Errno::EEXIST) => remove_tree(dir, &tmp).ctx(|| format!("creating {shown}")),
        Err(e) => Err(e).ctx(|| format!("creating {shown}")),
    }
}

/// Opens `rel` beneath `base`, creating missing components with `attrs(prefix)`; a
/// component that is a symlink or not a directory is an error. Returns the created prefixes.
pub fn ensure_dirs(
    base: &OwnedFd,
    rel: &Path,
    attrs: &dyn Fn(&Path) -> DirAttrs,
) -> Result<(OwnedFd, Vec<PathBuf>)> {
    let mut cur = Dir::from_fd(base.try_clone().ctx(|| "dup")?, PathBuf::new());
    let mut prefix = PathBuf::new();
    let mut created = Vec::new();
    for c in rel.components() {
        let name = c.as_os_str();
        prefix.push(name);
        let flags = DIR_FLAGS | OFlag::O_NOFOLLOW;
        let next = match openat(&cur, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                // A killed run's temp for it, still here: this run makes it in the same place.
                cur.sweep_tmp()?;
                make_dir(cur.as_fd(), name, attrs(&prefix))?;
                created.push(prefix.clone());
                openat(&cur, name, flags, Mode::empty())
                    .ctx(|| format!("opening {}", prefix.display()))?
            }
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                return Err(Error::Failed(format!(
                    "{} is a symlink or not a directory; refusing to follow it",
                    prefix.display()
                )));
            }
            Err(e) => return Err(e).ctx(|| format!("opening {}", prefix.display())),
        };
        cur = Dir::from_fd(next, prefix.clone());
    }
    Ok((cur.into_fd(), created))
}

pub fn lstat_at(dir: BorrowedFd, name: &OsStr) -> nix::Result<Option<FileStat>> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `/var/lib/mysql` → (`var/lib`, `mysql`).
pub fn split(path: &Path) -> (PathBuf, OsString) {
    let rel = path.strip_prefix("/").unwrap_or(path);
    (
        rel.parent().map(Path::to_path_buf).unwrap_or_default(),
        rel.file_name().unwrap_or_default().to_os_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temp_left_by_a_killed_run_goes_when_its_dir_is_made_again() {
        let t = tempfile::tempdir().unwrap();
        let left = t.path().join("var/.orc.tmp.999999.1");
        std::fs::create_dir_all(left.join("deeper")).unwrap();
        std::fs::write(left.join("deeper/f"), "x").unwrap();
        std::fs::write(t.path().join("var/keep"), "mine").unwrap();
        let base: OwnedFd = std::fs::File::open(t.path()).unwrap().into();
        let (_, made) = ensure_dirs(&base, Path::new("var/lib"), &|_| DirAttrs::DEFAULT).unwrap();
        assert_eq!(made, [PathBuf::from("var/lib")]);
        assert!(!left.exists(), "the leftover is swept");
        assert!(t.path().join("var/lib").is_dir());
        assert_eq!(std::fs::read(t.path().join("var/keep")).unwrap(), b"mine");
    }
}
