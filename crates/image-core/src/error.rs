use std::fmt;

/// What went wrong, in the domain's words.
///
/// Storage adapters map their own failures onto these variants; the HTTP layer maps each variant to a
/// status code and renders it in the profile's error format.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input broke a rule of the domain; nothing was changed.
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    /// The thing asked for does not exist.
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    /// The change would break a uniqueness rule or a dependency; nothing was changed.
    #[error("{0}")]
    Conflict(String),
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

    pub fn conflict(message: impl Into<String>) -> Error {
        Error::Conflict(message.into())
    }

    pub fn storage(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error::Storage(err.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
