//! The values operations take and return.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use image_core::{Digest, Reference};

use crate::error::{Error, Result};

/// Media types of manifests.
pub mod media_type {
    pub use image_core::manifest::media_type::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
    /// Docker's schema 1, which this client refuses.
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    /// Docker's signed schema 1, which this client refuses.
    pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

    /// The `Accept` header of manifest requests: every current manifest type, schema 1 excluded
    /// (a registry that can convert then does; one that cannot says what it has).
    pub(crate) const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
        application/vnd.oci.image.manifest.v1+json, \
        application/vnd.docker.distribution.manifest.list.v2+json, \
        application/vnd.docker.distribution.manifest.v2+json";

    pub(crate) fn is_schema1(media_type: &str) -> bool {
        media_type == DOCKER_SCHEMA1 || media_type == DOCKER_SCHEMA1_SIGNED
    }
}

/// A repository on a registry: where manifests, tags and blobs live.
///
/// A `Repo` that exists is valid and normalised as in [`Reference`]: `docker.io` for every name
/// of Docker Hub, `library/` for its official images. Its parts are therefore safe to put in URLs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Repo {
    registry: String,
    repository: String,
}

impl Repo {
    /// `Repo::new("localhost:5000", "team/app")`, `Repo::new("docker.io", "redis")`
    /// (which is `docker.io/library/redis`).
    pub fn new(registry: &str, repository: &str) -> Result<Repo> {
        let reference =
            Reference::new(registry, repository, None, None).map_err(|e| Error::InvalidInput(e.to_string()))?;
        Ok(Repo::from(&reference))
    }

    /// The registry, `HOST[:PORT]`: `docker.io`, `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path: `library/redis`, `team/app`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// Another repository on the same registry.
    pub fn sibling(&self, repository: &str) -> Result<Repo> {
        Repo::new(&self.registry, repository)
    }
}

impl From<&Reference> for Repo {
    fn from(reference: &Reference) -> Repo {
        Repo { registry: reference.registry().to_owned(), repository: reference.repository().to_owned() }
    }
}

impl fmt::Display for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

impl fmt::Debug for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Repo({self})")
    }
}

/// Which manifest of a repository: a tag or a digest. Valid by construction.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ManifestRef(RefKind);

#[derive(Clone, PartialEq, Eq, Hash)]
enum RefKind {
    Tag(String),
    Digest(Digest),
}

impl ManifestRef {
    /// A tag, checked against the OCI grammar.
    pub fn tag(tag: &str) -> Result<ManifestRef> {
        image_core::validate::tag(tag).map_err(|reason| Error::InvalidInput(format!("tag `{tag}`: {reason}")))?;
        Ok(ManifestRef(RefKind::Tag(tag.to_owned())))
    }

    /// The manifest a [`Reference`] names: by digest when it has one (a digest pins content,
    /// a tag only points at it), else by tag.
    pub fn of(reference: &Reference) -> ManifestRef {
        match (reference.digest(), reference.tag()) {
            (Some(digest), _) => ManifestRef(RefKind::Digest(digest.clone())),
            (None, Some(tag)) => ManifestRef(RefKind::Tag(tag.to_owned())),
            // A Reference always has one; `latest` is what it would have defaulted to.
            (None, None) => ManifestRef(RefKind::Tag("latest".to_owned())),
        }
    }

    pub fn digest(&self) -> Option<&Digest> {
        match &self.0 {
            RefKind::Digest(d) => Some(d),
            RefKind::Tag(_) => None,
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            RefKind::Tag(t) => t,
            RefKind::Digest(d) => d.as_str(),
        }
    }
}

impl From<Digest> for ManifestRef {
    fn from(digest: Digest) -> ManifestRef {
        ManifestRef(RefKind::Digest(digest))
    }
}

impl From<&Digest> for ManifestRef {
    fn from(digest: &Digest) -> ManifestRef {
        ManifestRef(RefKind::Digest(digest.clone()))
    }
}

/// `sha256:…` parses as a digest, anything else as a tag.
impl FromStr for ManifestRef {
    type Err = Error;

    fn from_str(s: &str) -> Result<ManifestRef> {
        if s.contains(':') {
            let digest = s.parse::<Digest>().map_err(|e| Error::InvalidInput(format!("digest `{s}`: {e}")))?;
            return Ok(digest.into());
        }
        ManifestRef::tag(s)
    }
}

impl fmt::Display for ManifestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ManifestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManifestRef({})", self.as_str())
    }
}

/// What `HEAD` says about a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// A manifest exactly as the registry stores it: `digest` is the sha256 of `bytes`.
#[derive(Clone, PartialEq, Eq)]
pub struct Manifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: Digest,
}

impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manifest")
            .field("digest", &self.digest)
            .field("media_type", &self.media_type)
            .field("size", &self.bytes.len())
            .finish()
    }
}

/// The outcome of [`RegistryClient::mount_blob`](crate::RegistryClient::mount_blob).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOutcome {
    /// The registry linked the blob into the repository (201): nothing to upload.
    Mounted,
    /// The registry could not mount it and opened an ordinary upload session instead (202);
    /// continue it with [`RegistryClient::push_blob_to`](crate::RegistryClient::push_blob_to).
    NotMounted { upload_location: UploadLocation },
}

/// An open blob upload session: the URL the registry gave in `Location`.
#[derive(Clone, PartialEq, Eq)]
pub struct UploadLocation {
    pub(crate) repo: Repo,
    pub(crate) url: reqwest::Url,
    /// The registry's `OCI-Chunk-Min-Length`, if it sent one.
    pub(crate) min_chunk: Option<u64>,
}

impl UploadLocation {
    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    /// The absolute upload URL.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }
}

impl fmt::Debug for UploadLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The query (upload state) is the registry's business; the path identifies the session.
        write!(f, "UploadLocation({} {})", self.repo, self.url.path())
    }
}
