//! cosign's key-based signing formats: keys, simple-signing payloads, in-toto
//! statements in DSSE envelopes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use crate::oci::to_go_json;

/// DSSE payload type of in-toto statements.
pub(crate) const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// in-toto Statement v0.1 `_type` (what `cosign attest` writes).
pub(crate) const IN_TOTO_STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";

/// An ECDSA P-256 key pair, like `cosign generate-key-pair` makes.
pub struct CosignKey {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl CosignKey {
    /// A fresh random key.
    pub fn generate() -> CosignKey {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .expect("imagegate-testkit: generating an ECDSA P-256 key");
        CosignKey {
            key,
            rng: SystemRandom::new(),
        }
    }

    /// The public key as DER `SubjectPublicKeyInfo`.
    pub fn public_der(&self) -> Vec<u8> {
        self.key
            .public_key()
            .as_der()
            .expect("imagegate-testkit: encoding the public key")
            .as_ref()
            .to_vec()
    }

    /// The public key as `cosign.pub` has it: `-----BEGIN PUBLIC KEY-----`, base64 in
    /// 64-column lines, `-----END PUBLIC KEY-----`, trailing newline.
    pub fn public_pem(&self) -> String {
        let b64 = STANDARD.encode(self.public_der());
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    /// The private key as PKCS#8 v1 DER.
    pub fn private_pkcs8_der(&self) -> Vec<u8> {
        self.key
            .to_pkcs8v1()
            .expect("imagegate-testkit: encoding the private key")
            .as_ref()
            .to_vec()
    }

    /// ECDSA-P256-SHA256 signature over `message`, DER encoded (as cosign stores it).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key
            .sign(&self.rng, message)
            .expect("imagegate-testkit: ECDSA signing")
            .as_ref()
            .to_vec()
    }

    /// Writes [`public_pem`](Self::public_pem) to `dir/name` and returns the path.
    pub fn write_public_pem(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.public_pem())
            .unwrap_or_else(|e| panic!("imagegate-testkit: cannot write {}: {e}", path.display()));
        path
    }
}

/// The simple-signing payload cosign signs, byte for byte:
/// `{"critical":{"identity":{"docker-reference":R},"image":{"docker-manifest-digest":D},"type":"cosign container image signature"},"optional":null}`
/// with `optional` the annotations object when there are any (`cosign sign -a k=v`).
pub fn simple_signing_payload(
    docker_reference: &str,
    digest: &str,
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct Identity<'a> {
        #[serde(rename = "docker-reference")]
        docker_reference: &'a str,
    }
    #[derive(Serialize)]
    struct Image<'a> {
        #[serde(rename = "docker-manifest-digest")]
        docker_manifest_digest: &'a str,
    }
    #[derive(Serialize)]
    struct Critical<'a> {
        identity: Identity<'a>,
        image: Image<'a>,
        #[serde(rename = "type")]
        kind: &'static str,
    }
    #[derive(Serialize)]
    struct Payload<'a> {
        critical: Critical<'a>,
        optional: Option<&'a BTreeMap<String, String>>,
    }
    to_go_json(&Payload {
        critical: Critical {
            identity: Identity { docker_reference },
            image: Image {
                docker_manifest_digest: digest,
            },
            kind: "cosign container image signature",
        },
        optional: (!annotations.is_empty()).then_some(annotations),
    })
}

/// DSSE v1 pre-authentication encoding:
/// `"DSSEv1" SP len(type) SP type SP len(payload) SP payload` (lengths in decimal).
pub fn dsse_pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut pae = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    pae.extend_from_slice(payload);
    pae
}

/// The in-toto Statement v0.1 `cosign attest` signs (Go field order).
pub(crate) fn in_toto_statement(
    subject_name: &str,
    digest: &str,
    predicate_type: &str,
    predicate: &serde_json::Value,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct Subject<'a> {
        name: &'a str,
        digest: BTreeMap<&'a str, &'a str>,
    }
    #[derive(Serialize)]
    struct Statement<'a> {
        #[serde(rename = "_type")]
        kind: &'static str,
        #[serde(rename = "predicateType")]
        predicate_type: &'a str,
        subject: Vec<Subject<'a>>,
        predicate: &'a serde_json::Value,
    }
    let (algorithm, hex) = digest
        .split_once(':')
        .unwrap_or_else(|| panic!("imagegate-testkit: {digest:?} is not a digest (algorithm:hex)"));
    to_go_json(&Statement {
        kind: IN_TOTO_STATEMENT_V01,
        predicate_type,
        subject: vec![Subject {
            name: subject_name,
            digest: BTreeMap::from([(algorithm, hex)]),
        }],
        predicate,
    })
}

/// A DSSE envelope with one signature (empty `keyid`, as cosign writes it).
pub(crate) fn dsse_envelope(payload_type: &str, payload: &[u8], signature: &[u8]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Signature {
        keyid: &'static str,
        sig: String,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Envelope<'a> {
        payload_type: &'a str,
        payload: String,
        signatures: Vec<Signature>,
    }
    to_go_json(&Envelope {
        payload_type,
        payload: STANDARD.encode(payload),
        signatures: vec![Signature {
            keyid: "",
            sig: STANDARD.encode(signature),
        }],
    })
}
