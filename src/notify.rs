//! systemd notifications (`STATUS=`, `EXTEND_TIMEOUT_USEC=`, `READY=1`); a
//! no-op when `NOTIFY_SOCKET` is unset.

use std::time::Duration;

use sd_notify::NotifyState;

/// Talks to systemd for orc's unit.
#[derive(Debug, Clone, Copy)]
pub struct Notifier {
    enabled: bool,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    fn send(&self, state: &[NotifyState]) {
        if self.enabled
            && let Err(e) = sd_notify::notify(state)
        {
            log::debug!("sd_notify: {e}");
        }
    }

    pub fn status(&self, text: &str) {
        self.send(&[NotifyState::Status(text)]);
    }

    /// Asks systemd for at least `d` more before the start timeout fires.
    pub fn extend(&self, d: Duration) {
        let usec = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        self.send(&[NotifyState::ExtendTimeoutUsec(usec)]);
    }

    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }
}
