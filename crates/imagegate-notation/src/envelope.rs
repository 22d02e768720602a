//! What both envelope formats carry, once decoded (the Notary "signer info"), and the
//! protected-header rules they share.

use crate::crypto::SignatureAlgorithm;
use crate::error::{NotationError, Result};
use crate::limits;

/// JWS envelope media type.
pub const JWS_MEDIA_TYPE: &str = "application/jose+json";
/// COSE envelope media type.
pub const COSE_MEDIA_TYPE: &str = "application/cose";

/// Header names of the Notary Project.
pub(crate) const SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
pub(crate) const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
pub(crate) const AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
pub(crate) const EXPIRY: &str = "io.cncf.notary.expiry";
pub(crate) const SIGNING_AGENT: &str = "io.cncf.notary.signingAgent";
pub(crate) const TIMESTAMP_SIGNATURE: &str = "io.cncf.notary.timestampSignature";
pub(crate) const VERIFICATION_PLUGIN: &str = "io.cncf.notary.verificationPlugin";

/// The envelope format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeFormat {
    /// JWS JSON serialization (`application/jose+json`).
    Jws,
    /// COSE_Sign1 (`application/cose`).
    Cose,
}

impl EnvelopeFormat {
    /// From the signature manifest's layer media type.
    pub fn from_media_type(media_type: &str) -> Result<Self> {
        match media_type {
            JWS_MEDIA_TYPE => Ok(Self::Jws),
            COSE_MEDIA_TYPE => Ok(Self::Cose),
            other => Err(NotationError::UnsupportedEnvelopeType(other.to_string())),
        }
    }

    /// `JWS` or `COSE`, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Jws => "JWS",
            Self::Cose => "COSE",
        }
    }
}

/// The Notary signing schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningScheme {
    /// `notary.x509`: signing time is claimed; trust comes from `ca` stores (and TSA).
    X509,
    /// `notary.x509.signingAuthority`: a signing authority vouches for the signing time.
    X509SigningAuthority,
}

impl SigningScheme {
    pub(crate) fn parse(text: &str) -> Result<Self> {
        match text {
            "notary.x509" => Ok(Self::X509),
            "notary.x509.signingAuthority" => Ok(Self::X509SigningAuthority),
            other => Err(NotationError::UnsupportedSigningScheme(other.to_string())),
        }
    }

    /// The scheme's name in headers.
    pub fn name(self) -> &'static str {
        match self {
            Self::X509 => "notary.x509",
            Self::X509SigningAuthority => "notary.x509.signingAuthority",
        }
    }
}

/// A decoded envelope whose signature is not yet verified.
#[derive(Debug, Clone)]
pub(crate) struct SignerInfo {
    pub format: EnvelopeFormat,
    pub algorithm: SignatureAlgorithm,
    pub signing_scheme: SigningScheme,
    pub signing_time: Option<i64>,
    pub authentic_signing_time: Option<i64>,
    pub expiry: Option<i64>,
    pub payload: Vec<u8>,
    /// The exact bytes the signature covers.
    pub signed_bytes: Vec<u8>,
    pub signature: Vec<u8>,
    /// DER certificates, leaf first.
    pub chain: Vec<Vec<u8>>,
    pub timestamp_token: Option<Vec<u8>>,
    pub signing_agent: Option<String>,
}

/// The protected-header rules shared by JWS and COSE once their headers are read.
pub(crate) struct ProtectedHeaders {
    pub present: Vec<String>,
    pub crit: Vec<String>,
    pub signing_scheme: SigningScheme,
    pub signing_time: Option<i64>,
    pub authentic_signing_time: Option<i64>,
    pub expiry: Option<i64>,
}

impl ProtectedHeaders {
    /// `crit` must list the signing scheme, the expiry when present and the authentic
    /// signing time when present; every listed header must be one this verifier
    /// understands and must be present; the scheme decides which signing time is required.
    pub fn check(&self) -> Result<()> {
        // A signature that names a verification plugin needs that plugin to be trusted;
        // notation fails it without one, and this verifier runs no plugins.
        if self.present.iter().any(|name| name == VERIFICATION_PLUGIN) {
            return Err(NotationError::VerificationPluginRequired);
        }
        if self.crit.len() > limits::MAX_CRITICAL_HEADERS {
            return Err(NotationError::TooMany {
                what: "critical headers",
                count: self.crit.len(),
                limit: limits::MAX_CRITICAL_HEADERS,
            });
        }
        for name in &self.crit {
            if ![SIGNING_SCHEME, EXPIRY, AUTHENTIC_SIGNING_TIME].contains(&name.as_str()) {
                return Err(NotationError::UnknownCriticalHeader(name.clone()));
            }
            if !self.present.contains(name) {
                return Err(NotationError::CriticalHeaderMismatch(name.clone()));
            }
        }
        let must_be_critical = [
            (SIGNING_SCHEME, true),
            (EXPIRY, self.expiry.is_some()),
            (
                AUTHENTIC_SIGNING_TIME,
                self.authentic_signing_time.is_some(),
            ),
        ];
        for (name, required) in must_be_critical {
            if required && !self.crit.iter().any(|c| c == name) {
                return Err(NotationError::CriticalHeaderMismatch(name.to_string()));
            }
        }
        let missing = |name: &str| NotationError::BadProtectedHeader {
            name: name.to_string(),
            reason: format!("required by {}", self.signing_scheme.name()),
        };
        match self.signing_scheme {
            SigningScheme::X509 if self.signing_time.is_none() => Err(missing(SIGNING_TIME)),
            SigningScheme::X509SigningAuthority if self.authentic_signing_time.is_none() => {
                Err(missing(AUTHENTIC_SIGNING_TIME))
            }
            _ => Ok(()),
        }
    }
}
