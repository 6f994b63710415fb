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
use crate::root::{Root, kind, kind_name, split};
use crate::setup::Loc;
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

/// The holder line's fixed width, so each update is one `pwrite`.
const WIDTH: usize = 1024;
/// The most process groups a holder line names (parallel container hooks).
const MAX_GROUPS: usize = 28;

/// Who holds the lock, as written in the lock file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// The holder's start time in ticks since boot (tells a reused pid apart).
    pub start: u64,
    pub boot: String,
    pub since: String,
    pub cmd: String,
    /// The process groups of the children running now (the newest last).
    pub groups: Vec<Group>,
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
            groups: Vec::new(),
        }
    }

    fn line(&self) -> Vec<u8> {
        let skip = self.groups.len().saturating_sub(MAX_GROUPS);
        let groups: Vec<String> = self.groups[skip..]
            .iter()
            .map(|g| format!("{}:{}:{}", g.pgid, g.from, g.to))
            .collect();
        let mut s = format!(
            "pid={} since={} cmd={} start={} boot={} groups={}",
            self.pid,
            self.since,
            self.cmd,
            self.start,
            self.boot,
            groups.join(",")
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
                "groups" => {
                    for g in v.split(',').filter(|g| !g.is_empty()) {
                        let mut f = g.split(':').map(str::parse::<u64>);
                        let (Some(Ok(pgid)), Some(Ok(from)), Some(Ok(to))) =
                            (f.next(), f.next(), f.next())
                        else {
                            return None;
                        };
                        h.groups.push(Group {
                            pgid: i32::try_from(pgid).ok()?,
                            from,
                            to,
                        });
                    }
                }
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

/// A held lock; released (and its holder line cleared) on drop. While held, it records the
/// process groups of every child orc runs with [`Lock::live`].
#[derive(Debug)]
pub struct Lock {
    file: File,
    /// The live process groups, recorded into the holder line while the lock is held.
    live: procs::Live,
    /// The file is orc's to write: it was empty or held a holder line. A file given with
    /// `--lockfile` that holds anything else is only locked, never written.
    ours: bool,
    /// The holder that died holding the lock before us, if any.
    pub crashed: Option<Holder>,
}

/// A holder line can be believed only from a lock file no one but root could have written.
fn trusted(file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    file.metadata()
        .is_ok_and(|m| m.uid() == nix::unistd::geteuid().as_raw() && m.mode() & 0o022 == 0)
}

/// The previous holder's children, if the line is believable: this boot, real groups, and
/// start windows no longer than a spawn takes.
fn leftovers(h: &Holder) -> Vec<Group> {
    let this_boot = h.boot == procs::boot_id();
    h.groups
        .iter()
        .filter(|g| this_boot && g.pgid > 1 && g.to >= g.from && g.to - g.from <= 100)
        .copied()
        .collect()
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
    let bad = |what: &str| Err(invalid(format!("lock file {}: {what}", shown.display())));
    let fd = match nix::fcntl::openat(dir.as_fd(), name, flags, Mode::from_bits_truncate(0o644)) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) if !create => return Ok(None),
        Err(Errno::ELOOP) => return bad("a symlink; refusing to follow it"),
        Err(Errno::EISDIR) => return bad("not a regular file (a directory)"),
        Err(Errno::ENXIO) => return bad("not a regular file (a socket)"),
        Err(e) => return Err(e).ctx(|| format!("opening lock file {}", shown.display())),
    };
    let st = nix::sys::stat::fstat(&fd).ctx(|| format!("reading {}", shown.display()))?;
    if kind(&st) != libc::S_IFREG {
        return bad(&format!("not a regular file ({})", kind_name(&st)));
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

/// Takes the lock at `loc` (resolved under `root`) for `cmd`, or fails with
/// [`Error::Busy`] naming the holder. The configured lock file is orc's own; a file given
/// with `--lockfile` is written only when it is empty or already holds a holder line.
pub fn acquire(root: &Root, loc: &Loc, wait: Wait, cmd: &str) -> Result<Lock> {
    let sys = &loc.path;
    let shown = root.shown(sys);
    let file = open(root, sys, true)?.expect("created");
    if !try_until(&file, &shown, wait)? {
        return Err(Error::Busy(format!(
            "another run holds {}: {}",
            shown.display(),
            describe_text(&read_holder(&file))
        )));
    }
    let text = read_holder(&file);
    let crashed = Holder::parse(&text);
    let ours = !loc.host || text.is_empty() || crashed.is_some();
    if let Some(h) = &crashed {
        log::warn!(
            "the last holder of {} died holding it ({})",
            shown.display(),
            h.describe()
        );
        let groups = leftovers(h);
        if !groups.is_empty() && !trusted(&file) {
            log::warn!(
                "{} could have been written by another user: its processes are not ended",
                shown.display()
            );
        } else {
            for g in groups {
                let n = g.end(procs::GRACE);
                if n > 0 {
                    log::warn!(
                        "ended {n} leftover process(es) of the dead run (process group {})",
                        g.pgid
                    );
                }
            }
        }
    }
    let holder = Holder::me(cmd);
    let live = if ours {
        file.set_len(0)
            .and_then(|()| file.write_all_at(&holder.line(), 0))
            .ctx(|| format!("writing {}", shown.display()))?;
        record_children(&file, holder)?
    } else {
        procs::Live::none()
    };
    Ok(Lock {
        file,
        live,
        ours,
        crashed,
    })
}

/// From now until the lock is released, every process group started with the returned
/// [`procs::Live`] goes into the holder line (one `pwrite` as each starts).
fn record_children(file: &File, holder: Holder) -> Result<procs::Live> {
    let file = file.try_clone().ctx(|| "dup")?;
    Ok(procs::Live::recorded_by(Box::new(
        move |groups: &[Group]| {
            let h = Holder {
                groups: groups.to_vec(),
                ..holder.clone()
            };
            let _ = file.write_all_at(&h.line(), 0);
        },
    )))
}

impl Lock {
    /// The run state every child is spawned with while this lock is held.
    pub fn live(&self) -> &procs::Live {
        &self.live
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
        if self.ours {
            self.live.stop();
            let _ = self.file.set_len(0);
        }
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_lines_round_trip_at_a_fixed_width() {
        let mut h = Holder::me("run");
        h.groups = vec![
            Group {
                pgid: 42,
                from: 7,
                to: 9,
            },
            Group {
                pgid: 43,
                from: 10,
                to: 10,
            },
        ];
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
            let e = acquire(&root, &Loc::in_root(p), Wait::No, "run").unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
            assert!(e.to_string().contains(why), "{e}");
        }
        let l = acquire(&root, &Loc::in_root("/run/ok.lock"), Wait::No, "run").unwrap();
        let e = acquire(&root, &Loc::in_root("/run/ok.lock"), Wait::No, "seed").unwrap_err();
        assert_eq!(e.exit_code(), 11);
        assert!(e.to_string().contains("cmd=run"), "{e}");
        drop(l);
        assert_eq!(std::fs::read(d.path().join("run/ok.lock")).unwrap(), b"");
    }
}
