//! `DistributionAdmin` (the internal-registry port on a plain registry) against real CNCF Distribution
//! registries: health, statistics, listings, deletes, and the answers of a registry without a scanner.

use std::sync::Arc;

use image_core::Digest;
use image_core::registry::{RegistryAdmin, RegistryKind};
use registry_client::{ClientConfig, Credential, DistributionAdmin, RegistryClient, RetryPolicy};
use test_support::Distribution;
use test_support::images::{push_image, push_index};

fn admin_for(registry: &Distribution) -> DistributionAdmin {
    let mut config =
        ClientConfig { retry: RetryPolicy { max_attempts: 2, ..RetryPolicy::default() }, ..ClientConfig::default() };
    if let Some((user, password)) = registry.credentials() {
        config.credentials.insert(registry.host(), Credential::new(user, password));
    }
    DistributionAdmin::new(Arc::new(RegistryClient::new(config).unwrap()), registry.host())
}

fn digest(s: &str) -> Digest {
    s.parse().unwrap()
}

#[tokio::test]
async fn health_is_the_answer_of_v2() {
    let registry = Distribution::start().await;
    let admin = admin_for(&registry);
    assert_eq!(admin.kind(), RegistryKind::Distribution);
    let health = admin.health().await;
    assert_eq!(health.status, "healthy");
    assert_eq!(health.components.len(), 1);
    assert_eq!((health.components[0].name.as_str(), health.components[0].status.as_str()), ("registry", "healthy"));
    assert_eq!(health.reason, None);

    let host = registry.host();
    drop(registry);
    let gone = DistributionAdmin::new(Arc::new(RegistryClient::new(ClientConfig::default()).unwrap()), host.clone());
    let health = gone.health().await;
    assert_eq!(health.status, "unhealthy");
    assert_eq!(health.components[0].status, "unhealthy");
    let reason = health.reason.unwrap();
    assert!(reason.contains(&host), "{reason}");
}

#[tokio::test]
async fn wrong_credentials_make_it_unhealthy_with_the_reason() {
    let registry = Distribution::start_with_basic_auth("alice", "right").await;
    let mut config = ClientConfig::default();
    config.credentials.insert(registry.host(), Credential::new("alice", "wrong"));
    let admin = DistributionAdmin::new(Arc::new(RegistryClient::new(config).unwrap()), registry.host());
    let health = admin.health().await;
    assert_eq!(health.status, "unhealthy");
    let reason = health.reason.unwrap();
    assert!(reason.contains("alice") && !reason.contains("wrong"), "{reason}");
}

#[tokio::test]
async fn statistics_count_the_catalog() {
    let registry = Distribution::start().await;
    let admin = admin_for(&registry);
    let empty = admin.statistics().await.unwrap();
    assert_eq!((empty.public_project_count, empty.public_repo_count), (Some(0), Some(0)));

    push_image(&registry, "team/app", "1", &[100]).await;
    push_image(&registry, "team/web", "1", &[100]).await;
    push_image(&registry, "other/db", "1", &[100]).await;
    let stats = admin.statistics().await.unwrap();
    // Anonymous access: everything is public.
    assert_eq!(stats.public_project_count, Some(2));
    assert_eq!(stats.public_repo_count, Some(3));
    assert_eq!((stats.private_project_count, stats.private_repo_count), (Some(0), Some(0)));
    assert_eq!(stats.total_storage, None);

    let private = Distribution::start_with_basic_auth("alice", "secret").await;
    let admin = admin_for(&private);
    let pusher = test_support::images::Pusher::new(&private);
    let (_, bytes) = pusher.platform_manifest("team/app", "linux", "amd64", &[10], &[]).await;
    pusher.manifest("team/app", "1", "application/vnd.oci.image.manifest.v1+json", &bytes).await;
    let stats = admin.statistics().await.unwrap();
    assert_eq!((stats.private_project_count, stats.private_repo_count), (Some(1), Some(1)));
    assert_eq!((stats.public_project_count, stats.public_repo_count), (Some(0), Some(0)));
}

#[tokio::test]
async fn repositories_and_artifacts_with_tags_sizes_and_platforms() {
    let registry = Distribution::start().await;
    let admin = admin_for(&registry);
    assert!(admin.list_repositories().await.unwrap().is_empty());
    assert!(admin.list_artifacts("team/none").await.unwrap().is_empty(), "a missing repository has no artifacts");

    let single = push_image(&registry, "team/app", "1.0", &[1000, 2000]).await;
    // A second tag on the same manifest.
    test_support::images::Pusher::new(&registry)
        .manifest("team/app", "latest", &single.media_type, &single.bytes)
        .await;
    let multi = push_index(&registry, "team/app", "2.0", &[("linux", "amd64"), ("linux", "arm64")], &[500], 0).await;

    let repositories = admin.list_repositories().await.unwrap();
    assert_eq!(repositories.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["team/app"]);

    let mut artifacts = admin.list_artifacts("team/app").await.unwrap();
    artifacts.sort_by_key(|a| a.tags.len());
    assert_eq!(artifacts.len(), 2, "{artifacts:?}");
    let (index, image) = (&artifacts[0], &artifacts[1]);

    assert_eq!(image.repository, "team/app");
    assert_eq!(image.digest, digest(&single.digest));
    let mut tags = image.tags.clone();
    tags.sort();
    assert_eq!(tags, ["1.0", "latest"]);
    assert_eq!(image.media_type.as_deref(), Some("application/vnd.oci.image.manifest.v1+json"));
    assert_eq!(image.platforms, ["linux/amd64"]);
    assert_eq!(image.size, Some(single.bytes.len() as u64 + single.manifests[0].size));

    assert_eq!(index.digest, digest(&multi.digest));
    assert_eq!(index.tags, ["2.0"]);
    assert_eq!(index.media_type.as_deref(), Some("application/vnd.oci.image.index.v1+json"));
    assert_eq!(index.platforms, ["linux/amd64", "linux/arm64"]);
    assert!(index.size.unwrap() > multi.bytes.len() as u64);
}

#[tokio::test]
async fn delete_removes_the_artifact_and_its_tags() {
    let registry = Distribution::start().await;
    let admin = admin_for(&registry);
    let keep = push_image(&registry, "team/app", "1", &[100]).await;
    let gone = push_image(&registry, "team/app", "2", &[100]).await;
    admin.delete_artifact("team/app", &digest(&gone.digest)).await.unwrap();
    let artifacts = admin.list_artifacts("team/app").await.unwrap();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    assert_eq!((artifacts[0].digest.clone(), artifacts[0].tags.clone()), (digest(&keep.digest), vec!["1".to_owned()]));
    // Not finding it is not an error.
    admin.delete_artifact("team/app", &digest(&gone.digest)).await.unwrap();
    admin.delete_artifact("team/none", &digest(&gone.digest)).await.unwrap();
    // An invalid repository name is refused as input, not sent.
    let err = admin.delete_artifact("Team/App", &digest(&keep.digest)).await.unwrap_err();
    assert_eq!(err.code(), image_core::ErrorCode::Invalid, "{err}");
}

#[tokio::test]
async fn no_projects_and_no_scanner() {
    let registry = Distribution::start().await;
    let admin = admin_for(&registry);
    let image = push_image(&registry, "team/app", "1", &[100]).await;
    admin.ensure_project("brand-new").await.unwrap();
    assert!(!admin.request_scan("team/app", &digest(&image.digest)).await.unwrap());
    assert_eq!(admin.scan_overview("team/app", &digest(&image.digest)).await.unwrap(), None);
}

#[tokio::test]
async fn an_unreachable_registry_is_upstream_unavailable() {
    let registry = Distribution::start().await;
    let host = registry.host();
    drop(registry);
    let config =
        ClientConfig { retry: RetryPolicy { max_attempts: 1, ..RetryPolicy::default() }, ..ClientConfig::default() };
    let admin = DistributionAdmin::new(Arc::new(RegistryClient::new(config).unwrap()), host);
    let err = admin.list_repositories().await.unwrap_err();
    assert_eq!(err.code(), image_core::ErrorCode::UpstreamUnavailable, "{err}");
    let err = admin.statistics().await.unwrap_err();
    assert_eq!(err.code(), image_core::ErrorCode::UpstreamUnavailable, "{err}");
}
