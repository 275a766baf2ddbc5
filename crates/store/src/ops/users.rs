//! Users and their API tokens.
//!
//! A change that could leave no admin locks every admin's row first (`lock_admins`), then the user's own
//! (`lock_user`); every other user change locks only the user's row. So two transactions never wait on
//! each other in opposite orders, and the count of admins they check cannot change under them.

use diesel::prelude::*;
use image_core::{
    Error,
    auth::{ApiToken, Credentials, NewUser, Role, TokenId, User, UserId, UserUpdate},
    event::kind,
};
use serde_json::json;

use super::events::{Subject, record};
use crate::{
    conn::{Conn, RunQueryDsl, columns},
    error::{DbResult, on_unique},
    models::{Micros, NewTokenRow, NewUserRow, UserRow, from_micros, now_micros},
    schema::{api_tokens, users},
};

pub(crate) async fn count_users(conn: &mut Conn<'_>) -> DbResult<i64> {
    Ok(users::table.count().get_result(conn).await?)
}

pub(crate) async fn create_user(conn: &mut Conn<'_>, user: &NewUser, actor: &str) -> DbResult<User> {
    let now = now_micros();
    let row = NewUserRow {
        username: &user.username,
        password_hash: &user.password_hash,
        role: user.role.as_str(),
        created_at: now,
    };
    let created = diesel::insert_into(users::table)
        .values(row)
        .returning(columns::<UserRow>())
        .get_result::<UserRow>(conn)
        .await
        .map_err(on_unique(|| format!("user {} already exists", user.username)))?
        .into_domain()?;
    let details = json!({ "id": created.id, "username": created.username, "role": created.role });
    record(conn, kind::USER_CREATED, actor, now, Subject::default(), details).await?;
    Ok(created)
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

pub(crate) async fn list_users(conn: &mut Conn<'_>) -> DbResult<Vec<User>> {
    let rows: Vec<UserRow> = users::table.order(users::username.asc()).select(columns::<UserRow>()).load(conn).await?;
    rows.into_iter().map(UserRow::into_domain).collect()
}

/// Locks every admin's row until the transaction ends, and returns their ids. It is a write that changes
/// nothing, so that one statement serves both backends: PostgreSQL locks the rows an UPDATE touches (and a
/// transaction that waited for one re-reads it, skipping a row demoted meanwhile); on SQLite the writer
/// lock holds already.
async fn lock_admins(conn: &mut Conn<'_>) -> DbResult<Vec<UserId>> {
    let ids: Vec<i64> = diesel::update(users::table.filter(users::role.eq(Role::Admin.as_str())))
        .set(users::role.eq(users::role))
        .returning(users::id)
        .load(conn)
        .await?;
    Ok(ids.into_iter().map(UserId::new).collect())
}

/// Locks a user's row until the transaction ends, and reads it; `NotFound` when there is no such user.
async fn lock_user(conn: &mut Conn<'_>, username: &str) -> DbResult<User> {
    let row: Option<UserRow> = diesel::update(users::table.filter(users::username.eq(username)))
        .set(users::role.eq(users::role))
        .returning(columns::<UserRow>())
        .get_result(conn)
        .await
        .optional()?;
    match row {
        Some(row) => row.into_domain(),
        None => Err(Error::not_found("user", username).into()),
    }
}

/// Refuses to take the admin role from `user` when no other admin would be left; `admins` is what
/// `lock_admins` returned.
fn keep_an_admin(user: &User, admins: &[UserId], change: &str) -> DbResult<()> {
    if user.role == Role::Admin && admins.iter().all(|&id| id == user.id) {
        return Err(Error::conflict(format!(
            "cannot {change} {}: it is the last admin; make another user an admin first",
            user.username
        ))
        .into());
    }
    Ok(())
}

/// Deletes every token of a user; returns how many there were.
async fn revoke_all_tokens(conn: &mut Conn<'_>, user_id: UserId) -> DbResult<usize> {
    Ok(diesel::delete(api_tokens::table.filter(api_tokens::user_id.eq(user_id.get()))).execute(conn).await?)
}

pub(crate) async fn update_user(
    conn: &mut Conn<'_>,
    username: &str,
    update: &UserUpdate,
    actor: &str,
) -> DbResult<User> {
    let demotes = update.role.is_some_and(|role| role != Role::Admin);
    let admins = if demotes { lock_admins(conn).await? } else { Vec::new() };
    let before = lock_user(conn, username).await?;
    let now = now_micros();
    let mut after = before.clone();
    if let Some(role) = update.role.filter(|&role| role != before.role) {
        if demotes {
            keep_an_admin(&before, &admins, "demote")?;
        }
        diesel::update(users::table.find(before.id.get())).set(users::role.eq(role.as_str())).execute(conn).await?;
        after.role = role;
        let details =
            json!({ "id": before.id, "username": before.username, "before": before.role, "after": after.role });
        record(conn, kind::USER_ROLE_CHANGED, actor, now, Subject::default(), details).await?;
    }
    if let Some(password_hash) = &update.password_hash {
        diesel::update(users::table.find(before.id.get()))
            .set(users::password_hash.eq(password_hash))
            .execute(conn)
            .await?;
        let revoked = revoke_all_tokens(conn, before.id).await?;
        super::sessions::end_user_sessions(conn, before.id).await?;
        let details = json!({ "id": before.id, "username": before.username, "tokens_revoked": revoked });
        record(conn, kind::USER_PASSWORD_CHANGED, actor, now, Subject::default(), details).await?;
    }
    Ok(after)
}

pub(crate) async fn delete_user(conn: &mut Conn<'_>, username: &str, actor: &str) -> DbResult<User> {
    let admins = lock_admins(conn).await?;
    let user = lock_user(conn, username).await?;
    keep_an_admin(&user, &admins, "delete")?;
    let revoked = revoke_all_tokens(conn, user.id).await?;
    super::sessions::end_user_sessions(conn, user.id).await?;
    diesel::delete(users::table.find(user.id.get())).execute(conn).await?;
    let details = json!({ "id": user.id, "username": user.username, "role": user.role, "tokens_revoked": revoked });
    record(conn, kind::USER_DELETED, actor, now_micros(), Subject::default(), details).await?;
    Ok(user)
}

type TokenColumns = (
    api_tokens::id,
    api_tokens::user_id,
    api_tokens::name,
    api_tokens::created_at,
    api_tokens::last_used_at,
    api_tokens::expires_at,
);

const TOKEN_COLUMNS: TokenColumns = (
    api_tokens::id,
    api_tokens::user_id,
    api_tokens::name,
    api_tokens::created_at,
    api_tokens::last_used_at,
    api_tokens::expires_at,
);

type TokenRow = (i64, i64, String, Micros, Option<Micros>, Option<Micros>);

fn token_from_row((id, user_id, name, created_at, last_used_at, expires_at): TokenRow) -> DbResult<ApiToken> {
    Ok(ApiToken {
        id: TokenId::new(id),
        user_id: UserId::new(user_id),
        name,
        created_at: from_micros(created_at)?,
        last_used_at: last_used_at.map(from_micros).transpose()?,
        expires_at: expires_at.map(from_micros).transpose()?,
    })
}

/// Also deletes the user's expired tokens, so that they do not pile up.
pub(crate) async fn create_token(
    conn: &mut Conn<'_>,
    user_id: UserId,
    token_hash: &str,
    name: &str,
    expires_at: Option<Micros>,
) -> DbResult<ApiToken> {
    let exists: Option<i64> = users::table.find(user_id.get()).select(users::id).first(conn).await.optional()?;
    if exists.is_none() {
        return Err(Error::not_found("user", user_id).into());
    }
    let now = now_micros();
    diesel::delete(
        api_tokens::table.filter(api_tokens::user_id.eq(user_id.get())).filter(api_tokens::expires_at.le(now)),
    )
    .execute(conn)
    .await?;
    let row = NewTokenRow { user_id: user_id.get(), token_hash, name, created_at: now, expires_at };
    let created: TokenRow = diesel::insert_into(api_tokens::table)
        .values(row)
        .returning(TOKEN_COLUMNS)
        .get_result(conn)
        .await
        .map_err(on_unique(|| format!("a token with this hash already exists (named {name})")))?;
    token_from_row(created)
}

/// A live token's id, when it was last used, and its user.
/// A token that works at `now`, and whose it is.
#[derive(Debug, Clone)]
pub(crate) struct FoundToken {
    pub(crate) id: i64,
    pub(crate) expires_at: Option<Micros>,
    pub(crate) last_used_at: Option<Micros>,
    pub(crate) user: User,
}

pub(crate) async fn find_token(conn: &mut Conn<'_>, token_hash: &str, now: Micros) -> DbResult<Option<FoundToken>> {
    let found: Option<(i64, Option<Micros>, Option<Micros>, UserRow)> = api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::token_hash.eq(token_hash))
        .filter(api_tokens::expires_at.is_null().or(api_tokens::expires_at.gt(now)))
        .select((api_tokens::id, api_tokens::expires_at, api_tokens::last_used_at, columns::<UserRow>()))
        .first(conn)
        .await
        .optional()?;
    found
        .map(|(id, expires_at, last_used_at, user)| {
            Ok(FoundToken { id, expires_at, last_used_at, user: user.into_domain()? })
        })
        .transpose()
}

pub(crate) async fn touch_token(conn: &mut Conn<'_>, token_id: i64, now: Micros) -> DbResult<()> {
    diesel::update(api_tokens::table.find(token_id)).set(api_tokens::last_used_at.eq(now)).execute(conn).await?;
    Ok(())
}

pub(crate) async fn list_tokens(conn: &mut Conn<'_>, user_id: UserId, now: Micros) -> DbResult<Vec<ApiToken>> {
    let rows: Vec<TokenRow> = api_tokens::table
        .filter(api_tokens::user_id.eq(user_id.get()))
        .filter(api_tokens::expires_at.is_null().or(api_tokens::expires_at.gt(now)))
        .order(api_tokens::id.asc())
        .select(TOKEN_COLUMNS)
        .load(conn)
        .await?;
    rows.into_iter().map(token_from_row).collect()
}

pub(crate) async fn revoke_token(
    conn: &mut Conn<'_>,
    id: TokenId,
    owner: Option<UserId>,
    actor: &str,
) -> DbResult<ApiToken> {
    let deleted: Option<TokenRow> = match owner {
        Some(owner) => diesel::delete(api_tokens::table.find(id.get()).filter(api_tokens::user_id.eq(owner.get())))
            .returning(TOKEN_COLUMNS)
            .get_result(conn)
            .await
            .optional()?,
        None => diesel::delete(api_tokens::table.find(id.get()))
            .returning(TOKEN_COLUMNS)
            .get_result(conn)
            .await
            .optional()?,
    };
    let token = token_from_row(deleted.ok_or_else(|| Error::not_found("token", id))?)?;
    let username: String = users::table.find(token.user_id.get()).select(users::username).first(conn).await?;
    let details = json!({ "id": token.id, "name": token.name, "user_id": token.user_id, "username": username });
    record(conn, kind::TOKEN_REVOKED, actor, now_micros(), Subject::default(), details).await?;
    Ok(token)
}
