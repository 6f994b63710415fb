//! The node-exporter textfile: after each run, when the config names
//! `metrics.textfile_dir`, `orc.prom` is written there (under the root) in the
//! Prometheus text format, atomically (a unique temporary name, fdatasync,
//! rename, directory fsync), so the collector never reads half a file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Result;
use crate::report::{RunReport, RunResult};
use crate::root::{Durable, Root};

/// The file's name in the textfile dir (the collector reads `*.prom`; orc's temporary
/// names do not end so).
pub const FILE: &str = "orc.prom";

/// A label value in the text format: `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes one metric family: HELP, TYPE, then its samples.
fn family(out: &mut String, name: &str, help: &str, samples: &[(String, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

fn single(out: &mut String, name: &str, help: &str, v: f64) {
    family(out, name, help, &[(String::new(), v)]);
}

/// `{k="v",...}` counts of a field over items, sorted by value.
fn counts<'a>(key: &str, values: impl Iterator<Item = &'a str>) -> Vec<(String, f64)> {
    let mut m: BTreeMap<&str, f64> = BTreeMap::new();
    for v in values {
        *m.entry(v).or_default() += 1.0;
    }
    m.into_iter()
        .map(|(v, n)| (format!("{{{key}=\"{}\"}}", label(v)), n))
        .collect()
}

/// The textfile for a finished run that ended at `ended`.
pub fn render(r: &RunReport, ended: SystemTime) -> String {
    let mut out = String::new();
    let at = ended.duration_since(UNIX_EPOCH).unwrap_or_default();
    single(
        &mut out,
        "orc_last_run_timestamp_seconds",
        "When the last orc run ended (Unix time).",
        at.as_secs_f64(),
    );
    single(
        &mut out,
        "orc_last_run_success",
        "1 if the last orc run succeeded, else 0.",
        f64::from(u8::from(r.result == RunResult::Ok)),
    );
    single(
        &mut out,
        "orc_last_run_duration_seconds",
        "How long the last orc run took (the lock wait excluded).",
        r.duration_ms / 1e3,
    );
    single(
        &mut out,
        "orc_last_run_exit_code",
        "The exit code of the last orc run.",
        f64::from(r.exit_code.unwrap_or(-1)),
    );
    family(
        &mut out,
        "orc_last_run_info",
        "The last orc run's id and result.",
        &[(
            format!(
                "{{run_id=\"{}\",result=\"{}\"}}",
                label(&r.run_id),
                r.result.name()
            ),
            1.0,
        )],
    );
    let mut seen = std::collections::HashSet::new();
    let steps: Vec<&_> = r
        .steps
        .iter()
        .filter(|s| seen.insert((s.phase.as_str(), s.name.as_str())))
        .collect();
    let step_labels = |s: &crate::report::StepReport| {
        format!(
            "{{phase=\"{}\",step=\"{}\"}}",
            label(&s.phase),
            label(&s.name)
        )
    };
    family(
        &mut out,
        "orc_step_duration_seconds",
        "How long each step of the last orc run took.",
        &steps
            .iter()
            .map(|s| (step_labels(s), s.duration_ms / 1e3))
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "orc_step_success",
        "1 if the step succeeded (or was skipped) in the last orc run, else 0.",
        &steps
            .iter()
            .map(|s| {
                let ok = u8::from(s.result.is_success());
                (step_labels(s), f64::from(ok))
            })
            .collect::<Vec<_>>(),
    );
    family(
        &mut out,
        "orc_state_paths",
        "Stateful paths by what the last orc run's seeding did with them.",
        &counts("outcome", r.state.iter().map(|s| s.outcome.name())),
    );
    family(
        &mut out,
        "orc_containers",
        "Containers by the action the last orc run's converge took.",
        &counts("action", r.containers.iter().map(|c| c.action.as_str())),
    );
    out
}

/// Writes `dir/orc.prom` under the root, atomically and durably.
pub fn write(root: &Root, dir: &Path, r: &RunReport, ended: SystemTime) -> Result<()> {
    let text = render(r, ended);
    root.write_file(&dir.join(FILE), text.as_bytes(), 0o644, Durable::Full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ContainerReport, StepReport};

    fn step(phase: &str, name: &str, ms: f64, ok: bool) -> StepReport {
        StepReport {
            phase: phase.into(),
            name: name.into(),
            kind: crate::plan::StepKind::Script,
            started: "2026-01-01T00:00:00.000Z".into(),
            duration_ms: ms,
            result: if ok {
                crate::step::StepResult::Ok
            } else {
                crate::step::StepResult::Failed
            },
            exit_code: Some(i32::from(!ok)),
            signal: None,
            timed_out: false,
            note: None,
            output_tail: String::new(),
        }
    }

    #[test]
    fn renders_every_family_with_escaped_labels() {
        let mut r = RunReport::starting("00000001-x".into(), "/b".into(), vec![]);
        r.result = RunResult::Failed;
        r.exit_code = Some(1);
        r.duration_ms = 1500.0;
        r.steps = vec![
            step("configure", "10-a", 250.0, true),
            step("configure", "20-\"b\\", 10.0, false),
        ];
        r.containers = vec![ContainerReport {
            name: "web".into(),
            action: "create".into(),
            reason: "new".into(),
            duration_ms: 1.0,
            error: None,
        }];
        let t = render(
            &r,
            UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
        );
        assert!(
            t.contains("orc_last_run_timestamp_seconds 1700000000\n"),
            "{t}"
        );
        assert!(t.contains("orc_last_run_success 0\n"));
        assert!(t.contains("orc_last_run_duration_seconds 1.5\n"));
        assert!(t.contains("orc_step_duration_seconds{phase=\"configure\",step=\"10-a\"} 0.25\n"));
        assert!(
            t.contains("orc_step_success{phase=\"configure\",step=\"20-\\\"b\\\\\"} 0\n"),
            "{t}"
        );
        assert!(t.contains("orc_containers{action=\"create\"} 1\n"));
        assert!(t.contains("# TYPE orc_state_paths gauge\n"));
    }
}
