//! Public keys of certificates and the signature algorithms the Notary Project allows,
//! verified with aws-lc-rs (crate-private).

use std::fmt;

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use const_oid::ObjectIdentifier;
use der::Decode as _;
use der::asn1::UintRef;
use spki::SubjectPublicKeyInfoRef;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
pub(crate) const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
pub(crate) const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// SHA-2 digests used by signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

/// The kind and size of a certificate's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa { bits: usize },
    P256,
    P384,
    P521,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Rsa { bits } => write!(f, "RSA-{bits}"),
            KeyKind::P256 => f.write_str("EC P-256"),
            KeyKind::P384 => f.write_str("EC P-384"),
            KeyKind::P521 => f.write_str("EC P-521"),
        }
    }
}

/// A certificate's public key as aws-lc-rs takes it.
#[derive(Debug, Clone)]
pub(crate) struct CertKey {
    pub kind: KeyKind,
    /// PKCS#1 RSAPublicKey or the uncompressed EC point.
    raw: Vec<u8>,
}

#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: UintRef<'a>,
    #[allow(dead_code)] // decoded to validate the structure
    exponent: UintRef<'a>,
}

impl CertKey {
    /// Reads a SubjectPublicKeyInfo (DER).
    pub fn from_spki(der: &[u8]) -> Result<CertKey, String> {
        let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|e| e.to_string())?;
        let raw = spki
            .subject_public_key
            .as_bytes()
            .ok_or("public key has unused bits")?
            .to_vec();
        let kind = match spki.algorithm.oid {
            RSA_ENCRYPTION => {
                let key = RsaPublicKey::from_der(&raw).map_err(|e| e.to_string())?;
                let modulus = key.modulus.as_bytes();
                let bits = match modulus.first() {
                    Some(first) => modulus.len() * 8 - first.leading_zeros() as usize,
                    None => 0,
                };
                KeyKind::Rsa { bits }
            }
            EC_PUBLIC_KEY => {
                let curve: ObjectIdentifier = spki
                    .algorithm
                    .parameters
                    .ok_or("EC key without curve")?
                    .decode_as()
                    .map_err(|e| e.to_string())?;
                match curve {
                    P256 => KeyKind::P256,
                    P384 => KeyKind::P384,
                    P521 => KeyKind::P521,
                    other => return Err(format!("unsupported EC curve {other}")),
                }
            }
            other => return Err(format!("unsupported key algorithm {other}")),
        };
        Ok(CertKey { kind, raw })
    }

    /// Verifies with a fixed aws-lc-rs algorithm.
    fn verify_with(&self, alg: &'static dyn VerificationAlgorithm, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(alg, &self.raw)
            .verify(msg, sig)
            .is_ok()
    }

    /// Verifies an X.509 or CMS signature given its algorithm OID (and, for CMS signers
    /// that name only `rsaEncryption`, the digest algorithm OID).
    pub fn verify_asn1(
        &self,
        algorithm: ObjectIdentifier,
        digest: Option<ObjectIdentifier>,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), String> {
        let hash = match algorithm {
            SHA256_WITH_RSA | ECDSA_SHA256 => Some(Hash::Sha256),
            SHA384_WITH_RSA | ECDSA_SHA384 => Some(Hash::Sha384),
            SHA512_WITH_RSA | ECDSA_SHA512 => Some(Hash::Sha512),
            RSA_ENCRYPTION | RSASSA_PSS => digest.and_then(hash_of_oid),
            _ => None,
        };
        let ok = match (self.kind, algorithm, hash) {
            (KeyKind::Rsa { .. }, RSASSA_PSS, _) => {
                // The PSS parameters name the hash; every SHA-2 choice is acceptable, so
                // the three are tried rather than parsing RSASSA-PSS-params.
                [
                    &signature::RSA_PSS_2048_8192_SHA256,
                    &signature::RSA_PSS_2048_8192_SHA384,
                    &signature::RSA_PSS_2048_8192_SHA512,
                ]
                .into_iter()
                .any(|alg| self.verify_with(alg, msg, sig))
            }
            (
                KeyKind::Rsa { .. },
                SHA256_WITH_RSA | SHA384_WITH_RSA | SHA512_WITH_RSA | RSA_ENCRYPTION,
                Some(hash),
            ) => {
                let alg: &'static dyn VerificationAlgorithm = match hash {
                    Hash::Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Hash::Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Hash::Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                };
                self.verify_with(alg, msg, sig)
            }
            (
                KeyKind::P256 | KeyKind::P384 | KeyKind::P521,
                ECDSA_SHA256 | ECDSA_SHA384 | ECDSA_SHA512,
                Some(hash),
            ) => {
                let alg: &'static dyn VerificationAlgorithm = match (self.kind, hash) {
                    (KeyKind::P256, Hash::Sha256) => &signature::ECDSA_P256_SHA256_ASN1,
                    (KeyKind::P256, Hash::Sha384) => &signature::ECDSA_P256_SHA384_ASN1,
                    (KeyKind::P256, Hash::Sha512) => &signature::ECDSA_P256_SHA512_ASN1,
                    (KeyKind::P384, Hash::Sha256) => &signature::ECDSA_P384_SHA256_ASN1,
                    (KeyKind::P384, Hash::Sha384) => &signature::ECDSA_P384_SHA384_ASN1,
                    (KeyKind::P384, Hash::Sha512) => &signature::ECDSA_P384_SHA512_ASN1,
                    (_, Hash::Sha256) => &signature::ECDSA_P521_SHA256_ASN1,
                    (_, Hash::Sha384) => &signature::ECDSA_P521_SHA384_ASN1,
                    (_, Hash::Sha512) => &signature::ECDSA_P521_SHA512_ASN1,
                };
                self.verify_with(alg, msg, sig)
            }
            _ => {
                return Err(format!(
                    "unsupported signature algorithm {algorithm} for a {} key",
                    self.kind
                ));
            }
        };
        if ok {
            Ok(())
        } else {
            Err("signature does not verify".into())
        }
    }
}

/// The signature algorithms of Notary envelopes (JWS names; COSE uses the same set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// ECDSA P-521 with SHA-512.
    Es512,
}

impl SignatureAlgorithm {
    /// From the JWS `alg` header.
    pub(crate) fn from_jws(name: &str) -> Option<Self> {
        Some(match name {
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "ES512" => Self::Es512,
            _ => return None,
        })
    }

    /// From the COSE `alg` header (IANA COSE algorithm numbers).
    pub(crate) fn from_cose(value: i64) -> Option<Self> {
        Some(match value {
            -37 => Self::Ps256,
            -38 => Self::Ps384,
            -39 => Self::Ps512,
            -7 => Self::Es256,
            -35 => Self::Es384,
            -36 => Self::Es512,
            _ => return None,
        })
    }

    /// The JWS name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Es512 => "ES512",
        }
    }

    /// The algorithm the Notary Project assigns to a key (its key spec table): RSA
    /// 2048/3072/4096 → PS256/384/512, EC P-256/384/521 → ES256/384/512.
    pub(crate) fn for_key(kind: KeyKind) -> Option<Self> {
        Some(match kind {
            KeyKind::Rsa { bits: 2048 } => Self::Ps256,
            KeyKind::Rsa { bits: 3072 } => Self::Ps384,
            KeyKind::Rsa { bits: 4096 } => Self::Ps512,
            KeyKind::P256 => Self::Es256,
            KeyKind::P384 => Self::Es384,
            KeyKind::P521 => Self::Es512,
            KeyKind::Rsa { .. } => return None,
        })
    }

    /// Verifies an envelope signature (ECDSA in the fixed `r‖s` form JWS and COSE use).
    pub(crate) fn verify(self, key: &CertKey, msg: &[u8], sig: &[u8]) -> bool {
        let alg: &'static dyn VerificationAlgorithm = match self {
            Self::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
            Self::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
            Self::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
            Self::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
            Self::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
            Self::Es512 => &signature::ECDSA_P521_SHA512_FIXED,
        };
        key.verify_with(alg, msg, sig)
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn hash_of_oid(oid: ObjectIdentifier) -> Option<Hash> {
    match oid {
        SHA256 => Some(Hash::Sha256),
        SHA384 => Some(Hash::Sha384),
        SHA512 => Some(Hash::Sha512),
        _ => None,
    }
}

/// Digest of `data` with the hash named by `oid` (SHA-1 only where a caller allows it).
pub(crate) fn digest(oid: ObjectIdentifier, data: &[u8]) -> Option<Vec<u8>> {
    use aws_lc_rs::digest;
    let alg = match oid {
        SHA1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        SHA256 => &digest::SHA256,
        SHA384 => &digest::SHA384,
        SHA512 => &digest::SHA512,
        _ => return None,
    };
    Some(digest::digest(alg, data).as_ref().to_vec())
}
