//! orc: the boot-time refresh of an appliance-style box.
//!
//! One run executes the os-refresh-config phases, seeds relocated state and
//! converges the box's containers; see `SPEC.md` for the contract. Modules
//! depend one way: `cli` → `runner` → the steps (`state`, `containers`) →
//! the infrastructure (`setup`, `root`, `exec`, `lock`, `report`, ...). The
//! step contract (`step`) depends on nothing else of orc.
#![deny(unsafe_code)]

pub mod cli;
pub mod config;
pub mod containers;
pub mod envd;
pub mod error;
pub mod exec;
pub mod journal;
pub mod json;
pub mod lock;
pub mod logging;
pub mod manual;
pub mod manual5;
pub mod metrics;
pub mod notify;
pub mod phases;
pub mod plan;
pub mod privilege;
pub mod procs;
pub mod progress;
pub mod redact;
pub mod report;
pub mod root;
pub mod runner;
pub mod setup;
pub mod signals;
pub mod state;
pub mod step;
pub mod threads;
pub mod time;
pub mod trust;
pub mod walk;
