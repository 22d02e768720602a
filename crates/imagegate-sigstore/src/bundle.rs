//! Sigstore bundles (`application/vnd.dev.sigstore.bundle[.v0.3]+json`, v0.1 to v0.3):
//! message signatures and DSSE envelopes, keyless (Fulcio certificate) or signed with a
//! managed key, as cosign v3 writes them.
//!
//! The cryptography (certificate chain at the signing time, SCT, Rekor v1/v2 inclusion
//! proofs, checkpoints and promises, RFC 3161 timestamps, log-entry consistency) is
//! sigstore-verify's, which passes all 140 sigstore-conformance runs. This module adds
//! what imagegate needs around it: our own types (the engine never sees sigstore-verify
//! types), cosign's identity semantics (any SAN, unanchored regexes, GitHub workflow
//! extensions; see [`crate::identity`]), our [`PublicKey`] for managed keys, and the
//! parsed in-toto statement of DSSE bundles.
//!
//! Everything is offline: the evidence must be in the bundle.

use sigstore_verify::types::{self, Bundle, Sha256Hash, SignatureContent};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy, VerificationResult};
use thiserror::Error;

use crate::dsse::{self, Attestation, AttestationError};
use crate::identity::{IdentityError, IdentityRequirement, SignerIdentity};
use crate::keys::PublicKey;
use crate::trust::TrustedRoot;

/// Largest bundle accepted (16 MiB: DSSE bundles carry whole SBOM predicates).
pub const MAX_BUNDLE_SIZE: usize = 16 * 1024 * 1024;

/// What was signed: the artifact's bytes, or its SHA-256 digest (an OCI manifest digest).
///
/// A digest is enough for every ECDSA/RSA bundle and for every DSSE bundle (the
/// statement names the digest); Ed25519 message signatures need the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact<'a> {
    /// The artifact itself.
    Bytes(&'a [u8]),
    /// Its SHA-256 digest.
    Sha256Digest([u8; 32]),
}

impl Artifact<'static> {
    /// Parses `sha256:<64 hex digits>` (hex in either case).
    pub fn from_digest(digest: &str) -> Result<Artifact<'static>, BundleError> {
        let malformed = || BundleError::MalformedDigest {
            digest: digest.to_owned(),
        };
        let hex = digest.strip_prefix("sha256:").ok_or_else(malformed)?;
        let mut bytes = [0u8; 32];
        if hex.len() != 64 {
            return Err(malformed());
        }
        hex::decode_to_slice(hex, &mut bytes).map_err(|_| malformed())?;
        Ok(Artifact::Sha256Digest(bytes))
    }
}

/// Who must have signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleRequirement {
    /// A Fulcio certificate chaining to the trusted root, for this identity.
    Identity(IdentityRequirement),
    /// This managed key (the bundle carries a public key hint, not a certificate).
    Key(PublicKey),
}

/// Checks that may be relaxed (Kyverno `rekor.ignoreTlog`, `ctlog.ignoreSCT`).
/// The default checks everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Do not require transparency-log inclusion (proof, checkpoint, promise). Log
    /// entries present are still checked for consistency with the bundle, and RFC 3161
    /// timestamps still verify. Needed for private deployments without Rekor.
    pub ignore_tlog: bool,
    /// Do not verify the certificate's embedded SCT (keyless only).
    pub ignore_sct: bool,
}

/// Who signed a verified bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// A Fulcio certificate for this identity.
    Certificate(Box<SignerIdentity>),
    /// The managed key with this fingerprint ([`PublicKey::fingerprint`]).
    Key {
        /// The key's fingerprint.
        fingerprint: String,
    },
}

/// A bundle that verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedBundle {
    /// The bundle's media type (its version).
    pub media_type: String,
    /// Who signed.
    pub signer: Signer,
    /// The earliest authenticated Rekor v1 `integratedTime` (Unix seconds), if the log
    /// entry was verified.
    pub integrated_time: Option<i64>,
    /// Every authenticated signing time used (Rekor v1 integrated times, RFC 3161
    /// timestamps), Unix seconds.
    pub timestamps: Vec<i64>,
    /// Whether transparency-log inclusion was verified (false only with
    /// [`VerifyOptions::ignore_tlog`]).
    pub tlog_verified: bool,
    /// The in-toto statement of a DSSE bundle (`None` for message signatures).
    pub statement: Option<Attestation>,
}

/// Why a bundle was not accepted. Variants follow the cause; texts carry sigstore-verify's
/// detail.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BundleError {
    /// The bundle is larger than [`MAX_BUNDLE_SIZE`].
    #[error("Sigstore bundle is too large: {size} bytes (limit {limit} bytes)")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes are not a Sigstore bundle (JSON, fields, encodings, media type).
    #[error("malformed Sigstore bundle: {0}")]
    MalformedBundle(String),
    /// An artifact digest is not `sha256:<64 hex digits>`.
    #[error("malformed artifact digest {digest:?}: expected sha256:<64 hex digits>")]
    MalformedDigest {
        /// The text given.
        digest: String,
    },
    /// The bundle parses but is inconsistent or incomplete (no certificate, empty
    /// chain, a key bundle verified as keyless or the reverse, ...).
    #[error("invalid Sigstore bundle: {0}")]
    InvalidBundle(String),
    /// The bundle uses content, keys or log entry kinds that cannot be verified.
    #[error("unsupported Sigstore bundle: {0}")]
    UnsupportedBundle(String),
    /// The artifact form cannot be used (e.g. a digest for an Ed25519 message signature).
    #[error("unsupported artifact input: {0}")]
    UnsupportedArtifact(String),
    /// The signature does not verify.
    #[error("invalid signature: {0}")]
    InvalidSignature(String),
    /// The bundle is not about this artifact (message digest or statement subjects).
    #[error("artifact mismatch: {0}")]
    ArtifactMismatch(String),
    /// The signing certificate does not chain to a trusted Fulcio CA at the signing
    /// time, is expired, lacks code signing, or its SCT is invalid.
    #[error("untrusted signing certificate: {0}")]
    UntrustedCertificate(String),
    /// The transparency-log evidence is missing, invalid or from an unknown log.
    #[error("transparency log: {0}")]
    TransparencyLog(String),
    /// An RFC 3161 timestamp is invalid or untrusted, or no trusted signing time exists.
    #[error("timestamp: {0}")]
    Timestamp(String),
    /// The trusted root cannot verify anything.
    #[error("unusable trusted root: {0}")]
    UnusableTrustedRoot(String),
    /// The signer is not the required identity.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The DSSE payload is not an in-toto statement imagegate can read.
    #[error("DSSE payload: {0}")]
    MalformedStatement(AttestationError),
    /// Another verification failure (key or signature encodings).
    #[error("verification failed: {0}")]
    Rejected(String),
}

impl From<sigstore_verify::Error> for BundleError {
    fn from(error: sigstore_verify::Error) -> BundleError {
        use sigstore_verify::Error as E;
        let detail = |e: &dyn std::fmt::Display| e.to_string();
        match &error {
            E::SignatureInvalid(d) => BundleError::InvalidSignature(d.clone()),
            E::ArtifactMismatch(d) => BundleError::ArtifactMismatch(d.clone()),
            E::UnsupportedArtifact(d) => BundleError::UnsupportedArtifact(d.clone()),
            E::Certificate(e) => BundleError::UntrustedCertificate(detail(e)),
            E::TransparencyLog(e) => BundleError::TransparencyLog(detail(e)),
            E::Timestamp(e) => BundleError::Timestamp(detail(e)),
            E::InvalidBundle(d) => BundleError::InvalidBundle(d.clone()),
            E::Bundle(e) => BundleError::InvalidBundle(detail(e)),
            E::Types(e) => BundleError::InvalidBundle(detail(e)),
            E::UnsupportedBundle(d) => BundleError::UnsupportedBundle(d.clone()),
            E::InvalidTrustRoot(d) => BundleError::UnusableTrustedRoot(d.clone()),
            E::TrustRoot(e) => BundleError::UnusableTrustedRoot(detail(e)),
            E::TrustedCertificate(e) => BundleError::UnusableTrustedRoot(detail(e)),
            // Identity and issuer are matched here (any-identity policy), so sigstore-verify's
            // mismatch variants do not occur; keep their text if they ever do.
            _ => BundleError::Rejected(error.to_string()),
        }
    }
}

/// Verifies a Sigstore bundle for `artifact` against `trust`, signed as `requirement`
/// says, with every check on ([`VerifyOptions::default`]).
pub fn verify_bundle(
    bundle_json: &[u8],
    artifact: Artifact<'_>,
    trust: &TrustedRoot,
    requirement: &BundleRequirement,
) -> Result<VerifiedBundle, BundleError> {
    verify_bundle_with(
        bundle_json,
        artifact,
        trust,
        requirement,
        &VerifyOptions::default(),
    )
}

/// Like [`verify_bundle`], with relaxed checks as `options` says.
pub fn verify_bundle_with(
    bundle_json: &[u8],
    artifact: Artifact<'_>,
    trust: &TrustedRoot,
    requirement: &BundleRequirement,
    options: &VerifyOptions,
) -> Result<VerifiedBundle, BundleError> {
    let bundle = parse_bundle(bundle_json)?;
    let input: types::Artifact<'_> = match artifact {
        Artifact::Bytes(bytes) => bytes.into(),
        Artifact::Sha256Digest(digest) => Sha256Hash::new(digest).into(),
    };
    let verifier = trust.verifier();
    let (result, signer) = match requirement {
        BundleRequirement::Identity(wanted) => {
            let mut policy = VerificationPolicy::any_identity();
            if options.ignore_tlog {
                policy = policy.skip_tlog_unsafe();
            }
            if options.ignore_sct {
                policy = policy.skip_sct();
            }
            let result = verifier.verify(input, &bundle, &policy)?;
            let identity = signer_identity(&bundle, &result)?;
            wanted.check(&identity)?;
            (result, Signer::Certificate(Box::new(identity)))
        }
        BundleRequirement::Key(key) => {
            let mut policy =
                PublicKeyVerificationPolicy::new(types::DerPublicKey::new(key.spki_der().to_vec()));
            if options.ignore_tlog {
                policy = policy.skip_tlog_unsafe();
            }
            let result = verifier.verify(input, &bundle, &policy)?;
            (
                result,
                Signer::Key {
                    fingerprint: key.fingerprint(),
                },
            )
        }
    };
    let statement = match &bundle.content {
        SignatureContent::DsseEnvelope(envelope) => Some(
            dsse::parse_statement(&envelope.payload_type, envelope.payload.as_bytes())
                .map_err(BundleError::MalformedStatement)?,
        ),
        _ => None,
    };
    Ok(VerifiedBundle {
        media_type: bundle.media_type.as_str().to_owned(),
        signer,
        integrated_time: result.integrated_time().map(|t| t.as_second()),
        timestamps: result
            .verified_timestamps()
            .iter()
            .map(|t| t.as_second())
            .collect(),
        tlog_verified: result.tlog_verified(),
        statement,
    })
}

fn parse_bundle(bundle_json: &[u8]) -> Result<Bundle, BundleError> {
    if bundle_json.len() > MAX_BUNDLE_SIZE {
        return Err(BundleError::TooLarge {
            size: bundle_json.len(),
            limit: MAX_BUNDLE_SIZE,
        });
    }
    let text = std::str::from_utf8(bundle_json)
        .map_err(|e| BundleError::MalformedBundle(format!("not UTF-8: {e}")))?;
    Bundle::from_json(text).map_err(|e| BundleError::MalformedBundle(e.to_string()))
}

/// The identity of the verified signing certificate.
fn signer_identity(
    bundle: &Bundle,
    result: &VerificationResult,
) -> Result<SignerIdentity, BundleError> {
    let missing = || BundleError::InvalidBundle("bundle has no signing certificate".into());
    let certificate = bundle.signing_certificate().ok_or_else(missing)?;
    let info = result.certificate().ok_or_else(missing)?;
    Ok(SignerIdentity::from_parts(certificate.as_bytes(), info)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_digests() {
        let hex = "a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf";
        let Artifact::Sha256Digest(bytes) =
            Artifact::from_digest(&format!("sha256:{hex}")).unwrap()
        else {
            panic!("not a digest");
        };
        assert_eq!(hex::encode(bytes), hex);
        Artifact::from_digest(&format!("sha256:{}", hex.to_uppercase())).unwrap();
        for bad in [
            hex.to_owned(),
            format!("sha512:{hex}"),
            format!("sha256:{}", &hex[1..]),
            format!("sha256:{hex}00"),
            format!("sha256:{}g", &hex[1..]),
            "sha256:".to_owned(),
        ] {
            assert!(
                matches!(
                    Artifact::from_digest(&bad),
                    Err(BundleError::MalformedDigest { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn malformed_bundles() {
        let root = TrustedRoot::public_good().unwrap();
        let requirement = BundleRequirement::Identity(IdentityRequirement::exact("a", "b"));
        let check = |json: &[u8]| verify_bundle(json, Artifact::Bytes(b"x"), &root, &requirement);
        assert!(matches!(check(b"{"), Err(BundleError::MalformedBundle(_))));
        assert!(matches!(
            check(&[0xff]),
            Err(BundleError::MalformedBundle(_))
        ));
        assert!(matches!(check(b"{}"), Err(BundleError::MalformedBundle(_))));
        let huge = vec![b' '; MAX_BUNDLE_SIZE + 1];
        assert!(matches!(check(&huge), Err(BundleError::TooLarge { .. })));
    }
}
