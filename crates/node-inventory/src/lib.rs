#![doc = include_str!("../README.md")]

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use image_core::{
    Error, Result,
    inventory::{IgnoreList, ImageRuntime, RuntimeImage, RuntimeReport},
};
use tonic::transport::{Channel, Endpoint, Uri};

/// The CRI messages and clients, generated from `proto/cri.proto`.
#[allow(clippy::all, clippy::pedantic, missing_debug_implementations, unreachable_pub)]
pub mod cri {
    include!("generated/runtime.v1.rs");
}

use cri::{
    ImageFsInfoRequest, ListImagesRequest, VersionRequest, image_service_client::ImageServiceClient,
    runtime_service_client::RuntimeServiceClient,
};

/// containerd's CRI socket.
pub const DEFAULT_ENDPOINT: &str = "unix:///run/containerd/containerd.sock";

/// The CRI API version this client speaks.
const CRI_VERSION: &str = "v1";

/// A node's container runtime, reached over CRI on its unix socket: `Version`, `ListImages` and
/// `ImageFsInfo`, nothing that changes the runtime.
#[derive(Debug, Clone)]
pub struct CriRuntime {
    endpoint: String,
    socket: PathBuf,
    timeout: Duration,
}

impl CriRuntime {
    /// `unix:///path/to.sock` or a bare absolute path; anything else is an error that says so.
    pub fn new(endpoint: &str) -> std::result::Result<CriRuntime, String> {
        let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
        if !path.starts_with('/') {
            return Err(format!(
                "CRI endpoint {endpoint:?}: expected unix:///path/to/runtime.sock (only unix sockets are supported)"
            ));
        }
        Ok(CriRuntime { endpoint: endpoint.to_owned(), socket: PathBuf::from(path), timeout: Duration::from_secs(10) })
    }

    /// Each call gives up after `timeout` (10 s unless set).
    pub fn with_timeout(mut self, timeout: Duration) -> CriRuntime {
        self.timeout = timeout;
        self
    }

    /// The endpoint as given.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn channel(&self) -> Result<Channel> {
        let socket = self.socket.clone();
        // The URI is a placeholder: the connector ignores it and dials the socket.
        Endpoint::from_static("http://localhost")
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let socket = socket.clone();
                async move { tokio::net::UnixStream::connect(socket).await.map(TokioIo::new) }
            }))
            .await
            .map_err(|e| self.unavailable(&error_chain(&e)))
    }

    fn unavailable(&self, reason: &str) -> Error {
        Error::unavailable(format!("container runtime at {}: {reason}", self.endpoint))
    }

    fn status(&self, call: &str, status: tonic::Status) -> Error {
        self.unavailable(&format!("{call}: {} ({:?})", status.message(), status.code()))
    }
}

/// An error and its causes, `: `-separated.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[async_trait]
impl ImageRuntime for CriRuntime {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn report(&self) -> Result<RuntimeReport> {
        let channel = self.channel().await?;
        let mut runtime = RuntimeServiceClient::new(channel.clone());
        let version = runtime
            .version(VersionRequest { version: CRI_VERSION.to_owned() })
            .await
            .map_err(|s| self.status("Version", s))?
            .into_inner();
        // A node with thousands of images answers more than gRPC's default 4 MiB.
        let mut images = ImageServiceClient::new(channel).max_decoding_message_size(64 << 20);
        let listed =
            images.list_images(ListImagesRequest { filter: None }).await.map_err(|s| self.status("ListImages", s))?;
        let fs = images.image_fs_info(ImageFsInfoRequest {}).await.map_err(|s| self.status("ImageFsInfo", s))?;
        let image_fs_used = fs
            .into_inner()
            .image_filesystems
            .iter()
            .filter_map(|f| f.used_bytes.as_ref().map(|u| u.value))
            .reduce(u64::saturating_add);
        Ok(RuntimeReport {
            runtime_name: version.runtime_name,
            runtime_version: version.runtime_version,
            image_fs_used,
            images: listed
                .into_inner()
                .images
                .into_iter()
                .map(|i| RuntimeImage { id: i.id, repo_tags: i.repo_tags, repo_digests: i.repo_digests, size: i.size })
                .collect(),
        })
    }
}

/// Reads an ignore list (seed 004's `images_to_ignore.txt`); a missing or malformed file is an error
/// naming it.
pub fn load_ignore_list(path: &Path) -> std::result::Result<IgnoreList, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--images-to-ignore {}: {e}", path.display()))?;
    IgnoreList::parse(&text).map_err(|e| format!("--images-to-ignore {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_unix_sockets() {
        assert_eq!(CriRuntime::new(DEFAULT_ENDPOINT).unwrap().socket(), Path::new("/run/containerd/containerd.sock"));
        assert_eq!(CriRuntime::new("/tmp/c.sock").unwrap().socket(), Path::new("/tmp/c.sock"));
        let err = CriRuntime::new("tcp://10.0.0.1:1234").unwrap_err();
        assert!(err.contains("only unix sockets"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_socket_is_unavailable_with_the_endpoint() {
        let dir = std::env::temp_dir().join(format!("no-runtime-{}", std::process::id()));
        let endpoint = format!("unix://{}/containerd.sock", dir.display());
        let err = CriRuntime::new(&endpoint).unwrap().report().await.unwrap_err();
        assert_eq!(err.code(), image_core::ErrorCode::Unavailable);
        assert!(err.to_string().contains(&endpoint), "{err}");
    }

    #[test]
    fn a_missing_or_malformed_ignore_list_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.txt");
        assert!(load_ignore_list(&missing).unwrap_err().contains("missing.txt"));
        let bad = dir.path().join("bad.txt");
        std::fs::write(&bad, "IMAGE ID\nnginx:latest\n").unwrap();
        let err = load_ignore_list(&bad).unwrap_err();
        assert!(err.contains("bad.txt") && err.contains("line 2"), "{err}");
    }
}
