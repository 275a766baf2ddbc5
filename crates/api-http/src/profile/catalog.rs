//! The catalog profile (seed 002) at `/catalog/api/v1`: approved images, their tags, approval requests,
//! the audit trail, and the admission check deployments ask before they run an image.
//!
//! Errors are `{"error": …, "message": …}`. Reads need a signed-in user; changes need an admin, except
//! asking for an approval, which any user may do.

use crate::routes::{Access, Routes};
use axum::{Json, body::Bytes, extract::State, http::StatusCode};
use image_core::{
    Error, Reference,
    catalog::{
        ApprovalRequest, ApprovalRequestFilter, ApprovalRequestId, ApprovalStatus, CatalogImage, Decision, ImageFilter,
        ImageId, ImageSummary, ImageUpdate, NewApprovalRequest, NewImage, NewTag, Page, Tag, TagId, TagUpdate,
    },
    event::{AuditEvent, EventFilter},
    rules::{self, Admission, Refusal},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    AppState,
    error::{ApiError, Plain},
    extract::{self, PathParams, param},
};

use super::plain::{AdminUser, ApiResult, Body, Path, Query, User};

pub(crate) fn routes() -> Routes {
    Routes::new("/catalog/api/v1")
        .get("/images", Access::SignedIn, list_images)
        .post("/images", Access::Admin, create_image)
        .get("/images/categories", Access::SignedIn, categories)
        .get("/images/{id}", Access::SignedIn, get_image)
        .put("/images/{id}", Access::Admin, update_image)
        .delete("/images/{id}", Access::Admin, delete_image)
        .post("/images/{id}/tags", Access::Admin, create_tag)
        .put("/images/{id}/tags/{tag_id}", Access::Admin, update_tag)
        .delete("/images/{id}/tags/{tag_id}", Access::Admin, delete_tag)
        .get("/approval-requests", Access::SignedIn, list_requests)
        .post("/approval-requests", Access::SignedIn, create_request)
        .get("/approval-requests/{id}", Access::SignedIn, get_request)
        .post("/approval-requests/{id}/approve", Access::Admin, approve_request)
        .post("/approval-requests/{id}/reject", Access::Admin, reject_request)
        .get("/events", Access::SignedIn, list_events)
        .post("/admission/check", Access::SignedIn, admission_check)
}

/// Query parameters arrive as text so that a bad value gets a message naming its parameter.
#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct ListQuery {
    status: Option<String>,
    category: Option<String>,
    search: Option<String>,
    /// Only images with a greater id: pass the last `id` of a page to get the next one. Any page is then
    /// as fast as the first, where `offset` walks every image it skips; `offset` counts from here.
    after_id: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

fn page(limit: Option<String>, offset: Option<String>) -> Result<Page, Error> {
    Page::new(param::int("limit", limit)?, param::int("offset", offset)?)
}

fn status(v: Option<String>) -> Result<Option<ApprovalStatus>, Error> {
    param::non_empty(v).map(|s| s.parse()).transpose()
}

#[derive(Serialize)]
struct ImageList {
    images: Vec<ImageSummary>,
    total: i64,
}

async fn list_images(
    State(s): State<AppState>,
    _: User,
    extract::Query(q, _): Query<ListQuery>,
) -> ApiResult<axum::response::Response> {
    let search = param::non_empty(q.search);
    if let Some(term) = &search
        && term.chars().count() > 200
    {
        return Err(Error::invalid("search", "at most 200 characters are allowed").into());
    }
    let filter = ImageFilter {
        status: status(q.status)?,
        category: param::non_empty(q.category),
        search,
        after: param::int("after_id", q.after_id)?.map(ImageId::new),
        page: page(q.limit, q.offset)?,
    };
    let params = format!("{filter:?}");
    s.json_answer("catalog.list_images", params, async {
        let listing = s.store.list_images(&filter).await?;
        ApiResult::Ok(ImageList { images: listing.items, total: listing.total })
    })
    .await
}

#[derive(Serialize)]
struct ImageDetails {
    #[serde(flatten)]
    image: CatalogImage,
    tags: Vec<Tag>,
}

async fn get_image(
    State(s): State<AppState>,
    _: User,
    PathParams(id, _): Path<ImageId>,
) -> ApiResult<axum::response::Response> {
    s.json_answer("catalog.get_image", id.to_string(), async {
        let image = s.store.get_image(id).await?;
        let tags = s.store.list_tags(id).await?;
        ApiResult::Ok(ImageDetails { image, tags })
    })
    .await
}

async fn categories(State(s): State<AppState>, _: User) -> ApiResult<axum::response::Response> {
    s.json_answer("catalog.categories", String::new(), async {
        let categories: Vec<Value> = s
            .store
            .categories()
            .await?
            .into_iter()
            .map(|(category, count)| json!({ "category": category, "count": count }))
            .collect();
        ApiResult::Ok(json!({ "categories": categories }))
    })
    .await
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateImage {
    image_name: String,
    registry: Option<String>,
    namespace: Option<String>,
    description: Option<String>,
    category: Option<String>,
    #[serde(default)]
    is_official: bool,
    /// `pending`, `approved`, `rejected` or `deprecated`; `approved` when absent.
    #[schemars(with = "Option<String>")]
    approval_status: Option<ApprovalStatus>,
}

async fn create_image(
    State(s): State<AppState>,
    admin: AdminUser,
    extract::Body(b, _): Body<CreateImage>,
) -> ApiResult<(StatusCode, Json<CatalogImage>)> {
    // An admin adding an image is approving it, unless they say otherwise.
    let image = NewImage::new(
        &b.image_name,
        b.registry.as_deref(),
        b.namespace.as_deref(),
        b.description,
        b.category,
        b.is_official,
        b.approval_status.unwrap_or(ApprovalStatus::Approved),
    )?;
    let image = s.store.create_image(image, &admin.user.username).await?;
    Ok((StatusCode::CREATED, Json(image)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateImage {
    #[serde(default, deserialize_with = "extract::double_option")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "extract::double_option")]
    category: Option<Option<String>>,
    #[schemars(with = "Option<String>")]
    approval_status: Option<ApprovalStatus>,
    is_official: Option<bool>,
}

async fn update_image(
    State(s): State<AppState>,
    admin: AdminUser,
    PathParams(id, _): Path<ImageId>,
    extract::Body(b, _): Body<UpdateImage>,
) -> ApiResult<Json<CatalogImage>> {
    let update = ImageUpdate {
        description: b.description,
        category: b.category,
        approval_status: b.approval_status,
        is_official: b.is_official,
    }
    .validated()?;
    if update.is_empty() {
        return Err(ApiError::bad_request(
            "nothing to update: send at least one of description, category, approval_status, is_official",
        )
        .into());
    }
    Ok(Json(s.store.update_image(id, update, &admin.user.username).await?))
}

async fn delete_image(
    State(s): State<AppState>,
    admin: AdminUser,
    PathParams(id, _): Path<ImageId>,
) -> ApiResult<Json<Value>> {
    let image = s.store.delete_image(id, &admin.user.username).await?;
    Ok(Json(json!({ "message": "Image deleted successfully", "image": image })))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTag {
    tag: String,
    /// `sha256:` and 64 hex digits.
    #[schemars(with = "Option<String>")]
    digest: Option<image_core::Digest>,
    size_bytes: Option<i64>,
    architecture: Option<String>,
    os: Option<String>,
    /// An RFC 3339 time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>")]
    pushed_at: Option<time::OffsetDateTime>,
    #[serde(default)]
    is_recommended: bool,
    #[serde(default)]
    is_deprecated: bool,
    security_scan_status: Option<String>,
    vulnerabilities_count: Option<i64>,
}

async fn create_tag(
    State(s): State<AppState>,
    admin: AdminUser,
    PathParams(image_id, _): Path<ImageId>,
    extract::Body(b, _): Body<CreateTag>,
) -> ApiResult<(StatusCode, Json<Tag>)> {
    let tag = NewTag::new(b.tag)?
        .with_digest(b.digest)
        .with_size_bytes(b.size_bytes)?
        .with_vulnerabilities_count(b.vulnerabilities_count)?
        .with_architecture(b.architecture)?
        .with_os(b.os)?
        .with_security_scan_status(b.security_scan_status)?
        .with_pushed_at(b.pushed_at)
        .with_recommended(b.is_recommended)
        .with_deprecated(b.is_deprecated);
    let tag = s.store.create_tag(image_id, tag, &admin.user.username).await?;
    Ok((StatusCode::CREATED, Json(tag)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateTag {
    #[serde(default, deserialize_with = "extract::double_option")]
    #[schemars(with = "Option<Option<String>>")]
    digest: Option<Option<image_core::Digest>>,
    #[serde(default, deserialize_with = "extract::double_option")]
    size_bytes: Option<Option<i64>>,
    #[serde(default, deserialize_with = "extract::double_option")]
    architecture: Option<Option<String>>,
    #[serde(default, deserialize_with = "extract::double_option")]
    os: Option<Option<String>>,
    is_recommended: Option<bool>,
    is_deprecated: Option<bool>,
    #[serde(default, deserialize_with = "extract::double_option")]
    security_scan_status: Option<Option<String>>,
    #[serde(default, deserialize_with = "extract::double_option")]
    vulnerabilities_count: Option<Option<i64>>,
}

async fn update_tag(
    State(s): State<AppState>,
    admin: AdminUser,
    PathParams((image_id, tag_id), _): Path<(ImageId, TagId)>,
    extract::Body(b, _): Body<UpdateTag>,
) -> ApiResult<Json<Tag>> {
    let update = TagUpdate {
        digest: b.digest,
        size_bytes: b.size_bytes,
        architecture: b.architecture,
        os: b.os,
        is_recommended: b.is_recommended,
        is_deprecated: b.is_deprecated,
        security_scan_status: b.security_scan_status,
        vulnerabilities_count: b.vulnerabilities_count,
    }
    .validated()?;
    if update.is_empty() {
        return Err(ApiError::bad_request("nothing to update: send at least one field of the tag").into());
    }
    Ok(Json(s.store.update_tag(image_id, tag_id, update, &admin.user.username).await?))
}

async fn delete_tag(
    State(s): State<AppState>,
    admin: AdminUser,
    PathParams((image_id, tag_id), _): Path<(ImageId, TagId)>,
) -> ApiResult<Json<Value>> {
    let tag = s.store.delete_tag(image_id, tag_id, &admin.user.username).await?;
    Ok(Json(json!({ "message": "Tag deleted successfully", "tag": tag })))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct RequestQuery {
    status: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

async fn list_requests(
    State(s): State<AppState>,
    _: User,
    extract::Query(q, _): Query<RequestQuery>,
) -> ApiResult<axum::response::Response> {
    let filter = ApprovalRequestFilter { status: status(q.status)?, page: page(q.limit, q.offset)? };
    s.json_answer("catalog.list_requests", format!("{filter:?}"), async {
        let listing = s.store.list_approval_requests(&filter).await?;
        ApiResult::Ok(json!({ "requests": listing.items, "total": listing.total }))
    })
    .await
}

async fn get_request(
    State(s): State<AppState>,
    _: User,
    PathParams(id, _): Path<ApprovalRequestId>,
) -> ApiResult<Json<ApprovalRequest>> {
    Ok(Json(s.store.get_approval_request(id).await?))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRequest {
    image_name: String,
    registry: Option<String>,
    namespace: Option<String>,
    tag: Option<String>,
    notes: Option<String>,
}

async fn create_request(
    State(s): State<AppState>,
    user: User,
    extract::Body(b, _): Body<CreateRequest>,
) -> ApiResult<(StatusCode, Json<ApprovalRequest>)> {
    let request =
        NewApprovalRequest::new(&b.image_name, b.registry.as_deref(), b.namespace.as_deref(), b.tag, b.notes)?;
    let request = s.store.create_approval_request(request, &user.user.username).await?;
    Ok((StatusCode::CREATED, Json(request)))
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApproveBody {
    notes: Option<String>,
    category: Option<String>,
    description: Option<String>,
}

async fn approve_request(
    State(s): State<AppState>,
    admin: AdminUser,
    PathParams(id, _): Path<ApprovalRequestId>,
    extract::OptionalBody(b, _): extract::OptionalBody<ApproveBody, Plain>,
) -> ApiResult<Json<Value>> {
    let decision =
        Decision::Approve { notes: b.notes, category: b.category, description: b.description }.validated()?;
    let (request, image) = s.store.decide_approval_request(id, decision, &admin.user.username).await?;
    Ok(Json(json!({ "message": "Request approved", "request": request, "image": image })))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RejectBody {
    reason: String,
    notes: Option<String>,
}

async fn reject_request(
    State(s): State<AppState>,
    admin: AdminUser,
    PathParams(id, _): Path<ApprovalRequestId>,
    extract::Body(b, _): Body<RejectBody>,
) -> ApiResult<Json<Value>> {
    let decision = Decision::Reject { reason: b.reason, notes: b.notes }.validated()?;
    let (request, _) = s.store.decide_approval_request(id, decision, &admin.user.username).await?;
    Ok(Json(json!({ "message": "Request rejected", "request": request })))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct EventQuery {
    event_type: Option<String>,
    image_id: Option<String>,
    actor: Option<String>,
    limit: Option<String>,
    offset: Option<String>,
}

#[derive(Serialize)]
struct EventList {
    events: Vec<AuditEvent>,
    total: i64,
}

async fn list_events(
    State(s): State<AppState>,
    _: User,
    extract::Query(q, _): Query<EventQuery>,
) -> ApiResult<axum::response::Response> {
    let filter = EventFilter {
        event_type: param::non_empty(q.event_type),
        image_id: param::int("image_id", q.image_id)?.map(ImageId::new),
        actor: param::non_empty(q.actor),
        page: page(q.limit, q.offset)?,
    };
    s.json_answer("catalog.list_events", format!("{filter:?}"), async {
        let listing = s.store.list_events(&filter).await?;
        ApiResult::Ok(EventList { events: listing.items, total: listing.total })
    })
    .await
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AdmissionBody {
    /// The reference a deployment is about to run, such as `redis:7-alpine`.
    image: String,
    /// When the image is not approved, file an approval request for it.
    #[serde(default)]
    request_approval: bool,
}

/// Answers "may this image run?": 200 when the image is approved and the tag is in its list,
/// 403 when the image is not approved, 404 when the tag is unknown — the seed's planned webhook check.
/// The admission check's yes.
#[derive(Serialize)]
struct Allowed<'a> {
    allowed: bool,
    image: &'a CatalogImage,
    tag: &'a Tag,
    warnings: Vec<String>,
}

async fn admission_check(
    State(s): State<AppState>,
    user: User,
    extract::Body(b, _): Body<AdmissionBody>,
) -> ApiResult<axum::response::Response> {
    let (generation, version) = s.admission.generation(s.store.as_ref()).await?;
    if let Some(answer) = s.admission.answer(generation, version, &b.image) {
        return Ok(crate::answers::json_bytes(answer));
    }
    let reference = Reference::parse(&b.image).map_err(|e| Error::invalid("image", e))?;
    let entry = s.admission.entry_at(s.store.as_ref(), generation, version, &reference).await?;
    let (image, tags) = (&entry.0, &entry.1);
    match rules::admit_under(image.as_ref(), tags, &reference, s.deny_severity) {
        Admission::Allowed { image, tag, warnings } => {
            let warnings: Vec<String> = warnings.iter().map(ToString::to_string).collect();
            let answer = serde_json::to_vec(&Allowed { allowed: true, image, tag, warnings })
                .map_err(|e| ApiError::internal("admission check", &e))?;
            let answer = Bytes::from(answer);
            s.admission.keep_answer(generation, b.image, answer.clone());
            Ok(crate::answers::json_bytes(answer))
        }
        Admission::Refused(Refusal::NotApproved) => {
            let mut message = "This image must be approved before deployment".to_owned();
            if b.request_approval {
                let notes = format!("requested by the admission check for {reference}");
                let request = super::request_approval(s.store.as_ref(), &reference, notes, &user.user.username).await?;
                message = format!("{message}; approval request {} was filed", request.id);
            }
            Err(ApiError::new(StatusCode::FORBIDDEN, "Image not approved", message).into())
        }
        Admission::Refused(Refusal::TagNotListed) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, "Tag not found", "This tag is not in the approved tags list")
                .into())
        }
        Admission::Refused(refusal @ Refusal::ScanFailed { .. }) => {
            Err(ApiError::new(StatusCode::FORBIDDEN, "Vulnerable image", format!("Refused: {refusal}")).into())
        }
    }
}
