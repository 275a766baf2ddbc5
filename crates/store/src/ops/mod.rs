//! The store's operations, one module per concern, each compiled once, on a [`Conn`] of either backend.
//!
//! | module | what |
//! |---|---|
//! | `events` | audit events: recording them, listing them |
//! | `catalog` | images and tags |
//! | `approvals` | approval requests and their decisions |
//! | `queue` | the job queue: enqueue, claim, lease, retry, complete |
//! | `imports` | imports and their jobs, and what a finished import adds to the catalog |
//! | `exports` | export records |
//! | `users` | users and API tokens |
//! | `kube` | registry secrets, repositories and their scheduled syncs |
//! | `sessions` | sign-in sessions, by the hash of their id |
//! | `station` | the station profile's registries: registry secrets with the station's fields |
//! | `nodes` | the node inventory: each node's last report and its inventory jobs |
//! | `observe` | what the metrics read: queue depth per job type, imports per state |
//! | `robots` | the built-in registry's robot accounts, by the hash of their secret |
//! | `retention` | pruning finished imports and old audit events in batches |
//! | `scans` | the scheduled refresh of pending vulnerability scans |
//! | `search` | the search index's part of a catalog search, per backend |
//! | `registry` | the built-in registry's blobs, manifests, tags and uploads |
//!
//! Queries run through `conn::RunQueryDsl`, which accepts only queries both backends can run; the steps
//! whose SQL differs (the row-locking reads, the job channel) go through `conn.dialect()` (`conn::Dialect`).
//!
//! Functions that change something expect to run inside a write transaction, which `DbStore` opens;
//! they write their audit events on the same connection, so both commit or neither does.

pub(crate) mod approvals;
pub(crate) mod catalog;
pub(crate) mod events;
pub(crate) mod exports;
pub(crate) mod imports;
pub(crate) mod kube;
pub(crate) mod nodes;
pub(crate) mod observe;
pub(crate) mod queue;
pub(crate) mod registry;
pub(crate) mod retention;
pub(crate) mod robots;
pub(crate) mod scans;
pub(crate) mod search;
pub(crate) mod sessions;
pub(crate) mod station;
pub(crate) mod users;

use diesel::{
    expression::SqlLiteral,
    sql_types::{BigInt, Nullable, Text},
};
use image_core::Error;

use crate::{
    conn::{Conn, RunQueryDsl},
    error::{DbError, DbResult},
};

diesel::define_sql_function! {
    /// SQL `lower`, the same function on both backends, so case-insensitive search behaves the same.
    fn lower(x: Text) -> Text;
}

diesel::define_sql_function! {
    #[sql_name = "lower"]
    fn lower_nullable(x: Nullable<Text>) -> Nullable<Text>;
}

/// `CAST(SUM(column) AS BIGINT)`, `NULL` over no rows: a sum of counts typed alike on both backends
/// (PostgreSQL's `sum` of a `BIGINT` is a `NUMERIC`).
fn sum_counts(column: &str) -> SqlLiteral<Nullable<BigInt>> {
    diesel::dsl::sql(&format!("CAST(SUM({column}) AS BIGINT)"))
}

pub(crate) async fn ping(conn: &mut Conn<'_>) -> DbResult<()> {
    diesel::sql_query("SELECT 1").execute(conn).await?;
    Ok(())
}

/// `%`, `_` and the escape character itself match literally.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn to_json<T: serde::Serialize>(value: &T) -> DbResult<String> {
    serde_json::to_string(value).map_err(|e| DbError::Domain(Error::storage(e)))
}
