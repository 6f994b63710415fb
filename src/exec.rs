//! Running one child process safely: its own process group, stdin from
//! /dev/null, output relayed unchanged while its tail is kept, a deadline
//! enforced with SIGTERM → grace → SIGKILL on the whole group, and SIGTERM or
//! SIGINT sent to orc forwarded to the group and waited for.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, killpg, sigaction};
use nix::unistd::Pid;

use crate::error::{Context, Result};

/// How much of a step's output the report keeps.
pub const TAIL_BYTES: usize = 8 * 1024;
/// Time between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(10);

static PENDING: AtomicI32 = AtomicI32::new(0);
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    PENDING.store(sig, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
        unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
    }
}

/// SIGTERM/SIGINT caught into a flag and a self-pipe that `poll` can wait on.
pub struct Signals {
    wake: OwnedFd,
}

impl Signals {
    /// Installs the handlers (once per process).
    pub fn install() -> Result<Signals> {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .ctx(|| "creating the signal pipe")?;
        WAKE_FD.store(w.as_raw_fd(), Ordering::SeqCst);
        std::mem::forget(w);
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::empty(),
            SigSet::empty(),
        );
        for sig in [Signal::SIGTERM, Signal::SIGINT] {
            // SAFETY: the handler only touches atomics and write(2).
            unsafe { sigaction(sig, &action) }.ctx(|| format!("installing a {sig} handler"))?;
        }
        Ok(Signals { wake: r })
    }

    /// The signal orc received, if any.
    pub fn pending(&self) -> Option<i32> {
        match PENDING.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    fn drain(&self) {
        let mut buf = [0u8; 64];
        while nix::unistd::read(&self.wake, &mut buf).is_ok_and(|n| n > 0) {}
    }

    /// Sleeps until `d` passes or a signal arrives.
    pub fn sleep(&self, d: Duration) {
        let mut fds = [PollFd::new(self.fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, timeout_of(Some(d)));
        self.drain();
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    fn of(s: ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match (s.code(), s.signal()) {
            (Some(c), _) => Exit::Code(c),
            (None, Some(sig)) => Exit::Signal(sig),
            (None, None) => Exit::Code(255),
        }
    }

    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }

    /// The shell's convention: the code, or 128 + signal.
    pub fn shell_code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// What happened to a finished process.
#[derive(Debug)]
pub struct Outcome {
    pub exit: Exit,
    pub timed_out: bool,
    /// The signal orc received and forwarded while this ran.
    pub interrupted: Option<i32>,
    /// The last [`TAIL_BYTES`] of relayed stdout and stderr, interleaved as read.
    pub tail: Vec<u8>,
    /// stdout, when captured instead of relayed.
    pub captured: Vec<u8>,
}

/// Where the child's stdout goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdout {
    Relay,
    Capture,
}

fn set_nonblocking(fd: BorrowedFd, on: bool) -> Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).ctx(|| "fcntl")?);
    let flags = if on {
        flags | OFlag::O_NONBLOCK
    } else {
        flags - OFlag::O_NONBLOCK
    };
    fcntl(fd, FcntlArg::F_SETFL(flags)).ctx(|| "fcntl")?;
    Ok(())
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: a plain syscall; a non-negative result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn timeout_of(d: Option<Duration>) -> PollTimeout {
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

fn write_all_fd(fd: i32, mut buf: &[u8]) {
    // SAFETY: fd 1 and 2 stay open for the life of the process.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::from(100u8));
            }
            Err(_) => return,
        }
    }
}

/// An output pipe being relayed to one of orc's own fds.
struct Stream<R> {
    pipe: Option<R>,
    to_fd: i32,
}

impl<R: Read + AsFd> Stream<R> {
    /// Reads what is there; relays or captures it. Returns false at EOF.
    fn pump(&mut self, tail: &mut Vec<u8>, capture: Option<&mut Vec<u8>>) -> bool {
        let Some(pipe) = self.pipe.as_mut() else {
            return false;
        };
        let mut buf = [0u8; 16 * 1024];
        let mut capture = capture;
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => {
                    self.pipe = None;
                    return false;
                }
                Ok(n) => {
                    if let Some(c) = capture.as_deref_mut() {
                        c.extend_from_slice(&buf[..n]);
                        continue;
                    }
                    write_all_fd(self.to_fd, &buf[..n]);
                    tail.extend_from_slice(&buf[..n]);
                    if tail.len() > 4 * TAIL_BYTES {
                        tail.drain(..tail.len() - TAIL_BYTES);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(_) => {
                    self.pipe = None;
                    return false;
                }
            }
        }
    }

    /// Hands a pipe still held open by background processes to a thread that relays it to EOF.
    fn detach(&mut self) -> bool
    where
        R: Send + 'static,
    {
        let Some(mut pipe) = self.pipe.take() else {
            return false;
        };
        let to_fd = self.to_fd;
        let _ = set_nonblocking(pipe.as_fd(), false);
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                write_all_fd(to_fd, &buf[..n]);
            }
        });
        true
    }
}

fn group_alive(pgid: Pid) -> bool {
    killpg(pgid, None).is_ok()
}

/// Spawns `cmd` in its own process group and waits for it under `deadline`.
pub fn run(
    mut cmd: Command,
    deadline: Option<Instant>,
    stdout: Stdout,
    signals: &Signals,
) -> Result<Outcome> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child: Child = cmd.spawn().ctx(|| format!("starting {program}"))?;
    let pgid = Pid::from_raw(child.id() as i32);
    let pidfd = pidfd_open(child.id());
    let mut out: Stream<ChildStdout> = Stream {
        pipe: child.stdout.take(),
        to_fd: 1,
    };
    let mut err: Stream<ChildStderr> = Stream {
        pipe: child.stderr.take(),
        to_fd: 2,
    };
    for fd in [
        out.pipe.as_ref().map(|p| p.as_fd()),
        err.pipe.as_ref().map(|p| p.as_fd()),
    ]
    .into_iter()
    .flatten()
    {
        set_nonblocking(fd, true)?;
    }
    let mut tail = Vec::new();
    let mut captured = Vec::new();
    let mut exit: Option<Exit> = None;
    let mut timed_out = false;
    let mut interrupted = None;
    let mut kill_at: Option<Instant> = None;
    let mut killed = false;
    let mut detached = false;
    loop {
        let now = Instant::now();
        if interrupted.is_none()
            && let Some(sig) = signals.pending()
        {
            signals.drain();
            interrupted = Some(sig);
            let _ = killpg(pgid, Signal::try_from(sig).unwrap_or(Signal::SIGTERM));
            kill_at.get_or_insert(now + GRACE);
        }
        if !timed_out && interrupted.is_none() && deadline.is_some_and(|d| now >= d) {
            timed_out = true;
            let _ = killpg(pgid, Signal::SIGTERM);
            kill_at = Some(now + GRACE);
        }
        if !killed && kill_at.is_some_and(|k| now >= k) {
            killed = true;
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        let stopping = timed_out || interrupted.is_some();
        if exit.is_some() {
            let pipes_open = out.pipe.is_some() || err.pipe.is_some();
            if !stopping || killed {
                detached = out.detach() | err.detach();
                break;
            }
            if !pipes_open && !group_alive(pgid) {
                break;
            }
        }
        let mut fds = Vec::with_capacity(4);
        let mut who = Vec::with_capacity(4);
        if let Some(p) = &out.pipe {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            who.push(0);
        }
        if let Some(p) = &err.pipe {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            who.push(1);
        }
        if exit.is_none()
            && let Some(p) = &pidfd
        {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            who.push(2);
        }
        fds.push(PollFd::new(signals.fd(), PollFlags::POLLIN));
        who.push(3);
        let mut wait = [deadline.filter(|_| !timed_out), kill_at.filter(|_| !killed)]
            .into_iter()
            .flatten()
            .map(|t| t.saturating_duration_since(now))
            .min();
        if (exit.is_none() && pidfd.is_none()) || exit.is_some() {
            wait = Some(wait.map_or(Duration::from_millis(20), |w| {
                w.min(Duration::from_millis(20))
            }));
        }
        match poll(&mut fds, timeout_of(wait)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e).ctx(|| "poll"),
        }
        let ready: Vec<usize> = fds
            .iter()
            .zip(&who)
            .filter(|(f, _)| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|(_, w)| *w)
            .collect();
        drop(fds);
        let cap = (stdout == Stdout::Capture).then_some(&mut captured);
        if ready.contains(&0) {
            out.pump(&mut tail, cap);
        }
        if ready.contains(&1) {
            err.pump(&mut tail, None);
        }
        if exit.is_none()
            && (ready.contains(&2) || pidfd.is_none())
            && let Some(status) = child.try_wait().ctx(|| format!("waiting for {program}"))?
        {
            exit = Some(Exit::of(status));
            let cap = (stdout == Stdout::Capture).then_some(&mut captured);
            out.pump(&mut tail, cap);
            err.pump(&mut tail, None);
        }
    }
    if detached {
        log::warn!(
            "{program} left background processes holding its output open; their output is no longer kept"
        );
    }
    if tail.len() > TAIL_BYTES {
        tail.drain(..tail.len() - TAIL_BYTES);
    }
    Ok(Outcome {
        exit: exit.unwrap_or(Exit::Signal(9)),
        timed_out,
        interrupted,
        tail,
        captured,
    })
}
