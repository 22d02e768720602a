//! OCI and Docker manifest documents as plain serde types.
//!
//! Only the fields imagegate reads are modelled; unknown fields are ignored so that
//! manifests written by newer tools still parse.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 manifest list media type.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Every manifest media type imagegate accepts, as sent in `Accept`.
pub const ACCEPTED_MANIFEST_TYPES: [&str; 4] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];

/// A content descriptor: what a manifest says about a blob or another manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(default)]
    pub media_type: String,
    /// `algorithm:hex` digest of the referenced content.
    pub digest: String,
    /// Size in bytes of the referenced content.
    pub size: u64,
    /// Annotations attached to the descriptor (cosign keeps signatures here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// OCI 1.1 artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// The value of one annotation, if present.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type, when written in the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, in order.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// OCI 1.1 subject (the manifest this one refers to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Manifest annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image index or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own media type, when written in the document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests this index lists.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// A manifest as fetched: its bytes, media type and verified digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The media type the registry reported (or the document declared).
    pub media_type: String,
    /// `sha256:…` of `bytes`, checked against what was asked for.
    pub digest: String,
    /// The exact bytes served.
    pub bytes: Vec<u8>,
}

impl FetchedManifest {
    /// Parses the bytes as an image manifest.
    pub fn image_manifest(&self) -> Result<ImageManifest, serde_json::Error> {
        serde_json::from_slice(&self.bytes)
    }

    /// Parses the bytes as an image index.
    pub fn image_index(&self) -> Result<ImageIndex, serde_json::Error> {
        serde_json::from_slice(&self.bytes)
    }

    /// Whether this is an index / manifest list rather than an image manifest.
    pub fn is_index(&self) -> bool {
        self.media_type == OCI_INDEX || self.media_type == DOCKER_MANIFEST_LIST
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cosign_signature_manifest_layout() {
        let text = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":233,"digest":"sha256:aa"},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":245,"digest":"sha256:bb","annotations":{"dev.cosignproject.cosign/signature":"MEU="}}]}"#;
        let manifest: ImageManifest = serde_json::from_str(text).unwrap();
        assert_eq!(manifest.layers.len(), 1);
        assert_eq!(
            manifest.layers[0].annotation("dev.cosignproject.cosign/signature"),
            Some("MEU=")
        );
        assert_eq!(manifest.layers[0].annotation("missing"), None);
    }

    #[test]
    fn rejects_manifest_without_config() {
        let text = r#"{"schemaVersion":2,"layers":[]}"#;
        assert!(serde_json::from_str::<ImageManifest>(text).is_err());
    }
}
