//! The built-in registry: what `imagegate-server` serves at `/v2/` when no `--internal-registry` is given,
//! and where its imports then land.
//!
//! The copy engine pushes into it as into any registry: over loopback HTTP to this server's own `/v2/`, with a
//! credential drawn at start-up that the registry takes for an admin's and that is never stored. So an import
//! into the built-in registry runs exactly the code an import into Distribution or Harbor runs.

use std::{net::SocketAddr, path::Path, sync::Arc};

use anyhow::Context as _;

use crate::{Registries, RegistryArgs};

/// The user name of the server's own credential.
pub const INTERNAL_USER: &str = "imagegate-internal";

/// Options of the built-in registry.
#[derive(Debug, Clone, clap::Args)]
pub struct BuiltinRegistryArgs {
    /// Lets anyone pull from the built-in registry without signing in (pushes still need an admin).
    #[arg(long, env = "IMAGEGATE_REGISTRY_ANONYMOUS_PULL")]
    pub registry_anonymous_pull: bool,
    /// The URL clients reach this server at (`https://registry.example.com`), for the token realm of the
    /// built-in registry's challenge [default: from each request's Host].
    #[arg(long, env = "IMAGEGATE_REGISTRY_PUBLIC_URL")]
    pub registry_public_url: Option<String>,
    /// Manifest pulls from the built-in registry of images the catalog does not approve: `enforce` refuses
    /// them (403 `DENIED` with the reason), `warn` serves them and records an audit event with the reason, `off` does not ask.
    #[arg(long, env = "IMAGEGATE_GATE", default_value = "enforce")]
    pub gate: oci_registry::GateMode,
}

/// The server's own credential for its built-in registry.
#[derive(Clone)]
pub struct InternalCredential {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for InternalCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalCredential").field("username", &self.username).finish_non_exhaustive()
    }
}

/// `host:port` at which this process reaches a server listening on `listen`: an unspecified address
/// (`0.0.0.0`, `::`) is reached on loopback.
pub fn loopback_host(listen: SocketAddr) -> String {
    match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => format!("127.0.0.1:{}", listen.port()),
        ip if ip.is_unspecified() => format!("[::1]:{}", listen.port()),
        _ => listen.to_string(),
    }
}

/// The copy engine and internal registry of a server whose imports land in its own built-in registry at
/// `host`, with the credential it pushes with. Listings, statistics, health and deletes of the internal
/// registry read the built-in registry's own metadata in `store` and its blobs under `<data_dir>/registry`
/// ([`oci_registry::BuiltinAdmin`]).
pub fn registries(
    args: &RegistryArgs,
    host: &str,
    store: Arc<store::DbStore>,
    data_dir: &Path,
    builtin: &BuiltinRegistryArgs,
) -> anyhow::Result<(Registries, InternalCredential)> {
    let password = store::SecretKey::generate().derive_with(|bytes| bytes.iter().map(|b| format!("{b:02x}")).collect());
    let credential = InternalCredential { username: INTERNAL_USER.to_owned(), password };
    let mut args = args.clone();
    args.internal_registry = Some(format!("http://{host}"));
    args.internal_registry_username = Some(credential.username.clone());
    args.internal_registry_password = Some(credential.password.clone());
    let root = data_dir.join("registry");
    let blobs = oci_registry::BlobStore::open(&root)
        .with_context(|| format!("cannot open the built-in registry's directory {}", root.display()))?;
    let admin = oci_registry::BuiltinAdmin::new(store, Arc::new(blobs), builtin.registry_anonymous_pull);
    Ok((crate::registries_with(&args, Some(Arc::new(admin)))?, credential))
}

/// The router of the built-in registry, its blobs under `<data_dir>/registry`, its tokens signed with a key
/// derived from `secret_key`.
pub fn router(
    store: Arc<store::DbStore>,
    state: &api_http::AppState,
    data_dir: &Path,
    secret_key: &store::SecretKey,
    args: &BuiltinRegistryArgs,
    credential: InternalCredential,
) -> anyhow::Result<axum::Router> {
    let root = data_dir.join("registry");
    let config = oci_registry::RegistryConfig {
        root: root.clone(),
        signer: secret_key.derive_with(oci_registry::TokenSigner::derive),
        anonymous_pull: args.registry_anonymous_pull,
        internal_credential: Some((credential.username, credential.password)),
        public_url: args.registry_public_url.clone(),
        gate_mode: args.gate,
        gate: Some(api_http::registry_auth::catalog_gate(state)),
    };
    let registry = oci_registry::Registry::open(store, api_http::registry_auth::registry_authenticator(state), config)
        .with_context(|| format!("cannot open the built-in registry's directory {}", root.display()))?;
    Ok(oci_registry::router(Arc::new(registry)))
}

/// `imagegate-server gc`: removes (or, with `dry_run`, lists) the built-in registry's blobs that no manifest
/// references and that are older than `grace`, blob files no record names and abandoned uploads; prints one line each
/// and a total.
pub async fn gc(
    store: &store::DbStore,
    data_dir: &Path,
    grace: std::time::Duration,
    dry_run: bool,
) -> anyhow::Result<()> {
    let root = data_dir.join("registry");
    let blobs = oci_registry::BlobStore::open(&root)
        .with_context(|| format!("cannot open the built-in registry's directory {}", root.display()))?;
    let report = oci_registry::gc::collect(store, &blobs, grace, dry_run).await.context("garbage collection failed")?;
    let verb = if dry_run { "would remove" } else { "removed" };
    for (digest, size) in &report.blobs {
        println!("{verb} blob {digest} ({size} bytes)");
    }
    for (path, size) in &report.files {
        println!("{verb} unrecorded file {} ({size} bytes)", path.display());
    }
    for (id, size) in &report.uploads {
        println!("{verb} abandoned upload {id} ({size} bytes)");
    }
    println!(
        "{verb} {} blobs, {} unrecorded files and {} abandoned uploads, {} bytes",
        report.blobs.len(),
        report.files.len(),
        report.uploads.len(),
        report.bytes()
    );
    Ok(())
}
