#![doc = include_str!("../README.md")]

mod context;
mod import;
mod inventory;
mod retention;
mod runner;
mod scan;
mod sync;

pub use context::WorkerContext;
pub use import::ImportHandler;
pub use inventory::{InventoryJob, NodeReporter, schedule_inventory};
pub use retention::{RetentionHandler, schedule_retention};
pub use runner::{Claimed, Job, Lease, Outcome, Runner, RunnerConfig, Verdict, backoff, wake};
pub use scan::{SCAN_ATTEMPTS, ScanHandler, ScanSettings, record as record_scan, schedule_scan_refresh};
pub use sync::{SyncHandler, schedule_syncs};
