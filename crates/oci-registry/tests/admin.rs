//! `BuiltinAdmin` over the real router and store: what was pushed is listed from the registry's own metadata
//! (repositories, tagged artifacts with size, platform and push time), counted in the statistics, deleted,
//! and the registry's health follows its blob directory.

mod common;

use std::sync::Arc;

use axum::http::StatusCode;
use common::{OCI_INDEX, OCI_MANIFEST, Reg, registries, sha};
use image_core::registry::RegistryAdmin as _;
use oci_registry::{BlobStore, BuiltinAdmin};
use serde_json::json;

fn admin_of(reg: &Reg, anonymous_pull: bool) -> BuiltinAdmin {
    let blobs = BlobStore::open(&reg.dir.path().join("registry")).unwrap();
    BuiltinAdmin::new(reg.store.clone(), Arc::new(blobs), anonymous_pull)
}

/// Pushes an image whose config names `os/arch`, with one layer; its manifest's bytes and the bytes of its
/// config and layer.
async fn push_platform_image(reg: &Reg, repo: &str, tag: &str, arch: &str, layer: &[u8]) -> (Vec<u8>, u64) {
    let config =
        serde_json::to_vec(&json!({ "os": "linux", "architecture": arch, "rootfs": {"type": "layers"} })).unwrap();
    let config_digest = reg.push_blob(repo, &config).await;
    let layer_digest = reg.push_blob(repo, layer).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer.len() }],
    }))
    .unwrap();
    let answer = reg
        .admin("PUT", &format!("/v2/{repo}/manifests/{tag}"), &[("content-type", OCI_MANIFEST)], manifest.clone())
        .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let blobs = (config.len() + layer.len()) as u64;
    (manifest, blobs)
}

#[tokio::test]
async fn lists_counts_and_deletes_from_its_own_metadata() {
    for reg in registries(false).await {
        let admin = admin_of(&reg, false);
        assert!(admin.list_repositories().await.unwrap().is_empty());
        assert!(admin.list_artifacts("nothing/here").await.unwrap().is_empty());

        let before = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
        let (amd64, amd64_blobs) = push_platform_image(&reg, "team/app", "1.0", "amd64", b"amd64 layer").await;
        // A second tag on the same manifest.
        let again =
            reg.admin("PUT", "/v2/team/app/manifests/latest", &[("content-type", OCI_MANIFEST)], amd64.clone()).await;
        assert_eq!(again.status, StatusCode::CREATED);
        let (arm64, _) = push_platform_image(&reg, "team/app", "arm64-only", "arm64", b"arm64 layer!").await;
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                { "mediaType": OCI_MANIFEST, "digest": sha(&amd64), "size": amd64.len(), "platform": {"os": "linux", "architecture": "amd64"} },
                { "mediaType": OCI_MANIFEST, "digest": sha(&arm64), "size": arm64.len(), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"} },
            ],
        }))
        .unwrap();
        let put = reg.admin("PUT", "/v2/team/app/manifests/multi", &[("content-type", OCI_INDEX)], index.clone()).await;
        assert_eq!(put.status, StatusCode::CREATED);
        reg.push_image("solo", "v1", OCI_MANIFEST, b"solo layer").await;

        let repositories = admin.list_repositories().await.unwrap();
        let names: Vec<_> = repositories.iter().map(|r| (r.name.as_str(), r.artifact_count)).collect();
        assert_eq!(names, [("solo", Some(1)), ("team/app", Some(3))]);
        assert!(repositories.iter().all(|r| r.updated_at.is_some_and(|t| t >= before)));

        let artifacts = admin.list_artifacts("team/app").await.unwrap();
        assert_eq!(artifacts.len(), 3, "{artifacts:?}");
        let find = |digest: &str| artifacts.iter().find(|a| a.digest.to_string() == digest).unwrap();
        let image = find(&sha(&amd64));
        assert_eq!(image.tags, ["1.0", "latest"]);
        assert_eq!(image.media_type.as_deref(), Some(OCI_MANIFEST));
        assert_eq!(image.size, Some(amd64.len() as u64 + amd64_blobs));
        assert_eq!(image.platforms, ["linux/amd64"]);
        assert!(image.push_time.is_some_and(|t| t >= before));
        assert_eq!(find(&sha(&arm64)).platforms, ["linux/arm64"]);
        let multi = find(&sha(&index));
        assert_eq!(multi.tags, ["multi"]);
        assert_eq!(multi.platforms, ["linux/amd64", "linux/arm64/v8"]);
        assert_eq!(multi.size, Some((index.len() + amd64.len() + arm64.len()) as u64));

        let stats = admin.statistics().await.unwrap();
        let on_disk: u64 =
            walk(&reg.dir.path().join("registry/blobs")).iter().map(|p| p.metadata().unwrap().len()).sum();
        assert!(on_disk > 0);
        assert_eq!(
            (
                stats.private_project_count,
                stats.public_project_count,
                stats.private_repo_count,
                stats.public_repo_count
            ),
            (Some(2), Some(0), Some(2), Some(0))
        );
        assert_eq!(stats.total_storage, Some(on_disk));
        let public = admin_of(&reg, true).statistics().await.unwrap();
        assert_eq!((public.private_repo_count, public.public_repo_count), (Some(0), Some(2)));

        // Deleting the index leaves the images; deleting an image takes both its tags; twice is fine.
        admin.delete_artifact("team/app", &sha(&index).parse().unwrap()).await.unwrap();
        admin.delete_artifact("team/app", &sha(&amd64).parse().unwrap()).await.unwrap();
        admin.delete_artifact("team/app", &sha(&amd64).parse().unwrap()).await.unwrap();
        let left = admin.list_artifacts("team/app").await.unwrap();
        assert_eq!(left.iter().map(|a| a.tags.clone()).collect::<Vec<_>>(), [vec!["arm64-only".to_owned()]]);
        let gone = reg.admin("GET", "/v2/team/app/manifests/latest", &[("accept", OCI_MANIFEST)], Vec::new()).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
        let tags = reg.admin("GET", "/v2/team/app/tags/list", &[], Vec::new()).await;
        assert_eq!(tags.json()["tags"], json!(["arm64-only"]));
    }
}

#[tokio::test]
async fn health_follows_the_blob_directory() {
    for reg in registries(false).await {
        let admin = admin_of(&reg, false);
        let health = admin.health().await;
        assert_eq!((health.status.as_str(), health.reason.as_deref()), ("healthy", None));
        let components: Vec<_> = health.components.iter().map(|c| (c.name.as_str(), c.status.as_str())).collect();
        assert_eq!(components, [("metadata", "healthy"), ("storage", "healthy")]);
        std::fs::rename(reg.dir.path().join("registry/blobs"), reg.dir.path().join("moved")).unwrap();
        let health = admin.health().await;
        assert_eq!(health.status, "unhealthy");
        assert_eq!(health.components[1].status, "unhealthy");
        assert!(health.reason.as_deref().is_some_and(|r| r.starts_with("storage: ")), "{health:?}");
    }
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}
