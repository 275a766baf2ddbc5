//! A throwaway PostgreSQL cluster: a temporary directory, `initdb`, a postmaster on
//! 127.0.0.1 on a free port with settings that trade durability for speed, and the
//! database `imagegate_test`. Dropping the [`Cluster`] stops the server
//! (`pg_ctl stop -m immediate`) and removes the directory.

use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result, bail};

use crate::tools::{PgBin, is_root};

/// The database the tests use.
pub const DATABASE: &str = "imagegate_test";
/// The superuser `initdb` creates (`-U`), who logs in without a password (`-A trust`).
const SUPERUSER: &str = "postgres";
/// How many ports to try when another process takes the one we picked first.
const START_ATTEMPTS: usize = 3;

#[derive(Debug)]
pub struct Cluster {
    pg: PgBin,
    /// Removed on drop, after the server has stopped.
    dir: tempfile::TempDir,
    /// `(uid, gid)` to run initdb/pg_ctl as: PostgreSQL refuses to run as root.
    run_as: Option<(u32, u32)>,
    port: u16,
}

impl Cluster {
    pub fn start(pg: &PgBin) -> Result<Self> {
        let run_as = if is_root() {
            Some(system_user("postgres").context(
                "running as root, the cluster must run as the `postgres` system user \
                 (PostgreSQL refuses root), and there is none: install the Debian package \
                 `postgresql`, which creates it",
            )?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("imagegate-pg-")
            .tempdir_in(cluster_parent(run_as.is_some()))
            .context("creating a temporary directory for PostgreSQL")?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .with_context(|| format!("chown {} to postgres", dir.path().display()))?;
        }
        // From here on, dropping `cluster` cleans up whatever got started.
        let mut cluster = Self { pg: pg.clone(), dir, run_as, port: 0 };
        cluster.initdb()?;
        let mut attempt = 1;
        loop {
            cluster.port = free_port()?;
            match cluster.pg_ctl_start() {
                Ok(()) => break,
                Err(e) if attempt < START_ATTEMPTS && cluster.log().contains("could not bind") => {
                    eprintln!("xtask: port {} was taken ({e:#}); trying another", cluster.port);
                    attempt += 1;
                }
                Err(e) => {
                    return Err(e.context(format!("starting PostgreSQL; its log:\n{}", tail(&cluster.log(), 40))));
                }
            }
            if crate::interrupted() {
                bail!("interrupted");
            }
        }
        cluster.create_database()?;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:PORT/imagegate_test`
    pub fn url(&self) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{DATABASE}", self.port)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    /// Whether the postmaster still runs (`pg_ctl status`).
    pub fn is_running(&self) -> bool {
        self.pg_command(&self.pg.pg_ctl)
            .arg("status")
            .arg("-D")
            .arg(self.data_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A command for one of PostgreSQL's server programs, run as the `postgres` user
    /// when we are root, in the cluster's directory, with no stdin.
    fn pg_command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        if let Some((uid, gid)) = self.run_as {
            // std drops root's supplementary groups too when it changes the uid.
            cmd.uid(uid).gid(gid);
        }
        cmd.current_dir(self.dir.path())
            .stdin(Stdio::null())
            .env_remove("PGDATA")
            .env_remove("PGPORT")
            .env_remove("PGHOST");
        cmd
    }

    fn initdb(&self) -> Result<()> {
        let out = self
            .pg_command(&self.pg.initdb)
            .arg("-D")
            .arg(self.data_dir())
            .args(["-A", "trust", "-U", SUPERUSER])
            .args(["-E", "UTF8", "--locale=C", "--no-sync"])
            .output()
            .context("running initdb")?;
        check(&out, "initdb")?;
        // Speed over durability: the cluster lives for one test run.
        let settings = format!(
            "\n# cargo xtask: a throwaway cluster for tests\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             max_connections = 200\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             wal_level = minimal\n\
             max_wal_senders = 0\n",
            self.dir.path().display()
        );
        let conf = self.data_dir().join("postgresql.conf");
        let mut text = fs::read_to_string(&conf).context("reading postgresql.conf")?;
        text.push_str(&settings);
        fs::write(&conf, text).context("writing postgresql.conf")?;
        Ok(())
    }

    fn pg_ctl_start(&self) -> Result<()> {
        let out = self
            .pg_command(&self.pg.pg_ctl)
            .arg("start")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .args(["-w", "-t", "120", "-o"])
            .arg(format!("-p {}", self.port))
            .output()
            .context("running pg_ctl start")?;
        check(&out, "pg_ctl start")
    }

    fn create_database(&self) -> Result<()> {
        // psql as ourselves over TCP: `-A trust` lets the `postgres` role in.
        let out = Command::new(&self.pg.psql)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", SUPERUSER, "-d", "postgres", "-c"])
            .arg(format!("CREATE DATABASE {DATABASE}"))
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null())
            .output()
            .context("running psql")?;
        check(&out, "psql -c 'CREATE DATABASE …'")
    }

    /// `pg_ctl stop -m immediate`; if that fails, SIGKILL the postmaster by its pid file.
    fn stop(&self) {
        if !self.data_dir().join("postmaster.pid").exists() {
            return;
        }
        let stopped = self
            .pg_command(&self.pg.pg_ctl)
            .arg("stop")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "-t", "30"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if stopped {
            return;
        }
        let pid = fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().map(str::trim).map(str::to_owned));
        if let Some(pid) = pid.filter(|p| p.parse::<u32>().is_ok()) {
            eprintln!("xtask: pg_ctl stop failed; killing the postmaster (pid {pid})");
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        // `self.dir` (a TempDir) is removed right after this.
    }
}

/// Where the cluster's directory goes: the usual temporary directory, unless the
/// `postgres` user could not reach it (we are root and some ancestor is closed to
/// others) or it is too long for the unix socket path (108 bytes at most): then `/tmp`.
fn cluster_parent(as_other_user: bool) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let tmp = std::env::temp_dir();
    let reachable = !as_other_user
        || tmp.ancestors().all(|dir| fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0));
    if reachable && tmp.as_os_str().len() <= 60 { tmp } else { PathBuf::from("/tmp") }
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `(uid, gid)` of a system user, from `id`.
fn system_user(name: &str) -> Result<(u32, u32)> {
    let id = |flag: &str| -> Result<u32> {
        let out = Command::new("id").arg(flag).arg(name).output()?;
        if !out.status.success() {
            bail!("no user `{name}`");
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    };
    Ok((id("-u")?, id("-g")?))
}

fn check(out: &Output, what: &str) -> Result<()> {
    if out.status.success() {
        return Ok(());
    }
    let mut msg = format!("`{what}` failed ({})", out.status);
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        if !text.trim().is_empty() {
            let _ = write!(msg, "\n{}", tail(&text, 40));
        }
    }
    bail!(msg)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
