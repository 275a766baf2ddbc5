//! Reading what a pushed manifest references, without changing its bytes.

use image_core::{
    Digest,
    oci::{ManifestReference, ReferenceKind},
};
use serde_json::Value;

use crate::error::{Code, OciError, OciResult};

pub use image_core::manifest::media_type::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};

/// The largest manifest accepted.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// What the registry keeps of a manifest besides its bytes.
#[derive(Debug)]
pub struct Parsed {
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub subject: Option<Digest>,
    pub annotations: Option<String>,
    pub references: Vec<ManifestReference>,
}

fn invalid(message: impl Into<String>) -> OciError {
    OciError::new(Code::ManifestInvalid, message)
}

fn descriptor(value: &Value, what: &str, kind: ReferenceKind) -> OciResult<ManifestReference> {
    let digest = value.get("digest").and_then(Value::as_str).ok_or_else(|| invalid(format!("{what} has no digest")))?;
    let digest: Digest = digest.parse().map_err(|e| invalid(format!("{what}: {e}")))?;
    let size = value
        .get("size")
        .and_then(Value::as_i64)
        .filter(|s| *s >= 0)
        .ok_or_else(|| invalid(format!("{what} has no size")))?;
    Ok(ManifestReference { digest, kind, size })
}

/// Layers that registries do not hold (Windows base layers with `urls`).
fn is_foreign(layer: &Value) -> bool {
    let media_type = layer.get("mediaType").and_then(Value::as_str).unwrap_or("");
    (media_type.contains("foreign") || media_type.contains("nondistributable")) && layer.get("urls").is_some()
}

/// Parses a manifest pushed with `content_type`: one of the Docker v2 schema 2 and OCI media types, images
/// and indexes.
pub fn parse(content: &[u8], content_type: Option<&str>) -> OciResult<Parsed> {
    let value: Value = serde_json::from_slice(content).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let object = value.as_object().ok_or_else(|| invalid("a manifest is a JSON object"))?;
    match object.get("schemaVersion").and_then(Value::as_i64) {
        Some(2) => {}
        Some(1) => {
            return Err(OciError::new(Code::Unsupported, "Docker schema 1 manifests are not supported")
                .with_status(axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        _ => return Err(invalid("schemaVersion must be 2")),
    }
    let declared = object.get("mediaType").and_then(Value::as_str);
    let content_type = content_type.map(|c| c.split(';').next().unwrap_or("").trim()).filter(|c| !c.is_empty());
    let media_type = match (declared, content_type) {
        (Some(declared), Some(given)) if declared != given => {
            return Err(invalid(format!("the manifest's mediaType `{declared}` is not its Content-Type `{given}`")));
        }
        (Some(media_type), _) | (None, Some(media_type)) => media_type.to_owned(),
        (None, None) => return Err(invalid("the manifest has no mediaType and the request no Content-Type")),
    };
    let mut references = Vec::new();
    let mut artifact_type = object.get("artifactType").and_then(Value::as_str).map(str::to_owned);
    match media_type.as_str() {
        DOCKER_MANIFEST | OCI_MANIFEST => {
            let config = object.get("config").ok_or_else(|| invalid("an image manifest has a config"))?;
            references.push(descriptor(config, "config", ReferenceKind::Blob)?);
            if artifact_type.is_none() && media_type == OCI_MANIFEST {
                artifact_type = config.get("mediaType").and_then(Value::as_str).map(str::to_owned);
            }
            let layers = match object.get("layers") {
                Some(Value::Array(layers)) => layers.as_slice(),
                None => &[],
                Some(_) => return Err(invalid("layers is a list")),
            };
            for (i, layer) in layers.iter().enumerate() {
                if !is_foreign(layer) {
                    references.push(descriptor(layer, &format!("layer {i}"), ReferenceKind::Blob)?);
                }
            }
        }
        DOCKER_MANIFEST_LIST | OCI_INDEX => {
            let manifests = match object.get("manifests") {
                Some(Value::Array(manifests)) => manifests.as_slice(),
                None if media_type == OCI_INDEX => &[],
                _ => return Err(invalid("an index has a list of manifests")),
            };
            for (i, manifest) in manifests.iter().enumerate() {
                references.push(descriptor(manifest, &format!("manifest {i}"), ReferenceKind::Manifest)?);
            }
        }
        other => {
            return Err(OciError::new(
                Code::Unsupported,
                format!("manifests of media type `{other}` are not supported"),
            )
            .with_status(axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
    }
    let subject = match object.get("subject") {
        None | Some(Value::Null) => None,
        Some(subject) => Some(descriptor(subject, "subject", ReferenceKind::Manifest)?.digest),
    };
    let annotations = object.get("annotations").filter(|a| a.is_object()).map(Value::to_string);
    Ok(Parsed { media_type, artifact_type, subject, annotations, references })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn image_manifests_reference_config_and_layers() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/x","digest":"{D}","size":2}},"layers":[{{"mediaType":"l","digest":"{D}","size":3}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{D}","size":9}},"annotations":{{"a":"b"}}}}"#
        );
        let parsed = parse(body.as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(parsed.references.len(), 2);
        assert_eq!(parsed.artifact_type.as_deref(), Some("application/x"));
        assert!(parsed.subject.is_some());
        assert_eq!(parsed.annotations.as_deref(), Some(r#"{"a":"b"}"#));
    }

    #[test]
    fn bad_manifests_are_refused_with_their_codes() {
        for (body, content_type, code) in [
            ("nope", Some(OCI_MANIFEST), Code::ManifestInvalid),
            (r#"{"schemaVersion":1}"#, None, Code::Unsupported),
            (r#"{"schemaVersion":2}"#, None, Code::ManifestInvalid),
            (
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#,
                Some(OCI_MANIFEST),
                Code::ManifestInvalid,
            ),
            (r#"{"schemaVersion":2,"mediaType":"text/plain"}"#, None, Code::Unsupported),
            (
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"md5:x","size":1}}"#,
                None,
                Code::ManifestInvalid,
            ),
        ] {
            assert_eq!(parse(body.as_bytes(), content_type).unwrap_err().code, code, "{body}");
        }
    }
}
