//! `cargo xtask …`: imagegate's developer tasks.
//!
//! * `cargo xtask test [--no-lint] [-- <extra args for the test runner>]` runs the whole
//!   suite (fmt, clippy, tests, doc tests) against a throwaway PostgreSQL cluster and the
//!   real CNCF Distribution binary, installing both from Debian's packages when missing.
//! * `cargo xtask pg` only starts the throwaway cluster, prints its URL, and waits for Ctrl-C.
//! * `cargo xtask bench import [--runs N] [--scenario NAME] [--quick]` compares imagegate's import with
//!   `skopeo copy --all` between two real registries and writes the results into `docs/benchmarks.md`.
//! * `cargo xtask screenshots` photographs the web console's main pages into `docs/console/`.
//! * `cargo xtask bench api [--backend sqlite|postgres] [--duration SECS]` seeds 100,000 catalog images and
//!   imports, loads the API's list and detail routes with `wrk` beside an axum hello-world, and writes the
//!   results and query plans into `docs/benchmarks.md`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

mod bench;
mod bench_api;
mod pg;
mod screenshots;
mod tools;

/// Set by the Ctrl-C / SIGTERM handler; every long wait polls it.
pub(crate) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The environment variable integration tests read the database URL from.
const DATABASE_URL_VAR: &str = "IMAGEGATE_TEST_DATABASE_URL";
/// The environment variable integration tests read the registry binary from.
const REGISTRY_BIN_VAR: &str = "IMAGEGATE_TEST_REGISTRY_BIN";

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "imagegate's developer tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run fmt, clippy, the tests and the doc tests against a throwaway PostgreSQL
    /// cluster and the real registry binary.
    Test(TestArgs),
    /// Start a throwaway PostgreSQL cluster, print its URL and wait until Ctrl-C.
    Pg,
    /// Benchmarks; see docs/benchmarks.md.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCmd,
    },
    /// Screenshots of the web console's main pages, written to docs/console/.
    Screenshots,
}

#[derive(Debug, Args)]
struct TestArgs {
    /// Skip `cargo fmt --check` and `cargo clippy`.
    #[arg(long)]
    no_lint: bool,
    /// Extra arguments for the test runner (`cargo nextest run` or `cargo test`), after `--`,
    /// e.g. `cargo xtask test -- -p test-support`.
    #[arg(last = true)]
    runner_args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = ctrlc::set_handler(|| {
        if !INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("\nxtask: interrupted; stopping and cleaning up…");
        }
    }) {
        eprintln!("xtask: warning: cannot handle Ctrl-C ({e}); cleanup on Ctrl-C may not happen");
    }
    let result = match cli.cmd {
        Cmd::Test(args) => test(args),
        Cmd::Pg => pg_only(),
        Cmd::Bench { what } => bench::run(what),
        Cmd::Screenshots => screenshots::run(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's directory).
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The cargo that runs us (`cargo xtask` sets `CARGO`), else `cargo` on PATH.
fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

pub(crate) fn header(text: &str) {
    eprintln!("\n==> xtask: {text}");
}

fn pg_only() -> Result<ExitCode> {
    header("checking tools (PostgreSQL, docker-registry, containerd)");
    let tools = tools::ensure()?;
    header("starting a throwaway PostgreSQL cluster");
    let cluster = pg::Cluster::start(&tools.pg)?;
    let url = cluster.url();
    eprintln!(
        "PostgreSQL is running: data in {}, log in {}",
        cluster.data_dir().display(),
        cluster.log_file().display()
    );
    println!("{DATABASE_URL_VAR}={url}");
    println!();
    println!("# for `cargo test -p …` in another shell:");
    println!("export {DATABASE_URL_VAR}='{url}'");
    println!("export {REGISTRY_BIN_VAR}='{}'", tools.registry.display());
    eprintln!("\nPress Ctrl-C to stop the cluster and remove its files.");
    while !interrupted() {
        if !cluster.is_running() {
            bail!("PostgreSQL stopped on its own; see the log above or {}", cluster.log_file().display());
        }
        thread::sleep(Duration::from_millis(200));
    }
    drop(cluster);
    Ok(ExitCode::from(130))
}

/// What became of one step of `cargo xtask test`.
#[derive(Debug)]
struct Step {
    name: String,
    /// `None` when the step was skipped because of an interruption.
    code: Option<i32>,
    took: Duration,
}

fn test(args: TestArgs) -> Result<ExitCode> {
    let root = workspace_root();
    header("checking tools (PostgreSQL, docker-registry, containerd)");
    let tools = tools::ensure()?;
    eprintln!("initdb/pg_ctl/postgres: {}", tools.pg.bindir.display());
    eprintln!("docker-registry:        {}", tools.registry.display());
    tools::ensure_containerd();
    if interrupted() {
        bail!("interrupted");
    }

    header("starting a throwaway PostgreSQL cluster");
    let cluster = pg::Cluster::start(&tools.pg)?;
    let url = cluster.url();
    eprintln!("{DATABASE_URL_VAR}={url}");
    eprintln!("{REGISTRY_BIN_VAR}={}", tools.registry.display());

    let env: Vec<(&str, OsString)> =
        vec![(DATABASE_URL_VAR, url.clone().into()), (REGISTRY_BIN_VAR, tools.registry.clone().into_os_string())];
    let command = |argv: &[&str]| {
        let mut cmd = Command::new(cargo());
        cmd.args(argv).current_dir(&root).stdin(Stdio::null());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        cmd
    };

    let mut planned: Vec<(String, Command)> = Vec::new();
    if args.no_lint {
        eprintln!("--no-lint: skipping cargo fmt and cargo clippy");
    } else {
        planned.push(("cargo fmt --all -- --check".into(), command(&["fmt", "--all", "--", "--check"])));
        planned.push((
            "cargo clippy --workspace --all-targets -- -D warnings".into(),
            command(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
        ));
    }

    let selection = PackageSelection::of(&args.runner_args);
    let mut runner_argv: Vec<&str> = if has_nextest(&root) {
        vec!["nextest", "run"]
    } else {
        eprintln!("cargo-nextest is not installed: the tests run with `cargo test`");
        vec!["test"]
    };
    if !selection.picks_packages && !selection.names_workspace {
        runner_argv.push("--workspace");
    }
    runner_argv.push("--no-fail-fast");
    runner_argv.extend(args.runner_args.iter().map(String::as_str));
    let runner_index = planned.len();
    planned.push((format!("cargo {}", runner_argv.join(" ")), command(&runner_argv)));

    let mut doc_argv: Vec<&str> = vec!["test"];
    if !selection.picks_packages {
        doc_argv.push("--workspace");
    }
    doc_argv.extend(selection.args.iter().map(String::as_str).filter(|a| !matches!(*a, "--workspace" | "--all")));
    doc_argv.push("--doc");
    planned.push((format!("cargo {}", doc_argv.join(" ")), command(&doc_argv)));

    let total = planned.len();
    let mut steps = Vec::new();
    for (i, (name, mut cmd)) in planned.into_iter().enumerate() {
        if interrupted() {
            steps.push(Step { name, code: None, took: Duration::ZERO });
            continue;
        }
        header(&format!("[{}/{total}] {name}", i + 1));
        let started = Instant::now();
        let status = run_interruptibly(&mut cmd).with_context(|| format!("running `{name}`"))?;
        steps.push(Step { name, code: Some(exit_code(status)), took: started.elapsed() });
    }

    header("stopping PostgreSQL");
    drop(cluster);

    header("summary");
    for step in &steps {
        let verdict = match step.code {
            None => "skipped".to_string(),
            Some(0) => "ok".to_string(),
            Some(code) => format!("FAILED (exit {code})"),
        };
        eprintln!("  {verdict:<18} {:>7.1}s  {}", step.took.as_secs_f64(), step.name);
    }

    if interrupted() {
        return Ok(ExitCode::from(130));
    }
    // The test runner's exit code wins; then the doc tests'; then the linters'.
    let runner = steps[runner_index].code.unwrap_or(1);
    let code = if runner != 0 { runner } else { steps.iter().filter_map(|s| s.code).find(|&c| c != 0).unwrap_or(0) };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Whether `cargo nextest --version` works.
fn has_nextest(root: &Path) -> bool {
    Command::new(cargo())
        .args(["nextest", "--version"])
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The package-selection flags among the runner's extra arguments: when the developer
/// picks packages (`-p foo`), `--workspace` must not be added (it would win), and the doc
/// tests run for the same packages.
#[derive(Debug, Default)]
struct PackageSelection {
    picks_packages: bool,
    names_workspace: bool,
    args: Vec<String>,
}

impl PackageSelection {
    fn of(runner_args: &[String]) -> Self {
        let mut sel = Self::default();
        let mut it = runner_args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--" => break,
                "-p" | "--package" | "--exclude" => {
                    sel.picks_packages |= arg != "--exclude";
                    sel.args.push(arg.clone());
                    if let Some(value) = it.next() {
                        sel.args.push(value.clone());
                    }
                }
                "--workspace" | "--all" => {
                    sel.names_workspace = true;
                    sel.args.push(arg.clone());
                }
                a if a.starts_with("--package=") || (a.starts_with("-p") && a.len() > 2) => {
                    sel.picks_packages = true;
                    sel.args.push(arg.clone());
                }
                a if a.starts_with("--exclude=") => sel.args.push(arg.clone()),
                _ => {}
            }
        }
        sel
    }
}

/// Runs `cmd` to completion. On Ctrl-C the child (in our process group) gets the signal
/// itself; on SIGTERM we pass SIGINT on, and kill it if it lingers.
fn run_interruptibly(cmd: &mut Command) -> Result<ExitStatus> {
    let mut child = cmd.spawn()?;
    let mut interrupted_at: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if interrupted() {
            match interrupted_at {
                None => {
                    interrupted_at = Some(Instant::now());
                    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).stderr(Stdio::null()).status();
                }
                Some(at) if at.elapsed() > Duration::from_secs(15) => {
                    let _ = child.kill();
                }
                Some(_) => {}
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::PackageSelection;

    fn sel(args: &[&str]) -> PackageSelection {
        PackageSelection::of(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn package_selection() {
        let s = sel(&["-p", "test-support", "--", "-p", "x"]);
        assert!(s.picks_packages);
        assert_eq!(s.args, ["-p", "test-support"]);
        let s = sel(&["--package=store", "-pxtask", "--exclude", "bin"]);
        assert!(s.picks_packages);
        assert_eq!(s.args, ["--package=store", "-pxtask", "--exclude", "bin"]);
        let s = sel(&["--exclude", "bin", "--", "some_filter"]);
        assert!(!s.picks_packages);
        assert!(!sel(&["some_filter"]).picks_packages);
    }
}
