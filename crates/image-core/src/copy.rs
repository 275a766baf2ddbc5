//! The copy operation the import engine performs, as a trait the registry adapter implements.

use async_trait::async_trait;

use crate::{
    Digest, Error, Reference, Result,
    catalog::normalise_registry,
    import::{Artifact, LayerProgress, Platform},
    kube::{RegistrySecret, Repository, Secret},
};

/// How one operation authenticates to the source registry. Every copy and check carries its own: a
/// process serves many namespaces and accounts at once, and two jobs for one registry host with different
/// accounts never share credentials or tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryAccess {
    /// The process's configured credentials for that host (`--registry-config`, the internal registry's
    /// account), else anonymous.
    Configured,
    /// No credentials, even when some are configured for the host.
    Anonymous,
    /// An account from a registry secret; `insecure` allows plain HTTP.
    Login { username: String, password: Secret, insecure: bool },
}

impl RegistryAccess {
    fn login(secret: &RegistrySecret) -> RegistryAccess {
        RegistryAccess::Login {
            username: secret.username.clone(),
            password: secret.password.clone(),
            insecure: secret.insecure,
        }
    }
}

/// The access a platform import of `source` uses: the registry secret it names, else the process's
/// configured credentials for the source's host, else anonymous ([`RegistryAccess::Configured`]).
/// A named secret for another registry than the source's is refused.
pub fn access_for_import(named_secret: Option<&RegistrySecret>, source: &Reference) -> Result<RegistryAccess> {
    match named_secret {
        None => Ok(RegistryAccess::Configured),
        Some(secret) if normalise_registry(&secret.domain) == source.registry() => Ok(RegistryAccess::login(secret)),
        Some(secret) => Err(Error::invalid(
            "registrySecret",
            format!(
                "{}/{} holds credentials for {}, not for {}, the registry of {source}",
                secret.namespace,
                secret.name,
                secret.domain,
                source.registry()
            ),
        )),
    }
}

/// The access a Repository's sync uses: its `registryRef` secret and nothing else, which must be the
/// secret of that name in the repository's own namespace.
pub fn access_for_repository(repository: &Repository, secret: &RegistrySecret) -> Result<RegistryAccess> {
    let referenced =
        secret.namespace == repository.registry_ref_namespace && secret.name == repository.registry_ref_name;
    if !referenced {
        return Err(Error::invalid(
            "registryRef",
            format!(
                "repository {}/{} refers to {}/{}, not to {}/{}",
                repository.namespace,
                repository.name,
                repository.registry_ref_namespace,
                repository.registry_ref_name,
                secret.namespace,
                secret.name
            ),
        ));
    }
    if secret.namespace != repository.namespace {
        return Err(Error::invalid(
            "registryRef",
            format!(
                "repository {}/{} cannot use the registry secret {}/{} of another namespace",
                repository.namespace, repository.name, secret.namespace, secret.name
            ),
        ));
    }
    Ok(RegistryAccess::login(secret))
}

/// Copy `source` to `target`, all platforms of an index or only `platforms` when not empty. The source is
/// read with `source_access`; the target (the internal registry) with the configured credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRequest {
    pub source: Reference,
    pub source_access: RegistryAccess,
    pub target: Reference,
    pub platforms: Vec<Platform>,
}

/// What a finished copy produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOutcome {
    /// Digest of the top-level manifest or index, the same at the source and the target.
    pub digest: Digest,
    pub artifacts: Vec<Artifact>,
    /// Blobs streamed from the source, and their bytes.
    pub blobs_copied: u64,
    pub bytes_copied: u64,
    /// Blobs the target already had.
    pub blobs_skipped: u64,
    /// Blobs mounted from another repository of the target.
    pub blobs_mounted: u64,
    /// The image config's `created` (RFC 3339, as the image gives it): of the image, or of the first
    /// platform of an index.
    pub created: Option<String>,
}

/// Whether trying again may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyErrorKind {
    /// A network failure, a 5xx, a rate limit: try again later.
    Transient,
    /// A bad reference, a missing image, refused credentials, an unsupported format, corrupt data.
    Permanent,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CopyError {
    pub kind: CopyErrorKind,
    pub message: String,
    /// How long the registry asked us to wait, if it said.
    pub retry_after_secs: Option<u64>,
}

impl CopyError {
    pub fn transient(message: impl Into<String>) -> CopyError {
        CopyError { kind: CopyErrorKind::Transient, message: message.into(), retry_after_secs: None }
    }

    pub fn permanent(message: impl Into<String>) -> CopyError {
        CopyError { kind: CopyErrorKind::Permanent, message: message.into(), retry_after_secs: None }
    }
}

/// Receives progress while a copy runs. Calls are cheap and frequent; the receiver decides how often to
/// persist them.
pub trait CopyProgress: Send + Sync {
    /// The source was resolved: its digest, and one artifact per platform to be copied.
    fn resolved(&self, digest: &Digest, artifacts: &[Artifact]);
    /// One blob changed state or moved forward.
    fn layer(&self, progress: &LayerProgress);
}

/// Copies images between registries and removes them from the target.
#[async_trait]
pub trait ImageCopier: Send + Sync {
    /// Copies manifests by their exact bytes, so every digest is preserved. Dropping the future abandons
    /// the copy; blobs already complete at the target are skipped by the next attempt.
    async fn copy_image(&self, request: &CopyRequest, progress: &dyn CopyProgress) -> Result<CopyOutcome, CopyError>;

    /// Checks that the source exists and can be read with `access` (a manifest HEAD), so an import request
    /// can be refused at once with a message that says why.
    async fn check_source(&self, source: &Reference, access: &RegistryAccess) -> Result<(), CopyError>;

    /// Performs the registry handshake (`/v2/`, then the basic or bearer-token challenge) with the given
    /// credentials, without remembering them: `Ok` when the registry accepts them.
    async fn verify_credentials(
        &self,
        registry: &str,
        username: &str,
        password: &crate::kube::Secret,
        insecure: bool,
    ) -> Result<(), CopyError>;

    /// Deletes the manifest a reference points to from the target registry, with the configured credentials.
    /// Not finding it is not an error.
    async fn delete_image(&self, target: &Reference) -> Result<(), CopyError>;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::OffsetDateTime;

    use super::*;
    use crate::kube::{Provider, VerifyStatus};

    fn secret(namespace: &str, name: &str, domain: &str, password: &str) -> RegistrySecret {
        RegistrySecret {
            id: crate::kube::RegistrySecretId::new(1),
            namespace: namespace.into(),
            name: name.into(),
            display_name: None,
            description: None,
            domain: domain.into(),
            username: "alice".into(),
            password: Secret::new(password),
            provider: Provider::Other,
            insecure: false,
            ca_bundle: None,
            verify_status: VerifyStatus::Untested,
            verify_message: None,
            verify_timestamp: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn repository(namespace: &str, ref_namespace: &str, ref_name: &str) -> Repository {
        Repository {
            id: crate::kube::RepositoryId::new(1),
            namespace: namespace.into(),
            name: "app".into(),
            display_name: None,
            description: None,
            repository: "team/app".into(),
            tag: "1".into(),
            registry_ref_namespace: ref_namespace.into(),
            registry_ref_name: ref_name.into(),
            sync_interval: Duration::from_secs(3600),
            sync_timeout: Duration::from_secs(600),
            retry_count: 3,
            domain: None,
            sync_status: None,
            sync_message: None,
            last_synced: None,
            next_sync_at: OffsetDateTime::UNIX_EPOCH,
            manifest: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn login(password: &str) -> RegistryAccess {
        RegistryAccess::Login { username: "alice".into(), password: Secret::new(password), insecure: false }
    }

    #[test]
    fn an_import_uses_the_secret_it_names_else_the_configured_credentials() {
        let source = Reference::parse("registry.example:5000/team/app:1").unwrap();
        assert_eq!(access_for_import(None, &source).unwrap(), RegistryAccess::Configured);
        let named = secret("b", "pull", "registry.example:5000", "pw-b");
        assert_eq!(access_for_import(Some(&named), &source).unwrap(), login("pw-b"));
        // Hosts compare as registries do: case-insensitively, Docker Hub's aliases as one.
        let upper = secret("b", "pull", "Registry.Example:5000", "pw-b");
        assert_eq!(access_for_import(Some(&upper), &source).unwrap(), login("pw-b"));
        let hub = secret("b", "hub", "index.docker.io", "pw-hub");
        assert_eq!(access_for_import(Some(&hub), &Reference::parse("nginx").unwrap()).unwrap(), login("pw-hub"));
    }

    #[test]
    fn an_import_refuses_a_secret_for_another_registry() {
        let source = Reference::parse("registry.example:5000/team/app:1").unwrap();
        for domain in ["registry.example:5001", "registry.example", "docker.io"] {
            let err = access_for_import(Some(&secret("b", "pull", domain, "pw")), &source).unwrap_err();
            assert!(matches!(&err, Error::Invalid { field, .. } if field == "registrySecret"), "{domain}: {err}");
            assert!(err.to_string().contains("b/pull") && !err.to_string().contains("pw"), "{err}");
        }
    }

    #[test]
    fn a_repository_uses_its_own_registry_ref_and_nothing_else() {
        let own = secret("a", "pull", "registry.example:5000", "pw-a");
        assert_eq!(access_for_repository(&repository("a", "a", "pull"), &own).unwrap(), login("pw-a"));
        // Another secret than the one referred to.
        let other = secret("a", "other", "registry.example:5000", "pw-other");
        let err = access_for_repository(&repository("a", "a", "pull"), &other).unwrap_err();
        assert!(matches!(&err, Error::Invalid { field, .. } if field == "registryRef"), "{err}");
        // A secret of another namespace, even when the repository refers to it.
        let foreign = secret("b", "pull", "registry.example:5000", "pw-b");
        let err = access_for_repository(&repository("a", "b", "pull"), &foreign).unwrap_err();
        assert!(err.to_string().contains("another namespace"), "{err}");
        let err = access_for_repository(&repository("a", "a", "pull"), &foreign).unwrap_err();
        assert!(matches!(&err, Error::Invalid { .. }), "{err}");
    }
}
