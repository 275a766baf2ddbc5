//! The real `imagegate-server` binary, started as the README starts it: on SQLite in a fresh data
//! directory, then stopped with SIGTERM.

mod common;

use common::{Server, free_port};

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

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
    Server::spawn(&mut cmd, port, dir).await
}

#[tokio::test]
async fn serves_the_catalog_on_sqlite_and_stops_on_sigterm() {
    let mut server = start(&[("IMAGEGATE_ADMIN_PASSWORD", "s3cret-enough")]).await;
    let http = reqwest::Client::new();
    let ready: Value = http.get(format!("{}/readyz", server.base)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready, json!({"status": "ready"}));
    // The data directory and everything in it are the server user's alone.
    {
        use std::os::unix::fs::PermissionsExt as _;
        let data = server._dir.path().join("data");
        assert_eq!(std::fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
        for entry in std::fs::read_dir(&data).unwrap() {
            let entry = entry.unwrap();
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "{} has mode {mode:04o}", entry.path().display());
        }
    }

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

/// Peak resident memory of a process, from `/proc`.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// 128 wrong sign-ins at once: a few password checks run, a few wait, the rest are answered 503 at once,
/// so memory stays bounded (each check takes about 19 MiB); afterwards this address is slowed down.
#[tokio::test]
async fn a_sign_in_flood_keeps_memory_bounded() {
    // Quiet, so that the log of 128 requests does not fill the unread stderr pipe.
    let server = start(&[("IMAGEGATE_ADMIN_PASSWORD", "s3cret-enough"), ("RUST_LOG", "warn")]).await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/auth/token", server.base);
    let attempts = (0..128).map(|i| {
        let (http, url) = (http.clone(), url.clone());
        tokio::spawn(async move {
            let body = json!({"username": format!("user{i}"), "password": "not-the-password"});
            let response = http.post(&url).json(&body).send().await.unwrap();
            let retry_after = response.headers().get("retry-after").is_some();
            (response.status().as_u16(), retry_after)
        })
    });
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for attempt in attempts.collect::<Vec<_>>() {
        let (status, retry_after) = attempt.await.unwrap();
        assert!(matches!(status, 401 | 429 | 503), "{status}");
        assert!(status == 401 || retry_after, "a {status} says when to come back");
        *statuses.entry(status).or_default() += 1;
    }
    let peak_mib = peak_rss_kib(server.child.id()) / 1024;
    eprintln!("128 parallel wrong sign-ins: {statuses:?}, peak RSS {peak_mib} MiB");
    assert!(peak_mib < 100, "peak RSS {peak_mib} MiB");
    assert!(statuses.get(&401).copied().unwrap_or(0) >= 2, "{statuses:?}");
    assert!(statuses.get(&503).copied().unwrap_or(0) > 0, "{statuses:?}");
    // This address has failed too often: even the right password waits now.
    let right = http.post(&url).json(&json!({"username": "admin", "password": "s3cret-enough"})).send().await.unwrap();
    assert_eq!(right.status().as_u16(), 429);
}

/// A deleted key file while the database holds sealed registry passwords is a refusal to start that names
/// the file, and no new key is made in its place.
#[tokio::test]
async fn a_lost_secret_key_is_a_refusal_to_start() {
    let mut server = start(&[("IMAGEGATE_ADMIN_PASSWORD", "s3cret-enough")]).await;
    let http = reqwest::Client::new();
    let secret = json!({
        "apiVersion": "image.theriseunion.io/v1alpha1", "kind": "RegistrySecret",
        "metadata": {"name": "lab", "namespace": "default"},
        "spec": {"domain": "registry.example", "username": "u", "password": "sealed-pw", "provider": "other"}
    });
    let created = http
        .post(format!("{}/oapis/image.theriseunion.io/v1alpha1/namespaces/default/registry-secrets", server.base))
        .basic_auth("admin", Some("s3cret-enough"))
        .json(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let _ = server.child.kill();
    let _ = server.child.wait();

    let data = server._dir.path().join("data");
    std::fs::remove_file(data.join("secret.key")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_imagegate-server"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--data-dir")
        .arg(&data)
        .env_remove("IMAGEGATE_DATABASE_URL")
        .env("IMAGEGATE_ADMIN_PASSWORD", "s3cret-enough")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the server started without its key: {stderr}");
    assert!(stderr.contains("secret.key is missing") && stderr.contains("restore"), "{stderr}");
    assert!(!data.join("secret.key").exists(), "no new key was made");
}

/// A key file replaced by another key: the server starts, reads and changes the catalog as before, fails
/// only what needs the stored registry passwords (503, saying to restore the key), and `/readyz` shows it.
#[tokio::test]
async fn a_wrong_secret_key_fails_only_what_needs_it_and_shows_in_readyz() {
    let mut server = start(&[("IMAGEGATE_ADMIN_PASSWORD", "s3cret-enough")]).await;
    let http = reqwest::Client::new();
    let secrets = format!("{}/oapis/image.theriseunion.io/v1alpha1/namespaces/default/registry-secrets", server.base);
    let secret = json!({
        "apiVersion": "image.theriseunion.io/v1alpha1", "kind": "RegistrySecret",
        "metadata": {"name": "lab", "namespace": "default"},
        "spec": {"domain": "registry.example", "username": "u", "password": "sealed-pw", "provider": "other"}
    });
    let created = http.post(&secrets).basic_auth("admin", Some("s3cret-enough")).json(&secret).send().await.unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let ready = http.get(format!("{}/readyz", server.base)).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200, "ready with the right key");
    let _ = server.child.kill();
    let _ = server.child.wait();

    let data = server._dir.path().join("data");
    std::fs::write(data.join("secret.key"), "ab".repeat(32)).unwrap();
    let port = free_port();
    let restarted = Server::spawn(
        Command::new(env!("CARGO_BIN_EXE_imagegate-server"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&data)
            .env_remove("IMAGEGATE_DATABASE_URL")
            .env("IMAGEGATE_ADMIN_PASSWORD", "s3cret-enough")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        port,
        tempfile::tempdir().unwrap(),
    )
    .await;
    let base = restarted.base.clone();

    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let body: Value = ready.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("secret key"), "{body}");

    let catalog = http
        .get(format!("{base}/catalog/api/v1/images"))
        .basic_auth("admin", Some("s3cret-enough"))
        .send()
        .await
        .unwrap();
    assert_eq!(catalog.status().as_u16(), 200, "the catalog does not need the key");

    let secrets = secrets.replace(&server.base, &base);
    let verify = http
        .post(format!("{secrets}/lab/verify"))
        .basic_auth("admin", Some("s3cret-enough"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status().as_u16(), 503);
    let body: Value = verify.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("secret key") && message.contains("restore"), "{body}");
    assert!(!message.contains("sealed-pw"), "{body}");
    drop(restarted);
}
