//! The kube-style resources profile (seed 001): registry secrets verified against a real registry with
//! basic auth, and repositories synced into a real internal registry by the real job runner.

use axum::http::StatusCode;
use serde_json::{Value, json};
use test_support::{Distribution, images};

use crate::harness::TestApp;

const BASE: &str = "/oapis/image.theriseunion.io/v1alpha1/namespaces";

on_both_backends!(
    runs_the_seeds_complete_flow,
    manages_registry_secrets_without_showing_passwords,
    refuses_bad_resources_with_a_status,
    syncs_a_moved_tag_and_survives_a_registry_outage,
);

fn secret(name: &str, domain: &str, password: &str) -> Value {
    json!({
        "apiVersion": "image.theriseunion.io/v1alpha1",
        "kind": "RegistrySecret",
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": { "theriseunion.io/display-name": "Lab registry", "theriseunion.io/description": "for tests" }
        },
        "spec": { "domain": domain, "username": "alice", "password": password, "provider": "other" }
    })
}

fn repository(name: &str, repo: &str, tag: &str, secret: &str) -> Value {
    json!({
        "apiVersion": "image.theriseunion.io/v1alpha1",
        "kind": "Repository",
        "metadata": { "name": name, "namespace": "default" },
        "spec": { "repository": repo, "tag": tag, "registryRef": { "name": secret, "namespace": "default" } }
    })
}

/// Replaces what differs between runs with markers.
fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let marker = match k.as_str() {
                        "creationTimestamp" | "lastSynced" | "theriseunion.io/verify-timestamp" => Some("[time]"),
                        "domain" | "theriseunion.io/domain" => Some("[registry]"),
                        "digest" => Some("[digest]"),
                        "layers" => Some("[layers]"),
                        "message" if v.as_str().is_some_and(|m| m.contains("127.0.0.1")) => Some("[message]"),
                        _ => None,
                    };
                    (k.clone(), marker.map_or_else(|| redact(v), |m| Value::String(m.into())))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

async fn runs_the_seeds_complete_flow(postgres: bool) {
    let source = Distribution::start_with_basic_auth("alice", "Harbor12345").await;
    let target = Distribution::start().await;
    let app = TestApp::with_registry(postgres, &target, "").await;
    let pushed = images::push_image(&source, "myapp/myapp", "v1.0.0", &[1000, 2000]).await;

    // 1. Create the registry secret.
    let (status, body) = app
        .post(&format!("{BASE}/default/registry-secrets"), &secret("harbor-prod", &source.host(), "Harbor12345"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    insta::assert_json_snapshot!("kube_secret_created", redact(&body));
    assert!(!body.to_string().contains("Harbor12345"), "the password is never returned");

    // 2. Verify it with the stored credentials.
    let (status, body) = app.post(&format!("{BASE}/default/registry-secrets/harbor-prod/verify"), &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], true, "{body}");
    let (_, body) = app.get(&format!("{BASE}/default/registry-secrets/harbor-prod")).await;
    assert_eq!(body["metadata"]["annotations"]["theriseunion.io/verify-status"], "success");
    assert!(body["metadata"]["annotations"]["theriseunion.io/verify-timestamp"].is_string());

    // 3. Create the repository.
    let (status, body) = app
        .post(
            &format!("{BASE}/default/repositories"),
            &repository("myapp-v1.0.0", "myapp/myapp", "v1.0.0", "harbor-prod"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["spec"]["syncInterval"], "1h");
    assert_eq!(body["spec"]["syncTimeout"], "10m");
    assert_eq!(body["spec"]["retryCount"], 3);

    // 4. The first sync is due at once; the worker runs it.
    assert_eq!(app.schedule_syncs().await, 1);
    app.run_jobs().await;
    let (_, body) = app.get(&format!("{BASE}/default/repositories/myapp-v1.0.0")).await;
    insta::assert_json_snapshot!("kube_repository_synced", redact(&body));
    assert_eq!(body["status"]["syncStatus"], "Success");
    assert_eq!(body["status"]["manifest"]["digest"], pushed.digest);
    assert_eq!(body["status"]["manifest"]["architecture"], "amd64");
    assert_eq!(body["status"]["manifest"]["layers"].as_array().unwrap().len(), 3);
    // The image config's `created`, and the size as the seed prints it, with the bytes beside it.
    assert_eq!(body["status"]["manifest"]["created"], "2025-01-15T10:00:00Z");
    assert_eq!(body["status"]["manifest"]["sizeBytes"], pushed.manifests[0].size);
    assert!(pushed.manifests[0].size > 3000 && pushed.manifests[0].size < 3500);
    assert_eq!(body["status"]["manifest"]["size"], format!("{:.1}kB", pushed.manifests[0].size as f64 / 1000.0));
    let head = reqwest::Client::new()
        .head(format!("{}/v2/{}/myapp/myapp/manifests/v1.0.0", target.url(), source.host().replace(':', "_")))
        .header("accept", images::OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["docker-content-digest"].to_str().unwrap(), pushed.digest);

    // 5. Trigger a sync by hand.
    let (status, body) = app.post(&format!("{BASE}/default/repositories/myapp-v1.0.0/sync"), &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({ "success": true, "message": "Sync task submitted" }));
    let (_, body) = app.post(&format!("{BASE}/default/repositories/myapp-v1.0.0/sync"), &json!({})).await;
    assert_eq!(body["message"], "A sync is already queued or running");
    app.run_jobs().await;

    // Lists, in one namespace and in all.
    let (_, list) = app.get(&format!("{BASE}/_all_/repositories?page=1&limit=20")).await;
    assert_eq!((list["kind"].as_str(), list["totalItems"].as_i64()), (Some("RepositoryList"), Some(1)));
    let (_, list) = app.get(&format!("{BASE}/default/registry-secrets?page=1&limit=10&search=harbor")).await;
    assert_eq!((list["kind"].as_str(), list["totalItems"].as_i64()), (Some("RegistrySecretList"), Some(1)));
    let (_, list) = app.get(&format!("{BASE}/other/registry-secrets")).await;
    assert_eq!(list["totalItems"], 0);

    // A referenced secret cannot go; the repository can, then the secret.
    let (status, body) = app.delete(&format!("{BASE}/default/registry-secrets/harbor-prod")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        (body["kind"].as_str(), body["reason"].as_str(), body["code"].as_i64()),
        (Some("Status"), Some("Conflict"), Some(409))
    );
    let (status, _) = app.delete(&format!("{BASE}/default/repositories/myapp-v1.0.0")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.delete(&format!("{BASE}/default/registry-secrets/harbor-prod")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get(&format!("{BASE}/default/registry-secrets/harbor-prod")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    insta::assert_json_snapshot!("kube_not_found", body);
}

async fn manages_registry_secrets_without_showing_passwords(postgres: bool) {
    let source = Distribution::start_with_basic_auth("alice", "right-password").await;
    let target = Distribution::start().await;
    let app = TestApp::with_registry(postgres, &target, "").await;
    let (status, _) =
        app.post(&format!("{BASE}/default/registry-secrets"), &secret("lab", &source.host(), "wrong-password")).await;
    assert_eq!(status, StatusCode::CREATED);

    let (_, body) = app.post(&format!("{BASE}/default/registry-secrets/lab/verify"), &json!({})).await;
    assert_eq!(body["success"], false, "{body}");
    assert!(body["message"].as_str().unwrap().contains("refused the credentials"), "{body}");
    assert!(!body.to_string().contains("wrong-password"));
    let (_, stored) = app.get(&format!("{BASE}/default/registry-secrets/lab")).await;
    assert_eq!(stored["metadata"]["annotations"]["theriseunion.io/verify-status"], "failed");

    // Other credentials in the body are checked without touching the stored status.
    let body = json!({ "domain": source.host(), "username": "alice", "password": "right-password" });
    let (_, answer) = app.post(&format!("{BASE}/default/registry-secrets/lab/verify"), &body).await;
    assert_eq!(answer["success"], true, "{answer}");
    let (_, stored) = app.get(&format!("{BASE}/default/registry-secrets/lab")).await;
    assert_eq!(stored["metadata"]["annotations"]["theriseunion.io/verify-status"], "failed");

    // The stored password never goes to another domain, nor over plain HTTP when stored for HTTPS: such a
    // check must bring its own credentials.
    for body in [json!({ "domain": "127.0.0.1:1" }), json!({ "domain": "other.example", "username": "alice" })] {
        let (status, refused) = app.post(&format!("{BASE}/default/registry-secrets/lab/verify"), &body).await;
        assert_eq!((status, refused["reason"].as_str()), (StatusCode::BAD_REQUEST, Some("Invalid")), "{refused}");
        assert!(refused["message"].as_str().unwrap().contains("send its username and password"), "{refused}");
    }
    let (status, _) =
        app.post(&format!("{BASE}/default/registry-secrets"), &secret("tls", "registry.example", "pw")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) =
        app.post(&format!("{BASE}/default/registry-secrets/tls/verify"), &json!({ "insecure": true })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "plain HTTP with a password stored for HTTPS");
    let (_, unreachable) = app
        .post(
            &format!("{BASE}/default/registry-secrets/lab/verify"),
            &json!({ "domain": "127.0.0.1:1", "username": "u", "password": "its-own" }),
        )
        .await;
    assert_eq!(unreachable["success"], false);

    let (status, body) =
        app.post(&format!("{BASE}/default/registry-secrets"), &secret("lab", &source.host(), "x")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["reason"], "AlreadyExists");
    assert_eq!(body["details"], json!({ "name": "lab", "kind": "registrysecrets" }));
    let everything = app.snapshot_kube().await;
    assert!(!everything.contains("wrong-password") && !everything.contains("right-password"));
}

async fn refuses_bad_resources_with_a_status(postgres: bool) {
    let target = Distribution::start().await;
    let app = TestApp::with_registry(postgres, &target, "").await;
    let ok_secret = secret("lab", "registry.example.com", "pw");
    let with = |mut v: Value, pointer: &str, new: Value| {
        *v.pointer_mut(pointer).unwrap() = new;
        v
    };
    let cases: Vec<(String, Value, StatusCode, &str)> = vec![
        (
            format!("{BASE}/default/registry-secrets"),
            with(ok_secret.clone(), "/metadata/name", json!("Not_DNS")),
            StatusCode::BAD_REQUEST,
            "metadata.name",
        ),
        (
            format!("{BASE}/default/registry-secrets"),
            with(ok_secret.clone(), "/spec/provider", json!("quay")),
            StatusCode::BAD_REQUEST,
            "spec.provider",
        ),
        (
            format!("{BASE}/default/registry-secrets"),
            with(ok_secret.clone(), "/metadata/namespace", json!("prod")),
            StatusCode::BAD_REQUEST,
            "metadata.namespace",
        ),
        (
            format!("{BASE}/default/registry-secrets"),
            with(ok_secret.clone(), "/spec/password", json!("")),
            StatusCode::BAD_REQUEST,
            "spec.password",
        ),
        (
            format!("{BASE}/default/registry-secrets"),
            with(ok_secret.clone(), "/spec/domain", json!("bad host")),
            StatusCode::BAD_REQUEST,
            "spec.domain",
        ),
        (
            format!("{BASE}/default/registry-secrets"),
            with(ok_secret.clone(), "/kind", json!("Secret")),
            StatusCode::BAD_REQUEST,
            "kind",
        ),
        (format!("{BASE}/Default/registry-secrets"), ok_secret.clone(), StatusCode::BAD_REQUEST, "namespace"),
        (format!("{BASE}/_all_/registry-secrets"), ok_secret.clone(), StatusCode::BAD_REQUEST, "namespace"),
        (
            format!("{BASE}/default/repositories"),
            repository("r", "a/b", "1", "missing"),
            StatusCode::NOT_FOUND,
            "registry secret",
        ),
        (
            format!("{BASE}/default/repositories"),
            with(repository("r", "a/b", "1", "lab"), "/spec/tag", json!("bad tag")),
            StatusCode::BAD_REQUEST,
            "spec.tag",
        ),
        (
            format!("{BASE}/default/repositories"),
            with(repository("r", "a/b", "1", "lab"), "/spec/repository", json!("A/B")),
            StatusCode::BAD_REQUEST,
            "spec.repository",
        ),
        (
            format!("{BASE}/default/repositories"),
            {
                let mut v = repository("r", "a/b", "1", "lab");
                v["spec"]["syncInterval"] = json!("often");
                v
            },
            StatusCode::BAD_REQUEST,
            "spec.syncInterval",
        ),
        (
            format!("{BASE}/default/repositories"),
            {
                let mut v = repository("r", "a/b", "1", "lab");
                v["spec"]["syncTimeout"] = json!("5");
                v
            },
            StatusCode::BAD_REQUEST,
            "spec.syncTimeout",
        ),
        (
            format!("{BASE}/default/repositories"),
            {
                let mut v = repository("r", "a/b", "1", "lab");
                v["spec"]["retryCount"] = json!(-1);
                v
            },
            StatusCode::BAD_REQUEST,
            "spec.retryCount",
        ),
    ];
    let (status, _) = app.post(&format!("{BASE}/default/registry-secrets"), &ok_secret).await;
    assert_eq!(status, StatusCode::CREATED);
    let before = app.snapshot_kube().await;
    for (path, body, expected, needle) in cases {
        let (status, answer) = app.post(&path, &body).await;
        assert_eq!(status, expected, "{path} {body}: {answer}");
        assert_eq!(answer["kind"], "Status", "{answer}");
        assert_eq!(answer["status"], "Failure");
        assert_eq!(answer["code"], expected.as_u16());
        assert!(answer["message"].as_str().unwrap().contains(needle), "{needle}: {answer}");
        if expected == StatusCode::BAD_REQUEST {
            assert_eq!(answer["details"]["causes"][0]["field"], needle, "{answer}");
        }
    }
    let (status, answer) =
        app.send("POST", &format!("{BASE}/default/repositories"), Some("{nope".into()), app.admin_token()).await;
    assert_eq!((status, answer["kind"].as_str()), (StatusCode::BAD_REQUEST, Some("Status")));
    let (status, answer) = app.send("GET", &format!("{BASE}/default/repositories"), None, None).await;
    assert_eq!((status, answer["reason"].as_str()), (StatusCode::UNAUTHORIZED, Some("Unauthorized")));
    let (status, _) = app.get(&format!("{BASE}/default/repositories?page=0")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.get(&format!("{BASE}/default/repositories/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.snapshot_kube().await, before, "bad input changed nothing");
}

async fn syncs_a_moved_tag_and_survives_a_registry_outage(postgres: bool) {
    let source = Distribution::start_with_basic_auth("alice", "pw").await;
    let target = Distribution::start().await;
    let app = TestApp::with_registry(postgres, &target, "mirror").await;
    images::push_image(&source, "team/app", "stable", &[500]).await;
    app.post(&format!("{BASE}/default/registry-secrets"), &secret("lab", &source.host(), "pw")).await;
    let mut repo = repository("app", "team/app", "stable", "lab");
    repo["spec"]["retryCount"] = json!(0);
    let (status, body) = app.post(&format!("{BASE}/default/repositories"), &repo).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.schedule_syncs().await;
    app.run_jobs().await;
    let (_, first) = app.get(&format!("{BASE}/default/repositories/app")).await;
    assert_eq!(first["status"]["syncStatus"], "Success", "{first}");

    // The upstream tag moves: the next sync brings the new digest.
    let moved = images::push_image(&source, "team/app", "stable", &[700]).await;
    app.post(&format!("{BASE}/default/repositories/app/sync"), &json!({})).await;
    app.run_jobs().await;
    let (_, second) = app.get(&format!("{BASE}/default/repositories/app")).await;
    assert_eq!(second["status"]["manifest"]["digest"], moved.digest, "{second}");
    let head = reqwest::Client::new()
        .head(format!("{}/v2/mirror/{}/team/app/manifests/stable", target.url(), source.host().replace(':', "_")))
        .header("accept", images::OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["docker-content-digest"].to_str().unwrap(), moved.digest);

    // The registry goes away: the sync fails with the reason, and a later sync still runs.
    let host = source.host();
    drop(source);
    app.post(&format!("{BASE}/default/repositories/app/sync"), &json!({})).await;
    app.run_jobs().await;
    let (_, failed) = app.get(&format!("{BASE}/default/repositories/app")).await;
    assert_eq!(failed["status"]["syncStatus"], "Failed", "{failed}");
    assert!(failed["status"]["message"].as_str().unwrap().contains(&host), "{failed}");
    let (_, body) = app.post(&format!("{BASE}/default/repositories/app/sync"), &json!({})).await;
    assert_eq!(body["message"], "Sync task submitted", "a failed sync does not block the next");
}
