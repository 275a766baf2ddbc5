//! The station profile (seed 003): Container Station's sign-in, image and registry API under `/api/v1`.
//!
//! Errors are `{"error": {"code": <int>, "message": "…"}}`, the code being the HTTP status. Request
//! bodies are read as JSON whatever their `Content-Type` says (the seed's clients send JSON with curl's
//! form type), except login's, which may also be form fields.

mod browse;
mod image;
mod login;
mod registry;

use axum::{
    Json,
    extract::{FromRequest, Request},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;

use crate::{
    auth,
    error::{self, ApiError, ErrorFormat, ProfileError},
    extract,
    routes::{Access, Routes},
};

/// The station profile's settings.
#[derive(Debug, Clone)]
pub struct StationConfig {
    /// The namespace whose registry secrets are the station's registries (`--station-namespace`).
    pub namespace: String,
    /// `host[:port]` of a registry that mirrors Docker Hub (`--docker-hub-mirror`), read instead of it.
    pub docker_hub_mirror: Option<String>,
    /// Docker Hub's repository search (`--docker-hub-url`), answered as its `/v1/search` is.
    pub docker_hub_url: String,
}

impl Default for StationConfig {
    fn default() -> Self {
        StationConfig {
            namespace: StationConfig::DEFAULT_NAMESPACE.into(),
            docker_hub_mirror: None,
            docker_hub_url: StationConfig::DEFAULT_DOCKER_HUB_URL.into(),
        }
    }
}

impl StationConfig {
    pub const DEFAULT_NAMESPACE: &str = "station";
    pub const DEFAULT_DOCKER_HUB_URL: &str = "https://index.docker.io/v1/search";
}

/// `{"error": {"code": status, "message": …}}`, as the station API answers errors.
#[derive(Debug)]
pub enum Station {}

impl ErrorFormat for Station {
    fn render(err: &ApiError) -> Response {
        let status = err.status();
        let body = serde_json::json!({ "error": { "code": status.as_u16(), "message": err.message } });
        let mut response = (status, Json(body)).into_response();
        error::common_headers(err, &mut response);
        response
    }
}

pub(crate) use browse::BrowseQuery;
pub use browse::HubCache;
pub(crate) use image::{DownloadBody, DownloadQuery, SearchQuery};
pub(crate) use login::Credentials;
pub(crate) use registry::{PingBody, PingQuery, RegistryBody};

type ApiResult<T> = Result<T, ProfileError<Station>>;
type User = auth::Authenticated<Station>;
type AdminUser = auth::Admin<Station>;
type Query<T> = extract::Query<T, Station>;

/// A JSON body, whatever the `Content-Type` says; an empty body is `T::default()`.
#[derive(Debug)]
struct Body<T>(T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ProfileError<Station>;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "Invalid request", e.body_text()))?;
        parse_json(&bytes).map(Body).map_err(|e| ApiError::bad_request(e).into())
    }
}

/// The body as JSON (an empty one is `T::default()`), or why not.
fn parse_json<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    if extract::json_has_nul(bytes) {
        return Err(extract::NUL_IN_BODY.to_owned());
    }
    serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON body: {e}"))
}

/// Whether `path` is one of the station profile's, whose errors are in its own format.
pub(crate) fn owns(path: &str) -> bool {
    matches!(path, "/api/v1/login" | "/api/v1/login_refresh" | "/api/v1/logout" | "/api/v1/registry")
        || path.starts_with("/api/v1/registry/")
        || path.starts_with("/api/v1/image/")
}

/// What a user may download; the rest is refused with 403 and files an approval request.
const APPROVED_ONLY: &str = "images and tags the catalog approves";

/// Who may change the station's registries, and ping one: admins (a ping reaches any address given).
pub(crate) fn routes() -> Routes {
    Routes::new("/api/v1")
        .post("/login", Access::Anyone, login::login)
        .get("/login_refresh", Access::SignedIn, login::login_refresh)
        .put("/logout", Access::SignedIn, login::logout)
        .get("/registry", Access::SignedIn, registry::list)
        .post("/registry", Access::Admin, registry::add_or_edit)
        .delete("/registry/{name}", Access::Admin, registry::delete)
        .get("/registry/ping", Access::Admin, registry::ping_get)
        .post("/registry/ping", Access::Admin, registry::ping_post)
        .get("/image/", Access::SignedIn, image::search)
        .get("/image/downloadstatus", Access::SignedIn, image::download_status)
        .get("/image/{*path}", Access::SignedIn, browse::get)
        .post("/image/{*path}", Access::Limited(APPROVED_ONLY), image::download)
        .delete("/image/{*path}", Access::Admin, image::delete_local)
}

#[cfg(test)]
mod owns_tests {
    /// The limits answer in this profile's format exactly on its routes.
    #[test]
    fn owns_exactly_the_station_routes() {
        let station: Vec<_> = super::routes().into_parts().1;
        for route in crate::routes() {
            let path = route.fill(|_| "x:1/tags".into());
            assert_eq!(super::owns(&path), station.contains(&route), "{} {}", route.method, route.path);
        }
    }
}
