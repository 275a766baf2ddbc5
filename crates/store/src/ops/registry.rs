//! The built-in registry's metadata (`image_core::oci`): blobs and the repositories holding them, manifests
//! with their references, tags and upload sessions.

use diesel::prelude::*;
use image_core::{
    Digest,
    oci::{ManifestDescriptor, ManifestRef, NewManifest, PutManifest, ReferenceKind, StoredManifest, UploadSession},
};

use crate::{
    conn::{Conn, RunQueryDsl, columns},
    error::{DbResult, corrupt},
    models::{Micros, from_micros, now_micros},
    schema::{
        registry_blobs, registry_manifest_references, registry_manifests, registry_repository_blobs, registry_tags,
        registry_uploads,
    },
};

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = registry_manifests)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct ManifestRow {
    repository: String,
    digest: String,
    media_type: String,
    artifact_type: Option<String>,
    size: i64,
    content: Vec<u8>,
    subject: Option<String>,
    annotations: Option<String>,
    created_at: Micros,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = registry_manifests)]
struct NewManifestRow<'a> {
    repository: &'a str,
    digest: &'a str,
    media_type: &'a str,
    artifact_type: Option<&'a str>,
    size: i64,
    content: &'a [u8],
    subject: Option<&'a str>,
    annotations: Option<&'a str>,
    created_at: Micros,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = registry_manifest_references)]
struct NewReferenceRow<'a> {
    repository: &'a str,
    manifest_digest: &'a str,
    position: i32,
    digest: &'a str,
    kind: &'a str,
    size: i64,
}

#[derive(Debug, Queryable, Selectable)]
#[diesel(table_name = registry_uploads)]
#[diesel(check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct UploadRow {
    id: String,
    repository: String,
    size: i64,
    created_at: Micros,
    updated_at: Micros,
}

fn digest(value: &str) -> DbResult<Digest> {
    value.parse().map_err(|_| corrupt(format!("registry: stored digest `{value}` is not a digest")))
}

impl ManifestRow {
    fn into_domain(self) -> DbResult<StoredManifest> {
        let _ = self.size;
        Ok(StoredManifest {
            digest: digest(&self.digest)?,
            subject: self.subject.as_deref().map(digest).transpose()?,
            repository: self.repository,
            media_type: self.media_type,
            artifact_type: self.artifact_type,
            content: self.content,
            annotations: self.annotations,
            created_at: from_micros(self.created_at)?,
        })
    }
}

impl UploadRow {
    fn into_domain(self) -> DbResult<UploadSession> {
        Ok(UploadSession {
            id: self.id,
            repository: self.repository,
            size: self.size,
            created_at: from_micros(self.created_at)?,
            updated_at: from_micros(self.updated_at)?,
        })
    }
}

pub(crate) async fn repository_exists(conn: &mut Conn<'_>, repository: &str) -> DbResult<bool> {
    let manifests: i64 = registry_manifests::table
        .filter(registry_manifests::repository.eq(repository))
        .count()
        .get_result(conn)
        .await?;
    if manifests > 0 {
        return Ok(true);
    }
    let blobs: i64 = registry_repository_blobs::table
        .filter(registry_repository_blobs::repository.eq(repository))
        .count()
        .get_result(conn)
        .await?;
    if blobs > 0 {
        return Ok(true);
    }
    let uploads: i64 =
        registry_uploads::table.filter(registry_uploads::repository.eq(repository)).count().get_result(conn).await?;
    Ok(uploads > 0)
}

pub(crate) async fn repository_blob(conn: &mut Conn<'_>, repository: &str, digest: &Digest) -> DbResult<Option<i64>> {
    let linked: i64 = registry_repository_blobs::table
        .filter(registry_repository_blobs::repository.eq(repository))
        .filter(registry_repository_blobs::digest.eq(digest.as_str()))
        .count()
        .get_result(conn)
        .await?;
    if linked == 0 {
        return Ok(None);
    }
    blob(conn, digest).await
}

pub(crate) async fn blob(conn: &mut Conn<'_>, digest: &Digest) -> DbResult<Option<i64>> {
    Ok(registry_blobs::table.find(digest.as_str()).select(registry_blobs::size).first::<i64>(conn).await.optional()?)
}

pub(crate) async fn link_blob(conn: &mut Conn<'_>, repository: &str, digest: &Digest, size: i64) -> DbResult<()> {
    let now = now_micros();
    diesel::insert_into(registry_blobs::table)
        .values((
            registry_blobs::digest.eq(digest.as_str()),
            registry_blobs::size.eq(size),
            registry_blobs::created_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    diesel::insert_into(registry_repository_blobs::table)
        .values((
            registry_repository_blobs::repository.eq(repository),
            registry_repository_blobs::digest.eq(digest.as_str()),
            registry_repository_blobs::created_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn unlink_blob(conn: &mut Conn<'_>, repository: &str, digest: &Digest) -> DbResult<bool> {
    let deleted = diesel::delete(
        registry_repository_blobs::table
            .filter(registry_repository_blobs::repository.eq(repository))
            .filter(registry_repository_blobs::digest.eq(digest.as_str())),
    )
    .execute(conn)
    .await?;
    Ok(deleted > 0)
}

async fn manifest_exists(conn: &mut Conn<'_>, repository: &str, digest: &str) -> DbResult<bool> {
    let found: i64 = registry_manifests::table
        .filter(registry_manifests::repository.eq(repository))
        .filter(registry_manifests::digest.eq(digest))
        .count()
        .get_result(conn)
        .await?;
    Ok(found > 0)
}

pub(crate) async fn put_manifest(conn: &mut Conn<'_>, manifest: &NewManifest) -> DbResult<PutManifest> {
    let repository = manifest.repository.as_str();
    for reference in &manifest.references {
        let present = match reference.kind {
            ReferenceKind::Blob => repository_blob(conn, repository, &reference.digest).await?.is_some(),
            ReferenceKind::Manifest => manifest_exists(conn, repository, reference.digest.as_str()).await?,
        };
        if !present {
            return Ok(PutManifest::Missing(reference.clone()));
        }
    }
    let now = now_micros();
    if !manifest_exists(conn, repository, manifest.digest.as_str()).await? {
        let row = NewManifestRow {
            repository,
            digest: manifest.digest.as_str(),
            media_type: &manifest.media_type,
            artifact_type: manifest.artifact_type.as_deref(),
            size: manifest.content.len() as i64,
            content: &manifest.content,
            subject: manifest.subject.as_ref().map(Digest::as_str),
            annotations: manifest.annotations.as_deref(),
            created_at: now,
        };
        diesel::insert_into(registry_manifests::table).values(row).execute(conn).await?;
        let rows: Vec<NewReferenceRow<'_>> = manifest
            .references
            .iter()
            .enumerate()
            .map(|(position, reference)| NewReferenceRow {
                repository,
                manifest_digest: manifest.digest.as_str(),
                position: position as i32,
                digest: reference.digest.as_str(),
                kind: reference.kind.as_str(),
                size: reference.size,
            })
            .collect();
        for row in rows {
            diesel::insert_into(registry_manifest_references::table).values(row).execute(conn).await?;
        }
    }
    if let Some(tag) = &manifest.tag {
        diesel::insert_into(registry_tags::table)
            .values((
                registry_tags::repository.eq(repository),
                registry_tags::tag.eq(tag),
                registry_tags::digest.eq(manifest.digest.as_str()),
                registry_tags::updated_at.eq(now),
            ))
            .on_conflict((registry_tags::repository, registry_tags::tag))
            .do_update()
            .set((registry_tags::digest.eq(manifest.digest.as_str()), registry_tags::updated_at.eq(now)))
            .execute(conn)
            .await?;
    }
    Ok(PutManifest::Stored)
}

pub(crate) async fn get_manifest(
    conn: &mut Conn<'_>,
    repository: &str,
    reference: &ManifestRef,
) -> DbResult<Option<StoredManifest>> {
    let digest = match reference {
        ManifestRef::Digest(digest) => digest.as_str().to_owned(),
        ManifestRef::Tag(tag) => {
            let found: Option<String> = registry_tags::table
                .filter(registry_tags::repository.eq(repository))
                .filter(registry_tags::tag.eq(tag))
                .select(registry_tags::digest)
                .first(conn)
                .await
                .optional()?;
            match found {
                Some(digest) => digest,
                None => return Ok(None),
            }
        }
    };
    let row: Option<ManifestRow> = registry_manifests::table
        .filter(registry_manifests::repository.eq(repository))
        .filter(registry_manifests::digest.eq(&digest))
        .select(columns::<ManifestRow>())
        .first(conn)
        .await
        .optional()?;
    row.map(ManifestRow::into_domain).transpose()
}

pub(crate) async fn delete_manifest(conn: &mut Conn<'_>, repository: &str, digest: &Digest) -> DbResult<bool> {
    diesel::delete(
        registry_tags::table
            .filter(registry_tags::repository.eq(repository))
            .filter(registry_tags::digest.eq(digest.as_str())),
    )
    .execute(conn)
    .await?;
    diesel::delete(
        registry_manifest_references::table
            .filter(registry_manifest_references::repository.eq(repository))
            .filter(registry_manifest_references::manifest_digest.eq(digest.as_str())),
    )
    .execute(conn)
    .await?;
    let deleted = diesel::delete(
        registry_manifests::table
            .filter(registry_manifests::repository.eq(repository))
            .filter(registry_manifests::digest.eq(digest.as_str())),
    )
    .execute(conn)
    .await?;
    Ok(deleted > 0)
}

pub(crate) async fn delete_tag(conn: &mut Conn<'_>, repository: &str, tag: &str) -> DbResult<bool> {
    let deleted = diesel::delete(
        registry_tags::table.filter(registry_tags::repository.eq(repository)).filter(registry_tags::tag.eq(tag)),
    )
    .execute(conn)
    .await?;
    Ok(deleted > 0)
}

pub(crate) async fn list_tags(
    conn: &mut Conn<'_>,
    repository: &str,
    last: Option<&str>,
    n: i64,
) -> DbResult<Vec<String>> {
    let query = registry_tags::table
        .filter(registry_tags::repository.eq(repository))
        .filter(registry_tags::tag.gt(last.unwrap_or("")))
        .select(registry_tags::tag)
        .order(registry_tags::tag.asc())
        .limit(n);
    Ok(query.load(conn).await?)
}

pub(crate) async fn list_repositories(conn: &mut Conn<'_>, last: Option<&str>, n: i64) -> DbResult<Vec<String>> {
    let query = registry_manifests::table
        .filter(registry_manifests::repository.gt(last.unwrap_or("")))
        .select(registry_manifests::repository)
        .distinct()
        .order(registry_manifests::repository.asc())
        .limit(n);
    Ok(query.load(conn).await?)
}

/// Digest, media type, artifact type, size and annotations of a manifest.
type DescriptorRow = (String, String, Option<String>, i64, Option<String>);

pub(crate) async fn referrers(
    conn: &mut Conn<'_>,
    repository: &str,
    subject: &Digest,
) -> DbResult<Vec<ManifestDescriptor>> {
    let rows: Vec<DescriptorRow> = registry_manifests::table
        .filter(registry_manifests::repository.eq(repository))
        .filter(registry_manifests::subject.eq(subject.as_str()))
        .select((
            registry_manifests::digest,
            registry_manifests::media_type,
            registry_manifests::artifact_type,
            registry_manifests::size,
            registry_manifests::annotations,
        ))
        .order(registry_manifests::digest.asc())
        .load(conn)
        .await?;
    rows.into_iter()
        .map(|(d, media_type, artifact_type, size, annotations)| {
            Ok(ManifestDescriptor { digest: digest(&d)?, media_type, artifact_type, size, annotations })
        })
        .collect()
}

pub(crate) async fn parents(conn: &mut Conn<'_>, repository: &str, child: &Digest) -> DbResult<Vec<Digest>> {
    let rows: Vec<String> = registry_manifest_references::table
        .filter(registry_manifest_references::repository.eq(repository))
        .filter(registry_manifest_references::digest.eq(child.as_str()))
        .filter(registry_manifest_references::kind.eq("manifest"))
        .select(registry_manifest_references::manifest_digest)
        .distinct()
        .load(conn)
        .await?;
    rows.iter().map(|d| digest(d)).collect()
}

pub(crate) async fn unreferenced_blobs(conn: &mut Conn<'_>, before: Micros) -> DbResult<Vec<(Digest, i64)>> {
    let referenced = registry_manifest_references::table
        .filter(registry_manifest_references::kind.eq("blob"))
        .select(registry_manifest_references::digest);
    let rows: Vec<(String, i64)> = registry_blobs::table
        .filter(registry_blobs::created_at.lt(before))
        .filter(diesel::dsl::not(registry_blobs::digest.eq_any(referenced)))
        .select((registry_blobs::digest, registry_blobs::size))
        .order(registry_blobs::digest.asc())
        .load(conn)
        .await?;
    rows.into_iter().map(|(d, size)| Ok((digest(&d)?, size))).collect()
}

pub(crate) async fn delete_unreferenced_blob(conn: &mut Conn<'_>, blob: &Digest, before: Micros) -> DbResult<bool> {
    let referenced: i64 = registry_manifest_references::table
        .filter(registry_manifest_references::digest.eq(blob.as_str()))
        .filter(registry_manifest_references::kind.eq("blob"))
        .count()
        .get_result(conn)
        .await?;
    if referenced > 0 {
        return Ok(false);
    }
    let old: i64 = registry_blobs::table
        .filter(registry_blobs::digest.eq(blob.as_str()))
        .filter(registry_blobs::created_at.lt(before))
        .count()
        .get_result(conn)
        .await?;
    if old == 0 {
        return Ok(false);
    }
    diesel::delete(registry_repository_blobs::table.filter(registry_repository_blobs::digest.eq(blob.as_str())))
        .execute(conn)
        .await?;
    diesel::delete(registry_blobs::table.find(blob.as_str())).execute(conn).await?;
    Ok(true)
}

pub(crate) async fn stale_uploads(conn: &mut Conn<'_>, before: Micros) -> DbResult<Vec<UploadSession>> {
    let rows: Vec<UploadRow> = registry_uploads::table
        .filter(registry_uploads::updated_at.lt(before))
        .select(columns::<UploadRow>())
        .order(registry_uploads::id.asc())
        .load(conn)
        .await?;
    rows.into_iter().map(UploadRow::into_domain).collect()
}

pub(crate) async fn record_gate_warning(
    conn: &mut Conn<'_>,
    actor: &str,
    repository: &str,
    digest: &Digest,
    reason: &str,
) -> DbResult<()> {
    let details = serde_json::json!({ "repository": repository, "digest": digest, "reason": reason });
    super::events::record(conn, image_core::oci::GATE_WARNED_EVENT, actor, now_micros(), Default::default(), details)
        .await
}

pub(crate) async fn create_upload(conn: &mut Conn<'_>, id: &str, repository: &str) -> DbResult<UploadSession> {
    let now = now_micros();
    diesel::insert_into(registry_uploads::table)
        .values((
            registry_uploads::id.eq(id),
            registry_uploads::repository.eq(repository),
            registry_uploads::size.eq(0i64),
            registry_uploads::created_at.eq(now),
            registry_uploads::updated_at.eq(now),
        ))
        .execute(conn)
        .await?;
    get_upload(conn, id).await?.ok_or_else(|| corrupt(format!("registry: upload {id} vanished")))
}

pub(crate) async fn get_upload(conn: &mut Conn<'_>, id: &str) -> DbResult<Option<UploadSession>> {
    let row: Option<UploadRow> =
        registry_uploads::table.find(id).select(columns::<UploadRow>()).first(conn).await.optional()?;
    row.map(UploadRow::into_domain).transpose()
}

pub(crate) async fn set_upload_size(conn: &mut Conn<'_>, id: &str, size: i64) -> DbResult<()> {
    diesel::update(registry_uploads::table.find(id))
        .set((registry_uploads::size.eq(size), registry_uploads::updated_at.eq(now_micros())))
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn delete_upload(conn: &mut Conn<'_>, id: &str) -> DbResult<bool> {
    Ok(diesel::delete(registry_uploads::table.find(id)).execute(conn).await? > 0)
}
