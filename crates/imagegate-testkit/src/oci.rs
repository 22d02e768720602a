//! OCI manifest types and the exact JSON layouts cosign writes (Go `encoding/json`
//! field order and escaping), public so tests can parse what the kit pushed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// `application/vnd.oci.image.manifest.v1+json`
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.index.v1+json`
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.oci.image.config.v1+json`
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// `application/vnd.oci.image.layer.v1.tar` (uncompressed layer)
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// `application/vnd.docker.distribution.manifest.v2+json`
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// `application/vnd.docker.distribution.manifest.list.v2+json`
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Media type of a cosign simple-signing payload layer.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Media type of a cosign attestation (DSSE envelope) layer.
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// Layer annotation holding the base64 signature (empty for attestations).
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Layer annotation naming an attestation's predicate type.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
/// Go's zero `time.Time` as cosign's configs carry it.
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// An OCI content descriptor (fields in go-containerregistry's order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Embedded content (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Alternative download URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// Annotations (serialised sorted, as Go does with maps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Platform, in index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor of `bytes` (sha256 digest and size) without annotations.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_owned(),
            size: bytes.len() as u64,
            digest: sha256_digest(bytes),
            data: None,
            urls: None,
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }
}

/// An image index entry's platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// OS version.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features.
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant (`v7`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An OCI image manifest (also the shape of cosign's `.sig`/`.att` manifests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`OCI_MANIFEST`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers.
    pub layers: Vec<Descriptor>,
    /// Manifest annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// OCI 1.1 subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
}

/// An OCI image index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// [`OCI_INDEX`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The child manifests.
    pub manifests: Vec<Descriptor>,
    /// Index annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// cosign's tag for a subject digest: `sha256-<hex>.<suffix>` (`sig`, `att`, `sbom`).
///
/// Panics when `digest` is not `algorithm:hex`.
pub fn cosign_tag(digest: &str, suffix: &str) -> String {
    let (algorithm, hex) = digest
        .split_once(':')
        .unwrap_or_else(|| panic!("imagegate-testkit: {digest:?} is not a digest (algorithm:hex)"));
    format!("{algorithm}-{hex}.{suffix}")
}

/// JSON as Go's `encoding/json` writes it for these values: compact, struct field order
/// as declared, map keys sorted, and `<`, `>`, `&`, U+2028, U+2029 escaped.
pub fn to_go_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let json = serde_json::to_string(value).expect("imagegate-testkit: serialising JSON");
    // These characters can only occur inside strings, so replacing them everywhere is safe.
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
        .into_bytes()
}

/// The config blob cosign (go-containerregistry `mutate.Append` on an empty image) writes
/// for a signature/attestation manifest with these layers:
/// `{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":…}…],"os":"","rootfs":{"type":"layers","diff_ids":[…]},"config":{}}`.
/// cosign's layers are uncompressed, so each diff ID is the layer digest.
pub fn cosign_config(layers: &[Descriptor]) -> Vec<u8> {
    #[derive(Serialize)]
    struct History {
        created: &'static str,
    }
    #[derive(Serialize)]
    struct RootFs<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        diff_ids: Vec<&'a str>,
    }
    #[derive(Serialize)]
    struct Empty {}
    #[derive(Serialize)]
    struct ConfigFile<'a> {
        architecture: &'static str,
        created: &'static str,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        history: Vec<History>,
        os: &'static str,
        rootfs: RootFs<'a>,
        config: Empty,
    }
    let config = ConfigFile {
        architecture: "",
        created: GO_ZERO_TIME,
        history: layers
            .iter()
            .map(|_| History {
                created: GO_ZERO_TIME,
            })
            .collect(),
        os: "",
        rootfs: RootFs {
            kind: "layers",
            diff_ids: layers.iter().map(|l| l.digest.as_str()).collect(),
        },
        config: Empty {},
    };
    to_go_json(&config)
}

/// The OCI manifest cosign writes for these layers and config blob.
pub fn cosign_manifest(config: &[u8], layers: &[Descriptor]) -> Vec<u8> {
    to_go_json(&ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        config: Descriptor::of(OCI_CONFIG, config),
        layers: layers.to_vec(),
        annotations: None,
        subject: None,
    })
}
