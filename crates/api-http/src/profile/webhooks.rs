//! Events from the internal registry: `POST /api/v1/webhooks/harbor` receives the payloads of a Harbor
//! webhook policy, authenticated by the header secret the policy sends (`--harbor-webhook-secret`).
//!
//! `SCANNING_COMPLETED`, `SCANNING_FAILED` and `SCANNING_STOPPED` queue a `scan` job (read only, no new
//! scan) for each resource that a succeeded import put there, so that the catalog tag gets the outcome.
//! `PUSH_ARTIFACT` and `DELETE_ARTIFACT` of a repository an import landed in change the catalog image of that
//! import's source: a pushed tag is added (or its digest moved), a deleted one loses its digest. Other event
//! types are checked and acknowledged. A missing or wrong secret is a 401, a malformed payload a 400; neither
//! changes anything.

use std::collections::BTreeSet;

use axum::{Json, extract::State, http::StatusCode};
use image_core::import::{ImportFilter, ImportOrder};
use image_core::job::ScanPayload;
use image_core::{Digest, Error, catalog::Page};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::routes::{Access, Routes};

use super::plain::{ApiResult, Body};

const HARBOR_SECRET: &str = "the Harbor webhook secret";

pub(crate) fn routes() -> Routes {
    Routes::new("/api/v1").post("/webhooks/harbor", Access::Secret(HARBOR_SECRET), harbor_webhook)
}

#[derive(Debug, Deserialize)]
struct HarborEvent {
    #[serde(rename = "type")]
    event_type: String,
    event_data: HarborEventData,
}

#[derive(Debug, Deserialize)]
struct HarborEventData {
    #[serde(default)]
    resources: Option<Vec<HarborResource>>,
    repository: HarborRepository,
}

#[derive(Debug, Deserialize)]
struct HarborResource {
    digest: Option<String>,
    tag: Option<String>,
}

#[derive(Debug, Deserialize)]
struct HarborRepository {
    repo_full_name: String,
}

/// Whether `given` is `expected`, in time that does not depend on where they differ.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len() && given.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn unauthorized(message: &str) -> crate::error::ProfileError<crate::error::Plain> {
    ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message).into()
}

/// A request that carries the Harbor webhook secret as its `Authorization` header; checked before the body
/// is read, so that without it nothing else is said.
struct HarborSecret;

impl axum::extract::FromRequestParts<AppState> for HarborSecret {
    type Rejection = crate::error::ProfileError<crate::error::Plain>;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let Some(secret) = s.harbor_webhook_secret.as_ref() else {
            return Err(unauthorized(
                "Harbor webhooks are not accepted: start the server with --harbor-webhook-secret",
            ));
        };
        let given = parts.headers.get(axum::http::header::AUTHORIZATION).map(|v| v.as_bytes()).unwrap_or_default();
        if !same_secret(given, secret.expose().as_bytes()) {
            return Err(unauthorized("the webhook's Authorization header is not the configured Harbor webhook secret"));
        }
        Ok(HarborSecret)
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
            tagged.push((tag, digest.clone()));
        }
        digests.insert(digest);
    }
    let Some(internal) = s.internal.clone() else {
        return Ok((StatusCode::ACCEPTED, Json(json!({ "type": event.event_type, "queued": 0 }))));
    };
    match event.event_type.as_str() {
        "PUSH_ARTIFACT" | "DELETE_ARTIFACT" => {
            let push = event.event_type == "PUSH_ARTIFACT";
            let changed = tags_from_event(&s, &internal.host, &repository, &tagged, push).await?;
            return Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "type": event.event_type, "queued": 0, "tags_changed": changed })),
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

/// A push or delete made directly on the internal registry, onto the catalog's tags: the catalog image is
/// the source of an import that landed in `repository`; a pushed tag is added to it (or its digest moved),
/// a deleted tag keeps its place in the approved list but loses its digest. Answers how many tags changed.
async fn tags_from_event(
    s: &AppState,
    host: &str,
    repository: &str,
    tagged: &[(String, Digest)],
    push: bool,
) -> image_core::Result<u64> {
    let filter = ImportFilter {
        tag: None,
        ready: Some(true),
        created_by: None,
        order_by: ImportOrder::Id,
        descending: true,
        page: Page::new(Some(Page::MAX_LIMIT), None)?,
    };
    let listing = s.store.list_imports(&filter).await?;
    let Some(import) =
        listing.items.into_iter().find(|i| i.target.registry() == host && i.target.repository() == repository)
    else {
        return Ok(0);
    };
    let (namespace, name) = import.source.repository().rsplit_once('/').unwrap_or(("", import.source.repository()));
    let Some(image) = s.store.find_image(import.source.registry(), namespace, name).await? else { return Ok(0) };
    let tags = s.store.list_tags(image.id).await?;
    let mut changed = 0;
    for (tag_name, digest) in tagged {
        let existing = tags.iter().find(|t| &t.tag == tag_name);
        match (push, existing) {
            (true, None) => {
                let new = image_core::catalog::NewTag::new(tag_name.clone())?.with_digest(Some(digest.clone()));
                s.store.create_tag(image.id, new, ACTOR).await?;
            }
            (true, Some(tag)) if tag.digest.as_ref() != Some(digest) => {
                let update =
                    image_core::catalog::TagUpdate { digest: Some(Some(digest.clone())), ..Default::default() };
                s.store.update_tag(image.id, tag.id, update, ACTOR).await?;
            }
            (false, Some(tag)) if tag.digest.as_ref() == Some(digest) => {
                let update = image_core::catalog::TagUpdate { digest: Some(None), ..Default::default() };
                s.store.update_tag(image.id, tag.id, update, ACTOR).await?;
            }
            _ => continue,
        }
        changed += 1;
    }
    Ok(changed)
}

/// Who the audit trail says changed a tag from a registry event.
const ACTOR: &str = "harbor-webhook";
