//! The platform profile (seed 000): images imported into the internal registry, their import progress,
//! and exported ("custom") images, under `/api/v1/images…`.
//!
//! An "image" here is one import: a source reference copied into the internal registry, with one
//! artifact per platform. Errors are `{"error": …, "message": …}`; import requests answer in the
//! seed's `{state, message, alreadyImageId}` shape, with a 4xx status when the request is refused.

use std::collections::BTreeMap;

use crate::routes::{Access, Routes};
use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use image_core::{
    Error, Reference,
    catalog::Page,
    copy::{CopyErrorKind, access_for_import},
    import::{
        EnqueueOutcome, ExportId, ExportPhase, ExportRecord, ImportFilter, ImportId, ImportJob, ImportOrder,
        LayerProgress, LayerState, NewImport, Platform, SecretRef,
    },
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::{
    AppState,
    error::ApiError,
    extract::{self, PathParams, param},
};

use super::plain::{AdminUser, ApiResult, Body, Path, Query, User};

/// What a user may import; the rest is refused with 403 and files an approval request.
const APPROVED_ONLY: &str = "images and tags the catalog approves, with no registry secret";
/// Whose export records a user may change.
const OWN_EXPORTS: &str = "the records they created";

pub(crate) fn routes() -> Routes {
    Routes::new("/api/v1")
        .get("/images", Access::SignedIn, list_images)
        .get("/images/custom", Access::SignedIn, list_exports)
        .post("/images/custom", Access::SignedIn, create_export)
        .put("/images/custom/{id}", Access::Limited(OWN_EXPORTS), update_export)
        .delete("/images/{id}", Access::Admin, delete_image)
        .get("/images/{id}/importing-details", Access::SignedIn, importing_details)
        .post("/images/{id}/cancel", Access::Admin, cancel_import)
        .post("/images:import", Access::Limited(APPROVED_ONLY), import_image)
        .put("/images:import/{name}/progress", Access::Admin, report_progress)
}

#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct ListQuery {
    page_num: Option<String>,
    page_size: Option<String>,
    #[serde(rename = "orderBy")]
    order_by: Option<String>,
    order: Option<String>,
    tag: Option<String>,
    ready: Option<String>,
    #[serde(rename = "userName")]
    user_name: Option<String>,
    flat: Option<String>,
}

pub const MAX_PAGE_SIZE: i64 = 100;

/// `page_num` counts from 0, `page_size` defaults to 10.
fn parse_page(page_num: Option<String>, page_size: Option<String>) -> Result<Page, Error> {
    let num = param::int("page_num", page_num)?.unwrap_or(0);
    let size = param::int("page_size", page_size)?.unwrap_or(10);
    if num < 0 {
        return Err(Error::invalid("page_num", format!("counts from 0; got {num}")));
    }
    if !(1..=MAX_PAGE_SIZE).contains(&size) {
        return Err(Error::invalid("page_size", format!("must be between 1 and {MAX_PAGE_SIZE}, got {size}")));
    }
    let offset = num.checked_mul(size).ok_or_else(|| Error::invalid("page_num", "is too large"))?;
    Page::new(Some(size), Some(offset))
}

/// `orderBy`: the seed's names for the orders, and the domain's.
fn parse_order(order: &str) -> Result<ImportOrder, Error> {
    match order {
        "created_at" | "createdTime" | "createdAt" => Ok(ImportOrder::CreatedAt),
        "id" => Ok(ImportOrder::Id),
        "repo" | "repository" => Ok(ImportOrder::Repository),
        "tag" | "imageTag" => Ok(ImportOrder::Tag),
        _ => Err(Error::invalid("orderBy", format!("`{order}` is not one of created_at, id, repo, tag"))),
    }
}

fn parse_descending(order: Option<String>) -> Result<bool, Error> {
    match param::non_empty(order).as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("desc") => Ok(true),
        Some("asc") => Ok(false),
        Some(other) => Err(Error::invalid("order", format!("`{other}` is not asc or desc"))),
    }
}

/// One platform of an imported image, as the grouped listing shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactView {
    image_tag: String,
    description: Option<String>,
    created_time: String,
    user_name: String,
    status: &'static str,
    id: ImportId,
    size: u64,
    arch: Option<String>,
    os: Option<String>,
    digest: Option<String>,
    include_type: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Group<A> {
    registry_host: String,
    repo: String,
    artifacts: Vec<A>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Grouped<A> {
    total_count: i64,
    images: Vec<Group<A>>,
}

/// `2025-01-15T10:00:00`, as the seed shows imported images' times.
fn local_seconds(at: OffsetDateTime) -> String {
    let mut text = image_core::format_rfc3339_millis(at);
    // `2025-01-15T10:00:00.000Z` without the milliseconds and the zone.
    text.truncate("2025-01-15T10:00:00".len());
    text
}

/// Groups items by (registry host, repository), keeping the order in which groups first appear.
fn group<T, A>(items: Vec<T>, key: impl Fn(&T) -> (String, String), view: impl Fn(T) -> Vec<A>) -> Vec<Group<A>> {
    let mut groups: Vec<Group<A>> = Vec::new();
    for item in items {
        let (registry_host, repo) = key(&item);
        let index = match groups.iter().position(|g| g.registry_host == registry_host && g.repo == repo) {
            Some(i) => i,
            None => {
                groups.push(Group { registry_host, repo, artifacts: Vec::new() });
                groups.len() - 1
            }
        };
        groups[index].artifacts.extend(view(item));
    }
    groups
}

fn artifact_views(import: ImportJob) -> Vec<ArtifactView> {
    let base = |size: u64, arch: Option<String>, os: Option<String>, digest: Option<String>| ArtifactView {
        image_tag: import.target.tag().unwrap_or("latest").to_owned(),
        description: import.description.clone(),
        created_time: local_seconds(import.created_at),
        user_name: import.created_by.clone(),
        status: import.state.platform_status(),
        id: import.id,
        size,
        arch,
        os,
        digest,
        include_type: "full",
    };
    if import.artifacts.is_empty() {
        return vec![base(0, None, None, import.digest.as_ref().map(ToString::to_string))];
    }
    import
        .artifacts
        .iter()
        .map(|a| base(a.size, a.architecture.clone(), a.os.clone(), Some(a.digest.to_string())))
        .collect()
}

async fn list_images(
    State(s): State<AppState>,
    _: User,
    extract::Query(q, _): Query<ListQuery>,
) -> ApiResult<Response> {
    let tag = param::non_empty(q.tag);
    if let Some(tag) = &tag {
        image_core::validate::tag(tag).map_err(|e| Error::invalid("tag", e))?;
    }
    let filter = ImportFilter {
        tag,
        ready: param::boolean("ready", q.ready)?,
        created_by: param::non_empty(q.user_name),
        order_by: param::non_empty(q.order_by).map(|o| parse_order(&o)).transpose()?.unwrap_or(ImportOrder::CreatedAt),
        descending: parse_descending(q.order)?,
        page: parse_page(q.page_num, q.page_size)?,
    };
    let flat = param::boolean("flat", q.flat)?.unwrap_or(false);
    let params = format!("{flat} {filter:?}");
    s.json_answer("platform.list_images", params, async {
        let listing = s.store.list_imports(&filter).await?;
        if flat {
            let internal = s.internal.clone();
            let items: Vec<Value> = listing
                .items
                .into_iter()
                .map(|i| {
                    let repo =
                        internal.as_ref().map_or(i.target.repository(), |r| r.short_repository(i.target.repository()));
                    json!({
                        "id": i.id,
                        "tag": format!("{}:{}", repo, i.target.tag().unwrap_or("latest")),
                        "description": i.description,
                        "created_at": i.created_at.unix_timestamp(),
                        "created_by": i.created_by,
                    })
                })
                .collect();
            return ApiResult::Ok(Value::Array(items));
        }
        let images = group(
            listing.items,
            |i| (i.target.registry().to_owned(), i.target.repository().to_owned()),
            artifact_views,
        );
        let grouped = serde_json::to_value(Grouped { total_count: listing.total, images })
            .map_err(|e| ApiError::internal("the platform listing", &e))?;
        ApiResult::Ok(grouped)
    })
    .await
}

async fn delete_image(
    State(s): State<AppState>,
    admin: AdminUser,
    PathParams(id, _): Path<ImportId>,
) -> ApiResult<StatusCode> {
    let registry = s.internal.as_ref().map(|internal| internal.copier.as_ref() as &dyn image_core::copy::ImageCopier);
    image_core::workflow::delete_import(s.store.as_ref(), registry, id, &admin.user.username).await?;
    Ok(StatusCode::OK)
}

/// `POST /api/v1/images/{id}/cancel`: stops a queued or running import. A worker running it stops at its
/// next lease renewal; blobs it already copied stay in the registry and are skipped by a later import.
async fn cancel_import(
    State(s): State<AppState>,
    admin: AdminUser,
    PathParams(id, _): Path<ImportId>,
) -> ApiResult<Json<Value>> {
    let import = s.store.cancel_import(id, &admin.user.username).await?;
    Ok(Json(json!({ "message": "Image import canceled", "id": import.id, "status": import.state.platform_status() })))
}

/// How long an import request waits for its source's manifest HEAD before answering; the copy itself has
/// its own, longer timeouts in the worker.
const SOURCE_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn no_internal_registry() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "No internal registry",
        "no internal registry is configured: start the server with --internal-registry",
    )
}

/// What an import request asks for (the JSON body of `POST /api/v1/images:import`, and the console's form).
#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ImportBody {
    pub(crate) source: String,
    pub(crate) source_registry: Option<String>,
    /// `["linux/amd64", …]`; all platforms when absent or empty.
    #[serde(default)]
    pub(crate) platforms: Vec<String>,
    pub(crate) description: Option<String>,
    /// The registry secret whose credentials read the source; absent: the server's configured credentials
    /// for the source's registry, else anonymous.
    pub(crate) registry_secret: Option<SecretName>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretName {
    name: String,
    namespace: String,
}

/// The seed's answer to an import request: `state` 1 started, 2 already there, 0 refused.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImportAnswer {
    pub(crate) state: u8,
    pub(crate) message: String,
    pub(crate) already_image_id: i64,
}

fn refused(status: StatusCode, message: impl Into<String>) -> (StatusCode, ImportAnswer) {
    (status, ImportAnswer { state: 0, message: message.into(), already_image_id: 0 })
}

/// `POST /api/v1/images:import`: queues an import, or answers which import already holds this source.
async fn import_image(
    State(s): State<AppState>,
    user: User,
    extract::Body(b, _): Body<ImportBody>,
) -> ApiResult<Response> {
    let (status, answer) = start_import(&s, &user.user, b).await?;
    Ok((status, Json(answer)).into_response())
}

/// Queues the import `b` asks for on behalf of `user`, or says why not (`state: 0` with a 4xx status), or
/// which import already holds its source (`state: 2`); the rules of who may import what are here.
pub(crate) async fn start_import(
    s: &AppState,
    user: &image_core::auth::User,
    b: ImportBody,
) -> Result<(StatusCode, ImportAnswer), ApiError> {
    let Some(internal) = s.internal.clone() else {
        return Ok(refused(StatusCode::SERVICE_UNAVAILABLE, no_internal_registry().message));
    };
    // `sourceRegistry` names the registry when `source` leaves it out (`pytorch/pytorch:2.0` + `docker.io`).
    let text = match b.source_registry.as_deref().filter(|r| !r.is_empty()) {
        Some(registry) if !source_names_registry(&b.source) => {
            format!("{}/{}", registry.trim_end_matches('/'), b.source)
        }
        _ => b.source.clone(),
    };
    let source = match Reference::parse(&text) {
        Ok(r) => r,
        Err(e) => return Ok(refused(StatusCode::BAD_REQUEST, format!("invalid source `{}`: {e}", b.source))),
    };
    if let Some(registry) = b.source_registry.as_deref().filter(|r| !r.is_empty())
        && image_core::catalog::normalise_registry(registry) != source.registry()
    {
        return Ok(refused(
            StatusCode::BAD_REQUEST,
            format!(
                "sourceRegistry `{registry}` does not match the registry of `{}` ({})",
                b.source,
                source.registry()
            ),
        ));
    }
    let mut platforms = Vec::new();
    for p in &b.platforms {
        match p.parse::<Platform>() {
            Ok(p) => platforms.push(p),
            Err(e) => return Ok(refused(StatusCode::BAD_REQUEST, e.to_string())),
        }
    }
    if let Some(d) = &b.description
        && let Err(e) = image_core::validate::text(d, 2000)
    {
        return Ok(refused(StatusCode::BAD_REQUEST, format!("invalid description: {e}")));
    }
    if user.role != image_core::auth::Role::Admin
        && let Some(answer) = refuse_unapproved(s, &user.username, &source, b.registry_secret.is_some()).await?
    {
        return Ok(answer);
    }
    let target = match internal.target_for(&source) {
        Ok(t) => t,
        Err(e) => {
            return Ok(refused(
                StatusCode::BAD_REQUEST,
                format!("cannot place `{source}` in the internal registry: {e}"),
            ));
        }
    };
    let (access, registry_secret) = match &b.registry_secret {
        None => (access_for_import(None, &source), None),
        Some(named) => {
            let valid = image_core::kube::validate_dns_label("registrySecret.namespace", &named.namespace)
                .and_then(|()| image_core::kube::validate_dns_label("registrySecret.name", &named.name));
            if let Err(e) = valid {
                return Ok(refused(StatusCode::BAD_REQUEST, e.to_string()));
            }
            let secret = match s.store.get_registry_secret(&named.namespace, &named.name).await {
                Ok(secret) => secret,
                Err(Error::NotFound { .. }) => {
                    return Ok(refused(
                        StatusCode::BAD_REQUEST,
                        format!("registry secret {}/{} not found", named.namespace, named.name),
                    ));
                }
                Err(e) => return Err(e.into()),
            };
            let named = SecretRef { namespace: named.namespace.clone(), name: named.name.clone() };
            (access_for_import(Some(&secret), &source), Some(named))
        }
    };
    let access = match access {
        Ok(access) => access,
        Err(e) => return Ok(refused(StatusCode::BAD_REQUEST, e.to_string())),
    };
    let check = tokio::time::timeout(SOURCE_CHECK_TIMEOUT, internal.copier.check_source(&source, &access)).await;
    let Ok(check) = check else {
        let secs = SOURCE_CHECK_TIMEOUT.as_secs();
        let message = format!("cannot import {source}: its registry did not answer within {secs} s; try again later");
        return Ok(refused(StatusCode::UNPROCESSABLE_ENTITY, message));
    };
    if let Err(e) = check {
        // The request was well formed but names a source that cannot be imported now (unknown, refused,
        // unreachable): the seed's clients read `state`, and a 5xx would read as a fault of this server.
        let retry = if e.kind == CopyErrorKind::Transient { "; try again later" } else { "" };
        return Ok(refused(StatusCode::UNPROCESSABLE_ENTITY, format!("cannot import {source}: {e}{retry}")));
    }
    let import = NewImport {
        source,
        target,
        platforms,
        description: b.description,
        max_attempts: NewImport::DEFAULT_MAX_ATTEMPTS,
        timeout_secs: NewImport::DEFAULT_TIMEOUT_SECS,
        registry_secret,
    };
    let outcome = match s.store.enqueue_import(import, &user.username).await {
        // Another source holds the target repository: `state: 0`, as for every refused import.
        Err(Error::Conflict(message)) => return Ok(refused(StatusCode::CONFLICT, message)),
        other => other?,
    };
    let answer = match outcome {
        EnqueueOutcome::Started(job) => {
            s.jobs_queued();
            ImportAnswer { state: 1, message: "Image import started".into(), already_image_id: job.id.get() }
        }
        EnqueueOutcome::Existing(job) => ImportAnswer {
            state: 2,
            message: if job.state.is_active() {
                format!("Image is already being imported (image {})", job.id)
            } else {
                format!("Image already exists (image {})", job.id)
            },
            already_image_id: job.id.get(),
        },
    };
    Ok((StatusCode::OK, answer))
}

/// Users who are not admins import only what the catalog approves (the one admission decision,
/// `image_core::rules::admit`), from the registry the catalog names, with the server's own credentials:
/// anything else is a 403, and an approval request is filed for it. None when the import may go ahead.
async fn refuse_unapproved(
    s: &AppState,
    username: &str,
    source: &Reference,
    names_secret: bool,
) -> Result<Option<(StatusCode, ImportAnswer)>, ApiError> {
    if names_secret {
        return Ok(Some(refused(StatusCode::FORBIDDEN, "naming a registry secret for an import needs the admin role")));
    }
    let (image, tags) = super::catalog_entry(s.store.as_ref(), source).await?;
    let why = match image_core::rules::admit_under(image.as_ref(), &tags, source, s.deny_severity) {
        image_core::rules::Admission::Allowed { .. } => return Ok(None),
        image_core::rules::Admission::Refused(refusal) => refusal.to_string(),
    };
    let request =
        super::request_approval(s.store.as_ref(), source, format!("requested by an import of {source}"), username)
            .await?;
    let message =
        format!("cannot import {source}: {why}; approval request {} was filed for an admin to decide", request.id);
    Ok(Some(refused(StatusCode::FORBIDDEN, message)))
}

/// Whether the first path component of a reference names a registry, by Docker's rule.
fn source_names_registry(source: &str) -> bool {
    match source.split_once('/') {
        Some((first, _)) => first.contains('.') || first.contains(':') || first == "localhost",
        None => false,
    }
}

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) struct LayerDetail {
    status: String,
    progress: u8,
}

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LayersDetail {
    layers_detail: BTreeMap<String, LayerDetail>,
}

/// The seed's `layersDetail`, plus the import's status and, once it failed or is retrying, why.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImportingDetails {
    layers_detail: BTreeMap<String, LayerDetail>,
    status: &'static str,
    attempts: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

fn layer_status(state: LayerState) -> &'static str {
    match state {
        LayerState::Waiting => "waiting",
        LayerState::Downloading => "downloading",
        LayerState::Completed => "completed",
        LayerState::Failed => "failed",
    }
}

async fn importing_details(
    State(s): State<AppState>,
    _: User,
    PathParams(id, _): Path<ImportId>,
) -> ApiResult<Json<ImportingDetails>> {
    let import = s.store.get_import(id).await?;
    let layers_detail = import
        .layers
        .iter()
        .map(|l| {
            (l.digest.to_string(), LayerDetail { status: layer_status(l.state).to_owned(), progress: l.percent() })
        })
        .collect();
    Ok(Json(ImportingDetails {
        layers_detail,
        status: import.state.platform_status(),
        attempts: import.attempts,
        message: import.error,
    }))
}

/// `PUT /api/v1/images:import/{name}/progress`: an external copier reports layer progress for the active
/// import whose target is `name` (`repo:tag`, as in the flat listing, or the image id).
async fn report_progress(
    State(s): State<AppState>,
    _: AdminUser,
    PathParams(name, _): Path<String>,
    extract::Body(b, _): Body<LayersDetail>,
) -> ApiResult<StatusCode> {
    let import = find_import_by_name(&s, &name).await?;
    if !import.state.is_active() {
        return Err(
            Error::conflict(format!("image {} is not being imported (it is {})", import.id, import.state)).into()
        );
    }
    let mut layers = import.layers.clone();
    for (key, detail) in b.layers_detail {
        let digest: image_core::Digest =
            key.parse().map_err(|e| Error::invalid("layersDetail", format!("`{key}` is not a layer digest: {e}")))?;
        let state = match detail.status.as_str() {
            "waiting" => LayerState::Waiting,
            "downloading" => LayerState::Downloading,
            "completed" => LayerState::Completed,
            "failed" => LayerState::Failed,
            other => {
                return Err(Error::invalid(
                    "status",
                    format!("`{other}` is not waiting, downloading, completed or failed"),
                )
                .into());
            }
        };
        if detail.progress > 100 {
            return Err(Error::invalid("progress", format!("{} is more than 100", detail.progress)).into());
        }
        let entry = match layers.iter_mut().position(|l| l.digest == digest) {
            Some(i) => &mut layers[i],
            None => {
                layers.push(LayerProgress { digest, size: 100, done: 0, state, via: None });
                layers.last_mut().unwrap()
            }
        };
        entry.state = state;
        entry.done = entry.size * u64::from(detail.progress) / 100;
    }
    s.store.record_import_progress(import.id, import.digest.as_ref(), &import.artifacts, &layers).await?;
    Ok(StatusCode::OK)
}

async fn find_import_by_name(s: &AppState, name: &str) -> Result<ImportJob, ApiError> {
    if let Ok(id) = name.parse::<ImportId>() {
        return Ok(s.store.get_import(id).await?);
    }
    let (repo, tag) = name.rsplit_once(':').unwrap_or((name, "latest"));
    image_core::validate::tag(tag).map_err(|e| Error::invalid("name", e))?;
    // The name is the repository as clients of the internal registry know it (without its prefix), or
    // the whole repository path.
    let prefixed = s
        .internal
        .as_ref()
        .map(|r| r.prefix.trim_matches('/'))
        .filter(|p| !p.is_empty())
        .map(|p| format!("{p}/{repo}"));
    for repository in prefixed.iter().map(String::as_str).chain([repo]) {
        if let Some(import) = s.store.find_active_import(repository, tag).await? {
            return Ok(import);
        }
    }
    Err(ApiError::not_found(format!("no image named `{name}` is being imported")))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct ExportQuery {
    page_num: Option<String>,
    page_size: Option<String>,
    ready: Option<String>,
    #[serde(rename = "userName")]
    user_name: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportView {
    image_tag: String,
    description: Option<String>,
    created_time: String,
    user_name: String,
    status: ExportPhase,
    include_type: &'static str,
}

/// `GET /api/v1/images/custom`: export records grouped by repository, always grouped.
async fn list_exports(
    State(s): State<AppState>,
    _: User,
    extract::Query(q, _): Query<ExportQuery>,
) -> ApiResult<Json<Value>> {
    let page = parse_page(q.page_num, q.page_size)?;
    let ready = param::boolean("ready", q.ready)?;
    let user = param::non_empty(q.user_name);
    let listing = s.store.list_exports(ready, user.as_deref(), page).await?;
    let images = group(
        listing.items,
        |e| (e.registry_host.clone(), e.repository.clone()),
        |e| {
            vec![ExportView {
                image_tag: e.tag,
                description: e.description,
                created_time: image_core::format_rfc3339_millis(e.created_at).replace(".000Z", "Z"),
                user_name: e.created_by,
                status: e.phase,
                include_type: "custom",
            }]
        },
    );
    Ok(Json(json!({ "totalCount": listing.total, "images": images })))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CreateExport {
    /// Where the export was pushed, such as `rocm/pytorch:20250112`.
    target: String,
    registry_host: Option<String>,
    source: Option<String>,
    description: Option<String>,
    status: Option<String>,
}

/// `POST /api/v1/images/custom`: records an export, as the system that made it reports it.
async fn create_export(
    State(s): State<AppState>,
    user: User,
    extract::Body(b, _): Body<CreateExport>,
) -> ApiResult<(StatusCode, Json<ExportRecord>)> {
    let (repo, tag) = b
        .target
        .rsplit_once(':')
        .filter(|(repo, _)| !repo.ends_with('/') && !repo.is_empty())
        .ok_or_else(|| Error::invalid("target", "must be `repository:tag`"))?;
    image_core::validate::repository_path(repo).map_err(|e| Error::invalid("target", e))?;
    image_core::validate::tag(tag).map_err(|e| Error::invalid("target", e))?;
    let registry_host = b.registry_host.unwrap_or_else(|| "harbor.exported".into());
    image_core::validate::registry_host(&registry_host).map_err(|e| Error::invalid("registryHost", e))?;
    let phase = match b.status {
        Some(status) => status.parse()?,
        None => ExportPhase::Pending,
    };
    let description = match (b.description, &b.source) {
        (Some(d), _) => Some(d),
        (None, Some(src)) => Some(format!("Exported from source: {src}")),
        (None, None) => None,
    };
    if let Some(d) = &description {
        image_core::validate::text(d, 2000).map_err(|e| Error::invalid("description", e))?;
    }
    let record = ExportRecord {
        id: ExportId::new(0),
        registry_host,
        repository: repo.to_owned(),
        tag: tag.to_owned(),
        source: b.source,
        description,
        created_by: user.user.username,
        phase,
        created_at: OffsetDateTime::now_utc(),
    };
    Ok((StatusCode::CREATED, Json(s.store.create_export(record).await?)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateExport {
    status: String,
}

async fn update_export(
    State(s): State<AppState>,
    user: User,
    PathParams(id, _): Path<ExportId>,
    extract::Body(b, _): Body<UpdateExport>,
) -> ApiResult<Json<ExportRecord>> {
    let phase = b.status.parse()?;
    let admin = user.user.role == image_core::auth::Role::Admin;
    Ok(Json(s.store.set_export_phase(id, phase, &user.user.username, admin).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_count_from_zero() {
        assert_eq!(parse_page(None, None).unwrap(), Page::new(Some(10), Some(0)).unwrap());
        assert_eq!(parse_page(Some("2".into()), Some("5".into())).unwrap(), Page::new(Some(5), Some(10)).unwrap());
        assert!(parse_page(Some("-1".into()), None).is_err());
        assert!(parse_page(None, Some("0".into())).is_err());
        assert!(parse_page(None, Some("101".into())).is_err());
        assert!(parse_page(Some(i64::MAX.to_string()), Some("10".into())).is_err());
    }

    #[test]
    fn orders_take_the_seeds_names_and_the_domains() {
        for (names, order) in [
            (&["created_at", "createdTime", "createdAt"][..], ImportOrder::CreatedAt),
            (&["id"], ImportOrder::Id),
            (&["repo", "repository"], ImportOrder::Repository),
            (&["tag", "imageTag"], ImportOrder::Tag),
        ] {
            for name in names {
                assert_eq!(parse_order(name).unwrap(), order, "{name}");
            }
        }
        let err = parse_order("size").unwrap_err();
        assert_eq!(err.to_string(), "invalid orderBy: `size` is not one of created_at, id, repo, tag");
    }

    #[test]
    fn times_have_no_zone_as_in_the_seed() {
        let at = time::macros::datetime!(2025-01-15 10:00:00.5 UTC);
        assert_eq!(local_seconds(at), "2025-01-15T10:00:00");
    }
}
