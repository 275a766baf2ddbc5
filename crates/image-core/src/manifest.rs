//! What the internal-registry ports ([`crate::registry::RegistryAdmin`]) show of a manifest they list: its
//! size with what it references, and its platforms. One reading for every registry kind, so an artifact
//! of the built-in registry and the same artifact on a distribution registry are described alike.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::Digest;

/// Media types of manifests.
pub mod media_type {
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

    /// Whether `media_type` names a list of manifests (an OCI index or a Docker manifest list).
    pub fn is_index(media_type: &str) -> bool {
        media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
    }
}

/// The largest image config read for its platform; a larger one is not read, and its image has no platform.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// A manifest as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestSummary {
    /// The media type the manifest declares, or else the one it was stored or served with.
    pub media_type: String,
    /// The manifest's bytes, plus its config's and layers' (an image) or the manifests it lists (an index).
    pub size: u64,
    /// An index's platforms, from its entries (`unknown` ones, such as attestations, left out); sorted.
    pub platforms: Vec<String>,
    /// An image's config, whose platform (read by [`config_platform`]) is the image's; `None` for an index,
    /// or when the config is larger than [`MAX_CONFIG_BYTES`] or names no valid digest.
    pub config: Option<Digest>,
}

impl ManifestSummary {
    /// Reads `bytes`, a manifest stored or served as `media_type`. Bytes that are not a manifest read as a
    /// manifest of their own size that references nothing.
    pub fn read(bytes: &[u8], media_type: &str) -> ManifestSummary {
        let parsed: ManifestJson = serde_json::from_slice(bytes).unwrap_or_default();
        let media_type = parsed.media_type.clone().unwrap_or_else(|| media_type.to_owned());
        let own = bytes.len() as u64;
        let is_index = media_type::is_index(&media_type) || (parsed.manifests.is_some() && parsed.layers.is_none());
        if is_index {
            let entries = parsed.manifests.unwrap_or_default();
            let platforms: BTreeSet<String> = entries
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .filter(|p| p.os != "unknown" && p.architecture != "unknown")
                .map(PlatformJson::name)
                .collect();
            let size = entries.iter().fold(own, |sum, d| sum.saturating_add(d.size));
            return ManifestSummary { media_type, size, platforms: platforms.into_iter().collect(), config: None };
        }
        let layers = parsed.layers.iter().flatten().fold(0u64, |sum, d| sum.saturating_add(d.size));
        let config_size = parsed.config.as_ref().map_or(0, |c| c.size);
        let config =
            parsed.config.as_ref().filter(|c| c.size <= MAX_CONFIG_BYTES).and_then(|c| c.digest.parse::<Digest>().ok());
        let size = own.saturating_add(config_size).saturating_add(layers);
        ManifestSummary { media_type, size, platforms: Vec::new(), config }
    }
}

/// `os/arch[/variant]` of an image config's bytes, when it says both.
pub fn config_platform(bytes: &[u8]) -> Option<String> {
    let config: PlatformJson = serde_json::from_slice(bytes).ok()?;
    (!config.os.is_empty() && !config.architecture.is_empty()).then(|| config.name())
}

#[derive(Deserialize, Default)]
struct ManifestJson {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    config: Option<DescriptorJson>,
    layers: Option<Vec<DescriptorJson>>,
    manifests: Option<Vec<DescriptorJson>>,
}

#[derive(Deserialize)]
struct DescriptorJson {
    #[serde(default)]
    digest: String,
    #[serde(default)]
    size: u64,
    platform: Option<PlatformJson>,
}

#[derive(Deserialize)]
struct PlatformJson {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    variant: Option<String>,
}

impl PlatformJson {
    fn name(&self) -> String {
        match &self.variant {
            Some(v) if !v.is_empty() => format!("{}/{}/{v}", self.os, self.architecture),
            _ => format!("{}/{}", self.os, self.architecture),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

    #[test]
    fn an_image_counts_its_config_and_layers() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"digest":"{CONFIG}","size":100}},"layers":[{{"digest":"{CONFIG}","size":1000}},{{"digest":"{CONFIG}","size":24}}]}}"#,
            media_type::OCI_MANIFEST
        );
        let summary = ManifestSummary::read(body.as_bytes(), "application/octet-stream");
        assert_eq!(summary.media_type, media_type::OCI_MANIFEST);
        assert_eq!(summary.size, body.len() as u64 + 1124);
        assert_eq!(summary.config, Some(CONFIG.parse().unwrap()));
        assert!(summary.platforms.is_empty());
    }

    #[test]
    fn an_index_counts_its_entries_and_names_their_platforms() {
        // No mediaType in the body: the stored one says index. The attestation's unknown/unknown is left out.
        let body = r#"{"schemaVersion":2,"manifests":[
            {"digest":"sha256:1","size":10,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"digest":"sha256:2","size":20,"platform":{"os":"linux","architecture":"amd64"}},
            {"digest":"sha256:3","size":5,"platform":{"os":"unknown","architecture":"unknown"}}]}"#;
        let summary = ManifestSummary::read(body.as_bytes(), media_type::DOCKER_MANIFEST_LIST);
        assert_eq!(summary.media_type, media_type::DOCKER_MANIFEST_LIST);
        assert_eq!(summary.size, body.len() as u64 + 35);
        assert_eq!(summary.platforms, ["linux/amd64", "linux/arm64/v8"]);
        assert_eq!(summary.config, None);
    }

    #[test]
    fn a_large_config_or_garbage_references_nothing() {
        let body = format!(r#"{{"config":{{"digest":"{CONFIG}","size":{}}},"layers":[]}}"#, MAX_CONFIG_BYTES + 1);
        let summary = ManifestSummary::read(body.as_bytes(), media_type::OCI_MANIFEST);
        assert_eq!(summary.config, None);
        assert_eq!(summary.size, body.len() as u64 + MAX_CONFIG_BYTES + 1);

        let garbage = ManifestSummary::read(b"\xffnot json", media_type::OCI_MANIFEST);
        assert_eq!((garbage.size, garbage.config, garbage.platforms.len()), (9, None, 0));
        let huge = format!(r#"{{"layers":[{{"size":{}}},{{"size":{}}}]}}"#, u64::MAX, u64::MAX);
        assert_eq!(ManifestSummary::read(huge.as_bytes(), media_type::OCI_MANIFEST).size, u64::MAX);
    }

    #[test]
    fn a_config_names_its_platform_only_when_whole() {
        assert_eq!(
            config_platform(br#"{"os":"linux","architecture":"arm","variant":"v7"}"#).as_deref(),
            Some("linux/arm/v7")
        );
        assert_eq!(
            config_platform(br#"{"os":"linux","architecture":"amd64","variant":""}"#).as_deref(),
            Some("linux/amd64")
        );
        assert_eq!(config_platform(br#"{"os":"linux"}"#), None);
        assert_eq!(config_platform(b"[]"), None);
    }
}
