//! Fetching and verifying the cosign signatures and attestations of one image.
//!
//! The registry work per tagged image is: resolve the tag (`HEAD`), fetch the
//! `sha256-<hex>.sig` (or `.att`) manifest, fetch the payload blobs concurrently.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::join_all;
use imagegate_oci::{Descriptor, Reference, RegistryClient, RegistryError};
use imagegate_sigstore::{
    Attestation, PublicKey, SimpleSigning, attestation_tag, cosign, predicate_type_matches,
    signature_tag, verify_attestation, verify_simple_signing,
};

/// At most this many layers of one signature manifest are looked at; cosign appends one
/// per signing, so a larger number means something is wrong.
const MAX_SIGNATURE_LAYERS: usize = 64;

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

/// Signatures that verified for one image.
#[derive(Debug, Clone)]
pub struct VerifiedSignatures {
    /// The image, pinned to the verified digest.
    pub image: Reference,
    /// The verified digest.
    pub digest: String,
    /// Every valid signature payload.
    pub signatures: Vec<SimpleSigning>,
}

/// Attestations that verified for one image.
#[derive(Debug, Clone)]
pub struct VerifiedAttestations {
    /// The image, pinned to the verified digest.
    pub image: Reference,
    /// The verified digest.
    pub digest: String,
    /// Every valid attestation of the requested predicate type, with its envelope.
    pub attestations: Vec<VerifiedEnvelope>,
}

/// One verified DSSE envelope.
#[derive(Debug, Clone)]
pub struct VerifiedEnvelope {
    /// The decoded statement.
    pub attestation: Attestation,
    /// The envelope as stored (what `cosign verify-attestation` prints).
    pub envelope: serde_json::Value,
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
    /// The registry could not be asked.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl VerifyError {
    /// Whether the failure was about the evidence (not about reaching it).
    pub fn is_verification_failure(&self) -> bool {
        !matches!(self, VerifyError::Registry(_))
    }
}

/// Fetches and verifies signatures through a shared registry client.
#[derive(Debug, Clone)]
pub struct Verifier {
    client: Arc<RegistryClient>,
}

impl Verifier {
    /// A verifier using `client` for every fetch.
    pub fn new(client: Arc<RegistryClient>) -> Verifier {
        Verifier { client }
    }

    /// The registry client.
    pub fn client(&self) -> &Arc<RegistryClient> {
        &self.client
    }

    /// Resolves `image` and verifies its cosign signatures (`.sig` tag).
    pub async fn verify_signatures(
        &self,
        image: &Reference,
        check: &SignatureCheck,
    ) -> Result<VerifiedSignatures, VerifyError> {
        let digest = self.client.resolve_digest(image).await?;
        let signatures = self.signatures_for_digest(image, &digest, check).await?;
        Ok(VerifiedSignatures {
            image: image.with_digest(&digest),
            digest,
            signatures,
        })
    }

    /// Verifies the signatures of `image` at a digest already resolved.
    pub async fn signatures_for_digest(
        &self,
        image: &Reference,
        digest: &str,
        check: &SignatureCheck,
    ) -> Result<Vec<SimpleSigning>, VerifyError> {
        let tag = signature_tag(digest).map_err(|e| VerifyError::InvalidSignature {
            reason: e.to_string(),
        })?;
        let layers = self
            .fetch_layers(
                image,
                check,
                &tag,
                cosign::SIMPLE_SIGNING_MEDIA_TYPE,
                |_| true,
            )
            .await?;
        if layers.is_empty() {
            return Err(VerifyError::NoSignatures);
        }
        let mut valid = Vec::new();
        let mut reasons = Vec::new();
        for (descriptor, payload) in layers {
            let Some(signature) = descriptor.annotation(cosign::SIGNATURE_ANNOTATION) else {
                reasons.push("signature layer has no signature annotation".to_owned());
                continue;
            };
            match verify_simple_signing(
                &payload,
                signature,
                &check.keys,
                digest,
                &check.annotations,
            ) {
                Ok(signing) => valid.push(signing),
                Err(e) => reasons.push(e.to_string()),
            }
        }
        if valid.is_empty() {
            return Err(VerifyError::InvalidSignature {
                reason: summarise(reasons),
            });
        }
        Ok(valid)
    }

    /// Resolves `image` and verifies its attestations (`.att` tag) of `predicate_type`
    /// (a URI or one of cosign's short names).
    pub async fn verify_attestations(
        &self,
        image: &Reference,
        check: &SignatureCheck,
        predicate_type: &str,
    ) -> Result<VerifiedAttestations, VerifyError> {
        let digest = self.client.resolve_digest(image).await?;
        let attestations = self
            .attestations_for_digest(image, &digest, check, predicate_type)
            .await?;
        Ok(VerifiedAttestations {
            image: image.with_digest(&digest),
            digest,
            attestations,
        })
    }

    /// Verifies the attestations of `image` at a digest already resolved.
    pub async fn attestations_for_digest(
        &self,
        image: &Reference,
        digest: &str,
        check: &SignatureCheck,
        predicate_type: &str,
    ) -> Result<Vec<VerifiedEnvelope>, VerifyError> {
        let tag = attestation_tag(digest).map_err(|e| VerifyError::InvalidSignature {
            reason: e.to_string(),
        })?;
        // cosign records the predicate type in an (unsigned) layer annotation: use it
        // only to skip downloads, never to accept.
        let worth_fetching = |descriptor: &Descriptor| {
            descriptor
                .annotation("predicateType")
                .is_none_or(|declared| predicate_type_matches(predicate_type, declared))
        };
        let layers = self
            .fetch_layers(image, check, &tag, cosign::DSSE_MEDIA_TYPE, worth_fetching)
            .await?;
        if layers.is_empty() {
            return Err(VerifyError::NoMatchingAttestations {
                reason: format!("no attestations of predicate type {predicate_type} found"),
            });
        }
        let mut matching = Vec::new();
        let mut other_types = Vec::new();
        let mut reasons = Vec::new();
        for (_, envelope) in layers {
            match verify_attestation(&envelope, &check.keys, Some(digest)) {
                Ok(attestation)
                    if predicate_type_matches(predicate_type, &attestation.predicate_type) =>
                {
                    let envelope =
                        serde_json::from_slice(&envelope).unwrap_or(serde_json::Value::Null);
                    matching.push(VerifiedEnvelope {
                        attestation,
                        envelope,
                    });
                }
                Ok(attestation) => other_types.push(attestation.predicate_type),
                Err(e) => reasons.push(e.to_string()),
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

    /// The layers of `media_type` in the manifest at `tag` (in the signature repository
    /// when one is set), with their blobs fetched concurrently.
    async fn fetch_layers(
        &self,
        image: &Reference,
        check: &SignatureCheck,
        tag: &str,
        media_type: &str,
        worth_fetching: impl Fn(&Descriptor) -> bool,
    ) -> Result<Vec<(Descriptor, Vec<u8>)>, VerifyError> {
        let repository = check.signature_repository.as_ref().unwrap_or(image);
        let signature_ref =
            repository
                .with_tag(tag)
                .map_err(|e| VerifyError::MalformedSignatureManifest {
                    reference: format!("{}:{tag}", repository.name()),
                    reason: e.to_string(),
                })?;
        let Some(fetched) = self.client.get_manifest(&signature_ref).await? else {
            return Ok(Vec::new());
        };
        let manifest =
            fetched
                .image_manifest()
                .map_err(|e| VerifyError::MalformedSignatureManifest {
                    reference: signature_ref.to_string(),
                    reason: e.to_string(),
                })?;
        let candidates: Vec<Descriptor> = manifest
            .layers
            .into_iter()
            .filter(|layer| layer.media_type == media_type && worth_fetching(layer))
            .take(MAX_SIGNATURE_LAYERS)
            .collect();
        let limit = self.client.options().max_blob_bytes;
        let blobs = join_all(
            candidates
                .iter()
                .map(|layer| self.client.get_blob(&signature_ref, layer, limit)),
        )
        .await;
        let mut layers = Vec::with_capacity(candidates.len());
        for (layer, blob) in candidates.into_iter().zip(blobs) {
            layers.push((layer, blob?));
        }
        Ok(layers)
    }
}

/// Distinct reasons, in order, joined for one message.
fn summarise(mut reasons: Vec<String>) -> String {
    let mut seen = std::collections::HashSet::new();
    reasons.retain(|r| seen.insert(r.clone()));
    if reasons.is_empty() {
        "no signature verified".to_owned()
    } else {
        reasons.join("; ")
    }
}
