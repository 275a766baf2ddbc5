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
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Body(value, PhantomData)),
            Err(rejection) => Err(json_rejection(rejection).into()),
        }
    }
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

/// A JSON body that may be left out: an empty body is `T::default()`.
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
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "Invalid request", e.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalBody(T::default(), PhantomData));
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
