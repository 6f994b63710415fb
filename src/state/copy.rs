//! A full-fidelity tree copy: content with sparse holes, mode (setuid too),
//! numeric owner, nanosecond times on every node, symlinks as links,
//! hardlinks as hardlinks, FIFOs, sockets and device nodes, and every xattr
//! (ACLs, SELinux labels). Every step is relative to an open directory and
//! never follows a symlink. Regular files are copied by a pool of workers so
//! that cold reads overlap; directories get their attributes last, deepest
//! first, so creating children does not disturb them.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, UtimensatFlags, fstatat, mkdirat, mknodat, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, Whence, fchownat, linkat, lseek, symlinkat};

use crate::error::{Context, Error, Result};

/// Bytes and regular files copied so far.
#[derive(Debug, Default)]
pub struct Counters {
    pub bytes: AtomicU64,
    pub files: AtomicU64,
}

type Xattrs = Vec<(OsString, Vec<u8>)>;

fn cstr(name: &OsStr) -> CString {
    CString::new(name.as_bytes()).expect("directory entries have no NUL")
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

fn times(st: &FileStat) -> (TimeSpec, TimeSpec) {
    (
        TimeSpec::new(st.st_atime, st.st_atime_nsec),
        TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
    )
}

/// `/proc/self/fd/N/name`: a path that reaches `name` through an open dir, for the
/// path-only xattr calls (lgetxattr and friends never follow the last component,
/// so `name` must not be empty: that would name the magic link itself).
fn via_fd(dir: BorrowedFd, name: &OsStr) -> PathBuf {
    debug_assert!(!name.is_empty());
    PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name)
}

fn read_xattrs_path(p: &Path) -> std::io::Result<Xattrs> {
    let mut out = Vec::new();
    for name in xattr::list(p)? {
        if let Some(v) = xattr::get(p, &name)? {
            out.push((name, v));
        }
    }
    Ok(out)
}

fn read_xattrs_file(f: &File) -> std::io::Result<Xattrs> {
    use xattr::FileExt;
    let mut out = Vec::new();
    for name in f.list_xattr()? {
        if let Some(v) = f.get_xattr(&name)? {
            out.push((name, v));
        }
    }
    Ok(out)
}

/// Makes the xattrs of a node exactly `want`: sets them, then drops inherited extras
/// (a default ACL's copy, a policy label) that the source does not have.
fn apply_xattrs_path(p: &Path, want: &Xattrs) -> std::io::Result<()> {
    for (n, v) in want {
        xattr::set(p, n, v)?;
    }
    for n in xattr::list(p)? {
        if !want.iter().any(|(w, _)| *w == n) {
            let _ = xattr::remove(p, &n);
        }
    }
    Ok(())
}

fn apply_xattrs_file(f: &File, want: &Xattrs) -> std::io::Result<()> {
    use xattr::FileExt;
    for (n, v) in want {
        f.set_xattr(n, v)?;
    }
    for n in f.list_xattr()? {
        if !want.iter().any(|(w, _)| *w == n) {
            let _ = f.remove_xattr(&n);
        }
    }
    Ok(())
}

/// Owner, mode and times of a node reached by `dir` + `name`, after its xattrs.
fn set_meta_at(dir: BorrowedFd, name: &CStr, st: &FileStat, chmod: bool) -> nix::Result<()> {
    fchownat(
        dir,
        name,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    if chmod {
        nix::sys::stat::fchmodat(
            dir,
            name,
            Mode::from_bits_truncate(st.st_mode & 0o7777),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )?;
    }
    let (a, m) = times(st);
    utimensat(dir, name, &a, &m, UtimensatFlags::NoFollowSymlink)
}

/// Copies the data of `src` into `dst`, keeping holes.
fn copy_data(src: &File, dst: &File, st: &FileStat) -> std::io::Result<u64> {
    let size = st.st_size;
    if size == 0 {
        return Ok(0);
    }
    let maybe_sparse = st.st_blocks * 512 < size;
    let mut copied = 0u64;
    let mut off: i64 = 0;
    while off < size {
        let (start, end) = if maybe_sparse {
            let start = match lseek(src, off, Whence::SeekData) {
                Ok(s) => s,
                Err(Errno::ENXIO) => break,
                Err(e) => return Err(e.into()),
            };
            (start, lseek(src, start, Whence::SeekHole)?.min(size))
        } else {
            (off, size)
        };
        copy_range(src, dst, start, end)?;
        copied += (end - start) as u64;
        off = end;
    }
    dst.set_len(size as u64)?;
    Ok(copied)
}

fn copy_range(src: &File, dst: &File, mut start: i64, end: i64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut out_off = start;
    while start < end {
        let len = (end - start) as usize;
        match nix::fcntl::copy_file_range(src, Some(&mut start), dst, Some(&mut out_off), len) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(Errno::EXDEV | Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
                let mut buf = vec![0u8; 256 * 1024];
                while start < end {
                    let want = buf.len().min((end - start) as usize);
                    let n = src.read_at(&mut buf[..want], start as u64)?;
                    if n == 0 {
                        return Ok(());
                    }
                    dst.write_all_at(&buf[..n], start as u64)?;
                    start += n as i64;
                }
                return Ok(());
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

struct Job {
    src_dir: Arc<OwnedFd>,
    dst_dir: Arc<OwnedFd>,
    name: OsString,
    dst_name: OsString,
    st: FileStat,
    rel: PathBuf,
}

struct Shared<'a> {
    counters: &'a Counters,
    error: Mutex<Option<Error>>,
    stop: AtomicBool,
    active: AtomicUsize,
}

impl Shared<'_> {
    fn record(&self, e: Error) {
        let mut slot = self.error.lock().expect("no poisoning");
        slot.get_or_insert(e);
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn copy_file(job: &Job) -> Result<u64> {
    let name = cstr(&job.name);
    let dst_name = cstr(&job.dst_name);
    let what = || job.rel.display().to_string();
    let src = match openat(
        &*job.src_dir,
        name.as_c_str(),
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOATIME,
        Mode::empty(),
    ) {
        Err(Errno::EPERM) => openat(
            &*job.src_dir,
            name.as_c_str(),
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ),
        r => r,
    }
    .ctx(|| format!("opening {}", what()))?;
    let src = File::from(src);
    let dst = File::from(
        openat(
            &*job.dst_dir,
            dst_name.as_c_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .ctx(|| format!("creating {}", what()))?,
    );
    let n = copy_data(&src, &dst, &job.st).ctx(|| format!("copying {}", what()))?;
    let x = read_xattrs_file(&src).ctx(|| format!("reading xattrs of {}", what()))?;
    apply_xattrs_file(&dst, &x).ctx(|| format!("setting xattrs of {}", what()))?;
    let st = &job.st;
    nix::unistd::fchown(
        &dst,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    )
    .and_then(|()| nix::sys::stat::fchmod(&dst, Mode::from_bits_truncate(st.st_mode & 0o7777)))
    .and_then(|()| {
        let (a, m) = times(st);
        nix::sys::stat::futimens(&dst, &a, &m)
    })
    .ctx(|| format!("setting owner, mode and times of {}", what()))?;
    Ok(n)
}

fn worker(rx: &Mutex<Receiver<Job>>, shared: &Shared) {
    loop {
        let job = match rx.lock().expect("no poisoning").recv() {
            Ok(j) => j,
            Err(_) => break,
        };
        if shared.stop.load(Ordering::SeqCst) {
            continue;
        }
        match copy_file(&job) {
            Ok(n) => {
                shared.counters.bytes.fetch_add(n, Ordering::Relaxed);
                shared.counters.files.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => shared.record(e),
        }
    }
    shared.active.fetch_sub(1, Ordering::SeqCst);
}

struct DirMeta {
    rel: PathBuf,
    st: FileStat,
    xattrs: Xattrs,
}

struct Walker<'a, 'b> {
    tx: SyncSender<Job>,
    shared: &'a Shared<'b>,
    /// The first copy of each multiply-linked inode, relative to `top`.
    links: HashMap<(u64, u64), PathBuf>,
    /// (first copy, new name), linked once every file exists.
    deferred: Vec<(PathBuf, PathBuf)>,
    dirs: Vec<DirMeta>,
    abort: &'a dyn Fn() -> bool,
    progress: &'a mut dyn FnMut(),
    last_progress: Instant,
}

impl Walker<'_, '_> {
    fn tick(&mut self) -> Result<()> {
        if self.shared.stop.load(Ordering::SeqCst) {
            return Err(Error::Failed("copy stopped".into()));
        }
        if (self.abort)() {
            self.shared.stop.store(true, Ordering::SeqCst);
            return Err(Error::Failed("interrupted".into()));
        }
        if self.last_progress.elapsed() >= progress_every() {
            (self.progress)();
            self.last_progress = Instant::now();
        }
        Ok(())
    }

    /// Copies `src_dir/name` to `dst_dir/dst_name`; `rel` is the new node's path under `top`.
    fn entry(
        &mut self,
        src_dir: &Arc<OwnedFd>,
        name: &OsStr,
        dst_dir: &Arc<OwnedFd>,
        dst_name: &OsStr,
        rel: PathBuf,
    ) -> Result<()> {
        self.tick()?;
        let sname = cstr(name);
        let dname = cstr(dst_name);
        let shown = || rel.display().to_string();
        let st = fstatat(&**src_dir, sname.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .ctx(|| format!("reading {}", shown()))?;
        let k = kind(&st);
        if k != SFlag::S_IFDIR && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = self.links.get(&key) {
                self.deferred.push((first.clone(), rel));
                return Ok(());
            }
            self.links.insert(key, rel.clone());
        }
        match k {
            SFlag::S_IFDIR => {
                mkdirat(
                    &**dst_dir,
                    dname.as_c_str(),
                    Mode::from_bits_truncate(0o700),
                )
                .ctx(|| format!("creating {}", shown()))?;
                let dir_flags =
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let sfd = openat(&**src_dir, sname.as_c_str(), dir_flags, Mode::empty())
                    .ctx(|| format!("opening {}", shown()))?;
                let dfd = openat(&**dst_dir, dname.as_c_str(), dir_flags, Mode::empty())
                    .ctx(|| format!("opening {}", shown()))?;
                let xattrs = sfd
                    .try_clone()
                    .map(File::from)
                    .and_then(|f| read_xattrs_file(&f))
                    .ctx(|| format!("reading xattrs of {}", shown()))?;
                let children = list_dir(&sfd).ctx(|| format!("reading {}", shown()))?;
                self.dirs.push(DirMeta {
                    rel: rel.clone(),
                    st,
                    xattrs,
                });
                let (sfd, dfd) = (Arc::new(sfd), Arc::new(dfd));
                for child in children {
                    let r = rel.join(&child);
                    self.entry(&sfd, &child, &dfd, &child, r)?;
                }
            }
            SFlag::S_IFREG => {
                let job = Job {
                    src_dir: Arc::clone(src_dir),
                    dst_dir: Arc::clone(dst_dir),
                    name: name.to_os_string(),
                    dst_name: dst_name.to_os_string(),
                    st,
                    rel,
                };
                self.tx
                    .send(job)
                    .map_err(|_| Error::Failed("copy workers stopped".into()))?;
            }
            _ => {
                if k == SFlag::S_IFLNK {
                    let target = nix::fcntl::readlinkat(&**src_dir, sname.as_c_str())
                        .ctx(|| format!("reading link {}", shown()))?;
                    symlinkat(target.as_os_str(), &**dst_dir, dname.as_c_str())
                        .ctx(|| format!("creating {}", shown()))?;
                } else {
                    mknodat(
                        &**dst_dir,
                        dname.as_c_str(),
                        k,
                        Mode::from_bits_truncate(0o600),
                        st.st_rdev,
                    )
                    .ctx(|| format!("creating {}", shown()))?;
                }
                let x = read_xattrs_path(&via_fd(src_dir.as_fd(), name))
                    .ctx(|| format!("reading xattrs of {}", shown()))?;
                apply_xattrs_path(&via_fd(dst_dir.as_fd(), dst_name), &x)
                    .ctx(|| format!("setting xattrs of {}", shown()))?;
                set_meta_at(dst_dir.as_fd(), dname.as_c_str(), &st, k != SFlag::S_IFLNK)
                    .ctx(|| format!("setting owner, mode and times of {}", shown()))?;
            }
        }
        Ok(())
    }
}

/// A directory's entries (not `.`/`..`), in inode order so cold reads seek less.
fn list_dir(fd: &OwnedFd) -> nix::Result<Vec<OsString>> {
    let dup = fd
        .try_clone()
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
    let mut dir = nix::dir::Dir::from_fd(dup)?;
    let mut v: Vec<(u64, OsString)> = Vec::new();
    for e in dir.iter() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            v.push((e.ino(), OsStr::from_bytes(n).to_os_string()));
        }
    }
    v.sort_unstable_by_key(|(ino, _)| *ino);
    Ok(v.into_iter().map(|(_, n)| n).collect())
}

/// How often progress is reported during a long copy: 2 s (`ORC_PROGRESS_MS` overrides, for tests).
pub fn progress_every() -> Duration {
    static EVERY: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *EVERY.get_or_init(|| {
        std::env::var("ORC_PROGRESS_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_secs(2), Duration::from_millis)
    })
}

/// Copies `src_dir/name` (any kind of node) to `top/dst_name`, which must not exist.
/// `abort` is polled to stop early; `progress` runs at most every [`progress_every`].
pub fn copy_tree(
    src_dir: BorrowedFd,
    name: &OsStr,
    top: BorrowedFd,
    dst_name: &OsStr,
    counters: &Counters,
    abort: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(),
) -> Result<()> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()) * 4;
    let shared = Shared {
        counters,
        error: Mutex::new(None),
        stop: AtomicBool::new(false),
        active: AtomicUsize::new(workers),
    };
    let (tx, rx) = sync_channel::<Job>(256);
    let (done_tx, done_rx) = sync_channel::<()>(0);
    let rx = Mutex::new(rx);
    let src_dir = Arc::new(src_dir.try_clone_to_owned().ctx(|| "dup")?);
    let top_fd = Arc::new(top.try_clone_to_owned().ctx(|| "dup")?);
    let (walked, deferred, dirs) = std::thread::scope(|scope| {
        for _ in 0..workers {
            let done = done_tx.clone();
            scope.spawn(|| {
                worker(&rx, &shared);
                drop(done);
            });
        }
        drop(done_tx);
        let mut w = Walker {
            tx,
            shared: &shared,
            links: HashMap::new(),
            deferred: Vec::new(),
            dirs: Vec::new(),
            abort,
            progress,
            last_progress: Instant::now(),
        };
        let walked = w.entry(&src_dir, name, &top_fd, dst_name, PathBuf::from(dst_name));
        if walked.is_err() {
            shared.stop.store(true, Ordering::SeqCst);
        }
        let Walker {
            tx,
            deferred,
            dirs,
            progress,
            ..
        } = w;
        drop(tx);
        let mut last = Instant::now();
        while shared.active.load(Ordering::SeqCst) > 0 {
            let _ = done_rx.recv_timeout(Duration::from_millis(100));
            if abort() {
                shared.stop.store(true, Ordering::SeqCst);
            }
            if last.elapsed() >= progress_every() {
                progress();
                last = Instant::now();
            }
        }
        (walked, deferred, dirs)
    });
    if let Some(e) = shared.error.lock().expect("no poisoning").take() {
        return Err(e);
    }
    walked?;
    for (first, new) in deferred {
        linkat(
            &*top_fd,
            first.as_path(),
            &*top_fd,
            new.as_path(),
            AtFlags::empty(),
        )
        .ctx(|| format!("linking {} to {}", new.display(), first.display()))?;
    }
    for d in dirs.iter().rev() {
        let rel = cstr(d.rel.as_os_str());
        apply_xattrs_path(&via_fd(top_fd.as_fd(), d.rel.as_os_str()), &d.xattrs)
            .ctx(|| format!("setting xattrs of {}", d.rel.display()))?;
        set_meta_at(top_fd.as_fd(), rel.as_c_str(), &d.st, true)
            .ctx(|| format!("setting owner, mode and times of {}", d.rel.display()))?;
    }
    Ok(())
}

/// Removes `dir/name` and everything under it, never following a symlink.
pub fn remove_tree(dir: BorrowedFd, name: &OsStr) -> Result<()> {
    let n = cstr(name);
    match fstatat(dir, n.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("reading {}", name.to_string_lossy())),
        Ok(st) if kind(&st) == SFlag::S_IFDIR => std::fs::remove_dir_all(via_fd(dir, name))
            .ctx(|| format!("removing {}", name.to_string_lossy())),
        Ok(_) => nix::unistd::unlinkat(dir, n.as_c_str(), nix::unistd::UnlinkatFlags::NoRemoveDir)
            .ctx(|| format!("removing {}", name.to_string_lossy())),
    }
}
