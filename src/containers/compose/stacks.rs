//! The five stacks of tests/stacks/: each compose file, read as compose.d would read it,
//! gives exactly the specs and networks of its hand-kept JSON equivalent
//! (tests/stacks/json/STACK/{containers.d,networks.d}/*.json), service by service, so a
//! box moving from JSON specs to the compose file recreates nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Source, parse};
use crate::containers::network::NetSpec;
use crate::containers::spec::{self, Spec};

const STACKS: [&str; 5] = [
    "nextcloud",
    "mattermost",
    "gitea",
    "homeassistant",
    "owncloud",
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stacks")
}

/// The run's environment as environment.d gives it: the stack's `*.env.sh` sourced.
fn run_env(stack: &str) -> BTreeMap<String, String> {
    let file = dir().join(format!("{stack}.env.sh"));
    if !file.exists() {
        return BTreeMap::new();
    }
    let o = std::process::Command::new("bash")
        .arg("-c")
        .arg(r#"set -a; . "$1"; env -0"#)
        .arg("bash")
        .arg(&file)
        .env_clear()
        .output()
        .unwrap();
    assert!(o.status.success());
    o.stdout
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

pub(super) fn from_compose(stack: &str) -> (Vec<Spec>, Vec<NetSpec>) {
    let env = run_env(stack);
    let lookup = |k: &str| env.get(k).cloned();
    let sys = PathBuf::from(format!("/etc/orc/compose.d/{stack}.yaml"));
    let text = std::fs::read(dir().join(format!("{stack}.yaml"))).unwrap();
    let l = parse(
        &text,
        &Source {
            shown: &sys,
            sys: &sys,
            data_dir: Path::new("/var/lib/orc"),
            env: &lookup,
        },
    )
    .unwrap();
    assert!(l.unset.is_empty(), "{stack}: unset {:?}", l.unset);
    (l.specs, l.networks)
}

fn json_files(stack: &str, sub: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let d = dir().join("json").join(stack).join(sub);
    let Ok(rd) = std::fs::read_dir(&d) else {
        return Vec::new();
    };
    let mut out: Vec<(PathBuf, Vec<u8>)> = rd
        .map(|e| {
            let p = e.unwrap().path();
            let t = std::fs::read(&p).unwrap();
            (p, t)
        })
        .collect();
    out.sort();
    out
}

fn from_json(stack: &str) -> (Vec<Spec>, Vec<NetSpec>) {
    let specs = json_files(stack, "containers.d")
        .iter()
        .map(|(p, t)| spec::parse(t, p).unwrap())
        .collect();
    let nets = json_files(stack, "networks.d")
        .iter()
        .map(|(p, t)| crate::json::parse_object::<NetSpec>(t, p).unwrap())
        .collect();
    (specs, nets)
}

#[test]
fn every_service_of_the_five_stacks_hashes_as_its_json_spec() {
    let mut services = 0;
    for stack in STACKS {
        let (mut c, mut cn) = from_compose(stack);
        let (mut j, mut jn) = from_json(stack);
        c.sort_by(|a, b| a.name.cmp(&b.name));
        j.sort_by(|a, b| a.name.cmp(&b.name));
        let names = |v: &[Spec]| v.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&c), names(&j), "{stack}: the same services");
        for (c, j) in c.iter().zip(&j) {
            assert_eq!(c, j, "{stack}: {}", c.name);
            assert_eq!(
                c.hash("sha256:x"),
                j.hash("sha256:x"),
                "{stack}: {}",
                c.name
            );
            services += 1;
        }
        cn.sort_by(|a, b| a.name.cmp(&b.name));
        jn.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(cn, jn, "{stack}: the same networks");
        let hashes = |v: &[NetSpec]| v.iter().map(NetSpec::hash).collect::<Vec<_>>();
        assert_eq!(hashes(&cn), hashes(&jn), "{stack}: network hashes");
    }
    assert_eq!(services, 12, "every service of the five stacks");
}
