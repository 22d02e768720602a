//! Shared helpers: a policy text to vary, pods, and loading.

use imagegate_policy::ivp::CompiledIvp;
use imagegate_policy::load::load_documents;
use serde_json::{Value, json};

/// A policy verifying `registry.test/*` images with a cosign key, a notary attestor and
/// an SBOM attestation; `{VALIDATIONS}` and `{EXTRA}` (more spec fields) are replaced.
pub const BASE: &str = r#"
apiVersion: policies.kyverno.io/v1beta1
kind: ImageValidatingPolicy
metadata:
  name: check-images
spec:
  validationConfigurations:
    verifyDigest: false
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: [v1]
      operations: [CREATE, UPDATE]
      resources: [pods]
  matchImageReferences:
  - glob: "registry.test/*"
  attestors:
  - name: cosign
    cosign:
      key:
        data: "-----BEGIN PUBLIC KEY-----\nTEST\n-----END PUBLIC KEY-----"
  - name: notary
    notary:
      certs:
        value: "-----BEGIN CERTIFICATE-----\nTEST\n-----END CERTIFICATE-----"
  attestations:
  - name: sbom
    referrer:
      type: sbom/cyclone-dx
{EXTRA}
  validations:
{VALIDATIONS}
"#;

/// The signature validation most policies use.
pub const VERIFY_COSIGN: &str = r#"  - expression: >-
      images.containers.map(i, verifyImageSignatures(i, [attestors.cosign])).all(n, n > 0)
    message: failed to verify image with cosign key"#;

/// [`BASE`] with validations and extra spec fields.
pub fn policy_text(validations: &str, extra: &str) -> String {
    BASE.replace("{VALIDATIONS}", validations)
        .replace("{EXTRA}", extra)
}

/// Loads exactly one ImageValidatingPolicy or panics with the error.
pub fn load(text: &str) -> CompiledIvp {
    let mut l = load_documents(text, "test.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .image_validating;
    assert_eq!(l.len(), 1);
    l.remove(0)
}

/// The load error of `text`, as displayed.
pub fn load_error(text: &str) -> String {
    match load_documents(text, "test.yaml") {
        Ok(_) => panic!("loaded, expected an error"),
        Err(e) => e.to_string(),
    }
}

/// A pod in `default` with these container images and labels.
pub fn pod(name: &str, images: &[&str], labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"containers": images.iter().enumerate()
            .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
            .collect::<Vec<_>>()}
    })
}
