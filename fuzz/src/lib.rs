//! Shared fixtures of the fuzz targets: fixed keys and trust, and input splitting.
//! Fixtures are built once per process so that every run spends its time in the parsers.

use std::sync::LazyLock;

use imagegate_sigstore::{PublicKey, TrustedRoot};

/// An ECDSA P-256 public key nobody has the private key of (generated for these targets;
/// fuzzed signatures never verify, so the parsers behind the signature check are fuzzed
/// through their own entry points).
pub const FIXED_KEY_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEIsYZ9NFCTz8PhAZwagzCQtMTrPeN
BjaBvXc41s3UUrcIxhnwVwr7yoxRltLDMYoojq2V13/RX1phKzjd5PKRgw==
-----END PUBLIC KEY-----
";

/// The digest the verifiers are asked about.
pub const IMAGE_DIGEST: &str =
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// "Now" for verifications that take a time (2026-01-01T00:00:00Z): fixed so runs repeat.
pub const NOW: i64 = 1_767_225_600;

/// [`FIXED_KEY_PEM`], parsed.
pub static FIXED_KEYS: LazyLock<Vec<PublicKey>> = LazyLock::new(|| {
    PublicKey::from_pem(FIXED_KEY_PEM).unwrap_or_else(|e| panic!("fixed key: {e}"))
});

/// The embedded Sigstore public-good trusted root.
pub static PUBLIC_GOOD: LazyLock<TrustedRoot> = LazyLock::new(|| {
    TrustedRoot::public_good().unwrap_or_else(|e| panic!("public-good root: {e}"))
});

/// Splits `data` at the first `\n` (the whole input and nothing when there is none), so one
/// input can carry two fields (e.g. a payload and its signature).
pub fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// `bytes` as text, lossily (text parsers are fuzzed with any bytes).
pub fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}
