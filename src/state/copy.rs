//! A full-fidelity tree copy: content with sparse holes, mode (setuid too),
//! numeric owner, nanosecond times on every node, symlinks as links,
//! hardlinks as hardlinks, FIFOs, sockets and device nodes, and every xattr
//! (ACLs, SELinux labels, file capabilities).
//!
//! Every call is relative to an open directory and one entry name: no path
//! longer than a name, nothing followed, no `/proc` needed (see [`xattrs`]).
//! The walk is orc's one tree walker ([`crate::walk`], shared with removal):
//! iterative, descriptors kept only for the top levels (deeper ones reached
//! again by `..`), every step up checked by device and inode in both trees,
//! so trees of any depth copy within a small, fixed number of open files and a
//! directory moved out of either tree stops the copy.
//!
//! One thread walks the directories, creating each one's subdirectories; the
//! other entries of a directory go, in one batch, to a pool of workers (so
//! they do not contend for one directory's lock). Metadata is lean: a file is
//! created with its final permissions (each worker has a private umask of 0),
//! owner and special mode bits are set only when they differ from what the
//! create gave, xattrs only when the source has some, and `ftruncate` only
//! for a file that ends in a hole. When the destination gives new nodes
//! attributes of their own (an inherited default ACL, a policy label: seen on
//! the top directory right after it is made), every node gets every attribute
//! set and the extras removed. A directory gets its attributes once all its
//! entries exist; file capabilities are set after the owner (chown clears them).

use std::collections::HashMap;
use std::collections::VecDeque;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{
    FchmodatFlags, FileStat, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, fstatat, futimens,
    mkdirat, mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, Whence, fchown, fchownat, linkat, lseek, symlinkat};

use super::xattrs::{self, Node, Xattrs};
use crate::error::{Context, Error, Result};

/// Bytes and regular files copied so far.
#[derive(Debug, Default)]
pub struct Counters {
    pub bytes: AtomicU64,
    pub files: AtomicU64,
}

/// Entries of one directory per worker job, at most.
const BATCH: usize = 512;
/// Jobs the walker queues for the workers, at most (each holds two directory descriptors).
const QUEUE: usize = 32;
/// A regular file this large gets a worker of its own: the rest of its batch is handed on.
const BIG: i64 = 1 << 20;
use crate::walk::{self, DIR_OPEN, DirPath, id};

fn cstr(name: &OsStr) -> CString {
    CString::new(name.as_bytes()).expect("directory entries have no NUL")
}

fn os(name: &CStr) -> &OsStr {
    OsStr::from_bytes(name.to_bytes())
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

fn times(st: &FileStat) -> [TimeSpec; 2] {
    [
        TimeSpec::new(st.st_atime, st.st_atime_nsec),
        TimeSpec::new(st.st_mtime, st.st_mtime_nsec),
    ]
}

#[allow(clippy::unnecessary_cast)] // not u64 on every target
fn nlink(st: &FileStat) -> u64 {
    st.st_nlink as u64
}

fn xerr(e: Errno) -> std::io::Error {
    std::io::Error::other(xattrs::explain(e))
}

/// A directory of the copy whose attributes wait for its entries.
struct DirState {
    dst: Arc<OwnedFd>,
    path: Arc<DirPath>,
    st: FileStat,
    xattrs: Xattrs,
    /// The walker's own hold plus one per job; the last to finish sets the attributes.
    pending: AtomicUsize,
}

/// The entries of one directory (not subdirectories) for one worker.
struct Job {
    src: Arc<OwnedFd>,
    dir: Arc<DirState>,
    names: Vec<CString>,
}

/// The jobs waiting for a worker. The walker waits while [`QUEUE`] are waiting; a worker
/// that meets a big file hands the rest of its batch on at the front, without waiting.
struct Queue {
    state: Mutex<(VecDeque<Job>, bool)>,
    ready: Condvar,
    space: Condvar,
}

impl Queue {
    fn new() -> Queue {
        Queue {
            state: Mutex::new((VecDeque::new(), false)),
            ready: Condvar::new(),
            space: Condvar::new(),
        }
    }

    /// Queues `job` if there is room within `wait`; gives it back otherwise.
    fn push(&self, job: Job, wait: Duration) -> std::result::Result<(), Job> {
        let mut q = self.state.lock().expect("no poisoning");
        if q.0.len() >= QUEUE {
            q = self.space.wait_timeout(q, wait).expect("no poisoning").0;
            if q.0.len() >= QUEUE {
                return Err(job);
            }
        }
        q.0.push_back(job);
        self.ready.notify_one();
        Ok(())
    }

    fn push_front(&self, job: Job) {
        self.state.lock().expect("no poisoning").0.push_front(job);
        self.ready.notify_one();
    }

    /// The next job; `None` once the queue is closed and empty.
    fn pop(&self) -> Option<Job> {
        let mut q = self.state.lock().expect("no poisoning");
        loop {
            if let Some(job) = q.0.pop_front() {
                self.space.notify_one();
                return Some(job);
            }
            if q.1 {
                return None;
            }
            q = self.ready.wait(q).expect("no poisoning");
        }
    }

    /// No more jobs from the walker: workers end once the queue is empty.
    fn close(&self) {
        self.state.lock().expect("no poisoning").1 = true;
        self.ready.notify_all();
    }
}

/// The first copy of a multiply-linked inode, and how many names may still link to it.
struct Link {
    dir: Arc<DirPath>,
    name: OsString,
    left: u64,
}

/// Per-thread buffers and whether this thread creates files with exact permissions.
struct Scratch {
    listing: Vec<u8>,
    buf: Vec<u8>,
    /// The thread has a private umask of 0: a create gives exactly the mode asked for.
    exact_umask: bool,
}

impl Scratch {
    fn new(exact_umask: bool) -> Scratch {
        Scratch {
            listing: Vec::new(),
            buf: Vec::new(),
            exact_umask,
        }
    }
}

/// Gives the calling thread its own umask, cwd and root (`unshare(CLONE_FS)`) and sets
/// that umask to 0, so files are created with their final permissions without touching
/// the umask of the rest of orc. False when not allowed (a seccomp filter): then the
/// thread keeps orc's umask and every mode is set explicitly.
fn private_umask_zero() -> bool {
    if nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS).is_err() {
        return false;
    }
    nix::sys::stat::umask(Mode::empty());
    true
}

/// What a non-directory source is, once opened or read.
enum Input {
    File(File),
    Link(OsString),
    Special,
}

fn open_src(dir: BorrowedFd, name: &CStr) -> nix::Result<File> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    match openat(dir, name, flags | OFlag::O_NOATIME, Mode::empty()) {
        Err(Errno::EPERM) => openat(dir, name, flags, Mode::empty()),
        r => r,
    }
    .map(File::from)
}

/// Copies the data of `src` into `dst`, keeping holes; `ftruncate` only for a trailing hole.
fn copy_data(src: &File, dst: &File, st: &FileStat, buf: &mut Vec<u8>) -> std::io::Result<u64> {
    let size = st.st_size;
    if size == 0 {
        return Ok(0);
    }
    if st.st_blocks * 512 >= size {
        let n = copy_range(src, dst, 0, size, buf)?;
        if n < size {
            // The source shrank while being copied: keep the size it had.
            dst.set_len(size as u64)?;
        }
        return Ok(n as u64);
    }
    let (mut copied, mut off, mut written_to) = (0u64, 0i64, 0i64);
    while off < size {
        let start = match lseek(src, off, Whence::SeekData) {
            Ok(s) if s < size => s,
            Ok(_) | Err(Errno::ENXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let end = lseek(src, start, Whence::SeekHole)?.min(size);
        let n = copy_range(src, dst, start, end, buf)?;
        copied += n as u64;
        written_to = start + n;
        off = end;
    }
    if written_to < size {
        dst.set_len(size as u64)?;
    }
    Ok(copied)
}

/// Copies `[start, end)` at the same offsets; returns the bytes copied (less at EOF).
fn copy_range(
    src: &File,
    dst: &File,
    start: i64,
    end: i64,
    buf: &mut Vec<u8>,
) -> std::io::Result<i64> {
    use std::os::unix::fs::FileExt;
    let (mut off, mut out_off) = (start, start);
    while off < end {
        let len = (end - off) as usize;
        match nix::fcntl::copy_file_range(src, Some(&mut off), dst, Some(&mut out_off), len) {
            Ok(0) => break,
            Ok(_) => {}
            Err(Errno::EXDEV | Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
                if buf.is_empty() {
                    buf.resize(128 * 1024, 0);
                }
                while off < end {
                    let want = buf.len().min((end - off) as usize);
                    let n = src.read_at(&mut buf[..want], off as u64)?;
                    if n == 0 {
                        break;
                    }
                    dst.write_all_at(&buf[..n], off as u64)?;
                    off += n as i64;
                }
                break;
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(off - start)
}

struct Shared<'a> {
    counters: &'a Counters,
    error: Mutex<Option<Error>>,
    stop: AtomicBool,
    /// New nodes come with attributes of their own: set all, remove extras, always chown
    /// and chmod.
    careful: bool,
    /// Who a new node belongs to (orc's effective ids; no setgid dir is involved).
    me: (u32, u32),
    /// The top directory of the copy, where hardlink targets are looked up from.
    top: Option<Arc<OwnedFd>>,
    links: Mutex<HashMap<(u64, u64), Link>>,
}

impl Shared<'_> {
    fn record(&self, e: Error) {
        let mut slot = self.error.lock().expect("no poisoning");
        slot.get_or_insert(e);
        self.stop.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn chown_needed(&self, st: &FileStat) -> bool {
        self.careful || (st.st_uid, st.st_gid) != self.me
    }

    fn chmod_needed(&self, st: &FileStat, s: &Scratch) -> bool {
        self.careful || !s.exact_umask || st.st_mode & 0o7000 != 0
    }

    /// Links `dst/dst_name` to the first copy `dir/first`, found from the top by name.
    fn link(
        &self,
        dir: &DirPath,
        first: &OsStr,
        here: &Arc<DirPath>,
        dst: BorrowedFd,
        dst_name: &CStr,
    ) -> nix::Result<()> {
        if std::ptr::eq(dir, &**here) {
            return linkat(dst, first, dst, dst_name, AtFlags::empty());
        }
        let top = self.top.as_ref().ok_or(Errno::EINVAL)?;
        let mut cur: Option<OwnedFd> = None;
        for n in dir.below_top() {
            let at = cur.as_ref().map_or(top.as_fd(), |c| c.as_fd());
            let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            cur = Some(openat(at, n, flags, Mode::empty())?);
        }
        let at = cur.as_ref().map_or(top.as_fd(), |c| c.as_fd());
        linkat(at, first, dst, dst_name, AtFlags::empty())
    }

    /// Copies the non-directory `src/name` to `dst/dst_name`; `here` is where `dst` is.
    /// With `linkable`, names of one inode become hardlinks of its first copy.
    #[allow(clippy::too_many_arguments)]
    fn copy_node(
        &self,
        src: BorrowedFd,
        name: &CStr,
        st: &FileStat,
        dst: BorrowedFd,
        dst_name: &CStr,
        here: &Arc<DirPath>,
        linkable: bool,
        s: &mut Scratch,
    ) -> Result<()> {
        let shown = || here.show(Some(os(name)));
        let st = *st;
        let k = kind(&st);
        if k == SFlag::S_IFDIR {
            return Err(Error::Failed(format!(
                "{}: became a directory during the copy",
                shown()
            )));
        }
        let mut first = None;
        if linkable && st.st_nlink > 1 {
            let key = id(&st);
            let mut links = self.links.lock().expect("no poisoning");
            if let Some(l) = links.get_mut(&key) {
                let (dir, target) = (Arc::clone(&l.dir), l.name.clone());
                l.left -= 1;
                if l.left == 0 {
                    links.remove(&key);
                }
                drop(links);
                return self
                    .link(&dir, &target, here, dst, dst_name)
                    .ctx(|| format!("linking {} to {}", shown(), dir.show(Some(&target))));
            }
            // Created under the lock, so a later name of the inode always finds it.
            first = Some((links, key));
        }
        let input = match k {
            SFlag::S_IFREG => {
                Input::File(open_src(src, name).ctx(|| format!("opening {}", shown()))?)
            }
            SFlag::S_IFLNK => Input::Link(
                nix::fcntl::readlinkat(src, name).ctx(|| format!("reading link {}", shown()))?,
            ),
            _ => Input::Special,
        };
        let perm = Mode::from_bits_truncate(st.st_mode & 0o777);
        let created = match &input {
            Input::File(_) => openat(
                dst,
                dst_name,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                perm,
            )
            .map(|fd| Some(File::from(fd))),
            Input::Link(target) => symlinkat(target.as_os_str(), dst, dst_name).map(|()| None),
            Input::Special => mknodat(dst, dst_name, k, perm, st.st_rdev).map(|()| None),
        }
        .ctx(|| format!("creating {}", shown()))?;
        if let Some((mut links, key)) = first {
            links.insert(
                key,
                Link {
                    dir: Arc::clone(here),
                    name: os(dst_name).to_os_string(),
                    left: nlink(&st) - 1,
                },
            );
        }
        match (input, created) {
            (Input::File(src_file), Some(dst_file)) => {
                let n = copy_data(&src_file, &dst_file, &st, &mut s.buf)
                    .ctx(|| format!("copying {}", shown()))?;
                xattrs::list_into(Node::Fd(src_file.as_fd()), &mut s.listing)
                    .map_err(xerr)
                    .ctx(|| format!("reading xattrs of {}", shown()))?;
                let x = xattrs::read_listed(Node::Fd(src_file.as_fd()), &s.listing)
                    .map_err(xerr)
                    .ctx(|| format!("reading xattrs of {}", shown()))?;
                self.file_meta(&dst_file, &st, &x, s)
                    .ctx(|| format!("setting the attributes of {}", shown()))?;
                self.counters.bytes.fetch_add(n, Ordering::Relaxed);
                self.counters.files.fetch_add(1, Ordering::Relaxed);
            }
            (_, _) => {
                let from = Node::At(src, name);
                xattrs::list_into(from, &mut s.listing)
                    .map_err(xerr)
                    .ctx(|| format!("reading xattrs of {}", shown()))?;
                let x = xattrs::read_listed(from, &s.listing)
                    .map_err(xerr)
                    .ctx(|| format!("reading xattrs of {}", shown()))?;
                self.node_meta(dst, dst_name, &st, &x, s)
                    .ctx(|| format!("setting the attributes of {}", shown()))?;
            }
        }
        Ok(())
    }

    /// Attributes of a new regular file: xattrs, owner, mode, capabilities, times.
    fn file_meta(&self, f: &File, st: &FileStat, x: &Xattrs, s: &Scratch) -> std::io::Result<()> {
        let node = Node::Fd(f.as_fd());
        if self.careful || !x.is_empty() {
            xattrs::apply(node, x, self.careful).map_err(xerr)?;
        }
        if self.chown_needed(st) {
            fchown(
                f,
                Some(Uid::from_raw(st.st_uid)),
                Some(Gid::from_raw(st.st_gid)),
            )?;
        }
        if self.chmod_needed(st, s) {
            fchmod(f, Mode::from_bits_truncate(st.st_mode & 0o7777))?;
        }
        xattrs::set_late(node, x).map_err(xerr)?;
        let [a, m] = times(st);
        futimens(f, &a, &m)?;
        Ok(())
    }

    /// Attributes of a new symlink, FIFO, socket or device node, by its directory and name.
    fn node_meta(
        &self,
        dir: BorrowedFd,
        name: &CStr,
        st: &FileStat,
        x: &Xattrs,
        s: &Scratch,
    ) -> std::io::Result<()> {
        let node = Node::At(dir, name);
        if self.careful || !x.is_empty() {
            xattrs::apply(node, x, self.careful).map_err(xerr)?;
        }
        if self.chown_needed(st) {
            fchownat(
                dir,
                name,
                Some(Uid::from_raw(st.st_uid)),
                Some(Gid::from_raw(st.st_gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )?;
        }
        if kind(st) != SFlag::S_IFLNK && self.chmod_needed(st, s) {
            fchmodat(
                dir,
                name,
                Mode::from_bits_truncate(st.st_mode & 0o7777),
                FchmodatFlags::FollowSymlink,
            )?;
        }
        xattrs::set_late(node, x).map_err(xerr)?;
        let [a, m] = times(st);
        utimensat(dir, name, &a, &m, UtimensatFlags::NoFollowSymlink)?;
        Ok(())
    }

    /// Attributes of a copied directory, once all its entries exist.
    fn dir_meta(&self, d: &DirState) -> std::io::Result<()> {
        let fd = d.dst.as_fd();
        let node = Node::Fd(fd);
        if self.careful || !d.xattrs.is_empty() {
            xattrs::apply(node, &d.xattrs, self.careful).map_err(xerr)?;
        }
        if self.chown_needed(&d.st) {
            fchown(
                fd,
                Some(Uid::from_raw(d.st.st_uid)),
                Some(Gid::from_raw(d.st.st_gid)),
            )?;
        }
        fchmod(fd, Mode::from_bits_truncate(d.st.st_mode & 0o7777))?;
        xattrs::set_late(node, &d.xattrs).map_err(xerr)?;
        let [a, m] = times(&d.st);
        futimens(fd, &a, &m)?;
        Ok(())
    }

    /// Drops one hold on `d`; the last sets its attributes.
    fn release(&self, d: &DirState) {
        if d.pending.fetch_sub(1, Ordering::AcqRel) == 1
            && !self.stopped()
            && let Err(e) = self.dir_meta(d)
        {
            self.record(Error::Io {
                what: format!("setting the attributes of {}", d.path.show(None)),
                source: e,
            });
        }
    }
}

/// Stops the copy if a worker ends by a panic, so the walker does not wait for it.
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::SeqCst);
        }
    }
}

fn worker(queue: &Queue, shared: &Shared) {
    let _guard = StopOnPanic(&shared.stop);
    let mut s = Scratch::new(private_umask_zero());
    while let Some(mut job) = queue.pop() {
        let (src, dst) = (job.src.as_fd(), job.dir.dst.as_fd());
        let mut i = 0;
        while i < job.names.len() && !shared.stopped() {
            let name = &job.names[i];
            let copied = fstatat(src, name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .ctx(|| format!("reading {}", job.dir.path.show(Some(os(name)))))
                .and_then(|st| {
                    if kind(&st) == SFlag::S_IFREG && st.st_size >= BIG && i + 1 < job.names.len() {
                        // Not behind a big file: the rest of the batch goes to another worker.
                        job.dir.pending.fetch_add(1, Ordering::AcqRel);
                        queue.push_front(Job {
                            src: Arc::clone(&job.src),
                            dir: Arc::clone(&job.dir),
                            names: job.names.split_off(i + 1),
                        });
                    }
                    let name = &job.names[i];
                    let here = &job.dir.path;
                    shared.copy_node(src, name, &st, dst, name, here, true, &mut s)
                });
            if let Err(e) = copied {
                shared.record(e);
            }
            i += 1;
        }
        shared.release(&job.dir);
    }
}

struct Walker<'a, 'b> {
    queue: &'a Queue,
    shared: &'a Shared<'b>,
    abort: &'a dyn Fn() -> bool,
    progress: &'a mut dyn FnMut(),
    last_progress: Instant,
}

impl Walker<'_, '_> {
    fn tick(&mut self) -> Result<()> {
        if self.shared.stopped() {
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

    fn send(&mut self, mut job: Job) -> Result<()> {
        loop {
            match self.queue.push(job, Duration::from_millis(5)) {
                Ok(()) => return Ok(()),
                Err(j) => {
                    job = j;
                    self.tick()?;
                }
            }
        }
    }

    /// Copies one directory's own entries: creates its subdirectories, hands the rest to
    /// the workers. Returns the subdirectories.
    fn enter(
        &mut self,
        src: &Arc<OwnedFd>,
        dst: &Arc<OwnedFd>,
        st: FileStat,
        path: &Arc<DirPath>,
    ) -> Result<Vec<OsString>> {
        let shown = || path.show(None);
        let mut subdirs = Vec::new();
        let mut others = Vec::new();
        let dup = src.try_clone().ctx(|| "dup")?;
        let mut d = nix::dir::Dir::from_fd(dup).ctx(|| format!("reading {}", shown()))?;
        for e in d.iter() {
            let e = e.ctx(|| format!("reading {}", shown()))?;
            let n = e.file_name();
            if n.to_bytes() == b"." || n.to_bytes() == b".." {
                continue;
            }
            let is_dir = match e.file_type() {
                Some(t) => t == nix::dir::Type::Directory,
                None => fstatat(&**src, n, AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map(|s| kind(&s) == SFlag::S_IFDIR)
                    .ctx(|| format!("reading {}", path.show(Some(os(n)))))?,
            };
            if is_dir {
                subdirs.push(OsStr::from_bytes(n.to_bytes()).to_os_string());
            } else {
                others.push(n.to_owned());
            }
        }
        drop(d);
        let xattrs = xattrs::read(Node::Fd(src.as_fd()))
            .map_err(xerr)
            .ctx(|| format!("reading xattrs of {}", shown()))?;
        for sd in &subdirs {
            mkdirat(&**dst, sd.as_os_str(), Mode::from_bits_truncate(0o700))
                .ctx(|| format!("creating {}", path.show(Some(sd))))?;
        }
        let jobs = others.len().div_ceil(BATCH);
        let state = Arc::new(DirState {
            dst: Arc::clone(dst),
            path: Arc::clone(path),
            st,
            xattrs,
            pending: AtomicUsize::new(1 + jobs),
        });
        while !others.is_empty() {
            let names = others.split_off(others.len().saturating_sub(BATCH));
            self.send(Job {
                src: Arc::clone(src),
                dir: Arc::clone(&state),
                names,
            })?;
        }
        self.shared.release(&state);
        Ok(subdirs)
    }
}

/// The copy as a walk of the source and the destination in step (see [`walk`]).
impl walk::Visitor<2> for Walker<'_, '_> {
    type Error = Error;

    fn enter(
        &mut self,
        fds: &walk::Fds<2>,
        st: &[FileStat; 2],
        path: &Arc<DirPath>,
    ) -> Result<Vec<OsString>> {
        Walker::enter(self, &fds[0], &fds[1], st[0], path)
    }

    fn tick(&mut self) -> Result<()> {
        Walker::tick(self)
    }
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
    let (cname, cdst) = (cstr(name), cstr(dst_name));
    let st = fstatat(src_dir, cname.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
        .ctx(|| format!("reading {}", name.to_string_lossy()))?;
    let me = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    let mut shared = Shared {
        counters,
        error: Mutex::new(None),
        stop: AtomicBool::new(false),
        careful: true,
        me,
        top: None,
        links: Mutex::new(HashMap::new()),
    };
    if kind(&st) != SFlag::S_IFDIR {
        // One node, made in this thread: every attribute set explicitly.
        let here = DirPath::top("");
        let mut s = Scratch::new(false);
        return shared.copy_node(src_dir, &cname, &st, top, &cdst, &here, false, &mut s);
    }
    let shown = name.to_string_lossy();
    mkdirat(top, cdst.as_c_str(), Mode::from_bits_truncate(0o700))
        .ctx(|| format!("creating the copy of {shown}"))?;
    let dst = openat(top, cdst.as_c_str(), DIR_OPEN, Mode::empty())
        .ctx(|| format!("opening the copy of {shown}"))?;
    // Not the group or setgid bit of a setgid parent: new nodes below get orc's own ids.
    fchown(&dst, Some(Uid::from_raw(me.0)), Some(Gid::from_raw(me.1)))
        .and_then(|()| fchmod(&dst, Mode::from_bits_truncate(0o700)))
        .ctx(|| format!("creating the copy of {shown}"))?;
    shared.careful = xattrs::any(Node::Fd(dst.as_fd()))
        .map_err(xerr)
        .ctx(|| format!("reading xattrs of the copy of {shown}"))?;
    let src = openat(src_dir, cname.as_c_str(), DIR_OPEN, Mode::empty())
        .ctx(|| format!("opening {shown}"))?;
    let dst = Arc::new(dst);
    shared.top = Some(Arc::clone(&dst));
    let shared = shared;
    let top_path = DirPath::top(name);

    let workers = std::thread::available_parallelism().map_or(2, |n| n.get() * 4);
    let workers = workers.clamp(4, 16);
    let queue = Queue::new();
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel::<()>(0);
    let walked = std::thread::scope(|scope| {
        let mut started = 0;
        let mut refused = None;
        for _ in 0..workers {
            let done = done_tx.clone();
            let (queue, shared) = (&queue, &shared);
            let spawned = spawn_worker(scope, move || {
                worker(queue, shared);
                drop(done);
            });
            match spawned {
                Ok(()) => started += 1,
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        drop(done_tx);
        if let Some(e) = refused {
            // A pids limit (TasksMax at boot): fewer workers, or none and a clear error.
            if started == 0 {
                queue.close();
                return Err(Error::Failed(format!(
                    "copying {shown}: cannot start a copying thread: {e}"
                )));
            }
            log::warn!("copying {shown} with {started} of {workers} threads: {e}");
        }
        let mut w = Walker {
            queue: &queue,
            shared: &shared,
            abort,
            progress,
            last_progress: Instant::now(),
        };
        let walked = walk::walk([Arc::new(src), dst], top_path, &mut w);
        if walked.is_err() {
            shared.stop.store(true, Ordering::SeqCst);
        }
        let Walker { progress, .. } = w;
        queue.close();
        let mut last = Instant::now();
        let poll = progress_every().min(Duration::from_millis(100));
        loop {
            match done_rx.recv_timeout(poll) {
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                _ => {
                    if abort() {
                        shared.stop.store(true, Ordering::SeqCst);
                    }
                    if last.elapsed() >= progress_every() {
                        progress();
                        last = Instant::now();
                    }
                }
            }
        }
        walked
    });
    if let Some(e) = shared.error.lock().expect("no poisoning").take() {
        return Err(e);
    }
    walked
}

/// Starts one copying thread in `scope`; an error (no thread left under a pids limit)
/// is returned, not a panic.
fn spawn_worker<'s, 'e: 's>(
    scope: &'s std::thread::Scope<'s, 'e>,
    f: impl FnOnce() + Send + 's,
) -> std::io::Result<()> {
    #[cfg(test)]
    if tests::SPAWN_ALLOWED.with(|n| {
        let left = n.get();
        n.set(left.saturating_sub(1));
        left == 0
    }) {
        return Err(std::io::Error::from_raw_os_error(libc::EAGAIN));
    }
    std::thread::Builder::new()
        .name("orc-copy".into())
        .spawn_scoped(scope, f)
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::stat::fstat;
    use std::fs;

    thread_local! {
        /// How many more copying threads may start in this test thread.
        pub static SPAWN_ALLOWED: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    use std::os::unix::fs::MetadataExt;

    fn copy(src: &std::path::Path, dst_parent: &std::path::Path, name: &str) -> Result<()> {
        let s = File::open(src.parent().unwrap()).unwrap();
        let d = File::open(dst_parent).unwrap();
        copy_tree(
            s.as_fd(),
            src.file_name().unwrap(),
            d.as_fd(),
            OsStr::new(name),
            &Counters::default(),
            &|| false,
            &mut || {},
        )
    }

    /// `src/t/a/.../a/{x1,x2}/y` (`depth` levels of `a`); when the copy is inside the first
    /// of x1 and x2 it meets, that one is renamed out of the tree into a landing dir that
    /// holds a decoy of the other (`secret`). The copy must stop with an error and never
    /// copy the decoy.
    fn source_moved_out(depth: usize) {
        let d = tempfile::tempdir().unwrap();
        let mut deep = d.path().join("src/t");
        let mut dst_deep = d.path().join("dst/t");
        for _ in 0..depth {
            deep = deep.join("a");
            dst_deep = dst_deep.join("a");
        }
        for (x, other) in [("x1", "x2"), ("x2", "x1")] {
            fs::create_dir_all(deep.join(x).join("y")).unwrap();
            fs::write(deep.join(x).join("y/inside"), "in").unwrap();
            let decoy = d.path().join(format!("land-{x}/{other}"));
            fs::create_dir_all(&decoy).unwrap();
            fs::write(decoy.join("secret"), "out").unwrap();
        }
        fs::create_dir(d.path().join("dst")).unwrap();
        let moved = std::cell::Cell::new(None);
        let abort = || {
            for x in ["x1", "x2"] {
                if moved.get().is_none() && dst_deep.join(x).join("y").exists() {
                    let land = d.path().join(format!("land-{x}/{x}"));
                    fs::rename(deep.join(x), land).unwrap();
                    moved.set(Some(x));
                }
            }
            false
        };
        let s = File::open(d.path().join("src")).unwrap();
        let t = File::open(d.path().join("dst")).unwrap();
        let r = copy_tree(
            s.as_fd(),
            OsStr::new("t"),
            t.as_fd(),
            OsStr::new("t"),
            &Counters::default(),
            &abort,
            &mut || {},
        );
        assert!(moved.get().is_some(), "the rename happened");
        let e = r
            .expect_err("a moved source dir stops the copy")
            .to_string();
        assert!(e.contains("moved during the walk"), "{e}");
        let out = std::process::Command::new("find")
            .arg(d.path().join("dst"))
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(
            !listed.contains("secret"),
            "copied from where the dir landed:\n{listed}"
        );
    }

    #[test]
    fn a_source_dir_moved_out_below_the_kept_levels_stops_the_copy() {
        source_moved_out(walk::KEEP + 2);
    }

    #[test]
    fn a_source_dir_moved_out_within_the_kept_levels_stops_the_copy() {
        source_moved_out(1);
    }

    #[test]
    fn a_refused_thread_means_fewer_workers_or_a_clear_error() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        for i in 0..300 {
            let d = src.join(format!("d{}", i % 7));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join(format!("f{i}")), format!("{i}")).unwrap();
        }
        SPAWN_ALLOWED.with(|n| n.set(1));
        copy(&src, t.path(), "one").unwrap();
        for i in 0..300 {
            let f = t.path().join(format!("one/d{}/f{i}", i % 7));
            assert_eq!(fs::read_to_string(f).unwrap(), format!("{i}"));
        }
        SPAWN_ALLOWED.with(|n| n.set(0));
        let e = copy(&src, t.path(), "none").unwrap_err();
        assert!(
            e.to_string().contains("cannot start a copying thread"),
            "{e}"
        );
        SPAWN_ALLOWED.with(|n| n.set(usize::MAX));
    }

    #[test]
    fn deeper_than_path_max_with_links_across_the_depth() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir(&src).unwrap();
        let root = File::open(&src).unwrap();
        let mut cur: OwnedFd = root.try_clone().unwrap().into();
        let name = "d".repeat(40);
        for i in 0..150 {
            mkdirat(&cur, name.as_str(), Mode::from_bits_truncate(0o750)).unwrap();
            cur = openat(&cur, name.as_str(), DIR_OPEN, Mode::empty()).unwrap();
            if i % 50 == 0 {
                let f = openat(
                    &cur,
                    "f",
                    OFlag::O_CREAT | OFlag::O_WRONLY,
                    Mode::from_bits_truncate(0o640),
                )
                .unwrap();
                nix::unistd::write(&f, b"x").unwrap();
            }
        }
        symlinkat("../..", &cur, "up").unwrap();
        let f = openat(
            &cur,
            "bottom",
            OFlag::O_CREAT | OFlag::O_WRONLY,
            Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        nix::unistd::write(&f, b"deep").unwrap();
        linkat(&cur, "bottom", &root, "top-link", AtFlags::empty()).unwrap();
        drop((cur, f));
        copy(&src, t.path(), "dst").unwrap();
        // Walk both by fd and compare the bottom.
        let mut a: OwnedFd = File::open(&src).unwrap().into();
        let mut b: OwnedFd = File::open(t.path().join("dst")).unwrap().into();
        for _ in 0..150 {
            let sa = fstat(&a).unwrap();
            let sb = fstat(&b).unwrap();
            assert_eq!(sa.st_mode, sb.st_mode);
            assert_eq!(
                (sa.st_mtime, sa.st_mtime_nsec),
                (sb.st_mtime, sb.st_mtime_nsec)
            );
            a = openat(&a, name.as_str(), DIR_OPEN, Mode::empty()).unwrap();
            b = openat(&b, name.as_str(), DIR_OPEN, Mode::empty()).unwrap();
        }
        let bottom = fstatat(&b, "bottom", AtFlags::AT_SYMLINK_NOFOLLOW).unwrap();
        let top = fs::symlink_metadata(t.path().join("dst/top-link")).unwrap();
        assert_eq!(bottom.st_ino, top.ino());
        assert_eq!(bottom.st_nlink, 2);
        assert_eq!(
            nix::fcntl::readlinkat(&b, "up").unwrap(),
            OsStr::new("../..")
        );
    }
}
