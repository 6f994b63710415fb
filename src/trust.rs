//! What may run as root. A script (or environment.d file) is resolved beneath
//! the root one component at a time; when orc runs as root, every directory
//! and symlink on the resolved path must be owned by root and not writable by
//! group or others (a sticky directory may be), and so must the file. The
//! check is made on the opened file, and that open file is what runs.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, fstat};

use crate::error::{Context, Error, Result, invalid};
use crate::root::{Dir, Root, kind, kind_name};

const MAX_LINKS: usize = 40;

/// Opens scripts to run: under `root`, checking owners and modes when `strict`.
#[derive(Debug, Clone, Copy)]
pub struct Opener<'a> {
    pub root: &'a Root,
    /// Running as root: refuse what another user could change.
    pub strict: bool,
}

/// An input file as read: where it is (shown) and its bytes.
pub type Input = (PathBuf, Vec<u8>);

/// orc runs as root: what it runs must be safe from other users.
pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

impl<'a> Opener<'a> {
    /// The opener for `root`, strict when orc runs as root.
    pub fn new(root: &'a Root) -> Opener<'a> {
        Opener {
            root,
            strict: running_as_root(),
        }
    }
}

/// An opened, checked file and where it really is.
#[derive(Debug)]
pub struct Opened {
    pub fd: OwnedFd,
    pub st: FileStat,
    pub resolved: PathBuf,
}

/// Why a node on the path must not be trusted, if it must not.
pub fn unsafe_reason(st: &FileStat) -> Option<String> {
    let mode = st.st_mode;
    let sticky_dir = mode & libc::S_IFMT == libc::S_IFDIR && mode & libc::S_ISVTX != 0;
    let link = mode & libc::S_IFMT == libc::S_IFLNK;
    if st.st_uid != 0 {
        Some(format!("owned by uid {}, not root", st.st_uid))
    } else if mode & 0o022 != 0 && !sticky_dir && !link {
        Some(format!(
            "writable by group or others (mode {:o})",
            mode & 0o7777
        ))
    } else {
        None
    }
}

/// A refusal to run something as root: exit 2, naming the path and the reason.
pub fn refusal(path: &Path, reason: &str) -> Error {
    Error::Refused {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

impl Opener<'_> {
    fn check(&self, st: &FileStat, sys: &Path) -> Result<()> {
        match unsafe_reason(st) {
            Some(why) if self.strict => Err(refusal(&self.root.shown(sys), &why)),
            _ => Ok(()),
        }
    }

    /// Opens the directory `sys`, checking it and every directory and link on the way.
    pub fn open_dir(&self, sys: &Path) -> Result<Option<(Dir, PathBuf)>> {
        match self.walk(sys, true)? {
            None => Ok(None),
            Some(o) => {
                let fd = openat(&o.fd, ".", crate::root::DIR_FLAGS, Mode::empty())
                    .ctx(|| format!("opening {}", self.root.shown(&o.resolved).display()))?;
                Ok(Some((Dir::from_fd(fd, self.root.shown(sys)), o.resolved)))
            }
        }
    }

    /// Opens the file `sys` to run or source, checking it and its whole resolved path.
    pub fn open_file(&self, sys: &Path) -> Result<Opened> {
        self.walk(sys, false)?
            .ok_or_else(|| Error::Failed(format!("{}: vanished", self.root.shown(sys).display())))
    }

    /// Opens `name` in a directory already opened by [`Opener::open_dir`] (so already
    /// checked); a symlink is resolved from the root like any path.
    pub fn open_in(&self, dir: BorrowedFd, dir_resolved: &Path, name: &OsStr) -> Result<Opened> {
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
        match openat(dir, name, flags | OFlag::O_CLOEXEC, Mode::empty()) {
            Ok(fd) => {
                let resolved = dir_resolved.join(name);
                let st = fstat(&fd).ctx(|| format!("reading {}", resolved.display()))?;
                self.final_check(&st, &resolved)?;
                Ok(Opened { fd, st, resolved })
            }
            Err(Errno::ELOOP) => self.open_file(&dir_resolved.join(name)),
            Err(Errno::ENXIO) => Err(invalid(format!(
                "{}: not a regular file (a socket)",
                self.root.shown(&dir_resolved.join(name)).display()
            ))),
            Err(e) => Err(e).ctx(|| {
                format!(
                    "opening {}",
                    self.root.shown(&dir_resolved.join(name)).display()
                )
            }),
        }
    }

    /// The input files of a conf.d-style dir (names `want` accepts, sorted), each opened
    /// and checked like a script (specs carry commands orc runs as root) and read; `None`
    /// when the dir does not exist.
    pub fn read_conf_d(
        &self,
        dir: &Path,
        want: &dyn Fn(&OsStr) -> bool,
    ) -> Result<Option<Vec<Input>>> {
        let Some((d, resolved)) = self.open_dir(dir)? else {
            return Ok(None);
        };
        let mut names: Vec<OsString> = d.names()?.into_iter().filter(|n| want(n)).collect();
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            let shown = self.root.shown(&dir.join(&n));
            let opened = self.open_in(d.as_fd(), &resolved, &n)?;
            out.push((shown.clone(), crate::root::read_regular(opened.fd, &shown)?));
        }
        Ok(Some(out))
    }

    fn final_check(&self, st: &FileStat, sys: &Path) -> Result<()> {
        if kind(st) != libc::S_IFREG {
            return Err(invalid(format!(
                "{}: not a regular file ({})",
                self.root.shown(sys).display(),
                kind_name(st)
            )));
        }
        self.check(st, sys)
    }

    /// Resolves `sys` beneath the root like `RESOLVE_IN_ROOT`, by hand, so that every
    /// directory and link passed through is opened, checked, and used by fd.
    fn walk(&self, sys: &Path, want_dir: bool) -> Result<Option<Opened>> {
        let root_fd = openat(
            self.root.fd(),
            ".",
            OFlag::O_PATH | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| "opening the root")?;
        let root_st = fstat(&root_fd).ctx(|| "reading the root")?;
        self.check(&root_st, Path::new("/"))?;
        let mut w = Walk {
            stack: vec![(root_fd, PathBuf::from("/"))],
            todo: components(sys),
            links: 0,
            last_is_link: false,
        };
        while let Some(c) = w.todo.pop_front() {
            if c == ".." {
                if w.stack.len() > 1 {
                    w.stack.pop();
                }
                continue;
            }
            let last = w.todo.is_empty();
            let here = w.here().join(&c);
            let Some(fd) = self.open_component(&w, &c, &here, last && !want_dir, sys)? else {
                return Ok(None);
            };
            let st = fstat(&fd).ctx(|| format!("reading {}", self.root.shown(&here).display()))?;
            match kind(&st) {
                libc::S_IFLNK => {
                    self.check(&st, &here)?;
                    w.last_is_link |= last;
                    self.follow_link(&mut w, &fd, &here, sys)?;
                    if w.todo.is_empty() {
                        // A link to `/` or `.`: the directory we are in is the target.
                        let (cur, p) = w.stack.last().expect("the root stays");
                        let fd = cur.try_clone().ctx(|| "dup")?;
                        let st = fstat(&fd).ctx(|| "reading")?;
                        return self.finish(fd, st, p.clone(), want_dir, sys).map(Some);
                    }
                }
                libc::S_IFDIR if !last => {
                    self.check(&st, &here)?;
                    w.stack.push((fd, here));
                }
                _ if last => return self.finish(fd, st, here, want_dir, sys).map(Some),
                _ => {
                    return Err(invalid(format!(
                        "{}: not a directory",
                        self.root.shown(&here).display()
                    )));
                }
            }
        }
        // `sys` was the root itself.
        let (fd, p) = w.stack.swap_remove(0);
        let st = fstat(&fd).ctx(|| "reading the root")?;
        self.finish(fd, st, p, want_dir, sys).map(Some)
    }

    /// Opens the next component without following it (a file to run: for reading). `None`
    /// when it does not exist and no link led here.
    fn open_component(
        &self,
        w: &Walk,
        c: &OsStr,
        here: &Path,
        file: bool,
        sys: &Path,
    ) -> Result<Option<OwnedFd>> {
        let shown = |p: &Path| self.root.shown(p);
        let cur = &w.stack.last().expect("the root stays").0;
        let path_only = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let flags = if file {
            OFlag::O_RDONLY
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC
        } else {
            path_only
        };
        match openat(cur, c, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::ELOOP) => openat(cur, c, path_only, Mode::empty())
                .map(Some)
                .ctx(|| format!("opening {}", shown(here).display())),
            Err(Errno::ENOENT) if !w.last_is_link => Ok(None),
            // Missing after following a link: the path is a dangling symlink.
            Err(Errno::ENOENT) => Err(invalid(format!(
                "{}: a dangling symlink (to {})",
                shown(sys).display(),
                shown(here).display()
            ))),
            Err(Errno::ENXIO) => Err(invalid(format!(
                "{}: not a regular file (a socket)",
                shown(here).display()
            ))),
            Err(e) => Err(e).ctx(|| format!("opening {}", shown(here).display())),
        }
    }

    /// Puts a symlink's target in front of what is left to walk (from the root when
    /// absolute), counting links.
    fn follow_link(&self, w: &mut Walk, link: &OwnedFd, here: &Path, sys: &Path) -> Result<()> {
        w.links += 1;
        if w.links > MAX_LINKS {
            return Err(invalid(format!(
                "{}: too many levels of symbolic links (a loop of symlinks?)",
                self.root.shown(sys).display()
            )));
        }
        let target = nix::fcntl::readlinkat(link, "")
            .ctx(|| format!("reading link {}", self.root.shown(here).display()))?;
        if target.as_bytes().first() == Some(&b'/') {
            w.stack.truncate(1);
        }
        for t in components(Path::new(&target)).into_iter().rev() {
            w.todo.push_front(t);
        }
        Ok(())
    }

    fn finish(
        &self,
        fd: OwnedFd,
        st: FileStat,
        resolved: PathBuf,
        want_dir: bool,
        sys: &Path,
    ) -> Result<Opened> {
        if want_dir {
            if kind(&st) != libc::S_IFDIR {
                return Err(invalid(format!(
                    "{}: not a directory",
                    self.root.shown(sys).display()
                )));
            }
            self.check(&st, &resolved)?;
            return Ok(Opened { fd, st, resolved });
        }
        self.final_check(&st, &resolved)?;
        Ok(Opened { fd, st, resolved })
    }
}

/// Where a walk is: the directories passed through (the root first), what is left to
/// walk, and how many links were followed.
struct Walk {
    stack: Vec<(OwnedFd, PathBuf)>,
    todo: VecDeque<OsString>,
    links: usize,
    /// The path's own last component was a symlink (being followed now): only then is a
    /// missing target "a dangling symlink"; a missing name below a symlinked parent is
    /// just missing.
    last_is_link: bool,
}

impl Walk {
    fn here(&self) -> &Path {
        &self.stack.last().expect("the root stays").1
    }
}

fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::fd::AsFd;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn setup() -> (tempfile::TempDir, Root) {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("base/configure.d")).unwrap();
        fs::write(d.path().join("base/configure.d/10-a"), "#!/bin/sh\n").unwrap();
        let root = Root::open(d.path()).unwrap();
        (d, root)
    }

    #[test]
    fn resolves_in_root_and_checks_the_chain() {
        let (d, root) = setup();
        let o = Opener {
            root: &root,
            strict: true,
        };
        let f = o.open_file(Path::new("/base/configure.d/10-a")).unwrap();
        assert_eq!(f.resolved, Path::new("/base/configure.d/10-a"));
        symlink("/base/configure.d/10-a", d.path().join("base/abs")).unwrap();
        symlink(
            "../../../../base/configure.d/10-a",
            d.path().join("base/rel"),
        )
        .unwrap();
        for l in ["/base/abs", "/base/rel"] {
            let f = o.open_file(Path::new(l)).unwrap();
            assert_eq!(f.resolved, Path::new("/base/configure.d/10-a"), "{l}");
        }
        fs::create_dir(d.path().join("open")).unwrap();
        fs::set_permissions(d.path().join("open"), fs::Permissions::from_mode(0o777)).unwrap();
        fs::write(d.path().join("open/x"), "#!/bin/sh\n").unwrap();
        symlink("/open/x", d.path().join("base/via-open")).unwrap();
        let e = o.open_file(Path::new("/base/via-open")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.to_string()
                .contains("open: writable by group or others (mode 777)"),
            "{e}"
        );
        let lax = Opener {
            root: &root,
            strict: false,
        };
        assert!(lax.open_file(Path::new("/base/via-open")).is_ok());
        fs::set_permissions(d.path().join("open"), fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(
            o.open_file(Path::new("/base/via-open")).is_ok(),
            "sticky dir, root-owned entry"
        );
        std::os::unix::fs::lchown(d.path().join("base/via-open"), Some(1000), None).unwrap();
        let e = o.open_file(Path::new("/base/via-open")).unwrap_err();
        assert!(e.to_string().contains("via-open: owned by uid 1000"), "{e}");
    }

    #[test]
    fn opens_in_a_checked_dir_and_refuses_non_regular_files() {
        let (d, root) = setup();
        let o = Opener {
            root: &root,
            strict: true,
        };
        let (dir, resolved) = o.open_dir(Path::new("/base/configure.d")).unwrap().unwrap();
        assert!(
            o.open_in(dir.as_fd(), &resolved, OsStr::new("10-a"))
                .is_ok()
        );
        nix::unistd::mkfifo(
            &d.path().join("base/configure.d/fifo"),
            Mode::from_bits_truncate(0o755),
        )
        .unwrap();
        let e = o
            .open_in(dir.as_fd(), &resolved, OsStr::new("fifo"))
            .unwrap_err();
        assert!(e.to_string().contains("not a regular file (a FIFO)"), "{e}");
        assert!(o.open_dir(Path::new("/nope")).unwrap().is_none());
        fs::write(d.path().join("base/file.d"), "").unwrap();
        let e = o.open_dir(Path::new("/base/file.d")).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
    }
}
