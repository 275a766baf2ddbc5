//! The storage traits that adapters implement.
//!
//! Every method that changes the catalog writes its audit event in the same transaction, and rules
//! that span rows (one recommended tag per image, a request decided once) are applied inside that
//! transaction, so they hold under concurrent requests.

use async_trait::async_trait;

use crate::{
    Result, Timestamp,
    auth::{ApiToken, Credentials, NewUser, TokenId, User, UserId, UserUpdate},
    catalog::{
        ApprovalRequest, ApprovalRequestFilter, ApprovalRequestId, CatalogImage, Decision, ImageFilter, ImageId,
        ImageSummary, ImageUpdate, NewApprovalRequest, NewImage, NewTag, Tag, TagId, TagUpdate,
    },
    event::{AuditEvent, EventFilter},
    import::{
        Artifact, AttemptOutcome, EnqueueOutcome, ExportId, ExportPhase, ExportRecord, ImportFilter, ImportId,
        ImportJob, LayerProgress, NewImport,
    },
};

/// A page of results and the number of results without paging.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub total: i64,
}

#[async_trait]
pub trait CatalogStore: Send + Sync {
    async fn list_images(&self, filter: &ImageFilter) -> Result<Listing<ImageSummary>>;
    /// Fails with `NotFound` when there is no such image.
    async fn get_image(&self, id: ImageId) -> Result<CatalogImage>;
    async fn find_image(&self, registry: &str, namespace: &str, image_name: &str) -> Result<Option<CatalogImage>>;
    /// The image's tags, oldest first.
    async fn list_tags(&self, image_id: ImageId) -> Result<Vec<Tag>>;
    /// Each category in use and how many images it has, most used first.
    async fn categories(&self) -> Result<Vec<(String, i64)>>;

    /// Fails with `Conflict` when an image with the same registry, namespace and name exists.
    async fn create_image(&self, image: NewImage, actor: &str) -> Result<CatalogImage>;
    async fn update_image(&self, id: ImageId, update: ImageUpdate, actor: &str) -> Result<CatalogImage>;
    /// Deletes an image and its tags. Fails with `Conflict`, deleting nothing, while anything depends on it.
    async fn delete_image(&self, id: ImageId, actor: &str) -> Result<CatalogImage>;

    /// Adds a tag; when it is recommended, every other tag of the image stops being so.
    async fn create_tag(&self, image_id: ImageId, tag: NewTag, actor: &str) -> Result<Tag>;
    async fn update_tag(&self, image_id: ImageId, tag_id: TagId, update: TagUpdate, actor: &str) -> Result<Tag>;
    async fn delete_tag(&self, image_id: ImageId, tag_id: TagId, actor: &str) -> Result<Tag>;

    async fn create_approval_request(&self, request: NewApprovalRequest, actor: &str) -> Result<ApprovalRequest>;
    async fn list_approval_requests(&self, filter: &ApprovalRequestFilter) -> Result<Listing<ApprovalRequest>>;
    async fn get_approval_request(&self, id: ApprovalRequestId) -> Result<ApprovalRequest>;
    /// Decides a pending request. Approving creates the image as approved, or approves the existing one,
    /// and adds the requested tag when there is one. Fails with `Conflict` when already decided.
    async fn decide_approval_request(
        &self,
        id: ApprovalRequestId,
        decision: Decision,
        actor: &str,
    ) -> Result<(ApprovalRequest, Option<CatalogImage>)>;

    async fn list_events(&self, filter: &EventFilter) -> Result<Listing<AuditEvent>>;
}

/// Users and their API tokens.
///
/// A user's tokens end, in the same transaction, when the user's password changes or the user is deleted;
/// a role change keeps them, and since a token is looked up with its user on every request, the new role
/// applies at once. Changes write audit events (`user.*`), whose details never hold a password, a hash or
/// a token.
#[async_trait]
pub trait UserStore: Send + Sync {
    async fn count_users(&self) -> Result<i64>;
    /// Fails with `AlreadyExists` when the name is taken.
    async fn create_user(&self, user: NewUser, actor: &str) -> Result<User>;
    async fn find_credentials(&self, username: &str) -> Result<Option<Credentials>>;
    /// Every user, ordered by name.
    async fn list_users(&self) -> Result<Vec<User>>;
    /// Changes a user's role, password, or both (an empty update changes nothing and records nothing).
    /// A new password ends every token of the user. Fails with `NotFound` when there is no such user, and
    /// with `Conflict` when it would demote the last admin: the count is taken with every admin's row
    /// locked, so two concurrent demotions cannot both pass.
    async fn update_user(&self, username: &str, update: UserUpdate, actor: &str) -> Result<User>;
    /// Deletes a user and their tokens; the audit trail keeps their name as an actor. Fails with `NotFound`,
    /// and with `Conflict` for the last admin (checked as in [`UserStore::update_user`]).
    async fn delete_user(&self, username: &str, actor: &str) -> Result<User>;

    /// Stores the hash of a new API token for a user, which stops working at `expires_at` (never, when
    /// `None`), and forgets that user's expired tokens. Fails with `NotFound` when there is no such user.
    async fn create_token(
        &self,
        user_id: UserId,
        token_hash: &str,
        name: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<ApiToken>;
    /// The live token with this hash and its user, if the token exists and has not expired.
    async fn find_user_by_token(&self, token_hash: &str) -> Result<Option<(TokenId, User)>>;
    /// A user's tokens that have not expired, oldest first.
    async fn list_tokens(&self, user_id: UserId) -> Result<Vec<ApiToken>>;
    /// Revokes a token; with `owner`, only a token of that user (any other is `NotFound`, as a token that
    /// does not exist is).
    async fn revoke_token(&self, id: TokenId, owner: Option<UserId>, actor: &str) -> Result<ApiToken>;
}

crate::id::id_type!(
    /// A queued job's id.
    JobId
);

/// A job claimed from the queue. The worker holds it until `lease_until` and renews the lease while it
/// works; a worker that dies simply stops renewing, and the job returns to the queue when the lease ends.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    pub id: JobId,
    /// What kind of job this is, such as `import`; the runner dispatches on it.
    pub job_type: String,
    pub payload: serde_json::Value,
    /// Attempts so far, this one included.
    pub attempts: i32,
    pub max_attempts: i32,
    pub lease_until: crate::Timestamp,
}

/// The queue mechanics, with no knowledge of what the jobs do.
///
/// Claims go to due jobs (queued and `run_at` passed, or running with an expired lease), highest priority
/// first, then oldest; no two workers ever hold the same job. Every method that takes `worker` does nothing
/// and answers `false` when that worker no longer holds the job's lease.
#[async_trait]
pub trait JobQueue: Send + Sync {
    async fn claim_job(
        &self,
        worker: &str,
        job_types: &[&str],
        lease: std::time::Duration,
    ) -> Result<Option<ClaimedJob>>;
    async fn renew_lease(&self, id: JobId, worker: &str, lease: std::time::Duration) -> Result<bool>;
    /// Puts the job back in the queue, due at `run_at` (backoff), with `error` recorded.
    async fn retry_job(&self, id: JobId, worker: &str, error: &str, run_at: crate::Timestamp) -> Result<bool>;
    /// Removes a finished job (success or final failure) from the queue.
    async fn complete_job(&self, id: JobId, worker: &str) -> Result<bool>;
    /// Job types present in the queue that no runner here knows, with their counts, so they can be reported.
    async fn job_types(&self) -> Result<Vec<(String, i64)>>;
    /// Ends `worker`'s lease on a job it stops running (a worker shutting down), so that another worker
    /// claims it at once rather than when the lease would have lapsed; the attempt counts as made.
    async fn release_job(&self, id: JobId, worker: &str) -> Result<bool>;
}

/// Imports (the platform API's images) and export records.
#[async_trait]
pub trait ImportStore: Send + Sync {
    /// Queues an import and its job in one transaction, unless an import of the same source into the same
    /// target is queued, running or succeeded: then that one is returned as `Existing`.
    async fn enqueue_import(&self, import: NewImport, actor: &str) -> Result<EnqueueOutcome>;
    async fn get_import(&self, id: ImportId) -> Result<ImportJob>;
    async fn list_imports(&self, filter: &ImportFilter) -> Result<Listing<ImportJob>>;
    /// The oldest queued or running import into `target_repository` (the target's repository path, without
    /// its registry) with the tag `target_tag`, if any.
    async fn find_active_import(&self, target_repository: &str, target_tag: &str) -> Result<Option<ImportJob>>;
    /// Marks the import running (attempt `attempt`, started now) for the worker holding `job`.
    async fn start_import_attempt(&self, id: ImportId, job: JobId, worker: &str, attempt: i32) -> Result<bool>;
    /// Records progress: the resolved digest and artifacts once known, and every blob's state.
    async fn record_import_progress(
        &self,
        id: ImportId,
        digest: Option<&crate::Digest>,
        artifacts: &[Artifact],
        layers: &[LayerProgress],
    ) -> Result<()>;
    /// Ends an attempt in one transaction: on success the import is succeeded, its job removed, and the catalog
    /// gets the image and tag; on retry the job is requeued (or, out of attempts, the import fails); on
    /// failure the import fails and its job is removed. False when `worker` no longer holds `job`.
    async fn finish_import_attempt(
        &self,
        id: ImportId,
        job: JobId,
        worker: &str,
        outcome: AttemptOutcome,
    ) -> Result<bool>;
    /// Cancels a queued or running import and removes its job; a running worker notices at its next renewal.
    async fn cancel_import(&self, id: ImportId, actor: &str) -> Result<ImportJob>;
    /// Deletes the import's record. Fails with `Conflict` while the import is queued or running.
    async fn delete_import(&self, id: ImportId, actor: &str) -> Result<ImportJob>;
    /// Records an artifact pushed straight to the internal registry (a registry event) as a succeeded import,
    /// so that the platform listing shows it; finished records of the same target with another digest (the
    /// push moved the tag) are deleted. `None`, changing nothing, when a succeeded import of that target
    /// already has the digest.
    async fn record_registry_push(&self, push: &crate::import::RegistryPush, actor: &str) -> Result<Option<ImportJob>>;
    /// Deletes the records of finished imports into `repository` of `registry` whose digest is `digest` (and
    /// whose target tag is `tag`, when given): what a delete made straight on the internal registry removed.
    /// Answers how many.
    async fn forget_registry_artifact(
        &self,
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: &crate::Digest,
        actor: &str,
    ) -> Result<u64>;

    async fn create_export(&self, export: ExportRecord) -> Result<ExportRecord>;
    /// Sets an export record's phase, with an audit event, when `actor` recorded it or `actor_is_admin`;
    /// `Forbidden`, changing nothing, for anyone else.
    async fn set_export_phase(
        &self,
        id: ExportId,
        phase: ExportPhase,
        actor: &str,
        actor_is_admin: bool,
    ) -> Result<ExportRecord>;
    /// Export records, newest first; `ready` keeps only `Succeeded` ones.
    async fn list_exports(
        &self,
        ready: Option<bool>,
        created_by: Option<&str>,
        page: crate::catalog::Page,
    ) -> Result<Listing<ExportRecord>>;
}

/// Registry secrets and repositories (the kube-style resources). Passwords are encrypted by the store
/// before they reach the database and decrypted when read.
#[async_trait]
pub trait KubeStore: Send + Sync {
    /// Fails with `Conflict` when the name is taken in the namespace.
    async fn create_registry_secret(
        &self,
        secret: crate::kube::NewRegistrySecret,
        actor: &str,
    ) -> Result<crate::kube::RegistrySecret>;
    async fn get_registry_secret(&self, namespace: &str, name: &str) -> Result<crate::kube::RegistrySecret>;
    /// `namespace` None lists every namespace; `search` matches name, display name or domain, case-insensitively.
    async fn list_registry_secrets(
        &self,
        namespace: Option<&str>,
        search: Option<&str>,
        page: crate::catalog::Page,
    ) -> Result<Listing<crate::kube::RegistrySecret>>;
    /// Fails with `Conflict`, deleting nothing, while a repository references the secret.
    async fn delete_registry_secret(
        &self,
        namespace: &str,
        name: &str,
        actor: &str,
    ) -> Result<crate::kube::RegistrySecret>;
    async fn record_verification(
        &self,
        namespace: &str,
        name: &str,
        status: crate::kube::VerifyStatus,
        message: &str,
    ) -> Result<crate::kube::RegistrySecret>;
    /// Every secret, for giving their credentials to the registry client.
    async fn all_registry_secrets(&self) -> Result<Vec<crate::kube::RegistrySecret>>;

    /// Fails with `NotFound` when the referenced secret does not exist and `Conflict` when the name is taken.
    /// The first sync is due at once.
    async fn create_repository(
        &self,
        repository: crate::kube::NewRepository,
        actor: &str,
    ) -> Result<crate::kube::Repository>;
    async fn get_repository(&self, namespace: &str, name: &str) -> Result<crate::kube::Repository>;
    /// `name` matches the resource name or the repository path, case-insensitively.
    async fn list_repositories(
        &self,
        namespace: Option<&str>,
        name: Option<&str>,
        page: crate::catalog::Page,
    ) -> Result<Listing<crate::kube::Repository>>;
    async fn delete_repository(&self, namespace: &str, name: &str, actor: &str) -> Result<crate::kube::Repository>;
    /// Queues a sync job for every repository whose sync is due and has none queued or running, and moves
    /// its next sync one interval on, in one transaction; several schedulers never queue one sync twice.
    /// Returns how many were queued.
    async fn enqueue_due_syncs(&self, now: crate::Timestamp) -> Result<usize>;
    /// Queues a sync now unless one is queued or running; true when one was queued.
    async fn trigger_sync(&self, namespace: &str, name: &str) -> Result<bool>;
    /// Records a sync's start (`Syncing`) or outcome for the repository with this id, when `worker` holds
    /// `job` and it is the repository's job; false, changing nothing, when not (a worker whose lease was
    /// taken over). The final outcomes (`Success`, `Failed`) also complete the job.
    #[allow(clippy::too_many_arguments)]
    async fn record_sync(
        &self,
        id: crate::kube::RepositoryId,
        job: JobId,
        worker: &str,
        status: crate::kube::SyncStatus,
        message: Option<&str>,
        manifest: Option<&crate::kube::SyncedManifest>,
    ) -> Result<bool>;
    /// A failed attempt that will be retried: the repository's status (`Syncing`, with `message`) and the
    /// job's requeue at `run_at` (with `error`), in one transaction. True when recorded; false, changing
    /// nothing, when `worker` no longer holds `job` or it is not the repository's job.
    async fn retry_sync(
        &self,
        id: crate::kube::RepositoryId,
        job: JobId,
        worker: &str,
        message: &str,
        error: &str,
        run_at: Timestamp,
    ) -> Result<bool>;
    /// The repository behind a sync job's payload, with its secret.
    async fn repository_by_id(
        &self,
        id: crate::kube::RepositoryId,
    ) -> Result<(crate::kube::Repository, crate::kube::RegistrySecret)>;
}

/// Liveness of the storage backend, for readiness probes.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;
    /// Whether the store's secret key opens the registry passwords it holds (`Unavailable` when it does
    /// not: the server then runs, and only what needs those passwords fails).
    async fn check_secret_key(&self) -> Result<()>;
}

/// The fleet's node inventories: each node's last report of its runtime's images.
#[async_trait]
pub trait InventoryStore: Send + Sync {
    /// Queues `node`'s next inventory job (job type [`crate::job::InventoryPayload::job_type`]) unless one
    /// is queued or running; true when it queued one.
    async fn enqueue_inventory(&self, node: &str) -> Result<bool>;
    /// Records a node's report (`Ok`: its images and runtime replace the last ones) or failure (`Err`: the
    /// reason, the last images kept), reporting every `interval_secs`. With `job`, the job (by id and the
    /// worker holding it) is removed in the same transaction; false, and nothing written, when that worker
    /// no longer holds it.
    async fn record_inventory(
        &self,
        job: Option<(JobId, &str)>,
        node: &str,
        interval_secs: i64,
        report: std::result::Result<crate::inventory::RuntimeReport, String>,
    ) -> Result<bool>;
    /// Every node, by name.
    async fn list_nodes(&self) -> Result<Vec<crate::inventory::NodeInventory>>;
    /// One node; `NotFound` (kind `node`) when it never reported.
    async fn get_node(&self, name: &str) -> Result<crate::inventory::NodeInventory>;
}

/// Vulnerability scans of the internal registry's artifacts, as queued jobs ([`crate::job::ScanPayload`]).
#[async_trait]
pub trait ScanQueue: Send + Sync {
    /// Queues a scan job due at `run_at`, with at most `max_attempts` attempts.
    async fn enqueue_scan(
        &self,
        payload: &crate::job::ScanPayload,
        run_at: crate::Timestamp,
        max_attempts: i32,
    ) -> Result<JobId>;
    /// Queues a read-only scan for each of at most `limit` catalog tags whose scan is `pending` (of the newest
    /// succeeded import of that tag), unless one is queued or running already: the scheduled refresh that
    /// catches scans which finished after their job gave up, or whose webhook never came. Answers how many.
    async fn queue_pending_scans(&self, limit: i64) -> Result<u64>;
}

/// Everything the HTTP layer needs from storage, as one object.
pub trait Store:
    CatalogStore
    + UserStore
    + ImportStore
    + JobQueue
    + KubeStore
    + HealthCheck
    + crate::station::SessionStore
    + crate::station::StationStore
    + InventoryStore
    + ScanQueue
    + crate::ops::OpsStore
    + crate::robot::RobotStore
{
}

impl<T> Store for T where
    T: CatalogStore
        + UserStore
        + ImportStore
        + JobQueue
        + KubeStore
        + HealthCheck
        + crate::station::SessionStore
        + crate::station::StationStore
        + InventoryStore
        + ScanQueue
        + crate::ops::OpsStore
        + crate::robot::RobotStore
{
}
