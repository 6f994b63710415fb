//! Process identity across a crash: the boot id, start times in clock ticks
//! since boot, and ending the process group a dead run left behind only after
//! checking it is still the same processes (a pid can be reused).

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Time between SIGTERM and SIGKILL when a process group is ended.
pub const GRACE: Duration = Duration::from_secs(10);

/// This boot's id (`/proc/sys/kernel/random/boot_id`), or empty without `/proc`.
pub fn boot_id() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
    .clone()
}

/// Refuses to run scripts without `/proc`: an opened script is run as `/dev/fd/N`, and
/// environment.d is sourced from there, both links into `/proc/self/fd`.
pub fn require_proc() -> crate::error::Result<()> {
    if std::fs::metadata("/proc/self/fd").is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    Err(crate::error::invalid(
        "/proc is not mounted (no /proc/self/fd): orc runs scripts and environment.d \
         through /dev/fd; mount it first (mount -t proc proc /proc)",
    ))
}

/// This process's pid namespace: the inode of `/proc/self/ns/pid` (0 without `/proc`).
/// Pids mean the same processes only within one namespace.
pub fn pid_ns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    static NS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *NS.get_or_init(|| std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino()))
}

/// This process's pid and its start time in ticks since boot (read once).
pub fn me() -> (u32, u64) {
    static ME: std::sync::OnceLock<(u32, u64)> = std::sync::OnceLock::new();
    *ME.get_or_init(|| {
        let pid = std::process::id();
        (pid, stat(pid as i32).map_or(0, |(_, s)| s))
    })
}

fn ticks_per_sec() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    }
}

/// Now, in the clock ticks since boot that `/proc/PID/stat` uses for start times.
pub fn now_ticks() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
        .unwrap_or_default();
    (t.as_nanos() * u128::from(ticks_per_sec()) / 1_000_000_000) as u64
}

/// (process group, start time in ticks) of a live (not zombie) process, from `/proc/PID/stat`.
pub fn stat(pid: i32) -> Option<(i32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything; fields follow the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state): pgrp is field 5, starttime field 22.
    if *f.first()? == "Z" {
        return None;
    }
    Some((f.get(2)?.parse().ok()?, f.get(19)?.parse().ok()?))
}

/// The members of a process group, with their start times.
fn members(pgid: i32) -> Vec<(i32, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let (g, start) = stat(pid)?;
            (g == pgid).then_some((pid, start))
        })
        .collect()
}

/// Who records the live process groups (the holder of the lock): the file, and the
/// holder line naming the groups given.
pub type Recorder = (
    std::sync::Arc<std::fs::File>,
    Box<dyn Fn(&[Group]) -> Vec<u8> + Send>,
);

/// A holder line naming a child about to start (see [`Live::pending_line`]).
#[derive(Debug)]
pub struct Pending {
    pub file: std::sync::Arc<std::fs::File>,
    pub line: Vec<u8>,
    pub at: usize,
}

/// A pgid no process has (pids are below 2^22), reserved in a pending holder line for
/// the spawn child to write its own pid over (as ten digits).
const PLACEHOLDER: i32 = 1_999_999_999;

struct Groups {
    groups: Vec<Group>,
    recorder: Option<Recorder>,
}

/// The process groups of orc's children that run now, and who records them: a value the
/// holder of the lock makes ([`Live::recorded_by`]) and every spawn is given. Clones
/// share it. [`Live::none`] records nothing (a command that holds no lock).
#[derive(Clone)]
pub struct Live(Option<std::sync::Arc<std::sync::Mutex<Groups>>>);

impl Live {
    /// Records nothing.
    pub fn none() -> Live {
        Live(None)
    }

    /// Every change of the live groups goes to `recorder` until [`Live::stop`].
    pub fn recorded_by(recorder: Recorder) -> Live {
        Live(Some(std::sync::Arc::new(std::sync::Mutex::new(Groups {
            groups: Vec::new(),
            recorder: Some(recorder),
        }))))
    }

    fn groups(&self) -> Option<std::sync::MutexGuard<'_, Groups>> {
        let m = self.0.as_ref()?;
        Some(m.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// A child's process group started: recorded (with every other live one).
    pub fn started(&self, g: Group) {
        if let Some(mut live) = self.groups() {
            live.groups.push(g);
            if let Some((file, line)) = &live.recorder {
                use std::os::unix::fs::FileExt;
                let _ = file.write_all_at(&line(&live.groups), 0);
            }
        }
    }

    /// The holder line as it will be once a child about to start (at `from` ticks) is
    /// recorded, with [`PLACEHOLDER`] for its pid, and where the ten pid digits go. The
    /// spawn child writes it itself before it execs, so a run killed between the exec and
    /// [`Live::started`] still names the child's group. The lock file is shared, not
    /// borrowed: it stays open until the spawn is done even if recording stops meanwhile.
    pub fn pending_line(&self, from: u64) -> Option<Pending> {
        let live = self.groups()?;
        let (file, line) = live.recorder.as_ref()?;
        let mut groups = live.groups.clone();
        groups.push(Group {
            pgid: PLACEHOLDER,
            from,
            to: from + 100,
        });
        let text = line(&groups);
        let mark = format!("{PLACEHOLDER}:{from}:");
        let at = text
            .windows(mark.len())
            .position(|w| w == mark.as_bytes())?;
        Some(Pending {
            file: std::sync::Arc::clone(file),
            line: text,
            at,
        })
    }

    /// A child's process group ended. Not recorded at once: an entry for a group whose
    /// leader is gone is never acted on (see [`Group::still_ours`]).
    pub fn ended(&self, pgid: i32) {
        if let Some(mut live) = self.groups() {
            live.groups.retain(|g| g.pgid != pgid);
        }
    }

    /// Nothing more is recorded (the lock is being released).
    pub fn stop(&self) {
        if let Some(mut live) = self.groups() {
            live.recorder = None;
        }
    }
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Live(recorded)"
        } else {
            "Live(none)"
        })
    }
}

/// A step's process group as recorded by a run: its id and the tick window its leader
/// started in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Group {
    pub pgid: i32,
    pub from: u64,
    pub to: u64,
}

impl Group {
    /// The live processes of this group, if it is still the recorded step running: its
    /// leader alive and started in the recorded window. A step that ended (its leader
    /// gone) may have left daemons in its group on purpose; those are not ours to end.
    pub fn still_ours(&self) -> Option<Vec<i32>> {
        if self.pgid <= 1 {
            return None;
        }
        let (_, start) = stat(self.pgid)?;
        if !(self.from..=self.to.saturating_add(1)).contains(&start) {
            return None;
        }
        Some(members(self.pgid).into_iter().map(|(p, _)| p).collect())
    }

    /// Ends the group if it is still the recorded one: SIGTERM, `grace`, SIGKILL. Once its
    /// identity is checked, the group id cannot be reused while it has members.
    /// Returns how many processes it had.
    pub fn end(&self, grace: Duration) -> usize {
        let Some(pids) = self.still_ours() else {
            return 0;
        };
        let pg = Pid::from_raw(self.pgid);
        let _ = killpg(pg, Signal::SIGTERM);
        let until = Instant::now() + grace;
        let alive = || !members(self.pgid).is_empty();
        while Instant::now() < until && alive() {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive() {
            let _ = killpg(pg, Signal::SIGKILL);
        }
        pids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_stat_and_identity() {
        let (pgid, start) = stat(std::process::id() as i32).unwrap();
        assert!(pgid > 0);
        assert!(start <= now_ticks());
        assert!(!boot_id().is_empty());
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let (_, started) = stat(pid).unwrap();
        let g = Group {
            pgid: pid,
            from: started,
            to: started,
        };
        assert_eq!(g.still_ours(), Some(vec![pid]));
        let wrong = Group {
            from: started + 1000,
            to: started + 2000,
            ..g
        };
        assert_eq!(wrong.still_ours(), None, "a reused pid is not ours");
        assert_eq!(wrong.end(Duration::from_secs(1)), 0);
        assert_eq!(g.end(Duration::from_secs(5)), 1);
        assert!(child.wait().unwrap().code().is_none());
    }

    use std::os::unix::process::CommandExt;
}
