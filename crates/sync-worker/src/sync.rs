use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use image_core::{
    Digest, Reference,
    copy::{CopyErrorKind, CopyProgress, CopyRequest, ImageCopier, access_for_repository},
    import::{Artifact, LayerProgress},
    kube::{SyncStatus, SyncedManifest},
    store::{ClaimedJob, JobQueue, KubeStore},
};
use time::OffsetDateTime;

use crate::{JobHandler, Lease, backoff};

/// The job type of repository syncs.
pub const SYNC_JOB: &str = "sync";

/// What the sync handler needs.
pub struct SyncContext {
    pub kube: Arc<dyn KubeStore>,
    pub queue: Arc<dyn JobQueue>,
    pub copier: Arc<dyn ImageCopier>,
    /// `host[:port]` of the internal registry syncs copy into.
    pub target_host: String,
    /// Path in front of every synced repository; empty for none.
    pub target_prefix: String,
}

impl std::fmt::Debug for SyncContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncContext").field("target_host", &self.target_host).finish_non_exhaustive()
    }
}

impl SyncContext {
    fn target(&self, repository: &str, tag: &str) -> Result<Reference, image_core::ReferenceError> {
        let path = match self.target_prefix.trim_matches('/') {
            "" => repository.to_owned(),
            prefix => format!("{prefix}/{repository}"),
        };
        Reference::new(&self.target_host, &path, Some(tag), None)
    }
}

/// Runs `sync` jobs: copies a repository's tag from its registry secret's registry into the internal
/// registry. An unchanged upstream costs a manifest HEAD; the copy engine skips what the target has.
#[derive(Debug, Default)]
pub struct SyncHandler;

/// Layer digests as the copy reports them, for the repository's status.
#[derive(Default)]
struct Layers(Mutex<Vec<Digest>>);

impl CopyProgress for Layers {
    fn resolved(&self, _digest: &Digest, _artifacts: &[Artifact]) {}

    fn layer(&self, progress: &LayerProgress) {
        let mut layers = self.0.lock().unwrap();
        if !layers.contains(&progress.digest) {
            layers.push(progress.digest.clone());
        }
    }
}

#[async_trait]
impl JobHandler<SyncContext> for SyncHandler {
    async fn run(&self, ctx: &SyncContext, job: &ClaimedJob, lease: &Lease) {
        let Some(id) = job.payload.get("repository_id").and_then(|v| v.as_i64()) else {
            tracing::error!(payload = %job.payload, "sync job without a repository_id: removing it");
            let _ = ctx.queue.complete_job(job.id, &lease.worker).await;
            return;
        };
        let (repository, secret) = match ctx.kube.repository_by_id(id).await {
            Ok(found) => found,
            Err(image_core::Error::NotFound { .. }) => {
                tracing::info!(repository_id = id, "the repository of this sync is gone: removing the job");
                let _ = ctx.queue.complete_job(job.id, &lease.worker).await;
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the repository; the job returns to the queue with its lease");
                return;
            }
        };
        let name = format!("{}/{}", repository.namespace, repository.name);
        // Records where the sync stands; the final outcomes also complete the job. Nothing changes when
        // this worker's lease was taken over meanwhile: the other worker records its own outcome.
        let finish = |status: SyncStatus, message: Option<String>, manifest: Option<SyncedManifest>| async move {
            match ctx.kube.record_sync(id, job.id, &lease.worker, status, message.as_deref(), manifest.as_ref()).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(repository_id = id, "another worker holds this sync's job now"),
                Err(image_core::Error::NotFound { .. }) => {
                    tracing::info!(repository_id = id, "the repository of this sync is gone: removing the job");
                    let _ = ctx.queue.complete_job(job.id, &lease.worker).await;
                }
                Err(err) => tracing::warn!(error = %err, "cannot record the sync's outcome"),
            }
        };
        if job.attempts > job.max_attempts {
            finish(SyncStatus::Failed, Some(format!("gave up after {} attempts", job.max_attempts)), None).await;
            return;
        }
        let references = Reference::new(&secret.domain, &repository.repository, Some(&repository.tag), None)
            .and_then(|source| Ok((source, ctx.target(&repository.repository, &repository.tag)?)));
        let (source, target) = match references {
            Ok(pair) => pair,
            Err(err) => {
                finish(SyncStatus::Failed, Some(format!("cannot name the image to sync: {err}")), None).await;
                return;
            }
        };
        // The repository's own registryRef secret, as stored now, and nothing else.
        let source_access = match access_for_repository(&repository, &secret) {
            Ok(access) => access,
            Err(err) => {
                finish(SyncStatus::Failed, Some(err.to_string()), None).await;
                return;
            }
        };
        finish(SyncStatus::Syncing, None, None).await;
        tracing::info!(repository = %name, %source, destination = %target, attempt = job.attempts, "sync started");
        let layers = Layers::default();
        let request = CopyRequest { source, source_access, target, platforms: Vec::new() };
        let result = tokio::time::timeout(repository.sync_timeout, ctx.copier.copy_image(&request, &layers)).await;
        let (error, transient, retry_after) = match result {
            Ok(Ok(outcome)) => {
                let first = outcome.artifacts.first();
                let manifest = SyncedManifest {
                    digest: Some(outcome.digest.to_string()),
                    architecture: first.and_then(|a| a.architecture.clone()),
                    os: first.and_then(|a| a.os.clone()),
                    size: first.map(|a| a.size),
                    created: outcome.created.clone(),
                    layers: layers.0.lock().unwrap().iter().map(ToString::to_string).collect(),
                };
                tracing::info!(repository = %name, digest = %outcome.digest, copied = outcome.blobs_copied, "sync succeeded");
                finish(SyncStatus::Success, None, Some(manifest)).await;
                return;
            }
            Ok(Err(err)) => (err.message, err.kind == CopyErrorKind::Transient, err.retry_after_secs),
            Err(_) => (
                format!("the sync timed out after {}", image_core::kube::format_go_duration(repository.sync_timeout)),
                true,
                None,
            ),
        };
        if transient && job.attempts < job.max_attempts {
            let delay = backoff(job.attempts, retry_after.map(Duration::from_secs));
            tracing::warn!(repository = %name, %error, retry_in = ?delay, "sync attempt failed; will retry");
            finish(SyncStatus::Syncing, Some(format!("attempt {} failed: {error}; retrying", job.attempts)), None)
                .await;
            let _ = ctx.queue.retry_job(job.id, &lease.worker, &error, OffsetDateTime::now_utc() + delay).await;
        } else {
            tracing::warn!(repository = %name, %error, "sync failed");
            finish(SyncStatus::Failed, Some(error), None).await;
        }
    }
}

/// Queues the syncs that are due, every `every` (± 20 %), until `shutdown` resolves. Several schedulers
/// on one database are safe: the store queues each due sync once.
/// `waker` is rung when syncs were queued, so that this process's runners start them at once.
pub async fn schedule_syncs(
    kube: Arc<dyn KubeStore>,
    every: Duration,
    waker: Arc<tokio::sync::Notify>,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    loop {
        match kube.enqueue_due_syncs(OffsetDateTime::now_utc()).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(queued = n, "queued due repository syncs");
                crate::wake(&waker);
            }
            Err(err) => tracing::warn!(error = %err, "cannot queue due syncs; trying again later"),
        }
        let pause = every.mul_f64(0.8 + rand::random::<f64>() * 0.4);
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}
