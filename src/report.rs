//! The run report: `/var/lib/orc/runs/<run-id>.json`, written when a run
//! starts (`running`, with its pid) and completed at the end, and
//! `last-run.json` pointing at the newest. Run ids begin with a sequence
//! number, so they sort by run order even when the clock goes back; the
//! newest 20 are kept, never the current one. Reports are root-only and pass
//! through the redactor. A `running` report reads as `crashed` once its run's lock
//! is free (told from the lock, not a pid, so it holds across pid namespaces). A
//! report that cannot be completed in full (a full disk) is completed with what fits,
//! the result first.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::{Context, Result};
use crate::plan::StepKind;
use crate::procs;
use crate::redact::scrub;
use crate::root::{Dir, Durable, Root, TMP_PREFIX};
use crate::step::StepResult;

pub const KEEP_RUNS: usize = 20;
/// The report format's version.
pub const FORMAT: u32 = 1;
const LAST: &str = "last-run.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunResult {
    Running,
    Ok,
    Failed,
    Timeout,
    Interrupted,
    Crashed,
}

impl RunResult {
    pub fn name(self) -> &'static str {
        match self {
            RunResult::Running => "running",
            RunResult::Ok => "ok",
            RunResult::Failed => "failed",
            RunResult::Timeout => "timeout",
            RunResult::Interrupted => "interrupted",
            RunResult::Crashed => "crashed",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepReport {
    pub phase: String,
    pub name: String,
    pub kind: StepKind,
    pub started: String,
    pub duration_ms: f64,
    pub result: StepResult,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub output_tail: String,
}

/// What seeding did with one stateful path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StateOutcome {
    Seeded,
    Present,
    NoPristine,
    Error,
}

impl StateOutcome {
    pub fn name(self) -> &'static str {
        match self {
            StateOutcome::Seeded => "seeded",
            StateOutcome::Present => "present",
            StateOutcome::NoPristine => "no-pristine",
            StateOutcome::Error => "error",
        }
    }
}

/// One stateful path's outcome in the seeding step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatePathReport {
    pub path: String,
    pub outcome: StateOutcome,
    pub bytes: u64,
    pub files: u64,
    pub duration_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One container's action in the converge step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerReport {
    pub name: String,
    pub action: String,
    pub reason: String,
    pub duration_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkippedReport {
    #[serde(serialize_with = "crate::json::lossy::path")]
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunReport {
    /// The format's version; reports of orc before it have none (and read as 0).
    #[serde(default)]
    pub format: u32,
    pub run_id: String,
    #[serde(default)]
    pub pid: u32,
    /// orc's start time in ticks since boot, and the boot: tell a dead run from a live one.
    #[serde(default)]
    pub pid_start: u64,
    #[serde(default)]
    pub boot_id: String,
    /// The pid namespace `pid` belongs to (0: unknown).
    #[serde(default)]
    pub pid_ns: u64,
    /// The lock file the run holds while it runs, and whether it was given on the
    /// command line (resolved from the host's `/`) rather than under the root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_file: Option<String>,
    #[serde(default)]
    pub lock_on_host: bool,
    pub started: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    pub duration_ms: f64,
    /// Time spent waiting for the lock before the run began.
    #[serde(default)]
    pub waited_ms: f64,
    /// orc's own time: the run's duration less the time of the processes it runs (the
    /// scripts, environment.d's bash, the engine) and the wait.
    pub overhead_ms: f64,
    pub result: RunResult,
    pub exit_code: Option<i32>,
    #[serde(serialize_with = "crate::json::lossy::path")]
    pub base_dir: PathBuf,
    pub phase_order: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub steps: Vec<StepReport>,
    pub skipped: Vec<SkippedReport>,
    pub state: Vec<StatePathReport>,
    pub containers: Vec<ContainerReport>,
}

impl RunReport {
    /// A report for a run starting now.
    pub fn starting(run_id: String, base_dir: PathBuf, phase_order: Vec<String>) -> RunReport {
        let (pid, pid_start) = procs::me();
        RunReport {
            format: FORMAT,
            run_id,
            pid,
            pid_start,
            boot_id: procs::boot_id(),
            pid_ns: procs::pid_ns(),
            lock_file: None,
            lock_on_host: false,
            started: crate::time::rfc3339(SystemTime::now()),
            ended: None,
            duration_ms: 0.0,
            waited_ms: 0.0,
            overhead_ms: 0.0,
            result: RunResult::Running,
            exit_code: None,
            base_dir,
            phase_order,
            error: None,
            steps: Vec::new(),
            skipped: Vec::new(),
            state: Vec::new(),
            containers: Vec::new(),
        }
    }

    /// Every free-text field through the redactor.
    fn scrub(&mut self) {
        if let Some(e) = &mut self.error {
            scrub(e);
        }
        for s in &mut self.steps {
            scrub(&mut s.output_tail);
            if let Some(n) = &mut s.note {
                scrub(n);
            }
        }
        for e in self.state.iter_mut().filter_map(|s| s.error.as_mut()) {
            scrub(e);
        }
        for e in self.containers.iter_mut().filter_map(|c| c.error.as_mut()) {
            scrub(e);
        }
    }

    /// A `running` report whose run no longer holds its lock is `crashed`. `held` tells
    /// whether the lock is held (`None`: cannot tell); then the pid decides, when it
    /// names a process of this boot and pid namespace.
    fn settle(&mut self, held: Option<bool>) {
        if self.result != RunResult::Running {
            return;
        }
        let alive = match held {
            Some(h) => h,
            None if self.boot_id != procs::boot_id() => false,
            None if self.pid_ns != 0 && self.pid_ns != procs::pid_ns() => true,
            None => procs::stat(self.pid as i32).is_some_and(|(_, s)| s == self.pid_start),
        };
        if !alive {
            self.result = RunResult::Crashed;
        }
    }

    /// The least a report says: who, when, and how it ended (steps without output).
    fn compact(&self) -> RunReport {
        let mut r = self.clone();
        r.skipped.clear();
        for s in &mut r.steps {
            s.output_tail.clear();
        }
        r
    }

    /// The smallest complete report, as JSON with the result first.
    fn minimal_json(&self) -> Vec<u8> {
        let v = serde_json::json!({
            "result": self.result,
            "exit_code": self.exit_code,
            "run_id": self.run_id,
            "format": self.format,
            "pid": self.pid,
            "started": self.started,
            "ended": self.ended,
            "duration_ms": self.duration_ms,
            "overhead_ms": self.overhead_ms,
            "base_dir": self.base_dir.to_string_lossy(),
            "phase_order": [],
            "error": "the disk was full: this report keeps only the result",
            "steps": [], "skipped": [], "state": [], "containers": [],
        });
        let mut j = serde_json::to_vec(&v).unwrap_or_default();
        j.push(b'\n');
        j
    }
}

/// The sequence number a run id starts with (`00000042-…`, at least 8 digits); 0 for
/// other names (older formats sort first).
fn seq_of(name: &str) -> u128 {
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    if (8..=38).contains(&digits) && name.as_bytes().get(digits) == Some(&b'-') {
        name[..digits].parse().unwrap_or(0)
    } else {
        0
    }
}

/// The highest sequence a run id holds (its 8 digits).
const MAX_SEQ: u128 = 99_999_999;

/// Sorts report file names oldest first by run order.
fn sort_by_run(names: &mut [String]) {
    names.sort_by(|a, b| seq_of(a).cmp(&seq_of(b)).then_with(|| a.cmp(b)));
}

/// The reports of one data dir, opened for a run (under the lock).
pub struct Reports {
    data: Dir,
    runs: Dir,
    /// The report files found when opened, oldest first by run order.
    names: Vec<String>,
    /// A descriptor held from a run's start to its end and closed just before the final
    /// report is written: however many files the run left open, its end finds one free.
    spare: std::sync::Mutex<Option<std::os::fd::OwnedFd>>,
}

impl Reports {
    /// Opens (creating) the data dir and its root-only runs dir, lists the reports once,
    /// and removes leftovers of interrupted writes.
    pub fn open(root: &Root, data_dir: &Path) -> Result<Reports> {
        let data = root.create_dir_all(data_dir, 0o755)?;
        let runs = root.create_dir_all(&data_dir.join("runs"), 0o700)?;
        // Only root may change what `orc status` reads: the runs dir is orc's own and
        // kept 0700. A shared data dir with the sticky bit (`/tmp`, 1777) keeps its mode:
        // others cannot replace root's entries there; one without it loses write for
        // group and others.
        let mode = data.stat()?.st_mode & 0o7777;
        let data_mode = if mode & libc::S_ISVTX != 0 {
            mode
        } else {
            mode & !0o022
        };
        for (d, m) in [(&data, data_mode), (&runs, 0o700)] {
            if m != mode || std::ptr::eq(d, &runs) {
                nix::sys::stat::fchmod(d, nix::sys::stat::Mode::from_bits_truncate(m))
                    .ctx(|| format!("setting the mode of {}", d.shown().display()))?;
            }
        }
        data.sweep_tmp()?;
        let mut names = Vec::new();
        for n in runs.names()? {
            if n.as_bytes().starts_with(TMP_PREFIX.as_bytes()) {
                runs.remove(&n)?;
            } else if let Ok(n) = n.into_string()
                && n.ends_with(".json")
                && !n.starts_with('.')
            {
                names.push(n);
            }
        }
        sort_by_run(&mut names);
        Ok(Reports {
            data,
            runs,
            names,
            spare: std::sync::Mutex::default(),
        })
    }

    /// The next run id: one past the highest sequence here, then the UTC time. Ids stay
    /// 8 digits, so they sort as strings: past 99999999, the reports are renumbered.
    pub fn next_id(&mut self, now: SystemTime) -> Result<String> {
        let max = |names: &[String]| names.iter().map(|n| seq_of(n)).max().unwrap_or(0);
        if max(&self.names) >= MAX_SEQ {
            self.renumber()?;
        }
        let next = max(&self.names) + 1;
        Ok(format!("{next:08}-{}", crate::time::run_stamp(now)))
    }

    /// Renumbers the reports 1, 2, ... in run order (their ids inside too, when readable).
    fn renumber(&mut self) -> Result<()> {
        let mut renamed = Vec::new();
        for (i, old) in self.names.iter().enumerate() {
            let rest = old.split_once('-').map_or(old.as_str(), |(_, r)| r);
            let new = format!("{:08}-{rest}", i + 1);
            let report = read_at(&self.runs, old)
                .ok()
                .flatten()
                .and_then(|t| serde_json::from_slice::<RunReport>(&t).ok());
            match report {
                Some(mut r) => {
                    r.run_id = new.trim_end_matches(".json").to_string();
                    self.write(&r, Durable::Process)?;
                    self.runs.remove(OsStr::new(old))?;
                }
                None => nix::fcntl::renameat(&self.runs, old.as_str(), &self.runs, new.as_str())
                    .ctx(|| {
                        format!(
                            "renumbering {}",
                            self.runs.child_shown(OsStr::new(old)).display()
                        )
                    })?,
            }
            renamed.push(new);
        }
        log::warn!("run ids reached {MAX_SEQ}: the kept reports are renumbered from 1");
        self.names = renamed;
        Ok(())
    }

    /// Marks a previous run that is still `running` (its process died) as crashed;
    /// `held` tells whether a report's lock is held by a run (see [`last`]).
    pub fn settle_last(&self, held: &dyn Fn(&RunReport) -> Option<bool>) -> Result<Option<String>> {
        let Some(name) = self.names.last() else {
            return Ok(None);
        };
        let Ok(Some(text)) = read_at(&self.runs, name) else {
            return Ok(None);
        };
        let Ok(mut r) = serde_json::from_slice::<RunReport>(&text) else {
            return Ok(None);
        };
        if r.result != RunResult::Running || held(&r) == Some(true) {
            return Ok(None);
        }
        r.result = RunResult::Crashed;
        self.write(&r, Durable::Process)?;
        Ok(Some(r.run_id))
    }

    fn write(&self, r: &RunReport, sync: Durable) -> Result<()> {
        let mut r = r.clone();
        r.scrub();
        let mut json = serde_json::to_vec_pretty(&r)
            .map_err(|e| crate::error::Error::Failed(format!("writing the report: {e}")))?;
        json.push(b'\n');
        let name = format!("{}.json", r.run_id);
        self.runs
            .write_atomic(OsStr::new(&name), &json, 0o600, sync)
    }

    /// Writes the report of a run that starts, points `last-run.json` at it, prunes.
    /// The spare descriptor for [`finish`](Self::finish) is taken first: a run that could
    /// not end its report never starts one.
    pub fn start(&self, r: &RunReport) -> Result<()> {
        let spare = std::os::fd::AsFd::as_fd(&self.runs)
            .try_clone_to_owned()
            .ctx(|| format!("keeping a descriptor for {}", self.runs.shown().display()))?;
        *self
            .spare
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(spare);
        self.write(r, Durable::Process)?;
        self.data.symlink_atomic(
            OsStr::new(LAST),
            Path::new(&format!("runs/{}.json", r.run_id)),
            Durable::Process,
        )?;
        let current = format!("{}.json", r.run_id);
        let old: Vec<&String> = self.names.iter().filter(|n| **n != current).collect();
        let extra = (old.len() + 1).saturating_sub(KEEP_RUNS);
        for n in &old[..extra] {
            self.runs.remove(OsStr::new(n))?;
        }
        Ok(())
    }

    /// orc's data dir.
    pub fn data(&self) -> &Dir {
        &self.data
    }

    /// Completes the report, made durable with one `fdatasync`. When it does not fit (a
    /// full disk), it is completed with what fits: without output tails, then only the
    /// result, written over the `running` report in place. Returns whether it is whole.
    pub fn finish(&self, r: &RunReport) -> Result<bool> {
        drop(
            self.spare
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        let first = match self.write(r, Durable::Data) {
            Ok(()) => return Ok(true),
            Err(e) => e,
        };
        log::warn!("the run report does not fit ({first}): keeping it without output");
        if self.write(&r.compact(), Durable::Data).is_ok() {
            return Ok(false);
        }
        self.overwrite(r).map(|()| false).map_err(|e| {
            crate::error::Error::Failed(format!("{first}; not even the result fits: {e}"))
        })
    }

    /// Writes the minimal report over the existing one, in place (its blocks are already
    /// there, so no new space is needed): the last resort on a full disk.
    fn overwrite(&self, r: &RunReport) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let name = format!("{}.json", r.run_id);
        let shown = self.runs.child_shown(OsStr::new(&name));
        let fd = nix::fcntl::openat(
            &self.runs,
            name.as_str(),
            nix::fcntl::OFlag::O_WRONLY
                | nix::fcntl::OFlag::O_NOFOLLOW
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ctx(|| format!("opening {}", shown.display()))?;
        let file = std::fs::File::from(fd);
        let mut min = r.clone();
        min.scrub();
        let json = min.minimal_json();
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if json.len() as u64 > len {
            return Err(crate::error::Error::Failed(format!(
                "{}: the result does not fit",
                shown.display()
            )));
        }
        file.write_all_at(&json, 0)
            .and_then(|()| file.set_len(json.len() as u64))
            .and_then(|()| file.sync_data())
            .ctx(|| format!("writing {}", shown.display()))
    }
}

fn read_at(dir: &Dir, name: &str) -> Result<Option<Vec<u8>>> {
    use nix::fcntl::{OFlag, openat};
    match openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) {
        Ok(fd) => crate::root::read_regular(fd, &dir.child_shown(OsStr::new(name))).map(Some),
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(e) => Err(e).ctx(|| format!("reading {}", dir.child_shown(OsStr::new(name)).display())),
    }
}

/// The last run's report (a dead `running` one reads as `crashed`), or `None` if orc
/// never ran here.
/// `held` tells whether the report's lock is held by a run (`None`: cannot tell).
pub fn last(
    root: &Root,
    data_dir: &Path,
    held: &dyn Fn(&RunReport) -> Option<bool>,
) -> Result<Option<RunReport>> {
    let p = data_dir.join(LAST);
    let Some(text) = root.read_input(&p)? else {
        return Ok(None);
    };
    let mut r: RunReport = crate::json::parse_object(&text, &root.shown(&p))?;
    let h = held(&r);
    r.settle(h);
    Ok(Some(r))
}

fn step_line(s: &StepReport) -> String {
    let how = match (s.result, s.exit_code, s.signal) {
        (StepResult::Ok, ..) => "ok".to_string(),
        (StepResult::Skipped, ..) => "skipped".to_string(),
        (StepResult::Timeout, ..) => "timed out".to_string(),
        (r, Some(c), _) => format!("{} (exit {c})", format!("{r:?}").to_lowercase()),
        (r, _, Some(sig)) => format!("{} (signal {sig})", format!("{r:?}").to_lowercase()),
        (r, None, None) => format!("{r:?}").to_lowercase(),
    };
    let note = s
        .note
        .as_deref()
        .map(|n| format!("  {n}"))
        .unwrap_or_default();
    format!(
        "  {:<40} {:>9.1} ms  {how}{note}",
        crate::logging::escape(&format!("{}/{}", s.phase, s.name)),
        s.duration_ms
    )
}

fn suffix(e: &Option<String>) -> String {
    e.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
}

/// How many lines of a failed step's output tail `orc status` shows.
const TAIL_LINES: usize = 10;

/// The report as `orc status --json` prints it: with `running_step` while a run holds
/// the lock.
pub fn with_running(
    r: &RunReport,
    running: Option<&crate::progress::Running>,
) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(r)
        .map_err(|e| crate::error::Error::Failed(format!("writing JSON: {e}")))?;
    if let (Some(p), Some(obj)) = (running, v.as_object_mut()) {
        obj.insert(
            "running_step".into(),
            serde_json::json!({
                "step": p.step,
                "step_elapsed_ms": p.step_for.as_millis() as u64,
                "run_elapsed_ms": p.run_for.as_millis() as u64,
            }),
        );
    }
    Ok(v)
}

/// The header of `orc status`: the result and times, or what runs now.
fn header(r: &RunReport, running: Option<&crate::progress::Running>) -> String {
    if r.result == RunResult::Running {
        let now = match running {
            Some(p) => format!(
                "  running {} for {:.1} s (the run for {:.1} s)\n",
                crate::logging::escape(&p.step),
                p.step_for.as_secs_f64(),
                p.run_for.as_secs_f64()
            ),
            None => "  starting\n".into(),
        };
        return format!(
            "last run {}: running (pid {})\n  started {}\n{now}",
            r.run_id, r.pid, r.started
        );
    }
    let exit = r
        .exit_code
        .map_or_else(|| format!("pid {}", r.pid), |c| format!("exit {c}"));
    format!(
        "last run {}: {} ({exit})\n  started {}, took {:.1} ms, orc's own overhead {:.1} ms, waited {:.1} ms for the lock\n",
        r.run_id,
        r.result.name(),
        r.started,
        r.duration_ms,
        r.overhead_ms,
        r.waited_ms,
    )
}

/// The last lines of a failed step's output, indented.
fn tail_lines(s: &StepReport) -> String {
    let lines: Vec<&str> = s.output_tail.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..]
        .iter()
        .map(|l| format!("      | {}\n", crate::logging::escape(l)))
        .collect()
}

/// The human form of `orc status`.
pub fn render(r: &RunReport, running: Option<&crate::progress::Running>) -> String {
    let mut out = header(r, running);
    out.push_str(&format!("  base dir {}\n", r.base_dir.display()));
    if let Some(e) = &r.error {
        out.push_str(&format!("  error: {e}\n"));
    }
    for s in &r.steps {
        out.push_str(&step_line(s));
        out.push('\n');
        if !s.result.is_success() {
            out.push_str(&tail_lines(s));
        }
    }
    for s in &r.state {
        out.push_str(&format!(
            "  state {}: {} ({} files, {} bytes, {:.1} ms){}\n",
            s.path,
            s.outcome.name(),
            s.files,
            s.bytes,
            s.duration_ms,
            suffix(&s.error)
        ));
    }
    for c in &r.containers {
        out.push_str(&format!(
            "  container {}: {} ({}){}\n",
            c.name,
            c.action,
            c.reason,
            suffix(&c.error)
        ));
    }
    for s in &r.skipped {
        out.push_str(&format!(
            "  skipped {}: {}\n",
            crate::logging::escape(&s.path.to_string_lossy()),
            s.reason
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_of_the_previous_format_still_reads() {
        let old = br#"{"run_id": "20261123T011521.123456Z", "started": "2026-11-23T01:15:21.123Z",
            "ended": "2026-11-23T01:15:22.000Z", "duration_ms": 877.0, "overhead_ms": 20.0,
            "result": "ok", "exit_code": 0, "base_dir": "/usr/libexec/os-refresh-config",
            "phase_order": ["pre-configure"], "steps": [], "skipped": [],
            "state": [{"path": "/var/lib/a", "outcome": "no-pristine", "bytes": 0, "files": 0, "duration_ms": 0.1}],
            "containers": []}"#;
        let mut r: RunReport = crate::json::parse_object(old, Path::new("/r.json")).unwrap();
        r.settle(None);
        assert_eq!((r.format, r.result), (0, RunResult::Ok));
        assert_eq!(r.state[0].outcome, StateOutcome::NoPristine);
    }

    #[test]
    fn run_ids_sort_by_sequence_not_by_time() {
        assert_eq!(seq_of("00000042-19700101T000000Z.json"), 42);
        assert_eq!(seq_of("20261123T011521.123456Z.json"), 0);
        let d = tempfile::tempdir().unwrap();
        let root = Root::open(d.path()).unwrap();
        let later = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2_000_000_000);
        let mut ids = Vec::new();
        for t in [later, SystemTime::UNIX_EPOCH] {
            let mut reps = Reports::open(&root, Path::new("/var/lib/orc")).unwrap();
            let id = reps.next_id(t).unwrap();
            reps.start(&RunReport::starting(id.clone(), "/b".into(), vec![]))
                .unwrap();
            ids.push(id);
        }
        assert!(ids[0].starts_with("00000001-2033"), "{ids:?}");
        assert!(ids[1].starts_with("00000002-1970"), "{ids:?}");
        let last = last(&root, Path::new("/var/lib/orc"), &|_| None)
            .unwrap()
            .unwrap();
        assert_eq!(
            last.run_id, ids[1],
            "the newest run is the last, whatever its clock"
        );
        assert_eq!(last.result, RunResult::Running, "our own process is alive");
        let mode = std::fs::metadata(d.path().join("var/lib/orc/runs")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o700
        );
    }
}
