//! The catalog's rules, as pure functions: which images are official, what a finished import adds to
//! the catalog, which tags stop being recommended when another one is, and whether an image may run.
//!
//! The store calls them inside its transactions (and still guards what it can with constraints); the API
//! profiles, and later the pull gate, the admission webhook and the drift report, call [`admit`] and
//! render its answer. None of them has a rule of its own.

use std::fmt;

use crate::{
    DEFAULT_REGISTRY, Digest, Reference, Timestamp,
    catalog::{ApprovalStatus, CatalogImage, NewImage, NewTag, Tag, TagId},
    import::Artifact,
    registry::{ScanStatus, Severity},
};

/// Whether an image is a Docker Official Image: one in `docker.io/library`.
pub fn is_official(registry: &str, namespace: &str) -> bool {
    registry == DEFAULT_REGISTRY && namespace == "library"
}

/// The image a finished import of `source` adds to the catalog when the catalog lacks it: pending
/// approval (an import does not approve anything), official by [`is_official`].
pub fn imported_image(source: &Reference) -> NewImage {
    let (registry, namespace) = (source.registry(), source.namespace().unwrap_or(""));
    NewImage::from_reference_parts(
        source.name(),
        registry,
        namespace,
        is_official(registry, namespace),
        ApprovalStatus::Pending,
    )
}

/// What a finished import records about the tag it copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedTag {
    pub tag: String,
    pub digest: Digest,
    pub size_bytes: Option<i64>,
    pub architecture: Option<String>,
    pub os: Option<String>,
    pub pushed_at: Timestamp,
}

impl ImportedTag {
    /// The tag to add when the image lacks it: neither recommended nor deprecated.
    /// The name is a parsed reference's tag; the platform is taken as the copied manifest states it.
    pub fn new_tag(&self) -> NewTag {
        NewTag::named(self.tag.clone()).with_copied(
            self.digest.clone(),
            self.size_bytes,
            self.architecture.clone(),
            self.os.clone(),
            self.pushed_at,
        )
    }

    /// `existing` with what was copied; whether it is recommended, deprecated or scanned stays as it was.
    pub fn applied_to(&self, existing: &Tag) -> Tag {
        Tag {
            digest: Some(self.digest.clone()),
            size_bytes: self.size_bytes,
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            pushed_at: Some(self.pushed_at),
            updated_at: self.pushed_at,
            ..existing.clone()
        }
    }
}

/// The tag a finished import of `source` into `target` records, copied at `at`: named by the target's
/// tag, else the source's (none for an import by digest alone). The first artifact speaks for an index:
/// it is the one listed first, usually linux/amd64.
pub fn imported_tag(
    source: &Reference,
    target: &Reference,
    digest: &Digest,
    artifacts: &[Artifact],
    at: Timestamp,
) -> Option<ImportedTag> {
    let tag = target.tag().or(source.tag())?;
    let first = artifacts.first();
    Some(ImportedTag {
        tag: tag.to_owned(),
        digest: digest.clone(),
        size_bytes: first.map(|a| i64::try_from(a.size).unwrap_or(i64::MAX)),
        architecture: first.and_then(|a| a.architecture.clone()),
        os: first.and_then(|a| a.os.clone()),
        pushed_at: at,
    })
}

/// One recommended tag per image: the tags of an image (`tags`) that stop being recommended when
/// `recommended` becomes its recommended tag (`None`: a tag not stored yet).
pub fn superseded_recommendations(tags: &[Tag], recommended: Option<TagId>) -> impl Iterator<Item = &Tag> {
    tags.iter().filter(move |t| t.is_recommended && Some(t.id) != recommended)
}

/// Whether a change of a tag from `before` to `after` makes it the image's recommended tag, so that the
/// others' recommendation ends ([`superseded_recommendations`]).
pub fn becomes_recommended(before: Option<&Tag>, after_is_recommended: bool) -> bool {
    after_is_recommended && !before.is_some_and(|b| b.is_recommended)
}

/// The answer to "may this image run?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission<'a> {
    /// The image is approved and the tag is in its list; the warnings do not stop it.
    Allowed {
        image: &'a CatalogImage,
        tag: &'a Tag,
        warnings: Vec<Warning>,
    },
    Refused(Refusal),
}

/// Why an image may not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The catalog does not have the image, or has not approved it.
    NotApproved,
    /// The image is approved, but the reference names no tag of its list (by tag, else by digest).
    TagNotListed,
    /// The tag's vulnerability scan failed the deny policy: it found `count` vulnerabilities, some at or
    /// above `severity` (`--deny-severity`).
    ScanFailed { severity: Severity, count: Option<i64> },
}

/// Something about an allowed image its user should hear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// The tag is deprecated.
    Deprecated { tag: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotApproved => f.write_str("the catalog does not approve this image"),
            Refusal::TagNotListed => f.write_str("this tag is not in the image's approved tags"),
            Refusal::ScanFailed { severity, count: Some(count) } => write!(
                f,
                "the vulnerability scan of this tag found {count} vulnerabilities, some {} or worse, which the deny policy refuses",
                severity.as_str()
            ),
            Refusal::ScanFailed { severity, count: None } => write!(
                f,
                "the vulnerability scan of this tag found vulnerabilities {} or worse, which the deny policy refuses",
                severity.as_str()
            ),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::Deprecated { tag } => write!(f, "tag {tag} is deprecated"),
        }
    }
}

/// Decides whether `reference` may run, from its catalog image (`None` when the catalog lacks it) and that
/// image's tags. The reference's tag is looked up by name; a reference by digest alone by digest.
pub fn admit<'a>(image: Option<&'a CatalogImage>, tags: &'a [Tag], reference: &Reference) -> Admission<'a> {
    admit_under(image, tags, reference, None)
}

/// [`admit`] under a deny policy: with `deny`, a tag whose scan failed it (`security_scan_status` is
/// `failed`, written when the scan found vulnerabilities at or above the severity) is refused too.
pub fn admit_under<'a>(
    image: Option<&'a CatalogImage>,
    tags: &'a [Tag],
    reference: &Reference,
    deny: Option<Severity>,
) -> Admission<'a> {
    match admit_listed(image, tags, reference) {
        Admission::Allowed { tag, .. }
            if deny.is_some() && tag.security_scan_status.as_deref() == Some(ScanStatus::Failed.as_str()) =>
        {
            let severity = deny.unwrap_or(Severity::Critical);
            Admission::Refused(Refusal::ScanFailed { severity, count: tag.vulnerabilities_count })
        }
        other => other,
    }
}

fn admit_listed<'a>(image: Option<&'a CatalogImage>, tags: &'a [Tag], reference: &Reference) -> Admission<'a> {
    let Some(image) = image.filter(|i| i.approval_status == ApprovalStatus::Approved) else {
        return Admission::Refused(Refusal::NotApproved);
    };
    let tag = match (reference.tag(), reference.digest()) {
        (Some(name), _) => tags.iter().find(|t| t.tag == name),
        (None, Some(digest)) => tags.iter().find(|t| t.digest.as_ref() == Some(digest)),
        (None, None) => None,
    };
    let Some(tag) = tag else { return Admission::Refused(Refusal::TagNotListed) };
    let mut warnings = Vec::new();
    if tag.is_deprecated {
        warnings.push(Warning::Deprecated { tag: tag.tag.clone() });
    }
    Admission::Allowed { image, tag, warnings }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_timestamp(secs).unwrap()
    }

    fn digest(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64)).parse().unwrap()
    }

    fn image(status: ApprovalStatus) -> CatalogImage {
        CatalogImage {
            id: crate::catalog::ImageId::new(1),
            image_name: "redis".into(),
            registry: "docker.io".into(),
            namespace: "library".into(),
            description: None,
            category: None,
            is_official: true,
            approval_status: status,
            approved_by: None,
            approved_at: None,
            created_at: at(0),
            updated_at: at(0),
        }
    }

    fn tag(id: i64, name: &str) -> Tag {
        Tag {
            id: TagId::new(id),
            image_id: crate::catalog::ImageId::new(1),
            tag: name.into(),
            digest: None,
            size_bytes: None,
            architecture: None,
            os: None,
            pushed_at: None,
            is_recommended: false,
            is_deprecated: false,
            security_scan_status: None,
            vulnerabilities_count: None,
            created_at: at(0),
            updated_at: at(0),
        }
    }

    fn reference(s: &str) -> Reference {
        Reference::parse(s).unwrap()
    }

    #[test]
    fn official_images_are_docker_library_ones() {
        assert!(is_official("docker.io", "library"));
        assert!(!is_official("docker.io", "bitnami"));
        assert!(!is_official("quay.io", "library"));
        assert!(!is_official("docker.io", ""));
        assert!(imported_image(&reference("redis:7")).is_official());
        assert!(!imported_image(&reference("ghcr.io/library/redis:7")).is_official());
    }

    #[test]
    fn an_import_adds_a_pending_image_named_by_its_source() {
        let new = imported_image(&reference("quay.io/prometheus/node-exporter:v1"));
        assert_eq!((new.registry(), new.namespace(), new.image_name()), ("quay.io", "prometheus", "node-exporter"));
        assert_eq!(new.approval_status(), ApprovalStatus::Pending);
        assert!(!new.is_official());
    }

    #[test]
    fn an_import_records_the_target_tag_else_the_source_tag() {
        let artifacts = [
            Artifact {
                digest: digest('b'),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                os: Some("linux".into()),
                architecture: Some("amd64".into()),
                variant: None,
                size: 1234,
            },
            Artifact {
                digest: digest('c'),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                os: Some("linux".into()),
                architecture: Some("arm64".into()),
                variant: None,
                size: 99,
            },
        ];
        let source = reference("redis:7");
        let renamed =
            imported_tag(&source, &reference("internal.example/mirror/redis:stable"), &digest('a'), &artifacts, at(5))
                .unwrap();
        assert_eq!(renamed.tag, "stable");
        assert_eq!(renamed.digest, digest('a'));
        assert_eq!((renamed.size_bytes, renamed.architecture.as_deref()), (Some(1234), Some("amd64")));
        let by_digest_target = format!("internal.example/redis@{}", digest('a'));
        let kept = imported_tag(&source, &reference(&by_digest_target), &digest('a'), &[], at(5)).unwrap();
        assert_eq!((kept.tag.as_str(), kept.size_bytes, kept.os.as_deref()), ("7", None, None));
        let no_tag = format!("redis@{}", digest('a'));
        assert_eq!(imported_tag(&reference(&no_tag), &reference(&by_digest_target), &digest('a'), &[], at(5)), None);

        let mut existing = tag(3, "7");
        existing.is_recommended = true;
        existing.is_deprecated = true;
        let updated = kept.applied_to(&existing);
        assert!(updated.is_recommended && updated.is_deprecated);
        assert_eq!((updated.digest, updated.pushed_at, updated.updated_at), (Some(digest('a')), Some(at(5)), at(5)));
        let new = kept.new_tag();
        assert!(!new.is_recommended() && !new.is_deprecated());
        assert_eq!(new.tag(), "7");
    }

    #[test]
    fn one_recommended_tag_per_image() {
        let mut tags = vec![tag(1, "6"), tag(2, "7"), tag(3, "8")];
        tags[0].is_recommended = true;
        tags[1].is_recommended = true;
        let ids = |keep: Option<i64>| {
            superseded_recommendations(&tags, keep.map(TagId::new)).map(|t| t.id.get()).collect::<Vec<_>>()
        };
        assert_eq!(ids(None), [1, 2]);
        assert_eq!(ids(Some(2)), [1]);
        assert_eq!(ids(Some(3)), [1, 2]);
        assert!(becomes_recommended(None, true));
        assert!(becomes_recommended(Some(&tags[2]), true));
        assert!(!becomes_recommended(Some(&tags[0]), true));
        assert!(!becomes_recommended(Some(&tags[2]), false));
    }

    #[test]
    fn admission_needs_an_approved_image_and_a_listed_tag() {
        let approved = image(ApprovalStatus::Approved);
        let mut tags = vec![tag(1, "7"), tag(2, "6")];
        tags[1].is_deprecated = true;
        tags[1].digest = Some(digest('d'));

        assert_eq!(admit(None, &[], &reference("redis:7")), Admission::Refused(Refusal::NotApproved));
        for status in [ApprovalStatus::Pending, ApprovalStatus::Rejected] {
            let image = image(status);
            assert_eq!(admit(Some(&image), &tags, &reference("redis:7")), Admission::Refused(Refusal::NotApproved));
        }
        assert_eq!(admit(Some(&approved), &tags, &reference("redis:8")), Admission::Refused(Refusal::TagNotListed));
        assert_eq!(
            admit(Some(&approved), &tags, &reference("redis:7")),
            Admission::Allowed { image: &approved, tag: &tags[0], warnings: vec![] }
        );
        let by_digest = format!("redis@{}", digest('d'));
        let Admission::Allowed { tag, warnings, .. } = admit(Some(&approved), &tags, &reference(&by_digest)) else {
            panic!("a listed digest is allowed");
        };
        assert_eq!(tag.id, TagId::new(2));
        assert_eq!(warnings.iter().map(ToString::to_string).collect::<Vec<_>>(), ["tag 6 is deprecated"]);
        let unknown_digest = format!("redis@{}", digest('e'));
        assert_eq!(
            admit(Some(&approved), &tags, &reference(&unknown_digest)),
            Admission::Refused(Refusal::TagNotListed)
        );
    }
}
