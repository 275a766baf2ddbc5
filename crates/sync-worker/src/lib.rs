#![doc = include_str!("../README.md")]

mod context;
mod import;
mod retention;
mod runner;
mod sync;

pub use context::WorkerContext;
pub use import::ImportHandler;
pub use retention::{RetentionHandler, schedule_retention};
pub use runner::{Claimed, Job, Lease, Outcome, Runner, RunnerConfig, Verdict, backoff, wake};
pub use sync::{SyncHandler, schedule_syncs};
