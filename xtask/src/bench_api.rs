//! `cargo xtask bench api`: the API's list and detail routes under load, on a large catalog, against an
//! axum hello-world measured in the same run on the same machine.
//!
//! Per backend (SQLite in a file, PostgreSQL in a throwaway cluster as `cargo xtask pg` makes): the release
//! `imagegate-server` migrates a new database and makes its admin; it is stopped, and the database is seeded
//! with one statement per table (`sqlite3` / `psql`, set-based inserts that fire the same triggers as the
//! server's writes): `--images` catalog images with two tags each and `--imports` finished imports (one
//! artifact each). The server is started again on it, the bench signs in for an API token, checks every
//! route once (status and body), and then runs `wrk` against each route in turn, and against the
//! hello-world before them, with the same threads, connections and duration. Last, the query plans of the
//! statements behind the routes (`EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on PostgreSQL, on the seeded
//! database) are collected. The results go into `docs/benchmarks.md`, between this bench's markers.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::bench::{
    Machine, Proc, build_release, cargo_target_dir, clean_env, existing, first_line_of, free_port, loadavg, machine,
    median, shell_quote, sign_in, wait_ready,
};
use crate::{header, interrupted, pg, tools, workspace_root};

const DOC_PATH: &str = "docs/benchmarks.md";
const BEGIN: &str = "<!-- bench api begin -->";
const END: &str = "<!-- bench api end -->";
const PASSWORD: &str = "bench-api-password";
/// How the bench works, at the head of its section.
const METHOD: &str = "\
```sh
cargo xtask bench api                                   # both backends, every route; updates this section
cargo xtask bench api --backend sqlite --route catalog  # one backend, the routes whose name has `catalog`
cargo xtask bench api --runs 3 --duration 20            # medians of three 20 s runs per route
cargo xtask bench api --backend sqlite --hold           # seed, then leave the server running (for a profiler)
```

Per backend (SQLite in a file under the system's temporary directory; PostgreSQL in a throwaway cluster as
`cargo xtask pg` starts): the release `imagegate-server` (`--no-worker --no-inventory`, defaults otherwise)
migrates a new database and is stopped; `sqlite3` or `psql` seeds it with one set-based `INSERT` per table, which
fires the same triggers as the server's own writes (search index, counts, catalog generation); PostgreSQL is then
`ANALYZE`d, as autovacuum would. The server starts again on it, the bench signs in once for an API token (every
request is authenticated by it), calls each route once (200 and JSON, or the bench fails), and then loads each
route in turn with `wrk`, after loading the hello-world
(`bin/examples/api-hello.rs`, axum answering `Hello, World!`) with the same threads, connections and duration.
On two CPUs or more the server, and the hello-world before it, run on CPU 0 and wrk on the other CPUs (by
`taskset`; PostgreSQL's own processes are not pinned), so that the load generator never takes the server's CPU:
the server has one CPU, and its latencies are its own, not the scheduler's (`--no-pin` lets them all share every
CPU, as the figures before 2026-12-03 did). Nothing writes while a
route is loaded, so the token lookup and the listings the store keeps in memory (see `crates/image-core/src/cache.rs`)
answer from there after the first call: the figures are those of a catalog that is read far more often than it
changes; a write makes the next read of each go to the database again. The query plans are
`EXPLAIN QUERY PLAN` (the `sqlite3` command line's SQLite, which may be older than the server's) and `EXPLAIN
(COSTS OFF)` of the statements the store builds for the routes, with the routes' values written in.
";
/// The issue's targets: p99 under this, at page size 10, for every list and detail route…
const P99_TARGET_MS: f64 = 10.0;
/// …and at least this share of the hello-world's requests per second.
const RATIO_TARGET: f64 = 0.30;
/// The admission check's targets.
const ADMISSION_P99_TARGET_MS: f64 = 2.0;
const ADMISSION_RATIO_TARGET: f64 = 0.50;

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The backends to measure [default: both].
    #[arg(long = "backend", value_enum)]
    backends: Vec<Backend>,
    /// Catalog images to seed (each with two tags).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1000..=10_000_000))]
    images: u32,
    /// Finished imports to seed (one artifact each).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1000..=10_000_000))]
    imports: u32,
    /// Seconds of load per route (`wrk -d`).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=600))]
    duration: u32,
    /// Open connections (`wrk -c`).
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// Load threads (`wrk -t`) [default: one per CPU wrk runs on].
    #[arg(long)]
    threads: Option<u32>,
    /// Runs of each route (and of the hello-world); the tables show the median of each figure.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    runs: u32,
    /// Only the routes whose name contains this; repeatable [default: every route].
    #[arg(long = "route")]
    routes: Vec<String>,
    /// Print the results only; leave docs/benchmarks.md alone.
    #[arg(long)]
    no_doc: bool,
    /// Use the release binaries already built instead of running `cargo build --release` first.
    #[arg(long)]
    no_build: bool,
    /// Let wrk, the server and the hello-world share every CPU. By default (on two CPUs or more) the
    /// server and the hello-world get CPU 0 and wrk the others (by `taskset`), so that the load generator
    /// never takes the server's CPU and the latencies are the server's own.
    #[arg(long)]
    no_pin: bool,
    /// After the routes' first calls, leave the seeded server running (for a profiler) and print its
    /// address and token, until Ctrl-C; nothing is loaded or written.
    #[arg(long)]
    hold: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// A route under load.
#[derive(Debug, Clone)]
struct Route {
    name: &'static str,
    /// `GET` or `POST`.
    method: &'static str,
    path: String,
    body: Option<String>,
    /// Measured against the admission check's targets rather than the listings'.
    admission: bool,
}

impl Route {
    fn get(name: &'static str, path: impl Into<String>) -> Route {
        Route { name, method: "GET", path: path.into(), body: None, admission: false }
    }
}

/// The routes, on the data [`seed_sql`] writes.
fn routes(images: u32, imports: u32) -> Vec<Route> {
    let image = images / 2;
    let import = imports / 2;
    let k = "/oapis/image.theriseunion.io/v1alpha1/namespaces/default";
    vec![
        Route::get("catalog: list", "/catalog/api/v1/images?limit=10"),
        Route::get("catalog: list, status=approved", "/catalog/api/v1/images?status=approved&limit=10"),
        Route::get("catalog: list, category=database", "/catalog/api/v1/images?category=database&limit=10"),
        Route::get(
            "catalog: list, the last page by cursor",
            format!("/catalog/api/v1/images?after_id={}&limit=10", images - 10),
        ),
        Route::get(
            "catalog: search, 1 match",
            format!("/catalog/api/v1/images?search={}&limit=10", codename(image as u64 + 17)),
        ),
        Route::get("catalog: search, 100 matches", "/catalog/api/v1/images?search=svc-0042&limit=10"),
        Route::get("catalog: categories", "/catalog/api/v1/images/categories"),
        Route::get("catalog: image", format!("/catalog/api/v1/images/{}", image + 9)),
        Route::get("catalog: approval requests", "/catalog/api/v1/approval-requests?status=pending&limit=10"),
        Route::get("catalog: events", "/catalog/api/v1/events?limit=10"),
        Route {
            name: "catalog: admission check",
            method: "POST",
            path: "/catalog/api/v1/admission/check".into(),
            body: Some(format!(r#"{{"image":"{}:v1"}}"#, seeded_image_reference(image as u64 + 1))),
            admission: true,
        },
        Route::get("platform: list, grouped", "/api/v1/images?page_num=0&page_size=10"),
        Route::get("platform: list, flat, ready", "/api/v1/images?flat=true&ready=true&page_size=10"),
        Route::get("platform: list by repository", "/api/v1/images?page_size=10&orderBy=repo&order=asc"),
        Route::get("platform: list by tag", "/api/v1/images?page_size=10&orderBy=tag&order=desc"),
        Route::get("platform: import details", format!("/api/v1/images/{import}/importing-details")),
        Route::get("platform: exports", "/api/v1/images/custom?page_size=10"),
        Route::get("kube: registry secrets", format!("{k}/registry-secrets?page=1&limit=10")),
        Route::get("kube: repositories", format!("{k}/repositories?page=1&limit=10")),
        Route::get("station: registries", "/api/v1/registry"),
        Route::get("station: search catalog", "/api/v1/image/?category=qnap&filter_text=svc-0042&type=docker"),
        Route::get("station: search local", "/api/v1/image/?category=local&filter_text=job-0042&type=docker"),
        Route::get("inventory: nodes", "/api/v1/nodes"),
        Route::get("inventory: drift", "/api/v1/drift"),
    ]
}

/// The seeded images' codename: four letters, different for every image up to 26⁴.
fn codename(i: u64) -> String {
    (0..4).map(|k| char::from(b'a' + ((i / 26u64.pow(k)) % 26) as u8)).collect()
}

/// The catalog reference of seeded image `i` (`i % 10 < 8` are approved).
fn seeded_image_reference(i: u64) -> String {
    let registry = ["docker.io", "ghcr.io", "quay.io"][(i % 3) as usize];
    format!("{registry}/team{}/svc-{i:06}", i % 200)
}

/// Which CPUs a process gets under `--pin`.
#[derive(Debug, Clone, Copy)]
enum Side {
    /// The server under test and the hello-world.
    Server,
    /// wrk.
    Load,
}

/// One `wrk` run's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Load {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Answers that were not 2xx or 3xx, and socket errors.
    bad: u64,
}

#[derive(Debug)]
struct RouteResult {
    route: Route,
    loads: Vec<Load>,
    body_bytes: usize,
}

#[derive(Debug)]
struct BackendResult {
    backend: Backend,
    seed_secs: f64,
    hello: Vec<Load>,
    routes: Vec<RouteResult>,
    plans: Vec<(String, String, String)>,
    load_before: String,
    load_after: String,
}

pub fn run(mut args: ApiArgs) -> Result<ExitCode> {
    let root = workspace_root();
    let command_line =
        format!("cargo xtask {}", std::env::args().skip(1).map(|a| shell_quote(&a)).collect::<Vec<_>>().join(" "));
    let mut backends =
        if args.backends.is_empty() { vec![Backend::Sqlite, Backend::Postgres] } else { args.backends.clone() };
    backends.sort();
    backends.dedup();

    header("checking tools (wrk, sqlite3, PostgreSQL)");
    let (wrk, sqlite3) = ensure_tools()?;
    let pg_tools = if backends.contains(&Backend::Postgres) { Some(tools::ensure()?.pg) } else { None };
    let target_dir = cargo_target_dir(&root)?;
    build_release(&root, &target_dir, &["--bin", "imagegate-server", "--example", "api-hello"], args.no_build)?;
    let work =
        tempfile::Builder::new().prefix("imagegate-bench-api-").tempdir().context("creating a work directory")?;
    // Copies, so that a build running meanwhile cannot change what is measured halfway through.
    let copy = |from: PathBuf| -> Result<PathBuf> {
        let from = existing(from)?;
        let to = work.path().join(from.file_name().context("a binary without a name")?);
        fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
        Ok(to)
    };
    let mut bins = Bins {
        server: copy(target_dir.join("release/imagegate-server"))?,
        hello: copy(target_dir.join("release/examples/api-hello"))?,
        wrk_version: first_line_of(&wrk, "--version")?,
        wrk,
        sqlite3,
        taskset: None,
    };
    let machine = machine(&root);
    if !args.no_pin {
        match (machine.nproc, tools::which("taskset")) {
            (2.., Some(taskset)) => bins.taskset = Some(taskset),
            (nproc, taskset) => eprintln!(
                "not pinning: {}",
                if taskset.is_none() { "no taskset (Debian's util-linux)".to_owned() } else { format!("{nproc} CPU") }
            ),
        }
    }
    let load_cpus = if bins.taskset.is_some() { machine.nproc - 1 } else { machine.nproc };
    args.threads.get_or_insert(u32::try_from(load_cpus).unwrap_or(u32::MAX).max(1));
    eprintln!(
        "{} CPUs ({}), {} RAM, Linux {}; {}",
        machine.nproc, machine.cpu, machine.memory, machine.kernel, bins.wrk_version
    );
    let mut routes = routes(args.images, args.imports);
    if !args.routes.is_empty() {
        routes.retain(|r| args.routes.iter().any(|want| r.name.contains(want.as_str())));
        if routes.is_empty() {
            bail!("no route's name contains any of {:?}", args.routes);
        }
    }

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    let results = runtime.block_on(async {
        let http = reqwest::Client::builder().no_proxy().build().context("building an HTTP client")?;
        let mut results = Vec::new();
        for &backend in &backends {
            header(&format!("{}: {} images, {} imports", backend.name(), args.images, args.imports));
            let dir = work.path().join(format!("{backend:?}").to_lowercase());
            fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let cluster = match backend {
                Backend::Sqlite => None,
                Backend::Postgres => Some(pg::Cluster::start(pg_tools.as_ref().context("PostgreSQL's programs")?)?),
            };
            let database = match &cluster {
                None => format!("sqlite://{}", dir.join("imagegate.db").display()),
                Some(cluster) => cluster.url(),
            };
            let db = Db {
                backend,
                url: database.clone(),
                sqlite3: bins.sqlite3.clone(),
                psql: pg_tools.as_ref().map(|p| p.psql.clone()),
            };
            let ctx = Run { http: &http, bins: &bins, args: &args, dir: &dir, db: &db };
            results.push(ctx.backend(&routes).await.with_context(|| backend.name())?);
            drop(cluster);
        }
        anyhow::Ok(results)
    });
    drop(runtime);
    let results = results?;
    let section = render(&results, &args, &bins, &machine, &command_line);
    println!("\n{section}\n");
    if args.no_doc {
        eprintln!("--no-doc: {DOC_PATH} is left as it is");
    } else {
        let path = root.join(DOC_PATH);
        let existing = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => "# Benchmarks\n".to_owned(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        fs::write(&path, merge_doc(&existing, &section)).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote the results into {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug)]
struct Bins {
    server: PathBuf,
    hello: PathBuf,
    wrk: PathBuf,
    wrk_version: String,
    sqlite3: PathBuf,
    /// `taskset`, under `--pin`.
    taskset: Option<PathBuf>,
}

/// Finds `wrk` and `sqlite3`; installs them with apt-get when they are missing and we are root.
fn ensure_tools() -> Result<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        Some(PathBuf::from(format!("/usr/bin/{name}"))).filter(|p| p.is_file()).or_else(|| tools::which(name))
    };
    let missing: Vec<&str> = ["wrk", "sqlite3"].into_iter().filter(|n| find(n).is_none()).collect();
    if !missing.is_empty() {
        if !tools::is_root() {
            bail!("missing: {}; install the Debian package(s), or run `cargo xtask` as root", missing.join(" "));
        }
        tools::apt_install(&missing)?;
    }
    Ok((find("wrk").context("wrk is still missing")?, find("sqlite3").context("sqlite3 is still missing")?))
}

/// The database of one backend's run, and the command-line clients that reach it.
#[derive(Debug)]
struct Db {
    backend: Backend,
    url: String,
    sqlite3: PathBuf,
    psql: Option<PathBuf>,
}

impl Db {
    /// Runs `sql` with the backend's command-line client, and returns what it printed.
    async fn run_sql(&self, sql: &str) -> Result<String> {
        let mut cmd = match self.backend {
            Backend::Sqlite => {
                let mut cmd = tokio::process::Command::new(&self.sqlite3);
                cmd.arg("-bail").arg(self.url.trim_start_matches("sqlite://"));
                cmd
            }
            Backend::Postgres => {
                let mut cmd = tokio::process::Command::new(self.psql.as_ref().context("no psql")?);
                cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-d", &self.url]);
                cmd
            }
        };
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = cmd.spawn().context("starting the database's command-line client")?;
        let mut stdin = child.stdin.take().context("no stdin")?;
        let input = sql.to_owned();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            stdin.write_all(input.as_bytes()).await
        });
        let out = child.wait_with_output().await.context("waiting for the database's command-line client")?;
        writer.await.context("writing SQL")?.context("writing SQL")?;
        if !out.status.success() {
            bail!("the SQL failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// One backend's run.
struct Run<'a> {
    http: &'a reqwest::Client,
    bins: &'a Bins,
    args: &'a ApiArgs,
    dir: &'a Path,
    db: &'a Db,
}

impl Run<'_> {
    async fn backend(&self, routes: &[Route]) -> Result<BackendResult> {
        let load_before = loadavg();
        eprintln!("migrating a new database (load average {load_before})");
        drop(self.start_server().await?);

        let started = Instant::now();
        self.db.run_sql(&seed_sql(self.db.backend, self.args.images, self.args.imports)).await.context("seeding")?;
        let seed_secs = started.elapsed().as_secs_f64();
        eprintln!("seeded in {seed_secs:.1} s");

        let (server, api) = self.start_server().await?;
        let token = sign_in(self.http, &api, PASSWORD).await?;
        let mut checked = Vec::new();
        for route in routes {
            let body_bytes = self.check(&api, &token, route).await.with_context(|| route.name)?;
            checked.push((route, body_bytes));
        }
        if self.args.hold {
            eprintln!("--hold: the server listens at {api}; token {token}");
            eprintln!("--hold: Ctrl-C ends it");
            while !interrupted() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            bail!("interrupted");
        }

        let mut hello = Vec::new();
        let mut results: Vec<RouteResult> = checked
            .iter()
            .map(|(r, n)| RouteResult { route: (*r).clone(), loads: Vec::new(), body_bytes: *n })
            .collect();
        for run in 0..self.args.runs {
            if interrupted() {
                bail!("interrupted");
            }
            hello.push(self.hello_world().await?);
            eprintln!("run {}: hello-world {}", run + 1, describe(hello.last().copied()));
            for result in &mut results {
                let load = self.wrk(&api, &token, &result.route).await.with_context(|| result.route.name)?;
                eprintln!("run {}: {:<36} {}", run + 1, result.route.name, describe(Some(load)));
                result.loads.push(load);
            }
        }
        drop(server);
        let load_after = loadavg();
        let plans = self.plans().await?;
        Ok(BackendResult {
            backend: self.db.backend,
            seed_secs,
            hello,
            routes: results,
            plans,
            load_before,
            load_after,
        })
    }

    async fn start_server(&self) -> Result<(Proc, String)> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port()?;
            let mut cmd = self.command(&self.bins.server, Side::Server);
            clean_env(&mut cmd);
            cmd.arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--data-dir")
                .arg(self.dir)
                .args(["--database-url", &self.db.url, "--no-worker", "--no-inventory"])
                .env("IMAGEGATE_ADMIN_PASSWORD", PASSWORD);
            let mut server = Proc::spawn("imagegate-server", cmd, self.dir.join(format!("server-{port}.log")))?;
            let api = format!("http://127.0.0.1:{port}");
            match wait_ready(self.http, &mut server, &format!("{api}/readyz")).await {
                Ok(()) => return Ok((server, api)),
                Err(_) if attempt < 3 && server.log().contains("cannot listen") => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Calls the route once: it must answer 200 with JSON. Returns the body's length.
    async fn check(&self, api: &str, token: &str, route: &Route) -> Result<usize> {
        let url = format!("{api}{}", route.path);
        let request = match route.method {
            "POST" => self
                .http
                .post(&url)
                .header("content-type", "application/json")
                .body(route.body.clone().unwrap_or_default()),
            _ => self.http.get(&url),
        };
        let resp = request.bearer_auth(token).timeout(Duration::from_secs(60)).send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if status != 200 {
            bail!("{} {} answered {status}: {}", route.method, route.path, String::from_utf8_lossy(&body));
        }
        serde_json::from_slice::<Value>(&body)
            .with_context(|| format!("{} {} answered no JSON", route.method, route.path))?;
        Ok(body.len())
    }

    async fn hello_world(&self) -> Result<Load> {
        let port = free_port()?;
        let mut cmd = self.command(&self.bins.hello, Side::Server);
        cmd.arg(format!("127.0.0.1:{port}"));
        let mut hello = Proc::spawn("api-hello", cmd, self.dir.join("hello.log"))?;
        let url = format!("http://127.0.0.1:{port}/");
        wait_ready(self.http, &mut hello, &url).await?;
        let route = Route::get("hello-world", "/");
        self.wrk(&format!("http://127.0.0.1:{port}"), "none", &route).await
    }

    /// `program`, on its side's CPUs when `--pin` is given.
    fn command(&self, program: &Path, side: Side) -> tokio::process::Command {
        match &self.bins.taskset {
            Some(taskset) => {
                let last = std::thread::available_parallelism().map_or(2, usize::from).max(2) - 1;
                let cpus = match side {
                    Side::Server => "0".to_owned(),
                    Side::Load => format!("1-{last}"),
                };
                let mut cmd = tokio::process::Command::new(taskset);
                cmd.arg("--cpu-list").arg(cpus).arg(program);
                cmd
            }
            _ => tokio::process::Command::new(program),
        }
    }

    async fn wrk(&self, api: &str, token: &str, route: &Route) -> Result<Load> {
        let mut cmd = self.command(&self.bins.wrk, Side::Load);
        cmd.arg(format!("-t{}", self.args.threads.unwrap_or(1)))
            .arg(format!("-c{}", self.args.connections))
            .arg(format!("-d{}s", self.args.duration))
            .arg("--latency")
            .arg("-H")
            .arg(format!("Authorization: Bearer {token}"));
        if let Some(body) = &route.body {
            let script = self.dir.join("post.lua");
            let lua = format!(
                "wrk.method = \"POST\"\nwrk.body = '{}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
                body.replace('\\', "\\\\").replace('\'', "\\'")
            );
            fs::write(&script, lua).context("writing the wrk script")?;
            cmd.arg("-s").arg(script);
        }
        cmd.arg(format!("{api}{}", route.path)).stdin(Stdio::null()).kill_on_drop(true);
        let out = cmd.output().await.context("running wrk")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!("wrk failed ({}): {text}{}", out.status, String::from_utf8_lossy(&out.stderr));
        }
        parse_wrk(&text).with_context(|| format!("reading wrk's output:\n{text}"))
    }

    /// The plans of the statements behind the routes, on the seeded database.
    async fn plans(&self) -> Result<Vec<(String, String, String)>> {
        let mut plans = Vec::new();
        for (what, sql) in plan_statements(self.db.backend, self.args.images, self.args.imports) {
            let explain = match self.db.backend {
                Backend::Sqlite => format!(".mode list\nEXPLAIN QUERY PLAN {sql};\n"),
                Backend::Postgres => format!("EXPLAIN (COSTS OFF) {sql};\n"),
            };
            let plan = self.db.run_sql(&explain).await.with_context(|| format!("explaining {what}"))?;
            plans.push((what.to_owned(), sql, plan.trim_end().to_owned()));
        }
        Ok(plans)
    }
}

fn describe(load: Option<Load>) -> String {
    match load {
        Some(l) => format!(
            "{:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms{}",
            l.requests_per_sec,
            l.p50_ms,
            l.p99_ms,
            if l.bad > 0 { format!("  ({} bad)", l.bad) } else { String::new() }
        ),
        None => "-".into(),
    }
}

/// Reads `Requests/sec`, the 50% and 99% latencies and the errors from `wrk --latency`'s report.
fn parse_wrk(text: &str) -> Result<Load> {
    let mut load = Load { requests_per_sec: f64::NAN, p50_ms: f64::NAN, p99_ms: f64::NAN, bad: 0 };
    for line in text.lines().map(str::trim) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["Requests/sec:", n] => load.requests_per_sec = n.parse()?,
            ["50%", t] => load.p50_ms = millis(t)?,
            ["99%", t] => load.p99_ms = millis(t)?,
            ["Non-2xx", "or", "3xx", "responses:", n] => load.bad += n.parse::<u64>()?,
            ["Socket", "errors:", rest @ ..] => {
                // "connect 0, read 0, write 0, timeout 3"
                for pair in rest.chunks(2) {
                    if let [_, n] = pair {
                        load.bad += n.trim_end_matches(',').parse::<u64>()?;
                    }
                }
            }
            _ => {}
        }
    }
    if load.requests_per_sec.is_nan() || load.p50_ms.is_nan() || load.p99_ms.is_nan() {
        bail!("no Requests/sec or latency distribution");
    }
    Ok(load)
}

/// `123.45us`, `1.23ms`, `2.00s` in milliseconds.
fn millis(text: &str) -> Result<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        bail!("`{text}` is not a duration");
    };
    Ok(number.parse::<f64>().with_context(|| format!("`{text}` is not a duration"))? * scale)
}

/// The seed: `images` catalog images with tags `v1` (recommended, with a digest) and `latest`, and
/// `imports` finished imports (one in twenty failed), one statement per table.
///
/// Image `i` is `svc-<i:06>` in `team<i % 200>` on one of three registries, in one of ten categories,
/// approved when `i % 10 < 8` (pending at 8, rejected at 9), described with its four-letter codename.
/// Import `i` copied `ghcr.io/team<i % 200>/job-<i:06>:v1` into `registry.internal`.
fn seed_sql(backend: Backend, images: u32, imports: u32) -> String {
    let categories = "CASE i % 10 WHEN 0 THEN 'database' WHEN 1 THEN 'web' WHEN 2 THEN 'runtime' WHEN 3 THEN 'monitoring' \
                      WHEN 4 THEN 'security' WHEN 5 THEN 'messaging' WHEN 6 THEN 'storage' WHEN 7 THEN 'ml' \
                      WHEN 8 THEN 'ci' ELSE 'networking' END";
    let status = "CASE WHEN i % 10 < 8 THEN 'approved' WHEN i % 10 = 8 THEN 'pending' ELSE 'rejected' END";
    let registry = "CASE i % 3 WHEN 0 THEN 'docker.io' WHEN 1 THEN 'ghcr.io' ELSE 'quay.io' END";
    let media = "application/vnd.oci.image.manifest.v1+json";
    match backend {
        Backend::Sqlite => format!(
            "PRAGMA busy_timeout = 5000;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {images}),
clock(us) AS (SELECT CAST(strftime('%s', 'now') AS INTEGER) * 1000000)
INSERT INTO images (image_name, registry, namespace, description, category, is_official, approval_status,
                    approved_by, approved_at, created_at, updated_at)
SELECT 'svc-' || printf('%06d', i), {registry}, 'team' || (i % 200),
       'Service ' || i || ' of team ' || (i % 200) || ' (codename '
         || char(97 + i % 26, 97 + (i / 26) % 26, 97 + (i / 676) % 26, 97 + (i / 17576) % 26) || ')',
       {categories}, 0, {status}, CASE WHEN i % 10 < 8 THEN 'admin' END, CASE WHEN i % 10 < 8 THEN us END,
       us + i, us + i
FROM n, clock;
INSERT INTO image_tags (image_id, tag, digest, size_bytes, architecture, os, is_recommended, is_deprecated,
                        created_at, updated_at)
SELECT id, 'v1', 'sha256:' || printf('%064x', id), 1000000 + id, 'amd64', 'linux', 1, 0, created_at, created_at
FROM images WHERE image_name LIKE 'svc-%';
INSERT INTO image_tags (image_id, tag, architecture, os, is_recommended, is_deprecated, created_at, updated_at)
SELECT id, 'latest', 'amd64', 'linux', 0, 0, created_at + 1, created_at + 1 FROM images WHERE image_name LIKE 'svc-%';
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {imports}),
clock(us) AS (SELECT CAST(strftime('%s', 'now') AS INTEGER) * 1000000 - {imports} * 1000000),
src(i, repo, us) AS (SELECT i, 'team' || (i % 200) || '/job-' || printf('%06d', i), us FROM n, clock)
INSERT INTO imports (source, target, source_registry, source_repository, target_registry, target_repository,
                     target_tag, platforms, state, attempts, max_attempts, timeout_secs, error, created_by,
                     created_at, updated_at, started_at, finished_at, digest, artifacts, layers)
SELECT 'ghcr.io/' || repo || ':v1', 'registry.internal/ghcr.io/' || repo || ':v1', 'ghcr.io', repo,
       'registry.internal', 'ghcr.io/' || repo, 'v1', '[]',
       CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'succeeded' END, 1, 3, 3600,
       CASE WHEN i % 20 = 0 THEN 'the source answered 404' END, 'admin',
       us + i * 1000000, us + i * 1000000 + 5000000, us + i * 1000000 + 1000, us + i * 1000000 + 5000000,
       CASE WHEN i % 20 <> 0 THEN 'sha256:' || printf('%064x', i) END,
       CASE WHEN i % 20 <> 0 THEN '[{{\"digest\":\"sha256:' || printf('%064x', i)
         || '\",\"media_type\":\"{media}\",\"os\":\"linux\",\"architecture\":\"amd64\",\"size\":' || (1000000 + i) || '}}]'
         ELSE '[]' END,
       '[]'
FROM src;
COMMIT;
"
        ),
        Backend::Postgres => format!(
            "BEGIN;
INSERT INTO images (image_name, registry, namespace, description, category, is_official, approval_status,
                    approved_by, approved_at, created_at, updated_at)
SELECT 'svc-' || lpad(i::text, 6, '0'), {registry}, 'team' || (i % 200),
       'Service ' || i || ' of team ' || (i % 200) || ' (codename '
         || chr(97 + i % 26) || chr(97 + (i / 26) % 26) || chr(97 + (i / 676) % 26) || chr(97 + (i / 17576) % 26)
         || ')',
       {categories}, false, {status}, CASE WHEN i % 10 < 8 THEN 'admin' END, CASE WHEN i % 10 < 8 THEN us END,
       us + i, us + i
FROM generate_series(1, {images}) AS i, (SELECT (extract(epoch FROM now()) * 1000000)::bigint AS us) AS clock;
INSERT INTO image_tags (image_id, tag, digest, size_bytes, architecture, os, is_recommended, is_deprecated,
                        created_at, updated_at)
SELECT id, 'v1', 'sha256:' || lpad(to_hex(id), 64, '0'), 1000000 + id, 'amd64', 'linux', true, false,
       created_at, created_at
FROM images WHERE image_name LIKE 'svc-%';
INSERT INTO image_tags (image_id, tag, architecture, os, is_recommended, is_deprecated, created_at, updated_at)
SELECT id, 'latest', 'amd64', 'linux', false, false, created_at + 1, created_at + 1
FROM images WHERE image_name LIKE 'svc-%';
INSERT INTO imports (source, target, source_registry, source_repository, target_registry, target_repository,
                     target_tag, platforms, state, attempts, max_attempts, timeout_secs, error, created_by,
                     created_at, updated_at, started_at, finished_at, digest, artifacts, layers)
SELECT 'ghcr.io/' || repo || ':v1', 'registry.internal/ghcr.io/' || repo || ':v1', 'ghcr.io', repo,
       'registry.internal', 'ghcr.io/' || repo, 'v1', '[]',
       CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'succeeded' END, 1, 3, 3600,
       CASE WHEN i % 20 = 0 THEN 'the source answered 404' END, 'admin',
       us + i * 1000000, us + i * 1000000 + 5000000, us + i * 1000000 + 1000, us + i * 1000000 + 5000000,
       CASE WHEN i % 20 <> 0 THEN 'sha256:' || lpad(to_hex(i), 64, '0') END,
       CASE WHEN i % 20 <> 0 THEN '[{{\"digest\":\"sha256:' || lpad(to_hex(i), 64, '0')
         || '\",\"media_type\":\"{media}\",\"os\":\"linux\",\"architecture\":\"amd64\",\"size\":' || (1000000 + i) || '}}]'
         ELSE '[]' END,
       '[]'
FROM (SELECT i, 'team' || (i % 200) || '/job-' || lpad(i::text, 6, '0') AS repo,
             (extract(epoch FROM now()) * 1000000)::bigint - {imports}::bigint * 1000000 AS us
      FROM generate_series(1::bigint, {imports}) AS i) AS src;
COMMIT;
ANALYZE;
"
        ),
    }
}

/// The statements behind the routes, as the store builds them (with the routes' values in place of the
/// bound parameters).
fn plan_statements(backend: Backend, images: u32, imports: u32) -> Vec<(&'static str, String)> {
    let image = images / 2 + 9;
    let import = imports / 2;
    let code = codename(u64::from(images / 2) + 17);
    let like = |text: &str| {
        format!(
            "(lower(image_name) LIKE lower('%{text}%') ESCAPE '\\' OR lower(description) LIKE lower('%{text}%') ESCAPE '\\')"
        )
    };
    let search = |text: &str| match backend {
        Backend::Sqlite => format!(
            "images.id IN (SELECT rowid FROM images_search WHERE images_search MATCH '\"{text}\"') AND {}",
            like(text)
        ),
        Backend::Postgres => like(text),
    };
    vec![
        ("catalog list: total", "SELECT CAST(SUM(image_count) AS BIGINT) FROM catalog_counts WHERE 1 = 1".to_owned()),
        ("catalog list: page", "SELECT * FROM images WHERE 1 = 1 ORDER BY id LIMIT 10 OFFSET 0".to_owned()),
        ("catalog list: tag counts", "SELECT image_id, count(*) FROM image_tags WHERE image_id IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10) GROUP BY image_id".to_owned()),
        ("catalog list: page after a cursor", format!("SELECT * FROM images WHERE id > {} ORDER BY id LIMIT 10", images - 10)),
        ("catalog status=approved: total", "SELECT CAST(SUM(image_count) AS BIGINT) FROM catalog_counts WHERE approval_status = 'approved'".to_owned()),
        ("catalog status=approved: page", "SELECT * FROM images WHERE approval_status = 'approved' ORDER BY id LIMIT 10".to_owned()),
        ("catalog category=database: page", "SELECT * FROM images WHERE category = 'database' ORDER BY id LIMIT 10".to_owned()),
        ("catalog status and category: page", "SELECT * FROM images WHERE approval_status = 'pending' AND category = 'ml' ORDER BY id LIMIT 10".to_owned()),
        ("catalog search, 1 match: total", format!("SELECT count(*) FROM images WHERE {}", search(&code))),
        ("catalog search, 1 match: page", format!("SELECT * FROM images WHERE {} ORDER BY id LIMIT 10", search(&code))),
        ("catalog search, 100 matches: page", format!("SELECT * FROM images WHERE {} ORDER BY id LIMIT 10", search("svc-0042"))),
        ("catalog categories", "SELECT category, CAST(SUM(image_count) AS BIGINT) FROM catalog_counts WHERE category <> '' GROUP BY category".to_owned()),
        ("catalog image", format!("SELECT * FROM images WHERE id = {image}")),
        ("catalog image: tags", format!("SELECT * FROM image_tags WHERE image_id = {image} ORDER BY created_at, id")),
        ("admission: catalog generation", "SELECT generation FROM catalog_generation WHERE id = 1".to_owned()),
        ("admission: image by name", "SELECT * FROM images WHERE registry = 'ghcr.io' AND namespace = 'team1' AND image_name = 'svc-050001' LIMIT 1".to_owned()),
        ("every request: the token", "SELECT * FROM api_tokens WHERE token_hash = 'x' LIMIT 1".to_owned()),
        ("approval requests, status=pending", "SELECT * FROM image_approval_requests WHERE status = 'pending' ORDER BY id LIMIT 10".to_owned()),
        ("events", "SELECT * FROM audit_events WHERE 1 = 1 ORDER BY occurred_at DESC, id DESC LIMIT 10".to_owned()),
        ("events of an image", "SELECT * FROM audit_events WHERE image_id = 1 ORDER BY occurred_at DESC, id DESC LIMIT 10".to_owned()),
        ("platform list: total", "SELECT CAST(SUM(import_count) AS BIGINT) FROM import_counts WHERE 1 = 1".to_owned()),
        ("platform list, newest first", "SELECT * FROM imports WHERE 1 = 1 ORDER BY created_at DESC, id DESC LIMIT 10".to_owned()),
        ("platform list, ready", "SELECT * FROM imports WHERE state = 'succeeded' ORDER BY created_at DESC, id DESC LIMIT 10".to_owned()),
        ("platform list, not ready", "SELECT * FROM imports WHERE state <> 'succeeded' ORDER BY created_at DESC, id DESC LIMIT 10".to_owned()),
        ("platform list by repository", "SELECT * FROM imports WHERE 1 = 1 ORDER BY target_repository ASC, id ASC LIMIT 10".to_owned()),
        ("platform list by tag", "SELECT * FROM imports WHERE 1 = 1 ORDER BY target_tag DESC, id DESC LIMIT 10".to_owned()),
        ("platform list of a tag: total", "SELECT count(*) FROM imports WHERE target_tag = 'v2'".to_owned()),
        ("platform list of a user", "SELECT * FROM imports WHERE created_by = 'dana' ORDER BY created_at DESC, id DESC LIMIT 10".to_owned()),
        ("platform import", format!("SELECT * FROM imports WHERE id = {import}")),
        ("platform exports", "SELECT * FROM exports WHERE phase = 'Succeeded' ORDER BY created_at DESC, id DESC LIMIT 10".to_owned()),
    ]
}

fn render(results: &[BackendResult], args: &ApiArgs, bins: &Bins, machine: &Machine, command_line: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{BEGIN}");
    let _ = writeln!(s, "## API under load: `cargo xtask bench api`\n");
    let _ = writeln!(s, "{METHOD}");
    let _ = writeln!(
        s,
        "`{command_line}` on {} CPUs ({}), {} RAM, Linux {}, commit {}; {}, `-t{} -c{} -d{}s`, {} run(s) of each route (medians){}.",
        machine.nproc,
        machine.cpu,
        machine.memory,
        machine.kernel,
        machine.commit,
        bins.wrk_version,
        args.threads.unwrap_or(1),
        args.connections,
        args.duration,
        args.runs,
        if bins.taskset.is_some() {
            "; the server and the hello-world on CPU 0, wrk on the other CPUs"
        } else {
            "; wrk, the server and the hello-world sharing every CPU"
        }
    );
    let _ = writeln!(
        s,
        "{} catalog images (two tags each) and {} finished imports; page size 10. The ratio is the route's requests per second over the hello-world's, measured just before the routes on the same machine. Targets: p99 under {P99_TARGET_MS} ms and a ratio of at least {:.0}% for every list and detail route; the admission check p99 under {ADMISSION_P99_TARGET_MS} ms and at least {:.0}%.\n",
        args.images,
        args.imports,
        RATIO_TARGET * 100.0,
        ADMISSION_RATIO_TARGET * 100.0
    );
    let _ = writeln!(
        s,
        "The load averages are the machine's (one minute, from `/proc/loadavg`) before and after each backend's run: above {} CPUs, other processes competed with the server and wrk for the cores, which lowers every figure, the hello-world's too, so the ratios suffer less than the absolute numbers.\n",
        machine.nproc
    );
    for r in results {
        let hello_rps = median(r.hello.iter().map(|l| l.requests_per_sec));
        let _ = writeln!(s, "### {}\n", r.backend.name());
        let _ = writeln!(
            s,
            "Seeded in {:.1} s. Load average {} before, {} after. Hello-world: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms.\n",
            r.seed_secs,
            r.load_before,
            r.load_after,
            hello_rps,
            median(r.hello.iter().map(|l| l.p50_ms)),
            median(r.hello.iter().map(|l| l.p99_ms)),
        );
        let _ = writeln!(s, "| route | request | req/s | ratio | p50 | p99 | body | target |");
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---|");
        for route in &r.routes {
            let rps = median(route.loads.iter().map(|l| l.requests_per_sec));
            let p50 = median(route.loads.iter().map(|l| l.p50_ms));
            let p99 = median(route.loads.iter().map(|l| l.p99_ms));
            let bad: u64 = route.loads.iter().map(|l| l.bad).sum();
            let ratio = rps / hello_rps;
            let (p99_target, ratio_target) = if route.route.admission {
                (ADMISSION_P99_TARGET_MS, ADMISSION_RATIO_TARGET)
            } else {
                (P99_TARGET_MS, RATIO_TARGET)
            };
            let mut misses = Vec::new();
            if p99 >= p99_target {
                misses.push("p99");
            }
            if ratio < ratio_target {
                misses.push("ratio");
            }
            if bad > 0 {
                misses.push("errors");
            }
            let verdict =
                if misses.is_empty() { "met".to_owned() } else { format!("**missed** ({})", misses.join(", ")) };
            let _ = writeln!(
                s,
                "| {} | `{} {}` | {:.0} | {:.0}% | {:.2} ms | {:.2} ms | {} B | {}{} |",
                route.route.name,
                route.route.method,
                route.route.path.replace('|', "\\|"),
                rps,
                ratio * 100.0,
                p50,
                p99,
                route.body_bytes,
                verdict,
                if bad > 0 { format!(", {bad} bad answers") } else { String::new() }
            );
        }
        let _ = writeln!(s, "\n<details><summary>Query plans on {} (seeded database)</summary>\n", r.backend.name());
        for (what, sql, plan) in &r.plans {
            let _ = writeln!(s, "**{what}**: `{}`\n\n```\n{plan}\n```\n", sql.replace('`', "'"));
        }
        let _ = writeln!(s, "</details>\n");
    }
    let _ = write!(s, "{END}");
    s
}

/// The document with this bench's section replaced, or added at the end.
fn merge_doc(existing: &str, section: &str) -> String {
    if let (Some(start), Some(end)) = (existing.find(BEGIN), existing.find(END))
        && start < end
    {
        let mut doc = existing.to_owned();
        doc.replace_range(start..end + END.len(), section);
        return doc;
    }
    let mut doc = existing.trim_end().to_owned();
    doc.push_str("\n\n");
    doc.push_str(section);
    doc.push('\n');
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_reports_are_read() {
        let report = "Running 10s test @ http://127.0.0.1:1/\n  2 threads and 16 connections\n  Latency Distribution\n     50%  160.00us\n     75%  300.00us\n     90%    1.00ms\n     99%    2.50ms\n  123 requests in 10.00s, 1.00MB read\n  Socket errors: connect 0, read 1, write 0, timeout 2\n  Non-2xx or 3xx responses: 4\nRequests/sec:  12345.67\nTransfer/sec:      1.51MB\n";
        let load = parse_wrk(report).unwrap();
        assert_eq!(load, Load { requests_per_sec: 12345.67, p50_ms: 0.16, p99_ms: 2.5, bad: 7 });
        assert!(parse_wrk("Requests/sec: 1\n").is_err());
        assert_eq!(millis("1.50s").unwrap(), 1500.0);
        assert!(millis("12").is_err());
    }

    #[test]
    fn codenames_differ_and_references_are_the_seeds() {
        assert_eq!(codename(0), "aaaa");
        assert_eq!(codename(4242), "ehga");
        assert_ne!(codename(50_017), codename(50_018));
        assert_eq!(seeded_image_reference(7), "ghcr.io/team7/svc-000007");
    }

    #[test]
    fn the_section_is_replaced_or_appended() {
        let doc = format!("# Benchmarks\n\nimport\n\n{BEGIN}\nold\n{END}\n\nafter\n");
        assert_eq!(
            merge_doc(&doc, &format!("{BEGIN}\nnew\n{END}")),
            format!("# Benchmarks\n\nimport\n\n{BEGIN}\nnew\n{END}\n\nafter\n")
        );
        assert_eq!(
            merge_doc("# Benchmarks\n", &format!("{BEGIN}\nnew\n{END}")),
            format!("# Benchmarks\n\n{BEGIN}\nnew\n{END}\n")
        );
    }
}
