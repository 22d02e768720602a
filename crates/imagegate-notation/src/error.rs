//! Why a Notation signature was not accepted, and which Notary Project check said so.

use thiserror::Error;

/// The Notary Project verification a failure belongs to (the names notation and Kyverno
/// report: `integrity`, `authenticity`, `authenticTimestamp`, `expiry`), plus the
/// verifier's own input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// The envelope is well-formed, its signature verifies with the leaf key, the chain is
    /// a well-formed code-signing chain, and it signs the artifact being verified.
    Integrity,
    /// The chain contains a trusted certificate.
    Authenticity,
    /// The chain was valid when the signature was made (now, or the timestamp's time).
    AuthenticTimestamp,
    /// The signature's own expiry has not passed.
    Expiry,
    /// The trusted certificates given to the verifier are unusable.
    TrustInput,
}

impl Check {
    /// The Notary Project name of the check.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Integrity => "integrity",
            Check::Authenticity => "authenticity",
            Check::AuthenticTimestamp => "authenticTimestamp",
            Check::Expiry => "expiry",
            Check::TrustInput => "trustInput",
        }
    }
}

/// Why a Notation signature envelope was rejected.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum NotationError {
    /// The envelope is larger than the verifier reads.
    #[error("signature envelope is {size} bytes, more than the limit of {limit}")]
    EnvelopeTooLarge {
        /// Envelope size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// The envelope media type is neither JWS nor COSE.
    #[error("unsupported signature envelope media type {0:?}")]
    UnsupportedEnvelopeType(String),
    /// The envelope could not be decoded.
    #[error("malformed {format} signature envelope: {reason}")]
    MalformedEnvelope {
        /// `JWS` or `COSE`.
        format: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A count in the envelope (headers, crit entries, certificates) is over its limit.
    #[error("signature envelope has {count} {what}, more than the limit of {limit}")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// How many there were.
        count: usize,
        /// Limit.
        limit: usize,
    },
    /// A protected header the Notary Project requires is absent or has the wrong type.
    #[error("protected header {name:?} is missing or malformed: {reason}")]
    BadProtectedHeader {
        /// Header name.
        name: String,
        /// What was wrong.
        reason: String,
    },
    /// `crit` names a header this verifier does not understand.
    #[error("critical header {0:?} is not supported")]
    UnknownCriticalHeader(String),
    /// A header that must be marked critical is not listed in `crit`, or a `crit` entry is absent.
    #[error("header {0:?} must be listed in crit and present in the protected headers")]
    CriticalHeaderMismatch(String),
    /// The signature requires a verification plugin (`io.cncf.notary.verificationPlugin`).
    #[error("the signature requires a Notation verification plugin, which imagegate does not run")]
    VerificationPluginRequired,
    /// The signature algorithm is not one the Notary Project allows.
    #[error("unsupported signature algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// The signing scheme is neither `notary.x509` nor `notary.x509.signingAuthority`.
    #[error("unsupported signing scheme {0:?}")]
    UnsupportedSigningScheme(String),
    /// The payload content type is not the Notary payload.
    #[error("unsupported payload content type {0:?}")]
    UnsupportedContentType(String),
    /// The payload is not a Notary payload.
    #[error("malformed signature payload: {0}")]
    MalformedPayload(String),
    /// The signature does not verify with the leaf certificate's key.
    #[error("signature is not valid for the signing certificate \"{signer}\"")]
    InvalidSignature {
        /// Leaf subject.
        signer: String,
    },
    /// The header's algorithm does not match the leaf key (Notary key spec table).
    #[error("signature algorithm {header} does not match the signing key ({key})")]
    AlgorithmKeyMismatch {
        /// Algorithm of the header.
        header: String,
        /// Key of the leaf certificate.
        key: String,
    },
    /// The signed descriptor is not the one of the artifact being verified.
    #[error("the signature is for {signed}, not for the verified artifact {expected}")]
    TargetMismatch {
        /// Descriptor the signature covers.
        signed: String,
        /// Descriptor of the verified artifact.
        expected: String,
    },
    /// The envelope carries no certificate.
    #[error("signature envelope has no certificate chain")]
    EmptyChain,
    /// A certificate of the chain (or a timestamp token) could not be parsed.
    #[error("certificate {index} of the {what} is malformed: {reason}")]
    MalformedCertificate {
        /// Which chain.
        what: &'static str,
        /// Position in the chain.
        index: usize,
        /// What was wrong.
        reason: String,
    },
    /// The chain is not a valid code-signing chain (order, signatures, CA flags, usages).
    #[error("invalid certificate chain: {0}")]
    InvalidChain(String),
    /// No certificate of the chain is trusted.
    #[error("the signature's certificate chain does not contain any trusted certificate")]
    UntrustedChain,
    /// `notary.x509.signingAuthority` signatures need signing-authority trust, which is empty.
    #[error(
        "no trusted signing-authority certificates are configured to verify a notary.x509.signingAuthority signature"
    )]
    NoSigningAuthorityTrust,
    /// A chain certificate is not valid at the verification time.
    #[error("certificate \"{subject}\" is not valid at {time} (valid {not_before} to {not_after})")]
    CertificateNotValid {
        /// Subject of the certificate.
        subject: String,
        /// Verification time (RFC 3339).
        time: String,
        /// Start of validity (RFC 3339).
        not_before: String,
        /// End of validity (RFC 3339).
        not_after: String,
    },
    /// Timestamp trust is configured but the signature has no timestamp countersignature.
    #[error("no timestamp countersignature was found in the signature envelope")]
    MissingTimestamp,
    /// The RFC 3161 timestamp countersignature is not valid.
    #[error("invalid timestamp countersignature: {0}")]
    InvalidTimestamp(String),
    /// The timestamp's TSA does not chain to a trusted TSA certificate.
    #[error("the timestamp countersignature is not issued by a trusted TSA: {0}")]
    UntrustedTimestamp(String),
    /// The timestamp does not lie inside a chain certificate's validity.
    #[error(
        "timestamp range [{earliest}, {latest}] is not inside the validity of certificate \"{subject}\" ({not_before} to {not_after})"
    )]
    TimestampOutsideValidity {
        /// Subject of the certificate.
        subject: String,
        /// Earliest time of the timestamp (RFC 3339).
        earliest: String,
        /// Latest time of the timestamp (RFC 3339).
        latest: String,
        /// Start of validity (RFC 3339).
        not_before: String,
        /// End of validity (RFC 3339).
        not_after: String,
    },
    /// The signature's expiry has passed.
    #[error("digital signature has expired on {0}")]
    Expired(String),
    /// A trusted certificate given to the verifier is unusable.
    #[error("trusted certificate input {index} is unusable: {reason}")]
    BadTrustedCertificate {
        /// Index among the inputs.
        index: usize,
        /// What was wrong.
        reason: String,
    },
}

impl NotationError {
    /// The Notary Project check this failure belongs to.
    pub fn check(&self) -> Check {
        use NotationError as E;
        match self {
            E::UntrustedChain | E::NoSigningAuthorityTrust => Check::Authenticity,
            E::CertificateNotValid { .. }
            | E::MissingTimestamp
            | E::InvalidTimestamp(_)
            | E::UntrustedTimestamp(_)
            | E::TimestampOutsideValidity { .. } => Check::AuthenticTimestamp,
            E::Expired(_) => Check::Expiry,
            E::BadTrustedCertificate { .. } => Check::TrustInput,
            _ => Check::Integrity,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = NotationError> = std::result::Result<T, E>;
