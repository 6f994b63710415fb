//! The one tree walker of orc, shared by the state copy and tree removal: depth
//! first, iterative, by directory fd. It descends by name only (`O_NOFOLLOW |
//! O_DIRECTORY`: never through a symlink) and keeps descriptors for the top
//! levels only; deeper levels are left by `..`. Every step up is checked by
//! device and inode, whether by `..` or by a kept descriptor: the directory
//! reached must be the one the walk came down from, and the directory left
//! must still be there under its name. A directory renamed out of the tree
//! mid-walk stops the walk with an error ([`Walk::Moved`]) instead of letting
//! it work in the directory it landed in.
//!
//! The walk runs over `N` trees in step (the copy walks its source and its
//! destination; removal one tree). What is done at each directory is the
//! [`Visitor`]'s.

use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, fstat, fstatat};

/// How the walk opens a directory: never through a symlink.
pub const DIR_OPEN: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Levels of the walk that keep their descriptors; deeper ones are reopened by `..`.
pub const KEEP: usize = 16;

/// Device and inode.
pub fn id(st: &FileStat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

/// Where a directory of the walk is: its name and its parent, up to the top (whose
/// name is what messages start with).
#[derive(Debug)]
pub struct DirPath {
    pub parent: Option<Arc<DirPath>>,
    pub name: OsString,
}

impl DirPath {
    pub fn top(name: impl Into<OsString>) -> Arc<DirPath> {
        Arc::new(DirPath {
            parent: None,
            name: name.into(),
        })
    }

    /// The names from below the top down to this directory.
    pub fn below_top(&self) -> Vec<&OsStr> {
        let mut v = Vec::new();
        let mut cur = self;
        while let Some(p) = &cur.parent {
            v.push(cur.name.as_os_str());
            cur = p;
        }
        v.reverse();
        v
    }

    /// `top/a/b/child`, for messages (the middle elided in very deep trees).
    pub fn show(&self, child: Option<&OsStr>) -> String {
        let mut parts: Vec<&OsStr> = child.into_iter().collect();
        let mut cur = Some(self);
        while let Some(c) = cur {
            if !c.name.is_empty() {
                parts.push(&c.name);
            }
            cur = c.parent.as_deref();
        }
        if parts.len() > 12 {
            let n = parts.len();
            parts.drain(6..n - 6);
            parts.insert(6, OsStr::new("…"));
        }
        parts.reverse();
        parts
            .iter()
            .map(|p| p.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// Why the walk itself stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Walk {
    /// Opening a directory (`opening`) or its parent (`returning from`) failed.
    Io {
        what: &'static str,
        path: String,
        errno: Errno,
    },
    /// A directory was moved (or replaced) while the walk was below it.
    Moved(String),
}

impl From<Walk> for Errno {
    fn from(w: Walk) -> Errno {
        match w {
            Walk::Io { errno, .. } => errno,
            Walk::Moved(_) => Errno::ESTALE,
        }
    }
}

impl From<Walk> for crate::error::Error {
    fn from(w: Walk) -> crate::error::Error {
        match w {
            Walk::Io { what, path, errno } => crate::error::Error::Io {
                what: format!("{what} {path}"),
                source: std::io::Error::from(errno),
            },
            Walk::Moved(path) => {
                crate::error::Error::Failed(format!("{path} moved during the walk; stopped"))
            }
        }
    }
}

/// One directory of the walk, open in each of the `N` trees.
pub type Fds<const N: usize> = [Arc<OwnedFd>; N];

/// What is done at each directory.
pub trait Visitor<const N: usize> {
    type Error: From<Walk>;

    /// A directory entered (the top one first): its subdirectories to walk, in order.
    fn enter(
        &mut self,
        fds: &Fds<N>,
        st: &[FileStat; N],
        path: &Arc<DirPath>,
    ) -> Result<Vec<OsString>, Self::Error>;

    /// Every subdirectory of `path` walked; `parent` is its parent, checked. Not called
    /// for the top.
    fn leave(&mut self, _parent: &Fds<N>, _path: &Arc<DirPath>) -> Result<(), Self::Error> {
        Ok(())
    }

    /// Before each step: a chance to stop (an abort, a worker's error) or report progress.
    fn tick(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// One level of the walk: the subdirectories still to walk.
struct Frame<const N: usize> {
    subdirs: Vec<OsString>,
    /// Descriptors, kept for the top [`KEEP`] levels.
    fds: Option<Fds<N>>,
    /// Device and inode in each tree.
    ids: [(u64, u64); N],
    path: Arc<DirPath>,
}

fn io<'a>(what: &'static str, path: &'a DirPath) -> impl FnOnce(Errno) -> Walk + 'a {
    move |errno| Walk::Io {
        what,
        path: path.show(None),
        errno,
    }
}

/// Opens `name` below each directory of `at` (never a symlink).
fn descend<const N: usize>(at: &Fds<N>, path: &DirPath) -> Result<(Fds<N>, [FileStat; N]), Walk> {
    let mut fds = Vec::with_capacity(N);
    let mut sts = Vec::with_capacity(N);
    for fd in at {
        let d = openat(&**fd, path.name.as_os_str(), DIR_OPEN, Mode::empty())
            .map_err(io("opening", path))?;
        sts.push(fstat(&d).map_err(io("opening", path))?);
        fds.push(Arc::new(d));
    }
    Ok((to_array(fds), to_array(sts)))
}

fn to_array<T, const N: usize>(v: Vec<T>) -> [T; N] {
    v.try_into().ok().expect("one per tree")
}

/// The step up from the directory `done` (open as `cur`) to its parent frame: by the
/// kept descriptors or by `..`, checked by device and inode both ways.
fn climb<const N: usize>(cur: &Fds<N>, done: &Frame<N>, parent: &Frame<N>) -> Result<Fds<N>, Walk> {
    let up = match &parent.fds {
        Some(fds) => fds.clone(),
        None => {
            let mut v = Vec::with_capacity(N);
            for (fd, want) in cur.iter().zip(parent.ids) {
                let p = openat(&**fd, "..", DIR_OPEN, Mode::empty())
                    .map_err(io("returning from", &done.path))?;
                let st = fstat(&p).map_err(io("returning from", &done.path))?;
                if id(&st) != want {
                    return Err(Walk::Moved(done.path.show(None)));
                }
                v.push(Arc::new(p));
            }
            to_array(v)
        }
    };
    for (fd, want) in up.iter().zip(done.ids) {
        let here = fstatat(
            &**fd,
            done.path.name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        );
        if here.map(|st| id(&st)) != Ok(want) {
            return Err(Walk::Moved(done.path.show(None)));
        }
    }
    Ok(up)
}

/// Walks the trees below `top` (one open directory per tree) as `v` says.
pub fn walk<const N: usize, V: Visitor<N>>(
    top: Fds<N>,
    path: Arc<DirPath>,
    v: &mut V,
) -> Result<(), V::Error> {
    let mut sts = Vec::with_capacity(N);
    for fd in &top {
        sts.push(fstat(&**fd).map_err(io("reading", &path))?);
    }
    let sts: [FileStat; N] = to_array(sts);
    let mut subdirs = v.enter(&top, &sts, &path)?;
    subdirs.reverse();
    let mut stack = vec![Frame {
        subdirs,
        fds: Some(top.clone()),
        ids: sts.map(|s| id(&s)),
        path,
    }];
    let mut cur = top;
    while let Some(frame) = stack.last_mut() {
        v.tick()?;
        if let Some(name) = frame.subdirs.pop() {
            let path = Arc::new(DirPath {
                parent: Some(Arc::clone(&frame.path)),
                name,
            });
            let (fds, sts) = descend(&cur, &path)?;
            cur = fds;
            let mut subdirs = v.enter(&cur, &sts, &path)?;
            subdirs.reverse();
            let keep = stack.len() < KEEP;
            stack.push(Frame {
                subdirs,
                fds: keep.then(|| cur.clone()),
                ids: sts.map(|s| id(&s)),
                path,
            });
        } else {
            let done = stack.pop().expect("a frame");
            let Some(parent) = stack.last() else {
                break;
            };
            cur = climb(&cur, &done, parent)?;
            v.leave(&cur, &done.path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Lists every directory it enters, and renames `move_at` out of the tree (to
    /// `land`) when it enters the directory named `trigger`.
    struct Lister {
        seen: Vec<String>,
        trigger: &'static str,
        rename: Option<(std::path::PathBuf, std::path::PathBuf)>,
    }

    impl Visitor<1> for Lister {
        type Error = Walk;
        fn enter(
            &mut self,
            fds: &Fds<1>,
            _st: &[FileStat; 1],
            path: &Arc<DirPath>,
        ) -> Result<Vec<OsString>, Walk> {
            self.seen.push(path.show(None));
            if path.name == self.trigger
                && let Some((from, to)) = self.rename.take()
            {
                fs::rename(from, to).unwrap();
            }
            let d = nix::dir::Dir::openat(&*fds[0], ".", DIR_OPEN, Mode::empty()).unwrap();
            let mut names: Vec<OsString> = d
                .into_iter()
                .filter_map(|e| {
                    let e = e.unwrap();
                    let n: &OsStr =
                        std::os::unix::ffi::OsStrExt::from_bytes(e.file_name().to_bytes());
                    (e.file_type() == Some(nix::dir::Type::Directory) && n != "." && n != "..")
                        .then(|| n.to_os_string())
                })
                .collect();
            names.sort();
            Ok(names)
        }
    }

    fn open(p: &std::path::Path) -> Fds<1> {
        [Arc::new(OwnedFd::from(fs::File::open(p).unwrap()))]
    }

    #[test]
    fn walks_deep_trees_in_order_and_never_through_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let mut p = d.path().join("t");
        for _ in 0..(KEEP + 20) {
            p = p.join("d");
        }
        fs::create_dir_all(&p).unwrap();
        fs::create_dir(d.path().join("t/e")).unwrap();
        std::os::unix::fs::symlink("/", d.path().join("t/s")).unwrap();
        let mut v = Lister {
            seen: vec![],
            trigger: "",
            rename: None,
        };
        walk(open(&d.path().join("t")), DirPath::top("t"), &mut v).unwrap();
        assert_eq!(v.seen.len(), 1 + KEEP + 20 + 1);
        assert_eq!(
            v.seen.last().unwrap(),
            "t/e",
            "back up {} levels",
            KEEP + 20
        );
    }

    /// `t/a/.../a/x/y`: when the walk enters `y` (deeper than [`KEEP`] when `deep`), `x`
    /// is renamed out of the tree to `land/x`. Climbing from `y`, the walk must stop
    /// rather than go on in `land` (whose `sib` must never be entered).
    fn moved_out(deep: bool) {
        let d = tempfile::tempdir().unwrap();
        let mut x = d.path().join("t");
        for _ in 0..if deep { KEEP + 3 } else { 2 } {
            x = x.join("a");
        }
        let x = x.join("x");
        fs::create_dir_all(x.join("y")).unwrap();
        fs::create_dir_all(d.path().join("land/sib")).unwrap();
        fs::create_dir_all(x.parent().unwrap().join("zz")).unwrap();
        let mut v = Lister {
            seen: vec![],
            trigger: "y",
            rename: Some((x.clone(), d.path().join("land/x"))),
        };
        let r = walk(open(&d.path().join("t")), DirPath::top("t"), &mut v);
        assert!(
            matches!(r, Err(Walk::Moved(ref p)) if p.ends_with("/x")),
            "{r:?}"
        );
        assert!(v.seen.last().unwrap().ends_with("/x/y"), "{:?}", v.seen);
        assert!(
            !v.seen
                .iter()
                .any(|s| s.ends_with("sib") || s.ends_with("zz"))
        );
    }

    #[test]
    fn a_dir_moved_out_below_the_kept_levels_stops_the_walk() {
        moved_out(true);
    }

    #[test]
    fn a_dir_moved_out_within_the_kept_levels_stops_the_walk() {
        moved_out(false);
    }
}
