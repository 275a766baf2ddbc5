//! Garbage in, 4xx out: thousands of generated malformed requests against every route of every profile,
//! each of which must answer below 500 with a JSON error in its profile's format (a `message` string, or
//! the station profile's `error.message`, or the console's HTML error page),
//! never a panic, and when refused must change nothing; and the server must still be ready afterwards.
//!
//! The requests come from a seeded generator, so a failure names a seed and a request that reproduce it
//! (`IMAGEGATE_GARBAGE_SEED=<seed> cargo nextest run -p api-http garbage` runs another seed).
//! Values that would make the server reach out to a registry (an import's source, a secret's domain) are
//! drawn from a fixed list of unreachable or invalid ones, so that the test needs no network.

use axum::http::StatusCode;
use rand::{RngExt as _, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde_json::{Map, Value, json};
use test_support::Distribution;

use crate::harness::TestApp;

/// Field names the profiles know, so that generated objects get past "unknown field" now and then.
const FIELDS: &[&str] = &[
    "name",
    "display_name",
    "description",
    "category",
    "registry",
    "repository",
    "status",
    "tag",
    "digest",
    "size",
    "is_recommended",
    "image_name",
    "image",
    "reason",
    "requested_by",
    "username",
    "password",
    "source",
    "sourceRegistry",
    "platforms",
    "imageName",
    "imageTag",
    "layersDetail",
    "phase",
    "progress",
    "state",
    "total",
    "done",
    "apiVersion",
    "kind",
    "metadata",
    "spec",
    "namespace",
    "domain",
    "provider",
    "insecure",
    "caBundle",
    "registryRef",
    "syncInterval",
    "syncTimeout",
    "retryCount",
    "displayName",
    "annotations",
    "labels",
    "id",
    "role",
    "currentPassword",
    "newPassword",
];

/// What a source, a domain or a registry may be: nothing reachable, nothing that needs DNS.
const OFFLINE_REFERENCES: &[&str] = &[
    "",
    "127.0.0.1:1/some/image:1",
    "127.0.0.1:1",
    "http://127.0.0.1:1",
    "NOT A REFERENCE",
    "127.0.0.1:1/UPPER/case:1",
    "127.0.0.1:1/a:b:c",
    "127.0.0.1:1/a@sha256:zz",
    "[::1]:1/x:1",
    "127.0.0.1:99999/x:1",
];

fn path_param(rng: &mut StdRng) -> String {
    let choices: &[&str] = &[
        "1",
        "0",
        "-1",
        "2",
        "99999999999999999999",
        "9223372036854775807",
        "-9223372036854775808",
        "abc",
        "1.5",
        "%00",
        "%FF",
        "..",
        "%2E%2E%2F",
        "default",
        "a-b",
        "UPPER",
        "x%20y",
        "%C3%BC",
        "1e3",
        "+1",
        "0x10",
    ];
    if rng.random_ratio(1, 20) {
        return "a".repeat(rng.random_range(64..5000));
    }
    choices.choose(rng).unwrap().to_string()
}

fn query(rng: &mut StdRng) -> String {
    let keys: &[&str] = &[
        "limit",
        "offset",
        "status",
        "category",
        "search",
        "page_num",
        "page_size",
        "orderBy",
        "order",
        "tag",
        "ready",
        "userName",
        "flat",
        "labelSelector",
        "user",
        "x",
    ];
    let values: &[&str] = &[
        "",
        "1",
        "-1",
        "0",
        "100000",
        "99999999999999999999",
        "abc",
        "%FF",
        "%00",
        "true",
        "maybe",
        "asc",
        "desc",
        "id",
        "name",
        "pending",
        "approved",
        "%25",
        "a%20b",
        "1.5",
    ];
    let n = rng.random_range(0..4);
    let pairs: Vec<String> =
        (0..n).map(|_| format!("{}={}", keys.choose(rng).unwrap(), values.choose(rng).unwrap())).collect();
    if pairs.is_empty() { String::new() } else { format!("?{}", pairs.join("&")) }
}

fn scalar(rng: &mut StdRng) -> Value {
    match rng.random_range(0..14) {
        0 => Value::Null,
        1 => json!(rng.random::<bool>()),
        2 => json!(rng.random_range(-3i64..100)),
        3 => json!(i64::MAX),
        4 => json!(i64::MIN),
        5 => json!(u64::MAX),
        6 => json!(1.5e308),
        7 => json!(-0.5),
        8 => json!(""),
        9 => json!("x".repeat(rng.random_range(200..70_000))),
        10 => json!("ünïcödé \u{0} \u{202e} 🐳"),
        11 => json!(["linux/amd64", "windows", ""].choose(rng).unwrap()),
        12 => json!(format!("sha256:{}", "ab".repeat(rng.random_range(0..40)))),
        _ => json!(["nginx", "redis", "1.0", "latest", "a b", "-x", "v1.2.3", "default"].choose(rng).unwrap()),
    }
}

fn value(rng: &mut StdRng, depth: u32) -> Value {
    if depth == 0 || rng.random_ratio(2, 3) {
        return scalar(rng);
    }
    if rng.random::<bool>() {
        Value::Array((0..rng.random_range(0..4)).map(|_| value(rng, depth - 1)).collect())
    } else {
        object(rng, depth - 1)
    }
}

fn object(rng: &mut StdRng, depth: u32) -> Value {
    let mut map = Map::new();
    for _ in 0..rng.random_range(0..7) {
        let key = if rng.random_ratio(1, 10) { "unknownField" } else { FIELDS.choose(rng).unwrap() };
        let v = match key {
            "source" | "domain" | "registry" | "sourceRegistry" => json!(OFFLINE_REFERENCES.choose(rng).unwrap()),
            _ => value(rng, depth),
        };
        map.insert(key.to_owned(), v);
    }
    Value::Object(map)
}

fn body(rng: &mut StdRng) -> String {
    match rng.random_range(0..12) {
        0 => String::new(),
        1 => "null".into(),
        2 => "[]".into(),
        3 => "{".into(),
        4 => "{\"name\": \"x\",}".into(),
        5 => "[".repeat(rng.random_range(100..20_000)),
        6 => String::from_utf8_lossy(&[0xff, 0xfe, b'{', b'}']).into_owned(),
        7 => json!({ "metadata": object(rng, 1), "spec": object(rng, 2) }).to_string(),
        _ => object(rng, 2).to_string(),
    }
}

/// What any accepted change shows in: the audit trail (every catalog, kube and user change writes an
/// event), the job queue, the imports, the exports and the users; read with `observer`, a token that no
/// generated request uses.
async fn fingerprint(app: &TestApp, observer: &str) -> Value {
    let get = |path: &'static str| app.send("GET", path, None, Some(observer));
    let (_, events) = get("/catalog/api/v1/events?limit=1").await;
    let (_, imports) = get("/api/v1/images?page_size=1").await;
    let (_, exports) = get("/api/v1/images/custom?page_size=1").await;
    let (_, users) = get("/api/v1/users").await;
    let jobs = app.store.job_types().await.unwrap();
    let fingerprint =
        json!([events["total"], imports["totalCount"], exports["totalCount"], users["users"], format!("{jobs:?}")]);
    assert!(events["total"].is_number() && users["users"].is_array(), "the observer cannot read: {fingerprint}");
    fingerprint
}

/// A token of `username`: `token` while it still works (a generated request may revoke it), a new one
/// otherwise.
async fn live_token(app: &TestApp, username: &str, token: &mut String) {
    if app.store.find_user_by_token(&api_http::auth::token_hash(token)).await.unwrap().is_some() {
        return;
    }
    let user = app.store.find_credentials(username).await.unwrap().expect("the user is still there").user;
    let (new, hash) = api_http::auth::new_token();
    app.store.create_token(user.id, &hash, "garbage", None).await.unwrap();
    *token = new;
}

async fn garbage_never_gets_a_5xx(postgres: bool) {
    let target = Distribution::start().await;
    let app = TestApp::with_registry(postgres, &target, "").await;
    // Something for the generated ids to hit now and then.
    let (status, _) = app.post("/api/v1/images:import", &json!({ "source": "127.0.0.1:1/x:1" })).await;
    assert!(status.is_client_error() || status == StatusCode::BAD_GATEWAY, "{status}");

    // A fixed seed, so that CI runs the same requests every time; set IMAGEGATE_GARBAGE_SEED to explore others.
    let seed: u64 = std::env::var("IMAGEGATE_GARBAGE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x1a9e_ca7e);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut user = app.user_token("mallory").await;
    let mut admin = app.admin_token().unwrap().to_owned();
    // Token ids 1 and 2 are the admin's and mallory's, which generated paths name now and then; the
    // observer's is 3, which they never do.
    let observer = {
        let (token, hash) = api_http::auth::new_token();
        let admin_id = app.store.find_credentials("admin").await.unwrap().unwrap().user.id;
        let issued = app.store.create_token(admin_id, &hash, "observer", None).await.unwrap();
        assert_eq!(issued.id.get(), 3);
        token
    };
    let mut answered = [0usize; 6];
    let initially = fingerprint(&app, &observer).await;
    // The router's own table: a route added to a profile is covered without a change here, and the first
    // pass visits every route at least once.
    let routes = api_http::routes();
    assert!(routes.len() >= 30, "the route table looks empty: {routes:?}");
    let mut visited = std::collections::BTreeSet::new();
    let mut visited_as_user = std::collections::BTreeSet::new();
    for i in 0..1500 {
        // The first two passes visit every route as an admin, then as a user; then routes and callers mix.
        let route = if i < 2 * routes.len() { &routes[i % routes.len()] } else { routes.choose(&mut rng).unwrap() };
        visited.insert(route.clone());
        let method = route.method;
        let mut path = route.fill(|_| path_param(&mut rng));
        path.push_str(&query(&mut rng));
        let body = if method == "GET" || method == "DELETE" { None } else { Some(body(&mut rng)) };
        live_token(&app, "mallory", &mut user).await;
        live_token(&app, "admin", &mut admin).await;
        let token = match rng.random_range(0..8) {
            _ if i < routes.len() => Some(admin.as_str()),
            _ if i < 2 * routes.len() => Some(user.as_str()),
            0..=1 => Some(user.as_str()),
            2 => Some("igt_not-a-token"),
            _ => Some(admin.as_str()),
        };
        if token == Some(user.as_str()) {
            visited_as_user.insert(route.clone());
        }
        let before = fingerprint(&app, &observer).await;
        let (status, answer) = app.send(method, &path, body.clone(), token).await;
        let described = format!(
            "request {i} of seed {seed:#x}: {method} {path} with {} → {status} {answer}",
            body.as_deref().map_or("no body".into(), |b| format!("{} bytes: {:.200}", b.len(), b))
        );
        assert!(status.as_u16() < 500 || status == StatusCode::BAD_GATEWAY, "{described}");
        if status.is_client_error() {
            // The station profile nests its message: `{"error": {"code": <status>, "message"}}`.
            let station = answer["error"]["code"] == status.as_u16() && answer["error"]["message"].is_string();
            // The console answers with a page that says what went wrong.
            let page = route.path.starts_with("/console")
                && answer.as_str().is_some_and(|page| page.contains(r#"<p class="error-message" role="alert">"#));
            assert!(answer["message"].is_string() || station || page, "an error without a message: {described}");
            assert_eq!(fingerprint(&app, &observer).await, before, "a refused request changed something: {described}");
        }
        answered[(status.as_u16() / 100) as usize] += 1;
    }
    assert_eq!(visited.len(), routes.len(), "every route gets garbage");
    assert_eq!(visited_as_user.len(), routes.len(), "every route gets garbage from a user too");
    eprintln!("1500 requests: 2xx {}, 4xx {}, 502 {}", answered[2], answered[4], answered[5]);
    assert!(answered[4] > 1000, "the generator should mostly make bad requests: {answered:?}");
    // The fingerprint does see changes: some generated requests were good enough to make one.
    assert_ne!(fingerprint(&app, &observer).await, initially, "nothing accepted changed the fingerprint");
    let (status, _) = app.send("GET", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

on_both_backends!(garbage_never_gets_a_5xx);
