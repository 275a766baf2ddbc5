//! The node inventory job: reads this node's images from its container runtime and records them.

use std::{future::Future, sync::Arc, time::Duration};

use async_trait::async_trait;
use image_core::{
    inventory::{IgnoreList, ImageRuntime},
    job::InventoryPayload,
    store::InventoryStore,
};

use crate::{Claimed, Job, Outcome, Verdict, WorkerContext};

/// What a worker needs to report its own node.
pub struct NodeReporter {
    /// The node's name in the inventory.
    pub node: String,
    pub runtime: Arc<dyn ImageRuntime>,
    pub store: Arc<dyn InventoryStore>,
    /// How often the node reports; three missed intervals make it stale.
    pub interval: Duration,
    /// Image ids left out of the report.
    pub ignore: IgnoreList,
}

impl std::fmt::Debug for NodeReporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeReporter")
            .field("node", &self.node)
            .field("endpoint", &self.runtime.endpoint())
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl NodeReporter {
    /// The job type this node's inventory jobs are queued under (`inventory:<node>`), for
    /// [`crate::Runner::register_as`]; made once per process.
    pub fn job_type(&self) -> &'static str {
        Box::leak(InventoryPayload::job_type(&self.node).into_boxed_str())
    }

    fn interval_secs(&self) -> i64 {
        i64::try_from(self.interval.as_secs().max(1)).unwrap_or(i64::MAX)
    }
}

/// One inventory of this node: the runtime's version and images, or why it could not be read.
#[derive(Debug)]
pub struct InventoryJob;

#[async_trait]
impl Job for InventoryJob {
    type Payload = InventoryPayload;
    type Context = WorkerContext;
    type Output = image_core::inventory::RuntimeReport;

    async fn run(ctx: &WorkerContext, job: &Claimed<InventoryPayload>) -> image_core::Result<Outcome<Self::Output>> {
        let Some(reporter) = ctx.inventory.as_ref().filter(|r| r.node == job.payload.node) else {
            return Ok(Outcome::Obsolete { reason: format!("this worker does not report node {}", job.payload.node) });
        };
        Ok(match reporter.runtime.report().await {
            Ok(mut report) => {
                report.images = reporter.ignore.apply(report.images);
                Outcome::Done(report)
            }
            Err(err) => Outcome::Fail { error: err.to_string() },
        })
    }

    async fn finish(
        ctx: &WorkerContext,
        job: &Claimed<InventoryPayload>,
        verdict: Verdict<Self::Output>,
    ) -> image_core::Result<bool> {
        let Some(reporter) = ctx.inventory.as_ref() else { return Ok(false) };
        let report = match verdict {
            Verdict::Succeeded(report) => {
                tracing::debug!(node = %reporter.node, images = report.images.len(), "node inventory recorded");
                Ok(report)
            }
            Verdict::Retry { error, .. } | Verdict::Failed { error } => {
                tracing::warn!(node = %reporter.node, %error, "cannot read the node's images");
                Err(error)
            }
        };
        reporter
            .store
            .record_inventory(Some((job.id, &job.lease.worker)), &reporter.node, reporter.interval_secs(), report)
            .await
    }
}

/// Queues this node's inventory job every interval (none while one is waiting), until `shutdown`.
pub async fn schedule_inventory(
    reporter: Arc<NodeReporter>,
    waker: Arc<tokio::sync::Notify>,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    loop {
        match reporter.store.enqueue_inventory(&reporter.node).await {
            Ok(true) => crate::wake(&waker),
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, "cannot queue the node's inventory; trying again later"),
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(reporter.interval) => {}
        }
    }
}
