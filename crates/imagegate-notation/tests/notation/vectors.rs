//! Every case of `../shared/vectors/notation/meta.json` (real notation / notation-go
//! envelopes with their expected verdicts under Kyverno's trust model) through
//! `verify_signature`. Read at test time; skipped when the vectors are absent.

use std::path::Path;

use imagegate_notation::{Descriptor, TrustPolicy, read_certificates, verify_signature};
use serde::Deserialize;

#[derive(Deserialize)]
struct Meta {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    id: String,
    envelope: String,
    media_type: String,
    trust: Vec<String>,
    tsa: Vec<String>,
    expected_target: Descriptor,
    at: String,
    expect: String,
    #[serde(default)]
    check: Option<String>,
}

fn certificates(dir: &Path, files: &[String]) -> Vec<Vec<u8>> {
    files
        .iter()
        .flat_map(|f| {
            let bytes = std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            read_certificates(&bytes).unwrap_or_else(|e| panic!("{f}: {e}"))
        })
        .collect()
}

#[test]
fn notation_vectors_meet_their_expected_verdicts() {
    let Some(root) = imagegate_testkit::vectors_dir() else {
        println!("skipped: ../shared/vectors not found");
        return;
    };
    let dir = root.join("notation");
    let meta: Meta =
        serde_json::from_slice(&std::fs::read(dir.join("meta.json")).expect("meta.json"))
            .expect("meta.json parses");
    assert_eq!(meta.cases.len(), 24, "every case of meta.json is run");
    let mut failures = Vec::new();
    for case in &meta.cases {
        let envelope = std::fs::read(dir.join(&case.envelope)).expect("envelope");
        let policy = TrustPolicy::kyverno(
            certificates(&dir, &case.trust),
            certificates(&dir, &case.tsa),
        );
        let at = case.at.parse::<jiff::Timestamp>().expect("at").as_second();
        let result = verify_signature(
            &envelope,
            &case.media_type,
            &case.expected_target,
            &policy,
            at,
        );
        println!(
            "{}: {:?}",
            case.id,
            result
                .as_ref()
                .map(|v| (v.format, v.timestamp))
                .map_err(|e| (e.check(), e.to_string()))
        );
        match (case.expect.as_str(), &result) {
            ("pass", Ok(verified)) => {
                assert!(
                    verified.target.same_content(&case.expected_target),
                    "{}",
                    case.id
                );
                assert_eq!(
                    verified.revocation,
                    imagegate_notation::Revocation::NotChecked
                );
            }
            ("fail", Err(err)) => {
                let want = case.check.as_deref().unwrap_or("");
                if err.check().as_str() != want {
                    failures.push(format!(
                        "{}: failed in {} ({err}), expected {want}",
                        case.id,
                        err.check().as_str()
                    ));
                }
            }
            (expect, _) => failures.push(format!("{}: expected {expect}, got {result:?}", case.id)),
        }
    }
    assert!(
        failures.is_empty(),
        "vector failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn kyverno_test_certificate_reads_as_a_trust_anchor() {
    let Some(root) = imagegate_testkit::vectors_dir() else {
        println!("skipped: ../shared/vectors not found");
        return;
    };
    let pem = std::fs::read(root.join("notation/kyverno/test-verify-image-notary-cert.pem"))
        .expect("pem");
    let ders = read_certificates(&pem).expect("Kyverno's Notary test certificate reads");
    assert_eq!(ders.len(), 1);
    use sha2::Digest as _;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&ders[0])),
        "da1f2d7d648dfacc7ebd59f98a9f35c753c331d80ca4280bb94060f4af4a5357"
    );
}

#[test]
fn signing_authority_envelope_verifies_with_a_signing_authority_store() {
    // Kyverno has no signingAuthority store (so meta.json expects a failure); with one, as
    // in notation-go's own tests, the same envelope verifies at its authentic signing time.
    let Some(root) = imagegate_testkit::vectors_dir() else {
        println!("skipped: ../shared/vectors not found");
        return;
    };
    let dir = root.join("notation");
    let envelope =
        std::fs::read(dir.join("notation-go/mock/sa_valid_sig_env.json")).expect("envelope");
    let trust = certificates(&dir, &["notation-go/mock/NotationTestRoot.pem".to_owned()]);
    let policy = TrustPolicy {
        signing_authority: trust,
        ..TrustPolicy::default()
    };
    let expected = Descriptor::new(
        "application/vnd.docker.distribution.manifest.v2+json",
        "sha256:60043cf45eaebc4c0867fea485a039b598f52fd09fd5b07b0b2d2f88fad9d74e",
        528,
    );
    let at = "2026-01-01T00:00:00Z"
        .parse::<jiff::Timestamp>()
        .expect("time")
        .as_second();
    let verified = verify_signature(&envelope, "application/jose+json", &expected, &policy, at)
        .expect("signing-authority envelope verifies");
    assert_eq!(
        verified.signing_scheme,
        imagegate_notation::SigningScheme::X509SigningAuthority
    );
    assert!(verified.authentic_signing_time.is_some());
    // The ca store alone does not authenticate a signing-authority signature.
    let ca_only = TrustPolicy::kyverno(policy.signing_authority.clone(), vec![]);
    let err =
        verify_signature(&envelope, "application/jose+json", &expected, &ca_only, at).unwrap_err();
    assert_eq!(
        err,
        imagegate_notation::NotationError::NoSigningAuthorityTrust
    );
}
