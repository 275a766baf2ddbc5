//! A real containerd with its CRI plugin, started as root in a temporary directory (its own root, state
//! and socket, the `native` snapshotter, no CNI), and generated OCI images imported into it with
//! `ctr -n k8s.io images import`.
//!
//! Where containerd cannot run (not root, not installed and not installable), [`Containerd::start`]
//! answers why, and tests skip with that message.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use serde_json::json;

use crate::images::{OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, random_bytes, sha256};

/// Overrides where `containerd` is looked for; `ctr` is looked for beside it, then on PATH.
pub const CONTAINERD_BIN_VAR: &str = "IMAGEGATE_TEST_CONTAINERD_BIN";

/// A running containerd, killed and its directory removed on drop.
#[derive(Debug)]
pub struct Containerd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    ctr: PathBuf,
}

/// An image written by [`oci_archive`].
#[derive(Debug, Clone)]
pub struct ArchiveImage {
    /// The image id as CRI reports it: the config's digest.
    pub id: String,
    pub manifest_digest: String,
    /// Manifest, config and layers, in bytes: the size CRI reports for it.
    pub size: u64,
    pub archive: PathBuf,
}

impl Containerd {
    /// Starts containerd, or says why it cannot run here.
    pub fn start() -> Result<Containerd, String> {
        if !is_root() {
            return Err("containerd needs root here, and this test runs as another user".into());
        }
        let (containerd, ctr) = find_or_install().map_err(|e| format!("{e:#}"))?;
        let dir = tempfile::Builder::new().prefix("imagegate-containerd-").tempdir().map_err(|e| e.to_string())?;
        let d = dir.path();
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.overlayfs"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[debug]
  address = "{d}/debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/conf"
"#,
            d = d.display()
        );
        std::fs::write(d.join("config.toml"), config).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(d.join("containerd.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&containerd)
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", containerd.display()))?;
        let mut started = Containerd { dir, child: Some(child), ctr };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if started.socket().exists() && started.log().contains("containerd successfully booted") {
                return Ok(started);
            }
            if let Some(child) = started.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("containerd exited at start ({status}): {}", started.log()));
            }
            if Instant::now() > deadline {
                return Err(format!("containerd did not start within 20 s: {}", started.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The CRI socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// `unix://` and the socket, as `--cri-endpoint` takes it.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// A directory for the test's own files, removed with this containerd.
    pub fn scratch(&self) -> PathBuf {
        let scratch = self.dir.path().join("scratch");
        let _ = std::fs::create_dir_all(&scratch);
        scratch
    }

    /// `ctr -n k8s.io images import` of an archive, unpacked with the native snapshotter.
    pub fn import(&self, archive: &Path) -> anyhow::Result<()> {
        let out = Command::new(&self.ctr)
            .arg("--address")
            .arg(self.socket())
            .args(["-n", "k8s.io", "images", "import", "--no-unpack"])
            .arg(archive)
            .stdin(Stdio::null())
            .output()
            .context("cannot run ctr")?;
        if !out.status.success() {
            bail!("ctr images import {}: {}", archive.display(), String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// `ctr` against this containerd's socket; the caller adds the rest (`-n`, the command).
    pub fn ctr(&self) -> Command {
        let mut cmd = Command::new(&self.ctr);
        cmd.arg("--address").arg(self.socket()).stdin(Stdio::null());
        cmd
    }

    /// Stops containerd (SIGKILL): its socket stays, and nothing answers on it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes an OCI image layout archive of one random image for this host's platform, named by each of
/// `names` (`docker.io/library/redis:7`, or `repo@sha256:…` for an untagged name; none for no name), in
/// `dir`.
pub fn oci_archive(dir: &Path, file: &str, names: &[&str], layer_sizes: &[usize]) -> ArchiveImage {
    let layout = dir.join(format!("{file}.layout"));
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let digest = sha256(bytes);
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes).unwrap();
        digest
    };
    let mut layers = Vec::new();
    let mut size = 0u64;
    for &n in layer_sizes {
        let bytes = random_bytes(n);
        size += n as u64;
        layers.push(json!({ "mediaType": OCI_LAYER, "digest": put(&bytes), "size": n }));
    }
    let diff_ids: Vec<_> = layers.iter().map(|l| l["digest"].clone()).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": host_architecture(),
        "os": "linux",
        "created": "2025-01-15T10:00:00Z",
        "config": { "Labels": { "nonce": hex::encode(random_bytes(8)) } },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .unwrap();
    let config_digest = put(&config);
    size += config.len() as u64;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len() },
        "layers": layers,
    }))
    .unwrap();
    let manifest_digest = put(&manifest);
    size += manifest.len() as u64;
    let descriptor = |name: Option<&str>| {
        let mut d = json!({ "mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest.len() });
        if let Some(name) = name {
            let name = name.replace("@DIGEST", &format!("@{manifest_digest}"));
            d["annotations"] = json!({ "io.containerd.image.name": name });
        }
        d
    };
    let manifests: Vec<_> =
        if names.is_empty() { vec![descriptor(None)] } else { names.iter().map(|n| descriptor(Some(n))).collect() };
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(layout.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let archive = dir.join(format!("{file}.tar"));
    let status = Command::new("tar").arg("-C").arg(&layout).arg("-cf").arg(&archive).arg(".").status().unwrap();
    assert!(status.success(), "tar failed");
    ArchiveImage { id: config_digest, manifest_digest, size, archive }
}

fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

fn find() -> Option<(PathBuf, PathBuf)> {
    let containerd = std::env::var_os(CONTAINERD_BIN_VAR).map(PathBuf::from).or_else(|| which("containerd"))?;
    let beside = containerd.parent().map(|d| d.join("ctr")).filter(|p| p.is_file());
    let ctr = beside.or_else(|| which("ctr"))?;
    Some((containerd, ctr))
}

/// containerd and ctr, installed with apt-get (Debian's `containerd`) when missing.
fn find_or_install() -> anyhow::Result<(PathBuf, PathBuf)> {
    if let Some(found) = find() {
        return Ok(found);
    }
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = INSTALL.lock();
    if let Some(found) = find() {
        return Ok(found);
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "containerd"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .context("containerd is not installed, and apt-get cannot run to install it")?;
    if !status.success() {
        bail!("containerd is not installed, and `apt-get install -y containerd` failed ({status})");
    }
    find().context("containerd is still missing after `apt-get install -y containerd`")
}
