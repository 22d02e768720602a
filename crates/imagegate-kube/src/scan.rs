//! Background scans: the images of the Pods and pod controllers already in the cluster
//! verified against the policies that run in the background, with the results written
//! as PolicyReports — on start, when the policies change and every interval, by the
//! leader only.
//!
//! - Workloads are watched (one watch per kind) and kept trimmed to what evaluation
//!   reads ([`trim`]: names, labels, owner references, container names and images, pull
//!   secrets), so a large cluster costs little memory.
//! - A Pod (or ReplicaSet, Job) whose controller is a watched kind is reported on the
//!   controller, as Kyverno does ([`top_level`]).
//! - Each scan evaluates with [`Engine::for_background_scan`]: the engine's caches and
//!   single-flight are shared with admission, but nothing cached before the scan
//!   started is trusted (a deleted signature or a rotated key turns pass into fail at
//!   the next scan), and each digest is verified once per scan.
//! - Registry requests go through a [`RequestGate`] narrower than the registry's own
//!   permits (admission keeps the rest) and paced to a rate; workloads are evaluated in
//!   the order of their images, so those sharing an image follow each other while its
//!   digest and verdict are cached.
//! - Reports are written through the [`ReportWriter`], waiting for room (a scan slows
//!   to the writer's pace rather than dropping reports), and only when their results
//!   changed since this leader last wrote them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;
use imagegate_engine::report::Summary;
use imagegate_engine::{AdmissionInput, Engine, PolicyReport, PolicySet, Process};
use imagegate_oci::RequestGate;
use imagegate_policy::matching::MatchContext;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::reports::ReportWriter;
use crate::workloads::{WORKLOAD_KINDS, has_controller_of_kind};

/// The annotation `kubectl apply` writes: a whole copy of the object, never read by
/// policies' image checks, and the largest thing in most objects' metadata.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Workloads evaluated at once per registry request the gate lets through: most
/// evaluations are answered from the scan's fresh cache and wait for nothing.
const WORKERS_PER_REQUEST: usize = 4;

/// How scans run.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Time from the end of one scan to the start of the next (`--background-scan-interval`).
    pub interval: Duration,
    /// Registry requests of a scan in flight at most (`--background-scan-concurrency`);
    /// keep it below the registry client's per-registry limit, the rest is admission's.
    pub concurrency: usize,
    /// Registry requests a scan starts per second at most (`--background-scan-rate`;
    /// 0: no rate bound).
    pub rate: u32,
    /// Deadline of evaluating one workload (its registry requests included).
    pub resource_deadline: Duration,
    /// How long a report may wait for room in the writer's queue before it is dropped.
    pub submit_wait: Duration,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            interval: Duration::from_secs(3600),
            concurrency: 4,
            rate: 20,
            resource_deadline: Duration::from_secs(60),
            submit_wait: Duration::from_secs(30),
        }
    }
}

/// Told about the progress and results of scans (for metrics); must be cheap.
pub trait ScanObserver: Send + Sync + std::fmt::Debug {
    /// A scan started over `resources` workloads.
    fn scan_started(&self, resources: usize);
    /// One workload was evaluated; `summary` counts its results.
    fn resource_scanned(&self, summary: &Summary);
    /// One workload could not be evaluated (deadline) or reported (no uid).
    fn resource_failed(&self);
    /// The scan ended after `took`; `completed` is false when it was cut short
    /// (leadership lost).
    fn scan_finished(&self, took: Duration, completed: bool);
}

/// An observer that observes nothing.
#[derive(Debug, Default)]
pub struct NoObserver;

impl ScanObserver for NoObserver {
    fn scan_started(&self, _resources: usize) {}
    fn resource_scanned(&self, _summary: &Summary) {}
    fn resource_failed(&self) {}
    fn scan_finished(&self, _took: Duration, _completed: bool) {}
}

// ---------------------------------------------------------------------------------------
// The watched workloads.

/// Trimmed workloads by kind, then uid.
type Table = HashMap<&'static str, HashMap<String, Arc<Value>>>;

/// The Pods and pod controllers of the cluster, trimmed ([`trim`]); the watches stop
/// when it is dropped.
#[derive(Debug)]
pub struct WorkloadWatch {
    table: Arc<RwLock<Table>>,
    /// Kinds the API server serves (their first list succeeded).
    served: Arc<RwLock<HashSet<&'static str>>>,
    /// Kinds whose first list ended (listed, or found not served).
    settled: watch::Receiver<usize>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for WorkloadWatch {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl WorkloadWatch {
    /// Starts one watch per workload kind.
    pub fn start(client: kube::Client) -> WorkloadWatch {
        let table = Arc::new(RwLock::new(Table::new()));
        let served = Arc::new(RwLock::new(HashSet::new()));
        let (settle, settled) = watch::channel(0usize);
        let settle = Arc::new(settle);
        let tasks = WORKLOAD_KINDS
            .iter()
            .map(|&(group, version, kind, plural)| {
                let gvk = GroupVersionKind::gvk(group, version, kind);
                let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
                tokio::spawn(watch_kind(
                    client.clone(),
                    resource,
                    kind,
                    table.clone(),
                    served.clone(),
                    settle.clone(),
                ))
            })
            .collect();
        WorkloadWatch {
            table,
            served,
            settled,
            tasks,
        }
    }

    /// Whether every kind has been listed once (or found not served).
    pub fn is_ready(&self) -> bool {
        *self.settled.borrow() >= WORKLOAD_KINDS.len()
    }

    /// Waits until [`WorkloadWatch::is_ready`].
    pub async fn ready(&self) {
        let mut settled = self.settled.clone();
        let _ = settled.wait_for(|n| *n >= WORKLOAD_KINDS.len()).await;
    }

    /// How many workloads are held (all kinds, owned ones included).
    pub fn len(&self) -> usize {
        read(&self.table).values().map(HashMap::len).sum()
    }

    /// Whether no workload is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The workloads a scan evaluates: those not controlled by a served workload kind,
    /// in the order of their images.
    pub fn to_scan(&self) -> Vec<Arc<Value>> {
        let served = read(&self.served).clone();
        let objects: Vec<Arc<Value>> = read(&self.table)
            .values()
            .flat_map(|by_uid| by_uid.values().cloned())
            .collect();
        let mut kept = top_level(objects, &served);
        kept.sort_by_cached_key(|object| images_of(object));
        kept
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

async fn watch_kind(
    client: kube::Client,
    resource: ApiResource,
    kind: &'static str,
    table: Arc<RwLock<Table>>,
    served: Arc<RwLock<HashSet<&'static str>>>,
    settle: Arc<watch::Sender<usize>>,
) {
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut relist: Option<HashMap<String, Arc<Value>>> = None;
    let mut settled = false;
    let settle_once = |settled: &mut bool| {
        if !std::mem::replace(settled, true) {
            settle.send_modify(|n| *n += 1);
        }
    };
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(watcher::Error::InitialListFailed(kube::Error::Api(status)))
                if status.code == 404 =>
            {
                tracing::warn!(
                    kind,
                    "the API server does not serve {}; not scanned",
                    resource.plural
                );
                settle_once(&mut settled);
                return;
            }
            Err(e) => {
                tracing::warn!(kind, error = %e, "workload watch failed; retrying with backoff");
                // A kind that cannot be listed yet (RBAC, an outage) must not hold every
                // scan back: scans go on without it (its Pods are then scanned as
                // themselves) until a list succeeds.
                if matches!(e, watcher::Error::InitialListFailed(_)) {
                    settle_once(&mut settled);
                }
                continue;
            }
        };
        match event {
            watcher::Event::Init => relist = Some(HashMap::new()),
            watcher::Event::InitApply(object) => {
                if let (Some(buffer), Some((uid, value))) =
                    (relist.as_mut(), entry(&resource, &object))
                {
                    buffer.insert(uid, value);
                }
            }
            watcher::Event::InitDone => {
                if let Some(buffer) = relist.take() {
                    write(&table).insert(kind, buffer);
                }
                write(&served).insert(kind);
                settle_once(&mut settled);
            }
            watcher::Event::Apply(object) => {
                if let Some((uid, value)) = entry(&resource, &object) {
                    write(&table).entry(kind).or_default().insert(uid, value);
                }
            }
            watcher::Event::Delete(object) => {
                if let Some(uid) = &object.metadata.uid
                    && let Some(by_uid) = write(&table).get_mut(kind)
                {
                    by_uid.remove(uid);
                }
            }
        }
    }
}

fn entry(resource: &ApiResource, object: &DynamicObject) -> Option<(String, Arc<Value>)> {
    let uid = object.metadata.uid.clone()?;
    Some((uid, Arc::new(trim(resource, object))))
}

/// What a scan keeps of a workload: `apiVersion`, `kind`; `metadata` without managed
/// fields, the last-applied copy and status-like fields; and of the pod spec (a Pod's,
/// a controller's template, a CronJob's job template) only the containers' names and
/// images, the pull secrets and the service account — what matching and image
/// verification read. Rules whose conditions read other fields of the object see them
/// absent in a scan (they are evaluated fully at admission).
pub fn trim(resource: &ApiResource, object: &DynamicObject) -> Value {
    let meta = &object.metadata;
    let mut metadata = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value.filter(|v| !v.is_null()) {
            metadata.insert(key.to_owned(), value);
        }
    };
    put("name", meta.name.clone().map(Value::String));
    put("namespace", meta.namespace.clone().map(Value::String));
    put("uid", meta.uid.clone().map(Value::String));
    put("labels", meta.labels.as_ref().map(|l| json!(l)));
    put(
        "annotations",
        meta.annotations.as_ref().map(|annotations| {
            let kept: Map<String, Value> = annotations
                .iter()
                .filter(|(key, _)| key.as_str() != LAST_APPLIED)
                .map(|(key, value)| (key.clone(), Value::String(value.clone())))
                .collect();
            Value::Object(kept)
        }),
    );
    put(
        "ownerReferences",
        meta.owner_references.as_ref().map(|owners| {
            owners
                .iter()
                .map(|o| {
                    json!({"apiVersion": o.api_version, "kind": o.kind, "name": o.name,
                           "uid": o.uid, "controller": o.controller})
                })
                .collect()
        }),
    );
    let spec = object.data.get("spec");
    let trimmed_spec = match resource.kind.as_str() {
        "Pod" => spec.map(pod_spec),
        "CronJob" => spec.map(|spec| {
            let template = spec.pointer("/jobTemplate/spec/template").map(template);
            json!({"jobTemplate": {"spec": {"template": template}}})
        }),
        _ => spec.map(|spec| json!({"template": spec.get("template").map(template)})),
    };
    let mut object = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": metadata,
    });
    if let Some(spec) = trimmed_spec {
        object["spec"] = spec;
    }
    object
}

fn template(template: &Value) -> Value {
    let mut trimmed = Map::new();
    let mut metadata = Map::new();
    for key in ["labels", "annotations"] {
        if let Some(value) = template.pointer(&format!("/metadata/{key}")) {
            metadata.insert(key.to_owned(), value.clone());
        }
    }
    trimmed.insert("metadata".into(), Value::Object(metadata));
    if let Some(spec) = template.get("spec") {
        trimmed.insert("spec".into(), pod_spec(spec));
    }
    Value::Object(trimmed)
}

fn pod_spec(spec: &Value) -> Value {
    let mut trimmed = Map::new();
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(containers) = spec.get(list).and_then(Value::as_array) {
            let kept: Vec<Value> = containers
                .iter()
                .map(|c| {
                    let mut container = Map::new();
                    for key in ["name", "image"] {
                        if let Some(value) = c.get(key) {
                            container.insert(key.to_owned(), value.clone());
                        }
                    }
                    Value::Object(container)
                })
                .collect();
            trimmed.insert(list.to_owned(), Value::Array(kept));
        }
    }
    for key in ["imagePullSecrets", "serviceAccountName"] {
        if let Some(value) = spec.get(key) {
            trimmed.insert(key.to_owned(), value.clone());
        }
    }
    Value::Object(trimmed)
}

/// The objects whose controller (the owner reference with `controller: true`) is not
/// of a `served` workload kind: bare Pods, Deployments, Pods of an operator's kind, and
/// Pods of a ReplicaSet when ReplicaSets are not served (nobody else reports them).
pub fn top_level(objects: Vec<Arc<Value>>, served: &HashSet<&str>) -> Vec<Arc<Value>> {
    objects
        .into_iter()
        .filter(|object| !has_controller_of_kind(object, |kind| served.contains(kind)))
        .collect()
}

/// The images an object names, sorted (the scan's order: objects sharing images
/// follow each other).
fn images_of(object: &Value) -> Vec<String> {
    fn collect(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, item) in map {
                    match (key.as_str(), item) {
                        ("image", Value::String(image)) => into.push(image.clone()),
                        _ => collect(item, into),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| collect(item, into)),
            _ => {}
        }
    }
    let mut images = Vec::new();
    if let Some(spec) = object.get("spec") {
        collect(spec, &mut images);
    }
    images.sort();
    images
}

// ---------------------------------------------------------------------------------------
// The scanner.

/// What the scanner works with.
#[derive(Debug, Clone)]
pub struct ScanInputs {
    /// The engine admission uses (its caches and single-flight are shared).
    pub engine: Engine,
    /// The current policy set (all of them; the scan applies those that run in the
    /// background); a new value starts a scan.
    pub policies: watch::Receiver<Arc<PolicySet>>,
    /// Whether this replica leads: only the leader scans and writes.
    pub leader: watch::Receiver<bool>,
    /// Where reports go.
    pub reports: Arc<ReportWriter>,
    /// Progress and results.
    pub observer: Arc<dyn ScanObserver>,
}

/// Counts of the scanner, for tests and logs.
#[derive(Debug, Default)]
pub struct ScanCounters {
    /// Scans run to their end.
    pub completed: AtomicU64,
    /// Workloads evaluated.
    pub resources: AtomicU64,
    /// Reports queued for writing.
    pub reports: AtomicU64,
    /// Reports not queued because their results had not changed.
    pub unchanged: AtomicU64,
}

/// The running scanner; stops when dropped.
#[derive(Debug)]
pub struct BackgroundScanner {
    counters: Arc<ScanCounters>,
    completed: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl Drop for BackgroundScanner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BackgroundScanner {
    /// Starts scanning `workloads` (waiting for their first lists) as `options` say.
    pub fn start(
        workloads: Arc<WorkloadWatch>,
        inputs: ScanInputs,
        options: ScanOptions,
    ) -> BackgroundScanner {
        let counters = Arc::new(ScanCounters::default());
        let (done, completed) = watch::channel(0u64);
        let task = tokio::spawn(run(workloads, inputs, options, counters.clone(), done));
        BackgroundScanner {
            counters,
            completed,
            task,
        }
    }

    /// The scanner's counters.
    pub fn counters(&self) -> &ScanCounters {
        &self.counters
    }

    /// Waits until `n` scans have completed, at most `timeout`; whether they have.
    pub async fn wait_for_scans(&self, n: u64, timeout: Duration) -> bool {
        let mut completed = self.completed.clone();
        tokio::time::timeout(timeout, completed.wait_for(|c| *c >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

async fn run(
    workloads: Arc<WorkloadWatch>,
    mut inputs: ScanInputs,
    options: ScanOptions,
    counters: Arc<ScanCounters>,
    done: watch::Sender<u64>,
) {
    let gate = RequestGate::new(options.concurrency, options.rate);
    // Fingerprints of the results last written per report, while this replica leads.
    let mut written: HashMap<String, u64> = HashMap::new();
    workloads.ready().await;
    loop {
        if inputs.leader.wait_for(|leads| *leads).await.is_err() {
            return;
        }
        let policies = inputs.policies.borrow_and_update().clone();
        let failed_writes = inputs.reports.counters().failed.load(Ordering::Relaxed);
        let mut leader = inputs.leader.clone();
        let begun = Instant::now();
        let scan = scan(
            &workloads,
            &inputs,
            &options,
            &gate,
            &policies,
            &counters,
            &mut written,
        );
        let completed = tokio::select! {
            () = scan => true,
            _ = leader.wait_for(|leads| !*leads) => false,
        };
        if completed {
            counters.completed.fetch_add(1, Ordering::Relaxed);
            done.send_modify(|n| *n += 1);
        } else {
            inputs.observer.scan_finished(begun.elapsed(), false);
            tracing::info!("leadership lost: background scan stopped");
        }
        // What was written cannot be vouched for after a failed write or under another
        // leader: the next scan writes every report again.
        if !completed || inputs.reports.counters().failed.load(Ordering::Relaxed) != failed_writes {
            written.clear();
        }
        tokio::select! {
            () = tokio::time::sleep(options.interval) => {}
            changed = inputs.policies.changed() => {
                if changed.is_err() {
                    return;
                }
                tracing::info!("policies changed: background scan");
            }
            _ = leader.wait_for(|leads| !*leads) => {}
        }
    }
}

/// One scan over the workloads held now.
async fn scan(
    workloads: &WorkloadWatch,
    inputs: &ScanInputs,
    options: &ScanOptions,
    gate: &RequestGate,
    policies: &PolicySet,
    counters: &ScanCounters,
    written: &mut HashMap<String, u64>,
) {
    let started = Instant::now();
    let policies = policies.for_background();
    let objects = if policies.is_empty() {
        Vec::new()
    } else {
        workloads.to_scan()
    };
    inputs.observer.scan_started(objects.len());
    tracing::info!(
        workloads = objects.len(),
        policies = policies.len(),
        "background scan started"
    );
    let engine = inputs
        .engine
        .for_background_scan(started, Some(gate.clone()));
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let workers = options.concurrency.max(1) * WORKERS_PER_REQUEST;
    let mut seen: HashSet<String> = HashSet::new();
    let mut evaluations = futures::stream::iter(objects.into_iter().map(|object| {
        let (engine, policies) = (&engine, &policies);
        async move {
            let namespace = object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let context = MatchContext {
                namespace_labels: engine.namespace_labels(namespace),
                ..MatchContext::default()
            };
            let input = AdmissionInput::for_resource(object.as_ref().clone(), context);
            let response = tokio::time::timeout(
                options.resource_deadline,
                engine.evaluate_both(policies, &input),
            )
            .await;
            (object, response)
        }
    }))
    .buffer_unordered(workers);
    while let Some((object, response)) = evaluations.next().await {
        counters.resources.fetch_add(1, Ordering::Relaxed);
        let Ok(response) = response else {
            tracing::warn!(
                resource = %resource_name(&object),
                deadline = ?options.resource_deadline,
                "background scan: evaluating a workload did not finish in time"
            );
            inputs.observer.resource_failed();
            continue;
        };
        let report = match PolicyReport::for_resource(
            &object,
            [&response],
            Process::Background,
            timestamp,
        ) {
            Ok(report) => report,
            Err(e) => {
                tracing::warn!(error = %e, "background scan: no report");
                inputs.observer.resource_failed();
                continue;
            }
        };
        inputs.observer.resource_scanned(&report.summary);
        if report.is_empty() {
            continue;
        }
        let name = report.metadata.name.clone();
        seen.insert(name.clone());
        let fingerprint = fingerprint(&report);
        if written.get(&name) == Some(&fingerprint) {
            counters.unchanged.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let Ok(value) = serde_json::to_value(&report) else {
            continue;
        };
        match inputs
            .reports
            .submit_waiting(value, options.submit_wait)
            .await
        {
            Ok(true) => {
                counters.reports.fetch_add(1, Ordering::Relaxed);
                written.insert(name, fingerprint);
            }
            Ok(false) => {
                written.remove(&name);
            }
            Err(e) => tracing::warn!(error = %e, "background scan: report not written"),
        }
    }
    // Reports of workloads gone are garbage-collected with them (owner reference).
    written.retain(|name, _| seen.contains(name));
    let took = started.elapsed();
    inputs.observer.scan_finished(took, true);
    tracing::info!(took = ?took, "background scan finished");
}

/// The results of a report without their timestamps: equal when nothing changed.
fn fingerprint(report: &PolicyReport) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut results = report.results.clone();
    for result in &mut results {
        result.timestamp.seconds = 0;
    }
    let text = serde_json::to_string(&(&report.scope, &results)).unwrap_or_default();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

fn resource_name(object: &Value) -> String {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    format!(
        "{}/{}/{}",
        text("/kind"),
        text("/metadata/namespace"),
        text("/metadata/name")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(group: &str, kind: &str, plural: &str) -> ApiResource {
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", kind), plural)
    }

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_pod_is_trimmed_to_what_evaluation_reads() {
        let pod = object(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "app", "namespace": "team", "uid": "u1", "resourceVersion": "7",
                "labels": {"app": "web"},
                "annotations": {"team": "a",
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"huge\": true}"},
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                      "name": "app-1", "uid": "r1", "controller": true,
                                      "blockOwnerDeletion": true}],
            },
            "spec": {
                "containers": [{"name": "web", "image": "ghcr.io/acme/web:v1",
                                "env": [{"name": "A", "value": "1"}],
                                "resources": {"limits": {"cpu": "1"}}}],
                "initContainers": [{"name": "init", "image": "busybox"}],
                "imagePullSecrets": [{"name": "regcred"}],
                "serviceAccountName": "builder",
                "volumes": [{"name": "data", "emptyDir": {}}],
                "nodeName": "node-1",
            },
            "status": {"phase": "Running", "containerStatuses": [{"imageID": "x"}]},
        }));
        let trimmed = trim(&resource("", "Pod", "pods"), &pod);
        assert_eq!(
            trimmed,
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {
                    "name": "app", "namespace": "team", "uid": "u1",
                    "labels": {"app": "web"},
                    "annotations": {"team": "a"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": "app-1", "uid": "r1", "controller": true}],
                },
                "spec": {
                    "containers": [{"name": "web", "image": "ghcr.io/acme/web:v1"}],
                    "initContainers": [{"name": "init", "image": "busybox"}],
                    "imagePullSecrets": [{"name": "regcred"}],
                    "serviceAccountName": "builder",
                },
            })
        );
    }

    #[test]
    fn controllers_keep_their_pod_templates_images() {
        let deployment = object(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "team", "uid": "d1"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "web:v2",
                                                           "ports": [{"containerPort": 80}]}]}}},
        }));
        let trimmed = trim(&resource("apps", "Deployment", "deployments"), &deployment);
        assert_eq!(
            trimmed["spec"],
            json!({"template": {"metadata": {"labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "web", "image": "web:v2"}]}}})
        );
        let cronjob = object(json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "team", "uid": "c1"},
            "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {
                "spec": {"containers": [{"name": "job", "image": "job:v1", "args": ["run"]}]}}}}},
        }));
        let trimmed = trim(&resource("batch", "CronJob", "cronjobs"), &cronjob);
        assert_eq!(
            trimmed["spec"],
            json!({"jobTemplate": {"spec": {"template": {"metadata": {},
                "spec": {"containers": [{"name": "job", "image": "job:v1"}]}}}}})
        );
        assert_eq!(images_of(&trimmed), ["job:v1"]);
    }

    #[test]
    fn owned_objects_are_left_to_their_served_controller() {
        let object = |name: &str, owner: Option<(&str, bool)>| {
            let mut o = json!({"kind": "Pod", "metadata": {"name": name}});
            if let Some((kind, controller)) = owner {
                o["metadata"]["ownerReferences"] =
                    json!([{"kind": kind, "name": "x", "controller": controller}]);
            }
            Arc::new(o)
        };
        let objects = vec![
            object("bare", None),
            object("of-replicaset", Some(("ReplicaSet", true))),
            object("of-job", Some(("Job", true))),
            object("not-controller", Some(("ReplicaSet", false))),
        ];
        // Jobs are not served: the Pod of a Job is scanned itself.
        let served = HashSet::from(["Pod", "ReplicaSet", "Deployment"]);
        let kept = top_level(objects, &served);
        let names: Vec<&str> = kept
            .iter()
            .filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str))
            .collect();
        assert_eq!(names, ["bare", "of-job", "not-controller"]);
    }
}
