//! The run report: `/var/lib/orc/runs/<run-id>.json` (the last 20 kept) and
//! `last-run.json` pointing at the newest; read back by `orc status`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Context, Result};
use crate::fsutil;
use crate::phases::StepKind;

pub const KEEP_RUNS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunResult {
    Ok,
    Failed,
    Timeout,
    Interrupted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepResult {
    Ok,
    Failed,
    Timeout,
    Interrupted,
    Skipped,
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

/// One stateful path's outcome in the seeding step.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatePathReport {
    pub path: String,
    /// `seeded`, `present`, `no-pristine` or `error`.
    pub outcome: String,
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
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunReport {
    pub run_id: String,
    pub started: String,
    pub ended: String,
    pub duration_ms: f64,
    /// orc's own time: the run's duration less the scripts' and the engine's.
    pub overhead_ms: f64,
    pub result: RunResult,
    pub exit_code: i32,
    pub base_dir: PathBuf,
    pub phase_order: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub steps: Vec<StepReport>,
    pub skipped: Vec<SkippedReport>,
    pub state: Vec<StatePathReport>,
    pub containers: Vec<ContainerReport>,
}

fn runs_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("runs")
}

/// Writes the report durably, repoints `last-run.json`, keeps the newest [`KEEP_RUNS`].
pub fn write(data_dir: &Path, report: &RunReport) -> Result<PathBuf> {
    let runs = runs_dir(data_dir);
    let file = runs.join(format!("{}.json", report.run_id));
    let mut json = serde_json::to_vec_pretty(report).expect("report serializes");
    json.push(b'\n');
    fsutil::write_atomic(&file, &json, 0o644)?;
    fsutil::symlink_atomic(
        Path::new(&format!("runs/{}.json", report.run_id)),
        &data_dir.join("last-run.json"),
    )?;
    let mut names: Vec<String> = fs::read_dir(&runs)
        .ctx(|| format!("reading {}", runs.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
        .collect();
    names.sort();
    if names.len() > KEEP_RUNS {
        for old in &names[..names.len() - KEEP_RUNS] {
            let p = runs.join(old);
            fs::remove_file(&p).ctx(|| format!("removing {}", p.display()))?;
        }
    }
    Ok(file)
}

/// The last run's report, or `None` if orc never ran here.
pub fn last(data_dir: &Path) -> Result<Option<RunReport>> {
    let p = data_dir.join("last-run.json");
    let text = match fs::read(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).ctx(|| format!("reading {}", p.display())),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| crate::config::json_error(&p, &e))
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
        format!("{}/{}", s.phase, s.name),
        s.duration_ms
    )
}

/// The human form of `orc status`.
pub fn render(r: &RunReport) -> String {
    let mut out = format!(
        "last run {}: {} (exit {})\n  started {}, took {:.1} ms, orc's own overhead {:.1} ms\n  base dir {}\n",
        r.run_id,
        format!("{:?}", r.result).to_lowercase(),
        r.exit_code,
        r.started,
        r.duration_ms,
        r.overhead_ms,
        r.base_dir.display()
    );
    if let Some(e) = &r.error {
        out.push_str(&format!("  error: {e}\n"));
    }
    for s in &r.steps {
        out.push_str(&step_line(s));
        out.push('\n');
    }
    for s in &r.state {
        out.push_str(&format!(
            "  state {}: {} ({} files, {} bytes, {:.1} ms){}\n",
            s.path,
            s.outcome,
            s.files,
            s.bytes,
            s.duration_ms,
            s.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
    }
    for c in &r.containers {
        out.push_str(&format!(
            "  container {}: {} ({}){}\n",
            c.name,
            c.action,
            c.reason,
            c.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
    }
    for s in &r.skipped {
        out.push_str(&format!("  skipped {}: {}\n", s.path.display(), s.reason));
    }
    out
}
