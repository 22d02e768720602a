//! Evaluation of resources against Kyverno `verifyImages` policies: what to fetch,
//! verifying it (concurrently, coalesced), and the decisions, patches and messages that
//! follow. Serves neither HTTP nor CLI flags.
#![deny(missing_docs)]

pub mod admission;
pub mod attestors;
pub mod bundles;
pub mod cache;
pub mod evaluate;
pub mod flight;
pub mod keyless;
pub mod metrics;
pub mod patch;
pub mod response;
pub mod trust;
pub mod verify;

pub use cache::CacheOptions;
pub use evaluate::{
    AdmissionInput, Engine, EngineOptions, Phase, PolicySet, VERIFY_IMAGES_ANNOTATION,
};
pub use metrics::EngineMetrics;
pub use response::{EngineResponse, PolicyResponse, ResourceId, RuleResponse, RuleStatus};
pub use verify::{
    Evidence, EvidenceKind, Layer, SignatureCheck, VerifiedAttestations, VerifiedEnvelope,
    VerifiedSignatures, Verifier, VerifyError, check_attestations, check_signatures,
};
