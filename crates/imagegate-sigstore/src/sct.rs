//! Signed certificate timestamps embedded in Fulcio certificates (RFC 6962 §3.3, X.509
//! extension `1.3.6.1.4.1.11129.2.4.2`), verified against the trusted CT log keys, as
//! cosign and Kyverno do for legacy keyless `.sig`/`.att` layers unless
//! `ctlog.ignoreSCT` is set. (Sigstore bundles are checked by sigstore-verify.)
//!
//! An embedded SCT signs the *precertificate*: the leaf's TBSCertificate without the SCT
//! list extension (re-encoded in DER), bound to the issuer by the SHA-256 of the
//! issuer's SubjectPublicKeyInfo. One SCT that verifies with a CT log key valid at its
//! timestamp is enough (Sigstore's threshold is 1).

use sha2::{Digest as _, Sha256};
use spki::ObjectIdentifier;
use spki::der::asn1::OctetString;
use spki::der::{Decode as _, Encode as _};
use thiserror::Error;
use x509_cert::Certificate;

use crate::keys::{HashAlgorithm, KeyAlgorithm, PublicKey};
use crate::trust::TrustedLogKey;

/// The embedded SCT list extension (RFC 6962 §3.3).
pub const OID_SCT_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

/// One signed certificate timestamp, as encoded in the TLS structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sct {
    /// SCT version (0 = v1).
    pub version: u8,
    /// SHA-256 of the log's SubjectPublicKeyInfo DER.
    pub log_id: [u8; 32],
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The CtExtensions bytes (empty for RFC 6962 logs; Static CT logs use them).
    pub extensions: Vec<u8>,
    /// TLS HashAlgorithm (4 = SHA-256, 5 = SHA-384, 6 = SHA-512).
    pub hash_algorithm: u8,
    /// TLS SignatureAlgorithm (1 = RSA, 3 = ECDSA).
    pub signature_algorithm: u8,
    /// The DER signature.
    pub signature: Vec<u8>,
}

impl Sct {
    /// The log id as lowercase hex.
    pub fn log_id_hex(&self) -> String {
        hex::encode(self.log_id)
    }

    /// The bytes the log signed for a precertificate entry (RFC 6962 §3.2):
    /// version ‖ signature type (certificate_timestamp) ‖ timestamp ‖ entry type
    /// (precert_entry) ‖ issuer key hash ‖ TBS (24-bit length) ‖ extensions (16-bit length).
    pub fn signed_data(&self, issuer_key_hash: &[u8; 32], precert_tbs: &[u8]) -> Vec<u8> {
        let mut data = Vec::with_capacity(precert_tbs.len() + self.extensions.len() + 64);
        data.push(self.version);
        data.push(0); // certificate_timestamp
        data.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        data.extend_from_slice(&1u16.to_be_bytes()); // precert_entry
        data.extend_from_slice(issuer_key_hash);
        let tbs_len = u32::try_from(precert_tbs.len()).unwrap_or(u32::MAX);
        data.extend_from_slice(&tbs_len.to_be_bytes()[1..]);
        data.extend_from_slice(precert_tbs);
        let ext_len = u16::try_from(self.extensions.len()).unwrap_or(u16::MAX);
        data.extend_from_slice(&ext_len.to_be_bytes());
        data.extend_from_slice(&self.extensions);
        data
    }
}

/// An embedded SCT that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSct {
    /// The log that signed it (hex SHA-256 of its key).
    pub log_id: String,
    /// When the log promised to include the certificate (milliseconds since the epoch).
    pub timestamp_ms: u64,
}

/// Why no embedded SCT was accepted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SctError {
    /// The certificate carries no SCT list extension.
    #[error(
        "certificate has no embedded SCT (certificate transparency proof); set ctlog.ignoreSCT: true for certificates issued without one"
    )]
    NoSct,
    /// No CT log key to verify with.
    #[error("no certificate transparency log key to verify the embedded SCT with")]
    NoLogKeys,
    /// The certificate or its SCT list cannot be parsed.
    #[error("malformed embedded SCT: {0}")]
    Malformed(String),
    /// The SCT names a log that is not trusted.
    #[error("embedded SCT is from an unknown CT log (log id {log_id})")]
    UnknownLog {
        /// The SCT's log id (hex).
        log_id: String,
    },
    /// The log's key was not valid at the SCT's timestamp.
    #[error("CT log {log_id} was not valid at the SCT timestamp {timestamp_ms} ms")]
    LogNotValidAt {
        /// The log id (hex).
        log_id: String,
        /// The SCT timestamp.
        timestamp_ms: u64,
    },
    /// The SCT uses a version or algorithm that cannot be verified.
    #[error("unsupported embedded SCT: {0}")]
    Unsupported(String),
    /// The SCT signature does not verify with the log's key.
    #[error("invalid embedded SCT signature from CT log {log_id}")]
    InvalidSignature {
        /// The log id (hex).
        log_id: String,
    },
}

/// The SCTs embedded in a certificate (DER). [`SctError::NoSct`] when it has none.
pub fn embedded_scts(leaf_der: &[u8]) -> Result<Vec<Sct>, SctError> {
    let cert = Certificate::from_der(leaf_der).map_err(|e| SctError::Malformed(e.to_string()))?;
    let ext = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == OID_SCT_LIST)
        .ok_or(SctError::NoSct)?;
    let inner = OctetString::from_der(ext.extn_value.as_bytes())
        .map_err(|e| SctError::Malformed(format!("SCT list extension: {e}")))?;
    let scts = parse_sct_list(inner.as_bytes())?;
    if scts.is_empty() {
        return Err(SctError::NoSct);
    }
    Ok(scts)
}

/// The precertificate TBS the SCTs sign: the leaf's TBSCertificate without the SCT list
/// extension, DER encoded.
pub fn precertificate_tbs(leaf_der: &[u8]) -> Result<Vec<u8>, SctError> {
    let cert = Certificate::from_der(leaf_der).map_err(|e| SctError::Malformed(e.to_string()))?;
    let mut tbs = cert.tbs_certificate;
    tbs.extensions = tbs.extensions.map(|extensions| {
        extensions
            .into_iter()
            .filter(|e| e.extn_id != OID_SCT_LIST)
            .collect()
    });
    tbs.to_der()
        .map_err(|e| SctError::Malformed(format!("re-encoding the precertificate: {e}")))
}

/// Verifies the certificate's embedded SCTs: at least one must verify with a CT log key
/// of `ct_keys` whose log id it names and which was valid at its timestamp.
/// `issuer_spki_der` is the SubjectPublicKeyInfo of the certificate that issued the leaf.
pub fn verify_embedded_scts(
    leaf_der: &[u8],
    issuer_spki_der: &[u8],
    ct_keys: &[TrustedLogKey<PublicKey>],
) -> Result<VerifiedSct, SctError> {
    let scts = embedded_scts(leaf_der)?;
    if ct_keys.is_empty() {
        return Err(SctError::NoLogKeys);
    }
    let tbs = precertificate_tbs(leaf_der)?;
    let issuer_key_hash: [u8; 32] = Sha256::digest(issuer_spki_der).into();
    let mut first_error = None;
    for sct in &scts {
        match verify_one(sct, &issuer_key_hash, &tbs, ct_keys) {
            Ok(verified) => return Ok(verified),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(SctError::NoSct))
}

fn verify_one(
    sct: &Sct,
    issuer_key_hash: &[u8; 32],
    tbs: &[u8],
    ct_keys: &[TrustedLogKey<PublicKey>],
) -> Result<VerifiedSct, SctError> {
    let log_id = sct.log_id_hex();
    if sct.version != 0 {
        return Err(SctError::Unsupported(format!("version {}", sct.version)));
    }
    let hash = match sct.hash_algorithm {
        4 => HashAlgorithm::Sha256,
        5 => HashAlgorithm::Sha384,
        6 => HashAlgorithm::Sha512,
        other => return Err(SctError::Unsupported(format!("hash algorithm {other}"))),
    };
    let candidates: Vec<&TrustedLogKey<PublicKey>> = ct_keys
        .iter()
        .filter(|k| k.key.spki_sha256_hex() == log_id)
        .collect();
    if candidates.is_empty() {
        return Err(SctError::UnknownLog { log_id });
    }
    let at = i64::try_from(sct.timestamp_ms / 1000).unwrap_or(i64::MAX);
    let Some(log) = candidates.into_iter().find(|k| k.validity.contains(at)) else {
        return Err(SctError::LogNotValidAt {
            log_id,
            timestamp_ms: sct.timestamp_ms,
        });
    };
    let algorithm_fits = matches!(
        (sct.signature_algorithm, log.key.algorithm()),
        (
            3,
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 | KeyAlgorithm::EcdsaP521
        ) | (1, KeyAlgorithm::Rsa { .. })
    );
    if !algorithm_fits {
        return Err(SctError::Unsupported(format!(
            "signature algorithm {} with a {} log key",
            sct.signature_algorithm,
            log.key.algorithm()
        )));
    }
    let data = sct.signed_data(issuer_key_hash, tbs);
    log.key
        .clone()
        .with_hash(hash)
        .verify(&data, &sct.signature)
        .map_err(|_| SctError::InvalidSignature {
            log_id: log_id.clone(),
        })?;
    Ok(VerifiedSct {
        log_id,
        timestamp_ms: sct.timestamp_ms,
    })
}

/// A cursor over TLS-encoded bytes.
struct Tls<'a>(&'a [u8]);

impl<'a> Tls<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], SctError> {
        if self.0.len() < n {
            return Err(SctError::Malformed(format!("truncated {what}")));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &str) -> Result<u8, SctError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> Result<usize, SctError> {
        let b = self.take(2, what)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn vec16(&mut self, what: &str) -> Result<&'a [u8], SctError> {
        let n = self.u16(what)?;
        self.take(n, what)
    }
}

/// Parses a `SignedCertificateTimestampList` (RFC 6962 §3.3).
fn parse_sct_list(bytes: &[u8]) -> Result<Vec<Sct>, SctError> {
    let mut outer = Tls(bytes);
    let list = outer.vec16("SCT list")?;
    if !outer.0.is_empty() {
        return Err(SctError::Malformed(
            "trailing bytes after the SCT list".into(),
        ));
    }
    let mut list = Tls(list);
    let mut scts = Vec::new();
    while !list.0.is_empty() {
        let one = list.vec16("SCT")?;
        scts.push(parse_sct(one)?);
    }
    Ok(scts)
}

fn parse_sct(bytes: &[u8]) -> Result<Sct, SctError> {
    let mut r = Tls(bytes);
    let version = r.u8("SCT version")?;
    let mut log_id = [0u8; 32];
    log_id.copy_from_slice(r.take(32, "SCT log id")?);
    let ts = r.take(8, "SCT timestamp")?;
    let mut timestamp = [0u8; 8];
    timestamp.copy_from_slice(ts);
    let extensions = r.vec16("SCT extensions")?.to_vec();
    let hash_algorithm = r.u8("SCT hash algorithm")?;
    let signature_algorithm = r.u8("SCT signature algorithm")?;
    let signature = r.vec16("SCT signature")?.to_vec();
    if !r.0.is_empty() {
        return Err(SctError::Malformed("trailing bytes after an SCT".into()));
    }
    Ok(Sct {
        version,
        log_id,
        timestamp_ms: u64::from_be_bytes(timestamp),
        extensions,
        hash_algorithm,
        signature_algorithm,
        signature,
    })
}

/// Encodes SCTs as the DER content of the SCT list extension (an OCTET STRING holding
/// the TLS list): what a CA embeds. For tests and tools that build certificates.
pub fn encode_sct_list_extension(scts: &[Sct]) -> Vec<u8> {
    let mut list = Vec::new();
    for sct in scts {
        let mut one = vec![sct.version];
        one.extend_from_slice(&sct.log_id);
        one.extend_from_slice(&sct.timestamp_ms.to_be_bytes());
        push_vec16(&mut one, &sct.extensions);
        one.push(sct.hash_algorithm);
        one.push(sct.signature_algorithm);
        push_vec16(&mut one, &sct.signature);
        push_vec16(&mut list, &one);
    }
    let mut tls = Vec::new();
    push_vec16(&mut tls, &list);
    OctetString::new(tls)
        .and_then(|o| o.to_der())
        .unwrap_or_default()
}

fn push_vec16(out: &mut Vec<u8>, bytes: &[u8]) {
    let n = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::{TrustedRoot, Validity};
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
    use base64::Engine as _;
    use rcgen::{
        BasicConstraints as RcgenBasicConstraints, CertificateParams, CertifiedIssuer,
        CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
        SerialNumber, date_time_ymd,
    };

    /// 2025-01-01T00:00:00Z in milliseconds.
    const AT_MS: u64 = 1_735_689_600_000;
    const SCT_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2];

    fn spki(pair: &KeyPair) -> Vec<u8> {
        PublicKey::from_pem(&pair.public_key_pem()).unwrap()[0]
            .spki_der()
            .to_vec()
    }

    struct Log {
        signer: EcdsaKeyPair,
        key: PublicKey,
    }

    impl Log {
        fn new() -> Log {
            let pair = KeyPair::generate().unwrap();
            let signer = EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_ASN1_SIGNING,
                pair.serialize_der().as_slice(),
            )
            .unwrap();
            let key = PublicKey::from_spki_der(&spki(&pair)).unwrap();
            Log { signer, key }
        }

        fn log_id(&self) -> [u8; 32] {
            Sha256::digest(self.key.spki_der()).into()
        }

        fn trusted(&self) -> Vec<TrustedLogKey<PublicKey>> {
            vec![TrustedLogKey {
                key: self.key.clone(),
                validity: Validity::default(),
            }]
        }
    }

    struct Issued {
        leaf_der: Vec<u8>,
        issuer_spki: Vec<u8>,
    }

    fn leaf_params(sct: Option<Vec<u8>>) -> CertificateParams {
        let mut p = CertificateParams::default();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.serial_number = Some(SerialNumber::from_slice(&[0x42, 0x17]));
        p.subject_alt_names = vec![SanType::Rfc822Name("dev@example.com".try_into().unwrap())];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        p.not_before = date_time_ymd(2024, 12, 31);
        p.not_after = date_time_ymd(2025, 1, 2);
        if let Some(content) = sct {
            p.custom_extensions = vec![CustomExtension::from_oid_content(SCT_OID, content)];
        }
        p
    }

    /// A leaf with an SCT made by `log` with `edit` applied after signing; the
    /// precertificate is built exactly as verification rebuilds it.
    fn issue(log: &Log, edit: impl Fn(&mut Sct)) -> Issued {
        let mut ca = CertificateParams::default();
        ca.distinguished_name.push(DnType::CommonName, "ca");
        ca.is_ca = IsCa::Ca(RcgenBasicConstraints::Unconstrained);
        ca.not_before = date_time_ymd(2024, 1, 1);
        ca.not_after = date_time_ymd(2026, 1, 1);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let mut sct = Sct {
            version: 0,
            log_id: log.log_id(),
            timestamp_ms: AT_MS,
            extensions: Vec::new(),
            hash_algorithm: 4,
            signature_algorithm: 3,
            signature: vec![0; 70],
        };
        // Placeholder SCT: the precertificate does not depend on the extension's value.
        let placeholder = leaf_params(Some(encode_sct_list_extension(&[sct.clone()])))
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let tbs = precertificate_tbs(placeholder.der()).unwrap();
        let issuer_spki = spki(ca.key());
        let hash: [u8; 32] = Sha256::digest(&issuer_spki).into();
        let data = sct.signed_data(&hash, &tbs);
        sct.signature = log
            .signer
            .sign(&SystemRandom::new(), &data)
            .unwrap()
            .as_ref()
            .to_vec();
        edit(&mut sct);
        let leaf = leaf_params(Some(encode_sct_list_extension(&[sct])))
            .signed_by(&leaf_key, &ca)
            .unwrap();
        Issued {
            leaf_der: leaf.der().to_vec(),
            issuer_spki,
        }
    }

    #[test]
    fn a_valid_embedded_sct_verifies() {
        let log = Log::new();
        let issued = issue(&log, |_| {});
        let verified =
            verify_embedded_scts(&issued.leaf_der, &issued.issuer_spki, &log.trusted()).unwrap();
        assert_eq!(verified.timestamp_ms, AT_MS);
        assert_eq!(verified.log_id, hex::encode(log.log_id()));
        // The precertificate is bound to the issuer.
        let other = spki(&KeyPair::generate().unwrap());
        assert!(matches!(
            verify_embedded_scts(&issued.leaf_der, &other, &log.trusted()),
            Err(SctError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn wrong_key_tampered_timestamp_unknown_log_and_validity() {
        let log = Log::new();
        // A log key with the SCT's log id but another key cannot exist; a foreign key
        // trusted under its own id leaves the SCT's log unknown.
        let issued = issue(&log, |_| {});
        let foreign = Log::new();
        assert!(matches!(
            verify_embedded_scts(&issued.leaf_der, &issued.issuer_spki, &foreign.trusted()),
            Err(SctError::UnknownLog { .. })
        ));
        // An SCT naming the trusted log but signed by another key.
        let forged = issue(&foreign, |sct| sct.log_id = log.log_id());
        assert!(matches!(
            verify_embedded_scts(&forged.leaf_der, &forged.issuer_spki, &log.trusted()),
            Err(SctError::InvalidSignature { .. })
        ));
        let tampered = issue(&log, |sct| sct.timestamp_ms += 1);
        assert!(matches!(
            verify_embedded_scts(&tampered.leaf_der, &tampered.issuer_spki, &log.trusted()),
            Err(SctError::InvalidSignature { .. })
        ));
        let unknown = issue(&log, |sct| sct.log_id = [7; 32]);
        let err = verify_embedded_scts(&unknown.leaf_der, &unknown.issuer_spki, &log.trusted())
            .unwrap_err();
        assert_eq!(
            err,
            SctError::UnknownLog {
                log_id: hex::encode([7u8; 32])
            }
        );
        let expired = vec![TrustedLogKey {
            key: log.key.clone(),
            validity: Validity {
                start: None,
                end: Some(1_700_000_000),
            },
        }];
        assert!(matches!(
            verify_embedded_scts(&issued.leaf_der, &issued.issuer_spki, &expired),
            Err(SctError::LogNotValidAt { .. })
        ));
        assert_eq!(
            verify_embedded_scts(&issued.leaf_der, &issued.issuer_spki, &[]),
            Err(SctError::NoLogKeys)
        );
    }

    #[test]
    fn a_certificate_without_an_sct_is_refused() {
        let log = Log::new();
        let ca = CertifiedIssuer::self_signed(
            CertificateParams::new(vec!["ca".to_owned()]).unwrap(),
            KeyPair::generate().unwrap(),
        )
        .unwrap();
        let leaf = leaf_params(None)
            .signed_by(&KeyPair::generate().unwrap(), &ca)
            .unwrap();
        let err = verify_embedded_scts(leaf.der(), &spki(ca.key()), &log.trusted()).unwrap_err();
        assert_eq!(err, SctError::NoSct);
        assert!(err.to_string().contains("no embedded SCT"), "{err}");
        assert!(err.to_string().contains("ignoreSCT"), "{err}");
        // A broken list is malformed, not absent.
        let mut broken = leaf_params(None);
        broken.custom_extensions = vec![CustomExtension::from_oid_content(
            SCT_OID,
            vec![0x04, 0x03, 0x00, 0x05, 0x00],
        )];
        let leaf = broken
            .signed_by(&KeyPair::generate().unwrap(), &ca)
            .unwrap();
        assert!(matches!(
            embedded_scts(leaf.der()),
            Err(SctError::Malformed(_))
        ));
    }

    /// Real Fulcio leaves: the SCT list, precertificate and issuer key hash as CT logs
    /// signed them (one with a Static CT extension, one RFC 6962).
    #[test]
    fn real_fulcio_leaves_verify_with_the_trusted_roots_ct_keys() {
        let Some(vectors) = imagegate_testkit::vectors_dir() else {
            eprintln!("skipped: no shared vectors");
            return;
        };
        let cases = [
            (
                "sigstore-conformance/bundle-verify/bundle-with-sct-with-extensions/bundle.sigstore.json",
                "sigstore-conformance/bundle-verify/bundle-with-sct-with-extensions/trusted_root.json",
                true,
            ),
            (
                "cosign-bundle/cosign-oci-attestation/oci-attestation.sigstore.json",
                "cosign-bundle/cosign-oci-attestation/trusted_root_pgi.json",
                false,
            ),
        ];
        for (bundle, root, extensions) in cases {
            let bundle: serde_json::Value =
                serde_json::from_slice(&std::fs::read(vectors.join(bundle)).unwrap()).unwrap();
            let material = &bundle["verificationMaterial"];
            let raw = material["certificate"]["rawBytes"]
                .as_str()
                .or_else(|| {
                    material["x509CertificateChain"]["certificates"][0]["rawBytes"].as_str()
                })
                .unwrap();
            let leaf_der = base64::engine::general_purpose::STANDARD
                .decode(raw)
                .unwrap();
            let root = TrustedRoot::from_file(&vectors.join(root)).unwrap();
            let scts = embedded_scts(&leaf_der).unwrap();
            assert_eq!(!scts[0].extensions.is_empty(), extensions, "{scts:?}");
            let leaf_pem = crate::pem::encode("CERTIFICATE", &leaf_der);
            let at = i64::try_from(scts[0].timestamp_ms / 1000).unwrap();
            let roots: String = root
                .fulcio_authorities()
                .iter()
                .map(|ca| ca.root_pem())
                .collect();
            let intermediates: String = root
                .fulcio_authorities()
                .iter()
                .map(|ca| ca.intermediates_pem())
                .collect();
            let verified =
                crate::verify_certificate_chain(&leaf_pem, &intermediates, &roots, at).unwrap();
            let sct = verify_embedded_scts(&leaf_der, &verified.issuer_spki_der, root.ctlog_keys())
                .unwrap();
            assert_eq!(sct.timestamp_ms, scts[0].timestamp_ms);
            // Not with the leaf's own key as the issuer key, nor a root without that log.
            assert!(matches!(
                verify_embedded_scts(&leaf_der, verified.public_key.spki_der(), root.ctlog_keys()),
                Err(SctError::InvalidSignature { .. })
            ));
            let foreign = Log::new();
            assert!(matches!(
                verify_embedded_scts(&leaf_der, &verified.issuer_spki_der, &foreign.trusted()),
                Err(SctError::UnknownLog { .. })
            ));
        }
    }
}
