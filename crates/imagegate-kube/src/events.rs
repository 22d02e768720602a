//! Kubernetes Events for admission results, as Kyverno emits them (`pkg/event`,
//! `pkg/webhooks/utils/event.go`): `events.k8s.io/v1` Events with Kyverno's reasons,
//! actions and notes, one on the policy for each failed rule (" (blocked)" when the
//! request was denied) and, when the request was admitted, one on the resource.
//!
//! Off the admission path: [`EventRecorder::submit`] only queues (a full queue drops and
//! counts, as Kyverno's `maxQueuedEvents`); a task writes at most one Event per
//! `min_interval`, each call deadline-bounded. Unlike Kyverno, a repeat of the same Event
//! (same object, reason, action, note) within `series_window` does not create another
//! object: the first one's `series` is bumped (`count`, `lastObservedTime`), as client-go's
//! event recorder does, so a Deployment that keeps recreating a failing Pod costs one
//! Event, not thousands. Where imagegate narrows Kyverno: the Event on the resource is
//! written for failed rules only (Kyverno also writes one for every passing rule of a
//! policy that failed, with reason PolicyViolation).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use imagegate_engine::{EngineResponse, PolicyKind, RuleStatus};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Kyverno's reason of a failed rule.
pub const REASON_POLICY_VIOLATION: &str = "PolicyViolation";
/// Kyverno's action when the request was denied.
pub const ACTION_BLOCKED: &str = "Resource Blocked";
/// Kyverno's action when the request was admitted.
pub const ACTION_PASSED: &str = "Resource Passed";
/// `reportingController` of admission Events (Kyverno's is `kyverno-admission`).
pub const CONTROLLER_ADMISSION: &str = "imagegate-admission";
/// Kyverno cuts notes to 1024 bytes.
const MAX_NOTE: usize = 1024;

/// A Kubernetes `ObjectReference` (what an Event is about).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, empty for cluster-scoped objects.
    pub namespace: String,
    /// `metadata.uid`, empty when not known (a resource being created).
    pub uid: String,
}

impl ObjectRef {
    /// The reference to a Kubernetes object (its `apiVersion`, `kind`, `metadata`).
    pub fn of(object: &Value) -> ObjectRef {
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        ObjectRef {
            api_version: text("/apiVersion"),
            kind: text("/kind"),
            name: text("/metadata/name"),
            namespace: text("/metadata/namespace"),
            uid: text("/metadata/uid"),
        }
    }

    fn to_json(&self) -> Value {
        let mut reference = json!({
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
        });
        if !self.namespace.is_empty() {
            reference["namespace"] = json!(self.namespace);
        }
        if !self.uid.is_empty() {
            reference["uid"] = json!(self.uid);
        }
        reference
    }
}

/// One Event to write.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventInfo {
    /// The object the Event is about.
    pub regarding: ObjectRef,
    /// A second object involved (the resource, for an Event on a policy).
    pub related: Option<ObjectRef>,
    /// `reason` (Kyverno's: PolicyViolation).
    pub reason: &'static str,
    /// `action` (Kyverno's: Resource Blocked, Resource Passed).
    pub action: &'static str,
    /// `note`, the human-readable text.
    pub note: String,
}

/// The Events Kyverno's `GenerateEvents` writes for one admission: for each failed (or
/// errored) rule of a policy, one on the policy and, unless `blocked`, one on the
/// resource. `resource` is the reviewed object; a resource without a name gets none.
pub fn admission_events(
    resource: &Value,
    response: &EngineResponse,
    blocked: bool,
) -> Vec<EventInfo> {
    let object = ObjectRef::of(resource);
    if object.name.is_empty() {
        return Vec::new();
    }
    let mut events = Vec::new();
    for policy in &response.policies {
        let failed = |status: RuleStatus| matches!(status, RuleStatus::Fail | RuleStatus::Error);
        if !policy.rules.iter().any(|r| failed(r.status)) {
            continue;
        }
        let policy_ref = ObjectRef {
            api_version: policy_api_version(policy.kind).to_owned(),
            kind: policy.kind.as_str().to_owned(),
            name: policy.policy.clone(),
            namespace: policy.namespace.clone().unwrap_or_default(),
            uid: String::new(),
        };
        for rule in policy.rules.iter().filter(|r| failed(r.status)) {
            events.push(EventInfo {
                regarding: policy_ref.clone(),
                related: Some(object.clone()),
                reason: REASON_POLICY_VIOLATION,
                action: if blocked {
                    ACTION_BLOCKED
                } else {
                    ACTION_PASSED
                },
                note: policy_note(&object, &rule.name, rule.status, blocked, &rule.message),
            });
            if !blocked {
                events.push(EventInfo {
                    regarding: object.clone(),
                    related: None,
                    reason: REASON_POLICY_VIOLATION,
                    action: ACTION_PASSED,
                    note: format!(
                        "policy {}/{} {}: {}",
                        policy.policy,
                        rule.name,
                        rule.status.as_str(),
                        rule.message
                    ),
                });
            }
        }
    }
    events
}

fn policy_api_version(kind: PolicyKind) -> &'static str {
    if kind.is_image_validating() {
        "policies.kyverno.io/v1beta1"
    } else {
        "kyverno.io/v1"
    }
}

/// Kyverno's `buildPolicyEventMessage`.
fn policy_note(
    resource: &ObjectRef,
    rule: &str,
    status: RuleStatus,
    blocked: bool,
    message: &str,
) -> String {
    let mut note = if resource.namespace.is_empty() {
        format!("{} {}", resource.kind, resource.name)
    } else {
        format!("{} {}/{}", resource.kind, resource.namespace, resource.name)
    };
    if rule.is_empty() {
        note.push_str(&format!(": {}", status.as_str()));
    } else {
        note.push_str(&format!(": [{rule}] {}", status.as_str()));
    }
    if blocked {
        note.push_str(" (blocked)");
    }
    if !message.is_empty() {
        note.push_str(&format!("; {message}"));
    }
    note
}

/// Kyverno's `sanitizeEventName`: lower case, `[a-z0-9.-]` only, alphanumeric ends.
fn sanitize_name(name: &str) -> String {
    let mut out: String = name
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !out.is_empty() && !alnum(out.chars().next()) {
        out.insert(0, 'a');
    }
    if !out.is_empty() && !alnum(out.chars().last()) {
        out.push('z');
    }
    out
}

/// Kyverno's cut: 1021 bytes and `...` (here on a character boundary).
fn cut_note(note: &str) -> String {
    if note.len() <= MAX_NOTE {
        return note.to_owned();
    }
    let mut end = MAX_NOTE - 3;
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &note[..end])
}

/// How the recorder queues and paces.
#[derive(Debug, Clone)]
pub struct EventRecorderOptions {
    /// Events waiting at most (Kyverno's `--maxQueuedEvents`, 1000); more are dropped.
    pub queue: usize,
    /// The least time between two writes.
    pub min_interval: Duration,
    /// How long a repeat bumps the first Event's series instead of creating one.
    pub series_window: Duration,
    /// Distinct Events remembered for the series at most.
    pub remembered: usize,
    /// Deadline of one write.
    pub deadline: Duration,
    /// `reportingController`.
    pub controller: String,
    /// `reportingInstance` (the controller and this replica's identity).
    pub instance: String,
}

impl EventRecorderOptions {
    /// Defaults for the replica `identity`.
    pub fn new(identity: &str) -> EventRecorderOptions {
        let instance = format!("{CONTROLLER_ADMISSION}-{identity}");
        EventRecorderOptions {
            queue: 1000,
            // 20 Events per second at most.
            min_interval: Duration::from_millis(50),
            // client-go's event recorder groups repeats seen within 6 minutes.
            series_window: Duration::from_secs(6 * 60),
            remembered: 4096,
            deadline: Duration::from_secs(10),
            controller: CONTROLLER_ADMISSION.to_owned(),
            // The API server refuses a reportingInstance longer than 128 characters.
            instance: instance.chars().take(128).collect(),
        }
    }
}

/// Counters of the recorder.
#[derive(Debug, Default)]
pub struct EventCounters {
    /// Events created.
    pub created: AtomicU64,
    /// Repeats written as a series bump.
    pub repeated: AtomicU64,
    /// Writes that failed or timed out (logged).
    pub failed: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// The running recorder; stops (dropping what is queued) when dropped.
#[derive(Debug)]
pub struct EventRecorder {
    queue: mpsc::Sender<EventInfo>,
    counters: Arc<EventCounters>,
    task: JoinHandle<()>,
}

impl Drop for EventRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EventRecorder {
    /// Starts the writing task.
    pub fn start(client: kube::Client, options: EventRecorderOptions) -> EventRecorder {
        let (queue, receiver) = mpsc::channel(options.queue.max(1));
        let counters = Arc::new(EventCounters::default());
        let task = tokio::spawn(run(client, options, receiver, counters.clone()));
        EventRecorder {
            queue,
            counters,
            task,
        }
    }

    /// Queues `event` and returns at once; `false` when the queue was full (dropped,
    /// counted).
    pub fn submit(&self, event: EventInfo) -> bool {
        if self.queue.try_send(event).is_ok() {
            return true;
        }
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// The recorder's counters.
    pub fn counters(&self) -> &EventCounters {
        &self.counters
    }
}

/// An Event written recently: where it is and how often it was seen.
struct Written {
    namespace: String,
    name: String,
    count: u64,
    first: Instant,
}

fn events_api(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("events.k8s.io", "v1", "Event");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "events");
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// Now as a `metav1.MicroTime` in JSON (k8s-openapi's own encoding: six fraction digits,
/// as the API server's parser wants).
fn micro_now() -> Value {
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now(),
    );
    serde_json::to_value(now).unwrap_or(Value::Null)
}

async fn run(
    client: kube::Client,
    options: EventRecorderOptions,
    mut receiver: mpsc::Receiver<EventInfo>,
    counters: Arc<EventCounters>,
) {
    let mut pace = tokio::time::interval(options.min_interval.max(Duration::from_millis(1)));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen: HashMap<EventInfo, Written> = HashMap::new();
    while let Some(event) = receiver.recv().await {
        pace.tick().await;
        let written = match seen.get_mut(&event) {
            Some(before) if before.first.elapsed() < options.series_window => {
                before.count += 1;
                let bumped = bump(&client, &options, before).await;
                match bumped {
                    Ok(true) => {
                        counters.repeated.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    // Gone (expired or deleted): a new Event starts a new series.
                    Ok(false) => create(&client, &options, &event).await,
                    Err(e) => Err(e),
                }
            }
            _ => create(&client, &options, &event).await,
        };
        match written {
            Ok(fresh) => {
                counters.created.fetch_add(1, Ordering::Relaxed);
                remember(&mut seen, &options, event, fresh);
            }
            Err(failure) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    kind = %event.regarding.kind,
                    namespace = %event.regarding.namespace,
                    name = %event.regarding.name,
                    reason = event.reason,
                    error = %failure,
                    "writing an Event failed"
                );
            }
        }
    }
}

/// Keeps `event` for the series, within the bound: expired entries go first, then (all
/// fresh) the oldest.
fn remember(
    seen: &mut HashMap<EventInfo, Written>,
    options: &EventRecorderOptions,
    event: EventInfo,
    written: Written,
) {
    if seen.len() >= options.remembered.max(1) {
        seen.retain(|_, w| w.first.elapsed() < options.series_window);
    }
    if seen.len() >= options.remembered.max(1) {
        let oldest = seen
            .iter()
            .min_by_key(|(_, w)| w.first)
            .map(|(k, _)| k.clone());
        if let Some(oldest) = oldest {
            seen.remove(&oldest);
        }
    }
    seen.insert(event, written);
}

async fn create(
    client: &kube::Client,
    options: &EventRecorderOptions,
    event: &EventInfo,
) -> Result<Written, String> {
    // Events of cluster-scoped objects (a ClusterPolicy, a Namespace) live in `default`,
    // as Kyverno writes them.
    let namespace = if event.regarding.namespace.is_empty() {
        "default".to_owned()
    } else {
        event.regarding.namespace.clone()
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let name = format!("{}.{nanos:x}", sanitize_name(&event.regarding.name));
    let mut object = json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "eventTime": micro_now(),
        "reportingController": options.controller,
        "reportingInstance": options.instance,
        "action": event.action,
        "reason": event.reason,
        "regarding": event.regarding.to_json(),
        "note": cut_note(&event.note),
        "type": "Warning",
    });
    if let Some(related) = &event.related {
        object["related"] = related.to_json();
    }
    let object: DynamicObject = serde_json::from_value(object).map_err(|e| e.to_string())?;
    let api = events_api(client, &namespace);
    match tokio::time::timeout(
        options.deadline,
        api.create(&PostParams::default(), &object),
    )
    .await
    {
        Ok(Ok(_)) => Ok(Written {
            namespace,
            name,
            count: 1,
            first: Instant::now(),
        }),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {:?}", options.deadline)),
    }
}

/// Bumps the series of an Event written before; `Ok(false)` when it is gone.
async fn bump(
    client: &kube::Client,
    options: &EventRecorderOptions,
    written: &Written,
) -> Result<bool, String> {
    let patch = json!({"series": {"count": written.count, "lastObservedTime": micro_now()}});
    let api = events_api(client, &written.namespace);
    let patched = tokio::time::timeout(
        options.deadline,
        api.patch(
            &written.name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        ),
    )
    .await;
    match patched {
        Ok(Ok(_)) => Ok(true),
        Ok(Err(kube::Error::Api(status))) if status.code == 404 => Ok(false),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {:?}", options.deadline)),
    }
}

#[cfg(test)]
mod tests {
    use imagegate_engine::{PolicyResponse, RuleResponse};
    use imagegate_policy::model::{FailureAction, FailurePolicy};

    use super::*;

    fn response(status: RuleStatus, message: &str) -> EngineResponse {
        let mut policy = PolicyResponse::new(
            PolicyKind::ClusterPolicy,
            "check-image".into(),
            None,
            FailurePolicy::Fail,
        );
        policy.rules.push(RuleResponse {
            name: "verify-signature".into(),
            rule_type: imagegate_engine::response::IMAGE_VERIFY,
            status,
            message: message.into(),
            failure_action: FailureAction::Audit,
            images: Vec::new(),
            exceptions: Vec::new(),
        });
        EngineResponse {
            policies: vec![policy],
            ..EngineResponse::default()
        }
    }

    fn pod() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web", "namespace": "prod"}})
    }

    const MESSAGE: &str = "failed to verify image ghcr.io/acme/app:v1: .attestors[0].entries[0].keys: no signatures found";

    #[test]
    fn a_denial_is_one_event_on_the_policy_in_kyvernos_words() {
        let events = admission_events(&pod(), &response(RuleStatus::Fail, MESSAGE), true);
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.regarding.kind, "ClusterPolicy");
        assert_eq!(event.regarding.name, "check-image");
        assert_eq!(event.related.as_ref().map(|r| r.name.as_str()), Some("web"));
        assert_eq!(
            (event.reason, event.action),
            ("PolicyViolation", "Resource Blocked")
        );
        assert_eq!(
            event.note,
            format!("Pod prod/web: [verify-signature] fail (blocked); {MESSAGE}")
        );
    }

    #[test]
    fn an_audit_failure_is_an_event_on_the_policy_and_one_on_the_resource() {
        let events = admission_events(&pod(), &response(RuleStatus::Fail, MESSAGE), false);
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0].note,
            format!("Pod prod/web: [verify-signature] fail; {MESSAGE}")
        );
        assert_eq!(events[0].action, "Resource Passed");
        assert_eq!(events[1].regarding, ObjectRef::of(&pod()));
        assert_eq!(
            events[1].note,
            format!("policy check-image/verify-signature fail: {MESSAGE}")
        );
        // Passing rules and nameless resources give none.
        assert!(admission_events(&pod(), &response(RuleStatus::Pass, ""), false).is_empty());
        let nameless =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "prod"}});
        assert!(admission_events(&nameless, &response(RuleStatus::Fail, MESSAGE), true).is_empty());
    }

    #[test]
    fn names_and_notes_are_cut_as_kyverno_cuts_them() {
        assert_eq!(sanitize_name("My_Pod"), "my-pod");
        assert_eq!(sanitize_name("-x-"), "a-x-z");
        assert_eq!(sanitize_name("check-image"), "check-image");
        let long = "é".repeat(600);
        let cut = cut_note(&long);
        assert!(
            cut.len() <= MAX_NOTE && cut.ends_with("..."),
            "{}",
            cut.len()
        );
        assert_eq!(cut_note("short"), "short");
    }
}
