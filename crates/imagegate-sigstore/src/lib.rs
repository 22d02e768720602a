//! Cosign signatures, DSSE attestations and Sigstore evidence, verified over bytes that
//! others fetched. This crate never talks to the network.
//!
//! Modules, in the order a verification uses them:
//! - [`keys`]: public keys (PEM/SPKI), fingerprints, signature verification.
//! - [`cosign`]: cosign media types, annotations and `.sig`/`.att` tag names.
//! - [`simple_signing`]: legacy `.sig` layers (simple-signing payload + signature).
//! - [`dsse`]: `.att` layers (DSSE envelopes with in-toto statements), predicate types.
//! - [`rekor`]: the Rekor bundle annotation (SET) and its entry.
//! - [`certificate`]: Fulcio signing certificates: chain to trusted roots, identities.
//! - [`error`]: the crate-wide [`Error`] and [`Result`].
#![deny(missing_docs)]

pub mod certificate;
pub mod cosign;
pub mod dsse;
pub mod error;
pub mod keys;
pub mod rekor;
pub mod simple_signing;

mod encoding;
mod pem;

pub use certificate::{CertificateError, VerifiedCertificate, verify_certificate_chain};
pub use cosign::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, DSSE_MEDIA_TYPE,
    SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, TagError, attestation_tag, signature_tag,
};
pub use dsse::{
    Attestation, AttestationError, Envelope, EnvelopeSignature, Subject, pae,
    predicate_type_matches, verify_attestation,
};
pub use error::{Error, Result};
pub use keys::{HashAlgorithm, KeyAlgorithm, KeyError, PublicKey, SignatureError};
pub use rekor::{
    RekorBundle, RekorEntry, RekorError, RekorKey, RekorPayload, verify_entry_matches, verify_set,
};
pub use simple_signing::{SimpleSigning, SimpleSigningError, verify_simple_signing};
