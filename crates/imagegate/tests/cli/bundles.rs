//! `imagegate verify` with keyless signers and cosign v3 Sigstore bundles, against a real
//! registry (docker-registry 2.8: no referrers API, so bundles are found through the
//! `sha256-<hex>` fallback tag; the API path is tested in imagegate-engine's tests with
//! a stub).

use std::collections::BTreeMap;

use imagegate_testkit::oci::{Descriptor, OCI_MANIFEST};
use imagegate_testkit::{Registry, vectors_dir};

use crate::util::imagegate;

/// The digest the sigstore-rs keyless layer signs.
const KEYLESS_DIGEST: &str =
    "sha256:5f481572d088dc4023afb35fced9530ced3d9b03bf7299c6f492163cb9f0452e";
/// The tobby-fetch bundle's subject (an image index that was not captured).
const TOBBY_SUBJECT: &str =
    "sha256:d7d5640c741c60b47fa4b5530daa20a6469b55754a89dd42adbadadb59f9093c";

fn vectors() -> Option<std::path::PathBuf> {
    let dir = vectors_dir();
    if dir.is_none() {
        eprintln!("skipped: no shared vectors");
    }
    dir
}

fn read(path: std::path::PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text(path: std::path::PathBuf) -> String {
    String::from_utf8(read(path)).unwrap()
}

/// Pushes the sigstore-rs keyless layer as a `.sig` manifest with cosign's annotations.
fn push_keyless(registry: &Registry, repo: &str, vectors: &std::path::Path) -> String {
    let dir = vectors.join("cosign-legacy/sigstore-rs/keyless-layer");
    let annotations = BTreeMap::from([
        (
            "dev.cosignproject.cosign/signature".to_owned(),
            text(dir.join("signature.b64")).trim().to_owned(),
        ),
        (
            "dev.sigstore.cosign/certificate".to_owned(),
            text(dir.join("cert.pem")),
        ),
        (
            "dev.sigstore.cosign/bundle".to_owned(),
            text(dir.join("rekor-bundle.json")).trim().to_owned(),
        ),
    ]);
    registry.pusher().push_signature_manifest(
        repo,
        KEYLESS_DIGEST,
        &read(dir.join("payload.json")),
        annotations,
    );
    format!("{}/{repo}@{KEYLESS_DIGEST}", registry.host())
}

/// Pushes tobby-fetch's captured cosign v3 objects to `repo`.
fn push_tobby(registry: &Registry, repo: &str, vectors: &std::path::Path) {
    let dir = vectors.join("cosign-bundle/tobby-fetch-cosign-v3.0.4");
    let pusher = registry.pusher();
    pusher.push_blob(repo, b"{}");
    pusher.push_blob(repo, &read(dir.join("bundle-sigstore.json")));
    pusher.push_manifest_bytes(repo, &read(dir.join("bundle-referring-manifest.json")));
    pusher.push_index_bytes(
        repo,
        TOBBY_SUBJECT,
        &read(dir.join("bundle-referrers-index.json")),
    );
}

#[test]
fn keyless_legacy_signature_verifies_with_the_certificate_identity() {
    let Some(vectors) = vectors() else { return };
    let registry = Registry::start();
    let image = push_keyless(&registry, "keyless/app", &vectors);
    // The 2021 certificate has no issuer extension: its issuer is "".
    let run = imagegate(
        &[
            "verify",
            "--certificate-identity",
            "flavio@castelli.me",
            "--certificate-oidc-issuer-regexp",
            ".*",
            "--insecure-ignore-sct",
            &image,
        ],
        &[],
    );
    run.assert_code(0);
    assert!(
        run.stdout
            .starts_with(&format!("{}/keyless/app@{KEYLESS_DIGEST}", registry.host()))
    );
    assert!(
        run.stdout.contains("docker-manifest-digest"),
        "{}",
        run.stdout
    );

    imagegate(
        &[
            "verify",
            "--certificate-identity-regexp",
            "@castelli\\.me$",
            "--certificate-oidc-issuer",
            "",
            "--insecure-ignore-sct",
            &image,
        ],
        &[],
    )
    .assert_code(0);
    // The 2021 certificate pre-dates Fulcio's embedded SCTs: cosign needs
    // --insecure-ignore-sct for it too.
    imagegate(
        &[
            "verify",
            "--certificate-identity",
            "flavio@castelli.me",
            "--certificate-oidc-issuer-regexp",
            ".*",
            &image,
        ],
        &[],
    )
    .assert_code(1)
    .assert_stderr_contains("certificate has no embedded SCT");
}

#[test]
fn keyless_legacy_signature_refuses_other_identities_and_issuers() {
    let Some(vectors) = vectors() else { return };
    let registry = Registry::start();
    let image = push_keyless(&registry, "keyless/other", &vectors);
    let cases: [(&[&str], &str); 3] = [
        (
            &[
                "--certificate-identity",
                "someone@example.com",
                "--certificate-oidc-issuer-regexp",
                ".*",
            ],
            "certificate identity mismatch",
        ),
        (
            &[
                "--certificate-identity",
                "flavio@castelli.me",
                "--certificate-oidc-issuer",
                "https://accounts.google.com",
            ],
            "OIDC issuer mismatch",
        ),
        (
            &[
                "--certificate-identity-regexp",
                "^flavio@example",
                "--certificate-oidc-issuer-regexp",
                ".*",
            ],
            "certificate identity mismatch",
        ),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["verify", "--insecure-ignore-sct"];
        args.extend_from_slice(flags);
        args.push(&image);
        imagegate(&args, &[])
            .assert_code(1)
            .assert_stderr_contains(expected);
    }
    // Without the log, the certificate is checked now, and it expired in 2021.
    imagegate(
        &[
            "verify",
            "--certificate-identity",
            "flavio@castelli.me",
            "--certificate-oidc-issuer-regexp",
            ".*",
            "--insecure-ignore-tlog",
            &image,
        ],
        &[],
    )
    .assert_code(1)
    .assert_stderr_contains("is not valid at");
    // An identity without an issuer requirement is a usage error, as in cosign.
    imagegate(
        &[
            "verify",
            "--certificate-identity",
            "flavio@castelli.me",
            &image,
        ],
        &[],
    )
    .assert_code(2);
}

#[test]
fn cosign_v3_bundle_verifies_through_the_fallback_tag_and_from_a_signature_repository() {
    let Some(vectors) = vectors() else { return };
    let registry = Registry::start();
    push_tobby(&registry, "lab/subject", &vectors);
    push_tobby(&registry, "zone-b/relocated", &vectors);
    let key = vectors.join("cosign-bundle/tobby-fetch-cosign-v3.0.4/bundle-cosign.pub");
    let key = key.to_str().unwrap();
    let image = format!("{}/lab/subject@{TOBBY_SUBJECT}", registry.host());
    let run = imagegate(&["verify", "--key", key, &image], &[]);
    run.assert_code(0);
    assert!(run.stdout.contains("dsseEnvelope"), "{}", run.stdout);

    let relocated = format!("{}/zone-b/relocated", registry.host());
    let elsewhere = format!("{}/nothing/here@{TOBBY_SUBJECT}", registry.host());
    imagegate(
        &[
            "verify",
            "--key",
            key,
            "--repository",
            &relocated,
            &elsewhere,
        ],
        &[],
    )
    .assert_code(0);
    imagegate(&["verify", "--key", key, &elsewhere], &[])
        .assert_code(1)
        .assert_stderr_contains("no signatures found");

    let foreign = vectors.join("cosign-legacy/sigstore-rs/key-layer/cosign.pub");
    imagegate(&["verify", "--key", foreign.to_str().unwrap(), &image], &[])
        .assert_code(1)
        .assert_stderr_contains("invalid signature");
}

#[test]
fn tampered_cosign_v3_bundle_fails() {
    let Some(vectors) = vectors() else { return };
    let registry = Registry::start();
    let dir = vectors.join("cosign-bundle/tobby-fetch-cosign-v3.0.4");
    let mut bundle: serde_json::Value =
        serde_json::from_slice(&read(dir.join("bundle-sigstore.json"))).unwrap();
    // Another statement (a different subject name) under the original signature.
    let payload = bundle["dsseEnvelope"]["payload"]
        .as_str()
        .unwrap()
        .to_owned();
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let statement = String::from_utf8(engine.decode(&payload).unwrap()).unwrap();
    let altered = statement.replace("\"annotations\":{}", "\"annotations\":{\"x\":\"y\"}");
    assert_ne!(altered, statement);
    bundle["dsseEnvelope"]["payload"] = serde_json::json!(engine.encode(altered));
    let pusher = registry.pusher();
    let subject = Descriptor {
        digest: TOBBY_SUBJECT.to_owned(),
        size: 928,
        ..Descriptor::of(imagegate_testkit::oci::OCI_INDEX, b"")
    };
    let referrer = pusher.push_bundle_referrer(
        "lab/tampered",
        &subject,
        &serde_json::to_vec(&bundle).unwrap(),
        "https://sigstore.dev/cosign/sign/v1",
    );
    assert_eq!(referrer.media_type, OCI_MANIFEST);
    pusher.push_referrers_index("lab/tampered", TOBBY_SUBJECT, &[referrer]);
    let image = format!("{}/lab/tampered@{TOBBY_SUBJECT}", registry.host());
    imagegate(
        &[
            "verify",
            "--key",
            dir.join("bundle-cosign.pub").to_str().unwrap(),
            &image,
        ],
        &[],
    )
    .assert_code(1)
    .assert_stderr_contains("invalid signature");
}

#[test]
fn keyless_attestation_bundle_verifies_with_type_and_trusted_root() {
    let Some(vectors) = vectors() else { return };
    let dir = vectors.join("cosign-bundle/cosign-oci-attestation");
    let digest = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4";
    let registry = Registry::start();
    let pusher = registry.pusher();
    let subject = Descriptor {
        digest: digest.to_owned(),
        size: 0,
        ..Descriptor::of(OCI_MANIFEST, b"")
    };
    let referrer = pusher.push_bundle_referrer(
        "att/repo",
        &subject,
        &read(dir.join("oci-attestation.sigstore.json")),
        "https://cosign.sigstore.dev/attestation/v1",
    );
    pusher.push_referrers_index("att/repo", digest, &[referrer]);
    let image = format!("{}/att/repo@{digest}", registry.host());
    let root = dir.join("trusted_root_pgi.json");
    let verify = |identity: &str, predicate: &str| {
        imagegate(
            &[
                "verify",
                "--certificate-identity",
                identity,
                "--certificate-oidc-issuer",
                "https://github.com/login/oauth",
                "--trusted-root",
                root.to_str().unwrap(),
                "--type",
                predicate,
                &image,
            ],
            &[],
        )
    };
    let run = verify("cody@soyland.com", "custom");
    run.assert_code(0);
    assert!(run.stdout.contains("payloadType"), "{}", run.stdout);
    verify("wrong@example.com", "custom")
        .assert_code(1)
        .assert_stderr_contains("certificate identity mismatch");
    verify("cody@soyland.com", "slsaprovenance")
        .assert_code(1)
        .assert_stderr_contains("no matching attestations");
}
