//! What a call can fail with: the server's answer, or no answer at all.

use std::fmt;

use serde_json::Value;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// No answer: the server could not be reached, or the connection failed or timed out.
    #[error("cannot reach {url}: {reason}")]
    Transport { url: String, reason: String },
    /// The server answered with a success status and a body this client cannot read.
    #[error("cannot read the answer of {url}: {reason}")]
    Decode { url: String, reason: String },
    /// The server's address is not a usable http(s) URL.
    #[error("invalid server address `{0}`: expected http://host:port or https://host")]
    InvalidServer(String),
}

impl Error {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api(e) => Some(e.status),
            _ => None,
        }
    }
}

/// An error answer, in whichever profile's format it came: the catalog's and platform's
/// `{"error", "message"}`, a refused import's `{"state": 0, "message"}`, or a Kubernetes `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// The server's `error` word (`Not found`) or Kubernetes `reason` (`NotFound`); empty when the body
    /// has neither.
    pub code: String,
    /// The server's message; when the body is not one of the formats above, its first line, or the
    /// status's reason phrase.
    pub message: String,
    /// The body as the server sent it, when it was JSON.
    pub body: Option<Value>,
}

impl ApiError {
    /// Reads an error answer; never fails, whatever the body holds.
    pub fn from_body(status: u16, body: &[u8]) -> ApiError {
        let json: Option<Value> = serde_json::from_slice(body).ok();
        let text = |key: &str| json.as_ref().and_then(|j| j.get(key)).and_then(Value::as_str).map(str::to_owned);
        let code = text("error").or_else(|| text("reason")).unwrap_or_default();
        let message = text("message").filter(|m| !m.is_empty()).unwrap_or_else(|| {
            let raw = String::from_utf8_lossy(body);
            let line = raw.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
            if line.is_empty() || json.is_some() {
                reason_phrase(status).to_owned()
            } else {
                line.chars().take(200).collect()
            }
        });
        ApiError { status, code, message, body: json }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (HTTP {})", self.message, self.status)
    }
}

fn reason_phrase(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_profile_format_and_odd_bodies() {
        let plain = ApiError::from_body(404, br#"{"error":"Not found","message":"image 9 not found"}"#);
        assert_eq!((plain.code.as_str(), plain.message.as_str()), ("Not found", "image 9 not found"));

        let kube = ApiError::from_body(409, br#"{"kind":"Status","reason":"Conflict","message":"in use","code":409}"#);
        assert_eq!((kube.code.as_str(), kube.message.as_str()), ("Conflict", "in use"));

        let import = ApiError::from_body(422, br#"{"state":0,"message":"cannot import x","alreadyImageId":0}"#);
        assert_eq!((import.code.as_str(), import.message.as_str()), ("", "cannot import x"));

        let html = ApiError::from_body(502, b"\n<html>Bad gateway</html>\nmore");
        assert_eq!((html.code.as_str(), html.message.as_str(), html.body), ("", "<html>Bad gateway</html>", None));

        let empty = ApiError::from_body(503, b"");
        assert_eq!(empty.message, "Service Unavailable");

        let odd_json = ApiError::from_body(500, br#"[1, {"message": 3}]"#);
        assert_eq!(odd_json.message, "Internal Server Error");

        let binary = ApiError::from_body(400, &[0xff, 0xfe, b'\n', b'x']);
        assert_eq!(binary.status, 400);
        assert_eq!(binary.to_string(), format!("{} (HTTP 400)", binary.message));
    }
}
