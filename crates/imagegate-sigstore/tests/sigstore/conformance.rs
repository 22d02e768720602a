//! Sigstore bundles against the shared vectors:
//! - every sigstore-conformance `bundle-verify` case, with the artifact given as bytes and
//!   as its SHA-256 digest (70 × 2 = 140 runs), with the suite's conventions
//!   (`vectors/sigstore-conformance/cases.json`);
//! - the cosign v3 bundles of `vectors/cosign-bundle` with their recorded outcomes.

use std::collections::BTreeMap;
use std::path::Path;

use imagegate_sigstore::{
    Artifact, BundleError, BundleRequirement, GitHubWorkflow, IdentityError, IdentityRequirement,
    Matcher, PublicKey, Signer, TrustedRoot, VerifiedBundle, verify_bundle,
};
use serde_json::Value;
use sha2::Digest as _;

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn key(path: &Path) -> PublicKey {
    let text = String::from_utf8(read(path)).unwrap();
    PublicKey::from_pem(&text).unwrap().remove(0)
}

fn str_field<'a>(case: &'a Value, field: &str) -> Option<&'a str> {
    case.get(field).and_then(Value::as_str)
}

/// Runs one conformance case; `digest` chooses the artifact form.
///
/// The error is text: a key or trusted root that does not parse
/// (`managed-key-wrong-key_fail` has broken base64, `trust-root-tlog-missing-validity-start_fail`
/// a log without a validity start) is a rejection too, as the suite only asks for a failure.
fn run_case(
    dir: &Path,
    case: &Value,
    roots: &mut BTreeMap<String, TrustedRoot>,
    digest: bool,
) -> Result<VerifiedBundle, String> {
    let root_name = str_field(case, "trusted_root").unwrap();
    let root = match roots.get(root_name) {
        Some(root) => root.clone(),
        None => {
            let root = if root_name == "public-good" {
                TrustedRoot::public_good()
            } else {
                TrustedRoot::from_file(&dir.join(root_name))
            }
            .map_err(|e| e.to_string())?;
            roots.insert(root_name.to_owned(), root.clone());
            root
        }
    };
    let requirement = match str_field(case, "verification_mode").unwrap() {
        "key" => {
            let path = dir.join(str_field(case, "key").unwrap());
            let text = String::from_utf8(read(&path)).unwrap();
            let mut keys = PublicKey::from_pem(&text).map_err(|e| format!("key: {e}"))?;
            BundleRequirement::Key(keys.remove(0))
        }
        "identity" => BundleRequirement::Identity(IdentityRequirement::exact(
            str_field(case, "identity").unwrap(),
            str_field(case, "issuer").unwrap(),
        )),
        other => panic!("unknown verification_mode {other}"),
    };
    let bundle = read(&dir.join(str_field(case, "bundle").unwrap()));
    let artifact_bytes = read(&dir.join(str_field(case, "artifact").unwrap()));
    let recorded = str_field(case, "artifact_digest").unwrap();
    assert_eq!(
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(&artifact_bytes))
        ),
        recorded,
        "artifact_digest of {}",
        str_field(case, "name").unwrap()
    );
    let artifact = if digest {
        Artifact::from_digest(recorded).unwrap()
    } else {
        Artifact::Bytes(&artifact_bytes)
    };
    verify_bundle(&bundle, artifact, &root, &requirement).map_err(|e| e.to_string())
}

#[test]
fn sigstore_conformance_bundle_verify_all_140_runs() {
    let vectors = vectors_or_skip!();
    let dir = vectors.join("sigstore-conformance");
    let cases = json(&dir.join("cases.json"));
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 70, "cases.json lists 70 cases");

    let mut roots = BTreeMap::new();
    let mut mismatches = Vec::new();
    let (mut runs, mut passed, mut failed) = (0, 0, 0);
    for case in cases {
        let name = str_field(case, "name").unwrap();
        let expect_pass = match str_field(case, "expect").unwrap() {
            "pass" => true,
            "fail" => false,
            other => panic!("{name}: unknown expect {other}"),
        };
        for digest in [false, true] {
            runs += 1;
            let form = if digest { "digest" } else { "file" };
            let outcome = run_case(&dir, case, &mut roots, digest);
            match (&outcome, expect_pass) {
                (Ok(_), true) => passed += 1,
                (Err(_), false) => failed += 1,
                (Ok(_), false) => mismatches.push(format!("{name} ({form}): accepted, must fail")),
                (Err(e), true) => {
                    mismatches.push(format!("{name} ({form}): rejected, must pass: {e}"));
                }
            }
            if let Err(e) = &outcome {
                println!("{name} ({form}): rejected: {e}");
            }
        }
    }
    println!(
        "{runs} runs: {passed} accepted as expected, {failed} rejected as expected, {} mismatches",
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "mismatches:\n{}",
        mismatches.join("\n")
    );
    assert_eq!((runs, passed, failed), (140, 42, 98));
}

/// Conformance passes give the identity and times the engine relies on.
#[test]
fn conformance_happy_paths_report_signer_time_and_statement() {
    let vectors = vectors_or_skip!();
    let dir = vectors.join("sigstore-conformance");
    let cases = json(&dir.join("cases.json"));
    let case = |name: &str| {
        cases["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("case {name}"))
            .clone()
    };
    let mut roots = BTreeMap::new();

    let verified = run_case(&dir, &case("happy-path-v0.3"), &mut roots, false).unwrap();
    let Signer::Certificate(identity) = &verified.signer else {
        panic!("keyless expected: {:?}", verified.signer);
    };
    assert_eq!(
        identity.san,
        vec![
            "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
                .to_owned()
        ]
    );
    assert_eq!(
        identity.issuer.as_deref(),
        Some("https://token.actions.githubusercontent.com")
    );
    assert_eq!(
        identity.github.repository.as_deref(),
        Some("sigstore-conformance/extremely-dangerous-public-oidc-beacon")
    );
    assert!(verified.tlog_verified);
    assert!(verified.statement.is_none());
    assert!(!verified.timestamps.is_empty());

    let verified = run_case(
        &dir,
        &case("happy-path-intoto-in-dsse-v3"),
        &mut roots,
        true,
    )
    .unwrap();
    let statement = verified.statement.expect("DSSE bundle has a statement");
    assert!(!statement.subjects.is_empty());

    let verified = run_case(&dir, &case("managed-key-happy-path"), &mut roots, true).unwrap();
    assert!(
        matches!(verified.signer, Signer::Key { .. }),
        "{:?}",
        verified.signer
    );
}

fn cosign_bundle(vectors: &Path, rel: &str) -> Vec<u8> {
    read(&vectors.join("cosign-bundle").join(rel))
}

fn public_good(vectors: &Path) -> TrustedRoot {
    TrustedRoot::from_file(&vectors.join("sigstore-conformance/trusted_root.public-good.json"))
        .unwrap()
}

fn regex_identity(subject: &str, issuer: &str) -> BundleRequirement {
    BundleRequirement::Identity(IdentityRequirement {
        subject: Matcher::regex("subject", subject).unwrap(),
        issuer: Matcher::regex("issuer", issuer).unwrap(),
        github: GitHubWorkflow::default(),
    })
}

/// tobby-fetch: cosign v3.0.4 `sign --key` output, a managed-key DSSE bundle with a Rekor
/// entry and an RFC 3161 timestamp.
#[test]
fn cosign_v3_key_bundle_from_tobby_fetch() {
    let vectors = vectors_or_skip!();
    let meta = json(&vectors.join("cosign-bundle/tobby-fetch-cosign-v3.0.4/meta.json"));
    let bundle = cosign_bundle(&vectors, "tobby-fetch-cosign-v3.0.4/bundle-sigstore.json");
    let key = key(&vectors.join("cosign-bundle/tobby-fetch-cosign-v3.0.4/bundle-cosign.pub"));
    let subject = meta["subject"]["digest"].as_str().unwrap();
    let root = public_good(&vectors);
    let requirement = BundleRequirement::Key(key.clone());

    let verified = verify_bundle(
        &bundle,
        Artifact::from_digest(subject).unwrap(),
        &root,
        &requirement,
    )
    .unwrap();
    assert_eq!(
        verified.signer,
        Signer::Key {
            fingerprint: key.fingerprint()
        }
    );
    assert_eq!(
        verified.media_type,
        "application/vnd.dev.sigstore.bundle.v0.3+json"
    );
    assert_eq!(verified.integrated_time, Some(1_786_568_008));
    assert!(verified.tlog_verified);
    let statement = verified.statement.unwrap();
    assert_eq!(
        statement.predicate_type,
        "https://sigstore.dev/cosign/sign/v1"
    );
    assert_eq!(
        statement.statement, meta["bundle_facts"]["statement"],
        "the compact cosign statement"
    );
    // The same bundle with the embedded root (identical content) verifies too.
    verify_bundle(
        &bundle,
        Artifact::from_digest(subject).unwrap(),
        &TrustedRoot::public_good().unwrap(),
        &requirement,
    )
    .unwrap();

    // Another image digest: the statement does not name it.
    let other = format!("sha256:{}", "0".repeat(64));
    let err = verify_bundle(
        &bundle,
        Artifact::from_digest(&other).unwrap(),
        &root,
        &requirement,
    )
    .unwrap_err();
    assert!(matches!(err, BundleError::ArtifactMismatch(_)), "{err}");

    // A foreign P-256 key.
    let foreign = key_of_conformance_case(&vectors, "managed-key-happy-path");
    let err = verify_bundle(
        &bundle,
        Artifact::from_digest(subject).unwrap(),
        &root,
        &BundleRequirement::Key(foreign),
    )
    .unwrap_err();
    assert!(matches!(err, BundleError::InvalidSignature(_)), "{err}");

    // Verified as keyless: there is no certificate.
    let err = verify_bundle(
        &bundle,
        Artifact::from_digest(subject).unwrap(),
        &root,
        &regex_identity(".*", ".*"),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            BundleError::InvalidBundle(_) | BundleError::UnsupportedBundle(_)
        ),
        "{err}"
    );

    // The DSSE signature with its last byte flipped (coherent forgery).
    let mut value: Value = serde_json::from_slice(&bundle).unwrap();
    let sig = value["dsseEnvelope"]["signatures"][0]["sig"]
        .as_str()
        .unwrap();
    let mut raw = base64_decode(sig);
    *raw.last_mut().unwrap() ^= 1;
    value["dsseEnvelope"]["signatures"][0]["sig"] = Value::String(base64_encode(&raw));
    let forged = serde_json::to_vec(&value).unwrap();
    assert!(
        verify_bundle(
            &forged,
            Artifact::from_digest(subject).unwrap(),
            &root,
            &requirement
        )
        .is_err()
    );
    // Truncated and garbage blobs fail without panicking.
    for broken in [
        &bundle[..bundle.len() / 2],
        b"",
        b"\x00\xff not a bundle at all",
    ] {
        let err = verify_bundle(
            broken,
            Artifact::from_digest(subject).unwrap(),
            &root,
            &requirement,
        )
        .unwrap_err();
        assert!(matches!(err, BundleError::MalformedBundle(_)), "{err}");
    }
}

fn key_of_conformance_case(vectors: &Path, case: &str) -> PublicKey {
    key(&vectors.join(format!("sigstore-conformance/bundle-verify/{case}/key.pub")))
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// cosign's keyless OCI attestation (cody@soyland.com via GitHub OAuth) with the root its
/// test uses (`TestVerifyImageAttestationsSigstoreBundle`).
#[test]
fn cosign_keyless_attestation_bundle() {
    let vectors = vectors_or_skip!();
    let dir = vectors.join("cosign-bundle/cosign-oci-attestation");
    let meta = json(&dir.join("meta.json"));
    let bundle = read(&dir.join("oci-attestation.sigstore.json"));
    let subject = meta["subject_digest"].as_str().unwrap();
    let artifact = || Artifact::from_digest(subject).unwrap();
    let pgi = TrustedRoot::from_file(&dir.join("trusted_root_pgi.json")).unwrap();

    // issuerRegExp '.*', subjectRegExp '.*': pass.
    let verified = verify_bundle(&bundle, artifact(), &pgi, &regex_identity(".*", ".*")).unwrap();
    let Signer::Certificate(identity) = &verified.signer else {
        panic!("keyless expected");
    };
    assert_eq!(identity.san, vec!["cody@soyland.com".to_owned()]);
    assert_eq!(
        identity.issuer.as_deref(),
        Some("https://github.com/login/oauth")
    );
    assert!(identity.github.is_empty());
    assert_eq!(verified.integrated_time, Some(1_740_770_291));
    let statement = verified.statement.unwrap();
    assert_eq!(statement.statement, meta["statement"]);
    assert_eq!(
        statement.predicate_type,
        "https://cosign.sigstore.dev/attestation/v1"
    );

    // The exact identity, against this root and the public-good root.
    let exact = BundleRequirement::Identity(IdentityRequirement::exact(
        "cody@soyland.com",
        "https://github.com/login/oauth",
    ));
    verify_bundle(&bundle, artifact(), &pgi, &exact).unwrap();
    verify_bundle(&bundle, artifact(), &public_good(&vectors), &exact).unwrap();

    // subjectRegExp 'wrong': fail.
    let err = verify_bundle(&bundle, artifact(), &pgi, &regex_identity("wrong", ".*")).unwrap_err();
    assert!(
        matches!(
            err,
            BundleError::Identity(IdentityError::SubjectMismatch { .. })
        ),
        "{err}"
    );
    // A wrong SAN and a wrong issuer: fail.
    for (subject, issuer) in [
        ("wrong@example.com", "https://github.com/login/oauth"),
        ("cody@soyland.com", "https://accounts.google.com"),
    ] {
        let requirement = BundleRequirement::Identity(IdentityRequirement::exact(subject, issuer));
        assert!(matches!(
            verify_bundle(&bundle, artifact(), &pgi, &requirement),
            Err(BundleError::Identity(_))
        ));
    }
    // Another image: the statement does not name it.
    let other = format!("sha256:{}", "1".repeat(64));
    let err = verify_bundle(
        &bundle,
        Artifact::from_digest(&other).unwrap(),
        &pgi,
        &regex_identity(".*", ".*"),
    )
    .unwrap_err();
    assert!(matches!(err, BundleError::ArtifactMismatch(_)), "{err}");
    // A root of another Sigstore instance (the conformance "wrong instance" staging-like
    // roots): the certificate does not chain.
    let other_root = TrustedRoot::from_file(&vectors.join(
        "sigstore-conformance/bundle-verify/intoto-with-custom-trust-root/trusted_root.json",
    ))
    .unwrap();
    assert!(
        verify_bundle(
            &bundle,
            artifact(),
            &other_root,
            &regex_identity(".*", ".*")
        )
        .is_err()
    );
}

/// sigstore-rs `bundle_v03.json`: cosign v3 keyless image signature from GitHub Actions
/// (kubewarden-controller v1.34.0), with Rekor entry and a public-good TSA timestamp.
#[test]
fn github_actions_keyless_bundle_from_sigstore_rs() {
    let vectors = vectors_or_skip!();
    let dir = vectors.join("cosign-bundle/sigstore-rs-bundle-v03");
    let meta = json(&dir.join("meta.json"));
    let bundle = read(&dir.join("bundle_v03.json"));
    let subject = meta["subject_digest"].as_str().unwrap();
    let artifact = || Artifact::from_digest(subject).unwrap();
    let root = public_good(&vectors);
    let san = meta["expected_identity"]["san_uri"].as_str().unwrap();
    let issuer = meta["expected_identity"]["issuer"].as_str().unwrap();

    let exact = BundleRequirement::Identity(IdentityRequirement::exact(san, issuer));
    let verified = verify_bundle(&bundle, artifact(), &root, &exact).unwrap();
    let Signer::Certificate(identity) = &verified.signer else {
        panic!("keyless expected");
    };
    assert_eq!(identity.san, vec![san.to_owned()]);
    let cert = &meta["certificate"];
    assert_eq!(
        identity.github,
        GitHubWorkflow {
            trigger: identity.github.trigger.clone(),
            sha: cert["github_workflow_sha"].as_str().map(str::to_owned),
            name: identity.github.name.clone(),
            repository: cert["github_repository"].as_str().map(str::to_owned),
            git_ref: cert["github_workflow_ref"].as_str().map(str::to_owned),
        }
    );
    assert_eq!(
        identity.ci.source_repository_ref.as_deref(),
        Some("refs/tags/v1.34.0")
    );
    assert_eq!(verified.integrated_time, Some(1_775_719_409));
    assert!(
        verified.timestamps.len() >= 2,
        "Rekor time and TSA time: {:?}",
        verified.timestamps
    );
    assert_eq!(
        verified.statement.unwrap().predicate_type,
        "https://sigstore.dev/cosign/sign/v1"
    );
    // With the embedded root as well.
    verify_bundle(
        &bundle,
        artifact(),
        &TrustedRoot::public_good().unwrap(),
        &exact,
    )
    .unwrap();

    // Kyverno-style: subject regexp on the workflow, issuer exact, GitHub extensions.
    let kyverno = BundleRequirement::Identity(IdentityRequirement {
        subject: Matcher::regex(
            "subject",
            r"^https://github\.com/kubewarden/kubewarden-controller/\.github/workflows/release\.yml@refs/tags/v",
        )
        .unwrap(),
        issuer: Matcher::Exact(issuer.to_owned()),
        github: GitHubWorkflow {
            repository: Some("kubewarden/kubewarden-controller".into()),
            git_ref: Some("refs/tags/v1.34.0".into()),
            ..GitHubWorkflow::default()
        },
    });
    verify_bundle(&bundle, artifact(), &root, &kyverno).unwrap();
    let BundleRequirement::Identity(mut wrong_ref) = kyverno.clone() else {
        unreachable!()
    };
    wrong_ref.github.git_ref = Some("refs/heads/main".into());
    let err = verify_bundle(
        &bundle,
        artifact(),
        &root,
        &BundleRequirement::Identity(wrong_ref),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            BundleError::Identity(IdentityError::ExtensionMismatch { .. })
        ),
        "{err}"
    );

    // Wrong digest (sigstore-rs from_sigstore_bundle::wrong_digest).
    let zero = format!("sha256:{}", "0".repeat(64));
    let err = verify_bundle(
        &bundle,
        Artifact::from_digest(&zero).unwrap(),
        &root,
        &exact,
    )
    .unwrap_err();
    assert!(matches!(err, BundleError::ArtifactMismatch(_)), "{err}");
    // Wrong issuer (checked with sigstore-python).
    let google = BundleRequirement::Identity(IdentityRequirement::exact(
        san,
        "https://accounts.google.com",
    ));
    assert!(matches!(
        verify_bundle(&bundle, artifact(), &root, &google),
        Err(BundleError::Identity(IdentityError::IssuerMismatch { .. }))
    ));
    // Tampered log entry body: kind changed to hashedrekord.
    let mut value: Value = serde_json::from_slice(&bundle).unwrap();
    let body = value["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"]
        .as_str()
        .unwrap();
    let mut decoded: Value = serde_json::from_slice(&base64_decode(body)).unwrap();
    decoded["kind"] = Value::String("hashedrekord".into());
    value["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"] =
        Value::String(base64_encode(&serde_json::to_vec(&decoded).unwrap()));
    let tampered = serde_json::to_vec(&value).unwrap();
    assert!(verify_bundle(&tampered, artifact(), &root, &exact).is_err());
}
