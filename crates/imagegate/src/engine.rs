//! Building the engine shared by the commands that evaluate policies.

use std::sync::Arc;

use imagegate_engine::{CacheOptions, Engine, EngineMetrics, EngineOptions, Verifier};

use crate::cli::RegistryArgs;

/// An engine fetching with the registry settings of `args`, default caches.
pub fn build(args: &RegistryArgs) -> anyhow::Result<Engine> {
    build_with(args, CacheOptions::default(), EngineMetrics::default())
}

/// An engine with explicit caches, reporting to `metrics` (registry requests included).
pub fn build_with(
    args: &RegistryArgs,
    caches: CacheOptions,
    metrics: EngineMetrics,
) -> anyhow::Result<Engine> {
    let client = Arc::new(crate::registry::client(args)?.with_observer(Arc::new(metrics.clone())));
    let verifier = Verifier::with_digest_cache(client, caches.digest_ttl, metrics.clone());
    let options = EngineOptions {
        caches,
        metrics,
        ..EngineOptions::default()
    };
    Ok(Engine::new(verifier, options))
}
