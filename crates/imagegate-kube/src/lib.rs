//! imagegate in the cluster: what the Kubernetes API feeds the engine (kube-rs).
//!
//! - [`client`]: connecting (in-cluster, `--kubeconfig`, `KUBECONFIG`) and imagegate's own
//!   namespace.
//! - [`policies`]: one reflector of every policy kind imagegate reads (`kyverno.io/v1`
//!   ClusterPolicy and Policy, `policies.kyverno.io` (Namespaced)ImageValidatingPolicy) and
//!   of PolicyExceptions (both groups), validated and compiled with `imagegate-policy`,
//!   published as an atomically swapped [`PolicySet`], with the policies' Ready condition
//!   written back.
//! - [`reflect`]: the pure part of the policy reflector (events in, set and status writes out).
//! - [`namespaces`]: namespace labels from a metadata-only watch (for `namespaceSelector`).
//! - [`reports`]: PolicyReports written with server-side apply, queued, batched and
//!   paced (never on the admission path); one writer per process for admissions and
//!   scans, merging the results of one resource per policy and rule.
//! - [`leader`]: leader election over a `coordination.k8s.io` Lease; only the leader
//!   writes PolicyReports (and scans).
//! - [`admission_reports`]: admission results into PolicyReports (the leader, through
//!   the [`reports`] writer) or EphemeralReports the leader merges (the other replicas),
//!   off the admission path.
//! - [`events`]: Kubernetes Events for denials and Audit failures, queued, deduplicated
//!   and rate-limited.
//! - [`watched`](crate::watched): namespaced objects read on demand, cached, invalidated by a
//!   metadata-only watch of their kind (what [`secrets`] and [`configmaps`] share).
//! - [`secrets`]: Secrets for `k8s://NAMESPACE/NAME` keys.
//! - [`configmaps`]: ConfigMaps for rule `context` entries.
//! - [`api_call`]: size- and deadline-bounded GETs for `apiCall` context entries.
//! - [`inputs`]: the engine's view of the cluster ([`imagegate_engine::ClusterInputs`]):
//!   namespace labels, Secrets, ConfigMaps, API GETs, ServiceAccounts' pull secrets.
//! - [`workloads`]: the Pods and pod controllers running in the cluster (for audits).
//! - [`scan`]: background scans — workloads watched (trimmed), verified against the
//!   background policies on start, on a policy change and every interval, by the leader,
//!   with the results written as PolicyReports.
//! - [`crds`]: CustomResourceDefinitions of the policy, exception and report kinds,
//!   generated from imagegate's own types (`imagegate crds`).
//! - [`error`]: this crate's errors.
#![deny(missing_docs)]

pub mod admission_reports;
pub mod api_call;
pub mod client;
pub mod configmaps;
pub mod crds;
pub mod error;
pub mod events;
pub mod inputs;
pub mod leader;
pub mod namespaces;
pub mod policies;
pub mod reflect;
pub mod reports;
pub mod scan;
pub mod secrets;
mod watched;
pub mod workloads;

pub use client::{Cluster, own_namespace};
pub use configmaps::ConfigMaps;
pub use crds::{CrdSet, crds, policy_crds};
pub use error::{KubeError, Result};
pub use inputs::KubeInputs;
pub use leader::{LeaderElectionOptions, LeaderElector, holder_identity};
pub use namespaces::NamespaceLabels;
pub use policies::{PolicyWatch, WatchOptions};
pub use reflect::{Kind, Loaded, PolicyKey, PolicySet};
pub use reports::{ReportWriter, ReportWriterOptions};
pub use scan::{BackgroundScanner, ScanInputs, ScanObserver, ScanOptions, WorkloadWatch};
pub use secrets::SecretKeys;
pub use workloads::list_workloads;
