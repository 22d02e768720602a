//! COSE_Sign1 envelopes (`application/cose`) via `coset`: the signature covers the
//! `Sig_structure` built from the protected header bytes exactly as received.

use coset::cbor::value::Value;
use coset::{CoseSign1, Label, RegisteredLabelWithPrivate, TaggedCborSerializable as _};

use crate::crypto::SignatureAlgorithm;
use crate::descriptor::PAYLOAD_MEDIA_TYPE;
use crate::envelope::{
    AUTHENTIC_SIGNING_TIME, EXPIRY, EnvelopeFormat, ProtectedHeaders, SIGNING_AGENT,
    SIGNING_SCHEME, SIGNING_TIME, SignerInfo, SigningScheme, TIMESTAMP_SIGNATURE,
};
use crate::error::{NotationError, Result};
use crate::limits;

/// COSE header label of `x5chain` (RFC 9360).
const X5CHAIN: i64 = 33;

fn malformed(reason: impl Into<String>) -> NotationError {
    NotationError::MalformedEnvelope {
        format: "COSE",
        reason: reason.into(),
    }
}

fn bad(name: &str, reason: &str) -> NotationError {
    NotationError::BadProtectedHeader {
        name: name.to_string(),
        reason: reason.to_string(),
    }
}

/// A Notary time header: CBOR tag 1 around integer seconds.
fn time_value(name: &str, value: &Value) -> Result<i64> {
    match value {
        Value::Tag(1, inner) => match inner.as_ref() {
            Value::Integer(i) => i64::try_from(*i).map_err(|_| bad(name, "time out of range")),
            _ => Err(bad(name, "not integer seconds")),
        },
        _ => Err(bad(name, "not a tag-1 time")),
    }
}

fn label_name(label: &Label) -> String {
    match label {
        Label::Int(i) => i.to_string(),
        Label::Text(t) => t.clone(),
    }
}

/// Decodes a COSE_Sign1 envelope; the Notary Project requires the COSE_Sign1 tag (18).
pub(crate) fn decode(bytes: &[u8]) -> Result<SignerInfo> {
    let sign1 = CoseSign1::from_tagged_slice(bytes).map_err(|e| malformed(e.to_string()))?;
    let protected = &sign1.protected.header;
    let unprotected = &sign1.unprotected;
    // alg, crit and content type are the three registered labels a Notary header uses.
    let protected_count = protected.rest.len() + 3;
    for (what, count) in [
        ("protected headers", protected_count),
        ("unprotected headers", unprotected.rest.len()),
    ] {
        if count > limits::MAX_HEADERS {
            return Err(NotationError::TooMany {
                what,
                count,
                limit: limits::MAX_HEADERS,
            });
        }
    }

    let algorithm = match &protected.alg {
        Some(RegisteredLabelWithPrivate::Assigned(alg)) => {
            SignatureAlgorithm::from_cose(*alg as i64).ok_or_else(|| {
                NotationError::UnsupportedAlgorithm(format!("COSE {}", *alg as i64))
            })?
        }
        Some(other) => {
            return Err(NotationError::UnsupportedAlgorithm(format!(
                "COSE {other:?}"
            )));
        }
        None => return Err(bad("alg", "absent")),
    };
    match &protected.content_type {
        Some(coset::ContentType::Text(t)) if t == PAYLOAD_MEDIA_TYPE => {}
        Some(other) => return Err(NotationError::UnsupportedContentType(format!("{other:?}"))),
        None => return Err(bad("content type", "absent")),
    }
    let crit = protected
        .crit
        .iter()
        .map(|label| match label {
            RegisteredLabelWithPrivate::Text(t) => t.clone(),
            RegisteredLabelWithPrivate::Assigned(a) => (*a as i64).to_string(),
            RegisteredLabelWithPrivate::PrivateUse(p) => p.to_string(),
        })
        .collect::<Vec<_>>();
    let find = |name: &str| {
        protected
            .rest
            .iter()
            .find(|(label, _)| matches!(label, Label::Text(t) if t == name))
            .map(|(_, value)| value)
    };
    let scheme = match find(SIGNING_SCHEME) {
        Some(Value::Text(t)) => SigningScheme::parse(t)?,
        _ => return Err(bad(SIGNING_SCHEME, "absent or not text")),
    };
    let time = |name: &str| find(name).map(|v| time_value(name, v)).transpose();
    let protected_headers = ProtectedHeaders {
        present: protected
            .rest
            .iter()
            .map(|(label, _)| label_name(label))
            .collect(),
        crit,
        signing_scheme: scheme,
        signing_time: time(SIGNING_TIME)?,
        authentic_signing_time: time(AUTHENTIC_SIGNING_TIME)?,
        expiry: time(EXPIRY)?,
    };
    protected_headers.check()?;

    let mut chain = Vec::new();
    let mut signing_agent = None;
    let mut timestamp_token = None;
    for (label, value) in &unprotected.rest {
        match (label, value) {
            (Label::Int(X5CHAIN), Value::Bytes(one)) => chain = vec![one.clone()],
            (Label::Int(X5CHAIN), Value::Array(items)) => {
                if items.len() > limits::MAX_CHAIN_LENGTH {
                    return Err(NotationError::TooMany {
                        what: "certificates",
                        count: items.len(),
                        limit: limits::MAX_CHAIN_LENGTH,
                    });
                }
                chain = items
                    .iter()
                    .map(|item| match item {
                        Value::Bytes(der) => Ok(der.clone()),
                        _ => Err(malformed("x5chain entry is not a byte string")),
                    })
                    .collect::<Result<_>>()?;
            }
            (Label::Int(X5CHAIN), _) => {
                return Err(malformed("x5chain is neither bytes nor an array"));
            }
            (Label::Text(t), Value::Text(agent)) if t == SIGNING_AGENT => {
                signing_agent = Some(agent.clone())
            }
            (Label::Text(t), Value::Bytes(token)) if t == TIMESTAMP_SIGNATURE => {
                timestamp_token = Some(token.clone())
            }
            (Label::Text(t), _) if t == TIMESTAMP_SIGNATURE => {
                return Err(malformed("timestamp signature is not a byte string"));
            }
            _ => {}
        }
    }
    let payload = sign1
        .payload
        .clone()
        .ok_or_else(|| malformed("detached payload"))?;
    if payload.len() > limits::MAX_PAYLOAD_SIZE {
        return Err(malformed(format!(
            "payload is larger than {} bytes",
            limits::MAX_PAYLOAD_SIZE
        )));
    }
    let signed_bytes = sign1.tbs_data(&[]);
    Ok(SignerInfo {
        format: EnvelopeFormat::Cose,
        algorithm,
        signing_scheme: protected_headers.signing_scheme,
        signing_time: protected_headers.signing_time,
        authentic_signing_time: protected_headers.authentic_signing_time,
        expiry: protected_headers.expiry,
        payload,
        signed_bytes,
        signature: sign1.signature,
        chain,
        timestamp_token,
        signing_agent,
    })
}
