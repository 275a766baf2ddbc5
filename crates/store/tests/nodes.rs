//! The node inventory's storage on both backends: reports and failures, the per-node inventory job, and a
//! report whose worker lost the job's lease writing nothing.

use std::time::Duration;

use image_core::{
    ErrorCode,
    inventory::{RuntimeImage, RuntimeReport},
    job::InventoryPayload,
    store::{InventoryStore, JobQueue},
};
use store::DbStore;

async fn sqlite() -> (DbStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("imagegate.db").display());
    (DbStore::connect(&url).await.unwrap(), dir)
}

async fn postgres() -> DbStore {
    DbStore::connect(&test_support::postgres_url().await).await.unwrap()
}

fn report(images: &[(&str, &[&str])]) -> RuntimeReport {
    RuntimeReport {
        runtime_name: "containerd".into(),
        runtime_version: "1.6.20".into(),
        image_fs_used: Some(10),
        images: images
            .iter()
            .map(|(id, tags)| RuntimeImage {
                id: (*id).into(),
                repo_tags: tags.iter().map(|t| t.to_string()).collect(),
                repo_digests: vec![],
                size: 1000,
            })
            .collect(),
    }
}

async fn reports_failures_and_jobs(store: &DbStore) {
    assert_eq!(store.get_node("node-a").await.unwrap_err().code(), ErrorCode::NotFound);
    assert!(store.list_nodes().await.unwrap().is_empty());

    // A first report, then a failure: the images of the report stay, with the reason.
    let images = report(&[("sha256:aa", &["docker.io/library/redis:7"]), ("sha256:bb", &[])]);
    assert!(store.record_inventory(None, "node-a", 60, Ok(images.clone())).await.unwrap());
    let node = store.get_node("node-a").await.unwrap();
    assert_eq!(node.images, images.images);
    assert_eq!(node.runtime_version.as_deref(), Some("1.6.20"));
    assert_eq!(node.last_report_at, Some(node.last_attempt_at));
    assert_eq!(node.last_error, None);
    let reported_at = node.last_report_at;
    assert!(store.record_inventory(None, "node-a", 30, Err("socket gone".into())).await.unwrap());
    let node = store.get_node("node-a").await.unwrap();
    assert_eq!(node.images, images.images);
    assert_eq!(node.last_error.as_deref(), Some("socket gone"));
    assert_eq!(node.last_report_at, reported_at);
    assert_eq!(node.interval_secs, 30);
    // A node that never reported successfully.
    assert!(store.record_inventory(None, "node-b", 60, Err("no runtime".into())).await.unwrap());
    let names: Vec<_> = store.list_nodes().await.unwrap().into_iter().map(|n| n.name).collect();
    assert_eq!(names, ["node-a", "node-b"]);
    assert!(store.get_node("node-b").await.unwrap().images.is_empty());
    // Bad input is refused.
    let refused = store.record_inventory(None, "", 60, Ok(report(&[]))).await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::Invalid);
    let refused = store.record_inventory(None, "node-a", 0, Ok(report(&[]))).await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::Invalid);

    // One job per node at a time, under the node's own type.
    assert!(store.enqueue_inventory("node-a").await.unwrap());
    assert!(!store.enqueue_inventory("node-a").await.unwrap(), "one is waiting already");
    assert!(store.enqueue_inventory("node-b").await.unwrap());
    let lease = Duration::from_secs(30);
    let job_type = InventoryPayload::job_type("node-a");
    let job = store.claim_job("w1", &[&job_type], lease).await.unwrap().unwrap();
    assert_eq!(job.job_type, "inventory:node-a");
    assert_eq!(job.payload, serde_json::json!({"node": "node-a"}));
    assert!(store.claim_job("w2", &[&job_type], lease).await.unwrap().is_none(), "node-b's job is not node-a's");
    // A worker that does not hold the job writes nothing; the one that holds it writes and ends the job.
    let newer = report(&[("sha256:cc", &["docker.io/library/nginx:1"])]);
    assert!(!store.record_inventory(Some((job.id, "w2")), "node-a", 60, Ok(newer.clone())).await.unwrap());
    assert_eq!(store.get_node("node-a").await.unwrap().images, images.images);
    assert!(store.record_inventory(Some((job.id, "w1")), "node-a", 60, Ok(newer.clone())).await.unwrap());
    let node = store.get_node("node-a").await.unwrap();
    assert_eq!(node.images, newer.images);
    assert_eq!(node.last_error, None);
    assert!(store.enqueue_inventory("node-a").await.unwrap(), "the job ended with its report");
}

#[tokio::test]
async fn reports_failures_and_jobs_on_sqlite() {
    let (store, _dir) = sqlite().await;
    reports_failures_and_jobs(&store).await;
}

#[tokio::test]
async fn reports_failures_and_jobs_on_postgres() {
    reports_failures_and_jobs(&postgres().await).await;
}
