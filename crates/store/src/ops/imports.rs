//! Imports, each with its job in the queue.
//!
//! Operations that touch both an import and its job lock the import first, then the job; claims and the
//! queue's own operations lock only the job. So two transactions never wait on each other in opposite
//! orders.

use diesel::prelude::*;
use image_core::{
    Digest, Error,
    catalog::{CatalogImage, Tag},
    import::{
        Artifact, AttemptOutcome, EnqueueOutcome, ImportFilter, ImportId, ImportJob, ImportOrder, ImportState,
        LayerProgress, LayerState, NewImport,
    },
    job::{ImportPayload, JobPayload},
    rules,
    store::{JobId, Listing},
};
use serde_json::{Value, json};

use super::{
    catalog::{image_label, insert_image, insert_tag, store_tag_update},
    events::{Subject, record},
    queue::{enqueue_job, requeue},
    sum_counts, to_json,
};
use crate::{
    conn::{Condition, Conn, Ordering, RunQueryDsl, columns},
    error::{DbError, DbResult, is_unique_violation},
    import_kind,
    models::{ImportProgress, ImportRow, JobRow, Micros, NewImportRow, TagRow, from_micros, now_micros, to_micros},
    schema::{image_tags, import_counts, imports, jobs},
};

/// `ImportState::Queued` and `ImportState::Running` as stored: the states of an import with work to do.
pub(super) const ACTIVE_STATES: [&str; 2] = ["queued", "running"];

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
    if let Some(holder) = find_target_holder(conn, import).await? {
        return Err(Error::conflict(format!(
            "{} already holds images imported from {holder}; one internal repository takes one source, so {source} \
             cannot be imported there",
            import.target.repository()
        ))
        .into());
    }
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

/// Another source whose import (queued, running or succeeded) lands in the same internal repository as
/// `import`'s target: a repository holds what one source has, so that the catalog's digests stay the ones
/// it shows.
async fn find_target_holder(conn: &mut Conn<'_>, import: &NewImport) -> DbResult<Option<String>> {
    let (source_registry, source_repository) = (import.source.registry(), import.source.repository());
    let holder: Option<(String, String)> = imports::table
        .filter(imports::target_registry.eq(import.target.registry()))
        .filter(imports::target_repository.eq(import.target.repository()))
        .filter(imports::state.eq_any(DEDUPE_STATES))
        .filter(imports::source_registry.ne(source_registry).or(imports::source_repository.ne(source_repository)))
        .select((imports::source_registry, imports::source_repository))
        .order(imports::id.asc())
        .first(conn)
        .await
        .optional()?;
    Ok(holder.map(|(registry, repository)| format!("{registry}/{repository}")))
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
    let payload = json!(ImportPayload { import_id: ImportId::new(created.id) });
    let job = enqueue_job(conn, ImportPayload::NAME, &payload, 0, now, import.max_attempts).await?;
    diesel::update(imports::table.find(created.id)).set(imports::job_id.eq(job.get())).execute(conn).await?;
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

/// How many imports the filter keeps: from `import_counts` (kept by triggers) when it filters by
/// readiness at most, else counted through the index of its tag or creator.
async fn count_imports(conn: &mut Conn<'_>, filter: &ImportFilter) -> DbResult<i64> {
    if filter.tag.is_some() || filter.created_by.is_some() {
        return Ok(imports::table.filter(import_filter(filter)).count().get_result(conn).await?);
    }
    let mut condition = Condition::<import_counts::table>::new();
    match filter.ready {
        Some(true) => condition.push(import_counts::state.eq(ImportState::Succeeded.as_str())),
        Some(false) => condition.push(import_counts::state.ne(ImportState::Succeeded.as_str())),
        None => {}
    }
    let total: Option<i64> =
        import_counts::table.filter(condition).select(sum_counts("import_count")).get_result(conn).await?;
    Ok(total.unwrap_or(0))
}

/// Ordered by the filter's field, then by id, both ascending or both descending.
pub(crate) async fn list_imports(conn: &mut Conn<'_>, filter: &ImportFilter) -> DbResult<Listing<ImportJob>> {
    let total = count_imports(conn, filter).await?;
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
        .limit(filter.page.limit())
        .offset(filter.page.offset())
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
    if import.job_id != Some(job.get()) || !parse_state(&import)?.is_active() {
        return Ok(None);
    }
    let held = conn.dialect().lock_held_job(job.get(), worker).await?;
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
            diesel::update(jobs::table.find(job.get())).set(requeue(error, to_micros(*retry_at))).execute(conn).await?;
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
    diesel::update(imports::table.find(import.id.get()))
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
    diesel::delete(jobs::table.find(job.get())).execute(conn).await?;
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
        .filter(image_tags::image_id.eq(image.id.get()))
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
    diesel::update(imports::table.find(import.id.get()))
        .set((
            imports::state.eq(ImportState::Failed.as_str()),
            imports::finished_at.eq(now),
            imports::updated_at.eq(now),
            imports::error.eq(Some(error)),
            imports::job_id.eq(None::<i64>),
        ))
        .execute(conn)
        .await?;
    diesel::delete(jobs::table.find(job.get())).execute(conn).await?;
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

/// Records an artifact pushed straight to the internal registry as a succeeded import with no job; finished
/// records of the same target with another digest go, since the tag no longer points at what they copied.
pub(crate) async fn record_registry_push(
    conn: &mut Conn<'_>,
    push: &image_core::import::RegistryPush,
    actor: &str,
) -> DbResult<Option<ImportJob>> {
    let target = push.target.to_string();
    let same_target: Vec<(i64, String, Option<String>)> = imports::table
        .filter(imports::target.eq(&target))
        .select((imports::id, imports::state, imports::digest))
        .load(conn)
        .await?;
    let known = same_target.iter().any(|(_, state, digest)| {
        state == ImportState::Succeeded.as_str() && digest.as_deref() == Some(push.digest.as_str())
    });
    if known {
        return Ok(None);
    }
    for (id, state, _) in &same_target {
        if !ACTIVE_STATES.contains(&state.as_str()) {
            delete_import(conn, *id, actor).await?;
        }
    }
    let now = now_micros();
    let row = NewImportRow {
        source: push.source.to_string(),
        target: target.clone(),
        source_registry: push.source.registry(),
        source_repository: push.source.repository(),
        target_registry: push.target.registry(),
        target_repository: push.target.repository(),
        target_tag: push.target.tag(),
        platforms: to_json(&Vec::<image_core::import::Platform>::new())?,
        state: ImportState::Succeeded.as_str(),
        max_attempts: 1,
        timeout_secs: NewImport::DEFAULT_TIMEOUT_SECS,
        description: Some("pushed to the internal registry directly"),
        created_by: actor,
        created_at: now,
        updated_at: now,
        registry_secret_namespace: None,
        registry_secret_name: None,
    };
    let id: i64 = diesel::insert_into(imports::table).values(row).returning(imports::id).get_result(conn).await?;
    diesel::update(imports::table.find(id))
        .set((
            imports::finished_at.eq(now),
            imports::digest.eq(push.digest.as_str()),
            imports::artifacts.eq(to_json(&push.artifacts)?),
        ))
        .execute(conn)
        .await?;
    let recorded = find_import(conn, id).await?;
    let mut details = import_details(&recorded);
    details["digest"] = json!(push.digest.as_str());
    record(conn, import_kind::RECORDED, actor, now, Subject::default(), details).await?;
    Ok(Some(recorded))
}

/// Deletes the finished imports into `repository` of `registry` with `digest` (and target tag `tag`, when
/// given), each with `image.import.deleted`.
pub(crate) async fn forget_registry_artifact(
    conn: &mut Conn<'_>,
    registry: &str,
    repository: &str,
    tag: Option<&str>,
    digest: &Digest,
    actor: &str,
) -> DbResult<u64> {
    let found: Vec<(i64, String, Option<String>)> = imports::table
        .filter(imports::target_registry.eq(registry))
        .filter(imports::target_repository.eq(repository))
        .filter(imports::digest.eq(digest.as_str()))
        .select((imports::id, imports::state, imports::target_tag))
        .load(conn)
        .await?;
    let mut deleted = 0;
    for (id, state, target_tag) in found {
        let tag_matches = tag.is_none_or(|t| target_tag.as_deref() == Some(t));
        if tag_matches && !ACTIVE_STATES.contains(&state.as_str()) {
            delete_import(conn, id, actor).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}
