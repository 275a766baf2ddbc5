//! Robot accounts of the built-in registry, kept with the SHA-256 of their secret (the caller hashes).

use diesel::prelude::*;
use image_core::{
    Error,
    event::kind,
    robot::{NewRobot, RepositoryPattern, Robot, RobotAction, RobotId},
};
use serde_json::json;

use super::events::{Subject, record};
use crate::{
    conn::{Conn, RunQueryDsl},
    error::{DbError, DbResult, on_unique},
    models::{Micros, from_micros, now_micros, to_micros},
    schema::robots,
};

type RobotColumns = (
    robots::id,
    robots::name,
    robots::repositories,
    robots::actions,
    robots::created_by,
    robots::created_at,
    robots::expires_at,
    robots::secret_hash,
);

const ROBOT_COLUMNS: RobotColumns = (
    robots::id,
    robots::name,
    robots::repositories,
    robots::actions,
    robots::created_by,
    robots::created_at,
    robots::expires_at,
    robots::secret_hash,
);

type RobotRow = (i64, String, String, String, String, Micros, Option<Micros>, String);

fn corrupt(what: &str, e: impl std::fmt::Display) -> DbError {
    DbError::Domain(Error::storage(format!("a stored robot's {what} does not parse: {e}")))
}

/// The robot of a row, and its secret's hash.
fn robot_from_row(row: RobotRow) -> DbResult<(Robot, String)> {
    let (id, name, repositories, actions, created_by, created_at, expires_at, secret_hash) = row;
    let repositories: Vec<String> = serde_json::from_str(&repositories).map_err(|e| corrupt("repositories", e))?;
    let repositories = repositories
        .iter()
        .map(|p| RepositoryPattern::parse("repositories", p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt("repositories", e))?;
    let actions: Vec<String> = serde_json::from_str(&actions).map_err(|e| corrupt("actions", e))?;
    let actions = actions
        .iter()
        .map(|a| RobotAction::parse("actions", a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt("actions", e))?;
    let robot = Robot {
        id: RobotId::new(id),
        name,
        repositories,
        actions,
        created_by,
        created_at: from_micros(created_at)?,
        expires_at: expires_at.map(from_micros).transpose()?,
    };
    Ok((robot, secret_hash))
}

pub(crate) async fn create_robot(conn: &mut Conn<'_>, robot: &NewRobot, actor: &str) -> DbResult<Robot> {
    let now = now_micros();
    let repositories: Vec<&str> = robot.repositories().iter().map(RepositoryPattern::as_str).collect();
    let actions: Vec<&str> = robot.actions().iter().map(|a| a.as_str()).collect();
    let row: RobotRow = diesel::insert_into(robots::table)
        .values((
            robots::name.eq(robot.name()),
            robots::secret_hash.eq(robot.secret_hash()),
            robots::repositories.eq(super::to_json(&repositories)?),
            robots::actions.eq(super::to_json(&actions)?),
            robots::created_by.eq(actor),
            robots::created_at.eq(now),
            robots::expires_at.eq(robot.expires_at().map(to_micros)),
        ))
        .returning(ROBOT_COLUMNS)
        .get_result(conn)
        .await
        .map_err(on_unique(|| format!("robot {} already exists", robot.name())))?;
    let (created, _) = robot_from_row(row)?;
    let details = json!({
        "id": created.id,
        "name": created.name,
        "repositories": created.repositories,
        "actions": created.actions,
        "expires_at": created.expires_at.map(image_core::format_rfc3339_millis),
    });
    record(conn, kind::ROBOT_CREATED, actor, now, Subject::default(), details).await?;
    Ok(created)
}

pub(crate) async fn list_robots(conn: &mut Conn<'_>) -> DbResult<Vec<Robot>> {
    let rows: Vec<RobotRow> = robots::table.order(robots::name.asc()).select(ROBOT_COLUMNS).load(conn).await?;
    rows.into_iter().map(|row| robot_from_row(row).map(|(robot, _)| robot)).collect()
}

pub(crate) async fn find_robot(conn: &mut Conn<'_>, name: &str) -> DbResult<Option<(Robot, String)>> {
    let row: Option<RobotRow> =
        robots::table.filter(robots::name.eq(name)).select(ROBOT_COLUMNS).first(conn).await.optional()?;
    row.map(robot_from_row).transpose()
}

pub(crate) async fn delete_robot(conn: &mut Conn<'_>, name: &str, actor: &str) -> DbResult<Robot> {
    let Some((robot, _)) = find_robot(conn, name).await? else {
        return Err(Error::not_found("robot", name).into());
    };
    diesel::delete(robots::table.find(robot.id.get())).execute(conn).await?;
    let details = json!({ "id": robot.id, "name": robot.name });
    record(conn, kind::ROBOT_DELETED, actor, now_micros(), Subject::default(), details).await?;
    Ok(robot)
}
