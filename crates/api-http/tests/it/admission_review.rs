//! The Kubernetes admission webhook: an `AdmissionReview` for each workload kind, allowed and refused,
//! answered with the catalog's decision.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::harness::TestApp;

const REVIEW: &str = "/api/v1/admission/review";

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

/// A pod spec with `images` as its containers, an init container and an ephemeral container.
fn pod_spec(images: [&str; 3]) -> Value {
    json!({
        "initContainers": [{ "name": "init", "image": images[0] }],
        "containers": [{ "name": "app", "image": images[1] }],
        "ephemeralContainers": [{ "name": "debug", "image": images[2] }],
    })
}

/// The object of `kind` whose pod (template) spec is `spec`, and the kind's API group.
fn workload(kind: &str, spec: Value) -> (&'static str, Value) {
    let template = json!({ "metadata": { "labels": { "app": "web" } }, "spec": spec });
    let meta = json!({ "name": "web", "namespace": "shop" });
    match kind {
        "Pod" => ("", json!({ "apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"] })),
        "CronJob" => (
            "batch",
            json!({ "apiVersion": "batch/v1", "kind": kind, "metadata": meta,
                    "spec": { "schedule": "*/5 * * * *", "jobTemplate": { "spec": { "template": template } } } }),
        ),
        "Job" => (
            "batch",
            json!({ "apiVersion": "batch/v1", "kind": kind, "metadata": meta, "spec": { "template": template } }),
        ),
        _ => (
            "apps",
            json!({ "apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": { "template": template } }),
        ),
    }
}

fn review(uid: &str, group: &str, kind: &str, operation: &str, object: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": { "group": group, "version": "v1", "kind": kind },
            "resource": { "group": group, "version": "v1", "resource": format!("{}s", kind.to_lowercase()) },
            "namespace": "shop",
            "name": "web",
            "operation": operation,
            "userInfo": { "username": "dana" },
            "object": object,
            "dryRun": false,
        }
    })
}

/// The catalog the reviews are decided against: redis (seeded, approved) with `7.2-alpine` deprecated and
/// `7-alpine` at [`DIGEST`]; a pending image and a rejected one.
async fn catalog(app: &TestApp) {
    let (_, redis) = app.get("/catalog/api/v1/images/1").await;
    let tag_id =
        |name: &str| redis["tags"].as_array().unwrap().iter().find(|t| t["tag"] == name).unwrap()["id"].clone();
    let (status, body) = app
        .put(&format!("/catalog/api/v1/images/1/tags/{}", tag_id("7.2-alpine")), &json!({ "is_deprecated": true }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) =
        app.put(&format!("/catalog/api/v1/images/1/tags/{}", tag_id("7-alpine")), &json!({ "digest": DIGEST })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (name, approval) in [("pending-app", "pending"), ("rejected-app", "rejected")] {
        let image = json!({ "image_name": name, "namespace": "acme", "approval_status": approval });
        let (status, body) = app.post("/catalog/api/v1/images", &image).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

async fn ask(app: &TestApp, body: &Value) -> (StatusCode, Value) {
    app.post(REVIEW, body).await
}

async fn each_workload_kind_is_allowed_or_refused_by_the_catalog(postgres: bool) {
    let app = if postgres { TestApp::postgres().await } else { TestApp::sqlite().await };
    catalog(&app).await;
    let kinds = ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"];
    for kind in kinds {
        // Allowed: approved tags, one deprecated (a warning), one by the digest its catalog tag records.
        let images = ["redis:7.4-alpine", &format!("docker.io/library/redis@{DIGEST}"), "redis:7.2-alpine"];
        let (group, object) = workload(kind, pod_spec(images));
        let (status, body) = ask(&app, &review(&format!("allowed-{kind}"), group, kind, "CREATE", object)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["response"]["allowed"], true, "{kind}: {body}");
        insta::assert_json_snapshot!(format!("allowed_{}", kind.to_lowercase()), body);

        // Refused: each of the three for a reason of its own.
        let images = ["acme/pending-app:1", "redis:9", "acme/rejected-app:2"];
        let (group, object) = workload(kind, pod_spec(images));
        let (status, body) = ask(&app, &review(&format!("refused-{kind}"), group, kind, "UPDATE", object)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["response"]["allowed"], false, "{kind}: {body}");
        assert_eq!(body["response"]["status"]["details"]["causes"].as_array().unwrap().len(), 3, "{body}");
        insta::assert_json_snapshot!(format!("refused_{}", kind.to_lowercase()), body);
    }

    // One refused image is enough, and an unknown digest or image is named as such.
    let spec = json!({ "containers": [
        { "name": "a", "image": "redis:7-alpine" },
        { "name": "b", "image": format!("redis@sha256:{}", "2".repeat(64)) },
        { "name": "c", "image": "quay.io/unknown/thing:1" },
        { "name": "d", "image": "Not A Reference" },
    ] });
    let (_, object) = workload("Pod", spec);
    let (status, body) = ask(&app, &review("mixed", "", "Pod", "CREATE", object)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    insta::assert_json_snapshot!("refused_mixed", body);
}

async fn other_operations_and_kinds_are_allowed(postgres: bool) {
    let app = if postgres { TestApp::postgres().await } else { TestApp::sqlite().await };
    let (_, object) = workload("Pod", pod_spec(["nope:1", "nope:2", "nope:3"]));
    for operation in ["DELETE", "CONNECT"] {
        let (status, body) = ask(&app, &review("op", "", "Pod", operation, object.clone())).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body,
            json!({ "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": { "uid": "op", "allowed": true } })
        );
    }
    let config_map = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "x" }, "data": {} });
    let (status, body) = ask(&app, &review("cm", "", "ConfigMap", "CREATE", config_map)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    insta::assert_json_snapshot!("unknown_kind", body);
}

async fn malformed_reviews_are_refused_with_a_reason(postgres: bool) {
    let app = if postgres { TestApp::postgres().await } else { TestApp::sqlite().await };
    let (_, pod) = workload("Pod", pod_spec(["redis:7-alpine", "redis:7-alpine", "redis:7-alpine"]));
    let good = review("u1", "", "Pod", "CREATE", pod);
    let mut cases: Vec<(Value, &str)> = Vec::new();
    let mut wrong_version = good.clone();
    wrong_version["apiVersion"] = "admission.k8s.io/v1beta1".into();
    cases.push((wrong_version, "apiVersion"));
    let mut no_request = good.clone();
    no_request.as_object_mut().unwrap().remove("request");
    cases.push((no_request, "request"));
    let mut no_uid = good.clone();
    no_uid["request"]["uid"] = "".into();
    cases.push((no_uid, "request.uid"));
    let mut operation = good.clone();
    operation["request"]["operation"] = "PATCH".into();
    cases.push((operation, "request.operation"));
    let mut no_object = good.clone();
    no_object["request"].as_object_mut().unwrap().remove("object");
    cases.push((no_object, "request.object"));
    let mut no_spec = good.clone();
    no_spec["request"]["object"].as_object_mut().unwrap().remove("spec");
    cases.push((no_spec, "request.object.spec"));
    let mut containers = good.clone();
    containers["request"]["object"]["spec"]["containers"] = json!({ "name": "app" });
    cases.push((containers, "request.object.spec.containers"));
    let mut image = good.clone();
    image["request"]["object"]["spec"]["containers"][0]["image"] = json!(7);
    cases.push((image, "request.object.spec.containers[0].image"));
    for (body, field) in cases {
        let (status, answer) = ask(&app, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {answer}");
        assert!(answer["message"].as_str().unwrap().contains(field), "{field}: {answer}");
    }
    let (status, answer) = app.send_raw("POST", REVIEW, "{\"apiVersion\":", Some("application/json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    // The API server signs in like any client: without credentials, nothing is decided.
    let (status, _) = app.send("POST", REVIEW, Some(good.to_string()), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A user (the role the API server's account needs) is answered.
    let token = app.user_token("kube-apiserver").await;
    let (status, answer) = app.send("POST", REVIEW, Some(good.to_string()), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
}

on_both_backends!(
    each_workload_kind_is_allowed_or_refused_by_the_catalog,
    other_operations_and_kinds_are_allowed,
    malformed_reviews_are_refused_with_a_reason,
    digests_resolve_to_their_imported_tag,
);

/// An image of the internal registry given by digest: the index's digest is its catalog tag's, and a
/// platform's digest is found through the import that brought it.
async fn digests_resolve_to_their_imported_tag(postgres: bool) {
    let source = test_support::Distribution::start().await;
    let target = test_support::Distribution::start().await;
    let app = TestApp::with_registry(postgres, &target, "").await;
    let platforms = [("linux", "amd64"), ("linux", "arm64")];
    let pushed = test_support::images::push_index(&source, "team/web", "v2", &platforms, &[1000, 3000], 5000).await;
    let (status, body) =
        app.post("/api/v1/images:import", &json!({ "source": format!("{}/team/web:v2", source.host()) })).await;
    assert_eq!(body["state"], 1, "{status} {body}");
    app.run_jobs().await;
    // An import adds its image to the catalog as pending; an admin approves it.
    let (_, images) = app.get("/catalog/api/v1/images?search=web").await;
    let imported = images["images"].as_array().unwrap().iter().find(|i| i["registry"] == source.host().as_str());
    let id = imported.unwrap_or_else(|| panic!("the import's image: {images}"))["id"].clone();
    let (status, body) =
        app.put(&format!("/catalog/api/v1/images/{id}"), &json!({ "approval_status": "approved" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let internal = format!("{}/{}/team/web", target.host(), source.host().replace(':', "_"));
    let arm64 = &pushed.manifests[1].digest;
    let unknown = format!("sha256:{}", "3".repeat(64));
    let spec = json!({ "containers": [
        { "name": "index", "image": format!("{internal}@{}", pushed.digest) },
        { "name": "platform", "image": format!("{internal}@{arm64}") },
        { "name": "source", "image": format!("{}/team/web@{arm64}", source.host()) },
    ] });
    let (_, object) = workload("Pod", spec);
    let (status, body) = ask(&app, &review("digests", "", "Pod", "CREATE", object)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["response"], json!({ "uid": "digests", "allowed": true }), "{body}");

    let spec = json!({ "containers": [{ "name": "unknown", "image": format!("{internal}@{unknown}") }] });
    let (_, object) = workload("Pod", spec);
    let (_, body) = ask(&app, &review("unknown", "", "Pod", "CREATE", object)).await;
    assert_eq!(body["response"]["allowed"], false, "{body}");
    let message = body["response"]["status"]["message"].as_str().unwrap();
    let expected = format!("{unknown} is not an approved tag of {}/team/web", source.host());
    assert!(message.ends_with(&expected), "{message}");

    // Once the catalog drops the tag, its digests are refused with the tag's name.
    let (_, image) = app.get(&format!("/catalog/api/v1/images/{id}")).await;
    let tag = image["tags"].as_array().unwrap().iter().find(|t| t["tag"] == "v2").unwrap()["id"].clone();
    let (status, body) = app.delete(&format!("/catalog/api/v1/images/{id}/tags/{tag}")).await;
    assert!(status.is_success(), "{body}");
    let spec = json!({ "containers": [{ "name": "platform", "image": format!("{internal}@{arm64}") }] });
    let (_, object) = workload("Pod", spec);
    let (_, body) = ask(&app, &review("dropped", "", "Pod", "CREATE", object)).await;
    assert_eq!(body["response"]["allowed"], false, "{body}");
    let message = body["response"]["status"]["message"].as_str().unwrap();
    assert!(message.ends_with(&format!("tag v2 of {}/team/web is not approved", source.host())), "{message}");
    assert!(message.contains(&format!("@{arm64} (tag v2)")), "{message}");
}
