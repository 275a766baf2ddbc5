//! The station profile's registries: registry secrets with a `station_registries` row beside them (the
//! URL as given, the API version, whether a self-signed certificate is trusted). Deleting the secret
//! (`kube::delete_registry_secret`) deletes the row with it.

use diesel::prelude::*;
use image_core::{
    Error,
    kube::{NewRegistrySecret, RegistrySecret},
    station::{StationFields, StationRegistry, StationRegistryUpdate},
};
use serde_json::json;

use super::events::{Subject, record};
use crate::{
    conn::{Conn, RunQueryDsl, columns},
    crypto::Sealer,
    error::DbResult,
    models::{RegistrySecretRow, now_micros},
    schema::{registry_secrets, station_downloads, station_registries},
};

/// Recorded when a station registry changes; details: the secret's id, namespace and name, and the names
/// of the fields that changed (never the password itself).
pub(crate) const STATION_REGISTRY_UPDATED: &str = "registry.secret.updated";

pub(crate) type FieldsRow = (String, String, bool);

fn fields((url, version, enable_trust_cert): FieldsRow) -> StationFields {
    StationFields { url, version, enable_trust_cert }
}

pub(crate) async fn create_station_registry(
    conn: &mut Conn<'_>,
    sealer: &Sealer,
    secret: &NewRegistrySecret,
    sealed: &str,
    station: &StationFields,
    actor: &str,
) -> DbResult<StationRegistry> {
    let created = super::kube::create_registry_secret(conn, sealer, secret, sealed, actor).await?;
    diesel::insert_into(station_registries::table)
        .values((
            station_registries::secret_id.eq(created.id.get()),
            station_registries::url.eq(&station.url),
            station_registries::version.eq(&station.version),
            station_registries::enable_trust_cert.eq(station.enable_trust_cert),
        ))
        .execute(conn)
        .await?;
    Ok(StationRegistry { secret: created, fields: station.clone() })
}

/// Oldest first (by the secret's id).
/// The namespace's station registries as stored, passwords sealed; [`open_station_registries`] opens them.
pub(crate) async fn list_station_registries(
    conn: &mut Conn<'_>,
    namespace: &str,
) -> DbResult<Vec<(RegistrySecretRow, FieldsRow)>> {
    registry_secrets::table
        .inner_join(station_registries::table)
        .filter(registry_secrets::namespace.eq(namespace))
        .order(registry_secrets::id.asc())
        .select((
            columns::<RegistrySecretRow>(),
            (station_registries::url, station_registries::version, station_registries::enable_trust_cert),
        ))
        .load(conn)
        .await
        .map_err(Into::into)
}

pub(crate) fn open_station_registries(
    rows: Vec<(RegistrySecretRow, FieldsRow)>,
    sealer: &Sealer,
) -> DbResult<Vec<StationRegistry>> {
    rows.into_iter()
        .map(|(secret, row)| Ok(StationRegistry { secret: secret.into_domain(sealer)?, fields: fields(row) }))
        .collect()
}

async fn find(conn: &mut Conn<'_>, namespace: &str, name: &str) -> DbResult<(RegistrySecretRow, FieldsRow)> {
    let found: Option<(RegistrySecretRow, FieldsRow)> = registry_secrets::table
        .inner_join(station_registries::table)
        .filter(registry_secrets::namespace.eq(namespace))
        .filter(registry_secrets::name.eq(name))
        .select((
            columns::<RegistrySecretRow>(),
            (station_registries::url, station_registries::version, station_registries::enable_trust_cert),
        ))
        .first(conn)
        .await
        .optional()?;
    found.ok_or_else(|| Error::not_found("registry", format!("{namespace}/{name}")).into())
}

/// `sealed` is the new password, already sealed for this namespace and name, when it changes.
pub(crate) async fn update_station_registry(
    conn: &mut Conn<'_>,
    sealer: &Sealer,
    namespace: &str,
    name: &str,
    update: &StationRegistryUpdate,
    sealed: Option<&str>,
    actor: &str,
) -> DbResult<StationRegistry> {
    // Locks the secret's row for the rest of the transaction.
    conn.dialect().lock_registry_secret(namespace, name).await?;
    let (row, station) = find(conn, namespace, name).await?;
    let id = row.id;
    let now = now_micros();
    let mut changed = Vec::new();
    let secret_row = registry_secrets::table.find(id);
    if let Some(display_name) = &update.display_name {
        diesel::update(secret_row).set(registry_secrets::display_name.eq(display_name)).execute(conn).await?;
        changed.push("display_name");
    }
    if let Some(domain) = &update.domain {
        diesel::update(secret_row).set(registry_secrets::domain.eq(domain)).execute(conn).await?;
        changed.push("domain");
    }
    if let Some(username) = &update.username {
        diesel::update(secret_row).set(registry_secrets::username.eq(username)).execute(conn).await?;
        changed.push("username");
    }
    if let Some(sealed) = sealed {
        diesel::update(secret_row).set(registry_secrets::password_sealed.eq(sealed)).execute(conn).await?;
        changed.push("password");
    }
    if let Some(insecure) = update.insecure {
        diesel::update(secret_row).set(registry_secrets::insecure.eq(insecure)).execute(conn).await?;
        changed.push("insecure");
    }
    diesel::update(secret_row).set(registry_secrets::updated_at.eq(now)).execute(conn).await?;
    let mut station = fields(station);
    if let Some(url) = &update.url {
        station.url = url.clone();
        changed.push("url");
    }
    if let Some(version) = &update.version {
        station.version = version.clone();
        changed.push("version");
    }
    if let Some(trust) = update.enable_trust_cert {
        station.enable_trust_cert = trust;
        changed.push("enable_trust_cert");
    }
    diesel::update(station_registries::table.find(id))
        .set((
            station_registries::url.eq(&station.url),
            station_registries::version.eq(&station.version),
            station_registries::enable_trust_cert.eq(station.enable_trust_cert),
        ))
        .execute(conn)
        .await?;
    let (secret, _) = find(conn, namespace, name).await?;
    let secret: RegistrySecret = secret.into_domain(sealer)?;
    let details = json!({ "id": secret.id, "namespace": namespace, "name": name, "changed": changed });
    record(conn, STATION_REGISTRY_UPDATED, actor, now, Subject::default(), details).await?;
    Ok(StationRegistry { secret, fields: station })
}

/// Keeps a download's location and icon beside its import, replacing what was kept.
pub(crate) async fn record_download(conn: &mut Conn<'_>, import_id: i64, location: &str, icon: &str) -> DbResult<()> {
    let exists: Option<i64> = crate::schema::imports::table
        .find(import_id)
        .select(crate::schema::imports::id)
        .first(conn)
        .await
        .optional()?;
    if exists.is_none() {
        return Err(Error::not_found("import", import_id).into());
    }
    diesel::delete(station_downloads::table.find(import_id)).execute(conn).await?;
    diesel::insert_into(station_downloads::table)
        .values((
            station_downloads::import_id.eq(import_id),
            station_downloads::location.eq(location),
            station_downloads::icon.eq(icon),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Every download's location and icon, by import id.
pub(crate) async fn downloads(conn: &mut Conn<'_>) -> DbResult<Vec<(i64, String, String)>> {
    Ok(station_downloads::table
        .select((station_downloads::import_id, station_downloads::location, station_downloads::icon))
        .load(conn)
        .await?)
}
