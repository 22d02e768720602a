//! `wgpolicyk8s.io/v1alpha2` PolicyReports built from evaluations, shaped as Kyverno ≥
//! 1.10 writes them (`pkg/utils/report`, the aggregate report controller): one report
//! per resource, `scope` and an owner reference naming the resource (so the report is
//! garbage-collected with it), `summary` counts, `results[]` sorted by policy and rule.
//! Pure: the caller supplies the time and writes the object (`imagegate-kube`).
//!
//! Where imagegate differs from Kyverno, on purpose:
//! - `source: imagegate` and the label `app.kubernetes.io/managed-by: imagegate`, and the
//!   report is named `imagegate-<uid>` rather than `<uid>`: a cluster that runs Kyverno
//!   for other rules keeps both reports (Kyverno's aggregate controller owns the
//!   `<uid>` report and rewrites or deletes it whole), and Policy Reporter shows
//!   imagegate as its own source;
//! - `properties.images` and `properties.digests` name the images the rule checked and
//!   the digests they resolved to (comma-separated, in the same order), so a report
//!   says which digest passed or failed.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::response::{EngineResponse, ResourceId, RuleStatus, UNSUPPORTED};

/// `results[].source` and the `app.kubernetes.io/managed-by` label of imagegate's
/// reports.
pub const SOURCE: &str = "imagegate";
/// `apiVersion` of the reports.
pub const API_VERSION: &str = "wgpolicyk8s.io/v1alpha2";
/// Kind of the report of a namespaced resource.
pub const KIND_NAMESPACED: &str = "PolicyReport";
/// Kind of the report of a cluster-scoped resource.
pub const KIND_CLUSTER: &str = "ClusterPolicyReport";
/// Kubernetes' label naming the tool that manages an object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// `properties.process` of results from admission (Kyverno's text).
pub const PROCESS_ADMISSION: &str = "admission review";
/// `properties.process` of results from a background scan (Kyverno's text).
pub const PROCESS_BACKGROUND: &str = "background scan";

/// Why no report can be built for a resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// The resource has no `metadata.uid` (not yet created, or not from the API): a
    /// report is named after it and owned by it.
    #[error("{resource} has no metadata.uid: a PolicyReport is named after the resource's uid")]
    NoUid {
        /// `Kind/namespace/name` of the resource.
        resource: String,
    },
}

/// What the results come from (`properties.process`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// An admission review.
    Admission,
    /// A background scan.
    Background,
}

impl Process {
    fn as_str(self) -> &'static str {
        match self {
            Process::Admission => PROCESS_ADMISSION,
            Process::Background => PROCESS_BACKGROUND,
        }
    }
}

/// A `PolicyReport` or `ClusterPolicyReport` (serialises to the Kubernetes object).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PolicyReport {
    /// `wgpolicyk8s.io/v1alpha2`.
    pub api_version: &'static str,
    /// `PolicyReport` (namespaced resource) or `ClusterPolicyReport`.
    pub kind: &'static str,
    /// Name, namespace, label, owner reference.
    pub metadata: ReportMetadata,
    /// The resource the report is about.
    pub scope: ObjectReference,
    /// Counts of `results` by result.
    pub summary: Summary,
    /// One result per policy and rule, sorted by policy then rule.
    pub results: Vec<ReportResult>,
}

/// `metadata` of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ReportMetadata {
    /// `imagegate-<resource uid>`.
    pub name: String,
    /// The resource's namespace (absent for a ClusterPolicyReport).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `app.kubernetes.io/managed-by: imagegate`.
    pub labels: BTreeMap<String, String>,
    /// The resource, so that the report is deleted with it.
    pub owner_references: Vec<OwnerReference>,
}

/// A Kubernetes `ObjectReference` (the report's `scope`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// `apiVersion` of the resource.
    pub api_version: String,
    /// `kind` of the resource.
    pub kind: String,
    /// Name of the resource.
    pub name: String,
    /// Namespace of a namespaced resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `metadata.uid` of the resource.
    pub uid: String,
}

/// A Kubernetes `OwnerReference` (as Kyverno's `SetOwner`: no controller flag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference {
    /// `apiVersion` of the owner.
    pub api_version: String,
    /// `kind` of the owner.
    pub kind: String,
    /// Name of the owner.
    pub name: String,
    /// `metadata.uid` of the owner.
    pub uid: String,
}

/// `summary` of a report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Summary {
    /// Results `pass`.
    pub pass: u64,
    /// Results `fail`.
    pub fail: u64,
    /// Results `warn`.
    pub warn: u64,
    /// Results `error`.
    pub error: u64,
    /// Results `skip`.
    pub skip: u64,
}

/// One `results[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ReportResult {
    /// `imagegate`.
    pub source: &'static str,
    /// `name` of a ClusterPolicy, `namespace/name` of a Policy (Kyverno's key).
    pub policy: String,
    /// Rule name (autogen names included); the policy name for an
    /// ImageValidatingPolicy.
    pub rule: String,
    /// `pass`, `fail`, `warn`, `error` or `skip`.
    pub result: RuleStatus,
    /// The rule's message (Kyverno's texts).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Always true (imagegate does not read `policies.kyverno.io/scored`).
    pub scored: bool,
    /// When the result was produced.
    pub timestamp: Timestamp,
    /// `process`, and `images`/`digests` (and `exceptions` for a skip by exception).
    pub properties: BTreeMap<String, String>,
}

/// A `metav1.Timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub seconds: i64,
    /// Always 0, as Kyverno writes it.
    pub nanos: i32,
}

impl PolicyReport {
    /// The report of `resource` (an object from the API, with `metadata.uid`) holding
    /// the results of `responses` produced at `timestamp` (seconds since the epoch).
    /// Rules imagegate does not evaluate (non-verifyImages rule types) are left out:
    /// they are Kyverno's to report.
    pub fn for_resource<'a>(
        resource: &Value,
        responses: impl IntoIterator<Item = &'a EngineResponse>,
        process: Process,
        timestamp: i64,
    ) -> Result<PolicyReport, ReportError> {
        let text = |pointer: &str| {
            resource
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (api_version, kind, name) =
            (text("/apiVersion"), text("/kind"), text("/metadata/name"));
        let namespace = Some(text("/metadata/namespace")).filter(|ns| !ns.is_empty());
        let uid = text("/metadata/uid");
        if uid.is_empty() {
            let id = ResourceId::of(resource);
            return Err(ReportError::NoUid {
                resource: id.display(),
            });
        }
        let mut results: Vec<ReportResult> = responses
            .into_iter()
            .flat_map(|response| &response.policies)
            .flat_map(|policy| {
                let key = match &policy.namespace {
                    Some(ns) => format!("{ns}/{}", policy.policy),
                    None => policy.policy.clone(),
                };
                policy
                    .rules
                    .iter()
                    .filter(|rule| rule.rule_type != UNSUPPORTED)
                    .map(move |rule| {
                        let mut properties =
                            BTreeMap::from([("process".to_owned(), process.as_str().to_owned())]);
                        if !rule.images.is_empty() {
                            let images: Vec<&str> =
                                rule.images.iter().map(|i| i.image.as_str()).collect();
                            let digests: Vec<&str> = rule
                                .images
                                .iter()
                                .map(|i| i.digest.as_deref().unwrap_or(""))
                                .collect();
                            properties.insert("images".into(), images.join(","));
                            properties.insert("digests".into(), digests.join(","));
                        }
                        if !rule.exceptions.is_empty() {
                            properties.insert("exceptions".into(), rule.exceptions.join(","));
                        }
                        ReportResult {
                            source: SOURCE,
                            policy: key.clone(),
                            rule: rule.name.clone(),
                            result: rule.status,
                            message: rule.message.clone(),
                            scored: true,
                            timestamp: Timestamp {
                                seconds: timestamp,
                                nanos: 0,
                            },
                            properties,
                        }
                    })
            })
            .collect();
        results.sort_by(|a, b| (&a.policy, &a.rule).cmp(&(&b.policy, &b.rule)));
        Ok(PolicyReport {
            api_version: API_VERSION,
            kind: if namespace.is_some() {
                KIND_NAMESPACED
            } else {
                KIND_CLUSTER
            },
            metadata: ReportMetadata {
                name: format!("{SOURCE}-{uid}"),
                namespace: namespace.clone(),
                labels: BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), SOURCE.to_owned())]),
                owner_references: vec![OwnerReference {
                    api_version: api_version.clone(),
                    kind: kind.clone(),
                    name: name.clone(),
                    uid: uid.clone(),
                }],
            },
            scope: ObjectReference {
                api_version,
                kind,
                name,
                namespace,
                uid,
            },
            summary: summary(&results),
            results,
        })
    }

    /// Whether the report holds no result (then it need not be written).
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }
}

fn summary(results: &[ReportResult]) -> Summary {
    let mut summary = Summary::default();
    for result in results {
        let count = match result.result {
            RuleStatus::Pass => &mut summary.pass,
            RuleStatus::Fail => &mut summary.fail,
            RuleStatus::Warn => &mut summary.warn,
            RuleStatus::Error => &mut summary.error,
            RuleStatus::Skip => &mut summary.skip,
        };
        *count += 1;
    }
    summary
}

#[cfg(test)]
mod tests {
    use imagegate_policy::model::{FailureAction, FailurePolicy};
    use serde_json::json;

    use super::*;
    use crate::response::{CheckedImage, IMAGE_VERIFY, PolicyKind, PolicyResponse, RuleResponse};

    fn rule(name: &str, status: RuleStatus, message: &str) -> RuleResponse {
        RuleResponse {
            name: name.into(),
            rule_type: IMAGE_VERIFY,
            status,
            message: message.into(),
            failure_action: FailureAction::Audit,
            images: Vec::new(),
            exceptions: Vec::new(),
        }
    }

    fn policy(name: &str, namespace: Option<&str>, rules: Vec<RuleResponse>) -> PolicyResponse {
        let kind = if namespace.is_some() {
            PolicyKind::Policy
        } else {
            PolicyKind::ClusterPolicy
        };
        let mut response = PolicyResponse::new(
            kind,
            name.into(),
            namespace.map(str::to_owned),
            FailurePolicy::Fail,
        );
        response.rules = rules;
        response
    }

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "unsigned", "namespace": "test-verify-images",
                         "uid": "6f1c2f4e-0d5c-4f7e-9a51-2b8c9d1e3f40"},
        })
    }

    /// Kyverno's shape (test/conformance/chainsaw/verify-images/.../
    /// verify-image-background-audit and reports/background/verify-image-fail), with
    /// imagegate's source, name and image properties.
    const EXPECTED: &str = r#"
apiVersion: wgpolicyk8s.io/v1alpha2
kind: PolicyReport
metadata:
  name: imagegate-6f1c2f4e-0d5c-4f7e-9a51-2b8c9d1e3f40
  namespace: test-verify-images
  labels:
    app.kubernetes.io/managed-by: imagegate
  ownerReferences:
  - apiVersion: v1
    kind: Pod
    name: unsigned
    uid: 6f1c2f4e-0d5c-4f7e-9a51-2b8c9d1e3f40
scope:
  apiVersion: v1
  kind: Pod
  name: unsigned
  namespace: test-verify-images
  uid: 6f1c2f4e-0d5c-4f7e-9a51-2b8c9d1e3f40
summary:
  error: 0
  fail: 1
  pass: 1
  skip: 1
  warn: 0
results:
- source: imagegate
  policy: keyed-basic-policy
  rule: keyed-basic-rule
  result: fail
  message: 'failed to verify image ghcr.io/acme/app:v1: .attestors[0].entries[0].keys: no signatures found'
  scored: true
  timestamp: {seconds: 1764650000, nanos: 0}
  properties:
    process: background scan
    images: ghcr.io/acme/app:v1,ghcr.io/acme/sidecar:v2
    digests: sha256:1111111111111111111111111111111111111111111111111111111111111111,
- source: imagegate
  policy: team/exempt
  rule: verify
  result: skip
  message: rule is skipped due to policy exceptionsteam/allow-sidecar
  scored: true
  timestamp: {seconds: 1764650000, nanos: 0}
  properties:
    process: background scan
    exceptions: team/allow-sidecar
- source: imagegate
  policy: team/signed
  rule: verify
  result: pass
  message: verified image signatures for ghcr.io/acme/app:v1
  scored: true
  timestamp: {seconds: 1764650000, nanos: 0}
  properties:
    process: background scan
    images: ghcr.io/acme/app:v1
    digests: sha256:1111111111111111111111111111111111111111111111111111111111111111
"#;

    #[test]
    fn one_report_per_resource_in_kyvernos_shape() {
        let digest = format!("sha256:{}", "1".repeat(64));
        let mut failed = rule(
            "keyed-basic-rule",
            RuleStatus::Fail,
            "failed to verify image ghcr.io/acme/app:v1: .attestors[0].entries[0].keys: no signatures found",
        );
        failed.images = vec![
            CheckedImage {
                image: "ghcr.io/acme/app:v1".into(),
                digest: Some(digest.clone()),
            },
            CheckedImage {
                image: "ghcr.io/acme/sidecar:v2".into(),
                digest: None,
            },
        ];
        let mut passed = rule(
            "verify",
            RuleStatus::Pass,
            "verified image signatures for ghcr.io/acme/app:v1",
        );
        passed.images = vec![CheckedImage {
            image: "ghcr.io/acme/app:v1".into(),
            digest: Some(digest),
        }];
        let mut excepted = rule(
            "verify",
            RuleStatus::Skip,
            "rule is skipped due to policy exceptionsteam/allow-sidecar",
        );
        excepted.exceptions = vec!["team/allow-sidecar".into()];
        let mut unsupported = rule("check-labels", RuleStatus::Skip, "not evaluated");
        unsupported.rule_type = UNSUPPORTED;
        // Two evaluations (e.g. the policies of two sources) fold into one report;
        // results are sorted by policy and rule whatever the order they came in.
        let first = EngineResponse {
            policies: vec![
                policy("no-rules-applied", None, Vec::new()),
                policy("signed", Some("team"), vec![passed]),
                policy("keyed-basic-policy", None, vec![failed, unsupported]),
            ],
            ..EngineResponse::default()
        };
        let second = EngineResponse {
            policies: vec![policy("exempt", Some("team"), vec![excepted])],
            ..EngineResponse::default()
        };
        let report = PolicyReport::for_resource(
            &pod(),
            [&first, &second],
            Process::Background,
            1_764_650_000,
        )
        .unwrap();
        let expected: Value = serde_saphyr::from_str(EXPECTED).unwrap();
        assert_eq!(serde_json::to_value(&report).unwrap(), expected);
        assert!(!report.is_empty());
    }

    #[test]
    fn cluster_scoped_resources_get_a_cluster_report() {
        let namespace = json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "prod", "uid": "0a0a"},
        });
        let response = EngineResponse {
            policies: vec![policy(
                "p",
                None,
                vec![rule("r", RuleStatus::Error, "registry unreachable")],
            )],
            ..EngineResponse::default()
        };
        let report =
            PolicyReport::for_resource(&namespace, [&response], Process::Admission, 7).unwrap();
        let value = serde_json::to_value(&report).unwrap();
        assert_eq!(value["kind"], "ClusterPolicyReport");
        assert_eq!(value["metadata"]["name"], "imagegate-0a0a");
        assert!(value["metadata"].get("namespace").is_none());
        assert!(value["scope"].get("namespace").is_none());
        assert_eq!(
            value["results"][0]["properties"]["process"],
            "admission review"
        );
        assert_eq!(
            value["summary"],
            json!({"pass": 0, "fail": 0, "warn": 0, "error": 1, "skip": 0})
        );
    }

    #[test]
    fn a_resource_without_uid_has_no_report() {
        let mut resource = pod();
        resource["metadata"]
            .as_object_mut()
            .map(|m| m.remove("uid"));
        let empty = EngineResponse::default();
        assert_eq!(
            PolicyReport::for_resource(&resource, [&empty], Process::Admission, 0),
            Err(ReportError::NoUid {
                resource: "Pod/test-verify-images/unsigned".into()
            })
        );
        let report = PolicyReport::for_resource(&pod(), [&empty], Process::Admission, 0).unwrap();
        assert!(report.is_empty());
        assert_eq!(report.summary, Summary::default());
    }
}
