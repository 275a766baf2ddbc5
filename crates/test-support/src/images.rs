//! Random test images, pushed into a registry with plain HTTP calls (monolithic uploads), so that tests
//! of imagegate's own client and copy engine do not check that code with itself.

use rand::Rng as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::Distribution;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rng().fill_bytes(&mut v);
    v
}

/// One platform's manifest as pushed.
#[derive(Debug, Clone)]
pub struct PushedManifest {
    pub digest: String,
    pub os: String,
    pub architecture: String,
    /// Config and layer digests.
    pub blobs: Vec<String>,
    /// Config and layers, in bytes.
    pub size: u64,
}

/// What [`push_image`] or [`push_index`] put into the registry.
#[derive(Debug, Clone)]
pub struct PushedImage {
    /// Digest of the top-level manifest or index.
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub manifests: Vec<PushedManifest>,
}

impl PushedImage {
    /// Every distinct blob of the image.
    pub fn blobs(&self) -> Vec<String> {
        let mut all: Vec<String> = self.manifests.iter().flat_map(|m| m.blobs.clone()).collect();
        all.sort();
        all.dedup();
        all
    }
}

/// A client for pushing into one test registry.
#[derive(Debug, Clone)]
pub struct Pusher {
    base: String,
    http: reqwest::Client,
    credentials: Option<(String, String)>,
}

impl Pusher {
    pub fn new(registry: &Distribution) -> Pusher {
        Pusher {
            base: registry.url(),
            http: reqwest::Client::new(),
            credentials: registry.credentials().map(|(u, p)| (u.to_owned(), p.to_owned())),
        }
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credentials {
            Some((u, p)) => req.basic_auth(u, Some(p)),
            None => req,
        }
    }

    /// Uploads a blob (monolithic POST then PUT) and returns its digest.
    pub async fn blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let start = self.auth(self.http.post(format!("{}/v2/{repo}/blobs/uploads/", self.base))).send().await.unwrap();
        assert_eq!(start.status().as_u16(), 202, "start upload: {}", start.text().await.unwrap_or_default());
        let location = start.headers()["location"].to_str().unwrap().to_owned();
        let location = if location.starts_with('/') { format!("{}{location}", self.base) } else { location };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = self
            .auth(self.http.put(format!("{location}{sep}digest={digest}")))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status().as_u16(), 201, "finish upload: {}", put.text().await.unwrap_or_default());
        digest
    }

    /// Puts a manifest under `reference` (a tag or a digest) and returns its digest.
    pub async fn manifest(&self, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> String {
        let put = self
            .auth(self.http.put(format!("{}/v2/{repo}/manifests/{reference}", self.base)))
            .header("content-type", media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status().as_u16(), 201, "put manifest: {}", put.text().await.unwrap_or_default());
        sha256(bytes)
    }

    /// Pushes a single-platform image manifest with random layers of the given sizes; `shared` layers are
    /// pushed as given (to share them between platforms).
    pub async fn platform_manifest(
        &self,
        repo: &str,
        os: &str,
        architecture: &str,
        layer_sizes: &[usize],
        shared: &[Vec<u8>],
    ) -> (PushedManifest, Vec<u8>) {
        let mut layers = Vec::new();
        let mut size = 0u64;
        for bytes in shared.iter().cloned().chain(layer_sizes.iter().map(|&n| random_bytes(n))) {
            let digest = self.blob(repo, &bytes).await;
            size += bytes.len() as u64;
            layers.push(json!({ "mediaType": OCI_LAYER, "digest": digest, "size": bytes.len() }));
        }
        let diff_ids: Vec<Value> = layers.iter().map(|l| l["digest"].clone()).collect();
        let config = serde_json::to_vec(&json!({
            "architecture": architecture,
            "os": os,
            "created": "2025-01-15T10:00:00Z",
            "config": { "Env": ["PATH=/usr/bin"], "Labels": { "nonce": hex::encode(random_bytes(8)) } },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        }))
        .unwrap();
        let config_digest = self.blob(repo, &config).await;
        size += config.len() as u64;
        // Pretty-printed with a trailing newline, so that a copy that re-serialises would change the digest.
        let mut manifest = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len() },
            "layers": layers,
        }))
        .unwrap();
        manifest.push(b'\n');
        let mut blobs = vec![config_digest];
        blobs.extend(layers.iter().map(|l| l["digest"].as_str().unwrap().to_owned()));
        (
            PushedManifest { digest: sha256(&manifest), os: os.into(), architecture: architecture.into(), blobs, size },
            manifest,
        )
    }
}

/// Pushes a linux/amd64 image with random layers of the given sizes under `repo:tag`.
pub async fn push_image(registry: &Distribution, repo: &str, tag: &str, layer_sizes: &[usize]) -> PushedImage {
    let pusher = Pusher::new(registry);
    let (pushed, bytes) = pusher.platform_manifest(repo, "linux", "amd64", layer_sizes, &[]).await;
    pusher.manifest(repo, tag, OCI_MANIFEST, &bytes).await;
    PushedImage { digest: pushed.digest.clone(), media_type: OCI_MANIFEST.into(), bytes, manifests: vec![pushed] }
}

/// Pushes an OCI index under `repo:tag` with one manifest per `(os, architecture)`, each with random layers
/// of `layer_sizes`, plus one layer of `shared_layer` bytes that every platform shares (when not zero).
pub async fn push_index(
    registry: &Distribution,
    repo: &str,
    tag: &str,
    platforms: &[(&str, &str)],
    layer_sizes: &[usize],
    shared_layer: usize,
) -> PushedImage {
    let pusher = Pusher::new(registry);
    let shared = if shared_layer > 0 { vec![random_bytes(shared_layer)] } else { Vec::new() };
    let mut manifests = Vec::new();
    let mut entries = Vec::new();
    for (os, arch) in platforms {
        let (pushed, bytes) = pusher.platform_manifest(repo, os, arch, layer_sizes, &shared).await;
        pusher.manifest(repo, &pushed.digest, OCI_MANIFEST, &bytes).await;
        entries.push(json!({
            "mediaType": OCI_MANIFEST,
            "digest": pushed.digest,
            "size": bytes.len(),
            "platform": { "os": os, "architecture": arch },
        }));
        manifests.push(pushed);
    }
    let mut index =
        serde_json::to_vec_pretty(&json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries }))
            .unwrap();
    index.push(b'\n');
    let digest = pusher.manifest(repo, tag, OCI_INDEX, &index).await;
    PushedImage { digest, media_type: OCI_INDEX.into(), bytes: index, manifests }
}

/// Pushes a linux image for this host's architecture whose layers are real gzipped tar archives (one file
/// each, of `layer_sizes` random bytes), with their diff ids in the config, under `repo:tag`: an image that
/// containerd and podman unpack. Built with the system's `tar` and `gzip`.
pub async fn push_unpackable_image(
    registry: &Distribution,
    repo: &str,
    tag: &str,
    layer_sizes: &[usize],
) -> PushedImage {
    let pusher = Pusher::new(registry);
    let dir = tempfile::tempdir().unwrap();
    let (mut layers, mut diff_ids, mut blobs, mut size) = (Vec::new(), Vec::new(), Vec::new(), 0u64);
    for (i, &n) in layer_sizes.iter().enumerate() {
        let files = dir.path().join(format!("layer{i}"));
        std::fs::create_dir_all(&files).unwrap();
        std::fs::write(files.join(format!("file{i}")), random_bytes(n)).unwrap();
        let tar = dir.path().join(format!("layer{i}.tar"));
        let status = std::process::Command::new("tar")
            .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
            .arg(&files)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success(), "tar failed");
        let uncompressed = std::fs::read(&tar).unwrap();
        let status = std::process::Command::new("gzip").arg("-n").arg(&tar).status().unwrap();
        assert!(status.success(), "gzip failed");
        let compressed = std::fs::read(dir.path().join(format!("layer{i}.tar.gz"))).unwrap();
        let digest = pusher.blob(repo, &compressed).await;
        size += compressed.len() as u64;
        layers.push(json!({ "mediaType": OCI_LAYER, "digest": digest, "size": compressed.len() }));
        diff_ids.push(sha256(&uncompressed));
        blobs.push(digest);
    }
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let config = serde_json::to_vec(&json!({
        "architecture": architecture,
        "os": "linux",
        "created": "2025-01-15T10:00:00Z",
        "config": { "Env": ["PATH=/usr/bin"], "Labels": { "nonce": hex::encode(random_bytes(8)) } },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .unwrap();
    let config_digest = pusher.blob(repo, &config).await;
    size += config.len() as u64;
    blobs.insert(0, config_digest.clone());
    let manifest = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len() },
        "layers": layers,
    }))
    .unwrap();
    let digest = pusher.manifest(repo, tag, OCI_MANIFEST, &manifest).await;
    let pushed =
        PushedManifest { digest: digest.clone(), os: "linux".into(), architecture: architecture.into(), blobs, size };
    PushedImage { digest, media_type: OCI_MANIFEST.into(), bytes: manifest, manifests: vec![pushed] }
}
