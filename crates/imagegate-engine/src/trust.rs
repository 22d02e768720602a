//! The Sigstore trust the engine verifies with: the configured trusted root
//! ([`crate::EngineBuilder::trusted_root`], CLI `--trusted-root`), else the public-good
//! root embedded in the binary, prepared once per process. Nothing is fetched.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use imagegate_sigstore::{RekorKey, TrustOverrides, TrustedRoot};

static PUBLIC_GOOD: LazyLock<Option<TrustedRoot>> = LazyLock::new(|| {
    TrustedRoot::public_good()
        .map_err(|e| tracing::error!(error = %e, "the embedded Sigstore root is unusable"))
        .ok()
});

/// The embedded Sigstore public-good root (`None` only if the build embedded a broken
/// root, which a unit test rules out).
pub fn public_good() -> Option<&'static TrustedRoot> {
    PUBLIC_GOOD.as_ref()
}

/// `configured`, else the embedded public-good root.
pub fn effective(configured: Option<&TrustedRoot>) -> Option<&TrustedRoot> {
    match configured {
        Some(root) => Some(root),
        None => public_good(),
    }
}

/// Roots derived with per-policy overrides, by a SHA-256 of the base root's JSON and the
/// overrides: policies are few and stable, so this stays small (it is emptied if it
/// ever grows past [`MAX_DERIVED`]).
static DERIVED: LazyLock<Mutex<HashMap<String, TrustedRoot>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
const MAX_DERIVED: usize = 256;

/// `base` with an attestor's trust overrides (Kyverno `keyless.roots`, `rekor.pubkey`,
/// `ctlog.pubkey`, `ctlog.tsaCertChain`) applied; `base` itself when there are none.
/// Derived roots are built once per distinct base and overrides.
pub fn with_overrides(
    base: Option<&TrustedRoot>,
    overrides: TrustOverrides<'_>,
) -> Result<Option<TrustedRoot>, String> {
    if overrides.is_empty() {
        return Ok(base.cloned());
    }
    let base = base.ok_or("no trusted root to apply the policy's roots and log keys to")?;
    let mut material = Vec::new();
    for part in [
        Some(base.source_json()),
        overrides.fulcio_roots_pem,
        overrides.rekor_keys_pem,
        overrides.ctlog_keys_pem,
        overrides.tsa_chain_pem,
    ] {
        // Length-prefixed, with absence distinct from an empty text.
        match part {
            Some(text) => {
                material.extend_from_slice(&(text.len() as u64 + 1).to_be_bytes());
                material.extend_from_slice(text.as_bytes());
            }
            None => material.extend_from_slice(&0u64.to_be_bytes()),
        }
    }
    let key = imagegate_oci::sha256_digest(&material);
    let cached = DERIVED
        .lock()
        .ok()
        .and_then(|cache| cache.get(&key).cloned());
    if let Some(root) = cached {
        return Ok(Some(root));
    }
    let root = base.with_overrides(overrides).map_err(|e| e.to_string())?;
    if let Ok(mut cache) = DERIVED.lock() {
        if cache.len() >= MAX_DERIVED {
            cache.clear();
        }
        cache.insert(key, root.clone());
    }
    Ok(Some(root))
}

/// The Rekor keys of `root` usable at `at` (Unix seconds; `None`: any time), after
/// `extra` keys.
pub fn rekor_keys(
    root: Option<&TrustedRoot>,
    extra: &[RekorKey],
    at: Option<i64>,
) -> Vec<RekorKey> {
    let mut keys = extra.to_vec();
    if let Some(root) = root {
        keys.extend(
            root.rekor_keys()
                .iter()
                .filter(|k| at.is_none_or(|t| k.validity.contains(t)))
                .map(|k| k.key.clone()),
        );
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_root_has_the_rekor_v1_key() {
        let keys = rekor_keys(public_good(), &[], Some(1_634_714_717));
        assert!(keys.iter().any(
            |k| k.log_id == "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d"
        ));
        assert!(rekor_keys(None, &[], None).is_empty());
    }
}
