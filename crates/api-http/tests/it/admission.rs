//! The admission check decides from memory, and a change made through another server shows at once.

use api_http::AppState;
use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode, header},
};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::harness::TestApp;

async fn check(router: &Router, token: &str, image: &str) -> StatusCode {
    let request = Request::post("/catalog/api/v1/admission/check")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({ "image": image }).to_string()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let _ = response.into_body().collect().await.unwrap();
    status
}

fn hits(metrics: &Value, result: &str) -> f64 {
    let series = format!("imagegate_admission_cache_total{{result=\"{result}\"}} ");
    metrics.as_str().unwrap().lines().find_map(|l| l.strip_prefix(&series)).map_or(0.0, |v| v.parse().unwrap())
}

async fn a_catalog_change_on_one_server_reaches_the_others_cache(postgres: bool) {
    let app = if postgres { TestApp::postgres().await } else { TestApp::sqlite().await };
    let token = app.admin_token().unwrap().to_owned();
    // Another server on the same database, with a cache of its own.
    let other = api_http::router(AppState::new(app.store.clone()));

    let (_, before) = app.get("/metrics").await;
    assert_eq!(check(&other, &token, "redis:7-alpine").await, StatusCode::OK);
    assert_eq!(check(&other, &token, "redis:7-alpine").await, StatusCode::OK);
    assert_eq!(check(&other, &token, "redis:9").await, StatusCode::NOT_FOUND);
    let (_, after) = app.get("/metrics").await;
    assert!(hits(&after, "hit") - hits(&before, "hit") >= 2.0, "the second and third checks come from memory");

    // The tag goes, through the first server: the other's next check refuses it.
    let (_, redis) = app.get("/catalog/api/v1/images/1").await;
    let tag = redis["tags"].as_array().unwrap().iter().find(|t| t["tag"] == "7-alpine").unwrap();
    let (status, body) = app.delete(&format!("/catalog/api/v1/images/1/tags/{}", tag["id"])).await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(check(&other, &token, "redis:7-alpine").await, StatusCode::NOT_FOUND);

    // A new tag is allowed at once.
    let (status, body) = app.post("/catalog/api/v1/images/1/tags", &json!({ "tag": "9" })).await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(check(&other, &token, "redis:9").await, StatusCode::OK);

    // The image goes: not approved any more.
    let (status, body) = app.delete("/catalog/api/v1/images/1").await;
    assert!(status.is_success(), "{status} {body}");
    assert_eq!(check(&other, &token, "redis:9").await, StatusCode::FORBIDDEN);
}

on_both_backends!(a_catalog_change_on_one_server_reaches_the_others_cache);
