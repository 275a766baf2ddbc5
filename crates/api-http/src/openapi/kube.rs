//! The kube-style resources' answers (seed 001), as schemas: `RegistrySecret` and `Repository` objects,
//! their lists, and the answers of a verify and a sync.
//!
//! The handlers build these objects as JSON from the domain's `RegistrySecret` and `Repository`; these types
//! mirror that shape field for field, are never built, and refuse fields they do not name. Annotations are
//! the `theriseunion.io/…` keys the handlers write, each only when it has a value unless said.

#![allow(dead_code)]

use schemars::JsonSchema;

/// `image.theriseunion.io/v1alpha1`.
#[derive(JsonSchema)]
enum KubeApiVersion {
    #[serde(rename = "image.theriseunion.io/v1alpha1")]
    V1alpha1,
}

#[derive(JsonSchema)]
enum RegistrySecretKind {
    RegistrySecret,
}

#[derive(JsonSchema)]
enum RegistrySecretListKind {
    RegistrySecretList,
}

#[derive(JsonSchema)]
enum RepositoryKind {
    Repository,
}

#[derive(JsonSchema)]
enum RepositoryListKind {
    RepositoryList,
}

/// Who runs the registry.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Provider {
    Harbor,
    Dockerhub,
    Aliyun,
    Other,
}

/// The outcome of the last credential check.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum VerifyStatus {
    Success,
    Failed,
    Untested,
}

/// Where a repository's sync stands.
#[derive(JsonSchema)]
enum SyncStatus {
    Syncing,
    Success,
    Failed,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// A registry's credentials: never the password.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub(crate) struct RegistrySecret {
    api_version: KubeApiVersion,
    kind: RegistrySecretKind,
    metadata: RegistrySecretMetadata,
    spec: RegistrySecretSpec,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
struct RegistrySecretMetadata {
    name: String,
    namespace: String,
    /// RFC 3339, with milliseconds only when they are not zero.
    creation_timestamp: String,
    annotations: RegistrySecretAnnotations,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct RegistrySecretAnnotations {
    #[serde(rename = "theriseunion.io/display-name", skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(rename = "theriseunion.io/description", skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    /// Always there, as in `spec`.
    #[serde(rename = "theriseunion.io/domain")]
    domain: String,
    /// Always there, as in `spec`.
    #[serde(rename = "theriseunion.io/username")]
    username: String,
    /// Always there, as in `spec`.
    #[serde(rename = "theriseunion.io/provider")]
    provider: Provider,
    /// Always there.
    #[serde(rename = "theriseunion.io/verify-status")]
    verify_status: VerifyStatus,
    /// What the last check said.
    #[serde(rename = "theriseunion.io/verify-message", skip_serializing_if = "Option::is_none")]
    verify_message: Option<String>,
    /// When the last check ran: RFC 3339.
    #[serde(rename = "theriseunion.io/verify-timestamp", skip_serializing_if = "Option::is_none")]
    verify_timestamp: Option<String>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
struct RegistrySecretSpec {
    /// `host[:port]` of the registry.
    domain: String,
    username: String,
    provider: Provider,
    /// The registry is reached over plain HTTP; there only when true.
    #[serde(default, skip_serializing_if = "is_false")]
    insecure: bool,
    /// PEM certificate authorities trusted for this registry.
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_bundle: Option<String>,
}

/// A page of registry secrets.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub(crate) struct RegistrySecretList {
    api_version: KubeApiVersion,
    kind: RegistrySecretListKind,
    items: Vec<RegistrySecret>,
    /// Secrets that match, over every page.
    total_items: i64,
}

/// A tag kept in sync into the internal registry.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub(crate) struct Repository {
    api_version: KubeApiVersion,
    kind: RepositoryKind,
    metadata: RepositoryMetadata,
    spec: RepositorySync,
    status: RepositoryStatus,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
struct RepositoryMetadata {
    name: String,
    namespace: String,
    /// RFC 3339, with milliseconds only when they are not zero.
    creation_timestamp: String,
    annotations: RepositoryAnnotations,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct RepositoryAnnotations {
    #[serde(rename = "theriseunion.io/display-name", skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(rename = "theriseunion.io/description", skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

/// What is kept in sync, from where, and how often.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
struct RepositorySync {
    /// Path in the source registry: `library/nginx`.
    repository: String,
    tag: String,
    registry_ref: RepositoryRegistryRef,
    /// A Go duration: `1h`, `1h30m`.
    sync_interval: String,
    /// A Go duration.
    sync_timeout: String,
    retry_count: u32,
}

/// The registry secret a repository is read with.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct RepositoryRegistryRef {
    name: String,
    namespace: String,
}

/// What the last sync found; empty before the first.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
struct RepositoryStatus {
    /// The source registry's `host[:port]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sync_status: Option<SyncStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    /// RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    last_synced: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manifest: Option<RepositoryManifest>,
}

/// The synced manifest's platform and size.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
struct RepositoryManifest {
    #[serde(skip_serializing_if = "Option::is_none")]
    architecture: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    os: Option<String>,
    /// `142MB`, in decimal units as `docker images` prints them.
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    /// The layers' digests.
    layers: Vec<String>,
}

/// A page of repositories.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub(crate) struct RepositoryList {
    api_version: KubeApiVersion,
    kind: RepositoryListKind,
    items: Vec<Repository>,
    /// Repositories that match, over every page.
    total_items: i64,
}

/// Whether the registry took the credentials, and what it said.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Verified {
    success: bool,
    message: String,
}

/// A sync asked for.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct SyncQueued {
    /// Always true.
    success: bool,
    /// `Sync task submitted`, or `A sync is already queued or running`.
    message: String,
}
