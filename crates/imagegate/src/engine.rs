//! Building the engine shared by the commands that evaluate policies: the one place
//! where registry client, trust root, caches and metrics are wired together (the
//! webhook, the offline commands and the tests all come through [`build`]).

use std::path::PathBuf;
use std::sync::Arc;

use imagegate_engine::{CacheOptions, ClusterInputs, Engine, EngineMetrics};
use imagegate_sigstore::TrustedRoot;

use crate::registry::RegistryConfig;

/// What the engine is built from.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    /// Registry access.
    pub registry: RegistryConfig,
    /// Sigstore trusted_root.json; `None`: the embedded public-good root.
    pub trusted_root: Option<PathBuf>,
    /// Cache lifetimes and sizes.
    pub caches: CacheOptions,
    /// The cluster (`serve` in cluster mode): namespace labels, Secrets, pull secrets.
    pub cluster: Option<Arc<dyn ClusterInputs>>,
}

/// An engine as `config` says, reporting to `metrics` (registry requests included).
pub fn build(config: &EngineConfig, metrics: EngineMetrics) -> anyhow::Result<Engine> {
    let trusted_root = config
        .trusted_root
        .as_deref()
        .map(TrustedRoot::from_file)
        .transpose()?;
    Ok(Engine::builder(crate::registry::client(&config.registry)?)
        .caches(config.caches.clone())
        .metrics(metrics)
        .trusted_root(trusted_root)
        .cluster(config.cluster.clone())
        .build())
}
