//! The registry of stateful paths, in use-ephemeral's format: one `PATH;FLAG`
//! line each (`true` = leave a symlink, empty = none; a legacy line without
//! `;` is a path with the flag set). Parsing, validation and formatting are pure.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One registered path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: PathBuf,
    pub leave_symlink: bool,
}

/// Why `path` may not be registered, if it may not. `roots` are the state and pristine roots.
pub fn check(path: &Path, roots: &[&Path]) -> Result<(), String> {
    let b = path.as_os_str().as_bytes();
    if b.is_empty() {
        return Err("empty path".into());
    }
    if let Some(c) = b.iter().find(|c| c.is_ascii_control() || **c == b';') {
        let what = match c {
            b'\0' => "a NUL byte".to_string(),
            b'\n' => "a newline".to_string(),
            b';' => "a ';'".to_string(),
            c => format!("a control character ({:?})", char::from(*c)),
        };
        return Err(format!("contains {what}"));
    }
    if b.len() > 4095 {
        return Err(format!("is {} bytes long (the limit is 4095)", b.len()));
    }
    if let Some(long) = b.split(|c| *c == b'/').find(|c| c.len() > 255) {
        return Err(format!(
            "has a component of {} bytes (the limit is 255)",
            long.len()
        ));
    }
    if b[0] != b'/' {
        return Err("not an absolute path".into());
    }
    if b == b"/" {
        return Err("is the root directory".into());
    }
    if b.ends_with(b"/") {
        return Err("ends with '/'".into());
    }
    for part in b[1..].split(|c| *c == b'/') {
        match part {
            b"" => return Err("contains an empty component ('//')".into()),
            b"." | b".." => return Err("contains a '.' or '..' component".into()),
            _ => {}
        }
    }
    for root in roots {
        if path.starts_with(root) {
            return Err(format!("is inside {}", root.display()));
        }
        if root.starts_with(path) {
            return Err(format!("contains {}", root.display()));
        }
    }
    Ok(())
}

/// At most 200 characters of a piece of a bad line, for its error: a huge line gives a
/// bounded message.
fn clip(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}… ({} bytes)", &text[..at], text.len()),
        None => text.to_string(),
    }
}

/// Parses the registry; duplicate lines merge (the flag is kept if any line sets it).
pub fn parse(text: &[u8], roots: &[&Path]) -> Result<Vec<Entry>, (usize, String)> {
    let mut entries: Vec<Entry> = Vec::new();
    // Where each path is in `entries`: a duplicate line merges in constant time.
    let mut index: std::collections::HashMap<PathBuf, usize> = std::collections::HashMap::new();
    for (i, line) in text.split(|c| *c == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let (path, flag) = match line.iter().rposition(|c| *c == b';') {
            None => (line, true),
            Some(at) => {
                let flag = match &line[at + 1..] {
                    b"true" => true,
                    b"" | b"false" => false,
                    other => {
                        return Err((
                            i + 1,
                            format!(
                                "flag {:?} is neither 'true' nor empty",
                                clip(&String::from_utf8_lossy(other))
                            ),
                        ));
                    }
                };
                (&line[..at], flag)
            }
        };
        let path = PathBuf::from(OsStr::from_bytes(path));
        check(&path, roots).map_err(|why| {
            let shown = clip(&crate::logging::escape(&path.to_string_lossy()));
            (i + 1, format!("{shown}: {why}"))
        })?;
        match index.get(&path) {
            Some(&at) => entries[at].leave_symlink |= flag,
            None => {
                index.insert(path.clone(), entries.len());
                entries.push(Entry {
                    path,
                    leave_symlink: flag,
                });
            }
        }
    }
    Ok(entries)
}

/// Adds `path` or upgrades its flag; returns whether anything changed.
pub fn add(entries: &mut Vec<Entry>, path: PathBuf, leave_symlink: bool) -> bool {
    match entries.iter_mut().find(|e| e.path == path) {
        Some(e) if leave_symlink && !e.leave_symlink => {
            e.leave_symlink = true;
            true
        }
        Some(_) => false,
        None => {
            entries.push(Entry {
                path,
                leave_symlink,
            });
            true
        }
    }
}

/// The registry file's bytes, one line per path.
pub fn format(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        out.extend_from_slice(e.path.as_os_str().as_bytes());
        out.push(b';');
        if e.leave_symlink {
            out.extend_from_slice(b"true");
        }
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOTS: [&str; 2] = ["/mnt/state", "/var/lib/use-ephemeral"];

    fn roots() -> Vec<&'static Path> {
        ROOTS.iter().map(Path::new).collect()
    }

    #[test]
    fn accepts_normal_absolute_paths() {
        for p in [
            "/var/lib/mysql",
            "/etc/ssh/ssh_host_rsa_key",
            "/srv/a b",
            "/var/lib/x.d",
        ] {
            assert_eq!(check(Path::new(p), &roots()), Ok(()), "{p}");
        }
    }

    #[test]
    fn rejects_every_bad_form() {
        for (p, why) in [
            ("var/lib/mysql", "not an absolute path"),
            ("/", "root directory"),
            ("/var/lib/mysql/", "ends with '/'"),
            ("/var//lib", "empty component"),
            ("/var/./lib", "'.' or '..'"),
            ("/var/lib/..", "'.' or '..'"),
            ("/var/lib;true", "';'"),
            ("/var/li\nb", "newline"),
            ("/var/lib/mysql\r", "control character ('\\r')"),
            ("/var/\tx", "control character ('\\t')"),
            ("/mnt/state/x", "inside /mnt/state"),
            ("/mnt/state", "inside /mnt/state"),
            ("/var/lib/use-ephemeral/y", "inside /var/lib/use-ephemeral"),
            ("/var/lib", "contains /var/lib/use-ephemeral"),
            ("/mnt", "contains /mnt/state"),
            ("", "empty"),
        ] {
            let e = check(Path::new(p), &roots()).unwrap_err();
            assert!(e.contains(why), "{p:?}: {e}");
        }
        let nul = OsStr::from_bytes(b"/var/a\0b");
        assert!(check(Path::new(nul), &roots()).unwrap_err().contains("NUL"));
        let long = format!("/var/{}", "x".repeat(256));
        assert!(
            check(Path::new(&long), &roots())
                .unwrap_err()
                .contains("256 bytes")
        );
        assert_eq!(
            check(Path::new(&format!("/var/{}", "x".repeat(255))), &roots()),
            Ok(())
        );
        let deep = "/d".repeat(2100);
        assert!(
            check(Path::new(&deep), &roots())
                .unwrap_err()
                .contains("limit is 4095")
        );
        // The limit itself: 4095 bytes pass, 4096 do not (16 names of 255 bytes, then one more).
        let at = |tail: usize| {
            format!(
                "{}/{}",
                format!("/{}", "x".repeat(254)).repeat(16),
                "y".repeat(tail)
            )
        };
        assert_eq!(at(14).len(), 4095);
        assert_eq!(check(Path::new(&at(14)), &roots()), Ok(()));
        assert!(
            check(Path::new(&at(15)), &roots())
                .unwrap_err()
                .contains("4096 bytes")
        );
    }

    #[test]
    fn a_huge_bad_line_gives_a_bounded_error() {
        let line = format!("/var/{};{}\n", "x".repeat(1 << 20), "y".repeat(1 << 20));
        let (n, msg) = parse(line.as_bytes(), &roots()).unwrap_err();
        assert_eq!(n, 1);
        assert!(msg.len() < 400, "{} bytes", msg.len());
        // The first 200 characters of the piece, and how long it was.
        let flag = format!("\"{}… ({} bytes)\"", "y".repeat(200), 1 << 20);
        assert!(msg.contains(&flag), "{msg:.300}");
        let line = format!("/var/{}\n", "x".repeat(1 << 20));
        let (_, msg) = parse(line.as_bytes(), &roots()).unwrap_err();
        assert!(msg.len() < 400 && msg.contains("bytes"), "{msg:.300}");
        let shown = format!("/var/{}… ({} bytes): ", "x".repeat(195), (1 << 20) + 5);
        assert!(msg.starts_with(&shown), "{msg:.300}");
    }

    #[test]
    fn parses_upstream_and_legacy_lines_and_merges_duplicates() {
        let text =
            b"/var/lib/mysql;true\n/etc/ssh;\n/var/log/legacy\n/etc/ssh;true\n\n/var/lib/mysql;\n";
        let e = parse(text, &roots()).unwrap();
        assert_eq!(
            e,
            [
                Entry {
                    path: "/var/lib/mysql".into(),
                    leave_symlink: true
                },
                Entry {
                    path: "/etc/ssh".into(),
                    leave_symlink: true
                },
                Entry {
                    path: "/var/log/legacy".into(),
                    leave_symlink: true
                },
            ]
        );
        assert_eq!(
            format(&e),
            b"/var/lib/mysql;true\n/etc/ssh;true\n/var/log/legacy;true\n"
        );
        assert_eq!(parse(&format(&e), &roots()).unwrap(), e);
    }

    #[test]
    fn bad_lines_name_their_number() {
        assert_eq!(parse(b"/ok;\nrelative;true\n", &roots()).unwrap_err().0, 2);
        let (line, msg) = parse(b"/ok;\r\n/var/lib/mysql\r\n", &roots()).unwrap_err();
        assert_eq!(line, 1, "a CRLF line is refused, not read as a flag");
        assert!(msg.contains("flag"), "{msg}");
        let (line, msg) = parse(b"/ok;\n/var/lib/mysql\r\n", &roots()).unwrap_err();
        assert_eq!(line, 2);
        assert!(msg.contains("control character"), "{msg}");
        let (line, msg) = parse(b"/ok;maybe\n", &roots()).unwrap_err();
        assert_eq!(line, 1);
        assert!(msg.contains("neither"), "{msg}");
    }

    use proptest::prelude::*;

    /// Pieces that make registry-like text: separators, flags, dots, roots, odd bytes.
    fn registry_like() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"/".to_vec()),
            Just(b";".to_vec()),
            Just(b";true".to_vec()),
            Just(b";false".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b".".to_vec()),
            Just(b"..".to_vec()),
            Just(b"var".to_vec()),
            Just(b"/mnt/state".to_vec()),
            Just(b"/var/lib/use-ephemeral".to_vec()),
            Just(vec![b'x'; 255]),
            Just(vec![b'y'; 256]),
            Just(b"/d".repeat(2048)),
            any::<u8>().prop_map(|b| vec![b]),
        ];
        prop::collection::vec(piece, 0..48).prop_map(|v| v.concat())
    }

    /// Ok: the entries are valid and survive a format/parse round trip. Err: a line that
    /// exists and a one-line message without control characters.
    fn parses_or_fails_cleanly(text: &[u8]) -> Result<(), TestCaseError> {
        match parse(text, &roots()) {
            Ok(entries) => {
                for e in &entries {
                    prop_assert!(check(&e.path, &roots()).is_ok());
                }
                prop_assert_eq!(parse(&format(&entries), &roots()), Ok(entries));
            }
            Err((line, msg)) => {
                let lines = text.split(|c| *c == b'\n').count();
                prop_assert!((1..=lines).contains(&line), "line {} of {}", line, lines);
                prop_assert!(!msg.is_empty());
                prop_assert!(!msg.chars().any(char::is_control), "{:?}", msg);
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_bytes_parse_or_fail_cleanly(text in prop::collection::vec(any::<u8>(), 0..600)) {
            parses_or_fails_cleanly(&text)?;
        }

        #[test]
        fn registry_like_bytes_parse_or_fail_cleanly(text in registry_like()) {
            parses_or_fails_cleanly(&text)?;
        }

        #[test]
        fn any_path_is_checked_without_panic(path in prop::collection::vec(any::<u8>(), 0..300)) {
            let p = Path::new(OsStr::from_bytes(&path));
            if let Err(why) = check(p, &roots()) {
                prop_assert!(!why.chars().any(char::is_control), "{:?}", why);
            }
        }
    }

    #[test]
    fn add_is_idempotent_and_upgrades() {
        let mut e = Vec::new();
        assert!(add(&mut e, "/a".into(), false));
        assert!(!add(&mut e, "/a".into(), false));
        assert!(add(&mut e, "/a".into(), true));
        assert!(!add(&mut e, "/a".into(), false));
        assert!(e[0].leave_symlink);
    }
}
