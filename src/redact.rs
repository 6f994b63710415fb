//! Secrets never leave orc: the values environment.d sets are replaced by
//! `***` in everything orc writes (log lines, errors, reports, status).
//! Values shorter than [`MIN_LEN`] bytes are not redacted: they cannot be
//! told apart from ordinary words, and hiding them would garble every line.

use std::borrow::Cow;
use std::sync::RwLock;

pub const MIN_LEN: usize = 4;
const MASK: &str = "***";

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

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
}
