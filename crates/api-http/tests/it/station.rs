//! The station profile (seed 003): sign-in with a session cookie, and the station's registries, with the
//! seed's walk (form login into a cookie jar, then the cookie on every call) against a real registry.

use axum::{
    body::Body,
    http::{HeaderMap, Request, StatusCode, header},
};
use serde_json::{Value, json};

use crate::harness::{ADMIN_PASSWORD, TestApp, redact};

const HOST: &str = "station.example:8080";

/// A client with a cookie jar of one cookie, as `curl -c cookies.txt` / `-b cookies.txt` keeps it.
struct Jar<'a> {
    app: &'a TestApp,
    cookie: Option<String>,
}

impl<'a> Jar<'a> {
    fn new(app: &'a TestApp) -> Jar<'a> {
        Jar { app, cookie: None }
    }

    /// Sends `body` as curl's `-d` does: with the form content type, whatever it holds.
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        extra: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(path).header(header::HOST, HOST);
        if let Some(cookie) = &self.cookie {
            req = req.header(header::COOKIE, cookie);
        }
        for (name, value) in extra {
            req = req.header(*name, *value);
        }
        let req = match body {
            Some(body) => {
                req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(Body::from(body.to_owned()))
            }
            None => req.body(Body::empty()),
        };
        let (status, headers, value) = self.app.call_full(req.unwrap()).await;
        if let Some(set) = headers.get(header::SET_COOKIE).and_then(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap().trim().to_owned();
            self.cookie = if pair.ends_with('=') { None } else { Some(pair) };
        }
        (status, headers, value)
    }

    async fn get(&mut self, path: &str) -> (StatusCode, Value) {
        let (status, _, value) = self.call("GET", path, None, &[]).await;
        (status, value)
    }

    async fn post(&mut self, path: &str, body: &Value) -> (StatusCode, Value) {
        let (status, _, value) = self.call("POST", path, Some(&body.to_string()), &[]).await;
        (status, value)
    }

    async fn delete(&mut self, path: &str) -> (StatusCode, Value) {
        let (status, _, value) = self.call("DELETE", path, None, &[]).await;
        (status, value)
    }

    async fn login(&mut self, form: &str) -> (StatusCode, HeaderMap, Value) {
        self.call("POST", "/api/v1/login", Some(form), &[]).await
    }
}

/// The login answer with its time replaced, which differs on every run.
fn redact_login(mut value: Value) -> Value {
    let time = value["logintime"].as_str().expect("a logintime");
    assert!(
        time.len() == 19 && time.as_bytes()[10] == b' ' && time.as_bytes()[4] == b'-',
        "YYYY-MM-DD HH:MM:SS: {time}"
    );
    value["logintime"] = "[logintime]".into();
    value
}

fn assert_envelope(status: StatusCode, body: &Value, code: u16) {
    assert_eq!(status.as_u16(), code, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "only `error`: {body}");
}

async fn sessions_sign_in_and_out(postgres: bool) {
    let app = if postgres { TestApp::postgres().await } else { TestApp::sqlite().await };
    let mut jar = Jar::new(&app);

    // The seed's login: form fields, and a cookie to keep.
    let (status, headers, body) = jar.login(&format!("username=admin&password={ADMIN_PASSWORD}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    insta::assert_json_snapshot!("station_login", redact_login(body));
    let set = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set.starts_with(&format!("{}=", api_http::session::COOKIE)), "{set}");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && !set.contains("Secure"), "{set}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let cookie = jar.cookie.clone().unwrap();

    // The cookie signs in every profile's routes, as tokens and Basic do.
    let (status, body) = jar.get("/api/v1/login_refresh").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["username"].as_str(), body["isAdmin"].as_bool()), (Some("admin"), Some(true)));
    let (status, body) = jar.get("/catalog/api/v1/images?limit=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = jar.get("/api/v1/users").await;
    assert_eq!(status, StatusCode::OK, "admin by cookie: {body}");

    // A cookie-authenticated change from another site is refused; from this site (or a client that names
    // none) it goes through. Token requests are not checked.
    let add = json!({"method": "add", "name": "lab", "url": "https://lab.example", "enable_trust_cert": true, "version": "v2"}).to_string();
    let before = app.get("/api/v1/registry").await.1;
    for (name, value) in
        [("origin", "https://evil.example"), ("referer", "https://evil.example/form"), ("origin", "null")]
    {
        let (status, _, body) = jar.call("POST", "/api/v1/registry", Some(&add), &[(name, value)]).await;
        assert_envelope(status, &body, 403);
    }
    let (status, _, body) =
        jar.call("DELETE", "/api/v1/registry/lab", None, &[("origin", "https://evil.example")]).await;
    assert_envelope(status, &body, 403);
    assert_eq!(app.get("/api/v1/registry").await.1, before, "a refused request changes nothing");
    let (status, _, body) =
        jar.call("POST", "/api/v1/registry", Some(&add), &[("origin", "http://station.example:8080")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token_foreign = Request::builder()
        .method("DELETE")
        .uri("/api/v1/registry/lab")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.admin_token().unwrap()))
        .header("origin", "https://evil.example")
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = app.call_full(token_foreign).await;
    assert_eq!(status, StatusCode::OK, "tokens are not checked: {body}");

    // Login takes JSON too, under the form content type; over TLS the cookie is Secure.
    let mut tls = Jar::new(&app);
    let json_login = json!({"username": "admin", "password": ADMIN_PASSWORD}).to_string();
    let (status, headers, body) =
        tls.call("POST", "/api/v1/login", Some(&json_login), &[("x-forwarded-proto", "https")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(headers[header::SET_COOKIE].to_str().unwrap().contains("; Secure"));
    assert_ne!(tls.cookie, jar.cookie, "each sign-in is a session of its own");

    // A wrong password: 401 in the envelope, no cookie. Missing fields: 400.
    let mut stranger = Jar::new(&app);
    let (status, headers, body) = stranger.login("username=admin&password=wrong").await;
    assert_envelope(status, &body, 401);
    assert!(headers.get(header::SET_COOKIE).is_none());
    let (status, _, body) = stranger.login("username=nobody&password=wrong").await;
    assert_envelope(status, &body, 401);
    for bad in
        ["", "username=admin", "{\"username\": \"admin\"}", "{\"username\": 1, \"password\": \"x\"}", "null", "[1]"]
    {
        let (status, _, body) = stranger.login(bad).await;
        assert_envelope(status, &body, 400);
    }
    // A login form posted from another site is refused before the password is checked.
    let form = format!("username=admin&password={ADMIN_PASSWORD}");
    let (status, _, body) =
        stranger.call("POST", "/api/v1/login", Some(&form), &[("origin", "https://evil.example")]).await;
    assert_envelope(status, &body, 403);
    assert!(stranger.cookie.is_none());
    // Without a session: 401 in the envelope.
    let (status, body) = stranger.get("/api/v1/login_refresh").await;
    assert_envelope(status, &body, 401);

    // Logout ends the session: the cookie no longer signs anything in.
    let (status, headers, body) = jar.call("PUT", "/api/v1/logout", None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    insta::assert_json_snapshot!("station_logout", body);
    assert!(headers[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    jar.cookie = Some(cookie);
    let (status, body) = jar.get("/api/v1/login_refresh").await;
    assert_envelope(status, &body, 401);
    let (status, body) = jar.get("/catalog/api/v1/images").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // A new password ends every session of the user.
    let (status, body) = tls.get("/api/v1/login_refresh").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app.put("/api/v1/users/admin", &json!({"password": "a-brand-new-password"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = tls.get("/api/v1/login_refresh").await;
    assert_envelope(status, &body, 401);
}

async fn sessions_end_when_idle(postgres: bool) {
    let app = if postgres { TestApp::postgres().await } else { TestApp::sqlite().await };
    let admin = app.store.find_credentials("admin").await.unwrap().unwrap().user;
    let (_, hash) = api_http::auth::new_token();
    let started = app.store.create_session(admin.id, &hash).await.unwrap();
    let hour = std::time::Duration::from_secs(3600);
    let found = app.store.find_session(&hash, hour).await.unwrap().expect("a live session");
    assert_eq!((found.user.username.as_str(), found.created_at), ("admin", started.created_at));
    assert!(app.store.find_session("not-a-hash", hour).await.unwrap().is_none());
    // Idle longer than allowed: gone, and it stays gone with a longer limit.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert!(app.store.find_session(&hash, std::time::Duration::from_millis(1)).await.unwrap().is_none());
    assert!(app.store.find_session(&hash, hour).await.unwrap().is_none(), "the idle session was ended");
    // A deleted user's sessions end with them.
    let user_token = app.user_token("ursula").await;
    assert!(!user_token.is_empty());
    let ursula = app.store.find_credentials("ursula").await.unwrap().unwrap().user;
    let (_, hash) = api_http::auth::new_token();
    app.store.create_session(ursula.id, &hash).await.unwrap();
    let (status, body) = app.delete("/api/v1/users/ursula").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(app.store.find_session(&hash, hour).await.unwrap().is_none());
}

async fn registries_walk(postgres: bool) {
    let lab = test_support::Distribution::start().await;
    let app = TestApp::with_registry(postgres, &lab, "").await;
    let mut jar = Jar::new(&app);
    let (status, _, body) = jar.login(&format!("username=admin&password={ADMIN_PASSWORD}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = jar.get("/api/v1/registry").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    insta::assert_json_snapshot!("station_registries_default", body);

    // The seed's add, sent as curl sends it (JSON under the form content type): the whole list answers,
    // the password stored but shown as "".
    let add = json!({"method": "add", "name": "test", "enable_trust_cert": true, "version": "v1",
        "url": "https://test.registry.com", "username": "my_user", "password": "my_pass"});
    let (status, body) = jar.post("/api/v1/registry", &add).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    insta::assert_json_snapshot!("station_registry_added", body);
    assert!(!body.to_string().contains("my_pass"));
    let id = body["registries"][1]["id"].as_i64().unwrap();
    assert!(id > 1);

    // The same credentials, sealed, are a registry secret in the station namespace of the kube-style API.
    let (status, secrets) = app.get("/oapis/image.theriseunion.io/v1alpha1/namespaces/station/registry-secrets").await;
    assert_eq!(status, StatusCode::OK, "{secrets}");
    let items = secrets["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{secrets}");
    assert_eq!(items[0]["metadata"]["annotations"]["theriseunion.io/display-name"], "test", "{secrets}");
    assert!(!secrets.to_string().contains("my_pass"));
    let secret = app.store.list_station_registries("station").await.unwrap();
    assert_eq!(secret[0].secret.password.expose(), "my_pass");

    // The seed's edit: no version sent, so it keeps v1, and the id stays.
    let edit = json!({"method": "edit", "oldname": "test", "name": "new_test", "enable_trust_cert": false,
        "url": "https://new_test.registry.com", "username": "my_new_user", "password": "my_new_pass"});
    let (status, body) = jar.post("/api/v1/registry", &edit).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    insta::assert_json_snapshot!("station_registry_edited", body);
    assert_eq!(body["registries"][1]["id"], id);
    // An edit that sends back the "" it read keeps the stored password.
    let (status, body) =
        jar.post("/api/v1/registry", &json!({"method": "edit", "oldname": "new_test", "password": ""})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.store.list_station_registries("station").await.unwrap()[0].secret.password.expose(), "my_new_pass");

    // Names with spaces; a conflict is a 409; Docker Hub cannot be changed (403); an unknown name is a 404.
    let (status, body) = jar
        .post(
            "/api/v1/registry",
            &json!({"method": "add", "name": "My Lab", "url": lab.url(),
        "enable_trust_cert": false, "version": "v2"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["registries"].as_array().unwrap().len(), 3, "{body}");
    let state = app.get("/api/v1/registry").await.1;
    let refusals = [
        (
            json!({"method": "add", "name": "new_test", "url": "https://x.example", "enable_trust_cert": true, "version": "v1"}),
            409,
        ),
        (
            json!({"method": "add", "name": "Docker Hub", "url": "https://x.example", "enable_trust_cert": true, "version": "v1"}),
            409,
        ),
        (json!({"method": "edit", "oldname": "new_test", "name": "My Lab"}), 409),
        (json!({"method": "edit", "oldname": "Docker Hub", "name": "hub", "url": "https://x.example"}), 403),
        (json!({"method": "edit", "oldname": "new_test", "name": "Docker Hub"}), 403),
        (json!({"method": "edit", "oldname": "nothing", "name": "x"}), 404),
        (json!({"method": "remove", "name": "x"}), 400),
        (json!({"name": "x", "url": "https://x.example"}), 400),
        (json!({"method": "add", "url": "https://x.example"}), 400),
        (json!({"method": "add", "name": "x"}), 400),
        (json!({"method": "add", "name": "x", "url": "ftp://x.example"}), 400),
        (json!({"method": "add", "name": "x", "url": "x.example"}), 400),
        (json!({"method": "add", "name": "   ", "url": "https://x.example"}), 400),
        (json!({"method": "add", "name": "x", "url": "https://x.example", "enable_trust_cert": "yes"}), 400),
        (json!({"method": "add", "name": "x", "url": "https://x.example", "colour": "red"}), 400),
        (json!({"method": "add", "name": "x\u{0000}", "url": "https://x.example"}), 400),
        (json!({"method": "edit"}), 400),
        (json!([1, 2]), 400),
    ];
    for (body, code) in refusals {
        let (status, answer) = jar.post("/api/v1/registry", &body).await;
        assert_envelope(status, &answer, code);
        assert!(answer["error"]["message"].as_str().is_some(), "{body}");
    }
    for raw in ["not json", "{\"method\": ", "method=add&name=x"] {
        let (status, _, answer) = jar.call("POST", "/api/v1/registry", Some(raw), &[]).await;
        assert_envelope(status, &answer, 400);
    }
    let (status, body) = jar.delete("/api/v1/registry/Docker%20Hub").await;
    assert_envelope(status, &body, 403);
    let (status, body) = jar.delete("/api/v1/registry/nothing").await;
    assert_envelope(status, &body, 404);
    assert_eq!(app.get("/api/v1/registry").await.1, state, "refused requests change nothing");

    // A user reads the list but changes nothing.
    let user = app.user_token("ursula").await;
    let (status, body) = app.send("GET", "/api/v1/registry", None, Some(&user)).await;
    assert_eq!((status, &body), (StatusCode::OK, &state));
    let (status, body) = app.send("DELETE", "/api/v1/registry/new_test", None, Some(&user)).await;
    assert_envelope(status, &body, 403);

    // Ping: a real /v2/ handshake; a registry that does not answer is the seed's error.
    let (status, body) = jar.get(&format!("/api/v1/registry/ping?url={}&tls=false", lab.url())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    insta::assert_json_snapshot!("station_ping", body);
    let (status, body) = jar
        .post("/api/v1/registry/ping", &json!({"url": lab.url(), "tls": false, "username": "", "password": ""}))
        .await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({"version": "v2"})));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let closed = format!("http://127.0.0.1:{port}");
    let (status, body) = jar.get(&format!("/api/v1/registry/ping?url={closed}&tls=true")).await;
    assert_envelope(status, &body, 400);
    assert_eq!(body["error"]["message"], "Cannot get registry version");
    for bad in [
        "/api/v1/registry/ping",
        "/api/v1/registry/ping?url=nope",
        "/api/v1/registry/ping?url=https://a.example&tls=maybe",
        "/api/v1/registry/ping?url=https://a.example&other=1",
    ] {
        let (status, body) = jar.get(bad).await;
        assert_envelope(status, &body, 400);
    }

    // The seed's delete: the remaining list.
    let (status, body) = jar.delete("/api/v1/registry/new_test").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = jar.delete("/api/v1/registry/My%20Lab").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    insta::assert_json_snapshot!("station_registry_deleted", body);
    let (_, secrets) = app.get("/oapis/image.theriseunion.io/v1alpha1/namespaces/station/registry-secrets").await;
    assert_eq!(secrets["items"], json!([]), "{}", redact(&secrets));
}

on_both_backends!(sessions_sign_in_and_out, sessions_end_when_idle, registries_walk);
