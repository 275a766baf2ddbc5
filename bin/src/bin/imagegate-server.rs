//! `imagegate-server`: every API profile over one database.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use clap::Parser;
use imagegate::{LogFormat, database_url, init_logging, redact_url};
use tower_http::trace::TraceLayer;

#[derive(Debug, Parser)]
#[command(name = "imagegate-server", version, about = "Serves imagegate's APIs over one database.")]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "IMAGEGATE_LISTEN", default_value = "127.0.0.1:5375")]
    listen: SocketAddr,
    /// Directory for the embedded database and keys.
    #[arg(long, env = "IMAGEGATE_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Database URL: `postgres://…` for PostgreSQL; default SQLite in the data directory.
    #[arg(long, env = "IMAGEGATE_DATABASE_URL")]
    database_url: Option<String>,
    /// Log format.
    #[arg(long, env = "IMAGEGATE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Password of the `admin` account created on first start; generated and printed once when unset.
    #[arg(long = "admin-password", env = "IMAGEGATE_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
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

    if let Some(password) = api_http::auth::ensure_admin(&store, args.admin_password).await? {
        // Shown once, on the terminal that started the server; it is stored only as a hash.
        eprintln!(
            "\n  Created the `admin` account with password: {password}\n  (set IMAGEGATE_ADMIN_PASSWORD to choose it)\n"
        );
    }

    let app = api_http::router(api_http::AppState::new(Arc::new(store)))
        .layer(TraceLayer::new_for_http().make_span_with(
        |req: &axum::http::Request<_>| tracing::info_span!("request", method = %req.method(), path = %req.uri().path()),
    ));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "imagegate-server listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
    // In-flight requests get this long before the process exits anyway.
    tokio::spawn(async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        std::process::exit(0);
    });
}
