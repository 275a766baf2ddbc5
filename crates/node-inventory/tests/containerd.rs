//! The CRI client against a real containerd (skipped, with the reason, where containerd cannot run).

use image_core::inventory::{ImageRuntime, crictl_rows};
use node_inventory::CriRuntime;
use test_support::containerd::{Containerd, oci_archive};

fn containerd() -> Option<Containerd> {
    match Containerd::start() {
        Ok(containerd) => Some(containerd),
        Err(reason) => {
            eprintln!("skipped: containerd cannot run here: {reason}");
            None
        }
    }
}

#[tokio::test]
async fn lists_the_images_containerd_has_as_crictl_would() {
    let Some(containerd) = containerd() else { return };
    let dir = containerd.scratch();
    let tagged = oci_archive(
        &dir,
        "tagged",
        &["docker.io/library/redis:7", "registry.example.com:5000/cache/redis:7"],
        &[2000, 300],
    );
    let untagged = oci_archive(&dir, "untagged", &["docker.io/library/busybox@DIGEST"], &[100]);
    containerd.import(&tagged.archive).unwrap();
    containerd.import(&untagged.archive).unwrap();

    let runtime = CriRuntime::new(&containerd.endpoint()).unwrap();
    // The CRI plugin learns of imported images from containerd's events, one name at a time.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let report = loop {
        let report = runtime.report().await.unwrap();
        let names: usize = report.images.iter().map(|i| i.repo_tags.len().max(i.repo_digests.len().min(1))).sum();
        if report.images.len() == 2 && names == 3 {
            break report;
        }
        assert!(std::time::Instant::now() < deadline, "containerd did not list the images: {report:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(report.runtime_name, "containerd");
    assert!(!report.runtime_version.is_empty());
    let mut images = report.images.clone();
    images.sort_by(|a, b| a.id.cmp(&b.id));
    let redis = images.iter().find(|i| i.id == tagged.id).expect("the tagged image is listed");
    let mut tags = redis.repo_tags.clone();
    tags.sort();
    assert_eq!(tags, ["docker.io/library/redis:7", "registry.example.com:5000/cache/redis:7"]);
    assert_eq!(redis.size, tagged.size, "CRI counts manifest, config and layers");
    let busybox = images.iter().find(|i| i.id == untagged.id).expect("the untagged image is listed");
    assert!(busybox.repo_tags.is_empty(), "{busybox:?}");

    let mut rows: Vec<_> =
        crictl_rows(&report.images).into_iter().map(|r| format!("{} {} {}", r.repository, r.tag, r.image_id)).collect();
    rows.sort();
    let short = |id: &str| id["sha256:".len()..][..12].to_owned();
    assert_eq!(
        rows,
        [
            format!("docker.io/library/busybox <none> {}", short(&untagged.id)),
            format!("docker.io/library/redis 7 {}", short(&tagged.id)),
            format!("registry.example.com:5000/cache/redis 7 {}", short(&tagged.id)),
        ]
    );
}

#[tokio::test]
async fn a_runtime_that_stopped_is_unavailable() {
    let Some(mut containerd) = containerd() else { return };
    let runtime = CriRuntime::new(&containerd.endpoint()).unwrap();
    runtime.report().await.unwrap();
    containerd.kill();
    let err = runtime.report().await.unwrap_err();
    assert_eq!(err.code(), image_core::ErrorCode::Unavailable);
    assert!(err.to_string().contains(&containerd.endpoint()), "{err}");
}
