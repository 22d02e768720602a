//! `imagegate verify --notary-cert`: Notation signatures made by the test kit's signer,
//! pushed to a real docker-registry with the referrers tag schema.

use std::sync::Arc;

use imagegate_testkit::Registry;
use imagegate_testkit::notation::{self, COSE, JWS, KeySpec, NotationCa, SignOptions, Validity};
use imagegate_testkit::oci::Descriptor;

use crate::util::{imagegate, write};

const SBOM_TYPE: &str = "application/vnd.cyclonedx+json";

/// Pushes `repo:v1`; its tagged reference and manifest descriptor.
fn push_image(registry: &Registry, repo: &str) -> (String, Descriptor) {
    let pusher = registry.pusher();
    let digest = pusher.push_image(repo, "v1");
    let (media_type, bytes) = pusher.get_manifest(repo, &digest).expect("pushed image");
    (
        format!("{}/{repo}:v1", registry.host()),
        Descriptor::of(&media_type, &bytes),
    )
}

#[test]
fn notation_signed_images_verify_and_print_digest_and_signer() {
    let registry = Registry::start();
    let pusher = registry.pusher();
    let ca = NotationCa::new("CLI Test Root", KeySpec::Rsa2048);
    let (rsa, rsa_subject) = push_image(&registry, "app/rsa");
    let signer = ca.signer("rsa-signer", KeySpec::Rsa2048, Validity::current());
    let envelope = signer.sign_jws(&rsa_subject, &SignOptions::default());
    notation::push_signature(&pusher, "app/rsa", &rsa_subject, &envelope, JWS);
    let (ec, ec_subject) = push_image(&registry, "app/ec");
    let signer = ca.signer("ec-signer", KeySpec::EcP384, Validity::current());
    let envelope = signer.sign_cose(&ec_subject, &SignOptions::default());
    notation::push_signature(&pusher, "app/ec", &ec_subject, &envelope, COSE);

    let dir = tempfile::tempdir().unwrap();
    let cert = write(dir.path(), "ca.pem", &ca.pem());
    let run = imagegate(&["verify", "--notary-cert", &cert, &rsa, &ec], &[]);
    run.assert_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert_eq!(
        lines[0],
        format!("{}/app/rsa@{}", registry.host(), rsa_subject.digest)
    );
    let signatures: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert!(
        signatures[0]["signer"]
            .as_str()
            .unwrap()
            .contains("CN=rsa-signer"),
        "{signatures}"
    );
    assert_eq!(signatures[0]["envelope"], "JWS");
    assert_eq!(signatures[0]["revocation"], "not checked");
    assert_eq!(
        lines[2],
        format!("{}/app/ec@{}", registry.host(), ec_subject.digest)
    );
    let signatures: serde_json::Value = serde_json::from_str(lines[3]).unwrap();
    assert_eq!(signatures[0]["envelope"], "COSE");
    assert!(
        run.stderr
            .contains("Revocation of the certificates was not checked")
    );

    // The CA as DER works the same.
    let der = dir.path().join("ca.der");
    std::fs::write(&der, ca.der()).unwrap();
    imagegate(
        &["verify", "--notary-cert", der.to_str().unwrap(), &rsa],
        &[],
    )
    .assert_code(0);
}

#[test]
fn unsigned_untrusted_and_expired_fail_and_bad_input_is_a_usage_error() {
    let registry = Registry::start();
    let pusher = registry.pusher();
    let ca = NotationCa::new("CLI Test Root", KeySpec::EcP256);
    let other = NotationCa::new("Other Root", KeySpec::EcP256);
    let dir = tempfile::tempdir().unwrap();
    let cert = write(dir.path(), "ca.pem", &ca.pem());

    let (unsigned, _) = push_image(&registry, "app/unsigned");
    imagegate(&["verify", "--notary-cert", &cert, &unsigned], &[])
        .assert_code(1)
        .assert_stderr_contains("no signatures found");

    let (untrusted, subject) = push_image(&registry, "app/untrusted");
    let envelope = other
        .signer("other", KeySpec::EcP256, Validity::current())
        .sign_jws(&subject, &SignOptions::default());
    notation::push_signature(&pusher, "app/untrusted", &subject, &envelope, JWS);
    imagegate(&["verify", "--notary-cert", &cert, &untrusted], &[])
        .assert_code(1)
        .assert_stderr_contains("invalid signature: authenticity check failed");

    // An expired leaf with a timestamp from a trusted TSA: valid with the TSA only.
    let tsa_root = NotationCa::new("TSA Root", KeySpec::EcP256);
    let (stamped, subject) = push_image(&registry, "app/stamped");
    let options = SignOptions {
        signing_time: Some(Validity::EXPIRED_INSIDE),
        timestamp: Some((Arc::new(tsa_root.tsa("TSA")), Validity::EXPIRED_INSIDE)),
        ..SignOptions::default()
    };
    let envelope = ca
        .signer("expired", KeySpec::EcP256, Validity::expired())
        .sign_cose(&subject, &options);
    notation::push_signature(&pusher, "app/stamped", &subject, &envelope, COSE);
    imagegate(&["verify", "--notary-cert", &cert, &stamped], &[])
        .assert_code(1)
        .assert_stderr_contains("authenticTimestamp check failed");
    let tsa = write(dir.path(), "tsa.pem", &tsa_root.pem());
    imagegate(
        &[
            "verify",
            "--notary-cert",
            &cert,
            "--notary-tsa-cert",
            &tsa,
            &stamped,
        ],
        &[],
    )
    .assert_code(0);

    let garbage = write(dir.path(), "garbage.pem", "not a certificate");
    imagegate(&["verify", "--notary-cert", &garbage, &unsigned], &[])
        .assert_code(2)
        .assert_stderr_contains("--notary-cert");
    imagegate(
        &["verify", "--notary-cert", &cert, "--key", &cert, &unsigned],
        &[],
    )
    .assert_code(2);
    imagegate(&["verify", "--notary-tsa-cert", &tsa, &unsigned], &[]).assert_code(2);
}

#[test]
fn notation_signed_sbom_referrer_verifies_with_type() {
    let registry = Registry::start();
    let pusher = registry.pusher();
    let ca = NotationCa::new("CLI Test Root", KeySpec::EcP256);
    let signer = ca.signer("sbom-signer", KeySpec::EcP256, Validity::current());
    let (image, subject) = push_image(&registry, "app/sbom");
    let sbom = br#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#;
    let artifact =
        notation::push_artifact(&pusher, "app/sbom", &subject, SBOM_TYPE, sbom, SBOM_TYPE);
    let dir = tempfile::tempdir().unwrap();
    let cert = write(dir.path(), "ca.pem", &ca.pem());
    imagegate(
        &[
            "verify",
            "--notary-cert",
            &cert,
            "--type",
            SBOM_TYPE,
            &image,
        ],
        &[],
    )
    .assert_code(1)
    .assert_stderr_contains("no signatures found");
    let envelope = signer.sign_jws(&artifact, &SignOptions::default());
    notation::push_signature(&pusher, "app/sbom", &artifact, &envelope, JWS);
    let run = imagegate(
        &[
            "verify",
            "--notary-cert",
            &cert,
            "--type",
            SBOM_TYPE,
            &image,
        ],
        &[],
    );
    run.assert_code(0);
    let statements: serde_json::Value =
        serde_json::from_str(run.stdout.lines().nth(1).unwrap()).unwrap();
    assert_eq!(statements[0]["type"], SBOM_TYPE);
    assert_eq!(statements[0]["digest"], artifact.digest.as_str());
    assert_eq!(statements[0]["predicate"]["bomFormat"], "CycloneDX");
}
