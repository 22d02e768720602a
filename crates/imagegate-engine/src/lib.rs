//! Evaluation of resources against Kyverno `verifyImages` policies: what to fetch,
//! verifying it (concurrently, coalesced), and the decisions, patches and messages that
//! follow. Serves neither HTTP nor CLI flags.
//!
//! Layers, each file depending only on those above it in this list (no cycles between
//! files: the test kit's `layers` test checks every crate of the workspace):
//! - leaves: [`evidence`](crate::Evidence) — fetched layers, verified envelopes, why
//!   verification failed, attestation selection; `metrics`, `cache`, `flight`, `patch`,
//!   [`response`] (results and Kyverno's texts), [`report`] (results as `wgpolicyk8s.io`
//!   PolicyReports), [`trust`], [`cluster`] (what the cluster feeds in — namespace
//!   labels, Secret-held keys, pull secrets — behind the [`ClusterInputs`] trait);
//! - `check` — pure checks of evidence (`key`, `keyless`, `bundle`, `tlog`, `notary`):
//!   no I/O, no async;
//! - `fetch` — the [`Verifier`]: tag resolution, `.sig`/`.att` tags, referrers (bundles,
//!   Notation signatures and signed artifacts), with caches and single-flight (keyed by
//!   [`Access`] and the credentials of the call);
//! - `notation` — Notation signatures and signed artifacts of one image, over fetch and
//!   check (shared by attestors, `ivp` and the CLI);
//! - `attestors` — Kyverno attestor sets (`sets`) over entries (`entry`) over fetch and
//!   check; the folder's `mod.rs` holds what both share (`Cause`, `AttestorFailure`);
//! - `rule_context` — rule `context` entries loaded per request (variables, ConfigMaps
//!   and API GETs through [`ClusterInputs`]);
//! - `verdicts` — the verdict cache every policy kind shares (keyed by digest and
//!   what is verified, single-flight per key);
//! - `options` (what [`EngineBuilder`] sets) and `review` ([`Phase`],
//!   [`AdmissionInput`], the digests resolved once per review) — what the evaluation
//!   layers below share;
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
mod notation;
mod options;
mod patch;
mod policy_set;
pub mod report;
pub mod response;
mod review;
mod rule_context;
pub mod trust;
mod verdicts;

pub use attestors::{
    AttestorFailure, Cause, ImageSubject, identity_requirement, verify_attestations,
    verify_attestors,
};
pub use cache::CacheOptions;
pub use check::bundle::{BundleCheck, check_bundle_attestations, check_bundle_signatures};
pub use check::key::{check_attestations, check_signatures};
pub use check::keyless::{KeylessCheck, check_keyless_attestations, check_keyless_signatures};
pub use check::notary::{NotaryCheck, check_notary_attestations, check_notary_signatures};
pub use cluster::{ClusterError, ClusterInputs, SecretData};
pub use evaluate::{Engine, EngineBuilder};
pub use evidence::{
    Evidence, EvidenceKind, Layer, ReferrerArtifact, SignatureCheck, VerifiedEnvelope, VerifyError,
};
pub use fetch::{Access, Verifier};
pub use ivp::IMAGE_VALIDATING_POLICY;
pub use metrics::{CacheLabels, EngineMetrics, FailureLabels, RegistryLabels};
pub use notation::{verify_notation_attestations, verify_notation_signatures};
pub use patch::VERIFY_IMAGES_ANNOTATION;
pub use policy_set::PolicySet;
pub use report::{PolicyReport, Process, ReportError};
pub use response::{
    CheckedImage, EngineResponse, PolicyKind, PolicyResponse, ResourceId, RuleResponse, RuleStatus,
};
pub use review::{AdmissionInput, Phase};
