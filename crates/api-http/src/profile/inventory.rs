//! The node inventory: seed 004's `GET /images` (this node's runtime beside the internal registry), the
//! fleet's nodes at `/api/v1/nodes`, and at `/api/v1/drift` the images nodes have that the catalog does not
//! approve, decided by [`image_core::rules::admit`].
//!
//! A source that fails (the runtime, the registry) is an entry of `errors`, `{"source", "reason"}`, with
//! `source` `containerd` or `harbor`, and the other list is still answered, with 200.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use axum::{Json, extract::State};
use image_core::{
    Reference, Timestamp,
    inventory::{self, IgnoreList, ImageRow, ImageRuntime, NodeInventory, RuntimeImage},
    registry::RegistryAdmin,
    rules::{self, Admission, Refusal},
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::plain::{ApiResult, Query, User};
use crate::{
    AppState,
    extract::param,
    routes::{Access, Routes},
};

/// This server's own node: its name and its container runtime.
pub struct LocalNode {
    pub name: String,
    pub runtime: Arc<dyn ImageRuntime>,
    /// Image ids left out of `containerd_images` (seed 004's `images_to_ignore.txt`).
    pub ignore: IgnoreList,
}

impl std::fmt::Debug for LocalNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNode")
            .field("name", &self.name)
            .field("endpoint", &self.runtime.endpoint())
            .finish_non_exhaustive()
    }
}

pub(crate) fn routes() -> Routes {
    Routes::new("")
        .get("/images", Access::SignedIn, images)
        .merge(Routes::new("/api/v1").get("/nodes", Access::SignedIn, nodes).get("/drift", Access::SignedIn, drift))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct NodeQuery {
    node: Option<String>,
}

/// A source that could not be read.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct SourceError {
    /// `containerd` (the node's runtime) or `harbor` (the internal registry).
    source: &'static str,
    reason: String,
}

/// Seed 004's answer.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct ImagesAnswer {
    /// The rows `crictl images` prints.
    #[schemars(with = "Vec<serde_json::Map<String, serde_json::Value>>")]
    containerd_images: Vec<ImageRow>,
    harbor_images: Vec<RegistryRow>,
    errors: Vec<SourceError>,
}

/// One tag of the internal registry, as seed 004 shows it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct RegistryRow {
    digest: String,
    /// The Harbor project; on a plain registry the repository's first path segment (empty when it has one).
    project: String,
    /// The repository without its project.
    repository: String,
    /// Human size as for the runtime's images; null when the registry does not tell.
    size: Option<String>,
    tag: String,
}

const CONTAINERD: &str = "containerd";
const HARBOR: &str = "harbor";

/// `GET /images` (`?node=NAME` for another node's last report).
async fn images(State(s): State<AppState>, _: User, q: Query<NodeQuery>) -> ApiResult<Json<ImagesAnswer>> {
    let node = param::non_empty(q.0.node);
    let mut errors = Vec::new();
    let local = s.local_node.as_ref().filter(|l| node.as_ref().is_none_or(|n| *n == l.name));
    let runtime_images = match (local, node) {
        (Some(local), _) => match local.runtime.report().await {
            Ok(report) => local.ignore.apply(report.images),
            Err(err) => {
                errors.push(SourceError { source: CONTAINERD, reason: err.to_string() });
                Vec::new()
            }
        },
        (None, Some(name)) => {
            let node = s.store.get_node(&name).await?;
            errors.extend(node_problems(&node, OffsetDateTime::now_utc()));
            node.images
        }
        (None, None) => {
            errors.push(SourceError {
                source: CONTAINERD,
                reason:
                    "this server reads no container runtime (no --cri-endpoint); ask for another node with ?node=NAME"
                        .into(),
            });
            Vec::new()
        }
    };
    let harbor_images = match s.internal.as_deref() {
        Some(internal) => registry_rows(internal.admin.as_ref(), &mut errors).await,
        None => {
            errors.push(SourceError { source: HARBOR, reason: "no internal registry is configured".into() });
            Vec::new()
        }
    };
    Ok(Json(ImagesAnswer { containerd_images: inventory::crictl_rows(&runtime_images), harbor_images, errors }))
}

/// What is wrong with a node's stored report: its last attempt failed, or it has stopped reporting.
fn node_problems(node: &NodeInventory, now: Timestamp) -> Vec<SourceError> {
    let mut problems = Vec::new();
    if let Some(error) = &node.last_error {
        let since = match node.last_report_at {
            Some(at) => format!("the images are those of {}", image_core::format_rfc3339_millis(at)),
            None => "it never reported its images".to_owned(),
        };
        problems.push(SourceError { source: CONTAINERD, reason: format!("node {}: {error} ({since})", node.name) });
    }
    if node.is_stale(now) {
        problems.push(SourceError {
            source: CONTAINERD,
            reason: format!(
                "node {} is stale: it last reported at {} and reports every {} s",
                node.name,
                image_core::format_rfc3339_millis(node.last_attempt_at),
                node.interval_secs
            ),
        });
    }
    problems
}

/// The internal registry's tagged artifacts, one row per tag, by repository and tag. A registry that fails
/// adds an error; the rows read until then are kept.
async fn registry_rows(admin: &dyn RegistryAdmin, errors: &mut Vec<SourceError>) -> Vec<RegistryRow> {
    let repositories = match admin.list_repositories().await {
        Ok(repositories) => repositories,
        Err(err) => {
            errors.push(SourceError { source: HARBOR, reason: err.to_string() });
            return Vec::new();
        }
    };
    let mut rows = Vec::new();
    for repository in repositories {
        let artifacts = match admin.list_artifacts(&repository.name).await {
            Ok(artifacts) => artifacts,
            Err(err) => {
                errors.push(SourceError { source: HARBOR, reason: format!("{}: {err}", repository.name) });
                continue;
            }
        };
        let (project, name) = match repository.name.split_once('/') {
            Some((project, name)) => (project, name),
            None => ("", repository.name.as_str()),
        };
        for artifact in artifacts {
            for tag in &artifact.tags {
                rows.push(RegistryRow {
                    digest: artifact.digest.to_string(),
                    project: project.to_owned(),
                    repository: name.to_owned(),
                    size: artifact.size.map(inventory::human_size),
                    tag: tag.clone(),
                });
            }
        }
    }
    rows.sort_by(|a, b| (&a.project, &a.repository, &a.tag).cmp(&(&b.project, &b.repository, &b.tag)));
    rows
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct NodeView {
    pub(crate) name: String,
    pub(crate) runtime_name: Option<String>,
    pub(crate) runtime_version: Option<String>,
    #[serde(with = "image_core::time_fmt::serde_millis::option")]
    #[schemars(with = "Option<String>")]
    pub(crate) last_report_at: Option<Timestamp>,
    #[serde(with = "image_core::time_fmt::serde_millis")]
    #[schemars(with = "String")]
    pub(crate) last_attempt_at: Timestamp,
    pub(crate) image_count: usize,
    pub(crate) interval_seconds: i64,
    /// No attempt for three intervals.
    pub(crate) stale: bool,
    pub(crate) last_error: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct NodeList {
    pub(crate) nodes: Vec<NodeView>,
}

/// `GET /api/v1/nodes`: every node that ever reported, by name, stale ones included.
async fn nodes(State(s): State<AppState>, _: User) -> ApiResult<Json<NodeList>> {
    Ok(Json(node_list(&s).await?))
}

/// Every node that ever reported, as `GET /api/v1/nodes` lists them.
pub(crate) async fn node_list(s: &AppState) -> image_core::Result<NodeList> {
    let now = OffsetDateTime::now_utc();
    let nodes = s
        .store
        .list_nodes()
        .await?
        .into_iter()
        .map(|node| NodeView {
            stale: node.is_stale(now),
            image_count: node.images.len(),
            name: node.name,
            runtime_name: node.runtime_name,
            runtime_version: node.runtime_version,
            last_report_at: node.last_report_at,
            last_attempt_at: node.last_attempt_at,
            interval_seconds: node.interval_secs,
            last_error: node.last_error,
        })
        .collect();
    Ok(NodeList { nodes })
}

/// One image the catalog does not approve, and the nodes that have it.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct DriftEntry {
    /// The reference, normalised (`docker.io/library/redis:7`).
    pub(crate) image: String,
    pub(crate) image_id: String,
    /// `not_approved`, `tag_not_listed` or `vulnerable` (under `--deny-severity`), as the admission check
    /// decides.
    pub(crate) reason: &'static str,
    pub(crate) message: String,
    pub(crate) nodes: BTreeSet<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct DriftAnswer {
    pub(crate) drift: Vec<DriftEntry>,
    /// The nodes whose last reports were checked.
    pub(crate) nodes: Vec<String>,
}

/// `GET /api/v1/drift` (`?node=NAME` for one node): every image on the fleet's nodes that the admission
/// check would refuse, by reference. Images known by no name are left out: no catalog entry can match them.
async fn drift(State(s): State<AppState>, _: User, q: Query<NodeQuery>) -> ApiResult<Json<DriftAnswer>> {
    Ok(Json(drift_of(&s, param::non_empty(q.0.node)).await?))
}

/// What `GET /api/v1/drift` answers: for one node, or the whole fleet.
pub(crate) async fn drift_of(s: &AppState, node: Option<String>) -> image_core::Result<DriftAnswer> {
    let nodes = match node {
        Some(name) => vec![s.store.get_node(&name).await?],
        None => s.store.list_nodes().await?,
    };
    let mut by_reference: BTreeMap<String, (Reference, &RuntimeImage, BTreeSet<String>)> = BTreeMap::new();
    for node in &nodes {
        for image in &node.images {
            for reference in inventory::references(image) {
                let entry =
                    by_reference.entry(reference.to_string()).or_insert_with(|| (reference, image, BTreeSet::new()));
                entry.2.insert(node.name.clone());
            }
        }
    }
    let mut drift = Vec::new();
    for (shown, (reference, image, on)) in by_reference {
        let (entry, tags) = super::catalog_entry(s.store.as_ref(), &reference).await?;
        let (reason, message) = match rules::admit_under(entry.as_ref(), &tags, &reference, s.deny_severity) {
            Admission::Allowed { .. } => continue,
            Admission::Refused(Refusal::NotApproved) => {
                ("not_approved", "This image must be approved before deployment".to_owned())
            }
            Admission::Refused(Refusal::TagNotListed) => {
                ("tag_not_listed", "This tag is not in the approved tags list".to_owned())
            }
            Admission::Refused(refusal @ Refusal::ScanFailed { .. }) => ("vulnerable", format!("Refused: {refusal}")),
        };
        drift.push(DriftEntry { image: shown, image_id: inventory::short_id(&image.id), reason, message, nodes: on });
    }
    Ok(DriftAnswer { drift, nodes: nodes.into_iter().map(|n| n.name).collect() })
}
