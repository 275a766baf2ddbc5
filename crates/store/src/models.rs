//! Rows as stored, and their conversion to and from the domain's types.
//!
//! Nothing here depends on the backend: both store the same column types (see `schema`).

use diesel::prelude::*;
use image_core::{
    Digest, Reference, Timestamp,
    auth::{Role, User, UserId},
    catalog::{ApprovalRequest, ApprovalRequestId, ApprovalStatus, CatalogImage, ImageId, Tag, TagId},
    event::{AuditEvent, EventId},
    import::{ExportId, ExportRecord, ImportId, ImportJob, SecretRef},
    kube::{Provider, RegistrySecret, RegistrySecretId, Repository, RepositoryId, Secret, SyncStatus, VerifyStatus},
    store::{ClaimedJob, JobId},
};
use serde::de::DeserializeOwned;

use crate::{
    crypto::Sealer,
    error::{DbResult, corrupt},
    schema::{
        api_tokens, audit_events, exports, image_approval_requests, image_tags, images, imports, jobs,
        registry_secrets, repositories, users,
    },
};

/// A point in time as stored: microseconds since the Unix epoch, UTC.
pub(crate) type Micros = i64;

pub(crate) fn to_micros(at: Timestamp) -> Micros {
    // Microseconds since the epoch fit in an i64 for ±292,000 years; `time` stops at ±9999.
    (at.unix_timestamp_nanos() / 1_000) as i64
}

pub(crate) fn from_micros(us: Micros) -> DbResult<Timestamp> {
    Timestamp::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .map_err(|e| corrupt(format!("timestamp {us} out of range: {e}")))
}

fn from_micros_opt(us: Option<Micros>) -> DbResult<Option<Timestamp>> {
    us.map(from_micros).transpose()
}

/// The current time, at the precision the database keeps.
pub(crate) fn now_micros() -> Micros {
    to_micros(Timestamp::now_utc())
}

fn status(s: &str) -> DbResult<ApprovalStatus> {
    s.parse().map_err(|_| corrupt(format!("unknown approval status `{s}`")))
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = images)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct ImageRow {
    pub id: i64,
    pub image_name: String,
    pub registry: String,
    pub namespace: String,
    pub description: Option<String>,
    pub category: Option<String>,
    pub is_official: bool,
    pub approval_status: String,
    pub approved_by: Option<String>,
    pub approved_at: Option<Micros>,
    pub created_at: Micros,
    pub updated_at: Micros,
}

impl ImageRow {
    pub(crate) fn into_domain(self) -> DbResult<CatalogImage> {
        Ok(CatalogImage {
            id: ImageId::new(self.id),
            image_name: self.image_name,
            registry: self.registry,
            namespace: self.namespace,
            description: self.description,
            category: self.category,
            is_official: self.is_official,
            approval_status: status(&self.approval_status)?,
            approved_by: self.approved_by,
            approved_at: from_micros_opt(self.approved_at)?,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = images)]
pub(crate) struct NewImageRow<'a> {
    pub image_name: &'a str,
    pub registry: &'a str,
    pub namespace: &'a str,
    pub description: Option<&'a str>,
    pub category: Option<&'a str>,
    pub is_official: bool,
    pub approval_status: &'a str,
    pub approved_by: Option<&'a str>,
    pub approved_at: Option<Micros>,
    pub created_at: Micros,
    pub updated_at: Micros,
}

/// Every column of an image that changes after it is created.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = images, treat_none_as_null = true)]
pub(crate) struct ImageChanges<'a> {
    pub description: Option<&'a str>,
    pub category: Option<&'a str>,
    pub is_official: bool,
    pub approval_status: &'a str,
    pub approved_by: Option<&'a str>,
    pub approved_at: Option<Micros>,
    pub updated_at: Micros,
}

impl<'a> ImageChanges<'a> {
    pub(crate) fn of(image: &'a CatalogImage) -> ImageChanges<'a> {
        ImageChanges {
            description: image.description.as_deref(),
            category: image.category.as_deref(),
            is_official: image.is_official,
            approval_status: image.approval_status.as_str(),
            approved_by: image.approved_by.as_deref(),
            approved_at: image.approved_at.map(to_micros),
            updated_at: to_micros(image.updated_at),
        }
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = image_tags)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct TagRow {
    pub id: i64,
    pub image_id: i64,
    pub tag: String,
    pub digest: Option<String>,
    pub size_bytes: Option<i64>,
    pub architecture: Option<String>,
    pub os: Option<String>,
    pub pushed_at: Option<Micros>,
    pub is_recommended: bool,
    pub is_deprecated: bool,
    pub security_scan_status: Option<String>,
    pub vulnerabilities_count: Option<i64>,
    pub created_at: Micros,
    pub updated_at: Micros,
}

impl TagRow {
    pub(crate) fn into_domain(self) -> DbResult<Tag> {
        let digest = match self.digest {
            Some(d) => Some(d.parse::<Digest>().map_err(|e| corrupt(format!("tag {}: digest `{d}`: {e}", self.id)))?),
            None => None,
        };
        Ok(Tag {
            id: TagId::new(self.id),
            image_id: ImageId::new(self.image_id),
            tag: self.tag,
            digest,
            size_bytes: self.size_bytes,
            architecture: self.architecture,
            os: self.os,
            pushed_at: from_micros_opt(self.pushed_at)?,
            is_recommended: self.is_recommended,
            is_deprecated: self.is_deprecated,
            security_scan_status: self.security_scan_status,
            vulnerabilities_count: self.vulnerabilities_count,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = image_tags)]
pub(crate) struct NewTagRow<'a> {
    pub image_id: i64,
    pub tag: &'a str,
    pub digest: Option<&'a str>,
    pub size_bytes: Option<i64>,
    pub architecture: Option<&'a str>,
    pub os: Option<&'a str>,
    pub pushed_at: Option<Micros>,
    pub is_recommended: bool,
    pub is_deprecated: bool,
    pub security_scan_status: Option<&'a str>,
    pub vulnerabilities_count: Option<i64>,
    pub created_at: Micros,
    pub updated_at: Micros,
}

/// Every column of a tag that changes after it is created.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = image_tags, treat_none_as_null = true)]
pub(crate) struct TagChanges<'a> {
    pub digest: Option<&'a str>,
    pub size_bytes: Option<i64>,
    pub architecture: Option<&'a str>,
    pub os: Option<&'a str>,
    pub pushed_at: Option<Micros>,
    pub is_recommended: bool,
    pub is_deprecated: bool,
    pub security_scan_status: Option<&'a str>,
    pub vulnerabilities_count: Option<i64>,
    pub updated_at: Micros,
}

impl<'a> TagChanges<'a> {
    pub(crate) fn of(tag: &'a Tag) -> TagChanges<'a> {
        TagChanges {
            digest: tag.digest.as_ref().map(Digest::as_str),
            size_bytes: tag.size_bytes,
            architecture: tag.architecture.as_deref(),
            os: tag.os.as_deref(),
            pushed_at: tag.pushed_at.map(to_micros),
            is_recommended: tag.is_recommended,
            is_deprecated: tag.is_deprecated,
            security_scan_status: tag.security_scan_status.as_deref(),
            vulnerabilities_count: tag.vulnerabilities_count,
            updated_at: to_micros(tag.updated_at),
        }
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = image_approval_requests)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct RequestRow {
    pub id: i64,
    pub image_name: String,
    pub registry: String,
    pub namespace: String,
    pub tag: Option<String>,
    pub requested_by: String,
    pub requested_at: Micros,
    pub status: String,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<Micros>,
    pub notes: Option<String>,
    pub rejection_reason: Option<String>,
    pub image_id: Option<i64>,
}

impl RequestRow {
    pub(crate) fn into_domain(self) -> DbResult<ApprovalRequest> {
        Ok(ApprovalRequest {
            id: ApprovalRequestId::new(self.id),
            image_name: self.image_name,
            registry: self.registry,
            namespace: self.namespace,
            tag: self.tag,
            requested_by: self.requested_by,
            requested_at: from_micros(self.requested_at)?,
            status: status(&self.status)?,
            reviewed_by: self.reviewed_by,
            reviewed_at: from_micros_opt(self.reviewed_at)?,
            notes: self.notes,
            rejection_reason: self.rejection_reason,
            image_id: self.image_id.map(ImageId::new),
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = image_approval_requests)]
pub(crate) struct NewRequestRow<'a> {
    pub image_name: &'a str,
    pub registry: &'a str,
    pub namespace: &'a str,
    pub tag: Option<&'a str>,
    pub requested_by: &'a str,
    pub requested_at: Micros,
    pub status: &'a str,
    pub notes: Option<&'a str>,
}

/// The columns a decision sets.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = image_approval_requests, treat_none_as_null = true)]
pub(crate) struct Verdict<'a> {
    pub status: &'a str,
    pub reviewed_by: Option<&'a str>,
    pub reviewed_at: Option<Micros>,
    pub notes: Option<&'a str>,
    pub rejection_reason: Option<&'a str>,
    pub image_id: Option<i64>,
}

impl<'a> Verdict<'a> {
    pub(crate) fn of(request: &'a ApprovalRequest) -> Verdict<'a> {
        Verdict {
            status: request.status.as_str(),
            reviewed_by: request.reviewed_by.as_deref(),
            reviewed_at: request.reviewed_at.map(to_micros),
            notes: request.notes.as_deref(),
            rejection_reason: request.rejection_reason.as_deref(),
            image_id: request.image_id.map(ImageId::get),
        }
    }
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = audit_events)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct EventRow {
    pub id: i64,
    pub event_type: String,
    pub actor: String,
    pub occurred_at: Micros,
    pub image_id: Option<i64>,
    pub tag_id: Option<i64>,
    pub request_id: Option<i64>,
    pub details: String,
}

impl EventRow {
    pub(crate) fn into_domain(self) -> DbResult<AuditEvent> {
        let details = serde_json::from_str(&self.details)
            .map_err(|e| corrupt(format!("event {}: details are not JSON: {e}", self.id)))?;
        Ok(AuditEvent {
            id: EventId::new(self.id),
            event_type: self.event_type,
            actor: self.actor,
            occurred_at: from_micros(self.occurred_at)?,
            image_id: self.image_id.map(ImageId::new),
            tag_id: self.tag_id.map(TagId::new),
            request_id: self.request_id.map(ApprovalRequestId::new),
            details,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = audit_events)]
pub(crate) struct NewEventRow<'a> {
    pub event_type: &'a str,
    pub actor: &'a str,
    pub occurred_at: Micros,
    pub image_id: Option<i64>,
    pub tag_id: Option<i64>,
    pub request_id: Option<i64>,
    pub details: String,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = users)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct UserRow {
    pub id: i64,
    pub username: String,
    pub role: String,
    pub created_at: Micros,
}

impl UserRow {
    pub(crate) fn into_domain(self) -> DbResult<User> {
        let role: Role =
            self.role.parse().map_err(|_| corrupt(format!("user {}: unknown role `{}`", self.id, self.role)))?;
        Ok(User { id: UserId::new(self.id), username: self.username, role, created_at: from_micros(self.created_at)? })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub(crate) struct NewUserRow<'a> {
    pub username: &'a str,
    pub password_hash: &'a str,
    pub role: &'a str,
    pub created_at: Micros,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = api_tokens)]
pub(crate) struct NewTokenRow<'a> {
    pub user_id: i64,
    pub token_hash: &'a str,
    pub name: &'a str,
    pub created_at: Micros,
    pub expires_at: Option<Micros>,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = jobs)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct JobRow {
    pub id: i64,
    pub job_type: String,
    pub payload: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub lease_until: Option<Micros>,
}

impl JobRow {
    /// The job as its holder sees it; only a leased job has one.
    pub(crate) fn into_claimed(self) -> DbResult<ClaimedJob> {
        let lease_until =
            self.lease_until.ok_or_else(|| corrupt(format!("job {}: claimed without a lease", self.id)))?;
        let payload = serde_json::from_str(&self.payload)
            .map_err(|e| corrupt(format!("job {}: payload is not JSON: {e}", self.id)))?;
        Ok(ClaimedJob {
            id: JobId::new(self.id),
            job_type: self.job_type,
            payload,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            lease_until: from_micros(lease_until)?,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = jobs)]
pub(crate) struct NewJobRow<'a> {
    pub job_type: &'a str,
    pub payload: String,
    pub priority: i32,
    pub run_at: Micros,
    pub max_attempts: i32,
    pub created_at: Micros,
}

fn json_column<T: DeserializeOwned>(what: &str, id: i64, column: &str, text: &str) -> DbResult<T> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("{what} {id}: {column} `{text}`: {e}")))
}

fn reference_column(id: i64, column: &str, text: &str) -> DbResult<Reference> {
    Reference::parse(text).map_err(|e| corrupt(format!("import {id}: {column} `{text}`: {e}")))
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = imports)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct ImportRow {
    pub id: i64,
    pub source: String,
    pub target: String,
    pub platforms: String,
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub timeout_secs: i64,
    pub error: Option<String>,
    pub description: Option<String>,
    pub created_by: String,
    pub created_at: Micros,
    pub updated_at: Micros,
    pub started_at: Option<Micros>,
    pub finished_at: Option<Micros>,
    pub digest: Option<String>,
    pub artifacts: String,
    pub layers: String,
    pub job_id: Option<i64>,
    pub registry_secret_namespace: Option<String>,
    pub registry_secret_name: Option<String>,
}

impl ImportRow {
    pub(crate) fn into_domain(self) -> DbResult<ImportJob> {
        let id = self.id;
        let digest = match self.digest {
            Some(d) => Some(d.parse::<Digest>().map_err(|e| corrupt(format!("import {id}: digest `{d}`: {e}")))?),
            None => None,
        };
        Ok(ImportJob {
            id: ImportId::new(id),
            source: reference_column(id, "source", &self.source)?,
            target: reference_column(id, "target", &self.target)?,
            platforms: json_column("import", id, "platforms", &self.platforms)?,
            state: self.state.parse().map_err(|_| corrupt(format!("import {id}: unknown state `{}`", self.state)))?,
            attempts: self.attempts,
            max_attempts: self.max_attempts,
            timeout_secs: self.timeout_secs,
            error: self.error,
            description: self.description,
            created_by: self.created_by,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
            started_at: from_micros_opt(self.started_at)?,
            finished_at: from_micros_opt(self.finished_at)?,
            digest,
            artifacts: json_column("import", id, "artifacts", &self.artifacts)?,
            layers: json_column("import", id, "layers", &self.layers)?,
            registry_secret: match (self.registry_secret_namespace, self.registry_secret_name) {
                (Some(namespace), Some(name)) => Some(SecretRef { namespace, name }),
                _ => None,
            },
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = imports)]
pub(crate) struct NewImportRow<'a> {
    pub source: String,
    pub target: String,
    pub source_registry: &'a str,
    pub source_repository: &'a str,
    pub target_registry: &'a str,
    pub target_repository: &'a str,
    pub target_tag: Option<&'a str>,
    pub platforms: String,
    pub state: &'a str,
    pub max_attempts: i32,
    pub timeout_secs: i64,
    pub description: Option<&'a str>,
    pub created_by: &'a str,
    pub created_at: Micros,
    pub updated_at: Micros,
    pub registry_secret_namespace: Option<&'a str>,
    pub registry_secret_name: Option<&'a str>,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = exports)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct ExportRow {
    pub id: i64,
    pub registry_host: String,
    pub repository: String,
    pub tag: String,
    pub source: Option<String>,
    pub description: Option<String>,
    pub created_by: String,
    pub phase: String,
    pub created_at: Micros,
}

impl ExportRow {
    pub(crate) fn into_domain(self) -> DbResult<ExportRecord> {
        Ok(ExportRecord {
            id: ExportId::new(self.id),
            registry_host: self.registry_host,
            repository: self.repository,
            tag: self.tag,
            source: self.source,
            description: self.description,
            created_by: self.created_by,
            phase: self
                .phase
                .parse()
                .map_err(|_| corrupt(format!("export {}: unknown phase `{}`", self.id, self.phase)))?,
            created_at: from_micros(self.created_at)?,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = exports)]
pub(crate) struct NewExportRow<'a> {
    pub registry_host: &'a str,
    pub repository: &'a str,
    pub tag: &'a str,
    pub source: Option<&'a str>,
    pub description: Option<&'a str>,
    pub created_by: &'a str,
    pub phase: &'a str,
    pub created_at: Micros,
}

/// What progress reports write. A digest that is not known yet leaves the stored one as it is.
#[derive(Debug, AsChangeset)]
#[diesel(table_name = imports)]
pub(crate) struct ImportProgress<'a> {
    pub digest: Option<&'a str>,
    pub artifacts: String,
    pub layers: String,
    pub updated_at: Micros,
}

// ---------------------------------------------------------------------------------------------------
// Registry secrets and repositories

fn verify_status(id: i64, s: &str) -> DbResult<VerifyStatus> {
    match s {
        "success" => Ok(VerifyStatus::Success),
        "failed" => Ok(VerifyStatus::Failed),
        "untested" => Ok(VerifyStatus::Untested),
        other => Err(corrupt(format!("registry secret {id}: unknown verify status `{other}`"))),
    }
}

/// `SyncStatus` as stored (and as the kube API spells it).
pub(crate) fn sync_status_str(status: SyncStatus) -> &'static str {
    status.as_str()
}

fn sync_status(id: i64, s: &str) -> DbResult<SyncStatus> {
    SyncStatus::from_name(s).ok_or_else(|| corrupt(format!("repository {id}: unknown sync status `{s}`")))
}

/// A duration as stored: whole seconds, rounded up, so a timeout never shrinks.
pub(crate) fn to_secs(d: std::time::Duration) -> i64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn from_secs(id: i64, column: &str, secs: i64) -> DbResult<std::time::Duration> {
    u64::try_from(secs)
        .map(std::time::Duration::from_secs)
        .map_err(|_| corrupt(format!("repository {id}: {column} {secs} is negative")))
}

/// A registry secret as stored; its password is sealed (see `crypto`).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = registry_secrets)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct RegistrySecretRow {
    pub id: i64,
    pub namespace: String,
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub domain: String,
    pub username: String,
    pub password_sealed: String,
    pub provider: String,
    pub insecure: bool,
    pub ca_bundle: Option<String>,
    pub verify_status: String,
    pub verify_message: Option<String>,
    pub verify_timestamp: Option<Micros>,
    pub created_at: Micros,
}

impl RegistrySecretRow {
    /// The secret, with its password opened by `sealer`.
    pub(crate) fn into_domain(self, sealer: &Sealer) -> DbResult<RegistrySecret> {
        let password = sealer.open(&self.namespace, &self.name, &self.password_sealed)?;
        self.with_password(password)
    }

    /// The secret, with `password` in place of the sealed one.
    pub(crate) fn with_password(self, password: Secret) -> DbResult<RegistrySecret> {
        let id = self.id;
        let provider: Provider = self
            .provider
            .parse()
            .map_err(|_| corrupt(format!("registry secret {id}: unknown provider `{}`", self.provider)))?;
        Ok(RegistrySecret {
            id: RegistrySecretId::new(id),
            verify_status: verify_status(id, &self.verify_status)?,
            namespace: self.namespace,
            name: self.name,
            display_name: self.display_name,
            description: self.description,
            domain: self.domain,
            username: self.username,
            password,
            provider,
            insecure: self.insecure,
            ca_bundle: self.ca_bundle,
            verify_message: self.verify_message,
            verify_timestamp: from_micros_opt(self.verify_timestamp)?,
            created_at: from_micros(self.created_at)?,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = registry_secrets)]
pub(crate) struct NewRegistrySecretRow<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub display_name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub domain: &'a str,
    pub username: &'a str,
    pub password_sealed: &'a str,
    pub provider: &'a str,
    pub insecure: bool,
    pub ca_bundle: Option<&'a str>,
    pub verify_status: &'a str,
    pub created_at: Micros,
    pub updated_at: Micros,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = repositories)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub(crate) struct RepositoryRow {
    pub id: i64,
    pub namespace: String,
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub repository: String,
    pub tag: String,
    pub registry_ref_namespace: String,
    pub registry_ref_name: String,
    pub sync_interval_secs: i64,
    pub sync_timeout_secs: i64,
    pub retry_count: i32,
    pub sync_status: Option<String>,
    pub sync_message: Option<String>,
    pub last_synced: Option<Micros>,
    pub next_sync_at: Micros,
    pub manifest: Option<String>,
    pub job_id: Option<i64>,
    pub created_at: Micros,
}

impl RepositoryRow {
    /// The repository; `domain` is its registry secret's.
    pub(crate) fn into_domain(self, domain: Option<String>) -> DbResult<Repository> {
        let id = self.id;
        let manifest = match &self.manifest {
            Some(text) => Some(json_column("repository", id, "manifest", text)?),
            None => None,
        };
        Ok(Repository {
            id: RepositoryId::new(id),
            sync_interval: from_secs(id, "sync_interval_secs", self.sync_interval_secs)?,
            sync_timeout: from_secs(id, "sync_timeout_secs", self.sync_timeout_secs)?,
            retry_count: u32::try_from(self.retry_count)
                .map_err(|_| corrupt(format!("repository {id}: retry_count {} is negative", self.retry_count)))?,
            sync_status: self.sync_status.as_deref().map(|s| sync_status(id, s)).transpose()?,
            namespace: self.namespace,
            name: self.name,
            display_name: self.display_name,
            description: self.description,
            repository: self.repository,
            tag: self.tag,
            registry_ref_namespace: self.registry_ref_namespace,
            registry_ref_name: self.registry_ref_name,
            domain,
            sync_message: self.sync_message,
            last_synced: from_micros_opt(self.last_synced)?,
            next_sync_at: from_micros(self.next_sync_at)?,
            manifest,
            created_at: from_micros(self.created_at)?,
        })
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = repositories)]
pub(crate) struct NewRepositoryRow<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub display_name: Option<&'a str>,
    pub description: Option<&'a str>,
    pub repository: &'a str,
    pub tag: &'a str,
    pub registry_ref_namespace: &'a str,
    pub registry_ref_name: &'a str,
    pub sync_interval_secs: i64,
    pub sync_timeout_secs: i64,
    pub retry_count: i32,
    pub next_sync_at: Micros,
    pub created_at: Micros,
    pub updated_at: Micros,
}
