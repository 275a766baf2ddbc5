//! Workers as separate processes on one PostgreSQL database: the real `imagegate-server` (API only, or
//! with its embedded worker) and `imagegate-worker` binaries, real Distribution registries, and test
//! proxies in front of them that slow, break or corrupt the traffic and count what crosses the wire.
//!
//! Needs `IMAGEGATE_TEST_DATABASE_URL` (`cargo xtask test` sets it; or `cargo xtask pg`).

mod common;

use common::{free_port, wait_until_up};

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use image_core::{
    import::{ImportId, ImportJob, ImportState},
    store::{ImportStore, JobQueue},
};
use serde_json::{Value, json};
use test_support::{Distribution, images, proxy::Proxy};

const ADMIN_PASSWORD: &str = "workers-test-password";
const MIB: usize = 1024 * 1024;
/// How often a worker looks at an empty queue, in seconds.
const POLL_SECS: &str = "0.2";
/// Manifest types a `HEAD` of a target manifest accepts.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

// ---- child processes ----------------------------------------------------------------------------

/// A child process, killed (SIGKILL) and reaped on drop; its output goes to a file, printed when the
/// test fails.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let file = fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null()).stdout(Stdio::from(file.try_clone().unwrap())).stderr(Stdio::from(file));
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc { name: name.to_owned(), child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics, with the log, when the process has exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{} exited ({status}); its log:\n{}", self.name, self.log());
        }
    }

    /// `kill -9 <pid>`, then reaps it.
    fn kill9(&mut self) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-9", &pid]).status().unwrap();
        assert!(killed.success(), "kill -9 {pid} failed");
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "{} was killed, yet exited with {status}", self.name);
    }

    /// Waits until the log contains `needle`.
    async fn wait_for_log(&mut self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log().contains(needle) {
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "{} did not log `{needle}` within {within:?}:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The ids of the imports this worker started an attempt of, from its JSON log.
    fn started_imports(&self) -> Vec<i64> {
        self.log()
            .lines()
            .filter(|l| l.contains("import attempt started"))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["import_id"].as_i64())
            .collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(150)..];
            eprintln!("---- {} log (last {} lines) ----\n{}", self.name, tail.len(), tail.join("\n"));
        }
    }
}

// ---- the setting ------------------------------------------------------------------------------------

/// A source registry and an internal (target) registry, each behind a test proxy, and a database schema
/// of their own. Programs started from here import from `src` into `dst`.
struct Setup {
    db_url: String,
    source: Distribution,
    target: Distribution,
    /// In front of `source`: the registry imports read from.
    src: Proxy,
    /// In front of `target`: the programs' `--internal-registry`.
    dst: Proxy,
    http: reqwest::Client,
    dir: tempfile::TempDir,
    /// `--worker-poll-secs` of the programs started from now on.
    poll_secs: &'static str,
}

impl Setup {
    async fn new() -> Setup {
        Setup::with_source(Distribution::start().await).await
    }

    /// A setting whose source registry is `source` (one that requires credentials, say).
    async fn with_source(source: Distribution) -> Setup {
        let (db_url, target) = tokio::join!(test_support::postgres_url(), Distribution::start());
        let (src, dst) = (Proxy::start(&source.url()).await, Proxy::start(&target.url()).await);
        Setup {
            db_url,
            source,
            target,
            src,
            dst,
            http: reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap(),
            dir: tempfile::tempdir().unwrap(),
            poll_secs: POLL_SECS,
        }
    }

    /// A program on this setting's database and registries, with nothing from the environment.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("IMAGEGATE_") || key == "DOCKER_CONFIG" {
                cmd.env_remove(key.as_ref());
            }
        }
        cmd.env("RUST_LOG", "info,tower_http=warn")
            .arg("--database-url")
            .arg(&self.db_url)
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--log-format")
            .arg("json")
            .arg("--internal-registry")
            .arg(self.dst.url())
            // No credentials: a developer's ~/.docker/config.json stays out of it.
            .arg("--registry-config")
            .arg(self.dir.path().join("no-docker-config.json"))
            .arg("--worker-poll-secs")
            .arg(self.poll_secs);
        cmd
    }

    /// `imagegate-server`, with its embedded worker or (`api_only`) without; returns it and its base URL.
    async fn server(&self, api_only: bool) -> (Proc, String) {
        let port = free_port();
        let mut cmd = self.command(env!("CARGO_BIN_EXE_imagegate-server"));
        cmd.arg("--listen").arg(format!("127.0.0.1:{port}")).env("IMAGEGATE_ADMIN_PASSWORD", ADMIN_PASSWORD);
        if api_only {
            cmd.arg("--no-worker");
        }
        let mut server = Proc::spawn("imagegate-server", cmd, self.dir.path().join("server.log"));
        let base = format!("http://127.0.0.1:{port}");
        // On a panic here, `server`'s drop prints the end of its log.
        wait_until_up(&mut server.child, &format!("{base}/readyz")).await;
        (server, base)
    }

    /// `imagegate-worker` with `extra` options, once it is claiming jobs.
    async fn worker(&self, name: &str, extra: &[&str]) -> Proc {
        let mut cmd = self.command(env!("CARGO_BIN_EXE_imagegate-worker"));
        cmd.args(extra);
        let mut worker = Proc::spawn(name, cmd, self.dir.path().join(format!("{name}.log")));
        worker.wait_for_log("worker started", Duration::from_secs(30)).await;
        worker
    }

    /// `source` as the import API takes it: the source registry through its proxy.
    fn source_ref(&self, repo_and_tag: &str) -> String {
        format!("{}/{repo_and_tag}", self.src.host())
    }

    async fn store(&self) -> store::DbStore {
        store::DbStore::connect(&self.db_url).await.unwrap()
    }

    /// `POST /api/v1/images:import`; the new import's id.
    async fn import(&self, base: &str, source: &str) -> i64 {
        let resp = self
            .http
            .post(format!("{base}/api/v1/images:import"))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .json(&json!({ "source": source }))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap();
        assert!(status.is_success() && answer["state"] == 1, "import of {source}: {status} {answer}");
        answer["alreadyImageId"].as_i64().unwrap()
    }

    /// The platform API's status of an import: `importing`, `ready` or `failed`.
    async fn status(&self, base: &str, id: i64) -> String {
        let listing: Value = self
            .http
            .get(format!("{base}/api/v1/images?page_size=100"))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let images = listing["images"].as_array().unwrap_or_else(|| panic!("{listing}"));
        let artifact = images
            .iter()
            .flat_map(|g| g["artifacts"].as_array().cloned().unwrap_or_default())
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("import {id} is not listed: {listing}"));
        artifact["status"].as_str().unwrap().to_owned()
    }

    /// Waits until the import is no longer `importing`; its final status.
    async fn finished(&self, base: &str, id: i64, within: Duration, procs: &mut [&mut Proc]) -> String {
        let deadline = Instant::now() + within;
        loop {
            let status = self.status(base, id).await;
            if status != "importing" {
                return status;
            }
            for p in procs.iter_mut() {
                p.assert_running();
            }
            assert!(Instant::now() < deadline, "import {id} still importing after {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Where the source's `repo` lands in the internal registry: under the source's host.
    fn internal(&self, repo: &str) -> String {
        format!("{}/{repo}", self.src.host().replace(':', "_"))
    }

    /// The digest of the target's copy of the source's `repo:reference`, asked of the target itself; None
    /// when absent.
    async fn target_manifest(&self, repo: &str, reference: &str) -> Option<String> {
        let repo = self.internal(repo);
        let resp = self
            .http
            .head(format!("{}/v2/{repo}/manifests/{reference}", self.target.url()))
            .header("accept", MANIFEST_TYPES)
            .send()
            .await
            .unwrap();
        match resp.status().as_u16() {
            200 => Some(resp.headers()["docker-content-digest"].to_str().unwrap().to_owned()),
            404 => None,
            other => panic!("HEAD manifest {repo}:{reference}: {other}"),
        }
    }

    /// Whether the target holds the blob in `repo`, asked of the target itself.
    async fn target_has_blob(&self, repo: &str, digest: &str) -> bool {
        let repo = self.internal(repo);
        let resp = self.http.head(format!("{}/v2/{repo}/blobs/{digest}", self.target.url())).send().await.unwrap();
        match resp.status().as_u16() {
            200 => true,
            404 => false,
            other => panic!("HEAD blob {repo}@{digest}: {other}"),
        }
    }
}

async fn import_record(store: &store::DbStore, id: i64) -> ImportJob {
    store.get_import(ImportId::new(id)).await.unwrap()
}

// ---- the tests ----------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_worker_is_replaced_and_no_blob_is_uploaded_twice() {
    let setup = Setup::new().await;
    let image = images::push_image(&setup.source, "team/big", "1", &[2 * MIB; 6]).await;
    // 12 MiB at 2 MiB/s: the copy takes about six seconds, time enough to kill the worker midway.
    setup.src.throttle(2 * MIB as u64);
    let (mut server, base) = setup.server(true).await;
    let mut a = setup.worker("worker-a", &["--worker-lease-secs", "3"]).await;

    let id = setup.import(&base, &setup.source_ref("team/big:1")).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while setup.dst.completed_uploads().is_empty() {
        a.assert_running();
        server.assert_running();
        assert!(Instant::now() < deadline, "worker A completed no blob upload within 30 s");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    a.kill9();
    let uploaded_by_a = setup.dst.completed_uploads();
    assert_eq!(setup.dst.count("PUT", "/manifests/"), 0, "the copy ended before worker A was killed");
    assert_eq!(a.started_imports(), [id], "worker A ran the import");
    let store = setup.store().await;
    assert!(import_record(&store, id).await.state.is_active());

    // Worker B takes the job over once A's lease (3 s) lapses, and skips what A completed.
    let mut b = setup.worker("worker-b", &["--worker-lease-secs", "3"]).await;
    let status = setup.finished(&base, id, Duration::from_secs(60), &mut [&mut server, &mut b]).await;
    assert_eq!(status, "ready", "{:?}", import_record(&store, id).await.error);

    assert_eq!(setup.target_manifest("team/big", "1").await.as_deref(), Some(image.digest.as_str()));
    let uploads = setup.dst.completed_uploads();
    for blob in image.blobs() {
        assert!(setup.target_has_blob("team/big", &blob).await, "{blob} is missing from the target");
        let count = uploads.get(&blob).copied().unwrap_or(0);
        assert!(count <= 1, "{blob} was uploaded {count} times; by A: {uploaded_by_a:?}, in all: {uploads:?}");
    }
    assert_eq!(setup.dst.count("PUT", "/manifests/1"), 1);
    let record = import_record(&store, id).await;
    assert_eq!(record.state, ImportState::Succeeded);
    assert!(record.attempts >= 2, "attempts: {}", record.attempts);
    assert_eq!(b.started_imports(), [id]);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_share_the_queue_without_taking_a_job_twice() {
    const IMPORTS: usize = 6;
    let setup = Setup::new().await;
    let mut pushed = Vec::new();
    for i in 0..IMPORTS {
        pushed.push(images::push_image(&setup.source, &format!("team/app{i}"), "1", &[192 * 1024, 64 * 1024]).await);
    }
    // 1.5 MiB in all at 512 KiB/s: each import takes a while, so both workers get some.
    setup.src.throttle(512 * 1024);
    let (mut server, base) = setup.server(true).await;
    let (mut a, mut b) = tokio::join!(
        setup.worker("worker-a", &["--worker-concurrency", "1"]),
        setup.worker("worker-b", &["--worker-concurrency", "1"])
    );

    let mut ids = Vec::new();
    for i in 0..IMPORTS {
        ids.push(setup.import(&base, &setup.source_ref(&format!("team/app{i}:1"))).await);
    }
    for &id in &ids {
        let status = setup.finished(&base, id, Duration::from_secs(60), &mut [&mut server, &mut a, &mut b]).await;
        assert_eq!(status, "ready", "import {id}");
    }

    let store = setup.store().await;
    for (i, (id, image)) in ids.iter().zip(&pushed).enumerate() {
        let repo = format!("team/app{i}");
        assert_eq!(setup.target_manifest(&repo, "1").await.as_deref(), Some(image.digest.as_str()));
        let puts: Vec<u16> = setup
            .dst
            .requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.path == format!("/v2/{}/manifests/1", setup.internal(&repo)))
            .map(|r| r.status)
            .collect();
        assert_eq!(puts, [201], "manifest PUTs of {repo}:1");
        assert_eq!(import_record(&store, *id).await.attempts, 1, "import {id} was attempted more than once");
    }
    let uploads = setup.dst.completed_uploads();
    assert!(uploads.values().all(|&n| n == 1), "a blob was uploaded twice: {uploads:?}");

    // Each import ran on exactly one worker, and both workers ran some.
    let (by_a, by_b) = (a.started_imports(), b.started_imports());
    let all: BTreeSet<i64> = by_a.iter().chain(&by_b).copied().collect();
    assert_eq!(by_a.len() + by_b.len(), IMPORTS, "A ran {by_a:?}, B ran {by_b:?}");
    assert_eq!(all, ids.iter().copied().collect(), "A ran {by_a:?}, B ran {by_b:?}");
    assert!(!by_a.is_empty() && !by_b.is_empty(), "one worker ran everything: A {by_a:?}, B {by_b:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_rides_out_a_flaky_source() {
    /// Blob GETs one attempt of a copy makes before giving up on a blob: the client's 5 tries of a
    /// request, for each of the copy engine's 3 tries of a blob.
    const GETS_BEFORE_THE_COPY_GIVES_UP: usize = 5 * 3;
    let setup = Setup::new().await;
    let image = images::push_image(&setup.source, "team/flaky", "1", &[300 * 1024, 200 * 1024, 100 * 1024]).await;
    let victim = image.manifests[0].blobs[1].clone(); // the first layer; blobs[0] is the config
    let (mut server, base) = setup.server(true).await;
    // Queued before the faults: the API's own check of the source is not what this test is about.
    let id = setup.import(&base, &setup.source_ref("team/flaky:1")).await;

    // More 503s for one layer than an attempt absorbs, so that the job itself is retried; a few for
    // whatever blob comes first (the config), which the client's retries absorb; and one 429.
    setup.src.fail_next("GET", &format!("/blobs/{victim}"), 503, GETS_BEFORE_THE_COPY_GIVES_UP, None);
    setup.src.fail_next("GET", "/blobs/sha256:", 503, 3, None);
    setup.src.fail_next("HEAD", "/manifests/", 429, 1, Some(1));
    let mut worker = setup.worker("worker", &[]).await;

    let store = setup.store().await;
    let mut errors_seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let record = loop {
        let record = import_record(&store, id).await;
        if let Some(error) = &record.error {
            errors_seen.insert(error.clone());
        }
        match record.state {
            ImportState::Succeeded => break record,
            ImportState::Queued | ImportState::Running => {}
            other => panic!("import {id} ended {other}: {:?}", record.error),
        }
        worker.assert_running();
        assert!(Instant::now() < deadline, "import {id} not done after 60 s; errors: {errors_seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(setup.finished(&base, id, Duration::from_secs(5), &mut [&mut server]).await, "ready");

    assert_eq!(setup.src.faults_left(), 0);
    let injected = setup.src.injected();
    assert_eq!(injected, BTreeMap::from([(429, 1), (503, GETS_BEFORE_THE_COPY_GIVES_UP + 3)]));
    assert_eq!(
        setup.src.requests().iter().filter(|r| r.injected && r.method == "HEAD").map(|r| r.status).collect::<Vec<_>>(),
        [429]
    );
    assert!(record.attempts >= 2, "the job was not retried: attempts {}", record.attempts);
    assert!(
        errors_seen.iter().any(|e| e.contains(victim.as_str())),
        "no retry error names the failing blob {victim}: {errors_seen:?}"
    );
    assert_eq!(record.error, None, "a succeeded import shows no error");
    assert_eq!(setup.target_manifest("team/flaky", "1").await.as_deref(), Some(image.digest.as_str()));
    assert!(setup.target_has_blob("team/flaky", &victim).await);
    assert_eq!(setup.dst.completed_uploads().get(&victim), Some(&1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_source_blob_fails_the_import_and_stores_nothing() {
    let setup = Setup::new().await;
    let image = images::push_image(&setup.source, "team/bad", "1", &[200 * 1024, 100 * 1024]).await;
    let bad = image.manifests[0].blobs[1].clone();
    setup.src.corrupt_blob(&bad);
    // The server's embedded worker runs this one.
    let (mut server, base) = setup.server(false).await;

    let id = setup.import(&base, &setup.source_ref("team/bad:1")).await;
    let status = setup.finished(&base, id, Duration::from_secs(60), &mut [&mut server]).await;
    assert_eq!(status, "failed");

    let record = import_record(&setup.store().await, id).await;
    assert_eq!(record.state, ImportState::Failed);
    let error = record.error.unwrap_or_default();
    assert!(error.contains("digest mismatch") && error.contains(bad.as_str()), "{error}");
    assert_eq!(record.attempts, 1, "a corrupt blob is not retried");
    assert!(setup.src.count("GET", &format!("/blobs/{bad}")) >= 1);

    assert!(!setup.target_has_blob("team/bad", &bad).await, "the corrupt blob landed in the target");
    assert!(!setup.dst.completed_uploads().contains_key(&bad));
    assert_eq!(setup.target_manifest("team/bad", "1").await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_separate_worker_starts_a_job_queued_elsewhere_without_waiting_for_its_poll() {
    let mut setup = Setup::new().await;
    // The worker looks for jobs every 60 s: only PostgreSQL's announcement of a job can start it sooner.
    setup.poll_secs = "60";
    let first = images::push_image(&setup.source, "team/app", "1", &[64 * 1024, 1024]).await;
    let second = images::push_image(&setup.source, "team/app", "2", &[2048]).await;
    let (mut server, base) = setup.server(true).await;
    let mut worker = setup.worker("worker", &[]).await;
    worker.wait_for_log("workers wake when any process queues a job", Duration::from_secs(5)).await;

    // One after the other: the second is queued while the worker waits again.
    for (tag, image) in [("1", &first), ("2", &second)] {
        let started = Instant::now();
        let id = setup.import(&base, &setup.source_ref(&format!("team/app:{tag}"))).await;
        let status = setup.finished(&base, id, Duration::from_secs(20), &mut [&mut server, &mut worker]).await;
        assert_eq!(status, "ready", "import of team/app:{tag}");
        eprintln!("team/app:{tag} imported {:?} after the POST", started.elapsed());
        assert_eq!(setup.target_manifest("team/app", tag).await.as_deref(), Some(image.digest.as_str()));
    }
}

/// Two namespaces hold a secret for one registry, one with the right password and one with a wrong one, and a
/// Repository each that uses it. Synced at the same moment by one worker, again and again, each sync uses its
/// own namespace's secret: the right one always succeeds and the wrong one always fails. (With credentials
/// kept per registry host for the whole process, whichever secret was handed over last served both.)
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_syncs_use_each_their_own_namespace_secret() {
    let source = Distribution::start_with_basic_auth("puller", "right-password").await;
    let setup = Setup::with_source(source).await;
    let (mut server, base) = setup.server(true).await;
    // The scheduler looks once, at start, before the repositories exist: only the test triggers syncs.
    let mut worker = setup.worker("worker", &["--scheduler-interval-secs", "3600", "--worker-concurrency", "2"]).await;
    let kube = format!("{base}/oapis/image.theriseunion.io/v1alpha1/namespaces");
    let post = |url: String, body: Value| {
        let request = setup.http.post(url).basic_auth("admin", Some(ADMIN_PASSWORD)).json(&body);
        async move {
            let resp = request.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for (namespace, password) in [("team-right", "right-password"), ("team-wrong", "wrong-password")] {
        let secret = json!({
            "apiVersion": "image.theriseunion.io/v1alpha1",
            "kind": "RegistrySecret",
            "metadata": { "name": "pull", "namespace": namespace },
            "spec": { "domain": setup.src.host(), "username": "puller", "password": password, "provider": "other" }
        });
        let (status, body) = post(format!("{kube}/{namespace}/registry-secrets"), secret).await;
        assert_eq!(status, 201, "{body}");
        let repository = json!({
            "apiVersion": "image.theriseunion.io/v1alpha1",
            "kind": "Repository",
            "metadata": { "name": "app", "namespace": namespace },
            "spec": {
                "repository": "team/app",
                "tag": "1",
                "registryRef": { "name": "pull", "namespace": namespace },
                "syncInterval": "24h"
            }
        });
        let (status, body) = post(format!("{kube}/{namespace}/repositories"), repository).await;
        assert_eq!(status, 201, "{body}");
    }
    let store = setup.store().await;
    let repository = |namespace: &'static str| {
        let request =
            setup.http.get(format!("{kube}/{namespace}/repositories/app")).basic_auth("admin", Some(ADMIN_PASSWORD));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };

    // Each round moves the tag to a new image whose layer downloads take a quarter of a second, so that the
    // two syncs overlap: a credential shared between them would show.
    setup.src.throttle(256 * 1024);
    let mut image = None;
    for round in 1..=10 {
        let pushed = images::push_image(&setup.source, "team/app", "1", &[64 * 1024, 1024]).await;
        let ((s1, right), (s2, wrong)) = tokio::join!(
            post(format!("{kube}/team-right/repositories/app/sync"), json!({})),
            post(format!("{kube}/team-wrong/repositories/app/sync"), json!({})),
        );
        assert_eq!((s1, s2), (200, 200), "round {round}: {right} {wrong}");
        assert_eq!(
            (right["message"].as_str(), wrong["message"].as_str()),
            (Some("Sync task submitted"), Some("Sync task submitted"))
        );
        // A sync's final outcome and the removal of its job are one transaction: no job left, both ended.
        let deadline = Instant::now() + Duration::from_secs(30);
        while store.job_types().await.unwrap().iter().any(|(kind, n)| kind == "sync" && *n > 0) {
            server.assert_running();
            worker.assert_running();
            assert!(Instant::now() < deadline, "round {round}: the syncs did not end");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (right, wrong) = tokio::join!(repository("team-right"), repository("team-wrong"));
        assert_eq!(right["status"]["syncStatus"], "Success", "round {round}: {right}");
        assert_eq!(right["status"]["manifest"]["digest"], pushed.digest, "round {round}");
        assert_eq!(wrong["status"]["syncStatus"], "Failed", "round {round}: {wrong}");
        let message = wrong["status"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("refused the credentials for user puller"), "round {round}: {message}");
        assert!(!message.contains("wrong-password"), "round {round}: {message}");
        image = Some(pushed);
    }
    let image = image.unwrap();
    assert_eq!(setup.target_manifest("team/app", "1").await.as_deref(), Some(image.digest.as_str()));
    setup.src.throttle(0);

    // A platform import uses the secret it names, and nothing else: no secret (anonymous here), a wrong
    // one, a missing one and one of another registry are refused at once; the right one imports.
    let import = |body: Value| post(format!("{base}/api/v1/images:import"), body);
    let source = setup.source_ref("team/app:1");
    let (status, body) = import(json!({ "source": source })).await;
    assert_eq!(status, 422, "a source that cannot be read now: {body}");
    assert!(body["message"].as_str().unwrap().contains("refused anonymous access"), "{body}");
    let named = |namespace: &str, name: &str| json!({ "source": source, "registrySecret": { "namespace": namespace, "name": name } });
    let (status, body) = import(named("team-wrong", "pull")).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().unwrap().contains("refused the credentials for user puller"), "{body}");
    let (status, body) = import(named("team-right", "absent")).await;
    assert_eq!((status, body["message"].as_str()), (400, Some("registry secret team-right/absent not found")));
    let (status, body) = import(json!({ "source": "docker.io/library/nginx:1", "registrySecret": { "namespace": "team-right", "name": "pull" } })).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("not for docker.io"), "{body}");
    let (status, body) = import(named("team-right", "pull")).await;
    assert_eq!((status, body["state"].as_i64()), (200, Some(1)), "{body}");
    let id = body["alreadyImageId"].as_i64().unwrap();
    let status = setup.finished(&base, id, Duration::from_secs(30), &mut [&mut server, &mut worker]).await;
    assert_eq!(status, "ready");
    let record = import_record(&store, id).await;
    assert_eq!(record.registry_secret.map(|r| (r.namespace, r.name)), Some(("team-right".into(), "pull".into())));
}
