//! Policy YAML (`--policy` files, ClusterPolicy objects): load, validate, normalise.
#![no_main]

use imagegate_fuzz::text;
use imagegate_policy::load::load_documents;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = load_documents(&text(data), "fuzz.yaml");
});
