//! `imagegate-worker`: runs import and sync jobs from the database, without serving HTTP.
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = args.common.open_store().await?;
    let Some(internal) = imagegate::internal_registry(&args.registries)? else {
        bail!("a worker needs --internal-registry (or IMAGEGATE_INTERNAL_REGISTRY): where imports land");
    };
    let runner = imagegate::runner(Arc::new(store), &internal, &args.worker);
    runner.run(shutdown_signal()).await;
    Ok(())
}
