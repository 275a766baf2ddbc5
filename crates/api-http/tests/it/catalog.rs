//! The catalog profile end to end: HTTP in, a real database behind, on SQLite and on PostgreSQL.

use crate::harness::{TestApp, redact};
use axum::http::StatusCode;
use serde_json::{Value, json};

/// Runs one async test body against a fresh app on each backend.
macro_rules! with_an_app_on_both_backends {
    ($($name:ident => $body:ident;)*) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$body(crate::harness::TestApp::sqlite().await).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$body(crate::harness::TestApp::postgres().await).await })*
        }
    };
}

with_an_app_on_both_backends! {
    lists_the_seeded_images => lists_the_seeded_images;
    filters_and_searches => filters_and_searches;
    shows_details_with_tags => shows_details_with_tags;
    counts_categories => counts_categories;
    adds_updates_and_deletes_an_image => adds_updates_and_deletes_an_image;
    manages_tags_with_one_recommended => manages_tags_with_one_recommended;
    keeps_one_recommended_tag_under_concurrency => keeps_one_recommended_tag_under_concurrency;
    runs_the_approval_workflow => runs_the_approval_workflow;
    answers_admission_checks => answers_admission_checks;
    slows_password_guessing => slows_password_guessing;
    rejects_bad_input_and_changes_nothing => rejects_bad_input_and_changes_nothing;
    enforces_authentication_and_roles => enforces_authentication_and_roles;
    records_the_audit_trail => records_the_audit_trail;
}

async fn lists_the_seeded_images(app: TestApp) {
    let (status, body) = app.get("/catalog/api/v1/images").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total"], 9);
    let mut names: Vec<&str> =
        body["images"].as_array().unwrap().iter().map(|i| i["image_name"].as_str().unwrap()).collect();
    assert_eq!(names[0], "redis");
    insta::assert_json_snapshot!("list_first_image", redact(&body["images"][0]));
    names.sort_unstable();
    assert_eq!(names, ["grafana", "influxdb", "mongo", "mysql", "nginx", "node", "postgres", "python", "redis"]);
    let grafana = body["images"].as_array().unwrap().iter().find(|i| i["image_name"] == "grafana").unwrap();
    assert_eq!((grafana["namespace"].as_str(), grafana["is_official"].as_bool()), (Some("grafana"), Some(false)));
}

async fn filters_and_searches(app: TestApp) {
    let names = |body: &Value| -> Vec<String> {
        body["images"].as_array().unwrap().iter().map(|i| i["image_name"].as_str().unwrap().to_owned()).collect()
    };
    let (_, body) = app.get("/catalog/api/v1/images?category=database").await;
    let mut databases = names(&body);
    databases.sort_unstable();
    assert_eq!(databases, ["influxdb", "mongo", "mysql", "postgres", "redis"]);
    assert_eq!(body["total"], 5);
    let (_, body) = app.get("/catalog/api/v1/images?search=redis").await;
    assert_eq!(names(&body), ["redis"]);
    let (_, body) = app.get("/catalog/api/v1/images?search=REDIS").await;
    assert_eq!(names(&body), ["redis"], "search is case-insensitive");
    let (_, body) = app.get("/catalog/api/v1/images?search=%25").await;
    assert_eq!(body["total"], 0, "a literal % matches nothing");
    let (_, body) = app.get("/catalog/api/v1/images?status=pending").await;
    assert_eq!(body["total"], 0);
    let (_, all) = app.get("/catalog/api/v1/images").await;
    let (_, body) = app.get("/catalog/api/v1/images?limit=2&offset=1").await;
    assert_eq!(names(&body), names(&all)[1..3]);
    assert_eq!(body["total"], 9, "total counts every match, not the page");
    // The cursor: the page after an id, with the whole listing's total.
    let second = all["images"][1]["id"].as_i64().unwrap();
    let (_, body) = app.get(&format!("/catalog/api/v1/images?limit=2&after_id={second}")).await;
    assert_eq!(names(&body), names(&all)[2..4]);
    assert_eq!(body["total"], 9);
}

async fn shows_details_with_tags(app: TestApp) {
    let (status, body) = app.get("/catalog/api/v1/images/1").await;
    assert_eq!(status, StatusCode::OK);
    let tags: Vec<(&str, bool)> = body["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["tag"].as_str().unwrap(), t["is_recommended"].as_bool().unwrap()))
        .collect();
    assert_eq!(tags, [("7-alpine", true), ("7.2-alpine", false), ("7.4-alpine", false), ("latest", false)]);
    insta::assert_json_snapshot!("image_details", redact(&body));
    let (status, body) = app.get("/catalog/api/v1/images/999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({ "error": "Image not found", "message": "image 999 not found" }));
}

async fn counts_categories(app: TestApp) {
    let (status, body) = app.get("/catalog/api/v1/images/categories").await;
    assert_eq!(status, StatusCode::OK);
    insta::assert_json_snapshot!("categories", body);
}

async fn adds_updates_and_deletes_an_image(app: TestApp) {
    let new = json!({
        "image_name": "portainer-ce",
        "registry": "docker.io",
        "namespace": "portainer",
        "description": "Lightweight container management UI",
        "category": "management",
        "is_official": false
    });
    let (status, created) = app.post("/catalog/api/v1/images", &new).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    insta::assert_json_snapshot!("created_image", redact(&created));
    let id = created["id"].as_i64().unwrap();

    // The seed's PowerShell example leaves out the registry: it defaults to docker.io.
    let (status, body) =
        app.post("/catalog/api/v1/images", &json!({"image_name": "portainer-agent", "namespace": "portainer"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!((body["registry"].as_str(), body["approval_status"].as_str()), (Some("docker.io"), Some("approved")));

    let (status, body) = app.post("/catalog/api/v1/images", &new).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"], "Conflict");
    assert!(body["message"].as_str().unwrap().contains("docker.io/portainer/portainer-ce"), "{body}");

    let update = json!({"description": "Updated description", "category": "database", "approval_status": "rejected"});
    let (status, body) = app.put(&format!("/catalog/api/v1/images/{id}"), &update).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["description"], "Updated description");
    assert_eq!(body["approval_status"], "rejected");
    assert_eq!(body["approved_at"], Value::Null);
    let (_, body) = app.put(&format!("/catalog/api/v1/images/{id}"), &json!({"approval_status": "approved"})).await;
    assert_eq!(body["approved_by"], "admin");
    assert!(body["approved_at"].is_string());

    let (status, body) = app.delete(&format!("/catalog/api/v1/images/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["message"], "Image deleted successfully");
    assert_eq!(body["image"]["id"], id);
    let (status, _) = app.get(&format!("/catalog/api/v1/images/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.delete(&format!("/catalog/api/v1/images/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn manages_tags_with_one_recommended(app: TestApp) {
    let digest = format!("sha256:{}", "ab".repeat(32));
    let new = json!({
        "tag": "7.5-alpine",
        "digest": digest,
        "size_bytes": 45000000,
        "architecture": "amd64",
        "os": "linux",
        "is_recommended": false
    });
    let (status, tag) = app.post("/catalog/api/v1/images/1/tags", &new).await;
    assert_eq!(status, StatusCode::CREATED, "{tag}");
    insta::assert_json_snapshot!("created_tag", redact(&tag));
    let tag_id = tag["id"].as_i64().unwrap();

    let (status, _) = app.post("/catalog/api/v1/images/1/tags", &new).await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (status, body) =
        app.put(&format!("/catalog/api/v1/images/1/tags/{tag_id}"), &json!({"is_recommended": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["is_recommended"], true);
    assert_eq!(app.recommended_tags(1).await, ["7.5-alpine"]);

    let (status, _) = app
        .post(
            "/catalog/api/v1/images/1/tags",
            &json!({"tag": "8-alpine", "is_recommended": true, "architecture": "arm64"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(app.recommended_tags(1).await, ["8-alpine"]);

    let update = json!({"is_deprecated": true, "security_scan_status": "passed", "vulnerabilities_count": 0});
    let (_, body) = app.put(&format!("/catalog/api/v1/images/1/tags/{tag_id}"), &update).await;
    assert_eq!((body["is_deprecated"].as_bool(), body["security_scan_status"].as_str()), (Some(true), Some("passed")));

    // A tag id that belongs to another image is not found under this one.
    let (status, _) =
        app.put(&format!("/catalog/api/v1/images/2/tags/{tag_id}"), &json!({"is_deprecated": false})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = app.delete(&format!("/catalog/api/v1/images/1/tags/{tag_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["message"], "Tag deleted successfully");
    assert_eq!(body["tag"]["tag"], "7.5-alpine");
}

async fn keeps_one_recommended_tag_under_concurrency(app: TestApp) {
    let mut tasks = Vec::new();
    for i in 0..12 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let (status, body) = if i % 3 == 0 {
                app.put("/catalog/api/v1/images/1/tags/2", &json!({"is_recommended": true})).await
            } else {
                app.post("/catalog/api/v1/images/1/tags", &json!({"tag": format!("c{i}"), "is_recommended": true}))
                    .await
            };
            assert!(status.is_success(), "{status} {body}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(app.recommended_tags(1).await.len(), 1);
}

async fn runs_the_approval_workflow(app: TestApp) {
    let user = app.user_token("alice").await;
    let (status, req) = app
        .post_as(
            &user,
            "/catalog/api/v1/approval-requests",
            &json!({"image_name": "traefik", "tag": "v3.1", "notes": "edge proxy"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{req}");
    insta::assert_json_snapshot!("approval_request", redact(&req));
    let id = req["id"].as_i64().unwrap();

    // A user may ask but not decide.
    let (status, _) = app.post_as(&user, &format!("/catalog/api/v1/approval-requests/{id}/approve"), &json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (_, list) = app.get("/catalog/api/v1/approval-requests?status=pending").await;
    assert_eq!(list["total"], 1);

    let (status, body) = app
        .post(&format!("/catalog/api/v1/approval-requests/{id}/approve"), &json!({"category": "web", "notes": "ok"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["request"]["status"], "approved");
    assert_eq!(body["request"]["reviewed_by"], "admin");
    assert_eq!(body["image"]["image_name"], "traefik");
    assert_eq!(body["image"]["approval_status"], "approved");
    let image_id = body["image"]["id"].as_i64().unwrap();
    let (_, details) = app.get(&format!("/catalog/api/v1/images/{image_id}")).await;
    assert_eq!(details["tags"][0]["tag"], "v3.1");

    let (status, body) =
        app.post(&format!("/catalog/api/v1/approval-requests/{id}/reject"), &json!({"reason": "late"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["message"], format!("approval request {id} is already approved"));

    let (_, req2) = app.post_as(&user, "/catalog/api/v1/approval-requests", &json!({"image_name": "busybox"})).await;
    let id2 = req2["id"].as_i64().unwrap();
    let (status, _) = app.post(&format!("/catalog/api/v1/approval-requests/{id2}/reject"), &json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a rejection needs a reason");
    let (status, body) =
        app.post(&format!("/catalog/api/v1/approval-requests/{id2}/reject"), &json!({"reason": "use alpine"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["request"]["rejection_reason"], "use alpine");
    let (_, list) = app.get("/catalog/api/v1/approval-requests?status=rejected").await;
    assert_eq!(list["total"], 1);
    let (status, _) = app.get("/catalog/api/v1/approval-requests/999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn answers_admission_checks(app: TestApp) {
    let check = |image: &str| json!({ "image": image });
    let (status, body) = app.post("/catalog/api/v1/admission/check", &check("redis:7-alpine")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["allowed"], true);
    let (status, body) = app.post("/catalog/api/v1/admission/check", &check("docker.io/library/redis:9")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "Tag not found", "message": "This tag is not in the approved tags list"}));
    let (status, body) = app.post("/catalog/api/v1/admission/check", &check("evil/miner:latest")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({"error": "Image not approved", "message": "This image must be approved before deployment"})
    );
    let (status, _) = app
        .post("/catalog/api/v1/admission/check", &json!({"image": "evil/miner:latest", "request_approval": true}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, list) = app.get("/catalog/api/v1/approval-requests?status=pending").await;
    assert_eq!(list["requests"][0]["image_name"], "miner");
    let (status, _) = app.post("/catalog/api/v1/admission/check", &check("Not A Reference")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn rejects_bad_input_and_changes_nothing(app: TestApp) {
    let before = app.snapshot_state().await;
    let cases: Vec<(&str, &str, Option<&str>, StatusCode)> = vec![
        ("POST", "/catalog/api/v1/images", Some("{not json"), StatusCode::BAD_REQUEST),
        ("POST", "/catalog/api/v1/images", Some("[]"), StatusCode::BAD_REQUEST),
        ("POST", "/catalog/api/v1/images", Some(r#"{"image_name": ""}"#), StatusCode::BAD_REQUEST),
        ("POST", "/catalog/api/v1/images", Some(r#"{"image_name": "UPPER"}"#), StatusCode::BAD_REQUEST),
        (
            "POST",
            "/catalog/api/v1/images",
            Some(r#"{"image_name": "ok", "descripton": "typo"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/catalog/api/v1/images",
            Some(r#"{"image_name": "ok", "is_official": "yes"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/catalog/api/v1/images",
            Some(r#"{"image_name": "ok", "approval_status": "maybe"}"#),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/catalog/api/v1/images",
            Some(r#"{"image_name": "ok", "registry": "bad host:99999"}"#),
            StatusCode::BAD_REQUEST,
        ),
        ("POST", "/catalog/api/v1/images", Some(r#"{"image_name": "redis"}"#), StatusCode::CONFLICT),
        ("PUT", "/catalog/api/v1/images/1", Some("{}"), StatusCode::BAD_REQUEST),
        ("PUT", "/catalog/api/v1/images/1", Some(r#"{"image_name": "x"}"#), StatusCode::BAD_REQUEST),
        ("PUT", "/catalog/api/v1/images/abc", Some(r#"{"description": "x"}"#), StatusCode::BAD_REQUEST),
        ("PUT", "/catalog/api/v1/images/999", Some(r#"{"description": "x"}"#), StatusCode::NOT_FOUND),
        (
            "PUT",
            "/catalog/api/v1/images/99999999999999999999",
            Some(r#"{"description": "x"}"#),
            StatusCode::BAD_REQUEST,
        ),
        ("DELETE", "/catalog/api/v1/images/-1", None, StatusCode::NOT_FOUND),
        ("POST", "/catalog/api/v1/images/1/tags", Some(r#"{"tag": ""}"#), StatusCode::BAD_REQUEST),
        ("POST", "/catalog/api/v1/images/1/tags", Some(r#"{"tag": "a b"}"#), StatusCode::BAD_REQUEST),
        (
            "POST",
            "/catalog/api/v1/images/1/tags",
            Some(r#"{"tag": "x", "digest": "sha256:abc123"}"#),
            StatusCode::BAD_REQUEST,
        ),
        ("POST", "/catalog/api/v1/images/1/tags", Some(r#"{"tag": "x", "size_bytes": -5}"#), StatusCode::BAD_REQUEST),
        ("POST", "/catalog/api/v1/images/1/tags", Some(r#"{"tag": "latest"}"#), StatusCode::CONFLICT),
        ("POST", "/catalog/api/v1/images/999/tags", Some(r#"{"tag": "x"}"#), StatusCode::NOT_FOUND),
        ("PUT", "/catalog/api/v1/images/1/tags/999", Some(r#"{"is_deprecated": true}"#), StatusCode::NOT_FOUND),
        ("DELETE", "/catalog/api/v1/images/2/tags/1", None, StatusCode::NOT_FOUND),
        ("GET", "/catalog/api/v1/images?limit=-1", None, StatusCode::BAD_REQUEST),
        ("GET", "/catalog/api/v1/images?limit=1000000", None, StatusCode::BAD_REQUEST),
        ("GET", "/catalog/api/v1/images?limit=ten", None, StatusCode::BAD_REQUEST),
        ("GET", "/catalog/api/v1/images?offset=-3", None, StatusCode::BAD_REQUEST),
        ("GET", "/catalog/api/v1/images?after_id=3x", None, StatusCode::BAD_REQUEST),
        ("GET", "/catalog/api/v1/images?status=maybe", None, StatusCode::BAD_REQUEST),
        ("POST", "/catalog/api/v1/approval-requests", Some(r#"{"image_name": "a/b/../c"}"#), StatusCode::BAD_REQUEST),
        ("POST", "/catalog/api/v1/approval-requests/1/approve", Some("{bad"), StatusCode::BAD_REQUEST),
        ("GET", "/catalog/api/v1/events?image_id=x", None, StatusCode::BAD_REQUEST),
    ];
    for (method, path, body, expected) in cases {
        let (status, response) = app.send(method, path, body.map(str::to_owned), app.admin_token()).await;
        assert_eq!(status, expected, "{method} {path} {body:?}: {response}");
        assert!(response["error"].is_string() && response["message"].is_string(), "{method} {path}: {response}");
    }
    let long = format!(r#"{{"image_name": "ok", "description": "{}"}}"#, "x".repeat(5000));
    let (status, _) = app.send("POST", "/catalog/api/v1/images", Some(long), app.admin_token()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = app.send_raw("POST", "/catalog/api/v1/images", r#"{"image_name": "ok"}"#, None).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(app.snapshot_state().await, before, "bad input changed nothing");
}

async fn enforces_authentication_and_roles(app: TestApp) {
    let (status, body) = app.send("GET", "/catalog/api/v1/images", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "Unauthorized");
    let (status, _) = app.send("GET", "/catalog/api/v1/images", None, Some("igt_wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app.get_with_header("/catalog/api/v1/images", "Basic YWRtaW46d3Jvbmc=").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "wrong basic password");
    let (status, body) = app.get_with_header("/catalog/api/v1/images", &app.admin_basic()).await;
    assert_eq!(status, StatusCode::OK, "basic credentials work where a token does: {body}");
    let user = app.user_token("bob").await;
    let (status, _) = app.send("GET", "/catalog/api/v1/images", None, Some(&user)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.send("DELETE", "/catalog/api/v1/images/1", None, Some(&user)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"], "Forbidden");
    let (status, body) =
        app.send("POST", "/api/v1/auth/token", Some(r#"{"username": "admin", "password": "nope"}"#.into()), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!({"error": "Unauthorized", "message": "invalid username or password"}));
    let (status, _) = app.send("GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.send("GET", "/readyz", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ready"})));
}

/// After three wrong passwords an account must wait before the next check, even with the right password,
/// and through HTTP Basic as through sign-in; other accounts are not affected.
async fn slows_password_guessing(app: TestApp) {
    let sign_in = |password: &str| {
        let body = json!({"username": "admin", "password": password}).to_string();
        app.send("POST", "/api/v1/auth/token", Some(body), None)
    };
    for _ in 0..4 {
        let (status, _) = sign_in("wrong-guess").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = sign_in(crate::harness::ADMIN_PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "Too many requests");
    assert!(body["message"].as_str().unwrap().contains("try again in 1 s"), "{body}");
    let (status, _) = app.get_with_header("/catalog/api/v1/images", &app.admin_basic()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "Basic is slowed the same way");
    let user = app.user_token("bob").await;
    let (status, _) = app.send("GET", "/catalog/api/v1/images", None, Some(&user)).await;
    assert_eq!(status, StatusCode::OK, "tokens are not password checks");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body) = sign_in(crate::harness::ADMIN_PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The success reset the count: three more wrong guesses are answered as such.
    for _ in 0..3 {
        assert_eq!(sign_in("wrong-guess").await.0, StatusCode::UNAUTHORIZED);
    }
}

async fn records_the_audit_trail(app: TestApp) {
    let (_, img) = app.post("/catalog/api/v1/images", &json!({"image_name": "caddy", "category": "web"})).await;
    let id = img["id"].as_i64().unwrap();
    let (_, tag) = app.post(&format!("/catalog/api/v1/images/{id}/tags"), &json!({"tag": "2"})).await;
    app.put(&format!("/catalog/api/v1/images/{id}/tags/{}", tag["id"]), &json!({"is_recommended": true})).await;
    app.put(&format!("/catalog/api/v1/images/{id}"), &json!({"description": "web server"})).await;
    app.delete(&format!("/catalog/api/v1/images/{id}/tags/{}", tag["id"])).await;
    app.delete(&format!("/catalog/api/v1/images/{id}")).await;
    let (status, body) = app.get(&format!("/catalog/api/v1/events?image_id={id}")).await;
    assert_eq!(status, StatusCode::OK);
    let types: Vec<&str> =
        body["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "image.registry.deleted",
            "image.tag.deleted",
            "image.registry.updated",
            "image.tag.updated",
            "image.tag.added",
            "image.registry.added"
        ],
        "newest first"
    );
    assert!(body["events"].as_array().unwrap().iter().all(|e| e["actor"] == "admin"));
    let updated = &body["events"][2]["details"];
    assert_eq!(updated["before"]["description"], Value::Null);
    assert_eq!(updated["after"]["description"], "web server");
    let (_, body) = app.get("/catalog/api/v1/events?event_type=image.registry.added&limit=1").await;
    assert_eq!(body["events"].as_array().unwrap().len(), 1);
    assert_eq!(body["events"][0]["image_id"], id);
}
