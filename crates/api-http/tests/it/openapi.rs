//! The OpenAPI document: the checked-in `docs/openapi.json` is the generated one, `GET /openapi.json` serves
//! it, and a real server answers every operation as the document says.
//!
//! The last is property-based: for every operation, requests generated from the document (path and query
//! parameters, JSON bodies derived from the request schema, some valid-looking, some garbage) are sent as an
//! admin and as anonymous, and every answer must be below 500 (502 only where documented: a source that
//! cannot be reached), of a status the operation documents, and of its documented schema. The generator is
//! seeded (`IMAGEGATE_OPENAPI_SEED` explores others), so a failure names a request that reproduces it.
//! Values that would make the server reach out (an import's source, a secret's domain, a ping's URL) are
//! drawn from loopback addresses nothing listens on, so the test needs no network.

use std::collections::HashMap;

use api_http::auth;
use axum::{
    body::Body,
    http::{Request, header},
};
use http_body_util::BodyExt;
use rand::{RngExt as _, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde_json::{Map, Value, json};
use test_support::Distribution;

use crate::harness::TestApp;

/// Cases per operation and caller: with about seventy operations and two callers, a few hundred requests.
const CASES: usize = 4;

/// Fields whose value the server may connect to: only addresses where nothing listens.
const OUTBOUND: &[&str] = &["source", "sourceRegistry", "domain", "url", "registry", "registry_host", "repository"];

const OFFLINE: &[&str] = &[
    "127.0.0.1:1/some/image:1",
    "127.0.0.1:1",
    "http://127.0.0.1:1",
    "https://127.0.0.1:1",
    "127.0.0.1:1/team/app",
    "NOT A REFERENCE",
    "",
];

/// Strings that look like what the API takes, and some that do not.
const WORDS: &[&str] = &[
    "redis",
    "nginx",
    "approved",
    "pending",
    "rejected",
    "admin",
    "user",
    "default",
    "station",
    "1",
    "7-alpine",
    "latest",
    "sha256:0000000000000000000000000000000000000000000000000000000000000000",
    "linux/amd64",
    "30m",
    "1h",
    "add",
    "edit",
    "true",
    "",
    " ",
    "UPPER case",
    "a/b/c",
    "%00",
    "\u{0}",
    "ü",
    "2024-01-01T00:00:00Z",
];

/// A value for a path parameter: one that names something plausible, or garbage.
fn path_value(rng: &mut StdRng, name: &str, path: &str) -> String {
    if rng.random_ratio(1, 3) {
        let garbage = ["0", "-1", "abc", "99999999999999999999", "%FF", "..", "a%2Fb", "%20"];
        return garbage.choose(rng).unwrap().to_string();
    }
    match name {
        "namespace" => ["default", "_all_", "station"].choose(rng).unwrap().to_string(),
        "name" if path.contains(":import") => "127.0.0.1:1/some/image:1".replace('/', "%2F"),
        "name" => ["nothing-here", "admin", "user-1"].choose(rng).unwrap().to_string(),
        // The station's image paths: a reference on a loopback port nothing listens on, then an action.
        "path" => [
            "127.0.0.1:1/x/tags",
            "127.0.0.1:1/x:1/inspect",
            "127.0.0.1:1/x:1/remote_inspect",
            "127.0.0.1:1/x:1/download",
            "127.0.0.1:1/x:1",
            "nothing",
        ]
        .choose(rng)
        .unwrap()
        .to_string(),
        _ => rng.random_range(1..4).to_string(),
    }
}

fn string_for(rng: &mut StdRng, field: &str) -> String {
    if OUTBOUND.contains(&field) {
        return OFFLINE.choose(rng).unwrap().to_string();
    }
    if rng.random_ratio(1, 25) {
        return "x".repeat(rng.random_range(200..3000));
    }
    WORDS.choose(rng).unwrap().to_string()
}

/// `schema` with its `$ref` followed into the document's components.
fn resolve<'a>(schema: &'a Value, components: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap();
            resolve(&components["schemas"][name], components)
        }
        None => schema,
    }
}

/// A value of `schema` (valid-looking), or now and then of another type.
fn generate(rng: &mut StdRng, schema: &Value, components: &Value, field: &str, depth: usize) -> Value {
    let schema = resolve(schema, components);
    if rng.random_ratio(1, 12) || depth > 4 {
        return garbage(rng, field);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let option = options.choose(rng).unwrap();
            return generate(rng, option, components, field, depth + 1);
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let Some(&kind) = types.choose(rng) else { return garbage(rng, field) };
    match kind {
        "null" => Value::Null,
        "boolean" => rng.random_bool(0.5).into(),
        "integer" => [0i64, 1, 2, 5, -1, 1000, i64::MAX].choose(rng).unwrap().to_owned().into(),
        "number" => 1.5.into(),
        "string" => string_for(rng, field).into(),
        "array" => {
            let items = schema.get("items").cloned().unwrap_or(json!({"type": "string"}));
            (0..rng.random_range(0..3)).map(|_| generate(rng, &items, components, field, depth + 1)).collect()
        }
        "object" => {
            let mut object = Map::new();
            let required: Vec<&str> =
                schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            if let Some(properties) = schema["properties"].as_object() {
                for (name, property) in properties {
                    if required.contains(&name.as_str()) || rng.random_bool(0.6) {
                        object.insert(name.clone(), generate(rng, property, components, name, depth + 1));
                    }
                }
            } else if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
                for _ in 0..rng.random_range(0..3) {
                    let key = WORDS.choose(rng).unwrap().to_string();
                    object.insert(key, generate(rng, values, components, field, depth + 1));
                }
            }
            if rng.random_ratio(1, 15) {
                object.insert("unknown_field".into(), json!(1));
            }
            Value::Object(object)
        }
        _ => garbage(rng, field),
    }
}

fn garbage(rng: &mut StdRng, field: &str) -> Value {
    match rng.random_range(0..7) {
        0 => Value::Null,
        1 => json!(-1),
        2 => json!(1e300),
        3 => json!([]),
        4 => json!({ "x": [1, "2"] }),
        5 => json!(true),
        _ => string_for(rng, field).into(),
    }
}

/// A value for a query parameter: valid-looking by its name, or garbage.
fn query_value(rng: &mut StdRng, name: &str) -> String {
    if rng.random_ratio(1, 3) {
        return ["-1", "abc", "99999999999999999999", "%00", "", "x".repeat(300).as_str()]
            .choose(rng)
            .unwrap()
            .to_string();
    }
    let plausible: &[&str] = match name {
        "limit" | "page_size" | "pageSize" => &["1", "5", "100"],
        "offset" => &["0", "3"],
        "page" | "page_num" | "pageNum" => &["1", "2"],
        "status" => &["approved", "pending", "rejected"],
        "order" => &["asc", "desc"],
        "orderBy" => &["createdTime", "name"],
        "flat" | "ready" | "tls" => &["true", "false"],
        "category" => &["database", "local", "catalog", "dockerhub", "registry"],
        "url" | "registry" => &["http://127.0.0.1:1", "127.0.0.1:1"],
        "image_id" => &["1", "2"],
        "node" => &["node-1", "nothing"],
        _ => WORDS,
    };
    plausible.choose(rng).unwrap().to_string()
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// One generated request: method, path with query, and body.
#[derive(Debug)]
struct Case {
    method: String,
    uri: String,
    body: Option<String>,
}

fn generate_case(rng: &mut StdRng, method: &str, path: &str, op: &Value, components: &Value) -> Case {
    let mut uri = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = start + rest[start..].find('}').unwrap();
        uri.push_str(&rest[..start]);
        uri.push_str(&path_value(rng, &rest[start + 1..end], path));
        rest = &rest[end + 1..];
    }
    uri.push_str(rest);
    let mut query = Vec::new();
    for parameter in op["parameters"].as_array().into_iter().flatten().filter(|p| p["in"] == "query") {
        if rng.random_bool(0.5) {
            let name = parameter["name"].as_str().unwrap();
            query.push(format!("{name}={}", encode(&query_value(rng, name))));
        }
    }
    if rng.random_ratio(1, 10) {
        query.push("unknown=1".into());
    }
    if !query.is_empty() {
        uri = format!("{uri}?{}", query.join("&"));
    }
    let body = op["requestBody"]["content"]["application/json"]["schema"].as_object().map(|_| {
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        match rng.random_range(0..10) {
            0 => "{not json".to_owned(),
            // Larger than any route's limit (64 KiB for most, 3 MiB for a registry secret).
            9 if rng.random_ratio(1, 2) => format!(
                "{{\"x\": \"{}\"}}",
                "x".repeat(if path.contains("registry-secrets") || path.contains(":import") {
                    4 << 20
                } else {
                    70 << 10
                })
            ),
            1 => garbage(rng, "").to_string(),
            _ => generate(rng, schema, components, "", 0).to_string(),
        }
    });
    Case { method: method.to_ascii_uppercase(), uri, body }
}

/// A fresh admin token for each request, so that a request that revokes its own token or changes the
/// admin's password leaves the next one signed in.
async fn admin_token(app: &TestApp) -> String {
    let user = app.store.find_credentials("admin").await.unwrap().expect("the admin exists").user;
    let (token, hash) = auth::new_token();
    app.store.create_token(user.id, &hash, "openapi test", None).await.unwrap();
    token
}

/// Checks one answer against the operation's documented responses; `Err` says what is wrong.
fn check_answer(
    op: &Value,
    status: u16,
    content_type: &str,
    body: &[u8],
    validators: &mut HashMap<String, jsonschema::Validator>,
    key: &str,
    components: &Value,
) -> Result<(), String> {
    if status >= 500 && !(status == 502 && op["responses"].get("502").is_some()) {
        return Err(format!("answered {status}: {}", String::from_utf8_lossy(body)));
    }
    let Some(response) = op["responses"].get(status.to_string()) else {
        return Err(format!(
            "answered {status}, which the operation does not document: {}",
            String::from_utf8_lossy(body)
        ));
    };
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        return if body.is_empty() { Ok(()) } else { Err(format!("{status} documents no body, but one came")) };
    };
    let (media, media_doc) = content.iter().next().unwrap();
    if !content_type.starts_with(media.as_str()) {
        return Err(format!("{status} answered `{content_type}`, documented `{media}`"));
    }
    if media != "application/json" {
        return Ok(());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("{status}: the body is not JSON: {e}"))?;
    let validator = validators.entry(format!("{key} {status}")).or_insert_with(|| {
        let schema = json!({ "allOf": [media_doc["schema"]], "components": components });
        jsonschema::validator_for(&schema)
            .unwrap_or_else(|e| panic!("{key} {status}: the schema does not compile: {e}"))
    });
    let errors: Vec<String> =
        validator.iter_errors(&value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{status}: the body does not match the schema: {}\n{value}", errors.join("; ")))
    }
}

#[test]
fn the_checked_in_document_is_the_generated_one() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = serde_json::to_string_pretty(api_http::openapi::document()).unwrap() + "\n";
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current != generated {
        if std::env::var_os("IMAGEGATE_BLESS").is_some() {
            std::fs::write(&path, generated).unwrap();
            return;
        }
        panic!(
            "docs/openapi.json differs from the generated document; run this test with IMAGEGATE_BLESS=1 to write it"
        );
    }
}

on_both_backends!(every_operation_answers_as_documented, the_catalogs_answers_match_their_schemas);

async fn every_operation_answers_as_documented(postgres: bool) {
    let seed = std::env::var("IMAGEGATE_OPENAPI_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(15u64);
    let target = Distribution::start().await;
    let hub = test_support::docker_hub::DockerHubSearch::start().await;
    let station =
        api_http::profile::station::StationConfig { docker_hub_url: hub.url().to_owned(), ..Default::default() };
    let app = TestApp::with_station(postgres, &target, station).await;

    // The document is served as generated, to anyone.
    let (status, served) = app.send("GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(&served, api_http::openapi::document());

    let document = api_http::openapi::document();
    let components = &document["components"];
    let mut rng = StdRng::seed_from_u64(seed);
    let mut validators = HashMap::new();
    let mut failures = Vec::new();
    let mut sent = 0;
    let mut seen = std::collections::BTreeMap::<u16, usize>::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for anonymous in [false, true] {
                for _ in 0..CASES {
                    let case = generate_case(&mut rng, method, path, op, components);
                    let mut req = Request::builder().method(case.method.as_str()).uri(&case.uri);
                    if !anonymous {
                        req = req.header(header::AUTHORIZATION, format!("Bearer {}", admin_token(&app).await));
                    }
                    let req = match &case.body {
                        Some(body) => {
                            req.header(header::CONTENT_TYPE, "application/json").body(Body::from(body.clone()))
                        }
                        None => req.body(Body::empty()),
                    };
                    let response = app.respond(req.unwrap()).await;
                    sent += 1;
                    let status = response.status().as_u16();
                    *seen.entry(status).or_default() += 1;
                    let content_type = response
                        .headers()
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    // An event stream runs until its import ends: its head is what is checked.
                    let body = if content_type.starts_with("text/event-stream") {
                        Vec::new()
                    } else {
                        response.into_body().collect().await.unwrap().to_bytes().to_vec()
                    };
                    let key = format!("{} {path}", method.to_ascii_uppercase());
                    if let Err(problem) =
                        check_answer(op, status, &content_type, &body, &mut validators, &key, components)
                    {
                        let who = if anonymous { "anonymous" } else { "admin" };
                        failures
                            .push(format!("{key} as {who}: {} {} {:?}: {problem}", case.method, case.uri, case.body));
                    }
                }
            }
        }
    }
    assert!(sent > 300, "only {sent} requests");
    eprintln!("seed {seed}: {sent} requests, answered {seen:?}");
    // The generator reaches past the door: successes, refusals, missing things and oversized bodies.
    for status in [200, 400, 401, 404, 413] {
        assert!(seen.contains_key(&status), "seed {seed}: no request was answered {status}: {seen:?}");
    }
    assert!(
        failures.is_empty(),
        "seed {seed}: {} of {sent} answers differ from the document:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let (status, _) = app.get("/readyz").await;
    assert_eq!(status, 200, "the server is still ready");
}

/// The check itself: an undocumented status, a body of the wrong shape and a 500 are each caught.
#[test]
fn the_check_tells_right_from_wrong() {
    let components = json!({ "schemas": { "E": { "type": "object", "required": ["message"] } } });
    let op = json!({ "responses": {
        "200": { "description": "ok", "content": { "application/json": { "schema": { "type": "array" } } } },
        "204": { "description": "none" },
        "404": { "description": "no", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/E" } } } },
    }});
    let mut v = HashMap::new();
    let mut check = |status, ct, body: &str| check_answer(&op, status, ct, body.as_bytes(), &mut v, "K", &components);
    assert_eq!(check(200, "application/json", "[]"), Ok(()));
    assert_eq!(check(204, "", ""), Ok(()));
    assert_eq!(check(404, "application/json", r#"{"message": "x"}"#), Ok(()));
    assert!(check(404, "application/json", r#"{"error": "x"}"#).is_err());
    assert!(check(200, "application/json", "{}").is_err());
    assert!(check(200, "text/plain", "[]").is_err());
    assert!(check(409, "application/json", "{}").is_err());
    assert!(check(500, "application/json", "{}").is_err());
    assert!(check(204, "", "x").is_err());
}

/// The catalog's successes, which generated requests reach only now and then, each checked against the
/// document: a listing, an image added, changed and read with a tag, an approval asked for and approved,
/// the admission check's yes, the audit trail, and the deletes.
async fn the_catalogs_answers_match_their_schemas(postgres: bool) {
    let app = if postgres { TestApp::postgres().await } else { TestApp::sqlite().await };
    let document = api_http::openapi::document();
    let components = &document["components"];
    let mut validators = HashMap::new();
    let token = admin_token(&app).await;
    let base = "/catalog/api/v1";
    let mut check = async |method: &str, template: &str, path: String, body: Option<Value>| -> Value {
        let op = &document["paths"][format!("{base}{template}")][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {template} is documented");
        let (status, answer) =
            app.send(method, &format!("{base}{path}"), body.map(|b| b.to_string()), Some(&token)).await;
        let bytes = serde_json::to_vec(&answer).unwrap();
        let key = format!("{method} {template}");
        check_answer(op, status.as_u16(), "application/json", &bytes, &mut validators, &key, components)
            .unwrap_or_else(|problem| panic!("{key}: {problem}"));
        assert!(status.is_success(), "{key}: {status} {answer}");
        answer
    };
    check("GET", "/images", "/images?limit=3".into(), None).await;
    check("GET", "/images/categories", "/images/categories".into(), None).await;
    let image = check(
        "POST",
        "/images",
        "/images".into(),
        Some(json!({ "image_name": "openapi-app", "namespace": "team", "category": "web" })),
    )
    .await;
    let id = image["id"].as_i64().unwrap();
    check("PUT", "/images/{id}", format!("/images/{id}"), Some(json!({ "description": "described" }))).await;
    let tag = check(
        "POST",
        "/images/{id}/tags",
        format!("/images/{id}/tags"),
        Some(json!({ "tag": "1.0", "is_recommended": true, "pushed_at": "2024-01-01T00:00:00Z" })),
    )
    .await;
    let tag_id = tag["id"].as_i64().unwrap();
    check("PUT", "/images/{id}/tags/{tag_id}", format!("/images/{id}/tags/{tag_id}"), Some(json!({ "os": "linux" })))
        .await;
    check("GET", "/images/{id}", format!("/images/{id}"), None).await;
    check("POST", "/admission/check", "/admission/check".into(), Some(json!({ "image": "team/openapi-app:1.0" })))
        .await;
    let request = check(
        "POST",
        "/approval-requests",
        "/approval-requests".into(),
        Some(json!({ "image_name": "other", "tag": "2", "notes": "please" })),
    )
    .await;
    let request_id = request["id"].as_i64().unwrap();
    check("GET", "/approval-requests", "/approval-requests".into(), None).await;
    check("GET", "/approval-requests/{id}", format!("/approval-requests/{request_id}"), None).await;
    check(
        "POST",
        "/approval-requests/{id}/approve",
        format!("/approval-requests/{request_id}/approve"),
        Some(json!({ "category": "web" })),
    )
    .await;
    let second =
        check("POST", "/approval-requests", "/approval-requests".into(), Some(json!({ "image_name": "third" }))).await;
    let second_id = second["id"].as_i64().unwrap();
    check(
        "POST",
        "/approval-requests/{id}/reject",
        format!("/approval-requests/{second_id}/reject"),
        Some(json!({ "reason": "no" })),
    )
    .await;
    check("GET", "/events", "/events?limit=5".into(), None).await;
    check("DELETE", "/images/{id}/tags/{tag_id}", format!("/images/{id}/tags/{tag_id}"), None).await;
    check("DELETE", "/images/{id}", format!("/images/{id}"), None).await;
}
