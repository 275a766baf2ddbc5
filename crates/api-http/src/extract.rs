//! Extractors that turn malformed input into a 4xx in the profile's own error format.

use std::marker::PhantomData;

use axum::{
    extract::{FromRequest, FromRequestParts, Request, rejection::JsonRejection},
    http::{StatusCode, request::Parts},
};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorFormat, ProfileError};

/// A JSON body of type `T`; anything malformed is a 400 (415 without a JSON content type).
#[derive(Debug)]
pub struct Body<T, F>(pub T, pub PhantomData<fn() -> F>);

impl<S, T, F> FromRequest<S> for Body<T, F>
where
    S: Send + Sync,
    T: DeserializeOwned,
    F: ErrorFormat,
{
    type Rejection = ProfileError<F>;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(req.headers()) {
            return Err(json_rejection(JsonRejection::MissingJsonContentType(Default::default())).into());
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "Invalid request", e.body_text()))?;
        if json_has_nul(&bytes) {
            return Err(ApiError::bad_request(NUL_IN_BODY).into());
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(Body(value, PhantomData)),
            Err(rejection) => Err(json_rejection(rejection).into()),
        }
    }
}

/// No text the API takes may hold a NUL character: PostgreSQL cannot store one, and no name, tag,
/// reference or message needs one.
pub(crate) const NUL_IN_BODY: &str = "invalid JSON body: text must not contain a NUL character (\\u0000)";

/// `application/json`, or any `application/…+json`, as axum's `Json` accepts.
fn has_json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    match essence.split_once('/') {
        Some((kind, subtype)) if kind.eq_ignore_ascii_case("application") => {
            let subtype = subtype.as_bytes();
            subtype.eq_ignore_ascii_case(b"json")
                || subtype.len() >= 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case(b"+json")
        }
        _ => false,
    }
}

/// Whether JSON text holds the escape of a NUL character (`\u0000`), the only way one can be in JSON: a
/// `\u` is an escape when an even number of backslashes comes before its own.
pub(crate) fn json_has_nul(bytes: &[u8]) -> bool {
    const ESCAPE: &[u8] = b"u0000";
    bytes.windows(ESCAPE.len() + 1).enumerate().any(|(at, window)| {
        window[0] == b'\\'
            && window[1..].eq_ignore_ascii_case(ESCAPE)
            && bytes[..at].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 0
    })
}

/// Whether a percent-encoded URI component holds an encoded NUL character (`%00`).
fn uri_has_nul(text: &str) -> bool {
    text.contains("%00")
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type",
            "the request body must be JSON, sent with `Content-Type: application/json`",
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(format!("malformed JSON: {}", source_text(&e))),
        JsonRejection::JsonDataError(e) => ApiError::bad_request(format!("invalid JSON body: {}", source_text(&e))),
        JsonRejection::BytesRejection(e) => ApiError::new(e.status(), "Invalid request", e.body_text()),
        other => ApiError::bad_request(other.body_text()),
    }
}

/// The innermost message of an error, which for serde is the one that names the field.
fn source_text(err: &dyn std::error::Error) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Query parameters of type `T`; a malformed query string is a 400.
#[derive(Debug)]
pub struct Query<T, F>(pub T, pub PhantomData<fn() -> F>);

impl<S, T, F> FromRequestParts<S> for Query<T, F>
where
    S: Send + Sync,
    T: DeserializeOwned,
    F: ErrorFormat,
{
    type Rejection = ProfileError<F>;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(uri_has_nul) {
            return Err(ApiError::bad_request("invalid query: a parameter contains a NUL character (%00)").into());
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value, PhantomData)),
            Err(rejection) => Err(ApiError::bad_request(format!("invalid query: {}", source_text(&rejection))).into()),
        }
    }
}

/// Path parameters of type `T`; an id that is not a number is a 400.
#[derive(Debug)]
pub struct PathParams<T, F>(pub T, pub PhantomData<fn() -> F>);

impl<S, T, F> FromRequestParts<S> for PathParams<T, F>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
    F: ErrorFormat,
{
    type Rejection = ProfileError<F>;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if uri_has_nul(parts.uri.path()) {
            return Err(ApiError::bad_request("invalid path: it contains a NUL character (%00)").into());
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(PathParams(value, PhantomData)),
            Err(rejection) => Err(ApiError::bad_request(format!("invalid path: {}", source_text(&rejection))).into()),
        }
    }
}

/// Deserialises a field that distinguishes "absent" (`None`) from "null" (`Some(None)`), for updates.
pub fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}

/// A JSON body that may be left out: an empty body is `T::default()`; a body that is there needs a JSON
/// content type (415 otherwise), as with [`Body`].
#[derive(Debug)]
pub struct OptionalBody<T, F>(pub T, pub PhantomData<fn() -> F>);

impl<S, T, F> FromRequest<S> for OptionalBody<T, F>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
    F: ErrorFormat,
{
    type Rejection = ProfileError<F>;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = has_json_content_type(req.headers());
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "Invalid request", e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalBody(T::default(), PhantomData));
        }
        // A body a cross-site form could send (text/plain, form encodings) is never read as JSON.
        if !json {
            return Err(json_rejection(JsonRejection::MissingJsonContentType(Default::default())).into());
        }
        if json_has_nul(&bytes) {
            return Err(ApiError::bad_request(NUL_IN_BODY).into());
        }
        serde_json::from_slice(&bytes)
            .map(|v| OptionalBody(v, PhantomData))
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")).into())
    }
}

/// Query parameters arrive as text, so that a bad value gets a message naming its parameter; these turn
/// them into values. An empty parameter (`?status=`) counts as absent.
pub mod param {
    use image_core::Error;

    pub fn non_empty(v: Option<String>) -> Option<String> {
        v.filter(|s| !s.is_empty())
    }

    pub fn int(name: &str, v: Option<String>) -> Result<Option<i64>, Error> {
        non_empty(v)
            .map(|s| s.parse::<i64>().map_err(|_| Error::invalid(name, format!("`{s}` is not a whole number"))))
            .transpose()
    }

    pub fn boolean(name: &str, v: Option<String>) -> Result<Option<bool>, Error> {
        match non_empty(v).as_deref() {
            None => Ok(None),
            Some("true") | Some("1") => Ok(Some(true)),
            Some("false") | Some("0") => Ok(Some(false)),
            Some(other) => Err(Error::invalid(name, format!("`{other}` is not true or false"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_escapes_are_found_only_where_json_has_them() {
        assert!(json_has_nul(br#"{"name": "a\u0000b"}"#));
        assert!(json_has_nul(br#"["\U0000"]"#));
        assert!(json_has_nul(br#"["\\\u0000"]"#), "an escaped backslash, then the escape");
        assert!(!json_has_nul(br#"{"name": "a\\u0000b"}"#), "a backslash, then the text u0000");
        assert!(!json_has_nul(br#"{"name": "\u00001"}"#.get(..11).unwrap()), "cut short");
        assert!(!json_has_nul(br#"{"name": "u0000", "x": "\u0001"}"#));
        assert!(!json_has_nul(b""));
    }

    #[test]
    fn json_content_types() {
        let with = |ct: &str| {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert(axum::http::header::CONTENT_TYPE, ct.parse().unwrap());
            has_json_content_type(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(with("APPLICATION/vnd.example+JSON"));
        assert!(!with("text/json"));
        assert!(!with("application/jsonx"));
        assert!(!with("text/plain"));
        assert!(!has_json_content_type(&axum::http::HeaderMap::new()));
    }
}
