//! The distribution API under `/v2/`: one wildcard route, whose path is parsed here (repository names hold
//! `/`), and a handler per endpoint of the spec.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::any,
};
use base64::Engine as _;
use image_core::{
    Digest,
    oci::{ManifestRef, NewManifest, PutManifest},
};
use sha2::Digest as _;

use crate::{
    Registry,
    auth::{Action, AuthFailure, Claims, Principal, Scope, TOKEN_TTL_SECS},
    error::{Code, OciError, OciResult},
    gate::{GateMode, Pull},
    manifest, name,
    storage::{AppendError, file_stream},
};

/// The registry's routes: `/v2/`, and everything under it.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/v2", any(base))
        .route("/v2/", any(base))
        .route("/v2/{*path}", any(dispatch))
        .with_state(registry)
}

/// What a path under `/v2/` names.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Token,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    Uploads(&'a str),
    Upload(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

fn target(path: &str) -> Option<Target<'_>> {
    match path {
        "token" => return Some(Target::Token),
        "_catalog" => return Some(Target::Catalog),
        _ => {}
    }
    if let Some(name) = path.strip_suffix("/tags/list") {
        return Some(Target::Tags(name));
    }
    if let Some(name) = path.strip_suffix("/blobs/uploads/").or_else(|| path.strip_suffix("/blobs/uploads")) {
        return Some(Target::Uploads(name));
    }
    let (head, last) = path.rsplit_once('/')?;
    if let Some(name) = head.strip_suffix("/manifests") {
        return Some(Target::Manifest(name, last));
    }
    if let Some(name) = head.strip_suffix("/blobs/uploads") {
        return Some(Target::Upload(name, last));
    }
    if let Some(name) = head.strip_suffix("/blobs") {
        return Some(Target::Blob(name, last));
    }
    if let Some(name) = head.strip_suffix("/referrers") {
        return Some(Target::Referrers(name, last));
    }
    None
}

/// A request's method, headers, query and client, once its body is taken.
struct Req {
    method: Method,
    headers: HeaderMap,
    query: Vec<(String, String)>,
    client: Option<std::net::IpAddr>,
}

impl Req {
    fn param(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn split(request: Request) -> (Req, String, Body) {
    let (parts, body) = request.into_parts();
    let client = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let query = parts.uri.query().map(parse_query).unwrap_or_default();
    let path = parts.uri.path().to_owned();
    (Req { method: parts.method, headers: parts.headers, query, client }, path, body)
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Who sent a request.
enum Identity {
    Anonymous,
    /// The server's own credential: an admin that the gate lets through.
    Internal,
    User(Principal),
    Token(Claims),
}

/// What a request needs to be allowed.
enum Need<'a> {
    /// `GET /v2/`: any valid credential (an anonymous token included).
    Base,
    Catalog,
    Repository(&'a str, Action),
}

impl Registry {
    fn realm(&self, req: &Req) -> String {
        match &self.config.public_url {
            Some(url) => format!("{}/v2/token", url.trim_end_matches('/')),
            None => {
                let host = req.header(header::HOST).unwrap_or("localhost");
                let scheme = req.header(header::HeaderName::from_static("x-forwarded-proto")).unwrap_or("http");
                format!("{scheme}://{host}/v2/token")
            }
        }
    }

    fn challenge(&self, req: &Req, need: &Need<'_>, message: &str) -> OciError {
        let scope = match need {
            Need::Base => String::new(),
            Need::Catalog => ",scope=\"registry:catalog:*\"".to_owned(),
            Need::Repository(name, action) => {
                let actions = match action {
                    Action::Pull => "pull",
                    Action::Push => "pull,push",
                    Action::Delete => "delete",
                };
                format!(",scope=\"repository:{name}:{actions}\"")
            }
        };
        OciError::new(Code::Unauthorized, message).with_header(
            header::WWW_AUTHENTICATE,
            format!("Bearer realm=\"{}\",service=\"imagegate\"{scope}", self.realm(req)),
        )
    }

    fn is_internal(&self, username: &str, password: &str) -> bool {
        match &self.config.internal_credential {
            Some((user, pass)) => {
                // Compared as hashes, so that the comparison's time says nothing of the password.
                let given = sha2::Sha256::digest(format!("{username}\0{password}"));
                let expected = sha2::Sha256::digest(format!("{user}\0{pass}"));
                given == expected
            }
            None => false,
        }
    }

    /// The sender of a request; wrong credentials are an error (a challenge).
    async fn identify(&self, req: &Req, need: &Need<'_>) -> OciResult<Identity> {
        let Some(value) = req.headers.get(header::AUTHORIZATION) else { return Ok(Identity::Anonymous) };
        let value = value.to_str().map_err(|_| self.challenge(req, need, "the Authorization header is not text"))?;
        let (scheme, credential) = value.split_once(' ').unwrap_or((value, ""));
        let credential = credential.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            if let Some(claims) = self.config.signer.verify(credential, now()) {
                // A token issued to the server's own credential stands for that credential.
                return Ok(if claims.internal { Identity::Internal } else { Identity::Token(claims) });
            }
            return match self.auth.api_token(credential).await.map_err(failure)? {
                Some(principal) => Ok(Identity::User(principal)),
                None => Err(self.challenge(req, need, "the token is not valid (expired, or not issued here)")),
            };
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let (username, password) = decode_basic(credential)
                .ok_or_else(|| self.challenge(req, need, "the Basic credentials are not base64 of `user:password`"))?;
            if self.is_internal(&username, &password) {
                return Ok(Identity::Internal);
            }
            return match self.auth.basic(&username, &password, req.client).await.map_err(failure)? {
                Some(principal) => Ok(Identity::User(principal)),
                None => Err(self.challenge(req, need, "invalid user name or password")),
            };
        }
        Err(self.challenge(req, need, &format!("unsupported authorization scheme `{scheme}`; use Bearer or Basic")))
    }

    /// Allows the request, or answers why not: a challenge to whoever has not shown enough, `DENIED` to a
    /// signed-in user whose role does not allow it.
    async fn authorize(&self, req: &Req, need: Need<'_>) -> OciResult<()> {
        self.authorize_as(req, need).await.map(drop)
    }

    /// [`Registry::authorize`], answering who the caller is.
    async fn authorize_as(&self, req: &Req, need: Need<'_>) -> OciResult<Identity> {
        let anonymous_pull = self.config.anonymous_pull;
        let identity = self.identify(req, &need).await?;
        let allowed = match (&identity, &need) {
            (Identity::Internal, _) => true,
            (Identity::Token(_), Need::Base) | (Identity::User(_), Need::Base) => true,
            (Identity::User(principal), Need::Catalog) => {
                if principal.robot.is_some() {
                    let why = format!("{} is a robot account, which sees only its own repositories", principal.name);
                    return Err(OciError::new(Code::Denied, why));
                }
                true
            }
            (Identity::Token(claims), Need::Catalog) => claims.allows("registry", "catalog", "*"),
            (Identity::Token(claims), Need::Repository(name, action)) => {
                claims.allows("repository", name, action.as_str())
            }
            (Identity::User(principal), Need::Repository(name, action)) => {
                if action.permitted(name, Some(principal), anonymous_pull) {
                    true
                } else if principal.robot.is_some() {
                    let why = format!("robot account {} may not {} in {name}", principal.name, action.as_str());
                    return Err(OciError::new(Code::Denied, why));
                } else {
                    return Err(OciError::new(
                        Code::Denied,
                        format!("{} needs an admin; {} is not one", action.as_str(), principal.name),
                    ));
                }
            }
            // Always a challenge, anonymous pulls or not: clients learn from `/v2/` whether to authenticate,
            // and one that got a 200 here would never answer a later challenge of a push.
            (Identity::Anonymous, Need::Base | Need::Catalog) => false,
            (Identity::Anonymous, Need::Repository(name, action)) => action.permitted(name, None, anonymous_pull),
        };
        if allowed { Ok(identity) } else { Err(self.challenge(req, &need, "authentication required")) }
    }
}

fn decode_basic(credential: &str) -> Option<(String, String)> {
    let decoded = base64::engine::general_purpose::STANDARD.decode(credential).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn failure(failure: AuthFailure) -> OciError {
    match failure {
        AuthFailure::TooManyRequests { message, retry_after_secs } => {
            let error = OciError::new(Code::TooManyRequests, message);
            match retry_after_secs {
                Some(secs) => error.with_header(header::RETRY_AFTER, secs.to_string()),
                None => error,
            }
        }
        AuthFailure::Unavailable(message) => {
            OciError::new(Code::Unsupported, message).with_status(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn respond(status: StatusCode, headers: &[(header::HeaderName, String)], body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(name.clone(), value);
        }
    }
    response
}

fn json(status: StatusCode, value: &serde_json::Value, extra: &[(header::HeaderName, String)]) -> Response {
    let mut headers = vec![(header::CONTENT_TYPE, "application/json".to_owned())];
    headers.extend_from_slice(extra);
    respond(status, &headers, Body::from(value.to_string()))
}

fn digest_header(digest: &Digest) -> (header::HeaderName, String) {
    (header::HeaderName::from_static("docker-content-digest"), digest.to_string())
}

async fn base(State(registry): State<Arc<Registry>>, request: Request) -> Response {
    let (req, _, _) = split(request);
    let result = async {
        if !matches!(req.method, Method::GET | Method::HEAD) {
            return Err(OciError::new(Code::Unsupported, "/v2/ answers GET and HEAD"));
        }
        registry.authorize(&req, Need::Base).await?;
        Ok(json(StatusCode::OK, &serde_json::json!({}), &[]))
    }
    .await;
    finish(result)
}

fn finish(result: OciResult<Response>) -> Response {
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    response.headers_mut().insert(
        header::HeaderName::from_static("docker-distribution-api-version"),
        HeaderValue::from_static("registry/2.0"),
    );
    response
}

async fn dispatch(State(registry): State<Arc<Registry>>, request: Request) -> Response {
    let (req, path, body) = split(request);
    let path = path.strip_prefix("/v2/").unwrap_or("").to_owned();
    finish(route(&registry, &req, &path, body).await)
}

fn check_name(name: &str) -> OciResult<()> {
    if name::valid_repository(name) {
        Ok(())
    } else {
        Err(OciError::new(Code::NameInvalid, format!("`{name}` is not a valid repository name"))
            .with_detail(serde_json::json!({ "name": name })))
    }
}

fn parse_digest(text: &str) -> OciResult<Digest> {
    text.parse().map_err(|e| {
        OciError::new(Code::DigestInvalid, format!("`{text}` is not a digest this registry accepts: {e}"))
            .with_detail(serde_json::json!({ "digest": text }))
    })
}

fn unsupported(method: &Method) -> OciResult<Response> {
    Err(OciError::new(Code::Unsupported, format!("{method} is not supported here")))
}

async fn route(registry: &Registry, req: &Req, path: &str, body: Body) -> OciResult<Response> {
    let Some(target) = target(path) else {
        return Err(OciError::new(Code::NameUnknown, "no such endpoint of the distribution API")
            .with_status(StatusCode::NOT_FOUND));
    };
    let name = match &target {
        Target::Token | Target::Catalog => None,
        Target::Tags(name)
        | Target::Manifest(name, _)
        | Target::Blob(name, _)
        | Target::Uploads(name)
        | Target::Upload(name, _)
        | Target::Referrers(name, _) => Some(*name),
    };
    if let Some(name) = name {
        check_name(name)?;
    }
    let method = &req.method;
    match target {
        Target::Token => match *method {
            Method::GET => token(registry, req).await,
            _ => unsupported(method),
        },
        Target::Catalog => match *method {
            Method::GET => catalog(registry, req).await,
            _ => unsupported(method),
        },
        Target::Tags(name) => match *method {
            Method::GET => tags(registry, req, name).await,
            _ => unsupported(method),
        },
        Target::Manifest(name, reference) => match *method {
            Method::GET | Method::HEAD => get_manifest(registry, req, name, reference).await,
            Method::PUT => put_manifest(registry, req, name, reference, body).await,
            Method::DELETE => delete_manifest(registry, req, name, reference).await,
            _ => unsupported(method),
        },
        Target::Blob(name, digest) => match *method {
            Method::GET | Method::HEAD => get_blob(registry, req, name, digest).await,
            Method::DELETE => delete_blob(registry, req, name, digest).await,
            _ => unsupported(method),
        },
        Target::Uploads(name) => match *method {
            Method::POST => start_upload(registry, req, name, body).await,
            _ => unsupported(method),
        },
        Target::Upload(name, id) => match *method {
            Method::GET => upload_status(registry, req, name, id).await,
            Method::PATCH => patch_upload(registry, req, name, id, body).await,
            Method::PUT => put_upload(registry, req, name, id, body).await,
            Method::DELETE => cancel_upload(registry, req, name, id).await,
            _ => unsupported(method),
        },
        Target::Referrers(name, digest) => match *method {
            Method::GET => referrers(registry, req, name, digest).await,
            _ => unsupported(method),
        },
    }
}

// ---------------------------------------------------------------------------------------------------
// Tokens

async fn token(registry: &Registry, req: &Req) -> OciResult<Response> {
    let identity = registry.identify(req, &Need::Base).await;
    let internal = matches!(identity, Ok(Identity::Internal));
    let principal = match identity {
        Ok(Identity::User(principal)) => Some(principal),
        Ok(Identity::Internal) => Some(Principal::user("imagegate-internal", true)),
        Ok(Identity::Anonymous) => None,
        Ok(Identity::Token(claims)) if !claims.sub.is_empty() => {
            // A token of ours is not traded for another: sign in with a password or an API token.
            return Err(OciError::new(Code::Unauthorized, "send Basic credentials or an API token for a token")
                .with_header(header::WWW_AUTHENTICATE, "Basic realm=\"imagegate\""));
        }
        Ok(Identity::Token(_)) => None,
        Err(mut error) => {
            error.headers = vec![(header::WWW_AUTHENTICATE, "Basic realm=\"imagegate\"".to_owned())];
            return Err(error);
        }
    };
    let mut access = Vec::new();
    for (key, value) in &req.query {
        if key != "scope" {
            continue;
        }
        for text in value.split(' ').filter(|s| !s.is_empty()) {
            let scope = Scope::parse(text).ok_or_else(|| {
                OciError::new(Code::Unsupported, format!("`{text}` is not a scope (`repository:NAME:ACTIONS`)"))
                    .with_status(StatusCode::BAD_REQUEST)
            })?;
            if scope.kind == "repository" {
                check_name(&scope.name)?;
            }
            access.extend(scope.grant(principal.as_ref(), registry.config.anonymous_pull));
        }
    }
    if principal.is_none() && !registry.config.anonymous_pull {
        return Err(OciError::new(Code::Unauthorized, "sign in: anonymous pulls are off")
            .with_header(header::WWW_AUTHENTICATE, "Basic realm=\"imagegate\""));
    }
    let issued = now();
    let claims = Claims {
        sub: principal.map(|p| p.name).unwrap_or_default(),
        access,
        exp: issued + TOKEN_TTL_SECS,
        iat: issued,
        internal,
    };
    let token = registry.config.signer.sign(&claims);
    let issued_at = time::OffsetDateTime::from_unix_timestamp(issued)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "token": token, "access_token": token, "expires_in": TOKEN_TTL_SECS, "issued_at": issued_at }),
        &[],
    ))
}

// ---------------------------------------------------------------------------------------------------
// Content discovery

/// `n` (at most this many; default and cap 10,000) and `last` of a listing.
fn pagination(req: &Req) -> OciResult<(i64, Option<String>)> {
    let n = match req.param("n") {
        None => 10_000,
        Some(n) => n
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                OciError::new(Code::SizeInvalid, format!("n must be a whole number, not `{n}`"))
                    .with_status(StatusCode::BAD_REQUEST)
            })?
            .min(10_000),
    };
    Ok((n, req.param("last").map(str::to_owned)))
}

fn next_link(path: &str, n: i64, items: &[String]) -> Option<(header::HeaderName, String)> {
    let last = items.last()?;
    (items.len() as i64 == n).then(|| (header::LINK, format!("<{path}?n={n}&last={last}>; rel=\"next\"")))
}

async fn tags(registry: &Registry, req: &Req, name: &str) -> OciResult<Response> {
    registry.authorize(req, Need::Repository(name, Action::Pull)).await?;
    let (n, last) = pagination(req)?;
    if !registry.store.repository_exists(name).await? {
        return Err(name_unknown(name));
    }
    let tags = if n == 0 { Vec::new() } else { registry.store.list_tags(name, last.as_deref(), n).await? };
    let link: Vec<_> = next_link(&format!("/v2/{name}/tags/list"), n, &tags).into_iter().collect();
    Ok(json(StatusCode::OK, &serde_json::json!({ "name": name, "tags": tags }), &link))
}

async fn catalog(registry: &Registry, req: &Req) -> OciResult<Response> {
    registry.authorize(req, Need::Catalog).await?;
    let (n, last) = pagination(req)?;
    let repositories = if n == 0 { Vec::new() } else { registry.store.list_repositories(last.as_deref(), n).await? };
    let link: Vec<_> = next_link("/v2/_catalog", n, &repositories).into_iter().collect();
    Ok(json(StatusCode::OK, &serde_json::json!({ "repositories": repositories }), &link))
}

async fn referrers(registry: &Registry, req: &Req, name: &str, digest: &str) -> OciResult<Response> {
    registry.authorize(req, Need::Repository(name, Action::Pull)).await?;
    let subject = parse_digest(digest)?;
    let filter = req.param("artifactType");
    let manifests: Vec<serde_json::Value> = registry
        .store
        .referrers(name, &subject)
        .await?
        .into_iter()
        .filter(|m| filter.is_none_or(|f| m.artifact_type.as_deref() == Some(f)))
        .map(|m| {
            let mut descriptor = serde_json::json!({ "mediaType": m.media_type, "digest": m.digest, "size": m.size });
            if let Some(artifact_type) = m.artifact_type {
                descriptor["artifactType"] = artifact_type.into();
            }
            if let Some(annotations) = m.annotations.and_then(|a| serde_json::from_str::<serde_json::Value>(&a).ok()) {
                descriptor["annotations"] = annotations;
            }
            descriptor
        })
        .collect();
    let body = serde_json::json!({ "schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": manifests });
    let mut headers = vec![(header::CONTENT_TYPE, manifest::OCI_INDEX.to_owned())];
    if filter.is_some() {
        headers.push((header::HeaderName::from_static("oci-filters-applied"), "artifactType".to_owned()));
    }
    Ok(respond(StatusCode::OK, &headers, Body::from(body.to_string())))
}

fn name_unknown(name: &str) -> OciError {
    OciError::new(Code::NameUnknown, format!("repository `{name}` is not known to this registry"))
        .with_detail(serde_json::json!({ "name": name }))
}

// ---------------------------------------------------------------------------------------------------
// Manifests

fn manifest_ref(reference: &str) -> OciResult<ManifestRef> {
    if reference.contains(':') {
        Ok(ManifestRef::Digest(parse_digest(reference)?))
    } else if name::valid_tag(reference) {
        Ok(ManifestRef::Tag(reference.to_owned()))
    } else {
        Err(OciError::new(Code::ManifestInvalid, format!("`{reference}` is neither a tag nor a digest"))
            .with_detail(serde_json::json!({ "reference": reference })))
    }
}

async fn manifest_unknown(registry: &Registry, name: &str, reference: &str) -> OciError {
    match registry.store.repository_exists(name).await {
        Ok(false) => name_unknown(name),
        _ => OciError::new(Code::ManifestUnknown, format!("manifest `{reference}` is not in `{name}`"))
            .with_detail(serde_json::json!({ "name": name, "reference": reference })),
    }
}

async fn get_manifest(registry: &Registry, req: &Req, name: &str, reference: &str) -> OciResult<Response> {
    let identity = registry.authorize_as(req, Need::Repository(name, Action::Pull)).await?;
    let wanted = manifest_ref(reference)?;
    let Some(found) = registry.store.get_manifest(name, &wanted).await? else {
        return Err(manifest_unknown(registry, name, reference).await);
    };
    let actor = match &identity {
        Identity::Internal => None,
        Identity::User(principal) => Some(principal.name.as_str()),
        Identity::Token(claims) if !claims.sub.is_empty() => Some(claims.sub.as_str()),
        Identity::Token(_) | Identity::Anonymous => Some("anonymous"),
    };
    if let Some(actor) = actor {
        gate(registry, actor, name, &wanted, &found.digest).await?;
    }
    let headers = [
        (header::CONTENT_TYPE, found.media_type.clone()),
        (header::CONTENT_LENGTH, found.content.len().to_string()),
        digest_header(&found.digest),
        (header::ETAG, format!("\"{}\"", found.digest)),
    ];
    let body = if req.method == Method::HEAD { Body::empty() } else { Body::from(found.content) };
    Ok(respond(StatusCode::OK, &headers, body))
}

/// Asks the gate about `actor`'s manifest pull; refuses it (enforce) or serves it and records an audit event
/// (warn).
async fn gate(registry: &Registry, actor: &str, name: &str, wanted: &ManifestRef, digest: &Digest) -> OciResult<()> {
    let Some(gate) = registry.config.gate.as_ref().filter(|_| registry.config.gate_mode != GateMode::Off) else {
        return Ok(());
    };
    let parents = registry.store.parents(name, digest).await?;
    let tag = match wanted {
        ManifestRef::Tag(tag) => Some(tag.as_str()),
        ManifestRef::Digest(_) => None,
    };
    let Some(reason) = gate.refusal(Pull { repository: name, tag, digest, parents: &parents }).await? else {
        return Ok(());
    };
    match registry.config.gate_mode {
        GateMode::Warn => {
            tracing::warn!(repository = name, %digest, reason = %reason, "gate (warn): serving a pull the catalog does not approve");
            registry.store.record_gate_warning(actor, name, digest, &reason).await?;
            Ok(())
        }
        _ => {
            Err(OciError::new(Code::Denied, reason).with_detail(serde_json::json!({ "name": name, "digest": digest })))
        }
    }
}

async fn put_manifest(registry: &Registry, req: &Req, name: &str, reference: &str, body: Body) -> OciResult<Response> {
    registry.authorize(req, Need::Repository(name, Action::Push)).await?;
    let wanted = manifest_ref(reference)?;
    let content = axum::body::to_bytes(body, manifest::MAX_MANIFEST_BYTES).await.map_err(|_| {
        OciError::new(Code::SizeInvalid, format!("a manifest is at most {} bytes", manifest::MAX_MANIFEST_BYTES))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    })?;
    let digest = Digest::from_sha256_bytes(sha2::Sha256::digest(&content).into());
    if let ManifestRef::Digest(given) = &wanted
        && *given != digest
    {
        return Err(OciError::new(Code::DigestInvalid, format!("the manifest's digest is {digest}, not {given}"))
            .with_detail(serde_json::json!({ "digest": given })));
    }
    let parsed = manifest::parse(&content, req.header(header::CONTENT_TYPE))?;
    let subject = parsed.subject.clone();
    let new = NewManifest {
        repository: name.to_owned(),
        digest: digest.clone(),
        media_type: parsed.media_type,
        artifact_type: parsed.artifact_type,
        content: content.to_vec(),
        subject: parsed.subject,
        annotations: parsed.annotations,
        references: parsed.references,
        tag: match wanted {
            ManifestRef::Tag(tag) => Some(tag),
            ManifestRef::Digest(_) => None,
        },
    };
    match registry.store.put_manifest(new).await? {
        PutManifest::Stored => {}
        PutManifest::Missing(missing) => {
            return Err(OciError::new(
                Code::ManifestBlobUnknown,
                format!(
                    "the manifest references {} {}, which `{name}` does not hold",
                    missing.kind.as_str(),
                    missing.digest
                ),
            )
            .with_detail(serde_json::json!({ "digest": missing.digest })));
        }
    }
    let mut headers = vec![
        (header::LOCATION, format!("/v2/{name}/manifests/{digest}")),
        (header::CONTENT_LENGTH, "0".to_owned()),
        digest_header(&digest),
    ];
    if let Some(subject) = subject {
        headers.push((header::HeaderName::from_static("oci-subject"), subject.to_string()));
    }
    Ok(respond(StatusCode::CREATED, &headers, Body::empty()))
}

async fn delete_manifest(registry: &Registry, req: &Req, name: &str, reference: &str) -> OciResult<Response> {
    registry.authorize(req, Need::Repository(name, Action::Delete)).await?;
    let deleted = match manifest_ref(reference)? {
        ManifestRef::Digest(digest) => registry.store.delete_manifest(name, &digest).await?,
        ManifestRef::Tag(tag) => registry.store.delete_tag(name, &tag).await?,
    };
    if !deleted {
        return Err(manifest_unknown(registry, name, reference).await);
    }
    Ok(respond(StatusCode::ACCEPTED, &[(header::CONTENT_LENGTH, "0".to_owned())], Body::empty()))
}

// ---------------------------------------------------------------------------------------------------
// Blobs

fn blob_unknown(digest: &Digest) -> OciError {
    OciError::new(Code::BlobUnknown, format!("blob {digest} is not in this repository"))
        .with_detail(serde_json::json!({ "digest": digest }))
}

/// The byte range `bytes=start-end` (or `start-`, or `-suffix`) of a blob of `size` bytes, as
/// `(start, length)`; `Err` when it cannot be served.
fn byte_range(text: &str, size: u64) -> Result<(u64, u64), ()> {
    let spec = text.trim().strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        return Err(());
    }
    let (start, end) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let suffix: u64 = suffix.parse().map_err(|_| ())?;
            if suffix == 0 || size == 0 {
                return Err(());
            }
            (size.saturating_sub(suffix), size - 1)
        }
        (start, "") => (start.parse().map_err(|_| ())?, size.saturating_sub(1)),
        (start, end) => {
            let (start, end): (u64, u64) = (start.parse().map_err(|_| ())?, end.parse().map_err(|_| ())?);
            (start, end.min(size.saturating_sub(1)))
        }
    };
    if start >= size || end < start {
        return Err(());
    }
    Ok((start, end - start + 1))
}

async fn get_blob(registry: &Registry, req: &Req, name: &str, digest: &str) -> OciResult<Response> {
    registry.authorize(req, Need::Repository(name, Action::Pull)).await?;
    let digest = parse_digest(digest)?;
    let Some(size) = registry.store.repository_blob(name, &digest).await? else {
        return Err(blob_unknown(&digest));
    };
    let size = size as u64;
    let (status, start, length) = match req.header(header::RANGE) {
        None => (StatusCode::OK, 0, size),
        Some(range) => match byte_range(range, size) {
            Ok((start, length)) => (StatusCode::PARTIAL_CONTENT, start, length),
            Err(()) => {
                return Err(OciError::new(
                    Code::BlobUnknown,
                    format!("range `{range}` is not within the blob's {size} bytes"),
                )
                .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
                .with_header(header::CONTENT_RANGE, format!("bytes */{size}")));
            }
        },
    };
    let mut headers = vec![
        (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
        (header::CONTENT_LENGTH, length.to_string()),
        (header::ACCEPT_RANGES, "bytes".to_owned()),
        digest_header(&digest),
        (header::ETAG, format!("\"{digest}\"")),
    ];
    if status == StatusCode::PARTIAL_CONTENT {
        headers.push((header::CONTENT_RANGE, format!("bytes {start}-{}/{size}", start + length - 1)));
    }
    if req.method == Method::HEAD {
        return Ok(respond(status, &headers, Body::empty()));
    }
    let file = registry.blobs.open_blob(&digest, start).await?;
    Ok(respond(status, &headers, Body::from_stream(file_stream(file, length))))
}

async fn delete_blob(registry: &Registry, req: &Req, name: &str, digest: &str) -> OciResult<Response> {
    registry.authorize(req, Need::Repository(name, Action::Delete)).await?;
    let digest = parse_digest(digest)?;
    if !registry.store.unlink_blob(name, &digest).await? {
        return Err(blob_unknown(&digest));
    }
    Ok(respond(StatusCode::ACCEPTED, &[(header::CONTENT_LENGTH, "0".to_owned())], Body::empty()))
}

// ---------------------------------------------------------------------------------------------------
// Uploads

fn new_upload_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    hex::encode(bytes)
}

fn upload_headers(name: &str, id: &str, size: u64) -> Vec<(header::HeaderName, String)> {
    vec![
        (header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}")),
        (header::RANGE, format!("0-{}", size.saturating_sub(1))),
        (header::CONTENT_LENGTH, "0".to_owned()),
        (header::HeaderName::from_static("docker-upload-uuid"), id.to_owned()),
    ]
}

fn blob_created(name: &str, digest: &Digest) -> Response {
    respond(
        StatusCode::CREATED,
        &[
            (header::LOCATION, format!("/v2/{name}/blobs/{digest}")),
            (header::CONTENT_LENGTH, "0".to_owned()),
            digest_header(digest),
        ],
        Body::empty(),
    )
}

fn append_error(error: AppendError) -> OciError {
    match error {
        AppendError::Body(message) => {
            OciError::new(Code::BlobUploadInvalid, format!("the upload's body ended early: {message}"))
        }
        AppendError::Io(error) => OciError::internal(error),
    }
}

async fn start_upload(registry: &Registry, req: &Req, name: &str, body: Body) -> OciResult<Response> {
    registry.authorize(req, Need::Repository(name, Action::Push)).await?;
    if let (Some(mount), Some(from)) = (req.param("mount"), req.param("from")) {
        let digest = parse_digest(mount)?;
        check_name(from)?;
        // A mount the caller may not read from is an ordinary upload.
        if registry.authorize(req, Need::Repository(from, Action::Pull)).await.is_ok()
            && let Some(size) = registry.store.repository_blob(from, &digest).await?
        {
            registry.store.link_blob(name, &digest, size).await?;
            return Ok(blob_created(name, &digest));
        }
    }
    let id = new_upload_id();
    if let Some(digest) = req.param("digest") {
        let digest = parse_digest(digest)?;
        registry.blobs.create_upload(&id).await?;
        let result = async {
            let size = registry.blobs.append(&id, 0, body.into_data_stream()).await.map_err(append_error)?;
            commit_upload(registry, name, &id, size, &digest).await
        }
        .await;
        if result.is_err() {
            let _ = registry.blobs.remove_upload(&id).await;
        }
        return result.map(|()| blob_created(name, &digest));
    }
    registry.blobs.create_upload(&id).await?;
    registry.store.create_upload(&id, name).await?;
    Ok(respond(StatusCode::ACCEPTED, &upload_headers(name, &id, 0), Body::empty()))
}

/// Verifies the upload's first `size` bytes against `digest` and makes them the blob; a mismatch ends the
/// upload.
async fn commit_upload(registry: &Registry, name: &str, id: &str, size: u64, digest: &Digest) -> OciResult<()> {
    let actual = registry.blobs.upload_digest(id, size).await?;
    if actual != *digest {
        registry.blobs.remove_upload(id).await?;
        registry.store.delete_upload(id).await?;
        return Err(OciError::new(
            Code::DigestInvalid,
            format!("the uploaded content's digest is {actual}, not {digest}"),
        )
        .with_detail(serde_json::json!({ "digest": digest })));
    }
    registry.blobs.commit(id, size, digest).await?;
    registry.store.link_blob(name, digest, size as i64).await?;
    registry.store.delete_upload(id).await?;
    Ok(())
}

async fn session(registry: &Registry, name: &str, id: &str) -> OciResult<image_core::oci::UploadSession> {
    match registry.store.get_upload(id).await? {
        Some(session) if session.repository == name => Ok(session),
        _ => Err(OciError::new(Code::BlobUploadUnknown, format!("upload `{id}` is not in progress in `{name}`"))
            .with_detail(serde_json::json!({ "id": id }))),
    }
}

/// `start-end` (inclusive) of a `Content-Range`.
fn content_range(text: &str) -> Option<(u64, u64)> {
    let text = text.trim();
    let text = text.strip_prefix("bytes ").or_else(|| text.strip_prefix("bytes=")).unwrap_or(text);
    let (range, _) = text.split_once('/').unwrap_or((text, ""));
    let (start, end) = range.split_once('-')?;
    let (start, end) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    (end >= start).then_some((start, end))
}

/// Appends the request's body to the upload, checking its `Content-Range` against what was received.
async fn append_chunk(
    registry: &Registry,
    req: &Req,
    name: &str,
    session: &image_core::oci::UploadSession,
    body: Body,
) -> OciResult<u64> {
    let offset = session.size as u64;
    let expected = match req.header(header::CONTENT_RANGE) {
        None => None,
        Some(text) => {
            let (start, end) = content_range(text).ok_or_else(|| {
                OciError::new(Code::BlobUploadInvalid, format!("`{text}` is not a Content-Range of the form start-end"))
            })?;
            if start != offset {
                return Err(OciError::new(
                    Code::BlobUploadInvalid,
                    format!("this chunk starts at {start}, but the upload has {offset} bytes"),
                )
                .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
                .with_header(header::RANGE, format!("0-{}", offset.saturating_sub(1)))
                .with_header(header::LOCATION, format!("/v2/{name}/blobs/uploads/{}", session.id)));
            }
            Some(end - start + 1)
        }
    };
    let declared = req.header(header::CONTENT_LENGTH).and_then(|l| l.parse::<u64>().ok());
    if let (Some(expected), Some(declared)) = (expected, declared)
        && expected != declared
    {
        return Err(OciError::new(
            Code::BlobUploadInvalid,
            format!("Content-Range says {expected} bytes, Content-Length {declared}"),
        )
        .with_status(StatusCode::RANGE_NOT_SATISFIABLE));
    }
    let size = registry.blobs.append(&session.id, offset, body.into_data_stream()).await.map_err(append_error)?;
    if let Some(expected) = expected
        && size - offset != expected
    {
        return Err(OciError::new(
            Code::BlobUploadInvalid,
            format!("the chunk has {} bytes, but its Content-Range says {expected}", size - offset),
        ));
    }
    if size != offset {
        registry.store.set_upload_size(&session.id, size as i64).await?;
    }
    Ok(size)
}

async fn patch_upload(registry: &Registry, req: &Req, name: &str, id: &str, body: Body) -> OciResult<Response> {
    registry.authorize(req, Need::Repository(name, Action::Push)).await?;
    session(registry, name, id).await?;
    let lock = registry.blobs.upload_lock(id);
    let _held = lock.lock().await;
    // Again under the lock: another request may have finished or cancelled it meanwhile.
    let session = session(registry, name, id).await?;
    let size = append_chunk(registry, req, name, &session, body).await?;
    Ok(respond(StatusCode::ACCEPTED, &upload_headers(name, id, size), Body::empty()))
}

async fn put_upload(registry: &Registry, req: &Req, name: &str, id: &str, body: Body) -> OciResult<Response> {
    registry.authorize(req, Need::Repository(name, Action::Push)).await?;
    session(registry, name, id).await?;
    let lock = registry.blobs.upload_lock(id);
    let _held = lock.lock().await;
    // Again under the lock: another request may have finished or cancelled it meanwhile.
    let session = session(registry, name, id).await?;
    let digest = parse_digest(
        req.param("digest")
            .ok_or_else(|| OciError::new(Code::DigestInvalid, "finishing an upload needs `?digest=`"))?,
    )?;
    let size = append_chunk(registry, req, name, &session, body).await?;
    commit_upload(registry, name, id, size, &digest).await?;
    Ok(blob_created(name, &digest))
}

async fn upload_status(registry: &Registry, req: &Req, name: &str, id: &str) -> OciResult<Response> {
    registry.authorize(req, Need::Repository(name, Action::Push)).await?;
    let session = session(registry, name, id).await?;
    Ok(respond(StatusCode::NO_CONTENT, &upload_headers(name, id, session.size as u64), Body::empty()))
}

async fn cancel_upload(registry: &Registry, req: &Req, name: &str, id: &str) -> OciResult<Response> {
    registry.authorize(req, Need::Repository(name, Action::Push)).await?;
    session(registry, name, id).await?;
    let lock = registry.blobs.upload_lock(id);
    let _held = lock.lock().await;
    session(registry, name, id).await?;
    registry.blobs.remove_upload(id).await?;
    registry.store.delete_upload(id).await?;
    Ok(respond(StatusCode::NO_CONTENT, &[(header::CONTENT_LENGTH, "0".to_owned())], Body::empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_endpoints() {
        assert_eq!(target("token"), Some(Target::Token));
        assert_eq!(target("_catalog"), Some(Target::Catalog));
        assert_eq!(target("a/b/tags/list"), Some(Target::Tags("a/b")));
        assert_eq!(target("a/manifests/v1"), Some(Target::Manifest("a", "v1")));
        assert_eq!(target("a/blobs/blobs/sha256:x"), Some(Target::Blob("a/blobs", "sha256:x")));
        assert_eq!(target("a/b/blobs/uploads/"), Some(Target::Uploads("a/b")));
        assert_eq!(target("a/b/blobs/uploads/abc"), Some(Target::Upload("a/b", "abc")));
        assert_eq!(target("a/referrers/sha256:x"), Some(Target::Referrers("a", "sha256:x")));
        assert_eq!(target("a/other/x"), None);
        assert_eq!(target("nothing"), None);
    }

    #[test]
    fn ranges() {
        assert_eq!(byte_range("bytes=0-9", 100), Ok((0, 10)));
        assert_eq!(byte_range("bytes=90-", 100), Ok((90, 10)));
        assert_eq!(byte_range("bytes=-5", 100), Ok((95, 5)));
        assert_eq!(byte_range("bytes=50-500", 100), Ok((50, 50)));
        assert!(byte_range("bytes=100-", 100).is_err());
        assert!(byte_range("bytes=5-1", 100).is_err());
        assert!(byte_range("items=0-1", 100).is_err());
        assert_eq!(content_range("0-99"), Some((0, 99)));
        assert_eq!(content_range("bytes 10-19/*"), Some((10, 19)));
        assert_eq!(content_range("9-1"), None);
    }

    #[test]
    fn queries_decode() {
        assert_eq!(
            parse_query("scope=repository%3Aa%2Fb%3Apull&n=2&x"),
            vec![("scope".into(), "repository:a/b:pull".into()), ("n".into(), "2".into()), ("x".into(), "".into())]
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
