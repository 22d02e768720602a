//! Evaluation of images against signature requirements: what to fetch, verifying it,
//! and the decisions that follow.
#![deny(missing_docs)]

pub mod flight;
pub mod verify;

pub use verify::{
    Evidence, EvidenceKind, Layer, SignatureCheck, VerifiedAttestations, VerifiedEnvelope,
    VerifiedSignatures, Verifier, VerifyError, check_attestations, check_signatures,
};
