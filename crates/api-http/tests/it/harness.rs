//! A `TestApp`: the real router over a real database, driven in-process.

use std::sync::Arc;

use api_http::{AppState, auth};
use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode, header},
};
use base64::Engine;
use http_body_util::BodyExt;
use image_core::{
    auth::{NewUser, Role},
    store::Store,
};
use serde_json::Value;
use tower::ServiceExt;

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// The secret every test app accepts on Harbor's webhook.
pub const HARBOR_WEBHOOK_SECRET: &str = "webhook-secret-of-the-tests";
/// The secret every test app accepts on the registry notification webhook.
pub const REGISTRY_WEBHOOK_SECRET: &str = "Bearer registry-notification-secret";

#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct TestApp {
    router: Router,
    pub store: Arc<dyn Store>,
    /// The database's URL, for another store on it (another server's).
    pub url: String,
    admin_token: String,
    _dir: Arc<tempfile::TempDir>,
    /// With an internal registry: the job runner, driven by [`TestApp::run_jobs`].
    runner: Option<Arc<sync_worker::Runner<sync_worker::WorkerContext>>>,
}

impl TestApp {
    pub async fn sqlite() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("imagegate.db").display());
        TestApp::start(&url, dir).await
    }

    pub async fn postgres() -> TestApp {
        let url = test_support::postgres_url().await;
        TestApp::start(&url, tempfile::tempdir().unwrap()).await
    }

    /// On SQLite or PostgreSQL (`IMAGEGATE_TEST_BACKEND`-free: the caller picks), with `target` as the
    /// internal registry under `prefix`.
    pub async fn with_registry(postgres: bool, target: &test_support::Distribution, prefix: &str) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let url = if postgres {
            test_support::postgres_url().await
        } else {
            format!("sqlite://{}", dir.path().join("imagegate.db").display())
        };
        let mut config = registry_client::ClientConfig::default();
        if let Some((user, password)) = target.credentials() {
            config.credentials.insert(target.host(), registry_client::Credential::new(user, password));
        }
        let client = Arc::new(registry_client::RegistryClient::new(config).unwrap());
        let copier = Arc::new(registry_client::CopyEngine::new(client.clone(), registry_client::CopyConfig::default()));
        let admin = Arc::new(registry_client::DistributionAdmin::new(client, target.host()));
        let internal = api_http::InternalRegistry {
            host: target.host(),
            prefix: prefix.into(),
            copier,
            admin,
            deny_severity: None,
        };
        TestApp::start_with(&url, dir, Some(internal), None).await
    }

    /// On SQLite or PostgreSQL, with the stand-in `harbor` as the internal registry under `prefix`, reached
    /// as its administrator through the Harbor adapter.
    pub async fn with_harbor(postgres: bool, harbor: &test_support::harbor::Harbor, prefix: &str) -> TestApp {
        TestApp::with_harbor_denying(postgres, harbor, prefix, None).await
    }

    /// [`TestApp::with_harbor`] with `--deny-severity`.
    pub async fn with_harbor_denying(
        postgres: bool,
        harbor: &test_support::harbor::Harbor,
        prefix: &str,
        deny_severity: Option<image_core::registry::Severity>,
    ) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let url = if postgres {
            test_support::postgres_url().await
        } else {
            format!("sqlite://{}", dir.path().join("imagegate.db").display())
        };
        let mut config = registry_client::ClientConfig::default();
        let (user, password) = test_support::harbor::ADMIN;
        config.credentials.insert(harbor.host(), registry_client::Credential::new(user, password));
        let client = Arc::new(registry_client::RegistryClient::new(config).unwrap());
        let engine = Arc::new(registry_client::CopyEngine::new(client.clone(), registry_client::CopyConfig::default()));
        let options = registry_client::HarborOptions::default();
        let admin: Arc<dyn image_core::registry::RegistryAdmin> =
            Arc::new(registry_client::HarborAdmin::new(client.clone(), harbor.host(), options));
        let copier = Arc::new(registry_client::InternalCopier::new(engine, client, admin.clone(), harbor.host()));
        let internal =
            api_http::InternalRegistry { host: harbor.host(), prefix: prefix.into(), copier, admin, deny_severity };
        TestApp::start_with(&url, dir, Some(internal), None).await
    }

    /// [`TestApp::with_registry`] with the station profile's settings.
    pub async fn with_station(
        postgres: bool,
        target: &test_support::Distribution,
        station: api_http::profile::station::StationConfig,
    ) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let url = if postgres {
            test_support::postgres_url().await
        } else {
            format!("sqlite://{}", dir.path().join("imagegate.db").display())
        };
        let client = Arc::new(registry_client::RegistryClient::new(registry_client::ClientConfig::default()).unwrap());
        let copier = Arc::new(registry_client::CopyEngine::new(client.clone(), registry_client::CopyConfig::default()));
        let browser: Arc<dyn image_core::station::RegistryBrowser> = copier.clone();
        let admin = Arc::new(registry_client::DistributionAdmin::new(client, target.host()));
        let internal = api_http::InternalRegistry {
            host: target.host(),
            prefix: String::new(),
            copier,
            admin,
            deny_severity: None,
        };
        TestApp::start_with(&url, dir, Some(internal), Some((station, browser))).await
    }

    async fn start(url: &str, dir: tempfile::TempDir) -> TestApp {
        TestApp::start_with(url, dir, None, None).await
    }

    async fn start_with(
        url: &str,
        dir: tempfile::TempDir,
        internal: Option<api_http::InternalRegistry>,
        station: Option<(api_http::profile::station::StationConfig, Arc<dyn image_core::station::RegistryBrowser>)>,
    ) -> TestApp {
        let options = store::StoreOptions { secret_key: Some(store::SecretKey::generate()) };
        let store: Arc<dyn Store> = Arc::new(store::DbStore::connect_with(url, options).await.unwrap());
        auth::ensure_admin(store.as_ref(), Some(ADMIN_PASSWORD.into())).await.unwrap();
        let mut state = AppState::new(store.clone())
            .with_harbor_webhook_secret(Some(image_core::kube::Secret::new(HARBOR_WEBHOOK_SECRET)))
            .with_registry_webhook_secret(Some(image_core::kube::Secret::new(REGISTRY_WEBHOOK_SECRET)));
        if let Some((station, browser)) = station {
            state = state.with_station(station).with_registry_browser(browser);
        }
        let mut runner = None;
        if let Some(internal) = internal {
            let ctx = sync_worker::WorkerContext {
                imports: store.clone(),
                kube: store.clone(),
                copier: internal.copier.clone(),
                progress_interval: std::time::Duration::from_millis(50),
                target_host: internal.host.clone(),
                target_prefix: internal.prefix.clone(),
                inventory: None,
                scans: Some(Arc::new(sync_worker::ScanSettings {
                    store: store.clone(),
                    admin: internal.admin.clone(),
                    deny: internal.deny_severity,
                })),
                ops: store.clone(),
            };
            let config = sync_worker::RunnerConfig { worker_id: "test-worker".into(), ..Default::default() };
            runner = Some(Arc::new(
                sync_worker::Runner::new(store.clone(), ctx, config)
                    .register::<sync_worker::ImportHandler>()
                    .register::<sync_worker::SyncHandler>()
                    .register::<sync_worker::ScanHandler>()
                    .register::<sync_worker::RetentionHandler>(),
            ));
            state = state.with_internal_registry(internal);
        }
        let router = api_http::router(state);
        let mut app =
            TestApp { router, store, url: url.to_owned(), admin_token: String::new(), _dir: Arc::new(dir), runner };
        let body = serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}).to_string();
        let (status, response) = app.send("POST", "/api/v1/auth/token", Some(body), None).await;
        assert_eq!(status, StatusCode::OK, "{response}");
        app.admin_token = response["token"].as_str().unwrap().to_owned();
        app
    }

    /// Runs due jobs (imports and syncs) until none is left; returns how many ran.
    pub async fn run_jobs(&self) -> usize {
        let runner = self.runner.as_ref().expect("an app with an internal registry");
        let mut ran = 0;
        loop {
            if !runner.run_once().await.unwrap() {
                return ran;
            }
            ran += 1;
            assert!(ran < 100, "jobs keep coming");
        }
    }

    /// Queues the repository syncs that are due now, as the scheduler does; returns how many.
    pub async fn schedule_syncs(&self) -> usize {
        self.store.enqueue_due_syncs(time::OffsetDateTime::now_utc()).await.unwrap()
    }

    /// Every kube-style resource a client can read, as text, to show that a request changed nothing.
    pub async fn snapshot_kube(&self) -> String {
        let base = "/oapis/image.theriseunion.io/v1alpha1/namespaces/_all_";
        let (_, secrets) = self.get(&format!("{base}/registry-secrets?limit=500")).await;
        let (_, repositories) = self.get(&format!("{base}/repositories?limit=500")).await;
        format!("{secrets}\n{repositories}")
    }

    pub fn admin_token(&self) -> Option<&str> {
        Some(&self.admin_token)
    }

    pub fn admin_basic(&self) -> String {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("admin:{ADMIN_PASSWORD}")))
    }

    /// A token of a new user with the `user` role.
    pub async fn user_token(&self, name: &str) -> String {
        let password_hash = auth::hash_password("user-password".into()).await.unwrap();
        let user = NewUser { username: name.into(), password_hash, role: Role::User };
        let user = self.store.create_user(user, "admin").await.unwrap();
        let (token, hash) = auth::new_token();
        self.store.create_token(user.id, &hash, "test", None).await.unwrap();
        token
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = match body {
            Some(body) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(body)),
            None => req.body(Body::empty()),
        };
        self.call(req.unwrap()).await
    }

    /// A request with a body but no content type.
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        body: &str,
        content_type: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.admin_token));
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        self.call(req.body(Body::from(body.to_owned())).unwrap()).await
    }

    pub async fn get_with_header(&self, path: &str, authorization: &str) -> (StatusCode, Value) {
        self.send_with_header("GET", path, None, authorization).await
    }

    /// A request with this `Authorization` header, and a JSON body when given.
    pub async fn send_with_header(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        authorization: &str,
    ) -> (StatusCode, Value) {
        let req = Request::builder().method(method).uri(path).header(header::AUTHORIZATION, authorization);
        let req = match body {
            Some(body) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())),
            None => req.body(Body::empty()),
        };
        self.call(req.unwrap()).await
    }

    /// Any request; the answer as the router gives it.
    pub async fn respond(&self, req: Request<Body>) -> axum::response::Response {
        self.router.clone().oneshot(req).await.unwrap()
    }

    /// Any request; the answer's status, headers and JSON body (`Null` when empty).
    pub async fn call_full(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (parts.status, parts.headers, value)
    }

    /// Any request; the answer's status, headers and body as text (for pages).
    pub async fn call_text(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (parts.status, parts.headers, String::from_utf8(bytes.to_vec()).expect("UTF-8 text"))
    }

    async fn call(&self, req: Request<Body>) -> (StatusCode, Value) {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        // `/metrics` and the console's pages, style and script.
        let text = response.headers().get(header::CONTENT_TYPE).is_some_and(|t| t.as_bytes().starts_with(b"text/"));
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else if text {
            // Text (Prometheus's format, HTML), as a JSON string.
            Value::String(String::from_utf8(bytes.to_vec()).expect("UTF-8 text"))
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send("GET", path, None, self.admin_token()).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send("POST", path, Some(body.to_string()), self.admin_token()).await
    }

    pub async fn post_as(&self, token: &str, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send("POST", path, Some(body.to_string()), Some(token)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send("PUT", path, Some(body.to_string()), self.admin_token()).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send("DELETE", path, None, self.admin_token()).await
    }

    pub async fn recommended_tags(&self, image_id: i64) -> Vec<String> {
        let (_, body) = self.get(&format!("/catalog/api/v1/images/{image_id}")).await;
        body["tags"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["is_recommended"] == true)
            .map(|t| t["tag"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Everything a client can read of the catalog, to show that a request changed nothing.
    pub async fn snapshot_state(&self) -> Value {
        let (_, images) = self.get("/catalog/api/v1/images?limit=1000").await;
        let mut details = Vec::new();
        for image in images["images"].as_array().unwrap() {
            details.push(self.get(&format!("/catalog/api/v1/images/{}", image["id"])).await.1);
        }
        let (_, events) = self.get("/catalog/api/v1/events?limit=1").await;
        let (_, requests) = self.get("/catalog/api/v1/approval-requests").await;
        serde_json::json!({ "images": details, "events": events["total"], "requests": requests })
    }
}

/// Replaces timestamps, which differ on every run, with a marker.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let is_time = k.ends_with("_at") && v.is_string();
                    (k.clone(), if is_time { Value::String("[timestamp]".into()) } else { redact(v) })
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        // A test registry's port, as it appears in internal repository paths (`127.0.0.1_38209/team/app`).
        Value::String(text) => Value::String(redact_ports(text)),
        other => other.clone(),
    }
}

fn redact_ports(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("127.0.0.1_") {
        let (before, after) = rest.split_at(at + "127.0.0.1_".len());
        out.push_str(before);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        out.push_str(if digits > 0 { "[port]" } else { "" });
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}
