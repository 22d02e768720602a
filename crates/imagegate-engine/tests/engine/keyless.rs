//! Legacy keyless `.sig` layers: the sigstore-rs keyless layer (Fulcio leaf of
//! 2021-10-20 for `flavio@castelli.me`, no OIDC issuer extension, Rekor SET of log
//! c0d23d6a…) pushed with cosign's annotations and verified through keyless attestors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use imagegate_testkit::Registry;
use serde_json::{Value, json};

use crate::{assert_fails_with, check, read, read_text, vectors, verification};

/// The digest the layer's payload signs.
const DIGEST: &str = "sha256:5f481572d088dc4023afb35fced9530ced3d9b03bf7299c6f492163cb9f0452e";
const SUBJECT: &str = "flavio@castelli.me";

struct Layer {
    dir: PathBuf,
    payload: Vec<u8>,
    signature: String,
    certificate: String,
    bundle: Value,
}

fn layer(vectors: &std::path::Path) -> Layer {
    let dir = vectors.join("cosign-legacy/sigstore-rs");
    let keyless = dir.join("keyless-layer");
    Layer {
        payload: read(keyless.join("payload.json")),
        signature: read_text(keyless.join("signature.b64")).trim().to_owned(),
        certificate: read_text(keyless.join("cert.pem")),
        bundle: serde_json::from_slice(&read(keyless.join("rekor-bundle.json"))).unwrap(),
        dir,
    }
}

/// Pushes the layer (with `bundle` as its Rekor bundle) to `repo`; returns the image
/// reference (by digest: the signed image itself is not part of the vector).
fn push(registry: &Registry, repo: &str, layer: &Layer, bundle: &Value) -> String {
    let annotations = BTreeMap::from([
        (
            "dev.cosignproject.cosign/signature".to_owned(),
            layer.signature.clone(),
        ),
        (
            "dev.sigstore.cosign/certificate".to_owned(),
            layer.certificate.clone(),
        ),
        ("dev.sigstore.cosign/bundle".to_owned(), bundle.to_string()),
    ]);
    registry
        .pusher()
        .push_signature_manifest(repo, DIGEST, &layer.payload, annotations);
    format!("{}/{repo}@{DIGEST}", registry.host())
}

/// `count` self-signed CA certificates with one name and one key (PEM, concatenated):
/// the chain annotation of issue 8 item 7's attack.
fn same_name_cas(count: usize) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    (0..count)
        .map(|i| {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "sigstore");
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, "sigstore.dev");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.serial_number = Some(rcgen::SerialNumber::from(i as u64 + 1));
            params.self_signed(&key).unwrap().pem()
        })
        .collect()
}

/// A keyless attestor with `ctlog: {ignoreSCT: true}` added: the 2021 certificate
/// pre-dates Fulcio's embedded SCTs, so Kyverno too needs ignoreSCT to accept it.
fn keyless(mut attestor: Value) -> imagegate_policy::model::ImageVerification {
    attestor["ctlog"] = json!({"ignoreSCT": true});
    keyless_as_given(attestor)
}

/// A keyless attestor exactly as given (the SCT is required unless it says otherwise).
fn keyless_as_given(attestor: Value) -> imagegate_policy::model::ImageVerification {
    verification(json!({
        "imageReferences": ["*"],
        "attestors": [{"entries": [{"keyless": attestor}]}],
    }))
}

#[tokio::test]
async fn keyless_layer_verifies_with_the_embedded_root_and_with_policy_roots() {
    let Some(vectors) = vectors() else { return };
    let registry = Registry::start();
    let layer = layer(&vectors);
    let image = push(&registry, "keyless/app", &layer, &layer.bundle);

    // The embedded public-good root holds the 2021 Fulcio root and the Rekor v1 key.
    // No issuer requirement: the certificate has no issuer extension (issuer ""), and
    // cosign/Kyverno check the issuer only when one is given.
    check(&image, &keyless(json!({"subject": SUBJECT})), None)
        .await
        .unwrap();
    check(
        &image,
        &keyless(json!({"subjectRegExp": "castelli\\.me$", "issuerRegExp": ".*"})),
        None,
    )
    .await
    .unwrap();
    // The policy's own roots and Rekor key, as the sigstore-rs tests trust them.
    check(
        &image,
        &keyless(json!({
            "subject": SUBJECT,
            "roots": read_text(layer.dir.join("trust/fulcio-root-1.pem")),
            "rekor": {"pubkey": read_text(layer.dir.join("trust/rekor.pub"))},
        })),
        None,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn keyless_layer_without_an_embedded_sct_needs_ignore_sct() {
    let Some(vectors) = vectors() else { return };
    let registry = Registry::start();
    let layer = layer(&vectors);
    let image = push(&registry, "keyless/sct", &layer, &layer.bundle);
    // Everything else verifies (SET, chain, signature, identity); the SCT is missing.
    assert_fails_with(
        check(&image, &keyless_as_given(json!({"subject": SUBJECT})), None).await,
        ".attestors[0].entries[0].keyless: invalid signature: certificate has no embedded SCT",
    );
    // ctlog.pubkey replaces the trusted root's CT keys; still no SCT to check.
    let ct_key = read_text(vectors.join("cosign-legacy/sigstore-rs/key-layer/cosign.pub"));
    assert_fails_with(
        check(
            &image,
            &keyless_as_given(json!({"subject": SUBJECT, "ctlog": {"pubkey": ct_key}})),
            None,
        )
        .await,
        "no embedded SCT",
    );
    check(
        &image,
        &keyless_as_given(json!({"subject": SUBJECT, "ctlog": {"ignoreSCT": true}})),
        None,
    )
    .await
    .unwrap();
    // A malformed ctlog.pubkey is a configuration error.
    assert_fails_with(
        check(
            &image,
            &keyless_as_given(json!({"subject": SUBJECT, "ctlog": {"pubkey": "junk"}})),
            None,
        )
        .await,
        "ctlog.pubkey",
    );
}

#[tokio::test]
async fn keyless_layer_refuses_the_wrong_identity_issuer_regex_and_extensions() {
    let Some(vectors) = vectors() else { return };
    let registry = Registry::start();
    let layer = layer(&vectors);
    let image = push(&registry, "keyless/identity", &layer, &layer.bundle);
    let cases = [
        (
            json!({"subject": "someone@example.com"}),
            "certificate identity mismatch",
        ),
        (
            json!({"subject": SUBJECT, "issuer": "https://accounts.google.com"}),
            "OIDC issuer mismatch",
        ),
        (
            json!({"subjectRegExp": "^flavio@example\\.com$"}),
            "certificate identity mismatch",
        ),
        (
            json!({"subject": SUBJECT, "issuerRegExp": "^https://"}),
            "OIDC issuer mismatch",
        ),
        (
            json!({"subject": SUBJECT, "additionalExtensions": {"githubWorkflowRepository": "o/r"}}),
            "githubWorkflowRepository mismatch",
        ),
    ];
    for (attestor, expected) in cases {
        let outcome = check(&image, &keyless(attestor.clone()), None).await;
        assert_fails_with(outcome, expected);
    }
    // Paths are Kyverno's.
    let failure = check(&image, &keyless(json!({"subject": "x"})), None)
        .await
        .unwrap_err();
    assert!(
        failure
            .to_string()
            .starts_with(".attestors[0].entries[0].keyless: invalid signature"),
        "{failure}"
    );
    assert_eq!(failure.cause(), imagegate_engine::Cause::InvalidSignature);
}

#[tokio::test]
async fn keyless_layer_refuses_a_wrong_root_a_tampered_set_and_an_expired_certificate() {
    let Some(vectors) = vectors() else { return };
    let registry = Registry::start();
    let layer = layer(&vectors);

    // fulcio-root-2 did not issue the leaf.
    let image = push(&registry, "keyless/root", &layer, &layer.bundle);
    let wrong_root = keyless(json!({
        "subject": SUBJECT,
        "roots": read_text(layer.dir.join("trust/fulcio-root-2.pem")),
    }));
    assert_fails_with(check(&image, &wrong_root, None).await, "trusted root");

    // A SET that is not the log's signature.
    let mut tampered = layer.bundle.clone();
    let set = tampered["SignedEntryTimestamp"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(&set)
        .unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    tampered["SignedEntryTimestamp"] =
        json!(base64::engine::general_purpose::STANDARD.encode(bytes));
    let image = push(&registry, "keyless/set", &layer, &tampered);
    assert_fails_with(
        check(&image, &keyless(json!({"subject": SUBJECT})), None).await,
        "invalid Rekor signed entry timestamp",
    );

    // Moving the integrated time inside/outside the certificate's validity breaks the
    // SET: the time is only believed when the log signed it.
    let mut moved = layer.bundle.clone();
    moved["Payload"]["integratedTime"] = json!(1_634_714_717 + 3600);
    let image = push(&registry, "keyless/time", &layer, &moved);
    assert_fails_with(
        check(&image, &keyless(json!({"subject": SUBJECT})), None).await,
        "invalid Rekor signed entry timestamp",
    );

    // Without the log the certificate is checked now: it expired in 2021.
    let image = push(&registry, "keyless/expired", &layer, &layer.bundle);
    assert_fails_with(
        check(
            &image,
            &keyless(json!({"subject": SUBJECT, "rekor": {"ignoreTlog": true}})),
            None,
        )
        .await,
        "is not valid at",
    );

    // A Rekor key that did not sign the SET.
    let foreign = read_text(vectors.join("cosign-legacy/sigstore-rs/key-layer/cosign.pub"));
    assert_fails_with(
        check(
            &image,
            &keyless(json!({"subject": SUBJECT, "rekor": {"pubkey": foreign}})),
            None,
        )
        .await,
        "unknown Rekor log id",
    );
}

#[tokio::test]
async fn unsigned_and_key_signed_layers_are_not_keyless_evidence() {
    let Some(vectors) = vectors() else { return };
    let registry = Registry::start();
    let image = format!("{}/keyless/none@{DIGEST}", registry.host());
    registry.pusher().push_blob("keyless/none", b"x");
    assert_fails_with(
        check(&image, &keyless(json!({"subject": SUBJECT})), None).await,
        "no signatures found",
    );
    // The key-signed layer of the same vectors carries no certificate.
    let dir = vectors.join("cosign-legacy/sigstore-rs/key-layer");
    let payload = read(dir.join("payload.json"));
    let digest = "sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b";
    registry.pusher().push_signature_manifest(
        "keyless/keyed",
        digest,
        &payload,
        BTreeMap::from([(
            "dev.cosignproject.cosign/signature".to_owned(),
            read_text(dir.join("signature.b64")).trim().to_owned(),
        )]),
    );
    let image = format!("{}/keyless/keyed@{digest}", registry.host());
    assert_fails_with(
        check(&image, &keyless(json!({"subject": SUBJECT})), None).await,
        "has no certificate",
    );
}

/// A Fulcio-like PKI made here: a CA, a CT log, and a leaf for `dev@example.com` whose
/// embedded SCT the log signed over the precertificate (valid 2020–2100, so it is
/// verified without the transparency log at the current time).
struct SctPki {
    ca_pem: String,
    log: imagegate_testkit::CosignKey,
    leaf_pem: String,
    leaf_key: imagegate_testkit::CosignKey,
}

fn sct_pki() -> SctPki {
    use imagegate_sigstore::sct::{Sct, encode_sct_list_extension, precertificate_tbs};
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, CustomExtension, DnType,
        ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
        date_time_ymd,
    };
    let sha256 = |bytes: &[u8]| -> [u8; 32] {
        let hex = imagegate_oci::sha256_digest(bytes);
        let hex = hex.trim_start_matches("sha256:");
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    };
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "test-fulcio");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    ca.not_before = date_time_ymd(2020, 1, 1);
    ca.not_after = date_time_ymd(2100, 1, 1);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let ca_spki = imagegate_sigstore::PublicKey::from_pem(&ca.key().public_key_pem()).unwrap()[0]
        .spki_der()
        .to_vec();
    let log = imagegate_testkit::CosignKey::generate();
    let leaf_key = imagegate_testkit::CosignKey::generate();
    let leaf_pair = KeyPair::try_from(leaf_key.private_pkcs8_der().as_slice()).unwrap();
    let params = |sct: &Sct| {
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.serial_number = Some(SerialNumber::from_slice(&[0x05, 0x17]));
        p.subject_alt_names = vec![SanType::Rfc822Name("dev@example.com".try_into().unwrap())];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        p.not_before = date_time_ymd(2020, 1, 1);
        p.not_after = date_time_ymd(2100, 1, 1);
        p.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2],
            encode_sct_list_extension(std::slice::from_ref(sct)),
        )];
        p
    };
    let mut sct = Sct {
        version: 0,
        log_id: sha256(&log.public_der()),
        timestamp_ms: 1_735_689_600_000,
        extensions: Vec::new(),
        hash_algorithm: 4,
        signature_algorithm: 3,
        signature: vec![0; 70],
    };
    let placeholder = params(&sct).signed_by(&leaf_pair, &ca).unwrap();
    let tbs = precertificate_tbs(placeholder.der()).unwrap();
    sct.signature = log.sign(&sct.signed_data(&sha256(&ca_spki), &tbs));
    let leaf = params(&sct).signed_by(&leaf_pair, &ca).unwrap();
    SctPki {
        ca_pem: ca.pem(),
        log,
        leaf_pem: leaf.pem(),
        leaf_key,
    }
}

#[tokio::test]
async fn keyless_layer_with_an_embedded_sct_verifies_with_the_policy_ct_key() {
    let registry = Registry::start();
    let pki = sct_pki();
    let reference = format!("{}/keyless/sct-ok", registry.host());
    let payload = imagegate_testkit::simple_signing_payload(&reference, DIGEST, &BTreeMap::new());
    let signature = base64::engine::general_purpose::STANDARD.encode(pki.leaf_key.sign(&payload));
    registry.pusher().push_signature_manifest(
        "keyless/sct-ok",
        DIGEST,
        &payload,
        BTreeMap::from([
            ("dev.cosignproject.cosign/signature".to_owned(), signature),
            (
                "dev.sigstore.cosign/certificate".to_owned(),
                pki.leaf_pem.clone(),
            ),
        ]),
    );
    let image = format!("{reference}@{DIGEST}");
    let attestor = |ctlog: Value| {
        keyless_as_given(json!({
            "subject": "dev@example.com",
            "roots": pki.ca_pem,
            "rekor": {"ignoreTlog": true},
            "ctlog": ctlog,
        }))
    };
    check(
        &image,
        &attestor(json!({"pubkey": pki.log.public_pem()})),
        None,
    )
    .await
    .unwrap();
    // The trusted root's CT logs did not sign it.
    assert_fails_with(
        check(&image, &attestor(json!({})), None).await,
        "embedded SCT is from an unknown CT log",
    );
    let other = imagegate_testkit::CosignKey::generate();
    assert_fails_with(
        check(
            &image,
            &attestor(json!({"pubkey": other.public_pem()})),
            None,
        )
        .await,
        "embedded SCT is from an unknown CT log",
    );
    check(&image, &attestor(json!({"ignoreSCT": true})), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_chain_annotation_of_same_name_cas_is_refused_at_once() {
    // Issue 8 item 7: 24 CA certificates with one name and one key in
    // `dev.sigstore.cosign/chain` made the path search try ~24^4 signature checks
    // (19 s, synchronously on an async worker, so the review's deadline never fired).
    let Some(vectors) = vectors() else { return };
    let registry = Registry::start();
    let layer = layer(&vectors);
    let annotations = BTreeMap::from([
        (
            "dev.cosignproject.cosign/signature".to_owned(),
            layer.signature.clone(),
        ),
        (
            "dev.sigstore.cosign/certificate".to_owned(),
            layer.certificate.clone(),
        ),
        ("dev.sigstore.cosign/chain".to_owned(), same_name_cas(24)),
        (
            "dev.sigstore.cosign/bundle".to_owned(),
            layer.bundle.to_string(),
        ),
    ]);
    registry
        .pusher()
        .push_signature_manifest("keyless/chain", DIGEST, &layer.payload, annotations);
    let image = format!("{}/keyless/chain@{DIGEST}", registry.host());
    let attestor = keyless(json!({
        "subject": SUBJECT,
        "roots": read_text(layer.dir.join("trust/fulcio-root-1.pem")),
        "rekor": {"pubkey": read_text(layer.dir.join("trust/rekor.pub"))},
    }));
    // A hang guard, not a speed target.
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        check(&image, &attestor, None),
    )
    .await
    .unwrap_or_else(|_| panic!("not answered within 60 s"));
    assert_fails_with(outcome, "more than the 10 accepted");
}
