//! `orc containers plan [--argv]`: what a converge would do, each action with
//! its reason and, with `--argv`, the engine calls that create what it
//! creates (the same argument builder the converge uses). Changes nothing:
//! no directory is made, no file written, no mutating engine call.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use serde::Serialize;

use super::args::{self, ArgCtx};
use super::engine::Engine;
use super::network::NetKind;
use super::plan::{Action, Kind};
use super::{Specs, secrets};
use crate::error::Result;
use crate::root::Dir;
use crate::setup::Setup;

/// One planned action.
#[derive(Debug, Serialize)]
pub struct Step {
    pub name: String,
    pub action: &'static str,
    pub reason: String,
    /// The engine calls that create it (without the engine's name).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<Vec<String>>,
}

/// A system path's real host path when it exists, else where it would be.
fn host_path(setup: &Setup, sys: &Path) -> PathBuf {
    match setup.root.open_raw(sys, OFlag::O_PATH) {
        Ok(fd) => Dir::from_fd(fd, sys.to_path_buf())
            .real_path()
            .unwrap_or_else(|_| sys.to_path_buf()),
        Err(_) => {
            let root = std::fs::read_link(format!("/proc/self/fd/{}", setup.root.fd().as_raw_fd()))
                .unwrap_or_else(|_| setup.root.path().to_path_buf());
            root.join(sys.strip_prefix("/").unwrap_or(sys))
        }
    }
}

/// The calls that create `a`'s container: under its own name, or (a recreate) under its
/// temporary name, created, not started, while the old one runs.
fn create_calls(
    setup: &Setup,
    p: &super::Planned,
    a: &Action,
    engine: &Engine,
) -> Result<Vec<Vec<String>>> {
    let name = a.name.as_str();
    let Some(s) = p.specs.specs.iter().find(|s| s.name == name) else {
        return Ok(Vec::new());
    };
    let rt = host_path(setup, &setup.paths.data_dir.join("containers").join(name));
    let sources: Vec<PathBuf> = s
        .volumes
        .iter()
        .map(|v| {
            if v.source.is_absolute() {
                host_path(setup, &v.source)
            } else {
                rt.join(&v.source)
            }
        })
        .collect();
    let prepared = secrets::prepare(setup, s, &rt, false)?;
    let recreate = a.kind == Kind::Recreate;
    let as_name = if recreate {
        super::recreate::temp_name(name)
    } else {
        name.to_string()
    };
    let hash = s.hash(p.image_ids.get(name).map_or("", String::as_str));
    let c = ArgCtx {
        kind: engine.kind,
        scope: &p.scope,
        infra: &p.infra,
        sources: &sources,
        prepared: &prepared,
        name: &as_name,
        hash: &hash,
    };
    let single = args::single_call(s, engine.kind) && !recreate;
    let mut calls = vec![args::run_args(s, &c, single)];
    for (net, opts) in args::later_networks(s, engine.kind) {
        let mut a: Vec<String> = vec!["network".into(), "connect".into()];
        a.extend(opts);
        a.extend([net, as_name.clone()]);
        calls.push(a);
    }
    if !single && !recreate {
        calls.push(vec!["start".into(), as_name]);
    }
    Ok(calls)
}

/// The plan of a converge now, with the engine calls when `argv`.
pub fn steps(setup: &Setup, specs: &Specs, engine: &Engine, argv: bool) -> Result<Vec<Step>> {
    let p = super::make_plan(setup, specs, engine, false)?;
    let mut out = Vec::new();
    for a in &p.net_actions {
        let calls = match (argv, a.kind) {
            (true, NetKind::Create | NetKind::Recreate) => specs
                .networks
                .iter()
                .filter(|n| n.name == a.name)
                .map(|n| args::network_args(n, &p.scope))
                .collect(),
            _ => Vec::new(),
        };
        out.push(Step {
            name: format!("network:{}", a.name),
            action: a.kind.name(),
            reason: a.reason.clone(),
            calls,
        });
    }
    for a in &p.actions {
        let calls = if argv && matches!(a.kind, Kind::Create | Kind::Recreate) {
            create_calls(setup, &p, a, engine)?
        } else {
            Vec::new()
        };
        out.push(Step {
            name: a.name.clone(),
            action: a.kind.name(),
            reason: a.reason.clone(),
            calls,
        });
    }
    Ok(out)
}

/// The plan as text: one line per action, its calls indented below it.
pub fn render(steps: &[Step], bin: &str) -> String {
    let mut out = String::new();
    for s in steps {
        out.push_str(&format!("{:<32} {:<9} {}\n", s.name, s.action, s.reason));
        for c in &s.calls {
            let words: Vec<String> = c.iter().map(|w| args::shell_quote(w)).collect();
            out.push_str(&format!("    {bin} {}\n", words.join(" ")));
        }
    }
    out
}
