//! Public keys: PEM/SPKI parsing, fingerprints and signature verification.
//!
//! Supported keys: ECDSA P-256, P-384 and P-521 (ASN.1/DER signatures), RSA of 2048 to
//! 8192 bits (PKCS#1 v1.5 and PSS signatures) and Ed25519. Keys are parsed from
//! SubjectPublicKeyInfo DER (`PUBLIC KEY` PEM blocks) or PKCS#1 (`RSA PUBLIC KEY`
//! blocks).
//!
//! Digest choice: cosign signs with SHA-256 regardless of the key, while newer cosign
//! uses SHA-384 for P-384 and SHA-512 for P-521 keys. A key without a pinned digest
//! ([`PublicKey::with_hash`]) therefore accepts its natural digest first and then the
//! other SHA-2 digests (SHA-256, SHA-384, SHA-512). A pinned digest (Kyverno's
//! `signatureAlgorithm`) is the only one tried. Ed25519 signs the message itself, so the
//! digest setting does not apply to it.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::signature::{self, ParsedPublicKey, UnparsedPublicKey, VerificationAlgorithm};
use sha2::Digest as _;
use spki::der::asn1::{AnyRef, BitStringRef, UintRef};
use spki::der::{Decode as _, Encode as _, Reader as _, SliceReader};
use spki::{AlgorithmIdentifierRef, ObjectIdentifier, SubjectPublicKeyInfoRef};
use thiserror::Error;

use crate::pem;

/// Largest PEM text [`PublicKey::from_pem`] accepts (1 MiB).
pub const MAX_PEM_SIZE: usize = 1024 * 1024;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// Smallest RSA modulus accepted, in bits.
const RSA_MIN_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits.
const RSA_MAX_BITS: usize = 8192;

/// Why a public key could not be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The PEM text is larger than [`MAX_PEM_SIZE`].
    #[error("public key PEM is too large: {size} bytes (limit {limit} bytes)")]
    PemTooLarge {
        /// Size of the input.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The text holds no PEM block at all.
    #[error("no PEM block found: expected \"-----BEGIN PUBLIC KEY-----\"")]
    NoPemBlock,
    /// The PEM structure or its base64 is broken.
    #[error("malformed PEM: {0}")]
    MalformedPem(String),
    /// A PEM block is not a public key.
    #[error("PEM block {index} is a \"{label}\", expected \"PUBLIC KEY\" or \"RSA PUBLIC KEY\"")]
    NotAPublicKey {
        /// Block index (0-based).
        index: usize,
        /// The block's label.
        label: String,
    },
    /// A PEM block holds a key that could not be used.
    #[error("PEM block {index}: {source}")]
    InBlock {
        /// Block index (0-based).
        index: usize,
        /// What is wrong with that key.
        source: Box<KeyError>,
    },
    /// The DER is not a SubjectPublicKeyInfo.
    #[error("malformed SubjectPublicKeyInfo DER: {0}")]
    MalformedSpki(String),
    /// The DER is not a PKCS#1 RSAPublicKey.
    #[error("malformed PKCS#1 RSA public key DER: {0}")]
    MalformedRsaKey(String),
    /// The key algorithm is not supported.
    #[error(
        "unsupported public key algorithm {oid} (supported: ECDSA P-256/P-384/P-521, RSA, Ed25519)"
    )]
    UnsupportedAlgorithm {
        /// Algorithm OID of the SubjectPublicKeyInfo.
        oid: String,
    },
    /// The elliptic curve is not supported.
    #[error("unsupported elliptic curve {oid} (supported: P-256, P-384, P-521)")]
    UnsupportedCurve {
        /// Curve OID of the SubjectPublicKeyInfo.
        oid: String,
    },
    /// The RSA modulus has an unsupported size.
    #[error(
        "unsupported RSA key size: {bits} bits (supported: {RSA_MIN_BITS} to {RSA_MAX_BITS} bits)"
    )]
    UnsupportedRsaKeySize {
        /// Modulus size in bits.
        bits: usize,
    },
    /// The key material is not a valid key of its algorithm (e.g. a point not on the curve).
    #[error("invalid {algorithm} public key: {reason}")]
    InvalidKey {
        /// The algorithm the key claims to be.
        algorithm: KeyAlgorithm,
        /// What the crypto library reported.
        reason: String,
    },
    /// Unknown name of a hash algorithm.
    #[error("unknown hash algorithm \"{0}\" (expected sha224, sha256, sha384 or sha512)")]
    UnknownHashAlgorithm(String),
}

/// Why a signature was not accepted by a key.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// The signature does not verify with the key.
    #[error("invalid signature: the signature does not verify with {algorithm} key {fingerprint}")]
    InvalidSignature {
        /// The key's algorithm.
        algorithm: KeyAlgorithm,
        /// The key's fingerprint (see [`PublicKey::fingerprint`]).
        fingerprint: String,
    },
    /// The pinned hash algorithm cannot be used with the key.
    #[error("hash algorithm {hash} is not supported with {algorithm} keys")]
    UnsupportedHash {
        /// The pinned hash.
        hash: HashAlgorithm,
        /// The key's algorithm.
        algorithm: KeyAlgorithm,
    },
}

/// A digest algorithm a signature may have been made with (Kyverno's
/// `signatureAlgorithm`: `sha224`, `sha256`, `sha384`, `sha512`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-224 (only usable with P-521 keys; rejected with a clear error otherwise).
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlgorithm {
    /// The lowercase name as Kyverno writes it (`sha256`).
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgorithm::Sha224 => "sha224",
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha384 => "sha384",
            HashAlgorithm::Sha512 => "sha512",
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HashAlgorithm {
    type Err = KeyError;

    /// Parses `sha224`, `sha256`, `sha384` or `sha512` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "sha224" => Ok(HashAlgorithm::Sha224),
            "sha256" => Ok(HashAlgorithm::Sha256),
            "sha384" => Ok(HashAlgorithm::Sha384),
            "sha512" => Ok(HashAlgorithm::Sha512),
            _ => Err(KeyError::UnknownHashAlgorithm(s.to_owned())),
        }
    }
}

/// The algorithm of a [`PublicKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// ECDSA on NIST P-521.
    EcdsaP521,
    /// RSA with a modulus of `bits` bits.
    Rsa {
        /// Modulus size in bits.
        bits: usize,
    },
    /// Ed25519.
    Ed25519,
}

impl KeyAlgorithm {
    /// The digest this kind of key is naturally used with.
    fn natural_hash(self) -> HashAlgorithm {
        match self {
            KeyAlgorithm::EcdsaP384 => HashAlgorithm::Sha384,
            KeyAlgorithm::EcdsaP521 => HashAlgorithm::Sha512,
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::Rsa { .. } | KeyAlgorithm::Ed25519 => {
                HashAlgorithm::Sha256
            }
        }
    }

    /// The aws-lc-rs algorithms that verify this kind of key with `hash`; `None` when the
    /// combination is not supported.
    fn verification_algorithms(
        self,
        hash: HashAlgorithm,
    ) -> Option<&'static [&'static dyn VerificationAlgorithm]> {
        use HashAlgorithm::{Sha224, Sha256, Sha384, Sha512};
        use KeyAlgorithm::{EcdsaP256, EcdsaP384, EcdsaP521, Ed25519, Rsa};
        Some(match (self, hash) {
            (EcdsaP256, Sha256) => &[&signature::ECDSA_P256_SHA256_ASN1],
            (EcdsaP256, Sha384) => &[&signature::ECDSA_P256_SHA384_ASN1],
            (EcdsaP256, Sha512) => &[&signature::ECDSA_P256_SHA512_ASN1],
            (EcdsaP384, Sha256) => &[&signature::ECDSA_P384_SHA256_ASN1],
            (EcdsaP384, Sha384) => &[&signature::ECDSA_P384_SHA384_ASN1],
            (EcdsaP384, Sha512) => &[&signature::ECDSA_P384_SHA512_ASN1],
            (EcdsaP521, Sha224) => &[&signature::ECDSA_P521_SHA224_ASN1],
            (EcdsaP521, Sha256) => &[&signature::ECDSA_P521_SHA256_ASN1],
            (EcdsaP521, Sha384) => &[&signature::ECDSA_P521_SHA384_ASN1],
            (EcdsaP521, Sha512) => &[&signature::ECDSA_P521_SHA512_ASN1],
            (Rsa { .. }, Sha256) => &[
                &signature::RSA_PKCS1_2048_8192_SHA256,
                &signature::RSA_PSS_2048_8192_SHA256,
            ],
            (Rsa { .. }, Sha384) => &[
                &signature::RSA_PKCS1_2048_8192_SHA384,
                &signature::RSA_PSS_2048_8192_SHA384,
            ],
            (Rsa { .. }, Sha512) => &[
                &signature::RSA_PKCS1_2048_8192_SHA512,
                &signature::RSA_PSS_2048_8192_SHA512,
            ],
            (Ed25519, _) => &[&signature::ED25519],
            (EcdsaP256 | EcdsaP384 | Rsa { .. }, Sha224) => return None,
        })
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyAlgorithm::EcdsaP256 => f.write_str("ECDSA P-256"),
            KeyAlgorithm::EcdsaP384 => f.write_str("ECDSA P-384"),
            KeyAlgorithm::EcdsaP521 => f.write_str("ECDSA P-521"),
            KeyAlgorithm::Rsa { bits } => write!(f, "RSA-{bits}"),
            KeyAlgorithm::Ed25519 => f.write_str("Ed25519"),
        }
    }
}

/// A verification key: its SubjectPublicKeyInfo, algorithm and optional pinned digest.
#[derive(Clone)]
pub struct PublicKey {
    /// SubjectPublicKeyInfo DER (canonical re-encoding for PKCS#1 input).
    spki: Vec<u8>,
    /// The raw key as aws-lc-rs expects it: EC point, PKCS#1 RSAPublicKey, Ed25519 bytes.
    raw: Vec<u8>,
    algorithm: KeyAlgorithm,
    hash: Option<HashAlgorithm>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("algorithm", &self.algorithm)
            .field("hash", &self.hash)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki == other.spki && self.hash == other.hash
    }
}

impl Eq for PublicKey {}

impl PublicKey {
    /// Reads every PEM block of `pem` as one key, in order.
    ///
    /// `PUBLIC KEY` (SubjectPublicKeyInfo) and `RSA PUBLIC KEY` (PKCS#1) blocks are
    /// accepted; text outside blocks is ignored. No block, a broken block, another kind
    /// of block or an unsupported key is an error naming the block index.
    pub fn from_pem(pem: &str) -> Result<Vec<PublicKey>, KeyError> {
        if pem.len() > MAX_PEM_SIZE {
            return Err(KeyError::PemTooLarge {
                size: pem.len(),
                limit: MAX_PEM_SIZE,
            });
        }
        let blocks = pem::parse_blocks(pem).map_err(|e| KeyError::MalformedPem(e.to_string()))?;
        if blocks.is_empty() {
            return Err(KeyError::NoPemBlock);
        }
        blocks
            .into_iter()
            .enumerate()
            .map(|(index, block)| {
                let key = match block.label.as_str() {
                    "PUBLIC KEY" => PublicKey::from_spki_der(&block.der),
                    "RSA PUBLIC KEY" => PublicKey::from_pkcs1_rsa_der(&block.der),
                    _ => {
                        return Err(KeyError::NotAPublicKey {
                            index,
                            label: block.label,
                        });
                    }
                };
                key.map_err(|source| KeyError::InBlock {
                    index,
                    source: Box::new(source),
                })
            })
            .collect()
    }

    /// Reads a key from SubjectPublicKeyInfo DER.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        let info = SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| KeyError::MalformedSpki(e.to_string()))?;
        let raw = info.subject_public_key.as_bytes().ok_or_else(|| {
            KeyError::MalformedSpki("the public key BIT STRING has unused bits".into())
        })?;
        let oid = info.algorithm.oid;
        let algorithm = if oid == OID_EC_PUBLIC_KEY {
            let curve = info.algorithm.parameters_oid().map_err(|_| {
                KeyError::MalformedSpki("EC key without a named curve parameter".into())
            })?;
            match curve {
                OID_P256 => KeyAlgorithm::EcdsaP256,
                OID_P384 => KeyAlgorithm::EcdsaP384,
                OID_P521 => KeyAlgorithm::EcdsaP521,
                other => {
                    return Err(KeyError::UnsupportedCurve {
                        oid: other.to_string(),
                    });
                }
            }
        } else if oid == OID_RSA_ENCRYPTION {
            KeyAlgorithm::Rsa {
                bits: rsa_modulus_bits(raw)?,
            }
        } else if oid == OID_ED25519 {
            if info.algorithm.parameters.is_some() {
                return Err(KeyError::MalformedSpki(
                    "Ed25519 key with algorithm parameters".into(),
                ));
            }
            KeyAlgorithm::Ed25519
        } else {
            return Err(KeyError::UnsupportedAlgorithm {
                oid: oid.to_string(),
            });
        };
        if let KeyAlgorithm::Rsa { bits } = algorithm
            && !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits)
        {
            return Err(KeyError::UnsupportedRsaKeySize { bits });
        }
        // Validate the key material once (point on curve, modulus/exponent sane).
        let natural = algorithm
            .verification_algorithms(algorithm.natural_hash())
            .and_then(|algs| algs.first().copied())
            .ok_or_else(|| KeyError::InvalidKey {
                algorithm,
                reason: "no verification algorithm".into(),
            })?;
        ParsedPublicKey::new(natural, raw).map_err(|e| KeyError::InvalidKey {
            algorithm,
            reason: e.to_string(),
        })?;
        Ok(PublicKey {
            spki: der.to_vec(),
            raw: raw.to_vec(),
            algorithm,
            hash: None,
        })
    }

    /// Reads an RSA key from PKCS#1 `RSAPublicKey` DER (the body of an
    /// `RSA PUBLIC KEY` PEM block); its SPKI is the canonical `rsaEncryption` wrapping.
    pub fn from_pkcs1_rsa_der(der: &[u8]) -> Result<PublicKey, KeyError> {
        rsa_modulus_bits(der)?;
        let info = SubjectPublicKeyInfoRef {
            algorithm: AlgorithmIdentifierRef {
                oid: OID_RSA_ENCRYPTION,
                parameters: Some(AnyRef::NULL),
            },
            subject_public_key: BitStringRef::from_bytes(der)
                .map_err(|e| KeyError::MalformedRsaKey(e.to_string()))?,
        };
        let spki = info
            .to_der()
            .map_err(|e| KeyError::MalformedRsaKey(e.to_string()))?;
        PublicKey::from_spki_der(&spki)
    }

    /// Pins the digest algorithm signatures must use (Kyverno `signatureAlgorithm`).
    pub fn with_hash(mut self, hash: HashAlgorithm) -> PublicKey {
        self.hash = Some(hash);
        self
    }

    /// The pinned digest algorithm, if any.
    pub fn hash(&self) -> Option<HashAlgorithm> {
        self.hash
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// Verifies `signature` over `message`.
    ///
    /// ECDSA signatures are ASN.1/DER encoded; RSA signatures are tried as PKCS#1 v1.5
    /// and as PSS. Without a pinned digest the key's natural digest is tried first, then
    /// the other SHA-2 digests (see the module documentation).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        let hashes: Vec<HashAlgorithm> = match self.hash {
            Some(hash) => vec![hash],
            None => {
                let natural = self.algorithm.natural_hash();
                let mut hashes = vec![natural];
                hashes.extend(
                    [
                        HashAlgorithm::Sha256,
                        HashAlgorithm::Sha384,
                        HashAlgorithm::Sha512,
                    ]
                    .into_iter()
                    .filter(|h| *h != natural),
                );
                if self.algorithm == KeyAlgorithm::Ed25519 {
                    hashes.truncate(1);
                }
                hashes
            }
        };
        for hash in hashes {
            let algorithms = self.algorithm.verification_algorithms(hash).ok_or(
                SignatureError::UnsupportedHash {
                    hash,
                    algorithm: self.algorithm,
                },
            )?;
            for algorithm in algorithms {
                if UnparsedPublicKey::new(*algorithm, &self.raw)
                    .verify(message, signature)
                    .is_ok()
                {
                    return Ok(());
                }
            }
        }
        Err(SignatureError::InvalidSignature {
            algorithm: self.algorithm,
            fingerprint: self.fingerprint(),
        })
    }

    /// `sha256:<hex>` of the SubjectPublicKeyInfo DER.
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", self.spki_sha256_hex())
    }

    /// Lowercase hex SHA-256 of the SubjectPublicKeyInfo DER (a Rekor log id).
    pub fn spki_sha256_hex(&self) -> String {
        hex::encode(sha2::Sha256::digest(&self.spki))
    }

    /// The SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }
}

/// Reads the modulus size of a PKCS#1 `RSAPublicKey`.
fn rsa_modulus_bits(der: &[u8]) -> Result<usize, KeyError> {
    let malformed = |e: spki::der::Error| KeyError::MalformedRsaKey(e.to_string());
    let mut reader = SliceReader::new(der).map_err(malformed)?;
    let modulus = reader
        .sequence(|seq| {
            let modulus = UintRef::decode(seq)?;
            let _exponent = UintRef::decode(seq)?;
            Ok(modulus)
        })
        .map_err(malformed)?;
    reader.finish(()).map_err(malformed)?;
    let bytes = modulus.as_bytes();
    let Some(first) = bytes.first() else {
        return Err(KeyError::MalformedRsaKey("modulus is zero".into()));
    };
    Ok(bytes.len() * 8 - first.leading_zeros() as usize)
}

/// The raw key bytes aws-lc-rs verifies with (EC point, PKCS#1 RSAPublicKey, Ed25519).
pub(crate) fn raw_key(key: &PublicKey) -> &[u8] {
    &key.raw
}

/// Verifies `signature` over `message` with any of `keys`; returns the key that did.
pub(crate) fn verify_with_any<'k>(
    keys: &'k [PublicKey],
    message: &[u8],
    signature: &[u8],
) -> Option<&'k PublicKey> {
    keys.iter()
        .find(|key| key.verify(message, signature).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};

    const MESSAGE: &[u8] = b"hello imagegate";

    fn pem_of(label: &str, der: &[u8]) -> String {
        let body = crate::encoding::encode_standard(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    fn ecdsa(
        signing: &'static signature::EcdsaSigningAlgorithm,
        message: &[u8],
    ) -> (PublicKey, Vec<u8>) {
        let pair = EcdsaKeyPair::generate(signing).unwrap();
        let spki = pair.public_key().as_der().unwrap();
        let key = PublicKey::from_spki_der(spki.as_ref()).unwrap();
        let sig = pair.sign(&SystemRandom::new(), message).unwrap();
        (key, sig.as_ref().to_vec())
    }

    #[test]
    fn ecdsa_p256_and_p384_round_trip() {
        let (key, sig) = ecdsa(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, MESSAGE);
        assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP256);
        key.verify(MESSAGE, &sig).unwrap();
        assert!(matches!(
            key.verify(b"other", &sig),
            Err(SignatureError::InvalidSignature { .. })
        ));

        let (key, sig) = ecdsa(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, MESSAGE);
        assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP384);
        key.verify(MESSAGE, &sig).unwrap();
        key.clone()
            .with_hash(HashAlgorithm::Sha384)
            .verify(MESSAGE, &sig)
            .unwrap();
        // Pinned to the wrong digest: rejected.
        assert!(
            key.clone()
                .with_hash(HashAlgorithm::Sha256)
                .verify(MESSAGE, &sig)
                .is_err()
        );
        // sha224 is unsupported for P-384, with a clear error.
        let err = key
            .with_hash(HashAlgorithm::Sha224)
            .verify(MESSAGE, &sig)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "hash algorithm sha224 is not supported with ECDSA P-384 keys"
        );

        let (key, sig) = ecdsa(&signature::ECDSA_P521_SHA512_ASN1_SIGNING, MESSAGE);
        assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP521);
        key.verify(MESSAGE, &sig).unwrap();
    }

    #[test]
    fn rsa_pkcs1_and_pss_round_trip_from_pem() {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let spki = pair.public_key().as_der().unwrap();
        let keys = PublicKey::from_pem(&pem_of("PUBLIC KEY", spki.as_ref())).unwrap();
        assert_eq!(keys.len(), 1);
        let key = &keys[0];
        assert_eq!(key.algorithm(), KeyAlgorithm::Rsa { bits: 2048 });
        let rng = SystemRandom::new();
        for (encoding, hash) in [
            (&signature::RSA_PKCS1_SHA256, HashAlgorithm::Sha256),
            (&signature::RSA_PKCS1_SHA512, HashAlgorithm::Sha512),
            (&signature::RSA_PSS_SHA256, HashAlgorithm::Sha256),
            (&signature::RSA_PSS_SHA384, HashAlgorithm::Sha384),
        ] {
            let mut sig = vec![0; pair.public_modulus_len()];
            pair.sign(encoding, &rng, MESSAGE, &mut sig).unwrap();
            key.verify(MESSAGE, &sig).unwrap();
            key.clone().with_hash(hash).verify(MESSAGE, &sig).unwrap();
            assert!(key.verify(b"tampered", &sig).is_err());
        }

        // The same key as PKCS#1 "RSA PUBLIC KEY" has the same SPKI and fingerprint.
        let info = SubjectPublicKeyInfoRef::from_der(spki.as_ref()).unwrap();
        let pkcs1 = info.subject_public_key.as_bytes().unwrap();
        let from_pkcs1 = PublicKey::from_pem(&pem_of("RSA PUBLIC KEY", pkcs1)).unwrap();
        assert_eq!(from_pkcs1[0].spki_der(), spki.as_ref());
        assert_eq!(from_pkcs1[0].fingerprint(), key.fingerprint());
    }

    #[test]
    fn ed25519_round_trip() {
        let pair = Ed25519KeyPair::generate().unwrap();
        let spki = pair.public_key().as_der().unwrap();
        let key = PublicKey::from_spki_der(spki.as_ref()).unwrap();
        assert_eq!(key.algorithm(), KeyAlgorithm::Ed25519);
        let sig = pair.sign(MESSAGE);
        key.verify(MESSAGE, sig.as_ref()).unwrap();
        // The digest setting does not apply to Ed25519.
        key.clone()
            .with_hash(HashAlgorithm::Sha512)
            .verify(MESSAGE, sig.as_ref())
            .unwrap();
        assert!(key.verify(b"tampered", sig.as_ref()).is_err());
    }

    #[test]
    fn multiple_blocks_are_multiple_keys() {
        let (a, _) = ecdsa(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, MESSAGE);
        let (b, _) = ecdsa(&signature::ECDSA_P384_SHA384_ASN1_SIGNING, MESSAGE);
        let text = format!(
            "first key\n{}second key\n{}",
            pem_of("PUBLIC KEY", a.spki_der()),
            pem_of("PUBLIC KEY", b.spki_der())
        );
        let keys = PublicKey::from_pem(&text).unwrap();
        assert_eq!(keys, vec![a, b]);
    }

    #[test]
    fn pem_errors_are_clear() {
        assert_eq!(PublicKey::from_pem(""), Err(KeyError::NoPemBlock));
        assert_eq!(
            PublicKey::from_pem("garbage \u{0} not pem"),
            Err(KeyError::NoPemBlock)
        );
        let err = PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\n%%%\n-----END PUBLIC KEY-----")
            .unwrap_err();
        assert!(
            err.to_string().starts_with("malformed PEM: PEM block 0"),
            "{err}"
        );

        let err = PublicKey::from_pem(&pem_of("PUBLIC KEY", b"not der")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("PEM block 0: malformed SubjectPublicKeyInfo DER"),
            "{err}"
        );

        let (a, _) = ecdsa(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, MESSAGE);
        let text = format!(
            "{}{}",
            pem_of("PUBLIC KEY", a.spki_der()),
            pem_of("CERTIFICATE", b"x")
        );
        assert_eq!(
            PublicKey::from_pem(&text).unwrap_err().to_string(),
            "PEM block 1 is a \"CERTIFICATE\", expected \"PUBLIC KEY\" or \"RSA PUBLIC KEY\""
        );

        let huge = "a".repeat(MAX_PEM_SIZE + 1);
        assert!(matches!(
            PublicKey::from_pem(&huge),
            Err(KeyError::PemTooLarge { .. })
        ));
    }

    #[test]
    fn unsupported_curve_and_bad_point_are_rejected() {
        let (a, _) = ecdsa(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, MESSAGE);
        // Swap the P-256 curve OID for secp256k1 (1.3.132.0.10).
        let mut der = a.spki_der().to_vec();
        let p256 = OID_P256.as_bytes();
        let pos = der.windows(p256.len()).position(|w| w == p256).unwrap();
        let k1 = ObjectIdentifier::new_unwrap("1.3.132.0.10");
        der.splice(pos - 1..pos + p256.len(), {
            let mut v = vec![k1.as_bytes().len() as u8];
            v.extend_from_slice(k1.as_bytes());
            v
        });
        // Fix the lengths of the two enclosing SEQUENCEs.
        let shrink = p256.len() - k1.as_bytes().len();
        der[1] -= shrink as u8;
        der[3] -= shrink as u8;
        assert_eq!(
            PublicKey::from_spki_der(&der),
            Err(KeyError::UnsupportedCurve {
                oid: "1.3.132.0.10".into()
            })
        );

        // A point that is not on the curve.
        let mut der = a.spki_der().to_vec();
        let last = der.len() - 1;
        der[last] ^= 0x01;
        assert!(matches!(
            PublicKey::from_spki_der(&der),
            Err(KeyError::InvalidKey { .. })
        ));
    }

    #[test]
    fn hash_algorithm_names() {
        assert_eq!("sha256".parse::<HashAlgorithm>(), Ok(HashAlgorithm::Sha256));
        assert_eq!("SHA512".parse::<HashAlgorithm>(), Ok(HashAlgorithm::Sha512));
        assert_eq!("sha224".parse::<HashAlgorithm>(), Ok(HashAlgorithm::Sha224));
        assert!("md5".parse::<HashAlgorithm>().is_err());
    }

    #[test]
    fn fingerprint_is_sha256_of_spki() {
        let (a, _) = ecdsa(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, MESSAGE);
        assert_eq!(
            a.fingerprint(),
            format!("sha256:{}", hex::encode(sha2::Sha256::digest(a.spki_der())))
        );
    }
}
