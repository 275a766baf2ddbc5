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
    /// The input field at fault, when one is.
    pub field: Option<String>,
    /// The resource the request was about, as `(kind, name)`, for formats that report it.
    pub subject: Option<(String, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError { status, title: title.into(), message: message.into(), field: None, subject: None }
    }

    /// Names the resource the failed request was about.
    pub fn about(mut self, kind: &str, name: &str) -> ApiError {
        self.subject = Some((kind.to_owned(), name.to_owned()));
        self
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
            Error::Invalid { field, .. } => {
                ApiError { field: Some(field.clone()), ..ApiError::bad_request(err.to_string()) }
            }
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

/// The API group and version of the kube-style resources.
pub const KUBE_API_VERSION: &str = "image.theriseunion.io/v1alpha1";

/// A Kubernetes `Status` object, as the kube-style resources API (seed 001) answers errors.
#[derive(Debug)]
pub enum KubeStatus {}

impl KubeStatus {
    /// The `reason` Kubernetes gives for a status code.
    fn reason(status: StatusCode) -> &'static str {
        match status.as_u16() {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            409 => "AlreadyExists",
            413 => "RequestEntityTooLarge",
            415 => "UnsupportedMediaType",
            422 => "Invalid",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        }
    }
}

impl ErrorFormat for KubeStatus {
    fn render(err: &ApiError) -> Response {
        let mut reason = KubeStatus::reason(err.status);
        if err.status == StatusCode::BAD_REQUEST && err.field.is_some() {
            reason = "Invalid";
        }
        if err.status == StatusCode::CONFLICT && err.title != "Conflict" {
            reason = "Conflict";
        }
        let mut details = serde_json::Map::new();
        if let Some((kind, name)) = &err.subject {
            details.insert("name".into(), name.clone().into());
            details.insert("kind".into(), kind.clone().into());
        }
        if let Some(field) = &err.field {
            details.insert(
                "causes".into(),
                serde_json::json!([{ "reason": "FieldValueInvalid", "field": field, "message": err.message }]),
            );
        }
        let body = serde_json::json!({
            "apiVersion": KUBE_API_VERSION,
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": err.message,
            "reason": reason,
            "details": details,
            "code": err.status.as_u16(),
        });
        (err.status, Json(body)).into_response()
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
