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

/// The message of an error page.
fn alert(body: &str) -> &str {
    let start = body.find(r#"<p class="error-message" role="alert">"#).expect("an error page");
    let rest = &body[start..];
    &rest[..rest.find("</p>").unwrap()]
}

const KUBE: &str = "/oapis/image.theriseunion.io/v1alpha1/namespaces";

/// How many registry secrets and repositories the kube-style API lists in every namespace.
async fn kube_totals(app: &TestApp) -> (i64, i64) {
    let (_, secrets) = app.get(&format!("{KUBE}/_all_/registry-secrets")).await;
    let (_, repositories) = app.get(&format!("{KUBE}/_all_/repositories")).await;
    (secrets["totalItems"].as_i64().unwrap(), repositories["totalItems"].as_i64().unwrap())
}

async fn admins_add_registry_secrets_and_repositories(postgres: bool) {
    let app = if postgres { TestApp::postgres().await } else { TestApp::sqlite().await };
    let password_hash = api_http::auth::hash_password("user-password".into()).await.unwrap();
    let user =
        image_core::auth::NewUser { username: "ursula".into(), password_hash, role: image_core::auth::Role::User };
    app.store.create_user(user, "admin").await.unwrap();
    let ursula = sign_in(&app, "ursula", "user-password").await;
    let admin = sign_in(&app, "admin", ADMIN_PASSWORD).await;
    let before = kube_totals(&app).await;

    let (_, _, body) = page(&app, "GET", "/console/registries", Some(&ursula), None).await;
    assert!(!body.contains(r#"action="/console/registries""#), "a user sees no form to add a secret: {body}");
    let (_, _, body) = page(&app, "GET", "/console/registries", Some(&admin), None).await;
    assert!(
        body.contains(r#"action="/console/registries""#) && body.contains(r#"action="/console/repositories""#),
        "an admin sees both forms: {body}"
    );
    assert!(body.contains("Add a registry secret first"), "no secret to choose yet: {body}");

    let secret = "namespace=team-a&name=lab&display_name=Lab+registry&domain=registry.lab.example%3A5000\
                  &username=alice&password=s3cret-Pa55word&provider=harbor&insecure=on&description=the+lab";
    let repository = "namespace=team-a&name=redis&registry=team-a%2Flab&repository=library%2Fredis&tag=7.2\
                      &sync_interval=2h&retry_count=5";
    // A user is refused, and nothing changes.
    for (path, form) in [("/console/registries", secret), ("/console/repositories", repository)] {
        let (status, _, body) = page(&app, "POST", path, Some(&ursula), Some(form)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "POST {path}: {body}");
        assert_eq!(kube_totals(&app).await, before, "a user's refused POST {path} changed something");
    }

    // Bad input is a 4xx page naming the field, and changes nothing.
    for (path, form, field) in [
        ("/console/registries", secret.replace("name=lab&", "name=&"), "name"),
        ("/console/registries", secret.replace("registry.lab.example%3A5000", "not+a+host"), "domain"),
        ("/console/registries", secret.replace("password=s3cret-Pa55word", "password="), "password"),
        ("/console/registries", secret.replace("provider=harbor", "provider=quay"), "provider"),
        ("/console/registries", secret.replace("namespace=team-a", "namespace=Team_A"), "namespace"),
        ("/console/repositories", repository.to_owned(), "registry secret"),
    ] {
        let (status, _, body) = page(&app, "POST", path, Some(&admin), Some(&form)).await;
        assert!(status.is_client_error(), "POST {path} {form} → {status}");
        assert!(body.contains(r#"<p class="error-message" role="alert">"#), "POST {path} → {body}");
        assert!(alert(&body).contains(field), "the page names `{field}`: {body}");
        assert!(!body.contains("s3cret-Pa55word"), "the password is echoed: {body}");
        assert_eq!(kube_totals(&app).await, before, "POST {path} {form} changed something");
    }

    let (status, headers, _) = page(&app, "POST", "/console/registries", Some(&admin), Some(secret)).await;
    assert_eq!((status, &headers[header::LOCATION]), (StatusCode::SEE_OTHER, &"/console/registries".parse().unwrap()));
    assert_eq!(kube_totals(&app).await, (before.0 + 1, before.1));

    // Bad repository input, now that the secret exists.
    for (form, field) in [
        (repository.replace("name=redis&", "name=&"), "name"),
        (repository.replace("team-a%2Flab", "team-a%2Fnone"), "registry secret"),
        (repository.replace("sync_interval=2h", "sync_interval=10s"), "sync_interval"),
        (repository.replace("retry_count=5", "retry_count=many"), "retry_count"),
        (repository.replace("tag=7.2", "tag="), "tag"),
    ] {
        let (status, _, body) = page(&app, "POST", "/console/repositories", Some(&admin), Some(&form)).await;
        assert!(status.is_client_error(), "POST {form} → {status}");
        assert!(alert(&body).contains(field), "the page names `{field}`: {body}");
        assert_eq!(kube_totals(&app).await, (before.0 + 1, before.1), "POST {form} changed something");
    }
    let (status, headers, _) = page(&app, "POST", "/console/repositories", Some(&admin), Some(repository)).await;
    assert_eq!((status, &headers[header::LOCATION]), (StatusCode::SEE_OTHER, &"/console/registries".parse().unwrap()));
    assert_eq!(kube_totals(&app).await, (before.0 + 1, before.1 + 1));

    // Both show on the page, for a user too, and never the password.
    for cookie in [&admin, &ursula] {
        let (status, _, body) = page(&app, "GET", "/console/registries", Some(cookie), None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("team-a/lab") && body.contains("Lab registry"), "{body}");
        assert!(body.contains("registry.lab.example:5000") && body.contains("alice"), "{body}");
        assert!(
            body.contains("team-a/redis") && body.contains("library/redis:7.2") && body.contains("7200 s"),
            "{body}"
        );
        assert!(!body.contains("s3cret-Pa55word"), "the password is on the page: {body}");
    }

    // And in the kube-style API, as the forms said.
    let (status, secret) = app.get(&format!("{KUBE}/team-a/registry-secrets/lab")).await;
    assert_eq!(status, StatusCode::OK, "{secret}");
    assert_eq!(secret["spec"]["domain"], "registry.lab.example:5000");
    assert_eq!(
        (secret["spec"]["provider"].as_str(), secret["spec"]["insecure"].as_bool()),
        (Some("harbor"), Some(true))
    );
    assert_eq!(secret["metadata"]["annotations"]["theriseunion.io/description"], "the lab");
    assert!(secret.get("password").is_none() && secret["spec"].get("password").is_none(), "{secret}");
    let (status, repository) = app.get(&format!("{KUBE}/team-a/repositories/redis")).await;
    assert_eq!(status, StatusCode::OK, "{repository}");
    assert_eq!(repository["spec"]["registryRef"], serde_json::json!({ "name": "lab", "namespace": "team-a" }));
    assert_eq!(
        (repository["spec"]["syncInterval"].as_str(), repository["spec"]["retryCount"].as_i64()),
        (Some("2h"), Some(5))
    );

    // A second secret of the same name is a conflict, and changes nothing.
    let again = "namespace=team-a&name=lab&domain=other.example&username=bob&password=x&provider=other";
    let (status, _, _) = page(&app, "POST", "/console/registries", Some(&admin), Some(again)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(kube_totals(&app).await, (before.0 + 1, before.1 + 1));
}

on_both_backends!(
    signs_in_and_out_with_a_cookie,
    users_ask_and_admins_decide,
    admins_add_registry_secrets_and_repositories
);
