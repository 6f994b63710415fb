//! The plan of a run: which phase dirs and scripts exist, which are skipped and
//! why, in which order they run, and where the built-in steps sit.

use std::cmp::Ordering;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Context, Result};

/// A phase of the refresh, named as in os-refresh-config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    PreConfigure,
    Configure,
    Migration,
    PostConfigure,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::PreConfigure => "pre-configure",
            Phase::Configure => "configure",
            Phase::Migration => "migration",
            Phase::PostConfigure => "post-configure",
        }
    }

    /// The dirs this phase reads, merged: upstream's `migration.d` and the design card's `migrations.d`.
    pub fn dirs(self) -> &'static [&'static str] {
        match self {
            Phase::PreConfigure => &["pre-configure.d"],
            Phase::Configure => &["configure.d"],
            Phase::Migration => &["migration.d", "migrations.d"],
            Phase::PostConfigure => &["post-configure.d"],
        }
    }
}

/// Where migrations run: after the containers (the design card) or last (upstream).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseOrder {
    #[default]
    Design,
    Upstream,
}

/// One slot of a run: a phase of scripts, or the built-in containers step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Phase(Phase),
    Containers,
}

impl PhaseOrder {
    pub fn slots(self) -> [Slot; 5] {
        use Phase::*;
        match self {
            PhaseOrder::Design => [
                Slot::Phase(PreConfigure),
                Slot::Phase(Configure),
                Slot::Containers,
                Slot::Phase(Migration),
                Slot::Phase(PostConfigure),
            ],
            PhaseOrder::Upstream => [
                Slot::Phase(PreConfigure),
                Slot::Phase(Configure),
                Slot::Containers,
                Slot::Phase(PostConfigure),
                Slot::Phase(Migration),
            ],
        }
    }

    pub fn phases(self) -> Vec<Phase> {
        self.slots()
            .into_iter()
            .filter_map(|s| match s {
                Slot::Phase(p) => Some(p),
                Slot::Containers => None,
            })
            .collect()
    }
}

/// The sort key of `sort -n`: a leading optional `-` and digits; no number counts as 0.
fn numeric_prefix(name: &[u8]) -> (bool, &[u8]) {
    let (neg, rest) = match name.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, name),
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut num = &rest[..digits];
    while let Some((b'0', tail)) = num.split_first() {
        num = tail;
    }
    (neg && !num.is_empty(), num)
}

/// Run order: by leading number as `sort -n`, ties by byte order. Never locale-dependent.
pub fn compare_names(a: &[u8], b: &[u8]) -> Ordering {
    let (an, ad) = numeric_prefix(a);
    let (bn, bd) = numeric_prefix(b);
    let magnitude = ad.len().cmp(&bd.len()).then_with(|| ad.cmp(bd));
    let numeric = match (an, bn) {
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
    };
    numeric.then_with(|| a.cmp(b))
}

/// Which names may run: upstream's `^[0-9A-Za-z_-]+$`, or `RUN_PARTS_REGEX`.
#[derive(Debug, Clone)]
pub enum NameRule {
    Default,
    Custom(regex_lite::Regex),
}

pub const DEFAULT_REGEX: &str = "^[0-9A-Za-z_-]+$";

impl NameRule {
    /// From the `RUN_PARTS_REGEX` value, if any.
    pub fn from_env(value: Option<String>) -> Result<NameRule> {
        match value {
            None => Ok(NameRule::Default),
            Some(v) => regex_lite::Regex::new(&v)
                .map(NameRule::Custom)
                .map_err(|e| crate::error::invalid(format!("RUN_PARTS_REGEX {v:?}: {e}"))),
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            NameRule::Default => {
                !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            }
            NameRule::Custom(re) => re.is_match(name),
        }
    }

    pub fn describe(&self) -> &str {
        match self {
            NameRule::Default => DEFAULT_REGEX,
            NameRule::Custom(re) => re.as_str(),
        }
    }
}

/// What kind of work a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    Script,
    State,
    Containers,
    ErrorHandler,
}

/// One unit of work, in run order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// A phase name, `containers` or `error`.
    pub phase: &'static str,
    pub name: String,
    pub kind: StepKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

/// An entry that will not run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// Everything a run will do, computed before anything is done.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub base_dir: PathBuf,
    pub phase_order: Vec<&'static str>,
    /// Phase dirs that exist (upstream logs "Starting phase" only for these).
    pub present_phases: Vec<&'static str>,
    pub env_files: Vec<PathBuf>,
    pub steps: Vec<Step>,
    pub error_handlers: Vec<Step>,
    pub skipped: Vec<Skipped>,
    /// Entries that must not run as root: the run is refused while any is here.
    pub unsafe_entries: Vec<Skipped>,
}

/// What to put in the plan besides scripts.
#[derive(Debug, Clone, Copy)]
pub struct Selection<'a> {
    pub order: PhaseOrder,
    /// Empty = every phase.
    pub only: &'a [Phase],
    pub state: bool,
    pub containers: bool,
    /// Check owners and modes (when running as root).
    pub check_owner: bool,
}

pub const STATE_STEP: &str = "01-orc-state";
pub const CONTAINERS_STEP: &str = "orc-containers";

/// Why a directory entry is not a script; `None` means it runs.
pub fn classify(name: &OsStr, meta: Option<&fs::Metadata>, rule: &NameRule) -> Option<String> {
    if !name.to_str().is_some_and(|n| rule.matches(n)) {
        return Some(format!("name does not match {}", rule.describe()));
    }
    match meta {
        None => Some("dangling symlink".into()),
        Some(m) if m.is_dir() => Some("is a directory".into()),
        Some(m) if !m.is_file() => Some("not a regular file".into()),
        Some(m) if m.permissions().mode() & 0o111 == 0 => Some("not executable".into()),
        Some(_) => None,
    }
}

/// Why a path must not run as root, if it must not.
pub fn unsafe_reason(meta: &fs::Metadata) -> Option<String> {
    let mode = meta.permissions().mode();
    if meta.uid() != 0 {
        Some(format!("owned by uid {}, not root", meta.uid()))
    } else if mode & 0o022 != 0 {
        Some(format!(
            "writable by group or others (mode {:o})",
            mode & 0o7777
        ))
    } else {
        None
    }
}

/// A runnable entry: its name's bytes (the sort key) and its path.
pub type Entry = (Vec<u8>, PathBuf);

/// The scripts of one directory in run order, plus what was skipped.
pub fn scan_dir(dir: &Path, rule: &NameRule) -> Result<(Vec<Entry>, Vec<Skipped>)> {
    use std::os::unix::ffi::OsStrExt;
    let mut run = Vec::new();
    let mut skipped = Vec::new();
    let entries = fs::read_dir(dir).ctx(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let entry = entry.ctx(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        let meta = fs::metadata(&path).ok();
        match classify(&entry.file_name(), meta.as_ref(), rule) {
            None => run.push((entry.file_name().as_bytes().to_vec(), path)),
            Some(reason) => skipped.push(Skipped { path, reason }),
        }
    }
    run.sort_by(|a, b| compare_names(&a.0, &b.0).then_with(|| a.1.cmp(&b.1)));
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((run, skipped))
}

/// `environment.d` files in byte order, plus what was skipped.
pub fn env_files(base: &Path) -> Result<(Vec<PathBuf>, Vec<Skipped>)> {
    let dir = base.join("environment.d");
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((files, skipped)),
        Err(e) => return Err(e).ctx(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.ctx(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name();
        let name_ok = name.to_str().is_some_and(|n| {
            !n.ends_with('~')
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        });
        if !name_ok {
            skipped.push(Skipped {
                path,
                reason: "name does not match ^[0-9A-Za-z_.-]+$ (or ends with ~)".into(),
            });
        } else if !fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            skipped.push(Skipped {
                path,
                reason: "not a regular file".into(),
            });
        } else {
            files.push(path);
        }
    }
    files.sort();
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((files, skipped))
}

fn builtin(phase: &'static str, name: &str, kind: StepKind) -> Step {
    Step {
        phase,
        name: name.into(),
        kind,
        path: None,
    }
}

/// Reads the base dir and builds the plan.
pub fn plan(base: &Path, sel: Selection, rule: &NameRule) -> Result<Plan> {
    let mut plan = Plan {
        base_dir: base.to_path_buf(),
        phase_order: sel.order.phases().iter().map(|p| p.name()).collect(),
        ..Plan::default()
    };
    let check = |plan: &mut Plan, path: &Path| {
        if sel.check_owner
            && let Ok(meta) = fs::metadata(path)
            && let Some(reason) = unsafe_reason(&meta)
        {
            plan.unsafe_entries.push(Skipped {
                path: path.to_path_buf(),
                reason,
            });
        }
    };
    if base.is_dir() {
        check(&mut plan, base);
    }
    let (env, env_skipped) = env_files(base)?;
    for f in &env {
        check(&mut plan, f);
    }
    plan.env_files = env;
    plan.skipped.extend(env_skipped);
    let wanted = |p: Phase| sel.only.is_empty() || sel.only.contains(&p);
    for slot in sel.order.slots() {
        let phase = match slot {
            Slot::Containers => {
                if sel.containers && sel.only.is_empty() {
                    plan.steps
                        .push(builtin("containers", CONTAINERS_STEP, StepKind::Containers));
                }
                continue;
            }
            Slot::Phase(p) if wanted(p) => p,
            Slot::Phase(_) => continue,
        };
        let mut scripts = Vec::new();
        for dir in phase.dirs() {
            let dir = base.join(dir);
            if !dir.is_dir() {
                continue;
            }
            check(&mut plan, &dir);
            if !plan.present_phases.contains(&phase.name()) {
                plan.present_phases.push(phase.name());
            }
            let (run, skipped) = scan_dir(&dir, rule)?;
            scripts.extend(run);
            plan.skipped.extend(skipped);
        }
        if phase == Phase::PreConfigure && sel.state {
            scripts.push((STATE_STEP.as_bytes().to_vec(), PathBuf::new()));
        }
        scripts.sort_by(|a, b| compare_names(&a.0, &b.0).then_with(|| a.1.cmp(&b.1)));
        for (name, path) in scripts {
            if path.as_os_str().is_empty() {
                plan.steps
                    .push(builtin(phase.name(), STATE_STEP, StepKind::State));
                continue;
            }
            check(&mut plan, &path);
            plan.steps.push(Step {
                phase: phase.name(),
                name: String::from_utf8_lossy(&name).into_owned(),
                kind: StepKind::Script,
                path: Some(path),
            });
        }
    }
    let error_dir = base.join("error.d");
    if error_dir.is_dir() {
        check(&mut plan, &error_dir);
        let (run, skipped) = scan_dir(&error_dir, rule)?;
        plan.skipped.extend(skipped);
        for (name, path) in run {
            check(&mut plan, &path);
            plan.error_handlers.push(Step {
                phase: "error",
                name: String::from_utf8_lossy(&name).into_owned(),
                kind: StepKind::ErrorHandler,
                path: Some(path),
            });
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(names: &[&str]) -> Vec<String> {
        let mut v: Vec<&str> = names.to_vec();
        v.sort_by(|a, b| compare_names(a.as_bytes(), b.as_bytes()));
        v.into_iter().map(String::from).collect()
    }

    #[test]
    fn numeric_then_bytes() {
        assert_eq!(
            sorted(&[
                "20-b", "9-z", "100-a", "abc", "010-x", "10-x", "Zed", "_u", "-5x"
            ]),
            [
                "-5x", "Zed", "_u", "abc", "9-z", "010-x", "10-x", "20-b", "100-a"
            ]
        );
    }

    #[test]
    fn ties_are_bytewise_not_locale() {
        // In en_US collation "a" < "B"; bytewise "B" (0x42) < "a" (0x61).
        assert_eq!(sorted(&["10-a", "10-B", "10_c"]), ["10-B", "10-a", "10_c"]);
    }

    #[test]
    fn huge_numbers_do_not_overflow() {
        assert_eq!(
            sorted(&[
                "99999999999999999999999-a",
                "100000000000000000000000-b",
                "5"
            ]),
            [
                "5",
                "99999999999999999999999-a",
                "100000000000000000000000-b"
            ]
        );
    }

    #[test]
    fn default_name_rule() {
        let r = NameRule::Default;
        assert!(r.matches("10-foo_bar"));
        for bad in ["foo.sh", "", "a b", "foo~", ".hidden", "é"] {
            assert!(!r.matches(bad), "{bad}");
        }
        let custom = NameRule::from_env(Some("^[a-z.]+$".into())).unwrap();
        assert!(custom.matches("foo.sh"));
        assert!(NameRule::from_env(Some("(".into())).is_err());
    }

    #[test]
    fn slot_orders() {
        use Phase::*;
        assert_eq!(
            PhaseOrder::Design.phases(),
            [PreConfigure, Configure, Migration, PostConfigure]
        );
        assert_eq!(
            PhaseOrder::Upstream.phases(),
            [PreConfigure, Configure, PostConfigure, Migration]
        );
        assert_eq!(PhaseOrder::Design.slots()[2], Slot::Containers);
        assert_eq!(PhaseOrder::Upstream.slots()[2], Slot::Containers);
    }
}
