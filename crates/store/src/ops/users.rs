//! Users and their API tokens.

use diesel::prelude::*;
use image_core::{
    Error,
    auth::{Credentials, NewUser, User, UserId},
};

use crate::{
    conn::{Conn, RunQueryDsl, columns},
    error::{DbResult, on_unique},
    models::{Micros, NewTokenRow, NewUserRow, UserRow, now_micros},
    schema::{api_tokens, users},
};

pub(crate) async fn count_users(conn: &mut Conn<'_>) -> DbResult<i64> {
    Ok(users::table.count().get_result(conn).await?)
}

pub(crate) async fn create_user(conn: &mut Conn<'_>, user: &NewUser) -> DbResult<User> {
    let row = NewUserRow {
        username: &user.username,
        password_hash: &user.password_hash,
        role: user.role.as_str(),
        created_at: now_micros(),
    };
    diesel::insert_into(users::table)
        .values(row)
        .returning(columns::<UserRow>())
        .get_result::<UserRow>(conn)
        .await
        .map_err(on_unique(|| format!("user {} already exists", user.username)))?
        .into_domain()
}

pub(crate) async fn find_credentials(conn: &mut Conn<'_>, username: &str) -> DbResult<Option<Credentials>> {
    let found: Option<(UserRow, String)> = users::table
        .filter(users::username.eq(username))
        .select((columns::<UserRow>(), users::password_hash))
        .first(conn)
        .await
        .optional()?;
    found.map(|(user, password_hash)| Ok(Credentials { user: user.into_domain()?, password_hash })).transpose()
}

pub(crate) async fn create_token(
    conn: &mut Conn<'_>,
    user_id: UserId,
    token_hash: &str,
    name: &str,
    expires_at: Option<Micros>,
) -> DbResult<()> {
    let exists: Option<i64> = users::table.find(user_id).select(users::id).first(conn).await.optional()?;
    if exists.is_none() {
        return Err(Error::not_found("user", user_id).into());
    }
    let row = NewTokenRow { user_id, token_hash, name, created_at: now_micros(), expires_at };
    diesel::insert_into(api_tokens::table)
        .values(row)
        .execute(conn)
        .await
        .map_err(on_unique(|| format!("a token with this hash already exists (named {name})")))?;
    Ok(())
}

/// A live token's id, when it was last used, and its user.
pub(crate) async fn find_token(
    conn: &mut Conn<'_>,
    token_hash: &str,
    now: Micros,
) -> DbResult<Option<(i64, Option<Micros>, User)>> {
    let found: Option<(i64, Option<Micros>, UserRow)> = api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::token_hash.eq(token_hash))
        .filter(api_tokens::expires_at.is_null().or(api_tokens::expires_at.gt(now)))
        .select((api_tokens::id, api_tokens::last_used_at, columns::<UserRow>()))
        .first(conn)
        .await
        .optional()?;
    found.map(|(id, last_used_at, user)| Ok((id, last_used_at, user.into_domain()?))).transpose()
}

pub(crate) async fn touch_token(conn: &mut Conn<'_>, token_id: i64, now: Micros) -> DbResult<()> {
    diesel::update(api_tokens::table.find(token_id)).set(api_tokens::last_used_at.eq(now)).execute(conn).await?;
    Ok(())
}
