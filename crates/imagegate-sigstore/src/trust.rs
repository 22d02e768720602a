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
    /// The JSON it was read from (the base of [`TrustedRoot::with_overrides`]).
    source: Arc<str>,
}

/// Per-policy trust material replacing sections of a trusted root (Kyverno
/// `keyless.roots`, `rekor.pubkey`, `ctlog.pubkey`, `ctlog.tsaCertChain`). `None` keeps
/// the base root's section.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TrustOverrides<'a> {
    /// PEM certificates replacing the Fulcio certificate authorities: roots and
    /// intermediates, in any order (each intermediate is chained to a root of the set).
    pub fulcio_roots_pem: Option<&'a str>,
    /// PEM public keys replacing the Rekor transparency logs.
    pub rekor_keys_pem: Option<&'a str>,
    /// PEM public keys replacing the certificate transparency logs.
    pub ctlog_keys_pem: Option<&'a str>,
    /// A PEM chain (TSA signing certificate first, root last) replacing the timestamp
    /// authorities.
    pub tsa_chain_pem: Option<&'a str>,
}

impl TrustOverrides<'_> {
    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self.fulcio_roots_pem.is_none()
            && self.rekor_keys_pem.is_none()
            && self.ctlog_keys_pem.is_none()
            && self.tsa_chain_pem.is_none()
    }
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
            source: json.into(),
        })
    }

    /// The `trusted_root.json` text this root was read from.
    pub fn source_json(&self) -> &str {
        &self.source
    }

    /// This root with the sections `overrides` gives replaced, rebuilt as a
    /// `trusted_root.json` and loaded through the same checks as any root
    /// ([`TrustedRoot::from_json`]). Certificate authorities are valid from the
    /// earliest `notBefore` of their chain; log keys without bound. Its origin is this
    /// root's with ` + policy trust overrides`.
    pub fn with_overrides(&self, overrides: TrustOverrides<'_>) -> Result<TrustedRoot, TrustError> {
        let origin = format!("{} + policy trust overrides", self.origin);
        let unusable = |reason: String| TrustError::Unusable {
            origin: origin.clone(),
            reason,
        };
        let mut root: serde_json::Value =
            serde_json::from_str(&self.source).map_err(|e| TrustError::Malformed {
                origin: origin.clone(),
                reason: e.to_string(),
            })?;
        let Some(sections) = root.as_object_mut() else {
            return Err(TrustError::Malformed {
                origin,
                reason: "not a JSON object".into(),
            });
        };
        if let Some(pem) = overrides.fulcio_roots_pem {
            let authorities = overrides::certificate_authorities(pem)
                .map_err(|e| unusable(format!("Fulcio roots: {e}")))?;
            sections.insert("certificateAuthorities".into(), authorities.into());
        }
        if let Some(pem) = overrides.rekor_keys_pem {
            let logs = overrides::logs(pem, "policy:rekor.pubkey")
                .map_err(|e| unusable(format!("Rekor keys: {e}")))?;
            sections.insert("tlogs".into(), logs.into());
        }
        if let Some(pem) = overrides.ctlog_keys_pem {
            let logs = overrides::logs(pem, "policy:ctlog.pubkey")
                .map_err(|e| unusable(format!("CT log keys: {e}")))?;
            sections.insert("ctlogs".into(), logs.into());
        }
        if let Some(pem) = overrides.tsa_chain_pem {
            let authority = overrides::timestamp_authority(pem)
                .map_err(|e| unusable(format!("TSA certificate chain: {e}")))?;
            sections.insert("timestampAuthorities".into(), vec![authority].into());
        }
        TrustedRoot::from_json(&root.to_string(), &origin)
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

/// Trusted-root JSON sections built from PEM trust material.
mod overrides {
    use base64::Engine as _;
    use serde_json::{Value, json};
    use sha2::{Digest as _, Sha256};
    use spki::der::Decode as _;
    use x509_cert::Certificate;

    use crate::certificate::{MAX_CHAIN_DEPTH, issued_by};
    use crate::keys::{KeyAlgorithm, PublicKey};
    use crate::pem;

    /// Log keys have no window of their own here.
    const EPOCH: &str = "1970-01-01T00:00:00Z";

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    struct Cert {
        der: Vec<u8>,
        cert: Certificate,
    }

    impl Cert {
        fn self_signed(&self) -> bool {
            self.cert.tbs_certificate.subject == self.cert.tbs_certificate.issuer
        }

        fn not_before(&self) -> std::time::Duration {
            self.cert
                .tbs_certificate
                .validity
                .not_before
                .to_unix_duration()
        }
    }

    fn certificates(text: &str) -> Result<Vec<Cert>, String> {
        let blocks = pem::parse_blocks(text).map_err(|e| e.to_string())?;
        let certs = blocks
            .into_iter()
            .enumerate()
            .map(|(i, block)| {
                if block.label != "CERTIFICATE" {
                    return Err(format!(
                        "PEM block {i} is a \"{}\", expected \"CERTIFICATE\"",
                        block.label
                    ));
                }
                let cert =
                    Certificate::from_der(&block.der).map_err(|e| format!("PEM block {i}: {e}"))?;
                Ok(Cert {
                    der: block.der,
                    cert,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if certs.is_empty() {
            return Err("no certificate".into());
        }
        Ok(certs)
    }

    /// An authority entry for `chain` (issuing certificate first, root last).
    fn authority(chain: &[&Cert]) -> Value {
        let start = chain
            .iter()
            .map(|c| c.not_before())
            .min()
            .unwrap_or_default();
        let start = x509_cert::der::DateTime::from_unix_duration(start)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| EPOCH.to_owned());
        let name = chain
            .first()
            .map(|c| c.cert.tbs_certificate.subject.to_string())
            .unwrap_or_default();
        json!({
            "subject": {"commonName": name},
            "uri": "",
            "certChain": {"certificates": chain.iter().map(|c| json!({"rawBytes": b64(&c.der)})).collect::<Vec<_>>()},
            "validFor": {"start": start},
        })
    }

    /// Fulcio authorities from a set of roots and intermediates: one per intermediate,
    /// chained by name and signature to a self-signed root of the set (every certificate of the set is
    /// trusted, as Kyverno's `roots` pool), plus one per root no intermediate leads to.
    pub(super) fn certificate_authorities(text: &str) -> Result<Vec<Value>, String> {
        let certs = certificates(text)?;
        let mut used = vec![false; certs.len()];
        let mut out = Vec::new();
        for (i, start) in certs.iter().enumerate() {
            if start.self_signed() {
                continue;
            }
            let mut chain = vec![i];
            while chain.len() < MAX_CHAIN_DEPTH {
                let Some(&current) = chain.last() else { break };
                let issuer = &certs[current].cert.tbs_certificate.issuer;
                // Names are not unique (Sigstore has two roots named "sigstore"): the
                // issuer must have signed the certificate.
                let next = certs.iter().enumerate().position(|(j, c)| {
                    !chain.contains(&j)
                        && &c.cert.tbs_certificate.subject == issuer
                        && issued_by(&certs[current].der, &c.der)
                });
                let Some(next) = next else { break };
                chain.push(next);
                if certs[next].self_signed() {
                    break;
                }
            }
            for &j in &chain {
                used[j] = true;
            }
            out.push(authority(
                &chain.iter().map(|&j| &certs[j]).collect::<Vec<_>>(),
            ));
        }
        for (i, cert) in certs.iter().enumerate() {
            if !used[i] {
                out.push(authority(&[cert]));
            }
        }
        Ok(out)
    }

    /// The timestamp authority of a chain given in order.
    pub(super) fn timestamp_authority(text: &str) -> Result<Value, String> {
        let certs = certificates(text)?;
        Ok(authority(&certs.iter().collect::<Vec<_>>()))
    }

    /// Log entries (`tlogs` / `ctlogs`) for every key of `text`; the log id is the
    /// SHA-256 of the key's SubjectPublicKeyInfo.
    pub(super) fn logs(text: &str, base_url: &str) -> Result<Vec<Value>, String> {
        let keys = PublicKey::from_pem(text).map_err(|e| e.to_string())?;
        let mut seen = std::collections::HashSet::new();
        Ok(keys
            .iter()
            .filter(|k| seen.insert(k.spki_der().to_vec()))
            .map(|key| {
                let details = match key.algorithm() {
                    KeyAlgorithm::EcdsaP256 => "PKIX_ECDSA_P256_SHA_256",
                    KeyAlgorithm::EcdsaP384 => "PKIX_ECDSA_P384_SHA_384",
                    KeyAlgorithm::EcdsaP521 => "PKIX_ECDSA_P521_SHA_512",
                    KeyAlgorithm::Ed25519 => "PKIX_ED25519",
                    KeyAlgorithm::Rsa { bits } if bits >= 4096 => "PKIX_RSA_PKCS1V15_4096_SHA256",
                    KeyAlgorithm::Rsa { bits } if bits >= 3072 => "PKIX_RSA_PKCS1V15_3072_SHA256",
                    KeyAlgorithm::Rsa { .. } => "PKIX_RSA_PKCS1V15_2048_SHA256",
                };
                json!({
                    "baseUrl": base_url,
                    "hashAlgorithm": "SHA2_256",
                    "publicKey": {
                        "rawBytes": b64(key.spki_der()),
                        "keyDetails": details,
                        "validFor": {"start": EPOCH},
                    },
                    "logId": {"keyId": b64(&Sha256::digest(key.spki_der()))},
                })
            })
            .collect())
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

    /// PEM of every `rawBytes` under `pointer` (certificates or keys).
    fn pem_of(root: &serde_json::Value, pointer: &str, label: &str) -> String {
        use base64::Engine as _;
        let mut out = String::new();
        let mut stack = vec![root.pointer(pointer).unwrap().clone()];
        while let Some(value) = stack.pop() {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(raw) = map.get("rawBytes").and_then(|v| v.as_str()) {
                        let der = base64::engine::general_purpose::STANDARD
                            .decode(raw)
                            .unwrap();
                        out.push_str(&crate::pem::encode(label, &der));
                    } else {
                        stack.extend(map.into_iter().map(|(_, v)| v).rev());
                    }
                }
                serde_json::Value::Array(items) => stack.extend(items.into_iter().rev()),
                _ => {}
            }
        }
        out
    }

    fn vector_json(path: &std::path::Path) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn overrides_rebuild_the_root_from_pem_material() {
        let Some(vectors) = imagegate_testkit::vectors_dir() else {
            eprintln!("skipped: no shared vectors");
            return;
        };
        let dir = vectors.join("cosign-bundle/cosign-oci-attestation");
        let pgi = vector_json(&dir.join("trusted_root_pgi.json"));
        let roots = pem_of(&pgi, "/certificateAuthorities", "CERTIFICATE");
        let rekor = pem_of(&pgi, "/tlogs", "PUBLIC KEY");
        let ctlogs = pem_of(&pgi, "/ctlogs", "PUBLIC KEY");
        let base = TrustedRoot::public_good().unwrap();
        assert!(TrustOverrides::default().is_empty());
        let derived = base
            .with_overrides(TrustOverrides {
                fulcio_roots_pem: Some(&roots),
                rekor_keys_pem: Some(&rekor),
                ctlog_keys_pem: Some(&ctlogs),
                tsa_chain_pem: None,
            })
            .unwrap();
        assert!(derived.origin().ends_with("+ policy trust overrides"));
        let original = TrustedRoot::from_file(&dir.join("trusted_root_pgi.json")).unwrap();
        assert_eq!(derived.rekor_keys().len(), 1);
        assert_eq!(
            derived.rekor_keys()[0].key.log_id,
            original.rekor_keys()[0].key.log_id
        );
        let ids = |r: &TrustedRoot| {
            let mut ids: Vec<String> = r
                .ctlog_keys()
                .iter()
                .map(|k| k.key.spki_sha256_hex())
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(&derived), ids(&original));
        // Each CA of the original becomes one chain (intermediate first, root last).
        let chains = |r: &TrustedRoot| {
            let mut chains: Vec<Vec<String>> = r
                .fulcio_authorities()
                .iter()
                .map(|ca| ca.chain_pem.clone())
                .collect();
            chains.sort();
            chains
        };
        assert_eq!(chains(&derived), chains(&original));
        // The timestamp authorities of the base are kept.
        let base_json: serde_json::Value = serde_json::from_str(base.source_json()).unwrap();
        let derived_json: serde_json::Value = serde_json::from_str(derived.source_json()).unwrap();
        assert_eq!(
            base_json["timestampAuthorities"],
            derived_json["timestampAuthorities"]
        );

        // The keyless attestation bundle verifies with the derived root.
        let bundle = std::fs::read(dir.join("oci-attestation.sigstore.json")).unwrap();
        let artifact = crate::Artifact::from_digest(
            "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4",
        )
        .unwrap();
        let identity = crate::BundleRequirement::Identity(crate::IdentityRequirement::exact(
            "cody@soyland.com",
            "https://github.com/login/oauth",
        ));
        crate::verify_bundle(&bundle, artifact, &derived, &identity).unwrap();
        // With a foreign CT log key the SCT is not trusted.
        let foreign =
            std::fs::read_to_string(vectors.join("cosign-legacy/sigstore-rs/key-layer/cosign.pub"))
                .unwrap();
        let untrusted = base
            .with_overrides(TrustOverrides {
                ctlog_keys_pem: Some(&foreign),
                ..TrustOverrides::default()
            })
            .unwrap();
        assert!(matches!(
            crate::verify_bundle(&bundle, artifact, &untrusted, &identity),
            Err(crate::BundleError::UntrustedCertificate(_))
        ));
        // A foreign Fulcio root.
        let fulcio_1 = std::fs::read_to_string(
            vectors.join("cosign-legacy/sigstore-rs/trust/fulcio-root-1.pem"),
        )
        .unwrap();
        let other_ca = base
            .with_overrides(TrustOverrides {
                fulcio_roots_pem: Some(&fulcio_1),
                ..TrustOverrides::default()
            })
            .unwrap();
        assert!(matches!(
            crate::verify_bundle(&bundle, artifact, &other_ca, &identity),
            Err(crate::BundleError::UntrustedCertificate(_))
        ));
    }

    #[test]
    fn a_tsa_chain_override_supplies_the_timestamp_authority() {
        let Some(vectors) = imagegate_testkit::vectors_dir() else {
            eprintln!("skipped: no shared vectors");
            return;
        };
        let dir =
            vectors.join("sigstore-conformance/bundle-verify/rekor2-timestamp-with-embedded-cert");
        let mut json = vector_json(&dir.join("trusted_root.json"));
        let tsa = pem_of(&json, "/timestampAuthorities/0/certChain", "CERTIFICATE");
        json["timestampAuthorities"] = serde_json::json!([]);
        let without = TrustedRoot::from_json(&json.to_string(), "no TSA").unwrap();
        let bundle = std::fs::read(dir.join("bundle.sigstore.json")).unwrap();
        let artifact =
            std::fs::read(vectors.join("sigstore-conformance/bundle-verify/a.txt")).unwrap();
        let identity = crate::BundleRequirement::Identity(crate::IdentityRequirement::exact(
            "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main",
            "https://token.actions.githubusercontent.com",
        ));
        let check = |root: &TrustedRoot| {
            crate::verify_bundle(&bundle, crate::Artifact::Bytes(&artifact), root, &identity)
        };
        assert!(check(&without).is_err());
        let with = without
            .with_overrides(TrustOverrides {
                tsa_chain_pem: Some(&tsa),
                ..TrustOverrides::default()
            })
            .unwrap();
        check(&with).unwrap();
    }

    #[test]
    fn unusable_overrides_name_the_section() {
        let base = TrustedRoot::public_good().unwrap();
        let err = base
            .with_overrides(TrustOverrides {
                ctlog_keys_pem: Some("junk"),
                ..TrustOverrides::default()
            })
            .unwrap_err();
        assert!(matches!(err, TrustError::Unusable { .. }), "{err}");
        assert!(err.to_string().contains("CT log keys"), "{err}");
        let err = base
            .with_overrides(TrustOverrides {
                fulcio_roots_pem: Some(
                    "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                ),
                ..TrustOverrides::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("Fulcio roots"), "{err}");
        let err = base
            .with_overrides(TrustOverrides {
                tsa_chain_pem: Some(""),
                ..TrustOverrides::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("TSA certificate chain"), "{err}");
    }
}
