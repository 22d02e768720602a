//! Size and count limits on hostile input. Real Notation envelopes are a few KiB with
//! chains of two or three certificates; the limits leave ample room above that.

/// Largest envelope read (JWS JSON or COSE CBOR).
pub const MAX_ENVELOPE_SIZE: usize = 256 * 1024;
/// Largest signed payload.
pub const MAX_PAYLOAD_SIZE: usize = 64 * 1024;
/// Most certificates in an envelope's chain or in a timestamp token.
pub const MAX_CHAIN_LENGTH: usize = 10;
/// Largest single certificate.
pub const MAX_CERTIFICATE_SIZE: usize = 16 * 1024;
/// Most protected (and unprotected) header entries.
pub const MAX_HEADERS: usize = 32;
/// Most entries of `crit`.
pub const MAX_CRITICAL_HEADERS: usize = 8;
/// Largest RFC 3161 timestamp token.
pub const MAX_TIMESTAMP_TOKEN_SIZE: usize = 64 * 1024;
/// Most trusted certificates in one trust store.
pub const MAX_TRUSTED_CERTIFICATES: usize = 100;
