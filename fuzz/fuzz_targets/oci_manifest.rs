//! Registry answers imagegate-oci exposes parsers for: manifests and indexes, the
//! `WWW-Authenticate` challenge, digests and the referrers tag derived from them. (The
//! token answer is parsed privately inside the client.)
#![no_main]

use imagegate_fuzz::text;
use imagegate_oci::challenge::parse_challenge;
use imagegate_oci::{FetchedManifest, is_valid_digest, referrers_tag, sha256_digest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let fetched = FetchedManifest {
        media_type: imagegate_oci::manifest::OCI_MANIFEST.to_owned(),
        digest: sha256_digest(data),
        bytes: data.to_vec(),
    };
    if let Ok(manifest) = fetched.image_manifest() {
        for layer in &manifest.layers {
            let _ = layer.annotation("dev.cosignproject.cosign/signature");
            let _ = is_valid_digest(&layer.digest);
        }
    }
    if let Ok(index) = fetched.image_index() {
        for entry in &index.manifests {
            let _ = referrers_tag(&entry.digest);
        }
    }
    let input = text(data);
    let _ = parse_challenge(&input);
    let _ = is_valid_digest(&input);
    let _ = referrers_tag(&input);
});
