//! Robot accounts: created, listed and deleted through the API, and signed in to the built-in registry
//! (Basic and `/v2/token`), where they get exactly their repositories and actions.

use std::sync::Arc;

use api_http::{AppState, auth};
use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode, header},
};
use base64::Engine as _;
use http_body_util::BodyExt as _;
use image_core::{
    event::EventFilter,
    robot::RobotStore,
    store::{CatalogStore, Store},
};
use serde_json::{Value, json};
use sha2::Digest as _;
use tower::ServiceExt as _;

const ADMIN_PASSWORD: &str = "admin-password-for-robots";

struct App {
    api: Router,
    registry: Router,
    store: Arc<store::DbStore>,
    admin: String,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["errors"][0]["code"].as_str().unwrap_or("")
    }
}

async fn call(router: &Router, method: &str, path: &str, auth: Option<&str>, body: Body) -> Answer {
    let mut request = Request::builder().method(method).uri(path).header(header::HOST, "registry.test");
    if let Some(auth) = auth {
        request = request.header(header::AUTHORIZATION, auth);
    }
    let response = router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

impl App {
    async fn start(postgres: bool) -> App {
        let dir = tempfile::tempdir().unwrap();
        let url = if postgres {
            test_support::postgres_url().await
        } else {
            format!("sqlite://{}", dir.path().join("imagegate.db").display())
        };
        let store = Arc::new(store::DbStore::connect(&url).await.unwrap());
        let shared: Arc<dyn Store> = store.clone();
        auth::ensure_admin(shared.as_ref(), Some(ADMIN_PASSWORD.into())).await.unwrap();
        let state = AppState::new(shared);
        let config = oci_registry::RegistryConfig {
            root: dir.path().join("registry"),
            signer: oci_registry::TokenSigner::derive(b"robot test secret"),
            anonymous_pull: false,
            internal_credential: None,
            public_url: None,
            gate_mode: oci_registry::GateMode::Off,
            gate: None,
        };
        let authenticator = api_http::registry_auth::registry_authenticator(&state);
        let registry = Arc::new(oci_registry::Registry::open(store.clone(), authenticator, config).unwrap());
        let api = api_http::router(state);
        let admin = basic("admin", ADMIN_PASSWORD);
        App { api, registry: oci_registry::router(registry), store, admin, _dir: dir }
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, &self.admin)
            .header(header::CONTENT_TYPE, "application/json");
        request = request.header(header::HOST, "imagegate.test");
        let response = self.api.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Answer { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    /// Creates a robot; its secret.
    async fn robot(&self, body: Value) -> String {
        let answer = self.api("POST", "/api/v1/robots", Some(body)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
        answer.body["secret"].as_str().unwrap().to_owned()
    }

    /// Pushes a config, a layer and a manifest tagged `tag` to `repo` as `auth`; the manifest push's answer,
    /// or the first refused step's.
    async fn push(&self, repo: &str, tag: &str, auth: &str) -> Answer {
        let layer = format!("layer of {repo}:{tag}").into_bytes();
        let config = format!("{{\"config\":\"{repo}\"}}").into_bytes();
        for blob in [&config, &layer] {
            let path = format!("/v2/{repo}/blobs/uploads/?digest={}", sha(blob));
            let answer = call(&self.registry, "POST", &path, Some(auth), Body::from(blob.clone())).await;
            if answer.status != StatusCode::CREATED {
                return answer;
            }
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(&config), "size": config.len() },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(&layer), "size": layer.len() }],
        });
        let request = Request::put(format!("/v2/{repo}/manifests/{tag}"))
            .header(header::HOST, "registry.test")
            .header(header::AUTHORIZATION, auth)
            .header(header::CONTENT_TYPE, "application/vnd.oci.image.manifest.v1+json")
            .body(Body::from(manifest.to_string()))
            .unwrap();
        let response = self.registry.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Answer { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    /// A registry token for `scope`, asked for with `auth`.
    async fn token(&self, auth: &str, scope: &str) -> (String, Value) {
        let answer = call(
            &self.registry,
            "GET",
            &format!("/v2/token?service=imagegate&scope={scope}"),
            Some(auth),
            Body::empty(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let token = answer.body["token"].as_str().unwrap().to_owned();
        let payload = token.split('.').next().unwrap();
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
        (format!("Bearer {token}"), serde_json::from_slice(&claims).unwrap())
    }
}

async fn robots_are_created_listed_and_deleted_by_admins(postgres: bool) {
    let app = App::start(postgres).await;
    let created = app
        .api(
            "POST",
            "/api/v1/robots",
            Some(json!({ "name": "ci", "repositories": ["team/*", "shared/base"], "actions": ["push", "pull"], "expiresIn": "720h" })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let secret = created.body["secret"].as_str().unwrap();
    assert!(secret.starts_with("igr_") && secret.len() > 40, "{secret}");
    assert_eq!(created.body["username"], "robot$ci");
    assert_eq!(created.body["repositories"], json!(["team/*", "shared/base"]));
    assert_eq!(created.body["actions"], json!(["pull", "push"]));
    assert_eq!(created.body["createdBy"], "admin");
    assert_eq!(created.body["expired"], false);
    assert!(created.body["expiresAt"].is_string());

    // The secret is stored only hashed: neither the listing nor the store's row has it.
    let listed = app.api("GET", "/api/v1/robots", None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["robots"].as_array().unwrap().len(), 1);
    assert!(listed.body["robots"][0].get("secret").is_none());
    assert!(!listed.body.to_string().contains(secret));
    let (_, hash) = app.store.find_robot("ci").await.unwrap().unwrap();
    assert_ne!(hash, secret);
    assert_eq!(hash, hex::encode(sha2::Sha256::digest(secret.as_bytes())));

    // Bad input is a 400 that names the field, and changes nothing.
    let bad = [
        (json!({ "name": "CI", "repositories": ["a"], "actions": ["pull"] }), "name"),
        (json!({ "name": "x", "repositories": [], "actions": ["pull"] }), "repositories"),
        (json!({ "name": "x", "repositories": ["Team/*"], "actions": ["pull"] }), "repositories[0]"),
        (json!({ "name": "x", "repositories": ["a"], "actions": ["pull", "admin"] }), "actions[1]"),
        (json!({ "name": "x", "repositories": ["a"], "actions": [] }), "actions"),
        (
            json!({ "name": "x", "repositories": ["a"], "actions": ["pull"], "expiresAt": "2001-01-01T00:00:00Z" }),
            "expires_at",
        ),
        (json!({ "name": "x", "repositories": ["a"], "actions": ["pull"], "expiresIn": "soon" }), "expiresIn"),
    ];
    for (body, field) in bad {
        let answer = app.api("POST", "/api/v1/robots", Some(body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{field}: {}", answer.body);
        assert!(answer.body["message"].as_str().unwrap().contains(field), "{field}: {}", answer.body);
    }
    let again = app
        .api("POST", "/api/v1/robots", Some(json!({ "name": "ci", "repositories": ["a"], "actions": ["pull"] })))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(app.api("GET", "/api/v1/robots", None).await.body["robots"].as_array().unwrap().len(), 1);

    let deleted = app.api("DELETE", "/api/v1/robots/ci", None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(app.api("DELETE", "/api/v1/robots/ci", None).await.status, StatusCode::NOT_FOUND);
    assert!(app.store.find_robot("ci").await.unwrap().is_none());

    // Both changes are in the audit trail, without the secret.
    let events = app.store.list_events(&EventFilter::default()).await.unwrap().items;
    let kinds: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).filter(|k| k.starts_with("robot.")).collect();
    assert_eq!(kinds, ["robot.deleted", "robot.created"]);
    assert!(events.iter().all(|e| !e.details.to_string().contains(secret)));
    let created_event = events.iter().find(|e| e.event_type == "robot.created").unwrap();
    assert_eq!(created_event.actor, "admin");
    assert_eq!(created_event.details["repositories"], json!(["team/*", "shared/base"]));
}

async fn robots_reach_exactly_their_repositories(postgres: bool) {
    let app = App::start(postgres).await;
    let secret = app.robot(json!({ "name": "ci", "repositories": ["team/*"], "actions": ["pull", "push"] })).await;
    let reader = app.robot(json!({ "name": "reader", "repositories": ["team/app"], "actions": ["pull"] })).await;
    let robot = basic("robot$ci", &secret);

    // Basic: a push to its own repositories works, anywhere else is DENIED.
    let pushed = app.push("team/app", "1", &robot).await;
    assert_eq!(pushed.status, StatusCode::CREATED, "{}", pushed.body);
    let pushed = app.push("team/tools/lint", "1", &robot).await;
    assert_eq!(pushed.status, StatusCode::CREATED, "{}", pushed.body);
    let refused = app.push("other/app", "1", &robot).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "DENIED"), "{}", refused.body);
    assert!(refused.body["errors"][0]["message"].as_str().unwrap().contains("robot$ci may not push in other/app"));
    let tags = call(&app.registry, "GET", "/v2/team/app/tags/list", Some(&robot), Body::empty()).await;
    assert_eq!(tags.status, StatusCode::OK, "{}", tags.body);
    assert_eq!(tags.body["tags"], json!(["1"]));
    let delete = call(&app.registry, "DELETE", "/v2/team/app/manifests/1", Some(&robot), Body::empty()).await;
    assert_eq!((delete.status, delete.code()), (StatusCode::FORBIDDEN, "DENIED"), "no delete action");
    let catalog = call(&app.registry, "GET", "/v2/_catalog", Some(&robot), Body::empty()).await;
    assert_eq!((catalog.status, catalog.code()), (StatusCode::FORBIDDEN, "DENIED"), "{}", catalog.body);

    // A pull-only robot pulls and does not push.
    let reader = basic("robot$reader", &reader);
    let tags = call(&app.registry, "GET", "/v2/team/app/tags/list", Some(&reader), Body::empty()).await;
    assert_eq!(tags.status, StatusCode::OK, "{}", tags.body);
    let refused = app.push("team/app", "2", &reader).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "DENIED"), "{}", refused.body);

    // The token flow grants only the scoped repositories and actions; a request beyond them is challenged.
    let (token, claims) = app.token(&robot, "repository:team/web:pull,push,delete").await;
    assert_eq!(claims["sub"], "robot$ci");
    assert_eq!(claims["access"], json!([{ "type": "repository", "name": "team/web", "actions": ["pull", "push"] }]));
    let pushed = app.push("team/web", "1", &token).await;
    assert_eq!(pushed.status, StatusCode::CREATED, "{}", pushed.body);
    let (other, claims) = app.token(&robot, "repository:other/app:pull,push").await;
    assert_eq!(claims["access"], json!([]));
    let refused = app.push("other/app", "1", &other).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"), "{}", refused.body);
    assert!(refused.headers[header::WWW_AUTHENTICATE].to_str().unwrap().contains("repository:other/app:pull,push"));

    // A wrong secret, an unknown robot and a deleted one are refused as wrong credentials.
    for auth in [basic("robot$ci", "igr_wrong"), basic("robot$ghost", &secret), basic("robot$CI", &secret)] {
        let answer = app.push("team/app", "3", &auth).await;
        assert_eq!((answer.status, answer.code()), (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"), "{}", answer.body);
    }
    assert_eq!(app.api("DELETE", "/api/v1/robots/ci", None).await.status, StatusCode::NO_CONTENT);
    let answer = app.push("team/app", "3", &robot).await;
    assert_eq!((answer.status, answer.code()), (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"), "{}", answer.body);
    let answer =
        call(&app.registry, "GET", "/v2/token?scope=repository:team/app:pull", Some(&robot), Body::empty()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.body);
}

async fn expired_robots_are_refused(postgres: bool) {
    let app = App::start(postgres).await;
    let secret = app
        .robot(json!({ "name": "brief", "repositories": ["*"], "actions": ["pull", "push"], "expiresIn": "1s" }))
        .await;
    let robot = basic("robot$brief", &secret);
    let pushed = app.push("any/where", "1", &robot).await;
    assert_eq!(pushed.status, StatusCode::CREATED, "{}", pushed.body);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let answer = app.push("any/where", "2", &robot).await;
    assert_eq!((answer.status, answer.code()), (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"), "{}", answer.body);
    let listed = app.api("GET", "/api/v1/robots", None).await;
    assert_eq!(listed.body["robots"][0]["expired"], true, "{}", listed.body);
}

on_both_backends!(
    robots_are_created_listed_and_deleted_by_admins,
    robots_reach_exactly_their_repositories,
    expired_robots_are_refused,
);
