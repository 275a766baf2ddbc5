//! Sign-in sessions held in a cookie, an authentication source beside API tokens and HTTP Basic.
//!
//! A session id is 256 random bits; the store keeps only its SHA-256, so a stolen database yields no
//! usable session. A session ends after [`DEFAULT_SESSION_IDLE`] without a request (the server's
//! `--session-idle`), at logout, and when its user's password changes or the user is deleted.
//!
//! The cookie is `HttpOnly` and `SameSite=Lax`, and `Secure` when the request came over TLS (as a
//! TLS-terminating proxy says with `X-Forwarded-Proto: https`). Browsers send it on their own, so a
//! cookie-authenticated `POST`, `PUT`, `PATCH` or `DELETE` whose `Origin` (or, without one, `Referer`)
//! names another site than the request's `Host` is refused with 403; requests with a token or Basic
//! credentials carry no such risk and are not checked.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, Method, header, request::Parts};
use image_core::{auth::User, station::Session};

use crate::{AppState, auth, error::ApiError};

/// The cookie that carries the session id.
pub const COOKIE: &str = "imagegate_session";

/// How long a session lasts without a request, unless the server is told otherwise.
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);

/// Starts a session for `user`: the cookie to set on the answer, and the session.
pub async fn start(state: &AppState, user: &User, headers: &HeaderMap) -> Result<(HeaderValue, Session), ApiError> {
    let (id, hash) = auth::new_token();
    let session = state.store.create_session(user.id, &hash).await?;
    let secure = if over_tls(headers) { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax{secure}");
    let cookie = HeaderValue::from_str(&cookie).map_err(|e| ApiError::internal("a session cookie", &e))?;
    Ok((cookie, session))
}

/// Ends the session the request's cookie names, if any; returns the cookie that clears it in the browser.
pub async fn end(state: &AppState, headers: &HeaderMap) -> Result<HeaderValue, ApiError> {
    if let Some(id) = cookie_value(headers) {
        state.store.end_session(&auth::token_hash(id)).await?;
    }
    let secure = if over_tls(headers) { "; Secure" } else { "" };
    Ok(HeaderValue::from_str(&format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"))
        .unwrap_or(HeaderValue::from_static("imagegate_session=; Path=/; Max-Age=0")))
}

/// The session the request's cookie names: `None` without the cookie; a 401 when the session has ended;
/// a 403 for a changing request from another site.
pub(crate) async fn authenticate(parts: &Parts, state: &AppState) -> Result<Option<Session>, ApiError> {
    let Some(id) = cookie_value(&parts.headers) else { return Ok(None) };
    if is_foreign(&parts.method, &parts.headers) {
        return Err(foreign());
    }
    match state.store.find_session(&auth::token_hash(id), state.session_idle).await? {
        Some(session) => Ok(Some(session)),
        None => Err(ApiError::unauthorized("the session has ended: sign in again")),
    }
}

/// Whether a `POST`, `PUT`, `PATCH` or `DELETE` names another site in its `Origin` or `Referer`.
pub(crate) fn is_foreign(method: &Method, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let named = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER));
    let Some(named) = named else { return false };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_ascii_lowercase);
    let from = named.to_str().ok().and_then(authority).map(str::to_ascii_lowercase);
    !matches!((from, host), (Some(from), Some(host)) if from == host)
}

/// The refusal of a request [`is_foreign`] finds.
pub(crate) fn foreign() -> ApiError {
    ApiError::forbidden(
        "a request signed in with a session cookie must come from this site: its Origin (or Referer) names another",
    )
}

/// `host[:port]` of an absolute URL (`https://a.example:8443/path` → `a.example:8443`); none for `null`
/// or anything that is not one.
fn authority(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    // Credentials in the URL (`user@host`) are not part of the site.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    (!authority.is_empty()).then_some(authority)
}

/// The session id from the `Cookie` headers, if the request has one.
fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Whether the request came over TLS, as the proxy in front says.
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').next().unwrap_or_default().trim().eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; imagegate_session=abc ; b=2")]);
        assert_eq!(cookie_value(&h), Some("abc"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "imagegate_session=xyz")]);
        assert_eq!(cookie_value(&h), Some("xyz"));
        assert_eq!(cookie_value(&headers(&[("cookie", "imagegate_session=")])), None);
        assert_eq!(cookie_value(&headers(&[("cookie", "other_imagegate_session=1")])), None);
    }

    #[test]
    fn foreign_origins_are_refused_for_changes_only() {
        let post = Method::POST;
        let same = headers(&[("host", "station.example:8080"), ("origin", "https://Station.example:8080")]);
        assert!(!is_foreign(&post, &same));
        let foreign = headers(&[("host", "station.example"), ("origin", "https://evil.example")]);
        assert!(is_foreign(&post, &foreign));
        assert!(!is_foreign(&Method::GET, &foreign));
        assert!(is_foreign(&Method::DELETE, &foreign));
        let referer = headers(&[("host", "station.example"), ("referer", "http://evil.example/page?x")]);
        assert!(is_foreign(&Method::PUT, &referer));
        let own_referer = headers(&[("host", "station.example"), ("referer", "http://station.example/ui")]);
        assert!(!is_foreign(&Method::PUT, &own_referer));
        assert!(is_foreign(&post, &headers(&[("host", "a"), ("origin", "null")])));
        assert!(!is_foreign(&post, &headers(&[("host", "a")])), "no Origin or Referer: not a browser form");
        assert!(is_foreign(&post, &headers(&[("origin", "https://a")])), "no Host to compare with");
    }

    #[test]
    fn authorities() {
        assert_eq!(authority("https://a.example:8443/x"), Some("a.example:8443"));
        assert_eq!(authority("http://u:p@a.example?q"), Some("a.example"));
        assert_eq!(authority("null"), None);
        assert_eq!(authority("://a"), None);
        assert_eq!(authority("https://"), None);
    }

    #[test]
    fn tls_is_what_the_proxy_says() {
        assert!(over_tls(&headers(&[("x-forwarded-proto", "HTTPS")])));
        assert!(over_tls(&headers(&[("x-forwarded-proto", "https, http")])));
        assert!(!over_tls(&headers(&[("x-forwarded-proto", "http")])));
        assert!(!over_tls(&HeaderMap::new()));
    }
}
