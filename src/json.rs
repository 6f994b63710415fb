//! Reading orc's JSON inputs: the top level must be an object (never an array
//! read field by position), and every error names the file, line and column.

use std::path::Path;

use serde::de::DeserializeOwned;

use crate::error::{Error, invalid};

/// Turns a serde_json error into `file: line L, column C: message`.
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
}
