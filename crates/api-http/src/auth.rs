//! Authentication shared by every profile: API tokens (`Authorization: Bearer`), HTTP Basic, session
//! cookies ([`crate::session`]), and sign-in.
//!
//! Passwords are hashed with Argon2id; API tokens are 256 random bits, so a plain SHA-256 of a token is
//! what the store keeps, and a stolen database yields no usable token.

use std::{
    marker::PhantomData,
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use crate::routes::{Access, Routes};
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use axum::{
    Json,
    extract::{ConnectInfo, FromRequestParts, State},
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use base64::Engine;
use image_core::{
    Error, Timestamp,
    auth::{ApiToken, NewUser, Role, TokenId, User, validate_password, validate_username},
    format_rfc3339_millis,
    store::Store,
};
use rand::Rng as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::{
    AppState,
    error::{ApiError, ErrorFormat, Plain, ProfileError},
    extract::{Body, PathParams, Query},
};

/// Prefix of every API token, so that a leaked one is easy to recognise in logs and scanners.
const TOKEN_PREFIX: &str = "igt_";

/// How long a token works when the server is not told otherwise.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest a token may work: every token ends, and a stolen one within a year at most.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Hashes a password with Argon2id and a random salt, off the async runtime.
pub async fn hash_password(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        Argon2::default()
            .hash_password_with_salt(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::storage(e.to_string()))
    })
    .await
    .map_err(Error::storage)?
}

/// Checks a password against a stored hash, off the async runtime.
pub async fn verify_password(hash: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// A new API token and the hash to store for it.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("{TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    let mut hex = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(token.as_bytes()), &mut hex).expect("64 digits for 32 bytes");
    String::from_utf8_lossy(&hex).into_owned()
}

/// The actor of the changes the server makes on its own, as the audit trail names it.
pub const SYSTEM_ACTOR: &str = "system";

/// Creates the first admin account when there are no users at all.
///
/// Uses `password` when given; otherwise generates one and returns it, for the caller to show once.
pub async fn ensure_admin(store: &dyn Store, password: Option<String>) -> Result<Option<String>, Error> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let (password, generated) = match password {
        Some(p) => {
            validate_password("IMAGEGATE_ADMIN_PASSWORD", &p)?;
            (p, false)
        }
        None => {
            let mut bytes = [0u8; 18];
            rand::rng().fill_bytes(&mut bytes);
            (base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes), true)
        }
    };
    let user =
        NewUser { username: "admin".into(), password_hash: hash_password(password.clone()).await?, role: Role::Admin };
    match store.create_user(user, SYSTEM_ACTOR).await {
        Ok(_) => Ok(generated.then_some(password)),
        // Another server sharing the database created it first.
        Err(Error::AlreadyExists(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Signs a user in with a password, or returns None; refuses with 429 or 503 when sign-in limits say so
/// (see [`crate::signin`]).
pub(crate) async fn check_password(
    state: &AppState,
    username: &str,
    password: &str,
    client: Option<IpAddr>,
) -> Result<Option<User>, ApiError> {
    let guard = &state.sign_in;
    guard.admit(username, client, Instant::now())?;
    let creds = state.store.find_credentials(username).await?;
    if let Some(creds) = &creds {
        let key = state.passwords.key(&creds.password_hash, password);
        if state.passwords.contains(&key) {
            guard.succeeded(username, client);
            return Ok(Some(creds.user.clone()));
        }
    }
    let slot = guard.slot().await?;
    let valid = match &creds {
        Some(creds) => verify_password(creds.password_hash.clone(), password.to_owned()).await,
        None => {
            // Spend the same time as for a real user, so response times do not reveal which names exist.
            let _ = verify_password(DUMMY_HASH.into(), password.to_owned()).await;
            false
        }
    };
    drop(slot);
    match creds {
        Some(creds) if valid => {
            state.passwords.insert(state.passwords.key(&creds.password_hash, password));
            guard.succeeded(username, client);
            Ok(Some(creds.user))
        }
        _ => {
            guard.failed(username, client, Instant::now());
            Ok(None)
        }
    }
}

/// Hashes a new password taken from a request, as one of the password checks [`crate::signin`] limits:
/// hashing costs what checking does.
pub(crate) async fn hash_new_password(state: &AppState, password: String) -> Result<String, ApiError> {
    let _slot = state.sign_in.slot().await?;
    Ok(hash_password(password).await?)
}

/// The client's address, where the server recorded it (`ConnectInfo`); absent in tests that call the
/// router directly.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_addr(parts)))
    }
}

fn client_addr(parts: &Parts) -> Option<IpAddr> {
    parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// Password checks that passed in the last few minutes, so that a client sending HTTP Basic with every
/// request costs one Argon2id check (tens of milliseconds of CPU and 19 MiB) per few minutes rather than one
/// per request.
///
/// An entry is a SHA-256, under a key drawn when the server starts, of the stored hash and the password: a
/// changed password (a new stored hash) or a deleted user never matches an old entry, a failed check is
/// never remembered, and what the map holds is neither a password nor anything usable without the key.
pub(crate) struct VerifiedPasswords {
    key: [u8; 32],
    entries: std::sync::Mutex<std::collections::HashMap<[u8; 32], std::time::Instant>>,
}

impl VerifiedPasswords {
    /// How long a passed check is remembered.
    const TTL: std::time::Duration = std::time::Duration::from_secs(300);
    /// Entries at most; when full, expired ones go, and if none had, all of them.
    const CAPACITY: usize = 4096;

    fn key(&self, password_hash: &str, password: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.key);
        hasher.update((password_hash.len() as u64).to_le_bytes());
        hasher.update(password_hash.as_bytes());
        hasher.update(password.as_bytes());
        hasher.finalize().into()
    }

    fn contains(&self, key: &[u8; 32]) -> bool {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.get(key).is_some_and(|at| at.elapsed() < Self::TTL)
    }

    fn insert(&self, key: [u8; 32]) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= Self::CAPACITY {
            entries.retain(|_, at| at.elapsed() < Self::TTL);
            if entries.len() >= Self::CAPACITY {
                entries.clear();
            }
        }
        entries.insert(key, std::time::Instant::now());
    }
}

impl Default for VerifiedPasswords {
    fn default() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        VerifiedPasswords { key, entries: std::sync::Mutex::default() }
    }
}

impl std::fmt::Debug for VerifiedPasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedPasswords").finish_non_exhaustive()
    }
}

/// An Argon2id hash of a random password, verified against when a user name does not exist.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$0nFEKyBSVyIlrEXEmN7b3oMC0mfUxaNdZB5FyJ1fR3Y";

/// The signed-in user of a request, by bearer token or HTTP Basic. Errors render in profile `F`'s format.
#[derive(Debug)]
pub struct Authenticated<F> {
    pub user: User,
    /// The token the request was made with; `None` with HTTP Basic or a session.
    pub token: Option<TokenId>,
    /// The session the request's cookie names, when it was signed in by one (see [`crate::session`]).
    pub session: Option<image_core::station::Session>,
    format: PhantomData<fn() -> F>,
}

impl<F: ErrorFormat> FromRequestParts<AppState> for Authenticated<F> {
    type Rejection = ProfileError<F>;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(header) = parts.headers.get(header::AUTHORIZATION) else {
            // No credentials in the request itself: a session cookie, if it has one.
            return match crate::session::authenticate(parts, state).await? {
                Some(session) => Ok(Authenticated {
                    user: session.user.clone(),
                    token: None,
                    session: Some(session),
                    format: PhantomData,
                }),
                None => Err(ApiError::unauthorized(
                    "sign in: send `Authorization: Bearer <token>`, HTTP Basic credentials or a session cookie",
                )
                .into()),
            };
        };
        let header =
            header.to_str().map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?;
        let (scheme, value) = header.split_once(' ').unwrap_or((header, ""));
        let value = value.trim();
        let found = if scheme.eq_ignore_ascii_case("bearer") {
            state.store.find_user_by_token(&token_hash(value)).await?.map(|(token, user)| (user, Some(token)))
        } else if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    ApiError::unauthorized("the Basic credentials are not valid base64 of `user:password`")
                })?;
            let (username, password) = decoded
                .split_once(':')
                .ok_or_else(|| ApiError::unauthorized("the Basic credentials are not of the form `user:password`"))?;
            check_password(state, username, password, client_addr(parts)).await?.map(|user| (user, None))
        } else {
            return Err(ApiError::unauthorized(format!(
                "unsupported authorization scheme `{scheme}`; use Bearer or Basic"
            ))
            .into());
        };
        match found {
            Some((user, token)) => Ok(Authenticated { user, token, session: None, format: PhantomData }),
            None => Err(ApiError::unauthorized("invalid credentials").into()),
        }
    }
}

/// A signed-in user with the admin role; others get a 403.
#[derive(Debug)]
pub struct Admin<F> {
    pub user: User,
    format: PhantomData<fn() -> F>,
}

impl<F: ErrorFormat> FromRequestParts<AppState> for Admin<F> {
    type Rejection = ProfileError<F>;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Authenticated { user, .. } = Authenticated::<F>::from_request_parts(parts, state).await?;
        if user.role != Role::Admin {
            return Err(ApiError::forbidden(format!(
                "this needs the admin role; `{}` is a {}",
                user.username, user.role
            ))
            .into());
        }
        Ok(Admin { user, format: PhantomData })
    }
}

/// Whose tokens a user may list and revoke.
const OTHERS_TOKENS: &str = "their own tokens; another's is not found";

pub(crate) fn routes() -> Routes {
    Routes::new("/api/v1")
        .post("/auth/token", Access::Anyone, issue_token)
        .delete("/auth/token", Access::SignedIn, revoke_current_token)
        .get("/auth/tokens", Access::Limited(OTHERS_TOKENS), list_tokens)
        .delete("/auth/tokens/{id}", Access::Limited(OTHERS_TOKENS), revoke_token)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRequest {
    username: String,
    password: String,
    /// A label to recognise the token by.
    #[serde(default)]
    name: Option<String>,
}

/// `POST /api/v1/auth/token`: trades a user name and password for an API token, which works for the
/// server's token lifetime (`--token-ttl`).
async fn issue_token(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    Body(req, _): Body<TokenRequest, Plain>,
) -> Result<Response, ProfileError<Plain>> {
    validate_username(&req.username).map_err(|_| ApiError::unauthorized("invalid username or password"))?;
    let name = req.name.unwrap_or_else(|| "api".to_owned());
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::bad_request("invalid name: must be 1 to 100 characters").into());
    }
    let user = check_password(&state, &req.username, &req.password, client)
        .await?
        .ok_or_else(|| ApiError::unauthorized("invalid username or password"))?;
    let (token, hash) = new_token();
    let expires_at = Timestamp::now_utc() + state.token_ttl;
    let issued = state.store.create_token(user.id, &hash, &name, Some(expires_at)).await?;
    tracing::info!(user = %user.username, token_name = %name, token_id = issued.id.get(), "issued an API token");
    let body = serde_json::json!({ "token": token, "expiresAt": issued.expires_at.map(format_rfc3339_millis) });
    // A token is a password: no cache may keep the answer that carries it.
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// A token as the API lists it: never the token itself.
fn token_json(token: &ApiToken, current: Option<TokenId>) -> serde_json::Value {
    serde_json::json!({
        "id": token.id,
        "name": token.name,
        "createdAt": format_rfc3339_millis(token.created_at),
        "lastUsedAt": token.last_used_at.map(format_rfc3339_millis),
        "expiresAt": token.expires_at.map(format_rfc3339_millis),
        "current": current == Some(token.id),
    })
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokensQuery {
    user: Option<String>,
}

/// `GET /api/v1/auth/tokens`: the caller's live tokens, oldest first, the one in use marked `current`;
/// `?user=NAME` lists another user's, for admins.
async fn list_tokens(
    State(state): State<AppState>,
    caller: Authenticated<Plain>,
    Query(query, _): Query<TokensQuery, Plain>,
) -> Result<Response, ProfileError<Plain>> {
    let user = match query.user.filter(|name| !name.is_empty() && *name != caller.user.username) {
        None => caller.user.clone(),
        Some(_) if caller.user.role != Role::Admin => {
            return Err(ApiError::forbidden("listing another user's tokens needs the admin role").into());
        }
        Some(name) => {
            validate_username(&name)?;
            state.store.find_credentials(&name).await?.ok_or_else(|| Error::not_found("user", &name))?.user
        }
    };
    let tokens = state.store.list_tokens(user.id).await?;
    let tokens: Vec<_> = tokens.iter().map(|t| token_json(t, caller.token)).collect();
    Ok(Json(serde_json::json!({ "username": user.username, "tokens": tokens })).into_response())
}

/// `DELETE /api/v1/auth/token`: revokes the token this request is made with.
async fn revoke_current_token(
    State(state): State<AppState>,
    caller: Authenticated<Plain>,
) -> Result<StatusCode, ProfileError<Plain>> {
    let Some(token) = caller.token else {
        return Err(ApiError::bad_request(
            "this request signed in with HTTP Basic, not a token, so there is no token to revoke; \
             send the token to revoke as `Authorization: Bearer <token>`, or use DELETE /api/v1/auth/tokens/{id}",
        )
        .into());
    };
    state.store.revoke_token(token, Some(caller.user.id), &caller.user.username).await?;
    tracing::info!(user = %caller.user.username, token_id = token.get(), "revoked an API token");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/auth/tokens/{id}`: revokes one of the caller's tokens, or anyone's for an admin. A token
/// of someone else is, for a user, not found, as one that does not exist is.
async fn revoke_token(
    State(state): State<AppState>,
    caller: Authenticated<Plain>,
    PathParams(id, _): PathParams<TokenId, Plain>,
) -> Result<StatusCode, ProfileError<Plain>> {
    let owner = (caller.user.role != Role::Admin).then_some(caller.user.id);
    let token = state.store.revoke_token(id, owner, &caller.user.username).await?;
    tracing::info!(user = %caller.user.username, token_id = id.get(), owner = token.user_id.get(), "revoked an API token");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_verify_only_themselves() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(hash.clone(), "correct horse".into()).await);
        assert!(!verify_password(hash, "correct hors".into()).await);
        assert!(!verify_password("not a hash".into(), "x".into()).await);
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, ha) = new_token();
        let (b, hb) = new_token();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 43);
        assert_eq!(ha, token_hash(&a));
        assert_ne!(ha, hb);
        assert_eq!(ha.len(), 64);
    }

    #[test]
    fn verified_passwords_match_only_the_same_hash_and_password() {
        let cache = VerifiedPasswords::default();
        let key = cache.key("$argon2id$hash-1", "correct horse");
        assert!(!cache.contains(&key));
        cache.insert(key);
        assert!(cache.contains(&cache.key("$argon2id$hash-1", "correct horse")));
        // Another password, a new stored hash (the password was changed), or the two run together.
        assert!(!cache.contains(&cache.key("$argon2id$hash-1", "correct hors")));
        assert!(!cache.contains(&cache.key("$argon2id$hash-2", "correct horse")));
        assert!(!cache.contains(&cache.key("$argon2id$hash-1c", "orrect horse")));
        // Another server (another key) knows nothing of this one's checks.
        assert!(!VerifiedPasswords::default().contains(&key));
        assert_ne!(VerifiedPasswords::default().key("h", "p"), VerifiedPasswords::default().key("h", "p"));
    }

    #[test]
    fn verified_passwords_expire_and_stay_bounded() {
        let cache = VerifiedPasswords::default();
        let old = cache.key("h", "old");
        cache.insert(old);
        let expired = std::time::Instant::now().checked_sub(VerifiedPasswords::TTL).unwrap();
        cache.entries.lock().unwrap().insert(old, expired);
        assert!(!cache.contains(&old), "expired");
        for i in 0..VerifiedPasswords::CAPACITY {
            cache.insert(cache.key("h", &i.to_string()));
        }
        let entries = cache.entries.lock().unwrap().len();
        assert!(entries <= VerifiedPasswords::CAPACITY, "{entries}");
        assert!(!cache.entries.lock().unwrap().contains_key(&old), "the expired entry went first");
        let last = cache.key("h", &(VerifiedPasswords::CAPACITY - 1).to_string());
        assert!(cache.contains(&last));
        // Full of live entries: the next one clears them rather than grow.
        cache.insert(cache.key("h", "one more"));
        assert!(cache.entries.lock().unwrap().len() <= VerifiedPasswords::CAPACITY);
        assert!(cache.contains(&cache.key("h", "one more")));
    }

    #[test]
    fn dummy_hash_parses() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
