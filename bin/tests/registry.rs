//! The built-in registry of the real `imagegate-server` (started without `--internal-registry`, as the
//! README's first command does): real clients copy images into and out of it with their digests kept, and an
//! import lands in it.

mod common;

use common::{Server, free_port};

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::{Distribution, images};

const PASSWORD: &str = "s3cret-enough";

async fn start(args: &[&str]) -> (Server, String) {
    let dir = tempfile::tempdir().unwrap();
    start_at(dir.path().join("data"), dir, free_port(), args).await
}

/// A server on `port` with its data in `data`; `dir` is removed when the server is dropped.
async fn start_at(data: std::path::PathBuf, dir: tempfile::TempDir, port: u16, args: &[&str]) -> (Server, String) {
    let server = Server {
        child: Command::new(env!("CARGO_BIN_EXE_imagegate-server"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .env_remove("IMAGEGATE_DATABASE_URL")
            .env_remove("IMAGEGATE_INTERNAL_REGISTRY")
            .env("IMAGEGATE_ADMIN_PASSWORD", PASSWORD)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("{}/healthz", server.base)).await
            && r.status().is_success()
        {
            return (server, format!("127.0.0.1:{port}"));
        }
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `skopeo`, from `/usr/bin` or PATH (`cargo xtask test` installs it).
fn skopeo_bin() -> String {
    if std::path::Path::new("/usr/bin/skopeo").exists() {
        return "/usr/bin/skopeo".into();
    }
    "skopeo".into()
}

/// Runs skopeo; its exit status, standard output and standard error.
async fn skopeo(args: &[&str]) -> (bool, Vec<u8>, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(skopeo_bin())
            .args(&args)
            .env("HOME", std::env::temp_dir())
            .output()
            .unwrap_or_else(|e| panic!("cannot run skopeo ({e}); `cargo xtask test` installs it (Debian: skopeo)"))
    })
    .await
    .unwrap();
    (out.status.success(), out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

async fn copy(from: &str, to: &str, creds: &[&str]) {
    let mut args = vec!["copy", "--all", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false"];
    args.extend_from_slice(creds);
    let (from, to) = (format!("docker://{from}"), format!("docker://{to}"));
    args.extend([from.as_str(), to.as_str()]);
    let (ok, _, stderr) = skopeo(&args).await;
    assert!(ok, "skopeo copy {from} {to}: {stderr}");
}

async fn raw_digest(reference: &str, creds: Option<&str>) -> Result<String, String> {
    let reference = format!("docker://{reference}");
    let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
    if let Some(creds) = creds {
        args.extend(["--creds", creds]);
    } else {
        args.push("--no-creds");
    }
    args.push(&reference);
    let (ok, stdout, stderr) = skopeo(&args).await;
    if ok { Ok(test_support::images::sha256(&stdout)) } else { Err(stderr) }
}

fn admin_creds() -> String {
    format!("admin:{PASSWORD}")
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_copies_a_single_image_an_index_and_sixty_layers_in_and_out_with_digests_kept() {
    let source = Distribution::start().await;
    let sink = Distribution::start().await;
    let single = images::push_image(&source, "copy/single", "1", &[2000, 30_000, 500]).await;
    let index =
        images::push_index(&source, "copy/index", "2", &[("linux", "amd64"), ("linux", "arm64")], &[4000], 1000).await;
    let sixty = images::push_image(&source, "copy/sixty", "3", &[300; 60]).await;
    let (_server, host) = start(&["--gate", "off"]).await;
    let creds = admin_creds();
    for (repo, tag, pushed) in [("copy/single", "1", &single), ("copy/index", "2", &index), ("copy/sixty", "3", &sixty)]
    {
        let inside = format!("{host}/{repo}:{tag}");
        copy(&format!("{}/{repo}:{tag}", source.host()), &inside, &["--dest-creds", &creds]).await;
        assert_eq!(raw_digest(&inside, Some(&creds)).await.unwrap(), pushed.digest, "{repo} inside");
        for manifest in &pushed.manifests {
            let child = format!("{host}/{repo}@{}", manifest.digest);
            assert_eq!(raw_digest(&child, Some(&creds)).await.unwrap(), manifest.digest, "{repo} child");
        }
        let out = format!("{}/{repo}:{tag}", sink.host());
        copy(&inside, &out, &["--src-creds", &creds]).await;
        assert_eq!(raw_digest(&out, None).await.unwrap(), pushed.digest, "{repo} copied out");
    }
    // Without credentials the challenge stands; a user who is not an admin cannot push.
    let refused = raw_digest(&format!("{host}/copy/single:1"), None).await.unwrap_err();
    assert!(refused.contains("401") || refused.to_lowercase().contains("unauthorized"), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn anonymous_pulls_only_with_the_flag() {
    let source = Distribution::start().await;
    let pushed = images::push_image(&source, "anon/app", "1", &[1000]).await;
    let (_server, host) = start(&["--registry-anonymous-pull", "--gate", "off"]).await;
    let inside = format!("{host}/anon/app:1");
    copy(&format!("{}/anon/app:1", source.host()), &inside, &["--dest-creds", &admin_creds()]).await;
    assert_eq!(raw_digest(&inside, None).await.unwrap(), pushed.digest);
    let mut args = vec!["copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--dest-no-creds"];
    let (from, to) = (format!("docker://{}/anon/app:1", source.host()), format!("docker://{host}/anon/other:1"));
    args.extend([from.as_str(), to.as_str()]);
    let (ok, _, stderr) = skopeo(&args).await;
    assert!(!ok, "an anonymous push went through");
    assert!(stderr.contains("401") || stderr.to_lowercase().contains("unauthorized"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_on_embedded_defaults_lands_in_the_built_in_registry() {
    let source = Distribution::start().await;
    let pushed =
        images::push_index(&source, "imports/app", "1.0", &[("linux", "amd64"), ("linux", "arm64")], &[3000, 200], 500)
            .await;
    let (server, host) = start(&[]).await;
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/api/v1/images:import", server.base))
        .basic_auth("admin", Some(PASSWORD))
        .json(&json!({ "source": format!("{}/imports/app:1.0", source.host()) }))
        .send()
        .await
        .unwrap();
    let (status, answer): (u16, Value) = (resp.status().as_u16(), resp.json().await.unwrap());
    assert!(status == 200 && answer["state"] == 1, "{status} {answer}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list: Value = http
            .get(format!("{}/api/v1/images", server.base))
            .basic_auth("admin", Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if list["images"][0]["artifacts"][0]["status"] == "ready" {
            break;
        }
        assert!(Instant::now() < deadline, "the import did not finish: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let repository = format!("{}/imports/app", source.host().replace(':', "_"));
    let catalog: Value = http
        .get(format!("{}/v2/_catalog", server.base))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(catalog, json!({ "repositories": [repository] }));
    // The import added the image to the catalog pending approval: the gate refuses its pulls, saying why.
    let inside = format!("{host}/{repository}:1.0");
    let shown = format!("{}/imports/app", source.host());
    let refused = raw_digest(&inside, Some(&admin_creds())).await.unwrap_err();
    assert!(refused.contains(&format!("{shown} is pending approval")), "{refused}");
    let by_digest = format!("{host}/{repository}@{}", pushed.digest);
    assert!(raw_digest(&by_digest, Some(&admin_creds())).await.unwrap_err().contains("pending approval"));
    let images: Value = http
        .get(format!("{}/catalog/api/v1/images?search=app", server.base))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let image = images["images"].as_array().unwrap().iter().find(|i| i["image_name"] == "app").unwrap().clone();
    let approve = http
        .put(format!("{}/catalog/api/v1/images/{}", server.base, image["id"]))
        .basic_auth("admin", Some(PASSWORD))
        .json(&json!({ "approval_status": "approved" }))
        .send()
        .await
        .unwrap();
    assert_eq!(approve.status(), 200);
    // Approved: the tag, the index by digest and each platform's manifest by digest are served.
    assert_eq!(raw_digest(&inside, Some(&admin_creds())).await.unwrap(), pushed.digest);
    assert_eq!(raw_digest(&by_digest, Some(&admin_creds())).await.unwrap(), pushed.digest);
    for manifest in &pushed.manifests {
        let child = format!("{host}/{repository}@{}", manifest.digest);
        assert_eq!(raw_digest(&child, Some(&admin_creds())).await.unwrap(), manifest.digest);
    }
    // A tag the catalog does not list is refused, though its manifest is the approved one.
    let put = http
        .put(format!("{}/v2/{repository}/manifests/unlisted", server.base))
        .basic_auth("admin", Some(PASSWORD))
        .header("content-type", pushed.media_type.as_str())
        .body(pushed.bytes.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let unlisted = raw_digest(&format!("{host}/{repository}:unlisted"), Some(&admin_creds())).await.unwrap_err();
    assert!(unlisted.contains(&format!("tag unlisted of {shown} is not approved")), "{unlisted}");
}

/// A request body that sends `first` and then nothing more until the sender is dropped.
fn hanging_body(first: Vec<u8>) -> (reqwest::Body, tokio::sync::mpsc::Sender<Vec<u8>>) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
    let stream = futures::stream::unfold((Some(first), rx), |(first, mut rx)| async move {
        match first {
            Some(first) => Some((Ok::<_, std::io::Error>(first), (None, rx))),
            None => rx.recv().await.map(|chunk| (Ok(chunk), (None, rx))),
        }
    });
    (reqwest::Body::wrap_stream(stream), tx)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_killed_mid_blob_leaves_nothing_visible_and_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let (mut server, _) = start_at(data.clone(), dir, port, &[]).await;
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let content = test_support::images::random_bytes(3 * 1024 * 1024);
    let digest = test_support::images::sha256(&content);

    // A chunked upload whose chunk is half sent, and a monolithic one, when the server is killed.
    let start = http
        .post(format!("{base}/v2/crash/app/blobs/uploads/"))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 202);
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    let (chunk, _keep_chunk) = hanging_body(content[..1024 * 1024].to_vec());
    let patch =
        tokio::spawn(http.patch(format!("{base}{location}")).basic_auth("admin", Some(PASSWORD)).body(chunk).send());
    let (mono, _keep_mono) = hanging_body(content[..2 * 1024 * 1024].to_vec());
    let post = tokio::spawn(
        http.post(format!("{base}/v2/crash/app/blobs/uploads/?digest={digest}"))
            .basic_auth("admin", Some(PASSWORD))
            .body(mono)
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    assert!(patch.await.unwrap().is_err() && post.await.unwrap().is_err(), "the requests outlived the server");
    let uploads = std::fs::read_dir(data.join("registry/uploads")).unwrap().count();
    assert!(uploads >= 1, "the killed uploads were being written under uploads/");

    // Restart on the same data directory (its TempDir lives in `server` until the end).
    let (server2, _) = start_at(data.clone(), tempfile::tempdir().unwrap(), port, &[]).await;
    let head = http
        .head(format!("{base}/v2/crash/app/blobs/{digest}"))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 404, "a partial blob is visible");
    let blobs: Vec<_> = walk(&data.join("registry/blobs"));
    assert!(blobs.is_empty(), "files under blobs/: {blobs:?}");
    // The session survived with none of the half-sent chunk; the retried push resumes and succeeds.
    let status = http.get(format!("{base}{location}")).basic_auth("admin", Some(PASSWORD)).send().await.unwrap();
    assert_eq!((status.status().as_u16(), status.headers()["range"].to_str().unwrap()), (204, "0-0"));
    let len = content.len();
    let done = http
        .put(format!("{base}{location}?digest={digest}"))
        .basic_auth("admin", Some(PASSWORD))
        .header("content-range", format!("0-{}", len - 1))
        .body(content.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 201, "{}", done.text().await.unwrap());
    let got = http
        .get(format!("{base}/v2/crash/app/blobs/{digest}"))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), content.as_slice());
    drop(server2);
    drop(server);
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_dry_run_lists_unreferenced_blobs_and_gc_removes_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (server, _) = start_at(data.clone(), dir, free_port(), &[]).await;
    let http = reqwest::Client::new();
    let content = b"a layer whose manifest never came".to_vec();
    let digest = test_support::images::sha256(&content);
    let push = http
        .post(format!("{}/v2/gc/app/blobs/uploads/?digest={digest}", server.base))
        .basic_auth("admin", Some(PASSWORD))
        .body(content.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), 201);
    // An upload left half done.
    let start = http
        .post(format!("{}/v2/gc/app/blobs/uploads/", server.base))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    let upload = location.rsplit('/').next().unwrap().to_owned();
    let patch = http
        .patch(format!("{}{location}", server.base))
        .basic_auth("admin", Some(PASSWORD))
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 202);
    let gc = |args: &'static [&'static str]| {
        let data = data.clone();
        async move {
            let out = tokio::task::spawn_blocking(move || {
                Command::new(env!("CARGO_BIN_EXE_imagegate-server"))
                    .arg("--data-dir")
                    .arg(&data)
                    .arg("gc")
                    .args(args)
                    .env_remove("IMAGEGATE_DATABASE_URL")
                    .output()
                    .unwrap()
            })
            .await
            .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        }
    };
    let head = async || {
        http.head(format!("{}/v2/gc/app/blobs/{digest}", server.base))
            .basic_auth("admin", Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let kept = gc(&["--dry-run"]).await;
    assert_eq!(
        kept, "would remove 0 blobs, 0 unrecorded files and 0 abandoned uploads, 0 bytes\n",
        "within the default 24 h grace"
    );
    let dry = gc(&["--dry-run", "--grace-hours", "0"]).await;
    let len = content.len();
    assert_eq!(
        dry,
        format!(
            "would remove blob {digest} ({len} bytes)\nwould remove abandoned upload {upload} (3 bytes)\n\
             would remove 1 blobs, 0 unrecorded files and 1 abandoned uploads, {} bytes\n",
            len + 3
        )
    );
    assert_eq!(head().await, 200, "a dry run removed the blob");
    let done = gc(&["--grace-hours", "0"]).await;
    assert!(done.starts_with(&format!("removed blob {digest}")), "{done}");
    assert_eq!(head().await, 404);
    let status =
        http.get(format!("{}{location}", server.base)).basic_auth("admin", Some(PASSWORD)).send().await.unwrap();
    assert_eq!(status.status(), 404, "the abandoned upload is gone");
}
