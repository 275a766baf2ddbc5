//! [`RegistryStore`] for [`DbStore`]: the built-in registry's metadata, in `ops::registry`.

use async_trait::async_trait;
use image_core::{
    Digest, Error, Result, Timestamp,
    oci::{ManifestDescriptor, ManifestRef, NewManifest, PutManifest, RegistryStore, StoredManifest, UploadSession},
};

use crate::{DbStore, detach, error::DbResult, models::to_micros, ops};

#[async_trait]
impl RegistryStore for DbStore {
    async fn repository_exists(&self, repository: &str) -> Result<bool> {
        let repository = repository.to_owned();
        with_conn!(self, |conn| ops::registry::repository_exists(conn, &repository).await)
    }

    async fn repository_blob(&self, repository: &str, digest: &Digest) -> Result<Option<i64>> {
        let (repository, digest) = (repository.to_owned(), digest.clone());
        with_conn!(self, |conn| ops::registry::repository_blob(conn, &repository, &digest).await)
    }

    async fn blob(&self, digest: &Digest) -> Result<Option<i64>> {
        let digest = digest.clone();
        with_conn!(self, |conn| ops::registry::blob(conn, &digest).await)
    }

    async fn link_blob(&self, repository: &str, digest: &Digest, size: i64) -> Result<()> {
        let (repository, digest) = (repository.to_owned(), digest.clone());
        in_transaction!(self, |conn| ops::registry::link_blob(conn, &repository, &digest, size).await)
    }

    async fn unlink_blob(&self, repository: &str, digest: &Digest) -> Result<bool> {
        let (repository, digest) = (repository.to_owned(), digest.clone());
        in_transaction!(self, |conn| ops::registry::unlink_blob(conn, &repository, &digest).await)
    }

    async fn put_manifest(&self, manifest: NewManifest) -> Result<PutManifest> {
        in_transaction!(self, |conn| ops::registry::put_manifest(conn, &manifest).await)
    }

    async fn get_manifest(&self, repository: &str, reference: &ManifestRef) -> Result<Option<StoredManifest>> {
        let (repository, reference) = (repository.to_owned(), reference.clone());
        with_conn!(self, |conn| ops::registry::get_manifest(conn, &repository, &reference).await)
    }

    async fn delete_manifest(&self, repository: &str, digest: &Digest) -> Result<bool> {
        let (repository, digest) = (repository.to_owned(), digest.clone());
        in_transaction!(self, |conn| ops::registry::delete_manifest(conn, &repository, &digest).await)
    }

    async fn delete_tag(&self, repository: &str, tag: &str) -> Result<bool> {
        let (repository, tag) = (repository.to_owned(), tag.to_owned());
        in_transaction!(self, |conn| ops::registry::delete_tag(conn, &repository, &tag).await)
    }

    async fn list_tags(&self, repository: &str, last: Option<&str>, n: i64) -> Result<Vec<String>> {
        let (repository, last) = (repository.to_owned(), last.map(str::to_owned));
        with_conn!(self, |conn| ops::registry::list_tags(conn, &repository, last.as_deref(), n).await)
    }

    async fn list_repositories(&self, last: Option<&str>, n: i64) -> Result<Vec<String>> {
        let last = last.map(str::to_owned);
        with_conn!(self, |conn| ops::registry::list_repositories(conn, last.as_deref(), n).await)
    }

    async fn referrers(&self, repository: &str, subject: &Digest) -> Result<Vec<ManifestDescriptor>> {
        let (repository, subject) = (repository.to_owned(), subject.clone());
        with_conn!(self, |conn| ops::registry::referrers(conn, &repository, &subject).await)
    }

    async fn parents(&self, repository: &str, digest: &Digest) -> Result<Vec<Digest>> {
        let (repository, digest) = (repository.to_owned(), digest.clone());
        with_conn!(self, |conn| ops::registry::parents(conn, &repository, &digest).await)
    }

    async fn unreferenced_blobs(&self, before: Timestamp) -> Result<Vec<(Digest, i64)>> {
        let before = to_micros(before);
        with_conn!(self, |conn| ops::registry::unreferenced_blobs(conn, before).await)
    }

    async fn delete_unreferenced_blob(&self, digest: &Digest, before: Timestamp) -> Result<bool> {
        let (digest, before) = (digest.clone(), to_micros(before));
        in_transaction!(self, |conn| ops::registry::delete_unreferenced_blob(conn, &digest, before).await)
    }

    async fn stale_uploads(&self, before: Timestamp) -> Result<Vec<UploadSession>> {
        let before = to_micros(before);
        with_conn!(self, |conn| ops::registry::stale_uploads(conn, before).await)
    }

    async fn record_gate_warning(&self, actor: &str, repository: &str, digest: &Digest, reason: &str) -> Result<()> {
        let (actor, repository, digest, reason) =
            (actor.to_owned(), repository.to_owned(), digest.clone(), reason.to_owned());
        in_transaction!(self, |conn| ops::registry::record_gate_warning(conn, &actor, &repository, &digest, &reason)
            .await)
    }

    async fn create_upload(&self, id: &str, repository: &str) -> Result<UploadSession> {
        let (id, repository) = (id.to_owned(), repository.to_owned());
        in_transaction!(self, |conn| ops::registry::create_upload(conn, &id, &repository).await)
    }

    async fn get_upload(&self, id: &str) -> Result<Option<UploadSession>> {
        let id = id.to_owned();
        with_conn!(self, |conn| ops::registry::get_upload(conn, &id).await)
    }

    async fn set_upload_size(&self, id: &str, size: i64) -> Result<()> {
        let id = id.to_owned();
        in_transaction!(self, |conn| ops::registry::set_upload_size(conn, &id, size).await)
    }

    async fn delete_upload(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        in_transaction!(self, |conn| ops::registry::delete_upload(conn, &id).await)
    }
}
