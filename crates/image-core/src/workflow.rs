//! Operations that change both the store and a registry, in the order that keeps the two consistent.
//!
//! A handler calls one of these instead of ordering the two steps itself.

use crate::{
    Error, Result,
    copy::ImageCopier,
    import::{ImportId, ImportJob, ImportState},
    store::ImportStore,
};

/// Deletes an import: for a succeeded one, what it copied into the internal registry (`registry`) first,
/// then the record. A record whose artifact is gone can be deleted again; an artifact whose record is
/// gone would be invisible, so the registry goes first, and a registry that refuses leaves the record.
///
/// Active imports are refused (`Conflict`: cancel or wait first); a succeeded import without a registry
/// to delete it from is `Unavailable`.
pub async fn delete_import(
    store: &dyn ImportStore,
    registry: Option<&dyn ImageCopier>,
    id: ImportId,
    actor: &str,
) -> Result<ImportJob> {
    let import = store.get_import(id).await?;
    if import.state.is_active() {
        return Err(Error::conflict(format!("image {id} is still being imported; cancel or wait for it first")));
    }
    if import.state == ImportState::Succeeded {
        let registry = registry.ok_or_else(|| {
            Error::unavailable("no internal registry is configured: start the server with --internal-registry")
        })?;
        registry.delete_image(&import.target).await.map_err(|e| {
            Error::upstream_unavailable(format!("cannot delete {} from the registry: {e}", import.target))
        })?;
    }
    store.delete_import(id, actor).await
}
