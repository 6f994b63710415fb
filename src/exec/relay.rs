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
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::spawn::{self, CArgs, Program};
use crate::error::{Context, Result};
use crate::redact::Masker;

/// A thread's relay pipes: the read ends (non-blocking, orc's) and the write ends the
/// steps get as their fds 1 and 2.
#[derive(Debug)]
pub struct Pipes {
    pub out: OwnedFd,
    pub err: OwnedFd,
    pub out_w: RawFd,
    pub err_w: RawFd,
}

/// Every thread's pipes, with their write ends (closed at exit, before the hand-off).
type Registered = (Arc<Pipes>, (OwnedFd, OwnedFd));
static ALL: Mutex<Vec<Registered>> = Mutex::new(Vec::new());

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
            out_w: out_w.as_raw_fd(),
            err_w: err_w.as_raw_fd(),
        });
        ALL.lock()
            .expect("no poisoning")
            .push((Arc::clone(&p), (out_w, err_w)));
        *mine = Some(Arc::clone(&p));
        Ok(p)
    })
}

pub fn write_all_fd(fd: RawFd, mut buf: &[u8]) {
    let fd = borrow(fd);
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

#[allow(unsafe_code)]
fn borrow<'a>(fd: RawFd) -> BorrowedFd<'a> {
    // SAFETY: only for fds the caller keeps open for the duration of the call (orc's own
    // 1 and 2, pipes it holds).
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// Copies what is in a non-blocking pipe to `to`, masked; `None` once no writer is left,
/// else the masker, whose held-back bytes the relay goes on from.
fn drain(from: &OwnedFd, to: RawFd) -> Option<Masker> {
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
/// held-back bytes (none holds a NUL: environment values cannot), in a sealed-off memfd.
fn masks(held: &[(OwnedFd, RawFd, Masker)]) -> Result<OwnedFd> {
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
fn read_masks(fd: RawFd, pipes: usize) -> Vec<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let mut off = 0;
    while let Ok(n) = nix::sys::uio::pread(borrow(fd), &mut buf, off) {
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        off += n as i64;
    }
    let _ = nix::unistd::close(fd);
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
pub fn hand_off(dev_null: RawFd) {
    let all = std::mem::take(&mut *ALL.lock().expect("no poisoning"));
    let mut held: Vec<(OwnedFd, RawFd, Masker)> = Vec::new();
    for (p, writers) in all {
        drop(writers);
        for (r, to) in [(&p.out, 1), (&p.err, 2)] {
            if let Some(mask) = drain(r, to)
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
    let extra: Vec<RawFd> = held
        .iter()
        .map(|(fd, ..)| fd.as_raw_fd())
        .chain([masks.as_raw_fd()])
        .collect();
    let spec = spawn::Spec {
        program: Program::Path(&exe),
        argv: &argv,
        env: &envp,
        stdio: [dev_null, 1, 2],
        extra: &extra,
        new_session: true,
        record: None,
    };
    match spawn::spawn(&spec) {
        Ok(c) => log::debug!("output of background processes handed to relay {}", c.pid),
        Err(e) => log::warn!("cannot start the output relay for background processes: {e}"),
    }
}

/// `orc relay --masks=FD 3:1 4:2 …`: copies each fd to its target until every one is at
/// EOF, masking the secrets read from `masks` (see [`masks`]).
pub fn relay(pairs: &[(RawFd, RawFd)], masks: Option<RawFd>) -> i32 {
    let pending = masks.map_or_else(
        || vec![Vec::new(); pairs.len()],
        |fd| read_masks(fd, pairs.len()),
    );
    let mut open: Vec<(RawFd, RawFd, Masker)> = pairs
        .iter()
        .zip(pending)
        .map(|(&(fd, to), p)| (fd, to, Masker::resume(p)))
        .collect();
    for (fd, ..) in &open {
        // Inherited non-blocking from orc: wait in poll instead.
        let _ = fcntl(borrow(*fd), FcntlArg::F_SETFL(OFlag::empty()));
    }
    let mut buf = [0u8; 32 * 1024];
    while !open.is_empty() {
        let mut fds: Vec<PollFd> = open
            .iter()
            .map(|(fd, ..)| PollFd::new(borrow(*fd), PollFlags::POLLIN))
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
            match nix::unistd::read(borrow(*fd), &mut buf) {
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
