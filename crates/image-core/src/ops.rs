//! What an operator watches and prunes: the queue's depth, imports by state, the database pool, and
//! retention of history tables.

use std::time::Duration;

use async_trait::async_trait;

use crate::{Result, Timestamp, import::ImportState};

/// The queue's jobs of one type.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDepth {
    pub job_type: String,
    /// Jobs waiting or running.
    pub jobs: i64,
    /// Jobs due now and not held by a live lease.
    pub due: i64,
    /// When the oldest due job became due; `None` when none is.
    pub oldest_due: Option<Timestamp>,
}

/// How busy the store's connections are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections the pool may open.
    pub max: usize,
    /// Connections open now.
    pub open: usize,
    /// Open connections not lent out.
    pub idle: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

/// How long history is kept. Only rows that ended before the cut-off go: import records that succeeded,
/// failed or were canceled (measured from when they finished), and audit events. Jobs leave the queue
/// when they finish, so the queue holds no history to prune.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Finished import records (with their progress and artifacts) older than this go.
    pub imports: Duration,
    /// Audit events older than this go.
    pub events: Duration,
    /// Rows deleted per statement: each statement holds its locks this long and no longer.
    pub batch: usize,
}

impl RetentionPolicy {
    /// The ages a retention job carries, with the default batch.
    pub fn from_payload(payload: crate::job::RetentionPayload) -> RetentionPolicy {
        RetentionPolicy {
            imports: Duration::from_secs(payload.imports_secs),
            events: Duration::from_secs(payload.events_secs),
            ..RetentionPolicy::DEFAULT
        }
    }

    /// 90 days of imports, 365 of events, 1,000 rows a statement.
    pub const DEFAULT: RetentionPolicy = RetentionPolicy {
        imports: Duration::from_secs(90 * 24 * 3600),
        events: Duration::from_secs(365 * 24 * 3600),
        batch: 1000,
    };
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy::DEFAULT
    }
}

/// What one pruning removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub imports: u64,
    pub events: u64,
}

/// The store's side of operating the service.
#[async_trait]
pub trait OpsStore: Send + Sync {
    /// Jobs per job type, with the oldest due job's due time.
    async fn queue_depths(&self) -> Result<Vec<QueueDepth>>;
    /// Import records per state (every state, zero included).
    async fn import_counts(&self) -> Result<Vec<(ImportState, i64)>>;
    /// The connection pool now; taken without touching the database.
    fn pool_status(&self) -> PoolStatus;
    /// Deletes what `policy` no longer keeps as of `now`, `policy.batch` rows per transaction.
    async fn prune(&self, policy: RetentionPolicy, now: Timestamp) -> Result<Pruned>;
    /// A number that every committed change to the catalog's images and tags raises, on every server of
    /// the database: what was read at one generation holds while the generation stays.
    async fn catalog_generation(&self) -> Result<i64>;
    /// A number that moves with every change committed to the store, by this process (before the write's
    /// caller sees its result) or by any other sharing the database, read without waiting on the database:
    /// what a cache read at one version holds while the version stays. `None` when changes by other
    /// processes cannot be told now; a cache then reads through.
    fn data_version(&self) -> Option<u64>;
    /// Queues a retention job due now unless one is queued or running already; true when it queued one.
    async fn queue_retention(&self, payload: crate::job::RetentionPayload) -> Result<bool>;
}
