//! `orc state finalise`, the last step of an image build: each registered
//! path present in the image moves to the pristine root (parents mirrored
//! with their owner, mode and times) and, when flagged, becomes a symlink to
//! its state copy. Every path is reached through the root handle.
//!
//! Idempotent after a crash at any point. On one filesystem the move is one
//! rename. Across filesystems the original is first renamed aside in its own
//! directory to `.orc.move.<id>` (the name says which path it is), copied to a
//! temporary name in the pristine parent, synced, renamed into place, and only
//! then removed; the next finalise finds `.orc.move.<id>` and finishes the job
//! (copy again if no pristine copy is in place, else just remove the original).
//! A failure before the copy is in place renames the original back.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, RenameFlags, renameat2};
use nix::sys::stat::{FileStat, fstat};
use sha2::{Digest, Sha256};

use super::copy;
use super::dirs::{DirAttrs, ensure_dirs, lstat_at, open_beneath, split};
use super::registry::Entry;
use crate::error::{Context, Error, Result};
use crate::root::{DIR_FLAGS, Dir, remove_tree, tmp_name};
use crate::setup::Setup;

/// The image's parent directories as they were before anything moved, by path under `/`.
type Originals = HashMap<PathBuf, FileStat>;

/// Replaces (or creates) `dir/name` with a symlink to `target`, atomically and durably.
fn link_atomic(dir: BorrowedFd, name: &OsStr, target: &Path) -> Result<()> {
    let fd = dir.try_clone_to_owned().ctx(|| "dup")?;
    Dir::from_fd(fd, PathBuf::new()).symlink_atomic(name, target, crate::root::Durable::Full)
}

/// Where the original of an interrupted move across filesystems waits: a short name
/// that tells which entry it is (names may be 255 bytes long).
pub fn aside_name(name: &OsStr) -> OsString {
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!(".orc.move.{hex}").into()
}

/// Finalises every registered path; a failure on one does not stop the others.
pub fn finalise(setup: &Setup, entries: &[Entry]) -> Result<i32> {
    let originals = originals(setup, entries);
    let mut failed = 0;
    for e in entries {
        match finalise_one(setup, e, &originals) {
            Ok(what) => log::info!("{}: {what}", e.path.display()),
            Err(err) => {
                log::error!("finalising {}: {err}", e.path.display());
                failed += 1;
            }
        }
    }
    Ok(i32::from(failed > 0))
}

/// Owner, mode and times of every image directory above a registered path, read before
/// any move changes their times.
fn originals(setup: &Setup, entries: &[Entry]) -> Originals {
    let mut out = Originals::new();
    for e in entries {
        let (parent_rel, _) = split(&e.path);
        let mut prefix = PathBuf::new();
        for c in parent_rel.components() {
            prefix.push(c);
            if out.contains_key(&prefix) {
                continue;
            }
            if let Ok(st) = setup
                .root
                .open_raw(&Path::new("/").join(&prefix), OFlag::O_PATH)
                .and_then(|d| fstat(&d))
            {
                out.insert(prefix.clone(), st);
            }
        }
    }
    out
}

/// Where the path's symlink points, for a flagged path.
pub(super) fn state_target(setup: &Setup, e: &Entry) -> PathBuf {
    setup
        .paths
        .state_root
        .join(e.path.strip_prefix("/").unwrap_or(&e.path))
}

pub(super) fn is_link_to(dir: BorrowedFd, name: &OsStr, want: &Path) -> bool {
    nix::fcntl::readlinkat(dir, name).is_ok_and(|t| Path::new(&t) == want)
}

fn finalise_one(setup: &Setup, e: &Entry, originals: &Originals) -> Result<String> {
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
    // Leftovers of an interrupted symlink update (temporary names), under the lock.
    let parent_shown = root.shown(&Path::new("/").join(&parent_rel));
    Dir::from_fd(parent.try_clone().ctx(|| "dup")?, parent_shown).sweep_tmp()?;
    let st = lstat_at(parent.as_fd(), &name).ctx(|| "reading it")?;
    let aside = aside_name(&name);
    if lstat_at(parent.as_fd(), &aside)
        .ctx(|| "reading it")?
        .is_some()
    {
        if st.is_some() && !is_link_to(parent.as_fd(), &name, &want) {
            return Err(Error::Failed(format!(
                "both it and {} (its original, set aside by an interrupted finalise) exist; \
                 move one of them away and finalise again",
                aside.to_string_lossy()
            )));
        }
        let what = to_pristine(setup, &parent, &parent_rel, &name, originals, true)?;
        return link_if_flagged(e, &parent, &name, &want, what);
    }
    if st.is_some_and(|s| crate::root::kind(&s) == libc::S_IFLNK) {
        if is_link_to(parent.as_fd(), &name, &want) {
            return Ok("already finalised".into());
        }
        // Resolved from the image's root, as the box will see it.
        if matches!(root.open_raw(&e.path, OFlag::O_PATH), Err(Errno::ENOENT)) {
            let target =
                nix::fcntl::readlinkat(&parent, name.as_os_str()).ctx(|| "reading the link")?;
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
    let what = to_pristine(setup, &parent, &parent_rel, &name, originals, false)?;
    link_if_flagged(e, &parent, &name, &want, what)
}

fn link_if_flagged(
    e: &Entry,
    parent: &OwnedFd,
    name: &OsStr,
    want: &Path,
    what: String,
) -> Result<String> {
    if e.leave_symlink {
        link_atomic(parent.as_fd(), name, want)?;
        return Ok(format!("{what}; linked to {}", want.display()));
    }
    Ok(what)
}

/// Moves `parent/name` to the same place under the pristine root, or with `resume`
/// finishes the interrupted move of its original set aside.
fn to_pristine(
    setup: &Setup,
    parent: &OwnedFd,
    parent_rel: &Path,
    name: &OsStr,
    originals: &Originals,
    resume: bool,
) -> Result<String> {
    let root = &setup.root;
    let pristine_sys = &setup.paths.pristine_root;
    let shown = pristine_sys.join(parent_rel).join(name);
    let pristine = root.create_dir_all(pristine_sys, 0o755)?.into_fd();
    let mirror = |prefix: &Path| {
        originals
            .get(prefix)
            .map_or(DirAttrs::DEFAULT, DirAttrs::of)
    };
    let (dest_parent, _) = ensure_dirs(&pristine, parent_rel, &mirror)?;
    let dest = Dir::from_fd(dest_parent, pristine_sys.join(parent_rel));
    // Leftovers of an interrupted copy, under the lock.
    dest.sweep_tmp()?;
    let in_place = lstat_at(dest.as_fd(), name)
        .ctx(|| "reading the pristine copy")?
        .is_some();
    let aside = aside_name(name);
    let what = if resume {
        if in_place {
            // The copy was complete and in place: only the original is left to remove.
            remove_tree(parent.as_fd(), &aside)
                .and_then(|()| nix::unistd::fsync(parent))
                .ctx(|| "removing the original after the copy")?;
        } else {
            finish_across(parent, name, &aside, &dest)?;
        }
        format!("finished an interrupted move to {}", shown.display())
    } else {
        if in_place {
            return Err(Error::Failed(format!(
                "a pristine copy already exists at {}; refusing to overwrite it",
                shown.display()
            )));
        }
        match renameat2(parent, name, &dest, name, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => nix::unistd::fsync(&dest)
                .and_then(|()| nix::unistd::fsync(parent))
                .ctx(|| "syncing")?,
            Err(Errno::EXDEV) => {
                renameat2(
                    parent,
                    name,
                    parent,
                    aside.as_os_str(),
                    RenameFlags::RENAME_NOREPLACE,
                )
                .and_then(|()| nix::unistd::fsync(parent))
                .ctx(|| "setting the original aside for the copy")?;
                finish_across(parent, name, &aside, &dest)?;
            }
            Err(err) => return Err(err).ctx(|| "moving it to the pristine root"),
        }
        format!("moved to {}", shown.display())
    };
    mirror_times(&pristine, parent_rel, originals)?;
    Ok(what)
}

/// Copies the original at `parent/aside` to `dest/name` (temporary name, sync, rename),
/// then removes it. A failure before the copy is in place puts the original back.
fn finish_across(parent: &OwnedFd, name: &OsStr, aside: &OsStr, dest: &Dir) -> Result<()> {
    let tmp = tmp_name();
    let counters = copy::Counters::default();
    let copied = copy::copy_tree(
        parent.as_fd(),
        aside,
        dest.as_fd(),
        &tmp,
        &counters,
        &|| false,
        &mut || {},
    )
    .and_then(|()| {
        nix::unistd::syncfs(dest)
            .and_then(|()| {
                renameat2(
                    dest,
                    tmp.as_os_str(),
                    dest,
                    name,
                    RenameFlags::RENAME_NOREPLACE,
                )
            })
            .and_then(|()| nix::unistd::fsync(dest))
            .ctx(|| "moving across filesystems")
    });
    if let Err(e) = copied {
        let _ = remove_tree(dest.as_fd(), &tmp);
        let back = renameat2(parent, aside, parent, name, RenameFlags::RENAME_NOREPLACE)
            .and_then(|()| nix::unistd::fsync(parent));
        return Err(match back {
            Ok(()) => e,
            Err(b) => Error::Failed(format!(
                "{e}; putting the original back failed ({}): it is at {}",
                std::io::Error::from(b),
                aside.to_string_lossy()
            )),
        });
    }
    remove_tree(parent.as_fd(), aside)
        .and_then(|()| nix::unistd::fsync(parent))
        .ctx(|| "removing the original after the copy")
}

/// Gives every pristine parent of a moved path the times of its image original.
fn mirror_times(pristine: &OwnedFd, parent_rel: &Path, originals: &Originals) -> Result<()> {
    let mut prefix = PathBuf::new();
    for c in parent_rel.components() {
        prefix.push(c);
        let Some(src) = originals.get(&prefix) else {
            continue;
        };
        let a = nix::sys::time::TimeSpec::new(src.st_atime, src.st_atime_nsec);
        let m = nix::sys::time::TimeSpec::new(src.st_mtime, src.st_mtime_nsec);
        open_beneath(pristine.as_fd(), &prefix)
            .and_then(|d| nix::sys::stat::futimens(&d, &a, &m))
            .ctx(|| format!("setting times of {}", prefix.display()))?;
    }
    Ok(())
}
