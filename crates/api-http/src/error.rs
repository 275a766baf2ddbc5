//! Errors: one table from domain errors to HTTP statuses and stable codes, rendered per profile.

use std::marker::PhantomData;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use image_core::Error;

/// A failure on its way to the client, independent of any profile's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// A short, stable title such as "Image not found" or "Invalid request".
    pub title: String,
    /// What went wrong, for a person to read.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError { status, title: title.into(), message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "Invalid request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "Not found", message)
    }

    /// Anything unexpected: logged with its context here, and nothing of it reaches the client.
    pub fn internal(context: &str, err: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %err, "{context}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal error", "the server failed to handle the request")
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> ApiError {
        match &err {
            Error::Invalid { .. } => ApiError::bad_request(err.to_string()),
            Error::NotFound { kind, .. } => {
                ApiError::new(StatusCode::NOT_FOUND, not_found_title(kind), err.to_string())
            }
            Error::Conflict(message) => ApiError::new(StatusCode::CONFLICT, "Conflict", message.clone()),
            Error::Storage(_) => ApiError::internal("storage failure", &err),
        }
    }
}

fn not_found_title(kind: &str) -> String {
    let mut title = kind.to_owned();
    if let Some(first) = title.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    format!("{title} not found")
}

/// How a profile writes an error body.
pub trait ErrorFormat: Send + Sync + 'static {
    fn render(err: &ApiError) -> Response;
}

/// `{"error": title, "message": message}`, as the catalog (seed 002) and sign-in answer.
#[derive(Debug)]
pub enum Plain {}

impl ErrorFormat for Plain {
    fn render(err: &ApiError) -> Response {
        let body = serde_json::json!({ "error": err.title, "message": err.message });
        let mut response = (err.status, Json(body)).into_response();
        if err.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"imagegate\""));
        }
        response
    }
}

/// An [`ApiError`] that renders in profile `F`'s format.
pub struct ProfileError<F> {
    pub error: ApiError,
    format: PhantomData<fn() -> F>,
}

impl<F> std::fmt::Debug for ProfileError<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl<F> From<ApiError> for ProfileError<F> {
    fn from(error: ApiError) -> Self {
        ProfileError { error, format: PhantomData }
    }
}

impl<F> From<Error> for ProfileError<F> {
    fn from(err: Error) -> Self {
        ApiError::from(err).into()
    }
}

impl<F: ErrorFormat> IntoResponse for ProfileError<F> {
    fn into_response(self) -> Response {
        F::render(&self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_errors_map_to_statuses() {
        let e = ApiError::from(Error::not_found("approval request", 3));
        assert_eq!((e.status, e.title.as_str()), (StatusCode::NOT_FOUND, "Approval request not found"));
        let e = ApiError::from(Error::invalid("tag", "must not be empty"));
        assert_eq!((e.status, e.message.as_str()), (StatusCode::BAD_REQUEST, "invalid tag: must not be empty"));
        assert_eq!(ApiError::from(Error::conflict("x")).status, StatusCode::CONFLICT);
        let e = ApiError::from(Error::storage("disk on fire at /var/lib/secret"));
        assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.message.contains("secret"));
    }
}
