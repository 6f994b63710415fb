//! The output pipes of relayed steps: one stdout and one stderr pipe per thread,
//! made once and kept across steps (a step's output is read as it comes, and
//! its tail kept), so a step costs no pipe of its own. Background processes a
//! step leaves keep writing into them; at orc's exit, pipes such processes
//! still hold are handed to a relay process (`orc relay`), so daemons keep a
//! working stdout and stderr after orc is gone.

use std::cell::RefCell;
use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::spawn::{self, CArgs, Program};
use crate::error::{Context, Result};

/// A thread's relay pipes: the read ends (non-blocking, orc's) and the write ends the
/// steps get as their fds 1 and 2 (closed at exit, before the hand-off).
#[derive(Debug)]
pub struct Pipes {
    pub out: OwnedFd,
    pub err: OwnedFd,
    writers: Mutex<Option<(OwnedFd, OwnedFd)>>,
}

impl Pipes {
    /// The write ends, while they are open: held for the spawn, so they cannot be closed
    /// (and their numbers reused) before the child has its own copies.
    pub fn writers(&self) -> MutexGuard<'_, Option<(OwnedFd, OwnedFd)>> {
        self.writers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Every thread's pipes.
static ALL: Mutex<Vec<Arc<Pipes>>> = Mutex::new(Vec::new());

thread_local! {
    static MINE: RefCell<Option<Arc<Pipes>>> = const { RefCell::new(None) };
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).ctx(|| "creating a pipe")?;
    fcntl(&r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).ctx(|| "fcntl")?;
    Ok((r, w))
}

/// This thread's relay pipes, made on first use.
pub fn pipes() -> Result<Arc<Pipes>> {
    MINE.with_borrow_mut(|mine| {
        if let Some(p) = mine {
            return Ok(Arc::clone(p));
        }
        let (out, out_w) = pipe()?;
        let (err, err_w) = pipe()?;
        let p = Arc::new(Pipes {
            out,
            err,
            writers: Mutex::new(Some((out_w, err_w))),
        });
        ALL.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::clone(&p));
        *mine = Some(Arc::clone(&p));
        Ok(p)
    })
}

pub fn write_all_fd(fd: BorrowedFd, mut buf: &[u8]) {
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

/// orc's own stdout (1) or stderr (2: any other `n`), open for the whole process.
#[allow(unsafe_code)]
pub fn std_fd(n: i32) -> BorrowedFd<'static> {
    // SAFETY: fds 1 and 2 are open for the life of the process: Rust's runtime opens
    // /dev/null on any of 0-2 found closed at start, and orc never closes them.
    unsafe { BorrowedFd::borrow_raw(if n == 1 { 1 } else { 2 }) }
}

/// Copies what is in a non-blocking pipe to `to`; true once no writer is left.
fn drain(from: &OwnedFd, to: BorrowedFd) -> bool {
    let mut buf = [0u8; 16 * 1024];
    let mut mask = crate::redact::Masker::default();
    let done = loop {
        match nix::unistd::read(from, &mut buf) {
            Ok(0) => break true,
            Ok(n) => write_all_fd(to, &mask.feed(&buf[..n])),
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => break false,
        }
    };
    write_all_fd(to, &mask.flush());
    done
}

/// At orc's exit: closes orc's write ends, relays what is left, and hands pipes that
/// background processes still hold to a relay process.
pub fn hand_off(dev_null: BorrowedFd) {
    let all = std::mem::take(
        &mut *ALL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let mut held: Vec<(OwnedFd, i32)> = Vec::new();
    for p in all {
        drop(p.writers().take());
        for (r, to) in [(&p.out, 1), (&p.err, 2)] {
            if !drain(r, std_fd(to))
                && let Ok(dup) = r.try_clone()
            {
                held.push((dup, to));
            }
        }
    }
    if held.is_empty() {
        return;
    }
    let mut args: Vec<OsString> = vec!["orc".into(), "relay".into()];
    args.extend(
        held.iter()
            .enumerate()
            .map(|(i, (_, to))| format!("{}:{to}", i + 3).into()),
    );
    let exe = CString::new("/proc/self/exe").expect("no NUL");
    let argv = CArgs::new(&args);
    let env = CArgs::new(Vec::<OsString>::new());
    let envp = env.envp();
    let extra: Vec<BorrowedFd> = held.iter().map(|(fd, _)| fd.as_fd()).collect();
    let spec = spawn::Spec {
        program: Program::Path(&exe),
        argv: &argv,
        env: &envp,
        stdio: [dev_null, std_fd(1), std_fd(2)],
        extra: &extra,
        new_session: true,
        record: None,
    };
    match spawn::spawn(&spec) {
        Ok(c) => log::debug!("output of background processes handed to relay {}", c.pid),
        Err(e) => log::warn!("cannot start the output relay for background processes: {e}"),
    }
}

/// The `FD:TO` pairs of `orc relay`: each FD an open fd this process inherited (3 or
/// more, named once), each TO 1 or 2. They are taken over as owned fds; `None` when a
/// pair is malformed, names an fd that is not open, or names one twice.
pub fn inherited(pairs: &[String]) -> Option<Vec<(OwnedFd, BorrowedFd<'static>)>> {
    let mut nums: Vec<(i32, i32)> = Vec::with_capacity(pairs.len());
    for p in pairs {
        let (a, b) = p.split_once(':')?;
        let (fd, to): (i32, i32) = (a.parse().ok()?, b.parse().ok()?);
        let open = fcntl(probe(fd)?, FcntlArg::F_GETFD).is_ok();
        if fd < 3 || !(1..=2).contains(&to) || !open || nums.iter().any(|(f, _)| *f == fd) {
            return None;
        }
        nums.push((fd, to));
    }
    #[allow(unsafe_code)]
    // SAFETY: each fd was inherited open, is named once, and nothing else in this process
    // (the `orc relay` command) owns it: it is taken over here, once.
    let owned = nums
        .into_iter()
        .map(|(fd, to)| (unsafe { OwnedFd::from_raw_fd(fd) }, std_fd(to)))
        .collect();
    Some(owned)
}

/// A borrow of a number that may not be an fd at all, for a check (`None` below 0).
#[allow(unsafe_code)]
fn probe(fd: i32) -> Option<BorrowedFd<'static>> {
    // SAFETY: used only for fcntl(F_GETFD), which fails cleanly on a closed fd.
    (fd >= 0).then(|| unsafe { BorrowedFd::borrow_raw(fd) })
}

/// `orc relay 3:1 4:2 …`: copies each fd to its target until every one is at EOF.
pub fn relay(pairs: Vec<(OwnedFd, BorrowedFd<'static>)>) -> i32 {
    let mut open = pairs;
    for (fd, _) in &open {
        // Inherited non-blocking from orc: wait in poll instead.
        let _ = fcntl(fd, FcntlArg::F_SETFL(OFlag::empty()));
    }
    let mut buf = [0u8; 32 * 1024];
    while !open.is_empty() {
        let mut fds: Vec<PollFd> = open
            .iter()
            .map(|(fd, _)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
            .collect();
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut i = 0;
        open.retain(|(fd, to)| {
            let r = ready[i];
            i += 1;
            if !r {
                return true;
            }
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) | Err(_) => false,
                Ok(n) => {
                    write_all_fd(*to, &buf[..n]);
                    true
                }
            }
        });
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;

    #[test]
    fn relay_takes_over_only_inherited_open_fds_named_once() {
        let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for bad in [&["x"][..], &["1:2"], &["999999:1"], &["-1:1"], &["0:1"]] {
            assert!(inherited(&strs(bad)).is_none(), "{bad:?}");
        }
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let n = r.into_raw_fd();
        assert!(inherited(&strs(&[&format!("{n}:3")])).is_none(), "target 3");
        assert!(
            inherited(&strs(&[&format!("{n}:1"), &format!("{n}:2")])).is_none(),
            "named twice"
        );
        let got = inherited(&strs(&[&format!("{n}:2")])).expect("open, inherited");
        assert_eq!(got.len(), 1);
        drop(w);
        assert_eq!(relay(got), 0, "EOF ends the relay");
    }
}
