//! Sign-in's and the users' answers, as schemas: their handlers build them as JSON, so these types mirror
//! that shape field for field, are never built, and refuse fields they do not name.

#![allow(dead_code)]

use schemars::JsonSchema;

/// A new API token.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct IssuedToken {
    /// The bearer token; it is shown this once.
    token: String,
    /// RFC 3339, in milliseconds.
    expires_at: Option<String>,
}

/// A token as listed: never the token itself.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TokenView {
    id: i64,
    name: String,
    created_at: String,
    last_used_at: Option<String>,
    expires_at: Option<String>,
    /// The token this request was made with.
    current: bool,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenList {
    username: String,
    tokens: Vec<TokenView>,
}

/// A user: never the password's hash.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UserView {
    username: String,
    /// `admin` or `user`.
    role: String,
    created_at: String,
}

#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserList {
    users: Vec<UserView>,
}
