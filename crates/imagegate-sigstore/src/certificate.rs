//! X.509 signing certificates (Fulcio leaves of keyless cosign signatures): chain
//! validation to a pool of trusted roots at a given time, code-signing usage checks and
//! identity extraction (SAN, OIDC issuer extension).
//!
//! Scope: the chain is built from the leaf through the given intermediates to a trusted
//! root by issuer/subject name and signature, with backtracking, at most
//! [`MAX_CHAIN_DEPTH`] certificates. Every certificate must be valid at the given time
//! (the Rekor `integratedTime` for cosign). Intermediates must be CAs (BasicConstraints
//! `cA`, KeyUsage `keyCertSign` when present). Unknown critical extensions are refused.
//! Not checked: path length and name constraints, policies, revocation (Fulcio
//! certificates live minutes; Sigstore has no revocation).

use std::fmt;
use std::time::Duration;

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use spki::ObjectIdentifier;
use spki::der::asn1::Utf8StringRef;
use spki::der::{Decode as _, Encode as _, Reader as _, SliceReader};
use thiserror::Error;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName};

use crate::keys::{self, KeyAlgorithm, KeyError, PublicKey};
use crate::pem;

/// Longest chain accepted, leaf and root included.
pub const MAX_CHAIN_DEPTH: usize = 6;
/// Most chain certificates accepted besides the leaf: real chains have one or two; many
/// certificates sharing a name make the path search combinatorial (issue 8 item 7).
pub const MAX_INTERMEDIATES: usize = 10;
/// Most signature checks spent searching for a path, whatever the chain: a bound on
/// the CPU one signature can cost.
pub const MAX_SIGNATURE_CHECKS: usize = 32;

/// Fulcio OIDC issuer extension, v1 (raw string value, deprecated).
pub const OID_FULCIO_ISSUER_V1: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
/// Fulcio OIDC issuer extension, v2 (DER UTF8String value).
pub const OID_FULCIO_ISSUER_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
/// id-kp-codeSigning.
const OID_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");

const OID_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const OID_SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const OID_BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const OID_NAME_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.30");
const OID_EXTENDED_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
/// Critical extensions this module understands (name constraints: only Sigstore roots
/// carry none; accepted as documented above).
const KNOWN_CRITICAL: &[ObjectIdentifier] = &[
    OID_KEY_USAGE,
    OID_SUBJECT_ALT_NAME,
    OID_BASIC_CONSTRAINTS,
    OID_EXTENDED_KEY_USAGE,
    OID_NAME_CONSTRAINTS,
];

const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const OID_ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const OID_RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const OID_RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const OID_RSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// A leaf certificate that chains to a trusted root and may sign code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCertificate {
    /// The leaf's public key (verifies the signature).
    pub public_key: PublicKey,
    /// Subject alternative names: emails, URIs, DNS names and Fulcio usernames.
    pub san: Vec<String>,
    /// The Fulcio OIDC issuer extension (v2, else v1), if present.
    pub issuer_extension: Option<String>,
    /// Start of validity (Unix seconds).
    pub not_before: u64,
    /// End of validity (Unix seconds).
    pub not_after: u64,
    /// The leaf's DER.
    pub der: Vec<u8>,
    /// The SubjectPublicKeyInfo DER of the certificate that issued the leaf in the
    /// verified chain (an intermediate, or the trusted root itself): the issuer key hash
    /// of embedded SCTs.
    pub issuer_spki_der: Vec<u8>,
}

/// Why a certificate was not accepted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CertificateError {
    /// A PEM input is larger than [`keys::MAX_PEM_SIZE`].
    #[error("{what} PEM is too large: {size} bytes (limit {limit} bytes)")]
    PemTooLarge {
        /// Which input.
        what: &'static str,
        /// Input size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The PEM structure or its base64 is broken.
    #[error("malformed {what} PEM: {reason}")]
    MalformedPem {
        /// Which input.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A PEM block is not a certificate.
    #[error("{what} PEM block {index} is a \"{label}\", expected \"CERTIFICATE\"")]
    NotACertificate {
        /// Which input.
        what: &'static str,
        /// Block index.
        index: usize,
        /// Its label.
        label: String,
    },
    /// A required PEM input holds no certificate.
    #[error("no certificate found in the {what} PEM")]
    NoCertificate {
        /// Which input.
        what: &'static str,
    },
    /// A certificate's DER could not be parsed.
    #[error("malformed certificate ({what}): {reason}")]
    MalformedCertificate {
        /// Which certificate.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// A certificate is not valid at the time of verification.
    #[error(
        "certificate \"{subject}\" is not valid at {at} (valid from {not_before} to {not_after}, Unix seconds)"
    )]
    NotValidAt {
        /// Subject DN.
        subject: String,
        /// Time of verification.
        at: i64,
        /// Start of validity.
        not_before: u64,
        /// End of validity.
        not_after: u64,
    },
    /// The leaf lacks KeyUsage digitalSignature.
    #[error("signing certificate lacks KeyUsage digitalSignature")]
    MissingDigitalSignature,
    /// The leaf lacks ExtendedKeyUsage codeSigning.
    #[error("signing certificate lacks ExtendedKeyUsage codeSigning")]
    MissingCodeSigning,
    /// The leaf has no subject alternative name.
    #[error("signing certificate has no subject alternative name")]
    MissingSan,
    /// A certificate carries a critical extension this module does not understand.
    #[error("certificate \"{subject}\" has an unsupported critical extension {oid}")]
    UnknownCriticalExtension {
        /// Subject DN.
        subject: String,
        /// Extension OID.
        oid: String,
    },
    /// A certificate's public key is not usable.
    #[error("certificate \"{subject}\" has an unusable public key: {source}")]
    Key {
        /// Subject DN.
        subject: String,
        /// Why.
        source: KeyError,
    },
    /// No path from the leaf to a trusted root.
    #[error("certificate chain does not lead to a trusted root: {reason}")]
    UntrustedChain {
        /// Why the last step failed.
        reason: String,
    },
}

/// A parsed certificate plus what verification needs from its DER.
struct Parsed {
    der: Vec<u8>,
    tbs: Vec<u8>,
    cert: Certificate,
}

impl Parsed {
    fn from_der(der: Vec<u8>, what: String) -> Result<Parsed, CertificateError> {
        let malformed = |reason: String| CertificateError::MalformedCertificate {
            what: what.clone(),
            reason,
        };
        let cert = Certificate::from_der(&der).map_err(|e| malformed(e.to_string()))?;
        // The signed bytes exactly as they appear (no re-encoding).
        let tbs = SliceReader::new(&der)
            .and_then(|mut r| {
                r.sequence(|seq| {
                    let tbs = seq.tlv_bytes()?.to_vec();
                    let _signature_algorithm = seq.tlv_bytes()?;
                    let _signature = seq.tlv_bytes()?;
                    Ok(tbs)
                })
            })
            .map_err(|e| malformed(e.to_string()))?;
        Ok(Parsed { der, tbs, cert })
    }

    fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    fn validity(&self) -> (u64, u64) {
        let v = &self.cert.tbs_certificate.validity;
        (
            secs(v.not_before.to_unix_duration()),
            secs(v.not_after.to_unix_duration()),
        )
    }

    fn check_valid_at(&self, at: i64) -> Result<(), CertificateError> {
        let (not_before, not_after) = self.validity();
        let inside = u64::try_from(at).is_ok_and(|t| (not_before..=not_after).contains(&t));
        if inside {
            Ok(())
        } else {
            Err(CertificateError::NotValidAt {
                subject: self.subject(),
                at,
                not_before,
                not_after,
            })
        }
    }

    fn check_critical_extensions(&self) -> Result<(), CertificateError> {
        for ext in self.cert.tbs_certificate.extensions.iter().flatten() {
            if ext.critical && !KNOWN_CRITICAL.contains(&ext.extn_id) {
                return Err(CertificateError::UnknownCriticalExtension {
                    subject: self.subject(),
                    oid: ext.extn_id.to_string(),
                });
            }
        }
        Ok(())
    }

    fn extension<'a, T: spki::der::Decode<'a> + x509_cert::der::oid::AssociatedOid>(
        &'a self,
    ) -> Result<Option<T>, CertificateError> {
        self.cert
            .tbs_certificate
            .get::<T>()
            .map(|found| found.map(|(_, value)| value))
            .map_err(|e| CertificateError::MalformedCertificate {
                what: self.subject(),
                reason: format!("extension {}: {e}", T::OID),
            })
    }

    fn public_key(&self) -> Result<PublicKey, CertificateError> {
        let key_error = |source: KeyError| CertificateError::Key {
            subject: self.subject(),
            source,
        };
        let spki = self
            .cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| key_error(KeyError::MalformedSpki(e.to_string())))?;
        PublicKey::from_spki_der(&spki).map_err(key_error)
    }

    /// Whether `issuer` is named as this certificate's issuer and signed it.
    fn signed_by(&self, issuer: &Parsed) -> Result<(), String> {
        if self.cert.tbs_certificate.issuer != issuer.cert.tbs_certificate.subject {
            return Err("issuer name differs".into());
        }
        let key = issuer.public_key().map_err(|e| e.to_string())?;
        let oid = self.cert.signature_algorithm.oid;
        let algorithm = x509_signature_algorithm(key.algorithm(), oid).ok_or_else(|| {
            format!(
                "unsupported signature algorithm {oid} for a {} issuer key",
                key.algorithm()
            )
        })?;
        let signature = self
            .cert
            .signature
            .as_bytes()
            .ok_or_else(|| "signature BIT STRING has unused bits".to_owned())?;
        UnparsedPublicKey::new(algorithm, keys::raw_key(&key))
            .verify(&self.tbs, signature)
            .map_err(|_| "signature does not verify".to_owned())
    }

    fn check_ca(&self) -> Result<(), String> {
        let constraints = self
            .extension::<BasicConstraints>()
            .map_err(|e| e.to_string())?;
        if !constraints.is_some_and(|c| c.ca) {
            return Err(format!("\"{}\" is not a CA", self.subject()));
        }
        if let Some(usage) = self.extension::<KeyUsage>().map_err(|e| e.to_string())?
            && !usage.key_cert_sign()
        {
            return Err(format!("\"{}\" may not sign certificates", self.subject()));
        }
        Ok(())
    }
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

/// aws-lc-rs algorithm of an X.509 signature algorithm OID for an issuer key.
fn x509_signature_algorithm(
    key: KeyAlgorithm,
    oid: ObjectIdentifier,
) -> Option<&'static dyn VerificationAlgorithm> {
    use KeyAlgorithm::{EcdsaP256, EcdsaP384, EcdsaP521, Ed25519, Rsa};
    Some(match (key, oid) {
        (EcdsaP256, OID_ECDSA_SHA256) => &signature::ECDSA_P256_SHA256_ASN1,
        (EcdsaP256, OID_ECDSA_SHA384) => &signature::ECDSA_P256_SHA384_ASN1,
        (EcdsaP256, OID_ECDSA_SHA512) => &signature::ECDSA_P256_SHA512_ASN1,
        (EcdsaP384, OID_ECDSA_SHA256) => &signature::ECDSA_P384_SHA256_ASN1,
        (EcdsaP384, OID_ECDSA_SHA384) => &signature::ECDSA_P384_SHA384_ASN1,
        (EcdsaP384, OID_ECDSA_SHA512) => &signature::ECDSA_P384_SHA512_ASN1,
        (EcdsaP521, OID_ECDSA_SHA256) => &signature::ECDSA_P521_SHA256_ASN1,
        (EcdsaP521, OID_ECDSA_SHA384) => &signature::ECDSA_P521_SHA384_ASN1,
        (EcdsaP521, OID_ECDSA_SHA512) => &signature::ECDSA_P521_SHA512_ASN1,
        (Rsa { .. }, OID_RSA_SHA256) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (Rsa { .. }, OID_RSA_SHA384) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (Rsa { .. }, OID_RSA_SHA512) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (Ed25519, OID_ED25519) => &signature::ED25519,
        _ => return None,
    })
}

/// Reads every certificate of a PEM text (`what` names the input in errors).
fn parse_pem_certificates(text: &str, what: &'static str) -> Result<Vec<Parsed>, CertificateError> {
    if text.len() > keys::MAX_PEM_SIZE {
        return Err(CertificateError::PemTooLarge {
            what,
            size: text.len(),
            limit: keys::MAX_PEM_SIZE,
        });
    }
    let blocks = pem::parse_blocks(text).map_err(|e| CertificateError::MalformedPem {
        what,
        reason: e.to_string(),
    })?;
    blocks
        .into_iter()
        .enumerate()
        .map(|(index, block)| {
            if block.label != "CERTIFICATE" {
                return Err(CertificateError::NotACertificate {
                    what,
                    index,
                    label: block.label,
                });
            }
            Parsed::from_der(block.der, format!("{what} PEM block {index}"))
        })
        .collect()
}

/// Verifies a signing certificate.
///
/// `leaf_pem` holds the signing certificate (the certificate annotation; further blocks
/// are treated as intermediates), `intermediates_pem` the chain (the chain annotation
/// minus its root; may be empty), `roots_pem` the trusted roots (at least one), and
/// `at_unix_time` the time at which every certificate must be valid (the Rekor
/// `integratedTime`). The leaf must have KeyUsage digitalSignature, ExtendedKeyUsage
/// codeSigning and a subject alternative name.
pub fn verify_certificate_chain(
    leaf_pem: &str,
    intermediates_pem: &str,
    roots_pem: &str,
    at_unix_time: i64,
) -> Result<VerifiedCertificate, CertificateError> {
    let mut leaves = parse_pem_certificates(leaf_pem, "certificate")?;
    if leaves.is_empty() {
        return Err(CertificateError::NoCertificate {
            what: "certificate",
        });
    }
    let leaf = leaves.remove(0);
    let mut intermediates = parse_pem_certificates(intermediates_pem, "chain")?;
    intermediates.extend(leaves);
    if intermediates.len() > MAX_INTERMEDIATES {
        return Err(CertificateError::UntrustedChain {
            reason: format!(
                "{} chain certificates, more than the {MAX_INTERMEDIATES} accepted",
                intermediates.len()
            ),
        });
    }
    let roots = parse_pem_certificates(roots_pem, "trusted roots")?;
    if roots.is_empty() {
        return Err(CertificateError::NoCertificate {
            what: "trusted roots",
        });
    }

    leaf.check_critical_extensions()?;
    leaf.check_valid_at(at_unix_time)?;
    if !leaf
        .extension::<KeyUsage>()?
        .is_some_and(|u| u.digital_signature())
    {
        return Err(CertificateError::MissingDigitalSignature);
    }
    if !leaf
        .extension::<ExtendedKeyUsage>()?
        .is_some_and(|u| u.0.contains(&OID_CODE_SIGNING))
    {
        return Err(CertificateError::MissingCodeSigning);
    }
    let san = subject_alt_names(&leaf)?;
    if san.is_empty() {
        return Err(CertificateError::MissingSan);
    }
    let public_key = leaf.public_key()?;

    let mut path = vec![&leaf];
    let mut budget = MAX_SIGNATURE_CHECKS;
    let root = build_path(&mut path, &intermediates, &roots, at_unix_time, &mut budget)
        .map_err(|reason| CertificateError::UntrustedChain { reason })?;
    let issuer = path.get(1).copied().unwrap_or(root);
    let issuer_spki_der = issuer
        .cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| CertificateError::MalformedCertificate {
            what: issuer.subject(),
            reason: e.to_string(),
        })?;

    let (not_before, not_after) = leaf.validity();
    Ok(VerifiedCertificate {
        public_key,
        san,
        issuer_extension: issuer_extension(&leaf)?,
        not_before,
        not_after,
        der: leaf.der,
        issuer_spki_der,
    })
}

/// The public key of the first certificate of `pem`, without any chain or usage check
/// (Kyverno `certificates.cert` without `certChain`: the certificate only carries the key).
pub fn certificate_public_key(pem: &str) -> Result<PublicKey, CertificateError> {
    let certificates = parse_pem_certificates(pem, "certificate")?;
    let first = certificates
        .first()
        .ok_or(CertificateError::NoCertificate {
            what: "certificate",
        })?;
    first.public_key()
}

/// Whether the certificate `issuer_der` names and signed `child_der` (both DER).
pub(crate) fn issued_by(child_der: &[u8], issuer_der: &[u8]) -> bool {
    let parse = |der: &[u8]| Parsed::from_der(der.to_vec(), String::new()).ok();
    match (parse(child_der), parse(issuer_der)) {
        (Some(child), Some(issuer)) => child.signed_by(&issuer).is_ok(),
        _ => false,
    }
}

/// Extends `path` (leaf first) to a trusted root, depth first with backtracking;
/// returns the root reached (not pushed onto `path`). Every signature check spends one
/// unit of `budget`; the search gives up when it is spent. Cheap checks (names, CA
/// flag, validity, extensions) come before signatures.
fn build_path<'a>(
    path: &mut Vec<&'a Parsed>,
    intermediates: &'a [Parsed],
    roots: &'a [Parsed],
    at: i64,
    budget: &mut usize,
) -> Result<&'a Parsed, String> {
    let Some(current) = path.last().copied() else {
        return Err("empty path".into());
    };
    let mut last_reason = format!(
        "no trusted root or chain certificate issued \"{}\" (issuer \"{}\")",
        current.subject(),
        current.cert.tbs_certificate.issuer
    );
    for root in roots {
        if current.cert.tbs_certificate.issuer != root.cert.tbs_certificate.subject {
            continue;
        }
        spend(budget)?;
        match root
            .check_valid_at(at)
            .map_err(|e| e.to_string())
            .and_then(|()| current.signed_by(root))
        {
            Ok(()) => return Ok(root),
            Err(reason) => last_reason = format!("trusted root \"{}\": {reason}", root.subject()),
        }
    }
    if path.len() + 1 >= MAX_CHAIN_DEPTH {
        return Err(format!("chain longer than {MAX_CHAIN_DEPTH} certificates"));
    }
    for candidate in intermediates {
        if path.iter().any(|p| p.der == candidate.der)
            || current.cert.tbs_certificate.issuer != candidate.cert.tbs_certificate.subject
        {
            continue;
        }
        let cheap = candidate
            .check_ca()
            .and_then(|()| candidate.check_valid_at(at).map_err(|e| e.to_string()))
            .and_then(|()| {
                candidate
                    .check_critical_extensions()
                    .map_err(|e| e.to_string())
            });
        let step = match cheap {
            Ok(()) => {
                spend(budget)?;
                current.signed_by(candidate)
            }
            Err(reason) => Err(reason),
        };
        match step {
            Ok(()) => {
                path.push(candidate);
                match build_path(path, intermediates, roots, at, budget) {
                    Ok(root) => return Ok(root),
                    Err(reason) => last_reason = reason,
                }
                path.pop();
            }
            Err(reason) => {
                last_reason = format!("chain certificate \"{}\": {reason}", candidate.subject());
            }
        }
    }
    Err(last_reason)
}

/// Spends one signature check of `budget`, or fails when none is left.
fn spend(budget: &mut usize) -> Result<(), String> {
    if *budget == 0 {
        return Err(format!(
            "no path found within {MAX_SIGNATURE_CHECKS} signature checks"
        ));
    }
    *budget -= 1;
    Ok(())
}

fn subject_alt_names(cert: &Parsed) -> Result<Vec<String>, CertificateError> {
    Ok(cert
        .extension::<SubjectAltName>()?
        .map(|SubjectAltName(names)| crate::identity::names_as_strings(&names))
        .unwrap_or_default())
}

fn issuer_extension(cert: &Parsed) -> Result<Option<String>, CertificateError> {
    let extensions = || cert.cert.tbs_certificate.extensions.iter().flatten();
    let malformed = |reason: String| CertificateError::MalformedCertificate {
        what: cert.subject(),
        reason,
    };
    if let Some(ext) = extensions().find(|e| e.extn_id == OID_FULCIO_ISSUER_V2) {
        let value = Utf8StringRef::from_der(ext.extn_value.as_bytes())
            .map_err(|e| malformed(format!("OIDC issuer extension: {e}")))?;
        return Ok(Some(value.as_str().to_owned()));
    }
    if let Some(ext) = extensions().find(|e| e.extn_id == OID_FULCIO_ISSUER_V1) {
        let value = std::str::from_utf8(ext.extn_value.as_bytes())
            .map_err(|_| malformed("OIDC issuer extension (v1) is not UTF-8".into()))?;
        return Ok(Some(value.to_owned()));
    }
    Ok(None)
}

impl fmt::Display for VerifiedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "certificate for {}", self.san.join(", "))?;
        if let Some(issuer) = &self.issuer_extension {
            write!(f, " issued via {issuer}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints as RcgenBasicConstraints, CertificateParams, CertifiedIssuer,
        CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
        date_time_ymd,
    };

    /// 2025-01-01T00:00:00Z.
    const AT: i64 = 1_735_689_600;
    const EMAIL: &str = "dev@example.com";
    const URI: &str = "https://github.com/o/r/.github/workflows/release.yml@refs/heads/main";
    const OIDC_ISSUER: &str = "https://token.actions.githubusercontent.com";

    fn ca_params(name: &str) -> CertificateParams {
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(RcgenBasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.not_before = date_time_ymd(2024, 1, 1);
        p.not_after = date_time_ymd(2026, 1, 1);
        p
    }

    fn leaf_params() -> CertificateParams {
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.subject_alt_names = vec![
            SanType::Rfc822Name(EMAIL.try_into().unwrap()),
            SanType::URI(URI.try_into().unwrap()),
        ];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        let mut issuer = vec![0x0c, OIDC_ISSUER.len() as u8];
        issuer.extend_from_slice(OIDC_ISSUER.as_bytes());
        p.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 57264, 1, 8],
            issuer,
        )];
        p.not_before = date_time_ymd(2024, 12, 31);
        p.not_after = date_time_ymd(2025, 1, 2);
        p
    }

    struct Pki {
        root: CertifiedIssuer<'static, KeyPair>,
        intermediate: CertifiedIssuer<'static, KeyPair>,
    }

    impl Pki {
        fn new() -> Pki {
            let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
            let root = CertifiedIssuer::self_signed(ca_params("root"), root_key).unwrap();
            let intermediate = CertifiedIssuer::signed_by(
                ca_params("intermediate"),
                KeyPair::generate().unwrap(),
                &root,
            )
            .unwrap();
            Pki { root, intermediate }
        }

        fn leaf(&self, params: &CertificateParams) -> String {
            params
                .signed_by(&KeyPair::generate().unwrap(), &self.intermediate)
                .unwrap()
                .pem()
        }
    }

    #[test]
    fn chain_through_an_intermediate() {
        let pki = Pki::new();
        let leaf = pki.leaf(&leaf_params());
        let verified =
            verify_certificate_chain(&leaf, &pki.intermediate.pem(), &pki.root.pem(), AT).unwrap();
        assert_eq!(verified.san, vec![EMAIL.to_owned(), URI.to_owned()]);
        assert_eq!(verified.issuer_extension.as_deref(), Some(OIDC_ISSUER));
        assert_eq!(verified.public_key.algorithm(), KeyAlgorithm::EcdsaP256);
        // The chain may also come appended to the leaf.
        let bundled = format!("{leaf}{}", pki.intermediate.pem());
        verify_certificate_chain(&bundled, "", &pki.root.pem(), AT).unwrap();
        // Unrelated certificates in the chain and pool are skipped.
        let other = Pki::new();
        let chain = format!("{}{}", other.intermediate.pem(), pki.intermediate.pem());
        let roots = format!("{}{}", other.root.pem(), pki.root.pem());
        verify_certificate_chain(&leaf, &chain, &roots, AT).unwrap();
    }

    #[test]
    fn untrusted_chains_are_refused() {
        let pki = Pki::new();
        let leaf = pki.leaf(&leaf_params());
        // Missing intermediate.
        let err = verify_certificate_chain(&leaf, "", &pki.root.pem(), AT).unwrap_err();
        assert!(
            matches!(err, CertificateError::UntrustedChain { .. }),
            "{err}"
        );
        // Another PKI's root with the same names.
        let other = Pki::new();
        let err = verify_certificate_chain(&leaf, &pki.intermediate.pem(), &other.root.pem(), AT)
            .unwrap_err();
        assert!(
            matches!(err, CertificateError::UntrustedChain { .. }),
            "{err}"
        );
        // An intermediate that is not a CA.
        let mut params = ca_params("intermediate");
        params.is_ca = IsCa::ExplicitNoCa;
        let not_ca =
            CertifiedIssuer::signed_by(params, KeyPair::generate().unwrap(), &pki.root).unwrap();
        let leaf = leaf_params()
            .signed_by(&KeyPair::generate().unwrap(), &not_ca)
            .unwrap()
            .pem();
        let err = verify_certificate_chain(&leaf, &not_ca.pem(), &pki.root.pem(), AT).unwrap_err();
        assert!(err.to_string().contains("is not a CA"), "{err}");
    }

    /// `n` CA certificates all named "CA" with one key, the leaf issued by the first:
    /// every certificate "issued" every other one, the path search's worst case.
    fn same_name_cas(n: usize) -> (String, String) {
        let key_pem = KeyPair::generate().unwrap().serialize_pem();
        let cas: Vec<_> = (0..n)
            .map(|i| {
                let mut params = ca_params("CA");
                params.serial_number = Some(rcgen::SerialNumber::from(i as u64 + 1));
                CertifiedIssuer::self_signed(params, KeyPair::from_pem(&key_pem).unwrap()).unwrap()
            })
            .collect();
        let leaf = leaf_params()
            .signed_by(&KeyPair::generate().unwrap(), &cas[0])
            .unwrap()
            .pem();
        (leaf, cas.iter().map(|ca| ca.pem()).collect())
    }

    #[test]
    fn same_name_chains_are_bounded() {
        // Issue 8 item 7: 24 such certificates made ~24^4 signature checks (19 s).
        let pki = Pki::new();
        let (leaf, chain) = same_name_cas(24);
        let err = verify_certificate_chain(&leaf, &chain, &pki.root.pem(), AT).unwrap_err();
        assert!(
            err.to_string().contains("more than the 10 accepted"),
            "{err}"
        );
        // Within the count, the search stops after its budget of signature checks.
        let (leaf, chain) = same_name_cas(MAX_INTERMEDIATES);
        let err = verify_certificate_chain(&leaf, &chain, &pki.root.pem(), AT).unwrap_err();
        assert!(
            err.to_string()
                .contains("no path found within 32 signature checks"),
            "{err}"
        );
    }

    #[test]
    fn leaf_requirements() {
        let pki = Pki::new();
        let check = |params: &CertificateParams, at: i64| {
            verify_certificate_chain(
                &pki.leaf(params),
                &pki.intermediate.pem(),
                &pki.root.pem(),
                at,
            )
        };
        assert!(matches!(
            check(&leaf_params(), AT + 2 * 86_400),
            Err(CertificateError::NotValidAt { .. })
        ));
        let mut p = leaf_params();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        assert_eq!(check(&p, AT), Err(CertificateError::MissingCodeSigning));
        let mut p = leaf_params();
        p.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
        assert_eq!(
            check(&p, AT),
            Err(CertificateError::MissingDigitalSignature)
        );
        let mut p = leaf_params();
        p.subject_alt_names.clear();
        assert_eq!(check(&p, AT), Err(CertificateError::MissingSan));
        let mut p = leaf_params();
        let mut critical = CustomExtension::from_oid_content(&[1, 2, 3, 4], vec![0x05, 0x00]);
        critical.set_criticality(true);
        p.custom_extensions.push(critical);
        assert!(matches!(
            check(&p, AT),
            Err(CertificateError::UnknownCriticalExtension { .. })
        ));
    }

    #[test]
    fn malformed_inputs() {
        let pki = Pki::new();
        let root = pki.root.pem();
        assert!(matches!(
            verify_certificate_chain("", "", &root, AT),
            Err(CertificateError::NoCertificate { .. })
        ));
        let junk = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            verify_certificate_chain(junk, "", &root, AT),
            Err(CertificateError::MalformedCertificate { .. })
        ));
        assert!(matches!(
            verify_certificate_chain(&pki.leaf(&leaf_params()), "%%", &root, AT),
            Err(CertificateError::UntrustedChain { .. })
        ));
        let huge = "a".repeat(keys::MAX_PEM_SIZE + 1);
        assert!(matches!(
            verify_certificate_chain(&huge, "", &root, AT),
            Err(CertificateError::PemTooLarge { .. })
        ));
    }
}
