//! The run lock: an exclusive `flock` on the lock file, interoperable with
//! upstream os-refresh-config, holding the holder's pid and start time.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Context, Error, Result};
use crate::exec::Signals;

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

/// A held lock; released (and its holder line cleared) on drop.
#[derive(Debug)]
pub struct Lock {
    file: File,
}

fn holder(path: &Path) -> String {
    let mut text = String::new();
    let _ = File::open(path).and_then(|mut f| f.read_to_string(&mut text));
    let text = text.trim();
    if text.is_empty() {
        "an unknown process".into()
    } else {
        text.to_string()
    }
}

fn open(path: &Path, create: bool) -> Result<Option<File>> {
    if create && let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    }
    match OpenOptions::new()
        .read(true)
        .write(create)
        .create(create)
        .mode(0o644)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx(|| format!("opening lock file {}", path.display())),
    }
}

/// Tries to lock `file` until `wait` runs out; false if still busy.
fn try_until(file: &File, path: &Path, wait: Wait, signals: &Signals) -> Result<bool> {
    let start = Instant::now();
    let mut announced = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).ctx(|| format!("locking {}", path.display()));
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
            log::info!("waiting for {} (held by {})", path.display(), holder(path));
            announced = true;
        }
        if let Some(sig) = signals.pending() {
            return Err(Error::Interrupted(sig));
        }
        signals.sleep(left);
    }
}

/// Takes the lock for a run, or fails with [`Error::Busy`] naming the holder.
pub fn acquire(path: &Path, wait: Wait, signals: &Signals, run_id: &str) -> Result<Lock> {
    let mut file = open(path, true)?.expect("created");
    if !try_until(&file, path, wait, signals)? {
        return Err(Error::Busy(format!(
            "another run holds {}: {}",
            path.display(),
            holder(path)
        )));
    }
    let line = format!(
        "pid={} started={} run={run_id}\n",
        std::process::id(),
        crate::time::rfc3339(SystemTime::now())
    );
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(line.as_bytes()))
        .ctx(|| format!("writing {}", path.display()))?;
    Ok(Lock { file })
}

/// Blocks while another process holds the lock (for `orc status --wait`).
pub fn wait_free(path: &Path, signals: &Signals) -> Result<()> {
    if let Some(file) = open(path, false)? {
        try_until(&file, path, Wait::Forever, signals)?;
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
