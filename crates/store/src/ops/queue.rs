//! The job queue: a `jobs` table whose rows workers lease.

use std::time::Duration;

use diesel::{dsl::count_star, prelude::*};
use image_core::{
    Error,
    store::{ClaimedJob, JobId},
};
use serde_json::Value;

use crate::{
    conn::{Conn, RunQueryDsl, columns},
    error::DbResult,
    models::{JobRow, Micros, NewJobRow, now_micros},
    schema::jobs,
};

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
    let id: i64 = diesel::insert_into(jobs::table).values(row).returning(jobs::id).get_result(conn).await?;
    if run_at <= now {
        conn.dialect().notify_job_queued().await?;
    }
    Ok(JobId::new(id))
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
    let changed = diesel::update(jobs::table.find(id.get()).filter(jobs::lease_owner.eq(worker)))
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
    let changed = diesel::update(jobs::table.find(id.get()).filter(jobs::lease_owner.eq(worker)))
        .set(requeue(error, run_at))
        .execute(conn)
        .await?;
    Ok(changed == 1)
}

/// The columns that put a job back in the queue.
#[allow(clippy::type_complexity)]
pub(super) fn requeue(
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
    let deleted = diesel::delete(jobs::table.find(id.get()).filter(jobs::lease_owner.eq(worker))).execute(conn).await?;
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

/// Ends the lease now; the job is due for the next claim, which counts the next attempt.
pub(crate) async fn release_job(conn: &mut Conn<'_>, id: JobId, worker: &str) -> DbResult<bool> {
    let changed = diesel::update(jobs::table.find(id.get()).filter(jobs::lease_owner.eq(worker)))
        .set(jobs::lease_until.eq(now_micros() - 1))
        .execute(conn)
        .await?;
    Ok(changed == 1)
}
