//! `RegistryClient` against real CNCF Distribution registries (from `test-support`), with
//! small in-test servers in front of them where a test needs what Distribution does not do:
//! injected faults, bearer-token auth, redirects to a storage host, pagination of tags,
//! refused monolithic uploads, Docker Hub's rate-limit headers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{TryStreamExt as _, stream};
use image_core::copy::RegistryAccess;
use registry_client::{
    ClientConfig, Credential, Error, ManifestRef, Missing, MountOutcome, RegistryClient, Repo, RetryPolicy, media_type,
    verify_digest,
};
use serde_json::json;
use test_support::Distribution;

mod common;

use common::{Blob, Image, Server, index};

// ---- clients ------------------------------------------------------------------------------

fn config() -> ClientConfig {
    ClientConfig {
        retry: RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(3),
        },
        ..ClientConfig::default()
    }
}

fn client() -> RegistryClient {
    RegistryClient::new(config()).unwrap()
}

fn client_with_credentials(registry: &str, user: &str, password: &str) -> RegistryClient {
    let mut config = config();
    config.credentials.insert(registry.to_owned(), Credential::new(user, password));
    RegistryClient::new(config).unwrap()
}

fn repo(host: &str, name: &str) -> Repo {
    Repo::new(host, name).unwrap()
}

async fn read_all(blob: registry_client::BlobStream) -> Vec<u8> {
    let chunks: Vec<Bytes> = blob.stream.try_collect().await.unwrap();
    chunks.concat()
}

// ---- an HTTP proxy in front of a registry -------------------------------------------------

/// An injected answer for the next request with a matching method.
struct Fault {
    method: Option<Method>,
    status: u16,
    retry_after: Option<&'static str>,
}

#[derive(Debug, Clone)]
struct Logged {
    method: Method,
    path: String,
    query: String,
    authorization: Option<String>,
}

#[derive(Default)]
struct ProxyOptions {
    /// Require bearer tokens from this token server.
    tokens: Option<Arc<TokenState>>,
    /// Answer blob GETs with a 307 to this base URL (another host).
    redirect_blobs_to: Option<String>,
    /// Answer blob upload PUTs that carry data with 413, as a proxy with a body limit does.
    refuse_monolithic: bool,
    /// Paginate tag lists (`n`, `last`, `Link`), which Distribution 2.x does not do.
    paginate_tags: bool,
    /// Fixed answers: path → (content type, body).
    canned: HashMap<String, (String, String)>,
    /// Response headers to drop, as some registries never send them.
    strip_headers: Vec<&'static str>,
    /// Turn absolute `Location`s into paths, as some registries send them.
    relative_locations: bool,
}

struct ProxyState {
    upstream: String,
    upstream_host: String,
    self_host: String,
    options: ProxyOptions,
    faults: Mutex<VecDeque<Fault>>,
    /// A `ratelimit-remaining` value added to every answer.
    rate_limit: Mutex<Option<String>>,
    log: Mutex<Vec<Logged>>,
    http: reqwest::Client,
}

struct Proxy {
    state: Arc<ProxyState>,
    _server: Server,
}

impl Proxy {
    async fn start(upstream_host: &str, options: ProxyOptions) -> Proxy {
        let (listener, addr) = Server::bind().await;
        let state = Arc::new(ProxyState {
            upstream: format!("http://{upstream_host}"),
            upstream_host: upstream_host.to_owned(),
            self_host: addr.to_string(),
            options,
            faults: Mutex::default(),
            rate_limit: Mutex::default(),
            log: Mutex::default(),
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        });
        let app = axum::Router::new().fallback(proxy_handler).with_state(state.clone());
        Proxy { state, _server: Server::serve(listener, app) }
    }

    fn host(&self) -> String {
        self.state.self_host.clone()
    }

    fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    fn fault(&self, method: Option<Method>, status: u16, retry_after: Option<&'static str>) {
        self.state.faults.lock().unwrap().push_back(Fault { method, status, retry_after });
    }

    fn set_rate_limit(&self, value: Option<&str>) {
        *self.state.rate_limit.lock().unwrap() = value.map(str::to_owned);
    }

    fn log(&self) -> Vec<Logged> {
        self.state.log.lock().unwrap().clone()
    }

    fn count(&self, method: Method, path_contains: &str) -> usize {
        self.log().iter().filter(|l| l.method == method && l.path.contains(path_contains)).count()
    }

    fn clear_log(&self) {
        self.state.log.lock().unwrap().clear();
    }
}

async fn proxy_handler(State(st): State<Arc<ProxyState>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    st.log.lock().unwrap().push(Logged {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        authorization: authorization.clone(),
    });

    let fault = {
        let mut faults = st.faults.lock().unwrap();
        let applies = faults.front().is_some_and(|f| f.method.as_ref().is_none_or(|m| m == method));
        if applies { faults.pop_front() } else { None }
    };
    if let Some(fault) = fault {
        let mut resp = (
            StatusCode::from_u16(fault.status).unwrap(),
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}"#,
        )
            .into_response();
        if let Some(after) = fault.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(after));
        }
        return resp;
    }

    if let Some(tokens) = &st.options.tokens {
        let needed = needed_scopes(&method, &path, &query);
        if !tokens.allows(authorization.as_deref(), &needed) {
            let scope = needed.iter().map(|(n, a)| format!("repository:{n}:{a}")).collect::<Vec<_>>().join(" ");
            let challenge = format!(
                r#"Bearer realm="{}/token",service="imagegate-test",scope="{}",error="insufficient_scope""#,
                tokens.url, scope
            );
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, challenge), (header::CONTENT_TYPE, "application/json".to_owned())],
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            )
                .into_response();
        }
    }

    if let Some((content_type, body)) = st.options.canned.get(&path) {
        return ([(header::CONTENT_TYPE, content_type.clone())], body.clone()).into_response();
    }

    if st.options.refuse_monolithic
        && method == Method::PUT
        && path.contains("/blobs/uploads/")
        && req.headers().get(header::CONTENT_LENGTH).is_some_and(|l| l != "0")
    {
        // Read it all first, as a body-size-limiting proxy may, then refuse.
        let _ = axum::body::to_bytes(req.into_body(), usize::MAX).await;
        return (StatusCode::PAYLOAD_TOO_LARGE, "request entity too large").into_response();
    }

    if let Some(storage) = &st.options.redirect_blobs_to
        && method == Method::GET
        && path.contains("/blobs/sha256:")
    {
        return (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, format!("{storage}{path}"))]).into_response();
    }

    if st.options.paginate_tags && method == Method::GET && path.ends_with("/tags/list") {
        return paginate_tags(&st, &path, &query).await;
    }

    forward(&st, req).await
}

/// The (repository, action) pairs a request needs; `/v2/` needs only a valid token.
fn needed_scopes(method: &Method, path: &str, query: &str) -> Vec<(String, String)> {
    let Some(rest) = path.strip_prefix("/v2/") else { return Vec::new() };
    if rest.is_empty() {
        return Vec::new();
    }
    if rest.starts_with("_catalog") {
        return vec![("catalog".into(), "*".into())];
    }
    let name_end =
        ["/manifests/", "/blobs/", "/tags/"].iter().filter_map(|m| rest.rfind(m)).max().unwrap_or(rest.len());
    let name = rest[..name_end].to_owned();
    let action = match *method {
        Method::GET | Method::HEAD => "pull",
        Method::DELETE => "delete",
        _ => "push",
    };
    let mut needed = vec![(name, action.to_owned())];
    for pair in query.split('&') {
        if let Some(from) = pair.strip_prefix("from=") {
            needed.push((from.replace("%2F", "/"), "pull".to_owned()));
        }
    }
    needed
}

async fn forward(st: &ProxyState, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let url = format!("{}{}", st.upstream, parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut builder = st.http.request(parts.method.clone(), url);
    for (name, value) in &parts.headers {
        if !matches!(name.as_str(), "host" | "authorization" | "connection" | "transfer-encoding" | "keep-alive") {
            builder = builder.header(name, value);
        }
    }
    let has_body =
        parts.headers.contains_key(header::CONTENT_LENGTH) || parts.headers.contains_key(header::TRANSFER_ENCODING);
    if has_body {
        builder = builder.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    }
    let upstream = match builder.send().await {
        Ok(resp) => resp,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut out = Response::builder().status(upstream.status().as_u16());
    for (name, value) in upstream.headers() {
        if matches!(name.as_str(), "connection" | "transfer-encoding" | "keep-alive") {
            continue;
        }
        if st.options.strip_headers.contains(&name.as_str()) {
            continue;
        }
        if name == header::LOCATION {
            let mut rewritten = value.to_str().unwrap().replace(&st.upstream_host, &st.self_host);
            if st.options.relative_locations {
                rewritten = rewritten.replace(&format!("http://{}", st.self_host), "");
            }
            out = out.header(name, rewritten);
        } else {
            out = out.header(name, value);
        }
    }
    if let Some(remaining) = st.rate_limit.lock().unwrap().clone() {
        out = out.header("ratelimit-limit", "100;w=21600").header("ratelimit-remaining", remaining);
    }
    let body = if parts.method == Method::HEAD { Body::empty() } else { Body::from_stream(upstream.bytes_stream()) };
    out.body(body).unwrap()
}

/// Tag-list pagination as the OCI specification describes it: sorted, `n` per page, `last` to
/// continue after, and a `Link` to the next page.
async fn paginate_tags(st: &ProxyState, path: &str, query: &str) -> Response {
    #[derive(serde::Deserialize)]
    struct List {
        name: String,
        tags: Vec<String>,
    }
    let params: HashMap<String, String> = query_map(query);
    let list: List = st.http.get(format!("{}{path}", st.upstream)).send().await.unwrap().json().await.unwrap();
    let mut tags = list.tags;
    tags.sort();
    let after: Vec<String> = match params.get("last") {
        Some(last) => tags.into_iter().filter(|t| t > last).collect(),
        None => tags,
    };
    let n: usize = params.get("n").and_then(|n| n.parse().ok()).unwrap_or(usize::MAX);
    let page: Vec<String> = after.iter().take(n).cloned().collect();
    let mut resp = axum::Json(json!({"name": list.name, "tags": page})).into_response();
    if after.len() > n {
        let link = format!(r#"<{path}?n={n}&last={}>; rel="next""#, page.last().unwrap());
        resp.headers_mut().insert(header::LINK, HeaderValue::from_str(&link).unwrap());
    }
    resp
}

fn query_map(query: &str) -> HashMap<String, String> {
    url_pairs(query).into_iter().collect()
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{query}")).unwrap().query_pairs().into_owned().collect()
}

// ---- a bearer token server ----------------------------------------------------------------

struct TokenState {
    url: String,
    /// Required basic credentials.
    credentials: (String, String),
    issued: Mutex<HashMap<String, Vec<String>>>,
    /// The scopes asked for, sorted, one entry per request.
    hits: Mutex<Vec<Vec<String>>>,
    counter: AtomicU64,
}

impl TokenState {
    fn allows(&self, authorization: Option<&str>, needed: &[(String, String)]) -> bool {
        let Some(token) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else { return false };
        let issued = self.issued.lock().unwrap();
        let Some(scopes) = issued.get(token) else { return false };
        let mut granted = HashSet::new();
        for scope in scopes {
            let parts: Vec<&str> = scope.split(':').collect();
            match parts.as_slice() {
                ["repository", name, actions] => {
                    for action in actions.split(',') {
                        granted.insert((name.to_string(), action.to_string()));
                    }
                }
                ["registry", "catalog", "*"] => {
                    granted.insert(("catalog".to_owned(), "*".to_owned()));
                }
                _ => {}
            }
        }
        needed.iter().all(|n| granted.contains(n))
    }

    fn hits(&self) -> Vec<Vec<String>> {
        self.hits.lock().unwrap().clone()
    }

    fn hits_for(&self, scopes: &[&str]) -> usize {
        let mut wanted: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        wanted.sort();
        self.hits().iter().filter(|h| **h == wanted).count()
    }
}

struct TokenServer {
    state: Arc<TokenState>,
    _server: Server,
}

impl TokenServer {
    async fn start(user: &str, password: &str) -> TokenServer {
        let (listener, addr) = Server::bind().await;
        let state = Arc::new(TokenState {
            url: format!("http://{addr}"),
            credentials: (user.to_owned(), password.to_owned()),
            issued: Mutex::default(),
            hits: Mutex::default(),
            counter: AtomicU64::new(0),
        });
        let app = axum::Router::new().route("/token", axum::routing::get(token_handler)).with_state(state.clone());
        TokenServer { state, _server: Server::serve(listener, app) }
    }
}

async fn token_handler(
    State(st): State<Arc<TokenState>>,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    use base64::Engine as _;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", st.credentials.0, st.credentials.1))
    );
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"details": "incorrect username or password"})))
            .into_response();
    }
    assert!(params.iter().any(|(k, v)| k == "service" && v == "imagegate-test"), "{params:?}");
    let mut scopes: Vec<String> = params.into_iter().filter(|(k, _)| k == "scope").map(|(_, v)| v).collect();
    scopes.sort();
    st.hits.lock().unwrap().push(scopes.clone());
    let token = format!("tok-{}", st.counter.fetch_add(1, Ordering::SeqCst));
    st.issued.lock().unwrap().insert(token.clone(), scopes);
    axum::Json(json!({"token": token, "expires_in": 300})).into_response()
}

// ---- tests --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn blobs_and_manifests_round_trip_byte_for_byte() {
    let registry = Distribution::start().await;
    let client = client();
    let app = repo(&registry.host(), "team/app");

    client.ping(&registry.host()).await.unwrap();

    // A small layer and a multi-megabyte one, streamed in 64 KiB chunks.
    let amd64 = Image::random("amd64", &[1234, 5 * 1024 * 1024 + 17]);
    let arm64 = Image::random("arm64", &[10]);
    assert_eq!(client.head_blob(&app, &amd64.layers[1].digest).await.unwrap(), None);
    amd64.push(&client, &app, Some("amd64")).await;
    arm64.push(&client, &app, None).await;
    assert_eq!(client.head_blob(&app, &amd64.layers[1].digest).await.unwrap(), Some(amd64.layers[1].size()));
    assert_eq!(client.head_blob(&app, &amd64.layers[0].digest).await.unwrap(), Some(1234));

    // Blobs come back whole and verified.
    let big = &amd64.layers[1];
    let download = client.get_blob(&app, &big.digest, 0).await.unwrap();
    assert_eq!((download.size, download.offset), (Some(big.size()), 0));
    let verified: Vec<Bytes> = verify_digest(download.stream, big.digest.clone()).try_collect().await.unwrap();
    assert!(verified.concat() == big.bytes, "the big layer differs");

    // The manifest by tag and by digest: the same bytes, digest and media type.
    for reference in [ManifestRef::tag("amd64").unwrap(), ManifestRef::from(&amd64.manifest.digest)] {
        let manifest = client.get_manifest(&app, &reference).await.unwrap();
        assert_eq!(manifest.bytes, amd64.manifest.bytes, "{reference}");
        assert_eq!(manifest.digest, amd64.manifest.digest);
        assert_eq!(manifest.media_type, media_type::OCI_MANIFEST);
        let head = client.head_manifest(&app, &reference).await.unwrap().unwrap();
        assert_eq!(head.digest, amd64.manifest.digest);
        assert_eq!(head.media_type, media_type::OCI_MANIFEST);
        assert_eq!(head.size, amd64.manifest.size());
    }

    // A two-platform index over both, pushed by tag; its children were pushed first.
    let index = index(&[(&amd64, "linux/amd64"), (&arm64, "linux/arm64")]);
    let digest = client
        .put_manifest(&app, &ManifestRef::tag("multi").unwrap(), media_type::OCI_INDEX, index.bytes.clone())
        .await
        .unwrap();
    assert_eq!(digest, index.digest);
    let fetched = client.get_manifest(&app, &"multi".parse().unwrap()).await.unwrap();
    assert_eq!(
        (fetched.bytes, fetched.digest, fetched.media_type.as_str()),
        (index.bytes.clone(), index.digest.clone(), media_type::OCI_INDEX)
    );
    let child = client.get_manifest(&app, &ManifestRef::from(&arm64.manifest.digest)).await.unwrap();
    assert_eq!(child.bytes, arm64.manifest.bytes);

    // Absent things.
    assert_eq!(client.head_manifest(&app, &ManifestRef::tag("nope").unwrap()).await.unwrap(), None);
    assert_eq!(client.head_manifest(&app, &ManifestRef::from(&Blob::random(1).digest)).await.unwrap(), None);
    assert_eq!(client.head_blob(&app, &Blob::random(1).digest).await.unwrap(), None);
    let err = client.get_manifest(&app, &ManifestRef::tag("nope").unwrap()).await.unwrap_err();
    assert!(matches!(&err, Error::NotFound { what: Missing::Manifest(t), .. } if t == "nope"), "{err:?}");
    // Distribution answers MANIFEST_UNKNOWN (not NAME_UNKNOWN) for a manifest of a repository it lacks.
    let err = client.get_manifest(&repo(&registry.host(), "no/such"), &"latest".parse().unwrap()).await.unwrap_err();
    assert!(matches!(&err, Error::NotFound { repository, .. } if repository == "no/such"), "{err:?}");
    let err = client.get_blob(&app, &Blob::random(1).digest, 0).await.unwrap_err();
    assert!(matches!(&err, Error::NotFound { what: Missing::Blob(_), .. }), "{err:?}");

    // A digest reference must match the bytes.
    let err = client
        .put_manifest(&app, &ManifestRef::from(&index.digest), media_type::OCI_MANIFEST, amd64.manifest.bytes.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");

    // Delete by digest.
    client.delete_manifest(&app, &index.digest).await.unwrap();
    assert_eq!(client.head_manifest(&app, &ManifestRef::from(&index.digest)).await.unwrap(), None);
    let err = client.delete_manifest(&app, &index.digest).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ranged_blob_get_resumes_at_an_offset_and_holds_a_request_slot() {
    let registry = Distribution::start().await;
    let client = RegistryClient::new(ClientConfig { max_concurrent_requests_per_registry: 1, ..config() }).unwrap();
    let app = repo(&registry.host(), "ranged");
    let blob = Blob::random(3 * 1024 * 1024 + 5);
    client.push_blob(&app, &blob.digest, blob.size(), blob.stream()).await.unwrap();

    for offset in [1, 65_536, 1_000_003, blob.size() - 1] {
        let part = client.get_blob(&app, &blob.digest, offset).await.unwrap();
        assert_eq!((part.size, part.offset), (Some(blob.size()), offset));
        assert!(read_all(part).await == blob.bytes[offset as usize..], "offset {offset}");
    }
    let end = client.get_blob(&app, &blob.digest, blob.size()).await.unwrap();
    assert!(read_all(end).await.is_empty());

    // With one request slot, an unfinished download blocks the next request until dropped.
    let pending = client.get_blob(&app, &blob.digest, 0).await.unwrap();
    let blocked = tokio::time::timeout(Duration::from_millis(300), client.head_blob(&app, &blob.digest)).await;
    assert!(blocked.is_err(), "a second request ran while the only slot was taken");
    drop(pending);
    assert_eq!(client.head_blob(&app, &blob.digest).await.unwrap(), Some(blob.size()));
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_and_catalog_follow_pagination() {
    let registry = Distribution::start().await;
    let proxy = Proxy::start(&registry.host(), ProxyOptions { paginate_tags: true, ..ProxyOptions::default() }).await;
    let client = client();
    let image = Image::random("amd64", &[100]);
    let tags = ["v1", "v2", "v3", "v4", "v5"];
    for name in ["a/one", "b/two", "c/three", "d/four", "e/five"] {
        image.push(&client, &repo(&registry.host(), name), Some("v1")).await;
    }
    let app = repo(&registry.host(), "a/one");
    for tag in tags {
        client
            .put_manifest(&app, &ManifestRef::tag(tag).unwrap(), media_type::OCI_MANIFEST, image.manifest.bytes.clone())
            .await
            .unwrap();
    }

    // Directly: Distribution 2.x ignores `n` for tags; everything arrives either way.
    let mut listed = client.list_tags(&app, Some(2)).await.unwrap();
    listed.sort();
    assert_eq!(listed, tags);

    // Through a paginating front: three pages of at most two.
    let via_proxy = repo(&proxy.host(), "a/one");
    let listed = client.list_tags(&via_proxy, Some(2)).await.unwrap();
    assert_eq!(listed, tags);
    let pages: Vec<String> =
        proxy.log().iter().filter(|l| l.path.ends_with("/tags/list")).map(|l| l.query.clone()).collect();
    assert_eq!(pages, ["n=2", "n=2&last=v2", "n=2&last=v4"]);
    let err = client.list_tags(&repo(&registry.host(), "no/such"), None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { what: Missing::Repository, .. }), "{err:?}");

    // The catalog paginates in Distribution itself.
    proxy.clear_log();
    let catalog = client.catalog(&proxy.host(), Some(2)).await.unwrap();
    assert_eq!(catalog, ["a/one", "b/two", "c/three", "d/four", "e/five"]);
    assert_eq!(proxy.count(Method::GET, "/v2/_catalog"), 3);
    assert_eq!(client.catalog(&registry.host(), None).await.unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn blobs_mount_across_repositories_or_fall_back_to_an_upload() {
    let registry = Distribution::start().await;
    let client = client();
    let source = repo(&registry.host(), "src/app");
    let target = repo(&registry.host(), "dst/app");
    let blob = Blob::random(200_000);
    client.push_blob(&source, &blob.digest, blob.size(), blob.stream()).await.unwrap();

    assert_eq!(client.mount_blob(&target, &blob.digest, "src/app").await.unwrap(), MountOutcome::Mounted);
    assert_eq!(client.head_blob(&target, &blob.digest).await.unwrap(), Some(blob.size()));

    // From a repository that lacks the blob: the registry opens an upload, which we continue.
    let other = Blob::random(300_000);
    let third = repo(&registry.host(), "dst/other");
    let MountOutcome::NotMounted { upload_location } =
        client.mount_blob(&third, &other.digest, "src/app").await.unwrap()
    else {
        panic!("mounted a blob the source does not have");
    };
    assert_eq!(upload_location.repo(), &third);
    client.push_blob_to(upload_location, &other.digest, other.size(), other.stream()).await.unwrap();
    assert!(read_all(client.get_blob(&third, &other.digest, 0).await.unwrap()).await == other.bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn ping_tells_wrong_credentials_from_unreachable_and_from_not_a_registry() {
    let registry = Distribution::start_with_basic_auth("alice", "wonderland").await;
    let host = registry.host();

    let good = client_with_credentials(&host, "alice", "wonderland");
    good.ping(&host).await.unwrap();
    // Basic auth works for every operation, not only the ping.
    let image = Image::random("amd64", &[42]);
    let app = repo(&host, "private/app");
    image.push(&good, &app, Some("1.0")).await;
    assert_eq!(good.get_manifest(&app, &"1.0".parse().unwrap()).await.unwrap().bytes, image.manifest.bytes);

    let wrong = client_with_credentials(&host, "alice", "not-the-password");
    let err = wrong.ping(&host).await.unwrap_err();
    assert!(matches!(&err, Error::Unauthorized { username: Some(u), .. } if u == "alice"), "{err:?}");
    assert!(!err.to_string().contains("not-the-password"), "{err}");

    let anonymous = client();
    let err = anonymous.ping(&host).await.unwrap_err();
    assert!(matches!(&err, Error::Unauthorized { username: None, .. }), "{err:?}");
    let err = anonymous.head_blob(&app, &image.config.digest).await.unwrap_err();
    assert!(matches!(&err, Error::Unauthorized { .. }), "{err:?}");

    // Nothing listens on the port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let err = anonymous.ping(&closed.to_string()).await.unwrap_err();
    assert!(matches!(&err, Error::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());

    // Something that is not a registry.
    let (listener, web) = Server::bind().await;
    let site =
        Server::serve(listener, axum::Router::new().fallback(|| async { (StatusCode::NOT_FOUND, "<html>no</html>") }));
    let err = anonymous.ping(&web.to_string()).await.unwrap_err();
    assert!(matches!(&err, Error::NotARegistry { .. }), "{err:?}");
    drop(site);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_blob_never_lands_and_its_upload_is_cancelled() {
    let registry = Distribution::start().await;
    let proxy = Proxy::start(&registry.host(), ProxyOptions::default()).await;
    let client = client();
    let app = repo(&proxy.host(), "corrupt");
    let actual = Blob::random(700_000);
    let claimed = Blob::random(700_000).digest;

    // Our own check: the stream ends in an error before its last chunk.
    let stream = verify_digest(actual.stream(), claimed.clone());
    let err = client.push_blob(&app, &claimed, actual.size(), stream).await.unwrap_err();
    match &err {
        Error::DigestMismatch { expected, actual: got } => {
            assert_eq!(expected, &claimed);
            assert_eq!(got, &actual.digest);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(client.head_blob(&app, &claimed).await.unwrap(), None);
    assert_eq!(client.head_blob(&app, &actual.digest).await.unwrap(), None);
    assert_eq!(proxy.count(Method::DELETE, "/blobs/uploads/"), 1, "the upload was not cancelled");

    // Without our check, the registry's own (`digest=`) refuses it.
    let err = client.push_blob(&app, &claimed, actual.size(), actual.stream()).await.unwrap_err();
    assert!(matches!(&err, Error::Protocol { status: 400, code: Some(c), .. } if c == "DIGEST_INVALID"), "{err:?}");
    assert_eq!(client.head_blob(&app, &claimed).await.unwrap(), None);

    // A stream shorter or longer than announced.
    for size in [actual.size() + 10, actual.size() - 10] {
        let err = client.push_blob(&app, &actual.digest, size, actual.stream()).await.unwrap_err();
        assert!(matches!(err, Error::SizeMismatch { expected, .. } if expected == size), "{err:?}");
        assert_eq!(client.head_blob(&app, &actual.digest).await.unwrap(), None);
    }

    // A stream that fails midway.
    let failing = stream::iter(vec![
        Ok(actual.bytes.slice(..1000)),
        Err(Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "source went away"))),
    ]);
    let err = client.push_blob(&app, &actual.digest, actual.size(), failing).await.unwrap_err();
    assert!(matches!(&err, Error::Io(e) if e.to_string() == "source went away"), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(client.head_blob(&app, &actual.digest).await.unwrap(), None);

    // And the good stream goes through.
    client
        .push_blob(&app, &actual.digest, actual.size(), verify_digest(actual.stream(), actual.digest.clone()))
        .await
        .unwrap();
    assert_eq!(client.head_blob(&app, &actual.digest).await.unwrap(), Some(actual.size()));
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_failures_are_retried_within_bounds_but_uploads_are_not_replayed() {
    let registry = Distribution::start().await;
    let proxy = Proxy::start(&registry.host(), ProxyOptions::default()).await;
    let client = client();
    let app = repo(&proxy.host(), "flaky");
    let blob = Blob::random(1000);
    client.push_blob(&app, &blob.digest, blob.size(), blob.stream()).await.unwrap();

    // Two 503s, then the real answer.
    proxy.clear_log();
    proxy.fault(None, 503, None);
    proxy.fault(None, 503, None);
    assert_eq!(client.head_blob(&app, &blob.digest).await.unwrap(), Some(1000));
    assert_eq!(proxy.count(Method::HEAD, "/blobs/"), 3);

    // A 429 asking for a second's patience is given it.
    proxy.fault(None, 429, Some("1"));
    let started = Instant::now();
    assert_eq!(client.head_blob(&app, &blob.digest).await.unwrap(), Some(1000));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(950), "retried after {waited:?}");

    // Retry-After is capped by max_delay for a 503.
    let impatient = RegistryClient::new(ClientConfig {
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(200),
        },
        ..config()
    })
    .unwrap();
    proxy.fault(None, 503, Some("3600"));
    let started = Instant::now();
    assert_eq!(impatient.head_blob(&app, &blob.digest).await.unwrap(), Some(1000));
    assert!(started.elapsed() < Duration::from_secs(5), "waited {:?}", started.elapsed());

    // A 429 asking for longer than a retry may wait is not retried sooner, which would spend quota:
    // it is returned at once with the registry's delay, for the job to wait out.
    proxy.clear_log();
    proxy.fault(None, 429, Some("3600"));
    let started = Instant::now();
    let err = impatient.head_blob(&app, &blob.digest).await.unwrap_err();
    assert!(
        matches!(err, Error::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(3600)),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(proxy.count(Method::HEAD, "/blobs/"), 1, "one request, no retry");
    assert!(started.elapsed() < Duration::from_secs(1), "waited {:?}", started.elapsed());
    // With the default policy too (30 s at most): a minute is returned at once.
    proxy.clear_log();
    proxy.fault(None, 429, Some("60"));
    let err = client.head_blob(&app, &blob.digest).await.unwrap_err();
    assert!(matches!(err, Error::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(60)), "{err:?}");
    assert_eq!(proxy.count(Method::HEAD, "/blobs/"), 1);

    // ... and attempts are bounded.
    proxy.clear_log();
    for _ in 0..5 {
        proxy.fault(None, 503, None);
    }
    let err = impatient.head_blob(&app, &blob.digest).await.unwrap_err();
    assert!(matches!(err, Error::Protocol { status: 503, .. }), "{err:?}");
    assert!(err.is_transient());
    assert_eq!(proxy.count(Method::HEAD, "/blobs/"), 3);
    proxy.state.faults.lock().unwrap().clear();
    proxy.fault(None, 429, None);
    proxy.fault(None, 429, None);
    proxy.fault(None, 429, Some("1"));
    let err = impatient.head_blob(&app, &blob.digest).await.unwrap_err();
    assert!(matches!(err, Error::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(1)), "{err:?}");

    // A failed streaming PUT is reported, not replayed; the caller retries the whole blob.
    let other = Blob::random(50_000);
    proxy.clear_log();
    proxy.fault(Some(Method::POST), 503, None);
    proxy.fault(Some(Method::PUT), 503, None);
    let err = client.push_blob(&app, &other.digest, other.size(), other.stream()).await.unwrap_err();
    assert!(matches!(err, Error::Protocol { status: 503, .. }) && err.is_transient(), "{err:?}");
    assert_eq!(proxy.count(Method::POST, "/blobs/uploads/"), 2, "the POST is replayable and was retried");
    assert_eq!(proxy.count(Method::PUT, "/blobs/uploads/"), 1, "the streaming PUT was replayed");
    assert_eq!(client.head_blob(&app, &other.digest).await.unwrap(), None);
    client.push_blob(&app, &other.digest, other.size(), other.stream()).await.unwrap();
    assert_eq!(client.head_blob(&app, &other.digest).await.unwrap(), Some(other.size()));

    // A manifest PUT (bytes in memory, idempotent) is retried.
    let image = Image::random("amd64", &[10]);
    for blob in image.layers.iter().chain([&image.config]) {
        client.push_blob(&app, &blob.digest, blob.size(), blob.stream()).await.unwrap();
    }
    proxy.fault(Some(Method::PUT), 502, None);
    let digest = client
        .put_manifest(&app, &"t".parse().unwrap(), media_type::OCI_MANIFEST, image.manifest.bytes.clone())
        .await
        .unwrap();
    assert_eq!(digest, image.manifest.digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn bearer_tokens_are_fetched_once_per_scope_and_stay_off_storage_hosts() {
    let registry = Distribution::start().await;
    let tokens = TokenServer::start("bob", "builder").await;
    let storage = Proxy::start(&registry.host(), ProxyOptions::default()).await;
    let proxy = Proxy::start(
        &registry.host(),
        ProxyOptions {
            tokens: Some(tokens.state.clone()),
            redirect_blobs_to: Some(storage.url()),
            ..ProxyOptions::default()
        },
    )
    .await;
    let host = proxy.host();
    let client = client_with_credentials(&host, "bob", "builder");
    let app = repo(&host, "secure/app");
    let push = "repository:secure/app:pull,push";
    let pull = "repository:secure/app:pull";

    client.ping(&host).await.unwrap();
    assert_eq!(tokens.state.hits_for(&[]), 1);

    let image = Image::random("amd64", &[300_000, 20]);
    image.push(&client, &app, Some("1")).await;
    assert_eq!(tokens.state.hits_for(&[push]), 1, "hits: {:?}", tokens.state.hits());

    for _ in 0..3 {
        let manifest = client.get_manifest(&app, &"1".parse().unwrap()).await.unwrap();
        assert_eq!(manifest.bytes, image.manifest.bytes);
        assert!(client.head_manifest(&app, &"1".parse().unwrap()).await.unwrap().is_some());
        assert_eq!(client.list_tags(&app, None).await.unwrap(), ["1"]);
    }
    assert_eq!(tokens.state.hits_for(&[pull]), 1, "hits: {:?}", tokens.state.hits());
    // Only the very first request of all met a challenge; later ones came with their token.
    let challenged = proxy.log().iter().filter(|l| l.authorization.is_none()).count();
    assert_eq!(challenged, 1, "{:?}", proxy.log());

    // Blob downloads are redirected to a storage host, which never sees our token.
    let layer = &image.layers[0];
    storage.clear_log();
    let data = read_all(client.get_blob(&app, &layer.digest, 0).await.unwrap()).await;
    assert!(data == layer.bytes);
    let resumed = read_all(client.get_blob(&app, &layer.digest, 1000).await.unwrap()).await;
    assert!(resumed == layer.bytes[1000..]);
    let storage_log = storage.log();
    assert_eq!(storage_log.len(), 2, "{storage_log:?}");
    assert!(storage_log.iter().all(|l| l.authorization.is_none()), "{storage_log:?}");
    assert!(proxy.log().iter().filter(|l| l.path.contains("/blobs/sha256:")).all(|l| l.authorization.is_some()));

    // A mount asks for one token covering both repositories.
    let other = repo(&host, "secure/other");
    assert_eq!(client.mount_blob(&other, &layer.digest, "secure/app").await.unwrap(), MountOutcome::Mounted);
    assert_eq!(client.mount_blob(&other, &image.layers[1].digest, "secure/app").await.unwrap(), MountOutcome::Mounted);
    assert_eq!(tokens.state.hits_for(&["repository:secure/other:pull,push", pull]), 1, "{:?}", tokens.state.hits());

    // The catalog has its own scope.
    client.catalog(&host, None).await.unwrap();
    assert_eq!(tokens.state.hits_for(&["registry:catalog:*"]), 1);

    // Wrong credentials: the token endpoint refuses them.
    let wrong = client_with_credentials(&host, "bob", "wrong");
    let err = wrong.ping(&host).await.unwrap_err();
    assert!(matches!(&err, Error::Unauthorized { username: Some(u), .. } if u == "bob"), "{err:?}");
    assert!(!err.to_string().contains("wrong"), "{err}");

    // Tokens are kept per account: a view with other credentials (or none) never gets the token the
    // configured account holds for the same scope, and the configured client is untouched by views.
    let login = |password: &str| RegistryAccess::Login {
        username: "bob".into(),
        password: image_core::kube::Secret::new(password),
        insecure: false,
    };
    let tag: registry_client::ManifestRef = "1".parse().unwrap();
    let intruder = client.with_access(&host, &login("wrong"));
    let err = intruder.get_manifest(&app, &tag).await.unwrap_err();
    assert!(matches!(&err, Error::Unauthorized { username: Some(u), .. } if u == "bob"), "{err:?}");
    let err = client.with_access(&host, &RegistryAccess::Anonymous).head_manifest(&app, &tag).await.unwrap_err();
    assert!(matches!(&err, Error::Unauthorized { username: None, .. }), "{err:?}");
    assert_eq!(client.get_manifest(&app, &tag).await.unwrap().bytes, image.manifest.bytes);
    // The same account through a view shares its tokens: no new fetch.
    let same = client.with_access(&host, &login("builder"));
    assert_eq!(same.get_manifest(&app, &tag).await.unwrap().bytes, image.manifest.bytes);
    assert_eq!(tokens.state.hits_for(&[pull]), 1, "hits: {:?}", tokens.state.hits());
    // A view's credentials stay in the view: the client it came from is still anonymous afterwards.
    let anonymous = self::client();
    let found = anonymous.with_access(&host, &login("builder")).head_manifest(&app, &tag).await;
    assert!(found.unwrap().is_some());
    assert!(anonymous.head_manifest(&app, &tag).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_monolithic_uploads_fall_back_to_chunks() {
    let registry = Distribution::start().await;
    let proxy = Proxy::start(
        &registry.host(),
        ProxyOptions { refuse_monolithic: true, relative_locations: true, ..ProxyOptions::default() },
    )
    .await;
    let client = RegistryClient::new(ClientConfig { upload_chunk_size: 256 * 1024, ..config() }).unwrap();
    let app = repo(&proxy.host(), "chunky");

    let first = Blob::random(1024 * 1024 + 7);
    client.push_blob(&app, &first.digest, first.size(), first.stream()).await.unwrap();
    assert!(read_all(client.get_blob(&app, &first.digest, 0).await.unwrap()).await == first.bytes);
    assert_eq!(proxy.count(Method::PATCH, "/blobs/uploads/"), 5);
    let puts_with_data =
        || proxy.log().iter().filter(|l| l.method == Method::PUT && l.path.contains("/blobs/uploads/")).count();
    assert_eq!(puts_with_data(), 2, "one refused monolithic PUT, one closing PUT");

    // The registry is remembered as chunked-only.
    proxy.clear_log();
    let second = Blob::random(300_000);
    client.push_blob(&app, &second.digest, second.size(), second.stream()).await.unwrap();
    assert_eq!(proxy.count(Method::PATCH, "/blobs/uploads/"), 2);
    assert_eq!(puts_with_data(), 1);
    assert_eq!(client.head_blob(&app, &second.digest).await.unwrap(), Some(second.size()));

    // An empty blob needs no PATCH at all.
    let empty = Blob::new(Bytes::new());
    client.push_blob(&app, &empty.digest, 0, empty.stream()).await.unwrap();
    assert_eq!(client.head_blob(&app, &empty.digest).await.unwrap(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_rate_limit_fails_manifest_gets_fast() {
    let registry = Distribution::start().await;
    let proxy = Proxy::start(&registry.host(), ProxyOptions::default()).await;
    let client = client();
    let app = repo(&proxy.host(), "limited");
    let image = Image::random("amd64", &[10]);
    image.push(&client, &app, Some("1")).await;
    assert_eq!(client.last_rate_limit(&proxy.host()), None);

    proxy.set_rate_limit(Some("0;w=21600"));
    proxy.clear_log();
    assert!(client.head_manifest(&app, &"1".parse().unwrap()).await.unwrap().is_some());
    let limit = client.last_rate_limit(&proxy.host()).unwrap();
    assert_eq!((limit.limit, limit.remaining, limit.window), (Some(100), 0, Some(Duration::from_secs(21600))));
    let err = client.get_manifest(&app, &"1".parse().unwrap()).await.unwrap_err();
    assert!(matches!(err, Error::RateLimited { .. }), "{err:?}");
    assert_eq!(proxy.count(Method::GET, "/manifests/"), 0, "a GET spent quota that was not there");
    assert_eq!(proxy.count(Method::HEAD, "/manifests/"), 2);

    // Once a HEAD shows quota again, GETs go ahead.
    proxy.set_rate_limit(Some("5;w=21600"));
    let manifest = client.get_manifest(&app, &"1".parse().unwrap()).await.unwrap();
    assert_eq!(manifest.bytes, image.manifest.bytes);
    assert_eq!(client.last_rate_limit(&proxy.host()).unwrap().remaining, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn schema1_wrong_bytes_and_missing_digest_headers_are_handled() {
    let registry = Distribution::start().await;
    let client = client();
    let image = Image::random("amd64", &[10]);
    image.push(&client, &repo(&registry.host(), "old/app"), Some("current")).await;

    let schema1 = r#"{"schemaVersion":1,"name":"old/app","tag":"v1","fsLayers":[],"history":[],"signatures":[]}"#;
    let impostor = Blob::random(8).digest;
    let mut canned = HashMap::new();
    canned.insert(
        "/v2/old/app/manifests/v1".to_owned(),
        (media_type::DOCKER_SCHEMA1_SIGNED.to_owned(), schema1.to_owned()),
    );
    canned.insert("/v2/old/app/manifests/v2".to_owned(), ("application/json".to_owned(), schema1.to_owned()));
    // Bytes that do not hash to the digest they are served under.
    canned.insert(format!("/v2/old/app/manifests/{impostor}"), (media_type::OCI_MANIFEST.to_owned(), "{}".to_owned()));
    let proxy = Proxy::start(
        &registry.host(),
        ProxyOptions { canned, strip_headers: vec!["docker-content-digest"], ..ProxyOptions::default() },
    )
    .await;
    let app = repo(&proxy.host(), "old/app");

    for tag in ["v1", "v2"] {
        let err = client.get_manifest(&app, &tag.parse().unwrap()).await.unwrap_err();
        assert!(matches!(&err, Error::UnsupportedSchema1 { media_type, .. } if media_type.contains("v1+")), "{err:?}");
        assert!(err.to_string().contains("schema 1"), "{err}");
    }

    let err = client.get_manifest(&app, &ManifestRef::from(&impostor)).await.unwrap_err();
    assert!(matches!(&err, Error::DigestMismatch { expected, .. } if expected == &impostor), "{err:?}");

    // Without Docker-Content-Digest, HEAD falls back to GET and hashes.
    proxy.clear_log();
    let head = client.head_manifest(&app, &"current".parse().unwrap()).await.unwrap().unwrap();
    assert_eq!((head.digest, head.size), (image.manifest.digest.clone(), image.manifest.size()));
    assert_eq!(head.media_type, media_type::OCI_MANIFEST);
    assert_eq!((proxy.count(Method::HEAD, "/manifests/"), proxy.count(Method::GET, "/manifests/")), (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_config_credentials_drive_the_client() {
    use base64::Engine as _;
    let registry = Distribution::start_with_basic_auth("carol", "s3cret").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let auth = base64::engine::general_purpose::STANDARD.encode("carol:s3cret");
    std::fs::write(&path, format!(r#"{{"auths": {{"http://{}/v2/": {{"auth": "{auth}"}}}}}}"#, registry.host()))
        .unwrap();
    let credentials = registry_client::load_docker_config(&path).unwrap();
    let client = RegistryClient::new(ClientConfig { credentials, ..config() }).unwrap();
    client.ping(&registry.host()).await.unwrap();
    assert!(client.catalog(&registry.host(), None).await.unwrap().is_empty());
}
