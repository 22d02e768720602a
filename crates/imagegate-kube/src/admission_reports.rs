//! Admission results into PolicyReports, off the admission path, with only the leader
//! writing reports (Kyverno ≥ 1.10's admission reports and aggregation, simplified).
//!
//! [`AdmissionReports::submit`] only queues (a full queue drops and counts). A task then:
//! - finds the resource's uid when the request had none (CREATE: the object is stored
//!   after admission): it reads the object's metadata a few times over some seconds, at
//!   most `pending` resources at once (more are dropped and counted; memory stays bounded);
//!   a resource that never appears (another webhook denied it) is dropped;
//! - on the leader: queues the results as the resource's report (`imagegate-<uid>`) on
//!   the process's one [`ReportWriter`], shared with background scans, which merges them
//!   into the stored report (results keyed by policy and rule, the newer of two kept)
//!   and writes it (server-side apply, batched, paced);
//! - on the other replicas: writes a `reports.kyverno.io/v1` EphemeralReport (or
//!   ClusterEphemeralReport) `imagegate-<request uid>` holding the same results, labelled
//!   `app.kubernetes.io/managed-by: imagegate` (so Kyverno's own aggregation leaves it
//!   alone) and owned by the resource (so it goes with it);
//! - on the leader, every `merge_interval`: lists those EphemeralReports, queues each
//!   on the writer (merged into its resource's report alike) and deletes it. A replica's results thus reach the
//!   reports within about `merge_interval` plus the writer's window.
//!
//! Unlike Kyverno, whose admission ephemeral reports of a CREATE carry no uid and are
//! matched to the resource later, imagegate looks the uid up before writing anything:
//! every intermediate object then names its resource and owner, and nothing waits in the
//! cluster for a resource that never comes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use imagegate_engine::report::{MANAGED_BY_LABEL, SOURCE};
use imagegate_engine::{EngineResponse, PolicyReport, Process};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::reports::{ReportWriter, summary_of, text};

/// Group and version of the ephemeral reports (Kyverno's).
const EPHEMERAL_GROUP: &str = "reports.kyverno.io";
const EPHEMERAL_VERSION: &str = "v1";
/// Label naming the resource of an ephemeral report (Kyverno's).
const RESOURCE_UID_LABEL: &str = "audit.kyverno.io/resource.uid";
/// Label naming where the results come from (Kyverno's).
const SOURCE_LABEL: &str = "audit.kyverno.io/source";

/// How the reports are fed.
#[derive(Debug, Clone)]
pub struct AdmissionReportOptions {
    /// Results waiting at most; more are dropped (and counted).
    pub queue: usize,
    /// Resources waiting for their uid at most; more are dropped (and counted).
    pub pending: usize,
    /// Waits before each look-up of a created resource's uid (then it is dropped).
    pub uid_lookups: Vec<Duration>,
    /// How often the leader merges the other replicas' EphemeralReports.
    pub merge_interval: Duration,
    /// EphemeralReports merged per round at most.
    pub merge_batch: u32,
    /// Deadline of one API call.
    pub deadline: Duration,
}

impl Default for AdmissionReportOptions {
    fn default() -> Self {
        AdmissionReportOptions {
            queue: 1024,
            pending: 256,
            uid_lookups: [250, 500, 1000, 2000, 4000]
                .into_iter()
                .map(Duration::from_millis)
                .collect(),
            merge_interval: Duration::from_secs(1),
            merge_batch: 500,
            deadline: Duration::from_secs(10),
        }
    }
}

/// The results of one admission review.
#[derive(Debug, Clone)]
pub struct AdmissionResult {
    /// The reviewed object's `apiVersion`, `kind` and `metadata` (`name`, `namespace`,
    /// and `uid` when the request had one).
    pub resource: Value,
    /// The resource as the request names it (`{group, version, resource}`), to look up
    /// the uid of a created object.
    pub group: String,
    /// See [`AdmissionResult::group`].
    pub version: String,
    /// See [`AdmissionResult::group`] (the plural).
    pub plural: String,
    /// The request's uid (names the EphemeralReport).
    pub request_uid: String,
    /// The engine's results.
    pub response: EngineResponse,
    /// When (seconds since the epoch).
    pub timestamp: i64,
}

/// Counters, for metrics and tests.
#[derive(Debug, Default)]
pub struct AdmissionReportCounters {
    /// Results dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Results dropped because too many resources waited for their uid, or the resource
    /// never appeared.
    pub unresolved: AtomicU64,
    /// Results queued on the writer (merged into their report) by this replica as
    /// leader (its own and others').
    pub merged: AtomicU64,
    /// EphemeralReports written by this replica as follower.
    pub ephemeral_written: AtomicU64,
    /// EphemeralReports of other replicas merged and deleted by this replica as leader.
    pub ephemeral_merged: AtomicU64,
    /// API calls that failed or timed out (logged).
    pub failed: AtomicU64,
}

/// The running feed; stops when dropped.
#[derive(Debug)]
pub struct AdmissionReports {
    queue: mpsc::Sender<AdmissionResult>,
    counters: Arc<AdmissionReportCounters>,
    writer: Arc<ReportWriter>,
    task: JoinHandle<()>,
}

impl Drop for AdmissionReports {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AdmissionReports {
    /// Starts the feed; `leading` says whether this replica writes the reports, through
    /// `writer` (the process's one writer, which background scans share).
    pub fn start(
        client: kube::Client,
        leading: watch::Receiver<bool>,
        writer: Arc<ReportWriter>,
        options: AdmissionReportOptions,
    ) -> AdmissionReports {
        let (queue, receiver) = mpsc::channel(options.queue.max(1));
        let counters = Arc::new(AdmissionReportCounters::default());
        let feed = Feed {
            client,
            leading,
            counters: counters.clone(),
            writer: writer.clone(),
            pending: Arc::new(Semaphore::new(options.pending.max(1))),
            warned_missing_crd: false,
            options,
        };
        let task = tokio::spawn(feed.run(receiver));
        AdmissionReports {
            queue,
            counters,
            writer,
            task,
        }
    }

    /// Queues `result` and returns at once; `false` when the queue was full (dropped,
    /// counted: the next admission or scan of the resource brings fresh results).
    pub fn submit(&self, result: AdmissionResult) -> bool {
        if self.queue.try_send(result).is_ok() {
            return true;
        }
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// The feed's counters.
    pub fn counters(&self) -> &AdmissionReportCounters {
        &self.counters
    }

    /// The report writer (its counters).
    pub fn writer(&self) -> &ReportWriter {
        &self.writer
    }
}

struct Feed {
    client: kube::Client,
    leading: watch::Receiver<bool>,
    counters: Arc<AdmissionReportCounters>,
    writer: Arc<ReportWriter>,
    pending: Arc<Semaphore>,
    warned_missing_crd: bool,
    options: AdmissionReportOptions,
}

impl Feed {
    async fn run(mut self, mut receiver: mpsc::Receiver<AdmissionResult>) {
        // Resolved results come back here; at most `pending` are ever in flight, so
        // the look-up tasks never wait on this channel for long.
        let (resolved_tx, mut resolved) = mpsc::channel(self.options.pending.max(1));
        let mut merge = tokio::time::interval(self.options.merge_interval);
        merge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                next = receiver.recv() => {
                    let Some(result) = next else { return };
                    if uid_of(&result.resource).is_empty() {
                        self.look_up(result, resolved_tx.clone());
                    } else {
                        self.record(result).await;
                    }
                }
                Some(result) = resolved.recv() => self.record(result).await,
                _ = merge.tick() => {
                    if *self.leading.borrow() {
                        self.merge_ephemeral().await;
                    }
                }
            }
        }
    }

    /// Finds the uid of a resource being created, in a task of its own.
    fn look_up(&self, mut result: AdmissionResult, resolved: mpsc::Sender<AdmissionResult>) {
        let Ok(permit) = self.pending.clone().try_acquire_owned() else {
            self.counters.unresolved.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let api = resource_api(&self.client, &result);
        let name = text(&result.resource, "/metadata/name").to_owned();
        let waits = self.options.uid_lookups.clone();
        let deadline = self.options.deadline;
        let counters = self.counters.clone();
        tokio::spawn(async move {
            let _permit = permit;
            for wait in waits {
                tokio::time::sleep(wait).await;
                let found = tokio::time::timeout(deadline, api.get_metadata_opt(&name)).await;
                let uid = match found {
                    Ok(Ok(Some(object))) => object.metadata.uid.unwrap_or_default(),
                    _ => String::new(),
                };
                if !uid.is_empty() {
                    result.resource["metadata"]["uid"] = json!(uid);
                    let _ = resolved.send(result).await;
                    return;
                }
            }
            counters.unresolved.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// Results of a resource with its uid: merged (leader) or left for the leader.
    async fn record(&mut self, result: AdmissionResult) {
        let report = match PolicyReport::for_resource(
            &result.resource,
            [&result.response],
            Process::Admission,
            result.timestamp,
        ) {
            Ok(report) if !report.is_empty() => report,
            Ok(_) => return,
            Err(e) => {
                tracing::debug!(error = %e, "no report for an admission result");
                return;
            }
        };
        let Ok(report) = serde_json::to_value(&report) else {
            return;
        };
        if *self.leading.borrow() {
            self.merge(report);
        } else {
            self.write_ephemeral(&report, &result.request_uid).await;
        }
    }

    /// Queues `incoming` on the writer, which merges it into its resource's report;
    /// `false` when the writer's queue was full.
    fn merge(&mut self, incoming: Value) -> bool {
        // Another replica may have led meanwhile: what the writer wrote before is stale.
        if self.leading.has_changed().unwrap_or(true) {
            let _ = self.leading.borrow_and_update();
            self.writer.forget();
        }
        match self.writer.submit(incoming) {
            Ok(true) => {
                self.counters.merged.fetch_add(1, Ordering::Relaxed);
                true
            }
            Ok(false) => false,
            Err(e) => self.failed("queueing a PolicyReport", &e.to_string()),
        }
    }

    async fn write_ephemeral(&mut self, report: &Value, request_uid: &str) {
        let ephemeral = to_ephemeral(report, request_uid);
        let namespace = text(&ephemeral, "/metadata/namespace").to_owned();
        let api = ephemeral_api(&self.client, &namespace);
        let Ok(object) = serde_json::from_value::<DynamicObject>(ephemeral) else {
            return;
        };
        let created = tokio::time::timeout(
            self.options.deadline,
            api.create(&PostParams::default(), &object),
        )
        .await;
        match created {
            Ok(Ok(_)) => {
                self.counters
                    .ephemeral_written
                    .fetch_add(1, Ordering::Relaxed);
            }
            // The same request answered twice (the API server retried): already there.
            Ok(Err(kube::Error::Api(status))) if status.code == 409 => {}
            Ok(Err(kube::Error::Api(status))) if status.code == 404 => {
                self.missing_crd();
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                self.failed("writing an EphemeralReport", &e.to_string());
            }
            Err(_) => {
                self.failed("writing an EphemeralReport", "no answer in time");
            }
        }
    }

    /// The leader's round: the other replicas' EphemeralReports into the reports.
    async fn merge_ephemeral(&mut self) {
        let params = ListParams::default()
            .labels(&format!("{MANAGED_BY_LABEL}={SOURCE}"))
            .limit(self.options.merge_batch.max(1));
        for cluster in [false, true] {
            let api = if cluster {
                ephemeral_api(&self.client, "")
            } else {
                let resource = ephemeral_resource(false);
                Api::all_with(self.client.clone(), &resource)
            };
            let listed = tokio::time::timeout(self.options.deadline, api.list(&params)).await;
            let items = match listed {
                Ok(Ok(list)) => list.items,
                Ok(Err(kube::Error::Api(status))) if status.code == 404 => {
                    self.missing_crd();
                    continue;
                }
                Ok(Err(e)) => {
                    self.failed("listing EphemeralReports", &e.to_string());
                    continue;
                }
                Err(_) => {
                    self.failed("listing EphemeralReports", "no answer in time");
                    continue;
                }
            };
            for item in items {
                let name = item.metadata.name.clone().unwrap_or_default();
                let namespace = item.metadata.namespace.clone().unwrap_or_default();
                let Ok(value) = serde_json::to_value(&item) else {
                    continue;
                };
                // One that names no resource is not imagegate's to keep: delete it.
                if let Some(report) = from_ephemeral(&value)
                    && !self.merge(report)
                {
                    // Not queued: keep it for the next round.
                    continue;
                }
                let api = ephemeral_api(&self.client, &namespace);
                let deleted = tokio::time::timeout(
                    self.options.deadline,
                    api.delete(&name, &DeleteParams::default()),
                )
                .await;
                match deleted {
                    Ok(Ok(_)) => {
                        self.counters
                            .ephemeral_merged
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(kube::Error::Api(status))) if status.code == 404 => {}
                    Ok(Err(e)) => {
                        self.failed("deleting an EphemeralReport", &e.to_string());
                    }
                    Err(_) => {
                        self.failed("deleting an EphemeralReport", "no answer in time");
                    }
                }
            }
        }
    }

    fn failed(&self, what: &str, error: &str) -> bool {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error, "{what} failed");
        false
    }

    fn missing_crd(&mut self) {
        if !self.warned_missing_crd {
            self.warned_missing_crd = true;
            tracing::warn!(
                "the reports.kyverno.io EphemeralReport CRDs are not installed: results of admissions answered by replicas that do not lead do not reach the PolicyReports (install Kyverno's CRDs or the chart's)"
            );
        }
    }
}

fn uid_of(resource: &Value) -> &str {
    text(resource, "/metadata/uid")
}

/// The API of the reviewed resource's kind, where it lives.
fn resource_api(client: &kube::Client, result: &AdmissionResult) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(
        &result.group,
        &result.version,
        text(&result.resource, "/kind"),
    );
    let resource = ApiResource::from_gvk_with_plural(&gvk, &result.plural);
    match text(&result.resource, "/metadata/namespace") {
        "" => Api::all_with(client.clone(), &resource),
        namespace => Api::namespaced_with(client.clone(), namespace, &resource),
    }
}

fn ephemeral_resource(cluster: bool) -> ApiResource {
    let (kind, plural) = if cluster {
        ("ClusterEphemeralReport", "clusterephemeralreports")
    } else {
        ("EphemeralReport", "ephemeralreports")
    };
    let gvk = GroupVersionKind::gvk(EPHEMERAL_GROUP, EPHEMERAL_VERSION, kind);
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

/// The API of the EphemeralReports in `namespace`, or of the ClusterEphemeralReports
/// when `namespace` is empty.
fn ephemeral_api(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    if namespace.is_empty() {
        Api::all_with(client.clone(), &ephemeral_resource(true))
    } else {
        Api::namespaced_with(client.clone(), namespace, &ephemeral_resource(false))
    }
}

/// A report's results as an EphemeralReport (Kyverno's shape: `spec.owner`,
/// `spec.summary`, `spec.results`) named after the request.
pub fn to_ephemeral(report: &Value, request_uid: &str) -> Value {
    let namespace = text(report, "/metadata/namespace");
    let kind = if namespace.is_empty() {
        "ClusterEphemeralReport"
    } else {
        "EphemeralReport"
    };
    let owner = report
        .pointer("/metadata/ownerReferences/0")
        .cloned()
        .unwrap_or(Value::Null);
    let mut metadata = json!({
        "name": format!("{SOURCE}-{request_uid}"),
        "labels": {
            MANAGED_BY_LABEL: SOURCE,
            RESOURCE_UID_LABEL: text(report, "/scope/uid"),
            SOURCE_LABEL: "admission",
        },
        "ownerReferences": [owner.clone()],
    });
    if !namespace.is_empty() {
        metadata["namespace"] = json!(namespace);
    }
    json!({
        "apiVersion": format!("{EPHEMERAL_GROUP}/{EPHEMERAL_VERSION}"),
        "kind": kind,
        "metadata": metadata,
        "spec": {
            "owner": owner,
            "summary": report.get("summary").cloned().unwrap_or(Value::Null),
            "results": report.get("results").cloned().unwrap_or_else(|| json!([])),
        },
    })
}

/// The report an EphemeralReport of [`to_ephemeral`] stands for; `None` when it names
/// no resource.
pub fn from_ephemeral(ephemeral: &Value) -> Option<Value> {
    let owner = ephemeral.pointer("/spec/owner")?;
    let field = |name: &str| owner.get(name).and_then(Value::as_str).unwrap_or("");
    let (api_version, kind, name, uid) = (
        field("apiVersion"),
        field("kind"),
        field("name"),
        field("uid"),
    );
    if kind.is_empty() || name.is_empty() || uid.is_empty() {
        return None;
    }
    let namespace = text(ephemeral, "/metadata/namespace");
    let reference = json!({"apiVersion": api_version, "kind": kind, "name": name, "uid": uid});
    let mut scope = reference.clone();
    let mut metadata = json!({
        "name": format!("{SOURCE}-{uid}"),
        "labels": {MANAGED_BY_LABEL: SOURCE},
        "ownerReferences": [reference],
    });
    if !namespace.is_empty() {
        scope["namespace"] = json!(namespace);
        metadata["namespace"] = json!(namespace);
    }
    let results = ephemeral
        .pointer("/spec/results")
        .filter(|r| r.is_array())
        .cloned()
        .unwrap_or_else(|| json!([]));
    let mut report = json!({
        "apiVersion": imagegate_engine::report::API_VERSION,
        "kind": if namespace.is_empty() {
            imagegate_engine::report::KIND_CLUSTER
        } else {
            imagegate_engine::report::KIND_NAMESPACED
        },
        "metadata": metadata,
        "scope": scope,
        "results": results,
    });
    report["summary"] = summary_of(&report["results"]);
    Some(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(policy: &str, rule: &str, status: &str, seconds: i64) -> Value {
        json!({"source": "imagegate", "policy": policy, "rule": rule, "result": status,
               "scored": true, "timestamp": {"seconds": seconds, "nanos": 0},
               "properties": {"process": "admission review"}})
    }

    fn report(results: Vec<Value>) -> Value {
        let reference = json!({"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "u-1"});
        let mut scope = reference.clone();
        scope["namespace"] = json!("prod");
        let mut report = json!({
            "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
            "metadata": {"name": "imagegate-u-1", "namespace": "prod",
                         "labels": {"app.kubernetes.io/managed-by": "imagegate"},
                         "ownerReferences": [reference]},
            "scope": scope,
            "results": results,
        });
        report["summary"] = summary_of(&report["results"]);
        report
    }

    #[test]
    fn an_ephemeral_report_stands_for_the_same_report() {
        let original = report(vec![
            result("a", "r", "fail", 1),
            result("b", "r", "pass", 1),
        ]);
        let ephemeral = to_ephemeral(&original, "req-9");
        assert_eq!(ephemeral["kind"], "EphemeralReport");
        assert_eq!(ephemeral["metadata"]["name"], "imagegate-req-9");
        assert_eq!(ephemeral["metadata"]["namespace"], "prod");
        assert_eq!(ephemeral["metadata"]["labels"][RESOURCE_UID_LABEL], "u-1");
        assert_eq!(ephemeral["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(from_ephemeral(&ephemeral), Some(original));
        let nameless =
            json!({"metadata": {"namespace": "prod"}, "spec": {"owner": {"kind": "Pod"}}});
        assert_eq!(from_ephemeral(&nameless), None);
    }
}
