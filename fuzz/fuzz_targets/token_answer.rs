//! Token service answers: any bytes give a non-empty token or an error, never a panic.
#![no_main]

use imagegate_oci::challenge::parse_token_answer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(answer) = parse_token_answer(bytes) {
        assert!(!answer.token.is_empty());
    }
});
