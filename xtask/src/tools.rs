//! Finding (and, as root, installing) the external programs the suite needs:
//! PostgreSQL's server binaries, CNCF Distribution's `docker-registry` and containerd; and `skopeo`, which the
//! built-in registry's tests copy images with.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{REGISTRY_BIN_VAR, interrupted};

/// Debian packages that provide what [`ensure`] looks for.
const PG_PACKAGE: &str = "postgresql";
const REGISTRY_PACKAGE: &str = "docker-registry";
/// Overrides where PostgreSQL's server binaries are looked for.
const PG_BINDIR_VAR: &str = "IMAGEGATE_PG_BINDIR";

#[derive(Debug, Clone)]
pub struct Tools {
    pub pg: PgBin,
    pub registry: PathBuf,
}

/// One PostgreSQL installation's server binaries (all from the same directory).
#[derive(Debug, Clone)]
pub struct PgBin {
    pub bindir: PathBuf,
    pub initdb: PathBuf,
    pub pg_ctl: PathBuf,
    /// From the same directory when it has one, else `psql` on PATH (Debian's wrapper).
    pub psql: PathBuf,
}

/// The Debian package of `skopeo`, the client the built-in registry's tests copy images with.
const SKOPEO_PACKAGE: &str = "skopeo";

/// Finds `skopeo`; when it is missing and we are root, installs it with apt-get.
fn ensure_skopeo() -> Result<()> {
    if Path::new("/usr/bin/skopeo").exists() || which("skopeo").is_some() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "skopeo was not found (looked at /usr/bin/skopeo and on PATH); install the Debian package `{SKOPEO_PACKAGE}` \
             (`sudo apt-get install -y --no-install-recommends {SKOPEO_PACKAGE}`), or run `cargo xtask` as root"
        );
    }
    eprintln!("skopeo was not found: installing {SKOPEO_PACKAGE} with apt-get");
    apt_install(&[SKOPEO_PACKAGE])
}

/// The Debian packages of the headless browser the console's tests drive over WebDriver.
const BROWSER_PACKAGES: [&str; 2] = ["chromium", "chromium-driver"];

/// Installs Chromium and its WebDriver when either is missing and we are root; otherwise the console's
/// browser tests skip, saying so.
fn ensure_browser() -> Result<()> {
    if Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists() {
        return Ok(());
    }
    if !is_root() {
        eprintln!(
            "chromium or chromedriver was not found: the console's browser tests will skip; install `{}`",
            BROWSER_PACKAGES.join(" ")
        );
        return Ok(());
    }
    eprintln!("chromium or chromedriver was not found: installing {} with apt-get", BROWSER_PACKAGES.join(" "));
    apt_install(&BROWSER_PACKAGES)
}

/// Finds the tools; when some are missing and we are root, installs them with apt-get.
pub fn ensure() -> Result<Tools> {
    ensure_skopeo()?;
    ensure_browser()?;
    let (pg, registry) = (find_pg(), find_registry());
    if let (Some(pg), Some(registry)) = (&pg, &registry) {
        return Ok(Tools { pg: pg.clone(), registry: registry.clone() });
    }
    let mut missing = Vec::new();
    if pg.is_none() {
        missing.push(PG_PACKAGE);
    }
    if registry.is_none() {
        missing.push(REGISTRY_PACKAGE);
    }
    let what = describe_missing(pg.is_none(), registry.is_none());
    if !is_root() {
        bail!(
            "{what}; install the Debian package(s) `{pkgs}` \
             (`sudo apt-get install -y --no-install-recommends {pkgs}`), \
             or run `cargo xtask` as root and it installs them",
            pkgs = missing.join(" ")
        );
    }
    eprintln!("{what}: installing {} with apt-get", missing.join(" "));
    apt_install(&missing)?;
    match (find_pg(), find_registry()) {
        (Some(pg), Some(registry)) => Ok(Tools { pg, registry }),
        (pg, registry) => bail!(
            "{} even after `apt-get install {}`",
            describe_missing(pg.is_none(), registry.is_none()),
            missing.join(" ")
        ),
    }
}

fn describe_missing(pg: bool, registry: bool) -> String {
    let mut parts = Vec::new();
    if pg {
        parts.push(match std::env::var_os(PG_BINDIR_VAR) {
            Some(dir) => format!("{PG_BINDIR_VAR}={} lacks initdb/pg_ctl/postgres", Path::new(&dir).display()),
            None => "PostgreSQL's initdb/pg_ctl/postgres were not found \
                     (looked on PATH and in /usr/lib/postgresql/*/bin)"
                .to_owned(),
        });
    }
    if registry {
        parts.push("docker-registry was not found (looked at /usr/bin/docker-registry and on PATH)".to_owned());
    }
    parts.join("; ")
}

/// Whether this process runs as root (the owner of `/proc/self` is our effective uid).
pub fn is_root() -> bool {
    match fs::metadata("/proc/self") {
        Ok(m) => m.uid() == 0,
        Err(_) => Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0"),
    }
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| is_executable(p))
}

fn pg_in(bindir: &Path) -> Option<PgBin> {
    let [initdb, pg_ctl, postgres] = ["initdb", "pg_ctl", "postgres"].map(|b| bindir.join(b));
    if !(is_executable(&initdb) && is_executable(&pg_ctl) && is_executable(&postgres)) {
        return None;
    }
    let psql = Some(bindir.join("psql")).filter(|p| is_executable(p)).or_else(|| which("psql"))?;
    Some(PgBin { bindir: bindir.to_path_buf(), initdb, pg_ctl, psql })
}

/// `$IMAGEGATE_PG_BINDIR`, then the directory of `initdb` on PATH, then the highest
/// version in `/usr/lib/postgresql/*/bin` (Debian's layout).
fn find_pg() -> Option<PgBin> {
    if let Some(dir) = std::env::var_os(PG_BINDIR_VAR) {
        return pg_in(Path::new(&dir));
    }
    if let Some(initdb) = which("initdb") {
        // Prefer the real directory behind a symlink (it has psql too); Debian's
        // pg_wrapper symlinks resolve elsewhere, so fall back to the PATH directory.
        let real_dir = fs::canonicalize(&initdb).ok().and_then(|p| p.parent().map(Path::to_path_buf));
        let path_dir = initdb.parent().map(Path::to_path_buf);
        if let Some(found) = [real_dir, path_dir].into_iter().flatten().find_map(|dir| pg_in(&dir)) {
            return Some(found);
        }
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            let version = name.split('.').map(str::parse).collect::<Result<Vec<u32>, _>>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions.iter().rev().find_map(|(_, bindir)| pg_in(bindir))
}

/// `$IMAGEGATE_TEST_REGISTRY_BIN` when set, then `/usr/bin/docker-registry`, then
/// `docker-registry` on PATH.
pub(crate) fn find_registry() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(REGISTRY_BIN_VAR) {
        let path = PathBuf::from(path);
        if is_executable(&path) {
            return Some(path);
        }
        eprintln!("xtask: warning: {REGISTRY_BIN_VAR}={} is not an executable file; ignoring it", path.display());
    }
    let debian = Path::new("/usr/bin/docker-registry");
    if is_executable(debian) {
        return Some(debian.to_path_buf());
    }
    which("docker-registry")
}

/// Keeps apt from starting the packaged services while it installs (they would take
/// ports 5432 and 5000, which we never use anyway): writes `/usr/sbin/policy-rc.d`
/// returning 101 when there is none, and removes it again on drop.
#[derive(Debug)]
struct PolicyRcD {
    path: PathBuf,
}

impl PolicyRcD {
    fn install() -> Option<Self> {
        let path = PathBuf::from("/usr/sbin/policy-rc.d");
        if path.exists() {
            return None;
        }
        let script = "#!/bin/sh\n# Written by `cargo xtask` while it runs apt-get: start no services.\nexit 101\n";
        match fs::write(&path, script).and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o755))) {
            Ok(()) => Some(Self { path }),
            Err(e) => {
                eprintln!("xtask: warning: cannot write {}: {e}; apt may start services", path.display());
                let _ = fs::remove_file(&path);
                None
            }
        }
    }
}

impl Drop for PolicyRcD {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

pub(crate) fn apt_install(packages: &[&str]) -> Result<()> {
    let _policy = PolicyRcD::install();
    // Wait for another apt/dpkg (e.g. unattended upgrades) instead of failing at once.
    let lock_timeout = "DPkg::Lock::Timeout=600";
    apt(&["update", "-o", lock_timeout])?;
    if interrupted() {
        bail!("interrupted");
    }
    let mut args = vec!["install", "-y", "--no-install-recommends", "-o", lock_timeout];
    args.extend_from_slice(packages);
    apt(&args)
}

fn apt(args: &[&str]) -> Result<()> {
    crate::header(&format!("apt-get {}", args.join(" ")));
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .status()
        .context("running apt-get")?;
    if !status.success() {
        bail!("`apt-get {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// containerd and ctr, for the node inventory's tests: installed with apt-get (Debian's `containerd`) when
/// missing and we are root. Not fatal: without them those tests skip, saying why.
pub fn ensure_containerd() {
    if which("containerd").is_some() && which("ctr").is_some() {
        return;
    }
    if !is_root() {
        eprintln!("containerd was not found: the node inventory's tests will skip (install Debian's `containerd`)");
        return;
    }
    eprintln!("containerd was not found: installing containerd with apt-get");
    if let Err(e) = apt_install(&["containerd"]) {
        eprintln!("xtask: warning: cannot install containerd ({e:#}); the node inventory's tests will skip");
    }
}
