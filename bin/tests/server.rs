//! The real `imagegate-server` binary, started as the README starts it: on SQLite in a fresh data
//! directory, then stopped with SIGTERM.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start(extra_env: &[(&str, &str)]) -> Server {
    start_with_args(extra_env, &[]).await
}

async fn start_with_args(extra_env: &[(&str, &str)], args: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imagegate-server"));
    cmd.arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(args)
        .env_remove("IMAGEGATE_DATABASE_URL")
        .env_remove("IMAGEGATE_ADMIN_PASSWORD")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let server = Server { child, base: format!("http://127.0.0.1:{port}"), _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("{}/healthz", server.base)).await {
            if r.status().is_success() {
                return server;
            }
        }
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn serves_the_catalog_on_sqlite_and_stops_on_sigterm() {
    let mut server = start(&[("IMAGEGATE_ADMIN_PASSWORD", "s3cret-enough")]).await;
    let http = reqwest::Client::new();
    let ready: Value = http.get(format!("{}/readyz", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready, json!({"status": "ready"}));

    let token: Value = http
        .post(format!("{}/api/v1/auth/token", server.base))
        .json(&json!({"username": "admin", "password": "s3cret-enough"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().unwrap();
    let images: Value = http
        .get(format!("{}/catalog/api/v1/images?category=database", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(images["total"], 5);
    assert!(server._dir.path().join("data/imagegate.db").is_file(), "SQLite lives in the data directory");

    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[tokio::test]
async fn prints_a_generated_admin_password_once() {
    use std::io::Read;
    let mut server = start(&[]).await;
    let _ = server.child.kill();
    let _ = server.child.wait();
    let mut stderr = String::new();
    server.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let line = stderr.lines().find(|l| l.contains("Created the `admin` account")).expect(&stderr);
    let password = line.rsplit(' ').next().unwrap();
    assert!(password.len() >= 16, "{line}");
}

/// The API wakes the embedded worker when it queues an import: with a worker that would poll only once a
/// minute, the import is still done in seconds.
#[tokio::test]
async fn the_embedded_worker_starts_an_import_at_once() {
    let source = test_support::Distribution::start().await;
    let target = test_support::Distribution::start().await;
    test_support::images::push_image(&source, "wake/app", "1", &[1000]).await;
    let internal = target.url();
    let server = start_with_args(
        &[("IMAGEGATE_ADMIN_PASSWORD", "s3cret-enough")],
        &["--internal-registry", &internal, "--worker-poll-secs", "60"],
    )
    .await;
    let http = reqwest::Client::new();
    // Let the worker finish its first look at the queue, so that only a wake-up can start the import.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answer: Value = http
        .post(format!("{}/api/v1/images:import", server.base))
        .basic_auth("admin", Some("s3cret-enough"))
        .json(&json!({ "source": format!("{}/wake/app:1", source.host()) }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["state"], 1, "{answer}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listing: Value = http
            .get(format!("{}/api/v1/images", server.base))
            .basic_auth("admin", Some("s3cret-enough"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if listing["images"][0]["artifacts"][0]["status"] == "ready" {
            break;
        }
        assert!(Instant::now() < deadline, "the import waited for the worker's next poll: {listing}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Connections that send nothing, or half a request's headers, are closed after the header timeout, and
/// the cap on open connections makes a new client wait only until they are: slow clients cannot hold the
/// server.
#[tokio::test]
async fn slow_and_idle_connections_are_closed() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = start_with_args(
        &[("IMAGEGATE_ADMIN_PASSWORD", "s3cret-enough")],
        &["--header-timeout-secs", "1", "--max-connections", "40"],
    )
    .await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for i in 0..40 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        if i % 2 == 0 {
            // Half a request, never finished.
            stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        }
        held.push(stream);
    }
    // Every slot is taken; a new request still gets its answer once the slow ones are dropped.
    let started = Instant::now();
    let answer = reqwest::Client::new()
        .get(format!("{}/healthz", server.base))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("a new client is served once the slow connections are closed");
    assert!(answer.status().is_success());
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    for (i, stream) in held.iter_mut().enumerate() {
        let mut buf = [0u8; 512];
        // The server closes the connection (EOF), perhaps after a 408 for the half-sent request.
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "connection {i} is still open");
    }
}
