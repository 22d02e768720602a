//! Rekor evidence of legacy cosign signatures: the `dev.sigstore.cosign/bundle`
//! annotation, i.e. a Rekor Signed Entry Timestamp (SET) over the log entry.
//!
//! The SET is an ECDSA signature by the Rekor log key over the RFC 8785 canonical JSON
//! of `{"body", "integratedTime", "logID", "logIndex"}`. Verifying it proves the log
//! promised to include `body`; [`verify_entry_matches`] then checks that the body is about
//! the signature being verified.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::encoding;
use crate::keys::PublicKey;
use crate::pem;

/// Largest bundle JSON [`RekorBundle::from_json`] accepts (1 MiB).
pub const MAX_BUNDLE_SIZE: usize = 1024 * 1024;

/// A Rekor bundle as cosign stores it in the bundle annotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekorBundle {
    /// Base64 SET (an ECDSA DER signature), as stored.
    #[serde(rename = "SignedEntryTimestamp")]
    pub signed_entry_timestamp: String,
    /// What the SET signs.
    #[serde(rename = "Payload")]
    pub payload: RekorPayload,
}

/// The signed part of a [`RekorBundle`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RekorPayload {
    /// Base64 canonical log entry body.
    pub body: String,
    /// Unix time (seconds) at which the entry was integrated into the log.
    #[serde(rename = "integratedTime")]
    pub integrated_time: i64,
    /// Index of the entry in the log.
    #[serde(rename = "logIndex")]
    pub log_index: i64,
    /// Hex SHA-256 of the log key's SubjectPublicKeyInfo DER.
    #[serde(rename = "logID")]
    pub log_id: String,
}

/// A trusted Rekor log key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RekorKey {
    /// Lowercase hex SHA-256 of the key's SubjectPublicKeyInfo DER.
    pub log_id: String,
    /// The log's public key.
    pub key: PublicKey,
}

impl RekorKey {
    /// A log key whose log id is computed from the key itself.
    pub fn new(key: PublicKey) -> RekorKey {
        RekorKey {
            log_id: key.spki_sha256_hex(),
            key,
        }
    }
}

/// The parts of a `rekord` / `hashedrekord` log entry body that tie it to a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RekorEntry {
    /// `kind` (`rekord` or `hashedrekord`).
    pub kind: String,
    /// `apiVersion`.
    pub api_version: String,
    /// `spec.data.hash.algorithm` (e.g. `sha256`).
    pub hash_algorithm: String,
    /// `spec.data.hash.value` (hex).
    pub hash_value: String,
    /// Decoded `spec.signature.content`.
    pub signature: Vec<u8>,
    /// Decoded `spec.signature.publicKey.content` (a PEM certificate or public key).
    pub public_key_pem: Vec<u8>,
}

/// Why a Rekor bundle was not accepted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RekorError {
    /// The bundle JSON is larger than [`MAX_BUNDLE_SIZE`].
    #[error("Rekor bundle is too large: {size} bytes (limit {limit} bytes)")]
    BundleTooLarge {
        /// Bundle size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The bundle is not Rekor bundle JSON.
    #[error("malformed Rekor bundle: {0}")]
    MalformedBundle(String),
    /// No trusted key has the bundle's log id.
    #[error("unknown Rekor log id {log_id}: no trusted Rekor key has this log id")]
    UnknownLogId {
        /// The bundle's log id.
        log_id: String,
    },
    /// The SET does not verify with the log's key.
    #[error(
        "invalid Rekor signed entry timestamp: it does not verify with the key of log {log_id}"
    )]
    InvalidSet {
        /// The log id.
        log_id: String,
    },
    /// The entry body could not be read.
    #[error("malformed Rekor entry body: {0}")]
    MalformedBody(String),
    /// The entry is of a kind that cannot be matched to a simple signature.
    #[error("unsupported Rekor entry kind \"{kind}\" (expected rekord or hashedrekord)")]
    UnsupportedEntryKind {
        /// The entry kind.
        kind: String,
    },
    /// The entry is about another signature, payload or key.
    #[error("Rekor entry does not match the signature: {0}")]
    EntryMismatch(String),
}

impl RekorBundle {
    /// Parses bundle JSON (the bundle annotation value), refusing more than
    /// [`MAX_BUNDLE_SIZE`].
    pub fn from_json(bytes: &[u8]) -> Result<RekorBundle, RekorError> {
        if bytes.len() > MAX_BUNDLE_SIZE {
            return Err(RekorError::BundleTooLarge {
                size: bytes.len(),
                limit: MAX_BUNDLE_SIZE,
            });
        }
        serde_json::from_slice(bytes).map_err(|e| RekorError::MalformedBundle(e.to_string()))
    }

    /// The bytes the SET signs: RFC 8785 canonical JSON of the payload.
    pub fn signed_bytes(&self) -> Vec<u8> {
        // Keys in RFC 8785 order (UTF-16 code units): body, integratedTime, logID, logIndex.
        // Integers print identically in RFC 8785 and serde_json for |n| < 2^53, and
        // serde_json escapes strings exactly as RFC 8785 requires.
        format!(
            "{{\"body\":{},\"integratedTime\":{},\"logID\":{},\"logIndex\":{}}}",
            Value::String(self.payload.body.clone()),
            self.payload.integrated_time,
            Value::String(self.payload.log_id.clone()),
            self.payload.log_index
        )
        .into_bytes()
    }

    /// Decodes and reads the log entry body.
    pub fn entry(&self) -> Result<RekorEntry, RekorError> {
        let body = encoding::decode_standard(&self.payload.body)
            .map_err(|e| RekorError::MalformedBody(format!("body is not valid base64: {e}")))?;
        let body: Value = serde_json::from_slice(&body)
            .map_err(|e| RekorError::MalformedBody(format!("body is not JSON: {e}")))?;
        let text = |pointer: &str| -> Result<String, RekorError> {
            body.pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| RekorError::MalformedBody(format!("missing string {pointer}")))
        };
        let kind = text("/kind")?;
        if kind != "rekord" && kind != "hashedrekord" {
            return Err(RekorError::UnsupportedEntryKind { kind });
        }
        let decode = |pointer: &str| -> Result<Vec<u8>, RekorError> {
            encoding::decode_standard(&text(pointer)?).map_err(|e| {
                RekorError::MalformedBody(format!("{pointer} is not valid base64: {e}"))
            })
        };
        Ok(RekorEntry {
            api_version: text("/apiVersion")?,
            hash_algorithm: text("/spec/data/hash/algorithm")?,
            hash_value: text("/spec/data/hash/value")?,
            signature: decode("/spec/signature/content")?,
            public_key_pem: decode("/spec/signature/publicKey/content")?,
            kind,
        })
    }
}

/// Verifies the SET of `bundle` with the trusted key of its log.
///
/// Fails with [`RekorError::UnknownLogId`] when no key has the bundle's log id (compared
/// case-insensitively), and [`RekorError::InvalidSet`] when the SET does not verify.
pub fn verify_set(bundle: &RekorBundle, keys: &[RekorKey]) -> Result<(), RekorError> {
    let log_id = &bundle.payload.log_id;
    let key = keys
        .iter()
        .find(|k| k.log_id.eq_ignore_ascii_case(log_id))
        .ok_or_else(|| RekorError::UnknownLogId {
            log_id: log_id.clone(),
        })?;
    let set = encoding::decode_standard(&bundle.signed_entry_timestamp).map_err(|e| {
        RekorError::MalformedBundle(format!("SignedEntryTimestamp is not valid base64: {e}"))
    })?;
    key.key
        .verify(&bundle.signed_bytes(), &set)
        .map_err(|_| RekorError::InvalidSet {
            log_id: log_id.clone(),
        })
}

/// Checks that the log entry of `bundle` records this signature: the entry's data hash is
/// SHA-256 of `payload`, its signature is `signature`, and its public key or certificate
/// is `verifier_der` (certificate DER for keyless signatures, SubjectPublicKeyInfo DER for
/// keys). Call it after [`verify_set`].
pub fn verify_entry_matches(
    bundle: &RekorBundle,
    payload: &[u8],
    signature: &[u8],
    verifier_der: &[u8],
) -> Result<(), RekorError> {
    let entry = bundle.entry()?;
    if entry.hash_algorithm != "sha256" {
        return Err(RekorError::EntryMismatch(format!(
            "unsupported data hash algorithm {}",
            entry.hash_algorithm
        )));
    }
    let payload_digest = encoding::sha256_digest(payload);
    if !format!("sha256:{}", entry.hash_value).eq_ignore_ascii_case(&payload_digest) {
        return Err(RekorError::EntryMismatch(format!(
            "the entry records data sha256:{}, the payload is {payload_digest}",
            entry.hash_value
        )));
    }
    if entry.signature != signature {
        return Err(RekorError::EntryMismatch(
            "the entry records another signature".into(),
        ));
    }
    let pem_text = String::from_utf8(entry.public_key_pem)
        .map_err(|_| RekorError::MalformedBody("public key content is not UTF-8 PEM".into()))?;
    let blocks = pem::parse_blocks(&pem_text)
        .map_err(|e| RekorError::MalformedBody(format!("public key content: {e}")))?;
    if !blocks.iter().any(|b| b.der == verifier_der) {
        return Err(RekorError::EntryMismatch(
            "the entry records another public key or certificate".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_is_sorted_and_compact() {
        let bundle = RekorBundle {
            signed_entry_timestamp: String::new(),
            payload: RekorPayload {
                body: "Ym9keQ==".into(),
                integrated_time: 1634714717,
                log_index: 783607,
                log_id: "c0d2".into(),
            },
        };
        assert_eq!(
            String::from_utf8(bundle.signed_bytes()).unwrap(),
            r#"{"body":"Ym9keQ==","integratedTime":1634714717,"logID":"c0d2","logIndex":783607}"#
        );
    }

    #[test]
    fn malformed_bundles_are_errors() {
        for bad in [
            &b"not json"[..],
            b"{}",
            br#"{"SignedEntryTimestamp":"x","Payload":{}}"#,
        ] {
            assert!(matches!(
                RekorBundle::from_json(bad),
                Err(RekorError::MalformedBundle(_))
            ));
        }
        assert!(matches!(
            RekorBundle::from_json(&vec![b' '; MAX_BUNDLE_SIZE + 1]),
            Err(RekorError::BundleTooLarge { .. })
        ));
        let bundle = RekorBundle {
            signed_entry_timestamp: "%%".into(),
            payload: RekorPayload {
                body: "!!".into(),
                integrated_time: 0,
                log_index: 0,
                log_id: "ab".into(),
            },
        };
        assert_eq!(
            verify_set(&bundle, &[]),
            Err(RekorError::UnknownLogId {
                log_id: "ab".into()
            })
        );
        assert!(matches!(bundle.entry(), Err(RekorError::MalformedBody(_))));
    }
}
