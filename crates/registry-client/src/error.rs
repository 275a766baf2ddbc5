//! What can go wrong when talking to a registry, in the words of the domain.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use image_core::Digest;

/// The result of every operation of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an operation on a registry failed.
///
/// Messages name the registry and the object concerned, never a password or a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The registry does not have the manifest, blob, repository or upload session.
    #[error("{what} not found in {registry}/{repository}")]
    NotFound { registry: String, repository: String, what: Missing },

    /// The registry wants credentials and either none were configured or it refused them.
    #[error("{registry} refused {}{}", match username {
        Some(user) => format!("the credentials of `{user}`"),
        None => "anonymous access (no credentials are configured for it)".to_owned(),
    }, suffix(message.as_deref()))]
    Unauthorized { registry: String, username: Option<String>, message: Option<String> },

    /// The credentials were accepted but do not allow this operation (HTTP 403).
    #[error("{registry} denied access{}", suffix(message.as_deref()))]
    Denied { registry: String, message: Option<String> },

    /// The registry throttles us (HTTP 429, or Docker Hub's `ratelimit-remaining` says 0).
    #[error("{registry} is rate limiting requests{}", match retry_after {
        Some(d) => format!("; it asks to retry after {}s", d.as_secs()),
        None => String::new(),
    })]
    RateLimited { registry: String, retry_after: Option<Duration> },

    /// The manifest is a Docker schema 1 manifest, which cannot be copied faithfully.
    #[error(
        "{registry}/{repository}:{reference} is a Docker schema 1 manifest (`{media_type}`), \
         which is deprecated and not supported; rebuild or re-push the image with a current client"
    )]
    UnsupportedSchema1 { registry: String, repository: String, reference: String, media_type: String },

    /// Content does not hash to the digest it was expected to have.
    #[error("digest mismatch: expected {expected}, the content hashes to {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },

    /// A blob stream is shorter or longer than the size it was announced with.
    #[error("size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch { expected: u64, actual: u64 },

    /// No HTTP answer from the registry: DNS, TCP, TLS or a timeout.
    #[error("cannot reach registry {registry}: {cause}")]
    Unreachable { registry: String, cause: String },

    /// A transfer to or from the registry broke off after it had started; retry the whole blob
    /// (or resume a download at the offset reached).
    #[error("transfer with {registry} interrupted: {cause}")]
    Interrupted { registry: String, cause: String },

    /// The egress policy refuses every address of the host a request (or a redirect, or a token
    /// service) would connect to, for a request to `registry`; `addr` is the first address refused
    /// when `host` is a name.
    /// Never retried: the policy does not change while the client runs.
    #[error("the egress policy refuses connections to {host}{}", match addr {
        Some(addr) => format!(" ({addr})"),
        None => String::new(),
    })]
    EgressDenied { registry: String, host: String, addr: Option<std::net::IpAddr> },

    /// Something answers at that address, but not the OCI distribution API.
    #[error("{registry} is not an OCI registry: {reason}")]
    NotARegistry { registry: String, reason: String },

    /// The registry answered with a status this client does not expect for the operation;
    /// `code` and `message` come from the registry's JSON `errors` body, when it sent one.
    #[error("{registry} answered {status} to {operation}: {}{message}", match code {
        Some(code) => format!("{code}: "),
        None => String::new(),
    })]
    Protocol { registry: String, operation: String, status: u16, code: Option<String>, message: String },

    /// An argument is not a valid registry, repository, tag or digest.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// The client configuration cannot be used (for example the TLS backend failed to start).
    #[error("invalid registry client configuration: {0}")]
    InvalidConfig(String),

    /// A Docker `config.json` exists but cannot be used.
    #[error("cannot use Docker config {}: {reason}", path.display())]
    DockerConfig { path: PathBuf, reason: String },

    /// Reading the caller's data failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What [`Error::NotFound`] did not find.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Missing {
    /// A manifest, by tag or digest.
    Manifest(String),
    Blob(Digest),
    Repository,
    /// A blob upload session (it expired or was cancelled).
    Upload,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Manifest(reference) => write!(f, "manifest `{reference}`"),
            Missing::Blob(digest) => write!(f, "blob {digest}"),
            Missing::Repository => f.write_str("repository"),
            Missing::Upload => f.write_str("upload session"),
        }
    }
}

fn suffix(message: Option<&str>) -> String {
    message.map(|m| format!(": {m}")).unwrap_or_default()
}

impl Error {
    /// Whether trying the same operation again later may succeed: network trouble, interrupted
    /// transfers, throttling and the registry's own 5xx errors.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::Interrupted { .. } | Error::RateLimited { .. } => true,
            Error::Protocol { status, .. } => *status == 408 || *status == 429 || (500..600).contains(status),
            Error::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }

    /// Whether this is [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

/// The error code of a registry's error body and our own words for it, as `(code, reason)`.
///
/// The OCI distribution specification's error body is
/// `{"errors": [{"code": "MANIFEST_UNKNOWN", "message": "…", "detail": …}]}`. Only a code the
/// specification (or Docker's registry) defines is kept, and it is described in fixed words: nothing the
/// upstream wrote, its messages or an HTML error page, ever reaches an error, because an error reaches
/// users and a request may have been aimed at a server that is no registry at all.
pub(crate) fn parse_error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Body {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        code: Option<String>,
    }
    let Ok(parsed) = serde_json::from_slice::<Body>(body) else {
        return (None, None);
    };
    parsed
        .errors
        .iter()
        .filter_map(|e| e.code.as_deref())
        .find_map(|code| known_code(code).map(|(code, reason)| (Some(code.to_owned()), Some(reason.to_owned()))))
        .unwrap_or((None, None))
}

/// The error codes of the OCI distribution specification, with what each means.
fn known_code(code: &str) -> Option<(&'static str, &'static str)> {
    const CODES: &[(&str, &str)] = &[
        ("BLOB_UNKNOWN", "blob unknown to registry"),
        ("BLOB_UPLOAD_INVALID", "blob upload invalid"),
        ("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry"),
        ("DIGEST_INVALID", "provided digest did not match uploaded content"),
        ("MANIFEST_BLOB_UNKNOWN", "manifest references a manifest or blob unknown to registry"),
        ("MANIFEST_INVALID", "manifest invalid"),
        ("MANIFEST_UNKNOWN", "manifest unknown to registry"),
        ("NAME_INVALID", "invalid repository name"),
        ("NAME_UNKNOWN", "repository name not known to registry"),
        ("SIZE_INVALID", "provided length did not match content length"),
        ("UNAUTHORIZED", "authentication required"),
        ("DENIED", "requested access to the resource is denied"),
        ("UNSUPPORTED", "the operation is unsupported"),
        ("TOOMANYREQUESTS", "too many requests"),
        ("TAG_INVALID", "manifest tag did not match URI"),
        ("MANIFEST_UNVERIFIED", "manifest failed signature verification"),
        ("BLOB_UPLOAD_DENIED", "blob upload denied"),
        ("PAGINATION_NUMBER_INVALID", "invalid number of results requested"),
        ("RANGE_INVALID", "invalid content range"),
    ];
    CODES.iter().copied().find(|(known, _)| *known == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies() {
        let check = |body: &str, code: Option<&str>, message: Option<&str>| {
            let (c, m) = parse_error_body(body.as_bytes());
            assert_eq!((c.as_deref(), m.as_deref()), (code, message), "{body}");
        };
        check(
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#,
            Some("MANIFEST_UNKNOWN"),
            Some("manifest unknown to registry"),
        );
        check(
            r#"{"errors":[{"code":"DENIED","message":"a"},{"code":"X","message":"b"}]}"#,
            Some("DENIED"),
            Some("requested access to the resource is denied"),
        );
        // Nothing the upstream wrote survives: its messages, unknown codes, pages.
        check(r#"{"errors":[{"code":"SECRET-123","message":"the admin password is hunter2"}]}"#, None, None);
        check(
            r#"{"errors":[{"code":"NAME_UNKNOWN","message":"hunter2"}]}"#,
            Some("NAME_UNKNOWN"),
            Some("repository name not known to registry"),
        );
        check(r#"{"errors":[]}"#, None, None);
        check("", None, None);
        check("<html>\n<b>502</b> secret-token-abc</html>", None, None);
    }

    #[test]
    fn messages_never_hold_secrets_and_name_the_registry() {
        let e = Error::Unauthorized { registry: "r.example".into(), username: Some("bob".into()), message: None };
        assert_eq!(e.to_string(), "r.example refused the credentials of `bob`");
        let e = Error::Unauthorized { registry: "r.example".into(), username: None, message: Some("nope".into()) };
        assert_eq!(e.to_string(), "r.example refused anonymous access (no credentials are configured for it): nope");
        let e = Error::RateLimited { registry: "docker.io".into(), retry_after: Some(Duration::from_secs(3)) };
        assert_eq!(e.to_string(), "docker.io is rate limiting requests; it asks to retry after 3s");
        assert!(e.is_transient());
        let e = Error::Protocol {
            registry: "r".into(),
            operation: "PUT manifest".into(),
            status: 400,
            code: Some("MANIFEST_INVALID".into()),
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "r answered 400 to PUT manifest: MANIFEST_INVALID: bad");
        assert!(!e.is_transient());
    }
}
