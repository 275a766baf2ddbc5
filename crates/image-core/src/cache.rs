//! Answers computed from the store, kept in memory while its data version stays
//! ([`crate::ops::OpsStore::data_version`]): a repeated read costs a map lookup and a copy instead of a trip
//! to the database. The store keeps its hottest reads in one; the HTTP layer keeps what it derives from
//! several reads (the station's searches) in another.
//!
//! The version is taken before the store is read, and an answer is kept only under the version it was read
//! at, so nothing older than the version it is kept under is ever served; when the version moves, every
//! answer goes. With the version unknown (`None`), nothing is kept or served. Answers that depend on the
//! time as well must keep what they need to check it on each use. Callers that miss the same answer at once
//! wait for the first one's read instead of each reading it: after a change, a busy route reads the store
//! once, not once per client.

use std::{
    any::Any,
    collections::HashMap,
    future::Future,
    hash::Hash,
    sync::{Arc, Mutex, PoisonError},
};

/// Answers kept at most; beyond, the cache starts afresh. A listing's page is a few kilobytes.
const MAX_ENTRIES: usize = 4096;

/// What the kept answers may weigh together (each weighs the length of its `Debug` text, a measure of its
/// size in memory); beyond, the cache starts afresh. Without it, a client asking for many large pages could
/// fill the memory.
const MAX_WEIGHT: usize = 64 * 1024 * 1024;

/// An answer heavier than this is served and not kept: a page of a thousand rows is rarely asked twice.
const MAX_ANSWER_WEIGHT: usize = MAX_WEIGHT / 64;

/// See the module documentation. `K` identifies an answer; answers of any type share the cache.
pub struct VersionedCache<K> {
    inner: Mutex<Entries<K>>,
    /// The answers being read now, each behind a gate that the callers missing it take in turn.
    reading: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
}

struct Entries<K> {
    version: Option<u64>,
    answers: HashMap<K, Arc<dyn Any + Send + Sync>>,
    /// The answers' weights together.
    weight: usize,
}

impl<K> Default for VersionedCache<K> {
    fn default() -> Self {
        VersionedCache {
            inner: Mutex::new(Entries { version: None, answers: HashMap::new(), weight: 0 }),
            reading: Mutex::default(),
        }
    }
}

impl<K> std::fmt::Debug for VersionedCache<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionedCache").finish_non_exhaustive()
    }
}

impl<K: Eq + Hash + Clone> VersionedCache<K> {
    /// The answer under `key`: the one kept, if `version` (taken now) is the version it was read at, or
    /// what `load` answers (kept unless it failed).
    pub async fn read<T, E, F>(&self, version: Option<u64>, key: K, load: F) -> Result<T, E>
    where
        T: Clone + std::fmt::Debug + Send + Sync + 'static,
        F: Future<Output = Result<T, E>>,
    {
        let Some(version) = version else { return load.await };
        if let Some(kept) = self.get::<T>(version, &key) {
            return Ok(kept);
        }
        let gate = self.reading.lock().unwrap_or_else(PoisonError::into_inner).entry(key.clone()).or_default().clone();
        let read = {
            let _turn = gate.lock().await;
            // Read by the caller before, while this one waited.
            match self.get::<T>(version, &key) {
                Some(kept) => Ok(kept),
                None => match load.await {
                    Ok(answer) => {
                        let weight = weight(&answer);
                        self.put(version, key.clone(), Arc::new(answer.clone()), weight);
                        Ok(answer)
                    }
                    Err(e) => Err(e),
                },
            }
        };
        let mut reading = self.reading.lock().unwrap_or_else(PoisonError::into_inner);
        // Nobody else holds the gate (the map's reference and this one): it goes.
        if Arc::strong_count(&gate) <= 2 {
            reading.remove(&key);
        }
        read
    }

    /// The answer kept under `key` at `version`, if there is one; forgets them all when the version moved on.
    pub fn get<T: Clone + 'static>(&self, version: u64, key: &K) -> Option<T> {
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.version {
            Some(kept) if kept == version => {
                entries.answers.get(key).and_then(|kept| kept.downcast_ref::<T>()).cloned()
            }
            // A caller that took the version before the latest change: what is kept is newer than it asks.
            Some(kept) if kept > version => None,
            _ => {
                entries.answers.clear();
                entries.weight = 0;
                entries.version = Some(version);
                None
            }
        }
    }

    /// Keeps `answer`, read at `version` and weighing `weight` (see [`weight`]), unless the version has
    /// moved on since or it weighs too much.
    pub fn put(&self, version: u64, key: K, answer: Arc<dyn Any + Send + Sync>, weight: usize) {
        if weight > MAX_ANSWER_WEIGHT {
            return;
        }
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.version != Some(version) {
            return;
        }
        if entries.answers.len() >= MAX_ENTRIES || entries.weight + weight > MAX_WEIGHT {
            entries.answers.clear();
            entries.weight = 0;
        }
        entries.weight += weight;
        entries.answers.insert(key, answer);
    }

    /// Forgets what is kept under `key`.
    pub fn forget(&self, key: &K) {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).answers.remove(key);
    }
}

/// An answer's weight in the cache: the length of its `Debug` text, counted without writing it anywhere.
pub fn weight<T: std::fmt::Debug>(answer: &T) -> usize {
    struct Count(usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = std::fmt::write(&mut count, format_args!("{answer:?}"));
    count.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_is_kept_while_the_version_stays() {
        let cache = VersionedCache::<&str>::default();
        let read = |n: u32| async move { Ok::<_, ()>(n) };
        assert_eq!(cache.read(Some(1), "a", read(10)).await, Ok(10));
        assert_eq!(cache.read(Some(1), "a", read(11)).await, Ok(10), "kept");
        assert_eq!(cache.read(Some(2), "a", read(12)).await, Ok(12), "the version moved");
        assert_eq!(cache.read(Some(1), "a", read(13)).await, Ok(13), "an older version never sees a newer answer");
        assert_eq!(cache.read(Some(2), "a", read(14)).await, Ok(12), "and does not disturb it");
        assert_eq!(cache.read(None, "a", read(15)).await, Ok(15), "an unknown version reads through");
        assert_eq!(cache.read(Some(2), "a", async { Err::<u32, _>(()) }).await, Ok(12));
        assert_eq!(cache.read(Some(3), "b", async { Err::<u32, _>(()) }).await, Err(()));
        assert_eq!(cache.read(Some(3), "b", read(16)).await, Ok(16), "a failure is not kept");
        cache.forget(&"b");
        assert_eq!(cache.read(Some(3), "b", read(17)).await, Ok(17));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_missing_the_same_answer_read_it_once() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let cache = Arc::new(VersionedCache::<&str>::default());
        let reads = Arc::new(AtomicU32::new(0));
        let callers: Vec<_> = (0..16)
            .map(|_| {
                let (cache, reads) = (cache.clone(), reads.clone());
                tokio::spawn(async move {
                    cache
                        .read(Some(1), "slow", async {
                            reads.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            Ok::<_, ()>(7)
                        })
                        .await
                })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.unwrap(), Ok(7));
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        assert!(cache.reading.lock().unwrap().is_empty(), "no gate is left behind");
    }

    #[tokio::test]
    async fn what_is_kept_weighs_a_bounded_amount() {
        let cache = VersionedCache::<u32>::default();
        let big = || async { Ok::<_, ()>("x".repeat(MAX_ANSWER_WEIGHT + 1)) };
        cache.read(Some(1), 0, big()).await.unwrap();
        assert_eq!(cache.get::<String>(1, &0), None, "too heavy to keep");
        let page = MAX_ANSWER_WEIGHT - 10;
        for key in 0..70 {
            cache.read(Some(1), key, async { Ok::<_, ()>("y".repeat(page)) }).await.unwrap();
            assert!(cache.inner.lock().unwrap().weight <= MAX_WEIGHT);
        }
        assert!(cache.get::<String>(1, &69).is_some(), "the latest is kept");
        assert!(cache.get::<String>(1, &0).is_none(), "the cache started afresh when full");
    }
}
