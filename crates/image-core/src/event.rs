//! The audit trail: every change to the catalog writes an event, in the same transaction as the change.

use serde::Serialize;

use crate::{
    Timestamp,
    catalog::{ApprovalRequestId, ImageId, Page, TagId},
    time_fmt::serde_millis,
};

crate::id::id_type!(
    /// An audit event's id.
    EventId
);

/// The kinds of events, named as the catalog's clients know them.
pub mod kind {
    pub const IMAGE_ADDED: &str = "image.registry.added";
    pub const IMAGE_UPDATED: &str = "image.registry.updated";
    pub const IMAGE_DELETED: &str = "image.registry.deleted";
    pub const TAG_ADDED: &str = "image.tag.added";
    pub const TAG_UPDATED: &str = "image.tag.updated";
    pub const TAG_DELETED: &str = "image.tag.deleted";
    pub const APPROVAL_REQUESTED: &str = "image.approval.requested";
    pub const APPROVAL_APPROVED: &str = "image.approval.approved";
    pub const APPROVAL_REJECTED: &str = "image.approval.rejected";
    pub const EXPORT_UPDATED: &str = "image.export.updated";
    /// Details: `id`, `username`, `role`.
    pub const USER_CREATED: &str = "user.created";
    /// Details: `id`, `username`, `role`, `tokens_revoked`.
    pub const USER_DELETED: &str = "user.deleted";
    /// Details: `id`, `username`, `before`, `after` (the roles).
    pub const USER_ROLE_CHANGED: &str = "user.role.changed";
    /// Details: `id`, `username`, `tokens_revoked`; never the password or its hash.
    pub const USER_PASSWORD_CHANGED: &str = "user.password.changed";
    /// Details: the token's `id` and `name`, its owner's `user_id` and `username`; never the token or its hash.
    pub const TOKEN_REVOKED: &str = "user.token.revoked";
    /// Details: the robot's `id`, `name`, `repositories`, `actions` and `expires_at`; never its secret or hash.
    pub const ROBOT_CREATED: &str = "robot.created";
    /// Details: the robot's `id` and `name`.
    pub const ROBOT_DELETED: &str = "robot.deleted";
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub id: EventId,
    pub event_type: String,
    /// The user who made the change.
    pub actor: String,
    #[serde(with = "serde_millis")]
    pub occurred_at: Timestamp,
    pub image_id: Option<ImageId>,
    pub tag_id: Option<TagId>,
    pub request_id: Option<ApprovalRequestId>,
    /// What changed: the new state, and for updates the fields before and after.
    pub details: serde_json::Value,
}

/// Filters for reading the audit trail, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub event_type: Option<String>,
    pub image_id: Option<ImageId>,
    pub actor: Option<String>,
    pub page: Page,
}
