//! The station profile's images (seed 003): search of the local, curated (`qnap`) and official lists,
//! download from Docker Hub (through a mirror), the curated list and a private registry, download
//! status, and delete, against real Distribution registries.

use axum::http::StatusCode;
use serde_json::{Value, json};
use test_support::{Distribution, images};

use crate::harness::{TestApp, redact};

async fn login(app: &TestApp) -> String {
    let body = json!({"username": "admin", "password": crate::harness::ADMIN_PASSWORD}).to_string();
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/api/v1/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(body))
        .unwrap();
    let (status, headers, answer) = app.call_full(req).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
}

/// A request with the session cookie and, when given, a body sent as curl's `-d` sends it.
async fn call(app: &TestApp, cookie: &str, method: &str, path: &str, body: Option<&str>) -> (StatusCode, Value) {
    let mut req = axum::http::Request::builder().method(method).uri(path).header("cookie", cookie);
    if body.is_some() {
        req = req.header("content-type", "application/x-www-form-urlencoded");
    }
    let req = req.body(axum::body::Body::from(body.unwrap_or_default().to_owned())).unwrap();
    let (status, _, answer) = app.call_full(req).await;
    (status, answer)
}

fn assert_envelope(status: StatusCode, body: &Value, code: u16) {
    assert_eq!(status.as_u16(), code, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

fn names(body: &Value) -> Vec<String> {
    body["results"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_owned()).collect()
}

/// Sizes differ with the random test images: the snapshot shows that they are whole numbers.
fn redact_sizes(mut body: Value) -> Value {
    for item in body["results"].as_array_mut().unwrap() {
        if let Some(sizes) = item["size"].as_array_mut() {
            for size in sizes {
                assert!(size.as_u64().is_some_and(|s| s > 0), "{size}");
                *size = "[size]".into();
            }
        }
    }
    body
}

async fn station_image_walk(postgres: bool) {
    let internal = Distribution::start().await;
    let hub = Distribution::start().await;
    let lab = Distribution::start().await;
    let diamond = images::push_image(&hub, "lgsd/diamond", "latest", &[1024, 2048]).await;
    images::push_image(&hub, "library/redis", "7-alpine", &[512]).await;
    images::push_image(&lab, "team/app", "1.0", &[256]).await;
    let search = test_support::docker_hub::DockerHubSearch::start().await;
    let station = api_http::profile::station::StationConfig {
        docker_hub_mirror: Some(hub.host()),
        docker_hub_url: search.url().to_owned(),
        ..Default::default()
    };
    let app = TestApp::with_station(postgres, &internal, station).await;
    let cookie = login(&app).await;

    let (status, body) = call(&app, &cookie, "GET", "/api/v1/image/?category=local", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    insta::assert_json_snapshot!("station_search_local_empty", body);
    let (_, body) = call(&app, &cookie, "GET", "/api/v1/image/downloadstatus", None).await;
    assert_eq!(body, json!([]));

    // The seed's download, through the Docker Hub mirror; its status while it waits for a worker.
    let meta = r#"{"description": "I am description.", "location": "https://registry.hub.docker.com/u/lgsd/diamond/",
        "icon": "http://download.qnap.com/QPKG/images/QPKG/container_icon.png"}"#;
    let path = "/api/v1/image/dockerhub/docker/lgsd/diamond/latest/download";
    let (status, body) = call(&app, &cookie, "POST", path, Some(meta)).await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({})));
    let (_, body) = call(&app, &cookie, "GET", "/api/v1/image/downloadstatus", None).await;
    insta::assert_json_snapshot!("station_download_status", body);
    let (status, body) = call(&app, &cookie, "POST", path, Some(meta)).await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({})), "a second download of one image is the same one");
    // Once a worker reports the layers' sizes, `percent` is what is done of them all.
    let (_, flat) = app.get("/api/v1/images?flat=true").await;
    let id: image_core::import::ImportId = flat[0]["id"].as_i64().unwrap().to_string().parse().unwrap();
    let layer = |digest: &str, size, done, state| image_core::import::LayerProgress {
        digest: digest.parse().unwrap(),
        size,
        done,
        state,
        via: None,
    };
    use image_core::import::LayerState::{Completed, Downloading};
    let layers = [
        layer(&format!("sha256:{}", "a".repeat(64)), 300, 300, Completed),
        layer(&format!("sha256:{}", "b".repeat(64)), 700, 50, Downloading),
    ];
    app.store.record_import_progress(id, None, &[], &layers).await.unwrap();
    let (_, body) = call(&app, &cookie, "GET", "/api/v1/image/downloadstatus", None).await;
    assert_eq!(body, json!([{"name": "lgsd/diamond", "percent": 35, "status": "downloading"}]));
    assert!(app.run_jobs().await >= 1);
    let (_, body) = call(&app, &cookie, "GET", "/api/v1/image/downloadstatus", None).await;
    assert_eq!(body, json!([]));

    // The curated list is the approved catalog; Docker Official Images are `official`.
    let (status, body) = call(&app, &cookie, "GET", "/api/v1/image/?category=qnap", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total_count"], body["results"].as_array().unwrap().len());
    insta::assert_json_snapshot!("station_search_qnap_first", body["results"][0]);
    let (_, official) = call(&app, &cookie, "GET", "/api/v1/image/?category=official", None).await;
    insta::assert_json_snapshot!("station_search_official_first", official["results"][0]);
    assert!(!names(&official).contains(&"grafana/grafana".to_owned()), "grafana is not official");
    assert!(names(&body).contains(&"grafana/grafana".to_owned()));
    let redis = body["results"].as_array().unwrap().iter().find(|i| i["name"] == "redis").unwrap().clone();
    assert_eq!(redis["installed"], false);

    // Download from the curated list: the catalog's own source (Docker Hub, so the mirror).
    let (status, body) =
        call(&app, &cookie, "POST", "/api/v1/image/qnap/docker/redis/7-alpine/download", Some("")).await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({})));
    app.run_jobs().await;
    let (_, body) = call(&app, &cookie, "GET", "/api/v1/image/?category=qnap&filter_text=REDIS", None).await;
    assert_eq!(names(&body), ["redis"], "filter_text matches names, case-insensitively");
    assert_eq!(body["results"][0]["installed"], true);

    // From a private registry named in the query.
    let add = json!({"method": "add", "name": "My Lab", "url": lab.url(), "enable_trust_cert": false, "version": "v2"});
    let (status, body) = call(&app, &cookie, "POST", "/api/v1/registry", Some(&add.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = "/api/v1/image/private/docker/team/app/1.0/download?registry_name=My%20Lab";
    let (status, body) = call(&app, &cookie, "POST", path, None).await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({})));
    app.run_jobs().await;

    let (status, body) = call(&app, &cookie, "GET", "/api/v1/image/?category=local", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    insta::assert_json_snapshot!("station_search_local", redact(&redact_sizes(body.clone())));
    let item = body["results"].as_array().unwrap().iter().find(|i| i["name"] == "lgsd/diamond").unwrap();
    assert_eq!(item["size"][0], diamond.manifests[0].size);
    assert_eq!(item["description"], "I am description.");
    assert_eq!(item["icon"], "http://download.qnap.com/QPKG/images/QPKG/container_icon.png");
    let kept = app.store.downloads().await.unwrap();
    assert_eq!(kept.len(), 1, "only the download that said where and which icon: {kept:?}");
    let kept = kept.values().next().unwrap();
    assert_eq!(kept.location, "https://registry.hub.docker.com/u/lgsd/diamond/");
    let (_, body) = call(&app, &cookie, "GET", "/api/v1/image/?category=local&filter_text=description", None).await;
    assert_eq!(names(&body), ["lgsd/diamond"]);
    let (_, body) = call(&app, &cookie, "GET", "/api/v1/image/?category=local&type=lxc", None).await;
    assert_eq!(
        (body["results"].clone(), body["total_count"].clone(), body["type"].clone()),
        (json!([]), json!(0), json!("lxc"))
    );

    // Docker Hub's search (a stand-in answering as its /v1/search does), kept for a minute.
    let (status, body) = call(&app, &cookie, "GET", "/api/v1/image/?category=dockerhub&filter_text=dorowu", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    insta::assert_json_snapshot!("station_search_dockerhub", body);
    let (_, again) = call(&app, &cookie, "GET", "/api/v1/image/?category=dockerhub&filter_text=dorowu", None).await;
    assert_eq!(again, body);
    assert_eq!(search.searches(), 1, "the second search came from the cache");
    let (_, body) = call(&app, &cookie, "GET", "/api/v1/image/?category=dockerhub&filter_text=redis", None).await;
    assert_eq!(body["results"][0]["installed"], true, "{body}");
    assert_eq!(body["results"][0]["location"], "https://registry.hub.docker.com/_/redis/");

    // A private registry's repositories.
    let (status, body) =
        call(&app, &cookie, "GET", "/api/v1/image/?category=private&registry_name=My%20Lab", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    insta::assert_json_snapshot!("station_search_private", body);
    let (_, body) =
        call(&app, &cookie, "GET", "/api/v1/image/?category=private&registry_name=My%20Lab&filter_text=nothing", None)
            .await;
    assert_eq!(body["results"], json!([]));

    // Tags, from Docker Hub (through the mirror) by default, or a station registry.
    images::push_image(&hub, "lgsd/diamond", "1.0", &[128]).await;
    let (status, body) =
        call(&app, &cookie, "GET", "/api/v1/image/lgsd/diamond/tags?registry=Docker%20Hub", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    insta::assert_json_snapshot!("station_tags", body);
    let (_, body) = call(&app, &cookie, "GET", "/api/v1/image/team/app/tags?registry=My%20Lab", None).await;
    assert_eq!(body, json!({"installed": ["1.0"], "name": "team/app", "tags": ["1.0"]}));

    // Inspect: the local image's config in Docker's inspect shape; remote_inspect the source's.
    let (status, body) = call(&app, &cookie, "GET", "/api/v1/image/docker/lgsd/diamond/latest/inspect", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["Remote"].clone(), body["Architecture"].clone(), body["Os"].clone()),
        (json!(false), json!("amd64"), json!("linux"))
    );
    assert!(body["VirtualSize"].as_u64().is_some_and(|s| s > 3000), "{body}");
    assert_eq!(body["Id"].as_str().unwrap().len(), 64);
    let mut shape = body.clone();
    for key in ["Id", "VirtualSize", "Created"] {
        shape[key] = format!("[{key}]").into();
    }
    // Each test image's config carries a random label, so that no two share a digest.
    assert!(shape["Config"]["Labels"]["nonce"].is_string(), "{shape}");
    shape["Config"]["Labels"] = "[nonce]".into();
    insta::assert_json_snapshot!("station_inspect", shape);
    let (status, remote) =
        call(&app, &cookie, "GET", "/api/v1/image/docker/lgsd/diamond/latest/remote_inspect", None).await;
    assert_eq!(status, StatusCode::OK, "{remote}");
    assert_eq!(
        (remote["Remote"].clone(), remote["Size"].clone(), remote["VirtualSize"].clone()),
        (json!(true), json!(0), json!(0))
    );
    assert_eq!(remote["Id"], body["Id"], "the same image");
    let (status, remote) =
        call(&app, &cookie, "GET", "/api/v1/image/docker/team/app/1.0/remote_inspect?registry=My%20Lab", None).await;
    assert_eq!((status, remote["Remote"].clone()), (StatusCode::OK, json!(true)));
    for (path, code) in [
        ("/api/v1/image/docker/lgsd/diamond/2.0/inspect", 404),
        ("/api/v1/image/docker/nothing/latest/remote_inspect", 404),
        ("/api/v1/image/docker/team/app/1.0/remote_inspect?registry=nothing", 404),
        ("/api/v1/image/nothing/here/tags", 404),
        ("/api/v1/image/redis/tags?registry=nothing", 404),
        ("/api/v1/image/docker/redis/bad%20tag/inspect", 400),
        ("/api/v1/image/docker/latest/inspect", 400),
        ("/api/v1/image/lxc/redis/latest/inspect", 404),
        ("/api/v1/image/redis/elsewhere", 404),
        ("/api/v1/image/?category=private&registry_name=nothing", 404),
        ("/api/v1/image/?category=private&registry_name=Docker%20Hub", 400),
    ] {
        let (status, body) = call(&app, &cookie, "GET", path, None).await;
        assert_envelope(status, &body, code);
    }

    // A user downloads what the catalog approves; anything else is a 403 that files an approval request.
    let user = app.user_token("ursula").await;
    let (status, body) = app.post_as(&user, "/api/v1/image/qnap/docker/redis/7-alpine/download", &json!({})).await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({})));
    let (status, body) =
        app.post_as(&user, "/api/v1/image/dockerhub/docker/lgsd/diamond/latest/download", &json!({})).await;
    assert_envelope(status, &body, 403);
    assert!(body["error"]["message"].as_str().unwrap().contains("approval request"), "{body}");
    let (_, requests) = app.get("/catalog/api/v1/approval-requests").await;
    assert!(requests.to_string().contains("diamond"), "{requests}");

    // Bad input: a 4xx in the envelope, and nothing queued.
    let before = (
        app.get("/api/v1/images?flat=true&page_size=100").await.1,
        app.get("/catalog/api/v1/events?limit=1").await.1["total"].clone(),
    );
    for (method, path, body, code) in [
        ("POST", "/api/v1/image/elsewhere/docker/redis/7/download", None, 400),
        ("POST", "/api/v1/image/dockerhub/lxc/redis/7/download", None, 400),
        ("POST", "/api/v1/image/dockerhub/docker/redis/7", None, 404),
        ("POST", "/api/v1/image/dockerhub/docker/redis/bad%20tag/download", None, 400),
        ("POST", "/api/v1/image/dockerhub/docker/Not_Valid/1/download", None, 400),
        ("POST", "/api/v1/image/dockerhub/docker/nothing/here/1/download", None, 404),
        ("POST", "/api/v1/image/dockerhub/docker/redis/7/download", Some("not json"), 400),
        ("POST", "/api/v1/image/dockerhub/docker/redis/7/download", Some(r#"{"colour": "red"}"#), 400),
        ("POST", "/api/v1/image/qnap/docker/lgsd/diamond/latest/download", None, 404),
        ("POST", "/api/v1/image/private/docker/team/app/1.0/download", None, 400),
        ("POST", "/api/v1/image/private/docker/team/app/1.0/download?registry_name=nothing", None, 404),
        ("GET", "/api/v1/image/?category=everything", None, 400),
        ("GET", "/api/v1/image/?type=vm", None, 400),
        ("GET", "/api/v1/image/?category=private", None, 400),
        ("GET", "/api/v1/image/?colour=red", None, 400),
        ("DELETE", "/api/v1/image/local/docker/nothing/here", None, 404),
        ("DELETE", "/api/v1/image/local/lxc/lgsd/diamond", None, 404),
    ] {
        let (status, answer) = call(&app, &cookie, method, path, body).await;
        assert_envelope(status, &answer, code);
    }
    let after = (
        app.get("/api/v1/images?flat=true&page_size=100").await.1,
        app.get("/catalog/api/v1/events?limit=1").await.1["total"].clone(),
    );
    assert_eq!(after, before, "refused requests change nothing");
    let (status, body) = app.send("DELETE", "/api/v1/image/local/docker/lgsd/diamond", None, Some(&user)).await;
    assert_envelope(status, &body, 403);

    // Delete: gone from the registry and the listings; a second time it is not found.
    let (status, body) = call(&app, &cookie, "DELETE", "/api/v1/image/local/docker/lgsd/diamond", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    insta::assert_json_snapshot!("station_delete", body);
    let (_, body) = call(&app, &cookie, "GET", "/api/v1/image/?category=local", None).await;
    assert!(!names(&body).contains(&"lgsd/diamond".to_owned()), "{body}");
    let (status, body) = call(&app, &cookie, "DELETE", "/api/v1/image/local/docker/lgsd/diamond", None).await;
    assert_envelope(status, &body, 404);
    assert_eq!(body["error"]["message"], "Image not found: lgsd/diamond");
    let gone = reqwest::get(format!("{}/v2/lgsd/diamond/manifests/latest", internal.url())).await.unwrap();
    assert_eq!(gone.status(), reqwest::StatusCode::NOT_FOUND);

    // Docker Hub unreachable: a 503 in the envelope.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let station = api_http::profile::station::StationConfig {
        docker_hub_url: format!("http://127.0.0.1:{port}/v1/search"),
        ..Default::default()
    };
    let offline = TestApp::with_station(postgres, &internal, station).await;
    let cookie = login(&offline).await;
    let (status, body) =
        call(&offline, &cookie, "GET", "/api/v1/image/?category=dockerhub&filter_text=redis", None).await;
    assert_envelope(status, &body, 503);
    let (_, body) = call(&offline, &cookie, "GET", "/api/v1/image/?category=dockerhub&type=lxc", None).await;
    assert_eq!(body["results"], json!([]));
}

on_both_backends!(station_image_walk);
