//! Registries and synced repositories (the kube-style resources) in every namespace: their status, an
//! admin's forms to add either (by the kube profile's rules), verify (the result shown on the page) and
//! sync now. A password goes into the store only; no page shows it.

use askama::Template;
use axum::{extract::State, http::StatusCode};
use image_core::{Error, catalog::Page, kube::Provider};
use serde::Deserialize;

use super::{
    form::Form,
    page::{AdminCaller, Caller, HtmlPage, Nav, PageResult, Path, html_with, see, when, when_opt},
};
use crate::extract::PathParams;
use crate::{AppState, error::ProfileError, profile::kube};

struct SecretRow {
    namespace: String,
    name: String,
    display_name: String,
    domain: String,
    username: String,
    provider: &'static str,
    verify_status: &'static str,
    verify_message: String,
    verified: String,
}

struct RepositoryRow {
    namespace: String,
    name: String,
    source: String,
    registry: String,
    interval: String,
    status: String,
    message: String,
    last_synced: String,
    next_sync: String,
}

/// The outcome of the action the page answers, shown above the lists.
struct Notice {
    success: bool,
    text: String,
}

#[derive(Template)]
#[template(path = "console/registries.html")]
struct RegistriesView {
    nav: Nav,
    notice: Option<Notice>,
    secrets: Vec<SecretRow>,
    repositories: Vec<RepositoryRow>,
    providers: Vec<&'static str>,
}

async fn page(s: &AppState, caller: &image_core::auth::User, notice: Option<Notice>) -> PageResult {
    let page = Page::new(Some(500), None)?;
    let secrets = s.store.list_registry_secrets(None, None, page).await?;
    let repositories = s.store.list_repositories(None, None, page).await?;
    let status = match &notice {
        Some(Notice { success: false, .. }) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::OK,
    };
    html_with(
        status,
        RegistriesView {
            nav: Nav::new(caller, "registries"),
            notice,
            secrets: secrets
                .items
                .into_iter()
                .map(|r| SecretRow {
                    display_name: r.display_name.clone().unwrap_or_default(),
                    namespace: r.namespace,
                    name: r.name,
                    domain: r.domain,
                    username: r.username,
                    provider: r.provider.as_str(),
                    verify_status: r.verify_status.as_str(),
                    verify_message: r.verify_message.unwrap_or_default(),
                    verified: when_opt(r.verify_timestamp),
                })
                .collect(),
            repositories: repositories
                .items
                .into_iter()
                .map(|r| RepositoryRow {
                    source: format!("{}:{}", r.repository, r.tag),
                    registry: format!("{}/{}", r.registry_ref_namespace, r.registry_ref_name),
                    interval: format!("{} s", r.sync_interval.as_secs()),
                    status: r.sync_status.map_or("never synced", |s| s.as_str()).to_owned(),
                    message: r.sync_message.unwrap_or_default(),
                    last_synced: when_opt(r.last_synced),
                    next_sync: when(r.next_sync_at),
                    namespace: r.namespace,
                    name: r.name,
                })
                .collect(),
            providers: Provider::ALL.iter().map(|p| p.as_str()).collect(),
        },
    )
}

/// `GET /console/registries`: every registry secret and synced repository.
pub(super) async fn list(State(s): State<AppState>, caller: Caller) -> PageResult {
    page(&s, &caller.user, None).await
}

fn console_error(e: ProfileError<crate::error::KubeStatus>) -> ProfileError<HtmlPage> {
    e.error.into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Confirm {}

/// `POST /console/registries/{namespace}/{name}/verify`: the handshake with the registry with the stored
/// credentials; the page shows the outcome (422 when it failed), and the secret records it.
pub(super) async fn verify(
    State(s): State<AppState>,
    admin: AdminCaller,
    PathParams((namespace, name), _): Path<(String, String)>,
    Form(Confirm {}): Form<Confirm>,
) -> PageResult {
    let (success, message) =
        kube::verify(&s, &namespace, &name, kube::VerifyBody::default()).await.map_err(console_error)?;
    let text = format!("{namespace}/{name}: {message}");
    page(&s, &admin.user, Some(Notice { success, text })).await
}

/// `POST /console/repositories/{namespace}/{name}/sync`: queues a sync now; the page says so.
pub(super) async fn sync(
    State(s): State<AppState>,
    admin: AdminCaller,
    PathParams((namespace, name), _): Path<(String, String)>,
    Form(Confirm {}): Form<Confirm>,
) -> PageResult {
    let message = kube::sync_now(&s, &namespace, &name).await.map_err(console_error)?;
    page(&s, &admin.user, Some(Notice { success: true, text: format!("{namespace}/{name}: {message}") })).await
}

/// An optional text field: empty means not given.
fn optional(v: String) -> Option<String> {
    Some(v.trim().to_owned()).filter(|s| !s.is_empty())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SecretForm {
    namespace: String,
    name: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    description: String,
    domain: String,
    username: String,
    password: String,
    provider: String,
    /// A checkbox: present when checked.
    insecure: Option<String>,
    #[serde(default)]
    ca_bundle: String,
}

/// `POST /console/registries`: adds a registry secret, by the kube profile's rules.
pub(super) async fn create_secret(
    State(s): State<AppState>,
    admin: AdminCaller,
    Form(f): Form<SecretForm>,
) -> PageResult {
    let fields = kube::SecretFields {
        namespace: f.namespace.trim().to_owned(),
        name: f.name.trim().to_owned(),
        display_name: optional(f.display_name),
        description: optional(f.description),
        domain: Some(f.domain.trim().to_owned()),
        username: Some(f.username),
        password: Some(f.password),
        provider: Some(f.provider),
        insecure: f.insecure.is_some(),
        ca_bundle: optional(f.ca_bundle),
    };
    kube::add_secret(&s, fields, &admin.user.username).await?;
    see("/console/registries")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RepositoryForm {
    namespace: String,
    name: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    description: String,
    /// The registry secret, as `namespace/name` (or a name in the repository's namespace).
    registry: String,
    repository: String,
    tag: String,
    #[serde(default)]
    sync_interval: String,
    #[serde(default)]
    sync_timeout: String,
    #[serde(default)]
    retry_count: String,
}

/// `POST /console/repositories`: adds a synced repository, by the kube profile's rules.
pub(super) async fn create_repository(
    State(s): State<AppState>,
    admin: AdminCaller,
    Form(f): Form<RepositoryForm>,
) -> PageResult {
    let registry = f.registry.trim();
    let (registry_ref_namespace, registry_ref_name) = match registry.split_once('/') {
        Some((namespace, name)) => (Some(namespace.to_owned()), name.to_owned()),
        None => (None, registry.to_owned()),
    };
    let retry_count = match optional(f.retry_count) {
        None => None,
        Some(n) => Some(n.parse::<i64>().map_err(|_| Error::invalid("retry_count", "must be a whole number"))?),
    };
    let fields = kube::RepositoryFields {
        namespace: f.namespace.trim().to_owned(),
        name: f.name.trim().to_owned(),
        display_name: optional(f.display_name),
        description: optional(f.description),
        repository: Some(f.repository.trim().to_owned()),
        tag: Some(f.tag.trim().to_owned()),
        registry_ref_name: Some(registry_ref_name),
        registry_ref_namespace,
        sync_interval: optional(f.sync_interval),
        sync_timeout: optional(f.sync_timeout),
        retry_count,
    };
    kube::add_repository(&s, fields, &admin.user.username).await?;
    see("/console/registries")
}
