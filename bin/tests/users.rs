//! `imagegate-server user …` against the database a real server uses, with the server down and up, and
//! the server's `--token-ttl`.

mod common;

use common::{Server, free_port};

use std::{
    io::Write as _,
    path::Path,
    process::{Command, Output, Stdio},
    time::Duration,
};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_imagegate-server");

/// A command with no database or admin password from the caller's environment.
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("IMAGEGATE_DATABASE_URL")
        .env_remove("IMAGEGATE_ADMIN_PASSWORD")
        .env_remove("IMAGEGATE_TOKEN_TTL")
        .env_remove("RUST_BACKTRACE");
    cmd
}

/// Runs `imagegate-server ARGS` with `stdin` on standard input (which is then no terminal).
fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = command(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn succeeds(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", out.status);
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn fails(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "succeeded: {}", String::from_utf8_lossy(&out.stdout));
    stderr
}

async fn serve(database: &[&str], env: &[(&str, &str)], args: &[&str]) -> Server {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = command(&["--listen", &listen]);
    // Quiet, so that the unread stderr pipe never fills.
    cmd.args(database).args(args).env("RUST_LOG", "warn").stdout(Stdio::null()).stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Server::spawn(&mut cmd, port, tempfile::tempdir().unwrap()).await
}

/// `POST /api/v1/auth/token`: the status, and the answer.
async fn sign_in(server: &Server, username: &str, password: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/token", server.base))
        .json(&json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn get(server: &Server, path: &str, token: &str) -> (u16, Value) {
    let response =
        reqwest::Client::new().get(format!("{}{path}", server.base)).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn data_dir(dir: &Path) -> String {
    dir.join("data").display().to_string()
}

/// `user add` before the first start makes the first admin (and no `admin` is generated); with the
/// server up, `user add` and `user passwd` take effect at once, and `user passwd` ends the user's tokens.
#[tokio::test]
async fn users_are_added_listed_and_given_passwords_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let at = ["--data-dir", data.as_str()];

    let out =
        run(&["user", "add", "carol", "--role", "admin", "--password-stdin", "--data-dir", &data], "carol-password\n");
    assert_eq!(succeeds(&out), "added user carol (admin)\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("database: sqlite://"), "says which database");
    // The options may come before the command too; refusals say why and change nothing.
    let stderr = fails(&run(&["--data-dir", &data, "user", "add", "dan", "--password-stdin"], "short\n"));
    assert!(stderr.contains("invalid password: must be 8 to 1024 characters, not 5"), "{stderr}");
    let stderr = fails(&run(&["user", "add", "carol", "--data-dir", &data], "another-password\n"));
    assert!(stderr.contains("user carol already exists"), "{stderr}");
    let stderr = fails(&run(&["user", "add", "no body", "--data-dir", &data], "some-password\n"));
    assert!(stderr.contains("invalid username"), "{stderr}");
    let stderr = fails(&run(&["user", "passwd", "nobody", "--data-dir", &data], "some-password\n"));
    assert!(stderr.contains("user nobody not found"), "{stderr}");
    let stderr = fails(&run(&["user", "add", "dan", "--role", "root", "--data-dir", &data], "dan-password\n"));
    assert!(stderr.contains("invalid value 'root'"), "{stderr}");

    let server = serve(&at, &[], &[]).await;
    // No password was generated for an `admin`: the database had a user already.
    let (status, _) = sign_in(&server, "admin", "anything-at-all").await;
    assert_eq!(status, 401);
    let (status, body) = sign_in(&server, "carol", "carol-password").await;
    assert_eq!(status, 200, "{body}");
    let carol = body["token"].as_str().unwrap().to_owned();
    let (status, users) = get(&server, "/api/v1/users", &carol).await;
    assert_eq!(status, 200, "{users}");
    assert_eq!(users["users"].as_array().unwrap().len(), 1);
    assert_eq!(
        (users["users"][0]["username"].as_str(), users["users"][0]["role"].as_str()),
        (Some("carol"), Some("admin"))
    );

    // While it serves: a new user signs in at once.
    // Standard input is no terminal here, so the password is read from it without --password-stdin.
    succeeds(&run(&["user", "add", "dan", "--data-dir", &data], "dan-password\r\n"));
    let (status, body) = sign_in(&server, "dan", "dan-password").await;
    assert_eq!(status, 200, "{body}");
    let dan = body["token"].as_str().unwrap().to_owned();
    assert_eq!(get(&server, "/api/v1/users", &dan).await.0, 403, "a user by default");

    let listed = succeeds(&run(&["user", "list", "--data-dir", &data], ""));
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    assert_eq!(lines[0], "USERNAME  ROLE   CREATED");
    assert!(lines[1].starts_with("carol     admin  20") && lines[1].ends_with('Z'), "{listed}");
    assert!(lines[2].starts_with("dan       user   20"), "{listed}");

    // A new password ends the user's tokens, and the old one no longer signs in.
    let out = run(&["user", "passwd", "carol", "--password-stdin", "--data-dir", &data], "carol-new-password\n");
    assert_eq!(succeeds(&out), "set the password of carol; their tokens no longer work\n");
    assert_eq!(get(&server, "/api/v1/users", &carol).await.0, 401);
    assert_eq!(get(&server, "/api/v1/auth/tokens", &dan).await.0, 200, "only hers");
    assert_eq!(sign_in(&server, "carol", "carol-password").await.0, 401);
    let basic = reqwest::Client::new()
        .get(format!("{}/api/v1/users", server.base))
        .basic_auth("carol", Some("carol-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status().as_u16(), 401);
    let (status, body) = sign_in(&server, "carol", "carol-new-password").await;
    assert_eq!(status, 200, "{body}");

    // The audit trail says the command line did it.
    let token = body["token"].as_str().unwrap();
    let (_, events) = get(&server, "/catalog/api/v1/events?event_type=user.password.changed", token).await;
    assert_eq!(events["events"][0]["actor"], "system:cli");
    assert_eq!(events["events"][0]["details"]["tokens_revoked"], 1);
}

/// The same on PostgreSQL, with `--database-url` on either side of the command.
#[tokio::test]
async fn the_command_line_works_on_postgres() {
    let url = test_support::postgres_url().await;
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    succeeds(&run(
        &["user", "add", "erin", "--role", "admin", "--database-url", &url, "--data-dir", &data],
        "erin-password\n",
    ));
    let listed = succeeds(&run(&["--database-url", &url, "--data-dir", &data, "user", "list"], ""));
    assert!(listed.lines().nth(1).unwrap().starts_with("erin      admin  20"), "{listed}");
    let server = serve(&["--database-url", &url, "--data-dir", &data], &[], &[]).await;
    let (status, body) = sign_in(&server, "erin", "erin-password").await;
    assert_eq!(status, 200, "{body}");
    succeeds(&run(&["user", "passwd", "erin", "--database-url", &url], "erin-new-password\n"));
    assert_eq!(get(&server, "/api/v1/auth/tokens", body["token"].as_str().unwrap()).await.0, 401);
}

#[tokio::test]
async fn tokens_end_after_the_token_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let data = data_dir(dir.path());
    let at = ["--data-dir", data.as_str()];
    let server = serve(&at, &[("IMAGEGATE_ADMIN_PASSWORD", "s3cret-enough")], &["--token-ttl", "3s"]).await;
    let (status, body) = sign_in(&server, "admin", "s3cret-enough").await;
    assert_eq!(status, 200, "{body}");
    let token = body["token"].as_str().unwrap();
    let expires = time::OffsetDateTime::parse(
        body["expiresAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(left > time::Duration::ZERO && left <= time::Duration::seconds(3), "{left}");
    assert_eq!(get(&server, "/api/v1/auth/tokens", token).await.0, 200);
    tokio::time::sleep(Duration::try_from(left).unwrap() + Duration::from_millis(200)).await;
    let (status, body) = get(&server, "/api/v1/auth/tokens", token).await;
    assert_eq!((status, body["message"].as_str()), (401, Some("invalid credentials")));
    drop(server);

    // Tokens always end, within a year.
    for ttl in ["0", "never", "366d"] {
        let out =
            command(&["--data-dir", &data, "--listen", &format!("127.0.0.1:{}", free_port()), "--token-ttl", ttl])
                .output()
                .unwrap();
        let stderr = fails(&out);
        assert!(stderr.contains("--token-ttl"), "{ttl}: {stderr}");
    }
}
