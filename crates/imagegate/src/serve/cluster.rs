//! Cluster mode: the Kubernetes API feeds the webhook. ClusterPolicies, Policies,
//! (Namespaced)ImageValidatingPolicies and PolicyExceptions are watched and combined with
//! the policy files; namespace labels, Secrets and
//! ServiceAccounts reach the engine through [`KubeInputs`]. Status conditions are
//! written by the policy watch's own writer task, never on the admission path.
//!
//! Results flow back the same way, queued: admission results into PolicyReports (the
//! leader of a Lease writes them; the other replicas hand theirs over through
//! EphemeralReports), Events for denials and Audit failures, and the PolicyReports of
//! background scans, which only the leader runs (see [`scan`]).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use imagegate_engine::admission::AdmissionRequest;
use imagegate_engine::{EngineResponse, Phase};
use imagegate_kube::admission_reports::{
    AdmissionReportOptions, AdmissionReports, AdmissionResult,
};
use imagegate_kube::events::{EventRecorder, EventRecorderOptions, admission_events};
use imagegate_kube::policies::WatchOptions;
use imagegate_kube::{
    BackgroundScanner, Cluster, KubeInputs, LeaderElectionOptions, LeaderElector, PolicyWatch,
    ReportWriter, ReportWriterOptions, ScanInputs, ScanOptions, WorkloadWatch, holder_identity,
};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::State;
use super::config::ClusterOutputs;

/// How often [`scan`] looks whether the cluster's policies are loaded yet.
const SYNC_POLL: Duration = Duration::from_millis(200);

/// The running watches of cluster mode; they stop when it is dropped.
#[derive(Debug)]
pub struct ClusterMode {
    /// Namespace labels, Secrets and ServiceAccounts, for the engine.
    pub inputs: Arc<KubeInputs>,
    /// The policies and exceptions of every kind.
    pub policies: PolicyWatch,
    /// Whether this replica leads (writes PolicyReports).
    pub leading: watch::Receiver<bool>,
    /// The election, when on.
    elector: Option<LeaderElector>,
    /// Keeps `leading` open (and true) when the election is off.
    _always: Option<watch::Sender<bool>>,
    /// Admission results into reports, when on.
    pub reports: Option<AdmissionReports>,
    /// Events, when on.
    pub events: Option<EventRecorder>,
    /// The Pods and pod controllers, when background scans are on.
    pub workloads: Option<Arc<WorkloadWatch>>,
    /// Where background scans and admission results write PolicyReports (queued,
    /// merged per resource, paced): the process's one writer.
    pub report_writer: Arc<ReportWriter>,
}

/// What one observed review left in the queues: results dropped because a queue was
/// full.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    /// Admission results for the reports.
    pub reports: bool,
    /// Events.
    pub events: usize,
}

impl ClusterMode {
    /// Connects (`kubeconfig`, else `$KUBECONFIG`, else in-cluster) and starts watching
    /// (PolicyExceptions in `exception_namespace` only, when given), electing, the report
    /// and Event writers `outputs` asks for, and the workloads watch when
    /// `background_scans`.
    pub async fn start(
        kubeconfig: Option<&Path>,
        outputs: &ClusterOutputs,
        background_scans: bool,
        exception_namespace: Option<String>,
    ) -> anyhow::Result<ClusterMode> {
        let cluster = Cluster::connect(kubeconfig)
            .await
            .context("cluster mode (--no-kubernetes turns it off)")?;
        let identity = holder_identity();
        tracing::info!(
            namespace = %cluster.namespace,
            identity = %identity,
            background_scans,
            exception_namespace = exception_namespace.as_deref().unwrap_or("*"),
            "cluster mode: watching ClusterPolicies, Policies, ImageValidatingPolicies, PolicyExceptions, Namespaces and Secrets"
        );
        let (elector, leading, always) = if outputs.leader_election {
            let options = LeaderElectionOptions {
                lease_duration: outputs.lease_duration,
                renew_deadline: outputs.renew_deadline,
                retry_period: outputs.retry_period,
                ..LeaderElectionOptions::new(&cluster.namespace, &identity)
            };
            let elector = LeaderElector::start(cluster.client.clone(), options)?;
            let leading = elector.leading();
            (Some(elector), leading, None)
        } else {
            let (always, leading) = watch::channel(true);
            (None, leading, Some(always))
        };
        // One writer for admissions and scans: it merges the results of one resource
        // whatever their source, which two writers applying in turn would not.
        let report_writer = Arc::new(ReportWriter::start(
            cluster.client.clone(),
            ReportWriterOptions::default(),
        ));
        let reports = outputs.admission_reports.then(|| {
            AdmissionReports::start(
                cluster.client.clone(),
                leading.clone(),
                Arc::clone(&report_writer),
                AdmissionReportOptions {
                    merge_interval: outputs.merge_interval,
                    ..AdmissionReportOptions::default()
                },
            )
        });
        let events = (outputs.max_queued_events > 0).then(|| {
            EventRecorder::start(
                cluster.client.clone(),
                EventRecorderOptions {
                    queue: outputs.max_queued_events,
                    ..EventRecorderOptions::new(&identity)
                },
            )
        });
        let options = WatchOptions {
            exception_namespace,
            ..WatchOptions::default()
        };
        Ok(ClusterMode {
            inputs: Arc::new(KubeInputs::start(&cluster)),
            policies: PolicyWatch::start_with(cluster.client.clone(), options),
            leading,
            elector,
            _always: always,
            reports,
            events,
            workloads: background_scans
                .then(|| Arc::new(WorkloadWatch::start(cluster.client.clone()))),
            report_writer,
        })
    }

    /// Whether the first complete lists of namespaces has arrived (the policies'
    /// readiness is [`State::cluster_synced`]: listed and swapped in).
    pub fn namespaces_ready(&self) -> bool {
        self.inputs.namespaces().is_ready()
    }

    /// Queues what one answered review leaves behind, as Kyverno's image-verification
    /// webhook does: Events for its failed rules (from the mutate phase, where
    /// verification happens, and from any denial), and when admitted, its results for
    /// the resource's PolicyReport (mutate phase; not for dry runs, deletions and
    /// subresources). Never waits.
    pub fn observe(
        &self,
        request: &AdmissionRequest,
        phase: Phase,
        evaluated: &EngineResponse,
        allowed: bool,
    ) -> Dropped {
        let mut dropped = Dropped::default();
        if evaluated.policies.is_empty() {
            return dropped;
        }
        let resource = resource_head(request);
        if let Some(events) = &self.events
            && (phase == Phase::Mutate || !allowed)
        {
            for event in admission_events(&resource, evaluated, !allowed) {
                if !events.submit(event) {
                    dropped.events += 1;
                }
            }
        }
        let reportable = allowed
            && phase == Phase::Mutate
            && !request.dry_run.unwrap_or(false)
            && matches!(request.operation.as_str(), "CREATE" | "UPDATE")
            && request.sub_resource.as_deref().unwrap_or("").is_empty();
        if let (Some(reports), true) = (&self.reports, reportable) {
            let gvr = |field: &str| {
                request
                    .resource
                    .as_ref()
                    .and_then(|r| r.get(field))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let timestamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or_default();
            let result = AdmissionResult {
                resource,
                group: gvr("group"),
                version: gvr("version"),
                plural: gvr("resource"),
                request_uid: request.uid.clone(),
                // Only what the report needs: not the patched object.
                response: EngineResponse {
                    resource: evaluated.resource.clone(),
                    policies: evaluated.policies.clone(),
                    ..EngineResponse::default()
                },
                timestamp,
            };
            dropped.reports = !reports.submit(result);
        }
        dropped
    }

    /// Stops electing, releasing the Lease if held (at shutdown).
    pub async fn stop(&self) {
        if let Some(elector) = &self.elector {
            elector.stop().await;
        }
    }
}

/// The reviewed object's `apiVersion`, `kind`, name, namespace and uid (when it has
/// one), from the object, else from the request.
fn resource_head(request: &AdmissionRequest) -> Value {
    let head = request.object_head().unwrap_or(Value::Null);
    let text = |value: &Value, pointer: &str| {
        value
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let or = |first: String, second: String| if first.is_empty() { second } else { first };
    let api_version = or(text(&head, "/apiVersion"), {
        let group = text(&request.kind, "/group");
        let version = text(&request.kind, "/version");
        if group.is_empty() {
            version
        } else {
            format!("{group}/{version}")
        }
    });
    let kind = or(text(&head, "/kind"), text(&request.kind, "/kind"));
    let name = or(
        text(&head, "/metadata/name"),
        request.name.clone().unwrap_or_default(),
    );
    let namespace = or(
        request.namespace.clone().unwrap_or_default(),
        text(&head, "/metadata/namespace"),
    );
    let mut metadata = json!({"name": name});
    if !namespace.is_empty() {
        metadata["namespace"] = json!(namespace);
    }
    let uid = text(&head, "/metadata/uid");
    if !uid.is_empty() {
        metadata["uid"] = json!(uid);
    }
    json!({"apiVersion": api_version, "kind": kind, "metadata": metadata})
}

/// Keeps the leader gauge current, and has the report writer forget what it wrote on
/// a change of leader (another replica may have written the same reports since).
pub async fn follow_leadership(cluster: Arc<ClusterMode>, state: Arc<State>) {
    let mut leading = cluster.leading.clone();
    loop {
        let now = *leading.borrow_and_update();
        state.metrics.leader(now);
        cluster.report_writer.forget();
        if leading.changed().await.is_err() {
            return;
        }
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
            leader: cluster.leading.clone(),
            reports: Arc::clone(&cluster.report_writer),
            observer: Arc::new(state.metrics.scan.clone()),
        },
        options,
    );
    // The scanner stops when dropped, i.e. when this task is aborted.
    std::future::pending::<()>().await;
}
