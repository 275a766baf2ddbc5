//! Serving HTTP/1.1 with limits that keep slow, idle or too many clients from holding the server.
//!
//! `axum::serve` has no header-read timeout, so a client that opens a connection and sends nothing, or
//! sends its headers a byte a minute, holds a connection for ever. Here every connection gets hyper's
//! header-read timeout, which also runs while a keep-alive connection waits for its next request (so it
//! is the idle timeout too), and the number of open connections is capped: beyond the cap, new
//! connections wait in the kernel's accept queue until one closes.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore};
use tower::ServiceExt as _;

/// How long and how many connections the server keeps.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ConnectionLimits {
    /// Seconds a client has to send a request's headers, and that an idle keep-alive connection stays open.
    #[arg(long, env = "IMAGEGATE_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Connections open at once; more wait until one closes.
    #[arg(long, env = "IMAGEGATE_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds that shutting down waits for requests in flight before closing their connections.
    #[arg(long, env = "IMAGEGATE_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
    /// Requests handled at once (the probes and /metrics aside); more are answered 503 with Retry-After.
    #[arg(long, env = "IMAGEGATE_MAX_CONCURRENT_REQUESTS", default_value_t = api_http::limits::DEFAULT_MAX_CONCURRENT_REQUESTS)]
    pub max_concurrent_requests: usize,
    /// Seconds a client has to send a request's whole body.
    #[arg(long, env = "IMAGEGATE_BODY_TIMEOUT_SECS", default_value_t = 10)]
    pub body_timeout_secs: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout_secs: 10,
            max_connections: 1024,
            shutdown_grace_secs: 30,
            max_concurrent_requests: api_http::limits::DEFAULT_MAX_CONCURRENT_REQUESTS,
            body_timeout_secs: 10,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in flight finish (for at most
/// the grace period). Each request carries the client's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_timeout_secs.max(1)))
        .max_headers(200);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, or a connection reset before it was accepted: wait a moment.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(client));
            app.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, %client, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    let grace = Duration::from_secs(limits.shutdown_grace_secs);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(seconds = limits.shutdown_grace_secs, "requests still running after the grace period: closing");
    }
    Ok(())
}
