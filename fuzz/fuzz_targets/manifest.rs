//! Registry manifests and indexes (also referrers answers): any bytes deserialise or
//! are refused, never panic.
#![no_main]

use imagegate_oci::{FetchedManifest, ImageIndex, ImageManifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let fetched = FetchedManifest {
        media_type: String::new(),
        digest: String::new(),
        bytes: bytes.to_vec(),
    };
    let _ = fetched.is_index();
    if let Ok(manifest) = fetched.image_manifest() {
        for layer in &manifest.layers {
            let _ = layer.annotation("dev.cosignproject.cosign/signature");
        }
    }
    let _ = fetched.image_index();
    let _ = serde_json::from_slice::<ImageIndex>(bytes);
    let _ = serde_json::from_slice::<ImageManifest>(bytes);
});
