#![doc = include_str!("../README.md")]

mod import;
mod runner;

pub use import::{IMPORT_JOB, ImportContext, ImportHandler, backoff};
pub use runner::{JobHandler, Lease, Runner, RunnerConfig};
