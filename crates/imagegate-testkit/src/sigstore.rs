//! Pushing keyless cosign evidence and cosign v3 Sigstore bundle referrers, as the shared
//! vectors hold them (captured bytes are pushed byte for byte).

use std::collections::BTreeMap;

use crate::oci::{self, Descriptor};
use crate::push::Pusher;

/// Media type of a Sigstore bundle v0.3 (cosign v3's referrer layer and artifact type).
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The OCI empty descriptor media type and content (`{}`).
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

impl Pusher<'_> {
    /// Pushes a `.sig` manifest (tag `sha256-<hex>.sig` of `digest`) holding exactly one
    /// simple-signing layer, `payload`, with exactly `annotations` (signature,
    /// certificate, chain, Rekor bundle...), replacing what the tag held. Returns the
    /// manifest digest.
    pub fn push_signature_manifest(
        &self,
        repo: &str,
        digest: &str,
        payload: &[u8],
        annotations: BTreeMap<String, String>,
    ) -> String {
        let mut layer = Descriptor::of(oci::SIMPLE_SIGNING, payload);
        layer.annotations = Some(annotations);
        self.push_blob(repo, payload);
        let config = oci::cosign_config(std::slice::from_ref(&layer));
        self.push_blob(repo, &config);
        let manifest = oci::cosign_manifest(&config, &[layer]);
        self.push_manifest(
            repo,
            &oci::cosign_tag(digest, "sig"),
            oci::OCI_MANIFEST,
            &manifest,
        )
    }

    /// Pushes a referring manifest in cosign v3's layout (empty config, one bundle
    /// layer, `subject`, `artifactType` bundle v0.3) with the bundle blob. Returns the
    /// manifest's descriptor (for a referrers index).
    pub fn push_bundle_referrer(
        &self,
        repo: &str,
        subject: &Descriptor,
        bundle: &[u8],
        predicate_type: &str,
    ) -> Descriptor {
        self.push_blob(repo, b"{}");
        self.push_blob(repo, bundle);
        let layer = Descriptor::of(BUNDLE_V03, bundle);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci::OCI_MANIFEST,
            "config": {"mediaType": EMPTY_MEDIA_TYPE, "size": 2, "digest": oci::sha256_digest(b"{}")},
            "layers": [layer],
            "annotations": {
                "dev.sigstore.bundle.content": "dsse-envelope",
                "dev.sigstore.bundle.predicateType": predicate_type,
            },
            "subject": subject,
            "artifactType": BUNDLE_V03,
        });
        let bytes = serde_json::to_vec(&manifest).expect("imagegate-testkit: manifest JSON");
        self.push_manifest_bytes(repo, &bytes)
    }

    /// Pushes captured manifest bytes by digest; returns their descriptor.
    pub fn push_manifest_bytes(&self, repo: &str, bytes: &[u8]) -> Descriptor {
        let descriptor = Descriptor::of(oci::OCI_MANIFEST, bytes);
        self.push_manifest(repo, &descriptor.digest, oci::OCI_MANIFEST, bytes);
        descriptor
    }

    /// Pushes the referrers fallback index (tag `sha256-<hex>` of `subject_digest`)
    /// listing `manifests`, with go-containerregistry's quirk: each entry's
    /// `artifactType` is the referrer's config media type (the empty type), not the
    /// bundle's. Returns the index digest.
    pub fn push_referrers_index(
        &self,
        repo: &str,
        subject_digest: &str,
        manifests: &[Descriptor],
    ) -> String {
        let entries: Vec<Descriptor> = manifests
            .iter()
            .cloned()
            .map(|mut d| {
                d.artifact_type = Some(EMPTY_MEDIA_TYPE.to_owned());
                d
            })
            .collect();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci::OCI_INDEX,
            "manifests": entries,
        });
        let bytes = serde_json::to_vec(&index).expect("imagegate-testkit: index JSON");
        self.push_index_bytes(repo, subject_digest, &bytes)
    }

    /// Pushes captured index bytes at the fallback tag of `subject_digest`.
    pub fn push_index_bytes(&self, repo: &str, subject_digest: &str, bytes: &[u8]) -> String {
        let tag = subject_digest.replacen(':', "-", 1);
        self.push_manifest(repo, &tag, oci::OCI_INDEX, bytes)
    }
}
