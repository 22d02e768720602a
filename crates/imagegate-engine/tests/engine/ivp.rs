//! ImageValidatingPolicies through the engine against a real `docker-registry`, images
//! signed and attested with a test key. The policies are those of Kyverno's CLI folders
//! `test/cli/test-image-validating-policy/*` (cosign key, attestation predicate check)
//! with the key and registry replaced.

use std::collections::BTreeMap;

use imagegate_engine::{Engine, EngineResponse, Phase, PolicySet, RuleStatus};
use imagegate_testkit::{CosignKey, Registry};
use serde_json::json;

use crate::{engine, pod};

const PREDICATE_TYPE: &str = "https://cosign.sigstore.dev/attestation/v1";

struct Setup {
    failure_policy: &'static str,
    actions: &'static str,
    glob: String,
    validation: &'static str,
}

fn policy(key: &CosignKey, setup: &Setup) -> PolicySet {
    load(&policy_yaml(key, setup))
}

fn load(yaml: &str) -> PolicySet {
    let policies = crate::policy_set(yaml);
    assert!(!policies.image_validating().is_empty(), "{yaml}");
    policies
}

fn policy_yaml(key: &CosignKey, setup: &Setup) -> String {
    let key_pem = crate::indent(&key.public_pem(), 12);
    format!(
        r#"apiVersion: policies.kyverno.io/v1beta1
kind: ImageValidatingPolicy
metadata:
  name: ivpol-sample
spec:
  webhookConfiguration:
    timeoutSeconds: 15
  failurePolicy: {fp}
  validationActions: [{actions}]
  evaluation:
    background:
      enabled: false
  matchConstraints:
    resourceRules:
      - apiGroups: [""]
        apiVersions: ["v1"]
        operations: ["CREATE"]
        resources: ["pods"]
  matchImageReferences:
    - glob: "{glob}"
  attestors:
    - name: cosign
      cosign:
        key:
          data: |
{key_pem}
        ctlog:
          insecureIgnoreTlog: true
          insecureIgnoreSCT: true
  attestations:
    - name: cosign-attest
      intoto:
        type: {PREDICATE_TYPE}
  validations:
{validation}
"#,
        fp = setup.failure_policy,
        actions = setup.actions,
        glob = setup.glob,
        validation = setup.validation,
    )
}

const SIGNATURES: &str = r#"    - expression: >-
        images.containers.map(image, verifyImageSignatures(image, [attestors.cosign])).all(e, e > 0)
      message: failed the image Signature verification"#;

const ATTESTATION: &str = r#"    - expression: >-
        images.containers.map(image, verifyAttestationSignatures(image, attestations["cosign-attest"], [attestors.cosign])).all(e, e > 0)
      message: failed to verify attestation with subject 'a'
    - expression: >-
        images.containers.map(image, extractPayload(image, attestations["cosign-attest"]).predicate.data).all(d, d == "approved")
      message: the attestation predicate is not approved"#;

fn setup(glob: String, validation: &'static str) -> Setup {
    Setup {
        failure_policy: "Fail",
        actions: "Deny",
        glob,
        validation,
    }
}

/// Pushes `app/signed:v1` (signed with `key`) and `app/unsigned:v1`; returns their
/// tag references and the signed image's digest.
fn images(
    registry: &Registry,
    key: &CosignKey,
    predicate: Option<&str>,
) -> (String, String, String) {
    let host = registry.host();
    let pusher = registry.pusher();
    let digest = pusher.push_image("app/signed", "v1");
    let signed = format!("{host}/app/signed:v1");
    pusher.sign(
        "app/signed",
        &format!("{host}/app/signed"),
        &digest,
        key,
        &BTreeMap::new(),
    );
    if let Some(data) = predicate {
        pusher.attest(
            "app/signed",
            &format!("{host}/app/signed"),
            &digest,
            key,
            PREDICATE_TYPE,
            &json!({"data": data}),
        );
    }
    pusher.push_image("app/unsigned", "v1");
    (signed, format!("{host}/app/unsigned:v1"), digest)
}

fn rule(response: &EngineResponse) -> &imagegate_engine::RuleResponse {
    response
        .rule("ivpol-sample", "ivpol-sample")
        .unwrap_or_else(|| panic!("the ImageValidatingPolicy was not evaluated: {response:#?}"))
}

#[tokio::test]
async fn signed_image_is_admitted_and_pinned() {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let (signed, _, digest) = images(&registry, &key, None);
    let policies = policy(&key, &setup(format!("{}/*", registry.host()), SIGNATURES));
    let engine = engine();
    let mutate = engine
        .evaluate(&policies, &pod(&signed), Phase::Mutate)
        .await;
    assert_eq!(rule(&mutate).status, RuleStatus::Pass, "{mutate:#?}");
    assert!(!mutate.blocked());
    let pinned = format!("{signed}@{digest}");
    assert_eq!(
        mutate.patched["spec"]["containers"][0]["image"], pinned,
        "{:#?}",
        mutate.patches
    );
    // Both phases as the API server runs them: the validating phase sees the pinned
    // image (verifyDigest holds) and admits.
    let both = engine.evaluate_both(&policies, &pod(&signed)).await;
    assert!(!both.blocked(), "{both:#?}");
    assert_eq!(rule(&both).status, RuleStatus::Pass);
}

#[tokio::test]
async fn unsigned_image_is_denied_with_the_policy_message() {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let (_, unsigned, _) = images(&registry, &key, None);
    let policies = policy(&key, &setup(format!("{}/*", registry.host()), SIGNATURES));
    let response = engine().evaluate_both(&policies, &pod(&unsigned)).await;
    assert!(response.blocked(), "{response:#?}");
    assert_eq!(rule(&response).status, RuleStatus::Fail);
    let denial = response.denial_message().unwrap_or_default();
    assert!(
        denial.contains("failed the image Signature verification"),
        "{denial}"
    );
}

#[tokio::test]
async fn an_image_signed_by_another_key_is_denied() {
    let registry = Registry::start();
    let signer = CosignKey::generate();
    let (signed, _, _) = images(&registry, &signer, None);
    let policies = policy(
        &CosignKey::generate(),
        &setup(format!("{}/*", registry.host()), SIGNATURES),
    );
    let response = engine().evaluate_both(&policies, &pod(&signed)).await;
    assert!(response.blocked(), "{response:#?}");
}

#[tokio::test]
async fn attestation_predicate_is_checked() {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let (signed, _, _) = images(&registry, &key, Some("approved"));
    let policies = policy(&key, &setup(format!("{}/*", registry.host()), ATTESTATION));
    let response = engine().evaluate_both(&policies, &pod(&signed)).await;
    assert!(!response.blocked(), "{response:#?}");
    assert_eq!(rule(&response).status, RuleStatus::Pass);

    let registry = Registry::start();
    let (signed, _, _) = images(&registry, &key, Some("rejected"));
    let policies = policy(&key, &setup(format!("{}/*", registry.host()), ATTESTATION));
    let response = engine().evaluate_both(&policies, &pod(&signed)).await;
    assert!(response.blocked(), "{response:#?}");
    let denial = response.denial_message().unwrap_or_default();
    assert!(
        denial.contains("the attestation predicate is not approved"),
        "{denial}"
    );
}

#[tokio::test]
async fn audit_and_warn_admit() {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let (_, unsigned, _) = images(&registry, &key, None);
    for actions in ["Audit", "Warn"] {
        let mut s = setup(format!("{}/*", registry.host()), SIGNATURES);
        s.actions = actions;
        let response = engine()
            .evaluate_both(&policy(&key, &s), &pod(&unsigned))
            .await;
        assert!(!response.blocked(), "{actions}: {response:#?}");
        // Only Warn warns (Kyverno); Audit goes to the audit annotations.
        let warnings = response.warnings();
        assert_eq!(
            warnings,
            if actions == "Warn" {
                vec![
                    "Policy ivpol-sample failed: failed the image Signature verification"
                        .to_owned(),
                ]
            } else {
                Vec::new()
            },
            "{actions}"
        );
    }
}

#[tokio::test]
async fn registry_down_follows_failure_policy() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let image = "127.0.0.1:1/app/gone:v1";
    let key = CosignKey::generate();
    let mut s = setup("127.0.0.1:1/*".into(), SIGNATURES);
    s.failure_policy = "Ignore";
    let response = engine().evaluate_both(&policy(&key, &s), &pod(image)).await;
    assert!(!response.blocked(), "{response:#?}");
    assert_eq!(rule(&response).status, RuleStatus::Error);
    // Kyverno's texts for a digest that cannot be pinned, naming the registry.
    let prefix = "Policy ivpol-sample error: failed to update digest: failed to resolve digest for image 127.0.0.1:1/app/gone:v1";
    let warnings = response.warnings().join("\n");
    assert!(warnings.starts_with(prefix), "{warnings}");

    s.failure_policy = "Fail";
    let response = engine().evaluate_both(&policy(&key, &s), &pod(image)).await;
    assert!(response.blocked(), "{response:#?}");
    let denial = response.denial_message().unwrap_or_default();
    assert!(denial.starts_with(prefix), "{denial}");
}

#[tokio::test]
async fn images_outside_the_references_are_not_checked() {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let (_, unsigned, _) = images(&registry, &key, None);
    let policies = policy(&key, &setup("ghcr.io/kyverno/*".into(), SIGNATURES));
    let response = engine().evaluate_both(&policies, &pod(&unsigned)).await;
    assert!(!response.blocked(), "{response:#?}");
    assert!(response.patches.is_empty(), "{:#?}", response.patches);
}

#[tokio::test]
async fn one_attestor_is_verified_once_across_policies() {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let (signed, _, digest) = images(&registry, &key, None);
    let one = policy_yaml(&key, &setup(format!("{}/*", registry.host()), SIGNATURES));
    let two = one.replace("name: ivpol-sample", "name: ivpol-second");
    let policies = load(&format!("{one}\n---\n{two}"));
    let sig_tag = format!("/v2/app/signed/manifests/{}.sig", digest.replace(':', "-"));
    // The pusher read the tag too (before appending the signature): count from here.
    let fetches = || {
        registry
            .requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path == sig_tag)
            .count()
    };
    let before = fetches();
    let response = engine().evaluate_both(&policies, &pod(&signed)).await;
    assert!(!response.blocked(), "{response:#?}");
    assert_eq!(response.policies.len(), 2, "{response:#?}");
    assert_eq!(fetches() - before, 1, "{}", registry.log());
}

/// The validation of Kyverno's chainsaw scenarios (`validation-actions/*`,
/// `match-conditions`), its message unchanged; the attestor is a cosign key here.
const CHAINSAW_SIGNATURES: &str = r#"    - expression: >-
        images.containers.map(image, verifyImageSignatures(image, [attestors.cosign])).all(e, e > 0)
      message: failed to verify image with notary cert"#;

/// Kyverno's text after `denied the request: ` in the chainsaw assertions
/// (`match-conditions/chainsaw-test.yaml`).
const CHAINSAW_DENIAL: &str = "Policy ivpol-sample failed: failed to verify image with notary cert";

#[tokio::test]
async fn denial_and_warnings_are_kyvernos_texts() {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let (_, unsigned, _) = images(&registry, &key, None);
    let glob = format!("{}/*", registry.host());
    let run = |actions: &'static str| {
        let mut s = setup(glob.clone(), CHAINSAW_SIGNATURES);
        s.actions = actions;
        let policies = policy(&key, &s);
        let pod = pod(&unsigned);
        async move { engine().evaluate_both(&policies, &pod).await }
    };

    let denied = run("Deny").await;
    assert!(denied.blocked(), "{denied:#?}");
    assert_eq!(denied.denial_message().as_deref(), Some(CHAINSAW_DENIAL));
    assert!(denied.warnings().is_empty(), "{:?}", denied.warnings());

    // Warn: admitted, the same text as a warning (Kyverno's mutationResponse).
    let warned = run("Warn").await;
    assert!(!warned.blocked(), "{warned:#?}");
    assert_eq!(warned.warnings(), vec![CHAINSAW_DENIAL.to_owned()]);
    assert!(warned.audit_annotations().is_empty());

    // Audit: admitted without a warning (as Kyverno); the failure goes to the audit
    // annotations.
    let audited = run("Audit").await;
    assert!(!audited.blocked(), "{audited:#?}");
    assert!(audited.warnings().is_empty(), "{:?}", audited.warnings());
    let annotations = audited.audit_annotations();
    let failures: serde_json::Value = serde_json::from_str(
        annotations
            .get("validation_failure")
            .unwrap_or_else(|| panic!("{annotations:?}")),
    )
    .unwrap();
    assert_eq!(
        failures,
        json!([{
            "message": "failed to verify image with notary cert",
            "policy": "ivpol-sample",
            "expressionIndex": 0,
            "validationActions": ["Audit"],
        }])
    );
}

#[tokio::test]
async fn admission_review_answers_with_the_texts_and_audit_annotations() {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let (signed, unsigned, digest) = images(&registry, &key, None);
    let mut s = setup(format!("{}/*", registry.host()), CHAINSAW_SIGNATURES);
    s.actions = "Deny, Audit";
    let yaml = format!(
        "{}\n  auditAnnotations:\n    - key: images\n      valueExpression: string(size(images.containers))\n",
        policy_yaml(&key, &s)
    );
    let policies = load(&yaml);
    let engine = engine();
    let answer = |image: &str, phase: Phase| {
        let review = review_of(json!({
            "uid": "u1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "default",
            "name": "test-pod",
            "userInfo": {"username": "alice"},
            "object": pod(image).resource,
        }));
        let (engine, policies) = (&engine, &policies);
        async move {
            imagegate_engine::admission::review(engine, policies, &review, phase)
                .await
                .review
                .response
                .unwrap()
        }
    };
    let denied = answer(&unsigned, Phase::Mutate).await;
    assert!(!denied.allowed);
    assert_eq!(denied.status.unwrap()["message"], CHAINSAW_DENIAL);
    assert!(
        denied.audit_annotations.is_empty(),
        "a denial is not audited"
    );

    // The validating webhook sees the image the mutating one pinned.
    let admitted = answer(&format!("{signed}@{digest}"), Phase::Validate).await;
    assert!(admitted.allowed, "{admitted:?}");
    assert_eq!(
        admitted.audit_annotations,
        BTreeMap::from([("ivpol-sample.images".to_owned(), "1".to_owned())])
    );
    // Once per request: the mutating answer carries none.
    let mutated = answer(&signed, Phase::Mutate).await;
    assert!(mutated.audit_annotations.is_empty(), "{mutated:?}");
}

fn review_of(request: serde_json::Value) -> imagegate_engine::admission::AdmissionReview {
    serde_json::from_value(json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request,
    }))
    .unwrap()
}

#[tokio::test]
async fn match_conditions_read_the_whole_admission_request() {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let (_, unsigned, _) = images(&registry, &key, None);
    let s = setup(format!("{}/*", registry.host()), CHAINSAW_SIGNATURES);
    let conditions = r#"  matchConditions:
    - name: request
      expression: >-
        request.resource.group == "" && request.resource.version == "v1" &&
        request.resource.resource == "pods" && request.kind.kind == "Pod" &&
        request.requestResource.resource == "pods" && request.requestKind.kind == "Pod" &&
        !has(request.subResource) && request.operation == "CREATE" &&
        request.namespace == "default" && request.name == "test-pod" &&
        request.userInfo.username == "alice" && "devs" in request.userInfo.groups &&
        request.dryRun == false && request.options.kind == "CreateOptions" &&
        request.uid == "u1" && request.object.metadata.name == "test-pod"
"#;
    let yaml = policy_yaml(&key, &s).replace(
        "  matchImageReferences:",
        &format!("{conditions}  matchImageReferences:"),
    );
    let policies = load(&yaml);
    let engine = engine();
    let request = json!({
        "uid": "u1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "operation": "CREATE",
        "namespace": "default",
        "name": "test-pod",
        "userInfo": {"username": "alice", "groups": ["devs"]},
        "dryRun": false,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        "object": pod(&unsigned).resource,
    });
    let allowed = |request: serde_json::Value| {
        let review = review_of(request);
        let (engine, policies) = (&engine, &policies);
        async move {
            imagegate_engine::admission::review(engine, policies, &review, Phase::Validate)
                .await
                .review
                .response
                .unwrap()
                .allowed
        }
    };
    // Every field as the condition wants it: the policy applies and denies.
    assert!(
        !allowed(request.clone()).await,
        "the matchConditions did not hold"
    );
    // Any one field otherwise: the policy does not apply.
    for (pointer, value) in [
        ("/resource/resource", json!("deployments")),
        ("/requestResource/resource", json!("replicasets")),
        ("/requestKind/kind", json!("ReplicaSet")),
        ("/subResource", json!("ephemeralcontainers")),
        ("/userInfo/username", json!("bob")),
        ("/userInfo/groups", json!(["ops"])),
        ("/dryRun", json!(true)),
        ("/options/kind", json!("UpdateOptions")),
        ("/uid", json!("u2")),
        ("/name", json!("other")),
    ] {
        let mut changed = request.clone();
        let (parent, field) = pointer.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut changed
        } else {
            changed.pointer_mut(parent).unwrap()
        };
        target[field] = value;
        assert!(
            allowed(changed).await,
            "{pointer}: the policy still applied"
        );
    }
}

#[tokio::test]
async fn a_cluster_policy_and_an_ivp_with_the_same_key_verify_once() {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let (signed, _, digest) = images(&registry, &key, None);
    let host = registry.host();
    let ivp = policy_yaml(&key, &setup(format!("{host}/*"), SIGNATURES));
    let cluster_policy = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: check-image
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
          attestors:
            - entries:
                - keys:
                    publicKeys: |-
{key}
                    rekor:
                      ignoreTlog: true
                    ctlog:
                      ignoreSCT: true
"#,
        key = crate::indent(&key.public_pem(), 22),
    );
    let cluster_only = crate::policy_set(&cluster_policy);
    let ivp_only = load(&ivp);
    let both = load(&format!("{cluster_policy}\n---\n{ivp}"));
    assert_eq!(both.len(), 2);

    let sig_tag = format!("/v2/app/signed/manifests/{}.sig", digest.replace(':', "-"));
    let fetches = || {
        registry
            .requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path == sig_tag)
            .count()
    };
    let verdict_lookups = |engine: &Engine, hit: bool| {
        let labels = imagegate_engine::CacheLabels { cache: "verdict" };
        let family = if hit {
            &engine.metrics().cache_hits
        } else {
            &engine.metrics().cache_misses
        };
        family.get_or_create(&labels).get()
    };

    // One request with both kinds: one verification, the other kind shares it.
    let engine = engine();
    let before = fetches();
    let response = engine.evaluate(&both, &pod(&signed), Phase::Mutate).await;
    assert!(!response.blocked(), "{response:#?}");
    assert_eq!(response.policies.len(), 2, "{response:#?}");
    assert_eq!(fetches() - before, 1, "{}", registry.log());
    assert_eq!(verdict_lookups(&engine, false), 1, "verifications");
    assert_eq!(verdict_lookups(&engine, true), 1, "shared verdicts");
    assert_eq!(engine.cached_verdicts().await, 1);

    // Across requests, either way round: the verdict of one kind serves the other.
    for (first, second) in [(&cluster_only, &ivp_only), (&ivp_only, &cluster_only)] {
        let engine = self::engine();
        let before = fetches();
        let one = engine.evaluate(first, &pod(&signed), Phase::Mutate).await;
        let two = engine.evaluate(second, &pod(&signed), Phase::Mutate).await;
        assert!(!one.blocked() && !two.blocked(), "{one:#?} {two:#?}");
        assert_eq!(fetches() - before, 1, "{}", registry.log());
        assert_eq!(verdict_lookups(&engine, false), 1, "verifications");
        assert_eq!(verdict_lookups(&engine, true), 1, "shared verdicts");
    }
}

#[tokio::test]
async fn credentials_allow_insecure_registry_allows_plain_http() {
    // Issue 9 item 4, for ImageValidatingPolicies: `spec.credentials`.
    let Some(ip) = imagegate_testkit::stub::non_loopback_ip() else {
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    let served = crate::insecure::plain_http_image(ip).await;
    let strict = policy_yaml(
        &served.key,
        &setup(format!("{}/*", served.stub.host()), SIGNATURES),
    );
    let allowed = strict.replace(
        "  matchImageReferences:",
        "  credentials:\n    allowInsecureRegistry: true\n  matchImageReferences:",
    );
    assert_ne!(allowed, strict, "policy layout changed");
    let engine = engine();
    let response = engine
        .evaluate_both(&load(&allowed), &pod(&served.image))
        .await;
    assert!(!response.blocked(), "{response:#?}");
    assert_eq!(rule(&response).status, RuleStatus::Pass, "{response:#?}");
    assert_eq!(
        response.patched["spec"]["containers"][0]["image"],
        format!("{}@{}", served.image, served.digest)
    );
    // Without it (same engine, caches filled over plain HTTP): HTTPS only, refused.
    let served_before = served.stub.requests().len();
    let response = engine
        .evaluate_both(&load(&strict), &pod(&served.image))
        .await;
    assert!(response.blocked(), "{response:#?}");
    assert_eq!(rule(&response).status, RuleStatus::Error, "{response:#?}");
    assert!(
        rule(&response).message.contains("does not speak HTTPS"),
        "{response:#?}"
    );
    assert_eq!(served.stub.requests().len(), served_before);
}

/// A `policies.kyverno.io` PolicyException naming `ivpol-sample` for Pods named `name`.
fn cel_exception(name: &str, expires_at: &str) -> imagegate_policy::ivp::CompiledCelException {
    imagegate_policy::ivp::compile_exception_document(&json!({
        "apiVersion": "policies.kyverno.io/v1beta1", "kind": "PolicyException",
        "metadata": {"name": "allow-test-pod", "namespace": "exceptions"},
        "spec": {
            "policyRefs": [{"name": "ivpol-sample", "kind": "ImageValidatingPolicy"}],
            "matchConditions": [{"name": "the-pod", "expression": format!("object.metadata.name == '{name}'")}],
            "expiresAt": expires_at,
        },
    }))
    .unwrap_or_else(|e| panic!("{e:?}"))
}

#[tokio::test]
async fn a_cel_policy_exception_skips_the_policy_it_names_as_kyverno_does() {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let (_, unsigned, _) = images(&registry, &key, None);
    let yaml = policy_yaml(&key, &setup(format!("{}/*", registry.host()), SIGNATURES));
    let with = |exception| {
        let loaded = imagegate_policy::load::load_documents(&yaml, "test").unwrap();
        PolicySet::new(Vec::new())
            .with_cel_exceptions([std::sync::Arc::new(exception)])
            .with_image_validating(loaded.image_validating)
    };
    let engine = engine();

    // Matching: skipped with Kyverno's message, nothing verified, nothing pinned.
    let excepted = with(cel_exception("test-pod", "2999-01-01T00:00:00Z"));
    let mutate = engine
        .evaluate(&excepted, &pod(&unsigned), Phase::Mutate)
        .await;
    assert!(mutate.patches.is_empty(), "{:#?}", mutate.patches);
    let both = engine.evaluate_both(&excepted, &pod(&unsigned)).await;
    assert!(!both.blocked(), "{both:#?}");
    let skipped = both
        .rule("ivpol-sample", "exception")
        .unwrap_or_else(|| panic!("{both:#?}"));
    assert_eq!(skipped.status, RuleStatus::Skip);
    assert_eq!(
        skipped.message,
        "rule is skipped due to policy exception: exceptions/allow-test-pod"
    );
    assert_eq!(skipped.exceptions, ["exceptions/allow-test-pod"]);

    // Not matching, or expired: enforced.
    for exception in [
        cel_exception("another-pod", "2999-01-01T00:00:00Z"),
        cel_exception("test-pod", "2001-01-01T00:00:00Z"),
    ] {
        let response = engine
            .evaluate_both(&with(exception), &pod(&unsigned))
            .await;
        assert!(response.blocked(), "{response:#?}");
        assert_eq!(rule(&response).status, RuleStatus::Fail);
    }
    // Added after the policy, the exception applies too (the order of assembly does not
    // matter).
    let loaded = imagegate_policy::load::load_documents(&yaml, "test").unwrap();
    let later = PolicySet::new(Vec::new())
        .with_image_validating(loaded.image_validating)
        .with_cel_exceptions([std::sync::Arc::new(cel_exception(
            "test-pod",
            "2999-01-01T00:00:00Z",
        ))]);
    assert!(
        !engine
            .evaluate_both(&later, &pod(&unsigned))
            .await
            .blocked()
    );
}
