//! Evaluation of resources against Kyverno `verifyImages` policies: what to fetch,
//! verifying it (concurrently, coalesced), and the decisions, patches and messages that
//! follow. Serves neither HTTP nor CLI flags.
//!
//! Layers, each depending only on those above it in this list (no cycles between files):
//! - [`evidence`](crate::Evidence) — the vocabulary: fetched layers, verified envelopes,
//!   why verification failed, attestation selection;
//! - `check` — pure checks of evidence (`key`, `keyless`, `bundle`, `tlog`): no I/O, no
//!   async;
//! - `fetch` — the [`Verifier`]: tag resolution, `.sig`/`.att` tags, referrers, with
//!   caches and single-flight;
//! - `attestors` — Kyverno attestor sets and entries over fetch and check;
//! - `policy_set` — policies prepared once at load ([`PolicySet`]: autogen, verdict
//!   keys);
//! - `evaluate` — rules × images → verdicts, patches ([`Engine`]);
//! - `ivp` — the same for ImageValidatingPolicies (plan, verify, CEL evaluation),
//!   called from `evaluate`;
//! - [`admission`] — AdmissionReview in, AdmissionReview out; [`response`] — results
//!   and Kyverno's texts;
//! - [`cluster`] — what the cluster feeds in (namespace labels, Secret-held keys, pull
//!   secrets) behind the [`ClusterInputs`] trait.
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
mod patch;
mod policy_set;
pub mod response;
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
pub use evaluate::{AdmissionInput, Engine, EngineBuilder, EngineOptions, Phase};
pub use evidence::{Evidence, EvidenceKind, Layer, SignatureCheck, VerifiedEnvelope, VerifyError};
pub use fetch::Verifier;
pub use ivp::IMAGE_VALIDATING_POLICY;
pub use metrics::{CacheLabels, EngineMetrics, FailureLabels, RegistryLabels};
pub use patch::VERIFY_IMAGES_ANNOTATION;
pub use policy_set::PolicySet;
pub use response::{EngineResponse, PolicyResponse, ResourceId, RuleResponse, RuleStatus};
