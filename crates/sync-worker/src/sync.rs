use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use image_core::{
    Digest, Reference,
    copy::{CopyErrorKind, CopyProgress, CopyRequest, access_for_repository},
    import::{Artifact, LayerProgress},
    job::SyncPayload,
    kube::{SyncStatus, SyncedManifest},
    store::KubeStore,
};
use time::OffsetDateTime;

use crate::{Claimed, Job, Outcome, Verdict, WorkerContext};

/// Runs `sync` jobs: copies a repository's tag from its registry secret's registry into the internal
/// registry. An unchanged upstream costs a manifest HEAD; the copy engine skips what the target has.
/// The job's attempts are the repository's `retryCount` + 1, set when the store queues it.
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
impl Job for SyncHandler {
    type Payload = SyncPayload;
    type Context = WorkerContext;
    type Output = SyncedManifest;

    async fn run(ctx: &WorkerContext, job: &Claimed<SyncPayload>) -> image_core::Result<Outcome<SyncedManifest>> {
        let id = job.payload.repository_id;
        let lease = &job.lease;
        let (repository, secret) = match ctx.kube.repository_by_id(id).await {
            Ok(found) => found,
            Err(image_core::Error::NotFound { .. }) => {
                return Ok(Outcome::Obsolete { reason: format!("the repository of this sync ({id}) is gone") });
            }
            Err(err) => return Err(err),
        };
        let name = format!("{}/{}", repository.namespace, repository.name);
        let references = Reference::new(&secret.domain, &repository.repository, Some(&repository.tag), None)
            .and_then(|source| Ok((ctx.sync_target(&source)?, source)))
            .map(|(target, source)| (source, target));
        let (source, target) = match references {
            Ok(pair) => pair,
            Err(err) => return Ok(Outcome::Fail { error: format!("cannot name the image to sync: {err}") }),
        };
        // The repository's own registryRef secret, as stored now, and nothing else.
        let source_access = match access_for_repository(&repository, &secret) {
            Ok(access) => access,
            Err(err) => return Ok(Outcome::Fail { error: err.to_string() }),
        };
        // Nothing changes when this worker's lease was taken over meanwhile: the other worker records its own
        // outcome.
        match ctx.kube.record_sync(id, job.id, &lease.worker, SyncStatus::Syncing, None, None).await {
            Ok(true) => {}
            Ok(false) => {
                return Ok(Outcome::Obsolete { reason: format!("repository {name} has moved on from this job") });
            }
            Err(image_core::Error::NotFound { .. }) => {
                return Ok(Outcome::Obsolete { reason: format!("the repository of this sync ({id}) is gone") });
            }
            Err(err) => tracing::warn!(error = %err, "cannot record the sync's start"),
        }
        tracing::info!(repository = %name, %source, destination = %target, attempt = job.attempt, "sync started");
        let layers = Layers::default();
        let request = CopyRequest { source, target, platforms: Vec::new(), source_access };
        let result = tokio::time::timeout(repository.sync_timeout, ctx.copier.copy_image(&request, &layers)).await;
        Ok(match result {
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
                Outcome::Done(manifest)
            }
            Ok(Err(err)) if err.kind == CopyErrorKind::Transient => {
                Outcome::Retry { error: err.message, retry_after: err.retry_after_secs.map(Duration::from_secs) }
            }
            Ok(Err(err)) => Outcome::Fail { error: err.message },
            Err(_) => Outcome::Retry {
                error: format!(
                    "the sync timed out after {}",
                    image_core::kube::format_go_duration(repository.sync_timeout)
                ),
                retry_after: None,
            },
        })
    }

    /// Each outcome is one transaction: the final ones with the job's removal (`record_sync`), a retry with
    /// the job's requeue (`retry_sync`).
    async fn finish(
        ctx: &WorkerContext,
        job: &Claimed<SyncPayload>,
        verdict: Verdict<SyncedManifest>,
    ) -> image_core::Result<bool> {
        let (id, worker) = (job.payload.repository_id, &job.lease.worker);
        match verdict {
            Verdict::Succeeded(manifest) => {
                ctx.kube.record_sync(id, job.id, worker, SyncStatus::Success, None, Some(&manifest)).await
            }
            Verdict::Retry { error, run_at } => {
                let message = format!("attempt {} failed: {error}; retrying", job.attempt);
                ctx.kube.retry_sync(id, job.id, worker, &message, &error, run_at).await
            }
            Verdict::Failed { error } => {
                ctx.kube.record_sync(id, job.id, worker, SyncStatus::Failed, Some(&error), None).await
            }
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
