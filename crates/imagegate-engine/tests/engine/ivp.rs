//! ImageValidatingPolicies through the engine against a real `docker-registry`, images
//! signed and attested with a test key. The policies are those of Kyverno's CLI folders
//! `test/cli/test-image-validating-policy/*` (cosign key, attestation predicate check)
//! with the key and registry replaced.

use std::collections::BTreeMap;

use imagegate_engine::{AdmissionInput, Engine, EngineResponse, Phase, PolicySet, RuleStatus};
use imagegate_oci::{ClientOptions, DockerConfig, RegistryClient};
use imagegate_policy::load::load_documents;
use imagegate_policy::matching::MatchContext;
use imagegate_testkit::{CosignKey, Registry};
use serde_json::json;

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
    let loaded = load_documents(yaml, "test").expect("policy loads");
    assert!(!loaded.image_validating.is_empty(), "{yaml}");
    PolicySet::new(loaded.policies).with_image_validating(loaded.image_validating)
}

fn policy_yaml(key: &CosignKey, setup: &Setup) -> String {
    let key_pem = key
        .public_pem()
        .lines()
        .map(|l| format!("            {l}"))
        .collect::<Vec<_>>()
        .join("\n");
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
        images.containers.map(image, extractPayload(image, attestations["cosign-attest"]).data).all(d, d == "approved")
      message: the attestation predicate is not approved"#;

fn pod(image: &str) -> AdmissionInput {
    AdmissionInput::for_resource(
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "test-pod", "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": image}]},
        }),
        MatchContext::default(),
    )
}

fn engine() -> Engine {
    let client =
        RegistryClient::new(DockerConfig::anonymous(), ClientOptions::default()).expect("client");
    Engine::builder(client).build()
}

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
async fn audit_and_warn_admit_with_a_warning() {
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
        let warnings = response.warnings();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("failed the image Signature verification")),
            "{actions}: {warnings:?}"
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
    let warnings = response.warnings().join("\n");
    assert!(warnings.contains("127.0.0.1:1"), "{warnings}");

    s.failure_policy = "Fail";
    let response = engine().evaluate_both(&policy(&key, &s), &pod(image)).await;
    assert!(response.blocked(), "{response:#?}");
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
