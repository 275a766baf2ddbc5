//! `/metrics`: the numbers move as an import runs, and the endpoint can require a token or be off.

use std::{collections::BTreeMap, sync::Arc};

use api_http::{AppState, metrics::MetricsAccess};
use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use http_body_util::BodyExt as _;
use serde_json::json;
use test_support::{Distribution, images};
use tower::ServiceExt as _;

use crate::harness::TestApp;

/// Series (`name{labels}`, as printed) to values; comment lines skipped.
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
            (series.to_owned(), value.parse().unwrap_or_else(|_| panic!("not a number: {line}")))
        })
        .collect()
}

async fn scrape(app: &TestApp) -> BTreeMap<String, f64> {
    let (status, body) = app.send("GET", "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    parse(body.as_str().expect("text"))
}

/// The value of the one series of `name` whose labels include every `label="value"` in `labels`.
fn value(metrics: &BTreeMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    let found: Vec<_> = metrics
        .iter()
        .filter(|(series, _)| {
            let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
            series_name == name && labels.iter().all(|label| rest.contains(label))
        })
        .collect();
    match found.as_slice() {
        [] => 0.0,
        [(_, v)] => **v,
        more => panic!("several series of {name} {labels:?}: {more:?}"),
    }
}

async fn the_numbers_move_as_an_import_runs(postgres: bool) {
    let source = Distribution::start().await;
    let target = Distribution::start().await;
    let app = TestApp::with_registry(postgres, &target, "mirror").await;
    images::push_image(&source, "team/app", "1.0", &[20_000, 40_000]).await;
    let source_host = source.host();
    let source_label = format!("registry=\"{source_host}\"");
    let before = scrape(&app).await;
    assert_eq!(value(&before, "imagegate_imports", &["state=\"queued\""]), 0.0);
    assert!(value(&before, "imagegate_db_pool_connections", &["state=\"max\""]) >= 1.0, "{before:?}");

    let (status, body) =
        app.post("/api/v1/images:import", &json!({ "source": format!("{source_host}/team/app:1.0") })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let queued = scrape(&app).await;
    assert_eq!(value(&queued, "imagegate_imports", &["state=\"queued\""]), 1.0);
    assert_eq!(value(&queued, "imagegate_queue_jobs", &["job_type=\"import\""]), 1.0);
    assert_eq!(value(&queued, "imagegate_queue_due_jobs", &["job_type=\"import\""]), 1.0);
    let route = ["route=\"/api/v1/images:import\"", "method=\"POST\"", "status=\"200\""];
    // The recorder is the process's: other tests here import too, so series without this test's registries
    // in their labels can only be seen to move by at least this test's part.
    assert!(
        value(&queued, "imagegate_http_requests_total", &route)
            - value(&before, "imagegate_http_requests_total", &route)
            >= 1.0
    );
    // The import's check of the source is one manifest HEAD.
    assert!(value(&queued, "imagegate_registry_requests_total", &[&source_label, "status=\"200\""]) >= 1.0);
    let latency = ["route=\"/api/v1/images:import\""];
    assert!(value(&queued, "imagegate_http_request_duration_seconds_count", &latency) >= 1.0, "{queued:?}");

    assert_eq!(app.run_jobs().await, 1);
    let after = scrape(&app).await;
    let delta = |name: &str, labels: &[&str]| value(&after, name, labels) - value(&before, name, labels);
    assert_eq!(value(&after, "imagegate_imports", &["state=\"queued\""]), 0.0);
    assert_eq!(value(&after, "imagegate_imports", &["state=\"succeeded\""]), 1.0);
    assert_eq!(value(&after, "imagegate_queue_jobs", &["job_type=\"import\""]), 0.0);
    assert_eq!(value(&after, "imagegate_queue_oldest_due_age_seconds", &["job_type=\"import\""]), 0.0);
    assert!(delta("imagegate_jobs_finished_total", &["job_type=\"import\"", "outcome=\"succeeded\""]) >= 1.0);
    // Two layers and a config blob, none at the target before.
    assert!(delta("imagegate_copy_blobs_total", &["via=\"copied\""]) >= 3.0, "{after:?}");
    assert!(delta("imagegate_copy_bytes_total", &[]) >= 60_000.0, "{after:?}");
    assert!(delta("imagegate_copy_throughput_bytes_per_second_count", &[]) >= 1.0, "{after:?}");
    let target_label = format!("registry=\"{}\"", target.host());
    assert!(delta("imagegate_registry_requests_total", &[&target_label, "status=\"201\""]) >= 3.0, "{after:?}");

    // Again: the target has every blob now.
    let (status, _) = app.delete(&format!("/api/v1/images/{}", body["alreadyImageId"])).await;
    assert!(status.is_success(), "{status}");
    let (status, body) =
        app.post("/api/v1/images:import", &json!({ "source": format!("{source_host}/team/app:1.0") })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.run_jobs().await;
    let again = scrape(&app).await;
    let skipped_or_mounted = value(&again, "imagegate_copy_blobs_total", &["via=\"skipped\""])
        + value(&again, "imagegate_copy_blobs_total", &["via=\"mounted\""])
        - value(&after, "imagegate_copy_blobs_total", &["via=\"skipped\""])
        - value(&after, "imagegate_copy_blobs_total", &["via=\"mounted\""]);
    assert!(skipped_or_mounted >= 3.0, "{again:?}");
}

on_both_backends!(the_numbers_move_as_an_import_runs);

async fn get(router: &axum::Router, authorization: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::builder().uri("/metrics");
    if let Some(authorization) = authorization {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    let response = router.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_token_guards_the_metrics_and_off_turns_them_off() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("imagegate.db").display());
    let store: Arc<dyn image_core::store::Store> = Arc::new(store::DbStore::connect(&url).await.unwrap());

    let guarded = api_http::router(AppState::new(store.clone()).with_metrics(MetricsAccess::Token("s3cret".into())));
    for wrong in [None, Some("Bearer s3cre"), Some("Bearer s3cret2"), Some("Basic s3cret"), Some("s3cret")] {
        let (status, body) = get(&guarded, wrong).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong:?}: {body}");
        assert!(body.contains("metrics token"), "{body}");
    }
    let (status, body) = get(&guarded, Some("Bearer s3cret")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("imagegate_db_pool_connections{state=\"max\"}"), "{body}");

    let off = api_http::router(AppState::new(store.clone()).with_metrics(MetricsAccess::Off));
    let (status, body) = get(&off, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let open = api_http::router(AppState::new(store));
    let (status, body) = get(&open, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("# TYPE imagegate_http_requests_total counter"), "{body}");
}
