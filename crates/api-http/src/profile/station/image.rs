//! `GET /api/v1/image/` (search: `local`, `qnap`, `official`; `type=lxc`), `POST …/download`,
//! `GET /api/v1/image/downloadstatus` and `DELETE /api/v1/image/local/{type}/{name}`.
//!
//! A local image is what finished imports put in the internal registry, named as Docker names it
//! (`redis`, `lgsd/diamond`, `ghcr.io/acme/app`): one item per repository, its tags and sizes side by
//! side. A download is an import, queued exactly as the platform profile's (seed 000) is.

use std::{collections::BTreeMap, sync::Arc};

use axum::{Json, extract::State};
use image_core::{
    Error, Reference,
    auth::Role,
    catalog::{ApprovalStatus, ImageFilter, Page},
    copy::{CopyErrorKind, RegistryAccess},
    import::{EnqueueOutcome, ImportFilter, ImportJob, ImportOrder, ImportState, NewImport, SecretRef},
    kube::Secret,
    station::DownloadDetails,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminUser, ApiResult, Body, Query, User};
use crate::{AppState, InternalRegistry, error::ApiError, extract::PathParams};

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SearchQuery {
    category: Option<String>,
    filter_text: Option<String>,
    #[serde(rename = "type")]
    image_type: Option<String>,
    registry_name: Option<String>,
}

/// An object with its keys in order, as the seed's examples show them.
pub(super) fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.into_iter().collect::<BTreeMap<_, _>>().into_iter().collect()),
        other => other,
    }
}

/// `type`: `docker`, `lxc` or none.
pub(super) fn image_type(text: Option<&str>) -> Result<&str, Error> {
    match text.unwrap_or("") {
        t @ ("" | "docker" | "lxc") => Ok(t),
        other => Err(Error::invalid("type", format!("`{other}` is not lxc or docker"))),
    }
}

pub(super) fn no_internal_registry() -> ApiError {
    ApiError::unavailable("no internal registry is configured: start the server with --internal-registry")
}

/// How Docker names an image the internal registry holds: its repository without the internal prefix,
/// and without `library/` for Docker Official Images.
pub(super) fn local_name(internal: &InternalRegistry, target: &Reference) -> String {
    let short = internal.short_repository(target.repository());
    match short.strip_prefix("library/") {
        Some(name) if !name.contains('/') => name.to_owned(),
        _ => short.to_owned(),
    }
}

/// How Docker names a reference of the catalog: `redis`, `grafana/grafana`, `ghcr.io/acme/app`.
pub(super) fn docker_name(registry: &str, repository: &str) -> String {
    if registry == image_core::DEFAULT_REGISTRY {
        repository.strip_prefix("library/").filter(|n| !n.contains('/')).unwrap_or(repository).to_owned()
    } else {
        format!("{registry}/{repository}")
    }
}

/// Every import the station shows, newest first.
async fn imports(state: &AppState, ready: Option<bool>) -> Result<Vec<ImportJob>, Error> {
    let filter = ImportFilter {
        tag: None,
        ready,
        created_by: None,
        order_by: ImportOrder::CreatedAt,
        descending: true,
        page: Page::new(Some(Page::MAX_LIMIT), None)?,
    };
    Ok(state.store.list_imports(&filter).await?.items)
}

/// A local image: its tags (with sizes) and description, and whether an import of it runs.
#[derive(Default)]
pub(super) struct Local {
    pub(super) tags: BTreeMap<String, u64>,
    pub(super) description: String,
    pub(super) icon: String,
    pub(super) downloading: bool,
}

pub(super) async fn local_images(
    state: &AppState,
    internal: &InternalRegistry,
) -> Result<BTreeMap<String, Local>, Error> {
    let mut images: BTreeMap<String, Local> = BTreeMap::new();
    let downloads = state.store.downloads().await?;
    for import in imports(state, None).await? {
        let name = local_name(internal, &import.target);
        match import.state {
            ImportState::Succeeded => {
                let local = images.entry(name).or_default();
                let size = import.artifacts.iter().map(|a| a.size).sum();
                local.tags.entry(import.target.tag().unwrap_or("latest").to_owned()).or_insert(size);
                if local.description.is_empty() {
                    local.description = import.description.clone().unwrap_or_default();
                }
                if local.icon.is_empty()
                    && let Some(kept) = downloads.get(&import.id)
                {
                    local.icon = kept.icon.clone();
                }
            }
            state if state.is_active() => images.entry(name).or_default().downloading = true,
            _ => {}
        }
    }
    Ok(images)
}

pub(super) fn matches(filter: &str, texts: &[&str]) -> bool {
    let filter = filter.to_lowercase();
    filter.is_empty() || texts.iter().any(|t| t.to_lowercase().contains(&filter))
}

/// `GET /api/v1/image/?category=…&filter_text=…&type=…`: `{category, filter_text, results, total_count, type}`.
pub(super) async fn search(
    State(state): State<AppState>,
    _: User,
    crate::extract::Query(query, _): Query<SearchQuery>,
) -> ApiResult<Json<SearchAnswer>> {
    let category = query.category.clone().filter(|c| !c.is_empty()).unwrap_or_else(|| "local".into());
    let kind = image_type(query.image_type.as_deref())?;
    let filter = query.filter_text.clone().unwrap_or_default();
    image_core::validate::text(&filter, 200).map_err(|e| Error::invalid("filter_text", e))?;
    let results = match category.as_str() {
        "local" | "qnap" | "official" => {
            // Answers from the store alone (the catalog, imports and downloads): kept while it is unchanged.
            let key = ("station.search", format!("{category:?} {kind:?} {filter:?}"));
            let version = state.store.data_version();
            let results: Arc<Vec<Value>> = state
                .answers
                .read(version, key, async {
                    let results = if kind == "lxc" {
                        // imagegate holds container images only.
                        Vec::new()
                    } else {
                        match category.as_str() {
                            "local" => search_local(&state, &filter).await?,
                            "qnap" => search_catalog(&state, &filter, false).await?,
                            _ => search_catalog(&state, &filter, true).await?,
                        }
                    };
                    ApiResult::Ok(Arc::new(results))
                })
                .await?;
            results
        }
        "dockerhub" | "private" if kind == "lxc" => Arc::default(),
        "dockerhub" => Arc::new(super::browse::search_hub(&state, &filter).await?),
        "private" => {
            let name = query
                .registry_name
                .as_deref()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| Error::invalid("registry_name", "is required with category=private"))?;
            Arc::new(super::browse::search_private(&state, name, &filter).await?)
        }
        other => {
            return Err(Error::invalid(
                "category",
                format!("`{other}` is not one of local, qnap, official, dockerhub, private"),
            )
            .into());
        }
    };
    let total_count = results.len();
    Ok(Json(SearchAnswer { category, filter_text: filter, results, total_count, kind: kind.to_owned() }))
}

/// A search's answer, its keys in the seed's order.
#[derive(serde::Serialize)]
pub(super) struct SearchAnswer {
    category: String,
    filter_text: String,
    #[serde(serialize_with = "shared_slice")]
    results: Arc<Vec<Value>>,
    total_count: usize,
    #[serde(rename = "type")]
    kind: String,
}

fn shared_slice<S: serde::Serializer>(values: &Arc<Vec<Value>>, s: S) -> Result<S::Ok, S::Error> {
    serde::Serialize::serialize(values.as_slice(), s)
}

async fn search_local(state: &AppState, filter: &str) -> ApiResult<Vec<Value>> {
    let internal = state.internal.clone().ok_or_else(no_internal_registry)?;
    let images = local_images(state, &internal).await?;
    Ok(images
        .into_iter()
        .filter(|(name, local)| !local.tags.is_empty() && matches(filter, &[name, &local.description]))
        .map(|(name, local)| {
            let is_latest: Vec<&str> = local.tags.keys().filter(|t| *t == "latest").map(String::as_str).collect();
            json!({
                "description": local.description,
                "downloading": local.downloading,
                "icon": local.icon,
                "installed": true,
                "is_latest": is_latest,
                "name": name,
                "repository": "local",
                "size": local.tags.values().collect::<Vec<_>>(),
                "tags": local.tags.keys().collect::<Vec<_>>(),
                "type": "docker",
            })
        })
        .collect())
}

/// The approved catalog (`qnap`), or its official images with their Docker Hub page (`official`).
async fn search_catalog(state: &AppState, filter: &str, official: bool) -> ApiResult<Vec<Value>> {
    let listing = state
        .store
        .list_images(&ImageFilter {
            status: Some(ApprovalStatus::Approved),
            category: None,
            search: None,
            after: None,
            page: Page::new(Some(Page::MAX_LIMIT), None)?,
        })
        .await?;
    let local = match &state.internal {
        Some(internal) => local_images(state, internal).await?,
        None => BTreeMap::new(),
    };
    let mut results = Vec::new();
    for summary in listing.items {
        let image = summary.image;
        if official && !image.is_official {
            continue;
        }
        let name = docker_name(&image.registry, &image.repository());
        let description = image.description.clone().unwrap_or_default();
        if !matches(filter, &[&name, &description]) {
            continue;
        }
        let tags = state.store.list_tags(image.id).await?;
        let version = tags
            .iter()
            .find(|t| t.is_recommended)
            .or_else(|| tags.iter().find(|t| !t.is_deprecated))
            .map_or("latest", |t| t.tag.as_str());
        let arch = tags.iter().find(|t| t.tag == version).and_then(|t| t.architecture.clone());
        let here = local.get(&name);
        let mut item = json!({
            "arch": arch.unwrap_or_else(|| "amd64".into()),
            "description": description,
            "downloading": here.is_some_and(|l| l.downloading),
            "icon": "",
            "installed": here.is_some_and(|l| !l.tags.is_empty()),
            "name": name,
            "repository": "dockerhub",
            "title": image.image_name,
            "type": "docker",
            "version": version,
        });
        if official {
            item["location"] = format!("https://registry.hub.docker.com/_/{name}/").into();
        } else {
            item["inspect"] = "".into();
            item["size"] = Value::Null;
        }
        results.push(sorted(item));
    }
    Ok(results)
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DownloadBody {
    description: Option<String>,
    location: Option<String>,
    icon: Option<String>,
    registry_name: Option<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DownloadQuery {
    registry_name: Option<String>,
}

/// `a/b/rest/of/it` → (`a`, `b`, `rest/of/it`).
pub(super) fn split3(path: &str) -> Option<(&str, &str, &str)> {
    let (first, rest) = path.split_once('/')?;
    let (second, rest) = rest.split_once('/')?;
    (!first.is_empty() && !second.is_empty() && !rest.is_empty()).then_some((first, second, rest))
}

/// `name/…/tag/download` → (`name/…`, `tag`).
fn split_download(path: &str) -> Result<(&str, &str), Error> {
    let rest = path.strip_suffix("/download").ok_or_else(|| Error::not_found("route", path))?;
    let (name, tag) = rest.rsplit_once('/').ok_or_else(|| Error::invalid("image_tag", "is missing"))?;
    if name.is_empty() || tag.is_empty() {
        return Err(Error::invalid("image_name", "the name and the tag must not be empty"));
    }
    image_core::validate::tag(tag).map_err(|e| Error::invalid("image_tag", e))?;
    Ok((name, tag))
}

/// `POST /api/v1/image/{repository}/{type}/{name}/{tag}/download`: queues an import into the internal
/// registry and answers `{}`. `repository` is `dockerhub`, `qnap` (the catalog's own source of the image)
/// or `private` (the station registry `registry_name` names, in the body or the query). Docker Hub is
/// read through `--docker-hub-mirror` when one is set. A user who is not an admin may download only what
/// the catalog approves; anything else is a 403, and files an approval request.
pub(super) async fn download(
    State(state): State<AppState>,
    user: User,
    PathParams(path, _): PathParams<String, super::Station>,
    crate::extract::Query(query, _): Query<DownloadQuery>,
    Body(body): Body<DownloadBody>,
) -> ApiResult<Json<Value>> {
    let (repository, kind, path) = split3(&path).ok_or_else(|| Error::not_found("route", &path))?;
    let (repository, kind) = (repository.to_owned(), kind.to_owned());
    let (name, tag) = split_download(path)?;
    if image_type(Some(&kind))? != "docker" {
        return Err(Error::invalid("image_type", "imagegate downloads docker images only").into());
    }
    for (field, text) in [("description", &body.description), ("location", &body.location), ("icon", &body.icon)] {
        if let Some(text) = text {
            image_core::validate::text(text, 2000).map_err(|e| Error::invalid(field, e))?;
        }
    }
    let internal = state.internal.clone().ok_or_else(no_internal_registry)?;
    let reference =
        |text: String| Reference::parse(&text).map_err(|e| Error::invalid("image_name", format!("`{text}`: {e}")));
    // The image as the catalog and the internal registry know it, and where it is read from.
    let (image, source, access, secret) = match repository.as_str() {
        "dockerhub" => {
            let image = reference(format!("docker.io/{name}:{tag}"))?;
            let (source, access) = docker_hub_source(&state, &image)?;
            (image, source, access, None)
        }
        "qnap" => {
            let wanted = reference(format!("{name}:{tag}"))?;
            let (found, _) = super::super::catalog_entry(state.store.as_ref(), &wanted).await?;
            let Some(found) = found.filter(|i| i.approval_status == ApprovalStatus::Approved) else {
                return Err(ApiError::not_found(format!("Image not found in the curated list: {name}")).into());
            };
            let image = reference(format!("{}/{}:{tag}", found.registry, found.repository()))?;
            let (source, access) = if image.registry() == image_core::DEFAULT_REGISTRY {
                docker_hub_source(&state, &image)?
            } else {
                (image.clone(), RegistryAccess::Configured)
            };
            (image, source, access, None)
        }
        "private" => {
            let registry_name =
                body.registry_name.clone().or(query.registry_name).filter(|n| !n.is_empty()).ok_or_else(|| {
                    Error::invalid("registry_name", "is required to download from a private registry")
                })?;
            let registry = super::registry::find(&state, &registry_name).await?;
            let source = reference(format!("{}/{name}:{tag}", registry.secret.domain))?;
            let access = if registry.secret.username.is_empty() {
                RegistryAccess::Anonymous
            } else {
                RegistryAccess::Login {
                    username: registry.secret.username.clone(),
                    password: Secret::new(registry.secret.password.expose()),
                    insecure: registry.secret.insecure,
                }
            };
            let secret = (!registry.secret.username.is_empty()).then(|| SecretRef {
                namespace: registry.secret.namespace.clone(),
                name: registry.secret.name.clone(),
            });
            (source.clone(), source, access, secret)
        }
        other => {
            return Err(Error::invalid("repository", format!("`{other}` is not dockerhub, qnap or private")).into());
        }
    };
    if user.user.role != Role::Admin {
        refuse_unapproved(&state, &user.user.username, &image).await?;
    }
    let target = internal
        .target_for(&image)
        .map_err(|e| Error::invalid("image_name", format!("cannot place {image} in the internal registry: {e}")))?;
    let check = tokio::time::timeout(SOURCE_CHECK_TIMEOUT, internal.copier.check_source(&source, &access)).await;
    match check {
        Err(_) => {
            return Err(ApiError::with_code(
                crate::error::Code::Timeout,
                format!("the registry of {source} did not answer in time; try again later"),
            )
            .into());
        }
        Ok(Err(e)) if e.kind == CopyErrorKind::Permanent => {
            return Err(ApiError::not_found(format!("Image not found: {name}:{tag} ({e})")).into());
        }
        Ok(Err(e)) => {
            return Err(ApiError::with_code(
                crate::error::Code::UpstreamUnavailable,
                format!("Service Unavailable: {e}"),
            )
            .into());
        }
        Ok(Ok(())) => {}
    }
    let import = NewImport {
        source,
        target,
        platforms: Vec::new(),
        description: body.description.filter(|d| !d.is_empty()),
        max_attempts: NewImport::DEFAULT_MAX_ATTEMPTS,
        timeout_secs: NewImport::DEFAULT_TIMEOUT_SECS,
        registry_secret: secret,
    };
    match state.store.enqueue_import(import, &user.user.username).await? {
        EnqueueOutcome::Started(job) => {
            let details =
                DownloadDetails { location: body.location.unwrap_or_default(), icon: body.icon.unwrap_or_default() };
            if details != DownloadDetails::default() {
                state.store.record_download(job.id, details).await?;
            }
            state.jobs_queued();
        }
        // Already downloading, or already here: nothing more to do.
        EnqueueOutcome::Existing(_) => {}
    }
    Ok(Json(json!({})))
}

/// How long a download waits for its source's manifest HEAD before answering.
const SOURCE_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where a Docker Hub image is read from: `--docker-hub-mirror` when set (as Docker's
/// `registry-mirrors`), else Docker Hub itself.
pub(super) fn docker_hub_source(state: &AppState, image: &Reference) -> Result<(Reference, RegistryAccess), Error> {
    match &state.station.docker_hub_mirror {
        None => Ok((image.clone(), RegistryAccess::Configured)),
        Some(mirror) => {
            let text = format!("{mirror}/{}:{}", image.repository(), image.tag().unwrap_or("latest"));
            let source = Reference::parse(&text)
                .map_err(|e| Error::invalid("image_name", format!("`{text}` (through the Docker Hub mirror): {e}")))?;
            Ok((source, RegistryAccess::Configured))
        }
    }
}

/// A 403 that says which approval request was filed, unless the catalog approves `image`.
async fn refuse_unapproved(state: &AppState, username: &str, image: &Reference) -> ApiResult<()> {
    let (found, tags) = super::super::catalog_entry(state.store.as_ref(), image).await?;
    let why = match image_core::rules::admit_under(found.as_ref(), &tags, image, state.deny_severity) {
        image_core::rules::Admission::Allowed { .. } => return Ok(()),
        image_core::rules::Admission::Refused(refusal) => refusal.to_string(),
    };
    let request = super::super::request_approval(
        state.store.as_ref(),
        image,
        format!("requested by a download of {image}"),
        username,
    )
    .await?;
    Err(ApiError::forbidden(format!(
        "cannot download {image}: {why}; approval request {} was filed for an admin to decide",
        request.id
    ))
    .into())
}

/// `GET /api/v1/image/downloadstatus`: `[{name, percent, status}]` of the imports in progress; `percent`
/// is null until the layers' sizes are known.
pub(super) async fn download_status(State(state): State<AppState>, _: User) -> ApiResult<Json<Value>> {
    let Some(internal) = state.internal.clone() else { return Ok(Json(json!([]))) };
    let mut list = Vec::new();
    for import in imports(&state, Some(false)).await? {
        if !import.state.is_active() {
            continue;
        }
        let size: u64 = import.layers.iter().map(|l| l.size).sum();
        let done: u64 =
            import.layers.iter().map(|l| if l.percent() == 100 { l.size } else { l.done.min(l.size) }).sum();
        let percent = (size > 0).then(|| done * 100 / size);
        // The seed shows one status, for queued and running alike.
        list.push(
            json!({ "name": local_name(&internal, &import.target), "percent": percent, "status": "downloading" }),
        );
    }
    Ok(Json(Value::Array(list)))
}

/// `DELETE /api/v1/image/local/{type}/{name}`: every tag of that image goes from the internal registry
/// and the listings; `{action, name, state, type}`. An image that is not there (or still downloading)
/// is a 404 `Image not found: NAME`.
pub(super) async fn delete_local(
    State(state): State<AppState>,
    admin: AdminUser,
    PathParams(path, _): PathParams<String, super::Station>,
) -> ApiResult<Json<Value>> {
    let (repository, kind, name) = split3(&path).ok_or_else(|| Error::not_found("route", &path))?;
    if repository != "local" {
        return Err(Error::invalid("repository", "only `local` images can be deleted").into());
    }
    let (kind, name) = (kind.to_owned(), name.to_owned());
    if image_type(Some(&kind))? != "docker" {
        return Err(ApiError::not_found(format!("Image not found: {name}")).into());
    }
    let internal = state.internal.clone().ok_or_else(no_internal_registry)?;
    let found: Vec<ImportJob> =
        imports(&state, Some(true)).await?.into_iter().filter(|i| local_name(&internal, &i.target) == name).collect();
    if found.is_empty() {
        return Err(ApiError::not_found(format!("Image not found: {name}")).into());
    }
    let registry: &dyn image_core::copy::ImageCopier = internal.copier.as_ref();
    for import in found {
        image_core::workflow::delete_import(state.store.as_ref(), Some(registry), import.id, &admin.user.username)
            .await?;
    }
    Ok(Json(json!({ "action": "delete", "name": name, "state": "success", "type": kind })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_paths_end_in_the_tag_and_the_verb() {
        assert_eq!(split_download("lgsd/diamond/latest/download").unwrap(), ("lgsd/diamond", "latest"));
        assert_eq!(split_download("redis/7/download").unwrap(), ("redis", "7"));
        assert!(split_download("redis/7").is_err());
        assert!(split_download("latest/download").is_err());
        assert!(split_download("redis/bad tag/download").is_err());
        assert!(split_download("/latest/download").is_err());
    }

    #[test]
    fn docker_names() {
        assert_eq!(docker_name("docker.io", "library/redis"), "redis");
        assert_eq!(docker_name("docker.io", "grafana/grafana"), "grafana/grafana");
        assert_eq!(docker_name("ghcr.io", "acme/app"), "ghcr.io/acme/app");
    }
}
