//! `type: Notary`: Notation signatures made by the test kit's signer (its own chains,
//! independent of the verifier), pushed to a real docker-registry (2.8: no referrers
//! API, so the `sha256-<hex>` referrers tag) or served by the stub through the
//! referrers API, verified through the engine's attestors (the ClusterPolicy form).

use std::collections::HashMap;
use std::sync::Arc;

use imagegate_engine::{Phase, PolicySet, RuleStatus};
use imagegate_testkit::Registry;
use imagegate_testkit::notation::{
    self, COSE, JWS, KeySpec, NotationCa, NotationSigner, SignOptions, Validity,
};
use imagegate_testkit::oci::{self, Descriptor, OCI_INDEX, OCI_MANIFEST};
use imagegate_testkit::stub::{Reply, Stub, by_path};
use serde_json::{Value, json};

use crate::{assert_fails_with, check, check_with, engine, pod, verification};

const SBOM_TYPE: &str = "application/vnd.cyclonedx+json";

/// A `type: Notary` entry trusting `certificates` (`{cert, certChain, ctlog}`).
fn notary_entry(certificates: Value, extra: Value) -> imagegate_policy::model::ImageVerification {
    let mut entry = json!({
        "type": "Notary",
        "imageReferences": ["*"],
        "attestors": [{"entries": [{"certificates": certificates}]}],
    });
    if let (Some(entry), Some(extra)) = (entry.as_object_mut(), extra.as_object()) {
        entry.extend(extra.clone());
    }
    verification(entry)
}

/// Pushes a fresh image `repo:v1`; its tagged reference and manifest descriptor.
fn push_image(registry: &Registry, repo: &str) -> (String, Descriptor) {
    let pusher = registry.pusher();
    let digest = pusher.push_image(repo, "v1");
    let (media_type, bytes) = pusher.get_manifest(repo, &digest).expect("pushed image");
    let descriptor = Descriptor::of(&media_type, &bytes);
    assert_eq!(descriptor.digest, digest);
    (format!("{}/{repo}:v1", registry.host()), descriptor)
}

fn sign(
    registry: &Registry,
    repo: &str,
    subject: &Descriptor,
    signer: &NotationSigner,
    envelope: &str,
    options: &SignOptions,
) {
    let bytes = if envelope == JWS {
        signer.sign_jws(subject, options)
    } else {
        signer.sign_cose(subject, options)
    };
    notation::push_signature(&registry.pusher(), repo, subject, &bytes, envelope);
}

#[tokio::test]
async fn signatures_of_each_key_type_and_envelope_verify_from_the_fallback_tag() {
    let registry = Registry::start();
    let ca = NotationCa::new("Engine Test Root", KeySpec::EcP384);
    let entry = notary_entry(json!({"cert": ca.pem()}), json!({}));
    for (i, (key, envelope)) in [
        (KeySpec::Rsa2048, JWS),
        (KeySpec::EcP256, COSE),
        (KeySpec::EcP384, JWS),
        (KeySpec::EcP256, JWS),
        (KeySpec::EcP384, COSE),
    ]
    .into_iter()
    .enumerate()
    {
        let repo = format!("app{i}");
        let (image, subject) = push_image(&registry, &repo);
        let signer = ca.signer(&format!("signer-{i}"), key, Validity::current());
        sign(
            &registry,
            &repo,
            &subject,
            &signer,
            envelope,
            &SignOptions::default(),
        );
        check(&image, &entry, None)
            .await
            .unwrap_or_else(|e| panic!("{key:?} {envelope}: {e}"));
    }
    // The CA given as certChain (Kyverno trusts cert and certChain alike).
    check(
        &format!("{}/app0:v1", registry.host()),
        &notary_entry(json!({"certChain": ca.pem()}), json!({})),
        None,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn unsigned_other_ca_expired_and_tampered_signatures_are_refused() {
    let registry = Registry::start();
    let ca = NotationCa::new("Engine Test Root", KeySpec::Rsa2048);
    let entry = notary_entry(json!({"cert": ca.pem()}), json!({}));

    let (unsigned, _) = push_image(&registry, "unsigned");
    assert_fails_with(
        check(&unsigned, &entry, None).await,
        ".attestors[0].entries[0].certificates: no signatures found",
    );

    let other = NotationCa::new("Other Root", KeySpec::Rsa2048);
    let (image, subject) = push_image(&registry, "other-ca");
    let signer = other.signer("other-signer", KeySpec::EcP256, Validity::current());
    sign(
        &registry,
        "other-ca",
        &subject,
        &signer,
        JWS,
        &SignOptions::default(),
    );
    assert_fails_with(
        check(&image, &entry, None).await,
        ".attestors[0].entries[0].certificates: invalid signature: authenticity check failed",
    );

    let (image, subject) = push_image(&registry, "expired");
    let signer = ca.signer("expired-signer", KeySpec::EcP256, Validity::expired());
    let options = SignOptions {
        signing_time: Some(Validity::EXPIRED_INSIDE),
        ..SignOptions::default()
    };
    sign(&registry, "expired", &subject, &signer, COSE, &options);
    assert_fails_with(
        check(&image, &entry, None).await,
        "invalid signature: authenticTimestamp check failed",
    );

    // A signature of another size for the same digest (a tampered descriptor).
    let (image, subject) = push_image(&registry, "tampered");
    let signer = ca.signer("signer", KeySpec::EcP256, Validity::current());
    let tampered = Descriptor {
        size: subject.size + 1,
        ..subject.clone()
    };
    let envelope = signer.sign_jws(&tampered, &SignOptions::default());
    notation::push_signature(&registry.pusher(), "tampered", &subject, &envelope, JWS);
    assert_fails_with(
        check(&image, &entry, None).await,
        "invalid signature: integrity check failed",
    );
    // Signed by a trusted signer too: one valid signature is enough.
    sign(
        &registry,
        "tampered",
        &subject,
        &signer,
        COSE,
        &SignOptions::default(),
    );
    check(&image, &entry, None).await.unwrap();

    // Keys are not Notation's.
    let keys = verification(json!({
        "type": "Notary",
        "imageReferences": ["*"],
        "attestors": [{"entries": [{"keys": {"publicKeys": "x"}}]}],
    }));
    assert_fails_with(
        check(&image, &keys, None).await,
        ".attestors[0].entries[0].keys: type Notary verifies with certificates",
    );
    assert_fails_with(
        check(
            &image,
            &notary_entry(json!({"cert": "not PEM"}), json!({})),
            None,
        )
        .await,
        ".attestors[0].entries[0].certificates: certificates:",
    );
}

#[tokio::test]
async fn timestamped_signature_of_an_expired_leaf_verifies_with_the_tsa_only() {
    let registry = Registry::start();
    let ca = NotationCa::new("Engine Test Root", KeySpec::EcP256);
    let tsa_root = NotationCa::new("Engine TSA Root", KeySpec::EcP256);
    let tsa = Arc::new(tsa_root.tsa("Engine TSA"));
    let (image, subject) = push_image(&registry, "stamped");
    let signer = ca.signer("expired-signer", KeySpec::Rsa2048, Validity::expired());
    let options = SignOptions {
        signing_time: Some(Validity::EXPIRED_INSIDE),
        timestamp: Some((tsa, Validity::EXPIRED_INSIDE)),
        ..SignOptions::default()
    };
    sign(&registry, "stamped", &subject, &signer, JWS, &options);
    let with_tsa = notary_entry(
        json!({"cert": ca.pem(), "ctlog": {"tsaCertChain": tsa_root.pem()}}),
        json!({}),
    );
    check(&image, &with_tsa, None).await.unwrap();
    // Without a TSA store the leaf must be valid now, and it expired.
    assert_fails_with(
        check(
            &image,
            &notary_entry(json!({"cert": ca.pem()}), json!({})),
            None,
        )
        .await,
        "authenticTimestamp check failed",
    );
    // A TSA store that does not trust this TSA.
    let other_tsa = NotationCa::new("Other TSA Root", KeySpec::EcP256);
    assert_fails_with(
        check(
            &image,
            &notary_entry(
                json!({"cert": ca.pem(), "ctlog": {"tsaCertChain": other_tsa.pem()}}),
                json!({}),
            ),
            None,
        )
        .await,
        "invalid signature",
    );
}

#[tokio::test]
async fn signatures_in_a_signature_repository() {
    let registry = Registry::start();
    let ca = NotationCa::new("Engine Test Root", KeySpec::EcP256);
    let (image, subject) = push_image(&registry, "team/app");
    let signer = ca.signer("signer", KeySpec::EcP256, Validity::current());
    sign(
        &registry,
        "team/signatures",
        &subject,
        &signer,
        COSE,
        &SignOptions::default(),
    );
    let repository = format!("{}/team/signatures", registry.host());
    check(
        &image,
        &notary_entry(json!({"cert": ca.pem()}), json!({"repository": repository})),
        None,
    )
    .await
    .unwrap();
    assert_fails_with(
        check(
            &image,
            &notary_entry(json!({"cert": ca.pem()}), json!({})),
            None,
        )
        .await,
        "no signatures found",
    );
}

/// An attestation check of SBOMs signed by `ca` whose `bomFormat` is `format`.
fn sbom_entry(ca: &NotationCa, format: &str) -> imagegate_policy::model::ImageVerification {
    verification(json!({
        "type": "Notary",
        "imageReferences": ["*"],
        "attestations": [{
            "type": SBOM_TYPE,
            "attestors": [{"entries": [{"certificates": {"cert": ca.pem()}}]}],
            "conditions": [{"all": [{
                "key": "{{ bomFormat }}",
                "operator": "Equals",
                "value": format,
            }]}],
        }],
    }))
}

#[tokio::test]
async fn a_signed_sbom_referrer_is_an_attestation_and_an_unsigned_one_is_not() {
    let registry = Registry::start();
    let pusher = registry.pusher();
    let ca = NotationCa::new("Engine Test Root", KeySpec::EcP256);
    let signer = ca.signer("sbom-signer", KeySpec::EcP256, Validity::current());
    let sbom = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","components":[]}"#;

    let (image, subject) = push_image(&registry, "with-sbom");
    let artifact =
        notation::push_artifact(&pusher, "with-sbom", &subject, SBOM_TYPE, sbom, SBOM_TYPE);
    sign(
        &registry,
        "with-sbom",
        &artifact,
        &signer,
        JWS,
        &SignOptions::default(),
    );
    check(&image, &sbom_entry(&ca, "CycloneDX"), None)
        .await
        .unwrap();
    assert_fails_with(
        check(&image, &sbom_entry(&ca, "SPDX"), None).await,
        &format!("attestation checks failed for {image} and predicate {SBOM_TYPE}"),
    );
    let other = NotationCa::new("Other Root", KeySpec::EcP256);
    assert_fails_with(
        check(&image, &sbom_entry(&other, "CycloneDX"), None).await,
        "authenticity check failed",
    );

    let (unsigned_sbom, subject) = push_image(&registry, "unsigned-sbom");
    let artifact = notation::push_artifact(
        &pusher,
        "unsigned-sbom",
        &subject,
        SBOM_TYPE,
        sbom,
        SBOM_TYPE,
    );
    assert_fails_with(
        check(&unsigned_sbom, &sbom_entry(&ca, "CycloneDX"), None).await,
        &format!(
            "invalid signature: attestation {} ({SBOM_TYPE}): no signatures found",
            artifact.digest
        ),
    );
    // The image's own signature is not an attestation of the SBOM type.
    sign(
        &registry,
        "unsigned-sbom",
        &subject,
        &signer,
        JWS,
        &SignOptions::default(),
    );
    let (no_sbom, subject) = push_image(&registry, "no-sbom");
    sign(
        &registry,
        "no-sbom",
        &subject,
        &signer,
        JWS,
        &SignOptions::default(),
    );
    assert_fails_with(
        check(&no_sbom, &sbom_entry(&ca, "CycloneDX"), None).await,
        &format!("no matching attestations: no attestations of type {SBOM_TYPE} found"),
    );
}

/// The registry requests of a verification sent after `before` (pushes excluded).
fn requests_since(registry: &Registry, before: usize) -> Vec<String> {
    registry.requests()[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test]
async fn a_cold_verification_of_a_tag_costs_four_requests_once_the_registry_is_known() {
    let registry = Registry::start();
    let ca = NotationCa::new("Engine Test Root", KeySpec::EcP256);
    let signer = ca.signer("signer", KeySpec::EcP256, Validity::current());
    let entry = notary_entry(json!({"cert": ca.pem()}), json!({}));
    let mut images = Vec::new();
    for repo in ["first", "second"] {
        let (image, subject) = push_image(&registry, repo);
        sign(
            &registry,
            repo,
            &subject,
            &signer,
            JWS,
            &SignOptions::default(),
        );
        images.push(image);
    }
    let verifier = crate::verifier();
    let before = registry.requests().len();
    check_with(&verifier, &images[0], &entry, None)
        .await
        .unwrap();
    let first = requests_since(&registry, before);
    // HEAD (tag → descriptor), referrers API (404 on docker-registry 2.8), fallback
    // tag, signature manifest, envelope.
    assert_eq!(first.len(), 5, "{first:#?}");
    assert!(first[1].contains("/referrers/"), "{first:#?}");

    let before = registry.requests().len();
    check_with(&verifier, &images[1], &entry, None)
        .await
        .unwrap();
    let second = requests_since(&registry, before);
    // The registry is known to lack the referrers API: HEAD, fallback tag, signature
    // manifest, envelope.
    assert_eq!(second.len(), 4, "{second:#?}");
    assert!(
        second[0].starts_with("HEAD /v2/second/manifests/v1"),
        "{second:#?}"
    );
    assert!(
        !second.iter().any(|r| r.contains("/referrers/")),
        "{second:#?}"
    );
}

#[tokio::test]
async fn signatures_through_the_referrers_api_cost_four_requests() {
    let ca = NotationCa::new("Engine Test Root", KeySpec::Rsa2048);
    let signer = ca.signer("api-signer", KeySpec::Rsa2048, Validity::current());
    let manifest = oci::to_go_json(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": oci::sha256_digest(b"{}"), "size": 2},
        "layers": [],
    }));
    let subject = Descriptor::of(OCI_MANIFEST, &manifest);
    let envelope = signer.sign_cose(&subject, &SignOptions::default());
    let layer = Descriptor::of(COSE, &envelope);
    let signature = oci::to_go_json(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": notation::SIGNATURE_ARTIFACT_TYPE,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": oci::sha256_digest(b"{}"), "size": 2},
        "layers": [layer],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": subject.size},
    }));
    let signature_digest = oci::sha256_digest(&signature);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": signature_digest, "size": signature.len(), "artifactType": notation::SIGNATURE_ARTIFACT_TYPE},
            // Another referrer: never fetched.
            {"mediaType": OCI_MANIFEST, "digest": format!("sha256:{}", "1".repeat(64)), "size": 100, "artifactType": SBOM_TYPE},
        ],
    }))
    .unwrap();
    let answer = |content_type: &str, body: &[u8], digest: &str| {
        Reply::ok(body)
            .content_type(content_type)
            .header("Docker-Content-Digest", digest)
    };
    let stub = Stub::start(by_path(HashMap::from([
        (
            "/v2/lab/app/manifests/v1".to_owned(),
            answer(OCI_MANIFEST, &manifest, &subject.digest),
        ),
        (
            format!("/v2/lab/app/referrers/{}", subject.digest),
            answer(OCI_INDEX, &index, &oci::sha256_digest(&index)),
        ),
        (
            format!("/v2/lab/app/manifests/{signature_digest}"),
            answer(OCI_MANIFEST, &signature, &signature_digest),
        ),
        (
            format!("/v2/lab/app/blobs/{}", layer.digest),
            answer("application/octet-stream", &envelope, &layer.digest),
        ),
    ])))
    .await;
    let image = format!("{}/lab/app:v1", stub.host());
    check(
        &image,
        &notary_entry(json!({"cert": ca.pem()}), json!({})),
        None,
    )
    .await
    .unwrap();
    let log = stub.log();
    assert_eq!(log.len(), 4, "{log:#?}");
    assert!(
        log[0].starts_with("HEAD /v2/lab/app/manifests/v1"),
        "{log:#?}"
    );
    assert!(
        log[1].starts_with(&format!(
            "GET /v2/lab/app/referrers/{}?artifactType=application%2Fvnd.cncf.notary.signature",
            subject.digest
        )),
        "{log:#?}"
    );
    assert!(!log.iter().any(|r| r.contains("1111111111")), "{log:#?}");
}

#[tokio::test]
async fn a_notary_policy_pins_the_verified_digest() {
    let registry = Registry::start();
    let ca = NotationCa::new("Engine Test Root", KeySpec::EcP256);
    let signer = ca.signer("signer", KeySpec::EcP256, Validity::current());
    let (signed, subject) = push_image(&registry, "signed");
    sign(
        &registry,
        "signed",
        &subject,
        &signer,
        JWS,
        &SignOptions::default(),
    );
    let (unsigned, _) = push_image(&registry, "unsigned");
    let cert: String = ca
        .pem()
        .lines()
        .map(|l| format!("                      {l}\n"))
        .collect();
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: notation
spec:
  rules:
    - name: verify
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - type: Notary
          imageReferences: ["{host}/*"]
          failureAction: Enforce
          attestors:
            - entries:
                - certificates:
                    cert: |-
{cert}"#,
        host = registry.host(),
    );
    let policies = crate::policy_set(&yaml);
    let engine = engine();
    let response = engine
        .evaluate(&policies, &pod(&signed), Phase::Mutate)
        .await;
    assert!(!response.blocked(), "{response:#?}");
    assert_eq!(
        response.patched["spec"]["containers"][0]["image"],
        format!("{signed}@{}", subject.digest)
    );
    let response = engine
        .evaluate(&policies, &pod(&unsigned), Phase::Mutate)
        .await;
    assert!(response.blocked(), "{response:#?}");
    let rule = response.rule("notation", "verify").expect("rule ran");
    assert_eq!(rule.status, RuleStatus::Fail);
    assert!(
        rule.message.contains(&format!(
            "failed to verify image {unsigned}: .attestors[0].entries[0].certificates: no signatures found"
        )),
        "{}",
        rule.message
    );
}

/// Kyverno's notary-basic ImageValidatingPolicy (conformance test) with the test CA and
/// registry: a Notation signature and a signed SBOM referrer whose payload a
/// validation reads.
fn notary_ivp(ca: &NotationCa, host: &str) -> PolicySet {
    let certs: String = ca
        .pem()
        .lines()
        .map(|l| format!("            {l}\n"))
        .collect();
    let yaml = format!(
        r#"apiVersion: policies.kyverno.io/v1beta1
kind: ImageValidatingPolicy
metadata:
  name: ivpol-notary
spec:
  failurePolicy: Fail
  validationActions: [Deny]
  matchConstraints:
    resourceRules:
      - apiGroups: [""]
        apiVersions: ["v1"]
        operations: ["CREATE"]
        resources: ["pods"]
  matchImageReferences:
    - glob: "{host}/*"
  attestors:
    - name: notary
      notary:
        certs:
          value: |-
{certs}
  attestations:
    - name: sbom
      referrer:
        type: {SBOM_TYPE}
  validations:
    - expression: >-
        images.containers.map(image, verifyImageSignatures(image, [attestors.notary])).all(e, e > 0)
      message: failed to verify image with notary cert
    - expression: >-
        images.containers.map(image, verifyAttestationSignatures(image, attestations.sbom, [attestors.notary])).all(e, e > 0)
      message: failed to verify attestation with notary cert
    - expression: >-
        images.containers.map(image, extractPayload(image, attestations.sbom).bomFormat == 'CycloneDX').all(e, e)
      message: sbom is not CycloneDX
"#
    );
    let policies = crate::policy_set(&yaml);
    assert_eq!(policies.image_validating().len(), 1);
    policies
}

#[tokio::test]
async fn image_validating_policy_with_a_notary_attestor_and_a_referrer_attestation() {
    let registry = Registry::start();
    let pusher = registry.pusher();
    let ca = NotationCa::new("Engine Test Root", KeySpec::EcP256);
    let signer = ca.signer("signer", KeySpec::EcP256, Validity::current());
    let sbom = br#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#;
    let (complete, subject) = push_image(&registry, "complete");
    sign(
        &registry,
        "complete",
        &subject,
        &signer,
        JWS,
        &SignOptions::default(),
    );
    let artifact =
        notation::push_artifact(&pusher, "complete", &subject, SBOM_TYPE, sbom, SBOM_TYPE);
    sign(
        &registry,
        "complete",
        &artifact,
        &signer,
        COSE,
        &SignOptions::default(),
    );
    let (unsigned_sbom, subject) = push_image(&registry, "unsigned-sbom");
    sign(
        &registry,
        "unsigned-sbom",
        &subject,
        &signer,
        JWS,
        &SignOptions::default(),
    );
    notation::push_artifact(
        &pusher,
        "unsigned-sbom",
        &subject,
        SBOM_TYPE,
        sbom,
        SBOM_TYPE,
    );
    let (unsigned, _) = push_image(&registry, "unsigned");

    let policies = notary_ivp(&ca, &registry.host());
    let engine = engine();
    let response = engine.evaluate_both(&policies, &pod(&complete)).await;
    assert!(!response.blocked(), "{response:#?}");
    for (image, message) in [
        (
            &unsigned_sbom,
            "failed to verify attestation with notary cert",
        ),
        (&unsigned, "failed to verify image with notary cert"),
    ] {
        let response = engine.evaluate_both(&policies, &pod(image)).await;
        assert!(response.blocked(), "{image}: {response:#?}");
        let denial = response.denial_message().unwrap_or_default();
        assert!(denial.contains(message), "{image}: {denial}");
    }
    // Another CA: nothing verifies.
    let other = NotationCa::new("Other Root", KeySpec::EcP256);
    let response = engine
        .evaluate_both(&notary_ivp(&other, &registry.host()), &pod(&complete))
        .await;
    assert!(response.blocked(), "{response:#?}");
}
