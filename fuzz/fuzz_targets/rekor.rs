//! The Rekor bundle annotation (SET) of cosign signatures, and its log entry.
#![no_main]

use imagegate_fuzz::PUBLIC_GOOD;
use imagegate_sigstore::{RekorBundle, RekorKey, verify_entry_matches, verify_set};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = RekorBundle::from_json(data) else {
        return;
    };
    let _ = bundle.signed_bytes();
    let _ = bundle.entry();
    let keys: Vec<RekorKey> = PUBLIC_GOOD
        .rekor_keys()
        .iter()
        .map(|k| k.key.clone())
        .collect();
    let _ = verify_set(&bundle, &keys);
    let _ = verify_entry_matches(&bundle, b"payload", b"signature", b"verifier");
});
