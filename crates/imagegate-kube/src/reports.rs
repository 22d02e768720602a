//! Writing PolicyReports (`wgpolicyk8s.io/v1alpha2` PolicyReport and
//! ClusterPolicyReport, built by `imagegate_engine::report`) to the API, off the
//! admission path: [`ReportWriter::submit`] only queues (never waits; a full queue drops
//! and counts), a task batches what arrived within a window, keeps the newest report per
//! object, and writes each with server-side apply (field manager `imagegate`, forced), at
//! most one write per `min_interval`, each with a deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::policies::FIELD_MANAGER;

/// Group and version of the reports.
const GROUP: &str = "wgpolicyk8s.io";
const VERSION: &str = "v1alpha2";

/// How the writer queues, batches and paces its writes.
#[derive(Debug, Clone)]
pub struct ReportWriterOptions {
    /// Reports waiting to be written at most; more are dropped (and counted).
    pub queue: usize,
    /// Reports gathered into one batch at most.
    pub batch: usize,
    /// How long a batch gathers after its first report.
    pub window: Duration,
    /// The least time between two writes (the rate limit).
    pub min_interval: Duration,
    /// Deadline of one write.
    pub deadline: Duration,
}

impl Default for ReportWriterOptions {
    fn default() -> Self {
        ReportWriterOptions {
            queue: 4096,
            batch: 256,
            window: Duration::from_millis(500),
            // 50 writes per second, what the API server's default client QPS allows.
            min_interval: Duration::from_millis(20),
            deadline: Duration::from_secs(10),
        }
    }
}

/// A report that cannot be written: not a PolicyReport or ClusterPolicyReport with a
/// name (and a namespace for a PolicyReport).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a writable report: {reason}")]
pub struct NotAReport {
    /// What is missing or wrong.
    pub reason: String,
}

/// Which object a report is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ReportKey {
    cluster: bool,
    namespace: String,
    name: String,
}

impl ReportKey {
    fn of(report: &Value) -> Result<ReportKey, NotAReport> {
        let text = |pointer: &str| {
            report
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        let bad = |reason: &str| NotAReport {
            reason: reason.to_owned(),
        };
        if text("/apiVersion") != format!("{GROUP}/{VERSION}") {
            return Err(bad("apiVersion is not wgpolicyk8s.io/v1alpha2"));
        }
        let cluster = match text("/kind") {
            "PolicyReport" => false,
            "ClusterPolicyReport" => true,
            _ => return Err(bad("kind is neither PolicyReport nor ClusterPolicyReport")),
        };
        let name = text("/metadata/name");
        if name.is_empty() {
            return Err(bad("metadata.name is empty"));
        }
        let namespace = text("/metadata/namespace");
        if !cluster && namespace.is_empty() {
            return Err(bad("a PolicyReport needs metadata.namespace"));
        }
        Ok(ReportKey {
            cluster,
            // A ClusterPolicyReport has none, whatever the object says.
            namespace: if cluster { "" } else { namespace }.to_owned(),
            name: name.to_owned(),
        })
    }

    fn api(&self, client: &kube::Client) -> Api<DynamicObject> {
        report_api(client, &self.namespace)
    }
}

/// The API of the PolicyReports in `namespace`, or of the ClusterPolicyReports when
/// `namespace` is empty.
pub(crate) fn report_api(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let (kind, plural) = if namespace.is_empty() {
        ("ClusterPolicyReport", "clusterpolicyreports")
    } else {
        ("PolicyReport", "policyreports")
    };
    let gvk = GroupVersionKind::gvk(GROUP, VERSION, kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
    if namespace.is_empty() {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), namespace, &resource)
    }
}

/// Counters of the writer, for metrics and tests.
#[derive(Debug, Default)]
pub struct ReportCounters {
    /// Reports written.
    pub written: AtomicU64,
    /// Writes that failed or timed out (logged).
    pub failed: AtomicU64,
    /// Reports dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Reports replaced in a batch by a newer one for the same object (never written).
    pub superseded: AtomicU64,
}

/// The running writer; stops (dropping what is queued) when dropped.
#[derive(Debug)]
pub struct ReportWriter {
    queue: mpsc::Sender<(ReportKey, Value)>,
    counters: Arc<ReportCounters>,
    task: JoinHandle<()>,
}

impl Drop for ReportWriter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ReportWriter {
    /// Starts the writing task.
    pub fn start(client: kube::Client, options: ReportWriterOptions) -> ReportWriter {
        let (queue, receiver) = mpsc::channel(options.queue.max(1));
        let counters = Arc::new(ReportCounters::default());
        let task = tokio::spawn(run(client, options, receiver, counters.clone()));
        ReportWriter {
            queue,
            counters,
            task,
        }
    }

    /// Queues `report` for writing and returns at once. `Ok(false)` when the queue is
    /// full and the report was dropped (counted; the next evaluation of the resource
    /// brings a fresh one).
    pub fn submit(&self, report: Value) -> Result<bool, NotAReport> {
        let key = ReportKey::of(&report)?;
        match self.queue.try_send((key, report)) {
            Ok(()) => Ok(true),
            Err(_) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
        }
    }

    /// Queues `report`, waiting at most `wait` for room: for producers that may be
    /// slowed down (a background scan paces itself to the writer's rate instead of
    /// having its reports dropped), never for admission. `Ok(false)` when no room came
    /// in time (dropped and counted, as by [`ReportWriter::submit`]).
    pub async fn submit_waiting(&self, report: Value, wait: Duration) -> Result<bool, NotAReport> {
        let key = ReportKey::of(&report)?;
        match tokio::time::timeout(wait, self.queue.send((key, report))).await {
            Ok(Ok(())) => Ok(true),
            _ => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
        }
    }

    /// The writer's counters.
    pub fn counters(&self) -> &ReportCounters {
        &self.counters
    }
}

async fn run(
    client: kube::Client,
    options: ReportWriterOptions,
    mut receiver: mpsc::Receiver<(ReportKey, Value)>,
    counters: Arc<ReportCounters>,
) {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut pace = tokio::time::interval(options.min_interval.max(Duration::from_millis(1)));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while let Some(first) = receiver.recv().await {
        let batch = gather(first, &mut receiver, &options, &counters).await;
        for (key, report) in batch {
            pace.tick().await;
            let api = key.api(&client);
            let written = tokio::time::timeout(
                options.deadline,
                api.patch(&key.name, &params, &Patch::Apply(&report)),
            )
            .await;
            let failure = match written {
                Ok(Ok(_)) => {
                    counters.written.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {:?}", options.deadline),
            };
            counters.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                namespace = %key.namespace,
                report = %key.name,
                error = %failure,
                "writing a PolicyReport failed"
            );
        }
    }
}

/// One batch: `first` and what arrives within the window (up to the batch size), the
/// newest report per object, in order of first arrival.
async fn gather(
    first: (ReportKey, Value),
    receiver: &mut mpsc::Receiver<(ReportKey, Value)>,
    options: &ReportWriterOptions,
    counters: &ReportCounters,
) -> Vec<(ReportKey, Value)> {
    let mut batch = vec![first];
    let mut index: HashMap<ReportKey, usize> = HashMap::from([(batch[0].0.clone(), 0)]);
    let deadline = tokio::time::Instant::now() + options.window;
    let mut received = 1;
    while received < options.batch.max(1) {
        let next = tokio::time::timeout_at(deadline, receiver.recv()).await;
        let Ok(Some((key, report))) = next else {
            break;
        };
        received += 1;
        match index.get(&key) {
            Some(&at) => {
                counters.superseded.fetch_add(1, Ordering::Relaxed);
                batch[at].1 = report;
            }
            None => {
                index.insert(key.clone(), batch.len());
                batch.push((key, report));
            }
        }
    }
    batch
}
