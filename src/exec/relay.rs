//! The output pipes of relayed steps: one stdout and one stderr pipe per thread,
//! made once and kept across steps (a step's output is read as it comes, and
//! its tail kept), so a step costs no pipe of its own. Background processes a
//! step leaves keep writing into them; at orc's exit, pipes such processes
//! still hold are handed to a relay process (`orc relay`), so daemons keep a
//! working stdout and stderr after orc is gone. The relay masks secrets as orc
//! does: it reads them (and the bytes orc held back as a possible secret's
//! start) from a memfd orc hands it, never from its argv or environment.

use std::cell::RefCell;
use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::spawn::{self, CArgs, Program};
use crate::error::{Context, Result};
use crate::redact::Masker;

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

/// Copies what is in a non-blocking pipe to `to`, masked; `None` once no writer is left,
/// else the masker, whose held-back bytes the relay goes on from.
fn drain(from: &OwnedFd, to: BorrowedFd) -> Option<Masker> {
    let mut buf = [0u8; 16 * 1024];
    let mut mask = Masker::default();
    loop {
        match nix::unistd::read(from, &mut buf) {
            Ok(0) => {
                write_all_fd(to, &mask.flush());
                return None;
            }
            Ok(n) => write_all_fd(to, &mask.feed(&buf[..n])),
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return Some(mask),
        }
    }
}

/// What the relay masks with: every secret, an empty record, then each held pipe's
/// held-back bytes (none holds a NUL: environment values cannot), in a memfd.
fn masks(held: &[(OwnedFd, i32, Masker)]) -> Result<OwnedFd> {
    use std::io::Write;
    let mut data = Vec::new();
    for v in crate::redact::values() {
        data.extend_from_slice(v.as_bytes());
        data.push(0);
    }
    data.push(0);
    for (.., m) in held {
        data.extend_from_slice(m.pending());
        data.push(0);
    }
    let fd =
        nix::sys::memfd::memfd_create(c"orc-relay-masks", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .ctx(|| "memfd_create")?;
    let mut f = std::fs::File::from(fd);
    f.write_all(&data).ctx(|| "writing the relay's masks")?;
    Ok(OwnedFd::from(f))
}

/// Reads [`masks`] back: registers the secrets, returns the held-back bytes per pipe.
fn read_masks(fd: OwnedFd, pipes: usize) -> Vec<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let mut off = 0;
    while let Ok(n) = nix::sys::uio::pread(&fd, &mut buf, off) {
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        off += n as i64;
    }
    drop(fd);
    let mut records = data.split(|b| *b == 0);
    let secrets: Vec<String> = records
        .by_ref()
        .take_while(|r| !r.is_empty())
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .collect();
    crate::redact::add(secrets);
    (0..pipes)
        .map(|_| records.next().unwrap_or_default().to_vec())
        .collect()
}

/// At orc's exit: closes orc's write ends, relays what is left, and hands pipes that
/// background processes still hold to a relay process.
pub fn hand_off(dev_null: BorrowedFd) {
    let all = std::mem::take(
        &mut *ALL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let mut held: Vec<(OwnedFd, i32, Masker)> = Vec::new();
    for p in all {
        drop(p.writers().take());
        for (r, to) in [(&p.out, 1), (&p.err, 2)] {
            if let Some(mask) = drain(r, std_fd(to))
                && let Ok(dup) = r.try_clone()
            {
                held.push((dup, to, mask));
            }
        }
    }
    if held.is_empty() {
        return;
    }
    // Without its masks the relay would show secrets: then there is no relay.
    let masks = match masks(&held) {
        Ok(fd) => fd,
        Err(e) => {
            log::warn!("cannot start the output relay for background processes: {e}");
            return;
        }
    };
    let mut args: Vec<OsString> = vec!["orc".into(), "relay".into()];
    args.push(format!("--masks={}", held.len() + 3).into());
    args.extend(
        held.iter()
            .enumerate()
            .map(|(i, (_, to, _))| format!("{}:{to}", i + 3).into()),
    );
    let exe = CString::new("/proc/self/exe").expect("no NUL");
    let argv = CArgs::new(&args);
    let env = CArgs::new(Vec::<OsString>::new());
    let envp = env.envp();
    let extra: Vec<BorrowedFd> = held
        .iter()
        .map(|(fd, ..)| fd.as_fd())
        .chain([masks.as_fd()])
        .collect();
    let spec = spawn::Spec {
        program: Program::Path(&exe),
        argv: &argv,
        env: &envp,
        stdio: [dev_null, std_fd(1), std_fd(2)],
        extra: &extra,
        new_session: true,
        record: None,
        cgroup: None,
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

/// The `--masks` fd of `orc relay`: an fd this process inherited open (3 or more, not
/// one of `pairs`), taken over; `None` otherwise.
pub fn inherited_masks(fd: i32, pairs: &[(OwnedFd, BorrowedFd<'static>)]) -> Option<OwnedFd> {
    let open = fcntl(probe(fd)?, FcntlArg::F_GETFD).is_ok();
    if fd < 3
        || !open
        || pairs
            .iter()
            .any(|(p, _)| std::os::fd::AsRawFd::as_raw_fd(p) == fd)
    {
        return None;
    }
    #[allow(unsafe_code)]
    // SAFETY: inherited open, not one of the pairs' fds, owned by nothing else here.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A borrow of a number that may not be an fd at all, for a check (`None` below 0).
#[allow(unsafe_code)]
fn probe(fd: i32) -> Option<BorrowedFd<'static>> {
    // SAFETY: used only for fcntl(F_GETFD), which fails cleanly on a closed fd.
    (fd >= 0).then(|| unsafe { BorrowedFd::borrow_raw(fd) })
}

/// `orc relay --masks=FD 3:1 4:2 …`: copies each fd to its target until every one is at
/// EOF, masking the secrets read from `masks` (see [`masks`]).
pub fn relay(pairs: Vec<(OwnedFd, BorrowedFd<'static>)>, masks: Option<OwnedFd>) -> i32 {
    let pending = masks.map_or_else(
        || vec![Vec::new(); pairs.len()],
        |fd| read_masks(fd, pairs.len()),
    );
    let mut open: Vec<(OwnedFd, BorrowedFd<'static>, Masker)> = pairs
        .into_iter()
        .zip(pending)
        .map(|((fd, to), p)| (fd, to, Masker::resume(p)))
        .collect();
    for (fd, ..) in &open {
        // Inherited non-blocking from orc: wait in poll instead.
        let _ = fcntl(fd, FcntlArg::F_SETFL(OFlag::empty()));
    }
    let mut buf = [0u8; 32 * 1024];
    while !open.is_empty() {
        let mut fds: Vec<PollFd> = open
            .iter()
            .map(|(fd, ..)| PollFd::new(fd.as_fd(), PollFlags::POLLIN))
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
        open.retain_mut(|(fd, to, mask)| {
            let r = ready[i];
            i += 1;
            if !r {
                return true;
            }
            match nix::unistd::read(&*fd, &mut buf) {
                Ok(0) | Err(_) => {
                    write_all_fd(*to, &mask.flush());
                    false
                }
                Ok(n) => {
                    write_all_fd(*to, &mask.feed(&buf[..n]));
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
        assert_eq!(relay(got, None), 0, "EOF ends the relay");
    }
}
