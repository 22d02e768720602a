//! Caches keyed by digest, never by tag alone (Kyverno GHSA-2r43-6962-xcw5 was a
//! tag-keyed cache): tag → digest for a short time; verdicts on a digest (one cache for
//! ClusterPolicy rules and ImageValidatingPolicies) for long when verified, for a short
//! time when failed.

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use imagegate_policy::model::{CTLog, ImageVerification, Rekor};
use moka::future::Cache;

use crate::attestors::AttestorFailure;
use crate::metrics::EngineMetrics;

/// Cache sizes and lifetimes; `None` disables a cache.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// How long a verified verdict is reused (default 1 h).
    pub verdict_ttl: Option<Duration>,
    /// How many verdicts are kept (default 10 000).
    pub verdict_capacity: u64,
    /// How long a failed verification is reused (default 30 s).
    pub negative_ttl: Option<Duration>,
    /// How long a tag's digest is reused (default 30 s).
    pub digest_ttl: Option<Duration>,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            verdict_ttl: Some(Duration::from_secs(3600)),
            verdict_capacity: 10_000,
            negative_ttl: Some(Duration::from_secs(30)),
            digest_ttl: Some(Duration::from_secs(30)),
        }
    }
}

impl CacheOptions {
    /// No caching at all (every request verifies afresh).
    pub fn disabled() -> CacheOptions {
        CacheOptions {
            verdict_ttl: None,
            verdict_capacity: 0,
            negative_ttl: None,
            digest_ttl: None,
        }
    }
}

/// A cache that may be switched off, counting hits and misses under one name.
#[derive(Debug, Clone)]
pub struct TtlCache<V: Clone + Send + Sync + 'static> {
    name: &'static str,
    inner: Option<Cache<u64, V>>,
    metrics: EngineMetrics,
}

impl<V: Clone + Send + Sync + 'static> TtlCache<V> {
    /// A cache of at most `capacity` entries living `ttl`; disabled when `ttl` is `None`.
    pub fn new(
        name: &'static str,
        ttl: Option<Duration>,
        capacity: u64,
        metrics: EngineMetrics,
    ) -> Self {
        TtlCache::weighed(name, ttl, capacity, |_| 1, metrics)
    }

    /// A cache of at most `max_weight` total weight (each entry weighs `weigher(v)`,
    /// e.g. its bytes) living `ttl`; disabled when `ttl` is `None`.
    pub fn weighed(
        name: &'static str,
        ttl: Option<Duration>,
        max_weight: u64,
        weigher: fn(&V) -> u32,
        metrics: EngineMetrics,
    ) -> Self {
        let inner = ttl.filter(|t| !t.is_zero() && max_weight > 0).map(|ttl| {
            Cache::builder()
                .max_capacity(max_weight)
                .weigher(move |_key: &u64, value: &V| weigher(value))
                .time_to_live(ttl)
                .build()
        });
        TtlCache {
            name,
            inner,
            metrics,
        }
    }

    /// The cached value for `key`.
    pub async fn get(&self, key: u64) -> Option<V> {
        let cache = self.inner.as_ref()?;
        let found = cache.get(&key).await;
        self.metrics.cache_lookup(self.name, found.is_some());
        found
    }

    /// Remembers `value` for `key`.
    pub async fn insert(&self, key: u64, value: V) {
        if let Some(cache) = &self.inner {
            cache.insert(key, value).await;
        }
    }
}

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
    inner: Option<Cache<u64, DigestVerdict>>,
    metrics: EngineMetrics,
}

/// Per-entry lifetime: verified or failed.
struct VerdictExpiry {
    verified: Duration,
    failed: Duration,
}

impl moka::Expiry<u64, DigestVerdict> for VerdictExpiry {
    fn expire_after_create(
        &self,
        _key: &u64,
        value: &DigestVerdict,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(if value.failure.is_none() {
            self.verified
        } else {
            self.failed
        })
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
        VerdictCache { inner, metrics }
    }

    /// The cached verdict for `key`, else the one `verify` gives (cached unless it is an
    /// error). Callers arriving while a verification for `key` is under way await it.
    pub async fn get_or_verify(
        &self,
        key: u64,
        verify: impl Future<Output = DigestVerdict>,
    ) -> DigestVerdict {
        let Some(cache) = &self.inner else {
            return verify.await;
        };
        let entry = cache
            .entry(key)
            .or_try_insert_with(async {
                let started = std::time::Instant::now();
                let verdict = verify.await;
                self.metrics.verification_took(started.elapsed());
                if verdict.is_error() {
                    Err(verdict)
                } else {
                    Ok(verdict)
                }
            })
            .await;
        match entry {
            Ok(entry) => {
                let hit = !entry.is_fresh();
                let verdict = entry.into_value();
                let cache = if verdict.failure.is_none() {
                    "verdict"
                } else {
                    "negative"
                };
                self.metrics.cache_lookup(cache, hit);
                verdict
            }
            Err(error) => {
                self.metrics.cache_lookup("verdict", false);
                (*error).clone()
            }
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
/// spelling that does not change the check (PEM whitespace, `count: 1` of a single
/// entry, the default `sha256`). A changed policy that verifies differently never
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
            let single_entry = map
                .get("entries")
                .and_then(Value::as_array)
                .is_some_and(|entries| entries.len() == 1);
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

/// A 64-bit key of hashable parts (SipHash with fixed keys: stable within a process).
pub fn key_of(parts: &impl Hash) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn disabled_cache_never_hits() {
        let cache: TtlCache<u32> = TtlCache::new("verdict", None, 10, EngineMetrics::default());
        cache.insert(1, 1).await;
        assert_eq!(cache.get(1).await, None);
    }

    #[tokio::test]
    async fn entries_expire() {
        let cache: TtlCache<u32> = TtlCache::new(
            "negative",
            Some(Duration::from_millis(50)),
            10,
            EngineMetrics::default(),
        );
        cache.insert(1, 7).await;
        assert_eq!(cache.get(1).await, Some(7));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(cache.get(1).await, None);
    }
}
