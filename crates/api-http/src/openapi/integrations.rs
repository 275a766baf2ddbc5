//! The integrations' answers, as schemas: the webhooks', the admission review's and the robot accounts'.
//!
//! Their handlers build them as JSON; these types mirror that shape field for field, are never built, and
//! refuse fields they do not name.

#![allow(dead_code)]

use schemars::JsonSchema;

/// What a Harbor event did.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct HarborAccepted {
    /// The event's type, as sent.
    #[serde(rename = "type")]
    event_type: String,
    /// Reads of scan overviews queued: scan events only.
    queued: u64,
    /// Catalog tags changed: `PUSH_ARTIFACT` and `DELETE_ARTIFACT` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    tags_changed: Option<u64>,
    /// Platform listing records changed: `PUSH_ARTIFACT` and `DELETE_ARTIFACT` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    artifacts_changed: Option<u64>,
}

/// What a registry notification changed.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct RegistryAccepted {
    /// Catalog tags changed.
    tags_changed: u64,
    /// Platform listing records changed.
    artifacts_changed: u64,
}

#[derive(JsonSchema)]
enum AdmissionApiVersion {
    #[serde(rename = "admission.k8s.io/v1")]
    V1,
}

#[derive(JsonSchema)]
enum AdmissionReviewKind {
    AdmissionReview,
}

/// The `AdmissionReview` answered.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub(crate) struct ReviewAnswer {
    api_version: AdmissionApiVersion,
    kind: AdmissionReviewKind,
    response: ReviewResponse,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct ReviewResponse {
    /// The request's `uid`.
    uid: String,
    allowed: bool,
    /// Why not: only when refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<ReviewStatus>,
    /// Only when there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<Vec<String>>,
}

#[derive(JsonSchema)]
enum Forbidden {
    Forbidden,
}

/// A refusal, as a Kubernetes `Status`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct ReviewStatus {
    /// 403.
    code: u16,
    reason: Forbidden,
    /// Each refused image and why.
    message: String,
    details: ReviewDetails,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct ReviewDetails {
    /// The reviewed object's kind.
    kind: String,
    /// One per refused image.
    causes: Vec<ReviewCause>,
}

/// Why an image may not run.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
enum RefusalReason {
    InvalidReference,
    NotApproved,
    TagNotListed,
    ScanFailed,
}

#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct ReviewCause {
    reason: RefusalReason,
    /// The field that names the image, such as `spec.containers[0].image`.
    field: String,
    message: String,
}

/// What a robot may do in a repository.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum RobotAction {
    Pull,
    Push,
    Delete,
}

/// Every robot account, expired ones included, by name.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct RobotList {
    robots: Vec<Robot>,
}

/// A robot account: never its secret.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
struct Robot {
    name: String,
    /// `robot$<name>`, what it signs in to the registry as.
    username: String,
    /// Patterns: `team/app`, `team/*`, `*`.
    repositories: Vec<String>,
    actions: Vec<RobotAction>,
    created_by: String,
    /// RFC 3339, in milliseconds.
    created_at: String,
    /// RFC 3339, in milliseconds; null for never.
    expires_at: Option<String>,
    expired: bool,
}

/// A new robot account, with its secret.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub(crate) struct NewRobot {
    name: String,
    username: String,
    repositories: Vec<String>,
    actions: Vec<RobotAction>,
    created_by: String,
    created_at: String,
    expires_at: Option<String>,
    expired: bool,
    /// The robot's password; it is shown this once.
    secret: String,
}
