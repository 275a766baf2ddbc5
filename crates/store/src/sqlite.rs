//! SQLite: one file (or memory), many readers, one writer.
//!
//! Connections are diesel's synchronous `SqliteConnection`, run on tokio's blocking pool by diesel-async's
//! `SyncConnectionWrapper`, in a deadpool pool. Every connection runs in WAL mode with foreign keys on
//! and waits up to 5 s for a lock held by another process.
//!
//! Writes go one at a time: each holds the store's `writer` mutex and runs as `BEGIN IMMEDIATE`, so a
//! transaction never has to upgrade a read lock to a write lock (which SQLite refuses with `SQLITE_BUSY`
//! instead of waiting), and reading a row inside a write transaction is as good as locking it.

use std::{
    path::{Path, PathBuf},
    sync::{
        Mutex as StdMutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use diesel::{prelude::*, sqlite::SqliteConnection};
use diesel_async::{
    AsyncConnection, RunQueryDsl, SimpleAsyncConnection,
    pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod, deadpool::Pool},
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use image_core::Error;

use crate::{
    conn::{Dialect, SqliteConn},
    models::{ImageRow, ImportRow, JobRow, Micros, RegistrySecretRow, RepositoryRow, RequestRow},
    schema::{image_approval_requests, images, imports, jobs, registry_secrets, repositories},
};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// Run on every connection before it is used.
const PRAGMAS: &str =
    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

/// Readers of a database file; WAL lets them run beside the one writer.
const FILE_POOL_SIZE: usize = 8;

/// Where the database lives, from a `sqlite:` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    File(PathBuf),
    Memory,
}

impl Location {
    /// `sqlite://PATH`, `sqlite:PATH` or `sqlite::memory:`; `None` when the URL is not a `sqlite:` one.
    pub(crate) fn parse(url: &str) -> Option<Result<Location, Error>> {
        let rest = url.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        Some(match rest {
            ":memory:" => Ok(Location::Memory),
            "" => Err(Error::invalid("database_url", "a sqlite: URL needs a file path, or :memory:")),
            path => Ok(Location::File(PathBuf::from(path))),
        })
    }
}

/// The SQLite side of a `DbStore`.
pub(crate) struct SqliteDb {
    pub(crate) pool: Pool<SqliteConn>,
    /// Held by every write transaction, for the whole transaction.
    pub(crate) writer: tokio::sync::Mutex<()>,
    /// The file's URL, for the connection that watches it for changes (see `crate::changes`); none in memory.
    pub(crate) watch_url: Option<String>,
    /// An idle connection that keeps an in-memory database alive while pool connections come and go.
    _keeper: Option<StdMutex<SqliteConnection>>,
}

impl SqliteDb {
    pub(crate) async fn open(location: Location) -> Result<SqliteDb, Error> {
        let (url, pool_size) = match &location {
            Location::File(path) => (file_url(path)?, FILE_POOL_SIZE),
            // A shared cache makes every connection to this name see the same database; one pool
            // connection is enough, and avoids the shared cache's table locks.
            Location::Memory => {
                static NEXT: AtomicU64 = AtomicU64::new(0);
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                (format!("file:imagegate-{}-{n}?mode=memory&cache=shared", std::process::id()), 1)
            }
        };
        let keeper = migrate(url.clone()).await?;
        let watch_url = matches!(location, Location::File(_)).then(|| url.clone());
        let keeper = matches!(location, Location::Memory).then(|| StdMutex::new(keeper));

        let mut config = ManagerConfig::default();
        config.recycling_method = RecyclingMethod::Fast;
        config.custom_setup = Box::new(|url| {
            Box::pin(async move {
                let mut conn = SqliteConn::establish(url).await?;
                conn.batch_execute(PRAGMAS).await.map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(conn)
            })
        });
        let pool = Pool::builder(AsyncDieselConnectionManager::new_with_config(url, config))
            .max_size(pool_size)
            .runtime(deadpool::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(Error::storage)?;
        Ok(SqliteDb { pool, writer: tokio::sync::Mutex::new(()), watch_url, _keeper: keeper })
    }
}

/// The path as SQLite opens it, after creating its directory.
fn file_url(path: &Path) -> Result<String, Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::storage(format!("cannot create the directory {}: {e}", dir.display())))?;
    }
    let url =
        path.to_str().ok_or_else(|| Error::invalid("database_url", "the SQLite path must be valid UTF-8"))?.to_owned();
    if url.starts_with("file:") {
        // SQLite would read it as a URI, with its own parameters.
        return Err(Error::invalid("database_url", "write the SQLite path without `file:`"));
    }
    Ok(url)
}

/// Creates the database if needed and runs the pending migrations, all in one immediate transaction, so
/// two processes starting at once apply each migration once. Returns the connection it used.
async fn migrate(url: String) -> Result<SqliteConnection, Error> {
    let run = move || -> Result<SqliteConnection, Box<dyn std::error::Error + Send + Sync>> {
        let mut conn = SqliteConnection::establish(&url)?;
        diesel::connection::SimpleConnection::batch_execute(&mut conn, PRAGMAS)?;
        let applied = conn.immediate_transaction(|conn| {
            conn.run_pending_migrations(MIGRATIONS)
                .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
        })?;
        crate::log_migrations("sqlite", &applied);
        Ok(conn)
    };
    tokio::task::spawn_blocking(run).await.map_err(Error::storage)?.map_err(|e| {
        tracing::error!(error = %e, "SQLite migrations failed");
        Error::Storage(e)
    })
}

/// Write transactions are immediate and serialised by `SqliteDb::writer`, so a plain read locks.
#[async_trait]
impl Dialect for SqliteConn {
    async fn lock_image(&mut self, id: i64) -> QueryResult<Option<ImageRow>> {
        images::table.find(id).select(ImageRow::as_select()).first(self).await.optional()
    }

    async fn lock_image_named(
        &mut self,
        registry: &str,
        namespace: &str,
        image_name: &str,
    ) -> QueryResult<Option<ImageRow>> {
        images::table
            .filter(images::registry.eq(registry))
            .filter(images::namespace.eq(namespace))
            .filter(images::image_name.eq(image_name))
            .select(ImageRow::as_select())
            .first(self)
            .await
            .optional()
    }

    async fn lock_request(&mut self, id: i64) -> QueryResult<Option<RequestRow>> {
        image_approval_requests::table.find(id).select(RequestRow::as_select()).first(self).await.optional()
    }

    async fn lock_import(&mut self, id: i64) -> QueryResult<Option<ImportRow>> {
        imports::table.find(id).select(ImportRow::as_select()).first(self).await.optional()
    }

    /// The job, if `worker` holds its lease.
    async fn lock_held_job(&mut self, id: i64, worker: &str) -> QueryResult<Option<JobRow>> {
        jobs::table
            .find(id)
            .filter(jobs::lease_owner.eq(worker))
            .select(JobRow::as_select())
            .first(self)
            .await
            .optional()
    }

    /// The id of the job a claim should take: due (queued and `run_at` passed, or leased with the lease
    /// ended), of one of `job_types`, highest priority first, then oldest. The writer lock keeps every other
    /// claim out until this transaction ends.
    async fn lock_next_due_job(&mut self, job_types: &[String], now: Micros) -> QueryResult<Option<i64>> {
        let queued_and_due = jobs::lease_owner.is_null().and(jobs::run_at.le(now));
        let lease_ended = jobs::lease_owner.is_not_null().and(jobs::lease_until.lt(now));
        jobs::table
            .filter(jobs::job_type.eq_any(job_types))
            .filter(queued_and_due.or(lease_ended))
            .order((jobs::priority.desc(), jobs::id.asc()))
            .select(jobs::id)
            .first(self)
            .await
            .optional()
    }

    /// Tells listening workers that a job is due: nothing on SQLite, whose workers share one machine and poll
    /// (the server wakes its embedded worker itself).
    async fn notify_job_queued(&mut self) -> QueryResult<()> {
        Ok(())
    }

    async fn lock_registry_secret(&mut self, namespace: &str, name: &str) -> QueryResult<Option<RegistrySecretRow>> {
        registry_secrets::table
            .filter(registry_secrets::namespace.eq(namespace))
            .filter(registry_secrets::name.eq(name))
            .select(RegistrySecretRow::as_select())
            .first(self)
            .await
            .optional()
    }

    /// The registry secret's domain, the secret kept from being deleted until the transaction ends; the writer
    /// lock does that here.
    async fn share_registry_secret(&mut self, namespace: &str, name: &str) -> QueryResult<Option<String>> {
        registry_secrets::table
            .filter(registry_secrets::namespace.eq(namespace))
            .filter(registry_secrets::name.eq(name))
            .select(registry_secrets::domain)
            .first(self)
            .await
            .optional()
    }

    async fn lock_repository(&mut self, namespace: &str, name: &str) -> QueryResult<Option<RepositoryRow>> {
        repositories::table
            .filter(repositories::namespace.eq(namespace))
            .filter(repositories::name.eq(name))
            .select(RepositoryRow::as_select())
            .first(self)
            .await
            .optional()
    }

    /// The repositories whose sync is due at `now` and that have no job, or a job_id whose job is gone, in the
    /// order they fell due. The writer lock keeps every other scheduler out until this transaction ends.
    async fn lock_due_repositories(&mut self, now: Micros) -> QueryResult<Vec<RepositoryRow>> {
        let job_exists = diesel::dsl::exists(jobs::table.filter(jobs::id.nullable().eq(repositories::job_id)));
        repositories::table
            .filter(repositories::next_sync_at.le(now))
            .filter(repositories::job_id.is_null().or(diesel::dsl::not(job_exists)))
            .order((repositories::next_sync_at.asc(), repositories::id.asc()))
            .select(RepositoryRow::as_select())
            .load(self)
            .await
    }
}
