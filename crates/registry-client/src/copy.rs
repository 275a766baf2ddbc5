//! The copy engine: [`CopyEngine`] copies an image (a manifest or a whole index) from one repository
//! to another, on the same registry or another one, for the import and sync jobs.
//!
//! It implements [`ImageCopier`] on top of [`RegistryClient`]; the README's "Copy engine" section
//! describes the algorithm and the platform-filter rule.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt as _, TryStreamExt as _, stream};
use image_core::copy::{CopyError, CopyErrorKind, CopyOutcome, CopyProgress, CopyRequest, ImageCopier, RegistryAccess};
use image_core::import::{Artifact, BlobCopy, LayerProgress, LayerState, Platform};
use image_core::kube::Secret;
use image_core::{Digest, Reference};
use serde::Deserialize;
use tokio::sync::{Semaphore, watch};

use crate::blob::{ByteStream, verify_digest};
use crate::client::RegistryClient;
use crate::config::{ClientConfig, Credential, RetryPolicy};
use crate::error::{Error, Missing};
use crate::types::{Manifest, ManifestRef, MountOutcome, Repo, UploadLocation, media_type};

/// Blobs in flight at once per copy, when not configured.
const DEFAULT_BLOB_CONCURRENCY: usize = 4;
/// A blob's progress is reported at most this often while its bytes flow.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// Attempts at one blob when its transfer fails transiently (an interrupted stream, a 5xx on the
/// upload, which the client does not replay), before the whole copy fails.
const BLOB_ATTEMPTS: u32 = 3;
const BLOB_RETRY_DELAY: Duration = Duration::from_millis(500);
/// An image config larger than this is not read for its platform (configs are a few KiB).
const MAX_CONFIG_SIZE: u64 = 4 * 1024 * 1024;
/// Digests remembered with the target repositories that hold them, for cross-repository mounts.
const KNOWN_BLOBS_CAPACITY: usize = 200_000;
/// Repositories remembered per digest.
const REPOSITORIES_PER_BLOB: usize = 4;
/// Mount attempts per blob whose request fails outright (a 201 or 202 ends the attempts).
const MOUNT_ATTEMPTS: usize = 2;
/// Bytes of source indexes kept in memory, so that a filtered re-import does not GET the index
/// (which Docker Hub counts against its pull limit) again.
const INDEX_CACHE_BYTES: usize = 16 * 1024 * 1024;
/// The annotation BuildKit puts on the attestation manifests of an index.
const REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";

/// How a [`CopyEngine`] copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyConfig {
    /// Blobs transferred at once by one copy (default 4). Clamped to what the client's
    /// `max_concurrent_requests_per_registry` allows; see the README.
    pub blob_concurrency: usize,
}

impl Default for CopyConfig {
    fn default() -> Self {
        CopyConfig { blob_concurrency: DEFAULT_BLOB_CONCURRENCY }
    }
}

/// Copies images between registries with a [`RegistryClient`]: HEAD first, skip what the target
/// has, mount what another repository of the target has, stream and verify the rest, then push
/// the manifests by their exact bytes.
///
/// Cheap to clone; clones share what they learnt (which target repositories hold which blobs,
/// source indexes already read, the transfer slots of copies within one registry).
#[derive(Clone)]
pub struct CopyEngine {
    client: Arc<RegistryClient>,
    config: CopyConfig,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    known: Mutex<KnownBlobs>,
    indexes: Mutex<IndexCache>,
    /// For copies whose source and target are on one registry: the blob transfers they may run
    /// at once, across all copies, by registry.
    transfer_slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl fmt::Debug for CopyEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CopyEngine")
            .field("config", &self.config)
            .field("known_blobs", &lock(&self.shared.known).len())
            .finish_non_exhaustive()
    }
}

impl CopyEngine {
    /// The client every operation of this engine starts from.
    pub(crate) fn client(&self) -> &RegistryClient {
        &self.client
    }

    pub fn new(client: Arc<RegistryClient>, config: CopyConfig) -> CopyEngine {
        CopyEngine { client, config, shared: Arc::default() }
    }

    /// The per-registry request slots of the client.
    fn request_slots(&self) -> usize {
        self.client.max_concurrent_requests_per_registry()
    }

    /// Blob transfers one copy runs at once.
    ///
    /// A download holds one of its registry's request slots until its stream ends, and its upload
    /// needs one of the target's. Within one registry a transfer thus needs two slots, and all
    /// transfers holding their download slot while waiting for an upload slot would deadlock: at
    /// most `(slots - 1) / 2` run at once there (also across copies, see [`Self::transfer_slots`]).
    fn blob_concurrency(&self, same_registry: bool) -> usize {
        let wanted = self.config.blob_concurrency.max(1);
        let slots = self.request_slots();
        if same_registry { wanted.min(same_registry_transfers(slots)) } else { wanted.min(slots) }
    }

    /// The semaphore that bounds blob transfers within `registry`, across every copy of this engine.
    fn transfer_slots(&self, registry: &str) -> Arc<Semaphore> {
        let permits = same_registry_transfers(self.request_slots());
        lock(&self.shared.transfer_slots)
            .entry(registry.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(permits)))
            .clone()
    }
}

fn same_registry_transfers(slots: usize) -> usize {
    (slots.saturating_sub(1) / 2).max(1)
}

#[async_trait]
impl ImageCopier for CopyEngine {
    async fn copy_image(&self, request: &CopyRequest, progress: &dyn CopyProgress) -> Result<CopyOutcome, CopyError> {
        let started = Instant::now();
        let outcome = Job::new(self, request, progress).run().await?;
        crate::metrics::throughput(outcome.bytes_copied, started.elapsed());
        Ok(outcome)
    }

    async fn check_source(&self, source: &Reference, access: &RegistryAccess) -> Result<(), CopyError> {
        let repo = Repo::from(source);
        let client = self.client.with_access(repo.registry(), access);
        match client.head_manifest(&repo, &ManifestRef::of(source)).await {
            Ok(Some(head)) if media_type::is_schema1(&head.media_type) => {
                Err(schema1_error(Side::Source, source, &head.media_type))
            }
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(CopyError::permanent(format!("source {source} not found"))),
            Err(e) => Err(copy_error(Side::Source, source, None, e)),
        }
    }

    async fn verify_credentials(
        &self,
        registry: &str,
        username: &str,
        password: &Secret,
        insecure: bool,
    ) -> Result<(), CopyError> {
        // A client of its own, so that credentials under test never replace the ones in use.
        let base = self.client.config();
        let mut config = ClientConfig {
            insecure_registries: if insecure { vec![registry.to_owned()] } else { Vec::new() },
            ca_certificates_pem: base.ca_certificates_pem.clone(),
            retry: RetryPolicy { max_attempts: 2, ..base.retry.clone() },
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            egress: base.egress.clone(),
            ..ClientConfig::default()
        };
        config.credentials.insert(registry.to_owned(), Credential::new(username, password.expose()));
        let client = RegistryClient::new(config).map_err(|e| CopyError::permanent(e.to_string()))?;
        match client.ping(registry).await {
            Ok(()) => Ok(()),
            Err(Error::Unauthorized { .. }) | Err(Error::Denied { .. }) => Err(CopyError::permanent(format!(
                "the registry {registry} refused the credentials for user {username}"
            ))),
            Err(e) if e.is_transient() => Err(CopyError::transient(e.to_string())),
            Err(e) => Err(CopyError::permanent(e.to_string())),
        }
    }

    async fn delete_image(&self, target: &Reference) -> Result<(), CopyError> {
        let repo = Repo::from(target);
        let digest = match target.digest() {
            Some(digest) => digest.clone(),
            None => match self.client.head_manifest(&repo, &target_manifest_ref(target)).await {
                Ok(Some(head)) => head.digest,
                Ok(None) => return Ok(()),
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(copy_error(Side::Delete, target, None, e)),
            },
        };
        match self.client.delete_manifest(&repo, &digest).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(copy_error(Side::Delete, target, Some(&format!("manifest {digest}")), e)),
        }
    }
}

// ---- one copy ---------------------------------------------------------------------------------

/// One run of [`ImageCopier::copy_image`].
struct Job<'a> {
    engine: &'a CopyEngine,
    /// Reads the source with the request's access.
    source_client: RegistryClient,
    /// Reads and writes the target with the configured credentials.
    client: &'a RegistryClient,
    request: &'a CopyRequest,
    progress: &'a dyn CopyProgress,
    source: Repo,
    target: Repo,
    /// Set when source and target are on one registry.
    transfer_slots: Option<Arc<Semaphore>>,
    concurrency: usize,
}

/// What will be pushed: the manifest the tag points at and, for an index, its children.
struct Plan {
    top: Node,
    children: Vec<Node>,
    artifacts: Vec<Artifact>,
    /// Blobs already read whole (the config of a single manifest, or of an index's first platform):
    /// uploaded from memory.
    in_memory: HashMap<Digest, Bytes>,
    /// The `created` of the image config read: the image's, or the first platform's.
    created: Option<String>,
}

/// A manifest to copy, with its exact bytes.
struct Node {
    manifest: Manifest,
    /// The blobs it refers to (none for an index).
    blobs: Vec<BlobRef>,
    /// Its image config, among `blobs` (none for an index).
    config: Option<BlobRef>,
    /// Whether the target repository holds this manifest, and therefore every blob it refers to
    /// (registries check that on push).
    in_target: bool,
}

#[derive(Debug, Clone)]
struct BlobRef {
    digest: Digest,
    size: u64,
    /// Foreign (non-distributable) layers live elsewhere and are not copied.
    foreign: bool,
}

/// A failed blob transfer and which side failed.
struct BlobFailure {
    side: Side,
    error: Error,
}

impl<'a> Job<'a> {
    fn new(engine: &'a CopyEngine, request: &'a CopyRequest, progress: &'a dyn CopyProgress) -> Job<'a> {
        let source = Repo::from(&request.source);
        let target = Repo::from(&request.target);
        let same_registry = source.registry() == target.registry();
        Job {
            engine,
            source_client: engine.client.with_access(source.registry(), &request.source_access),
            client: &engine.client,
            request,
            progress,
            transfer_slots: same_registry.then(|| engine.transfer_slots(target.registry())),
            concurrency: engine.blob_concurrency(same_registry),
            source,
            target,
        }
    }

    fn source_error(&self, object: Option<&str>, error: Error) -> CopyError {
        copy_error(Side::Source, &self.request.source, object, error)
    }

    fn target_error(&self, object: Option<&str>, error: Error) -> CopyError {
        copy_error(Side::Target, &self.request.target, object, error)
    }

    async fn run(&self) -> Result<CopyOutcome, CopyError> {
        let source_ref = &self.request.source;
        if self.transfer_slots.is_some() && self.engine.request_slots() < 2 {
            return Err(CopyError::permanent(format!(
                "cannot copy {source_ref} within its registry with max_concurrent_requests_per_registry = 1: \
                 a blob's download and upload need a request slot each"
            )));
        }
        // HEAD first: Docker Hub counts manifest GETs against its pull limit, HEADs not.
        let head = self
            .source_client
            .head_manifest(&self.source, &ManifestRef::of(source_ref))
            .await
            .map_err(|e| self.source_error(None, e))?
            .ok_or_else(|| CopyError::permanent(format!("source {source_ref} not found")))?;
        if media_type::is_schema1(&head.media_type) {
            return Err(schema1_error(Side::Source, source_ref, &head.media_type));
        }
        let target_ref = target_manifest_ref(&self.request.target);
        let at_target = self
            .client
            .head_manifest(&self.target, &target_ref)
            .await
            .map_err(|e| self.target_error(None, e))?
            .map(|h| h.digest);

        let plan = self.plan(&head.digest, at_target.as_ref()).await?;
        let top_digest = plan.top.manifest.digest.clone();
        if let Some(pinned) = self.request.target.digest()
            && pinned != &top_digest
        {
            return Err(CopyError::permanent(format!(
                "target {} pins digest {pinned}, but source {source_ref} resolves to {top_digest}",
                self.request.target
            )));
        }
        self.progress.resolved(&top_digest, &plan.artifacts);

        let mut outcome = CopyOutcome {
            digest: top_digest.clone(),
            artifacts: plan.artifacts.clone(),
            blobs_copied: 0,
            bytes_copied: 0,
            blobs_skipped: 0,
            blobs_mounted: 0,
            created: plan.created.clone(),
        };
        self.copy_blobs(&plan, &mut outcome).await?;

        // Manifests last, once every blob they refer to is there: children by digest, then the
        // manifest the tag points at.
        // (Owned items: closures over borrowed ones trip the compiler's Send check of this future.)
        let children: Vec<Manifest> =
            plan.children.iter().filter(|c| !c.in_target).map(|c| c.manifest.clone()).collect();
        stream::iter(children)
            .map(|child| {
                let reference = ManifestRef::from(&child.digest);
                self.push_manifest(child, reference)
            })
            .buffer_unordered(self.concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        let tagged = match self.request.target.tag() {
            Some(_) => at_target.as_ref() == Some(&top_digest),
            None => plan.top.in_target,
        };
        if !tagged {
            self.push_manifest(plan.top.manifest.clone(), target_ref).await?;
        }
        tracing::info!(
            source = %self.request.source,
            destination = %self.request.target,
            digest = %top_digest,
            copied = outcome.blobs_copied,
            bytes = outcome.bytes_copied,
            skipped = outcome.blobs_skipped,
            mounted = outcome.blobs_mounted,
            "image copied"
        );
        Ok(outcome)
    }

    async fn push_manifest(&self, m: Manifest, reference: ManifestRef) -> Result<(), CopyError> {
        self.client
            .put_manifest(&self.target, &reference, &m.media_type, m.bytes.clone())
            .await
            .map(drop)
            .map_err(|e| self.target_error(Some(&format!("manifest {}", m.digest)), e))
    }

    // ---- resolving ----------------------------------------------------------------------------

    /// Reads the manifests to copy (from the target when it has them, which costs no pull quota at
    /// the source) and decides what the tag will point at.
    async fn plan(&self, digest: &Digest, at_target: Option<&Digest>) -> Result<Plan, CopyError> {
        let top_tagged = at_target == Some(digest);
        let cached = if top_tagged { None } else { lock(&self.engine.shared.indexes).get(digest) };
        let (top, top_in_target) = match cached {
            Some(manifest) => (manifest, false),
            None => self.fetch_manifest(digest, top_tagged).await?,
        };
        let top_in_target = top_in_target || top_tagged;
        match parse_manifest(&top).map_err(|reason| self.invalid_manifest(digest, &reason))? {
            Parsed::Index(entries) => {
                if !top_in_target {
                    lock(&self.engine.shared.indexes).insert(top.clone());
                }
                self.plan_index(top, top_in_target, entries, at_target).await
            }
            Parsed::Image(blobs) => self.plan_image(top, top_in_target, blobs).await,
        }
    }

    async fn plan_index(
        &self,
        index: Manifest,
        index_in_target: bool,
        entries: Vec<IndexEntry>,
        at_target: Option<&Digest>,
    ) -> Result<Plan, CopyError> {
        let selected = select(&entries, &self.request.platforms)
            .map_err(|reason| CopyError::permanent(format!("source {}: {reason}", self.request.source)))?;
        let chosen: Vec<&IndexEntry> = match selected {
            Selection::One(i) => vec![&entries[i]],
            Selection::All => {
                if !self.request.platforms.is_empty() {
                    tracing::info!(
                        source = %self.request.source,
                        "the platforms asked for are several but not all of the index: copying all of it, \
                         so that the index keeps its digest"
                    );
                }
                // An entry listed twice is copied once.
                let mut seen = HashSet::new();
                entries.iter().filter(|e| seen.insert(e.digest.clone())).collect()
            }
        };
        let digests: Vec<Digest> = chosen.iter().map(|e| e.digest.clone()).collect();
        let nodes: Vec<Node> = stream::iter(digests)
            .map(|digest| async move {
                let prefer_target = index_in_target || at_target == Some(&digest);
                let (manifest, in_target) = self.fetch_manifest(&digest, prefer_target).await?;
                match parse_manifest(&manifest).map_err(|reason| self.invalid_manifest(&digest, &reason))? {
                    Parsed::Image(blobs) => {
                        Ok(Node { manifest, config: blobs.config.clone(), blobs: blobs.all(), in_target })
                    }
                    Parsed::Index(_) => Err(CopyError::permanent(format!(
                        "source {}: child {} of the index is itself an index; nested indexes are not supported",
                        self.request.source, digest
                    ))),
                }
            })
            .buffered(self.concurrency)
            .try_collect()
            .await?;
        let artifacts = chosen
            .iter()
            .zip(&nodes)
            .filter(|(entry, _)| !entry.is_attestation())
            .map(|(entry, node)| Artifact {
                digest: node.manifest.digest.clone(),
                media_type: node.manifest.media_type.clone(),
                os: entry.platform.as_ref().map(|p| p.os.clone()),
                architecture: entry.platform.as_ref().map(|p| p.architecture.clone()),
                variant: entry.platform.as_ref().and_then(|p| p.variant.clone()),
                size: node.blobs.iter().map(|b| b.size).sum(),
            })
            .collect();
        // The first platform's config says when the image was created; it is small, and read here
        // it is not downloaded again.
        let mut in_memory = HashMap::new();
        let mut created = None;
        let first = chosen.iter().zip(&nodes).find(|(entry, _)| !entry.is_attestation()).map(|(_, node)| node);
        if let Some(node) = first
            && let Some(config) = node.config.as_ref().filter(|c| c.size <= MAX_CONFIG_SIZE && !c.foreign)
        {
            let bytes = self.read_config(config, node.in_target).await?;
            created = config_created(&bytes);
            if !node.in_target {
                in_memory.insert(config.digest.clone(), bytes);
            }
        }
        match selected {
            Selection::One(_) => {
                let top = nodes.into_iter().next().unwrap_or_else(|| unreachable!("one entry was chosen"));
                Ok(Plan { top, children: Vec::new(), artifacts, in_memory, created })
            }
            Selection::All => Ok(Plan {
                top: Node { manifest: index, blobs: Vec::new(), config: None, in_target: index_in_target },
                children: nodes,
                artifacts,
                in_memory,
                created,
            }),
        }
    }

    async fn plan_image(&self, manifest: Manifest, in_target: bool, blobs: ImageBlobs) -> Result<Plan, CopyError> {
        let mut in_memory = HashMap::new();
        let mut platform = None;
        let mut created = None;
        if let Some(config) = blobs.config.as_ref().filter(|c| c.size <= MAX_CONFIG_SIZE && !c.foreign) {
            let bytes = self.read_config(config, in_target).await?;
            platform = config_platform(&bytes);
            created = config_created(&bytes);
            if !in_target {
                in_memory.insert(config.digest.clone(), bytes);
            }
        }
        if let Some(p) = &platform
            && !self.request.platforms.is_empty()
            && !self.request.platforms.iter().any(|w| platform_matches(w, p))
        {
            return Err(CopyError::permanent(format!(
                "source {} is a single-platform image for {}, not {}",
                self.request.source,
                p,
                list(&self.request.platforms)
            )));
        }
        let config = blobs.config.clone();
        let blobs = blobs.all();
        let artifacts = vec![Artifact {
            digest: manifest.digest.clone(),
            media_type: manifest.media_type.clone(),
            os: platform.as_ref().map(|p| p.os.clone()),
            architecture: platform.as_ref().map(|p| p.architecture.clone()),
            variant: platform.and_then(|p| p.variant),
            size: blobs.iter().map(|b| b.size).sum(),
        }];
        Ok(Plan {
            top: Node { manifest, blobs, config, in_target },
            children: Vec::new(),
            artifacts,
            in_memory,
            created,
        })
    }

    /// A manifest by digest: from the target when `prefer_target` and it has it, else from the
    /// source. Returns whether it came from the target.
    async fn fetch_manifest(&self, digest: &Digest, prefer_target: bool) -> Result<(Manifest, bool), CopyError> {
        let object = format!("manifest {digest}");
        if prefer_target {
            match self.client.get_manifest(&self.target, &ManifestRef::from(digest)).await {
                Ok(manifest) => return Ok((manifest, true)),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(self.target_error(Some(&object), e)),
            }
        }
        let manifest = self
            .source_client
            .get_manifest(&self.source, &ManifestRef::from(digest))
            .await
            .map_err(|e| self.source_error(Some(&object), e))?;
        Ok((manifest, false))
    }

    /// The whole (small) config blob, verified, from the target when it has it.
    async fn read_config(&self, config: &BlobRef, in_target: bool) -> Result<Bytes, CopyError> {
        let (client, repo, side) = if in_target {
            (self.client, &self.target, Side::Target)
        } else {
            (&self.source_client, &self.source, Side::Source)
        };
        let reference = if in_target { &self.request.target } else { &self.request.source };
        let object = format!("config {}", config.digest);
        let fail = |e| copy_error(side, reference, Some(&object), e);
        let download = client.get_blob(repo, &config.digest, 0).await.map_err(fail)?;
        let mut verified = Box::pin(verify_digest(download.stream, config.digest.clone()));
        let mut bytes = BytesMut::new();
        while let Some(chunk) = verified.try_next().await.map_err(fail)? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > config.size {
                return Err(fail(Error::SizeMismatch { expected: config.size, actual: bytes.len() as u64 }));
            }
        }
        if bytes.len() as u64 != config.size {
            return Err(fail(Error::SizeMismatch { expected: config.size, actual: bytes.len() as u64 }));
        }
        Ok(bytes.freeze())
    }

    fn invalid_manifest(&self, digest: &Digest, reason: &str) -> CopyError {
        CopyError::permanent(format!("source {}: manifest {digest} cannot be read: {reason}", self.request.source))
    }

    // ---- blobs --------------------------------------------------------------------------------

    async fn copy_blobs(&self, plan: &Plan, outcome: &mut CopyOutcome) -> Result<(), CopyError> {
        // Every blob once, in manifest order; those of manifests the target holds are there.
        let mut all: Vec<&BlobRef> = Vec::new();
        let mut seen = HashSet::new();
        let mut present = HashSet::new();
        for node in std::iter::once(&plan.top).chain(&plan.children) {
            for blob in node.blobs.iter().filter(|b| !b.foreign) {
                if seen.insert(&blob.digest) {
                    all.push(blob);
                }
                if node.in_target {
                    present.insert(&blob.digest);
                }
            }
        }
        for blob in &all {
            self.report(blob, 0, LayerState::Waiting, None);
        }
        let mut to_copy: Vec<BlobRef> = Vec::new();
        for blob in all {
            if present.contains(&blob.digest) {
                self.engine.remember(&self.target, &blob.digest);
                self.report(blob, blob.size, LayerState::Completed, Some(BlobCopy::Skipped));
                crate::metrics::blob(BlobCopy::Skipped);
                outcome.blobs_skipped += 1;
            } else {
                to_copy.push(blob.clone());
            }
        }
        // Largest first: the long transfers start early and the small ones fill the gaps.
        to_copy.sort_by_key(|b| std::cmp::Reverse(b.size));
        let done: Vec<(BlobCopy, u64)> = stream::iter(to_copy)
            .map(|blob| async move { self.copy_blob(&blob, &plan.in_memory).await.map(|via| (via, blob.size)) })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        for (via, size) in done {
            match via {
                BlobCopy::Skipped => outcome.blobs_skipped += 1,
                BlobCopy::Mounted => outcome.blobs_mounted += 1,
                BlobCopy::Copied => {
                    outcome.blobs_copied += 1;
                    outcome.bytes_copied += size;
                }
            }
        }
        Ok(())
    }

    async fn copy_blob(&self, blob: &BlobRef, in_memory: &HashMap<Digest, Bytes>) -> Result<BlobCopy, CopyError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut done = 0;
            match self.copy_blob_once(blob, in_memory.get(&blob.digest), &mut done).await {
                Ok(via) => {
                    crate::metrics::blob(via);
                    self.engine.remember(&self.target, &blob.digest);
                    self.report(blob, blob.size, LayerState::Completed, Some(via));
                    return Ok(via);
                }
                Err(BlobFailure { side, error }) => {
                    let again = error.is_transient() && !matches!(error, Error::RateLimited { .. });
                    if again && attempt < BLOB_ATTEMPTS {
                        tracing::info!(digest = %blob.digest, attempt, error = %error, "blob transfer failed; retrying");
                        self.report(blob, 0, LayerState::Waiting, None);
                        tokio::time::sleep(BLOB_RETRY_DELAY * attempt).await;
                        continue;
                    }
                    self.report(blob, done, LayerState::Failed, None);
                    let reference = match side {
                        Side::Source => &self.request.source,
                        Side::Target | Side::Delete => &self.request.target,
                    };
                    return Err(copy_error(side, reference, Some(&format!("blob {}", blob.digest)), error));
                }
            }
        }
    }

    /// HEAD on the target, else a mount, else a verified stream from the source.
    async fn copy_blob_once(
        &self,
        blob: &BlobRef,
        in_memory: Option<&Bytes>,
        done: &mut u64,
    ) -> Result<BlobCopy, BlobFailure> {
        let target_failed = |error| BlobFailure { side: Side::Target, error };
        if self.client.head_blob(&self.target, &blob.digest).await.map_err(target_failed)?.is_some() {
            return Ok(BlobCopy::Skipped);
        }
        let mut upload: Option<UploadLocation> = None;
        for from in self.mount_candidates(&blob.digest) {
            match self.client.mount_blob(&self.target, &blob.digest, &from).await {
                Ok(MountOutcome::Mounted) => return Ok(BlobCopy::Mounted),
                Ok(MountOutcome::NotMounted { upload_location }) => {
                    self.engine.forget(&self.target, &blob.digest, &from);
                    upload = Some(upload_location);
                    break;
                }
                Err(e) => tracing::debug!(digest = %blob.digest, from = %from, error = %e, "mount failed"),
            }
        }

        let _slot = match &self.transfer_slots {
            Some(slots) => Some(slots.clone().acquire_owned().await.unwrap_or_else(|_| unreachable!("never closed"))),
            None => None,
        };
        self.report(blob, 0, LayerState::Downloading, None);
        // Open the upload while the download starts: one round trip less per blob.
        let (download, upload) = match (in_memory, upload) {
            (Some(_), upload) => (None, upload),
            (None, Some(upload)) => {
                (Some(self.source_client.get_blob(&self.source, &blob.digest, 0).await), Some(upload))
            }
            (None, None) => {
                let (download, upload) = tokio::join!(
                    self.source_client.get_blob(&self.source, &blob.digest, 0),
                    self.client.start_upload(&self.target)
                );
                match upload {
                    Ok(upload) => (Some(download), Some(upload)),
                    Err(error) => return Err(BlobFailure { side: Side::Target, error }),
                }
            }
        };
        let body: ByteStream = match (in_memory, download) {
            (Some(bytes), _) => Box::pin(stream::iter([Ok(bytes.clone())])),
            (None, None) => unreachable!("a blob not in memory is downloaded"),
            (None, Some(download)) => match download {
                Ok(download) if download.size.is_some_and(|s| s != blob.size) => {
                    self.cancel(upload).await;
                    let actual = download.size.unwrap_or_default();
                    return Err(BlobFailure {
                        side: Side::Source,
                        error: Error::SizeMismatch { expected: blob.size, actual },
                    });
                }
                Ok(download) => Box::pin(verify_digest(download.stream, blob.digest.clone())),
                Err(error) => {
                    self.cancel(upload).await;
                    return Err(BlobFailure { side: Side::Source, error });
                }
            },
        };
        let (tx, rx) = watch::channel(0);
        let body = throttled_progress(body, tx);
        let push = async {
            match upload {
                Some(location) => self.client.push_blob_to(location, &blob.digest, blob.size, body).await,
                None => self.client.push_blob(&self.target, &blob.digest, blob.size, body).await,
            }
        };
        let result = with_progress(push, rx, |bytes| {
            *done = bytes;
            self.report(blob, bytes, LayerState::Downloading, None);
        })
        .await;
        match result {
            Ok(()) => Ok(BlobCopy::Copied),
            Err(error) => Err(BlobFailure { side: self.failed_side(&error), error }),
        }
    }

    /// Repositories of the target registry that hold `digest`: the source's, when it is on the
    /// same registry, then those earlier copies put it in.
    fn mount_candidates(&self, digest: &Digest) -> Vec<String> {
        let mut candidates = Vec::new();
        if self.source.registry() == self.target.registry() && self.source != self.target {
            candidates.push(self.source.repository().to_owned());
        }
        for repository in lock(&self.engine.shared.known).repositories(self.target.registry(), digest) {
            if repository != self.target.repository() && !candidates.contains(&repository) {
                candidates.push(repository);
            }
        }
        candidates.truncate(MOUNT_ATTEMPTS);
        candidates
    }

    async fn cancel(&self, upload: Option<UploadLocation>) {
        if let Some(upload) = upload
            && let Err(e) = self.client.cancel_upload(&upload).await
        {
            tracing::debug!(error = %e, "could not cancel a blob upload");
        }
    }

    /// Which side an error of a blob transfer comes from.
    fn failed_side(&self, error: &Error) -> Side {
        match error {
            // The source stream was verified on the way: its content is what is wrong.
            Error::DigestMismatch { .. } | Error::SizeMismatch { .. } => Side::Source,
            _ if self.source.registry() != self.target.registry()
                && error_registry(error) == Some(self.source.registry()) =>
            {
                Side::Source
            }
            _ => Side::Target,
        }
    }

    fn report(&self, blob: &BlobRef, done: u64, state: LayerState, via: Option<BlobCopy>) {
        self.progress.layer(&LayerProgress { digest: blob.digest.clone(), size: blob.size, done, state, via });
    }
}

/// Runs `future` while reporting what `progress` publishes.
async fn with_progress<F: Future>(
    future: F,
    mut progress: watch::Receiver<u64>,
    mut report: impl FnMut(u64),
) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut open = true;
    loop {
        tokio::select! {
            out = &mut future => return out,
            changed = progress.changed(), if open => match changed {
                Ok(()) => {
                    let done = *progress.borrow_and_update();
                    report(done);
                }
                Err(_) => open = false,
            },
        }
    }
}

/// Counts the bytes of `stream` and publishes the count at most every [`PROGRESS_INTERVAL`]:
/// one report per interval, not one per chunk.
fn throttled_progress(
    stream: ByteStream,
    progress: watch::Sender<u64>,
) -> impl Stream<Item = crate::Result<Bytes>> + Send + 'static {
    let mut done = 0u64;
    let mut last = Instant::now();
    let copied = crate::metrics::bytes_copied();
    stream.inspect(move |item| {
        if let Ok(chunk) = item {
            done += chunk.len() as u64;
            copied.increment(chunk.len() as u64);
            if last.elapsed() >= PROGRESS_INTERVAL {
                last = Instant::now();
                progress.send_replace(done);
            }
        }
    })
}

// ---- manifests --------------------------------------------------------------------------------

#[derive(Deserialize)]
struct ManifestJson {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    config: Option<DescriptorJson>,
    layers: Option<Vec<DescriptorJson>>,
    /// The blobs of an OCI artifact manifest.
    blobs: Option<Vec<DescriptorJson>>,
    manifests: Option<Vec<DescriptorJson>>,
}

#[derive(Deserialize)]
struct DescriptorJson {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    digest: String,
    size: u64,
    urls: Option<Vec<String>>,
    platform: Option<PlatformJson>,
    annotations: Option<HashMap<String, String>>,
}

#[derive(Deserialize)]
struct PlatformJson {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    variant: Option<String>,
}

/// An image config's platform fields.
#[derive(Deserialize)]
struct ConfigJson {
    os: Option<String>,
    architecture: Option<String>,
    variant: Option<String>,
}

#[derive(Debug)]
enum Parsed {
    Index(Vec<IndexEntry>),
    Image(ImageBlobs),
}

#[derive(Debug)]
struct IndexEntry {
    digest: Digest,
    platform: Option<Platform>,
    attestation: bool,
}

impl IndexEntry {
    /// An attestation (BuildKit's provenance and SBOM manifests, platform `unknown/unknown`):
    /// copied with the whole index, never selected by a platform, not an artifact.
    fn is_attestation(&self) -> bool {
        self.attestation
    }
}

#[derive(Debug)]
struct ImageBlobs {
    config: Option<BlobRef>,
    layers: Vec<BlobRef>,
}

impl ImageBlobs {
    fn all(self) -> Vec<BlobRef> {
        self.config.into_iter().chain(self.layers).collect()
    }
}

fn parse_manifest(manifest: &Manifest) -> Result<Parsed, String> {
    let json: ManifestJson = serde_json::from_slice(&manifest.bytes).map_err(|e| format!("not a manifest: {e}"))?;
    let media_type = json.media_type.as_deref().unwrap_or(&manifest.media_type);
    let is_index = matches!(manifest.media_type.as_str(), media_type::OCI_INDEX | media_type::DOCKER_MANIFEST_LIST)
        || matches!(media_type, media_type::OCI_INDEX | media_type::DOCKER_MANIFEST_LIST)
        || (json.manifests.is_some() && json.layers.is_none() && json.config.is_none());
    if is_index {
        let entries = json
            .manifests
            .unwrap_or_default()
            .into_iter()
            .map(|d| {
                let digest = parse_digest(&d.digest)?;
                let platform =
                    d.platform.map(|p| Platform { os: p.os, architecture: p.architecture, variant: p.variant });
                let unknown = platform.as_ref().is_some_and(|p| p.os == "unknown" && p.architecture == "unknown");
                let attestation_annotation = d
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(REFERENCE_TYPE_ANNOTATION))
                    .is_some_and(|t| t == "attestation-manifest");
                Ok(IndexEntry { digest, platform, attestation: unknown || attestation_annotation })
            })
            .collect::<Result<_, String>>()?;
        return Ok(Parsed::Index(entries));
    }
    let blob = |d: DescriptorJson| -> Result<BlobRef, String> {
        let foreign = d.urls.as_ref().is_some_and(|u| !u.is_empty())
            || d.media_type.as_deref().is_some_and(|t| t.contains("foreign") || t.contains("nondistributable"));
        Ok(BlobRef { digest: parse_digest(&d.digest)?, size: d.size, foreign })
    };
    let config = json.config.map(blob).transpose()?;
    let layers = json.layers.into_iter().chain(json.blobs).flatten().map(blob).collect::<Result<_, String>>()?;
    Ok(Parsed::Image(ImageBlobs { config, layers }))
}

fn parse_digest(s: &str) -> Result<Digest, String> {
    s.parse::<Digest>().map_err(|e| format!("digest `{s}`: {e}"))
}

fn config_platform(bytes: &[u8]) -> Option<Platform> {
    let config: ConfigJson = serde_json::from_slice(bytes).ok()?;
    Some(Platform { os: config.os?, architecture: config.architecture?, variant: config.variant })
}

/// An image config's `created`, when it is an RFC 3339 time (it is optional, and reproducible builds
/// set it to the epoch, which is still a time).
fn config_created(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Created {
        created: Option<String>,
    }
    let created = serde_json::from_slice::<Created>(bytes).ok()?.created?;
    time::OffsetDateTime::parse(&created, &time::format_description::well_known::Rfc3339).ok()?;
    Some(created)
}

/// Which children of an index a copy takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selection {
    /// The whole index, under its own digest.
    All,
    /// One platform's manifest, which the tag then points at.
    One(usize),
}

/// No platforms: all. Each platform asked for picks one entry (an error when one has none);
/// one entry picked: that one; several: all of them (see the README for why).
fn select(entries: &[IndexEntry], wanted: &[Platform]) -> Result<Selection, String> {
    if wanted.is_empty() {
        return Ok(Selection::All);
    }
    let mut chosen: Vec<usize> = Vec::new();
    let mut missing = Vec::new();
    for w in wanted {
        let candidates: Vec<usize> = (0..entries.len())
            .filter(|&i| !entries[i].is_attestation())
            .filter(|&i| entries[i].platform.as_ref().is_some_and(|p| platform_matches(w, p)))
            .collect();
        // `linux/arm` matches v6 and v7: take the default variant, else the first listed.
        let best = candidates
            .iter()
            .copied()
            .find(|&i| {
                entries[i].platform.as_ref().is_some_and(|p| {
                    normalized_variant(&p.architecture, p.variant.as_deref()) == default_variant(&p.architecture)
                })
            })
            .or_else(|| candidates.first().copied());
        match best {
            Some(i) if !chosen.iter().any(|&c| entries[c].digest == entries[i].digest) => chosen.push(i),
            Some(_) => {}
            None => missing.push(w.to_string()),
        }
    }
    if !missing.is_empty() {
        let available: Vec<String> = entries
            .iter()
            .filter(|e| !e.is_attestation())
            .filter_map(|e| e.platform.as_ref().map(ToString::to_string))
            .collect();
        return Err(format!(
            "the index has no manifest for {}; it has {}",
            missing.join(", "),
            if available.is_empty() { "none with a platform".to_owned() } else { available.join(", ") }
        ));
    }
    Ok(match chosen.as_slice() {
        [one] => Selection::One(*one),
        _ => Selection::All,
    })
}

/// Whether `have` satisfies `wanted`: same OS and architecture, and the variant asked for (when one
/// is), where a missing variant means the architecture's default (`arm64` is `arm64/v8`).
fn platform_matches(wanted: &Platform, have: &Platform) -> bool {
    wanted.os == have.os
        && wanted.architecture == have.architecture
        && (wanted.variant.is_none()
            || normalized_variant(&wanted.architecture, wanted.variant.as_deref())
                == normalized_variant(&have.architecture, have.variant.as_deref()))
}

fn default_variant(architecture: &str) -> Option<&'static str> {
    match architecture {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        "amd64" => Some("v1"),
        _ => None,
    }
}

fn normalized_variant<'a>(architecture: &str, variant: Option<&'a str>) -> Option<&'a str> {
    variant.or(default_variant(architecture))
}

fn list(platforms: &[Platform]) -> String {
    platforms.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// The target's manifest reference: its tag when it has one (a copy tags), else its digest.
fn target_manifest_ref(target: &Reference) -> ManifestRef {
    match target.tag().map(ManifestRef::tag) {
        Some(Ok(tag)) => tag,
        _ => ManifestRef::of(target),
    }
}

// ---- what earlier copies learnt ---------------------------------------------------------------

impl CopyEngine {
    /// Notes that `repo` holds `digest`, for later mounts into other repositories of its registry.
    fn remember(&self, repo: &Repo, digest: &Digest) {
        lock(&self.shared.known).insert(repo, digest);
    }

    fn forget(&self, repo: &Repo, digest: &Digest, repository: &str) {
        lock(&self.shared.known).remove(repo.registry(), digest, repository);
    }
}

/// Which target repositories hold which blobs, by registry and digest, most recent last;
/// bounded: when full, the half used longest ago is dropped.
#[derive(Default)]
struct KnownBlobs {
    entries: HashMap<(String, Digest), KnownEntry>,
    clock: u64,
}

struct KnownEntry {
    repositories: Vec<String>,
    used: u64,
}

impl KnownBlobs {
    fn len(&self) -> usize {
        self.entries.len()
    }

    fn insert(&mut self, repo: &Repo, digest: &Digest) {
        self.clock += 1;
        let clock = self.clock;
        let entry = self
            .entries
            .entry((repo.registry().to_owned(), digest.clone()))
            .or_insert_with(|| KnownEntry { repositories: Vec::new(), used: clock });
        entry.used = clock;
        entry.repositories.retain(|r| r != repo.repository());
        entry.repositories.push(repo.repository().to_owned());
        if entry.repositories.len() > REPOSITORIES_PER_BLOB {
            entry.repositories.remove(0);
        }
        if self.entries.len() > KNOWN_BLOBS_CAPACITY {
            let cutoff = clock.saturating_sub(KNOWN_BLOBS_CAPACITY as u64 / 2);
            self.entries.retain(|_, e| e.used > cutoff);
        }
    }

    /// Most recent first.
    fn repositories(&mut self, registry: &str, digest: &Digest) -> Vec<String> {
        self.clock += 1;
        match self.entries.get_mut(&(registry.to_owned(), digest.clone())) {
            Some(entry) => {
                entry.used = self.clock;
                entry.repositories.iter().rev().cloned().collect()
            }
            None => Vec::new(),
        }
    }

    fn remove(&mut self, registry: &str, digest: &Digest, repository: &str) {
        let key = (registry.to_owned(), digest.clone());
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.repositories.retain(|r| r != repository);
            if entry.repositories.is_empty() {
                self.entries.remove(&key);
            }
        }
    }
}

/// Source indexes by digest (content-addressed, so never stale); emptied when full.
#[derive(Default)]
struct IndexCache {
    entries: HashMap<Digest, Manifest>,
    bytes: usize,
}

impl IndexCache {
    fn get(&self, digest: &Digest) -> Option<Manifest> {
        self.entries.get(digest).cloned()
    }

    fn insert(&mut self, manifest: Manifest) {
        if self.entries.contains_key(&manifest.digest) || manifest.bytes.len() > INDEX_CACHE_BYTES / 4 {
            return;
        }
        if self.bytes + manifest.bytes.len() > INDEX_CACHE_BYTES {
            self.entries.clear();
            self.bytes = 0;
        }
        self.bytes += manifest.bytes.len();
        self.entries.insert(manifest.digest.clone(), manifest);
    }
}

// ---- errors -----------------------------------------------------------------------------------

/// Which end of a copy an error concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Target,
    /// The target, when deleting from it.
    Delete,
}

/// The client's error as the copy's: transient or permanent, with a message that names the
/// reference concerned (and `object`, the blob or manifest, when there is one) and never a secret.
fn copy_error(side: Side, reference: &Reference, object: Option<&str>, error: Error) -> CopyError {
    let (role, verb) = match side {
        Side::Source => ("source", "read"),
        Side::Target => ("target", "write"),
        Side::Delete => ("target", "delete"),
    };
    let about = match object {
        Some(object) => format!("{role} {reference} ({object})"),
        None => format!("{role} {reference}"),
    };
    let suffix = |message: &Option<String>| message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
    let (kind, message) = match &error {
        Error::NotFound { what: Missing::Upload, .. } => {
            (CopyErrorKind::Transient, format!("{about}: the registry dropped the upload session"))
        }
        Error::NotFound { what: Missing::Manifest(_) | Missing::Repository, .. } if object.is_none() => {
            (CopyErrorKind::Permanent, format!("{role} {reference} not found"))
        }
        Error::NotFound { .. } => (CopyErrorKind::Permanent, format!("{about}: {error}")),
        // Docker Hub answers an anonymous pull of a repository that does not exist (or is private)
        // with 401, not 404.
        Error::Unauthorized { registry, username: None, .. }
            if side == Side::Source && registry == image_core::DEFAULT_REGISTRY && object.is_none() =>
        {
            (
                CopyErrorKind::Permanent,
                format!(
                    "source {reference} not found, or private: {registry} refused anonymous access \
                     (configure credentials for it if the repository is private)"
                ),
            )
        }
        Error::Unauthorized { registry, username, message } => {
            let who = match username {
                Some(user) => format!("the credentials for user {user}"),
                None => "anonymous access (no credentials are configured for it)".to_owned(),
            };
            (
                CopyErrorKind::Permanent,
                format!("cannot {verb} {about}: the registry {registry} refused {who}{}", suffix(message)),
            )
        }
        Error::Denied { registry, message } => (
            CopyErrorKind::Permanent,
            format!("cannot {verb} {about}: the registry {registry} denied access{}", suffix(message)),
        ),
        Error::UnsupportedSchema1 { media_type, .. } => return schema1_error(side, reference, media_type),
        Error::DigestMismatch { .. } | Error::SizeMismatch { .. } => {
            (CopyErrorKind::Permanent, format!("{about} is corrupt: {error}"))
        }
        e if e.is_transient() => (CopyErrorKind::Transient, format!("cannot {verb} {about}: {error}")),
        _ => (CopyErrorKind::Permanent, format!("cannot {verb} {about}: {error}")),
    };
    let retry_after_secs = match &error {
        Error::RateLimited { retry_after, .. } => retry_after.map(|d| d.as_secs().max(1)),
        _ => None,
    };
    CopyError { kind, message, retry_after_secs }
}

fn schema1_error(side: Side, reference: &Reference, media_type: &str) -> CopyError {
    let role = if side == Side::Source { "source" } else { "target" };
    CopyError::permanent(format!(
        "{role} {reference} is a Docker schema 1 manifest (`{media_type}`), which is deprecated and cannot be \
         copied faithfully; rebuild or re-push the image with a current client"
    ))
}

/// The registry an error names, when it names one.
fn error_registry(error: &Error) -> Option<&str> {
    match error {
        Error::NotFound { registry, .. }
        | Error::Unauthorized { registry, .. }
        | Error::Denied { registry, .. }
        | Error::RateLimited { registry, .. }
        | Error::UnsupportedSchema1 { registry, .. }
        | Error::Unreachable { registry, .. }
        | Error::Interrupted { registry, .. }
        | Error::NotARegistry { registry, .. }
        | Error::EgressDenied { registry, .. }
        | Error::Protocol { registry, .. } => Some(registry),
        _ => None,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        format!("sha256:{}", format!("{n:02x}").repeat(32)).parse().unwrap()
    }

    fn entry(n: u8, platform: &str) -> IndexEntry {
        let platform: Platform = platform.parse().unwrap();
        let attestation = platform.os == "unknown";
        IndexEntry { digest: digest(n), platform: Some(platform), attestation }
    }

    fn platforms(list: &[&str]) -> Vec<Platform> {
        list.iter().map(|p| p.parse().unwrap()).collect()
    }

    #[test]
    fn platform_selection() {
        let entries = [
            entry(1, "linux/amd64"),
            entry(2, "linux/arm64/v8"),
            entry(3, "linux/arm/v6"),
            entry(4, "linux/arm/v7"),
            entry(5, "unknown/unknown"),
        ];
        let check = |wanted: &[&str], expect: Result<Selection, &str>| {
            let got = select(&entries, &platforms(wanted));
            assert_eq!(got, expect.map_err(str::to_owned), "{wanted:?}");
        };
        check(&[], Ok(Selection::All));
        check(&["linux/amd64"], Ok(Selection::One(0)));
        check(&["linux/arm64"], Ok(Selection::One(1)));
        check(&["linux/arm64/v8"], Ok(Selection::One(1)));
        check(&["linux/arm"], Ok(Selection::One(3)));
        check(&["linux/arm/v6"], Ok(Selection::One(2)));
        check(&["linux/amd64", "linux/amd64"], Ok(Selection::One(0)));
        check(&["linux/amd64", "linux/arm64"], Ok(Selection::All));
        check(
            &["linux/s390x", "linux/amd64"],
            Err(
                "the index has no manifest for linux/s390x; it has linux/amd64, linux/arm64/v8, linux/arm/v6, linux/arm/v7",
            ),
        );
        check(
            &["unknown/unknown"],
            Err(
                "the index has no manifest for unknown/unknown; it has linux/amd64, linux/arm64/v8, linux/arm/v6, linux/arm/v7",
            ),
        );
    }

    #[test]
    fn variants_default_per_architecture() {
        let p = |s: &str| s.parse::<Platform>().unwrap();
        assert!(platform_matches(&p("linux/arm64/v8"), &p("linux/arm64")));
        assert!(platform_matches(&p("linux/arm64"), &p("linux/arm64/v8")));
        assert!(!platform_matches(&p("linux/arm/v6"), &p("linux/arm")));
        assert!(platform_matches(&p("linux/arm"), &p("linux/arm/v6")));
        assert!(!platform_matches(&p("linux/amd64"), &p("windows/amd64")));
    }

    #[test]
    fn manifests_parse_with_foreign_layers_and_attestations() {
        let manifest = |bytes: &str, media_type: &str| Manifest {
            bytes: Bytes::from(bytes.to_owned()),
            media_type: media_type.to_owned(),
            digest: crate::digest_of(bytes.as_bytes()),
        };
        let image = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{}","size":10}},"layers":[
                {{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":20}},
                {{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","size":30,"urls":["https://x"]}},
                {{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar","digest":"{}","size":40}}]}}"#,
            digest(1),
            digest(2),
            digest(3),
            digest(4)
        );
        let Ok(Parsed::Image(blobs)) = parse_manifest(&manifest(&image, media_type::OCI_MANIFEST)) else {
            panic!("not an image")
        };
        let all = blobs.all();
        assert_eq!(
            all.iter().map(|b| (b.size, b.foreign)).collect::<Vec<_>>(),
            [(10, false), (20, false), (30, true), (40, true)]
        );

        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[
                {{"mediaType":"m","digest":"{}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
                {{"mediaType":"m","digest":"{}","size":1,"platform":{{"os":"unknown","architecture":"unknown"}},
                  "annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}}]}}"#,
            digest(5),
            digest(6)
        );
        let Ok(Parsed::Index(entries)) = parse_manifest(&manifest(&index, "application/json")) else {
            panic!("not an index")
        };
        assert_eq!(entries.iter().map(|e| e.is_attestation()).collect::<Vec<_>>(), [false, true]);

        assert!(parse_manifest(&manifest("nope", media_type::OCI_MANIFEST)).is_err());
        let bad_digest = r#"{"layers":[{"digest":"md5:00","size":1}]}"#;
        assert!(parse_manifest(&manifest(bad_digest, media_type::OCI_MANIFEST)).unwrap_err().contains("md5:00"));
    }

    #[test]
    fn errors_name_the_reference_and_never_a_password() {
        let r: Reference = "127.0.0.1:5000/team/app:1".parse().unwrap();
        let e = copy_error(
            Side::Target,
            &r,
            None,
            Error::Unauthorized { registry: "127.0.0.1:5000".into(), username: Some("x".into()), message: None },
        );
        assert_eq!(e.kind, CopyErrorKind::Permanent);
        assert_eq!(
            e.message,
            "cannot write target 127.0.0.1:5000/team/app:1: the registry 127.0.0.1:5000 refused the credentials for user x"
        );
        let e = copy_error(
            Side::Source,
            &r,
            None,
            Error::NotFound {
                registry: "127.0.0.1:5000".into(),
                repository: "team/app".into(),
                what: Missing::Manifest("1".into()),
            },
        );
        assert_eq!(e.message, "source 127.0.0.1:5000/team/app:1 not found");
        let e = copy_error(
            Side::Source,
            &r,
            None,
            Error::RateLimited { registry: "docker.io".into(), retry_after: Some(Duration::from_secs(30)) },
        );
        assert_eq!((e.kind, e.retry_after_secs), (CopyErrorKind::Transient, Some(30)));
        let e = copy_error(
            Side::Source,
            &r,
            Some("blob x"),
            Error::Protocol {
                registry: "r".into(),
                operation: "GET blob".into(),
                status: 503,
                code: None,
                message: "m".into(),
            },
        );
        assert_eq!(e.kind, CopyErrorKind::Transient);
    }

    #[test]
    fn known_blobs_are_bounded_and_most_recent_first() {
        let mut known = KnownBlobs::default();
        let a = Repo::new("r.example", "a").unwrap();
        let b = Repo::new("r.example", "b").unwrap();
        known.insert(&a, &digest(1));
        known.insert(&b, &digest(1));
        assert_eq!(known.repositories("r.example", &digest(1)), ["b", "a"]);
        assert!(known.repositories("other.example", &digest(1)).is_empty());
        known.remove("r.example", &digest(1), "b");
        assert_eq!(known.repositories("r.example", &digest(1)), ["a"]);
        for i in 0..(KNOWN_BLOBS_CAPACITY + 10) {
            let d = Digest::from_sha256_bytes({
                let mut h = [0u8; 32];
                h[..8].copy_from_slice(&(i as u64).to_le_bytes());
                h
            });
            known.insert(&a, &d);
        }
        assert!(known.len() <= KNOWN_BLOBS_CAPACITY);
        assert_eq!(same_registry_transfers(8), 3);
        assert_eq!(same_registry_transfers(2), 1);
        assert_eq!(same_registry_transfers(1), 1);
    }
}
