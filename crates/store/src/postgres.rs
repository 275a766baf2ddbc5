//! PostgreSQL: a pool of diesel-async `AsyncPgConnection`s.
//!
//! Transactions run at READ COMMITTED; rules that span rows lock the parent row first
//! (`SELECT … FOR UPDATE` on the image for tag changes, on the request for decisions), so concurrent
//! transactions on the same image or request take turns.
//! Import operations lock the import, then its job; a claim locks the job it takes with
//! `FOR UPDATE SKIP LOCKED`, so concurrent claims take different jobs without waiting on each other.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use diesel::prelude::*;
use diesel_async::{
    RunQueryDsl,
    async_connection_wrapper::AsyncConnectionWrapper,
    pooled_connection::{AsyncDieselConnectionManager, deadpool::Pool},
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use image_core::Error;

use crate::{
    conn::{Dialect, PgConn},
    models::{ImageRow, ImportRow, JobRow, Micros, RegistrySecretRow, RepositoryRow, RequestRow},
    schema::{image_approval_requests, images, imports, jobs, registry_secrets, repositories},
};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

const POOL_SIZE: usize = 10;

/// The PostgreSQL side of a `DbStore`.
pub(crate) struct PgDb {
    pub(crate) pool: Pool<PgConn>,
    /// For connections outside the pool (the job channel's listener).
    pub(crate) url: String,
}

impl PgDb {
    pub(crate) async fn open(url: &str) -> Result<PgDb, Error> {
        migrate(url.to_owned()).await?;
        let pool = Pool::builder(AsyncDieselConnectionManager::<PgConn>::new(url))
            .max_size(POOL_SIZE)
            .runtime(deadpool::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(30)))
            .recycle_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(Error::storage)?;
        Ok(PgDb { pool, url: url.to_owned() })
    }
}

/// Runs the pending migrations in one transaction, under an advisory lock on the schema, so servers and
/// workers starting at once apply each migration once. Runs on a blocking thread with diesel's
/// synchronous migration harness, so it works on any tokio runtime.
async fn migrate(url: String) -> Result<(), Error> {
    let run = move || -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut conn = AsyncConnectionWrapper::<PgConn>::establish(&url)?;
        let applied = conn.transaction(|conn| {
            let lock = diesel::sql_query(
                "SELECT pg_advisory_xact_lock(hashtext('imagegate.migrations.' || current_schema()))",
            );
            diesel::RunQueryDsl::execute(lock, conn)?;
            conn.run_pending_migrations(MIGRATIONS)
                .map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
        })?;
        crate::log_migrations("postgres", &applied);
        Ok(())
    };
    tokio::task::spawn_blocking(run).await.map_err(Error::storage)?.map_err(|e| {
        tracing::error!(error = %e, "PostgreSQL migrations failed");
        Error::Storage(e)
    })
}

/// The channel on which jobs are announced: one per schema, so that deployments (and tests) sharing a
/// database in different schemas do not wake each other; a hash keeps it within PostgreSQL's 63 bytes.
const JOB_CHANNEL: &str = "'imagegate_jobs_' || md5(coalesce(current_schema(), ''))";

/// The channel on which every committed change is announced, by the statement trigger
/// `imagegate_data_changed` on every table (named after the table's schema, which is the writer's
/// `current_schema()`).
const CHANGE_CHANNEL: &str = "'imagegate_changes_' || md5(coalesce(current_schema(), ''))";

/// A new connection that listens on the channel `channel` (SQL that names it) evaluates to.
async fn listen(url: &str, channel: &str) -> Result<PgConn, Box<dyn std::error::Error + Send + Sync>> {
    #[derive(QueryableByName)]
    struct Channel {
        #[diesel(sql_type = diesel::sql_types::Text)]
        channel: String,
    }
    let mut conn = <PgConn as diesel_async::AsyncConnection>::establish(url).await?;
    let Channel { channel } = diesel::sql_query(format!("SELECT {channel} AS channel")).get_result(&mut conn).await?;
    // The channel is hex behind a fixed prefix: nothing to quote.
    diesel::sql_query(format!("LISTEN \"{channel}\"")).execute(&mut conn).await?;
    Ok(conn)
}

/// What a listening task does as its connection comes and goes, and as notifications arrive.
trait Listener: Send {
    /// The connection listens (again): what was announced meanwhile is lost.
    fn listening(&mut self);
    fn notified(&mut self);
    /// The connection is lost, or cannot be made: notifications are missed until [`Listener::listening`].
    fn lost(&mut self);
}

/// Listens on `channel` until the task is aborted, telling `listener`. A lost connection is re-established
/// with a growing pause.
async fn keep_listening(url: String, channel: &str, what: &str, mut listener: impl Listener) {
    use futures::StreamExt as _;
    let mut pause = Duration::from_secs(1);
    loop {
        match listen(&url, channel).await {
            Ok(mut conn) => {
                tracing::debug!("listening for {what}");
                pause = Duration::from_secs(1);
                listener.listening();
                loop {
                    let next = {
                        let mut notifications = std::pin::pin!(conn.notifications_stream());
                        tokio::time::timeout(crate::changes::CHECK_EVERY, notifications.next()).await
                    };
                    let lost = match next {
                        Ok(Some(Ok(_))) => {
                            listener.notified();
                            continue;
                        }
                        Ok(Some(Err(e))) => e.to_string(),
                        Ok(None) => "the notification stream ended".to_owned(),
                        Err(_) => match diesel::sql_query("SELECT 1").execute(&mut conn).await {
                            Ok(_) => continue,
                            Err(e) => e.to_string(),
                        },
                    };
                    listener.lost();
                    tracing::warn!(error = %lost, "lost the connection that listens for {what}");
                    break;
                }
            }
            Err(e) => {
                listener.lost();
                tracing::warn!(error = %e, retry_in = ?pause, "cannot listen for {what}");
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(60));
    }
}

/// Calls `on_queued` whenever a job is queued in this database's schema, and once after each (re)connection
/// (jobs may have been queued meanwhile), until the task is aborted; the workers' polling covers the gaps.
pub(crate) async fn watch_job_queue(url: String, on_queued: impl Fn() + Send + 'static) {
    struct Jobs<F>(F);
    impl<F: Fn() + Send> Listener for Jobs<F> {
        fn listening(&mut self) {
            (self.0)();
        }
        fn notified(&mut self) {
            (self.0)();
        }
        fn lost(&mut self) {}
    }
    keep_listening(url, JOB_CHANNEL, "queued jobs", Jobs(on_queued)).await;
}

/// Calls `on_change` for every change committed in this database's schema, and once each time it listens
/// (again); `listening` says whether it listens now (see `crate::changes`). Runs until aborted.
pub(crate) async fn watch_changes(url: String, listening: Arc<AtomicBool>, on_change: impl Fn() + Send + 'static) {
    struct Changes<F> {
        on_change: F,
        listening: Arc<AtomicBool>,
    }
    impl<F: Fn() + Send> Listener for Changes<F> {
        fn listening(&mut self) {
            // Raised before it counts as listening: what a cache kept before the gap is never taken as current.
            (self.on_change)();
            self.listening.store(true, Ordering::SeqCst);
        }
        fn notified(&mut self) {
            (self.on_change)();
        }
        fn lost(&mut self) {
            self.listening.store(false, Ordering::SeqCst);
        }
    }
    keep_listening(url, CHANGE_CHANNEL, "changes by other processes", Changes { on_change, listening }).await;
}

#[async_trait]
impl Dialect for PgConn {
    async fn lock_image(&mut self, id: i64) -> QueryResult<Option<ImageRow>> {
        images::table.find(id).select(ImageRow::as_select()).for_update().first(self).await.optional()
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
            .for_update()
            .first(self)
            .await
            .optional()
    }

    async fn lock_request(&mut self, id: i64) -> QueryResult<Option<RequestRow>> {
        image_approval_requests::table
            .find(id)
            .select(RequestRow::as_select())
            .for_update()
            .first(self)
            .await
            .optional()
    }

    async fn lock_import(&mut self, id: i64) -> QueryResult<Option<ImportRow>> {
        imports::table.find(id).select(ImportRow::as_select()).for_update().first(self).await.optional()
    }

    /// The job, if `worker` holds its lease.
    async fn lock_held_job(&mut self, id: i64, worker: &str) -> QueryResult<Option<JobRow>> {
        jobs::table
            .find(id)
            .filter(jobs::lease_owner.eq(worker))
            .select(JobRow::as_select())
            .for_update()
            .first(self)
            .await
            .optional()
    }

    /// The id of the job a claim should take: due (queued and `run_at` passed, or leased with the lease
    /// ended), of one of `job_types`, highest priority first, then oldest. The row stays locked until the
    /// transaction ends; rows other transactions hold are skipped, so concurrent claims take different jobs.
    async fn lock_next_due_job(&mut self, job_types: &[String], now: Micros) -> QueryResult<Option<i64>> {
        let queued_and_due = jobs::lease_owner.is_null().and(jobs::run_at.le(now));
        let lease_ended = jobs::lease_owner.is_not_null().and(jobs::lease_until.lt(now));
        jobs::table
            .filter(jobs::job_type.eq_any(job_types))
            .filter(queued_and_due.or(lease_ended))
            .order((jobs::priority.desc(), jobs::id.asc()))
            .select(jobs::id)
            .for_update()
            .skip_locked()
            .first(self)
            .await
            .optional()
    }

    /// Tells the workers listening on this schema's channel (`DbStore::watch_job_queue`) that a job is due;
    /// PostgreSQL delivers it when the transaction commits, and not at all when it rolls back.
    async fn notify_job_queued(&mut self) -> QueryResult<()> {
        diesel::sql_query(format!("SELECT pg_notify({JOB_CHANNEL}, '')")).execute(self).await.map(drop)
    }

    async fn lock_registry_secret(&mut self, namespace: &str, name: &str) -> QueryResult<Option<RegistrySecretRow>> {
        registry_secrets::table
            .filter(registry_secrets::namespace.eq(namespace))
            .filter(registry_secrets::name.eq(name))
            .select(RegistrySecretRow::as_select())
            .for_update()
            .first(self)
            .await
            .optional()
    }

    /// The registry secret's domain, the secret kept from being deleted (`FOR KEY SHARE`, as a foreign key check
    /// takes) until the transaction ends; updates of its other columns, such as a verification, go on.
    async fn share_registry_secret(&mut self, namespace: &str, name: &str) -> QueryResult<Option<String>> {
        registry_secrets::table
            .filter(registry_secrets::namespace.eq(namespace))
            .filter(registry_secrets::name.eq(name))
            .select(registry_secrets::domain)
            .for_key_share()
            .first(self)
            .await
            .optional()
    }

    async fn lock_repository(&mut self, namespace: &str, name: &str) -> QueryResult<Option<RepositoryRow>> {
        repositories::table
            .filter(repositories::namespace.eq(namespace))
            .filter(repositories::name.eq(name))
            .select(RepositoryRow::as_select())
            .for_update()
            .first(self)
            .await
            .optional()
    }

    /// The repositories whose sync is due at `now` and that have no job, or a job_id whose job is gone, in the
    /// order they fell due, locked until the transaction ends. Rows other schedulers hold are skipped, so
    /// concurrent schedulers take different repositories; the caller checks the job again once it holds the
    /// rows, since this statement's view of `jobs` may predate a scheduler that just committed.
    async fn lock_due_repositories(&mut self, now: Micros) -> QueryResult<Vec<RepositoryRow>> {
        let job_exists = diesel::dsl::exists(jobs::table.filter(jobs::id.nullable().eq(repositories::job_id)));
        repositories::table
            .filter(repositories::next_sync_at.le(now))
            .filter(repositories::job_id.is_null().or(diesel::dsl::not(job_exists)))
            .order((repositories::next_sync_at.asc(), repositories::id.asc()))
            .select(RepositoryRow::as_select())
            .for_update()
            .skip_locked()
            .load(self)
            .await
    }
}
