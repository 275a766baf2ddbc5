//! The node inventory: each node's last report of its runtime's images, and its inventory jobs.

use diesel::prelude::*;
use image_core::{
    Error,
    inventory::{NodeInventory, RuntimeImage, RuntimeReport},
    job::InventoryPayload,
    store::JobId,
};

use super::to_json;
use crate::{
    conn::{Conn, RunQueryDsl, columns},
    error::{DbError, DbResult},
    models::{Micros, from_micros, now_micros},
    schema::{jobs, node_inventories},
};

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = node_inventories)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct NodeRow {
    name: String,
    runtime_name: Option<String>,
    runtime_version: Option<String>,
    last_report_at: Option<Micros>,
    last_attempt_at: Micros,
    last_error: Option<String>,
    interval_secs: i64,
    images: String,
}

impl NodeRow {
    fn into_domain(self) -> DbResult<NodeInventory> {
        let images: Vec<RuntimeImage> = serde_json::from_str(&self.images)
            .map_err(|e| DbError::Domain(Error::storage(format!("node {}: stored images: {e}", self.name))))?;
        Ok(NodeInventory {
            name: self.name,
            runtime_name: self.runtime_name,
            runtime_version: self.runtime_version,
            last_report_at: self.last_report_at.map(from_micros).transpose()?,
            last_attempt_at: from_micros(self.last_attempt_at)?,
            last_error: self.last_error,
            interval_secs: self.interval_secs,
            images,
        })
    }
}

/// Queues `node`'s inventory job, due now, unless one is queued or running.
pub(crate) async fn enqueue_inventory(conn: &mut Conn<'_>, node: &str) -> DbResult<bool> {
    let job_type = InventoryPayload::job_type(node);
    let waiting: i64 = jobs::table.filter(jobs::job_type.eq(&job_type)).count().get_result(conn).await?;
    if waiting > 0 {
        return Ok(false);
    }
    let payload = serde_json::to_value(InventoryPayload { node: node.to_owned() })
        .map_err(|e| DbError::Domain(Error::storage(e)))?;
    // One attempt: the next interval's job is the retry.
    super::queue::enqueue_job(conn, &job_type, &payload, 0, now_micros(), 1).await?;
    Ok(true)
}

pub(crate) async fn record_inventory(
    conn: &mut Conn<'_>,
    job: Option<(JobId, &str)>,
    node: &str,
    interval_secs: i64,
    report: Result<RuntimeReport, String>,
) -> DbResult<bool> {
    if node.is_empty() {
        return Err(Error::invalid("node", "must not be empty").into());
    }
    if interval_secs < 1 {
        return Err(Error::invalid("interval", format!("must be at least one second, got {interval_secs}")).into());
    }
    if let Some((id, worker)) = job {
        let ended =
            diesel::delete(jobs::table.find(id.get()).filter(jobs::lease_owner.eq(worker))).execute(conn).await?;
        if ended != 1 {
            return Ok(false);
        }
    }
    let now = now_micros();
    let existing: Option<String> =
        node_inventories::table.find(node).select(node_inventories::name).first(conn).await.optional()?;
    match report {
        Ok(report) => {
            let images = to_json(&report.images)?;
            if existing.is_some() {
                diesel::update(node_inventories::table.find(node))
                    .set((
                        node_inventories::runtime_name.eq(Some(&report.runtime_name)),
                        node_inventories::runtime_version.eq(Some(&report.runtime_version)),
                        node_inventories::last_report_at.eq(Some(now)),
                        node_inventories::last_attempt_at.eq(now),
                        node_inventories::last_error.eq(None::<String>),
                        node_inventories::interval_secs.eq(interval_secs),
                        node_inventories::images.eq(&images),
                    ))
                    .execute(conn)
                    .await?;
            } else {
                diesel::insert_into(node_inventories::table)
                    .values((
                        node_inventories::name.eq(node),
                        node_inventories::runtime_name.eq(Some(&report.runtime_name)),
                        node_inventories::runtime_version.eq(Some(&report.runtime_version)),
                        node_inventories::last_report_at.eq(Some(now)),
                        node_inventories::last_attempt_at.eq(now),
                        node_inventories::interval_secs.eq(interval_secs),
                        node_inventories::images.eq(&images),
                    ))
                    .execute(conn)
                    .await?;
            }
        }
        Err(reason) => {
            if existing.is_some() {
                diesel::update(node_inventories::table.find(node))
                    .set((
                        node_inventories::last_attempt_at.eq(now),
                        node_inventories::last_error.eq(Some(&reason)),
                        node_inventories::interval_secs.eq(interval_secs),
                    ))
                    .execute(conn)
                    .await?;
            } else {
                diesel::insert_into(node_inventories::table)
                    .values((
                        node_inventories::name.eq(node),
                        node_inventories::last_attempt_at.eq(now),
                        node_inventories::last_error.eq(Some(&reason)),
                        node_inventories::interval_secs.eq(interval_secs),
                        node_inventories::images.eq("[]"),
                    ))
                    .execute(conn)
                    .await?;
            }
        }
    }
    Ok(true)
}

pub(crate) async fn list_nodes(conn: &mut Conn<'_>) -> DbResult<Vec<NodeInventory>> {
    let rows: Vec<NodeRow> =
        node_inventories::table.select(columns::<NodeRow>()).order_by(node_inventories::name.asc()).load(conn).await?;
    rows.into_iter().map(NodeRow::into_domain).collect()
}

pub(crate) async fn get_node(conn: &mut Conn<'_>, name: &str) -> DbResult<NodeInventory> {
    let row: Option<NodeRow> =
        node_inventories::table.find(name).select(columns::<NodeRow>()).first(conn).await.optional()?;
    row.ok_or_else(|| Error::not_found("node", name))?.into_domain()
}
