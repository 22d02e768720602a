//! Kyverno semantics the policy crate models, as the engine applies them (issue 8
//! items 2, 5, 6; issue 9 items 1–3), against a real `docker-registry`.

use imagegate_engine::{AdmissionInput, Engine, Phase, PolicySet, RuleStatus};
use imagegate_policy::matching::MatchContext;
use imagegate_testkit::{CosignKey, Registry};
use serde_json::json;

use crate::{engine, policy_set};

fn indent(text: &str, spaces: usize) -> String {
    text.lines()
        .map(|l| format!("{}{l}", " ".repeat(spaces)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn pod_in(namespace: &str, image: &str) -> AdmissionInput {
    AdmissionInput::for_resource(
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": namespace},
            "spec": {"containers": [{"name": "c", "image": image}]},
        }),
        MatchContext::default(),
    )
}

#[tokio::test]
async fn failure_action_overrides_enforce_in_the_namespaces_they_name() {
    // Issue 8 item 2: the override was parsed and ignored, so Audit admitted an
    // unsigned Pod in `default`.
    let registry = Registry::start();
    let host = registry.host();
    registry.pusher().push_image("app/unsigned", "v1");
    let key = CosignKey::generate();
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: signed
spec:
  validationFailureAction: Audit
  validationFailureActionOverrides:
    - action: Enforce
      namespaces: [default]
  rules:
    - name: verify
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - imageReferences: ["{host}/*"]
          mutateDigest: false
          attestors:
            - entries:
                - keys:
                    publicKeys: |-
{key}
                    rekor:
                      ignoreTlog: true
"#,
        key = indent(&key.public_pem(), 22),
    );
    let policies = policy_set(&yaml);
    let image = format!("{host}/app/unsigned:v1");
    let engine = engine();
    let enforced = engine
        .evaluate_both(&policies, &pod_in("default", &image))
        .await;
    assert!(enforced.blocked(), "{enforced:#?}");
    let audited = engine
        .evaluate_both(&policies, &pod_in("other", &image))
        .await;
    assert!(!audited.blocked(), "{audited:#?}");
    let rule = audited.rule("signed", "verify").expect("rule ran");
    assert_eq!(rule.status, RuleStatus::Fail);
    assert!(!audited.warnings().is_empty(), "{audited:#?}");
}

/// A key-signed attestation of `{host}/app/attested:v1` (no Rekor entry) and the
/// key; returns (image, key).
fn attested_image(registry: &Registry) -> (String, CosignKey) {
    let host = registry.host();
    let pusher = registry.pusher();
    let digest = pusher.push_image("app/attested", "v1");
    let key = CosignKey::generate();
    let name = format!("{host}/app/attested");
    pusher.attest(
        "app/attested",
        &name,
        &digest,
        &key,
        "https://example.com/review",
        &json!({"approved": true}),
    );
    (format!("{host}/app/attested:v1"), key)
}

fn attestation_policy(host: &str, key: &CosignKey, rekor: &str, condition: &str) -> PolicySet {
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: attested
spec:
  rules:
    - name: verify
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - imageReferences: ["{host}/*"]
          failureAction: Enforce
          attestations:
            - type: https://example.com/review
              attestors:
                - entries:
                    - keys:
                        publicKeys: |-
{key}
{rekor}
              conditions:
                - all:
{condition}
"#,
        key = indent(&key.public_pem(), 26),
    );
    policy_set(&yaml)
}

#[tokio::test]
async fn verdicts_that_read_the_request_are_not_reused() {
    // Issue 8 item 5: `request | namespace` has no "request." in its text, so the
    // verdict for the first namespace was reused for the second.
    let registry = Registry::start();
    let (image, key) = attested_image(&registry);
    let condition = r#"                    - key: "{{ request | namespace }}"
                      operator: Equals
                      value: default"#;
    let rekor = "                        rekor:\n                          ignoreTlog: true";
    let policies = attestation_policy(&registry.host(), &key, rekor, condition);
    let engine = engine();
    let first = engine
        .evaluate_both(&policies, &pod_in("default", &image))
        .await;
    assert!(!first.blocked(), "{first:#?}");
    let second = engine
        .evaluate_both(&policies, &pod_in("other", &image))
        .await;
    assert!(second.blocked(), "a cached verdict admitted: {second:#?}");
}

#[tokio::test]
async fn key_signed_attestations_need_the_log_unless_ignore_tlog() {
    // Issue 8 item 6: the current `attestors[].entries[].keys` form requires a Rekor
    // entry for attestations as it does for signatures.
    let registry = Registry::start();
    let (image, key) = attested_image(&registry);
    let condition = r#"                    - key: "{{ approved }}"
                      operator: Equals
                      value: true"#;
    let host = registry.host();
    let logged = attestation_policy(&host, &key, "", condition);
    let response = engine()
        .evaluate_both(&logged, &pod_in("default", &image))
        .await;
    assert!(
        response.blocked(),
        "no Rekor entry, admitted: {response:#?}"
    );
    let denial = response.denial_message().unwrap_or_default();
    assert!(denial.contains("Rekor"), "{denial}");
    let rekor = "                        rekor:\n                          ignoreTlog: true";
    let ignored = attestation_policy(&host, &key, rekor, condition);
    let response = engine()
        .evaluate_both(&ignored, &pod_in("default", &image))
        .await;
    assert!(!response.blocked(), "{response:#?}");
}

#[tokio::test]
async fn mutate_digest_alone_pins_the_tag() {
    // Issue 9 item 2: no attestors, no attestations, `mutateDigest: true`.
    let registry = Registry::start();
    let host = registry.host();
    let digest = registry.pusher().push_image("app/plain", "v1");
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: pin
spec:
  rules:
    - name: pin
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - imageReferences: ["{host}/*"]
          failureAction: Enforce
          mutateDigest: true
"#
    );
    let policies = policy_set(&yaml);
    let image = format!("{host}/app/plain:v1");
    let response = engine()
        .evaluate_both(&policies, &pod_in("default", &image))
        .await;
    assert!(!response.blocked(), "{response:#?}");
    let rule = response.rule("pin", "pin").expect("rule ran");
    assert_eq!(rule.status, RuleStatus::Pass, "{rule:?}");
    assert!(rule.message.contains("mutated image digest"), "{rule:?}");
    assert_eq!(
        response.patched["spec"]["containers"][0]["image"],
        format!("{image}@{digest}"),
        "{:#?}",
        response.patches
    );
}

fn outage_policy(host: &str, key: &CosignKey, failure_policy: &str) -> PolicySet {
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: signed
spec:
  failurePolicy: {failure_policy}
  rules:
    - name: verify
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - imageReferences: ["{host}/*", "127.0.0.1:1/*"]
          failureAction: Enforce
          attestors:
            - entries:
                - keys:
                    publicKeys: |-
{key}
                    rekor:
                      ignoreTlog: true
"#,
        key = indent(&key.public_pem(), 22),
    );
    policy_set(&yaml)
}

#[tokio::test]
async fn failure_policy_ignore_admits_through_a_registry_outage_in_both_phases() {
    // Issue 9 item 3: the mutate phase admitted with a warning, then the validate
    // phase denied with "missing digest" (verifyDigest defaults to true).
    let registry = Registry::start();
    let host = registry.host();
    registry.pusher().push_image("app/unsigned", "v1");
    let key = CosignKey::generate();
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let gone = "127.0.0.1:1/app/gone:v1";
    let ignore = outage_policy(&host, &key, "Ignore");
    let response = engine()
        .evaluate_both(&ignore, &pod_in("default", gone))
        .await;
    assert!(!response.blocked(), "{response:#?}");
    assert!(!response.warnings().is_empty(), "{response:#?}");
    let fail = outage_policy(&host, &key, "Fail");
    let response = engine()
        .evaluate_both(&fail, &pod_in("default", gone))
        .await;
    assert!(response.blocked(), "{response:#?}");
    // A policy violation denies whatever the failurePolicy.
    let unsigned = format!("{host}/app/unsigned:v1");
    for policies in [&ignore, &fail] {
        let response = engine()
            .evaluate_both(policies, &pod_in("default", &unsigned))
            .await;
        assert!(response.blocked(), "{response:#?}");
    }
}

/// The policy of the original Kyverno documentation (2021): `image:` and `key:`
/// directly under `verifyImages`, no `attestors`.
fn seed_policy(host: &str, key: &CosignKey) -> PolicySet {
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: check-image
spec:
  validationFailureAction: enforce
  background: false
  rules:
    - name: check-image
      match:
        resources:
          kinds:
            - Pod
      verifyImages:
        - image: "{host}/kyverno/test-verify-image:*"
          key: |-
{key}
"#,
        key = indent(&key.public_pem(), 12),
    );
    policy_set(&yaml)
}

fn workload(kind: &str, image: &str) -> AdmissionInput {
    let pod_spec = json!({"containers": [{"name": "c", "image": image}]});
    let spec = match kind {
        "Deployment" => json!({
            "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": pod_spec},
        }),
        "CronJob" => json!({
            "schedule": "* * * * *",
            "jobTemplate": {"spec": {"template": {"spec": pod_spec}}},
        }),
        _ => pod_spec,
    };
    let api_version = match kind {
        "Deployment" => "apps/v1",
        "CronJob" => "batch/v1",
        _ => "v1",
    };
    AdmissionInput::for_resource(
        json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": "w", "namespace": "default"},
            "spec": spec,
        }),
        MatchContext::default(),
    )
}

#[tokio::test]
async fn the_2021_key_form_verifies_key_signatures_without_the_log() {
    // Issue 9 item 1: denied with "signature has no Rekor bundle" although cosign 1.x
    // verified key signatures without the transparency log.
    let registry = Registry::start();
    let host = registry.host();
    let pusher = registry.pusher();
    let repo = "kyverno/test-verify-image";
    let key = CosignKey::generate();
    let other = CosignKey::generate();
    let name = format!("{host}/{repo}");
    let none = std::collections::BTreeMap::new();
    let signed = pusher.push_image(repo, "signed");
    pusher.sign(repo, &name, &signed, &key, &none);
    pusher.push_image(repo, "unsigned");
    let foreign = pusher.push_image(repo, "foreign");
    pusher.sign(repo, &name, &foreign, &other, &none);
    let twice = pusher.push_image(repo, "twice");
    pusher.sign(repo, &name, &twice, &other, &none);
    pusher.sign(repo, &name, &twice, &key, &none);
    let index = pusher.push_index(repo, "multi", 2);
    pusher.sign(repo, &name, &index, &key, &none);
    let policies = seed_policy(&host, &key);
    let engine = engine();
    for (tag, digest) in [("signed", &signed), ("twice", &twice), ("multi", &index)] {
        let image = format!("{name}:{tag}");
        let response = engine
            .evaluate_both(&policies, &pod_in("default", &image))
            .await;
        assert!(!response.blocked(), "{tag}: {response:#?}");
        assert_eq!(
            response.patched["spec"]["containers"][0]["image"],
            format!("{image}@{digest}"),
            "{tag}: {:#?}",
            response.patches
        );
    }
    for tag in ["unsigned", "foreign"] {
        let image = format!("{name}:{tag}");
        let response = engine
            .evaluate_both(&policies, &pod_in("default", &image))
            .await;
        assert!(response.blocked(), "{tag}: {response:#?}");
    }
    // Autogen: the Pod rule pins Deployment and CronJob templates too.
    let image = format!("{name}:signed");
    let pinned = format!("{image}@{signed}");
    let response = engine
        .evaluate_both(&policies, &workload("Deployment", &image))
        .await;
    assert!(!response.blocked(), "{response:#?}");
    assert_eq!(
        response.patched["spec"]["template"]["spec"]["containers"][0]["image"],
        pinned
    );
    let response = engine
        .evaluate_both(&policies, &workload("CronJob", &image))
        .await;
    assert!(!response.blocked(), "{response:#?}");
    assert_eq!(
        response.patched["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"],
        pinned
    );
}

/// The validate phase alone on `resource`, as the validating webhook runs it.
async fn validate(
    engine: &Engine,
    policies: &PolicySet,
    resource: &serde_json::Value,
) -> imagegate_engine::EngineResponse {
    let input = AdmissionInput::for_resource(resource.clone(), MatchContext::default());
    engine.evaluate(policies, &input, Phase::Validate).await
}

#[tokio::test]
async fn ignore_verifies_in_the_validate_phase_what_an_outage_left_unpinned() {
    // Issue 9 item 3, the timing gap: the registry fails in the mutate phase (Ignore
    // admits unpinned) and is back for the validate phase, a separate review in the
    // webhook. The image is verified there on its merits, not denied for the digest
    // the outage kept from it.
    let mut registry = Registry::start();
    let host = registry.host();
    let pusher = registry.pusher();
    let key = CosignKey::generate();
    let signed_digest = pusher.push_image("app/signed", "v1");
    let none = std::collections::BTreeMap::new();
    pusher.sign(
        "app/signed",
        &format!("{host}/app/signed"),
        &signed_digest,
        &key,
        &none,
    );
    pusher.push_image("app/unsigned", "v1");
    drop(pusher);
    let signed = format!("{host}/app/signed:v1");
    let unsigned = format!("{host}/app/unsigned:v1");
    let engine = engine();
    let ignore = outage_policy(&host, &key, "Ignore");
    let fail = outage_policy(&host, &key, "Fail");

    registry.stop();
    let mut admitted = Vec::new();
    for image in [&signed, &unsigned] {
        let mutated = engine
            .evaluate(&ignore, &pod_in("default", image), Phase::Mutate)
            .await;
        assert!(!mutated.blocked(), "{image}: {mutated:#?}");
        assert!(!mutated.warnings().is_empty(), "{image}: {mutated:#?}");
        assert_eq!(mutated.patched["spec"]["containers"][0]["image"], **image);
        admitted.push(mutated.patched);
    }
    let fail_mutated = engine
        .evaluate(&fail, &pod_in("default", &signed), Phase::Mutate)
        .await;
    assert!(fail_mutated.blocked(), "{fail_mutated:#?}");
    registry.restart();

    // Signed: verified now, admitted with a warning that it runs unpinned.
    let response = validate(&engine, &ignore, &admitted[0]).await;
    assert!(!response.blocked(), "{response:#?}");
    let rule = response.rule("signed", "verify").expect("rule ran");
    assert_eq!(rule.status, RuleStatus::Warn, "{rule:?}");
    assert!(rule.message.contains("not pinned"), "{rule:?}");
    assert!(
        response.warnings().iter().any(|w| w.contains("not pinned")),
        "{response:#?}"
    );
    // Unsigned: denied on its merits (no signatures), not for the missing digest.
    let response = validate(&engine, &ignore, &admitted[1]).await;
    assert!(response.blocked(), "{response:#?}");
    let rule = response.rule("signed", "verify").expect("rule ran");
    assert_eq!(rule.status, RuleStatus::Fail, "{rule:?}");
    assert!(rule.message.contains("no signatures found"), "{rule:?}");
    // Under Fail the mutate phase denied: an unpinned image reaching the validate
    // phase bypassed it, and Kyverno's "missing digest" stands.
    let response = validate(&engine, &fail, &admitted[0]).await;
    assert!(response.blocked(), "{response:#?}");
    let denial = response.denial_message().unwrap_or_default();
    assert!(denial.contains("missing digest for"), "{denial}");
}
