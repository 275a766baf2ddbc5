//! Helpers for imagegate's integration tests (a dev-dependency only).
//!
//! * [`PgSchema`] / [`postgres_url`]: a fresh PostgreSQL schema per call in the database
//!   that `cargo xtask test` (or `cargo xtask pg`) started, and a URL whose connections
//!   all land in it — migrations included.
//! * [`Distribution`]: a real CNCF Distribution registry (`docker-registry`) on a free
//!   port on 127.0.0.1 (or another loopback address), with or without basic auth, killed and cleaned up on drop.
//!
//! * [`images`]: random test images (single-platform manifests and multi-platform indexes)
//!   pushed into such a registry with plain HTTP calls, independent of imagegate's own client.
//! * [`harbor`]: a stand-in Harbor (REST API v2.0 subset, simulated scanner) in front of such a registry.
//! * [`proxy`]: a reverse proxy in front of such a registry that injects faults (503, 429 with
//!   `Retry-After`), throttles blob downloads, corrupts a blob, and records every request.
//! * [`docker_hub`]: a stand-in for Docker Hub's repository search (`/v1/search?q=…`), answering as
//!   Docker Hub documents it and counting the searches it answered.
//!
//! * [`containerd`]: a real containerd with its CRI plugin in a temporary directory, and OCI image archives
//!   of random images to import into it; tests skip where containerd cannot run.
//!
//! Both read their configuration from the environment that `cargo xtask test` sets:
//! `IMAGEGATE_TEST_DATABASE_URL` and `IMAGEGATE_TEST_REGISTRY_BIN`.
//!
//! ```no_run
//! # async fn example() {
//! let db_url = test_support::postgres_url().await; // postgres://…?options=-csearch_path%3Dt_…
//! let registry = test_support::Distribution::start().await;
//! let v2 = format!("{}/v2/", registry.url()); // http://127.0.0.1:PORT/v2/
//! # let _ = (db_url, v2);
//! # }
//! ```

pub mod containerd;
pub mod docker_hub;
pub mod harbor;
pub mod images;
mod pg;
pub mod proxy;
mod registry;

pub use pg::{DATABASE_URL_VAR, PgSchema, database_url, postgres_url, with_search_path};
pub use registry::{Distribution, REGISTRY_BIN_VAR};
