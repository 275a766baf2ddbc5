//! A typed async client for imagegate's HTTP API: sign-in, the catalog and its approvals and admission
//! check, imports and their progress, registry secrets and repositories, and users.
//!
//! Each call returns a [`Reply`], the typed answer together with the JSON the server sent, or an
//! [`Error`] that carries the server's status, error word and message.

mod error;
pub mod types;

use std::{ops::Deref, time::Duration};

use reqwest::{Method, RequestBuilder, Url};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

pub use error::{ApiError, Error};
pub use types::*;

/// The server's address when none is given.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:5375";

/// The namespace that lists registry secrets and repositories of every namespace.
pub const ALL_NAMESPACES: &str = "_all_";

const KUBE: &[&str] = &["oapis", "image.theriseunion.io", "v1alpha1", "namespaces"];
const KUBE_API_VERSION: &str = "image.theriseunion.io/v1alpha1";

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A typed answer and the exact JSON it was read from.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    value: T,
    json: Value,
}

impl<T> Reply<T> {
    /// The answer's JSON, as the server sent it.
    pub fn json(&self) -> &Value {
        &self.json
    }

    pub fn into_inner(self) -> T {
        self.value
    }

    /// Both halves.
    pub fn into_parts(self) -> (T, Value) {
        (self.value, self.json)
    }
}

impl<T> Deref for Reply<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// One imagegate server, with or without an API token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl Client {
    /// A client of the server at `server` (`http://host:port`, optionally with a path prefix), with a
    /// 10 s connect timeout and a 60 s timeout per request.
    pub fn new(server: &str) -> Result<Client> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("imagegate-api-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Transport { url: server.to_owned(), reason: e.to_string() })?;
        Client::with_http(server, http)
    }

    /// A client that sends its requests through `http`.
    pub fn with_http(server: &str, http: reqwest::Client) -> Result<Client> {
        let invalid = || Error::InvalidServer(server.to_owned());
        let base = Url::parse(server.trim_end_matches('/')).map_err(|_| invalid())?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() || base.cannot_be_a_base() {
            return Err(invalid());
        }
        Ok(Client { http, base, token: None })
    }

    /// Sends `token` as a bearer token from now on; `None` makes the client anonymous.
    pub fn set_token(&mut self, token: Option<String>) {
        self.token = token;
    }

    /// The same client, with `token`.
    pub fn with_token(mut self, token: impl Into<String>) -> Client {
        self.token = Some(token.into());
        self
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The server's address.
    pub fn server(&self) -> &Url {
        &self.base
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        // `with_http` refused addresses that cannot be a base, so there are segments to extend.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> (RequestBuilder, String) {
        let url = self.url(segments);
        let shown = url.to_string();
        let mut builder = self.http.request(method, url);
        if let Some(token) = &self.token {
            builder = builder.bearer_auth(token);
        }
        (builder, shown)
    }

    /// Sends a request and returns the status and body of a success, or the error answer.
    async fn send(&self, builder: RequestBuilder, url: &str) -> Result<Vec<u8>> {
        let response = builder.send().await.map_err(|e| transport(url, &e))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| transport(url, &e))?;
        if !status.is_success() {
            return Err(Error::Api(Box::new(ApiError::from_body(status.as_u16(), &body))));
        }
        Ok(body.to_vec())
    }

    async fn call<T: DeserializeOwned>(&self, builder: RequestBuilder, url: &str) -> Result<Reply<T>> {
        let body = self.send(builder, url).await?;
        decode(&body, url)
    }

    async fn get<T: DeserializeOwned>(&self, segments: &[&str], query: &impl Serialize) -> Result<Reply<T>> {
        let (builder, url) = self.request(Method::GET, segments);
        self.call(builder.query(query), &url).await
    }

    async fn post<T: DeserializeOwned>(&self, segments: &[&str], body: &impl Serialize) -> Result<Reply<T>> {
        let (builder, url) = self.request(Method::POST, segments);
        self.call(builder.json(body), &url).await
    }

    async fn put<T: DeserializeOwned>(&self, segments: &[&str], body: &impl Serialize) -> Result<Reply<T>> {
        let (builder, url) = self.request(Method::PUT, segments);
        self.call(builder.json(body), &url).await
    }

    async fn delete<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<Reply<T>> {
        let (builder, url) = self.request(Method::DELETE, segments);
        self.call(builder, &url).await
    }

    /// A request whose answer has no body worth reading (`204`, or a bare `200`).
    async fn no_content(&self, method: Method, segments: &[&str], body: Option<&Value>) -> Result<()> {
        let (mut builder, url) = self.request(method, segments);
        if let Some(body) = body {
            builder = builder.json(body);
        }
        self.send(builder, &url).await.map(drop)
    }

    // ---- sign-in --------------------------------------------------------------------------------------

    /// `POST /api/v1/auth/token`: trades a user name and password for an API token. The client keeps
    /// using the token it had (if any): call [`Client::set_token`] to use the new one.
    pub async fn sign_in(&self, username: &str, password: &str) -> Result<Reply<Token>> {
        self.post(&["api", "v1", "auth", "token"], &json!({ "username": username, "password": password })).await
    }

    /// `DELETE /api/v1/auth/token`: revokes the token this client sends.
    pub async fn revoke_token(&self) -> Result<()> {
        self.no_content(Method::DELETE, &["api", "v1", "auth", "token"], None).await
    }

    /// `GET /api/v1/auth/tokens`: the caller's live tokens.
    pub async fn list_tokens(&self) -> Result<Reply<TokenList>> {
        self.get(&["api", "v1", "auth", "tokens"], &()).await
    }

    // ---- catalog --------------------------------------------------------------------------------------

    pub async fn list_images(&self, query: &ImageQuery) -> Result<Reply<ImageList>> {
        self.get(&["catalog", "api", "v1", "images"], query).await
    }

    /// One catalog image with its tags.
    pub async fn get_image(&self, id: i64) -> Result<Reply<ImageDetails>> {
        self.get(&["catalog", "api", "v1", "images", &id.to_string()], &()).await
    }

    /// Adds an image to the catalog (admins).
    pub async fn create_image(&self, image: &NewImage) -> Result<Reply<ImageSummary>> {
        self.post(&["catalog", "api", "v1", "images"], image).await
    }

    /// Changes an image's description, category, approval status or official flag (admins).
    pub async fn update_image(&self, id: i64, update: &ImageUpdate) -> Result<Reply<ImageSummary>> {
        self.put(&["catalog", "api", "v1", "images", &id.to_string()], update).await
    }

    /// Deletes an image and its tags (admins).
    pub async fn delete_image(&self, id: i64) -> Result<Reply<DeletedImage>> {
        self.delete(&["catalog", "api", "v1", "images", &id.to_string()]).await
    }

    /// Adds a tag to an image (admins).
    pub async fn create_tag(&self, image_id: i64, tag: &NewTag) -> Result<Reply<Tag>> {
        self.post(&["catalog", "api", "v1", "images", &image_id.to_string(), "tags"], tag).await
    }

    /// Changes a tag (admins); `tag_id` is the tag's `id`, not its name.
    pub async fn update_tag(&self, image_id: i64, tag_id: i64, update: &TagUpdate) -> Result<Reply<Tag>> {
        self.put(&["catalog", "api", "v1", "images", &image_id.to_string(), "tags", &tag_id.to_string()], update).await
    }

    pub async fn delete_tag(&self, image_id: i64, tag_id: i64) -> Result<Reply<DeletedTag>> {
        self.delete(&["catalog", "api", "v1", "images", &image_id.to_string(), "tags", &tag_id.to_string()]).await
    }

    pub async fn list_approval_requests(&self, query: &RequestQuery) -> Result<Reply<RequestList>> {
        self.get(&["catalog", "api", "v1", "approval-requests"], query).await
    }

    pub async fn get_approval_request(&self, id: i64) -> Result<Reply<ApprovalRequest>> {
        self.get(&["catalog", "api", "v1", "approval-requests", &id.to_string()], &()).await
    }

    /// Files an approval request; any signed-in user may.
    pub async fn request_approval(&self, request: &NewApprovalRequest) -> Result<Reply<ApprovalRequest>> {
        self.post(&["catalog", "api", "v1", "approval-requests"], request).await
    }

    /// Approves a pending request (admins): the image (and tag) join the catalog, approved.
    pub async fn approve(&self, id: i64, approval: &Approval) -> Result<Reply<Decided>> {
        self.post(&["catalog", "api", "v1", "approval-requests", &id.to_string(), "approve"], approval).await
    }

    /// Rejects a pending request (admins), saying why.
    pub async fn reject(&self, id: i64, reason: &str, notes: Option<&str>) -> Result<Reply<Decided>> {
        let mut body = json!({ "reason": reason });
        if let Some(notes) = notes {
            body["notes"] = notes.into();
        }
        self.post(&["catalog", "api", "v1", "approval-requests", &id.to_string(), "reject"], &body).await
    }

    /// The admission decision for `image`: a refusal (403 not approved, 404 tag not listed) is an
    /// [`Admission::Refused`], not an error; with `request_approval`, a refusal files an approval request.
    pub async fn check_admission(&self, image: &str, request_approval: bool) -> Result<Reply<Admission>> {
        let (builder, url) = self.request(Method::POST, &["catalog", "api", "v1", "admission", "check"]);
        let builder = builder.json(&json!({ "image": image, "request_approval": request_approval }));
        match self.send(builder, &url).await {
            Ok(body) => {
                let reply: Reply<Value> = decode(&body, &url)?;
                let text = |path: &[&str]| {
                    let mut value = &reply.json;
                    for key in path {
                        value = value.get(key).unwrap_or(&Value::Null);
                    }
                    value.as_str().unwrap_or_default().to_owned()
                };
                let parts =
                    [text(&["image", "registry"]), text(&["image", "namespace"]), text(&["image", "image_name"])];
                let image = parts.iter().filter(|p| !p.is_empty()).cloned().collect::<Vec<_>>().join("/");
                let warnings = match reply.json.get("warnings") {
                    Some(Value::Array(w)) => w.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                    _ => Vec::new(),
                };
                let value = Admission::Allowed { image, tag: text(&["tag", "tag"]), warnings };
                Ok(Reply { value, json: reply.json })
            }
            Err(Error::Api(e)) if e.status == 403 || e.status == 404 => {
                let e = *e;
                let json = e.body.clone().unwrap_or(Value::Null);
                Ok(Reply { value: Admission::Refused { status: e.status, code: e.code, message: e.message }, json })
            }
            Err(e) => Err(e),
        }
    }

    // ---- imports --------------------------------------------------------------------------------------

    /// `POST /api/v1/images:import`: queues an import, or names the import that already holds the
    /// source. A refused import (`state: 0`) is an [`Error::Api`] with the server's reason.
    pub async fn import(&self, request: &ImportRequest) -> Result<Reply<ImportAnswer>> {
        self.post(&["api", "v1", "images:import"], request).await
    }

    /// Imports grouped by internal repository, newest first.
    pub async fn list_imports(&self, query: &ImportQuery) -> Result<Reply<ImportList>> {
        self.get(&["api", "v1", "images"], query).await
    }

    /// An import's status, attempts and per-layer progress.
    pub async fn import_details(&self, id: i64) -> Result<Reply<ImportDetails>> {
        self.get(&["api", "v1", "images", &id.to_string(), "importing-details"], &()).await
    }

    /// An import's progress in bytes, per blob.
    pub async fn import_progress(&self, id: i64) -> Result<Reply<ImportProgress>> {
        self.get(&["api", "v1", "images", &id.to_string(), "progress"], &()).await
    }

    /// Polls an import's progress every `interval` until it ends, calling `on_change` with each answer
    /// that differs from the one before (the first included), and returns the last one.
    pub async fn follow_import(
        &self,
        id: i64,
        interval: Duration,
        on_change: impl FnMut(&Reply<ImportProgress>),
    ) -> Result<Reply<ImportProgress>> {
        poll_until_finished(interval, || self.import_progress(id), ImportProgress::is_finished, on_change).await
    }

    /// Stops a queued or running import (admins).
    pub async fn cancel_import(&self, id: i64) -> Result<Reply<Canceled>> {
        self.post(&["api", "v1", "images", &id.to_string(), "cancel"], &json!({})).await
    }

    /// Polls an import every `interval` until it ends, calling `on_change` with each answer that differs
    /// from the one before (the first included), and returns the last one. A failed import is an `Ok`:
    /// look at [`ImportDetails::is_ready`].
    pub async fn wait_for_import(
        &self,
        id: i64,
        interval: Duration,
        on_change: impl FnMut(&Reply<ImportDetails>),
    ) -> Result<Reply<ImportDetails>> {
        poll_until_finished(interval, || self.import_details(id), ImportDetails::is_finished, on_change).await
    }

    // ---- registry secrets and repositories ------------------------------------------------------------

    fn kube<'a>(namespace: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
        KUBE.iter().copied().chain([namespace]).chain(rest.iter().copied()).collect()
    }

    /// A namespace's registry secrets; [`ALL_NAMESPACES`] lists every namespace's.
    pub async fn list_registry_secrets(
        &self,
        namespace: &str,
        query: &ResourceQuery,
    ) -> Result<Reply<ResourceList<RegistrySecret>>> {
        self.get(&Self::kube(namespace, &["registry-secrets"]), query).await
    }

    pub async fn get_registry_secret(&self, namespace: &str, name: &str) -> Result<Reply<RegistrySecret>> {
        self.get(&Self::kube(namespace, &["registry-secrets", name]), &()).await
    }

    /// Stores a registry secret (admins); `spec.password` is required here and never returned.
    pub async fn create_registry_secret(
        &self,
        metadata: &ObjectMeta,
        spec: &RegistrySecretSpec,
    ) -> Result<Reply<RegistrySecret>> {
        let body =
            json!({ "apiVersion": KUBE_API_VERSION, "kind": "RegistrySecret", "metadata": metadata, "spec": spec });
        self.post(&Self::kube(&metadata.namespace, &["registry-secrets"]), &body).await
    }

    pub async fn delete_registry_secret(&self, namespace: &str, name: &str) -> Result<()> {
        self.no_content(Method::DELETE, &Self::kube(namespace, &["registry-secrets", name]), None).await
    }

    /// Checks a stored secret against its registry (the `/v2/` handshake) with its stored credentials.
    pub async fn verify_registry_secret(&self, namespace: &str, name: &str) -> Result<Reply<Outcome>> {
        self.post(&Self::kube(namespace, &["registry-secrets", name, "verify"]), &json!({})).await
    }

    /// A namespace's repositories; [`ALL_NAMESPACES`] lists every namespace's.
    pub async fn list_repositories(
        &self,
        namespace: &str,
        query: &ResourceQuery,
    ) -> Result<Reply<ResourceList<Repository>>> {
        self.get(&Self::kube(namespace, &["repositories"]), query).await
    }

    pub async fn get_repository(&self, namespace: &str, name: &str) -> Result<Reply<Repository>> {
        self.get(&Self::kube(namespace, &["repositories", name]), &()).await
    }

    /// Creates a repository (admins): its tag is synced now and every `syncInterval`.
    pub async fn create_repository(&self, metadata: &ObjectMeta, spec: &RepositorySpec) -> Result<Reply<Repository>> {
        let body = json!({ "apiVersion": KUBE_API_VERSION, "kind": "Repository", "metadata": metadata, "spec": spec });
        self.post(&Self::kube(&metadata.namespace, &["repositories"]), &body).await
    }

    pub async fn delete_repository(&self, namespace: &str, name: &str) -> Result<()> {
        self.no_content(Method::DELETE, &Self::kube(namespace, &["repositories", name]), None).await
    }

    /// Queues a sync of the repository now (admins).
    pub async fn sync_repository(&self, namespace: &str, name: &str) -> Result<Reply<Outcome>> {
        self.post(&Self::kube(namespace, &["repositories", name, "sync"]), &json!({})).await
    }

    // ---- users ----------------------------------------------------------------------------------------

    /// Every user (admins).
    pub async fn list_users(&self) -> Result<Reply<UserList>> {
        self.get(&["api", "v1", "users"], &()).await
    }

    /// Adds a user (admins); `role` is `user` or `admin`.
    pub async fn create_user(&self, username: &str, password: &str, role: &str) -> Result<Reply<User>> {
        self.post(&["api", "v1", "users"], &json!({ "username": username, "password": password, "role": role })).await
    }

    /// Changes a user's role, password, or both (admins); a new password ends the user's tokens.
    pub async fn update_user(&self, username: &str, role: Option<&str>, password: Option<&str>) -> Result<Reply<User>> {
        let mut body = json!({});
        if let Some(role) = role {
            body["role"] = role.into();
        }
        if let Some(password) = password {
            body["password"] = password.into();
        }
        self.put(&["api", "v1", "users", username], &body).await
    }

    pub async fn delete_user(&self, username: &str) -> Result<()> {
        self.no_content(Method::DELETE, &["api", "v1", "users", username], None).await
    }

    /// Changes the caller's own password; every token of the caller, this one included, stops working.
    pub async fn change_password(&self, current: &str, new: &str) -> Result<()> {
        let body = json!({ "currentPassword": current, "newPassword": new });
        self.no_content(Method::PUT, &["api", "v1", "users", "me", "password"], Some(&body)).await
    }

    // ---- robot accounts of the built-in registry ----------------------------------------------------

    /// Every robot account, expired ones included (admins).
    pub async fn list_robots(&self) -> Result<Reply<RobotList>> {
        self.get(&["api", "v1", "robots"], &()).await
    }

    /// Creates a robot account (admins): `repositories` are exact names or a prefix and `/*`, `actions`
    /// `pull`, `push` and `delete`, `expires_in` a Go duration. The answer's `secret` is shown only here.
    pub async fn create_robot(
        &self,
        name: &str,
        repositories: &[String],
        actions: &[String],
        expires_in: Option<&str>,
    ) -> Result<Reply<Robot>> {
        let mut body = json!({ "name": name, "repositories": repositories, "actions": actions });
        if let Some(expires_in) = expires_in {
            body["expiresIn"] = expires_in.into();
        }
        self.post(&["api", "v1", "robots"], &body).await
    }

    /// Deletes a robot account (admins); it stops working at once.
    pub async fn delete_robot(&self, name: &str) -> Result<()> {
        self.no_content(Method::DELETE, &["api", "v1", "robots", name], None).await
    }

    // ---- inventory and the internal registry ------------------------------------------------------------

    /// `GET /images` (seed 004): this server's node, or `node`'s last report.
    pub async fn node_images(&self, node: Option<&str>) -> Result<Reply<NodeImages>> {
        self.get(&["images"], &NodeQuery { node }).await
    }

    /// The nodes of the fleet.
    pub async fn list_nodes(&self) -> Result<Reply<NodeList>> {
        self.get(&["api", "v1", "nodes"], &()).await
    }

    /// Images running on the nodes (or on `node`) that the catalog does not approve.
    pub async fn drift(&self, node: Option<&str>) -> Result<Reply<Drift>> {
        self.get(&["api", "v1", "drift"], &NodeQuery { node }).await
    }

    /// The internal registry's health and counts (seed 000's Harbor statistics).
    pub async fn registry_stats(&self) -> Result<Reply<RegistryStats>> {
        self.get(&["api", "v1", "harbor", "stats"], &()).await
    }

    /// A request to a path of the API not covered above, answered as JSON (for example
    /// `get_json(&["catalog", "api", "v1", "images", "categories"])`).
    pub async fn get_json(&self, segments: &[&str]) -> Result<Reply<Value>> {
        self.get(segments, &()).await
    }

    /// `PUT` of a JSON body to a path of the API not covered above.
    pub async fn put_json(&self, segments: &[&str], body: &Value) -> Result<Reply<Value>> {
        self.put(segments, body).await
    }
}

fn transport(url: &str, e: &reqwest::Error) -> Error {
    // reqwest's own message says only "error sending request"; the cause says why.
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        reason = cause.to_string();
        source = cause.source();
    }
    if e.is_timeout() {
        reason = format!("timed out ({reason})");
    }
    Error::Transport { url: url.to_owned(), reason }
}

fn decode<T: DeserializeOwned>(body: &[u8], url: &str) -> Result<Reply<T>> {
    let decode_error = |e: serde_json::Error| Error::Decode { url: url.to_owned(), reason: e.to_string() };
    let json: Value = serde_json::from_slice(body).map_err(decode_error)?;
    let value = T::deserialize(&json).map_err(decode_error)?;
    Ok(Reply { value, json })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_joined_and_escaped_under_the_base() {
        let client = Client::new("http://127.0.0.1:5375/prefix/").unwrap();
        assert_eq!(
            client.url(&["api", "v1", "images:import"]).as_str(),
            "http://127.0.0.1:5375/prefix/api/v1/images:import"
        );
        let kube = Client::kube("team a", &["repositories", "x/y?z"]);
        assert_eq!(
            client.url(&kube).as_str(),
            "http://127.0.0.1:5375/prefix/oapis/image.theriseunion.io/v1alpha1/namespaces/team%20a/repositories/x%2Fy%3Fz"
        );
    }

    #[test]
    fn only_http_servers_are_accepted() {
        for bad in ["", "127.0.0.1:5375", "ftp://host", "http://", "mailto:a@b", "not a url"] {
            assert!(matches!(Client::new(bad), Err(Error::InvalidServer(_))), "{bad}");
        }
        assert!(Client::new("https://imagegate.example.com").is_ok());
    }

    #[test]
    fn a_success_body_that_does_not_fit_is_a_decode_error() {
        assert!(matches!(decode::<ImageList>(b"<html>", "u"), Err(Error::Decode { .. })));
        assert!(matches!(decode::<ImageList>(br#"{"images": 3}"#, "u"), Err(Error::Decode { .. })));
        let reply = decode::<ImageList>(br#"{"images": [], "total": 0, "new": true}"#, "u").unwrap();
        assert_eq!((reply.total, reply.json()["new"].as_bool()), (0, Some(true)));
    }
}

/// `?node=NAME`, left out when none.
#[derive(Serialize)]
struct NodeQuery<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a str>,
}

/// Fetches an answer every `interval` until `finished` says it is the last, calling `on_change` with each
/// answer that differs from the one before (the first included); returns the last one.
async fn poll_until_finished<T, F, Fut>(
    interval: Duration,
    mut fetch: F,
    finished: fn(&T) -> bool,
    mut on_change: impl FnMut(&Reply<T>),
) -> Result<Reply<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Reply<T>>>,
{
    let mut last: Option<Value> = None;
    loop {
        let answer = fetch().await?;
        if last.as_ref() != Some(answer.json()) {
            on_change(&answer);
            last = Some(answer.json().clone());
        }
        if finished(&answer) {
            return Ok(answer);
        }
        tokio::time::sleep(interval).await;
    }
}
