//! The answers of the store's hottest reads (the listings and details the API serves, and the API token
//! lookup behind every authenticated request), kept in memory while the data version stays (see
//! [`crate::changes`]): a repeated read costs a map lookup and a copy instead of a trip to the database.
//!
//! The version is taken before the database is read, and an answer is kept only under the version it was
//! read at, so nothing older than the version it is kept under is ever served. When the version is unknown
//! (PostgreSQL while its listener is not connected) every read goes to the database. Answers that depend on
//! the time as well (the token lookup) keep what they need to check it on every use.

use std::{
    any::Any,
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
};

use image_core::Result;

use crate::changes::Changes;

/// Answers kept at most; beyond, the cache starts afresh. A listing's page is a few kilobytes.
const MAX_ENTRIES: usize = 4096;

/// What identifies an answer: the operation, and its arguments as `Debug` renders them.
type Key = (&'static str, String);

/// See the module documentation.
#[derive(Default)]
pub(crate) struct ReadCache {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    version: Option<u64>,
    answers: HashMap<Key, Arc<dyn Any + Send + Sync>>,
}

impl ReadCache {
    /// `op(args)`'s answer: the one kept, if the data version has not moved since it was read, or what
    /// `load` answers (kept unless it failed).
    pub(crate) async fn read<T, F>(&self, changes: &Arc<Changes>, op: &'static str, args: &str, load: F) -> Result<T>
    where
        T: Clone + Send + Sync + 'static,
        F: Future<Output = Result<T>>,
    {
        let Some(version) = changes.version() else { return load.await };
        let key = (op, args.to_owned());
        if let Some(kept) = self.get::<T>(version, &key) {
            return Ok(kept);
        }
        let answer = load.await?;
        self.put(version, key, Arc::new(answer.clone()));
        Ok(answer)
    }

    /// The answer kept under `key` at `version`, if there is one; forgets them all when the version moved.
    pub(crate) fn get<T: Clone + 'static>(&self, version: u64, key: &Key) -> Option<T> {
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.version {
            Some(kept) if kept == version => {
                entries.answers.get(key).and_then(|kept| kept.downcast_ref::<T>()).cloned()
            }
            // A caller that took the version before the latest change: what is kept is newer than it asks.
            Some(kept) if kept > version => None,
            _ => {
                entries.answers.clear();
                entries.version = Some(version);
                None
            }
        }
    }

    /// Keeps `answer`, read at `version`, unless the version has moved on since.
    pub(crate) fn put(&self, version: u64, key: Key, answer: Arc<dyn Any + Send + Sync>) {
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.version != Some(version) {
            return;
        }
        if entries.answers.len() >= MAX_ENTRIES {
            entries.answers.clear();
        }
        entries.answers.insert(key, answer);
    }

    /// Forgets what is kept under `key`.
    pub(crate) fn forget(&self, key: &Key) {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).answers.remove(key);
    }
}
