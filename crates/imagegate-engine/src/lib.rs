//! Evaluation of images against signature requirements: what to fetch, verifying it,
//! and the decisions that follow.
#![deny(missing_docs)]

pub mod verify;

pub use verify::{
    SignatureCheck, VerifiedAttestations, VerifiedEnvelope, VerifiedSignatures, Verifier,
    VerifyError,
};
