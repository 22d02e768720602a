//! Building the engine shared by the commands that evaluate policies.

use std::sync::Arc;

use imagegate_engine::{CacheOptions, Engine, EngineMetrics, EngineOptions, Verifier};

use imagegate_sigstore::TrustedRoot;

use crate::cli::{RegistryArgs, TrustArgs};

/// An engine fetching with the registry settings of `args`, default caches.
pub fn build(args: &RegistryArgs, trust: &TrustArgs) -> anyhow::Result<Engine> {
    build_with(
        args,
        trust,
        CacheOptions::default(),
        EngineMetrics::default(),
    )
}

/// An engine with explicit caches, reporting to `metrics` (registry requests included).
pub fn build_with(
    args: &RegistryArgs,
    trust: &TrustArgs,
    caches: CacheOptions,
    metrics: EngineMetrics,
) -> anyhow::Result<Engine> {
    let client = Arc::new(crate::registry::client(args)?.with_observer(Arc::new(metrics.clone())));
    let verifier = Verifier::with_digest_cache(client, caches.digest_ttl, metrics.clone());
    let trusted_root = trust
        .trusted_root
        .as_deref()
        .map(TrustedRoot::from_file)
        .transpose()?;
    let options = EngineOptions {
        trusted_root,
        caches,
        metrics,
        ..EngineOptions::default()
    };
    Ok(Engine::new(verifier, options))
}
