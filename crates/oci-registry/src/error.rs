//! The distribution spec's errors: `{"errors":[{"code","message","detail"}]}` with the status each code
//! goes with.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

/// The error codes of the OCI distribution spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
}

impl Code {
    /// The code as the spec writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
        }
    }

    /// The status an error of this code gets unless it says otherwise.
    pub fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown | Code::BlobUploadUnknown | Code::ManifestUnknown | Code::NameUnknown => {
                StatusCode::NOT_FOUND
            }
            Code::BlobUploadInvalid
            | Code::DigestInvalid
            | Code::ManifestBlobUnknown
            | Code::ManifestInvalid
            | Code::NameInvalid
            | Code::SizeInvalid => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// An error answer of the registry API (boxed: it travels in every `Result` of a handler).
#[derive(Debug)]
pub struct OciError(Box<ErrorDetails>);

/// What an [`OciError`] says.
#[derive(Debug)]
pub struct ErrorDetails {
    pub code: Code,
    pub status: StatusCode,
    pub message: String,
    pub detail: serde_json::Value,
    /// Extra headers: a Bearer challenge, `Range` of an upload, `Retry-After`.
    pub headers: Vec<(header::HeaderName, String)>,
}

impl OciError {
    pub fn new(code: Code, message: impl Into<String>) -> OciError {
        OciError(Box::new(ErrorDetails {
            code,
            status: code.status(),
            message: message.into(),
            detail: serde_json::Value::Null,
            headers: Vec::new(),
        }))
    }

    pub fn with_status(mut self, status: StatusCode) -> OciError {
        self.status = status;
        self
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> OciError {
        self.detail = detail;
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: impl Into<String>) -> OciError {
        self.headers.push((name, value.into()));
        self
    }

    /// A failure of the store or the disk: logged, and answered 500 without its details.
    pub fn internal(err: impl std::fmt::Display) -> OciError {
        tracing::error!(error = %err, "registry: internal error");
        OciError::new(Code::Unsupported, "the registry failed to complete the request")
            .with_status(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::ops::Deref for OciError {
    type Target = ErrorDetails;

    fn deref(&self) -> &ErrorDetails {
        &self.0
    }
}

impl std::ops::DerefMut for OciError {
    fn deref_mut(&mut self) -> &mut ErrorDetails {
        &mut self.0
    }
}

impl From<image_core::Error> for OciError {
    fn from(err: image_core::Error) -> OciError {
        match err.code() {
            image_core::ErrorCode::Unavailable => {
                OciError::new(Code::Unsupported, err.to_string()).with_status(StatusCode::SERVICE_UNAVAILABLE)
            }
            _ => OciError::internal(err),
        }
    }
}

impl From<std::io::Error> for OciError {
    fn from(err: std::io::Error) -> OciError {
        OciError::internal(err)
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let details = *self.0;
        let body = serde_json::json!({
            "errors": [{ "code": details.code.as_str(), "message": details.message, "detail": details.detail }]
        });
        let mut response = (details.status, axum::Json(body)).into_response();
        for (name, value) in details.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

pub type OciResult<T> = Result<T, OciError>;
