//! The catalog's pages: the list with search and filters, an image with its tags and audit trail, and
//! an admin's forms to add, edit and delete images and mark a tag recommended.

use askama::Template;
use axum::extract::State;
use image_core::{
    Error,
    catalog::{ApprovalStatus, CatalogImage, ImageFilter, ImageId, ImageUpdate, NewImage, Page, Tag, TagId, TagUpdate},
    event::EventFilter,
};
use serde::Deserialize;

use super::{
    form::Form,
    page::{AdminCaller, Caller, Nav, PageResult, Path, Query, html, see, when, when_opt},
};
use crate::extract::PathParams;
use crate::{AppState, extract::param};

/// Images on one page of the list.
const PAGE_SIZE: i64 = 50;

#[derive(Deserialize)]
pub(super) struct ListQuery {
    search: Option<String>,
    status: Option<String>,
    category: Option<String>,
    offset: Option<String>,
}

struct ImageRow {
    id: i64,
    name: String,
    category: String,
    status: &'static str,
    tag_count: i64,
    description: String,
}

#[derive(Template)]
#[template(path = "console/images.html")]
struct ImagesView {
    nav: Nav,
    rows: Vec<ImageRow>,
    total: i64,
    search: String,
    status: String,
    category: String,
    categories: Vec<(String, i64)>,
    statuses: [&'static str; 3],
    previous: Option<String>,
    next: Option<String>,
}

/// The text a registry, namespace and name read as: `docker.io/library/redis`.
pub(super) fn full_name(image: &CatalogImage) -> String {
    [image.registry.as_str(), image.namespace.as_str(), image.image_name.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/")
}

/// `GET /console/images`: the catalog, searched and filtered as the catalog API's list is.
pub(super) async fn list(
    State(s): State<AppState>,
    caller: Caller,
    crate::extract::Query(q, _): Query<ListQuery>,
) -> PageResult {
    let search = param::non_empty(q.search);
    if let Some(term) = &search
        && term.chars().count() > 200
    {
        return Err(Error::invalid("search", "at most 200 characters are allowed").into());
    }
    let status = param::non_empty(q.status.clone()).map(|s| s.parse::<ApprovalStatus>()).transpose()?;
    let offset = param::int("offset", q.offset)?.unwrap_or(0);
    let filter = ImageFilter {
        status,
        category: param::non_empty(q.category.clone()),
        search: search.clone(),
        after: None,
        page: Page::new(Some(PAGE_SIZE), Some(offset))?,
    };
    let listing = s.store.list_images(&filter).await?;
    let rows = listing
        .items
        .into_iter()
        .map(|summary| ImageRow {
            id: summary.image.id.get(),
            name: full_name(&summary.image),
            category: summary.image.category.clone().unwrap_or_default(),
            status: summary.image.approval_status.as_str(),
            tag_count: summary.tag_count,
            description: summary.image.description.clone().unwrap_or_default(),
        })
        .collect();
    let link = |offset: i64| {
        let query = [
            ("search", search.clone().unwrap_or_default()),
            ("status", q.status.clone().unwrap_or_default()),
            ("category", q.category.clone().unwrap_or_default()),
            ("offset", offset.to_string()),
        ];
        format!("/console/images?{}", serde_urlencoded::to_string(query).unwrap_or_default())
    };
    html(ImagesView {
        nav: Nav::new(&caller.user, "images"),
        rows,
        total: listing.total,
        search: search.clone().unwrap_or_default(),
        status: q.status.clone().unwrap_or_default(),
        category: q.category.clone().unwrap_or_default(),
        categories: s.store.categories().await?,
        statuses: ApprovalStatus::ALL.map(ApprovalStatus::as_str),
        previous: (offset > 0).then(|| link((offset - PAGE_SIZE).max(0))),
        next: (offset + PAGE_SIZE < listing.total).then(|| link(offset + PAGE_SIZE)),
    })
}

struct TagRow {
    id: i64,
    tag: String,
    recommended: bool,
    deprecated: bool,
    scan: String,
    vulnerabilities: String,
    digest: String,
    platform: String,
    size: String,
    pushed: String,
}

impl From<Tag> for TagRow {
    fn from(t: Tag) -> TagRow {
        let platform = match (t.os.as_deref(), t.architecture.as_deref()) {
            (Some(os), Some(arch)) => format!("{os}/{arch}"),
            (None, Some(arch)) => arch.to_owned(),
            (Some(os), None) => os.to_owned(),
            (None, None) => "–".to_owned(),
        };
        TagRow {
            id: t.id.get(),
            tag: t.tag,
            recommended: t.is_recommended,
            deprecated: t.is_deprecated,
            scan: t.security_scan_status.unwrap_or_else(|| "not scanned".to_owned()),
            vulnerabilities: t.vulnerabilities_count.map_or_else(|| "–".to_owned(), |n| n.to_string()),
            digest: t.digest.map(|d| d.to_string()).unwrap_or_else(|| "–".to_owned()),
            platform,
            size: t.size_bytes.map_or_else(|| "–".to_owned(), |b| super::page::size(b.max(0) as u64)),
            pushed: when_opt(t.pushed_at),
        }
    }
}

struct EventRow {
    at: String,
    actor: String,
    event_type: String,
    details: String,
}

/// What an audit event's details say, short: the fields a change changed, or the details themselves.
fn event_details(details: &serde_json::Value) -> String {
    if let Some(changes) = details.get("changes").and_then(|c| c.as_array()) {
        let names: Vec<&str> = changes.iter().filter_map(|c| c.as_str()).collect();
        return format!("changed {}", names.join(", "));
    }
    if details.is_null() || details.as_object().is_some_and(|o| o.is_empty()) {
        return String::new();
    }
    let text = details.to_string();
    match text.char_indices().nth(300) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

#[derive(Template)]
#[template(path = "console/image.html")]
struct ImageView {
    nav: Nav,
    id: i64,
    name: String,
    status: &'static str,
    category: String,
    description: String,
    official: bool,
    approved: String,
    created: String,
    tags: Vec<TagRow>,
    events: Vec<EventRow>,
}

/// `GET /console/images/{id}`: an image, its tags and its audit trail, newest first.
pub(super) async fn show(State(s): State<AppState>, caller: Caller, PathParams(id, _): Path<ImageId>) -> PageResult {
    let image = s.store.get_image(id).await?;
    let tags = s.store.list_tags(id).await?;
    let events = s
        .store
        .list_events(&EventFilter { image_id: Some(id), page: Page::new(Some(50), None)?, ..Default::default() })
        .await?;
    let approved = match (&image.approved_by, image.approved_at) {
        (Some(by), Some(at)) => format!("by {by}, {}", when(at)),
        (Some(by), None) => format!("by {by}"),
        _ => String::new(),
    };
    html(ImageView {
        nav: Nav::new(&caller.user, "images"),
        id: image.id.get(),
        name: full_name(&image),
        status: image.approval_status.as_str(),
        category: image.category.clone().unwrap_or_default(),
        description: image.description.clone().unwrap_or_default(),
        official: image.is_official,
        approved,
        created: when(image.created_at),
        tags: tags.into_iter().map(TagRow::from).collect(),
        events: events
            .items
            .into_iter()
            .map(|e| EventRow {
                at: when(e.occurred_at),
                actor: e.actor,
                event_type: e.event_type,
                details: event_details(&e.details),
            })
            .collect(),
    })
}

#[derive(Template)]
#[template(path = "console/image_form.html")]
struct ImageFormView {
    nav: Nav,
    /// The image being edited; none for a new one.
    id: Option<i64>,
    name: String,
    description: String,
    category: String,
    status: String,
    official: bool,
    statuses: [&'static str; 3],
}

/// `GET /console/images/new`: the form for a new image.
pub(super) async fn new_form(admin: AdminCaller) -> PageResult {
    html(ImageFormView {
        nav: Nav::new(&admin.user, "images"),
        id: None,
        name: String::new(),
        description: String::new(),
        category: String::new(),
        status: "approved".into(),
        official: false,
        statuses: ApprovalStatus::ALL.map(ApprovalStatus::as_str),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewImageForm {
    image_name: String,
    #[serde(default)]
    registry: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    category: String,
    approval_status: ApprovalStatus,
    is_official: Option<String>,
}

fn text(v: String) -> Option<String> {
    Some(v.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `POST /console/images`: adds an image, then shows it.
pub(super) async fn create(State(s): State<AppState>, admin: AdminCaller, Form(f): Form<NewImageForm>) -> PageResult {
    let registry = text(f.registry);
    let namespace = text(f.namespace);
    let image = NewImage::new(
        f.image_name.trim(),
        registry.as_deref(),
        namespace.as_deref(),
        text(f.description),
        text(f.category),
        f.is_official.is_some(),
        f.approval_status,
    )?;
    let image = s.store.create_image(image, &admin.user.username).await?;
    see(format!("/console/images/{}", image.id))
}

/// `GET /console/images/{id}/edit`: the form that changes an image.
pub(super) async fn edit_form(
    State(s): State<AppState>,
    admin: AdminCaller,
    PathParams(id, _): Path<ImageId>,
) -> PageResult {
    let image = s.store.get_image(id).await?;
    html(ImageFormView {
        nav: Nav::new(&admin.user, "images"),
        id: Some(image.id.get()),
        name: full_name(&image),
        description: image.description.clone().unwrap_or_default(),
        category: image.category.clone().unwrap_or_default(),
        status: image.approval_status.as_str().to_owned(),
        official: image.is_official,
        statuses: ApprovalStatus::ALL.map(ApprovalStatus::as_str),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateImageForm {
    #[serde(default)]
    description: String,
    #[serde(default)]
    category: String,
    approval_status: ApprovalStatus,
    is_official: Option<String>,
}

/// `POST /console/images/{id}`: changes an image; an empty field clears it.
pub(super) async fn update(
    State(s): State<AppState>,
    admin: AdminCaller,
    PathParams(id, _): Path<ImageId>,
    Form(f): Form<UpdateImageForm>,
) -> PageResult {
    let update = ImageUpdate {
        description: Some(text(f.description)),
        category: Some(text(f.category)),
        approval_status: Some(f.approval_status),
        is_official: Some(f.is_official.is_some()),
    }
    .validated()?;
    s.store.update_image(id, update, &admin.user.username).await?;
    see(format!("/console/images/{id}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Confirm {}

/// `POST /console/images/{id}/delete`: deletes an image with its tags, then shows the catalog.
pub(super) async fn delete(
    State(s): State<AppState>,
    admin: AdminCaller,
    PathParams(id, _): Path<ImageId>,
    Form(Confirm {}): Form<Confirm>,
) -> PageResult {
    s.store.delete_image(id, &admin.user.username).await?;
    see("/console/images")
}

/// `POST /console/images/{id}/tags/{tag_id}/recommend`: marks a tag recommended (unmarking the image's
/// others, as the catalog does).
pub(super) async fn recommend(
    State(s): State<AppState>,
    admin: AdminCaller,
    PathParams((id, tag_id), _): Path<(ImageId, TagId)>,
    Form(Confirm {}): Form<Confirm>,
) -> PageResult {
    let update = TagUpdate { is_recommended: Some(true), ..TagUpdate::default() }.validated()?;
    s.store.update_tag(id, tag_id, update, &admin.user.username).await?;
    see(format!("/console/images/{id}"))
}
