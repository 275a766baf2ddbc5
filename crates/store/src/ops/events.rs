//! Audit events: every change records one, on the connection of its transaction.

use diesel::prelude::*;
use image_core::{
    catalog::{ApprovalRequestId, ImageId, TagId},
    event::{AuditEvent, EventFilter},
    store::Listing,
};
use serde_json::{Value, json};

use crate::{
    conn::{Condition, Conn, RunQueryDsl, columns},
    error::DbResult,
    models::{EventRow, Micros, NewEventRow},
    schema::audit_events,
};

/// What an event is about.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Subject {
    pub(super) image: Option<ImageId>,
    pub(super) tag: Option<TagId>,
    pub(super) request: Option<ApprovalRequestId>,
}

pub(super) async fn record(
    conn: &mut Conn<'_>,
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
        image_id: subject.image.map(ImageId::get),
        tag_id: subject.tag.map(TagId::get),
        request_id: subject.request.map(ApprovalRequestId::get),
        details: details.to_string(),
    };
    diesel::insert_into(audit_events::table).values(row).execute(conn).await?;
    Ok(())
}

/// `{"before": …, "after": …, "changes": [the fields that differ, by name]}`; `updated_at` is no change of
/// its own. The names are sorted here, since the order of a JSON object's fields depends on serde_json's
/// features.
pub(super) fn update_details(before: Value, after: Value) -> Value {
    let mut changes: Vec<&String> = match (&before, &after) {
        (Value::Object(b), Value::Object(a)) => a
            .iter()
            .filter(|(field, value)| *field != "updated_at" && b.get(*field) != Some(*value))
            .map(|(f, _)| f)
            .collect(),
        _ => Vec::new(),
    };
    changes.sort_unstable();
    json!({ "before": before, "after": after, "changes": changes })
}

fn event_filter(filter: &EventFilter) -> Condition<'_, audit_events::table> {
    let mut condition = Condition::new();
    if let Some(event_type) = &filter.event_type {
        condition.push(audit_events::event_type.eq(event_type));
    }
    if let Some(image_id) = filter.image_id {
        condition.push(audit_events::image_id.eq(image_id.get()));
    }
    if let Some(actor) = &filter.actor {
        condition.push(audit_events::actor.eq(actor));
    }
    condition
}

pub(crate) async fn list_events(conn: &mut Conn<'_>, filter: &EventFilter) -> DbResult<Listing<AuditEvent>> {
    let total = audit_events::table.filter(event_filter(filter)).count().get_result(conn).await?;
    let rows: Vec<EventRow> = audit_events::table
        .filter(event_filter(filter))
        .select(columns::<EventRow>())
        .order((audit_events::occurred_at.desc(), audit_events::id.desc()))
        .limit(filter.page.limit())
        .offset(filter.page.offset())
        .load(conn)
        .await?;
    let items = rows.into_iter().map(EventRow::into_domain).collect::<DbResult<_>>()?;
    Ok(Listing { items, total })
}
