//! systemd notifications (`STATUS=`, `EXTEND_TIMEOUT_USEC=`, `READY=1`); a
//! no-op when `NOTIFY_SOCKET` is unset. Sends never block: a stalled reader
//! loses progress messages instead of hanging the boot (the last one is
//! retried). `READY=1` is sent only at the end of a successful run: a failed
//! run exits non-zero before it, so `Type=notify` makes it a failed unit.

use std::fmt::Write;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Talks to systemd for orc's unit.
#[derive(Debug, Clone)]
pub struct Notifier {
    addr: Option<SocketAddr>,
    /// One non-blocking socket for every message of the run (not a socket, its autobind
    /// and its close before every step).
    sock: Option<std::sync::Arc<UnixDatagram>>,
    /// Progress also goes to stderr, a terminal (never under systemd).
    terminal: bool,
}

/// Whether progress lines go to stderr: it is a terminal and orc is not a systemd unit.
pub fn on_terminal(stderr_tty: bool, env: &dyn Fn(&str) -> bool) -> bool {
    stderr_tty && !env("JOURNAL_STREAM") && !env("INVOCATION_ID") && !env("NOTIFY_SOCKET")
}

fn address(raw: &std::ffi::OsStr) -> std::io::Result<SocketAddr> {
    match raw.as_bytes() {
        [b'@', name @ ..] => SocketAddr::from_abstract_name(name),
        _ => SocketAddr::from_pathname(raw),
    }
}

impl Notifier {
    pub fn from_env() -> Notifier {
        let addr = std::env::var_os("NOTIFY_SOCKET").and_then(|raw| match address(&raw) {
            Ok(a) => Some(a),
            Err(e) => {
                log::debug!("NOTIFY_SOCKET {raw:?}: {e}");
                None
            }
        });
        let sock = addr.as_ref().and_then(|_| {
            UnixDatagram::unbound()
                .and_then(|s| s.set_nonblocking(true).map(|()| s))
                .inspect_err(|e| log::debug!("sd_notify: {e}"))
                .ok()
                .map(std::sync::Arc::new)
        });
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let terminal = on_terminal(tty, &|k| std::env::var_os(k).is_some());
        Notifier {
            addr,
            sock,
            terminal,
        }
    }

    fn send(&self, state: &[NotifyState], patience: Duration) {
        let (Some(addr), Some(sock)) = (&self.addr, &self.sock) else {
            return;
        };
        let mut msg = String::new();
        for s in state {
            let _ = writeln!(msg, "{s}");
        }
        let until = Instant::now() + patience;
        let sent = loop {
            match sock.send_to_addr(msg.as_bytes(), addr) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                r => break r,
            }
        };
        if let Err(e) = sent {
            log::debug!("sd_notify {}: {e}", msg.trim_end());
        }
    }

    pub fn status(&self, text: &str) {
        if self.terminal {
            eprintln!("{}", crate::redact::apply(text));
        }
        self.send(&[NotifyState::Status(text)], Duration::ZERO);
    }

    /// Asks systemd for at least `d` more before the start timeout fires.
    pub fn extend(&self, d: Duration) {
        let usec = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        self.send(&[NotifyState::ExtendTimeoutUsec(usec)], Duration::ZERO);
    }

    /// The end of a run: `READY=1` with the status when it succeeded, the status alone
    /// when it failed (never `READY=1` before a failure).
    pub fn done(&self, ok: bool, status: &str) {
        let patience = Duration::from_secs(2);
        if ok {
            self.send(&[NotifyState::Ready, NotifyState::Status(status)], patience);
        } else {
            self.send(&[NotifyState::Status(status)], patience);
        }
    }
}

impl crate::step::Progress for Notifier {
    fn status(&self, text: &str) {
        Notifier::status(self, text);
    }

    fn extend(&self, d: Duration) {
        Notifier::extend(self, d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_go_to_a_terminal_only_outside_systemd() {
        let none = |_: &str| false;
        assert!(on_terminal(true, &none));
        assert!(!on_terminal(false, &none));
        for var in ["JOURNAL_STREAM", "INVOCATION_ID", "NOTIFY_SOCKET"] {
            assert!(!on_terminal(true, &|k| k == var), "{var}");
        }
    }
}
