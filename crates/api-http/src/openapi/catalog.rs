//! The catalog profile's answers (seed 002) and the probes', as schemas.
//!
//! The catalog answers with the domain's own types (`image_core::catalog`), which serialise themselves and
//! know nothing of schemas; these types mirror their wire shape, field for field, and are never built. Each
//! refuses fields it does not name, so that a field added to the domain's answer and not here fails the
//! property test that checks real answers against the document.

#![allow(dead_code)]

use schemars::JsonSchema;

/// `pending`, `approved`, `rejected` or `deprecated`.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
    Deprecated,
}

/// A catalog image.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct CatalogImage {
    id: i64,
    image_name: String,
    registry: String,
    namespace: String,
    description: Option<String>,
    category: Option<String>,
    is_official: bool,
    approval_status: ApprovalStatus,
    approved_by: Option<String>,
    /// RFC 3339, in milliseconds.
    approved_at: Option<String>,
    created_at: String,
    updated_at: String,
}

/// A catalog image in a listing, with its number of tags.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct ImageSummary {
    id: i64,
    image_name: String,
    registry: String,
    namespace: String,
    description: Option<String>,
    category: Option<String>,
    is_official: bool,
    approval_status: ApprovalStatus,
    approved_by: Option<String>,
    approved_at: Option<String>,
    created_at: String,
    updated_at: String,
    tag_count: i64,
}

/// A catalog image with its tags.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct ImageDetails {
    id: i64,
    image_name: String,
    registry: String,
    namespace: String,
    description: Option<String>,
    category: Option<String>,
    is_official: bool,
    approval_status: ApprovalStatus,
    approved_by: Option<String>,
    approved_at: Option<String>,
    created_at: String,
    updated_at: String,
    tags: Vec<Tag>,
}

/// A tag of a catalog image.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Tag {
    id: i64,
    image_id: i64,
    tag: String,
    /// `sha256:` and 64 hex digits.
    digest: Option<String>,
    size_bytes: Option<i64>,
    architecture: Option<String>,
    os: Option<String>,
    pushed_at: Option<String>,
    is_recommended: bool,
    is_deprecated: bool,
    security_scan_status: Option<String>,
    vulnerabilities_count: Option<i64>,
    created_at: String,
    updated_at: String,
}

/// A request for an image (and a tag) to be approved.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct ApprovalRequest {
    id: i64,
    image_name: String,
    registry: String,
    namespace: String,
    tag: Option<String>,
    requested_by: String,
    requested_at: String,
    status: ApprovalStatus,
    reviewed_by: Option<String>,
    reviewed_at: Option<String>,
    notes: Option<String>,
    rejection_reason: Option<String>,
    image_id: Option<i64>,
}

/// One entry of the audit trail.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct AuditEvent {
    id: i64,
    event_type: String,
    actor: String,
    occurred_at: String,
    image_id: Option<i64>,
    tag_id: Option<i64>,
    request_id: Option<i64>,
    /// What changed, by event type.
    details: serde_json::Value,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct ImageList {
    images: Vec<ImageSummary>,
    total: i64,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Categories {
    categories: Vec<Category>,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct Category {
    category: Option<String>,
    count: i64,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct ImageDeleted {
    message: String,
    image: CatalogImage,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct TagDeleted {
    message: String,
    tag: Tag,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct RequestList {
    requests: Vec<ApprovalRequest>,
    total: i64,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Approved {
    message: String,
    request: ApprovalRequest,
    image: CatalogImage,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Rejected {
    message: String,
    request: ApprovalRequest,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct EventList {
    events: Vec<AuditEvent>,
    total: i64,
}

/// The admission check's yes.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Admitted {
    allowed: bool,
    image: CatalogImage,
    tag: Tag,
    warnings: Vec<String>,
}

/// `/healthz`'s and `/readyz`'s answer.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Probe {
    /// `ok`, `ready` or `unavailable`.
    status: String,
    /// Why it is not ready.
    message: Option<String>,
}
