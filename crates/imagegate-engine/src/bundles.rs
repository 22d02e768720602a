//! Sigstore bundles as cosign v3 stores them: OCI 1.1 referrers of the image (a manifest
//! whose `subject` is the image and whose layer is the bundle), found through the
//! referrers API or, on registries without it, the `sha256-<hex>` fallback tag index.
//!
//! Discovery is deliberately lenient about `artifactType` in the fallback index: cosign
//! (go-containerregistry) writes the referring manifest's config media type there
//! (`application/vnd.oci.empty.v1+json`), not the bundle type, and filtering on it
//! loses every bundle (Kyverno bug 16664). What counts is the referring manifest:
//! its `subject` must be the image, and only its bundle layers are read, size-limited
//! and digest-checked. Trust comes from verifying each bundle against the image digest.

use futures::future::join_all;
use imagegate_oci::{Descriptor, Reference, ReferrersSource, RegistryClient};
use imagegate_sigstore::{
    Artifact, BundleRequirement, TrustedRoot, VerifiedBundle, VerifyOptions,
    predicate_type_matches, verify_bundle_with,
};

use crate::keyless::summarise;
use crate::verify::{Evidence, Layer, VerifiedEnvelope, VerifyError, select_attestations};

/// The bundle media type cosign v3 writes (layer media type and artifact type).
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Every bundle media type accepted as a layer (v0.1 to v0.3).
pub const BUNDLE_MEDIA_TYPES: [&str; 5] = [
    BUNDLE_MEDIA_TYPE,
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json",
];
/// The predicate type of a cosign v3 image signature made as a DSSE statement.
pub const COSIGN_SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";
/// The OCI empty descriptor media type (what go-containerregistry lists as the
/// artifact type of a referrer without its own).
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// Referrers looked at per image; more means something is wrong.
const MAX_REFERRERS: usize = 64;
/// Bundle layers read per referring manifest.
const MAX_BUNDLE_LAYERS: usize = 8;

/// Whether `media_type` is a Sigstore bundle (any version).
pub fn is_bundle_media_type(media_type: &str) -> bool {
    let normalised: String = media_type.chars().filter(|c| !c.is_whitespace()).collect();
    BUNDLE_MEDIA_TYPES.contains(&normalised.as_str())
}

/// The bundle layers of the manifests referring to `digest` in `repository` (the
/// image's own repository or a signature repository). Each layer descriptor carries the
/// referring manifest's annotations too (`dev.sigstore.bundle.predicateType`).
pub async fn fetch_bundles(
    client: &RegistryClient,
    repository: &Reference,
    digest: &str,
) -> Result<Evidence, VerifyError> {
    let referrers = client
        .get_referrers(repository, digest, Some(BUNDLE_MEDIA_TYPE))
        .await?;
    let from_api = matches!(referrers.source, ReferrersSource::Api { .. });
    let candidates: Vec<Descriptor> = referrers
        .index
        .manifests
        .into_iter()
        .filter(|entry| {
            // The API computes artifactType from the referrer itself, so a foreign type
            // (an SBOM, a notation signature) can be skipped without fetching it; the
            // fallback index is written by clients and is not trusted for this.
            !from_api
                || entry.artifact_type.as_deref().is_none_or(|t| {
                    is_bundle_media_type(t) || t == EMPTY_MEDIA_TYPE || t.is_empty()
                })
        })
        .take(MAX_REFERRERS)
        .collect();
    let manifests = join_all(
        candidates
            .iter()
            .map(|entry| referring_layers(client, repository, digest, entry)),
    )
    .await;
    let mut layers = Vec::new();
    for found in manifests {
        layers.extend(found?);
    }
    Ok(Evidence { layers })
}

/// The bundle layers of one referring manifest (none when it is not about `digest`).
async fn referring_layers(
    client: &RegistryClient,
    repository: &Reference,
    digest: &str,
    entry: &Descriptor,
) -> Result<Vec<Layer>, VerifyError> {
    let malformed = |reason: String| VerifyError::MalformedSignatureManifest {
        reference: format!("{}@{}", repository.name(), entry.digest),
        reason,
    };
    let reference = repository
        .try_with_digest(&entry.digest)
        .map_err(|e| malformed(e.to_string()))?;
    let Some(fetched) = client.get_manifest(&reference).await? else {
        // A stale index entry: the referrer was deleted.
        return Ok(Vec::new());
    };
    if fetched.is_index() {
        return Ok(Vec::new());
    }
    let manifest = fetched
        .image_manifest()
        .map_err(|e| malformed(e.to_string()))?;
    if manifest
        .subject
        .as_ref()
        .is_some_and(|subject| subject.digest != digest)
    {
        return Ok(Vec::new());
    }
    let bundle_layers: Vec<Descriptor> = manifest
        .layers
        .into_iter()
        .filter(|layer| is_bundle_media_type(&layer.media_type))
        .take(MAX_BUNDLE_LAYERS)
        .map(|mut layer| {
            if let Some(annotations) = &manifest.annotations {
                let merged = layer.annotations.get_or_insert_with(Default::default);
                for (k, v) in annotations {
                    merged.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            layer
        })
        .collect();
    let limit = client.options().max_blob_bytes;
    let blobs = join_all(
        bundle_layers
            .iter()
            .map(|layer| client.get_blob(&reference, layer, limit)),
    )
    .await;
    let mut layers = Vec::with_capacity(bundle_layers.len());
    for (descriptor, blob) in bundle_layers.into_iter().zip(blobs) {
        layers.push(Layer {
            descriptor,
            blob: blob?,
        });
    }
    Ok(layers)
}

/// Who must have signed a bundle (any one of the requirements) and which checks may be
/// relaxed.
#[derive(Debug, Clone)]
pub struct BundleCheck {
    /// Any of these signers is accepted (several keys of one PEM, or one identity).
    pub requirements: Vec<BundleRequirement>,
    /// `rekor.ignoreTlog` / `ctlog.ignoreSCT`.
    pub options: VerifyOptions,
}

/// The bundles of `evidence` that sign the image `digest` itself: message signatures
/// over the digest, or DSSE statements of cosign's signature predicate type
/// ([`COSIGN_SIGN_PREDICATE_TYPE`]) naming it.
pub fn check_bundle_signatures(
    evidence: &Evidence,
    digest: &str,
    check: &BundleCheck,
    trust: Option<&TrustedRoot>,
) -> Result<Vec<VerifiedBundle>, VerifyError> {
    if evidence.layers.is_empty() {
        return Err(VerifyError::NoSignatures);
    }
    let mut valid = Vec::new();
    let mut reasons = Vec::new();
    for layer in &evidence.layers {
        match verify_layer(layer, digest, check, trust) {
            Ok(bundle) => match &bundle.statement {
                Some(statement)
                    if !predicate_type_matches(
                        COSIGN_SIGN_PREDICATE_TYPE,
                        &statement.predicate_type,
                    ) =>
                {
                    // An attestation, not a signature: not evidence either way.
                }
                _ => valid.push(bundle),
            },
            Err(reason) => reasons.push(reason),
        }
    }
    if !valid.is_empty() {
        return Ok(valid);
    }
    if reasons.is_empty() {
        return Err(VerifyError::NoSignatures);
    }
    Err(VerifyError::InvalidSignature {
        reason: summarise(reasons),
    })
}

/// The DSSE bundles of `evidence` whose statement is of `predicate_type` and names
/// `digest`, signed as `check` requires.
pub fn check_bundle_attestations(
    evidence: &Evidence,
    digest: &str,
    check: &BundleCheck,
    trust: Option<&TrustedRoot>,
    predicate_type: &str,
) -> Result<Vec<VerifiedEnvelope>, VerifyError> {
    select_attestations(
        evidence,
        predicate_type,
        "dev.sigstore.bundle.predicateType",
        |layer| {
            let verified = verify_layer(layer, digest, check, trust)?;
            Ok(verified.statement.map(|attestation| VerifiedEnvelope {
                attestation,
                envelope: serde_json::from_slice::<serde_json::Value>(&layer.blob)
                    .ok()
                    .and_then(|b| b.get("dsseEnvelope").cloned())
                    .unwrap_or(serde_json::Value::Null),
            }))
        },
    )
}

/// One bundle against the image digest and any of the requirements.
fn verify_layer(
    layer: &Layer,
    digest: &str,
    check: &BundleCheck,
    trust: Option<&TrustedRoot>,
) -> Result<VerifiedBundle, String> {
    let trust = trust.ok_or("no trusted root to verify the bundle with")?;
    let artifact = Artifact::from_digest(digest).map_err(|e| e.to_string())?;
    let mut last = String::from("no signer to verify the bundle with");
    for requirement in &check.requirements {
        match verify_bundle_with(&layer.blob, artifact, trust, requirement, &check.options) {
            Ok(bundle) => return Ok(bundle),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_media_types() {
        assert!(is_bundle_media_type(BUNDLE_MEDIA_TYPE));
        assert!(is_bundle_media_type(
            "application/vnd.dev.sigstore.bundle+json; version=0.1"
        ));
        assert!(!is_bundle_media_type(EMPTY_MEDIA_TYPE));
        assert!(!is_bundle_media_type(
            "application/vnd.dev.cosign.simplesigning.v1+json"
        ));
    }
}
