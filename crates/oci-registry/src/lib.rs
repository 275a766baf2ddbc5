#![doc = include_str!("../README.md")]

pub mod admin;
mod api;
pub mod auth;
pub mod error;
pub mod gate;
pub mod gc;
pub mod manifest;
pub mod name;
pub mod storage;

use std::{path::PathBuf, sync::Arc};

use image_core::oci::RegistryStore;

pub use crate::{
    admin::BuiltinAdmin,
    api::router,
    auth::{Action, AuthFailure, Authenticator, Principal, TokenSigner},
    error::{Code, OciError},
    gate::{Gate, GateMode},
    storage::BlobStore,
};

/// How the registry is set up.
#[derive(Clone)]
pub struct RegistryConfig {
    /// Where blobs and uploads live: `<data-dir>/registry`.
    pub root: PathBuf,
    /// Signs the Bearer tokens `GET /v2/token` issues.
    pub signer: TokenSigner,
    /// Whether pulls need no sign-in.
    pub anonymous_pull: bool,
    /// A user name and password that act as an admin: the server's own credential, with which its copy
    /// engine pushes imports over loopback. It is drawn when the server starts and never stored.
    pub internal_credential: Option<(String, String)>,
    /// The URL clients reach the server at (`https://registry.example.com`), for the token realm; without
    /// it the realm is built from the request's `Host`.
    pub public_url: Option<String>,
    /// What manifest pulls refused by [`RegistryConfig::gate`] get.
    pub gate_mode: GateMode,
    /// The catalog's decision on manifest pulls; none: every pull that auth allows is served.
    pub gate: Option<std::sync::Arc<dyn Gate>>,
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("root", &self.root)
            .field("anonymous_pull", &self.anonymous_pull)
            .field("public_url", &self.public_url)
            .field("gate_mode", &self.gate_mode)
            .finish_non_exhaustive()
    }
}

/// The built-in registry: metadata in a [`RegistryStore`], blobs in a [`BlobStore`], users checked by an
/// [`Authenticator`].
pub struct Registry {
    pub(crate) store: Arc<dyn RegistryStore>,
    pub(crate) blobs: BlobStore,
    pub(crate) auth: Arc<dyn Authenticator>,
    pub(crate) config: RegistryConfig,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Registry {
    /// Opens the registry's directories under `config.root` (creating them, mode 0700).
    pub fn open(
        store: Arc<dyn RegistryStore>,
        auth: Arc<dyn Authenticator>,
        config: RegistryConfig,
    ) -> std::io::Result<Registry> {
        let blobs = BlobStore::open(&config.root)?;
        Ok(Registry { store, blobs, auth, config })
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Removes (or, with `dry_run`, reports) blobs no manifest references and unnamed blob files, older
    /// than `grace` (see [`gc`]).
    pub async fn collect_garbage(&self, grace: std::time::Duration, dry_run: bool) -> image_core::Result<gc::GcReport> {
        gc::collect(self.store.as_ref(), &self.blobs, grace, dry_run).await
    }
}
