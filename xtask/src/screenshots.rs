//! `cargo xtask screenshots`: the web console's main pages as PNGs in `docs/console/`.
//!
//! Builds and starts `imagegate-server` on a fresh SQLite database (the seed's images), adds sample data
//! through the API (an approval request, a registry secret, an import from a real Distribution registry),
//! and photographs each page with headless Chromium over plain WebDriver (chromedriver), signed in as the
//! admin with a session cookie.

use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde_json::{Value, json};
use test_support::{Distribution, images};

use crate::{cargo, header, workspace_root};

const PASSWORD: &str = "screenshots-admin-password";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// The pages, by file name; each at 1280×800, and the catalog also at a phone's 390×844.
const PAGES: &[(&str, &str)] = &[
    ("login", "/console/login"),
    ("catalog", "/console/images"),
    ("image", "/console/images/1"),
    ("approvals", "/console/approvals"),
    ("imports", "/console/imports"),
    ("import", "/console/imports/1"),
    ("registries", "/console/registries"),
    ("registry-stats", "/console/harbor"),
];

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn run() -> Result<ExitCode> {
    let root = workspace_root();
    header("cargo build -p imagegate --bin imagegate-server");
    let status = Command::new(cargo())
        .args(["build", "-p", "imagegate", "--bin", "imagegate-server"])
        .current_dir(&root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building imagegate-server failed ({status})");
    }
    for binary in [CHROMEDRIVER, CHROMIUM] {
        if !Path::new(binary).exists() {
            bail!("{binary} is missing: install Debian's chromium and chromium-driver");
        }
    }
    let server_bin = root.join("target/debug/imagegate-server");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(shoot(&root, &server_bin))?;
    Ok(ExitCode::SUCCESS)
}

async fn shoot(root: &Path, server_bin: &Path) -> Result<()> {
    let work = tempfile::tempdir()?;
    let port = free_port()?;
    let base = format!("http://127.0.0.1:{port}");
    let _server = Killed(
        Command::new(server_bin)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--no-inventory", "--data-dir"])
            .arg(work.path().join("data"))
            .env_remove("IMAGEGATE_DATABASE_URL")
            .env_remove("IMAGEGATE_INTERNAL_REGISTRY")
            .env("IMAGEGATE_ADMIN_PASSWORD", PASSWORD)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting imagegate-server")?,
    );
    let http = reqwest::Client::new();
    wait_for(&http, &format!("{base}/healthz")).await?;
    let source = Distribution::try_start_in(work.path(), None).await.context("starting a registry")?;
    sample_data(&http, &base, &source).await?;
    let cookie = sign_in(&base).await?;

    let driver_port = free_port()?;
    let _driver = Killed(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?,
    );
    let driver = format!("http://127.0.0.1:{driver_port}");
    wait_for(&http, &format!("{driver}/status")).await?;
    let session: Value = http
        .post(format!("{driver}/session"))
        .json(&json!({ "capabilities": { "alwaysMatch": { "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,800"],
        } } } }))
        .send()
        .await?
        .json()
        .await?;
    let id = session["value"]["sessionId"].as_str().context(format!("no WebDriver session: {session}"))?;
    let session = format!("{driver}/session/{id}");
    let command = |path: &str, body: Value| {
        let http = http.clone();
        let url = format!("{session}{path}");
        async move { http.post(url).json(&body).send().await?.error_for_status().map(|_| ()) }
    };
    let out = root.join("docs/console");
    std::fs::create_dir_all(&out)?;
    let mut shots: Vec<(String, &str, (u32, u32))> =
        PAGES.iter().map(|(name, path)| (name.to_string(), *path, (1280, 800))).collect();
    shots.push(("catalog-phone".into(), "/console/images", (390, 844)));
    for (name, path, (width, height)) in shots {
        command("/window/rect", json!({ "width": width, "height": height })).await?;
        command("/url", json!({ "url": format!("{base}{path}") })).await?;
        if name == "login" {
            // The sign-in page as a visitor sees it; every later page signed in.
            command("/cookie", json!({ "cookie": { "name": "imagegate_session", "value": cookie, "path": "/" } }))
                .await?;
        }
        // Let the script's first live update land.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let shot: Value = http.get(format!("{session}/screenshot")).send().await?.json().await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["value"].as_str().context("no screenshot")?)
            .context("decoding the screenshot")?;
        let file = out.join(format!("{name}.png"));
        std::fs::write(&file, &png)?;
        eprintln!("wrote {} ({} KiB)", file.display(), png.len() / 1024);
    }
    http.delete(&session).send().await.ok();
    Ok(())
}

async fn wait_for(http: &reqwest::Client, url: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{url} did not answer within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A pending request, a registry secret verified against a real registry, and a finished import.
async fn sample_data(http: &reqwest::Client, base: &str, source: &Distribution) -> Result<()> {
    images::push_image(source, "team/web", "2.4", &[1_800_000, 700_000, 90_000]).await;
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}")).basic_auth("admin", Some(PASSWORD)).json(&body).send()
    };
    post("/catalog/api/v1/approval-requests", json!({ "image_name": "traefik", "tag": "v3.1", "notes": "edge proxy" }))
        .await?
        .error_for_status()?;
    post(
        "/catalog/api/v1/approval-requests",
        json!({ "image_name": "grafana", "namespace": "grafana", "tag": "11.2.0", "notes": "dashboards" }),
    )
    .await?
    .error_for_status()?;
    let secrets = "/oapis/image.theriseunion.io/v1alpha1/namespaces/default/registry-secrets";
    post(
        secrets,
        json!({
            "apiVersion": "image.theriseunion.io/v1alpha1", "kind": "RegistrySecret",
            "metadata": { "name": "team-registry", "annotations": { "image.theriseunion.io/display-name": "Team registry" } },
            "spec": { "domain": source.host(), "username": "robot", "password": "not-needed", "provider": "other", "insecure": true },
        }),
    )
    .await?
    .error_for_status()?;
    post(&format!("{secrets}/team-registry/verify"), json!({})).await?.error_for_status()?;
    let import = post("/api/v1/images:import", json!({ "source": format!("{}/team/web:2.4", source.host()) }))
        .await?
        .error_for_status()?;
    let answer: Value = import.json().await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let progress: Value = http
            .get(format!("{base}/api/v1/images/{}/progress", answer["alreadyImageId"]))
            .basic_auth("admin", Some(PASSWORD))
            .send()
            .await?
            .json()
            .await?;
        if progress["status"] != "importing" {
            break;
        }
        if Instant::now() > deadline {
            bail!("the sample import did not finish: {progress}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// The admin's session cookie, from the console's own sign-in form.
async fn sign_in(base: &str) -> Result<String> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let answer = http
        .post(format!("{base}/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("username=admin&password={PASSWORD}"))
        .send()
        .await?;
    let cookie = answer
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.strip_prefix("imagegate_session="))
        .context("signing in set no session cookie")?;
    Ok(cookie.to_owned())
}
