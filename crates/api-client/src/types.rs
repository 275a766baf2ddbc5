//! The API's requests and answers, as the server writes them (field names as on the wire).
//!
//! Answers tolerate fields they do not know, so a newer server does not break an older client.

use std::collections::BTreeMap;

pub use image_core::{Reference, catalog::ApprovalStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;

// ---- sign-in ------------------------------------------------------------------------------------------

/// The answer to a sign-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Token {
    pub token: String,
    /// RFC 3339; when the token stops working.
    pub expires_at: Option<String>,
}

// ---- catalog ------------------------------------------------------------------------------------------

/// Filters and page of `GET /catalog/api/v1/images`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImageQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ApprovalStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

/// One catalog image as listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageSummary {
    pub id: i64,
    pub image_name: String,
    pub registry: String,
    pub namespace: String,
    pub description: Option<String>,
    pub category: Option<String>,
    pub is_official: bool,
    pub approval_status: ApprovalStatus,
    pub approved_by: Option<String>,
    pub approved_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub tag_count: i64,
}

impl ImageSummary {
    /// `docker.io/library/redis`.
    pub fn full_name(&self) -> String {
        format!("{}/{}/{}", self.registry, self.namespace, self.image_name)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageList {
    pub images: Vec<ImageSummary>,
    pub total: i64,
}

/// One catalog image with its tags.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageDetails {
    pub id: i64,
    pub image_name: String,
    pub registry: String,
    pub namespace: String,
    pub description: Option<String>,
    pub category: Option<String>,
    pub is_official: bool,
    pub approval_status: ApprovalStatus,
    pub approved_by: Option<String>,
    pub approved_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tag {
    pub id: i64,
    pub image_id: i64,
    pub tag: String,
    pub digest: Option<String>,
    pub size_bytes: Option<i64>,
    pub architecture: Option<String>,
    pub os: Option<String>,
    pub pushed_at: Option<String>,
    pub is_recommended: bool,
    pub is_deprecated: bool,
    pub security_scan_status: Option<String>,
    pub vulnerabilities_count: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

/// A new catalog image (`POST /catalog/api/v1/images`); approved unless `approval_status` says otherwise.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewImage {
    pub image_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_official: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_status: Option<ApprovalStatus>,
}

impl NewImage {
    /// An image for a parsed reference's registry, namespace and name (its tag and digest are not used).
    pub fn for_reference(reference: &Reference) -> NewImage {
        NewImage {
            image_name: reference.name().to_owned(),
            registry: Some(reference.registry().to_owned()),
            namespace: reference.namespace().map(str::to_owned),
            ..NewImage::default()
        }
    }
}

/// A change to a catalog image: the fields that are `Some` change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImageUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_status: Option<ApprovalStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_official: Option<bool>,
}

impl ImageUpdate {
    /// Whether nothing would change; the server refuses such an update.
    pub fn is_empty(&self) -> bool {
        *self == ImageUpdate::default()
    }
}

/// The answer to an image's deletion: the image as it was.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeletedImage {
    pub message: String,
    pub image: ImageSummary,
}

/// A new tag of a catalog image (`POST /catalog/api/v1/images/{id}/tags`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewTag {
    pub tag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Recommending a tag makes the image's other tags not recommended.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_recommended: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_deprecated: bool,
}

/// A change to a tag: the fields that are `Some` change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TagUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_recommended: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_deprecated: Option<bool>,
}

impl TagUpdate {
    /// Whether nothing would change; the server refuses such an update.
    pub fn is_empty(&self) -> bool {
        *self == TagUpdate::default()
    }
}

/// The answer to a tag's deletion: the tag as it was.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeletedTag {
    pub message: String,
    pub tag: Tag,
}

/// Filters and page of `GET /catalog/api/v1/approval-requests`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ApprovalStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub id: i64,
    pub image_name: String,
    pub registry: String,
    pub namespace: String,
    pub tag: Option<String>,
    pub requested_by: String,
    pub requested_at: String,
    pub status: ApprovalStatus,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<String>,
    pub notes: Option<String>,
    pub rejection_reason: Option<String>,
    pub image_id: Option<i64>,
}

impl ApprovalRequest {
    /// `docker.io/library/traefik:v3.1`, or without the tag when the request names none.
    pub fn reference(&self) -> String {
        let name = format!("{}/{}/{}", self.registry, self.namespace, self.image_name);
        match &self.tag {
            Some(tag) => format!("{name}:{tag}"),
            None => name,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestList {
    pub requests: Vec<ApprovalRequest>,
    pub total: i64,
}

/// A new approval request: the image's name (its last path component), registry, namespace and tag;
/// [`NewApprovalRequest::for_reference`] fills them from a reference.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewApprovalRequest {
    pub image_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

impl NewApprovalRequest {
    /// A request for a parsed reference: its registry, namespace, name and tag.
    pub fn for_reference(reference: &Reference, notes: Option<String>) -> NewApprovalRequest {
        NewApprovalRequest {
            image_name: reference.name().to_owned(),
            registry: Some(reference.registry().to_owned()),
            namespace: reference.namespace().map(str::to_owned),
            tag: reference.tag().map(str::to_owned),
            notes,
        }
    }
}

/// What an admin may add when approving.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Approval {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The answer to an approval or a rejection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decided {
    pub message: String,
    pub request: ApprovalRequest,
    /// The catalog image an approval created or approved.
    #[serde(default)]
    pub image: Option<Value>,
}

/// The admission decision for one image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// The image (`docker.io/library/redis`) is approved and its tag listed; `warnings` (deprecated tag,
    /// …) do not stop it. The catalog's image and tag are in the reply's JSON.
    Allowed { image: String, tag: String, warnings: Vec<String> },
    /// The image may not run: `status` 403 (not approved) or 404 (tag not listed), with the server's words.
    Refused { status: u16, code: String, message: String },
}

impl Admission {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Admission::Allowed { .. })
    }
}

// ---- imports ------------------------------------------------------------------------------------------

/// `POST /api/v1/images:import`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportRequest {
    /// The source reference (`docker.io/library/alpine:3.20`).
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_registry: Option<String>,
    /// `linux/arm64`, …; every platform when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The registry secret that reads the source (admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_secret: Option<SecretName>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretName {
    pub name: String,
    pub namespace: String,
}

/// The answer to an import request that was not refused: `state` 1 (started) or 2 (that source is
/// already imported or being imported); either way `already_image_id` is the import's id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportAnswer {
    pub state: u8,
    pub message: String,
    pub already_image_id: i64,
}

impl ImportAnswer {
    /// The import this answer is about.
    pub fn id(&self) -> i64 {
        self.already_image_id
    }
}

/// Filters and page of `GET /api/v1/images`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportQuery {
    /// Counts from 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_num: Option<i64>,
    /// 1 to 100; 10 when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    #[serde(rename = "userName", skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
}

/// Imports grouped by internal repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportList {
    pub total_count: i64,
    pub images: Vec<ImportGroup>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportGroup {
    pub registry_host: String,
    pub repo: String,
    pub artifacts: Vec<Artifact>,
}

/// One platform of an import (or the import itself, before its platforms are known).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    pub id: i64,
    pub image_tag: String,
    pub description: Option<String>,
    pub created_time: String,
    pub user_name: String,
    /// `importing`, `ready` or `failed`.
    pub status: String,
    pub size: u64,
    pub arch: Option<String>,
    pub os: Option<String>,
    pub digest: Option<String>,
}

/// `GET /api/v1/images/{id}/importing-details`: the import's status and each layer's progress.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportDetails {
    /// By layer digest.
    pub layers_detail: BTreeMap<String, LayerDetail>,
    /// `importing`, `ready` or `failed`.
    pub status: String,
    pub attempts: i32,
    /// Why the import failed or is being retried.
    #[serde(default)]
    pub message: Option<String>,
}

impl ImportDetails {
    /// Whether the import has ended, either way.
    pub fn is_finished(&self) -> bool {
        self.status != "importing"
    }

    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }

    /// How many layers are completed, of how many known.
    pub fn layers_completed(&self) -> (usize, usize) {
        let done = self.layers_detail.values().filter(|l| l.status == "completed").count();
        (done, self.layers_detail.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerDetail {
    /// `waiting`, `downloading`, `completed` or `failed`.
    pub status: String,
    /// 0 to 100.
    pub progress: u8,
}

/// An import's progress in bytes (`GET /api/v1/images/{id}/progress`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportProgress {
    pub id: i64,
    pub source: String,
    pub target: String,
    /// `queued`, `running`, `succeeded`, `failed` or `canceled`.
    pub state: String,
    /// `importing`, `ready` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub digest: Option<String>,
    /// Bytes of all known blobs, and of those done.
    pub size: u64,
    pub done: u64,
    pub layers: Vec<LayerBytes>,
}

impl ImportProgress {
    /// Whether the import has ended, either way.
    pub fn is_finished(&self) -> bool {
        self.status != "importing"
    }

    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }

    /// How many layers are completed, of how many known.
    pub fn layers_completed(&self) -> (usize, usize) {
        (self.layers.iter().filter(|l| l.state == "completed").count(), self.layers.len())
    }
}

/// One blob of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerBytes {
    pub digest: String,
    pub size: u64,
    pub done: u64,
    /// `waiting`, `downloading`, `completed` or `failed`.
    pub state: String,
    /// `copied`, `skipped` or `mounted`, once it reached the target.
    #[serde(default)]
    pub via: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Canceled {
    pub message: String,
    pub id: i64,
    pub status: String,
}

// ---- kube-style resources -----------------------------------------------------------------------------

/// Page and search of a kube-style list.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ResourceQuery {
    /// Counts from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Filters registry secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Filters repositories by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceList<T> {
    pub items: Vec<T>,
    pub total_items: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySecret {
    pub metadata: ObjectMeta,
    pub spec: RegistrySecretSpec,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySecretSpec {
    pub domain: String,
    pub username: String,
    /// Sent when creating; never returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// `harbor`, `dockerhub`, `other`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
}

/// The answer to a secret's verification, or to a repository's sync request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub success: bool,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Repository {
    pub metadata: ObjectMeta,
    pub spec: RepositorySpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RepositoryStatus>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositorySpec {
    pub repository: String,
    pub tag: String,
    pub registry_ref: SecretName,
    /// Go durations: `1h`, `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryStatus {
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub sync_status: Option<String>,
    #[serde(default)]
    pub last_synced: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    /// The synced manifest: `digest`, `size`, `sizeBytes`, `created`, `architecture`, `os`, `layers`.
    #[serde(default)]
    pub manifest: Option<Value>,
}

// ---- users --------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub username: String,
    /// `admin` or `user`.
    pub role: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserList {
    pub users: Vec<User>,
}

/// A robot account of the built-in registry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Robot {
    pub name: String,
    /// What it signs in to the registry as: `robot$<name>`.
    pub username: String,
    pub repositories: Vec<String>,
    pub actions: Vec<String>,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub expired: bool,
    /// Only in the answer to its creation.
    #[serde(default)]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RobotList {
    pub robots: Vec<Robot>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    /// The token this request was made with.
    pub current: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenList {
    pub username: String,
    pub tokens: Vec<TokenInfo>,
}

/// `GET /images` (seed 004): the node's runtime images and the internal registry's tagged artifacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeImages {
    pub containerd_images: Vec<RuntimeImageRow>,
    pub harbor_images: Vec<RegistryImageRow>,
    /// One entry per source that failed; the other list is still there.
    pub errors: Vec<SourceError>,
}

/// One row of the runtime's images, as `crictl images` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeImageRow {
    /// The first 12 hex digits of the image id.
    pub image_id: String,
    pub repository: String,
    /// Human size (`117MB`).
    pub size: String,
    pub tag: String,
}

/// One tag of the internal registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryImageRow {
    pub digest: String,
    pub project: String,
    pub repository: String,
    #[serde(default)]
    pub size: Option<String>,
    pub tag: String,
}

/// A source of `GET /images` that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceError {
    /// `containerd` or `harbor`.
    pub source: String,
    pub reason: String,
}

/// `GET /api/v1/nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeList {
    pub nodes: Vec<Node>,
}

/// A node of the fleet, by its last report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    #[serde(default)]
    pub runtime_name: Option<String>,
    #[serde(default)]
    pub runtime_version: Option<String>,
    /// RFC 3339; none before the first report that worked.
    #[serde(default)]
    pub last_report_at: Option<String>,
    pub last_attempt_at: String,
    pub image_count: u64,
    pub interval_seconds: i64,
    /// No attempt for three intervals.
    pub stale: bool,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// `GET /api/v1/drift`: images running on nodes that the catalog does not approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub drift: Vec<DriftEntry>,
    /// The nodes looked at.
    pub nodes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftEntry {
    pub image: String,
    pub image_id: String,
    /// `not_approved`, `tag_not_listed` or `vulnerable`.
    pub reason: String,
    pub message: String,
    pub nodes: Vec<String>,
}

/// `GET /api/v1/harbor/stats` (seed 000): the internal registry's health and counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryStats {
    /// `healthy` or `unhealthy`.
    pub status: String,
    pub components: Vec<ComponentStatus>,
    pub private_project_count: u64,
    pub public_project_count: u64,
    pub private_repo_count: u64,
    pub public_repo_count: u64,
    /// Bytes.
    pub total_storage: u64,
    /// Why it is unhealthy, when it is.
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentStatus {
    pub name: String,
    pub status: String,
}
