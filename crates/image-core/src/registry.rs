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

    /// Vulnerabilities found at `severity` or above.
    pub fn at_or_above(&self, severity: Severity) -> u64 {
        self.severities
            .iter()
            .filter(|(name, _)| Severity::from_name(name).is_some_and(|s| s >= severity))
            .map(|(_, n)| n)
            .sum()
    }

    /// The catalog's status for this scan under a deny policy: a finished scan (`Passed`) with findings at
    /// or above `deny` is `Failed`; without a policy, or for any other status, the status as it is.
    pub fn verdict(&self, deny: Option<Severity>) -> ScanStatus {
        match (self.status, deny) {
            (ScanStatus::Passed, Some(deny)) if self.at_or_above(deny) > 0 => ScanStatus::Failed,
            (status, _) => status,
        }
    }
}

/// A vulnerability's severity, ordered from the least to the most severe; what `--deny-severity` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// `critical`, `high`, `medium`, `low`, in any case; `None` for anything else (`unknown`, `none`).
    pub fn from_name(name: &str) -> Option<Severity> {
        Some(match name.to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" => Severity::High,
            "medium" => Severity::Medium,
            "low" => Severity::Low,
            _ => return None,
        })
    }
}

impl std::str::FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Severity, String> {
        Severity::from_name(s).ok_or_else(|| format!("`{s}` is not a severity: use critical, high, medium or low"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_under_a_deny_severity() {
        let overview = |status, severities: &[(&str, u64)]| ScanOverview {
            status,
            severities: severities.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect(),
        };
        let found = overview(ScanStatus::Passed, &[("high", 2), ("low", 1), ("unknown", 4)]);
        assert_eq!(found.total(), 7);
        assert_eq!(found.at_or_above(Severity::High), 2);
        assert_eq!(found.at_or_above(Severity::Low), 3);
        assert_eq!(found.verdict(None), ScanStatus::Passed);
        assert_eq!(found.verdict(Some(Severity::Critical)), ScanStatus::Passed);
        assert_eq!(found.verdict(Some(Severity::High)), ScanStatus::Failed);
        assert_eq!(found.verdict(Some(Severity::Medium)), ScanStatus::Failed);
        let zero = overview(ScanStatus::Passed, &[("critical", 0)]);
        assert_eq!(zero.verdict(Some(Severity::Low)), ScanStatus::Passed);
        assert_eq!(overview(ScanStatus::Pending, &[]).verdict(Some(Severity::Low)), ScanStatus::Pending);
        assert_eq!(overview(ScanStatus::Error, &[("critical", 1)]).verdict(Some(Severity::Low)), ScanStatus::Error);
        assert_eq!("HIGH".parse::<Severity>(), Ok(Severity::High));
        assert!("severe".parse::<Severity>().is_err());
    }
}
