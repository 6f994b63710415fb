//! State relocation onto the state root (TripleO's use-ephemeral, done right):
//! `register` records stateful paths at image build, `finalise` moves their
//! content to the pristine root and leaves symlinks, and `seed` (at every
//! boot) copies a pristine copy to the state root only where the state is
//! absent, crash-safely, with full fidelity, never following a symlink out of
//! either root. Every path is reached through the root handle; the commands
//! that write take the lock.

pub mod copy;
mod dirs;
mod finalise;
pub mod registry;
mod seed;
mod xattrs;

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use serde::Serialize;

use crate::error::{Result, invalid};
use crate::root::{DIR_FLAGS, Durable};
use crate::setup::Setup;
use dirs::{lstat_at, open_beneath, split};
use registry::Entry;

pub use finalise::finalise;
pub use seed::{seed, seed_step};

/// The state and pristine roots, which no registered path may be inside of.
fn roots(setup: &Setup) -> [&Path; 2] {
    [&setup.paths.state_root, &setup.paths.pristine_root]
}

/// The registered paths; a bad registry is invalid input naming the file and line.
pub fn load(setup: &Setup) -> Result<Vec<Entry>> {
    let file = &setup.paths.registry;
    let Some(text) = setup.root.read_input(file)? else {
        return Ok(Vec::new());
    };
    registry::parse(&text, &roots(setup)).map_err(|(line, msg)| {
        invalid(format!(
            "{}: line {line}: {msg}",
            setup.root.shown(file).display()
        ))
    })
}

/// `orc state register` (under the lock): validates every path first, then rewrites the
/// registry atomically.
pub fn register(setup: &Setup, paths: &[PathBuf], leave_symlink: bool) -> Result<i32> {
    let mut entries = check_register(setup, paths)?;
    let mut changed = false;
    for path in paths {
        changed |= registry::add(&mut entries, path.clone(), leave_symlink);
    }
    if changed {
        setup.root.write_file(
            &setup.paths.registry,
            &registry::format(&entries),
            0o644,
            Durable::Full,
        )?;
    }
    for path in paths {
        log::info!(
            "registered {}{}",
            path.display(),
            if leave_symlink { " (with symlink)" } else { "" }
        );
    }
    Ok(0)
}

/// Validates paths to register and the registry they go into (before the lock: bad
/// input changes nothing). Returns the registry's entries.
pub fn check_register(setup: &Setup, paths: &[PathBuf]) -> Result<Vec<Entry>> {
    for path in paths {
        registry::check(path, &roots(setup)).map_err(|why| {
            invalid(format!(
                "cannot register {}: {why}",
                crate::logging::escape(&format!("{:?}", path.as_os_str()))
            ))
        })?;
    }
    load(setup)
}

/// Where each path stands, for `orc state list`.
#[derive(Debug, Serialize)]
pub struct PathStatus {
    #[serde(serialize_with = "crate::json::lossy::path")]
    pub path: PathBuf,
    pub leave_symlink: bool,
    pub pristine: bool,
    pub state: bool,
    /// The path is a symlink to its state copy.
    pub symlink_ok: bool,
}

/// `orc state list`.
pub fn status(setup: &Setup) -> Result<Vec<PathStatus>> {
    let entries = load(setup)?;
    let root = &setup.root;
    let exists_under = |base_sys: &Path, p: &Path| -> bool {
        let (parent, name) = split(p);
        root.open_raw(base_sys, DIR_FLAGS)
            .and_then(|b| open_beneath(b.as_fd(), &parent))
            .and_then(|d| lstat_at(d.as_fd(), &name))
            .is_ok_and(|s| s.is_some())
    };
    Ok(entries
        .into_iter()
        .map(|e| {
            let (parent, name) = split(&e.path);
            let want = finalise::state_target(setup, &e);
            let symlink_ok = root
                .open_raw(
                    &Path::new("/").join(&parent),
                    OFlag::O_PATH | OFlag::O_DIRECTORY,
                )
                .is_ok_and(|d| finalise::is_link_to(d.as_fd(), &name, &want));
            PathStatus {
                pristine: exists_under(&setup.paths.pristine_root, &e.path),
                state: exists_under(&setup.paths.state_root, &e.path),
                symlink_ok,
                leave_symlink: e.leave_symlink,
                path: e.path,
            }
        })
        .collect())
}

/// For `orc state list`: one line per path.
pub fn render(list: &[PathStatus]) -> String {
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut out = format!(
        "{:<40} {:>8} {:>9} {:>6} {:>8}\n",
        "path", "symlink", "pristine", "state", "link ok"
    );
    for s in list {
        out.push_str(&format!(
            "{:<40} {:>8} {:>9} {:>6} {:>8}\n",
            s.path.display(),
            yes(s.leave_symlink),
            yes(s.pristine),
            yes(s.state),
            if s.leave_symlink {
                yes(s.symlink_ok)
            } else {
                "-"
            }
        ));
    }
    out
}
