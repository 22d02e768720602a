//! Sigstore `trusted_root.json` (`--trusted-root`).
#![no_main]

use imagegate_sigstore::TrustedRoot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(root) = TrustedRoot::from_slice(data, "fuzz") {
        for authority in root.fulcio_authorities() {
            let _ = authority.intermediates_pem();
        }
        let _ = (root.rekor_keys().len(), root.ctlog_keys().len());
    }
});
