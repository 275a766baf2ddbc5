//! [`RegistryClient`]: the operations of the OCI distribution API over one transport path.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures::{Stream, StreamExt as _, TryStreamExt as _};
use image_core::Digest;
use image_core::copy::RegistryAccess;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};
use sha2::Digest as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::{Scope, Token, TokenCache, TokenResponse, parse_challenges};
use crate::blob::{BlobStream, SharedSource, SourceBody, UploadSource, digest_of, read_chunk};
use crate::config::{ClientConfig, Credential, DOCKER_HUB, DOCKER_HUB_API, is_loopback, normalize_registry};
use crate::egress::{EgressPolicy, EgressRefusal, EgressResolver};
use crate::error::{Error, Missing, Result, parse_error_body};
use crate::headers::{ContentRange, RateLimit, next_link, parse_content_range, parse_retry_after, rate_limit};
use crate::types::{Manifest, ManifestHead, ManifestRef, MountOutcome, Repo, UploadLocation, media_type};

/// The largest manifest accepted; the OCI specification asks registries for at least 4 MiB.
const MAX_MANIFEST_SIZE: usize = 8 * 1024 * 1024;
/// The largest page of a tag list or catalog.
const MAX_LIST_PAGE_SIZE: usize = 64 * 1024 * 1024;
/// A paginated listing longer than this is a registry in a loop.
const MAX_PAGES: usize = 100_000;
/// Error bodies beyond this are not read.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// The header with a manifest's or blob's digest.
const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// A client of the OCI distribution API for any number of registries.
///
/// Cheap to clone (clones share connections, tokens, request slots and what was learnt about
/// each registry); build one per process.
///
/// It authenticates with the configured credentials of each registry (none: anonymous), which
/// never change. An operation that must use other credentials for one registry takes a view
/// with [`RegistryClient::with_access`]: the view carries them, and nothing else sees them.
///
/// Every request goes through one path that bounds the requests in flight per registry,
/// authenticates (anonymous, basic, or bearer tokens cached per registry, account and scope set),
/// retries transient failures of replayable requests with exponential backoff and jitter
/// (honouring `Retry-After`), and records Docker Hub's rate-limit headers.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
    /// Credentials of this view for one registry, in place of the configured ones there.
    scoped: Option<Arc<ScopedAccess>>,
}

/// The credentials a view of the client uses for one registry.
struct ScopedAccess {
    registry: String,
    credential: Option<Credential>,
    insecure: bool,
}

struct Inner {
    /// Follows no redirect: a 3xx is an error for every request but a blob read.
    http: reqwest::Client,
    /// Follows redirects, for blob reads only (`HEAD` and `GET …/blobs/<digest>`), which
    /// registries send on to storage backends.
    blob_http: reqwest::Client,
    egress: Arc<EgressPolicy>,
    config: ClientConfig,
    /// The configured credentials, by normalised registry name.
    credentials: HashMap<String, Credential>,
    insecure: HashSet<String>,
    /// Mixed into the account keys of the token cache, so that they reveal nothing of a password
    /// even to someone who reads this process's memory and guesses passwords.
    account_salt: [u8; 16],
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// What each registry's challenges asked for; absent until a registry first answers 401.
    auth_modes: Mutex<HashMap<String, AuthMode>>,
    tokens: TokenCache,
    rate_limits: Mutex<HashMap<String, RateLimit>>,
    /// Registries that refused a monolithic blob `PUT` with 413 or 416.
    chunked_only: Mutex<HashSet<String>>,
}

#[derive(Debug, Clone)]
enum AuthMode {
    Basic,
    Bearer { realm: Url, service: Option<String> },
}

/// A request that `send` may repeat: its body is in memory.
struct Req {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Bytes>,
    scope: Scope,
    /// Whether transport failures and 5xx/429 answers are retried. Upload steps are not: their
    /// effect after a failure is unknown, and the caller retries the whole blob.
    retry: bool,
    /// Whether redirects are followed: blob reads only.
    follow_redirects: bool,
    /// Sends the configured credentials as HTTP Basic up front and answers no challenge: a registry's own
    /// REST API (Harbor's `/api/v2.0`), not the distribution protocol.
    basic_auth: bool,
    operation: &'static str,
}

impl Req {
    fn new(method: Method, url: Url, scope: Scope, operation: &'static str) -> Req {
        Req {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            scope,
            retry: true,
            follow_redirects: false,
            basic_auth: false,
            operation,
        }
    }

    fn follow_redirects(mut self) -> Req {
        self.follow_redirects = true;
        self
    }

    fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Req {
        self.headers.insert(name, value);
        self
    }

    fn body(mut self, body: Bytes) -> Req {
        self.body = Some(body);
        self
    }

    fn no_retry(mut self) -> Req {
        self.retry = false;
        self
    }
}

/// An answer of a registry's REST API, read whole.
pub(crate) struct ApiAnswer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A response and the request slot it occupies until it is dropped.
struct Sent {
    resp: Response,
    permit: OwnedSemaphorePermit,
}

/// How a monolithic blob `PUT` failed.
enum PutFailure {
    /// 413 or 416: the registry (or a proxy) wants chunked uploads.
    Refused(StatusCode),
    Failed(Error),
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut with_credentials: Vec<&String> = self.inner.credentials.keys().collect();
        with_credentials.sort();
        f.debug_struct("RegistryClient")
            .field("insecure_registries", &self.inner.config.insecure_registries)
            .field("registries_with_credentials", &with_credentials)
            .field("scoped_registry", &self.scoped.as_ref().map(|s| &s.registry))
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    pub fn new(config: ClientConfig) -> Result<RegistryClient> {
        crate::metrics::describe();
        let mut certificates = Vec::new();
        for pem in &config.ca_certificates_pem {
            let bundle = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::InvalidConfig(format!("a CA bundle is not valid PEM: {}", error_chain(&e))))?;
            if bundle.is_empty() {
                return Err(Error::InvalidConfig("a CA bundle holds no certificate".into()));
            }
            certificates.extend(bundle);
        }
        let egress = Arc::new(config.egress.clone());
        let build = |redirect: reqwest::redirect::Policy| {
            let mut builder = reqwest::Client::builder();
            for certificate in &certificates {
                builder = builder.add_root_certificate(certificate.clone());
            }
            builder
                .user_agent(config.user_agent.clone())
                .connect_timeout(config.connect_timeout)
                .read_timeout(config.read_timeout)
                // Every host name is resolved through the egress policy; IP literals are checked
                // before each request (`check_egress`) and each redirect.
                .dns_resolver(Arc::new(EgressResolver { policy: egress.clone() }))
                .redirect(redirect)
                .build()
                .map_err(|e| Error::InvalidConfig(error_chain(&e)))
        };
        let http = build(reqwest::redirect::Policy::none())?;
        // Blob reads follow redirects to storage backends; reqwest drops `Authorization` when one
        // leaves the registry's host or port. A downgrade from https to http is refused, and so is
        // a target the egress policy refuses.
        let policy = egress.clone();
        let blob_http = build(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 10 {
                attempt.error("more than 10 redirects")
            } else if attempt.previous().last().is_some_and(|p| p.scheme() == "https")
                && attempt.url().scheme() == "http"
                && !attempt.url().host_str().is_some_and(is_loopback)
            {
                attempt.error("refusing a redirect from https to http")
            } else if let Some(refusal) = literal_refusal(&policy, attempt.url()) {
                attempt.error(refusal)
            } else {
                attempt.follow()
            }
        }))?;
        let credentials = config.credentials.iter().map(|(k, v)| (normalize_registry(k), v.clone())).collect();
        let insecure = config.insecure_registries.iter().map(|r| normalize_registry(r)).collect();
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                http,
                blob_http,
                egress,
                config,
                credentials,
                insecure,
                account_salt: rand::random(),
                slots: Mutex::default(),
                auth_modes: Mutex::default(),
                tokens: TokenCache::default(),
                rate_limits: Mutex::default(),
                chunked_only: Mutex::default(),
            }),
            scoped: None,
        })
    }

    /// A view of this client that authenticates to `registry` with `access` (the configured
    /// credentials, none, or an account of its own, over plain HTTP when the account says so), and to
    /// every other registry as this client does. It shares connections, request slots and tokens;
    /// tokens are kept per account, so the view never uses one obtained with other credentials.
    pub fn with_access(&self, registry: &str, access: &RegistryAccess) -> RegistryClient {
        let registry = normalize_registry(registry);
        let scoped = match access {
            RegistryAccess::Configured => None,
            RegistryAccess::Anonymous => Some(ScopedAccess { registry, credential: None, insecure: false }),
            RegistryAccess::Login { username, password, insecure } => Some(ScopedAccess {
                registry,
                credential: Some(Credential::new(username.clone(), password.expose())),
                insecure: *insecure,
            }),
        };
        RegistryClient { inner: self.inner.clone(), scoped: scoped.map(Arc::new) }
    }

    /// The configuration this client was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    fn credential(&self, registry: &str) -> Option<Credential> {
        match self.scoped.as_deref() {
            Some(scoped) if scoped.registry == registry => scoped.credential.clone(),
            _ => self.inner.credentials.get(registry).cloned(),
        }
    }

    /// Who the credentials for `registry` are, for the token cache: empty for anonymous access, else
    /// the user name and a salted hash of the password (never the password itself).
    fn account_key(&self, registry: &str) -> String {
        let Some(credential) = self.credential(registry) else {
            return String::new();
        };
        let mut hash = sha2::Sha256::new();
        hash.update(self.inner.account_salt);
        hash.update(credential.username.as_bytes());
        hash.update([0]);
        hash.update(credential.password.as_bytes());
        let hash = hash.finalize();
        let hex: String = hash.iter().take(12).map(|b| format!("{b:02x}")).collect();
        format!("{}#{hex}", credential.username)
    }

    /// `GET /v2/`, authenticating as for any other request: verifies that `registry` is an OCI
    /// registry and that the configured credentials (or anonymous access) are accepted.
    ///
    /// Fails with [`Error::Unreachable`], [`Error::NotARegistry`] or [`Error::Unauthorized`]
    /// (credentials missing or wrong), among others.
    pub async fn ping(&self, registry: &str) -> Result<()> {
        let registry = checked_registry(registry)?;
        let url = self.base_url(&registry)?.join("v2/").map_err(|e| Error::InvalidInput(e.to_string()))?;
        let sent = self.send(&registry, &Req::new(Method::GET, url, Scope::None, "GET /v2/")).await?;
        let resp = sent.resp;
        let status = resp.status();
        match status.as_u16() {
            200 => {
                let api_version = resp.headers().contains_key("docker-distribution-api-version");
                let json = content_type(resp.headers()).is_some_and(|t| t.ends_with("json"));
                if api_version || json {
                    Ok(())
                } else {
                    Err(Error::NotARegistry {
                        registry,
                        reason: "GET /v2/ answered 200 without a Docker-Distribution-API-Version header or a JSON body"
                            .to_owned(),
                    })
                }
            }
            401 | 403 | 429 => Err(self.error_from(&registry, None, "GET /v2/", None, resp).await),
            s if (500..600).contains(&s) => Err(self.error_from(&registry, None, "GET /v2/", None, resp).await),
            _ => Err(Error::NotARegistry { registry, reason: format!("GET /v2/ answered {status}") }),
        }
    }

    /// All tags of a repository, following `Link: <…>; rel="next"` pagination;
    /// `page_size` is the `n` asked for per page (the registry's default when `None`).
    pub async fn list_tags(&self, repo: &Repo, page_size: Option<u32>) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Page {
            tags: Option<Vec<String>>,
        }
        let mut url = self.repo_url(repo, "tags/list")?;
        if let Some(n) = page_size {
            url.query_pairs_mut().append_pair("n", &n.to_string());
        }
        self.paginate(repo.registry(), Some(repo), url, Scope::Pull(repo.repository().to_owned()), "GET tags", |b| {
            serde_json::from_slice::<Page>(b).map(|p| p.tags.unwrap_or_default())
        })
        .await
    }

    /// All repositories of a registry (`GET /v2/_catalog`), following pagination.
    /// Registries may restrict the catalog to what the credentials can see, or refuse it.
    pub async fn catalog(&self, registry: &str, page_size: Option<u32>) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Page {
            repositories: Option<Vec<String>>,
        }
        let registry = checked_registry(registry)?;
        let mut url = self.base_url(&registry)?.join("v2/_catalog").map_err(|e| Error::InvalidInput(e.to_string()))?;
        if let Some(n) = page_size {
            url.query_pairs_mut().append_pair("n", &n.to_string());
        }
        self.paginate(&registry, None, url, Scope::Catalog, "GET catalog", |b| {
            serde_json::from_slice::<Page>(b).map(|p| p.repositories.unwrap_or_default())
        })
        .await
    }

    /// The digest, media type and size of a manifest, or `None` when the registry does not
    /// have it. When the registry's `HEAD` omits `Docker-Content-Digest`, the manifest is
    /// fetched and hashed.
    pub async fn head_manifest(&self, repo: &Repo, reference: &ManifestRef) -> Result<Option<ManifestHead>> {
        let registry = repo.registry();
        let url = self.repo_url(repo, &format!("manifests/{reference}"))?;
        let req = Req::new(Method::HEAD, url, Scope::Pull(repo.repository().to_owned()), "HEAD manifest")
            .header(header::ACCEPT, HeaderValue::from_static(media_type::ACCEPT_MANIFESTS));
        let sent = self.send(registry, &req).await?;
        match sent.resp.status().as_u16() {
            200 => {
                let headers = sent.resp.headers();
                let digest = header_str(headers, DOCKER_CONTENT_DIGEST).and_then(|d| d.parse::<Digest>().ok());
                let size = header_str(headers, header::CONTENT_LENGTH.as_str()).and_then(|s| s.parse::<u64>().ok());
                let media_type = content_type(headers);
                if let (Some(digest), Some(size), Some(media_type)) = (digest, size, media_type) {
                    if let Some(expected) = reference.digest().filter(|&e| e != &digest) {
                        return Err(Error::DigestMismatch { expected: expected.clone(), actual: digest });
                    }
                    return Ok(Some(ManifestHead { digest, media_type, size }));
                }
                // Release the request slot before the second request.
                drop(sent);
                let manifest = self.get_manifest(repo, reference).await?;
                Ok(Some(ManifestHead {
                    size: manifest.bytes.len() as u64,
                    digest: manifest.digest,
                    media_type: manifest.media_type,
                }))
            }
            404 => Ok(None),
            _ => Err(self.error_from(registry, Some(repo), "HEAD manifest", None, sent.resp).await),
        }
    }

    /// A manifest with its exact bytes. Fetched by digest, the bytes must hash to it; fetched by
    /// tag, they must hash to the `Docker-Content-Digest` the registry announces.
    /// Docker schema 1 manifests are refused with [`Error::UnsupportedSchema1`].
    ///
    /// When Docker Hub's last `ratelimit-remaining` said 0, a `HEAD` (which Docker Hub does not
    /// count) checks again first, and the `GET` fails fast with [`Error::RateLimited`] rather
    /// than spend quota that is not there.
    pub async fn get_manifest(&self, repo: &Repo, reference: &ManifestRef) -> Result<Manifest> {
        let registry = repo.registry();
        let url = self.repo_url(repo, &format!("manifests/{reference}"))?;
        let scope = Scope::Pull(repo.repository().to_owned());
        if self.quota_exhausted(registry) {
            let head = Req::new(Method::HEAD, url.clone(), scope.clone(), "HEAD manifest")
                .header(header::ACCEPT, HeaderValue::from_static(media_type::ACCEPT_MANIFESTS));
            drop(self.send(registry, &head).await?);
            if self.quota_exhausted(registry) {
                return Err(Error::RateLimited { registry: registry.to_owned(), retry_after: None });
            }
        }
        let req = Req::new(Method::GET, url, scope, "GET manifest")
            .header(header::ACCEPT, HeaderValue::from_static(media_type::ACCEPT_MANIFESTS));
        let sent = self.send(registry, &req).await?;
        let resp = sent.resp;
        if resp.status() != StatusCode::OK {
            let missing = Missing::Manifest(reference.to_string());
            return Err(self.error_from(registry, Some(repo), "GET manifest", Some(missing), resp).await);
        }
        let announced = header_str(resp.headers(), DOCKER_CONTENT_DIGEST).and_then(|d| d.parse::<Digest>().ok());
        let header_type = content_type(resp.headers());
        let bytes = read_body(registry, resp, MAX_MANIFEST_SIZE, "GET manifest").await?;
        let media_type = manifest_media_type(header_type, &bytes);
        if let Some(media_type) = media_type.schema1 {
            return Err(Error::UnsupportedSchema1 {
                registry: registry.to_owned(),
                repository: repo.repository().to_owned(),
                reference: reference.to_string(),
                media_type,
            });
        }
        let digest = digest_of(&bytes);
        let expected = reference.digest().or(announced.as_ref());
        if let Some(expected) = expected.filter(|&e| e != &digest) {
            return Err(Error::DigestMismatch { expected: expected.clone(), actual: digest });
        }
        Ok(Manifest { bytes, media_type: media_type.media_type, digest })
    }

    /// The size of a blob, or `None` when the repository does not have it.
    pub async fn head_blob(&self, repo: &Repo, digest: &Digest) -> Result<Option<u64>> {
        let registry = repo.registry();
        let url = self.repo_url(repo, &format!("blobs/{digest}"))?;
        let sent = self
            .send(
                registry,
                &Req::new(Method::HEAD, url, Scope::Pull(repo.repository().to_owned()), "HEAD blob").follow_redirects(),
            )
            .await?;
        match sent.resp.status().as_u16() {
            200 => {
                match header_str(sent.resp.headers(), header::CONTENT_LENGTH.as_str()).and_then(|s| s.parse().ok()) {
                    Some(size) => Ok(Some(size)),
                    None => Err(protocol(registry, "HEAD blob", 200, "the answer has no Content-Length")),
                }
            }
            404 => Ok(None),
            _ => Err(self.error_from(registry, Some(repo), "HEAD blob", None, sent.resp).await),
        }
    }

    /// Streams a blob from `offset` on (`Range: bytes=offset-`), following redirects to storage
    /// backends (without our `Authorization`, which stays with the registry's host).
    ///
    /// The bytes are not verified here: wrap the stream in [`verify_digest`](crate::verify_digest)
    /// when reading from offset 0, as the copy engine does.
    pub async fn get_blob(&self, repo: &Repo, digest: &Digest, offset: u64) -> Result<BlobStream> {
        let registry = repo.registry().to_owned();
        let url = self.repo_url(repo, &format!("blobs/{digest}"))?;
        let mut req =
            Req::new(Method::GET, url, Scope::Pull(repo.repository().to_owned()), "GET blob").follow_redirects();
        if offset > 0 {
            req = req.header(header::RANGE, header_value(&format!("bytes={offset}-"))?);
        }
        let Sent { resp, permit } = self.send(&registry, &req).await?;
        let headers = resp.headers();
        let (size, skip) = match resp.status().as_u16() {
            200 => {
                let size = header_str(headers, header::CONTENT_LENGTH.as_str()).and_then(|s| s.parse::<u64>().ok());
                if size.is_some_and(|s| s < offset) {
                    return Err(protocol(&registry, "GET blob", 200, "the blob is shorter than the requested offset"));
                }
                // The registry ignored the range: skip to the offset ourselves.
                (size, offset)
            }
            206 => match header_str(headers, header::CONTENT_RANGE.as_str()).and_then(parse_content_range) {
                Some(ContentRange { range: Some((start, _)), total }) if start == offset => (total, 0),
                _ => {
                    return Err(protocol(&registry, "GET blob", 206, "its Content-Range does not start at the offset"));
                }
            },
            416 => match header_str(headers, header::CONTENT_RANGE.as_str()).and_then(parse_content_range) {
                // Asked for the bytes after the last one: nothing left to read.
                Some(ContentRange { range: None, total: Some(total) }) if total == offset => {
                    return Ok(BlobStream { size: Some(total), offset, stream: Box::pin(futures::stream::empty()) });
                }
                _ => return Err(protocol(&registry, "GET blob", 416, "the offset is beyond the end of the blob")),
            },
            _ => {
                let missing = Missing::Blob(digest.clone());
                return Err(self.error_from(&registry, Some(repo), "GET blob", Some(missing), resp).await);
            }
        };
        let mut to_skip = skip;
        let stream = resp
            .bytes_stream()
            .map(move |chunk| {
                // The slot is held for as long as the body streams.
                let _slot = &permit;
                chunk.map_err(|e| Error::Interrupted { registry: registry.clone(), cause: error_chain(&e) })
            })
            .try_filter_map(move |chunk| {
                let out = if to_skip == 0 {
                    Some(chunk)
                } else if (chunk.len() as u64) <= to_skip {
                    to_skip -= chunk.len() as u64;
                    None
                } else {
                    let rest = chunk.slice(to_skip as usize..);
                    to_skip = 0;
                    Some(rest)
                };
                futures::future::ready(Ok(out))
            });
        Ok(BlobStream { size, offset, stream: Box::pin(stream) })
    }

    /// Uploads a blob of `size` bytes from `stream`: opens an upload session and streams the
    /// bytes in one `PUT …&digest=` (chunked `PATCH`es for registries that refuse that).
    ///
    /// The stream is read once and never held whole; a failed push is not replayed (the caller
    /// retries the whole blob: see [`Error::is_transient`]). When the stream fails (for example
    /// [`verify_digest`](crate::verify_digest) finds a mismatch), the upload is cut short and
    /// cancelled, and its error is returned.
    pub async fn push_blob<S>(&self, repo: &Repo, digest: &Digest, size: u64, stream: S) -> Result<()>
    where
        S: Stream<Item = Result<Bytes>> + Send + 'static,
    {
        let upload = self.start_upload(repo).await?;
        self.push_blob_to(upload, digest, size, stream).await
    }

    /// Opens a blob upload session (`POST /v2/<name>/blobs/uploads/`).
    pub async fn start_upload(&self, repo: &Repo) -> Result<UploadLocation> {
        let registry = repo.registry();
        let url = self.repo_url(repo, "blobs/uploads/")?;
        let req = Req::new(Method::POST, url.clone(), Scope::Push(repo.repository().to_owned()), "POST blob upload")
            .body(Bytes::new());
        let sent = self.send(registry, &req).await?;
        if sent.resp.status() != StatusCode::ACCEPTED {
            return Err(self
                .error_from(registry, Some(repo), "POST blob upload", Some(Missing::Repository), sent.resp)
                .await);
        }
        upload_location(repo, &url, &sent.resp)
    }

    /// Uploads a blob into an open session: one started by [`RegistryClient::start_upload`], or
    /// the one a refused mount opened ([`MountOutcome::NotMounted`]). See [`RegistryClient::push_blob`].
    pub async fn push_blob_to<S>(&self, upload: UploadLocation, digest: &Digest, size: u64, stream: S) -> Result<()>
    where
        S: Stream<Item = Result<Bytes>> + Send + 'static,
    {
        let registry = upload.repo.registry().to_owned();
        let source = UploadSource::new(stream, size);
        let mut upload = upload;
        if !lock(&self.inner.chunked_only).contains(&registry) {
            match self.put_monolithic(&upload, digest, size, &source).await {
                Ok(()) => return Ok(()),
                Err(PutFailure::Failed(e)) => {
                    self.cancel_quietly(&upload.repo, &upload.url).await;
                    return Err(e);
                }
                Err(PutFailure::Refused(status)) => {
                    lock(&self.inner.chunked_only).insert(registry.clone());
                    self.cancel_quietly(&upload.repo, &upload.url).await;
                    if !UploadSource::lock(&source).rewind() {
                        return Err(Error::Interrupted {
                            registry,
                            cause: format!(
                                "the registry refused a monolithic upload ({status}) after reading more of it than \
                                 can be replayed; retry: uploads to it are chunked from now on"
                            ),
                        });
                    }
                    tracing::info!(%registry, %status, "registry refused a monolithic blob upload; using chunked uploads");
                    upload = self.start_upload(&upload.repo).await?;
                }
            }
        }
        self.put_chunked(&upload, digest, &source).await
    }

    /// Cancels an open upload session (`DELETE` on its location).
    pub async fn cancel_upload(&self, upload: &UploadLocation) -> Result<()> {
        let registry = upload.repo.registry();
        let req = Req::new(
            Method::DELETE,
            upload.url.clone(),
            Scope::Push(upload.repo.repository().to_owned()),
            "DELETE blob upload",
        );
        let sent = self.send(registry, &req).await?;
        match sent.resp.status().as_u16() {
            200..=299 => Ok(()),
            _ => Err(self
                .error_from(registry, Some(&upload.repo), "DELETE blob upload", Some(Missing::Upload), sent.resp)
                .await),
        }
    }

    /// Asks the registry to link a blob that `from_repository` (on the same registry) has into
    /// `repo` without uploading it (`POST …/blobs/uploads/?mount=<digest>&from=<repository>`).
    /// The token asked for covers both repositories.
    pub async fn mount_blob(&self, repo: &Repo, digest: &Digest, from_repository: &str) -> Result<MountOutcome> {
        let registry = repo.registry();
        let from = repo.sibling(from_repository)?;
        let mut url = self.repo_url(repo, "blobs/uploads/")?;
        url.query_pairs_mut().append_pair("mount", digest.as_str()).append_pair("from", from.repository());
        let scope = Scope::Mount { into: repo.repository().to_owned(), from: from.repository().to_owned() };
        let req = Req::new(Method::POST, url.clone(), scope, "POST blob mount").body(Bytes::new());
        let sent = self.send(registry, &req).await?;
        match sent.resp.status().as_u16() {
            201 => Ok(MountOutcome::Mounted),
            202 => Ok(MountOutcome::NotMounted { upload_location: upload_location(repo, &url, &sent.resp)? }),
            _ => Err(self
                .error_from(registry, Some(repo), "POST blob mount", Some(Missing::Repository), sent.resp)
                .await),
        }
    }

    /// Stores a manifest under a tag or its digest, byte for byte, and returns its digest
    /// (the sha256 of `bytes`). A digest reference must be that digest; a registry that
    /// announces another digest is reported as [`Error::DigestMismatch`].
    pub async fn put_manifest(
        &self,
        repo: &Repo,
        reference: &ManifestRef,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest> {
        let registry = repo.registry();
        let digest = digest_of(&bytes);
        if let Some(expected) = reference.digest().filter(|&e| e != &digest) {
            return Err(Error::DigestMismatch { expected: expected.clone(), actual: digest });
        }
        let url = self.repo_url(repo, &format!("manifests/{reference}"))?;
        let req = Req::new(Method::PUT, url, Scope::Push(repo.repository().to_owned()), "PUT manifest")
            .header(header::CONTENT_TYPE, header_value(media_type)?)
            .body(bytes);
        let sent = self.send(registry, &req).await?;
        if sent.resp.status() != StatusCode::CREATED {
            return Err(self
                .error_from(registry, Some(repo), "PUT manifest", Some(Missing::Repository), sent.resp)
                .await);
        }
        check_announced_digest(sent.resp.headers(), &digest)?;
        Ok(digest)
    }

    /// Deletes a manifest by digest (the registry must allow deletes).
    pub async fn delete_manifest(&self, repo: &Repo, digest: &Digest) -> Result<()> {
        let registry = repo.registry();
        let url = self.repo_url(repo, &format!("manifests/{digest}"))?;
        let sent = self
            .send(
                registry,
                &Req::new(Method::DELETE, url, Scope::Delete(repo.repository().to_owned()), "DELETE manifest"),
            )
            .await?;
        match sent.resp.status().as_u16() {
            200..=299 => Ok(()),
            _ => {
                let missing = Missing::Manifest(digest.to_string());
                Err(self.error_from(registry, Some(repo), "DELETE manifest", Some(missing), sent.resp).await)
            }
        }
    }

    /// A request to the registry's own REST API beside `/v2/` (Harbor's `/api/v2.0/…`): `path_and_query`
    /// from the host's root, a JSON body when given, the configured credentials as HTTP Basic (no cookie is
    /// ever kept or sent, so Harbor's CSRF check never applies), retried like every other request. Any
    /// status is returned with its headers and body (at most 64 MiB); a redirect is an error.
    pub(crate) async fn api_request(
        &self,
        registry: &str,
        method: Method,
        path_and_query: &str,
        json: Option<&serde_json::Value>,
        operation: &'static str,
    ) -> Result<ApiAnswer> {
        let registry = checked_registry(registry)?;
        let url = self
            .base_url(&registry)?
            .join(path_and_query.trim_start_matches('/'))
            .map_err(|e| Error::InvalidInput(format!("`{path_and_query}`: {e}")))?;
        let mut req = Req::new(method, url, Scope::None, operation)
            .header(header::ACCEPT, HeaderValue::from_static("application/json"));
        req.basic_auth = true;
        if let Some(json) = json {
            let body = serde_json::to_vec(json).map_err(|e| Error::InvalidInput(e.to_string()))?;
            req = req.header(header::CONTENT_TYPE, HeaderValue::from_static("application/json")).body(body.into());
        }
        let sent = self.send(&registry, &req).await?;
        let status = sent.resp.status().as_u16();
        let headers = sent.resp.headers().clone();
        let body = read_body(&registry, sent.resp, MAX_LIST_PAGE_SIZE, operation).await?;
        Ok(ApiAnswer { status, headers, body })
    }

    /// A GET of a public JSON endpoint that is not a registry (Docker Hub's repository search): no
    /// credentials, no redirects, through the egress policy like every other request, at most
    /// `MAX_LIST_PAGE_SIZE` bytes, within `timeout`. Any status is returned with its body.
    pub(crate) async fn get_public_json(
        &self,
        url: &Url,
        query: &[(&str, &str)],
        timeout: std::time::Duration,
        operation: &'static str,
    ) -> Result<ApiAnswer> {
        let host = url.host_str().unwrap_or_default().to_owned();
        self.check_egress(&host, url)?;
        let resp = self
            .inner
            .http
            .get(url.clone())
            .query(query)
            .header(header::ACCEPT, "application/json")
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| match egress_denial(&host, &e) {
                Some(denied) => denied,
                None if e.is_connect() => Error::Unreachable { registry: host.clone(), cause: error_chain(&e) },
                None => Error::Interrupted { registry: host.clone(), cause: error_chain(&e) },
            })?;
        if is_redirect(resp.status()) {
            return Err(redirect_refused(&host, operation, resp.status()));
        }
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = read_body(&host, resp, MAX_LIST_PAGE_SIZE, operation).await?;
        Ok(ApiAnswer { status, headers, body })
    }

    /// The error for an API answer the operation did not expect: Harbor's `{"errors": [{code, message}]}`
    /// body has the distribution protocol's shape.
    pub(crate) fn api_error(&self, registry: &str, operation: &str, answer: &ApiAnswer) -> Error {
        let (code, message) = parse_error_body(&answer.body);
        let registry = registry.to_owned();
        match answer.status {
            401 => Error::Unauthorized { username: self.credential(&registry).map(|c| c.username), registry, message },
            403 => Error::Denied { registry, message },
            429 => Error::RateLimited {
                retry_after: header_str(&answer.headers, header::RETRY_AFTER.as_str())
                    .and_then(|v| parse_retry_after(v, SystemTime::now())),
                registry,
            },
            status => Error::Protocol {
                registry,
                operation: operation.to_owned(),
                status,
                code,
                message: message.unwrap_or_else(|| {
                    StatusCode::from_u16(status)
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or("unexpected status")
                        .to_owned()
                }),
            },
        }
    }

    /// Whether `url` (a `Link` of an API answer, resolved) stays on the registry's own origin.
    pub(crate) fn is_own_origin(&self, registry: &str, url: &Url) -> bool {
        self.is_registry_origin(registry, url)
    }

    /// `https://HOST/` (or `http://` for loopback and insecure registries): what API paths resolve against.
    pub(crate) fn registry_base(&self, registry: &str) -> Result<Url> {
        self.base_url(&checked_registry(registry)?)
    }

    /// The requests this client keeps in flight to one registry at most
    /// (`max_concurrent_requests_per_registry`, at least 1).
    pub fn max_concurrent_requests_per_registry(&self) -> usize {
        self.inner.config.max_concurrent_requests_per_registry.max(1)
    }

    /// What the registry's `ratelimit-*` headers (Docker Hub's) said last.
    pub fn last_rate_limit(&self, registry: &str) -> Option<RateLimit> {
        lock(&self.inner.rate_limits).get(&normalize_registry(registry)).copied()
    }

    // ---- transport ------------------------------------------------------------------------

    /// Sends a request that can be repeated: waits for a request slot of the registry,
    /// authenticates, answers one authentication challenge, and retries transient failures.
    /// Returns whatever the registry finally answered; statuses are the caller's to judge.
    async fn send(&self, registry: &str, req: &Req) -> Result<Sent> {
        let policy = &self.inner.config.retry;
        let max_attempts = if req.retry { policy.max_attempts.max(1) } else { 1 };
        let mut attempt = 0;
        let mut challenged = req.basic_auth;
        let mut auth_override: Option<HeaderValue> = None;
        self.check_egress(registry, &req.url)?;
        loop {
            attempt += 1;
            let permit = self.acquire(registry).await;
            let auth = match auth_override.take() {
                Some(auth) => Some(auth),
                None if req.basic_auth => self.credential(registry).as_ref().map(basic_header),
                None => self.authorization(registry, &req.scope).await?,
            };
            let http = if req.follow_redirects { &self.inner.blob_http } else { &self.inner.http };
            let mut builder = http.request(req.method.clone(), req.url.clone()).headers(req.headers.clone());
            if let Some(auth) = &auth
                && self.is_registry_origin(registry, &req.url)
            {
                builder = builder.header(header::AUTHORIZATION, auth.clone());
            }
            if let Some(body) = &req.body {
                builder = builder.body(body.clone());
            }
            let resp = match builder.send().await {
                Ok(resp) => resp,
                Err(e) => {
                    if let Some(denied) = egress_denial(registry, &e) {
                        return Err(denied);
                    }
                    crate::metrics::request(registry, None);
                    let retryable = !e.is_builder() && !e.is_redirect();
                    if retryable && attempt < max_attempts {
                        let delay = policy.backoff(attempt);
                        crate::metrics::retry(registry, delay, false);
                        tracing::debug!(%registry, operation = req.operation, attempt, ?delay, error = %error_chain(&e), "retrying");
                        drop(permit);
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(Error::Unreachable { registry: registry.to_owned(), cause: error_chain(&e) });
                }
            };
            self.observe(registry, resp.headers());
            let status = resp.status();
            crate::metrics::request(registry, Some(status.as_u16()));
            tracing::debug!(%registry, operation = req.operation, path = req.url.path(), %status, attempt, "registry answered");
            if is_redirect(status) && !req.follow_redirects {
                return Err(redirect_refused(registry, req.operation, status));
            }
            if status == StatusCode::UNAUTHORIZED && !challenged {
                challenged = true;
                if let Some(answer) = self.answer_challenge(registry, &req.scope, resp.headers(), auth.as_ref()).await?
                {
                    // Answering a challenge is not a failed attempt.
                    auth_override = Some(answer);
                    attempt -= 1;
                    continue;
                }
            }
            let retryable = matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504);
            if retryable && attempt < max_attempts {
                let asked = header_str(resp.headers(), header::RETRY_AFTER.as_str())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                if status == StatusCode::TOO_MANY_REQUESTS && asked.is_some_and(|d| d > policy.max_delay) {
                    // Retrying sooner than the registry asked would only spend quota: the caller's job
                    // waits out the registry's delay instead.
                    tracing::debug!(%registry, operation = req.operation, ?asked, "rate limited for longer than a retry waits");
                    return Err(Error::RateLimited { registry: registry.to_owned(), retry_after: asked });
                }
                let delay = asked.map_or_else(|| policy.backoff(attempt), |d| policy.retry_after(d));
                crate::metrics::retry(registry, delay, asked.is_some());
                tracing::debug!(%registry, operation = req.operation, attempt, %status, ?delay, "retrying");
                drop(resp);
                drop(permit);
                tokio::time::sleep(delay).await;
                continue;
            }
            return Ok(Sent { resp, permit });
        }
    }

    /// Sends a request whose body is a stream, once: it cannot be repeated.
    /// Authentication must already be settled (the upload's `POST` did that).
    async fn send_stream(&self, repo: &Repo, url: Url, headers: HeaderMap, body: reqwest::Body) -> Result<Sent> {
        let registry = repo.registry();
        self.check_egress(registry, &url)?;
        let permit = self.acquire(registry).await;
        let scope = Scope::Push(repo.repository().to_owned());
        let mut builder = self.inner.http.put(url.clone()).headers(headers).body(body);
        if let Some(auth) = self.authorization(registry, &scope).await?
            && self.is_registry_origin(registry, &url)
        {
            builder = builder.header(header::AUTHORIZATION, auth);
        }
        match builder.send().await {
            Ok(resp) => {
                self.observe(registry, resp.headers());
                crate::metrics::request(registry, Some(resp.status().as_u16()));
                tracing::debug!(%registry, operation = "PUT blob", path = url.path(), status = %resp.status(), "registry answered");
                if is_redirect(resp.status()) {
                    return Err(redirect_refused(registry, "PUT blob", resp.status()));
                }
                Ok(Sent { resp, permit })
            }
            Err(e) => Err(match egress_denial(registry, &e) {
                Some(denied) => denied,
                None => {
                    crate::metrics::request(registry, None);
                    if e.is_connect() {
                        Error::Unreachable { registry: registry.to_owned(), cause: error_chain(&e) }
                    } else {
                        Error::Interrupted { registry: registry.to_owned(), cause: error_chain(&e) }
                    }
                }
            }),
        }
    }

    async fn acquire(&self, registry: &str) -> OwnedSemaphorePermit {
        let semaphore = lock(&self.inner.slots)
            .entry(registry.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.inner.config.max_concurrent_requests_per_registry.max(1))))
            .clone();
        semaphore.acquire_owned().await.unwrap_or_else(|_| unreachable!("request slots are never closed"))
    }

    fn observe(&self, registry: &str, headers: &HeaderMap) {
        if let Some(limit) = rate_limit(headers, SystemTime::now()) {
            lock(&self.inner.rate_limits).insert(registry.to_owned(), limit);
        }
    }

    fn quota_exhausted(&self, registry: &str) -> bool {
        lock(&self.inner.rate_limits).get(registry).is_some_and(|l| l.remaining == 0)
    }

    /// The `Authorization` a request needs, from what the registry's challenges taught us.
    async fn authorization(&self, registry: &str, scope: &Scope) -> Result<Option<HeaderValue>> {
        let mode = lock(&self.inner.auth_modes).get(registry).cloned();
        match mode {
            None => Ok(None),
            Some(AuthMode::Basic) => Ok(self.credential(registry).as_ref().map(basic_header)),
            Some(AuthMode::Bearer { realm, service }) => {
                let token = self.bearer_token(registry, &realm, service.as_deref(), scope, &[], None).await?;
                Ok(Some(bearer_header(registry, &token)?))
            }
        }
    }

    /// The `Authorization` to repeat a request with after a 401, or `None` when there is no
    /// better one than what was sent.
    async fn answer_challenge(
        &self,
        registry: &str,
        scope: &Scope,
        headers: &HeaderMap,
        sent: Option<&HeaderValue>,
    ) -> Result<Option<HeaderValue>> {
        let challenges: Vec<_> = headers
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let Some(realm) = bearer.param("realm") else {
                return Ok(None);
            };
            let Ok(realm) = self.base_url(registry)?.join(realm) else {
                return Err(protocol(registry, "authentication", 401, "the bearer challenge's realm is not a URL"));
            };
            let service = bearer.param("service").map(str::to_owned);
            lock(&self.inner.auth_modes)
                .insert(registry.to_owned(), AuthMode::Bearer { realm: realm.clone(), service: service.clone() });
            let extra: Vec<String> =
                bearer.param("scope").map(|s| s.split_whitespace().map(str::to_owned).collect()).unwrap_or_default();
            let rejected = sent.and_then(|h| h.to_str().ok()).and_then(|s| s.strip_prefix("Bearer "));
            let token = self.bearer_token(registry, &realm, service.as_deref(), scope, &extra, rejected).await?;
            if Some(token.as_str()) == rejected {
                return Ok(None);
            }
            return Ok(Some(bearer_header(registry, &token)?));
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            lock(&self.inner.auth_modes).insert(registry.to_owned(), AuthMode::Basic);
            if let Some(header) = self.credential(registry).as_ref().map(basic_header)
                && sent != Some(&header)
            {
                return Ok(Some(header));
            }
        }
        Ok(None)
    }

    /// A token for `scope` from the cache, else from the realm. `rejected` is a token the
    /// registry just refused: it is not handed out again.
    async fn bearer_token(
        &self,
        registry: &str,
        realm: &Url,
        service: Option<&str>,
        scope: &Scope,
        extra_scopes: &[String],
        rejected: Option<&str>,
    ) -> Result<String> {
        let mut scopes = scope.to_strings();
        let slot = self.inner.tokens.slot(registry, &self.account_key(registry), &scopes.join(" "));
        let mut cached = slot.lock().await;
        if let Some(token) = cached.as_ref()
            && token.is_fresh(Instant::now())
            && Some(token.value.as_str()) != rejected
        {
            return Ok(token.value.clone());
        }
        for extra in extra_scopes {
            if !scopes.contains(extra) {
                scopes.push(extra.clone());
            }
        }
        let token = self.fetch_token(registry, realm, service, &scopes).await?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }

    async fn fetch_token(
        &self,
        registry: &str,
        realm: &Url,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<Token> {
        let mut url = realm.clone();
        if service.is_some() || !scopes.is_empty() {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for scope in scopes {
                query.append_pair("scope", scope);
            }
        }
        let credential = self.credential(registry);
        let credential = credential.as_ref();
        let realm_host = host_port(&url);
        if credential.is_some() && url.scheme() == "http" && !self.plain_http_allowed(&realm_host) {
            return Err(protocol(
                registry,
                "authentication",
                401,
                &format!("refusing to send credentials to the plain-http token endpoint {realm_host}"),
            ));
        }
        self.check_egress(registry, &url)?;
        let policy = &self.inner.config.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut builder = self.inner.http.get(url.clone());
            if let Some(c) = credential {
                builder = builder.basic_auth(&c.username, Some(&c.password));
            }
            let resp = match builder.send().await {
                Ok(resp) => resp,
                Err(e) if attempt < policy.max_attempts && egress_denial(registry, &e).is_none() => {
                    tracing::debug!(%registry, attempt, error = %error_chain(&e), "retrying token request");
                    let delay = policy.backoff(attempt);
                    crate::metrics::request(registry, None);
                    crate::metrics::retry(registry, delay, false);
                    tokio::time::sleep(delay).await;
                    continue;
                }
                Err(e) => {
                    return Err(egress_denial(registry, &e).unwrap_or_else(|| Error::Unreachable {
                        registry: format!("{registry} (token endpoint {realm_host})"),
                        cause: error_chain(&e),
                    }));
                }
            };
            let status = resp.status();
            crate::metrics::request(registry, Some(status.as_u16()));
            tracing::debug!(%registry, %status, realm = %realm_host, "token endpoint answered");
            if is_redirect(status) {
                return Err(redirect_refused(registry, "GET token", status));
            }
            if status == StatusCode::OK {
                let body = read_body(registry, resp, MAX_ERROR_BODY, "GET token").await?;
                let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
                    protocol(registry, "GET token", 200, &format!("the token response is not JSON: {e}"))
                })?;
                let Some(value) = parsed.token.or(parsed.access_token).filter(|t| !t.is_empty()) else {
                    return Err(protocol(registry, "GET token", 200, "the token response holds no token"));
                };
                return Ok(Token::new(value, parsed.expires_in, Instant::now()));
            }
            if matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504) && attempt < policy.max_attempts {
                let asked = header_str(resp.headers(), header::RETRY_AFTER.as_str())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                if !(status == StatusCode::TOO_MANY_REQUESTS && asked.is_some_and(|d| d > policy.max_delay)) {
                    let delay = asked.map_or_else(|| policy.backoff(attempt), |d| policy.retry_after(d));
                    crate::metrics::retry(registry, delay, asked.is_some());
                    tokio::time::sleep(delay).await;
                    continue;
                }
            }
            return Err(self.error_from(registry, None, "GET token", None, resp).await);
        }
    }

    async fn put_monolithic(
        &self,
        upload: &UploadLocation,
        digest: &Digest,
        size: u64,
        source: &SharedSource,
    ) -> Result<(), PutFailure> {
        let repo = &upload.repo;
        let registry = repo.registry();
        let mut url = upload.url.clone();
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        UploadSource::lock(source).start_recording();
        let body = reqwest::Body::wrap_stream(SourceBody(source.clone()));
        let result = self.send_stream(repo, url, headers, body).await;
        // A failure of the caller's stream explains a failed request best.
        if let Some(error) = UploadSource::lock(source).take_error() {
            return Err(PutFailure::Failed(error));
        }
        let sent = result.map_err(PutFailure::Failed)?;
        match sent.resp.status().as_u16() {
            201 | 204 => {
                UploadSource::lock(source).stop_recording();
                check_announced_digest(sent.resp.headers(), digest).map_err(PutFailure::Failed)
            }
            413 | 416 => Err(PutFailure::Refused(sent.resp.status())),
            _ => Err(PutFailure::Failed(
                self.error_from(registry, Some(repo), "PUT blob", Some(Missing::Upload), sent.resp).await,
            )),
        }
    }

    async fn put_chunked(&self, upload: &UploadLocation, digest: &Digest, source: &SharedSource) -> Result<()> {
        let repo = &upload.repo;
        let registry = repo.registry();
        let min_chunk = upload.min_chunk.and_then(|m| usize::try_from(m).ok()).unwrap_or(0);
        let chunk_size = self.inner.config.upload_chunk_size.max(min_chunk).max(1);
        let scope = Scope::Push(repo.repository().to_owned());
        let mut location = upload.url.clone();
        let mut offset: u64 = 0;
        let result = async {
            while let Some(chunk) = read_chunk(source, chunk_size).await? {
                let end = offset + chunk.len() as u64 - 1;
                let req = Req::new(Method::PATCH, location.clone(), scope.clone(), "PATCH blob upload")
                    .header(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"))
                    .header(header::CONTENT_RANGE, header_value(&format!("{offset}-{end}"))?)
                    .body(chunk)
                    .no_retry();
                let sent = self.send(registry, &req).await?;
                if sent.resp.status() != StatusCode::ACCEPTED {
                    return Err(self
                        .error_from(registry, Some(repo), "PATCH blob upload", Some(Missing::Upload), sent.resp)
                        .await);
                }
                if let Some(next) = header_str(sent.resp.headers(), header::LOCATION.as_str()) {
                    location = location
                        .join(next)
                        .map_err(|_| protocol(registry, "PATCH blob upload", 202, "its Location is not a URL"))?;
                }
                offset = end + 1;
            }
            let mut url = location.clone();
            url.query_pairs_mut().append_pair("digest", digest.as_str());
            let req = Req::new(Method::PUT, url, scope.clone(), "PUT blob upload").body(Bytes::new()).no_retry();
            let sent = self.send(registry, &req).await?;
            if !matches!(sent.resp.status().as_u16(), 201 | 204) {
                return Err(self
                    .error_from(registry, Some(repo), "PUT blob upload", Some(Missing::Upload), sent.resp)
                    .await);
            }
            check_announced_digest(sent.resp.headers(), digest)
        }
        .await;
        if result.is_err() {
            self.cancel_quietly(repo, &location).await;
        }
        result
    }

    /// Cancels an upload session after a failure, so that the registry drops its partial data
    /// now rather than at its next purge. Failing to cancel is not worth reporting.
    async fn cancel_quietly(&self, repo: &Repo, location: &Url) {
        let req =
            Req::new(Method::DELETE, location.clone(), Scope::Push(repo.repository().to_owned()), "DELETE blob upload")
                .no_retry();
        match self.send(repo.registry(), &req).await {
            Ok(sent) => {
                tracing::debug!(registry = repo.registry(), status = %sent.resp.status(), "cancelled blob upload")
            }
            Err(e) => tracing::debug!(registry = repo.registry(), error = %e, "could not cancel blob upload"),
        }
    }

    async fn paginate(
        &self,
        registry: &str,
        repo: Option<&Repo>,
        first: Url,
        scope: Scope,
        operation: &'static str,
        parse: impl Fn(&[u8]) -> serde_json::Result<Vec<String>>,
    ) -> Result<Vec<String>> {
        let mut items = Vec::new();
        let mut url = first;
        for _ in 0..MAX_PAGES {
            let sent = self.send(registry, &Req::new(Method::GET, url.clone(), scope.clone(), operation)).await?;
            let resp = sent.resp;
            if resp.status() != StatusCode::OK {
                let missing = repo.map(|_| Missing::Repository);
                return Err(self.error_from(registry, repo, operation, missing, resp).await);
            }
            let next = next_link(resp.headers().get_all(header::LINK).iter().filter_map(|v| v.to_str().ok()));
            let body = read_body(registry, resp, MAX_LIST_PAGE_SIZE, operation).await?;
            let page =
                parse(&body).map_err(|e| protocol(registry, operation, 200, &format!("unexpected body: {e}")))?;
            items.extend(page);
            let Some(next) = next else {
                return Ok(items);
            };
            let next = url.join(&next).map_err(|_| protocol(registry, operation, 200, "its next Link is not a URL"))?;
            if !self.is_registry_origin(registry, &next) {
                return Err(protocol(registry, operation, 200, "its next Link leads to another host"));
            }
            url = next;
        }
        Err(protocol(registry, operation, 200, &format!("more than {MAX_PAGES} pages")))
    }

    /// The error for an answer the operation did not expect.
    async fn error_from(
        &self,
        registry: &str,
        repo: Option<&Repo>,
        operation: &str,
        missing: Option<Missing>,
        resp: Response,
    ) -> Error {
        let status = resp.status();
        let retry_after = header_str(resp.headers(), header::RETRY_AFTER.as_str())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = read_body(registry, resp, MAX_ERROR_BODY, operation).await.unwrap_or_default();
        let (code, message) = parse_error_body(&body);
        let registry = registry.to_owned();
        match (status.as_u16(), missing, repo) {
            (401, _, _) => {
                Error::Unauthorized { username: self.credential(&registry).map(|c| c.username), registry, message }
            }
            (403, _, _) => Error::Denied { registry, message },
            (404, Some(missing), Some(repo)) => Error::NotFound {
                registry,
                repository: repo.repository().to_owned(),
                what: if code.as_deref() == Some("NAME_UNKNOWN") { Missing::Repository } else { missing },
            },
            (429, _, _) => Error::RateLimited { registry, retry_after },
            (s, _, _) => Error::Protocol {
                registry,
                operation: operation.to_owned(),
                status: s,
                code,
                message: message.unwrap_or_else(|| status.canonical_reason().unwrap_or("unexpected status").to_owned()),
            },
        }
    }

    // ---- addressing -----------------------------------------------------------------------

    /// `https://HOST/` (`http://` for loopback and insecure registries); Docker Hub's API is
    /// at `registry-1.docker.io`.
    fn base_url(&self, registry: &str) -> Result<Url> {
        let host = if registry == DOCKER_HUB { DOCKER_HUB_API } else { registry };
        let scheme = if self.plain_http_allowed(registry) { "http" } else { "https" };
        Url::parse(&format!("{scheme}://{host}/"))
            .map_err(|e| Error::InvalidInput(format!("registry `{registry}` does not make a URL: {e}")))
    }

    fn repo_url(&self, repo: &Repo, suffix: &str) -> Result<Url> {
        // Repository names, tags and digests are validated: nothing in them needs escaping.
        self.base_url(repo.registry())?
            .join(&format!("v2/{}/{suffix}", repo.repository()))
            .map_err(|e| Error::InvalidInput(e.to_string()))
    }

    fn plain_http_allowed(&self, host: &str) -> bool {
        is_loopback(host)
            || self.inner.insecure.contains(host)
            || self.scoped.as_deref().is_some_and(|s| s.insecure && s.registry == host)
    }

    /// Refuses a URL whose host is an IP address the egress policy refuses. Host names are
    /// checked after resolution, by the resolver; IP literals never reach it.
    fn check_egress(&self, registry: &str, url: &Url) -> Result<()> {
        match literal_refusal(&self.inner.egress, url) {
            Some(refusal) => Err(refusal.into_error(registry)),
            None => Ok(()),
        }
    }

    /// Whether `url` is on the registry's own scheme, host and port: only there does our
    /// `Authorization` go.
    fn is_registry_origin(&self, registry: &str, url: &Url) -> bool {
        self.base_url(registry).is_ok_and(|base| {
            base.scheme() == url.scheme()
                && base.host_str() == url.host_str()
                && base.port_or_known_default() == url.port_or_known_default()
        })
    }
}

/// A registry name as a caller gave it, normalised and checked.
fn checked_registry(registry: &str) -> Result<String> {
    let registry = normalize_registry(registry);
    image_core::validate::registry_host(&registry)
        .map_err(|reason| Error::InvalidInput(format!("registry `{registry}`: {reason}")))?;
    Ok(registry)
}

fn upload_location(repo: &Repo, request_url: &Url, resp: &Response) -> Result<UploadLocation> {
    let registry = repo.registry();
    let location = header_str(resp.headers(), header::LOCATION.as_str())
        .ok_or_else(|| protocol(registry, "POST blob upload", resp.status().as_u16(), "the answer has no Location"))?;
    // Relative (`/v2/…/uploads/<id>?_state=…`) or absolute; `join` handles both.
    let url = request_url
        .join(location)
        .map_err(|_| protocol(registry, "POST blob upload", resp.status().as_u16(), "its Location is not a URL"))?;
    let min_chunk = header_str(resp.headers(), "oci-chunk-min-length").and_then(|v| v.parse().ok());
    Ok(UploadLocation { repo: repo.clone(), url, min_chunk })
}

/// A manifest's media type, and whether it is schema 1.
struct ManifestType {
    media_type: String,
    schema1: Option<String>,
}

/// The media type from `Content-Type`, or from the manifest itself when the header is missing
/// or generic. Schema 1 is recognised by either.
fn manifest_media_type(header_type: Option<String>, bytes: &[u8]) -> ManifestType {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u32>,
        manifests: Option<serde::de::IgnoredAny>,
        signatures: Option<serde::de::IgnoredAny>,
    }
    let probe = serde_json::from_slice::<Probe>(bytes).ok();
    let generic =
        |t: &str| matches!(t, "application/json" | "text/plain" | "application/octet-stream" | "binary/octet-stream");
    let from_body = || {
        let probe = probe.as_ref()?;
        if let Some(t) = &probe.media_type {
            return Some(t.clone());
        }
        Some(match (probe.schema_version, &probe.manifests, &probe.signatures) {
            (Some(1), _, Some(_)) => media_type::DOCKER_SCHEMA1_SIGNED.to_owned(),
            (Some(1), _, None) => media_type::DOCKER_SCHEMA1.to_owned(),
            (_, Some(_), _) => media_type::OCI_INDEX.to_owned(),
            _ => media_type::OCI_MANIFEST.to_owned(),
        })
    };
    let media_type = match header_type {
        Some(t) if !generic(&t) => t,
        other => from_body().or(other).unwrap_or_else(|| "application/octet-stream".to_owned()),
    };
    let schema1 = media_type::is_schema1(&media_type) || probe.as_ref().is_some_and(|p| p.schema_version == Some(1));
    ManifestType { schema1: schema1.then(|| media_type.clone()), media_type }
}

/// Checks a `Docker-Content-Digest` answer against the digest we computed.
fn check_announced_digest(headers: &HeaderMap, digest: &Digest) -> Result<()> {
    match header_str(headers, DOCKER_CONTENT_DIGEST).and_then(|d| d.parse::<Digest>().ok()) {
        Some(announced) if &announced != digest => {
            Err(Error::DigestMismatch { expected: digest.clone(), actual: announced })
        }
        _ => Ok(()),
    }
}

/// Reads a whole (small) body, refusing more than `limit` bytes.
async fn read_body(registry: &str, resp: Response, limit: usize, operation: &str) -> Result<Bytes> {
    let status = resp.status().as_u16();
    let mut body = bytes::BytesMut::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::Interrupted { registry: registry.to_owned(), cause: error_chain(&e) })?;
        if body.len() + chunk.len() > limit {
            return Err(protocol(registry, operation, status, &format!("the answer is larger than {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn protocol(registry: &str, operation: &str, status: u16, message: &str) -> Error {
    Error::Protocol {
        registry: registry.to_owned(),
        operation: operation.to_owned(),
        status,
        code: None,
        message: message.to_owned(),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn header_value(s: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(s).map_err(|_| Error::InvalidInput(format!("`{s}` cannot be sent in an HTTP header")))
}

/// `Content-Type` without parameters.
fn content_type(headers: &HeaderMap) -> Option<String> {
    let value = header_str(headers, header::CONTENT_TYPE.as_str())?;
    let media_type = value.split(';').next().unwrap_or("").trim();
    (!media_type.is_empty()).then(|| media_type.to_owned())
}

fn basic_header(credential: &Credential) -> HeaderValue {
    use base64::Engine as _;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", credential.username, credential.password));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).unwrap_or_else(|_| HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}

fn bearer_header(registry: &str, token: &str) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| protocol(registry, "GET token", 200, "the token cannot be sent in a header"))?;
    value.set_sensitive(true);
    Ok(value)
}

fn host_port(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        _ => String::new(),
    }
}

/// The refusal of a URL whose host is an IP address the policy refuses.
fn literal_refusal(policy: &EgressPolicy, url: &Url) -> Option<EgressRefusal> {
    let host = url.host_str()?;
    let ip: IpAddr = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host).parse().ok()?;
    policy.refuses(ip).then(|| EgressRefusal { host: ip.to_string(), addr: None })
}

/// The egress policy's refusal, when that is what made a request fail (in the resolver or in the
/// redirect policy).
fn egress_denial(registry: &str, error: &reqwest::Error) -> Option<Error> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(refusal) = cause.downcast_ref::<EgressRefusal>() {
            return Some(refusal.clone().into_error(registry));
        }
        source = cause.source();
    }
    None
}

fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

fn redirect_refused(registry: &str, operation: &str, status: StatusCode) -> Error {
    protocol(registry, operation, status.as_u16(), "redirects are followed only for blob downloads")
}

/// What went wrong, from the error's causes, without the URL reqwest puts in its own message
/// (upload URLs and redirect targets may carry signatures).
fn error_chain(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_redirect() {
        "redirect refused"
    } else if error.is_body() || error.is_decode() {
        "reading the body failed"
    } else {
        "request failed"
    };
    let mut parts = vec![kind.to_owned()];
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) && !text.contains("://") {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_bundles_must_hold_certificates() {
        let config =
            |pem: &str| ClientConfig { ca_certificates_pem: vec![pem.as_bytes().to_vec()], ..ClientConfig::default() };
        let err = RegistryClient::new(config("not a certificate")).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
        let err =
            RegistryClient::new(config("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
        assert!(RegistryClient::new(ClientConfig::default()).is_ok());
    }

    #[test]
    fn media_types() {
        let check = |header: Option<&str>, body: &str, expect: &str, schema1: bool| {
            let t = manifest_media_type(header.map(str::to_owned), body.as_bytes());
            assert_eq!((t.media_type.as_str(), t.schema1.is_some()), (expect, schema1), "{header:?} {body}");
        };
        check(Some(media_type::OCI_MANIFEST), "{}", media_type::OCI_MANIFEST, false);
        check(Some("application/json"), r#"{"mediaType":"x/y"}"#, "x/y", false);
        check(None, r#"{"schemaVersion":2,"manifests":[]}"#, media_type::OCI_INDEX, false);
        check(None, r#"{"schemaVersion":2,"layers":[]}"#, media_type::OCI_MANIFEST, false);
        check(Some(media_type::DOCKER_SCHEMA1_SIGNED), "{}", media_type::DOCKER_SCHEMA1_SIGNED, true);
        check(Some(media_type::DOCKER_SCHEMA1), "{}", media_type::DOCKER_SCHEMA1, true);
        check(
            Some("application/json"),
            r#"{"schemaVersion":1,"signatures":[]}"#,
            media_type::DOCKER_SCHEMA1_SIGNED,
            true,
        );
        check(None, r#"{"schemaVersion":1}"#, media_type::DOCKER_SCHEMA1, true);
        check(Some(media_type::DOCKER_MANIFEST), r#"{"schemaVersion":1}"#, media_type::DOCKER_MANIFEST, true);
        check(Some("text/plain"), "not json", "text/plain", false);
        check(None, "not json", "application/octet-stream", false);
    }

    #[test]
    fn schemes_and_hosts() {
        let client = RegistryClient::new(ClientConfig {
            insecure_registries: vec!["http://reg.internal:5000".into()],
            ..ClientConfig::default()
        })
        .unwrap();
        let base = |r: &str| client.base_url(r).unwrap().to_string();
        assert_eq!(base("docker.io"), "https://registry-1.docker.io/");
        assert_eq!(base("quay.io"), "https://quay.io/");
        assert_eq!(base("reg.internal:5000"), "http://reg.internal:5000/");
        assert_eq!(base("reg.internal:5001"), "https://reg.internal:5001/");
        assert_eq!(base("localhost:5000"), "http://localhost:5000/");
        assert_eq!(base("127.0.0.1:5000"), "http://127.0.0.1:5000/");
        assert_eq!(base("[::1]:5000"), "http://[::1]:5000/");
        let repo = Repo::new("localhost:5000", "a/b").unwrap();
        assert_eq!(client.repo_url(&repo, "tags/list").unwrap().as_str(), "http://localhost:5000/v2/a/b/tags/list");
        let origin = |r: &str, u: &str| client.is_registry_origin(r, &Url::parse(u).unwrap());
        assert!(origin("docker.io", "https://registry-1.docker.io/v2/x"));
        assert!(origin("docker.io", "https://registry-1.docker.io:443/v2/x"));
        assert!(!origin("docker.io", "https://production.cloudflare.docker.com/x"));
        assert!(!origin("localhost:5000", "http://localhost:5001/x"));
        assert!(!origin("localhost:5000", "https://localhost:5000/x"));
    }

    #[test]
    fn upload_locations_resolve_against_the_request() {
        let base = Url::parse("http://127.0.0.1:5000/v2/a/b/blobs/uploads/").unwrap();
        for (location, expect) in [
            ("/v2/a/b/blobs/uploads/u1?_state=xyz", "http://127.0.0.1:5000/v2/a/b/blobs/uploads/u1?_state=xyz"),
            ("http://127.0.0.1:5000/v2/a/b/blobs/uploads/u2", "http://127.0.0.1:5000/v2/a/b/blobs/uploads/u2"),
            ("https://upload.example/x?sig=1", "https://upload.example/x?sig=1"),
            ("u3", "http://127.0.0.1:5000/v2/a/b/blobs/uploads/u3"),
        ] {
            let mut url = base.join(location).unwrap();
            assert_eq!(url.as_str(), expect);
            url.query_pairs_mut().append_pair("digest", "sha256:00");
            assert!(url.as_str().ends_with("digest=sha256%3A00"), "{url}");
            assert_eq!(url.query_pairs().filter(|(k, _)| k == "digest").count(), 1);
        }
    }

    #[test]
    fn debug_output_names_no_secrets() {
        let mut credentials = HashMap::new();
        credentials.insert("https://index.docker.io/v1/".to_owned(), Credential::new("bob", "hunter2"));
        let client = RegistryClient::new(ClientConfig { credentials, ..ClientConfig::default() }).unwrap();
        let debug = format!("{client:?}");
        assert!(debug.contains("docker.io") && !debug.contains("hunter2"), "{debug}");
    }
}
