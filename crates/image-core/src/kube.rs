//! Registry credentials (`RegistrySecret`) and kept-in-sync repositories (`Repository`), the resources of
//! the kube-style API: namespaced, named by DNS-1123 labels.

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Timestamp, validate};

/// Checks a Kubernetes-style name or namespace: a DNS-1123 label, 1 to 63 lowercase letters, digits and
/// `-`, starting and ending with a letter or digit.
pub fn validate_dns_label(field: &str, s: &str) -> Result<()> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-';
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "`{s}` is not a DNS-1123 label: 1 to 63 lowercase letters, digits or `-`, starting and ending with a letter or digit"
            ),
        ))
    }
}

/// Checks a resource name as Kubernetes does for custom resources: a DNS-1123 subdomain, up to 253
/// characters of DNS-1123 labels joined by `.` (`myapp-v1.0.0`).
pub fn validate_resource_name(field: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty() && s.len() <= 253 && s.split('.').all(|label| validate_dns_label(field, label).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "`{s}` is not a DNS-1123 subdomain: lowercase letters, digits, `-` and `.`, each part starting and ending with a letter or digit"
            ),
        ))
    }
}

/// Parses a duration in Go's form, as Kubernetes writes them: `90s`, `10m`, `1h30m`, `1.5h`, `500ms`.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    const YEAR_NANOS: u128 = 366 * 24 * 3600 * 1_000_000_000;
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if number_len == 0 {
            return Err(format!("`{s}` is not a duration such as 90s, 10m or 1h30m"));
        }
        let (whole, fraction) = match rest[..number_len].split_once('.') {
            Some((w, f)) => (w, f),
            None => (&rest[..number_len], ""),
        };
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(format!("`{s}` has a malformed number"));
        }
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("`{s}` needs a unit (ns, us, ms, s, m, h)")),
            other => return Err(format!("`{s}` has an unknown unit `{other}`")),
        };
        rest = &rest[unit_len..];
        let too_long = || format!("`{s}` is longer than a year");
        // Digits beyond nanoseconds are dropped, as Go does.
        let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| too_long())? };
        let mut part = whole.checked_mul(unit).ok_or_else(too_long)?;
        let mut scale = unit;
        for digit in fraction.bytes().take(30) {
            scale /= 10;
            part += u128::from(digit - b'0') * scale;
        }
        total = total.checked_add(part).filter(|&t| t <= YEAR_NANOS).ok_or_else(too_long)?;
    }
    if total > YEAR_NANOS {
        return Err(format!("`{s}` is longer than a year"));
    }
    let nanos = u64::try_from(total).map_err(|_| format!("`{s}` is longer than a year"))?;
    Ok(Duration::from_nanos(nanos))
}

/// Prints a duration in Go's form: `1h30m0s` → `1h30m`, `90s` → `1m30s`.
pub fn format_go_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let nanos = d.subsec_nanos();
    let mut secs = d.as_secs();
    if secs == 0 {
        return match nanos {
            n if n < 1_000 => format!("{n}ns"),
            n if n < 1_000_000 => format!("{}µs", decimal(u64::from(n), 1_000)),
            n => format!("{}ms", decimal(u64::from(n), 1_000_000)),
        };
    }
    let mut out = String::new();
    let h = secs / 3600;
    secs %= 3600;
    let m = secs / 60;
    secs %= 60;
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if secs > 0 || nanos > 0 {
        out.push_str(&decimal(secs * 1_000_000_000 + u64::from(nanos), 1_000_000_000));
        out.push('s');
    }
    out
}

/// `value / unit` in decimal, without trailing zeros: `decimal(1_500, 1_000)` is `1.5`.
fn decimal(value: u64, unit: u64) -> String {
    let whole = value / unit;
    let fraction = value % unit;
    if fraction == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Who runs a registry; decides nothing today but how it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Harbor,
    Dockerhub,
    Aliyun,
    Other,
}

impl Provider {
    pub const ALL: [Provider; 4] = [Provider::Harbor, Provider::Dockerhub, Provider::Aliyun, Provider::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Harbor => "harbor",
            Provider::Dockerhub => "dockerhub",
            Provider::Aliyun => "aliyun",
            Provider::Other => "other",
        }
    }
}

impl FromStr for Provider {
    type Err = Error;

    fn from_str(s: &str) -> Result<Provider> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| Error::invalid("provider", format!("`{s}` is not one of harbor, dockerhub, aliyun, other")))
    }
}

/// A password or token. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that needs it (encryption, a registry handshake).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The outcome of the last credential check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyStatus {
    Success,
    Failed,
    Untested,
}

impl VerifyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyStatus::Success => "success",
            VerifyStatus::Failed => "failed",
            VerifyStatus::Untested => "untested",
        }
    }
}

crate::id::id_type!(
    /// A registry secret's id.
    RegistrySecretId
);

crate::id::id_type!(
    /// A repository's id.
    RepositoryId
);

/// Credentials for one registry, kept in a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySecret {
    pub id: RegistrySecretId,
    pub namespace: String,
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    /// `host[:port]` of the registry.
    pub domain: String,
    pub username: String,
    pub password: Secret,
    pub provider: Provider,
    /// Reach the registry over plain HTTP (a lab registry).
    pub insecure: bool,
    /// PEM certificate authorities to trust for this registry.
    pub ca_bundle: Option<String>,
    pub verify_status: VerifyStatus,
    pub verify_message: Option<String>,
    pub verify_timestamp: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// A new registry secret, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRegistrySecret {
    pub namespace: String,
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub domain: String,
    pub username: String,
    pub password: Secret,
    pub provider: Provider,
    pub insecure: bool,
    pub ca_bundle: Option<String>,
}

impl NewRegistrySecret {
    pub fn validated(self) -> Result<NewRegistrySecret> {
        validate_dns_label("namespace", &self.namespace)?;
        validate_resource_name("name", &self.name)?;
        let domain = crate::catalog::normalise_registry(self.domain.trim_end_matches('/'));
        validate::registry_host(&domain).map_err(|e| Error::invalid("domain", e))?;
        if self.username.is_empty() || self.username.len() > 256 {
            return Err(Error::invalid("username", "must be 1 to 256 characters"));
        }
        if self.password.expose().is_empty() || self.password.expose().len() > 4096 {
            return Err(Error::invalid("password", "must be 1 to 4096 characters"));
        }
        for (field, text) in [("display_name", &self.display_name), ("description", &self.description)] {
            if let Some(t) = text {
                validate::text(t, 1000).map_err(|e| Error::invalid(field, e))?;
            }
        }
        if let Some(ca) = &self.ca_bundle
            && (!ca.contains("-----BEGIN CERTIFICATE-----") || ca.len() > 1 << 20)
        {
            return Err(Error::invalid("ca_bundle", "must be PEM certificates (at most 1 MiB)"));
        }
        Ok(NewRegistrySecret { domain, ..self })
    }
}

/// What a sync last found: the manifest's platform and size.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncedManifest {
    pub digest: Option<String>,
    pub architecture: Option<String>,
    pub os: Option<String>,
    pub size: Option<u64>,
    pub created: Option<String>,
    pub layers: Vec<String>,
}

/// Where a repository's sync stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncStatus {
    Syncing,
    Success,
    Failed,
}

impl SyncStatus {
    pub const ALL: [SyncStatus; 3] = [SyncStatus::Syncing, SyncStatus::Success, SyncStatus::Failed];

    /// The status's one name, as the kube-style API shows it and the store keeps it.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Syncing => "Syncing",
            SyncStatus::Success => "Success",
            SyncStatus::Failed => "Failed",
        }
    }

    /// The status named `name` ([`SyncStatus::as_str`]); `None` for any other text.
    pub fn from_name(name: &str) -> Option<SyncStatus> {
        SyncStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A tag kept in sync from a registry secret's registry into the internal registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    pub id: RepositoryId,
    pub namespace: String,
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    /// Path in the source registry: `library/nginx`.
    pub repository: String,
    pub tag: String,
    pub registry_ref_namespace: String,
    pub registry_ref_name: String,
    pub sync_interval: Duration,
    pub sync_timeout: Duration,
    pub retry_count: u32,
    pub domain: Option<String>,
    pub sync_status: Option<SyncStatus>,
    pub sync_message: Option<String>,
    pub last_synced: Option<Timestamp>,
    pub next_sync_at: Timestamp,
    pub manifest: Option<SyncedManifest>,
    pub created_at: Timestamp,
}

/// A new repository, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRepository {
    pub namespace: String,
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub repository: String,
    pub tag: String,
    pub registry_ref_namespace: String,
    pub registry_ref_name: String,
    pub sync_interval: Duration,
    pub sync_timeout: Duration,
    pub retry_count: u32,
}

impl NewRepository {
    pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(3600);
    pub const DEFAULT_SYNC_TIMEOUT: Duration = Duration::from_secs(600);
    pub const DEFAULT_RETRY_COUNT: u32 = 3;
    pub const MIN_SYNC_INTERVAL: Duration = Duration::from_secs(60);

    pub fn validated(self) -> Result<NewRepository> {
        validate_dns_label("namespace", &self.namespace)?;
        validate_resource_name("name", &self.name)?;
        validate_dns_label("registry_ref.namespace", &self.registry_ref_namespace)?;
        validate_resource_name("registry_ref.name", &self.registry_ref_name)?;
        validate::repository_path(&self.repository).map_err(|e| Error::invalid("repository", e))?;
        validate::tag(&self.tag).map_err(|e| Error::invalid("tag", e))?;
        if self.sync_interval < NewRepository::MIN_SYNC_INTERVAL {
            return Err(Error::invalid("sync_interval", "must be at least 1m"));
        }
        if self.sync_timeout < Duration::from_secs(1) {
            return Err(Error::invalid("sync_timeout", "must be at least 1s"));
        }
        if self.retry_count > 20 {
            return Err(Error::invalid("retry_count", "must be between 0 and 20"));
        }
        for (field, text) in [("display_name", &self.display_name), ("description", &self.description)] {
            if let Some(t) = text {
                validate::text(t, 1000).map_err(|e| Error::invalid(field, e))?;
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_statuses_have_one_name_each() {
        for status in SyncStatus::ALL {
            assert_eq!(SyncStatus::from_name(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!(SyncStatus::from_name("success"), None);
    }

    #[test]
    fn go_durations() {
        let ok = |s: &str, secs: f64| assert_eq!(parse_go_duration(s).unwrap().as_secs_f64(), secs, "{s}");
        ok("90s", 90.0);
        ok("10m", 600.0);
        ok("1h30m", 5400.0);
        ok("1.5h", 5400.0);
        ok("500ms", 0.5);
        ok("2h45m30s", 9930.0);
        ok("0", 0.0);
        for bad in ["", "h", "10", "10x", "1h30", "-5m", "1.2.3s", "9999h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_go_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_go_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
        // Sub-second parts survive, as Go prints them, and parse back to the same duration.
        for (d, text) in [
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(90_250), "1m30.25s"),
            (Duration::from_millis(3_600_500), "1h0.5s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(1500), "1.5ms"),
            (Duration::from_nanos(2_500), "2.5µs"),
            (Duration::from_nanos(7), "7ns"),
            (Duration::from_nanos(1_000_000_001), "1.000000001s"),
        ] {
            assert_eq!(format_go_duration(d), text);
            assert_eq!(parse_go_duration(text), Ok(d), "{text}");
        }
    }

    #[test]
    fn dns_labels() {
        for ok in ["default", "harbor-prod", "a", "0a", &"a".repeat(63)] {
            assert!(validate_dns_label("n", ok).is_ok(), "{ok}");
        }
        for bad in ["", "Default", "-a", "a-", "a_b", "a.b", &"a".repeat(64), "_all_"] {
            assert!(validate_dns_label("n", bad).is_err(), "{bad}");
        }
        for ok in ["myapp-v1.0.0", "harbor-prod", "a.b.c"] {
            assert!(validate_resource_name("n", ok).is_ok(), "{ok}");
        }
        for bad in ["", "a..b", ".a", "a.", "A.b", "a_b", &"a.".repeat(127)] {
            assert!(validate_resource_name("n", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("Harbor12345");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        let new = NewRegistrySecret {
            namespace: "default".into(),
            name: "harbor-prod".into(),
            display_name: None,
            description: None,
            domain: "Harbor.Example.com".into(),
            username: "admin".into(),
            password: s,
            provider: Provider::Harbor,
            insecure: false,
            ca_bundle: None,
        };
        assert!(!format!("{new:?}").contains("Harbor12345"));
        assert_eq!(new.validated().unwrap().domain, "harbor.example.com");
    }
}
