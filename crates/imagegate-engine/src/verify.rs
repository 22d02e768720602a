//! Fetching the cosign evidence of one image and verifying it.
//!
//! Fetching and checking are separate: the evidence of an image (its `.sig` or `.att`
//! layers) is fetched once, however many policies, rules and attestors check it, and
//! concurrent fetches of the same evidence are coalesced. For a tagged image the
//! registry work is: resolve the tag (`HEAD`), fetch the `sha256-<hex>.sig` manifest,
//! fetch its payload blobs concurrently.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::join_all;
use imagegate_oci::{Descriptor, Reference, RegistryClient, RegistryError};
use imagegate_sigstore::{
    Attestation, PublicKey, SimpleSigning, attestation_tag, cosign, predicate_type_matches,
    signature_tag, verify_attestation, verify_simple_signing,
};

use crate::cache::{TtlCache, key_of};
use crate::flight::SingleFlight;
use crate::metrics::EngineMetrics;

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

/// One layer of a `.sig` or `.att` manifest with its blob (size- and digest-checked).
#[derive(Debug, Clone)]
pub struct Layer {
    /// The layer descriptor (annotations carry cosign's signature, certificate, bundle).
    pub descriptor: Descriptor,
    /// The blob: a simple-signing payload or a DSSE envelope.
    pub blob: Vec<u8>,
}

/// What a `.sig` or `.att` tag held for one digest; empty when the tag does not exist.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// The layers of the expected media type.
    pub layers: Vec<Layer>,
}

/// The two kinds of cosign evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EvidenceKind {
    /// `.sig`: simple-signing payloads.
    Signatures,
    /// `.att`: DSSE envelopes.
    Attestations,
    /// Sigstore bundles referring to the image (OCI 1.1 referrers or the
    /// `sha256-<hex>` fallback tag); see [`crate::bundles`].
    Bundles,
}

impl EvidenceKind {
    fn tag(self, digest: &str) -> Result<String, imagegate_sigstore::TagError> {
        match self {
            EvidenceKind::Signatures => signature_tag(digest),
            EvidenceKind::Attestations => attestation_tag(digest),
            // The referrers fallback tag, `sha256-<hex>` (no suffix).
            EvidenceKind::Bundles => {
                signature_tag(digest).map(|t| t.trim_end_matches(".sig").to_owned())
            }
        }
    }

    fn media_type(self) -> &'static str {
        match self {
            EvidenceKind::Signatures => cosign::SIMPLE_SIGNING_MEDIA_TYPE,
            EvidenceKind::Attestations => cosign::DSSE_MEDIA_TYPE,
            EvidenceKind::Bundles => crate::bundles::BUNDLE_MEDIA_TYPE,
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

type Flight<T> = Result<Arc<T>, Arc<VerifyError>>;

/// Fetches and verifies signatures through a shared registry client, coalescing
/// identical concurrent fetches.
#[derive(Debug, Clone)]
pub struct Verifier {
    client: Arc<RegistryClient>,
    digest_cache: TtlCache<String>,
    evidence_cache: TtlCache<Arc<Evidence>>,
    digests: Arc<SingleFlight<String, Flight<String>>>,
    evidence: Arc<SingleFlight<(String, EvidenceKind, String), Flight<Evidence>>>,
}

impl Verifier {
    /// A verifier using `client` for every fetch, without a tag → digest cache.
    pub fn new(client: Arc<RegistryClient>) -> Verifier {
        Verifier::with_digest_cache(client, None, EngineMetrics::default())
    }

    /// A verifier that reuses a tag's digest for `digest_ttl` (`None`: never).
    pub fn with_digest_cache(
        client: Arc<RegistryClient>,
        digest_ttl: Option<std::time::Duration>,
        metrics: EngineMetrics,
    ) -> Verifier {
        Verifier {
            client,
            digest_cache: TtlCache::new("digest", digest_ttl, 100_000, metrics.clone()),
            // Evidence lives as long as a tag's digest: a signature added meanwhile is
            // seen within that time; coalesced callers arriving just after a fetch
            // ended find it here instead of fetching again.
            evidence_cache: TtlCache::new("evidence", digest_ttl, 10_000, metrics),
            digests: Arc::default(),
            evidence: Arc::default(),
        }
    }

    /// The registry client.
    pub fn client(&self) -> &Arc<RegistryClient> {
        &self.client
    }

    /// The digest `image` names (its own, or the tag's, resolved once for concurrent
    /// callers).
    pub async fn resolve(&self, image: &Reference) -> Result<String, VerifyError> {
        if let Some(digest) = image.digest() {
            return Ok(digest.to_owned());
        }
        let name = image.to_string();
        let cache_key = key_of(&name);
        if let Some(digest) = self.digest_cache.get(cache_key).await {
            return Ok(digest);
        }
        let client = self.client.clone();
        let owned = image.clone();
        let cache = self.digest_cache.clone();
        // The cache is filled inside the shared execution, before its callers resume:
        // a request arriving between the end of the flight and a later insert would
        // otherwise fetch again.
        let work = async move {
            let digest = client
                .resolve_digest(&owned)
                .await
                .map_err(|e| Arc::new(VerifyError::Registry(e)))?;
            cache.insert(cache_key, digest.clone()).await;
            Ok(Arc::new(digest))
        };
        self.digests
            .run(name, work)
            .await
            .map(|d| d.as_ref().clone())
            .map_err(VerifyError::Shared)
    }

    /// The `.sig` or `.att` layers for `digest`, from `repository` (the image's own
    /// repository unless a signature repository is configured).
    pub async fn evidence(
        &self,
        repository: &Reference,
        kind: EvidenceKind,
        digest: &str,
    ) -> Result<Arc<Evidence>, VerifyError> {
        let key = (repository.name(), kind, digest.to_owned());
        let cache_key = key_of(&key);
        if let Some(evidence) = self.evidence_cache.get(cache_key).await {
            return Ok(evidence);
        }
        let client = self.client.clone();
        let repository = repository.clone();
        let digest = digest.to_owned();
        let cache = self.evidence_cache.clone();
        let work = async move {
            let fetched = match kind {
                EvidenceKind::Bundles => {
                    crate::bundles::fetch_bundles(&client, &repository, &digest).await
                }
                _ => fetch_evidence(&client, &repository, kind, &digest).await,
            };
            let evidence = Arc::new(fetched.map_err(Arc::new)?);
            cache.insert(cache_key, evidence.clone()).await;
            Ok(evidence)
        };
        self.evidence
            .run(key, work)
            .await
            .map_err(VerifyError::Shared)
    }

    /// Resolves `image` and verifies its cosign signatures (`.sig` tag).
    pub async fn verify_signatures(
        &self,
        image: &Reference,
        check: &SignatureCheck,
    ) -> Result<VerifiedSignatures, VerifyError> {
        let digest = self.resolve(image).await?;
        let repository = check.signature_repository.as_ref().unwrap_or(image);
        let evidence = self
            .evidence(repository, EvidenceKind::Signatures, &digest)
            .await?;
        let signatures = check_signatures(&evidence, &digest, check)?;
        Ok(VerifiedSignatures {
            image: image.with_digest(&digest),
            digest,
            signatures,
        })
    }

    /// Resolves `image` and verifies its attestations (`.att` tag) of `predicate_type`
    /// (a URI or one of cosign's short names).
    pub async fn verify_attestations(
        &self,
        image: &Reference,
        check: &SignatureCheck,
        predicate_type: &str,
    ) -> Result<VerifiedAttestations, VerifyError> {
        let digest = self.resolve(image).await?;
        let repository = check.signature_repository.as_ref().unwrap_or(image);
        let evidence = self
            .evidence(repository, EvidenceKind::Attestations, &digest)
            .await?;
        let attestations = check_attestations(&evidence, &digest, &check.keys, predicate_type)?;
        Ok(VerifiedAttestations {
            image: image.with_digest(&digest),
            digest,
            attestations,
        })
    }
}

/// The signatures of `evidence` that satisfy `check` for `digest`.
pub fn check_signatures(
    evidence: &Evidence,
    digest: &str,
    check: &SignatureCheck,
) -> Result<Vec<SimpleSigning>, VerifyError> {
    if evidence.layers.is_empty() {
        return Err(VerifyError::NoSignatures);
    }
    let mut valid = Vec::new();
    let mut reasons = Vec::new();
    for layer in &evidence.layers {
        let Some(signature) = layer.descriptor.annotation(cosign::SIGNATURE_ANNOTATION) else {
            reasons.push("signature layer has no signature annotation".to_owned());
            continue;
        };
        match verify_simple_signing(
            &layer.blob,
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

/// The attestations of `evidence` of `predicate_type` signed by one of `keys` for
/// `digest`.
pub fn check_attestations(
    evidence: &Evidence,
    digest: &str,
    keys: &[PublicKey],
    predicate_type: &str,
) -> Result<Vec<VerifiedEnvelope>, VerifyError> {
    select_attestations(evidence, predicate_type, "predicateType", |layer| {
        let attestation =
            verify_attestation(&layer.blob, keys, Some(digest)).map_err(|e| e.to_string())?;
        let envelope = serde_json::from_slice(&layer.blob).unwrap_or(serde_json::Value::Null);
        Ok(Some(VerifiedEnvelope {
            attestation,
            envelope,
        }))
    })
}

/// The attestations of `predicate_type` among the layers of `evidence`, each checked by
/// `verify` (which returns `None` for a valid signature that carries no statement).
///
/// Tools record the predicate type in an unsigned annotation (`type_annotation`): it
/// only spares signature checks, it never makes an attestation acceptable. Errors say
/// whether nothing verified ("invalid signature") or only other types did ("no
/// matching attestations").
pub(crate) fn select_attestations(
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

/// The layers of `kind` in the manifest at the evidence tag of `digest` in
/// `repository`, with their blobs fetched concurrently.
async fn fetch_evidence(
    client: &RegistryClient,
    repository: &Reference,
    kind: EvidenceKind,
    digest: &str,
) -> Result<Evidence, VerifyError> {
    let malformed = |reference: String, reason: String| VerifyError::MalformedSignatureManifest {
        reference,
        reason,
    };
    let tag = kind
        .tag(digest)
        .map_err(|e| malformed(repository.name(), e.to_string()))?;
    let evidence_ref = repository
        .with_tag(&tag)
        .map_err(|e| malformed(format!("{}:{tag}", repository.name()), e.to_string()))?;
    let Some(fetched) = client.get_manifest(&evidence_ref).await? else {
        return Ok(Evidence::default());
    };
    let manifest = fetched
        .image_manifest()
        .map_err(|e| malformed(evidence_ref.to_string(), e.to_string()))?;
    let candidates: Vec<Descriptor> = manifest
        .layers
        .into_iter()
        .filter(|layer| layer.media_type == kind.media_type())
        .take(MAX_SIGNATURE_LAYERS)
        .collect();
    let limit = client.options().max_blob_bytes;
    let blobs = join_all(
        candidates
            .iter()
            .map(|layer| client.get_blob(&evidence_ref, layer, limit)),
    )
    .await;
    let mut layers = Vec::with_capacity(candidates.len());
    for (descriptor, blob) in candidates.into_iter().zip(blobs) {
        layers.push(Layer {
            descriptor,
            blob: blob?,
        });
    }
    Ok(Evidence { layers })
}

/// Distinct reasons, in order, joined for one message.
fn summarise(reasons: Vec<String>) -> String {
    let mut seen = std::collections::HashSet::new();
    // The variant's message already says "invalid signature: ".
    let mut reasons: Vec<String> = reasons
        .into_iter()
        .map(|r| {
            r.strip_prefix("invalid signature: ")
                .map(str::to_owned)
                .unwrap_or(r)
        })
        .collect();
    reasons.retain(|r| seen.insert(r.clone()));
    if reasons.is_empty() {
        "no signature verified".to_owned()
    } else {
        reasons.join("; ")
    }
}
