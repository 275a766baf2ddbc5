//! The built-in registry's metadata: blobs and the repositories holding them, manifests (their exact bytes and
//! what they reference), tags and upload sessions; and [`RegistryStore`], the storage trait that keeps them.
//!
//! Blob contents are not here: the registry keeps them on disk, and records a blob only once its digest is
//! verified and its file is in place.

use async_trait::async_trait;

use crate::{Digest, Result, Timestamp};

/// The audit event of a pull the gate would refuse but serves (`--gate warn`); details: `repository`,
/// `digest`, `reason`.
pub const GATE_WARNED_EVENT: &str = "registry.pull.warned";

/// What a manifest references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceKind {
    /// A config or a layer.
    Blob,
    /// A manifest of an index.
    Manifest,
}

impl ReferenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReferenceKind::Blob => "blob",
            ReferenceKind::Manifest => "manifest",
        }
    }
}

/// One descriptor of a manifest: a blob or child manifest it needs, and its size as the manifest states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestReference {
    pub digest: Digest,
    pub kind: ReferenceKind,
    pub size: i64,
}

/// A manifest to store, parsed and checked by the registry.
#[derive(Debug, Clone)]
pub struct NewManifest {
    pub repository: String,
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    /// The exact bytes pushed; served as they are.
    pub content: Vec<u8>,
    pub subject: Option<Digest>,
    /// The manifest's `annotations`, as JSON.
    pub annotations: Option<String>,
    pub references: Vec<ManifestReference>,
    /// The tag the manifest was pushed by, if it was pushed by tag.
    pub tag: Option<String>,
}

/// A stored manifest.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub repository: String,
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub content: Vec<u8>,
    pub subject: Option<Digest>,
    pub annotations: Option<String>,
    pub created_at: Timestamp,
}

/// A manifest as the referrers API lists it: a descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestDescriptor {
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub size: i64,
    pub annotations: Option<String>,
}

/// A manifest reference in a path: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestRef {
    Tag(String),
    Digest(Digest),
}

/// The outcome of [`RegistryStore::put_manifest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutManifest {
    Stored,
    /// A blob or child manifest the manifest references is not in the repository; nothing was stored.
    Missing(ManifestReference),
}

/// An upload in progress; its first `size` bytes were received whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    pub id: String,
    pub repository: String,
    pub size: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Keeps the built-in registry's metadata. Listings take `last` (exclusive) and `n` (at most), in lexical
/// order.
#[async_trait]
pub trait RegistryStore: Send + Sync {
    /// Whether the repository holds any manifest, blob or upload.
    async fn repository_exists(&self, repository: &str) -> Result<bool>;

    /// The size of the blob, if `repository` holds it.
    async fn repository_blob(&self, repository: &str, digest: &Digest) -> Result<Option<i64>>;

    /// The size of the blob, if any repository holds it.
    async fn blob(&self, digest: &Digest) -> Result<Option<i64>>;

    /// Records a verified blob (its file already in place) and that `repository` holds it.
    async fn link_blob(&self, repository: &str, digest: &Digest, size: i64) -> Result<()>;

    /// `repository` no longer holds the blob; false when it did not.
    async fn unlink_blob(&self, repository: &str, digest: &Digest) -> Result<bool>;

    /// Stores the manifest (and moves its tag to it), if every blob and child manifest it references is in
    /// the repository; all in one transaction.
    async fn put_manifest(&self, manifest: NewManifest) -> Result<PutManifest>;

    async fn get_manifest(&self, repository: &str, reference: &ManifestRef) -> Result<Option<StoredManifest>>;

    /// Deletes the manifest and the tags on it; false when there was none.
    async fn delete_manifest(&self, repository: &str, digest: &Digest) -> Result<bool>;

    /// Deletes the tag (not its manifest); false when there was none.
    async fn delete_tag(&self, repository: &str, tag: &str) -> Result<bool>;

    async fn list_tags(&self, repository: &str, last: Option<&str>, n: i64) -> Result<Vec<String>>;

    /// Repositories that hold a manifest.
    async fn list_repositories(&self, last: Option<&str>, n: i64) -> Result<Vec<String>>;

    /// The manifests of `repository` whose subject is `subject`, by digest.
    async fn referrers(&self, repository: &str, subject: &Digest) -> Result<Vec<ManifestDescriptor>>;

    /// The manifests of `repository` (indexes) that list the manifest `digest`.
    async fn parents(&self, repository: &str, digest: &Digest) -> Result<Vec<Digest>>;

    /// Blobs recorded before `before` that no manifest of any repository references, by digest, with their
    /// sizes: what garbage collection removes.
    async fn unreferenced_blobs(&self, before: Timestamp) -> Result<Vec<(Digest, i64)>>;

    /// Forgets the blob (in every repository) if it is still unreferenced and recorded before `before`, in one
    /// transaction; false when it was not.
    async fn delete_unreferenced_blob(&self, digest: &Digest, before: Timestamp) -> Result<bool>;

    /// Uploads last written before `before`: abandoned.
    async fn stale_uploads(&self, before: Timestamp) -> Result<Vec<UploadSession>>;

    /// Records a [`GATE_WARNED_EVENT`] by `actor`.
    async fn record_gate_warning(&self, actor: &str, repository: &str, digest: &Digest, reason: &str) -> Result<()>;

    async fn create_upload(&self, id: &str, repository: &str) -> Result<UploadSession>;

    async fn get_upload(&self, id: &str) -> Result<Option<UploadSession>>;

    /// Records that the first `size` bytes of the upload were received.
    async fn set_upload_size(&self, id: &str, size: i64) -> Result<()>;

    /// False when there was no such upload.
    async fn delete_upload(&self, id: &str) -> Result<bool>;
}
