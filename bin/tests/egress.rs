//! The egress policy of the real `imagegate-server` binary: an import from a source registry at an
//! address the policy refuses is answered 4xx at once and never queued, while a registry in the denied
//! range that an `--egress-allow` exception opens works as before.

mod common;

use common::{Server, free_port};

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::Distribution;

const PASSWORD: &str = "s3cret-enough";

async fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imagegate-server"));
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(args)
        .env_remove("IMAGEGATE_DATABASE_URL")
        .env_remove("IMAGEGATE_EGRESS_DENY")
        .env_remove("IMAGEGATE_EGRESS_ALLOW")
        .env("IMAGEGATE_ADMIN_PASSWORD", PASSWORD)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Server::spawn(&mut cmd, port, dir).await
}

async fn import(http: &reqwest::Client, server: &Server, source: &str) -> (u16, Value) {
    let resp = http
        .post(format!("{}/api/v1/images:import", server.base))
        .basic_auth("admin", Some(PASSWORD))
        .json(&json!({ "source": source }))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn listing(http: &reqwest::Client, server: &Server) -> Value {
    http.get(format!("{}/api/v1/images", server.base))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_from_a_denied_address_is_refused_and_not_queued() {
    // Loopback is all of 127/8: the denied source on 127.0.0.2, the internal registry and an allowed
    // source on 127.0.0.1, which the exception opens.
    let denied = Distribution::start_on(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))).await;
    let allowed = Distribution::start().await;
    let internal = Distribution::start().await;
    test_support::images::push_image(&denied, "egress/app", "1", &[1000]).await;
    test_support::images::push_image(&allowed, "egress/app", "1", &[1000]).await;
    let internal_url = internal.url();
    let server = start(
        &["--internal-registry", &internal_url, "--egress-deny", "127.0.0.0/8", "--egress-deny", "fe80::/10"],
        &[("IMAGEGATE_EGRESS_ALLOW", "192.0.2.0/24,127.0.0.1/32")],
    )
    .await;
    let http = reqwest::Client::new();

    let source = format!("{}/egress/app:1", denied.host());
    let started = Instant::now();
    let (status, answer) = import(&http, &server, &source).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["state"], 0, "{answer}");
    assert_eq!(
        answer["message"],
        format!(
            "cannot import {source}: cannot read source {source}: the egress policy refuses connections to 127.0.0.2"
        ),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(5), "the refusal took {:?}", started.elapsed());
    let list = listing(&http, &server).await;
    assert_eq!(list["totalCount"], 0, "nothing was queued: {list}");

    // The internal registry and a source at the allowed address work.
    let source = format!("{}/egress/app:1", allowed.host());
    let (status, answer) = import(&http, &server, &source).await;
    assert!(status == 200 && answer["state"] == 1, "{status} {answer}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = listing(&http, &server).await;
        if list["images"][0]["artifacts"][0]["status"] == "ready" {
            assert_eq!(list["totalCount"], 1, "{list}");
            break;
        }
        assert!(Instant::now() < deadline, "the allowed import did not finish: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_malformed_range_stops_the_server_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_imagegate-server"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--egress-deny", "10.0.0.0/33"])
        .env_remove("IMAGEGATE_EGRESS_DENY")
        .env_remove("IMAGEGATE_EGRESS_ALLOW")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains(r#""10.0.0.0/33" is not a CIDR: the prefix length 33 is longer than the 32 bits of the address"#),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_imagegate-worker"))
        .arg("--data-dir")
        .arg(dir.path())
        .env("IMAGEGATE_EGRESS_ALLOW", "169.254.169.254/16")
        .env_remove("IMAGEGATE_EGRESS_DENY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--egress-allow") && stderr.contains("bits set beyond its prefix length /16"), "{stderr}");
}
