//! Log entries for the journal, sent by its native protocol (one datagram per
//! entry to `/run/systemd/journal/socket`) when stderr is the journal stream
//! systemd set up, so each entry carries fields a fleet can filter on:
//! `ORC_RUN_ID`, `ORC_PHASE`, `ORC_STEP` and, for the run's start, end and
//! failures, a fixed `MESSAGE_ID`. When the socket cannot be reached the
//! caller falls back to `<N>`-prefixed lines on stderr.
//!
//! The run context (run id, phase, step) is process-wide, as the logger is.

use std::os::unix::net::UnixDatagram;
use std::sync::{Mutex, OnceLock};

/// `MESSAGE_ID` of a run's start.
pub const RUN_STARTED: &str = "b22682ea496b4faeacae54eeb9bbf50f";
/// `MESSAGE_ID` of a run that ended well.
pub const RUN_ENDED: &str = "3afb5522721943a9a4b60d3e0763b0b2";
/// `MESSAGE_ID` of a run that failed (or timed out, or was interrupted).
pub const RUN_FAILED: &str = "a77d075d83b94b25aa5204c9b1d6944d";
/// `MESSAGE_ID` of a step that failed.
pub const STEP_FAILED: &str = "75c7e34b954f476691c6041a24c8cb5e";

/// The log record key that carries a `MESSAGE_ID` (`log::error!(message_id = ...; ...)`).
pub const KEY: &str = "message_id";

const SOCKET: &str = "/run/systemd/journal/socket";
/// Another socket in place of the journal's: for the tests only (a socket they bind).
const SOCKET_ENV: &str = "ORC_JOURNAL_SOCKET";

/// What the current entries belong to.
struct Context {
    run_id: String,
    phase: String,
    step: String,
}

static CONTEXT: Mutex<Context> = Mutex::new(Context {
    run_id: String::new(),
    phase: String::new(),
    step: String::new(),
});
static SINK: OnceLock<(UnixDatagram, &'static str)> = OnceLock::new();

/// Connects to the journal for entries from `identifier`; false when it cannot.
pub fn open(identifier: &'static str) -> bool {
    let path = std::env::var_os(SOCKET_ENV).unwrap_or_else(|| SOCKET.into());
    let Ok(sock) = UnixDatagram::unbound() else {
        return false;
    };
    if sock.connect(&path).is_err() {
        return false;
    }
    SINK.set((sock, identifier)).is_ok()
}

/// From now on, entries belong to this run.
pub fn set_run(run_id: &str) {
    let mut c = CONTEXT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    c.run_id = run_id.to_string();
    c.phase.clear();
    c.step.clear();
}

/// From now on, entries belong to this step.
pub fn set_step(phase: &str, step: &str) {
    let mut c = CONTEXT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    c.phase = phase.to_string();
    c.step = step.to_string();
}

/// Appends one field: `KEY=value\n`, or the binary form when the value has a newline.
fn field(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(key.as_bytes());
    if value.contains('\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

/// One entry in the native protocol's datagram form.
pub fn entry(
    identifier: &str,
    priority: u8,
    message: &str,
    message_id: Option<&str>,
    context: (&str, &str, &str),
) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 160);
    field(&mut out, "MESSAGE", message);
    field(&mut out, "PRIORITY", &priority.to_string());
    field(&mut out, "SYSLOG_IDENTIFIER", identifier);
    if let Some(id) = message_id {
        field(&mut out, "MESSAGE_ID", id);
    }
    let (run, phase, step) = context;
    for (k, v) in [
        ("ORC_RUN_ID", run),
        ("ORC_PHASE", phase),
        ("ORC_STEP", step),
    ] {
        if !v.is_empty() {
            field(&mut out, k, v);
        }
    }
    out
}

/// Sends an entry to the journal; false when orc does not log there (or the send failed).
pub fn send(priority: u8, message: &str, message_id: Option<&str>) -> bool {
    let Some((sock, identifier)) = SINK.get() else {
        return false;
    };
    let c = CONTEXT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let e = entry(
        identifier,
        priority,
        message,
        message_id,
        (&c.run_id, &c.phase, &c.step),
    );
    drop(c);
    sock.send(&e).is_ok_and(|n| n == e.len())
}

/// Whether entries go to the journal by its native protocol.
pub fn active() -> bool {
    SINK.get().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_plain_or_binary_safe() {
        let e = entry(
            "orc",
            6,
            "a\nb",
            Some(RUN_STARTED),
            ("00000001-x", "configure", ""),
        );
        let mut want = b"MESSAGE\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"a\nb\nPRIORITY=6\nSYSLOG_IDENTIFIER=orc\n");
        want.extend_from_slice(format!("MESSAGE_ID={RUN_STARTED}\n").as_bytes());
        want.extend_from_slice(b"ORC_RUN_ID=00000001-x\nORC_PHASE=configure\n");
        assert_eq!(e, want);
    }

    #[test]
    fn message_ids_are_128_bit_hex_and_distinct() {
        let ids = [RUN_STARTED, RUN_ENDED, RUN_FAILED, STEP_FAILED];
        for id in ids {
            assert_eq!(id.len(), 32);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        let set: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(set.len(), 4);
    }
}
