//! The one error type of orc, and the exit codes it maps to at the edge.

use std::fmt::Display;
use std::path::PathBuf;

/// Every way a command can end other than success.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments, config, spec or registry, found before anything changed (exit 2).
    #[error("{0}")]
    Invalid(String),
    /// An input (the root, a config or registry file) could not be read (exit 2): which
    /// one, and the OS error kept whole as the source.
    #[error("{what}: {source}")]
    BadInput {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Something must not run as root: another user could change it (exit 2).
    #[error("refusing to run as root: {}: {reason}", crate::logging::escape(&path.to_string_lossy()))]
    Refused { path: PathBuf, reason: String },
    /// Another run holds the lock (exit 11).
    #[error("{0}")]
    Busy(String),
    /// A step or the run ran out of time (exit 1).
    #[error("{0}")]
    TimedOut(String),
    /// A step failed or timed out, or an I/O operation failed (exit 1).
    #[error("{0}")]
    Failed(String),
    /// An I/O operation failed (exit 1): what orc was doing, and the OS error kept whole
    /// as the source (match it by [`Error::io_kind`], never by its text).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A writing command run by a user other than root (exit [`EXIT_NEEDS_ROOT`]).
    #[error("{0}")]
    NeedsRoot(String),
    /// orc was asked to stop by this signal number (exit 128 + signal).
    #[error("interrupted by signal {0}")]
    Interrupted(i32),
}

/// The exit code of a writing command run without root (sysexits' `EX_NOPERM`).
pub const EXIT_NEEDS_ROOT: i32 = 77;

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid(_) | Error::Refused { .. } | Error::BadInput { .. } => 2,
            Error::Busy(_) => 11,
            Error::NeedsRoot(_) => EXIT_NEEDS_ROOT,
            Error::TimedOut(_) => 1,
            Error::Failed(_) | Error::Io { .. } => 1,
            Error::Interrupted(sig) => 128 + sig,
        }
    }

    /// The kind of the OS error behind an [`Error::Io`].
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            Error::Io { source, .. } | Error::BadInput { source, .. } => Some(source.kind()),
            _ => None,
        }
    }

    /// The errno behind an [`Error::Io`].
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } | Error::BadInput { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Prefixes the message with `ctx: `, keeping the kind.
    pub fn context(self, ctx: impl Display) -> Error {
        match self {
            Error::Invalid(m) => Error::Invalid(format!("{ctx}: {m}")),
            Error::Busy(m) => Error::Busy(format!("{ctx}: {m}")),
            Error::TimedOut(m) => Error::TimedOut(format!("{ctx}: {m}")),
            e @ Error::Refused { .. } => e,
            Error::Failed(m) => Error::Failed(format!("{ctx}: {m}")),
            Error::Io { what, source } => Error::Io {
                what: format!("{ctx}: {what}"),
                source,
            },
            Error::BadInput { what, source } => Error::BadInput {
                what: format!("{ctx}: {what}"),
                source,
            },
            e @ (Error::Interrupted(_) | Error::NeedsRoot(_)) => e,
        }
    }
}

/// anyhow-style context for fallible calls: `fs::read(p).ctx(|| format!("reading {}", p.display()))`.
pub trait Context<T> {
    fn ctx<C: Display>(self, f: impl FnOnce() -> C) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx<C: Display>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|source| Error::Io {
            what: f().to_string(),
            source,
        })
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx<C: Display>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| Error::Io {
            what: f().to_string(),
            source: std::io::Error::from(e),
        })
    }
}

impl<T> Context<T> for Result<T> {
    fn ctx<C: Display>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| e.context(f()))
    }
}

/// An input that could not be read: [`Error::BadInput`] with `what` and the OS error.
/// An error of the machine rather than the input (out of descriptors or memory, an I/O
/// error, a retry) is an [`Error::Io`] instead: exit 1, not 2.
pub fn bad_input(what: impl Display, source: impl Into<std::io::Error>) -> Error {
    let (what, source) = (what.to_string(), source.into());
    let machine = [
        libc::EMFILE,
        libc::ENFILE,
        libc::ENOMEM,
        libc::ENOBUFS,
        libc::EAGAIN,
        libc::EINTR,
        libc::EIO,
        libc::ETIMEDOUT,
    ];
    if source.raw_os_error().is_some_and(|e| machine.contains(&e)) {
        Error::Io { what, source }
    } else {
        Error::BadInput { what, source }
    }
}

/// Shorthand for an [`Error::Invalid`].
pub fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn an_input_unreadable_for_want_of_descriptors_is_not_bad_input() {
        let emfile = bad_input(
            "/etc/orc/orc.json",
            std::io::Error::from_raw_os_error(libc::EMFILE),
        );
        assert_eq!(emfile.exit_code(), 1);
        let eloop = bad_input(
            "/etc/orc/orc.json",
            std::io::Error::from_raw_os_error(libc::ELOOP),
        );
        assert_eq!(eloop.exit_code(), 2);
    }

    #[test]
    fn io_errors_keep_their_source_and_kind_through_context() {
        let r: std::io::Result<()> = Err(std::io::Error::from_raw_os_error(libc::ENOENT));
        let e = r
            .ctx(|| "opening /x")
            .ctx(|| "loading the config")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "loading the config: opening /x: No such file or directory (os error 2)"
        );
        assert_eq!(e.io_kind(), Some(std::io::ErrorKind::NotFound));
        assert_eq!(e.errno(), Some(libc::ENOENT));
        let src = e.source().expect("the io::Error is the source");
        assert!(src.downcast_ref::<std::io::Error>().is_some());
        assert_eq!(e.exit_code(), 1);
        let bad =
            crate::root::Root::open(std::path::Path::new("/nonexistent/orc-root")).unwrap_err();
        assert_eq!(
            bad.exit_code(),
            2,
            "a root that cannot be opened is bad input"
        );
        assert_eq!(bad.io_kind(), Some(std::io::ErrorKind::NotFound));
        assert!(bad.source().is_some());
        let n: nix::Result<()> = Err(nix::errno::Errno::EACCES);
        assert_eq!(
            n.ctx(|| "x").unwrap_err().io_kind(),
            Some(std::io::ErrorKind::PermissionDenied)
        );
    }
}
