//! `environment.d`: its files are sourced once, in order, by bash; what they
//! export reaches every script. Values never reach a log or a report.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::exec::{self, Signals, Stdout};

/// The environment scripts get, before orc's own `ORC_*` variables.
pub type Env = BTreeMap<OsString, OsString>;

/// Prints `F<file>` before sourcing each file, `E` once all are in, then the exports.
const SOURCE: &str = r#"set -eu -o pipefail
for __orc_f in "$@"; do printf 'F%s\0' "$__orc_f"; . "$__orc_f" >&2; done
set +eu
printf 'E\0'
for __orc_n in $(compgen -e); do
  [ -z "${!__orc_n+x}" ] || printf '%s=%s\0' "$__orc_n" "${!__orc_n}"
done
"#;

/// Variables bash sets on its own; they keep orc's value (or stay unset).
const BASH_OWN: &[&str] = &["SHLVL", "_", "OLDPWD", "PWD"];

/// orc's environment minus what no child may see.
pub fn inherited() -> Env {
    std::env::vars_os()
        .filter(|(k, _)| k != "NOTIFY_SOCKET")
        .collect()
}

/// Parses bash's output: the names of the files sourced, then (if all succeeded) the exports.
fn parse(out: &[u8]) -> (Vec<&[u8]>, Option<Env>) {
    let mut fields = out.split(|b| *b == 0);
    let mut sourced = Vec::new();
    for f in fields.by_ref() {
        if f == b"E" {
            let env = fields
                .filter(|f| !f.is_empty())
                .filter_map(|kv| {
                    let eq = kv.iter().position(|b| *b == b'=')?;
                    Some((
                        OsString::from_vec(kv[..eq].to_vec()),
                        OsString::from_vec(kv[eq + 1..].to_vec()),
                    ))
                })
                .collect();
            return (sourced, Some(env));
        }
        if let Some(name) = f.strip_prefix(b"F") {
            sourced.push(name);
        }
    }
    (sourced, None)
}

/// Sources `files` and returns the environment for scripts.
pub fn source(
    files: &[PathBuf],
    base: Env,
    deadline: Option<Instant>,
    signals: &Signals,
) -> Result<Env> {
    if files.is_empty() {
        return Ok(base);
    }
    let mut cmd = Command::new("bash");
    cmd.env_clear()
        .envs(&base)
        .arg("-c")
        .arg(SOURCE)
        .arg("orc-environment")
        .args(files);
    let out = exec::run(cmd, deadline, Stdout::Capture, signals)?;
    if let Some(sig) = out.interrupted {
        return Err(Error::Interrupted(sig));
    }
    let (sourced, env) = parse(&out.captured);
    match env {
        Some(mut env) if out.exit.success() => {
            for k in BASH_OWN {
                match base.get(std::ffi::OsStr::new(k)) {
                    Some(v) => env.insert(k.into(), v.clone()),
                    None => env.remove(std::ffi::OsStr::new(k)),
                };
            }
            Ok(env)
        }
        _ => {
            let file = sourced
                .last()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .unwrap_or_else(|| "environment.d".into());
            let how = if out.timed_out {
                "timed out".to_string()
            } else {
                format!("failed (exit {})", out.exit.shell_code())
            };
            let msg = String::from_utf8_lossy(&out.tail);
            let last = msg.lines().rev().find(|l| !l.trim().is_empty());
            Err(Error::Failed(match last {
                Some(l) => format!("sourcing {file} {how}: {}", l.trim()),
                None => format!("sourcing {file} {how}"),
            }))
        }
    }
}

/// Names (never values) of what environment.d added or changed, for debug logs.
pub fn changed_names(before: &Env, after: &Env) -> Vec<String> {
    after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| String::from_utf8_lossy(k.as_bytes()).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_markers_and_exports() {
        let (s, env) = parse(b"F/e/10-a\0F/e/20-b\0E\0FOO=1\0BAR=x=y\0");
        assert_eq!(s, [&b"/e/10-a"[..], b"/e/20-b"]);
        let env = env.unwrap();
        assert_eq!(env.get(std::ffi::OsStr::new("BAR")).unwrap(), "x=y");
        let (s, env) = parse(b"F/e/10-a\0F/e/20-b\0");
        assert_eq!(s.last().unwrap(), b"/e/20-b");
        assert!(env.is_none());
    }
}
