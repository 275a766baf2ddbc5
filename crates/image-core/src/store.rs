//! The storage traits that adapters implement.
//!
//! Every method that changes the catalog writes its audit event in the same transaction, and rules
//! that span rows (one recommended tag per image, a request decided once) are applied inside that
//! transaction, so they hold under concurrent requests.

use async_trait::async_trait;

use crate::{
    Result,
    auth::{Credentials, NewUser, User, UserId},
    catalog::{
        ApprovalRequest, ApprovalRequestFilter, ApprovalRequestId, CatalogImage, Decision, ImageFilter, ImageId,
        ImageSummary, ImageUpdate, NewApprovalRequest, NewImage, NewTag, Tag, TagId, TagUpdate,
    },
    event::{AuditEvent, EventFilter},
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

#[async_trait]
pub trait UserStore: Send + Sync {
    async fn count_users(&self) -> Result<i64>;
    /// Fails with `Conflict` when the name is taken.
    async fn create_user(&self, user: NewUser) -> Result<User>;
    async fn find_credentials(&self, username: &str) -> Result<Option<Credentials>>;
    /// Stores the hash of a new API token for a user.
    async fn create_token(&self, user_id: UserId, token_hash: &str, name: &str) -> Result<()>;
    /// The user a token hash belongs to, if the token exists and has not expired.
    async fn find_user_by_token(&self, token_hash: &str) -> Result<Option<User>>;
}

/// Liveness of the storage backend, for readiness probes.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    async fn ping(&self) -> Result<()>;
}

/// Everything the HTTP layer needs from storage, as one object.
pub trait Store: CatalogStore + UserStore + HealthCheck {}

impl<T: CatalogStore + UserStore + HealthCheck> Store for T {}
