//! The real `imgctl` against a real `imagegate-server` on SQLite: sign-in and contexts, the catalog's
//! tables, JSON and YAML and its changes, admission checks' exit codes, approvals, registry secrets
//! (against a real registry) and repositories, users, completions and the man page, and bad input's
//! exit codes and messages.

mod common;

use common::{Server, free_port};

use std::{
    io::Write as _,
    path::Path,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

const SERVER: &str = env!("CARGO_BIN_EXE_imagegate-server");
const IMGCTL: &str = env!("CARGO_BIN_EXE_imgctl");
const PASSWORD: &str = "change-me-please";

/// A server on a fresh SQLite database whose `admin` has `PASSWORD`.
async fn serve() -> Server {
    serve_with(&[]).await
}

/// [`serve`] with more arguments.
async fn serve_with(args: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let data = dir.path().join("data");
    Server::spawn(
        Command::new(SERVER)
            .args(["--listen", &listen, "--data-dir"])
            .arg(&data)
            .args(args)
            .env_remove("IMAGEGATE_DATABASE_URL")
            .env("IMAGEGATE_ADMIN_PASSWORD", PASSWORD)
            // Quiet, so that nothing fills a pipe.
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        port,
        dir,
    )
    .await
}

/// Runs `imgctl ARGS` with its config under `home` and `stdin` on standard input (no terminal).
fn imgctl(home: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(IMGCTL)
        .args(args)
        .env("XDG_CONFIG_HOME", home)
        .env_remove("IMGCTL_SERVER")
        .env_remove("IMGCTL_TOKEN")
        .env_remove("IMGCTL_CONTEXT")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A run that fails before it reads its input closes the pipe: that is its answer, not the test's error.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

/// Standard output of a run that succeeded.
fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Standard error of a run that exited with `code`: one line, no panic.
fn fails(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(out.status.code(), Some(code), "stdout: {} stderr: {stderr}", String::from_utf8_lossy(&out.stdout));
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn config(home: &Path) -> String {
    std::fs::read_to_string(home.join("imgctl/config.toml")).unwrap()
}

fn login(home: &Path, server: &Server, user: &str, password: &str) -> Output {
    imgctl(home, &["login", &server.base, "--username", user, "--password-stdin"], &format!("{password}\n"))
}

async fn status_with_token(server: &Server, token: &str) -> u16 {
    let url = format!("{}/catalog/api/v1/images", server.base);
    reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap().status().as_u16()
}

fn token_in(config: &str) -> String {
    let line = config.lines().find(|l| l.starts_with("token = ")).expect("a token in the config");
    line.trim_start_matches("token = ").trim_matches('"').to_owned()
}

/// `login` keeps a working token in a 0600 config under a context named after the server; a second
/// context and `context use` switch servers; `logout` revokes the token on the server and forgets it.
#[tokio::test]
async fn login_contexts_and_logout() {
    let server = serve().await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let context = server.base.trim_start_matches("http://").to_owned();

    let out = fails(&login(home, &server, "admin", "wrong-password"), 3);
    assert_eq!(out, "imgctl: invalid username or password (HTTP 401); sign in with `imgctl login`\n");
    assert!(!home.join("imgctl/config.toml").exists(), "a failed login writes no config");

    let out = ok(&login(home, &server, "admin", PASSWORD));
    assert!(
        out.starts_with(&format!("signed in to {} as admin (context {context}); the token works until ", server.base)),
        "{out}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(home.join("imgctl/config.toml")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let token = token_in(&config(home));
    assert_eq!(status_with_token(&server, &token).await, 200);

    // No --server: the current context's server and token.
    assert!(ok(&imgctl(home, &["catalog", "list"], "")).contains("docker.io/library/redis"));

    // A second context for the same server, made current by login, then switched back with `context use`.
    let out =
        imgctl(home, &["login", &server.base, "--username", "admin", "--password-stdin", "--name", "second"], PASSWORD);
    ok(&out);
    let list = ok(&imgctl(home, &["context", "list"], ""));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(lines[0].starts_with("CURRENT  NAME"), "{list}");
    assert!(lines.iter().any(|l| l.starts_with("*") && l.contains("second") && l.contains("yes")), "{list}");
    assert_eq!(ok(&imgctl(home, &["context", "use", &context], "")), format!("now using context {context}\n"));
    assert!(
        ok(&imgctl(home, &["context", "list", "--no-headers"], ""))
            .lines()
            .any(|l| l.starts_with('*') && l.contains(&context))
    );
    let out = fails(&imgctl(home, &["context", "use", "nowhere"], ""), 2);
    assert_eq!(out, "imgctl: no context named `nowhere`; see `imgctl context list`\n");

    // Logout revokes the token: the server refuses it at once, and imgctl says to sign in.
    let out = ok(&imgctl(home, &["logout"], ""));
    assert_eq!(out, format!("signed out of {} (context {context}); the token is revoked\n", server.base));
    assert_eq!(status_with_token(&server, &token).await, 401);
    assert!(!config(home).contains(&token));
    let out = fails(&imgctl(home, &["catalog", "list"], ""), 3);
    assert!(out.ends_with("(HTTP 401); sign in with `imgctl login`\n"), "{out}");
    // The other context's token still works.
    assert!(ok(&imgctl(home, &["--context", "second", "catalog", "list"], "")).contains("redis"));
}

/// The catalog as a table (with and without headers) and as the API's exact JSON; `check` exits 0 for an
/// approved image and tag and 1 otherwise; a requested and approved image passes the check afterwards.
#[tokio::test]
async fn catalog_check_and_approvals() {
    let server = serve().await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    ok(&login(home, &server, "admin", PASSWORD));
    let token = token_in(&config(home));

    let table = ok(&imgctl(home, &["catalog", "list", "--search", "redis"], ""));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), ["ID", "IMAGE", "STATUS", "CATEGORY", "TAGS"]);
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["1", "docker.io/library/redis", "approved", "database", "4"]
    );
    assert_eq!(lines[0].find("IMAGE"), lines[1].find("docker.io"), "columns line up:\n{table}");
    let bare = ok(&imgctl(home, &["catalog", "list", "--search", "redis", "--no-headers"], ""));
    assert!(bare.starts_with("1  docker.io/library/redis"), "{bare}");

    // A reader that is gone before the table comes (`imgctl catalog list | true`): a quiet success, no panic.
    let mut child = Command::new(IMGCTL)
        .args(["catalog", "list"])
        .env("XDG_CONFIG_HOME", home)
        .env_remove("IMGCTL_SERVER")
        .env_remove("IMGCTL_TOKEN")
        .env_remove("IMGCTL_CONTEXT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{}: {}", out.status, String::from_utf8_lossy(&out.stderr));

    let json: Value = serde_json::from_str(&ok(&imgctl(home, &["catalog", "list", "-o", "json"], ""))).unwrap();
    let api: Value = reqwest::Client::new()
        .get(format!("{}/catalog/api/v1/images", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json, api);
    let yaml = ok(&imgctl(home, &["catalog", "list", "-o", "yaml"], ""));
    assert!(yaml.starts_with("images:\n- id: 1\n"), "{yaml}");
    assert_eq!(serde_norway::from_str::<Value>(&yaml).unwrap(), api, "the same document as YAML");
    let detail = ok(&imgctl(home, &["catalog", "show", "1", "-o", "yaml"], ""));
    let detail: Value = serde_norway::from_str(&detail).unwrap();
    assert_eq!(
        detail,
        serde_json::from_str::<Value>(&ok(&imgctl(home, &["catalog", "show", "1", "-o", "json"], ""))).unwrap()
    );

    let shown = ok(&imgctl(home, &["catalog", "show", "1"], ""));
    assert!(shown.contains("IMAGE:        docker.io/library/redis"), "{shown}");
    let tag = shown.lines().find(|l| l.starts_with("7-alpine ")).unwrap();
    assert_eq!(tag.split_whitespace().collect::<Vec<_>>(), ["7-alpine", "linux/amd64", "recommended", "-"]);

    assert_eq!(ok(&imgctl(home, &["check", "redis:7-alpine"], "")), "allowed: docker.io/library/redis:7-alpine\n");
    let out = fails(&imgctl(home, &["check", "redis:no-such-tag"], ""), 1);
    assert_eq!(out, "imgctl: refused: redis:no-such-tag: This tag is not in the approved tags list\n");
    let out = fails(&imgctl(home, &["check", "traefik:v3.1"], ""), 1);
    assert_eq!(out, "imgctl: refused: traefik:v3.1: This image must be approved before deployment\n");
    let refused = imgctl(home, &["check", "traefik:v3.1", "-o", "json"], "");
    fails(&refused, 1);
    let body: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(body["error"], "Image not approved");

    let filed = ok(&imgctl(home, &["approvals", "request", "traefik:v3.1", "--notes", "edge proxy"], ""));
    assert_eq!(filed, "filed approval request 1 for docker.io/library/traefik:v3.1\n");
    let pending = ok(&imgctl(home, &["approvals", "list", "--status", "pending", "--no-headers"], ""));
    let row: Vec<&str> = pending.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["1", "docker.io/library/traefik:v3.1", "pending", "admin"]);
    assert_eq!(
        ok(&imgctl(home, &["approvals", "approve", "1"], "")),
        "approved request 1 for docker.io/library/traefik:v3.1\n"
    );
    assert_eq!(ok(&imgctl(home, &["check", "traefik:v3.1"], "")), "allowed: docker.io/library/traefik:v3.1\n");
    let out = fails(&imgctl(home, &["approvals", "approve", "1"], ""), 5);
    assert!(out.starts_with("imgctl: ") && out.contains("(HTTP 409)"), "{out}");
}

/// Unknown ids, bad references, bad flags, a bad server address and a server that is down each exit with
/// the documented code and one sentence on stderr.
#[tokio::test]
async fn bad_input_gives_the_documented_exit_codes() {
    let server = serve().await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    ok(&login(home, &server, "admin", PASSWORD));

    let out = fails(&imgctl(home, &["catalog", "show", "9999"], ""), 4);
    assert!(out.starts_with("imgctl: ") && out.contains("not found") && out.ends_with("(HTTP 404)\n"), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    let out = fails(&imgctl(home, &["imports", "show", "42"], ""), 4);
    assert!(out.contains("(HTTP 404)"), "{out}");

    let out = fails(&imgctl(home, &["check", "Not A Reference!"], ""), 2);
    assert!(out.starts_with("imgctl: ") && out.ends_with("(HTTP 400)\n"), "{out}");
    fails(&imgctl(home, &["catalog", "show", "one"], ""), 2);
    let out = fails(&imgctl(home, &["approvals", "request", "Bad Ref"], ""), 2);
    assert!(out.starts_with("imgctl: `Bad Ref` is not an image reference: "), "{out}");
    fails(&imgctl(home, &["catalog", "frobnicate"], ""), 2);
    fails(&imgctl(home, &["check"], ""), 2);

    let out = fails(&imgctl(home, &["--server", "ftp://example.com", "catalog", "list"], ""), 2);
    assert_eq!(out, "imgctl: invalid server address `ftp://example.com`: expected http://host:port or https://host\n");

    let down = format!("http://127.0.0.1:{}", free_port());
    let out = fails(&imgctl(home, &["--server", &down, "catalog", "list"], ""), 6);
    assert!(out.starts_with(&format!("imgctl: cannot reach {down}/catalog/api/v1/images")), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");

    // A login without a terminal and without --password-stdin says what to do.
    let out = fails(&imgctl(home, &["login", &server.base, "--username", "admin"], ""), 2);
    assert_eq!(out, "imgctl: no terminal to ask for the password on; use --password-stdin\n");

    // A user may not approve: the auth exit code, with the server's message.
    let client = reqwest::Client::new();
    let token = token_in(&config(home));
    let created = client
        .post(format!("{}/api/v1/users", server.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "username": "dana", "password": "a-long-passphrase" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    ok(&imgctl(
        home,
        &["login", &server.base, "--username", "dana", "--password-stdin", "--name", "dana"],
        "a-long-passphrase",
    ));
    ok(&imgctl(home, &["approvals", "request", "nginx:1.27"], ""));
    let out = fails(&imgctl(home, &["approvals", "approve", "1"], ""), 3);
    assert!(out.starts_with("imgctl: ") && out.ends_with("(HTTP 403)\n"), "{out}");
}

/// An admin adds an image, changes it, adds, recommends, updates and deletes its tags by name, and
/// deletes it; the admission check follows each change, and bad changes exit with the documented codes.
#[tokio::test]
async fn catalog_and_tag_changes() {
    let server = serve().await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    ok(&login(home, &server, "admin", PASSWORD));

    let added = ok(&imgctl(home, &["catalog", "add", "ghcr.io/acme/app", "--category", "internal"], ""));
    let id = added.strip_prefix("added image ").and_then(|r| r.split(' ').next()).expect(&added).to_owned();
    assert_eq!(added, format!("added image {id} ghcr.io/acme/app (approved)\n"));
    let out = fails(&imgctl(home, &["catalog", "add", "ghcr.io/acme/app"], ""), 5);
    assert!(out.starts_with("imgctl: ") && out.ends_with("(HTTP 409)\n"), "{out}");
    let out = fails(&imgctl(home, &["catalog", "add", "ghcr.io/acme/app:1.0"], ""), 2);
    assert_eq!(
        out,
        "imgctl: `ghcr.io/acme/app:1.0` names a tag or digest; add the image without it, then its tags with `imgctl tags add`\n"
    );

    let json: Value = serde_json::from_str(&ok(&imgctl(
        home,
        &["catalog", "update", &id, "--category", "tools", "--official", "true", "-o", "json"],
        "",
    )))
    .unwrap();
    assert_eq!((json["category"].as_str(), json["is_official"].as_bool()), (Some("tools"), Some(true)));
    let out = fails(&imgctl(home, &["catalog", "update", &id], ""), 2);
    assert_eq!(out, "imgctl: nothing to update: give --description, --category, --status or --official\n");
    fails(&imgctl(home, &["catalog", "update", &id, "--official", "maybe"], ""), 2);

    assert_eq!(
        ok(&imgctl(home, &["tags", "add", &id, "1.0", "--os", "linux", "--arch", "amd64"], "")),
        format!("added tag 1.0 to image {id}\n")
    );
    ok(&imgctl(home, &["tags", "add", &id, "1.1", "--recommended"], ""));
    fails(&imgctl(home, &["tags", "add", &id, "1.1"], ""), 5);
    assert_eq!(ok(&imgctl(home, &["tags", "recommend", &id, "1.0"], "")), format!("updated tag 1.0 of image {id}\n"));
    ok(&imgctl(home, &["tags", "update", &id, "1.0", "--deprecated", "true"], ""));
    let shown = ok(&imgctl(home, &["catalog", "show", &id, "--no-headers"], ""));
    let row = |tag: &str| -> Vec<String> {
        let line = shown.lines().find(|l| l.starts_with(&format!("{tag} "))).expect(&shown);
        line.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(row("1.0"), ["1.0", "linux/amd64", "recommended,deprecated", "-"]);
    assert_eq!(row("1.1"), ["1.1", "-", "-", "-"], "recommending 1.0 stopped recommending 1.1");

    let out = fails(&imgctl(home, &["tags", "update", &id, "2.0", "--deprecated", "true"], ""), 4);
    assert_eq!(out, format!("imgctl: image {id} (ghcr.io/acme/app) has no tag `2.0`\n"));
    let out = fails(&imgctl(home, &["tags", "update", &id, "1.0"], ""), 2);
    assert!(out.starts_with("imgctl: nothing to update: "), "{out}");
    fails(&imgctl(home, &["tags", "recommend", "9999", "1.0"], ""), 4);

    let allowed = imgctl(home, &["check", "ghcr.io/acme/app:1.0"], "");
    assert_eq!(String::from_utf8_lossy(&allowed.stdout), "allowed: ghcr.io/acme/app:1.0\n");
    assert!(String::from_utf8_lossy(&allowed.stderr).starts_with("warning: "), "a deprecated tag warns");
    let deleted: Value =
        serde_json::from_str(&ok(&imgctl(home, &["tags", "delete", &id, "1.1", "-o", "json"], ""))).unwrap();
    assert_eq!(deleted["tag"]["tag"], "1.1");
    fails(&imgctl(home, &["check", "ghcr.io/acme/app:1.1"], ""), 1);

    assert_eq!(ok(&imgctl(home, &["catalog", "delete", &id], "")), format!("deleted image {id} ghcr.io/acme/app\n"));
    fails(&imgctl(home, &["catalog", "show", &id], ""), 4);
    fails(&imgctl(home, &["catalog", "delete", &id], ""), 4);
}

/// Registry secrets against a real registry with basic auth, and repositories that use them, in the
/// `default` namespace and another: add, list (one namespace and all), verify, sync and delete; the
/// password is never printed, and a secret in use cannot be deleted.
#[tokio::test]
async fn secrets_and_repositories() {
    let registry = test_support::Distribution::start_with_basic_auth("robot", "robot-pass").await;
    let host = registry.host();
    let server = serve().await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    ok(&login(home, &server, "admin", PASSWORD));
    let token = token_in(&config(home));

    let add = |name: &str, namespace: &str, password: &str| {
        let args = ["secrets", "add", name, "-n", namespace, "--domain", &host, "--username", "robot"];
        imgctl(home, &[&args[..], &["--password-stdin", "--insecure"]].concat(), &format!("{password}\n"))
    };
    assert_eq!(
        ok(&add("lab", "default", "robot-pass")),
        format!("added registry secret default/lab for {host} as robot\n")
    );
    let wrong = add("wrong", "team-a", "not-the-password");
    assert!(!String::from_utf8_lossy(&wrong.stdout).contains("not-the-password"));
    ok(&wrong);
    let out = fails(&add("lab", "default", "robot-pass"), 5);
    assert!(out.ends_with("(HTTP 409)\n"), "{out}");
    let out = fails(&imgctl(home, &["secrets", "add", "x", "--domain", &host, "--username", "robot"], ""), 2);
    assert_eq!(out, "imgctl: no terminal to ask for the password on; use --password-stdin\n");

    assert_eq!(
        ok(&imgctl(home, &["secrets", "verify", "lab"], "")),
        format!("registry secret default/lab works: connected to {host} as robot\n")
    );
    let out = fails(&imgctl(home, &["secrets", "verify", "wrong", "-n", "team-a"], ""), 1);
    assert!(out.starts_with("imgctl: registry secret team-a/wrong does not work: "), "{out}");
    fails(&imgctl(home, &["secrets", "verify", "nothing"], ""), 4);

    let table = ok(&imgctl(home, &["secrets", "list"], ""));
    let lines: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines.len(), 2, "only the default namespace:\n{table}");
    assert_eq!(lines[0], ["NAME", "DOMAIN", "USERNAME", "PROVIDER", "VERIFIED", "CREATED"]);
    assert_eq!(&lines[1][..5], ["lab", &host, "robot", "other", "success"]);
    let all = ok(&imgctl(home, &["secrets", "list", "-A", "--no-headers"], ""));
    let mut rows: Vec<Vec<&str>> = all.lines().map(|l| l.split_whitespace().take(6).collect()).collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            ["default", "lab", &host, "robot", "other", "success"],
            ["team-a", "wrong", &host, "robot", "other", "failed"]
        ]
    );
    let json = ok(&imgctl(home, &["secrets", "list", "-A", "-o", "json"], ""));
    assert!(!json.contains("robot-pass") && !json.contains("not-the-password"), "{json}");
    let api: Value = reqwest::Client::new()
        .get(format!("{}/oapis/image.theriseunion.io/v1alpha1/namespaces/_all_/registry-secrets", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), api);
    fails(&imgctl(home, &["secrets", "list", "-n", "Not_A_Namespace"], ""), 2);
    fails(&imgctl(home, &["secrets", "list", "-n", "team-a", "-A"], ""), 2);

    let repo = |extra: &[&str]| {
        let args = ["repos", "add", "app", "--repository", "acme/app", "--tag", "1", "--secret", "lab"];
        imgctl(home, &[&args[..], extra].concat(), "")
    };
    fails(&repo(&["--interval", "soon"]), 2);
    assert_eq!(ok(&repo(&["--interval", "30m"])), "added repository default/app for acme/app:1, synced every 30m\n");
    fails(&repo(&[]), 5);
    let listed = ok(&imgctl(home, &["repos", "list", "--no-headers"], ""));
    let row: Vec<&str> = listed.lines().next().expect(&listed).split_whitespace().collect();
    assert_eq!(&row[..4], ["app", &format!("{host}/acme/app:1") as &str, "lab", "30m"], "{listed}");
    assert_eq!(ok(&imgctl(home, &["repos", "list", "-A", "--no-headers", "--name", "nothing"], "")), "");
    let synced = ok(&imgctl(home, &["repos", "sync", "app"], ""));
    assert!(synced.starts_with("repository default/app: "), "{synced}");
    fails(&imgctl(home, &["repos", "sync", "app", "-n", "team-a"], ""), 4);

    let out = fails(&imgctl(home, &["secrets", "delete", "lab"], ""), 5);
    assert!(out.ends_with("(HTTP 409)\n"), "a secret in use stays: {out}");
    assert_eq!(ok(&imgctl(home, &["repos", "delete", "app"], "")), "deleted repository default/app\n");
    assert_eq!(ok(&imgctl(home, &["repos", "list", "--no-headers"], "")), "");
    fails(&imgctl(home, &["repos", "delete", "app"], ""), 4);
    assert_eq!(ok(&imgctl(home, &["secrets", "delete", "lab"], "")), "deleted registry secret default/lab\n");
    fails(&imgctl(home, &["secrets", "verify", "lab"], ""), 4);
}

/// An admin adds a user, makes them an admin and back, sets their password (which ends their tokens) and
/// deletes them; the last admin stays, a user may not manage users, and no password is printed.
#[tokio::test]
async fn users_are_managed_by_admins() {
    let server = serve().await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    ok(&login(home, &server, "admin", PASSWORD));

    let added = ok(&imgctl(home, &["users", "add", "dana", "--password-stdin"], "a-long-passphrase\n"));
    assert_eq!(added, "added user dana (user)\n");
    fails(&imgctl(home, &["users", "add", "dana", "--password-stdin"], "a-long-passphrase\n"), 5);
    fails(&imgctl(home, &["users", "add", "erin", "--password-stdin"], "short\n"), 2);
    fails(&imgctl(home, &["users", "add", "erin", "--role", "root", "--password-stdin"], "a-long-passphrase\n"), 2);

    let table = ok(&imgctl(home, &["users", "list"], ""));
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().take(2).collect()).collect();
    assert_eq!(rows, [["NAME", "ROLE"], ["admin", "admin"], ["dana", "user"]], "{table}");
    let json: Value = serde_json::from_str(&ok(&imgctl(home, &["users", "list", "-o", "json"], ""))).unwrap();
    assert_eq!(json["users"][1]["username"], "dana");
    assert!(!json.to_string().contains("passphrase") && !json.to_string().contains("hash"), "{json}");

    // Dana signs in in a context of her own, and may not manage users.
    ok(&imgctl(
        home,
        &["login", &server.base, "--username", "dana", "--password-stdin", "--name", "dana"],
        "a-long-passphrase",
    ));
    let out = fails(&imgctl(home, &["users", "list"], ""), 3);
    assert!(out.ends_with("(HTTP 403)\n"), "{out}");
    let admin = server.base.trim_start_matches("http://");

    assert_eq!(
        ok(&imgctl(home, &["--context", admin, "users", "set-role", "dana", "admin"], "")),
        "user dana is now admin\n"
    );
    assert!(ok(&imgctl(home, &["users", "list", "--no-headers"], "")).contains("dana   admin"), "dana is an admin now");
    ok(&imgctl(home, &["--context", admin, "users", "set-role", "dana", "user"], ""));
    let out = fails(&imgctl(home, &["--context", admin, "users", "set-role", "admin", "user"], ""), 5);
    assert!(out.starts_with("imgctl: "), "the last admin stays: {out}");
    fails(&imgctl(home, &["--context", admin, "users", "set-role", "nobody", "user"], ""), 4);

    let out =
        ok(&imgctl(home, &["--context", admin, "users", "passwd", "dana", "--password-stdin"], "another-passphrase\n"));
    assert_eq!(out, "changed the password of dana; their tokens no longer work\n");
    let out = fails(&imgctl(home, &["catalog", "list"], ""), 3);
    assert!(out.ends_with("(HTTP 401); sign in with `imgctl login`\n"), "{out}");
    ok(&imgctl(
        home,
        &["login", &server.base, "--username", "dana", "--password-stdin", "--name", "dana"],
        "another-passphrase",
    ));

    assert_eq!(ok(&imgctl(home, &["--context", admin, "users", "delete", "dana"], "")), "deleted user dana\n");
    fails(&imgctl(home, &["--context", admin, "users", "delete", "dana"], ""), 4);
    let out = fails(&imgctl(home, &["--context", admin, "users", "delete", "admin"], ""), 5);
    assert!(out.starts_with("imgctl: "), "{out}");
}

#[tokio::test]
async fn robots_are_created_listed_and_deleted() {
    let server = serve().await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    ok(&login(home, &server, "admin", PASSWORD));

    let args = ["robots", "create", "ci", "--repo", "team/*", "--action", "pull", "--action", "push"];
    let created = ok(&imgctl(home, &[&args[..], &["--expires-in", "720h"]].concat(), ""));
    let (sentence, secret) = created.trim_end().split_once('\n').unwrap();
    assert_eq!(sentence, "created robot robot$ci (pull,push in team/*); its secret, shown only now:");
    assert!(secret.starts_with("igr_"), "{created}");
    fails(&imgctl(home, &args, ""), 5);
    fails(&imgctl(home, &["robots", "create", "bad", "--repo", "Team/x"], ""), 2);

    let table = ok(&imgctl(home, &["robots", "list"], ""));
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().take(3).collect()).collect();
    assert_eq!(rows, [["USERNAME", "REPOSITORIES", "ACTIONS"], ["robot$ci", "team/*", "pull,push"]], "{table}");
    let json: Value = serde_json::from_str(&ok(&imgctl(home, &["robots", "list", "-o", "json"], ""))).unwrap();
    assert_eq!(json["robots"][0]["name"], "ci");
    assert!(!json.to_string().contains(secret), "the secret is shown once: {json}");

    assert_eq!(ok(&imgctl(home, &["robots", "delete", "ci"], "")), "deleted robot ci\n");
    fails(&imgctl(home, &["robots", "delete", "ci"], ""), 4);
}

/// Completion scripts for bash, zsh and fish and the man page come from the command definitions, with no
/// server and no config; bash accepts its script.
#[test]
fn completions_and_man_page() {
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    let bash = ok(&imgctl(home, &["completion", "bash"], ""));
    assert!(bash.contains("_imgctl()") && bash.contains("complete -F _imgctl"), "{bash}");
    assert!(bash.contains("recommend") && bash.contains("--all-namespaces"), "every command and flag");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("imgctl.bash");
    std::fs::write(&script, &bash).unwrap();
    let checked = Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));

    assert!(ok(&imgctl(home, &["completion", "zsh"], "")).starts_with("#compdef imgctl"));
    let fish = ok(&imgctl(home, &["completion", "fish"], ""));
    assert!(fish.contains("complete -c imgctl") && fish.contains("set-role"), "{fish}");
    fails(&imgctl(home, &["completion", "tcsh"], ""), 2);

    let man = ok(&imgctl(home, &["man"], ""));
    assert!(man.contains("\n.TH imgctl 1 ") && man.contains("\n.SH NAME\nimgctl \\- imagegate"), "{man}");
    assert!(man.contains("secrets") && man.contains("completion"), "{man}");
    assert!(!home.join("imgctl").exists(), "no config is read or written");

    // A reader that stops early: the script (larger than a pipe's buffer) is cut short, without a panic.
    assert!(bash.len() > 1 << 16, "{}", bash.len());
    let mut child = Command::new(IMGCTL)
        .args(["completion", "bash"])
        .env("XDG_CONFIG_HOME", home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `import --wait` follows an import from a real registry into another to its end: one line per change
/// without a terminal, one progress document per change with `-o json`; `imports show --follow` draws
/// progress bars under a pseudo-terminal, without colours when `NO_COLOR` is set.
#[tokio::test]
async fn imports_are_followed_to_the_end() {
    let source = test_support::Distribution::start().await;
    let target = test_support::Distribution::start().await;
    let image = test_support::images::push_image(&source, "team/app", "1", &[300 * 1024, 200 * 1024, 1024]).await;
    test_support::images::push_image(&source, "team/app", "2", &[100 * 1024]).await;
    let server = serve_with(&["--internal-registry", &target.url()]).await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    ok(&login(home, &server, "admin", PASSWORD));

    let reference = format!("{}/team/app:1", source.host());
    let out = ok(&imgctl(home, &["import", &reference, "--wait"], ""));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Image import started (import 1)", "{out}");
    let last = *lines.last().unwrap();
    assert!(last.starts_with("import 1: succeeded, attempt 1/"), "{out}");
    // Three layers and the config, all completed, with their bytes.
    assert!(last.contains(", 4/4 layers, "), "{out}");
    let sizes = last.rsplit(", ").next().unwrap();
    let (done, total) = sizes.split_once('/').unwrap();
    assert_eq!(done, total, "{out}");
    for line in &lines[1..] {
        assert!(line.starts_with("import 1: "), "one line per change: {out}");
    }

    let out = ok(&imgctl(home, &["-o", "json", "import", &format!("{}/team/app:2", source.host()), "--wait"], ""));
    let documents: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).expect(l)).collect();
    let last = documents.last().unwrap();
    assert_eq!((last["id"].as_i64(), last["status"].as_str()), (Some(2), Some("ready")), "{out}");
    assert_eq!(last["state"], "succeeded");
    assert_eq!(last["done"], last["size"], "{last}");
    assert_eq!(last["layers"].as_array().unwrap().len(), 2, "{last}");
    for (a, b) in documents.iter().zip(documents.iter().skip(1)) {
        assert_ne!(a, b, "a document is printed only when something changed: {out}");
    }

    // The first import, followed again: it has ended, so one document, the API's own answer.
    let out = ok(&imgctl(home, &["-o", "json", "imports", "show", "1", "--follow"], ""));
    let document: Value = serde_json::from_str(out.trim_end()).unwrap();
    let api: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/images/1/progress", server.base))
        .bearer_auth(token_in(&config(home)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document, api);
    assert_eq!(api["digest"], image.digest.as_str());
    // The event stream of an import that has ended: one event, the same document, and the stream ends.
    let events = reqwest::Client::new()
        .get(format!("{}/api/v1/images/1/progress/events", server.base))
        .bearer_auth(token_in(&config(home)))
        .send()
        .await
        .unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let text = events.text().await.unwrap();
    let data: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
    assert_eq!(text.lines().filter(|l| *l == "event: progress").count(), 1, "{text}");
    assert_eq!(serde_json::from_str::<Value>(data[0]).unwrap(), api);

    // Under a terminal: progress bars with each blob's short digest and its size, colours unless NO_COLOR.
    let layer = image.manifests[0].blobs.iter().find(|b| b.starts_with("sha256:")).unwrap().clone();
    let short = &layer["sha256:".len().."sha256:".len() + 12];
    let screen = under_terminal(home, "imports show 1 --follow", false);
    assert!(screen.contains(short) && screen.contains("succeeded"), "{screen}");
    assert!(screen.contains("\u{1b}[36m"), "a coloured bar: {screen:?}");
    let plain = under_terminal(home, "imports show 1 --follow", true);
    assert!(plain.contains(short) && plain.contains("===="), "{plain}");
    assert!(!plain.contains("\u{1b}[36m") && !plain.contains("\u{1b}[34m"), "NO_COLOR: {plain:?}");
}

/// Runs `imgctl ARGS` under a pseudo-terminal (util-linux's `script`) and returns what it drew.
fn under_terminal(home: &Path, args: &str, no_colour: bool) -> String {
    let mut command = Command::new("script");
    command
        .args(["-qefc", &format!("{IMGCTL} {args}"), "/dev/null"])
        .env("XDG_CONFIG_HOME", home)
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("IMGCTL_SERVER")
        .env_remove("IMGCTL_TOKEN")
        .stdin(Stdio::null());
    if no_colour {
        command.env("NO_COLOR", "1");
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "{}: {}", out.status, String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Ctrl-C while following stops following, says so, exits 130, and leaves the import running.
#[tokio::test]
async fn ctrl_c_stops_following_and_not_the_import() {
    let source = test_support::Distribution::start().await;
    test_support::images::push_image(&source, "team/app", "1", &[1024]).await;
    // The internal registry is down, so the import keeps retrying.
    let down = format!("http://127.0.0.1:{}", free_port());
    let server = serve_with(&["--internal-registry", &down]).await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    ok(&login(home, &server, "admin", PASSWORD));
    ok(&imgctl(home, &["import", &format!("{}/team/app:1", source.host())], ""));

    let child = Command::new(IMGCTL)
        .args(["imports", "show", "1", "--follow"])
        .env("XDG_CONFIG_HOME", home)
        .env_remove("IMGCTL_SERVER")
        .env_remove("IMGCTL_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let signalled = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(signalled.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_eq!(stderr, "imgctl: stopped following import 1, which goes on; `imgctl imports cancel 1` stops it\n");
    assert!(String::from_utf8(out.stdout).unwrap().starts_with("import 1: "));
    let progress: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/images/1/progress", server.base))
        .bearer_auth(token_in(&config(home)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(progress["status"], "importing", "{progress}");
}

/// `password` changes the signed-in user's own password and signs in again with it; a wrong current
/// password changes nothing.
#[tokio::test]
async fn users_change_their_own_password() {
    let server = serve().await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    ok(&login(home, &server, "admin", PASSWORD));
    let out = fails(&imgctl(home, &["password", "--password-stdin"], "wrong-password\nanother-passphrase\n"), 3);
    assert!(out.starts_with("imgctl: ") && out.ends_with("(HTTP 403)\n"), "{out}");
    ok(&imgctl(home, &["catalog", "list"], ""));

    let out = ok(&imgctl(home, &["password", "--password-stdin"], &format!("{PASSWORD}\nanother-passphrase\n")));
    let context = server.base.trim_start_matches("http://");
    assert_eq!(out, format!("changed the password of admin; signed in again with it (context {context})\n"));
    // The context's new token works; the old password does not.
    ok(&imgctl(home, &["catalog", "list"], ""));
    fails(&login(home, &server, "admin", PASSWORD), 3);
    ok(&login(home, &server, "admin", "another-passphrase"));
}

/// Each listing and detail command's table and JSON, as snapshots (times, hosts and digests replaced):
/// the catalog, an image and its tags, approvals, imports, an import's layers, secrets, repositories and
/// users.
#[tokio::test]
async fn tables_and_documents_match_their_snapshots() {
    let source = test_support::Distribution::start().await;
    let target = test_support::Distribution::start().await;
    test_support::images::push_image(&source, "team/app", "1", &[2000, 1000]).await;
    let server = serve_with(&["--internal-registry", &target.url()]).await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    ok(&login(home, &server, "admin", PASSWORD));
    ok(&imgctl(home, &["import", &format!("{}/team/app:1", source.host()), "--wait"], ""));
    ok(&imgctl(home, &["approvals", "request", "traefik:v3.1", "--notes", "edge proxy"], ""));
    ok(&imgctl(
        home,
        &["secrets", "add", "lab", "--domain", &source.host(), "--username", "robot", "--password-stdin"],
        "pw\n",
    ));
    ok(&imgctl(home, &["repos", "add", "app", "--repository", "team/app", "--tag", "1", "--secret", "lab"], ""));
    // The repository's first sync runs at once: wait for its end, so that the listing holds still.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list: Value = serde_json::from_str(&ok(&imgctl(home, &["repos", "list", "-o", "json"], ""))).unwrap();
        let status = list["items"][0]["status"]["syncStatus"].as_str().unwrap_or_default().to_owned();
        if status == "Success" || status == "Failed" {
            break;
        }
        assert!(Instant::now() < deadline, "the sync did not end: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?", "[time]");
    settings.add_filter(r"127\.0\.0\.1[:_]\d{5}", "[host]");
    settings.add_filter(r"sha256:[0-9a-f]{64}", "[digest]");
    settings.set_snapshot_suffix("");
    let _guard = settings.bind_to_scope();
    let commands: [&[&str]; 9] = [
        &["catalog", "list", "--limit", "3"],
        &["catalog", "show", "1"],
        &["approvals", "list"],
        &["imports", "list"],
        &["imports", "show", "1"],
        &["secrets", "list"],
        &["repos", "list"],
        &["users", "list"],
        &["check", "redis:7-alpine"],
    ];
    for args in commands {
        let name = args.join("_").replace(':', "-");
        insta::assert_snapshot!(format!("{name}_table"), ok(&imgctl(home, args, "")));
        let json = ok(&imgctl(home, &[args, &["-o", "json"]].concat(), ""));
        let pretty = serde_json::to_string_pretty(&serde_json::from_str::<Value>(&json).unwrap()).unwrap();
        insta::assert_snapshot!(format!("{name}_json"), pretty);
    }
}

/// The same client against a server on PostgreSQL: sign-in, the catalog, the admission check's exit
/// codes, an approval, an import followed to its end, and logout.
#[tokio::test]
async fn the_walk_on_postgresql() {
    let database = test_support::postgres_url().await;
    let source = test_support::Distribution::start().await;
    let target = test_support::Distribution::start().await;
    test_support::images::push_image(&source, "team/app", "1", &[4000, 1000]).await;
    let server = serve_with(&["--database-url", &database, "--internal-registry", &target.url()]).await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    ok(&login(home, &server, "admin", PASSWORD));

    let table = ok(&imgctl(home, &["catalog", "list", "--search", "redis", "--no-headers"], ""));
    assert!(table.starts_with("1  docker.io/library/redis  approved  database  4\n"), "{table}");
    ok(&imgctl(home, &["check", "redis:7-alpine"], ""));
    fails(&imgctl(home, &["check", "traefik:v3.1"], ""), 1);
    ok(&imgctl(home, &["approvals", "request", "traefik:v3.1"], ""));
    ok(&imgctl(home, &["approvals", "approve", "1", "--category", "networking"], ""));
    ok(&imgctl(home, &["check", "traefik:v3.1"], ""));

    let out = ok(&imgctl(home, &["import", &format!("{}/team/app:1", source.host()), "--wait"], ""));
    assert!(out.lines().last().unwrap().starts_with("import 1: succeeded, attempt 1/"), "{out}");
    let listed: Value = serde_json::from_str(&ok(&imgctl(home, &["imports", "list", "-o", "json"], ""))).unwrap();
    assert_eq!(listed["images"][0]["artifacts"][0]["status"], "ready", "{listed}");

    let token = token_in(&config(home));
    ok(&imgctl(home, &["logout"], ""));
    assert_eq!(status_with_token(&server, &token).await, 401, "logout revoked the token");
}

/// `images`, `nodes`, `drift` and `stats` against a server on its embedded defaults that reads a real
/// containerd: seed 004's two lists as tables, the node, the unapproved image it runs, and the built-in
/// registry's counts; with `-o json`, the API's documents. Skips where containerd cannot run.
#[tokio::test]
async fn inventory_commands() {
    let containerd = match test_support::containerd::Containerd::start() {
        Ok(containerd) => containerd,
        Err(reason) => {
            eprintln!("skipped: containerd cannot run here: {reason}");
            return;
        }
    };
    let image = test_support::containerd::oci_archive(
        &containerd.scratch(),
        "app",
        &["docker.io/library/unlisted:1"],
        &[2_000],
    );
    containerd.import(&image.archive).unwrap();
    let source = test_support::Distribution::start().await;
    test_support::images::push_image(&source, "team/app", "1", &[1000]).await;
    let endpoint = containerd.endpoint();
    let server =
        serve_with(&["--cri-endpoint", &endpoint, "--node-name", "node-1", "--inventory-interval", "1s"]).await;
    let home = tempfile::tempdir().unwrap();
    let home = home.path();
    ok(&login(home, &server, "admin", PASSWORD));
    ok(&imgctl(home, &["import", &format!("{}/team/app:1", source.host()), "--wait"], ""));

    // The runtime lists an imported image a moment later, and the node's first report follows.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let images: Value = serde_json::from_str(&ok(&imgctl(home, &["images", "-o", "json"], ""))).unwrap();
        let nodes: Value = serde_json::from_str(&ok(&imgctl(home, &["nodes", "-o", "json"], ""))).unwrap();
        if !images["containerd_images"].as_array().unwrap().is_empty() && nodes["nodes"][0]["image_count"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the runtime's image never showed: {images} {nodes}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let tables = ok(&imgctl(home, &["images"], ""));
    let (runtime, registry) = tables.split_once("\n\n").expect(&tables);
    let rows: Vec<Vec<&str>> = runtime.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"], "{tables}");
    assert_eq!(&rows[1][..2], ["docker.io/library/unlisted", "1"], "{tables}");
    assert_eq!(rows[1][2].len(), 12, "crictl's short image id: {tables}");
    let row: Vec<&str> = registry.lines().nth(1).expect(&tables).split_whitespace().collect();
    // On a plain registry, the project is the repository's first path segment.
    assert_eq!(&row[..3], [&source.host().replace(':', "_") as &str, "team/app", "1"], "{tables}");

    let nodes = ok(&imgctl(home, &["nodes", "--no-headers"], ""));
    let row: Vec<&str> = nodes.lines().next().expect(&nodes).split_whitespace().collect();
    assert_eq!((row[0], row[1], row[row.len() - 2]), ("node-1", "ready", "1"), "{nodes}");

    let drift = ok(&imgctl(home, &["drift"], ""));
    let row: Vec<&str> = drift.lines().nth(1).expect(&drift).split_whitespace().collect();
    assert_eq!(row[0], "docker.io/library/unlisted:1", "{drift}");
    assert_eq!(&row[2..], ["not_approved", "node-1"], "{drift}");
    assert_eq!(ok(&imgctl(home, &["drift", "--node", "node-1", "--no-headers"], "")).lines().count(), 1);
    fails(&imgctl(home, &["drift", "--node", "nowhere"], ""), 4);

    let stats = ok(&imgctl(home, &["stats"], ""));
    assert!(stats.starts_with("STATUS:          healthy\n"), "{stats}");
    assert!(stats.contains("REPOSITORIES:    1 private, 0 public\n"), "{stats}");

    let token = token_in(&config(home));
    for (args, path) in [
        (&["images", "-o", "json"][..], "/images"),
        (&["nodes", "-o", "json"], "/api/v1/nodes"),
        (&["drift", "-o", "json"], "/api/v1/drift"),
        (&["stats", "-o", "json"], "/api/v1/harbor/stats"),
    ] {
        let printed: Value = serde_json::from_str(&ok(&imgctl(home, args, ""))).unwrap();
        let api: Value = reqwest::Client::new()
            .get(format!("{}{path}", server.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if path != "/api/v1/nodes" {
            assert_eq!(printed, api, "{path}");
        } else {
            assert_eq!(printed["nodes"][0]["name"], api["nodes"][0]["name"]);
        }
    }
}
