//! The lock every writer takes: an exclusive `flock` on the lock file
//! (interoperable with upstream os-refresh-config). While held, the file
//! names the holder (pid, start time, command) and the process group of the
//! step it runs; a holder line found when the lock is taken means the last
//! holder died holding it, and its step's leftovers are ended first.
//!
//! The file is orc's alone: created `0600` by root, one link, empty or a holder line.
//! Anything else (a typo naming a real file, a hardlink, another owner, other content)
//! is refused and never written. The holder also holds an open-file-description
//! record lock, which `orc status` can test without taking anything: "running" is told
//! from the lock, in any pid namespace, not from a pid.

use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode};

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
    /// The holder's pid namespace (the inode of `/proc/self/ns/pid`; 0 unknown).
    pub ns: u64,
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
            ns: procs::pid_ns(),
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
            "pid={} since={} cmd={} start={} boot={} ns={} groups={}",
            self.pid,
            self.since,
            self.cmd,
            self.start,
            self.boot,
            self.ns,
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
                "ns" => h.ns = v.parse().ok()?,
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

    /// Whether the pids in this line mean the same processes here: this boot, and this
    /// pid namespace (a line without one is from before namespaces were recorded).
    fn here(&self) -> bool {
        self.boot == procs::boot_id() && (self.ns == 0 || self.ns == procs::pid_ns())
    }

    /// `pid=… since=… cmd=…`: the part people read; a pid of another pid namespace (a
    /// container sharing the root) or another boot is said to be one.
    pub fn describe(&self) -> String {
        let whose = if self.boot != procs::boot_id() {
            " of another boot".to_string()
        } else if !self.here() {
            format!(" in another pid namespace (pid:[{}])", self.ns)
        } else {
            String::new()
        };
        format!(
            "pid={}{whose} since={} cmd={}",
            self.pid, self.since, self.cmd
        )
    }
}

/// A held lock; released (and its holder line cleared) on drop. While held, it records the
/// process groups of every child orc runs with [`Lock::live`].
#[derive(Debug)]
pub struct Lock {
    file: File,
    /// The live process groups, recorded into the holder line while the lock is held.
    live: procs::Live,
    /// The holder that died holding the lock before us, if any.
    pub crashed: Option<Holder>,
}

/// The previous holder's children, if the line is believable: this boot and this pid
/// namespace (a pid of another one names other processes here), real groups, and start
/// windows no longer than a spawn takes.
fn leftovers(h: &Holder) -> Vec<Group> {
    let here = h.ns != 0 && h.here();
    h.groups
        .iter()
        .filter(|g| here && g.pgid > 1 && g.to >= g.from && g.to - g.from <= 100)
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
        None if text.is_empty() => "a process that is not orc (no holder line)".into(),
        None => "a process that is not orc (the file holds no orc holder line)".into(),
    }
}

/// The refusal of a lock path that names something orc must not write.
fn refuse(shown: &Path, what: &str) -> Error {
    invalid(format!(
        "lock file {}: {what}; it is not orc's lock file, so it is left untouched \
         (remove it, or name another lock file)",
        shown.display()
    ))
}

/// The lock file as it must be before orc writes it: a regular file of root's (orc's
/// user's), with one link.
fn check_node(st: &FileStat, shown: &Path) -> Result<()> {
    if kind(st) != libc::S_IFREG {
        return Err(refuse(
            shown,
            &format!("not a regular file ({})", kind_name(st)),
        ));
    }
    if st.st_nlink != 1 {
        return Err(refuse(
            shown,
            &format!("it has {} links (a hardlink to another file)", st.st_nlink),
        ));
    }
    let me = nix::unistd::geteuid().as_raw();
    if st.st_uid != me {
        return Err(refuse(
            shown,
            &format!(
                "owned by uid {}, not {}",
                st.st_uid,
                if me == 0 {
                    "root".into()
                } else {
                    format!("uid {me}")
                }
            ),
        ));
    }
    Ok(())
}

/// Opens the lock file: for writing (`create`: made `0600` with its parents when
/// missing, and checked to be orc's), or read-only for a probe (`None` when absent).
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
    let base = OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
    let bad = |what: &str| Err(refuse(&shown, what));
    // Never open what is not a regular file (a tape rewinds, a terminal hangs up).
    match nix::sys::stat::fstatat(dir.as_fd(), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if kind(&st) == libc::S_IFLNK => return bad("a symlink; refusing to follow it"),
        Ok(st) if kind(&st) != libc::S_IFREG => {
            return bad(&format!("not a regular file ({})", kind_name(&st)));
        }
        _ => {}
    }
    let mut tries = 0;
    let fd = loop {
        let flags = if create {
            OFlag::O_RDWR
        } else {
            OFlag::O_RDONLY
        } | base;
        match nix::fcntl::openat(dir.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => break fd,
            Err(Errno::ENOENT) if !create => return Ok(None),
            Err(Errno::ENOENT) if tries < 10 => {
                tries += 1;
                // Made by orc, for orc alone: 0600 whatever the umask.
                let made = nix::fcntl::openat(
                    dir.as_fd(),
                    name,
                    OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | base,
                    Mode::from_bits_truncate(0o600),
                );
                match made {
                    Ok(fd) => {
                        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o600))
                            .ctx(|| format!("creating {}", shown.display()))?;
                        break fd;
                    }
                    // EEXIST: made by another run meanwhile; open it again.
                    Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e).ctx(|| format!("creating {}", shown.display())),
                }
            }
            Err(Errno::ELOOP) => return bad("a symlink; refusing to follow it"),
            Err(Errno::EISDIR) => return bad("not a regular file (a directory)"),
            Err(Errno::ENXIO) => return bad("not a regular file (a socket)"),
            Err(e) => return Err(e).ctx(|| format!("opening lock file {}", shown.display())),
        }
    };
    let st = nix::sys::stat::fstat(&fd).ctx(|| format!("reading {}", shown.display()))?;
    if create {
        check_node(&st, &shown)?;
    } else if kind(&st) != libc::S_IFREG {
        return bad(&format!("not a regular file ({})", kind_name(&st)));
    }
    Ok(Some(File::from(fd)))
}

/// Under the lock: the content must be orc's (empty, or one holder line). Returns the
/// holder line found, if any.
fn check_content(file: &File, shown: &Path) -> Result<Option<Holder>> {
    let st = nix::sys::stat::fstat(file.as_fd()).ctx(|| format!("reading {}", shown.display()))?;
    check_node(&st, shown)?;
    if st.st_size == 0 {
        return Ok(None);
    }
    let text = read_holder(file);
    // Also orc's: a holder line torn by a full disk, or zeros left by a power cut.
    let torn = text.trim_matches(|c: char| c == '\0').is_empty() || text.starts_with("pid=");
    match Holder::parse(&text) {
        Some(h) if st.st_size as usize <= WIDTH => Ok(Some(h)),
        _ if torn && st.st_size as usize <= WIDTH => Ok(None),
        _ => Err(refuse(
            shown,
            &format!(
                "it holds other content ({} bytes, not a holder line)",
                st.st_size
            ),
        )),
    }
}

/// An open-file-description write lock on the whole file: set (`F_WRLCK`), released
/// (`F_UNLCK`), or tested (`get`: true when another description holds one).
fn record_lock(file: &File, kind: i32, get: bool) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    #[allow(unsafe_code)]
    // SAFETY: fcntl on an fd we own with a zeroed `flock` we own.
    unsafe {
        let mut fl: libc::flock = std::mem::zeroed();
        fl.l_type = kind as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        let cmd = if get {
            libc::F_OFD_GETLK
        } else {
            libc::F_OFD_SETLK
        };
        if libc::fcntl(file.as_raw_fd(), cmd, &mut fl) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(get && i32::from(fl.l_type) != libc::F_UNLCK)
    }
}

/// Whether an orc run holds the lock at `sys`, tested without taking it (another run
/// starting meanwhile is never turned away). `None` when it cannot be told (no such
/// file, or no right to open it).
pub fn held(root: &Root, sys: &Path) -> Option<bool> {
    let file = open(root, sys, false).ok()??;
    record_lock(&file, libc::F_WRLCK, true).ok()
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
/// [`Error::Busy`] naming the holder. A path that names anything but orc's own lock file
/// is refused and left untouched.
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
    let crashed = check_content(&file, &shown)?;
    nix::sys::stat::fchmod(file.as_fd(), Mode::from_bits_truncate(0o600))
        .ctx(|| format!("setting the mode of {}", shown.display()))?;
    if let Some(h) = &crashed {
        log::warn!(
            "the last holder of {} died holding it ({})",
            shown.display(),
            h.describe()
        );
        for g in leftovers(h) {
            let n = g.end(procs::GRACE);
            if n > 0 {
                log::warn!(
                    "ended {n} leftover process(es) of the dead run (process group {})",
                    g.pgid
                );
            }
        }
    }
    record_lock(&file, libc::F_WRLCK, false).ctx(|| format!("locking {}", shown.display()))?;
    let holder = Holder::me(cmd);
    // The holder line informs; a full `/run` at boot must not stop the run for it.
    if let Err(e) = file
        .set_len(0)
        .and_then(|()| file.write_all_at(&holder.line(), 0))
    {
        log::warn!("cannot name the holder in {}: {e}", shown.display());
        let _ = file.set_len(0);
    }
    let live = record_children(&file, holder)?;
    Ok(Lock {
        file,
        live,
        crashed,
    })
}

/// From now until the lock is released, every process group started with the returned
/// [`procs::Live`] goes into the holder line (one `pwrite` as each starts).
fn record_children(file: &File, holder: Holder) -> Result<procs::Live> {
    let file = std::sync::Arc::new(file.try_clone().ctx(|| "dup")?);
    Ok(procs::Live::recorded_by((
        file,
        Box::new(move |groups: &[Group]| {
            Holder {
                groups: groups.to_vec(),
                ..holder.clone()
            }
            .line()
        }),
    )))
}

impl Lock {
    /// The run state every child is spawned with while this lock is held.
    pub fn live(&self) -> &procs::Live {
        &self.live
    }
}

/// Blocks while an orc run holds the lock (for `orc status --wait`). The lock is tested,
/// never taken: a run starting meanwhile is not turned away as busy.
pub fn wait_free(root: &Root, sys: &Path) -> Result<()> {
    if let Some(file) = open(root, sys, false)? {
        while record_lock(&file, libc::F_WRLCK, true)
            .ctx(|| format!("testing {}", root.shown(sys).display()))?
        {
            if let Some(sig) = signals::pending() {
                return Err(Error::Interrupted(sig));
            }
            signals::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.live.stop();
        let _ = self.file.set_len(0);
        let _ = record_lock(&self.file, libc::F_UNLCK, false);
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
        assert!(describe_text("").contains("not orc"));
        assert!(describe_text("\x1b[2Jgarbage").contains("not orc"));
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
