#![doc = include_str!("../README.md")]

mod context;
mod import;
mod inventory;
mod runner;
mod sync;

pub use context::WorkerContext;
pub use import::ImportHandler;
pub use inventory::{InventoryJob, NodeReporter, schedule_inventory};
pub use runner::{Claimed, Job, Lease, Outcome, Runner, RunnerConfig, Verdict, backoff, wake};
pub use sync::{SyncHandler, schedule_syncs};
