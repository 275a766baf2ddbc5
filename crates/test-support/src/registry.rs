//! A real CNCF Distribution registry (`docker-registry`) for tests.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The environment variable that names the registry binary.
pub const REGISTRY_BIN_VAR: &str = "IMAGEGATE_TEST_REGISTRY_BIN";
/// How long a registry may take to answer `GET /v2/`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many ports to try when another process takes the one we picked first.
const START_ATTEMPTS: usize = 3;

/// A running CNCF Distribution registry on `127.0.0.1:<free port>` (or another loopback
/// address: [`Distribution::start_on`]), storing into a temporary directory, with deletes
/// enabled. Dropping it kills the process and removes the directory.
#[derive(Debug)]
pub struct Distribution {
    child: tokio::process::Child,
    ip: IpAddr,
    port: u16,
    credentials: Option<(String, String)>,
    /// Dropped (removed) after `child` is killed.
    dir: tempfile::TempDir,
}

/// What the installed binary is and how it is invoked.
#[derive(Debug)]
struct Binary {
    path: PathBuf,
    /// From `--version`, e.g. "docker-registry github.com/docker/distribution 2.8.2+ds1".
    version_line: String,
    /// The major version, when `--version` says.
    major: Option<u32>,
    /// Whether it wants `serve <config>` (every 2.x since 2.2 and 3.x) rather than `<config>`.
    has_serve: bool,
}

impl Distribution {
    /// Starts a registry without auth.
    ///
    /// # Panics
    ///
    /// When the binary is missing or the registry does not come up; the message holds
    /// the registry's log.
    pub async fn start() -> Self {
        Self::try_start(None).await.unwrap_or_else(|e| panic!("test-support: cannot start docker-registry: {e:#}"))
    }

    /// Starts a registry without auth on `ip` (any of `127.0.0.0/8` on Linux), so that a test can
    /// tell registries apart by address.
    ///
    /// # Panics
    ///
    /// See [`Distribution::start`].
    pub async fn start_on(ip: IpAddr) -> Self {
        Self::try_start_at(&std::env::temp_dir(), ip, None)
            .await
            .unwrap_or_else(|e| panic!("test-support: cannot start docker-registry on {ip}: {e:#}"))
    }

    /// Starts a registry that requires HTTP basic auth (`htpasswd`) as `user`/`password`.
    ///
    /// # Panics
    ///
    /// See [`Distribution::start`].
    pub async fn start_with_basic_auth(user: &str, password: &str) -> Self {
        Self::try_start(Some((user, password)))
            .await
            .unwrap_or_else(|e| panic!("test-support: cannot start docker-registry: {e:#}"))
    }

    /// Starts a registry, with basic auth when `credentials` is `Some((user, password))`.
    pub async fn try_start(credentials: Option<(&str, &str)>) -> anyhow::Result<Self> {
        Self::try_start_in(&std::env::temp_dir(), credentials).await
    }

    /// Like [`Distribution::try_start`], with its storage, config and log in a new directory under `parent`
    /// (the benchmarks put it in memory, on a tmpfs).
    pub async fn try_start_in(parent: &Path, credentials: Option<(&str, &str)>) -> anyhow::Result<Self> {
        Self::try_start_at(parent, IpAddr::V4(Ipv4Addr::LOCALHOST), credentials).await
    }

    /// Like [`Distribution::try_start_in`], listening on `ip`.
    pub async fn try_start_at(parent: &Path, ip: IpAddr, credentials: Option<(&str, &str)>) -> anyhow::Result<Self> {
        let binary = binary()?;
        let dir = tempfile::Builder::new()
            .prefix("imagegate-registry-")
            .tempdir_in(parent)
            .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
        let storage = dir.path().join("storage");
        fs::create_dir(&storage).context("creating the storage directory")?;
        let htpasswd = match credentials {
            None => None,
            Some((user, password)) => {
                // Cost 4, the minimum: the registry checks the hash on every request.
                let hash = bcrypt::hash(password, 4).context("hashing the password")?;
                let path = dir.path().join("htpasswd");
                fs::write(&path, format!("{user}:{hash}\n")).context("writing htpasswd")?;
                Some(path)
            }
        };
        let config_path = dir.path().join("config.yml");
        let log_path = dir.path().join("registry.log");

        let mut attempt = 1;
        loop {
            let port = free_port(ip)?;
            fs::write(&config_path, config_yaml(binary, ip, port, &storage, htpasswd.as_deref()))
                .context("writing config.yml")?;
            let mut child = spawn(binary, &config_path, &log_path)?;
            match wait_until_ready(&mut child, ip, port).await {
                Ok(()) => {
                    return Ok(Self {
                        child,
                        ip,
                        port,
                        credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
                        dir,
                    });
                }
                Err(e) => {
                    kill(&mut child);
                    let log = fs::read_to_string(&log_path).unwrap_or_default();
                    if attempt < START_ATTEMPTS && log.contains("address already in use") {
                        attempt += 1;
                        continue;
                    }
                    bail!(
                        "{e:#}\n{} (`{} {}{}`), its log:\n{log}",
                        binary.version_line,
                        binary.path.display(),
                        if binary.has_serve { "serve " } else { "" },
                        config_path.display()
                    );
                }
            }
        }
    }

    /// `127.0.0.1:PORT` (the address it listens on, and its port)
    pub fn host(&self) -> String {
        std::net::SocketAddr::new(self.ip, self.port).to_string()
    }

    /// The address it listens on.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `(user, password)` when started with basic auth.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The filesystem storage's root directory.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// What the registry has logged so far (level warn and above).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        kill(&mut self.child);
        // `self.dir` (a TempDir) is removed right after this.
    }
}

/// Polls `GET /v2/` until it answers 200 (or 401 with auth).
async fn wait_until_ready(child: &mut tokio::process::Child, ip: IpAddr, port: u16) -> anyhow::Result<()> {
    let client =
        reqwest::Client::builder().timeout(Duration::from_secs(2)).build().context("building an HTTP client")?;
    let probe = format!("http://{}/v2/", std::net::SocketAddr::new(ip, port));
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().context("checking on the registry")? {
            bail!("the registry exited ({status}) before answering {probe}");
        }
        let last = match client.get(&probe).send().await {
            Ok(resp) if matches!(resp.status().as_u16(), 200 | 401) => return Ok(()),
            Ok(resp) => format!("it answered {}", resp.status()),
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            bail!("the registry did not answer {probe} within {READY_TIMEOUT:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGKILL, then reap the process (briefly) so it no longer writes to its directory.
fn kill(child: &mut tokio::process::Child) {
    if child.start_kill().is_err() {
        return; // Already reaped.
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The binary: `$IMAGEGATE_TEST_REGISTRY_BIN`, else `/usr/bin/docker-registry`, else
/// `docker-registry` on PATH; probed once per process.
fn binary() -> anyhow::Result<&'static Binary> {
    static BINARY: OnceLock<Result<Binary, String>> = OnceLock::new();
    BINARY.get_or_init(|| probe_binary().map_err(|e| format!("{e:#}"))).as_ref().map_err(|e| anyhow::anyhow!("{e}"))
}

fn probe_binary() -> anyhow::Result<Binary> {
    let path = match std::env::var_os(REGISTRY_BIN_VAR).filter(|p| !p.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => [PathBuf::from("/usr/bin/docker-registry")]
            .into_iter()
            .chain(
                std::env::var_os("PATH")
                    .into_iter()
                    .flat_map(|p| std::env::split_paths(&p).map(|dir| dir.join("docker-registry")).collect::<Vec<_>>()),
            )
            .find(|p| p.is_file())
            .with_context(|| {
                format!(
                    "no registry binary: {REGISTRY_BIN_VAR} is unset and there is no \
                     /usr/bin/docker-registry nor docker-registry on PATH; `cargo xtask test` \
                     installs the Debian package docker-registry and sets {REGISTRY_BIN_VAR}"
                )
            })?,
    };
    let run = |arg: &str| -> anyhow::Result<String> {
        let out = std::process::Command::new(&path)
            .arg(arg)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running `{} {arg}`", path.display()))?;
        Ok(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    };
    let version_line = run("--version")?.lines().next().unwrap_or("").trim().to_owned();
    let major = parse_major(&version_line);
    let has_serve = run("--help")?.contains("serve") || major.is_some_and(|m| m >= 3);
    Ok(Binary { path, version_line, major, has_serve })
}

/// The major version in a `--version` line: the first word that looks like `2.8.2+ds1`
/// or `v3.0.0`.
fn parse_major(version_line: &str) -> Option<u32> {
    version_line.split_whitespace().find_map(|word| {
        let word = word.strip_prefix('v').unwrap_or(word);
        let (major, rest) = word.split_once('.')?;
        rest.starts_with(|c: char| c.is_ascii_digit()).then(|| major.parse().ok()).flatten()
    })
}

fn config_yaml(binary: &Binary, ip: IpAddr, port: u16, storage: &Path, htpasswd: Option<&Path>) -> String {
    // The same keys serve 2.x and 3.x (3.x only dropped options we do not use); what
    // differs by version (3.x's OpenTelemetry export) is handled in `spawn`.
    let addr = std::net::SocketAddr::new(ip, port);
    let mut yaml = format!(
        "version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage:?}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {addr}
  secret: imagegate-test-secret
",
    );
    if let Some(htpasswd) = htpasswd {
        yaml.push_str(&format!(
            "auth:
  htpasswd:
    realm: imagegate-test
    path: {htpasswd:?}
"
        ));
    }
    if binary.major.is_some_and(|m| m < 2) {
        // Nothing older than 2.x speaks the API this project uses; keep the config but say so.
        yaml.insert_str(0, "# warning: registry major version < 2\n");
    }
    yaml
}

fn spawn(binary: &Binary, config: &Path, log_path: &Path) -> anyhow::Result<tokio::process::Child> {
    let log = fs::File::create(log_path).context("creating registry.log")?;
    let log_err = log.try_clone().context("cloning the log file handle")?;
    let mut cmd = tokio::process::Command::new(&binary.path);
    if binary.has_serve {
        cmd.arg("serve");
    }
    cmd.arg(config).stdin(Stdio::null()).stdout(log).stderr(log_err).kill_on_drop(true);
    // REGISTRY_* variables override the config file: keep the developer's out.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("REGISTRY_") {
            cmd.env_remove(key);
        }
    }
    if binary.major.is_none_or(|m| m >= 3) {
        // 3.x exports OpenTelemetry traces to localhost:4318 by default and logs each failure.
        cmd.env("OTEL_TRACES_EXPORTER", "none");
    }
    cmd.spawn().with_context(|| format!("spawning {}", binary.path.display()))
}

/// A port on `ip` that was free a moment ago.
fn free_port(ip: IpAddr) -> anyhow::Result<u16> {
    let listener = TcpListener::bind((ip, 0)).with_context(|| format!("binding {ip}:0"))?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::parse_major;

    #[test]
    fn parses_the_major_version() {
        assert_eq!(parse_major("docker-registry github.com/docker/distribution 2.8.2+ds1"), Some(2));
        assert_eq!(parse_major("registry github.com/distribution/distribution/v3 v3.0.0"), Some(3));
        assert_eq!(parse_major("registry"), None);
    }
}
