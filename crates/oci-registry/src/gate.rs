//! The gate: manifest pulls (`GET`/`HEAD` by tag or digest) of images the catalog does not approve are
//! refused with 403 `DENIED` and the reason, or (in `warn` mode) served and recorded as an audit event.
//!
//! Blobs are not gated: without an approved manifest naming them a client cannot assemble an image, and the
//! blobs of approved manifests stay pullable. The server's own credential (imports) passes.

use async_trait::async_trait;
use image_core::Digest;

/// What the gate does with a refused pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GateMode {
    /// Refuse it: 403 `DENIED`.
    #[default]
    Enforce,
    /// Serve it, and record why it would have been refused (an audit event).
    Warn,
    /// No gate.
    Off,
}

impl std::str::FromStr for GateMode {
    type Err = String;

    fn from_str(s: &str) -> Result<GateMode, String> {
        match s {
            "enforce" => Ok(GateMode::Enforce),
            "warn" => Ok(GateMode::Warn),
            "off" => Ok(GateMode::Off),
            other => Err(format!("`{other}` is not a gate mode: enforce, warn or off")),
        }
    }
}

/// A pull the gate is asked about.
#[derive(Debug, Clone)]
pub struct Pull<'a> {
    pub repository: &'a str,
    /// The tag pulled by, if pulled by tag.
    pub tag: Option<&'a str>,
    pub digest: &'a Digest,
    /// The indexes in the repository that list this manifest (a platform's manifest of an approved index
    /// is approved with it).
    pub parents: &'a [Digest],
}

/// Decides whether a pull may go ahead: `Ok(None)` when it may, `Ok(Some(reason))` when it may not.
#[async_trait]
pub trait Gate: Send + Sync {
    async fn refusal(&self, pull: Pull<'_>) -> image_core::Result<Option<String>>;
}
