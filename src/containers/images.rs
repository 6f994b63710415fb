//! The images the specs need, made present before anything of an old
//! container is touched: loaded from an `image_archive` that is new or changed
//! since it was last loaded (recorded, so an unchanged archive is not loaded
//! again), pulled when missing (or always, or never: `pull_policy`); then resolved to the image IDs the hash holds.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use serde::{Deserialize, Serialize};

use super::engine::Engine;
use super::spec::{PullPolicy, Spec};
use crate::error::{Context, Error, Result};
use crate::root::Durable;
use crate::setup::Setup;

/// In the runtime dirs' parent: what each archive held when it was last loaded.
const RECORD: &str = ".images.json";

/// An archive as it was when loaded, and the image IDs it gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Loaded {
    size: i64,
    mtime: i64,
    mtime_ns: i64,
    ino: u64,
    ids: BTreeMap<String, String>,
}

type Record = BTreeMap<String, Loaded>;

/// What [`resolve`] found: the image ID of each spec (by name), and the specs whose
/// image could not be made present, with why.
#[derive(Debug, Default)]
pub struct Resolved {
    pub ids: HashMap<String, String>,
    pub failed: Vec<(String, String)>,
}

fn record_file(setup: &Setup) -> PathBuf {
    setup.paths.data_dir.join("containers").join(RECORD)
}

fn read_record(setup: &Setup) -> Record {
    setup
        .root
        .read_input(&record_file(setup))
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The archive opened through the root, and its identity (size, mtime, inode).
fn open_archive(setup: &Setup, archive: &Path) -> Result<(OwnedFd, Loaded)> {
    let shown = setup.root.shown(archive);
    let fd = setup
        .root
        .open_raw(
            archive,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
        )
        .ctx(|| format!("opening {}", shown.display()))?;
    let st = nix::sys::stat::fstat(&fd).ctx(|| format!("reading {}", shown.display()))?;
    if crate::root::kind(&st) != libc::S_IFREG {
        return Err(Error::Failed(format!(
            "{}: not a regular file",
            shown.display()
        )));
    }
    let id = Loaded {
        size: st.st_size,
        mtime: st.st_mtime,
        mtime_ns: st.st_mtime_nsec,
        ino: st.st_ino,
        ids: BTreeMap::new(),
    };
    Ok((fd, id))
}

/// Loads `archive` unless the record says this very file was loaded and its images
/// still resolve to what it gave; returns the archive's entry after.
fn ensure_archive(
    setup: &Setup,
    engine: &Engine,
    archive: &Path,
    images: &[&str],
    known: &HashMap<String, Option<String>>,
    was: Option<&Loaded>,
) -> Result<Loaded> {
    let (fd, mut now) = open_archive(setup, archive)?;
    let same_file = was.is_some_and(|w| {
        (w.size, w.mtime, w.mtime_ns, w.ino) == (now.size, now.mtime, now.mtime_ns, now.ino)
    });
    let intact = |w: &Loaded| {
        images.iter().all(|i| {
            w.ids
                .get(*i)
                .is_some_and(|id| known.get(*i) == Some(&Some(id.clone())))
        })
    };
    if same_file && was.is_some_and(intact) {
        return Ok(was.expect("checked").clone());
    }
    let shown = setup.root.shown(archive);
    log::info!("loading {} from {}", images.join(", "), shown.display());
    engine
        .load(fd.as_fd())
        .map_err(|e| e.context(format!("loading {}", shown.display())))?;
    for i in images {
        match engine.image_id(i)? {
            Some(id) => {
                now.ids.insert(i.to_string(), id);
            }
            None => {
                return Err(Error::Failed(format!(
                    "{} holds no image {i}",
                    shown.display()
                )));
            }
        }
    }
    Ok(now)
}

/// Makes each spec's image present (when `apply`) and resolves it to its image ID.
pub fn resolve(setup: &Setup, engine: &Engine, specs: &[Spec], apply: bool) -> Result<Resolved> {
    let mut refs: Vec<String> = specs.iter().map(|s| s.image.clone()).collect();
    refs.sort();
    refs.dedup();
    let mut known: HashMap<String, Option<String>> =
        refs.iter().cloned().zip(engine.image_ids(&refs)?).collect();
    let mut out = Resolved::default();
    if apply {
        let mut failed = ensure(setup, engine, specs, &mut known)?;
        out.failed.append(&mut failed);
    }
    for s in specs {
        if out.failed.iter().any(|(n, _)| *n == s.name) {
            continue;
        }
        if let Some(Some(id)) = known.get(&s.image) {
            out.ids.insert(s.name.clone(), id.clone());
        }
    }
    Ok(out)
}

/// Loads changed archives and pulls missing images; the specs that failed, with why.
fn ensure(
    setup: &Setup,
    engine: &Engine,
    specs: &[Spec],
    known: &mut HashMap<String, Option<String>>,
) -> Result<Vec<(String, String)>> {
    let mut failed = Vec::new();
    let record = read_record(setup);
    let mut next = Record::new();
    let mut archives: BTreeMap<&Path, Vec<&str>> = BTreeMap::new();
    for s in specs {
        if let Some(a) = &s.image_archive {
            archives.entry(a).or_default().push(&s.image);
        }
    }
    for (archive, images) in &archives {
        let key = archive.to_string_lossy().into_owned();
        match ensure_archive(setup, engine, archive, images, known, record.get(&key)) {
            Ok(l) => {
                for (i, id) in &l.ids {
                    known.insert(i.clone(), Some(id.clone()));
                }
                next.insert(key, l);
            }
            Err(e @ Error::Interrupted(_)) => return Err(e),
            Err(e) => specs
                .iter()
                .filter(|s| s.image_archive.as_deref() == Some(*archive))
                .for_each(|s| failed.push((s.name.clone(), format!("image {}: {e}", s.image)))),
        }
    }
    let mut pulled_now: Vec<&str> = Vec::new();
    for s in specs.iter().filter(|s| s.image_archive.is_none()) {
        let present = matches!(known.get(&s.image), Some(Some(_)));
        let policy = s.pull_policy.unwrap_or(PullPolicy::Missing);
        if policy == PullPolicy::Never && !present {
            failed.push((
                s.name.clone(),
                format!("image {}: not present, and pull_policy is never", s.image),
            ));
            continue;
        }
        // `always`: pulled once per converge, before anything is touched.
        let again = policy == PullPolicy::Always && !pulled_now.contains(&s.image.as_str());
        if present && !again {
            continue;
        }
        pulled_now.push(&s.image);
        log::info!("{}: pulling {}", s.name, s.image);
        let pulled = engine
            .pull(&s.image)
            .and_then(|()| engine.image_id(&s.image));
        match pulled {
            Ok(Some(id)) => {
                known.insert(s.image.clone(), Some(id));
            }
            Ok(None) => failed.push((
                s.name.clone(),
                format!("image {}: not there after pull", s.image),
            )),
            Err(e @ Error::Interrupted(_)) => return Err(e),
            Err(e) => failed.push((s.name.clone(), format!("image {}: {e}", s.image))),
        }
    }
    if next != record {
        let text = serde_json::to_vec_pretty(&next).expect("records serialize");
        setup
            .root
            .write_file(&record_file(setup), &text, 0o644, Durable::Full)?;
    }
    Ok(failed)
}
