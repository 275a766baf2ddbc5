//! Robot accounts of the built-in registry under `/api/v1/robots`: admins create, list and delete them.
//! Errors are `{"error", "message"}`.
//!
//! A robot signs in to `/v2/` (Basic, or `/v2/token`) as `robot$<name>` with the secret that the answer
//! to its creation carries, once; the store keeps only the secret's SHA-256. It may then take exactly its
//! actions (`pull`, `push`, `delete`) in the repositories its patterns match (`team/app`, `team/*`, `*`),
//! until it expires or is deleted.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use image_core::{
    Error, Timestamp, format_rfc3339_millis,
    robot::{NewRobot, RepositoryPattern, Robot, RobotAction},
};
use serde::Deserialize;

use crate::{
    AppState,
    auth::Admin,
    error::{Plain, ProfileError},
    extract::{Body, PathParams},
    routes::{Access, Routes},
};

type ApiResult<T> = Result<T, ProfileError<Plain>>;

/// What starts every robot secret, so that a leaked one is recognisable.
const SECRET_PREFIX: &str = "igr_";

pub(crate) fn routes() -> Routes {
    Routes::new("/api/v1")
        .get("/robots", Access::Admin, list_robots)
        .post("/robots", Access::Admin, create_robot)
        .delete("/robots/{name}", Access::Admin, delete_robot)
}

/// A robot as the API shows one: never its secret nor the secret's hash.
fn robot_json(robot: &Robot) -> serde_json::Value {
    serde_json::json!({
        "name": robot.name,
        "username": robot.username(),
        "repositories": robot.repositories,
        "actions": robot.actions,
        "createdBy": robot.created_by,
        "createdAt": format_rfc3339_millis(robot.created_at),
        "expiresAt": robot.expires_at.map(format_rfc3339_millis),
        "expired": robot.is_expired(Timestamp::now_utc()),
    })
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct NewRobotRequest {
    name: String,
    repositories: Vec<String>,
    actions: Vec<String>,
    /// An RFC 3339 time.
    #[serde(default)]
    expires_at: Option<String>,
    /// A Go duration from now (`720h`); not with `expiresAt`.
    #[serde(default)]
    expires_in: Option<String>,
}

fn expiry(req: &NewRobotRequest) -> Result<Option<Timestamp>, Error> {
    match (&req.expires_at, &req.expires_in) {
        (Some(_), Some(_)) => Err(Error::invalid("expiresIn", "give expiresAt or expiresIn, not both")),
        (Some(at), None) => Timestamp::parse(at, &time::format_description::well_known::Rfc3339)
            .map(Some)
            .map_err(|e| Error::invalid("expiresAt", format!("must be an RFC 3339 time: {e}"))),
        (None, Some(within)) => {
            let within = image_core::kube::parse_go_duration(within).map_err(|e| Error::invalid("expiresIn", e))?;
            let within = time::Duration::try_from(within).map_err(|e| Error::invalid("expiresIn", e))?;
            Timestamp::now_utc().checked_add(within).map(Some).ok_or_else(|| Error::invalid("expiresIn", "is too long"))
        }
        (None, None) => Ok(None),
    }
}

/// A new secret and its hash.
fn new_secret() -> (String, String) {
    let (token, _) = crate::auth::new_token();
    let secret = format!("{SECRET_PREFIX}{}", token.split_once('_').map_or(token.as_str(), |(_, rest)| rest));
    let hash = crate::auth::token_hash(&secret);
    (secret, hash)
}

/// `POST /api/v1/robots`: a new robot; the answer carries its secret, which is never shown again.
async fn create_robot(
    State(state): State<AppState>,
    admin: Admin<Plain>,
    Body(req, _): Body<NewRobotRequest, Plain>,
) -> ApiResult<Response> {
    let repositories = req
        .repositories
        .iter()
        .enumerate()
        .map(|(i, p)| RepositoryPattern::parse(&format!("repositories[{i}]"), p))
        .collect::<Result<Vec<_>, _>>()?;
    let actions = req
        .actions
        .iter()
        .enumerate()
        .map(|(i, a)| RobotAction::parse(&format!("actions[{i}]"), a))
        .collect::<Result<Vec<_>, _>>()?;
    let expires_at = expiry(&req)?;
    let (secret, hash) = new_secret();
    let new = NewRobot::new(&req.name, repositories, actions, expires_at, hash)?;
    let robot = state.store.create_robot(new, &admin.user.username).await?;
    tracing::info!(actor = %admin.user.username, robot = %robot.name, "created a robot account");
    let mut body = robot_json(&robot);
    body["secret"] = secret.into();
    // The secret is a password: no cache may keep the answer that carries it.
    Ok((StatusCode::CREATED, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

/// `GET /api/v1/robots`: every robot, expired ones included, by name.
async fn list_robots(State(state): State<AppState>, _: Admin<Plain>) -> ApiResult<Response> {
    let robots = state.store.list_robots().await?;
    let robots: Vec<_> = robots.iter().map(robot_json).collect();
    Ok(Json(serde_json::json!({ "robots": robots })).into_response())
}

/// `DELETE /api/v1/robots/{name}`: 204, and the robot stops working at once (registry tokens it was issued
/// last their five minutes at most).
async fn delete_robot(
    State(state): State<AppState>,
    admin: Admin<Plain>,
    PathParams(name, _): PathParams<String, Plain>,
) -> ApiResult<StatusCode> {
    image_core::robot::validate_name(&name)?;
    let robot = state.store.delete_robot(&name, &admin.user.username).await?;
    tracing::info!(actor = %admin.user.username, robot = %robot.name, "deleted a robot account");
    Ok(StatusCode::NO_CONTENT)
}

/// The robot whose `robot$<name>` and secret these are, if it exists, has not expired, and the secret is
/// its own.
pub(crate) async fn check_robot(state: &AppState, username: &str, secret: &str) -> image_core::Result<Option<Robot>> {
    let Some(name) = username.strip_prefix(image_core::robot::USERNAME_PREFIX) else { return Ok(None) };
    if image_core::robot::validate_name(name).is_err() {
        return Ok(None);
    }
    let Some((robot, hash)) = state.store.find_robot(name).await? else { return Ok(None) };
    let given = crate::auth::token_hash(secret);
    // Both are hex SHA-256: compared in time that does not depend on where they differ.
    let same = given.len() == hash.len() && given.bytes().zip(hash.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    Ok((same && !robot.is_expired(Timestamp::now_utc())).then_some(robot))
}
