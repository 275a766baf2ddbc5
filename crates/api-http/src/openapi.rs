//! The OpenAPI 3.1 document of every route, served at `GET /openapi.json`.
//!
//! Paths, methods and who may call each come from the router's own table ([`crate::routes`]); what each
//! operation means, takes and answers comes from one [`Doc`] per `(method, path)` in [`entries`], whose
//! schemas are derived from the wire types (`schemars`' `JsonSchema`). The document is the join of the two:
//! a route without an entry, an entry without a route, or an entry with an empty description fails
//! [`check`] (and so the test suite).
//!
//! Statuses that follow from the route itself are added to every operation, in the profile's error format:
//! 400 (a malformed path or query), 401 for routes that need a caller, 403 for admin-only and limited
//! routes, 404 for routes with path parameters, 413 and 415 for routes that read a body, and 503 (the cap
//! on requests at once).

mod accounts;
mod catalog;
mod entries;
mod integrations;
mod kube;
mod platform;
mod station;

use std::sync::OnceLock;

use axum::{
    Json,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

use crate::routes::{Access, Route, Routes};

pub use entries::entries;

/// Builds the schema of one wire type, as a reference into `components/schemas` where it has a name.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// How a profile writes its error bodies (see [`crate::error::ErrorFormat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Errors {
    /// `{"error": …, "message": …}`: the catalog, the platform API, sign-in, users, the inventory, Harbor's
    /// statistics, webhooks, metrics.
    Plain,
    /// A Kubernetes `Status`: the kube-style resources.
    Kube,
    /// `{"error": {"code": …, "message": …}}`: the station profile.
    Station,
}

impl Errors {
    fn component(self) -> &'static str {
        match self {
            Errors::Plain => "PlainError",
            Errors::Kube => "KubeStatus",
            Errors::Station => "StationError",
        }
    }
}

/// What one answer carries.
#[derive(Debug, Clone, Copy)]
pub enum Content {
    /// Nothing (`204`, say).
    Empty,
    /// JSON of this schema.
    Json(SchemaFn),
    /// Any JSON object, for an answer with no fixed shape; its description says why.
    AnyJson,
    /// Text of this media type (`text/plain` for metrics, `text/event-stream` for progress events).
    Text(&'static str),
}

/// One documented answer of an operation.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub status: u16,
    pub description: &'static str,
    pub content: Content,
}

/// The documentation of one route: one entry per `(method, path)` of [`crate::routes`].
///
/// Written as `Doc::new(METHOD, PATH, SUMMARY, DESCRIPTION)` followed by what it takes (`query`, `body`) and
/// answers (`ok`, `answer`, `status`), and the profile's error format (`errors`, [`Errors::Plain`] unless
/// said).
#[derive(Debug, Clone)]
pub struct Doc {
    pub method: &'static str,
    pub path: String,
    pub summary: &'static str,
    pub description: &'static str,
    pub query: Option<SchemaFn>,
    pub body: Option<SchemaFn>,
    /// The body is optional (an empty body means defaults).
    pub body_optional: bool,
    pub answers: Vec<Answer>,
    /// Error statuses beyond those that follow from the route (409, 422, 502, …).
    pub statuses: Vec<u16>,
    pub errors: Errors,
    /// A body some of the route's errors carry instead of the profile's format (the platform's import
    /// answers refusals as `{"state": 0, …}`).
    pub error_body: Option<SchemaFn>,
}

impl Doc {
    pub fn new(method: &'static str, path: impl Into<String>, summary: &'static str, description: &'static str) -> Doc {
        Doc {
            method,
            path: path.into(),
            summary,
            description,
            query: None,
            body: None,
            body_optional: false,
            answers: Vec::new(),
            statuses: Vec::new(),
            errors: Errors::Plain,
            error_body: None,
        }
    }

    /// The query parameters: the fields of `Q`, the type the handler reads them into.
    pub fn query<Q: JsonSchema>(mut self) -> Doc {
        self.query = Some(schema_of::<Q>);
        self
    }

    /// A JSON body of type `B`.
    pub fn body<B: JsonSchema>(mut self) -> Doc {
        self.body = Some(schema_of::<B>);
        self
    }

    /// A JSON body of type `B` that may be left out.
    pub fn optional_body<B: JsonSchema>(mut self) -> Doc {
        self.body_optional = true;
        self.body::<B>()
    }

    /// An answer with a JSON body of type `T`.
    pub fn ok<T: JsonSchema>(self, status: u16, description: &'static str) -> Doc {
        self.answer(status, description, Content::Json(schema_of::<T>))
    }

    pub fn answer(mut self, status: u16, description: &'static str, content: Content) -> Doc {
        self.answers.push(Answer { status, description, content });
        self
    }

    /// Error statuses (in the profile's format) beyond those that follow from the route.
    pub fn status(mut self, statuses: &[u16]) -> Doc {
        self.statuses.extend_from_slice(statuses);
        self
    }

    /// Errors may also carry a body of type `T`.
    pub fn error_body<T: JsonSchema>(mut self) -> Doc {
        self.error_body = Some(schema_of::<T>);
        self
    }

    pub fn errors(mut self, errors: Errors) -> Doc {
        self.errors = errors;
        self
    }
}

/// The routes the document describes: every route but the web console's pages (HTML for browsers, under
/// `/console`), which the authorization table and the generated-garbage test cover like any other route.
pub fn documented_routes() -> Vec<Route> {
    crate::routes().into_iter().filter(|r| r.path != "/console" && !r.path.starts_with("/console/")).collect()
}

/// What is wrong with the join of the routes and the entries: empty when every route has one entry with a
/// summary and a description, and every entry names a route.
pub fn check(routes: &[Route], docs: &[Doc]) -> Vec<String> {
    let mut problems = Vec::new();
    for route in routes {
        match docs.iter().filter(|d| d.method == route.method && d.path == route.path).count() {
            0 => problems.push(format!("{} {} has no entry in openapi::entries", route.method, route.path)),
            1 => {}
            n => problems.push(format!("{} {} has {n} entries", route.method, route.path)),
        }
    }
    for doc in docs {
        if !routes.iter().any(|r| r.method == doc.method && r.path == doc.path) {
            problems.push(format!("the entry {} {} names no route", doc.method, doc.path));
        }
        if doc.summary.trim().is_empty() || doc.description.trim().is_empty() {
            problems.push(format!("the entry {} {} has an empty summary or description", doc.method, doc.path));
        }
        if doc.answers.is_empty() {
            problems.push(format!("the entry {} {} documents no answer", doc.method, doc.path));
        }
    }
    problems
}

/// The path as OpenAPI writes it: axum's `{*rest}` becomes `{rest}`.
pub fn openapi_path(path: &str) -> String {
    path.replace("{*", "{")
}

/// The names of a path template's parameters, in order.
fn path_parameters(path: &str) -> Vec<String> {
    let mut names = Vec::new();
    Route { method: "GET", path: path.to_owned(), access: Access::Anyone }.fill(|name| {
        names.push(name.trim_start_matches('*').to_owned());
        String::new()
    });
    names
}

/// The statuses every operation of `route` may answer besides its own: see the module's documentation.
pub fn implied_statuses(route: &Route, doc: &Doc) -> Vec<u16> {
    let mut statuses = vec![400, 503];
    match route.access {
        Access::Anyone => {}
        Access::SignedIn | Access::Secret(_) => statuses.push(401),
        Access::Limited(_) | Access::Admin => statuses.extend([401, 403]),
    }
    if route.path.contains('{') {
        statuses.push(404);
    }
    if doc.body.is_some() {
        statuses.extend([413, 415]);
    }
    statuses
}

/// The document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| build(&documented_routes(), &entries()))
}

fn build(routes: &[Route], docs: &[Doc]) -> Value {
    let settings = SchemaSettings::draft2020_12().with(|s| s.definitions_path = "/components/schemas".into());
    let mut generator = SchemaGenerator::new(settings);
    let mut paths = Map::new();
    for route in routes {
        let Some(doc) = docs.iter().find(|d| d.method == route.method && d.path == route.path) else { continue };
        let operation = operation(route, doc, &mut generator);
        let item = paths.entry(openapi_path(&route.path)).or_insert_with(|| Value::Object(Map::new()));
        item[route.method.to_ascii_lowercase()] = operation;
    }
    let mut schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    schemas.extend(error_schemas());
    schemas.sort_keys();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "imagegate",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The catalog of approved container images, their imports into the internal registry, \
                            and every API profile imagegate speaks: the catalog (seed 002), the platform image \
                            API (seed 000), the kube-style resources (seed 001), the station API (seed 003) and \
                            the node inventory (seed 004). The built-in registry at `/v2/` follows the OCI \
                            distribution specification and is not described here.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "An API token from `POST /api/v1/auth/token`." },
                "basic": { "type": "http", "scheme": "basic", "description": "A user's name and password." },
                "session": {
                    "type": "apiKey", "in": "cookie", "name": crate::session::COOKIE,
                    "description": "The session cookie `POST /api/v1/login` sets.",
                },
                "webhookSecret": {
                    "type": "apiKey", "in": "header", "name": "Authorization",
                    "description": "The shared secret the webhook's sender was configured with, as the whole header.",
                },
            },
        },
    })
}

fn operation(route: &Route, doc: &Doc, generator: &mut SchemaGenerator) -> Value {
    let mut op = Map::new();
    op.insert("summary".into(), doc.summary.into());
    op.insert("description".into(), doc.description.into());
    op.insert("operationId".into(), operation_id(route).into());
    let mut parameters = Vec::new();
    for name in path_parameters(&route.path) {
        let schema = match name.as_str() {
            "id" | "tag_id" => json!({ "type": "integer", "format": "int64" }),
            _ => json!({ "type": "string" }),
        };
        let mut parameter = json!({ "name": name, "in": "path", "required": true, "schema": schema });
        if route.path.contains(&format!("{{*{name}}}")) {
            parameter["description"] = "The rest of the path; it may hold `/`.".into();
        }
        parameters.push(parameter);
    }
    if let Some(query) = doc.query {
        // Parameters are listed one by one, so the query's type is read inline rather than referenced.
        let mut inline = SchemaGenerator::new(SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = true));
        let schema = query(&mut inline).to_value();
        if let Some(Value::Object(properties)) = schema.get("properties") {
            let required = schema.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
            for (name, schema) in properties {
                let mut schema = schema.clone();
                let description = schema.as_object_mut().and_then(|s| s.remove("description"));
                let mut parameter = json!({
                    "name": name, "in": "query", "required": required.contains(&Value::from(name.as_str())),
                    "schema": schema,
                });
                if let Some(description) = description {
                    parameter["description"] = description;
                }
                parameters.push(parameter);
            }
        }
    }
    if !parameters.is_empty() {
        op.insert("parameters".into(), parameters.into());
    }
    if let Some(body) = doc.body {
        op.insert(
            "requestBody".into(),
            json!({
                "required": !doc.body_optional,
                "content": { "application/json": { "schema": body(generator).to_value() } },
            }),
        );
    }
    let mut responses = Map::new();
    for answer in &doc.answers {
        let mut response = json!({ "description": answer.description });
        match answer.content {
            Content::Empty => {}
            Content::Json(schema) => {
                response["content"] = json!({ "application/json": { "schema": schema(generator).to_value() } })
            }
            Content::AnyJson => response["content"] = json!({ "application/json": { "schema": { "type": "object" } } }),
            Content::Text(media) => response["content"] = json!({ media: { "schema": { "type": "string" } } }),
        }
        responses.insert(answer.status.to_string(), response);
    }
    let mut errors: Vec<u16> = implied_statuses(route, doc).into_iter().chain(doc.statuses.iter().copied()).collect();
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        let key = status.to_string();
        if responses.contains_key(&key) {
            continue;
        }
        let description = StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
        let mut schema = json!({ "$ref": format!("#/components/schemas/{}", doc.errors.component()) });
        if let Some(other) = doc.error_body {
            schema = json!({ "anyOf": [schema, other(generator).to_value()] });
        }
        responses.insert(
            key,
            json!({ "description": description, "content": { "application/json": { "schema": schema } } }),
        );
    }
    let mut sorted: Vec<(String, Value)> = responses.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    op.insert("responses".into(), Value::Object(sorted.into_iter().collect()));
    let security = match route.access {
        Access::Anyone => json!([]),
        Access::Secret(_) => json!([{ "webhookSecret": [] }]),
        Access::SignedIn | Access::Limited(_) | Access::Admin => {
            json!([{ "bearer": [] }, { "basic": [] }, { "session": [] }])
        }
    };
    op.insert("security".into(), security);
    op.insert("x-access".into(), route.access.describe().into());
    Value::Object(op)
}

/// `GET /catalog/api/v1/images/{id}` → `get_catalog_api_v1_images_id`.
fn operation_id(route: &Route) -> String {
    let mut id = route.method.to_ascii_lowercase();
    for part in route.path.split(|c: char| !c.is_ascii_alphanumeric()).filter(|p| !p.is_empty()) {
        id.push('_');
        id.push_str(part);
    }
    id
}

/// The error bodies of each profile.
fn error_schemas() -> Vec<(String, Value)> {
    vec![
        (
            "PlainError".into(),
            json!({
                "description": "The error format of the catalog, the platform API, sign-in, users, the inventory and the integrations.",
                "type": "object",
                "required": ["error", "message"],
                "properties": {
                    "error": { "type": "string", "description": "A short title, such as `Image not found`." },
                    "message": { "type": "string", "description": "What went wrong, for a person to read." },
                },
            }),
        ),
        (
            "KubeStatus".into(),
            json!({
                "description": "A Kubernetes `Status`, as the kube-style resources answer errors.",
                "type": "object",
                "required": ["apiVersion", "kind", "metadata", "status", "message", "reason", "details", "code"],
                "properties": {
                    "apiVersion": { "const": crate::error::KUBE_API_VERSION },
                    "kind": { "const": "Status" },
                    "metadata": { "type": "object" },
                    "status": { "const": "Failure" },
                    "message": { "type": "string" },
                    "reason": { "type": "string" },
                    "code": { "type": "integer" },
                    "details": {
                        "type": "object",
                        "properties": {
                            "name": { "type": "string" },
                            "kind": { "type": "string" },
                            "causes": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["reason", "field", "message"],
                                    "properties": {
                                        "reason": { "type": "string" },
                                        "field": { "type": "string" },
                                        "message": { "type": "string" },
                                    },
                                },
                            },
                        },
                    },
                },
            }),
        ),
        (
            "StationError".into(),
            json!({
                "description": "The station profile's errors: the code is the HTTP status.",
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": { "code": { "type": "integer" }, "message": { "type": "string" } },
                    },
                },
            }),
        ),
    ]
}

pub(crate) fn routes() -> Routes {
    Routes::new("").get("/openapi.json", Access::Anyone, serve)
}

async fn serve() -> Response {
    let mut response = Json(document()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("public, max-age=300"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_an_entry_and_every_entry_a_route() {
        let problems = check(&documented_routes(), &entries());
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn the_check_finds_a_missing_entry_an_extra_one_and_an_empty_description() {
        let routes = vec![
            Route { method: "GET", path: "/a".into(), access: Access::Anyone },
            Route { method: "GET", path: "/b".into(), access: Access::Anyone },
        ];
        let docs = vec![
            Doc::new("GET", "/a", "A", "").answer(200, "ok", Content::Empty),
            Doc::new("POST", "/c", "C", "c").answer(200, "ok", Content::Empty),
        ];
        assert_eq!(
            check(&routes, &docs),
            [
                "GET /b has no entry in openapi::entries",
                "the entry GET /a has an empty summary or description",
                "the entry POST /c names no route",
            ]
        );
    }

    #[test]
    fn paths_and_their_parameters() {
        assert_eq!(openapi_path("/api/v1/image/{*path}"), "/api/v1/image/{path}");
        assert_eq!(path_parameters("/a/{id}/b/{tag_id}/{*rest}"), ["id", "tag_id", "rest"]);
        let route = Route { method: "PUT", path: "/x/{id}".into(), access: Access::Admin };
        assert_eq!(operation_id(&route), "put_x_id");
        let doc = Doc::new("PUT", "/x/{id}", "x", "x").body::<String>();
        assert_eq!(implied_statuses(&route, &doc), [400, 503, 401, 403, 404, 413, 415]);
    }
}
