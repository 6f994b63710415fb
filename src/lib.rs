//! orc: the boot-time refresh of an appliance-style box.
//!
//! One run executes the os-refresh-config phases, seeds relocated state and
//! converges the box's containers; see `SPEC.md` for the contract.

pub mod cli;
pub mod config;
pub mod containers;
pub mod envd;
pub mod error;
pub mod exec;
pub mod fsutil;
pub mod lock;
pub mod logging;
pub mod notify;
pub mod phases;
pub mod report;
pub mod root;
pub mod runner;
pub mod state;
pub mod time;
