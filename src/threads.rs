//! Threads that may not start. Under a pids limit (`TasksMax=` at boot, a
//! container's `pids.max`) creating a thread fails with `EAGAIN`; then the work
//! runs inline on the calling thread instead: slower, never a panic or a hang.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{Builder, Scope, ScopedJoinHandle};

/// Work started by [`start`]: on its own thread, or already done inline.
pub enum Task<'s, T> {
    Thread(ScopedJoinHandle<'s, T>),
    Done(T),
}

impl<T> Task<'_, T> {
    /// The work's result; `None` if its thread panicked (a bug, told by the caller as an
    /// error rather than passed on as a panic).
    pub fn join(self) -> Option<T> {
        match self {
            Task::Thread(h) => h.join().ok(),
            Task::Done(t) => Some(t),
        }
    }
}

/// Runs `f` on a new thread named `name` in `scope`, or here and now when no thread can
/// be started (logged once per call).
pub fn start<'s, 'e, T, F>(scope: &'s Scope<'s, 'e>, name: &str, f: F) -> Task<'s, T>
where
    T: Send + 's,
    F: FnOnce() -> T + Send + 's,
{
    let slot = Arc::new(Mutex::new(Some(f)));
    let theirs = Arc::clone(&slot);
    let take = move || theirs.lock().unwrap_or_else(PoisonError::into_inner).take();
    let spawned = refused().map_or_else(
        || {
            Builder::new()
                .name(name.into())
                .spawn_scoped(scope, move || {
                    let f = take().expect("taken once, by the thread that started");
                    f()
                })
        },
        Err,
    );
    match spawned {
        Ok(h) => Task::Thread(h),
        Err(e) => {
            log::debug!("cannot start a thread ({name}): {e}; running its work inline");
            let f = slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
                .expect("the thread never started");
            Task::Done(f())
        }
    }
}

/// In unit tests, a thread start refused on purpose (see `tests::REFUSE`).
fn refused() -> Option<std::io::Error> {
    #[cfg(test)]
    if tests::REFUSE.with(std::cell::Cell::get) {
        return Some(std::io::Error::from_raw_os_error(libc::EAGAIN));
    }
    None
}

/// Refuses every thread start from this thread while `f` runs (unit tests of callers).
#[cfg(test)]
pub fn without_threads<R>(f: impl FnOnce() -> R) -> R {
    tests::REFUSE.with(|r| r.set(true));
    let out = f();
    tests::REFUSE.with(|r| r.set(false));
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    thread_local! {
        pub static REFUSE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    #[test]
    fn a_refused_thread_runs_its_work_inline() {
        let here = std::thread::current().id();
        let (a, b) = std::thread::scope(|s| {
            let a = start(s, "t", || std::thread::current().id());
            let b = without_threads(|| start(s, "t", || std::thread::current().id()));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_ne!(a, here, "a thread when one can start");
        assert_eq!(b, here, "inline when none can");
    }

    #[test]
    fn a_panicking_thread_is_none_not_a_panic() {
        let r = std::thread::scope(|s| start(s, "t", || -> u8 { panic!("bug") }).join());
        assert!(r.is_none());
    }
}
