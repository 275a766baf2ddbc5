//! The fleet's nodes and the images on them the catalog would refuse (drift), and the internal
//! registry's health and statistics, as the inventory and Harbor APIs answer them.

use askama::Template;
use axum::extract::State;

use super::page::{Caller, Nav, PageResult, html, size, when, when_opt};
use crate::{
    AppState,
    profile::{harbor, inventory},
};

struct NodeRow {
    name: String,
    runtime: String,
    images: usize,
    last_report: String,
    last_attempt: String,
    stale: bool,
    error: String,
}

struct DriftRow {
    image: String,
    reason: &'static str,
    message: String,
    nodes: String,
}

#[derive(Template)]
#[template(path = "console/nodes.html")]
struct NodesView {
    nav: Nav,
    nodes: Vec<NodeRow>,
    drift: Vec<DriftRow>,
}

/// `GET /console/nodes`: every node that reported, and the fleet's drift.
pub(super) async fn nodes(State(s): State<AppState>, caller: Caller) -> PageResult {
    let nodes = inventory::node_list(&s).await?;
    let drift = inventory::drift_of(&s, None).await?;
    html(NodesView {
        nav: Nav::new(&caller.user, "nodes"),
        nodes: nodes
            .nodes
            .into_iter()
            .map(|n| NodeRow {
                runtime: [n.runtime_name.unwrap_or_default(), n.runtime_version.unwrap_or_default()].join(" "),
                name: n.name,
                images: n.image_count,
                last_report: when_opt(n.last_report_at),
                last_attempt: when(n.last_attempt_at),
                stale: n.stale,
                error: n.last_error.unwrap_or_default(),
            })
            .collect(),
        drift: drift
            .drift
            .into_iter()
            .map(|d| DriftRow {
                image: d.image,
                reason: d.reason,
                message: d.message,
                nodes: d.nodes.into_iter().collect::<Vec<_>>().join(", "),
            })
            .collect(),
    })
}

#[derive(Template)]
#[template(path = "console/harbor.html")]
struct HarborView {
    nav: Nav,
    healthy: bool,
    reason: String,
    components: Vec<(String, String)>,
    counts: Vec<(&'static str, String)>,
}

/// `GET /console/harbor`: the internal registry's health, its components and its statistics.
pub(super) async fn harbor(State(s): State<AppState>, caller: Caller) -> PageResult {
    let stats = harbor::stats(&s).await?;
    html(HarborView {
        nav: Nav::new(&caller.user, "harbor"),
        healthy: stats.status == "healthy",
        reason: stats.reason.unwrap_or_default(),
        components: stats.components.into_iter().map(|c| (c.name, c.status)).collect(),
        counts: vec![
            ("Private projects", stats.private_project_count.to_string()),
            ("Public projects", stats.public_project_count.to_string()),
            ("Private repositories", stats.private_repo_count.to_string()),
            ("Public repositories", stats.public_repo_count.to_string()),
            ("Storage", size(stats.total_storage)),
        ],
    })
}
