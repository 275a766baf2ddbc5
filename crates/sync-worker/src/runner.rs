use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use async_trait::async_trait;
use image_core::store::{ClaimedJob, JobQueue};
use tokio::{sync::watch, task::JoinSet};
use tracing::Instrument;

/// How a runner claims and holds jobs.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Names this worker in leases and logs; unique per process.
    pub worker_id: String,
    /// Jobs run at once.
    pub concurrency: usize,
    /// How long a claim holds without renewal; renewed every third of it.
    pub lease: Duration,
    /// How long to wait before looking again when the queue is empty.
    pub poll_interval: Duration,
    /// How long running jobs may go on after shutdown is asked for; then they are dropped, and their
    /// leases lapse so that another worker resumes them.
    pub shutdown_grace: Duration,
}

impl Default for RunnerConfig {
    fn default() -> RunnerConfig {
        RunnerConfig {
            worker_id: default_worker_id(),
            concurrency: 4,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// `host-pid-random`, so that leases name a process a person can find.
fn default_worker_id() -> String {
    let host =
        std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_owned()).unwrap_or_else(|_| "worker".into());
    format!("{host}-{}-{:04x}", std::process::id(), rand::random::<u16>())
}

/// A claimed job's lease, as a handler sees it.
#[derive(Debug, Clone)]
pub struct Lease {
    pub worker: String,
    lost: watch::Receiver<bool>,
}

impl Lease {
    /// Whether this worker still holds the job.
    pub fn is_held(&self) -> bool {
        !*self.lost.borrow()
    }
}

/// Runs jobs of one type. The handler ends its job itself (through the store, in the same transaction as
/// the job's own outcome); the runner only claims, keeps the lease, and stops the handler when the lease
/// is lost.
#[async_trait]
pub trait JobHandler<C>: Send + Sync {
    async fn run(&self, ctx: &C, job: &ClaimedJob, lease: &Lease);
}

/// Claims jobs from a [`JobQueue`] and runs them with their handlers.
pub struct Runner<C> {
    queue: Arc<dyn JobQueue>,
    ctx: Arc<C>,
    handlers: HashMap<&'static str, Arc<dyn JobHandler<C>>>,
    config: RunnerConfig,
    /// Rung by whoever queues a job in this process, so an idle runner claims it at once instead of at its
    /// next poll.
    waker: Arc<tokio::sync::Notify>,
}

/// Wakes the runners of this process after a job was queued; see [`Runner::with_waker`].
pub fn wake(waker: &tokio::sync::Notify) {
    // Wakes the runners waiting now, and leaves a permit for one that is busy claiming.
    waker.notify_waiters();
    waker.notify_one();
}

impl<C> std::fmt::Debug for Runner<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("config", &self.config)
            .field("job_types", &self.handlers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<C: Send + Sync + 'static> Runner<C> {
    pub fn new(queue: Arc<dyn JobQueue>, ctx: C, config: RunnerConfig) -> Runner<C> {
        Runner { queue, ctx: Arc::new(ctx), handlers: HashMap::new(), config, waker: Arc::default() }
    }

    /// Claims at once when `waker` is rung (see [`wake`]), besides polling.
    pub fn with_waker(mut self, waker: Arc<tokio::sync::Notify>) -> Runner<C> {
        self.waker = waker;
        self
    }

    pub fn register(mut self, job_type: &'static str, handler: impl JobHandler<C> + 'static) -> Runner<C> {
        self.handlers.insert(job_type, Arc::new(handler));
        self
    }

    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    fn job_types(&self) -> Vec<&'static str> {
        self.handlers.keys().copied().collect()
    }

    /// Logs job types waiting in the queue that no handler here runs: a renamed type would strand them.
    pub async fn report_unknown_job_types(&self) {
        match self.queue.job_types().await {
            Ok(types) => {
                for (job_type, count) in types {
                    if !self.handlers.contains_key(job_type.as_str()) {
                        tracing::warn!(%job_type, count, "jobs of a type this worker does not know are waiting");
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot list job types"),
        }
    }

    /// Claims and runs one job to its end; false when none was due.
    pub async fn run_once(self: &Arc<Self>) -> image_core::Result<bool> {
        let types = self.job_types();
        let Some(job) = self.queue.claim_job(&self.config.worker_id, &types, self.config.lease).await? else {
            return Ok(false);
        };
        self.clone().run_job(job).await;
        Ok(true)
    }

    /// Claims and runs jobs until `shutdown` resolves; then stops claiming and gives running jobs
    /// `shutdown_grace` to finish.
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()> + Send) {
        tracing::info!(worker = %self.config.worker_id, concurrency = self.config.concurrency, "worker started");
        self.report_unknown_job_types().await;
        let types = self.job_types();
        let mut running = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            while running.try_join_next().is_some() {}
            let claimed = if running.len() < self.config.concurrency.max(1) {
                match self.queue.claim_job(&self.config.worker_id, &types, self.config.lease).await {
                    Ok(job) => job,
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot claim a job; trying again shortly");
                        None
                    }
                }
            } else {
                None
            };
            match claimed {
                // Look again at once: more may be due.
                Some(job) => {
                    running.spawn(self.clone().run_job(job));
                }
                None => {
                    tokio::select! {
                        () = &mut shutdown => break,
                        _ = running.join_next(), if !running.is_empty() => {}
                        () = self.waker.notified() => {}
                        () = tokio::time::sleep(jittered(self.config.poll_interval)) => {}
                    }
                }
            }
        }
        tracing::info!(running = running.len(), "worker stopping: letting running jobs finish");
        let drain = async { while running.join_next().await.is_some() {} };
        if tokio::time::timeout(self.config.shutdown_grace, drain).await.is_err() {
            tracing::warn!(
                abandoned = running.len(),
                "jobs still running at the end of the grace period: their leases will lapse"
            );
            running.abort_all();
        }
        tracing::info!("worker stopped");
    }

    async fn run_job(self: Arc<Self>, job: ClaimedJob) {
        let Some(handler) = self.handlers.get(job.job_type.as_str()).cloned() else {
            // Claims only ask for known types, so this is a bug, not a stranded job.
            tracing::error!(job_type = %job.job_type, "claimed a job with no handler");
            return;
        };
        let span = tracing::info_span!("job", id = job.id, job_type = %job.job_type, attempt = job.attempts);
        self.run_with_lease(handler, job).instrument(span).await;
    }

    async fn run_with_lease(self: Arc<Self>, handler: Arc<dyn JobHandler<C>>, job: ClaimedJob) {
        let (lost_tx, lost_rx) = watch::channel(false);
        let lease = Lease { worker: self.config.worker_id.clone(), lost: lost_rx.clone() };
        // Aborted when this future ends or is dropped (shutdown aborts running jobs), never left renewing.
        let _heartbeat = AbortOnDrop(tokio::spawn(heartbeat(self.queue.clone(), job.id, self.config.clone(), lost_tx)));
        let mut lost = lost_rx;
        tokio::select! {
            () = handler.run(&self.ctx, &job, &lease) => {}
            _ = lost.wait_for(|lost| *lost) => {
                tracing::warn!("lease lost (canceled, or taken over after a stall): stopping this job here");
            }
        }
    }
}

/// Aborts a background task when dropped, so that it cannot outlive the job it serves.
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn heartbeat(queue: Arc<dyn JobQueue>, id: i64, config: RunnerConfig, lost: watch::Sender<bool>) {
    let every = config.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        match queue.renew_lease(id, &config.worker_id, config.lease).await {
            Ok(true) => {}
            Ok(false) => {
                let _ = lost.send(true);
                return;
            }
            // The database may be back before the lease ends; if not, the next renewal says so.
            Err(err) => tracing::warn!(error = %err, "cannot renew the lease"),
        }
    }
}

/// `d` ± 20%, so that workers started together do not poll in step.
fn jittered(d: Duration) -> Duration {
    d.mul_f64(0.8 + rand::random::<f64>() * 0.4)
}
