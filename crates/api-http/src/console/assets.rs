//! The console's style sheet and script, embedded in the binary.

use axum::{
    http::{HeaderValue, header},
    response::IntoResponse,
};

const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
        ],
        body,
    )
}

/// `GET /console/assets/console.css`.
pub(super) async fn css() -> impl IntoResponse {
    asset("text/css; charset=utf-8", CSS)
}

/// `GET /console/assets/console.js`.
pub(super) async fn js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", JS)
}
