//! The admission check's catalog entries and answers, kept in memory while the catalog's generation stays.
//!
//! Every change to images and tags raises the store's catalog generation in its own transaction (by
//! trigger, on every server of the database), so an entry read at one generation holds until the
//! generation moves. The generation is read again only when the store's data version (which moves with
//! every change, see [`image_core::ops::OpsStore::data_version`]) has moved since it was last read, so a
//! check on an unchanged database reads nothing from it; with the data version unknown, every check reads
//! the generation. The generation is read before an entry is fetched, so an entry is never older than the
//! generation it is kept under.
//!
//! `POST /catalog/api/v1/admission/check` keeps its yes answers too, as the JSON bytes sent, by the exact
//! text it was asked about: an answer depends only on the catalog entry (kept under the same generation)
//! and the server's configuration, so a repeated check is a map lookup and a copy of its bytes.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock, PoisonError},
};

use axum::body::Bytes;
use image_core::{
    Reference,
    catalog::{CatalogImage, Tag},
    store::Store,
};

/// Entries kept at most, and answers kept at most; beyond, the map starts afresh.
const MAX_ENTRIES: usize = 100_000;

static HITS: OnceLock<::metrics::Counter> = OnceLock::new();
static MISSES: OnceLock<::metrics::Counter> = OnceLock::new();

/// Counts a hit or a miss in `imagegate_admission_cache_total`, through a handle made on first use.
fn count(counter: &OnceLock<::metrics::Counter>, result: &'static str) {
    counter.get_or_init(|| ::metrics::counter!("imagegate_admission_cache_total", "result" => result)).increment(1);
}

type Entry = Arc<(Option<CatalogImage>, Vec<Tag>)>;

/// Catalog entries by (registry, repository), and the admission check's JSON answers by the text it was
/// asked about, with the generation they were read at.
#[derive(Debug, Default)]
pub(crate) struct AdmissionCache {
    inner: Mutex<Cached>,
}

#[derive(Debug, Default)]
struct Cached {
    generation: Option<i64>,
    /// The data version at which `generation` was read.
    version: Option<u64>,
    entries: HashMap<(String, String), Entry>,
    answers: HashMap<String, Bytes>,
}

/// The catalog's generation as one check read it: what it reads and keeps is read at (or after) it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Generation(i64);

impl Cached {
    /// Whether what is kept stands for `generation`, after starting afresh if `generation` is newer;
    /// `false` when another check has read a newer generation since (what this one reads is not kept).
    fn at(&mut self, generation: Generation, version: Option<u64>) -> bool {
        match self.generation {
            Some(kept) if kept > generation.0 => return false,
            Some(kept) if kept == generation.0 => {}
            _ => {
                self.entries.clear();
                self.answers.clear();
                self.generation = Some(generation.0);
                self.version = None;
            }
        }
        // The generation was read at (or after) `version`: it stands for the catalog at that version.
        if version.is_some() && version > self.version {
            self.version = version;
        }
        true
    }
}

impl AdmissionCache {
    /// The catalog's generation now: from memory while the store's data version has not moved since it
    /// was read, from the store otherwise.
    pub(crate) async fn generation(&self, store: &dyn Store) -> image_core::Result<(Generation, Option<u64>)> {
        let version = store.data_version();
        let kept = {
            let cached = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            match (cached.version, version) {
                (Some(kept), Some(now)) if kept == now => cached.generation,
                _ => None,
            }
        };
        let generation = match kept {
            Some(generation) => generation,
            None => store.catalog_generation().await?,
        };
        Ok((Generation(generation), version))
    }

    /// The catalog's image (if any) and tags for `reference`, from memory while the catalog is unchanged.
    pub(crate) async fn entry(&self, store: &dyn Store, reference: &Reference) -> image_core::Result<Entry> {
        let (generation, version) = self.generation(store).await?;
        self.entry_at(store, generation, version, reference).await
    }

    /// [`AdmissionCache::entry`] under a generation read by [`AdmissionCache::generation`].
    pub(crate) async fn entry_at(
        &self,
        store: &dyn Store,
        generation: Generation,
        version: Option<u64>,
        reference: &Reference,
    ) -> image_core::Result<Entry> {
        // Built once: looked up with, and kept under on a miss.
        let key = (reference.registry().to_owned(), reference.repository().to_owned());
        let kept = {
            let mut cached = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            cached.at(generation, version).then(|| cached.entries.get(&key).cloned())
        };
        match kept {
            Some(Some(entry)) => {
                count(&HITS, "hit");
                return Ok(entry);
            }
            Some(None) => {}
            None => return Ok(Arc::new(crate::profile::catalog_entry(store, reference).await?)),
        }
        count(&MISSES, "miss");
        let entry: Entry = Arc::new(crate::profile::catalog_entry(store, reference).await?);
        let mut cached = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // Kept only under the generation it was read at; a newer one has cleared the map already.
        if cached.generation == Some(generation.0) {
            if cached.entries.len() >= MAX_ENTRIES {
                cached.entries.clear();
            }
            cached.entries.insert(key, entry.clone());
        }
        Ok(entry)
    }

    /// The answer kept for the check of `image` (the text it was asked about) at `generation`.
    pub(crate) fn answer(&self, generation: Generation, version: Option<u64>, image: &str) -> Option<Bytes> {
        let mut cached = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !cached.at(generation, version) {
            return None;
        }
        let answer = cached.answers.get(image).cloned();
        if answer.is_some() {
            count(&HITS, "hit");
        }
        answer
    }

    /// Keeps the answer to the check of `image`, decided from what was read at `generation`.
    pub(crate) fn keep_answer(&self, generation: Generation, image: String, answer: Bytes) {
        let mut cached = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if cached.generation == Some(generation.0) {
            if cached.answers.len() >= MAX_ENTRIES {
                cached.answers.clear();
            }
            cached.answers.insert(image, answer);
        }
    }
}
