//! Retention: deleting finished imports and old audit events in small batches.
//!
//! Each batch is one short transaction of at most `batch` rows, found through an index on the row's end
//! time (`imports_finished`, a partial index over finished imports, and `audit_events_occurred_at`), so no
//! statement scans a table or holds its locks for long; on SQLite the writer lock is released between
//! batches, so requests' writes go in between.

use diesel::prelude::*;
use image_core::{
    import::ImportState,
    job::{JobPayload, RetentionPayload},
};

use crate::{
    conn::{Conn, RunQueryDsl},
    error::{DbError, DbResult},
    models::{Micros, now_micros},
    schema::{audit_events, imports, jobs},
};

/// The states an import record ends in; only these are pruned.
const FINISHED: [&str; 3] =
    [ImportState::Succeeded.as_str(), ImportState::Failed.as_str(), ImportState::Canceled.as_str()];

/// Deletes at most `batch` import records that finished before `before`, oldest first.
pub(crate) async fn prune_imports(conn: &mut Conn<'_>, before: Micros, batch: i64) -> DbResult<usize> {
    let ids: Vec<i64> = imports::table
        .filter(imports::state.eq_any(FINISHED))
        .filter(imports::finished_at.lt(before))
        .order_by(imports::finished_at.asc())
        .select(imports::id)
        .limit(batch)
        .load(conn)
        .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    // The state is checked again: a record is never removed unless it is finished.
    Ok(diesel::delete(imports::table.filter(imports::id.eq_any(&ids)).filter(imports::state.eq_any(FINISHED)))
        .execute(conn)
        .await?)
}

/// Deletes at most `batch` audit events that occurred before `before`, oldest first.
pub(crate) async fn prune_events(conn: &mut Conn<'_>, before: Micros, batch: i64) -> DbResult<usize> {
    let ids: Vec<i64> = audit_events::table
        .filter(audit_events::occurred_at.lt(before))
        .order_by(audit_events::occurred_at.asc())
        .select(audit_events::id)
        .limit(batch)
        .load(conn)
        .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(diesel::delete(audit_events::table.filter(audit_events::id.eq_any(&ids))).execute(conn).await?)
}

/// Queues one retention job due now, unless one is queued or running. Two servers racing here both see
/// none; the partial unique index `jobs_one_retention` refuses the second insert, which the caller takes
/// as "queued already".
pub(crate) async fn queue_retention(conn: &mut Conn<'_>, payload: &RetentionPayload) -> DbResult<bool> {
    let name = <RetentionPayload as JobPayload>::NAME;
    let queued: i64 = jobs::table.filter(jobs::job_type.eq(name)).count().get_result(conn).await?;
    if queued > 0 {
        return Ok(false);
    }
    let payload = serde_json::to_value(payload).map_err(|e| DbError::Domain(image_core::Error::storage(e)))?;
    crate::ops::queue::enqueue_job(conn, name, &payload, -10, now_micros(), 3).await?;
    Ok(true)
}
