//! The station profile's answers (seed 003), as schemas: sign-in, the registries, searches, a local or
//! remote image's tags and inspection, downloads.
//!
//! The handlers build these as JSON, their keys in the seed's order; these types mirror that shape field
//! for field, are never built, and refuse fields they do not name.

#![allow(dead_code)]

use schemars::JsonSchema;

/// `docker`: imagegate holds container images only.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Docker {
    Docker,
}

/// Where a search result is from.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum ResultRepository {
    Local,
    Dockerhub,
    Private,
}

/// The signed-in user.
#[derive(JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub(crate) struct SignedIn {
    /// Always false.
    anonymous: bool,
    is_admin: bool,
    /// When the session began, `2015-06-22 11:21:36` in UTC (now, for a token or Basic credentials).
    #[serde(rename = "logintime")]
    login_time: String,
    username: String,
}

/// Who signed out.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct SignedOut {
    username: String,
}

/// The station's registries, Docker Hub first.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Registries {
    registries: Vec<StationRegistry>,
}

/// A station registry: never its password.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct StationRegistry {
    enable_trust_cert: bool,
    /// 1 for Docker Hub.
    id: i64,
    /// Always empty.
    metadata: String,
    name: String,
    /// Always empty.
    password: String,
    url: String,
    username: String,
    /// The registry API version the station was told (`v1`, `v2`), or empty.
    version: String,
}

#[derive(JsonSchema)]
enum RegistryVersion {
    #[serde(rename = "v2")]
    V2,
}

/// The registry answered the `/v2/` handshake.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Pinged {
    version: RegistryVersion,
}

/// What was searched, the category defaulting to `local`.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum SearchCategory {
    Local,
    Qnap,
    Official,
    Dockerhub,
    Private,
}

/// `type` as asked: `docker`, `lxc`, or empty for any.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum SearchType {
    #[serde(rename = "")]
    Any,
    Docker,
    Lxc,
}

/// A search and what it found.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct SearchAnswer {
    category: SearchCategory,
    filter_text: String,
    /// Empty for `type=lxc`.
    results: Vec<SearchResult>,
    total_count: u64,
    #[serde(rename = "type")]
    kind: SearchType,
}

/// One result, by category.
#[derive(JsonSchema)]
#[serde(untagged)]
enum SearchResult {
    Local(LocalResult),
    Curated(CuratedResult),
    Official(OfficialResult),
    Hub(HubResult),
    Private(PrivateResult),
}

/// `category=local`: an image the internal registry holds, its tags and their sizes side by side.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct LocalResult {
    description: String,
    downloading: bool,
    icon: String,
    /// Always true.
    installed: bool,
    /// `["latest"]` when it has that tag, else empty.
    is_latest: Vec<String>,
    name: String,
    repository: ResultRepository,
    /// Bytes, one per tag.
    size: Vec<u64>,
    tags: Vec<String>,
    #[serde(rename = "type")]
    kind: Docker,
}

/// `category=qnap`: an image the catalog approves.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct CuratedResult {
    arch: String,
    description: String,
    downloading: bool,
    icon: String,
    /// Always empty.
    inspect: String,
    installed: bool,
    name: String,
    repository: ResultRepository,
    /// Always null.
    size: (),
    title: String,
    #[serde(rename = "type")]
    kind: Docker,
    /// The recommended tag, else the first not deprecated, else `latest`.
    version: String,
}

/// `category=official`: an official image the catalog approves, with its Docker Hub page.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct OfficialResult {
    arch: String,
    description: String,
    downloading: bool,
    icon: String,
    installed: bool,
    location: String,
    name: String,
    repository: ResultRepository,
    title: String,
    #[serde(rename = "type")]
    kind: Docker,
    version: String,
}

/// `category=dockerhub`: a repository Docker Hub's search found.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct HubResult {
    description: String,
    downloading: bool,
    installed: bool,
    is_official: bool,
    /// Built automatically from its source.
    is_trusted: bool,
    location: String,
    name: String,
    repository: ResultRepository,
    star_count: i64,
    #[serde(rename = "type")]
    kind: Docker,
}

/// `category=private`: a repository of the station registry `registry_name`.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
struct PrivateResult {
    /// Always empty.
    description: String,
    downloading: bool,
    installed: bool,
    name: String,
    registry_name: String,
    repository: ResultRepository,
    #[serde(rename = "type")]
    kind: Docker,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Downloading {
    Downloading,
}

/// An import in progress.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct Download {
    name: String,
    /// Null until the layers' sizes are known.
    percent: Option<u64>,
    /// `downloading`, for queued and running alike.
    status: Downloading,
}

/// `<name>/tags`, or `…/inspect` and `…/remote_inspect`.
#[derive(JsonSchema)]
#[serde(untagged)]
pub(crate) enum Browsed {
    Tags(ImageTags),
    Inspect(Box<ImageInspect>),
}

/// Every tag of an image in its registry, and those the internal registry holds.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct ImageTags {
    installed: Vec<String>,
    name: String,
    tags: Vec<String>,
}

/// An image's config in Docker's inspect shape.
#[derive(JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(deny_unknown_fields)]
pub(crate) struct ImageInspect {
    architecture: String,
    author: String,
    comment: String,
    config: ContainerConfig,
    container: String,
    container_config: ContainerConfig,
    created: String,
    docker_version: String,
    /// The config's digest without `sha256:`.
    id: String,
    os: String,
    /// Always empty.
    parent: String,
    /// Read from the source registry rather than the internal one.
    remote: bool,
    /// Always 0.
    size: u64,
    /// Config and layers, in bytes; 0 when remote.
    virtual_size: u64,
}

/// The keys of a Docker 1.6 container config; each value is the image config's, as its registry gives it,
/// or Docker's default when it has none.
#[derive(JsonSchema)]
#[serde(rename_all = "PascalCase")]
#[schemars(deny_unknown_fields)]
struct ContainerConfig {
    attach_stderr: serde_json::Value,
    attach_stdin: serde_json::Value,
    attach_stdout: serde_json::Value,
    cmd: serde_json::Value,
    cpu_shares: serde_json::Value,
    cpuset: serde_json::Value,
    domainname: serde_json::Value,
    entrypoint: serde_json::Value,
    env: serde_json::Value,
    exposed_ports: serde_json::Value,
    hostname: serde_json::Value,
    image: serde_json::Value,
    labels: serde_json::Value,
    mac_address: serde_json::Value,
    memory: serde_json::Value,
    memory_swap: serde_json::Value,
    network_disabled: serde_json::Value,
    on_build: serde_json::Value,
    open_stdin: serde_json::Value,
    port_specs: serde_json::Value,
    stdin_once: serde_json::Value,
    tty: serde_json::Value,
    user: serde_json::Value,
    volumes: serde_json::Value,
    working_dir: serde_json::Value,
}

/// A download queued, or found already queued or done.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct DownloadQueued {}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum DeleteAction {
    Delete,
}

#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
enum DeleteState {
    Success,
}

/// A local image deleted, every tag of it.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
pub(crate) struct LocalDeleted {
    action: DeleteAction,
    name: String,
    state: DeleteState,
    #[serde(rename = "type")]
    kind: Docker,
}
