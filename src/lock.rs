//! The lock every writer takes: an exclusive `flock` on the lock file
//! (interoperable with upstream os-refresh-config). While held, the file
//! names the holder (pid, start time, command) and the process group of the
//! step it runs; a holder line found when the lock is taken means the last
//! holder died holding it, and its step's leftovers are ended first.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Context, Error, Result, invalid};
use crate::procs::{self, Group};
use crate::root::{Root, kind_name, split};
use crate::signals;

/// How long to wait for a busy lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    No,
    Forever,
    For(Duration),
}

impl Wait {
    /// From `--wait[=SECONDS]`: absent = no wait, bare = forever.
    pub fn from_flag(flag: Option<Option<u64>>) -> Wait {
        match flag {
            None => Wait::No,
            Some(None) => Wait::Forever,
            Some(Some(s)) => Wait::For(Duration::from_secs(s)),
        }
    }
}

/// The holder line's fixed width, so each step's update is one `pwrite`.
const WIDTH: usize = 200;

/// Who holds the lock, as written in the lock file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// The holder's start time in ticks since boot (tells a reused pid apart).
    pub start: u64,
    pub boot: String,
    pub since: String,
    pub cmd: String,
    /// The process group of the step running now (0: none).
    pub group: Group,
}

impl Holder {
    fn me(cmd: &str) -> Holder {
        let (pid, start) = procs::me();
        Holder {
            pid,
            start,
            boot: procs::boot_id(),
            since: crate::time::rfc3339(SystemTime::now()),
            cmd: cmd.into(),
            group: Group::default(),
        }
    }

    fn line(&self) -> Vec<u8> {
        let g = &self.group;
        let mut s = format!(
            "pid={} since={} cmd={} start={} boot={} pgid={} from={} to={}",
            self.pid, self.since, self.cmd, self.start, self.boot, g.pgid, g.from, g.to
        );
        while s.len() < WIDTH - 1 {
            s.push(' ');
        }
        s.push('\n');
        s.into_bytes()
    }

    fn parse(text: &str) -> Option<Holder> {
        let mut h = Holder::default();
        for kv in text.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "pid" => h.pid = v.parse().ok()?,
                "since" => h.since = v.into(),
                "cmd" => h.cmd = v.into(),
                "start" => h.start = v.parse().ok()?,
                "boot" => h.boot = v.into(),
                "pgid" => h.group.pgid = v.parse().ok()?,
                "from" => h.group.from = v.parse().ok()?,
                "to" => h.group.to = v.parse().ok()?,
                _ => {}
            }
        }
        (h.pid > 0).then_some(h)
    }

    /// `pid=… since=… cmd=…`: the part people read.
    pub fn describe(&self) -> String {
        format!("pid={} since={} cmd={}", self.pid, self.since, self.cmd)
    }
}

/// A held lock; released (and its holder line cleared) on drop.
#[derive(Debug)]
pub struct Lock {
    file: File,
    holder: Holder,
    /// The holder that died holding the lock before us, if any.
    pub crashed: Option<Holder>,
}

fn read_holder(file: &File) -> String {
    let mut buf = [0u8; 4 * WIDTH];
    let n = file.read_at(&mut buf, 0).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).trim().to_string()
}

fn describe_text(text: &str) -> String {
    match Holder::parse(text) {
        Some(h) => h.describe(),
        None if text.is_empty() => "an unknown process".into(),
        None => text.chars().filter(|c| !c.is_control()).take(200).collect(),
    }
}

/// Opens the lock file (`create`: with its parents) and checks it is a regular file.
fn open(root: &Root, sys: &Path, create: bool) -> Result<Option<File>> {
    let shown = root.shown(sys);
    let (parent, name) = split(sys)?;
    let dir = if create {
        root.create_dir_all(parent, 0o755)?
    } else {
        match root.open_dir(parent)? {
            Some(d) => d,
            None => return Ok(None),
        }
    };
    let flags = if create {
        OFlag::O_RDWR | OFlag::O_CREAT
    } else {
        OFlag::O_RDONLY
    } | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_CLOEXEC;
    let fd = match nix::fcntl::openat(dir.as_fd(), name, flags, Mode::from_bits_truncate(0o644)) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) if !create => return Ok(None),
        Err(Errno::ELOOP) => {
            return Err(invalid(format!(
                "lock file {}: a symlink; refusing to follow it",
                shown.display()
            )));
        }
        Err(Errno::EISDIR) => {
            return Err(invalid(format!(
                "lock file {}: not a regular file (a directory)",
                shown.display()
            )));
        }
        Err(e) => return Err(e).ctx(|| format!("opening lock file {}", shown.display())),
    };
    let st = nix::sys::stat::fstat(&fd).ctx(|| format!("reading {}", shown.display()))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(invalid(format!(
            "lock file {}: not a regular file ({})",
            shown.display(),
            kind_name(&st)
        )));
    }
    Ok(Some(File::from(fd)))
}

/// Tries to lock `file` until `wait` runs out; false if still busy.
fn try_until(file: &File, shown: &Path, wait: Wait) -> Result<bool> {
    let start = Instant::now();
    let mut announced = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).ctx(|| format!("locking {}", shown.display()));
            }
        }
        let left = match wait {
            Wait::No => return Ok(false),
            Wait::Forever => Duration::from_millis(100),
            Wait::For(d) => match d.checked_sub(start.elapsed()) {
                Some(left) if !left.is_zero() => left.min(Duration::from_millis(100)),
                _ => return Ok(false),
            },
        };
        if !announced {
            log::info!(
                "waiting for {} (held by {})",
                shown.display(),
                describe_text(&read_holder(file))
            );
            announced = true;
        }
        if let Some(sig) = signals::pending() {
            return Err(Error::Interrupted(sig));
        }
        signals::sleep(left);
    }
}

/// Takes the lock for `cmd`, or fails with [`Error::Busy`] naming the holder.
pub fn acquire(root: &Root, sys: &Path, wait: Wait, cmd: &str) -> Result<Lock> {
    let shown = root.shown(sys);
    let file = open(root, sys, true)?.expect("created");
    if !try_until(&file, &shown, wait)? {
        return Err(Error::Busy(format!(
            "another run holds {}: {}",
            shown.display(),
            describe_text(&read_holder(&file))
        )));
    }
    let crashed = Holder::parse(&read_holder(&file));
    if let Some(h) = &crashed {
        log::warn!(
            "the last holder of {} died holding it ({})",
            shown.display(),
            h.describe()
        );
        if h.boot == procs::boot_id() && h.group.pgid > 0 {
            let n = h.group.end(crate::exec::GRACE);
            if n > 0 {
                log::warn!(
                    "ended {n} leftover process(es) of its last step (process group {})",
                    h.group.pgid
                );
            }
        }
    }
    let holder = Holder::me(cmd);
    file.set_len(0)
        .and_then(|()| file.write_all_at(&holder.line(), 0))
        .ctx(|| format!("writing {}", shown.display()))?;
    Ok(Lock {
        file,
        holder,
        crashed,
    })
}

impl Lock {
    /// Records the process group of the step now running (one `pwrite`).
    pub fn set_group(&mut self, group: Group) {
        self.holder.group = group;
        let _ = self.file.write_all_at(&self.holder.line(), 0);
    }
}

/// Blocks while another process holds the lock (for `orc status --wait`).
pub fn wait_free(root: &Root, sys: &Path) -> Result<()> {
    if let Some(file) = open(root, sys, false)? {
        try_until(&file, &root.shown(sys), Wait::Forever)?;
        let _ = file.unlock();
    }
    Ok(())
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_lines_round_trip_at_a_fixed_width() {
        let mut h = Holder::me("run");
        h.group = Group {
            pgid: 42,
            from: 7,
            to: 9,
        };
        let line = h.line();
        assert_eq!(line.len(), WIDTH);
        let back = Holder::parse(std::str::from_utf8(&line).unwrap()).unwrap();
        assert_eq!(back, h);
        assert!(h.describe().starts_with(&format!("pid={} since=", h.pid)));
        assert_eq!(Holder::parse(""), None);
        assert_eq!(describe_text(""), "an unknown process");
    }

    #[test]
    fn a_symlinked_or_non_regular_lock_file_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::open(d.path()).unwrap();
        std::fs::create_dir_all(d.path().join("run/dir.lock")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("run/l.lock")).unwrap();
        for (p, why) in [("/run/dir.lock", "a directory"), ("/run/l.lock", "symlink")] {
            let e = acquire(&root, Path::new(p), Wait::No, "run").unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
            assert!(e.to_string().contains(why), "{e}");
        }
        let l = acquire(&root, Path::new("/run/ok.lock"), Wait::No, "run").unwrap();
        let e = acquire(&root, Path::new("/run/ok.lock"), Wait::No, "seed").unwrap_err();
        assert_eq!(e.exit_code(), 11);
        assert!(e.to_string().contains("cmd=run"), "{e}");
        drop(l);
        assert_eq!(std::fs::read(d.path().join("run/ok.lock")).unwrap(), b"");
    }
}
