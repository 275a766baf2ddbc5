//! One [`Doc`] per route, in the order [`crate::routes`] declares them.
//!
//! A new route gets its entry here, in the group of its profile:
//! `Doc::new(METHOD, PATH, SUMMARY, DESCRIPTION)`, then `.query::<Q>()` and `.body::<B>()` with the types
//! its handler reads (deriving `JsonSchema`), one `.ok::<T>(status, …)` or `.answer(…)` per success, and
//! `.status(&[…])` for error statuses beyond those the route implies (see [`super`]).

use super::{
    Content::*, Doc, Errors, accounts, catalog as schemas, integrations as integration, kube as kube_schemas,
    platform as platform_schemas, station as station_schemas,
};
use crate::{
    auth,
    profile::{admission_review, catalog, harbor, inventory, kube, platform, progress, station, webhooks},
    robots, users,
};

const CATALOG: &str = "/catalog/api/v1";
const KUBE: &str = "/oapis/image.theriseunion.io/v1alpha1/namespaces/{namespace}";

/// Every entry, in the order of the routes.
pub fn entries() -> Vec<Doc> {
    let mut docs = vec![
        Doc::new("GET", "/healthz", "Liveness", "Answers while the process serves requests; it asks nothing else.")
            .ok::<schemas::Probe>(200, "`{\"status\": \"ok\"}`"),
        Doc::new(
            "GET",
            "/readyz",
            "Readiness",
            "Ready when the database answers and the secret key opens the stored registry passwords.",
        )
        .ok::<schemas::Probe>(200, "`{\"status\": \"ready\"}`")
        .ok::<schemas::Probe>(503, "Not ready: `{\"status\": \"unavailable\", \"message\": …}`"),
    ];
    docs.extend(sign_in());
    docs.extend(catalog_profile());
    docs.extend(platform_profile());
    docs.extend(kube_profile());
    docs.extend(station_profile());
    docs.extend(integrations());
    docs
}

fn sign_in() -> Vec<Doc> {
    vec![
        Doc::new(
            "POST",
            "/api/v1/auth/token",
            "Sign in for an API token",
            "Trades a user's name and password for a bearer token that works for the server's `--token-ttl`. \
             Wrong passwords are rate-limited per user and address (429 with `Retry-After`).",
        )
        .body::<auth::TokenRequest>()
        .ok::<accounts::IssuedToken>(200, "The token and when it expires")
        .status(&[401, 429]),
        Doc::new("DELETE", "/api/v1/auth/token", "Sign out", "Revokes the bearer token the request carries.")
            .answer(204, "Revoked", Empty),
        Doc::new(
            "GET",
            "/api/v1/auth/tokens",
            "List API tokens",
            "The caller's tokens (never their secrets); an admin may name another user with `?user=`.",
        )
        .query::<auth::TokensQuery>()
        .ok::<accounts::TokenList>(200, "The user's tokens")
        .status(&[404]),
        Doc::new(
            "DELETE",
            "/api/v1/auth/tokens/{id}",
            "Revoke an API token",
            "Revokes one of the caller's tokens by id (an admin: anyone's); another user's token is not found.",
        )
        .answer(204, "Revoked", Empty),
        Doc::new("GET", "/api/v1/users", "List users", "Every user with their role.")
            .ok::<accounts::UserList>(200, "The users"),
        Doc::new("POST", "/api/v1/users", "Add a user", "A new user with the role `user` or `admin`.")
            .body::<users::NewUserRequest>()
            .ok::<accounts::UserView>(201, "The user")
            .status(&[409]),
        Doc::new(
            "PUT",
            "/api/v1/users/{name}",
            "Change a user",
            "Sets a user's role or password; a new password ends their tokens and sessions. The last admin \
             cannot be demoted.",
        )
        .body::<users::UserUpdateRequest>()
        .ok::<accounts::UserView>(200, "The user")
        .status(&[409]),
        Doc::new(
            "DELETE",
            "/api/v1/users/{name}",
            "Delete a user",
            "Deletes a user with their tokens and sessions; the last admin cannot be deleted.",
        )
        .answer(204, "Deleted", Empty)
        .status(&[409]),
        Doc::new(
            "PUT",
            "/api/v1/users/me/password",
            "Change one's own password",
            "Checks the current password and sets a new one, ending the caller's other tokens and sessions.",
        )
        .body::<users::PasswordChange>()
        .answer(204, "Changed", Empty)
        .status(&[403, 429]),
    ]
}

fn catalog_profile() -> Vec<Doc> {
    let at = |path: &str| format!("{CATALOG}{path}");
    vec![
        Doc::new(
            "GET",
            at("/images"),
            "List catalog images",
            "Images, filtered by status, category or a search term, a page at a time.",
        )
        .query::<catalog::ListQuery>()
        .ok::<schemas::ImageList>(200, "A page of images and the total"),
        Doc::new(
            "POST",
            at("/images"),
            "Add a catalog image",
            "An admin adds an image, approved unless `approval_status` says otherwise.",
        )
        .body::<catalog::CreateImage>()
        .ok::<schemas::CatalogImage>(201, "The image")
        .status(&[409]),
        Doc::new("GET", at("/images/categories"), "List categories", "Each category with how many images it has.")
            .ok::<schemas::Categories>(200, "Each category and its count"),
        Doc::new("GET", at("/images/{id}"), "Get a catalog image", "One image with its tags.")
            .ok::<schemas::ImageDetails>(200, "The image and its tags"),
        Doc::new(
            "PUT",
            at("/images/{id}"),
            "Change a catalog image",
            "Changes an image's description, category, approval status or official mark.",
        )
        .body::<catalog::UpdateImage>()
        .ok::<schemas::CatalogImage>(200, "The image")
        .status(&[409]),
        Doc::new("DELETE", at("/images/{id}"), "Delete a catalog image", "Deletes an image with its tags.")
            .ok::<schemas::ImageDeleted>(200, "The deleted image")
            .status(&[409]),
        Doc::new(
            "POST",
            at("/images/{id}/tags"),
            "Add a tag",
            "Adds a tag to an image; a recommended one unmarks the image's others.",
        )
        .body::<catalog::CreateTag>()
        .ok::<schemas::Tag>(201, "The tag")
        .status(&[409]),
        Doc::new(
            "PUT",
            at("/images/{id}/tags/{tag_id}"),
            "Change a tag",
            "Changes a tag's fields; marking it recommended unmarks the image's others.",
        )
        .body::<catalog::UpdateTag>()
        .ok::<schemas::Tag>(200, "The tag")
        .status(&[409]),
        Doc::new("DELETE", at("/images/{id}/tags/{tag_id}"), "Delete a tag", "Removes a tag from an image's list.")
            .ok::<schemas::TagDeleted>(200, "The deleted tag")
            .status(&[409]),
        Doc::new(
            "GET",
            at("/approval-requests"),
            "List approval requests",
            "Requests, filtered by status, a page at a time.",
        )
        .query::<catalog::RequestQuery>()
        .ok::<schemas::RequestList>(200, "A page of requests and the total"),
        Doc::new(
            "POST",
            at("/approval-requests"),
            "Ask for an approval",
            "Any user asks for an image (and a tag) to be approved.",
        )
        .body::<catalog::CreateRequest>()
        .ok::<schemas::ApprovalRequest>(201, "The request")
        .status(&[409]),
        Doc::new(
            "GET",
            at("/approval-requests/{id}"),
            "Get an approval request",
            "One request with its decision, if any.",
        )
        .ok::<schemas::ApprovalRequest>(200, "The request"),
        Doc::new(
            "POST",
            at("/approval-requests/{id}/approve"),
            "Approve a request",
            "Approves a pending request, creating or approving its image and tag.",
        )
        .optional_body::<catalog::ApproveBody>()
        .ok::<schemas::Approved>(200, "The request and the approved image")
        .status(&[409]),
        Doc::new(
            "POST",
            at("/approval-requests/{id}/reject"),
            "Reject a request",
            "Rejects a pending request with a reason.",
        )
        .body::<catalog::RejectBody>()
        .ok::<schemas::Rejected>(200, "The rejected request")
        .status(&[409]),
        Doc::new(
            "GET",
            at("/events"),
            "The audit trail",
            "Audit events, newest first, filtered by type, image or actor.",
        )
        .query::<catalog::EventQuery>()
        .ok::<schemas::EventList>(200, "A page of events and the total"),
        Doc::new(
            "POST",
            at("/admission/check"),
            "May this image run?",
            "200 when the image is approved and its tag listed; 403 when the image is not approved (or its scan \
             failed under `--deny-severity`), 404 when the tag is not listed. With `request_approval`, a refusal \
             files an approval request.",
        )
        .body::<catalog::AdmissionBody>()
        .ok::<schemas::Admitted>(200, "Allowed, with the image, the tag and any warnings")
        .status(&[403, 404]),
    ]
}

fn platform_profile() -> Vec<Doc> {
    vec![
        Doc::new(
            "GET",
            "/api/v1/images",
            "List imported images",
            "Imports grouped by repository (or flat with `flat=true`), filtered by tag, readiness and user, ordered \
             and paged.",
        )
        .query::<platform::ListQuery>()
        .ok::<platform_schemas::ImportListing>(200, "`{\"totalCount\", \"images\": [{\"registryHost\", \"repo\", \"artifacts\"}]}`; with `flat=true`, an array of imports"),
        Doc::new("GET", "/api/v1/images/custom", "List exported images", "Export records grouped by repository.")
            .query::<platform::ExportQuery>()
            .ok::<platform_schemas::ExportGroups>(200, "`{\"totalCount\", \"images\"}`, grouped by repository"),
        Doc::new(
            "POST",
            "/api/v1/images/custom",
            "Record an exported image",
            "Records an image a user exported (pushed) elsewhere.",
        )
        .body::<platform::CreateExport>()
        .ok::<platform_schemas::ExportRecord>(201, "The export record")
        .status(&[409]),
        Doc::new("PUT", "/api/v1/images/custom/{id}", "Change an export's status", "Sets an export record's phase.")
            .body::<platform::UpdateExport>()
            .ok::<platform_schemas::ExportRecord>(200, "The export record"),
        Doc::new(
            "DELETE",
            "/api/v1/images/{id}",
            "Delete an imported image",
            "Deletes the internal registry's copy, then the import record.",
        )
        .answer(200, "Deleted", Empty)
        .status(&[409, 502]),
        Doc::new(
            "GET",
            "/api/v1/images/{id}/importing-details",
            "An import's layers",
            "Per-layer progress of an import, with its status and, once it failed or is retrying, why.",
        )
        .ok::<platform::ImportingDetails>(200, "The layers, the import's status and attempts"),
        Doc::new("POST", "/api/v1/images/{id}/cancel", "Cancel an import", "Cancels a queued or running import.")
            .ok::<platform_schemas::Canceled>(200, "`{\"message\", \"id\", \"status\"}`")
            .status(&[409]),
        Doc::new(
            "POST",
            "/api/v1/images:import",
            "Import an image",
            "Checks the source with one manifest HEAD and queues its import into the internal registry. `state` 1 \
             started, 2 already imported or importing (`alreadyImageId` says which), 0 refused (with 4xx).",
        )
        .body::<platform::ImportBody>()
        .ok::<platform::ImportAnswer>(200, "Queued, or already there")
        .error_body::<platform::ImportAnswer>()
        .status(&[409, 422, 502]),
        Doc::new(
            "PUT",
            "/api/v1/images:import/{name}/progress",
            "Report an external import's progress",
            "An import run elsewhere reports its layers' progress under its name.",
        )
        .body::<platform::LayersDetail>()
        .answer(200, "Recorded", Empty)
        .status(&[409]),
        Doc::new(
            "GET",
            "/api/v1/images/{id}/progress",
            "An import's progress",
            "Bytes done and total per layer, and the import's state.",
        )
        .ok::<progress::Progress>(200, "The progress"),
        Doc::new(
            "GET",
            "/api/v1/images/{id}/progress/events",
            "An import's progress as events",
            "Server-sent events: one `progress` event per change, until the import finishes.",
        )
        .answer(200, "A stream of `progress` events", Text("text/event-stream")),
    ]
}

fn kube_profile() -> Vec<Doc> {
    let at = |path: &str| format!("{KUBE}{path}");
    let docs = vec![
        Doc::new("GET", at("/registry-secrets"), "List registry secrets", "A namespace's registry secrets (`_all_` for every namespace), never their passwords.")
            .query::<kube::ListQuery>()
            .ok::<kube_schemas::RegistrySecretList>(200, "A `RegistrySecretList`"),
        Doc::new("POST", at("/registry-secrets"), "Create a registry secret", "Stores a registry's credentials, sealed at rest.")
            .body::<kube::SecretBody>()
            .ok::<kube_schemas::RegistrySecret>(201, "The `RegistrySecret`")
            .status(&[409]),
        Doc::new("GET", at("/registry-secrets/{name}"), "Get a registry secret", "One registry secret, without its password.")
            .ok::<kube_schemas::RegistrySecret>(200, "The `RegistrySecret`"),
        Doc::new("DELETE", at("/registry-secrets/{name}"), "Delete a registry secret", "Deletes a secret that no repository uses.")
            .answer(204, "Deleted", Empty)
            .status(&[409]),
        Doc::new(
            "POST",
            at("/registry-secrets/{name}/verify"),
            "Verify a registry secret",
            "Signs in to the secret's registry with its credentials (or those the body gives) and says whether it worked.",
        )
        .optional_body::<kube::VerifyBody>()
        .ok::<kube_schemas::Verified>(200, "`{\"success\", \"message\"}`")
        .status(&[422, 502]),
        Doc::new("GET", at("/repositories"), "List repositories", "A namespace's repositories kept in sync (`_all_` for every namespace).")
            .query::<kube::ListQuery>()
            .ok::<kube_schemas::RepositoryList>(200, "A `RepositoryList`"),
        Doc::new("POST", at("/repositories"), "Create a repository", "Keeps a tag in sync on an interval, read with a registry secret.")
            .body::<kube::RepositoryBody>()
            .ok::<kube_schemas::Repository>(201, "The `Repository`")
            .status(&[409, 422]),
        Doc::new("GET", at("/repositories/{name}"), "Get a repository", "One repository with its sync status.")
            .ok::<kube_schemas::Repository>(200, "The `Repository`"),
        Doc::new("DELETE", at("/repositories/{name}"), "Delete a repository", "Stops syncing a repository and deletes it.")
            .answer(204, "Deleted", Empty)
            .status(&[409]),
        Doc::new("POST", at("/repositories/{name}/sync"), "Sync a repository now", "Queues a sync of the repository at once.")
            .ok::<kube_schemas::SyncQueued>(200, "`{\"success\": true, \"message\"}`")
            .status(&[409]),
    ];
    docs.into_iter().map(|d| d.errors(Errors::Kube)).collect()
}

fn station_profile() -> Vec<Doc> {
    let docs = vec![
        Doc::new(
            "POST",
            "/api/v1/login",
            "Sign in with a session",
            "Checks a user's name and password (JSON or form fields) and sets the session cookie.",
        )
        .body::<station::Credentials>()
        .ok::<station_schemas::SignedIn>(200, "The user, with the session cookie set")
        .status(&[401, 429]),
        Doc::new(
            "GET",
            "/api/v1/login_refresh",
            "Refresh a session",
            "Says who is signed in, keeping the session alive.",
        )
        .ok::<station_schemas::SignedIn>(200, "The user"),
        Doc::new("PUT", "/api/v1/logout", "Sign out of a session", "Ends the session the cookie names.")
            .ok::<station_schemas::SignedOut>(200, "Who signed out"),
        Doc::new(
            "GET",
            "/api/v1/registry",
            "List the station's registries",
            "The registries of the station namespace, without passwords.",
        )
        .ok::<station_schemas::Registries>(200, "The registries"),
        Doc::new(
            "POST",
            "/api/v1/registry",
            "Add or edit a registry",
            "`method` `add` or `edit` (renaming with `oldname`) a station registry.",
        )
        .body::<station::RegistryBody>()
        .ok::<station_schemas::Registries>(200, "The registries")
        .status(&[409]),
        Doc::new("DELETE", "/api/v1/registry/{name}", "Delete a registry", "Deletes a station registry by name.")
            .ok::<station_schemas::Registries>(200, "The remaining registries")
            .status(&[409]),
        Doc::new("GET", "/api/v1/registry/ping", "Ping a registry", "Asks a registry's `/v2/` whether it answers.")
            .query::<station::PingQuery>()
            .ok::<station_schemas::Pinged>(200, "`{\"version\": \"v2\"}`")
            .status(&[422, 502]),
        Doc::new(
            "POST",
            "/api/v1/registry/ping",
            "Ping a registry with credentials",
            "Asks a registry's `/v2/` with the credentials given.",
        )
        .optional_body::<station::PingBody>()
        .ok::<station_schemas::Pinged>(200, "`{\"version\": \"v2\"}`")
        .status(&[422, 502]),
        Doc::new(
            "GET",
            "/api/v1/image/",
            "Search images",
            "Searches the local imports, the catalog, a registry's repositories or Docker Hub (`category`).",
        )
        .query::<station::SearchQuery>()
        .ok::<station_schemas::SearchAnswer>(200, "The images found")
        .status(&[422, 502]),
        Doc::new(
            "GET",
            "/api/v1/image/downloadstatus",
            "Downloads in progress",
            "Imports started by the station, with their progress.",
        )
        .ok::<Vec<station_schemas::Download>>(200, "The downloads"),
        Doc::new(
            "GET",
            "/api/v1/image/{*path}",
            "Inspect an image",
            "`<name>/tags`, `<name>:<tag>/inspect` or `<name>:<tag>/remote_inspect` of a local or remote image.",
        )
        .query::<station::BrowseQuery>()
        .ok::<station_schemas::Browsed>(200, "The tags, or the inspection")
        .status(&[422, 502]),
        Doc::new(
            "POST",
            "/api/v1/image/{*path}",
            "Download an image",
            "`<name>:<tag>/download` queues an import of the image; a user's is refused (403) unless the catalog \
             approves it, filing an approval request.",
        )
        .optional_body::<station::DownloadBody>()
        .query::<station::DownloadQuery>()
        .ok::<station_schemas::DownloadQueued>(200, "`{}`: queued, or already there")
        .status(&[409, 422, 502]),
        Doc::new(
            "DELETE",
            "/api/v1/image/{*path}",
            "Delete a local image",
            "`<name>:<tag>` deletes the imported image.",
        )
        .ok::<station_schemas::LocalDeleted>(200, "Deleted")
        .status(&[409, 502]),
    ];
    docs.into_iter().map(|d| d.errors(Errors::Station)).collect()
}

fn integrations() -> Vec<Doc> {
    vec![
        Doc::new(
            "GET",
            "/images",
            "This node's images",
            "Seed 004: the node's container runtime images (less the ignore list) beside the internal registry's; a \
             source that fails is an entry of `errors`.",
        )
        .query::<inventory::NodeQuery>()
        .ok::<inventory::ImagesAnswer>(200, "The node's and the registry's images, and the sources that failed")
        .status(&[404]),
        Doc::new("GET", "/api/v1/nodes", "The fleet's nodes", "Each node's last report, and whether it is stale.")
            .ok::<inventory::NodeList>(200, "The nodes"),
        Doc::new(
            "GET",
            "/api/v1/drift",
            "Images nodes run that the catalog does not approve",
            "Per node, each image the admission rule refuses, with the reason.",
        )
        .query::<inventory::NodeQuery>()
        .ok::<inventory::DriftAnswer>(200, "The drift and the nodes checked")
        .status(&[404]),
        Doc::new(
            "GET",
            "/api/v1/harbor/stats",
            "The internal registry's statistics",
            "Seed 000's shape: health per component, project and repository counts, storage; an unreachable registry \
             is `unhealthy` with a reason, still 200.",
        )
        .ok::<harbor::HarborStats>(200, "The statistics"),
        Doc::new(
            "POST",
            "/api/v1/webhooks/harbor",
            "Harbor's webhook",
            "Scan events queue a read of the scan's overview; pushes and deletes in an imported repository change the \
             catalog's tags. Authenticated by the shared secret (`--harbor-webhook-secret`).",
        )
        .body::<webhooks::HarborEvent>()
        .ok::<integration::HarborAccepted>(
            202,
            "`{\"type\", \"queued\"}`, with `tags_changed` and `artifacts_changed` for pushes and deletes",
        ),
        Doc::new(
            "POST",
            "/api/v1/webhooks/docker-registry",
            "Distribution's notifications",
            "Tagged pushes and deletes in an imported repository change the catalog's tags; every event is checked \
             before any is applied. Authenticated by the shared secret (`--registry-webhook-secret`).",
        )
        .body::<webhooks::RegistryEnvelope>()
        .ok::<integration::RegistryAccepted>(202, "`{\"tags_changed\", \"artifacts_changed\"}`"),
        Doc::new(
            "GET",
            "/metrics",
            "Prometheus metrics",
            "The Prometheus text format; with `--metrics-token`, only for `Authorization: Bearer <token>` (401 \
             otherwise); `--metrics off` answers 404.",
        )
        .answer(200, "The metrics", Text("text/plain"))
        .status(&[401, 404]),
        Doc::new(
            "POST",
            "/api/v1/admission/review",
            "Kubernetes admission webhook",
            "Takes an `admission.k8s.io/v1` `AdmissionReview` of a Pod or a workload with a pod template and \
             answers the review with `allowed` and, when refused, a `status` naming each refused image and why; \
             every container, init container and ephemeral container image is decided as the admission check \
             decides it. DELETE and CONNECT, and kinds without a pod template, are allowed.",
        )
        .body::<admission_review::Review>()
        .ok::<integration::ReviewAnswer>(200, "The `AdmissionReview` with its `response`"),
        Doc::new(
            "GET",
            "/api/v1/robots",
            "List robot accounts",
            "The built-in registry's robot accounts: name, `robot$name` user name, repository patterns, actions, \
             creator, creation and expiry times; never a secret.",
        )
        .ok::<integration::RobotList>(200, "`{\"robots\": […]}`"),
        Doc::new(
            "POST",
            "/api/v1/robots",
            "Create a robot account",
            "A robot allowed `actions` (pull, push, delete) in the repositories its patterns match (`team/app`, \
             `team/*`, `*`), until `expiresAt` or for `expiresIn` when given. The answer carries its secret, \
             shown this once.",
        )
        .body::<robots::NewRobotRequest>()
        .ok::<integration::NewRobot>(201, "The robot, with its secret")
        .status(&[409]),
        Doc::new("DELETE", "/api/v1/robots/{name}", "Delete a robot account", "Its secret stops working at once.")
            .answer(204, "Deleted", Empty),
        Doc::new(
            "GET",
            "/openapi.json",
            "This document",
            "The OpenAPI 3.1 document of every route, generated from the router's table.",
        )
        .answer(200, "The document; its schema is OpenAPI 3.1's own, not repeated here", AnyJson),
    ]
}
