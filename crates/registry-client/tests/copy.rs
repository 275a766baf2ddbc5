//! `CopyEngine` against real CNCF Distribution registries (from `test-support`), with images the
//! tests generate and, where a test needs what Distribution does not do (corrupt bytes, injected
//! 503s, refused mounts, a schema 1 manifest, request counts), a small proxy in front of them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, StreamExt as _, stream};
use image_core::copy::{CopyErrorKind, CopyOutcome, CopyProgress, CopyRequest, ImageCopier, RegistryAccess};
use image_core::import::{Artifact, BlobCopy, LayerProgress, LayerState};
use image_core::{Digest, Reference};
use registry_client::{
    ClientConfig, CopyConfig, CopyEngine, Credential, RegistryClient, Repo, RetryPolicy, media_type,
};
use serde_json::json;
use sha2::Digest as _;
use test_support::Distribution;

mod common;

use common::{Blob, Image, OCI_CONFIG, OCI_LAYER, Server, push_index};

// ---- clients and references ---------------------------------------------------------------

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

fn client() -> Arc<RegistryClient> {
    Arc::new(RegistryClient::new(config()).unwrap())
}

fn engine(client: &Arc<RegistryClient>, blob_concurrency: usize) -> CopyEngine {
    CopyEngine::new(client.clone(), CopyConfig { blob_concurrency })
}

fn repo(host: &str, name: &str) -> Repo {
    Repo::new(host, name).unwrap()
}

fn reference(s: &str) -> Reference {
    s.parse().unwrap()
}

fn request(source: &str, target: &str, platforms: &[&str]) -> CopyRequest {
    CopyRequest {
        source: reference(source),
        source_access: RegistryAccess::Configured,
        target: reference(target),
        platforms: platforms.iter().map(|p| p.parse().unwrap()).collect(),
    }
}

async fn manifest_bytes(client: &RegistryClient, repo: &Repo, reference: &str) -> Bytes {
    client.get_manifest(repo, &reference.parse().unwrap()).await.unwrap().bytes
}

fn counts(outcome: &CopyOutcome) -> (u64, u64, u64) {
    (outcome.blobs_copied, outcome.blobs_skipped, outcome.blobs_mounted)
}

// ---- progress -----------------------------------------------------------------------------

/// Records every call, checking as it goes that a blob never moves once completed.
#[derive(Default)]
struct Recorder {
    resolved: Mutex<Vec<(Digest, Vec<Artifact>)>>,
    layers: Mutex<Vec<LayerProgress>>,
}

impl CopyProgress for Recorder {
    fn resolved(&self, digest: &Digest, artifacts: &[Artifact]) {
        self.resolved.lock().unwrap().push((digest.clone(), artifacts.to_vec()));
    }

    fn layer(&self, progress: &LayerProgress) {
        let mut layers = self.layers.lock().unwrap();
        let previous = layers.iter().rev().find(|l| l.digest == progress.digest);
        assert!(
            previous.is_none_or(|p| p.state != LayerState::Completed),
            "{} reported after it completed: {progress:?}",
            progress.digest
        );
        layers.push(progress.clone());
    }
}

impl Recorder {
    fn artifacts(&self) -> Vec<Artifact> {
        let resolved = self.resolved.lock().unwrap();
        assert_eq!(resolved.len(), 1, "resolved() is called once");
        resolved[0].1.clone()
    }

    fn events(&self, digest: &Digest) -> Vec<LayerProgress> {
        self.layers.lock().unwrap().iter().filter(|l| &l.digest == digest).cloned().collect()
    }

    /// Every blob reported: first Waiting (once), last Completed; returns how each arrived.
    fn completed(&self) -> HashMap<Digest, BlobCopy> {
        let layers = self.layers.lock().unwrap().clone();
        let digests: HashSet<Digest> = layers.iter().map(|l| l.digest.clone()).collect();
        let mut via = HashMap::new();
        for digest in digests {
            let events: Vec<&LayerProgress> = layers.iter().filter(|l| l.digest == digest).collect();
            assert_eq!(events[0].state, LayerState::Waiting, "{digest}: {events:?}");
            let last = events.last().unwrap();
            assert_eq!(last.state, LayerState::Completed, "{digest}: {events:?}");
            assert_eq!(last.done, last.size, "{digest}");
            assert!(events.iter().all(|e| e.done <= e.size), "{digest}: {events:?}");
            via.insert(digest, last.via.unwrap());
        }
        via
    }
}

fn artifact_platforms(artifacts: &[Artifact]) -> Vec<String> {
    let mut platforms: Vec<String> = artifacts
        .iter()
        .map(|a| format!("{}/{}", a.os.as_deref().unwrap_or("?"), a.architecture.as_deref().unwrap_or("?")))
        .collect();
    platforms.sort();
    platforms
}

// ---- a proxy in front of a registry -------------------------------------------------------

#[derive(Default)]
struct ProxyOptions {
    /// Flip a byte of this blob in GET answers.
    corrupt: Option<Digest>,
    /// Forward mount requests without `mount` and `from`, so the registry opens an upload instead.
    refuse_mounts: bool,
    /// Fixed answers by path: (content type, body).
    canned: HashMap<String, (String, String)>,
}

struct ProxyState {
    upstream: String,
    upstream_host: String,
    self_host: String,
    options: ProxyOptions,
    /// Answer 503 to the next N GETs of a blob.
    fail_blob: Mutex<Option<(Digest, usize)>>,
    log: Mutex<Vec<(Method, String)>>,
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
            fail_blob: Mutex::default(),
            log: Mutex::default(),
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        });
        let app = axum::Router::new().fallback(proxy_handler).with_state(state.clone());
        Proxy { state, _server: Server::serve(listener, app) }
    }

    fn host(&self) -> String {
        self.state.self_host.clone()
    }

    fn log(&self) -> Vec<(Method, String)> {
        self.state.log.lock().unwrap().clone()
    }

    fn clear_log(&self) {
        self.state.log.lock().unwrap().clear();
    }

    fn count(&self, method: Method, path_contains: &str) -> usize {
        self.log().iter().filter(|(m, p)| *m == method && p.contains(path_contains)).count()
    }
}

async fn proxy_handler(State(st): State<Arc<ProxyState>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    st.log.lock().unwrap().push((method.clone(), path.clone()));

    if let Some((content_type, body)) = st.options.canned.get(&path) {
        return ([(header::CONTENT_TYPE, content_type.clone())], body.clone()).into_response();
    }
    let blob_get = |digest: &Digest| method == Method::GET && path.ends_with(&format!("/blobs/{digest}"));
    {
        let mut fail = st.fail_blob.lock().unwrap();
        if let Some((digest, left)) = fail.as_mut()
            && *left > 0
            && blob_get(digest)
        {
            *left -= 1;
            return (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "application/json")], "{}")
                .into_response();
        }
    }
    let corrupt = st.options.corrupt.as_ref().is_some_and(blob_get);
    forward(&st, req, corrupt).await
}

async fn forward(st: &ProxyState, req: Request, corrupt: bool) -> Response {
    let (parts, body) = req.into_parts();
    let mut path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    if st.options.refuse_mounts
        && parts.method == Method::POST
        && let Some((path, query)) = path_and_query.split_once('?')
        && query.contains("mount=")
    {
        path_and_query = path.to_owned();
    }
    let url = format!("{}{path_and_query}", st.upstream);
    let mut builder = st.http.request(parts.method.clone(), url);
    for (name, value) in &parts.headers {
        if !matches!(name.as_str(), "host" | "connection" | "transfer-encoding" | "keep-alive") {
            builder = builder.header(name, value);
        }
    }
    if parts.headers.contains_key(header::CONTENT_LENGTH) || parts.headers.contains_key(header::TRANSFER_ENCODING) {
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
        if name == header::LOCATION || name == header::WWW_AUTHENTICATE {
            out = out.header(name, value.to_str().unwrap().replace(&st.upstream_host, &st.self_host));
        } else {
            out = out.header(name, value);
        }
    }
    if parts.method == Method::HEAD {
        return out.body(Body::empty()).unwrap();
    }
    let mut first = corrupt;
    let body = upstream.bytes_stream().map(move |chunk| {
        chunk.map(|chunk| {
            if std::mem::take(&mut first) && !chunk.is_empty() {
                let mut flipped = chunk.to_vec();
                flipped[0] ^= 0xff;
                Bytes::from(flipped)
            } else {
                chunk
            }
        })
    });
    out.body(Body::from_stream(body)).unwrap()
}

// ---- tests --------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_single_platform_image_is_copied_byte_for_byte() {
    let (src, dst) = tokio::join!(Distribution::start(), Distribution::start());
    let client = client();
    let image = Image::with_layers("linux", "amd64", vec![Blob::random(1000), Blob::random(300_000)], true);
    image.push(&client, &repo(&src.host(), "team/app"), Some("1.0")).await;

    let recorder = Recorder::default();
    let req = request(&format!("{}/team/app:1.0", src.host()), &format!("{}/mirror/app:1.0", dst.host()), &[]);
    let outcome = engine(&client, 4).copy_image(&req, &recorder).await.unwrap();

    assert_eq!(outcome.digest, image.manifest.digest);
    assert_eq!(counts(&outcome), (3, 0, 0));
    assert_eq!(outcome.bytes_copied, image.blobs().map(Blob::size).sum::<u64>());
    let target = repo(&dst.host(), "mirror/app");
    assert_eq!(manifest_bytes(&client, &target, "1.0").await, image.manifest.bytes);
    let head = client.head_manifest(&target, &"1.0".parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(head.media_type, media_type::DOCKER_MANIFEST);
    for blob in image.blobs() {
        assert_eq!(client.head_blob(&target, &blob.digest).await.unwrap(), Some(blob.size()));
    }

    // The artifact's platform comes from the config.
    let artifacts = recorder.artifacts();
    assert_eq!(outcome.artifacts, artifacts);
    assert_eq!(artifacts.len(), 1);
    let a = &artifacts[0];
    assert_eq!(
        (a.os.as_deref(), a.architecture.as_deref(), a.variant.as_deref()),
        (Some("linux"), Some("amd64"), None)
    );
    assert_eq!((&a.digest, a.media_type.as_str()), (&image.manifest.digest, media_type::DOCKER_MANIFEST));
    assert_eq!(a.size, image.blobs().map(Blob::size).sum::<u64>());
    let via = recorder.completed();
    assert_eq!(via.len(), 3);
    assert!(via.values().all(|v| *v == BlobCopy::Copied), "{via:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_index_is_copied_whole_with_shared_layers_once_and_its_digest_kept() {
    let (src, dst) = tokio::join!(Distribution::start(), Distribution::start());
    let client = client();
    let source = repo(&src.host(), "team/multi");
    let shared = Blob::random(200_000);
    let amd64 = Image::with_layers("linux", "amd64", vec![shared.clone(), Blob::random(1000)], false);
    let arm64 = Image::with_layers("linux", "arm64", vec![shared.clone(), Blob::random(2000)], false);
    let attestation = Image::with_layers("unknown", "unknown", vec![Blob::random(300)], false);
    let index = push_index(
        &client,
        &source,
        "v1",
        &[(&amd64, "linux/amd64"), (&arm64, "linux/arm64/v8"), (&attestation, "unknown/unknown")],
    )
    .await;

    let recorder = Recorder::default();
    let req = request(&format!("{}/team/multi:v1", src.host()), &format!("{}/mirror/multi:v1", dst.host()), &[]);
    let outcome = engine(&client, 4).copy_image(&req, &recorder).await.unwrap();

    assert_eq!(outcome.digest, index.digest);
    assert_eq!(outcome.created.as_deref(), Some(common::CREATED), "the first platform's config says when");
    // 3 configs, the shared layer once, 2 platform layers, 1 attestation layer.
    assert_eq!(counts(&outcome), (7, 0, 0));
    let target = repo(&dst.host(), "mirror/multi");
    assert_eq!(manifest_bytes(&client, &target, "v1").await, index.bytes);
    for image in [&amd64, &arm64, &attestation] {
        assert_eq!(manifest_bytes(&client, &target, image.manifest.digest.as_str()).await, image.manifest.bytes);
        for blob in image.blobs() {
            assert!(client.head_blob(&target, &blob.digest).await.unwrap().is_some());
        }
    }

    // Artifacts: the two platforms, not the attestation; platforms from the index.
    let artifacts = recorder.artifacts();
    assert_eq!(artifact_platforms(&artifacts), ["linux/amd64", "linux/arm64"]);
    let arm = artifacts.iter().find(|a| a.architecture.as_deref() == Some("arm64")).unwrap();
    assert_eq!((&arm.digest, arm.variant.as_deref()), (&arm64.manifest.digest, Some("v8")));
    assert_eq!(arm.size, arm64.blobs().map(Blob::size).sum::<u64>());
    assert_eq!(recorder.completed().len(), 7);
    let waiting = recorder.events(&shared.digest).iter().filter(|e| e.state == LayerState::Waiting).count();
    assert_eq!(waiting, 1, "the shared layer is one blob of the copy");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_platform_filter_copies_and_tags_one_platform() {
    let (src, dst) = tokio::join!(Distribution::start(), Distribution::start());
    let client = client();
    let source = repo(&src.host(), "team/multi");
    let amd64 = Image::random("amd64", &[1000]);
    let arm64 = Image::random("arm64", &[2000, 3000]);
    let s390x = Image::random("s390x", &[4000]);
    let index = push_index(
        &client,
        &source,
        "v1",
        &[(&amd64, "linux/amd64"), (&arm64, "linux/arm64"), (&s390x, "linux/s390x")],
    )
    .await;
    let engine = engine(&client, 4);
    let target = repo(&dst.host(), "mirror/multi");

    // One platform: its manifest, tagged; the index and the other platforms stay behind.
    let recorder = Recorder::default();
    let req = request(
        &format!("{}/team/multi:v1", src.host()),
        &format!("{}/mirror/multi:arm", dst.host()),
        &["linux/arm64"],
    );
    let outcome = engine.copy_image(&req, &recorder).await.unwrap();
    assert_eq!(outcome.digest, arm64.manifest.digest);
    assert_eq!(counts(&outcome), (3, 0, 0));
    assert_eq!(artifact_platforms(&recorder.artifacts()), ["linux/arm64"]);
    assert_eq!(manifest_bytes(&client, &target, "arm").await, arm64.manifest.bytes);
    for absent in [&amd64.manifest.digest, &s390x.manifest.digest, &index.digest] {
        assert_eq!(client.head_manifest(&target, &absent.into()).await.unwrap(), None);
    }
    for blob in amd64.blobs() {
        assert_eq!(client.head_blob(&target, &blob.digest).await.unwrap(), None);
    }

    // Two of three: the whole index, so that it keeps its digest.
    let req = request(
        &format!("{}/team/multi:v1", src.host()),
        &format!("{}/mirror/multi:two", dst.host()),
        &["linux/amd64", "linux/arm64"],
    );
    let outcome = engine.copy_image(&req, &Recorder::default()).await.unwrap();
    assert_eq!(outcome.digest, index.digest);
    assert_eq!(manifest_bytes(&client, &target, "two").await, index.bytes);
    assert_eq!(artifact_platforms(&outcome.artifacts), ["linux/amd64", "linux/arm64", "linux/s390x"]);
    assert_eq!(counts(&outcome), (4, 3, 0), "arm64's blobs were there already");

    // A platform the index does not have.
    let req = request(
        &format!("{}/team/multi:v1", src.host()),
        &format!("{}/mirror/multi:x", dst.host()),
        &["linux/riscv64"],
    );
    let err = engine.copy_image(&req, &Recorder::default()).await.unwrap_err();
    assert_eq!(err.kind, CopyErrorKind::Permanent);
    assert!(err.message.contains("no manifest for linux/riscv64"), "{}", err.message);

    // A single-platform source and a filter that does not match it.
    amd64.push(&client, &source, Some("single")).await;
    let req = request(
        &format!("{}/team/multi:single", src.host()),
        &format!("{}/mirror/multi:y", dst.host()),
        &["linux/arm64"],
    );
    let err = engine.copy_image(&req, &Recorder::default()).await.unwrap_err();
    assert_eq!(err.kind, CopyErrorKind::Permanent);
    assert!(err.message.contains("single-platform image for linux/amd64, not linux/arm64"), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn many_small_layers_are_copied_concurrently() {
    let (src, dst) = tokio::join!(Distribution::start(), Distribution::start());
    let client = client();
    let image = Image::random("amd64", &[64 * 1024; 30]);
    image.push(&client, &repo(&src.host(), "team/many"), Some("1")).await;

    let recorder = Recorder::default();
    let req = request(&format!("{}/team/many:1", src.host()), &format!("{}/mirror/many:1", dst.host()), &[]);
    let started = Instant::now();
    let outcome = engine(&client, 8).copy_image(&req, &recorder).await.unwrap();
    eprintln!("31 blobs copied in {:?}", started.elapsed());
    assert_eq!(counts(&outcome), (31, 0, 0));
    assert_eq!(outcome.bytes_copied, 30 * 64 * 1024 + image.config.size());
    assert_eq!(manifest_bytes(&client, &repo(&dst.host(), "mirror/many"), "1").await, image.manifest.bytes);
    assert_eq!(recorder.completed().len(), 31);
}

/// Pseudo-random bytes, generated chunk by chunk (xorshift), so that no one holds the whole.
fn generated(seed: u64, size: u64) -> impl Stream<Item = registry_client::Result<Bytes>> + Send + 'static {
    const CHUNK: u64 = 1024 * 1024;
    stream::unfold((seed | 1, 0u64), move |(mut state, offset)| async move {
        if offset >= size {
            return None;
        }
        let len = CHUNK.min(size - offset) as usize;
        let mut chunk = Vec::with_capacity(len + 8);
        while chunk.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.extend_from_slice(&state.to_le_bytes());
        }
        chunk.truncate(len);
        Some((Ok(Bytes::from(chunk)), (state, offset + len as u64)))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_layer_is_streamed_with_throttled_progress() {
    let (src, dst) = tokio::join!(Distribution::start(), Distribution::start());
    let client = client();
    let source = repo(&src.host(), "team/big");
    const SIZE: u64 = 64 * 1024 * 1024;
    let seed = rand::random::<u64>();
    let mut hasher = sha2::Sha256::new();
    let mut chunks = std::pin::pin!(generated(seed, SIZE));
    while let Some(chunk) = chunks.next().await {
        hasher.update(chunk.unwrap());
    }
    let layer = Digest::from_sha256_bytes(hasher.finalize().into());
    client.push_blob(&source, &layer, SIZE, generated(seed, SIZE)).await.unwrap();
    // A manifest around it, by hand (the layer is not a `Blob`).
    let config =
        Blob::new(serde_json::to_vec(&json!({"os": "linux", "architecture": "arm64", "variant": "v8"})).unwrap());
    client.push_blob(&source, &config.digest, config.size(), config.stream()).await.unwrap();
    let manifest = Blob::new(
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": config.descriptor(OCI_CONFIG),
            "layers": [{"mediaType": OCI_LAYER, "digest": layer.as_str(), "size": SIZE}],
        }))
        .unwrap(),
    );
    client
        .put_manifest(&source, &"big".parse().unwrap(), media_type::OCI_MANIFEST, manifest.bytes.clone())
        .await
        .unwrap();

    let recorder = Recorder::default();
    let req = request(&format!("{}/team/big:big", src.host()), &format!("{}/mirror/big:big", dst.host()), &[]);
    let started = Instant::now();
    let outcome = engine(&client, 4).copy_image(&req, &recorder).await.unwrap();
    let elapsed = started.elapsed();
    eprintln!("64 MiB copied in {elapsed:?}");
    assert_eq!(counts(&outcome), (2, 0, 0));
    assert_eq!(outcome.bytes_copied, SIZE + config.size());
    assert_eq!(client.head_blob(&repo(&dst.host(), "mirror/big"), &layer).await.unwrap(), Some(SIZE));
    let artifact = &recorder.artifacts()[0];
    assert_eq!((artifact.architecture.as_deref(), artifact.variant.as_deref()), (Some("arm64"), Some("v8")));
    assert_eq!(artifact.size, SIZE + config.size());

    // Progress moved forward, at most once per 100 ms (plus the first and the last report).
    let events = recorder.events(&layer);
    let downloading: Vec<u64> = events.iter().filter(|e| e.state == LayerState::Downloading).map(|e| e.done).collect();
    assert!(downloading.windows(2).all(|w| w[0] <= w[1]), "{downloading:?}");
    let bound = elapsed.as_millis() as usize / 100 + 2;
    assert!(downloading.len() <= bound, "{} reports in {elapsed:?}: {downloading:?}", downloading.len());
    assert_eq!(recorder.completed()[&layer], BlobCopy::Copied);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_re_copy_skips_everything_with_a_handful_of_requests() {
    let (src, dst) = tokio::join!(Distribution::start(), Distribution::start());
    let src_proxy = Proxy::start(&src.host(), ProxyOptions::default()).await;
    let dst_proxy = Proxy::start(&dst.host(), ProxyOptions::default()).await;
    let client = client();
    let source = repo(&src.host(), "team/warm");
    let amd64 = Image::random("amd64", &[1000, 2000]);
    let arm64 = Image::random("arm64", &[3000]);
    push_index(&client, &source, "v1", &[(&amd64, "linux/amd64"), (&arm64, "linux/arm64")]).await;
    amd64.push(&client, &source, Some("single")).await;
    let engine = engine(&client, 4);
    let copy = |tag: &str, platforms: &[&str]| {
        request(
            &format!("{}/team/warm:{}", src_proxy.host(), if tag == "single" { "single" } else { "v1" }),
            &format!("{}/mirror/warm:{tag}", dst_proxy.host()),
            platforms,
        )
    };

    for (tag, platforms, blobs, target_requests) in [
        // HEAD at the source; HEAD, GET index, GET 2 children, GET the first one's config at the target.
        ("v1", &[][..], 5, 5),
        // HEAD; HEAD, GET manifest, GET config.
        ("single", &[], 3, 3),
        // HEAD; HEAD, GET child, GET config: the engine remembers the index from the first copy.
        ("arm", &["linux/arm64"], 2, 3),
    ] {
        let first = engine.copy_image(&copy(tag, platforms), &Recorder::default()).await.unwrap();
        assert_eq!(first.blobs_copied + first.blobs_skipped + first.blobs_mounted, blobs, "{tag}");
        src_proxy.clear_log();
        dst_proxy.clear_log();

        let recorder = Recorder::default();
        let again = engine.copy_image(&copy(tag, platforms), &recorder).await.unwrap();
        assert_eq!(again.digest, first.digest);
        assert_eq!(again.artifacts, first.artifacts);
        assert_eq!(counts(&again), (0, blobs, 0), "{tag}");
        assert_eq!(recorder.artifacts(), first.artifacts);
        let via = recorder.completed();
        assert!(via.len() as u64 == blobs && via.values().all(|v| *v == BlobCopy::Skipped), "{tag}: {via:?}");
        assert_eq!(src_proxy.log(), [(Method::HEAD, src_proxy.log()[0].1.clone())], "{tag}: only a HEAD at the source");
        let target_log = dst_proxy.log();
        assert_eq!(target_log.len(), target_requests, "{tag}: {target_log:?}");
        assert!(target_log.iter().all(|(m, _)| *m == Method::GET || *m == Method::HEAD), "{tag}: {target_log:?}");
    }

    // A target that lost the manifest (and so its tags) gets it back; its blobs are still there.
    let target = repo(&dst.host(), "mirror/warm");
    client.delete_manifest(&target, &amd64.manifest.digest).await.unwrap();
    let again = engine.copy_image(&copy("single", &[]), &Recorder::default()).await.unwrap();
    assert_eq!(counts(&again), (0, 3, 0));
    assert_eq!(manifest_bytes(&client, &target, "single").await, amd64.manifest.bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn blobs_are_mounted_from_other_repositories_of_the_target() {
    let (src, dst) = tokio::join!(Distribution::start(), Distribution::start());
    let client = client();
    let image = Image::random("amd64", &[1000, 2000, 3000]);
    image.push(&client, &repo(&src.host(), "team/app"), Some("1")).await;
    let engine = engine(&client, 4);
    let from = format!("{}/team/app:1", src.host());

    let x = engine
        .copy_image(&request(&from, &format!("{}/x/app:1", dst.host()), &[]), &Recorder::default())
        .await
        .unwrap();
    assert_eq!(counts(&x), (4, 0, 0));
    let recorder = Recorder::default();
    let y = engine.copy_image(&request(&from, &format!("{}/y/app:1", dst.host()), &[]), &recorder).await.unwrap();
    assert_eq!(counts(&y), (0, 0, 4));
    assert_eq!(y.bytes_copied, 0);
    assert!(recorder.completed().values().all(|v| *v == BlobCopy::Mounted));
    assert_eq!(manifest_bytes(&client, &repo(&dst.host(), "y/app"), "1").await, image.manifest.bytes);

    // Within one registry, blobs are mounted from the source repository itself.
    let within = engine
        .copy_image(&request(&from, &format!("{}/team/copy:1", src.host()), &[]), &Recorder::default())
        .await
        .unwrap();
    assert_eq!(counts(&within), (0, 0, 4));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_within_one_registry_without_mounts_stays_within_its_request_slots() {
    let registry = Distribution::start().await;
    let proxy = Proxy::start(&registry.host(), ProxyOptions { refuse_mounts: true, ..ProxyOptions::default() }).await;
    // Three request slots: two transfers at once (two slots each) would deadlock.
    let client =
        Arc::new(RegistryClient::new(ClientConfig { max_concurrent_requests_per_registry: 3, ..config() }).unwrap());
    let image = Image::random("amd64", &[100_000; 12]);
    image.push(&client, &repo(&registry.host(), "team/app"), Some("1")).await;

    let req = request(&format!("{}/team/app:1", proxy.host()), &format!("{}/team/copy:1", proxy.host()), &[]);
    let outcome =
        tokio::time::timeout(Duration::from_secs(60), engine(&client, 8).copy_image(&req, &Recorder::default()))
            .await
            .expect("the copy deadlocked")
            .unwrap();
    assert_eq!(counts(&outcome), (13, 0, 0));
    assert_eq!(proxy.count(Method::POST, "/blobs/uploads/"), 13, "each blob tried a mount");
    assert_eq!(manifest_bytes(&client, &repo(&registry.host(), "team/copy"), "1").await, image.manifest.bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_with_basic_auth_is_written_with_its_credentials() {
    let (src, dst) = tokio::join!(Distribution::start(), Distribution::start_with_basic_auth("alice", "s3cret-pw"));
    let image = Image::random("amd64", &[1000]);
    image.push(&client(), &repo(&src.host(), "team/app"), Some("1")).await;
    let req = request(&format!("{}/team/app:1", src.host()), &format!("{}/mirror/app:1", dst.host()), &[]);

    let with = |password: &str| {
        let mut config = config();
        config.credentials.insert(dst.host(), Credential::new("alice", password));
        Arc::new(RegistryClient::new(config).unwrap())
    };
    let good = with("s3cret-pw");
    let outcome = engine(&good, 4).copy_image(&req, &Recorder::default()).await.unwrap();
    assert_eq!(counts(&outcome), (2, 0, 0));
    assert_eq!(manifest_bytes(&good, &repo(&dst.host(), "mirror/app"), "1").await, image.manifest.bytes);

    let err = engine(&with("wrong-pw"), 4).copy_image(&req, &Recorder::default()).await.unwrap_err();
    assert_eq!(err.kind, CopyErrorKind::Permanent);
    let expected = format!(
        "cannot write target {}/mirror/app:1: the registry {} refused the credentials for user alice",
        dst.host(),
        dst.host()
    );
    assert!(err.message.starts_with(&expected), "{}", err.message);
    assert!(!err.message.contains("wrong-pw"), "{}", err.message);
    let err = engine(&client(), 4).copy_image(&req, &Recorder::default()).await.unwrap_err();
    assert_eq!(err.kind, CopyErrorKind::Permanent);
    assert!(err.message.contains("refused anonymous access"), "{}", err.message);
    assert!(!err.message.contains("s3cret"));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_and_unsupported_sources_fail_with_clear_messages() {
    let registry = Distribution::start().await;
    let schema1 = r#"{"schemaVersion": 1, "name": "team/old", "tag": "1", "fsLayers": [], "signatures": []}"#;
    let proxy = Proxy::start(
        &registry.host(),
        ProxyOptions {
            canned: HashMap::from([(
                "/v2/team/old/manifests/1".to_owned(),
                (media_type::DOCKER_SCHEMA1_SIGNED.to_owned(), schema1.to_owned()),
            )]),
            ..ProxyOptions::default()
        },
    )
    .await;
    let client = client();
    let engine = engine(&client, 4);
    let target = format!("{}/mirror/x:1", registry.host());

    let missing = reference(&format!("{}/nope:1", registry.host()));
    let err = engine.check_source(&missing, &RegistryAccess::Configured).await.unwrap_err();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (CopyErrorKind::Permanent, format!("source {missing} not found").as_str())
    );
    let err = engine.copy_image(&request(&missing.to_string(), &target, &[]), &Recorder::default()).await.unwrap_err();
    assert_eq!((err.kind, err.message.clone()), (CopyErrorKind::Permanent, format!("source {missing} not found")));

    let old = format!("{}/team/old:1", proxy.host());
    let err = engine.copy_image(&request(&old, &target, &[]), &Recorder::default()).await.unwrap_err();
    assert_eq!(err.kind, CopyErrorKind::Permanent);
    assert!(err.message.starts_with(&format!("source {old} is a Docker schema 1 manifest")), "{}", err.message);
    assert_eq!(
        engine.check_source(&reference(&old), &RegistryAccess::Configured).await.unwrap_err().kind,
        CopyErrorKind::Permanent
    );

    // Nothing listens there: worth retrying later.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let impatient = Arc::new(
        RegistryClient::new(ClientConfig {
            retry: RetryPolicy {
                max_attempts: 2,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
            },
            ..config()
        })
        .unwrap(),
    );
    let err = self::engine(&impatient, 4)
        .check_source(&reference(&format!("{closed}/team/app:1")), &RegistryAccess::Configured)
        .await
        .unwrap_err();
    assert_eq!(err.kind, CopyErrorKind::Transient, "{}", err.message);
    assert!(err.message.contains(&format!("source {closed}/team/app:1")), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_source_blob_fails_the_copy_and_never_lands() {
    let (src, dst) = tokio::join!(Distribution::start(), Distribution::start());
    let client = client();
    let image = Image::random("amd64", &[150_000, 200_000, 1000]);
    image.push(&client, &repo(&src.host(), "team/app"), Some("1")).await;
    let bad = image.layers[1].digest.clone();
    let proxy = Proxy::start(&src.host(), ProxyOptions { corrupt: Some(bad.clone()), ..ProxyOptions::default() }).await;

    let recorder = Recorder::default();
    let req = request(&format!("{}/team/app:1", proxy.host()), &format!("{}/mirror/app:1", dst.host()), &[]);
    let err = engine(&client, 1).copy_image(&req, &recorder).await.unwrap_err();
    assert_eq!(err.kind, CopyErrorKind::Permanent);
    assert!(err.message.contains(&format!("blob {bad}")) && err.message.contains("digest mismatch"), "{}", err.message);
    let target = repo(&dst.host(), "mirror/app");
    assert_eq!(client.head_blob(&target, &bad).await.unwrap(), None);
    assert_eq!(client.head_manifest(&target, &"1".parse().unwrap()).await.unwrap(), None);
    assert_eq!(recorder.events(&bad).last().unwrap().state, LayerState::Failed);
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_source_failures_are_retried() {
    let (src, dst) = tokio::join!(Distribution::start(), Distribution::start());
    let client = client();
    let image = Image::random("amd64", &[50_000]);
    image.push(&client, &repo(&src.host(), "team/app"), Some("1")).await;
    let proxy = Proxy::start(&src.host(), ProxyOptions::default()).await;
    *proxy.state.fail_blob.lock().unwrap() = Some((image.layers[0].digest.clone(), 2));

    let req = request(&format!("{}/team/app:1", proxy.host()), &format!("{}/mirror/app:1", dst.host()), &[]);
    let outcome = engine(&client, 4).copy_image(&req, &Recorder::default()).await.unwrap();
    assert_eq!(counts(&outcome), (2, 0, 0));
    assert_eq!(proxy.count(Method::GET, &format!("/blobs/{}", image.layers[0].digest)), 3);
    assert_eq!(manifest_bytes(&client, &repo(&dst.host(), "mirror/app"), "1").await, image.manifest.bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_image_removes_the_tagged_manifest_and_is_idempotent() {
    let registry = Distribution::start().await;
    let client = client();
    let image = Image::random("amd64", &[1000]);
    let app = repo(&registry.host(), "mirror/app");
    image.push(&client, &app, Some("1")).await;
    let engine = engine(&client, 4);
    let target = reference(&format!("{}/mirror/app:1", registry.host()));

    engine.delete_image(&target).await.unwrap();
    assert_eq!(client.head_manifest(&app, &"1".parse().unwrap()).await.unwrap(), None);
    assert_eq!(client.head_manifest(&app, &(&image.manifest.digest).into()).await.unwrap(), None);
    engine.delete_image(&target).await.unwrap();
    engine.delete_image(&reference(&format!("{}/never/was:1", registry.host()))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_are_verified_without_being_kept() {
    let dst = Distribution::start_with_basic_auth("alice", "s3cret-pw").await;
    let shared = client();
    let engine = engine(&shared, 4);
    let secret = |s: &str| image_core::kube::Secret::new(s);
    engine.verify_credentials(&dst.host(), "alice", &secret("s3cret-pw"), false).await.unwrap();
    let err = engine.verify_credentials(&dst.host(), "alice", &secret("nope"), false).await.unwrap_err();
    assert_eq!(err.kind, CopyErrorKind::Permanent);
    assert_eq!(err.message, format!("the registry {} refused the credentials for user alice", dst.host()));
    let err = engine.verify_credentials("127.0.0.1:1", "alice", &secret("x"), false).await.unwrap_err();
    assert_eq!(err.kind, CopyErrorKind::Transient, "{}", err.message);
    // Verifying hands the credentials to nobody: the configured access is still anonymous.
    let source = reference(&format!("{}/team/app:1", dst.host()));
    let err = engine.check_source(&source, &RegistryAccess::Configured).await.unwrap_err();
    assert!(err.message.contains("refused anonymous access"), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_copy_reads_its_source_with_its_own_credentials() {
    let (src, dst) = tokio::join!(Distribution::start_with_basic_auth("alice", "s3cret-pw"), Distribution::start());
    let image = Image::random("amd64", &[1000, 2000]);
    let mut config = config();
    config.credentials.insert(src.host(), Credential::new("alice", "s3cret-pw"));
    let owner = Arc::new(RegistryClient::new(config).unwrap());
    image.push(&owner, &repo(&src.host(), "team/app"), Some("1")).await;

    // One engine, no configured credentials for the source: each request brings its own.
    let shared = client();
    let engine = engine(&shared, 4);
    let login = |password: &str| RegistryAccess::Login {
        username: "alice".into(),
        password: image_core::kube::Secret::new(password),
        insecure: false,
    };
    let source = format!("{}/team/app:1", src.host());
    let copy = |target: &str, access: RegistryAccess| CopyRequest {
        source_access: access,
        ..request(&source, &format!("{}/{target}:1", dst.host()), &[])
    };
    for round in 0..5 {
        let right = copy(&format!("right/r{round}"), login("s3cret-pw"));
        let wrong = copy(&format!("wrong/r{round}"), login("wrong"));
        let anonymous = copy(&format!("anonymous/r{round}"), RegistryAccess::Anonymous);
        let recorder = Recorder::default();
        let (right, wrong, anonymous) = tokio::join!(
            engine.copy_image(&right, &recorder),
            engine.copy_image(&wrong, &recorder),
            engine.copy_image(&anonymous, &recorder),
        );
        assert_eq!(right.unwrap().digest, image.manifest.digest, "round {round}");
        let wrong = wrong.unwrap_err();
        assert_eq!(wrong.kind, CopyErrorKind::Permanent);
        assert!(wrong.message.contains("refused the credentials for user alice"), "{}", wrong.message);
        assert!(!wrong.message.contains("wrong"), "{}", wrong.message);
        assert!(anonymous.unwrap_err().message.contains("refused anonymous access"), "round {round}");
    }
    engine.check_source(&reference(&source), &login("s3cret-pw")).await.unwrap();
    assert!(engine.check_source(&reference(&source), &login("wrong")).await.is_err());
    assert!(engine.check_source(&reference(&source), &RegistryAccess::Configured).await.is_err());
    // The configured credentials serve `Configured`, and `Anonymous` does without them.
    let configured = self::engine(&owner, 4);
    configured.check_source(&reference(&source), &RegistryAccess::Configured).await.unwrap();
    assert!(configured.check_source(&reference(&source), &RegistryAccess::Anonymous).await.is_err());
    let request = copy("configured/app", RegistryAccess::Configured);
    let outcome = configured.copy_image(&request, &Recorder::default()).await.unwrap();
    assert_eq!(outcome.created.as_deref(), Some(common::CREATED));
}
