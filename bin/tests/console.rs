//! The web console in a real headless Chromium, driven over WebDriver: sign in, search the catalog, a
//! user's request and a refused admin action, an admin's approval, an import from a real Distribution
//! registry whose progress reaches 100% on the page without a reload, and sign-out.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`cargo xtask test` installs them); where either cannot
//! start, the test prints `skipped: …` and passes.

mod common;

use common::{Server, free_port};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use test_support::{Distribution, images};

const PASSWORD: &str = "console-admin-password";
const USER_PASSWORD: &str = "console-user-password";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// A chromedriver process, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Chromium over WebDriver, or why it cannot run here.
async fn browser() -> Result<(Driver, Client), String> {
    for binary in [CHROMEDRIVER, CHROMIUM] {
        if !std::path::Path::new(binary).exists() {
            return Err(format!("{binary} is missing (Debian: chromium, chromium-driver)"));
        }
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {CHROMEDRIVER}: {e}"))?;
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,800"],
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&driver.url).await {
            Ok(client) => return Ok((driver, client)),
            Err(e) if Instant::now() > deadline => return Err(format!("chromium does not start: {e}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

async fn start_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    Server::spawn(
        Command::new(env!("CARGO_BIN_EXE_imagegate-server"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--no-inventory")
            .env_remove("IMAGEGATE_DATABASE_URL")
            .env_remove("IMAGEGATE_INTERNAL_REGISTRY")
            .env("IMAGEGATE_ADMIN_PASSWORD", PASSWORD)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        port,
        dir,
    )
    .await
}

async fn fill(client: &Client, css: &str, text: &str) {
    let field = client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(client: &Client, css: &str) {
    client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}")).click().await.unwrap();
}

async fn text(client: &Client, css: &str) -> String {
    client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}")).text().await.unwrap()
}

async fn sign_in(client: &Client, base: &str, username: &str, password: &str) {
    client.goto(&format!("{base}/console/login")).await.unwrap();
    fill(client, "#username", username).await;
    fill(client, "#password", password).await;
    click(client, "form[action='/console/login'] button[type=submit]").await;
    client.wait().for_url(format!("{base}/console/images").parse().unwrap()).await.unwrap();
}

async fn sign_out(client: &Client, base: &str) {
    client.goto(&format!("{base}/console/images")).await.unwrap();
    click(client, "form[action='/console/logout'] button").await;
    client.wait().for_url(format!("{base}/console/login").parse().unwrap()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_in_a_browser() {
    let (_driver, client) = match browser().await {
        Ok(found) => found,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let source = Distribution::start().await;
    images::push_image(&source, "console/app", "1.0", &[2_000_000, 1_500_000, 300_000]).await;
    let server = start_server().await;
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{base}/api/v1/users"))
        .basic_auth("admin", Some(PASSWORD))
        .json(&json!({ "username": "ursula", "password": USER_PASSWORD, "role": "user" }))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{}", created.text().await.unwrap());

    // A user asks for the image, and is refused an admin's page.
    sign_in(&client, &base, "ursula", USER_PASSWORD).await;
    assert!(client.find_all(Locator::Css("a[href='/console/images/new']")).await.unwrap().is_empty());
    client.goto(&format!("{base}/console/approvals")).await.unwrap();
    let reference = format!("{}/console/app:1.0", source.host());
    fill(&client, "#image", &reference).await;
    fill(&client, "#notes", "for the browser test").await;
    click(&client, "form[action='/console/approvals'] button").await;
    client.wait().for_element(Locator::Css("#pending li.card")).await.unwrap();
    assert!(text(&client, "#pending").await.contains(&reference));
    assert!(client.find_all(Locator::Css("#pending button.primary")).await.unwrap().is_empty(), "no approve button");
    client.goto(&format!("{base}/console/images/new")).await.unwrap();
    assert!(text(&client, ".error-message").await.contains("this needs the admin role"));
    sign_out(&client, &base).await;

    // An admin searches, approves with a category, and imports.
    sign_in(&client, &base, "admin", PASSWORD).await;
    fill(&client, "#search", "redis").await;
    click(&client, "form.filters button").await;
    client.wait().for_element(Locator::Css("a[href='/console/images/1']")).await.unwrap();
    let listed = text(&client, "tbody").await;
    assert!(listed.contains("redis") && !listed.contains("postgres"), "{listed}");

    client.goto(&format!("{base}/console/approvals")).await.unwrap();
    fill(&client, "#pending input[name=category]", "testing").await;
    click(&client, "#pending button.primary").await;
    client.wait().for_element(Locator::Css("#history .status-approved")).await.unwrap();
    assert!(text(&client, "#pending").await.contains("Nothing waits for a decision."));

    client.goto(&format!("{base}/console/imports")).await.unwrap();
    fill(&client, "#source", &reference).await;
    click(&client, "form[action='/console/imports'] button").await;
    client.wait().for_element(Locator::Css("#progress")).await.unwrap();
    // A mark on the page that a reload would wipe.
    client.execute("window.notReloaded = true;", vec![]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let percent = text(&client, "[data-field=percent]").await;
        let state = text(&client, "[data-field=state]").await;
        if percent == "100%" && state == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "the import stayed at {percent} ({state})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let kept = client.execute("return window.notReloaded === true;", vec![]).await.unwrap();
    assert_eq!(kept, json!(true), "the page reloaded");
    let layers = client.find_all(Locator::Css("[data-field=layers] li[data-digest]")).await.unwrap();
    assert!(layers.len() >= 3, "every layer has its bar: {}", layers.len());
    for layer in layers {
        assert!(layer.text().await.unwrap().ends_with("100%"));
        let bar = layer.find(Locator::Css("progress")).await.unwrap();
        assert_eq!(bar.attr("value").await.unwrap().as_deref(), Some("100"));
    }
    sign_out(&client, &base).await;
    client.goto(&format!("{base}/console/images")).await.unwrap();
    assert!(text(&client, ".error-message").await.contains("sign in"), "signed out");
    client.close().await.unwrap();
}
