use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use image_core::{
    Digest,
    copy::{CopyErrorKind, CopyProgress, CopyRequest, RegistryAccess, access_for_import},
    import::{Artifact, AttemptOutcome, ImportId, ImportJob, LayerProgress},
    job::ImportPayload,
    store::ImportStore,
};

use crate::{Claimed, Job, Outcome, Verdict, WorkerContext};

/// Runs `import` jobs: one attempt at copying an image into the internal registry.
#[derive(Debug, Default)]
pub struct ImportHandler;

#[async_trait]
impl Job for ImportHandler {
    type Payload = ImportPayload;
    type Context = WorkerContext;
    /// The digest copied and its artifacts.
    type Output = (Digest, Vec<Artifact>);

    async fn run(ctx: &WorkerContext, job: &Claimed<ImportPayload>) -> image_core::Result<Outcome<Self::Output>> {
        let import_id = job.payload.import_id;
        let lease = &job.lease;
        let import = match ctx.imports.get_import(import_id).await {
            Ok(import) => import,
            Err(image_core::Error::NotFound { .. }) => {
                return Ok(Outcome::Obsolete { reason: format!("import {import_id} is gone") });
            }
            Err(err) => return Err(err),
        };
        if !ctx.imports.start_import_attempt(import_id, job.id, &lease.worker, job.attempt).await? {
            return Ok(Outcome::Obsolete { reason: format!("import {import_id} is no longer queued for this job") });
        }
        tracing::info!(import_id = import_id.get(), source = %import.source, destination = %import.target, "import attempt started");
        let source_access = match source_access(ctx, &import).await? {
            Ok(access) => access,
            Err(outcome) => return Ok(outcome),
        };

        let recorder = Arc::new(Recorder::new(import.layers.clone()));
        // Dropped with this attempt, also when the attempt itself is dropped (lease lost, shutdown), so that no
        // stale progress is written over the next worker's.
        let flusher = crate::runner::AbortOnDrop(tokio::spawn(flush_periodically(
            recorder.clone(),
            ctx.imports.clone(),
            import_id,
            ctx.progress_interval,
        )));
        let request = CopyRequest {
            source: import.source.clone(),
            target: import.target.clone(),
            platforms: import.platforms.clone(),
            source_access,
        };
        let timeout = Duration::from_secs(import.timeout_secs.max(1) as u64);
        let result = tokio::time::timeout(timeout, ctx.copier.copy_image(&request, recorder.as_ref())).await;
        drop(flusher);
        recorder.flush(ctx.imports.as_ref(), import_id).await;

        Ok(match result {
            Ok(Ok(done)) => {
                tracing::info!(
                    import_id = import_id.get(),
                    digest = %done.digest,
                    copied = done.blobs_copied,
                    bytes = done.bytes_copied,
                    skipped = done.blobs_skipped,
                    mounted = done.blobs_mounted,
                    "import succeeded"
                );
                Outcome::Done((done.digest, done.artifacts))
            }
            Ok(Err(err)) if err.kind == CopyErrorKind::Transient => {
                Outcome::Retry { error: err.message, retry_after: err.retry_after_secs.map(Duration::from_secs) }
            }
            Ok(Err(err)) => Outcome::Fail { error: err.message },
            Err(_) => Outcome::Retry {
                error: format!("the attempt timed out after {}s", timeout.as_secs()),
                retry_after: None,
            },
        })
    }

    /// One transaction: the import's state and the job's removal or requeue.
    async fn finish(
        ctx: &WorkerContext,
        job: &Claimed<ImportPayload>,
        verdict: Verdict<Self::Output>,
    ) -> image_core::Result<bool> {
        let succeeded = match &verdict {
            Verdict::Succeeded((digest, _)) => Some(digest.clone()),
            _ => None,
        };
        let outcome = match verdict {
            Verdict::Succeeded((digest, artifacts)) => AttemptOutcome::Succeeded { digest, artifacts },
            Verdict::Retry { error, run_at } => AttemptOutcome::Retry { error, retry_at: run_at },
            Verdict::Failed { error } => AttemptOutcome::Failed { error },
        };
        let written =
            ctx.imports.finish_import_attempt(job.payload.import_id, job.id, &job.lease.worker, outcome).await?;
        // A finished import's artifact is scanned when the internal registry can scan (Harbor).
        if let (true, Some(digest), Some(scans)) = (written, succeeded, ctx.scans.as_deref()) {
            match ctx.imports.get_import(job.payload.import_id).await {
                Ok(import) => scans.after_import(&import.source, import.target.repository(), &digest).await,
                Err(e) => {
                    tracing::warn!(import_id = job.payload.import_id.get(), error = %e, "could not queue the scan of an import")
                }
            }
        }
        Ok(written)
    }
}

/// How this attempt reads the source: by [`access_for_import`], with the secret the import names as it is
/// stored now (so that a changed password applies). A secret that is gone or does not fit fails the import;
/// a store that cannot be read is retried by the runner.
async fn source_access(
    ctx: &WorkerContext,
    import: &ImportJob,
) -> image_core::Result<Result<RegistryAccess, Outcome<(Digest, Vec<Artifact>)>>> {
    let secret = match &import.registry_secret {
        None => None,
        Some(named) => match ctx.kube.get_registry_secret(&named.namespace, &named.name).await {
            Ok(secret) => Some(secret),
            Err(image_core::Error::NotFound { .. }) => {
                let error = format!("the registry secret {}/{} no longer exists", named.namespace, named.name);
                return Ok(Err(Outcome::Fail { error }));
            }
            Err(err) => return Err(err),
        },
    };
    Ok(access_for_import(secret.as_ref(), &import.source).map_err(|e| Outcome::Fail { error: e.to_string() }))
}

/// Collects progress as the copy reports it; written to the store by [`flush_periodically`].
struct Recorder {
    state: Mutex<RecorderState>,
}

struct RecorderState {
    digest: Option<Digest>,
    artifacts: Vec<Artifact>,
    layers: Vec<LayerProgress>,
    dirty: bool,
}

impl Recorder {
    fn new(layers: Vec<LayerProgress>) -> Recorder {
        Recorder { state: Mutex::new(RecorderState { digest: None, artifacts: Vec::new(), layers, dirty: false }) }
    }

    async fn flush(&self, store: &dyn ImportStore, import_id: ImportId) {
        let snapshot = {
            let mut s = self.state.lock().unwrap();
            if !s.dirty {
                return;
            }
            s.dirty = false;
            (s.digest.clone(), s.artifacts.clone(), s.layers.clone())
        };
        if let Err(err) = store.record_import_progress(import_id, snapshot.0.as_ref(), &snapshot.1, &snapshot.2).await {
            tracing::warn!(import_id = import_id.get(), error = %err, "cannot record progress");
        }
    }
}

impl CopyProgress for Recorder {
    fn resolved(&self, digest: &Digest, artifacts: &[Artifact]) {
        let mut s = self.state.lock().unwrap();
        s.digest = Some(digest.clone());
        s.artifacts = artifacts.to_vec();
        s.dirty = true;
    }

    fn layer(&self, progress: &LayerProgress) {
        let mut s = self.state.lock().unwrap();
        match s.layers.iter_mut().find(|l| l.digest == progress.digest) {
            Some(l) => *l = progress.clone(),
            None => s.layers.push(progress.clone()),
        }
        s.dirty = true;
    }
}

async fn flush_periodically(
    recorder: Arc<Recorder>,
    store: Arc<dyn ImportStore>,
    import_id: ImportId,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        recorder.flush(store.as_ref(), import_id).await;
    }
}
