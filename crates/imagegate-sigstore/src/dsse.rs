//! DSSE envelopes and in-toto statements: the content of cosign `.att` layers.
//!
//! An envelope is `{"payloadType", "payload" (base64), "signatures": [{"keyid", "sig"
//! (base64)}]}`; each signature is over the pre-authentication encoding [`pae`] of the
//! payload type *as stored* and the decoded payload.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::encoding;
use crate::keys::{self, PublicKey};

/// Largest envelope [`verify_attestation`] and [`Envelope::from_json`] accept (4 MiB).
pub const MAX_ENVELOPE_SIZE: usize = 4 * 1024 * 1024;
/// The DSSE payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// in-toto Statement v0.1 `_type`.
pub const STATEMENT_TYPE_V01: &str = "https://in-toto.io/Statement/v0.1";
/// in-toto Statement v1 `_type`.
pub const STATEMENT_TYPE_V1: &str = "https://in-toto.io/Statement/v1";

/// cosign's short predicate type names (`cosign attest --type`) and their URIs
/// (cosign `options.PredicateTypeMap`).
pub const COSIGN_PREDICATE_TYPES: &[(&str, &str)] = &[
    ("custom", "https://cosign.sigstore.dev/attestation/v1"),
    ("slsaprovenance", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance02", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
    ("spdx", "https://spdx.dev/Document"),
    ("spdxjson", "https://spdx.dev/Document"),
    ("cyclonedx", "https://cyclonedx.org/bom"),
    ("link", "https://in-toto.io/Link/v1"),
    ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
    ("openvex", "https://openvex.dev/ns"),
];

/// Predicate URIs written by old cosign (before the `https://` prefix was added),
/// accepted as the same type as the current URI.
const LEGACY_PREDICATE_TYPES: &[(&str, &str)] = &[
    (
        "cosign.sigstore.dev/attestation/v1",
        "https://cosign.sigstore.dev/attestation/v1",
    ),
    (
        "cosign.sigstore.dev/attestation/vuln/v1",
        "https://cosign.sigstore.dev/attestation/vuln/v1",
    ),
];

/// A decoded DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawEnvelope", into = "RawEnvelope")]
pub struct Envelope {
    /// `payloadType`, as stored.
    pub payload_type: String,
    /// The decoded payload.
    pub payload: Vec<u8>,
    /// The signatures.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an [`Envelope`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeSignature {
    /// `keyid` (often empty; informative only, never used to select a key).
    pub keyid: String,
    /// The decoded signature.
    pub sig: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEnvelope {
    payload_type: String,
    payload: String,
    #[serde(default)]
    signatures: Option<Vec<RawSignature>>,
}

#[derive(Serialize, Deserialize)]
struct RawSignature {
    #[serde(default)]
    keyid: Option<String>,
    sig: String,
}

impl TryFrom<RawEnvelope> for Envelope {
    type Error = String;

    fn try_from(raw: RawEnvelope) -> Result<Self, Self::Error> {
        let payload = encoding::decode_any(&raw.payload)
            .map_err(|e| format!("\"payload\" is not valid base64: {e}"))?;
        let signatures = raw
            .signatures
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                Ok(EnvelopeSignature {
                    keyid: s.keyid.unwrap_or_default(),
                    sig: encoding::decode_any(&s.sig)
                        .map_err(|e| format!("signatures[{i}].sig is not valid base64: {e}"))?,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Envelope {
            payload_type: raw.payload_type,
            payload,
            signatures,
        })
    }
}

impl From<Envelope> for RawEnvelope {
    fn from(envelope: Envelope) -> Self {
        RawEnvelope {
            payload_type: envelope.payload_type,
            payload: encoding::encode_standard(&envelope.payload),
            signatures: Some(
                envelope
                    .signatures
                    .into_iter()
                    .map(|s| RawSignature {
                        keyid: Some(s.keyid),
                        sig: encoding::encode_standard(&s.sig),
                    })
                    .collect(),
            ),
        }
    }
}

impl Envelope {
    /// Parses an envelope (an `.att` layer blob), refusing more than [`MAX_ENVELOPE_SIZE`].
    pub fn from_json(bytes: &[u8]) -> Result<Envelope, AttestationError> {
        if bytes.len() > MAX_ENVELOPE_SIZE {
            return Err(AttestationError::EnvelopeTooLarge {
                size: bytes.len(),
                limit: MAX_ENVELOPE_SIZE,
            });
        }
        serde_json::from_slice(bytes)
            .map_err(|e| AttestationError::MalformedEnvelope(e.to_string()))
    }

    /// The bytes every signature is over: [`pae`]`(payload_type, payload)`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }
}

/// DSSE v1 pre-authentication encoding:
/// `"DSSEv1" SP len(type) SP type SP len(payload) SP payload` (lengths in ASCII decimal bytes).
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// One subject of an in-toto statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// `name` (empty when absent).
    #[serde(default)]
    pub name: String,
    /// `digest`: algorithm → lowercase hex.
    #[serde(default)]
    pub digest: BTreeMap<String, String>,
}

/// A verified attestation: the envelope's payload type and its in-toto statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Attestation {
    /// The envelope's `payloadType`.
    pub payload_type: String,
    /// The statement's `_type`.
    pub statement_type: String,
    /// The statement's `predicateType`.
    pub predicate_type: String,
    /// The statement's subjects.
    pub subjects: Vec<Subject>,
    /// The statement's `predicate` (`null` when absent).
    pub predicate: Value,
    /// The whole statement as parsed.
    pub statement: Value,
}

/// Why an attestation was not accepted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AttestationError {
    /// The envelope is larger than [`MAX_ENVELOPE_SIZE`].
    #[error("DSSE envelope is too large: {size} bytes (limit {limit} bytes)")]
    EnvelopeTooLarge {
        /// Envelope size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The envelope is not DSSE JSON.
    #[error("malformed DSSE envelope: {0}")]
    MalformedEnvelope(String),
    /// No key was given to verify with.
    #[error("no public keys to verify the attestation with")]
    NoKeys,
    /// The envelope has no signatures.
    #[error("DSSE envelope has no signatures")]
    NoSignatures,
    /// No signature verified with any key.
    #[error(
        "invalid signature: no key verified the DSSE envelope ({signatures} signature(s), {keys} key(s) tried)"
    )]
    InvalidSignature {
        /// Signatures in the envelope.
        signatures: usize,
        /// Keys tried.
        keys: usize,
    },
    /// The payload is not an in-toto statement.
    #[error("malformed in-toto statement: {0}")]
    MalformedStatement(String),
    /// The statement `_type` is unknown.
    #[error(
        "unsupported in-toto statement type \"{found}\" (expected {STATEMENT_TYPE_V01} or {STATEMENT_TYPE_V1})"
    )]
    UnsupportedStatementType {
        /// The `_type` found.
        found: String,
    },
    /// The envelope's payload type is neither in-toto nor the predicate type.
    #[error(
        "unexpected DSSE payload type \"{payload_type}\" (expected \"{IN_TOTO_PAYLOAD_TYPE}\" or the predicate type \"{predicate_type}\")"
    )]
    UnexpectedPayloadType {
        /// The envelope's payload type.
        payload_type: String,
        /// The statement's predicate type.
        predicate_type: String,
    },
    /// The digest to match is not `<algorithm>:<hex>`.
    #[error("malformed subject digest \"{digest}\": expected <algorithm>:<hex>")]
    MalformedDigest {
        /// The digest given.
        digest: String,
    },
    /// No subject has the digest.
    #[error("no subject of the attestation has digest {digest}")]
    SubjectMismatch {
        /// The digest looked for.
        digest: String,
    },
}

/// Verifies one DSSE envelope (an `.att` layer blob).
///
/// Some signature must verify with some key over [`pae`]`(payloadType as stored,
/// payload)`. The payload must be an in-toto Statement (v0.1 or v1) whose
/// `predicateType` is non-empty; the envelope's `payloadType` must be
/// [`IN_TOTO_PAYLOAD_TYPE`] or, as old cosign wrote it, the predicate type itself. When
/// `subject_digest` is `Some("sha256:<hex>")`, some subject's `digest.sha256` must equal
/// it (an empty subject list or subjects without that algorithm never match).
///
/// The predicate type is not filtered here: compare `attestation.predicate_type` with
/// [`predicate_type_matches`].
pub fn verify_attestation(
    envelope: &[u8],
    keys: &[PublicKey],
    subject_digest: Option<&str>,
) -> Result<Attestation, AttestationError> {
    let envelope = Envelope::from_json(envelope)?;
    if keys.is_empty() {
        return Err(AttestationError::NoKeys);
    }
    if envelope.signatures.is_empty() {
        return Err(AttestationError::NoSignatures);
    }
    let signed = envelope.signed_bytes();
    let verified = envelope
        .signatures
        .iter()
        .any(|s| keys::verify_with_any(keys, &signed, &s.sig).is_some());
    if !verified {
        return Err(AttestationError::InvalidSignature {
            signatures: envelope.signatures.len(),
            keys: keys.len(),
        });
    }

    let attestation = parse_statement(&envelope.payload_type, &envelope.payload)?;
    if let Some(digest) = subject_digest {
        check_subject(&attestation.subjects, digest)?;
    }
    Ok(attestation)
}

/// Parses an in-toto statement carried with `payload_type`, without verifying anything.
pub fn parse_statement(
    payload_type: &str,
    payload: &[u8],
) -> Result<Attestation, AttestationError> {
    let malformed = |what: &str| AttestationError::MalformedStatement(what.to_owned());
    let statement: Value = serde_json::from_slice(payload)
        .map_err(|e| AttestationError::MalformedStatement(format!("not JSON: {e}")))?;
    let statement_type = statement
        .get("_type")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("missing string \"_type\""))?
        .to_owned();
    if statement_type != STATEMENT_TYPE_V01 && statement_type != STATEMENT_TYPE_V1 {
        return Err(AttestationError::UnsupportedStatementType {
            found: statement_type,
        });
    }
    let predicate_type = statement
        .get("predicateType")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| malformed("missing or empty string \"predicateType\""))?
        .to_owned();
    if payload_type != IN_TOTO_PAYLOAD_TYPE && payload_type != predicate_type {
        return Err(AttestationError::UnexpectedPayloadType {
            payload_type: payload_type.to_owned(),
            predicate_type,
        });
    }
    let subjects: Vec<Subject> = match statement.get("subject") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => serde_json::from_value(value.clone())
            .map_err(|e| AttestationError::MalformedStatement(format!("\"subject\": {e}")))?,
    };
    let predicate = statement.get("predicate").cloned().unwrap_or(Value::Null);
    Ok(Attestation {
        payload_type: payload_type.to_owned(),
        statement_type,
        predicate_type,
        subjects,
        predicate,
        statement,
    })
}

/// Checks that some subject has `digest` (`<algorithm>:<hex>`, hex compared
/// case-insensitively).
pub fn check_subject(subjects: &[Subject], digest: &str) -> Result<(), AttestationError> {
    let (algorithm, hex) = digest
        .split_once(':')
        .filter(|(a, h)| !a.is_empty() && !h.is_empty())
        .ok_or_else(|| AttestationError::MalformedDigest {
            digest: digest.to_owned(),
        })?;
    let found = subjects.iter().any(|s| {
        s.digest
            .get(algorithm)
            .is_some_and(|v| v.eq_ignore_ascii_case(hex))
    });
    if found {
        Ok(())
    } else {
        Err(AttestationError::SubjectMismatch {
            digest: digest.to_owned(),
        })
    }
}

/// Whether a statement's `actual` predicate type is the `wanted` one.
///
/// `wanted` may be a URI or one of cosign's short names ([`COSIGN_PREDICATE_TYPES`],
/// e.g. `slsaprovenance`); an unknown name is compared as-is, like cosign does. The
/// legacy cosign URIs without `https://` (`cosign.sigstore.dev/attestation/v1`) count as
/// their current form. An empty `wanted` never matches: callers must reject an empty
/// predicate type as a configuration error ("missing predicate type") before calling.
pub fn predicate_type_matches(wanted: &str, actual: &str) -> bool {
    if wanted.is_empty() {
        return false;
    }
    let normalise = |t: &str| -> String {
        let t = COSIGN_PREDICATE_TYPES
            .iter()
            .find(|(short, _)| *short == t)
            .map_or(t, |(_, uri)| uri);
        LEGACY_PREDICATE_TYPES
            .iter()
            .find(|(legacy, _)| *legacy == t)
            .map_or(t, |(_, uri)| uri)
            .to_owned()
    };
    normalise(wanted) == normalise(actual)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _};

    const HEX: &str = "b31bfb4d0213f254d361e0079deaaebefa4f82ba7aa76ef82e90b4935ad5b105";

    fn signer() -> (EcdsaKeyPair, PublicKey) {
        let pair = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let key = PublicKey::from_spki_der(pair.public_key().as_der().unwrap().as_ref()).unwrap();
        (pair, key)
    }

    fn envelope(pair: &EcdsaKeyPair, payload_type: &str, statement: &Value) -> Vec<u8> {
        let payload = serde_json::to_vec(statement).unwrap();
        let sig = pair
            .sign(&SystemRandom::new(), &pae(payload_type, &payload))
            .unwrap();
        serde_json::to_vec(&Envelope {
            payload_type: payload_type.into(),
            payload,
            signatures: vec![EnvelopeSignature {
                keyid: String::new(),
                sig: sig.as_ref().to_vec(),
            }],
        })
        .unwrap()
    }

    fn statement(subject: Value) -> Value {
        serde_json::json!({
            "_type": STATEMENT_TYPE_V1,
            "predicateType": "https://slsa.dev/provenance/v1",
            "subject": subject,
            "predicate": {"a": 1},
        })
    }

    #[test]
    fn pae_matches_the_spec_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn verifies_and_checks_subject() {
        let (pair, key) = signer();
        let st = statement(serde_json::json!([{"name": "x", "digest": {"sha256": HEX}}]));
        let env = envelope(&pair, IN_TOTO_PAYLOAD_TYPE, &st);
        let att = verify_attestation(
            &env,
            std::slice::from_ref(&key),
            Some(&format!("sha256:{HEX}")),
        )
        .unwrap();
        assert_eq!(att.predicate_type, "https://slsa.dev/provenance/v1");
        assert_eq!(att.statement_type, STATEMENT_TYPE_V1);
        assert_eq!(att.predicate["a"], 1);
        assert_eq!(att.subjects[0].name, "x");
        verify_attestation(&env, std::slice::from_ref(&key), None).unwrap();

        let other = format!("sha256:{}", "0".repeat(64));
        assert_eq!(
            verify_attestation(&env, std::slice::from_ref(&key), Some(&other))
                .unwrap_err()
                .to_string(),
            format!("no subject of the attestation has digest {other}")
        );
        assert!(matches!(
            verify_attestation(&env, &[key], Some("nocolon")),
            Err(AttestationError::MalformedDigest { .. })
        ));
    }

    #[test]
    fn tampered_or_foreign_key_is_invalid() {
        let (pair, key) = signer();
        let (_, other) = signer();
        let st = statement(serde_json::json!([]));
        let env = envelope(&pair, IN_TOTO_PAYLOAD_TYPE, &st);
        assert!(matches!(
            verify_attestation(&env, std::slice::from_ref(&other), None),
            Err(AttestationError::InvalidSignature {
                signatures: 1,
                keys: 1
            })
        ));
        // Same signature, payloadType changed: the PAE differs.
        let mut parsed = Envelope::from_json(&env).unwrap();
        parsed.payload_type = "https://slsa.dev/provenance/v1".into();
        let changed = serde_json::to_vec(&parsed).unwrap();
        assert!(matches!(
            verify_attestation(&changed, std::slice::from_ref(&key), None),
            Err(AttestationError::InvalidSignature { .. })
        ));
        // Payload changed.
        let mut parsed = Envelope::from_json(&env).unwrap();
        parsed.payload.push(b' ');
        let changed = serde_json::to_vec(&parsed).unwrap();
        assert!(verify_attestation(&changed, std::slice::from_ref(&key), None).is_err());
        // No signatures.
        parsed.signatures.clear();
        let changed = serde_json::to_vec(&parsed).unwrap();
        assert_eq!(
            verify_attestation(&changed, &[key], None),
            Err(AttestationError::NoSignatures)
        );
    }

    #[test]
    fn statement_rules() {
        let (pair, key) = signer();
        let keys = [key];
        let mut st = statement(serde_json::json!([]));
        // Old cosign: payloadType == predicateType is accepted.
        let env = envelope(&pair, "https://slsa.dev/provenance/v1", &st);
        verify_attestation(&env, &keys, None).unwrap();
        // Any other payloadType is not.
        let env = envelope(&pair, "text/plain", &st);
        assert!(matches!(
            verify_attestation(&env, &keys, None),
            Err(AttestationError::UnexpectedPayloadType { .. })
        ));
        // Empty subject never matches.
        let env = envelope(&pair, IN_TOTO_PAYLOAD_TYPE, &st);
        assert!(matches!(
            verify_attestation(&env, &keys, Some(&format!("sha256:{HEX}"))),
            Err(AttestationError::SubjectMismatch { .. })
        ));
        // Unknown statement type.
        st["_type"] = "https://in-toto.io/Statement/v9".into();
        let env = envelope(&pair, IN_TOTO_PAYLOAD_TYPE, &st);
        assert!(matches!(
            verify_attestation(&env, &keys, None),
            Err(AttestationError::UnsupportedStatementType { .. })
        ));
        // Missing predicate type.
        let st = serde_json::json!({"_type": STATEMENT_TYPE_V01, "subject": []});
        let env = envelope(&pair, IN_TOTO_PAYLOAD_TYPE, &st);
        assert!(matches!(
            verify_attestation(&env, &keys, None),
            Err(AttestationError::MalformedStatement(_))
        ));
    }

    #[test]
    fn malformed_envelopes_are_errors() {
        let (_, key) = signer();
        let keys = [key];
        for bad in [
            &b"not json"[..],
            b"{}",
            b"[]",
            br#"{"payloadType":"x","payload":"!!","signatures":[]}"#,
            br#"{"payloadType":"x","payload":"e30=","signatures":[{"sig":"%%"}]}"#,
            br#"{"payloadType":"x","payload":"e30=","signatures":[{"keyid":""}]}"#,
        ] {
            let err = verify_attestation(bad, &keys, None).unwrap_err();
            assert!(
                err.to_string().starts_with("malformed DSSE envelope: "),
                "{err}"
            );
        }
        let huge = vec![b' '; MAX_ENVELOPE_SIZE + 1];
        assert!(matches!(
            verify_attestation(&huge, &keys, None),
            Err(AttestationError::EnvelopeTooLarge { .. })
        ));
        assert_eq!(
            verify_attestation(br#"{"payloadType":"x","payload":""}"#, &[], None),
            Err(AttestationError::NoKeys)
        );
    }

    #[test]
    fn envelope_serde_round_trip() {
        let json =
            br#"{"payloadType":"t","payload":"aGk=","signatures":[{"keyid":"k","sig":"AAE="}]}"#;
        let env = Envelope::from_json(json).unwrap();
        assert_eq!(env.payload, b"hi");
        assert_eq!(env.signatures[0].keyid, "k");
        assert_eq!(env.signatures[0].sig, vec![0, 1]);
        assert_eq!(serde_json::to_vec(&env).unwrap(), json.to_vec());
        // URL-safe and unpadded base64 are accepted too.
        let env = Envelope::from_json(br#"{"payloadType":"t","payload":"-_8","signatures":null}"#)
            .unwrap();
        assert_eq!(env.payload, vec![0xfb, 0xff]);
        assert!(env.signatures.is_empty());
    }

    #[test]
    fn predicate_types() {
        assert!(predicate_type_matches(
            "slsaprovenance",
            "https://slsa.dev/provenance/v0.2"
        ));
        assert!(predicate_type_matches(
            "slsaprovenance02",
            "https://slsa.dev/provenance/v0.2"
        ));
        assert!(predicate_type_matches(
            "slsaprovenance1",
            "https://slsa.dev/provenance/v1"
        ));
        assert!(!predicate_type_matches(
            "slsaprovenance",
            "https://slsa.dev/provenance/v1"
        ));
        assert!(predicate_type_matches(
            "custom",
            "https://cosign.sigstore.dev/attestation/v1"
        ));
        assert!(predicate_type_matches(
            "custom",
            "cosign.sigstore.dev/attestation/v1"
        ));
        assert!(predicate_type_matches(
            "https://cosign.sigstore.dev/attestation/v1",
            "cosign.sigstore.dev/attestation/v1"
        ));
        assert!(predicate_type_matches(
            "spdxjson",
            "https://spdx.dev/Document"
        ));
        assert!(predicate_type_matches(
            "cyclonedx",
            "https://cyclonedx.org/bom"
        ));
        assert!(predicate_type_matches("link", "https://in-toto.io/Link/v1"));
        assert!(predicate_type_matches(
            "vuln",
            "https://cosign.sigstore.dev/attestation/vuln/v1"
        ));
        assert!(predicate_type_matches("openvex", "https://openvex.dev/ns"));
        assert!(predicate_type_matches(
            "https://example.com/CodeReview/v1",
            "https://example.com/CodeReview/v1"
        ));
        assert!(!predicate_type_matches(
            "notreallyslsaprovenance",
            "https://slsa.dev/provenance/v0.2"
        ));
        assert!(!predicate_type_matches("", ""));
        assert!(!predicate_type_matches(
            "",
            "https://slsa.dev/provenance/v0.2"
        ));
    }
}
