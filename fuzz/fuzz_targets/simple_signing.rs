//! Simple-signing payloads (`.sig` layers): `payload\nbase64 signature`.
#![no_main]

use std::collections::BTreeMap;

use imagegate_fuzz::{FIXED_KEYS, IMAGE_DIGEST, split_line, text};
use imagegate_sigstore::simple_signing::parse_payload;
use imagegate_sigstore::verify_simple_signing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_payload(data);
    let (payload, signature) = split_line(data);
    let _ = parse_payload(payload);
    let required = BTreeMap::from([("env".to_owned(), "prod".to_owned())]);
    let _ = verify_simple_signing(
        payload,
        &text(signature),
        &FIXED_KEYS,
        IMAGE_DIGEST,
        &required,
    );
});
