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
    let server = Server::spawn(
        Command::new(env!("CARGO_BIN_EXE_imagegate-server"))
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
            .stderr(Stdio::null()),
        port,
        dir,
    )
    .await;
    (server, format!("127.0.0.1:{port}"))
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

/// Queues an import of `source` as the admin and waits until `ready` imports are ready.
async fn import_and_wait(server: &Server, source: &str, ready: usize) {
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/api/v1/images:import", server.base))
        .basic_auth("admin", Some(PASSWORD))
        .json(&json!({ "source": source }))
        .send()
        .await
        .unwrap();
    let (status, answer): (u16, Value) = (resp.status().as_u16(), resp.json().await.unwrap());
    assert!(status == 200 && answer["state"] == 1, "{status} {answer}");
    wait_ready(server, ready, Duration::from_secs(60)).await;
}

/// Waits until `ready` imports are ready; the flat listing of ready imports.
async fn wait_ready(server: &Server, ready: usize, within: Duration) -> Vec<Value> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + within;
    loop {
        let list: Value = http
            .get(format!("{}/api/v1/images?flat=true&ready=true", server.base))
            .basic_auth("admin", Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if list.as_array().is_some_and(|l| l.len() >= ready) {
            return list.as_array().unwrap().clone();
        }
        assert!(Instant::now() < deadline, "{ready} imports did not finish: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Approves the catalog image named `name` (which an import added, pending).
async fn approve(server: &Server, name: &str) {
    let http = reqwest::Client::new();
    let images: Value = http
        .get(format!("{}/catalog/api/v1/images?search={name}", server.base))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let image = images["images"].as_array().unwrap().iter().find(|i| i["image_name"] == name).unwrap().clone();
    let approve = http
        .put(format!("{}/catalog/api/v1/images/{}", server.base, image["id"]))
        .basic_auth("admin", Some(PASSWORD))
        .json(&json!({ "approval_status": "approved" }))
        .send()
        .await
        .unwrap();
    assert_eq!(approve.status(), 200);
}

/// Runs a command; its exit status, standard output and standard error.
async fn run(mut cmd: Command) -> (bool, String, String) {
    let out = tokio::task::spawn_blocking(move || cmd.stdin(Stdio::null()).output().unwrap()).await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An approved and a pending image, imported from a source registry into a server's built-in registry (the
/// gate enforcing): the server, and the built-in registry's references of the two.
async fn approved_and_pending(prefix: &str) -> (Server, String, String, images::PushedImage, Distribution) {
    let source = Distribution::start().await;
    let approved = images::push_unpackable_image(&source, &format!("{prefix}/approved"), "1.0", &[3000, 500]).await;
    images::push_unpackable_image(&source, &format!("{prefix}/pending"), "1.0", &[1000]).await;
    let (server, host) = start(&["--no-inventory"]).await;
    import_and_wait(&server, &format!("{}/{prefix}/approved:1.0", source.host()), 1).await;
    import_and_wait(&server, &format!("{}/{prefix}/pending:1.0", source.host()), 2).await;
    approve(&server, "approved").await;
    let inside = |name: &str| format!("{host}/{}/{prefix}/{name}:1.0", source.host().replace(':', "_"));
    (server, inside("approved"), inside("pending"), approved, source)
}

#[tokio::test(flavor = "multi_thread")]
async fn containerd_pulls_an_approved_image_and_is_refused_a_pending_one() {
    let containerd = match test_support::containerd::Containerd::start() {
        Ok(containerd) => containerd,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let (_server, approved_ref, pending_ref, approved, _source) = approved_and_pending("ctr").await;
    let pull = |reference: &str| {
        let mut cmd = containerd.ctr();
        cmd.args(["-n", "imagegate", "images", "pull", "--plain-http", "--snapshotter", "native", "--user"])
            .arg(admin_creds())
            .arg(reference);
        cmd
    };
    let (ok, _, stderr) = run(pull(&approved_ref)).await;
    assert!(ok, "ctr pull {approved_ref}: {stderr}\n{}", containerd.log());
    let mut list = containerd.ctr();
    list.args(["-n", "imagegate", "images", "ls"]);
    let (ok, listing, stderr) = run(list).await;
    assert!(ok, "{stderr}");
    let line =
        listing.lines().find(|l| l.starts_with(&format!("{approved_ref} "))).unwrap_or_else(|| panic!("{listing}"));
    assert_eq!(line.split_whitespace().nth(2), Some(approved.digest.as_str()), "{line}");
    let (ok, _, stderr) = run(pull(&pending_ref)).await;
    assert!(!ok, "ctr pulled the pending image");
    // containerd resolves a tag with HEAD, whose answer has no body to carry the reason: it shows the 403.
    assert!(stderr.contains("403"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_pulls_an_approved_image_and_is_refused_a_pending_one() {
    let podman = ["/usr/bin/podman", "podman"].into_iter().find(|p| Command::new(p).arg("--version").output().is_ok());
    let Some(podman) = podman else {
        println!("skipped: podman is not installed (Debian: podman)");
        return;
    };
    let storage = tempfile::tempdir().unwrap();
    let podman_cmd = |args: &[&str]| {
        let mut cmd = Command::new(podman);
        cmd.arg("--root")
            .arg(storage.path().join("root"))
            .arg("--runroot")
            .arg(storage.path().join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .env("HOME", storage.path());
        cmd
    };
    let (ok, _, why) = run(podman_cmd(&["images"])).await;
    if !ok {
        println!("skipped: podman cannot run here: {why}");
        return;
    }
    let (_server, approved_ref, pending_ref, approved, _source) = approved_and_pending("podman").await;
    let creds = admin_creds();
    let (ok, _, stderr) =
        run(podman_cmd(&["pull", "--tls-verify=false", "--creds", &creds, &format!("docker://{approved_ref}")])).await;
    assert!(ok, "podman pull {approved_ref}: {stderr}");
    let (ok, digest, stderr) = run(podman_cmd(&["image", "inspect", "--format", "{{.Digest}}", &approved_ref])).await;
    assert!(ok, "{stderr}");
    assert_eq!(digest.trim(), approved.digest);
    let (ok, _, stderr) =
        run(podman_cmd(&["pull", "--tls-verify=false", "--creds", &creds, &format!("docker://{pending_ref}")])).await;
    assert!(!ok, "podman pulled the pending image");
    assert!(stderr.contains("is pending approval"), "{stderr}");
}

/// Files under `dir` whose content does not hash to their name.
fn misnamed_blobs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            test_support::images::sha256(&std::fs::read(p).unwrap()) != format!("sha256:{name}")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_killed_mid_copy_leaves_nothing_partial_and_is_picked_up_again() {
    let source = Distribution::start().await;
    let big = 24 * 1024 * 1024;
    let pushed = images::push_image(&source, "crash/big", "1", &[big, 2000, 300]).await;
    // Slow downloads from the source, so that the kill lands in the middle of the big layer's copy.
    let proxy = test_support::proxy::Proxy::start(&source.url()).await;
    proxy.throttle(4 * 1024 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = free_port();
    let args = ["--gate", "off", "--no-inventory", "--worker-lease-secs", "3"];
    let (mut server, host) = start_at(data.clone(), dir, port, &args).await;
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/api/v1/images:import", server.base))
        .basic_auth("admin", Some(PASSWORD))
        .json(&json!({ "source": format!("{}/crash/big:1", proxy.host()) }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Kill the server once the big layer's upload file holds a few MiB.
    let uploads = data.join("registry/uploads");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let written = walk(&uploads).iter().filter_map(|p| p.metadata().ok()).map(|m| m.len()).max().unwrap_or(0);
        if written > 2 * 1024 * 1024 {
            assert!(written < big as u64, "the layer was copied before the kill");
            break;
        }
        assert!(Instant::now() < deadline, "the big layer's upload never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let big_digest = pushed.manifests[0].blobs[1].clone();
    assert!(!walk(&data.join("registry/blobs")).is_empty(), "no small blob had arrived before the kill");

    // Restart on the same data directory and port (the import's target names it).
    let (server2, _) = start_at(data.clone(), tempfile::tempdir().unwrap(), port, &args).await;
    let repository = format!("{}/crash/big", proxy.host().replace(':', "_"));
    let get = |path: String| {
        let http = http.clone();
        async move { http.get(path).basic_auth("admin", Some(PASSWORD)).send().await.unwrap() }
    };
    let catalog: Value = get(format!("{}/v2/_catalog", server2.base)).await.json().await.unwrap();
    assert_eq!(catalog, json!({ "repositories": [] }), "a half-copied image is listed");
    let tags = get(format!("{}/v2/{repository}/tags/list", server2.base)).await;
    let tags_status = tags.status().as_u16();
    let tags: Value = tags.json().await.unwrap();
    assert!(tags_status == 404 || tags["tags"] == json!([]), "{tags_status} {tags}");
    let manifest = get(format!("{}/v2/{repository}/manifests/1", server2.base)).await;
    assert_eq!(manifest.status(), 404, "the half-copied image's manifest is visible");
    assert_eq!(get(format!("{}/v2/{repository}/blobs/{big_digest}", server2.base)).await.status(), 404);
    let blobs = data.join("registry/blobs");
    assert!(misnamed_blobs(&blobs).is_empty(), "partial blobs: {:?}", misnamed_blobs(&blobs));
    assert!(!walk(&blobs).iter().any(|p| big_digest.ends_with(&*p.file_name().unwrap().to_string_lossy())));

    // The job is taken up again once its lease lapses, and completes with the source's digests.
    proxy.throttle(0);
    wait_ready(&server2, 1, Duration::from_secs(90)).await;
    let inside = format!("{host}/{repository}:1");
    assert_eq!(raw_digest(&inside, Some(&admin_creds())).await.unwrap(), pushed.digest);
    for blob in pushed.blobs() {
        let bytes = get(format!("{}/v2/{repository}/blobs/{blob}", server2.base)).await.bytes().await.unwrap();
        assert_eq!(test_support::images::sha256(&bytes), blob);
    }
    assert!(misnamed_blobs(&blobs).is_empty());
    let catalog: Value = get(format!("{}/v2/_catalog", server2.base)).await.json().await.unwrap();
    assert_eq!(catalog, json!({ "repositories": [repository] }));
    drop(server2);
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn statistics_the_inventory_and_deletes_read_the_built_in_registry_itself() {
    let source = Distribution::start().await;
    let pushed = images::push_image(&source, "admin/app", "2.1", &[4000, 1000]).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (server, _) = start_at(data.clone(), dir, free_port(), &["--no-inventory"]).await;
    import_and_wait(&server, &format!("{}/admin/app:2.1", source.host()), 1).await;
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let request = http.get(format!("{}{path}", server.base)).basic_auth("admin", Some(PASSWORD));
        async move {
            let resp = request.send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let project = source.host().replace(':', "_");
    let on_disk = || walk(&data.join("registry/blobs")).iter().map(|p| p.metadata().unwrap().len()).sum::<u64>();
    let (status, stats) = get("/api/v1/harbor/stats").await;
    assert_eq!(status, 200);
    assert_eq!(
        stats,
        json!({
            "status": "healthy",
            "components": [{"name": "metadata", "status": "healthy"}, {"name": "storage", "status": "healthy"}],
            "private_project_count": 1,
            "public_project_count": 0,
            "private_repo_count": 1,
            "public_repo_count": 0,
            "total_storage": on_disk(),
        })
    );
    assert_eq!(on_disk(), pushed.manifests[0].size, "the blobs on disk are the image's config and layers");
    // The inventory's registry side: one row for the tag, with the digest and the size.
    let (status, images) = get("/images").await;
    assert_eq!(status, 200);
    let size = pushed.manifests[0].size + pushed.bytes.len() as u64;
    assert_eq!(
        images["harbor_images"],
        json!([{
            "digest": pushed.digest,
            "project": project,
            "repository": "admin/app",
            "size": image_core::inventory::human_size(size),
            "tag": "2.1",
        }])
    );
    // Deleting the import removes the image from the registry: gone from the catalog, the stats and the
    // inventory.
    let (_, flat) = get("/api/v1/images?flat=true").await;
    let id = flat[0]["id"].clone();
    let delete =
        http.delete(format!("{}/api/v1/images/{id}", server.base)).basic_auth("admin", Some(PASSWORD)).send().await;
    assert_eq!(delete.unwrap().status(), 200);
    let (_, catalog) = get("/v2/_catalog").await;
    assert_eq!(catalog, json!({ "repositories": [] }));
    let (_, stats) = get("/api/v1/harbor/stats").await;
    assert_eq!((stats["private_repo_count"].clone(), stats["private_project_count"].clone()), (json!(0), json!(0)));
    let (_, images) = get("/images").await;
    assert_eq!(images["harbor_images"], json!([]));
}
