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
//!   paced (never on the admission path).
//! - [`secrets`]: Secrets for `k8s://NAMESPACE/NAME` keys, read on demand, cached,
//!   invalidated by a metadata-only watch.
//! - [`inputs`]: the engine's view of the cluster ([`imagegate_engine::ClusterInputs`]):
//!   namespace labels, Secrets, ServiceAccounts' pull secrets.
//! - [`workloads`]: the Pods and pod controllers running in the cluster (for audits).
//! - [`crds`]: CustomResourceDefinitions of the policy kinds, generated from the policy
//!   model (`imagegate crds`).
//! - [`error`]: this crate's errors.
#![deny(missing_docs)]

pub mod client;
pub mod crds;
pub mod error;
pub mod inputs;
pub mod namespaces;
pub mod policies;
pub mod reflect;
pub mod reports;
pub mod secrets;
pub mod workloads;

pub use client::{Cluster, own_namespace};
pub use crds::policy_crds;
pub use error::{KubeError, Result};
pub use inputs::KubeInputs;
pub use namespaces::NamespaceLabels;
pub use policies::{PolicyWatch, WatchOptions};
pub use reflect::{Kind, Loaded, PolicyKey, PolicySet};
pub use reports::{ReportWriter, ReportWriterOptions};
pub use secrets::SecretKeys;
pub use workloads::list_workloads;
