//! PEM text, public keys (PEM, SPKI DER, PKCS#1 DER) and certificates: policy `publicKeys`,
//! certificate and chain annotations, Notation trusted certificates.
#![no_main]

use imagegate_fuzz::{NOW, PUBLIC_GOOD, text};
use imagegate_sigstore::{PublicKey, certificate_public_key, pem, verify_certificate_chain};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = text(data);
    let _ = pem::parse_blocks(&input);
    if let Ok(keys) = PublicKey::from_pem(&input) {
        for key in keys {
            let _ = (key.fingerprint(), key.algorithm(), key.hash());
            let _ = key.verify(data, data);
        }
    }
    let _ = PublicKey::from_spki_der(data);
    let _ = PublicKey::from_pkcs1_rsa_der(data);
    let _ = certificate_public_key(&input);
    // As a signing certificate (with itself as chain) under the public-good Fulcio roots,
    // and as a trusted root for itself.
    for authority in PUBLIC_GOOD.fulcio_authorities().iter().take(1) {
        let _ = verify_certificate_chain(&input, "", authority.root_pem(), NOW);
    }
    let _ = verify_certificate_chain(&input, &input, &input, NOW);
    let _ = imagegate_notation::read_certificates(data);
});
