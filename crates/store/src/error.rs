//! Mapping database failures onto the domain's errors.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use image_core::Error;

/// A failure inside a store operation: the database's, or a domain rule's (not found, conflict).
///
/// Transactions need an error type that a diesel error converts into; this is it. It becomes an
/// [`image_core::Error`] when it leaves the crate.
#[derive(Debug)]
pub(crate) enum DbError {
    Diesel(DieselError),
    Domain(Error),
}

pub(crate) type DbResult<T> = Result<T, DbError>;

impl From<DieselError> for DbError {
    fn from(e: DieselError) -> DbError {
        DbError::Diesel(e)
    }
}

impl From<Error> for DbError {
    fn from(e: Error) -> DbError {
        DbError::Domain(e)
    }
}

impl From<DbError> for Error {
    fn from(e: DbError) -> Error {
        match e {
            DbError::Domain(e) => e,
            DbError::Diesel(e) => from_diesel(e),
        }
    }
}

/// A database failure the operation did not anticipate. A unique violation still says what clashed,
/// in the database's words; anything else is logged and becomes `Storage`.
pub(crate) fn from_diesel(e: DieselError) -> Error {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            Error::already_exists(format!("already exists: {}", info.message()))
        }
        // PostgreSQL's text cannot hold a NUL character; the API refuses one first, this covers the rest.
        DieselError::DatabaseError(_, info) if info.message().contains("0x00") => {
            Error::invalid("text", "must not contain a NUL character")
        }
        e => {
            tracing::error!(error = %e, "database error");
            Error::storage(e)
        }
    }
}

/// Turns a unique violation into `AlreadyExists` with the message `what` builds; other errors pass through.
pub(crate) fn on_unique<F>(what: F) -> impl FnOnce(DieselError) -> DbError
where
    F: FnOnce() -> String,
{
    move |e| match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
            DbError::Domain(Error::already_exists(what()))
        }
        e => DbError::Diesel(e),
    }
}

/// Whether the failure is a unique violation, which a transaction that raced another may expect.
pub(crate) fn is_unique_violation(e: &DbError) -> bool {
    matches!(e, DbError::Diesel(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)))
}

/// A row that the code cannot have written: a bad enum value, timestamp, digest or JSON.
pub(crate) fn corrupt(message: String) -> DbError {
    tracing::error!(%message, "corrupt row");
    DbError::Domain(Error::storage(message))
}
