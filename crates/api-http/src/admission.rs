//! The admission check's catalog entries, kept in memory while the catalog's generation stays.
//!
//! Every change to images and tags raises the store's catalog generation in its own transaction (by
//! trigger, on every server of the database), so an entry read at one generation holds until the
//! generation moves. The generation is read again only when the store's data version (which moves with
//! every change, see [`image_core::ops::OpsStore::data_version`]) has moved since it was last read, so a
//! check on an unchanged database reads nothing from it; with the data version unknown, every check reads
//! the generation. The generation is read before an entry is fetched, so an entry is never older than the
//! generation it is kept under.

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
    /// The data version at which `generation` was read.
    version: Option<u64>,
    entries: HashMap<(String, String), Entry>,
}

impl AdmissionCache {
    /// The catalog's image (if any) and tags for `reference`, from memory while the catalog is unchanged.
    pub(crate) async fn entry(&self, store: &dyn Store, reference: &Reference) -> image_core::Result<Entry> {
        let key = (reference.registry().to_owned(), reference.repository().to_owned());
        let version = store.data_version();
        let generation = {
            let cached = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            match (cached.version, version) {
                (Some(kept), Some(now)) if kept == now => cached.generation,
                _ => None,
            }
        };
        let generation = match generation {
            Some(generation) => generation,
            None => store.catalog_generation().await?,
        };
        let kept = {
            let mut cached = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            match cached.generation {
                // Another check has read a newer generation since: this one's is no key to what is kept.
                Some(kept) if kept > generation => None,
                Some(kept) if kept == generation => Some(()),
                _ => {
                    cached.entries.clear();
                    cached.generation = Some(generation);
                    cached.version = None;
                    Some(())
                }
            }
            .map(|()| {
                // The generation was read at (or after) `version`: it stands for the catalog at that version.
                if version.is_some() && version > cached.version {
                    cached.version = version;
                }
                cached.entries.get(&key).cloned()
            })
        };
        match kept {
            Some(Some(entry)) => {
                ::metrics::counter!("imagegate_admission_cache_total", "result" => "hit").increment(1);
                return Ok(entry);
            }
            Some(None) => {}
            None => return Ok(Arc::new(crate::profile::catalog_entry(store, reference).await?)),
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
