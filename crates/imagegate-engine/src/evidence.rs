//! The shared vocabulary of verification, a leaf that every other layer builds on: what
//! was fetched for an image ([`Evidence`] of [`Layer`]s), what verified
//! ([`VerifiedEnvelope`], [`VerifiedSignatures`], [`VerifiedAttestations`]), why not
//! ([`VerifyError`]), and the attestation selection shared by every signature format.
//! Notation evidence is the same [`Evidence`] (envelope layers of signature manifests)
//! plus, for attestations, the [`ReferrerArtifact`]s of a type.

use std::collections::BTreeMap;
use std::sync::Arc;

use imagegate_oci::{Descriptor, Reference, RegistryError};
use imagegate_sigstore::{
    Attestation, PublicKey, attestation_tag, cosign, predicate_type_matches, signature_tag,
};

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

/// Whether `media_type` is a Sigstore bundle (any version).
pub fn is_bundle_media_type(media_type: &str) -> bool {
    let normalised: String = media_type.chars().filter(|c| !c.is_whitespace()).collect();
    BUNDLE_MEDIA_TYPES.contains(&normalised.as_str())
}

/// What a signature must satisfy.
#[derive(Debug, Clone, Default)]
pub struct SignatureCheck {
    /// Any of these keys may have signed.
    pub keys: Vec<PublicKey>,
    /// Annotations the signed payload's `optional` section must carry.
    pub annotations: BTreeMap<String, String>,
    /// Repository holding the signatures instead of the image's own (`COSIGN_REPOSITORY`).
    pub signature_repository: Option<Reference>,
}

/// One verified DSSE envelope.
#[derive(Debug, Clone)]
pub struct VerifiedEnvelope {
    /// The decoded statement.
    pub attestation: Attestation,
    /// The envelope as stored (what `cosign verify-attestation` prints).
    pub envelope: serde_json::Value,
}

/// One layer of a `.sig` or `.att` manifest with its blob (size- and digest-checked).
#[derive(Debug, Clone)]
pub struct Layer {
    /// The layer descriptor (annotations carry cosign's signature, certificate, bundle).
    pub descriptor: Descriptor,
    /// The blob: a simple-signing payload or a DSSE envelope.
    pub blob: Vec<u8>,
}

/// An artifact referring to an image (an SBOM, a scan report, …), found through the
/// referrers of the image by its `artifactType`.
#[derive(Debug, Clone)]
pub struct ReferrerArtifact {
    /// The artifact manifest's descriptor (media type, digest, size: what its own
    /// Notation signatures sign) with its `artifactType`.
    pub manifest: Descriptor,
    /// The manifest's single layer (the payload) and its blob.
    pub payload: Layer,
}

/// What a `.sig` or `.att` tag held for one digest; empty when the tag does not exist.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// The layers of the expected media type.
    pub layers: Vec<Layer>,
    /// Referring artifacts of one type ([`EvidenceKind::Artifacts`] only).
    pub artifacts: Vec<ReferrerArtifact>,
}

impl Evidence {
    /// What the evidence weighs in memory (blobs and annotations), for the cache.
    pub fn bytes(&self) -> u32 {
        let bytes: usize = self
            .layers
            .iter()
            .chain(self.artifacts.iter().map(|a| &a.payload))
            .map(|layer| {
                layer.blob.len()
                    + layer
                        .descriptor
                        .annotations
                        .iter()
                        .flatten()
                        .map(|(k, v)| k.len() + v.len())
                        .sum::<usize>()
            })
            .sum();
        u32::try_from(bytes.max(1)).unwrap_or(u32::MAX)
    }
}

/// The two kinds of cosign evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EvidenceKind {
    /// `.sig`: simple-signing payloads.
    Signatures,
    /// `.att`: DSSE envelopes.
    Attestations,
    /// Sigstore bundles referring to the image (OCI 1.1 referrers or the
    /// `sha256-<hex>` fallback tag); see `crate::fetch`.
    Bundles,
    /// Notation signature envelopes (JWS or COSE) of the signature manifests
    /// referring to the image.
    NotationSignatures,
    /// Artifacts of one `artifactType` referring to the image (Notation attestations).
    Artifacts,
}

impl EvidenceKind {
    pub(crate) fn tag(self, digest: &str) -> Result<String, imagegate_sigstore::TagError> {
        match self {
            EvidenceKind::Signatures => signature_tag(digest),
            EvidenceKind::Attestations => attestation_tag(digest),
            // The referrers fallback tag, `sha256-<hex>` (no suffix).
            EvidenceKind::Bundles | EvidenceKind::NotationSignatures | EvidenceKind::Artifacts => {
                signature_tag(digest).map(|t| t.trim_end_matches(".sig").to_owned())
            }
        }
    }

    pub(crate) fn media_type(self) -> &'static str {
        match self {
            EvidenceKind::Signatures => cosign::SIMPLE_SIGNING_MEDIA_TYPE,
            EvidenceKind::Attestations => cosign::DSSE_MEDIA_TYPE,
            EvidenceKind::Bundles => BUNDLE_MEDIA_TYPE,
            EvidenceKind::NotationSignatures => imagegate_notation::SIGNATURE_ARTIFACT_TYPE,
            // Any: the artifact type is asked for separately.
            EvidenceKind::Artifacts => "",
        }
    }
}

/// Why an image did not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// There is no signature manifest, or it has no signature layers.
    #[error("no signatures found")]
    NoSignatures,
    /// Signatures exist but none satisfied the check.
    #[error("invalid signature: {reason}")]
    InvalidSignature {
        /// Why each candidate failed (deduplicated).
        reason: String,
    },
    /// No attestation of the wanted predicate type verified.
    #[error("no matching attestations: {reason}")]
    NoMatchingAttestations {
        /// What was found instead.
        reason: String,
    },
    /// The signature manifest could not be used.
    #[error("malformed signature manifest {reference}: {reason}")]
    MalformedSignatureManifest {
        /// The `.sig`/`.att` reference.
        reference: String,
        /// Why.
        reason: String,
    },
    /// The evidence of one image is larger than the engine reads (issue 8 item 9).
    #[error("evidence {reference} is larger than the {limit} bytes read per image")]
    EvidenceTooLarge {
        /// The `.sig`/`.att` or referrer reference.
        reference: String,
        /// The byte budget.
        limit: u64,
    },
    /// The registry could not be asked.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A failure shared by every caller of a coalesced fetch.
    #[error(transparent)]
    Shared(Arc<VerifyError>),
}

impl VerifyError {
    /// The underlying error of a shared one.
    pub fn cause(&self) -> &VerifyError {
        match self {
            VerifyError::Shared(inner) => inner.cause(),
            other => other,
        }
    }

    /// Whether the failure was about reaching the evidence (registry unreachable,
    /// unauthorized, malformed answers) rather than about the evidence itself.
    pub fn is_registry_failure(&self) -> bool {
        matches!(self.cause(), VerifyError::Registry(_))
    }
}

/// `verify` (which returns `None` for a valid signature that carries no statement).
///
/// Tools record the predicate type in an unsigned annotation (`type_annotation`): it
/// only spares signature checks, it never makes an attestation acceptable. Errors say
/// whether nothing verified ("invalid signature") or only other types did ("no
/// matching attestations").
pub fn select_attestations(
    evidence: &Evidence,
    predicate_type: &str,
    type_annotation: &str,
    verify: impl Fn(&Layer) -> Result<Option<VerifiedEnvelope>, String>,
) -> Result<Vec<VerifiedEnvelope>, VerifyError> {
    let candidates: Vec<&Layer> = evidence
        .layers
        .iter()
        .filter(|layer| {
            layer
                .descriptor
                .annotation(type_annotation)
                .is_none_or(|declared| predicate_type_matches(predicate_type, declared))
        })
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::NoMatchingAttestations {
            reason: format!("no attestations of predicate type {predicate_type} found"),
        });
    }
    let mut matching = Vec::new();
    let mut other_types = Vec::new();
    let mut reasons = Vec::new();
    for layer in candidates {
        match verify(layer) {
            Ok(Some(verified))
                if predicate_type_matches(predicate_type, &verified.attestation.predicate_type) =>
            {
                matching.push(verified);
            }
            Ok(Some(verified)) => other_types.push(verified.attestation.predicate_type),
            Ok(None) => other_types.push("(message signature)".to_owned()),
            Err(reason) => reasons.push(reason),
        }
    }
    if !matching.is_empty() {
        return Ok(matching);
    }
    if other_types.is_empty() {
        return Err(VerifyError::InvalidSignature {
            reason: summarise(reasons),
        });
    }
    other_types.sort();
    other_types.dedup();
    Err(VerifyError::NoMatchingAttestations {
        reason: format!(
            "verified attestations have predicate types {} but not {predicate_type}",
            other_types.join(", ")
        ),
    })
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Distinct reasons, in order, joined for one message.
pub fn summarise(mut reasons: Vec<String>) -> String {
    let mut seen = std::collections::HashSet::new();
    reasons.retain(|r| seen.insert(r.clone()));
    if reasons.is_empty() {
        "no signature verified".to_owned()
    } else {
        reasons.join("; ")
    }
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
        assert!(!is_bundle_media_type("application/vnd.oci.empty.v1+json"));
        assert!(!is_bundle_media_type(
            "application/vnd.dev.cosign.simplesigning.v1+json"
        ));
    }
}
