//! The node inventory with real programs: `imagegate-server` and `imagegate-worker` reading real containerd
//! instances over CRI (`test_support::containerd`), a real Distribution registry as the internal registry,
//! SQLite for one node and PostgreSQL for a fleet.
//!
//! Where containerd cannot run, each test prints `skipped: …` and passes. The fleet tests need
//! `IMAGEGATE_TEST_DATABASE_URL` (`cargo xtask test` sets it; or `cargo xtask pg`).

mod common;

use common::{free_port, wait_until_up};

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use test_support::{
    Distribution,
    containerd::{ArchiveImage, Containerd, oci_archive},
    images,
};

const ADMIN_PASSWORD: &str = "inventory-test-password";

fn containerd() -> Option<Containerd> {
    match Containerd::start() {
        Ok(containerd) => Some(containerd),
        Err(reason) => {
            eprintln!("skipped: containerd cannot run here: {reason}");
            None
        }
    }
}

/// A child process, killed and reaped on drop; its output goes to a file, printed when the test fails.
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

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{} exited ({status}); its log:\n{}", self.name, self.log());
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("---- {} log ----\n{}", self.name, self.log());
        }
    }
}

/// A program with nothing from the environment, on `db_url`, with `registry` as its internal registry.
fn command(program: &str, dir: &Path, db_url: &str, registry: &str) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("IMAGEGATE_") || key == "DOCKER_CONFIG" {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd.env("RUST_LOG", "info,tower_http=warn")
        .arg("--database-url")
        .arg(db_url)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--internal-registry")
        .arg(registry)
        .arg("--registry-config")
        .arg(dir.join("no-docker-config.json"))
        .arg("--worker-poll-secs")
        .arg("0.2");
    cmd
}

async fn start_server(mut cmd: Command, dir: &Path) -> (Proc, String) {
    let port = free_port();
    cmd.arg("--listen").arg(format!("127.0.0.1:{port}")).env("IMAGEGATE_ADMIN_PASSWORD", ADMIN_PASSWORD);
    let mut server = Proc::spawn("imagegate-server", cmd, dir.join(format!("server-{port}.log")));
    let base = format!("http://127.0.0.1:{port}");
    // On a panic here, `server`'s drop prints its log.
    wait_until_up(&mut server.child, &format!("{base}/readyz")).await;
    (server, base)
}

async fn get(base: &str, path: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn post(base: &str, path: &str, body: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap();
    assert!(status.is_success(), "POST {path}: {status} {answer}");
    answer
}

/// Waits until the runtime lists `names` images by tag or digest: the CRI plugin learns of imported images
/// from containerd's events, one name at a time.
async fn settled(containerd: &Containerd, names: usize) {
    use image_core::inventory::ImageRuntime as _;
    let runtime = node_inventory::CriRuntime::new(&containerd.endpoint()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let report = runtime.report().await.unwrap();
        let listed: usize = report.images.iter().map(|i| i.repo_tags.len().max(i.repo_digests.len().min(1))).sum();
        if listed == names {
            return;
        }
        assert!(Instant::now() < deadline, "containerd did not list {names} names: {report:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn short(image: &ArchiveImage) -> String {
    image.id["sha256:".len()..][..12].to_owned()
}

/// Seed 004's `GET /images` against a node whose containerd has three images, one of them on the ignore
/// list, beside an internal registry with one tagged image: the exact JSON, ids and digests redacted.
#[tokio::test]
async fn the_seeds_images_from_a_real_containerd_and_registry() {
    let Some(containerd) = containerd() else { return };
    let scratch = containerd.scratch();
    let kube_proxy = oci_archive(
        &scratch,
        "kube-proxy",
        &["k8s.gcr.io/kube-proxy:v1.23.5", "k8s.gcr.io/kube-proxy:latest"],
        &[1_500_000, 200_000],
    );
    let untagged = oci_archive(&scratch, "untagged", &["docker.io/library/busybox@DIGEST"], &[4_000]);
    let ignored = oci_archive(&scratch, "pause", &["registry.k8s.io/pause:3.9"], &[700]);
    for image in [&kube_proxy, &untagged, &ignored] {
        containerd.import(&image.archive).unwrap();
    }
    settled(&containerd, 4).await;
    let registry = Distribution::start().await;
    let pushed = images::push_image(&registry, "my-project/my-app", "latest", &[250_000]).await;

    let dir = tempfile::tempdir().unwrap();
    let ignore = dir.path().join("images_to_ignore.txt");
    fs::write(&ignore, format!("IMAGE ID\n{}\n", short(&ignored))).unwrap();
    let db_url = format!("sqlite://{}", dir.path().join("imagegate.db").display());
    let mut cmd = command(env!("CARGO_BIN_EXE_imagegate-server"), dir.path(), &db_url, &registry.url());
    cmd.arg("--cri-endpoint")
        .arg(containerd.endpoint())
        .arg("--node-name")
        .arg("node-1")
        .arg("--images-to-ignore")
        .arg(&ignore);
    let (_server, base) = start_server(cmd, dir.path()).await;

    let (status, mut answer) = get(&base, "/images").await;
    assert_eq!(status, 200, "{answer}");
    // crictl lists images in the runtime's order; the snapshot wants one.
    let rows = answer["containerd_images"].as_array_mut().unwrap();
    rows.sort_by_key(|r| format!("{}:{}", r["repository"], r["tag"]));
    for row in rows.iter() {
        let expected =
            if row["repository"] == "docker.io/library/busybox" { short(&untagged) } else { short(&kube_proxy) };
        assert_eq!(row["image_id"], expected.as_str(), "{row}");
    }
    assert!(rows.iter().all(|r| r["repository"] != "registry.k8s.io/pause"), "the ignored image is left out: {rows:?}");
    assert_eq!(answer["harbor_images"][0]["digest"], pushed.digest.as_str());
    insta::assert_json_snapshot!("images_seed_004", answer, {
        ".containerd_images[].image_id" => "[image id]",
        ".harbor_images[].digest" => "[digest]",
    });

    // The same node's images through its name, and without credentials nothing.
    let (status, by_name) = get(&base, "/images?node=node-1").await;
    assert_eq!(status, 200);
    assert_eq!(by_name["containerd_images"].as_array().unwrap().len(), 3, "{by_name}");
    let anonymous = reqwest::get(format!("{base}/images")).await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let (status, unknown) = get(&base, "/images?node=nowhere").await;
    assert_eq!(status, 404, "{unknown}");
}

/// A missing or malformed ignore list stops the server at start, naming the file and the line.
#[test]
fn a_bad_ignore_list_is_a_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let malformed = dir.path().join("ignore.csv");
    fs::write(&malformed, "IMAGE ID\nnginx:latest\n").unwrap();
    for (file, expected) in
        [(dir.path().join("missing.csv"), "missing.csv".to_owned()), (malformed, "line 2: \"nginx:latest\"".to_owned())]
    {
        let out = Command::new(env!("CARGO_BIN_EXE_imagegate-server"))
            .env_remove("IMAGEGATE_DATABASE_URL")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--images-to-ignore")
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with {}", file.display());
        assert!(stderr.contains("--images-to-ignore") && stderr.contains(&expected), "{stderr}");
    }
}

/// A runtime that does not answer and a registry that is down are each an entry of `errors`, with 200 and
/// the other list still there; then both down at once.
#[tokio::test]
async fn a_source_that_is_down_is_an_error_entry_not_a_failure() {
    let Some(mut containerd) = containerd() else { return };
    let image = oci_archive(&containerd.scratch(), "app", &["docker.io/library/app:1"], &[1_000]);
    containerd.import(&image.archive).unwrap();
    settled(&containerd, 1).await;
    let registry = Distribution::start().await;
    images::push_image(&registry, "team/app", "1", &[1_000]).await;
    let dir = tempfile::tempdir().unwrap();
    let registry_url = registry.url();
    let mut cmd = command(
        env!("CARGO_BIN_EXE_imagegate-server"),
        dir.path(),
        &format!("sqlite://{}", dir.path().join("imagegate.db").display()),
        &registry_url,
    );
    cmd.arg("--cri-endpoint").arg(containerd.endpoint()).arg("--node-name").arg("node-1");
    let (_server, base) = start_server(cmd, dir.path()).await;
    let (_, both) = get(&base, "/images").await;
    assert_eq!(both["errors"], json!([]), "{both}");
    assert_eq!(both["containerd_images"].as_array().unwrap().len(), 1);
    assert_eq!(both["harbor_images"].as_array().unwrap().len(), 1);

    drop(registry);
    let (status, answer) = get(&base, "/images").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["containerd_images"], both["containerd_images"]);
    assert_eq!(answer["harbor_images"], json!([]));
    let errors = answer["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{answer}");
    assert_eq!(errors[0]["source"], "harbor");
    assert!(!errors[0]["reason"].as_str().unwrap().is_empty());

    containerd.kill();
    let (status, answer) = get(&base, "/images").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["containerd_images"], json!([]));
    let sources: Vec<&str> =
        answer["errors"].as_array().unwrap().iter().map(|e| e["source"].as_str().unwrap()).collect();
    assert_eq!(sources, ["containerd", "harbor"], "{answer}");
    let reason = answer["errors"][0]["reason"].as_str().unwrap();
    assert!(reason.contains(&containerd.endpoint()), "the reason names the runtime's endpoint: {reason}");
}

/// Two workers with different node names, each on its own containerd, report into one PostgreSQL; the API
/// server (which reads no runtime itself) lists both nodes, shows each node's images, and reports drift:
/// an image on both nodes the catalog lacks, a tag the catalog does not list, not an approved one. A worker
/// that stops is shown stale after three intervals, and is still listed.
#[tokio::test]
async fn two_nodes_report_into_one_database_with_drift_and_a_stale_node() {
    let (Some(node_a), Some(node_b)) = (containerd(), containerd()) else { return };
    // The same image on both nodes.
    let shared = oci_archive(&node_a.scratch(), "shared", &["docker.io/acme/cache:7"], &[1_000]);
    let approved = oci_archive(&node_a.scratch(), "approved", &["docker.io/acme/web:1.25"], &[2_000]);
    let unlisted = oci_archive(&node_b.scratch(), "unlisted", &["docker.io/acme/web:1.27"], &[3_000]);
    for (node, image) in [(&node_a, &shared), (&node_b, &shared), (&node_a, &approved), (&node_b, &unlisted)] {
        node.import(&image.archive).unwrap();
    }
    settled(&node_a, 2).await;
    settled(&node_b, 2).await;
    let db_url = test_support::postgres_url().await;
    let registry = Distribution::start().await;
    let dir = tempfile::tempdir().unwrap();

    let mut cmd = command(env!("CARGO_BIN_EXE_imagegate-server"), dir.path(), &db_url, &registry.url());
    cmd.arg("--no-worker").arg("--no-inventory");
    let (_server, base) = start_server(cmd, dir.path()).await;
    let worker = |name: &str, containerd: &Containerd| {
        let mut cmd = command(env!("CARGO_BIN_EXE_imagegate-worker"), dir.path(), &db_url, &registry.url());
        cmd.arg("--cri-endpoint")
            .arg(containerd.endpoint())
            .arg("--node-name")
            .arg(name)
            .arg("--inventory-interval")
            // Stale after 6 s: long enough that a busy machine does not make node-a look stale.
            .arg("2s");
        Proc::spawn(name, cmd, dir.path().join(format!("{name}.log")))
    };
    let mut worker_a = worker("node-a", &node_a);
    let mut worker_b = worker("node-b", &node_b);

    // Both nodes report.
    let deadline = Instant::now() + Duration::from_secs(30);
    let nodes = loop {
        let (status, answer) = get(&base, "/api/v1/nodes").await;
        assert_eq!(status, 200, "{answer}");
        let nodes = answer["nodes"].as_array().cloned().unwrap_or_default();
        if nodes.len() == 2 && nodes.iter().all(|n| n["image_count"] == 2) {
            break nodes;
        }
        worker_a.assert_running();
        worker_b.assert_running();
        assert!(Instant::now() < deadline, "the nodes did not report: {answer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(nodes[0]["name"], "node-a");
    assert_eq!(nodes[1]["name"], "node-b");
    for node in &nodes {
        assert_eq!(node["runtime_name"], "containerd", "{node}");
        assert!(node["runtime_version"].as_str().is_some_and(|v| !v.is_empty()), "{node}");
        assert!(node["last_report_at"].is_string(), "{node}");
        assert_eq!(node["stale"], false, "{node}");
        assert_eq!(node["interval_seconds"], 2);
        assert_eq!(node["last_error"], Value::Null);
    }

    // Each node's images, by its name.
    let (status, a) = get(&base, "/images?node=node-a").await;
    assert_eq!(status, 200, "{a}");
    let mut tags: Vec<String> = a["containerd_images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}:{}", r["repository"].as_str().unwrap(), r["tag"].as_str().unwrap()))
        .collect();
    tags.sort();
    assert_eq!(tags, ["docker.io/acme/cache:7", "docker.io/acme/web:1.25"]);
    assert_eq!(a["errors"], json!([]), "{a}");

    // The catalog approves acme/web with the tag 1.25 only.
    let web = post(
        &base,
        "/catalog/api/v1/images",
        json!({"image_name": "web", "registry": "docker.io", "namespace": "acme", "approval_status": "approved"}),
    )
    .await;
    post(&base, &format!("/catalog/api/v1/images/{}/tags", web["id"]), json!({"tag": "1.25"})).await;
    let (status, drift) = get(&base, "/api/v1/drift").await;
    assert_eq!(status, 200, "{drift}");
    assert_eq!(
        drift,
        json!({
            "drift": [
                {
                    "image": "docker.io/acme/cache:7",
                    "image_id": short(&shared),
                    "reason": "not_approved",
                    "message": "This image must be approved before deployment",
                    "nodes": ["node-a", "node-b"],
                },
                {
                    "image": "docker.io/acme/web:1.27",
                    "image_id": short(&unlisted),
                    "reason": "tag_not_listed",
                    "message": "This tag is not in the approved tags list",
                    "nodes": ["node-b"],
                },
            ],
            "nodes": ["node-a", "node-b"],
        })
    );
    let (_, drift_a) = get(&base, "/api/v1/drift?node=node-a").await;
    assert_eq!(drift_a["drift"].as_array().unwrap().len(), 1, "{drift_a}");
    assert_eq!(drift_a["drift"][0]["image"], "docker.io/acme/cache:7");
    assert_eq!(drift_a["drift"][0]["nodes"], json!(["node-a"]));
    let (status, _) = get(&base, "/api/v1/drift?node=nowhere").await;
    assert_eq!(status, 404);

    // node-b's worker stops: after three intervals it is stale, still listed, its last images kept.
    worker_b.kill();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, answer) = get(&base, "/api/v1/nodes").await;
        let nodes = answer["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 2, "{answer}");
        if nodes[1]["stale"] == true {
            assert_eq!(nodes[0]["stale"], false, "node-a still reports: {answer}");
            assert_eq!(nodes[1]["image_count"], 2);
            break;
        }
        worker_a.assert_running();
        assert!(Instant::now() < deadline, "node-b did not turn stale: {answer}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, b) = get(&base, "/images?node=node-b").await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["containerd_images"].as_array().unwrap().len(), 2);
    let reason = b["errors"][0]["reason"].as_str().unwrap_or_default();
    assert!(b["errors"][0]["source"] == "containerd" && reason.contains("node-b is stale"), "{b}");
}

/// A worker whose runtime stops answering records why, keeps the node's last images, and is not stale.
#[tokio::test]
async fn a_node_whose_runtime_stops_keeps_its_last_images_with_the_reason() {
    let Some(mut containerd) = containerd() else { return };
    let image = oci_archive(&containerd.scratch(), "app", &["docker.io/library/app:1"], &[1_000]);
    containerd.import(&image.archive).unwrap();
    settled(&containerd, 1).await;
    let db_url = test_support::postgres_url().await;
    let registry = Distribution::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(env!("CARGO_BIN_EXE_imagegate-server"), dir.path(), &db_url, &registry.url());
    cmd.arg("--no-worker").arg("--no-inventory");
    let (_server, base) = start_server(cmd, dir.path()).await;
    let mut cmd = command(env!("CARGO_BIN_EXE_imagegate-worker"), dir.path(), &db_url, &registry.url());
    cmd.arg("--cri-endpoint").arg(containerd.endpoint()).arg("--node-name").arg("node-c");
    cmd.arg("--inventory-interval").arg("1s");
    let mut worker = Proc::spawn("node-c", cmd, dir.path().join("node-c.log"));

    let node = |answer: &Value| answer["nodes"][0].clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while node(&get(&base, "/api/v1/nodes").await.1)["image_count"] != 1 {
        worker.assert_running();
        assert!(Instant::now() < deadline, "node-c did not report");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    containerd.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    let down = loop {
        let down = node(&get(&base, "/api/v1/nodes").await.1);
        if down["last_error"].is_string() {
            break down;
        }
        assert!(Instant::now() < deadline, "node-c did not record the failure: {down}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(down["image_count"], 1, "{down}");
    assert_eq!(down["stale"], false, "{down}");
    assert!(down["last_error"].as_str().unwrap().contains(&containerd.endpoint()), "{down}");
    let (_, images) = get(&base, "/images?node=node-c").await;
    assert_eq!(images["containerd_images"].as_array().unwrap().len(), 1, "{images}");
    assert_eq!(images["errors"][0]["source"], "containerd", "{images}");
}
