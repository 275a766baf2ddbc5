//! The kube-style resources profile (seed 001) at `/oapis/image.theriseunion.io/v1alpha1`: namespaced
//! registry credentials (`RegistrySecret`) with a real registry handshake to verify them, and
//! repositories (`Repository`): tags kept in sync into the internal registry on an interval.
//!
//! Objects carry `apiVersion`, `kind`, `metadata`, `spec` and `status`; lists are `…List` kinds with
//! `totalItems`; errors are Kubernetes `Status` objects. Passwords are accepted, never returned.

use std::{collections::BTreeMap, time::Duration};

use crate::routes::{Access, Routes};
use axum::{Json, extract::State, http::StatusCode};
use image_core::{
    Error,
    catalog::Page,
    kube::{
        NewRegistrySecret, NewRepository, Provider, RegistrySecret, Repository, Secret, VerifyStatus,
        format_go_duration, parse_go_duration, validate_dns_label, validate_resource_name,
    },
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    AppState,
    auth::{Admin, Authenticated},
    error::{ApiError, KubeStatus, ProfileError},
    extract::{self, PathParams, param},
};

pub const API_VERSION: &str = crate::error::KUBE_API_VERSION;
const ANNOTATION: &str = "theriseunion.io/";
/// The namespace that stands for every namespace in list requests.
const ALL_NAMESPACES: &str = "_all_";

type Body<T> = extract::Body<T, KubeStatus>;
type Query<T> = extract::Query<T, KubeStatus>;
type Path<T> = PathParams<T, KubeStatus>;
type User = Authenticated<KubeStatus>;
type AdminUser = Admin<KubeStatus>;
type ApiResult<T> = Result<T, ProfileError<KubeStatus>>;

pub(crate) fn routes() -> Routes {
    Routes::new("/oapis/image.theriseunion.io/v1alpha1/namespaces/{namespace}")
        .get("/registry-secrets", Access::SignedIn, list_secrets)
        .post("/registry-secrets", Access::Admin, create_secret)
        .get("/registry-secrets/{name}", Access::SignedIn, get_secret)
        .delete("/registry-secrets/{name}", Access::Admin, delete_secret)
        .post("/registry-secrets/{name}/verify", Access::Admin, verify_secret)
        .get("/repositories", Access::SignedIn, list_repositories)
        .post("/repositories", Access::Admin, create_repository)
        .get("/repositories/{name}", Access::SignedIn, get_repository)
        .delete("/repositories/{name}", Access::Admin, delete_repository)
        .post("/repositories/{name}/sync", Access::Admin, sync_repository)
}

/// Errors about one resource name its kind and name in the `Status` details.
fn about<'a>(kind: &'static str, name: &'a str) -> impl Fn(Error) -> ProfileError<KubeStatus> + 'a {
    move |e| ApiError::from(e).about(kind, name).into()
}

/// The field a domain rule names (`retry_count`), as this API's objects spell it (`spec.retryCount`).
fn wire_field(field: &str) -> Option<&'static str> {
    Some(match field {
        "namespace" => "metadata.namespace",
        "name" => "metadata.name",
        "display_name" => "metadata.annotations.display-name",
        "description" => "metadata.annotations.description",
        "domain" => "spec.domain",
        "username" => "spec.username",
        "password" => "spec.password",
        "provider" => "spec.provider",
        "ca_bundle" => "spec.caBundle",
        "repository" => "spec.repository",
        "tag" => "spec.tag",
        "registry_ref.namespace" => "spec.registryRef.namespace",
        "registry_ref.name" => "spec.registryRef.name",
        "sync_interval" => "spec.syncInterval",
        "sync_timeout" => "spec.syncTimeout",
        "retry_count" => "spec.retryCount",
        _ => return None,
    })
}

/// A domain error about a resource's field, naming the field as this API's objects spell it; for the
/// errors of the domain's rules and the store, never for this profile's own (which use its names already).
fn on_the_wire(err: Error) -> Error {
    match err {
        Error::Invalid { field, reason } => match wire_field(&field) {
            Some(wire) => Error::Invalid { field: wire.to_owned(), reason },
            None => Error::Invalid { field, reason },
        },
        other => other,
    }
}

/// A namespace for a single resource: `_all_` is for lists only.
fn single_namespace(namespace: &str) -> Result<(), Error> {
    if namespace == ALL_NAMESPACES {
        return Err(Error::invalid(
            "namespace",
            "`_all_` lists every namespace; name one to read or change a resource",
        ));
    }
    validate_dns_label("namespace", namespace)
}

fn list_namespace(namespace: &str) -> Result<Option<&str>, Error> {
    if namespace == ALL_NAMESPACES {
        return Ok(None);
    }
    validate_dns_label("namespace", namespace)?;
    Ok(Some(namespace))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub(crate) struct ListQuery {
    page: Option<String>,
    limit: Option<String>,
    search: Option<String>,
    name: Option<String>,
}

/// `page` counts from 1; `limit` defaults to 10.
fn list_page(q: &ListQuery) -> Result<Page, Error> {
    let page = param::int("page", q.page.clone())?.unwrap_or(1);
    let limit = param::int("limit", q.limit.clone())?.unwrap_or(10);
    if page < 1 {
        return Err(Error::invalid("page", format!("counts from 1; got {page}")));
    }
    if !(1..=500).contains(&limit) {
        return Err(Error::invalid("limit", format!("must be between 1 and 500, got {limit}")));
    }
    let offset = (page - 1).checked_mul(limit).ok_or_else(|| Error::invalid("page", "is too large"))?;
    Page::new(Some(limit), Some(offset))
}

fn filter_text(field: &str, v: Option<String>) -> Result<Option<String>, Error> {
    let v = param::non_empty(v);
    if v.as_ref().is_some_and(|s| s.chars().count() > 200) {
        return Err(Error::invalid(field, "at most 200 characters are allowed"));
    }
    Ok(v)
}

/// `metadata` as clients send it; only the fields this API reads.
#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MetadataIn {
    name: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Checks `apiVersion`, `kind` and `metadata` of a body against the path; returns the name.
fn check_object(
    kind: &str,
    api_version: Option<&str>,
    body_kind: Option<&str>,
    metadata: &MetadataIn,
    namespace: &str,
) -> Result<String, Error> {
    if let Some(v) = api_version
        && v != API_VERSION
    {
        return Err(Error::invalid("apiVersion", format!("`{v}` is not {API_VERSION}")));
    }
    if let Some(k) = body_kind
        && k != kind
    {
        return Err(Error::invalid("kind", format!("`{k}` is not {kind}")));
    }
    if let Some(ns) = &metadata.namespace
        && ns != namespace
    {
        return Err(Error::invalid(
            "metadata.namespace",
            format!("`{ns}` does not match the namespace in the path, `{namespace}`"),
        ));
    }
    let name = metadata.name.clone().ok_or_else(|| Error::invalid("metadata.name", "is required"))?;
    validate_resource_name("metadata.name", &name)?;
    Ok(name)
}

fn annotation(metadata: &MetadataIn, key: &str) -> Option<String> {
    metadata.annotations.get(&format!("{ANNOTATION}{key}")).filter(|v| !v.is_empty()).cloned()
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    image_core::format_rfc3339_millis(at).replace(".000Z", "Z")
}

// ---- registry secrets ----------------------------------------------------------------------------

fn secret_object(s: &RegistrySecret) -> Value {
    let mut annotations = serde_json::Map::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(v) = value {
            annotations.insert(format!("{ANNOTATION}{key}"), v.into());
        }
    };
    put("display-name", s.display_name.clone());
    put("description", s.description.clone());
    put("domain", Some(s.domain.clone()));
    put("username", Some(s.username.clone()));
    put("provider", Some(s.provider.as_str().to_owned()));
    put("verify-status", Some(s.verify_status.as_str().to_owned()));
    put("verify-message", s.verify_message.clone());
    put("verify-timestamp", s.verify_timestamp.map(rfc3339));
    let mut spec = json!({ "domain": s.domain, "username": s.username, "provider": s.provider.as_str() });
    if s.insecure {
        spec["insecure"] = true.into();
    }
    if let Some(ca) = &s.ca_bundle {
        spec["caBundle"] = ca.clone().into();
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": "RegistrySecret",
        "metadata": {
            "name": s.name,
            "namespace": s.namespace,
            "creationTimestamp": rfc3339(s.created_at),
            "annotations": annotations,
        },
        "spec": spec,
    })
}

async fn list_secrets(
    State(s): State<AppState>,
    _: User,
    PathParams(namespace, _): Path<String>,
    extract::Query(q, _): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let ns = list_namespace(&namespace)?;
    let page = list_page(&q)?;
    let search = filter_text("search", q.search)?;
    let listing = s.store.list_registry_secrets(ns, search.as_deref(), page).await?;
    let items: Vec<Value> = listing.items.iter().map(secret_object).collect();
    Ok(Json(
        json!({ "apiVersion": API_VERSION, "kind": "RegistrySecretList", "items": items, "totalItems": listing.total }),
    ))
}

async fn get_secret(
    State(s): State<AppState>,
    _: User,
    PathParams((namespace, name), _): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    single_namespace(&namespace).map_err(about("registrysecrets", &name))?;
    let secret = s.store.get_registry_secret(&namespace, &name).await.map_err(about("registrysecrets", &name))?;
    Ok(Json(secret_object(&secret)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SecretBody {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    metadata: MetadataIn,
    spec: Option<SecretSpec>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SecretSpec {
    domain: Option<String>,
    username: Option<String>,
    password: Option<String>,
    provider: Option<String>,
    #[serde(default)]
    insecure: bool,
    ca_bundle: Option<String>,
}

fn required(field: &str, v: Option<String>) -> Result<String, Error> {
    v.filter(|s| !s.is_empty()).ok_or_else(|| Error::invalid(field, "is required"))
}

/// A registry secret's fields as a client sends them, before the rules: what this API's objects and
/// the console's form both carry.
pub(crate) struct SecretFields {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) display_name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) domain: Option<String>,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) provider: Option<String>,
    pub(crate) insecure: bool,
    pub(crate) ca_bundle: Option<String>,
}

impl SecretFields {
    /// The secret these fields make, by the domain's rules; errors name the fields as the domain does
    /// (`domain`, `password`).
    fn validated(self) -> Result<NewRegistrySecret, Error> {
        NewRegistrySecret {
            namespace: self.namespace,
            name: self.name,
            display_name: self.display_name,
            description: self.description,
            domain: required("domain", self.domain)?,
            username: required("username", self.username)?,
            password: Secret::new(required("password", self.password)?),
            provider: required("provider", self.provider)?.parse::<Provider>()?,
            insecure: self.insecure,
            ca_bundle: self.ca_bundle,
        }
        .validated()
    }
}

/// Stores a new registry secret made of `fields`, created by `by`; bad fields change nothing.
pub(crate) async fn add_secret(s: &AppState, fields: SecretFields, by: &str) -> Result<RegistrySecret, Error> {
    let new = fields.validated()?;
    s.store.create_registry_secret(new, by).await
}

async fn create_secret(
    State(s): State<AppState>,
    admin: AdminUser,
    PathParams(namespace, _): Path<String>,
    extract::Body(b, _): Body<SecretBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name_hint = b.metadata.name.clone().unwrap_or_default();
    let build = || -> Result<SecretFields, Error> {
        single_namespace(&namespace)?;
        let name =
            check_object("RegistrySecret", b.api_version.as_deref(), b.kind.as_deref(), &b.metadata, &namespace)?;
        let spec = b.spec.as_ref().ok_or_else(|| Error::invalid("spec", "is required"))?;
        Ok(SecretFields {
            namespace: namespace.clone(),
            name,
            display_name: annotation(&b.metadata, "display-name"),
            description: annotation(&b.metadata, "description"),
            domain: spec.domain.clone(),
            username: spec.username.clone(),
            password: spec.password.clone(),
            provider: spec.provider.clone(),
            insecure: spec.insecure,
            ca_bundle: spec.ca_bundle.clone(),
        })
    };
    let fields = build().map_err(about("registrysecrets", &name_hint))?;
    let secret = add_secret(&s, fields, &admin.user.username)
        .await
        .map_err(|e| about("registrysecrets", &name_hint)(on_the_wire(e)))?;
    Ok((StatusCode::CREATED, Json(secret_object(&secret))))
}

async fn delete_secret(
    State(s): State<AppState>,
    admin: AdminUser,
    PathParams((namespace, name), _): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    single_namespace(&namespace).map_err(about("registrysecrets", &name))?;
    s.store
        .delete_registry_secret(&namespace, &name, &admin.user.username)
        .await
        .map_err(about("registrysecrets", &name))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyBody {
    domain: Option<String>,
    username: Option<String>,
    password: Option<String>,
    insecure: Option<bool>,
}

/// `POST …/registry-secrets/{name}/verify`: the real handshake with the registry, with the body's
/// credentials or, for `{}`, the stored ones. The outcome is recorded on the secret when the
/// credentials checked are the stored ones.
async fn verify_secret(
    State(s): State<AppState>,
    _: AdminUser,
    PathParams((namespace, name), _): Path<(String, String)>,
    extract::OptionalBody(b, _): extract::OptionalBody<VerifyBody, KubeStatus>,
) -> ApiResult<Json<Value>> {
    let (success, message) = verify(&s, &namespace, &name, b).await?;
    Ok(Json(json!({ "success": success, "message": message })))
}

/// Verifies a registry secret's credentials (or those `b` gives) against its registry: whether the
/// handshake succeeded, and what it said; recorded on the secret when the stored credentials were checked.
pub(crate) async fn verify(
    s: &AppState,
    namespace: &str,
    name: &str,
    b: VerifyBody,
) -> Result<(bool, String), ProfileError<KubeStatus>> {
    let (namespace, name) = (namespace.to_owned(), name.to_owned());
    single_namespace(&namespace).map_err(about("registrysecrets", &name))?;
    let stored = s.store.get_registry_secret(&namespace, &name).await.map_err(about("registrysecrets", &name))?;
    let domain = match b.domain.filter(|d| !d.is_empty()) {
        Some(d) => {
            let d = image_core::catalog::normalise_registry(d.trim_end_matches('/'));
            image_core::validate::registry_host(&d)
                .map_err(|e| about("registrysecrets", &name)(Error::invalid("domain", e)))?;
            d
        }
        None => stored.domain.clone(),
    };
    let insecure = b.insecure.unwrap_or(stored.insecure);
    let given_password = b.password.filter(|p| !p.is_empty()).map(Secret::new);
    // The stored password goes only where it was stored for, over the transport stored with it: another
    // domain, or plain HTTP for a secret stored for HTTPS, must come with credentials of its own.
    if given_password.is_none() && (domain != stored.domain || insecure != stored.insecure) {
        return Err(about("registrysecrets", &name)(Error::invalid(
            "password",
            format!(
                "the stored credentials are for {}{}; to verify against {domain}{} send its username and password",
                stored.domain,
                if stored.insecure { " over plain HTTP" } else { "" },
                if insecure { " over plain HTTP" } else { "" },
            ),
        )));
    }
    let username = b.username.filter(|u| !u.is_empty()).unwrap_or_else(|| stored.username.clone());
    let password = given_password.unwrap_or_else(|| stored.password.clone());
    let copier = s.copier.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "No registry client", "this server has no registry client")
    })?;
    let outcome = copier.verify_credentials(&domain, &username, &password, insecure).await;
    let (success, message) = match &outcome {
        Ok(()) => (true, format!("connected to {domain} as {username}")),
        Err(e) => (false, e.message.clone()),
    };
    let same_as_stored = domain == stored.domain && username == stored.username && password == stored.password;
    if same_as_stored {
        let status = if success { VerifyStatus::Success } else { VerifyStatus::Failed };
        s.store.record_verification(&namespace, &name, status, &message).await?;
    }
    Ok((success, message))
}

// ---- repositories --------------------------------------------------------------------------------

/// `142MB`, as the seed shows sizes: decimal units as `docker images` prints them (1 MB = 1000 × 1000 bytes),
/// one decimal below 100 of a unit, whole units from 100 on.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 {
        format!("{value:.0}{}", UNITS[unit])
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

fn repository_object(r: &Repository) -> Value {
    let mut annotations = serde_json::Map::new();
    if let Some(v) = &r.display_name {
        annotations.insert(format!("{ANNOTATION}display-name"), v.clone().into());
    }
    if let Some(v) = &r.description {
        annotations.insert(format!("{ANNOTATION}description"), v.clone().into());
    }
    let mut status = serde_json::Map::new();
    if let Some(d) = &r.domain {
        status.insert("domain".into(), d.clone().into());
    }
    if let Some(st) = r.sync_status {
        status.insert("syncStatus".into(), st.as_str().into());
    }
    if let Some(m) = &r.sync_message {
        status.insert("message".into(), m.clone().into());
    }
    if let Some(at) = r.last_synced {
        status.insert("lastSynced".into(), rfc3339(at).into());
    }
    if let Some(m) = &r.manifest {
        let mut manifest = serde_json::Map::new();
        if let Some(v) = &m.architecture {
            manifest.insert("architecture".into(), v.clone().into());
        }
        if let Some(v) = &m.os {
            manifest.insert("os".into(), v.clone().into());
        }
        if let Some(v) = m.size {
            manifest.insert("size".into(), human_size(v).into());
            manifest.insert("sizeBytes".into(), v.into());
        }
        if let Some(v) = &m.created {
            manifest.insert("created".into(), v.clone().into());
        }
        if let Some(v) = &m.digest {
            manifest.insert("digest".into(), v.clone().into());
        }
        manifest.insert("layers".into(), json!(m.layers));
        status.insert("manifest".into(), manifest.into());
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": "Repository",
        "metadata": {
            "name": r.name,
            "namespace": r.namespace,
            "creationTimestamp": rfc3339(r.created_at),
            "annotations": annotations,
        },
        "spec": {
            "repository": r.repository,
            "tag": r.tag,
            "registryRef": { "name": r.registry_ref_name, "namespace": r.registry_ref_namespace },
            "syncInterval": format_go_duration(r.sync_interval),
            "syncTimeout": format_go_duration(r.sync_timeout),
            "retryCount": r.retry_count,
        },
        "status": status,
    })
}

async fn list_repositories(
    State(s): State<AppState>,
    _: User,
    PathParams(namespace, _): Path<String>,
    extract::Query(q, _): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let ns = list_namespace(&namespace)?;
    let page = list_page(&q)?;
    let name = filter_text("name", q.name)?;
    let listing = s.store.list_repositories(ns, name.as_deref(), page).await?;
    let items: Vec<Value> = listing.items.iter().map(repository_object).collect();
    Ok(Json(
        json!({ "apiVersion": API_VERSION, "kind": "RepositoryList", "items": items, "totalItems": listing.total }),
    ))
}

async fn get_repository(
    State(s): State<AppState>,
    _: User,
    PathParams((namespace, name), _): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    single_namespace(&namespace).map_err(about("repositories", &name))?;
    let repository = s.store.get_repository(&namespace, &name).await.map_err(about("repositories", &name))?;
    Ok(Json(repository_object(&repository)))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RepositoryBody {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    metadata: MetadataIn,
    spec: Option<RepositorySpec>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RepositorySpec {
    repository: Option<String>,
    tag: Option<String>,
    registry_ref: Option<RegistryRef>,
    sync_interval: Option<String>,
    sync_timeout: Option<String>,
    retry_count: Option<i64>,
}

#[derive(Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegistryRef {
    name: Option<String>,
    namespace: Option<String>,
}

fn duration(field: &str, v: Option<&str>, default: Duration) -> Result<Duration, Error> {
    match v.filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => parse_go_duration(s).map_err(|e| Error::invalid(field, e)),
    }
}

/// A repository's fields as a client sends them, before the rules: what this API's objects and the
/// console's form both carry. Durations are Go durations (`1h30m`); a missing registry namespace is
/// the repository's own.
pub(crate) struct RepositoryFields {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) display_name: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) repository: Option<String>,
    pub(crate) tag: Option<String>,
    pub(crate) registry_ref_name: Option<String>,
    pub(crate) registry_ref_namespace: Option<String>,
    pub(crate) sync_interval: Option<String>,
    pub(crate) sync_timeout: Option<String>,
    pub(crate) retry_count: Option<i64>,
}

impl RepositoryFields {
    /// The repository these fields make, by the domain's rules; errors name the fields as the domain does
    /// (`sync_interval`, `registry_ref.name`).
    fn validated(self) -> Result<NewRepository, Error> {
        let retry_count = self.retry_count.unwrap_or(i64::from(NewRepository::DEFAULT_RETRY_COUNT));
        if !(0..=20).contains(&retry_count) {
            return Err(Error::invalid("retry_count", "must be between 0 and 20"));
        }
        NewRepository {
            repository: required("repository", self.repository)?,
            tag: required("tag", self.tag)?,
            registry_ref_name: required("registry_ref.name", self.registry_ref_name)?,
            registry_ref_namespace: self
                .registry_ref_namespace
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| self.namespace.clone()),
            sync_interval: duration(
                "sync_interval",
                self.sync_interval.as_deref(),
                NewRepository::DEFAULT_SYNC_INTERVAL,
            )?,
            sync_timeout: duration("sync_timeout", self.sync_timeout.as_deref(), NewRepository::DEFAULT_SYNC_TIMEOUT)?,
            retry_count: retry_count as u32,
            namespace: self.namespace,
            name: self.name,
            display_name: self.display_name,
            description: self.description,
        }
        .validated()
    }
}

/// Stores a new repository made of `fields`, created by `by`: its registry secret must exist; bad fields
/// change nothing.
pub(crate) async fn add_repository(s: &AppState, fields: RepositoryFields, by: &str) -> Result<Repository, Error> {
    let new = fields.validated()?;
    s.store.create_repository(new, by).await
}

async fn create_repository(
    State(s): State<AppState>,
    admin: AdminUser,
    PathParams(namespace, _): Path<String>,
    extract::Body(b, _): Body<RepositoryBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name_hint = b.metadata.name.clone().unwrap_or_default();
    let build = || -> Result<RepositoryFields, Error> {
        single_namespace(&namespace)?;
        let name = check_object("Repository", b.api_version.as_deref(), b.kind.as_deref(), &b.metadata, &namespace)?;
        let spec = b.spec.as_ref().ok_or_else(|| Error::invalid("spec", "is required"))?;
        let registry_ref =
            spec.registry_ref.as_ref().ok_or_else(|| Error::invalid("spec.registryRef", "is required"))?;
        Ok(RepositoryFields {
            namespace: namespace.clone(),
            name,
            display_name: annotation(&b.metadata, "display-name"),
            description: annotation(&b.metadata, "description"),
            repository: spec.repository.clone(),
            tag: spec.tag.clone(),
            registry_ref_name: registry_ref.name.clone(),
            registry_ref_namespace: registry_ref.namespace.clone(),
            sync_interval: spec.sync_interval.clone(),
            sync_timeout: spec.sync_timeout.clone(),
            retry_count: spec.retry_count,
        })
    };
    let fields = build().map_err(about("repositories", &name_hint))?;
    let repository = add_repository(&s, fields, &admin.user.username)
        .await
        .map_err(|e| about("repositories", &name_hint)(on_the_wire(e)))?;
    Ok((StatusCode::CREATED, Json(repository_object(&repository))))
}

async fn delete_repository(
    State(s): State<AppState>,
    admin: AdminUser,
    PathParams((namespace, name), _): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    single_namespace(&namespace).map_err(about("repositories", &name))?;
    s.store.delete_repository(&namespace, &name, &admin.user.username).await.map_err(about("repositories", &name))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST …/repositories/{name}/sync`: queues a sync now.
async fn sync_repository(
    State(s): State<AppState>,
    _: AdminUser,
    PathParams((namespace, name), _): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let message = sync_now(&s, &namespace, &name).await?;
    Ok(Json(json!({ "success": true, "message": message })))
}

/// Queues a sync of a repository now, unless one is queued or running: what happened, in words.
pub(crate) async fn sync_now(
    s: &AppState,
    namespace: &str,
    name: &str,
) -> Result<&'static str, ProfileError<KubeStatus>> {
    single_namespace(namespace).map_err(about("repositories", name))?;
    let queued = s.store.trigger_sync(namespace, name).await.map_err(about("repositories", name))?;
    if queued {
        s.jobs_queued();
    }
    Ok(if queued { "Sync task submitted" } else { "A sync is already queued or running" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_the_seed() {
        assert_eq!(human_size(142_000_000), "142MB");
        assert_eq!(human_size(4_200_000), "4.2MB");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1_500_000_000), "1.5GB");
        assert_eq!(human_size(1_234_567_890), "1.2GB");
        assert_eq!(human_size(5_600), "5.6kB");
        assert_eq!(human_size(999), "999B");
    }

    #[test]
    fn domain_fields_are_named_as_on_the_wire() {
        let field = |e: Error| match on_the_wire(e) {
            Error::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(Error::invalid("retry_count", "x")), "spec.retryCount");
        assert_eq!(field(Error::invalid("registry_ref.name", "x")), "spec.registryRef.name");
        assert_eq!(field(Error::invalid("display_name", "x")), "metadata.annotations.display-name");
        assert_eq!(
            on_the_wire(Error::invalid("retry_count", "too many")).to_string(),
            "invalid spec.retryCount: too many"
        );
        // A name the profile chose itself stays.
        assert_eq!(field(Error::invalid("spec.registryRef", "x")), "spec.registryRef");
        assert!(matches!(on_the_wire(Error::conflict("taken")), Error::Conflict(_)));
    }

    #[test]
    fn pages_count_from_one() {
        let q = |page: Option<&str>, limit: Option<&str>| ListQuery {
            page: page.map(Into::into),
            limit: limit.map(Into::into),
            search: None,
            name: None,
        };
        assert_eq!(list_page(&q(None, None)).unwrap(), Page::new(Some(10), Some(0)).unwrap());
        assert_eq!(list_page(&q(Some("3"), Some("20"))).unwrap(), Page::new(Some(20), Some(40)).unwrap());
        assert!(list_page(&q(Some("0"), None)).is_err());
        assert!(list_page(&q(None, Some("0"))).is_err());
        assert!(list_page(&q(None, Some("501"))).is_err());
    }
}
