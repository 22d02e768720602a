//! Caches keyed by digest, never by tag alone (Kyverno GHSA-2r43-6962-xcw5 was a
//! tag-keyed cache): the switchable, counted TTL cache the fetch layer keeps digests and
//! evidence in, and the key of hashable parts; the verdict cache is `verdicts`.

use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use moka::future::Cache;

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
    /// Each value with when it was stored (see [`TtlCache::get_since`]).
    inner: Option<Cache<u64, (Instant, V)>>,
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
                .weigher(move |_key: &u64, (_, value): &(Instant, V)| weigher(value))
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
        self.get_since(key, None).await
    }

    /// The cached value for `key` if it was stored at or after `since` (`None`: any
    /// age); an older one counts as a miss and is replaced by the caller's next insert.
    pub async fn get_since(&self, key: u64, since: Option<Instant>) -> Option<V> {
        let cache = self.inner.as_ref()?;
        let found = cache
            .get(&key)
            .await
            .filter(|(stored, _)| since.is_none_or(|since| *stored >= since))
            .map(|(_, value)| value);
        self.metrics.cache_lookup(self.name, found.is_some());
        found
    }

    /// Entries currently held (approximate).
    #[cfg(test)]
    pub fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, Cache::entry_count)
    }

    /// Runs pending maintenance (evictions), so `len` is exact.
    #[cfg(test)]
    pub async fn sync(&self) {
        if let Some(cache) = &self.inner {
            cache.run_pending_tasks().await;
        }
    }

    /// Remembers `value` for `key`.
    pub async fn insert(&self, key: u64, value: V) {
        if let Some(cache) = &self.inner {
            cache.insert(key, (Instant::now(), value)).await;
        }
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

    #[tokio::test]
    async fn a_weighed_cache_holds_at_most_its_weight() {
        // Issue 8 item 9: the evidence cache was bounded by entries, not bytes, so a few
        // large `.sig` manifests could fill memory through it.
        let cache: TtlCache<Vec<u8>> = TtlCache::weighed(
            "evidence",
            Some(Duration::from_secs(60)),
            100,
            |v: &Vec<u8>| u32::try_from(v.len()).unwrap_or(u32::MAX),
            EngineMetrics::default(),
        );
        for key in 0..5 {
            cache.insert(key, vec![0; 40]).await;
        }
        cache.sync().await;
        assert!(cache.len() <= 2, "{} entries of 40 bytes held", cache.len());
        // An entry heavier than the whole cache is never kept.
        cache.insert(9, vec![0; 101]).await;
        cache.sync().await;
        assert_eq!(cache.get(9).await, None);
    }

    #[tokio::test]
    async fn entries_older_than_a_floor_are_misses() {
        let cache: TtlCache<u32> = TtlCache::new(
            "evidence",
            Some(Duration::from_secs(60)),
            10,
            EngineMetrics::default(),
        );
        cache.insert(1, 7).await;
        let floor = Instant::now() + Duration::from_millis(1);
        while Instant::now() < floor {
            tokio::task::yield_now().await;
        }
        // Stored before the floor (a background scan's start): a miss for the scan, a
        // hit for everyone else; a value stored again after the floor is a hit for both.
        assert_eq!(cache.get_since(1, Some(floor)).await, None);
        assert_eq!(cache.get(1).await, Some(7));
        cache.insert(1, 8).await;
        assert_eq!(cache.get_since(1, Some(floor)).await, Some(8));
    }
}
