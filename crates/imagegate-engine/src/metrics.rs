//! The engine's Prometheus metrics: caches, registry requests, verification time.
//! The server registers them next to its Kyverno-named admission metrics.

use std::time::Duration;

use imagegate_oci::RequestObserver;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Which cache a hit or miss was in.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `digest` (tag → digest), `evidence` (`.sig`/`.att`/bundles of a digest),
    /// `verdict` (verified), `negative` (failed recently).
    pub cache: &'static str,
}

/// A registry answer.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegistryLabels {
    /// Registry host.
    pub registry: String,
    /// HTTP status, or `error` when no answer came.
    pub status: String,
}

/// Why an image failed verification.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// The cause (`no_signatures`, `invalid_signature`, `registry`, …; a fixed set).
    pub reason: &'static str,
}

/// The engine's metrics (cheap to clone: every field is a shared handle).
#[derive(Debug, Clone)]
pub struct EngineMetrics {
    /// `imagegate_cache_hits_total{cache}`.
    pub cache_hits: Family<CacheLabels, Counter>,
    /// `imagegate_cache_misses_total{cache}`.
    pub cache_misses: Family<CacheLabels, Counter>,
    /// `imagegate_registry_requests_total{registry,status}`.
    pub registry_requests: Family<RegistryLabels, Counter>,
    /// `imagegate_verification_duration_seconds`: one image under one verifyImages
    /// entry, cache misses only.
    pub verification_duration: Histogram,
    /// `imagegate_verification_failures_total{reason}`: images that failed or errored
    /// under one verifyImages entry, by cause.
    pub verification_failures: Family<FailureLabels, Counter>,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        EngineMetrics {
            cache_hits: Family::default(),
            cache_misses: Family::default(),
            registry_requests: Family::default(),
            verification_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            verification_failures: Family::default(),
        }
    }
}

impl EngineMetrics {
    /// Adds every metric to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "imagegate_cache_hits",
            "Cache hits by cache (digest, verdict, negative)",
            self.cache_hits.clone(),
        );
        registry.register(
            "imagegate_cache_misses",
            "Cache misses by cache (digest, verdict, negative)",
            self.cache_misses.clone(),
        );
        registry.register(
            "imagegate_registry_requests",
            "Registry HTTP requests by registry and status",
            self.registry_requests.clone(),
        );
        registry.register(
            "imagegate_verification_duration_seconds",
            "Time to verify one image under one verifyImages entry (cache misses)",
            self.verification_duration.clone(),
        );
        registry.register(
            "imagegate_verification_failures",
            "Images that failed or errored under one verifyImages entry, by reason",
            self.verification_failures.clone(),
        );
    }

    /// Counts a cache lookup.
    pub fn cache_lookup(&self, cache: &'static str, hit: bool) {
        let family = if hit {
            &self.cache_hits
        } else {
            &self.cache_misses
        };
        family.get_or_create(&CacheLabels { cache }).inc();
    }

    /// Counts an image that failed or errored, by `reason`.
    pub fn verification_failed(&self, reason: &'static str) {
        self.verification_failures
            .get_or_create(&FailureLabels { reason })
            .inc();
    }

    /// Records one verification's duration.
    pub fn verification_took(&self, duration: Duration) {
        self.verification_duration.observe(duration.as_secs_f64());
    }
}

impl RequestObserver for EngineMetrics {
    fn observe(&self, registry: &str, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.registry_requests
            .get_or_create(&RegistryLabels {
                registry: registry.to_owned(),
                status,
            })
            .inc();
    }
}
