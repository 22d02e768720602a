//! RFC 3161 timestamp countersignatures (a CMS SignedData over a TSTInfo, read with `cms`):
//! the token must time-stamp the envelope's signature bytes, be signed by its TSA
//! certificate, and that certificate must chain to a trusted TSA certificate.

use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use const_oid::ObjectIdentifier;
use der::asn1::{Any, Int, OctetString};
use der::{Decode as _, Encode as _, Tagged as _};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::SubjectKeyIdentifier;

use crate::certificate::Cert;
use crate::crypto::{self, SHA1, SHA256};
use crate::error::{NotationError, Result};
use crate::limits;
use crate::time::parse_generalized_time_millis;

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_CERTIFICATE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.12");
const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");

/// The time a verified timestamp vouches for: `[gen_time - accuracy, gen_time + accuracy]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampRange {
    /// Earliest possible signing time (Unix seconds, rounded down).
    pub earliest: i64,
    /// Latest possible signing time (Unix seconds, rounded up).
    pub latest: i64,
}

#[derive(der::Sequence)]
struct MessageImprint {
    hash_algorithm: AlgorithmIdentifierOwned,
    hashed_message: OctetString,
}

#[derive(der::Sequence)]
struct Accuracy {
    #[asn1(optional = "true")]
    seconds: Option<u32>,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "IMPLICIT")]
    millis: Option<u16>,
    #[asn1(context_specific = "1", optional = "true", tag_mode = "IMPLICIT")]
    micros: Option<u16>,
}

/// TSTInfo (RFC 3161 §2.4.2). `genTime` stays raw: RFC 3161 allows fractional seconds.
#[derive(der::Sequence)]
struct TstInfo {
    version: u8,
    #[allow(dead_code)] // decoded to validate the structure
    policy: ObjectIdentifier,
    message_imprint: MessageImprint,
    #[allow(dead_code)]
    serial_number: Int,
    gen_time: Any,
    #[asn1(optional = "true")]
    accuracy: Option<Accuracy>,
    #[asn1(default = "Default::default")]
    #[allow(dead_code)]
    ordering: bool,
    #[asn1(optional = "true")]
    #[allow(dead_code)]
    nonce: Option<Int>,
    #[asn1(context_specific = "0", optional = "true", tag_mode = "EXPLICIT")]
    #[allow(dead_code)]
    tsa: Option<Any>,
    #[asn1(context_specific = "1", optional = "true", tag_mode = "IMPLICIT")]
    #[allow(dead_code)]
    extensions: Option<x509_cert::ext::Extensions>,
}

/// ESSCertIDv2 (RFC 5035); the hash algorithm defaults to SHA-256.
#[derive(der::Sequence)]
struct EssCertIdV2 {
    #[asn1(optional = "true")]
    hash_algorithm: Option<AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    #[allow(dead_code)]
    issuer_serial: Option<Any>,
}

#[derive(der::Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    #[allow(dead_code)]
    policies: Option<Any>,
}

/// ESSCertID (RFC 2634): SHA-1 of the certificate.
#[derive(der::Sequence)]
struct EssCertId {
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    #[allow(dead_code)]
    issuer_serial: Option<Any>,
}

#[derive(der::Sequence)]
struct SigningCertificate {
    certs: Vec<EssCertId>,
    #[asn1(optional = "true")]
    #[allow(dead_code)]
    policies: Option<Any>,
}

fn invalid(reason: impl Into<String>) -> NotationError {
    NotationError::InvalidTimestamp(reason.into())
}

/// Verifies `token` as a timestamp of `signature` whose TSA chains to one of `trusted`
/// (DER certificates); returns the time range it vouches for.
pub(crate) fn verify(token: &[u8], signature: &[u8], trusted: &[Cert]) -> Result<TimestampRange> {
    if token.len() > limits::MAX_TIMESTAMP_TOKEN_SIZE {
        return Err(invalid(format!(
            "token is {} bytes, more than the limit of {}",
            token.len(),
            limits::MAX_TIMESTAMP_TOKEN_SIZE
        )));
    }
    let info =
        ContentInfo::from_der(token).map_err(|e| invalid(format!("not a CMS ContentInfo: {e}")))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err(invalid("content is not SignedData"));
    }
    let signed: SignedData = info
        .content
        .decode_as()
        .map_err(|e| invalid(format!("malformed SignedData: {e}")))?;
    if signed.encap_content_info.econtent_type != ID_CT_TST_INFO {
        return Err(invalid("content is not a TSTInfo"));
    }
    let tst_der = signed
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| invalid("no TSTInfo"))?
        .decode_as::<OctetString>()
        .map_err(|e| invalid(format!("TSTInfo is not an OCTET STRING: {e}")))?;
    let tst_der = tst_der.as_bytes();
    let tst = TstInfo::from_der(tst_der).map_err(|e| invalid(format!("malformed TSTInfo: {e}")))?;
    if tst.version != 1 {
        return Err(invalid(format!("TSTInfo version {}", tst.version)));
    }

    // The token must time-stamp exactly this signature.
    let imprint_alg = tst.message_imprint.hash_algorithm.oid;
    let expected = crypto::digest(imprint_alg, signature)
        .filter(|_| imprint_alg != SHA1)
        .ok_or_else(|| invalid(format!("unsupported message imprint hash {imprint_alg}")))?;
    if expected != tst.message_imprint.hashed_message.as_bytes() {
        return Err(invalid("message imprint does not match the signature"));
    }

    // Certificates carried by the token.
    let carried: Vec<Cert> = signed
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .take(limits::MAX_CHAIN_LENGTH + 1)
        .enumerate()
        .map(|(index, choice)| match choice {
            CertificateChoices::Certificate(cert) => {
                let der = cert.to_der().map_err(|e| invalid(e.to_string()))?;
                Cert::from_der(&der, "timestamp token's certificates", index)
            }
            CertificateChoices::Other(_) => Err(invalid("non-X.509 certificate in the token")),
        })
        .collect::<Result<_>>()?;
    if carried.len() > limits::MAX_CHAIN_LENGTH {
        return Err(NotationError::TooMany {
            what: "timestamp certificates",
            count: carried.len(),
            limit: limits::MAX_CHAIN_LENGTH,
        });
    }

    let mut signers = signed.signer_infos.0.iter();
    let signer = match (signers.next(), signers.next()) {
        (Some(signer), None) => signer,
        _ => return Err(invalid("the token must have exactly one signer")),
    };
    let tsa = find_signer(&signer.sid, &carried, trusted)?;
    tsa.check_time_stamping_leaf().map_err(invalid)?;

    // Signed attributes: content type, message digest of the TSTInfo, signing certificate.
    let attrs = signer
        .signed_attrs
        .as_ref()
        .ok_or_else(|| invalid("no signed attributes"))?;
    let attr = |oid: ObjectIdentifier| -> Result<Option<&Any>> {
        let mut found = attrs.iter().filter(|a| a.oid == oid);
        match (found.next(), found.next()) {
            (None, _) => Ok(None),
            (Some(a), None) if a.values.len() == 1 => Ok(a.values.get(0)),
            _ => Err(invalid(format!(
                "attribute {oid} must have exactly one value"
            ))),
        }
    };
    let content_type: ObjectIdentifier = attr(ID_CONTENT_TYPE)?
        .ok_or_else(|| invalid("no content-type attribute"))?
        .decode_as()
        .map_err(|e| invalid(e.to_string()))?;
    if content_type != ID_CT_TST_INFO {
        return Err(invalid("content-type attribute is not TSTInfo"));
    }
    let digest_alg = signer.digest_alg.oid;
    let message_digest: OctetString = attr(ID_MESSAGE_DIGEST)?
        .ok_or_else(|| invalid("no message-digest attribute"))?
        .decode_as()
        .map_err(|e| invalid(e.to_string()))?;
    let tst_digest = crypto::digest(digest_alg, tst_der)
        .filter(|_| digest_alg != SHA1)
        .ok_or_else(|| invalid(format!("unsupported digest algorithm {digest_alg}")))?;
    if tst_digest != message_digest.as_bytes() {
        return Err(invalid(
            "message-digest attribute does not match the TSTInfo",
        ));
    }
    check_signing_certificate(
        attr(ID_SIGNING_CERTIFICATE_V2)?,
        attr(ID_SIGNING_CERTIFICATE)?,
        &tsa,
    )?;
    let signed_attrs = attrs.to_der().map_err(|e| invalid(e.to_string()))?;
    tsa.key
        .verify_asn1(
            signer.signature_algorithm.oid,
            Some(digest_alg),
            &signed_attrs,
            signer.signature.as_bytes(),
        )
        .map_err(|e| invalid(format!("token signature: {e}")))?;

    // The time, and the TSA chain valid at that time up to a trusted certificate.
    let gen_millis = parse_generalized_time_millis(tst.gen_time.value())
        .filter(|_| tst.gen_time.tag() == der::Tag::GeneralizedTime)
        .ok_or_else(|| invalid("genTime is not a GeneralizedTime"))?;
    let accuracy_millis = match &tst.accuracy {
        Some(a) => {
            i64::from(a.seconds.unwrap_or(0)) * 1000
                + i64::from(a.millis.unwrap_or(0))
                + i64::from(a.micros.unwrap_or(0) > 0)
        }
        // Without an accuracy the TSA vouches for genTime to the second, as notation assumes.
        None => 1000,
    };
    let range = TimestampRange {
        earliest: (gen_millis - accuracy_millis).div_euclid(1000),
        latest: (gen_millis + accuracy_millis + 999).div_euclid(1000),
    };
    chain_to_trusted(&tsa, &carried, trusted, gen_millis.div_euclid(1000))?;
    Ok(range)
}

fn find_signer(sid: &SignerIdentifier, carried: &[Cert], trusted: &[Cert]) -> Result<Cert> {
    let matches = |cert: &&Cert| match sid {
        SignerIdentifier::IssuerAndSerialNumber(is) => {
            cert.cert.tbs_certificate.issuer == is.issuer
                && cert.cert.tbs_certificate.serial_number == is.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => cert
            .cert
            .tbs_certificate
            .get::<SubjectKeyIdentifier>()
            .ok()
            .flatten()
            .is_some_and(|(_, own)| own == *ski),
    };
    carried
        .iter()
        .chain(trusted)
        .find(matches)
        .cloned()
        .ok_or_else(|| invalid("the TSA signing certificate is not in the token"))
}

fn check_signing_certificate(v2: Option<&Any>, v1: Option<&Any>, tsa: &Cert) -> Result<()> {
    let (alg, hash) = if let Some(v2) = v2 {
        let sc: SigningCertificateV2 = v2.decode_as().map_err(|e| invalid(e.to_string()))?;
        let first = sc
            .certs
            .into_iter()
            .next()
            .ok_or_else(|| invalid("empty signing-certificate-v2"))?;
        (
            first.hash_algorithm.map(|a| a.oid).unwrap_or(SHA256),
            first.cert_hash,
        )
    } else if let Some(v1) = v1 {
        let sc: SigningCertificate = v1.decode_as().map_err(|e| invalid(e.to_string()))?;
        let first = sc
            .certs
            .into_iter()
            .next()
            .ok_or_else(|| invalid("empty signing-certificate"))?;
        (SHA1, first.cert_hash)
    } else {
        return Err(invalid("no signing-certificate attribute"));
    };
    let own =
        crypto::digest(alg, &tsa.der).ok_or_else(|| invalid(format!("unsupported hash {alg}")))?;
    if own != hash.as_bytes() {
        return Err(invalid(
            "signing-certificate attribute does not name the TSA certificate",
        ));
    }
    Ok(())
}

/// Walks issuers from the TSA certificate (carried certificates, then trusted ones) until a
/// trusted certificate is reached; every certificate on the way must be valid at `at`.
fn chain_to_trusted(tsa: &Cert, carried: &[Cert], trusted: &[Cert], at: i64) -> Result<()> {
    let untrusted = |reason: String| NotationError::UntrustedTimestamp(reason);
    let mut current = tsa.clone();
    for _ in 0..=limits::MAX_CHAIN_LENGTH {
        if !current.valid_at(at) {
            return Err(untrusted(format!(
                "TSA certificate \"{}\" is not valid at the timestamp's time",
                current.subject()
            )));
        }
        if trusted.iter().any(|t| t.der == current.der) {
            return Ok(());
        }
        let issuer = trusted
            .iter()
            .chain(carried)
            .find(|candidate| candidate.der != current.der && current.issued_by(candidate).is_ok())
            .cloned()
            .ok_or_else(|| {
                untrusted(format!(
                    "no trusted issuer found for \"{}\"",
                    current.subject()
                ))
            })?;
        if !issuer.can_issue() {
            return Err(untrusted(format!(
                "issuer \"{}\" is not a CA",
                issuer.subject()
            )));
        }
        current = issuer;
    }
    Err(untrusted("TSA chain is too long".into()))
}
