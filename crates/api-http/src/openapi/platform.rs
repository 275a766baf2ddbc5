//! The platform profile's answers (seed 000), as schemas: imports as the listing groups them, export
//! records, and a canceled import.
//!
//! The handlers build these as JSON or serialise the domain's `ExportRecord`; these types mirror that shape
//! field for field, are never built, and refuse fields they do not name.

#![allow(dead_code)]

use schemars::JsonSchema;

/// The seed's word for where an import stands: `importing` (queued or running), `ready` or `failed`
/// (failed or canceled).
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum ImportStatus {
    Importing,
    Ready,
    Failed,
}

/// Where an export stands, as the system that made it reports it.
#[derive(JsonSchema)]
enum ExportPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// `full`: an import holds the whole image.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum ImportInclude {
    Full,
}

/// `custom`: an exported image.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum ExportInclude {
    Custom,
}

/// `GET /api/v1/images`: grouped by repository, or with `flat=true` a flat list.
#[derive(JsonSchema)]
#[serde(untagged)]
pub(crate) enum ImportListing {
    Grouped(ImportGroups),
    Flat(Vec<FlatImport>),
}

/// A page of imports, grouped by registry and repository.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub(crate) struct ImportGroups {
    /// Imports that match, over every page.
    total_count: i64,
    images: Vec<ImportGroup>,
}

/// The imports of one repository.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
struct ImportGroup {
    registry_host: String,
    repo: String,
    artifacts: Vec<ImportArtifact>,
}

/// One platform of an import; an import whose platforms are not known yet is one artifact of size 0.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
struct ImportArtifact {
    image_tag: String,
    description: Option<String>,
    /// `2025-01-15T10:00:00`, UTC without the zone.
    created_time: String,
    user_name: String,
    status: ImportStatus,
    /// The import's id.
    id: i64,
    /// Config and layers, in bytes.
    size: u64,
    arch: Option<String>,
    os: Option<String>,
    /// `sha256:` and 64 hex digits.
    digest: Option<String>,
    include_type: ImportInclude,
}

/// An import in the flat listing.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct FlatImport {
    id: i64,
    /// `repo:tag`, the repository as clients of the internal registry name it.
    tag: String,
    description: Option<String>,
    /// Unix seconds.
    created_at: i64,
    created_by: String,
}

/// A page of export records, grouped by registry and repository.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub(crate) struct ExportGroups {
    total_count: i64,
    images: Vec<ExportGroup>,
}

/// The export records of one repository.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
struct ExportGroup {
    registry_host: String,
    repo: String,
    artifacts: Vec<ExportArtifact>,
}

#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
struct ExportArtifact {
    image_tag: String,
    description: Option<String>,
    /// RFC 3339, with milliseconds only when they are not zero.
    created_time: String,
    user_name: String,
    status: ExportPhase,
    include_type: ExportInclude,
}

/// An image a user exported, as recorded.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct ExportRecord {
    id: i64,
    registry_host: String,
    repository: String,
    tag: String,
    source: Option<String>,
    description: Option<String>,
    created_by: String,
    phase: ExportPhase,
    /// RFC 3339, in milliseconds.
    created_at: String,
}

/// A canceled import.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Canceled {
    /// `Image import canceled`.
    message: String,
    id: i64,
    status: ImportStatus,
}
