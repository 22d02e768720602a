//! Notation signature envelopes (JWS and COSE) under a fixed Kyverno trust policy, and the
//! Notary payload.
#![no_main]

use std::sync::LazyLock;

use imagegate_fuzz::{IMAGE_DIGEST, NOW};
use imagegate_notation::{
    COSE_MEDIA_TYPE, Descriptor, JWS_MEDIA_TYPE, Payload, TrustPolicy, verify_signature,
};
use libfuzzer_sys::fuzz_target;

/// The `ca` store: the public-good Fulcio root (any well-formed CA certificate will do;
/// fuzzed envelopes never chain to it, the parsers before the trust check are the target).
static POLICY: LazyLock<TrustPolicy> = LazyLock::new(|| {
    let root = imagegate_fuzz::PUBLIC_GOOD
        .fulcio_authorities()
        .first()
        .map(|a| a.root_pem().to_owned())
        .unwrap_or_default();
    let ca = imagegate_notation::read_certificates(root.as_bytes()).unwrap_or_default();
    TrustPolicy::kyverno(ca.clone(), ca)
});

fuzz_target!(|data: &[u8]| {
    let expected = Descriptor::new(
        "application/vnd.oci.image.manifest.v1+json",
        IMAGE_DIGEST,
        1234,
    );
    for media_type in [JWS_MEDIA_TYPE, COSE_MEDIA_TYPE] {
        let _ = verify_signature(data, media_type, &expected, &POLICY, NOW);
    }
    let _ = Payload::from_json(data);
});
