use std::{sync::Arc, time::Duration};

use image_core::{
    Reference,
    copy::ImageCopier,
    ops::OpsStore,
    store::{ImportStore, KubeStore},
};

/// What every job type of a worker shares; the one context its [`crate::Runner`] runs them with.
pub struct WorkerContext {
    pub imports: Arc<dyn ImportStore>,
    /// Repositories and registry secrets: a sync's `registryRef`, and the secret an import names, are read
    /// from here at each attempt, so that a changed password applies.
    pub kube: Arc<dyn KubeStore>,
    /// Copies images into the internal registry.
    pub copier: Arc<dyn ImageCopier>,
    /// At most one progress write per import in this interval.
    pub progress_interval: Duration,
    /// `host[:port]` of the internal registry syncs copy into.
    pub target_host: String,
    /// Path in front of every synced repository; empty for none.
    pub target_prefix: String,
    /// This node's inventory, when this worker reports one.
    pub inventory: Option<std::sync::Arc<crate::NodeReporter>>,
    /// Scans of imported artifacts ([`crate::ScanHandler`]); `None`: imports queue no scan.
    pub scans: Option<Arc<crate::ScanSettings>>,
    /// What the retention job prunes.
    pub ops: Arc<dyn OpsStore>,
}

impl std::fmt::Debug for WorkerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerContext")
            .field("progress_interval", &self.progress_interval)
            .field("target_host", &self.target_host)
            .field("target_prefix", &self.target_prefix)
            .field("inventory", &self.inventory)
            .finish_non_exhaustive()
    }
}

impl WorkerContext {
    /// Where a sync of `source` goes in the internal registry (see [`image_core::import::internal_target`]).
    pub(crate) fn sync_target(&self, source: &Reference) -> Result<Reference, image_core::ReferenceError> {
        image_core::import::internal_target(&self.target_host, &self.target_prefix, source)
    }
}
