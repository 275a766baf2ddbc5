//! `POST /api/v1/login`, `GET /api/v1/login_refresh`, `PUT /api/v1/logout`: sign-in with a session cookie.

use axum::{
    Json,
    extract::{FromRequest, Request, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use image_core::{Timestamp, auth::Role, auth::validate_username};
use serde::Deserialize;

use super::{ApiResult, User, parse_json};
use crate::{
    AppState,
    auth::{ClientAddr, check_password},
    error::ApiError,
    session,
};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Credentials {
    username: String,
    password: String,
}

/// Login's body: JSON, or form fields when sent as a form (the seed's `-d "username=…&password=…"`).
pub(super) struct LoginBody(Credentials);

impl<S: Send + Sync> FromRequest<S> for LoginBody {
    type Rejection = crate::error::ProfileError<super::Station>;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let form = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            v.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "Invalid request", e.body_text()))?;
        let json = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if form && !json {
            if bytes.windows(3).any(|w| w.eq_ignore_ascii_case(b"%00")) {
                return Err(ApiError::bad_request("invalid form: a field contains a NUL character (%00)").into());
            }
            // A POST, so that axum reads the fields from the body rather than the query.
            let request = Request::builder()
                .method(axum::http::Method::POST)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(axum::body::Body::from(bytes))
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            return match axum::extract::Form::<Credentials>::from_request(request, state).await {
                Ok(axum::extract::Form(credentials)) => Ok(LoginBody(credentials)),
                Err(e) => Err(ApiError::bad_request(format!("invalid form: {}", e.body_text())).into()),
            };
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request("sign in with `username` and `password`, as form fields or JSON").into());
        }
        parse_json::<Option<Credentials>>(&bytes).map_err(ApiError::bad_request)?.map(LoginBody).ok_or_else(|| {
            ApiError::bad_request("sign in with `username` and `password`, as form fields or JSON").into()
        })
    }
}

/// `2015-06-22 11:21:36`, as the seed shows `logintime` (UTC).
fn login_time(at: Timestamp) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

fn signed_in(user: &image_core::auth::User, at: Timestamp) -> serde_json::Value {
    serde_json::json!({
        "anonymous": false,
        "isAdmin": user.role == Role::Admin,
        "logintime": login_time(at),
        "username": user.username,
    })
}

/// Signs in with a user name and password and sets the session cookie. A wrong password is a 401, slowed
/// and limited as every sign-in is (429 with `Retry-After`, 503 when too many run at once).
pub(super) async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    LoginBody(credentials): LoginBody,
) -> ApiResult<Response> {
    // A login form posted from another site would sign the browser in as someone else.
    if session::is_foreign(&axum::http::Method::POST, &headers) {
        return Err(session::foreign().into());
    }
    let invalid = || ApiError::unauthorized("invalid username or password");
    validate_username(&credentials.username).map_err(|_| invalid())?;
    let user =
        check_password(&state, &credentials.username, &credentials.password, client).await?.ok_or_else(invalid)?;
    let (cookie, started) = session::start(&state, &user, &headers).await?;
    tracing::info!(user = %user.username, "signed in with a session");
    let body = signed_in(&user, started.created_at);
    Ok((
        [(header::SET_COOKIE, cookie), (header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"))],
        Json(body),
    )
        .into_response())
}

/// The signed-in user, and when the session began (now, for a token or Basic credentials).
pub(super) async fn login_refresh(user: User) -> ApiResult<Json<serde_json::Value>> {
    let at = user.session.as_ref().map_or_else(Timestamp::now_utc, |s| s.created_at);
    Ok(Json(signed_in(&user.user, at)))
}

/// Ends the request's session and clears its cookie; `{"username"}`.
pub(super) async fn logout(State(state): State<AppState>, user: User, headers: HeaderMap) -> ApiResult<Response> {
    let cookie = session::end(&state, &headers).await?;
    let body = serde_json::json!({ "username": user.user.username });
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn login_times_are_the_seeds() {
        let at = time::macros::datetime!(2015-06-22 11:21:36.7 UTC);
        assert_eq!(super::login_time(at), "2015-06-22 11:21:36");
    }
}
