//! Writing PolicyReports (`wgpolicyk8s.io/v1alpha2` PolicyReport and
//! ClusterPolicyReport, built by `imagegate_engine::report`) to the API, off the
//! admission path: [`ReportWriter::submit`] only queues (never waits; a full queue drops
//! and counts), a task batches what arrived within a window and writes each object with
//! server-side apply (field manager `imagegate`, forced), at most one write per
//! `min_interval`, each with a deadline.
//!
//! One writer per process takes the reports of admissions and of background scans.
//! Whatever their source, the reports of one resource are merged ([`merge_reports`]: per
//! policy and rule the newer result, as Kyverno's aggregation keeps), within a batch and
//! with the stored report: an apply replaces the whole `results` list (an atomic list
//! in the CRD), so a scan's report written alone would erase the results of admissions
//! (of policies that do not run in the background, say) and the other way round. The
//! stored report is read before a write unless this writer wrote it lately.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

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
    /// Deadline of one write (and of reading the stored report before it).
    pub deadline: Duration,
    /// How long a report this writer wrote is trusted as the base of the next merge
    /// without reading it back.
    pub remember_for: Duration,
    /// Written reports remembered at most (beyond, the stale ones are forgotten, then
    /// all).
    pub remembered: usize,
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
            // Longer than the window and pacing: a resource reported twice in a row
            // (a scan right after its admission) builds on the first write without a read.
            remember_for: Duration::from_secs(30),
            remembered: 4096,
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
    /// Writes (or the reads of the stored report before them) that failed or timed out
    /// (logged; the report is not written: written without its base, it would erase
    /// the stored results).
    pub failed: AtomicU64,
    /// Reports dropped because the queue was full.
    pub dropped: AtomicU64,
    /// Reports merged in a batch into an earlier one for the same object (one write
    /// for both).
    pub superseded: AtomicU64,
    /// Stored reports read back before a write (not written lately by this writer).
    pub read_back: AtomicU64,
}

/// The running writer; stops (dropping what is queued) when dropped.
#[derive(Debug)]
pub struct ReportWriter {
    queue: mpsc::Sender<(ReportKey, Value)>,
    counters: Arc<ReportCounters>,
    /// Set by [`ReportWriter::forget`], cleared by the task when it forgets.
    forget: Arc<AtomicBool>,
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
        let forget = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(
            client,
            options,
            receiver,
            counters.clone(),
            forget.clone(),
        ));
        ReportWriter {
            queue,
            counters,
            forget,
            task,
        }
    }

    /// Forgets the reports written lately: the next write of each reads the stored
    /// report first. For a change of leader: another replica may have written since.
    pub fn forget(&self) {
        self.forget.store(true, Ordering::Relaxed);
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
    forget: Arc<AtomicBool>,
) {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut pace = tokio::time::interval(options.min_interval.max(Duration::from_millis(1)));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // What this writer wrote lately, per object: the base of the next merge.
    let mut written: HashMap<ReportKey, (Instant, Value)> = HashMap::new();
    while let Some(first) = receiver.recv().await {
        let batch = gather(first, &mut receiver, &options, &counters).await;
        for (key, report) in batch {
            if forget.swap(false, Ordering::Relaxed) {
                written.clear();
            }
            pace.tick().await;
            let api = key.api(&client);
            let remembered = written
                .remove(&key)
                .filter(|(at, _)| at.elapsed() < options.remember_for)
                .map(|(_, report)| report);
            let base = match remembered {
                Some(report) => Ok(Some(report)),
                None => {
                    counters.read_back.fetch_add(1, Ordering::Relaxed);
                    read(&api, &key.name, options.deadline).await
                }
            };
            let failure = match base {
                Ok(base) => {
                    let merged = merge_reports(base.as_ref(), report);
                    let applied = tokio::time::timeout(
                        options.deadline,
                        api.patch(&key.name, &params, &Patch::Apply(&merged)),
                    )
                    .await;
                    match applied {
                        Ok(Ok(_)) => {
                            counters.written.fetch_add(1, Ordering::Relaxed);
                            remember(&mut written, key, merged, &options);
                            continue;
                        }
                        Ok(Err(e)) => format!("writing: {e}"),
                        Err(_) => format!("writing: no answer within {:?}", options.deadline),
                    }
                }
                Err(failure) => failure,
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

/// The stored report named `name`, `None` when there is none.
async fn read(
    api: &Api<DynamicObject>,
    name: &str,
    deadline: Duration,
) -> Result<Option<Value>, String> {
    match tokio::time::timeout(deadline, api.get_opt(name)).await {
        Ok(Ok(found)) => found
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| format!("reading the stored report: {e}")),
        Ok(Err(e)) => Err(format!("reading the stored report: {e}")),
        Err(_) => Err(format!(
            "reading the stored report: no answer within {deadline:?}"
        )),
    }
}

/// Remembers `report` as written, the table bounded by `options.remembered`.
fn remember(
    written: &mut HashMap<ReportKey, (Instant, Value)>,
    key: ReportKey,
    report: Value,
    options: &ReportWriterOptions,
) {
    let most = options.remembered.max(1);
    if written.len() >= most {
        let ttl = options.remember_for;
        written.retain(|_, (at, _)| at.elapsed() < ttl);
        if written.len() >= most {
            written.clear();
        }
    }
    written.insert(key, (Instant::now(), report));
}

/// One batch: `first` and what arrives within the window (up to the batch size), the
/// reports of one object merged, in order of first arrival.
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
                let earlier = std::mem::take(&mut batch[at].1);
                batch[at].1 = merge_reports(Some(&earlier), report);
            }
            None => {
                index.insert(key.clone(), batch.len());
                batch.push((key, report));
            }
        }
    }
    batch
}

/// `incoming` with the results of `base` it does not replace: one result per policy and
/// rule, the newer (by timestamp) of two, whichever the source (admission or scan);
/// sorted by policy then rule; summary recounted. Everything else is `incoming`'s.
pub fn merge_reports(base: Option<&Value>, mut incoming: Value) -> Value {
    let key = |r: &Value| (text(r, "/policy").to_owned(), text(r, "/rule").to_owned());
    let seconds = |r: &Value| r.pointer("/timestamp/seconds").and_then(Value::as_i64);
    let mut results: Vec<Value> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    let old = base
        .and_then(|b| b.get("results"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let new = incoming
        .get("results")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    // Base first, then incoming: on a tie the incoming result wins.
    for result in old.chain(new) {
        match index.get(&key(result)) {
            Some(&at) if seconds(&results[at]) > seconds(result) => {}
            Some(&at) => results[at] = result.clone(),
            None => {
                index.insert(key(result), results.len());
                results.push(result.clone());
            }
        }
    }
    results.sort_by_key(key);
    incoming["results"] = Value::Array(results);
    incoming["summary"] = summary_of(&incoming["results"]);
    incoming
}

/// The `summary` of `results`: how many of each result.
pub(crate) fn summary_of(results: &Value) -> Value {
    let mut summary = json!({"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 0});
    for result in results.as_array().into_iter().flatten() {
        if let Some(count) = summary.get_mut(text(result, "/result")) {
            let before = count.as_u64().unwrap_or(0);
            *count = json!(before + 1);
        }
    }
    summary
}

pub(crate) fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
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
        json!({"apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
               "metadata": {"name": "imagegate-u-1", "namespace": "prod"},
               "results": results})
    }

    #[test]
    fn merging_keeps_one_newest_result_per_policy_and_rule() {
        let base = report(vec![
            result("b", "r", "pass", 10),
            result("a", "r", "fail", 10),
            result("c", "r", "pass", 30),
        ]);
        let incoming = report(vec![
            result("a", "r", "pass", 20),
            result("c", "r", "fail", 20),
        ]);
        let merged = merge_reports(Some(&base), incoming);
        let results: Vec<(&str, &str)> = merged["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (text(r, "/policy"), text(r, "/result")))
            .collect();
        // `a` newer in the incoming, `c` newer in the base, `b` kept.
        assert_eq!(results, [("a", "pass"), ("b", "pass"), ("c", "pass")]);
        assert_eq!(
            merged["summary"],
            json!({"pass": 3, "fail": 0, "warn": 0, "error": 0, "skip": 0})
        );
        let alone = merge_reports(None, report(vec![result("a", "r", "fail", 1)]));
        assert_eq!(alone["summary"]["fail"], 1);
    }
}
