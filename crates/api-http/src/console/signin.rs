//! Signing in and out of the console with a session cookie.

use askama::Template;
use axum::{
    extract::State,
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Redirect},
};
use image_core::auth::validate_username;
use serde::Deserialize;

use super::{
    form::Form,
    page::{Caller, PageResult, html, html_with},
};
use crate::{
    AppState,
    auth::{ClientAddr, check_password},
    session,
};

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginView {
    error: String,
    username: String,
}

/// `GET /console/login`: the sign-in form.
pub(super) async fn form() -> PageResult {
    html(LoginView { error: String::new(), username: String::new() })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Credentials {
    username: String,
    password: String,
}

/// `POST /console/login`: signs in and goes to the catalog; a wrong password shows the form again (401),
/// limited and slowed as every sign-in is.
pub(super) async fn sign_in(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(credentials): Form<Credentials>,
) -> PageResult {
    // A sign-in form posted from another site would sign the browser in as someone else.
    if session::is_foreign(&Method::POST, &headers) {
        return Err(session::foreign().into());
    }
    #[allow(clippy::result_large_err)] // the error every handler returns
    let refused = |username: String| {
        html_with(StatusCode::UNAUTHORIZED, LoginView { error: "Invalid username or password.".into(), username })
    };
    if validate_username(&credentials.username).is_err() {
        return refused(String::new());
    }
    let Some(user) = check_password(&state, &credentials.username, &credentials.password, client).await? else {
        return refused(credentials.username);
    };
    let (cookie, _) = session::start(&state, &user, &headers).await?;
    tracing::info!(user = %user.username, "signed in to the console");
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/console/images")).into_response())
}

/// `POST /console/logout`: ends the session and shows the sign-in form.
pub(super) async fn sign_out(State(state): State<AppState>, _: Caller, headers: HeaderMap) -> PageResult {
    let cookie = session::end(&state, &headers).await?;
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/console/login")).into_response())
}
