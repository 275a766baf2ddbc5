//! Every endpoint of the built-in registry called as anonymous, user and admin (the rows of the README's
//! table of `/v2/` routes), and generated malformed requests across all of them: never a 5xx, always an
//! error in the spec's format.

mod common;

use axum::{body::Body, http::StatusCode};
use common::{OCI_MANIFEST, basic, registries, sha};

/// Who may call it: `pull` (users and admins) or `push` (admins).
const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/v2/", "pull"),
    ("HEAD", "/v2/", "pull"),
    ("GET", "/v2/_catalog", "pull"),
    ("GET", "/v2/app/tags/list", "pull"),
    ("GET", "/v2/app/referrers/{digest}", "pull"),
    ("GET", "/v2/app/manifests/v1", "pull"),
    ("HEAD", "/v2/app/manifests/v1", "pull"),
    ("GET", "/v2/app/blobs/{layer}", "pull"),
    ("HEAD", "/v2/app/blobs/{layer}", "pull"),
    ("PUT", "/v2/app/manifests/v2", "push"),
    ("POST", "/v2/app/blobs/uploads/", "push"),
    ("GET", "/v2/app/blobs/uploads/{upload}", "push"),
    ("PATCH", "/v2/app/blobs/uploads/{upload}", "push"),
    ("PUT", "/v2/app/blobs/uploads/{upload}?digest={layer}", "push"),
    ("DELETE", "/v2/app/blobs/uploads/{upload}", "push"),
    ("DELETE", "/v2/app/manifests/{digest}", "push"),
    ("DELETE", "/v2/app/blobs/{layer}", "push"),
];

#[tokio::test]
async fn every_route_as_anonymous_user_and_admin() {
    for reg in registries(false).await {
        let manifest = reg.push_image("app", "v1", OCI_MANIFEST, b"layer").await;
        for (method, template, role) in ROUTES {
            for caller in ["anonymous", "user", "admin"] {
                let upload = reg.admin("POST", "/v2/app/blobs/uploads/", &[], Body::empty()).await;
                let upload = upload.header("location").rsplit('/').next().unwrap().to_owned();
                let path = template
                    .replace("{digest}", &sha(&manifest))
                    .replace("{layer}", &sha(b"layer"))
                    .replace("{upload}", &upload);
                let auth = match caller {
                    "anonymous" => None,
                    "user" => Some(basic("user", "user-pw")),
                    _ => Some(basic("admin", "admin-pw")),
                };
                let body = match *method {
                    "PUT" if path.contains("/manifests/") => manifest.clone(),
                    "PUT" => b"layer".to_vec(),
                    _ => Vec::new(),
                };
                let answer = reg.send(method, &path, auth, &[("content-type", OCI_MANIFEST)], Body::from(body)).await;
                let what = format!(
                    "{method} {template} as {caller}: {} {}",
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                );
                match (caller, *role) {
                    ("anonymous", _) => {
                        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{what}");
                        assert!(answer.header("www-authenticate").starts_with("Bearer realm="), "{what}");
                    }
                    ("user", "push") => {
                        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{what}");
                        if *method != "HEAD" {
                            assert_eq!(answer.code(), "DENIED", "{what}");
                        }
                    }
                    _ => assert!(answer.status.is_success(), "{what}"),
                }
            }
            // What a delete took away comes back for the next route.
            reg.push_image("app", "v1", OCI_MANIFEST, b"layer").await;
        }
    }
}

/// A small deterministic generator (xorshift), so a failure reproduces with its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }

    fn text(&mut self, max: usize) -> String {
        const CHARS: &[u8] = b"abcXYZ019-._~:@%/";
        let len = (self.next() % (max as u64 + 1)) as usize;
        (0..len).map(|_| CHARS[(self.next() % CHARS.len() as u64) as usize] as char).collect()
    }
}

#[tokio::test]
async fn generated_garbage_gets_4xx_in_the_spec_format() {
    let seed = std::env::var("IMAGEGATE_GARBAGE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x05ee_d0c1);
    for reg in registries(false).await {
        let manifest = reg.push_image("app", "v1", OCI_MANIFEST, b"layer").await;
        let upload = reg.admin("POST", "/v2/app/blobs/uploads/", &[], Body::empty()).await;
        let upload = upload.header("location").rsplit('/').next().unwrap().to_owned();
        let (digest, layer) = (sha(&manifest), sha(b"layer"));
        let mut rng = Rng(seed);
        let mut sent = 0;
        for i in 0..600 {
            let junk = rng.text(40);
            let name = rng.pick(&["app", "a/b", "App", "", "a//b", "x", "..", "%41pp", "a-", &junk]).to_owned();
            let reference = rng.pick(&["v1", &digest, "sha256:", "sha512:abc", "-x", "", "%zz", &junk]).to_owned();
            let tail = match rng.next() % 9 {
                0 => format!("{name}/manifests/{reference}"),
                1 => format!("{name}/blobs/{}", rng.pick(&[&layer, &reference])),
                2 => format!("{name}/blobs/uploads/"),
                3 => format!("{name}/blobs/uploads/{}", rng.pick(&[&upload, &junk, ""])),
                4 => format!("{name}/tags/list"),
                5 => format!("{name}/referrers/{reference}"),
                6 => "_catalog".to_owned(),
                7 => "token".to_owned(),
                _ => junk.clone(),
            };
            let query = rng.pick(&[
                "",
                "?n=abc",
                "?n=-5&last=%ff",
                "?digest=sha256:00",
                "?digest=",
                "?mount=x&from=Y",
                "?mount=sha256:zz&from=app",
                "?scope=repository:app:pull&scope=%%%",
                "?scope=registry:catalog:*",
                "?artifactType=%00",
            ]);
            let method = rng.pick(&["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"]);
            let auth = match rng.next() % 6 {
                0 => Some("Basic ###".to_owned()),
                1 => Some("Bearer not.a.token".to_owned()),
                2 => Some("Negotiate x".to_owned()),
                _ => Some(basic("admin", "admin-pw")),
            };
            let header_value = rng.pick(&["0-", "5-1", "bytes=0-1", "x", "99999999999999999999-1", "0-0", "bytes=-0"]);
            let headers = [
                ("content-range", header_value),
                ("range", rng.pick(&["bytes=0-", "bytes=a-b", "bytes=5-1", "bytes=1-2,3-4", "x"])),
                (
                    "content-type",
                    rng.pick(&[OCI_MANIFEST, "text/plain", "application/vnd.oci.image.index.v1+json", ""]),
                ),
            ];
            let count = (rng.next() % 3) as usize;
            let body = match rng.next() % 4 {
                0 => Vec::new(),
                1 => rng.text(200).into_bytes(),
                2 => br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:1","size":-1},"layers":{}}"#.to_vec(),
                _ => br#"{"schemaVersion":2,"manifests":[{"digest":5}]}"#.to_vec(),
            };
            let path = format!("/v2/{tail}{query}");
            let Ok(uri) = path.parse::<axum::http::Uri>() else { continue };
            sent += 1;
            let answer = reg.send(method, &uri.to_string(), auth, &headers[..count], Body::from(body)).await;
            let what = format!("#{i} {method} {path}: {} {}", answer.status, String::from_utf8_lossy(&answer.body));
            assert!(answer.status.as_u16() < 500, "{what}");
            if !answer.status.is_success() && method != "HEAD" {
                assert!(!answer.code().is_empty(), "{what}");
                assert!(answer.json()["errors"][0]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}");
            }
        }
        assert!(sent > 500, "only {sent} of the generated requests were valid HTTP");
        // The pushed image is still there, whole.
        assert_eq!(reg.admin("GET", "/v2/app/manifests/v1", &[], Body::empty()).await.body, manifest);
    }
}
