//! What imagegate asks of its internal registry beyond copying images into it, as a trait the registry
//! adapters implement: a plain OCI distribution registry answers what `/v2/` can tell, Harbor answers all
//! of it through its REST API. [`crate::copy::ImageCopier`] stays the copy port.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Digest, Result};

/// Which kind of registry an adapter speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistryKind {
    /// Any OCI distribution registry (CNCF Distribution, Zot, a cloud registry).
    Distribution,
    /// Harbor, through its REST API v2.0 beside `/v2/`.
    Harbor,
}

impl RegistryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistryKind::Distribution => "distribution",
            RegistryKind::Harbor => "harbor",
        }
    }
}

/// Health of the registry and of each of its components, as far as the registry reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryHealth {
    /// `healthy` or `unhealthy`.
    pub status: String,
    pub components: Vec<ComponentHealth>,
    /// Why the registry is unhealthy or unreachable, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentHealth {
    pub name: String,
    /// `healthy` or `unhealthy`.
    pub status: String,
}

/// Counts over the registry's projects (a Harbor project; the first path segment of a repository on a
/// plain registry) and repositories. `None` where the registry cannot tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryStatistics {
    pub private_project_count: Option<u64>,
    pub public_project_count: Option<u64>,
    pub private_repo_count: Option<u64>,
    pub public_repo_count: Option<u64>,
    /// Bytes stored.
    pub total_storage: Option<u64>,
}

/// A repository of the internal registry, its name including the project (`library/nginx`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryRepository {
    pub name: String,
    pub artifact_count: Option<u64>,
    pub pull_count: Option<u64>,
    pub updated_at: Option<OffsetDateTime>,
}

/// One artifact (a manifest or an index) of a repository, with the tags that point to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryArtifact {
    pub repository: String,
    pub digest: Digest,
    pub media_type: Option<String>,
    pub tags: Vec<String>,
    /// Bytes of the manifest, config and layers, when known.
    pub size: Option<u64>,
    /// `os/arch[/variant]` of an image manifest; the platforms of an index.
    pub platforms: Vec<String>,
    pub push_time: Option<OffsetDateTime>,
}

/// The outcome of a vulnerability scan of one artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanOverview {
    pub status: ScanStatus,
    /// Vulnerabilities found, by severity (`critical`, `high`, `medium`, `low`, `unknown`, lower case).
    pub severities: Vec<(String, u64)>,
}

impl ScanOverview {
    /// All vulnerabilities found.
    pub fn total(&self) -> u64 {
        self.severities.iter().map(|(_, n)| n).sum()
    }
}

/// A scan's state in the catalog's vocabulary (seed 002's `security_scan_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanStatus {
    /// Asked for, queued or running.
    Pending,
    /// Finished, nothing at or above the deny severity.
    Passed,
    /// Finished with findings that fail the policy.
    Failed,
    /// The scanner could not scan the artifact.
    Error,
}

impl ScanStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::Pending => "pending",
            ScanStatus::Passed => "passed",
            ScanStatus::Failed => "failed",
            ScanStatus::Error => "error",
        }
    }

    pub fn from_name(name: &str) -> Option<ScanStatus> {
        Some(match name {
            "pending" => ScanStatus::Pending,
            "passed" => ScanStatus::Passed,
            "failed" => ScanStatus::Failed,
            "error" => ScanStatus::Error,
            _ => return None,
        })
    }
}

/// What imagegate asks of its internal registry beyond copying. Every call uses the internal registry's
/// configured account.
#[async_trait]
pub trait RegistryAdmin: Send + Sync {
    fn kind(&self) -> RegistryKind;

    /// Never an error: an unreachable registry is `unhealthy` with the reason.
    async fn health(&self) -> RegistryHealth;

    async fn statistics(&self) -> Result<RegistryStatistics>;

    /// Makes sure the project (Harbor) or namespace a repository lands in exists, creating it when
    /// missing. A no-op on a plain registry, where namespaces exist implicitly.
    async fn ensure_project(&self, project: &str) -> Result<()>;

    async fn list_repositories(&self) -> Result<Vec<RegistryRepository>>;

    /// The artifacts of one repository (its name including the project), tagged or not.
    async fn list_artifacts(&self, repository: &str) -> Result<Vec<RegistryArtifact>>;

    /// Deletes an artifact and every tag that points to it. Not finding it is not an error.
    async fn delete_artifact(&self, repository: &str, digest: &Digest) -> Result<()>;

    /// Asks for a scan of an artifact: `Ok(false)` when the registry has no scanner.
    async fn request_scan(&self, repository: &str, digest: &Digest) -> Result<bool>;

    /// The scan overview of an artifact: `None` when it was never scanned or the registry cannot scan.
    async fn scan_overview(&self, repository: &str, digest: &Digest) -> Result<Option<ScanOverview>>;
}
