//! `WWW-Authenticate` challenges: any header text parses or is refused, never panics.
#![no_main]

use imagegate_oci::challenge::{Challenge, parse_challenge};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|header: &str| {
    if let Some(Challenge::Bearer { realm, .. }) = parse_challenge(header) {
        assert!(!realm.is_empty(), "a Bearer challenge has a realm");
    }
});
