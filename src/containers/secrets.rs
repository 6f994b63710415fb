//! Secrets kept secret: `env_file`, `secrets` and `configs` are read by orc
//! through the root (owner and mode checked; a file holding secrets must not be
//! readable by non-root), their contents go into the spec's hash as one digest,
//! every secret value goes to the redactor, and the environment reaches the
//! engine through a 0600 file (`--env-file`), never through its argv.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use sha2::{Digest, Sha256};

use super::spec::Spec;
use crate::error::{Context, Result, invalid};
use crate::root::{Dir, Durable};
use crate::setup::Setup;
use crate::trust::Opener;

/// The env file orc writes in a container's runtime dir for the engine.
pub const ENV_FILE: &str = ".orc-env";

/// Whether a variable's name says it holds a secret (`DB_PASSWORD`, `API_TOKEN`,
/// `SECRET_KEY`; not `..._FILE`, which names a file).
pub fn secret_name(k: &str) -> bool {
    let u = k.to_ascii_uppercase();
    !u.ends_with("_FILE")
        && ([
            "PASSWORD",
            "PASSWD",
            "SECRET",
            "TOKEN",
            "PRIVATE_KEY",
            "API_KEY",
            "APIKEY",
        ]
        .iter()
        .any(|w| u.contains(w))
            || u.ends_with("_KEY")
            || u.ends_with("_PASS"))
}

/// The refusal of a secret readable by non-root.
pub fn readable(shown: &Path, what: &str, mode: u32) -> crate::error::Error {
    invalid(format!(
        "{}: holds a secret ({what}) and is readable by non-root (mode {:o}): make it 0600, owned by root",
        shown.display(),
        mode & 0o7777
    ))
}

/// A spec file (JSON) that sets a secret-looking variable must be private.
pub fn check_spec_file(shown: &Path, mode: u32, spec: &Spec) -> Result<()> {
    if mode & 0o044 == 0 {
        return Ok(());
    }
    match spec
        .env
        .iter()
        .find(|(k, v)| secret_name(k) && !v.is_empty())
    {
        Some((k, _)) => Err(readable(shown, &format!("env {k}"), mode)),
        None => Ok(()),
    }
}

/// Parses an env file as compose does: `NAME=value` lines, `#` comments, blank lines, an
/// optional `export `, values in single quotes (literal) or double quotes (`\n`, `\"`,
/// `\\` escapes), unquoted values trimmed and cut at ` #`.
pub fn parse_env_file(text: &str, shown: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let bad = |why: &str| invalid(format!("{}: line {}: {why}", shown.display(), i + 1));
        let (k, v) = line.split_once('=').ok_or_else(|| bad("not NAME=value"))?;
        let k = k.trim_end();
        if !super::spec::env_key_ok(k) {
            return Err(bad("not a variable name before ="));
        }
        let value = unquote(v).ok_or_else(|| bad("an unclosed quote (values span one line)"))?;
        if value.contains(['\n', '\0']) {
            return Err(bad(
                "a value with a line break or NUL cannot be passed to the engine",
            ));
        }
        out.insert(k.to_string(), value);
    }
    Ok(out)
}

fn unquote(v: &str) -> Option<String> {
    if let Some(rest) = v.strip_prefix('\'') {
        return rest.find('\'').map(|e| rest[..e].to_string());
    }
    if let Some(rest) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(out),
                '\\' => match chars.next()? {
                    'n' => out.push('\n'),
                    x => out.push(x),
                },
                x => out.push(x),
            }
        }
        return None;
    }
    let v = match v.find(" #") {
        Some(i) => &v[..i],
        None => v,
    };
    Some(v.trim().to_string())
}

/// Reads one host file a spec names, checking it (and, for a secret, that only root can
/// read it).
fn read(
    opener: Opener,
    shown_of: &dyn Fn(&Path) -> PathBuf,
    p: &Path,
    secret: Option<&str>,
) -> Result<Vec<u8>> {
    let shown = shown_of(p);
    let o = opener.open_file(p)?;
    if let Some(what) = secret
        && o.st.st_mode & 0o044 != 0
    {
        return Err(readable(&shown, what, o.st.st_mode));
    }
    crate::root::read_regular(o.fd, &shown)
}

/// Reads the spec's env files, secrets and configs: sets `file_env` and `files_digest`,
/// and hands every secret value to the redactor. Absent files are errors naming them.
pub fn load_files(
    opener: Opener,
    shown_of: &dyn Fn(&Path) -> PathBuf,
    spec: &mut Spec,
) -> Result<()> {
    if spec.env_file.is_empty() && spec.secrets.is_empty() && spec.configs.is_empty() {
        return Ok(());
    }
    let mut h = Sha256::new();
    let mut env = BTreeMap::new();
    let mut hide: Vec<String> = Vec::new();
    let what = format!("env_file of {}", spec.name);
    for p in &spec.env_file {
        let text = read(opener, shown_of, p, Some(&what))?;
        feed(&mut h, "env_file", p, &text);
        let s = String::from_utf8(text)
            .map_err(|_| invalid(format!("{}: not UTF-8", shown_of(p).display())))?;
        let vars = parse_env_file(&s, &shown_of(p))?;
        // Only what is named as a secret: hiding every value (a database's name) would
        // garble every line that names the service.
        hide.extend(
            vars.iter()
                .filter(|(k, _)| secret_name(k))
                .map(|(_, v)| v.clone()),
        );
        env.extend(vars);
    }
    let what = format!("a secret of {}", spec.name);
    for m in &spec.secrets {
        let text = read(opener, shown_of, &m.source, Some(&what))?;
        feed(&mut h, "secret", &m.source, &text);
        let s = String::from_utf8_lossy(&text);
        hide.push(s.trim().to_string());
        hide.extend(s.lines().map(str::to_string));
    }
    for m in &spec.configs {
        let text = read(opener, shown_of, &m.source, None)?;
        feed(&mut h, "config", &m.source, &text);
    }
    crate::redact::add(hide);
    spec.file_env = env;
    spec.files_digest = Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect());
    Ok(())
}

fn feed(h: &mut Sha256, kind: &str, p: &Path, data: &[u8]) {
    h.update(kind.as_bytes());
    h.update([0]);
    h.update(p.as_os_str().as_encoded_bytes());
    h.update([0]);
    h.update((data.len() as u64).to_le_bytes());
    h.update(data);
}

/// The environment the container gets: the env files' variables, `env` over them.
pub fn merged_env(spec: &Spec) -> BTreeMap<&str, &str> {
    let mut m: BTreeMap<&str, &str> = spec
        .file_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    m.extend(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    m
}

/// What the engine call needs besides the spec: the env file's host path (when there
/// is an environment) and the secrets' then the configs' host paths.
#[derive(Debug, Default, Clone)]
pub struct Prepared {
    pub env_file: Option<PathBuf>,
    pub files: Vec<PathBuf>,
}

/// Writes the env file (0600, beneath the root) into the container's runtime dir (`rt` on
/// the host) and resolves the mounted files; `write` false only computes the paths
/// (`orc containers plan`).
pub fn prepare(setup: &Setup, spec: &Spec, rt: &Path, write: bool) -> Result<Prepared> {
    let rt_sys = setup.paths.data_dir.join("containers").join(&spec.name);
    let env = merged_env(spec);
    let env_file = if env.is_empty() {
        None
    } else {
        if write {
            let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            setup.root.write_file(
                &rt_sys.join(ENV_FILE),
                text.as_bytes(),
                0o600,
                Durable::Full,
            )?;
        }
        Some(rt.join(ENV_FILE))
    };
    let files = spec
        .secrets
        .iter()
        .chain(&spec.configs)
        .map(|m| host_file(setup, &m.source))
        .collect::<Result<Vec<_>>>()?;
    Ok(Prepared { env_file, files })
}

/// A file's real path on the host, resolved beneath the root.
fn host_file(setup: &Setup, sys: &Path) -> Result<PathBuf> {
    let shown = setup.root.shown(sys);
    let fd = setup
        .root
        .open_raw(sys, OFlag::O_PATH)
        .ctx(|| format!("opening {}", shown.display()))?;
    Dir::from_fd(fd, shown).real_path()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_as_compose_reads_them() {
        let t = "# c\n\nA=1\nexport B = two words  # note\nC='lit $x # no'\nD=\"q \\\"x\\\" \\\\\"\nE=\n";
        let m = parse_env_file(t, Path::new("/e")).unwrap();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "two words");
        assert_eq!(m["C"], "lit $x # no");
        assert_eq!(m["D"], "q \"x\" \\");
        assert_eq!(m["E"], "");
        for bad in ["NOEQUALS\n", "1A=x\n", "A='open\n", "A=\"x\\ny\"\n"] {
            let e = parse_env_file(bad, Path::new("/e"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("/e: line 1: "), "{bad}: {e}");
        }
    }

    #[test]
    fn secret_names() {
        for s in [
            "DB_PASSWORD",
            "MYSQL_ROOT_PASSWORD",
            "api_token",
            "SECRET_KEY",
            "GITEA__security__SECRET_KEY",
            "SMTP_PASS",
        ] {
            assert!(secret_name(s), "{s}");
        }
        for s in [
            "MYSQL_PASSWORD_FILE",
            "TZ",
            "KEYBOARD",
            "PATH",
            "MYSQL_USER",
        ] {
            assert!(!secret_name(s), "{s}");
        }
    }
}
