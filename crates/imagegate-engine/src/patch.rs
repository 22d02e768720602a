//! JSON patches (RFC 6902): digest pinning and the verified-images annotation.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// The annotation Kyverno writes with the images it verified.
pub const VERIFY_IMAGES_ANNOTATION: &str = "kyverno.io/verify-images";

/// Replaces the image string at `pointer` with `pinned`.
pub fn pin_digest_patch(pointer: &str, pinned: &str) -> Value {
    json!({"op": "replace", "path": pointer, "value": pinned})
}

/// Writes `kyverno.io/verify-images` with the images verified by this evaluation,
/// overwriting whatever the client sent.
pub fn verified_images_patch(resource: &Value, verified: &BTreeMap<String, String>) -> Value {
    let value = serde_json::to_string(verified).unwrap_or_default();
    let has_annotations = resource
        .pointer("/metadata/annotations")
        .is_some_and(Value::is_object);
    if has_annotations {
        let key = annotation_pointer_token();
        json!({"op": "add", "path": format!("/metadata/annotations/{key}"), "value": value})
    } else {
        json!({"op": "add", "path": "/metadata/annotations", "value": {VERIFY_IMAGES_ANNOTATION: value}})
    }
}

/// Removes a `kyverno.io/verify-images` annotation the client wrote, if there is one.
pub fn remove_client_annotation_patch(resource: &Value) -> Option<Value> {
    resource
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(VERIFY_IMAGES_ANNOTATION))?;
    Some(
        json!({"op": "remove", "path": format!("/metadata/annotations/{}", annotation_pointer_token())}),
    )
}

/// The annotation key as one JSON-pointer token (RFC 6901 escaping).
fn annotation_pointer_token() -> String {
    VERIFY_IMAGES_ANNOTATION
        .replace('~', "~0")
        .replace('/', "~1")
}

/// `resource` with `patches` applied.
pub fn apply_patches(resource: &Value, patches: &[Value]) -> Result<Value, String> {
    let mut patched = resource.clone();
    if patches.is_empty() {
        return Ok(patched);
    }
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(patches.to_vec())).map_err(|e| e.to_string())?;
    json_patch::patch(&mut patched, &patch).map_err(|e| e.to_string())?;
    Ok(patched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_patch_creates_or_overwrites() {
        let verified = BTreeMap::from([("r/a:v1@sha256:00".to_owned(), "pass".to_owned())]);
        let bare = json!({"metadata": {"name": "p"}});
        let patched = apply_patches(&bare, &[verified_images_patch(&bare, &verified)]).unwrap();
        assert_eq!(
            patched["metadata"]["annotations"][VERIFY_IMAGES_ANNOTATION],
            json!(r#"{"r/a:v1@sha256:00":"pass"}"#)
        );
        let forged =
            json!({"metadata": {"annotations": {VERIFY_IMAGES_ANNOTATION: "{\"evil\":\"pass\"}"}}});
        let patched = apply_patches(&forged, &[verified_images_patch(&forged, &verified)]).unwrap();
        assert_eq!(
            patched["metadata"]["annotations"][VERIFY_IMAGES_ANNOTATION],
            json!(r#"{"r/a:v1@sha256:00":"pass"}"#)
        );
    }

    #[test]
    fn client_annotation_is_removed_when_nothing_verified() {
        let forged =
            json!({"metadata": {"annotations": {VERIFY_IMAGES_ANNOTATION: "{}", "a": "b"}}});
        let patch = remove_client_annotation_patch(&forged).unwrap();
        let patched = apply_patches(&forged, &[patch]).unwrap();
        assert_eq!(patched["metadata"]["annotations"], json!({"a": "b"}));
        assert_eq!(
            remove_client_annotation_patch(&json!({"metadata": {}})),
            None
        );
    }

    #[test]
    fn pin_patch_replaces_the_image() {
        let pod = json!({"spec": {"containers": [{"image": "nginx"}]}});
        let patched = apply_patches(
            &pod,
            &[pin_digest_patch(
                "/spec/containers/0/image",
                "docker.io/library/nginx:latest@sha256:00",
            )],
        )
        .unwrap();
        assert_eq!(
            patched["spec"]["containers"][0]["image"],
            json!("docker.io/library/nginx:latest@sha256:00")
        );
    }
}
