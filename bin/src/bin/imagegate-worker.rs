//! `imagegate-worker`: runs import and sync jobs from the database, without serving HTTP.
//!
//! Start as many as you like against one PostgreSQL database: each job runs on one worker at a time, and
//! a worker that dies leaves its job to the others once its lease lapses.

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context, bail};
use clap::Parser;
use imagegate::{LogFormat, RegistryArgs, WorkerArgs, database_url, init_logging, redact_url, shutdown_signal};

#[derive(Debug, Parser)]
#[command(name = "imagegate-worker", version, about = "Runs imagegate's import and sync jobs.")]
struct Args {
    /// Directory of the embedded database, when no database URL is given.
    #[arg(long, env = "IMAGEGATE_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Database URL, the same as the server's.
    #[arg(long, env = "IMAGEGATE_DATABASE_URL")]
    database_url: Option<String>,
    #[arg(long, env = "IMAGEGATE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(flatten)]
    registries: RegistryArgs,
    #[command(flatten)]
    worker: WorkerArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);
    let url = database_url(&args.data_dir, args.database_url.as_deref())?;
    let store = store::DbStore::connect(&url)
        .await
        .with_context(|| format!("cannot open the database at {}", redact_url(&url)))?;
    tracing::info!(database = %redact_url(&url), backend = store.backend_name(), "database ready");
    let Some(internal) = imagegate::internal_registry(&args.registries)? else {
        bail!("a worker needs --internal-registry (or IMAGEGATE_INTERNAL_REGISTRY): where imports land");
    };
    let runner = imagegate::runner(Arc::new(store), &internal, &args.worker);
    runner.run(shutdown_signal()).await;
    Ok(())
}
