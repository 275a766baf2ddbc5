//! The web console's pages and forms through the real router: sign-in with a session cookie, what a user
//! and an admin see and may press, and bad form input answered with a 4xx page that changes nothing.

use axum::{
    body::Body,
    http::{HeaderMap, Request, StatusCode, header},
};

use crate::harness::{ADMIN_PASSWORD, TestApp};

const HOST: &str = "console.test";

/// A browser's request: a cookie when signed in, this site's `Origin` on forms.
fn request(method: &str, path: &str, cookie: Option<&str>, form: Option<&str>) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(path).header(header::HOST, HOST);
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    match form {
        Some(form) => req
            .header(header::ORIGIN, format!("http://{HOST}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_owned()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    }
}

async fn page(
    app: &TestApp,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> (StatusCode, HeaderMap, String) {
    app.call_text(request(method, path, cookie, form)).await
}

/// Signs in through the form; the session cookie.
async fn sign_in(app: &TestApp, username: &str, password: &str) -> String {
    let form = format!("username={username}&password={password}");
    let (status, headers, _) = page(app, "POST", "/console/login", None, Some(&form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/console/images");
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    cookie.split(';').next().unwrap().to_owned()
}

/// How many audit events there are: every catalog change writes one.
async fn events(app: &TestApp) -> i64 {
    app.get("/catalog/api/v1/events?limit=1").await.1["total"].as_i64().unwrap()
}

async fn signs_in_and_out_with_a_cookie(postgres: bool) {
    let app = if postgres { TestApp::postgres().await } else { TestApp::sqlite().await };
    let (status, _, body) = page(&app, "GET", "/console/images", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains(r#"action="/console/login""#), "a 401 page offers the sign-in form: {body}");

    let (status, headers, body) =
        page(&app, "POST", "/console/login", None, Some("username=admin&password=wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get(header::SET_COOKIE).is_none());
    assert!(body.contains("Invalid username or password.") && body.contains(r#"value="admin""#), "{body}");

    let cookie = sign_in(&app, "admin", ADMIN_PASSWORD).await;
    let (status, _, body) = page(&app, "GET", "/console/images?search=redis", Some(&cookie), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("docker.io/library/redis") && !body.contains("postgres"), "{body}");
    assert!(body.contains("Add image"), "an admin sees the admin's buttons");

    // A form posted from another site with the cookie is refused.
    let mut foreign = request("POST", "/console/logout", Some(&cookie), Some(""));
    foreign.headers_mut().insert(header::ORIGIN, "http://evil.example".parse().unwrap());
    assert_eq!(app.call_text(foreign).await.0, StatusCode::FORBIDDEN);

    let (status, headers, _) = page(&app, "POST", "/console/logout", Some(&cookie), Some("")).await;
    assert_eq!((status, &headers[header::LOCATION]), (StatusCode::SEE_OTHER, &"/console/login".parse().unwrap()));
    let (status, _, body) = page(&app, "GET", "/console/images", Some(&cookie), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the session ended: {body}");
}

async fn users_ask_and_admins_decide(postgres: bool) {
    let app = if postgres { TestApp::postgres().await } else { TestApp::sqlite().await };
    let password_hash = api_http::auth::hash_password("user-password".into()).await.unwrap();
    let user =
        image_core::auth::NewUser { username: "ursula".into(), password_hash, role: image_core::auth::Role::User };
    app.store.create_user(user, "admin").await.unwrap();
    let ursula = sign_in(&app, "ursula", "user-password").await;
    let admin = sign_in(&app, "admin", ADMIN_PASSWORD).await;

    let (_, _, body) = page(&app, "GET", "/console/images/1", Some(&ursula), None).await;
    assert!(!body.contains("Delete image") && !body.contains("Mark recommended"), "a user sees no admin buttons");
    let (status, _, body) = page(&app, "GET", "/console/images/new", Some(&ursula), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("this needs the admin role"), "{body}");

    let form = "image=docker.io%2Flibrary%2Ftraefik%3Av3.1&notes=edge+proxy";
    let (status, _, _) = page(&app, "POST", "/console/approvals", Some(&ursula), Some(form)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, requests) = app.get("/catalog/api/v1/approval-requests?status=pending").await;
    let id = requests["requests"][0]["id"].as_i64().unwrap();
    assert_eq!(requests["requests"][0]["requested_by"], "ursula");

    let approve = format!("/console/approvals/{id}/approve");
    let before = events(&app).await;
    let (status, _, _) = page(&app, "POST", &approve, Some(&ursula), Some("category=web")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(events(&app).await, before, "a user's refused approval changed something");

    // Bad input is a 4xx page and changes nothing.
    for (path, form) in [
        (approve.as_str(), "category=web&unknown=1"),
        (&format!("/console/approvals/{id}/reject"), "reason="),
        ("/console/images", "image_name=&approval_status=approved"),
        ("/console/images", "image_name=x&approval_status=maybe"),
        ("/console/images/1", "approval_status=approved&category=%00"),
        ("/console/images/999/delete", ""),
        ("/console/images/1/tags/999/recommend", ""),
        ("/console/approvals/abc/approve", ""),
    ] {
        let (status, _, body) = page(&app, "POST", path, Some(&admin), Some(form)).await;
        assert!(status.is_client_error(), "POST {path} {form} → {status}");
        assert!(body.contains(r#"<p class="error-message" role="alert">"#), "POST {path} → {body}");
        assert_eq!(events(&app).await, before, "POST {path} {form} changed something");
    }
    let json = request("POST", &approve, Some(&admin), Some("{}"));
    let (mut parts, body) = json.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    assert_eq!(app.call_text(Request::from_parts(parts, body)).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let (status, _, _) = page(&app, "POST", &approve, Some(&admin), Some("category=web")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, request) = app.get(&format!("/catalog/api/v1/approval-requests/{id}")).await;
    assert_eq!((request["status"].as_str(), request["reviewed_by"].as_str()), (Some("approved"), Some("admin")));
    let image = request["image_id"].as_i64().unwrap();
    let (_, image) = app.get(&format!("/catalog/api/v1/images/{image}")).await;
    assert_eq!(image["category"], "web");
    let (_, _, body) = page(&app, "GET", "/console/approvals", Some(&ursula), None).await;
    assert!(
        body.contains("Nothing waits for a decision.") && body.contains("docker.io/library/traefik:v3.1"),
        "{body}"
    );

    // Marking a tag recommended unmarks the image's others, as the catalog API does.
    let (_, tags) = app.get("/catalog/api/v1/images/1").await;
    let other = tags["tags"].as_array().unwrap().iter().find(|t| t["is_recommended"] == false).unwrap();
    let path = format!("/console/images/1/tags/{}/recommend", other["id"]);
    assert_eq!(page(&app, "POST", &path, Some(&admin), Some("")).await.0, StatusCode::SEE_OTHER);
    assert_eq!(app.recommended_tags(1).await, [other["tag"].as_str().unwrap()]);
}

on_both_backends!(signs_in_and_out_with_a_cookie, users_ask_and_admins_decide);
