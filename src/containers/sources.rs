//! The spec directories (`containers.d`, `compose.d`, `networks.d`): each file
//! orc reads, opened and checked like a script, with its mode (secrets must be
//! private); every entry it does not read gets a warning naming it and why.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::trust::Opener;

/// One file read from a spec dir.
pub struct Input {
    pub shown: PathBuf,
    /// The file's system path (beneath the root).
    pub sys: PathBuf,
    pub text: Vec<u8>,
    pub mode: u32,
}

/// What a directory holds and where else a file of another kind belongs.
pub struct Kind<'a> {
    pub want: &'a dyn Fn(&OsStr) -> bool,
    /// `"JSON container specs (*.json)"`.
    pub holds: &'a str,
}

/// Why `name` is not read, or `None` when it is a file this dir reads.
pub fn skip_reason(name: &OsStr, is_dir: bool, kind: &Kind) -> Option<String> {
    let b = std::os::unix::ffi::OsStrExt::as_bytes(name);
    if (kind.want)(name) {
        // A spec's name is read (a directory or a device there is an error).
        return None;
    }
    if is_dir {
        return Some("a directory: subdirectories are not read".into());
    }
    if b.starts_with(b".") {
        return Some("a hidden file (editor and temporary files are not read)".into());
    }
    let yaml = b.ends_with(b".yaml") || b.ends_with(b".yml");
    let json = b.ends_with(b".json");
    let elsewhere = match (yaml, json) {
        (true, _) => "; compose files go in compose.d",
        (_, true) => "; JSON container specs go in containers.d, networks in networks.d",
        _ => "",
    };
    Some(format!(
        "not read: this directory holds {}{elsewhere}",
        kind.holds
    ))
}

/// Reads the files of `dir` that `kind` wants (sorted by name), warning about every other
/// entry; `None` when the dir does not exist.
pub fn read_dir(
    opener: Opener,
    root: &crate::root::Root,
    dir: &Path,
    kind: &Kind,
) -> Result<Option<Vec<Input>>> {
    let Some((d, resolved)) = opener.open_dir(dir)? else {
        return Ok(None);
    };
    let mut entries = d.entries()?;
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::new();
    for (name, ty) in entries {
        let is_dir = match ty {
            Some(t) => t == nix::dir::Type::Directory,
            None => d
                .lstat(&name)?
                .is_some_and(|st| crate::root::kind(&st) == libc::S_IFDIR),
        };
        let shown = root.shown(&dir.join(&name));
        if let Some(why) = skip_reason(&name, is_dir, kind) {
            log::warn!("{}: {why}", shown.display());
            continue;
        }
        let o = opener.open_in(std::os::fd::AsFd::as_fd(&d), &resolved, &name)?;
        let mode = o.st.st_mode;
        out.push(Input {
            text: crate::root::read_regular(o.fd, &shown)?,
            sys: dir.join(&name),
            shown,
            mode,
        });
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_skipped_entry_has_a_reason() {
        let want = |n: &OsStr| super::super::spec::is_spec_name(n);
        let k = Kind {
            want: &want,
            holds: "JSON container specs (*.json)",
        };
        let r = |n: &str, dir| skip_reason(OsStr::new(n), dir, &k);
        assert_eq!(r("web.json", false), None);
        assert!(
            r("web.yaml", false)
                .unwrap()
                .contains("compose files go in compose.d")
        );
        assert!(r("sub", true).unwrap().contains("subdirectories"));
        assert_eq!(
            r("sub.json", true),
            None,
            "a spec's name is read, and refused"
        );
        assert!(r(".web.json.swp", false).unwrap().contains("hidden"));
        assert!(
            r("README", false)
                .unwrap()
                .contains("holds JSON container specs")
        );
    }
}
