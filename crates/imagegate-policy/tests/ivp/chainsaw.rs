//! Kyverno's chainsaw scenarios for ImageValidatingPolicies
//! (`test/conformance/chainsaw/image-validating-policies`) replayed as admission on the
//! pure evaluation: for every `create`/`apply` of a resource, Kyverno's mutating webhook
//! (`mutateDigest`) runs first, then validation; a step that expects an `$error` must be
//! denied with our message inside Kyverno's error text, other steps admitted, and objects
//! asserted afterwards (`assert-*.yaml`) must show the same images (pinned or not). Images
//! tagged `signed…` verify, others do not (see [`super::cli::registry_results`]).
//! Scenarios that need what the policy crate does not model are listed in `SKIPPED`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use imagegate_policy::ivp::model::{FailurePolicy, ValidationAction};
use imagegate_policy::ivp::{AdmissionInput, CompiledIvp, Verdict, enforce_required};
use imagegate_policy::load::load_documents;
use serde_json::{Value, json};

use super::cli::{documents, registry_results};
use super::kyverno::kyverno_src;

/// Scenario directories not replayed here, and why.
const SKIPPED: &[(&str, &str)] = &[
    ("exceptions", "PolicyExceptions are not modelled yet"),
    ("context", "CEL with I/O is refused on purpose"),
    (
        "report",
        "reports are the engine's and the cluster integration's",
    ),
    (
        "security",
        "annotation forgery is the engine's webhook path",
    ),
    (
        "validation-checks",
        "API-server schema validation (covered by the load oracle)",
    ),
    ("subresources", "runs kubectl debug from a script"),
    (
        "standard",
        "needs the cache behaviour or a ConfigMap lookup of the engine",
    ),
    ("autogen/none", "the autogen status assertion covers it"),
];

/// Whether Kyverno would deny: a failed (or, under Fail, errored) Deny policy.
fn denied(outcome: &imagegate_policy::ivp::PolicyOutcome) -> bool {
    let deny = outcome.actions.contains(&ValidationAction::Deny);
    match &outcome.verdict {
        Verdict::Fail { .. } => deny,
        Verdict::Error { .. } => deny && outcome.failure_policy == FailurePolicy::Fail,
        _ => false,
    }
}

/// Admission of `resource` as Kyverno's two webhooks see it: the outcomes and the object
/// after the mutating webhook. `digests` are those Kyverno's registry has (by image).
fn admit(
    policies: &[CompiledIvp],
    resource: &Value,
    digests: &BTreeMap<String, String>,
) -> (Vec<imagegate_policy::ivp::PolicyOutcome>, Value) {
    // Mutating webhook: pin every matched tag to a digest.
    let mut object = resource.clone();
    let fallback = format!("sha256:{}", "a".repeat(64));
    let digest_of = |image: &str| Some(digests.get(image).cloned().unwrap_or(fallback.clone()));
    for p in policies {
        let input = AdmissionInput::from_resource(object.clone(), None);
        let (patches, _) = p.digest_patches(&input, &digest_of);
        for patch in patches {
            if let (Some(path), Some(value)) = (patch["path"].as_str(), patch.get("value"))
                && let Some(slot) = object.pointer_mut(path)
            {
                *slot = value.clone();
            }
        }
    }
    let input = AdmissionInput::from_resource(object.clone(), None);
    let mut outcomes: Vec<_> = policies
        .iter()
        .map(|p| p.evaluate(&input, Arc::new(registry_results(p, &input))))
        .collect();
    enforce_required(&mut outcomes);
    (outcomes, object)
}

fn container_images(resource: &Value) -> Vec<String> {
    resource
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c["image"].as_str().map(str::to_owned))
        .collect()
}

/// The `assert` files of `assert-*.yaml` form (expected objects after admission).
fn assertions(test: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for step in test
        .pointer("/spec/steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for op in step
            .get("try")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(file) = op.pointer("/assert/file").and_then(Value::as_str)
                && file.starts_with("assert-")
            {
                out.push(file.to_owned());
            }
        }
    }
    out
}

fn steps(test: &Value) -> Vec<(String, Option<String>, bool)> {
    let mut out = Vec::new();
    for step in test
        .pointer("/spec/steps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for op in step
            .get("try")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(action) = op.get("create").or_else(|| op.get("apply")) else {
                continue;
            };
            let Some(file) = action.get("file").and_then(Value::as_str) else {
                continue;
            };
            let mut message = None;
            let mut expect_error = false;
            for e in action
                .get("expect")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(check) = e.get("check").and_then(Value::as_object) {
                    if let Some(Value::String(m)) = check.get("($error)") {
                        message = Some(m.clone());
                        expect_error = true;
                    }
                    if check.get("($error != null)") == Some(&json!(true)) {
                        expect_error = true;
                    }
                }
            }
            out.push((file.to_owned(), message, expect_error));
        }
    }
    out
}

fn scenario_dirs(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    if dir.join("chainsaw-test.yaml").is_file() {
        out.push(dir.to_path_buf());
        return;
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    for e in entries.into_iter().filter(|e| e.is_dir()) {
        scenario_dirs(&e, out);
    }
}

#[test]
fn kyverno_chainsaw_admissions_hold_on_the_pure_evaluation() {
    let Some(root) = kyverno_src() else { return };
    let base = root.join("test/conformance/chainsaw/image-validating-policies");
    let mut dirs = Vec::new();
    scenario_dirs(&base, &mut dirs);
    let mut checked = 0;
    let mut failures = Vec::new();
    for dir in dirs {
        let rel = dir
            .strip_prefix(&base)
            .unwrap_or(&dir)
            .display()
            .to_string();
        if SKIPPED.iter().any(|(s, _)| rel.starts_with(s)) {
            continue;
        }
        let text = std::fs::read_to_string(dir.join("chainsaw-test.yaml")).unwrap_or_default();
        let Ok(test) = serde_saphyr::from_str::<Value>(&text) else {
            failures.push(format!("{rel}: unreadable chainsaw-test.yaml"));
            continue;
        };
        let policy_text = std::fs::read_to_string(dir.join("policy.yaml")).unwrap_or_default();
        let policies = match load_documents(&policy_text, &rel) {
            Ok(l) => l.image_validating,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        // Expected objects (by name) and the digests they show.
        let mut expected_objects = BTreeMap::new();
        let mut digests = BTreeMap::new();
        for file in assertions(&test) {
            for object in documents(&dir, &json!([file])) {
                for image in container_images(&object) {
                    if let Some((base, digest)) = image.split_once('@') {
                        digests.insert(base.to_owned(), digest.to_owned());
                    }
                }
                if let Some(name) = object.pointer("/metadata/name").and_then(Value::as_str) {
                    expected_objects.insert(name.to_owned(), object.clone());
                }
            }
        }
        for (file, message, expect_error) in steps(&test) {
            for resource in documents(&dir, &json!([file])) {
                let kind = resource["kind"].as_str().unwrap_or_default();
                if kind.contains("Policy") || kind.contains("Exception") {
                    continue;
                }
                let (outcomes, mutated) = admit(&policies, &resource, &digests);
                if let Some(expected) = resource
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .and_then(|n| expected_objects.get(n))
                    && container_images(expected) != container_images(&mutated)
                {
                    failures.push(format!(
                        "{rel}: {file}: images after mutation {:?}, Kyverno {:?}",
                        container_images(&mutated),
                        container_images(expected)
                    ));
                }
                let deniers: Vec<_> = outcomes.iter().filter(|o| denied(o)).collect();
                let what = format!("{rel}: {file} ({kind})");
                match (expect_error, deniers.first()) {
                    (false, None) => {}
                    (false, Some(o)) => failures.push(format!("{what}: denied: {:?}", o.verdict)),
                    (true, None) => failures.push(format!("{what}: admitted, Kyverno denies")),
                    (true, Some(o)) => {
                        if let (Some(m), Verdict::Fail { message: ours, .. }) =
                            (&message, &o.verdict)
                            && !m.contains(ours.as_str())
                        {
                            failures.push(format!("{what}: message `{ours}` not in `{m}`"));
                        }
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 8, "only {checked} chainsaw admissions replayed");
    eprintln!("{checked} Kyverno chainsaw admissions hold");
}
