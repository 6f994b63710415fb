//! `orc state finalise`, the last step of an image build: each registered
//! path present in the image moves to the pristine root (parents mirrored
//! with their owner, mode and times) and, when flagged, becomes a symlink to
//! its state copy. Every path is reached through the root handle.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, RenameFlags, renameat2};
use nix::sys::stat::fstat;

use super::copy;
use super::dirs::{DirAttrs, ensure_dirs, lstat_at, split};
use super::registry::Entry;
use crate::error::{Context, Error, Result};
use crate::root::{DIR_FLAGS, Dir, remove_tree, tmp_name};
use crate::setup::Setup;

/// Replaces (or creates) `dir/name` with a symlink to `target`, atomically and durably.
fn link_atomic(dir: BorrowedFd, name: &OsStr, target: &Path) -> Result<()> {
    let fd = dir.try_clone_to_owned().ctx(|| "dup")?;
    Dir::from_fd(fd, PathBuf::new()).symlink_atomic(name, target, crate::root::Durable::Full)
}

/// Finalises every registered path; a failure on one does not stop the others.
pub fn finalise(setup: &Setup, entries: &[Entry]) -> Result<i32> {
    let mut failed = 0;
    for e in entries {
        match finalise_one(setup, e) {
            Ok(what) => log::info!("{}: {what}", e.path.display()),
            Err(err) => {
                log::error!("finalising {}: {err}", e.path.display());
                failed += 1;
            }
        }
    }
    Ok(i32::from(failed > 0))
}

/// Where the path's symlink points, for a flagged path.
fn state_target(setup: &Setup, e: &Entry) -> PathBuf {
    setup
        .paths
        .state_root
        .join(e.path.strip_prefix("/").unwrap_or(&e.path))
}

fn finalise_one(setup: &Setup, e: &Entry) -> Result<String> {
    let root = &setup.root;
    let (parent_rel, name) = split(&e.path);
    let want = state_target(setup, e);
    let parent = match root.open_raw(&Path::new("/").join(&parent_rel), DIR_FLAGS) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => {
            return Ok("absent (its parent does not exist); nothing to do".into());
        }
        Err(err) => return Err(err).ctx(|| format!("opening {}", parent_rel.display())),
    };
    let st = lstat_at(parent.as_fd(), &name).ctx(|| "reading it")?;
    if st.is_some_and(|s| s.st_mode & libc::S_IFMT == libc::S_IFLNK) {
        let target =
            nix::fcntl::readlinkat(&parent, name.as_os_str()).ctx(|| "reading the link")?;
        if Path::new(&target) == want {
            return Ok("already finalised".into());
        }
        // Resolved from the image's root, as the box will see it.
        if matches!(root.open_raw(&e.path, OFlag::O_PATH), Err(Errno::ENOENT)) {
            if e.leave_symlink {
                link_atomic(parent.as_fd(), &name, &want)?;
                return Ok(format!(
                    "replaced a dangling symlink with a link to {}",
                    want.display()
                ));
            }
            log::warn!(
                "{} is a dangling symlink to {}; left alone",
                e.path.display(),
                Path::new(&target).display()
            );
            return Ok("dangling symlink left alone".into());
        }
    }
    if st.is_none() {
        if e.leave_symlink {
            link_atomic(parent.as_fd(), &name, &want)?;
            return Ok(format!("absent; linked to {}", want.display()));
        }
        return Ok("absent; nothing to move".into());
    }
    let what = move_to_pristine(setup, &parent, &parent_rel, &name)?;
    if e.leave_symlink {
        link_atomic(parent.as_fd(), &name, &want)?;
        return Ok(format!("{what}; linked to {}", want.display()));
    }
    Ok(what)
}

/// Moves `parent/name` to the same place under the pristine root.
fn move_to_pristine(
    setup: &Setup,
    parent: &OwnedFd,
    parent_rel: &Path,
    name: &OsStr,
) -> Result<String> {
    let root = &setup.root;
    let pristine_sys = &setup.paths.pristine_root;
    let pristine = root.create_dir_all(pristine_sys, 0o755)?.into_fd();
    // The original parents as they are now: the move below changes their times.
    let mut originals = HashMap::new();
    let mut prefix = PathBuf::new();
    for c in parent_rel.components() {
        prefix.push(c);
        if let Ok(st) = root
            .open_raw(&Path::new("/").join(&prefix), OFlag::O_PATH)
            .and_then(|d| fstat(&d))
        {
            originals.insert(prefix.clone(), st);
        }
    }
    let mirror = |prefix: &Path| {
        originals
            .get(prefix)
            .map_or(DirAttrs::DEFAULT, DirAttrs::of)
    };
    let (dest_parent, created) = ensure_dirs(&pristine, parent_rel, &mirror)?;
    if lstat_at(dest_parent.as_fd(), name)
        .ctx(|| "reading the pristine copy")?
        .is_some()
    {
        return Err(Error::Failed(format!(
            "a pristine copy already exists at {}; refusing to overwrite it",
            pristine_sys.join(parent_rel).join(name).display()
        )));
    }
    match nix::fcntl::renameat(parent, name, &dest_parent, name) {
        Ok(()) => {}
        Err(Errno::EXDEV) => move_across(parent, name, &dest_parent)?,
        Err(err) => return Err(err).ctx(|| "moving it to the pristine root"),
    }
    nix::unistd::fsync(&dest_parent)
        .and_then(|()| nix::unistd::fsync(parent))
        .ctx(|| "syncing")?;
    for prefix in created.iter().rev() {
        if let Some(src) = originals.get(prefix) {
            let a = nix::sys::time::TimeSpec::new(src.st_atime, src.st_atime_nsec);
            let m = nix::sys::time::TimeSpec::new(src.st_mtime, src.st_mtime_nsec);
            nix::sys::stat::utimensat(
                &pristine,
                prefix.as_path(),
                &a,
                &m,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .ctx(|| format!("setting times of {}", prefix.display()))?;
        }
    }
    Ok(format!(
        "moved to {}",
        pristine_sys.join(parent_rel).join(name).display()
    ))
}

/// A move across filesystems: copy into a temporary sibling, sync, rename, remove.
fn move_across(parent: &OwnedFd, name: &OsStr, dest_parent: &OwnedFd) -> Result<()> {
    let tmp = tmp_name();
    let counters = copy::Counters::default();
    let copied = copy::copy_tree(
        parent.as_fd(),
        name,
        dest_parent.as_fd(),
        &tmp,
        &counters,
        &|| false,
        &mut || {},
    );
    if let Err(e) = copied {
        let _ = remove_tree(dest_parent.as_fd(), &tmp);
        return Err(e);
    }
    nix::unistd::syncfs(dest_parent)
        .and_then(|()| {
            renameat2(
                dest_parent,
                tmp.as_os_str(),
                dest_parent,
                name,
                RenameFlags::RENAME_NOREPLACE,
            )
        })
        .ctx(|| "moving across filesystems")?;
    remove_tree(parent.as_fd(), name).ctx(|| "removing the original after the copy")
}
