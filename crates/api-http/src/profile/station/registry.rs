//! `GET/POST /api/v1/registry`, `DELETE /api/v1/registry/{name}`, `GET/POST /api/v1/registry/ping`.
//!
//! A station registry is a registry secret in the station's namespace (`--station-namespace`), so the
//! kube-style API sees the same credentials, sealed the same way. Its station name (which may hold spaces)
//! is the secret's display name, and the secret's own name is made from it. `Docker Hub` is always there
//! as id 1 and cannot be changed; the others' ids are their secret's id plus one.
//! Passwords are never returned: the field is there, empty.

use axum::{Json, extract::State};
use image_core::{
    Error,
    kube::{NewRegistrySecret, Provider, Secret},
    station::{StationFields, StationRegistry, StationRegistryUpdate},
};
use rand::Rng as _;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminUser, ApiResult, Body, Query, User};
use crate::{AppState, error::ApiError, extract::PathParams};

/// The registry every station has.
pub(super) const DOCKER_HUB: &str = "Docker Hub";
const DOCKER_HUB_URL: &str = "https://registry.hub.docker.com";

fn docker_hub() -> Value {
    json!({
        "enable_trust_cert": true,
        "id": 1,
        "metadata": "",
        "name": DOCKER_HUB,
        "password": "",
        "url": DOCKER_HUB_URL,
        "username": "",
        "version": "",
    })
}

/// A station registry as the API shows it: never its password.
fn registry_json(registry: &StationRegistry) -> Value {
    json!({
        "enable_trust_cert": registry.fields.enable_trust_cert,
        "id": registry.secret.id.get() + 1,
        "metadata": "",
        "name": station_name(registry),
        "password": "",
        "url": registry.fields.url,
        "username": registry.secret.username,
        "version": registry.fields.version,
    })
}

fn station_name(registry: &StationRegistry) -> &str {
    registry.secret.display_name.as_deref().unwrap_or(&registry.secret.name)
}

/// The station's registries, Docker Hub first.
pub(super) async fn registries(state: &AppState) -> Result<Vec<StationRegistry>, Error> {
    state.store.list_station_registries(&state.station.namespace).await
}

/// The station registry called `name`, or a 404.
pub(super) async fn find(state: &AppState, name: &str) -> Result<StationRegistry, ApiError> {
    registries(state)
        .await?
        .into_iter()
        .find(|r| station_name(r) == name)
        .ok_or_else(|| ApiError::not_found(format!("Registry not found: {name}")))
}

async fn listing(state: &AppState) -> ApiResult<Json<Value>> {
    let mut list = vec![docker_hub()];
    list.extend(registries(state).await?.iter().map(registry_json));
    Ok(Json(json!({ "registries": list })))
}

/// `GET /api/v1/registry`.
pub(super) async fn list(State(state): State<AppState>, _: User) -> ApiResult<Json<Value>> {
    listing(&state).await
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegistryBody {
    method: Option<String>,
    name: Option<String>,
    oldname: Option<String>,
    url: Option<String>,
    enable_trust_cert: Option<bool>,
    version: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// A registry URL: `http(s)://host[:port]`, with an optional path the registry API ignores.
struct RegistryUrl {
    /// `host[:port]`, as in references.
    domain: String,
    insecure: bool,
}

fn parse_url(field: &str, url: &str) -> Result<RegistryUrl, Error> {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => return Err(Error::invalid(field, format!("`{url}` is not an http:// or https:// URL"))),
    };
    if scheme != "http" && scheme != "https" {
        return Err(Error::invalid(field, format!("`{url}` is not an http:// or https:// URL")));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let domain = image_core::catalog::normalise_registry(&host.to_ascii_lowercase());
    // The seed's own example names `new_test.registry.com`: an underscore is taken here, as DNS takes it.
    if image_core::validate::registry_host(&domain.replace('_', "-")).is_err() {
        return Err(Error::invalid(field, format!("`{url}` does not name a registry host (`host[:port]`)")));
    }
    Ok(RegistryUrl { domain, insecure: scheme == "http" })
}

fn check_name(field: &str, name: &str) -> Result<(), Error> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(Error::invalid(field, "must be 1 to 100 characters, not only spaces"));
    }
    image_core::validate::text(name, 100).map_err(|e| Error::invalid(field, e))
}

fn check_text(field: &str, text: &str, max: usize) -> Result<(), Error> {
    if text.len() > max {
        return Err(Error::invalid(field, format!("must be at most {max} bytes")));
    }
    image_core::validate::text(text, max).map_err(|e| Error::invalid(field, e))
}

/// A secret name from a station name: `My Registry` → `my-registry-3f9a1c`, the suffix random so that a
/// renamed registry's old name can be taken again.
fn secret_name(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 40 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    let mut suffix = [0u8; 3];
    rand::rng().fill_bytes(&mut suffix);
    let suffix = hex::encode(suffix);
    if slug.is_empty() { format!("registry-{suffix}") } else { format!("{slug}-{suffix}") }
}

/// `POST /api/v1/registry`: `method` `add` or `edit` (with `oldname`); answers the whole list. A name
/// another registry has is a 409; changing `Docker Hub` is a 403; an unknown `oldname` is a 404.
pub(super) async fn add_or_edit(
    State(state): State<AppState>,
    admin: AdminUser,
    Body(body): Body<RegistryBody>,
) -> ApiResult<Json<Value>> {
    let actor = admin.user.username;
    match body.method.as_deref() {
        Some("add") => add(&state, body, &actor).await?,
        Some("edit") => edit(&state, body, &actor).await?,
        Some(other) => return Err(Error::invalid("method", format!("`{other}` is not add or edit")).into()),
        None => return Err(Error::invalid("method", "is required: add or edit").into()),
    }
    listing(&state).await
}

fn required<'a>(field: &str, value: &'a Option<String>) -> Result<&'a str, Error> {
    value.as_deref().ok_or_else(|| Error::invalid(field, "is required"))
}

async fn add(state: &AppState, body: RegistryBody, actor: &str) -> ApiResult<()> {
    let name = required("name", &body.name)?;
    check_name("name", name)?;
    let url_text = required("url", &body.url)?;
    check_text("url", url_text, 2000)?;
    let url = parse_url("url", url_text)?;
    let version = body.version.clone().unwrap_or_default();
    check_text("version", &version, 20)?;
    let username = body.username.clone().unwrap_or_default();
    check_text("username", &username, 256)?;
    let password = body.password.clone().unwrap_or_default();
    check_text("password", &password, 4096)?;
    if name == DOCKER_HUB || registries(state).await?.iter().any(|r| station_name(r) == name) {
        return Err(
            ApiError::with_code(crate::error::Code::Conflict, format!("Registry name conflicts: {name}")).into()
        );
    }
    let secret = NewRegistrySecret {
        namespace: state.station.namespace.clone(),
        name: secret_name(name),
        display_name: Some(name.to_owned()),
        description: None,
        domain: url.domain,
        username,
        password: Secret::new(password),
        provider: Provider::Other,
        insecure: url.insecure,
        ca_bundle: None,
    };
    let fields =
        StationFields { url: url_text.to_owned(), version, enable_trust_cert: body.enable_trust_cert.unwrap_or(false) };
    state.store.create_station_registry(secret, fields, actor).await?;
    Ok(())
}

async fn edit(state: &AppState, body: RegistryBody, actor: &str) -> ApiResult<()> {
    let oldname = required("oldname", &body.oldname)?;
    if oldname == DOCKER_HUB || body.name.as_deref() == Some(DOCKER_HUB) {
        return Err(ApiError::forbidden("the Docker Hub registry cannot be changed").into());
    }
    let mut update = StationRegistryUpdate::default();
    if let Some(name) = &body.name {
        check_name("name", name)?;
        update.display_name = Some(name.clone());
    }
    if let Some(url_text) = &body.url {
        check_text("url", url_text, 2000)?;
        let url = parse_url("url", url_text)?;
        update.domain = Some(url.domain);
        update.insecure = Some(url.insecure);
        update.url = Some(url_text.clone());
    }
    if let Some(version) = &body.version {
        check_text("version", version, 20)?;
        update.version = Some(version.clone());
    }
    if let Some(username) = &body.username {
        check_text("username", username, 256)?;
        update.username = Some(username.clone());
    }
    // The listing shows every password as "", so a client that sends back what it read keeps the stored one.
    if let Some(password) = body.password.as_deref().filter(|p| !p.is_empty()) {
        check_text("password", password, 4096)?;
        update.password = Some(Secret::new(password));
    }
    update.enable_trust_cert = body.enable_trust_cert;
    let all = registries(state).await?;
    let current = all
        .iter()
        .find(|r| station_name(r) == oldname)
        .ok_or_else(|| ApiError::not_found(format!("Registry not found: {oldname}")))?;
    if let Some(name) = &body.name
        && all.iter().any(|r| station_name(r) == name && r.secret.id != current.secret.id)
    {
        return Err(
            ApiError::with_code(crate::error::Code::Conflict, format!("Registry name conflicts: {name}")).into()
        );
    }
    state.store.update_station_registry(&current.secret.namespace, &current.secret.name, update, actor).await?;
    Ok(())
}

/// `DELETE /api/v1/registry/{name}`: answers the remaining list. Deleting `Docker Hub` is a 403, an
/// unknown name a 404, and a registry a kube-style repository syncs from a 409.
pub(super) async fn delete(
    State(state): State<AppState>,
    admin: AdminUser,
    PathParams(name, _): PathParams<String, super::Station>,
) -> ApiResult<Json<Value>> {
    if name == DOCKER_HUB {
        return Err(ApiError::forbidden("the Docker Hub registry cannot be deleted").into());
    }
    let registry = find(&state, &name).await?;
    state.store.delete_registry_secret(&registry.secret.namespace, &registry.secret.name, &admin.user.username).await?;
    listing(&state).await
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PingQuery {
    url: Option<String>,
    tls: Option<String>,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PingBody {
    url: Option<String>,
    tls: Option<Value>,
    username: Option<String>,
    password: Option<String>,
}

/// `GET /api/v1/registry/ping?url=…&tls=…`: `{"version": "v2"}` when the registry answers the `/v2/`
/// handshake, else a 400 `Cannot get registry version`.
pub(super) async fn ping_get(
    State(state): State<AppState>,
    _: AdminUser,
    crate::extract::Query(query, _): Query<PingQuery>,
) -> ApiResult<Json<Value>> {
    crate::extract::param::boolean("tls", query.tls)?;
    ping(&state, query.url, String::new(), String::new()).await
}

/// `POST /api/v1/registry/ping` with `{url, tls, username?, password?}`, as later versions have it.
pub(super) async fn ping_post(
    State(state): State<AppState>,
    _: AdminUser,
    Body(body): Body<PingBody>,
) -> ApiResult<Json<Value>> {
    match &body.tls {
        None | Some(Value::Bool(_)) => {}
        Some(Value::String(text)) => {
            crate::extract::param::boolean("tls", Some(text.clone()))?;
        }
        Some(_) => return Err(Error::invalid("tls", "must be true or false").into()),
    }
    ping(&state, body.url, body.username.unwrap_or_default(), body.password.unwrap_or_default()).await
}

async fn ping(state: &AppState, url: Option<String>, username: String, password: String) -> ApiResult<Json<Value>> {
    let url_text = url.filter(|u| !u.is_empty()).ok_or_else(|| Error::invalid("url", "is required"))?;
    check_text("url", &url_text, 2000)?;
    check_text("username", &username, 256)?;
    check_text("password", &password, 4096)?;
    let url = parse_url("url", &url_text)?;
    let Some(copier) = &state.copier else {
        return Err(
            ApiError::unavailable("this server talks to no registries (no internal registry is configured)").into()
        );
    };
    match copier.verify_credentials(&url.domain, &username, &Secret::new(password), url.insecure).await {
        Ok(()) => Ok(Json(json!({ "version": "v2" }))),
        Err(e) => {
            tracing::info!(registry = %url.domain, error = %e, "a registry ping failed");
            Err(ApiError::bad_request("Cannot get registry version").into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_dns_labels_from_the_name() {
        let name = secret_name("My  Registry!");
        assert!(name.starts_with("my-registry-") && name.len() == "my-registry-".len() + 6, "{name}");
        image_core::kube::validate_dns_label("name", &name).unwrap();
        assert!(secret_name("!!!").starts_with("registry-"));
        let long = secret_name(&"a".repeat(300));
        image_core::kube::validate_dns_label("name", &long).unwrap();
    }

    #[test]
    fn urls() {
        let url = parse_url("url", "https://Registry.example.com:5000/v2/").unwrap();
        assert_eq!((url.domain.as_str(), url.insecure), ("registry.example.com:5000", false));
        assert!(parse_url("url", "http://127.0.0.1:5000").unwrap().insecure);
        assert!(parse_url("url", "ftp://a").is_err());
        assert!(parse_url("url", "registry.example.com").is_err());
        assert!(parse_url("url", "https://").is_err());
        assert_eq!(parse_url("url", "https://new_test.registry.com").unwrap().domain, "new_test.registry.com");
        assert!(parse_url("url", "https://a b.example").is_err());
        assert!(parse_url("url", "https://a.example:port").is_err());
    }
}
