//! Cluster mode: the Kubernetes API feeds the webhook. ClusterPolicies, Policies,
//! (Namespaced)ImageValidatingPolicies and PolicyExceptions are watched and combined with
//! the policy files; namespace labels, Secrets and
//! ServiceAccounts reach the engine through [`KubeInputs`]. Status conditions are
//! written by the policy watch's own writer task, never on the admission path.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use imagegate_kube::policies::WatchOptions;
use imagegate_kube::{Cluster, KubeInputs, PolicyWatch};

use super::State;

/// The running watches of cluster mode; they stop when it is dropped.
#[derive(Debug)]
pub struct ClusterMode {
    /// Namespace labels, Secrets and ServiceAccounts, for the engine.
    pub inputs: Arc<KubeInputs>,
    /// The policies and exceptions of every kind.
    pub policies: PolicyWatch,
}

impl ClusterMode {
    /// Connects (`kubeconfig`, else `$KUBECONFIG`, else in-cluster) and starts watching
    /// (PolicyExceptions in `exception_namespace` only, when given).
    pub async fn start(
        kubeconfig: Option<&Path>,
        exception_namespace: Option<String>,
    ) -> anyhow::Result<ClusterMode> {
        let cluster = Cluster::connect(kubeconfig)
            .await
            .context("cluster mode (--no-kubernetes turns it off)")?;
        tracing::info!(
            namespace = %cluster.namespace,
            exception_namespace = exception_namespace.as_deref().unwrap_or("*"),
            "cluster mode: watching ClusterPolicies, Policies, ImageValidatingPolicies, PolicyExceptions, Namespaces and Secrets"
        );
        let options = WatchOptions {
            exception_namespace,
            ..WatchOptions::default()
        };
        Ok(ClusterMode {
            inputs: Arc::new(KubeInputs::start(&cluster)),
            policies: PolicyWatch::start_with(cluster.client.clone(), options),
        })
    }

    /// Whether the first complete lists of namespaces has arrived (the policies'
    /// readiness is [`State::cluster_synced`]: listed and swapped in).
    pub fn namespaces_ready(&self) -> bool {
        self.inputs.namespaces().is_ready()
    }
}

/// Swaps in the cluster's policies (combined with the files') each time the watch
/// publishes a new set, and keeps the invalid-policy metric current.
pub async fn follow(cluster: Arc<ClusterMode>, state: Arc<State>) {
    let mut changes = cluster.policies.changes();
    loop {
        // Read before the set: a set published with readiness is then never missed.
        let listed = cluster.policies.is_ready();
        let set = cluster.policies.current();
        let loaded = state.policies.replace_cluster(set.to_engine());
        state.metrics.policies_loaded(loaded);
        state.metrics.invalid_policies(
            set.invalid()
                .map(|(k, _)| (k.kind.as_str(), k.namespace.as_str(), k.name.as_str())),
        );
        if listed && !state.cluster_synced.swap(true, Ordering::SeqCst) {
            tracing::info!(
                policies = set.len(),
                "first complete list of the cluster's policies loaded"
            );
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}
