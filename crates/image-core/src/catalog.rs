//! The approved-image catalog: images, their tags, and the approval workflow.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{Digest, Error, Result, Timestamp, time_fmt::serde_millis, validate};

crate::id::id_type!(
    /// A catalog image's id.
    ///
    /// An image's id and a tag's are of different types, so they cannot be passed swapped:
    ///
    /// ```
    /// # use image_core::{catalog::{ImageId, TagId}, store::CatalogStore};
    /// async fn drop_tag(store: &dyn CatalogStore, image: ImageId, tag: TagId) {
    ///     let _ = store.delete_tag(image, tag, "admin").await;
    /// }
    /// ```
    ///
    /// ```compile_fail
    /// # use image_core::{catalog::{ImageId, TagId}, store::CatalogStore};
    /// async fn drop_tag(store: &dyn CatalogStore, image: ImageId, tag: TagId) {
    ///     let _ = store.delete_tag(tag, image, "admin").await;
    /// }
    /// ```
    ImageId
);
crate::id::id_type!(
    /// A tag's id.
    TagId
);
crate::id::id_type!(
    /// An approval request's id.
    ApprovalRequestId
);

/// Where an image or a request stands in the approval workflow.
///
/// A request moves `pending → approved` or `pending → rejected`, once.
/// An image's status may be set by an admin to any value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Rejected,
}

impl ApprovalStatus {
    pub const ALL: [ApprovalStatus; 3] = [ApprovalStatus::Pending, ApprovalStatus::Approved, ApprovalStatus::Rejected];

    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
        }
    }
}

impl fmt::Display for ApprovalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ApprovalStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<ApprovalStatus> {
        ApprovalStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| Error::invalid("status", format!("`{s}` is not one of pending, approved, rejected")))
    }
}

/// An image in the catalog, such as `docker.io/library/redis`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogImage {
    pub id: ImageId,
    pub image_name: String,
    pub registry: String,
    pub namespace: String,
    pub description: Option<String>,
    pub category: Option<String>,
    pub is_official: bool,
    pub approval_status: ApprovalStatus,
    pub approved_by: Option<String>,
    #[serde(with = "serde_millis::option")]
    pub approved_at: Option<Timestamp>,
    #[serde(with = "serde_millis")]
    pub created_at: Timestamp,
    #[serde(with = "serde_millis")]
    pub updated_at: Timestamp,
}

impl CatalogImage {
    /// The repository path inside its registry: `library/redis`, or `app` when there is no namespace.
    pub fn repository(&self) -> String {
        if self.namespace.is_empty() {
            self.image_name.clone()
        } else {
            format!("{}/{}", self.namespace, self.image_name)
        }
    }
}

/// A catalog image with the number of its tags, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageSummary {
    #[serde(flatten)]
    pub image: CatalogImage,
    pub tag_count: i64,
}

/// A tag (version) of a catalog image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tag {
    pub id: TagId,
    pub image_id: ImageId,
    pub tag: String,
    pub digest: Option<Digest>,
    pub size_bytes: Option<i64>,
    pub architecture: Option<String>,
    pub os: Option<String>,
    #[serde(with = "serde_millis::option")]
    pub pushed_at: Option<Timestamp>,
    pub is_recommended: bool,
    pub is_deprecated: bool,
    pub security_scan_status: Option<String>,
    pub vulnerabilities_count: Option<i64>,
    #[serde(with = "serde_millis")]
    pub created_at: Timestamp,
    #[serde(with = "serde_millis")]
    pub updated_at: Timestamp,
}

/// Filters for listing catalog images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFilter {
    pub status: Option<ApprovalStatus>,
    pub category: Option<String>,
    /// Case-insensitive substring of the image name or the description.
    pub search: Option<String>,
    /// Only images after this id: a cursor (the last id of the previous page) that reaches any page as
    /// fast as the first, where an `offset` walks every image it skips. `page`'s offset counts from it.
    pub after: Option<ImageId>,
    pub page: Page,
}

/// A window into a listing: `limit` in `1..=MAX_LIMIT`, `offset` not negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    limit: i64,
    offset: i64,
}

impl Page {
    pub const DEFAULT_LIMIT: i64 = 100;
    pub const MAX_LIMIT: i64 = 1000;

    /// A validated page: `limit` in `1..=MAX_LIMIT`, `offset` not negative.
    pub fn new(limit: Option<i64>, offset: Option<i64>) -> Result<Page> {
        let limit = limit.unwrap_or(Page::DEFAULT_LIMIT);
        let offset = offset.unwrap_or(0);
        if !(1..=Page::MAX_LIMIT).contains(&limit) {
            return Err(Error::invalid("limit", format!("must be between 1 and {}, got {limit}", Page::MAX_LIMIT)));
        }
        if offset < 0 {
            return Err(Error::invalid("offset", format!("must not be negative, got {offset}")));
        }
        Ok(Page { limit, offset })
    }

    /// How many items at most.
    pub fn limit(self) -> i64 {
        self.limit
    }

    /// How many items to skip.
    pub fn offset(self) -> i64 {
        self.offset
    }
}

impl Default for Page {
    fn default() -> Page {
        Page { limit: Page::DEFAULT_LIMIT, offset: 0 }
    }
}

/// A new catalog image, validated: built by [`NewImage::new`] only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImage {
    image_name: String,
    registry: String,
    namespace: String,
    description: Option<String>,
    category: Option<String>,
    is_official: bool,
    approval_status: ApprovalStatus,
}

pub const MAX_DESCRIPTION_LEN: usize = 2000;
pub const MAX_CATEGORY_LEN: usize = 64;

impl NewImage {
    /// Validates and normalises a new image. The registry defaults to `docker.io`, where the namespace
    /// defaults to `library`; elsewhere an absent namespace means the image sits at the registry's root.
    pub fn new(
        image_name: &str,
        registry: Option<&str>,
        namespace: Option<&str>,
        description: Option<String>,
        category: Option<String>,
        is_official: bool,
        approval_status: ApprovalStatus,
    ) -> Result<NewImage> {
        let registry = normalise_registry(registry.unwrap_or(crate::DEFAULT_REGISTRY));
        validate::registry_host(&registry).map_err(|e| Error::invalid("registry", e))?;
        validate::path_component(image_name).map_err(|e| Error::invalid("image_name", e))?;
        let namespace = match namespace {
            Some(ns) => ns.to_owned(),
            None if registry == crate::DEFAULT_REGISTRY => "library".to_owned(),
            None => String::new(),
        };
        if !namespace.is_empty() {
            validate::repository_path(&namespace).map_err(|e| Error::invalid("namespace", e))?;
        } else if registry == crate::DEFAULT_REGISTRY {
            return Err(Error::invalid("namespace", "must not be empty on docker.io"));
        }
        let repository_len = namespace.len() + 1 + image_name.len();
        if repository_len > validate::MAX_REPOSITORY_LEN {
            return Err(Error::invalid(
                "image_name",
                format!("namespace and name together are {repository_len} characters; at most 255 are allowed"),
            ));
        }
        Ok(NewImage {
            image_name: image_name.to_owned(),
            registry,
            namespace,
            description: check_description(description)?,
            category: check_category(category)?,
            is_official,
            approval_status,
        })
    }

    /// An image named by a parsed reference's parts, which already keep the rules of [`NewImage::new`].
    pub(crate) fn from_reference_parts(
        image_name: &str,
        registry: &str,
        namespace: &str,
        is_official: bool,
        approval_status: ApprovalStatus,
    ) -> NewImage {
        NewImage {
            image_name: image_name.to_owned(),
            registry: registry.to_owned(),
            namespace: namespace.to_owned(),
            description: None,
            category: None,
            is_official,
            approval_status,
        }
    }

    pub fn image_name(&self) -> &str {
        &self.image_name
    }

    /// The registry host, normalised (`docker.io` for Docker Hub's other names, lowercase).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The path between the registry and the name; empty for an image at the registry's root.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    pub fn category(&self) -> Option<&str> {
        self.category.as_deref()
    }

    pub fn is_official(&self) -> bool {
        self.is_official
    }

    pub fn approval_status(&self) -> ApprovalStatus {
        self.approval_status
    }
}

/// Changes to a catalog image; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageUpdate {
    pub description: Option<Option<String>>,
    pub category: Option<Option<String>>,
    pub approval_status: Option<ApprovalStatus>,
    pub is_official: Option<bool>,
}

impl ImageUpdate {
    pub fn validated(self) -> Result<ImageUpdate> {
        Ok(ImageUpdate {
            description: self.description.map(check_description).transpose()?,
            category: self.category.map(check_category).transpose()?,
            ..self
        })
    }

    pub fn is_empty(&self) -> bool {
        self == &ImageUpdate::default()
    }
}

/// A new tag of an image, validated: [`NewTag::new`] checks the name and each `with_…` setter the value
/// it sets, so every `NewTag` keeps the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTag {
    tag: String,
    digest: Option<Digest>,
    size_bytes: Option<i64>,
    architecture: Option<String>,
    os: Option<String>,
    pushed_at: Option<Timestamp>,
    is_recommended: bool,
    is_deprecated: bool,
    security_scan_status: Option<String>,
    vulnerabilities_count: Option<i64>,
}

impl NewTag {
    /// A tag named `tag` and nothing else known about it: neither recommended nor deprecated.
    pub fn new(tag: impl Into<String>) -> Result<NewTag> {
        let tag = tag.into();
        validate::tag(&tag).map_err(|e| Error::invalid("tag", e))?;
        Ok(NewTag::named(tag))
    }

    /// A tag whose name comes from a parsed reference, which keeps the rule of [`NewTag::new`].
    pub(crate) fn named(tag: String) -> NewTag {
        NewTag {
            tag,
            digest: None,
            size_bytes: None,
            architecture: None,
            os: None,
            pushed_at: None,
            is_recommended: false,
            is_deprecated: false,
            security_scan_status: None,
            vulnerabilities_count: None,
        }
    }

    pub fn with_digest(self, digest: Option<Digest>) -> NewTag {
        NewTag { digest, ..self }
    }

    /// Fails when negative.
    pub fn with_size_bytes(self, size_bytes: Option<i64>) -> Result<NewTag> {
        check_non_negative("size_bytes", size_bytes)?;
        Ok(NewTag { size_bytes, ..self })
    }

    /// Fails when negative.
    pub fn with_vulnerabilities_count(self, vulnerabilities_count: Option<i64>) -> Result<NewTag> {
        check_non_negative("vulnerabilities_count", vulnerabilities_count)?;
        Ok(NewTag { vulnerabilities_count, ..self })
    }

    /// Fails unless a lowercase token of at most 32 characters (`amd64`).
    pub fn with_architecture(self, architecture: Option<String>) -> Result<NewTag> {
        check_token("architecture", architecture.as_deref(), 32)?;
        Ok(NewTag { architecture, ..self })
    }

    /// Fails unless a lowercase token of at most 32 characters (`linux`).
    pub fn with_os(self, os: Option<String>) -> Result<NewTag> {
        check_token("os", os.as_deref(), 32)?;
        Ok(NewTag { os, ..self })
    }

    /// Fails unless a lowercase token of at most 32 characters.
    pub fn with_security_scan_status(self, security_scan_status: Option<String>) -> Result<NewTag> {
        check_token("security_scan_status", security_scan_status.as_deref(), 32)?;
        Ok(NewTag { security_scan_status, ..self })
    }

    pub fn with_pushed_at(self, pushed_at: Option<Timestamp>) -> NewTag {
        NewTag { pushed_at, ..self }
    }

    pub fn with_recommended(self, is_recommended: bool) -> NewTag {
        NewTag { is_recommended, ..self }
    }

    pub fn with_deprecated(self, is_deprecated: bool) -> NewTag {
        NewTag { is_deprecated, ..self }
    }

    /// What a finished import found, taken as the copied manifest states it (see
    /// [`crate::rules::ImportedTag::new_tag`]).
    pub(crate) fn with_copied(
        self,
        digest: Digest,
        size_bytes: Option<i64>,
        architecture: Option<String>,
        os: Option<String>,
        pushed_at: Timestamp,
    ) -> NewTag {
        NewTag { digest: Some(digest), size_bytes, architecture, os, pushed_at: Some(pushed_at), ..self }
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    pub fn size_bytes(&self) -> Option<i64> {
        self.size_bytes
    }

    pub fn architecture(&self) -> Option<&str> {
        self.architecture.as_deref()
    }

    pub fn os(&self) -> Option<&str> {
        self.os.as_deref()
    }

    pub fn pushed_at(&self) -> Option<Timestamp> {
        self.pushed_at
    }

    pub fn is_recommended(&self) -> bool {
        self.is_recommended
    }

    pub fn is_deprecated(&self) -> bool {
        self.is_deprecated
    }

    pub fn security_scan_status(&self) -> Option<&str> {
        self.security_scan_status.as_deref()
    }

    pub fn vulnerabilities_count(&self) -> Option<i64> {
        self.vulnerabilities_count
    }
}

/// Changes to a tag; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagUpdate {
    pub digest: Option<Option<Digest>>,
    pub size_bytes: Option<Option<i64>>,
    pub architecture: Option<Option<String>>,
    pub os: Option<Option<String>>,
    pub is_recommended: Option<bool>,
    pub is_deprecated: Option<bool>,
    pub security_scan_status: Option<Option<String>>,
    pub vulnerabilities_count: Option<Option<i64>>,
}

impl TagUpdate {
    pub fn validated(self) -> Result<TagUpdate> {
        check_non_negative("size_bytes", self.size_bytes.flatten())?;
        check_non_negative("vulnerabilities_count", self.vulnerabilities_count.flatten())?;
        check_token("architecture", self.architecture.as_ref().and_then(|v| v.as_deref()), 32)?;
        check_token("os", self.os.as_ref().and_then(|v| v.as_deref()), 32)?;
        check_token("security_scan_status", self.security_scan_status.as_ref().and_then(|v| v.as_deref()), 32)?;
        Ok(self)
    }

    pub fn is_empty(&self) -> bool {
        self == &TagUpdate::default()
    }
}

/// A request to add an image to the catalog, reviewed by an admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalRequest {
    pub id: ApprovalRequestId,
    pub image_name: String,
    pub registry: String,
    pub namespace: String,
    pub tag: Option<String>,
    pub requested_by: String,
    #[serde(with = "serde_millis")]
    pub requested_at: Timestamp,
    pub status: ApprovalStatus,
    pub reviewed_by: Option<String>,
    #[serde(with = "serde_millis::option")]
    pub reviewed_at: Option<Timestamp>,
    pub notes: Option<String>,
    pub rejection_reason: Option<String>,
    /// The catalog image this request created or approved, once approved.
    pub image_id: Option<ImageId>,
}

impl ApprovalRequest {
    /// Checks that a request in this state may be decided; only pending requests may.
    pub fn check_decidable(&self) -> Result<()> {
        match self.status {
            ApprovalStatus::Pending => Ok(()),
            done => Err(Error::conflict(format!("approval request {} is already {done}", self.id))),
        }
    }
}

/// A new approval request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApprovalRequest {
    pub image_name: String,
    pub registry: String,
    pub namespace: String,
    pub tag: Option<String>,
    pub notes: Option<String>,
}

impl NewApprovalRequest {
    pub fn new(
        image_name: &str,
        registry: Option<&str>,
        namespace: Option<&str>,
        tag: Option<String>,
        notes: Option<String>,
    ) -> Result<NewApprovalRequest> {
        // The same rules as for a catalog image, so that approving the request cannot fail validation.
        let image = NewImage::new(image_name, registry, namespace, None, None, false, ApprovalStatus::Pending)?;
        if let Some(tag) = &tag {
            validate::tag(tag).map_err(|e| Error::invalid("tag", e))?;
        }
        Ok(NewApprovalRequest {
            image_name: image.image_name,
            registry: image.registry,
            namespace: image.namespace,
            tag,
            notes: check_text("notes", notes)?,
        })
    }
}

/// An admin's decision on an approval request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Approve: create the image (approved) or mark the existing one approved.
    Approve { notes: Option<String>, category: Option<String>, description: Option<String> },
    /// Reject with a reason the requester will read.
    Reject { reason: String, notes: Option<String> },
}

impl Decision {
    pub fn validated(self) -> Result<Decision> {
        Ok(match self {
            Decision::Approve { notes, category, description } => Decision::Approve {
                notes: check_text("notes", notes)?,
                category: check_category(category)?,
                description: check_description(description)?,
            },
            Decision::Reject { reason, notes } => {
                if reason.trim().is_empty() {
                    return Err(Error::invalid("reason", "a rejection needs a reason"));
                }
                validate::text(&reason, MAX_DESCRIPTION_LEN).map_err(|e| Error::invalid("reason", e))?;
                Decision::Reject { reason, notes: check_text("notes", notes)? }
            }
        })
    }
}

/// Filters for listing approval requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalRequestFilter {
    pub status: Option<ApprovalStatus>,
    pub page: Page,
}

/// `index.docker.io` and `registry-1.docker.io` are `docker.io`; hosts are case-insensitive.
pub fn normalise_registry(registry: &str) -> String {
    let lower = registry.to_ascii_lowercase();
    match lower.as_str() {
        "index.docker.io" | "registry-1.docker.io" => crate::DEFAULT_REGISTRY.to_owned(),
        _ => lower,
    }
}

fn check_description(description: Option<String>) -> Result<Option<String>> {
    check_text("description", description)
}

fn check_text(field: &str, text: Option<String>) -> Result<Option<String>> {
    if let Some(t) = &text {
        validate::text(t, MAX_DESCRIPTION_LEN).map_err(|e| Error::invalid(field, e))?;
    }
    Ok(text)
}

fn check_category(category: Option<String>) -> Result<Option<String>> {
    check_token("category", category.as_deref(), MAX_CATEGORY_LEN)?;
    Ok(category)
}

fn check_token(field: &str, value: Option<&str>, max: usize) -> Result<()> {
    match value {
        Some(v) => validate::token(v, max).map_err(|e| Error::invalid(field, e)),
        None => Ok(()),
    }
}

fn check_non_negative(field: &str, value: Option<i64>) -> Result<()> {
    match value {
        Some(v) if v < 0 => Err(Error::invalid(field, format!("must not be negative, got {v}"))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, registry: Option<&str>, namespace: Option<&str>) -> Result<NewImage> {
        NewImage::new(name, registry, namespace, None, None, false, ApprovalStatus::Approved)
    }

    #[test]
    fn new_image_defaults_to_docker_hub_library() {
        let img = image("redis", None, None).unwrap();
        assert_eq!((img.registry(), img.namespace()), ("docker.io", "library"));
        let img = image("app", Some("Registry.Example.com:5000"), None).unwrap();
        assert_eq!((img.registry(), img.namespace()), ("registry.example.com:5000", ""));
        let img = image("x", Some("index.docker.io"), Some("team/sub")).unwrap();
        assert_eq!((img.registry(), img.namespace()), ("docker.io", "team/sub"));
    }

    #[test]
    fn new_image_rejects_bad_names() {
        let err = |r: Result<NewImage>| match r {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected invalid, got {other:?}"),
        };
        assert_eq!(err(image("Redis", None, None)), "image_name");
        assert_eq!(err(image("", None, None)), "image_name");
        assert_eq!(err(image("a/b", None, None)), "image_name");
        assert_eq!(err(image("redis", Some("bad host"), None)), "registry");
        assert_eq!(err(image("redis", None, Some(""))), "namespace");
        assert_eq!(err(image("redis", None, Some("a//b"))), "namespace");
        assert_eq!(err(image("redis", None, Some(&"a".repeat(250)))), "image_name");
        assert_eq!(
            err(NewImage::new("r", None, None, None, Some("Data Base".into()), false, ApprovalStatus::Pending)),
            "category"
        );
        assert_eq!(
            err(NewImage::new("r", None, None, Some("x".repeat(2001)), None, false, ApprovalStatus::Pending)),
            "description"
        );
    }

    #[test]
    fn tags_are_validated() {
        let field = |r: Result<NewTag>| match r {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected invalid, got {other:?}"),
        };
        let ok = NewTag::new("7-alpine").and_then(|t| t.with_size_bytes(Some(0))).unwrap();
        assert_eq!((ok.tag(), ok.size_bytes(), ok.is_recommended()), ("7-alpine", Some(0), false));
        assert_eq!(field(NewTag::new("")), "tag");
        assert_eq!(field(NewTag::new("a b")), "tag");
        let x = NewTag::new("x").unwrap();
        assert_eq!(field(x.clone().with_size_bytes(Some(-1))), "size_bytes");
        assert_eq!(field(x.clone().with_vulnerabilities_count(Some(-1))), "vulnerabilities_count");
        assert_eq!(field(x.clone().with_architecture(Some("AMD64".into()))), "architecture");
        assert_eq!(field(x.clone().with_os(Some("Linux OS".into()))), "os");
        assert_eq!(field(x.clone().with_security_scan_status(Some("x".repeat(33)))), "security_scan_status");
        let full = x.with_architecture(Some("arm64".into())).unwrap().with_recommended(true).with_deprecated(true);
        assert_eq!((full.architecture(), full.is_recommended(), full.is_deprecated()), (Some("arm64"), true, true));
    }

    #[test]
    fn only_pending_requests_are_decidable() {
        let mut req = ApprovalRequest {
            id: ApprovalRequestId::new(7),
            image_name: "redis".into(),
            registry: "docker.io".into(),
            namespace: "library".into(),
            tag: None,
            requested_by: "u".into(),
            requested_at: time::OffsetDateTime::UNIX_EPOCH,
            status: ApprovalStatus::Pending,
            reviewed_by: None,
            reviewed_at: None,
            notes: None,
            rejection_reason: None,
            image_id: None,
        };
        assert!(req.check_decidable().is_ok());
        req.status = ApprovalStatus::Rejected;
        assert_eq!(req.check_decidable().unwrap_err().to_string(), "approval request 7 is already rejected");
    }

    #[test]
    fn rejections_need_a_reason() {
        assert!(Decision::Reject { reason: "  ".into(), notes: None }.validated().is_err());
        assert!(Decision::Reject { reason: "licence".into(), notes: None }.validated().is_ok());
    }

    #[test]
    fn pages_are_bounded() {
        let page = Page::new(None, None).unwrap();
        assert_eq!((page.limit(), page.offset()), (100, 0));
        assert_eq!(page, Page::default());
        assert!(Page::new(Some(0), None).is_err());
        assert!(Page::new(Some(-1), None).is_err());
        assert!(Page::new(Some(1001), None).is_err());
        assert!(Page::new(Some(5), Some(-3)).is_err());
        let page = Page::new(Some(1000), Some(5)).unwrap();
        assert_eq!((page.limit(), page.offset()), (1000, 5));
    }
}
