//! Events from the internal registry: `POST /api/v1/webhooks/harbor` receives the payloads of a Harbor
//! webhook policy, authenticated by the header secret the policy sends (`--harbor-webhook-secret`).
//!
//! `POST /api/v1/webhooks/docker-registry` receives CNCF Distribution's notification envelopes,
//! authenticated by the shared secret its endpoint sends as `Authorization` (`--registry-webhook-secret`).
//!
//! `SCANNING_COMPLETED`, `SCANNING_FAILED` and `SCANNING_STOPPED` queue a `scan` job (read only, no new
//! scan) for each resource that a succeeded import put there, so that the catalog tag gets the outcome.
//! `PUSH_ARTIFACT` and `DELETE_ARTIFACT` (and Distribution's `push` and `delete`) change the platform
//! listing: a pushed tag shows there as a finished import (made by `harbor-webhook` or `registry-webhook`),
//! and a deleted artifact's records go. In a repository an import landed in, they also change the catalog
//! image of that import's source: a pushed tag is added (or its digest moved), a deleted one loses its
//! digest. Other event types are checked and acknowledged. A missing or wrong secret is a 401, a malformed
//! payload a 400; neither changes anything.

use std::collections::BTreeSet;

use axum::{Json, extract::State, http::StatusCode};
use image_core::import::{Artifact, ImportFilter, ImportJob, ImportOrder, RegistryPush};
use image_core::job::ScanPayload;
use image_core::{Digest, Error, Reference, catalog::Page};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::routes::{Access, Routes};

use super::plain::{ApiResult, Body};

const HARBOR_SECRET: &str = "the Harbor webhook secret";

const REGISTRY_SECRET: &str = "the registry webhook secret";

pub(crate) fn routes() -> Routes {
    Routes::new("/api/v1").post("/webhooks/harbor", Access::Secret(HARBOR_SECRET), harbor_webhook).post(
        "/webhooks/docker-registry",
        Access::Secret(REGISTRY_SECRET),
        registry_webhook,
    )
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct HarborEvent {
    #[serde(rename = "type")]
    event_type: String,
    event_data: HarborEventData,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct HarborEventData {
    #[serde(default)]
    resources: Option<Vec<HarborResource>>,
    repository: HarborRepository,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct HarborResource {
    digest: Option<String>,
    tag: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct HarborRepository {
    repo_full_name: String,
}

/// Whether `given` is `expected`, in time that does not depend on where they differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn unauthorized(message: &str) -> crate::error::ProfileError<crate::error::Plain> {
    ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message).into()
}

/// Why the request's `Authorization` header is not exactly `secret` (none configured: never is), if it is
/// not.
fn secret_refusal(
    secret: Option<&image_core::kube::Secret>,
    headers: &axum::http::HeaderMap,
    what: &str,
    flag: &str,
) -> Option<String> {
    let Some(secret) = secret else {
        return Some(format!("{what} are not accepted: start the server with {flag}"));
    };
    let given = headers.get(axum::http::header::AUTHORIZATION).map(|v| v.as_bytes()).unwrap_or_default();
    (!same_secret(given, secret.expose().as_bytes()))
        .then(|| format!("the Authorization header of {what} is not the secret given to {flag}"))
}

/// A request that carries the registry webhook secret as its `Authorization` header (Distribution's
/// notification endpoint `headers`), checked before the body is read.
struct RegistrySecret;

impl axum::extract::FromRequestParts<AppState> for RegistrySecret {
    type Rejection = crate::error::ProfileError<crate::error::Plain>;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let secret = s.registry_webhook_secret.as_ref();
        match secret_refusal(secret, &parts.headers, "registry notifications", "--registry-webhook-secret") {
            Some(why) => Err(unauthorized(&why)),
            None => Ok(RegistrySecret),
        }
    }
}

/// A request that carries the Harbor webhook secret as its `Authorization` header; checked before the body
/// is read, so that without it nothing else is said.
struct HarborSecret;

impl axum::extract::FromRequestParts<AppState> for HarborSecret {
    type Rejection = crate::error::ProfileError<crate::error::Plain>;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let secret = s.harbor_webhook_secret.as_ref();
        match secret_refusal(secret, &parts.headers, "Harbor webhooks", "--harbor-webhook-secret") {
            Some(why) => Err(unauthorized(&why)),
            None => Ok(HarborSecret),
        }
    }
}

async fn harbor_webhook(
    State(s): State<AppState>,
    _secret: HarborSecret,
    crate::extract::Body(event, _): Body<HarborEvent>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let repository = event.event_data.repository.repo_full_name;
    image_core::validate::repository_path(&repository)
        .map_err(|e| Error::invalid("event_data.repository.repo_full_name", e))?;
    let mut digests = BTreeSet::new();
    let mut tagged = Vec::new();
    for (i, resource) in event.event_data.resources.unwrap_or_default().into_iter().enumerate() {
        let Some(digest) = resource.digest else { continue };
        let digest: Digest =
            digest.parse().map_err(|e| Error::invalid(format!("event_data.resources[{i}].digest"), e))?;
        if let Some(tag) = resource.tag.filter(|t| !t.is_empty()) {
            image_core::validate::tag(&tag).map_err(|e| Error::invalid(format!("event_data.resources[{i}].tag"), e))?;
            tagged.push((Some(tag), digest.clone()));
        }
        digests.insert(digest);
    }
    let Some(internal) = s.internal.clone() else {
        return Ok((StatusCode::ACCEPTED, Json(json!({ "type": event.event_type, "queued": 0 }))));
    };
    match event.event_type.as_str() {
        "PUSH_ARTIFACT" | "DELETE_ARTIFACT" => {
            let push = event.event_type == "PUSH_ARTIFACT";
            let (tags, listed) = artifact_event(&s, &internal, &repository, &tagged, push, HARBOR_ACTOR).await?;
            return Ok((
                StatusCode::ACCEPTED,
                Json(
                    json!({ "type": event.event_type, "queued": 0, "tags_changed": tags, "artifacts_changed": listed }),
                ),
            ));
        }
        "SCANNING_COMPLETED" | "SCANNING_FAILED" | "SCANNING_STOPPED" => {}
        _ => return Ok((StatusCode::ACCEPTED, Json(json!({ "type": event.event_type, "queued": 0 })))),
    }
    // The imports that put these digests into this repository, whose catalog tags the scan concerns.
    let mut queued = 0;
    let mut offset = 0;
    let now = time::OffsetDateTime::now_utc();
    loop {
        let filter = ImportFilter {
            tag: None,
            ready: Some(true),
            created_by: None,
            order_by: ImportOrder::Id,
            descending: false,
            page: Page::new(Some(Page::MAX_LIMIT), Some(offset))?,
        };
        let listing = s.store.list_imports(&filter).await?;
        let count = listing.items.len() as i64;
        for import in listing.items {
            let ours = import.target.registry() == internal.host && import.target.repository() == repository;
            if let (true, Some(digest)) = (ours, import.digest.as_ref().filter(|d| digests.contains(*d))) {
                let payload = ScanPayload {
                    source: import.source.clone(),
                    repository: repository.clone(),
                    digest: digest.clone(),
                    request: false,
                };
                s.store.enqueue_scan(&payload, now, ScanPayload::MAX_ATTEMPTS).await?;
                queued += 1;
            }
        }
        offset += count;
        if count == 0 || offset >= listing.total {
            break;
        }
    }
    if queued > 0 {
        s.jobs_queued();
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "type": event.event_type, "queued": queued }))))
}

/// The newest succeeded import that landed in `repository` of the internal registry `host`, if any.
async fn landed_import(s: &AppState, host: &str, repository: &str) -> image_core::Result<Option<ImportJob>> {
    let filter = ImportFilter {
        tag: None,
        ready: Some(true),
        created_by: None,
        order_by: ImportOrder::Id,
        descending: true,
        page: Page::new(Some(Page::MAX_LIMIT), None)?,
    };
    let listing = s.store.list_imports(&filter).await?;
    Ok(listing.items.into_iter().find(|i| i.target.registry() == host && i.target.repository() == repository))
}

/// A push or delete made directly on the internal registry, onto the catalog's tags and the platform
/// listing. Answers how many tags and how many listed artifacts changed.
async fn artifact_event(
    s: &AppState,
    internal: &crate::InternalRegistry,
    repository: &str,
    tagged: &[(Option<String>, Digest)],
    push: bool,
    actor: &str,
) -> image_core::Result<(u64, u64)> {
    let landed = landed_import(s, &internal.host, repository).await?;
    let tags = match &landed {
        Some(import) => tags_from_event(s, import, tagged, push, actor).await?,
        None => 0,
    };
    let listed = listing_from_event(s, internal, landed.as_ref(), repository, tagged, push, actor).await?;
    Ok((tags, listed))
}

/// The catalog's tags: the catalog image is the source of `import`, which landed in the event's repository;
/// a pushed tag is added to it (or its digest moved), a deleted tag keeps its place in the approved list
/// but loses its digest. Answers how many tags changed.
async fn tags_from_event(
    s: &AppState,
    import: &ImportJob,
    tagged: &[(Option<String>, Digest)],
    push: bool,
    actor: &str,
) -> image_core::Result<u64> {
    let (namespace, name) = import.source.repository().rsplit_once('/').unwrap_or(("", import.source.repository()));
    let Some(image) = s.store.find_image(import.source.registry(), namespace, name).await? else { return Ok(0) };
    let tags = s.store.list_tags(image.id).await?;
    let mut changed = 0;
    for (tag_name, digest) in tagged {
        if !push {
            // A delete by tag clears that tag; a manifest delete (no tag) clears every tag on the digest.
            for tag in tags.iter().filter(|t| t.digest.as_ref() == Some(digest)) {
                if tag_name.as_ref().is_some_and(|n| n != &tag.tag) {
                    continue;
                }
                let update = image_core::catalog::TagUpdate { digest: Some(None), ..Default::default() };
                s.store.update_tag(image.id, tag.id, update, actor).await?;
                changed += 1;
            }
            continue;
        }
        let Some(tag_name) = tag_name else { continue };
        match tags.iter().find(|t| &t.tag == tag_name) {
            None => {
                let new = image_core::catalog::NewTag::new(tag_name.clone())?.with_digest(Some(digest.clone()));
                s.store.create_tag(image.id, new, actor).await?;
            }
            Some(tag) if tag.digest.as_ref() != Some(digest) => {
                let update =
                    image_core::catalog::TagUpdate { digest: Some(Some(digest.clone())), ..Default::default() };
                s.store.update_tag(image.id, tag.id, update, actor).await?;
            }
            Some(_) => continue,
        }
        changed += 1;
    }
    Ok(changed)
}

/// The platform listing: a pushed tag is recorded as a finished import (of the catalog image the import
/// that landed in `repository` came from, with the pushed tag; of the internal repository itself when no
/// import landed there), with its platforms and size where the registry says; a deleted artifact's records
/// go. Answers how many records changed.
async fn listing_from_event(
    s: &AppState,
    internal: &crate::InternalRegistry,
    landed: Option<&ImportJob>,
    repository: &str,
    tagged: &[(Option<String>, Digest)],
    push: bool,
    actor: &str,
) -> image_core::Result<u64> {
    let host = internal.host.as_str();
    let mut changed = 0;
    for (tag, digest) in tagged {
        if !push {
            changed += s.store.forget_registry_artifact(host, repository, tag.as_deref(), digest, actor).await?;
            continue;
        }
        let Some(tag) = tag else { continue };
        let invalid = |e: image_core::ReferenceError| Error::invalid("repository", e.to_string());
        let target = Reference::new(host, repository, Some(tag), None).map_err(invalid)?;
        let source = match landed {
            Some(import) => Reference::new(import.source.registry(), import.source.repository(), Some(tag), None)
                .map_err(invalid)?,
            None => target.clone(),
        };
        let artifacts = registry_artifacts(internal, repository, digest).await;
        let recorded = RegistryPush { source, target, digest: digest.clone(), artifacts };
        if s.store.record_registry_push(&recorded, actor).await?.is_some() {
            changed += 1;
        }
    }
    Ok(changed)
}

/// The platforms and size of `digest` in `repository`, as the internal registry lists them; none when it
/// cannot say (the record then shows the digest alone).
async fn registry_artifacts(internal: &crate::InternalRegistry, repository: &str, digest: &Digest) -> Vec<Artifact> {
    let listed = match internal.admin.list_artifacts(repository).await {
        Ok(listed) => listed,
        Err(error) => {
            tracing::info!(%repository, %error, "the internal registry could not list a pushed artifact's platforms");
            return Vec::new();
        }
    };
    let Some(found) = listed.into_iter().find(|a| &a.digest == digest) else { return Vec::new() };
    let media_type = found.media_type.clone().unwrap_or_default();
    let platforms: Vec<Option<&str>> = match found.platforms.as_slice() {
        [] => vec![None],
        many => many.iter().map(|p| Some(p.as_str())).collect(),
    };
    let share = found.size.unwrap_or(0) / platforms.len() as u64;
    platforms
        .into_iter()
        .map(|platform| {
            let mut parts = platform.unwrap_or_default().splitn(3, '/');
            let some = |p: Option<&str>| p.filter(|p| !p.is_empty()).map(str::to_owned);
            Artifact {
                digest: digest.clone(),
                media_type: media_type.clone(),
                os: some(parts.next()),
                architecture: some(parts.next()),
                variant: some(parts.next()),
                size: share,
            }
        })
        .collect()
}

/// Who the audit trail says changed a tag or a listed artifact from a Harbor event.
const HARBOR_ACTOR: &str = "harbor-webhook";
/// Who the audit trail says changed a tag or a listed artifact from a registry notification.
const REGISTRY_ACTOR: &str = "registry-webhook";

/// CNCF Distribution's notification envelope (`application/vnd.docker.distribution.events.v1+json`).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct RegistryEnvelope {
    events: Vec<RegistryEvent>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct RegistryEvent {
    action: String,
    target: RegistryTarget,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct RegistryTarget {
    repository: String,
    digest: Option<String>,
    tag: Option<String>,
}

/// `POST /api/v1/webhooks/docker-registry`: `push` and `delete` events of manifests in repositories that
/// imports landed in change the catalog's tags as Harbor's push and delete events do; `pull` and blob events
/// change nothing. Every event is checked before any is applied.
async fn registry_webhook(
    State(s): State<AppState>,
    _secret: RegistrySecret,
    crate::extract::Body(envelope, _): Body<RegistryEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut changes: Vec<(bool, String, Option<String>, Digest)> = Vec::new();
    for (i, event) in envelope.events.into_iter().enumerate() {
        let field = |f: &str| format!("events[{i}].{f}");
        image_core::validate::repository_path(&event.target.repository)
            .map_err(|e| Error::invalid(field("target.repository"), e))?;
        if let Some(tag) = &event.target.tag {
            image_core::validate::tag(tag).map_err(|e| Error::invalid(field("target.tag"), e))?;
        }
        let digest = match &event.target.digest {
            Some(d) => Some(d.parse::<Digest>().map_err(|e| Error::invalid(field("target.digest"), e))?),
            None => None,
        };
        let push = match event.action.as_str() {
            "push" => true,
            "delete" => false,
            "pull" | "mount" => continue,
            other => {
                return Err(
                    Error::invalid(field("action"), format!("`{other}` is not push, pull, mount or delete")).into()
                );
            }
        };
        // Blob pushes carry no tag and a layer digest: only manifests with a tag (push) or any delete count.
        if let Some(digest) = digest
            && (!push || event.target.tag.is_some())
        {
            changes.push((push, event.target.repository, event.target.tag, digest));
        }
    }
    let Some(internal) = s.internal.clone() else {
        return Ok((StatusCode::ACCEPTED, Json(json!({ "tags_changed": 0, "artifacts_changed": 0 }))));
    };
    let (mut tags, mut listed) = (0, 0);
    for (push, repository, tag, digest) in changes {
        let (t, l) = artifact_event(&s, &internal, &repository, &[(tag, digest)], push, REGISTRY_ACTOR).await?;
        tags += t;
        listed += l;
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "tags_changed": tags, "artifacts_changed": listed }))))
}
