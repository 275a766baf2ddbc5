//! What the metrics read (the queue's depth per job type, imports per state) and the catalog's generation.

use diesel::{
    dsl::{count_star, min},
    prelude::*,
};
use image_core::{import::ImportState, ops::QueueDepth};

use crate::{
    conn::{Conn, RunQueryDsl},
    error::DbResult,
    models::{Micros, from_micros},
    schema::{catalog_generation, imports, jobs},
};

/// The catalog's generation: raised by triggers with every change to images and tags.
pub(crate) async fn catalog_generation(conn: &mut Conn<'_>) -> DbResult<i64> {
    Ok(catalog_generation::table.find(1).select(catalog_generation::generation).first(conn).await?)
}

/// Jobs per type; a job is due when its time has come and no live lease holds it.
pub(crate) async fn queue_depths(conn: &mut Conn<'_>, now: Micros) -> DbResult<Vec<QueueDepth>> {
    let all: Vec<(String, i64)> =
        jobs::table.group_by(jobs::job_type).select((jobs::job_type, count_star())).load(conn).await?;
    let due: Vec<(String, i64, Option<Micros>)> = jobs::table
        .filter(jobs::run_at.le(now))
        .filter(jobs::lease_until.is_null().or(jobs::lease_until.lt(now)))
        .group_by(jobs::job_type)
        .select((jobs::job_type, count_star(), min(jobs::run_at)))
        .load(conn)
        .await?;
    let mut depths = Vec::with_capacity(all.len());
    for (job_type, jobs) in all {
        let (due, oldest) = match due.iter().find(|(t, ..)| *t == job_type) {
            Some((_, due, oldest)) => (*due, oldest.map(from_micros).transpose()?),
            None => (0, None),
        };
        depths.push(QueueDepth { job_type, jobs, due, oldest_due: oldest });
    }
    depths.sort_by(|a, b| a.job_type.cmp(&b.job_type));
    Ok(depths)
}

/// Import records per state, every state listed.
pub(crate) async fn import_counts(conn: &mut Conn<'_>) -> DbResult<Vec<(ImportState, i64)>> {
    let counts: Vec<(String, i64)> =
        imports::table.group_by(imports::state).select((imports::state, count_star())).load(conn).await?;
    Ok(ImportState::ALL
        .iter()
        .map(|state| {
            let n = counts.iter().find(|(s, _)| s == state.as_str()).map_or(0, |(_, n)| *n);
            (*state, n)
        })
        .collect())
}
