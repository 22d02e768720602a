//! Prometheus metrics of the webhook, with Kyverno's names and labels where Kyverno has
//! them, so existing dashboards and alerts keep working.
//!
//! Everything is registered in one `prometheus_client::registry::Registry` built in
//! `serve::run`; other parts (the engine's cache and registry metrics) register theirs
//! in the same registry before the server starts.
//!
//! Label values taken from a request (kind, namespace, operation) are attacker-chosen
//! strings and every label set lives as long as the process, so they go through
//! [`LabelBounds`]: only values that can name real objects (Kubernetes name syntax,
//! bounded length, known operations), a cap on distinct kinds, namespaces and
//! kind × namespace pairs, and `other` for everything else (issue 8 item 10).

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use imagegate_engine::EngineResponse;
use imagegate_engine::report::Summary;
use imagegate_kube::ScanObserver;
use imagegate_policy::model::FailureAction;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Kyverno's `rule_type` for verifyImages rules.
const RULE_TYPE: &str = "imageVerify";
/// Kyverno's `rule_execution_cause` for admission.
const EXECUTION_CAUSE: &str = "admission_request";

/// The label value of anything that is not a real object's, or beyond a cap.
pub const OTHER: &str = "other";
/// Longest kind or namespace (a DNS-1123 label / Kubernetes kind is at most 63 bytes).
const MAX_NAME_BYTES: usize = 63;
/// Kinds whose name is always a label value: those carrying pod specs.
const WORKLOAD_KINDS: &[&str] = &[
    "Pod",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicationController",
];
/// Other well-formed kinds kept as label values (custom resources with image
/// extractors); later ones are `other`.
const MAX_OTHER_KINDS: usize = 32;
/// Distinct namespaces kept as label values; later ones are `other`.
const MAX_NAMESPACES: usize = 512;
/// Distinct kind × namespace pairs; later ones are `other` × `other`.
const MAX_RESOURCE_PAIRS: usize = 1024;

/// The bounded label values of request fields, shared by every metric family.
#[derive(Debug, Default)]
pub struct LabelBounds {
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    kinds: HashSet<String>,
    namespaces: HashSet<String>,
    pairs: HashSet<(String, String)>,
}

impl LabelBounds {
    /// The `resource_kind` and `resource_namespace` label values of an object.
    pub fn resource(&self, kind: &str, namespace: &str) -> (String, String) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let known = WORKLOAD_KINDS.contains(&kind)
            || (is_kind(kind) && admit(&mut seen.kinds, kind, MAX_OTHER_KINDS));
        let kind = if known { kind } else { OTHER };
        let namespace = if namespace.is_empty() {
            // Cluster-scoped, as Kyverno labels it.
            ""
        } else if is_namespace(namespace) && admit(&mut seen.namespaces, namespace, MAX_NAMESPACES)
        {
            namespace
        } else {
            OTHER
        };
        let pair = (kind.to_owned(), namespace.to_owned());
        if seen.pairs.contains(&pair) || seen.pairs.len() < MAX_RESOURCE_PAIRS {
            seen.pairs.insert(pair.clone());
            pair
        } else {
            (OTHER.to_owned(), OTHER.to_owned())
        }
    }
}

/// The `resource_request_operation` label value: Kyverno's lower-case operation names.
pub fn operation_label(operation: &str) -> &'static str {
    const OPERATIONS: [(&str, &str); 4] = [
        ("CREATE", "create"),
        ("UPDATE", "update"),
        ("DELETE", "delete"),
        ("CONNECT", "connect"),
    ];
    OPERATIONS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(operation))
        .map_or(OTHER, |(_, label)| label)
}

/// Whether `value` is in `set`, or was added to it below `cap`.
fn admit(set: &mut HashSet<String>, value: &str, cap: usize) -> bool {
    if set.contains(value) {
        return true;
    }
    if set.len() >= cap {
        return false;
    }
    set.insert(value.to_owned());
    true
}

/// A Kubernetes kind: an upper-case letter, then letters and digits.
fn is_kind(kind: &str) -> bool {
    kind.len() <= MAX_NAME_BYTES
        && kind.starts_with(|c: char| c.is_ascii_uppercase())
        && kind.chars().all(|c| c.is_ascii_alphanumeric())
}

/// A namespace name: a DNS-1123 label.
fn is_namespace(namespace: &str) -> bool {
    namespace.len() <= MAX_NAME_BYTES
        && namespace.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && namespace.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && namespace
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Labels of `kyverno_admission_requests_total` and
/// `kyverno_admission_review_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    /// `Pod`, `Deployment`, …
    pub resource_kind: String,
    /// Namespace of the object (empty for cluster-scoped).
    pub resource_namespace: String,
    /// `CREATE`, `UPDATE`, …
    pub resource_request_operation: String,
    /// `true` or `false`.
    pub request_allowed: String,
}

/// Labels of `kyverno_policy_results_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyResultLabels {
    policy_validation_mode: String,
    policy_type: String,
    /// `ClusterPolicy`, `Policy`, `ImageValidatingPolicy` or
    /// `NamespacedImageValidatingPolicy` (imagegate's; a fixed set).
    policy_kind: &'static str,
    policy_background_mode: String,
    policy_name: String,
    policy_namespace: String,
    resource_kind: String,
    resource_namespace: String,
    resource_request_operation: String,
    rule_name: String,
    rule_result: String,
    rule_type: String,
    rule_execution_cause: String,
}

/// Labels of `kyverno_policy_execution_duration_seconds`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyDurationLabels {
    policy_validation_mode: String,
    policy_type: String,
    /// `ClusterPolicy`, `Policy`, `ImageValidatingPolicy` or
    /// `NamespacedImageValidatingPolicy` (imagegate's; a fixed set).
    policy_kind: &'static str,
    policy_background_mode: String,
    policy_name: String,
    policy_namespace: String,
    resource_request_operation: String,
    rule_name: String,
    rule_result: String,
    rule_type: String,
    rule_execution_cause: String,
}

/// Labels of `imagegate_admission_deadline_exceeded_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeadlineLabels {
    /// `Fail` (denied) or `Ignore` (admitted with a warning).
    failure_policy: String,
}

/// Labels of `imagegate_policy_reloads_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    /// `success` or `failure`.
    result: String,
}

/// Labels of `imagegate_policy_invalid`: one policy object of the cluster.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InvalidPolicyLabels {
    /// `ClusterPolicy` or `Policy`.
    policy_kind: String,
    /// Namespace of a `Policy` (empty for a ClusterPolicy).
    policy_namespace: String,
    /// Name.
    policy_name: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // Kyverno's buckets (seconds), from 5 ms to 30 s.
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0,
    ])
}

/// The webhook's metrics.
pub struct Metrics {
    admission_requests: Family<AdmissionLabels, Counter>,
    admission_duration: HistogramFamily<AdmissionLabels>,
    policy_results: Family<PolicyResultLabels, Counter>,
    policy_duration: HistogramFamily<PolicyDurationLabels>,
    deadline_exceeded: Family<DeadlineLabels, Counter>,
    policy_reloads: Family<ReloadLabels, Counter>,
    policies: Gauge,
    invalid_policies: Family<InvalidPolicyLabels, Gauge>,
    rejected: Counter,
    queue_dropped: Family<QueueLabels, Counter>,
    leader: Gauge,
    bounds: LabelBounds,
    /// Background scans' progress and results.
    pub scan: ScanMetrics,
}

/// Labels of `imagegate_queue_dropped`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    /// `reports` or `events`.
    pub queue: String,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Metrics {
        let metrics = Metrics {
            admission_requests: Family::default(),
            admission_duration: Family::new_with_constructor(duration_histogram),
            policy_results: Family::default(),
            policy_duration: Family::new_with_constructor(duration_histogram),
            deadline_exceeded: Family::default(),
            policy_reloads: Family::default(),
            policies: Gauge::default(),
            invalid_policies: Family::default(),
            rejected: Counter::default(),
            queue_dropped: Family::default(),
            leader: Gauge::default(),
            bounds: LabelBounds::default(),
            scan: ScanMetrics::default(),
        };
        metrics.scan.register(registry);
        registry.register(
            "kyverno_admission_requests",
            "Admission requests answered by the webhook",
            metrics.admission_requests.clone(),
        );
        registry.register(
            "kyverno_admission_review_duration_seconds",
            "Time to answer one admission review",
            metrics.admission_duration.clone(),
        );
        registry.register(
            "kyverno_policy_results",
            "Rule results of admission reviews",
            metrics.policy_results.clone(),
        );
        registry.register(
            "kyverno_policy_execution_duration_seconds",
            "Time to evaluate the rules of one admission review (rules run concurrently)",
            metrics.policy_duration.clone(),
        );
        registry.register(
            "imagegate_admission_deadline_exceeded",
            "Admission reviews not finished before the webhook deadline",
            metrics.deadline_exceeded.clone(),
        );
        registry.register(
            "imagegate_policy_reloads",
            "Reloads of changed policy files",
            metrics.policy_reloads.clone(),
        );
        registry.register(
            "imagegate_admission_rejected",
            "Admission requests refused with 429 because the cap on concurrent reviews was reached",
            metrics.rejected.clone(),
        );
        registry.register(
            "imagegate_policies",
            "Policies loaded",
            metrics.policies.clone(),
        );
        registry.register(
            "imagegate_policy_invalid",
            "1 for each policy object of the cluster whose current version is invalid (its previous version, if any, stays enforced)",
            metrics.invalid_policies.clone(),
        );
        registry.register(
            "imagegate_queue_dropped",
            "Admission results (queue=reports) and Events (queue=events) dropped because their queue was full",
            metrics.queue_dropped.clone(),
        );
        registry.register(
            "imagegate_leader",
            "1 while this replica holds the leader Lease (writes PolicyReports)",
            metrics.leader.clone(),
        );
        metrics
    }

    /// `count` items dropped from the `queue` (reports or events) because it was full.
    pub fn queue_dropped(&self, queue: &str, count: u64) {
        if count > 0 {
            self.queue_dropped
                .get_or_create(&QueueLabels {
                    queue: queue.to_owned(),
                })
                .inc_by(count);
        }
    }

    /// Whether this replica leads.
    pub fn leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The labels of one answered review of an object of `kind` in `namespace`.
    pub fn admission_labels(
        &self,
        kind: &str,
        namespace: &str,
        operation: &str,
        allowed: bool,
    ) -> AdmissionLabels {
        let (resource_kind, resource_namespace) = self.bounds.resource(kind, namespace);
        AdmissionLabels {
            resource_kind,
            resource_namespace,
            resource_request_operation: operation_label(operation).to_owned(),
            request_allowed: allowed.to_string(),
        }
    }

    /// One admission request refused because too many reviews were in progress.
    pub fn rejected(&self) {
        self.rejected.inc();
    }

    /// One answered admission review.
    pub fn admission(&self, labels: AdmissionLabels, elapsed: Duration) {
        self.admission_requests.get_or_create(&labels).inc();
        self.admission_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// The rule results of one evaluation that took `elapsed`.
    pub fn policy_results(&self, response: &EngineResponse, operation: &str, elapsed: Duration) {
        let (resource_kind, resource_namespace) = self
            .bounds
            .resource(&response.resource.kind, &response.resource.namespace);
        let operation = operation_label(operation);
        for policy in &response.policies {
            let (policy_type, policy_namespace) = match &policy.namespace {
                Some(ns) => ("namespaced", ns.clone()),
                None => ("cluster", String::new()),
            };
            // Only verifyImages rules and ImageValidatingPolicies are evaluated; the
            // other rules are reported as skipped and would be mislabelled `imageVerify`.
            let policy_kind = policy.kind.as_str();
            for rule in policy.rules.iter().filter(|r| {
                r.rule_type == imagegate_engine::response::IMAGE_VERIFY
                    || r.rule_type == imagegate_engine::IMAGE_VALIDATING_POLICY
            }) {
                let mode = match rule.failure_action {
                    FailureAction::Enforce => "enforce",
                    FailureAction::Audit => "audit",
                };
                self.policy_results
                    .get_or_create(&PolicyResultLabels {
                        policy_validation_mode: mode.into(),
                        policy_type: policy_type.into(),
                        policy_kind,
                        policy_background_mode: "false".into(),
                        policy_name: policy.policy.clone(),
                        policy_namespace: policy_namespace.clone(),
                        resource_kind: resource_kind.clone(),
                        resource_namespace: resource_namespace.clone(),
                        resource_request_operation: operation.into(),
                        rule_name: rule.name.clone(),
                        rule_result: rule.status.as_str().into(),
                        rule_type: RULE_TYPE.into(),
                        rule_execution_cause: EXECUTION_CAUSE.into(),
                    })
                    .inc();
                self.policy_duration
                    .get_or_create(&PolicyDurationLabels {
                        policy_validation_mode: mode.into(),
                        policy_type: policy_type.into(),
                        policy_kind,
                        policy_background_mode: "false".into(),
                        policy_name: policy.policy.clone(),
                        policy_namespace: policy_namespace.clone(),
                        resource_request_operation: operation.into(),
                        rule_name: rule.name.clone(),
                        rule_result: rule.status.as_str().into(),
                        rule_type: RULE_TYPE.into(),
                        rule_execution_cause: EXECUTION_CAUSE.into(),
                    })
                    .observe(elapsed.as_secs_f64());
            }
        }
    }

    /// A review cut off by its deadline; `denied` under failurePolicy Fail.
    pub fn deadline_exceeded(&self, denied: bool) {
        let failure_policy = if denied { "Fail" } else { "Ignore" };
        self.deadline_exceeded
            .get_or_create(&DeadlineLabels {
                failure_policy: failure_policy.into(),
            })
            .inc();
    }

    /// A reload of changed policy files.
    pub fn policy_reload(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.policy_reloads
            .get_or_create(&ReloadLabels {
                result: result.into(),
            })
            .inc();
    }

    /// The cluster's policy objects whose current version is invalid, as (kind,
    /// namespace, name); the series of those now valid or deleted are removed.
    pub fn invalid_policies<'a>(
        &self,
        invalid: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) {
        self.invalid_policies.clear();
        for (kind, namespace, name) in invalid {
            self.invalid_policies
                .get_or_create(&InvalidPolicyLabels {
                    policy_kind: kind.to_owned(),
                    policy_namespace: namespace.to_owned(),
                    policy_name: name.to_owned(),
                })
                .set(1);
        }
    }

    /// The number of policies now loaded.
    pub fn policies_loaded(&self, count: usize) {
        self.policies.set(i64::try_from(count).unwrap_or(i64::MAX));
    }
}

/// Labels of `imagegate_background_scans_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScanLabels {
    /// `completed`, or `interrupted` (leadership lost).
    result: &'static str,
}

/// Labels of `imagegate_background_scan_results_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScanResultLabels {
    /// `pass`, `fail`, `warn`, `error` or `skip` (Kyverno's `rule_result` values).
    rule_result: &'static str,
}

/// Background scans' metrics (cheap to clone: shared handles), fed by the scanner
/// through [`ScanObserver`].
#[derive(Debug, Clone)]
pub struct ScanMetrics {
    scans: Family<ScanLabels, Counter>,
    resources: Counter,
    results: Family<ScanResultLabels, Counter>,
    failures: Counter,
    duration: Histogram,
    pending: Gauge,
}

impl Default for ScanMetrics {
    fn default() -> Self {
        ScanMetrics {
            scans: Family::default(),
            resources: Counter::default(),
            results: Family::default(),
            failures: Counter::default(),
            // From 1 s to about 4.5 h: a scan of a large cluster at a low rate is long.
            duration: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                1.0, 2.0, 15,
            )),
            pending: Gauge::default(),
        }
    }
}

impl ScanMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "imagegate_background_scans",
            "Background scans ended, completed or interrupted (leadership lost)",
            self.scans.clone(),
        );
        registry.register(
            "imagegate_background_scan_resources",
            "Workloads (Pods and pod controllers) evaluated by background scans",
            self.resources.clone(),
        );
        registry.register(
            "imagegate_background_scan_results",
            "Rule results of background scans",
            self.results.clone(),
        );
        registry.register(
            "imagegate_background_scan_failures",
            "Workloads a background scan could not evaluate in time or report",
            self.failures.clone(),
        );
        registry.register(
            "imagegate_background_scan_duration_seconds",
            "Time a background scan took",
            self.duration.clone(),
        );
        registry.register(
            "imagegate_background_scan_pending",
            "Workloads the running background scan has yet to evaluate (0 between scans)",
            self.pending.clone(),
        );
    }
}

impl ScanObserver for ScanMetrics {
    fn scan_started(&self, resources: usize) {
        self.pending
            .set(i64::try_from(resources).unwrap_or(i64::MAX));
    }

    fn resource_scanned(&self, summary: &Summary) {
        self.resources.inc();
        self.pending.dec();
        for (rule_result, count) in [
            ("pass", summary.pass),
            ("fail", summary.fail),
            ("warn", summary.warn),
            ("error", summary.error),
            ("skip", summary.skip),
        ] {
            if count > 0 {
                self.results
                    .get_or_create(&ScanResultLabels { rule_result })
                    .inc_by(count);
            }
        }
    }

    fn resource_failed(&self) {
        self.failures.inc();
        self.pending.dec();
    }

    fn scan_finished(&self, took: Duration, completed: bool) {
        let result = if completed {
            "completed"
        } else {
            "interrupted"
        };
        self.scans.get_or_create(&ScanLabels { result }).inc();
        self.duration.observe(took.as_secs_f64());
        self.pending.set(0);
    }
}

/// The registry in the Prometheus text format (OpenMetrics 1.0).
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::error!(error = %e, "cannot encode the metrics");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use imagegate_engine::{
        IMAGE_VALIDATING_POLICY, PolicyKind, PolicyResponse, ResourceId, RuleResponse, RuleStatus,
    };
    use imagegate_policy::model::FailurePolicy;

    #[test]
    fn policy_results_carry_the_policy_kind() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let policy = |kind: PolicyKind, name: &str, namespace: Option<&str>| {
            let mut response = PolicyResponse::new(
                kind,
                name.into(),
                namespace.map(str::to_owned),
                FailurePolicy::Fail,
            );
            response.rules.push(RuleResponse {
                name: name.into(),
                rule_type: if kind.is_image_validating() {
                    IMAGE_VALIDATING_POLICY
                } else {
                    imagegate_engine::response::IMAGE_VERIFY
                },
                status: RuleStatus::Fail,
                message: "m".into(),
                failure_action: FailureAction::Enforce,
                images: Vec::new(),
                exceptions: Vec::new(),
            });
            response
        };
        let response = EngineResponse {
            resource: ResourceId {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: "default".into(),
                name: "p".into(),
            },
            policies: vec![
                policy(PolicyKind::ClusterPolicy, "cp", None),
                policy(PolicyKind::Policy, "np", Some("default")),
                policy(PolicyKind::ImageValidatingPolicy, "ivp", None),
                policy(
                    PolicyKind::NamespacedImageValidatingPolicy,
                    "nivp",
                    Some("default"),
                ),
            ],
            ..EngineResponse::default()
        };
        metrics.policy_results(&response, "CREATE", Duration::from_millis(1));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for (name, kind) in [
            ("cp", "ClusterPolicy"),
            ("np", "Policy"),
            ("ivp", "ImageValidatingPolicy"),
            ("nivp", "NamespacedImageValidatingPolicy"),
        ] {
            let (kind, name) = (
                format!(r#"policy_kind="{kind}""#),
                format!(r#"policy_name="{name}""#),
            );
            for metric in [
                "kyverno_policy_results_total{",
                "kyverno_policy_execution_duration_seconds_count{",
            ] {
                assert!(
                    text.lines()
                        .any(|l| l.starts_with(metric) && l.contains(&kind) && l.contains(&name)),
                    "{metric} {kind} {name} missing:\n{text}"
                );
            }
        }
    }

    #[test]
    fn request_fields_become_labels_only_as_real_names() {
        let bounds = LabelBounds::default();
        for (kind, namespace, expected) in [
            ("Pod", "default", ("Pod", "default")),
            ("Deployment", "", ("Deployment", "")),
            ("Task", "ci-1", ("Task", "ci-1")),
            ("pod", "default", (OTHER, "default")),
            ("Pod", "Default", ("Pod", OTHER)),
            ("Pod", "-x", ("Pod", OTHER)),
            ("Pod", "x-", ("Pod", OTHER)),
            ("Pod\"", "a\nb", (OTHER, OTHER)),
            (&*format!("K{}", "a".repeat(63)), "a", (OTHER, "a")),
            ("Pod", &*"a".repeat(64), ("Pod", OTHER)),
        ] {
            let (k, n) = bounds.resource(kind, namespace);
            assert_eq!((k.as_str(), n.as_str()), expected, "{kind:?} {namespace:?}");
        }
        for (operation, expected) in [
            ("CREATE", "create"),
            ("update", "update"),
            ("DELETE", "delete"),
            ("CONNECT", "connect"),
            ("PATCH", OTHER),
            ("", OTHER),
        ] {
            assert_eq!(operation_label(operation), expected);
        }
    }

    #[test]
    fn distinct_values_stop_at_their_caps() {
        let bounds = LabelBounds::default();
        let kinds: HashSet<String> = (0..MAX_OTHER_KINDS + 10)
            .map(|i| bounds.resource(&format!("Kind{i}"), "").0)
            .collect();
        assert_eq!(kinds.len(), MAX_OTHER_KINDS + 1);
        assert!(kinds.contains(OTHER));
        // Workload kinds are labelled whatever came before.
        assert_eq!(bounds.resource("Pod", "").0, "Pod");
        let namespaces: HashSet<String> = (0..MAX_NAMESPACES + 10)
            .map(|i| bounds.resource("Pod", &format!("ns-{i}")).1)
            .collect();
        assert_eq!(namespaces.len(), MAX_NAMESPACES + 1);
        let pairs: HashSet<(String, String)> = WORKLOAD_KINDS
            .iter()
            .flat_map(|kind| (0..MAX_NAMESPACES).map(move |i| (*kind, i)))
            .map(|(kind, i)| bounds.resource(kind, &format!("ns-{i}")))
            .collect();
        assert!(pairs.len() <= MAX_RESOURCE_PAIRS + 1, "{}", pairs.len());
        assert!(pairs.contains(&(OTHER.to_owned(), OTHER.to_owned())));
    }

    #[test]
    fn background_scans_are_counted() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.scan.scan_started(3);
        metrics.scan.resource_scanned(&Summary {
            pass: 2,
            fail: 1,
            ..Summary::default()
        });
        metrics.scan.resource_failed();
        let text = encode(&registry);
        assert!(
            text.contains("imagegate_background_scan_pending 1"),
            "{text}"
        );
        metrics.scan.resource_scanned(&Summary::default());
        metrics.scan.scan_finished(Duration::from_secs(3), true);
        let text = encode(&registry);
        for line in [
            "imagegate_background_scans_total{result=\"completed\"} 1",
            "imagegate_background_scan_resources_total 2",
            "imagegate_background_scan_results_total{rule_result=\"pass\"} 2",
            "imagegate_background_scan_results_total{rule_result=\"fail\"} 1",
            "imagegate_background_scan_failures_total 1",
            "imagegate_background_scan_duration_seconds_count 1",
            "imagegate_background_scan_pending 0",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }
}
