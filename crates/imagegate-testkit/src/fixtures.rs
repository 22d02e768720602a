//! The committed fixtures of `crates/imagegate/tests/data/` (Kyverno CLI test folders,
//! AdmissionReviews, policies) made concrete: [`World`] pushes and signs the images
//! they name into a fresh [`Registry`] and fills in their placeholders. Shared by the
//! binary's CLI tests and the engine's tests of the same fixtures, so both read one copy
//! of each fixture.
//!
//! The registry address, keys and digests are random, so the fixtures carry placeholders
//! (`@REGISTRY@`, `@KEY_A@`, `@DIGEST_SIGNED@`, ...) that [`World::materialize`]
//! substitutes into a temporary copy. A multi-line value (a PEM) replaces its
//! placeholder line with every line indented like the placeholder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::cosign::CosignKey;
use crate::registry::Registry;

/// The predicate type of the CodeReview attestation on `kyverno/test-verify-image:attested`.
pub const CODE_REVIEW: &str = "https://example.com/CodeReview/v1";
/// The predicate type of the SBOM attestation on `ivpol/test-verify-image:signed`.
pub const CYCLONEDX: &str = "https://cyclonedx.org/bom";

/// The signed-Pod reviews of `reviews/`, one per AdmissionReview version: file,
/// `apiVersion` and request uid, which the answer must echo.
pub const SIGNED_POD_REVIEWS: [(&str, &str, &str); 2] = [
    (
        "signed-pod-v1.json",
        "admission.k8s.io/v1",
        "0b4e2a8c-0d6e-4c8f-9b1f-5d1d6e2f7a01",
    ),
    (
        "signed-pod-v1beta1.json",
        "admission.k8s.io/v1beta1",
        "0b4e2a8c-0d6e-4c8f-9b1f-5d1d6e2f7a02",
    ),
];

/// A registry holding the images every fixture refers to, the keys that signed them,
/// and the placeholder values.
///
/// | image | evidence |
/// | --- | --- |
/// | `kyverno/test-verify-image:signed` | signature by key A |
/// | `kyverno/test-verify-image:unsigned` | none |
/// | `kyverno/test-verify-image:signed-by-someone-else` | signature by key C |
/// | `kyverno/test-verify-image:attested` | signature and CodeReview attestation by A |
/// | `app/dual:v1` | signatures by keys A and B |
/// | `app/separate:v1` | signature by A stored in `signatures/separate` |
/// | `ivpol/test-verify-image:signed` | signature and CycloneDX SBOM attestation by A |
/// | `ivpol/test-verify-image:unsigned` | none |
pub struct World {
    /// Kept alive (dropping it stops the registry).
    _registry: Registry,
    /// The fixture folder [`World::materialize`] reads from.
    data: PathBuf,
    /// Placeholder name (without the `@`s) → value.
    pub vars: BTreeMap<&'static str, String>,
}

impl World {
    /// Starts the registry and pushes the images; fixtures are read from `data`
    /// (`crates/imagegate/tests/data`).
    pub fn new(data: PathBuf) -> World {
        let registry = Registry::start();
        let [a, b, c] = [
            CosignKey::generate(),
            CosignKey::generate(),
            CosignKey::generate(),
        ];
        let host = registry.host();
        let pusher = registry.pusher();
        let none = BTreeMap::new();
        let tvi = "kyverno/test-verify-image";
        let tvi_name = format!("{host}/{tvi}");

        let signed = pusher.push_image(tvi, "signed");
        pusher.sign(tvi, &tvi_name, &signed, &a, &none);
        let unsigned = pusher.push_image(tvi, "unsigned");
        let someone_else = pusher.push_image(tvi, "signed-by-someone-else");
        pusher.sign(tvi, &tvi_name, &someone_else, &c, &none);
        let attested = pusher.push_image(tvi, "attested");
        pusher.sign(tvi, &tvi_name, &attested, &a, &none);
        pusher.attest(
            tvi,
            &tvi_name,
            &attested,
            &a,
            CODE_REVIEW,
            &json!({
                "author": "mailto:alice@example.com",
                "repo": {"branch": "main", "type": "git", "uri": "https://github.com/example/my-project"},
                "reviewers": ["mailto:bob@example.com"],
            }),
        );
        let dual = pusher.push_image("app/dual", "v1");
        let dual_name = format!("{host}/app/dual");
        pusher.sign("app/dual", &dual_name, &dual, &a, &none);
        pusher.sign("app/dual", &dual_name, &dual, &b, &none);
        let separate = pusher.push_image("app/separate", "v1");
        pusher.sign(
            "signatures/separate",
            &format!("{host}/app/separate"),
            &separate,
            &a,
            &none,
        );
        // Kyverno's `test-image-validating-policy` images: signed by A with a
        // CycloneDX SBOM attestation by A, and unsigned.
        let ivpol = "ivpol/test-verify-image";
        let ivpol_name = format!("{host}/{ivpol}");
        let sbom = pusher.push_image(ivpol, "signed");
        pusher.sign(ivpol, &ivpol_name, &sbom, &a, &none);
        pusher.attest(
            ivpol,
            &ivpol_name,
            &sbom,
            &a,
            CYCLONEDX,
            &json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []}),
        );
        pusher.push_image(ivpol, "unsigned");
        drop(pusher);

        let vars = BTreeMap::from([
            ("REGISTRY", host),
            ("KEY_A", a.public_pem()),
            ("KEY_B", b.public_pem()),
            ("KEY_C", c.public_pem()),
            ("KEYS_AB", format!("{}{}", a.public_pem(), b.public_pem())),
            ("DIGEST_SIGNED", signed),
            ("DIGEST_UNSIGNED", unsigned),
            ("DIGEST_SOMEONE_ELSE", someone_else),
            ("DIGEST_ATTESTED", attested),
            ("DIGEST_DUAL", dual),
            ("DIGEST_SEPARATE", separate),
        ]);
        World {
            _registry: registry,
            data,
            vars,
        }
    }

    /// A temporary copy of the fixture folder `<data>/<relative>` with the placeholders
    /// replaced.
    pub fn materialize(&self, relative: &str) -> tempfile::TempDir {
        let source = self.data.join(relative);
        let target = tempfile::tempdir().expect("temp dir");
        copy_substituted(&source, target.path(), &self.vars);
        target
    }
}

/// Copies the folder `source` into `target` (recursively), replacing the placeholders
/// of every file with `vars` (see [`World::materialize`]).
pub fn copy_substituted(source: &Path, target: &Path, vars: &BTreeMap<&'static str, String>) {
    for entry in std::fs::read_dir(source)
        .unwrap_or_else(|e| panic!("fixture folder {}: {e}", source.display()))
    {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if path.is_dir() {
            std::fs::create_dir_all(target.join(name)).unwrap();
            copy_substituted(&path, &target.join(name), vars);
        } else {
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(target.join(name), substitute(&text, vars)).unwrap();
        }
    }
}

/// Replaces `@NAME@` placeholders; a multi-line value is indented like its line.
/// Panics on a placeholder without a value (a typo in a fixture).
fn substitute(text: &str, vars: &BTreeMap<&'static str, String>) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let indent: String = line.chars().take_while(|c| *c == ' ').collect();
        let mut line = line.to_owned();
        for (name, value) in vars {
            let placeholder = format!("@{name}@");
            if !line.contains(&placeholder) {
                continue;
            }
            let value = if value.trim_end().contains('\n') {
                value.trim_end().replace('\n', &format!("\n{indent}"))
            } else {
                value.clone()
            };
            line = line.replace(&placeholder, &value);
        }
        out.push_str(&line);
    }
    if let Some(left) = leftover_placeholder(&out) {
        panic!("fixture placeholder {left} has no value");
    }
    out
}

fn leftover_placeholder(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b != b'@' {
            continue;
        }
        let name: String = text[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        if !name.is_empty() && text[i + 1 + name.len()..].starts_with('@') {
            return Some(format!("@{name}@"));
        }
    }
    None
}

/// The JSONPatch operations of an AdmissionResponse (as JSON), decoded from its base64
/// `patch`; none when it has no patch. Panics when a patch is not a JSONPatch.
pub fn decoded_patch(response: &Value) -> Vec<Value> {
    let Some(patch) = response.get("patch").and_then(Value::as_str) else {
        return Vec::new();
    };
    assert_eq!(response["patchType"], "JSONPatch", "{response:#}");
    let bytes = STANDARD
        .decode(patch)
        .unwrap_or_else(|e| panic!("patch is not base64 ({e}): {response:#}"));
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("patch is not a JSON array ({e}): {response:#}"))
}
