//! Harbor as the internal registry (the stand-in of `test-support`): an import into a project that does not
//! exist yet, and seed 000's `GET /api/v1/harbor/stats` healthy, with a component down, with Harbor down,
//! and on a plain distribution registry.

use axum::http::StatusCode;
use image_core::registry::Severity;
use serde_json::json;
use test_support::Distribution;
use test_support::harbor::Harbor;
use test_support::images;

use crate::harness::TestApp;

on_both_backends!(
    an_import_into_a_new_project_creates_it,
    stats_in_the_seed_shape,
    stats_with_a_component_down_and_harbor_down,
    stats_of_a_plain_registry,
    a_scan_result_reaches_the_catalog_tag,
    deny_by_severity_refuses_and_allows_as_configured,
    a_harbor_scan_webhook_refreshes_the_catalog_tag,
    a_registry_notification_of_a_side_push_reaches_the_catalog,
);

async fn an_import_into_a_new_project_creates_it(postgres: bool) {
    let harbor = Harbor::start().await;
    let source = Distribution::start().await;
    let pushed = images::push_image(&source, "team/app", "1.0", &[2048]).await;
    let app = TestApp::with_harbor(postgres, &harbor, "mirror").await;
    assert_eq!(harbor.project("mirror"), None);

    let (status, body) =
        app.post("/api/v1/images:import", &json!({ "source": format!("{}/team/app:1.0", source.host()) })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The import, and the scan it queues (which this Harbor, without a scanner, declines).
    assert_eq!(app.run_jobs().await, 2);
    assert_eq!(harbor.project("mirror"), Some(false), "created, private");

    let (_, listing) = app.get("/api/v1/images").await;
    let artifact = &listing["images"][0]["artifacts"][0];
    assert_eq!(
        (artifact["status"].as_str(), artifact["digest"].as_str()),
        (Some("ready"), Some(pushed.digest.as_str())),
        "{listing}"
    );

    // The stats count the new private project and its repository.
    let (_, stats) = app.get("/api/v1/harbor/stats").await;
    assert_eq!(
        (stats["private_project_count"].as_u64(), stats["private_repo_count"].as_u64()),
        (Some(1), Some(1)),
        "{stats}"
    );
    assert!(stats["total_storage"].as_u64().unwrap() > 2048, "{stats}");
}

async fn stats_in_the_seed_shape(postgres: bool) {
    let harbor = Harbor::start().await;
    let app = TestApp::with_harbor(postgres, &harbor, "mirror").await;
    let (status, stats) = app.get("/api/v1/harbor/stats").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    insta::assert_json_snapshot!("harbor_stats_healthy", stats);

    // Signed in only.
    let (status, _) = app.send("GET", "/api/v1/harbor/stats", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn stats_with_a_component_down_and_harbor_down(postgres: bool) {
    let harbor = Harbor::start().await;
    let app = TestApp::with_harbor(postgres, &harbor, "mirror").await;
    harbor.set_unhealthy("database", Some("failed to connect to postgresql: connection refused"));
    let (status, stats) = app.get("/api/v1/harbor/stats").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    insta::assert_json_snapshot!("harbor_stats_component_down", stats);

    harbor.stop();
    let (status, stats) = app.get("/api/v1/harbor/stats").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["status"], "unhealthy");
    assert_eq!(stats["components"], json!([]));
    assert_eq!(stats["private_project_count"], 0);
    let reason = stats["reason"].as_str().unwrap();
    assert!(reason.contains(&harbor.host()), "{reason}");
}

async fn stats_of_a_plain_registry(postgres: bool) {
    let source = Distribution::start().await;
    let target = Distribution::start().await;
    let pushed = images::push_image(&source, "team/app", "1.0", &[3000]).await;
    let app = TestApp::with_registry(postgres, &target, "mirror").await;
    let (status, body) =
        app.post("/api/v1/images:import", &json!({ "source": format!("{}/team/app:1.0", source.host()) })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.run_jobs().await, 1);
    let (status, stats) = app.get("/api/v1/harbor/stats").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    // Storage from imagegate's own records: the artifact's config and layers.
    assert_eq!(
        stats,
        json!({
            "status": "healthy",
            "components": [{"name": "registry", "status": "healthy"}],
            "private_project_count": 0,
            "public_project_count": 1,
            "private_repo_count": 0,
            "public_repo_count": 1,
            "total_storage": pushed.manifests[0].size,
        })
    );

    drop(target);
    let (status, stats) = app.get("/api/v1/harbor/stats").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(
        (stats["status"].as_str(), stats["components"][0]["status"].as_str()),
        (Some("unhealthy"), Some("unhealthy"))
    );
    assert!(stats["reason"].is_string(), "{stats}");
}

#[tokio::test]
async fn stats_without_an_internal_registry_are_unhealthy_not_an_error() {
    let app = TestApp::sqlite().await;
    let (status, stats) = app.get("/api/v1/harbor/stats").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["status"], "unhealthy");
    assert!(stats["reason"].as_str().unwrap().contains("--internal-registry"), "{stats}");
}

/// Imports `team/app:1.0` from a new source registry into `harbor` under `mirror`, runs the import and the
/// scan it queues; answers the catalog's image id and the source reference.
async fn import_and_scan(app: &TestApp, source: &Distribution) -> (i64, String) {
    images::push_image(source, "team/app", "1.0", &[1024]).await;
    let reference = format!("{}/team/app:1.0", source.host());
    let (status, body) = app.post("/api/v1/images:import", &json!({ "source": reference })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.run_jobs().await, 2, "the import, then its scan");
    let (_, catalog) = app.get("/catalog/api/v1/images?search=app").await;
    (catalog["images"][0]["id"].as_i64().unwrap(), reference)
}

async fn a_scan_result_reaches_the_catalog_tag(postgres: bool) {
    let harbor = Harbor::start().await;
    let source = Distribution::start().await;
    harbor.set_scan_result(&[("Critical", 1), ("High", 2), ("Low", 4)]);
    let app = TestApp::with_harbor(postgres, &harbor, "mirror").await;
    let (image_id, _) = import_and_scan(&app, &source).await;
    assert_eq!(harbor.scan_requests().len(), 1);
    assert_eq!(harbor.scan_requests()[0].0, format!("mirror/{}/team/app", source.host().replace(':', "_")));
    let (_, details) = app.get(&format!("/catalog/api/v1/images/{image_id}")).await;
    let tag = &details["tags"][0];
    // No deny policy: a finished scan passes, with its count.
    assert_eq!(
        (tag["security_scan_status"].as_str(), tag["vulnerabilities_count"].as_i64()),
        (Some("passed"), Some(7)),
        "{details}"
    );

    // A Harbor without a scanner: nothing is asked, and the tag stays unscanned.
    let harbor = Harbor::start().await;
    let app = TestApp::with_harbor(postgres, &harbor, "mirror").await;
    let (image_id, _) = import_and_scan(&app, &source).await;
    assert!(harbor.scan_requests().is_empty());
    let (_, details) = app.get(&format!("/catalog/api/v1/images/{image_id}")).await;
    assert_eq!(details["tags"][0]["security_scan_status"], serde_json::Value::Null, "{details}");
}

async fn deny_by_severity_refuses_and_allows_as_configured(postgres: bool) {
    let source = Distribution::start().await;
    let check = |image: &str| json!({ "image": image });
    for (deny, findings, allowed) in [
        (Some(Severity::High), vec![("Critical", 0), ("High", 1)], false),
        (Some(Severity::Critical), vec![("High", 3)], true),
        (None, vec![("Critical", 5)], true),
    ] {
        let harbor = Harbor::start().await;
        harbor.set_scan_result(&findings);
        let app = TestApp::with_harbor_denying(postgres, &harbor, "mirror", deny).await;
        let (image_id, reference) = import_and_scan(&app, &source).await;
        let (status, _) =
            app.put(&format!("/catalog/api/v1/images/{image_id}"), &json!({"approval_status": "approved"})).await;
        assert_eq!(status, StatusCode::OK);
        let (_, details) = app.get(&format!("/catalog/api/v1/images/{image_id}")).await;
        let expected = if allowed { "passed" } else { "failed" };
        assert_eq!(details["tags"][0]["security_scan_status"], expected, "{deny:?}: {details}");
        let (status, body) = app.post("/catalog/api/v1/admission/check", &check(&reference)).await;
        if allowed {
            assert_eq!(status, StatusCode::OK, "{deny:?}: {body}");
            assert_eq!(body["allowed"], true);
        } else {
            assert_eq!(status, StatusCode::FORBIDDEN, "{deny:?}: {body}");
            assert_eq!(body["error"], "Vulnerable image");
            let message = body["message"].as_str().unwrap();
            assert!(message.contains("high or worse") && message.contains("1 vulnerabilities"), "{message}");
        }
    }
}

async fn a_harbor_scan_webhook_refreshes_the_catalog_tag(postgres: bool) {
    use crate::harness::HARBOR_WEBHOOK_SECRET;
    let harbor = Harbor::start().await;
    let source = Distribution::start().await;
    let app = TestApp::with_harbor(postgres, &harbor, "mirror").await;
    // No scanner at import time: the tag stays unscanned.
    let (image_id, _) = import_and_scan(&app, &source).await;
    let (_, imported) = app.get("/api/v1/images").await;
    let digest = imported["images"][0]["artifacts"][0]["digest"].as_str().unwrap().to_owned();
    let repository = format!("mirror/{}/team/app", source.host().replace(':', "_"));

    // Harbor scans it on its own, then tells imagegate.
    harbor.set_scan_result(&[("Medium", 2)]);
    harbor.scan_now(&digest);
    let event = |digest: &str| {
        json!({
            "type": "SCANNING_COMPLETED",
            "occur_at": 1_700_000_000,
            "operator": "auto",
            "event_data": {
                "resources": [{"digest": digest, "tag": "1.0", "resource_url": format!("{}/{repository}:1.0", harbor.host())}],
                "repository": {"name": "x", "namespace": "mirror", "repo_full_name": repository, "repo_type": "private"},
            },
        })
    };
    let before = app.snapshot_state().await;
    // Without the secret, with a wrong one, or malformed: refused, and nothing is queued.
    let path = "/api/v1/webhooks/harbor";
    let (status, body) = app.send("POST", path, Some(event(&digest).to_string()), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = app.send_with_header("POST", path, Some(&event(&digest)), "not-the-secret").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = app.send_with_header("POST", path, Some(&event("sha256:nope")), HARBOR_WEBHOOK_SECRET).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) =
        app.send_with_header("POST", path, Some(&json!({"type": "SCANNING_COMPLETED"})), HARBOR_WEBHOOK_SECRET).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(app.run_jobs().await, 0);
    assert_eq!(app.snapshot_state().await, before);

    let (status, body) = app.send_with_header("POST", path, Some(&event(&digest)), HARBOR_WEBHOOK_SECRET).await;
    assert_eq!((status, body["queued"].as_i64()), (StatusCode::ACCEPTED, Some(1)), "{body}");
    assert_eq!(app.run_jobs().await, 1);
    assert!(harbor.scan_requests().is_empty(), "a webhook reads the scan, it asks for none");
    let (_, details) = app.get(&format!("/catalog/api/v1/images/{image_id}")).await;
    let tag = &details["tags"][0];
    assert_eq!(
        (tag["security_scan_status"].as_str(), tag["vulnerabilities_count"].as_i64()),
        (Some("passed"), Some(2)),
        "{details}"
    );

    // A tag pushed beside imagegate, straight into Harbor, reaches the catalog image; its delete clears it.
    let side = images::push_image(harbor.registry(), &repository, "2.0", &[512]).await;
    let mut push = event(&side.digest);
    push["type"] = json!("PUSH_ARTIFACT");
    push["event_data"]["resources"][0]["tag"] = json!("2.0");
    let (status, body) = app.send_with_header("POST", path, Some(&push), HARBOR_WEBHOOK_SECRET).await;
    assert_eq!(
        (status, body["tags_changed"].as_i64(), body["artifacts_changed"].as_i64()),
        (StatusCode::ACCEPTED, Some(1), Some(1)),
        "{body}"
    );
    let (_, details) = app.get(&format!("/catalog/api/v1/images/{image_id}")).await;
    let pushed = details["tags"].as_array().unwrap().iter().find(|t| t["tag"] == "2.0").cloned();
    assert_eq!(pushed.as_ref().map(|t| t["digest"].clone()), Some(json!(side.digest)), "{details}");
    // It shows in the platform listing too, with the platform and size Harbor lists for it.
    let (_, listing) = app.get("/api/v1/images?tag=2.0").await;
    assert_eq!(listing["totalCount"], 1, "{listing}");
    let listed = &listing["images"][0]["artifacts"][0];
    assert_eq!(
        (listed["digest"].as_str(), listed["userName"].as_str(), listed["status"].as_str()),
        (Some(side.digest.as_str()), Some("harbor-webhook"), Some("ready")),
        "{listing}"
    );
    assert_eq!((listed["os"].as_str(), listed["arch"].as_str()), (Some("linux"), Some("amd64")), "{listing}");
    assert!(listed["size"].as_u64().unwrap() >= 512, "{listing}");
    // The same event again changes nothing.
    let (_, body) = app.send_with_header("POST", path, Some(&push), HARBOR_WEBHOOK_SECRET).await;
    assert_eq!((body["tags_changed"].as_i64(), body["artifacts_changed"].as_i64()), (Some(0), Some(0)), "{body}");

    let mut delete = push.clone();
    delete["type"] = json!("DELETE_ARTIFACT");
    let (status, body) = app.send_with_header("POST", path, Some(&delete), HARBOR_WEBHOOK_SECRET).await;
    assert_eq!(
        (status, body["tags_changed"].as_i64(), body["artifacts_changed"].as_i64()),
        (StatusCode::ACCEPTED, Some(1), Some(1)),
        "{body}"
    );
    let (_, details) = app.get(&format!("/catalog/api/v1/images/{image_id}")).await;
    let deleted = details["tags"].as_array().unwrap().iter().find(|t| t["tag"] == "2.0").cloned().unwrap();
    assert_eq!(deleted["digest"], serde_json::Value::Null, "{details}");
    let (_, listing) = app.get("/api/v1/images?tag=2.0").await;
    assert_eq!(listing["totalCount"], 0, "{listing}");
    let (_, listing) = app.get("/api/v1/images?tag=1.0").await;
    assert_eq!(listing["totalCount"], 1, "the import's own record stays: {listing}");

    // A push into a repository no import landed in shows in the listing under that repository.
    let other = "mirror/team/sidecar";
    let sidecar = images::push_image(harbor.registry(), other, "0.1", &[256]).await;
    let mut elsewhere = push.clone();
    elsewhere["event_data"]["resources"][0] = json!({"digest": sidecar.digest, "tag": "0.1"});
    elsewhere["event_data"]["repository"]["repo_full_name"] = json!(other);
    let (status, body) = app.send_with_header("POST", path, Some(&elsewhere), HARBOR_WEBHOOK_SECRET).await;
    assert_eq!(
        (status, body["tags_changed"].as_i64(), body["artifacts_changed"].as_i64()),
        (StatusCode::ACCEPTED, Some(0), Some(1)),
        "{body}"
    );
    let (_, listing) = app.get("/api/v1/images?tag=0.1").await;
    assert_eq!(
        (listing["images"][0]["repo"].as_str(), listing["images"][0]["artifacts"][0]["digest"].as_str()),
        (Some(other), Some(sidecar.digest.as_str())),
        "{listing}"
    );

    // An event of another type is acknowledged and changes nothing.
    let before = app.snapshot_state().await;
    let mut pull = event(&digest);
    pull["type"] = json!("PULL_ARTIFACT");
    let (status, body) = app.send_with_header("POST", path, Some(&pull), HARBOR_WEBHOOK_SECRET).await;
    assert_eq!((status, body["queued"].as_i64()), (StatusCode::ACCEPTED, Some(0)), "{body}");
    assert_eq!(app.run_jobs().await, 0);
    assert_eq!(app.snapshot_state().await, before);
}

async fn a_registry_notification_of_a_side_push_reaches_the_catalog(postgres: bool) {
    use crate::harness::REGISTRY_WEBHOOK_SECRET;
    let source = Distribution::start().await;
    let target = Distribution::start().await;
    images::push_image(&source, "team/app", "1.0", &[1024]).await;
    let app = TestApp::with_registry(postgres, &target, "mirror").await;
    let (status, body) =
        app.post("/api/v1/images:import", &json!({ "source": format!("{}/team/app:1.0", source.host()) })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.run_jobs().await;
    let (_, catalog) = app.get("/catalog/api/v1/images?search=app").await;
    let image_id = catalog["images"][0]["id"].as_i64().unwrap();
    let repository = format!("mirror/{}/team/app", source.host().replace(':', "_"));
    let side = images::push_image(&target, &repository, "2.0", &[256]).await;
    let envelope = |action: &str, tag: Option<&str>| {
        let mut target = json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": side.digest,
            "size": side.bytes.len(),
            "repository": repository,
            "url": format!("{}/v2/{repository}/manifests/{}", target.url(), side.digest),
        });
        if let Some(tag) = tag {
            target["tag"] = json!(tag);
        }
        json!({"events": [{
            "id": "7f0b2b8c", "timestamp": "2026-12-02T05:00:00Z", "action": action, "target": target,
            "request": {"id": "r1", "addr": "127.0.0.1", "host": "registry", "method": "PUT", "useragent": "docker"},
            "actor": {}, "source": {"addr": "registry:5000", "instanceID": "i1"},
        }]})
    };
    let path = "/api/v1/webhooks/docker-registry";
    let tag_digest = |details: &serde_json::Value| {
        details["tags"].as_array().unwrap().iter().find(|t| t["tag"] == "2.0").map(|t| t["digest"].clone())
    };

    let before = app.snapshot_state().await;
    let (status, _) = app.send("POST", path, Some(envelope("push", Some("2.0")).to_string()), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app.send_with_header("POST", path, Some(&envelope("push", Some("2.0"))), "Bearer wrong").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) =
        app.send_with_header("POST", path, Some(&envelope("explode", Some("2.0"))), REGISTRY_WEBHOOK_SECRET).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) =
        app.send_with_header("POST", path, Some(&json!({"events": "nope"})), REGISTRY_WEBHOOK_SECRET).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(app.snapshot_state().await, before);

    let (status, body) =
        app.send_with_header("POST", path, Some(&envelope("push", Some("2.0"))), REGISTRY_WEBHOOK_SECRET).await;
    assert_eq!(
        (status, body["tags_changed"].as_i64(), body["artifacts_changed"].as_i64()),
        (StatusCode::ACCEPTED, Some(1), Some(1)),
        "{body}"
    );
    let (_, details) = app.get(&format!("/catalog/api/v1/images/{image_id}")).await;
    assert_eq!(tag_digest(&details), Some(json!(side.digest)), "{details}");
    let listed = |listing: &serde_json::Value| listing["images"][0]["artifacts"][0]["digest"].clone();
    let (_, listing) = app.get("/api/v1/images?tag=2.0").await;
    assert_eq!(listed(&listing), json!(side.digest), "{listing}");
    assert_eq!(listing["images"][0]["artifacts"][0]["userName"], "registry-webhook", "{listing}");

    // A pull changes nothing; a manifest delete (no tag) clears the tags on that digest.
    let (_, body) =
        app.send_with_header("POST", path, Some(&envelope("pull", Some("2.0"))), REGISTRY_WEBHOOK_SECRET).await;
    assert_eq!(body["tags_changed"], 0);
    let (status, body) =
        app.send_with_header("POST", path, Some(&envelope("delete", None)), REGISTRY_WEBHOOK_SECRET).await;
    assert_eq!(
        (status, body["tags_changed"].as_i64(), body["artifacts_changed"].as_i64()),
        (StatusCode::ACCEPTED, Some(1), Some(1)),
        "{body}"
    );
    let (_, details) = app.get(&format!("/catalog/api/v1/images/{image_id}")).await;
    assert_eq!(tag_digest(&details), Some(serde_json::Value::Null), "{details}");
    let (_, listing) = app.get("/api/v1/images?tag=2.0").await;
    assert_eq!(listing["totalCount"], 0, "{listing}");
}
