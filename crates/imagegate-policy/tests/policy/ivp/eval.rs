//! The pure evaluation with in-memory verification results: Kyverno's semantics for
//! verification counts, messages, variables, audit annotations, digests, match
//! conditions, `required`, and the verification plan the engine runs first.

use std::sync::Arc;

use imagegate_policy::ivp::{
    AdmissionInput, Check, CheckOutcome, CompiledIvp, ResultsMap, Verdict, enforce_required,
};
use serde_json::{Value, json};

use super::support::{VERIFY_COSIGN, load, pod, policy_text};

const SIGNED: &str = "registry.test/app:signed";
const UNSIGNED: &str = "registry.test/app:unsigned";
const ELSEWHERE: &str = "docker.io/library/nginx:1.27";

fn cosign() -> Check {
    Check::Signature {
        attestor: "cosign".into(),
    }
}

/// Results where `SIGNED` verifies for every planned check, with an SBOM payload, and
/// every other planned image fails.
fn results_for(policy: &CompiledIvp, input: &AdmissionInput) -> ResultsMap {
    let mut r = ResultsMap::default();
    let Ok(plan) = policy.plan(input) else {
        return r;
    };
    for planned in &plan.images {
        for check in &planned.checks {
            let outcome = if planned.image == SIGNED {
                CheckOutcome::Verified
            } else {
                CheckOutcome::Failed {
                    reason: "no signatures found".into(),
                }
            };
            r.insert(&planned.image, check.clone(), outcome);
            if let Check::Attestation { attestation, .. } = check
                && planned.image == SIGNED
            {
                r.insert_payload(
                    &planned.image,
                    attestation,
                    json!({"bomFormat": "CycloneDX"}),
                );
            }
        }
    }
    r
}

fn evaluate(policy: &CompiledIvp, resource: Value) -> Verdict {
    let input = AdmissionInput::from_resource(resource, None);
    let results = results_for(policy, &input);
    policy.evaluate(&input, Arc::new(results)).verdict
}

fn fail_message(v: &Verdict) -> &str {
    match v {
        Verdict::Fail { message, .. } => message,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn signature_counts_decide_pass_and_fail() {
    let p = load(&policy_text(VERIFY_COSIGN, ""));
    assert_eq!(
        evaluate(&p, pod("good", &[SIGNED], json!({}))),
        Verdict::Pass
    );
    let bad = evaluate(&p, pod("bad", &[SIGNED, UNSIGNED], json!({})));
    assert_eq!(fail_message(&bad), "failed to verify image with cosign key");
}

#[test]
fn the_plan_holds_only_matched_images_and_the_checks_the_expressions_name() {
    let p = load(&policy_text(VERIFY_COSIGN, ""));
    let input = AdmissionInput::from_resource(pod("p", &[SIGNED, ELSEWHERE], json!({})), None);
    let plan = p.plan(&input).unwrap_or_else(|o| panic!("{o:?}"));
    assert_eq!(plan.images.len(), 1, "{plan:?}");
    assert_eq!(plan.images[0].image, SIGNED);
    // Only the cosign attestor is named: no notary check, no attestation.
    assert_eq!(plan.images[0].checks, vec![cosign()]);
    assert!(!plan.image_data);
    assert_eq!(plan.mutate_digest, vec![SIGNED.to_owned()]);
    // The image outside matchImageReferences does not count against the policy.
    let outcome = p.evaluate(&input, Arc::new(results_for(&p, &input)));
    assert_eq!(outcome.verdict, Verdict::Pass);
    assert_eq!(outcome.matched_images, vec![SIGNED.to_owned()]);
}

#[test]
fn attestor_lists_that_are_not_literal_plan_every_attestor() {
    let p = load(&policy_text(
        "  - expression: images.containers.all(i, verifyImageSignatures(i, [attestors.cosign, attestors['notary']]) > 0)\n  - expression: images.containers.all(i, verifyAttestationSignatures(i, attestations.sbom, variables.all) > 0)",
        "  variables:\n  - name: all\n    expression: '[attestors.cosign, attestors.notary]'",
    ));
    let input = AdmissionInput::from_resource(pod("p", &[SIGNED], json!({})), None);
    let plan = p.plan(&input).unwrap_or_else(|o| panic!("{o:?}"));
    let att = |a: &str| Check::Attestation {
        attestor: a.into(),
        attestation: "sbom".into(),
    };
    let notary = Check::Signature {
        attestor: "notary".into(),
    };
    assert_eq!(
        plan.images[0].checks,
        vec![cosign(), notary, att("cosign"), att("notary")]
    );
}

#[test]
fn a_verification_error_is_an_error_not_a_failure() {
    let p = load(&policy_text(VERIFY_COSIGN, ""));
    let input = AdmissionInput::from_resource(pod("p", &[SIGNED], json!({})), None);
    let mut r = ResultsMap::default();
    r.insert(
        SIGNED,
        cosign(),
        CheckOutcome::Error {
            reason: "registry registry.test unreachable".into(),
        },
    );
    match p.evaluate(&input, Arc::new(r)).verdict {
        Verdict::Error { message } => {
            assert!(
                message.contains("spec.validations[0].expression"),
                "{message}"
            );
            assert!(
                message.contains("registry registry.test unreachable"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_missing_result_is_an_error_never_a_pass() {
    let p = load(&policy_text(VERIFY_COSIGN, ""));
    let input = AdmissionInput::from_resource(pod("p", &[SIGNED], json!({})), None);
    match p.evaluate(&input, Arc::new(ResultsMap::default())).verdict {
        Verdict::Error { message } => assert!(
            message.contains("not in the verification plan"),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn attestations_and_payloads() {
    let p = load(&policy_text(
        r#"  - expression: images.containers.map(i, verifyAttestationSignatures(i, attestations.sbom, [attestors.notary])).all(n, n > 0)
    message: attestation not verified
  - expression: images.containers.all(i, extractPayload(i, attestations.sbom).bomFormat == 'SPDX')
    message: not an SPDX sbom"#,
        "",
    ));
    // Verified attestation, but the payload says CycloneDX: the second validation fails.
    let v = evaluate(&p, pod("p", &[SIGNED], json!({})));
    assert_eq!(fail_message(&v), "not an SPDX sbom");
    let v = evaluate(&p, pod("p", &[UNSIGNED], json!({})));
    assert_eq!(fail_message(&v), "attestation not verified");
}

#[test]
fn extract_payload_without_a_verified_attestation_is_an_error() {
    let p = load(&policy_text(
        "  - expression: images.containers.all(i, extractPayload(i, attestations.sbom).bomFormat == 'CycloneDX')",
        "",
    ));
    let input = AdmissionInput::from_resource(pod("p", &[SIGNED], json!({})), None);
    match p.evaluate(&input, Arc::new(ResultsMap::default())).verdict {
        Verdict::Error { message } => assert!(message.contains("was not verified"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn messages_message_expressions_and_the_default() {
    let p = load(&policy_text(
        r#"  - expression: "true"
  - expression: object.metadata.name != 'blocked'
  - expression: object.metadata.name != 'named'
    messageExpression: "'pod ' + object.metadata.name + ' is not allowed'"
    message: static text loses to messageExpression
    reason: Forbidden"#,
        "",
    ));
    let v = evaluate(&p, pod("blocked", &[SIGNED], json!({})));
    assert_eq!(
        fail_message(&v),
        "CEL expression validation failed at index 1"
    );
    let v = evaluate(&p, pod("named", &[SIGNED], json!({})));
    assert_eq!(
        v,
        Verdict::Fail {
            message: "pod named is not allowed".into(),
            index: Some(2),
            reason: Some("Forbidden".into()),
        }
    );
}

#[test]
fn a_non_bool_validation_is_an_error() {
    let p = load(&policy_text("  - expression: object.metadata.name", ""));
    match evaluate(&p, pod("p", &[SIGNED], json!({}))) {
        Verdict::Error { message } => {
            assert!(message.contains("expected a bool, got string"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn variables_and_audit_annotations() {
    let extra = r#"  variables:
  - name: verified
    expression: images.containers.map(i, verifyImageSignatures(i, [attestors.cosign]))
  - name: count
    expression: size(variables.verified.filter(n, n > 0))
  - name: broken
    expression: object.spec.nothing.here
  auditAnnotations:
  - key: verified-images
    valueExpression: string(variables.count)
  - key: omitted
    valueExpression: "null""#;
    let p = load(&policy_text(
        "  - expression: variables.count == size(images.containers)\n    message: not all verified",
        extra,
    ));
    let input = AdmissionInput::from_resource(pod("p", &[SIGNED], json!({})), None);
    let outcome = p.evaluate(&input, Arc::new(results_for(&p, &input)));
    assert_eq!(outcome.verdict, Verdict::Pass);
    assert_eq!(
        outcome
            .audit_annotations
            .get("verified-images")
            .map(String::as_str),
        Some("1")
    );
    assert!(!outcome.audit_annotations.contains_key("omitted"));
    // A failing variable only matters where it is read.
    let p = load(&policy_text(
        "  - expression: variables.broken == 'x'",
        extra,
    ));
    match evaluate(&p, pod("p", &[SIGNED], json!({}))) {
        Verdict::Error { message } => assert!(message.contains("variables.broken"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn verify_digest_requires_digests_by_default() {
    let text = policy_text(VERIFY_COSIGN, "")
        .replace("    verifyDigest: false\n", "    mutateDigest: true\n");
    let p = load(&text);
    let v = evaluate(&p, pod("p", &[SIGNED], json!({})));
    assert_eq!(
        fail_message(&v),
        "image registry.test/app:signed does not have a digest"
    );
}

#[test]
fn match_conditions_select_and_their_errors_follow_failure_policy() {
    let extra =
        "  matchConditions:\n  - name: prod\n    expression: object.metadata.labels.prod == 'true'";
    let p = load(&policy_text(VERIFY_COSIGN, extra));
    assert_eq!(
        evaluate(&p, pod("p", &[UNSIGNED], json!({"prod": "false"}))),
        Verdict::NotMatched
    );
    assert_ne!(
        evaluate(&p, pod("p", &[UNSIGNED], json!({"prod": "true"}))),
        Verdict::NotMatched
    );
    // No `prod` label: the condition errors. Fail (default) → error; Ignore → skipped.
    match evaluate(&p, pod("p", &[UNSIGNED], json!({}))) {
        Verdict::Error { message } => {
            assert!(message.contains("matchConditions 'prod'"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let p = load(&policy_text(
        VERIFY_COSIGN,
        &format!("{extra}\n  failurePolicy: Ignore"),
    ));
    let input = AdmissionInput::from_resource(pod("p", &[UNSIGNED], json!({})), None);
    let outcome = p.evaluate(&input, Arc::new(ResultsMap::default()));
    assert!(
        matches!(outcome.verdict, Verdict::Skipped { .. }),
        "{outcome:?}"
    );
    assert_eq!(outcome.warnings.len(), 1);
}

#[test]
fn required_needs_a_passing_verification_from_some_policy_of_the_request() {
    // A policy that checks something else, not signatures.
    let other = load(
        &policy_text("  - expression: \"true\"", "").replace("check-images", "no-verification"),
    );
    let verifier = load(&policy_text(VERIFY_COSIGN, ""));
    let run = |policies: &[&CompiledIvp], image: &str| {
        let input = AdmissionInput::from_resource(pod("p", &[image], json!({})), None);
        let mut outcomes: Vec<_> = policies
            .iter()
            .map(|p| p.evaluate(&input, Arc::new(results_for(p, &input))))
            .collect();
        enforce_required(&mut outcomes);
        outcomes
    };
    let alone = run(&[&other], SIGNED);
    assert_eq!(
        fail_message(&alone[0].verdict),
        "image registry.test/app:signed is not verified: no policy performed a signature or attestation check on it"
    );
    let together = run(&[&other, &verifier], SIGNED);
    assert_eq!(together[0].verdict, Verdict::Pass);
    assert_eq!(together[1].verdict, Verdict::Pass);
    let unsigned = run(&[&other, &verifier], UNSIGNED);
    assert_eq!(
        fail_message(&unsigned[0].verdict),
        "image registry.test/app:unsigned failed signature or attestation verification"
    );
    // required: false opts out.
    let relaxed = load(&policy_text("  - expression: \"true\"", "").replace(
        "    verifyDigest: false\n",
        "    verifyDigest: false\n    required: false\n",
    ));
    assert_eq!(run(&[&relaxed], SIGNED)[0].verdict, Verdict::Pass);
}

#[test]
fn attestor_key_expressions_are_evaluated_into_the_plan() {
    let text = policy_text(VERIFY_COSIGN, "  variables:\n  - name: pem\n    expression: \"'-----BEGIN PUBLIC KEY-----\\\\nFROM-CEL\\\\n-----END PUBLIC KEY-----'\"")
        .replace(
            "        data: \"-----BEGIN PUBLIC KEY-----\\nTEST\\n-----END PUBLIC KEY-----\"",
            "        expression: variables.pem",
        );
    let p = load(&text);
    let input = AdmissionInput::from_resource(pod("p", &[SIGNED], json!({})), None);
    let plan = p.plan(&input).unwrap_or_else(|o| panic!("{o:?}"));
    let key = plan.attestors[0]
        .cosign
        .as_ref()
        .and_then(|c| c.key.as_ref())
        .and_then(|k| k.data.clone());
    assert_eq!(
        key.as_deref(),
        Some("-----BEGIN PUBLIC KEY-----\nFROM-CEL\n-----END PUBLIC KEY-----")
    );
}

#[test]
fn match_image_references_by_cel_expression() {
    let text = policy_text(VERIFY_COSIGN, "").replace(
        "- glob: \"registry.test/*\"",
        "- expression: \"ref.startsWith('registry.test/') && image(ref).tag() == 'signed'\"",
    );
    let p = load(&text);
    let input = AdmissionInput::from_resource(pod("p", &[SIGNED, UNSIGNED], json!({})), None);
    let plan = p.plan(&input).unwrap_or_else(|o| panic!("{o:?}"));
    let images: Vec<&str> = plan.images.iter().map(|i| i.image.as_str()).collect();
    assert_eq!(images, [SIGNED]);
}

#[test]
fn image_helpers_read_references_as_go_containerregistry_does() {
    let p = load(&policy_text(
        r#"  - expression: >-
      image('nginx').registry() == 'index.docker.io'
      && image('nginx').repository() == 'library/nginx'
      && image('nginx').tag() == 'latest'
      && image('registry.test:5000/a/b:1.0').registry() == 'registry.test:5000'
      && image('registry.test/app:1@sha256:0123456789012345678901234567890123456789012345678901234567890123').tag() == ''
      && image('registry.test/app@sha256:0123456789012345678901234567890123456789012345678901234567890123').containsDigest()
      && image('registry.test/app:1').identifier() == '1'
      && !isImage('not an image') && isImage('registry.test/app:1')"#,
        "",
    ));
    assert_eq!(evaluate(&p, pod("p", &[SIGNED], json!({}))), Verdict::Pass);
}

#[test]
fn digest_patches_pin_matched_images() {
    let p = load(&policy_text(VERIFY_COSIGN, ""));
    let resource = pod("p", &[SIGNED, ELSEWHERE, UNSIGNED], json!({}));
    let input = AdmissionInput::from_resource(resource, None);
    let digest = format!("sha256:{}", "a".repeat(64));
    let (patches, errors) =
        p.digest_patches(&input, &|image| (image == SIGNED).then(|| digest.clone()));
    assert_eq!(
        patches,
        vec![json!({"op": "replace", "path": "/spec/containers/0/image",
                    "value": format!("{SIGNED}@{digest}")})]
    );
    assert_eq!(
        errors,
        vec![format!("failed to resolve digest for image {UNSIGNED}")]
    );
    // Kyverno's value is `ImageInfo.String()`: an image without a tag gets `:latest`.
    let untagged = "registry.test/app";
    let input = AdmissionInput::from_resource(pod("p", &[untagged], json!({})), None);
    let (patches, _) = p.digest_patches(&input, &|_| Some(digest.clone()));
    assert_eq!(
        patches,
        vec![json!({"op": "replace", "path": "/spec/containers/0/image",
                    "value": format!("{untagged}:latest@{digest}")})]
    );
}

#[test]
fn hostile_resources_error_instead_of_panicking() {
    let p = load(&policy_text(VERIFY_COSIGN, ""));
    for resource in [
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": "nope"}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "x"}]}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"image": 7}]}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}),
    ] {
        let input = AdmissionInput::from_resource(resource.clone(), None);
        assert!(p.plan(&input).is_err(), "{resource}");
        let v = p.evaluate(&input, Arc::new(ResultsMap::default())).verdict;
        assert!(matches!(v, Verdict::Error { .. }), "{resource}: {v:?}");
    }
}

#[test]
fn kubernetes_extensions_sets_regex_quantities() {
    let p = load(&policy_text(
        r#"  - expression: >-
      sets.contains([1, 2, 3], [1, 3]) && !sets.contains([1], [2])
      && sets.equivalent([1, 2], [2, 1]) && sets.intersects([1, 2], [2, 9])
      && 'abc 123 def 456'.find('[0-9]+') == '123'
      && 'abc 123 def 456'.findAll('[0-9]+') == ['123', '456']
      && 'abc 123 def 456'.findAll('[0-9]+', 1) == ['123']
      && quantity('1Gi').isGreaterThan(quantity('1000Mi'))
      && quantity('500m').isLessThan(quantity('1'))
      && quantity('2k').asInteger() == 2000 && !quantity('1.5').isInteger()
      && quantity('1').compareTo(quantity('1000m')) == 0
      && isQuantity('10Mi') && !isQuantity('ten')"#,
        "",
    ));
    assert_eq!(evaluate(&p, pod("p", &[SIGNED], json!({}))), Verdict::Pass);
    let bad = load(&policy_text(
        "  - expression: quantity('lots').isInteger()",
        "",
    ));
    assert!(matches!(
        evaluate(&bad, pod("p", &[SIGNED], json!({}))),
        Verdict::Error { .. }
    ));
}
