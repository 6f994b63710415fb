//! `environment.d`: its files are sourced once, in order, by bash; what they
//! export reaches every script. Each file is the opened, checked fd (bash
//! reads `/dev/fd/N`), never its path again. Every value the files set under
//! a name that says secret (or that the config names) is handed to the
//! redactor, also when sourcing fails, so no such value reaches a log line,
//! an error, a report or the output orc relays, bash's own messages included.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::exec::{self, CArgs, Job, Output, Program};
use crate::redact;

/// The environment scripts get, before orc's own `ORC_*` variables.
pub type Env = BTreeMap<OsString, OsString>;

/// Prints, on its own fd (the files' output goes to stderr), `F<name>` before sourcing each
/// file and `K` once all are in, then `E` and every exported `NAME=value`, `V` and the
/// variables the files set without exporting them, `U` and the names exported at the start
/// that no longer are (the files unset them), and `Z`. After a failure the same dump
/// comes from an EXIT trap (unless a file replaced it: then there is no `E`, and bash's
/// message is not shown, since its values could not be redacted). The dump sets its own
/// IFS, so a file's IFS cannot split it. Names are listed by bash's own expansions
/// (`${!A*}`, `${!n@a}`), never through a command substitution: bash is the one
/// process sourcing costs (each `$(...)` forks, and a fork is about a millisecond).
const SOURCE: &str = r#"exec {__orc_out}>&1
__orc_set() {
  local IFS=' '
  __orc_names=" ${!A*} ${!B*} ${!C*} ${!D*} ${!E*} ${!F*} ${!G*} ${!H*} ${!I*} ${!J*} ${!K*} ${!L*} ${!M*} ${!N*} ${!O*} ${!P*} ${!Q*} ${!R*} ${!S*} ${!T*} ${!U*} ${!V*} ${!W*} ${!X*} ${!Y*} ${!Z*} ${!a*} ${!b*} ${!c*} ${!d*} ${!e*} ${!f*} ${!g*} ${!h*} ${!i*} ${!j*} ${!k*} ${!l*} ${!m*} ${!n*} ${!o*} ${!p*} ${!q*} ${!r*} ${!s*} ${!t*} ${!u*} ${!v*} ${!w*} ${!x*} ${!y*} ${!z*} ${!_*} "
}
__orc_exported() {
  local - __orc_n
  set +u
  __orc_set
  __orc_exp=' '
  for __orc_n in $__orc_names; do
    if [[ ${!__orc_n@a} == *x* ]]; then __orc_exp+="$__orc_n "; fi
  done
}
__orc_exported
__orc_start=$__orc_names
__orc_start_e=$__orc_exp
__orc_dump() {
  local IFS=$' \t\n' __orc_n
  local -a __orc_o=(E)
  __orc_exported
  for __orc_n in $__orc_exp; do
    [ -z "${!__orc_n+x}" ] || __orc_o+=("$__orc_n=${!__orc_n}")
  done
  __orc_o+=(V)
  for __orc_n in $__orc_names; do
    case "$__orc_start" in *" $__orc_n "*) continue ;; esac
    case "$__orc_n" in __orc_*|BASH_*) continue ;; esac
    __orc_o+=("$__orc_n=${!__orc_n-}")
  done
  __orc_o+=(U)
  for __orc_n in $__orc_start_e; do
    case "$__orc_exp" in *" $__orc_n "*) ;; *) __orc_o+=("$__orc_n") ;; esac
  done
  printf '%s\0' "${__orc_o[@]}" Z >&"$__orc_out"
}
trap '__orc_s=$?; set +eu; [ -n "${__orc_done-}" ] || __orc_dump; exit $__orc_s' EXIT
set -eu -o pipefail
__orc_fd=3
for __orc_f in "$@"; do
  printf 'F%s\0' "$__orc_f" >&"$__orc_out"
  . "/dev/fd/$__orc_fd" >&2
  __orc_fd=$((__orc_fd + 1))
done
printf 'K\0' >&"$__orc_out"
__orc_dump
__orc_done=1
"#;

/// Variables bash sets on its own; they keep orc's value (or stay unset).
const BASH_OWN: &[&str] = &["SHLVL", "_", "OLDPWD", "PWD"];

/// orc's environment minus what no child may see.
pub fn inherited() -> Env {
    std::env::vars_os()
        .filter(|(k, _)| k != "NOTIFY_SOCKET")
        .collect()
}

/// What bash printed: the files sourced, whether all succeeded, the exports, the others.
#[derive(Debug, Default, PartialEq)]
struct Parsed<'a> {
    sourced: Vec<&'a [u8]>,
    complete: bool,
    /// The whole dump came (through `Z`).
    dumped: bool,
    exported: Vec<(&'a [u8], &'a [u8])>,
    local: Vec<(&'a [u8], &'a [u8])>,
    /// Names exported at the start that the files unset (or stopped exporting).
    unset: Vec<&'a [u8]>,
}

fn parse(out: &[u8]) -> Parsed<'_> {
    let mut p = Parsed::default();
    let mut section = 0;
    for f in out.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        match (section, f) {
            (0, b"K") => p.complete = true,
            (0, b"E") => section = 1,
            (1, b"V") => section = 2,
            (2, b"U") => section = 3,
            (3, b"Z") => {
                p.dumped = true;
                break;
            }
            (3, name) => p.unset.push(name),
            (0, _) => {
                if let Some(name) = f.strip_prefix(b"F") {
                    p.sourced.push(name);
                }
            }
            (_, kv) => {
                let Some(eq) = kv.iter().position(|b| *b == b'=') else {
                    continue;
                };
                let pair = (&kv[..eq], &kv[eq + 1..]);
                if section == 1 {
                    p.exported.push(pair);
                } else {
                    p.local.push(pair);
                }
            }
        }
    }
    p
}

/// Hands every value the files set (changed from `base`) under a secret name to the
/// redactor.
fn redact_values(p: &Parsed, base: &Env) {
    let changed = p
        .exported
        .iter()
        .filter(|(k, v)| base.get(OsStr::from_bytes(k)).map(|b| b.as_bytes()) != Some(*v))
        .chain(&p.local)
        .filter(|(k, _)| redact::is_secret_name(&String::from_utf8_lossy(k)))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    redact::add(changed);
}

/// One environment.d file: its name (shown) and its opened, checked fd.
pub struct EnvFile<'a> {
    pub shown: PathBuf,
    pub fd: BorrowedFd<'a>,
}

/// Sources `files` and returns the environment for scripts.
pub fn source(
    files: &[EnvFile],
    base: Env,
    deadline: Option<Instant>,
    live: &crate::procs::Live,
) -> Result<Env> {
    if files.is_empty() {
        return Ok(base);
    }
    let bash = exec::bash()?;
    let mut args: Vec<OsString> = vec![
        "bash".into(),
        "-c".into(),
        SOURCE.into(),
        "orc-environment".into(),
    ];
    args.extend(files.iter().map(|f| f.shown.clone().into_os_string()));
    let argv = CArgs::new(&args);
    // The wrapper runs with bash's defaults: an exported `SHELLOPTS` (`xtrace`, say)
    // would change how it runs and what it prints, and would carry its `set -eu -o
    // pipefail` out to every script. Scripts get the caller's, from `base`.
    let env = CArgs::env(
        base.iter()
            .filter(|(k, _)| !matches!(k.as_bytes(), b"SHELLOPTS" | b"BASHOPTS")),
    );
    let extra: Vec<BorrowedFd> = files.iter().map(|f| f.fd).collect();
    let job = Job {
        program: Program::Path(bash),
        argv: &argv,
        env: &env,
        extra: &extra,
        env_extra: None,
        name: "bash (environment.d)",
        live,
        shielded: false,
    };
    let out = exec::run(&job, deadline, Output::Capture)?;
    let p = parse(&out.captured);
    redact_values(&p, &base);
    if let Some(sig) = out.interrupted {
        return Err(Error::Interrupted(sig));
    }
    if out.exit.success() && p.complete && p.dumped {
        // The inherited environment whole (names bash cannot hold, such as `A-B` or the
        // exported functions' `BASH_FUNC_f%%`, pass untouched), less what the files
        // unset, plus what they export.
        let mut env = base.clone();
        for k in &p.unset {
            env.remove(OsStr::from_bytes(k));
        }
        env.extend(p.exported.iter().map(|(k, v)| {
            (
                OsString::from_vec(k.to_vec()),
                OsString::from_vec(v.to_vec()),
            )
        }));
        for k in BASH_OWN {
            match base.get(OsStr::new(k)) {
                Some(v) => env.insert(k.into(), v.clone()),
                None => env.remove(OsStr::new(k)),
            };
        }
        return Ok(env);
    }
    Err(failure(&p, &out, files))
}

/// The error for a failed or timed-out sourcing: the file, and bash's last line.
fn failure(p: &Parsed, out: &exec::Outcome, files: &[EnvFile]) -> Error {
    let file = p
        .sourced
        .last()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .unwrap_or_else(|| "environment.d".into());
    let mut msg = String::from_utf8_lossy(&out.tail).into_owned();
    for (i, f) in files.iter().enumerate() {
        msg = msg.replace(&format!("/dev/fd/{}", i + 3), &f.shown.to_string_lossy());
    }
    // Without the dump, the values in bash's message are unknown: it is not shown.
    let last = msg
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .filter(|_| p.dumped)
        .map(|l| format!(": {}", redact::apply(l.trim())))
        .unwrap_or_default();
    let file = crate::logging::escape(&file);
    if out.timed_out {
        Error::TimedOut(format!("sourcing {file} timed out{last}"))
    } else {
        Error::Failed(format!(
            "sourcing {file} failed (exit {}){last}",
            out.exit.shell_code()
        ))
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
    fn parses_markers_exports_and_locals() {
        let p = parse(b"F/e/10-a\0F/e/20-b\0K\0E\0FOO=1\0BAR=x=y\0V\0PW=s\0U\0GONE\0Z\0X=late\0");
        assert_eq!(p.sourced, [&b"/e/10-a"[..], b"/e/20-b"]);
        assert!(p.complete && p.dumped);
        assert_eq!(p.exported, [(&b"FOO"[..], &b"1"[..]), (b"BAR", b"x=y")]);
        assert_eq!(p.local, [(&b"PW"[..], &b"s"[..])]);
        assert_eq!(p.unset, [&b"GONE"[..]]);
        let p = parse(b"F/e/10-a\0E\0A=1\0V\0");
        assert!(!p.complete);
        assert_eq!(p.sourced.last().unwrap(), b"/e/10-a");
    }
}
