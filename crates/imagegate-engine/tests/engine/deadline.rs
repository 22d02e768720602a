//! Issue 8 ("deadline fires during CPU-bound checks"): a review's deadline fires while
//! a CPU-heavy verification runs. The work is the certificate chain attack of issue 8
//! item 7 within its caps: a keyless `.sig` of many layers, each carrying as many
//! same-name, same-key CA certificates as are accepted, none chaining to the policy's
//! root, so every layer spends the path search's whole budget of signature checks.
//!
//! One image, so that all the CPU work is one check of one image: were it run on the
//! async worker, nothing could interrupt it and the evaluation would finish (denied on
//! its merits) instead of the deadline answering. No clock is read here: the answer
//! itself says whether the deadline fired.

use std::collections::BTreeMap;

use base64::Engine as _;
use imagegate_engine::admission::{AdmissionReview, review};
use imagegate_engine::{Phase, PolicySet};
use imagegate_testkit::oci::{self, Descriptor};
use imagegate_testkit::{CosignKey, Registry, simple_signing_payload};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use serde_json::json;

/// Layers of the `.sig` manifest (the engine looks at 64 at most).
const LAYERS: usize = 64;
/// CA certificates in each layer's chain (more than 10 are refused before any check).
const CHAIN_CAS: u64 = 10;
const CA_NAME: &str = "imagegate test evil CA";
const SUBJECT: &str = "attacker@example.com";

/// A CA certificate's parameters: always the same name, `serial` told apart.
fn ca_params(serial: u64) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(SerialNumber::from(serial.to_be_bytes().to_vec()));
    params
}

/// P-521, the slowest signature check the chain search accepts.
fn p521() -> KeyPair {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap()
}

/// Pushes `attack/chain:v1` with the attack `.sig`; returns the image reference and
/// the PEM of the policy's root (same name as the chain's CAs, another key).
fn push_attack(registry: &Registry) -> (String, String) {
    let ca_key_pem = p521().serialize_pem();
    let ca_key = || KeyPair::from_pem(&ca_key_pem).unwrap();
    let chain: String = (1..=CHAIN_CAS)
        .map(|serial| ca_params(serial).self_signed(&ca_key()).unwrap().pem())
        .collect();
    let root = ca_params(1_000).self_signed(&p521()).unwrap().pem();

    let signing_key = CosignKey::generate();
    let mut leaf_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf_params.subject_alt_names = vec![SanType::Rfc822Name(SUBJECT.try_into().unwrap())];
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    let leaf_key = KeyPair::try_from(signing_key.private_pkcs8_der().as_slice()).unwrap();
    let issuer = CertifiedIssuer::self_signed(ca_params(1), ca_key()).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap().pem();

    let repo = "attack/chain";
    let pusher = registry.pusher();
    let digest = pusher.push_image(repo, "v1");
    let name = format!("{}/{repo}", registry.host());
    let layers: Vec<Descriptor> = (0..LAYERS)
        .map(|i| {
            // Distinct payloads: nothing about one layer can be reused for another.
            let optional = BTreeMap::from([("layer".to_owned(), i.to_string())]);
            let payload = simple_signing_payload(&name, &digest, &optional);
            let signature =
                base64::engine::general_purpose::STANDARD.encode(signing_key.sign(&payload));
            pusher.push_blob(repo, &payload);
            let mut layer = Descriptor::of(oci::SIMPLE_SIGNING, &payload);
            layer.annotations = Some(BTreeMap::from([
                (oci::SIGNATURE_ANNOTATION.to_owned(), signature),
                ("dev.sigstore.cosign/certificate".to_owned(), leaf.clone()),
                ("dev.sigstore.cosign/chain".to_owned(), chain.clone()),
            ]));
            layer
        })
        .collect();
    let config = oci::cosign_config(&layers);
    pusher.push_blob(repo, &config);
    pusher.push_manifest(
        repo,
        &oci::cosign_tag(&digest, "sig"),
        oci::OCI_MANIFEST,
        &oci::cosign_manifest(&config, &layers),
    );
    (format!("{name}:v1"), root)
}

/// A keyless policy trusting only `root`, with the shortest webhook timeout (1 s, so
/// a deadline of 750 ms) and `failurePolicy: Fail`.
fn policy(host: &str, root: &str) -> PolicySet {
    let roots: String = root
        .trim_end()
        .lines()
        .map(|l| format!("                      {l}\n"))
        .collect();
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: keyless
spec:
  webhookTimeoutSeconds: 1
  failurePolicy: Fail
  rules:
    - name: keyless
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - imageReferences: ["{host}/*"]
          failureAction: Enforce
          attestors:
            - entries:
                - keyless:
                    subject: {SUBJECT}
                    issuer: https://issuer.example
                    roots: |-
{roots}                    rekor:
                      ignoreTlog: true
                    ctlog:
                      ignoreSCT: true
"#
    );
    crate::policy_set(&yaml)
}

#[tokio::test]
async fn the_review_deadline_fires_during_a_cpu_heavy_verification() {
    let registry = Registry::start();
    let (image, root) = push_attack(&registry);
    let policies = policy(&registry.host(), &root);
    let engine = crate::engine();
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "chain", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": image}]},
    });
    let request = AdmissionReview::parse(
        &serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "chain",
                "operation": "CREATE",
                "namespace": "default",
                "object": pod,
            },
        }))
        .unwrap(),
    )
    .expect("a valid review");
    let answered = review(&engine, &policies, &request, Phase::Mutate).await;
    let response = answered.review.response.expect("answered");
    assert_eq!(
        answered.deadline_exceeded,
        Some(true),
        "the verification finished first (the deadline could not interrupt it): {response:?}"
    );
    assert!(!response.allowed, "{response:?}");
    let message = response
        .status
        .as_ref()
        .and_then(|s| s["message"].as_str())
        .unwrap_or_default();
    assert!(
        message.contains("could not finish verification within 0.75s"),
        "{message}"
    );
}
