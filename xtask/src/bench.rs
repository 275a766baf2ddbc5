//! `cargo xtask bench import`: imagegate's import against `skopeo copy --all`, on the same generated
//! images between the same two local CNCF Distribution registries.
//!
//! Per scenario: one source registry with the scenario's image, pushed once (streamed, never held in
//! memory); then `--runs` timed runs of each tool, alternated (imagegate, skopeo, imagegate, …), each
//! into a fresh, empty target registry (or, for `warm`, into one target that already holds the image).
//!
//! * imagegate runs the real path: a fresh `imagegate-server` on a fresh SQLite database with its embedded
//!   worker (or, with `--separate-worker`, `--no-worker` and a fresh `imagegate-worker` process on the same
//!   database), `POST /api/v1/images:import`, then `GET /api/v1/images` every 10 ms until the artifacts are
//!   `ready`. Wall time is from the POST to the first answer that says `ready`; peak RSS is the `VmHWM` of the
//!   process that runs the copy (a fresh process per run, so the peak of that run, start-up included).
//! * skopeo runs as `/usr/bin/time -f "%M %U %S" skopeo copy --all …`: wall time from spawn to exit, peak RSS
//!   from `wait4`'s `ru_maxrss` as GNU time reports it.
//!
//! Every copy is checked afterwards: the target tag has the source's digest (and every child of an
//! index is there). Results are printed and written into `docs/benchmarks.md` (one section per
//! scenario, replaced when that scenario runs again; everything else in the file is kept).

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use rand::{Rng as _, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use test_support::Distribution;

use crate::{cargo, header, interrupted, run_interruptibly, tools, workspace_root};

/// A run (one copy by one tool) that takes longer fails the bench.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a server or worker may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the import's state is read.
const STATUS_POLL: Duration = Duration::from_millis(10);
/// The tag every generated image is pushed under.
const TAG: &str = "v1";
const MIB: u64 = 1 << 20;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// The most a stored deflate block holds.
const STORED_MAX: usize = 65_535;
/// Stored blocks per chunk of a generated layer's stream (about 1 MiB).
const BLOCKS_PER_CHUNK: usize = 16;
const DOC_PATH: &str = "docs/benchmarks.md";

mod registry;

#[derive(Debug, Subcommand)]
pub enum BenchCmd {
    /// Compare imagegate's import (the server and its worker, the real path) with `skopeo copy --all`.
    Import(ImportArgs),
    /// Compare pushes and pulls through the built-in registry with the same through Distribution.
    Registry(registry::RegistryArgs),
    /// Load the list and detail routes of every profile on 100,000 images and imports, against a hello-world.
    Api(crate::bench_api::ApiArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Timed runs of each tool per scenario [default: 5; 2 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: Option<u32>,
    /// Run only this scenario; repeatable [default: all, in the order below].
    #[arg(long = "scenario", value_enum)]
    scenarios: Vec<ScenarioName>,
    /// Small images and 2 runs: a smoke test that the whole bench works. Writes no doc.
    #[arg(long)]
    quick: bool,
    /// Print the results only; leave docs/benchmarks.md alone.
    #[arg(long)]
    no_doc: bool,
    /// Use the release binaries already built instead of running `cargo build --release` first.
    #[arg(long)]
    no_build: bool,
    /// `--worker-poll-secs` of imagegate-worker: how often an idle worker looks for a job.
    #[arg(long, default_value_t = 0.05)]
    worker_poll_secs: f64,
    /// `--copy-concurrency` of imagegate-worker [default: imagegate's own default].
    #[arg(long)]
    copy_concurrency: Option<usize>,
    /// After the timed runs, one more untimed run of each tool with debug logs, to count the registry
    /// requests each makes (by side and method).
    #[arg(long)]
    requests: bool,
    /// Run imports on a separate `imagegate-worker` process (which finds jobs by polling) instead of the
    /// server's embedded worker (the default deployment, which the API wakes when it queues a job).
    #[arg(long)]
    separate_worker: bool,
    /// Where the registries keep their blobs, and imagegate its database: in memory (a tmpfs, `/dev/shm`), so
    /// that what is compared is the tools and not this machine's disk, or on disk (the system's temporary
    /// directory).
    #[arg(long, value_enum, default_value_t = Storage::Memory)]
    storage: Storage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Storage {
    /// `/dev/shm`.
    Memory,
    /// The system's temporary directory (`TMPDIR`, or `/tmp`).
    Disk,
}

impl Storage {
    fn root(self) -> Result<PathBuf> {
        match self {
            Storage::Memory => {
                let shm = PathBuf::from("/dev/shm");
                if !shm.is_dir() {
                    bail!("--storage memory needs /dev/shm, which this machine lacks; use --storage disk");
                }
                Ok(shm)
            }
            Storage::Disk => Ok(std::env::temp_dir()),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Storage::Memory => "the registries' storage and imagegate's database in memory (tmpfs)",
            Storage::Disk => "the registries' storage and imagegate's database on disk",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum ScenarioName {
    /// A two-platform OCI index, 10 layers of 25 MiB per platform (500 MiB), into an empty target.
    #[value(name = "index-500mb")]
    Index500mb,
    /// One platform, 60 layers of 1 MiB, into an empty target.
    SmallLayers,
    /// The 500 MiB index again, into a target that already holds it (imagegate: fresh database).
    Warm,
    /// One platform with a single 1 GiB layer, into an empty target.
    LargeLayer,
}

impl ScenarioName {
    const ALL: [ScenarioName; 4] =
        [ScenarioName::Index500mb, ScenarioName::SmallLayers, ScenarioName::Warm, ScenarioName::LargeLayer];

    fn as_str(self) -> &'static str {
        match self {
            ScenarioName::Index500mb => "index-500mb",
            ScenarioName::SmallLayers => "small-layers",
            ScenarioName::Warm => "warm",
            ScenarioName::LargeLayer => "large-layer",
        }
    }
}

/// What a scenario's image looks like.
#[derive(Debug, Clone)]
struct ImageSpec {
    repo: String,
    /// `(os, architecture)` per platform of an OCI index; `None` for a single linux/amd64 manifest.
    platforms: Option<Vec<(&'static str, &'static str)>>,
    layers_per_platform: usize,
    /// Bytes of random content per layer (the blob is a gzip of stored blocks, a few bytes more).
    layer_size: u64,
}

impl ImageSpec {
    fn platform_count(&self) -> usize {
        self.platforms.as_ref().map_or(1, Vec::len)
    }

    fn layer_count(&self) -> usize {
        self.platform_count() * self.layers_per_platform
    }

    fn nominal_bytes(&self) -> u64 {
        self.layer_count() as u64 * self.layer_size
    }

    fn describe(&self) -> String {
        let layers = format!("{} × {}", self.layers_per_platform, human_bytes(self.layer_size));
        match &self.platforms {
            Some(p) => format!(
                "an OCI index of {} platforms ({}), {layers} layers each",
                p.len(),
                p.iter().map(|(os, arch)| format!("{os}/{arch}")).collect::<Vec<_>>().join(", ")
            ),
            None => format!("a single-platform OCI manifest (linux/amd64), {layers} layers"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    /// The median of the per-pair ratios imagegate/skopeo is at most this.
    Ratio(f64),
    /// The median of the worker's peak RSS is at most this many MiB.
    WorkerRssMib(u64),
}

#[derive(Debug, Clone)]
struct Scenario {
    name: ScenarioName,
    title: &'static str,
    image: ImageSpec,
    warm: bool,
    targets: Vec<Target>,
}

fn scenario(name: ScenarioName, quick: bool) -> Scenario {
    let index = |repo: &str, layers: usize, size: u64| ImageSpec {
        repo: repo.to_owned(),
        platforms: Some(vec![("linux", "amd64"), ("linux", "arm64")]),
        layers_per_platform: layers,
        layer_size: size,
    };
    let single = |repo: &str, layers: usize, size: u64| ImageSpec {
        repo: repo.to_owned(),
        platforms: None,
        layers_per_platform: layers,
        layer_size: size,
    };
    match name {
        ScenarioName::Index500mb => Scenario {
            name,
            title: "a two-platform OCI index of 500 MiB, cold",
            image: if quick { index("bench/index", 3, 4 * MIB) } else { index("bench/index", 10, 25 * MIB) },
            warm: false,
            targets: vec![Target::Ratio(0.75), Target::WorkerRssMib(48)],
        },
        ScenarioName::SmallLayers => Scenario {
            name,
            title: "60 layers of 1 MiB, cold",
            image: if quick { single("bench/small", 15, MIB) } else { single("bench/small", 60, MIB) },
            warm: false,
            targets: vec![Target::Ratio(0.4)],
        },
        ScenarioName::Warm => Scenario {
            name,
            title: "re-import of the unchanged 500 MiB index into a target that has it",
            image: if quick { index("bench/warm", 3, 4 * MIB) } else { index("bench/warm", 10, 25 * MIB) },
            warm: true,
            targets: vec![Target::Ratio(0.3)],
        },
        ScenarioName::LargeLayer => Scenario {
            name,
            title: "one 1 GiB layer, cold",
            image: if quick { single("bench/large", 1, 128 * MIB) } else { single("bench/large", 1, 1024 * MIB) },
            warm: false,
            targets: vec![Target::WorkerRssMib(48)],
        },
    }
}

/// The programs the bench runs.
#[derive(Debug)]
struct Bins {
    server: PathBuf,
    worker: PathBuf,
    skopeo: PathBuf,
    time: PathBuf,
    skopeo_version: String,
    registry_version: String,
}

/// What stays the same for every run of one invocation.
#[derive(Debug)]
struct Ctx {
    http: reqwest::Client,
    bins: Bins,
    /// Policy, registries.conf and an empty Docker config, and every run's data directory.
    work: tempfile::TempDir,
    worker_poll_secs: f64,
    copy_concurrency: Option<usize>,
    separate_worker: bool,
    /// Where `work` is: registries, data directories and temporary files all live there.
    storage: Storage,
}

impl Ctx {
    fn policy(&self) -> PathBuf {
        self.work.path().join("policy.json")
    }
    fn registries_conf(&self) -> PathBuf {
        self.work.path().join("registries.conf")
    }
    fn docker_config(&self) -> PathBuf {
        self.work.path().join("docker-config.json")
    }
}

/// One timed copy.
#[derive(Debug, Clone)]
struct Measurement {
    wall: Duration,
    /// Peak RSS in KiB: the worker's `VmHWM` for imagegate, `ru_maxrss` for skopeo.
    peak_rss_kib: u64,
    /// The worker's `VmHWM` before the import was posted (idle, after start-up); imagegate only.
    idle_rss_kib: Option<u64>,
    /// CPU time (user + system) of the copying process: the worker's during the import, skopeo's in all.
    cpu_secs: f64,
    /// CPU time the source and the target registry used during the run.
    registry_cpu_secs: (f64, f64),
    /// What the tool says it did with the blobs.
    detail: String,
    /// Where imagegate's time went, from the worker's log.
    phases: Option<Phases>,
    /// Registry requests by side and method, when counted.
    requests: Option<Requests>,
}

/// imagegate's wall time in parts: the `POST` itself, until the worker starts the attempt (its poll interval),
/// the copy (attempt started → `import succeeded`), and until the bench sees `ready` (the outcome's commit and
/// the status poll).
#[derive(Debug, Clone, Copy)]
struct Phases {
    post: f64,
    pickup: f64,
    copy: f64,
    seen: f64,
}

/// Requests by (`source` or `target`, method).
type Requests = std::collections::BTreeMap<(&'static str, String), usize>;

#[derive(Debug)]
struct ScenarioResult {
    scenario: Scenario,
    quick: bool,
    storage: Storage,
    pushed: Pushed,
    pairs: Vec<(Measurement, Measurement)>,
    /// The untimed pair with request counts (`--requests`).
    counted: Option<(Requests, Requests)>,
    /// `/proc/loadavg`'s 1-minute figure before and after the timed runs.
    load: (String, String),
    finished_at: String,
}

/// The machine and the versions, for the report.
#[derive(Debug)]
pub(crate) struct Machine {
    pub(crate) nproc: usize,
    pub(crate) cpu: String,
    pub(crate) memory: String,
    pub(crate) kernel: String,
    pub(crate) commit: String,
}

pub fn run(cmd: BenchCmd) -> Result<ExitCode> {
    match cmd {
        BenchCmd::Import(args) => import(args),
        BenchCmd::Registry(args) => registry::run(args),
        BenchCmd::Api(args) => crate::bench_api::run(args),
    }
}

fn import(args: ImportArgs) -> Result<ExitCode> {
    let root = workspace_root();
    let command_line =
        format!("cargo xtask {}", std::env::args().skip(1).map(|a| shell_quote(&a)).collect::<Vec<_>>().join(" "));
    let runs = args.runs.unwrap_or(if args.quick { 2 } else { 5 }) as usize;
    let mut names = if args.scenarios.is_empty() { ScenarioName::ALL.to_vec() } else { args.scenarios.clone() };
    names.sort();
    names.dedup();
    if !(args.worker_poll_secs > 0.0 && args.worker_poll_secs <= 60.0) {
        bail!("--worker-poll-secs must be more than 0 and at most 60");
    }

    header("checking tools (docker-registry, skopeo, GNU time)");
    let (skopeo, time) = ensure_tools()?;
    if interrupted() {
        bail!("interrupted");
    }
    let target_dir = cargo_target_dir(&root)?;
    build_release(&root, &target_dir, &["--bin", "imagegate-server", "--bin", "imagegate-worker"], args.no_build)?;
    let bins = Bins {
        server: existing(target_dir.join("release/imagegate-server"))?,
        worker: existing(target_dir.join("release/imagegate-worker"))?,
        skopeo_version: first_line_of(&skopeo, "--version")?,
        // "/usr/bin/docker-registry github.com/docker/distribution 2.8.2+ds1" → "docker-registry github.com/…"
        registry_version: {
            let line = first_line_of(&tools::find_registry().context("docker-registry vanished")?, "--version")?;
            match line.split_once(' ') {
                Some((program, rest)) => {
                    format!("{} {rest}", Path::new(program).file_name().unwrap_or_default().to_string_lossy())
                }
                None => line,
            }
        },
        skopeo,
        time,
    };
    let machine = machine(&root);
    eprintln!(
        "{} CPUs ({}), {} RAM, Linux {}; {}; {}",
        machine.nproc, machine.cpu, machine.memory, machine.kernel, bins.skopeo_version, bins.registry_version
    );

    let ctx = setup(bins, &args)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    let results = runtime.block_on(async {
        let mut results = Vec::new();
        for &name in &names {
            if interrupted() {
                bail!("interrupted");
            }
            let sc = scenario(name, args.quick);
            header(&format!("scenario {}: {} ({runs} runs of each tool)", name.as_str(), sc.image.describe()));
            let result = run_scenario(&ctx, sc, runs, args.quick, args.requests)
                .await
                .with_context(|| format!("scenario {}", name.as_str()))?;
            println!("\n{}\n", render_section(&result, &ctx.bins, &machine, &command_line));
            results.push(result);
        }
        anyhow::Ok(results)
    });
    // Every registry, server, worker and skopeo of a failed scenario was killed when its future was dropped.
    drop(runtime);
    let results = results?;

    if args.quick || args.no_doc {
        eprintln!("{}: {DOC_PATH} is left as it is", if args.quick { "--quick" } else { "--no-doc" });
    } else {
        let path = root.join(DOC_PATH);
        let existing = match fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let sections: Vec<(ScenarioName, String)> =
            results.iter().map(|r| (r.scenario.name, render_section(r, &ctx.bins, &machine, &command_line))).collect();
        fs::write(&path, merge_doc(existing.as_deref(), &sections))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote the results into {}", path.display());
    }
    drop(ctx);
    Ok(ExitCode::SUCCESS)
}

// ---- set-up ------------------------------------------------------------------------------------

/// Finds `skopeo` and GNU `time` (and checks for `docker-registry`); installs what is missing with apt-get
/// when root.
fn ensure_tools() -> Result<(PathBuf, PathBuf)> {
    let skopeo = || Some(PathBuf::from("/usr/bin/skopeo")).filter(|p| p.is_file()).or_else(|| tools::which("skopeo"));
    // GNU time, not the shell keyword: only it has -f and -o.
    let time = || {
        [PathBuf::from("/usr/bin/time")]
            .into_iter()
            .chain(tools::which("time"))
            .find(|p| first_line_of(p, "--version").is_ok_and(|v| v.contains("GNU")))
    };
    let mut missing = Vec::new();
    if tools::find_registry().is_none() {
        missing.push("docker-registry");
    }
    if skopeo().is_none() {
        missing.push("skopeo");
    }
    if time().is_none() {
        missing.push("time");
    }
    if !missing.is_empty() {
        let pkgs = missing.join(" ");
        if !tools::is_root() {
            bail!(
                "missing: {pkgs}; install the Debian package(s) (`sudo apt-get install -y --no-install-recommends \
                 {pkgs}`), or run `cargo xtask` as root and it installs them"
            );
        }
        eprintln!("missing: {pkgs}; installing with apt-get");
        tools::apt_install(&missing)?;
    }
    match (tools::find_registry(), skopeo(), time()) {
        (Some(_), Some(skopeo), Some(time)) => Ok((skopeo, time)),
        _ => {
            bail!("docker-registry, skopeo or GNU time is still missing after `apt-get install {}`", missing.join(" "))
        }
    }
}

fn setup(mut bins: Bins, args: &ImportArgs) -> Result<Ctx> {
    let root = args.storage.root()?;
    let work = tempfile::Builder::new()
        .prefix("imagegate-bench-")
        .tempdir_in(&root)
        .with_context(|| format!("creating a temporary directory in {}", root.display()))?;
    // Copies of the binaries, so that a build running meanwhile (others share the target directory) cannot
    // change what is measured halfway through.
    let bin_dir = work.path().join("bin");
    fs::create_dir(&bin_dir).context("creating a directory for the binaries")?;
    for path in [&mut bins.server, &mut bins.worker] {
        let copy = bin_dir.join(path.file_name().context("a binary without a name")?);
        fs::copy(&*path, &copy).with_context(|| format!("copying {}", path.display()))?;
        *path = copy;
    }
    let write = |name: &str, text: &str| {
        fs::write(work.path().join(name), text).with_context(|| format!("writing {}", work.path().join(name).display()))
    };
    // skopeo refuses to copy without a policy; a fresh machine may have no /etc/containers/policy.json.
    write("policy.json", "{\"default\": [{\"type\": \"insecureAcceptAnything\"}]}\n")?;
    // No mirrors, no search registries, nothing from /etc/containers.
    write("registries.conf", "")?;
    // No credentials for imagegate either: the registries are anonymous.
    write("docker-config.json", "{\"auths\": {}}\n")?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .context("building an HTTP client")?;
    Ok(Ctx {
        http,
        bins,
        work,
        worker_poll_secs: args.worker_poll_secs,
        copy_concurrency: args.copy_concurrency,
        separate_worker: args.separate_worker,
        storage: args.storage,
    })
}

/// Cargo's target directory, as `cargo metadata` says (it honours `CARGO_TARGET_DIR` and config).
/// `cargo build --release -p imagegate` of `targets` (such as `["--bin", "imagegate-server"]`), or, with
/// `no_build`, a line saying which binaries are used as they are.
pub(crate) fn build_release(root: &Path, target_dir: &Path, targets: &[&str], no_build: bool) -> Result<()> {
    if no_build {
        eprintln!("--no-build: using the binaries in {}", target_dir.join("release").display());
        return Ok(());
    }
    header(&format!("cargo build --release -p imagegate {}", targets.join(" ")));
    let mut build = std::process::Command::new(cargo());
    build.args(["build", "--release", "-p", "imagegate"]).args(targets).current_dir(root).stdin(Stdio::null());
    let status = run_interruptibly(&mut build).context("running cargo build")?;
    if interrupted() {
        bail!("interrupted");
    }
    if !status.success() {
        bail!("cargo build --release failed ({status})");
    }
    Ok(())
}

pub(crate) fn cargo_target_dir(root: &Path) -> Result<PathBuf> {
    let out = std::process::Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed ({})", out.status);
    }
    let meta: Value = serde_json::from_slice(&out.stdout).context("reading cargo metadata's output")?;
    meta["target_directory"].as_str().map(PathBuf::from).context("cargo metadata names no target_directory")
}

pub(crate) fn existing(path: PathBuf) -> Result<PathBuf> {
    if path.is_file() { Ok(path) } else { bail!("{} does not exist; build it or drop --no-build", path.display()) }
}

/// The first line `program arg` prints (on stdout or stderr).
pub(crate) fn first_line_of(program: &Path, arg: &str) -> Result<String> {
    let out = std::process::Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} {arg}", program.display()))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

pub(crate) fn machine(root: &Path) -> Machine {
    let read = |path: &str| fs::read_to_string(path).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or_else(|| "unknown".into(), |kib| format!("{:.1} GiB", kib as f64 / (1024.0 * 1024.0)));
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = match git(&["rev-parse", "--short", "HEAD"]) {
        Some(c) if git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty()) => {
            format!("{c} with uncommitted changes")
        }
        Some(c) => c,
        None => "unknown commit".into(),
    };
    Machine {
        nproc: std::thread::available_parallelism().map_or(1, usize::from),
        cpu,
        memory,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        commit,
    }
}

pub(crate) fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Fails when the file system of `dir` has less than `needed` bytes free.
fn check_disk(dir: &Path, needed: u64) -> Result<()> {
    let out =
        std::process::Command::new("df").arg("-Pk").arg(dir).stdin(Stdio::null()).output().context("running df")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(free_kib) =
        text.lines().nth(1).and_then(|l| l.split_whitespace().nth(3)).and_then(|v| v.parse::<u64>().ok())
    else {
        eprintln!("xtask: warning: cannot read the free space of {} from df; going on", dir.display());
        return Ok(());
    };
    if free_kib * 1024 < needed {
        bail!(
            "{} has {} free; this scenario needs about {} (its source registry and one target at a time)",
            dir.display(),
            human_bytes(free_kib * 1024),
            human_bytes(needed)
        );
    }
    Ok(())
}

// ---- a scenario --------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Imagegate,
    Skopeo,
}

async fn run_scenario(ctx: &Ctx, sc: Scenario, runs: usize, quick: bool, requests: bool) -> Result<ScenarioResult> {
    // The source's copy, one target's, and room for upload sessions and logs.
    check_disk(ctx.work.path(), 2 * sc.image.nominal_bytes() + (1 << 30))?;
    let source = Distribution::try_start_in(ctx.work.path(), None).await.context("starting the source registry")?;
    eprintln!("source registry: {}", source.host());
    let started = Instant::now();
    let pushed =
        push_image(&ctx.http, &source, &sc.image).await.context("pushing the image into the source registry")?;
    eprintln!(
        "pushed {}:{TAG} ({}, {} blobs, {}) in {:.1} s",
        pushed.repo,
        pushed.digest,
        pushed.blobs,
        human_bytes(pushed.bytes),
        started.elapsed().as_secs_f64()
    );
    let source_ref = format!("{}/{}:{TAG}", source.host(), pushed.repo);

    let warm_target = if sc.warm {
        let target = Distribution::try_start_in(ctx.work.path(), None).await.context("starting the target registry")?;
        eprintln!("warm: filling the target {} with one untimed imagegate import …", target.host());
        let fill = run_imagegate(ctx, &source_ref, &target, false).await.context("filling the target")?;
        verify_copy(&ctx.http, &target, &pushed).await.context("checking the filled target")?;
        eprintln!("filled in {:.2} s ({})", fill.wall.as_secs_f64(), fill.detail);
        Some(target)
    } else {
        None
    };

    // One untimed run of each tool first: the first copy of an invocation was a third slower than the rest
    // (its target registry spent more CPU), and imagegate, which goes first, would pay for it alone.
    eprintln!("warm-up: one untimed run of each tool …");
    for tool in [Tool::Imagegate, Tool::Skopeo] {
        measure(ctx, tool, &source, &source_ref, &pushed, warm_target.as_ref(), false)
            .await
            .with_context(|| format!("{tool:?}, warm-up run"))?;
    }
    let load_before = loadavg();
    let mut pairs = Vec::new();
    for run in 1..=runs {
        let ig = measure(ctx, Tool::Imagegate, &source, &source_ref, &pushed, warm_target.as_ref(), false)
            .await
            .with_context(|| format!("imagegate, run {run}"))?;
        let sk = measure(ctx, Tool::Skopeo, &source, &source_ref, &pushed, warm_target.as_ref(), false)
            .await
            .with_context(|| format!("skopeo, run {run}"))?;
        eprintln!(
            "run {run}/{runs}: imagegate {} (worker peak RSS {}, CPU {}, registries' CPU {} + {}; {}; POST · to job \
             start · copy · to seen: {}), skopeo {} (peak RSS {}, CPU {}, registries' CPU {} + {}; {}), ratio {:.2}",
            secs(ig.wall.as_secs_f64()),
            mib(ig.peak_rss_kib),
            cpu(ig.cpu_secs),
            cpu(ig.registry_cpu_secs.0),
            cpu(ig.registry_cpu_secs.1),
            ig.detail,
            ig.phases.as_ref().map_or_else(|| "?".into(), phases_line),
            secs(sk.wall.as_secs_f64()),
            mib(sk.peak_rss_kib),
            cpu(sk.cpu_secs),
            cpu(sk.registry_cpu_secs.0),
            cpu(sk.registry_cpu_secs.1),
            sk.detail,
            ig.wall.as_secs_f64() / sk.wall.as_secs_f64()
        );
        pairs.push((ig, sk));
    }
    let load_after = loadavg();
    let counted = if requests {
        eprintln!("--requests: one more run of each tool, untimed, with debug logs …");
        let count = |m: Measurement| m.requests.unwrap_or_default();
        let ig = measure(ctx, Tool::Imagegate, &source, &source_ref, &pushed, warm_target.as_ref(), true)
            .await
            .context("imagegate, counting requests")?;
        let sk = measure(ctx, Tool::Skopeo, &source, &source_ref, &pushed, warm_target.as_ref(), true)
            .await
            .context("skopeo, counting requests")?;
        let counted = (count(ig), count(sk));
        eprintln!("requests: imagegate {}; skopeo {}", requests_line(&counted.0), requests_line(&counted.1));
        Some(counted)
    } else {
        None
    };
    drop(warm_target);
    drop(source);
    Ok(ScenarioResult {
        scenario: sc,
        quick,
        storage: ctx.storage,
        pushed,
        pairs,
        counted,
        load: (load_before, load_after),
        finished_at: now_utc(),
    })
}

/// One timed copy by `tool`, into a fresh target registry (or the warm one), checked afterwards.
async fn measure(
    ctx: &Ctx,
    tool: Tool,
    source: &Distribution,
    source_ref: &str,
    pushed: &Pushed,
    warm: Option<&Distribution>,
    count_requests: bool,
) -> Result<Measurement> {
    if interrupted() {
        bail!("interrupted");
    }
    let fresh: Distribution;
    let target = match warm {
        Some(target) => target,
        None => {
            fresh = Distribution::try_start_in(ctx.work.path(), None).await.context("starting a target registry")?;
            &fresh
        }
    };
    let (source_pid, target_pid) = (registry_pid(source)?, registry_pid(target)?);
    let (source_cpu, target_cpu) = (cpu_secs(source_pid)?, cpu_secs(target_pid)?);
    let mut measured = match tool {
        Tool::Imagegate => run_imagegate(ctx, source_ref, target, count_requests).await?,
        Tool::Skopeo => run_skopeo(ctx, source_ref, target, &pushed.repo, count_requests).await?,
    };
    measured.registry_cpu_secs = (cpu_secs(source_pid)? - source_cpu, cpu_secs(target_pid)? - target_cpu);
    verify_copy(&ctx.http, target, pushed).await.context("checking the copy")?;
    Ok(measured)
    // A fresh target registry is killed and its storage removed here.
}

// ---- imagegate ---------------------------------------------------------------------------------

/// A child process that is killed when dropped, with its output in a log file.
#[derive(Debug)]
pub(crate) struct Proc {
    name: &'static str,
    child: tokio::process::Child,
    log: PathBuf,
    /// Whether the process leads a process group of its own, killed as a whole.
    group: bool,
}

impl Proc {
    pub(crate) fn spawn(name: &'static str, cmd: tokio::process::Command, log: PathBuf) -> Result<Proc> {
        Self::spawn_as(name, cmd, log, false)
    }

    /// Starts a wrapper (GNU time) and what it runs in a process group of their own, so that both are killed:
    /// a wrapper killed alone leaves its child running.
    fn spawn_group(name: &'static str, cmd: tokio::process::Command, log: PathBuf) -> Result<Proc> {
        Self::spawn_as(name, cmd, log, true)
    }

    fn spawn_as(name: &'static str, mut cmd: tokio::process::Command, log: PathBuf, group: bool) -> Result<Proc> {
        let out = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("cloning a file handle")?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err).kill_on_drop(true);
        if group {
            cmd.process_group(0);
        }
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        Ok(Proc { name, child, log, group })
    }

    pub(crate) fn pid(&self) -> Result<u32> {
        self.child.id().with_context(|| format!("{} has exited", self.name))
    }

    pub(crate) fn log(&self) -> String {
        strip_ansi(&fs::read_to_string(&self.log).unwrap_or_default())
    }

    pub(crate) fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Fails when the process has exited.
    pub(crate) fn check(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().with_context(|| format!("checking on {}", self.name))? {
            bail!("{} exited ({status}); the end of its log:\n{}", self.name, self.log_tail());
        }
        Ok(())
    }

    /// Waits for the process to exit, at most [`RUN_TIMEOUT`]; Ctrl-C ends the wait.
    async fn wait(&mut self) -> Result<ExitStatus> {
        let deadline = Instant::now() + RUN_TIMEOUT;
        loop {
            tokio::select! {
                status = self.child.wait() => return status.with_context(|| format!("waiting for {}", self.name)),
                () = tokio::time::sleep(Duration::from_millis(100)) => {
                    if interrupted() {
                        bail!("interrupted");
                    }
                    if Instant::now() > deadline {
                        bail!("{} did not finish within {RUN_TIMEOUT:?}", self.name);
                    }
                }
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let (true, Some(pid)) = (self.group, self.child.id()) {
            // The whole group, the wrapper's child too. (`id()` is None once the wrapper is reaped, which
            // happens only after it waited for its child.)
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // SIGKILL, then reap it (briefly) so that it no longer writes into directories about to be removed.
        if self.child.start_kill().is_err() {
            return; // Already reaped.
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Keeps the developer's environment out of a child: imagegate's variables, proxies (every address here is
/// loopback), log levels, registry credentials and container configuration.
pub(crate) fn clean_env(cmd: &mut tokio::process::Command) {
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy().to_ascii_uppercase();
        if k.starts_with("IMAGEGATE_")
            || k.ends_with("_PROXY")
            || k.starts_with("CONTAINERS_")
            || matches!(k.as_str(), "RUST_LOG" | "DOCKER_CONFIG" | "REGISTRY_AUTH_FILE")
        {
            cmd.env_remove(&key);
        }
    }
    cmd.env("NO_COLOR", "1");
}

async fn run_imagegate(
    ctx: &Ctx,
    source_ref: &str,
    target: &Distribution,
    count_requests: bool,
) -> Result<Measurement> {
    let dir = tempfile::Builder::new()
        .prefix("imagegate-")
        .tempdir_in(ctx.work.path())
        .context("creating a data directory")?;
    let database = format!("sqlite://{}", dir.path().join("imagegate.db").display());
    let password = random_hex(12);
    let debug = |level: &str| if count_requests { format!("{level},registry_client=debug") } else { level.to_owned() };
    let server_level = if ctx.separate_worker { debug("warn") } else { debug("info") };
    let (server, api) = start_server(ctx, dir.path(), &database, &target.url(), &password, &server_level).await?;
    let token = sign_in(&ctx.http, &api, &password).await?;
    // The process that runs the import: a separate worker, or the server with its embedded worker.
    let (mut worker, mut server) = if ctx.separate_worker {
        (start_worker(ctx, dir.path(), &database, &target.url(), &debug("info")).await?, Some(server))
    } else {
        (server, None)
    };
    let pid = worker.pid()?;
    // Let start-up settle, then post at a random moment of the worker's poll cycle, as a real request would
    // arrive: posting right after start-up would always land at the same point of it.
    let phase = rand::random::<f64>() * ctx.worker_poll_secs * 1.2;
    tokio::time::sleep(Duration::from_millis(200) + Duration::from_secs_f64(phase)).await;
    worker.check()?;
    let idle = vm_hwm_kib(pid)?;
    let cpu_before = cpu_secs(pid)?;

    let posted_at = time::OffsetDateTime::now_utc();
    let started = Instant::now();
    let answer = ctx
        .http
        .post(format!("{api}/api/v1/images:import"))
        .bearer_auth(&token)
        .json(&json!({ "source": source_ref }))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .context("POST /api/v1/images:import")?;
    let status = answer.status();
    let answer: Value = answer.json().await.context("reading the answer to the import")?;
    let post = started.elapsed().as_secs_f64();
    if !status.is_success() || answer["state"] != 1 {
        bail!("POST /api/v1/images:import answered {status} {answer}");
    }
    let list = format!("{api}/api/v1/images?flat=false&page_size=100");
    let mut polls = 0u64;
    loop {
        if interrupted() {
            bail!("interrupted");
        }
        if started.elapsed() > RUN_TIMEOUT {
            bail!(
                "the import did not finish within {RUN_TIMEOUT:?}; the worker's log ends with:\n{}",
                worker.log_tail()
            );
        }
        let listing: Value = ctx
            .http
            .get(&list)
            .bearer_auth(&token)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .context("GET /api/v1/images")?
            .json()
            .await
            .context("reading GET /api/v1/images")?;
        let statuses = artifact_statuses(&listing);
        if !statuses.is_empty() && statuses.iter().all(|s| s == "ready") {
            break;
        }
        if statuses.iter().any(|s| s == "failed") {
            bail!("the import failed; the worker's log ends with:\n{}", worker.log_tail());
        }
        polls += 1;
        if polls.is_multiple_of(25) {
            worker.check()?;
            if let Some(server) = server.as_mut() {
                server.check()?;
            }
            if worker.log().contains("will retry") {
                bail!(
                    "an import attempt failed and is being retried (which would time the backoff); the worker's \
                     log ends with:\n{}",
                    worker.log_tail()
                );
            }
        }
        tokio::time::sleep(STATUS_POLL).await;
    }
    let wall = started.elapsed();
    let seen_at = time::OffsetDateTime::now_utc();
    let peak = vm_hwm_kib(pid)?;
    let cpu = cpu_secs(pid)? - cpu_before;
    let log = worker.log();
    let detail = import_detail(&log);
    let phases = phases(&log, posted_at, post, seen_at);
    let requests = count_requests.then(|| {
        let mut counts = Requests::new();
        for log in [server.as_ref().map(Proc::log).unwrap_or_default(), log] {
            for (side, method) in imagegate_requests(&log, target) {
                *counts.entry((side, method)).or_default() += 1;
            }
        }
        counts
    });
    drop(worker);
    drop(server);
    Ok(Measurement {
        wall,
        peak_rss_kib: peak,
        idle_rss_kib: Some(idle),
        cpu_secs: cpu,
        registry_cpu_secs: (0.0, 0.0),
        detail,
        phases,
        requests,
    })
}

/// The process of a registry: the one whose command line names its config file (test-support keeps the pid
/// to itself).
fn registry_pid(registry: &Distribution) -> Result<u32> {
    let storage = registry.storage_dir();
    let config = storage.parent().context("a storage directory without a parent")?.join("config.yml");
    let config = config.to_string_lossy();
    fs::read_dir("/proc")
        .context("reading /proc")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| cmd.split(|&b| b == 0).any(|arg| arg == config.as_bytes()))
        })
        .with_context(|| format!("no process of the registry {} in /proc", registry.host()))
}

/// The CPU time (user + system) a live process has used so far, from `/proc/<pid>/stat`.
fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("reading /proc/{pid}/stat"))?;
    // After the command name in parentheses: state is field 3, utime 14 and stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("a /proc/<pid>/stat without a command name")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<u64>().ok()).context("a short /proc/<pid>/stat");
    Ok((ticks(14)? + ticks(15)?) as f64 / clock_ticks() as f64)
}

/// `getconf CLK_TCK`, the unit of `/proc/<pid>/stat`'s times (100 on Linux unless configured otherwise).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .stdin(Stdio::null())
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// The timestamp at the start of a log line of the worker.
fn log_time(line: &str) -> Option<time::OffsetDateTime> {
    let word = line.split_whitespace().next()?;
    time::OffsetDateTime::parse(word, &time::format_description::well_known::Rfc3339).ok()
}

fn phases(log: &str, posted_at: time::OffsetDateTime, post: f64, seen_at: time::OffsetDateTime) -> Option<Phases> {
    let at = |needle: &str| log.lines().rev().find(|l| l.contains(needle)).and_then(log_time);
    let (started, succeeded) = (at("import attempt started")?, at("import succeeded")?);
    Some(Phases {
        post,
        pickup: (started - posted_at).as_seconds_f64(),
        copy: (succeeded - started).as_seconds_f64(),
        seen: (seen_at - succeeded).as_seconds_f64(),
    })
}

/// The registry requests in imagegate's debug log (`registry answered registry=… operation="HEAD blob" …`).
fn imagegate_requests(log: &str, target: &Distribution) -> Vec<(&'static str, String)> {
    let target = target.host();
    log.lines()
        .filter(|l| l.contains("registry answered"))
        .filter_map(|l| {
            let registry = l.split_whitespace().find_map(|w| w.strip_prefix("registry="))?;
            let operation = l.split_once("operation=")?.1.trim_start_matches('"');
            let method = operation.split_whitespace().next()?.trim_end_matches('"');
            Some((if registry == target { "target" } else { "source" }, method.to_owned()))
        })
        .collect()
}

/// The registry requests in skopeo's `--debug` output (`level=debug msg="HEAD http://127.0.0.1:…/v2/…"`);
/// its HTTPS probes of the plain-HTTP registries are left out.
fn skopeo_requests(log: &str, target: &Distribution) -> Vec<(&'static str, String)> {
    let target = format!("http://{}/", target.host());
    log.lines()
        .filter_map(|l| {
            let msg = l.split_once("msg=\"")?.1;
            let (method, url) = msg.split_once(' ')?;
            let known = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"].contains(&method);
            (known && url.starts_with("http://"))
                .then(|| (if url.starts_with(&target) { "target" } else { "source" }, method.to_owned()))
        })
        .collect()
}

/// "source GET 23, HEAD 1; target HEAD 22, POST 22, PUT 25 (93 in all)"
fn requests_line(requests: &Requests) -> String {
    let side = |name: &str| {
        let parts: Vec<String> =
            requests.iter().filter(|((s, _), _)| *s == name).map(|((_, m), n)| format!("{m} {n}")).collect();
        if parts.is_empty() { format!("{name} none") } else { format!("{name} {}", parts.join(", ")) }
    };
    format!("{}; {} ({} in all)", side("source"), side("target"), requests.values().sum::<usize>())
}

/// Every artifact's `status` in a grouped `GET /api/v1/images`.
fn artifact_statuses(listing: &Value) -> Vec<String> {
    listing["images"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group["artifacts"].as_array().into_iter().flatten())
        .filter_map(|a| a["status"].as_str().map(str::to_owned))
        .collect()
}

async fn start_server(
    ctx: &Ctx,
    data_dir: &Path,
    database: &str,
    internal: &str,
    password: &str,
    log_level: &str,
) -> Result<(Proc, String)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = free_port()?;
        let mut cmd = tokio::process::Command::new(&ctx.bins.server);
        clean_env(&mut cmd);
        cmd.arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--database-url", database, "--internal-registry", internal])
            .arg("--registry-config")
            .arg(ctx.docker_config())
            .env("IMAGEGATE_ADMIN_PASSWORD", password)
            .env("RUST_LOG", log_level);
        if ctx.separate_worker {
            cmd.arg("--no-worker");
        } else {
            cmd.args(["--worker-poll-secs", &ctx.worker_poll_secs.to_string()]);
            if let Some(n) = ctx.copy_concurrency {
                cmd.args(["--copy-concurrency", &n.to_string()]);
            }
        }
        let mut server = Proc::spawn("imagegate-server", cmd, data_dir.join("server.log"))?;
        let api = format!("http://127.0.0.1:{port}");
        match wait_ready(&ctx.http, &mut server, &format!("{api}/readyz")).await {
            Ok(()) => return Ok((server, api)),
            // Another process took the port between our look and the server's bind.
            Err(_) if attempt < 3 && server.log().contains("cannot listen") => continue,
            Err(e) => return Err(e),
        }
    }
}

pub(crate) async fn wait_ready(http: &reqwest::Client, proc: &mut Proc, url: &str) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        proc.check()?;
        if interrupted() {
            bail!("interrupted");
        }
        if let Ok(resp) = http.get(url).timeout(Duration::from_secs(2)).send().await
            && resp.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{} did not answer {url} within {START_TIMEOUT:?}; its log:\n{}", proc.name, proc.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An API token for `admin`, so that polling costs a SHA-256 rather than an Argon2 check per request.
pub(crate) async fn sign_in(http: &reqwest::Client, api: &str, password: &str) -> Result<String> {
    let resp = http
        .post(format!("{api}/api/v1/auth/token"))
        .json(&json!({ "username": "admin", "password": password, "name": "bench" }))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .context("POST /api/v1/auth/token")?;
    let status = resp.status();
    let body: Value = resp.json().await.context("reading the token")?;
    match body["token"].as_str() {
        Some(token) if status.is_success() => Ok(token.to_owned()),
        _ => bail!("POST /api/v1/auth/token answered {status} {body}"),
    }
}

async fn start_worker(ctx: &Ctx, data_dir: &Path, database: &str, internal: &str, log_level: &str) -> Result<Proc> {
    let mut cmd = tokio::process::Command::new(&ctx.bins.worker);
    clean_env(&mut cmd);
    cmd.args(["--database-url", database, "--internal-registry", internal])
        .args(["--worker-poll-secs", &ctx.worker_poll_secs.to_string()])
        .arg("--registry-config")
        .arg(ctx.docker_config())
        .env("RUST_LOG", log_level);
    if let Some(n) = ctx.copy_concurrency {
        cmd.args(["--copy-concurrency", &n.to_string()]);
    }
    let mut worker = Proc::spawn("imagegate-worker", cmd, data_dir.join("worker.log"))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        worker.check()?;
        if interrupted() {
            bail!("interrupted");
        }
        if worker.log().contains("worker started") {
            return Ok(worker);
        }
        if Instant::now() > deadline {
            bail!("imagegate-worker did not start within {START_TIMEOUT:?}; its log:\n{}", worker.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The peak resident set size of a live process, in KiB.
fn vm_hwm_kib(pid: u32) -> Result<u64> {
    let status =
        fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmHWM in /proc/{pid}/status"))
}

/// "copied 20 (500 MiB), skipped 0, mounted 0", from the worker's `import succeeded` line.
fn import_detail(log: &str) -> String {
    let Some(line) = log.lines().rev().find(|l| l.contains("import succeeded")) else {
        return "no `import succeeded` line in the worker's log".into();
    };
    let field = |name: &str| {
        line.split_whitespace().find_map(|w| w.strip_prefix(name).and_then(|r| r.strip_prefix('='))).unwrap_or("?")
    };
    let bytes = field("bytes").parse::<u64>().map_or_else(|_| "?".into(), human_bytes);
    format!("copied {} ({bytes}), skipped {}, mounted {}", field("copied"), field("skipped"), field("mounted"))
}

// ---- skopeo ------------------------------------------------------------------------------------

async fn run_skopeo(
    ctx: &Ctx,
    source_ref: &str,
    target: &Distribution,
    repo: &str,
    count_requests: bool,
) -> Result<Measurement> {
    let dir = tempfile::Builder::new().prefix("skopeo-").tempdir_in(ctx.work.path()).context("creating a directory")?;
    let rss_file = dir.path().join("maxrss");
    let mut cmd = tokio::process::Command::new(&ctx.bins.time);
    clean_env(&mut cmd);
    cmd.env("CONTAINERS_REGISTRIES_CONF", ctx.registries_conf())
        .args(["-f", "%M %U %S", "-o"])
        .arg(&rss_file)
        .arg(&ctx.bins.skopeo)
        .arg("--policy")
        .arg(ctx.policy())
        .arg("--tmpdir")
        .arg(dir.path())
        .args(count_requests.then_some("--debug"))
        .args(["copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .arg(format!("docker://{source_ref}"))
        .arg(format!("docker://{}/{repo}:{TAG}", target.host()));
    let started = Instant::now();
    let mut skopeo = Proc::spawn_group("skopeo", cmd, dir.path().join("skopeo.log"))?;
    let status = skopeo.wait().await?;
    let wall = started.elapsed();
    if !status.success() {
        bail!("skopeo copy failed ({status}):\n{}", skopeo.log_tail());
    }
    let rss = fs::read_to_string(&rss_file).with_context(|| format!("reading {}", rss_file.display()))?;
    // "<max RSS in KiB> <user seconds> <system seconds>" on the last line.
    let (peak, cpu) = rss
        .lines()
        .rev()
        .find_map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [kib, user, sys] => Some((kib.parse::<u64>().ok()?, user.parse::<f64>().ok()? + sys.parse::<f64>().ok()?)),
            _ => None,
        })
        .with_context(|| format!("GNU time wrote no maximum RSS and CPU times: {rss:?}"))?;
    // Without a terminal skopeo names each blob once ("Copying blob …", "Copying config …") and does not say
    // whether it skipped it.
    let log = skopeo.log();
    let blobs = log.lines().filter(|l| l.starts_with("Copying blob") || l.starts_with("Copying config")).count();
    let detail = format!("{blobs} blobs");
    let requests = count_requests.then(|| {
        let mut counts = Requests::new();
        for (side, method) in skopeo_requests(&log, target) {
            *counts.entry((side, method)).or_default() += 1;
        }
        counts
    });
    Ok(Measurement {
        wall,
        peak_rss_kib: peak,
        idle_rss_kib: None,
        cpu_secs: cpu,
        registry_cpu_secs: (0.0, 0.0),
        detail,
        phases: None,
        requests,
    })
}

// ---- images ------------------------------------------------------------------------------------

/// What was pushed into the source registry.
#[derive(Debug, Clone)]
struct Pushed {
    repo: String,
    /// Of the manifest or index under [`TAG`].
    digest: String,
    /// The platform manifests of an index.
    children: Vec<String>,
    blobs: usize,
    bytes: u64,
}

#[derive(Debug)]
struct PlatformManifest {
    digest: String,
    bytes: Vec<u8>,
    blobs: usize,
    size: u64,
}

/// A generated layer: the blob's digest and size, and the digest of its content (the `diff_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layer {
    digest: String,
    size: u64,
    diff_id: String,
}

async fn push_image(http: &reqwest::Client, registry: &Distribution, spec: &ImageSpec) -> Result<Pushed> {
    let base = registry.url();
    // Random per invocation, so nothing (skopeo's blob-info cache included) has seen these blobs before.
    let nonce = rand::rng().next_u64();
    match &spec.platforms {
        None => {
            let m = push_platform(http, &base, spec, nonce, 0, "linux", "amd64").await?;
            put_manifest(http, &base, &spec.repo, TAG, OCI_MANIFEST, &m.bytes).await?;
            Ok(Pushed {
                repo: spec.repo.clone(),
                digest: m.digest,
                children: Vec::new(),
                blobs: m.blobs,
                bytes: m.size,
            })
        }
        Some(platforms) => {
            let (mut entries, mut children, mut blobs, mut bytes) = (Vec::new(), Vec::new(), 0, 0);
            for (i, (os, arch)) in platforms.iter().enumerate() {
                let m = push_platform(http, &base, spec, nonce, i, os, arch).await?;
                put_manifest(http, &base, &spec.repo, &m.digest, OCI_MANIFEST, &m.bytes).await?;
                entries.push(json!({
                    "mediaType": OCI_MANIFEST,
                    "digest": m.digest,
                    "size": m.bytes.len(),
                    "platform": { "os": os, "architecture": arch },
                }));
                children.push(m.digest);
                blobs += m.blobs;
                bytes += m.size;
            }
            let mut index = serde_json::to_vec_pretty(
                &json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries }),
            )?;
            index.push(b'\n');
            let digest = put_manifest(http, &base, &spec.repo, TAG, OCI_INDEX, &index).await?;
            Ok(Pushed { repo: spec.repo.clone(), digest, children, blobs, bytes })
        }
    }
}

async fn push_platform(
    http: &reqwest::Client,
    base: &str,
    spec: &ImageSpec,
    nonce: u64,
    platform: usize,
    os: &str,
    arch: &str,
) -> Result<PlatformManifest> {
    let (mut layers, mut diff_ids, mut size) = (Vec::new(), Vec::new(), 0);
    for l in 0..spec.layers_per_platform {
        if interrupted() {
            bail!("interrupted");
        }
        let seed = seed_for(nonce, &spec.repo, platform, l);
        let layer = push_layer(http, base, &spec.repo, seed, spec.layer_size)
            .await
            .with_context(|| format!("pushing layer {} of {os}/{arch}", l + 1))?;
        size += layer.size;
        layers.push(json!({ "mediaType": OCI_LAYER, "digest": layer.digest, "size": layer.size }));
        diff_ids.push(layer.diff_id);
    }
    let config = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": os,
        "created": "2025-01-15T10:00:00Z",
        "config": { "Env": ["PATH=/usr/bin"], "Labels": { "org.imagegate.bench": spec.repo } },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))?;
    let config_digest = push_small_blob(http, base, &spec.repo, &config).await.context("pushing a config")?;
    size += config.len() as u64;
    let mut manifest = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len() },
        "layers": layers,
    }))?;
    manifest.push(b'\n');
    Ok(PlatformManifest { digest: sha256_digest(&manifest), bytes: manifest, blobs: layers.len() + 1, size })
}

fn seed_for(nonce: u64, repo: &str, platform: usize, layer: usize) -> u64 {
    let hash = Sha256::digest(format!("{nonce}/{repo}/{platform}/{layer}").as_bytes());
    u64::from_le_bytes(hash[..8].try_into().unwrap_or_default())
}

fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Streams a generated layer into the registry: `POST` an upload, `PATCH` the stream (its digest computed on
/// the way), `PUT ?digest=`. Nothing but one chunk of about 1 MiB is in memory at a time.
async fn push_layer(http: &reqwest::Client, base: &str, repo: &str, seed: u64, len: u64) -> Result<Layer> {
    let location = start_upload(http, base, repo).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    let generator = tokio::task::spawn_blocking(move || {
        let result = generate_layer(seed, len, |chunk| {
            tx.blocking_send(Ok(chunk)).map_err(|_| anyhow!("the upload stopped reading"))
        });
        if let Err(e) = &result {
            // Breaks the request body off, so that a broken generator never completes an upload.
            let _ = tx.blocking_send(Err(io::Error::other(format!("{e:#}"))));
        }
        result
    });
    let body = reqwest::Body::wrap_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    let patch = http
        .patch(&location)
        .header("content-type", "application/octet-stream")
        .body(body)
        .timeout(RUN_TIMEOUT)
        .send()
        .await;
    let generated = generator.await.context("the layer generator panicked")?;
    if interrupted() {
        bail!("interrupted");
    }
    let patch = patch.context("PATCH of the upload")?;
    let layer = generated?;
    let location = expect_status(patch, 202, "PATCH of the upload").await?;
    let location = absolute(base, &location.context("the PATCH answer has no Location")?);
    let put = http
        .put(with_digest(&location, &layer.digest))
        .body(Vec::new())
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .context("PUT that completes the upload")?;
    expect_status(put, 201, "PUT that completes the upload").await?;
    Ok(layer)
}

/// Generates a layer: a gzip member of stored (uncompressed) deflate blocks around `len` random bytes from a
/// ChaCha generator seeded with `seed`. The blob is valid `tar+gzip`-typed data that no compressor can
/// shrink, and that tools which detect compression see as already compressed. Emits chunks of about 1 MiB.
fn generate_layer(seed: u64, len: u64, mut emit: impl FnMut(Bytes) -> Result<()>) -> Result<Layer> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut crc = crc32fast::Hasher::new();
    let (mut blob_sha, mut content_sha) = (Sha256::new(), Sha256::new());
    let capacity = BLOCKS_PER_CHUNK * (STORED_MAX + 5) + 18;
    let mut chunk = Vec::with_capacity(capacity);
    // Magic, deflate, no flags, no mtime, no extra flags, OS unknown.
    chunk.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    let (mut left, mut size) = (len, 0u64);
    loop {
        let n = left.min(STORED_MAX as u64) as u16;
        left -= u64::from(n);
        let last = left == 0;
        chunk.push(u8::from(last)); // BFINAL, BTYPE 00 (stored)
        chunk.extend_from_slice(&n.to_le_bytes());
        chunk.extend_from_slice(&(!n).to_le_bytes());
        let start = chunk.len();
        chunk.resize(start + usize::from(n), 0);
        rng.fill_bytes(&mut chunk[start..]);
        crc.update(&chunk[start..]);
        content_sha.update(&chunk[start..]);
        if last {
            chunk.extend_from_slice(&crc.clone().finalize().to_le_bytes());
            chunk.extend_from_slice(&(len as u32).to_le_bytes()); // ISIZE: the length modulo 2^32
        }
        if last || chunk.len() >= BLOCKS_PER_CHUNK * STORED_MAX {
            if interrupted() {
                bail!("interrupted");
            }
            blob_sha.update(&chunk);
            size += chunk.len() as u64;
            emit(Bytes::from(std::mem::replace(&mut chunk, Vec::with_capacity(capacity))))?;
        }
        if last {
            break;
        }
    }
    Ok(Layer {
        digest: format!("sha256:{}", hex::encode(blob_sha.finalize())),
        size,
        diff_id: format!("sha256:{}", hex::encode(content_sha.finalize())),
    })
}

async fn start_upload(http: &reqwest::Client, base: &str, repo: &str) -> Result<String> {
    let resp = http
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .context("POST of an upload")?;
    let location = expect_status(resp, 202, "POST of an upload").await?;
    Ok(absolute(base, &location.context("the POST answer has no Location")?))
}

/// A small blob in one `PUT`.
async fn push_small_blob(http: &reqwest::Client, base: &str, repo: &str, bytes: &[u8]) -> Result<String> {
    let digest = sha256_digest(bytes);
    let location = start_upload(http, base, repo).await?;
    let put = http
        .put(with_digest(&location, &digest))
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .context("PUT of a blob")?;
    expect_status(put, 201, "PUT of a blob").await?;
    Ok(digest)
}

async fn put_manifest(
    http: &reqwest::Client,
    base: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> Result<String> {
    let resp = http
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", media_type)
        .body(bytes.to_vec())
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .context("PUT of a manifest")?;
    expect_status(resp, 201, "PUT of a manifest").await?;
    Ok(sha256_digest(bytes))
}

/// Checks the status; returns the `Location` header, if any.
async fn expect_status(resp: reqwest::Response, expected: u16, what: &str) -> Result<Option<String>> {
    let status = resp.status();
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if status.as_u16() != expected {
        let body = resp.text().await.unwrap_or_default();
        bail!("{what} answered {status}, not {expected}: {}", body.trim());
    }
    Ok(location)
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with('/') { format!("{base}{location}") } else { location.to_owned() }
}

fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

/// The target's tag has the source's digest, and every child of an index is there.
async fn verify_copy(http: &reqwest::Client, target: &Distribution, pushed: &Pushed) -> Result<()> {
    const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
                          application/vnd.docker.distribution.manifest.list.v2+json, \
                          application/vnd.docker.distribution.manifest.v2+json";
    let head = |reference: String| {
        http.head(format!("{}/v2/{}/manifests/{reference}", target.url(), pushed.repo))
            .header("accept", ACCEPT)
            .timeout(Duration::from_secs(30))
            .send()
    };
    let resp = head(TAG.to_owned()).await.context("HEAD of the target's manifest")?;
    if !resp.status().is_success() {
        bail!("the target has no {}:{TAG} ({})", pushed.repo, resp.status());
    }
    let digest = resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if digest != pushed.digest {
        bail!("the target's {}:{TAG} is {digest:?}, not the source's {}", pushed.repo, pushed.digest);
    }
    for child in &pushed.children {
        let resp = head(child.clone()).await.context("HEAD of a child manifest")?;
        if !resp.status().is_success() {
            bail!("the target lacks the child manifest {child} ({})", resp.status());
        }
    }
    Ok(())
}

// ---- the report --------------------------------------------------------------------------------

pub(crate) fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn min_max(values: impl IntoIterator<Item = f64>) -> (f64, f64) {
    values.into_iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)))
}

fn secs(s: f64) -> String {
    if s < 1.0 {
        format!("{s:.3} s")
    } else if s < 100.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

/// Milliseconds below a second.
fn short_secs(s: f64) -> String {
    if s.abs() < 1.0 { format!("{:.0} ms", s * 1000.0) } else { format!("{s:.2} s") }
}

fn phases_line(p: &Phases) -> String {
    format!(
        "{} · {} · {} · {}",
        short_secs(p.post),
        short_secs(p.pickup - p.post),
        short_secs(p.copy),
        short_secs(p.seen)
    )
}

/// CPU times: `/proc` counts them in 10 ms ticks, so two decimals.
fn cpu(s: f64) -> String {
    format!("{s:.2} s")
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn human_bytes(b: u64) -> String {
    const GIB: u64 = 1 << 30;
    let whole_or = |unit: u64, name: &str, digits: usize| {
        if b.is_multiple_of(unit) {
            format!("{} {name}", b / unit)
        } else {
            format!("{:.*} {name}", digits, b as f64 / unit as f64)
        }
    };
    if b >= GIB {
        whole_or(GIB, "GiB", 2)
    } else if b >= MIB {
        whole_or(MIB, "MiB", 1)
    } else if b >= 1024 {
        whole_or(1024, "KiB", 1)
    } else {
        format!("{b} B")
    }
}

fn now_utc() -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::now_utc().format(&format).unwrap_or_else(|_| "unknown date".into())
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

pub(crate) fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

pub(crate) fn shell_quote(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Removes ANSI escape sequences (colours) from log text.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn markers(name: ScenarioName) -> (String, String) {
    (format!("<!-- bench import {} begin -->", name.as_str()), format!("<!-- bench import {} end -->", name.as_str()))
}

/// One scenario's section of the report, between its markers.
fn render_section(r: &ScenarioResult, bins: &Bins, machine: &Machine, command_line: &str) -> String {
    let sc = &r.scenario;
    let n = r.pairs.len();
    let ig_wall: Vec<f64> = r.pairs.iter().map(|(i, _)| i.wall.as_secs_f64()).collect();
    let sk_wall: Vec<f64> = r.pairs.iter().map(|(_, s)| s.wall.as_secs_f64()).collect();
    let ratios: Vec<f64> = ig_wall.iter().zip(&sk_wall).map(|(i, s)| i / s).collect();
    let ig_rss: Vec<f64> = r.pairs.iter().map(|(i, _)| i.peak_rss_kib as f64).collect();
    let sk_rss: Vec<f64> = r.pairs.iter().map(|(_, s)| s.peak_rss_kib as f64).collect();
    let (ig_lo, ig_hi) = min_max(ig_wall.iter().copied());
    let (sk_lo, sk_hi) = min_max(sk_wall.iter().copied());
    let (ratio_lo, ratio_hi) = min_max(ratios.iter().copied());
    let ratio = median(ratios.iter().copied());
    let ig_rss_median = median(ig_rss.iter().copied());
    let (_, ig_rss_max) = min_max(ig_rss.iter().copied());
    let (_, sk_rss_max) = min_max(sk_rss.iter().copied());
    // A warm run copies nothing: no throughput to speak of.
    let throughput = |wall: f64| {
        if sc.warm {
            "— (nothing to copy)".to_owned()
        } else {
            format!("{:.0} MiB/s", r.pushed.bytes as f64 / MIB as f64 / wall)
        }
    };
    let kib = |v: f64| mib(v as u64);
    // Which process ran the copy, and so whose peak RSS this is.
    let who = if command_line.contains("--separate-worker") { "worker" } else { "server + embedded worker" };

    let (begin, end) = markers(sc.name);
    let mut s = String::new();
    let _ = writeln!(s, "{begin}");
    let _ = writeln!(s, "### `{}`: {}\n", sc.name.as_str(), if r.quick { "quick (smaller) version" } else { sc.title });
    let how = if sc.warm {
        "every run copies into one target registry that already holds the image (filled once, untimed, by an \
         imagegate import); imagegate starts from a fresh database each run"
    } else {
        "every run copies into a new, empty target registry"
    };
    let _ = writeln!(
        s,
        "Image: {}; {} blobs, {} of random, incompressible gzip layers; {how}; {}.",
        sc.image.describe(),
        r.pushed.blobs,
        human_bytes(r.pushed.bytes),
        r.storage.describe()
    );
    let _ = writeln!(
        s,
        "Measured {} by `{command_line}`: {n} runs of each tool, alternated, after one untimed run of each; {} CPUs ({}), {} RAM, Linux {}; \
         imagegate {}, {}, {}; 1-minute load average {} before the runs and {} after.\n",
        r.finished_at,
        machine.nproc,
        machine.cpu,
        machine.memory,
        machine.kernel,
        machine.commit,
        bins.skopeo_version,
        bins.registry_version,
        r.load.0,
        r.load.1
    );
    if r.quick {
        let _ = writeln!(s, "**--quick**: smaller images, so the targets below are indicative only.\n");
    }
    let _ = writeln!(s, "| | imagegate | skopeo |\n|---|---:|---:|");
    let _ =
        writeln!(s, "| wall time, median | {} | {} |", secs(median(ig_wall.clone())), secs(median(sk_wall.clone())));
    let _ =
        writeln!(s, "| wall time, min – max | {} – {} | {} – {} |", secs(ig_lo), secs(ig_hi), secs(sk_lo), secs(sk_hi));
    let _ = writeln!(
        s,
        "| throughput at the median | {} | {} |",
        throughput(median(ig_wall.clone())),
        throughput(median(sk_wall.clone()))
    );
    let _ =
        writeln!(s, "| peak RSS, median | {} ({who}) | {} |", kib(ig_rss_median), kib(median(sk_rss.iter().copied())));
    let _ = writeln!(s, "| peak RSS, max | {} ({who}) | {} |", kib(ig_rss_max), kib(sk_rss_max));
    let _ = writeln!(
        s,
        "| CPU time (user + system), median | {} (worker, during the import) | {} |",
        cpu(median(r.pairs.iter().map(|(i, _)| i.cpu_secs))),
        cpu(median(r.pairs.iter().map(|(_, k)| k.cpu_secs)))
    );
    let registries = |m: &Measurement| m.registry_cpu_secs.0 + m.registry_cpu_secs.1;
    let _ = writeln!(
        s,
        "| the registries' CPU time (source + target) during the run, median | {} | {} |\n",
        cpu(median(r.pairs.iter().map(|(i, _)| registries(i)))),
        cpu(median(r.pairs.iter().map(|(_, k)| registries(k))))
    );
    let _ = writeln!(
        s,
        "imagegate / skopeo wall time, median of the {n} per-pair ratios: **{ratio:.2}** (min {ratio_lo:.2}, max \
         {ratio_hi:.2}).\n"
    );
    let phases: Vec<Phases> = r.pairs.iter().filter_map(|(i, _)| i.phases).collect();
    if !phases.is_empty() {
        let part = |f: fn(&Phases) -> f64| short_secs(median(phases.iter().map(f)));
        let _ = writeln!(
            s,
            "Where imagegate's time goes (medians, from the worker's log): the POST {}, until the worker starts the \
             job {}, the copy {}, until the bench sees `ready` {}.\n",
            part(|p| p.post),
            part(|p| p.pickup - p.post),
            part(|p| p.copy),
            part(|p| p.seen)
        );
        // The same ratio without the time the bench takes to notice (its status poll and the outcome's commit).
        let inner: Vec<f64> =
            r.pairs.iter().filter_map(|(i, k)| i.phases.map(|p| (p.pickup + p.copy) / k.wall.as_secs_f64())).collect();
        if inner.len() == n {
            let (lo, hi) = min_max(inner.iter().copied());
            let _ = writeln!(
                s,
                "For reference only (not the measure the targets use): from the POST to the worker's `import \
                 succeeded` log line, leaving out how soon the bench notices, the median ratio would be {:.2} (min \
                 {lo:.2}, max {hi:.2}).\n",
                median(inner.iter().copied())
            );
        }
    }
    let verdict = |met: bool| {
        let v = if met { "**met**" } else { "**not met**" };
        if r.quick { format!("{v} (quick run: indicative only)") } else { v.to_owned() }
    };
    let _ = writeln!(s, "| target (from the issue) | measured median | verdict |\n|---|---:|---|");
    for target in &sc.targets {
        match *target {
            Target::Ratio(max) => {
                let _ = writeln!(s, "| imagegate / skopeo ≤ {max} | {ratio:.2} | {} |", verdict(ratio <= max));
            }
            Target::WorkerRssMib(max) => {
                let _ = writeln!(
                    s,
                    "| peak RSS of the process running the copy ({who}) ≤ {max} MiB | {} (max {}) | {} |",
                    kib(ig_rss_median),
                    kib(ig_rss_max),
                    verdict(ig_rss_median <= (max * 1024) as f64)
                );
            }
        }
    }
    if let Some((ig, sk)) = &r.counted {
        let _ = writeln!(
            s,
            "\nRegistry requests of one more, untimed run of each tool with debug logs (`--requests`; skopeo's \
             HTTPS probes of the plain-HTTP registries left out):\n"
        );
        let _ = writeln!(s, "| | imagegate | skopeo |\n|---|---|---|");
        let side = |req: &Requests, name: &str| {
            let parts: Vec<String> =
                req.iter().filter(|((s, _), _)| *s == name).map(|((_, m), n)| format!("{m} {n}")).collect();
            let total: usize = req.iter().filter(|((s, _), _)| *s == name).map(|(_, n)| n).sum();
            if parts.is_empty() { "none".to_owned() } else { format!("{} ({total})", parts.join(", ")) }
        };
        for name in ["source", "target"] {
            let _ = writeln!(s, "| {name} | {} | {} |", side(ig, name), side(sk, name));
        }
        let total = |req: &Requests| req.values().sum::<usize>();
        let _ = writeln!(s, "| in all | {} | {} |", total(ig), total(sk));
    }
    let _ = writeln!(s, "\n<details><summary>Every run</summary>\n");
    let _ = writeln!(
        s,
        "| pair | imagegate | skopeo | ratio | worker RSS: idle → peak | skopeo RSS | CPU: worker · skopeo | \
         registries' CPU: imagegate's run · skopeo's | imagegate: POST · to job start · copy · to `ready` seen | imagegate's blobs | skopeo's blobs |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|"
    );
    for (i, (ig, sk)) in r.pairs.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} | {} → {} | {} | {} · {} | {} · {} | {} | {} | {} |",
            i + 1,
            secs(ig.wall.as_secs_f64()),
            secs(sk.wall.as_secs_f64()),
            ig.wall.as_secs_f64() / sk.wall.as_secs_f64(),
            ig.idle_rss_kib.map_or_else(|| "?".into(), mib),
            mib(ig.peak_rss_kib),
            mib(sk.peak_rss_kib),
            cpu(ig.cpu_secs),
            cpu(sk.cpu_secs),
            cpu(ig.registry_cpu_secs.0 + ig.registry_cpu_secs.1),
            cpu(sk.registry_cpu_secs.0 + sk.registry_cpu_secs.1),
            ig.phases.as_ref().map_or_else(|| "?".into(), phases_line),
            ig.detail,
            sk.detail
        );
    }
    let _ = writeln!(s, "\n</details>");
    s.push_str(&end);
    s
}

/// The report with these sections put in: each replaces its earlier version, or goes after the section of
/// the scenario before it (or before the one after it, or at the end). Everything else is kept.
fn merge_doc(existing: Option<&str>, sections: &[(ScenarioName, String)]) -> String {
    let find = |doc: &str, name: ScenarioName| {
        let (begin, end) = markers(name);
        let start = doc.find(&begin)?;
        let stop = start + doc[start..].find(&end)? + end.len();
        Some((start, stop))
    };
    let mut doc = existing.map_or_else(|| DOC_INTRO.to_owned(), str::to_owned);
    for (name, section) in sections {
        if let Some((start, stop)) = find(&doc, *name) {
            doc.replace_range(start..stop, section);
            continue;
        }
        let after = ScenarioName::ALL.iter().rev().filter(|n| *n < name).find_map(|n| find(&doc, *n).map(|(_, e)| e));
        let before = || ScenarioName::ALL.iter().filter(|n| *n > name).find_map(|n| find(&doc, *n).map(|(s, _)| s));
        match (after, before()) {
            (Some(at), _) => doc.insert_str(at, &format!("\n\n{section}")),
            (None, Some(at)) => doc.insert_str(at, &format!("{section}\n\n")),
            (None, None) => {
                if !doc.ends_with('\n') {
                    doc.push('\n');
                }
                doc.push('\n');
                doc.push_str(section);
                doc.push('\n');
            }
        }
    }
    doc
}

const DOC_INTRO: &str = "# Benchmarks

## Import: imagegate against `skopeo copy --all`

`cargo xtask bench import` measures imagegate's import, the real path of the default deployment (`imagegate-server`
on SQLite with its embedded worker, driven through `POST /api/v1/images:import`; `--separate-worker` runs the copy
on a separate `imagegate-worker` process instead), against `skopeo copy --all`, copying the same generated images
between the same two local CNCF Distribution registries (plain HTTP on 127.0.0.1).

```sh
cargo xtask bench import                              # every scenario, 5 runs of each tool; updates this file
cargo xtask bench import --scenario warm --runs 3     # one scenario (repeatable)
cargo xtask bench import --quick                      # small images, 2 runs: a smoke test; writes nothing
```

It installs Debian's `docker-registry`, `skopeo` and `time` when they are missing (as root), builds imagegate in
release mode, and kills every registry, server, worker and skopeo and removes every temporary file when it ends,
on an error or on Ctrl-C too. `--no-doc` prints the results without writing them here; `--requests` adds one more,
untimed run of each tool with debug logs and counts their registry requests; `--worker-poll-secs` and
`--copy-concurrency` pass those options to the worker, for experiments; `--storage disk` keeps the registries'
storage on disk instead of in memory (see below).

### Method

- **Images.** Layers are random bytes (ChaCha, seeded per layer and per invocation) wrapped in a gzip of *stored*
  deflate blocks: valid blobs for their `tar+gzip` media type that no compressor can shrink, and that skopeo sees
  as already compressed (so it copies them as they are, as imagegate does). Each scenario's image is pushed into
  its own source registry once, streamed (a `PATCH` of the generated stream, its digest computed on the way),
  and every run reads the same blobs.
- **Storage.** By default every file of an invocation lives in memory, on the tmpfs `/dev/shm`: both registries'
  storage, imagegate's data directory (its SQLite database), skopeo's temporary directory. The registries write
  every blob they receive and several small files per upload, and on this virtual machine's shared disk that
  took about a quarter of the wall time of the 60 small layers, for both tools alike (0.62 s against 0.44 s for
  imagegate, 0.90 s against 0.68 s for skopeo) and varying with whatever else the host was doing; in memory,
  what remains is the tools' and the registries' own work. `--storage disk` puts it all in the system's
  temporary directory instead.
- **Cold runs** copy into a new, empty target registry each time. **Warm runs** copy into one target that already
  holds the image (filled once, untimed, by an imagegate import); imagegate starts from a fresh database each
  run, so the import job does run and finds everything there.
- **imagegate, per run:** a fresh data directory; `imagegate-server --internal-registry http://127.0.0.1:<target>`
  on SQLite, whose embedded worker the API wakes when it queues a job (with `--separate-worker`:
  `imagegate-server --no-worker` and a fresh `imagegate-worker --database-url sqlite://… --worker-poll-secs 0.05`,
  which finds the job by polling), with imagegate's default copy settings. Peak RSS and CPU time are then those of
  the process that runs the copy: the server with its embedded worker, or the separate worker. The bench signs in once for an API token (so that polling costs
  the server no Argon2 check), lets the worker settle for 200 ms and then waits a random part of one poll
  interval (so that the POST lands at a random point of the worker's poll cycle, as a real request does), posts
  `{\"source\": \"127.0.0.1:<source>/<repo>:v1\"}`, and reads `GET /api/v1/images?page_size=100` every 10 ms until
  the artifacts are `ready` (`failed`, or an attempt that will be retried, fails the bench). **Wall time** runs
  from the POST to the first answer that says `ready`: it includes the source check in the POST, the wait until
  the worker claims the job (up to one poll interval, 40–60 ms with jitter), and the time until the bench's next
  status poll. **Where the time goes** comes from the worker's log timestamps: the POST, until the worker logs
  `import attempt started`, until it logs `import succeeded`, and until the bench sees `ready`. **Peak RSS** is
  the worker's `VmHWM` (`/proc/<pid>/status`) read after the import: the worker process is new for each run, so
  this is the peak of that run, start-up included. The worker's `VmHWM` just before the POST (idle, after
  start-up) is listed for each run too. **CPU time** is the worker's user + system time (`/proc/<pid>/stat`)
  from just before the POST until `ready` (in 10 ms ticks, so `0.00 s` means less than 10 ms).
- **The registries' CPU time** (user + system of both Distribution processes, from `/proc/<pid>/stat`, during
  each run) is listed too: on 2 cores the registries' own work (hashing every byte they receive, writing it) is
  a floor that neither tool can go below.
- **skopeo, per run:** `skopeo --policy <insecureAcceptAnything> --tmpdir <tmp> copy --all
  --src-tls-verify=false --dest-tls-verify=false docker://… docker://…` with an empty `registries.conf`, under GNU
  `/usr/bin/time -f '%M %U %S'`. **Wall time** runs from spawn to exit (process start-up included); **peak RSS**
  and **CPU time** are the `ru_maxrss` and user + system times that `wait4` returns for the process, as GNU time
  reports them. skopeo's blob-info cache (in
  `/var/lib/containers/cache` as root) persists as it would for any user, but every target registry is new, on
  a new port, and the blobs are new for each invocation, so it has nothing to offer.
- **A warm-up** precedes the timed runs: one untimed run of each tool, as the timed ones. The first copy of an
  invocation was consistently a third slower than the next, its target registry spending about 3.3 s of CPU
  instead of 2.0 s (most likely the kernel's first allocation of the pages the target writes to, which it
  counts as the registry's system time), and imagegate, which goes first, paid for it alone.
- **Runs alternate** imagegate, skopeo, imagegate, …; pair *i* is imagegate's run *i* with skopeo's run *i*. The
  ratio is the median of the per-pair ratios imagegate / skopeo (below 1: imagegate is faster); medians, minima
  and maxima are over the runs.
- **Every copy is checked:** the target's tag must have the source's digest, and every child of an index must be
  there. A run taking more than 10 minutes fails the bench.
- **Noise:** this is a shared development machine with 2 cores, and other builds may run while the bench does.
  Each section records the load average before and after its runs; read differences of a few percent as noise.

### Targets

From the issue: `index-500mb` ratio ≤ 0.75; `small-layers` ratio ≤ 0.4; `warm` ratio ≤ 0.3; the worker's peak RSS
≤ 48 MiB during the 500 MiB copy and during the copy of one 1 GiB layer. Each section says whether its measured
median meets them.

## Results
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ranges() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(Vec::<f64>::new()).is_nan());
        assert_eq!(min_max([2.0, 5.0, 1.0]), (1.0, 5.0));
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(25 * MIB), "25 MiB");
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(524_289_000), "500.0 MiB");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(secs(0.1234), "0.123 s");
        assert_eq!(secs(12.345), "12.35 s");
    }

    /// Inflates a gzip member of stored blocks, checking every field.
    fn inflate_stored(blob: &[u8]) -> Vec<u8> {
        assert_eq!(&blob[..4], &[0x1f, 0x8b, 8, 0]);
        let mut at = 10;
        let mut out = Vec::new();
        loop {
            let header = blob[at];
            assert_eq!(header & 0b110, 0, "stored blocks only");
            let len = u16::from_le_bytes([blob[at + 1], blob[at + 2]]);
            let nlen = u16::from_le_bytes([blob[at + 3], blob[at + 4]]);
            assert_eq!(len, !nlen);
            at += 5;
            out.extend_from_slice(&blob[at..at + usize::from(len)]);
            at += usize::from(len);
            if header & 1 == 1 {
                break;
            }
        }
        let crc = u32::from_le_bytes(blob[at..at + 4].try_into().unwrap());
        let isize = u32::from_le_bytes(blob[at + 4..at + 8].try_into().unwrap());
        assert_eq!(at + 8, blob.len(), "nothing after the trailer");
        assert_eq!(crc, crc32fast::hash(&out));
        assert_eq!(isize, out.len() as u32);
        out
    }

    #[test]
    fn generated_layers_are_stored_gzip_with_the_right_digests() {
        for len in [0, 1, 65_535, 65_536, 3 * 1024 * 1024 + 17] {
            let mut blob = Vec::new();
            let layer = generate_layer(7, len, |chunk| {
                assert!(chunk.len() <= BLOCKS_PER_CHUNK * (STORED_MAX + 5) + 18);
                blob.extend_from_slice(&chunk);
                Ok(())
            })
            .unwrap();
            assert_eq!(layer.size, blob.len() as u64);
            assert_eq!(layer.digest, sha256_digest(&blob));
            let content = inflate_stored(&blob);
            assert_eq!(content.len() as u64, len);
            assert_eq!(layer.diff_id, sha256_digest(&content));
        }
        // The same seed, the same layer; another seed, another.
        let digest = |seed| generate_layer(seed, 1000, |_| Ok(())).unwrap().digest;
        assert_eq!(digest(1), digest(1));
        assert_ne!(digest(1), digest(2));
    }

    #[test]
    fn sections_replace_or_go_in_scenario_order() {
        let section = |name: ScenarioName, body: &str| {
            let (b, e) = markers(name);
            (name, format!("{b}\n{body}\n{e}"))
        };
        let doc = merge_doc(None, &[section(ScenarioName::Warm, "warm 1")]);
        assert!(doc.starts_with(DOC_INTRO));
        let doc = format!("{doc}\n## Notes\n\nhand-written\n");
        let doc = merge_doc(Some(&doc), &[section(ScenarioName::LargeLayer, "large 1")]);
        let doc = merge_doc(Some(&doc), &[section(ScenarioName::Index500mb, "index 1")]);
        let doc = merge_doc(Some(&doc), &[section(ScenarioName::Warm, "warm 2")]);
        let at = |needle: &str| doc.find(needle).unwrap_or_else(|| panic!("{needle} missing from\n{doc}"));
        assert!(at("index 1") < at("warm 2") && at("warm 2") < at("large 1") && at("large 1") < at("hand-written"));
        assert!(!doc.contains("warm 1"));
        assert_eq!(doc.matches("bench import warm begin").count(), 1);
        let doc2 = merge_doc(Some(&doc), &[section(ScenarioName::SmallLayers, "small 1")]);
        let at2 = |needle: &str| doc2.find(needle).unwrap();
        assert!(at2("index 1") < at2("small 1") && at2("small 1") < at2("warm 2"));
    }

    #[test]
    fn log_details_and_statuses() {
        let log = "\u{1b}[2m2025\u{1b}[0m INFO job: sync_worker::import: import succeeded import_id=1 digest=sha256:ab \
                   copied=21 bytes=524288000 skipped=1 mounted=0\n";
        assert_eq!(import_detail(&strip_ansi(log)), "copied 21 (500 MiB), skipped 1, mounted 0");
        let listing =
            json!({ "totalCount": 1, "images": [{ "artifacts": [{ "status": "ready" }, { "status": "importing" }] }] });
        assert_eq!(artifact_statuses(&listing), ["ready", "importing"]);
        let t0 = log_time("2026-11-24T04:49:01.298118Z  INFO x").unwrap();
        let log = "2026-11-24T04:49:01.310000Z  INFO job: import attempt started import_id=1\n\
                   2026-11-24T04:49:01.330000Z  INFO job: import succeeded import_id=1\n";
        let p = phases(log, t0, 0.004, t0 + time::Duration::milliseconds(40)).unwrap();
        assert!((p.pickup - 0.011882).abs() < 1e-6 && (p.copy - 0.02).abs() < 1e-6, "{p:?}");
        assert!((p.seen - 0.008118).abs() < 1e-6, "{p:?}");
        assert_eq!(phases_line(&p), "4 ms · 8 ms · 20 ms · 8 ms");
        assert_eq!(shell_quote("--runs"), "--runs");
        assert_eq!(shell_quote("a b"), "'a b'");
    }
}
