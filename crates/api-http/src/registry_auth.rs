//! The built-in registry's [`Authenticator`]: the same users, passwords (with the same sign-in limits and
//! remembered checks) and API tokens as the JSON API.

use std::{net::IpAddr, sync::Arc};

use async_trait::async_trait;
use image_core::auth::{Role, User};
use oci_registry::{AuthFailure, Authenticator, Principal};

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
    Principal { admin: user.role == Role::Admin, name: user.username }
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
        Ok(check_password(&self.0, username, password, client).await.map_err(failure)?.map(principal))
    }

    async fn api_token(&self, token: &str) -> Result<Option<Principal>, AuthFailure> {
        match self.0.store.find_user_by_token(&token_hash(token)).await {
            Ok(found) => Ok(found.map(|(_, user)| principal(user))),
            Err(error) => Err(failure(ApiError::from(error))),
        }
    }
}
