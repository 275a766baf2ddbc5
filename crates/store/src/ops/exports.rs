//! Export records.

use diesel::prelude::*;
use image_core::{
    Error,
    catalog::Page,
    event::kind,
    import::{ExportId, ExportPhase, ExportRecord},
    store::Listing,
};
use serde_json::json;

use super::events::{Subject, record};
use crate::{
    conn::{Condition, Conn, RunQueryDsl, columns},
    error::DbResult,
    models::{ExportRow, NewExportRow, now_micros},
    schema::exports,
};

/// Stores a new record; its id and creation time are the store's.
pub(crate) async fn create_export(conn: &mut Conn<'_>, export: &ExportRecord) -> DbResult<ExportRecord> {
    let row = NewExportRow {
        registry_host: &export.registry_host,
        repository: &export.repository,
        tag: &export.tag,
        source: export.source.as_deref(),
        description: export.description.as_deref(),
        created_by: &export.created_by,
        phase: export.phase.as_str(),
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
    id: ExportId,
    phase: ExportPhase,
    actor: &str,
    actor_is_admin: bool,
) -> DbResult<ExportRecord> {
    let before: ExportRow = exports::table
        .find(id.get())
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
    let row: Option<ExportRow> = diesel::update(exports::table.find(id.get()))
        .set(exports::phase.eq(phase.as_str()))
        .returning(columns::<ExportRow>())
        .get_result::<ExportRow>(conn)
        .await
        .optional()?;
    row.ok_or_else(|| Error::not_found("export", id))?.into_domain()
}

fn export_filter(ready: Option<bool>, created_by: Option<&str>) -> Condition<'_, exports::table> {
    let mut condition = Condition::new();
    match ready {
        Some(true) => condition.push(exports::phase.eq(ExportPhase::Succeeded.as_str())),
        Some(false) => condition.push(exports::phase.ne(ExportPhase::Succeeded.as_str())),
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
        .limit(page.limit())
        .offset(page.offset())
        .load(conn)
        .await?;
    let items = rows.into_iter().map(ExportRow::into_domain).collect::<DbResult<_>>()?;
    Ok(Listing { items, total })
}
