//! A node's images, as its container runtime reports them over CRI, and how the inventory shows them:
//! the rows `crictl images` prints (seed 004's `containerd_images`), the short id, the human size.
//!
//! [`ImageRuntime`] is the port a CRI client implements; [`crate::store::InventoryStore`] keeps every
//! node's last report.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Reference, Result, Timestamp};

/// One image in a runtime's store, as CRI's `ListImages` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeImage {
    /// The image id, `sha256:` and 64 hex digits on containerd.
    pub id: String,
    /// `repository:tag` names; empty for an untagged image.
    pub repo_tags: Vec<String>,
    /// `repository@sha256:…` names.
    pub repo_digests: Vec<String>,
    /// Bytes, as the runtime counts them.
    pub size: u64,
}

/// What a runtime answers about itself and its images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeReport {
    /// `containerd`.
    pub runtime_name: String,
    pub runtime_version: String,
    /// Bytes the image filesystems use, when the runtime tells.
    pub image_fs_used: Option<u64>,
    pub images: Vec<RuntimeImage>,
}

/// A node's container runtime, the source of its images.
#[async_trait]
pub trait ImageRuntime: Send + Sync {
    /// The endpoint, for messages (`unix:///run/containerd/containerd.sock`).
    fn endpoint(&self) -> &str;

    /// Asks the runtime for its version and images now. An unreachable runtime is `Unavailable`.
    async fn report(&self) -> Result<RuntimeReport>;
}

/// A node as the inventory knows it: its last report and whether it is late.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInventory {
    pub name: String,
    pub runtime_name: Option<String>,
    pub runtime_version: Option<String>,
    /// When the node's images were last read successfully.
    pub last_report_at: Option<Timestamp>,
    /// When the node last tried, successfully or not.
    pub last_attempt_at: Timestamp,
    /// Why the last attempt failed, when it did; the images are then those of the last success.
    pub last_error: Option<String>,
    /// How often the node reports, in seconds.
    pub interval_secs: i64,
    pub images: Vec<RuntimeImage>,
}

impl NodeInventory {
    /// A node is stale when it has not tried to report for three of its intervals.
    pub fn is_stale(&self, now: Timestamp) -> bool {
        let limit = time::Duration::seconds(self.interval_secs.saturating_mul(3).max(1));
        now - self.last_attempt_at > limit
    }
}

/// The placeholder crictl prints for a missing repository or tag.
pub const NONE: &str = "<none>";

/// One row of `crictl images`: an image appears once per tag, or once with `<none>` when untagged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRow {
    pub image_id: String,
    pub repository: String,
    pub size: String,
    pub tag: String,
}

/// The rows `crictl images` prints for `images`, in their order: one per repo tag (split at the last `:`);
/// an untagged image under the repository of its first repo digest (or `<none>`) with the tag `<none>`.
pub fn crictl_rows(images: &[RuntimeImage]) -> Vec<ImageRow> {
    let mut rows = Vec::new();
    for image in images {
        let image_id = short_id(&image.id);
        let size = human_size(image.size);
        let digest_repository = image
            .repo_digests
            .first()
            .map(|d| d.split_once('@').map_or("errorName", |(repo, _)| repo))
            .unwrap_or(NONE)
            .to_owned();
        if image.repo_tags.is_empty() {
            rows.push(ImageRow { image_id, repository: digest_repository, size, tag: NONE.to_owned() });
            continue;
        }
        for repo_tag in &image.repo_tags {
            let (repository, tag) = match repo_tag.rsplit_once(':') {
                // A `:` inside a registry's port is not a tag's.
                Some((repository, tag)) if !tag.contains('/') => {
                    let repository = if repository == NONE { digest_repository.clone() } else { repository.to_owned() };
                    (repository, tag.to_owned())
                }
                _ => (repo_tag.clone(), NONE.to_owned()),
            };
            rows.push(ImageRow { image_id: image_id.clone(), repository, size: size.clone(), tag });
        }
    }
    rows
}

/// The first 12 hex digits of an image id, without its `sha256:`, as seed 004 shows it.
pub fn short_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

/// A size in decimal units with three significant digits, as crictl prints it (Go's
/// `units.HumanSizeWithPrecision(size, 3)`): `117MB`, `1.5kB`, `999B`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", go_g3(size), UNITS[unit])
}

/// Go's `%.3g` of a non-negative number: three significant digits, trailing zeros dropped, an exponent
/// when the rounded number reaches 1000 (`999.9` is `1e+03`).
fn go_g3(x: f64) -> String {
    if x == 0.0 {
        return "0".to_owned();
    }
    let sci = format!("{x:.2e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..3).contains(&exponent) {
        let mantissa = trim_zeros(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let decimals = (2 - exponent).max(0) as usize;
    trim_zeros(&format!("{x:.decimals$}")).to_owned()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { s }
}

/// The references an image is known by, for the admission decision: each repo tag, else each repo digest.
/// Names that do not parse as references are left out.
pub fn references(image: &RuntimeImage) -> Vec<Reference> {
    let names = if image.repo_tags.is_empty() { &image.repo_digests } else { &image.repo_tags };
    names.iter().filter_map(|name| Reference::parse(name).ok()).collect()
}

/// Image ids to leave out of a node's listing (seed 004's `images_to_ignore.txt`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreList {
    /// Lower-case hex prefixes of image ids.
    prefixes: Vec<String>,
}

impl IgnoreList {
    /// Reads a CSV of image ids: cells separated by commas or new lines, an optional `IMAGE ID` header,
    /// each id a hex prefix (at least 4 digits) of an image id, with or without `sha256:`. Blank lines and
    /// lines starting with `#` are skipped. Anything else is an error naming its line.
    pub fn parse(text: &str) -> std::result::Result<IgnoreList, String> {
        let mut prefixes = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            for cell in line.split(',') {
                let cell = cell.trim().trim_matches('"').trim();
                if cell.is_empty() || (number == 0 && cell.eq_ignore_ascii_case("IMAGE ID")) {
                    continue;
                }
                let hex = cell.strip_prefix("sha256:").unwrap_or(cell);
                if hex.len() < 4 || hex.len() > 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(format!(
                        "line {}: {cell:?} is not an image id (4 to 64 hex digits, as `crictl images` prints them)",
                        number + 1
                    ));
                }
                prefixes.push(hex.to_ascii_lowercase());
            }
        }
        Ok(IgnoreList { prefixes })
    }

    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }

    /// Whether an image id (`sha256:…` or bare hex) is one to leave out.
    pub fn ignores(&self, id: &str) -> bool {
        let hex = id.strip_prefix("sha256:").unwrap_or(id).to_ascii_lowercase();
        self.prefixes.iter().any(|p| hex.starts_with(p.as_str()))
    }

    /// `images` without the ignored ones.
    pub fn apply(&self, images: Vec<RuntimeImage>) -> Vec<RuntimeImage> {
        images.into_iter().filter(|i| !self.ignores(&i.id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, tags: &[&str], digests: &[&str], size: u64) -> RuntimeImage {
        RuntimeImage {
            id: id.to_owned(),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            repo_digests: digests.iter().map(|t| t.to_string()).collect(),
            size,
        }
    }

    #[test]
    fn sizes_read_as_crictl_prints_them() {
        for (bytes, shown) in [
            (0, "0B"),
            (999, "999B"),
            (1000, "1kB"),
            (1500, "1.5kB"),
            (742_000, "742kB"),
            (1_150_000, "1.15MB"),
            (117_234_567, "117MB"),
            (250_000_000, "250MB"),
            (999_999, "1e+03kB"),
            (12_345_678_901, "12.3GB"),
            (1_000_000_000_000_000_000, "1EB"),
        ] {
            assert_eq!(human_size(bytes), shown, "{bytes} bytes");
        }
    }

    #[test]
    fn rows_follow_crictl() {
        let id = format!("sha256:a24bb4013296{}", "0".repeat(52));
        let rows = crictl_rows(&[
            image(&id, &["k8s.gcr.io/kube-proxy:v1.23.5", "localhost:5000/proxy:latest"], &[], 117_000_000),
            image(&format!("sha256:{}", "b".repeat(64)), &[], &["docker.io/library/redis@sha256:abc"], 5),
            image(&format!("sha256:{}", "c".repeat(64)), &[], &[], 5),
        ]);
        let shown: Vec<_> =
            rows.iter().map(|r| format!("{} {} {} {}", r.image_id, r.repository, r.tag, r.size)).collect();
        assert_eq!(
            shown,
            [
                "a24bb4013296 k8s.gcr.io/kube-proxy v1.23.5 117MB",
                "a24bb4013296 localhost:5000/proxy latest 117MB",
                "bbbbbbbbbbbb docker.io/library/redis <none> 5B",
                "cccccccccccc <none> <none> 5B",
            ]
        );
    }

    #[test]
    fn the_ignore_list_reads_the_seeds_csv() {
        let list = IgnoreList::parse("IMAGE ID\na24bb4013296\n\n# pause\nDA86E6BA6CA19, sha256:0123abcd\n").unwrap();
        assert!(list.ignores(&format!("sha256:a24bb4013296{}", "0".repeat(52))));
        assert!(list.ignores(&format!("da86e6ba6ca19{}", "0".repeat(51))));
        assert!(list.ignores("sha256:0123abcdef"));
        assert!(!list.ignores("sha256:a24bb4013297"));
        assert!(IgnoreList::parse("").unwrap().is_empty());
        let err = IgnoreList::parse("IMAGE ID\nnot-an-id\n").unwrap_err();
        assert!(err.starts_with("line 2: \"not-an-id\""), "{err}");
        assert!(IgnoreList::parse("abc\n").is_err(), "too short to name one image");
    }

    #[test]
    fn a_node_is_stale_after_three_intervals() {
        let now = Timestamp::from_unix_timestamp(10_000).unwrap();
        let mut node = NodeInventory {
            name: "n".into(),
            runtime_name: None,
            runtime_version: None,
            last_report_at: None,
            last_attempt_at: now - time::Duration::seconds(180),
            last_error: None,
            interval_secs: 60,
            images: vec![],
        };
        assert!(!node.is_stale(now));
        node.last_attempt_at = now - time::Duration::seconds(181);
        assert!(node.is_stale(now));
    }

    #[test]
    fn references_are_the_tags_else_the_digests() {
        let tagged = image("x", &["docker.io/library/redis:7"], &["docker.io/library/redis@sha256:abc"], 1);
        assert_eq!(
            references(&tagged).iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["docker.io/library/redis:7"]
        );
        let bare = image("x", &[], &[], 1);
        assert!(references(&bare).is_empty());
    }
}
