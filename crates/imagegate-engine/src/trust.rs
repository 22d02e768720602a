//! The Sigstore trust the engine verifies with: the configured trusted root
//! ([`crate::EngineOptions::trusted_root`], CLI `--trusted-root`), else the public-good
//! root embedded in the binary, prepared once per process. Nothing is fetched.

use std::sync::LazyLock;

use imagegate_sigstore::{RekorKey, TrustedRoot};

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
