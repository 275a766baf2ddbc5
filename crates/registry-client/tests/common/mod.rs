//! Images the registry-client tests generate: random blobs, single-platform images (OCI or Docker v2)
//! and OCI indexes over them, pushed with the client under test.
// Each test binary uses part of this.
#![allow(dead_code)]

use bytes::Bytes;
use futures::{Stream, stream};
use image_core::Digest;
use image_core::import::Platform;
use registry_client::{ManifestRef, RegistryClient, Repo, digest_of, media_type};
use serde_json::json;

pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Content and its digest.
#[derive(Clone)]
pub struct Blob {
    pub bytes: Bytes,
    pub digest: Digest,
}

impl Blob {
    pub fn new(bytes: impl Into<Bytes>) -> Blob {
        let bytes = bytes.into();
        Blob { digest: digest_of(&bytes), bytes }
    }

    pub fn random(len: usize) -> Blob {
        let mut bytes = vec![0u8; len];
        rand::fill(&mut bytes[..]);
        Blob::new(bytes)
    }

    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    pub fn stream(&self) -> impl Stream<Item = registry_client::Result<Bytes>> + Send + 'static {
        let bytes = self.bytes.clone();
        let chunks: Vec<_> =
            (0..bytes.len()).step_by(64 * 1024).map(|i| Ok(bytes.slice(i..(i + 64 * 1024).min(bytes.len())))).collect();
        stream::iter(chunks)
    }

    pub fn descriptor(&self, media_type: &str) -> serde_json::Value {
        json!({"mediaType": media_type, "digest": self.digest.as_str(), "size": self.size()})
    }
}

/// A single-platform image: config, layers and its manifest (OCI, or Docker v2 with `docker`).
pub struct Image {
    pub config: Blob,
    pub layers: Vec<Blob>,
    pub manifest: Blob,
    pub media_type: &'static str,
}

/// The `created` of every generated image's config.
pub const CREATED: &str = "2024-05-06T07:08:09.123456789Z";

impl Image {
    pub fn random(arch: &str, layer_sizes: &[usize]) -> Image {
        let layers: Vec<Blob> = layer_sizes.iter().map(|&n| Blob::random(n)).collect();
        Image::with_layers("linux", arch, layers, false)
    }

    pub fn with_layers(os: &str, arch: &str, layers: Vec<Blob>, docker: bool) -> Image {
        let config = Blob::new(
            serde_json::to_vec(&json!({
                "architecture": arch,
                "os": os,
                "created": CREATED,
                "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.digest.as_str()).collect::<Vec<_>>()},
                "config": {"Env": [format!("NONCE={}", rand::random::<u64>())]},
            }))
            .unwrap(),
        );
        let (manifest_type, config_type, layer_type) = if docker {
            (media_type::DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER)
        } else {
            (media_type::OCI_MANIFEST, OCI_CONFIG, OCI_LAYER)
        };
        // Pretty-printed with a trailing newline: a copy that re-serialised would change the digest.
        let mut manifest = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": config.descriptor(config_type),
            "layers": layers.iter().map(|l| l.descriptor(layer_type)).collect::<Vec<_>>(),
        }))
        .unwrap();
        manifest.extend_from_slice(b"\n");
        Image { config, layers, manifest: Blob::new(manifest), media_type: manifest_type }
    }

    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.config).chain(&self.layers)
    }

    pub async fn push(&self, client: &RegistryClient, repo: &Repo, tag: Option<&str>) {
        for blob in self.blobs() {
            if client.head_blob(repo, &blob.digest).await.unwrap().is_none() {
                client.push_blob(repo, &blob.digest, blob.size(), blob.stream()).await.unwrap();
            }
        }
        let reference = match tag {
            Some(tag) => ManifestRef::tag(tag).unwrap(),
            None => ManifestRef::from(&self.manifest.digest),
        };
        let digest = client.put_manifest(repo, &reference, self.media_type, self.manifest.bytes.clone()).await.unwrap();
        assert_eq!(digest, self.manifest.digest);
    }
}

/// An OCI index over images; `unknown/unknown` entries get BuildKit's attestation annotations.
pub fn index(images: &[(&Image, &str)]) -> Blob {
    let manifests: Vec<_> = images
        .iter()
        .map(|(image, platform)| {
            let p: Platform = platform.parse().unwrap();
            let mut d = image.manifest.descriptor(image.media_type);
            d["platform"] = serde_json::to_value(&p).unwrap();
            if p.os == "unknown" {
                d["annotations"] = json!({
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": images[0].0.manifest.digest.as_str(),
                });
            }
            d
        })
        .collect();
    let mut bytes = serde_json::to_vec_pretty(
        &json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": manifests}),
    )
    .unwrap();
    bytes.extend_from_slice(b"\r\n");
    Blob::new(bytes)
}

pub async fn push_index(client: &RegistryClient, repo: &Repo, tag: &str, images: &[(&Image, &str)]) -> Blob {
    for (image, _) in images {
        image.push(client, repo, None).await;
    }
    let index = index(images);
    client
        .put_manifest(repo, &ManifestRef::tag(tag).unwrap(), media_type::OCI_INDEX, index.bytes.clone())
        .await
        .unwrap();
    index
}

// ---- in-test servers --------------------------------------------------------------------------

/// An in-test HTTP server on a free loopback port, stopped when dropped.
pub struct Server(tokio::task::JoinHandle<()>);

impl Drop for Server {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Server {
    /// A listener on a free loopback port, and its address: what the app's state may need to know
    /// before the server starts.
    pub async fn bind() -> (tokio::net::TcpListener, std::net::SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    pub fn serve(listener: tokio::net::TcpListener, app: axum::Router) -> Server {
        Server(tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        }))
    }
}
