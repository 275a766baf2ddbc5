//! Sign-in sessions, kept by the SHA-256 of their id (the caller hashes), with their user.

use diesel::prelude::*;
use image_core::{Error, auth::UserId, station::Session};

use crate::{
    conn::{Conn, RunQueryDsl, columns},
    error::{DbResult, on_unique},
    models::{Micros, UserRow, from_micros},
    schema::{sessions, users},
};

fn session(user: UserRow, created_at: Micros, last_seen_at: Micros) -> DbResult<Session> {
    Ok(Session {
        user: user.into_domain()?,
        created_at: from_micros(created_at)?,
        last_seen_at: from_micros(last_seen_at)?,
    })
}

/// Also forgets every session that has been idle since before `stale_before`, so that they do not pile up.
pub(crate) async fn create_session(
    conn: &mut Conn<'_>,
    user_id: UserId,
    id_hash: &str,
    now: Micros,
    stale_before: Micros,
) -> DbResult<Session> {
    let user: Option<UserRow> =
        users::table.find(user_id.get()).select(columns::<UserRow>()).first(conn).await.optional()?;
    let Some(user) = user else { return Err(Error::not_found("user", user_id).into()) };
    diesel::delete(sessions::table.filter(sessions::last_seen_at.lt(stale_before))).execute(conn).await?;
    diesel::insert_into(sessions::table)
        .values((
            sessions::user_id.eq(user_id.get()),
            sessions::id_hash.eq(id_hash),
            sessions::created_at.eq(now),
            sessions::last_seen_at.eq(now),
        ))
        .execute(conn)
        .await
        .map_err(on_unique(|| "a session with this id already exists".to_owned()))?;
    session(user, now, now)
}

/// The session with this hash, however long idle: its row id and the session.
pub(crate) async fn find_session(conn: &mut Conn<'_>, id_hash: &str) -> DbResult<Option<(i64, Session)>> {
    let found: Option<(i64, Micros, Micros, UserRow)> = sessions::table
        .inner_join(users::table)
        .filter(sessions::id_hash.eq(id_hash))
        .select((sessions::id, sessions::created_at, sessions::last_seen_at, columns::<UserRow>()))
        .first(conn)
        .await
        .optional()?;
    found.map(|(id, created_at, last_seen_at, user)| Ok((id, session(user, created_at, last_seen_at)?))).transpose()
}

pub(crate) async fn touch_session(conn: &mut Conn<'_>, id: i64, now: Micros) -> DbResult<()> {
    diesel::update(sessions::table.find(id)).set(sessions::last_seen_at.eq(now)).execute(conn).await?;
    Ok(())
}

pub(crate) async fn end_session(conn: &mut Conn<'_>, id_hash: &str) -> DbResult<()> {
    diesel::delete(sessions::table.filter(sessions::id_hash.eq(id_hash))).execute(conn).await?;
    Ok(())
}

/// Ends every session of a user (a new password, a deleted user); returns how many there were.
pub(crate) async fn end_user_sessions(conn: &mut Conn<'_>, user_id: UserId) -> DbResult<usize> {
    Ok(diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id.get()))).execute(conn).await?)
}
