//! The harness the registry's tests share: the real router over a real store, with stub users.
#![allow(dead_code)]

use std::sync::Arc;

use async_trait::async_trait;
use axum::{
    Router,
    body::Body,
    http::{HeaderMap, Request, StatusCode},
};
use base64::Engine as _;
use http_body_util::BodyExt as _;
use oci_registry::{AuthFailure, Authenticator, Principal, Registry, RegistryConfig, TokenSigner};
use serde_json::{Value, json};
use sha2::Digest as _;
use tower::ServiceExt as _;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// `admin:admin-pw` (an admin), `user:user-pw` and the API token `user-token` (a user); `slow:any` is told to
/// wait.
#[derive(Debug)]
pub struct Users;

#[async_trait]
impl Authenticator for Users {
    async fn basic(
        &self,
        user: &str,
        password: &str,
        _: Option<std::net::IpAddr>,
    ) -> Result<Option<Principal>, AuthFailure> {
        match (user, password) {
            ("admin", "admin-pw") => Ok(Some(Principal::user("admin", true))),
            ("user", "user-pw") => Ok(Some(Principal::user("user", false))),
            ("slow", _) => Err(AuthFailure::TooManyRequests { message: "slow down".into(), retry_after_secs: Some(7) }),
            _ => Ok(None),
        }
    }

    async fn api_token(&self, token: &str) -> Result<Option<Principal>, AuthFailure> {
        Ok((token == "user-token").then(|| Principal::user("user", false)))
    }
}

#[derive(Debug)]
pub struct Reg {
    router: Router,
    pub store: Arc<store::DbStore>,
    pub registry: Arc<Registry>,
    pub dir: tempfile::TempDir,
}

#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The first error's code.
    pub fn code(&self) -> String {
        self.json()["errors"][0]["code"].as_str().unwrap_or("").to_owned()
    }
}

pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

pub fn admin() -> Option<String> {
    Some(basic("admin", "admin-pw"))
}

pub fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

pub async fn stores() -> Vec<Arc<store::DbStore>> {
    let mut stores = vec![Arc::new(store::DbStore::connect("sqlite::memory:").await.unwrap())];
    if std::env::var("IMAGEGATE_TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        let url = test_support::postgres_url().await;
        stores.push(Arc::new(store::DbStore::connect(&url).await.unwrap()));
    }
    stores
}

/// Refuses pulls by the tag `bad`, and by digest any manifest no index lists.
#[derive(Debug)]
pub struct TagGate;

#[async_trait]
impl oci_registry::Gate for TagGate {
    async fn refusal(&self, pull: oci_registry::gate::Pull<'_>) -> image_core::Result<Option<String>> {
        Ok(match pull.tag {
            Some("bad") => Some(format!("tag bad of {} is not approved", pull.repository)),
            Some(_) => None,
            None if pull.parents.is_empty() => Some(format!("{} is not an approved tag", pull.digest)),
            None => None,
        })
    }
}

pub async fn registries(anonymous_pull: bool) -> Vec<Reg> {
    gated(anonymous_pull, oci_registry::GateMode::Off).await
}

/// Registries whose gate is [`TagGate`] in `mode`.
pub async fn gated(anonymous_pull: bool, gate_mode: oci_registry::GateMode) -> Vec<Reg> {
    let mut out = Vec::new();
    for store in stores().await {
        let dir = tempfile::tempdir().unwrap();
        let config = RegistryConfig {
            root: dir.path().join("registry"),
            signer: TokenSigner::derive(b"test secret"),
            anonymous_pull,
            internal_credential: Some(("internal".into(), "internal-pw".into())),
            public_url: None,
            gate_mode,
            gate: Some(Arc::new(TagGate)),
        };
        let registry = Arc::new(Registry::open(store.clone(), Arc::new(Users), config).unwrap());
        out.push(Reg { router: oci_registry::router(registry.clone()), registry, store, dir });
    }
    out
}

impl Reg {
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        auth: Option<String>,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path).header("host", "registry.test");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self.router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
        Answer { status, headers, body }
    }

    pub async fn admin(&self, method: &str, path: &str, headers: &[(&str, &str)], body: impl Into<Body>) -> Answer {
        self.send(method, path, admin(), headers, body.into()).await
    }

    /// Pushes a blob monolithically; its digest.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha(bytes);
        let answer =
            self.admin("POST", &format!("/v2/{repo}/blobs/uploads/?digest={digest}"), &[], bytes.to_vec()).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&answer.body));
        digest
    }

    /// Pushes a config and one layer and an image manifest of `media_type` for them; the manifest's bytes.
    pub async fn push_image(&self, repo: &str, tag: &str, media_type: &str, layer: &[u8]) -> Vec<u8> {
        let config = format!("{{\"layer\":\"{}\"}}", sha(layer)).into_bytes();
        let config_digest = self.push_blob(repo, &config).await;
        let layer_digest = self.push_blob(repo, layer).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer.len() }],
        });
        let bytes = serde_json::to_vec_pretty(&manifest).unwrap();
        let answer = self
            .admin("PUT", &format!("/v2/{repo}/manifests/{tag}"), &[("content-type", media_type)], bytes.clone())
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&answer.body));
        assert_eq!(answer.header("docker-content-digest"), sha(&bytes));
        bytes
    }
}
