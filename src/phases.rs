//! The pure rules of a run: the phases and their order, which names may run,
//! the `sort -n` order of names, and why an entry is not a script.

use std::cmp::Ordering;
use std::ffi::OsStr;

use serde::{Deserialize, Serialize};

use crate::error::Result;

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

/// Why a directory entry is not a script; `None` means it runs.
pub fn classify(
    name: &OsStr,
    st: Option<&nix::sys::stat::FileStat>,
    rule: &NameRule,
) -> Option<String> {
    if !name.to_str().is_some_and(|n| rule.matches(n)) {
        return Some(format!("name does not match {}", rule.describe()));
    }
    match st.map(|s| s.st_mode) {
        None => Some("dangling symlink".into()),
        Some(m) if m & libc::S_IFMT == libc::S_IFDIR => Some("is a directory".into()),
        Some(m) if m & libc::S_IFMT != libc::S_IFREG => Some("not a regular file".into()),
        Some(m) if m & 0o111 == 0 => Some("not executable".into()),
        Some(_) => None,
    }
}

/// Whether an environment.d name is sourced: `^[0-9A-Za-z_.-]+$`, not ending in `~`.
pub fn env_name_ok(name: &OsStr) -> bool {
    name.to_str().is_some_and(|n| {
        !n.ends_with('~')
            && !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    })
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
    fn negative_numbers_sort_as_sort_n() {
        // `LC_ALL=C sort -n` gives this order: -5 < -3 < 0 ("-x" has no number), ties by bytes.
        assert_eq!(
            sorted(&["-3y", "-5x", "0-a", "-x", "-05z"]),
            ["-05z", "-5x", "-3y", "-x", "0-a"]
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
