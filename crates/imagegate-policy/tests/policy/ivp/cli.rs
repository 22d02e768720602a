//! Kyverno's CLI tests for ImageValidatingPolicies (`test/cli/test-image-validating-policy`)
//! replayed on the pure evaluation: each `kyverno-test.yaml` result is checked with
//! verification results standing in for Kyverno's registry, where the images tagged
//! `signed` carry valid signatures and a CycloneDX SBOM and those tagged `unsigned` carry
//! none. Needs `IMAGEGATE_KYVERNO_SRC` (skipped otherwise).

use std::path::Path;
use std::sync::Arc;

use imagegate_policy::ivp::{
    AdmissionInput, Check, CheckOutcome, CompiledIvp, ResultsMap, Verdict, enforce_required,
};
use imagegate_policy::load::load_documents;
use serde_json::{Value, json};

use super::kyverno::kyverno_src;

/// Results as Kyverno's test registry would give them for `plan`.
pub(crate) fn registry_results(policy: &CompiledIvp, input: &AdmissionInput) -> ResultsMap {
    let mut results = ResultsMap::default();
    let Ok(plan) = policy.plan(input) else {
        return results;
    };
    for planned in &plan.images {
        // Kyverno's test images: `…:signed`, `…:signed-keyless` (maybe pinned) are signed.
        let signed = planned.image.contains(":signed");
        for check in &planned.checks {
            let outcome = if signed {
                CheckOutcome::Verified
            } else {
                CheckOutcome::Failed {
                    reason: "no signatures found".into(),
                }
            };
            results.insert(&planned.image, check.clone(), outcome);
            if let (true, Check::Attestation { attestation, .. }) = (signed, check) {
                results.insert_payload(
                    &planned.image,
                    attestation,
                    json!({"bomFormat": "CycloneDX"}),
                );
            }
        }
    }
    results
}

fn verdict_word(v: &Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail { .. } => "fail",
        Verdict::Error { .. } => "error",
        Verdict::NotMatched | Verdict::Skipped { .. } | Verdict::Excepted { .. } => "skip",
    }
}

pub(crate) fn documents(dir: &Path, files: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for f in files.as_array().into_iter().flatten() {
        let Some(name) = f.as_str() else { continue };
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        for doc in text.split("\n---") {
            if let Ok(v) = serde_saphyr::from_str::<Value>(doc)
                && v.is_object()
            {
                out.push(v);
            }
        }
    }
    out
}

#[test]
fn kyverno_cli_results_hold_on_the_pure_evaluation() {
    let Some(root) = kyverno_src() else { return };
    let base = root.join("test/cli/test-image-validating-policy");
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(&base)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    for dir in dirs {
        let Ok(text) = std::fs::read_to_string(dir.join("kyverno-test.yaml")) else {
            continue;
        };
        let Ok(test) = serde_saphyr::from_str::<Value>(&text) else {
            failures.push(format!("{}: unreadable kyverno-test.yaml", dir.display()));
            continue;
        };
        // PolicyExceptions are not part of the policy crate yet.
        if test.get("exceptions").is_some() {
            continue;
        }
        let mut policies = Vec::new();
        for p in test["policies"].as_array().into_iter().flatten() {
            let path = dir.join(p.as_str().unwrap_or_default());
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            match load_documents(&text, &path.display().to_string()) {
                Ok(l) => policies.extend(l.image_validating),
                Err(e) => failures.push(e.to_string()),
            }
        }
        let resources = documents(&dir, &test["resources"]);
        for expected in test["results"].as_array().into_iter().flatten() {
            if expected["isImageValidatingPolicy"] != json!(true) {
                continue;
            }
            let policy_name = expected["policy"].as_str().unwrap_or_default();
            for name in expected["resources"].as_array().into_iter().flatten() {
                let Some(resource) = resources
                    .iter()
                    .find(|r| r.pointer("/metadata/name") == Some(name))
                else {
                    failures.push(format!("{}: no resource {name}", dir.display()));
                    continue;
                };
                let input = AdmissionInput::from_resource(resource.clone(), None);
                let mut outcomes: Vec<_> = policies
                    .iter()
                    .map(|p| p.evaluate(&input, Arc::new(registry_results(p, &input))))
                    .collect();
                enforce_required(&mut outcomes);
                let Some(outcome) = outcomes
                    .iter()
                    .find(|o| o.policy.ends_with(&format!("/{policy_name}")))
                else {
                    failures.push(format!("{}: no policy {policy_name}", dir.display()));
                    continue;
                };
                let want = expected["result"].as_str().unwrap_or_default();
                let got = verdict_word(&outcome.verdict);
                if want != got {
                    failures.push(format!(
                        "{}: {policy_name} on {name}: Kyverno {want}, imagegate {got} ({:?})",
                        dir.display(),
                        outcome.verdict
                    ));
                }
                checked += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 2, "only {checked} Kyverno CLI results checked");
    eprintln!("{checked} Kyverno CLI results hold");
}

fn load_dir_policy(dir: &Path, file: &str) -> CompiledIvp {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut loaded = load_documents(&text, &path.display().to_string())
        .unwrap_or_else(|e| panic!("{e}"))
        .image_validating;
    assert_eq!(loaded.len(), 1);
    loaded.remove(0)
}

fn run_one(policy: &CompiledIvp, input: &AdmissionInput) -> Verdict {
    let results = registry_results(policy, input);
    let mut outcomes = vec![policy.evaluate(input, Arc::new(results))];
    enforce_required(&mut outcomes);
    outcomes.remove(0).verdict
}

/// `empty-message`: without `message`, a failed validation reads as Kyverno's default.
#[test]
fn kyverno_empty_message_uses_the_default_message() {
    let Some(root) = kyverno_src() else { return };
    let dir = root.join("test/cli/test-image-validating-policy/empty-message");
    let policy = load_dir_policy(&dir, "policy.yaml");
    for (file, want) in [
        ("good-pod.yaml", None),
        (
            "bad-pod.yaml",
            Some("CEL expression validation failed at index 0"),
        ),
    ] {
        let resource = documents(&dir, &json!([file])).remove(0);
        let verdict = run_one(&policy, &AdmissionInput::from_resource(resource, None));
        match want {
            None => assert_eq!(verdict, Verdict::Pass, "{file}"),
            Some(message) => assert!(
                matches!(&verdict, Verdict::Fail { message: m, .. } if m == message),
                "{file}: {verdict:?}"
            ),
        }
    }
}

/// `check-json`: a JSON-mode policy over arbitrary payloads with a custom extractor.
#[test]
fn kyverno_check_json_payloads() {
    let Some(root) = kyverno_src() else { return };
    let dir = root.join("test/cli/test-image-validating-policy/check-json");
    let policy = load_dir_policy(&dir, "ivpol-json.yaml");
    for (file, pass) in [
        ("ivpol-payload-pass.json", true),
        ("ivpol-payload-fail.json", false),
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        let payload: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        let verdict = run_one(&policy, &AdmissionInput::json(payload));
        if pass {
            assert_eq!(verdict, Verdict::Pass, "{file}");
        } else {
            assert!(
                matches!(&verdict, Verdict::Fail { message, .. } if message == "failed to verify image with notary cert"),
                "{file}: {verdict:?}"
            );
        }
    }
}
