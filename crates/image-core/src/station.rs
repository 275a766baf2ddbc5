//! Sign-in sessions and the station profile's registries (seed 003), and the store traits for them.
//!
//! A session is what a cookie names: the store keeps only a hash of the session id, and a session ends
//! when it has been idle too long, at logout, or when its user's password changes or the user goes.
//!
//! A station registry is a registry secret (the kube-style resource, in the namespace the server keeps
//! station registries in) with the few fields the station API adds: the URL as given, the registry's API
//! version and whether a self-signed certificate is trusted.

use std::time::Duration;

use async_trait::async_trait;

use crate::{
    Result, Timestamp,
    auth::{User, UserId},
    kube::{NewRegistrySecret, RegistrySecret, Secret},
};

/// A live session and its user.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub user: User,
    /// When the user signed in.
    pub created_at: Timestamp,
    /// When a request last used it.
    pub last_seen_at: Timestamp,
}

/// What the station API stores beside a registry secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationFields {
    /// The registry's URL as given (`https://registry.example.com`).
    pub url: String,
    /// The registry API version the station was told (`v1`, `v2`), or empty.
    pub version: String,
    /// Trust the registry's self-signed certificate.
    pub enable_trust_cert: bool,
}

/// A station registry: its secret and the station's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct StationRegistry {
    pub secret: RegistrySecret,
    pub fields: StationFields,
}

/// A change to a station registry; `None` keeps what is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StationRegistryUpdate {
    pub display_name: Option<String>,
    pub domain: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub insecure: Option<bool>,
    pub url: Option<String>,
    pub version: Option<String>,
    pub enable_trust_cert: Option<bool>,
}

/// Sessions, kept by the hash of their id.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Starts a session for a user. Fails with `NotFound` when there is no such user.
    async fn create_session(&self, user_id: UserId, id_hash: &str) -> Result<Session>;
    /// The session with this hash, if it was used within `idle`, noting that it is used now (to within a
    /// minute); a session idle longer is ended here.
    async fn find_session(&self, id_hash: &str, idle: Duration) -> Result<Option<Session>>;
    /// Ends a session; ending one that does not exist does nothing.
    async fn end_session(&self, id_hash: &str) -> Result<()>;
}

/// Station registries: registry secrets with the station's fields, in one namespace.
#[async_trait]
pub trait StationStore: Send + Sync {
    /// Stores the secret and its fields in one transaction; `Conflict` when the secret's name is taken.
    async fn create_station_registry(
        &self,
        secret: NewRegistrySecret,
        fields: StationFields,
        actor: &str,
    ) -> Result<StationRegistry>;
    /// Every registry secret of `namespace` that has station fields, oldest first.
    async fn list_station_registries(&self, namespace: &str) -> Result<Vec<StationRegistry>>;
    /// Changes a station registry (the secret keeps its namespace, name and id). `NotFound` when there is
    /// no station registry of that name in the namespace.
    async fn update_station_registry(
        &self,
        namespace: &str,
        name: &str,
        update: StationRegistryUpdate,
        actor: &str,
    ) -> Result<StationRegistry>;
    /// Keeps what a download said of its image (`location`, `icon`) beside its import; `NotFound` when
    /// there is no such import. The record goes with the import.
    async fn record_download(&self, import: crate::import::ImportId, details: DownloadDetails) -> Result<()>;
    /// Every kept download's details, by import.
    async fn downloads(&self) -> Result<std::collections::HashMap<crate::import::ImportId, DownloadDetails>>;
}

/// What a station download keeps beside its import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DownloadDetails {
    /// The image's page (`https://registry.hub.docker.com/u/lgsd/diamond/`).
    pub location: String,
    /// Where its icon is.
    pub icon: String,
}

/// An image's config as its registry holds it: the JSON the manifest's `config` names.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageConfig {
    /// The config blob's digest, which Docker shows as the image's id.
    pub id: String,
    pub config: serde_json::Value,
    /// Config and layers, in bytes.
    pub size: u64,
}

/// One repository a Docker Hub search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRepository {
    pub name: String,
    pub description: String,
    pub star_count: i64,
    pub is_official: bool,
    /// Built automatically from its source (the station's `is_trusted`).
    pub is_automated: bool,
}

/// What the station profile reads from registries besides copying: tags, repositories, image configs,
/// and Docker Hub's search. Each read carries its own access, as copies do.
#[async_trait]
pub trait RegistryBrowser: Send + Sync {
    async fn tags(
        &self,
        registry: &str,
        repository: &str,
        access: &crate::copy::RegistryAccess,
    ) -> std::result::Result<Vec<String>, crate::copy::CopyError>;
    /// The registry's `_catalog`.
    async fn repositories(
        &self,
        registry: &str,
        access: &crate::copy::RegistryAccess,
    ) -> std::result::Result<Vec<String>, crate::copy::CopyError>;
    /// The config of `image` (of its linux/amd64 manifest, or its first, when it is an index).
    async fn image_config(
        &self,
        image: &crate::Reference,
        access: &crate::copy::RegistryAccess,
    ) -> std::result::Result<ImageConfig, crate::copy::CopyError>;
    /// Docker Hub's repository search (`GET {search_url}?q=…`, answered as Docker Hub's `/v1/search`).
    async fn search_hub(
        &self,
        search_url: &str,
        query: &str,
    ) -> std::result::Result<Vec<HubRepository>, crate::copy::CopyError>;
}
