//! What the station profile reads from registries: `GET /api/v1/image/{name}/tags`,
//! `…/{type}/{name}/{tag}/inspect` and `…/remote_inspect`, and the `dockerhub` and `private` search
//! categories.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{Json, extract::State};
use image_core::{
    Error, Reference,
    copy::{CopyError, CopyErrorKind, RegistryAccess},
    kube::Secret,
    station::{HubRepository, ImageConfig, RegistryBrowser, StationRegistry},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    ApiResult, Query, User,
    image::{docker_hub_source, image_type, local_images, local_name, matches, no_internal_registry, sorted},
    registry::DOCKER_HUB,
};
use crate::{AppState, error::ApiError, extract::PathParams};

/// Docker Hub searches answered in the last [`HubCache::TTL`], by query.
#[derive(Debug, Default)]
pub struct HubCache {
    entries: Mutex<HashMap<String, (Instant, Vec<HubRepository>)>>,
}

impl HubCache {
    const TTL: Duration = Duration::from_secs(60);
    const CAPACITY: usize = 1000;

    fn get(&self, query: &str) -> Option<Vec<HubRepository>> {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.get(query).filter(|(at, _)| at.elapsed() < Self::TTL).map(|(_, found)| found.clone())
    }

    fn put(&self, query: &str, found: Vec<HubRepository>) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= Self::CAPACITY {
            entries.retain(|_, (at, _)| at.elapsed() < Self::TTL);
            if entries.len() >= Self::CAPACITY {
                entries.clear();
            }
        }
        entries.insert(query.to_owned(), (Instant::now(), found));
    }
}

fn browser(state: &AppState) -> Result<&dyn RegistryBrowser, Error> {
    state
        .browser
        .as_deref()
        .ok_or_else(|| Error::unavailable("this server reads no registries (no registry client is configured)"))
}

/// A registry's failure: what it does not have is a 404, anything else a 503 (as the seed's
/// `Service Unabailable`).
fn read_error(what: &str, e: CopyError) -> ApiError {
    match e.kind {
        CopyErrorKind::Permanent => ApiError::not_found(format!("Image not found: {what}")),
        CopyErrorKind::Transient => ApiError::unavailable(format!("Service Unavailable: {e}")),
    }
}

/// How a station registry is read: its account, or anonymously when it has none.
fn access_of(registry: &StationRegistry) -> RegistryAccess {
    if registry.secret.username.is_empty() {
        RegistryAccess::Anonymous
    } else {
        RegistryAccess::Login {
            username: registry.secret.username.clone(),
            password: Secret::new(registry.secret.password.expose()),
            insecure: registry.secret.insecure,
        }
    }
}

/// `name:tag` in the registry called `registry_name` (Docker Hub when none): the image as the internal
/// registry would hold it, where it is read, and how.
async fn locate(
    state: &AppState,
    registry_name: Option<&str>,
    name: &str,
    tag: &str,
) -> ApiResult<(Reference, Reference, RegistryAccess)> {
    let parse =
        |text: String| Reference::parse(&text).map_err(|e| Error::invalid("image_name", format!("`{text}`: {e}")));
    match registry_name.filter(|n| !n.is_empty() && *n != DOCKER_HUB) {
        None => {
            let image = parse(format!("docker.io/{name}:{tag}"))?;
            let (source, access) = docker_hub_source(state, &image)?;
            Ok((image, source, access))
        }
        Some(registry_name) => {
            let registry = super::registry::find(state, registry_name).await?;
            let source = parse(format!("{}/{name}:{tag}", registry.secret.domain))?;
            Ok((source.clone(), source, access_of(&registry)))
        }
    }
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BrowseQuery {
    registry: Option<String>,
}

/// `GET /api/v1/image/{name}/tags`, `…/{type}/{name}/{tag}/inspect` and `…/remote_inspect`.
pub(super) async fn get(
    State(state): State<AppState>,
    _: User,
    PathParams(path, _): PathParams<String, super::Station>,
    crate::extract::Query(query, _): Query<BrowseQuery>,
) -> ApiResult<Json<Value>> {
    if let Some(name) = path.strip_suffix("/tags") {
        return tags(&state, name, query.registry.as_deref()).await;
    }
    let (remote, rest) = match (path.strip_suffix("/remote_inspect"), path.strip_suffix("/inspect")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => return Err(ApiError::not_found(format!("no route /api/v1/image/{path}")).into()),
    };
    let (kind, rest) = rest.split_once('/').ok_or_else(|| Error::invalid("image_name", "is missing"))?;
    let (name, tag) = rest.rsplit_once('/').ok_or_else(|| Error::invalid("image_tag", "is missing"))?;
    if name.is_empty() {
        return Err(Error::invalid("image_name", "must not be empty").into());
    }
    image_core::validate::tag(tag).map_err(|e| Error::invalid("image_tag", e))?;
    if image_type(Some(kind))? != "docker" {
        return Err(ApiError::not_found(format!("Image not found: {name}:{tag}")).into());
    }
    let browser = browser(&state)?;
    if remote {
        let (_, source, access) = locate(&state, query.registry.as_deref(), name, tag).await?;
        let config =
            browser.image_config(&source, &access).await.map_err(|e| read_error(&format!("{name}:{tag}"), e))?;
        return Ok(Json(inspect_json(&config, true)));
    }
    if query.registry.is_some() {
        return Err(
            Error::invalid("registry", "names the source of remote_inspect; inspect reads the local image").into()
        );
    }
    let internal = state.internal.clone().ok_or_else(no_internal_registry)?;
    let local = local_images(&state, &internal).await?;
    if !local.get(name).is_some_and(|l| l.tags.contains_key(tag)) {
        return Err(ApiError::not_found(format!("Image not found: {name}:{tag}")).into());
    }
    // The internal registry's copy: found by the name the listing gives it.
    let imports = state
        .store
        .list_imports(&image_core::import::ImportFilter {
            tag: Some(tag.to_owned()),
            ready: Some(true),
            created_by: None,
            order_by: image_core::import::ImportOrder::CreatedAt,
            descending: true,
            page: image_core::catalog::Page::new(Some(image_core::catalog::Page::MAX_LIMIT), None)?,
        })
        .await?;
    let target = imports
        .items
        .into_iter()
        .map(|i| i.target)
        .find(|t| local_name(&internal, t) == name)
        .ok_or_else(|| ApiError::not_found(format!("Image not found: {name}:{tag}")))?;
    let config = browser
        .image_config(&target, &RegistryAccess::Configured)
        .await
        .map_err(|e| read_error(&format!("{name}:{tag}"), e))?;
    Ok(Json(inspect_json(&config, false)))
}

/// The keys of a Docker 1.6 container config, with the values an absent one has.
fn container_config(source: &Value) -> Value {
    let defaults = json!({
        "AttachStderr": false, "AttachStdin": false, "AttachStdout": false, "Cmd": null, "CpuShares": 0,
        "Cpuset": "", "Domainname": "", "Entrypoint": null, "Env": null, "ExposedPorts": null, "Hostname": "",
        "Image": "", "Labels": {}, "MacAddress": "", "Memory": 0, "MemorySwap": 0, "NetworkDisabled": false,
        "OnBuild": null, "OpenStdin": false, "PortSpecs": null, "StdinOnce": false, "Tty": false, "User": "",
        "Volumes": null, "WorkingDir": "",
    });
    let mut out = Map::new();
    for (key, default) in defaults.as_object().into_iter().flatten() {
        let value = source.get(key).filter(|v| !v.is_null() || default.is_null()).unwrap_or(default);
        out.insert(key.clone(), value.clone());
    }
    sorted(Value::Object(out))
}

/// An image config in the seed's Docker inspect shape, with `Remote` (and, when remote, sizes of 0).
fn inspect_json(image: &ImageConfig, remote: bool) -> Value {
    let config = &image.config;
    let text = |key: &str| config[key].as_str().unwrap_or_default().to_owned();
    sorted(json!({
        "Architecture": text("architecture"),
        "Author": text("author"),
        "Comment": text("comment"),
        "Config": container_config(&config["config"]),
        "Container": text("container"),
        "ContainerConfig": container_config(&config["container_config"]),
        "Created": text("created"),
        "DockerVersion": text("docker_version"),
        "Id": image.id.strip_prefix("sha256:").unwrap_or(&image.id),
        "Os": text("os"),
        "Parent": "",
        "Remote": remote,
        "Size": 0,
        "VirtualSize": if remote { 0 } else { image.size },
    }))
}

/// `{installed, name, tags}`: every tag of `name` in the registry (Docker Hub unless `registry` names a
/// station registry), and those the internal registry holds.
async fn tags(state: &AppState, name: &str, registry: Option<&str>) -> ApiResult<Json<Value>> {
    if name.is_empty() {
        return Err(Error::invalid("image_name", "must not be empty").into());
    }
    let browser = browser(state)?;
    let (image, source, access) = locate(state, registry, name, "latest").await?;
    let mut tags =
        browser.tags(source.registry(), source.repository(), &access).await.map_err(|e| read_error(name, e))?;
    tags.sort();
    let installed: Vec<String> = match &state.internal {
        Some(internal) => {
            let local = local_images(state, internal).await?;
            let target = internal.target_for(&image).map_err(|e| Error::invalid("image_name", e.to_string()))?;
            local.get(&local_name(internal, &target)).map(|l| l.tags.keys().cloned().collect()).unwrap_or_default()
        }
        None => Vec::new(),
    };
    Ok(Json(json!({ "installed": installed, "name": name, "tags": tags })))
}

/// `category=dockerhub`: Docker Hub's search for `query`, kept for a minute.
pub(super) async fn search_hub(state: &AppState, query: &str) -> ApiResult<Vec<Value>> {
    let found = match state.hub_cache.get(query) {
        Some(found) => found,
        None => {
            let found = browser(state)?.search_hub(&state.station.docker_hub_url, query).await.map_err(|e| {
                ApiError::unavailable(format!("Service Unavailable: Docker Hub cannot be searched now: {e}"))
            })?;
            state.hub_cache.put(query, found.clone());
            found
        }
    };
    let local = match &state.internal {
        Some(internal) => local_images(state, internal).await?,
        None => Default::default(),
    };
    Ok(found
        .into_iter()
        .map(|r| {
            let here = local.get(&r.name);
            let location = if r.is_official {
                format!("https://registry.hub.docker.com/_/{}/", r.name)
            } else {
                format!("https://registry.hub.docker.com/u/{}", r.name)
            };
            json!({
                "description": r.description,
                "downloading": here.is_some_and(|l| l.downloading),
                "installed": here.is_some_and(|l| !l.tags.is_empty()),
                "is_official": r.is_official,
                "is_trusted": r.is_automated,
                "location": location,
                "name": r.name,
                "repository": "dockerhub",
                "star_count": r.star_count,
                "type": "docker",
            })
        })
        .collect())
}

/// `category=private&registry_name=NAME`: the station registry's repositories (its `_catalog`) whose
/// name holds `filter`.
pub(super) async fn search_private(state: &AppState, registry_name: &str, filter: &str) -> ApiResult<Vec<Value>> {
    if registry_name == DOCKER_HUB {
        return Err(Error::invalid("registry_name", "Docker Hub is searched with category=dockerhub").into());
    }
    let registry = super::registry::find(state, registry_name).await?;
    let browser = browser(state)?;
    let mut repositories = browser
        .repositories(&registry.secret.domain, &access_of(&registry))
        .await
        .map_err(|e| ApiError::unavailable(format!("Service Unavailable: {e}")))?;
    repositories.sort();
    let local = match &state.internal {
        Some(internal) => local_images(state, internal).await?,
        None => Default::default(),
    };
    let mut results = Vec::new();
    for repository in repositories.into_iter().filter(|r| matches(filter, &[r])) {
        let here = match (&state.internal, Reference::parse(&format!("{}/{repository}", registry.secret.domain))) {
            (Some(internal), Ok(source)) => {
                internal.target_for(&source).ok().and_then(|t| local.get(&local_name(internal, &t)))
            }
            _ => None,
        };
        results.push(json!({
            "description": "",
            "downloading": here.is_some_and(|l| l.downloading),
            "installed": here.is_some_and(|l| !l.tags.is_empty()),
            "name": repository,
            "registry_name": registry_name,
            "repository": "private",
            "type": "docker",
        }));
    }
    Ok(results)
}
