//! The root as a handle. orc opens the root directory once; every path it
//! reads or writes is resolved beneath that handle with `openat2`
//! (`RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`), so a symlink inside the root
//! (absolute or relative) resolves inside it and never leads out. Below a
//! resolved directory, work continues by file descriptor ([`Dir`]), one entry
//! name at a time, never following a symlink.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{FileStat, Mode, fstat, fstatat, mkdirat};
use nix::unistd::UnlinkatFlags;

use crate::error::{Context, Error, Result, bad_input, invalid};
use crate::walk;

/// Flags for opening a directory to work in.
pub const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC);

/// The largest file orc reads as input (config, spec, registry).
pub const MAX_INPUT: u64 = 16 << 20;

/// The prefix of every temporary name orc makes; leftovers are swept under the lock.
pub const TMP_PREFIX: &str = ".orc.tmp.";

fn in_root(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// Why a system path is not a normal absolute path (no empty, `.` or `..` parts), if it is not.
pub fn abnormal(p: &Path) -> Option<&'static str> {
    let b = p.as_os_str().as_bytes();
    if b.first() != Some(&b'/') {
        return Some("is not an absolute path");
    }
    if b.contains(&0) {
        return Some("contains a NUL byte");
    }
    if b.len() > 1 && b.ends_with(b"/") {
        return Some("ends with '/'");
    }
    if b.len() > 1 {
        for part in b[1..].split(|c| *c == b'/') {
            match part {
                b"" => return Some("has an empty component ('//')"),
                b"." | b".." => return Some("has a '.' or '..' component"),
                _ => {}
            }
        }
    }
    None
}

/// How often an `openat2` that met a concurrent rename or mount is retried.
const EAGAIN_TRIES: u32 = 1000;

/// Runs an `openat2` again while the kernel says `EAGAIN`: a path that crosses `..`
/// while a rename or mount happens anywhere on the system cannot be checked, and is
/// retried (a bounded number of times, yielding, then with short sleeps).
pub fn retry_eagain<T>(mut f: impl FnMut() -> nix::Result<T>) -> nix::Result<T> {
    let mut n = 0;
    loop {
        match f() {
            Err(Errno::EAGAIN) if n < EAGAIN_TRIES => {
                n += 1;
                if n < 100 {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            r => return r,
        }
    }
}

/// `/var/lib/orc` → `var/lib/orc`; `/` → `.`.
fn rel(sys: &Path) -> &Path {
    match sys.strip_prefix("/") {
        Ok(r) if !r.as_os_str().is_empty() => r,
        Ok(_) => Path::new("."),
        Err(_) => sys,
    }
}

/// A unique, short temporary entry name: `.orc.tmp.<pid>.<n>`.
pub fn tmp_name() -> OsString {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{TMP_PREFIX}{}.{n}", crate::procs::me().0).into()
}

/// The file type bits of a stat (`S_IFREG`, `S_IFDIR`, ...).
pub fn kind(st: &FileStat) -> u32 {
    st.st_mode & libc::S_IFMT
}

/// What a node is, in words, for messages.
pub fn kind_name(st: &FileStat) -> &'static str {
    match kind(st) {
        libc::S_IFREG => "a regular file",
        libc::S_IFDIR => "a directory",
        libc::S_IFLNK => "a symlink",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        _ => "an unknown kind of file",
    }
}

/// An open root directory: `/` on a real box, a temp dir in tests and image builds.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// Opens `path` (made absolute) as a root.
    pub fn open(path: &Path) -> Result<Root> {
        Root::open_as(path, "--root")
    }

    /// Opens `path` as a root, named as `what` in errors. A root that cannot be opened
    /// is bad input (exit 2), unless what is missing is orc's own resources (no fd or
    /// memory left: exit 1).
    fn open_as(path: &Path, what: &str) -> Result<Root> {
        let shown = || format!("{what} {}", path.display());
        let abs = std::path::absolute(path).map_err(|e| bad_input(shown(), e))?;
        let fd = nix::fcntl::open(&abs, DIR_FLAGS, Mode::empty()).map_err(|e| match e {
            Errno::EMFILE | Errno::ENFILE | Errno::ENOMEM => Error::Io {
                what: format!("opening {}", shown()),
                source: e.into(),
            },
            e => bad_input(shown(), e),
        })?;
        Ok(Root { fd, path: abs })
    }

    /// The host's own root, for paths given on the command line (used as given).
    pub fn host() -> Result<Root> {
        Root::open_as(Path::new("/"), "the host's root")
    }

    /// The root's path on the host (for `ORC_ROOT`, messages and engine arguments).
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// How a system path under this root is shown in messages.
    pub fn shown(&self, sys: &Path) -> PathBuf {
        if self.path == Path::new("/") {
            sys.to_path_buf()
        } else {
            self.path.join(rel(sys))
        }
    }

    /// Opens `sys` (resolved in the root) with `flags`.
    pub fn open_raw(&self, sys: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
        retry_eagain(|| openat2(&self.fd, rel(sys), in_root(flags)))
    }

    /// The node at `sys` (symlinks followed inside the root), or `None` when nothing is there.
    pub fn stat(&self, sys: &Path) -> Result<Option<FileStat>> {
        match self.open_raw(sys, OFlag::O_PATH) {
            Ok(fd) => fstat(&fd)
                .map(Some)
                .ctx(|| format!("reading {}", self.shown(sys).display())),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(e).ctx(|| format!("reading {}", self.shown(sys).display())),
        }
    }

    /// The directory at `sys`, or `None` when nothing is there.
    pub fn open_dir(&self, sys: &Path) -> Result<Option<Dir>> {
        match self.open_raw(sys, DIR_FLAGS) {
            Ok(fd) => Ok(Some(Dir {
                fd,
                shown: self.shown(sys),
            })),
            Err(Errno::ENOENT) if !self.is_dangling(sys) => Ok(None),
            Err(Errno::ENOENT) => Err(invalid(format!(
                "{}: a dangling symlink",
                self.shown(sys).display()
            ))),
            Err(Errno::ENOTDIR) => Err(invalid(format!(
                "{}: not a directory",
                self.shown(sys).display()
            ))),
            Err(e) => Err(e).ctx(|| format!("opening {}", self.shown(sys).display())),
        }
    }

    /// True when `sys` is a symlink whose target does not exist.
    fn is_dangling(&self, sys: &Path) -> bool {
        let (Some(parent), Some(name)) = (sys.parent(), sys.file_name()) else {
            return false;
        };
        self.open_raw(parent, OFlag::O_PATH | OFlag::O_DIRECTORY)
            .and_then(|d| fstatat(&d, name, AtFlags::AT_SYMLINK_NOFOLLOW))
            .is_ok_and(|st| kind(&st) == libc::S_IFLNK)
    }

    /// Opens the directory `sys`, creating missing components (mode `mode`, owned by orc).
    /// A symlink on the way is followed inside the root, its missing target created too.
    pub fn create_dir_all(&self, sys: &Path, mode: u32) -> Result<Dir> {
        self.create_dir_all_at(sys, mode, 0).map(|fd| Dir {
            fd,
            shown: self.shown(sys),
        })
    }

    fn create_dir_all_at(&self, sys: &Path, mode: u32, links: usize) -> Result<OwnedFd> {
        let shown = |p: &Path| self.shown(p).display().to_string();
        match self.open_raw(sys, DIR_FLAGS) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(Errno::ENOTDIR) => {
                return Err(Error::Failed(format!("{}: not a directory", shown(sys))));
            }
            Err(e) => return Err(e).ctx(|| format!("opening {}", shown(sys))),
        }
        let mut cur = self.fd.try_clone().ctx(|| "dup")?;
        let mut prefix = PathBuf::from("/");
        let parts: Vec<&OsStr> = rel(sys).iter().collect();
        for (i, name) in parts.iter().enumerate() {
            prefix.push(name);
            cur = match self.open_raw(&prefix, DIR_FLAGS) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => match mkdirat(&cur, *name, Mode::from_bits_truncate(mode)) {
                    Ok(()) => openat(&cur, *name, DIR_FLAGS | OFlag::O_NOFOLLOW, Mode::empty())
                        .ctx(|| format!("opening {}", shown(&prefix)))?,
                    // Made by someone else meanwhile (another thread): use it.
                    Err(Errno::EEXIST) if self.open_raw(&prefix, DIR_FLAGS).is_ok() => self
                        .open_raw(&prefix, DIR_FLAGS)
                        .ctx(|| format!("opening {}", shown(&prefix)))?,
                    Err(Errno::EEXIST) if links < 40 => {
                        // A symlink whose target is missing: create the target, in the root.
                        let target = nix::fcntl::readlinkat(&cur, *name)
                            .ctx(|| format!("creating {}", shown(&prefix)))?;
                        let mut next = match prefix.parent() {
                            Some(p) if !target.as_bytes().starts_with(b"/") => p.join(&target),
                            _ => PathBuf::from(&target),
                        };
                        next.extend(&parts[i + 1..]);
                        return self.create_dir_all_at(&next, mode, links + 1);
                    }
                    Err(e) => return Err(e).ctx(|| format!("creating {}", shown(&prefix))),
                },
                Err(e) => return Err(e).ctx(|| format!("opening {}", shown(&prefix))),
            };
        }
        Ok(cur)
    }

    /// Reads an input file: `None` when absent; a dangling symlink, a FIFO, a device or a
    /// directory is invalid input naming it. Never blocks on open.
    pub fn read_input(&self, sys: &Path) -> Result<Option<Vec<u8>>> {
        let shown = self.shown(sys);
        let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
        let fd = match self.open_raw(sys, flags) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if self.is_dangling(sys) => {
                return Err(invalid(format!("{}: a dangling symlink", shown.display())));
            }
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(bad_input(shown.display(), e)),
        };
        read_regular(fd, &shown).map(Some)
    }

    /// Replaces the file `sys` atomically (parents created); see [`Dir::write_atomic`].
    pub fn write_file(&self, sys: &Path, data: &[u8], mode: u32, sync: Durable) -> Result<()> {
        let (parent, name) = split(sys)?;
        self.create_dir_all(parent, 0o755)?
            .write_atomic(name, data, mode, sync)
    }
}

/// Reads an opened input that must be a regular file of at most [`MAX_INPUT`] bytes.
pub fn read_regular(fd: OwnedFd, shown: &Path) -> Result<Vec<u8>> {
    let st = fstat(&fd).ctx(|| format!("reading {}", shown.display()))?;
    if kind(&st) != libc::S_IFREG {
        return Err(invalid(format!(
            "{}: not a regular file ({})",
            shown.display(),
            kind_name(&st)
        )));
    }
    if st.st_size as u64 > MAX_INPUT {
        return Err(invalid(format!(
            "{}: too large ({} bytes; the limit is {MAX_INPUT})",
            shown.display(),
            st.st_size
        )));
    }
    let mut data = Vec::with_capacity(st.st_size as usize);
    std::fs::File::from(fd)
        .take(MAX_INPUT + 1)
        .read_to_end(&mut data)
        .map_err(|e| bad_input(shown.display(), e))?;
    Ok(data)
}

/// `/a/b/c` → (`/a/b`, `c`); the root itself has no name.
pub fn split(sys: &Path) -> Result<(&Path, &OsStr)> {
    match (sys.parent(), sys.file_name()) {
        (Some(p), Some(n)) => Ok((p, n)),
        _ => Err(invalid(format!("{}: not a file path", sys.display()))),
    }
}

/// How durable a write must be before it counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durable {
    /// Survives a crash of orc (page cache), not a power cut.
    Process,
    /// `fdatasync` of the file before the rename.
    Data,
    /// Also `fsync` of the directory after the rename.
    Full,
}

/// An open directory; everything below it goes by fd, one entry name at a time.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    shown: PathBuf,
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Dir {
    pub fn from_fd(fd: OwnedFd, shown: PathBuf) -> Dir {
        Dir { fd, shown }
    }

    /// Where this directory is, for messages.
    pub fn shown(&self) -> &Path {
        &self.shown
    }

    pub fn child_shown(&self, name: &OsStr) -> PathBuf {
        self.shown.join(name)
    }

    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    pub fn stat(&self) -> Result<FileStat> {
        fstat(&self.fd).ctx(|| format!("reading {}", self.shown.display()))
    }

    /// `lstat` of an entry; `None` when absent.
    pub fn lstat(&self, name: &OsStr) -> Result<Option<FileStat>> {
        match fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(e).ctx(|| format!("reading {}", self.child_shown(name).display())),
        }
    }

    /// A child directory (never through a symlink); `None` when absent.
    pub fn open_dir(&self, name: &OsStr) -> Result<Option<Dir>> {
        match openat(&self.fd, name, DIR_FLAGS | OFlag::O_NOFOLLOW, Mode::empty()) {
            Ok(fd) => Ok(Some(Dir {
                fd,
                shown: self.child_shown(name),
            })),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(e).ctx(|| format!("opening {}", self.child_shown(name).display())),
        }
    }

    /// A child directory, created (mode `mode`) when missing.
    pub fn create_dir(&self, name: &OsStr, mode: u32) -> Result<Dir> {
        match mkdirat(&self.fd, name, Mode::from_bits_truncate(mode)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                return Err(e).ctx(|| format!("creating {}", self.child_shown(name).display()));
            }
        }
        self.open_dir(name)?.ok_or_else(|| {
            Error::Failed(format!(
                "{}: vanished while being created",
                self.child_shown(name).display()
            ))
        })
    }

    /// The names in this directory (not `.` and `..`), unsorted.
    pub fn names(&self) -> Result<Vec<OsString>> {
        Ok(self.entries()?.into_iter().map(|(n, _)| n).collect())
    }

    /// The entries of this directory with the type readdir reports (when the
    /// filesystem reports one), unsorted.
    pub fn entries(&self) -> Result<Vec<(OsString, Option<nix::dir::Type>)>> {
        let dup = self.fd.try_clone().ctx(|| "dup")?;
        let mut d =
            nix::dir::Dir::from_fd(dup).ctx(|| format!("reading {}", self.shown.display()))?;
        let mut out = Vec::new();
        for e in d.iter() {
            let e = e.ctx(|| format!("reading {}", self.shown.display()))?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                out.push((OsStr::from_bytes(n).to_os_string(), e.file_type()));
            }
        }
        Ok(out)
    }

    /// Replaces `name` with `data` atomically: a unique temporary name, `sync`, rename.
    pub fn write_atomic(&self, name: &OsStr, data: &[u8], mode: u32, sync: Durable) -> Result<()> {
        let tmp = tmp_name();
        let done = (|| -> nix::Result<()> {
            let fd = openat(
                &self.fd,
                tmp.as_os_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(mode),
            )?;
            nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode))?;
            write_all(&fd, data)?;
            if sync != Durable::Process {
                nix::unistd::fdatasync(&fd)?;
            }
            nix::fcntl::renameat(&self.fd, tmp.as_os_str(), &self.fd, name)
        })();
        if done.is_err() {
            let _ = nix::unistd::unlinkat(&self.fd, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
        done.ctx(|| format!("writing {}", self.child_shown(name).display()))?;
        if sync == Durable::Full {
            self.sync()?;
        }
        Ok(())
    }

    /// Points the symlink `name` at `target` atomically.
    pub fn symlink_atomic(&self, name: &OsStr, target: &Path, sync: Durable) -> Result<()> {
        let tmp = tmp_name();
        let done = nix::unistd::symlinkat(target, &self.fd, tmp.as_os_str())
            .and_then(|()| nix::fcntl::renameat(&self.fd, tmp.as_os_str(), &self.fd, name));
        if done.is_err() {
            let _ = nix::unistd::unlinkat(&self.fd, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
        done.ctx(|| {
            format!(
                "pointing {} at {}",
                self.child_shown(name).display(),
                target.display()
            )
        })?;
        if sync == Durable::Full {
            self.sync()?;
        }
        Ok(())
    }

    /// `fsync` of the directory, so renames inside it are durable.
    pub fn sync(&self) -> Result<()> {
        nix::unistd::fsync(&self.fd).ctx(|| format!("syncing {}", self.shown.display()))
    }

    /// Removes the entry `name` (a whole tree for a directory); absent is fine.
    pub fn remove(&self, name: &OsStr) -> Result<()> {
        remove_tree(self.fd.as_fd(), name)
            .ctx(|| format!("removing {}", self.child_shown(name).display()))
    }

    /// Removes leftovers of interrupted writes (temporary names). Call only under the lock.
    pub fn sweep_tmp(&self) -> Result<()> {
        for n in self.names()? {
            if n.as_bytes().starts_with(TMP_PREFIX.as_bytes()) {
                log::debug!("removing the leftover {}", self.child_shown(&n).display());
                self.remove(&n)?;
            }
        }
        Ok(())
    }

    /// The directory's real path on the host (for arguments handed to other programs).
    pub fn real_path(&self) -> Result<PathBuf> {
        let link = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        std::fs::read_link(&link).ctx(|| format!("resolving {}", self.shown.display()))
    }
}

fn write_all(fd: &OwnedFd, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Device and inode of an open directory.
fn id_of(fd: BorrowedFd) -> nix::Result<(u64, u64)> {
    fstat(fd).map(|st| (st.st_dev, st.st_ino))
}

/// Removes `dir/name` and everything under it by fd, never following a symlink, with
/// the shared [`crate::walk`]er (trees of any depth): each step back up is checked by
/// device and inode, so a directory renamed out of the tree meanwhile stops the removal
/// (`ESTALE`) rather than making it empty whatever directory it landed in. An empty
/// directory goes without opening it (a copy that failed for want of descriptors
/// leaves one, and its removal must not need any).
pub fn remove_tree(dir: BorrowedFd, name: &OsStr) -> nix::Result<()> {
    match nix::unistd::unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::EISDIR) => {}
        Err(e) => return Err(e),
    }
    match nix::unistd::unlinkat(dir, name, UnlinkatFlags::RemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::ENOTEMPTY | Errno::EEXIST) => {}
        Err(e) => return Err(e),
    }
    let top = openat(dir, name, walk::DIR_OPEN, Mode::empty())?;
    let id = id_of(top.as_fd())?;
    walk::walk([Arc::new(top)], walk::DirPath::top(name), &mut Remover)?;
    let now = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).map(|st| (st.st_dev, st.st_ino));
    if now != Ok(id) {
        return Err(Errno::ESTALE);
    }
    nix::unistd::unlinkat(dir, name, UnlinkatFlags::RemoveDir)
}

/// Tree removal as a walk: each directory's other entries unlinked as it is entered,
/// the directory itself removed once left.
struct Remover;

impl walk::Visitor<1> for Remover {
    type Error = Errno;

    fn enter(
        &mut self,
        fds: &walk::Fds<1>,
        _st: &[FileStat; 1],
        _path: &Arc<walk::DirPath>,
    ) -> nix::Result<Vec<OsString>> {
        let cur = &*fds[0];
        let mut d = nix::dir::Dir::openat(cur, ".", walk::DIR_OPEN, Mode::empty())?;
        let mut subdirs = Vec::new();
        for e in d.iter() {
            let e = e?;
            let n = e.file_name();
            if n.to_bytes() == b"." || n.to_bytes() == b".." {
                continue;
            }
            match nix::unistd::unlinkat(cur, n, UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(Errno::EISDIR) => subdirs.push(OsStr::from_bytes(n.to_bytes()).to_os_string()),
                Err(e) => return Err(e),
            }
        }
        Ok(subdirs)
    }

    fn leave(&mut self, parent: &walk::Fds<1>, path: &Arc<walk::DirPath>) -> nix::Result<()> {
        nix::unistd::unlinkat(&*parent[0], path.name.as_os_str(), UnlinkatFlags::RemoveDir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn normal_paths() {
        assert_eq!(abnormal(Path::new("/var/lib/orc")), None);
        assert_eq!(abnormal(Path::new("/")), None);
        for (p, why) in [
            ("var/lib", "absolute"),
            ("/../../x", "'..'"),
            ("/a/./b", "'.'"),
            ("/a//b", "empty"),
            ("/a/", "ends with"),
            ("", "absolute"),
        ] {
            assert!(abnormal(Path::new(p)).unwrap().contains(why), "{p}");
        }
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../..", d.path().join("up")).unwrap();
        let root = Root::open(d.path()).unwrap();
        root.write_file(Path::new("/abs/x/f"), b"1", 0o600, Durable::Process)
            .unwrap();
        root.write_file(Path::new("/up/g"), b"2", 0o600, Durable::Process)
            .unwrap();
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        let inner = d.path().join(outside.path().strip_prefix("/").unwrap());
        assert_eq!(fs::read(inner.join("x/f")).unwrap(), b"1");
        assert_eq!(fs::read(d.path().join("g")).unwrap(), b"2");
    }

    #[test]
    fn inputs_must_be_regular_files() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::open(d.path()).unwrap();
        nix::unistd::mkfifo(&d.path().join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        std::os::unix::fs::symlink("/nowhere", d.path().join("dangling")).unwrap();
        fs::create_dir(d.path().join("dir")).unwrap();
        assert!(root.read_input(Path::new("/absent")).unwrap().is_none());
        for (p, why) in [
            ("/fifo", "a FIFO"),
            ("/dangling", "dangling symlink"),
            ("/dir", "a directory"),
        ] {
            let e = root.read_input(Path::new(p)).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(why), "{p}: {e}");
        }
    }

    #[test]
    fn remove_tree_handles_depth_and_never_follows_links() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("keep"), "x").unwrap();
        let d = tempfile::tempdir().unwrap();
        let dir = Root::open(d.path()).unwrap();
        let mut cur = dir.create_dir_all(Path::new("/t"), 0o755).unwrap();
        for _ in 0..300 {
            cur = cur
                .create_dir(OsStr::new("dddddddddddddddddddd"), 0o755)
                .unwrap();
        }
        nix::unistd::symlinkat(outside.path(), &cur, "link").unwrap();
        cur.write_atomic(OsStr::new("f"), b"x", 0o600, Durable::Process)
            .unwrap();
        remove_tree(dir.fd(), OsStr::new("t")).unwrap();
        assert!(!d.path().join("t").exists());
        assert!(outside.path().join("keep").exists());
    }

    #[test]
    fn a_dir_renamed_out_during_removal_never_empties_where_it_lands() {
        let mut raced = 0;
        for _ in 0..10 {
            let d = tempfile::tempdir().unwrap();
            let y = d.path().join("t/x/y");
            fs::create_dir_all(&y).unwrap();
            for i in 0..3000 {
                fs::write(y.join(format!("f{i}")), "").unwrap();
            }
            let land = d.path().join("land");
            fs::create_dir(&land).unwrap();
            for i in 0..5 {
                fs::write(land.join(format!("sentinel{i}")), "keep").unwrap();
            }
            let top = fs::File::open(d.path()).unwrap();
            let mover = {
                let (y, land) = (y.clone(), land.clone());
                std::thread::spawn(move || {
                    let t = std::time::Instant::now();
                    while t.elapsed() < std::time::Duration::from_secs(5) {
                        if (0..3000)
                            .step_by(100)
                            .any(|i| !y.join(format!("f{i}")).exists())
                        {
                            return fs::rename(&y, land.join("y")).is_ok();
                        }
                    }
                    false
                })
            };
            let removed = remove_tree(top.as_fd(), OsStr::new("t"));
            let moved = mover.join().unwrap();
            if moved {
                raced += 1;
            }
            for i in 0..5 {
                assert!(
                    land.join(format!("sentinel{i}")).exists(),
                    "removal left its tree and emptied where the dir landed ({removed:?})"
                );
            }
        }
        assert!(raced > 0, "the rename never happened during a removal");
    }

    /// Removal as a walk whose first entry into `x1` or `x2` renames that dir out of the
    /// tree into a landing dir holding a decoy of the other one.
    struct MovingRemover {
        deep: PathBuf,
        land: PathBuf,
        moved: bool,
    }

    impl walk::Visitor<1> for MovingRemover {
        type Error = Errno;
        fn enter(
            &mut self,
            fds: &walk::Fds<1>,
            st: &[FileStat; 1],
            path: &Arc<walk::DirPath>,
        ) -> nix::Result<Vec<OsString>> {
            let name = path.name.to_string_lossy().into_owned();
            if !self.moved && (name == "x1" || name == "x2") {
                let land = self.land.join(format!("land-{name}/{name}"));
                fs::rename(self.deep.join(&name), land).unwrap();
                self.moved = true;
            }
            Remover.enter(fds, st, path)
        }
        fn leave(&mut self, parent: &walk::Fds<1>, path: &Arc<walk::DirPath>) -> nix::Result<()> {
            Remover.leave(parent, path)
        }
    }

    fn removal_moved_out(depth: usize) {
        let d = tempfile::tempdir().unwrap();
        let mut deep = d.path().join("t");
        for _ in 0..depth {
            deep = deep.join("a");
        }
        for (x, other) in [("x1", "x2"), ("x2", "x1")] {
            fs::create_dir_all(deep.join(x).join("y")).unwrap();
            let decoy = d.path().join(format!("land-{x}/{other}"));
            fs::create_dir_all(&decoy).unwrap();
            fs::write(decoy.join("secret"), "keep").unwrap();
        }
        let top = fs::File::open(d.path().join("t")).unwrap();
        let mut v = MovingRemover {
            deep,
            land: d.path().to_path_buf(),
            moved: false,
        };
        let r = walk::walk([Arc::new(top.into())], walk::DirPath::top("t"), &mut v);
        assert!(v.moved);
        assert_eq!(r, Err(Errno::ESTALE));
        for x in ["x1", "x2"] {
            let other = if x == "x1" { "x2" } else { "x1" };
            let secret = d.path().join(format!("land-{x}/{other}/secret"));
            assert!(secret.exists(), "removal emptied where the dir landed");
        }
    }

    #[test]
    fn a_dir_moved_out_below_the_kept_levels_stops_the_removal() {
        removal_moved_out(walk::KEEP + 2);
    }

    #[test]
    fn a_dir_moved_out_within_the_kept_levels_stops_the_removal() {
        removal_moved_out(1);
    }

    #[test]
    fn atomic_writes_leave_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::open(d.path()).unwrap();
        let dir = root.create_dir_all(Path::new("/a/b"), 0o755).unwrap();
        dir.write_atomic(OsStr::new("f"), b"one", 0o600, Durable::Full)
            .unwrap();
        dir.write_atomic(OsStr::new("f"), b"two", 0o600, Durable::Data)
            .unwrap();
        dir.symlink_atomic(OsStr::new("l"), Path::new("f"), Durable::Process)
            .unwrap();
        assert_eq!(fs::read(d.path().join("a/b/f")).unwrap(), b"two");
        assert_eq!(fs::read_dir(d.path().join("a/b")).unwrap().count(), 2);
        fs::write(d.path().join("a/b/.orc.tmp.1.2"), "left").unwrap();
        dir.sweep_tmp().unwrap();
        assert_eq!(fs::read_dir(d.path().join("a/b")).unwrap().count(), 2);
    }
}
