//! Tests of the test kit: its signing and payload helpers against the cosign vectors,
//! the real `docker-registry` it runs, and its fake API server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod apiserver;
mod layers;
mod registry;
mod signing;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use imagegate_testkit::oci::ImageManifest;

pub(crate) fn verify(public_spki_der: &[u8], message: &[u8], der_signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_spki_der)
        .verify(message, der_signature)
        .is_ok()
}

pub(crate) fn pem_to_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(b64).unwrap()
}

pub(crate) fn manifest(bytes: &[u8]) -> ImageManifest {
    serde_json::from_slice(bytes).unwrap()
}
