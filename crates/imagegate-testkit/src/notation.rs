//! A Notation signer for tests, written independently of `imagegate-notation`: its own
//! certificate chains (rcgen; RSA and ECDSA), JWS (JSON serialization) and COSE_Sign1
//! envelopes encoded by hand, an RFC 3161 time-stamping authority whose tokens are DER
//! encoded by hand, and pushing a signature for an image the way notation does on a
//! registry without the referrers API (the `sha256-<hex>` referrers tag schema).
//!
//! Times are Unix seconds; certificate validity has day granularity.

use std::collections::{BTreeMap, HashMap};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, RsaKeySize, date_time_ymd,
};
use sha2::{Digest as _, Sha256};

use crate::oci::{self, Descriptor, ImageIndex};
use crate::push::Pusher;
use crate::stub::Reply;

/// `artifactType` of Notation signature manifests.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
/// JWS envelope media type.
pub const JWS: &str = "application/jose+json";
/// COSE envelope media type.
pub const COSE: &str = "application/cose";
/// The Notary payload media type.
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
/// The OCI empty descriptor's media type (the config of artifact manifests).
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

/// Key types of test certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    /// RSA-2048 (signs PS256).
    Rsa2048,
    /// RSA-3072 (signs PS384).
    Rsa3072,
    /// ECDSA P-256 (signs ES256).
    EcP256,
    /// ECDSA P-384 (signs ES384).
    EcP384,
}

impl KeySpec {
    fn generate(self) -> KeyPair {
        match self {
            KeySpec::Rsa2048 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)
            }
            KeySpec::Rsa3072 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_3072)
            }
            KeySpec::EcP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeySpec::EcP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        }
        .expect("imagegate-testkit: generating a key")
    }

    /// JWS `alg` and COSE algorithm number of the Notary key spec table.
    fn algorithm(self) -> (&'static str, i64) {
        match self {
            KeySpec::Rsa2048 => ("PS256", -37),
            KeySpec::Rsa3072 => ("PS384", -38),
            KeySpec::EcP256 => ("ES256", -7),
            KeySpec::EcP384 => ("ES384", -35),
        }
    }

    /// Signs `message` as the envelope algorithm does (PSS; ECDSA in fixed `r‖s` form).
    fn sign(self, pkcs8: &[u8], message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            KeySpec::Rsa2048 | KeySpec::Rsa3072 => {
                let key = RsaKeyPair::from_pkcs8(pkcs8).expect("imagegate-testkit: RSA key");
                let padding = if self == KeySpec::Rsa2048 {
                    &signature::RSA_PSS_SHA256
                } else {
                    &signature::RSA_PSS_SHA384
                };
                let mut sig = vec![0; key.public_modulus_len()];
                key.sign(padding, &rng, message, &mut sig)
                    .expect("imagegate-testkit: RSA signing");
                sig
            }
            KeySpec::EcP256 | KeySpec::EcP384 => {
                let alg = if self == KeySpec::EcP256 {
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &signature::ECDSA_P384_SHA384_FIXED_SIGNING
                };
                let key = EcdsaKeyPair::from_pkcs8(alg, pkcs8).expect("imagegate-testkit: EC key");
                key.sign(&rng, message)
                    .expect("imagegate-testkit: EC signing")
                    .as_ref()
                    .to_vec()
            }
        }
    }
}

/// A certificate's validity, in whole days (UTC midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// First day (year, month, day).
    pub not_before: (i32, u8, u8),
    /// Last day (year, month, day).
    pub not_after: (i32, u8, u8),
}

impl Validity {
    /// 2020-01-01 to 2099-12-31: valid for any test run.
    pub fn current() -> Validity {
        Validity {
            not_before: (2020, 1, 1),
            not_after: (2099, 12, 31),
        }
    }

    /// 2020-01-01 to 2021-01-01: expired now, valid at [`Validity::EXPIRED_INSIDE`].
    pub fn expired() -> Validity {
        Validity {
            not_before: (2020, 1, 1),
            not_after: (2021, 1, 1),
        }
    }

    /// 2020-06-01T00:00:00Z, inside [`Validity::expired`].
    pub const EXPIRED_INSIDE: i64 = 1_590_969_600;
}

fn params(common_name: &str, validity: Validity) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name.push(DnType::OrganizationName, "imagegate tests");
    params.distinguished_name = name;
    let (y, m, d) = validity.not_before;
    params.not_before = date_time_ymd(y, m, d);
    let (y, m, d) = validity.not_after;
    params.not_after = date_time_ymd(y, m, d);
    params
}

/// A self-signed root CA that issues signing and TSA certificates.
pub struct NotationCa {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
}

impl NotationCa {
    /// A root CA named `common_name`, valid 2020–2099.
    pub fn new(common_name: &str, key: KeySpec) -> NotationCa {
        let key = key.generate();
        let mut params = params(common_name, Validity::current());
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params
            .self_signed(&key)
            .expect("imagegate-testkit: self-signing a CA");
        NotationCa {
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate (DER).
    pub fn der(&self) -> Vec<u8> {
        self.der.clone()
    }

    /// The CA certificate (PEM), as a policy's `cert`/`certs` holds it.
    pub fn pem(&self) -> String {
        let body = STANDARD.encode(&self.der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }

    fn issue(&self, params: CertificateParams, key: &KeyPair) -> Vec<u8> {
        params
            .signed_by(key, &self.issuer)
            .expect("imagegate-testkit: issuing a certificate")
            .der()
            .to_vec()
    }

    /// A code-signing leaf (keyUsage digitalSignature, extKeyUsage codeSigning) with the
    /// chain `[leaf, this CA]`.
    pub fn signer(&self, common_name: &str, key: KeySpec, validity: Validity) -> NotationSigner {
        let pair = key.generate();
        let mut params = params(common_name, validity);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        let leaf = self.issue(params, &pair);
        NotationSigner {
            chain: vec![leaf, self.der.clone()],
            spec: key,
            pkcs8: pair.serialize_der(),
        }
    }

    /// A time-stamping authority (ECDSA P-256, extKeyUsage timeStamping, critical)
    /// issued by this CA.
    pub fn tsa(&self, common_name: &str) -> NotationTsa {
        let pair = KeySpec::EcP256.generate();
        let mut params = params(common_name, Validity::current());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::TimeStamping];
        let cert = self.issue(params, &pair);
        NotationTsa {
            chain: vec![cert, self.der.clone()],
            pkcs8: pair.serialize_der(),
        }
    }
}

/// What to put in a signature besides the target.
#[derive(Clone, Default)]
pub struct SignOptions {
    /// `io.cncf.notary.signingTime` (Unix seconds); now when `None`.
    pub signing_time: Option<i64>,
    /// `io.cncf.notary.expiry` (Unix seconds), listed in `crit`.
    pub expiry: Option<i64>,
    /// Extra protected headers (string values) that are also listed in `crit`.
    pub extra_critical: Vec<String>,
    /// A timestamp countersignature over the signature, made by this TSA at this time.
    pub timestamp: Option<(std::sync::Arc<NotationTsa>, i64)>,
}

/// A Notation signing identity: a key and its chain, leaf first.
pub struct NotationSigner {
    chain: Vec<Vec<u8>>,
    spec: KeySpec,
    pkcs8: Vec<u8>,
}

impl NotationSigner {
    /// The chain (DER), leaf first.
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    fn payload(target: &Descriptor) -> Vec<u8> {
        let descriptor = serde_json::json!({
            "mediaType": target.media_type,
            "digest": target.digest,
            "size": target.size,
        });
        oci::to_go_json(&serde_json::json!({ "targetArtifact": descriptor }))
    }

    /// A JWS envelope (`application/jose+json`) signing `target`.
    pub fn sign_jws(&self, target: &Descriptor, options: &SignOptions) -> Vec<u8> {
        let (alg, _) = self.spec.algorithm();
        let signing_time = options.signing_time.unwrap_or_else(now);
        let mut crit = vec!["io.cncf.notary.signingScheme".to_owned()];
        let mut protected = serde_json::Map::new();
        protected.insert("alg".into(), alg.into());
        protected.insert("cty".into(), PAYLOAD_MEDIA_TYPE.into());
        protected.insert("io.cncf.notary.signingScheme".into(), "notary.x509".into());
        protected.insert(
            "io.cncf.notary.signingTime".into(),
            rfc3339(signing_time).into(),
        );
        if let Some(expiry) = options.expiry {
            protected.insert("io.cncf.notary.expiry".into(), rfc3339(expiry).into());
            crit.push("io.cncf.notary.expiry".into());
        }
        for name in &options.extra_critical {
            protected.insert(name.clone(), "x".into());
            crit.push(name.clone());
        }
        protected.insert("crit".into(), crit.into());
        let protected = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&protected).expect("JSON"));
        let payload = URL_SAFE_NO_PAD.encode(Self::payload(target));
        let signature = self
            .spec
            .sign(&self.pkcs8, format!("{protected}.{payload}").as_bytes());
        let mut header = serde_json::Map::new();
        header.insert(
            "x5c".into(),
            self.chain
                .iter()
                .map(|c| STANDARD.encode(c))
                .collect::<Vec<_>>()
                .into(),
        );
        header.insert(
            "io.cncf.notary.signingAgent".into(),
            "imagegate-testkit".into(),
        );
        if let Some((tsa, at)) = &options.timestamp {
            header.insert(
                "io.cncf.notary.timestampSignature".into(),
                STANDARD.encode(tsa.timestamp(&signature, *at)).into(),
            );
        }
        serde_json::to_vec(&serde_json::json!({
            "payload": payload,
            "protected": protected,
            "header": header,
            "signature": URL_SAFE_NO_PAD.encode(&signature),
        }))
        .expect("JSON")
    }

    /// A tagged COSE_Sign1 envelope (`application/cose`) signing `target`.
    pub fn sign_cose(&self, target: &Descriptor, options: &SignOptions) -> Vec<u8> {
        let (_, alg) = self.spec.algorithm();
        let signing_time = options.signing_time.unwrap_or_else(now);
        let mut crit = vec![cbor::text("io.cncf.notary.signingScheme")];
        let mut entries = vec![
            (cbor::int(1), cbor::int(alg)),
            (cbor::int(3), cbor::text(PAYLOAD_MEDIA_TYPE)),
            (
                cbor::text("io.cncf.notary.signingScheme"),
                cbor::text("notary.x509"),
            ),
            (
                cbor::text("io.cncf.notary.signingTime"),
                cbor::time(signing_time),
            ),
        ];
        if let Some(expiry) = options.expiry {
            entries.push((cbor::text("io.cncf.notary.expiry"), cbor::time(expiry)));
            crit.push(cbor::text("io.cncf.notary.expiry"));
        }
        for name in &options.extra_critical {
            entries.push((cbor::text(name), cbor::text("x")));
            crit.push(cbor::text(name));
        }
        entries.insert(1, (cbor::int(2), cbor::array(&crit)));
        let protected = cbor::map(&entries);
        let payload = Self::payload(target);
        let to_be_signed = cbor::array(&[
            cbor::text("Signature1"),
            cbor::bytes(&protected),
            cbor::bytes(&[]),
            cbor::bytes(&payload),
        ]);
        let signature = self.spec.sign(&self.pkcs8, &to_be_signed);
        let chain: Vec<Vec<u8>> = self.chain.iter().map(|c| cbor::bytes(c)).collect();
        let mut unprotected = vec![
            (cbor::int(33), cbor::array(&chain)),
            (
                cbor::text("io.cncf.notary.signingAgent"),
                cbor::text("imagegate-testkit"),
            ),
        ];
        if let Some((tsa, at)) = &options.timestamp {
            unprotected.push((
                cbor::text("io.cncf.notary.timestampSignature"),
                cbor::bytes(&tsa.timestamp(&signature, *at)),
            ));
        }
        cbor::tag(
            18,
            &cbor::array(&[
                cbor::bytes(&protected),
                cbor::map(&unprotected),
                cbor::bytes(&payload),
                cbor::bytes(&signature),
            ]),
        )
    }
}

/// An RFC 3161 time-stamping authority.
pub struct NotationTsa {
    chain: Vec<Vec<u8>>,
    pkcs8: Vec<u8>,
}

impl NotationTsa {
    /// The TSA chain (DER), TSA certificate first, root last.
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// A TimeStampToken (CMS SignedData over a TSTInfo) for `message` at `time`, with
    /// SHA-256 imprint and digests, accuracy 1 s, carrying the TSA chain.
    pub fn timestamp(&self, message: &[u8], time: i64) -> Vec<u8> {
        use der_enc::*;
        let sha256 = seq(&[oid("2.16.840.1.101.3.4.2.1")]);
        let tst_info = seq(&[
            int(&[1]),
            oid("1.3.6.1.4.1.99999.1"),
            seq(&[sha256.clone(), octets(&Sha256::digest(message))]),
            int(&time.to_be_bytes()),
            generalized_time(time),
            seq(&[int(&[1])]),
        ]);
        let tsa_cert = &self.chain[0];
        let (issuer, serial) = issuer_and_serial(tsa_cert);
        let attributes = set_of(vec![
            seq(&[
                oid("1.2.840.113549.1.9.3"),
                set_of(vec![oid("1.2.840.113549.1.9.16.1.4")]),
            ]),
            seq(&[
                oid("1.2.840.113549.1.9.4"),
                set_of(vec![octets(&Sha256::digest(&tst_info))]),
            ]),
            seq(&[
                oid("1.2.840.113549.1.9.16.2.47"),
                set_of(vec![seq(&[seq(&[seq(&[octets(&Sha256::digest(
                    tsa_cert,
                ))])])])]),
            ]),
        ]);
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &self.pkcs8)
            .expect("imagegate-testkit: TSA key");
        let sig = key
            .sign(&SystemRandom::new(), &attributes)
            .expect("imagegate-testkit: TSA signing");
        let signer_info = seq(&[
            int(&[1]),
            seq(&[issuer, serial]),
            sha256.clone(),
            implicit(0, &attributes),
            seq(&[oid("1.2.840.10045.4.3.2")]),
            octets(sig.as_ref()),
        ]);
        let certificates: Vec<u8> = self.chain.concat();
        let signed_data = seq(&[
            int(&[3]),
            set_of(vec![sha256]),
            seq(&[
                oid("1.2.840.113549.1.9.16.1.4"),
                explicit(0, &octets(&tst_info)),
            ]),
            tlv(0xa0, &certificates),
            set_of(vec![signer_info]),
        ]);
        seq(&[oid("1.2.840.113549.1.7.2"), explicit(0, &signed_data)])
    }
}

/// Pushes `envelope` as a Notation signature of `subject` in `repo`: the empty config
/// blob, the envelope blob, a signature manifest (`artifactType`
/// [`SIGNATURE_ARTIFACT_TYPE`], `subject` = the image manifest) pushed by digest, and the
/// `sha256-<hex>` referrers index updated with it. Returns the signature manifest digest.
pub fn push_signature(
    pusher: &Pusher<'_>,
    repo: &str,
    subject: &Descriptor,
    envelope: &[u8],
    envelope_media_type: &str,
) -> String {
    push_artifact(
        pusher,
        repo,
        subject,
        SIGNATURE_ARTIFACT_TYPE,
        envelope,
        envelope_media_type,
    )
    .digest
}

/// Pushes an artifact of `artifact_type` (an SBOM, a Notation signature) referring to
/// `subject` in `repo` the way `oras attach` and notation do: empty config, one `blob`
/// layer, `subject`, and the `sha256-<hex>` referrers index updated. Returns the
/// artifact manifest's descriptor (what a Notation signature of the artifact signs).
pub fn push_artifact(
    pusher: &Pusher<'_>,
    repo: &str,
    subject: &Descriptor,
    artifact_type: &str,
    blob: &[u8],
    blob_media_type: &str,
) -> Descriptor {
    let config = pusher.push_blob(repo, b"{}");
    let layer = pusher.push_blob(repo, blob);
    let annotations: BTreeMap<String, String> = BTreeMap::from([(
        "org.opencontainers.image.created".to_owned(),
        rfc3339(now()),
    )]);
    let manifest = oci::to_go_json(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": { "mediaType": EMPTY_MEDIA_TYPE, "digest": config, "size": 2, "data": "e30=" },
        "layers": [{ "mediaType": blob_media_type, "digest": layer, "size": blob.len() }],
        "subject": { "mediaType": subject.media_type, "digest": subject.digest, "size": subject.size },
        "annotations": annotations,
    }));
    let digest = oci::sha256_digest(&manifest);
    pusher.push_manifest(repo, &digest, oci::OCI_MANIFEST, &manifest);

    let tag = subject.digest.replacen(':', "-", 1);
    let mut index = match pusher.get_manifest(repo, &tag) {
        Some((_, bytes)) => serde_json::from_slice::<ImageIndex>(&bytes)
            .expect("imagegate-testkit: the referrers tag holds an image index"),
        None => ImageIndex {
            schema_version: 2,
            media_type: Some(oci::OCI_INDEX.to_owned()),
            manifests: Vec::new(),
            annotations: None,
        },
    };
    let mut entry = Descriptor::of(oci::OCI_MANIFEST, &manifest);
    entry.artifact_type = Some(artifact_type.to_owned());
    entry.annotations = Some(annotations);
    index.manifests.push(entry.clone());
    pusher.push_manifest(repo, &tag, oci::OCI_INDEX, &oci::to_go_json(&index));
    entry
}

/// A Notation-signed image as a registry with the OCI 1.1 referrers API serves it, for
/// [`crate::stub::by_path`]: the manifest at `/v2/<repo>/manifests/<tag>`, its referrers
/// index (the signature, COSE-enveloped by `signer`, and an unrelated referrer that is
/// not served: a client that fetches it asks for what it did not need), the signature
/// manifest and the envelope blob. Answers carry `Content-Type` and
/// `Docker-Content-Digest` as registries send them. Returns the answers and the image
/// manifest's descriptor.
pub fn referrers_api_image(
    repo: &str,
    tag: &str,
    signer: &NotationSigner,
) -> (HashMap<String, Reply>, Descriptor) {
    let config = oci::sha256_digest(b"{}");
    let manifest = oci::to_go_json(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [],
        "annotations": {"dev.imagegate.test/image": format!("{repo}:{tag}")},
    }));
    let subject = Descriptor::of(oci::OCI_MANIFEST, &manifest);
    let envelope = signer.sign_cose(&subject, &SignOptions::default());
    let layer = Descriptor::of(COSE, &envelope);
    let signature = oci::to_go_json(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "artifactType": SIGNATURE_ARTIFACT_TYPE,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": config, "size": 2},
        "layers": [layer],
        "subject": {"mediaType": oci::OCI_MANIFEST, "digest": subject.digest, "size": subject.size},
    }));
    let signature_digest = oci::sha256_digest(&signature);
    let index = oci::to_go_json(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_INDEX,
        "manifests": [
            {"mediaType": oci::OCI_MANIFEST, "digest": signature_digest, "size": signature.len(), "artifactType": SIGNATURE_ARTIFACT_TYPE},
            {"mediaType": oci::OCI_MANIFEST, "digest": UNSERVED_REFERRER, "size": 100, "artifactType": "application/vnd.cyclonedx+json"},
        ],
    }));
    let answer = |content_type: &str, body: &[u8], digest: &str| {
        Reply::ok(body)
            .content_type(content_type)
            .header("Docker-Content-Digest", digest)
    };
    let answers = HashMap::from([
        (
            format!("/v2/{repo}/manifests/{tag}"),
            answer(oci::OCI_MANIFEST, &manifest, &subject.digest),
        ),
        (
            format!("/v2/{repo}/referrers/{}", subject.digest),
            answer(oci::OCI_INDEX, &index, &oci::sha256_digest(&index)),
        ),
        (
            format!("/v2/{repo}/manifests/{signature_digest}"),
            answer(oci::OCI_MANIFEST, &signature, &signature_digest),
        ),
        (
            format!("/v2/{repo}/blobs/{}", layer.digest),
            answer("application/octet-stream", &envelope, &layer.digest),
        ),
    ]);
    (answers, subject)
}

/// The digest of the referrer [`referrers_api_image`] lists but does not serve.
pub const UNSERVED_REFERRER: &str =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// (year, month, day, hour, minute, second) of Unix seconds (proleptic Gregorian, UTC).
fn civil(unix: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs / 3600, secs % 3600 / 60, secs % 60)
}

fn rfc3339(unix: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Minimal CBOR encoding (RFC 8949), enough for COSE_Sign1 envelopes.
mod cbor {
    fn head(major: u8, n: u64) -> Vec<u8> {
        let m = major << 5;
        match n {
            0..=23 => vec![m | n as u8],
            24..=0xff => vec![m | 24, n as u8],
            0x100..=0xffff => [vec![m | 25], (n as u16).to_be_bytes().to_vec()].concat(),
            0x1_0000..=0xffff_ffff => [vec![m | 26], (n as u32).to_be_bytes().to_vec()].concat(),
            _ => [vec![m | 27], n.to_be_bytes().to_vec()].concat(),
        }
    }
    pub fn int(v: i64) -> Vec<u8> {
        if v >= 0 {
            head(0, v as u64)
        } else {
            head(1, (-1 - v) as u64)
        }
    }
    pub fn bytes(b: &[u8]) -> Vec<u8> {
        [head(2, b.len() as u64), b.to_vec()].concat()
    }
    pub fn text(t: &str) -> Vec<u8> {
        [head(3, t.len() as u64), t.as_bytes().to_vec()].concat()
    }
    pub fn array(items: &[Vec<u8>]) -> Vec<u8> {
        [head(4, items.len() as u64), items.concat()].concat()
    }
    pub fn map(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let mut out = head(5, entries.len() as u64);
        for (k, v) in entries {
            out.extend_from_slice(k);
            out.extend_from_slice(v);
        }
        out
    }
    pub fn tag(n: u64, content: &[u8]) -> Vec<u8> {
        [head(6, n), content.to_vec()].concat()
    }
    /// A Notary time: tag 1 around integer seconds.
    pub fn time(unix: i64) -> Vec<u8> {
        tag(1, &int(unix))
    }
}

/// Minimal DER encoding and reading, enough for RFC 3161 tokens.
mod der_enc {
    pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let len = content.len();
        let mut out = vec![tag];
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }
    pub fn seq(items: &[Vec<u8>]) -> Vec<u8> {
        tlv(0x30, &items.concat())
    }
    /// DER SET OF: elements sorted by their encodings.
    pub fn set_of(mut items: Vec<Vec<u8>>) -> Vec<u8> {
        items.sort();
        tlv(0x31, &items.concat())
    }
    pub fn implicit(n: u8, set: &[u8]) -> Vec<u8> {
        let mut out = set.to_vec();
        out[0] = 0xa0 | n;
        out
    }
    pub fn explicit(n: u8, inner: &[u8]) -> Vec<u8> {
        tlv(0xa0 | n, inner)
    }
    pub fn octets(b: &[u8]) -> Vec<u8> {
        tlv(0x04, b)
    }
    /// A non-negative INTEGER from big-endian bytes (minimal form).
    pub fn int(be: &[u8]) -> Vec<u8> {
        let mut v: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
        if v.is_empty() || v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        tlv(0x02, &v)
    }
    pub fn oid(dotted: &str) -> Vec<u8> {
        let arcs: Vec<u64> = dotted
            .split('.')
            .map(|a| a.parse().expect("OID arc"))
            .collect();
        let mut body = vec![(arcs[0] * 40 + arcs[1]) as u8];
        for &arc in &arcs[2..] {
            let mut chunk = vec![(arc & 0x7f) as u8];
            let mut rest = arc >> 7;
            while rest > 0 {
                chunk.insert(0, 0x80 | (rest & 0x7f) as u8);
                rest >>= 7;
            }
            body.extend(chunk);
        }
        tlv(0x06, &body)
    }
    pub fn generalized_time(unix: i64) -> Vec<u8> {
        let (y, mo, d, h, mi, s) = super::civil(unix);
        tlv(
            0x18,
            format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z").as_bytes(),
        )
    }
    /// Splits one TLV off `input`: (tag, whole encoding, content, rest).
    fn next(input: &[u8]) -> (u8, &[u8], &[u8], &[u8]) {
        let tag = input[0];
        let (len, header) = if input[1] < 0x80 {
            (input[1] as usize, 2)
        } else {
            let n = (input[1] & 0x7f) as usize;
            (
                input[2..2 + n]
                    .iter()
                    .fold(0usize, |a, b| a << 8 | *b as usize),
                2 + n,
            )
        };
        (
            tag,
            &input[..header + len],
            &input[header..header + len],
            &input[header + len..],
        )
    }
    /// The issuer Name and serial INTEGER encodings of a certificate.
    pub fn issuer_and_serial(cert: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let (_, _, cert_body, _) = next(cert);
        let (_, _, tbs, _) = next(cert_body);
        let (tag, _, _, mut rest) = next(tbs);
        if tag != 0xa0 {
            rest = tbs; // no explicit version
        }
        let (_, serial, _, rest) = next(rest);
        let (_, _, _, rest) = next(rest); // signature algorithm
        let (_, issuer, _, _) = next(rest);
        (issuer.to_vec(), serial.to_vec())
    }
}
