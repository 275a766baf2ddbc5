//! The store's operations, written once and compiled once, on a [`Conn`] of either backend.
//!
//! Queries run through `conn::RunQueryDsl`, which accepts only queries both backends can run; the steps
//! whose SQL differs (the row-locking reads, the job channel) go through `conn.dialect()`.
//!
//! Import operations that touch both an import and its job lock the import first, then the job; claims
//! and the queue's own operations lock only the job. So two transactions never wait on each other in
//! opposite orders.
//!
//! Functions that change something expect to run inside a write transaction, which `DbStore` opens;
//! they write their audit events on the same connection, so both commit or neither does.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use diesel::{
    dsl::count_star,
    prelude::*,
    sql_types::{Nullable, Text},
};
use image_core::{
    Digest, Error,
    auth::{Credentials, NewUser, User, UserId},
    catalog::{
        ApprovalRequest, ApprovalRequestFilter, ApprovalStatus, CatalogImage, Decision, ImageFilter, ImageId,
        ImageSummary, ImageUpdate, NewApprovalRequest, NewImage, NewTag, Page, Tag, TagId, TagUpdate,
    },
    event::{AuditEvent, EventFilter, kind},
    import::{
        Artifact, AttemptOutcome, EnqueueOutcome, ExportRecord, ImportFilter, ImportJob, ImportOrder, ImportState,
        LayerProgress, LayerState, NewImport, validate_phase,
    },
    job::{ImportPayload, JobPayload, SyncPayload},
    kube::{
        NewRegistrySecret, NewRepository, RegistrySecret, Repository, Secret, SyncStatus, SyncedManifest, VerifyStatus,
    },
    rules,
    store::{ClaimedJob, JobId, Listing},
};
use serde_json::{Value, json};

use crate::{
    conn::{Condition, Conn, Ordering, RunQueryDsl, columns},
    crypto::Sealer,
    error::{DbError, DbResult, is_unique_violation, on_unique},
    import_kind, kube_kind,
    models::{
        EventRow, ExportRow, ImageChanges, ImageRow, ImportProgress, ImportRow, JobRow, Micros, NewEventRow,
        NewExportRow, NewImageRow, NewImportRow, NewJobRow, NewRegistrySecretRow, NewRepositoryRow, NewRequestRow,
        NewTagRow, NewTokenRow, NewUserRow, RegistrySecretRow, RepositoryRow, RequestRow, TagChanges, TagRow, UserRow,
        Verdict, from_micros, now_micros, sync_status_str, to_micros, to_secs,
    },
    schema::{
        api_tokens, audit_events, exports, image_approval_requests, image_tags, images, imports, jobs,
        registry_secrets, repositories, users,
    },
};

diesel::define_sql_function! {
    /// SQL `lower`, the same function on both backends, so case-insensitive search behaves the same.
    fn lower(x: Text) -> Text;
}

diesel::define_sql_function! {
    #[sql_name = "lower"]
    fn lower_nullable(x: Nullable<Text>) -> Nullable<Text>;
}

pub(crate) async fn ping(conn: &mut Conn<'_>) -> DbResult<()> {
    diesel::sql_query("SELECT 1").execute(conn).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Audit events

/// What an event is about.
#[derive(Debug, Default, Clone, Copy)]
struct Subject {
    image: Option<ImageId>,
    tag: Option<TagId>,
    request: Option<i64>,
}

async fn record(
    conn: &mut Conn<'_>,
    event_type: &str,
    actor: &str,
    at: Micros,
    subject: Subject,
    details: Value,
) -> DbResult<()> {
    let row = NewEventRow {
        event_type,
        actor,
        occurred_at: at,
        image_id: subject.image,
        tag_id: subject.tag,
        request_id: subject.request,
        details: details.to_string(),
    };
    diesel::insert_into(audit_events::table).values(row).execute(conn).await?;
    Ok(())
}

/// `{"before": …, "after": …, "changes": [the fields that differ, by name]}`; `updated_at` is no change of
/// its own. The names are sorted here, since the order of a JSON object's fields depends on serde_json's
/// features.
fn update_details(before: Value, after: Value) -> Value {
    let mut changes: Vec<&String> = match (&before, &after) {
        (Value::Object(b), Value::Object(a)) => a
            .iter()
            .filter(|(field, value)| *field != "updated_at" && b.get(*field) != Some(*value))
            .map(|(f, _)| f)
            .collect(),
        _ => Vec::new(),
    };
    changes.sort_unstable();
    json!({ "before": before, "after": after, "changes": changes })
}

fn event_filter(filter: &EventFilter) -> Condition<'_, audit_events::table> {
    let mut condition = Condition::new();
    if let Some(event_type) = &filter.event_type {
        condition.push(audit_events::event_type.eq(event_type));
    }
    if let Some(image_id) = filter.image_id {
        condition.push(audit_events::image_id.eq(image_id));
    }
    if let Some(actor) = &filter.actor {
        condition.push(audit_events::actor.eq(actor));
    }
    condition
}

pub(crate) async fn list_events(conn: &mut Conn<'_>, filter: &EventFilter) -> DbResult<Listing<AuditEvent>> {
    let total = audit_events::table.filter(event_filter(filter)).count().get_result(conn).await?;
    let rows: Vec<EventRow> = audit_events::table
        .filter(event_filter(filter))
        .select(columns::<EventRow>())
        .order((audit_events::occurred_at.desc(), audit_events::id.desc()))
        .limit(filter.page.limit)
        .offset(filter.page.offset)
        .load(conn)
        .await?;
    let items = rows.into_iter().map(EventRow::into_domain).collect::<DbResult<_>>()?;
    Ok(Listing { items, total })
}

// ---------------------------------------------------------------------------------------------------
// Images

fn image_label(registry: &str, namespace: &str, image_name: &str) -> String {
    if namespace.is_empty() {
        format!("{registry}/{image_name}")
    } else {
        format!("{registry}/{namespace}/{image_name}")
    }
}

pub(crate) async fn get_image(conn: &mut Conn<'_>, id: ImageId) -> DbResult<CatalogImage> {
    let row: Option<ImageRow> = images::table.find(id).select(columns::<ImageRow>()).first(conn).await.optional()?;
    row.ok_or_else(|| Error::not_found("image", id))?.into_domain()
}

pub(crate) async fn find_image(
    conn: &mut Conn<'_>,
    registry: &str,
    namespace: &str,
    image_name: &str,
) -> DbResult<Option<CatalogImage>> {
    let row: Option<ImageRow> = images::table
        .filter(images::registry.eq(registry))
        .filter(images::namespace.eq(namespace))
        .filter(images::image_name.eq(image_name))
        .select(columns::<ImageRow>())
        .first(conn)
        .await
        .optional()?;
    row.map(ImageRow::into_domain).transpose()
}

async fn ensure_image_exists(conn: &mut Conn<'_>, id: ImageId) -> DbResult<()> {
    let found: Option<i64> = images::table.find(id).select(images::id).first(conn).await.optional()?;
    found.map(|_| ()).ok_or_else(|| Error::not_found("image", id).into())
}

/// Locks the image for the rest of the transaction (PostgreSQL), or fails with `NotFound`.
async fn lock_existing_image(conn: &mut Conn<'_>, id: ImageId) -> DbResult<CatalogImage> {
    conn.dialect().lock_image(id).await?.ok_or_else(|| Error::not_found("image", id))?.into_domain()
}

/// `%`, `_` and the escape character itself match literally.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn image_filter(filter: &ImageFilter) -> Condition<'_, images::table> {
    let mut condition = Condition::new();
    if let Some(status) = filter.status {
        condition.push(images::approval_status.eq(status.as_str()));
    }
    if let Some(category) = &filter.category {
        condition.push(images::category.eq(category));
    }
    if let Some(search) = &filter.search {
        let pattern = format!("%{}%", escape_like(search));
        let in_name = lower(images::image_name).like(lower(pattern.clone())).escape('\\');
        let in_description = lower_nullable(images::description).like(lower_nullable(Some(pattern))).escape('\\');
        condition.push(in_name.nullable().or(in_description));
    }
    condition
}

pub(crate) async fn list_images(conn: &mut Conn<'_>, filter: &ImageFilter) -> DbResult<Listing<ImageSummary>> {
    let total = images::table.filter(image_filter(filter)).count().get_result(conn).await?;
    let rows: Vec<ImageRow> = images::table
        .filter(image_filter(filter))
        .select(columns::<ImageRow>())
        .order(images::id.asc())
        .limit(filter.page.limit)
        .offset(filter.page.offset)
        .load(conn)
        .await?;
    let ids: Vec<ImageId> = rows.iter().map(|r| r.id).collect();
    let tag_counts: HashMap<ImageId, i64> = image_tags::table
        .filter(image_tags::image_id.eq_any(&ids))
        .group_by(image_tags::image_id)
        .select((image_tags::image_id, count_star()))
        .load::<(ImageId, i64)>(conn)
        .await?
        .into_iter()
        .collect();
    let items = rows
        .into_iter()
        .map(|row| {
            let tag_count = tag_counts.get(&row.id).copied().unwrap_or(0);
            Ok(ImageSummary { image: row.into_domain()?, tag_count })
        })
        .collect::<DbResult<_>>()?;
    Ok(Listing { items, total })
}

pub(crate) async fn categories(conn: &mut Conn<'_>) -> DbResult<Vec<(String, i64)>> {
    let rows: Vec<(Option<String>, i64)> = images::table
        .filter(images::category.is_not_null())
        .group_by(images::category)
        .select((images::category, count_star()))
        .order_by((count_star().desc(), images::category.asc()))
        .load(conn)
        .await?;
    Ok(rows.into_iter().filter_map(|(category, count)| Some((category?, count))).collect())
}

pub(crate) async fn create_image(conn: &mut Conn<'_>, image: &NewImage, actor: &str) -> DbResult<CatalogImage> {
    insert_image(conn, image, actor, now_micros(), None).await
}

/// Inserts an image and records `image.registry.added`; `request` is the approval request behind it.
async fn insert_image(
    conn: &mut Conn<'_>,
    image: &NewImage,
    actor: &str,
    now: Micros,
    request: Option<i64>,
) -> DbResult<CatalogImage> {
    let approved = image.approval_status == ApprovalStatus::Approved;
    let row = NewImageRow {
        image_name: &image.image_name,
        registry: &image.registry,
        namespace: &image.namespace,
        description: image.description.as_deref(),
        category: image.category.as_deref(),
        is_official: image.is_official,
        approval_status: image.approval_status.as_str(),
        approved_by: approved.then_some(actor),
        approved_at: approved.then_some(now),
        created_at: now,
        updated_at: now,
    };
    let created = diesel::insert_into(images::table)
        .values(row)
        .returning(columns::<ImageRow>())
        .get_result::<ImageRow>(conn)
        .await
        .map_err(on_unique(|| {
            format!("image {} already exists", image_label(&image.registry, &image.namespace, &image.image_name))
        }))?
        .into_domain()?;
    let subject = Subject { image: Some(created.id), request, ..Subject::default() };
    record(conn, kind::IMAGE_ADDED, actor, now, subject, json!(created)).await?;
    Ok(created)
}

pub(crate) async fn update_image(
    conn: &mut Conn<'_>,
    id: ImageId,
    update: &ImageUpdate,
    actor: &str,
) -> DbResult<CatalogImage> {
    let before = lock_existing_image(conn, id).await?;
    apply_image_update(conn, before, update, actor, now_micros(), None).await
}

/// Applies an update to a locked image and records `image.registry.updated`. Setting the status to
/// approved records who approved and when; moving away from approved clears both. Changes nothing and
/// records nothing when the update leaves every field as it is.
async fn apply_image_update(
    conn: &mut Conn<'_>,
    before: CatalogImage,
    update: &ImageUpdate,
    actor: &str,
    now: Micros,
    request: Option<i64>,
) -> DbResult<CatalogImage> {
    let mut after = before.clone();
    if let Some(description) = &update.description {
        after.description.clone_from(description);
    }
    if let Some(category) = &update.category {
        after.category.clone_from(category);
    }
    if let Some(is_official) = update.is_official {
        after.is_official = is_official;
    }
    if let Some(status) = update.approval_status.filter(|s| *s != before.approval_status) {
        after.approval_status = status;
        if status == ApprovalStatus::Approved {
            after.approved_by = Some(actor.to_owned());
            after.approved_at = Some(from_micros(now)?);
        } else {
            after.approved_by = None;
            after.approved_at = None;
        }
    }
    if after == before {
        return Ok(before);
    }
    after.updated_at = from_micros(now)?;
    diesel::update(images::table.find(before.id)).set(ImageChanges::of(&after)).execute(conn).await?;
    let subject = Subject { image: Some(before.id), request, ..Subject::default() };
    record(conn, kind::IMAGE_UPDATED, actor, now, subject, update_details(json!(before), json!(after))).await?;
    Ok(after)
}

/// The one place that decides whether an image may be deleted.
///
/// An image with a queued or running import (of it as the source) fails here with `Conflict`, naming the
/// import, inside the deleting transaction and before anything is deleted. Sync subscriptions will too.
/// An import queued while the image is being deleted is no harm: it comes after the deletion, and its
/// success adds the image again.
async fn ensure_image_unused(conn: &mut Conn<'_>, image: &CatalogImage) -> DbResult<()> {
    let active: Option<i64> = imports::table
        .filter(imports::source_registry.eq(&image.registry))
        .filter(imports::source_repository.eq(image.repository()))
        .filter(imports::state.eq_any(ACTIVE_STATES))
        .select(imports::id)
        .order(imports::id.asc())
        .first(conn)
        .await
        .optional()?;
    match active {
        Some(import) => Err(Error::in_use(format!(
            "image {} has an import in progress (import {import})",
            image_label(&image.registry, &image.namespace, &image.image_name)
        ))
        .into()),
        None => Ok(()),
    }
}

pub(crate) async fn delete_image(conn: &mut Conn<'_>, id: ImageId, actor: &str) -> DbResult<CatalogImage> {
    let image = lock_existing_image(conn, id).await?;
    ensure_image_unused(conn, &image).await?;
    let tags = load_tags(conn, id).await?;
    // The tags go with it (ON DELETE CASCADE); approval requests keep their history (SET NULL).
    diesel::delete(images::table.find(id)).execute(conn).await?;
    let mut details = json!(image);
    details["tags"] = json!(tags);
    record(conn, kind::IMAGE_DELETED, actor, now_micros(), Subject { image: Some(id), ..Subject::default() }, details)
        .await?;
    Ok(image)
}

// ---------------------------------------------------------------------------------------------------
// Tags

async fn load_tags(conn: &mut Conn<'_>, image_id: ImageId) -> DbResult<Vec<Tag>> {
    let rows: Vec<TagRow> = image_tags::table
        .filter(image_tags::image_id.eq(image_id))
        .select(columns::<TagRow>())
        .order((image_tags::created_at.asc(), image_tags::id.asc()))
        .load(conn)
        .await?;
    rows.into_iter().map(TagRow::into_domain).collect()
}

pub(crate) async fn list_tags(conn: &mut Conn<'_>, image_id: ImageId) -> DbResult<Vec<Tag>> {
    ensure_image_exists(conn, image_id).await?;
    load_tags(conn, image_id).await
}

/// The tag with this id, if it belongs to this image; a tag of another image is as good as missing.
async fn image_tag(conn: &mut Conn<'_>, image_id: ImageId, tag_id: TagId) -> DbResult<Tag> {
    let row: Option<TagRow> = image_tags::table
        .find(tag_id)
        .filter(image_tags::image_id.eq(image_id))
        .select(columns::<TagRow>())
        .first(conn)
        .await
        .optional()?;
    row.ok_or_else(|| Error::not_found("tag", tag_id))?.into_domain()
}

/// Makes every recommended tag of the image but `keep` not recommended, recording each change.
/// Runs with the image locked, before the new recommended tag is written, so the partial unique index
/// never sees two.
async fn unrecommend_others(
    conn: &mut Conn<'_>,
    image_id: ImageId,
    keep: Option<TagId>,
    actor: &str,
    now: Micros,
) -> DbResult<()> {
    let tags = load_tags(conn, image_id).await?;
    for before in rules::superseded_recommendations(&tags, keep) {
        let after = Tag { is_recommended: false, updated_at: from_micros(now)?, ..before.clone() };
        diesel::update(image_tags::table.find(before.id)).set(TagChanges::of(&after)).execute(conn).await?;
        let subject = Subject { image: Some(image_id), tag: Some(before.id), ..Subject::default() };
        record(conn, kind::TAG_UPDATED, actor, now, subject, update_details(json!(before), json!(after))).await?;
    }
    Ok(())
}

pub(crate) async fn create_tag(conn: &mut Conn<'_>, image_id: ImageId, tag: &NewTag, actor: &str) -> DbResult<Tag> {
    lock_existing_image(conn, image_id).await?;
    insert_tag(conn, image_id, tag, actor, now_micros(), None).await
}

/// Inserts a tag of a locked image and records `image.tag.added`.
async fn insert_tag(
    conn: &mut Conn<'_>,
    image_id: ImageId,
    tag: &NewTag,
    actor: &str,
    now: Micros,
    request: Option<i64>,
) -> DbResult<Tag> {
    if rules::becomes_recommended(None, tag.is_recommended) {
        unrecommend_others(conn, image_id, None, actor, now).await?;
    }
    let row = NewTagRow {
        image_id,
        tag: &tag.tag,
        digest: tag.digest.as_ref().map(|d| d.as_str()),
        size_bytes: tag.size_bytes,
        architecture: tag.architecture.as_deref(),
        os: tag.os.as_deref(),
        pushed_at: tag.pushed_at.map(to_micros),
        is_recommended: tag.is_recommended,
        is_deprecated: tag.is_deprecated,
        security_scan_status: tag.security_scan_status.as_deref(),
        vulnerabilities_count: tag.vulnerabilities_count,
        created_at: now,
        updated_at: now,
    };
    let created = diesel::insert_into(image_tags::table)
        .values(row)
        .returning(columns::<TagRow>())
        .get_result::<TagRow>(conn)
        .await
        .map_err(on_unique(|| format!("tag {} already exists for image {image_id}", tag.tag)))?
        .into_domain()?;
    let subject = Subject { image: Some(image_id), tag: Some(created.id), request };
    record(conn, kind::TAG_ADDED, actor, now, subject, json!(created)).await?;
    Ok(created)
}

/// Changes nothing and records nothing when the update leaves every field as it is.
pub(crate) async fn update_tag(
    conn: &mut Conn<'_>,
    image_id: ImageId,
    tag_id: TagId,
    update: &TagUpdate,
    actor: &str,
) -> DbResult<Tag> {
    lock_existing_image(conn, image_id).await?;
    let before = image_tag(conn, image_id, tag_id).await?;
    let mut after = before.clone();
    if let Some(digest) = &update.digest {
        after.digest.clone_from(digest);
    }
    if let Some(size_bytes) = update.size_bytes {
        after.size_bytes = size_bytes;
    }
    if let Some(architecture) = &update.architecture {
        after.architecture.clone_from(architecture);
    }
    if let Some(os) = &update.os {
        after.os.clone_from(os);
    }
    if let Some(is_recommended) = update.is_recommended {
        after.is_recommended = is_recommended;
    }
    if let Some(is_deprecated) = update.is_deprecated {
        after.is_deprecated = is_deprecated;
    }
    if let Some(status) = &update.security_scan_status {
        after.security_scan_status.clone_from(status);
    }
    if let Some(count) = update.vulnerabilities_count {
        after.vulnerabilities_count = count;
    }
    if after == before {
        return Ok(before);
    }
    let now = now_micros();
    after.updated_at = from_micros(now)?;
    store_tag_update(conn, &before, &after, actor, now).await?;
    Ok(after)
}

/// Writes a changed tag of a locked image and records `image.tag.updated`.
async fn store_tag_update(conn: &mut Conn<'_>, before: &Tag, after: &Tag, actor: &str, now: Micros) -> DbResult<()> {
    if rules::becomes_recommended(Some(before), after.is_recommended) {
        unrecommend_others(conn, after.image_id, Some(after.id), actor, now).await?;
    }
    diesel::update(image_tags::table.find(after.id)).set(TagChanges::of(after)).execute(conn).await?;
    let subject = Subject { image: Some(after.image_id), tag: Some(after.id), ..Subject::default() };
    record(conn, kind::TAG_UPDATED, actor, now, subject, update_details(json!(before), json!(after))).await?;
    Ok(())
}

pub(crate) async fn delete_tag(conn: &mut Conn<'_>, image_id: ImageId, tag_id: TagId, actor: &str) -> DbResult<Tag> {
    lock_existing_image(conn, image_id).await?;
    let tag = image_tag(conn, image_id, tag_id).await?;
    diesel::delete(image_tags::table.find(tag_id)).execute(conn).await?;
    let subject = Subject { image: Some(image_id), tag: Some(tag_id), ..Subject::default() };
    record(conn, kind::TAG_DELETED, actor, now_micros(), subject, json!(tag)).await?;
    Ok(tag)
}

// ---------------------------------------------------------------------------------------------------
// Approval requests

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
        .limit(filter.page.limit)
        .offset(filter.page.offset)
        .load(conn)
        .await?;
    let items = rows.into_iter().map(RequestRow::into_domain).collect::<DbResult<_>>()?;
    Ok(Listing { items, total })
}

pub(crate) async fn get_approval_request(conn: &mut Conn<'_>, id: i64) -> DbResult<ApprovalRequest> {
    let row: Option<RequestRow> =
        image_approval_requests::table.find(id).select(columns::<RequestRow>()).first(conn).await.optional()?;
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
    id: i64,
    decision: &Decision,
    actor: &str,
) -> DbResult<(ApprovalRequest, Option<CatalogImage>)> {
    let before = conn
        .dialect()
        .lock_request(id)
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
    diesel::update(image_approval_requests::table.find(id)).set(Verdict::of(&after)).execute(conn).await?;
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
            let new = NewImage {
                image_name: request.image_name.clone(),
                registry: request.registry.clone(),
                namespace: request.namespace.clone(),
                description: description.clone(),
                category: category.clone(),
                is_official: rules::is_official(&request.registry, &request.namespace),
                approval_status: ApprovalStatus::Approved,
            };
            insert_image(conn, &new, actor, now, Some(request.id)).await?
        }
    };
    if let Some(tag) = &request.tag {
        let present: Option<i64> = image_tags::table
            .filter(image_tags::image_id.eq(image.id))
            .filter(image_tags::tag.eq(tag))
            .select(image_tags::id)
            .first(conn)
            .await
            .optional()?;
        if present.is_none() {
            let new = NewTag { tag: tag.clone(), ..NewTag::default() };
            insert_tag(conn, image.id, &new, actor, now, Some(request.id)).await?;
        }
    }
    Ok(image)
}

// ---------------------------------------------------------------------------------------------------
// The job queue

/// `now` plus a lease, saturating.
fn lease_end(now: Micros, lease: Duration) -> Micros {
    now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX))
}

pub(crate) async fn enqueue_job(
    conn: &mut Conn<'_>,
    job_type: &str,
    payload: &Value,
    priority: i32,
    run_at: Micros,
    max_attempts: i32,
) -> DbResult<JobId> {
    if max_attempts < 1 {
        return Err(Error::invalid("max_attempts", format!("must be at least 1, got {max_attempts}")).into());
    }
    let now = now_micros();
    let row = NewJobRow { job_type, payload: payload.to_string(), priority, run_at, max_attempts, created_at: now };
    let id = diesel::insert_into(jobs::table).values(row).returning(jobs::id).get_result(conn).await?;
    if run_at <= now {
        conn.dialect().notify_job_queued().await?;
    }
    Ok(id)
}

/// Leases the next due job of one of `job_types` to `worker`, counting the attempt.
pub(crate) async fn claim_job(
    conn: &mut Conn<'_>,
    worker: &str,
    job_types: &[String],
    lease: Duration,
) -> DbResult<Option<ClaimedJob>> {
    if job_types.is_empty() {
        return Ok(None);
    }
    let now = now_micros();
    let Some(id) = conn.dialect().lock_next_due_job(job_types, now).await? else { return Ok(None) };
    let row: JobRow = diesel::update(jobs::table.find(id))
        .set((
            jobs::lease_owner.eq(worker),
            jobs::lease_until.eq(lease_end(now, lease)),
            jobs::attempts.eq(jobs::attempts + 1),
        ))
        .returning(columns::<JobRow>())
        .get_result::<JobRow>(conn)
        .await?;
    row.into_claimed().map(Some)
}

/// Extends the lease of a job `worker` holds. A lease that ran out but that no other worker took is still
/// the worker's: whoever claims a job becomes its `lease_owner`, so the owner check is the takeover check.
pub(crate) async fn renew_lease(conn: &mut Conn<'_>, id: JobId, worker: &str, lease: Duration) -> DbResult<bool> {
    let changed = diesel::update(jobs::table.find(id).filter(jobs::lease_owner.eq(worker)))
        .set(jobs::lease_until.eq(lease_end(now_micros(), lease)))
        .execute(conn)
        .await?;
    Ok(changed == 1)
}

pub(crate) async fn retry_job(
    conn: &mut Conn<'_>,
    id: JobId,
    worker: &str,
    error: &str,
    run_at: Micros,
) -> DbResult<bool> {
    let changed = diesel::update(jobs::table.find(id).filter(jobs::lease_owner.eq(worker)))
        .set(requeue(error, run_at))
        .execute(conn)
        .await?;
    Ok(changed == 1)
}

/// The columns that put a job back in the queue.
#[allow(clippy::type_complexity)]
fn requeue(
    error: &str,
    run_at: Micros,
) -> (
    diesel::dsl::Eq<jobs::lease_owner, Option<String>>,
    diesel::dsl::Eq<jobs::lease_until, Option<Micros>>,
    diesel::dsl::Eq<jobs::run_at, Micros>,
    diesel::dsl::Eq<jobs::last_error, Option<String>>,
) {
    (
        jobs::lease_owner.eq(None::<String>),
        jobs::lease_until.eq(None::<Micros>),
        jobs::run_at.eq(run_at),
        jobs::last_error.eq(Some(error.to_owned())),
    )
}

pub(crate) async fn complete_job(conn: &mut Conn<'_>, id: JobId, worker: &str) -> DbResult<bool> {
    let deleted = diesel::delete(jobs::table.find(id).filter(jobs::lease_owner.eq(worker))).execute(conn).await?;
    Ok(deleted == 1)
}

/// Every job type in the queue with its number of jobs, by name.
pub(crate) async fn job_types(conn: &mut Conn<'_>) -> DbResult<Vec<(String, i64)>> {
    Ok(jobs::table
        .group_by(jobs::job_type)
        .select((jobs::job_type, count_star()))
        .order_by(jobs::job_type.asc())
        .load(conn)
        .await?)
}

// ---------------------------------------------------------------------------------------------------
// Imports

/// `ImportState::Queued` and `ImportState::Running` as stored: the states of an import with work to do.
const ACTIVE_STATES: [&str; 2] = ["queued", "running"];

/// The states in which an import of the same source into the same target makes a new one pointless.
const DEDUPE_STATES: [&str; 3] = ["queued", "running", "succeeded"];

fn parse_state(row: &ImportRow) -> DbResult<ImportState> {
    row.state.parse().map_err(|_| crate::error::corrupt(format!("import {}: unknown state `{}`", row.id, row.state)))
}

/// What an import's events say about it.
fn import_details(import: &ImportJob) -> Value {
    json!({
        "import_id": import.id,
        "source": import.source.to_string(),
        "target": import.target.to_string(),
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> DbResult<String> {
    serde_json::to_string(value).map_err(|e| DbError::Domain(Error::storage(e)))
}

async fn find_import(conn: &mut Conn<'_>, id: i64) -> DbResult<ImportJob> {
    let row: Option<ImportRow> = imports::table.find(id).select(columns::<ImportRow>()).first(conn).await.optional()?;
    row.ok_or_else(|| Error::not_found("import", id))?.into_domain()
}

pub(crate) async fn get_import(conn: &mut Conn<'_>, id: i64) -> DbResult<ImportJob> {
    find_import(conn, id).await
}

/// The newest import of `source` into `target` that is queued, running or succeeded.
async fn find_duplicate(conn: &mut Conn<'_>, source: &str, target: &str) -> DbResult<Option<ImportJob>> {
    let row: Option<ImportRow> = imports::table
        .filter(imports::source.eq(source))
        .filter(imports::target.eq(target))
        .filter(imports::state.eq_any(DEDUPE_STATES))
        .select(columns::<ImportRow>())
        .order(imports::id.desc())
        .first(conn)
        .await
        .optional()?;
    row.map(ImportRow::into_domain).transpose()
}

/// Queues an import and its job, unless a duplicate exists.
///
/// The check and the insert are not atomic on PostgreSQL; the partial unique index on active imports
/// catches a concurrent twin, whose import is then returned. The insert runs in a savepoint so that the
/// transaction survives the violation.
pub(crate) async fn enqueue_import(conn: &mut Conn<'_>, import: &NewImport, actor: &str) -> DbResult<EnqueueOutcome> {
    if import.max_attempts < 1 {
        return Err(Error::invalid("max_attempts", format!("must be at least 1, got {}", import.max_attempts)).into());
    }
    if import.timeout_secs < 1 {
        return Err(Error::invalid("timeout_secs", format!("must be at least 1, got {}", import.timeout_secs)).into());
    }
    let (source, target) = (import.source.to_string(), import.target.to_string());
    if let Some(existing) = find_duplicate(conn, &source, &target).await? {
        return Ok(EnqueueOutcome::Existing(existing));
    }
    let inserted = conn.transaction(async |conn| insert_import(conn, import, actor).await).await;
    match inserted {
        Ok(created) => Ok(EnqueueOutcome::Started(created)),
        Err(e) if is_unique_violation(&e) => match find_duplicate(conn, &source, &target).await? {
            Some(existing) => Ok(EnqueueOutcome::Existing(existing)),
            None => Err(Error::conflict(format!("an import of {source} into {target} is already queued")).into()),
        },
        Err(e) => Err(e),
    }
}

/// Inserts a queued import, its job (payload `{"import_id": …}`), and `image.import.queued`.
async fn insert_import(conn: &mut Conn<'_>, import: &NewImport, actor: &str) -> DbResult<ImportJob> {
    let now = now_micros();
    let row = NewImportRow {
        source: import.source.to_string(),
        target: import.target.to_string(),
        source_registry: import.source.registry(),
        source_repository: import.source.repository(),
        target_registry: import.target.registry(),
        target_repository: import.target.repository(),
        target_tag: import.target.tag(),
        platforms: to_json(&import.platforms)?,
        state: ImportState::Queued.as_str(),
        max_attempts: import.max_attempts,
        timeout_secs: import.timeout_secs,
        description: import.description.as_deref(),
        created_by: actor,
        created_at: now,
        updated_at: now,
        registry_secret_namespace: import.registry_secret.as_ref().map(|r| r.namespace.as_str()),
        registry_secret_name: import.registry_secret.as_ref().map(|r| r.name.as_str()),
    };
    let created: ImportRow = diesel::insert_into(imports::table)
        .values(row)
        .returning(columns::<ImportRow>())
        .get_result::<ImportRow>(conn)
        .await?;
    let payload = json!(ImportPayload { import_id: created.id });
    let job = enqueue_job(conn, ImportPayload::NAME, &payload, 0, now, import.max_attempts).await?;
    diesel::update(imports::table.find(created.id)).set(imports::job_id.eq(job)).execute(conn).await?;
    let created = created.into_domain()?;
    record(conn, import_kind::QUEUED, actor, now, Subject::default(), import_details(&created)).await?;
    Ok(created)
}

fn import_filter(filter: &ImportFilter) -> Condition<'_, imports::table> {
    let mut condition = Condition::new();
    if let Some(tag) = &filter.tag {
        condition.push(imports::target_tag.eq(tag));
    }
    match filter.ready {
        Some(true) => condition.push(imports::state.eq(ImportState::Succeeded.as_str())),
        Some(false) => condition.push(imports::state.ne(ImportState::Succeeded.as_str())),
        None => {}
    }
    if let Some(created_by) = &filter.created_by {
        condition.push(imports::created_by.eq(created_by));
    }
    condition
}

/// Ordered by the filter's field, then by id, both ascending or both descending.
pub(crate) async fn list_imports(conn: &mut Conn<'_>, filter: &ImportFilter) -> DbResult<Listing<ImportJob>> {
    let total = imports::table.filter(import_filter(filter)).count().get_result(conn).await?;
    let order = match (filter.order_by, filter.descending) {
        (ImportOrder::CreatedAt, false) => Ordering::by((imports::created_at.asc(), imports::id.asc())),
        (ImportOrder::CreatedAt, true) => Ordering::by((imports::created_at.desc(), imports::id.desc())),
        (ImportOrder::Id, false) => Ordering::by(imports::id.asc()),
        (ImportOrder::Id, true) => Ordering::by(imports::id.desc()),
        (ImportOrder::Repository, false) => Ordering::by((imports::target_repository.asc(), imports::id.asc())),
        (ImportOrder::Repository, true) => Ordering::by((imports::target_repository.desc(), imports::id.desc())),
        (ImportOrder::Tag, false) => Ordering::by((imports::target_tag.asc(), imports::id.asc())),
        (ImportOrder::Tag, true) => Ordering::by((imports::target_tag.desc(), imports::id.desc())),
    };
    let rows: Vec<ImportRow> = imports::table
        .filter(import_filter(filter))
        .select(columns::<ImportRow>())
        .order(order)
        .limit(filter.page.limit)
        .offset(filter.page.offset)
        .load(conn)
        .await?;
    let items = rows.into_iter().map(ImportRow::into_domain).collect::<DbResult<_>>()?;
    Ok(Listing { items, total })
}

/// The oldest active import into `target_repository` with the tag `target_tag`.
pub(crate) async fn find_active_import(
    conn: &mut Conn<'_>,
    target_repository: &str,
    target_tag: &str,
) -> DbResult<Option<ImportJob>> {
    let row: Option<ImportRow> = imports::table
        .filter(imports::target_repository.eq(target_repository))
        .filter(imports::target_tag.eq(target_tag))
        .filter(imports::state.eq_any(ACTIVE_STATES))
        .select(columns::<ImportRow>())
        .order(imports::id.asc())
        .first(conn)
        .await
        .optional()?;
    row.map(ImportRow::into_domain).transpose()
}

/// The import, locked, and its job, locked, when the import is active and `worker` holds that job.
async fn lock_held_import(
    conn: &mut Conn<'_>,
    id: i64,
    job: JobId,
    worker: &str,
) -> DbResult<Option<(ImportRow, JobRow)>> {
    let Some(import) = conn.dialect().lock_import(id).await? else { return Ok(None) };
    if import.job_id != Some(job) || !parse_state(&import)?.is_active() {
        return Ok(None);
    }
    let held = conn.dialect().lock_held_job(job, worker).await?;
    Ok(held.map(|job| (import, job)))
}

pub(crate) async fn start_import_attempt(
    conn: &mut Conn<'_>,
    id: i64,
    job: JobId,
    worker: &str,
    attempt: i32,
) -> DbResult<bool> {
    let Some((import, _)) = lock_held_import(conn, id, job, worker).await? else { return Ok(false) };
    let now = now_micros();
    diesel::update(imports::table.find(id))
        .set((
            imports::state.eq(ImportState::Running.as_str()),
            imports::attempts.eq(attempt),
            imports::started_at.eq(import.started_at.unwrap_or(now)),
            imports::error.eq(None::<String>),
            imports::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(true)
}

/// Writes progress of an active import; progress that arrives after the import ended is dropped.
pub(crate) async fn record_import_progress(
    conn: &mut Conn<'_>,
    id: i64,
    digest: Option<&Digest>,
    artifacts: &[Artifact],
    layers: &[LayerProgress],
) -> DbResult<()> {
    let progress = ImportProgress {
        digest: digest.map(Digest::as_str),
        artifacts: to_json(&artifacts)?,
        layers: to_json(&layers)?,
        updated_at: now_micros(),
    };
    let changed = diesel::update(imports::table.find(id).filter(imports::state.eq_any(ACTIVE_STATES)))
        .set(progress)
        .execute(conn)
        .await?;
    if changed == 0 {
        find_import(conn, id).await?;
    }
    Ok(())
}

pub(crate) async fn finish_import_attempt(
    conn: &mut Conn<'_>,
    id: i64,
    job: JobId,
    worker: &str,
    outcome: &AttemptOutcome,
) -> DbResult<bool> {
    let Some((import, job_row)) = lock_held_import(conn, id, job, worker).await? else { return Ok(false) };
    let import = import.into_domain()?;
    let now = now_micros();
    match outcome {
        AttemptOutcome::Succeeded { digest, artifacts } => {
            succeed_import(conn, import, job, worker, digest, artifacts, now).await?;
        }
        AttemptOutcome::Retry { error, retry_at } if job_row.attempts < job_row.max_attempts => {
            diesel::update(jobs::table.find(job)).set(requeue(error, to_micros(*retry_at))).execute(conn).await?;
            diesel::update(imports::table.find(id))
                .set((
                    imports::state.eq(ImportState::Queued.as_str()),
                    imports::error.eq(Some(error)),
                    imports::updated_at.eq(now),
                ))
                .execute(conn)
                .await?;
        }
        AttemptOutcome::Retry { error, .. } | AttemptOutcome::Failed { error } => {
            fail_import(conn, import, job, error, now).await?;
        }
    }
    Ok(true)
}

/// Ends an import as succeeded, removes its job, and adds the image and tag to the catalog.
async fn succeed_import(
    conn: &mut Conn<'_>,
    import: ImportJob,
    job: JobId,
    worker: &str,
    digest: &Digest,
    artifacts: &[Artifact],
    now: Micros,
) -> DbResult<()> {
    let layers: Vec<LayerProgress> = import
        .layers
        .iter()
        .map(|layer| LayerProgress { state: LayerState::Completed, done: layer.size, ..layer.clone() })
        .collect();
    diesel::update(imports::table.find(import.id))
        .set((
            imports::state.eq(ImportState::Succeeded.as_str()),
            imports::finished_at.eq(now),
            imports::updated_at.eq(now),
            imports::error.eq(None::<String>),
            imports::digest.eq(digest.as_str()),
            imports::artifacts.eq(to_json(&artifacts)?),
            imports::layers.eq(to_json(&layers)?),
            imports::job_id.eq(None::<i64>),
        ))
        .execute(conn)
        .await?;
    diesel::delete(jobs::table.find(job)).execute(conn).await?;
    let (image, tag) = add_to_catalog(conn, &import, digest, artifacts, now).await?;
    let mut details = import_details(&import);
    details["digest"] = json!(digest.as_str());
    details["worker"] = json!(worker);
    let subject = Subject { image: Some(image.id), tag: tag.map(|t| t.id), ..Subject::default() };
    record(conn, import_kind::SUCCEEDED, &import.created_by, now, subject, details).await
}

/// Adds what an import copied to the catalog, on behalf of whoever asked for the import: the source's
/// image (new ones pending approval) and, with the target's tag, its tag (digest, size, platform and push
/// time of what was copied).
async fn add_to_catalog(
    conn: &mut Conn<'_>,
    import: &ImportJob,
    digest: &Digest,
    artifacts: &[Artifact],
    now: Micros,
) -> DbResult<(CatalogImage, Option<Tag>)> {
    let source = &import.source;
    let (registry, namespace, name) = (source.registry(), source.namespace().unwrap_or(""), source.name());
    let actor = import.created_by.as_str();
    let image = match conn.dialect().lock_image_named(registry, namespace, name).await? {
        Some(row) => row.into_domain()?,
        None => {
            let new = rules::imported_image(source);
            // In a savepoint: a concurrent import may add the same image first (PostgreSQL), and then
            // that one is used.
            match conn.transaction(async |conn| insert_image(conn, &new, actor, now, None).await).await {
                Ok(image) => image,
                Err(DbError::Domain(Error::AlreadyExists(_))) => conn
                    .dialect()
                    .lock_image_named(registry, namespace, name)
                    .await?
                    .ok_or_else(|| {
                        Error::conflict(format!("image {} vanished", image_label(registry, namespace, name)))
                    })?
                    .into_domain()?,
                Err(e) => return Err(e),
            }
        }
    };
    let Some(copied) = rules::imported_tag(source, &import.target, digest, artifacts, from_micros(now)?) else {
        return Ok((image, None));
    };
    let existing: Option<TagRow> = image_tags::table
        .filter(image_tags::image_id.eq(image.id))
        .filter(image_tags::tag.eq(&copied.tag))
        .select(columns::<TagRow>())
        .first(conn)
        .await
        .optional()?;
    let tag = match existing {
        Some(row) => {
            let before = row.into_domain()?;
            let after = copied.applied_to(&before);
            store_tag_update(conn, &before, &after, actor, now).await?;
            after
        }
        None => insert_tag(conn, image.id, &copied.new_tag(), actor, now, None).await?,
    };
    Ok((image, Some(tag)))
}

/// Ends an import as failed with `error`, removes its job, and records `image.import.failed`.
async fn fail_import(conn: &mut Conn<'_>, import: ImportJob, job: JobId, error: &str, now: Micros) -> DbResult<()> {
    diesel::update(imports::table.find(import.id))
        .set((
            imports::state.eq(ImportState::Failed.as_str()),
            imports::finished_at.eq(now),
            imports::updated_at.eq(now),
            imports::error.eq(Some(error)),
            imports::job_id.eq(None::<i64>),
        ))
        .execute(conn)
        .await?;
    diesel::delete(jobs::table.find(job)).execute(conn).await?;
    let mut details = import_details(&import);
    details["error"] = json!(error);
    details["attempts"] = json!(import.attempts);
    record(conn, import_kind::FAILED, &import.created_by, now, Subject::default(), details).await
}

pub(crate) async fn cancel_import(conn: &mut Conn<'_>, id: i64, actor: &str) -> DbResult<ImportJob> {
    let row = conn.dialect().lock_import(id).await?.ok_or_else(|| Error::not_found("import", id))?;
    let job = row.job_id;
    let mut import = row.into_domain()?;
    if !import.state.is_active() {
        return Err(Error::conflict(format!("import {id} is already {}", import.state)).into());
    }
    let now = now_micros();
    diesel::update(imports::table.find(id))
        .set((
            imports::state.eq(ImportState::Canceled.as_str()),
            imports::finished_at.eq(now),
            imports::updated_at.eq(now),
            imports::job_id.eq(None::<i64>),
        ))
        .execute(conn)
        .await?;
    // Without its job, the worker running the import loses it at its next lease renewal.
    if let Some(job) = job {
        diesel::delete(jobs::table.find(job)).execute(conn).await?;
    }
    import.state = ImportState::Canceled;
    import.finished_at = Some(from_micros(now)?);
    import.updated_at = from_micros(now)?;
    record(conn, import_kind::CANCELED, actor, now, Subject::default(), import_details(&import)).await?;
    Ok(import)
}

pub(crate) async fn delete_import(conn: &mut Conn<'_>, id: i64, actor: &str) -> DbResult<ImportJob> {
    let import = conn.dialect().lock_import(id).await?.ok_or_else(|| Error::not_found("import", id))?.into_domain()?;
    if import.state.is_active() {
        return Err(Error::conflict(format!("import {id} is {}; cancel it first", import.state)).into());
    }
    diesel::delete(imports::table.find(id)).execute(conn).await?;
    record(conn, import_kind::DELETED, actor, now_micros(), Subject::default(), json!(import)).await?;
    Ok(import)
}

// ---------------------------------------------------------------------------------------------------
// Export records

/// Stores a new record; its id and creation time are the store's.
pub(crate) async fn create_export(conn: &mut Conn<'_>, export: &ExportRecord) -> DbResult<ExportRecord> {
    validate_phase(&export.phase)?;
    let row = NewExportRow {
        registry_host: &export.registry_host,
        repository: &export.repository,
        tag: &export.tag,
        source: export.source.as_deref(),
        description: export.description.as_deref(),
        created_by: &export.created_by,
        phase: &export.phase,
        created_at: now_micros(),
    };
    diesel::insert_into(exports::table)
        .values(row)
        .returning(columns::<ExportRow>())
        .get_result::<ExportRow>(conn)
        .await?
        .into_domain()
}

pub(crate) async fn set_export_phase(
    conn: &mut Conn<'_>,
    id: i64,
    phase: &str,
    actor: &str,
    actor_is_admin: bool,
) -> DbResult<ExportRecord> {
    validate_phase(phase)?;
    let before: ExportRow = exports::table
        .find(id)
        .select(columns::<ExportRow>())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| Error::not_found("export", id))?;
    if !actor_is_admin && before.created_by != actor {
        return Err(Error::forbidden(format!(
            "export {id} was recorded by someone else; only they or an admin may change it"
        ))
        .into());
    }
    let details = json!({ "export_id": id, "before": { "phase": before.phase }, "after": { "phase": phase } });
    record(conn, kind::EXPORT_UPDATED, actor, now_micros(), Subject::default(), details).await?;
    let row: Option<ExportRow> = diesel::update(exports::table.find(id))
        .set(exports::phase.eq(phase))
        .returning(columns::<ExportRow>())
        .get_result::<ExportRow>(conn)
        .await
        .optional()?;
    row.ok_or_else(|| Error::not_found("export", id))?.into_domain()
}

fn export_filter(ready: Option<bool>, created_by: Option<&str>) -> Condition<'_, exports::table> {
    let mut condition = Condition::new();
    match ready {
        Some(true) => condition.push(exports::phase.eq("Succeeded")),
        Some(false) => condition.push(exports::phase.ne("Succeeded")),
        None => {}
    }
    if let Some(created_by) = created_by {
        condition.push(exports::created_by.eq(created_by));
    }
    condition
}

/// Newest first.
pub(crate) async fn list_exports(
    conn: &mut Conn<'_>,
    ready: Option<bool>,
    created_by: Option<&str>,
    page: Page,
) -> DbResult<Listing<ExportRecord>> {
    let total = exports::table.filter(export_filter(ready, created_by)).count().get_result(conn).await?;
    let rows: Vec<ExportRow> = exports::table
        .filter(export_filter(ready, created_by))
        .select(columns::<ExportRow>())
        .order((exports::created_at.desc(), exports::id.desc()))
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)
        .await?;
    let items = rows.into_iter().map(ExportRow::into_domain).collect::<DbResult<_>>()?;
    Ok(Listing { items, total })
}

// ---------------------------------------------------------------------------------------------------
// Users and tokens

pub(crate) async fn count_users(conn: &mut Conn<'_>) -> DbResult<i64> {
    Ok(users::table.count().get_result(conn).await?)
}

pub(crate) async fn create_user(conn: &mut Conn<'_>, user: &NewUser) -> DbResult<User> {
    let row = NewUserRow {
        username: &user.username,
        password_hash: &user.password_hash,
        role: user.role.as_str(),
        created_at: now_micros(),
    };
    diesel::insert_into(users::table)
        .values(row)
        .returning(columns::<UserRow>())
        .get_result::<UserRow>(conn)
        .await
        .map_err(on_unique(|| format!("user {} already exists", user.username)))?
        .into_domain()
}

pub(crate) async fn find_credentials(conn: &mut Conn<'_>, username: &str) -> DbResult<Option<Credentials>> {
    let found: Option<(UserRow, String)> = users::table
        .filter(users::username.eq(username))
        .select((columns::<UserRow>(), users::password_hash))
        .first(conn)
        .await
        .optional()?;
    found.map(|(user, password_hash)| Ok(Credentials { user: user.into_domain()?, password_hash })).transpose()
}

pub(crate) async fn create_token(
    conn: &mut Conn<'_>,
    user_id: UserId,
    token_hash: &str,
    name: &str,
    expires_at: Option<Micros>,
) -> DbResult<()> {
    let exists: Option<i64> = users::table.find(user_id).select(users::id).first(conn).await.optional()?;
    if exists.is_none() {
        return Err(Error::not_found("user", user_id).into());
    }
    let row = NewTokenRow { user_id, token_hash, name, created_at: now_micros(), expires_at };
    diesel::insert_into(api_tokens::table)
        .values(row)
        .execute(conn)
        .await
        .map_err(on_unique(|| format!("a token with this hash already exists (named {name})")))?;
    Ok(())
}

/// A live token's id, when it was last used, and its user.
pub(crate) async fn find_token(
    conn: &mut Conn<'_>,
    token_hash: &str,
    now: Micros,
) -> DbResult<Option<(i64, Option<Micros>, User)>> {
    let found: Option<(i64, Option<Micros>, UserRow)> = api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::token_hash.eq(token_hash))
        .filter(api_tokens::expires_at.is_null().or(api_tokens::expires_at.gt(now)))
        .select((api_tokens::id, api_tokens::last_used_at, columns::<UserRow>()))
        .first(conn)
        .await
        .optional()?;
    found.map(|(id, last_used_at, user)| Ok((id, last_used_at, user.into_domain()?))).transpose()
}

pub(crate) async fn touch_token(conn: &mut Conn<'_>, token_id: i64, now: Micros) -> DbResult<()> {
    diesel::update(api_tokens::table.find(token_id)).set(api_tokens::last_used_at.eq(now)).execute(conn).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Registry secrets and repositories (the kube-style resources)
//
// Operations on both lock the registry secret before its repositories, and a repository before its
// sync job; nothing locks a job and then a repository (repositories.job_id has no foreign key, so
// finishing a job touches only the job).

/// How the kube API names a resource: `namespace/name`.
fn kube_id(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// What the events of a registry secret say about it: everything but the password.
fn secret_details(secret: &RegistrySecret) -> Value {
    json!({
        "id": secret.id,
        "namespace": secret.namespace,
        "name": secret.name,
        "display_name": secret.display_name,
        "description": secret.description,
        "domain": secret.domain,
        "username": secret.username,
        "provider": secret.provider.as_str(),
        "insecure": secret.insecure,
        "ca_bundle": secret.ca_bundle.is_some(),
    })
}

fn repository_details(repository: &Repository) -> Value {
    json!({
        "id": repository.id,
        "namespace": repository.namespace,
        "name": repository.name,
        "display_name": repository.display_name,
        "description": repository.description,
        "repository": repository.repository,
        "tag": repository.tag,
        "registry_ref": { "namespace": repository.registry_ref_namespace, "name": repository.registry_ref_name },
        "sync_interval_secs": repository.sync_interval.as_secs(),
        "sync_timeout_secs": repository.sync_timeout.as_secs(),
        "retry_count": repository.retry_count,
    })
}

/// `Some(pattern)` matching `text` anywhere, with `%`, `_` and `\` taken literally.
fn contains_pattern(text: Option<&str>) -> Option<String> {
    text.map(|t| format!("%{}%", escape_like(t)))
}

/// Stores a registry secret whose password `sealed` is already sealed for its namespace and name.
pub(crate) async fn create_registry_secret(
    conn: &mut Conn<'_>,
    sealer: &Sealer,
    secret: &NewRegistrySecret,
    sealed: &str,
    actor: &str,
) -> DbResult<RegistrySecret> {
    let now = now_micros();
    let row = NewRegistrySecretRow {
        namespace: &secret.namespace,
        name: &secret.name,
        display_name: secret.display_name.as_deref(),
        description: secret.description.as_deref(),
        domain: &secret.domain,
        username: &secret.username,
        password_sealed: sealed,
        provider: secret.provider.as_str(),
        insecure: secret.insecure,
        ca_bundle: secret.ca_bundle.as_deref(),
        verify_status: VerifyStatus::Untested.as_str(),
        created_at: now,
        updated_at: now,
    };
    let created = diesel::insert_into(registry_secrets::table)
        .values(row)
        .returning(columns::<RegistrySecretRow>())
        .get_result::<RegistrySecretRow>(conn)
        .await
        .map_err(on_unique(|| format!("registrysecret {} already exists", kube_id(&secret.namespace, &secret.name))))?
        .into_domain(sealer)?;
    record(conn, kube_kind::SECRET_CREATED, actor, now, Subject::default(), secret_details(&created)).await?;
    Ok(created)
}

async fn find_registry_secret(conn: &mut Conn<'_>, namespace: &str, name: &str) -> DbResult<RegistrySecretRow> {
    let row: Option<RegistrySecretRow> = registry_secrets::table
        .filter(registry_secrets::namespace.eq(namespace))
        .filter(registry_secrets::name.eq(name))
        .select(columns::<RegistrySecretRow>())
        .first(conn)
        .await
        .optional()?;
    row.ok_or_else(|| Error::not_found("registry secret", kube_id(namespace, name)).into())
}

pub(crate) async fn get_registry_secret(
    conn: &mut Conn<'_>,
    sealer: &Sealer,
    namespace: &str,
    name: &str,
) -> DbResult<RegistrySecret> {
    find_registry_secret(conn, namespace, name).await?.into_domain(sealer)
}

fn registry_secret_filter<'a>(
    namespace: Option<&'a str>,
    search: Option<&'a str>,
) -> Condition<'a, registry_secrets::table> {
    let mut condition = Condition::new();
    if let Some(namespace) = namespace {
        condition.push(registry_secrets::namespace.eq(namespace));
    }
    if let Some(pattern) = contains_pattern(search) {
        let in_name = lower(registry_secrets::name).like(lower(pattern.clone())).escape('\\');
        let in_domain = lower(registry_secrets::domain).like(lower(pattern.clone())).escape('\\');
        let in_display_name =
            lower_nullable(registry_secrets::display_name).like(lower_nullable(Some(pattern))).escape('\\');
        condition.push(in_name.or(in_domain).nullable().or(in_display_name));
    }
    condition
}

/// Ordered by namespace, then name.
pub(crate) async fn list_registry_secrets(
    conn: &mut Conn<'_>,
    sealer: &Sealer,
    namespace: Option<&str>,
    search: Option<&str>,
    page: Page,
) -> DbResult<Listing<RegistrySecret>> {
    let total =
        registry_secrets::table.filter(registry_secret_filter(namespace, search)).count().get_result(conn).await?;
    let rows: Vec<RegistrySecretRow> = registry_secrets::table
        .filter(registry_secret_filter(namespace, search))
        .select(columns::<RegistrySecretRow>())
        .order((registry_secrets::namespace.asc(), registry_secrets::name.asc()))
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)
        .await?;
    let items = rows.into_iter().map(|row| row.into_domain(sealer)).collect::<DbResult<_>>()?;
    Ok(Listing { items, total })
}

pub(crate) async fn all_registry_secrets(conn: &mut Conn<'_>, sealer: &Sealer) -> DbResult<Vec<RegistrySecret>> {
    let rows: Vec<RegistrySecretRow> = registry_secrets::table
        .select(columns::<RegistrySecretRow>())
        .order((registry_secrets::namespace.asc(), registry_secrets::name.asc()))
        .load(conn)
        .await?;
    rows.into_iter().map(|row| row.into_domain(sealer)).collect()
}

/// Deletes a registry secret that no repository uses.
///
/// The secret is locked first, so a repository created meanwhile either came before (and is found here)
/// or waits and then finds no secret. A password that does not decrypt (a lost key) does not stop the
/// deletion, which is how one recovers from that: the returned secret's password is then empty.
pub(crate) async fn delete_registry_secret(
    conn: &mut Conn<'_>,
    sealer: &Sealer,
    namespace: &str,
    name: &str,
    actor: &str,
) -> DbResult<RegistrySecret> {
    let id = kube_id(namespace, name);
    let row = conn
        .dialect()
        .lock_registry_secret(namespace, name)
        .await?
        .ok_or_else(|| Error::not_found("registry secret", &id))?;
    let dependents: Vec<(String, String)> = repositories::table
        .filter(repositories::registry_ref_namespace.eq(namespace))
        .filter(repositories::registry_ref_name.eq(name))
        .select((repositories::namespace, repositories::name))
        .order((repositories::namespace.asc(), repositories::name.asc()))
        .load(conn)
        .await?;
    if let [(user_namespace, user_name), others @ ..] = dependents.as_slice() {
        let more = if others.is_empty() { String::new() } else { format!(" and {} more", others.len()) };
        return Err(Error::in_use(format!(
            "registry secret {id} is used by repository {}{more}",
            kube_id(user_namespace, user_name)
        ))
        .into());
    }
    let password = sealer.open(namespace, name, &row.password_sealed).unwrap_or_else(|e| {
        tracing::warn!(registry_secret = %id, error = %e, "deleting a registry secret whose password does not decrypt");
        Secret::new("")
    });
    let secret = row.with_password(password)?;
    diesel::delete(registry_secrets::table.find(secret.id)).execute(conn).await?;
    record(conn, kube_kind::SECRET_DELETED, actor, now_micros(), Subject::default(), secret_details(&secret)).await?;
    Ok(secret)
}

/// Sets the verification status, message (none when empty) and time (now).
pub(crate) async fn record_verification(
    conn: &mut Conn<'_>,
    sealer: &Sealer,
    namespace: &str,
    name: &str,
    status: VerifyStatus,
    message: &str,
) -> DbResult<RegistrySecret> {
    let now = now_micros();
    let row: Option<RegistrySecretRow> = diesel::update(
        registry_secrets::table
            .filter(registry_secrets::namespace.eq(namespace))
            .filter(registry_secrets::name.eq(name)),
    )
    .set((
        registry_secrets::verify_status.eq(status.as_str()),
        registry_secrets::verify_message.eq((!message.is_empty()).then_some(message)),
        registry_secrets::verify_timestamp.eq(Some(now)),
        registry_secrets::updated_at.eq(now),
    ))
    .returning(columns::<RegistrySecretRow>())
    .get_result::<RegistrySecretRow>(conn)
    .await
    .optional()?;
    row.ok_or_else(|| Error::not_found("registry secret", kube_id(namespace, name)))?.into_domain(sealer)
}

/// The domain of the registry secret that `namespace/name` names, if it exists.
async fn registry_domain(conn: &mut Conn<'_>, namespace: &str, name: &str) -> DbResult<Option<String>> {
    Ok(registry_secrets::table
        .filter(registry_secrets::namespace.eq(namespace))
        .filter(registry_secrets::name.eq(name))
        .select(registry_secrets::domain)
        .first(conn)
        .await
        .optional()?)
}

async fn repository_with_domain(conn: &mut Conn<'_>, row: RepositoryRow) -> DbResult<Repository> {
    let domain = registry_domain(conn, &row.registry_ref_namespace, &row.registry_ref_name).await?;
    row.into_domain(domain)
}

/// Stores a repository whose first sync is due now, with its secret kept in place until the end.
pub(crate) async fn create_repository(
    conn: &mut Conn<'_>,
    repository: &NewRepository,
    actor: &str,
) -> DbResult<Repository> {
    let (ref_namespace, ref_name) = (&repository.registry_ref_namespace, &repository.registry_ref_name);
    let domain = conn
        .dialect()
        .share_registry_secret(ref_namespace, ref_name)
        .await?
        .ok_or_else(|| Error::not_found("registry secret", kube_id(ref_namespace, ref_name)))?;
    let now = now_micros();
    let row = NewRepositoryRow {
        namespace: &repository.namespace,
        name: &repository.name,
        display_name: repository.display_name.as_deref(),
        description: repository.description.as_deref(),
        repository: &repository.repository,
        tag: &repository.tag,
        registry_ref_namespace: ref_namespace,
        registry_ref_name: ref_name,
        sync_interval_secs: to_secs(repository.sync_interval),
        sync_timeout_secs: to_secs(repository.sync_timeout),
        retry_count: i32::try_from(repository.retry_count)
            .map_err(|_| Error::invalid("spec.retryCount", "is too large"))?,
        next_sync_at: now,
        created_at: now,
        updated_at: now,
    };
    let created = diesel::insert_into(repositories::table)
        .values(row)
        .returning(columns::<RepositoryRow>())
        .get_result::<RepositoryRow>(conn)
        .await
        .map_err(on_unique(|| {
            format!("repository {} already exists", kube_id(&repository.namespace, &repository.name))
        }))?
        .into_domain(Some(domain))?;
    record(conn, kube_kind::REPOSITORY_CREATED, actor, now, Subject::default(), repository_details(&created)).await?;
    Ok(created)
}

pub(crate) async fn get_repository(conn: &mut Conn<'_>, namespace: &str, name: &str) -> DbResult<Repository> {
    let row: Option<RepositoryRow> = repositories::table
        .filter(repositories::namespace.eq(namespace))
        .filter(repositories::name.eq(name))
        .select(columns::<RepositoryRow>())
        .first(conn)
        .await
        .optional()?;
    let row = row.ok_or_else(|| Error::not_found("repository", kube_id(namespace, name)))?;
    repository_with_domain(conn, row).await
}

fn repository_filter<'a>(namespace: Option<&'a str>, name: Option<&'a str>) -> Condition<'a, repositories::table> {
    let mut condition = Condition::new();
    if let Some(namespace) = namespace {
        condition.push(repositories::namespace.eq(namespace));
    }
    if let Some(pattern) = contains_pattern(name) {
        let in_name = lower(repositories::name).like(lower(pattern.clone())).escape('\\');
        let in_path = lower(repositories::repository).like(lower(pattern)).escape('\\');
        condition.push(in_name.or(in_path));
    }
    condition
}

/// Ordered by namespace, then name.
pub(crate) async fn list_repositories(
    conn: &mut Conn<'_>,
    namespace: Option<&str>,
    name: Option<&str>,
    page: Page,
) -> DbResult<Listing<Repository>> {
    let total = repositories::table.filter(repository_filter(namespace, name)).count().get_result(conn).await?;
    let rows: Vec<RepositoryRow> = repositories::table
        .filter(repository_filter(namespace, name))
        .select(columns::<RepositoryRow>())
        .order((repositories::namespace.asc(), repositories::name.asc()))
        .limit(page.limit)
        .offset(page.offset)
        .load(conn)
        .await?;
    // The domains of the secrets these use; the pairs of namespaces and names cover them, and a few more.
    let ref_namespaces: Vec<&str> = rows.iter().map(|r| r.registry_ref_namespace.as_str()).collect();
    let ref_names: Vec<&str> = rows.iter().map(|r| r.registry_ref_name.as_str()).collect();
    let domains: HashMap<(String, String), String> = registry_secrets::table
        .filter(registry_secrets::namespace.eq_any(&ref_namespaces))
        .filter(registry_secrets::name.eq_any(&ref_names))
        .select((registry_secrets::namespace, registry_secrets::name, registry_secrets::domain))
        .load::<(String, String, String)>(conn)
        .await?
        .into_iter()
        .map(|(namespace, name, domain)| ((namespace, name), domain))
        .collect();
    let items = rows
        .into_iter()
        .map(|row| {
            let key = (row.registry_ref_namespace.clone(), row.registry_ref_name.clone());
            let domain = domains.get(&key).cloned();
            row.into_domain(domain)
        })
        .collect::<DbResult<_>>()?;
    Ok(Listing { items, total })
}

/// Deletes a repository and its queued or running sync job; a worker running that job loses it at its
/// next lease renewal.
pub(crate) async fn delete_repository(
    conn: &mut Conn<'_>,
    namespace: &str,
    name: &str,
    actor: &str,
) -> DbResult<Repository> {
    let row = conn
        .dialect()
        .lock_repository(namespace, name)
        .await?
        .ok_or_else(|| Error::not_found("repository", kube_id(namespace, name)))?;
    let job = row.job_id;
    let repository = repository_with_domain(conn, row).await?;
    diesel::delete(repositories::table.find(repository.id)).execute(conn).await?;
    if let Some(job) = job {
        diesel::delete(jobs::table.find(job)).execute(conn).await?;
    }
    let details = repository_details(&repository);
    record(conn, kube_kind::REPOSITORY_DELETED, actor, now_micros(), Subject::default(), details).await?;
    Ok(repository)
}

/// `at` plus a sync interval, saturating.
fn after_interval(at: Micros, interval_secs: i64) -> Micros {
    at.saturating_add(interval_secs.saturating_mul(1_000_000))
}

/// Queues a sync job (due now, `retry_count + 1` attempts) for a locked repository, and makes it the
/// repository's job, with the next sync due at `next_sync_at`.
async fn queue_sync(conn: &mut Conn<'_>, row: &RepositoryRow, next_sync_at: Micros) -> DbResult<JobId> {
    let now = now_micros();
    let payload = json!(SyncPayload { repository_id: row.id });
    let job = enqueue_job(conn, SyncPayload::NAME, &payload, 0, now, row.retry_count.saturating_add(1)).await?;
    diesel::update(repositories::table.find(row.id))
        .set((
            repositories::job_id.eq(job),
            repositories::next_sync_at.eq(next_sync_at),
            repositories::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(job)
}

/// Of the jobs `ids`, those that exist.
async fn existing_jobs(conn: &mut Conn<'_>, ids: &[JobId]) -> DbResult<HashSet<JobId>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(jobs::table.filter(jobs::id.eq_any(ids)).select(jobs::id).load::<JobId>(conn).await?.into_iter().collect())
}

/// Queues a sync for every repository due at `now` without a job, each due again one interval after `now`.
pub(crate) async fn enqueue_due_syncs(conn: &mut Conn<'_>, now: Micros) -> DbResult<usize> {
    let due = conn.dialect().lock_due_repositories(now).await?;
    // Checked again with the rows held: a job another scheduler committed just before is seen now.
    let job_ids: Vec<JobId> = due.iter().filter_map(|r| r.job_id).collect();
    let busy = existing_jobs(conn, &job_ids).await?;
    let mut queued = 0;
    for row in due.iter().filter(|r| r.job_id.is_none_or(|job| !busy.contains(&job))) {
        queue_sync(conn, row, after_interval(now, row.sync_interval_secs)).await?;
        queued += 1;
    }
    Ok(queued)
}

/// Queues a sync now unless the repository's job exists; the next scheduled sync then comes one interval
/// after this one.
pub(crate) async fn trigger_sync(conn: &mut Conn<'_>, namespace: &str, name: &str) -> DbResult<bool> {
    let row = conn
        .dialect()
        .lock_repository(namespace, name)
        .await?
        .ok_or_else(|| Error::not_found("repository", kube_id(namespace, name)))?;
    if let Some(job) = row.job_id
        && !existing_jobs(conn, &[job]).await?.is_empty()
    {
        return Ok(false);
    }
    queue_sync(conn, &row, after_interval(now_micros(), row.sync_interval_secs)).await?;
    Ok(true)
}

/// Records where a sync stands, when `worker` holds `job` and `job` is the repository's: a worker whose
/// lease ran out and was taken over changes nothing. `Syncing` sets the status and message (an attempt
/// started, or failed and will be retried). `Success` also sets `last_synced` (now) and, when given, the
/// manifest, and frees the repository for its next sync (`job_id` cleared). `Failed` is final (the worker
/// gave up): status and message, and the repository is freed; the last good manifest stays. Both final
/// outcomes also complete the job (when `worker` holds it), in the same transaction.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn record_sync(
    conn: &mut Conn<'_>,
    id: i64,
    job: JobId,
    worker: &str,
    status: SyncStatus,
    message: Option<&str>,
    manifest: Option<&SyncedManifest>,
) -> DbResult<bool> {
    let now = now_micros();
    // One statement: the row lock on the repository comes first, as in every other path that touches a
    // repository and its job.
    let held = diesel::dsl::exists(jobs::table.find(job).filter(jobs::lease_owner.eq(worker)));
    let target = repositories::table.find(id).filter(repositories::job_id.eq(job)).filter(held);
    let common = (
        repositories::sync_status.eq(Some(sync_status_str(status))),
        repositories::sync_message.eq(message),
        repositories::updated_at.eq(now),
    );
    let changed = match (status, manifest) {
        (SyncStatus::Syncing, _) => diesel::update(target).set(common).execute(conn).await?,
        (SyncStatus::Success, Some(manifest)) => {
            diesel::update(target)
                .set((
                    common,
                    repositories::last_synced.eq(Some(now)),
                    repositories::manifest.eq(Some(to_json(manifest)?)),
                    repositories::job_id.eq(None::<i64>),
                ))
                .execute(conn)
                .await?
        }
        (SyncStatus::Success, None) => {
            diesel::update(target)
                .set((common, repositories::last_synced.eq(Some(now)), repositories::job_id.eq(None::<i64>)))
                .execute(conn)
                .await?
        }
        (SyncStatus::Failed, _) => {
            diesel::update(target).set((common, repositories::job_id.eq(None::<i64>))).execute(conn).await?
        }
    };
    if changed == 0 {
        let exists: Option<i64> = repositories::table.find(id).select(repositories::id).first(conn).await.optional()?;
        if exists.is_none() {
            return Err(Error::not_found("repository", id).into());
        }
    }
    if matches!(status, SyncStatus::Success | SyncStatus::Failed) {
        // Also when the repository has moved on to another job: this one is then an orphan.
        complete_job(conn, job, worker).await?;
    }
    Ok(changed == 1)
}

/// The repository with this id and its registry secret, the password decrypted.
pub(crate) async fn repository_by_id(
    conn: &mut Conn<'_>,
    sealer: &Sealer,
    id: i64,
) -> DbResult<(Repository, RegistrySecret)> {
    let row: Option<RepositoryRow> =
        repositories::table.find(id).select(columns::<RepositoryRow>()).first(conn).await.optional()?;
    let row = row.ok_or_else(|| Error::not_found("repository", id))?;
    let secret = find_registry_secret(conn, &row.registry_ref_namespace, &row.registry_ref_name).await?;
    let secret = secret.into_domain(sealer)?;
    let repository = row.into_domain(Some(secret.domain.clone()))?;
    Ok((repository, secret))
}
