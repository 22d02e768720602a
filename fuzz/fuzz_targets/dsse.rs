//! DSSE envelopes (`.att` layers) and the in-toto statements they carry.
#![no_main]

use imagegate_fuzz::{FIXED_KEYS, IMAGE_DIGEST};
use imagegate_sigstore::dsse::{check_subject, parse_statement};
use imagegate_sigstore::{Envelope, verify_attestation};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = verify_attestation(data, &FIXED_KEYS, Some(IMAGE_DIGEST));
    // The signature never verifies for fuzzed input: reach the statement parser directly.
    if let Ok(envelope) = Envelope::from_json(data) {
        let _ = envelope.signed_bytes();
        if let Ok(attestation) = parse_statement(&envelope.payload_type, &envelope.payload) {
            let _ = check_subject(&attestation.subjects, IMAGE_DIGEST);
        }
    }
    let _ = parse_statement("application/vnd.in-toto+json", data);
});
