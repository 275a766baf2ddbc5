//! The real `imagegate-server` binary against the Harbor stand-in of `test-support`, found by `auto`: an
//! import creates its project, the scan reaches the catalog tag, seed 000's statistics, a push made beside
//! imagegate shows in the platform listing through the webhook, and the scheduled refresh of a pending scan.

mod common;

use common::{Server, free_port};

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use test_support::harbor::{ADMIN, Harbor};

const PASSWORD: &str = "s3cret-enough";
const WEBHOOK_SECRET: &str = "Bearer harbor-says-hello";

async fn start(harbor: &Harbor) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    Server::spawn(
        Command::new(env!("CARGO_BIN_EXE_imagegate-server"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--internal-registry", &harbor.url(), "--internal-project", "mirror"])
            .args(["--internal-registry-username", ADMIN.0, "--internal-registry-password", ADMIN.1])
            .args(["--harbor-webhook-secret", WEBHOOK_SECRET, "--scan-refresh-interval", "1s"])
            .args(["--worker-poll-secs", "0.2", "--no-inventory"])
            .env_remove("IMAGEGATE_DATABASE_URL")
            .env("IMAGEGATE_ADMIN_PASSWORD", PASSWORD)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        port,
        dir,
    )
    .await
}

struct Api<'a> {
    server: &'a Server,
    http: reqwest::Client,
}

impl Api<'_> {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request =
            self.http.request(method, format!("{}{path}", self.server.base)).basic_auth("admin", Some(PASSWORD));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Reads `path` until `done` holds, for at most 30 s.
    async fn wait_for(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let body = self.get(path).await;
            if done(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "{what}: {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_runs_against_harbor() {
    let harbor = Harbor::start().await;
    let source = test_support::Distribution::start().await;
    let pushed = test_support::images::push_image(&source, "team/app", "1.0", &[4096, 2048]).await;
    harbor.set_scan_result(&[("Critical", 1), ("High", 2)]);
    let server = start(&harbor).await;
    let api = Api { server: &server, http: reqwest::Client::new() };
    assert_eq!(harbor.project("mirror"), None);

    // The import lands in a new private project, and its scan reaches the catalog tag.
    let (status, answer) = api
        .send(
            reqwest::Method::POST,
            "/api/v1/images:import",
            Some(json!({ "source": format!("{}/team/app:1.0", source.host()) })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let listing = api
        .wait_for("/api/v1/images", "the import did not finish", |l| {
            l["images"][0]["artifacts"][0]["status"] == "ready"
        })
        .await;
    assert_eq!(listing["images"][0]["artifacts"][0]["digest"], json!(pushed.digest), "{listing}");
    assert_eq!(harbor.project("mirror"), Some(false), "created, private");
    let catalog = api.get("/catalog/api/v1/images?search=app").await;
    let image_id = catalog["images"][0]["id"].as_i64().unwrap();
    let details_path = format!("/catalog/api/v1/images/{image_id}");
    let scanned =
        |d: &Value| d["tags"][0]["security_scan_status"] == "passed" && d["tags"][0]["vulnerabilities_count"] == 3;
    let details = api.wait_for(&details_path, "the scan did not reach the catalog", scanned).await;
    let tag_id = details["tags"][0]["id"].as_i64().unwrap();
    assert_eq!(harbor.scan_requests().len(), 1, "one scan asked for");

    // Seed 000's statistics, from Harbor's own health and statistics.
    let stats = api.get("/api/v1/harbor/stats").await;
    assert_eq!(stats["status"], "healthy", "{stats}");
    assert_eq!(
        (stats["private_project_count"].as_u64(), stats["private_repo_count"].as_u64()),
        (Some(1), Some(1)),
        "{stats}"
    );
    harbor.set_unhealthy("jobservice", Some("down for maintenance"));
    let stats = api.get("/api/v1/harbor/stats").await;
    assert_eq!(stats["status"], "unhealthy", "{stats}");
    let jobservice = stats["components"].as_array().unwrap().iter().find(|c| c["name"] == "jobservice").cloned();
    assert_eq!(jobservice.map(|c| c["status"].clone()), Some(json!("unhealthy")), "{stats}");
    harbor.set_unhealthy("jobservice", None);

    // A scan left pending (its job gave up, its webhook was lost) is read again by the scheduled refresh,
    // which asks Harbor for no new scan.
    let pending = json!({ "security_scan_status": "pending", "vulnerabilities_count": null });
    let (status, body) = api.send(reqwest::Method::PUT, &format!("{details_path}/tags/{tag_id}"), Some(pending)).await;
    assert_eq!(status, 200, "{body}");
    api.wait_for(&details_path, "the refresh did not read the pending scan again", scanned).await;
    assert_eq!(harbor.scan_requests().len(), 1, "the refresh only reads");

    // A tag pushed straight into Harbor shows in the platform listing once Harbor's webhook says so.
    let repository = format!("mirror/{}/team/app", source.host().replace(':', "_"));
    let side = test_support::images::push_image(harbor.registry(), &repository, "2.0", &[512]).await;
    let event = json!({
        "type": "PUSH_ARTIFACT",
        "occur_at": 1_700_000_000,
        "operator": "admin",
        "event_data": {
            "resources": [{"digest": side.digest, "tag": "2.0", "resource_url": format!("{}/{repository}:2.0", harbor.host())}],
            "repository": {"name": "app", "namespace": "mirror", "repo_full_name": repository, "repo_type": "private"},
        },
    });
    let webhook = format!("{}/api/v1/webhooks/harbor", server.base);
    let refused = api.http.post(&webhook).json(&event).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(api.get("/api/v1/images?tag=2.0").await["totalCount"], 0);
    let accepted = api.http.post(&webhook).header("Authorization", WEBHOOK_SECRET).json(&event).send().await.unwrap();
    assert_eq!(accepted.status().as_u16(), 202);
    let answer: Value = accepted.json().await.unwrap();
    assert_eq!((answer["tags_changed"].as_u64(), answer["artifacts_changed"].as_u64()), (Some(1), Some(1)), "{answer}");
    let listing = api.get("/api/v1/images?tag=2.0").await;
    let artifact = &listing["images"][0]["artifacts"][0];
    assert_eq!(
        (artifact["digest"].as_str(), artifact["userName"].as_str(), artifact["arch"].as_str()),
        (Some(side.digest.as_str()), Some("harbor-webhook"), Some("amd64")),
        "{listing}"
    );
}
