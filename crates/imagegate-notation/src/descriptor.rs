//! The Notary payload (`application/vnd.cncf.notary.payload.v1+json`) and the OCI
//! descriptor it signs.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{NotationError, Result};

/// Media type of the payload every Notary signature carries.
pub const PAYLOAD_MEDIA_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";

/// An OCI content descriptor: what a signature signs and what a verifier expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the manifest.
    pub media_type: String,
    /// `sha256:<hex>` (or another algorithm) of the manifest bytes.
    pub digest: String,
    /// Size of the manifest in bytes.
    pub size: u64,
    /// Annotations the signer added (not compared; available to policies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Descriptor {
    /// A descriptor without annotations.
    pub fn new(media_type: impl Into<String>, digest: impl Into<String>, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest: digest.into(),
            size,
            annotations: None,
        }
    }

    /// Whether `self` names the same content as `other`: media type, digest and size
    /// (what notation's `content.Equal` compares; annotations are not part of identity).
    pub fn same_content(&self, other: &Descriptor) -> bool {
        self.media_type == other.media_type
            && self.digest == other.digest
            && self.size == other.size
    }
}

impl fmt::Display for Descriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {} bytes)",
            self.digest, self.media_type, self.size
        )
    }
}

/// The Notary payload: the signed descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    /// The artifact the signature signs.
    pub target_artifact: Descriptor,
}

impl Payload {
    /// Reads a payload; the descriptor's three identity fields are required.
    pub fn from_json(bytes: &[u8]) -> Result<Payload> {
        serde_json::from_slice(bytes).map_err(|e| NotationError::MalformedPayload(e.to_string()))
    }
}
