//! `policies.kyverno.io` ImageValidatingPolicy and NamespacedImageValidatingPolicy: the
//! model, validation and CEL compilation at load, matching, autogen, and the pure
//! plan → (engine verifies) → evaluate contract. Nothing here fetches or verifies.
//!
//! The engine's part, per request: [`CompiledIvp::plan`] for each loaded policy, verify
//! every [`PlannedImage`]'s [`Check`]s concurrently into a [`ResultsMap`] (or its own
//! [`VerificationResults`]), [`CompiledIvp::evaluate`] each policy with those results,
//! [`enforce_required`] over all outcomes, and [`CompiledIvp::digest_patches`] for
//! `mutateDigest`.

pub mod autogen;
mod check;
pub mod compile;
pub mod eval;
pub mod exception;
mod library;
pub mod matching;
pub mod model;
mod program;
pub mod results;

pub use compile::{CompiledIvp, compile_document, compile_policy};
pub use eval::{
    AdmissionInput, PlannedImage, PolicyOutcome, Verdict, VerificationPlan, enforce_required,
};
pub use exception::{CelPolicyException, CompiledCelException, compile_exception_document};
pub use library::UNSUPPORTED_FUNCTIONS;
pub use model::{ImageValidatingPolicy, KIND_CLUSTER, KIND_NAMESPACED};
pub use results::{Check, CheckOutcome, ResultsMap, VerificationResults, Verifications};
