//! Reading orc's JSON inputs: the top level must be an object (never an array
//! read field by position), so must every position a format names as an
//! object, and every error names the file, line and column.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, invalid};

/// Turns a `serde_json` error into `file: line L, column C: message`.
pub fn error(file: &Path, e: &serde_json::Error) -> Error {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = full.strip_suffix(&suffix).unwrap_or(&full);
    invalid(format!(
        "{}: line {}, column {}: {msg}",
        file.display(),
        e.line(),
        e.column()
    ))
}

/// Where the first non-whitespace byte is, as (line, column), and the byte.
fn first_token(text: &[u8]) -> Option<(usize, usize, u8)> {
    let (mut line, mut col) = (1, 0);
    for &b in text {
        match b {
            b'\n' => (line, col) = (line + 1, 0),
            b' ' | b'\t' | b'\r' => col += 1,
            _ => return Some((line, col + 1, b)),
        }
    }
    None
}

/// Parses a JSON object into `T`.
pub fn parse_object<T: DeserializeOwned>(text: &[u8], file: &Path) -> Result<T, Error> {
    match first_token(text) {
        Some((_, _, b'{')) => {}
        Some((line, col, _)) => {
            return Err(invalid(format!(
                "{}: line {line}, column {col}: the top level must be a JSON object {{...}}",
                file.display()
            )));
        }
        None => return Err(invalid(format!("{}: empty file", file.display()))),
    }
    serde_json::from_slice(text).map_err(|e| error(file, &e))
}

/// Parses a JSON object into `T`. `objects` names the positions that hold a struct
/// (`"hooks"`, `"volumes.*"`: `*` is every element or member): serde would also read a
/// struct from an array, field by position, so an array there is refused.
pub fn parse_object_with<T: DeserializeOwned>(
    text: &[u8],
    file: &Path,
    objects: &[&str],
) -> Result<T, Error> {
    let t = parse_object(text, file)?;
    if objects.is_empty() {
        return Ok(t);
    }
    let v: serde_json::Value = serde_json::from_slice(text).map_err(|e| error(file, &e))?;
    for pattern in objects {
        if let Some(at) = array_at(&v, pattern, Vec::new()) {
            let (line, col) = offset_of(text, &at).map_or((1, 1), |o| line_col(text, o));
            return Err(invalid(format!(
                "{}: line {line}, column {col}: {}: must be a JSON object {{...}}, not an array",
                file.display(),
                shown(&at)
            )));
        }
    }
    Ok(t)
}

/// The first position of `objects` (as for [`parse_object_with`]) that holds an array in
/// an already parsed value, shown as `a.b[0]`.
pub fn array_where_object(v: &serde_json::Value, objects: &[&str]) -> Option<String> {
    objects
        .iter()
        .find_map(|p| array_at(v, p, Vec::new()))
        .map(|at| shown(&at))
}

/// One step of a path into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn shown(path: &[Seg]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => out.push_str(&format!(".{k}")),
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The path of an array found where `pattern` says an object belongs, if any.
fn array_at(v: &serde_json::Value, pattern: &str, here: Vec<Seg>) -> Option<Vec<Seg>> {
    use serde_json::Value;
    let (head, rest) = match pattern.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (pattern, None),
    };
    let at = |s: Seg| {
        let mut p = here.clone();
        p.push(s);
        p
    };
    let children: Vec<(Vec<Seg>, &Value)> = match (head, v) {
        ("*", Value::Object(m)) => m
            .iter()
            .map(|(k, c)| (at(Seg::Key(k.clone())), c))
            .collect(),
        ("*", Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, c)| (at(Seg::Index(i)), c))
            .collect(),
        (k, Value::Object(m)) => m
            .get(k)
            .map(|c| (at(Seg::Key(k.into())), c))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };
    children.into_iter().find_map(|(p, c)| match rest {
        None => c.is_array().then_some(p),
        Some(r) => array_at(c, r, p),
    })
}

fn skip_ws(t: &[u8], mut i: usize) -> usize {
    while t.get(i).is_some_and(|b| b" \t\r\n".contains(b)) {
        i += 1;
    }
    i
}

/// The end of the string starting at `i` (just past its closing quote).
fn skip_string(t: &[u8], mut i: usize) -> usize {
    i += 1;
    while let Some(b) = t.get(i) {
        match b {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// The end of the value starting at `i`.
fn skip_value(t: &[u8], i: usize) -> usize {
    match t.get(i) {
        Some(b'"') => skip_string(t, i),
        Some(b'{' | b'[') => {
            let (mut depth, mut j) = (0usize, i);
            while let Some(b) = t.get(j) {
                match b {
                    b'"' => {
                        j = skip_string(t, j);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            j
        }
        _ => {
            let mut j = i;
            while t.get(j).is_some_and(|b| !b",]} \t\r\n".contains(b)) {
                j += 1;
            }
            j
        }
    }
}

/// Where the value at `path` starts, in a JSON document that parses.
fn offset_of(t: &[u8], path: &[Seg]) -> Option<usize> {
    let mut i = skip_ws(t, 0);
    for seg in path {
        let close = if *t.get(i)? == b'{' { b'}' } else { b']' };
        i = skip_ws(t, i + 1);
        let mut n = 0;
        loop {
            if *t.get(i)? == close {
                return None;
            }
            let found = match seg {
                Seg::Key(k) => {
                    let end = skip_string(t, i);
                    let key: String = serde_json::from_slice(&t[i..end]).ok()?;
                    i = skip_ws(t, skip_ws(t, end) + 1);
                    key == *k
                }
                Seg::Index(want) => {
                    n += 1;
                    n - 1 == *want
                }
            };
            if found {
                break;
            }
            i = skip_ws(t, skip_value(t, i));
            i = skip_ws(t, i + usize::from(t.get(i) == Some(&b',')));
        }
    }
    Some(i)
}

fn line_col(t: &[u8], offset: usize) -> (usize, usize) {
    let before = &t[..offset.min(t.len())];
    let line = 1 + before.iter().filter(|b| **b == b'\n').count();
    let col = 1 + before.iter().rev().take_while(|b| **b != b'\n').count();
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        a: u32,
        b: bool,
    }

    #[test]
    fn arrays_and_empty_files_are_refused() {
        let f = Path::new("/x.json");
        let e = parse_object::<T>(b"\n  [1, true]", f)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/x.json: line 2, column 3: the top level must be a JSON object {...}"
        );
        assert!(
            parse_object::<T>(b"  \n", f)
                .unwrap_err()
                .to_string()
                .contains("empty file")
        );
        assert!(parse_object::<T>(br#"{"a": 1, "b": true}"#, f).is_ok());
        let e = parse_object::<T>(b"{\"a\": 1,\n \"c\": 2}", f)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/x.json: line 2, column 4: unknown field `c`"),
            "{e}"
        );
    }

    #[test]
    fn arrays_where_objects_belong_are_found_with_their_line_and_column() {
        let v: serde_json::Value = serde_json::from_str(
            r#"{"hooks": {"a": 1}, "volumes": [{"x": 1}, ["pos"]], "networks": ["n"], "deps": {"db": ["c"]}}"#,
        )
        .unwrap();
        let found = |p: &str| array_at(&v, p, Vec::new()).map(|s| shown(&s));
        assert_eq!(found("hooks"), None);
        assert_eq!(found("volumes.*").as_deref(), Some("volumes[1]"));
        assert_eq!(found("networks.*"), None);
        assert_eq!(found("deps.*").as_deref(), Some("deps.db"));
        assert_eq!(found("absent.*"), None);
        let text = b"{\"a\": \"]\\\"\",\n \"volumes\": [{\"x\": \"]\"},\n   [\"pos\"]]}";
        let t: serde_json::Value = serde_json::from_slice(text).unwrap();
        let at = array_at(&t, "volumes.*", Vec::new()).unwrap();
        assert_eq!(line_col(text, offset_of(text, &at).unwrap()), (3, 4));
        let e = parse_object_with::<serde_json::Value>(text, Path::new("/s.json"), &["volumes.*"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/s.json: line 3, column 4: volumes[1]: must be a JSON object {...}, not an array"
        );
    }
}

pub mod lossy {
    use std::path::{Path, PathBuf};

    use serde::Serializer;

    pub fn path<S: Serializer>(p: &Path, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&p.to_string_lossy())
    }

    pub fn opt<S: Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Some(p) => path(p, s),
            None => s.serialize_none(),
        }
    }

    pub fn vec<S: Serializer>(v: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|p| p.to_string_lossy()))
    }
}
