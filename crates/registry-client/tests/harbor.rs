//! `HarborAdmin`, `AutoAdmin` and `InternalCopier` against the stand-in Harbor of `test-support` (which
//! fronts a real Distribution registry): projects, listings with paging and double-encoded names, robot
//! accounts, deletes through the artifact API, scans, health and statistics.

use std::sync::Arc;

use image_core::copy::{CopyRequest, ImageCopier, RegistryAccess};
use image_core::import::{Artifact, LayerProgress};
use image_core::registry::{RegistryAdmin, RegistryKind, ScanStatus};
use image_core::{Digest, Reference};
use registry_client::{
    AutoAdmin, ClientConfig, CopyConfig, CopyEngine, Credential, HarborAdmin, HarborOptions, InternalCopier,
    RegistryClient, RetryPolicy, detect_kind,
};
use test_support::Distribution;
use test_support::harbor::{ADMIN, Harbor};
use test_support::images::push_image;

fn client_for(harbor: &Harbor, user: &str, password: &str) -> Arc<RegistryClient> {
    let mut config =
        ClientConfig { retry: RetryPolicy { max_attempts: 2, ..RetryPolicy::default() }, ..ClientConfig::default() };
    config.credentials.insert(harbor.host(), Credential::new(user, password));
    Arc::new(RegistryClient::new(config).unwrap())
}

fn admin_for(harbor: &Harbor, options: HarborOptions) -> (Arc<RegistryClient>, HarborAdmin) {
    let client = client_for(harbor, ADMIN.0, ADMIN.1);
    (client.clone(), HarborAdmin::new(client, harbor.host(), options))
}

struct NoProgress;
impl image_core::copy::CopyProgress for NoProgress {
    fn resolved(&self, _: &Digest, _: &[Artifact]) {}
    fn layer(&self, _: &LayerProgress) {}
}

/// Copies `source` into the Harbor at `target` through the internal copier.
async fn import(
    harbor: &Harbor,
    client: &Arc<RegistryClient>,
    admin: Arc<dyn RegistryAdmin>,
    source: &str,
    target: &str,
) -> Digest {
    let engine = Arc::new(CopyEngine::new(client.clone(), CopyConfig::default()));
    let copier = InternalCopier::new(engine, client.clone(), admin, harbor.host());
    let request = CopyRequest {
        source: source.parse().unwrap(),
        source_access: RegistryAccess::Anonymous,
        target: target.parse().unwrap(),
        platforms: Vec::new(),
    };
    copier.copy_image(&request, &NoProgress).await.unwrap().digest
}

#[tokio::test]
async fn systeminfo_tells_harbor_from_a_plain_registry() {
    let harbor = Harbor::start().await;
    let plain = Distribution::start().await;
    let client = client_for(&harbor, ADMIN.0, ADMIN.1);
    assert_eq!(detect_kind(&client, &harbor.host()).await.unwrap(), RegistryKind::Harbor);
    assert_eq!(detect_kind(&client, &plain.host()).await.unwrap(), RegistryKind::Distribution);

    let auto = AutoAdmin::new(client.clone(), harbor.host(), HarborOptions::default());
    assert_eq!(auto.kind(), RegistryKind::Distribution, "nothing asked yet");
    assert_eq!(auto.health().await.components.len(), 7);
    assert_eq!(auto.kind(), RegistryKind::Harbor);
    let auto = AutoAdmin::new(client, plain.host(), HarborOptions::default());
    assert_eq!(auto.health().await.components[0].name, "registry");
    assert_eq!(auto.kind(), RegistryKind::Distribution);
}

#[tokio::test]
async fn an_import_into_a_missing_project_creates_it_private_by_default() {
    let harbor = Harbor::start().await;
    let source = Distribution::start().await;
    push_image(&source, "team/app", "1.0", &[2000]).await;
    let (client, admin) = admin_for(&harbor, HarborOptions::default());
    let admin: Arc<dyn RegistryAdmin> = Arc::new(admin);
    assert_eq!(harbor.project("mirror"), None);

    // Without the project, Harbor refuses the push.
    let engine = CopyEngine::new(client.clone(), CopyConfig::default());
    let request = CopyRequest {
        source: format!("{}/team/app:1.0", source.host()).parse().unwrap(),
        source_access: RegistryAccess::Anonymous,
        target: format!("{}/mirror/team/app:1.0", harbor.host()).parse().unwrap(),
        platforms: Vec::new(),
    };
    let err = engine.copy_image(&request, &NoProgress).await.unwrap_err();
    assert!(err.message.contains("mirror"), "{err:?}");
    assert_eq!(harbor.project("mirror"), None);

    let digest = import(
        &harbor,
        &client,
        admin.clone(),
        &format!("{}/team/app:1.0", source.host()),
        &format!("{}/mirror/team/app:1.0", harbor.host()),
    )
    .await;
    assert_eq!(harbor.project("mirror"), Some(false), "created, private");

    let artifacts = admin.list_artifacts("mirror/team/app").await.unwrap();
    assert_eq!(artifacts.len(), 1);
    assert_eq!(artifacts[0].digest, digest);
    assert_eq!(artifacts[0].tags, ["1.0"]);
    assert_eq!(artifacts[0].platforms, ["linux/amd64"]);
    assert!(artifacts[0].push_time.is_some());
    assert!(artifacts[0].size.unwrap() > 2000);

    // Public when configured so.
    let (client, public) = admin_for(&harbor, HarborOptions { public_projects: true });
    import(
        &harbor,
        &client,
        Arc::new(public),
        &format!("{}/team/app:1.0", source.host()),
        &format!("{}/open/app:1.0", harbor.host()),
    )
    .await;
    assert_eq!(harbor.project("open"), Some(true));
}

#[tokio::test]
async fn robot_accounts_authenticate_and_wrong_ones_are_refused() {
    let harbor = Harbor::start().await;
    harbor.add_account("robot$mirror+imagegate", "s3cret");
    let admin = HarborAdmin::new(
        client_for(&harbor, "robot$mirror+imagegate", "s3cret"),
        harbor.host(),
        HarborOptions::default(),
    );
    admin.ensure_project("mirror").await.unwrap();
    assert_eq!(harbor.project("mirror"), Some(false));
    let stats = admin.statistics().await.unwrap();
    assert_eq!(stats.private_project_count, Some(1));

    let wrong = HarborAdmin::new(
        client_for(&harbor, "robot$mirror+imagegate", "nope"),
        harbor.host(),
        HarborOptions::default(),
    );
    let err = wrong.statistics().await.unwrap_err();
    assert!(err.to_string().contains("robot$mirror+imagegate") && !err.to_string().contains("nope"), "{err}");
    let err = wrong.ensure_project("other").await.unwrap_err();
    assert_eq!(err.code(), image_core::ErrorCode::UpstreamUnavailable, "{err}");
    assert_eq!(harbor.project("other"), None);
}

#[tokio::test]
async fn listings_follow_pages_and_nested_names_are_encoded_twice() {
    let harbor = Harbor::start().await;
    // More projects than one page holds (Harbor's largest page is 100).
    for i in 0..105 {
        harbor.create_project(&format!("p{i:03}"), i % 2 == 0);
    }
    let pusher = test_support::images::Pusher::new(harbor.registry());
    let (_, bytes) = pusher.platform_manifest("p104/team/sub/app", "linux", "arm64", &[10], &[]).await;
    let oci = "application/vnd.oci.image.manifest.v1+json";
    pusher.manifest("p104/team/sub/app", "v1", oci, &bytes).await;
    pusher.manifest("p104/team/sub/app", "v2", oci, &bytes).await;
    let (_, admin) = admin_for(&harbor, HarborOptions::default());
    let repositories = admin.list_repositories().await.unwrap();
    assert_eq!(repositories.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["p104/team/sub/app"]);
    assert_eq!(repositories[0].artifact_count, Some(1));

    let artifacts = admin.list_artifacts("p104/team/sub/app").await.unwrap();
    assert_eq!(artifacts.len(), 1);
    let mut tags = artifacts[0].tags.clone();
    tags.sort();
    assert_eq!(tags, ["v1", "v2"]);
    assert_eq!(artifacts[0].platforms, ["linux/arm64"]);
    assert!(admin.list_artifacts("p104/none").await.unwrap().is_empty());
    assert!(admin.list_artifacts("nosuchproject/app").await.unwrap().is_empty());

    // The stand-in, like Harbor, does not find a name encoded once.
    let once = format!("{}/api/v2.0/projects/p104/repositories/team%2Fsub%2Fapp/artifacts", harbor.url());
    let resp = reqwest::Client::new().get(once).basic_auth(ADMIN.0, Some(ADMIN.1)).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn delete_goes_through_the_artifact_api() {
    let harbor = Harbor::start().await;
    let (client, admin) = admin_for(&harbor, HarborOptions::default());
    let admin: Arc<dyn RegistryAdmin> = Arc::new(admin);
    let keep = push_image(harbor.registry(), "library/app", "1", &[100]).await;
    let gone = push_image(harbor.registry(), "library/app", "2", &[100]).await;
    let engine = Arc::new(CopyEngine::new(client.clone(), CopyConfig::default()));
    let copier = InternalCopier::new(engine, client, admin.clone(), harbor.host());
    let target: Reference = format!("{}/library/app:2", harbor.host()).parse().unwrap();
    copier.delete_image(&target).await.unwrap();
    let artifacts = admin.list_artifacts("library/app").await.unwrap();
    assert_eq!(artifacts.iter().map(|a| a.digest.to_string()).collect::<Vec<_>>(), vec![keep.digest]);
    // Not finding it is not an error, by tag or by digest.
    copier.delete_image(&target).await.unwrap();
    admin.delete_artifact("library/app", &gone.digest.parse().unwrap()).await.unwrap();
}

#[tokio::test]
async fn scans_move_from_absent_to_running_to_success() {
    let harbor = Harbor::start().await;
    let (_, admin) = admin_for(&harbor, HarborOptions::default());
    let image = push_image(harbor.registry(), "library/app", "1", &[100]).await;
    let digest: Digest = image.digest.parse().unwrap();
    assert!(!admin.request_scan("library/app", &digest).await.unwrap(), "no scanner yet");
    assert_eq!(admin.scan_overview("library/app", &digest).await.unwrap(), None);

    harbor.set_scan_result(&[("Critical", 1), ("High", 2), ("Low", 0)]);
    assert!(admin.request_scan("library/app", &digest).await.unwrap());
    assert_eq!(harbor.scan_requests(), [("library/app".to_owned(), image.digest.clone())]);
    let running = admin.scan_overview("library/app", &digest).await.unwrap().unwrap();
    assert_eq!(running.status, ScanStatus::Pending);
    let done = admin.scan_overview("library/app", &digest).await.unwrap().unwrap();
    assert_eq!(done.status, ScanStatus::Passed);
    assert_eq!(done.severities, [("critical".to_owned(), 1), ("high".to_owned(), 2), ("low".to_owned(), 0)]);
    assert_eq!(done.total(), 3);
    let missing: Digest = format!("sha256:{}", "0".repeat(64)).parse().unwrap();
    assert_eq!(admin.scan_overview("library/app", &missing).await.unwrap(), None);
    assert_eq!(admin.request_scan("library/app", &missing).await.unwrap_err().code(), image_core::ErrorCode::NotFound);
}

#[tokio::test]
async fn health_shows_a_failing_component_and_a_harbor_that_is_down() {
    let harbor = Harbor::start().await;
    let (_, admin) = admin_for(&harbor, HarborOptions::default());
    let health = admin.health().await;
    assert_eq!((health.status.as_str(), health.reason.as_deref()), ("healthy", None));
    assert!(health.components.iter().all(|c| c.status == "healthy"));

    harbor.set_unhealthy("redis", Some("dial tcp 10.0.0.5:6379: connection refused"));
    let health = admin.health().await;
    assert_eq!(health.status, "unhealthy");
    let redis = health.components.iter().find(|c| c.name == "redis").unwrap();
    assert_eq!(redis.status, "unhealthy");
    assert_eq!(health.reason.as_deref(), Some("redis: dial tcp 10.0.0.5:6379: connection refused"));

    harbor.stop();
    let health = admin.health().await;
    assert_eq!(health.status, "unhealthy");
    assert!(health.components.is_empty());
    assert!(health.reason.unwrap().contains(&harbor.host()));
    assert_eq!(admin.statistics().await.unwrap_err().code(), image_core::ErrorCode::UpstreamUnavailable);
}

#[tokio::test]
async fn statistics_and_csrf() {
    let harbor = Harbor::start().await;
    harbor.create_project("secret", false);
    push_image(harbor.registry(), "library/app", "1", &[1000]).await;
    push_image(harbor.registry(), "secret/app", "1", &[1000]).await;
    let (_, admin) = admin_for(&harbor, HarborOptions::default());
    let stats = admin.statistics().await.unwrap();
    assert_eq!((stats.public_project_count, stats.private_project_count), (Some(1), Some(1)));
    assert_eq!((stats.public_repo_count, stats.private_repo_count), (Some(1), Some(1)));
    assert!(stats.total_storage.unwrap() > 2000);

    // A cookie session's change without a CSRF token is refused; imagegate never sends cookies.
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v2.0/projects", harbor.url()))
        .basic_auth(ADMIN.0, Some(ADMIN.1))
        .header("cookie", "sid=abc")
        .json(&serde_json::json!({"project_name": "viacookie"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(harbor.project("viacookie"), None);
    admin.ensure_project("viacookie").await.unwrap();
    assert_eq!(harbor.project("viacookie"), Some(false));
    // Invalid project names are refused before any request.
    assert_eq!(admin.ensure_project("Bad/Name").await.unwrap_err().code(), image_core::ErrorCode::Invalid);
}
