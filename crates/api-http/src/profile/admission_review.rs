//! The Kubernetes admission webhook: `POST /api/v1/admission/review` takes an `admission.k8s.io/v1`
//! `AdmissionReview` and answers one with its `response`.
//!
//! Pods and the workload kinds that carry a pod template (Deployment, StatefulSet, DaemonSet, ReplicaSet,
//! ReplicationController, Job, and CronJob's `jobTemplate`) have every container, init container and
//! ephemeral container image decided by [`image_core::rules::admit_under`], through the server's cached
//! admission entries: the decision of the catalog's admission check and of the built-in registry's gate.
//! An image of the internal registry is decided as the source it was imported from; an image given by
//! digest alone is decided by the catalog tag with that digest, or else by the tag of a succeeded import
//! that brought that digest (the index or one of its platforms).
//!
//! `DELETE` and `CONNECT` are allowed unread; a kind without a pod template is allowed with a warning (the
//! webhook configuration's rules decide what is sent). A refusal is `allowed: false` with a 403 `status`
//! whose `message` names each refused image and why, and whose `details.causes` give one entry per image.
//! A review that is not one is a 400 in the `{"error", "message"}` format.

use axum::{Json, extract::State};
use image_core::{
    Digest, Error, Reference,
    catalog::Page,
    import::{ImportFilter, ImportOrder},
    rules::{Admission, Refusal},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::routes::{Access, Routes};

use super::plain::{ApiResult, Body, User};

const API_VERSION: &str = "admission.k8s.io/v1";

pub(crate) fn routes() -> Routes {
    Routes::new("/api/v1").post("/admission/review", Access::SignedIn, review)
}

#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct Review {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    request: Option<ReviewRequest>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct ReviewRequest {
    uid: String,
    kind: GroupVersionKind,
    operation: String,
    #[serde(default)]
    object: Option<Value>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct GroupVersionKind {
    #[serde(default)]
    group: String,
    kind: String,
}

/// Where a kind keeps its pod spec, as the path of fields from the object.
fn pod_spec_path(group: &str, kind: &str) -> Option<&'static [&'static str]> {
    Some(match (group, kind) {
        ("", "Pod") => &["spec"],
        ("", "ReplicationController")
        | ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job") => &["spec", "template", "spec"],
        ("batch", "CronJob") => &["spec", "jobTemplate", "spec", "template", "spec"],
        _ => return None,
    })
}

/// The lists of containers a pod spec has.
const CONTAINER_LISTS: [&str; 3] = ["initContainers", "containers", "ephemeralContainers"];

/// One image a pod would run, with the field that names it.
struct PodImage {
    field: String,
    image: String,
}

/// The images of the pod spec under `path` of `object`, in the order the spec lists them.
fn pod_images(object: &Value, path: &[&str]) -> Result<Vec<PodImage>, Error> {
    let mut spec = object;
    let mut at = "request.object".to_owned();
    for part in path {
        at = format!("{at}.{part}");
        spec = spec.get(part).ok_or_else(|| Error::invalid(&at, "is missing"))?;
    }
    let spec = spec.as_object().ok_or_else(|| Error::invalid(&at, "must be an object"))?;
    let mut images = Vec::new();
    let field_base = path.join(".");
    for list in CONTAINER_LISTS {
        let Some(containers) = spec.get(list).filter(|v| !v.is_null()) else { continue };
        let containers =
            containers.as_array().ok_or_else(|| Error::invalid(format!("{at}.{list}"), "must be a list"))?;
        for (i, container) in containers.iter().enumerate() {
            let field = format!("{field_base}.{list}[{i}].image");
            let image = container
                .get("image")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::invalid(format!("request.object.{field}"), "must be a string"))?;
            images.push(PodImage { field, image: image.to_owned() });
        }
    }
    Ok(images)
}

/// Why one image may not run: a word for machines and a sentence naming it.
struct Refused {
    field: String,
    reason: &'static str,
    message: String,
}

/// Decides one image: `Ok(Ok(warnings))` when it may run, `Ok(Err(refused))` when not.
async fn decide(s: &AppState, image: &PodImage) -> image_core::Result<Result<Vec<String>, Refused>> {
    let refuse = |reason, why: String| {
        let message = format!("{} ({}): {why}", image.field, image.image);
        Ok(Err(Refused { field: image.field.clone(), reason, message }))
    };
    let reference = match Reference::parse(&image.image) {
        Ok(reference) => reference,
        Err(e) => return refuse("invalid_reference", format!("not an image reference: {e}")),
    };
    // An image of the internal registry is decided as the source it was imported from.
    let (registry, repository) = match s.internal.as_ref().filter(|i| i.host == reference.registry()) {
        Some(internal) => match crate::registry_auth::source_of(&internal.prefix, reference.repository()) {
            Some(source) => source,
            None => {
                let why = format!("not under the internal registry's import path `{}`", internal.prefix);
                return refuse("not_approved", why);
            }
        },
        None => (reference.registry().to_owned(), reference.repository().to_owned()),
    };
    let shown = format!("{registry}/{repository}");
    let Ok(source) = Reference::new(&registry, &repository, reference.tag(), reference.digest().cloned()) else {
        return refuse("not_approved", format!("{shown} is not in the catalog"));
    };
    let entry = s.admission.entry(s.store.as_ref(), &source).await?;
    let (catalog_image, tags) = (entry.0.as_ref(), entry.1.as_slice());
    let mut decision = image_core::rules::admit_under(catalog_image, tags, &source, s.deny_severity);
    let mut resolved = None;
    if let (Admission::Refused(Refusal::TagNotListed), None, Some(digest)) = (&decision, source.tag(), source.digest())
    {
        for tag in imported_tags(s, &registry, &repository, digest).await? {
            let Ok(by_tag) = Reference::new(&registry, &repository, Some(&tag), None) else { continue };
            let again = image_core::rules::admit_under(catalog_image, tags, &by_tag, s.deny_severity);
            let allowed = matches!(again, Admission::Allowed { .. });
            if allowed || resolved.is_none() {
                decision = again;
                resolved = Some(tag);
            }
            if allowed {
                break;
            }
        }
    }
    let shown_ref = match (&resolved, source.digest()) {
        (Some(tag), Some(digest)) => format!("{shown}@{digest} (tag {tag})"),
        _ => source.to_string(),
    };
    Ok(match decision {
        Admission::Allowed { warnings, .. } => Ok(warnings.iter().map(|w| format!("{shown_ref}: {w}")).collect()),
        Admission::Refused(refusal) => {
            let tag = resolved.as_deref().or(source.tag());
            let why = crate::registry_auth::refusal_message(&shown, catalog_image, tag, source.digest(), refusal);
            let reason = match refusal {
                Refusal::NotApproved => "not_approved",
                Refusal::TagNotListed => "tag_not_listed",
                Refusal::ScanFailed { .. } => "scan_failed",
            };
            Err(Refused {
                field: image.field.clone(),
                reason,
                message: format!("{} ({shown_ref}): {why}", image.field),
            })
        }
    })
}

/// The tags of succeeded imports of `registry/repository` that brought `digest` (as the image or one of its
/// platforms), newest first.
async fn imported_tags(
    s: &AppState,
    registry: &str,
    repository: &str,
    digest: &Digest,
) -> image_core::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut offset = 0;
    loop {
        let filter = ImportFilter {
            tag: None,
            ready: Some(true),
            created_by: None,
            order_by: ImportOrder::Id,
            descending: true,
            page: Page::new(Some(Page::MAX_LIMIT), Some(offset))?,
        };
        let listing = s.store.list_imports(&filter).await?;
        let count = listing.items.len() as i64;
        for import in listing.items {
            let same = import.source.registry() == registry && import.source.repository() == repository;
            let brought =
                import.digest.as_ref() == Some(digest) || import.artifacts.iter().any(|a| &a.digest == digest);
            if let (true, true, Some(tag)) = (same, brought, import.source.tag())
                && !found.iter().any(|t| t == tag)
            {
                found.push(tag.to_owned());
            }
        }
        offset += count;
        if count == 0 || offset >= listing.total {
            return Ok(found);
        }
    }
}

fn answer(uid: &str, allowed: bool, warnings: Vec<String>, status: Option<Value>) -> Json<Value> {
    let mut response = Map::new();
    response.insert("uid".into(), uid.into());
    response.insert("allowed".into(), allowed.into());
    if let Some(status) = status {
        response.insert("status".into(), status);
    }
    if !warnings.is_empty() {
        response.insert("warnings".into(), warnings.into());
    }
    Json(json!({ "apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response }))
}

/// Answers a Kubernetes `AdmissionReview`: whether every image of the pod (template) may run.
async fn review(
    State(s): State<AppState>,
    _user: User,
    crate::extract::Body(review, _): Body<Review>,
) -> ApiResult<Json<Value>> {
    if review.api_version != API_VERSION || review.kind != "AdmissionReview" {
        let why = format!("must be an {API_VERSION} AdmissionReview, not {} {}", review.api_version, review.kind);
        return Err(Error::invalid("apiVersion", why).into());
    }
    let request = review.request.ok_or_else(|| Error::invalid("request", "is missing"))?;
    if request.uid.is_empty() {
        return Err(Error::invalid("request.uid", "must not be empty").into());
    }
    match request.operation.as_str() {
        "CREATE" | "UPDATE" => {}
        "DELETE" | "CONNECT" => return Ok(answer(&request.uid, true, Vec::new(), None)),
        other => {
            let why = format!("must be CREATE, UPDATE, DELETE or CONNECT, not {other:?}");
            return Err(Error::invalid("request.operation", why).into());
        }
    }
    let (group, kind) = (request.kind.group.as_str(), request.kind.kind.as_str());
    let Some(path) = pod_spec_path(group, kind) else {
        let shown = if group.is_empty() { kind.to_owned() } else { format!("{group}/{kind}") };
        let warning = format!(
            "imagegate checks the images of Pods and of workloads with a pod template; {shown} was not checked"
        );
        return Ok(answer(&request.uid, true, vec![warning], None));
    };
    let object = request.object.as_ref().ok_or_else(|| Error::invalid("request.object", "is missing"))?;
    let images = pod_images(object, path)?;
    let mut warnings = Vec::new();
    let mut refused = Vec::new();
    for image in &images {
        match decide(&s, image).await? {
            Ok(more) => warnings.extend(more),
            Err(why) => refused.push(why),
        }
    }
    if refused.is_empty() {
        return Ok(answer(&request.uid, true, warnings, None));
    }
    let messages: Vec<&str> = refused.iter().map(|r| r.message.as_str()).collect();
    let noun = if refused.len() == 1 { "image" } else { "images" };
    let causes: Vec<Value> =
        refused.iter().map(|r| json!({ "reason": r.reason, "field": r.field, "message": r.message })).collect();
    let status = json!({
        "code": 403,
        "reason": "Forbidden",
        "message": format!("imagegate refused {} {noun}: {}", refused.len(), messages.join("; ")),
        "details": { "kind": kind, "causes": causes },
    });
    Ok(answer(&request.uid, false, warnings, Some(status)))
}
