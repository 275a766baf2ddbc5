//! A fresh PostgreSQL schema per test.

use anyhow::Context as _;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

/// The environment variable that holds the test database's URL.
pub const DATABASE_URL_VAR: &str = "IMAGEGATE_TEST_DATABASE_URL";

/// A schema of its own in the test database, created by [`PgSchema::create`].
///
/// Every connection made with [`url`](Self::url) has `search_path` set to the schema, so
/// the tables a test creates (its migrations included) land there and nowhere else. The
/// schema is left behind: the cluster is thrown away after the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgSchema {
    /// The database URL plus `options=-csearch_path%3D<schema>`.
    pub url: String,
    /// `t_` and 16 random hex digits.
    pub schema: String,
    /// The database URL as given in `IMAGEGATE_TEST_DATABASE_URL`.
    pub base_url: String,
}

impl PgSchema {
    /// Creates a fresh schema in the database `IMAGEGATE_TEST_DATABASE_URL` points at.
    ///
    /// # Panics
    ///
    /// When the variable is unset or the database cannot be reached.
    pub async fn create() -> Self {
        let base_url = database_url();
        match Self::create_in(&base_url).await {
            Ok(schema) => schema,
            Err(e) => panic!(
                "test-support: cannot create a test schema in {base_url} \
                 (from {DATABASE_URL_VAR}): {e:#}"
            ),
        }
    }

    /// Creates a fresh schema in the database at `base_url`.
    pub async fn create_in(base_url: &str) -> anyhow::Result<Self> {
        let schema = format!("t_{:016x}", rand::random::<u64>());
        let mut conn = AsyncPgConnection::establish(base_url).await.context("connecting")?;
        conn.batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .with_context(|| format!("CREATE SCHEMA {schema}"))?;
        Ok(Self { url: with_search_path(base_url, &schema), schema, base_url: base_url.to_owned() })
    }
}

/// A URL for a fresh schema of its own in the test database: shorthand for
/// `PgSchema::create().await.url`.
///
/// # Panics
///
/// See [`PgSchema::create`].
pub async fn postgres_url() -> String {
    PgSchema::create().await.url
}

/// The value of `IMAGEGATE_TEST_DATABASE_URL`.
///
/// # Panics
///
/// When it is unset, saying how to get it set.
pub fn database_url() -> String {
    match std::env::var(DATABASE_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{DATABASE_URL_VAR} is not set: it is set by `cargo xtask test`; or run \
             `cargo xtask pg` in another shell and export the URL it prints, then rerun \
             `cargo test`"
        ),
    }
}

/// `base_url` with the query parameter `options=-csearch_path%3D<schema>` appended
/// (after `&` when it already has a query).
pub fn with_search_path(base_url: &str, schema: &str) -> String {
    let sep = match base_url.rfind('?') {
        None => "?",
        Some(i) if i + 1 == base_url.len() || base_url.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{base_url}{sep}options=-csearch_path%3D{schema}")
}

#[cfg(test)]
mod tests {
    use super::with_search_path;

    #[test]
    fn search_path_is_appended_as_a_query_parameter() {
        assert_eq!(with_search_path("postgres://u@h:1/db", "t_1"), "postgres://u@h:1/db?options=-csearch_path%3Dt_1");
        assert_eq!(
            with_search_path("postgres://u@h:1/db?sslmode=disable", "t_1"),
            "postgres://u@h:1/db?sslmode=disable&options=-csearch_path%3Dt_1"
        );
        assert_eq!(with_search_path("postgres://u@h:1/db?", "t_1"), "postgres://u@h:1/db?options=-csearch_path%3Dt_1");
    }
}
