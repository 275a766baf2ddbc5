//! The built-in registry's [`Authenticator`]: the same users, passwords (with the same sign-in limits and
//! remembered checks) and API tokens as the JSON API, and the robot accounts (`robot$<name>`, see
//! [`crate::robots`]); and its [`Gate`], the catalog's admission decision.

use std::{net::IpAddr, sync::Arc};

use async_trait::async_trait;
use image_core::{
    Reference,
    auth::{Role, User},
    catalog::ApprovalStatus,
    rules::{self, Admission, Refusal},
};
use oci_registry::{
    AuthFailure, Authenticator, Principal,
    gate::{Gate, Pull},
};

use crate::{
    AppState,
    auth::{check_password, token_hash},
    error::ApiError,
};

/// Checks credentials sent to `/v2/` against the server's users.
#[derive(Debug, Clone)]
pub struct RegistryUsers(AppState);

/// The authenticator the built-in registry of a server with `state` uses.
pub fn registry_authenticator(state: &AppState) -> Arc<dyn Authenticator> {
    Arc::new(RegistryUsers(state.clone()))
}

fn principal(user: User) -> Principal {
    Principal::user(user.username, user.role == Role::Admin)
}

fn failure(error: ApiError) -> AuthFailure {
    if error.status() == axum::http::StatusCode::TOO_MANY_REQUESTS {
        AuthFailure::TooManyRequests { message: error.message, retry_after_secs: error.retry_after_secs }
    } else {
        AuthFailure::Unavailable(error.message)
    }
}

#[async_trait]
impl Authenticator for RegistryUsers {
    async fn basic(
        &self,
        username: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<Option<Principal>, AuthFailure> {
        if username.starts_with(image_core::robot::USERNAME_PREFIX) {
            let robot = crate::robots::check_robot(&self.0, username, password).await;
            return Ok(robot.map_err(|e| failure(ApiError::from(e)))?.map(Principal::robot));
        }
        Ok(check_password(&self.0, username, password, client).await.map_err(failure)?.map(principal))
    }

    async fn api_token(&self, token: &str) -> Result<Option<Principal>, AuthFailure> {
        match self.0.store.find_user_by_token(&token_hash(token)).await {
            Ok(found) => Ok(found.map(|(_, user)| principal(user))),
            Err(error) => Err(failure(ApiError::from(error))),
        }
    }
}

/// The built-in registry's gate: a manifest pull is decided by [`image_core::rules::admit`] on the catalog
/// image the repository was imported from.
#[derive(Debug, Clone)]
pub struct CatalogGate(AppState);

/// The gate the built-in registry of a server with `state` asks.
pub fn catalog_gate(state: &AppState) -> Arc<dyn Gate> {
    Arc::new(CatalogGate(state.clone()))
}

/// The source registry and repository that an internal repository holds: the inverse of
/// [`image_core::import::internal_target`] (a first component with a `.` or `_`, or `localhost`, is a
/// registry host, its port's `:` written `_`; otherwise the image is Docker Hub's).
pub(crate) fn source_of(prefix: &str, repository: &str) -> Option<(String, String)> {
    let path = match prefix.trim_matches('/') {
        "" => repository,
        prefix => repository.strip_prefix(prefix)?.strip_prefix('/')?,
    };
    match path.split_once('/') {
        Some((first, rest)) if first.contains(['.', '_']) || first.starts_with("localhost") => {
            let registry = match first.rsplit_once('_') {
                Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                    format!("{host}:{port}")
                }
                _ => first.to_owned(),
            };
            Some((registry, rest.to_owned()))
        }
        _ => Some((image_core::DEFAULT_REGISTRY.to_owned(), path.to_owned())),
    }
}

#[async_trait]
impl Gate for CatalogGate {
    async fn refusal(&self, pull: Pull<'_>) -> image_core::Result<Option<String>> {
        let prefix = self.0.internal.as_ref().map(|i| i.prefix.clone()).unwrap_or_default();
        let Some((registry, repository)) = source_of(&prefix, pull.repository) else {
            return Ok(Some(format!("{} is not under this registry's import path `{prefix}`", pull.repository)));
        };
        let shown = format!("{registry}/{repository}");
        let reference = match pull.tag {
            Some(tag) => Reference::new(&registry, &repository, Some(tag), None),
            None => Reference::new(&registry, &repository, None, Some(pull.digest.clone())),
        };
        let Ok(reference) = reference else { return Ok(Some(format!("{shown} is not in the catalog"))) };
        let (image, tags) = crate::profile::catalog_entry(self.0.store.as_ref(), &reference).await?;
        let deny = self.0.deny_severity;
        let mut decision = rules::admit_under(image.as_ref(), &tags, &reference, deny);
        // A platform's manifest of an approved index is approved with it.
        for parent in pull.parents {
            if !matches!(decision, Admission::Refused(Refusal::TagNotListed)) || pull.tag.is_some() {
                break;
            }
            if let Ok(by_parent) = Reference::new(&registry, &repository, None, Some(parent.clone())) {
                let again = rules::admit_under(image.as_ref(), &tags, &by_parent, deny);
                if matches!(again, Admission::Allowed { .. }) {
                    decision = again;
                }
            }
        }
        Ok(match decision {
            Admission::Allowed { warnings, .. } => warnings.first().map(|w| format!("{shown}: {w}")),
            Admission::Refused(refusal) => {
                Some(refusal_message(&shown, image.as_ref(), pull.tag, Some(pull.digest), refusal))
            }
        })
    }
}

/// Why `shown` (an image as `registry/repository`) may not run, in the words the gate and the Kubernetes
/// admission review both answer: by its catalog image's approval, or the tag (or, without one, the digest)
/// the catalog does not list, or the scan the deny policy refuses.
pub(crate) fn refusal_message(
    shown: &str,
    image: Option<&image_core::catalog::CatalogImage>,
    tag: Option<&str>,
    digest: Option<&image_core::Digest>,
    refusal: Refusal,
) -> String {
    match refusal {
        Refusal::NotApproved => match image.map(|i| i.approval_status) {
            None => format!("{shown} is not in the catalog"),
            Some(ApprovalStatus::Pending) => format!("{shown} is pending approval"),
            Some(ApprovalStatus::Rejected) => format!("{shown} was rejected"),
            Some(ApprovalStatus::Approved) => format!("{shown} is not approved"),
        },
        Refusal::TagNotListed => match (tag, digest) {
            (Some(tag), _) => format!("tag {tag} of {shown} is not approved"),
            (None, Some(digest)) => format!("{digest} is not an approved tag of {shown}"),
            (None, None) => format!("{shown} names no tag"),
        },
        refusal @ Refusal::ScanFailed { .. } => format!("{shown}: {refusal}"),
    }
}

#[cfg(test)]
mod tests {
    use super::source_of;

    #[test]
    fn internal_repositories_map_back_to_their_sources() {
        let of = |prefix: &str, repository: &str| source_of(prefix, repository);
        assert_eq!(of("", "library/redis"), Some(("docker.io".into(), "library/redis".into())));
        assert_eq!(of("", "127.0.0.1_5000/team/app"), Some(("127.0.0.1:5000".into(), "team/app".into())));
        assert_eq!(of("mirror", "mirror/ghcr.io/acme/app"), Some(("ghcr.io".into(), "acme/app".into())));
        assert_eq!(of("mirror", "localhost_5000/app"), None);
        assert_eq!(of("", "localhost/app"), Some(("localhost".into(), "app".into())));
    }
}
