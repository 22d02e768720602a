//! Image references (pod specs, policies, CLI arguments): parse, then every accessor and
//! the derived references the engine builds.
#![no_main]

use imagegate_fuzz::{IMAGE_DIGEST, text};
use imagegate_oci::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = text(data);
    let Ok(reference) = Reference::parse(&input) else {
        return;
    };
    let _ = (
        reference.registry(),
        reference.repository(),
        reference.tag(),
    );
    let _ = (reference.digest(), reference.name(), reference.api_host());
    let _ = (reference.is_loopback(), reference.reference_for_api());
    let _ = reference.try_with_digest(IMAGE_DIGEST);
    let _ = reference.with_tag("sha256-0123.sig");
    // What the engine prints must read back (pinned references, messages).
    let printed = reference.to_string();
    if let Err(e) = Reference::parse(&printed) {
        panic!("{input:?} parsed, its display {printed:?} does not: {e}");
    }
});
