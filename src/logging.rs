//! Log output on stderr: plain `orc: ...` lines for people, entries with
//! fields by the journal's native protocol under journald (`<N>` syslog
//! priority prefixes on every line when its socket cannot be reached), or
//! os-refresh-config's own format for the compatible front end.

use std::borrow::Cow;
use std::io::Write;
use std::time::SystemTime;

use log::{Level, LevelFilter};

/// How log lines look.
#[derive(Debug, Clone)]
pub enum Style {
    /// `orc: warning: ...`
    Plain(&'static str),
    /// `[2026-11-23 01:15:21,123] (os-refresh-config) [INFO] ...`
    Upstream(&'static str),
}

/// True when stderr is the journal stream systemd set up (`JOURNAL_STREAM=dev:ino`).
pub fn stderr_is_journal() -> bool {
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let Ok(st) = nix::sys::stat::fstat(std::io::stderr()) else {
        return false;
    };
    dev.parse() == Ok(st.st_dev) && ino.parse() == Ok(st.st_ino)
}

fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Prefixes every line of `msg` with `<N>`.
pub fn journal_lines(level: Level, msg: &str) -> String {
    let p = priority(level);
    let mut out = String::with_capacity(msg.len() + 8);
    for line in msg.split('\n') {
        out.push_str(&format!("<{p}>{line}\n"));
    }
    out
}

fn upstream_level(level: Level) -> &'static str {
    match level {
        Level::Error => "ERROR",
        Level::Warn => "WARNING",
        Level::Info => "INFO",
        Level::Debug | Level::Trace => "DEBUG",
    }
}

fn plain(name: &str, level: Level, msg: &str) -> String {
    match level {
        Level::Info => format!("{name}: {msg}\n"),
        Level::Error => format!("{name}: error: {msg}\n"),
        Level::Warn => format!("{name}: warning: {msg}\n"),
        Level::Debug | Level::Trace => format!("{name}: debug: {msg}\n"),
    }
}

/// Sets up the global logger. `RUST_LOG`, when set, wins over `level`.
pub fn init(style: Style, level: LevelFilter) {
    let journal = stderr_is_journal();
    if journal {
        crate::journal::open(match &style {
            Style::Plain(n) | Style::Upstream(n) => n,
        });
    }
    let mut b = env_logger::Builder::new();
    b.filter_level(level);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
    }
    b.format(move |buf, rec| {
        let msg = rec.args().to_string();
        let msg = crate::redact::apply(&msg);
        let msg = one_line(&msg);
        if journal {
            let id = rec.key_values().get(crate::journal::KEY.into());
            let id = id.map(|v| v.to_string());
            let body = msg.trim_end_matches('\n');
            if crate::journal::send(priority(rec.level()), body, id.as_deref()) {
                return Ok(());
            }
        }
        let text = if journal {
            journal_lines(rec.level(), &msg)
        } else {
            match &style {
                Style::Plain(name) => plain(name, rec.level(), &msg),
                Style::Upstream(name) => format!(
                    "[{}] ({name}) [{}] {msg}\n",
                    crate::time::local_log_stamp(SystemTime::now()),
                    upstream_level(rec.level())
                ),
            }
        };
        buf.write_all(text.as_bytes())
    });
    let _ = b.try_init();
}

/// A name or path for a log line: control characters escaped (`\n`, `\u{1b}`), so a
/// file name cannot forge a line of its own.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .flat_map(|c| {
                let e: Vec<char> = if c.is_control() {
                    c.escape_default().collect()
                } else {
                    vec![c]
                };
                e
            })
            .collect(),
    )
}

/// A log message as one line: control characters escaped wherever they come from (a
/// file name, a key, a value quoted in an error), trailing newlines kept as they are.
fn one_line(msg: &str) -> Cow<'_, str> {
    let body = msg.trim_end_matches('\n');
    match escape(body) {
        Cow::Borrowed(_) => Cow::Borrowed(msg),
        Cow::Owned(e) => Cow::Owned(e + &msg[body.len()..]),
    }
}

/// `-v`/`-q` counts to a level (default info).
pub fn level_from_counts(verbose: u8, quiet: u8) -> LevelFilter {
    match i16::from(verbose) - i16::from(quiet) {
        i16::MIN..=-2 => LevelFilter::Error,
        -1 => LevelFilter::Warn,
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_gets_the_priority() {
        assert_eq!(journal_lines(Level::Warn, "a\nb"), "<4>a\n<4>b\n");
        assert_eq!(journal_lines(Level::Error, "x"), "<3>x\n");
        assert_eq!(journal_lines(Level::Info, "x"), "<6>x\n");
        assert_eq!(journal_lines(Level::Debug, "x"), "<7>x\n");
    }

    #[test]
    fn a_log_message_is_one_line() {
        assert_eq!(one_line("a\norc: error: forged"), "a\\norc: error: forged");
        assert_eq!(one_line("during x phase.\n"), "during x phase.\n");
        assert_eq!(one_line("tab\there\r"), "tab\\there\\r");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            escape("10-a\norc: error: forged"),
            "10-a\\norc: error: forged"
        );
        assert_eq!(escape("plain é"), "plain é");
    }

    #[test]
    fn counts_map_to_levels() {
        assert_eq!(level_from_counts(0, 0), LevelFilter::Info);
        assert_eq!(level_from_counts(1, 0), LevelFilter::Debug);
        assert_eq!(level_from_counts(0, 1), LevelFilter::Warn);
        assert_eq!(level_from_counts(0, 5), LevelFilter::Error);
    }
}
