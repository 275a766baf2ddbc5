//! [`HarborAdmin`]: the internal-registry port ([`RegistryAdmin`]) on Harbor's REST API v2.0, over the
//! same transport as the distribution protocol; [`AutoAdmin`], which asks the registry what it is.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use image_core::Digest;
use image_core::registry::{
    ComponentHealth, RegistryAdmin, RegistryArtifact, RegistryHealth, RegistryKind, RegistryRepository,
    RegistryStatistics, ScanOverview, ScanStatus,
};
use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::admin::{DistributionAdmin, core_error};
use crate::client::{ApiAnswer, RegistryClient};
use crate::error::Error;
use crate::headers::next_link;

/// Harbor's largest `page_size`.
const PAGE_SIZE: u32 = 100;
/// A listing longer than this many pages is a server in a loop.
const MAX_PAGES: usize = 10_000;
/// Where Harbor's API lives.
const API: &str = "/api/v2.0";

/// How imagegate uses a Harbor.
#[derive(Debug, Clone, Copy, Default)]
pub struct HarborOptions {
    /// Projects imagegate creates are public (anyone may pull); private when `false`, Harbor's default.
    pub public_projects: bool,
}

/// Harbor as the internal registry, through its REST API v2.0 with the client's configured credentials
/// for it (a user or a robot account, `robot$name` or `robot$project+name`), sent as HTTP Basic.
///
/// The API's particulars handled here: repository names in paths are URL-encoded twice (`a/b` →
/// `a%252Fb`) while listings name repositories with their project; listings are paged (`page`,
/// `page_size`, `X-Total-Count` and a host-less `Link`); arrays may come as `null`; a never-pulled
/// artifact's `pull_time` is `0001-01-01T00:00:00Z`; an unscanned artifact has no `scan_overview`, and a
/// scanned one has a map keyed by report MIME type. No cookie is kept, so Harbor's CSRF check (which
/// applies to cookie sessions) never applies.
#[derive(Debug)]
pub struct HarborAdmin {
    client: Arc<RegistryClient>,
    registry: String,
    options: HarborOptions,
    /// Projects known to exist, so that each import does not ask again.
    known_projects: Mutex<HashSet<String>>,
}

impl HarborAdmin {
    pub fn new(client: Arc<RegistryClient>, registry: impl Into<String>, options: HarborOptions) -> HarborAdmin {
        HarborAdmin { client, registry: registry.into(), options, known_projects: Mutex::default() }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        json: Option<&serde_json::Value>,
        op: &'static str,
    ) -> Result<ApiAnswer, Error> {
        self.client.api_request(&self.registry, method, &format!("{API}{path}"), json, op).await
    }

    /// A `200` answer's JSON, else the error for it.
    async fn get_json<T: DeserializeOwned>(&self, path: &str, op: &'static str) -> Result<T, Error> {
        let answer = self.call(Method::GET, path, None, op).await?;
        if answer.status != 200 {
            return Err(self.client.api_error(&self.registry, op, &answer));
        }
        decode(&self.registry, op, &answer)
    }

    /// Every item of a paged listing: `page` and `page_size` on the first request, then the `Link` with
    /// `rel="next"` (host-less; it must stay on the registry's origin) until there is none, the
    /// `X-Total-Count` is reached, or a page is empty.
    async fn paged<T: DeserializeOwned>(&self, path: &str, op: &'static str) -> Result<Vec<T>, Error> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut next = format!("{API}{path}{sep}page=1&page_size={PAGE_SIZE}");
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let answer = self.client.api_request(&self.registry, Method::GET, &next, None, op).await?;
            if answer.status != 200 {
                return Err(self.client.api_error(&self.registry, op, &answer));
            }
            // Go's nil slice: an empty page.
            let page: Option<Vec<T>> = decode(&self.registry, op, &answer)?;
            let page = page.unwrap_or_default();
            let empty = page.is_empty();
            items.extend(page);
            let total = header(&answer, "x-total-count").and_then(|t| t.trim().parse::<usize>().ok());
            let link = next_link(answer.headers.get_all(reqwest::header::LINK).iter().filter_map(|v| v.to_str().ok()));
            let done = empty || total.is_some_and(|t| items.len() >= t);
            match link {
                Some(link) if !done => {
                    let base = self.client.registry_base(&self.registry)?;
                    let url =
                        base.join(&link).map_err(|_| protocol(&self.registry, op, "its next Link is not a URL"))?;
                    if !self.client.is_own_origin(&self.registry, &url) {
                        return Err(protocol(&self.registry, op, "its next Link leads to another host"));
                    }
                    next = match url.query() {
                        Some(query) => format!("{}?{query}", url.path()),
                        None => url.path().to_owned(),
                    };
                }
                _ => return Ok(items),
            }
        }
        Err(protocol(&self.registry, op, &format!("more than {MAX_PAGES} pages")))
    }

    async fn project_exists(&self, project: &str) -> Result<bool, Error> {
        let path = format!("/projects?project_name={project}");
        let answer = self.call(Method::HEAD, &path, None, "HEAD project").await?;
        match answer.status {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.client.api_error(&self.registry, "HEAD project", &answer)),
        }
    }

    async fn artifact_json(&self, repository: &str, digest: &Digest) -> Result<Option<ArtifactJson>, Error> {
        let path = format!("{}/{digest}?with_tag=true&with_scan_overview=true", artifacts_path(repository)?);
        let answer = self.call(Method::GET, &path, None, "GET artifact").await?;
        match answer.status {
            200 => decode(&self.registry, "GET artifact", &answer).map(Some),
            404 => Ok(None),
            _ => Err(self.client.api_error(&self.registry, "GET artifact", &answer)),
        }
    }
}

#[async_trait]
impl RegistryAdmin for HarborAdmin {
    fn kind(&self) -> RegistryKind {
        RegistryKind::Harbor
    }

    /// `GET /api/v2.0/health`: Harbor's overall status and its components'; a component's `error` is the
    /// reason when it is the only one given.
    async fn health(&self) -> RegistryHealth {
        match self.get_json::<HealthJson>("/health", "GET health").await {
            Ok(health) => {
                let components: Vec<ComponentJson> = health.components.unwrap_or_default();
                let failing: Vec<String> = components
                    .iter()
                    .filter(|c| c.status != "healthy")
                    .map(|c| match &c.error {
                        Some(e) if !e.is_empty() => format!("{}: {e}", c.name),
                        _ => format!("{} is {}", c.name, c.status),
                    })
                    .collect();
                let status =
                    health.status.unwrap_or_else(|| if failing.is_empty() { "healthy" } else { "unhealthy" }.into());
                RegistryHealth {
                    reason: (status != "healthy" || !failing.is_empty())
                        .then(|| failing.join("; "))
                        .filter(|r| !r.is_empty()),
                    status,
                    components: components
                        .into_iter()
                        .map(|c| ComponentHealth { name: c.name, status: c.status })
                        .collect(),
                }
            }
            Err(e) => {
                RegistryHealth { status: "unhealthy".into(), components: Vec::new(), reason: Some(e.to_string()) }
            }
        }
    }

    async fn statistics(&self) -> image_core::Result<RegistryStatistics> {
        let s: StatisticJson = self.get_json("/statistics", "GET statistics").await.map_err(core_error)?;
        Ok(RegistryStatistics {
            private_project_count: s.private_project_count,
            public_project_count: s.public_project_count,
            private_repo_count: s.private_repo_count,
            public_repo_count: s.public_repo_count,
            total_storage: s.total_storage_consumption,
        })
    }

    /// `HEAD /projects?project_name=…`, then `POST /projects` when it is missing (public or private as
    /// configured); a `409` (created meanwhile by someone else) is success.
    async fn ensure_project(&self, project: &str) -> image_core::Result<()> {
        image_core::validate::path_component(project).map_err(|e| image_core::Error::invalid("project", e))?;
        if lock(&self.known_projects).contains(project) {
            return Ok(());
        }
        if !self.project_exists(project).await.map_err(core_error)? {
            let public = self.options.public_projects;
            let body = serde_json::json!({
                "project_name": project,
                "public": public,
                "metadata": { "public": public.to_string() },
            });
            let answer = self.call(Method::POST, "/projects", Some(&body), "POST project").await.map_err(core_error)?;
            if !matches!(answer.status, 201 | 409) {
                return Err(core_error(self.client.api_error(&self.registry, "POST project", &answer)));
            }
            tracing::info!(registry = %self.registry, project, public, "created the Harbor project");
        }
        lock(&self.known_projects).insert(project.to_owned());
        Ok(())
    }

    /// Every project's repositories (`GET /projects`, then `GET /projects/{name}/repositories`, both paged).
    async fn list_repositories(&self) -> image_core::Result<Vec<RegistryRepository>> {
        let projects: Vec<ProjectJson> = self.paged("/projects", "GET projects").await.map_err(core_error)?;
        let mut repositories = Vec::new();
        for project in projects {
            let path = format!("/projects/{}/repositories", project.name);
            let page: Vec<RepositoryJson> = self.paged(&path, "GET repositories").await.map_err(core_error)?;
            repositories.extend(page.into_iter().map(|r| RegistryRepository {
                name: r.name,
                artifact_count: r.artifact_count,
                pull_count: r.pull_count,
                updated_at: r.update_time.as_deref().and_then(harbor_time),
            }));
        }
        Ok(repositories)
    }

    async fn list_artifacts(&self, repository: &str) -> image_core::Result<Vec<RegistryArtifact>> {
        let path =
            format!("{}?with_tag=true&with_scan_overview=false", artifacts_path(repository).map_err(core_error)?);
        let artifacts: Vec<ArtifactJson> = match self.paged(&path, "GET artifacts").await {
            Ok(artifacts) => artifacts,
            Err(e) if is_404(&e) => return Ok(Vec::new()),
            Err(e) => return Err(core_error(e)),
        };
        artifacts.into_iter().map(|a| a.into_artifact(repository)).collect()
    }

    /// `DELETE …/artifacts/{digest}`, which removes the artifact's tags with it.
    async fn delete_artifact(&self, repository: &str, digest: &Digest) -> image_core::Result<()> {
        let path = format!("{}/{digest}", artifacts_path(repository).map_err(core_error)?);
        let answer = self.call(Method::DELETE, &path, None, "DELETE artifact").await.map_err(core_error)?;
        match answer.status {
            200 | 202 | 204 | 404 => Ok(()),
            _ => Err(core_error(self.client.api_error(&self.registry, "DELETE artifact", &answer))),
        }
    }

    /// `POST …/artifacts/{digest}/scan`: `202` is a scan queued; `422` and `400` are Harbor saying that it
    /// cannot scan (no scanner, or not a scannable artifact).
    async fn request_scan(&self, repository: &str, digest: &Digest) -> image_core::Result<bool> {
        let path = format!("{}/{digest}/scan", artifacts_path(repository).map_err(core_error)?);
        let body = serde_json::json!({ "scan_type": "vulnerability" });
        let answer = self.call(Method::POST, &path, Some(&body), "POST scan").await.map_err(core_error)?;
        match answer.status {
            202 => Ok(true),
            400 | 422 => Ok(false),
            404 => Err(image_core::Error::not_found("artifact", format!("{repository}@{digest}"))),
            _ => Err(core_error(self.client.api_error(&self.registry, "POST scan", &answer))),
        }
    }

    async fn scan_overview(&self, repository: &str, digest: &Digest) -> image_core::Result<Option<ScanOverview>> {
        let artifact = self.artifact_json(repository, digest).await.map_err(core_error)?;
        Ok(artifact.and_then(|a| a.scan_overview).and_then(|o| scan_overview_of(&o)))
    }
}

/// The internal registry as whatever it turns out to be: the first call asks `GET /api/v2.0/systeminfo`
/// ([`detect_kind`]) and from then on speaks to a [`HarborAdmin`] or a [`DistributionAdmin`]. Until a
/// probe has answered (the registry is down), each call is answered as a plain registry would.
pub struct AutoAdmin {
    client: Arc<RegistryClient>,
    registry: String,
    options: HarborOptions,
    resolved: tokio::sync::OnceCell<Arc<dyn RegistryAdmin>>,
}

impl std::fmt::Debug for AutoAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoAdmin")
            .field("registry", &self.registry)
            .field("kind", &self.resolved.get().map(|a| a.kind()))
            .finish_non_exhaustive()
    }
}

impl AutoAdmin {
    pub fn new(client: Arc<RegistryClient>, registry: impl Into<String>, options: HarborOptions) -> AutoAdmin {
        AutoAdmin { client, registry: registry.into(), options, resolved: tokio::sync::OnceCell::new() }
    }

    async fn admin(&self) -> Arc<dyn RegistryAdmin> {
        let probe = || async {
            match detect_kind(&self.client, &self.registry).await? {
                RegistryKind::Harbor => {
                    tracing::info!(registry = %self.registry, "the internal registry is a Harbor");
                    Ok::<Arc<dyn RegistryAdmin>, Error>(Arc::new(HarborAdmin::new(
                        self.client.clone(),
                        self.registry.clone(),
                        self.options,
                    )))
                }
                RegistryKind::Distribution => {
                    tracing::info!(registry = %self.registry, "the internal registry is a plain distribution registry");
                    Ok::<Arc<dyn RegistryAdmin>, Error>(Arc::new(DistributionAdmin::new(
                        self.client.clone(),
                        self.registry.clone(),
                    )))
                }
            }
        };
        match self.resolved.get_or_try_init(probe).await {
            Ok(admin) => admin.clone(),
            Err(e) => {
                tracing::debug!(registry = %self.registry, error = %e, "cannot tell what the internal registry is yet");
                Arc::new(DistributionAdmin::new(self.client.clone(), self.registry.clone()))
            }
        }
    }
}

#[async_trait]
impl RegistryAdmin for AutoAdmin {
    /// What the probe found; [`RegistryKind::Distribution`] until one has answered.
    fn kind(&self) -> RegistryKind {
        self.resolved.get().map_or(RegistryKind::Distribution, |a| a.kind())
    }

    async fn health(&self) -> RegistryHealth {
        self.admin().await.health().await
    }

    async fn statistics(&self) -> image_core::Result<RegistryStatistics> {
        self.admin().await.statistics().await
    }

    async fn ensure_project(&self, project: &str) -> image_core::Result<()> {
        self.admin().await.ensure_project(project).await
    }

    async fn list_repositories(&self) -> image_core::Result<Vec<RegistryRepository>> {
        self.admin().await.list_repositories().await
    }

    async fn list_artifacts(&self, repository: &str) -> image_core::Result<Vec<RegistryArtifact>> {
        self.admin().await.list_artifacts(repository).await
    }

    async fn delete_artifact(&self, repository: &str, digest: &Digest) -> image_core::Result<()> {
        self.admin().await.delete_artifact(repository, digest).await
    }

    async fn request_scan(&self, repository: &str, digest: &Digest) -> image_core::Result<bool> {
        self.admin().await.request_scan(repository, digest).await
    }

    async fn scan_overview(&self, repository: &str, digest: &Digest) -> image_core::Result<Option<ScanOverview>> {
        self.admin().await.scan_overview(repository, digest).await
    }
}

/// Harbor when `GET /api/v2.0/systeminfo` answers `200` with a JSON object (as Harbor does, to anyone), a
/// plain registry when it answers anything else; an error when the registry cannot be reached.
pub async fn detect_kind(client: &RegistryClient, registry: &str) -> Result<RegistryKind, Error> {
    let answer =
        client.api_request(registry, Method::GET, &format!("{API}/systeminfo"), None, "GET systeminfo").await?;
    let is_object =
        answer.status == 200 && serde_json::from_slice::<serde_json::Value>(&answer.body).is_ok_and(|v| v.is_object());
    Ok(if is_object { RegistryKind::Harbor } else { RegistryKind::Distribution })
}

/// `…/projects/{project}/repositories/{rest, encoded twice}/artifacts` for a repository named with its
/// project (`mirror/library/nginx` → `/projects/mirror/repositories/library%252Fnginx/artifacts`).
fn artifacts_path(repository: &str) -> Result<String, Error> {
    image_core::validate::repository_path(repository)
        .map_err(|e| Error::InvalidInput(format!("repository `{repository}`: {e}")))?;
    let Some((project, rest)) = repository.split_once('/') else {
        return Err(Error::InvalidInput(format!(
            "repository `{repository}` has no project: Harbor names repositories `project/name`"
        )));
    };
    Ok(format!("/projects/{project}/repositories/{}/artifacts", encode_twice(rest)))
}

/// A repository name as Harbor wants it in a path: URL-encoded twice. Valid names hold only lower-case
/// letters, digits, `.`, `_`, `-` and `/`, so only `/` changes (`/` → `%2F` → `%252F`).
pub fn encode_twice(name: &str) -> String {
    name.replace('/', "%252F")
}

/// The scan overview in the catalog's terms, from Harbor's `scan_overview` map (keyed by report MIME
/// type: the vulnerability report's when there are several). `None` when the map is empty.
///
/// | Harbor's `scan_status` | [`ScanStatus`] |
/// |---|---|
/// | `Success` | `Passed` (the catalog makes it `failed` when findings reach `--deny-severity`) |
/// | `Pending`, `Running`, `Scheduled`, `Queued` | `Pending` |
/// | `Error`, `Stopped`, anything else | `Error` |
pub fn scan_overview_of(map: &HashMap<String, NativeReportSummary>) -> Option<ScanOverview> {
    let summary = map
        .iter()
        .find(|(k, _)| k.contains("vulnerability.report") || k.contains("vuln.report"))
        .or_else(|| map.iter().next())
        .map(|(_, v)| v)?;
    let status = harbor_scan_status(summary.scan_status.as_deref().unwrap_or(""));
    let mut severities: BTreeMap<String, u64> = BTreeMap::new();
    if let Some(counts) = summary.summary.as_ref().and_then(|s| s.summary.as_ref()) {
        for (severity, n) in counts {
            *severities.entry(severity.to_ascii_lowercase()).or_default() += n;
        }
    }
    Some(ScanOverview { status, severities: severities.into_iter().collect() })
}

/// Harbor's scan status word in the catalog's vocabulary (the table at [`scan_overview_of`]).
pub fn harbor_scan_status(word: &str) -> ScanStatus {
    match word.to_ascii_lowercase().as_str() {
        "success" => ScanStatus::Passed,
        "pending" | "running" | "scheduled" | "queued" => ScanStatus::Pending,
        _ => ScanStatus::Error,
    }
}

/// A time as Harbor sends it; Go's zero time (`0001-01-01T00:00:00Z`, "never") is `None`.
pub fn harbor_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok().filter(|t| t.year() > 1)
}

fn decode<T: DeserializeOwned>(registry: &str, op: &str, answer: &ApiAnswer) -> Result<T, Error> {
    serde_json::from_slice(&answer.body).map_err(|e| protocol(registry, op, &format!("unexpected body: {e}")))
}

fn protocol(registry: &str, op: &str, message: &str) -> Error {
    Error::Protocol {
        registry: registry.to_owned(),
        operation: op.to_owned(),
        status: 200,
        code: None,
        message: message.to_owned(),
    }
}

fn header<'a>(answer: &'a ApiAnswer, name: &str) -> Option<&'a str> {
    answer.headers.get(name).and_then(|v| v.to_str().ok())
}

fn is_404(error: &Error) -> bool {
    matches!(error, Error::Protocol { status: 404, .. })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

// ---- the API's documents, as lenient as Harbor's answers require ----------------------------------

#[derive(Deserialize)]
struct HealthJson {
    status: Option<String>,
    components: Option<Vec<ComponentJson>>,
}

#[derive(Deserialize)]
struct ComponentJson {
    name: String,
    status: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct StatisticJson {
    private_project_count: Option<u64>,
    private_repo_count: Option<u64>,
    public_project_count: Option<u64>,
    public_repo_count: Option<u64>,
    total_storage_consumption: Option<u64>,
}

#[derive(Deserialize)]
struct ProjectJson {
    name: String,
}

#[derive(Deserialize)]
struct RepositoryJson {
    name: String,
    artifact_count: Option<u64>,
    pull_count: Option<u64>,
    update_time: Option<String>,
}

/// An artifact of `GET …/artifacts`. Every array may be `null`.
#[derive(Deserialize)]
struct ArtifactJson {
    digest: String,
    media_type: Option<String>,
    manifest_media_type: Option<String>,
    size: Option<u64>,
    push_time: Option<String>,
    tags: Option<Vec<TagJson>>,
    references: Option<Vec<ReferenceJson>>,
    extra_attrs: Option<serde_json::Value>,
    scan_overview: Option<HashMap<String, NativeReportSummary>>,
}

#[derive(Deserialize)]
struct TagJson {
    name: String,
}

#[derive(Deserialize)]
struct ReferenceJson {
    platform: Option<PlatformJson>,
}

#[derive(Deserialize)]
struct PlatformJson {
    os: Option<String>,
    architecture: Option<String>,
    variant: Option<String>,
}

impl PlatformJson {
    fn name(&self) -> Option<String> {
        let (os, arch) = (self.os.as_deref()?, self.architecture.as_deref()?);
        if os.is_empty() || arch.is_empty() || os == "unknown" || arch == "unknown" {
            return None;
        }
        Some(match self.variant.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => format!("{os}/{arch}/{v}"),
            None => format!("{os}/{arch}"),
        })
    }
}

/// One report of an artifact's `scan_overview` (Harbor's `NativeReportSummary`); `summary` is `null` when
/// the scan failed.
#[derive(Debug, Clone, Deserialize)]
pub struct NativeReportSummary {
    pub scan_status: Option<String>,
    pub severity: Option<String>,
    pub summary: Option<VulnerabilitySummary>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VulnerabilitySummary {
    pub total: Option<u64>,
    pub fixable: Option<u64>,
    /// Count by severity (`Critical`, `High`, `Medium`, `Low`, `Unknown`).
    pub summary: Option<HashMap<String, u64>>,
}

impl ArtifactJson {
    fn into_artifact(self, repository: &str) -> image_core::Result<RegistryArtifact> {
        let digest: Digest = self.digest.parse().map_err(|e| {
            image_core::Error::upstream_unavailable(format!("Harbor sent an artifact digest `{}`: {e}", self.digest))
        })?;
        let mut platforms: Vec<String> = self
            .references
            .iter()
            .flatten()
            .filter_map(|r| r.platform.as_ref())
            .filter_map(PlatformJson::name)
            .collect();
        if platforms.is_empty()
            && let Some(attrs) = &self.extra_attrs
        {
            let text = |k: &str| attrs.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            let platform =
                PlatformJson { os: text("os"), architecture: text("architecture"), variant: text("variant") };
            platforms.extend(platform.name());
        }
        platforms.sort();
        platforms.dedup();
        Ok(RegistryArtifact {
            repository: repository.to_owned(),
            digest,
            media_type: self.manifest_media_type.or(self.media_type),
            tags: self.tags.unwrap_or_default().into_iter().map(|t| t.name).collect(),
            size: self.size,
            platforms,
            push_time: self.push_time.as_deref().and_then(harbor_time),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/harbor-examples");

    fn example(name: &str) -> String {
        std::fs::read_to_string(format!("{EXAMPLES}/{name}")).unwrap()
    }

    #[test]
    fn names_are_encoded_twice() {
        assert_eq!(encode_twice("a/b"), "a%252Fb");
        assert_eq!(encode_twice("nginx"), "nginx");
        assert_eq!(
            artifacts_path("casoul/postgrest/postgrest").unwrap(),
            "/projects/casoul/repositories/postgrest%252Fpostgrest/artifacts"
        );
        assert!(artifacts_path("noproject").is_err());
        assert!(artifacts_path("Bad/Name").is_err());
    }

    #[test]
    fn the_recorded_artifact_list_with_nulls_and_zero_times() {
        let list: Vec<ArtifactJson> =
            serde_json::from_str(&example("artifacts-list-recorded-v2.13.1-unverified.json")).unwrap();
        let artifact = list.into_iter().next().unwrap().into_artifact("casoul/postgrest/postgrest").unwrap();
        assert_eq!(artifact.tags, Vec::<String>::new());
        assert_eq!(artifact.platforms, ["linux/amd64"]);
        assert_eq!(artifact.size, Some(5320231));
        assert_eq!(artifact.media_type.as_deref(), Some("application/vnd.docker.distribution.manifest.v2+json"));
        assert_eq!(artifact.push_time.map(|t| t.year()), Some(2025));
        assert_eq!(harbor_time("0001-01-01T00:00:00.000Z"), None);
        assert_eq!(harbor_time("0001-01-01T00:00:00Z"), None);
    }

    #[test]
    fn the_portal_mock_with_a_failed_scan() {
        let list: Vec<ArtifactJson> = serde_json::from_str(&example("artifacts-list-harbor-portal-mock.json")).unwrap();
        let first = &list[0];
        let overview = scan_overview_of(first.scan_overview.as_ref().unwrap()).unwrap();
        assert_eq!(overview, ScanOverview { status: ScanStatus::Error, severities: Vec::new() });
    }

    #[test]
    fn a_successful_scan_counts_by_severity() {
        let hook: serde_json::Value =
            serde_json::from_str(&example("webhook-scanning-completed-zulip-fixture.json")).unwrap();
        let map: HashMap<String, NativeReportSummary> =
            serde_json::from_value(hook["event_data"]["resources"][0]["scan_overview"].clone()).unwrap();
        let overview = scan_overview_of(&map).unwrap();
        assert_eq!(overview.status, ScanStatus::Passed);
        assert_eq!(overview.severities, [("high".to_owned(), 4), ("unknown".to_owned(), 1)]);
        assert_eq!(overview.total(), 5);
    }

    #[test]
    fn status_words() {
        for (word, status) in [
            ("Success", ScanStatus::Passed),
            ("Running", ScanStatus::Pending),
            ("Pending", ScanStatus::Pending),
            ("Scheduled", ScanStatus::Pending),
            ("Error", ScanStatus::Error),
            ("Stopped", ScanStatus::Error),
            ("", ScanStatus::Error),
        ] {
            assert_eq!(harbor_scan_status(word), status, "{word}");
        }
    }

    #[test]
    fn health_and_statistics_fixtures_decode() {
        let health: HealthJson = serde_json::from_str(&example("health-datadog-fixture.json")).unwrap();
        assert_eq!(health.components.unwrap().len(), 8);
        let s: StatisticJson = serde_json::from_str(&example("statistics-harbor-portal-mock.json")).unwrap();
        assert_eq!(
            (s.private_project_count, s.public_repo_count, s.total_storage_consumption),
            (Some(2), Some(1), Some(4564))
        );
    }
}
