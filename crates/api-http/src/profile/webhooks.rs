//! Events from the internal registry: `POST /api/v1/webhooks/harbor` receives the payloads of a Harbor
//! webhook policy, authenticated by the header secret the policy sends (`--harbor-webhook-secret`).
//!
//! `SCANNING_COMPLETED`, `SCANNING_FAILED` and `SCANNING_STOPPED` queue a `scan` job (read only, no new
//! scan) for each resource that a succeeded import put there, so that the catalog tag gets the outcome.
//! Other event types (`PUSH_ARTIFACT`, `DELETE_ARTIFACT`, …) are checked and acknowledged but change
//! nothing yet. A missing or wrong secret is a 401, a malformed payload a 400; neither changes anything.

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
    for (i, resource) in event.event_data.resources.unwrap_or_default().into_iter().enumerate() {
        let Some(digest) = resource.digest else { continue };
        let digest: Digest =
            digest.parse().map_err(|e| Error::invalid(format!("event_data.resources[{i}].digest"), e))?;
        digests.insert(digest);
    }
    if !matches!(event.event_type.as_str(), "SCANNING_COMPLETED" | "SCANNING_FAILED" | "SCANNING_STOPPED") {
        return Ok((StatusCode::ACCEPTED, Json(json!({ "type": event.event_type, "queued": 0 }))));
    }
    let Some(internal) = s.internal.clone() else {
        return Ok((StatusCode::ACCEPTED, Json(json!({ "type": event.event_type, "queued": 0 }))));
    };
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
