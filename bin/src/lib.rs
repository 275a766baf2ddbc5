//! Shared start-up code of imagegate's programs: configuration, logging and the database.

pub mod inventory;
pub mod serve;
pub mod users;

pub mod builtin_registry;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use api_http::InternalRegistry;
use clap::ValueEnum;
use registry_client::{Cidr, ClientConfig, CopyConfig, CopyEngine, Credential, EgressPolicy, RegistryClient};
use sync_worker::{ImportHandler, RetentionHandler, Runner, RunnerConfig, SyncHandler, WorkerContext};

/// Makes the C library's allocator give large blocks back to the system as soon as they are freed.
///
/// Call it first in `main`, before any thread starts. glibc serves a block of 128 KiB or more with its
/// own `mmap` and unmaps it on free, but raises that threshold to the size of each such block freed,
/// after which blocks of that size come from its heaps and stay there. Each password check (Argon2id)
/// takes 19 MiB at once, on whichever blocking thread runs it: with the default behaviour a server grew
/// from 14 to 53 MiB over 20 sign-ins in a row and stayed there; with the threshold fixed at 1 MiB it
/// stays at 14 MiB. The library crates leave this to whoever embeds them.
pub fn tune_allocator() {
    /// Above the largest buffer a blob transfer allocates (an HTTP read buffer grows to about 400 KiB),
    /// which the allocator should keep and reuse, and far below an Argon2id check's 19 MiB.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    const MMAP_THRESHOLD: i32 = 1024 * 1024;
    /// Free memory at the top of a heap kept for reuse rather than given back (fixing the mmap threshold
    /// would otherwise leave glibc's 128 KiB default, and the transfers' buffers would be faulted in anew).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    const TRIM_THRESHOLD: i32 = 8 * 1024 * 1024;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: `mallopt` only sets a parameter of glibc's allocator, and is called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Sets up logging; `RUST_LOG` overrides the default level (`info`).
pub fn init_logging(format: LogFormat) {
    init_logging_at(format, "info,tower_http=info");
}

/// Sets up logging at `default` (an `EnvFilter` directive) unless `RUST_LOG` says otherwise.
fn init_logging_at(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// The database URL: the one given, or SQLite in the data directory.
///
/// For SQLite the data directory is created with mode 0700 and the database file with 0600 before SQLite
/// opens it (SQLite gives its journal files the database file's mode), so that registry passwords'
/// ciphertexts, token hashes and password hashes are readable by the server's user alone.
pub fn database_url(data_dir: &Path, given: Option<&str>) -> anyhow::Result<String> {
    match given {
        Some(url) if !url.is_empty() => Ok(url.to_owned()),
        _ => {
            create_private_dir(data_dir)
                .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
            let db = data_dir.join("imagegate.db");
            create_private_file(&db).with_context(|| format!("cannot create the database file {}", db.display()))?;
            Ok(format!("sqlite://{}", db.display()))
        }
    }
}

/// Creates `dir` (and its parents) when missing, the last with mode 0700; warns when an existing one is
/// open to its group or others.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        if !dir.exists() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %dir.display(), mode = format!("{mode:04o}"), "the data directory is open to other users; chmod 700 it");
        }
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Creates an empty file with mode 0600 unless it exists.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Fails when the key file is missing but the database holds registry passwords sealed with a key: a new
/// key could not open them, and making one would hide the loss until the passwords are needed.
async fn refuse_a_lost_key(url: &str, key_path: &Path) -> anyhow::Result<()> {
    use image_core::store::KubeStore as _;
    let probe = store::DbStore::connect_with(url, store::StoreOptions { secret_key: None })
        .await
        .with_context(|| format!("cannot open the database at {}", redact_url(url)))?;
    let page = image_core::catalog::Page::new(Some(1), None)?;
    let sealed = match probe.list_registry_secrets(None, None, page).await {
        Ok(listing) => listing.total > 0,
        // Secrets there, and none readable without the key.
        Err(_) => true,
    };
    if sealed {
        bail!(
            "the secret key file {} is missing, but the database holds registry passwords sealed with it: \
             restore the file from a backup (or point --secret-key-file at it); a new key cannot open them, \
             so none was made",
            key_path.display()
        );
    }
    Ok(())
}

/// Hides the password of a database URL, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Where the database is and how to log; shared by the server, its subcommands and the worker.
///
/// The options are global: a subcommand takes them before or after its name.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// Directory for the embedded database and keys.
    #[arg(long, env = "IMAGEGATE_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// Database URL: `postgres://…` for PostgreSQL; default SQLite in the data directory.
    #[arg(long, env = "IMAGEGATE_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Log format.
    #[arg(long, env = "IMAGEGATE_LOG_FORMAT", value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    /// The key that encrypts registry passwords at rest: a file of 32 bytes or 64 hex digits, created
    /// with mode 0600 when missing [default: <data-dir>/secret.key]. Every server and worker sharing a
    /// database needs the same key.
    #[arg(long, env = "IMAGEGATE_SECRET_KEY_FILE", global = true)]
    pub secret_key_file: Option<PathBuf>,
}

impl CommonArgs {
    /// The secret key file: `--secret-key-file`, or `secret.key` in the data directory.
    pub fn secret_key_path(&self) -> PathBuf {
        self.secret_key_file.clone().unwrap_or_else(|| self.data_dir.join("secret.key"))
    }

    /// Sets up logging and opens (and migrates) the database.
    pub async fn open_store(&self) -> anyhow::Result<store::DbStore> {
        init_logging(self.log_format);
        let url = database_url(&self.data_dir, self.database_url.as_deref())?;
        let key_path = self.secret_key_file.clone().unwrap_or_else(|| self.data_dir.join("secret.key"));
        if !key_path.exists() {
            refuse_a_lost_key(&url, &key_path).await?;
        }
        let key = store::SecretKey::load_or_create(&key_path)
            .with_context(|| format!("cannot load the secret key {}", key_path.display()))?;
        let options = store::StoreOptions { secret_key: Some(key) };
        let store = store::DbStore::connect_with(&url, options)
            .await
            .with_context(|| format!("cannot open the database at {}", redact_url(&url)))?;
        tracing::info!(database = %redact_url(&url), backend = store.backend_name(), "database ready");
        Ok(store)
    }
}

impl CommonArgs {
    /// Opens (and migrates) the database for a command that reads no registry password, without the
    /// secret key, logging warnings only unless `RUST_LOG` says otherwise; says on standard error which
    /// database it opened.
    pub async fn open_store_for_command(&self) -> anyhow::Result<store::DbStore> {
        init_logging_at(self.log_format, "warn");
        let url = database_url(&self.data_dir, self.database_url.as_deref())?;
        let store = store::DbStore::connect(&url)
            .await
            .with_context(|| format!("cannot open the database at {}", redact_url(&url)))?;
        eprintln!("database: {}", redact_url(&url));
        Ok(store)
    }
}

/// How long tokens work: a Go duration (`720h`, `90m`) or whole days (`30d`, or `7d12h` with a Go duration
/// after them); more than zero and at most [`api_http::auth::MAX_TOKEN_TTL`] (365 days), so every token
/// ends.
pub fn parse_token_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let ttl = parse_days(text)?;
    let max = api_http::auth::MAX_TOKEN_TTL;
    if ttl.is_zero() {
        return Err(format!("`{text}`: tokens must expire after some time; the longest is 365d"));
    }
    if ttl > max {
        return Err(format!("`{text}` is longer than the longest token lifetime, 365d"));
    }
    Ok(ttl)
}

/// A Go duration (`720h`, `90m`) or whole days with an optional Go duration after them (`30d`, `7d12h`).
fn parse_days(text: &str) -> Result<Duration, String> {
    let (days, rest) = match text.split_once('d') {
        Some((days, rest)) if !days.is_empty() && days.bytes().all(|b| b.is_ascii_digit()) => {
            let days: u64 = days.parse().map_err(|_| format!("`{text}` has too many days"))?;
            (days, rest)
        }
        _ => (0, text),
    };
    let rest = if rest.is_empty() {
        Duration::ZERO
    } else {
        image_core::kube::parse_go_duration(rest)
            .map_err(|e| format!("{e}; write a duration such as 30d, 720h or 90m"))?
    };
    Ok(Duration::from_secs(days.saturating_mul(24 * 3600)).saturating_add(rest))
}

/// How long history is kept: days (`90d`) or a Go duration (`36h`); at least an hour, so that a typo
/// cannot empty the history tables at the next run.
pub fn parse_retention(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let age = parse_days(text)?;
    if age < Duration::from_secs(3600) {
        return Err(format!("`{text}` is shorter than the shortest retention, 1h"));
    }
    Ok(age)
}

/// Where imports land, and how registries are reached; shared by the server and the worker.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArgs {
    /// URL of the internal registry imports land in: `https://harbor.example.com`, or `http://127.0.0.1:5000`
    /// for plain HTTP. Without one the server serves its built-in registry at `/v2/` and imports land there;
    /// a worker refuses imports.
    #[arg(long, env = "IMAGEGATE_INTERNAL_REGISTRY")]
    pub internal_registry: Option<String>,
    /// User name for the internal registry.
    #[arg(long, env = "IMAGEGATE_INTERNAL_REGISTRY_USERNAME")]
    pub internal_registry_username: Option<String>,
    /// Password for the internal registry.
    #[arg(long, env = "IMAGEGATE_INTERNAL_REGISTRY_PASSWORD", hide_env_values = true)]
    pub internal_registry_password: Option<String>,
    /// A PEM bundle of certificate authorities to trust for HTTPS registries (a private CA).
    #[arg(long, env = "IMAGEGATE_REGISTRY_CA")]
    pub registry_ca: Option<PathBuf>,
    /// Path put in front of every imported repository, such as a Harbor project: with `mirror`,
    /// `docker.io/pytorch/pytorch:2.0` lands at `<internal>/mirror/pytorch/pytorch:2.0`.
    #[arg(long, env = "IMAGEGATE_INTERNAL_PROJECT", default_value = "")]
    pub internal_project: String,
    /// A registry reached over plain HTTP (`HOST:PORT`), as Docker's `--insecure-registry`; repeatable.
    /// Loopback registries always may be.
    #[arg(long = "insecure-registry", env = "IMAGEGATE_INSECURE_REGISTRIES", value_delimiter = ',')]
    pub insecure_registries: Vec<String>,
    /// A Docker `config.json` whose `auths` hold source registries' credentials
    /// [default: $DOCKER_CONFIG/config.json or ~/.docker/config.json].
    #[arg(long, env = "IMAGEGATE_REGISTRY_CONFIG")]
    pub registry_config: Option<PathBuf>,
    /// Blobs one import copies at once.
    #[arg(long, env = "IMAGEGATE_COPY_CONCURRENCY", default_value_t = 4)]
    pub copy_concurrency: usize,
    /// Addresses no registry connection may go to (a CIDR such as `10.0.0.0/8`, checked after name
    /// resolution, for registries, token services and redirects alike); repeatable. Giving any replaces
    /// the default, the link-local ranges where cloud metadata services answer.
    #[arg(
        long = "egress-deny",
        env = "IMAGEGATE_EGRESS_DENY",
        value_name = "CIDR",
        value_delimiter = ',',
        default_values = EgressPolicy::DEFAULT_DENY
    )]
    pub egress_deny: Vec<Cidr>,
    /// An exception to `--egress-deny` (a CIDR; allow wins), such as an internal registry's address in a
    /// denied range; repeatable.
    #[arg(long = "egress-allow", env = "IMAGEGATE_EGRESS_ALLOW", value_name = "CIDR", value_delimiter = ',')]
    pub egress_allow: Vec<Cidr>,
    /// What the internal registry is: `harbor` (its REST API v2.0 for projects, statistics, deletes and
    /// scans), `distribution` (a plain OCI registry), or `auto`: Harbor when `GET /api/v2.0/systeminfo`
    /// answers as Harbor does.
    #[arg(long, env = "IMAGEGATE_INTERNAL_REGISTRY_KIND", value_enum, default_value_t = InternalRegistryKind::Auto)]
    pub internal_registry_kind: InternalRegistryKind,
    /// Harbor projects that imports create are public (anyone may pull); private without this.
    #[arg(long, env = "IMAGEGATE_INTERNAL_PROJECT_PUBLIC")]
    pub internal_project_public: bool,
    /// A finished vulnerability scan that found something at or above this severity (critical, high,
    /// medium, low) fails, and admission refuses the tag; off by default.
    #[arg(long, env = "IMAGEGATE_DENY_SEVERITY", value_name = "SEVERITY")]
    pub deny_severity: Option<image_core::registry::Severity>,
    /// The secret a Harbor webhook policy sends as its `Authorization` header; without it,
    /// `POST /api/v1/webhooks/harbor` is refused.
    #[arg(long, env = "IMAGEGATE_HARBOR_WEBHOOK_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub harbor_webhook_secret: Option<String>,
    /// The secret a Distribution notification endpoint sends as its `Authorization` header (its `headers`
    /// setting); without it, `POST /api/v1/webhooks/docker-registry` is refused.
    #[arg(long, env = "IMAGEGATE_REGISTRY_WEBHOOK_SECRET", value_name = "SECRET", hide_env_values = true)]
    pub registry_webhook_secret: Option<String>,
}

/// `--internal-registry-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InternalRegistryKind {
    Auto,
    Harbor,
    Distribution,
}

/// The engine that talks to registries, and the internal registry when one is configured.
pub struct Registries {
    pub copier: Arc<CopyEngine>,
    pub internal: Option<InternalRegistry>,
}

impl std::fmt::Debug for Registries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registries").field("internal", &self.internal).finish_non_exhaustive()
    }
}

/// The registry client and copy engine, and the internal registry, from the options.
pub fn registries(args: &RegistryArgs) -> anyhow::Result<Registries> {
    registries_with(args, None)
}

/// [`registries`], with `admin` (when given) as the internal registry's adapter instead of the one
/// `--internal-registry-kind` chooses: the built-in registry's own.
pub fn registries_with(
    args: &RegistryArgs,
    admin: Option<Arc<dyn image_core::registry::RegistryAdmin>>,
) -> anyhow::Result<Registries> {
    let mut config = ClientConfig {
        insecure_registries: args.insecure_registries.clone(),
        egress: EgressPolicy::new(args.egress_deny.clone(), args.egress_allow.clone()),
        ..ClientConfig::default()
    };
    let mut internal_host = None;
    if let Some(url) = args.internal_registry.as_deref().filter(|u| !u.is_empty()) {
        let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
        let host = rest.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            bail!(
                "--internal-registry takes a URL without a path, such as http://127.0.0.1:5000; put a path in --internal-project"
            );
        }
        image_core::validate::registry_host(host).map_err(|e| anyhow::anyhow!("--internal-registry: {e}"))?;
        match scheme {
            "http" => config.insecure_registries.push(host.to_owned()),
            "https" => {}
            other => bail!("--internal-registry: unsupported scheme `{other}`; use http or https"),
        }
        internal_host = Some(host.to_owned());
    }
    if let Some(ca) = &args.registry_ca {
        let pem = std::fs::read(ca).with_context(|| format!("cannot read the CA bundle {}", ca.display()))?;
        config.ca_certificates_pem.push(pem);
    }
    let path = args.registry_config.clone().or_else(registry_client::default_docker_config_path);
    if let Some(path) = path {
        config.credentials = registry_client::load_docker_config(&path)
            .with_context(|| format!("cannot read registry credentials from {}", path.display()))?;
    }
    match (&args.internal_registry_username, &args.internal_registry_password, &internal_host) {
        (Some(user), Some(password), Some(host)) => {
            config.credentials.insert(host.clone(), Credential::new(user, password));
        }
        (None, None, _) => {}
        (Some(_), Some(_), None) => {
            bail!("--internal-registry-username and --internal-registry-password need --internal-registry")
        }
        _ => bail!("give both --internal-registry-username and --internal-registry-password, or neither"),
    }
    let client = Arc::new(RegistryClient::new(config).context("cannot set up the registry client")?);
    let copier =
        Arc::new(CopyEngine::new(client.clone(), CopyConfig { blob_concurrency: args.copy_concurrency.max(1) }));
    let internal = internal_host.map(|host| {
        let options = registry_client::HarborOptions { public_projects: args.internal_project_public };
        let admin: Arc<dyn image_core::registry::RegistryAdmin> = match (admin, args.internal_registry_kind) {
            (Some(admin), _) => admin,
            (None, InternalRegistryKind::Auto) => {
                Arc::new(registry_client::AutoAdmin::new(client.clone(), host.clone(), options))
            }
            (None, InternalRegistryKind::Harbor) => {
                Arc::new(registry_client::HarborAdmin::new(client.clone(), host.clone(), options))
            }
            (None, InternalRegistryKind::Distribution) => {
                Arc::new(registry_client::DistributionAdmin::new(client.clone(), host.clone()))
            }
        };
        let internal_copier =
            registry_client::InternalCopier::new(copier.clone(), client.clone(), admin.clone(), host.clone());
        InternalRegistry {
            admin,
            deny_severity: args.deny_severity,
            host,
            prefix: args.internal_project.trim_matches('/').to_owned(),
            copier: Arc::new(internal_copier),
        }
    });
    Ok(Registries { copier, internal })
}

/// How the job runner runs; shared by the server's embedded worker and `imagegate-worker`.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// Jobs run at once by this process, of all types together (imports and syncs share the limit).
    #[arg(long, env = "IMAGEGATE_WORKER_CONCURRENCY", default_value_t = 2)]
    pub worker_concurrency: usize,
    /// Seconds a claimed job stays claimed without a heartbeat; a dead worker's job returns to the queue then.
    #[arg(long, env = "IMAGEGATE_WORKER_LEASE_SECS", default_value_t = 30)]
    pub worker_lease_secs: u64,
    /// Seconds between looks at an empty queue.
    #[arg(long, env = "IMAGEGATE_WORKER_POLL_SECS", default_value_t = 1.0)]
    pub worker_poll_secs: f64,
    /// Seconds between looks for repositories whose sync is due.
    #[arg(long, env = "IMAGEGATE_SCHEDULER_INTERVAL_SECS", default_value_t = 10)]
    pub scheduler_interval_secs: u64,
    /// How long finished import records are kept after they finish: `90d`, `36h`; at least 1h.
    #[arg(long, env = "IMAGEGATE_RETAIN_IMPORTS", default_value = "90d", value_parser = parse_retention)]
    pub retain_imports: Duration,
    /// How long audit events are kept: `365d`; at least 1h.
    #[arg(long, env = "IMAGEGATE_RETAIN_EVENTS", default_value = "365d", value_parser = parse_retention)]
    pub retain_events: Duration,
    /// How often catalog tags whose vulnerability scan is pending are read again from Harbor: `10m`, `1h`
    /// (only with Harbor as the internal registry).
    #[arg(long, env = "IMAGEGATE_SCAN_REFRESH_INTERVAL", default_value = "10m", value_parser = parse_token_ttl)]
    pub scan_refresh_interval: Duration,
}

impl WorkerArgs {
    /// The retention job's payload from `--retain-imports` and `--retain-events`.
    pub fn retention(&self) -> image_core::job::RetentionPayload {
        image_core::job::RetentionPayload {
            imports_secs: self.retain_imports.as_secs(),
            events_secs: self.retain_events.as_secs(),
        }
    }
}

/// How often each worker process queues a retention job (when none is queued).
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// On PostgreSQL, rings `waker` whenever any process queues a job, so that this process's workers start it
/// at once instead of at their next poll; `None` (polling only) on SQLite.
fn wake_on_queued_jobs(
    store: &store::DbStore,
    waker: &Arc<tokio::sync::Notify>,
) -> Option<tokio::task::JoinHandle<()>> {
    let waker = waker.clone();
    let listener = store.watch_job_queue(move || sync_worker::wake(&waker));
    if listener.is_some() {
        tracing::info!("workers wake when any process queues a job (PostgreSQL LISTEN/NOTIFY)");
    }
    listener
}

/// Runs imports, syncs and the sync scheduler until `shutdown` resolves.
///
/// `waker` is rung by whoever queues a job in this process (the embedded server's API), and on PostgreSQL
/// whenever any process queues one, so that jobs start at once rather than at the next poll.
pub async fn run_worker(
    store: Arc<store::DbStore>,
    internal: &InternalRegistry,
    args: &WorkerArgs,
    waker: Arc<tokio::sync::Notify>,
    inventory: Option<Arc<sync_worker::NodeReporter>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let listener = wake_on_queued_jobs(&store, &waker);
    let config = RunnerConfig {
        concurrency: args.worker_concurrency.max(1),
        lease: Duration::from_secs(args.worker_lease_secs.max(3)),
        poll_interval: Duration::from_secs_f64(args.worker_poll_secs.clamp(0.05, 60.0)),
        ..RunnerConfig::default()
    };
    let ctx = WorkerContext {
        imports: store.clone(),
        kube: store.clone(),
        copier: internal.copier.clone(),
        progress_interval: Duration::from_millis(500),
        target_host: internal.host.clone(),
        target_prefix: internal.prefix.clone(),
        inventory: inventory.clone(),
        scans: Some(Arc::new(sync_worker::ScanSettings {
            store: store.clone(),
            admin: internal.admin.clone(),
            deny: internal.deny_severity,
        })),
        ops: store.clone(),
    };
    // One runner for every job type, so that `concurrency` bounds them all together.
    let mut runner = Runner::new(store.clone(), ctx, config)
        .register::<ImportHandler>()
        .register::<SyncHandler>()
        .register::<sync_worker::ScanHandler>()
        .register::<RetentionHandler>();
    if let Some(reporter) = &inventory {
        tracing::info!(node = %reporter.node, runtime = %reporter.runtime.endpoint(), "reporting this node's images");
        runner = runner.register_as::<sync_worker::InventoryJob>(reporter.job_type());
    }
    let runner = Arc::new(runner.with_waker(waker.clone()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let every = Duration::from_secs(args.scheduler_interval_secs.max(1));
    let scan_refresh = sync_worker::schedule_scan_refresh(
        store.clone(),
        internal.admin.clone(),
        args.scan_refresh_interval,
        waker.clone(),
        stopped(stop_rx.clone()),
    );
    tokio::join!(
        runner.run(stopped(stop_rx.clone())),
        sync_worker::schedule_syncs(store.clone(), every, waker.clone(), stopped(stop_rx.clone())),
        sync_worker::schedule_retention(
            store.clone(),
            args.retention(),
            RETENTION_INTERVAL,
            waker.clone(),
            stopped(stop_rx.clone())
        ),
        scan_refresh,
        async {
            if let Some(reporter) = inventory {
                sync_worker::schedule_inventory(reporter, waker, stopped(stop_rx)).await;
            }
        },
        async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        },
    );
    if let Some(listener) = listener {
        listener.abort();
    }
}

/// Whether `/metrics` answers, and to whom.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsArgs {
    /// `on` serves Prometheus metrics at `/metrics`; `off` answers 404 there.
    #[arg(long = "metrics", env = "IMAGEGATE_METRICS", value_enum, default_value = "on")]
    pub metrics: Switch,
    /// A token `/metrics` requires as `Authorization: Bearer <token>`; without one anyone may scrape.
    #[arg(long, env = "IMAGEGATE_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl MetricsArgs {
    /// Who may read `/metrics`; fails on an empty token, which would look set and let anyone in.
    pub fn access(&self) -> anyhow::Result<api_http::metrics::MetricsAccess> {
        use api_http::metrics::MetricsAccess;
        Ok(match (self.metrics, self.metrics_token.as_deref()) {
            (Switch::Off, _) => MetricsAccess::Off,
            (Switch::On, None) => MetricsAccess::Open,
            (Switch::On, Some(token)) if token.trim().is_empty() => {
                bail!("--metrics-token is empty: give a token, or leave it out to let anyone scrape")
            }
            (Switch::On, Some(token)) => MetricsAccess::Token(token.into()),
        })
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// `--docker-hub-mirror URL`: the mirror's `host[:port]`.
pub fn parse_docker_hub_mirror(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(|| format!("`{text}` is not an http:// or https:// URL"))?;
    let host = rest.trim_end_matches('/');
    image_core::validate::registry_host(host).map_err(|e| format!("`{text}`: {e}"))?;
    Ok(host.to_owned())
}

/// `--station-namespace`: a DNS label, as every namespace is.
pub fn parse_station_namespace(text: &str) -> Result<String, String> {
    image_core::kube::validate_dns_label("station-namespace", text).map_err(|e| e.to_string())?;
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lifetimes() {
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(parse_token_ttl("30d"), Ok(30 * day));
        assert_eq!(parse_token_ttl("720h"), Ok(30 * day));
        assert_eq!(parse_token_ttl("7d12h"), Ok(7 * day + 12 * Duration::from_secs(3600)));
        assert_eq!(parse_token_ttl("90m"), Ok(Duration::from_secs(90 * 60)));
        assert_eq!(parse_token_ttl("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_token_ttl("365d"), Ok(365 * day));
        for never in ["0", "0s", "0d", "never", "", "d", "-1h", "30 days", "1y"] {
            assert!(parse_token_ttl(never).is_err(), "{never}");
        }
        assert!(parse_token_ttl("366d").unwrap_err().contains("longest"));
        assert!(parse_token_ttl("8785h").is_err());
        assert!(parse_token_ttl("99999999999999999999d").is_err());
    }

    #[test]
    fn retention_ages() {
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(parse_retention("90d"), Ok(90 * day));
        assert_eq!(parse_retention("365d"), Ok(365 * day));
        assert_eq!(parse_retention("36h"), Ok(36 * Duration::from_secs(3600)));
        assert_eq!(parse_retention("1h"), Ok(Duration::from_secs(3600)));
        for too_short in ["0", "0d", "59m", "1s"] {
            assert!(parse_retention(too_short).unwrap_err().contains("shortest"), "{too_short}");
        }
        for bad in ["", "90 days", "-1d", "1y", "d"] {
            assert!(parse_retention(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }

    #[test]
    fn defaults_to_sqlite_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let url = database_url(&dir.path().join("d"), None).unwrap();
        assert!(url.starts_with("sqlite://") && url.ends_with("/d/imagegate.db"), "{url}");
        assert!(dir.path().join("d").is_dir());
        assert_eq!(database_url(dir.path(), Some("postgres://x")).unwrap(), "postgres://x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.path().join("d")), 0o700);
            assert_eq!(mode(&dir.path().join("d/imagegate.db")), 0o600);
        }
    }
}
