//! A worker that shuts down while a job runs hands it over: at the end of its grace period it ends the
//! job's lease, and another worker claims the job at once instead of when the lease would have lapsed.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use image_core::{job::JobPayload, store::JobQueue};
use serde::{Deserialize, Serialize};
use sync_worker::{Claimed, Job, Outcome, Runner, RunnerConfig, Verdict};

#[derive(Debug, Serialize, Deserialize)]
struct Stuck {}

impl JobPayload for Stuck {
    const NAME: &'static str = "stuck";
}

/// Never finishes: tells the test it started, then waits for ever.
struct StuckJob;

#[async_trait]
impl Job for StuckJob {
    type Payload = Stuck;
    type Context = Arc<tokio::sync::Notify>;
    type Output = ();

    async fn run(started: &Self::Context, _: &Claimed<Stuck>) -> image_core::Result<Outcome<()>> {
        started.notify_one();
        std::future::pending().await
    }

    async fn finish(_: &Self::Context, _: &Claimed<Stuck>, _: Verdict<()>) -> image_core::Result<bool> {
        unreachable!("a stuck job never finishes")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_running_at_shutdown_is_taken_over_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("imagegate.db").display());
    let store = Arc::new(store::DbStore::connect(&url).await.unwrap());
    let id = store.enqueue_job("stuck", &serde_json::json!({}), 0, time::OffsetDateTime::now_utc(), 5).await.unwrap();

    let started = Arc::new(tokio::sync::Notify::new());
    let lease = Duration::from_secs(60);
    let config = RunnerConfig {
        worker_id: "leaving".into(),
        lease,
        shutdown_grace: Duration::from_millis(200),
        ..RunnerConfig::default()
    };
    let runner = Arc::new(Runner::new(store.clone(), started.clone(), config).register::<StuckJob>());
    let shutdown = {
        let started = started.clone();
        async move { started.notified().await }
    };
    let began = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), runner.run(shutdown)).await.expect("the runner stops");
    assert!(began.elapsed() < Duration::from_secs(5), "{:?}", began.elapsed());

    // The lease had most of its minute left; another worker gets the job now all the same.
    let taken = store.claim_job("staying", &["stuck"], lease).await.unwrap().expect("the job is due again");
    assert_eq!((taken.id, taken.attempts), (id, 2));
    // And the leaving worker holds it no longer.
    assert!(!store.renew_lease(id, "leaving", lease).await.unwrap());
    assert!(store.renew_lease(id, "staying", lease).await.unwrap());
}
