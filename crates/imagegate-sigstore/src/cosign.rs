//! Cosign constants and naming: media types, annotations and the legacy tag scheme
//! (`sha256:<hex>` → `sha256-<hex>.sig` / `.att`).

use thiserror::Error;

/// Media type of a cosign simple-signing payload layer (`.sig` images).
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Media type of a DSSE envelope layer (`.att` images).
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// Layer annotation holding the base64 signature of a simple-signing payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Layer annotation holding the PEM signing certificate (keyless).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// Layer annotation holding the PEM certificate chain (keyless).
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// Layer annotation holding the Rekor bundle (SET) JSON, see [`crate::rekor`].
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

/// Suffix of legacy signature tags.
pub const SIGNATURE_TAG_SUFFIX: &str = "sig";
/// Suffix of legacy attestation tags.
pub const ATTESTATION_TAG_SUFFIX: &str = "att";

/// Why a digest cannot be turned into a tag.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TagError {
    /// The digest is not `<algorithm>:<hex>`.
    #[error(
        "malformed digest \"{digest}\": expected <algorithm>:<hex>, e.g. sha256:<64 hex digits>"
    )]
    MalformedDigest {
        /// The offending digest.
        digest: String,
    },
}

/// The legacy signature tag of an image digest: `sha256:abc…` → `sha256-abc….sig`.
pub fn signature_tag(digest: &str) -> Result<String, TagError> {
    tag_for(digest, SIGNATURE_TAG_SUFFIX)
}

/// The legacy attestation tag of an image digest: `sha256:abc…` → `sha256-abc….att`.
pub fn attestation_tag(digest: &str) -> Result<String, TagError> {
    tag_for(digest, ATTESTATION_TAG_SUFFIX)
}

/// `<algorithm>-<hex>.<suffix>` for `digest` = `<algorithm>:<hex>`.
///
/// The digest is validated: algorithm `[a-z0-9]+`, hex `[0-9a-f]+` of the length the
/// algorithm implies for `sha256` (64) and `sha512` (128).
pub fn tag_for(digest: &str, suffix: &str) -> Result<String, TagError> {
    let malformed = || TagError::MalformedDigest {
        digest: digest.to_owned(),
    };
    let (algorithm, hex) = digest.split_once(':').ok_or_else(malformed)?;
    let algorithm_ok = !algorithm.is_empty()
        && algorithm
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let hex_ok = !hex.is_empty() && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let length_ok = match algorithm {
        "sha256" => hex.len() == 64,
        "sha512" => hex.len() == 128,
        _ => true,
    };
    if !(algorithm_ok && hex_ok && length_ok) {
        return Err(malformed());
    }
    Ok(format!("{algorithm}-{hex}.{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "f20c43161d73848408ef247f0ec7111b19fe58ffebc0cbcaa0d2c8bda4967268";

    #[test]
    fn tags() {
        assert_eq!(
            signature_tag(&format!("sha256:{HEX}")).unwrap(),
            format!("sha256-{HEX}.sig")
        );
        assert_eq!(
            attestation_tag(&format!("sha256:{HEX}")).unwrap(),
            format!("sha256-{HEX}.att")
        );
        for bad in [
            "",
            "sha256",
            "sha256:",
            ":abc",
            "sha256:abc",
            "SHA256:abc",
            &format!("sha256:{}", HEX.to_uppercase()),
            &format!("sha256:{HEX}/../x"),
        ] {
            let err = signature_tag(bad).unwrap_err();
            assert!(err.to_string().starts_with("malformed digest"), "{bad}");
        }
    }
}
