//! Image references: any text parses or is refused, never panics; what parses prints
//! as a reference that parses again to the same image.
#![no_main]

use imagegate_oci::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(reference) = Reference::parse(text) {
        let printed = reference.to_string();
        let again = Reference::parse(&printed).expect("a printed reference parses");
        assert_eq!(again.to_string(), printed, "printing is stable");
        let _ = (reference.is_loopback(), reference.api_host(), reference.reference_for_api());
    }
});
