//! An import's progress in bytes, for clients that draw it: `GET /api/v1/images/{id}/progress` answers
//! it once, `GET /api/v1/images/{id}/progress/events` streams it as server-sent events, one `progress`
//! event per change and a last one when the import ends. Errors are the platform profile's.
//!
//! The seed's `importing-details` gives whole percents only; this adds sizes, bytes done and how each
//! blob reached the target, so that a client can show rates and time left.

use std::{convert::Infallible, time::Duration};

use axum::{
    Json,
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::{Stream, stream};
use image_core::import::{BlobCopy, ImportId, ImportJob, LayerState};
use serde::Serialize;

use super::plain::{ApiResult, Path, User};
use crate::{
    AppState,
    extract::PathParams,
    routes::{Access, Routes},
};

/// How often a stream looks at the import again.
const POLL: Duration = Duration::from_millis(250);

pub(crate) fn routes() -> Routes {
    Routes::new("/api/v1").get("/images/{id}/progress", Access::SignedIn, progress).get(
        "/images/{id}/progress/events",
        Access::SignedIn,
        progress_events,
    )
}

/// One import's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub(crate) struct Progress {
    id: i64,
    source: String,
    target: String,
    /// `queued`, `running`, `succeeded`, `failed` or `canceled`.
    state: &'static str,
    /// The seed's word for it: `importing`, `ready` or `failed`.
    status: &'static str,
    attempts: i32,
    max_attempts: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    /// Bytes of all known blobs, and of those done.
    size: u64,
    done: u64,
    layers: Vec<LayerBytes>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub(crate) struct LayerBytes {
    digest: String,
    size: u64,
    done: u64,
    /// `waiting`, `downloading`, `completed` or `failed`.
    #[schemars(with = "String")]
    state: LayerState,
    /// How the blob reached the target: `copied`, `skipped` or `mounted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    via: Option<BlobCopy>,
}

impl From<&ImportJob> for Progress {
    fn from(import: &ImportJob) -> Progress {
        let layers: Vec<LayerBytes> = import
            .layers
            .iter()
            .map(|l| LayerBytes {
                digest: l.digest.to_string(),
                size: l.size,
                done: if l.state == LayerState::Completed { l.size } else { l.done.min(l.size) },
                state: l.state,
                via: l.via,
            })
            .collect();
        Progress {
            id: import.id.get(),
            source: import.source.to_string(),
            target: import.target.to_string(),
            state: import.state.as_str(),
            status: import.state.platform_status(),
            attempts: import.attempts,
            max_attempts: import.max_attempts,
            message: import.error.clone(),
            digest: import.digest.as_ref().map(ToString::to_string),
            size: layers.iter().map(|l| l.size).sum(),
            done: layers.iter().map(|l| l.done).sum(),
            layers,
        }
    }
}

async fn progress(State(s): State<AppState>, _: User, PathParams(id, _): Path<ImportId>) -> ApiResult<Json<Progress>> {
    let import = s.store.get_import(id).await?;
    Ok(Json(Progress::from(&import)))
}

/// Where a stream is: the last progress sent, and whether the import had ended then.
enum Cursor {
    Next(Option<Progress>),
    Ended,
}

async fn progress_events(
    State(s): State<AppState>,
    _: User,
    PathParams(id, _): Path<ImportId>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    // An unknown import is a 404 before the stream starts.
    let first = Progress::from(&s.store.get_import(id).await?);
    let store = s.store.clone();
    let events = stream::unfold((Cursor::Next(None), Some(first)), move |(cursor, mut pending)| {
        let store = store.clone();
        async move {
            let Cursor::Next(last) = cursor else { return None };
            loop {
                let current = match pending.take() {
                    Some(current) => current,
                    None => {
                        tokio::time::sleep(POLL).await;
                        match store.get_import(id).await {
                            Ok(import) => Progress::from(&import),
                            Err(e) => {
                                // The import was deleted, or the store is down: say so and end the stream.
                                let why = match e.code() {
                                    image_core::ErrorCode::NotFound => "the import no longer exists",
                                    _ => "the import's progress cannot be read now",
                                };
                                let event = Event::default().event("error").data(why);
                                return Some((Ok(event), (Cursor::Ended, None)));
                            }
                        }
                    }
                };
                if last.as_ref() == Some(&current) {
                    continue;
                }
                let ended = current.status != "importing";
                let event = Event::default().event("progress").json_data(&current).expect("progress serialises");
                let next = if ended { Cursor::Ended } else { Cursor::Next(Some(current)) };
                return Some((Ok(event), (next, None)));
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
