//! A stand-in Harbor: the part of Harbor's REST API v2.0 imagegate uses, in front of a real Distribution
//! registry that serves `/v2/`.
//!
//! [`Harbor::start`] listens on `127.0.0.1:<free port>` and follows the API's contract
//! (`../shared/contracts/harbor-v2.0-subset.yaml`) where imagegate depends on it:
//!
//! * HTTP Basic for users and robot accounts (`robot$name`); `/health` and `/systeminfo` need none; a
//!   request that carries a `Cookie` and changes something is refused with 403 (Harbor's CSRF check
//!   applies to cookie sessions);
//! * repository names in paths URL-encoded twice (`a%252Fb`); a name encoded once is not found, as in
//!   Harbor, whose router decodes it into extra path segments;
//! * listings paged by `page`/`page_size` (at most 100) with `X-Total-Count` and a host-less `Link`;
//!   `null` for empty arrays, `0001-01-01T00:00:00.000Z` for never pulled, no `scan_overview` key on
//!   an unscanned artifact, and a map keyed by report MIME type on a scanned one;
//! * projects: `library` (public) exists; others are created by `POST /projects`; a push over `/v2/` into
//!   a project that does not exist is refused (404 `NAME_UNKNOWN`), as Harbor does;
//! * a simulated scanner ([`Harbor::set_scan_result`], off by default: no scanner, `422`): a scan request
//!   makes the artifact's overview `Running` for the next read, then `Success` with the counts the test
//!   set;
//! * [`Harbor::set_unhealthy`] makes one component unhealthy, [`Harbor::stop`] takes the whole thing down.
//!
//! Dropping it stops it and the registry behind it.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Empty, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::Distribution;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = UnsyncBoxBody<Bytes, BoxError>;
/// A request's early answer (an error) in place of what it asked for.
type Refusal = Box<Response<Body>>;

/// The administrator every stand-in starts with.
pub const ADMIN: (&str, &str) = ("admin", "Harbor12345");
/// The report MIME type of the simulated scanner's overviews.
pub const VULNERABILITY_REPORT: &str = "application/vnd.security.vulnerability.report; version=1.1";
const NEVER: &str = "0001-01-01T00:00:00.000Z";
const COMPONENTS: [&str; 7] = ["core", "portal", "jobservice", "registry", "registryctl", "database", "redis"];
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// A stand-in Harbor in front of a real Distribution registry.
pub struct Harbor {
    registry: Distribution,
    state: Arc<State>,
    addr: SocketAddr,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Harbor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harbor").field("host", &self.host()).finish_non_exhaustive()
    }
}

struct State {
    backend: String,
    storage: std::path::PathBuf,
    http: reqwest::Client,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    users: HashMap<String, String>,
    /// Name → (id, public).
    projects: BTreeMap<String, (u64, bool)>,
    next_project_id: u64,
    unhealthy: BTreeMap<String, String>,
    /// The scanner's findings, by Harbor's severity names; `None`: no scanner.
    scanner: Option<Vec<(String, u64)>>,
    /// Scans asked for, by digest: reads left that show `Running`.
    scans: HashMap<String, u32>,
    scan_requests: Vec<(String, String)>,
    /// When each digest was first seen, as its push time.
    first_seen: HashMap<String, String>,
}

impl Drop for Harbor {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Harbor {
    /// Starts a Distribution registry and the stand-in in front of it.
    pub async fn start() -> Harbor {
        let registry = Distribution::start().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("test-support: binding a Harbor port");
        let addr = listener.local_addr().expect("test-support: the Harbor's address");
        let mut inner = Inner { next_project_id: 2, ..Inner::default() };
        inner.users.insert(ADMIN.0.to_owned(), ADMIN.1.to_owned());
        inner.projects.insert("library".to_owned(), (1, true));
        let state = Arc::new(State {
            backend: registry.url(),
            storage: registry.storage_dir(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("test-support: building the Harbor's HTTP client"),
            inner: Mutex::new(inner),
        });
        let task = tokio::spawn(serve(listener, state.clone(), addr.to_string()));
        Harbor { registry, state, addr, task: Mutex::new(Some(task)) }
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// The Distribution registry behind `/v2/`, to push into directly (beside Harbor's checks).
    pub fn registry(&self) -> &Distribution {
        &self.registry
    }

    /// Adds a user or a robot account (`robot$imagegate`, `robot$project+name`).
    pub fn add_account(&self, name: &str, password: &str) {
        lock(&self.state.inner).users.insert(name.to_owned(), password.to_owned());
    }

    /// Creates a project directly, as an administrator would in the UI.
    pub fn create_project(&self, name: &str, public: bool) {
        let mut inner = lock(&self.state.inner);
        let id = inner.next_project_id;
        inner.next_project_id += 1;
        inner.projects.insert(name.to_owned(), (id, public));
    }

    /// Whether a project exists, and whether it is public.
    pub fn project(&self, name: &str) -> Option<bool> {
        lock(&self.state.inner).projects.get(name).map(|(_, public)| *public)
    }

    /// Turns the scanner on: every scan finds these vulnerabilities (`("Critical", 1)`, `("High", 2)`).
    pub fn set_scan_result(&self, findings: &[(&str, u64)]) {
        lock(&self.state.inner).scanner = Some(findings.iter().map(|(s, n)| ((*s).to_owned(), *n)).collect());
    }

    /// Scans an artifact as Harbor's own scan-on-push would, without a request: its overview is `Success`
    /// from the next read on.
    pub fn scan_now(&self, digest: &str) {
        lock(&self.state.inner).scans.insert(digest.to_owned(), 0);
    }

    /// `(repository, digest)` of every scan asked for so far.
    pub fn scan_requests(&self) -> Vec<(String, String)> {
        lock(&self.state.inner).scan_requests.clone()
    }

    /// Makes one component (`redis`, `database`, …) unhealthy with `error`, or healthy again with `None`.
    pub fn set_unhealthy(&self, component: &str, error: Option<&str>) {
        let mut inner = lock(&self.state.inner);
        match error {
            Some(error) => inner.unhealthy.insert(component.to_owned(), error.to_owned()),
            None => inner.unhealthy.remove(component),
        };
    }

    /// Stops answering: the port is closed and open connections are cut.
    pub fn stop(&self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

async fn serve(listener: tokio::net::TcpListener, state: Arc<State>, host: String) {
    // Owned here, so that aborting this task aborts every connection with it.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let (state, host) = (state.clone(), host.clone());
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (state, host) = (state.clone(), host.clone());
                        async move { Ok::<_, Infallible>(handle(&state, &host, req).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(state: &Arc<State>, host: &str, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if path == "/v2" || path.starts_with("/v2/") {
        return v2(state, host, req).await;
    }
    let Some(api) = path.strip_prefix("/api/v2.0/") else {
        return errors(StatusCode::NOT_FOUND, "NOT_FOUND", "not found");
    };
    let segments: Vec<String> = api.split('/').map(percent_decode).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method().clone();
    let query = parse_query(req.uri().query().unwrap_or(""));
    let anonymous = matches!(segments.as_slice(), ["health"] | ["systeminfo"]);
    if !anonymous {
        if let Err(resp) = authenticate(state, &req, false) {
            return *resp;
        }
        if req.headers().contains_key(header::COOKIE) && !matches!(method, Method::GET | Method::HEAD) {
            return errors(StatusCode::FORBIDDEN, "FORBIDDEN", "CSRF token not found in request");
        }
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return errors(StatusCode::BAD_REQUEST, "BAD_REQUEST", "unreadable body"),
    };
    match (&method, segments.as_slice()) {
        (&Method::GET, ["systeminfo"]) => json_response(
            StatusCode::OK,
            &json!({"harbor_version": "v2.15.2-standin", "auth_mode": "db_auth", "registry_url": host, "with_notary": false}),
        ),
        (&Method::GET, ["health"]) => health(state),
        (&Method::GET, ["statistics"]) => statistics(state).await,
        (&Method::HEAD, ["projects"]) => match query.get("project_name") {
            Some(name) if lock(&state.inner).projects.contains_key(name) => status_only(StatusCode::OK),
            Some(_) => status_only(StatusCode::NOT_FOUND),
            None => status_only(StatusCode::BAD_REQUEST),
        },
        (&Method::GET, ["projects"]) => {
            let projects: Vec<Value> = lock(&state.inner)
                .projects
                .iter()
                .map(|(name, (id, public))| {
                    json!({"project_id": id, "name": name, "metadata": {"public": public.to_string()}, "repo_count": 0})
                })
                .collect();
            paged(&method, "/api/v2.0/projects", &query, projects)
        }
        (&Method::POST, ["projects"]) => create_project(state, &body),
        (&Method::GET, ["projects", project, "repositories"]) => repositories(state, project, &query).await,
        (_, ["projects", project, "repositories", repository, "artifacts", rest @ ..]) => {
            if !lock(&state.inner).projects.contains_key(*project) {
                return errors(StatusCode::NOT_FOUND, "NOT_FOUND", &format!("project {project} not found"));
            }
            // Encoded once, the name's `/` split the path here, as in Harbor's router.
            let Some(repository) = once_more(repository) else {
                return errors(StatusCode::NOT_FOUND, "NOT_FOUND", "not found");
            };
            let full = format!("{project}/{repository}");
            artifacts(state, &method, &full, rest, &query).await
        }
        _ => errors(StatusCode::NOT_FOUND, "NOT_FOUND", "not found"),
    }
}

/// The second decoding of a name Harbor wants encoded twice: `library%2Fnginx` → `library/nginx`. A
/// segment that held a `/` after the first decoding was encoded only once.
fn once_more(segment: &str) -> Option<String> {
    (!segment.contains('/')).then(|| percent_decode(segment))
}

fn authenticate(state: &State, req: &Request<Incoming>, registry: bool) -> Result<(), Refusal> {
    use base64::Engine as _;
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let ok = given
        .as_deref()
        .and_then(|g| g.split_once(':'))
        .is_some_and(|(user, password)| lock(&state.inner).users.get(user).is_some_and(|p| p == password));
    if ok {
        return Ok(());
    }
    let mut resp = errors(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "unauthorized");
    if registry {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"harbor\""));
    }
    Err(Box::new(resp))
}

fn health(state: &State) -> Response<Body> {
    let inner = lock(&state.inner);
    let mut names: Vec<&str> = COMPONENTS.to_vec();
    if inner.scanner.is_some() {
        names.push("trivy");
    }
    let components: Vec<Value> = names
        .iter()
        .map(|name| match inner.unhealthy.get(*name) {
            Some(error) => json!({"name": name, "status": "unhealthy", "error": error}),
            None => json!({"name": name, "status": "healthy"}),
        })
        .collect();
    let status = if inner.unhealthy.is_empty() { "healthy" } else { "unhealthy" };
    json_response(StatusCode::OK, &json!({"status": status, "components": components}))
}

async fn statistics(state: &State) -> Response<Body> {
    let repositories = match catalog(state).await {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let inner = lock(&state.inner);
    let public_projects = inner.projects.values().filter(|(_, p)| *p).count();
    let private_projects = inner.projects.len() - public_projects;
    let is_public = |repo: &str| repo.split('/').next().and_then(|p| inner.projects.get(p)).is_some_and(|(_, p)| *p);
    let public_repos = repositories.iter().filter(|r| is_public(r)).count();
    let private_repos = repositories.len() - public_repos;
    json_response(
        StatusCode::OK,
        &json!({
            "private_project_count": private_projects,
            "private_repo_count": private_repos,
            "public_project_count": public_projects,
            "public_repo_count": public_repos,
            "total_project_count": inner.projects.len(),
            "total_repo_count": repositories.len(),
            "total_storage_consumption": dir_size(&state.storage),
        }),
    )
}

fn create_project(state: &State, body: &[u8]) -> Response<Body> {
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return errors(StatusCode::BAD_REQUEST, "BAD_REQUEST", "the body is not a JSON project request");
    };
    let Some(name) = req.get("project_name").and_then(Value::as_str) else {
        return errors(StatusCode::BAD_REQUEST, "BAD_REQUEST", "project_name is required");
    };
    let valid = !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(&c))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if !valid {
        return errors(StatusCode::BAD_REQUEST, "BAD_REQUEST", &format!("invalid project name {name:?}"));
    }
    let public = req
        .get("public")
        .and_then(Value::as_bool)
        .unwrap_or_else(|| req.pointer("/metadata/public").and_then(Value::as_str).is_some_and(|p| p == "true"));
    let mut inner = lock(&state.inner);
    if inner.projects.contains_key(name) {
        return errors(StatusCode::CONFLICT, "CONFLICT", &format!("The project named {name} already exists"));
    }
    let id = inner.next_project_id;
    inner.next_project_id += 1;
    inner.projects.insert(name.to_owned(), (id, public));
    let mut resp = status_only(StatusCode::CREATED);
    resp.headers_mut().insert(header::LOCATION, header_value(&format!("/api/v2.0/projects/{id}")));
    resp
}

async fn repositories(state: &State, project: &str, query: &HashMap<String, String>) -> Response<Body> {
    let Some(project_id) = lock(&state.inner).projects.get(project).map(|(id, _)| *id) else {
        return errors(StatusCode::NOT_FOUND, "NOT_FOUND", &format!("project {project} not found"));
    };
    let names = match catalog(state).await {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let mut items = Vec::new();
    for (i, name) in names.iter().filter(|n| n.split('/').next() == Some(project)).enumerate() {
        let count = match tagged_digests(state, name).await {
            Ok(d) => d.len(),
            Err(resp) => return *resp,
        };
        items.push(json!({
            "id": i + 1,
            "project_id": project_id,
            "name": name,
            "artifact_count": count,
            "pull_count": 0,
            "creation_time": "2026-12-01T00:00:00.000Z",
            "update_time": "2026-12-01T00:00:00.000Z",
        }));
    }
    paged(&Method::GET, &format!("/api/v2.0/projects/{project}/repositories"), query, items)
}

async fn artifacts(
    state: &Arc<State>,
    method: &Method,
    repository: &str,
    rest: &[&str],
    query: &HashMap<String, String>,
) -> Response<Body> {
    let flag = |name: &str, default: bool| query.get(name).map_or(default, |v| v == "true");
    let (with_tag, with_scan) = (flag("with_tag", true), flag("with_scan_overview", false));
    match (method, rest) {
        (&Method::GET, []) => {
            let digests = match tagged_digests(state, repository).await {
                Ok(d) => d,
                Err(resp) => return *resp,
            };
            let mut items = Vec::new();
            for (digest, tags) in digests {
                match artifact_json(state, repository, &digest, &tags, with_tag, with_scan).await {
                    Ok(Some(a)) => items.push(a),
                    Ok(None) => {}
                    Err(resp) => return *resp,
                }
            }
            let (project, name) = repository.split_once('/').unwrap_or((repository, ""));
            let base = format!("/api/v2.0/projects/{project}/repositories/{}/artifacts", name.replace('/', "%252F"));
            paged(method, &base, query, items)
        }
        (&Method::GET, [reference]) => match resolve(state, repository, reference).await {
            Ok(Some((digest, tags))) => {
                match artifact_json(state, repository, &digest, &tags, with_tag, with_scan).await {
                    Ok(Some(a)) => json_response(StatusCode::OK, &a),
                    Ok(None) => errors(StatusCode::NOT_FOUND, "NOT_FOUND", "artifact not found"),
                    Err(resp) => *resp,
                }
            }
            Ok(None) => {
                errors(StatusCode::NOT_FOUND, "NOT_FOUND", &format!("artifact {repository}@{reference} not found"))
            }
            Err(resp) => *resp,
        },
        (&Method::DELETE, [reference]) => match resolve(state, repository, reference).await {
            Ok(Some((digest, _))) => {
                let url = format!("{}/v2/{repository}/manifests/{digest}", state.backend);
                match state.http.delete(url).send().await {
                    Ok(r) if r.status().is_success() => status_only(StatusCode::OK),
                    Ok(r) => errors(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "UNKNOWN",
                        &format!("registry answered {}", r.status()),
                    ),
                    Err(e) => errors(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", &e.to_string()),
                }
            }
            Ok(None) => {
                errors(StatusCode::NOT_FOUND, "NOT_FOUND", &format!("artifact {repository}@{reference} not found"))
            }
            Err(resp) => *resp,
        },
        (&Method::POST, [reference, "scan"]) => match resolve(state, repository, reference).await {
            Ok(Some((digest, _))) => {
                let mut inner = lock(&state.inner);
                if inner.scanner.is_none() {
                    return errors(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "UNPROCESSABLE_ENTITY",
                        "no scanner is configured",
                    );
                }
                inner.scans.insert(digest.clone(), 1);
                inner.scan_requests.push((repository.to_owned(), digest));
                status_only(StatusCode::ACCEPTED)
            }
            Ok(None) => {
                errors(StatusCode::NOT_FOUND, "NOT_FOUND", &format!("artifact {repository}@{reference} not found"))
            }
            Err(resp) => *resp,
        },
        _ => errors(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "method not allowed"),
    }
}

/// The digest a tag or digest names, with the tags that point to it.
async fn resolve(state: &State, repository: &str, reference: &str) -> Result<Option<(String, Vec<String>)>, Refusal> {
    let digests = tagged_digests(state, repository).await?;
    if reference.starts_with("sha256:") {
        if let Some(tags) = digests.get(reference) {
            return Ok(Some((reference.to_owned(), tags.clone())));
        }
        // Untagged, but maybe there.
        return Ok(head(state, repository, reference).await?.map(|d| (d, Vec::new())));
    }
    Ok(digests.into_iter().find(|(_, tags)| tags.iter().any(|t| t == reference)))
}

/// Digest → tags of a repository, from the registry's tag list.
async fn tagged_digests(state: &State, repository: &str) -> Result<BTreeMap<String, Vec<String>>, Refusal> {
    let url = format!("{}/v2/{repository}/tags/list", state.backend);
    let resp = state.http.get(url).send().await.map_err(|e| Box::new(backend_error(&e)))?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(BTreeMap::new());
    }
    let body: Value = resp.json().await.map_err(|e| Box::new(backend_error(&e)))?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for tag in body["tags"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if let Some(digest) = head(state, repository, tag).await? {
            out.entry(digest).or_default().push(tag.to_owned());
        }
    }
    Ok(out)
}

async fn head(state: &State, repository: &str, reference: &str) -> Result<Option<String>, Refusal> {
    let url = format!("{}/v2/{repository}/manifests/{reference}", state.backend);
    let resp = state
        .http
        .head(url)
        .header(header::ACCEPT, ACCEPT_MANIFESTS)
        .send()
        .await
        .map_err(|e| Box::new(backend_error(&e)))?;
    if !resp.status().is_success() {
        return Ok(None);
    }
    Ok(resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_owned))
}

async fn catalog(state: &State) -> Result<Vec<String>, Refusal> {
    let url = format!("{}/v2/_catalog?n=1000", state.backend);
    let body: Value = state
        .http
        .get(url)
        .send()
        .await
        .map_err(|e| Box::new(backend_error(&e)))?
        .json()
        .await
        .map_err(|e| Box::new(backend_error(&e)))?;
    Ok(body["repositories"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect())
}

async fn get_json(state: &State, url: String) -> Result<Option<(Value, usize, String)>, Refusal> {
    let resp = state
        .http
        .get(url)
        .header(header::ACCEPT, ACCEPT_MANIFESTS)
        .send()
        .await
        .map_err(|e| Box::new(backend_error(&e)))?;
    if !resp.status().is_success() {
        return Ok(None);
    }
    let media_type = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let bytes = resp.bytes().await.map_err(|e| Box::new(backend_error(&e)))?;
    Ok(serde_json::from_slice(&bytes).ok().map(|v| (v, bytes.len(), media_type)))
}

/// One artifact in Harbor's shape.
async fn artifact_json(
    state: &State,
    repository: &str,
    digest: &str,
    tags: &[String],
    with_tag: bool,
    with_scan: bool,
) -> Result<Option<Value>, Refusal> {
    let Some((manifest, own_size, manifest_type)) =
        get_json(state, format!("{}/v2/{repository}/manifests/{digest}", state.backend)).await?
    else {
        return Ok(None);
    };
    let push_time = {
        let mut inner = lock(&state.inner);
        inner.first_seen.entry(digest.to_owned()).or_insert_with(now).clone()
    };
    let sizes = |list: &Value| list.as_array().into_iter().flatten().filter_map(|d| d["size"].as_u64()).sum::<u64>();
    let mut artifact = json!({
        "id": 1,
        "project_id": 1,
        "repository_id": 1,
        "repository_name": repository,
        "digest": digest,
        "manifest_media_type": manifest_type,
        "push_time": push_time,
        "pull_time": NEVER,
        "icon": "",
        "labels": null,
        "accessories": null,
        "annotations": null,
    });
    if let Some(children) = manifest.get("manifests") {
        let references: Vec<Value> = children
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| json!({"parent_id": 1, "child_id": 2, "child_digest": c["digest"], "platform": c["platform"], "urls": null}))
            .collect();
        artifact["type"] = json!("IMAGE");
        artifact["media_type"] = json!(manifest_type);
        artifact["size"] = json!(own_size as u64 + sizes(children));
        artifact["references"] = if references.is_empty() { Value::Null } else { json!(references) };
        artifact["extra_attrs"] = Value::Null;
    } else {
        let config = &manifest["config"];
        let config_size = config["size"].as_u64().unwrap_or(0);
        artifact["type"] = json!("IMAGE");
        artifact["media_type"] = config["mediaType"].clone();
        artifact["size"] = json!(own_size as u64 + config_size + sizes(&manifest["layers"]));
        artifact["references"] = Value::Null;
        let config_url = format!("{}/v2/{repository}/blobs/{}", state.backend, config["digest"].as_str().unwrap_or(""));
        let attrs = match get_json(state, config_url).await? {
            Some((c, _, _)) => {
                json!({"architecture": c["architecture"], "os": c["os"], "created": c["created"], "author": ""})
            }
            None => Value::Null,
        };
        artifact["extra_attrs"] = attrs;
    }
    artifact["tags"] = if with_tag && !tags.is_empty() {
        json!(tags
            .iter()
            .enumerate()
            .map(|(i, t)| json!({"id": i + 1, "repository_id": 1, "artifact_id": 1, "name": t, "push_time": push_time, "pull_time": NEVER, "immutable": false}))
            .collect::<Vec<_>>())
    } else {
        Value::Null
    };
    if with_scan && let Some(overview) = scan_overview(state, digest) {
        artifact["scan_overview"] = overview;
    }
    Ok(Some(artifact))
}

/// The overview of a scanned artifact: `Running` for the first read after the request, then `Success`.
fn scan_overview(state: &State, digest: &str) -> Option<Value> {
    let mut inner = lock(&state.inner);
    let findings = inner.scanner.clone().unwrap_or_default();
    let running = inner.scans.get_mut(digest)?;
    let summary = if *running > 0 {
        *running -= 1;
        json!({"report_id": "standin", "scan_status": "Running", "severity": "", "complete_percent": 50, "summary": null})
    } else {
        let order = ["Critical", "High", "Medium", "Low", "Unknown"];
        let severity =
            order.iter().find(|s| findings.iter().any(|(f, n)| f == *s && *n > 0)).copied().unwrap_or("None");
        let counts: serde_json::Map<String, Value> = findings.iter().map(|(s, n)| (s.clone(), json!(n))).collect();
        let total: u64 = findings.iter().map(|(_, n)| n).sum();
        json!({
            "report_id": "standin",
            "scan_status": "Success",
            "severity": severity,
            "duration": 1,
            "summary": {"total": total, "fixable": total, "summary": counts},
            "start_time": "2026-12-01T00:00:00Z",
            "end_time": "2026-12-01T00:00:01Z",
            "scanner": {"name": "Trivy", "vendor": "Aqua Security", "version": "v0.50.0"},
            "complete_percent": 100,
        })
    };
    Some(json!({ VULNERABILITY_REPORT: summary }))
}

/// A page of `items` per `page`/`page_size`, with `X-Total-Count` and a host-less `Link` to the previous
/// and next pages that keeps the other query parameters.
fn paged(method: &Method, base: &str, query: &HashMap<String, String>, items: Vec<Value>) -> Response<Body> {
    let number = |name: &str, default: u64| query.get(name).map_or(Some(default), |v| v.parse::<u64>().ok());
    let (Some(page), Some(size)) = (number("page", 1), number("page_size", 10)) else {
        return errors(StatusCode::BAD_REQUEST, "BAD_REQUEST", "page and page_size must be integers");
    };
    if page == 0 || size == 0 || size > 100 {
        return errors(StatusCode::BAD_REQUEST, "BAD_REQUEST", "page must be at least 1 and page_size 1 to 100");
    }
    let total = items.len() as u64;
    let start = ((page - 1) * size).min(total) as usize;
    let end = (page * size).min(total) as usize;
    let slice: Vec<Value> = items[start..end].to_vec();
    let mut others: Vec<(&String, &String)> = query.iter().filter(|(k, _)| *k != "page" && *k != "page_size").collect();
    others.sort();
    let extra: String = others.iter().map(|(k, v)| format!("&{k}={v}")).collect();
    let link = |p: u64, rel: &str| format!("<{base}?page={p}&page_size={size}{extra}>; rel=\"{rel}\"");
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page * size < total {
        links.push(link(page + 1, "next"));
    }
    // Harbor sends `null` for an empty page.
    let body = if slice.is_empty() { Value::Null } else { Value::Array(slice) };
    let mut resp = json_response(StatusCode::OK, &body);
    resp.headers_mut().insert("x-total-count", HeaderValue::from(total));
    if !links.is_empty() {
        resp.headers_mut().insert(header::LINK, header_value(&links.join(", ")));
    }
    if method == Method::HEAD {
        *resp.body_mut() = empty();
    }
    resp
}

/// `/v2/` goes to the registry behind, after Basic authentication, refusing a push into a project that
/// does not exist.
async fn v2(state: &State, host: &str, req: Request<Incoming>) -> Response<Body> {
    if let Err(resp) = authenticate(state, &req, true) {
        return *resp;
    }
    let path = req.uri().path().to_owned();
    let pushing = (req.method() == Method::POST && path.contains("/blobs/uploads"))
        || (req.method() == Method::PUT && path.contains("/manifests/"));
    if pushing {
        let project = path.trim_start_matches("/v2/").split('/').next().unwrap_or("").to_owned();
        if !lock(&state.inner).projects.contains_key(&project) {
            return errors(StatusCode::NOT_FOUND, "NAME_UNKNOWN", &format!("project {project} not found"));
        }
    }
    let (parts, body) = req.into_parts();
    let url = format!("{}{}", state.backend, parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut builder = state.http.request(parts.method.clone(), url);
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::AUTHORIZATION && name != header::CONNECTION {
            builder = builder.header(name, value);
        }
    }
    if parts.headers.contains_key(header::CONTENT_LENGTH) || parts.headers.contains_key(header::TRANSFER_ENCODING) {
        builder = builder.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    }
    let upstream = match builder.send().await {
        Ok(r) => r,
        Err(e) => return backend_error(&e),
    };
    let backend_host = state.backend.trim_start_matches("http://");
    let mut out = Response::builder().status(upstream.status().as_u16());
    for (name, value) in upstream.headers() {
        if matches!(name.as_str(), "connection" | "keep-alive" | "transfer-encoding") {
            continue;
        }
        if name == header::LOCATION {
            let v = value.to_str().unwrap_or("").replace(backend_host, host);
            out = out.header(name, header_value(&v));
        } else {
            out = out.header(name, value);
        }
    }
    if parts.method == Method::HEAD {
        return out.body(empty()).unwrap_or_else(|_| unreachable!("valid parts"));
    }
    let stream = upstream.bytes_stream().map(|r| r.map(Frame::data).map_err(BoxError::from));
    out.body(StreamBody::new(stream).boxed_unsync()).unwrap_or_else(|_| unreachable!("valid parts"))
}

fn backend_error(e: &reqwest::Error) -> Response<Body> {
    errors(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", &format!("the registry behind: {e}"))
}

/// Harbor's error body: `{"errors": [{"code", "message"}]}`.
fn errors(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json_response(status, &json!({"errors": [{"code": code, "message": message}]}))
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, bytes.len())
        .body(full(bytes))
        .unwrap_or_else(|_| unreachable!("valid parts"))
}

fn status_only(status: StatusCode) -> Response<Body> {
    Response::builder().status(status).body(empty()).unwrap_or_else(|_| unreachable!("valid parts"))
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// One round of percent-decoding (`%252F` → `%2F`, `%2F` → `/`); malformed escapes stay as they are.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

fn now() -> String {
    let now = time::OffsetDateTime::now_utc();
    let millis = now.millisecond();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).map_err(|never| match never {}).boxed_unsync()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
