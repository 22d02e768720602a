//! ImageValidatingPolicy CEL: one fuzzed expression compiled into a fixed policy at one of
//! the places a policy author writes CEL (chosen by the first byte), then the policy
//! planned and evaluated against a Pod carrying fuzzed JSON (`spec.fuzz`, also the
//! attestation payload), with every planned check verified. Input: `[place]expression\nJSON`.
#![no_main]

use std::sync::Arc;

use imagegate_fuzz::{split_line, text};
use imagegate_policy::ivp::{AdmissionInput, CheckOutcome, ResultsMap, compile_document};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

/// The policy with `expression` at `place` (the other places hold plain expressions).
fn policy(place: u8, expression: &str) -> Value {
    let mut validation = json!({"expression": "true", "message": "fixed"});
    let mut spec = json!({
        "validationConfigurations": {"verifyDigest": false, "mutateDigest": false},
        "matchConstraints": {"resourceRules": [{
            "apiGroups": [""], "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"], "resources": ["pods"],
        }]},
        "matchImageReferences": [{"glob": "registry.test/*"}],
        "attestors": [{"name": "cosign", "cosign": {"key": {"data": imagegate_fuzz::FIXED_KEY_PEM}}}],
        "attestations": [{"name": "sbom", "referrer": {"type": "sbom/cyclone-dx"}}],
    });
    match place % 8 {
        0 => validation["expression"] = json!(expression),
        1 => {
            spec["variables"] = json!([{"name": "v", "expression": expression}]);
            validation["expression"] = json!("variables.v == variables.v");
        }
        2 => spec["matchConditions"] = json!([{"name": "fuzz", "expression": expression}]),
        3 => validation["messageExpression"] = json!(expression),
        4 => {
            spec["auditAnnotations"] = json!([{"key": "fuzz", "valueExpression": expression}]);
        }
        5 => spec["matchImageReferences"] = json!([{"expression": expression}]),
        6 => spec["imageExtractors"] = json!([{"name": "fuzz", "expression": expression}]),
        _ => spec["attestors"][0]["cosign"]["key"] = json!({"expression": expression}),
    }
    spec["validations"] = json!([validation]);
    json!({
        "apiVersion": "policies.kyverno.io/v1beta1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "fuzz"},
        "spec": spec,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&place, rest)) = data.split_first() else {
        return;
    };
    let (expression, json) = split_line(rest);
    let Ok(ivp) = compile_document(&policy(place, &text(expression))) else {
        return;
    };
    let payload: Value = serde_json::from_slice(json).unwrap_or(Value::Null);
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "labels": {"app": "fuzz"}},
        "spec": {
            "containers": [
                {"name": "a", "image": "registry.test/app:v1"},
                {"name": "b", "image": "other.test/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
            ],
            "fuzz": payload,
        },
    });
    let input = AdmissionInput::from_resource(pod, None);
    let Ok(plan) = ivp.plan(&input) else {
        return;
    };
    let mut results = ResultsMap::default();
    for image in &plan.images {
        for check in &image.checks {
            results.insert(&image.image, check.clone(), CheckOutcome::Verified);
        }
        results.insert_payload(&image.image, "sbom", payload.clone());
    }
    let _ = ivp.evaluate(&input, Arc::new(results));
});
