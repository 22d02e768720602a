//! Evaluation of resources against Kyverno `verifyImages` policies: what to fetch,
//! verifying it (concurrently, coalesced), and the decisions, patches and messages that
//! follow. Serves neither HTTP nor CLI flags.
//!
//! Layers, each file depending only on those above it in this list (no cycles between
//! files; the `layers` test checks):
//! - leaves: [`evidence`](crate::Evidence) — fetched layers, verified envelopes, why
//!   verification failed, attestation selection; `metrics`, `cache`, `flight`, `patch`,
//!   [`response`] (results and Kyverno's texts), [`trust`], [`cluster`] (what the
//!   cluster feeds in — namespace labels, Secret-held keys, pull secrets — behind the
//!   [`ClusterInputs`] trait);
//! - `check` — pure checks of evidence (`key`, `keyless`, `bundle`, `tlog`): no I/O, no
//!   async;
//! - `fetch` — the [`Verifier`]: tag resolution, `.sig`/`.att` tags, referrers, with
//!   caches and single-flight;
//! - `attestors` — Kyverno attestor sets (`sets`) over entries (`entry`) over fetch and
//!   check; the folder's `mod.rs` holds what both share (`Cause`, `AttestorFailure`);
//! - `options` ([`EngineOptions`]) and `review` ([`Phase`], [`AdmissionInput`], the
//!   digests resolved once per review) — what the evaluation layers below share;
//! - `policy_set` — policies prepared once at load ([`PolicySet`]: autogen, verdict
//!   keys);
//! - `ivp` — ImageValidatingPolicies (plan, verify, CEL evaluation) with the verifier
//!   and cache the engine lends it;
//! - `evaluate` — rules × images → verdicts, patches ([`Engine`]), IVPs included;
//! - [`admission`] — AdmissionReview in, AdmissionReview out.
#![deny(missing_docs)]

pub mod admission;
mod attestors;
mod cache;
mod check;
pub mod cluster;
mod evaluate;
mod evidence;
mod fetch;
mod flight;
mod ivp;
mod metrics;
mod options;
mod patch;
mod policy_set;
pub mod response;
mod review;
pub mod trust;

pub use attestors::{
    AttestorFailure, Cause, ImageSubject, identity_requirement, verify_attestations,
    verify_attestors,
};
pub use cache::CacheOptions;
pub use check::bundle::{BundleCheck, check_bundle_attestations, check_bundle_signatures};
pub use check::key::{check_attestations, check_signatures};
pub use check::keyless::{KeylessCheck, check_keyless_attestations, check_keyless_signatures};
pub use cluster::{ClusterError, ClusterInputs, SecretData};
pub use evaluate::{Engine, EngineBuilder};
pub use evidence::{Evidence, EvidenceKind, Layer, SignatureCheck, VerifiedEnvelope, VerifyError};
pub use fetch::Verifier;
pub use ivp::IMAGE_VALIDATING_POLICY;
pub use metrics::{CacheLabels, EngineMetrics, FailureLabels, RegistryLabels};
pub use options::EngineOptions;
pub use patch::VERIFY_IMAGES_ANNOTATION;
pub use policy_set::PolicySet;
pub use response::{EngineResponse, PolicyResponse, ResourceId, RuleResponse, RuleStatus};
pub use review::{AdmissionInput, Phase};
