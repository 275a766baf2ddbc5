//! The users API under `/api/v1/users`: admins list, create, change and delete users; every signed-in
//! user changes their own password. Errors are `{"error", "message"}`.
//!
//! The rules are the store's: a new password ends every token of its user, and the last admin can be
//! neither demoted nor deleted (409).

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use image_core::{
    auth::{NewUser, Role, User, UserUpdate, validate_password, validate_username},
    format_rfc3339_millis,
};
use serde::Deserialize;

use crate::{
    AppState,
    auth::{Admin, Authenticated, ClientAddr, check_password, hash_new_password},
    error::{ApiError, Plain, ProfileError},
    extract::{Body, PathParams},
    routes::{Access, Routes},
};

type ApiResult<T> = Result<T, ProfileError<Plain>>;

pub(crate) fn routes() -> Routes {
    Routes::new("/api/v1")
        .get("/users", Access::Admin, list_users)
        .post("/users", Access::Admin, create_user)
        .put("/users/{name}", Access::Admin, update_user)
        .delete("/users/{name}", Access::Admin, delete_user)
        .put("/users/me/password", Access::SignedIn, change_own_password)
}

/// A user as the API shows one: never the password's hash.
fn user_json(user: &User) -> serde_json::Value {
    serde_json::json!({
        "username": user.username,
        "role": user.role,
        "createdAt": format_rfc3339_millis(user.created_at),
    })
}

fn role(text: &str) -> Result<Role, image_core::Error> {
    text.parse()
}

/// `GET /api/v1/users`: every user, ordered by name.
async fn list_users(State(state): State<AppState>, _: Admin<Plain>) -> ApiResult<Response> {
    let users = state.store.list_users().await?;
    let users: Vec<_> = users.iter().map(user_json).collect();
    Ok(Json(serde_json::json!({ "users": users })).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUserRequest {
    username: String,
    password: String,
    #[serde(default)]
    role: Option<String>,
}

/// `POST /api/v1/users`: a new user, with the role `user` unless told otherwise.
async fn create_user(
    State(state): State<AppState>,
    admin: Admin<Plain>,
    Body(req, _): Body<NewUserRequest, Plain>,
) -> ApiResult<Response> {
    validate_username(&req.username)?;
    validate_password("password", &req.password)?;
    let role = req.role.as_deref().map(role).transpose()?.unwrap_or(Role::User);
    let password_hash = hash_new_password(&state, req.password).await?;
    let user = state.store.create_user(NewUser { username: req.username, password_hash, role }, &admin.user.username);
    let user = user.await?;
    tracing::info!(actor = %admin.user.username, user = %user.username, role = %user.role, "created a user");
    Ok((StatusCode::CREATED, Json(user_json(&user))).into_response())
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserUpdateRequest {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// `PUT /api/v1/users/{name}`: a new role, a new password (which ends the user's tokens), or both.
async fn update_user(
    State(state): State<AppState>,
    admin: Admin<Plain>,
    PathParams(name, _): PathParams<String, Plain>,
    Body(req, _): Body<UserUpdateRequest, Plain>,
) -> ApiResult<Response> {
    validate_username(&name)?;
    if req.role.is_none() && req.password.is_none() {
        return Err(ApiError::bad_request("nothing to change: give `role`, `password` or both").into());
    }
    let role = req.role.as_deref().map(role).transpose()?;
    if let Some(password) = &req.password {
        validate_password("password", password)?;
    }
    let password_hash = match req.password {
        Some(password) => Some(hash_new_password(&state, password).await?),
        None => None,
    };
    let user = state.store.update_user(&name, UserUpdate { role, password_hash }, &admin.user.username).await?;
    tracing::info!(actor = %admin.user.username, user = %user.username, "changed a user");
    Ok(Json(user_json(&user)).into_response())
}

/// `DELETE /api/v1/users/{name}`: the user and their tokens go; the audit trail keeps their name.
async fn delete_user(
    State(state): State<AppState>,
    admin: Admin<Plain>,
    PathParams(name, _): PathParams<String, Plain>,
) -> ApiResult<StatusCode> {
    validate_username(&name)?;
    let user = state.store.delete_user(&name, &admin.user.username).await?;
    tracing::info!(actor = %admin.user.username, user = %user.username, "deleted a user");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `PUT /api/v1/users/me/password`: the caller's own password, given the current one. A wrong current
/// password is a 403 and counts as a failed sign-in. Success ends every token of the caller, the one
/// this request may have used included.
async fn change_own_password(
    State(state): State<AppState>,
    caller: Authenticated<Plain>,
    ClientAddr(client): ClientAddr,
    Body(req, _): Body<PasswordChange, Plain>,
) -> ApiResult<StatusCode> {
    validate_password("newPassword", &req.new_password)?;
    let username = caller.user.username;
    if check_password(&state, &username, &req.current_password, client).await?.is_none() {
        return Err(ApiError::forbidden("the current password is not right").into());
    }
    let password_hash = Some(hash_new_password(&state, req.new_password).await?);
    state.store.update_user(&username, UserUpdate { password_hash, role: None }, &username).await?;
    tracing::info!(user = %username, "changed their password");
    Ok(StatusCode::NO_CONTENT)
}
