//! Starting a child at the limit: `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)`
//! on a reused per-thread stack, like `posix_spawn` but without its
//! per-call resource-limit and signal-table work. The child only sets its
//! process group (or session), installs its fds, resets every signal
//! disposition to the default and empties the signal mask (whatever orc
//! inherited), and execs a path (or, for a path too long to execute by, the
//! opened, checked file itself: `execveat(fd, "", AT_EMPTY_PATH)`). A script
//! the kernel cannot execute (no `#!`, or empty) runs as `bash PATH`, as
//! upstream does.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::signals::{LAST_SIGNAL, set_default};

const STACK: usize = 64 * 1024;
const PAGE: usize = 4096;

/// The child's stack: mapped once per thread, with an inaccessible guard page below it,
/// so an overflow faults instead of writing over orc's memory.
struct Stack {
    base: *mut libc::c_void,
}

impl Stack {
    fn map() -> std::io::Result<Stack> {
        // SAFETY: a fresh anonymous mapping we own; its lowest page made inaccessible.
        unsafe {
            let base = libc::mmap(
                std::ptr::null_mut(),
                PAGE + STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            );
            if base == libc::MAP_FAILED {
                return Err(std::io::Error::last_os_error());
            }
            if libc::mprotect(base, PAGE, libc::PROT_NONE) < 0 {
                let e = std::io::Error::last_os_error();
                libc::munmap(base, PAGE + STACK);
                return Err(e);
            }
            Ok(Stack { base })
        }
    }

    /// The top of the stack (it grows down), 16-byte aligned.
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of the mapping, never dereferenced as such.
        unsafe { self.base.cast::<u8>().add(PAGE + STACK).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, no longer used (the thread ends).
        unsafe { libc::munmap(self.base, PAGE + STACK) };
    }
}

/// A NUL-terminated array of C strings (argv or envp), built once and reused.
#[derive(Debug, Default)]
pub struct CArgs {
    strings: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

// SAFETY: the pointers point into `strings`, owned by the same value and never mutated.
unsafe impl Send for CArgs {}
// SAFETY: as for Send: shared references only read the owned, immutable strings.
unsafe impl Sync for CArgs {}

impl CArgs {
    pub fn new<I, S>(items: I) -> CArgs
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let strings: Vec<CString> = items
            .into_iter()
            .map(|s| {
                let b = s.as_ref().as_bytes();
                let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
                CString::new(&b[..end]).expect("NUL removed")
            })
            .collect();
        let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        CArgs { strings, ptrs }
    }

    /// `KEY=VALUE` strings from pairs.
    pub fn env<I, K, V>(pairs: I) -> CArgs
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        CArgs::new(pairs.into_iter().map(|(k, v)| {
            let mut s = k.as_ref().to_os_string();
            s.push("=");
            s.push(v);
            s
        }))
    }

    pub fn strings(&self) -> &[CString] {
        &self.strings
    }

    fn as_ptr(&self) -> *const *const libc::c_char {
        self.ptrs.as_ptr()
    }

    /// These strings and one more, without copying them: the pointer array only.
    pub fn with<'a>(&'a self, extra: &'a CStr) -> Envp<'a> {
        let mut ptrs = Vec::with_capacity(self.ptrs.len() + 1);
        ptrs.extend_from_slice(&self.ptrs[..self.ptrs.len() - 1]);
        ptrs.push(extra.as_ptr());
        ptrs.push(std::ptr::null());
        Envp {
            ptrs,
            _owner: std::marker::PhantomData,
        }
    }

    pub fn envp(&self) -> Envp<'_> {
        Envp {
            ptrs: self.ptrs.clone(),
            _owner: std::marker::PhantomData,
        }
    }
}

/// A NUL-terminated pointer array borrowing strings owned elsewhere.
#[derive(Debug)]
pub struct Envp<'a> {
    ptrs: Vec<*const libc::c_char>,
    _owner: std::marker::PhantomData<&'a CStr>,
}

impl Envp<'_> {
    fn as_ptr(&self) -> *const *const libc::c_char {
        self.ptrs.as_ptr()
    }
}

/// What the child executes.
#[derive(Debug)]
pub enum Program<'a> {
    /// The first extra fd (installed at fd 3), by `execveat(3, "", AT_EMPTY_PATH)`;
    /// ENOEXEC falls back to `bash /dev/fd/3 ARGS` (a script whose path is too long to
    /// execute by).
    Fd {
        bash: &'a CStr,
        bash_argv: &'a CArgs,
    },
    /// A script, by `execve` of its checked path (so `$0` is that path); ENOEXEC falls
    /// back to `bash_argv` (`bash PATH`).
    Script {
        path: &'a CStr,
        bash: &'a CStr,
        bash_argv: &'a CArgs,
    },
    /// An absolute path, by `execve`.
    Path(&'a CStr),
}

/// Everything the child needs, prepared before the clone (the child must not allocate).
pub struct Spec<'a> {
    pub program: Program<'a>,
    pub argv: &'a CArgs,
    pub env: &'a Envp<'a>,
    /// The child's fds 0, 1 and 2: borrowed, so they stay open until the child has them.
    pub stdio: [BorrowedFd<'a>; 3],
    /// Installed at 3, 4, ...
    pub extra: &'a [BorrowedFd<'a>],
    /// A new session (`setsid`) instead of a new process group.
    pub new_session: bool,
    /// The lock's holder line naming this child (see `procs::Live::pending_line`).
    pub record: Option<Record<'a>>,
}

/// A holder line the child writes into the lock file before it execs, with its own pid
/// as ten digits at `at`.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub fd: BorrowedFd<'a>,
    pub line: &'a [u8],
    pub at: usize,
}

struct ChildArgs<'a> {
    spec: &'a Spec<'a>,
    /// The umask the child gets: the one orc's caller gave (orc keeps 022 for itself).
    umask: Option<libc::mode_t>,
    mask: libc::sigset_t,
    error: AtomicI32,
    /// Room for the child's source fds (3 + extras), allocated by the parent.
    scratch: *mut RawFd,
}

/// A started child: its pid (also its process group) and a pidfd to wait on.
#[derive(Debug)]
pub struct Child {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

thread_local! {
    static STACKS: RefCell<Option<Stack>> = const { RefCell::new(None) };
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The child side. Runs on the borrowed stack, sharing orc's memory until it execs:
/// only raw syscalls, no allocation, no panics.
extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildArgs` the parent keeps alive (it is suspended until exec).
    let a = unsafe { &*(arg as *const ChildArgs) };
    let s = a.spec;
    let fail = |e: i32| -> libc::c_int {
        a.error.store(e, Ordering::SeqCst);
        // SAFETY: ends the child without running any of orc's cleanup.
        unsafe { libc::_exit(127) }
    };
    // SAFETY: plain syscalls on fds and signal state of this child alone (the whole block).
    unsafe {
        let r = if s.new_session {
            libc::setsid()
        } else {
            libc::setpgid(0, 0)
        };
        if r < 0 {
            return fail(errno());
        }
        if let Some(r) = &s.record {
            record_self(r.fd.as_raw_fd(), r.line, r.at);
        }
        // Move every source out of the target range first, so no dup2 clobbers another source.
        let n = s.extra.len();
        let top = 3 + n as i32;
        let src = std::slice::from_raw_parts_mut(a.scratch, 3 + n);
        for (i, fd) in s.stdio.iter().chain(s.extra).enumerate() {
            let fd = fd.as_raw_fd();
            src[i] = if fd < top && fd != i as i32 {
                libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, top)
            } else {
                fd
            };
            if src[i] < 0 {
                return fail(errno());
            }
        }
        for (target, fd) in src[..3 + n].iter().enumerate() {
            let target = target as i32;
            let r = if *fd == target {
                libc::fcntl(target, libc::F_SETFD, 0)
            } else {
                libc::dup2(*fd, target)
            };
            if r < 0 {
                return fail(errno());
            }
        }
        // Every disposition back to the default (not only orc's own handlers: an ignored
        // signal survives exec), then an empty mask.
        for sig in 1..=LAST_SIGNAL {
            set_default(sig);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        if let Some(m) = a.umask {
            libc::umask(m);
        }
        match &s.program {
            Program::Fd { bash, bash_argv } => {
                libc::syscall(
                    libc::SYS_execveat,
                    3,
                    c"".as_ptr(),
                    s.argv.as_ptr(),
                    s.env.as_ptr(),
                    libc::AT_EMPTY_PATH,
                );
                if errno() == libc::ENOEXEC {
                    libc::execve(bash.as_ptr(), bash_argv.as_ptr(), s.env.as_ptr());
                }
            }
            Program::Script {
                path,
                bash,
                bash_argv,
            } => {
                libc::execve(path.as_ptr(), s.argv.as_ptr(), s.env.as_ptr());
                if errno() == libc::ENOEXEC {
                    libc::execve(bash.as_ptr(), bash_argv.as_ptr(), s.env.as_ptr());
                }
            }
            Program::Path(p) => {
                libc::execve(p.as_ptr(), s.argv.as_ptr(), s.env.as_ptr());
            }
        }
        fail(errno())
    }
}

/// In the child: its pid as ten digits over the placeholder in a copy of the holder line
/// (on the stack: no allocation), then one `pwrite` of the line at offset 0.
///
/// # Safety
/// Raw syscalls only; `line` is the parent's buffer, read here while it is suspended.
unsafe fn record_self(fd: RawFd, line: &[u8], at: usize) {
    let mut buf = [0u8; 1024];
    if line.len() > buf.len() || at + 10 > line.len() {
        return;
    }
    buf[..line.len()].copy_from_slice(line);
    // SAFETY: getpid and pwrite on the child's own state and a stack buffer.
    unsafe {
        let mut pid = libc::syscall(libc::SYS_getpid) as u64;
        for i in (0..10).rev() {
            buf[at + i] = b'0' + (pid % 10) as u8;
            pid /= 10;
        }
        libc::pwrite(fd, buf.as_ptr().cast(), line.len(), 0);
    }
}

/// Starts a child as `spec` says. Exec failures are returned as errors (the child is reaped).
pub fn spawn(spec: &Spec) -> std::io::Result<Child> {
    STACKS.with(|stack| {
        let mut stack = stack.borrow_mut();
        if stack.is_none() {
            *stack = Some(Stack::map()?);
        }
        let top = stack.as_ref().expect("mapped").top();
        // SAFETY: `stack` is ours for the clone's duration (the thread is suspended by
        // CLONE_VFORK until the child execs or exits); the mask calls only touch this thread.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            let mut scratch: Vec<RawFd> = vec![-1; 3 + spec.extra.len()];
            let mut args = ChildArgs {
                spec,
                umask: crate::signals::caller_umask(),
                mask: std::mem::zeroed(),
                error: AtomicI32::new(0),
                scratch: scratch.as_mut_ptr(),
            };
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut args.mask);
            let mut pidfd: libc::c_int = -1;
            let pid = libc::clone(
                child,
                top,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
                (&raw mut args).cast(),
                &mut pidfd as *mut libc::c_int,
            );
            let clone_err = errno();
            libc::pthread_sigmask(libc::SIG_SETMASK, &args.mask, std::ptr::null_mut());
            if pid < 0 {
                return Err(std::io::Error::from_raw_os_error(clone_err));
            }
            let pidfd = OwnedFd::from_raw_fd(pidfd);
            match args.error.load(Ordering::SeqCst) {
                0 => Ok(Child { pid, pidfd }),
                e => {
                    let mut status = 0;
                    libc::waitpid(pid, &mut status, 0);
                    Err(std::io::Error::from_raw_os_error(e))
                }
            }
        }
    })
}

/// Sends `sig` to the child itself through its pidfd: reaches a leader that left its
/// process group. A child already gone is no error.
pub fn signal(child: &Child, sig: i32) {
    // SAFETY: pidfd_send_signal on a pidfd we own, with no siginfo.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            child.pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
    }
}

/// How a child ended: `Ok(code)` or `Err(signal)`. `None` while it runs (`block`: wait).
/// Raw `waitid`: nix's turns a real-time signal (`SIGRTMIN+3`) into an error.
pub fn wait(child: &Child, block: bool) -> std::io::Result<Option<Result<i32, i32>>> {
    // SAFETY: waitid fills the zeroed siginfo we own.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let flags = libc::WEXITED | if block { 0 } else { libc::WNOHANG };
        if libc::waitid(
            libc::P_PIDFD,
            child.pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            flags,
        ) < 0
        {
            return Err(std::io::Error::last_os_error());
        }
        if info.si_pid() == 0 {
            return Ok(None);
        }
        let status = info.si_status();
        Ok(Some(match info.si_code {
            libc::CLD_EXITED => Ok(status),
            _ => Err(status),
        }))
    }
}

/// Reaps any exited child of this process group without blocking (orphans adopted as
/// subreaper); true while the group still has live members.
pub fn reap_group(pgid: i32) -> bool {
    use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
    let pg = nix::unistd::Pid::from_raw(pgid);
    // An error ends the loop too: ECHILD (none left), or a status nix cannot name (a
    // real-time signal), whose child the kernel has reaped all the same.
    while let Ok(s) = waitid(Id::PGid(pg), WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
    nix::sys::signal::killpg(pg, None).is_ok()
}

/// Reaps every exited child (orphans adopted as subreaper). Call only where no other
/// thread waits for a child of its own.
pub fn reap_orphans() {
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    while let Ok(s) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn the_child_names_itself_in_the_holder_line_before_it_execs() {
        let d = tempfile::tempdir().unwrap();
        let f = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(d.path().join("lock"))
            .unwrap();
        let line = format!("pid=1 groups=1999999999:5:105{}\n", " ".repeat(30)).into_bytes();
        let null = std::fs::File::open("/dev/null").unwrap();
        let n = null.as_fd();
        let argv = CArgs::new(["true"]);
        let env = CArgs::new(Vec::<String>::new());
        let envp = env.envp();
        let spec = Spec {
            program: Program::Path(c"/bin/true"),
            argv: &argv,
            env: &envp,
            stdio: [n, n, n],
            extra: &[],
            new_session: false,
            record: Some(Record {
                fd: f.as_fd(),
                line: &line,
                at: 13,
            }),
        };
        let child = spawn(&spec).unwrap();
        wait(&child, true).unwrap();
        let text = std::fs::read_to_string(d.path().join("lock")).unwrap();
        assert_eq!(text.len(), line.len());
        assert!(
            text.starts_with(&format!("pid=1 groups={:010}:5:105", child.pid)),
            "{text:?}"
        );
    }
}
