//! SIGTERM and SIGINT sent to orc: caught once per process into a flag and a
//! self-pipe that `poll` can wait on (never drained: it stays readable, so
//! every waiting thread wakes), so a running step can be told and waited
//! for. Process-wide by nature (signal dispositions are), so a module, not a value.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use crate::error::{Context, Result};

/// The signals orc handles (their dispositions are reset in every child).
pub const HANDLED: [Signal; 2] = [Signal::SIGTERM, Signal::SIGINT];

static PENDING: AtomicI32 = AtomicI32::new(0);
/// The write end of the self-pipe (set before the handlers are installed).
static WAKE: OnceLock<OwnedFd> = OnceLock::new();
static PIPE: OnceLock<OwnedFd> = OnceLock::new();

extern "C" fn on_signal(sig: libc::c_int) {
    PENDING.store(sig, Ordering::SeqCst);
    // OnceLock::get is an atomic load and write(2) is async-signal-safe.
    if let Some(w) = WAKE.get() {
        let _ = nix::unistd::write(w, &[1u8]);
    }
}

/// The highest signal number (real-time signals included).
pub const LAST_SIGNAL: i32 = 64;

/// Undoes the process state orc may inherit (a service manager, a shell with traps, a
/// parent that ignored SIGCHLD or blocked signals): every disposition back to the
/// default and an empty signal mask. SIGPIPE stays ignored, as Rust's runtime set it
/// (a closed stdout is an error to report, not a death); children get it default.
pub fn reset_inherited() {
    // 32 and 33 are the C library's own in this process (thread cancel, set*id); every
    // child gets them default too (see `set_default`).
    let own = |s: &i32| *s != libc::SIGPIPE && (*s < 32 || *s >= libc::SIGRTMIN());
    for sig in (1..=LAST_SIGNAL).filter(own) {
        set_default(sig);
    }
    #[allow(unsafe_code)]
    // SAFETY: sigprocmask with an empty set we own.
    unsafe {
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// Sets `sig`'s disposition to the default with the raw system call: the C library's
/// wrapper refuses the signals it reserves (32, 33), which a caller can still have left
/// ignored. Async-signal-safe (used in the spawn child). SIGKILL and SIGSTOP fail and
/// stay as they are.
pub fn set_default(sig: i32) {
    // The kernel's `struct sigaction`: handler, flags, restorer, mask; all zero is
    // SIG_DFL with no flags and an empty mask.
    let dfl = [0u64; 4];
    #[allow(unsafe_code)]
    // SAFETY: rt_sigaction reads the zeroed action we own; the old action is not asked.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            dfl.as_ptr(),
            std::ptr::null_mut::<u64>(),
            8usize,
        );
    }
}

/// Installs the handlers; later calls do nothing.
pub fn install() -> Result<()> {
    if PIPE.get().is_some() {
        return Ok(());
    }
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .ctx(|| "creating the signal pipe")?;
    let _ = WAKE.set(w);
    let _ = PIPE.set(r);
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in HANDLED {
        #[allow(unsafe_code)]
        // SAFETY: the handler only touches atomics and write(2).
        unsafe { sigaction(sig, &action) }.ctx(|| format!("installing a {sig} handler"))?;
    }
    Ok(())
}

/// The signal orc received, if any.
pub fn pending() -> Option<i32> {
    match PENDING.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The read end of the self-pipe (readable once a signal arrived).
pub fn fd() -> Option<BorrowedFd<'static>> {
    PIPE.get().map(|p| p.as_fd())
}

/// Sleeps until `d` passes or a signal arrives.
pub fn sleep(d: Duration) {
    match fd() {
        Some(fd) => {
            let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
            let _ = poll(&mut fds, poll_timeout(Some(d)));
        }
        None => std::thread::sleep(d),
    }
}

/// A poll timeout for `d` (rounded up to the millisecond; `None` = forever; capped at a minute).
pub fn poll_timeout(d: Option<Duration>) -> PollTimeout {
    match d {
        None => PollTimeout::NONE,
        Some(d) => {
            let ms = d
                .as_millis()
                .saturating_add(u128::from(d.subsec_nanos() % 1_000_000 != 0));
            PollTimeout::try_from(ms.min(60_000) as i32).unwrap_or(PollTimeout::MAX)
        }
    }
}
