//! Seed 000's Harbor statistics (`GET /api/v1/harbor/stats`), answered by the internal registry's adapter
//! ([`image_core::registry::RegistryAdmin`]).
//!
//! On Harbor: `status` and `components` from `/api/v2.0/health`, the counts and `total_storage` from
//! `/api/v2.0/statistics`. On a plain distribution registry, the same shape from what can be known: one
//! component, `registry`, healthy when `/v2/` answers; projects (first path segments) and repositories from
//! `_catalog`, all private when imagegate has credentials for the registry and all public when not; and
//! `total_storage` from imagegate's own records (the sizes of the distinct artifacts of succeeded imports).
//! A registry that cannot be reached, or no internal registry at all, is `"status": "unhealthy"` with a
//! `reason` and zero counts, still a 200.

use std::collections::BTreeMap;

use axum::{Json, extract::State};
use image_core::import::{ImportFilter, ImportOrder};
use image_core::registry::{ComponentHealth, RegistryKind, RegistryStatistics};
use image_core::{catalog::Page, store::Store};
use serde::Serialize;

use crate::AppState;
use crate::routes::{Access, Routes};

use super::plain::{ApiResult, User};

pub(crate) fn routes() -> Routes {
    Routes::new("/api/v1").get("/harbor/stats", Access::SignedIn, harbor_stats)
}

/// Seed 000's answer; `reason` only when something is wrong.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct HarborStats {
    pub(crate) status: String,
    /// Each component's `name` and `status`.
    #[schemars(with = "Vec<serde_json::Map<String, serde_json::Value>>")]
    pub(crate) components: Vec<ComponentHealth>,
    pub(crate) private_project_count: u64,
    pub(crate) public_project_count: u64,
    pub(crate) private_repo_count: u64,
    pub(crate) public_repo_count: u64,
    pub(crate) total_storage: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

async fn harbor_stats(State(s): State<AppState>, _user: User) -> ApiResult<Json<HarborStats>> {
    Ok(Json(stats(&s).await?))
}

/// The internal registry's health and statistics, as `GET /api/v1/harbor/stats` answers them.
pub(crate) async fn stats(s: &AppState) -> image_core::Result<HarborStats> {
    let Some(internal) = s.internal.clone() else {
        return Ok(HarborStats {
            status: "unhealthy".into(),
            components: Vec::new(),
            private_project_count: 0,
            public_project_count: 0,
            private_repo_count: 0,
            public_repo_count: 0,
            total_storage: 0,
            reason: Some("no internal registry is configured: start the server with --internal-registry".into()),
        });
    };
    let admin = internal.admin.clone();
    let (health, statistics) = tokio::join!(admin.health(), admin.statistics());
    let mut reason = health.reason.clone();
    let statistics = match statistics {
        Ok(statistics) => statistics,
        Err(e) => {
            reason.get_or_insert_with(|| e.to_string());
            RegistryStatistics::default()
        }
    };
    let storage = match (statistics.total_storage, admin.kind()) {
        (Some(bytes), _) => bytes,
        (None, RegistryKind::Distribution) => imported_bytes(s.store.as_ref()).await?,
        (None, RegistryKind::Harbor) => 0,
    };
    let status = if health.status == "healthy" && reason.is_none() { "healthy" } else { "unhealthy" };
    Ok(HarborStats {
        status: status.into(),
        components: health.components,
        private_project_count: statistics.private_project_count.unwrap_or(0),
        public_project_count: statistics.public_project_count.unwrap_or(0),
        private_repo_count: statistics.private_repo_count.unwrap_or(0),
        public_repo_count: statistics.public_repo_count.unwrap_or(0),
        total_storage: storage,
        reason,
    })
}

/// The bytes of the distinct artifacts that succeeded imports put into the internal registry.
async fn imported_bytes(store: &dyn Store) -> image_core::Result<u64> {
    let mut sizes = BTreeMap::new();
    let mut offset = 0;
    loop {
        let filter = ImportFilter {
            tag: None,
            ready: Some(true),
            created_by: None,
            order_by: ImportOrder::Id,
            descending: false,
            page: Page::new(Some(Page::MAX_LIMIT), Some(offset))?,
        };
        let listing = store.list_imports(&filter).await?;
        let count = listing.items.len() as i64;
        for import in listing.items {
            for artifact in import.artifacts {
                sizes.insert(artifact.digest, artifact.size);
            }
        }
        offset += count;
        if count == 0 || offset >= listing.total {
            return Ok(sizes.values().sum());
        }
    }
}
