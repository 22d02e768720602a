//! The one verdict cache of the engine, for every policy kind: what verifying one image
//! digest under one verification concluded, keyed by digest, repository and what is
//! verified — so a ClusterPolicy rule and an ImageValidatingPolicy with the same key
//! verify an image once. Verified verdicts live long, failed ones briefly, errors not
//! at all; concurrent lookups of one key share one verification (single-flight).

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use imagegate_policy::model::{
    CTLog, ImageRegistryCredentials, ImageVerification, Rekor, VerificationType,
};
use moka::future::Cache;

use crate::attestors::{AttestorFailure, split_pem_blocks};
use crate::cache::{CacheOptions, key_of};
use crate::metrics::EngineMetrics;

/// What verifying one image digest under one verification concluded, whichever kind
/// of policy asked: the same attestors on the same digest give the same verdict, so a
/// ClusterPolicy rule and an ImageValidatingPolicy naming the same key share it.
#[derive(Debug, Clone)]
pub(crate) struct DigestVerdict {
    /// Why verification failed; `None`: verified.
    pub failure: Option<AttestorFailure>,
    /// The predicate of the verified in-toto attestation, when an ImageValidatingPolicy
    /// attestation check produced the verdict (its CEL reads it).
    pub payload: Option<serde_json::Value>,
}

impl DigestVerdict {
    /// Whether the verification could not be carried out (registry error, deadline):
    /// such a verdict is never cached, the next request tries again.
    fn is_error(&self) -> bool {
        self.failure.as_ref().is_some_and(|f| f.cause().is_error())
    }
}

/// The one verdict cache of the engine, for every policy kind: keyed by digest,
/// repository and what is verified ([`verification_identity`]); verified verdicts live
/// `verdict_ttl`, failed ones `negative_ttl`, errors not at all. Concurrent lookups of
/// the same key share one verification (single-flight, across policy kinds too).
#[derive(Debug, Clone)]
pub(crate) struct VerdictCache {
    inner: Option<Cache<u64, Stamped>>,
    metrics: EngineMetrics,
    /// Verdicts reached before this instant are not reused (see
    /// [`VerdictCache::fresh_since`]).
    since: Option<Instant>,
}

/// A verdict and when it was reached.
#[derive(Debug, Clone)]
struct Stamped {
    at: Instant,
    verdict: DigestVerdict,
}

/// Per-entry lifetime: verified or failed.
struct VerdictExpiry {
    verified: Duration,
    failed: Duration,
}

impl VerdictExpiry {
    fn of(&self, value: &Stamped) -> Duration {
        if value.verdict.failure.is_none() {
            self.verified
        } else {
            self.failed
        }
    }
}

impl moka::Expiry<u64, Stamped> for VerdictExpiry {
    fn expire_after_create(
        &self,
        _key: &u64,
        value: &Stamped,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(self.of(value))
    }

    /// A verdict reached again (a background scan's re-verification) lives its full
    /// lifetime from now, as a new one does.
    fn expire_after_update(
        &self,
        _key: &u64,
        value: &Stamped,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.of(value))
    }
}

impl VerdictCache {
    /// The cache `options` describe; disabled when neither verdicts nor failures are
    /// kept.
    pub fn new(options: &CacheOptions, metrics: EngineMetrics) -> VerdictCache {
        let keep = |ttl: Option<Duration>| ttl.unwrap_or(Duration::ZERO);
        let (verified, failed) = (keep(options.verdict_ttl), keep(options.negative_ttl));
        let enabled = options.verdict_capacity > 0 && (!verified.is_zero() || !failed.is_zero());
        let inner = enabled.then(|| {
            Cache::builder()
                .max_capacity(options.verdict_capacity)
                .expire_after(VerdictExpiry { verified, failed })
                .build()
        });
        VerdictCache {
            inner,
            metrics,
            since: None,
        }
    }

    /// This cache (the same entries) not reusing verdicts reached before `since`: they
    /// are verified again and the new verdict replaces the old one for every user.
    ///
    /// Why a background scan needs it: a verified verdict lives an hour by default, as
    /// long as the default scan interval, so without it a scan could report a pass
    /// from a verdict reached before a signature was deleted or a key rotated (Kyverno
    /// #7525, the report that goes stale). With the scan's start as `since`, every digest
    /// is verified at least once per scan, and exactly once: a verdict reached during the
    /// scan (by the scan or by an admission) serves the rest of it. Admission keeps the
    /// cache's lifetimes.
    pub fn fresh_since(&self, since: Instant) -> VerdictCache {
        let mut cache = self.clone();
        cache.since = Some(since);
        cache
    }

    /// The cached verdict for `key`, else the one `verify()` gives (cached unless it is an
    /// error). Callers arriving while a verification for `key` is under way await it.
    ///
    /// `verify` builds the verification only on a miss, on the heap: a verification's
    /// future is tens of KiB (the registry client's futures inline), and a review holds
    /// one lookup per image and verifyImages entry at once, most of them hits or waiting
    /// on another's flight, so keeping it out of the lookup keeps them small.
    pub async fn get_or_verify<F>(&self, key: u64, verify: impl FnOnce() -> F) -> DigestVerdict
    where
        F: Future<Output = DigestVerdict>,
    {
        let verify = move || Box::pin(verify());
        let Some(cache) = &self.inner else {
            return verify().await;
        };
        if let Some(since) = self.since {
            return self.get_fresh_or_verify(cache, key, since, verify).await;
        }
        let entry = cache
            .entry(key)
            .or_try_insert_with(async {
                let verdict = self.timed(verify()).await;
                if verdict.is_error() {
                    Err(verdict)
                } else {
                    Ok(Stamped {
                        at: Instant::now(),
                        verdict,
                    })
                }
            })
            .await;
        match entry {
            Ok(entry) => {
                let hit = !entry.is_fresh();
                let verdict = entry.into_value().verdict;
                self.metrics.cache_lookup(Self::kind(&verdict), hit);
                verdict
            }
            Err(error) => {
                self.metrics.cache_lookup("verdict", false);
                (*error).clone()
            }
        }
    }

    /// [`VerdictCache::get_or_verify`] not reusing a verdict reached before `since`.
    /// Lookups of one key run one after the other (moka's per-key compute lock), so
    /// concurrent scan workers needing the same stale verdict verify it once: the first
    /// replaces it, the next find the fresh one.
    async fn get_fresh_or_verify<F>(
        &self,
        cache: &Cache<u64, Stamped>,
        key: u64,
        since: Instant,
        verify: impl FnOnce() -> Pin<Box<F>>,
    ) -> DigestVerdict
    where
        F: Future<Output = DigestVerdict>,
    {
        use moka::ops::compute::{CompResult, Op};
        let mut verified: Option<DigestVerdict> = None;
        let outcome = cache
            .entry(key)
            .and_compute_with(|existing| {
                let current = existing
                    .map(|entry| entry.into_value())
                    .filter(|stamped| stamped.at >= since);
                let verified = &mut verified;
                async move {
                    if current.is_some() {
                        return Op::Nop;
                    }
                    let verdict = self.timed(verify()).await;
                    *verified = Some(verdict.clone());
                    if verdict.is_error() {
                        // Not cached; a stale entry goes too (it is no longer what the
                        // registry says) and the next lookup tries again.
                        Op::Remove
                    } else {
                        Op::Put(Stamped {
                            at: Instant::now(),
                            verdict,
                        })
                    }
                }
            })
            .await;
        if let Some(verdict) = verified {
            self.metrics.cache_lookup(Self::kind(&verdict), false);
            return verdict;
        }
        match outcome {
            CompResult::Unchanged(entry) => {
                let verdict = entry.into_value().verdict;
                self.metrics.cache_lookup(Self::kind(&verdict), true);
                verdict
            }
            // moka always runs the closure, which either verifies or leaves a fresh entry
            // unchanged; should that ever not hold, the rule fails rather than passes.
            _ => DigestVerdict {
                failure: Some(AttestorFailure::Configuration {
                    path: "verdict cache".into(),
                    message: "no verdict was reached (a defect of imagegate)".into(),
                }),
                payload: None,
            },
        }
    }

    async fn timed(&self, verify: impl Future<Output = DigestVerdict>) -> DigestVerdict {
        let started = std::time::Instant::now();
        let verdict = verify.await;
        self.metrics.verification_took(started.elapsed());
        verdict
    }

    fn kind(verdict: &DigestVerdict) -> &'static str {
        if verdict.failure.is_none() {
            "verdict"
        } else {
            "negative"
        }
    }

    /// Forgets `key` (a verdict that cannot serve the caller, e.g. one without the
    /// attestation payload an ImageValidatingPolicy needs).
    pub async fn forget(&self, key: u64) {
        if let Some(cache) = &self.inner {
            cache.invalidate(&key).await;
        }
    }

    /// Entries currently held (exact: pending maintenance is run first).
    pub async fn len(&self) -> u64 {
        match &self.inner {
            Some(cache) => {
                cache.run_pending_tasks().await;
                cache.entry_count()
            }
            None => 0,
        }
    }
}

/// The cache identity of what a verifyImages entry verifies, the same for a
/// ClusterPolicy rule and for the entry an ImageValidatingPolicy attestor becomes:
/// attestors, attestations (with their conditions), repository, credentials and
/// evidence type; not which images it covers, what it does with the result
/// (`mutateDigest`, `verifyDigest`, `required`, failure action, `validate`), nor
/// spelling that does not change the check (PEM whitespace, the default `sha256`,
/// `count: 1` of a single entry with one key; but a PEM with several keys is several
/// entries, where `count` decides). A changed policy that verifies differently never
/// reuses an old verdict.
pub(crate) fn verification_identity(verification: &ImageVerification) -> u64 {
    let mut value = serde_json::to_value(verification).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        for field in [
            "failureAction",
            "imageReferences",
            "skipImageReferences",
            "mutateDigest",
            "verifyDigest",
            "required",
            "useCache",
            "validate",
        ] {
            map.remove(field);
        }
        // Defaults written out or left out are the same check (an ImageValidatingPolicy's
        // entry spells them out, a ClusterPolicy's usually does not).
        if map.get("type").is_none_or(serde_json::Value::is_null) {
            map.insert("type".into(), serde_json::json!(VerificationType::Cosign));
        }
        let default_credentials =
            serde_json::to_value(ImageRegistryCredentials::default()).unwrap_or_default();
        if map.get("imageRegistryCredentials") == Some(&default_credentials) {
            map.insert("imageRegistryCredentials".into(), serde_json::Value::Null);
        }
    }
    // No credentials means the default ones (an IVP entry always carries its own).
    if let (Some(map), Ok(default)) = (
        value.as_object_mut(),
        serde_json::to_value(ImageRegistryCredentials::default()),
    ) && map
        .get("imageRegistryCredentials")
        .is_none_or(serde_json::Value::is_null)
    {
        map.insert("imageRegistryCredentials".into(), default);
    }
    // No `type` means Cosign (an IVP entry names its type).
    if let Some(map) = value.as_object_mut()
        && map.get("type").is_none_or(serde_json::Value::is_null)
    {
        map.insert("type".into(), serde_json::Value::from("Cosign"));
    }
    normalize_identity(&mut value);
    key_of(&value.to_string())
}

/// Fields holding PEM text (keys, certificates, chains): surrounding whitespace is
/// not part of the key.
const PEM_FIELDS: &[&str] = &[
    "publicKeys",
    "cert",
    "certChain",
    "roots",
    "pubkey",
    "tsaCertChain",
];

fn normalize_identity(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            // A PEM of several keys is as many entries (Kyverno counts each key), so
            // `count: 1` of it is a real choice.
            let single_entry =
                map.get("entries")
                    .and_then(Value::as_array)
                    .is_some_and(|entries| {
                        entries.len() == 1
                            && entries[0]
                                .pointer("/keys/publicKeys")
                                .and_then(Value::as_str)
                                .is_none_or(|pem| split_pem_blocks(pem).len() <= 1)
                    });
            if single_entry && map.get("count").and_then(Value::as_u64) == Some(1) {
                map.insert("count".into(), Value::Null);
            }
            if map.contains_key("publicKeys")
                && map.get("signatureAlgorithm").is_none_or(Value::is_null)
            {
                map.insert("signatureAlgorithm".into(), Value::from("sha256"));
            }
            // No `rekor`/`ctlog` means their defaults.
            for (field, default) in [
                ("rekor", serde_json::to_value(Rekor::default())),
                ("ctlog", serde_json::to_value(CTLog::default())),
            ] {
                if let (Some(Value::Null), Ok(default)) = (map.get(field), default) {
                    map.insert(field.into(), default);
                }
            }
            for (field, item) in map.iter_mut() {
                match item {
                    Value::String(text) if PEM_FIELDS.contains(&field.as_str()) => {
                        *text = text.trim().to_owned();
                    }
                    other => normalize_identity(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_identity),
        _ => {}
    }
}
