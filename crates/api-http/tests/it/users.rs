//! The users API and API tokens: expiry, listing, revocation, and the password and user changes that end
//! tokens; the last admin; and who may do what.

use axum::http::StatusCode;
use base64::Engine;
use image_core::event::kind;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use crate::harness::{ADMIN_PASSWORD, TestApp};

async fn app(postgres: bool) -> TestApp {
    if postgres { TestApp::postgres().await } else { TestApp::sqlite().await }
}

fn basic(username: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}")))
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `POST /api/v1/auth/token`, and the answer.
async fn sign_in(app: &TestApp, username: &str, password: &str) -> (StatusCode, Value) {
    let body = json!({ "username": username, "password": password, "name": format!("{username}-test") });
    app.send("POST", "/api/v1/auth/token", Some(body.to_string()), None).await
}

async fn token_of(app: &TestApp, username: &str, password: &str) -> String {
    let (status, body) = sign_in(app, username, password).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

/// Creates a user through the API, as the admin.
async fn add_user(app: &TestApp, username: &str, password: &str, role: &str) -> Value {
    let body = json!({ "username": username, "password": password, "role": role });
    let (status, user) = app.post("/api/v1/users", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    user
}

async fn status_with(app: &TestApp, method: &str, path: &str, body: Option<&Value>, authorization: &str) -> StatusCode {
    app.send_with_header(method, path, body, authorization).await.0
}

fn parse_time(text: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(text.as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap()
}

async fn events(app: &TestApp, event_type: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/catalog/api/v1/events?event_type={event_type}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["events"].as_array().unwrap().clone()
}

async fn tokens_expire(postgres: bool) {
    let app = app(postgres).await;
    let before = OffsetDateTime::now_utc();
    let (status, body) = sign_in(&app, "admin", ADMIN_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["token"].as_str().unwrap().starts_with("igt_"));
    // Thirty days unless the server is told otherwise.
    let expires = parse_time(&body["expiresAt"]);
    let ttl = expires - before;
    assert!(
        ttl >= Duration::days(30) - Duration::seconds(1) && ttl <= Duration::days(30) + Duration::minutes(1),
        "{ttl}"
    );

    // A token past its time is refused like an unknown one.
    let admin = app.store.find_credentials("admin").await.unwrap().unwrap().user;
    let now = OffsetDateTime::now_utc();
    let (live, hash) = api_http::auth::new_token();
    app.store.create_token(admin.id, &hash, "live", Some(now + Duration::minutes(1))).await.unwrap();
    let (expired, hash) = api_http::auth::new_token();
    app.store.create_token(admin.id, &hash, "expired", Some(now - Duration::milliseconds(1))).await.unwrap();
    assert_eq!(app.get_with_header("/api/v1/auth/tokens", &bearer(&live)).await.0, StatusCode::OK);
    let (status, body) = app.get_with_header("/api/v1/auth/tokens", &bearer(&expired)).await;
    assert_eq!((status, body["message"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid credentials")));
    let (status, _) = app.get_with_header("/api/v1/auth/tokens", &bearer("igt_unknown")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn tokens_are_listed_with_the_current_one(postgres: bool) {
    let app = app(postgres).await;
    let laptop = token_of(&app, "admin", ADMIN_PASSWORD).await;
    let (status, listed) = app.get_with_header("/api/v1/auth/tokens", &bearer(&laptop)).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["username"], "admin");
    let tokens = listed["tokens"].as_array().unwrap();
    // The harness's token, then this one.
    assert_eq!(tokens.len(), 2, "{listed}");
    let current: Vec<bool> = tokens.iter().map(|t| t["current"].as_bool().unwrap()).collect();
    assert_eq!(current, [false, true]);
    let mine = &tokens[1];
    assert_eq!(mine["name"], "admin-test");
    let mut fields: Vec<&str> = mine.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["createdAt", "current", "expiresAt", "id", "lastUsedAt", "name"]);
    assert!(mine["lastUsedAt"].is_string(), "this request used it: {mine}");
    assert!(parse_time(&mine["expiresAt"]) > parse_time(&mine["createdAt"]) + Duration::days(29));
    assert!(!listed.to_string().contains(&laptop[4..]), "a token is never shown again");
    // With HTTP Basic no token is current.
    let (_, listed) = app.get_with_header("/api/v1/auth/tokens", &app.admin_basic()).await;
    assert!(listed["tokens"].as_array().unwrap().iter().all(|t| t["current"] == false), "{listed}");

    // A user sees their own; another's needs the admin role, which sees anyone's.
    let user = app.user_token("bob").await;
    let (_, listed) = app.get_with_header("/api/v1/auth/tokens", &bearer(&user)).await;
    assert_eq!((listed["username"].as_str(), listed["tokens"].as_array().unwrap().len()), (Some("bob"), 1));
    let (status, body) = app.get_with_header("/api/v1/auth/tokens?user=admin", &bearer(&user)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(app.get_with_header("/api/v1/auth/tokens?user=bob", &bearer(&user)).await.0, StatusCode::OK);
    let (status, listed) = app.get("/api/v1/auth/tokens?user=bob").await;
    assert_eq!((status, listed["username"].as_str()), (StatusCode::OK, Some("bob")));
    assert_eq!(listed["tokens"][0]["current"], false);
    let (status, body) = app.get("/api/v1/auth/tokens?user=nobody").await;
    assert_eq!((status, body["message"].as_str()), (StatusCode::NOT_FOUND, Some("user nobody not found")));
    assert_eq!(app.get("/api/v1/auth/tokens?user=no%20body").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.get("/api/v1/auth/tokens?owner=bob").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.send("GET", "/api/v1/auth/tokens", None, None).await.0, StatusCode::UNAUTHORIZED);
}

async fn tokens_are_revoked(postgres: bool) {
    let app = app(postgres).await;
    // The token a request is made with.
    let laptop = token_of(&app, "admin", ADMIN_PASSWORD).await;
    let phone = token_of(&app, "admin", ADMIN_PASSWORD).await;
    let (status, body) = app.send_with_header("DELETE", "/api/v1/auth/token", None, &bearer(&laptop)).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(status_with(&app, "GET", "/api/v1/auth/tokens", None, &bearer(&laptop)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status_with(&app, "GET", "/api/v1/auth/tokens", None, &bearer(&phone)).await, StatusCode::OK);
    // HTTP Basic has no token to revoke.
    let (status, body) = app.send_with_header("DELETE", "/api/v1/auth/token", None, &app.admin_basic()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("HTTP Basic"), "{body}");

    // A user revokes their own by id, and someone else's is not found, as a missing one is.
    let bob = app.user_token("bob").await;
    let (_, listed) = app.get_with_header("/api/v1/auth/tokens", &bearer(&phone)).await;
    let phone_id = listed["tokens"].as_array().unwrap().iter().find(|t| t["current"] == true).unwrap()["id"].clone();
    let (status, body) =
        app.send_with_header("DELETE", &format!("/api/v1/auth/tokens/{phone_id}"), None, &bearer(&bob)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["message"], format!("token {phone_id} not found"));
    assert_eq!(status_with(&app, "GET", "/api/v1/auth/tokens", None, &bearer(&phone)).await, StatusCode::OK);
    assert_eq!(
        status_with(&app, "DELETE", "/api/v1/auth/tokens/424242", None, &bearer(&bob)).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.delete("/api/v1/auth/tokens/abc").await.0, StatusCode::BAD_REQUEST);
    let second = {
        let bob_id = app.store.find_credentials("bob").await.unwrap().unwrap().user.id;
        let (token, hash) = api_http::auth::new_token();
        let issued = app.store.create_token(bob_id, &hash, "second", None).await.unwrap();
        (token, issued.id)
    };
    let path = format!("/api/v1/auth/tokens/{}", second.1);
    assert_eq!(status_with(&app, "DELETE", &path, None, &bearer(&bob)).await, StatusCode::NO_CONTENT);
    assert_eq!(
        status_with(&app, "GET", "/api/v1/auth/tokens", None, &bearer(&second.0)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(status_with(&app, "GET", "/api/v1/auth/tokens", None, &bearer(&bob)).await, StatusCode::OK);

    // An admin revokes anyone's.
    let (_, listed) = app.get("/api/v1/auth/tokens?user=bob").await;
    let bob_id = listed["tokens"][0]["id"].clone();
    let (status, _) = app.delete(&format!("/api/v1/auth/tokens/{bob_id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(status_with(&app, "GET", "/api/v1/auth/tokens", None, &bearer(&bob)).await, StatusCode::UNAUTHORIZED);

    let revoked = events(&app, kind::TOKEN_REVOKED).await;
    let seen: Vec<(&str, &str)> =
        revoked.iter().map(|e| (e["actor"].as_str().unwrap(), e["details"]["username"].as_str().unwrap())).collect();
    assert_eq!(seen, [("admin", "bob"), ("bob", "bob"), ("admin", "admin")], "newest first");
}

async fn users_are_created_listed_changed_and_deleted(postgres: bool) {
    let app = app(postgres).await;
    let created = add_user(&app, "carol", "carol-password", "user").await;
    assert_eq!((created["username"].as_str(), created["role"].as_str()), (Some("carol"), Some("user")));
    let mut fields: Vec<&str> = created.as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["createdAt", "role", "username"]);
    let (status, dave) = app.post("/api/v1/users", &json!({ "username": "dave", "password": "dave-password" })).await;
    assert_eq!((status, dave["role"].as_str()), (StatusCode::CREATED, Some("user")), "the role defaults to user");
    add_user(&app, "ann", "ann-password", "admin").await;
    let (status, listed) = app.get("/api/v1/users").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> =
        listed["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["admin", "ann", "carol", "dave"], "ordered by name");
    assert!(!listed.to_string().contains("argon2"), "{listed}");

    // Bad input is a clear 400 and creates nothing; a name taken is a 409.
    let refused = [
        (
            json!({ "username": "eve", "password": "short" }),
            StatusCode::BAD_REQUEST,
            "invalid password: must be 8 to 1024 characters, not 5",
        ),
        (
            json!({ "username": "eve", "password": "x".repeat(1025) }),
            StatusCode::BAD_REQUEST,
            "invalid password: must be 8 to 1024 characters, not 1025",
        ),
        (
            json!({ "username": "eve", "password": "eve-password", "role": "root" }),
            StatusCode::BAD_REQUEST,
            "invalid role: `root` is not one of admin, user",
        ),
        (
            json!({ "username": "e ve", "password": "eve-password" }),
            StatusCode::BAD_REQUEST,
            "invalid username: must be 1 to 64 letters, digits, `.`, `_`, `-` or `@`",
        ),
        (
            json!({ "username": "carol", "password": "carol-password" }),
            StatusCode::CONFLICT,
            "user carol already exists",
        ),
    ];
    for (body, expected, message) in refused {
        let (status, answer) = app.post("/api/v1/users", &body).await;
        assert_eq!((status, answer["message"].as_str()), (expected, Some(message)), "{body}");
    }
    let (status, answer) = app.post("/api/v1/users", &json!({ "username": "eve" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["error"].is_string() && answer["message"].is_string());
    assert_eq!(app.get("/api/v1/users").await.1["users"].as_array().unwrap().len(), 4);

    // The new user signs in; a promotion applies to their token at once, and a demotion too.
    let carol = token_of(&app, "carol", "carol-password").await;
    assert_eq!(status_with(&app, "GET", "/api/v1/users", None, &bearer(&carol)).await, StatusCode::FORBIDDEN);
    let (status, changed) = app.put("/api/v1/users/carol", &json!({ "role": "admin" })).await;
    assert_eq!((status, changed["role"].as_str()), (StatusCode::OK, Some("admin")));
    assert_eq!(status_with(&app, "GET", "/api/v1/users", None, &bearer(&carol)).await, StatusCode::OK);
    app.put("/api/v1/users/carol", &json!({ "role": "user" })).await;
    assert_eq!(status_with(&app, "GET", "/api/v1/users", None, &bearer(&carol)).await, StatusCode::FORBIDDEN);
    let roles = events(&app, kind::USER_ROLE_CHANGED).await;
    assert_eq!(roles.len(), 2);
    assert_eq!(roles[0]["details"]["after"], "user");

    let bad_updates = [
        ("/api/v1/users/carol", json!({}), StatusCode::BAD_REQUEST),
        ("/api/v1/users/carol", json!({ "role": "owner" }), StatusCode::BAD_REQUEST),
        ("/api/v1/users/carol", json!({ "password": "short" }), StatusCode::BAD_REQUEST),
        ("/api/v1/users/carol", json!({ "username": "caroline" }), StatusCode::BAD_REQUEST),
        ("/api/v1/users/nobody", json!({ "role": "admin" }), StatusCode::NOT_FOUND),
        ("/api/v1/users/no%20body", json!({ "role": "admin" }), StatusCode::BAD_REQUEST),
    ];
    for (path, body, expected) in bad_updates {
        let (status, answer) = app.put(path, &body).await;
        assert_eq!(status, expected, "{path} {body}: {answer}");
        assert!(answer["message"].is_string(), "{answer}");
    }

    // Deleting a user ends their tokens; the audit trail keeps their name.
    let (status, body) = app.delete("/api/v1/users/carol").await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(status_with(&app, "GET", "/api/v1/auth/tokens", None, &bearer(&carol)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(sign_in(&app, "carol", "carol-password").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.delete("/api/v1/users/carol").await.0, StatusCode::NOT_FOUND);
    let deleted = events(&app, kind::USER_DELETED).await;
    assert_eq!(
        (deleted[0]["actor"].as_str(), deleted[0]["details"]["username"].as_str()),
        (Some("admin"), Some("carol"))
    );
    assert_eq!(deleted[0]["details"]["tokens_revoked"], 1);
    let created = events(&app, kind::USER_CREATED).await;
    let names: Vec<&str> = created.iter().map(|e| e["details"]["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["ann", "dave", "carol", "admin"]);
    assert!(!created.iter().any(|e| e.to_string().contains("password")), "{created:?}");
}

async fn a_password_change_ends_the_tokens(postgres: bool) {
    let app = app(postgres).await;
    add_user(&app, "erin", "erin-password", "user").await;
    let first = token_of(&app, "erin", "erin-password").await;
    let second = token_of(&app, "erin", "erin-password").await;
    let other = app.user_token("frank").await;
    // Basic with the password passes, and is remembered by the server.
    let old_basic = basic("erin", "erin-password");
    assert_eq!(status_with(&app, "GET", "/api/v1/auth/tokens", None, &old_basic).await, StatusCode::OK);
    assert_eq!(status_with(&app, "GET", "/api/v1/auth/tokens", None, &old_basic).await, StatusCode::OK);

    // An admin sets it.
    let (status, body) = app.put("/api/v1/users/erin", &json!({ "password": "erin-new-password" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for token in [&first, &second] {
        assert_eq!(
            status_with(&app, "GET", "/api/v1/auth/tokens", None, &bearer(token)).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        status_with(&app, "GET", "/api/v1/auth/tokens", None, &bearer(&other)).await,
        StatusCode::OK,
        "only hers"
    );
    assert_eq!(status_with(&app, "GET", "/api/v1/auth/tokens", None, &old_basic).await, StatusCode::UNAUTHORIZED);
    assert_eq!(sign_in(&app, "erin", "erin-password").await.0, StatusCode::UNAUTHORIZED);
    let new_basic = basic("erin", "erin-new-password");
    assert_eq!(status_with(&app, "GET", "/api/v1/auth/tokens", None, &new_basic).await, StatusCode::OK);

    // She sets her own: the current password first, and every token of hers ends, this one included.
    let token = token_of(&app, "erin", "erin-new-password").await;
    let path = "/api/v1/users/me/password";
    let wrong = json!({ "currentPassword": "not-her-password", "newPassword": "erin-third-password" });
    let (status, body) = app.send_with_header("PUT", path, Some(&wrong), &bearer(&token)).await;
    assert_eq!((status, body["message"].as_str()), (StatusCode::FORBIDDEN, Some("the current password is not right")));
    let short = json!({ "currentPassword": "erin-new-password", "newPassword": "short" });
    assert_eq!(status_with(&app, "PUT", path, Some(&short), &bearer(&token)).await, StatusCode::BAD_REQUEST);
    let snake = json!({ "current_password": "erin-new-password", "new_password": "erin-third-password" });
    assert_eq!(status_with(&app, "PUT", path, Some(&snake), &bearer(&token)).await, StatusCode::BAD_REQUEST);
    assert_eq!(status_with(&app, "GET", "/api/v1/auth/tokens", None, &bearer(&token)).await, StatusCode::OK);
    let change = json!({ "currentPassword": "erin-new-password", "newPassword": "erin-third-password" });
    let (status, body) = app.send_with_header("PUT", path, Some(&change), &bearer(&token)).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(status_with(&app, "GET", "/api/v1/auth/tokens", None, &bearer(&token)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status_with(&app, "GET", "/api/v1/auth/tokens", None, &new_basic).await, StatusCode::UNAUTHORIZED);
    token_of(&app, "erin", "erin-third-password").await;
    // With HTTP Basic too, and without any token.
    let third = basic("erin", "erin-third-password");
    let back = json!({ "currentPassword": "erin-third-password", "newPassword": "erin-fourth-password" });
    assert_eq!(status_with(&app, "PUT", path, Some(&back), &third).await, StatusCode::NO_CONTENT);
    assert_eq!(status_with(&app, "GET", "/api/v1/auth/tokens", None, &third).await, StatusCode::UNAUTHORIZED);

    let changes = events(&app, kind::USER_PASSWORD_CHANGED).await;
    let seen: Vec<(&str, i64)> = changes
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["details"]["tokens_revoked"].as_i64().unwrap()))
        .collect();
    assert_eq!(seen, [("erin", 1), ("erin", 1), ("admin", 2)], "newest first");
    assert!(!changes.iter().any(|e| e.to_string().contains("argon2")));
}

async fn wrong_current_passwords_count_as_failed_sign_ins(postgres: bool) {
    let app = app(postgres).await;
    let token = app.user_token("gina").await;
    let path = "/api/v1/users/me/password";
    let wrong = json!({ "currentPassword": "wrong-password", "newPassword": "gina-new-password" });
    for _ in 0..4 {
        assert_eq!(status_with(&app, "PUT", path, Some(&wrong), &bearer(&token)).await, StatusCode::FORBIDDEN);
    }
    let (status, body) = app.send_with_header("PUT", path, Some(&wrong), &bearer(&token)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // Signing in to that account waits too.
    assert_eq!(sign_in(&app, "gina", "user-password").await.0, StatusCode::TOO_MANY_REQUESTS);
}

async fn the_last_admin_cannot_be_removed(postgres: bool) {
    let app = app(postgres).await;
    let (status, body) = app.delete("/api/v1/users/admin").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["message"], "cannot delete admin: it is the last admin; make another user an admin first");
    let (status, body) = app.put("/api/v1/users/admin", &json!({ "role": "user" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["message"], "cannot demote admin: it is the last admin; make another user an admin first");
    assert_eq!(app.get("/api/v1/users").await.1["users"][0]["role"], "admin");
    // With a second admin, either may go.
    add_user(&app, "hal", "hal-password", "admin").await;
    let hal = token_of(&app, "hal", "hal-password").await;
    assert_eq!(app.put("/api/v1/users/admin", &json!({ "role": "user" })).await.0, StatusCode::OK);
    let (status, body) = app.send_with_header("DELETE", "/api/v1/users/hal", None, &bearer(&hal)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(status_with(&app, "DELETE", "/api/v1/users/admin", None, &bearer(&hal)).await, StatusCode::NO_CONTENT);
}

async fn users_may_not_manage_users(postgres: bool) {
    let app = app(postgres).await;
    let user = app.user_token("ivan").await;
    let before = app.get("/api/v1/users").await.1;
    let new = json!({ "username": "joe", "password": "joe-password" });
    let admin_only = [
        ("GET", "/api/v1/users", None),
        ("POST", "/api/v1/users", Some(&new)),
        ("PUT", "/api/v1/users/admin", Some(&json!({ "role": "user" }))),
        ("PUT", "/api/v1/users/ivan", Some(&json!({ "role": "admin" }))),
        ("PUT", "/api/v1/users/admin", Some(&json!({ "password": "taken-over-password" }))),
        ("DELETE", "/api/v1/users/admin", None),
    ];
    for (method, path, body) in admin_only {
        let (status, answer) = app.send_with_header(method, path, body, &bearer(&user)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        assert_eq!(answer["message"], "this needs the admin role; `ivan` is a user");
        let anonymous = app.send(method, path, body.map(Value::to_string), None).await.0;
        assert_eq!(anonymous, StatusCode::UNAUTHORIZED, "{method} {path} without credentials");
    }
    assert_eq!(app.get("/api/v1/users").await.1, before, "nothing changed");
    assert_eq!(sign_in(&app, "admin", ADMIN_PASSWORD).await.0, StatusCode::OK);
    let no_one = json!({ "currentPassword": "x", "newPassword": "whatever-password" });
    assert_eq!(
        app.send("PUT", "/api/v1/users/me/password", Some(no_one.to_string()), None).await.0,
        StatusCode::UNAUTHORIZED
    );
}

on_both_backends!(
    tokens_expire,
    tokens_are_listed_with_the_current_one,
    tokens_are_revoked,
    users_are_created_listed_changed_and_deleted,
    a_password_change_ends_the_tokens,
    wrong_current_passwords_count_as_failed_sign_ins,
    the_last_admin_cannot_be_removed,
    users_may_not_manage_users,
);
