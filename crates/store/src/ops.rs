//! The store's operations, written once and compiled once per backend.
//!
//! `sqlite.rs` and `postgres.rs` each include this file as their `ops` module; `super` is then that
//! backend's module, which provides `Conn` (its connection type), `Db` (its diesel backend) and the
//! row-locking reads (`lock_image`, `lock_image_named`, `lock_request`), the only queries that differ.
//!
//! Functions that change something expect to run inside a write transaction, which `DbStore` opens;
//! they write their audit events on the same connection, so both commit or neither does.

use std::collections::HashMap;

use diesel::{
    dsl::count_star,
    prelude::*,
    sql_types::{Nullable, Text},
};
use diesel_async::RunQueryDsl;
use image_core::{
    Error,
    auth::{Credentials, NewUser, User, UserId},
    catalog::{
        ApprovalRequest, ApprovalRequestFilter, ApprovalStatus, CatalogImage, Decision, ImageFilter, ImageId,
        ImageSummary, ImageUpdate, NewApprovalRequest, NewImage, NewTag, Tag, TagId, TagUpdate,
    },
    event::{AuditEvent, EventFilter, kind},
    store::Listing,
};
use serde_json::{Value, json};

use super::{Conn, Db, lock_image, lock_image_named, lock_request};
use crate::{
    error::{DbResult, on_unique},
    models::{
        EventRow, ImageChanges, ImageRow, Micros, NewEventRow, NewImageRow, NewRequestRow, NewTagRow, NewTokenRow,
        NewUserRow, RequestRow, TagChanges, TagRow, UserRow, Verdict, from_micros, now_micros, to_micros,
    },
    schema::{api_tokens, audit_events, image_approval_requests, image_tags, images, users},
};

diesel::define_sql_function! {
    /// SQL `lower`, the same function on both backends, so case-insensitive search behaves the same.
    fn lower(x: Text) -> Text;
}

diesel::define_sql_function! {
    #[sql_name = "lower"]
    fn lower_nullable(x: Nullable<Text>) -> Nullable<Text>;
}

pub(crate) async fn ping(conn: &mut Conn) -> DbResult<()> {
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
    conn: &mut Conn,
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

/// `{"before": …, "after": …, "changes": [the fields that differ]}`; `updated_at` is no change of its own.
fn update_details(before: Value, after: Value) -> Value {
    let changes: Vec<&String> = match (&before, &after) {
        (Value::Object(b), Value::Object(a)) => a
            .iter()
            .filter(|(field, value)| *field != "updated_at" && b.get(*field) != Some(*value))
            .map(|(f, _)| f)
            .collect(),
        _ => Vec::new(),
    };
    json!({ "before": before, "after": after, "changes": changes })
}

fn event_filter(filter: &EventFilter) -> audit_events::BoxedQuery<'_, Db> {
    let mut query = audit_events::table.into_boxed();
    if let Some(event_type) = &filter.event_type {
        query = query.filter(audit_events::event_type.eq(event_type));
    }
    if let Some(image_id) = filter.image_id {
        query = query.filter(audit_events::image_id.eq(image_id));
    }
    if let Some(actor) = &filter.actor {
        query = query.filter(audit_events::actor.eq(actor));
    }
    query
}

pub(crate) async fn list_events(conn: &mut Conn, filter: &EventFilter) -> DbResult<Listing<AuditEvent>> {
    let total = event_filter(filter).count().get_result(conn).await?;
    let rows: Vec<EventRow> = event_filter(filter)
        .select(EventRow::as_select())
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

pub(crate) async fn get_image(conn: &mut Conn, id: ImageId) -> DbResult<CatalogImage> {
    let row = images::table.find(id).select(ImageRow::as_select()).first(conn).await.optional()?;
    row.ok_or_else(|| Error::not_found("image", id))?.into_domain()
}

pub(crate) async fn find_image(
    conn: &mut Conn,
    registry: &str,
    namespace: &str,
    image_name: &str,
) -> DbResult<Option<CatalogImage>> {
    let row: Option<ImageRow> = images::table
        .filter(images::registry.eq(registry))
        .filter(images::namespace.eq(namespace))
        .filter(images::image_name.eq(image_name))
        .select(ImageRow::as_select())
        .first(conn)
        .await
        .optional()?;
    row.map(ImageRow::into_domain).transpose()
}

async fn ensure_image_exists(conn: &mut Conn, id: ImageId) -> DbResult<()> {
    let found: Option<i64> = images::table.find(id).select(images::id).first(conn).await.optional()?;
    found.map(|_| ()).ok_or_else(|| Error::not_found("image", id).into())
}

/// Locks the image for the rest of the transaction (PostgreSQL), or fails with `NotFound`.
async fn lock_existing_image(conn: &mut Conn, id: ImageId) -> DbResult<CatalogImage> {
    lock_image(conn, id).await?.ok_or_else(|| Error::not_found("image", id))?.into_domain()
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

fn image_filter(filter: &ImageFilter) -> images::BoxedQuery<'_, Db> {
    let mut query = images::table.into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(images::approval_status.eq(status.as_str()));
    }
    if let Some(category) = &filter.category {
        query = query.filter(images::category.eq(category));
    }
    if let Some(search) = &filter.search {
        let pattern = format!("%{}%", escape_like(search));
        let in_name = lower(images::image_name).like(lower(pattern.clone())).escape('\\');
        let in_description = lower_nullable(images::description).like(lower_nullable(Some(pattern))).escape('\\');
        query = query.filter(in_name.nullable().or(in_description));
    }
    query
}

pub(crate) async fn list_images(conn: &mut Conn, filter: &ImageFilter) -> DbResult<Listing<ImageSummary>> {
    let total = image_filter(filter).count().get_result(conn).await?;
    let rows: Vec<ImageRow> = image_filter(filter)
        .select(ImageRow::as_select())
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

pub(crate) async fn categories(conn: &mut Conn) -> DbResult<Vec<(String, i64)>> {
    let rows: Vec<(Option<String>, i64)> = images::table
        .filter(images::category.is_not_null())
        .group_by(images::category)
        .select((images::category, count_star()))
        .order_by((count_star().desc(), images::category.asc()))
        .load(conn)
        .await?;
    Ok(rows.into_iter().filter_map(|(category, count)| Some((category?, count))).collect())
}

pub(crate) async fn create_image(conn: &mut Conn, image: &NewImage, actor: &str) -> DbResult<CatalogImage> {
    insert_image(conn, image, actor, now_micros(), None).await
}

/// Inserts an image and records `image.registry.added`; `request` is the approval request behind it.
async fn insert_image(
    conn: &mut Conn,
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
        .returning(ImageRow::as_returning())
        .get_result(conn)
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
    conn: &mut Conn,
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
    conn: &mut Conn,
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
/// Nothing depends on a catalog image yet. Import jobs and sync subscriptions will: an image with a
/// queued or running import, or with a sync subscription, must fail here with `Conflict` (naming what
/// depends on it), inside the deleting transaction and before anything is deleted.
async fn ensure_image_unused(_conn: &mut Conn, _image: &CatalogImage) -> DbResult<()> {
    Ok(())
}

pub(crate) async fn delete_image(conn: &mut Conn, id: ImageId, actor: &str) -> DbResult<CatalogImage> {
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

async fn load_tags(conn: &mut Conn, image_id: ImageId) -> DbResult<Vec<Tag>> {
    let rows: Vec<TagRow> = image_tags::table
        .filter(image_tags::image_id.eq(image_id))
        .select(TagRow::as_select())
        .order((image_tags::created_at.asc(), image_tags::id.asc()))
        .load(conn)
        .await?;
    rows.into_iter().map(TagRow::into_domain).collect()
}

pub(crate) async fn list_tags(conn: &mut Conn, image_id: ImageId) -> DbResult<Vec<Tag>> {
    ensure_image_exists(conn, image_id).await?;
    load_tags(conn, image_id).await
}

/// The tag with this id, if it belongs to this image; a tag of another image is as good as missing.
async fn image_tag(conn: &mut Conn, image_id: ImageId, tag_id: TagId) -> DbResult<Tag> {
    let row: Option<TagRow> = image_tags::table
        .find(tag_id)
        .filter(image_tags::image_id.eq(image_id))
        .select(TagRow::as_select())
        .first(conn)
        .await
        .optional()?;
    row.ok_or_else(|| Error::not_found("tag", tag_id))?.into_domain()
}

/// Makes every recommended tag of the image but `keep` not recommended, recording each change.
/// Runs with the image locked, before the new recommended tag is written, so the partial unique index
/// never sees two.
async fn unrecommend_others(
    conn: &mut Conn,
    image_id: ImageId,
    keep: Option<TagId>,
    actor: &str,
    now: Micros,
) -> DbResult<()> {
    let rows: Vec<TagRow> = image_tags::table
        .filter(image_tags::image_id.eq(image_id))
        .filter(image_tags::is_recommended.eq(true))
        .filter(image_tags::id.ne(keep.unwrap_or(-1)))
        .select(TagRow::as_select())
        .load(conn)
        .await?;
    for row in rows {
        let before = row.into_domain()?;
        let after = Tag { is_recommended: false, updated_at: from_micros(now)?, ..before.clone() };
        diesel::update(image_tags::table.find(before.id)).set(TagChanges::of(&after)).execute(conn).await?;
        let subject = Subject { image: Some(image_id), tag: Some(before.id), ..Subject::default() };
        record(conn, kind::TAG_UPDATED, actor, now, subject, update_details(json!(before), json!(after))).await?;
    }
    Ok(())
}

pub(crate) async fn create_tag(conn: &mut Conn, image_id: ImageId, tag: &NewTag, actor: &str) -> DbResult<Tag> {
    lock_existing_image(conn, image_id).await?;
    insert_tag(conn, image_id, tag, actor, now_micros(), None).await
}

/// Inserts a tag of a locked image and records `image.tag.added`.
async fn insert_tag(
    conn: &mut Conn,
    image_id: ImageId,
    tag: &NewTag,
    actor: &str,
    now: Micros,
    request: Option<i64>,
) -> DbResult<Tag> {
    if tag.is_recommended {
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
        .returning(TagRow::as_returning())
        .get_result(conn)
        .await
        .map_err(on_unique(|| format!("tag {} already exists for image {image_id}", tag.tag)))?
        .into_domain()?;
    let subject = Subject { image: Some(image_id), tag: Some(created.id), request };
    record(conn, kind::TAG_ADDED, actor, now, subject, json!(created)).await?;
    Ok(created)
}

/// Changes nothing and records nothing when the update leaves every field as it is.
pub(crate) async fn update_tag(
    conn: &mut Conn,
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
    if after.is_recommended && !before.is_recommended {
        unrecommend_others(conn, image_id, Some(tag_id), actor, now).await?;
    }
    diesel::update(image_tags::table.find(tag_id)).set(TagChanges::of(&after)).execute(conn).await?;
    let subject = Subject { image: Some(image_id), tag: Some(tag_id), ..Subject::default() };
    record(conn, kind::TAG_UPDATED, actor, now, subject, update_details(json!(before), json!(after))).await?;
    Ok(after)
}

pub(crate) async fn delete_tag(conn: &mut Conn, image_id: ImageId, tag_id: TagId, actor: &str) -> DbResult<Tag> {
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
    conn: &mut Conn,
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
        .returning(RequestRow::as_returning())
        .get_result(conn)
        .await?
        .into_domain()?;
    let subject = Subject { request: Some(created.id), ..Subject::default() };
    record(conn, kind::APPROVAL_REQUESTED, actor, now, subject, json!(created)).await?;
    Ok(created)
}

fn request_filter(filter: &ApprovalRequestFilter) -> image_approval_requests::BoxedQuery<'_, Db> {
    let mut query = image_approval_requests::table.into_boxed();
    if let Some(status) = filter.status {
        query = query.filter(image_approval_requests::status.eq(status.as_str()));
    }
    query
}

/// Oldest first: the order in which they are reviewed.
pub(crate) async fn list_approval_requests(
    conn: &mut Conn,
    filter: &ApprovalRequestFilter,
) -> DbResult<Listing<ApprovalRequest>> {
    let total = request_filter(filter).count().get_result(conn).await?;
    let rows: Vec<RequestRow> = request_filter(filter)
        .select(RequestRow::as_select())
        .order(image_approval_requests::id.asc())
        .limit(filter.page.limit)
        .offset(filter.page.offset)
        .load(conn)
        .await?;
    let items = rows.into_iter().map(RequestRow::into_domain).collect::<DbResult<_>>()?;
    Ok(Listing { items, total })
}

pub(crate) async fn get_approval_request(conn: &mut Conn, id: i64) -> DbResult<ApprovalRequest> {
    let row: Option<RequestRow> =
        image_approval_requests::table.find(id).select(RequestRow::as_select()).first(conn).await.optional()?;
    row.ok_or_else(|| Error::not_found("approval request", id))?.into_domain()
}

/// Decides a pending request, with the request locked so it is decided once.
///
/// Approving creates the image as approved (official when it is a Docker Official Image, that is in
/// `docker.io/library`), or approves the existing one with the same registry, namespace and name; the
/// decision's category and description, when given, replace the image's. The requested tag is added
/// when the image lacks it. The decision's notes, when given, replace the request's.
pub(crate) async fn decide_approval_request(
    conn: &mut Conn,
    id: i64,
    decision: &Decision,
    actor: &str,
) -> DbResult<(ApprovalRequest, Option<CatalogImage>)> {
    let before =
        lock_request(conn, id).await?.ok_or_else(|| Error::not_found("approval request", id))?.into_domain()?;
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
    conn: &mut Conn,
    request: &ApprovalRequest,
    category: &Option<String>,
    description: &Option<String>,
    actor: &str,
    now: Micros,
) -> DbResult<CatalogImage> {
    let existing = lock_image_named(conn, &request.registry, &request.namespace, &request.image_name).await?;
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
                is_official: request.registry == image_core::DEFAULT_REGISTRY && request.namespace == "library",
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
// Users and tokens

pub(crate) async fn count_users(conn: &mut Conn) -> DbResult<i64> {
    Ok(users::table.count().get_result(conn).await?)
}

pub(crate) async fn create_user(conn: &mut Conn, user: &NewUser) -> DbResult<User> {
    let row = NewUserRow {
        username: &user.username,
        password_hash: &user.password_hash,
        role: user.role.as_str(),
        created_at: now_micros(),
    };
    diesel::insert_into(users::table)
        .values(row)
        .returning(UserRow::as_returning())
        .get_result(conn)
        .await
        .map_err(on_unique(|| format!("user {} already exists", user.username)))?
        .into_domain()
}

pub(crate) async fn find_credentials(conn: &mut Conn, username: &str) -> DbResult<Option<Credentials>> {
    let found: Option<(UserRow, String)> = users::table
        .filter(users::username.eq(username))
        .select((UserRow::as_select(), users::password_hash))
        .first(conn)
        .await
        .optional()?;
    found.map(|(user, password_hash)| Ok(Credentials { user: user.into_domain()?, password_hash })).transpose()
}

pub(crate) async fn create_token(
    conn: &mut Conn,
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
    conn: &mut Conn,
    token_hash: &str,
    now: Micros,
) -> DbResult<Option<(i64, Option<Micros>, User)>> {
    let found: Option<(i64, Option<Micros>, UserRow)> = api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::token_hash.eq(token_hash))
        .filter(api_tokens::expires_at.is_null().or(api_tokens::expires_at.gt(now)))
        .select((api_tokens::id, api_tokens::last_used_at, UserRow::as_select()))
        .first(conn)
        .await
        .optional()?;
    found.map(|(id, last_used_at, user)| Ok((id, last_used_at, user.into_domain()?))).transpose()
}

pub(crate) async fn touch_token(conn: &mut Conn, token_id: i64, now: Micros) -> DbResult<()> {
    diesel::update(api_tokens::table.find(token_id)).set(api_tokens::last_used_at.eq(now)).execute(conn).await?;
    Ok(())
}
