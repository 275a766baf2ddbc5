//! The catalog: images and their tags.
//!
//! Tag changes lock their image first, so the one-recommended-tag rule holds under concurrent requests.

use std::collections::HashMap;

use diesel::{dsl::count_star, prelude::*};
use image_core::{
    Error,
    catalog::{
        ApprovalRequestId, ApprovalStatus, CatalogImage, ImageFilter, ImageId, ImageSummary, ImageUpdate, NewImage,
        NewTag, Tag, TagId, TagUpdate,
    },
    event::kind,
    rules,
    store::Listing,
};
use serde_json::json;

use super::{
    escape_like,
    events::{Subject, record, update_details},
    imports::ACTIVE_STATES,
    lower, lower_nullable,
    search::SearchIndex,
    sum_counts,
};
use crate::{
    conn::{Condition, Conn, RunQueryDsl, columns},
    error::{DbResult, on_unique},
    models::{
        ImageChanges, ImageRow, Micros, NewImageRow, NewTagRow, TagChanges, TagRow, from_micros, now_micros, to_micros,
    },
    schema::{catalog_counts, image_tags, images, imports},
};

pub(super) fn image_label(registry: &str, namespace: &str, image_name: &str) -> String {
    if namespace.is_empty() {
        format!("{registry}/{image_name}")
    } else {
        format!("{registry}/{namespace}/{image_name}")
    }
}

pub(crate) async fn get_image(conn: &mut Conn<'_>, id: ImageId) -> DbResult<CatalogImage> {
    let row: Option<ImageRow> =
        images::table.find(id.get()).select(columns::<ImageRow>()).first(conn).await.optional()?;
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
    let found: Option<i64> = images::table.find(id.get()).select(images::id).first(conn).await.optional()?;
    found.map(|_| ()).ok_or_else(|| Error::not_found("image", id).into())
}

/// Locks the image for the rest of the transaction (PostgreSQL), or fails with `NotFound`.
async fn lock_existing_image(conn: &mut Conn<'_>, id: ImageId) -> DbResult<CatalogImage> {
    conn.dialect().lock_image(id.get()).await?.ok_or_else(|| Error::not_found("image", id))?.into_domain()
}

fn image_filter(filter: &ImageFilter) -> Condition<'_, images::table> {
    let mut condition = Condition::new();
    if let Some(status) = filter.status {
        condition.push(images::approval_status.eq(status.as_str()));
    }
    if let Some(category) = &filter.category {
        condition.push(images::category.eq(category));
    }
    if let Some(after) = filter.after {
        condition.push(images::id.gt(after.get()));
    }
    if let Some(search) = &filter.search {
        let pattern = format!("%{}%", escape_like(search));
        let in_name = lower(images::image_name).like(lower(pattern.clone())).escape('\\');
        let in_description = lower_nullable(images::description).like(lower_nullable(Some(pattern))).escape('\\');
        condition.push(SearchIndex::new(search));
        condition.push(in_name.nullable().or(in_description));
    }
    condition
}

/// How many images the filter keeps, whatever the page and cursor: read from `catalog_counts` (kept by triggers) unless it searches,
/// and counted through the search index when it does.
async fn count_images(conn: &mut Conn<'_>, filter: &ImageFilter) -> DbResult<i64> {
    if filter.search.is_some() {
        // The total is of the whole listing: the cursor pages it, like the offset.
        let whole = ImageFilter { after: None, ..filter.clone() };
        return Ok(images::table.filter(image_filter(&whole)).count().get_result(conn).await?);
    }
    let mut condition = Condition::<catalog_counts::table>::new();
    if let Some(status) = filter.status {
        condition.push(catalog_counts::approval_status.eq(status.as_str()));
    }
    if let Some(category) = &filter.category {
        condition.push(catalog_counts::category.eq(category));
    }
    let total: Option<i64> =
        catalog_counts::table.filter(condition).select(sum_counts("image_count")).get_result(conn).await?;
    Ok(total.unwrap_or(0))
}

pub(crate) async fn list_images(conn: &mut Conn<'_>, filter: &ImageFilter) -> DbResult<Listing<ImageSummary>> {
    let total = count_images(conn, filter).await?;
    let rows: Vec<ImageRow> = images::table
        .filter(image_filter(filter))
        .select(columns::<ImageRow>())
        .order(images::id.asc())
        .limit(filter.page.limit())
        .offset(filter.page.offset())
        .load(conn)
        .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let tag_counts: HashMap<i64, i64> = image_tags::table
        .filter(image_tags::image_id.eq_any(&ids))
        .group_by(image_tags::image_id)
        .select((image_tags::image_id, count_star()))
        .load::<(i64, i64)>(conn)
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

/// Every category with its images, most first, from `catalog_counts`; images without one (under '') are
/// left out.
pub(crate) async fn categories(conn: &mut Conn<'_>) -> DbResult<Vec<(String, i64)>> {
    let rows: Vec<(String, Option<i64>)> = catalog_counts::table
        .filter(catalog_counts::category.ne(""))
        .group_by(catalog_counts::category)
        .select((catalog_counts::category, sum_counts("image_count")))
        .load(conn)
        .await?;
    let mut counts: Vec<(String, i64)> =
        rows.into_iter().filter_map(|(category, n)| Some((category, n?))).filter(|(_, n)| *n > 0).collect();
    counts.sort_by(|(a, m), (b, n)| n.cmp(m).then_with(|| a.cmp(b)));
    Ok(counts)
}

pub(crate) async fn create_image(conn: &mut Conn<'_>, image: &NewImage, actor: &str) -> DbResult<CatalogImage> {
    insert_image(conn, image, actor, now_micros(), None).await
}

/// Inserts an image and records `image.registry.added`; `request` is the approval request behind it.
pub(super) async fn insert_image(
    conn: &mut Conn<'_>,
    image: &NewImage,
    actor: &str,
    now: Micros,
    request: Option<ApprovalRequestId>,
) -> DbResult<CatalogImage> {
    let approved = image.approval_status() == ApprovalStatus::Approved;
    let row = NewImageRow {
        image_name: image.image_name(),
        registry: image.registry(),
        namespace: image.namespace(),
        description: image.description(),
        category: image.category(),
        is_official: image.is_official(),
        approval_status: image.approval_status().as_str(),
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
            format!("image {} already exists", image_label(image.registry(), image.namespace(), image.image_name()))
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
pub(super) async fn apply_image_update(
    conn: &mut Conn<'_>,
    before: CatalogImage,
    update: &ImageUpdate,
    actor: &str,
    now: Micros,
    request: Option<ApprovalRequestId>,
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
    diesel::update(images::table.find(before.id.get())).set(ImageChanges::of(&after)).execute(conn).await?;
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
    diesel::delete(images::table.find(id.get())).execute(conn).await?;
    let mut details = json!(image);
    details["tags"] = json!(tags);
    record(conn, kind::IMAGE_DELETED, actor, now_micros(), Subject { image: Some(id), ..Subject::default() }, details)
        .await?;
    Ok(image)
}

async fn load_tags(conn: &mut Conn<'_>, image_id: ImageId) -> DbResult<Vec<Tag>> {
    let rows: Vec<TagRow> = image_tags::table
        .filter(image_tags::image_id.eq(image_id.get()))
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
        .find(tag_id.get())
        .filter(image_tags::image_id.eq(image_id.get()))
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
        diesel::update(image_tags::table.find(before.id.get())).set(TagChanges::of(&after)).execute(conn).await?;
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
pub(super) async fn insert_tag(
    conn: &mut Conn<'_>,
    image_id: ImageId,
    tag: &NewTag,
    actor: &str,
    now: Micros,
    request: Option<ApprovalRequestId>,
) -> DbResult<Tag> {
    if rules::becomes_recommended(None, tag.is_recommended()) {
        unrecommend_others(conn, image_id, None, actor, now).await?;
    }
    let row = NewTagRow {
        image_id: image_id.get(),
        tag: tag.tag(),
        digest: tag.digest().map(|d| d.as_str()),
        size_bytes: tag.size_bytes(),
        architecture: tag.architecture(),
        os: tag.os(),
        pushed_at: tag.pushed_at().map(to_micros),
        is_recommended: tag.is_recommended(),
        is_deprecated: tag.is_deprecated(),
        security_scan_status: tag.security_scan_status(),
        vulnerabilities_count: tag.vulnerabilities_count(),
        created_at: now,
        updated_at: now,
    };
    let created = diesel::insert_into(image_tags::table)
        .values(row)
        .returning(columns::<TagRow>())
        .get_result::<TagRow>(conn)
        .await
        .map_err(on_unique(|| format!("tag {} already exists for image {image_id}", tag.tag())))?
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
pub(super) async fn store_tag_update(
    conn: &mut Conn<'_>,
    before: &Tag,
    after: &Tag,
    actor: &str,
    now: Micros,
) -> DbResult<()> {
    if rules::becomes_recommended(Some(before), after.is_recommended) {
        unrecommend_others(conn, after.image_id, Some(after.id), actor, now).await?;
    }
    diesel::update(image_tags::table.find(after.id.get())).set(TagChanges::of(after)).execute(conn).await?;
    let subject = Subject { image: Some(after.image_id), tag: Some(after.id), ..Subject::default() };
    record(conn, kind::TAG_UPDATED, actor, now, subject, update_details(json!(before), json!(after))).await?;
    Ok(())
}

pub(crate) async fn delete_tag(conn: &mut Conn<'_>, image_id: ImageId, tag_id: TagId, actor: &str) -> DbResult<Tag> {
    lock_existing_image(conn, image_id).await?;
    let tag = image_tag(conn, image_id, tag_id).await?;
    diesel::delete(image_tags::table.find(tag_id.get())).execute(conn).await?;
    let subject = Subject { image: Some(image_id), tag: Some(tag_id), ..Subject::default() };
    record(conn, kind::TAG_DELETED, actor, now_micros(), subject, json!(tag)).await?;
    Ok(tag)
}
