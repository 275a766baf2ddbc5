//! [`BuiltinAdmin`]: the internal-registry port ([`RegistryAdmin`]) for the built-in registry, answered from
//! its own metadata (the [`RegistryStore`]) and blob directory instead of over `/v2/`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use image_core::manifest::{MAX_CONFIG_BYTES, ManifestSummary, config_platform};
use image_core::oci::{ManifestRef, RegistryStore, StoredManifest};
use image_core::registry::{
    ComponentHealth, RegistryAdmin, RegistryArtifact, RegistryHealth, RegistryKind, RegistryRepository,
    RegistryStatistics, ScanOverview,
};
use image_core::{Digest, Result};
use tokio::io::AsyncReadExt as _;

use crate::storage::BlobStore;

/// Names read from the store per listing request.
const PAGE: i64 = 1000;

/// The built-in registry as the internal registry: repositories, tags and manifests (with their push time)
/// from the store, sizes from the manifests, platforms from the configs on disk, storage from the blob files.
/// It speaks the distribution API, so it counts as [`RegistryKind::Distribution`]: no projects to create, no
/// scanner.
pub struct BuiltinAdmin {
    store: Arc<dyn RegistryStore>,
    blobs: Arc<BlobStore>,
    anonymous_pull: bool,
}

impl std::fmt::Debug for BuiltinAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinAdmin").field("root", &self.blobs.root()).finish_non_exhaustive()
    }
}

impl BuiltinAdmin {
    /// The registry whose metadata `store` keeps and whose blobs `blobs` holds; `anonymous_pull` makes its
    /// projects and repositories count as public.
    pub fn new(store: Arc<dyn RegistryStore>, blobs: Arc<BlobStore>, anonymous_pull: bool) -> BuiltinAdmin {
        BuiltinAdmin { store, blobs, anonymous_pull }
    }

    async fn repositories(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        loop {
            let page = self.store.list_repositories(names.last().map(String::as_str), PAGE).await?;
            let done = (page.len() as i64) < PAGE;
            names.extend(page);
            if done {
                return Ok(names);
            }
        }
    }

    async fn tags(&self, repository: &str) -> Result<Vec<String>> {
        let mut tags = Vec::new();
        loop {
            let page = self.store.list_tags(repository, tags.last().map(String::as_str), PAGE).await?;
            let done = (page.len() as i64) < PAGE;
            tags.extend(page);
            if done {
                return Ok(tags);
            }
        }
    }

    /// Size and platforms of a stored manifest ([`ManifestSummary`]), an image's platform from its config
    /// on disk.
    async fn describe(&self, manifest: StoredManifest, tags: Vec<String>) -> RegistryArtifact {
        let summary = ManifestSummary::read(&manifest.content, &manifest.media_type);
        let platforms = match &summary.config {
            Some(config) => self.config_platform(config).await.into_iter().collect(),
            None => summary.platforms,
        };
        RegistryArtifact {
            repository: manifest.repository,
            digest: manifest.digest,
            media_type: Some(summary.media_type),
            tags,
            size: Some(summary.size),
            platforms,
            push_time: Some(manifest.created_at),
        }
    }

    /// The platform of the image config `digest` on disk; `None` when it is missing or does not say.
    async fn config_platform(&self, digest: &Digest) -> Option<String> {
        let file = tokio::fs::File::open(self.blobs.blob_path(digest)).await.ok()?;
        let mut bytes = Vec::new();
        // Read no more than a config may be, whatever the file holds.
        file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes).await.ok()?;
        config_platform(&bytes)
    }
}

#[async_trait]
impl RegistryAdmin for BuiltinAdmin {
    fn kind(&self) -> RegistryKind {
        RegistryKind::Distribution
    }

    /// Two components: `metadata` (the store answers) and `storage` (the blob directory is there).
    async fn health(&self) -> RegistryHealth {
        let metadata = self.store.list_repositories(None, 1).await.err().map(|e| format!("metadata: {e}"));
        let dir = self.blobs.root().join("blobs");
        let storage = match tokio::fs::metadata(&dir).await {
            Ok(m) if m.is_dir() => None,
            Ok(_) => Some(format!("storage: {} is not a directory", dir.display())),
            Err(e) => Some(format!("storage: {}: {e}", dir.display())),
        };
        let status = |problem: &Option<String>| if problem.is_none() { "healthy" } else { "unhealthy" }.to_owned();
        let components = vec![
            ComponentHealth { name: "metadata".to_owned(), status: status(&metadata) },
            ComponentHealth { name: "storage".to_owned(), status: status(&storage) },
        ];
        let reasons: Vec<String> = metadata.into_iter().chain(storage).collect();
        RegistryHealth {
            status: if reasons.is_empty() { "healthy" } else { "unhealthy" }.to_owned(),
            components,
            reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
        }
    }

    /// Projects are the first path segments of the repositories; all private unless anonymous pulls are on.
    /// Storage is the bytes of the blob files.
    async fn statistics(&self) -> Result<RegistryStatistics> {
        let repositories = self.repositories().await?;
        let projects = repositories.iter().map(|r| r.split_once('/').map_or("", |(p, _)| p)).collect::<BTreeSet<_>>();
        let (projects, repositories) = (projects.len() as u64, repositories.len() as u64);
        let root = self.blobs.root().join("blobs");
        let total = tokio::task::spawn_blocking(move || bytes_under(&root))
            .await
            .map_err(image_core::Error::storage)?
            .map_err(image_core::Error::storage)?;
        let public = self.anonymous_pull;
        Ok(RegistryStatistics {
            private_project_count: Some(if public { 0 } else { projects }),
            public_project_count: Some(if public { projects } else { 0 }),
            private_repo_count: Some(if public { 0 } else { repositories }),
            public_repo_count: Some(if public { repositories } else { 0 }),
            total_storage: Some(total),
        })
    }

    async fn ensure_project(&self, _project: &str) -> Result<()> {
        Ok(())
    }

    /// Every repository that holds a manifest, with its count of tagged artifacts and its latest push.
    async fn list_repositories(&self) -> Result<Vec<RegistryRepository>> {
        let mut out = Vec::new();
        for name in self.repositories().await? {
            let (mut digests, mut updated_at) = (BTreeSet::new(), None);
            for tag in self.tags(&name).await? {
                if let Some(m) = self.store.get_manifest(&name, &ManifestRef::Tag(tag)).await? {
                    updated_at = updated_at.max(Some(m.created_at));
                    digests.insert(m.digest);
                }
            }
            out.push(RegistryRepository {
                name,
                artifact_count: Some(digests.len() as u64),
                pull_count: None,
                updated_at,
            });
        }
        Ok(out)
    }

    /// The tagged artifacts of the repository, by digest, each with its tags; an unknown repository has none.
    async fn list_artifacts(&self, repository: &str) -> Result<Vec<RegistryArtifact>> {
        let mut by_digest: BTreeMap<Digest, (StoredManifest, Vec<String>)> = BTreeMap::new();
        for tag in self.tags(repository).await? {
            if let Some(m) = self.store.get_manifest(repository, &ManifestRef::Tag(tag.clone())).await? {
                by_digest.entry(m.digest.clone()).or_insert_with(|| (m, Vec::new())).1.push(tag);
            }
        }
        let mut artifacts = Vec::with_capacity(by_digest.len());
        for (_, (manifest, tags)) in by_digest {
            artifacts.push(self.describe(manifest, tags).await);
        }
        Ok(artifacts)
    }

    /// Deletes the manifest and its tags from the store; its blobs go at the next garbage collection.
    async fn delete_artifact(&self, repository: &str, digest: &Digest) -> Result<()> {
        self.store.delete_manifest(repository, digest).await.map(|_| ())
    }

    async fn request_scan(&self, _repository: &str, _digest: &Digest) -> Result<bool> {
        Ok(false)
    }

    async fn scan_overview(&self, _repository: &str, _digest: &Digest) -> Result<Option<ScanOverview>> {
        Ok(None)
    }
}

/// The bytes of every file under `dir` (none when it is missing).
fn bytes_under(dir: &std::path::Path) -> std::io::Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut total = 0;
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += bytes_under(&entry.path())?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}
