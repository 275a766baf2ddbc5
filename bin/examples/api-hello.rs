//! An axum hello-world: the baseline `cargo xtask bench api` measures imagegate's routes against, on the
//! same machine in the same run.
//!
//! `api-hello [ADDRESS]` listens on ADDRESS (default `127.0.0.1:0`), prints the address it listens on,
//! and answers `GET /` with `Hello, World!` until it is killed.

use axum::{Router, routing::get};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&address).await?;
    println!("listening on {}", listener.local_addr()?);
    let app = Router::new().route("/", get(|| async { "Hello, World!" }));
    axum::serve(listener, app).await
}
