//! Fetching the evidence of one image: resolving tags, the legacy cosign `.sig`/`.att`
//! tags, and Sigstore bundles discovered as OCI 1.1 referrers. The [`Verifier`] caches
//! and coalesces these fetches; checking the evidence is [`crate::check`]'s job.
//!
//! The evidence of an image is fetched once, however many policies, rules and attestors
//! check it, and concurrent fetches of the same evidence are coalesced. For a tagged
//! image the registry work is: resolve the tag (`HEAD`), fetch the `sha256-<hex>.sig`
//! manifest, fetch its payload blobs concurrently.
//!
//! Bundles are stored as cosign v3 does: OCI 1.1 referrers of the image (a manifest
//! whose `subject` is the image and whose layer is the bundle), found through the
//! referrers API or, on registries without it, the `sha256-<hex>` fallback tag index.
//!
//! Notation signatures are referrers too (`artifactType`
//! `application/vnd.cncf.notary.signature`, one JWS or COSE envelope layer). Verifying
//! one needs the image manifest's descriptor (media type and size, which the signature
//! signs): the tag's `HEAD` gives it, and it is kept by digest, so a cold Notation
//! verification of a tagged image costs the `HEAD`, the referrers (API, or fallback tag
//! on registries known to lack the API), the signature manifest and the envelope.
//! Notation attestations are referring artifacts of a type (an SBOM), each verified
//! through its own Notation signatures.
//!
//! Discovery is deliberately lenient about `artifactType` in the fallback index: cosign
//! (go-containerregistry) writes the referring manifest's config media type there
//! (`application/vnd.oci.empty.v1+json`), not the bundle type, and filtering on it
//! loses every bundle (Kyverno bug 16664). What counts is the referring manifest:
//! its `subject` must be the image, and only its bundle layers are read, size-limited
//! and digest-checked. Trust comes from verifying each bundle against the image digest.

use std::sync::Arc;

use futures::future::join_all;
use imagegate_oci::{
    Call, CallOptions, Descriptor, PullSecrets, Reference, ReferrersSource, RegistryClient,
    RequestGate,
};

use imagegate_policy::model::ImageVerification;

use crate::cache::{TtlCache, key_of};
use crate::evidence::{
    BUNDLE_MEDIA_TYPE, Evidence, EvidenceKind, Layer, ReferrerArtifact, VerifyError,
    is_bundle_media_type,
};
use crate::flight::SingleFlight;
use crate::metrics::EngineMetrics;

/// At most this many layers of one signature manifest are looked at; cosign appends one
/// per signing, so a larger number means something is wrong.
const MAX_SIGNATURE_LAYERS: usize = 64;
/// Largest simple-signing payload read: cosign's are a few hundred bytes (well under
/// 4 KiB with annotations); the client's blob limit is meant for attestations.
const MAX_SIGNATURE_PAYLOAD_BYTES: u64 = 64 * 1024;
/// Most bytes of evidence (`.sig`/`.att` layers or referred bundles) read for one image
/// and kind (issue 8 item 9): 64 layers at the client's blob limit would be hundreds of
/// MiB per image, fetched concurrently.
pub(crate) const MAX_EVIDENCE_BYTES: u64 = 16 * 1024 * 1024;
/// Bytes the evidence cache holds (entries weigh what their blobs weigh).
const EVIDENCE_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// The OCI empty descriptor media type (what go-containerregistry lists as the
/// artifact type of a referrer without its own).
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// Referrers looked at per image; more means something is wrong.
const MAX_REFERRERS: usize = 64;
/// Bundle layers read per referring manifest.
const MAX_BUNDLE_LAYERS: usize = 8;
/// Manifest descriptors kept by digest. What a digest names never changes, so they are
/// kept whatever the digest cache's lifetime: the descriptor a tag's `HEAD` returned
/// serves the Notation check of that digest without another request.
const DESCRIPTOR_CACHE_ENTRIES: u64 = 100_000;
const DESCRIPTOR_TTL: std::time::Duration = std::time::Duration::from_secs(3600);
/// Envelope layer media types of Notation signature manifests.
const NOTATION_ENVELOPE_TYPES: [&str; 2] = [
    imagegate_notation::JWS_MEDIA_TYPE,
    imagegate_notation::COSE_MEDIA_TYPE,
];
/// Largest payload of a referring artifact read (an SBOM), as Kyverno's notary
/// verifier allows (10 MB); the evidence budget bounds their sum.
const MAX_ARTIFACT_PAYLOAD_BYTES: u64 = 10 * 1000 * 1000;

type Flight<T> = Result<Arc<T>, Arc<VerifyError>>;

/// What one evidence fetch is about: repository, kind, digest, for
/// [`EvidenceKind::Artifacts`] the artifact type (empty otherwise), and access.
type EvidenceKey = (String, EvidenceKind, String, String, Access);

/// How the registries of one verification may be reached, beyond what the client
/// allows every verification (loopback, `--allow-insecure-registry`). Part of every
/// cache and single-flight key: an answer fetched over plain HTTP never serves a
/// verification that allows HTTPS only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Access {
    /// Plain HTTP is allowed for every registry (tried first, HTTPS when refused).
    pub allow_plain_http: bool,
}

impl Access {
    /// What a verifyImages entry allows: Kyverno's per-entry
    /// `imageRegistryCredentials.allowInsecureRegistry`.
    pub fn of(verification: &ImageVerification) -> Access {
        Access {
            allow_plain_http: verification.allows_insecure_registry(),
        }
    }

    /// The options of a call with this access over `base` (the verifier's: its pull
    /// secrets).
    fn call_options(self, base: &CallOptions) -> CallOptions {
        CallOptions {
            allow_plain_http: self.allow_plain_http,
            ..base.clone()
        }
    }
}

/// Fetches the evidence of images through a shared registry client, caching it and
/// coalescing identical concurrent fetches.
///
/// A verifier may carry pull secrets ([`Verifier::with_pull_secrets`]): its requests
/// then authenticate with them first. A tag's digest is cached and coalesced per
/// [`Access`] and credential identity, so nobody is given a resolution made with credentials they do
/// not hold; evidence is a fact about a digest and is cached by digest alone (only
/// successful fetches are cached; coalescing is per identity).
#[derive(Debug, Clone)]
pub struct Verifier {
    client: Arc<RegistryClient>,
    call: CallOptions,
    digest_cache: TtlCache<String>,
    descriptor_cache: TtlCache<Descriptor>,
    evidence_cache: TtlCache<Arc<Evidence>>,
    digests: Arc<SingleFlight<(String, Access, u64), Flight<String>>>,
    evidence: Arc<SingleFlight<(EvidenceKey, u64), Flight<Evidence>>>,
    /// Cached digests and evidence stored before this instant are not used (a
    /// background scan's start: [`Verifier::fresh_since`]).
    since: Option<std::time::Instant>,
}

impl Verifier {
    /// A verifier using `client` for every fetch, without a tag → digest cache.
    pub fn new(client: Arc<RegistryClient>) -> Verifier {
        Verifier::with_digest_cache(client, None, EngineMetrics::default())
    }

    /// A verifier that reuses a tag's digest for `digest_ttl` (`None`: never); engines
    /// get theirs from [`crate::EngineBuilder`].
    pub(crate) fn with_digest_cache(
        client: Arc<RegistryClient>,
        digest_ttl: Option<std::time::Duration>,
        metrics: EngineMetrics,
    ) -> Verifier {
        Verifier {
            client,
            call: CallOptions::default(),
            digest_cache: TtlCache::new("digest", digest_ttl, 100_000, metrics.clone()),
            descriptor_cache: TtlCache::new(
                "descriptor",
                Some(DESCRIPTOR_TTL),
                DESCRIPTOR_CACHE_ENTRIES,
                metrics.clone(),
            ),
            // Evidence lives as long as a tag's digest: a signature added meanwhile is
            // seen within that time; coalesced callers arriving just after a fetch
            // ended find it here instead of fetching again.
            evidence_cache: TtlCache::weighed(
                "evidence",
                digest_ttl,
                EVIDENCE_CACHE_BYTES,
                |evidence: &Arc<Evidence>| evidence.bytes(),
                metrics,
            ),
            digests: Arc::default(),
            evidence: Arc::default(),
            since: None,
        }
    }

    /// The registry client.
    pub fn client(&self) -> &Arc<RegistryClient> {
        &self.client
    }

    /// This verifier (sharing its caches) authenticating with `pull_secrets` before the
    /// client's docker config.
    pub fn with_pull_secrets(&self, pull_secrets: Option<Arc<PullSecrets>>) -> Verifier {
        let mut verifier = self.clone();
        verifier.call.pull_secrets = pull_secrets.filter(|s| !s.is_empty());
        verifier
    }

    /// This verifier (sharing its caches) ignoring tag digests and evidence cached
    /// before `since`: what it fetches anew replaces them, for everyone. A background
    /// scan uses it so that a signature deleted, or a tag moved, since the cache learned
    /// otherwise is noticed by the scan, while admission keeps the cache's lifetimes.
    pub fn fresh_since(&self, since: std::time::Instant) -> Verifier {
        let mut verifier = self.clone();
        verifier.since = Some(since);
        verifier
    }

    /// This verifier (sharing its caches) sending every registry request through
    /// `gate` first (a background scan's concurrency and rate bound).
    pub fn with_gate(&self, gate: Option<RequestGate>) -> Verifier {
        let mut verifier = self.clone();
        verifier.call.gate = gate;
        verifier
    }

    /// Whose credentials this verifier uses for `registry` (0: the docker config's).
    pub fn identity(&self, registry: &str) -> u64 {
        self.call
            .pull_secrets
            .as_ref()
            .map_or(0, |secrets| secrets.identity_for(registry))
    }

    /// The digest `image` names (its own, or the tag's, resolved once for concurrent
    /// callers with the same `access` and credentials).
    pub async fn resolve(&self, image: &Reference, access: Access) -> Result<String, VerifyError> {
        if let Some(digest) = image.digest() {
            return Ok(digest.to_owned());
        }
        let key = (image.to_string(), access, self.identity(image.registry()));
        let cache_key = key_of(&key);
        if let Some(digest) = self.digest_cache.get_since(cache_key, self.since).await {
            return Ok(digest);
        }
        let client = self.client.clone();
        let call = access.call_options(&self.call);
        let owned = image.clone();
        let cache = self.digest_cache.clone();
        let descriptors = self.descriptor_cache.clone();
        // The cache is filled inside the shared execution, before its callers resume:
        // a request arriving between the end of the flight and a later insert would
        // otherwise fetch again.
        let work = async move {
            let descriptor = client
                .call(call)
                .resolve_descriptor(&owned)
                .await
                .map_err(|e| Arc::new(VerifyError::Registry(e)))?;
            let digest = descriptor.digest.clone();
            descriptors
                .insert(key_of(&(owned.name(), &digest, access)), descriptor)
                .await;
            cache.insert(cache_key, digest.clone()).await;
            Ok(Arc::new(digest))
        };
        self.digests
            .run(key, work)
            .await
            .map(|d| d.as_ref().clone())
            .map_err(VerifyError::Shared)
    }

    /// The descriptor (media type, digest, size) of the manifest `digest` in the
    /// repository of `image`: what [`Verifier::resolve`] learned from the tag, else one
    /// `HEAD` by digest.
    pub async fn manifest_descriptor(
        &self,
        image: &Reference,
        digest: &str,
        access: Access,
    ) -> Result<Descriptor, VerifyError> {
        let cache_key = key_of(&(image.name(), digest, access));
        if let Some(descriptor) = self.descriptor_cache.get(cache_key).await {
            return Ok(descriptor);
        }
        let pinned =
            image
                .try_with_digest(digest)
                .map_err(|e| VerifyError::MalformedSignatureManifest {
                    reference: format!("{}@{digest}", image.name()),
                    reason: e.to_string(),
                })?;
        let descriptor = self
            .client
            .call(access.call_options(&self.call))
            .resolve_descriptor(&pinned)
            .await?;
        self.descriptor_cache
            .insert(cache_key, descriptor.clone())
            .await;
        Ok(descriptor)
    }

    /// The evidence of `kind` for `digest` (`.sig`/`.att` layers, bundle or Notation
    /// envelope layers of referrers), from `repository` (the image's own repository
    /// unless a signature repository is configured).
    pub async fn evidence(
        &self,
        repository: &Reference,
        kind: EvidenceKind,
        digest: &str,
        access: Access,
    ) -> Result<Arc<Evidence>, VerifyError> {
        self.fetch(repository, kind, digest, "", access).await
    }

    /// The artifacts of `artifact_type` referring to `digest` in `repository`, each
    /// with its payload (Notation attestations).
    pub async fn artifacts(
        &self,
        repository: &Reference,
        digest: &str,
        artifact_type: &str,
        access: Access,
    ) -> Result<Arc<Evidence>, VerifyError> {
        self.fetch(
            repository,
            EvidenceKind::Artifacts,
            digest,
            artifact_type,
            access,
        )
        .await
    }

    async fn fetch(
        &self,
        repository: &Reference,
        kind: EvidenceKind,
        digest: &str,
        artifact_type: &str,
        access: Access,
    ) -> Result<Arc<Evidence>, VerifyError> {
        let key: EvidenceKey = (
            repository.name(),
            kind,
            digest.to_owned(),
            artifact_type.to_owned(),
            access,
        );
        let cache_key = key_of(&key);
        if let Some(evidence) = self.evidence_cache.get_since(cache_key, self.since).await {
            return Ok(evidence);
        }
        let flight = (key, self.identity(repository.registry()));
        let client = self.client.clone();
        let call = access.call_options(&self.call);
        let repository = repository.clone();
        let digest = digest.to_owned();
        let artifact_type = artifact_type.to_owned();
        let cache = self.evidence_cache.clone();
        let work = async move {
            let call = client.call(call);
            let fetched = match kind {
                EvidenceKind::Bundles => fetch_bundles(&call, &repository, &digest).await,
                EvidenceKind::NotationSignatures => {
                    fetch_notation_signatures(&call, &repository, &digest).await
                }
                EvidenceKind::Artifacts => {
                    fetch_artifacts(&call, &repository, &digest, &artifact_type).await
                }
                EvidenceKind::Signatures | EvidenceKind::Attestations => {
                    fetch_evidence(&call, &repository, kind, &digest).await
                }
            };
            let evidence = Arc::new(fetched.map_err(Arc::new)?);
            cache.insert(cache_key, evidence.clone()).await;
            Ok(evidence)
        };
        self.evidence
            .run(flight, work)
            .await
            .map_err(VerifyError::Shared)
    }
}

/// The layers of `kind` in the manifest at the evidence tag of `digest` in
/// `repository`, with their blobs fetched concurrently.
async fn fetch_evidence(
    call: &Call<'_>,
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
    let Some(fetched) = call.get_manifest(&evidence_ref).await? else {
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
    let mut limit = call.client().options().max_blob_bytes;
    if kind == EvidenceKind::Signatures {
        limit = limit.min(MAX_SIGNATURE_PAYLOAD_BYTES);
    }
    // Declared sizes are checked by the client against what it reads; a manifest
    // declaring more than the budget is refused before any blob is fetched.
    let budget = Budget::new(MAX_EVIDENCE_BYTES);
    budget.reserve(&candidates, &evidence_ref.to_string())?;
    let blobs = join_all(
        candidates
            .iter()
            .map(|layer| call.get_blob(&evidence_ref, layer, limit)),
    )
    .await;
    let mut layers = Vec::with_capacity(candidates.len());
    for (descriptor, blob) in candidates.into_iter().zip(blobs) {
        layers.push(Layer {
            descriptor,
            blob: blob?,
        });
    }
    Ok(Evidence {
        layers,
        artifacts: Vec::new(),
    })
}

/// The bundle layers of the manifests referring to `digest` in `repository` (the
/// image's own repository or a signature repository). Each layer descriptor carries the
/// referring manifest's annotations too (`dev.sigstore.bundle.predicateType`).
async fn fetch_bundles(
    call: &Call<'_>,
    repository: &Reference,
    digest: &str,
) -> Result<Evidence, VerifyError> {
    let referrers = call
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
    let wanted = LayerQuery {
        media_type: is_bundle_media_type,
        most: MAX_BUNDLE_LAYERS,
        limit: call.client().options().max_blob_bytes,
    };
    let layers = referred_layers(call, repository, digest, &candidates, &wanted).await?;
    Ok(Evidence {
        layers: layers.into_iter().flat_map(|(_, layers)| layers).collect(),
        artifacts: Vec::new(),
    })
}

/// The envelope layers of the Notation signature manifests referring to `digest` in
/// `repository`. Listed entries of another `artifactType` are not fetched (Notation
/// writes the signature type in the fallback index too; hiding a signature there can
/// only make verification fail); the envelope's own check decides what it signs.
async fn fetch_notation_signatures(
    call: &Call<'_>,
    repository: &Reference,
    digest: &str,
) -> Result<Evidence, VerifyError> {
    let signature_type = imagegate_notation::SIGNATURE_ARTIFACT_TYPE;
    let candidates = referrers_of_type(call, repository, digest, signature_type).await?;
    let wanted = LayerQuery {
        media_type: |t| NOTATION_ENVELOPE_TYPES.contains(&t),
        most: 1,
        limit: imagegate_notation::limits::MAX_ENVELOPE_SIZE as u64,
    };
    let layers = referred_layers(call, repository, digest, &candidates, &wanted).await?;
    Ok(Evidence {
        layers: layers.into_iter().flat_map(|(_, layers)| layers).collect(),
        artifacts: Vec::new(),
    })
}

/// The artifacts of `artifact_type` referring to `digest` in `repository` with their
/// single payload layer (Kyverno reads exactly one; others are skipped).
async fn fetch_artifacts(
    call: &Call<'_>,
    repository: &Reference,
    digest: &str,
    artifact_type: &str,
) -> Result<Evidence, VerifyError> {
    let candidates = referrers_of_type(call, repository, digest, artifact_type).await?;
    let wanted = LayerQuery {
        media_type: |_| true,
        most: 2,
        limit: MAX_ARTIFACT_PAYLOAD_BYTES.min(call.client().options().max_blob_bytes),
    };
    let mut artifacts = Vec::new();
    for (manifest, mut layers) in
        referred_layers(call, repository, digest, &candidates, &wanted).await?
    {
        if layers.len() != 1 {
            continue;
        }
        artifacts.push(ReferrerArtifact {
            manifest: Descriptor {
                artifact_type: Some(artifact_type.to_owned()),
                ..manifest
            },
            payload: layers.remove(0),
        });
    }
    Ok(Evidence {
        layers: Vec::new(),
        artifacts,
    })
}

/// The referrers of `digest` listed with `artifact_type`, at most [`MAX_REFERRERS`].
async fn referrers_of_type(
    call: &Call<'_>,
    repository: &Reference,
    digest: &str,
    artifact_type: &str,
) -> Result<Vec<Descriptor>, VerifyError> {
    let referrers = call
        .get_referrers(repository, digest, Some(artifact_type))
        .await?;
    Ok(referrers
        .index
        .manifests
        .into_iter()
        .filter(|entry| entry.artifact_type.as_deref() == Some(artifact_type))
        .take(MAX_REFERRERS)
        .collect())
}

/// The wanted layers of the referring manifests `candidates` (fetched concurrently,
/// within one evidence budget) with each manifest's descriptor; manifests that are
/// gone, indexes or about another digest are left out.
async fn referred_layers(
    call: &Call<'_>,
    repository: &Reference,
    digest: &str,
    candidates: &[Descriptor],
    wanted: &LayerQuery,
) -> Result<Vec<(Descriptor, Vec<Layer>)>, VerifyError> {
    let budget = Budget::new(MAX_EVIDENCE_BYTES);
    let manifests = join_all(
        candidates
            .iter()
            .map(|entry| referring_layers(call, repository, digest, entry, wanted, &budget)),
    )
    .await;
    let mut found = Vec::with_capacity(manifests.len());
    for manifest in manifests {
        found.extend(manifest?);
    }
    Ok(found)
}

/// Which layers of a referring manifest are read, how many, and how large each may be.
struct LayerQuery {
    media_type: fn(&str) -> bool,
    most: usize,
    limit: u64,
}

/// The wanted layers of one referring manifest, with the manifest's descriptor; `None`
/// when it is gone, an index, or not about `digest`.
async fn referring_layers(
    call: &Call<'_>,
    repository: &Reference,
    digest: &str,
    entry: &Descriptor,
    wanted: &LayerQuery,
    budget: &Budget,
) -> Result<Option<(Descriptor, Vec<Layer>)>, VerifyError> {
    let malformed = |reason: String| VerifyError::MalformedSignatureManifest {
        reference: format!("{}@{}", repository.name(), entry.digest),
        reason,
    };
    let reference = repository
        .try_with_digest(&entry.digest)
        .map_err(|e| malformed(e.to_string()))?;
    let Some(fetched) = call.get_manifest(&reference).await? else {
        // A stale index entry: the referrer was deleted.
        return Ok(None);
    };
    if fetched.is_index() {
        return Ok(None);
    }
    let manifest = fetched
        .image_manifest()
        .map_err(|e| malformed(e.to_string()))?;
    if manifest
        .subject
        .as_ref()
        .is_some_and(|subject| subject.digest != digest)
    {
        return Ok(None);
    }
    let descriptor = Descriptor {
        media_type: fetched.media_type.clone(),
        digest: fetched.digest.clone(),
        size: fetched.bytes.len() as u64,
        annotations: manifest.annotations.clone(),
        artifact_type: None,
    };
    let wanted_layers: Vec<Descriptor> = manifest
        .layers
        .into_iter()
        .filter(|layer| (wanted.media_type)(&layer.media_type))
        .take(wanted.most)
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
    budget.reserve(&wanted_layers, &reference.to_string())?;
    let blobs = join_all(
        wanted_layers
            .iter()
            .map(|layer| call.get_blob(&reference, layer, wanted.limit)),
    )
    .await;
    let mut layers = Vec::with_capacity(wanted_layers.len());
    for (descriptor, blob) in wanted_layers.into_iter().zip(blobs) {
        layers.push(Layer {
            descriptor,
            blob: blob?,
        });
    }
    Ok(Some((descriptor, layers)))
}

/// The bytes of evidence one image may still fetch, shared by concurrent fetches.
struct Budget {
    left: std::sync::atomic::AtomicU64,
    limit: u64,
}

impl Budget {
    fn new(limit: u64) -> Budget {
        Budget {
            left: std::sync::atomic::AtomicU64::new(limit),
            limit,
        }
    }

    /// Takes the declared sizes of `layers` out of the budget, or refuses them all.
    fn reserve(&self, layers: &[Descriptor], reference: &str) -> Result<(), VerifyError> {
        use std::sync::atomic::Ordering;
        let wanted = layers
            .iter()
            .fold(0u64, |sum, layer| sum.saturating_add(layer.size));
        self.left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(wanted)
            })
            .map(|_| ())
            .map_err(|_| VerifyError::EvidenceTooLarge {
                reference: reference.to_owned(),
                limit: self.limit,
            })
    }
}
