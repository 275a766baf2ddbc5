//! A reverse proxy in front of a real registry, for tests that need faults, slow transfers or a count
//! of what crossed the wire.
//!
//! [`Proxy::start`] listens on `127.0.0.1:<free port>` and forwards every request to the upstream
//! registry, streaming bodies both ways (a blob is never held whole in memory) and rewriting
//! `Location` headers to point back at the proxy. A test changes its behaviour at any time through
//! the proxy itself:
//!
//! * [`fail_next`](Proxy::fail_next): answer a status (503, 429 with `Retry-After`, …) instead of
//!   forwarding, for the next N requests that match a method and a substring of the path and query;
//! * [`throttle`](Proxy::throttle): limit the bytes per second of blob download bodies (`GET
//!   …/blobs/sha256:…`), shared by all of them, so that a copy takes a while;
//! * [`corrupt_blob`](Proxy::corrupt_blob): flip the first byte of a blob's downloads;
//! * [`requests`](Proxy::requests): every request answered so far, with its status, and counting
//!   helpers such as [`completed_uploads`](Proxy::completed_uploads).
//!
//! Dropping the proxy stops it, open connections and streams included.
//!
//! ```no_run
//! # async fn example() {
//! use test_support::{Distribution, proxy::Proxy};
//! let registry = Distribution::start().await;
//! let proxy = Proxy::start(&registry.url()).await;
//! proxy.fail_next("GET", "/blobs/sha256:", 503, 2, None);
//! proxy.throttle(1024 * 1024);
//! // … point the code under test at proxy.url() / proxy.host() …
//! let uploads = proxy.completed_uploads(); // digest → blob uploads the registry answered 201
//! # let _ = uploads;
//! # }
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use http_body_util::{BodyExt as _, Empty, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::task::JoinSet;
use tokio::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;
type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send>>;

/// Throttled bodies are sent in pieces of at most this many bytes, so the rate is smooth.
const PIECE: usize = 16 * 1024;

/// One request the proxy answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRequest {
    pub method: String,
    pub path: String,
    /// The query string without the `?`; empty when there is none.
    pub query: String,
    /// What the client was answered: the upstream's status, an injected fault's, or 502 when the
    /// upstream could not be reached (or the request body broke off).
    pub status: u16,
    /// Whether the answer was an injected fault rather than the upstream's.
    pub injected: bool,
}

impl ProxiedRequest {
    /// The value of a query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
    }

    /// The digest of a blob GET or HEAD (`…/blobs/sha256:…`), not of an upload.
    pub fn blob_digest(&self) -> Option<&str> {
        let (_, rest) = self.path.rsplit_once("/blobs/")?;
        rest.starts_with("sha256:").then_some(rest)
    }

    /// A blob download: `GET …/blobs/sha256:…`.
    pub fn is_blob_get(&self) -> bool {
        self.method == "GET" && self.blob_digest().is_some()
    }

    /// The digest of a blob upload the registry completed: `PUT …/blobs/uploads/…?digest=…` answered 201.
    pub fn completed_upload(&self) -> Option<String> {
        (self.method == "PUT" && self.path.contains("/blobs/uploads/") && self.status == 201)
            .then(|| self.query_param("digest"))
            .flatten()
    }
}

/// A fault rule: answer `status` instead of forwarding, for the next `remaining` matching requests.
#[derive(Debug, Clone)]
struct Fault {
    method: String,
    path_contains: String,
    status: u16,
    remaining: usize,
    retry_after: Option<u64>,
}

struct Shared {
    upstream: String,
    upstream_host: String,
    self_host: String,
    http: reqwest::Client,
    faults: Mutex<Vec<Fault>>,
    corrupt: Mutex<Vec<String>>,
    log: Mutex<Vec<ProxiedRequest>>,
    /// Bytes per second of blob downloads, across all of them; 0 for no limit.
    rate: AtomicU64,
    /// When the throttled bytes sent so far are paid for.
    paid_until: Mutex<Instant>,
}

/// A reverse proxy in front of a registry; see the [module documentation](self).
pub struct Proxy {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("host", &self.shared.self_host)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The accept loop owns the connections (and so the streams in flight): all of it stops.
        self.task.abort();
    }
}

impl Proxy {
    /// Starts a proxy for the registry at `upstream_url` (`http://127.0.0.1:PORT`, or just
    /// `127.0.0.1:PORT`).
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn start(upstream_url: &str) -> Proxy {
        let upstream = upstream_url.trim_end_matches('/');
        let upstream = if upstream.contains("://") { upstream.to_owned() } else { format!("http://{upstream}") };
        let upstream_host = upstream.split_once("://").map_or(upstream.as_str(), |(_, h)| h).to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("test-support: binding a proxy port");
        let addr: SocketAddr = listener.local_addr().expect("test-support: the proxy's address");
        let shared = Arc::new(Shared {
            upstream,
            upstream_host,
            self_host: addr.to_string(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("test-support: building the proxy's HTTP client"),
            faults: Mutex::default(),
            corrupt: Mutex::default(),
            log: Mutex::default(),
            rate: AtomicU64::new(0),
            paid_until: Mutex::new(Instant::now()),
        });
        let task = tokio::spawn(serve(listener, shared.clone()));
        Proxy { shared, task }
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        self.shared.self_host.clone()
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.self_host)
    }

    /// Every request answered so far, in the order the answers began.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        lock(&self.shared.log).clone()
    }

    /// Forgets the requests answered so far.
    pub fn clear_requests(&self) {
        lock(&self.shared.log).clear();
    }

    /// Requests with this method (any when empty) whose path and query contain `path_contains`.
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        lock(&self.shared.log)
            .iter()
            .filter(|r| method.is_empty() || r.method.eq_ignore_ascii_case(method))
            .filter(|r| path_and_query(&r.path, &r.query).contains(path_contains))
            .count()
    }

    /// Completed blob uploads by digest: how often a `PUT …/blobs/uploads/…?digest=D` was answered 201.
    pub fn completed_uploads(&self) -> BTreeMap<String, usize> {
        let mut uploads = BTreeMap::new();
        for digest in lock(&self.shared.log).iter().filter_map(ProxiedRequest::completed_upload) {
            *uploads.entry(digest).or_default() += 1;
        }
        uploads
    }

    /// Blob downloads (`GET …/blobs/sha256:…`) by digest, whatever they were answered.
    pub fn blob_gets(&self) -> BTreeMap<String, usize> {
        let mut gets = BTreeMap::new();
        for r in lock(&self.shared.log).iter().filter(|r| r.is_blob_get()) {
            *gets.entry(r.blob_digest().unwrap_or_default().to_owned()).or_default() += 1;
        }
        gets
    }

    /// Injected faults answered so far, by status.
    pub fn injected(&self) -> BTreeMap<u16, usize> {
        let mut faults = BTreeMap::new();
        for r in lock(&self.shared.log).iter().filter(|r| r.injected) {
            *faults.entry(r.status).or_default() += 1;
        }
        faults
    }

    /// Answers `status` instead of forwarding, to the next `count` requests with `method` (any when
    /// empty) whose path and query contain `path_contains`; with `Retry-After: <secs>` when given.
    ///
    /// Rules apply in the order they were added: a request consumes the first one it matches that
    /// has answers left, and is forwarded when none does.
    pub fn fail_next(&self, method: &str, path_contains: &str, status: u16, count: usize, retry_after: Option<u64>) {
        assert!(StatusCode::from_u16(status).is_ok(), "test-support: {status} is not an HTTP status");
        lock(&self.shared.faults).push(Fault {
            method: method.to_ascii_uppercase(),
            path_contains: path_contains.to_owned(),
            status,
            remaining: count,
            retry_after,
        });
    }

    /// Fault answers not given yet, across all rules.
    pub fn faults_left(&self) -> usize {
        lock(&self.shared.faults).iter().map(|f| f.remaining).sum()
    }

    /// Drops every fault rule.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Limits blob download bodies (`GET …/blobs/sha256:…`) to `bytes_per_sec`, shared by all
    /// downloads in flight; 0 lifts the limit. Applies to streams already flowing, too.
    pub fn throttle(&self, bytes_per_sec: u64) {
        self.shared.rate.store(bytes_per_sec, Ordering::SeqCst);
    }

    /// Flips the first byte of every download of this blob (`sha256:…`) from now on.
    pub fn corrupt_blob(&self, digest: &str) {
        lock(&self.shared.corrupt).push(digest.to_owned());
    }
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    // Owned here, so that aborting this task aborts every connection with it.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<ProxyBody>, Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let mut entry = ProxiedRequest { method: method.to_string(), path, query, status: 0, injected: false };

    let fault = {
        let target = path_and_query(&entry.path, &entry.query);
        let mut faults = lock(&shared.faults);
        faults
            .iter_mut()
            .find(|f| {
                f.remaining > 0
                    && (f.method.is_empty() || f.method == entry.method)
                    && target.contains(&f.path_contains)
            })
            .map(|f| {
                f.remaining -= 1;
                f.clone()
            })
    };
    let resp = match fault {
        Some(fault) => {
            entry.injected = true;
            injected(&method, &fault)
        }
        None => forward(&shared, req, &entry).await,
    };
    entry.status = resp.status().as_u16();
    lock(&shared.log).push(entry);
    Ok(resp)
}

fn injected(method: &Method, fault: &Fault) -> Response<ProxyBody> {
    let code = match fault.status {
        429 => "TOOMANYREQUESTS",
        401 => "UNAUTHORIZED",
        403 => "DENIED",
        404 => "NOT_FOUND",
        _ => "UNAVAILABLE",
    };
    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"injected by the test proxy"}}]}}"#);
    let mut builder = Response::builder()
        .status(fault.status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len());
    if let Some(secs) = fault.retry_after {
        builder = builder.header(header::RETRY_AFTER, secs);
    }
    let body = if method == Method::HEAD { empty() } else { full(body) };
    builder.body(body).unwrap_or_else(|_| unreachable!("valid parts"))
}

/// Headers that describe one connection, not the message; never forwarded.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

async fn forward(shared: &Arc<Shared>, req: Request<Incoming>, entry: &ProxiedRequest) -> Response<ProxyBody> {
    let (parts, body) = req.into_parts();
    let url = format!("{}{}", shared.upstream, parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut builder = shared.http.request(parts.method.clone(), url);
    for (name, value) in &parts.headers {
        if name != header::HOST && !hop_by_hop(name) {
            builder = builder.header(name, value);
        }
    }
    let has_body =
        parts.headers.contains_key(header::CONTENT_LENGTH) || parts.headers.contains_key(header::TRANSFER_ENCODING);
    if has_body {
        // Streamed: an upload's bytes reach the registry as they arrive.
        builder = builder.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    }
    let upstream = match builder.send().await {
        Ok(resp) => resp,
        Err(e) => {
            let message = format!("test proxy: upstream {}: {e}", shared.upstream);
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .header(header::CONTENT_TYPE, "text/plain")
                .body(full(message))
                .unwrap_or_else(|_| unreachable!("valid parts"));
        }
    };

    let mut out = Response::builder().status(upstream.status().as_u16());
    for (name, value) in upstream.headers() {
        if hop_by_hop(name) {
            continue;
        }
        if name == header::LOCATION || name == header::WWW_AUTHENTICATE {
            let rewritten = value.to_str().map(|v| v.replace(&shared.upstream_host, &shared.self_host));
            match rewritten.ok().and_then(|v| HeaderValue::from_str(&v).ok()) {
                Some(v) => out = out.header(name, v),
                None => out = out.header(name, value),
            }
        } else {
            out = out.header(name, value);
        }
    }
    if parts.method == Method::HEAD {
        return out.body(empty()).unwrap_or_else(|_| unreachable!("valid parts"));
    }

    let blob_get = entry.is_blob_get() && upstream.status().is_success();
    let corrupt = blob_get && lock(&shared.corrupt).iter().any(|d| entry.blob_digest() == Some(d.as_str()));
    let mut stream: ByteStream = Box::pin(upstream.bytes_stream().map(|r| r.map_err(BoxError::from)));
    if corrupt {
        stream = flip_first_byte(stream);
    }
    if blob_get {
        stream = throttled(stream, shared.clone());
    }
    let body = StreamBody::new(stream.map(|r| r.map(Frame::data)));
    out.body(http_body_util::BodyExt::boxed_unsync(body)).unwrap_or_else(|_| unreachable!("valid parts"))
}

fn flip_first_byte(stream: ByteStream) -> ByteStream {
    let mut first = true;
    Box::pin(stream.map(move |chunk| {
        chunk.map(|chunk| {
            if first && !chunk.is_empty() {
                first = false;
                let mut flipped = chunk.to_vec();
                flipped[0] ^= 0xff;
                Bytes::from(flipped)
            } else {
                chunk
            }
        })
    }))
}

/// `stream` in pieces of at most [`PIECE`] bytes, each sent once the shared rate limit has room
/// for it; as is while no limit is set.
fn throttled(stream: ByteStream, shared: Arc<Shared>) -> ByteStream {
    struct State {
        inner: ByteStream,
        pending: Bytes,
        shared: Arc<Shared>,
    }
    let state = State { inner: stream, pending: Bytes::new(), shared };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        while st.pending.is_empty() {
            match st.inner.next().await? {
                Ok(chunk) => st.pending = chunk,
                Err(e) => return Some((Err(e), st)),
            }
        }
        let rate = st.shared.rate.load(Ordering::SeqCst);
        if rate == 0 {
            let chunk = std::mem::take(&mut st.pending);
            return Some((Ok(chunk), st));
        }
        let piece = st.pending.split_to(st.pending.len().min(PIECE));
        let due = st.shared.reserve(piece.len(), rate);
        tokio::time::sleep_until(due).await;
        Some((Ok(piece), st))
    }))
}

impl Shared {
    /// Books `bytes` at `rate` after what was booked before; returns when they are paid for.
    fn reserve(&self, bytes: usize, rate: u64) -> Instant {
        let cost = Duration::from_secs_f64(bytes as f64 / rate as f64);
        let mut paid = lock(&self.paid_until);
        *paid = (*paid).max(Instant::now()) + cost;
        *paid
    }
}

fn path_and_query(path: &str, query: &str) -> String {
    if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") }
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

fn full(body: impl Into<Bytes>) -> ProxyBody {
    Full::new(body.into()).map_err(|never| match never {}).boxed_unsync()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
