//! One module per API profile.

pub mod catalog;
pub mod kube;
pub mod platform;

/// Extractors and results of the profiles that answer errors as `{"error", "message"}`.
mod plain {
    use crate::{auth, error, extract};

    pub(crate) type Body<T> = extract::Body<T, error::Plain>;
    pub(crate) type Query<T> = extract::Query<T, error::Plain>;
    pub(crate) type Path<T> = extract::PathParams<T, error::Plain>;
    pub(crate) type User = auth::Authenticated<error::Plain>;
    pub(crate) type AdminUser = auth::Admin<error::Plain>;
    pub(crate) type ApiResult<T> = Result<T, error::ProfileError<error::Plain>>;
}
