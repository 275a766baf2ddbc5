#![doc = include_str!("../README.md")]

mod admission;
mod answers;
pub mod auth;
pub mod console;
pub mod error;
pub mod extract;
pub mod limits;
pub mod metrics;
mod middleware;
pub mod openapi;
pub mod profile;
pub mod registry_auth;
mod robots;
mod routes;
pub mod session;
mod signin;
mod users;

pub use routes::{Access, Route};

use std::sync::Arc;

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse};
use image_core::{Reference, copy::ImageCopier, registry::RegistryAdmin, store::Store};

/// What every handler can reach: one shared [`StateInner`], so that handing it to a handler is one reference
/// count (axum clones the state for every extractor that asks for it).
#[derive(Clone)]
pub struct AppState(Arc<StateInner>);

impl std::ops::Deref for AppState {
    type Target = StateInner;

    fn deref(&self) -> &StateInner {
        &self.0
    }
}

/// The fields of [`AppState`].
#[derive(Clone)]
pub struct StateInner {
    pub store: Arc<dyn Store>,
    /// The internal registry imports land in, and the copier that reaches it; imports are refused without.
    pub internal: Option<Arc<InternalRegistry>>,
    /// What talks to registries: verifies credentials and is handed the stored ones.
    pub copier: Option<Arc<dyn ImageCopier>>,
    /// Rung after a job is queued, so that a worker in this process starts it at once.
    pub job_waker: Option<Arc<tokio::sync::Notify>>,
    /// Password checks that passed lately (see [`auth::VerifiedPasswords`]).
    pub(crate) passwords: Arc<auth::VerifiedPasswords>,
    /// Limits on password checks (see [`signin`]).
    pub(crate) sign_in: Arc<signin::SignInGuard>,
    /// How long an issued token works.
    pub(crate) token_ttl: std::time::Duration,
    /// How long a sign-in session lasts without a request.
    pub(crate) session_idle: std::time::Duration,
    /// The station profile's settings (see [`profile::station::StationConfig`]).
    pub(crate) station: Arc<profile::station::StationConfig>,
    /// What reads tags, repositories, image configs and Docker Hub's search for the station profile.
    pub(crate) browser: Option<Arc<dyn image_core::station::RegistryBrowser>>,
    /// Docker Hub searches answered lately.
    pub(crate) hub_cache: Arc<profile::station::HubCache>,
    /// The answers of read routes that depend on their parameters and the store alone (see [`answers`]).
    pub(crate) answers: Arc<image_core::cache::VersionedCache<answers::AnswerKey>>,
    /// This server's node and its container runtime, for `GET /images`; without, only `?node=` answers
    /// runtime images.
    pub local_node: Option<Arc<profile::inventory::LocalNode>>,
    /// With a severity, admission refuses a tag whose scan failed under it (from the internal registry's).
    pub(crate) deny_severity: Option<image_core::registry::Severity>,
    /// The secret Harbor's webhook policy sends in `Authorization` (`--harbor-webhook-secret`); without one,
    /// Harbor's webhooks are refused.
    pub(crate) harbor_webhook_secret: Option<image_core::kube::Secret>,
    /// The secret a Distribution notification endpoint sends in `Authorization` (`--registry-webhook-secret`).
    pub(crate) registry_webhook_secret: Option<image_core::kube::Secret>,
    /// Who may read `/metrics`.
    pub(crate) metrics: metrics::MetricsAccess,
    /// The cap on requests handled at once (see [`limits`]).
    pub(crate) requests: Arc<limits::RequestLimit>,
    /// The admission check's catalog entries (see [`admission`]).
    pub(crate) admission: Arc<admission::AdmissionCache>,
}

/// The registry imports land in, with the copier that talks to it and its adapter ([`RegistryAdmin`]).
#[derive(Clone)]
pub struct InternalRegistry {
    /// `host[:port]`, as in references: `harbor.example.com`, `127.0.0.1:5000`.
    pub host: String,
    /// A path (a Harbor project, say) put in front of every imported repository; empty for none.
    pub prefix: String,
    pub copier: Arc<dyn ImageCopier>,
    /// What imagegate asks of the registry beyond copying: health, statistics, projects, listings, scans.
    pub admin: Arc<dyn RegistryAdmin>,
    /// With a severity, a finished scan that found vulnerabilities at or above it fails, and admission
    /// refuses its tag (`--deny-severity`).
    pub deny_severity: Option<image_core::registry::Severity>,
}

impl std::fmt::Debug for InternalRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalRegistry")
            .field("host", &self.host)
            .field("prefix", &self.prefix)
            .field("kind", &self.admin.kind())
            .finish_non_exhaustive()
    }
}

impl InternalRegistry {
    /// Where an import of `source` lands (see [`image_core::import::internal_target`]).
    pub fn target_for(&self, source: &Reference) -> Result<Reference, image_core::ReferenceError> {
        image_core::import::internal_target(&self.host, &self.prefix, source)
    }

    /// The repository as a client of this registry names it, without the prefix.
    pub fn short_repository<'a>(&self, repository: &'a str) -> &'a str {
        match self.prefix.trim_matches('/') {
            "" => repository,
            prefix => repository.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')).unwrap_or(repository),
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for StateInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateInner").finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(store: Arc<dyn Store>) -> AppState {
        AppState(Arc::new(StateInner {
            store,
            internal: None,
            copier: None,
            job_waker: None,
            passwords: Arc::default(),
            sign_in: Arc::default(),
            token_ttl: auth::DEFAULT_TOKEN_TTL,
            session_idle: session::DEFAULT_SESSION_IDLE,
            station: Arc::default(),
            browser: None,
            hub_cache: Arc::default(),
            answers: Arc::default(),
            local_node: None,
            deny_severity: None,
            harbor_webhook_secret: None,
            registry_webhook_secret: None,
            metrics: metrics::MetricsAccess::default(),
            requests: Arc::default(),
            admission: Arc::default(),
        }))
    }

    /// The fields, for a builder method to set; copied first if a router holds them already.
    fn inner_mut(&mut self) -> &mut StateInner {
        Arc::make_mut(&mut self.0)
    }

    /// Reads tags, repositories, image configs and Docker Hub's search through `browser`.
    pub fn with_registry_browser(mut self, browser: Arc<dyn image_core::station::RegistryBrowser>) -> AppState {
        self.inner_mut().browser = Some(browser);
        self
    }

    /// Ends sign-in sessions after `idle` without a request ([`session::DEFAULT_SESSION_IDLE`] otherwise).
    pub fn with_session_idle(mut self, idle: std::time::Duration) -> AppState {
        self.inner_mut().session_idle = idle;
        self
    }

    /// The station profile's settings.
    pub fn with_station(mut self, station: profile::station::StationConfig) -> AppState {
        self.inner_mut().station = Arc::new(station);
        self
    }

    /// Issues tokens that work for `ttl` ([`auth::DEFAULT_TOKEN_TTL`] otherwise), at most
    /// [`auth::MAX_TOKEN_TTL`].
    pub fn with_token_ttl(mut self, ttl: std::time::Duration) -> AppState {
        self.inner_mut().token_ttl = ttl.min(auth::MAX_TOKEN_TTL);
        self
    }

    /// Imports land in `internal`, and its copier is the one that talks to registries.
    pub fn with_internal_registry(mut self, internal: InternalRegistry) -> AppState {
        self.inner_mut().copier = Some(internal.copier.clone());
        self.inner_mut().deny_severity = internal.deny_severity;
        self.inner_mut().internal = Some(Arc::new(internal));
        self
    }

    /// Accepts Harbor's webhooks that carry `secret` as their `Authorization` header.
    pub fn with_harbor_webhook_secret(mut self, secret: Option<image_core::kube::Secret>) -> AppState {
        self.inner_mut().harbor_webhook_secret = secret.filter(|s| !s.expose().is_empty());
        self
    }

    /// Accepts Distribution's notifications that carry `secret` as their `Authorization` header.
    pub fn with_registry_webhook_secret(mut self, secret: Option<image_core::kube::Secret>) -> AppState {
        self.inner_mut().registry_webhook_secret = secret.filter(|s| !s.expose().is_empty());
        self
    }

    /// Rings `waker` whenever a request queues a job.
    pub fn with_job_waker(mut self, waker: Arc<tokio::sync::Notify>) -> AppState {
        self.inner_mut().job_waker = Some(waker);
        self
    }

    /// Tells this process's workers that a job was queued.
    pub(crate) fn jobs_queued(&self) {
        if let Some(waker) = &self.job_waker {
            // Wakes the runners waiting now, and leaves a permit for one that is busy claiming.
            waker.notify_waiters();
            waker.notify_one();
        }
    }

    /// `GET /images` reads this node's runtime.
    pub fn with_local_node(mut self, node: profile::inventory::LocalNode) -> AppState {
        self.inner_mut().local_node = Some(Arc::new(node));
        self
    }

    /// Who may read `/metrics` ([`metrics::MetricsAccess::Open`] otherwise).
    pub fn with_metrics(mut self, access: metrics::MetricsAccess) -> AppState {
        self.inner_mut().metrics = access;
        self
    }

    /// Handles at most `max` requests at once ([`limits::DEFAULT_MAX_CONCURRENT_REQUESTS`] otherwise),
    /// answering more with 503 and `Retry-After`; gives each request `body_timeout` to send its body
    /// ([`limits::DEFAULT_BODY_TIMEOUT`] otherwise).
    pub fn with_request_limits(mut self, max: usize, body_timeout: std::time::Duration) -> AppState {
        self.inner_mut().requests = Arc::new(limits::RequestLimit::new(max, body_timeout));
        self
    }

    /// Talks to registries through `copier` when there is no internal registry to take it from.
    pub fn with_copier(mut self, copier: Arc<dyn ImageCopier>) -> AppState {
        self.inner_mut().copier = Some(copier);
        self
    }
}

/// Every route of every profile, sign-in and the health probes.
fn all_routes() -> routes::Routes {
    routes::Routes::new("")
        .get("/healthz", routes::Access::Anyone, healthz)
        .get("/readyz", routes::Access::Anyone, readyz)
        .merge(auth::routes())
        .merge(users::routes())
        .merge(robots::routes())
        .merge(profile::catalog::routes())
        .merge(profile::platform::routes())
        .merge(profile::progress::routes())
        .merge(profile::kube::routes())
        .merge(profile::station::routes())
        .merge(profile::inventory::routes())
        .merge(profile::harbor::routes())
        .merge(profile::webhooks::routes())
        .merge(profile::admission_review::routes())
        .merge(metrics::routes())
        .merge(openapi::routes())
        .merge(console::routes())
}

/// The whole HTTP API: every profile, sign-in and the health probes.
pub fn router(state: AppState) -> Router {
    metrics::start_upkeep();
    let (router, table) = all_routes().into_parts();
    router.layer(middleware::Guard::new(state.clone(), &table)).with_state(state)
}

/// The table of what [`router`] serves, in the order it was declared.
pub fn routes() -> Vec<Route> {
    all_routes().into_parts().1
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the database answers and the secret key opens the stored registry passwords; a key that
/// does not is shown here (and fails only what needs those passwords), so a deployment with the wrong key
/// file never becomes ready.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if let Err(err) = state.store.ping().await {
        tracing::warn!(error = %err, "readiness check failed: database unreachable");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "unavailable", "message": "database unreachable" })),
        );
    }
    match state.store.check_secret_key().await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({ "status": "ready" }))),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed: the secret key does not open the stored registry passwords");
            let message = match err.code() {
                image_core::ErrorCode::Unavailable => {
                    "the secret key does not open the stored registry passwords: restore the key file they were \
                     sealed with (--secret-key-file); operations that need them fail until then"
                }
                _ => "the stored registry secrets cannot be read",
            };
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "status": "unavailable", "message": message })))
        }
    }
}
