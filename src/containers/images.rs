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

/// The image ID each image reference resolves to (`None`: not present).
pub(super) type Known = HashMap<String, Option<String>>;

/// An image to pull, and the specs that need it.
pub type Pull = (String, Vec<String>);

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

/// Whether `archive` must be loaded: unless the record says this very file was loaded
/// and its images still resolve to what it gave. The archive, opened, and its identity.
fn must_load(
    setup: &Setup,
    archive: &Path,
    images: &[&str],
    known: &HashMap<String, Option<String>>,
    was: Option<&Loaded>,
) -> Result<(bool, OwnedFd, Loaded)> {
    let (fd, now) = open_archive(setup, archive)?;
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
    Ok((!(same_file && was.is_some_and(intact)), fd, now))
}

/// Loads `archive` when [`must_load`] says so; returns the archive's entry after.
fn ensure_archive(
    setup: &Setup,
    engine: &Engine,
    archive: &Path,
    images: &[&str],
    known: &HashMap<String, Option<String>>,
    was: Option<&Loaded>,
) -> Result<Loaded> {
    let (load, fd, mut now) = must_load(setup, archive, images, known, was)?;
    if !load {
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

/// The image archives of the specs, each with the images it stands for.
fn archives(specs: &[Spec]) -> BTreeMap<&Path, Vec<&str>> {
    let mut out: BTreeMap<&Path, Vec<&str>> = BTreeMap::new();
    for s in specs {
        if let Some(a) = &s.image_archive {
            out.entry(a).or_default().push(&s.image);
        }
    }
    out
}

/// The archives a converge would load now (read-only: for `plan --argv`).
pub(super) fn loads(setup: &Setup, specs: &[Spec], known: &Known) -> Vec<PathBuf> {
    let record = read_record(setup);
    archives(specs)
        .into_iter()
        .filter(|(a, images)| {
            let was = record.get(&*a.to_string_lossy());
            must_load(setup, a, images, known, was).is_ok_and(|(load, _, _)| load)
        })
        .map(|(a, _)| a.to_path_buf())
        .collect()
}

/// The pulls `pull_policy` asks for, in spec order (an image once, with the specs that
/// need it), and the specs that fail without one (`never`, not present). Pure.
pub fn pulls(specs: &[Spec], present: &dyn Fn(&str) -> bool) -> (Vec<Pull>, Vec<(String, String)>) {
    let (mut todo, mut failed): (Vec<Pull>, _) = (Vec::new(), Vec::new());
    for s in specs.iter().filter(|s| s.image_archive.is_none()) {
        let here = present(&s.image);
        let policy = s.pull_policy.unwrap_or(PullPolicy::Missing);
        if policy == PullPolicy::Never && !here {
            failed.push((
                s.name.clone(),
                format!("image {}: not present, and pull_policy is never", s.image),
            ));
            continue;
        }
        // `always`: pulled once per converge, before anything is touched.
        if here && policy != PullPolicy::Always {
            continue;
        }
        match todo.iter_mut().find(|(i, _)| *i == s.image) {
            Some((_, names)) => names.push(s.name.clone()),
            None => todo.push((s.image.clone(), vec![s.name.clone()])),
        }
    }
    (todo, failed)
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
    for (archive, images) in &archives(specs) {
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
    let (todo, mut never) = pulls(specs, &|i| matches!(known.get(i), Some(Some(_))));
    failed.append(&mut never);
    for (image, names) in todo {
        log::info!("{}: pulling {image}", names.join(", "));
        let why = match engine.pull(&image).and_then(|()| engine.image_id(&image)) {
            Ok(Some(id)) => {
                known.insert(image, Some(id));
                continue;
            }
            Ok(None) => format!("image {image}: not there after pull"),
            Err(e @ Error::Interrupted(_)) => return Err(e),
            Err(e) => format!("image {image}: {e}"),
        };
        failed.extend(names.into_iter().map(|n| (n, why.clone())));
    }
    if next != record {
        let text = serde_json::to_vec_pretty(&next).expect("records serialize");
        setup
            .root
            .write_file(&record_file(setup), &text, 0o644, Durable::Full)?;
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, image: &str, policy: Option<&str>) -> Spec {
        serde_json::from_value(serde_json::json!({
            "name": name, "image": image, "pull_policy": policy
        }))
        .unwrap()
    }

    #[test]
    fn an_image_is_pulled_once_for_every_spec_that_needs_it() {
        let specs = [
            spec("a", "x", Some("always")),
            spec("b", "x", None),
            spec("c", "y", None),
            spec("d", "y", Some("always")),
            spec("e", "z", Some("never")),
            spec("f", "w", Some("never")),
            spec("g", "w", None),
        ];
        let present = |i: &str| matches!(i, "x" | "w");
        let (todo, failed) = pulls(&specs, &present);
        assert_eq!(
            todo,
            [
                ("x".to_string(), vec!["a".to_string()]),
                ("y".to_string(), vec!["c".to_string(), "d".to_string()]),
            ]
        );
        assert_eq!(
            failed,
            [(
                "e".to_string(),
                "image z: not present, and pull_policy is never".to_string()
            )]
        );
    }
}
