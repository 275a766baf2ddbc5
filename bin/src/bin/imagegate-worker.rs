//! `imagegate-worker`: runs import and sync jobs from the database, without serving HTTP, and reports its
//! node's images when it reads a container runtime (`--cri-endpoint`).
//!
//! Start as many as you like against one PostgreSQL database: each job runs on one worker at a time, and
//! a worker that dies leaves its job to the others once its lease lapses.

use std::sync::Arc;

use anyhow::bail;
use clap::Parser;
use imagegate::{CommonArgs, RegistryArgs, WorkerArgs, shutdown_signal};

#[derive(Debug, Parser)]
#[command(name = "imagegate-worker", version, about = "Runs imagegate's import and sync jobs.")]
struct Args {
    /// The same database as the server's.
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    registries: RegistryArgs,
    #[command(flatten)]
    worker: WorkerArgs,
    #[command(flatten)]
    inventory: imagegate::inventory::InventoryArgs,
}

fn main() -> anyhow::Result<()> {
    imagegate::tune_allocator();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let node = args.inventory.node()?;
    let store = Arc::new(args.common.open_store().await?);
    let registries = imagegate::registries(&args.registries)?;
    let Some(internal) = registries.internal else {
        bail!(
            "a worker needs --internal-registry (or IMAGEGATE_INTERNAL_REGISTRY): where imports land; for a server's \
             built-in registry, the server's URL with an admin's --internal-registry-username and --internal-registry-password"
        );
    };
    // Jobs come from other processes here: on PostgreSQL they announce them, elsewhere this worker polls.
    let waker = Arc::new(tokio::sync::Notify::new());
    let reporter = node.map(|node| node.reporter(store.clone()));
    imagegate::run_worker(store, &internal, &args.worker, waker, reporter, shutdown_signal()).await;
    Ok(())
}
