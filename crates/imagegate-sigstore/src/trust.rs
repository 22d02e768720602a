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
use sigstore_verify::types::TimeRange;
use thiserror::Error;

use crate::keys::PublicKey;
use crate::rekor::RekorKey;

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
    material: Arc<Material>,
}

/// When a piece of trust material may be used (`validFor`), Unix seconds, both ends
/// inclusive; `None` is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Validity {
    /// Start of the window.
    pub start: Option<i64>,
    /// End of the window.
    pub end: Option<i64>,
}

impl Validity {
    /// Whether `at` (Unix seconds) lies inside the window.
    pub fn contains(&self, at: i64) -> bool {
        self.start.is_none_or(|s| s <= at) && self.end.is_none_or(|e| at <= e)
    }

    fn of(range: Option<&TimeRange>) -> Validity {
        Validity {
            start: range.map(|r| r.start.as_second()),
            end: range.and_then(|r| r.end).map(|e| e.as_second()),
        }
    }
}

/// A Fulcio certificate authority of a trusted root: its chain as PEM, issuing
/// certificate first and root last, with the window in which it issued certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FulcioAuthority {
    /// One PEM certificate per element, issuing (intermediate) first, root last.
    pub chain_pem: Vec<String>,
    /// When the authority was issuing certificates.
    pub validity: Validity,
}

impl FulcioAuthority {
    /// The self-signed root (the last certificate of the chain).
    pub fn root_pem(&self) -> &str {
        self.chain_pem.last().map_or("", String::as_str)
    }

    /// The intermediates (every certificate but the root), concatenated.
    pub fn intermediates_pem(&self) -> String {
        let n = self.chain_pem.len().saturating_sub(1);
        self.chain_pem[..n].concat()
    }
}

/// A log key (Rekor or CT) with its validity window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedLogKey<K> {
    /// The key.
    pub key: K,
    /// When the log signed with it.
    pub validity: Validity,
}

/// The trust material of a root in imagegate's own types, for legacy (non-bundle)
/// evidence: cosign `.sig` layers with certificates and Rekor SETs.
#[derive(Debug, Default)]
struct Material {
    fulcio: Vec<FulcioAuthority>,
    rekor: Vec<TrustedLogKey<RekorKey>>,
    ctlogs: Vec<TrustedLogKey<PublicKey>>,
}

impl Material {
    /// Keys imagegate cannot parse (e.g. a future algorithm) are left out: evidence
    /// signed with them is then refused, never accepted.
    fn of(root: &trust_root::TrustedRoot) -> Material {
        let fulcio = root
            .certificate_authorities
            .iter()
            .map(|ca| FulcioAuthority {
                chain_pem: ca
                    .cert_chain
                    .certificates
                    .iter()
                    .map(|c| c.raw_bytes.to_pem())
                    .collect(),
                validity: Validity::of(ca.valid_for.as_ref()),
            })
            .filter(|ca| !ca.chain_pem.is_empty())
            .collect();
        let rekor = root
            .tlogs
            .iter()
            .filter_map(|log| {
                let key = PublicKey::from_spki_der(log.public_key.raw_bytes.as_bytes()).ok()?;
                Some(TrustedLogKey {
                    key: RekorKey::new(key),
                    validity: Validity::of(log.public_key.valid_for.as_ref()),
                })
            })
            .collect();
        let ctlogs = root
            .ctlogs
            .iter()
            .filter_map(|log| {
                let key = PublicKey::from_spki_der(log.public_key.raw_bytes.as_bytes()).ok()?;
                Some(TrustedLogKey {
                    key,
                    validity: Validity::of(log.public_key.valid_for.as_ref()),
                })
            })
            .collect();
        Material {
            fulcio,
            rekor,
            ctlogs,
        }
    }
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
            material: Arc::new(Material::of(&root)),
        })
    }

    /// Where this root came from: a file path, a caller-given name, or
    /// `(embedded Sigstore public-good root)`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The Fulcio certificate authorities, in the root's order.
    pub fn fulcio_authorities(&self) -> &[FulcioAuthority] {
        &self.material.fulcio
    }

    /// The Rekor log keys (log id = SHA-256 of the key), for legacy SET bundles. Rekor v2
    /// logs are listed too; their Ed25519 keys never sign SETs.
    pub fn rekor_keys(&self) -> &[TrustedLogKey<RekorKey>] {
        &self.material.rekor
    }

    /// The certificate transparency log keys.
    pub fn ctlog_keys(&self) -> &[TrustedLogKey<PublicKey>] {
        &self.material.ctlogs
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
    fn public_good_material_is_exposed() {
        let root = TrustedRoot::public_good().unwrap();
        assert!(root.fulcio_authorities().len() >= 2);
        for ca in root.fulcio_authorities() {
            assert!(ca.root_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        }
        // The Rekor v1 production log (log id c0d23d6a...) signs legacy SETs.
        assert!(root.rekor_keys().iter().any(|k| k.key.log_id
            == "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d"
            && k.validity.contains(1_634_714_717)));
        assert!(!root.ctlog_keys().is_empty());
        let window = Validity {
            start: Some(10),
            end: Some(20),
        };
        assert!(window.contains(10) && window.contains(20));
        assert!(!window.contains(9) && !window.contains(21));
        assert!(Validity::default().contains(i64::MIN));
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
