//! Image references (`registry/namespace/name:tag@sha256:…`), parsed and printed with Docker's
//! normalisation.
//!
//! The rules follow the `distribution/reference` library that `docker` itself uses:
//! `redis` means `docker.io/library/redis:latest`,
//! a first path component is a registry host only when it looks like one,
//! and `index.docker.io` is another name for `docker.io`.
//! The grammar of each part lives in [`crate::validate`]; this module only splits and normalises.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Digest, DigestError, validate};

/// The registry a reference without a host refers to: Docker Hub.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// Other names of Docker Hub that normalise to [`DEFAULT_REGISTRY`].
const DEFAULT_REGISTRY_ALIASES: [&str; 2] = ["index.docker.io", "registry-1.docker.io"];

/// The namespace of Docker Hub's official images: `redis` is `library/redis`.
const OFFICIAL_NAMESPACE: &str = "library";

/// The tag a reference gets when it names neither a tag nor a digest.
const DEFAULT_TAG: &str = "latest";

/// Longer inputs are refused before any parsing, so that hostile input costs nothing.
/// A valid reference is far shorter: host, 255 characters of repository, 128 of tag and a digest.
const MAX_INPUT_LEN: usize = 4096;

/// A parsed, normalised image reference.
///
/// A `Reference` that exists is valid and normalised: its registry is never an alias of Docker Hub,
/// an official image's repository carries its `library/` namespace,
/// and it has a tag, a digest or both.
/// Its [`Display`](fmt::Display) form parses back to an equal `Reference`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not an image reference; each message names the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("an image reference must not be empty")]
    Empty,
    #[error("an image reference must be at most {max} bytes long; this one is {len}", max = MAX_INPUT_LEN)]
    TooLong { len: usize },
    #[error("an image reference must not contain whitespace or control characters")]
    Whitespace,
    #[error("an image reference needs a repository name")]
    MissingRepository,
    #[error("invalid registry host `{registry}`: {reason}")]
    InvalidRegistry { registry: String, reason: String },
    #[error("invalid repository `{repository}`: {reason}")]
    InvalidRepository { repository: String, reason: String },
    #[error("invalid tag: a tag must not be empty")]
    EmptyTag,
    #[error("invalid tag `{tag}`: {reason}")]
    InvalidTag { tag: String, reason: String },
    #[error("invalid digest: nothing follows `@`")]
    EmptyDigest,
    #[error("invalid digest `{digest}`: {reason}")]
    InvalidDigest { digest: String, reason: DigestError },
}

impl Reference {
    /// Parses a reference as `docker pull` would: `redis`, `grafana/grafana:10`,
    /// `localhost:5000/a/b@sha256:…`, `docker.io/library/redis:7@sha256:…`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        if s.len() > MAX_INPUT_LEN {
            return Err(ReferenceError::TooLong { len: s.len() });
        }
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ReferenceError::Whitespace);
        }

        // The digest comes after the first `@`; a second `@` makes the digest invalid.
        let (name_and_tag, digest) = match s.split_once('@') {
            Some((before, after)) => (before, Some(after)),
            None => (s, None),
        };
        // The tag is looked for only after the last `/`, so that a port is never taken for a tag.
        // The indices below are of ASCII characters, so every slice falls on a character boundary.
        let last_component = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_component..].rfind(':') {
            Some(i) => {
                let colon = last_component + i;
                (&name_and_tag[..colon], Some(&name_and_tag[colon + 1..]))
            }
            None => (name_and_tag, None),
        };
        if name.is_empty() {
            return Err(ReferenceError::MissingRepository);
        }
        let (registry, repository) = split_registry(name);

        // Parts are checked in reading order, so the first error reported is the leftmost one.
        let mut reference = Reference::checked_name(registry, repository)?;
        if let Some(tag) = tag {
            check_tag(tag)?;
        }
        let digest = digest.map(parse_digest).transpose()?;
        reference.set_version(tag, digest);
        Ok(reference)
    }

    /// Builds a reference from its parts, validated and normalised as [`Reference::parse`] does:
    /// an alias of Docker Hub becomes `docker.io`,
    /// and a single-component repository on Docker Hub gets `library/`.
    /// Without a tag and a digest the tag is `latest`, so that the result prints as it parses.
    ///
    /// The registry must look like a host (contain `.` or `:`, or be `localhost`);
    /// otherwise the printed reference would read as a Docker Hub repository.
    pub fn new(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Result<Reference, ReferenceError> {
        let mut reference = Reference::checked_name(registry, repository)?;
        if let Some(tag) = tag {
            check_tag(tag)?;
        }
        reference.set_version(tag, digest);
        Ok(reference)
    }

    /// The registry host, with its port if any: `docker.io`, `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path without the registry: `library/redis`, `grafana/grafana`, `a/b/c`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The repository without its last component: `library` for `library/redis`, `a/b` for `a/b/c`;
    /// `None` for a single-component repository, which only registries other than Docker Hub have.
    pub fn namespace(&self) -> Option<&str> {
        self.repository.rsplit_once('/').map(|(namespace, _)| namespace)
    }

    /// The last component of the repository: `redis` for `library/redis`.
    pub fn name(&self) -> &str {
        self.repository.rsplit_once('/').map_or(&self.repository, |(_, name)| name)
    }

    /// The same repository with another tag.
    ///
    /// Unlike Docker's `WithTag`, this drops the digest: a digest pins the content of the old tag,
    /// and a reference that names a new tag but keeps the old content is rarely meant.
    /// Add a digest back with [`Reference::with_digest`].
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        check_tag(tag)?;
        Ok(Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        })
    }

    /// The same reference pinned to `digest`; the tag, if any, is kept.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference { digest: Some(digest), ..self.clone() }
    }

    /// The short form `docker` prints: `redis:latest`, `grafana/grafana:10`,
    /// `localhost:5000/a/b:1`.
    ///
    /// Docker Hub's host and its `library/` namespace are left out only where the result still
    /// parses back to this reference: `docker.io/my.org/app` stays as it is,
    /// because `my.org/app` would name the registry `my.org`.
    pub fn familiar(&self) -> String {
        let mut s = String::new();
        if self.registry == DEFAULT_REGISTRY {
            let short = match self.repository.strip_prefix("library/") {
                Some(name) if !name.contains('/') => name,
                _ => &self.repository,
            };
            if split_registry(short).0 != DEFAULT_REGISTRY {
                s.push_str(DEFAULT_REGISTRY);
                s.push('/');
            }
            s.push_str(short);
        } else {
            s.push_str(&self.registry);
            s.push('/');
            s.push_str(&self.repository);
        }
        self.push_version(&mut s);
        s
    }

    /// Normalises and checks the registry and repository; the tag and digest are set afterwards.
    fn checked_name(registry: &str, repository: &str) -> Result<Reference, ReferenceError> {
        let registry = if DEFAULT_REGISTRY_ALIASES.contains(&registry) { DEFAULT_REGISTRY } else { registry };
        validate::registry_host(registry)
            .map_err(|reason| ReferenceError::InvalidRegistry { registry: registry.to_owned(), reason })?;
        if !looks_like_host(registry) {
            return Err(ReferenceError::InvalidRegistry {
                registry: registry.to_owned(),
                reason: "a registry host must contain `.` or `:`, or be `localhost`; \
                         otherwise it reads as a Docker Hub namespace"
                    .to_owned(),
            });
        }

        if repository.is_empty() {
            return Err(ReferenceError::MissingRepository);
        }
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("{OFFICIAL_NAMESPACE}/{repository}")
        } else {
            repository.to_owned()
        };
        // Two common mistakes get their own message; `validate` checks the length and the grammar.
        let reason = if repository.split('/').any(str::is_empty) {
            Some("has an empty path component (a leading, trailing or doubled `/`)".to_owned())
        } else if repository.chars().any(char::is_uppercase) {
            Some("must be lowercase".to_owned())
        } else {
            validate::repository_path(&repository).err()
        };
        if let Some(reason) = reason {
            return Err(ReferenceError::InvalidRepository { repository, reason });
        }

        Ok(Reference { registry: registry.to_owned(), repository, tag: None, digest: None })
    }

    /// Sets an already checked tag and digest.
    /// With neither, the tag is `latest`, as `docker pull` assumes.
    fn set_version(&mut self, tag: Option<&str>, digest: Option<Digest>) {
        self.tag = match tag {
            Some(tag) => Some(tag.to_owned()),
            None if digest.is_none() => Some(DEFAULT_TAG.to_owned()),
            None => None,
        };
        self.digest = digest;
    }

    fn push_version(&self, s: &mut String) {
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(digest.as_str());
        }
    }
}

/// Docker's rule: the first of several components is a host when it contains `.` or `:`,
/// is `localhost`, or has an uppercase letter (repository paths never do);
/// otherwise the whole name is on Docker Hub.
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest)) if looks_like_host(first) => (first, rest),
        _ => (DEFAULT_REGISTRY, name),
    }
}

fn looks_like_host(s: &str) -> bool {
    s.contains(['.', ':']) || s == "localhost" || s.chars().any(char::is_uppercase)
}

fn check_tag(tag: &str) -> Result<(), ReferenceError> {
    if tag.is_empty() {
        return Err(ReferenceError::EmptyTag);
    }
    validate::tag(tag).map_err(|reason| ReferenceError::InvalidTag { tag: tag.to_owned(), reason })
}

fn parse_digest(digest: &str) -> Result<Digest, ReferenceError> {
    if digest.is_empty() {
        return Err(ReferenceError::EmptyDigest);
    }
    digest.parse().map_err(|reason| ReferenceError::InvalidDigest { digest: digest.to_owned(), reason })
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(s)
    }
}

/// The fully normalised form: `docker.io/library/redis:latest`,
/// `docker.io/library/redis:7@sha256:…`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(self.registry.len() + self.repository.len() + 80);
        s.push_str(&self.registry);
        s.push('/');
        s.push_str(&self.repository);
        self.push_version(&mut s);
        f.write_str(&s)
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl Serialize for Reference {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Reference, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sha256 of nothing: a well-formed digest for the tables below.
    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    /// Parses `input` and compares its normalised form, or `error: <message>`, with `expect`.
    /// Every success must also print in a form that parses back to the same reference.
    #[track_caller]
    fn check(input: &str, expect: &str) {
        let actual = match Reference::parse(input) {
            Ok(r) => {
                let printed = r.to_string();
                assert_eq!(Reference::parse(&printed).as_ref(), Ok(&r), "`{printed}` does not parse back");
                assert_eq!(
                    Reference::parse(&r.familiar()).as_ref(),
                    Ok(&r),
                    "familiar `{}` does not parse back",
                    r.familiar()
                );
                printed
            }
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(actual, expect, "input: {input:?}");
    }

    fn digest() -> Digest {
        D.parse().unwrap()
    }

    #[test]
    fn docker_io_normalisation() {
        check("redis", "docker.io/library/redis:latest");
        check("library/redis", "docker.io/library/redis:latest");
        check("docker.io/redis", "docker.io/library/redis:latest");
        check("docker.io/library/redis:7", "docker.io/library/redis:7");
        check("index.docker.io/library/redis", "docker.io/library/redis:latest");
        check("index.docker.io/redis", "docker.io/library/redis:latest");
        check("registry-1.docker.io/x/y:1", "docker.io/x/y:1");
        check("grafana/grafana:10", "docker.io/grafana/grafana:10");
        check("a/b/c", "docker.io/a/b/c:latest");
        check("docker.io", "docker.io/library/docker.io:latest");
    }

    #[test]
    fn hosts_and_ports() {
        check("localhost:5000/a/b", "localhost:5000/a/b:latest");
        check("localhost:5000/foo", "localhost:5000/foo:latest");
        check("localhost/foo", "localhost/foo:latest");
        check("myreg.example.com:443/team/app:v1", "myreg.example.com:443/team/app:v1");
        check("10.0.0.1:5000/x", "10.0.0.1:5000/x:latest");
        check("[::1]:5000/x:y", "[::1]:5000/x:y");
        check("ghcr.io/org/app", "ghcr.io/org/app:latest");
        check("localhost:0/x", "error: invalid registry host `localhost:0`: `localhost:0` has an invalid port");
        check(
            "localhost:99999/x",
            "error: invalid registry host `localhost:99999`: `localhost:99999` has an invalid port",
        );
        check("a_b.com/x", "error: invalid registry host `a_b.com`: `a_b.com` is not a valid host name");
        check(":5000/x", "error: invalid registry host `:5000`: `:5000` has an empty or overlong label");
        check("[::1/x", "error: invalid registry host `[::1`: `[::1` has an unclosed `[`");
    }

    #[test]
    fn tags_versus_ports() {
        check("localhost:5000/a:1.0", "localhost:5000/a:1.0");
        check("localhost:5000/a/b:1", "localhost:5000/a/b:1");
        // Without a `/` there is no host, so `:5000` is a tag, as in Docker.
        check("localhost:5000", "docker.io/library/localhost:5000");
        check("redis:7-alpine", "docker.io/library/redis:7-alpine");
        check("redis:_x", "docker.io/library/redis:_x");
        check("redis:.x", "error: invalid tag `.x`: `.x` must start with a letter, digit or `_`");
    }

    #[test]
    fn digests() {
        check(&format!("redis@{D}"), &format!("docker.io/library/redis@{D}"));
        check(&format!("redis:7@{D}"), &format!("docker.io/library/redis:7@{D}"));
        check(&format!("localhost:5000/a/b:1@{D}"), &format!("localhost:5000/a/b:1@{D}"));
        check("redis@", "error: invalid digest: nothing follows `@`");
        check(
            "redis@sha256:short",
            "error: invalid digest `sha256:short`: a sha256 digest has 64 lowercase hex digits after `sha256:`",
        );
        check("redis@md5:abc", "error: invalid digest `md5:abc`: a digest must start with `sha256:`");
        check(
            &format!("redis@{}", D.to_uppercase()),
            &format!("error: invalid digest `{}`: a digest must start with `sha256:`", D.to_uppercase()),
        );
        check(
            &format!("redis@{D}@{D}"),
            &format!("error: invalid digest `{D}@{D}`: a sha256 digest has 64 lowercase hex digits after `sha256:`"),
        );
    }

    #[test]
    fn awkward_inputs() {
        check("", "error: an image reference must not be empty");
        check("Redis", "error: invalid repository `library/Redis`: must be lowercase");
        check("library/Redis", "error: invalid repository `library/Redis`: must be lowercase");
        // An uppercase first component can only be a host.
        check("Example/app", "Example/app:latest");
        check(
            "a//b",
            "error: invalid repository `a//b`: has an empty path component (a leading, trailing or doubled `/`)",
        );
        check("/a", "error: invalid repository `/a`: has an empty path component (a leading, trailing or doubled `/`)");
        check("a/", "error: invalid repository `a/`: has an empty path component (a leading, trailing or doubled `/`)");
        check("docker.io/", "error: an image reference needs a repository name");
        check(
            "localhost:5000/a/",
            "error: invalid repository `a/`: has an empty path component (a leading, trailing or doubled `/`)",
        );
        check(":tag", "error: an image reference needs a repository name");
        check(&format!("@{D}"), "error: an image reference needs a repository name");
        check("redis:", "error: invalid tag: a tag must not be empty");
        check("redis:@", "error: invalid tag: a tag must not be empty");
        check("redis 7", "error: an image reference must not contain whitespace or control characters");
        check(" redis", "error: an image reference must not contain whitespace or control characters");
        check("redis\n", "error: an image reference must not contain whitespace or control characters");
        check("redis\u{0}", "error: an image reference must not contain whitespace or control characters");
        check(
            "rédis",
            "error: invalid repository `library/rédis`: `rédis` may contain only lowercase letters, digits and the separators `.`, `_`, `__`, `-`",
        );
        check("ÉX/app", "error: invalid registry host `ÉX`: `ÉX` is not a valid host name");
        check("redis:tåg", "error: invalid tag `tåg`: `tåg` may contain only letters, digits, `_`, `.` and `-`");
        check(
            "redis:tag:extra",
            "error: invalid repository `library/redis:tag`: `redis:tag` may contain only lowercase letters, digits and the separators `.`, `_`, `__`, `-`",
        );
        check("a..b", "error: invalid repository `library/a..b`: `a..b` has a misplaced separator at position 1");
        check("-a", "error: invalid repository `library/-a`: `-a` must start and end with a lowercase letter or digit");
    }

    #[test]
    fn lengths() {
        let tag128 = "t".repeat(128);
        check(&format!("redis:{tag128}"), &format!("docker.io/library/redis:{tag128}"));
        let tag129 = "t".repeat(129);
        check(
            &format!("redis:{tag129}"),
            &format!("error: invalid tag `{tag129}`: is 129 characters long; at most 128 are allowed"),
        );

        // The limit is on the normalised repository, `library/` included.
        let repo255 = format!("x/{}", "a".repeat(253));
        check(&repo255, &format!("docker.io/{repo255}:latest"));
        check(&format!("localhost:5000/{repo255}:1"), &format!("localhost:5000/{repo255}:1"));
        let repo256 = format!("x/{}", "a".repeat(254));
        check(
            &repo256,
            &format!("error: invalid repository `{repo256}`: is 256 characters long; at most 255 are allowed"),
        );
        let official255 = "a".repeat(247);
        check(&official255, &format!("docker.io/library/{official255}:latest"));
        let official256 = "a".repeat(248);
        check(
            &official256,
            &format!(
                "error: invalid repository `library/{official256}`: is 256 characters long; at most 255 are allowed"
            ),
        );

        check(
            &"a".repeat(4096),
            &format!(
                "error: invalid repository `library/{}`: is 4104 characters long; at most 255 are allowed",
                "a".repeat(4096)
            ),
        );
        check(&"a".repeat(4097), "error: an image reference must be at most 4096 bytes long; this one is 4097");
        // Bytes, not characters: 2049 two-byte characters are 4098 bytes.
        check(&"é".repeat(2049), "error: an image reference must be at most 4096 bytes long; this one is 4098");
    }

    #[test]
    fn familiar_forms() {
        let familiar = |s: &str| Reference::parse(s).unwrap().familiar();
        assert_eq!(familiar("redis"), "redis:latest");
        assert_eq!(familiar("docker.io/library/redis:7"), "redis:7");
        assert_eq!(familiar("grafana/grafana:10"), "grafana/grafana:10");
        assert_eq!(familiar("library/a/b"), "library/a/b:latest");
        assert_eq!(familiar("localhost:5000/a/b:1"), "localhost:5000/a/b:1");
        assert_eq!(familiar(&format!("redis:7@{D}")), format!("redis:7@{D}"));
        assert_eq!(familiar(&format!("redis@{D}")), format!("redis@{D}"));
        // Dropping `docker.io/` here would turn `my.org` into a registry.
        assert_eq!(familiar("docker.io/my.org/app"), "docker.io/my.org/app:latest");
        assert_eq!(familiar("docker.io/localhost/app"), "docker.io/localhost/app:latest");
    }

    #[test]
    fn namespace_and_name() {
        let parts = |s: &str| {
            let r = Reference::parse(s).unwrap();
            (r.registry().to_owned(), r.namespace().map(str::to_owned), r.name().to_owned())
        };
        let owned = |reg: &str, ns: Option<&str>, name: &str| (reg.to_owned(), ns.map(str::to_owned), name.to_owned());
        assert_eq!(parts("redis"), owned("docker.io", Some("library"), "redis"));
        assert_eq!(parts("grafana/grafana"), owned("docker.io", Some("grafana"), "grafana"));
        assert_eq!(parts("localhost:5000/a/b/c:1"), owned("localhost:5000", Some("a/b"), "c"));
        assert_eq!(parts("localhost:5000/foo"), owned("localhost:5000", None, "foo"));

        let r = Reference::parse(&format!("redis:7@{D}")).unwrap();
        assert_eq!(r.repository(), "library/redis");
        assert_eq!(r.tag(), Some("7"));
        assert_eq!(r.digest(), Some(&digest()));
        let r = Reference::parse(&format!("redis@{D}")).unwrap();
        assert_eq!(r.tag(), None);
    }

    #[test]
    fn new_from_parts() {
        let new = |reg: &str, repo: &str, tag: Option<&str>, digest: Option<Digest>| match Reference::new(
            reg, repo, tag, digest,
        ) {
            Ok(r) => r.to_string(),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(new("docker.io", "redis", None, None), "docker.io/library/redis:latest");
        assert_eq!(new("index.docker.io", "library/redis", Some("7"), None), "docker.io/library/redis:7");
        assert_eq!(new("docker.io", "redis", None, Some(digest())), format!("docker.io/library/redis@{D}"));
        assert_eq!(new("localhost:5000", "foo", Some("1"), Some(digest())), format!("localhost:5000/foo:1@{D}"));
        assert_eq!(new("localhost:5000", "a/b", None, None), "localhost:5000/a/b:latest");
        assert_eq!(new("", "redis", None, None), "error: invalid registry host ``: must not be empty");
        assert_eq!(
            new("myhost", "app", None, None),
            "error: invalid registry host `myhost`: a registry host must contain `.` or `:`, or be `localhost`; otherwise it reads as a Docker Hub namespace"
        );
        assert_eq!(new("docker.io", "", None, None), "error: an image reference needs a repository name");
        assert_eq!(
            new("docker.io", "Redis", None, None),
            "error: invalid repository `library/Redis`: must be lowercase"
        );
        assert_eq!(new("docker.io", "redis", Some(""), None), "error: invalid tag: a tag must not be empty");
        assert_eq!(
            new("docker.io", "redis", Some("a:b"), None),
            "error: invalid tag `a:b`: `a:b` may contain only letters, digits, `_`, `.` and `-`"
        );
        assert_eq!(Reference::new("docker.io", "redis", None, None), Reference::parse("redis"));
    }

    #[test]
    fn with_tag_and_digest() {
        let r = Reference::parse(&format!("redis:7@{D}")).unwrap();
        assert_eq!(r.with_tag("8").unwrap().to_string(), "docker.io/library/redis:8");
        assert_eq!(r.with_tag("").unwrap_err(), ReferenceError::EmptyTag);
        assert_eq!(
            r.with_tag("-x").unwrap_err().to_string(),
            "invalid tag `-x`: `-x` must start with a letter, digit or `_`"
        );

        let r = Reference::parse("localhost:5000/a/b:1").unwrap();
        assert_eq!(r.with_digest(digest()).to_string(), format!("localhost:5000/a/b:1@{D}"));
        assert_eq!(r.with_tag("2").unwrap().with_digest(digest()).to_string(), format!("localhost:5000/a/b:2@{D}"));
    }

    #[test]
    fn debug_and_serde() {
        let r = Reference::parse("redis").unwrap();
        assert_eq!(format!("{r:?}"), "Reference(docker.io/library/redis:latest)");

        let r = Reference::parse(&format!("localhost:5000/a/b:1@{D}")).unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, format!("\"localhost:5000/a/b:1@{D}\""));
        assert_eq!(serde_json::from_str::<Reference>(&json).unwrap(), r);
        // Deserialising normalises, as parsing does.
        assert_eq!(
            serde_json::from_str::<Reference>("\"redis\"").unwrap().to_string(),
            "docker.io/library/redis:latest"
        );
        assert_eq!(
            serde_json::from_str::<Reference>("\"redis:\"").unwrap_err().to_string(),
            "invalid tag: a tag must not be empty"
        );
        assert!(serde_json::from_str::<Reference>("42").is_err());
    }

    /// Strings built from the awkward pieces of the grammar must parse or fail without panicking;
    /// those that parse must print in a form that parses back to the same reference.
    #[test]
    fn never_panics() {
        let pieces =
            ["a", "B", "0", "/", ":", "@", ".", "-", "_", "[", "]", "é", "€", "localhost", "sha256:", "5000", D, " "];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut s = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 8) as usize;
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                s.push_str(pieces[(state % pieces.len() as u64) as usize]);
            }
            if let Ok(r) = Reference::parse(&s) {
                assert_eq!(Reference::parse(&r.to_string()).as_ref(), Ok(&r), "{s:?}");
                assert_eq!(Reference::parse(&r.familiar()).as_ref(), Ok(&r), "{s:?}");
            }
        }
    }
}
