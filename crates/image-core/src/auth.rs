//! Users, roles and API tokens.

use std::{fmt, str::FromStr};

use serde::Serialize;

use crate::{Error, Result, Timestamp, time_fmt::serde_millis};

crate::id::id_type!(
    /// A user's id.
    UserId
);
crate::id::id_type!(
    /// An API token's id.
    TokenId
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May change the catalog, approve requests and manage users.
    Admin,
    /// May read, request approvals and start imports.
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Role> {
        match s {
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            _ => Err(Error::invalid("role", format!("`{s}` is not one of admin, user"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub role: Role,
    #[serde(with = "serde_millis")]
    pub created_at: Timestamp,
}

/// A new user; the password hash is made by the caller (the core knows no KDF).
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser").field("username", &self.username).field("role", &self.role).finish_non_exhaustive()
    }
}

/// A change to a user: a new role, a new password (hashed by the caller), or both. A new password ends
/// every token of the user.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    pub role: Option<Role>,
    pub password_hash: Option<String>,
}

impl fmt::Debug for UserUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserUpdate")
            .field("role", &self.role)
            .field("password", &self.password_hash.as_ref().map(|_| "(new)"))
            .finish()
    }
}

/// The shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;
/// The longest password accepted: enough for any passphrase, and a bound on what a sign-in hashes.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Checks a new password: 8 to 1024 characters.
pub fn validate_password(field: &str, password: &str) -> Result<()> {
    let len = password.chars().count();
    if (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&len) {
        Ok(())
    } else {
        Err(Error::invalid(field, format!("must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} characters, not {len}")))
    }
}

/// An API token as its owner sees it: never the token, nor its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    pub id: TokenId,
    pub user_id: UserId,
    /// The label given when it was issued.
    pub name: String,
    #[serde(with = "serde_millis")]
    pub created_at: Timestamp,
    /// To within a minute.
    #[serde(with = "serde_millis::option")]
    pub last_used_at: Option<Timestamp>,
    /// When it stops working; never, when `None`.
    #[serde(with = "serde_millis::option")]
    pub expires_at: Option<Timestamp>,
}

/// Checks a user name: 1 to 64 characters of letters, digits, `.`, `_`, `-` and `@`.
pub fn validate_username(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'@'));
    if ok { Ok(()) } else { Err(Error::invalid("username", "must be 1 to 64 letters, digits, `.`, `_`, `-` or `@`")) }
}

/// A user and the stored hash of their password, as read for a sign-in.
#[derive(Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_8_to_1024_characters() {
        assert!(validate_password("password", "1234567").is_err());
        assert!(validate_password("password", "12345678").is_ok());
        // Characters, not bytes.
        assert!(validate_password("password", "ééééééé").is_err());
        assert!(validate_password("password", &"ü".repeat(1024)).is_ok());
        let err = validate_password("newPassword", &"x".repeat(1025)).unwrap_err();
        assert_eq!(err.to_string(), "invalid newPassword: must be 8 to 1024 characters, not 1025");
    }

    #[test]
    fn updates_do_not_print_the_hash() {
        let update = UserUpdate { role: Some(Role::User), password_hash: Some("$argon2id$secret".into()) };
        assert!(!format!("{update:?}").contains("secret"));
    }
}
