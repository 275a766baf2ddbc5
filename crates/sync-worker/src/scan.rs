//! [`ScanHandler`]: asks the internal registry for a vulnerability scan of an imported artifact, reads its
//! overview, and writes the outcome onto the catalog tag of the image's source (seed 002's
//! `security_scan_status` and `vulnerabilities_count`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use image_core::job::ScanPayload;
use image_core::registry::{RegistryAdmin, RegistryKind, ScanStatus, Severity};
use image_core::store::Store;
use image_core::{Error, ErrorCode, Reference};

use crate::context::WorkerContext;
use crate::runner::{Claimed, Job, Outcome, Verdict};

/// Attempts of one scan job ([`ScanPayload::MAX_ATTEMPTS`]).
pub const SCAN_ATTEMPTS: i32 = ScanPayload::MAX_ATTEMPTS;
/// Reads of the overview within one attempt before it is retried later.
const POLLS: u32 = 10;
const POLL_INTERVAL: Duration = Duration::from_millis(300);
/// Who the audit trail says wrote a scan's outcome.
const ACTOR: &str = "scanner";

/// What scan jobs need: the store (catalog tags, the queue), the internal registry's adapter, and the
/// severity at which a finished scan fails (`--deny-severity`; `None`: a finished scan passes).
pub struct ScanSettings {
    pub store: Arc<dyn Store>,
    pub admin: Arc<dyn RegistryAdmin>,
    pub deny: Option<Severity>,
}

impl std::fmt::Debug for ScanSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanSettings")
            .field("kind", &self.admin.kind())
            .field("deny", &self.deny)
            .finish_non_exhaustive()
    }
}

impl ScanSettings {
    /// Queues a scan of an artifact an import just put into the internal registry, when that is a Harbor
    /// (a plain registry has no scanner). Failing to queue it is logged, not an error of the import.
    pub async fn after_import(&self, source: &Reference, repository: &str, digest: &image_core::Digest) {
        if self.admin.kind() != RegistryKind::Harbor {
            return;
        }
        let payload = ScanPayload {
            source: source.clone(),
            repository: repository.to_owned(),
            digest: digest.clone(),
            request: true,
        };
        let now = time::OffsetDateTime::now_utc();
        if let Err(e) = self.store.enqueue_scan(&payload, now, SCAN_ATTEMPTS).await {
            tracing::warn!(%source, error = %e, "could not queue the scan of an import");
        }
    }
}

/// One attempt at a scan: ask for it when the payload says so and the registry has none yet, then read the
/// overview a few times; finished, its status (under the deny severity) and count go onto the catalog tag;
/// still running, the tag says `pending` and the job runs again later.
#[derive(Debug)]
pub struct ScanHandler;

#[async_trait]
impl Job for ScanHandler {
    type Payload = ScanPayload;
    type Context = WorkerContext;
    /// The catalog's status and the count of vulnerabilities.
    type Output = (ScanStatus, Option<i64>);

    async fn run(ctx: &WorkerContext, job: &Claimed<ScanPayload>) -> image_core::Result<Outcome<Self::Output>> {
        let Some(scans) = ctx.scans.as_deref() else {
            return Ok(Outcome::Obsolete { reason: "this worker has no scanner settings".into() });
        };
        let p = &job.payload;
        let transient = |e: Error| match e.code() {
            ErrorCode::NotFound => Outcome::Obsolete { reason: format!("{}@{} is gone: {e}", p.repository, p.digest) },
            ErrorCode::UpstreamUnavailable | ErrorCode::RateLimited => {
                Outcome::Retry { error: e.to_string(), retry_after: None }
            }
            _ => Outcome::Fail { error: e.to_string() },
        };
        let mut overview = match scans.admin.scan_overview(&p.repository, &p.digest).await {
            Ok(o) => o,
            Err(e) => return Ok(transient(e)),
        };
        if overview.is_none() && p.request {
            match scans.admin.request_scan(&p.repository, &p.digest).await {
                Ok(true) => {}
                Ok(false) => return Ok(Outcome::Obsolete { reason: "the internal registry has no scanner".into() }),
                Err(e) => return Ok(transient(e)),
            }
        }
        for poll in 0..POLLS {
            match &overview {
                Some(o) if o.status != ScanStatus::Pending => {
                    let count = i64::try_from(o.total()).ok();
                    return Ok(Outcome::Done((o.verdict(scans.deny), count)));
                }
                _ if poll + 1 == POLLS => break,
                _ => tokio::time::sleep(POLL_INTERVAL).await,
            }
            overview = match scans.admin.scan_overview(&p.repository, &p.digest).await {
                Ok(o) => o,
                Err(e) => return Ok(transient(e)),
            };
        }
        record(scans.store.as_ref(), &p.source, ScanStatus::Pending, None).await?;
        Ok(Outcome::Retry { error: "the scan has not finished yet".into(), retry_after: Some(Duration::from_secs(5)) })
    }

    /// The tag's status and count, then the job's removal or requeue. Out of attempts, a scan still running
    /// stays `pending`.
    async fn finish(
        ctx: &WorkerContext,
        job: &Claimed<ScanPayload>,
        verdict: Verdict<Self::Output>,
    ) -> image_core::Result<bool> {
        let Some(scans) = ctx.scans.as_deref() else { return Ok(false) };
        let queue = scans.store.as_ref();
        match verdict {
            Verdict::Succeeded((status, count)) => {
                record(queue, &job.payload.source, status, count).await?;
                queue.complete_job(job.id, &job.lease.worker).await
            }
            Verdict::Retry { error, run_at } => queue.retry_job(job.id, &job.lease.worker, &error, run_at).await,
            Verdict::Failed { error } => {
                tracing::warn!(source = %job.payload.source, %error, "scan failed");
                queue.complete_job(job.id, &job.lease.worker).await
            }
        }
    }
}

/// Writes a scan's outcome onto the catalog tag `source` names (registry, namespace/name, tag), when the
/// catalog has it; unchanged values are not written again.
pub async fn record(
    store: &dyn Store,
    source: &Reference,
    status: ScanStatus,
    count: Option<i64>,
) -> image_core::Result<()> {
    let (namespace, name) = source.repository().rsplit_once('/').unwrap_or(("", source.repository()));
    let Some(image) = store.find_image(source.registry(), namespace, name).await? else { return Ok(()) };
    let tags = store.list_tags(image.id).await?;
    let wanted = source.tag().unwrap_or("latest");
    let Some(tag) = tags.iter().find(|t| t.tag == wanted) else { return Ok(()) };
    let count = count.or(if status == ScanStatus::Pending { tag.vulnerabilities_count } else { None });
    if tag.security_scan_status.as_deref() == Some(status.as_str()) && tag.vulnerabilities_count == count {
        return Ok(());
    }
    let update = image_core::catalog::TagUpdate {
        security_scan_status: Some(Some(status.as_str().to_owned())),
        vulnerabilities_count: Some(count),
        ..Default::default()
    };
    store.update_tag(image.id, tag.id, update, ACTOR).await?;
    tracing::info!(%source, status = status.as_str(), ?count, "scan outcome written to the catalog");
    Ok(())
}

/// Tags whose pending scans one round of the refresh queues at most.
const REFRESH_BATCH: i64 = 500;

/// Queues a read-only scan of every catalog tag whose scan is `pending`, every `every` (± 20 %), the first at
/// once, until `shutdown` resolves: a scan that finished after its job gave up, or whose webhook never came,
/// still reaches the catalog. Several schedulers on one database are safe: a tag with a scan job queued or
/// running gets no second one.
///
/// Only a Harbor scans: on another registry a round does nothing. With `--internal-registry-kind auto` the
/// kind is known once the registry has answered, so a round asks for its health while it is not.
pub async fn schedule_scan_refresh(
    scans: Arc<dyn image_core::store::ScanQueue>,
    admin: Arc<dyn RegistryAdmin>,
    every: Duration,
    waker: Arc<tokio::sync::Notify>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    loop {
        if admin.kind() != RegistryKind::Harbor {
            admin.health().await;
        }
        let refreshed = match admin.kind() {
            RegistryKind::Harbor => scans.queue_pending_scans(REFRESH_BATCH).await,
            _ => Ok(0),
        };
        match refreshed {
            Ok(0) => {}
            Ok(queued) => {
                tracing::info!(queued, "queued the refresh of pending scans");
                crate::wake(&waker);
            }
            Err(err) => tracing::warn!(error = %err, "cannot queue the refresh of pending scans; trying again later"),
        }
        let pause = every.mul_f64(0.8 + rand::random::<f64>() * 0.4);
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}
