//! `orc containers plan [--argv]`: what a converge would do, each action with
//! its reason and, with `--argv`, every engine call the converge would make
//! ([`super::dryrun`]), its waits and host hooks. Changes nothing: no
//! directory is made, no file written, no mutating engine call.

use serde::Serialize;

use super::Specs;
use super::args;
use super::dryrun::{self, Call};
use super::engine::Engine;
use crate::error::Result;
use crate::setup::Setup;

/// One planned action.
#[derive(Debug, Serialize)]
pub struct Step {
    pub name: String,
    pub action: &'static str,
    pub reason: String,
    /// What the converge calls for it, in order (a batched call under its first name).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calls: Vec<Call>,
}

/// The plan of a converge now, with the engine calls when `argv`.
pub fn steps(setup: &Setup, specs: &Specs, engine: &Engine, argv: bool) -> Result<Vec<Step>> {
    let p = super::make_plan(setup, specs, engine, false)?;
    let step = |name: String, action: &'static str, reason: &str| Step {
        name,
        action,
        reason: reason.to_string(),
        calls: Vec::new(),
    };
    let mut out: Vec<Step> = p
        .net_actions
        .iter()
        .map(|a| step(format!("network:{}", a.name), a.kind.name(), &a.reason))
        .chain(
            p.actions
                .iter()
                .map(|a| step(a.name.clone(), a.kind.name(), &a.reason)),
        )
        .collect();
    if !argv {
        return Ok(out);
    }
    for (owner, call) in dryrun::calls(setup, &p, engine)? {
        match out.iter_mut().find(|s| s.name == owner) {
            Some(s) => s.calls.push(call),
            None => {
                let mut s = step(owner, "resolve", "left by an interrupted run");
                s.calls.push(call);
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// The plan as text: one line per action, its calls indented below it.
pub fn render(steps: &[Step], bin: &str) -> String {
    let mut out = String::new();
    for s in steps {
        out.push_str(&format!("{:<32} {:<9} {}\n", s.name, s.action, s.reason));
        for c in &s.calls {
            let quoted = |argv: &[String]| {
                argv.iter()
                    .map(|w| args::shell_quote(w))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            out.push_str(&match c {
                Call::Engine(a) => format!("    {bin} {}\n", quoted(a)),
                Call::Wait { wait, container } => {
                    format!("    (wait until {container} is {wait})\n")
                }
                Call::Host { host, argv } => {
                    format!("    (on the host, {host}: {})\n", quoted(argv))
                }
            });
        }
    }
    out
}
