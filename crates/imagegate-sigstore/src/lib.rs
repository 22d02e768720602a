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
//! - [`sct`]: signed certificate timestamps embedded in Fulcio certificates.
//! - [`trust`]: Sigstore trusted roots (embedded public-good root, `trusted_root.json`).
//! - [`identity`]: keyless signer identities and the requirements policies put on them.
//! - [`bundle`]: Sigstore bundles v0.1–v0.3 (cosign v3), verified with sigstore-verify.
//! - [`error`]: the crate-wide [`Error`] and [`Result`].
#![deny(missing_docs)]

pub mod bundle;
pub mod certificate;
pub mod cosign;
pub mod dsse;
pub mod error;
pub mod identity;
pub mod keys;
pub mod pem;
pub mod rekor;
pub mod sct;
pub mod simple_signing;
pub mod trust;

mod encoding;

pub use bundle::{
    Artifact, BundleError, BundleRequirement, Signer, VerifiedBundle, VerifyOptions, verify_bundle,
    verify_bundle_with,
};
pub use certificate::{
    CertificateError, VerifiedCertificate, certificate_public_key, verify_certificate_chain,
};
pub use cosign::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, DSSE_MEDIA_TYPE,
    SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, TagError, attestation_tag, signature_tag,
};
pub use dsse::{
    Attestation, AttestationError, Envelope, EnvelopeSignature, Subject, pae,
    predicate_type_matches, verify_attestation,
};
pub use error::{Error, Result};
pub use identity::{
    CiClaims, GitHubWorkflow, IdentityError, IdentityRequirement, Matcher, SignerIdentity,
};
pub use keys::{HashAlgorithm, KeyAlgorithm, KeyError, PublicKey, SignatureError};
pub use rekor::{
    RekorBundle, RekorEntry, RekorError, RekorKey, RekorPayload, verify_entry_matches, verify_set,
};
pub use sct::{Sct, SctError, VerifiedSct, verify_embedded_scts};
pub use simple_signing::{SimpleSigning, SimpleSigningError, verify_simple_signing};
pub use trust::{
    FulcioAuthority, TrustError, TrustOverrides, TrustedLogKey, TrustedRoot, Validity,
};
