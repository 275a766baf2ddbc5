//! The retention job, run by the real job runner: a finished import's record goes, the catalog's image
//! and the audit events (kept longer) stay.

use axum::http::StatusCode;
use image_core::{import::ImportFilter, job::RetentionPayload};
use serde_json::json;
use test_support::{Distribution, images};

use crate::harness::TestApp;

async fn the_retention_job_prunes_finished_imports(postgres: bool) {
    let source = Distribution::start().await;
    let target = Distribution::start().await;
    let app = TestApp::with_registry(postgres, &target, "mirror").await;
    images::push_image(&source, "team/app", "1.0", &[1024]).await;
    let (status, body) =
        app.post("/api/v1/images:import", &json!({ "source": format!("{}/team/app:1.0", source.host()) })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.run_jobs().await, 1);
    let imports = || async { app.store.list_imports(&ImportFilter::default()).await.unwrap().total };
    assert_eq!(imports().await, 1);
    let (_, events) = app.get("/catalog/api/v1/events?limit=1").await;
    let events_before = events["total"].as_i64().unwrap();
    let (_, catalog) = app.get("/catalog/api/v1/images?search=app&status=pending").await;
    assert_eq!(catalog["total"], 1, "the import added its image: {catalog}");

    // Kept for a day: nothing goes.
    let day = RetentionPayload { imports_secs: 86_400, events_secs: 86_400 };
    assert!(app.store.queue_retention(day).await.unwrap());
    assert!(!app.store.queue_retention(day).await.unwrap(), "one retention job at a time");
    assert_eq!(app.run_jobs().await, 1);
    assert_eq!(imports().await, 1);

    // Kept for no time at all (the command line refuses less than an hour; the job takes what it is given).
    let imports_now = RetentionPayload { imports_secs: 0, events_secs: 365 * 86_400 };
    assert!(app.store.queue_retention(imports_now).await.unwrap());
    assert_eq!(app.run_jobs().await, 1);
    assert_eq!(imports().await, 0);
    let (_, events) = app.get("/catalog/api/v1/events?limit=1").await;
    assert_eq!(events["total"].as_i64().unwrap(), events_before, "events are kept for a year");
    let (_, catalog) = app.get("/catalog/api/v1/images?search=app&status=pending").await;
    assert_eq!(catalog["total"], 1, "the catalog is not history: {catalog}");
    let (_, queue) = app.get("/metrics").await;
    assert!(
        !queue.as_str().unwrap().contains("imagegate_queue_jobs{job_type=\"retention\"} 1"),
        "the job left the queue"
    );
}

on_both_backends!(the_retention_job_prunes_finished_imports);
