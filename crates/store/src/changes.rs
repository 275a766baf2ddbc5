//! The store's data version: a number that moves with every change committed to the database, by this
//! process or any other, read without waiting on the database, so that caches in front of the store
//! (the API's token and admission caches) know when what they hold may be stale.
//!
//! - Every write transaction of this process raises it as it ends, committed or not, before the caller
//!   sees its result: a process reads its own writes at once.
//! - SQLite in a file: a connection of its own answers `PRAGMA data_version`, which changes when any other
//!   connection, of this process or another, commits. It is asked at most once a millisecond (each answer
//!   takes the file's read lock), so a commit by another process is seen within a millisecond.
//! - SQLite in memory: one process only; its own writes are all there is.
//! - PostgreSQL: a statement trigger on every table sends a notification on this schema's change channel,
//!   which PostgreSQL delivers when the transaction commits; a connection of its own listens (started by
//!   the first read of the version). Until it listens, and whenever it has lost its connection, the version
//!   is unknown (`None`) and caches read through, so a change by another server is missed only for as long
//!   as its notification takes to arrive (well under a millisecond on one network).

use std::{
    sync::{
        Arc, Mutex, OnceLock, TryLockError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use diesel::{QueryableByName, RunQueryDsl as _, sqlite::SqliteConnection};

/// A version of everything the store holds; see the module documentation.
#[derive(Default)]
pub(crate) struct Changes {
    counter: AtomicU64,
    source: Source,
}

#[derive(Default)]
enum Source {
    /// This process's own writes are all the changes there are.
    #[default]
    Local,
    /// SQLite in a file: the watching connection and the data version it answered last, and when it was
    /// last asked (microseconds after `since`).
    Sqlite { watch: Mutex<(SqliteConnection, i64)>, since: Instant, asked_at: AtomicU64 },
    /// PostgreSQL: the listener, started on first use, and whether it listens now.
    Postgres { url: String, listener: OnceLock<tokio::task::JoinHandle<()>>, listening: Arc<AtomicBool> },
}

#[derive(QueryableByName)]
struct DataVersion {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    data_version: i64,
}

fn data_version(conn: &mut SqliteConnection) -> Option<i64> {
    diesel::sql_query("PRAGMA data_version").get_result::<DataVersion>(conn).ok().map(|v| v.data_version)
}

impl Changes {
    /// Changes seen by counting this process's writes.
    pub(crate) fn local() -> Changes {
        Changes::default()
    }

    /// Changes to the SQLite database file `url`, by any process; `None` when it cannot be opened.
    pub(crate) fn sqlite(url: &str) -> Option<Changes> {
        let mut conn = <SqliteConnection as diesel::Connection>::establish(url).ok()?;
        let version = data_version(&mut conn)?;
        let source =
            Source::Sqlite { watch: Mutex::new((conn, version)), since: Instant::now(), asked_at: AtomicU64::new(0) };
        Some(Changes { counter: AtomicU64::new(0), source })
    }

    /// Changes to the PostgreSQL database `url`'s schema, by any process.
    pub(crate) fn postgres(url: &str) -> Changes {
        Changes {
            counter: AtomicU64::new(0),
            source: Source::Postgres { url: url.to_owned(), listener: OnceLock::new(), listening: Arc::default() },
        }
    }

    /// Notes a write transaction of this process that has ended.
    pub(crate) fn wrote(&self) {
        self.counter.fetch_add(1, Ordering::SeqCst);
    }

    /// The version now, or `None` when changes by other processes cannot be told now.
    pub(crate) fn version(self: &Arc<Self>) -> Option<u64> {
        match &self.source {
            Source::Local => {}
            Source::Sqlite { watch, since, asked_at } => {
                let now = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
                // Asked within the last millisecond, or being asked now by another caller: that answer stands.
                let due = now.saturating_sub(asked_at.load(Ordering::Acquire)) >= ASK_SQLITE_EVERY_MICROS;
                let watch = match due.then(|| watch.try_lock()) {
                    Some(Ok(watch)) => Some(watch),
                    Some(Err(TryLockError::Poisoned(poisoned))) => Some(poisoned.into_inner()),
                    _ => None,
                };
                if let Some(mut watch) = watch {
                    let (conn, last) = &mut *watch;
                    let version = data_version(conn)?;
                    if version != *last {
                        *last = version;
                        self.wrote();
                    }
                    asked_at.store(now, Ordering::Release);
                }
            }
            Source::Postgres { url, listener, listening } => {
                if !listening.load(Ordering::SeqCst) {
                    if listener.get().is_none()
                        && let Ok(runtime) = tokio::runtime::Handle::try_current()
                    {
                        let (url, listening, changes) = (url.clone(), listening.clone(), Arc::downgrade(self));
                        listener.get_or_init(|| {
                            runtime.spawn(crate::postgres::watch_changes(url, listening, move || {
                                if let Some(changes) = changes.upgrade() {
                                    changes.wrote();
                                }
                            }))
                        });
                    }
                    return None;
                }
            }
        }
        Some(self.counter.load(Ordering::SeqCst))
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        if let Source::Postgres { listener, .. } = &self.source
            && let Some(task) = listener.get()
        {
            task.abort();
        }
    }
}

/// How often SQLite's data version is asked for, at most.
const ASK_SQLITE_EVERY_MICROS: u64 = 1000;

/// How long a silent listening connection waits before it checks that it is still alive.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(30);
