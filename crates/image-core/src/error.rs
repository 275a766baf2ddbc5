use std::fmt;

/// What kind of failure an [`Error`] is, independent of its message.
///
/// Each code is stable: the HTTP layer maps every code, in one table, to a status and to each profile's
/// words for it (a Kubernetes `reason`, the catalog's `error`), so a new failure of a known kind needs no
/// new mapping anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The input broke a rule of the domain.
    Invalid,
    /// The thing asked for does not exist.
    NotFound,
    /// Something with the same identity exists already.
    AlreadyExists,
    /// The thing cannot change or go while something else depends on it.
    InUse,
    /// The thing is in a state that does not allow the change (decided, running, finished).
    Conflict,
    /// The caller may not do this.
    Forbidden,
    /// The caller did not say who they are, or was not believed.
    Unauthorized,
    /// Too many attempts; try again later.
    RateLimited,
    /// A registry or other system this operation needs cannot be used now.
    UpstreamUnavailable,
    /// This server cannot do it as configured (no internal registry, a secret key that does not fit).
    Unavailable,
    /// The storage backend failed for a reason the caller cannot fix.
    Internal,
}

impl ErrorCode {
    /// Every code, for tables and the tests that check them.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::Invalid,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::InUse,
        ErrorCode::Conflict,
        ErrorCode::Forbidden,
        ErrorCode::Unauthorized,
        ErrorCode::RateLimited,
        ErrorCode::UpstreamUnavailable,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];
}

/// What went wrong, in the domain's words.
///
/// Storage adapters map their own failures onto these variants; the HTTP layer maps each variant's
/// [`code`](Error::code) to a status code and renders it in the profile's error format.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input broke a rule of the domain; nothing was changed.
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The thing asked for does not exist.
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// Something with the same identity exists already; nothing was changed.
    #[error("{0}")]
    AlreadyExists(String),
    /// Something else still depends on the thing; nothing was changed.
    #[error("{0}")]
    InUse(String),
    /// The thing's state does not allow the change; nothing was changed.
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The caller's identity was missing or not accepted.
    #[error("{0}")]
    Unauthorized(String),
    /// Too many attempts; `retry_after_secs` says when to try again, when known.
    #[error("{message}")]
    RateLimited { message: String, retry_after_secs: Option<u64> },
    /// A registry or other outside system cannot be used now; the message says which and why, in our words.
    #[error("{0}")]
    UpstreamUnavailable(String),
    /// This server is not set up to do it now; the message says what an operator must change.
    #[error("{0}")]
    Unavailable(String),
    /// The storage backend failed for a reason the caller cannot fix.
    #[error("storage failure: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    pub fn invalid(field: impl Into<String>, reason: impl fmt::Display) -> Error {
        Error::Invalid { field: field.into(), reason: reason.to_string() }
    }

    pub fn not_found(kind: &'static str, id: impl fmt::Display) -> Error {
        Error::NotFound { kind, id: id.to_string() }
    }

    pub fn already_exists(message: impl Into<String>) -> Error {
        Error::AlreadyExists(message.into())
    }

    pub fn in_use(message: impl Into<String>) -> Error {
        Error::InUse(message.into())
    }

    pub fn conflict(message: impl Into<String>) -> Error {
        Error::Conflict(message.into())
    }

    pub fn forbidden(message: impl Into<String>) -> Error {
        Error::Forbidden(message.into())
    }

    pub fn unauthorized(message: impl Into<String>) -> Error {
        Error::Unauthorized(message.into())
    }

    pub fn rate_limited(message: impl Into<String>, retry_after_secs: Option<u64>) -> Error {
        Error::RateLimited { message: message.into(), retry_after_secs }
    }

    pub fn upstream_unavailable(message: impl Into<String>) -> Error {
        Error::UpstreamUnavailable(message.into())
    }

    pub fn unavailable(message: impl Into<String>) -> Error {
        Error::Unavailable(message.into())
    }

    pub fn storage(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error::Storage(err.into())
    }

    /// The kind of failure, for the HTTP layer's one table.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Invalid { .. } => ErrorCode::Invalid,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::AlreadyExists(_) => ErrorCode::AlreadyExists,
            Error::InUse(_) => ErrorCode::InUse,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::Unauthorized(_) => ErrorCode::Unauthorized,
            Error::RateLimited { .. } => ErrorCode::RateLimited,
            Error::UpstreamUnavailable(_) => ErrorCode::UpstreamUnavailable,
            Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::Storage(_) => ErrorCode::Internal,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_its_own_code() {
        let errors = [
            Error::invalid("tag", "empty"),
            Error::not_found("image", 1),
            Error::already_exists("x"),
            Error::in_use("x"),
            Error::conflict("x"),
            Error::forbidden("x"),
            Error::unauthorized("x"),
            Error::rate_limited("x", Some(3)),
            Error::upstream_unavailable("x"),
            Error::unavailable("x"),
            Error::storage("x"),
        ];
        let codes: Vec<ErrorCode> = errors.iter().map(Error::code).collect();
        assert_eq!(codes, ErrorCode::ALL);
    }
}
