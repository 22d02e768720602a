//! Legacy cosign signatures: the simple-signing payload of a `.sig` image layer and its
//! detached signature (the layer's [`SIGNATURE_ANNOTATION`](crate::cosign::SIGNATURE_ANNOTATION)).

use std::collections::BTreeMap;

use serde_json::Value;
use thiserror::Error;

use crate::encoding;
use crate::keys::{self, PublicKey};

/// Largest payload [`verify_simple_signing`] accepts (4 MiB).
pub const MAX_PAYLOAD_SIZE: usize = 4 * 1024 * 1024;

/// The `critical.type` of a cosign image signature payload.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";

/// A verified simple-signing payload.
#[derive(Debug, Clone, PartialEq)]
pub struct SimpleSigning {
    /// `critical.identity.docker-reference` (informative; empty when absent).
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`, equal to the verified image digest.
    pub docker_manifest_digest: String,
    /// `optional` (the `cosign sign -a` annotations); empty when `null` or absent.
    pub optional: BTreeMap<String, Value>,
    /// The whole payload as parsed, for printing like `cosign verify`.
    pub payload: Value,
}

/// Why a simple-signing signature was not accepted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SimpleSigningError {
    /// The payload is larger than [`MAX_PAYLOAD_SIZE`].
    #[error("simple-signing payload is too large: {size} bytes (limit {limit} bytes)")]
    PayloadTooLarge {
        /// Payload size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// No key was given to verify with.
    #[error("no public keys to verify the signature with")]
    NoKeys,
    /// The signature annotation is not base64.
    #[error("malformed signature: the signature annotation is not valid base64: {0}")]
    MalformedSignature(String),
    /// No key verified the signature.
    #[error("invalid signature: no key verified the signature ({keys} key(s) tried)")]
    InvalidSignature {
        /// How many keys were tried.
        keys: usize,
    },
    /// The payload is not a simple-signing JSON document.
    #[error("malformed simple-signing payload: {0}")]
    MalformedPayload(String),
    /// The payload's `critical.type` is not [`SIMPLE_SIGNING_TYPE`].
    #[error(
        "unexpected simple-signing payload type \"{found}\", expected \"{SIMPLE_SIGNING_TYPE}\""
    )]
    WrongPayloadType {
        /// The type found.
        found: String,
    },
    /// The signed digest is not the image digest.
    #[error("payload digest {payload_digest} does not match image digest {image_digest}")]
    DigestMismatch {
        /// `critical.image.docker-manifest-digest`.
        payload_digest: String,
        /// The digest being verified.
        image_digest: String,
    },
    /// A required annotation is missing or differs.
    #[error(
        "annotation mismatch: key \"{key}\" is {} in the signed payload, expected \"{expected}\"",
        actual.as_deref().unwrap_or("missing")
    )]
    AnnotationMismatch {
        /// Annotation key.
        key: String,
        /// Required value.
        expected: String,
        /// Value found, rendered as JSON (`None` when absent).
        actual: Option<String>,
    },
}

/// Verifies one cosign signature layer.
///
/// `payload` is the layer blob (already digest-checked by the fetcher) and
/// `signature_b64` the layer's signature annotation. Checked in this order: the size,
/// the signature by one of `keys` ([`SimpleSigningError::InvalidSignature`]), the payload
/// shape and type, `docker-manifest-digest == image_digest`
/// ([`SimpleSigningError::DigestMismatch`]), then every `(k, v)` of
/// `required_annotations` equal to the string `payload.optional[k]`
/// ([`SimpleSigningError::AnnotationMismatch`]; a non-string value never matches).
pub fn verify_simple_signing(
    payload: &[u8],
    signature_b64: &str,
    keys: &[PublicKey],
    image_digest: &str,
    required_annotations: &BTreeMap<String, String>,
) -> Result<SimpleSigning, SimpleSigningError> {
    if payload.len() > MAX_PAYLOAD_SIZE {
        return Err(SimpleSigningError::PayloadTooLarge {
            size: payload.len(),
            limit: MAX_PAYLOAD_SIZE,
        });
    }
    if keys.is_empty() {
        return Err(SimpleSigningError::NoKeys);
    }
    if signature_b64.trim().is_empty() {
        return Err(SimpleSigningError::MalformedSignature(
            "the signature is empty".into(),
        ));
    }
    let signature = encoding::decode_standard(signature_b64)
        .map_err(|e| SimpleSigningError::MalformedSignature(e.to_string()))?;
    if keys::verify_with_any(keys, payload, &signature).is_none() {
        return Err(SimpleSigningError::InvalidSignature { keys: keys.len() });
    }

    let parsed = parse_payload(payload)?;
    if parsed.docker_manifest_digest != image_digest {
        return Err(SimpleSigningError::DigestMismatch {
            payload_digest: parsed.docker_manifest_digest,
            image_digest: image_digest.to_owned(),
        });
    }
    for (key, expected) in required_annotations {
        let actual = parsed.optional.get(key);
        if actual.and_then(Value::as_str) != Some(expected.as_str()) {
            return Err(SimpleSigningError::AnnotationMismatch {
                key: key.clone(),
                expected: expected.clone(),
                actual: actual.map(Value::to_string),
            });
        }
    }
    Ok(parsed)
}

/// Parses a simple-signing payload without verifying anything.
pub fn parse_payload(payload: &[u8]) -> Result<SimpleSigning, SimpleSigningError> {
    let malformed = |what: &str| SimpleSigningError::MalformedPayload(what.to_owned());
    let value: Value = serde_json::from_slice(payload)
        .map_err(|e| SimpleSigningError::MalformedPayload(format!("not JSON: {e}")))?;
    let critical = value
        .get("critical")
        .and_then(Value::as_object)
        .ok_or_else(|| malformed("missing object \"critical\""))?;
    let kind = critical
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("missing string \"critical.type\""))?;
    if kind != SIMPLE_SIGNING_TYPE {
        return Err(SimpleSigningError::WrongPayloadType {
            found: kind.to_owned(),
        });
    }
    let docker_manifest_digest = critical
        .get("image")
        .and_then(|image| image.get("docker-manifest-digest"))
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("missing string \"critical.image.docker-manifest-digest\""))?
        .to_owned();
    let docker_reference = match critical
        .get("identity")
        .and_then(|identity| identity.get("docker-reference"))
    {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(reference)) => reference.clone(),
        Some(_) => {
            return Err(malformed(
                "\"critical.identity.docker-reference\" is not a string",
            ));
        }
    };
    let optional = match value.get("optional") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        Some(_) => return Err(malformed("\"optional\" is not an object")),
    };
    Ok(SimpleSigning {
        docker_reference,
        docker_manifest_digest,
        optional,
        payload: value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _};

    const DIGEST: &str = "sha256:f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268";

    struct Signer(EcdsaKeyPair);

    impl Signer {
        fn new() -> Self {
            Signer(EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap())
        }
        fn key(&self) -> PublicKey {
            PublicKey::from_spki_der(self.0.public_key().as_der().unwrap().as_ref()).unwrap()
        }
        fn sign(&self, payload: &[u8]) -> String {
            let sig = self.0.sign(&SystemRandom::new(), payload).unwrap();
            encoding::encode_standard(sig.as_ref())
        }
    }

    fn payload(digest: &str, optional: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "critical": {
                "identity": {"docker-reference": "example.com/app"},
                "image": {"docker-manifest-digest": digest},
                "type": SIMPLE_SIGNING_TYPE,
            },
            "optional": optional,
        }))
        .unwrap()
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn verifies_and_parses() {
        let signer = Signer::new();
        let body = payload(DIGEST, serde_json::json!({"env": "prod", "n": 1}));
        let sig = signer.sign(&body);
        let verified = verify_simple_signing(
            &body,
            &sig,
            &[signer.key()],
            DIGEST,
            &annotations(&[("env", "prod")]),
        )
        .unwrap();
        assert_eq!(verified.docker_reference, "example.com/app");
        assert_eq!(verified.docker_manifest_digest, DIGEST);
        assert_eq!(verified.optional["env"], "prod");
        assert_eq!(verified.payload["critical"]["type"], SIMPLE_SIGNING_TYPE);
    }

    #[test]
    fn tampered_payload_is_invalid_signature() {
        let signer = Signer::new();
        let body = payload(DIGEST, Value::Null);
        let sig = signer.sign(&body);
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        let err = verify_simple_signing(&tampered, &sig, &[signer.key()], DIGEST, &BTreeMap::new())
            .unwrap_err();
        assert_eq!(err, SimpleSigningError::InvalidSignature { keys: 1 });
        assert_eq!(
            err.to_string(),
            "invalid signature: no key verified the signature (1 key(s) tried)"
        );
        // Another key: invalid too; with both keys: valid.
        let other = Signer::new();
        assert!(
            verify_simple_signing(&body, &sig, &[other.key()], DIGEST, &BTreeMap::new()).is_err()
        );
        verify_simple_signing(
            &body,
            &sig,
            &[other.key(), signer.key()],
            DIGEST,
            &BTreeMap::new(),
        )
        .unwrap();
    }

    #[test]
    fn digest_mismatch() {
        let signer = Signer::new();
        let body = payload(DIGEST, Value::Null);
        let sig = signer.sign(&body);
        let other = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let err = verify_simple_signing(&body, &sig, &[signer.key()], other, &BTreeMap::new())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("payload digest {DIGEST} does not match image digest {other}")
        );
    }

    #[test]
    fn annotation_mismatch() {
        let signer = Signer::new();
        let body = payload(DIGEST, serde_json::json!({"env": "dev", "n": 1}));
        let sig = signer.sign(&body);
        let check = |pairs: &[(&str, &str)]| {
            verify_simple_signing(&body, &sig, &[signer.key()], DIGEST, &annotations(pairs))
        };
        let err = check(&[("env", "prod")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "annotation mismatch: key \"env\" is \"dev\" in the signed payload, expected \"prod\""
        );
        assert!(matches!(
            check(&[("missing", "x")]),
            Err(SimpleSigningError::AnnotationMismatch { actual: None, .. })
        ));
        // Non-string values never match a string requirement.
        assert!(check(&[("n", "1")]).is_err());
        // Annotations required but payload has optional: null.
        let body = payload(DIGEST, Value::Null);
        let sig = signer.sign(&body);
        assert!(matches!(
            verify_simple_signing(
                &body,
                &sig,
                &[signer.key()],
                DIGEST,
                &annotations(&[("a", "b")])
            ),
            Err(SimpleSigningError::AnnotationMismatch { .. })
        ));
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let signer = Signer::new();
        let keys = [signer.key()];
        let none = BTreeMap::new();
        let body = payload(DIGEST, Value::Null);
        assert!(matches!(
            verify_simple_signing(&body, "!!!", &keys, DIGEST, &none),
            Err(SimpleSigningError::MalformedSignature(_))
        ));
        assert!(matches!(
            verify_simple_signing(&body, "", &keys, DIGEST, &none),
            Err(SimpleSigningError::MalformedSignature(_))
        ));
        assert_eq!(
            verify_simple_signing(&body, "AAAA", &[], DIGEST, &none),
            Err(SimpleSigningError::NoKeys)
        );
        // Signed but not JSON / wrong type / wrong shape.
        for (bytes, expect_type) in [
            (b"not json".to_vec(), false),
            (b"{}".to_vec(), false),
            (
                br#"{"critical":{"type":"atomic container signature","image":{"docker-manifest-digest":"x"}}}"#.to_vec(),
                true,
            ),
            (
                br#"{"critical":{"type":"cosign container image signature","image":{}}}"#.to_vec(),
                false,
            ),
            (
                br#"{"critical":{"type":"cosign container image signature","image":{"docker-manifest-digest":"x"}},"optional":[1]}"#.to_vec(),
                false,
            ),
        ] {
            let sig = signer.sign(&bytes);
            let err = verify_simple_signing(&bytes, &sig, &keys, DIGEST, &none).unwrap_err();
            if expect_type {
                assert!(matches!(err, SimpleSigningError::WrongPayloadType { .. }), "{err}");
            } else {
                assert!(matches!(err, SimpleSigningError::MalformedPayload(_)), "{err}");
            }
        }
        let huge = vec![b' '; MAX_PAYLOAD_SIZE + 1];
        assert!(matches!(
            verify_simple_signing(&huge, "AAAA", &keys, DIGEST, &none),
            Err(SimpleSigningError::PayloadTooLarge { .. })
        ));
    }
}
