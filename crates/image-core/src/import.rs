//! Imports: copying an image from an external registry into the internal one, as a job with
//! per-layer progress; and export records, which other systems report.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{Digest, Error, Reference, Result, Timestamp, catalog::Page, time_fmt::serde_millis};

crate::id::id_type!(
    /// An import's id.
    ImportId
);
crate::id::id_type!(
    /// An export record's id.
    ExportId
);

/// Where an import stands. `Queued → Running → Succeeded | Failed`; a running import whose attempt
/// fails with a transient error goes back to `Queued` until its attempts run out; `Canceled` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

impl ImportState {
    pub const ALL: [ImportState; 5] =
        [ImportState::Queued, ImportState::Running, ImportState::Succeeded, ImportState::Failed, ImportState::Canceled];

    pub const fn as_str(self) -> &'static str {
        match self {
            ImportState::Queued => "queued",
            ImportState::Running => "running",
            ImportState::Succeeded => "succeeded",
            ImportState::Failed => "failed",
            ImportState::Canceled => "canceled",
        }
    }

    /// Whether the import still has work to do.
    pub fn is_active(self) -> bool {
        matches!(self, ImportState::Queued | ImportState::Running)
    }

    /// The status the platform API (seed 000) shows: `importing`, `ready` or `failed`.
    pub fn platform_status(self) -> &'static str {
        match self {
            ImportState::Queued | ImportState::Running => "importing",
            ImportState::Succeeded => "ready",
            ImportState::Failed | ImportState::Canceled => "failed",
        }
    }
}

impl fmt::Display for ImportState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ImportState {
    type Err = Error;

    fn from_str(s: &str) -> Result<ImportState> {
        ImportState::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| Error::invalid("state", format!("`{s}` is not an import state")))
    }
}

/// An OS and CPU architecture, as in an image index: `linux/amd64`, `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl FromStr for Platform {
    type Err = Error;

    fn from_str(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => {
                Ok(Platform { os: (*os).into(), architecture: (*arch).into(), variant: None })
            }
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => {
                Ok(Platform { os: (*os).into(), architecture: (*arch).into(), variant: Some((*variant).into()) })
            }
            _ => Err(Error::invalid("platform", format!("`{s}` is not of the form os/arch or os/arch/variant"))),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// What happens to one blob (layer or config) of an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerState {
    /// Not started yet.
    Waiting,
    /// Bytes are flowing from the source to the target.
    Downloading,
    /// Copied, or found already present (skipped) or mounted from another repository.
    Completed,
    Failed,
}

/// How a blob reached the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobCopy {
    /// Its bytes were streamed from the source.
    Copied,
    /// The target had it already.
    Skipped,
    /// Mounted from another repository of the target registry.
    Mounted,
}

impl BlobCopy {
    pub const fn as_str(self) -> &'static str {
        match self {
            BlobCopy::Copied => "copied",
            BlobCopy::Skipped => "skipped",
            BlobCopy::Mounted => "mounted",
        }
    }
}

impl fmt::Display for BlobCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Progress of one blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerProgress {
    pub digest: Digest,
    pub size: u64,
    pub done: u64,
    pub state: LayerState,
    /// How the blob reached the target, once it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<BlobCopy>,
}

impl LayerProgress {
    /// Whole percent done, as the platform API reports it.
    pub fn percent(&self) -> u8 {
        match (self.state, self.size) {
            (LayerState::Completed, _) => 100,
            (_, 0) => 0,
            _ => ((self.done.min(self.size) * 100) / self.size) as u8,
        }
    }
}

/// One platform's manifest as copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub digest: Digest,
    pub media_type: String,
    pub os: Option<String>,
    pub architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Config and layers, in bytes.
    pub size: u64,
}

/// The user-visible record of an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportJob {
    pub id: ImportId,
    pub source: Reference,
    pub target: Reference,
    /// Platforms asked for; empty means all.
    pub platforms: Vec<Platform>,
    pub state: ImportState,
    pub attempts: i32,
    pub max_attempts: i32,
    /// Seconds one attempt may take before it is abandoned and retried.
    pub timeout_secs: i64,
    pub error: Option<String>,
    pub description: Option<String>,
    pub created_by: String,
    #[serde(with = "serde_millis")]
    pub created_at: Timestamp,
    #[serde(with = "serde_millis")]
    pub updated_at: Timestamp,
    #[serde(with = "serde_millis::option")]
    pub started_at: Option<Timestamp>,
    #[serde(with = "serde_millis::option")]
    pub finished_at: Option<Timestamp>,
    /// Digest of the top-level manifest or index, once known.
    pub digest: Option<Digest>,
    pub artifacts: Vec<Artifact>,
    pub layers: Vec<LayerProgress>,
    /// The registry secret whose credentials read the source; none for the configured credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_secret: Option<SecretRef>,
}

/// A registry secret, by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
}

/// An artifact pushed to the internal registry beside imagegate, as a registry event tells it: recorded as a
/// finished import of `source` (the catalog's image, with the pushed tag) into `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryPush {
    pub source: Reference,
    pub target: Reference,
    pub digest: Digest,
    /// Its platforms, with their sizes, where the registry could say; empty otherwise.
    pub artifacts: Vec<Artifact>,
}

/// A new import, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewImport {
    pub source: Reference,
    pub target: Reference,
    pub platforms: Vec<Platform>,
    pub description: Option<String>,
    pub max_attempts: i32,
    /// Seconds one attempt may take before it is abandoned.
    pub timeout_secs: i64,
    /// The registry secret to read the source with, read again at each attempt; none for the configured
    /// credentials (see [`crate::copy::access_for_import`]).
    pub registry_secret: Option<SecretRef>,
}

impl NewImport {
    pub const DEFAULT_MAX_ATTEMPTS: i32 = 5;
    pub const DEFAULT_TIMEOUT_SECS: i64 = 3600;
}

/// What enqueuing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// A new import was queued.
    Started(ImportJob),
    /// An import of the same source into the same target is already queued, running, or done.
    Existing(ImportJob),
}

/// Filters for listing imports (the platform API's images).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportFilter {
    /// Exact tag of the target.
    pub tag: Option<String>,
    /// `Some(true)`: succeeded only; `Some(false)`: everything else.
    pub ready: Option<bool>,
    pub created_by: Option<String>,
    pub order_by: ImportOrder,
    pub descending: bool,
    pub page: Page,
}

/// What a listing of imports is ordered by; each profile names these in its own words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportOrder {
    /// When the import was queued.
    #[default]
    CreatedAt,
    Id,
    /// The target's repository path.
    Repository,
    /// The target's tag.
    Tag,
}

/// The outcome of one attempt at an import, as the worker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Succeeded {
        digest: Digest,
        artifacts: Vec<Artifact>,
    },
    /// Try again at `retry_at`, if attempts remain; otherwise the import fails with `error`.
    Retry {
        error: String,
        retry_at: Timestamp,
    },
    /// Fails for good (bad reference, not found, schema1, digest mismatch…).
    Failed {
        error: String,
    },
}

/// An image exported from a workload (seed 000's `custom` images), reported by the system that did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportRecord {
    pub id: ExportId,
    pub registry_host: String,
    pub repository: String,
    pub tag: String,
    pub source: Option<String>,
    pub description: Option<String>,
    pub created_by: String,
    pub phase: ExportPhase,
    #[serde(with = "serde_millis")]
    pub created_at: Timestamp,
}

/// Where an export stands, as the system that made it reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExportPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl ExportPhase {
    pub const ALL: [ExportPhase; 4] =
        [ExportPhase::Pending, ExportPhase::Running, ExportPhase::Succeeded, ExportPhase::Failed];

    pub const fn as_str(self) -> &'static str {
        match self {
            ExportPhase::Pending => "Pending",
            ExportPhase::Running => "Running",
            ExportPhase::Succeeded => "Succeeded",
            ExportPhase::Failed => "Failed",
        }
    }
}

impl fmt::Display for ExportPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExportPhase {
    type Err = Error;

    fn from_str(s: &str) -> Result<ExportPhase> {
        ExportPhase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| Error::invalid("phase", format!("`{s}` is not one of Pending, Running, Succeeded, Failed")))
    }
}

/// Where an import or a sync of `source` lands in the internal registry at `host`, under `prefix` (a
/// Harbor project, say; empty for none).
///
/// The internal path is derived from the whole source reference, so that two different sources never
/// land in one internal repository: Docker Hub's images keep their path (`docker.io/pytorch/pytorch:2.0` →
/// `<prefix>/pytorch/pytorch:2.0`), every other registry's are put under its host, with a port's `:`
/// written `_` (`ghcr.io/acme/app:1` → `<prefix>/ghcr.io/acme/app:1`, `127.0.0.1:5000/app:1` →
/// `<prefix>/127.0.0.1_5000/app:1`). Docker Hub's namespaces never hold a `.` or `_` and hosts always
/// hold a `.` or a port (or are `localhost`), so the two forms cannot meet. The tag is the source's, or
/// `latest` for a source given by digest alone.
pub fn internal_target(host: &str, prefix: &str, source: &Reference) -> Result<Reference, crate::ReferenceError> {
    let mut path = String::new();
    let prefix = prefix.trim_matches('/');
    if !prefix.is_empty() {
        path.push_str(prefix);
        path.push('/');
    }
    if source.registry() != crate::DEFAULT_REGISTRY {
        path.push_str(&source.registry().replace(':', "_"));
        path.push('/');
    }
    path.push_str(source.repository());
    Reference::new(host, &path, Some(source.tag().unwrap_or("latest")), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_targets_keep_sources_apart() {
        let place = |prefix: &str, source: &str| {
            internal_target("reg.internal:5000", prefix, &Reference::parse(source).unwrap()).unwrap().to_string()
        };
        assert_eq!(place("", "pytorch/pytorch:2.0"), "reg.internal:5000/pytorch/pytorch:2.0");
        assert_eq!(place("mirror", "redis"), "reg.internal:5000/mirror/library/redis:latest");
        assert_eq!(place("/mirror/", "ghcr.io/acme/app:1"), "reg.internal:5000/mirror/ghcr.io/acme/app:1");
        assert_eq!(place("", "127.0.0.1:5000/library/app:1"), "reg.internal:5000/127.0.0.1_5000/library/app:1");
        assert_eq!(place("", "localhost/app:1"), "reg.internal:5000/localhost/app:1");
        let digest = format!("quay.io/x/y@sha256:{}", "a".repeat(64));
        assert_eq!(place("", &digest), "reg.internal:5000/quay.io/x/y:latest");
        // The same path on two registries never lands in one repository.
        assert_ne!(place("", "docker.io/library/app:1"), place("", "quay.io/library/app:1"));
    }

    #[test]
    fn platforms_parse_and_print() {
        for (input, ok) in [
            ("linux/amd64", true),
            ("linux/arm64/v8", true),
            ("linux", false),
            ("Linux/amd64", false),
            ("a/b/c/d", false),
            ("linux//", false),
        ] {
            let parsed = input.parse::<Platform>();
            assert_eq!(parsed.is_ok(), ok, "{input}");
            if let Ok(p) = parsed {
                assert_eq!(p.to_string(), input);
            }
        }
    }

    #[test]
    fn layer_percent_is_bounded() {
        let d: Digest = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
        let mut l = LayerProgress { digest: d, size: 200, done: 50, state: LayerState::Downloading, via: None };
        assert_eq!(l.percent(), 25);
        l.done = 500;
        assert_eq!(l.percent(), 100);
        l.size = 0;
        assert_eq!(l.percent(), 0);
        l.state = LayerState::Completed;
        assert_eq!(l.percent(), 100);
    }

    #[test]
    fn blob_copies_and_export_phases_keep_their_wire_names() {
        for (via, text) in
            [(BlobCopy::Copied, "copied"), (BlobCopy::Skipped, "skipped"), (BlobCopy::Mounted, "mounted")]
        {
            assert_eq!(serde_json::to_value(via).unwrap(), serde_json::json!(text));
            assert_eq!(serde_json::from_value::<BlobCopy>(serde_json::json!(text)).unwrap(), via);
            assert_eq!(via.to_string(), text);
        }
        assert!(serde_json::from_value::<BlobCopy>(serde_json::json!("Copied")).is_err());
        for phase in ExportPhase::ALL {
            assert_eq!(serde_json::to_value(phase).unwrap(), serde_json::json!(phase.as_str()));
            assert_eq!(phase.as_str().parse::<ExportPhase>().unwrap(), phase);
        }
        let names: Vec<&str> = ExportPhase::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(names, ["Pending", "Running", "Succeeded", "Failed"]);
        let err = "succeeded".parse::<ExportPhase>().unwrap_err();
        assert_eq!(err.to_string(), "invalid phase: `succeeded` is not one of Pending, Running, Succeeded, Failed");
    }

    #[test]
    fn states_map_to_platform_statuses() {
        assert_eq!(ImportState::Queued.platform_status(), "importing");
        assert_eq!(ImportState::Succeeded.platform_status(), "ready");
        assert_eq!(ImportState::Canceled.platform_status(), "failed");
        assert_eq!("running".parse::<ImportState>().unwrap(), ImportState::Running);
        assert!("done".parse::<ImportState>().is_err());
    }
}
