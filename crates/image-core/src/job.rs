//! The payloads of queued jobs.
//!
//! The store queues a job in the same transaction as the domain change that calls for it, so the payloads
//! live here, where both the store and the worker see them.
//! A payload is stored as JSON next to its job type's [`JobPayload::NAME`]; both are a wire format that
//! jobs queued by an older version must still match, so renaming a field or a type strands queued jobs.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{import::ImportId, kube::RepositoryId};

/// The payload of one job type.
pub trait JobPayload: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The job type in the queue, unique across job types.
    const NAME: &'static str;
}

/// Run the next attempt of an import: `{"import_id": …}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportPayload {
    pub import_id: ImportId,
}

impl JobPayload for ImportPayload {
    const NAME: &'static str = "import";
}

/// Sync a kube-style repository (by its id) from its registry: `{"repository_id": …}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPayload {
    pub repository_id: RepositoryId,
}

impl JobPayload for SyncPayload {
    const NAME: &'static str = "sync";
}

/// Report a node's images from its container runtime: `{"node": …}`. Only the worker on that node can,
/// so the job is queued under a type of its own per node ([`InventoryPayload::job_type`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryPayload {
    pub node: String,
}

impl JobPayload for InventoryPayload {
    const NAME: &'static str = "inventory";
}

impl InventoryPayload {
    /// The job type `node`'s inventory jobs are queued under: `inventory:<node>`.
    pub fn job_type(node: &str) -> String {
        format!("{}:{node}", Self::NAME)
    }
}

/// Ask for (when `request`) and read the vulnerability scan of `digest` in the internal registry's
/// `repository`, and write its outcome onto the catalog tag `source` names:
/// `{"source": "docker.io/library/redis:7", "repository": "mirror/library/redis", "digest": "sha256:…", "request": true}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanPayload {
    /// The catalog's image and tag (the import's source reference).
    pub source: crate::Reference,
    /// The repository of the internal registry, its project included.
    pub repository: String,
    pub digest: crate::Digest,
    /// Whether to ask the registry for a scan first (after an import), or only read it (a webhook, the
    /// schedule).
    pub request: bool,
}

impl ScanPayload {
    /// Attempts of one scan job: a scan still running after them stays `pending` until a webhook says more.
    pub const MAX_ATTEMPTS: i32 = 20;
}

impl JobPayload for ScanPayload {
    const NAME: &'static str = "scan";
}

/// Prune history older than these ages (see [`crate::ops::RetentionPolicy`]):
/// `{"imports_secs": …, "events_secs": …}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPayload {
    pub imports_secs: u64,
    pub events_secs: u64,
}

impl JobPayload for RetentionPayload {
    const NAME: &'static str = "retention";
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Jobs queued before the payloads were typed hold exactly this JSON under these names.
    #[test]
    fn the_wire_format_of_queued_jobs_is_kept() {
        assert_eq!(ImportPayload::NAME, "import");
        assert_eq!(SyncPayload::NAME, "sync");
        assert_eq!(
            serde_json::to_value(ImportPayload { import_id: ImportId::new(7) }).unwrap(),
            json!({"import_id": 7})
        );
        assert_eq!(
            serde_json::to_value(SyncPayload { repository_id: RepositoryId::new(9) }).unwrap(),
            json!({"repository_id": 9})
        );
        let old: ImportPayload = serde_json::from_value(json!({"import_id": 7})).unwrap();
        assert_eq!(old, ImportPayload { import_id: ImportId::new(7) });
        let old: SyncPayload = serde_json::from_value(json!({"repository_id": 9})).unwrap();
        assert_eq!(old, SyncPayload { repository_id: RepositoryId::new(9) });
    }

    #[test]
    fn the_retention_payload_names_its_ages_in_seconds() {
        assert_eq!(RetentionPayload::NAME, "retention");
        let payload = RetentionPayload { imports_secs: 90 * 86_400, events_secs: 365 * 86_400 };
        assert_eq!(
            serde_json::to_value(payload).unwrap(),
            json!({"imports_secs": 7_776_000, "events_secs": 31_536_000})
        );
        assert!(serde_json::from_value::<RetentionPayload>(json!({"imports_secs": -1, "events_secs": 1})).is_err());
    }

    #[test]
    fn a_payload_of_another_shape_does_not_decode() {
        assert!(serde_json::from_value::<ImportPayload>(json!({"repository_id": 9})).is_err());
        assert!(serde_json::from_value::<ImportPayload>(json!({"import_id": "7"})).is_err());
        assert!(serde_json::from_value::<SyncPayload>(json!(null)).is_err());
    }
}
