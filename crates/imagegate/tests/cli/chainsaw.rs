//! Kyverno's chainsaw scenarios for ImageValidatingPolicies
//! (`test/conformance/chainsaw/image-validating-policies`), re-created in
//! `tests/data/chainsaw/` and replayed as AdmissionReviews through `imagegate review`
//! against a real registry.
//!
//! Each scenario folder holds Kyverno's policy (and exception) files, the resources its
//! steps create, and `expect.yaml`: what Kyverno's steps assert, as imagegate must answer
//! it. Every document of an admission's file is one request: the mutating phase first,
//! its patch applied, then the validating phase on the patched object, as the API server
//! calls the two webhooks. A folder's README table says which scenarios are not replayed
//! and why. Kyverno's images on ghcr.io are re-created in the local registry: signed with
//! Notation by a test CA (with a Notation-signed CycloneDX SBOM referrer) where Kyverno
//! signs with its Notation test certificate, and with cosign key A where Kyverno's image
//! is signed keyless.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use imagegate_testkit::fixtures::{copy_substituted, decoded_patch};
use imagegate_testkit::notation::{self, JWS, KeySpec, NotationCa, SignOptions, Validity};
use imagegate_testkit::oci::Descriptor;
use imagegate_testkit::{CosignKey, Registry};
use serde_json::{Value, json};

use crate::util::{Run, imagegate_with_input};

/// The artifact type of Kyverno's SBOM referrers (`referrer.type` in its policies).
const SBOM_ARTIFACT_TYPE: &str = "sbom/cyclone-dx";
/// The predicate type of the SLSA provenance on `kyverno/test-images/cosign`.
const SLSA_PROVENANCE: &str = "https://slsa.dev/provenance/v1";
/// At least this many admissions are replayed (a scenario lost is a failure).
const MIN_ADMISSIONS: usize = 35;

/// The scenario data (read from here, materialised into a temporary copy).
fn chainsaw_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/chainsaw")
}

/// Kyverno's chainsaw images re-created in a fresh registry, and the placeholder values.
///
/// | image | evidence |
/// | --- | --- |
/// | `kyverno/test-verify-image:signed` | Notation signature by the test CA's signer; a CycloneDX SBOM referrer (`sbom/cyclone-dx`) Notation-signed by the same |
/// | `kyverno/test-verify-image:unsigned` | none |
/// | `kyverno/test-verify-image:signed-keyless` | none needed (the digest scenarios only pin it) |
/// | `kyverno/test-images/cosign:github-attestation` | cosign signature and SLSA provenance v1 attestation by key A |
struct ChainsawWorld {
    /// Kept alive (dropping it stops the registry).
    _registry: Registry,
    vars: BTreeMap<&'static str, String>,
}

impl ChainsawWorld {
    fn new() -> ChainsawWorld {
        let registry = Registry::start();
        let pusher = registry.pusher();
        let host = registry.host();
        let descriptor = |repo: &str, digest: &str| {
            let (media_type, bytes) = pusher.get_manifest(repo, digest).expect("pushed image");
            Descriptor::of(&media_type, &bytes)
        };

        let ca = NotationCa::new("imagegate chainsaw test CA", KeySpec::EcP256);
        let signer = ca.signer("chainsaw-signer", KeySpec::EcP256, Validity::current());
        let tvi = "kyverno/test-verify-image";
        let signed = descriptor(tvi, &pusher.push_image(tvi, "signed"));
        let envelope = signer.sign_jws(&signed, &SignOptions::default());
        notation::push_signature(&pusher, tvi, &signed, &envelope, JWS);
        let sbom = json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []});
        let artifact = notation::push_artifact(
            &pusher,
            tvi,
            &signed,
            SBOM_ARTIFACT_TYPE,
            sbom.to_string().as_bytes(),
            "application/vnd.cyclonedx+json",
        );
        let envelope = signer.sign_jws(&artifact, &SignOptions::default());
        notation::push_signature(&pusher, tvi, &artifact, &envelope, JWS);
        pusher.push_image(tvi, "unsigned");
        let keyless = pusher.push_image(tvi, "signed-keyless");

        let key = CosignKey::generate();
        let cosign = "kyverno/test-images/cosign";
        let attested = pusher.push_image(cosign, "github-attestation");
        let cosign_name = format!("{host}/{cosign}");
        pusher.sign(cosign, &cosign_name, &attested, &key, &BTreeMap::new());
        pusher.attest(
            cosign,
            &cosign_name,
            &attested,
            &key,
            SLSA_PROVENANCE,
            &json!({
                "buildDefinition": {
                    "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                    "externalParameters": {"workflow": {"path": ".github/workflows/cosign.yml"}},
                },
                "runDetails": {"builder": {"id": "https://github.com/actions/runner"}},
            }),
        );
        drop(pusher);

        ChainsawWorld {
            _registry: registry,
            vars: BTreeMap::from([
                ("REGISTRY", host),
                ("NOTARY_CERT", ca.pem()),
                ("KEY_A", key.public_pem()),
                ("DIGEST_SIGNED_KEYLESS", keyless),
            ]),
        }
    }
}

/// The scenario folders under `dir` (those holding a `policy.yaml`), relative to `root`.
fn scenarios(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    if entries.iter().any(|e| e.ends_with("policy.yaml")) {
        out.push(dir.strip_prefix(root).unwrap().to_owned());
    }
    for entry in entries.into_iter().filter(|e| e.is_dir()) {
        scenarios(root, &entry, out);
    }
}

/// The objects of a YAML file (Namespaces dropped: the scenarios' namespaces exist).
fn objects(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let documents: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    documents
        .into_iter()
        .filter(|d| d.is_object() && d["kind"] != "Namespace")
        .collect()
}

/// `imagegate review --phase PHASE --policy P... < review`.
fn review(policies: &[PathBuf], phase: &str, review: &Value) -> (Run, Value) {
    let mut args: Vec<&OsStr> = vec!["review".as_ref(), "--phase".as_ref(), phase.as_ref()];
    for policy in policies {
        args.extend([OsStr::new("--policy"), policy.as_os_str()]);
    }
    let run = imagegate_with_input(&args, review.to_string().as_bytes());
    let answer: Value = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
    (run, answer["response"].clone())
}

/// What the API server sends for `object` (`admission.k8s.io/v1`): group, version and
/// plural resource from the object, as `kubectl create` would request them.
fn admission_review(
    uid: &str,
    operation: &str,
    sub_resource: Option<&str>,
    object: &Value,
    old_object: Option<&Value>,
) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap_or_default();
    let gvk = json!({"group": group, "version": version, "kind": kind});
    let gvr = json!({"group": group, "version": version, "resource": format!("{}s", kind.to_ascii_lowercase())});
    let mut request = json!({
        "uid": uid,
        "kind": gvk,
        "resource": gvr,
        "requestKind": gvk,
        "requestResource": gvr,
        "name": object["metadata"]["name"],
        "namespace": object["metadata"]["namespace"],
        "operation": operation,
        "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
        "object": object,
        "oldObject": old_object,
        "dryRun": false,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": format!("{}Options", capitalised(operation))},
    });
    if let Some(sub) = sub_resource {
        request["subResource"] = json!(sub);
        request["requestSubResource"] = json!(sub);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

fn capitalised(operation: &str) -> String {
    let lower = operation.to_ascii_lowercase();
    let mut chars = lower.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The object as the API server stores a `kubectl create` of it in the test namespace.
fn in_namespace(mut object: Value) -> Value {
    if object.pointer("/metadata/namespace").is_none() {
        object["metadata"]["namespace"] = json!("default");
    }
    object
}

/// The container images of a Pod or pod controller, in order.
fn container_images(object: &Value) -> Vec<String> {
    [
        "/spec/containers",
        "/spec/template/spec/containers",
        "/spec/jobTemplate/spec/template/spec/containers",
    ]
    .iter()
    .filter_map(|p| object.pointer(p).and_then(Value::as_array))
    .flatten()
    .filter_map(|c| c["image"].as_str().map(str::to_owned))
    .collect()
}

/// What the two webhooks answered for one object together.
#[derive(Debug)]
struct Admission {
    allowed: bool,
    message: Option<String>,
    warnings: Vec<String>,
    audit_annotations: Value,
    /// The object after the mutating webhook's patch.
    object: Value,
}

/// Mutating phase, the patch applied, then the validating phase (when admitted).
fn admit(
    policies: &[PathBuf],
    uid: &str,
    step: &Value,
    object: &Value,
    old: Option<&Value>,
) -> Result<Admission, String> {
    let operation = step["operation"].as_str().unwrap_or("CREATE");
    let sub_resource = step["subResource"].as_str();
    let mut warnings = Vec::new();
    let (run, mutate) = review(
        policies,
        "mutate",
        &admission_review(uid, operation, sub_resource, object, old),
    );
    if mutate.is_null() {
        return Err(format!(
            "mutate: no answer (exit {})\nstdout:\n{}\nstderr:\n{}",
            run.code, run.stdout, run.stderr
        ));
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w.as_str().map(str::to_owned))
            .collect()
    };
    warnings.extend(strings(&mutate["warnings"]));
    if mutate["allowed"] != true {
        return Ok(Admission {
            allowed: false,
            message: mutate["status"]["message"].as_str().map(str::to_owned),
            warnings,
            audit_annotations: Value::Null,
            object: object.clone(),
        });
    }
    let mut patched = object.clone();
    let operations = decoded_patch(&mutate);
    if !operations.is_empty() {
        let patch: json_patch::Patch = serde_json::from_value(Value::from(operations))
            .map_err(|e| format!("mutate: not a JSON patch: {e}"))?;
        json_patch::patch(&mut patched, &patch).map_err(|e| format!("mutate: patch: {e}"))?;
    }
    let (run, validate) = review(
        policies,
        "validate",
        &admission_review(uid, operation, sub_resource, &patched, old),
    );
    if validate.is_null() {
        return Err(format!(
            "validate: no answer (exit {})\nstdout:\n{}\nstderr:\n{}",
            run.code, run.stdout, run.stderr
        ));
    }
    warnings.extend(strings(&validate["warnings"]));
    Ok(Admission {
        allowed: validate["allowed"] == true,
        message: validate["status"]["message"].as_str().map(str::to_owned),
        warnings,
        audit_annotations: validate
            .get("auditAnnotations")
            .cloned()
            .unwrap_or(Value::Null),
        object: patched,
    })
}

/// The differences between what `expected` (one admission of `expect.yaml`) says and
/// what was answered.
fn differences(expected: &Value, got: &Admission) -> Vec<String> {
    let mut out = Vec::new();
    if expected["allowed"] != json!(got.allowed) {
        out.push(format!(
            "allowed: want {}, got {} ({:?})",
            expected["allowed"], got.allowed, got.message
        ));
    }
    if let Some(message) = expected.get("message")
        && json!(got.message) != *message
    {
        out.push(format!("message: want {message}, got {:?}", got.message));
    }
    if let Some(warnings) = expected.get("warnings")
        && json!(got.warnings) != *warnings
    {
        out.push(format!("warnings: want {warnings}, got {:?}", got.warnings));
    }
    if let Some(images) = expected.get("images")
        && json!(container_images(&got.object)) != *images
    {
        out.push(format!(
            "images: want {images}, got {:?}",
            container_images(&got.object)
        ));
    }
    if let Some(annotations) = expected.get("auditAnnotations")
        && got.audit_annotations != *annotations
    {
        out.push(format!(
            "auditAnnotations: want {annotations}, got {}",
            got.audit_annotations
        ));
    }
    out
}

#[test]
fn kyverno_chainsaw_scenarios_as_admission_reviews() {
    let world = ChainsawWorld::new();
    let data = tempfile::tempdir().unwrap();
    copy_substituted(&chainsaw_dir(), data.path(), &world.vars);
    let readme = std::fs::read_to_string(chainsaw_dir().join("README.md")).unwrap();
    let mut dirs = Vec::new();
    scenarios(data.path(), data.path(), &mut dirs);

    let mut failures = Vec::new();
    let (mut admissions, mut refused) = (0, 0);
    for rel in &dirs {
        let name = rel.display().to_string();
        if !readme.contains(&format!("| `{name}` |")) {
            failures.push(format!("{name}: not in the README's table"));
        }
        let dir = data.path().join(rel);
        let Ok(text) = std::fs::read_to_string(dir.join("expect.yaml")) else {
            failures.push(format!("{name}: no expect.yaml"));
            continue;
        };
        let expect: Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{name}/expect.yaml: {e}"));
        let policies: Vec<PathBuf> = expect["policies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| dir.join(p.as_str().unwrap()))
            .collect();
        assert!(!policies.is_empty(), "{name}: expect.yaml names no policy");

        if let Some(error) = expect.get("loadError").and_then(Value::as_str) {
            // Any request will do: the policies are loaded before it is answered.
            let pod = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "default"},
                "spec": {"containers": [{"name": "c", "image": "example.com/app:v1"}]},
            });
            let (run, _) = review(
                &policies,
                "mutate",
                &admission_review("load", "CREATE", None, &pod, None),
            );
            if run.code != 2 || !run.stderr.contains(error) {
                failures.push(format!(
                    "{name}: want a load error containing {error:?}, got exit {}:\n{}",
                    run.code, run.stderr
                ));
            }
            if expect["departure"].as_str().is_none_or(str::is_empty)
                && !name.starts_with("validation-checks/")
            {
                failures.push(format!("{name}: a refused policy needs a `departure`"));
            }
            refused += 1;
            continue;
        }

        for (i, step) in expect["admissions"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let file = step["file"].as_str().unwrap();
            let old = step["oldFile"].as_str().map(|f| {
                objects(&dir.join(f))
                    .into_iter()
                    .map(in_namespace)
                    .collect::<Vec<_>>()
            });
            let documents = objects(&dir.join(file));
            assert!(!documents.is_empty(), "{name}/{file}: no object");
            for (j, object) in documents.into_iter().map(in_namespace).enumerate() {
                let what = format!(
                    "{name}: {file} ({} {})",
                    object["kind"].as_str().unwrap_or_default(),
                    object["metadata"]["name"].as_str().unwrap_or_default()
                );
                let old = old.as_ref().and_then(|o| o.get(j));
                let uid = format!("chainsaw-{i}-{j}");
                match admit(&policies, &uid, step, &object, old) {
                    Ok(got) => failures.extend(
                        differences(step, &got)
                            .into_iter()
                            .map(|d| format!("{what}: {d}")),
                    ),
                    Err(e) => failures.push(format!("{what}: {e}")),
                }
                admissions += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        admissions >= MIN_ADMISSIONS,
        "only {admissions} chainsaw admissions replayed"
    );
    eprintln!(
        "{} scenarios: {admissions} admissions as Kyverno answers them, {refused} policies refused at load",
        dirs.len()
    );
}
