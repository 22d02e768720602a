//! Cluster mode: the Kubernetes API feeds the webhook. ClusterPolicies and Policies are
//! watched and combined with the policy files; namespace labels, Secrets and
//! ServiceAccounts reach the engine through [`KubeInputs`]. Status conditions are
//! written by the policy watch's own writer task, never on the admission path; so are
//! the PolicyReports of background scans (see [`scan`]).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use imagegate_kube::{
    BackgroundScanner, Cluster, KubeInputs, PolicyWatch, ReportWriter, ReportWriterOptions,
    ScanInputs, ScanOptions, WorkloadWatch,
};
use imagegate_policy::model::Policy;
use tokio::sync::watch;

use super::State;

/// How often [`scan`] looks whether the cluster's policies are loaded yet.
const SYNC_POLL: Duration = Duration::from_millis(200);

/// The running watches of cluster mode; they stop when it is dropped.
#[derive(Debug)]
pub struct ClusterMode {
    /// Namespace labels, Secrets and ServiceAccounts, for the engine.
    pub inputs: Arc<KubeInputs>,
    /// The ClusterPolicies and Policies.
    pub policies: PolicyWatch,
    /// The Pods and pod controllers, when background scans are on.
    pub workloads: Option<Arc<WorkloadWatch>>,
    /// Where PolicyReports are written (queued, paced).
    pub reports: Arc<ReportWriter>,
    /// Whether this replica leads (scans and writes reports).
    pub leader: watch::Receiver<bool>,
    /// Holds `leader` true: one replica is assumed until leader election (a Lease,
    /// issue 11) is wired in here; with several replicas each would scan.
    _leader: watch::Sender<bool>,
}

impl ClusterMode {
    /// Connects (`kubeconfig`, else `$KUBECONFIG`, else in-cluster) and starts watching
    /// (the workloads too when `background_scans`).
    pub async fn start(
        kubeconfig: Option<&Path>,
        background_scans: bool,
    ) -> anyhow::Result<ClusterMode> {
        let cluster = Cluster::connect(kubeconfig)
            .await
            .context("cluster mode (--no-kubernetes turns it off)")?;
        tracing::info!(
            namespace = %cluster.namespace,
            background_scans,
            "cluster mode: watching ClusterPolicies, Policies, Namespaces and Secrets"
        );
        let (leader_sender, leader) = watch::channel(true);
        Ok(ClusterMode {
            inputs: Arc::new(KubeInputs::start(&cluster)),
            policies: PolicyWatch::start(cluster.client.clone()),
            workloads: background_scans
                .then(|| Arc::new(WorkloadWatch::start(cluster.client.clone()))),
            reports: Arc::new(ReportWriter::start(
                cluster.client.clone(),
                ReportWriterOptions::default(),
            )),
            leader,
            _leader: leader_sender,
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
        let policies: Vec<Policy> = set.iter().map(|(_, p)| p.as_ref().clone()).collect();
        let loaded = state.policies.replace_cluster(policies);
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

/// Background scans with the webhook's engine (caches shared with admission) over the
/// webhook's policies, once the cluster's policies are loaded (a first scan without them
/// would report only the files'), while this replica leads. Runs until aborted.
pub async fn scan(cluster: Arc<ClusterMode>, state: Arc<State>, options: ScanOptions) {
    let Some(workloads) = cluster.workloads.clone() else {
        return;
    };
    while !state.cluster_synced.load(Ordering::SeqCst) {
        tokio::time::sleep(SYNC_POLL).await;
    }
    let _scanner = BackgroundScanner::start(
        workloads,
        ScanInputs {
            engine: state.engine.clone(),
            policies: state.policies.subscribe(),
            leader: cluster.leader.clone(),
            reports: Arc::clone(&cluster.reports),
            observer: Arc::new(state.metrics.scan.clone()),
        },
        options,
    );
    // The scanner stops when dropped, i.e. when this task is aborted.
    std::future::pending::<()>().await;
}
