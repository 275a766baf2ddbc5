//! The admission check's catalog entries, kept in memory while the catalog's generation stays.
//!
//! Every change to images and tags raises the store's catalog generation in its own transaction (by
//! trigger, on every server of the database), so an entry read at one generation holds until the
//! generation moves; each check reads that one row and, when it moved, forgets every entry. The
//! generation is read before an entry is fetched, so an entry is never older than the generation it is
//! kept under.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use image_core::{
    Reference,
    catalog::{CatalogImage, Tag},
    store::Store,
};

/// Entries kept at most; beyond, the cache starts afresh.
const MAX_ENTRIES: usize = 100_000;

type Entry = Arc<(Option<CatalogImage>, Vec<Tag>)>;

/// Catalog entries by (registry, repository), with the generation they were read at.
#[derive(Debug, Default)]
pub(crate) struct AdmissionCache {
    inner: Mutex<Cached>,
}

#[derive(Debug, Default)]
struct Cached {
    generation: Option<i64>,
    entries: HashMap<(String, String), Entry>,
}

impl AdmissionCache {
    /// The catalog's image (if any) and tags for `reference`, from memory while the catalog is unchanged.
    pub(crate) async fn entry(&self, store: &dyn Store, reference: &Reference) -> image_core::Result<Entry> {
        let generation = store.catalog_generation().await?;
        let key = (reference.registry().to_owned(), reference.repository().to_owned());
        {
            let mut cached = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            if cached.generation != Some(generation) {
                cached.entries.clear();
                cached.generation = Some(generation);
            }
            if let Some(entry) = cached.entries.get(&key) {
                ::metrics::counter!("imagegate_admission_cache_total", "result" => "hit").increment(1);
                return Ok(entry.clone());
            }
        }
        ::metrics::counter!("imagegate_admission_cache_total", "result" => "miss").increment(1);
        let entry: Entry = Arc::new(crate::profile::catalog_entry(store, reference).await?);
        let mut cached = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // Kept only under the generation it was read at; a newer one has cleared the map already.
        if cached.generation == Some(generation) {
            if cached.entries.len() >= MAX_ENTRIES {
                cached.entries.clear();
            }
            cached.entries.insert(key, entry.clone());
        }
        Ok(entry)
    }
}
