//! Body limits per route, the body timeout, and the cap on requests at once with its 503.

use std::{sync::Arc, time::Duration};

use api_http::{AppState, limits};
use axum::{
    Router,
    body::{Body, Bytes},
    http::{Request, StatusCode, header},
};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

async fn router(max: usize, body_timeout: Duration) -> (Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("imagegate.db").display());
    let store: Arc<dyn image_core::store::Store> = Arc::new(store::DbStore::connect(&url).await.unwrap());
    (api_http::router(AppState::new(store).with_request_limits(max, body_timeout)), dir)
}

async fn call(router: &Router, request: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response.headers().get(header::RETRY_AFTER).map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, retry_after, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn post(path: &str, body: Body, length: Option<usize>) -> Request<Body> {
    let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(length) = length {
        request = request.header(header::CONTENT_LENGTH, length);
    }
    request.body(body).unwrap()
}

/// A body whose bytes the test sends when it likes, and that never ends until the sender is dropped.
fn trickle() -> (tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>, Body) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    (tx, Body::from_stream(tokio_stream(rx)))
}

fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A JSON document of `len` bytes: a string field padded out.
fn json_of(len: usize) -> String {
    format!("{{\"username\":\"{}\"}}", "a".repeat(len - 15))
}

#[tokio::test]
async fn bodies_beyond_the_route_limit_get_a_413() {
    let (app, _dir) = router(16, Duration::from_secs(10)).await;
    let big = json_of(limits::JSON_BODY_LIMIT + 1);
    assert_eq!(big.len(), limits::JSON_BODY_LIMIT + 1);
    // Declared too long: refused before it is read, in the route's profile's format.
    let (status, _, body) = call(&app, post("/api/v1/auth/token", Body::from(big.clone()), Some(big.len()))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body["message"].as_str().unwrap().contains(&limits::JSON_BODY_LIMIT.to_string()), "{body}");
    // A refusal carries the headers every answer does.
    let refused =
        app.clone().oneshot(post("/api/v1/auth/token", Body::from(big.clone()), Some(big.len()))).await.unwrap();
    assert_eq!(refused.headers().get(header::X_CONTENT_TYPE_OPTIONS).map(|v| v.as_bytes()), Some(&b"nosniff"[..]));
    // Streamed without a length: refused once it passes the limit.
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        big.as_bytes().chunks(4096).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let streamed = Body::from_stream(futures::stream::iter(chunks));
    let (status, _, body) = call(&app, post("/api/v1/auth/token", streamed, None)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body["message"].is_string(), "{body}");
    // At the limit it is read (and the sign-in fails on its merits).
    let fits = json_of(limits::JSON_BODY_LIMIT);
    let (status, _, body) = call(&app, post("/api/v1/auth/token", Body::from(fits), None)).await;
    assert!(status.is_client_error() && status != StatusCode::PAYLOAD_TOO_LARGE, "{status} {body}");

    // A registry secret may carry a CA bundle of 1 MiB: its route takes more, and answers in the kube format.
    let secrets = "/oapis/image.theriseunion.io/v1alpha1/namespaces/team/registry-secrets";
    let (status, _, body) = call(&app, post(secrets, Body::from(json_of(1024 * 1024)), None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "read, then refused for want of a sign-in: {body}");
    let huge = json_of(4 * 1024 * 1024);
    let (status, _, body) = call(&app, post(secrets, Body::from(huge.clone()), Some(huge.len()))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!((body["kind"].as_str(), body["code"].as_i64()), (Some("Status"), Some(413)), "{body}");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_refused() {
    let (app, _dir) = router(16, Duration::from_millis(300)).await;
    let (tx, body) = trickle();
    tx.send(Ok(Bytes::from_static(b"{\"username\":"))).await.unwrap();
    let started = std::time::Instant::now();
    let (status, _, answer) = call(&app, post("/api/v1/auth/token", body, None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("took longer than 0.3 s"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    drop(tx);
}

#[tokio::test]
async fn beyond_the_cap_requests_get_a_503_with_retry_after() {
    let (app, _dir) = router(2, Duration::from_secs(30)).await;
    // Two sign-ins whose bodies have not arrived hold the two slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        let (tx, body) = trickle();
        let app = app.clone();
        held.push((tx, tokio::spawn(async move { call(&app, post("/api/v1/auth/token", body, None)).await })));
    }
    // Until both are inside, a request may still get in; wait until one is refused.
    let mut refused = None;
    for _ in 0..200 {
        let (status, retry_after, body) =
            call(&app, Request::get("/catalog/api/v1/categories").body(Body::empty()).unwrap()).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            refused = Some((retry_after, body));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (retry_after, body) = refused.expect("a third request at once is refused");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert!(body["message"].as_str().unwrap().contains("2 requests"), "{body}");
    // The probes and the metrics still answer.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    // Once the held requests end, their slots serve others.
    for (tx, task) in held {
        tx.send(Ok(Bytes::from_static(b"{\"username\":\"x\",\"password\":\"y\"}"))).await.unwrap();
        drop(tx);
        let (status, _, _) = task.await.unwrap();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _, body) = call(&app, Request::get("/catalog/api/v1/categories").body(Body::empty()).unwrap()).await;
    assert_ne!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}
