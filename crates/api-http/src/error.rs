//! Errors: one table from error codes to HTTP statuses and each profile's words, rendered per profile.
//!
//! `error_codes!` below is that table. A domain error carries an [`image_core::ErrorCode`]; the HTTP
//! layer adds the few codes only HTTP has (a body too large, a wrong content type). Each profile renders
//! an [`ApiError`] in its own format through [`ErrorFormat`]: a new profile adds a renderer, not a mapping.

use std::marker::PhantomData;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use image_core::{Error, ErrorCode};

/// Declares [`Code`] and its table: the status, the Kubernetes `reason`, and the word the catalog and
/// platform profiles put in `error`.
macro_rules! error_codes {
    ($( $(#[$doc:meta])* $code:ident => $status:ident, $reason:literal, $word:literal; )*) => {
        /// Every kind of failure the API answers, with one row each in the table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $( $(#[$doc])* $code, )*
        }

        impl Code {
            /// Every code, in the table's order.
            pub const ALL: &'static [Code] = &[$(Code::$code),*];

            pub fn status(self) -> StatusCode {
                match self { $(Code::$code => StatusCode::$status,)* }
            }

            /// The `reason` of a Kubernetes `Status`.
            pub fn kube_reason(self) -> &'static str {
                match self { $(Code::$code => $reason,)* }
            }

            /// The `error` word of the catalog and platform profiles, when no seed fixes a better one.
            pub fn word(self) -> &'static str {
                match self { $(Code::$code => $word,)* }
            }
        }
    };
}

error_codes! {
    /// The request is malformed: syntax, an unknown parameter, a bad path.
    BadRequest => BAD_REQUEST, "BadRequest", "Invalid request";
    /// A field broke a rule of the domain.
    Invalid => BAD_REQUEST, "Invalid", "Invalid request";
    Unauthorized => UNAUTHORIZED, "Unauthorized", "Unauthorized";
    Forbidden => FORBIDDEN, "Forbidden", "Forbidden";
    NotFound => NOT_FOUND, "NotFound", "Not found";
    MethodNotAllowed => METHOD_NOT_ALLOWED, "MethodNotAllowed", "Method not allowed";
    AlreadyExists => CONFLICT, "AlreadyExists", "Conflict";
    InUse => CONFLICT, "Conflict", "In use";
    Conflict => CONFLICT, "Conflict", "Conflict";
    PayloadTooLarge => PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", "Payload too large";
    UnsupportedMediaType => UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType", "Unsupported media type";
    RateLimited => TOO_MANY_REQUESTS, "TooManyRequests", "Too many requests";
    Internal => INTERNAL_SERVER_ERROR, "InternalError", "Internal error";
    /// A registry or other system the request needs answered badly or not at all.
    UpstreamUnavailable => BAD_GATEWAY, "InternalError", "Registry error";
    /// This server cannot do it now (not configured, overloaded).
    Unavailable => SERVICE_UNAVAILABLE, "ServiceUnavailable", "Service unavailable";
    Timeout => GATEWAY_TIMEOUT, "Timeout", "Timeout";
}

impl From<ErrorCode> for Code {
    fn from(code: ErrorCode) -> Code {
        match code {
            ErrorCode::Invalid => Code::Invalid,
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::AlreadyExists => Code::AlreadyExists,
            ErrorCode::InUse => Code::InUse,
            ErrorCode::Conflict => Code::Conflict,
            ErrorCode::Forbidden => Code::Forbidden,
            ErrorCode::Unauthorized => Code::Unauthorized,
            ErrorCode::RateLimited => Code::RateLimited,
            ErrorCode::UpstreamUnavailable => Code::UpstreamUnavailable,
            ErrorCode::Unavailable => Code::Unavailable,
            ErrorCode::Internal => Code::Internal,
        }
    }
}

impl Code {
    /// The code for a status that some other layer (axum's own rejections) chose.
    pub fn for_status(status: StatusCode) -> Code {
        Code::ALL.iter().copied().find(|c| c.status() == status).unwrap_or(if status.is_client_error() {
            Code::BadRequest
        } else {
            Code::Internal
        })
    }
}

/// A failure on its way to the client, independent of any profile's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: Code,
    /// A short title where a seed fixes one ("Image not approved", "Image not found"); the code's word
    /// otherwise.
    pub title: Option<String>,
    /// What went wrong, for a person to read.
    pub message: String,
    /// The input field at fault, when one is.
    pub field: Option<String>,
    /// The resource the request was about, as `(kind, name)`, for formats that report it.
    pub subject: Option<(String, String)>,
    /// Seconds to wait before trying again, sent as `Retry-After`.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn with_code(code: Code, message: impl Into<String>) -> ApiError {
        ApiError { code, title: None, message: message.into(), field: None, subject: None, retry_after_secs: None }
    }

    /// An error of the code `status` maps to, with a title of its own.
    pub fn new(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError { title: Some(title.into()), ..ApiError::with_code(Code::for_status(status), message) }
    }

    /// Gives the error a title of its own, where a seed fixes the words.
    pub fn titled(mut self, title: impl Into<String>) -> ApiError {
        self.title = Some(title.into());
        self
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The title a profile shows: the error's own, or its code's word.
    pub fn title(&self) -> &str {
        self.title.as_deref().unwrap_or(self.code.word())
    }

    /// Names the resource the failed request was about.
    pub fn about(mut self, kind: &str, name: &str) -> ApiError {
        self.subject = Some((kind.to_owned(), name.to_owned()));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::with_code(Code::BadRequest, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::with_code(Code::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::with_code(Code::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::with_code(Code::NotFound, message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::with_code(Code::Unavailable, message)
    }

    /// Anything unexpected: logged with its context here, and nothing of it reaches the client.
    pub fn internal(context: &str, err: &dyn std::fmt::Display) -> ApiError {
        tracing::error!(error = %err, "{context}");
        ApiError::with_code(Code::Internal, "the server failed to handle the request")
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> ApiError {
        let code = Code::from(err.code());
        match &err {
            Error::Invalid { field, .. } => {
                ApiError { field: Some(field.clone()), ..ApiError::with_code(code, err.to_string()) }
            }
            Error::NotFound { kind, .. } => ApiError::with_code(code, err.to_string()).titled(not_found_title(kind)),
            Error::RateLimited { retry_after_secs, .. } => {
                ApiError { retry_after_secs: *retry_after_secs, ..ApiError::with_code(code, err.to_string()) }
            }
            Error::Storage(_) => ApiError::internal("storage failure", &err),
            _ => ApiError::with_code(code, err.to_string()),
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

/// Headers every profile sends with an error: `Retry-After` when known, the challenge with a 401.
pub(crate) fn common_headers(err: &ApiError, response: &mut Response) {
    if let Some(secs) = err.retry_after_secs {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if err.code == Code::Unauthorized {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"imagegate\""));
    }
}

/// How a profile writes an error body.
pub trait ErrorFormat: Send + Sync + 'static {
    fn render(err: &ApiError) -> Response;
}

/// `{"error": title, "message": message}`, as the catalog (seed 002), the platform API (seed 000) and
/// sign-in answer.
#[derive(Debug)]
pub enum Plain {}

impl ErrorFormat for Plain {
    fn render(err: &ApiError) -> Response {
        let body = serde_json::json!({ "error": err.title(), "message": err.message });
        let mut response = (err.status(), Json(body)).into_response();
        common_headers(err, &mut response);
        response
    }
}

/// The API group and version of the kube-style resources.
pub const KUBE_API_VERSION: &str = "image.theriseunion.io/v1alpha1";

/// A Kubernetes `Status` object, as the kube-style resources API (seed 001) answers errors.
#[derive(Debug)]
pub enum KubeStatus {}

impl ErrorFormat for KubeStatus {
    fn render(err: &ApiError) -> Response {
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
            "reason": err.code.kube_reason(),
            "details": details,
            "code": err.status().as_u16(),
        });
        let mut response = (err.status(), Json(body)).into_response();
        common_headers(err, &mut response);
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
        assert_eq!((e.status(), e.title()), (StatusCode::NOT_FOUND, "Approval request not found"));
        let e = ApiError::from(Error::invalid("tag", "must not be empty"));
        assert_eq!((e.status(), e.message.as_str()), (StatusCode::BAD_REQUEST, "invalid tag: must not be empty"));
        assert_eq!(e.code.kube_reason(), "Invalid");
        assert_eq!(ApiError::from(Error::conflict("x")).status(), StatusCode::CONFLICT);
        let e = ApiError::from(Error::storage("disk on fire at /var/lib/secret"));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.message.contains("secret"));
    }

    /// The table, row by row: a changed status or reason is a change of the API and shows here.
    #[test]
    fn the_table() {
        let rows: Vec<String> = ErrorCode::ALL
            .iter()
            .map(|&c| {
                let code = Code::from(c);
                format!("{c:?} {} {} {:?}", code.status().as_u16(), code.kube_reason(), code.word())
            })
            .collect();
        assert_eq!(
            rows,
            [
                "Invalid 400 Invalid \"Invalid request\"",
                "NotFound 404 NotFound \"Not found\"",
                "AlreadyExists 409 AlreadyExists \"Conflict\"",
                "InUse 409 Conflict \"In use\"",
                "Conflict 409 Conflict \"Conflict\"",
                "Forbidden 403 Forbidden \"Forbidden\"",
                "Unauthorized 401 Unauthorized \"Unauthorized\"",
                "RateLimited 429 TooManyRequests \"Too many requests\"",
                "UpstreamUnavailable 502 InternalError \"Registry error\"",
                "Unavailable 503 ServiceUnavailable \"Service unavailable\"",
                "Internal 500 InternalError \"Internal error\"",
            ]
        );
    }

    #[test]
    fn statuses_chosen_elsewhere_find_their_code() {
        assert_eq!(Code::for_status(StatusCode::PAYLOAD_TOO_LARGE), Code::PayloadTooLarge);
        assert_eq!(Code::for_status(StatusCode::BAD_REQUEST), Code::BadRequest);
        assert_eq!(Code::for_status(StatusCode::IM_A_TEAPOT), Code::BadRequest);
        assert_eq!(Code::for_status(StatusCode::HTTP_VERSION_NOT_SUPPORTED), Code::Internal);
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let e = ApiError::from(Error::rate_limited("slow down", Some(7)));
        let response = KubeStatus::render(&e);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }
}
