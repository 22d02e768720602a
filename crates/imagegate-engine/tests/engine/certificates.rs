//! Kyverno `certificates` attestors: a signing certificate's key verifies the image
//! signature; with `certChain` the certificate must chain to it.

use std::collections::BTreeMap;

use imagegate_testkit::{CosignKey, Registry};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use serde_json::json;

use crate::{assert_fails_with, check, verification};

/// A code-signing certificate for `key`, issued by a fresh CA; returns (leaf, CA) PEM.
fn certificate_for(key: &CosignKey) -> (String, String) {
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "imagegate test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut leaf_params = CertificateParams::default();
    leaf_params.subject_alt_names = vec![SanType::Rfc822Name(
        "signer@example.com".try_into().unwrap(),
    )];
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    let leaf_key = KeyPair::try_from(key.private_pkcs8_der().as_slice()).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
    (leaf.pem(), ca.pem())
}

fn certificates_entry(
    certificates: serde_json::Value,
) -> imagegate_policy::model::ImageVerification {
    verification(json!({
        "imageReferences": ["*"],
        "attestors": [{"entries": [{"certificates": certificates}]}],
    }))
}

#[tokio::test]
async fn certificate_key_verifies_and_chain_is_checked() {
    let registry = Registry::start();
    let key = CosignKey::generate();
    let pusher = registry.pusher();
    let digest = pusher.push_image("app/certified", "v1");
    let name = format!("{}/app/certified", registry.host());
    pusher.sign("app/certified", &name, &digest, &key, &BTreeMap::new());
    let image = format!("{name}@{digest}");
    let (leaf, ca) = certificate_for(&key);

    let no_tlog = json!({"ignoreTlog": true});
    check(
        &image,
        &certificates_entry(json!({"cert": leaf, "rekor": no_tlog})),
        None,
    )
    .await
    .unwrap();
    check(
        &image,
        &certificates_entry(json!({"cert": leaf, "certChain": ca, "rekor": no_tlog})),
        None,
    )
    .await
    .unwrap();

    // Another CA's chain does not vouch for this certificate.
    let (_, other_ca) = certificate_for(&CosignKey::generate());
    assert_fails_with(
        check(
            &image,
            &certificates_entry(json!({"cert": leaf, "certChain": other_ca, "rekor": no_tlog})),
            None,
        )
        .await,
        ".attestors[0].entries[0].certificates",
    );
    // A certificate for another key does not verify the signature.
    let (stranger, _) = certificate_for(&CosignKey::generate());
    assert_fails_with(
        check(
            &image,
            &certificates_entry(json!({"cert": stranger, "rekor": no_tlog})),
            None,
        )
        .await,
        "invalid signature",
    );
    // Without ignoreTlog the signature must be in the transparency log.
    assert_fails_with(
        check(&image, &certificates_entry(json!({"cert": leaf})), None).await,
        "transparency log",
    );
    // Garbage is a clear error, not a panic.
    assert_fails_with(
        check(
            &image,
            &certificates_entry(json!({"cert": "not a certificate", "rekor": no_tlog})),
            None,
        )
        .await,
        "certificates",
    );
}
