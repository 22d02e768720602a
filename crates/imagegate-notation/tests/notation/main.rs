//! The imagegate-notation test binary: real vectors, signer round trips, hostile input,
//! and a registry round trip.

mod hostile;
mod registry;
mod roundtrip;
mod vectors;

use std::sync::Arc;

use imagegate_notation::{Descriptor, TrustPolicy};
use imagegate_testkit::notation::{KeySpec, NotationCa, NotationTsa};
use imagegate_testkit::oci;

/// A target descriptor as the test kit and the verifier each name it.
pub fn target() -> (oci::Descriptor, Descriptor) {
    let manifest =
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
    let kit = oci::Descriptor::of(oci::OCI_MANIFEST, manifest);
    let verifier = Descriptor::new(&kit.media_type, &kit.digest, kit.size);
    (kit, verifier)
}

/// Now, Unix seconds.
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Trust exactly `ca` (Kyverno ClusterPolicy form: no TSA store).
pub fn trust(ca: &NotationCa) -> TrustPolicy {
    TrustPolicy::kyverno(vec![ca.der()], vec![])
}

/// A TSA issued by its own root, and that root.
pub fn tsa() -> (Arc<NotationTsa>, NotationCa) {
    let root = NotationCa::new("Test TSA Root", KeySpec::EcP256);
    (Arc::new(root.tsa("Test TSA")), root)
}
