//! `imagegate-server`: every API profile over one database, with an embedded worker.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use clap::{Parser, Subcommand};
use imagegate::{CommonArgs, RegistryArgs, WorkerArgs, shutdown_signal, users::UserCommand};
use tokio::sync::watch;
use tower_http::{
    LatencyUnit,
    trace::{DefaultOnResponse, TraceLayer},
};

#[derive(Debug, Parser)]
#[command(name = "imagegate-server", version, about = "Serves imagegate's APIs over one database.")]
struct Args {
    /// Without a command: serve.
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on.
    #[arg(long, env = "IMAGEGATE_LISTEN", default_value = "127.0.0.1:5375")]
    listen: SocketAddr,
    #[command(flatten)]
    common: CommonArgs,
    /// Password of the `admin` account created on first start; generated and printed once when unset.
    #[arg(long = "admin-password", env = "IMAGEGATE_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// How long an API token works: `30d`, `720h`, `90m`; at most 365 days.
    #[arg(long, env = "IMAGEGATE_TOKEN_TTL", default_value = "30d", value_parser = imagegate::parse_token_ttl)]
    token_ttl: Duration,
    /// Do not run jobs in this process; run `imagegate-worker` against the same database instead.
    #[arg(long, env = "IMAGEGATE_NO_WORKER")]
    no_worker: bool,
    #[command(flatten)]
    registries: RegistryArgs,
    #[command(flatten)]
    worker: WorkerArgs,
    #[command(flatten)]
    connections: imagegate::serve::ConnectionLimits,
    /// How long a sign-in session (the station profile's cookie) lasts without a request: `12h`, `30m`.
    #[arg(long, env = "IMAGEGATE_SESSION_IDLE", default_value = "12h", value_parser = imagegate::parse_token_ttl)]
    session_idle: Duration,
    /// The namespace whose registry secrets are the station profile's registries.
    #[arg(long, env = "IMAGEGATE_STATION_NAMESPACE", default_value = "station", value_parser = imagegate::parse_station_namespace)]
    station_namespace: String,
    /// A registry mirroring Docker Hub (`https://mirror.example.com`), which the station profile's
    /// downloads of Docker Hub images read instead, as Docker's `registry-mirrors` does.
    #[arg(long, env = "IMAGEGATE_DOCKER_HUB_MIRROR", value_parser = imagegate::parse_docker_hub_mirror)]
    docker_hub_mirror: Option<String>,
    /// Docker Hub's repository search, as the station profile's `category=dockerhub` asks it.
    #[arg(long, env = "IMAGEGATE_DOCKER_HUB_URL", default_value = api_http::profile::station::StationConfig::DEFAULT_DOCKER_HUB_URL)]
    docker_hub_url: String,
    #[command(flatten)]
    inventory: imagegate::inventory::InventoryArgs,
    #[command(flatten)]
    metrics: imagegate::MetricsArgs,
    #[command(flatten)]
    builtin_registry: imagegate::builtin_registry::BuiltinRegistryArgs,
    /// Log every request (method, path, status, latency) at `info`. Off by default: `/metrics` counts
    /// requests by route and status, and a line per request costs a busy server a tenth of its CPU.
    #[arg(long, env = "IMAGEGATE_ACCESS_LOG")]
    access_log: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Adds users, sets passwords and lists users, in the database the server uses, running or not.
    #[command(subcommand)]
    User(UserCommand),
    /// Removes the built-in registry's blobs that no manifest references, once older than the grace period
    /// (so never one an in-flight push has uploaded), and blob files no record names.
    Gc {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Hours a blob is kept after it was pushed, referenced or not.
        #[arg(long, default_value_t = 24)]
        grace_hours: u64,
    },
}

fn main() -> anyhow::Result<()> {
    imagegate::tune_allocator();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command {
        Some(Command::User(command)) => {
            let store = args.common.open_store_for_command().await?;
            return imagegate::users::run(&store, command).await;
        }
        Some(Command::Gc { dry_run, grace_hours }) => {
            let store = args.common.open_store_for_command().await?;
            let grace = Duration::from_secs(grace_hours.saturating_mul(3600));
            return imagegate::builtin_registry::gc(&store, &args.common.data_dir, grace, dry_run).await;
        }
        None => {}
    }
    let node = args.inventory.node()?;
    let store = args.common.open_store().await?;

    if let Some(password) = api_http::auth::ensure_admin(&store, args.admin_password).await? {
        // Shown once, on the terminal that started the server; it is stored only as a hash.
        eprintln!(
            "\n  Created the `admin` account with password: {password}\n  (set IMAGEGATE_ADMIN_PASSWORD to choose it)\n"
        );
    }

    let store = Arc::new(store);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let builtin = args.registries.internal_registry.as_deref().is_none_or(str::is_empty);
    let (registries, builtin_credential) = if builtin {
        let host = imagegate::builtin_registry::loopback_host(listener.local_addr()?);
        let (registries, credential) = imagegate::builtin_registry::registries(
            &args.registries,
            &host,
            store.clone(),
            &args.common.data_dir,
            &args.builtin_registry,
        )?;
        tracing::info!(registry = %host, "no --internal-registry: serving the built-in registry at /v2/; imports land in it");
        (registries, Some(credential))
    } else {
        (imagegate::registries(&args.registries)?, None)
    };
    let waker = Arc::new(tokio::sync::Notify::new());
    let mut state = api_http::AppState::new(store.clone())
        .with_copier(registries.copier.clone())
        .with_job_waker(waker.clone())
        .with_token_ttl(args.token_ttl)
        .with_session_idle(args.session_idle)
        .with_station(api_http::profile::station::StationConfig {
            namespace: args.station_namespace.clone(),
            docker_hub_mirror: args.docker_hub_mirror.clone(),
            docker_hub_url: args.docker_hub_url.clone(),
        })
        .with_registry_browser(registries.copier.clone())
        .with_harbor_webhook_secret(args.registries.harbor_webhook_secret.clone().map(image_core::kube::Secret::new))
        .with_registry_webhook_secret(
            args.registries.registry_webhook_secret.clone().map(image_core::kube::Secret::new),
        )
        .with_metrics(args.metrics.access()?)
        .with_request_limits(
            args.connections.max_concurrent_requests,
            Duration::from_secs(args.connections.body_timeout_secs.max(1)),
        );
    if let Some(node) = &node {
        tracing::info!(node = %node.name, runtime = %node.runtime.endpoint(), "GET /images reads this node's runtime");
        state = state.with_local_node(node.local());
    }
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let mut worker = None;
    // Always one: without --internal-registry, the built-in registry is the internal one.
    if let Some(internal) = registries.internal {
        tracing::info!(registry = %internal.host, prefix = %internal.prefix, "imports land in this internal registry");
        if !args.no_worker {
            let mut stop = stop_rx.clone();
            let (store, internal, worker_args) = (store.clone(), internal.clone(), args.worker.clone());
            let reporter = node.as_ref().map(|node| node.reporter(store.clone()));
            worker = Some(tokio::spawn(async move {
                imagegate::run_worker(store, &internal, &worker_args, waker, reporter, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            }));
        }
        state = state.with_internal_registry(internal);
    }

    let access_log = args.access_log;
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &axum::http::Request<_>| {
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
        })
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(LatencyUnit::Millis));
    let registry = match builtin_credential {
        Some(credential) => {
            let key = store::SecretKey::load_or_create(&args.common.secret_key_path())
                .context("cannot load the secret key for the built-in registry's tokens")?;
            Some(imagegate::builtin_registry::router(
                store.clone(),
                &state,
                &args.common.data_dir,
                &key,
                &args.builtin_registry,
                credential,
            )?)
        }
        None => None,
    };
    let mut app = api_http::router(state);
    if let Some(registry) = registry {
        app = app.merge(registry);
    }
    let app = if access_log { app.layer(trace) } else { app };
    tracing::info!(address = %listener.local_addr()?, "imagegate-server listening");
    imagegate::serve::serve(listener, app, args.connections, async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests and jobs in flight");
        let _ = stop_tx.send(true);
    })
    .await?;
    let _ = stop_rx.wait_for(|s| *s).await;
    if let Some(worker) = worker {
        // The runner gives running jobs a grace period, then leaves them to the next worker.
        let _ = worker.await;
    }
    tracing::info!("stopped");
    Ok(())
}
