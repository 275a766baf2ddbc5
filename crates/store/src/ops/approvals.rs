//! Approval requests, and the decisions that add or approve an image.

use diesel::prelude::*;
use image_core::{
    Error,
    catalog::{
        ApprovalRequest, ApprovalRequestFilter, ApprovalRequestId, ApprovalStatus, CatalogImage, Decision, ImageUpdate,
        NewApprovalRequest, NewImage, NewTag,
    },
    event::kind,
    rules,
    store::Listing,
};
use serde_json::json;

use super::{
    catalog::{apply_image_update, insert_image, insert_tag},
    events::{Subject, record, update_details},
};
use crate::{
    conn::{Condition, Conn, RunQueryDsl, columns},
    error::DbResult,
    models::{Micros, NewRequestRow, RequestRow, Verdict, from_micros, now_micros},
    schema::{image_approval_requests, image_tags},
};

pub(crate) async fn create_approval_request(
    conn: &mut Conn<'_>,
    request: &NewApprovalRequest,
    actor: &str,
) -> DbResult<ApprovalRequest> {
    let now = now_micros();
    let row = NewRequestRow {
        image_name: &request.image_name,
        registry: &request.registry,
        namespace: &request.namespace,
        tag: request.tag.as_deref(),
        requested_by: actor,
        requested_at: now,
        status: ApprovalStatus::Pending.as_str(),
        notes: request.notes.as_deref(),
    };
    let created = diesel::insert_into(image_approval_requests::table)
        .values(row)
        .returning(columns::<RequestRow>())
        .get_result::<RequestRow>(conn)
        .await?
        .into_domain()?;
    let subject = Subject { request: Some(created.id), ..Subject::default() };
    record(conn, kind::APPROVAL_REQUESTED, actor, now, subject, json!(created)).await?;
    Ok(created)
}

fn request_filter(filter: &ApprovalRequestFilter) -> Condition<'_, image_approval_requests::table> {
    let mut condition = Condition::new();
    if let Some(status) = filter.status {
        condition.push(image_approval_requests::status.eq(status.as_str()));
    }
    condition
}

/// Oldest first: the order in which they are reviewed.
pub(crate) async fn list_approval_requests(
    conn: &mut Conn<'_>,
    filter: &ApprovalRequestFilter,
) -> DbResult<Listing<ApprovalRequest>> {
    let total = image_approval_requests::table.filter(request_filter(filter)).count().get_result(conn).await?;
    let rows: Vec<RequestRow> = image_approval_requests::table
        .filter(request_filter(filter))
        .select(columns::<RequestRow>())
        .order(image_approval_requests::id.asc())
        .limit(filter.page.limit())
        .offset(filter.page.offset())
        .load(conn)
        .await?;
    let items = rows.into_iter().map(RequestRow::into_domain).collect::<DbResult<_>>()?;
    Ok(Listing { items, total })
}

pub(crate) async fn get_approval_request(conn: &mut Conn<'_>, id: ApprovalRequestId) -> DbResult<ApprovalRequest> {
    let row: Option<RequestRow> =
        image_approval_requests::table.find(id.get()).select(columns::<RequestRow>()).first(conn).await.optional()?;
    row.ok_or_else(|| Error::not_found("approval request", id))?.into_domain()
}

/// Decides a pending request, with the request locked so it is decided once.
///
/// Approving creates the image as approved (official when it is a Docker Official Image, that is in
/// `docker.io/library`), or approves the existing one with the same registry, namespace and name; the
/// decision's category and description, when given, replace the image's. The requested tag is added
/// when the image lacks it. The decision's notes, when given, replace the request's.
pub(crate) async fn decide_approval_request(
    conn: &mut Conn<'_>,
    id: ApprovalRequestId,
    decision: &Decision,
    actor: &str,
) -> DbResult<(ApprovalRequest, Option<CatalogImage>)> {
    let before = conn
        .dialect()
        .lock_request(id.get())
        .await?
        .ok_or_else(|| Error::not_found("approval request", id))?
        .into_domain()?;
    before.check_decidable()?;
    let now = now_micros();
    let mut after = before.clone();
    after.reviewed_by = Some(actor.to_owned());
    after.reviewed_at = Some(from_micros(now)?);

    let (event_type, image) = match decision {
        Decision::Approve { notes, category, description } => {
            let image = approve_image(conn, &before, category, description, actor, now).await?;
            after.status = ApprovalStatus::Approved;
            after.image_id = Some(image.id);
            if notes.is_some() {
                after.notes.clone_from(notes);
            }
            (kind::APPROVAL_APPROVED, Some(image))
        }
        Decision::Reject { reason, notes } => {
            after.status = ApprovalStatus::Rejected;
            after.rejection_reason = Some(reason.clone());
            if notes.is_some() {
                after.notes.clone_from(notes);
            }
            (kind::APPROVAL_REJECTED, None)
        }
    };
    diesel::update(image_approval_requests::table.find(id.get())).set(Verdict::of(&after)).execute(conn).await?;
    let subject = Subject { image: after.image_id, request: Some(id), ..Subject::default() };
    record(conn, event_type, actor, now, subject, update_details(json!(before), json!(after))).await?;
    Ok((after, image))
}

/// The approving half of a decision: the image, created or approved, with the requested tag.
async fn approve_image(
    conn: &mut Conn<'_>,
    request: &ApprovalRequest,
    category: &Option<String>,
    description: &Option<String>,
    actor: &str,
    now: Micros,
) -> DbResult<CatalogImage> {
    let existing = conn.dialect().lock_image_named(&request.registry, &request.namespace, &request.image_name).await?;
    let image = match existing {
        Some(row) => {
            let update = ImageUpdate {
                description: description.clone().map(Some),
                category: category.clone().map(Some),
                approval_status: Some(ApprovalStatus::Approved),
                is_official: None,
            };
            apply_image_update(conn, row.into_domain()?, &update, actor, now, Some(request.id)).await?
        }
        None => {
            // The request was checked by the same rules when it was made, so this holds.
            let new = NewImage::new(
                &request.image_name,
                Some(&request.registry),
                Some(&request.namespace),
                description.clone(),
                category.clone(),
                rules::is_official(&request.registry, &request.namespace),
                ApprovalStatus::Approved,
            )?;
            insert_image(conn, &new, actor, now, Some(request.id)).await?
        }
    };
    if let Some(tag) = &request.tag {
        let present: Option<i64> = image_tags::table
            .filter(image_tags::image_id.eq(image.id.get()))
            .filter(image_tags::tag.eq(tag))
            .select(image_tags::id)
            .first(conn)
            .await
            .optional()?;
        if present.is_none() {
            let new = NewTag::new(tag.clone())?;
            insert_tag(conn, image.id, &new, actor, now, Some(request.id)).await?;
        }
    }
    Ok(image)
}
