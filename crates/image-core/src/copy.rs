//! The copy operation the import engine performs, as a trait the registry adapter implements.

use async_trait::async_trait;

use crate::{
    Digest, Reference,
    import::{Artifact, LayerProgress, Platform},
};

/// Copy `source` to `target`, all platforms of an index or only `platforms` when not empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRequest {
    pub source: Reference,
    pub target: Reference,
    pub platforms: Vec<Platform>,
}

/// What a finished copy produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOutcome {
    /// Digest of the top-level manifest or index, the same at the source and the target.
    pub digest: Digest,
    pub artifacts: Vec<Artifact>,
    /// Blobs streamed from the source, and their bytes.
    pub blobs_copied: u64,
    pub bytes_copied: u64,
    /// Blobs the target already had.
    pub blobs_skipped: u64,
    /// Blobs mounted from another repository of the target.
    pub blobs_mounted: u64,
}

/// Whether trying again may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyErrorKind {
    /// A network failure, a 5xx, a rate limit: try again later.
    Transient,
    /// A bad reference, a missing image, refused credentials, an unsupported format, corrupt data.
    Permanent,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CopyError {
    pub kind: CopyErrorKind,
    pub message: String,
    /// How long the registry asked us to wait, if it said.
    pub retry_after_secs: Option<u64>,
}

impl CopyError {
    pub fn transient(message: impl Into<String>) -> CopyError {
        CopyError { kind: CopyErrorKind::Transient, message: message.into(), retry_after_secs: None }
    }

    pub fn permanent(message: impl Into<String>) -> CopyError {
        CopyError { kind: CopyErrorKind::Permanent, message: message.into(), retry_after_secs: None }
    }
}

/// Receives progress while a copy runs. Calls are cheap and frequent; the receiver decides how often to
/// persist them.
pub trait CopyProgress: Send + Sync {
    /// The source was resolved: its digest, and one artifact per platform to be copied.
    fn resolved(&self, digest: &Digest, artifacts: &[Artifact]);
    /// One blob changed state or moved forward.
    fn layer(&self, progress: &LayerProgress);
}

/// Copies images between registries and removes them from the target.
#[async_trait]
pub trait ImageCopier: Send + Sync {
    /// Copies manifests by their exact bytes, so every digest is preserved. Dropping the future abandons
    /// the copy; blobs already complete at the target are skipped by the next attempt.
    async fn copy_image(&self, request: &CopyRequest, progress: &dyn CopyProgress) -> Result<CopyOutcome, CopyError>;

    /// Checks that the source exists and can be read with the credentials at hand (a manifest HEAD), so an
    /// import request can be refused at once with a message that says why.
    async fn check_source(&self, source: &Reference) -> Result<(), CopyError>;

    /// Uses these credentials (or none) for `registry` from now on, for copies and checks alike; `insecure`
    /// allows plain HTTP. Tokens obtained with earlier credentials are forgotten.
    fn use_credentials(&self, registry: &str, credentials: Option<(String, crate::kube::Secret)>, insecure: bool);

    /// Performs the registry handshake (`/v2/`, then the basic or bearer-token challenge) with the given
    /// credentials, without remembering them: `Ok` when the registry accepts them.
    async fn verify_credentials(
        &self,
        registry: &str,
        username: &str,
        password: &crate::kube::Secret,
        insecure: bool,
    ) -> Result<(), CopyError>;

    /// Deletes the manifest a reference points to from the target registry. Not finding it is not an error.
    async fn delete_image(&self, target: &Reference) -> Result<(), CopyError>;
}
