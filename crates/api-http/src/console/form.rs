//! A form body (`application/x-www-form-urlencoded`) whose malformed input is a 4xx console page.

use axum::{
    extract::{FromRequest, Request},
    http::{StatusCode, header},
};
use serde::de::DeserializeOwned;

use super::page::HtmlPage;
use crate::error::{ApiError, ProfileError};

/// The fields of a submitted form; a body of another type is a 415, one that does not fit `T` a 400.
#[derive(Debug)]
pub(crate) struct Form<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = ProfileError<HtmlPage>;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/x-www-form-urlencoded");
        if !is_form {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
                "send the form as application/x-www-form-urlencoded",
            )
            .into());
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "Invalid request", e.body_text()))?;
        if bytes.windows(3).any(|w| w.eq_ignore_ascii_case(b"%00")) || bytes.contains(&0) {
            return Err(ApiError::bad_request("a field contains a NUL character").into());
        }
        let fields = form_urlencoded_fields(&bytes).map_err(ApiError::bad_request)?;
        Ok(Form(fields))
    }
}

fn form_urlencoded_fields<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_urlencoded::from_bytes(bytes).map_err(|e| format!("invalid form: {}", source_text(&e)))
}

fn source_text(err: &dyn std::error::Error) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Reject {
        reason: String,
    }

    #[test]
    fn forms_decode_and_refuse_what_does_not_fit() {
        let r: Reject = form_urlencoded_fields(b"reason=use+the+slim+build%21").unwrap();
        assert_eq!(r.reason, "use the slim build!");
        assert!(form_urlencoded_fields::<Reject>(b"reason=a&other=b").is_err());
        assert!(form_urlencoded_fields::<Reject>(b"").is_err());
        assert!(form_urlencoded_fields::<Reject>(&[0xff, 0xfe]).is_err());
    }
}
