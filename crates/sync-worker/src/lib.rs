#![doc = include_str!("../README.md")]

mod import;
mod runner;
mod sync;

pub use import::{IMPORT_JOB, ImportContext, ImportHandler, backoff};
pub use runner::{JobHandler, Lease, Runner, RunnerConfig, wake};
pub use sync::{SYNC_JOB, SyncContext, SyncHandler, schedule_syncs};
