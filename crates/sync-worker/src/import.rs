use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use image_core::{
    Digest,
    copy::{CopyErrorKind, CopyProgress, CopyRequest, ImageCopier, RegistryAccess, access_for_import},
    import::{Artifact, AttemptOutcome, ImportJob, LayerProgress},
    store::{ClaimedJob, ImportStore, JobQueue, KubeStore},
};
use time::OffsetDateTime;

use crate::{JobHandler, Lease};

/// The job type of imports.
pub const IMPORT_JOB: &str = "import";

/// What the import handler needs.
pub struct ImportContext {
    pub imports: Arc<dyn ImportStore>,
    pub queue: Arc<dyn JobQueue>,
    pub copier: Arc<dyn ImageCopier>,
    /// The registry secrets an import may name, read again at each attempt, so that a changed password
    /// applies; imports that name one fail without it.
    pub credentials: Option<Arc<dyn KubeStore>>,
    /// At most one progress write per import in this interval.
    pub progress_interval: Duration,
}

impl std::fmt::Debug for ImportContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportContext").field("progress_interval", &self.progress_interval).finish_non_exhaustive()
    }
}

/// Runs `import` jobs: one attempt at copying an image into the internal registry.
#[derive(Debug, Default)]
pub struct ImportHandler;

/// The delay before attempt `attempt + 1`: 5 s doubling per attempt, at most 10 minutes, ± 25 %, and never
/// shorter than what the registry asked for.
pub fn backoff(attempt: i32, retry_after: Option<Duration>) -> Duration {
    let exp = 5u64.saturating_mul(1u64 << (attempt.max(1) - 1).min(16) as u32);
    let base = Duration::from_secs(exp.min(600));
    let jittered = base.mul_f64(0.75 + rand::random::<f64>() * 0.5);
    jittered.max(retry_after.unwrap_or_default())
}

#[async_trait]
impl JobHandler<ImportContext> for ImportHandler {
    async fn run(&self, ctx: &ImportContext, job: &ClaimedJob, lease: &Lease) {
        let Some(import_id) = job.payload.get("import_id").and_then(|v| v.as_i64()) else {
            tracing::error!(payload = %job.payload, "import job without an import_id: removing it");
            let _ = ctx.queue.complete_job(job.id, &lease.worker).await;
            return;
        };
        let import = match ctx.imports.get_import(import_id).await {
            Ok(import) => import,
            Err(image_core::Error::NotFound { .. }) => {
                tracing::warn!(import_id, "the import of this job is gone: removing the job");
                let _ = ctx.queue.complete_job(job.id, &lease.worker).await;
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the import; the job returns to the queue with its lease");
                return;
            }
        };
        if job.attempts > job.max_attempts {
            // Claims count attempts; a job whose workers kept dying mid-copy ends here, not in a loop.
            let error =
                format!("gave up after {} attempts: the workers running it stopped before it ended", job.max_attempts);
            let outcome = AttemptOutcome::Failed { error };
            let _ = ctx.imports.finish_import_attempt(import_id, job.id, &lease.worker, outcome).await;
            return;
        }
        match ctx.imports.start_import_attempt(import_id, job.id, &lease.worker, job.attempts).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                tracing::warn!(error = %err, "cannot mark the import started");
                return;
            }
        }
        tracing::info!(import_id, source = %import.source, destination = %import.target, "import attempt started");
        let source_access = match source_access(ctx, &import).await {
            Ok(access) => access,
            Err(outcome) => {
                finish(ctx, import_id, job, lease, outcome).await;
                return;
            }
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
            source_access,
            target: import.target.clone(),
            platforms: import.platforms.clone(),
        };
        let timeout = Duration::from_secs(import.timeout_secs.max(1) as u64);
        let result = tokio::time::timeout(timeout, ctx.copier.copy_image(&request, recorder.as_ref())).await;
        drop(flusher);
        recorder.flush(ctx.imports.as_ref(), import_id).await;

        let now = OffsetDateTime::now_utc();
        let outcome = match result {
            Ok(Ok(done)) => {
                tracing::info!(
                    import_id,
                    digest = %done.digest,
                    copied = done.blobs_copied,
                    bytes = done.bytes_copied,
                    skipped = done.blobs_skipped,
                    mounted = done.blobs_mounted,
                    "import succeeded"
                );
                AttemptOutcome::Succeeded { digest: done.digest, artifacts: done.artifacts }
            }
            Ok(Err(err)) if err.kind == CopyErrorKind::Transient => {
                let delay = backoff(job.attempts, err.retry_after_secs.map(Duration::from_secs));
                tracing::warn!(import_id, error = %err, retry_in = ?delay, "import attempt failed; will retry");
                AttemptOutcome::Retry { error: err.message, retry_at: now + delay }
            }
            Ok(Err(err)) => {
                tracing::warn!(import_id, error = %err, "import failed");
                AttemptOutcome::Failed { error: err.message }
            }
            Err(_) => {
                let error = format!("the attempt timed out after {}s", timeout.as_secs());
                tracing::warn!(import_id, %error, "import attempt timed out; will retry");
                AttemptOutcome::Retry { error, retry_at: now + backoff(job.attempts, None) }
            }
        };
        finish(ctx, import_id, job, lease, outcome).await;
    }
}

/// How this attempt reads the source: by [`access_for_import`], with the secret the import names as it is
/// stored now. A secret that is gone or does not fit fails the import; a store that cannot be read retries.
async fn source_access(ctx: &ImportContext, import: &ImportJob) -> Result<RegistryAccess, AttemptOutcome> {
    let secret = match (&import.registry_secret, &ctx.credentials) {
        (None, _) => None,
        (Some(named), None) => {
            return Err(AttemptOutcome::Failed {
                error: format!("the registry secret {}/{} cannot be read by this worker", named.namespace, named.name),
            });
        }
        (Some(named), Some(kube)) => match kube.get_registry_secret(&named.namespace, &named.name).await {
            Ok(secret) => Some(secret),
            Err(image_core::Error::NotFound { .. }) => {
                return Err(AttemptOutcome::Failed {
                    error: format!("the registry secret {}/{} no longer exists", named.namespace, named.name),
                });
            }
            Err(err) => {
                let error = format!("cannot read the registry secret {}/{}: {err}", named.namespace, named.name);
                tracing::warn!(import_id = import.id, %error, "will retry");
                let retry_at = OffsetDateTime::now_utc() + backoff(import.attempts.max(1), None);
                return Err(AttemptOutcome::Retry { error, retry_at });
            }
        },
    };
    access_for_import(secret.as_ref(), &import.source).map_err(|e| AttemptOutcome::Failed { error: e.to_string() })
}

async fn finish(ctx: &ImportContext, import_id: i64, job: &ClaimedJob, lease: &Lease, outcome: AttemptOutcome) {
    match ctx.imports.finish_import_attempt(import_id, job.id, &lease.worker, outcome).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!(import_id, "lease lost before the outcome was written; another worker owns it"),
        Err(err) => {
            tracing::error!(import_id, error = %err, "cannot write the import's outcome; it will be retried")
        }
    }
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

    async fn flush(&self, store: &dyn ImportStore, import_id: i64) {
        let snapshot = {
            let mut s = self.state.lock().unwrap();
            if !s.dirty {
                return;
            }
            s.dirty = false;
            (s.digest.clone(), s.artifacts.clone(), s.layers.clone())
        };
        if let Err(err) = store.record_import_progress(import_id, snapshot.0.as_ref(), &snapshot.1, &snapshot.2).await {
            tracing::warn!(import_id, error = %err, "cannot record progress");
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

async fn flush_periodically(recorder: Arc<Recorder>, store: Arc<dyn ImportStore>, import_id: i64, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        recorder.flush(store.as_ref(), import_id).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let secs = |a| backoff(a, None).as_secs_f64();
        assert!((3.75..=6.25).contains(&secs(1)), "{}", secs(1));
        assert!((7.5..=12.5).contains(&secs(2)));
        assert!((450.0..=750.0).contains(&secs(30)), "capped at 10 minutes ± 25%");
        assert!(backoff(1, Some(Duration::from_secs(120))) >= Duration::from_secs(120), "Retry-After wins");
        assert!(backoff(0, None) > Duration::ZERO);
    }
}
