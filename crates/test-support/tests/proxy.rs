//! The test proxy against a real registry: forwarding both ways, faults, throttling, corruption, counting.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use test_support::images::{random_bytes, sha256};
use test_support::{Distribution, proxy::Proxy};

/// Uploads a blob through `base` (POST, then a monolithic PUT to the `Location`), returning its digest.
async fn upload(http: &reqwest::Client, base: &str, repo: &str, bytes: Vec<u8>) -> (String, String) {
    let digest = sha256(&bytes);
    let start = http.post(format!("{base}/v2/{repo}/blobs/uploads/")).send().await.unwrap();
    assert_eq!(start.status(), StatusCode::ACCEPTED);
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    let absolute = if location.starts_with('/') { format!("{base}{location}") } else { location.clone() };
    let sep = if absolute.contains('?') { '&' } else { '?' };
    let put = http
        .put(format!("{absolute}{sep}digest={}", digest.replace(':', "%3A")))
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED, "{:?}", put.text().await);
    (digest, location)
}

#[tokio::test(flavor = "multi_thread")]
async fn forwards_both_ways_rewrites_locations_and_counts() {
    let registry = Distribution::start().await;
    let proxy = Proxy::start(&registry.url()).await;
    assert_eq!(proxy.url(), format!("http://{}", proxy.host()));
    assert_ne!(proxy.host(), registry.host());
    let http = reqwest::Client::new();

    let bytes = random_bytes(3 * 1024 * 1024 + 17);
    let (digest, location) = upload(&http, &proxy.url(), "team/app", bytes.clone()).await;
    assert!(!location.contains(&registry.host()), "Location still names the upstream: {location}");
    assert_eq!(proxy.completed_uploads().into_iter().collect::<Vec<_>>(), [(digest.clone(), 1)]);

    // The registry has it, and it comes back through the proxy byte for byte.
    let direct = http.head(format!("{}/v2/team/app/blobs/{digest}", registry.url())).send().await.unwrap();
    assert_eq!(direct.status(), StatusCode::OK);
    let head = http.head(format!("{}/v2/team/app/blobs/{digest}", proxy.url())).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], bytes.len().to_string().as_str());
    let got = http.get(format!("{}/v2/team/app/blobs/{digest}", proxy.url())).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().await.unwrap().as_ref(), bytes.as_slice());

    let log = proxy.requests();
    let summary: Vec<(&str, u16)> = log.iter().map(|r| (r.method.as_str(), r.status)).collect();
    assert_eq!(summary, [("POST", 202), ("PUT", 201), ("HEAD", 200), ("GET", 200)]);
    assert!(log.iter().all(|r| !r.injected));
    assert_eq!(log[1].query_param("digest").as_deref(), Some(digest.as_str()));
    assert_eq!(log[3].blob_digest(), Some(digest.as_str()));
    assert_eq!(proxy.blob_gets().into_iter().collect::<Vec<_>>(), [(digest.clone(), 1)]);
    assert_eq!(proxy.count("GET", &digest), 1);
    assert_eq!(proxy.count("", "/blobs/"), 4);
    proxy.clear_requests();
    assert!(proxy.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn injects_faults_for_the_next_matching_requests_then_forwards() {
    let registry = Distribution::start().await;
    let proxy = Proxy::start(&registry.host()).await;
    let http = reqwest::Client::new();
    let v2 = format!("{}/v2/", proxy.url());

    proxy.fail_next("GET", "/v2/", 503, 2, None);
    proxy.fail_next("HEAD", "/manifests/", 429, 1, Some(1));
    assert_eq!(proxy.faults_left(), 3);
    // A HEAD of /v2/ matches neither rule.
    assert_eq!(http.head(&v2).send().await.unwrap().status(), StatusCode::OK);
    let first = http.get(&v2).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(first.text().await.unwrap().contains("UNAVAILABLE"));
    assert_eq!(http.get(&v2).send().await.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(http.get(&v2).send().await.unwrap().status(), StatusCode::OK);

    let manifest = format!("{}/v2/team/app/manifests/1", proxy.url());
    let limited = http.head(&manifest).send().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(http.head(&manifest).send().await.unwrap().status(), StatusCode::NOT_FOUND, "forwarded again");
    assert_eq!(proxy.faults_left(), 0);
    assert_eq!(proxy.injected().into_iter().collect::<Vec<_>>(), [(429, 1), (503, 2)]);

    proxy.fail_next("", "/v2/", 502, 5, None);
    assert_eq!(http.delete(&v2).send().await.unwrap().status(), StatusCode::BAD_GATEWAY, "any method");
    proxy.clear_faults();
    assert_eq!(http.get(&v2).send().await.unwrap().status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn throttles_and_corrupts_blob_downloads() {
    let registry = Distribution::start().await;
    let http = reqwest::Client::new();
    let bytes = random_bytes(256 * 1024);
    let (digest, _) = upload(&http, &registry.url(), "team/app", bytes.clone()).await;
    let proxy = Proxy::start(&registry.url()).await;
    let blob = format!("{}/v2/team/app/blobs/{digest}", proxy.url());

    proxy.throttle(512 * 1024);
    let started = Instant::now();
    let got = http.get(&blob).send().await.unwrap().bytes().await.unwrap();
    let took = started.elapsed();
    assert_eq!(got.as_ref(), bytes.as_slice());
    assert!(took >= Duration::from_millis(400), "256 KiB at 512 KiB/s took only {took:?}");
    // Manifests and the like are not throttled.
    let started = Instant::now();
    http.get(format!("{}/v2/", proxy.url())).send().await.unwrap().bytes().await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(400));
    proxy.throttle(0);
    let started = Instant::now();
    http.get(&blob).send().await.unwrap().bytes().await.unwrap();
    assert!(started.elapsed() < took, "no limit after throttle(0)");

    proxy.corrupt_blob(&digest);
    let bad = http.get(&blob).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(bad.len(), bytes.len());
    assert_eq!(bad[0], bytes[0] ^ 0xff);
    assert_eq!(bad[1..], bytes[1..]);
    assert_ne!(sha256(&bad), digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn stops_when_dropped() {
    let registry = Distribution::start().await;
    let proxy = Proxy::start(&registry.url()).await;
    let url = format!("{}/v2/", proxy.url());
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    assert_eq!(http.get(&url).send().await.unwrap().status(), StatusCode::OK);
    drop(proxy);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fresh = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    assert!(fresh.get(&url).send().await.is_err(), "the proxy still answers");
}
