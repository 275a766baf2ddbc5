//! The OCI distribution spec's conformance categories (pull, push, content discovery, content management), each
//! error code it names, auth, and crash safety of uploads: the real router over a real store, on SQLite and
//! (when `IMAGEGATE_TEST_DATABASE_URL` is set) PostgreSQL.

mod common;

use axum::{body::Body, http::StatusCode};
use common::*;
use serde_json::json;

mod pull {
    use super::*;

    #[tokio::test]
    async fn manifests_and_blobs_come_back_exactly_by_tag_and_digest() {
        for reg in registries(false).await {
            let manifest = reg.push_image("team/app", "v1", OCI_MANIFEST, b"layer one").await;
            let digest = sha(&manifest);
            for reference in ["v1", digest.as_str()] {
                let got = reg.admin("GET", &format!("/v2/team/app/manifests/{reference}"), &[], Body::empty()).await;
                assert_eq!(got.status, StatusCode::OK);
                assert_eq!(got.body, manifest, "exact bytes");
                assert_eq!(got.header("content-type"), OCI_MANIFEST);
                assert_eq!(got.header("docker-content-digest"), digest);
                let head = reg.admin("HEAD", &format!("/v2/team/app/manifests/{reference}"), &[], Body::empty()).await;
                assert_eq!(head.status, StatusCode::OK);
                assert!(head.body.is_empty());
                assert_eq!(head.header("content-length"), manifest.len().to_string());
                assert_eq!(head.header("docker-content-digest"), digest);
            }
            let layer = sha(b"layer one");
            let blob = reg.admin("GET", &format!("/v2/team/app/blobs/{layer}"), &[], Body::empty()).await;
            assert_eq!((blob.status, blob.body.as_slice()), (StatusCode::OK, &b"layer one"[..]));
            assert_eq!(blob.header("docker-content-digest"), layer);
            let head = reg.admin("HEAD", &format!("/v2/team/app/blobs/{layer}"), &[], Body::empty()).await;
            assert_eq!((head.status, head.header("content-length")), (StatusCode::OK, "9"));
            let part = reg
                .admin("GET", &format!("/v2/team/app/blobs/{layer}"), &[("range", "bytes=2-4")], Body::empty())
                .await;
            assert_eq!((part.status, part.body.as_slice()), (StatusCode::PARTIAL_CONTENT, &b"yer"[..]));
            assert_eq!(part.header("content-range"), "bytes 2-4/9");
            let beyond =
                reg.admin("GET", &format!("/v2/team/app/blobs/{layer}"), &[("range", "bytes=9-")], Body::empty()).await;
            assert_eq!(beyond.status, StatusCode::RANGE_NOT_SATISFIABLE);
            assert_eq!(beyond.header("content-range"), "bytes */9");
        }
    }

    #[tokio::test]
    async fn unknown_things_get_their_error_codes() {
        for reg in registries(false).await {
            reg.push_image("team/app", "v1", DOCKER_MANIFEST, b"x").await;
            let zero = format!("sha256:{}", "0".repeat(64));
            for (path, status, code) in [
                ("/v2/team/app/manifests/v2".to_owned(), StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
                (format!("/v2/team/app/manifests/{zero}"), StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
                ("/v2/team/nothing/manifests/v1".to_owned(), StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
                (format!("/v2/team/app/blobs/{zero}"), StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
                ("/v2/team/app/blobs/sha256:abc".to_owned(), StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
                ("/v2/Team/App/manifests/v1".to_owned(), StatusCode::BAD_REQUEST, "NAME_INVALID"),
                ("/v2/team/app/manifests/-bad-".to_owned(), StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
                ("/v2/team/app/nowhere/x".to_owned(), StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            ] {
                let answer = reg.admin("GET", &path, &[], Body::empty()).await;
                assert_eq!((answer.status, answer.code().as_str()), (status, code), "{path}");
                assert!(answer.json()["errors"][0]["message"].as_str().is_some_and(|m| !m.is_empty()));
            }
            let post = reg.admin("POST", "/v2/team/app/manifests/v1", &[], Body::empty()).await;
            assert_eq!((post.status, post.code().as_str()), (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"));
        }
    }
}

mod push {
    use super::*;

    #[tokio::test]
    async fn chunked_uploads_are_checked_resumable_and_verified() {
        for reg in registries(false).await {
            let start = reg.admin("POST", "/v2/app/blobs/uploads/", &[], Body::empty()).await;
            assert_eq!(start.status, StatusCode::ACCEPTED);
            let location = start.header("location").to_owned();
            assert!(location.starts_with("/v2/app/blobs/uploads/"));
            assert_eq!(start.header("range"), "0-0");
            let first = reg
                .admin("PATCH", &location, &[("content-range", "0-4"), ("content-length", "5")], &b"hello"[..])
                .await;
            assert_eq!((first.status, first.header("range")), (StatusCode::ACCEPTED, "0-4"));
            // Out of order: the server has 5 bytes.
            let wrong = reg.admin("PATCH", &location, &[("content-range", "9-12")], &b"abcd"[..]).await;
            assert_eq!(
                (wrong.status, wrong.code().as_str()),
                (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID")
            );
            assert_eq!(wrong.header("range"), "0-4");
            let status = reg.admin("GET", &location, &[], Body::empty()).await;
            assert_eq!((status.status, status.header("range")), (StatusCode::NO_CONTENT, "0-4"));
            // A chunk without Content-Range (streamed) is appended too.
            let second = reg.admin("PATCH", &location, &[], &b" world"[..]).await;
            assert_eq!(second.header("range"), "0-10");
            let digest = sha(b"hello world!");
            let done = reg
                .admin("PUT", &format!("{location}?digest={digest}"), &[("content-range", "11-11")], &b"!"[..])
                .await;
            assert_eq!(done.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&done.body));
            assert_eq!(done.header("location"), format!("/v2/app/blobs/{digest}"));
            let blob = reg.admin("GET", &format!("/v2/app/blobs/{digest}"), &[], Body::empty()).await;
            assert_eq!(blob.body, b"hello world!");
            let gone = reg.admin("GET", &location, &[], Body::empty()).await;
            assert_eq!((gone.status, gone.code().as_str()), (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"));
        }
    }

    #[tokio::test]
    async fn a_wrong_digest_ends_the_upload_and_shows_nothing() {
        for reg in registries(false).await {
            let claimed = sha(b"what was promised");
            let mono = reg
                .admin("POST", &format!("/v2/app/blobs/uploads/?digest={claimed}"), &[], &b"something else"[..])
                .await;
            assert_eq!((mono.status, mono.code().as_str()), (StatusCode::BAD_REQUEST, "DIGEST_INVALID"));
            let start = reg.admin("POST", "/v2/app/blobs/uploads/", &[], Body::empty()).await;
            let location = start.header("location").to_owned();
            let put = reg.admin("PUT", &format!("{location}?digest={claimed}"), &[], &b"something else"[..]).await;
            assert_eq!((put.status, put.code().as_str()), (StatusCode::BAD_REQUEST, "DIGEST_INVALID"));
            for digest in [claimed, sha(b"something else")] {
                let head = reg.admin("HEAD", &format!("/v2/app/blobs/{digest}"), &[], Body::empty()).await;
                assert_eq!(head.status, StatusCode::NOT_FOUND);
            }
            assert_eq!(std::fs::read_dir(reg.dir.path().join("registry/blobs/sha256")).unwrap().count(), 0);
            let after = reg.admin("PATCH", &location, &[], &b"more"[..]).await;
            assert_eq!(after.code(), "BLOB_UPLOAD_UNKNOWN");
            let no_digest = reg.admin("POST", "/v2/app/blobs/uploads/", &[], Body::empty()).await;
            let put = reg.admin("PUT", no_digest.header("location"), &[], Body::empty()).await;
            assert_eq!(put.code(), "DIGEST_INVALID");
        }
    }

    #[tokio::test]
    async fn a_cancelled_upload_is_gone_and_mounts_link_blobs_across_repositories() {
        for reg in registries(false).await {
            let start = reg.admin("POST", "/v2/app/blobs/uploads/", &[], Body::empty()).await;
            let location = start.header("location").to_owned();
            assert_eq!(reg.admin("DELETE", &location, &[], Body::empty()).await.status, StatusCode::NO_CONTENT);
            assert_eq!(reg.admin("GET", &location, &[], Body::empty()).await.code(), "BLOB_UPLOAD_UNKNOWN");
            assert_eq!(reg.admin("DELETE", &location, &[], Body::empty()).await.code(), "BLOB_UPLOAD_UNKNOWN");

            let digest = reg.push_blob("one", b"shared layer").await;
            assert_eq!(
                reg.admin("HEAD", &format!("/v2/two/blobs/{digest}"), &[], Body::empty()).await.status,
                StatusCode::NOT_FOUND
            );
            let mount =
                reg.admin("POST", &format!("/v2/two/blobs/uploads/?mount={digest}&from=one"), &[], Body::empty()).await;
            assert_eq!(mount.status, StatusCode::CREATED);
            assert_eq!(mount.header("location"), format!("/v2/two/blobs/{digest}"));
            assert_eq!(
                reg.admin("GET", &format!("/v2/two/blobs/{digest}"), &[], Body::empty()).await.body,
                b"shared layer"
            );
            // A blob the source does not hold: an ordinary upload starts instead.
            let missing = sha(b"nowhere");
            let fallback = reg
                .admin("POST", &format!("/v2/two/blobs/uploads/?mount={missing}&from=one"), &[], Body::empty())
                .await;
            assert_eq!(fallback.status, StatusCode::ACCEPTED);
        }
    }

    #[tokio::test]
    async fn manifests_are_checked_before_they_are_stored() {
        for reg in registries(false).await {
            let missing = sha(b"never pushed");
            let config = reg.push_blob("app", b"{}").await;
            let manifest = json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2 },
                "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": missing, "size": 12 }],
            });
            let answer =
                reg.admin("PUT", "/v2/app/manifests/v1", &[("content-type", OCI_MANIFEST)], manifest.to_string()).await;
            assert_eq!((answer.status, answer.code().as_str()), (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"));
            assert_eq!(answer.json()["errors"][0]["detail"]["digest"], missing);
            assert_eq!(reg.admin("GET", "/v2/app/manifests/v1", &[], Body::empty()).await.code(), "MANIFEST_UNKNOWN");

            let bad = reg.admin("PUT", "/v2/app/manifests/v1", &[("content-type", OCI_MANIFEST)], "{not json").await;
            assert_eq!((bad.status, bad.code().as_str()), (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"));
            let big = vec![b' '; 4 * 1024 * 1024 + 1];
            let big = reg.admin("PUT", "/v2/app/manifests/v1", &[("content-type", OCI_MANIFEST)], big).await;
            assert_eq!((big.status, big.code().as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID"));
            let other = format!("sha256:{}", "1".repeat(64));
            let wrong = reg
                .admin(
                    "PUT",
                    &format!("/v2/app/manifests/{other}"),
                    &[("content-type", OCI_MANIFEST)],
                    manifest.to_string(),
                )
                .await;
            assert_eq!(wrong.code(), "DIGEST_INVALID");

            // An index needs its manifests in the repository.
            let image = reg.push_image("app", "amd64", OCI_MANIFEST, b"amd64 layer").await;
            let index = json!({
                "schemaVersion": 2, "mediaType": OCI_INDEX,
                "manifests": [{ "mediaType": OCI_MANIFEST, "digest": sha(&image), "size": image.len(), "platform": { "os": "linux", "architecture": "amd64" } }],
            })
            .to_string();
            let elsewhere =
                reg.admin("PUT", "/v2/other/manifests/multi", &[("content-type", OCI_INDEX)], index.clone()).await;
            assert_eq!(elsewhere.code(), "MANIFEST_BLOB_UNKNOWN");
            let stored =
                reg.admin("PUT", "/v2/app/manifests/multi", &[("content-type", OCI_INDEX)], index.clone()).await;
            assert_eq!(stored.status, StatusCode::CREATED);
            let got = reg.admin("GET", "/v2/app/manifests/multi", &[], Body::empty()).await;
            assert_eq!((got.header("content-type"), &got.body), (OCI_INDEX, &index.into_bytes()));
        }
    }
}

mod content_discovery {
    use super::*;

    #[tokio::test]
    async fn tags_and_the_catalog_page_with_n_and_last() {
        for reg in registries(false).await {
            let manifest = reg.push_image("app", "b", OCI_MANIFEST, b"l").await;
            for tag in ["c", "a", "d"] {
                let answer = reg
                    .admin(
                        "PUT",
                        &format!("/v2/app/manifests/{tag}"),
                        &[("content-type", OCI_MANIFEST)],
                        manifest.clone(),
                    )
                    .await;
                assert_eq!(answer.status, StatusCode::CREATED);
            }
            reg.push_image("other/repo", "x", OCI_MANIFEST, b"l").await;
            let all = reg.admin("GET", "/v2/app/tags/list", &[], Body::empty()).await;
            assert_eq!(all.json(), json!({ "name": "app", "tags": ["a", "b", "c", "d"] }));
            assert_eq!(all.header("link"), "");
            let page = reg.admin("GET", "/v2/app/tags/list?n=2", &[], Body::empty()).await;
            assert_eq!(page.json()["tags"], json!(["a", "b"]));
            assert_eq!(page.header("link"), "</v2/app/tags/list?n=2&last=b>; rel=\"next\"");
            let next = reg.admin("GET", "/v2/app/tags/list?n=2&last=b", &[], Body::empty()).await;
            assert_eq!(next.json()["tags"], json!(["c", "d"]));
            let none = reg.admin("GET", "/v2/app/tags/list?n=0", &[], Body::empty()).await;
            assert_eq!(none.json()["tags"], json!([]));
            let bad = reg.admin("GET", "/v2/app/tags/list?n=-1", &[], Body::empty()).await;
            assert_eq!(bad.status, StatusCode::BAD_REQUEST);
            assert_eq!(reg.admin("GET", "/v2/nothing/tags/list", &[], Body::empty()).await.code(), "NAME_UNKNOWN");
            let catalog = reg.admin("GET", "/v2/_catalog", &[], Body::empty()).await;
            assert_eq!(catalog.json(), json!({ "repositories": ["app", "other/repo"] }));
            let first = reg.admin("GET", "/v2/_catalog?n=1", &[], Body::empty()).await;
            assert_eq!(
                (first.json()["repositories"].clone(), first.header("link")),
                (json!(["app"]), "</v2/_catalog?n=1&last=app>; rel=\"next\"")
            );
            let rest = reg.admin("GET", "/v2/_catalog?n=1&last=app", &[], Body::empty()).await;
            assert_eq!(rest.json()["repositories"], json!(["other/repo"]));
        }
    }

    #[tokio::test]
    async fn referrers_list_the_manifests_whose_subject_it_is() {
        for reg in registries(false).await {
            let subject = reg.push_image("app", "v1", OCI_MANIFEST, b"l").await;
            let empty = reg.push_blob("app", b"{}").await;
            let mut pushed = Vec::new();
            for kind in ["application/vnd.example.sbom", "application/vnd.example.signature"] {
                let referrer = json!({
                    "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": kind,
                    "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2 },
                    "layers": [],
                    "subject": { "mediaType": OCI_MANIFEST, "digest": sha(&subject), "size": subject.len() },
                    "annotations": { "kind": kind },
                })
                .to_string();
                let digest = sha(referrer.as_bytes());
                let answer = reg
                    .admin(
                        "PUT",
                        &format!("/v2/app/manifests/{digest}"),
                        &[("content-type", OCI_MANIFEST)],
                        referrer.clone(),
                    )
                    .await;
                assert_eq!(answer.status, StatusCode::CREATED);
                assert_eq!(answer.header("oci-subject"), sha(&subject));
                pushed.push((kind, digest, referrer.len()));
            }
            let all = reg.admin("GET", &format!("/v2/app/referrers/{}", sha(&subject)), &[], Body::empty()).await;
            assert_eq!((all.status, all.header("content-type")), (StatusCode::OK, OCI_INDEX));
            let listed = all.json()["manifests"].as_array().unwrap().clone();
            assert_eq!(listed.len(), 2);
            for (kind, digest, size) in &pushed {
                let entry = listed.iter().find(|m| m["digest"] == *digest).unwrap();
                assert_eq!((entry["artifactType"].as_str(), entry["size"].as_u64()), (Some(*kind), Some(*size as u64)));
                assert_eq!(entry["annotations"]["kind"], *kind);
            }
            let filtered = reg
                .admin(
                    "GET",
                    &format!("/v2/app/referrers/{}?artifactType=application/vnd.example.sbom", sha(&subject)),
                    &[],
                    Body::empty(),
                )
                .await;
            assert_eq!(filtered.json()["manifests"].as_array().unwrap().len(), 1);
            assert_eq!(filtered.header("oci-filters-applied"), "artifactType");
            let none = reg.admin("GET", &format!("/v2/app/referrers/{}", sha(b"nothing")), &[], Body::empty()).await;
            assert_eq!((none.status, none.json()["manifests"].clone()), (StatusCode::OK, json!([])));
            assert_eq!(
                reg.admin("GET", "/v2/app/referrers/sha256:zz", &[], Body::empty()).await.code(),
                "DIGEST_INVALID"
            );
        }
    }
}

mod content_management {
    use super::*;

    #[tokio::test]
    async fn tags_manifests_and_blobs_are_deleted() {
        for reg in registries(false).await {
            let manifest = reg.push_image("app", "v1", OCI_MANIFEST, b"l").await;
            reg.admin("PUT", "/v2/app/manifests/v2", &[("content-type", OCI_MANIFEST)], manifest.clone()).await;
            let digest = sha(&manifest);
            assert_eq!(
                reg.admin("DELETE", "/v2/app/manifests/v1", &[], Body::empty()).await.status,
                StatusCode::ACCEPTED
            );
            assert_eq!(reg.admin("GET", "/v2/app/manifests/v1", &[], Body::empty()).await.code(), "MANIFEST_UNKNOWN");
            assert_eq!(reg.admin("GET", "/v2/app/manifests/v2", &[], Body::empty()).await.status, StatusCode::OK);
            assert_eq!(
                reg.admin("DELETE", &format!("/v2/app/manifests/{digest}"), &[], Body::empty()).await.status,
                StatusCode::ACCEPTED
            );
            assert_eq!(reg.admin("GET", "/v2/app/manifests/v2", &[], Body::empty()).await.code(), "MANIFEST_UNKNOWN");
            assert_eq!(
                reg.admin("GET", &format!("/v2/app/manifests/{digest}"), &[], Body::empty()).await.code(),
                "MANIFEST_UNKNOWN"
            );
            assert_eq!(
                reg.admin("DELETE", &format!("/v2/app/manifests/{digest}"), &[], Body::empty()).await.code(),
                "MANIFEST_UNKNOWN"
            );
            assert_eq!(reg.admin("GET", "/v2/app/tags/list", &[], Body::empty()).await.json()["tags"], json!([]));
            let layer = sha(b"l");
            assert_eq!(
                reg.admin("DELETE", &format!("/v2/app/blobs/{layer}"), &[], Body::empty()).await.status,
                StatusCode::ACCEPTED
            );
            assert_eq!(
                reg.admin("GET", &format!("/v2/app/blobs/{layer}"), &[], Body::empty()).await.code(),
                "BLOB_UNKNOWN"
            );
            assert_eq!(
                reg.admin("DELETE", &format!("/v2/app/blobs/{layer}"), &[], Body::empty()).await.code(),
                "BLOB_UNKNOWN"
            );
        }
    }
}

mod auth {
    use super::*;

    #[tokio::test]
    async fn a_challenge_a_token_and_the_roles() {
        for reg in registries(false).await {
            reg.push_image("app", "v1", OCI_MANIFEST, b"l").await;
            let anonymous = reg.send("GET", "/v2/app/manifests/v1", None, &[], Body::empty()).await;
            assert_eq!((anonymous.status, anonymous.code().as_str()), (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"));
            assert_eq!(
                anonymous.header("www-authenticate"),
                "Bearer realm=\"http://registry.test/v2/token\",service=\"imagegate\",scope=\"repository:app:pull\""
            );
            let base = reg.send("GET", "/v2/", None, &[], Body::empty()).await;
            assert_eq!(base.status, StatusCode::UNAUTHORIZED);
            assert_eq!(base.header("docker-distribution-api-version"), "registry/2.0");
            assert_eq!(reg.send("GET", "/v2/", admin(), &[], Body::empty()).await.status, StatusCode::OK);
            let wrong = reg.send("GET", "/v2/", Some(basic("admin", "nope")), &[], Body::empty()).await;
            assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
            assert_eq!(
                reg.send("GET", "/v2/token", Some(basic("admin", "nope")), &[], Body::empty()).await.status,
                StatusCode::UNAUTHORIZED
            );
            assert_eq!(
                reg.send("GET", "/v2/token?scope=repository:app:pull", None, &[], Body::empty()).await.status,
                StatusCode::UNAUTHORIZED
            );

            // A user's token grants pull and not push.
            let token = reg
                .send(
                    "GET",
                    "/v2/token?service=imagegate&scope=repository:app:pull,push",
                    Some(basic("user", "user-pw")),
                    &[],
                    Body::empty(),
                )
                .await;
            assert_eq!(token.status, StatusCode::OK);
            assert_eq!(token.json()["expires_in"], 300);
            let bearer = format!("Bearer {}", token.json()["token"].as_str().unwrap());
            assert_eq!(
                reg.send("GET", "/v2/app/manifests/v1", Some(bearer.clone()), &[], Body::empty()).await.status,
                StatusCode::OK
            );
            assert_eq!(reg.send("GET", "/v2/", Some(bearer.clone()), &[], Body::empty()).await.status, StatusCode::OK);
            let other = reg.send("GET", "/v2/elsewhere/manifests/v1", Some(bearer.clone()), &[], Body::empty()).await;
            assert_eq!(other.status, StatusCode::UNAUTHORIZED, "the token is scoped to app");
            let push = reg.send("POST", "/v2/app/blobs/uploads/", Some(bearer), &[], Body::empty()).await;
            assert_eq!(push.status, StatusCode::UNAUTHORIZED);
            assert!(push.header("www-authenticate").ends_with("scope=\"repository:app:pull,push\""));
            // Basic directly: the user may pull, not push (DENIED); an API token works like the password.
            let user = Some(basic("user", "user-pw"));
            assert_eq!(
                reg.send("GET", "/v2/app/tags/list", user.clone(), &[], Body::empty()).await.status,
                StatusCode::OK
            );
            let denied = reg.send("DELETE", "/v2/app/manifests/v1", user, &[], Body::empty()).await;
            assert_eq!((denied.status, denied.code().as_str()), (StatusCode::FORBIDDEN, "DENIED"));
            let api = Some("Bearer user-token".to_owned());
            assert_eq!(reg.send("GET", "/v2/app/manifests/v1", api, &[], Body::empty()).await.status, StatusCode::OK);
            // An admin's token pushes.
            let token = reg
                .send(
                    "GET",
                    "/v2/token?scope=repository:app:pull,push&scope=registry:catalog:*",
                    admin(),
                    &[],
                    Body::empty(),
                )
                .await;
            let bearer = format!("Bearer {}", token.json()["token"].as_str().unwrap());
            assert_eq!(
                reg.send("POST", "/v2/app/blobs/uploads/", Some(bearer.clone()), &[], Body::empty()).await.status,
                StatusCode::ACCEPTED
            );
            assert_eq!(reg.send("GET", "/v2/_catalog", Some(bearer), &[], Body::empty()).await.status, StatusCode::OK);
            // The server's own credential acts as an admin.
            let internal = Some(basic("internal", "internal-pw"));
            assert_eq!(
                reg.send("POST", "/v2/app/blobs/uploads/", internal, &[], Body::empty()).await.status,
                StatusCode::ACCEPTED
            );
            let slow = reg.send("GET", "/v2/", Some(basic("slow", "x")), &[], Body::empty()).await;
            assert_eq!(
                (slow.status, slow.code().as_str(), slow.header("retry-after")),
                (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS", "7")
            );
            let garbage = reg.send("GET", "/v2/", Some("Basic !!!".into()), &[], Body::empty()).await;
            assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);
            let scope = reg.send("GET", "/v2/token?scope=nonsense", admin(), &[], Body::empty()).await;
            assert_eq!(scope.status, StatusCode::BAD_REQUEST);
        }
    }

    #[tokio::test]
    async fn anonymous_pulls_when_allowed_and_never_pushes() {
        for reg in registries(true).await {
            reg.push_image("app", "v1", OCI_MANIFEST, b"l").await;
            // `/v2/` challenges even so, so that clients fetch a token (anonymous here) and push with credentials.
            assert_eq!(reg.send("GET", "/v2/", None, &[], Body::empty()).await.status, StatusCode::UNAUTHORIZED);
            assert_eq!(reg.send("GET", "/v2/app/manifests/v1", None, &[], Body::empty()).await.status, StatusCode::OK);
            let token = reg.send("GET", "/v2/token?scope=repository:app:pull,push", None, &[], Body::empty()).await;
            assert_eq!(token.status, StatusCode::OK);
            let bearer = format!("Bearer {}", token.json()["token"].as_str().unwrap());
            assert_eq!(
                reg.send("GET", "/v2/app/manifests/v1", Some(bearer.clone()), &[], Body::empty()).await.status,
                StatusCode::OK
            );
            assert_eq!(
                reg.send("POST", "/v2/app/blobs/uploads/", Some(bearer), &[], Body::empty()).await.status,
                StatusCode::UNAUTHORIZED
            );
            assert_eq!(
                reg.send("POST", "/v2/app/blobs/uploads/", None, &[], Body::empty()).await.status,
                StatusCode::UNAUTHORIZED
            );
        }
    }
}

mod crash_safety {
    use super::*;

    /// A body that sends some bytes and then fails, as a client that dies mid-upload.
    fn dying_body(bytes: &'static [u8]) -> Body {
        Body::from_stream(futures::stream::iter(vec![
            Ok(bytes::Bytes::from_static(bytes)),
            Err(std::io::Error::other("connection reset")),
        ]))
    }

    #[tokio::test]
    async fn a_partial_upload_is_never_visible_and_the_retry_succeeds() {
        for reg in registries(false).await {
            let content: &'static [u8] = b"the whole layer, all of it";
            let digest = sha(content);
            let mono = reg
                .admin("POST", &format!("/v2/app/blobs/uploads/?digest={digest}"), &[], dying_body(&content[..10]))
                .await;
            assert_eq!(mono.code(), "BLOB_UPLOAD_INVALID");
            assert_eq!(
                reg.admin("HEAD", &format!("/v2/app/blobs/{digest}"), &[], Body::empty()).await.status,
                StatusCode::NOT_FOUND
            );

            let start = reg.admin("POST", "/v2/app/blobs/uploads/", &[], Body::empty()).await;
            let location = start.header("location").to_owned();
            reg.admin("PATCH", &location, &[], &content[..5]).await;
            let died = reg.admin("PATCH", &location, &[], dying_body(&content[5..15])).await;
            assert_eq!(died.status, StatusCode::BAD_REQUEST);
            // Only the whole chunk counts; the rest of the dead one is not part of the upload.
            assert_eq!(reg.admin("GET", &location, &[], Body::empty()).await.header("range"), "0-4");
            assert_eq!(
                reg.admin("HEAD", &format!("/v2/app/blobs/{digest}"), &[], Body::empty()).await.status,
                StatusCode::NOT_FOUND
            );
            assert_eq!(std::fs::read_dir(reg.dir.path().join("registry/blobs/sha256")).unwrap().count(), 0);
            let done = reg
                .admin("PUT", &format!("{location}?digest={digest}"), &[("content-range", "5-25")], &content[5..])
                .await;
            assert_eq!(done.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&done.body));
            assert_eq!(reg.admin("GET", &format!("/v2/app/blobs/{digest}"), &[], Body::empty()).await.body, content);
        }
    }
}

mod gate {
    use super::*;

    #[tokio::test]
    async fn refused_pulls_are_denied_warned_or_not_asked() {
        for mode in [oci_registry::GateMode::Enforce, oci_registry::GateMode::Warn, oci_registry::GateMode::Off] {
            for reg in gated(false, mode).await {
                let image = reg.push_image("app", "bad", OCI_MANIFEST, b"l").await;
                reg.admin("PUT", "/v2/app/manifests/good", &[("content-type", OCI_MANIFEST)], image.clone()).await;
                let index = json!({
                    "schemaVersion": 2, "mediaType": OCI_INDEX,
                    "manifests": [{ "mediaType": OCI_MANIFEST, "digest": sha(&image), "size": image.len() }],
                })
                .to_string();
                reg.admin("PUT", "/v2/app/manifests/multi", &[("content-type", OCI_INDEX)], index.clone()).await;
                let bad = reg.admin("GET", "/v2/app/manifests/bad", &[], Body::empty()).await;
                let orphan = reg
                    .admin("HEAD", &format!("/v2/app/manifests/{}", sha(index.as_bytes())), &[], Body::empty())
                    .await;
                match mode {
                    oci_registry::GateMode::Enforce => {
                        assert_eq!((bad.status, bad.code().as_str()), (StatusCode::FORBIDDEN, "DENIED"));
                        assert_eq!(bad.json()["errors"][0]["message"], "tag bad of app is not approved");
                        assert_eq!(orphan.status, StatusCode::FORBIDDEN);
                    }
                    _ => assert!(bad.status == StatusCode::OK && orphan.status == StatusCode::OK, "{mode:?}"),
                }
                let filter = image_core::event::EventFilter {
                    event_type: Some(image_core::oci::GATE_WARNED_EVENT.to_owned()),
                    ..Default::default()
                };
                let events =
                    image_core::store::CatalogStore::list_events(reg.store.as_ref(), &filter).await.unwrap().items;
                if mode == oci_registry::GateMode::Warn {
                    assert_eq!(events.len(), 2, "one per warned pull");
                    let reasons: Vec<_> =
                        events.iter().map(|e| e.details["reason"].as_str().unwrap().to_owned()).collect();
                    assert!(reasons.contains(&"tag bad of app is not approved".to_owned()), "{reasons:?}");
                    assert!(events.iter().all(|e| e.actor == "admin" && e.details["repository"] == "app"));
                } else {
                    assert!(events.is_empty(), "{mode:?}: {events:?}");
                }
                assert_eq!(reg.admin("GET", "/v2/app/manifests/good", &[], Body::empty()).await.status, StatusCode::OK);
                // A platform's manifest of an index, by digest, and the blobs stay pullable.
                let child = reg.admin("GET", &format!("/v2/app/manifests/{}", sha(&image)), &[], Body::empty()).await;
                assert_eq!(child.status, StatusCode::OK);
                assert_eq!(
                    reg.admin("GET", &format!("/v2/app/blobs/{}", sha(b"l")), &[], Body::empty()).await.status,
                    StatusCode::OK
                );
                // The server's own credential passes the gate (imports read what they copy).
                let internal = reg
                    .send("GET", "/v2/app/manifests/bad", Some(basic("internal", "internal-pw")), &[], Body::empty())
                    .await;
                assert_eq!(internal.status, StatusCode::OK);
            }
        }
    }
}

mod garbage_collection {
    use super::*;

    #[tokio::test]
    async fn unreferenced_blobs_go_after_the_grace_period_and_a_dry_run_removes_nothing() {
        for reg in registries(false).await {
            reg.push_image("app", "v1", OCI_MANIFEST, b"kept layer").await;
            let loose = reg.push_blob("app", b"pushed, never referenced").await;
            let mounted = reg
                .admin("POST", &format!("/v2/other/blobs/uploads/?mount={loose}&from=app"), &[], Body::empty())
                .await;
            assert_eq!(mounted.status, StatusCode::CREATED);
            // An unrecorded file, as a crash between rename and record leaves.
            let orphan = reg.dir.path().join("registry/blobs/sha256/ab").join("ab".repeat(32));
            std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
            std::fs::write(&orphan, b"orphan").unwrap();
            let start = reg.admin("POST", "/v2/app/blobs/uploads/", &[], Body::empty()).await;
            let location = start.header("location").to_owned();
            reg.admin("PATCH", &location, &[], &b"half"[..]).await;
            let upload = location.rsplit('/').next().unwrap().to_owned();

            let recent = reg.registry.collect_garbage(std::time::Duration::from_secs(3600), false).await.unwrap();
            assert_eq!(recent, oci_registry::gc::GcReport::default(), "within the grace period nothing goes");
            let dry = reg.registry.collect_garbage(std::time::Duration::ZERO, true).await.unwrap();
            assert_eq!(dry.blobs, vec![(loose.parse().unwrap(), 24)]);
            assert_eq!(dry.files, vec![(orphan.clone(), 6)]);
            assert_eq!(dry.uploads, vec![(upload.clone(), 4)]);
            assert_eq!(reg.admin("GET", &location, &[], Body::empty()).await.status, StatusCode::NO_CONTENT);
            assert_eq!(
                reg.admin("HEAD", &format!("/v2/app/blobs/{loose}"), &[], Body::empty()).await.status,
                StatusCode::OK
            );
            assert!(orphan.exists());

            let done = reg.registry.collect_garbage(std::time::Duration::ZERO, false).await.unwrap();
            assert_eq!(done, dry);
            for repo in ["app", "other"] {
                assert_eq!(
                    reg.admin("HEAD", &format!("/v2/{repo}/blobs/{loose}"), &[], Body::empty()).await.status,
                    StatusCode::NOT_FOUND
                );
            }
            assert!(!orphan.exists());
            assert_eq!(reg.admin("GET", &location, &[], Body::empty()).await.code(), "BLOB_UPLOAD_UNKNOWN");
            assert!(!reg.dir.path().join("registry/uploads").join(&upload).exists());
            // What the image references stays, whole.
            assert_eq!(
                reg.admin("GET", &format!("/v2/app/blobs/{}", sha(b"kept layer")), &[], Body::empty()).await.body,
                b"kept layer"
            );
            assert_eq!(reg.admin("GET", "/v2/app/manifests/v1", &[], Body::empty()).await.status, StatusCode::OK);
            let again = reg.registry.collect_garbage(std::time::Duration::ZERO, false).await.unwrap();
            assert_eq!(again, oci_registry::gc::GcReport::default());
        }
    }
}
