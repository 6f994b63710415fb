//! State relocation onto the state root (TripleO's use-ephemeral, done right):
//! `register` records stateful paths at image build, `finalise` moves their
//! content to the pristine root and leaves symlinks, and `seed` (at every
//! boot) copies a pristine copy to the state root only where the state is
//! absent, crash-safely, with full fidelity, never following a symlink out of
//! either root.

pub mod copy;
pub mod registry;

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, RenameFlags, ResolveFlag, openat, openat2, renameat2};
use nix::sys::stat::{FileStat, Mode, fstat, fstatat, mkdirat};
use nix::unistd::{Gid, Uid};
use serde::Serialize;

use crate::error::{Context, Error, Result, invalid};
use crate::fsutil;
use crate::report::{StatePathReport, StepResult};
use crate::runner::{BuiltinOutcome, Setup, StepCtx};
use registry::Entry;

const DEFAULT_STATE_ROOT: &str = "/mnt/state";
const DEFAULT_PRISTINE_ROOT: &str = "/var/lib/use-ephemeral";

/// The state and pristine roots as system paths (not under `--root`).
fn system_roots(setup: &Setup) -> (PathBuf, PathBuf) {
    let s = &setup.config.state;
    (
        s.root.clone().unwrap_or_else(|| DEFAULT_STATE_ROOT.into()),
        s.pristine_root
            .clone()
            .unwrap_or_else(|| DEFAULT_PRISTINE_ROOT.into()),
    )
}

/// The registered paths; a bad registry is invalid input naming the file and line.
pub fn load(setup: &Setup) -> Result<Vec<Entry>> {
    let file = &setup.paths.registry;
    let text = match std::fs::read(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(invalid(format!("{}: {e}", file.display()))),
    };
    let (s, p) = system_roots(setup);
    registry::parse(&text, &[&s, &p])
        .map_err(|(line, msg)| invalid(format!("{}: line {line}: {msg}", file.display())))
}

/// `orc state register`: validates every path first, then rewrites the registry atomically.
pub fn register(setup: &Setup, paths: &[PathBuf], leave_symlink: bool) -> Result<i32> {
    let (s, p) = system_roots(setup);
    for path in paths {
        registry::check(path, &[&s, &p])
            .map_err(|why| invalid(format!("cannot register {:?}: {why}", path.as_os_str())))?;
    }
    let mut entries = load(setup)?;
    let mut changed = false;
    for path in paths {
        changed |= registry::add(&mut entries, path.clone(), leave_symlink);
    }
    if changed {
        fsutil::write_atomic(&setup.paths.registry, &registry::format(&entries), 0o644)?;
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

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Opens a directory beneath `base` by a relative path; no component may be a symlink.
fn open_beneath(base: BorrowedFd, rel: &Path) -> nix::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let how = OpenHow::new()
        .flags(DIR_FLAGS)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    openat2(base, rel, how)
}

/// Opens a system path inside the root as a chroot would see it (image symlinks stay inside).
fn open_in_root(root: BorrowedFd, sys: &Path) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root, sys, how)
}

/// Owner, mode and (optionally) times for a directory orc creates.
#[derive(Clone, Copy)]
struct DirAttrs {
    uid: u32,
    gid: u32,
    mode: u32,
}

impl DirAttrs {
    const DEFAULT: DirAttrs = DirAttrs {
        uid: 0,
        gid: 0,
        mode: 0o755,
    };

    fn of(st: &FileStat) -> DirAttrs {
        DirAttrs {
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode & 0o7777,
        }
    }
}

/// Creates `dir/name` with its final owner and mode in one rename (a crash leaves none or all).
fn make_dir(dir: BorrowedFd, name: &OsStr, a: DirAttrs) -> Result<()> {
    let mut tmp = OsString::from(".orc-mkdir-");
    tmp.push(name);
    copy::remove_tree(dir, &tmp)?;
    let shown = name.to_string_lossy();
    mkdirat(dir, tmp.as_os_str(), Mode::from_bits_truncate(0o700))
        .and_then(|()| {
            nix::unistd::fchownat(
                dir,
                tmp.as_os_str(),
                Some(Uid::from_raw(a.uid)),
                Some(Gid::from_raw(a.gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
        })
        .and_then(|()| {
            nix::sys::stat::fchmodat(
                dir,
                tmp.as_os_str(),
                Mode::from_bits_truncate(a.mode),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
        })
        .ctx(|| format!("creating {shown}"))?;
    match renameat2(
        dir,
        tmp.as_os_str(),
        dir,
        name,
        RenameFlags::RENAME_NOREPLACE,
    ) {
        Ok(()) => Ok(()),
        Err(Errno::EEXIST) => copy::remove_tree(dir, &tmp),
        Err(e) => Err(e).ctx(|| format!("creating {shown}")),
    }
}

/// Opens `rel` beneath `base`, creating missing components with `attrs(prefix)`; a
/// component that is a symlink or not a directory is an error. Returns the created prefixes.
fn ensure_dirs(
    base: &OwnedFd,
    rel: &Path,
    attrs: &dyn Fn(&Path) -> DirAttrs,
) -> Result<(OwnedFd, Vec<PathBuf>)> {
    let mut cur = base
        .try_clone()
        .map_err(|e| Error::Failed(format!("dup: {e}")))?;
    let mut prefix = PathBuf::new();
    let mut created = Vec::new();
    for c in rel.components() {
        let name = c.as_os_str();
        prefix.push(name);
        let next = match openat(&cur, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => {
                make_dir(cur.as_fd(), name, attrs(&prefix))?;
                created.push(prefix.clone());
                openat(&cur, name, DIR_FLAGS, Mode::empty())
                    .ctx(|| format!("opening {}", prefix.display()))?
            }
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                return Err(Error::Failed(format!(
                    "{} is a symlink or not a directory; refusing to follow it",
                    prefix.display()
                )));
            }
            Err(e) => return Err(e).ctx(|| format!("opening {}", prefix.display())),
        };
        cur = next;
    }
    Ok((cur, created))
}

fn lstat_at(dir: BorrowedFd, name: &OsStr) -> nix::Result<Option<FileStat>> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `var/lib/mysql` → (`var/lib`, `mysql`).
fn split(path: &Path) -> (PathBuf, OsString) {
    let rel = path.strip_prefix("/").unwrap_or(path);
    (
        rel.parent().map(Path::to_path_buf).unwrap_or_default(),
        rel.file_name().unwrap_or_default().to_os_string(),
    )
}

fn open_root(setup: &Setup) -> Result<OwnedFd> {
    let r = setup.paths.root.path();
    nix::fcntl::open(r, DIR_FLAGS, Mode::empty()).ctx(|| format!("opening root {}", r.display()))
}

/// Where each path stands, for `orc state list`.
#[derive(Debug, Serialize)]
pub struct PathStatus {
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
    let (state_sys, pristine_sys) = system_roots(setup);
    let root = open_root(setup)?;
    let exists_under = |base_sys: &Path, p: &Path| -> bool {
        let (parent, name) = split(p);
        open_in_root(root.as_fd(), base_sys)
            .and_then(|b| open_beneath(b.as_fd(), &parent))
            .and_then(|d| lstat_at(d.as_fd(), &name))
            .is_ok_and(|s| s.is_some())
    };
    Ok(entries
        .into_iter()
        .map(|e| {
            let (parent, name) = split(&e.path);
            let want = state_sys.join(e.path.strip_prefix("/").unwrap_or(&e.path));
            let symlink_ok = open_in_root(root.as_fd(), &Path::new("/").join(&parent))
                .and_then(|d| nix::fcntl::readlinkat(&d, name.as_os_str()))
                .is_ok_and(|t| Path::new(&t) == want);
            PathStatus {
                pristine: exists_under(&pristine_sys, &e.path),
                state: exists_under(&state_sys, &e.path),
                symlink_ok,
                leave_symlink: e.leave_symlink,
                path: e.path,
            }
        })
        .collect())
}

/// Replaces (or creates) `dir/name` with a symlink to `target`, atomically.
fn link_atomic(dir: BorrowedFd, name: &OsStr, target: &Path) -> Result<()> {
    let mut tmp = OsString::from(".orc-link-");
    tmp.push(name);
    let _ = nix::unistd::unlinkat(
        dir,
        tmp.as_os_str(),
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    nix::unistd::symlinkat(target, dir, tmp.as_os_str())
        .and_then(|()| nix::fcntl::renameat(dir, tmp.as_os_str(), dir, name))
        .and_then(|()| nix::unistd::fsync(dir))
        .ctx(|| format!("linking {} to {}", name.to_string_lossy(), target.display()))
}

/// `orc state finalise`: the last step of an image build.
pub fn finalise(setup: &Setup) -> Result<i32> {
    let entries = load(setup)?;
    let (state_sys, pristine_sys) = system_roots(setup);
    let root = open_root(setup)?;
    let mut failed = 0;
    for e in &entries {
        match finalise_one(setup, &root, e, &state_sys, &pristine_sys) {
            Ok(what) => log::info!("{}: {what}", e.path.display()),
            Err(err) => {
                log::error!("finalising {}: {err}", e.path.display());
                failed += 1;
            }
        }
    }
    Ok(i32::from(failed > 0))
}

fn finalise_one(
    setup: &Setup,
    root: &OwnedFd,
    e: &Entry,
    state_sys: &Path,
    pristine_sys: &Path,
) -> Result<String> {
    let (parent_rel, name) = split(&e.path);
    let want = state_sys.join(e.path.strip_prefix("/").unwrap_or(&e.path));
    let parent = match open_in_root(root.as_fd(), &Path::new("/").join(&parent_rel)) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok("absent (its parent does not exist); nothing to do".into()),
        Err(err) => return Err(err).ctx(|| format!("opening {}", parent_rel.display())),
    };
    let st = lstat_at(parent.as_fd(), &name).ctx(|| "reading it")?;
    let is_link = st.is_some_and(|s| s.st_mode & libc::S_IFMT == libc::S_IFLNK);
    if is_link {
        let target =
            nix::fcntl::readlinkat(&parent, name.as_os_str()).ctx(|| "reading the link")?;
        if Path::new(&target) == want {
            return Ok("already finalised".into());
        }
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT);
        if matches!(openat2(&parent, name.as_os_str(), how), Err(Errno::ENOENT)) {
            if e.leave_symlink {
                link_atomic(parent.as_fd(), &name, &want)?;
                return Ok(format!(
                    "replaced a dangling symlink with a link to {}",
                    want.display()
                ));
            }
            log::warn!(
                "{} is a dangling symlink to {}; left alone",
                e.path.display(),
                Path::new(&target).display()
            );
            return Ok("dangling symlink left alone".into());
        }
    }
    if st.is_none() {
        if e.leave_symlink {
            link_atomic(parent.as_fd(), &name, &want)?;
            return Ok(format!("absent; linked to {}", want.display()));
        }
        return Ok("absent; nothing to move".into());
    }
    let pristine_abs = setup.paths.pristine_root.clone();
    std::fs::create_dir_all(&pristine_abs)
        .map_err(|err| Error::Failed(format!("creating {}: {err}", pristine_abs.display())))?;
    let pristine = open_in_root(root.as_fd(), pristine_sys)
        .ctx(|| format!("opening {}", pristine_sys.display()))?;
    // The original parents as they are now: the move below changes their times.
    let mut originals = std::collections::HashMap::new();
    let mut prefix = PathBuf::new();
    for c in parent_rel.components() {
        prefix.push(c);
        if let Ok(st) =
            open_in_root(root.as_fd(), &Path::new("/").join(&prefix)).and_then(|d| fstat(&d))
        {
            originals.insert(prefix.clone(), st);
        }
    }
    let mirror = |prefix: &Path| {
        originals
            .get(prefix)
            .map_or(DirAttrs::DEFAULT, DirAttrs::of)
    };
    let (dest_parent, created) = ensure_dirs(&pristine, &parent_rel, &mirror)?;
    if lstat_at(dest_parent.as_fd(), &name)
        .ctx(|| "reading the pristine copy")?
        .is_some()
    {
        return Err(Error::Failed(format!(
            "a pristine copy already exists at {}; refusing to overwrite it",
            pristine_sys.join(&parent_rel).join(&name).display()
        )));
    }
    match nix::fcntl::renameat(&parent, name.as_os_str(), &dest_parent, name.as_os_str()) {
        Ok(()) => {}
        Err(Errno::EXDEV) => {
            let mut tmp = OsString::from(".orc-move-");
            tmp.push(&name);
            copy::remove_tree(dest_parent.as_fd(), &tmp)?;
            let counters = copy::Counters::default();
            copy::copy_tree(
                parent.as_fd(),
                &name,
                dest_parent.as_fd(),
                &tmp,
                &counters,
                &|| false,
                &mut || {},
            )?;
            nix::unistd::syncfs(&dest_parent)
                .and_then(|()| {
                    renameat2(
                        &dest_parent,
                        tmp.as_os_str(),
                        &dest_parent,
                        name.as_os_str(),
                        RenameFlags::RENAME_NOREPLACE,
                    )
                })
                .ctx(|| "moving across filesystems")?;
            copy::remove_tree(parent.as_fd(), &name)?;
        }
        Err(err) => return Err(err).ctx(|| "moving it to the pristine root"),
    }
    nix::unistd::fsync(&dest_parent)
        .and_then(|()| nix::unistd::fsync(&parent))
        .ctx(|| "syncing")?;
    for prefix in created.iter().rev() {
        if let Some(src) = originals.get(prefix) {
            let a = nix::sys::time::TimeSpec::new(src.st_atime, src.st_atime_nsec);
            let m = nix::sys::time::TimeSpec::new(src.st_mtime, src.st_mtime_nsec);
            nix::sys::stat::utimensat(
                &pristine,
                prefix.as_path(),
                &a,
                &m,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .ctx(|| format!("setting times of {}", prefix.display()))?;
        }
    }
    let mut what = format!(
        "moved to {}",
        pristine_sys.join(&parent_rel).join(&name).display()
    );
    if e.leave_symlink {
        link_atomic(parent.as_fd(), &name, &want)?;
        what.push_str(&format!("; linked to {}", want.display()));
    }
    Ok(what)
}

/// What happened to one path at seeding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Seeded,
    Present,
    NoPristine,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Outcome::Seeded => "seeded",
            Outcome::Present => "present",
            Outcome::NoPristine => "no-pristine",
        }
    }
}

/// The hidden sibling a copy is built in.
fn seed_tmp(name: &OsStr) -> OsString {
    let mut t = OsString::from(".orc-seed-");
    t.push(name);
    t
}

struct Seeder<'a> {
    root: OwnedFd,
    state: OwnedFd,
    pristine: Option<OwnedFd>,
    state_sys: PathBuf,
    abort: &'a dyn Fn() -> bool,
    notifier: &'a crate::notify::Notifier,
}

impl Seeder<'_> {
    fn seed_one(&self, path: &Path, counters: &copy::Counters) -> Result<Outcome> {
        let (parent_rel, name) = split(path);
        let pristine_parent = match &self.pristine {
            None => None,
            Some(p) => match open_beneath(p.as_fd(), &parent_rel) {
                Ok(fd) => Some(fd),
                Err(Errno::ENOENT) => None,
                Err(e) => {
                    return Err(e)
                        .ctx(|| format!("opening the pristine parent {}", parent_rel.display()));
                }
            },
        };
        let mirror = |prefix: &Path| {
            let from_pristine = self
                .pristine
                .as_ref()
                .and_then(|p| open_beneath(p.as_fd(), prefix).and_then(|d| fstat(&d)).ok());
            let from_image = || {
                open_in_root(self.root.as_fd(), &Path::new("/").join(prefix))
                    .and_then(|d| fstat(&d))
                    .ok()
            };
            from_pristine
                .or_else(from_image)
                .map_or(DirAttrs::DEFAULT, |st| DirAttrs::of(&st))
        };
        let (state_parent, _) = ensure_dirs(&self.state, &parent_rel, &mirror)?;
        let tmp = seed_tmp(&name);
        copy::remove_tree(state_parent.as_fd(), &tmp)?;
        if lstat_at(state_parent.as_fd(), &name)
            .ctx(|| "reading the state path")?
            .is_some()
        {
            return Ok(Outcome::Present);
        }
        let Some(src_parent) =
            pristine_parent.filter(|d| lstat_at(d.as_fd(), &name).is_ok_and(|s| s.is_some()))
        else {
            return Ok(Outcome::NoPristine);
        };
        let shown = path.display().to_string();
        let mut progress = || {
            let (b, f) = (
                counters.bytes.load(Ordering::Relaxed),
                counters.files.load(Ordering::Relaxed),
            );
            let msg = format!(
                "seeding {shown}: {f} files, {:.1} MiB so far",
                b as f64 / 1048576.0
            );
            log::info!("{msg}");
            self.notifier.status(&msg);
            self.notifier.extend(Duration::from_secs(30));
        };
        let copied = copy::copy_tree(
            src_parent.as_fd(),
            &name,
            state_parent.as_fd(),
            &tmp,
            counters,
            self.abort,
            &mut progress,
        );
        if let Err(e) = copied {
            let _ = copy::remove_tree(state_parent.as_fd(), &tmp);
            return Err(e);
        }
        nix::unistd::syncfs(&state_parent)
            .and_then(|()| {
                renameat2(
                    &state_parent,
                    tmp.as_os_str(),
                    &state_parent,
                    name.as_os_str(),
                    RenameFlags::RENAME_NOREPLACE,
                )
            })
            .and_then(|()| nix::unistd::fsync(&state_parent))
            .ctx(|| format!("putting {shown} in place"))?;
        Ok(Outcome::Seeded)
    }
}

/// Seeds every registered path; each is handled on its own. Returns the per-path reports
/// and whether all succeeded.
pub fn seed(
    setup: &Setup,
    abort: &dyn Fn() -> bool,
    notifier: &crate::notify::Notifier,
) -> Result<(Vec<StatePathReport>, bool)> {
    let entries = load(setup)?;
    if entries.is_empty() {
        return Ok((Vec::new(), true));
    }
    let (state_sys, pristine_sys) = system_roots(setup);
    let root = open_root(setup)?;
    let report_all = |msg: &str| -> (Vec<StatePathReport>, bool) {
        let r = entries
            .iter()
            .map(|e| StatePathReport {
                path: e.path.display().to_string(),
                outcome: "error".into(),
                bytes: 0,
                files: 0,
                duration_ms: 0.0,
                error: Some(msg.to_string()),
            })
            .collect();
        (r, false)
    };
    let state_abs = &setup.paths.state_root;
    if setup.config.state.require_mount {
        let same = std::fs::metadata(state_abs)
            .ok()
            .zip(std::fs::metadata(setup.paths.root.path()).ok())
            .map(|(a, b)| {
                std::os::unix::fs::MetadataExt::dev(&a) == std::os::unix::fs::MetadataExt::dev(&b)
            });
        if same != Some(false) {
            let msg = format!(
                "refusing to seed: {} is not a mounted filesystem of its own (state.require_mount)",
                state_sys.display()
            );
            log::error!("{msg}");
            return Ok(report_all(&msg));
        }
    }
    if let Err(e) = std::fs::create_dir_all(state_abs) {
        return Ok(report_all(&format!(
            "creating {}: {e}",
            state_abs.display()
        )));
    }
    let state = match open_in_root(root.as_fd(), &state_sys) {
        Ok(fd) => fd,
        Err(e) => {
            return Ok(report_all(&format!(
                "opening {}: {}",
                state_sys.display(),
                std::io::Error::from(e)
            )));
        }
    };
    let pristine = match open_in_root(root.as_fd(), &pristine_sys) {
        Ok(fd) => Some(fd),
        Err(Errno::ENOENT) => None,
        Err(e) => {
            return Ok(report_all(&format!(
                "opening {}: {}",
                pristine_sys.display(),
                std::io::Error::from(e)
            )));
        }
    };
    let seeder = Seeder {
        root,
        state,
        pristine,
        state_sys,
        abort,
        notifier,
    };
    let mut reports = Vec::new();
    let mut ok = true;
    for e in &entries {
        if abort() {
            return Err(Error::Failed("interrupted".into()));
        }
        let t = Instant::now();
        let counters = copy::Counters::default();
        let res = seeder.seed_one(&e.path, &counters);
        let (outcome, error) = match res {
            Ok(o) => (o.name(), None),
            Err(err) => {
                if abort() {
                    return Err(Error::Failed("interrupted".into()));
                }
                ok = false;
                log::error!("seeding {}: {err}", e.path.display());
                ("error", Some(err.to_string()))
            }
        };
        let r = StatePathReport {
            path: e.path.display().to_string(),
            outcome: outcome.into(),
            bytes: counters.bytes.load(Ordering::Relaxed),
            files: counters.files.load(Ordering::Relaxed),
            duration_ms: crate::time::ms(t.elapsed()),
            error,
        };
        match r.outcome.as_str() {
            "seeded" => log::info!(
                "seeded {} into {} ({} files, {} bytes, {:.0} ms)",
                r.path,
                seeder.state_sys.display(),
                r.files,
                r.bytes,
                r.duration_ms
            ),
            o => log::debug!("{}: {o}", r.path),
        }
        reports.push(r);
    }
    Ok((reports, ok))
}

/// The built-in `pre-configure/01-orc-state` step.
pub fn seed_step(ctx: &StepCtx) -> BuiltinOutcome {
    let abort =
        || ctx.signals.pending().is_some() || ctx.deadline.is_some_and(|d| Instant::now() >= d);
    match seed(ctx.setup, &abort, ctx.notifier) {
        Ok((reports, ok)) => {
            let count = |o: &str| reports.iter().filter(|r| r.outcome == o).count();
            let note = if reports.is_empty() {
                "nothing registered".to_string()
            } else {
                format!(
                    "{} seeded, {} present, {} without pristine copy, {} failed",
                    count("seeded"),
                    count("present"),
                    count("no-pristine"),
                    count("error")
                )
            };
            BuiltinOutcome {
                result: Some(if ok {
                    StepResult::Ok
                } else {
                    StepResult::Failed
                }),
                note: Some(note),
                state: reports,
                ..BuiltinOutcome::default()
            }
        }
        Err(e) => {
            let interrupted = ctx.signals.pending().is_some();
            let timed_out = ctx.deadline.is_some_and(|d| Instant::now() >= d);
            BuiltinOutcome {
                result: Some(if interrupted {
                    StepResult::Interrupted
                } else if timed_out {
                    StepResult::Timeout
                } else {
                    StepResult::Failed
                }),
                note: Some(e.to_string()),
                external: Duration::ZERO,
                ..BuiltinOutcome::default()
            }
        }
    }
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

/// Used by the CLI: the registry must be valid before a run changes anything.
pub fn validate(setup: &Setup) -> Result<()> {
    load(setup).map(drop)
}
