//! Garbage collection: blobs that no manifest references, once a grace period has passed since they were
//! recorded (a push uploads its blobs before its manifest, so a recent unreferenced blob is one an in-flight
//! push needs), blob files that no record names (a crash between the rename and the record), and uploads
//! nobody has written to for the grace period (abandoned sessions, and the files of monolithic uploads cut
//! off mid-body). An upload written to within the grace period is not touched.
//!
//! A blob is forgotten first (one transaction that checks again that nothing references it), then its file
//! goes: a crash in between leaves an unnamed file, which the next collection removes.

use std::{path::PathBuf, time::Duration};

use image_core::{Digest, Timestamp, oci::RegistryStore};

use crate::storage::BlobStore;

/// What a collection removed, or (dry run) would remove.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Recorded blobs no manifest references, with their sizes.
    pub blobs: Vec<(Digest, u64)>,
    /// Blob files that no record names.
    pub files: Vec<(PathBuf, u64)>,
    /// Abandoned uploads: the session's id (or the file's name, for one without a session) and its bytes.
    pub uploads: Vec<(String, u64)>,
}

impl GcReport {
    pub fn bytes(&self) -> u64 {
        let blobs = self.blobs.iter().map(|(_, size)| size);
        blobs.chain(self.files.iter().map(|(_, size)| size)).chain(self.uploads.iter().map(|(_, size)| size)).sum()
    }
}

/// Collects what is older than `grace`; with `dry_run`, only reports it.
pub async fn collect(
    store: &dyn RegistryStore,
    blobs: &BlobStore,
    grace: Duration,
    dry_run: bool,
) -> image_core::Result<GcReport> {
    let before = Timestamp::now_utc() - grace;
    let mut report = GcReport::default();
    for (digest, size) in store.unreferenced_blobs(before).await? {
        if dry_run || store.delete_unreferenced_blob(&digest, before).await? {
            if !dry_run {
                remove(&blobs.blob_path(&digest)).await;
            }
            report.blobs.push((digest, size.max(0) as u64));
        }
    }
    let cutoff = std::time::SystemTime::now() - grace;
    for (path, digest, size, modified) in blob_files(&blobs.root().join("blobs").join("sha256")) {
        let known = match &digest {
            Some(digest) => store.blob(digest).await?.is_some() || report.blobs.iter().any(|(d, _)| d == digest),
            None => false,
        };
        if !known && modified < cutoff {
            if !dry_run {
                remove(&path).await;
            }
            report.files.push((path, size));
        }
    }
    for session in store.stale_uploads(before).await? {
        if !dry_run {
            store.delete_upload(&session.id).await?;
            blobs.remove_upload(&session.id).await.map_err(image_core::Error::storage)?;
        }
        report.uploads.push((session.id, session.size.max(0) as u64));
    }
    for entry in std::fs::read_dir(blobs.root().join("uploads")).into_iter().flatten().flatten() {
        let (Ok(meta), Some(id)) = (entry.metadata(), entry.file_name().to_str().map(str::to_owned)) else { continue };
        let modified = meta.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH);
        if !meta.is_file() || modified >= cutoff || report.uploads.iter().any(|(u, _)| *u == id) {
            continue;
        }
        if store.get_upload(&id).await?.is_some() {
            continue;
        }
        if !dry_run {
            blobs.remove_upload(&id).await.map_err(image_core::Error::storage)?;
        }
        report.uploads.push((id, meta.len()));
    }
    Ok(report)
}

async fn remove(path: &std::path::Path) {
    if let Err(e) = tokio::fs::remove_file(path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove a collected blob file");
    }
}

/// The files under `blobs/sha256/<2 hex>/`: path, the digest its name gives (if it is one), size, mtime.
fn blob_files(dir: &std::path::Path) -> Vec<(PathBuf, Option<Digest>, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for entry in std::fs::read_dir(shard.path()).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let digest = entry.file_name().to_str().and_then(|name| format!("sha256:{name}").parse().ok());
            let modified = meta.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH);
            out.push((entry.path(), digest, meta.len(), modified));
        }
    }
    out
}
