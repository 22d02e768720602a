//! JWS envelopes in JSON serialization (`application/jose+json`), read by hand: the
//! signature covers `BASE64URL(protected) || '.' || BASE64URL(payload)` exactly as sent.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::crypto::SignatureAlgorithm;
use crate::descriptor::PAYLOAD_MEDIA_TYPE;
use crate::envelope::{
    AUTHENTIC_SIGNING_TIME, EXPIRY, EnvelopeFormat, ProtectedHeaders, SIGNING_SCHEME, SIGNING_TIME,
    SignerInfo, SigningScheme,
};
use crate::error::{NotationError, Result};
use crate::limits;
use crate::time::parse_rfc3339;

#[derive(Deserialize)]
struct Envelope {
    payload: String,
    protected: String,
    #[serde(default)]
    header: Unprotected,
    signature: String,
}

#[derive(Deserialize, Default)]
struct Unprotected {
    #[serde(default)]
    x5c: Vec<String>,
    #[serde(rename = "io.cncf.notary.signingAgent", default)]
    signing_agent: Option<String>,
    #[serde(rename = "io.cncf.notary.timestampSignature", default)]
    timestamp_signature: Option<String>,
}

fn malformed(reason: impl Into<String>) -> NotationError {
    NotationError::MalformedEnvelope {
        format: "JWS",
        reason: reason.into(),
    }
}

/// Decodes a JWS envelope (not yet verified).
pub(crate) fn decode(bytes: &[u8]) -> Result<SignerInfo> {
    let envelope: Envelope = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
    if envelope.header.x5c.len() > limits::MAX_CHAIN_LENGTH {
        return Err(NotationError::TooMany {
            what: "certificates",
            count: envelope.header.x5c.len(),
            limit: limits::MAX_CHAIN_LENGTH,
        });
    }
    // Unpadded base64url, strictly: a padded or otherwise altered encoding is an
    // integrity failure even before the signature is checked.
    let b64url = |what: &str, text: &str| {
        URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|e| malformed(format!("{what} is not unpadded base64url: {e}")))
    };
    let protected = b64url("protected", &envelope.protected)?;
    let payload = b64url("payload", &envelope.payload)?;
    let signature = b64url("signature", &envelope.signature)?;
    if payload.len() > limits::MAX_PAYLOAD_SIZE {
        return Err(malformed(format!(
            "payload is larger than {} bytes",
            limits::MAX_PAYLOAD_SIZE
        )));
    }
    let chain = envelope
        .header
        .x5c
        .iter()
        .enumerate()
        .map(|(i, c)| {
            STANDARD
                .decode(c)
                .map_err(|e| malformed(format!("x5c[{i}] is not base64: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let timestamp_token = match &envelope.header.timestamp_signature {
        Some(text) => Some(
            STANDARD
                .decode(text)
                .map_err(|e| malformed(format!("timestamp signature is not base64: {e}")))?,
        ),
        None => None,
    };

    let headers: Map<String, Value> = serde_json::from_slice(&protected)
        .map_err(|e| malformed(format!("protected header: {e}")))?;
    if headers.len() > limits::MAX_HEADERS {
        return Err(NotationError::TooMany {
            what: "protected headers",
            count: headers.len(),
            limit: limits::MAX_HEADERS,
        });
    }
    let bad = |name: &str, reason: &str| NotationError::BadProtectedHeader {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    let string = |name: &str| -> Result<Option<&str>> {
        match headers.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(bad(name, "not a string")),
        }
    };
    let time = |name: &str| -> Result<Option<i64>> {
        string(name)?
            .map(|t| parse_rfc3339(t).ok_or_else(|| bad(name, "not an RFC 3339 time")))
            .transpose()
    };
    let alg = string("alg")?.ok_or_else(|| bad("alg", "absent"))?;
    let algorithm = SignatureAlgorithm::from_jws(alg)
        .ok_or_else(|| NotationError::UnsupportedAlgorithm(alg.to_string()))?;
    let content_type = string("cty")?.ok_or_else(|| bad("cty", "absent"))?;
    if content_type != PAYLOAD_MEDIA_TYPE {
        return Err(NotationError::UnsupportedContentType(
            content_type.to_string(),
        ));
    }
    let crit = match headers.get("crit") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad("crit", "not a list of strings"))
            })
            .collect::<Result<Vec<_>>>()?,
        _ => return Err(bad("crit", "absent or not a list")),
    };
    let scheme = string(SIGNING_SCHEME)?.ok_or_else(|| bad(SIGNING_SCHEME, "absent"))?;
    let protected_headers = ProtectedHeaders {
        present: headers.keys().cloned().collect(),
        crit,
        signing_scheme: SigningScheme::parse(scheme)?,
        signing_time: time(SIGNING_TIME)?,
        authentic_signing_time: time(AUTHENTIC_SIGNING_TIME)?,
        expiry: time(EXPIRY)?,
    };
    protected_headers.check()?;

    let mut signed_bytes =
        Vec::with_capacity(envelope.protected.len() + envelope.payload.len() + 1);
    signed_bytes.extend_from_slice(envelope.protected.as_bytes());
    signed_bytes.push(b'.');
    signed_bytes.extend_from_slice(envelope.payload.as_bytes());
    Ok(SignerInfo {
        format: EnvelopeFormat::Jws,
        algorithm,
        signing_scheme: protected_headers.signing_scheme,
        signing_time: protected_headers.signing_time,
        authentic_signing_time: protected_headers.authentic_signing_time,
        expiry: protected_headers.expiry,
        payload,
        signed_bytes,
        signature,
        chain,
        timestamp_token,
        signing_agent: envelope.header.signing_agent,
    })
}
