//! The scheduled refresh of vulnerability scans: catalog tags whose scan is `pending` get a read-only scan
//! job, unless one is queued for them already.

use std::collections::BTreeSet;

use diesel::prelude::*;
use image_core::{
    Digest, Reference,
    import::ImportState,
    job::{JobPayload, ScanPayload},
};

use crate::{
    conn::{Conn, RunQueryDsl},
    error::DbResult,
    models::now_micros,
    schema::{image_tags, images, imports, jobs},
};

/// The seed's word for a scan that has not finished.
const PENDING: &str = "pending";

/// Queues a read-only scan of the newest succeeded import behind each of at most `limit` catalog tags whose
/// scan is pending, skipping those with a scan job queued or running. Answers how many were queued.
pub(crate) async fn queue_pending_scans(conn: &mut Conn<'_>, limit: i64) -> DbResult<u64> {
    let pending: Vec<(String, String, String, String)> = image_tags::table
        .inner_join(images::table)
        .filter(image_tags::security_scan_status.eq(PENDING))
        .select((images::registry, images::namespace, images::image_name, image_tags::tag))
        .order(image_tags::id.asc())
        .limit(limit)
        .load(conn)
        .await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let queued: Vec<String> =
        jobs::table.filter(jobs::job_type.eq(ScanPayload::NAME)).select(jobs::payload).load(conn).await?;
    let mut waiting: BTreeSet<(String, String)> = queued
        .iter()
        .filter_map(|p| serde_json::from_str::<ScanPayload>(p).ok())
        .map(|p| (p.source.to_string(), p.digest.to_string()))
        .collect();
    let mut count = 0;
    for (registry, namespace, name, tag) in pending {
        let repository = if namespace.is_empty() { name } else { format!("{namespace}/{name}") };
        let imported: Vec<(String, String, Option<String>)> = imports::table
            .filter(imports::source_registry.eq(&registry))
            .filter(imports::source_repository.eq(&repository))
            .filter(imports::state.eq(ImportState::Succeeded.as_str()))
            .select((imports::source, imports::target_repository, imports::digest))
            .order(imports::id.desc())
            .load(conn)
            .await?;
        let newest = imported.into_iter().find_map(|(source, target_repository, digest)| {
            let source: Reference = source.parse().ok()?;
            let digest: Digest = digest?.parse().ok()?;
            (source.tag() == Some(tag.as_str())).then_some((source, target_repository, digest))
        });
        let Some((source, target_repository, digest)) = newest else { continue };
        if !waiting.insert((source.to_string(), digest.to_string())) {
            continue;
        }
        let payload = ScanPayload { source, repository: target_repository, digest, request: false };
        let payload =
            serde_json::to_value(&payload).map_err(|e| crate::error::DbError::Domain(image_core::Error::storage(e)))?;
        crate::ops::queue::enqueue_job(conn, ScanPayload::NAME, &payload, 0, now_micros(), ScanPayload::MAX_ATTEMPTS)
            .await?;
        count += 1;
    }
    Ok(count)
}
