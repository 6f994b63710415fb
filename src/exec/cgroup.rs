//! A step's own cgroup, where systemd delegates one to orc. When orc's cgroup
//! (cgroup v2) carries systemd's `trusted.delegate` (or `user.delegate`) mark,
//! each step gets a child cgroup that the child joins before it execs (it
//! writes `0` into the `cgroup.procs` fd the parent opened). A timeout or a
//! forwarded signal then reaches every process of the step, even one that left
//! its process group and double-forked out of reach of the pidfd: SIGKILL by
//! `cgroup.kill`, any signal to each pid in `cgroup.procs`. Processes a step
//! leaves behind on a normal end are moved back to orc's cgroup and the child
//! cgroup removed.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{Mode, mkdirat};
use nix::unistd::{Pid, UnlinkatFlags, unlinkat};

const DIR: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC);

/// orc's own cgroup (v2), when it is delegated to orc.
fn delegated() -> Option<&'static OwnedFd> {
    static DELEGATED: OnceLock<Option<OwnedFd>> = OnceLock::new();
    DELEGATED.get_or_init(find_delegated).as_ref()
}

fn find_delegated() -> Option<OwnedFd> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?.to_string();
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        right
            .starts_with("cgroup2 ")
            .then(|| left.split(' ').nth(4).map(PathBuf::from))?
    })?;
    let dir = mount.join(path.trim_start_matches('/'));
    let fd = nix::fcntl::open(&dir, DIR, Mode::empty()).ok()?;
    let marked = ["trusted.delegate", "user.delegate"].iter().any(|n| {
        let mut buf = [0u8; 8];
        rustix::fs::fgetxattr(&fd, *n, &mut buf).is_ok_and(|len| &buf[..len] == b"1")
    });
    if marked {
        log::debug!("steps get cgroups of their own under {}", dir.display());
        sweep(&fd);
    }
    marked.then_some(fd)
}

/// Removes the empty step cgroups a killed orc left (those of a pid that is gone).
fn sweep(parent: &OwnedFd) {
    let Ok(mut d) = nix::dir::Dir::openat(parent, ".", DIR, Mode::empty()) else {
        return;
    };
    let names: Vec<CString> = d
        .iter()
        .flatten()
        .map(|e| e.file_name().to_owned())
        .filter(|n| {
            let Some(rest) = n.to_str().ok().and_then(|n| n.strip_prefix("orc-step-")) else {
                return false;
            };
            let pid = rest.split('-').next().and_then(|p| p.parse().ok());
            pid.is_some_and(|p: i32| {
                nix::sys::signal::kill(Pid::from_raw(p), None) == Err(nix::errno::Errno::ESRCH)
            })
        })
        .collect();
    for n in names {
        let _ = unlinkat(parent, n.as_c_str(), UnlinkatFlags::RemoveDir);
    }
}

/// A step's cgroup: made before the spawn, removed on drop.
#[derive(Debug)]
pub struct StepCgroup {
    parent: &'static OwnedFd,
    name: CString,
    dir: OwnedFd,
    procs: OwnedFd,
}

impl StepCgroup {
    /// A new child cgroup of orc's delegated one (`None`: not delegated, or it cannot
    /// be made: the step runs without one, as everywhere else).
    pub fn new() -> Option<StepCgroup> {
        static N: AtomicU64 = AtomicU64::new(0);
        let parent = delegated()?;
        let n = N.fetch_add(1, Ordering::Relaxed);
        let name = CString::new(format!("orc-step-{}-{n}", std::process::id())).ok()?;
        let made = mkdirat(parent, name.as_c_str(), Mode::from_bits_truncate(0o755));
        if let Err(e) = made {
            log::debug!("cannot make a step cgroup: {e}");
            return None;
        }
        let opened = openat(parent, name.as_c_str(), DIR, Mode::empty()).and_then(|dir| {
            let procs = openat(
                &dir,
                "cgroup.procs",
                OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            Ok((dir, procs))
        });
        match opened {
            Ok((dir, procs)) => Some(StepCgroup {
                parent,
                name,
                dir,
                procs,
            }),
            Err(e) => {
                log::debug!("cannot open a step cgroup: {e}");
                let _ = unlinkat(parent, name.as_c_str(), UnlinkatFlags::RemoveDir);
                None
            }
        }
    }

    /// The `cgroup.procs` fd the child writes `0` into to join.
    pub fn procs(&self) -> BorrowedFd<'_> {
        self.procs.as_fd()
    }

    fn read(&self, file: &str) -> String {
        let mut s = String::new();
        if let Ok(fd) = openat(
            &self.dir,
            file,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            let _ = File::from(fd).read_to_string(&mut s);
        }
        s
    }

    fn pids(&self) -> Vec<i32> {
        self.read("cgroup.procs")
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Every process of the step gets `sig` (SIGKILL: by `cgroup.kill` first).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        if sig == nix::sys::signal::Signal::SIGKILL
            && let Ok(fd) = openat(
                &self.dir,
                "cgroup.kill",
                OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
        {
            let _ = File::from(fd).write_all(b"1");
        }
        for pid in self.pids() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
        }
    }

    /// Whether a process of the step is still alive.
    pub fn populated(&self) -> bool {
        self.read("cgroup.events")
            .lines()
            .any(|l| l.trim() == "populated 1")
    }
}

impl Drop for StepCgroup {
    /// What the step left running goes back to orc's cgroup; the step's is removed.
    fn drop(&mut self) {
        for pid in self.pids() {
            if let Ok(fd) = openat(
                self.parent,
                "cgroup.procs",
                OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            ) {
                let _ = File::from(fd).write_all(pid.to_string().as_bytes());
            }
        }
        if let Err(e) = unlinkat(self.parent, self.name.as_c_str(), UnlinkatFlags::RemoveDir) {
            log::debug!(
                "cannot remove step cgroup {:?}: {e}",
                OsStr::new(self.name.to_str().unwrap_or("?"))
            );
        }
    }
}
