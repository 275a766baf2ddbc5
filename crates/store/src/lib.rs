#![doc = include_str!("../README.md")]

mod changes;
mod conn;
mod crypto;
mod error;
mod models;
mod ops;
mod postgres;
mod schema;
mod sqlite;

use std::{fmt, future::Future, sync::Arc, time::Duration};

use async_trait::async_trait;
use image_core::{
    Error, Result, Timestamp,
    auth::{ApiToken, Credentials, NewUser, TokenId, User, UserId, UserUpdate},
    catalog::{
        ApprovalRequest, ApprovalRequestFilter, ApprovalRequestId, CatalogImage, Decision, ImageFilter, ImageId,
        ImageSummary, ImageUpdate, NewApprovalRequest, NewImage, NewTag, Page, Tag, TagId, TagUpdate,
    },
    event::{AuditEvent, EventFilter},
    import::{
        Artifact, AttemptOutcome, EnqueueOutcome, ExportId, ExportPhase, ExportRecord, ImportFilter, ImportId,
        ImportJob, LayerProgress, NewImport,
    },
    kube::{
        NewRegistrySecret, NewRepository, RegistrySecret, Repository, RepositoryId, SyncStatus, SyncedManifest,
        VerifyStatus,
    },
    station::{
        DownloadDetails, Session, SessionStore, StationFields, StationRegistry, StationRegistryUpdate, StationStore,
    },
    store::{
        CatalogStore, ClaimedJob, HealthCheck, ImportStore, InventoryStore, JobId, JobQueue, KubeStore, Listing,
        UserStore,
    },
};

pub use crate::crypto::{KEY_LEN, SecretKey};
use crate::{
    conn::{Conn, PgConn, SqliteConn},
    crypto::Sealer,
    error::DbResult,
    models::{Micros, now_micros, to_micros},
    postgres::PgDb,
    sqlite::{Location, SqliteDb},
};

/// The catalog's storage on SQLite or PostgreSQL, chosen by the URL given to [`DbStore::connect`].
///
/// Cloning is cheap: clones share the connection pool.
#[derive(Clone)]
pub struct DbStore {
    backend: Arc<Backend>,
    /// The data version (see [`changes`]).
    changes: Arc<changes::Changes>,
    /// The hottest reads' answers at that version, by operation and arguments.
    cache: Arc<image_core::cache::VersionedCache<(&'static str, String)>>,
    /// Seals and opens registry passwords, with the key from [`StoreOptions`], if any.
    sealer: Sealer,
}

/// How [`DbStore::connect_with`] sets a store up.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    /// The key that encrypts registry passwords at rest. Without one the store works, except that creating
    /// a registry secret fails (and reading one fails with a clear error).
    pub secret_key: Option<SecretKey>,
}

enum Backend {
    Sqlite(SqliteDb),
    Postgres(PgDb),
}

impl fmt::Debug for DbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbStore")
            .field("backend", &self.backend_name())
            .field("secret_key", &self.sealer.has_key())
            .finish_non_exhaustive()
    }
}

/// The job type of imports (`image_core::job::ImportPayload`).
pub const IMPORT_JOB_TYPE: &str = <image_core::job::ImportPayload as image_core::job::JobPayload>::NAME;

/// The audit event kinds of imports, next to the catalog's in `image_core::event::kind`.
pub mod import_kind {
    /// An import was queued; details: `import_id`, `source`, `target`.
    pub const QUEUED: &str = "image.import.queued";
    /// An import succeeded (and the catalog got its image and tag); details add `digest` and `worker`.
    pub const SUCCEEDED: &str = "image.import.succeeded";
    /// An import failed for good; details add `error` and `attempts`.
    pub const FAILED: &str = "image.import.failed";
    pub const CANCELED: &str = "image.import.canceled";
    /// An import's record was deleted; details are the record.
    pub const DELETED: &str = "image.import.deleted";
    /// An artifact pushed straight to the internal registry was recorded as a succeeded import; details:
    /// `import_id`, `source`, `target`, `digest`.
    pub const RECORDED: &str = "image.import.recorded";
}

/// The job type of repository syncs (`image_core::job::SyncPayload`); its `max_attempts` is the
/// repository's `retry_count + 1`.
pub const SYNC_JOB_TYPE: &str = <image_core::job::SyncPayload as image_core::job::JobPayload>::NAME;

/// The audit event kinds of the kube-style resources. Their details never hold a password.
pub mod kube_kind {
    /// Details: the secret's id, namespace, name, display name, description, domain, username, provider,
    /// `insecure`, and `ca_bundle` (whether it has one).
    pub const SECRET_CREATED: &str = "registry.secret.created";
    pub const SECRET_DELETED: &str = "registry.secret.deleted";
    /// Details: the repository's id, namespace, name, display name, description, repository, tag,
    /// `registry_ref` (namespace and name), `sync_interval_secs`, `sync_timeout_secs`, `retry_count`.
    pub const REPOSITORY_CREATED: &str = "repository.created";
    pub const REPOSITORY_DELETED: &str = "repository.deleted";
}

/// How long a token's `last_used_at` may lag behind its real last use; fewer writes on every request.
const TOKEN_USE_RESOLUTION: Duration = Duration::from_secs(60);

/// Runs a store operation on its own task, so that a caller that stops waiting (a dropped HTTP request)
/// cannot cut a transaction short: it commits or rolls back, and its connection goes back to the pool
/// clean. A panic in the operation resumes in the caller.
async fn detach<T, F>(operation: F) -> Result<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    match tokio::spawn(operation).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::storage(e)),
    }
}

fn pool_error(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    tracing::error!(error = %e, "no database connection");
    Error::storage(e)
}

/// A connection taken from the store's pool; it goes back when dropped.
#[expect(clippy::large_enum_variant, reason = "one lives per operation, inside the operation's task")]
enum Pooled {
    Sqlite(diesel_async::pooled_connection::deadpool::Object<SqliteConn>),
    Postgres(diesel_async::pooled_connection::deadpool::Object<PgConn>),
}

impl Pooled {
    fn conn(&mut self) -> Conn<'_> {
        match self {
            Pooled::Sqlite(conn) => Conn::Sqlite(conn),
            Pooled::Postgres(conn) => Conn::Postgres(conn),
        }
    }
}

/// Runs `$body` with `$conn` bound to a pooled connection (`&mut Conn`), on a task of its own (`detach`).
/// `$body` is a `DbResult<T>`; the macro's value is a `Result<T>`.
macro_rules! with_conn {
    ($store:expr, |$conn:ident| $body:expr) => {{
        let store: DbStore = $store.clone();
        detach(async move {
            let result: DbResult<_> = async {
                let mut pooled = store.pooled().await?;
                let $conn = &mut pooled.conn();
                $body
            }
            .await;
            result.map_err(Error::from)
        })
        .await
    }};
}

/// Like `with_conn!`, inside a write transaction. On SQLite the transaction holds the store's writer lock
/// and begins IMMEDIATE; on PostgreSQL it is an ordinary READ COMMITTED transaction whose operations lock
/// the rows they build on.
macro_rules! in_transaction {
    ($store:expr, |$conn:ident| $body:expr) => {{
        let store: DbStore = $store.clone();
        detach(async move {
            let result: DbResult<_> = async {
                let _writer = store.lock_writer().await;
                let mut pooled = store.pooled().await?;
                pooled.conn().write_transaction(async |$conn| $body).await
            }
            .await;
            store.changes.wrote();
            result.map_err(Error::from)
        })
        .await
    }};
}

/// `$load` (a `with_conn!` read) through the store's read cache (`image_core::cache`), under the
/// operation's name and its arguments' `Debug` rendering.
macro_rules! cached {
    ($store:expr, $op:literal, $args:expr, $load:expr) => {{
        let key = ($op, format!("{:?}", $args));
        $store.cache.read($store.changes.version(), key, async { $load }).await
    }};
}

impl DbStore {
    /// Opens the database, creating it (SQLite) and running the pending migrations.
    ///
    /// `postgres://…` and `postgresql://…` are PostgreSQL; `sqlite://PATH`, `sqlite:PATH` (the file and its
    /// directory are created when missing) and `sqlite::memory:` are SQLite.
    ///
    /// The store has no secret key: see [`DbStore::connect_with`].
    pub async fn connect(database_url: &str) -> Result<DbStore> {
        DbStore::connect_with(database_url, StoreOptions::default()).await
    }

    /// [`DbStore::connect`] with options: the key that encrypts registry passwords.
    pub async fn connect_with(database_url: &str, options: StoreOptions) -> Result<DbStore> {
        let (backend, changes) = if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")
        {
            tracing::info!("opening the PostgreSQL database");
            (Backend::Postgres(PgDb::open(database_url).await?), changes::Changes::postgres(database_url))
        } else if let Some(location) = sqlite::Location::parse(database_url) {
            let location = location?;
            match &location {
                Location::File(path) => tracing::info!(path = %path.display(), "opening the SQLite database"),
                Location::Memory => tracing::info!("opening an in-memory SQLite database"),
            }
            let db = SqliteDb::open(location).await?;
            let changes = match &db.watch_url {
                Some(url) => changes::Changes::sqlite(url).ok_or_else(|| {
                    Error::storage("cannot open a connection to watch the SQLite database for changes")
                })?,
                None => changes::Changes::local(),
            };
            (Backend::Sqlite(db), changes)
        } else {
            return Err(Error::invalid(
                "database_url",
                "expected postgres://…, postgresql://…, sqlite://PATH, sqlite:PATH or sqlite::memory:",
            ));
        };
        if options.secret_key.is_none() {
            tracing::info!("no secret key configured: registry secrets cannot be created or read");
        }
        Ok(DbStore {
            backend: Arc::new(backend),
            changes: Arc::new(changes),
            cache: Arc::default(),
            sealer: Sealer::new(options.secret_key.as_ref()),
        })
    }

    /// On PostgreSQL, starts a task that calls `on_queued` whenever any process queues a job that is due at
    /// once in this database (and schema), and once after each (re)connection; `None` on SQLite. The task
    /// keeps a connection of its own outside the pool, reconnects when it is lost, and runs until aborted.
    /// Workers that wake on it start jobs queued by other processes without waiting for their next poll.
    pub fn watch_job_queue(&self, on_queued: impl Fn() + Send + 'static) -> Option<tokio::task::JoinHandle<()>> {
        match &*self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(db) => Some(tokio::spawn(crate::postgres::watch_job_queue(db.url.clone(), on_queued))),
        }
    }

    async fn pooled(&self) -> Result<Pooled> {
        Ok(match &*self.backend {
            Backend::Sqlite(db) => Pooled::Sqlite(db.pool.get().await.map_err(pool_error)?),
            Backend::Postgres(db) => Pooled::Postgres(db.pool.get().await.map_err(pool_error)?),
        })
    }

    /// The writer lock that every SQLite write transaction holds throughout; none on PostgreSQL.
    async fn lock_writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &*self.backend {
            Backend::Sqlite(db) => Some(db.writer.lock().await),
            Backend::Postgres(_) => None,
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match *self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Stores the hash of a new API token that stops working at `expires_at` (never, when `None`), and
    /// forgets the user's expired tokens; [`UserStore::create_token`] is this.
    ///
    /// Fails with `NotFound` when there is no such user and with `AlreadyExists` when the hash is already
    /// stored.
    pub async fn create_token_with_expiry(
        &self,
        user_id: UserId,
        token_hash: &str,
        name: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<ApiToken> {
        let (token_hash, name) = (token_hash.to_owned(), name.to_owned());
        let expires_at = expires_at.map(to_micros);
        in_transaction!(self, |conn| ops::users::create_token(conn, user_id, &token_hash, &name, expires_at).await)
    }

    /// Queues a job of any type, due at `run_at`, for [`JobQueue::claim_job`] to hand out.
    /// Fails with `Invalid` when `max_attempts` is below 1.
    pub async fn enqueue_job(
        &self,
        job_type: &str,
        payload: &serde_json::Value,
        priority: i32,
        run_at: Timestamp,
        max_attempts: i32,
    ) -> Result<JobId> {
        let (job_type, payload, run_at) = (job_type.to_owned(), payload.clone(), to_micros(run_at));
        in_transaction!(self, |conn| ops::queue::enqueue_job(conn, &job_type, &payload, priority, run_at, max_attempts)
            .await)
    }
}

fn log_migrations(backend: &str, applied: &[String]) {
    if applied.is_empty() {
        tracing::info!(backend, "database schema is up to date");
    }
    for version in applied {
        tracing::info!(backend, migration = %version, "applied migration");
    }
}

#[async_trait]
impl CatalogStore for DbStore {
    /// Ordered by id; `tag_count` counts each image's tags.
    async fn list_images(&self, filter: &ImageFilter) -> Result<Listing<ImageSummary>> {
        let filter = filter.clone();
        cached!(self, "list_images", filter, with_conn!(self, |conn| ops::catalog::list_images(conn, &filter).await))
    }

    async fn get_image(&self, id: ImageId) -> Result<CatalogImage> {
        cached!(self, "get_image", id, with_conn!(self, |conn| ops::catalog::get_image(conn, id).await))
    }

    async fn find_image(&self, registry: &str, namespace: &str, image_name: &str) -> Result<Option<CatalogImage>> {
        let (registry, namespace, image_name) = (registry.to_owned(), namespace.to_owned(), image_name.to_owned());
        cached!(
            self,
            "find_image",
            (&registry, &namespace, &image_name),
            with_conn!(self, |conn| ops::catalog::find_image(conn, &registry, &namespace, &image_name).await)
        )
    }

    /// Fails with `NotFound` when there is no such image.
    async fn list_tags(&self, image_id: ImageId) -> Result<Vec<Tag>> {
        cached!(self, "list_tags", image_id, with_conn!(self, |conn| ops::catalog::list_tags(conn, image_id).await))
    }

    async fn categories(&self) -> Result<Vec<(String, i64)>> {
        cached!(self, "categories", (), with_conn!(self, |conn| ops::catalog::categories(conn).await))
    }

    async fn create_image(&self, image: NewImage, actor: &str) -> Result<CatalogImage> {
        let actor = actor.to_owned();
        in_transaction!(self, |conn| ops::catalog::create_image(conn, &image, &actor).await)
    }

    /// An update that changes nothing returns the image as it is and records no event.
    async fn update_image(&self, id: ImageId, update: ImageUpdate, actor: &str) -> Result<CatalogImage> {
        let actor = actor.to_owned();
        in_transaction!(self, |conn| ops::catalog::update_image(conn, id, &update, &actor).await)
    }

    async fn delete_image(&self, id: ImageId, actor: &str) -> Result<CatalogImage> {
        let actor = actor.to_owned();
        in_transaction!(self, |conn| ops::catalog::delete_image(conn, id, &actor).await)
    }

    async fn create_tag(&self, image_id: ImageId, tag: NewTag, actor: &str) -> Result<Tag> {
        let actor = actor.to_owned();
        in_transaction!(self, |conn| ops::catalog::create_tag(conn, image_id, &tag, &actor).await)
    }

    /// An update that changes nothing returns the tag as it is and records no event.
    async fn update_tag(&self, image_id: ImageId, tag_id: TagId, update: TagUpdate, actor: &str) -> Result<Tag> {
        let actor = actor.to_owned();
        in_transaction!(self, |conn| ops::catalog::update_tag(conn, image_id, tag_id, &update, &actor).await)
    }

    async fn delete_tag(&self, image_id: ImageId, tag_id: TagId, actor: &str) -> Result<Tag> {
        let actor = actor.to_owned();
        in_transaction!(self, |conn| ops::catalog::delete_tag(conn, image_id, tag_id, &actor).await)
    }

    async fn create_approval_request(&self, request: NewApprovalRequest, actor: &str) -> Result<ApprovalRequest> {
        let actor = actor.to_owned();
        in_transaction!(self, |conn| ops::approvals::create_approval_request(conn, &request, &actor).await)
    }

    /// Oldest first.
    async fn list_approval_requests(&self, filter: &ApprovalRequestFilter) -> Result<Listing<ApprovalRequest>> {
        let filter = filter.clone();
        cached!(
            self,
            "list_approval_requests",
            filter,
            with_conn!(self, |conn| ops::approvals::list_approval_requests(conn, &filter).await)
        )
    }

    async fn get_approval_request(&self, id: ApprovalRequestId) -> Result<ApprovalRequest> {
        cached!(
            self,
            "get_approval_request",
            id,
            with_conn!(self, |conn| ops::approvals::get_approval_request(conn, id).await)
        )
    }

    async fn decide_approval_request(
        &self,
        id: ApprovalRequestId,
        decision: Decision,
        actor: &str,
    ) -> Result<(ApprovalRequest, Option<CatalogImage>)> {
        let actor = actor.to_owned();
        in_transaction!(self, |conn| ops::approvals::decide_approval_request(conn, id, &decision, &actor).await)
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Listing<AuditEvent>> {
        let filter = filter.clone();
        cached!(self, "list_events", filter, with_conn!(self, |conn| ops::events::list_events(conn, &filter).await))
    }
}

#[async_trait]
impl UserStore for DbStore {
    async fn count_users(&self) -> Result<i64> {
        with_conn!(self, |conn| ops::users::count_users(conn).await)
    }

    async fn create_user(&self, user: NewUser, actor: &str) -> Result<User> {
        let actor = actor.to_owned();
        in_transaction!(self, |conn| ops::users::create_user(conn, &user, &actor).await)
    }

    async fn find_credentials(&self, username: &str) -> Result<Option<Credentials>> {
        let username = username.to_owned();
        with_conn!(self, |conn| ops::users::find_credentials(conn, &username).await)
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        with_conn!(self, |conn| ops::users::list_users(conn).await)
    }

    /// The role change and the password change each record their own event.
    async fn update_user(&self, username: &str, update: UserUpdate, actor: &str) -> Result<User> {
        let (username, actor) = (username.to_owned(), actor.to_owned());
        in_transaction!(self, |conn| ops::users::update_user(conn, &username, &update, &actor).await)
    }

    async fn delete_user(&self, username: &str, actor: &str) -> Result<User> {
        let (username, actor) = (username.to_owned(), actor.to_owned());
        in_transaction!(self, |conn| ops::users::delete_user(conn, &username, &actor).await)
    }

    /// Fails with `AlreadyExists` when the hash is already stored.
    async fn create_token(
        &self,
        user_id: UserId,
        token_hash: &str,
        name: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<ApiToken> {
        self.create_token_with_expiry(user_id, token_hash, name, expires_at).await
    }

    /// Also notes when the token was used, to within a minute, on a best-effort basis: a failure to note
    /// it is logged and does not fail the lookup.
    async fn find_user_by_token(&self, token_hash: &str) -> Result<Option<(TokenId, User)>> {
        let now = now_micros();
        // Only tokens that work are kept: a flood of made-up ones cannot push the real ones out.
        let version = self.changes.version();
        let key = ("find_user_by_token", token_hash.to_owned());
        let kept = version.and_then(|v| self.cache.get::<ops::users::FoundToken>(v, &key));
        let found = match kept {
            Some(token) if token.expires_at.is_none_or(|at| at > now) => token,
            Some(_) => {
                self.cache.forget(&key);
                return Ok(None);
            }
            None => {
                let token_hash = token_hash.to_owned();
                let found = with_conn!(self, |conn| ops::users::find_token(conn, &token_hash, now).await)?;
                let Some(found) = found else { return Ok(None) };
                if let Some(version) = version {
                    let weight = image_core::cache::weight(&found);
                    self.cache.put(version, key, Arc::new(found.clone()), weight);
                }
                found
            }
        };
        let resolution = TOKEN_USE_RESOLUTION.as_micros() as Micros;
        let token_id = found.id;
        // Noting the use is a write: it moves the data version, and the next lookup reads the token anew.
        if found.last_used_at.is_none_or(|at| now.saturating_sub(at) >= resolution)
            && let Err(e) = in_transaction!(self, |conn| ops::users::touch_token(conn, token_id, now).await)
        {
            tracing::warn!(error = %e, token_id, "could not note when an API token was last used");
        }
        Ok(Some((TokenId::new(found.id), found.user)))
    }

    async fn list_tokens(&self, user_id: UserId) -> Result<Vec<ApiToken>> {
        let now = now_micros();
        with_conn!(self, |conn| ops::users::list_tokens(conn, user_id, now).await)
    }

    async fn revoke_token(&self, id: TokenId, owner: Option<UserId>, actor: &str) -> Result<ApiToken> {
        let actor = actor.to_owned();
        in_transaction!(self, |conn| ops::users::revoke_token(conn, id, owner, &actor).await)
    }
}

#[async_trait]
impl HealthCheck for DbStore {
    async fn ping(&self) -> Result<()> {
        with_conn!(self, |conn| ops::ping(conn).await)
    }

    /// Opens one stored password: a key that opens one was the key they were sealed with.
    async fn check_secret_key(&self) -> Result<()> {
        let page = Page::new(Some(1), None)?;
        self.list_registry_secrets(None, None, page).await.map(drop)
    }
}

#[async_trait]
impl JobQueue for DbStore {
    async fn claim_job(&self, worker: &str, job_types: &[&str], lease: Duration) -> Result<Option<ClaimedJob>> {
        let worker = worker.to_owned();
        let job_types: Vec<String> = job_types.iter().map(|t| (*t).to_owned()).collect();
        in_transaction!(self, |conn| ops::queue::claim_job(conn, &worker, &job_types, lease).await)
    }

    async fn renew_lease(&self, id: JobId, worker: &str, lease: Duration) -> Result<bool> {
        let worker = worker.to_owned();
        in_transaction!(self, |conn| ops::queue::renew_lease(conn, id, &worker, lease).await)
    }

    async fn retry_job(&self, id: JobId, worker: &str, error: &str, run_at: Timestamp) -> Result<bool> {
        let (worker, error, run_at) = (worker.to_owned(), error.to_owned(), to_micros(run_at));
        in_transaction!(self, |conn| ops::queue::retry_job(conn, id, &worker, &error, run_at).await)
    }

    async fn complete_job(&self, id: JobId, worker: &str) -> Result<bool> {
        let worker = worker.to_owned();
        in_transaction!(self, |conn| ops::queue::complete_job(conn, id, &worker).await)
    }

    /// Every job type in the queue with its count, by name; the runner picks out the ones it does not know.
    async fn job_types(&self) -> Result<Vec<(String, i64)>> {
        with_conn!(self, |conn| ops::queue::job_types(conn).await)
    }

    async fn release_job(&self, id: JobId, worker: &str) -> Result<bool> {
        let worker = worker.to_owned();
        in_transaction!(self, |conn| ops::queue::release_job(conn, id, &worker).await)
    }
}

#[async_trait]
impl ImportStore for DbStore {
    /// Fails with `Invalid` when `max_attempts` or `timeout_secs` is below 1.
    async fn enqueue_import(&self, import: NewImport, actor: &str) -> Result<EnqueueOutcome> {
        let actor = actor.to_owned();
        in_transaction!(self, |conn| ops::imports::enqueue_import(conn, &import, &actor).await)
    }

    async fn get_import(&self, id: ImportId) -> Result<ImportJob> {
        cached!(self, "get_import", id, with_conn!(self, |conn| ops::imports::get_import(conn, id.get()).await))
    }

    async fn list_imports(&self, filter: &ImportFilter) -> Result<Listing<ImportJob>> {
        let filter = filter.clone();
        cached!(self, "list_imports", filter, with_conn!(self, |conn| ops::imports::list_imports(conn, &filter).await))
    }

    /// One indexed lookup (`imports_active_target`).
    async fn find_active_import(&self, target_repository: &str, target_tag: &str) -> Result<Option<ImportJob>> {
        let (repository, tag) = (target_repository.to_owned(), target_tag.to_owned());
        with_conn!(self, |conn| ops::imports::find_active_import(conn, &repository, &tag).await)
    }

    /// Sets the state to running, the attempt number, `started_at` (on the first attempt only), and clears
    /// the error. False, changing nothing, unless the import is queued or running, `job` is its job, and
    /// `worker` holds that job's lease.
    async fn start_import_attempt(&self, id: ImportId, job: JobId, worker: &str, attempt: i32) -> Result<bool> {
        let worker = worker.to_owned();
        in_transaction!(self, |conn| ops::imports::start_import_attempt(conn, id.get(), job, &worker, attempt).await)
    }

    /// Checks no lease, but writes only while the import is queued or running: a late report cannot undo
    /// the final progress of a finished import. A digest of `None` keeps the stored one.
    async fn record_import_progress(
        &self,
        id: ImportId,
        digest: Option<&image_core::Digest>,
        artifacts: &[Artifact],
        layers: &[LayerProgress],
    ) -> Result<()> {
        let (digest, artifacts, layers) = (digest.cloned(), artifacts.to_vec(), layers.to_vec());
        in_transaction!(self, |conn| ops::imports::record_import_progress(
            conn,
            id.get(),
            digest.as_ref(),
            &artifacts,
            &layers
        )
        .await)
    }

    /// Success marks every layer completed. A retry with attempts left (the job's count against its
    /// `max_attempts`) requeues the job at `retry_at` and the import as queued with the error shown;
    /// without attempts left it fails the import like `Failed`.
    async fn finish_import_attempt(
        &self,
        id: ImportId,
        job: JobId,
        worker: &str,
        outcome: AttemptOutcome,
    ) -> Result<bool> {
        let worker = worker.to_owned();
        in_transaction!(self, |conn| ops::imports::finish_import_attempt(conn, id.get(), job, &worker, &outcome).await)
    }

    async fn cancel_import(&self, id: ImportId, actor: &str) -> Result<ImportJob> {
        let actor = actor.to_owned();
        in_transaction!(self, |conn| ops::imports::cancel_import(conn, id.get(), &actor).await)
    }

    async fn delete_import(&self, id: ImportId, actor: &str) -> Result<ImportJob> {
        let actor = actor.to_owned();
        in_transaction!(self, |conn| ops::imports::delete_import(conn, id.get(), &actor).await)
    }

    async fn record_registry_push(
        &self,
        push: &image_core::import::RegistryPush,
        actor: &str,
    ) -> Result<Option<ImportJob>> {
        let (push, actor) = (push.clone(), actor.to_owned());
        in_transaction!(self, |conn| ops::imports::record_registry_push(conn, &push, &actor).await)
    }

    async fn forget_registry_artifact(
        &self,
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: &image_core::Digest,
        actor: &str,
    ) -> Result<u64> {
        let (registry, repository, tag) = (registry.to_owned(), repository.to_owned(), tag.map(str::to_owned));
        let (digest, actor) = (digest.clone(), actor.to_owned());
        in_transaction!(self, |conn| ops::imports::forget_registry_artifact(
            conn,
            &registry,
            &repository,
            tag.as_deref(),
            &digest,
            &actor
        )
        .await)
    }

    /// The given id and creation time are ignored: the store assigns both.
    async fn create_export(&self, export: ExportRecord) -> Result<ExportRecord> {
        in_transaction!(self, |conn| ops::exports::create_export(conn, &export).await)
    }

    async fn set_export_phase(
        &self,
        id: ExportId,
        phase: ExportPhase,
        actor: &str,
        actor_is_admin: bool,
    ) -> Result<ExportRecord> {
        let actor = actor.to_owned();
        in_transaction!(self, |conn| ops::exports::set_export_phase(conn, id, phase, &actor, actor_is_admin).await)
    }

    /// `ready: Some(false)` keeps the records that have not succeeded.
    async fn list_exports(
        &self,
        ready: Option<bool>,
        created_by: Option<&str>,
        page: image_core::catalog::Page,
    ) -> Result<Listing<ExportRecord>> {
        let created_by = created_by.map(str::to_owned);
        cached!(
            self,
            "list_exports",
            (ready, &created_by, page),
            with_conn!(self, |conn| ops::exports::list_exports(conn, ready, created_by.as_deref(), page).await)
        )
    }
}

#[async_trait]
impl KubeStore for DbStore {
    /// The password is sealed before the transaction begins; without a secret key this fails with
    /// `Storage` ("no secret key configured") and stores nothing. Validation is the caller's
    /// (`NewRegistrySecret::validated`).
    async fn create_registry_secret(&self, secret: NewRegistrySecret, actor: &str) -> Result<RegistrySecret> {
        let sealed = self.sealer.seal(&secret.namespace, &secret.name, &secret.password)?;
        let (sealer, actor) = (self.sealer.clone(), actor.to_owned());
        in_transaction!(self, |conn| ops::kube::create_registry_secret(conn, &sealer, &secret, &sealed, &actor).await)
    }

    /// Fails with `NotFound` (kind `registry secret`, id `namespace/name`), and with `Storage` when the
    /// password does not decrypt (no key, or another key than the one it was sealed with).
    async fn get_registry_secret(&self, namespace: &str, name: &str) -> Result<RegistrySecret> {
        let (sealer, namespace, name) = (self.sealer.clone(), namespace.to_owned(), name.to_owned());
        with_conn!(self, |conn| ops::kube::get_registry_secret(conn, &sealer, &namespace, &name).await)
    }

    /// Ordered by namespace, then name; `search` is a substring (`%` and `_` match themselves).
    /// Kept in memory with the passwords sealed, as stored; each answer opens them anew.
    async fn list_registry_secrets(
        &self,
        namespace: Option<&str>,
        search: Option<&str>,
        page: Page,
    ) -> Result<Listing<RegistrySecret>> {
        let (namespace, search) = (namespace.map(str::to_owned), search.map(str::to_owned));
        let (rows, total) = cached!(
            self,
            "list_registry_secrets",
            (&namespace, &search, page),
            with_conn!(self, |conn| {
                ops::kube::list_registry_secrets(conn, namespace.as_deref(), search.as_deref(), page).await
            })
        )?;
        let items = rows.into_iter().map(|row| row.into_domain(&self.sealer)).collect::<DbResult<_>>()?;
        Ok(Listing { items, total })
    }

    /// The conflict names a repository that uses it: `registry secret default/harbor-prod is used by
    /// repository default/myapp` (`and N more` when several do). A password that does not decrypt does not
    /// stop the deletion (that is how a lost key is recovered from); the returned password is then empty.
    async fn delete_registry_secret(&self, namespace: &str, name: &str, actor: &str) -> Result<RegistrySecret> {
        let (sealer, namespace, name, actor) =
            (self.sealer.clone(), namespace.to_owned(), name.to_owned(), actor.to_owned());
        in_transaction!(self, |conn| ops::kube::delete_registry_secret(conn, &sealer, &namespace, &name, &actor).await)
    }

    /// Sets the status, the message (none when empty) and the verification time (now). No audit event.
    async fn record_verification(
        &self,
        namespace: &str,
        name: &str,
        status: VerifyStatus,
        message: &str,
    ) -> Result<RegistrySecret> {
        let (sealer, namespace, name, message) =
            (self.sealer.clone(), namespace.to_owned(), name.to_owned(), message.to_owned());
        in_transaction!(self, |conn| {
            ops::kube::record_verification(conn, &sealer, &namespace, &name, status, &message).await
        })
    }

    /// Ordered by namespace, then name. Fails as a whole when a password does not decrypt.
    async fn all_registry_secrets(&self) -> Result<Vec<RegistrySecret>> {
        let sealer = self.sealer.clone();
        with_conn!(self, |conn| ops::kube::all_registry_secrets(conn, &sealer).await)
    }

    /// Fails with `NotFound` (kind `registry secret`, id `namespace/name`) when the referenced secret does not
    /// exist, storing nothing. Intervals and timeouts are kept in whole seconds, rounded up.
    async fn create_repository(&self, repository: NewRepository, actor: &str) -> Result<Repository> {
        let actor = actor.to_owned();
        in_transaction!(self, |conn| ops::kube::create_repository(conn, &repository, &actor).await)
    }

    /// Fails with `NotFound` (kind `repository`, id `namespace/name`).
    async fn get_repository(&self, namespace: &str, name: &str) -> Result<Repository> {
        let (namespace, name) = (namespace.to_owned(), name.to_owned());
        with_conn!(self, |conn| ops::kube::get_repository(conn, &namespace, &name).await)
    }

    /// Ordered by namespace, then name; `name` is a substring (`%` and `_` match themselves).
    async fn list_repositories(
        &self,
        namespace: Option<&str>,
        name: Option<&str>,
        page: Page,
    ) -> Result<Listing<Repository>> {
        let (namespace, name) = (namespace.map(str::to_owned), name.map(str::to_owned));
        cached!(
            self,
            "list_repositories",
            (&namespace, &name, page),
            with_conn!(self, |conn| ops::kube::list_repositories(conn, namespace.as_deref(), name.as_deref(), page)
                .await)
        )
    }

    /// Also removes its queued or running sync job; a worker running it loses it at its next lease renewal.
    async fn delete_repository(&self, namespace: &str, name: &str, actor: &str) -> Result<Repository> {
        let (namespace, name, actor) = (namespace.to_owned(), name.to_owned(), actor.to_owned());
        in_transaction!(self, |conn| ops::kube::delete_repository(conn, &namespace, &name, &actor).await)
    }

    /// Due: `next_sync_at <= now`, and no job (or a job_id whose job is gone, finished). Each queued
    /// repository gets a `sync` job due at once and `next_sync_at = now + interval`. On PostgreSQL the
    /// due rows are taken `FOR UPDATE SKIP LOCKED`, so concurrent schedulers split them; on SQLite the
    /// writer lock serialises them.
    async fn enqueue_due_syncs(&self, now: Timestamp) -> Result<usize> {
        let now = to_micros(now);
        in_transaction!(self, |conn| ops::kube::enqueue_due_syncs(conn, now).await)
    }

    /// A repository whose job_id names a job that still exists (queued, or leased by a worker) is left
    /// alone (false). Otherwise a sync job is queued, due now, and the next scheduled sync moves to one
    /// interval from now. Fails with `NotFound` (kind `repository`, id `namespace/name`).
    async fn trigger_sync(&self, namespace: &str, name: &str) -> Result<bool> {
        let (namespace, name) = (namespace.to_owned(), name.to_owned());
        in_transaction!(self, |conn| ops::kube::trigger_sync(conn, &namespace, &name).await)
    }

    /// The worker's side of a sync:
    ///
    /// - `Syncing`: an attempt started, or failed and will be retried (with the error as `message`);
    ///   sets the status and message only.
    /// - `Success`: also `last_synced` (now) and the manifest (when given; `None` keeps the last one),
    ///   and the repository's job is cleared, so the next one can be queued.
    /// - `Failed`: final, the worker gave up (out of attempts, or an error not worth retrying): status and
    ///   message, the job cleared; the last good manifest and `last_synced` stay.
    ///
    /// Only the worker holding the repository's job records anything: true when recorded, false when
    /// `worker` no longer holds `job` (its lease ran out and another worker took it) or `job` is not the
    /// repository's. The final outcomes also complete the job, in the same transaction. Fails with
    /// `NotFound` (kind `repository`, id the number) when the repository was deleted meanwhile: the worker
    /// should then complete its job and move on.
    async fn record_sync(
        &self,
        id: RepositoryId,
        job: JobId,
        worker: &str,
        status: SyncStatus,
        message: Option<&str>,
        manifest: Option<&SyncedManifest>,
    ) -> Result<bool> {
        let (message, manifest, worker) = (message.map(str::to_owned), manifest.cloned(), worker.to_owned());
        in_transaction!(self, |conn| ops::kube::record_sync(
            conn,
            id.get(),
            job,
            &worker,
            status,
            message.as_deref(),
            manifest.as_ref()
        )
        .await)
    }

    async fn retry_sync(
        &self,
        id: RepositoryId,
        job: JobId,
        worker: &str,
        message: &str,
        error: &str,
        run_at: Timestamp,
    ) -> Result<bool> {
        let (worker, message, error, run_at) =
            (worker.to_owned(), message.to_owned(), error.to_owned(), to_micros(run_at));
        in_transaction!(self, |conn| ops::kube::retry_sync(conn, id.get(), job, &worker, &message, &error, run_at)
            .await)
    }

    /// Fails with `NotFound` (kind `repository`, id the number) when there is no such repository, as for a
    /// job whose repository was deleted; and with `Storage` when the password does not decrypt.
    async fn repository_by_id(&self, id: RepositoryId) -> Result<(Repository, RegistrySecret)> {
        let sealer = self.sealer.clone();
        with_conn!(self, |conn| ops::kube::repository_by_id(conn, &sealer, id.get()).await)
    }
}

#[async_trait]
impl SessionStore for DbStore {
    async fn create_session(&self, user_id: UserId, id_hash: &str) -> Result<Session> {
        let id_hash = id_hash.to_owned();
        let now = now_micros();
        // Sessions idle for a month are gone by any server's idle limit.
        let stale_before = now.saturating_sub(SESSION_FORGET_AFTER.as_micros() as Micros);
        in_transaction!(self, |conn| ops::sessions::create_session(conn, user_id, &id_hash, now, stale_before).await)
    }

    /// Notes the use at most once a minute, on a best-effort basis, as for tokens.
    async fn find_session(&self, id_hash: &str, idle: Duration) -> Result<Option<Session>> {
        let id_hash = id_hash.to_owned();
        let now = now_micros();
        let lookup = id_hash.clone();
        let found = with_conn!(self, |conn| ops::sessions::find_session(conn, &lookup).await)?;
        let Some((row_id, mut session)) = found else { return Ok(None) };
        let last_seen = to_micros(session.last_seen_at);
        if now.saturating_sub(last_seen) >= idle.as_micros().min(i64::MAX as u128) as Micros {
            in_transaction!(self, |conn| ops::sessions::end_session(conn, &id_hash).await)?;
            return Ok(None);
        }
        if now.saturating_sub(last_seen) >= TOKEN_USE_RESOLUTION.as_micros() as Micros {
            match in_transaction!(self, |conn| ops::sessions::touch_session(conn, row_id, now).await) {
                Ok(()) => session.last_seen_at = models::from_micros(now)?,
                Err(e) => tracing::warn!(error = %e, "could not note when a session was last used"),
            }
        }
        Ok(Some(session))
    }

    async fn end_session(&self, id_hash: &str) -> Result<()> {
        let id_hash = id_hash.to_owned();
        in_transaction!(self, |conn| ops::sessions::end_session(conn, &id_hash).await)
    }
}

#[async_trait]
impl image_core::robot::RobotStore for DbStore {
    async fn create_robot(&self, robot: image_core::robot::NewRobot, actor: &str) -> Result<image_core::robot::Robot> {
        let actor = actor.to_owned();
        in_transaction!(self, |conn| ops::robots::create_robot(conn, &robot, &actor).await)
    }

    async fn list_robots(&self) -> Result<Vec<image_core::robot::Robot>> {
        with_conn!(self, |conn| ops::robots::list_robots(conn).await)
    }

    async fn delete_robot(&self, name: &str, actor: &str) -> Result<image_core::robot::Robot> {
        let (name, actor) = (name.to_owned(), actor.to_owned());
        in_transaction!(self, |conn| ops::robots::delete_robot(conn, &name, &actor).await)
    }

    async fn find_robot(&self, name: &str) -> Result<Option<(image_core::robot::Robot, String)>> {
        let name = name.to_owned();
        with_conn!(self, |conn| ops::robots::find_robot(conn, &name).await)
    }
}

/// Sessions unused for this long are deleted when another one starts.
const SESSION_FORGET_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);

#[async_trait]
impl StationStore for DbStore {
    /// The password is sealed before the transaction begins, as for [`KubeStore::create_registry_secret`].
    async fn create_station_registry(
        &self,
        secret: NewRegistrySecret,
        fields: StationFields,
        actor: &str,
    ) -> Result<StationRegistry> {
        let sealed = self.sealer.seal(&secret.namespace, &secret.name, &secret.password)?;
        let (sealer, actor) = (self.sealer.clone(), actor.to_owned());
        in_transaction!(self, |conn| {
            ops::station::create_station_registry(conn, &sealer, &secret, &sealed, &fields, &actor).await
        })
    }

    async fn list_station_registries(&self, namespace: &str) -> Result<Vec<StationRegistry>> {
        // Kept in memory with the passwords sealed, as stored; each answer opens them anew.
        let namespace = namespace.to_owned();
        let rows = cached!(
            self,
            "list_station_registries",
            &namespace,
            with_conn!(self, |conn| ops::station::list_station_registries(conn, &namespace).await)
        )?;
        Ok(ops::station::open_station_registries(rows, &self.sealer)?)
    }

    async fn update_station_registry(
        &self,
        namespace: &str,
        name: &str,
        update: StationRegistryUpdate,
        actor: &str,
    ) -> Result<StationRegistry> {
        let sealed = update.password.as_ref().map(|p| self.sealer.seal(namespace, name, p)).transpose()?;
        let (sealer, namespace, name, actor) =
            (self.sealer.clone(), namespace.to_owned(), name.to_owned(), actor.to_owned());
        in_transaction!(self, |conn| {
            ops::station::update_station_registry(conn, &sealer, &namespace, &name, &update, sealed.as_deref(), &actor)
                .await
        })
    }
    async fn record_download(&self, import: ImportId, details: DownloadDetails) -> Result<()> {
        in_transaction!(self, |conn| {
            ops::station::record_download(conn, import.get(), &details.location, &details.icon).await
        })
    }

    async fn downloads(&self) -> Result<std::collections::HashMap<ImportId, DownloadDetails>> {
        let rows = cached!(self, "downloads", (), with_conn!(self, |conn| ops::station::downloads(conn).await))?;
        Ok(rows
            .into_iter()
            .map(|(id, location, icon)| (ImportId::new(id), DownloadDetails { location, icon }))
            .collect())
    }
}

#[async_trait]
impl InventoryStore for DbStore {
    async fn enqueue_inventory(&self, node: &str) -> Result<bool> {
        let node = node.to_owned();
        in_transaction!(self, |conn| ops::nodes::enqueue_inventory(conn, &node).await)
    }

    async fn record_inventory(
        &self,
        job: Option<(JobId, &str)>,
        node: &str,
        interval_secs: i64,
        report: std::result::Result<image_core::inventory::RuntimeReport, String>,
    ) -> Result<bool> {
        let (job, node) = (job.map(|(id, worker)| (id, worker.to_owned())), node.to_owned());
        in_transaction!(self, |conn| {
            let job = job.as_ref().map(|(id, worker)| (*id, worker.as_str()));
            ops::nodes::record_inventory(conn, job, &node, interval_secs, report).await
        })
    }

    async fn list_nodes(&self) -> Result<Vec<image_core::inventory::NodeInventory>> {
        cached!(self, "list_nodes", (), with_conn!(self, |conn| ops::nodes::list_nodes(conn).await))
    }

    async fn get_node(&self, name: &str) -> Result<image_core::inventory::NodeInventory> {
        let name = name.to_owned();
        cached!(self, "get_node", &name, with_conn!(self, |conn| ops::nodes::get_node(conn, &name).await))
    }
}

#[async_trait]
impl image_core::store::ScanQueue for DbStore {
    async fn enqueue_scan(
        &self,
        payload: &image_core::job::ScanPayload,
        run_at: Timestamp,
        max_attempts: i32,
    ) -> Result<JobId> {
        use image_core::job::JobPayload as _;
        let payload = serde_json::to_value(payload).map_err(Error::storage)?;
        let run_at = to_micros(run_at);
        in_transaction!(self, |conn| ops::queue::enqueue_job(
            conn,
            image_core::job::ScanPayload::NAME,
            &payload,
            0,
            run_at,
            max_attempts
        )
        .await)
    }

    async fn queue_pending_scans(&self, limit: i64) -> Result<u64> {
        in_transaction!(self, |conn| ops::scans::queue_pending_scans(conn, limit).await)
    }
}

#[async_trait]
impl image_core::ops::OpsStore for DbStore {
    async fn queue_depths(&self) -> Result<Vec<image_core::ops::QueueDepth>> {
        with_conn!(self, |conn| ops::observe::queue_depths(conn, now_micros()).await)
    }

    async fn import_counts(&self) -> Result<Vec<(image_core::import::ImportState, i64)>> {
        with_conn!(self, |conn| ops::observe::import_counts(conn).await)
    }

    fn pool_status(&self) -> image_core::ops::PoolStatus {
        let status = match &*self.backend {
            Backend::Sqlite(db) => db.pool.status(),
            Backend::Postgres(db) => db.pool.status(),
        };
        image_core::ops::PoolStatus {
            max: status.max_size,
            open: status.size,
            idle: status.available,
            waiting: status.waiting,
        }
    }

    /// Each batch is its own transaction; imports go first, then events.
    async fn prune(&self, policy: image_core::ops::RetentionPolicy, now: Timestamp) -> Result<image_core::ops::Pruned> {
        let cut = |keep: Duration| to_micros(now).saturating_sub(i64::try_from(keep.as_micros()).unwrap_or(i64::MAX));
        let (imports_before, events_before) = (cut(policy.imports), cut(policy.events));
        let batch = i64::try_from(policy.batch.clamp(1, 100_000)).unwrap_or(1000);
        let mut pruned = image_core::ops::Pruned::default();
        loop {
            let n = in_transaction!(self, |conn| ops::retention::prune_imports(conn, imports_before, batch).await)?;
            pruned.imports += n as u64;
            if (n as i64) < batch {
                break;
            }
            tokio::task::yield_now().await;
        }
        loop {
            let n = in_transaction!(self, |conn| ops::retention::prune_events(conn, events_before, batch).await)?;
            pruned.events += n as u64;
            if (n as i64) < batch {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(pruned)
    }

    async fn catalog_generation(&self) -> Result<i64> {
        with_conn!(self, |conn| ops::observe::catalog_generation(conn).await)
    }

    fn data_version(&self) -> Option<u64> {
        self.changes.version()
    }

    async fn queue_retention(&self, payload: image_core::job::RetentionPayload) -> Result<bool> {
        let store: DbStore = self.clone();
        detach(async move {
            let queued: DbResult<bool> = async {
                let _writer = store.lock_writer().await;
                let mut pooled = store.pooled().await?;
                pooled
                    .conn()
                    .write_transaction(async |conn| ops::retention::queue_retention(conn, &payload).await)
                    .await
            }
            .await;
            store.changes.wrote();
            match queued {
                Err(e) if error::is_unique_violation(&e) => Ok(false),
                other => other.map_err(Error::from),
            }
        })
        .await
    }
}

// After the macros above, which it uses.
mod registry_store;
