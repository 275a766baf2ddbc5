use std::{collections::HashMap, future::Future, marker::PhantomData, sync::Arc, time::Duration};

use async_trait::async_trait;
use image_core::{
    Timestamp,
    job::JobPayload,
    store::{ClaimedJob, JobId, JobQueue},
};
use time::OffsetDateTime;
use tokio::{sync::watch, task::JoinSet};
use tracing::Instrument;

/// How a runner claims and holds jobs.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Names this worker in leases and logs; unique per process.
    pub worker_id: String,
    /// Jobs run at once, of all types together.
    pub concurrency: usize,
    /// How long a claim holds without renewal; renewed every third of it.
    pub lease: Duration,
    /// How long to wait before looking again when the queue is empty.
    pub poll_interval: Duration,
    /// How long running jobs may go on after shutdown is asked for; then they are dropped and their
    /// leases ended (`JobQueue::release_job`), so that another worker resumes them at once.
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

/// A claimed job with its payload read, as its [`Job`] type sees it.
pub struct Claimed<P> {
    pub id: JobId,
    pub payload: P,
    /// Attempts so far, this one included.
    pub attempt: i32,
    pub max_attempts: i32,
    pub lease: Lease,
    queue: Arc<dyn JobQueue>,
}

impl<P: std::fmt::Debug> std::fmt::Debug for Claimed<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claimed")
            .field("id", &self.id)
            .field("payload", &self.payload)
            .field("attempt", &self.attempt)
            .field("max_attempts", &self.max_attempts)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl<P> Claimed<P> {
    /// Puts this job back in the queue, due at `run_at`, for a job type whose store has no method that
    /// requeues it together with its domain write. False when this worker no longer holds the job.
    pub async fn requeue(&self, error: &str, run_at: Timestamp) -> image_core::Result<bool> {
        self.queue.retry_job(self.id, &self.lease.worker, error, run_at).await
    }

    /// Removes this job from the queue; false when this worker no longer holds it.
    pub async fn complete(&self) -> image_core::Result<bool> {
        self.queue.complete_job(self.id, &self.lease.worker).await
    }
}

/// What one attempt of a job came to, as its handler ([`Job::run`]) sees it. Whether a retry is still
/// allowed, and when it runs, is the runner's to decide.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// Done; `T` is what [`Job::finish`] records.
    Done(T),
    /// Worth another attempt (a transient error, a timeout), not before `retry_after` when the other side
    /// asked for a pause.
    Retry { error: String, retry_after: Option<Duration> },
    /// Not worth another attempt.
    Fail { error: String },
    /// Nothing left to do: the job's subject was deleted, canceled, or is no longer this job's. The runner
    /// removes the job (if this worker still holds it) and writes nothing else.
    Obsolete { reason: String },
}

/// What the runner decided from an [`Outcome`] and the job's attempts, for [`Job::finish`] to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict<T> {
    Succeeded(T),
    /// Attempts remain: the job runs again at `run_at`.
    Retry {
        error: String,
        run_at: Timestamp,
    },
    /// Final: the attempt failed for good, or the job is out of attempts.
    Failed {
        error: String,
    },
}

/// A job type: a payload from `image-core`, a handler that runs one attempt, and the write that ends it.
///
/// Attempts, backoff and giving up are the runner's: a job type says only what an attempt came to.
/// Registering one with [`Runner::register`] is all a new job type needs.
#[async_trait]
pub trait Job: Send + Sync + 'static {
    /// Its [`JobPayload::NAME`] is the job type in the queue.
    type Payload: JobPayload;
    /// What every job type of one runner shares.
    type Context: Send + Sync + 'static;
    /// What a successful attempt hands to [`Job::finish`].
    type Output: Send + Sync + 'static;

    /// Runs one attempt. An error is one of the store's, before the attempt could start: the runner
    /// retries the job (counting the attempt) without a domain write.
    async fn run(ctx: &Self::Context, job: &Claimed<Self::Payload>) -> image_core::Result<Outcome<Self::Output>>;

    /// Writes the verdict on the domain side and ends or requeues the job, in one transaction where the store
    /// allows. True when written; false when this worker no longer holds the job (nothing written). A
    /// `NotFound` error means the job's subject is gone: the runner then removes the job.
    async fn finish(
        ctx: &Self::Context,
        job: &Claimed<Self::Payload>,
        verdict: Verdict<Self::Output>,
    ) -> image_core::Result<bool>;
}

/// The delay before attempt `attempt + 1`: 5 s doubling per attempt, at most 10 minutes, ± 25 %, and never
/// shorter than what the other side asked for.
pub fn backoff(attempt: i32, retry_after: Option<Duration>) -> Duration {
    let exp = 5u64.saturating_mul(1u64 << (attempt.max(1) - 1).min(16) as u32);
    let base = Duration::from_secs(exp.min(600));
    let jittered = base.mul_f64(0.75 + rand::random::<f64>() * 0.5);
    jittered.max(retry_after.unwrap_or_default())
}

/// What the runner does after an attempt.
#[derive(Debug, PartialEq)]
enum Next<T> {
    /// Hands the verdict to [`Job::finish`].
    Finish(Verdict<T>),
    /// The attempt could not start (a store error): requeues the job, with no domain write.
    Requeue { error: String, run_at: Timestamp },
    /// Removes an obsolete job, with no domain write.
    Remove { reason: String },
}

/// The runner's one decision on an attempt: whether it is retried, when, or given up.
fn decide<T>(result: image_core::Result<Outcome<T>>, attempt: i32, max_attempts: i32, now: Timestamp) -> Next<T> {
    let attempts_left = attempt < max_attempts;
    match result {
        Ok(Outcome::Done(output)) => Next::Finish(Verdict::Succeeded(output)),
        Ok(Outcome::Obsolete { reason }) => Next::Remove { reason },
        Ok(Outcome::Retry { error, retry_after }) if attempts_left => {
            let delay = backoff(attempt, retry_after);
            tracing::warn!(%error, retry_in = ?delay, "attempt failed; will retry");
            Next::Finish(Verdict::Retry { error, run_at: now + delay })
        }
        Err(err) if attempts_left => {
            let delay = backoff(attempt, None);
            tracing::warn!(error = %err, retry_in = ?delay, "the attempt could not start; will retry");
            Next::Requeue { error: err.to_string(), run_at: now + delay }
        }
        Ok(Outcome::Retry { error, .. } | Outcome::Fail { error }) => {
            tracing::warn!(%error, attempt, max_attempts, "job failed");
            Next::Finish(Verdict::Failed { error })
        }
        Err(err) => {
            tracing::warn!(error = %err, attempt, max_attempts, "job failed");
            Next::Finish(Verdict::Failed { error: err.to_string() })
        }
    }
}

/// Runs one job type's jobs, its type erased so that one runner holds several.
#[async_trait]
trait Dispatch<C>: Send + Sync {
    async fn run(&self, queue: Arc<dyn JobQueue>, ctx: &C, job: &ClaimedJob, lease: Lease);
}

struct Typed<J>(PhantomData<fn() -> J>);

#[async_trait]
impl<J: Job> Dispatch<J::Context> for Typed<J> {
    async fn run(&self, queue: Arc<dyn JobQueue>, ctx: &J::Context, job: &ClaimedJob, lease: Lease) {
        let payload = match serde_json::from_value::<J::Payload>(job.payload.clone()) {
            Ok(payload) => payload,
            Err(err) => {
                // Retrying cannot help: the same bytes fail the same way.
                tracing::error!(
                    job_id = job.id.get(),
                    job_type = %job.job_type,
                    payload = %job.payload,
                    error = %err,
                    "cannot read the job's payload: it failed for good and is removed"
                );
                metrics::counter!("imagegate_jobs_finished_total", "job_type" => job.job_type.clone(), "outcome" => "failed")
                    .increment(1);
                if let Err(err) = queue.complete_job(job.id, &lease.worker).await {
                    tracing::warn!(error = %err, "cannot remove the job");
                }
                return;
            }
        };
        let claimed =
            Claimed { id: job.id, payload, attempt: job.attempts, max_attempts: job.max_attempts, lease, queue };
        let next = if job.attempts > job.max_attempts {
            // Claims count attempts; a job whose workers kept dying mid-attempt ends here, not in a loop.
            let error =
                format!("gave up after {} attempts: the workers running it stopped before it ended", job.max_attempts);
            tracing::warn!(%error, "job failed");
            Next::Finish(Verdict::Failed { error })
        } else {
            decide(J::run(ctx, &claimed).await, job.attempts, job.max_attempts, OffsetDateTime::now_utc())
        };
        finished(&job.job_type, &next);
        let verdict = match next {
            Next::Finish(verdict) => verdict,
            Next::Requeue { error, run_at } => {
                if let Err(err) = claimed.requeue(&error, run_at).await {
                    tracing::warn!(error = %err, "cannot requeue the job; it runs again when its lease lapses");
                }
                return;
            }
            Next::Remove { reason } => {
                tracing::info!(%reason, "nothing left to do: removing the job");
                remove(&claimed).await;
                return;
            }
        };
        match J::finish(ctx, &claimed, verdict).await {
            Ok(true) => {}
            // Either another worker holds the job now, and removing it changes nothing, or its subject has moved
            // on from it (canceled, finished, another job queued): an orphan, removed here.
            Ok(false) => match claimed.complete().await {
                Ok(true) => tracing::info!("the job's subject has moved on from it: removed the job"),
                Ok(false) => tracing::warn!("lease lost before the outcome was written; another worker owns the job"),
                Err(err) => tracing::warn!(error = %err, "cannot remove the job; it runs again when its lease lapses"),
            },
            Err(image_core::Error::NotFound { .. }) => {
                tracing::info!("the subject of this job is gone: removing the job");
                remove(&claimed).await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot write the job's outcome; it runs again when its lease lapses")
            }
        }
    }
}

/// Counts the attempt's outcome in `imagegate_jobs_finished_total` (through the `metrics` facade; nothing
/// without a recorder): `succeeded`, `retry`, `failed` or `obsolete`.
fn finished<T>(job_type: &str, next: &Next<T>) {
    let outcome = match next {
        Next::Finish(Verdict::Succeeded(_)) => "succeeded",
        Next::Finish(Verdict::Retry { .. }) | Next::Requeue { .. } => "retry",
        Next::Finish(Verdict::Failed { .. }) => "failed",
        Next::Remove { .. } => "obsolete",
    };
    metrics::counter!("imagegate_jobs_finished_total", "job_type" => job_type.to_owned(), "outcome" => outcome)
        .increment(1);
}

async fn remove<P>(job: &Claimed<P>) {
    if let Err(err) = job.complete().await {
        tracing::warn!(error = %err, "cannot remove the job; it runs again when its lease lapses");
    }
}

/// Claims jobs from a [`JobQueue`] and runs them with their [`Job`] types, at most `concurrency` at once
/// across all types.
pub struct Runner<C> {
    queue: Arc<dyn JobQueue>,
    ctx: Arc<C>,
    jobs: HashMap<&'static str, Arc<dyn Dispatch<C>>>,
    config: RunnerConfig,
    /// Rung by whoever queues a job in this process, so an idle runner claims it at once instead of at its
    /// next poll.
    waker: Arc<tokio::sync::Notify>,
}

/// Wakes the runner of this process after a job was queued; see [`Runner::with_waker`].
pub fn wake(waker: &tokio::sync::Notify) {
    // Wakes the runners waiting now, and leaves a permit for one that is busy claiming.
    waker.notify_waiters();
    waker.notify_one();
}

impl<C> std::fmt::Debug for Runner<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("config", &self.config)
            .field("job_types", &self.jobs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<C: Send + Sync + 'static> Runner<C> {
    pub fn new(queue: Arc<dyn JobQueue>, ctx: C, config: RunnerConfig) -> Runner<C> {
        Runner { queue, ctx: Arc::new(ctx), jobs: HashMap::new(), config, waker: Arc::default() }
    }

    /// Claims at once when `waker` is rung (see [`wake`]), besides polling.
    pub fn with_waker(mut self, waker: Arc<tokio::sync::Notify>) -> Runner<C> {
        self.waker = waker;
        self
    }

    /// Runs jobs of type `J`.
    ///
    /// # Panics
    /// When another registered type has the same name: one of them would never run.
    pub fn register<J: Job<Context = C>>(mut self) -> Runner<C> {
        let name = <J::Payload as JobPayload>::NAME;
        let previous = self.jobs.insert(name, Arc::new(Typed::<J>(PhantomData)));
        assert!(previous.is_none(), "two job types are named {name:?}");
        self
    }

    /// Runs jobs of type `J` queued under `job_type` instead of its payload's name: a job only this worker
    /// can run (its own node's inventory) is queued under a type of its own, `NAME:` and a suffix.
    ///
    /// # Panics
    /// When another registered type has the same name.
    pub fn register_as<J: Job<Context = C>>(mut self, job_type: &'static str) -> Runner<C> {
        let previous = self.jobs.insert(job_type, Arc::new(Typed::<J>(PhantomData)));
        assert!(previous.is_none(), "two job types are named {job_type:?}");
        self
    }

    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    fn job_types(&self) -> Vec<&'static str> {
        let mut types: Vec<_> = self.jobs.keys().copied().collect();
        types.sort_unstable();
        types
    }

    /// Logs job types waiting in the queue that no job type here runs: a renamed type would strand them.
    pub async fn report_unknown_job_types(&self) {
        match self.queue.job_types().await {
            Ok(types) => {
                for (job_type, count) in types {
                    // `inventory:<node>` is another node's: its own worker runs it.
                    let per_worker = job_type
                        .split_once(':')
                        .is_some_and(|(name, _)| name == <image_core::job::InventoryPayload as JobPayload>::NAME);
                    if !self.jobs.contains_key(job_type.as_str()) && !per_worker {
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
        let types = self.job_types();
        tracing::info!(
            worker = %self.config.worker_id,
            concurrency = self.config.concurrency,
            job_types = ?types,
            "worker started"
        );
        self.report_unknown_job_types().await;
        let mut running = JoinSet::new();
        // The jobs running now, so that those still running at the end of the grace period are released.
        let held: Arc<std::sync::Mutex<Vec<JobId>>> = Arc::default();
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
                    let (id, held) = (job.id, held.clone());
                    held.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(id);
                    let run = self.clone().run_job(job);
                    running.spawn(async move {
                        run.await;
                        held.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|j| *j != id);
                    });
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
            running.abort_all();
            while running.join_next().await.is_some() {}
            let abandoned = std::mem::take(&mut *held.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            tracing::warn!(
                abandoned = abandoned.len(),
                "jobs still running at the end of the grace period: released for another worker to take over"
            );
            for id in abandoned {
                match self.queue.release_job(id, &self.config.worker_id).await {
                    Ok(_) => {}
                    Err(err) => {
                        tracing::warn!(job_id = id.get(), error = %err, "cannot release the job; its lease will lapse")
                    }
                }
            }
        }
        tracing::info!("worker stopped");
    }

    async fn run_job(self: Arc<Self>, job: ClaimedJob) {
        let span = tracing::info_span!("job", id = job.id.get(), job_type = %job.job_type, attempt = job.attempts);
        let Some(dispatch) = self.jobs.get(job.job_type.as_str()).cloned() else {
            // Claims only ask for known types, so this is a bug, not a stranded job.
            span.in_scope(|| tracing::error!("claimed a job of a type this runner has not registered"));
            return;
        };
        self.run_with_lease(dispatch, job).instrument(span).await;
    }

    async fn run_with_lease(self: Arc<Self>, dispatch: Arc<dyn Dispatch<C>>, job: ClaimedJob) {
        let (lost_tx, lost_rx) = watch::channel(false);
        let lease = Lease { worker: self.config.worker_id.clone(), lost: lost_rx.clone() };
        // Aborted when this future ends or is dropped (shutdown aborts running jobs), never left renewing.
        let _heartbeat = AbortOnDrop(tokio::spawn(heartbeat(self.queue.clone(), job.id, self.config.clone(), lost_tx)));
        let mut lost = lost_rx;
        tokio::select! {
            () = dispatch.run(self.queue.clone(), &self.ctx, &job, lease) => {}
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

async fn heartbeat(queue: Arc<dyn JobQueue>, id: JobId, config: RunnerConfig, lost: watch::Sender<bool>) {
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

#[cfg(test)]
mod tests {
    use std::sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    };

    use image_core::Error;
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    use super::*;

    /// An in-memory queue: hands out its jobs in order and records what the runner did with them.
    #[derive(Default)]
    struct FakeQueue {
        state: Mutex<QueueState>,
    }

    #[derive(Default)]
    struct QueueState {
        waiting: Vec<ClaimedJob>,
        completed: Vec<i64>,
        requeued: Vec<(i64, String, Timestamp)>,
        released: Vec<i64>,
        /// Renewals answer that the lease was lost.
        lease_lost: bool,
    }

    impl FakeQueue {
        fn with(jobs: Vec<ClaimedJob>) -> Arc<FakeQueue> {
            Arc::new(FakeQueue { state: Mutex::new(QueueState { waiting: jobs, ..QueueState::default() }) })
        }

        fn completed(&self) -> Vec<i64> {
            self.state.lock().unwrap().completed.clone()
        }

        fn requeued(&self) -> Vec<(i64, String, Timestamp)> {
            self.state.lock().unwrap().requeued.clone()
        }
    }

    #[async_trait]
    impl JobQueue for FakeQueue {
        async fn claim_job(
            &self,
            _: &str,
            job_types: &[&str],
            lease: Duration,
        ) -> image_core::Result<Option<ClaimedJob>> {
            let mut state = self.state.lock().unwrap();
            let Some(at) = state.waiting.iter().position(|j| job_types.contains(&j.job_type.as_str())) else {
                return Ok(None);
            };
            let mut job = state.waiting.remove(at);
            job.attempts += 1;
            job.lease_until = OffsetDateTime::now_utc() + lease;
            Ok(Some(job))
        }

        async fn renew_lease(&self, _: JobId, _: &str, _: Duration) -> image_core::Result<bool> {
            Ok(!self.state.lock().unwrap().lease_lost)
        }

        async fn retry_job(&self, id: JobId, _: &str, error: &str, run_at: Timestamp) -> image_core::Result<bool> {
            self.state.lock().unwrap().requeued.push((id.get(), error.to_owned(), run_at));
            Ok(true)
        }

        async fn release_job(&self, id: JobId, _: &str) -> image_core::Result<bool> {
            self.state.lock().unwrap().released.push(id.get());
            Ok(true)
        }

        async fn complete_job(&self, id: JobId, _: &str) -> image_core::Result<bool> {
            self.state.lock().unwrap().completed.push(id.get());
            Ok(true)
        }

        async fn job_types(&self) -> image_core::Result<Vec<(String, i64)>> {
            Ok(Vec::new())
        }
    }

    /// Jobs whose attempt does what the payload says, recording what ran and what was finished.
    #[derive(Default)]
    struct TestCtx {
        running: AtomicUsize,
        most_at_once: AtomicUsize,
        ran: Mutex<Vec<(&'static str, i64)>>,
        finished: Mutex<Vec<(i64, Verdict<String>)>>,
        /// What `finish` answers; true unless set.
        finish_answer: Mutex<Option<image_core::Result<bool>>>,
        /// How long each attempt takes.
        pause: Duration,
    }

    #[derive(Debug, Serialize, Deserialize)]
    enum Act {
        Succeed,
        Retry { retry_after_secs: Option<u64> },
        Fail,
        Obsolete,
        StoreError,
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct AlphaPayload {
        act: Act,
    }

    impl JobPayload for AlphaPayload {
        const NAME: &'static str = "alpha";
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct BetaPayload {
        act: Act,
    }

    impl JobPayload for BetaPayload {
        const NAME: &'static str = "beta";
    }

    async fn attempt(ctx: &TestCtx, name: &'static str, id: JobId, act: &Act) -> image_core::Result<Outcome<String>> {
        let now = ctx.running.fetch_add(1, Ordering::SeqCst) + 1;
        ctx.most_at_once.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(ctx.pause).await;
        ctx.running.fetch_sub(1, Ordering::SeqCst);
        ctx.ran.lock().unwrap().push((name, id.get()));
        Ok(match act {
            Act::Succeed => Outcome::Done(format!("{name} {id} done")),
            Act::Retry { retry_after_secs } => {
                Outcome::Retry { error: "busy".into(), retry_after: retry_after_secs.map(Duration::from_secs) }
            }
            Act::Fail => Outcome::Fail { error: "broken".into() },
            Act::Obsolete => Outcome::Obsolete { reason: "gone".into() },
            Act::StoreError => return Err(Error::storage("the database is away")),
        })
    }

    async fn record(ctx: &TestCtx, id: JobId, verdict: Verdict<String>) -> image_core::Result<bool> {
        ctx.finished.lock().unwrap().push((id.get(), verdict));
        ctx.finish_answer.lock().unwrap().take().unwrap_or(Ok(true))
    }

    struct Alpha;

    #[async_trait]
    impl Job for Alpha {
        type Payload = AlphaPayload;
        type Context = TestCtx;
        type Output = String;

        async fn run(ctx: &TestCtx, job: &Claimed<AlphaPayload>) -> image_core::Result<Outcome<String>> {
            attempt(ctx, "alpha", job.id, &job.payload.act).await
        }

        async fn finish(
            ctx: &TestCtx,
            job: &Claimed<AlphaPayload>,
            verdict: Verdict<String>,
        ) -> image_core::Result<bool> {
            record(ctx, job.id, verdict).await
        }
    }

    struct Beta;

    #[async_trait]
    impl Job for Beta {
        type Payload = BetaPayload;
        type Context = TestCtx;
        type Output = String;

        async fn run(ctx: &TestCtx, job: &Claimed<BetaPayload>) -> image_core::Result<Outcome<String>> {
            attempt(ctx, "beta", job.id, &job.payload.act).await
        }

        async fn finish(
            ctx: &TestCtx,
            job: &Claimed<BetaPayload>,
            verdict: Verdict<String>,
        ) -> image_core::Result<bool> {
            record(ctx, job.id, verdict).await
        }
    }

    /// A job as the queue holds it before its claim: `attempts` earlier attempts.
    fn job(id: i64, job_type: &str, payload: serde_json::Value, attempts: i32, max_attempts: i32) -> ClaimedJob {
        ClaimedJob {
            id: JobId::new(id),
            job_type: job_type.into(),
            payload,
            attempts,
            max_attempts,
            lease_until: OffsetDateTime::now_utc(),
        }
    }

    fn act(act: Act) -> serde_json::Value {
        json!({ "act": act })
    }

    fn runner(queue: &Arc<FakeQueue>, ctx: TestCtx, concurrency: usize) -> Arc<Runner<TestCtx>> {
        let config = RunnerConfig {
            worker_id: "test".into(),
            concurrency,
            lease: Duration::from_millis(300),
            poll_interval: Duration::from_millis(10),
            shutdown_grace: Duration::from_secs(5),
        };
        Arc::new(Runner::new(queue.clone(), ctx, config).register::<Alpha>().register::<Beta>())
    }

    /// Runs `runner` until `count` attempts ran, or 5 s passed.
    async fn run_until(runner: &Arc<Runner<TestCtx>>, count: usize) {
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let run = tokio::spawn(runner.clone().run(async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }));
        for _ in 0..500 {
            if runner.ctx.finished.lock().unwrap().len() >= count {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = stop_tx.send(true);
        run.await.unwrap();
    }

    #[tokio::test]
    async fn one_concurrency_limit_holds_across_job_types() {
        let jobs =
            (1..=6).map(|id| job(id, if id % 2 == 0 { "alpha" } else { "beta" }, act(Act::Succeed), 0, 3)).collect();
        let queue = FakeQueue::with(jobs);
        let ctx = TestCtx { pause: Duration::from_millis(50), ..TestCtx::default() };
        let runner = runner(&queue, ctx, 2);
        run_until(&runner, 6).await;
        let ran = runner.ctx.ran.lock().unwrap().clone();
        assert_eq!(ran.len(), 6, "{ran:?}");
        assert!(ran.iter().any(|(name, _)| *name == "alpha") && ran.iter().any(|(name, _)| *name == "beta"));
        assert_eq!(runner.ctx.most_at_once.load(Ordering::SeqCst), 2, "two at once, of both types together");
        let finished = runner.ctx.finished.lock().unwrap();
        assert!(
            finished.iter().all(|(id, v)| matches!(v, Verdict::Succeeded(s) if s.ends_with(&format!("{id} done"))))
        );
    }

    #[tokio::test]
    async fn the_runner_decides_retry_backoff_and_giving_up() {
        let queue = FakeQueue::with(vec![
            // First of three attempts, the registry asked for two minutes.
            job(1, "alpha", act(Act::Retry { retry_after_secs: Some(120) }), 0, 3),
            // Second of three, no pause asked for: 10 s ± 25 %.
            job(2, "beta", act(Act::Retry { retry_after_secs: None }), 1, 3),
            // The last attempt: a retry becomes a failure.
            job(3, "alpha", act(Act::Retry { retry_after_secs: None }), 2, 3),
            // Not worth retrying, attempts or not.
            job(4, "beta", act(Act::Fail), 0, 3),
            // Its workers died in all three attempts: given up before it runs.
            job(5, "alpha", act(Act::Succeed), 3, 3),
        ]);
        let runner = runner(&queue, TestCtx::default(), 1);
        let before = OffsetDateTime::now_utc();
        while runner.run_once().await.unwrap() {}
        let after = OffsetDateTime::now_utc();

        let ran: Vec<i64> = runner.ctx.ran.lock().unwrap().iter().map(|(_, id)| *id).collect();
        assert_eq!(ran, [1, 2, 3, 4], "job 5 is out of attempts and does not run");
        let finished = runner.ctx.finished.lock().unwrap().clone();
        assert_eq!(finished.len(), 5, "{finished:?}");
        let Verdict::Retry { error, run_at } = &finished[0].1 else { panic!("{finished:?}") };
        assert_eq!(error, "busy");
        assert!(*run_at >= before + Duration::from_secs(120), "never sooner than Retry-After");
        let Verdict::Retry { run_at, .. } = &finished[1].1 else { panic!("{finished:?}") };
        assert!(*run_at >= before + Duration::from_millis(7_500) && *run_at <= after + Duration::from_millis(12_500));
        assert_eq!(finished[2], (3, Verdict::Failed { error: "busy".into() }));
        assert_eq!(finished[3], (4, Verdict::Failed { error: "broken".into() }));
        let (5, Verdict::Failed { error }) = &finished[4] else { panic!("{finished:?}") };
        assert!(error.starts_with("gave up after 3 attempts"), "{error}");
        assert!(queue.completed().is_empty() && queue.requeued().is_empty(), "the job types write the queue change");
    }

    /// A type registered under a name of its own runs only the jobs queued under that name: this worker's
    /// `alpha:mine`, never another worker's `alpha:theirs`, nor plain `alpha`.
    #[tokio::test]
    async fn a_type_registered_under_its_own_name_runs_only_those_jobs() {
        let queue = FakeQueue::with(vec![
            job(1, "alpha:theirs", act(Act::Succeed), 0, 1),
            job(2, "alpha:mine", act(Act::Succeed), 0, 1),
            job(3, "alpha", act(Act::Succeed), 0, 1),
        ]);
        let config = RunnerConfig { worker_id: "test".into(), ..RunnerConfig::default() };
        let runner =
            Arc::new(Runner::new(queue.clone(), TestCtx::default(), config).register_as::<Alpha>("alpha:mine"));
        while runner.run_once().await.unwrap() {}
        let ran: Vec<i64> = runner.ctx.ran.lock().unwrap().iter().map(|(_, id)| *id).collect();
        assert_eq!(ran, [2]);
        assert_eq!(queue.state.lock().unwrap().waiting.len(), 2, "the others stay queued");
    }

    #[tokio::test]
    async fn a_payload_that_does_not_read_fails_the_job_for_good() {
        let queue = FakeQueue::with(vec![
            job(1, "alpha", json!({"import_id": 7}), 0, 3),
            job(2, "beta", json!("not an object"), 0, 3),
            job(3, "alpha", act(Act::Succeed), 0, 3),
        ]);
        let runner = runner(&queue, TestCtx::default(), 1);
        while runner.run_once().await.unwrap() {}
        assert_eq!(queue.completed(), [1, 2], "removed, not retried");
        assert!(queue.requeued().is_empty());
        let ran: Vec<i64> = runner.ctx.ran.lock().unwrap().iter().map(|(_, id)| *id).collect();
        assert_eq!(ran, [3], "no handler sees a payload it cannot read, and the runner goes on");
    }

    #[tokio::test]
    async fn obsolete_jobs_are_removed_and_store_errors_requeued() {
        let queue = FakeQueue::with(vec![
            job(1, "alpha", act(Act::Obsolete), 0, 3),
            job(2, "beta", act(Act::StoreError), 0, 3),
            // Out of attempts, a store error fails the job through its type.
            job(3, "beta", act(Act::StoreError), 2, 3),
        ]);
        let runner = runner(&queue, TestCtx::default(), 1);
        while runner.run_once().await.unwrap() {}
        assert_eq!(queue.completed(), [1]);
        let requeued = queue.requeued();
        assert_eq!(requeued.len(), 1);
        assert_eq!(requeued[0].0, 2);
        assert!(requeued[0].1.contains("the database is away"), "{requeued:?}");
        let finished = runner.ctx.finished.lock().unwrap().clone();
        assert_eq!(finished.len(), 1, "{finished:?}");
        assert!(matches!(&finished[0], (3, Verdict::Failed { error }) if error.contains("the database is away")));
    }

    #[tokio::test]
    async fn a_gone_subject_or_an_orphaned_job_is_removed_after_finish() {
        for answer in [Err(Error::not_found("import", 1)), Ok(false)] {
            let queue = FakeQueue::with(vec![job(1, "alpha", act(Act::Succeed), 0, 3)]);
            let ctx = TestCtx { finish_answer: Mutex::new(Some(answer)), ..TestCtx::default() };
            let runner = runner(&queue, ctx, 1);
            assert!(runner.run_once().await.unwrap());
            assert_eq!(queue.completed(), [1]);
        }
        let queue = FakeQueue::with(vec![job(1, "alpha", act(Act::Succeed), 0, 3)]);
        let ctx = TestCtx { finish_answer: Mutex::new(Some(Err(Error::storage("away")))), ..TestCtx::default() };
        let runner = runner(&queue, ctx, 1);
        assert!(runner.run_once().await.unwrap());
        assert!(queue.completed().is_empty() && queue.requeued().is_empty(), "left for its lease to lapse");
    }

    #[tokio::test]
    async fn a_job_whose_lease_is_lost_is_dropped_unfinished() {
        let queue = FakeQueue::with(vec![job(1, "alpha", act(Act::Succeed), 0, 3)]);
        queue.state.lock().unwrap().lease_lost = true;
        // Renewed every 100 ms; the attempt takes far longer.
        let ctx = TestCtx { pause: Duration::from_secs(30), ..TestCtx::default() };
        let runner = runner(&queue, ctx, 1);
        tokio::time::timeout(Duration::from_secs(5), runner.run_once()).await.expect("dropped").unwrap();
        assert!(runner.ctx.ran.lock().unwrap().is_empty(), "the attempt was stopped");
        assert!(runner.ctx.finished.lock().unwrap().is_empty());
        assert!(queue.completed().is_empty() && queue.requeued().is_empty());
    }

    #[test]
    #[should_panic(expected = "two job types are named")]
    fn two_job_types_of_one_name_are_refused() {
        let queue = FakeQueue::with(Vec::new());
        let _ = Runner::new(queue, TestCtx::default(), RunnerConfig::default()).register::<Alpha>().register::<Alpha>();
    }

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
