//! Running one child process safely: its own process group, stdin from
//! /dev/null, output relayed unchanged while its tail is kept (or captured),
//! a deadline enforced with SIGTERM → grace → SIGKILL on the whole group, and
//! SIGTERM or SIGINT sent to orc forwarded to the group and waited for. orc is
//! a child subreaper, so it reaps the orphans its steps leave. Output that a
//! step's background processes still hold when it ends keeps flowing: relayed
//! by a thread while orc runs, then by a relay process orc leaves behind.

mod cgroup;
mod relay;
pub mod spawn;

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, poll};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::error::{Context, Error, Result};
use crate::procs::{self, Group};
use crate::signals;
pub use spawn::{CArgs, Program};

/// How much of a step's output the report keeps.
pub const TAIL_BYTES: usize = 8 * 1024;
/// The most stdout a captured command may print.
pub const CAPTURE_MAX: usize = 64 << 20;
/// Time between SIGTERM and SIGKILL.
pub use crate::procs::GRACE;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
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
    /// The last [`TAIL_BYTES`] of stdout and stderr, interleaved as read.
    pub tail: Vec<u8>,
    /// stdout, when captured instead of relayed.
    pub captured: Vec<u8>,
}

impl Outcome {
    /// The last `n` non-empty lines of the output tail, joined by ` / `.
    pub fn last_lines(&self, n: usize) -> String {
        let text = String::from_utf8_lossy(&self.tail);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        lines[lines.len().saturating_sub(n)..].join(" / ")
    }

    /// `WHAT failed (exit N): its last line of output` (or `timed out`), for an error.
    pub fn failure(&self, what: &str) -> String {
        let last = self.last_lines(1);
        format!(
            "{what} {} (exit {}){}",
            if self.timed_out {
                "timed out"
            } else {
                "failed"
            },
            self.exit.shell_code(),
            if last.is_empty() {
                String::new()
            } else {
                format!(": {last}")
            }
        )
    }
}

/// Where the child's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// stdout and stderr to orc's own, unchanged; the tail is kept.
    Relay,
    /// stdout captured whole, stderr kept as the tail; nothing relayed.
    Capture,
}

/// One command to run.
pub struct Job<'a> {
    pub program: Program<'a>,
    pub argv: &'a CArgs,
    pub env: &'a CArgs,
    /// One more `NAME=value` for this command alone.
    pub env_extra: Option<&'a std::ffi::CStr>,
    /// Installed at fds 3, 4, ... (for [`Program::Fd`], the first is what runs).
    pub extra: &'a [BorrowedFd<'a>],
    /// Shown in errors.
    pub name: &'a str,
    /// Where the child's process group is recorded while it runs (the lock's holder line).
    pub live: &'a procs::Live,
    /// Not stopped by a signal to orc (a short call that puts something back after it).
    pub shielded: bool,
}

/// `/dev/null`, opened once per process.
fn dev_null() -> Result<BorrowedFd<'static>> {
    static NULL: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = NULL.get() {
        return Ok(fd.as_fd());
    }
    let fd = nix::fcntl::open(
        "/dev/null",
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| "opening /dev/null")?;
    Ok(NULL.get_or_init(|| fd).as_fd())
}

/// `bash`'s path, found on PATH once per process (the fallback for files without `#!`).
pub fn bash() -> Result<&'static CString> {
    static BASH: OnceLock<Option<CString>> = OnceLock::new();
    BASH.get_or_init(|| find_program(OsStr::new("bash")))
        .as_ref()
        .ok_or_else(|| Error::Failed("bash: not found on PATH".into()))
}

/// A program name resolved on PATH (or a path containing `/`, as given).
pub fn find_program(name: &OsStr) -> Option<CString> {
    let found: Option<PathBuf> = if name.as_bytes().contains(&b'/') {
        Some(PathBuf::from(name))
    } else {
        let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok() && p.is_file())
    };
    found.and_then(|p| CString::new(p.into_os_string().into_vec()).ok())
}

use std::os::unix::ffi::OsStringExt;

/// How one read of an output pipe went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pumped {
    Data,
    /// Nothing there now (a shared, non-blocking pipe).
    Empty,
    /// No writer left (a pipe of the command's own), or the pipe failed.
    Eof,
}

/// Where a [`Stream`] reads from.
enum Source {
    /// The command's own pipe (captured output, read to EOF).
    Own(OwnedFd),
    /// This thread's shared relay pipe (read until empty): stdout's, or stderr's.
    Shared(Arc<relay::Pipes>, bool),
    /// At EOF.
    Done,
}

/// An output pipe being read, and where what it reads is relayed.
struct Stream {
    src: Source,
    to_fd: Option<BorrowedFd<'static>>,
    /// Secrets masked in what is relayed (and kept as the tail).
    mask: crate::redact::Masker,
}

thread_local! {
    /// The buffer output is read into, one per thread (not zeroed per read).
    static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 64 * 1024]);
}

impl Stream {
    fn own(pipe: OwnedFd) -> Stream {
        Stream {
            src: Source::Own(pipe),
            to_fd: None,
            mask: Default::default(),
        }
    }

    fn shared(pipes: &Arc<relay::Pipes>, err: bool) -> Stream {
        Stream {
            src: Source::Shared(Arc::clone(pipes), err),
            to_fd: Some(relay::std_fd(if err { 2 } else { 1 })),
            mask: Default::default(),
        }
    }

    fn borrowed(&self) -> Option<BorrowedFd<'_>> {
        match &self.src {
            Source::Own(fd) => Some(fd.as_fd()),
            Source::Shared(p, false) => Some(p.out.as_fd()),
            Source::Shared(p, true) => Some(p.err.as_fd()),
            Source::Done => None,
        }
    }

    /// One read; relays (or captures) what came.
    fn pump(&mut self, tail: &mut Vec<u8>, capture: Option<&mut Vec<u8>>) -> Pumped {
        let (mut mask, to_fd) = (std::mem::take(&mut self.mask), self.to_fd);
        let Some(fd) = self.borrowed() else {
            return Pumped::Eof;
        };
        let got = BUF.with_borrow_mut(|buf| match nix::unistd::read(fd, buf) {
            Ok(0) => Pumped::Eof,
            Ok(n) => {
                let data = &buf[..n];
                match capture {
                    Some(c) if c.len() < CAPTURE_MAX => c.extend_from_slice(data),
                    Some(_) => {}
                    None => {
                        let data = mask.feed(data);
                        if let Some(to) = to_fd {
                            relay::write_all_fd(to, &data);
                        }
                        keep_tail(tail, &data);
                    }
                }
                Pumped::Data
            }
            Err(nix::errno::Errno::EINTR) => Pumped::Data,
            Err(nix::errno::Errno::EAGAIN) => Pumped::Empty,
            Err(_) => Pumped::Eof,
        });
        self.mask = mask;
        if got == Pumped::Eof {
            self.src = Source::Done;
        }
        got
    }

    /// Relays what the masker still holds (the step ended).
    fn flush(&mut self, tail: &mut Vec<u8>) {
        let rest = self.mask.flush();
        if let Some(to) = self.to_fd {
            relay::write_all_fd(to, &rest);
        }
        keep_tail(tail, &rest);
    }

    /// Reads whatever is already there, without waiting.
    fn drain_ready(&mut self, tail: &mut Vec<u8>, mut capture: Option<&mut Vec<u8>>) {
        while let Some(fd) = self.borrowed() {
            if matches!(self.src, Source::Own(_)) {
                let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
                if !matches!(poll(&mut fds, nix::poll::PollTimeout::ZERO), Ok(n) if n > 0) {
                    return;
                }
            }
            if self.pump(tail, capture.as_deref_mut()) != Pumped::Data {
                return;
            }
        }
    }
}

fn keep_tail(tail: &mut Vec<u8>, data: &[u8]) {
    tail.extend_from_slice(data);
    if tail.len() > 4 * TAIL_BYTES {
        tail.drain(..tail.len() - TAIL_BYTES);
    }
}

/// At orc's exit: see [`relay::hand_off`].
pub fn hand_off_output() {
    // The relay never reads its stdin: orc's stderr serves should /dev/null not open.
    relay::hand_off(dev_null().unwrap_or(relay::std_fd(2)));
}

/// `orc relay [--masks=FD] 3:1 4:2 …`: see [`relay::relay`]. Malformed pairs, or fds not
/// inherited open, are invalid input.
pub fn relay(pairs: &[String], masks: Option<i32>) -> Result<i32> {
    let bad = || {
        crate::error::invalid(
            "relay: pairs are FD:TO, each FD an inherited open fd (3 or more, once), TO 1 or 2",
        )
    };
    let p = relay::inherited(pairs).ok_or_else(bad)?;
    let m = match masks {
        Some(fd) => Some(relay::inherited_masks(fd, &p).ok_or_else(bad)?),
        None => None,
    };
    Ok(relay::relay(p, m))
}

/// Makes orc the reaper of its steps' orphans.
pub fn become_subreaper() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        log::debug!("cannot become a child subreaper: {e}");
    }
}

/// The process group a started child leads, with the tick window of its start.
fn group_of(pid: i32, before: u64) -> Group {
    Group {
        pgid: pid,
        from: before,
        to: procs::now_ticks(),
    }
}

/// The state of one running child.
struct Run {
    shielded: bool,
    group: Pid,
    child: spawn::Child,
    /// The step's own cgroup, where orc's is delegated.
    cgroup: Option<cgroup::StepCgroup>,
    out: Stream,
    err: Stream,
    tail: Vec<u8>,
    captured: Vec<u8>,
    exit: Option<Exit>,
    timed_out: bool,
    interrupted: Option<i32>,
    kill_at: Option<Instant>,
    killed: bool,
}

impl Run {
    fn stopping(&self) -> bool {
        self.timed_out || self.interrupted.is_some()
    }

    /// Signals and deadlines: forward, TERM, then KILL after the grace.
    fn enforce(&mut self, deadline: Option<Instant>, now: Instant) {
        if self.interrupted.is_none()
            && !self.shielded
            && let Some(sig) = signals::pending()
        {
            // The self-pipe is not drained: it stays readable, so every thread waiting on
            // a child of its own wakes and forwards the signal too.
            self.interrupted = Some(sig);
            self.signal(Signal::try_from(sig).unwrap_or(Signal::SIGTERM));
            self.kill_at.get_or_insert(now + GRACE);
        }
        if !self.stopping() && deadline.is_some_and(|d| now >= d) {
            self.timed_out = true;
            self.signal(Signal::SIGTERM);
            self.kill_at = Some(now + GRACE);
        }
        if !self.killed && self.kill_at.is_some_and(|k| now >= k) {
            self.killed = true;
            self.signal(Signal::SIGKILL);
        }
    }

    /// Signals the step's process group, and its leader through the pidfd when it left
    /// the group (a leader still in it gets the signal once, from the group's).
    fn signal(&self, sig: Signal) {
        let _ = killpg(self.group, sig);
        if let Some(cg) = &self.cgroup {
            cg.signal(sig);
        }
        let left = nix::unistd::getpgid(Some(Pid::from_raw(self.child.pid)))
            .is_ok_and(|pg| pg != self.group);
        if self.exit.is_none() && left {
            spawn::signal(&self.child, sig as i32);
        }
    }

    /// After the child exited: true when the step is over. A normal end leaves background
    /// processes running (their output detached); a stopped one waits for the whole group.
    fn finished(&mut self, capture: bool, now: Instant) -> bool {
        if capture {
            // The command's own pipes: read to the end of what is there.
            self.out
                .drain_ready(&mut self.tail, Some(&mut self.captured));
            self.err.drain_ready(&mut self.tail, None);
        }
        // Stopped: wait for the whole group to be gone (orphans reaped as they exit). A
        // process that left the group (setsid) and still holds the output is not waited
        // for: its output is detached like a daemon's.
        let given_up = self.kill_at.is_some_and(|k| now >= k + GRACE);
        let live = spawn::reap_group(self.group.as_raw())
            | self
                .cgroup
                .as_ref()
                .is_some_and(cgroup::StepCgroup::populated);
        !(self.stopping() && live && !given_up)
    }

    /// Waits for the next event (output, exit, signal, deadline).
    fn wait(&mut self, deadline: Option<Instant>, now: Instant, capture: bool) -> Result<()> {
        let mut fds = Vec::with_capacity(4);
        let mut who = Vec::with_capacity(4);
        // The pidfd first: when poll finds the child gone, the pipes, checked after it,
        // already show all it wrote, so no empty read is needed to be sure.
        if self.exit.is_none() {
            fds.push(PollFd::new(self.child.pidfd.as_fd(), PollFlags::POLLIN));
            who.push(2);
        }
        for (i, s) in [&self.out, &self.err].into_iter().enumerate() {
            if let Some(p) = s.borrowed() {
                fds.push(PollFd::new(p, PollFlags::POLLIN));
                who.push(i);
            }
        }
        if self.interrupted.is_none()
            && !self.shielded
            && let Some(fd) = signals::fd()
        {
            fds.push(PollFd::new(fd, PollFlags::POLLIN));
            who.push(3);
        }
        let mut wait = [
            deadline.filter(|_| !self.stopping()),
            self.kill_at.filter(|_| !self.killed),
        ]
        .into_iter()
        .flatten()
        .map(|t| t.saturating_duration_since(now))
        .min();
        if self.exit.is_some() {
            wait = Some(wait.map_or(Duration::from_millis(20), |w| {
                w.min(Duration::from_millis(20))
            }));
        }
        match poll(&mut fds, signals::poll_timeout(wait)) {
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
        let exited = ready.contains(&2);
        for (i, s) in [&mut self.out, &mut self.err].into_iter().enumerate() {
            if ready.contains(&i) {
                let cap = (capture && i == 0).then_some(&mut self.captured);
                // At the exit, all the child wrote is read now.
                if exited {
                    s.drain_ready(&mut self.tail, cap);
                } else {
                    s.pump(&mut self.tail, cap);
                }
            }
        }
        if exited
            && let Some(end) = spawn::wait(&self.child, false).ctx(|| "waiting for a child")?
        {
            self.exit = Some(match end {
                Ok(c) => Exit::Code(c),
                Err(s) => Exit::Signal(s),
            });
        }
        Ok(())
    }
}

/// Runs `job` in its own process group under `deadline`. The group is registered while it
/// runs (`job.live`), so the lock's holder line names it should orc die.
pub fn run(job: &Job, deadline: Option<Instant>, output: Output) -> Result<Outcome> {
    let null = dev_null()?;
    let capture = output == Output::Capture;
    // Captured output gets pipes of its own (read to EOF); relayed output goes through
    // this thread's shared relay pipes, made once.
    let (out, err, own_writers, pipes) = if capture {
        let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx(|| "creating a pipe")?;
        let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx(|| "creating a pipe")?;
        (
            Stream::own(out_r),
            Stream::own(err_r),
            Some((out_w, err_w)),
            None,
        )
    } else {
        let p = relay::pipes()?;
        (
            Stream::shared(&p, false),
            Stream::shared(&p, true),
            None,
            Some(p),
        )
    };
    // The relay pipes' write ends stay held (not closed at exit) until the child has them.
    let shared = pipes.as_ref().map(|p| p.writers());
    let writers = match (&own_writers, shared.as_deref()) {
        (Some((o, e)), _) | (None, Some(Some((o, e)))) => [o.as_fd(), e.as_fd()],
        _ => {
            return Err(Error::Failed(format!(
                "starting {}: output closed",
                job.name
            )));
        }
    };
    let envp = match job.env_extra {
        Some(e) => job.env.with(e),
        None => job.env.envp(),
    };
    let before = procs::now_ticks();
    let pending = job.live.pending_line(before);
    let step_cgroup = cgroup::StepCgroup::new();
    let spec = spawn::Spec {
        program: match &job.program {
            Program::Fd { bash, bash_argv } => Program::Fd { bash, bash_argv },
            Program::Script {
                path,
                bash,
                bash_argv,
            } => Program::Script {
                path,
                bash,
                bash_argv,
            },
            Program::Path(p) => Program::Path(p),
        },
        argv: job.argv,
        env: &envp,
        stdio: [null, writers[0], writers[1]],
        extra: job.extra,
        new_session: false,
        record: pending.as_ref().map(|p| spawn::Record {
            fd: p.file.as_fd(),
            line: &p.line,
            at: p.at,
        }),
        cgroup: step_cgroup.as_ref().map(cgroup::StepCgroup::procs),
    };
    let child = spawn::spawn(&spec).ctx(|| format!("starting {}", job.name))?;
    drop(shared);
    drop(own_writers);
    job.live.started(group_of(child.pid, before));
    let pgid = child.pid;
    let mut r = Run {
        shielded: job.shielded,
        group: Pid::from_raw(child.pid),
        child,
        cgroup: step_cgroup,
        out,
        err,
        tail: Vec::new(),
        captured: Vec::new(),
        exit: None,
        timed_out: false,
        interrupted: None,
        kill_at: None,
        killed: false,
    };
    let waited = (|| -> Result<()> {
        loop {
            let now = Instant::now();
            r.enforce(deadline, now);
            if r.exit.is_some() && r.finished(capture, now) {
                return Ok(());
            }
            r.wait(deadline, now, capture)?;
        }
    })();
    job.live.ended(pgid);
    r.out.flush(&mut r.tail);
    r.err.flush(&mut r.tail);
    waited?;
    if r.tail.len() > TAIL_BYTES {
        r.tail.drain(..r.tail.len() - TAIL_BYTES);
    }
    Ok(Outcome {
        exit: r.exit.unwrap_or(Exit::Signal(9)),
        timed_out: r.timed_out,
        interrupted: r.interrupted,
        tail: r.tail,
        captured: r.captured,
    })
}
