//! The signing and payload helpers against the cosign vectors and the specs.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use imagegate_testkit::oci::{self, Descriptor, ImageManifest};
use imagegate_testkit::{
    CosignKey, dsse_pae, simple_signing_payload, vectors_dir, write_docker_config,
};

use crate::{manifest, pem_to_der, verify};

#[test]
fn simple_signing_payload_and_manifest_match_cosign_vector() {
    let Some(vectors) = vectors_dir() else {
        println!("skipped: no shared vectors directory");
        return;
    };
    let dir = vectors.join("cosign-legacy/tobby-fetch-cosign-v3.0.4");
    let expected_payload = std::fs::read(dir.join("payload.json")).unwrap();
    let payload = simple_signing_payload(
        "localhost:15381/tobby/fixture",
        "sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268",
        &BTreeMap::new(),
    );
    assert_eq!(
        String::from_utf8(payload.clone()).unwrap(),
        String::from_utf8(expected_payload).unwrap()
    );

    // The signature manifest: same config blob and byte layout as cosign v3.0.4.
    let expected_manifest = std::fs::read(dir.join("manifest.json")).unwrap();
    let vector: ImageManifest = manifest(&expected_manifest);
    let signature =
        vector.layers[0].annotations.as_ref().unwrap()[oci::SIGNATURE_ANNOTATION].clone();
    let mut layer = Descriptor::of(oci::SIMPLE_SIGNING, &payload);
    layer.annotations = Some(BTreeMap::from([(
        oci::SIGNATURE_ANNOTATION.to_owned(),
        signature.clone(),
    )]));
    let config = oci::cosign_config(std::slice::from_ref(&layer));
    assert_eq!(
        oci::sha256_digest(&config),
        "sha256:2122b6ad0794d3fdae43a4b477cf1d95d4a38d3c5f10631e199676039b876e37"
    );
    let built = oci::cosign_manifest(&config, &[layer]);
    assert_eq!(
        String::from_utf8(built.clone()).unwrap(),
        String::from_utf8(expected_manifest).unwrap()
    );
    assert_eq!(
        oci::sha256_digest(&built),
        "sha256:b6872674fc1bef936d1400f22f94b090f3e3eaf53c1b26362d39f3701cd08053"
    );

    // And the vector's signature verifies with its key over these payload bytes.
    let public = pem_to_der(&std::fs::read_to_string(dir.join("cosign.pub")).unwrap());
    assert!(verify(
        &public,
        &payload,
        &STANDARD.decode(signature).unwrap()
    ));
}

#[test]
fn simple_signing_payload_with_annotations_is_go_json() {
    let annotations = BTreeMap::from([
        ("z".to_owned(), "last".to_owned()),
        ("a".to_owned(), "<&>".to_owned()),
    ]);
    let payload = simple_signing_payload("r.example/app", "sha256:00", &annotations);
    assert_eq!(
        String::from_utf8(payload).unwrap(),
        r#"{"critical":{"identity":{"docker-reference":"r.example/app"},"image":{"docker-manifest-digest":"sha256:00"},"type":"cosign container image signature"},"optional":{"a":"\u003c\u0026\u003e","z":"last"}}"#
    );
}

#[test]
fn dsse_pae_matches_spec_example() {
    assert_eq!(
        dsse_pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
    );
}

#[test]
fn cosign_key_pem_and_signature() {
    let key = CosignKey::generate();
    let pem = key.public_pem();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    assert!(pem.ends_with("\n-----END PUBLIC KEY-----\n"));
    assert!(pem.lines().all(|l| l.len() <= 64));
    assert_eq!(pem_to_der(&pem), key.public_der());
    assert_eq!(
        pem.lines().count(),
        4,
        "a P-256 SPKI is 91 bytes: two base64 lines"
    );
    let signature = key.sign(b"message");
    assert_eq!(signature[0], 0x30, "DER SEQUENCE");
    assert!(verify(&key.public_der(), b"message", &signature));
    assert!(!verify(
        &CosignKey::generate().public_der(),
        b"message",
        &signature
    ));

    let dir = tempfile::tempdir().unwrap();
    let path = key.write_public_pem(dir.path(), "cosign.pub");
    assert_eq!(std::fs::read_to_string(path).unwrap(), pem);
}

#[test]
fn docker_config_has_base64_auth() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_docker_config(dir.path(), "127.0.0.1:5000", "alice", "s3cret");
    assert_eq!(path, dir.path().join("config.json"));
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(
        config["auths"]["127.0.0.1:5000"]["auth"],
        STANDARD.encode("alice:s3cret")
    );
}
