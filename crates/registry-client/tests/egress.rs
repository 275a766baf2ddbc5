//! The egress policy and the redirect policy of every outbound request: against real Distribution
//! registries (behind a recording proxy, so that a test can tell that nothing reached them), and small
//! in-test servers for bearer challenges and redirects.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::TryStreamExt as _;
use image_core::Digest;
use image_core::copy::{CopyErrorKind, CopyProgress, CopyRequest, ImageCopier as _, RegistryAccess};
use image_core::import::{Artifact, LayerProgress};
use image_core::kube::Secret;
use registry_client::{
    Cidr, ClientConfig, CopyConfig, CopyEngine, Credential, EgressPolicy, Error, ManifestRef, RegistryClient, Repo,
    RetryPolicy,
};
use test_support::Distribution;
use test_support::proxy::Proxy;

mod common;

use common::{Blob, Image, Server};

/// Long enough that a retried request would show in the time a test takes.
const RETRY_DELAY: Duration = Duration::from_secs(2);

fn cidrs(list: &[&str]) -> Vec<Cidr> {
    list.iter().map(|c| c.parse().unwrap()).collect()
}

fn client_with(deny: &[&str], allow: &[&str]) -> RegistryClient {
    RegistryClient::new(config_with(deny, allow)).unwrap()
}

fn config_with(deny: &[&str], allow: &[&str]) -> ClientConfig {
    ClientConfig {
        retry: RetryPolicy { max_attempts: 5, base_delay: RETRY_DELAY, max_delay: RETRY_DELAY },
        egress: EgressPolicy::new(cidrs(deny), cidrs(allow)),
        ..ClientConfig::default()
    }
}

fn repo(host: &str, name: &str) -> Repo {
    Repo::new(host, name).unwrap()
}

/// Asserts that `result` is the policy's refusal of `host`, returned without a retry's delay.
#[track_caller]
fn assert_denied<T: std::fmt::Debug>(result: registry_client::Result<T>, host: &str, started: Instant) -> Error {
    let err = result.unwrap_err();
    assert!(matches!(&err, Error::EgressDenied { host: h, .. } if h == host), "{err:?}");
    assert!(err.to_string().starts_with(&format!("the egress policy refuses connections to {host}")), "{err}");
    assert!(!err.is_transient(), "{err}");
    assert!(started.elapsed() < RETRY_DELAY, "refused after {:?}: it was retried", started.elapsed());
    err
}

struct NoProgress;

impl CopyProgress for NoProgress {
    fn resolved(&self, _digest: &Digest, _artifacts: &[Artifact]) {}
    fn layer(&self, _progress: &LayerProgress) {}
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_registry_address_is_never_contacted_and_an_allow_range_opens_it() {
    let registry = Distribution::start().await;
    let proxy = Proxy::start(&registry.url()).await;
    let host = proxy.host(); // 127.0.0.1:PORT
    let app = repo(&host, "egress/app");
    let image = Image::random("amd64", &[1000]);
    image.push(&client_with(&[], &[]), &app, Some("1")).await;
    proxy.clear_requests();
    let tag = ManifestRef::tag("1").unwrap();

    // An IP literal is checked before anything is sent: no operation reaches the registry.
    let denied = client_with(&["127.0.0.0/8"], &[]);
    let started = Instant::now();
    let err = assert_denied(denied.ping(&host).await, "127.0.0.1", started);
    assert_eq!(err.to_string(), "the egress policy refuses connections to 127.0.0.1");
    assert_denied(denied.head_manifest(&app, &tag).await, "127.0.0.1", started);
    assert_denied(denied.get_manifest(&app, &tag).await, "127.0.0.1", started);
    assert_denied(denied.head_blob(&app, &image.layers[0].digest).await, "127.0.0.1", started);
    assert_denied(denied.get_blob(&app, &image.layers[0].digest, 0).await.map(|_| ()), "127.0.0.1", started);
    assert_denied(denied.list_tags(&app, None).await, "127.0.0.1", started);
    let blob = Blob::random(10);
    assert_denied(denied.push_blob(&app, &blob.digest, blob.size(), blob.stream()).await, "127.0.0.1", started);
    assert_eq!(proxy.requests().len(), 0, "{:?}", proxy.requests());

    // A name is checked after resolution: `localhost` resolves to loopback addresses only.
    let named = format!("localhost:{}", host.rsplit_once(':').unwrap().1);
    let started = Instant::now();
    let err = assert_denied(denied_by_name().ping(&named).await, "localhost", started);
    assert!(
        matches!(&err, Error::EgressDenied { addr: Some(addr), .. } if addr.is_loopback()),
        "the refused address is named: {err:?}"
    );
    assert!(err.to_string().starts_with("the egress policy refuses connections to localhost ("), "{err}");
    let named_app = repo(&named, "egress/app");
    assert_denied(denied_by_name().get_manifest(&named_app, &tag).await, "localhost", started);
    assert_eq!(proxy.requests().len(), 0, "{:?}", proxy.requests());

    // The same client with an exception for the registry's address (allow wins): it works, by literal
    // and by name (only the permitted address of `localhost` is tried).
    let allowed = client_with(&["127.0.0.0/8", "::1/128"], &["127.0.0.1/32"]);
    allowed.ping(&host).await.unwrap();
    assert_eq!(allowed.get_manifest(&app, &tag).await.unwrap().bytes, image.manifest.bytes);
    allowed.ping(&named).await.unwrap();
    let data: Vec<Bytes> =
        allowed.get_blob(&named_app, &image.layers[0].digest, 0).await.unwrap().stream.try_collect().await.unwrap();
    assert!(data.concat() == image.layers[0].bytes);
    assert!(proxy.count("GET", "/v2/") >= 2, "{:?}", proxy.requests());
}

fn denied_by_name() -> RegistryClient {
    client_with(&["127.0.0.0/8", "::1/128"], &[])
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_policy_refuses_cloud_metadata_addresses() {
    let client = RegistryClient::new(ClientConfig::default()).unwrap();
    let started = Instant::now();
    for host in ["169.254.169.254", "[fe80::a9fe:a9fe]", "[::ffff:a9fe:a9fe]"] {
        let err = client.ping(host).await.unwrap_err();
        assert!(matches!(err, Error::EgressDenied { .. }), "{host}: {err:?}");
    }
    // Nothing was tried: no connection timeout was waited for.
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

/// The copy engine's errors: a denied source fails a copy and a source check for good, naming the policy.
#[tokio::test(flavor = "multi_thread")]
async fn a_denied_source_fails_copies_permanently() {
    let source = Distribution::start_on(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))).await;
    let target = Distribution::start().await;
    let image = Image::random("amd64", &[2000]);
    image.push(&client_with(&[], &[]), &repo(&source.host(), "egress/app"), Some("1")).await;
    let client = Arc::new(client_with(&["127.0.0.2/32"], &[]));
    let engine = CopyEngine::new(client.clone(), CopyConfig { blob_concurrency: 2 });
    let request = CopyRequest {
        source: format!("{}/egress/app:1", source.host()).parse().unwrap(),
        source_access: RegistryAccess::Configured,
        target: format!("{}/mirror/app:1", target.host()).parse().unwrap(),
        platforms: Vec::new(),
    };
    let started = Instant::now();
    let err = engine.check_source(&request.source, &RegistryAccess::Configured).await.unwrap_err();
    assert_eq!(err.kind, CopyErrorKind::Permanent, "{err}");
    assert_eq!(
        err.message,
        format!("cannot read source {}: the egress policy refuses connections to 127.0.0.2", request.source)
    );
    let err = engine.copy_image(&request, &NoProgress).await.unwrap_err();
    assert_eq!(err.kind, CopyErrorKind::Permanent, "{err}");
    assert!(err.message.contains("the egress policy refuses connections to 127.0.0.2"), "{err}");
    assert!(started.elapsed() < RETRY_DELAY, "{:?}", started.elapsed());
    // Testing credentials goes through the policy too.
    let err = engine.verify_credentials(&source.host(), "u", &Secret::new("p"), false).await.unwrap_err();
    assert!(err.message.contains("egress policy"), "{err}");
    // The target, on another loopback address, was reachable all along.
    assert!(client.head_manifest(&repo(&target.host(), "mirror/app"), &"1".parse().unwrap()).await.is_ok());
}

// ---- a registry that challenges and redirects ------------------------------------------------

/// What a test server received: method, path and `Authorization`.
#[derive(Default)]
struct Seen(Mutex<Vec<(Method, String, Option<String>)>>);

impl Seen {
    fn record(&self, req: &Request) {
        let auth = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        self.0.lock().unwrap().push((req.method().clone(), req.uri().path().to_owned(), auth));
    }

    fn all(&self) -> Vec<(Method, String, Option<String>)> {
        self.0.lock().unwrap().clone()
    }
}

struct FakeRegistry {
    seen: Arc<Seen>,
    /// Where requests are redirected to (a base URL), and the bearer realm.
    redirect_to: String,
    realm: Option<String>,
}

/// A registry that wants basic auth (or a bearer token from `realm`), and answers every request but
/// `/v2/` with a 307 to `redirect_to` + the same path.
async fn fake_registry(State(st): State<Arc<FakeRegistry>>, req: Request) -> Response {
    st.seen.record(&req);
    if req.headers().get(header::AUTHORIZATION).is_none() {
        let challenge = match &st.realm {
            Some(realm) => format!(r#"Bearer realm="{realm}",service="fake""#),
            None => r#"Basic realm="fake""#.to_owned(),
        };
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, challenge)]).into_response();
    }
    let path = req.uri().path().to_owned();
    if path == "/v2/" {
        return ([("docker-distribution-api-version", "registry/2.0")], "{}").into_response();
    }
    (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, format!("{}{path}", st.redirect_to))]).into_response()
}

/// A storage host: answers every GET or HEAD with the blob and records what it got.
async fn storage(State(st): State<Arc<(Seen, Bytes)>>, req: Request) -> Response {
    st.0.record(&req);
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, "application/octet-stream".parse().unwrap());
    (headers, st.1.clone()).into_response()
}

async fn start_storage(ip: Ipv4Addr, blob: Bytes) -> (Arc<(Seen, Bytes)>, String, Server) {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new((Seen::default(), blob));
    let app = axum::Router::new().fallback(storage).with_state(state.clone());
    (state, url, Server::serve(listener, app))
}

async fn start_fake_registry(redirect_to: &str, realm: Option<String>) -> (Arc<FakeRegistry>, String, Server) {
    let (listener, addr) = Server::bind().await;
    let state = Arc::new(FakeRegistry { seen: Arc::default(), redirect_to: redirect_to.to_owned(), realm });
    let app = axum::Router::new().fallback(fake_registry).with_state(state.clone());
    (state, addr.to_string(), Server::serve(listener, app))
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_are_followed_for_blob_reads_only_and_never_carry_credentials() {
    let blob = Blob::random(5000);
    let (stored, storage_url, _storage) = start_storage(Ipv4Addr::LOCALHOST, blob.bytes.clone()).await;
    let (registry, host, _registry) = start_fake_registry(&storage_url, None).await;
    let mut config = config_with(&[], &[]);
    config.credentials.insert(host.clone(), Credential::new("bob", "hunter2"));
    let client = RegistryClient::new(config).unwrap();
    let app = repo(&host, "app");
    client.ping(&host).await.unwrap();

    // A manifest (or a tag list, or an upload) answered with a redirect to another host: refused, and
    // the other host never hears of it.
    let tag = ManifestRef::tag("1").unwrap();
    let started = Instant::now();
    for err in [
        client.get_manifest(&app, &tag).await.unwrap_err(),
        client.head_manifest(&app, &tag).await.unwrap_err(),
        client.list_tags(&app, None).await.unwrap_err(),
        client.start_upload(&app).await.unwrap_err(),
    ] {
        assert!(matches!(err, Error::Protocol { status: 307, .. }), "{err:?}");
        assert!(err.to_string().ends_with(": redirects are followed only for blob downloads"), "{err}");
    }
    assert!(started.elapsed() < RETRY_DELAY, "a redirect was retried: {:?}", started.elapsed());
    assert_eq!(stored.0.all().len(), 0, "{:?}", stored.0.all());

    // A blob download (and a blob HEAD, as S3-backed registries redirect those too) follows the redirect,
    // and the storage host gets no credentials, while the registry got them.
    let data: Vec<Bytes> = client.get_blob(&app, &blob.digest, 0).await.unwrap().stream.try_collect().await.unwrap();
    assert!(data.concat() == blob.bytes);
    assert_eq!(client.head_blob(&app, &blob.digest).await.unwrap(), Some(blob.size()));
    let at_storage = stored.0.all();
    assert_eq!(at_storage.len(), 2, "{at_storage:?}");
    assert!(
        at_storage.iter().all(|(_, path, auth)| path.contains("/blobs/sha256:") && auth.is_none()),
        "{at_storage:?}"
    );
    let blob_reads: Vec<_> = registry.seen.all().into_iter().filter(|(_, p, _)| p.contains("/blobs/sha256:")).collect();
    assert!(!blob_reads.is_empty() && blob_reads.iter().all(|(_, _, auth)| auth.is_some()), "{blob_reads:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn redirect_targets_and_token_services_are_checked_against_the_policy() {
    let denied_ip = Ipv4Addr::new(127, 0, 0, 2);
    let blob = Blob::random(100);
    let (stored, storage_url, _storage) = start_storage(denied_ip, blob.bytes.clone()).await;

    // A blob redirected to a denied address: refused before connecting.
    let (_registry, host, _server) = start_fake_registry(&storage_url, None).await;
    let mut config = config_with(&["127.0.0.2/32"], &[]);
    config.credentials.insert(host.clone(), Credential::new("bob", "hunter2"));
    let client = RegistryClient::new(config.clone()).unwrap();
    let started = Instant::now();
    let err = client.get_blob(&repo(&host, "app"), &blob.digest, 0).await.map(|_| ()).unwrap_err();
    assert_denied(Err::<(), _>(err), "127.0.0.2", started);
    assert!(stored.0.all().is_empty(), "{:?}", stored.0.all());

    // A bearer challenge whose token service is at a denied address: no token request is made.
    let (tokens, realm, _tokens) = start_storage(denied_ip, Bytes::from_static(br#"{"token":"t"}"#)).await;
    let (registry, host, _server) = start_fake_registry(&storage_url, Some(format!("{realm}/token"))).await;
    let started = Instant::now();
    let err = RegistryClient::new(config).unwrap().ping(&host).await;
    assert_denied(err, "127.0.0.2", started);
    assert!(tokens.0.all().is_empty(), "{:?}", tokens.0.all());
    assert_eq!(registry.seen.all().len(), 1, "only the challenged request: {:?}", registry.seen.all());
    // Without the policy, the same challenge is answered from that token service.
    client_with(&[], &[]).ping(&host).await.unwrap();
    assert_eq!(tokens.0.all().len(), 1, "{:?}", tokens.0.all());
}

/// Docker Hub's search (the station profile's `dockerhub` category) goes through the egress policy too:
/// a search URL on a denied address (IPv4, or IPv4-mapped IPv6) is refused for good without a request.
#[tokio::test(flavor = "multi_thread")]
async fn the_docker_hub_search_obeys_the_policy() {
    use image_core::station::RegistryBrowser as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let engine = CopyEngine::new(Arc::new(client_with(&["127.0.0.2/32"], &[])), CopyConfig::default());
    for url in [format!("http://127.0.0.2:{port}/v1/search"), format!("http://[::ffff:127.0.0.2]:{port}/v1/search")] {
        let err = engine.search_hub(&url, "redis").await.unwrap_err();
        assert_eq!(err.kind, CopyErrorKind::Permanent, "{url}: {err}");
        assert!(err.message.starts_with("the egress policy refuses connections to "), "{url}: {err}");
        assert!(err.message.contains("127.0.0.2"), "{url}: {err}");
    }
    // Nothing connected: the listener has no connection waiting.
    let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
    assert!(accepted.is_err(), "a connection reached the denied address");
}
