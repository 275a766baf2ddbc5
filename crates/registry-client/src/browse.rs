//! The station profile's reads ([`RegistryBrowser`]): tags, `_catalog`, image configs, and Docker Hub's
//! search, on the copy engine's client and its egress policy.

use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use image_core::{
    Digest, Reference,
    copy::{CopyError, RegistryAccess},
    station::{HubRepository, ImageConfig, RegistryBrowser},
};
use serde_json::Value;

use crate::{CopyEngine, Error, ManifestRef, Repo};

/// The largest image config read; real ones are a few KiB.
const MAX_CONFIG: usize = 4 << 20;

fn browse_error(what: &str, error: Error) -> CopyError {
    if error.is_transient() {
        CopyError::transient(format!("{what}: {error}"))
    } else {
        CopyError::permanent(format!("{what}: {error}"))
    }
}

fn json_of(what: &str, bytes: &[u8]) -> Result<Value, CopyError> {
    serde_json::from_slice(bytes).map_err(|e| CopyError::permanent(format!("{what} is not JSON: {e}")))
}

#[async_trait]
impl RegistryBrowser for CopyEngine {
    async fn tags(&self, registry: &str, repository: &str, access: &RegistryAccess) -> Result<Vec<String>, CopyError> {
        let repo = Repo::new(registry, repository).map_err(|e| CopyError::permanent(e.to_string()))?;
        let client = self.client().with_access(registry, access);
        client.list_tags(&repo, None).await.map_err(|e| browse_error(&format!("the tags of {repo}"), e))
    }

    async fn repositories(&self, registry: &str, access: &RegistryAccess) -> Result<Vec<String>, CopyError> {
        let client = self.client().with_access(registry, access);
        client.catalog(registry, None).await.map_err(|e| browse_error(&format!("the catalog of {registry}"), e))
    }

    async fn image_config(&self, image: &Reference, access: &RegistryAccess) -> Result<ImageConfig, CopyError> {
        let client = self.client().with_access(image.registry(), access);
        let repo = Repo::from(image);
        let what = format!("the manifest of {image}");
        let mut manifest =
            client.get_manifest(&repo, &ManifestRef::of(image)).await.map_err(|e| browse_error(&what, e))?;
        let mut document = json_of(&what, &manifest.bytes)?;
        if let Some(children) = document["manifests"].as_array() {
            let amd64 =
                children.iter().find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == "amd64");
            let child =
                amd64.or(children.first()).ok_or_else(|| CopyError::permanent(format!("{image} is an empty index")))?;
            let digest: Digest = child["digest"]
                .as_str()
                .unwrap_or_default()
                .parse()
                .map_err(|e| CopyError::permanent(format!("{image}: a manifest digest of its index: {e}")))?;
            let pinned = Reference::new(image.registry(), image.repository(), None, Some(digest))
                .map_err(|e| CopyError::permanent(e.to_string()))?;
            manifest =
                client.get_manifest(&repo, &ManifestRef::of(&pinned)).await.map_err(|e| browse_error(&what, e))?;
            document = json_of(&what, &manifest.bytes)?;
        }
        let config_digest: Digest = document["config"]["digest"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|e| CopyError::permanent(format!("{image} names no config: {e}")))?;
        let layers: u64 =
            document["layers"].as_array().map_or(0, |l| l.iter().filter_map(|l| l["size"].as_u64()).sum());
        let config_size = document["config"]["size"].as_u64().unwrap_or(0);
        let mut blob = client
            .get_blob(&repo, &config_digest, 0)
            .await
            .map_err(|e| browse_error(&format!("the config of {image}"), e))?;
        let mut bytes = Vec::new();
        while let Some(chunk) = blob.stream.next().await {
            let chunk = chunk.map_err(|e| browse_error(&format!("the config of {image}"), e))?;
            if bytes.len() + chunk.len() > MAX_CONFIG {
                return Err(CopyError::permanent(format!("the config of {image} is larger than {MAX_CONFIG} bytes")));
            }
            bytes.extend_from_slice(&chunk);
        }
        let config = json_of(&format!("the config of {image}"), &bytes)?;
        Ok(ImageConfig { id: config_digest.to_string(), config, size: config_size + layers })
    }

    async fn search_hub(&self, search_url: &str, query: &str) -> Result<Vec<HubRepository>, CopyError> {
        let url = reqwest::Url::parse(search_url)
            .map_err(|e| CopyError::permanent(format!("`{search_url}` is not a URL: {e}")))?;
        let answer = self
            .client()
            .get_public_json(&url, &[("q", query), ("n", "100")], Duration::from_secs(15), "Docker Hub search")
            .await
            .map_err(|e| match e {
                crate::Error::EgressDenied { .. } => CopyError::permanent(e.to_string()),
                e => CopyError::transient(format!("Docker Hub's search did not answer: {e}")),
            })?;
        if !(200..300).contains(&answer.status) {
            return Err(CopyError::transient(format!("Docker Hub's search answered {}", answer.status)));
        }
        let body: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| CopyError::transient(format!("Docker Hub's search answered something else than JSON: {e}")))?;
        let results = body["results"]
            .as_array()
            .ok_or_else(|| CopyError::transient("Docker Hub's search answered no `results`"))?;
        Ok(results
            .iter()
            .filter_map(|r| {
                Some(HubRepository {
                    name: r["name"].as_str()?.to_owned(),
                    description: r["description"].as_str().unwrap_or_default().to_owned(),
                    star_count: r["star_count"].as_i64().unwrap_or(0),
                    is_official: r["is_official"].as_bool().unwrap_or(false),
                    is_automated: r["is_automated"].as_bool().unwrap_or(false),
                })
            })
            .collect())
    }
}
