//! Sigstore trusted roots (`trusted_root.json`): Fulcio CAs, Rekor keys, CT logs and
//! timestamp authorities with their validity windows.
//!
//! The Sigstore public-good production root is embedded ([`TrustedRoot::public_good`]);
//! nothing is fetched, ever (no TUF here). A root read from JSON is checked and prepared
//! once (keys parsed, windows validated), so a [`TrustedRoot`] is cheap to share
//! between verifications: clones share the prepared material.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use sigstore_verify::Verifier;
use sigstore_verify::trust_root::{self, SIGSTORE_PRODUCTION_TRUSTED_ROOT};
use thiserror::Error;

/// Largest `trusted_root.json` accepted (4 MiB; real roots are a few KiB).
pub const MAX_TRUSTED_ROOT_SIZE: usize = 4 * 1024 * 1024;

/// Why a trusted root could not be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TrustError {
    /// The file could not be read.
    #[error("cannot read trusted root {path}: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// What the operating system reported.
        reason: String,
    },
    /// The JSON is larger than [`MAX_TRUSTED_ROOT_SIZE`].
    #[error("trusted root {origin} is too large: {size} bytes (limit {limit} bytes)")]
    TooLarge {
        /// Where the root came from.
        origin: String,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The text is not a Sigstore trusted root.
    #[error("malformed trusted root {origin}: {reason}")]
    Malformed {
        /// Where the root came from.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// The root parses but holds unusable material (a bad key, a duplicate log ID, an
    /// authority with an empty chain or an invalid validity window).
    #[error("unusable trusted root {origin}: {reason}")]
    Unusable {
        /// Where the root came from.
        origin: String,
        /// What is wrong.
        reason: String,
    },
}

/// A checked, prepared Sigstore trusted root.
#[derive(Clone)]
pub struct TrustedRoot {
    verifier: Arc<Verifier>,
    origin: Arc<str>,
}

impl fmt::Debug for TrustedRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedRoot")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Where the embedded public-good root comes from, as named in errors and [`TrustedRoot::origin`].
const PUBLIC_GOOD_ORIGIN: &str = "(embedded Sigstore public-good root)";

impl TrustedRoot {
    /// The Sigstore public-good production root embedded in this binary (the one
    /// `sigstore-trust-root` ships; it has the Rekor v1 and v2 logs, both Fulcio CAs, both
    /// CT logs and the public-good TSA).
    pub fn public_good() -> Result<TrustedRoot, TrustError> {
        TrustedRoot::from_json(SIGSTORE_PRODUCTION_TRUSTED_ROOT, PUBLIC_GOOD_ORIGIN)
    }

    /// Reads a `trusted_root.json` (`application/vnd.dev.sigstore.trustedroot+json`).
    pub fn from_file(path: &Path) -> Result<TrustedRoot, TrustError> {
        let origin = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| TrustError::Unreadable {
            path: origin.clone(),
            reason: e.to_string(),
        })?;
        TrustedRoot::from_slice(&bytes, &origin)
    }

    /// Parses a trusted root from JSON bytes; `origin` names it in errors.
    pub fn from_slice(json: &[u8], origin: &str) -> Result<TrustedRoot, TrustError> {
        if json.len() > MAX_TRUSTED_ROOT_SIZE {
            return Err(TrustError::TooLarge {
                origin: origin.to_owned(),
                size: json.len(),
                limit: MAX_TRUSTED_ROOT_SIZE,
            });
        }
        let text = std::str::from_utf8(json).map_err(|e| TrustError::Malformed {
            origin: origin.to_owned(),
            reason: format!("not UTF-8: {e}"),
        })?;
        TrustedRoot::from_json(text, origin)
    }

    /// Parses a trusted root from JSON text; `origin` names it in errors.
    pub fn from_json(json: &str, origin: &str) -> Result<TrustedRoot, TrustError> {
        if json.len() > MAX_TRUSTED_ROOT_SIZE {
            return Err(TrustError::TooLarge {
                origin: origin.to_owned(),
                size: json.len(),
                limit: MAX_TRUSTED_ROOT_SIZE,
            });
        }
        let root = trust_root::TrustedRoot::from_json(json).map_err(|e| TrustError::Malformed {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })?;
        let verifier = Verifier::new(&root).map_err(|e| TrustError::Unusable {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(TrustedRoot {
            verifier: Arc::new(verifier),
            origin: origin.into(),
        })
    }

    /// Where this root came from: a file path, a caller-given name, or
    /// `(embedded Sigstore public-good root)`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The prepared sigstore-verify verifier (crate-internal: callers use
    /// [`crate::bundle::verify_bundle`]).
    pub(crate) fn verifier(&self) -> &Verifier {
        &self.verifier
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_public_good_root_is_usable() {
        let root = TrustedRoot::public_good().unwrap();
        assert_eq!(root.origin(), PUBLIC_GOOD_ORIGIN);
        fn shared<T: Send + Sync + Clone>(_: &T) {}
        shared(&root);
    }

    #[test]
    fn broken_roots_are_refused_with_their_origin() {
        let err = TrustedRoot::from_json("{", "root.json").unwrap_err();
        assert!(matches!(err, TrustError::Malformed { .. }), "{err}");
        assert!(err.to_string().contains("root.json"), "{err}");
        let err = TrustedRoot::from_slice(&[0xff, 0xfe], "bin").unwrap_err();
        assert!(matches!(err, TrustError::Malformed { .. }), "{err}");
        let err = TrustedRoot::from_file(Path::new("/nonexistent/trusted_root.json")).unwrap_err();
        assert!(matches!(err, TrustError::Unreadable { .. }), "{err}");
        let huge = vec![b' '; MAX_TRUSTED_ROOT_SIZE + 1];
        assert!(matches!(
            TrustedRoot::from_slice(&huge, "huge"),
            Err(TrustError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_root_with_a_duplicate_log_is_unusable() {
        let mut root: serde_json::Value =
            serde_json::from_str(SIGSTORE_PRODUCTION_TRUSTED_ROOT).unwrap();
        let tlogs = root["tlogs"].as_array_mut().unwrap();
        let first = tlogs[0].clone();
        tlogs.push(first);
        let err = TrustedRoot::from_json(&root.to_string(), "dup").unwrap_err();
        assert!(matches!(err, TrustError::Unusable { .. }), "{err}");
    }
}
