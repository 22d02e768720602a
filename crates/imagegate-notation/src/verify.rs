//! The verification of one signature envelope for one artifact, in the Notary Project's
//! order: integrity, authenticity, authentic timestamp, expiry. Revocation is not
//! checked (this crate is offline) and the result says so.

use sha2::Digest as _;

use crate::certificate::{self, Cert};
use crate::crypto::SignatureAlgorithm;
use crate::descriptor::{Descriptor, Payload};
use crate::envelope::{EnvelopeFormat, SignerInfo, SigningScheme};
use crate::error::{NotationError, Result};
use crate::time::rfc3339;
use crate::timestamp::{self, TimestampRange};
use crate::trust::{TrustPolicy, parse_trusted};
use crate::{cose, jws, limits};

/// Whether revocation (OCSP/CRL) of the chain was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// Not checked: the verifier is offline by design.
    NotChecked,
}

/// A signature that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// JWS or COSE.
    pub format: EnvelopeFormat,
    /// The signing scheme.
    pub signing_scheme: SigningScheme,
    /// The envelope's signature algorithm.
    pub algorithm: SignatureAlgorithm,
    /// The signed descriptor (equal in content to the expected one; with the signer's annotations).
    pub target: Descriptor,
    /// Subject of the signing (leaf) certificate, RFC 4514.
    pub signer: String,
    /// `sha256:<hex>` of each chain certificate's DER, leaf first.
    pub chain_sha256: Vec<String>,
    /// Claimed signing time (`notary.x509`), Unix seconds.
    pub signing_time: Option<i64>,
    /// Authentic signing time (`notary.x509.signingAuthority`), Unix seconds.
    pub authentic_signing_time: Option<i64>,
    /// The verified timestamp countersignature's range, when a TSA store required one.
    pub timestamp: Option<TimestampRange>,
    /// The signature's expiry, Unix seconds.
    pub expiry: Option<i64>,
    /// The signing agent the envelope names (unauthenticated).
    pub signing_agent: Option<String>,
    /// Revocation status.
    pub revocation: Revocation,
}

/// Verifies one Notation signature envelope (`media_type` is the signature layer's media
/// type) for the artifact `expected` under `policy`, at `now` (Unix seconds).
pub fn verify_signature(
    envelope: &[u8],
    media_type: &str,
    expected: &Descriptor,
    policy: &TrustPolicy,
    now: i64,
) -> Result<VerifiedSignature> {
    if envelope.len() > limits::MAX_ENVELOPE_SIZE {
        return Err(NotationError::EnvelopeTooLarge {
            size: envelope.len(),
            limit: limits::MAX_ENVELOPE_SIZE,
        });
    }
    let info = match EnvelopeFormat::from_media_type(media_type)? {
        EnvelopeFormat::Jws => jws::decode(envelope)?,
        EnvelopeFormat::Cose => cose::decode(envelope)?,
    };

    // Integrity.
    let chain = certificate::parse_chain(&info.chain)?;
    let leaf = chain.first().ok_or(NotationError::EmptyChain)?;
    if SignatureAlgorithm::for_key(leaf.key.kind) != Some(info.algorithm) {
        return Err(NotationError::AlgorithmKeyMismatch {
            header: info.algorithm.to_string(),
            key: leaf.key.kind.to_string(),
        });
    }
    if !info
        .algorithm
        .verify(&leaf.key, &info.signed_bytes, &info.signature)
    {
        return Err(NotationError::InvalidSignature {
            signer: leaf.subject(),
        });
    }
    certificate::validate_code_signing_chain(&chain)?;
    let payload = Payload::from_json(&info.payload)?;
    if !payload.target_artifact.same_content(expected) {
        return Err(NotationError::TargetMismatch {
            signed: payload.target_artifact.to_string(),
            expected: expected.to_string(),
        });
    }

    // Authenticity.
    let store = match info.signing_scheme {
        SigningScheme::X509 => &policy.ca,
        SigningScheme::X509SigningAuthority if policy.signing_authority.is_empty() => {
            return Err(NotationError::NoSigningAuthorityTrust);
        }
        SigningScheme::X509SigningAuthority => &policy.signing_authority,
    };
    let trusted = parse_trusted(store)?;
    if !chain.iter().any(|c| trusted.iter().any(|t| t.der == c.der)) {
        return Err(NotationError::UntrustedChain);
    }

    // Authentic timestamp.
    let timestamp = authentic_timestamp(&info, &chain, policy, now)?;

    // Expiry.
    if let Some(expiry) = info.expiry
        && now > expiry
    {
        return Err(NotationError::Expired(rfc3339(expiry)));
    }

    Ok(VerifiedSignature {
        format: info.format,
        signing_scheme: info.signing_scheme,
        algorithm: info.algorithm,
        target: payload.target_artifact,
        signer: leaf.subject(),
        chain_sha256: chain
            .iter()
            .map(|c| format!("sha256:{}", hex::encode(sha2::Sha256::digest(&c.der))))
            .collect(),
        signing_time: info.signing_time,
        authentic_signing_time: info.authentic_signing_time,
        timestamp,
        expiry: info.expiry,
        signing_agent: info.signing_agent,
        revocation: Revocation::NotChecked,
    })
}

/// The chain must have been valid when the signature was made: at the authentic signing
/// time (signing authority), at the verified timestamp (when a TSA store is configured,
/// which then requires a timestamp), or else now.
fn authentic_timestamp(
    info: &SignerInfo,
    chain: &[Cert],
    policy: &TrustPolicy,
    now: i64,
) -> Result<Option<TimestampRange>> {
    let valid_at = |time: i64| match chain.iter().find(|c| !c.valid_at(time)) {
        Some(cert) => Err(cert.not_valid_error(time)),
        None => Ok(None),
    };
    if info.signing_scheme == SigningScheme::X509SigningAuthority {
        let time = info
            .authentic_signing_time
            .ok_or(NotationError::MissingTimestamp)?;
        return valid_at(time);
    }
    if policy.tsa.is_empty() {
        return valid_at(now);
    }
    let token = info
        .timestamp_token
        .as_ref()
        .ok_or(NotationError::MissingTimestamp)?;
    let tsa = parse_trusted(&policy.tsa)?;
    let range = timestamp::verify(token, &info.signature, &tsa)?;
    for cert in chain {
        if range.earliest < cert.not_before || range.latest > cert.not_after {
            return Err(NotationError::TimestampOutsideValidity {
                subject: cert.subject(),
                earliest: rfc3339(range.earliest),
                latest: rfc3339(range.latest),
                not_before: rfc3339(cert.not_before),
                not_after: rfc3339(cert.not_after),
            });
        }
    }
    Ok(Some(range))
}
