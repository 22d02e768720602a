//! Sigstore bundles (cosign v3 referrers, `--bundle`), keyless and keyed, with every
//! check on and with the tlog/SCT checks relaxed.
#![no_main]

use imagegate_fuzz::{FIXED_KEYS, IMAGE_DIGEST, PUBLIC_GOOD};
use imagegate_sigstore::{
    Artifact, BundleRequirement, IdentityRequirement, Matcher, VerifyOptions, verify_bundle,
    verify_bundle_with,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(digest) = Artifact::from_digest(IMAGE_DIGEST) else {
        return;
    };
    let identity = BundleRequirement::Identity(IdentityRequirement {
        subject: Matcher::Any,
        issuer: Matcher::Any,
        github: Default::default(),
    });
    let _ = verify_bundle(data, digest, &PUBLIC_GOOD, &identity);
    let relaxed = VerifyOptions {
        ignore_tlog: true,
        ignore_sct: true,
    };
    let _ = verify_bundle_with(
        data,
        Artifact::Bytes(data),
        &PUBLIC_GOOD,
        &identity,
        &relaxed,
    );
    if let Some(key) = FIXED_KEYS.first() {
        let keyed = BundleRequirement::Key(key.clone());
        let _ = verify_bundle_with(data, digest, &PUBLIC_GOOD, &keyed, &relaxed);
    }
});
