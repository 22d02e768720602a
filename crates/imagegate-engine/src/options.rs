//! The engine's settings: trust beyond the trusted root, caches, metrics. Below every
//! layer that reads them (`evaluate`, `ivp`), so those depend on it and not on each
//! other.

use std::sync::Arc;

use imagegate_sigstore::RekorKey;

use crate::cache::CacheOptions;
use crate::cluster::ClusterInputs;
use crate::metrics::EngineMetrics;

/// Settings of the engine (set through [`crate::EngineBuilder`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct EngineOptions {
    /// Rekor keys trusted for `keys` attestors that do not set `rekor.ignoreTlog`, in
    /// addition to the trusted root's.
    pub(crate) rekor_keys: Vec<RekorKey>,
    /// Sigstore trusted root (Fulcio CAs, Rekor and CT log keys, TSAs); `None`: the
    /// embedded public-good root (CLI `--trusted-root`).
    pub(crate) trusted_root: Option<imagegate_sigstore::TrustedRoot>,
    /// Verdict caches (the tag → digest cache belongs to the [`Verifier`](crate::Verifier)).
    pub(crate) caches: CacheOptions,
    /// Where cache and verification metrics go.
    pub(crate) metrics: EngineMetrics,
    /// The cluster (cluster mode): namespace labels, Secret-held keys, pull secrets.
    pub(crate) cluster: Option<Arc<dyn ClusterInputs>>,
}
