//! The platform profile (seed 000): imports into a real internal registry, run by the real job runner.

use axum::http::StatusCode;
use serde_json::{Value, json};
use test_support::{Distribution, images};

use crate::harness::TestApp;

on_both_backends!(
    imports_a_single_platform_image,
    imports_every_platform_of_an_index,
    refuses_bad_imports_and_records_nothing,
    deletes_an_imported_image,
    cancels_a_queued_import,
    lists_with_the_seeds_parameters,
    records_exported_images,
    takes_progress_from_external_reporters,
    fails_an_import_whose_source_vanished,
    users_import_only_what_the_catalog_approves,
);

/// A user (not an admin) imports only approved images and tags, and never names a secret; anything else is
/// a 403 that files an approval request, and the server does not even contact the source.
async fn users_import_only_what_the_catalog_approves(postgres: bool) {
    let source = Distribution::start().await;
    let target = Distribution::start().await;
    let app = TestApp::with_registry(postgres, &target, "").await;
    images::push_image(&source, "team/app", "1.0", &[100]).await;
    let user = app.user_token("carol").await;
    let reference = format!("{}/team/app:1.0", source.host());

    let (status, answer) = app.post_as(&user, "/api/v1/images:import", &json!({ "source": reference })).await;
    assert_eq!((status, answer["state"].as_i64()), (StatusCode::FORBIDDEN, Some(0)), "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("does not approve this image"), "{answer}");
    let (_, requests) = app.get("/catalog/api/v1/approval-requests?status=pending").await;
    let filed = requests["requests"].as_array().unwrap().iter().find(|r| r["image_name"] == "app").cloned();
    let filed = filed.expect("an approval request was filed");
    assert_eq!((filed["tag"].as_str(), filed["requested_by"].as_str()), (Some("1.0"), Some("carol")), "{filed}");
    // Nobody asked the source anything for the refused request.
    let named = json!({ "source": reference, "registrySecret": { "namespace": "default", "name": "x" } });
    let (status, _) = app.post_as(&user, "/api/v1/images:import", &named).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "users never name secrets");

    // Approved (by the admin deciding the request), the image and tag import.
    let (status, decided) = app
        .post(&format!("/catalog/api/v1/approval-requests/{}/approve", filed["id"]), &json!({ "category": "app" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    let (status, answer) = app.post_as(&user, "/api/v1/images:import", &json!({ "source": reference })).await;
    assert_eq!((status, answer["state"].as_i64()), (StatusCode::OK, Some(1)), "{answer}");
    // Another tag of the approved image is not approved.
    let other = format!("{}/team/app:2.0", source.host());
    let (status, answer) = app.post_as(&user, "/api/v1/images:import", &json!({ "source": other })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("not in the image's approved tags"), "{answer}");
}

/// Replaces what differs between runs (times, ports, random digests and sizes) with markers.
fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let marker = match k.as_str() {
                        "createdTime" | "created_at" => Some("[time]"),
                        "registryHost" => Some("[registry]"),
                        "digest" if v.is_string() => Some("[digest]"),
                        "size" if v.as_u64().unwrap_or(0) > 0 => Some("[size]"),
                        _ => None,
                    };
                    (k.clone(), marker.map_or_else(|| redact(v), |m| Value::String(m.into())))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::String(_) => crate::harness::redact(value),
        other => other.clone(),
    }
}

async fn import(app: &TestApp, source: &str) -> (StatusCode, Value) {
    app.post("/api/v1/images:import", &json!({ "source": source })).await
}

async fn imports_a_single_platform_image(postgres: bool) {
    let source = Distribution::start().await;
    let target = Distribution::start().await;
    let app = TestApp::with_registry(postgres, &target, "mirror").await;
    let pushed = images::push_image(&source, "team/app", "1.0", &[2048, 4096]).await;
    let reference = format!("{}/team/app:1.0", source.host());

    let (status, body) = import(&app, &reference).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["alreadyImageId"].as_i64().unwrap();
    assert_eq!(body, json!({ "state": 1, "message": "Image import started", "alreadyImageId": id }));

    let (status, body) = import(&app, &reference).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((body["state"].as_i64(), body["alreadyImageId"].as_i64()), (Some(2), Some(id)), "{body}");

    let (_, listing) = app.get("/api/v1/images").await;
    assert_eq!(listing["images"][0]["artifacts"][0]["status"], "importing");

    assert_eq!(app.run_jobs().await, 1);

    let (status, listing) = app.get("/api/v1/images").await;
    assert_eq!(status, StatusCode::OK);
    insta::assert_json_snapshot!("platform_grouped", redact(&listing));
    let artifact = &listing["images"][0]["artifacts"][0];
    assert_eq!(artifact["digest"], pushed.digest);
    assert_eq!(artifact["size"], pushed.manifests[0].size);
    assert_eq!(listing["images"][0]["registryHost"], target.host());
    // Under the source's host: another registry's team/app would land elsewhere.
    assert_eq!(listing["images"][0]["repo"], format!("mirror/{}/team/app", source.host().replace(':', "_")));

    let (_, flat) = app.get("/api/v1/images?flat=true").await;
    insta::assert_json_snapshot!("platform_flat", redact(&flat));
    assert!(flat[0]["created_at"].is_i64(), "flat listings give Unix seconds");

    let (_, details) = app.get(&format!("/api/v1/images/{id}/importing-details")).await;
    let layers = details["layersDetail"].as_object().unwrap();
    assert_eq!(layers.len(), 3, "config and two layers: {details}");
    assert!(layers.values().all(|l| l == &json!({ "status": "completed", "progress": 100 })), "{details}");
    assert_eq!((details["status"].as_str(), details["attempts"].as_i64()), (Some("ready"), Some(1)));
    assert!(details.get("message").is_none(), "{details}");

    // The target holds the manifest byte for byte, under the same digest.
    let url = format!("{}/v2/mirror/{}/team/app/manifests/1.0", target.url(), source.host().replace(':', "_"));
    let response = reqwest::Client::new().get(url).header("accept", images::OCI_MANIFEST).send().await.unwrap();
    assert_eq!(response.headers()["docker-content-digest"].to_str().unwrap(), pushed.digest);
    assert_eq!(response.bytes().await.unwrap().as_ref(), pushed.bytes.as_slice());

    let (_, body) = import(&app, &reference).await;
    assert_eq!(body["state"], 2);
    assert_eq!(body["message"], format!("Image already exists (image {id})"));

    // The catalog knows the image now, pending approval, with the imported tag and its digest.
    let (_, catalog) = app.get("/catalog/api/v1/images?search=app&status=pending").await;
    assert_eq!(catalog["total"], 1, "{catalog}");
    let image_id = catalog["images"][0]["id"].as_i64().unwrap();
    let (_, details) = app.get(&format!("/catalog/api/v1/images/{image_id}")).await;
    assert_eq!(
        (details["registry"].as_str(), details["namespace"].as_str()),
        (Some(source.host().as_str()), Some("team"))
    );
    assert_eq!(details["tags"][0]["tag"], "1.0");
    assert_eq!(details["tags"][0]["digest"], pushed.digest);
}

async fn imports_every_platform_of_an_index(postgres: bool) {
    let source = Distribution::start().await;
    let target = Distribution::start().await;
    let app = TestApp::with_registry(postgres, &target, "").await;
    let pushed =
        images::push_index(&source, "multi", "v2", &[("linux", "amd64"), ("linux", "arm64")], &[1000, 3000], 5000)
            .await;
    let (_, body) = import(&app, &format!("{}/multi:v2", source.host())).await;
    assert_eq!(body["state"], 1, "{body}");
    app.run_jobs().await;

    let (_, listing) = app.get("/api/v1/images").await;
    let artifacts = listing["images"][0]["artifacts"].as_array().unwrap();
    let platforms: Vec<(&str, &str)> =
        artifacts.iter().map(|a| (a["os"].as_str().unwrap(), a["arch"].as_str().unwrap())).collect();
    assert_eq!(platforms, [("linux", "amd64"), ("linux", "arm64")]);
    assert!(artifacts.iter().all(|a| a["status"] == "ready" && a["id"] == body["alreadyImageId"]));
    let digests: Vec<&str> = artifacts.iter().map(|a| a["digest"].as_str().unwrap()).collect();
    assert_eq!(digests, pushed.manifests.iter().map(|m| m.digest.as_str()).collect::<Vec<_>>());

    let head = reqwest::Client::new()
        .head(format!("{}/v2/{}/multi/manifests/v2", target.url(), source.host().replace(':', "_")))
        .header("accept", images::OCI_INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.headers()["docker-content-digest"].to_str().unwrap(),
        pushed.digest,
        "the index digest is preserved"
    );
    let (_, details) = app.get(&format!("/api/v1/images/{}/importing-details", body["alreadyImageId"])).await;
    assert_eq!(
        details["layersDetail"].as_object().unwrap().len(),
        pushed.blobs().len(),
        "a shared layer is listed once"
    );
}

async fn refuses_bad_imports_and_records_nothing(postgres: bool) {
    let source = Distribution::start().await;
    let target = Distribution::start().await;
    let app = TestApp::with_registry(postgres, &target, "").await;
    let cases = [
        (json!({ "source": "Not A Reference" }), StatusCode::BAD_REQUEST, "invalid source"),
        (json!({ "source": "" }), StatusCode::BAD_REQUEST, "invalid source"),
        (
            json!({ "source": format!("{}/nothing/here:1", source.host()) }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "not found",
        ),
        (json!({ "source": "127.0.0.1:1/some/image:1" }), StatusCode::UNPROCESSABLE_ENTITY, "127.0.0.1:1"),
        (
            json!({ "source": "docker.io/library/redis:7", "sourceRegistry": "quay.io" }),
            StatusCode::BAD_REQUEST,
            "sourceRegistry",
        ),
        (json!({ "source": "x/y:1", "platforms": ["linux"] }), StatusCode::BAD_REQUEST, "platform"),
    ];
    for (body, expected, needle) in cases {
        let (status, answer) = app.post("/api/v1/images:import", &body).await;
        assert_eq!(status, expected, "{body}: {answer}");
        assert_eq!(answer["state"], 0, "{answer}");
        assert_eq!(answer["alreadyImageId"], 0);
        assert!(answer["message"].as_str().unwrap().contains(needle), "{body}: {answer}");
    }
    let (status, answer) = app.send("POST", "/api/v1/images:import", Some("{oops".into()), app.admin_token()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["message"].is_string());
    let (status, _) = app
        .send("POST", "/api/v1/images:import", Some(r#"{"source":"a:1","extra":1}"#.into()), app.admin_token())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, listing) = app.get("/api/v1/images").await;
    assert_eq!(listing, json!({ "totalCount": 0, "images": [] }));

    // A source that accepts connections and never answers: the request is answered within the check's
    // bound, not after the registry client's read timeout and retries.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_host = silent.local_addr().unwrap().to_string();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let started = std::time::Instant::now();
    let (status, answer) =
        app.post("/api/v1/images:import", &json!({ "source": format!("{silent_host}/slow/app:1") })).await;
    assert_eq!((status, answer["state"].as_i64()), (StatusCode::UNPROCESSABLE_ENTITY, Some(0)), "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("did not answer within 5 s"), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "took {:?}", started.elapsed());
    holder.abort();

    // A server that is no registry and answers with a page holding a secret: the answer says what
    // happened in our words, and nothing of the page reaches the client.
    let leaky = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let leaky_host = leaky.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut stream, _)) = leaky.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let page = r#"{"errors":[{"code":"X","message":"admin password is hunter2"}]} <b>hunter2</b>"#;
            let answer = format!(
                "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    let (status, answer) = app.post("/api/v1/images:import", &json!({ "source": format!("{leaky_host}/x/y:1") })).await;
    assert_eq!((status, answer["state"].as_i64()), (StatusCode::UNPROCESSABLE_ENTITY, Some(0)), "{answer}");
    assert!(!answer.to_string().contains("hunter2"), "an upstream body leaked: {answer}");
    assert!(answer["message"].as_str().unwrap().contains("500"), "the status is named: {answer}");
    server.abort();

    // Without an internal registry, imports are refused in the same shape.
    let bare = TestApp::sqlite().await;
    let (status, answer) = bare.post("/api/v1/images:import", &json!({ "source": "redis" })).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer["state"], 0);
}

async fn deletes_an_imported_image(postgres: bool) {
    let source = Distribution::start().await;
    let target = Distribution::start().await;
    let app = TestApp::with_registry(postgres, &target, "").await;
    images::push_image(&source, "del/me", "1", &[100]).await;
    let (_, body) = import(&app, &format!("{}/del/me:1", source.host())).await;
    let id = body["alreadyImageId"].as_i64().unwrap();

    let (status, body) = app.delete(&format!("/api/v1/images/{id}")).await;
    assert_eq!(status, StatusCode::CONFLICT, "not while importing: {body}");
    app.run_jobs().await;
    let (status, _) = app.post(&format!("/api/v1/images/{id}/cancel"), &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a finished import cannot be canceled");

    let (status, body) = app.delete(&format!("/api/v1/images/{id}")).await;
    assert_eq!((status, body), (StatusCode::OK, Value::Null), "200 with no body");
    let head = reqwest::Client::new()
        .head(format!("{}/v2/{}/del/me/manifests/1", target.url(), source.host().replace(':', "_")))
        .header("accept", images::OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status().as_u16(), 404, "the artifact is gone from the registry");
    let (_, listing) = app.get("/api/v1/images").await;
    assert_eq!(listing["totalCount"], 0);
    let (status, _) = app.delete(&format!("/api/v1/images/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.delete("/api/v1/images/abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn cancels_a_queued_import(postgres: bool) {
    let source = Distribution::start().await;
    let target = Distribution::start().await;
    let app = TestApp::with_registry(postgres, &target, "").await;
    images::push_image(&source, "stop/me", "1", &[100]).await;
    let (_, body) = import(&app, &format!("{}/stop/me:1", source.host())).await;
    let id = body["alreadyImageId"].as_i64().unwrap();
    let (status, body) = app.post(&format!("/api/v1/images/{id}/cancel"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "message": "Image import canceled", "id": id, "status": "failed" }));
    assert_eq!(app.run_jobs().await, 0, "the job left the queue");
    let (_, body) = import(&app, &format!("{}/stop/me:1", source.host())).await;
    assert_eq!(body["state"], 1, "a canceled import does not block a new one: {body}");
    let (status, _) = app.post("/api/v1/images/999/cancel", &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn lists_with_the_seeds_parameters(postgres: bool) {
    let source = Distribution::start().await;
    let target = Distribution::start().await;
    let app = TestApp::with_registry(postgres, &target, "").await;
    for tag in ["a", "b", "c"] {
        images::push_image(&source, "list/app", tag, &[10]).await;
        import(&app, &format!("{}/list/app:{tag}", source.host())).await;
    }
    let user = app.user_token("carol").await;
    images::push_image(&source, "list/other", "z", &[10]).await;
    // A user imports only what the catalog approves: the admin lists the image and its tag first.
    let (status, image) = app
        .post(
            "/catalog/api/v1/images",
            &json!({ "image_name": "other", "namespace": "list", "registry": source.host() }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{image}");
    let (status, _) = app.post(&format!("/catalog/api/v1/images/{}/tags", image["id"]), &json!({ "tag": "z" })).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, answer) = app
        .post_as(&user, "/api/v1/images:import", &json!({ "source": format!("{}/list/other:z", source.host()) }))
        .await;
    assert_eq!(answer["state"], 1, "{answer}");
    app.run_jobs().await;

    let tags = |body: &Value| -> Vec<String> {
        body["images"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["artifacts"].as_array().unwrap().iter().map(|a| a["imageTag"].as_str().unwrap().to_owned()))
            .collect()
    };
    let (_, body) = app.get("/api/v1/images?orderBy=tag&order=asc").await;
    assert_eq!(tags(&body), ["a", "b", "c", "z"]);
    assert_eq!(body["totalCount"], 4);
    let (_, body) = app.get("/api/v1/images?orderBy=tag&order=asc&page_num=1&page_size=2").await;
    assert_eq!(tags(&body), ["c", "z"]);
    assert_eq!(body["totalCount"], 4);
    let (_, body) = app.get("/api/v1/images?tag=b").await;
    assert_eq!(tags(&body), ["b"]);
    let (_, body) = app.get("/api/v1/images?userName=carol").await;
    assert_eq!(tags(&body), ["z"]);
    let (_, body) = app.get("/api/v1/images?ready=true&page_size=100").await;
    assert_eq!(body["totalCount"], 4);
    let (_, body) = app.get("/api/v1/images?ready=false").await;
    assert_eq!(body["totalCount"], 0);
    let (_, body) = app.get("/api/v1/images?order=desc&orderBy=id").await;
    assert_eq!(tags(&body), ["z", "c", "b", "a"]);
    for bad in [
        "page_num=-1",
        "page_size=0",
        "page_size=1000",
        "page_size=x",
        "order=sideways",
        "orderBy=colour",
        "ready=maybe",
        "flat=perhaps",
        "tag=bad%20tag",
    ] {
        let (status, body) = app.get(&format!("/api/v1/images?{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["message"].is_string());
    }
}

async fn records_exported_images(postgres: bool) {
    let target = Distribution::start().await;
    let app = TestApp::with_registry(postgres, &target, "").await;
    let (status, export) = app
        .post(
            "/api/v1/images/custom",
            &json!({ "target": "rocm/pytorch:20250112", "source": "rocm/pytorch:rocm6.2_ubuntu22.04_py3.10_pytorch_release_2.3.0", "status": "Running" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{export}");
    app.post("/api/v1/images/custom", &json!({ "target": "rocm/pytorch:20250113" })).await;
    let (status, _) =
        app.put(&format!("/api/v1/images/custom/{}", export["id"]), &json!({ "status": "Succeeded" })).await;
    assert_eq!(status, StatusCode::OK);

    let (_, body) = app.get("/api/v1/images/custom?ready=true").await;
    insta::assert_json_snapshot!("platform_custom", redact(&body));
    let (_, body) = app.get("/api/v1/images/custom").await;
    assert_eq!(body["totalCount"], 2);
    assert_eq!(body["images"].as_array().unwrap().len(), 1, "grouped by repository");

    for (method, path, body) in [
        ("POST", "/api/v1/images/custom", json!({ "target": "no-tag" })),
        ("POST", "/api/v1/images/custom", json!({ "target": "a:b", "status": "Done" })),
        ("PUT", "/api/v1/images/custom/999", json!({ "status": "Failed" })),
        ("PUT", &format!("/api/v1/images/custom/{}", export["id"]), json!({ "status": "finished" })),
    ] {
        let (status, answer) = app.send(method, path, Some(body.to_string()), app.admin_token()).await;
        assert!(status.is_client_error(), "{method} {path} {body}: {status} {answer}");
    }

    // A record is changed only by whoever recorded it, or an admin; every change is an audit event.
    let (dave, erin) = (app.user_token("dave").await, app.user_token("erin").await);
    let (status, mine) = app.post_as(&dave, "/api/v1/images/custom", &json!({ "target": "dave/app:1" })).await;
    assert_eq!(status, StatusCode::CREATED, "{mine}");
    let path = format!("/api/v1/images/custom/{}", mine["id"]);
    let change = json!({ "status": "Failed" }).to_string();
    let (status, answer) = app.send("PUT", &path, Some(change.clone()), Some(&erin)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, answer) = app.send("PUT", &path, Some(change), Some(&dave)).await;
    assert_eq!((status, answer["phase"].as_str()), (StatusCode::OK, Some("Failed")), "{answer}");
    let (_, events) = app.get("/catalog/api/v1/events?event_type=image.export.updated").await;
    let actors: Vec<&str> = events["events"].as_array().unwrap().iter().map(|e| e["actor"].as_str().unwrap()).collect();
    assert_eq!(actors, ["dave", "admin"], "newest first: {events}");
    assert_eq!(events["events"][0]["details"]["after"]["phase"], "Failed");
}

async fn takes_progress_from_external_reporters(postgres: bool) {
    let source = Distribution::start().await;
    let target = Distribution::start().await;
    let app = TestApp::with_registry(postgres, &target, "").await;
    images::push_image(&source, "ext/app", "3", &[10]).await;
    let (_, body) = import(&app, &format!("{}/ext/app:3", source.host())).await;
    let id = body["alreadyImageId"].as_i64().unwrap();
    let layer = format!("sha256:{}", "c".repeat(64));
    let report = json!({ "layersDetail": { &layer: { "status": "downloading", "progress": 45 } } });
    let name = format!("{}%2Fext%2Fapp:3", source.host().replace(':', "_"));
    let (status, answer) = app.put(&format!("/api/v1/images:import/{name}/progress"), &report).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, details) = app.get(&format!("/api/v1/images/{id}/importing-details")).await;
    assert_eq!(details["layersDetail"][&layer], json!({ "status": "downloading", "progress": 45 }));

    let (status, _) = app.put(&format!("/api/v1/images:import/{id}/progress"), &report).await;
    assert_eq!(status, StatusCode::OK, "an image id names it too");
    let bad = json!({ "layersDetail": { &layer: { "status": "dancing", "progress": 45 } } });
    let (status, _) = app.put(&format!("/api/v1/images:import/{id}/progress"), &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let bad = json!({ "layersDetail": { "layer1": { "status": "completed", "progress": 100 } } });
    let (status, _) = app.put(&format!("/api/v1/images:import/{id}/progress"), &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app.put("/api/v1/images:import/nobody:1/progress", &report).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn fails_an_import_whose_source_vanished(postgres: bool) {
    let source = Distribution::start().await;
    let target = Distribution::start().await;
    let app = TestApp::with_registry(postgres, &target, "").await;
    let pushed = images::push_image(&source, "gone/app", "1", &[10]).await;
    let (_, body) = import(&app, &format!("{}/gone/app:1", source.host())).await;
    let id = body["alreadyImageId"].as_i64().unwrap();
    let deleted = reqwest::Client::new()
        .delete(format!("{}/v2/gone/app/manifests/{}", source.url(), pushed.digest))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 202);
    app.run_jobs().await;
    let (_, listing) = app.get("/api/v1/images").await;
    assert_eq!(listing["images"][0]["artifacts"][0]["status"], "failed", "{listing}");
    let (_, details) = app.get(&format!("/api/v1/images/{id}/importing-details")).await;
    assert_eq!(details["status"], "failed");
    assert!(details["message"].as_str().unwrap_or("").contains("not found"), "{details}");
    // A failed import does not block a new one.
    images::push_image(&source, "gone/app", "1", &[10]).await;
    let (_, body) = import(&app, &format!("{}/gone/app:1", source.host())).await;
    assert_eq!(body["state"], 1, "{body}");
}
