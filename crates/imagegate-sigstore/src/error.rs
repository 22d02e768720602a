//! The crate-wide error: every module's error, aggregated.

use thiserror::Error;

use crate::certificate::CertificateError;
use crate::cosign::TagError;
use crate::dsse::AttestationError;
use crate::keys::{KeyError, SignatureError};
use crate::rekor::RekorError;
use crate::simple_signing::SimpleSigningError;

/// Any error of this crate; each variant's message is the module error's message.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A public key could not be read.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A signature did not verify with a key.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// A digest could not be turned into a cosign tag.
    #[error(transparent)]
    Tag(#[from] TagError),
    /// A simple-signing signature was not accepted.
    #[error(transparent)]
    SimpleSigning(#[from] SimpleSigningError),
    /// A DSSE attestation was not accepted.
    #[error(transparent)]
    Attestation(#[from] AttestationError),
    /// A Rekor bundle was not accepted.
    #[error(transparent)]
    Rekor(#[from] RekorError),
    /// A signing certificate was not accepted.
    #[error(transparent)]
    Certificate(#[from] CertificateError),
}

/// `Result` with this crate's [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;
