//! Imports: start one from a reference with a choice of platforms, the list, and one import with live
//! per-layer progress (the script follows `GET /api/v1/images/{id}/progress/events`), its failure reason,
//! and an admin's cancel.

use askama::Template;
use axum::extract::State;
use image_core::{
    catalog::Page,
    import::{ImportFilter, ImportId, ImportJob, LayerState},
};
use serde::Deserialize;

use super::{
    form::Form,
    page::{AdminCaller, Caller, Nav, PageResult, Path, html, see, size, when, when_opt},
};
use crate::extract::PathParams;
use crate::{AppState, error::ApiError, profile::platform};

struct ImportRow {
    id: i64,
    source: String,
    target: String,
    state: &'static str,
    percent: u8,
    created_by: String,
    created: String,
    error: String,
}

/// Whole percent of an import's known bytes done; 100 once it succeeded.
fn percent(import: &ImportJob) -> u8 {
    if import.state == image_core::import::ImportState::Succeeded {
        return 100;
    }
    let total: u64 = import.layers.iter().map(|l| l.size).sum();
    let done: u64 =
        import.layers.iter().map(|l| if l.state == LayerState::Completed { l.size } else { l.done.min(l.size) }).sum();
    (done.saturating_mul(100)).checked_div(total).map_or(0, |p| p.min(100) as u8)
}

impl From<&ImportJob> for ImportRow {
    fn from(i: &ImportJob) -> ImportRow {
        ImportRow {
            id: i.id.get(),
            source: i.source.to_string(),
            target: i.target.to_string(),
            state: i.state.as_str(),
            percent: percent(i),
            created_by: i.created_by.clone(),
            created: when(i.created_at),
            error: i.error.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/imports.html")]
struct ImportsView {
    nav: Nav,
    rows: Vec<ImportRow>,
    total: i64,
}

/// `GET /console/imports`: the latest imports, newest first, with the form that starts one.
pub(super) async fn list(State(s): State<AppState>, caller: Caller) -> PageResult {
    let filter = ImportFilter { descending: true, page: Page::new(Some(100), None)?, ..ImportFilter::default() };
    let listing = s.store.list_imports(&filter).await?;
    html(ImportsView {
        nav: Nav::new(&caller.user, "imports"),
        rows: listing.items.iter().map(ImportRow::from).collect(),
        total: listing.total,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StartForm {
    source: String,
    /// `linux/amd64, linux/arm64`; every platform when empty.
    #[serde(default)]
    platforms: String,
    #[serde(default)]
    description: String,
}

/// `POST /console/imports`: queues an import by the platform API's rules (a user imports only what the
/// catalog approves), then shows it; a refusal is a page with its status and reason.
pub(super) async fn start(State(s): State<AppState>, caller: Caller, Form(f): Form<StartForm>) -> PageResult {
    let body = platform::ImportBody {
        source: f.source.trim().to_owned(),
        platforms: f.platforms.split([',', ' ']).filter(|p| !p.is_empty()).map(str::to_owned).collect(),
        description: Some(f.description.trim().to_owned()).filter(|d| !d.is_empty()),
        ..platform::ImportBody::default()
    };
    let (status, answer) = platform::start_import(&s, &caller.user, body).await?;
    if answer.state == 0 {
        return Err(ApiError::new(status, "Import refused", answer.message).into());
    }
    see(format!("/console/imports/{}", answer.already_image_id))
}

struct LayerRow {
    digest: String,
    size: String,
    percent: u8,
    state: &'static str,
}

#[derive(Template)]
#[template(path = "console/import.html")]
struct ImportView {
    nav: Nav,
    import: ImportRow,
    active: bool,
    platforms: String,
    attempts: String,
    started: String,
    finished: String,
    digest: String,
    layers: Vec<LayerRow>,
}

/// `GET /console/imports/{id}`: one import; its bars follow the import live where the script runs.
pub(super) async fn show(State(s): State<AppState>, caller: Caller, PathParams(id, _): Path<ImportId>) -> PageResult {
    let import = s.store.get_import(id).await?;
    let platforms = if import.platforms.is_empty() {
        "all".to_owned()
    } else {
        import.platforms.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    };
    html(ImportView {
        nav: Nav::new(&caller.user, "imports"),
        active: import.state.is_active(),
        platforms,
        attempts: format!("{} of {}", import.attempts, import.max_attempts),
        started: when_opt(import.started_at),
        finished: when_opt(import.finished_at),
        digest: import.digest.as_ref().map(ToString::to_string).unwrap_or_default(),
        layers: import
            .layers
            .iter()
            .map(|l| LayerRow {
                digest: l.digest.to_string(),
                size: size(l.size),
                percent: l.percent(),
                state: match l.state {
                    LayerState::Waiting => "waiting",
                    LayerState::Downloading => "downloading",
                    LayerState::Completed => "completed",
                    LayerState::Failed => "failed",
                },
            })
            .collect(),
        import: ImportRow::from(&import),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Confirm {}

/// `POST /console/imports/{id}/cancel`: stops a queued or running import.
pub(super) async fn cancel(
    State(s): State<AppState>,
    admin: AdminCaller,
    PathParams(id, _): Path<ImportId>,
    Form(Confirm {}): Form<Confirm>,
) -> PageResult {
    s.store.cancel_import(id, &admin.user.username).await?;
    see(format!("/console/imports/{id}"))
}
