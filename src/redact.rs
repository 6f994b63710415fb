//! Secrets never leave orc: the values of environment.d variables whose names
//! say secret (`PASSWORD`, `SECRET`, `TOKEN`, `KEY`, ... anywhere in the name,
//! any case) or that the config names (`redact`) are replaced by `***` in
//! everything orc writes: log lines, errors, reports, status, and the scripts'
//! output orc relays (masked as it streams, a secret split across two reads
//! included). Other values stay readable. Values shorter than [`MIN_LEN`]
//! bytes are not masked: they cannot be told apart from ordinary words.

use std::borrow::Cow;
use std::sync::RwLock;

pub const MIN_LEN: usize = 4;
const MASK: &str = "***";

/// Words that make a variable's name say its value is secret.
pub const SECRET_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "SECRET",
    "TOKEN",
    "KEY",
    "CREDENTIAL",
    "PRIVATE",
];

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());
static NAMES: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// The configured names whose values are masked too (`redact` in the config).
pub fn set_names(names: &[String]) {
    *NAMES.write().expect("no poisoning") = names.to_vec();
}

/// Whether the value of the variable `name` is masked.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w))
        || NAMES
            .read()
            .expect("no poisoning")
            .iter()
            .any(|n| n == name)
}

/// Adds values to hide (longest first, so a value containing another is hidden whole).
/// A value with control characters is also hidden piece by piece, since a program may
/// show it quoted (bash's `$'line1\nline2'`) or one line at a time.
pub fn add<I: IntoIterator<Item = String>>(values: I) {
    let mut s = SECRETS.write().expect("no poisoning");
    for v in values {
        let pieces = v.split(char::is_control).filter(|p| p.len() != v.len());
        for p in pieces.map(str::to_string).chain([v.clone()]) {
            if p.len() >= MIN_LEN && !s.contains(&p) {
                s.push(p);
            }
        }
    }
    s.sort_by_key(|v| std::cmp::Reverse(v.len()));
}

/// Every value hidden now (for the relay that outlives orc, see `exec::relay`).
pub fn values() -> Vec<String> {
    SECRETS.read().expect("no poisoning").clone()
}

/// `text` with every secret replaced by `***`.
pub fn apply(text: &str) -> Cow<'_, str> {
    let s = SECRETS.read().expect("no poisoning");
    if s.is_empty() || !s.iter().any(|v| text.contains(v.as_str())) {
        return Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for v in s.iter() {
        if out.contains(v.as_str()) {
            out = out.replace(v.as_str(), MASK);
        }
    }
    Cow::Owned(out)
}

/// For an output tail cut at its start (the last bytes kept): [`apply`], and a leading
/// piece that ends a secret (its start cut off) hidden too, so no half of one is kept.
pub fn apply_cut(text: &str) -> String {
    let mut out = apply(text).into_owned();
    let s = SECRETS.read().expect("no poisoning");
    let longest = s
        .iter()
        .flat_map(|v| (1..v.len()).filter_map(move |i| v.get(i..)))
        .filter(|suffix| out.starts_with(suffix))
        .map(str::len)
        .max();
    if let Some(n) = longest {
        out.replace_range(..n, MASK);
    }
    out
}

/// [`apply`] for a field in place.
pub fn scrub(field: &mut String) {
    if let Cow::Owned(s) = apply(field) {
        *field = s;
    }
}

/// Masks a byte stream read in chunks: what may be the start of a secret at the end of a
/// chunk is held back until the next one (or [`Masker::flush`]) tells.
#[derive(Debug, Default)]
pub struct Masker {
    pending: Vec<u8>,
}

impl Masker {
    /// A masker that goes on from another's held-back bytes.
    pub fn resume(pending: Vec<u8>) -> Masker {
        Masker { pending }
    }

    /// What of `pending` + `data` can be written now, masked.
    pub fn feed<'a>(&mut self, data: &'a [u8]) -> Cow<'a, [u8]> {
        let s = SECRETS.read().expect("no poisoning");
        if s.is_empty() && self.pending.is_empty() {
            return Cow::Borrowed(data);
        }
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(data);
        let mut out = Vec::with_capacity(buf.len());
        let mut i = 0;
        while i < buf.len() {
            let rest = &buf[i..];
            if let Some(v) = s.iter().find(|v| rest.starts_with(v.as_bytes())) {
                out.extend_from_slice(MASK.as_bytes());
                i += v.len();
            } else if s
                .iter()
                .any(|v| rest.len() < v.len() && v.as_bytes().starts_with(rest))
            {
                self.pending = rest.to_vec();
                break;
            } else {
                out.push(buf[i]);
                i += 1;
            }
        }
        Cow::Owned(out)
    }

    /// What is still held back (the stream ended): it is no secret.
    pub fn flush(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// The held-back bytes, for a masker that goes on with the stream ([`Masker::resume`]).
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_values_longest_first_and_leaves_short_ones() {
        add(["s3cret".to_string(), "s3cret-and-more".into(), "no".into()]);
        assert_eq!(
            apply("cd: s3cret-and-more: nope, s3cret"),
            "cd: ***: nope, ***"
        );
        assert_eq!(apply("no change"), "no change");
        add(["line-one\nline-two\tend".to_string()]);
        assert_eq!(apply_cut("3cret-and-more and s3cret"), "*** and ***");
        assert_eq!(apply_cut("ret-and-more"), "***");
        assert_eq!(apply_cut("fine"), "fine");
        assert_eq!(
            apply("cd: $'line-one\\nline-two\\tend': no"),
            "cd: $'***\\n***\\tend': no"
        );
    }

    #[test]
    fn names_that_say_secret() {
        for n in [
            "DB_PASSWORD",
            "mysql_root_passwd",
            "Api_Key",
            "OS_TOKEN",
            "SECRET",
            "AWS_SECRET_ACCESS_KEY",
            "TLS_PRIVATE",
            "REGISTRY_CREDENTIALS",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in ["PORT", "ENABLED", "SERVICE_NAME", "PATH", "HOSTNAME"] {
            assert!(!is_secret_name(n), "{n}");
        }
        set_names(&["SITE_PIN".into()]);
        assert!(is_secret_name("SITE_PIN"));
        assert!(!is_secret_name("SITE_PIN2"));
    }

    #[test]
    fn a_stream_is_masked_across_chunk_boundaries() {
        add(["streamed-secret-value".to_string()]);
        let text = b"before streamed-secret-value middle streamed-secret-value after streamed-sec";
        for size in 1..text.len() {
            let mut m = Masker::default();
            let mut out = Vec::new();
            for chunk in text.chunks(size) {
                out.extend_from_slice(&m.feed(chunk));
            }
            out.extend(m.flush());
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "before *** middle *** after streamed-sec",
                "chunks of {size}"
            );
        }
    }
}
