//! How a [`RegistryClient`](crate::RegistryClient) is configured, and Docker's `config.json`.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;

use crate::egress::EgressPolicy;
use crate::error::{Error, Result};

/// A user name and password for one registry.
///
/// Its `Debug` form never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
}

impl Credential {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credential {
        Credential { username: username.into(), password: password.into() }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// How often and how patiently a request is retried after a transient failure
/// (connection errors, HTTP 5xx, HTTP 429).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included; 1 means no retry.
    pub max_attempts: u32,
    /// The delay before the first retry; it doubles with every further retry.
    pub base_delay: Duration,
    /// No delay is longer, not even one a registry asks for with `Retry-After`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 5, base_delay: Duration::from_millis(250), max_delay: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1-based): exponential, capped at
    /// `max_delay`, with "equal jitter" (half fixed, half random) so that many clients that
    /// failed together do not retry together.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let delay = self.base_delay.saturating_mul(1 << exp).min(self.max_delay);
        let half = delay / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(if jitter_nanos == 0 { 0 } else { rand::random_range(0..=jitter_nanos) })
    }

    /// The delay a registry asked for with `Retry-After`, bounded by `max_delay`.
    pub(crate) fn retry_after(&self, asked: Duration) -> Duration {
        asked.min(self.max_delay)
    }
}

/// The configuration of a [`RegistryClient`](crate::RegistryClient).
///
/// Registry names are `HOST[:PORT]` as in image references (`docker.io`, `localhost:5000`);
/// URLs and Docker Hub's aliases are accepted and normalised.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Registries reached over plain HTTP, as Docker's `--insecure-registry`.
    /// Loopback registries (`localhost`, `127.0.0.0/8`, `[::1]`) always are.
    pub insecure_registries: Vec<String>,
    /// Credentials by registry; registries without an entry are accessed anonymously.
    pub credentials: HashMap<String, Credential>,
    /// Requests in flight to one registry at once, blob transfers included (default 8).
    pub max_concurrent_requests_per_registry: usize,
    pub retry: RetryPolicy,
    pub user_agent: String,
    /// How long a TCP and TLS connection may take to establish.
    pub connect_timeout: Duration,
    /// How long a response (or a chunk of it) may keep us waiting.
    pub read_timeout: Duration,
    /// Extra certificate authorities (PEM) trusted for HTTPS registries, for a private CA.
    pub ca_certificates_pem: Vec<Vec<u8>>,
    /// The size of a `PATCH` in chunked uploads (raised to what the registry's
    /// `OCI-Chunk-Min-Length` demands). Each upload holds at most one chunk in memory.
    pub upload_chunk_size: usize,
    /// Which addresses connections may go to, after name resolution (default: all but the
    /// link-local ranges, where cloud metadata services answer).
    pub egress: EgressPolicy,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            insecure_registries: Vec::new(),
            credentials: HashMap::new(),
            max_concurrent_requests_per_registry: 8,
            retry: RetryPolicy::default(),
            user_agent: concat!("imagegate/", env!("CARGO_PKG_VERSION")).to_owned(),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(300),
            ca_certificates_pem: Vec::new(),
            upload_chunk_size: 8 * 1024 * 1024,
            egress: EgressPolicy::default(),
        }
    }
}

/// Docker Hub's registry name in references and credential stores.
pub(crate) const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's registry API.
pub(crate) const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// `HOST[:PORT]` for a registry named by a host, a URL or one of Docker Hub's aliases:
/// `https://index.docker.io/v1/` → `docker.io`, `http://Reg.Example:5000/v2/` → `reg.example:5000`.
pub(crate) fn normalize_registry(name: &str) -> String {
    let name = name.trim();
    let without_scheme = name.split_once("://").map_or(name, |(_, rest)| rest);
    let host = without_scheme.split(['/', '?', '#']).next().unwrap_or("");
    // Credentials embedded in a URL (`user:pass@host`) are dropped, never kept in a key.
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" | "docker.io" => DOCKER_HUB.to_owned(),
        _ => host,
    }
}

/// Whether `registry` (`HOST[:PORT]`) is on the loopback interface.
pub(crate) fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(inner, _)| inner),
        None => registry.split_once(':').map_or(registry, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Where Docker keeps its client configuration: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`; `None` when neither variable says.
pub fn default_docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|home| PathBuf::from(home).join(".docker/config.json"))
}

/// Reads the credentials of a Docker `config.json` (`docker login` writes them), keyed by
/// normalised registry (`https://index.docker.io/v1/` becomes `docker.io`).
///
/// Entries hold either `auth` (base64 of `user:password`) or `username` and `password`;
/// entries with neither (credential helpers, identity tokens) are skipped.
/// A missing file is an empty map; a malformed one is an [`Error::DockerConfig`] whose message
/// never quotes the file's content.
pub fn load_docker_config(path: &Path) -> Result<HashMap<String, Credential>> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(Error::DockerConfig { path: path.to_owned(), reason: e.to_string() }),
    };
    parse_docker_config(&text).map_err(|reason| Error::DockerConfig { path: path.to_owned(), reason })
}

/// Parses a `config.json`; the error is a message that quotes no value from the file, since
/// values may be secrets.
fn parse_docker_config(text: &[u8]) -> std::result::Result<HashMap<String, Credential>, String> {
    // Parsed as a `Value` first: serde's typed errors would quote the offending value.
    let value: serde_json::Value = serde_json::from_slice(text)
        .map_err(|e| format!("not valid JSON (line {}, column {})", e.line(), e.column()))?;
    let root = value.as_object().ok_or("the top level is not a JSON object")?;
    let mut credentials = HashMap::new();
    let Some(auths) = root.get("auths") else {
        return Ok(credentials);
    };
    let auths = auths.as_object().ok_or("`auths` is not a JSON object")?;
    for (key, entry) in auths {
        let entry = entry.as_object().ok_or_else(|| format!("the entry for `{key}` is not a JSON object"))?;
        let text_field = |name: &str| -> std::result::Result<Option<&str>, String> {
            match entry.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(format!("`{name}` of the entry for `{key}` is not a string")),
            }
        };
        let credential = if let Some(auth) = text_field("auth")? {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(auth.trim()))
                .map_err(|_| format!("`auth` of the entry for `{key}` is not valid base64"))?;
            let decoded =
                String::from_utf8(decoded).map_err(|_| format!("`auth` of the entry for `{key}` is not UTF-8 text"))?;
            let (user, password) = decoded
                .split_once(':')
                .ok_or_else(|| format!("`auth` of the entry for `{key}` is not `user:password`"))?;
            Credential::new(user, password)
        } else {
            match (text_field("username")?, text_field("password")?) {
                (Some(user), Some(password)) => Credential::new(user, password),
                // Identity tokens and credential helpers are not supported: skip, do not fail.
                _ => continue,
            }
        };
        let registry = normalize_registry(key);
        if registry.is_empty() {
            return Err(format!("the key `{key}` names no registry"));
        }
        credentials.insert(registry, credential);
    }
    Ok(credentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    /// Parses `json` and prints the result sorted, as `registry=user/password` lines,
    /// or `error: …`.
    #[track_caller]
    fn check(json: &str, expect: &str) {
        let actual = match parse_docker_config(json.as_bytes()) {
            Ok(map) => {
                let mut lines: Vec<String> =
                    map.iter().map(|(k, c)| format!("{k}={}/{}", c.username, c.password)).collect();
                lines.sort();
                lines.join(" ")
            }
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(actual, expect, "{json}");
    }

    #[test]
    fn docker_config_files() {
        check(
            &format!(r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}"}}}}}}"#, b64("bob:s3cr:et")),
            "docker.io=bob/s3cr:et",
        );
        check(
            r#"{"auths": {"localhost:5000": {"username": "u", "password": "p"}, "https://Reg.Example:8443/v2/": {"username": "a", "password": "b"}}}"#,
            "localhost:5000=u/p reg.example:8443=a/b",
        );
        check(
            &format!(r#"{{"auths": {{"registry-1.docker.io": {{"auth": "{}"}}}}}}"#, b64("x:y").trim_end_matches('=')),
            "docker.io=x/y",
        );
        // Credential helpers leave empty entries; identity tokens are not passwords.
        check(r#"{"auths": {"ghcr.io": {}, "q.io": {"identitytoken": "t"}}, "credsStore": "desktop"}"#, "");
        check(r#"{"auths": {"a.io": {"auth": ""}}}"#, "");
        check(r#"{"HttpHeaders": {}}"#, "");
        check("{}", "");
        check("", "error: not valid JSON (line 1, column 0)");
        check("{\"auths\": {", "error: not valid JSON (line 1, column 11)");
        check("[]", "error: the top level is not a JSON object");
        check(r#"{"auths": "secret"}"#, "error: `auths` is not a JSON object");
        check(r#"{"auths": {"a.io": "secret"}}"#, "error: the entry for `a.io` is not a JSON object");
        check(
            r#"{"auths": {"a.io": {"auth": "!!secret!!"}}}"#,
            "error: `auth` of the entry for `a.io` is not valid base64",
        );
        check(
            &format!(r#"{{"auths": {{"a.io": {{"auth": "{}"}}}}}}"#, b64("nocolon")),
            "error: `auth` of the entry for `a.io` is not `user:password`",
        );
        check(
            r#"{"auths": {"a.io": {"username": 5, "password": "p"}}}"#,
            "error: `username` of the entry for `a.io` is not a string",
        );
    }

    #[test]
    fn missing_file_is_empty_and_bad_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        assert!(load_docker_config(&path).unwrap().is_empty());
        std::fs::write(&path, r#"{"auths": {"a.io": {"auth": "c2VjcmV0"}}}"#).unwrap();
        let err = load_docker_config(&path).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("config.json") && message.contains("not `user:password`"), "{message}");
        assert!(!message.contains("c2VjcmV0") && !message.contains("secret"), "{message}");
    }

    #[test]
    fn registry_names() {
        for (input, expect) in [
            ("docker.io", "docker.io"),
            ("https://index.docker.io/v1/", "docker.io"),
            ("index.docker.io", "docker.io"),
            ("registry-1.docker.io", "docker.io"),
            ("http://localhost:5000", "localhost:5000"),
            ("https://user:pw@Reg.Example:8443/v2/?x", "reg.example:8443"),
            ("[::1]:5000", "[::1]:5000"),
            (" quay.io ", "quay.io"),
        ] {
            assert_eq!(normalize_registry(input), expect, "{input}");
        }
    }

    #[test]
    fn loopback_hosts() {
        for (registry, expect) in [
            ("localhost", true),
            ("localhost:5000", true),
            ("LOCALHOST:5000", true),
            ("127.0.0.1:5000", true),
            ("127.8.9.10", true),
            ("[::1]:5000", true),
            ("[::1]", true),
            ("10.0.0.1:5000", false),
            ("docker.io", false),
            ("localhost.example.com", false),
            ("[::2]:5000", false),
        ] {
            assert_eq!(is_loopback(registry), expect, "{registry}");
        }
    }

    #[test]
    fn credential_debug_hides_the_password() {
        let c = Credential::new("bob", "hunter2");
        assert_eq!(format!("{c:?}"), r#"Credential { username: "bob", password: "<redacted>" }"#);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p =
            RetryPolicy { max_attempts: 5, base_delay: Duration::from_millis(100), max_delay: Duration::from_secs(1) };
        for attempt in 1..=10 {
            let full = (Duration::from_millis(100) * 2u32.pow(attempt - 1)).min(Duration::from_secs(1));
            let d = p.backoff(attempt);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?} not in [{:?}, {full:?}]", full / 2);
        }
        assert_eq!(p.retry_after(Duration::from_secs(100)), Duration::from_secs(1));
        assert_eq!(p.retry_after(Duration::from_millis(10)), Duration::from_millis(10));
    }
}
