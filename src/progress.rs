//! The running step, for `orc status` while a run holds the lock: one small
//! root-only file in orc's data dir, `running-step`, rewritten in place as
//! each step starts (no rename, no fsync: two syscalls a step) and removed at
//! the end. It names the run, when the run and the step began, and the step.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;

use crate::error::Result;
use crate::root::{Dir, Root};

pub const FILE: &str = "running-step";

/// The running step as `orc status` reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub run_id: String,
    /// How long the run and the step have run.
    pub run_for: Duration,
    pub step_for: Duration,
    /// `phase/name`.
    pub step: String,
}

/// The writer side, held by a run.
#[derive(Debug)]
pub struct Progress {
    file: Option<File>,
    run_id: String,
    started: u128,
    /// The longest line written: shorter ones are padded to it (no truncate per step).
    longest: std::cell::Cell<usize>,
}

fn millis(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()
}

impl Progress {
    /// Opens (creating) `running-step` in the data dir; a failure only loses the progress.
    pub fn open(data: &Dir, run_id: &str) -> Progress {
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let file = match openat(data, FILE, flags, Mode::from_bits_truncate(0o600)) {
            Ok(fd) => Some(File::from(fd)),
            Err(e) => {
                log::debug!("{}: {e}", data.child_shown(OsStr::new(FILE)).display());
                None
            }
        };
        Progress {
            file,
            run_id: run_id.into(),
            started: millis(SystemTime::now()),
            longest: std::cell::Cell::new(0),
        }
    }

    /// Records that `step` (`phase/name`) starts now: one `pwrite`, padded with spaces
    /// over a longer line before it.
    pub fn step(&self, step: &str) {
        let Some(file) = &self.file else {
            return;
        };
        let mut line = format!(
            "{}\t{}\t{}\t{}",
            self.run_id,
            self.started,
            millis(SystemTime::now()),
            step.replace(['\n', '\t'], " ")
        );
        let width = self.longest.get().max(line.len());
        self.longest.set(width);
        line.extend(std::iter::repeat_n(' ', width - line.len()));
        line.push('\n');
        let _ = file.write_at(line.as_bytes(), 0);
    }

    /// The run ended: the file goes.
    pub fn done(self, data: &Dir) {
        if self.file.is_some() {
            let _ = nix::unistd::unlinkat(data, FILE, nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// Parses the file's line.
fn parse(text: &str, now: SystemTime) -> Option<Running> {
    let mut f = text.lines().next()?.splitn(4, '\t');
    let run_id = f.next()?.to_string();
    let run: u128 = f.next()?.parse().ok()?;
    let step_at: u128 = f.next()?.parse().ok()?;
    let step = f.next()?.trim_end().to_string();
    let now = millis(now);
    let since =
        |t: u128| Duration::from_millis(u64::try_from(now.saturating_sub(t)).unwrap_or(u64::MAX));
    Some(Running {
        run_id,
        run_for: since(run),
        step_for: since(step_at),
        step,
    })
}

/// The running step of run `run_id`, if the file names it.
pub fn read(root: &Root, data_dir: &Path, run_id: &str) -> Result<Option<Running>> {
    let Some(text) = root.read_input(&data_dir.join(FILE))? else {
        return Ok(None);
    };
    Ok(parse(&String::from_utf8_lossy(&text), SystemTime::now()).filter(|r| r.run_id == run_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_then_read_back() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::open(d.path()).unwrap();
        let data = root
            .create_dir_all(Path::new("/var/lib/orc"), 0o755)
            .unwrap();
        let p = Progress::open(&data, "00000002-x");
        p.step("configure/20-a-much-longer-name");
        p.step("configure/30-b");
        let r = read(&root, Path::new("/var/lib/orc"), "00000002-x")
            .unwrap()
            .unwrap();
        assert_eq!(r.step, "configure/30-b");
        assert!(r.run_for >= r.step_for);
        assert!(
            read(&root, Path::new("/var/lib/orc"), "00000001-y")
                .unwrap()
                .is_none()
        );
        p.done(&data);
        assert!(
            read(&root, Path::new("/var/lib/orc"), "00000002-x")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn elapsed_times() {
        let now = UNIX_EPOCH + Duration::from_secs(10);
        let r = parse("id\t1000\t7500\tmigration/10-m\n", now).unwrap();
        assert_eq!(r.run_for, Duration::from_secs(9));
        assert_eq!(r.step_for, Duration::from_millis(2500));
        assert!(parse("garbage", now).is_none());
    }
}
