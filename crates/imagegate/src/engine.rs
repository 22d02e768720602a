//! Building the engine shared by the commands that evaluate policies.

use imagegate_engine::{CacheOptions, Engine, EngineMetrics};

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
    let trusted_root = trust
        .trusted_root
        .as_deref()
        .map(TrustedRoot::from_file)
        .transpose()?;
    Ok(Engine::builder(crate::registry::client(args)?)
        .caches(caches)
        .metrics(metrics)
        .trusted_root(trusted_root)
        .build())
}
