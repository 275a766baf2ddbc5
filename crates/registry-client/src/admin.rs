//! [`DistributionAdmin`]: the internal-registry port ([`RegistryAdmin`]) for a plain OCI distribution
//! registry, answering what `/v2/` can tell.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt as _;
use image_core::copy::{CopyError, CopyOutcome, CopyProgress, CopyRequest, ImageCopier, RegistryAccess};
use image_core::manifest::{MAX_CONFIG_BYTES, ManifestSummary, config_platform};
use image_core::registry::{
    ComponentHealth, RegistryAdmin, RegistryArtifact, RegistryHealth, RegistryKind, RegistryRepository,
    RegistryStatistics, ScanOverview,
};
use image_core::{Digest, ErrorCode, Reference};

use crate::client::RegistryClient;
use crate::error::Error;
use crate::types::{ManifestRef, Repo};

/// A plain OCI distribution registry as the internal registry: health from `GET /v2/`, repositories from
/// `_catalog`, artifacts from tag lists and manifests, deletes by manifest digest. It has no projects (a
/// namespace exists once something is pushed into it), no statistics beyond the catalog, and no scanner.
#[derive(Debug, Clone)]
pub struct DistributionAdmin {
    client: Arc<RegistryClient>,
    registry: String,
}

impl DistributionAdmin {
    /// The registry `host[:port]` through `client`, with the client's configured credentials for it.
    pub fn new(client: Arc<RegistryClient>, registry: impl Into<String>) -> DistributionAdmin {
        DistributionAdmin { client, registry: registry.into() }
    }

    fn repo(&self, repository: &str) -> image_core::Result<Repo> {
        Repo::new(&self.registry, repository).map_err(|e| image_core::Error::invalid("repository", e))
    }

    /// One artifact of `repo` by digest, described by [`ManifestSummary`]; an image's platform from its
    /// config blob.
    async fn artifact(&self, repo: &Repo, digest: &Digest, tags: Vec<String>) -> Result<RegistryArtifact, Error> {
        let manifest = self.client.get_manifest(repo, &ManifestRef::from(digest.clone())).await?;
        let summary = ManifestSummary::read(&manifest.bytes, &manifest.media_type);
        let platforms = match &summary.config {
            Some(config) => self.config_platform(repo, config).await.into_iter().collect(),
            None => summary.platforms,
        };
        Ok(RegistryArtifact {
            repository: repo.repository().to_owned(),
            digest: digest.clone(),
            media_type: Some(summary.media_type),
            tags,
            size: Some(summary.size),
            platforms,
            push_time: None,
        })
    }

    /// The platform of the image config blob `digest`; `None` when it cannot be read, is larger than a
    /// config may be, or does not say.
    async fn config_platform(&self, repo: &Repo, digest: &Digest) -> Option<String> {
        let mut blob = self.client.get_blob(repo, digest, 0).await.ok()?;
        let mut bytes = Vec::new();
        while let Some(chunk) = blob.stream.next().await {
            bytes.extend_from_slice(&chunk.ok()?);
            if bytes.len() as u64 > MAX_CONFIG_BYTES {
                return None;
            }
        }
        config_platform(&bytes)
    }
}

#[async_trait]
impl RegistryAdmin for DistributionAdmin {
    fn kind(&self) -> RegistryKind {
        RegistryKind::Distribution
    }

    async fn health(&self) -> RegistryHealth {
        let (status, reason) = match self.client.ping(&self.registry).await {
            Ok(()) => ("healthy", None),
            Err(e) => ("unhealthy", Some(e.to_string())),
        };
        RegistryHealth {
            status: status.to_owned(),
            components: vec![ComponentHealth { name: "registry".to_owned(), status: status.to_owned() }],
            reason,
        }
    }

    /// Projects are the first path segments of the catalog's repositories. Whether one is private is not
    /// something `/v2/` says: every project and repository counts as private when the registry asks for
    /// credentials, as public when it answers anonymous requests. Storage is unknown here.
    async fn statistics(&self) -> image_core::Result<RegistryStatistics> {
        let repositories = self.client.catalog(&self.registry, None).await.map_err(core_error)?;
        let projects = repositories.iter().map(|r| r.split_once('/').map_or("", |(p, _)| p)).collect::<BTreeSet<_>>();
        let private =
            self.client.config().credentials.keys().any(|k| crate::config::normalize_registry(k) == self.registry);
        let (projects, repositories) = (projects.len() as u64, repositories.len() as u64);
        Ok(RegistryStatistics {
            private_project_count: Some(if private { projects } else { 0 }),
            public_project_count: Some(if private { 0 } else { projects }),
            private_repo_count: Some(if private { repositories } else { 0 }),
            public_repo_count: Some(if private { 0 } else { repositories }),
            total_storage: None,
        })
    }

    async fn ensure_project(&self, _project: &str) -> image_core::Result<()> {
        Ok(())
    }

    async fn list_repositories(&self) -> image_core::Result<Vec<RegistryRepository>> {
        let names = self.client.catalog(&self.registry, None).await.map_err(core_error)?;
        Ok(names
            .into_iter()
            .map(|name| RegistryRepository { name, artifact_count: None, pull_count: None, updated_at: None })
            .collect())
    }

    /// One manifest `GET` per distinct digest the tags point to (and one config blob per image manifest);
    /// untagged manifests are not listed, since `/v2/` cannot enumerate them.
    async fn list_artifacts(&self, repository: &str) -> image_core::Result<Vec<RegistryArtifact>> {
        let repo = self.repo(repository)?;
        let tags = match self.client.list_tags(&repo, None).await {
            Ok(tags) => tags,
            Err(e) if e.is_not_found() => return Ok(Vec::new()),
            Err(e) => return Err(core_error(e)),
        };
        let mut by_digest: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        for tag in tags {
            let Ok(reference) = ManifestRef::tag(&tag) else { continue };
            match self.client.head_manifest(&repo, &reference).await {
                Ok(Some(head)) => by_digest.entry(head.digest).or_default().push(tag),
                // Deleted between the listing and the HEAD.
                Ok(None) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(core_error(e)),
            }
        }
        let mut artifacts = Vec::with_capacity(by_digest.len());
        for (digest, tags) in by_digest {
            match self.artifact(&repo, &digest, tags).await {
                Ok(artifact) => artifacts.push(artifact),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(core_error(e)),
            }
        }
        Ok(artifacts)
    }

    async fn delete_artifact(&self, repository: &str, digest: &Digest) -> image_core::Result<()> {
        let repo = self.repo(repository)?;
        match self.client.delete_manifest(&repo, digest).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(core_error(e)),
        }
    }

    async fn request_scan(&self, _repository: &str, _digest: &Digest) -> image_core::Result<bool> {
        Ok(false)
    }

    async fn scan_overview(&self, _repository: &str, _digest: &Digest) -> image_core::Result<Option<ScanOverview>> {
        Ok(None)
    }
}

/// The copier of the internal registry: the copy engine, with its adapter before and after. A copy into the
/// internal registry first makes sure the target's project exists (Harbor refuses a push into a project that
/// does not; a plain registry needs nothing); a delete there resolves the tag to its digest and goes through
/// the adapter (Harbor's artifact API, or a manifest `DELETE`). Everything else is the engine's.
pub struct InternalCopier {
    engine: Arc<dyn ImageCopier>,
    client: Arc<RegistryClient>,
    admin: Arc<dyn RegistryAdmin>,
    host: String,
}

impl InternalCopier {
    /// `engine` copies; `admin` speaks for the internal registry `host`, which `client` reaches.
    pub fn new(
        engine: Arc<dyn ImageCopier>,
        client: Arc<RegistryClient>,
        admin: Arc<dyn RegistryAdmin>,
        host: impl Into<String>,
    ) -> InternalCopier {
        InternalCopier { engine, client, admin, host: host.into() }
    }

    fn is_internal(&self, reference: &Reference) -> bool {
        crate::config::normalize_registry(reference.registry()) == crate::config::normalize_registry(&self.host)
    }
}

impl std::fmt::Debug for InternalCopier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalCopier").field("host", &self.host).finish_non_exhaustive()
    }
}

#[async_trait]
impl ImageCopier for InternalCopier {
    async fn copy_image(&self, request: &CopyRequest, progress: &dyn CopyProgress) -> Result<CopyOutcome, CopyError> {
        if self.is_internal(&request.target) {
            let project = request.target.repository().split('/').next().unwrap_or_default();
            self.admin.ensure_project(project).await.map_err(|e| {
                let message = format!("cannot make sure project `{project}` exists on {}: {e}", self.host);
                match e.code() {
                    ErrorCode::UpstreamUnavailable | ErrorCode::RateLimited => CopyError::transient(message),
                    _ => CopyError::permanent(message),
                }
            })?;
        }
        self.engine.copy_image(request, progress).await
    }

    async fn check_source(&self, source: &Reference, access: &RegistryAccess) -> Result<(), CopyError> {
        self.engine.check_source(source, access).await
    }

    async fn verify_credentials(
        &self,
        registry: &str,
        username: &str,
        password: &image_core::kube::Secret,
        insecure: bool,
    ) -> Result<(), CopyError> {
        self.engine.verify_credentials(registry, username, password, insecure).await
    }

    async fn delete_image(&self, target: &Reference) -> Result<(), CopyError> {
        if !self.is_internal(target) || self.admin.kind() != RegistryKind::Harbor {
            return self.engine.delete_image(target).await;
        }
        let repo = Repo::from(target);
        let digest = match target.digest() {
            Some(digest) => digest.clone(),
            None => match self.client.head_manifest(&repo, &ManifestRef::of(target)).await {
                Ok(Some(head)) => head.digest,
                Ok(None) => return Ok(()),
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) if e.is_transient() => return Err(CopyError::transient(format!("cannot delete {target}: {e}"))),
                Err(e) => return Err(CopyError::permanent(format!("cannot delete {target}: {e}"))),
            },
        };
        self.admin.delete_artifact(target.repository(), &digest).await.map_err(|e| {
            let message = format!("cannot delete {target}: {e}");
            match e.code() {
                ErrorCode::UpstreamUnavailable | ErrorCode::RateLimited => CopyError::transient(message),
                _ => CopyError::permanent(message),
            }
        })
    }
}

/// A registry failure as the domain's error: the registry's unavailability, refusals and rate limits keep
/// their kind; a repository or artifact it does not have is not found.
pub(crate) fn core_error(error: Error) -> image_core::Error {
    match &error {
        Error::NotFound { .. } => image_core::Error::not_found("registry object", error.to_string()),
        Error::RateLimited { retry_after, .. } => {
            image_core::Error::rate_limited(error.to_string(), retry_after.map(|d| d.as_secs().max(1)))
        }
        Error::InvalidInput(reason) => image_core::Error::invalid("registry request", reason),
        _ => image_core::Error::upstream_unavailable(error.to_string()),
    }
}
