//! X.509 certificates of Notary signatures and timestamps: parsing, chain structure,
//! code-signing and time-stamping requirements, validity (crate-private).

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280::{ID_KP_CODE_SIGNING, ID_KP_TIME_STAMPING};
use der::{Decode as _, Encode as _};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage};

use crate::crypto::{CertKey, KeyKind};
use crate::error::{NotationError, Result};
use crate::limits;
use crate::time::rfc3339;

/// Extensions whose criticality we understand (others marked critical are refused).
const KNOWN_CRITICAL: [ObjectIdentifier; 7] = [
    ObjectIdentifier::new_unwrap("2.5.29.15"), // keyUsage
    ObjectIdentifier::new_unwrap("2.5.29.19"), // basicConstraints
    ObjectIdentifier::new_unwrap("2.5.29.37"), // extKeyUsage
    ObjectIdentifier::new_unwrap("2.5.29.17"), // subjectAltName
    ObjectIdentifier::new_unwrap("2.5.29.32"), // certificatePolicies
    ObjectIdentifier::new_unwrap("2.5.29.14"), // subjectKeyIdentifier
    ObjectIdentifier::new_unwrap("2.5.29.35"), // authorityKeyIdentifier
];
/// EKUs a code-signing leaf must not have (the Notary Project's certificate requirements).
const FORBIDDEN_LEAF_EKUS: [ObjectIdentifier; 4] = [
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1"), // serverAuth
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.4"), // emailProtection
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8"), // timeStamping
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.9"), // OCSPSigning
];

/// A parsed certificate with its DER, key and validity as Unix seconds.
#[derive(Debug, Clone)]
pub(crate) struct Cert {
    pub der: Vec<u8>,
    pub cert: Certificate,
    pub key: CertKey,
    pub not_before: i64,
    pub not_after: i64,
}

impl Cert {
    /// Parses one DER certificate; `what`/`index` name it in errors.
    pub fn from_der(der: &[u8], what: &'static str, index: usize) -> Result<Cert> {
        let bad = |reason: String| NotationError::MalformedCertificate {
            what,
            index,
            reason,
        };
        if der.len() > limits::MAX_CERTIFICATE_SIZE {
            return Err(bad(format!(
                "{} bytes, more than the limit of {}",
                der.len(),
                limits::MAX_CERTIFICATE_SIZE
            )));
        }
        let cert = Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| bad(e.to_string()))?;
        let key = CertKey::from_spki(&spki).map_err(bad)?;
        let validity = &cert.tbs_certificate.validity;
        let secs = |t: x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
        };
        let not_before = secs(validity.not_before);
        let not_after = secs(validity.not_after);
        Ok(Cert {
            der: der.to_vec(),
            cert,
            key,
            not_before,
            not_after,
        })
    }

    /// The subject as an RFC 4514 string.
    pub fn subject(&self) -> String {
        self.cert.tbs_certificate.subject.to_string()
    }

    /// Whether `self` was issued by `issuer`: names match and the signature verifies.
    pub fn issued_by(&self, issuer: &Cert) -> Result<(), String> {
        if self.cert.tbs_certificate.issuer != issuer.cert.tbs_certificate.subject {
            return Err(format!(
                "\"{}\" is not issued by \"{}\"",
                self.subject(),
                issuer.subject()
            ));
        }
        let tbs = self
            .cert
            .tbs_certificate
            .to_der()
            .map_err(|e| e.to_string())?;
        let sig = self
            .cert
            .signature
            .as_bytes()
            .ok_or("certificate signature has unused bits")?;
        issuer
            .key
            .verify_asn1(self.cert.signature_algorithm.oid, None, &tbs, sig)
            .map_err(|e| {
                format!(
                    "signature of \"{}\" by \"{}\": {e}",
                    self.subject(),
                    issuer.subject()
                )
            })
    }

    fn extension<T>(&self) -> Result<Option<T>, String>
    where
        T: for<'a> der::Decode<'a> + const_oid::AssociatedOid,
    {
        self.cert
            .tbs_certificate
            .get::<T>()
            .map(|found| found.map(|(_, value)| value))
            .map_err(|e| format!("\"{}\": {e}", self.subject()))
    }

    fn check_critical_extensions(&self) -> Result<(), String> {
        for ext in self.cert.tbs_certificate.extensions.iter().flatten() {
            if ext.critical && !KNOWN_CRITICAL.contains(&ext.extn_id) {
                return Err(format!(
                    "\"{}\" has an unsupported critical extension {}",
                    self.subject(),
                    ext.extn_id
                ));
            }
        }
        Ok(())
    }

    fn is_ca(&self) -> Result<bool, String> {
        Ok(self.extension::<BasicConstraints>()?.is_some_and(|c| c.ca))
    }

    /// Requirements on an issuing certificate below which `below` CA certificates sit.
    fn check_issuer(&self, below: usize) -> Result<(), String> {
        self.check_critical_extensions()?;
        let constraints = self.extension::<BasicConstraints>()?;
        match constraints {
            Some(c) if c.ca => {
                if let Some(max) = c.path_len_constraint
                    && below > usize::from(max)
                {
                    return Err(format!(
                        "\"{}\" path length constraint {max} exceeded",
                        self.subject()
                    ));
                }
            }
            _ => return Err(format!("\"{}\" is not a CA", self.subject())),
        }
        match self.extension::<KeyUsage>()? {
            Some(usage) if usage.key_cert_sign() => Ok(()),
            _ => Err(format!(
                "\"{}\" may not sign certificates (keyUsage keyCertSign)",
                self.subject()
            )),
        }
    }

    /// Whether this certificate may issue others (a CA with keyCertSign).
    pub fn can_issue(&self) -> bool {
        self.check_issuer(0).is_ok()
    }

    fn check_key_size(&self) -> Result<(), String> {
        match self.key.kind {
            KeyKind::Rsa { bits } if bits < 2048 => Err(format!(
                "\"{}\" has an RSA key of {bits} bits (at least 2048)",
                self.subject()
            )),
            _ => Ok(()),
        }
    }

    /// Requirements on a code-signing leaf (Notary Project certificate requirements).
    fn check_code_signing_leaf(&self) -> Result<(), String> {
        self.check_critical_extensions()?;
        self.check_key_size()?;
        if self.is_ca()? {
            return Err(format!(
                "signing certificate \"{}\" is a CA",
                self.subject()
            ));
        }
        match self.extension::<KeyUsage>()? {
            Some(usage) if usage.digital_signature() && !usage.key_cert_sign() => {}
            _ => {
                return Err(format!(
                    "signing certificate \"{}\" lacks keyUsage digitalSignature (or may sign certificates)",
                    self.subject()
                ));
            }
        }
        if let Some(ExtendedKeyUsage(ekus)) = self.extension::<ExtendedKeyUsage>()? {
            if !ekus.contains(&ID_KP_CODE_SIGNING) {
                return Err(format!(
                    "signing certificate \"{}\" lacks extKeyUsage codeSigning",
                    self.subject()
                ));
            }
            if let Some(bad) = ekus.iter().find(|e| FORBIDDEN_LEAF_EKUS.contains(e)) {
                return Err(format!(
                    "signing certificate \"{}\" has forbidden extKeyUsage {bad}",
                    self.subject()
                ));
            }
        }
        Ok(())
    }

    /// Requirements on an RFC 3161 signing certificate: extKeyUsage timeStamping.
    pub fn check_time_stamping_leaf(&self) -> Result<(), String> {
        self.check_critical_extensions()?;
        self.check_key_size()?;
        match self.extension::<ExtendedKeyUsage>()? {
            Some(ExtendedKeyUsage(ekus)) if ekus.contains(&ID_KP_TIME_STAMPING) => Ok(()),
            _ => Err(format!(
                "TSA certificate \"{}\" lacks extKeyUsage timeStamping",
                self.subject()
            )),
        }
    }

    /// Whether `time` (Unix seconds) lies in the validity period.
    pub fn valid_at(&self, time: i64) -> bool {
        self.not_before <= time && time <= self.not_after
    }

    /// Error for a certificate not valid at `time`.
    pub fn not_valid_error(&self, time: i64) -> NotationError {
        NotationError::CertificateNotValid {
            subject: self.subject(),
            time: rfc3339(time),
            not_before: rfc3339(self.not_before),
            not_after: rfc3339(self.not_after),
        }
    }
}

/// Parses an envelope's chain (leaf first) within the count limit.
pub(crate) fn parse_chain(ders: &[Vec<u8>]) -> Result<Vec<Cert>> {
    if ders.is_empty() {
        return Err(NotationError::EmptyChain);
    }
    if ders.len() > limits::MAX_CHAIN_LENGTH {
        return Err(NotationError::TooMany {
            what: "certificates",
            count: ders.len(),
            limit: limits::MAX_CHAIN_LENGTH,
        });
    }
    ders.iter()
        .enumerate()
        .map(|(index, der)| Cert::from_der(der, "signature's certificate chain", index))
        .collect()
}

/// Validates a code-signing chain, leaf first, ending in a self-signed root: every
/// certificate is issued by the next, issuers are CAs allowed to sign certificates,
/// the leaf is a code-signing certificate. A single certificate must be a self-signed leaf.
pub(crate) fn validate_code_signing_chain(chain: &[Cert]) -> Result<()> {
    let invalid = NotationError::InvalidChain;
    let (leaf, rest) = chain.split_first().ok_or(NotationError::EmptyChain)?;
    leaf.check_code_signing_leaf().map_err(invalid)?;
    let mut previous = leaf;
    for (below, issuer) in rest.iter().enumerate() {
        previous.issued_by(issuer).map_err(invalid)?;
        issuer.check_issuer(below).map_err(invalid)?;
        previous = issuer;
    }
    // The last certificate must be a root: self-issued and self-signed.
    previous.issued_by(previous).map_err(|e| {
        invalid(format!(
            "the chain does not end in a self-signed root certificate: {e}"
        ))
    })?;
    Ok(())
}
