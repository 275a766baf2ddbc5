//! The retention job: deletes finished imports and old audit events, and the scheduler that queues it.

use std::{future::Future, sync::Arc, time::Duration};

use async_trait::async_trait;
use image_core::{
    job::RetentionPayload,
    ops::{OpsStore, Pruned, RetentionPolicy},
};
use time::OffsetDateTime;

use crate::{Claimed, Job, Outcome, Verdict, WorkerContext};

/// Runs `retention` jobs: prunes with the ages the job carries, in the store's batches.
#[derive(Debug, Default)]
pub struct RetentionHandler;

#[async_trait]
impl Job for RetentionHandler {
    type Payload = RetentionPayload;
    type Context = WorkerContext;
    type Output = Pruned;

    async fn run(ctx: &WorkerContext, job: &Claimed<RetentionPayload>) -> image_core::Result<Outcome<Pruned>> {
        let policy = RetentionPolicy::from_payload(job.payload);
        match ctx.ops.prune(policy, OffsetDateTime::now_utc()).await {
            Ok(pruned) => {
                tracing::info!(imports = pruned.imports, events = pruned.events, "pruned old history");
                Ok(Outcome::Done(pruned))
            }
            // What was deleted stays deleted; the next attempt goes on from there.
            Err(err) => Ok(Outcome::Retry { error: err.to_string(), retry_after: None }),
        }
    }

    /// The job has no record of its own: it leaves the queue, or waits for its next attempt.
    async fn finish(
        _: &WorkerContext,
        job: &Claimed<RetentionPayload>,
        verdict: Verdict<Pruned>,
    ) -> image_core::Result<bool> {
        match verdict {
            Verdict::Succeeded(_) => job.complete().await,
            Verdict::Retry { error, run_at } => job.requeue(&error, run_at).await,
            Verdict::Failed { error } => {
                tracing::warn!(%error, "pruning failed; the next scheduled run tries again");
                job.complete().await
            }
        }
    }
}

/// Queues a retention job with `payload`'s ages every `every` (± 20 %), the first at once, until
/// `shutdown` resolves. Several schedulers on one database are safe: the store keeps one such job.
pub async fn schedule_retention(
    ops: Arc<dyn OpsStore>,
    payload: RetentionPayload,
    every: Duration,
    waker: Arc<tokio::sync::Notify>,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    loop {
        match ops.queue_retention(payload).await {
            Ok(true) => crate::wake(&waker),
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, "cannot queue the retention job; trying again later"),
        }
        let pause = every.mul_f64(0.8 + rand::random::<f64>() * 0.4);
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}
