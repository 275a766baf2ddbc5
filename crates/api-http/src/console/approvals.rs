//! Approvals: the queue of pending requests with an admin's approve (with a category) and reject (with a
//! reason), any user's request for an image, and the history of decisions.

use askama::Template;
use axum::extract::State;
use image_core::{
    Error, Reference,
    catalog::{ApprovalRequest, ApprovalRequestFilter, ApprovalRequestId, ApprovalStatus, Decision, Page},
};
use serde::Deserialize;

use super::{
    form::Form,
    page::{AdminCaller, Caller, Nav, PageResult, Path, html, see, when, when_opt},
};
use crate::AppState;
use crate::extract::PathParams;

struct RequestRow {
    id: i64,
    reference: String,
    requested_by: String,
    requested_at: String,
    status: &'static str,
    notes: String,
    reviewed: String,
    reason: String,
    image_id: Option<i64>,
}

impl From<ApprovalRequest> for RequestRow {
    fn from(r: ApprovalRequest) -> RequestRow {
        let name = [r.registry.as_str(), r.namespace.as_str(), r.image_name.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
        RequestRow {
            id: r.id.get(),
            reference: match &r.tag {
                Some(tag) => format!("{name}:{tag}"),
                None => name,
            },
            requested_by: r.requested_by,
            requested_at: when(r.requested_at),
            status: r.status.as_str(),
            notes: r.notes.unwrap_or_default(),
            reviewed: match r.reviewed_by {
                Some(by) => format!("{by}, {}", when_opt(r.reviewed_at)),
                None => String::new(),
            },
            reason: r.rejection_reason.unwrap_or_default(),
            image_id: r.image_id.map(|id| id.get()),
        }
    }
}

#[derive(Template)]
#[template(path = "console/approvals.html")]
struct ApprovalsView {
    nav: Nav,
    pending: Vec<RequestRow>,
    history: Vec<RequestRow>,
    categories: Vec<String>,
}

/// `GET /console/approvals`: the pending queue and the latest decisions.
pub(super) async fn list(State(s): State<AppState>, caller: Caller) -> PageResult {
    let page = Page::new(Some(200), None)?;
    let pending =
        s.store.list_approval_requests(&ApprovalRequestFilter { status: Some(ApprovalStatus::Pending), page }).await?;
    let decided = s.store.list_approval_requests(&ApprovalRequestFilter { status: None, page }).await?;
    html(ApprovalsView {
        nav: Nav::new(&caller.user, "approvals"),
        pending: pending.items.into_iter().map(RequestRow::from).collect(),
        history: decided
            .items
            .into_iter()
            .filter(|r| r.status != ApprovalStatus::Pending)
            .map(RequestRow::from)
            .collect(),
        categories: s.store.categories().await?.into_iter().map(|(c, _)| c).collect(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RequestForm {
    image: String,
    #[serde(default)]
    notes: String,
}

fn text(v: String) -> Option<String> {
    Some(v.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `POST /console/approvals`: asks for an image (a reference such as `docker.io/library/traefik:v3.1`).
pub(super) async fn request(State(s): State<AppState>, caller: Caller, Form(f): Form<RequestForm>) -> PageResult {
    let reference = Reference::parse(f.image.trim()).map_err(|e| Error::invalid("image", e))?;
    let notes = text(f.notes).unwrap_or_else(|| "requested in the console".to_owned());
    crate::profile::request_approval(s.store.as_ref(), &reference, notes, &caller.user.username).await?;
    see("/console/approvals")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApproveForm {
    #[serde(default)]
    category: String,
    #[serde(default)]
    notes: String,
}

/// `POST /console/approvals/{id}/approve`: approves a request, creating or updating its image.
pub(super) async fn approve(
    State(s): State<AppState>,
    admin: AdminCaller,
    PathParams(id, _): Path<ApprovalRequestId>,
    Form(f): Form<ApproveForm>,
) -> PageResult {
    let decision =
        Decision::Approve { notes: text(f.notes), category: text(f.category), description: None }.validated()?;
    s.store.decide_approval_request(id, decision, &admin.user.username).await?;
    see("/console/approvals")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RejectForm {
    reason: String,
}

/// `POST /console/approvals/{id}/reject`: rejects a request with a reason.
pub(super) async fn reject(
    State(s): State<AppState>,
    admin: AdminCaller,
    PathParams(id, _): Path<ApprovalRequestId>,
    Form(f): Form<RejectForm>,
) -> PageResult {
    let decision = Decision::Reject { reason: f.reason.trim().to_owned(), notes: None }.validated()?;
    s.store.decide_approval_request(id, decision, &admin.user.username).await?;
    see("/console/approvals")
}
