//! The kube-style resources: registry secrets and repositories.
//!
//! Operations on both lock the registry secret before its repositories, and a repository before its sync
//! job; nothing locks a job and then a repository (repositories.job_id has no foreign key, so finishing a
//! job touches only the job).

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;
use image_core::{
    Digest, Error, Reference,
    catalog::Page,
    catalog::Tag,
    job::{JobPayload, SyncPayload},
    kube::{
        NewRegistrySecret, NewRepository, RegistrySecret, Repository, RepositoryId, Secret, SyncStatus, SyncedManifest,
        VerifyStatus,
    },
    store::{JobId, Listing},
};
use serde_json::{Value, json};

use super::{
    catalog::store_tag_update,
    escape_like,
    events::{Subject, record},
    lower, lower_nullable,
    queue::{complete_job, enqueue_job},
    to_json,
};
use crate::{
    conn::{Condition, Conn, RunQueryDsl, columns},
    crypto::Sealer,
    error::{DbResult, on_unique},
    kube_kind,
    models::{
        Micros, NewRegistrySecretRow, NewRepositoryRow, RegistrySecretRow, RepositoryRow, TagRow, from_micros,
        now_micros, sync_status_str, to_secs,
    },
    schema::{image_tags, jobs, registry_secrets, repositories},
};

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
/// A page of registry secrets as stored, passwords sealed, and how many match; `RegistrySecretRow::into_domain`
/// opens them.
pub(crate) async fn list_registry_secrets(
    conn: &mut Conn<'_>,
    namespace: Option<&str>,
    search: Option<&str>,
    page: Page,
) -> DbResult<(Vec<RegistrySecretRow>, i64)> {
    let total =
        registry_secrets::table.filter(registry_secret_filter(namespace, search)).count().get_result(conn).await?;
    let rows: Vec<RegistrySecretRow> = registry_secrets::table
        .filter(registry_secret_filter(namespace, search))
        .select(columns::<RegistrySecretRow>())
        .order((registry_secrets::namespace.asc(), registry_secrets::name.asc()))
        .limit(page.limit())
        .offset(page.offset())
        .load(conn)
        .await?;
    Ok((rows, total))
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
    diesel::delete(registry_secrets::table.find(secret.id.get())).execute(conn).await?;
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
            .map_err(|_| Error::invalid("retry_count", "is too large"))?,
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
        .limit(page.limit())
        .offset(page.offset())
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
    diesel::delete(repositories::table.find(repository.id.get())).execute(conn).await?;
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
    let payload = json!(SyncPayload { repository_id: RepositoryId::new(row.id) });
    let job = enqueue_job(conn, SyncPayload::NAME, &payload, 0, now, row.retry_count.saturating_add(1)).await?;
    diesel::update(repositories::table.find(row.id))
        .set((
            repositories::job_id.eq(job.get()),
            repositories::next_sync_at.eq(next_sync_at),
            repositories::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    Ok(job)
}

/// Of the jobs `ids`, those that exist.
async fn existing_jobs(conn: &mut Conn<'_>, ids: &[i64]) -> DbResult<HashSet<i64>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    Ok(jobs::table.filter(jobs::id.eq_any(ids)).select(jobs::id).load::<i64>(conn).await?.into_iter().collect())
}

/// Queues a sync for every repository due at `now` without a job, each due again one interval after `now`.
pub(crate) async fn enqueue_due_syncs(conn: &mut Conn<'_>, now: Micros) -> DbResult<usize> {
    let due = conn.dialect().lock_due_repositories(now).await?;
    // Checked again with the rows held: a job another scheduler committed just before is seen now.
    let job_ids: Vec<i64> = due.iter().filter_map(|r| r.job_id).collect();
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
    let held = diesel::dsl::exists(jobs::table.find(job.get()).filter(jobs::lease_owner.eq(worker)));
    let target = repositories::table.find(id).filter(repositories::job_id.eq(job.get())).filter(held);
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
    if changed == 1
        && status == SyncStatus::Success
        && let Some(digest) = manifest.and_then(|m| m.digest.as_deref())
    {
        record_synced_digest(conn, id, digest, manifest.and_then(|m| m.size), now).await?;
    }
    if matches!(status, SyncStatus::Success | SyncStatus::Failed) {
        // Also when the repository has moved on to another job: this one is then an orphan.
        complete_job(conn, job, worker).await?;
    }
    Ok(changed == 1)
}

/// A sync lands where an import of the same source does, so when the catalog lists the synced tag with
/// another digest, the catalog's tag takes the new one, as an audit event by the repository: the internal
/// registry never serves a digest for a catalog tag that the catalog does not show.
async fn record_synced_digest(
    conn: &mut Conn<'_>,
    id: i64,
    digest: &str,
    size: Option<u64>,
    now: Micros,
) -> DbResult<()> {
    let row: RepositoryRow = repositories::table.find(id).select(columns::<RepositoryRow>()).first(conn).await?;
    let Some(domain) = registry_domain(conn, &row.registry_ref_namespace, &row.registry_ref_name).await? else {
        return Ok(());
    };
    let (Ok(source), Ok(digest)) =
        (Reference::new(&domain, &row.repository, Some(&row.tag), None), digest.parse::<Digest>())
    else {
        return Ok(());
    };
    let (registry, namespace) = (source.registry(), source.namespace().unwrap_or(""));
    let Some(image) = conn.dialect().lock_image_named(registry, namespace, source.name()).await? else {
        return Ok(());
    };
    let found: Option<TagRow> = image_tags::table
        .filter(image_tags::image_id.eq(image.id))
        .filter(image_tags::tag.eq(&row.tag))
        .select(columns::<TagRow>())
        .first(conn)
        .await
        .optional()?;
    let Some(before) = found.map(TagRow::into_domain).transpose()? else { return Ok(()) };
    if before.digest.as_ref() == Some(&digest) {
        return Ok(());
    }
    let after = Tag {
        digest: Some(digest),
        size_bytes: size.map(|s| i64::try_from(s).unwrap_or(i64::MAX)).or(before.size_bytes),
        pushed_at: Some(from_micros(now)?),
        updated_at: from_micros(now)?,
        ..before.clone()
    };
    let actor = format!("repository {}", kube_id(&row.namespace, &row.name));
    store_tag_update(conn, &before, &after, &actor, now).await
}

/// `record_sync` with `Syncing` and `message`, and the job's requeue, both or neither.
pub(crate) async fn retry_sync(
    conn: &mut Conn<'_>,
    id: i64,
    job: JobId,
    worker: &str,
    message: &str,
    error: &str,
    run_at: Micros,
) -> DbResult<bool> {
    if !record_sync(conn, id, job, worker, SyncStatus::Syncing, Some(message), None).await? {
        return Ok(false);
    }
    // The repository's row is locked by the update above, so the job is still this worker's.
    super::queue::retry_job(conn, job, worker, error, run_at).await
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
