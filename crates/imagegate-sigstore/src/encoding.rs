//! Base64 and hex helpers shared by the modules (crate-private).

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const LENIENT_PADDING: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);

/// Standard alphabet, padding optional.
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT_PADDING);

/// URL-safe alphabet, padding optional (the DSSE spec allows either alphabet).
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT_PADDING);

/// Decodes base64 in the standard alphabet (padding optional), surrounding
/// whitespace ignored.
pub(crate) fn decode_standard(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    STANDARD_LENIENT.decode(text.trim())
}

/// Decodes base64 in the standard or the URL-safe alphabet (padding optional),
/// surrounding whitespace ignored.
pub(crate) fn decode_any(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let text = text.trim();
    STANDARD_LENIENT
        .decode(text)
        .or_else(|first| URL_SAFE_LENIENT.decode(text).map_err(|_| first))
}

/// Encodes bytes as standard, padded base64.
pub(crate) fn encode_standard(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `sha256:<lowercase hex>` of `bytes`.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}
