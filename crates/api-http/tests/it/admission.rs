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

use image_core::store::CatalogStore as _;

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

/// Another process (a second store on the database, as another server has) changes the catalog: this
/// server's kept answers (the admission check, the listing, the image) show it at once on SQLite, and within
/// the notification's few milliseconds on PostgreSQL.
async fn a_change_by_another_process_reaches_this_servers_answers(postgres: bool) {
    let app = if postgres { TestApp::postgres().await } else { TestApp::sqlite().await };
    let token = app.admin_token().unwrap().to_owned();
    let router = api_http::router(AppState::new(app.store.clone()));
    let elsewhere = store::DbStore::connect(&app.url).await.unwrap();
    let listed = |app: &TestApp| {
        let app = app.clone();
        async move {
            let (status, list) = app.get("/catalog/api/v1/images?limit=100").await;
            assert_eq!(status, StatusCode::OK, "{list}");
            let (_, image) = app.get("/catalog/api/v1/images/1").await;
            (list["total"].as_i64().unwrap(), image["tags"].as_array().unwrap().len())
        }
    };
    let before = listed(&app).await;
    for _ in 0..2 {
        assert_eq!(listed(&app).await, before);
        assert_eq!(check(&router, &token, "redis:7-alpine").await, StatusCode::OK);
    }
    let tags = elsewhere.list_tags(image_core::catalog::ImageId::new(1)).await.unwrap();
    let tag = tags.iter().find(|t| t.tag == "7-alpine").unwrap();
    elsewhere.delete_tag(image_core::catalog::ImageId::new(1), tag.id, "elsewhere").await.unwrap();
    let image = image_core::catalog::NewImage::new(
        "cache-probe",
        None,
        None,
        None,
        None,
        false,
        image_core::catalog::ApprovalStatus::Approved,
    )
    .unwrap();
    elsewhere.create_image(image, "elsewhere").await.unwrap();
    let mut seen = false;
    for _ in 0..300 {
        if listed(&app).await == (before.0 + 1, before.1 - 1)
            && check(&router, &token, "redis:7-alpine").await == StatusCode::NOT_FOUND
        {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(seen, "the other process's changes never showed");
}

on_both_backends!(
    a_catalog_change_on_one_server_reaches_the_others_cache,
    a_change_by_another_process_reaches_this_servers_answers
);
