//! Kubernetes `AdmissionReview` (`admission.k8s.io/v1` and `v1beta1`) in and out.
//!
//! Our own serde types: kube-core's write the patch as a number array (kube-rs issue
//! 1781), the API server wants base64. `imagegate review` and `imagegate serve` both
//! answer through [`review`], so they answer alike.

use base64::Engine as _;
use imagegate_policy::matching::{MatchContext, Operation, UnknownOperation, rule_matches};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use std::collections::BTreeMap;
use std::time::Duration;

use imagegate_policy::ivp::model::FailurePolicy as IvpFailurePolicy;
use imagegate_policy::model::FailurePolicy;

use crate::evaluate::Engine;
use crate::policy_set::PolicySet;
use crate::response::{EngineResponse, ResourceId};
use crate::review::{AdmissionInput, Phase};

/// An `AdmissionReview` document.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionReview {
    /// `admission.k8s.io/v1` or `admission.k8s.io/v1beta1`.
    #[serde(default)]
    pub api_version: String,
    /// `AdmissionReview`.
    #[serde(default)]
    pub kind: String,
    /// The request (in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<AdmissionRequest>,
    /// The response (out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<AdmissionResponse>,
}

/// The part of an admission request imagegate reads.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// Echoed in the response.
    pub uid: String,
    /// Group/version/kind of the object.
    #[serde(default)]
    pub kind: Value,
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    #[serde(default)]
    pub operation: String,
    /// Object name.
    #[serde(default)]
    pub name: Option<String>,
    /// Object namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Subresource (`ephemeralcontainers`, …).
    #[serde(default)]
    pub sub_resource: Option<String>,
    /// The requesting user.
    #[serde(default)]
    pub user_info: Value,
    /// The object as it will be stored, as received: parsed only once a policy may
    /// apply to it (issue 8 item 11: a large object of a kind no policy names costs one
    /// copy of its text, nothing more).
    #[serde(default)]
    pub object: Option<Box<RawValue>>,
    /// The object before an update, as received (parsed with [`Self::object`]).
    #[serde(default)]
    pub old_object: Option<Box<RawValue>>,
    /// Whether the request is a dry run (imagegate has no side effects either way).
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Group/version/resource of the object (`{group, version, resource}`).
    #[serde(default)]
    pub resource: Option<Value>,
    /// The kind as originally requested (before conversion).
    #[serde(default)]
    pub request_kind: Option<Value>,
    /// The resource as originally requested (before conversion).
    #[serde(default)]
    pub request_resource: Option<Value>,
    /// The subresource as originally requested.
    #[serde(default)]
    pub request_sub_resource: Option<String>,
    /// The operation's options (`CreateOptions`, `UpdateOptions`, …).
    #[serde(default)]
    pub options: Option<Value>,
}

/// The answer to the API server.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// The request's uid.
    pub uid: String,
    /// Whether the request is admitted.
    pub allowed: bool,
    /// Why not (`message` holds Kyverno's denial text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    /// Base64 of the JSON patch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// `JSONPatch` when a patch is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    /// Warnings shown to the client (Audit failures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Annotations for the audit log (ImageValidatingPolicy `auditAnnotations` and
    /// failures of `validationActions: [Audit]`; validating phase only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
}

/// Largest AdmissionReview accepted, by the webhook and by `imagegate review` (the API
/// server sends objects of at most 3 MiB, wrapped with the old object of an update).
pub const MAX_REVIEW_BYTES: usize = 8 * 1024 * 1024;

/// The parts of an object that deciding whether a policy applies reads: `apiVersion`
/// and `kind` (ImageValidatingPolicies' resource rules), and `metadata` (Kyverno's
/// `match`/`exclude`: names, namespaces, labels, annotations). Everything else of the
/// object is skipped while parsing, not copied.
#[derive(Deserialize)]
struct ObjectHead {
    #[serde(rename = "apiVersion")]
    api_version: Option<Value>,
    kind: Option<Value>,
    metadata: Option<Value>,
}

/// Why a review could not be answered at all.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The document is not an AdmissionReview with a request.
    #[error("malformed AdmissionReview: {0}")]
    Malformed(String),
    /// The request's operation is none of Kubernetes' (never taken for `CREATE`).
    #[error("malformed AdmissionReview: {0}")]
    UnknownOperation(#[from] UnknownOperation),
}

impl AdmissionReview {
    /// Parses an AdmissionReview and checks it has a request with a uid.
    pub fn parse(bytes: &[u8]) -> Result<AdmissionReview, ReviewError> {
        let review: AdmissionReview =
            serde_json::from_slice(bytes).map_err(|e| ReviewError::Malformed(e.to_string()))?;
        let request = review
            .request
            .as_ref()
            .ok_or_else(|| ReviewError::Malformed("no request".into()))?;
        if request.uid.is_empty() {
            return Err(ReviewError::Malformed("request has no uid".into()));
        }
        Ok(review)
    }

    /// The review echoing `response`, in the request's API version.
    pub fn answer(&self, response: AdmissionResponse) -> AdmissionReview {
        AdmissionReview {
            api_version: if self.api_version.is_empty() {
                "admission.k8s.io/v1".into()
            } else {
                self.api_version.clone()
            },
            kind: "AdmissionReview".into(),
            request: None,
            response: Some(response),
        }
    }
}

impl AdmissionRequest {
    /// The request's operation; an unknown one is an error, not a `CREATE`.
    pub fn operation(&self) -> Result<Operation, ReviewError> {
        Ok(self.operation.parse::<Operation>()?)
    }

    /// The engine input for this request; `None` when there is no object to check
    /// (DELETE, CONNECT); an error for an unknown operation.
    pub fn input(&self) -> Result<Option<AdmissionInput>, ReviewError> {
        let operation = self.operation()?;
        if operation == Operation::Delete || operation == Operation::Connect {
            return Ok(None);
        }
        let Some(mut object) = parse_raw(self.object.as_deref())?.filter(Value::is_object) else {
            return Ok(None);
        };
        let old_object = parse_raw(self.old_object.as_deref())?;
        // The request names the namespace; the object may not (older API servers,
        // `kubectl run`). Matching (`namespaces`, a namespaced `Policy`) and the denial
        // text (`Pod/default/x`) need it, as in Kyverno.
        if let Some(namespace) = self.namespace.as_deref().filter(|ns| !ns.is_empty())
            && let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut)
            && metadata
                .get("namespace")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            metadata.insert("namespace".into(), Value::String(namespace.to_owned()));
        }
        // The request as Kubernetes sent it (what CEL reads as `request`), the object
        // with its namespace filled in.
        let mut request = json!({
            "uid": self.uid,
            "operation": self.operation,
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "subResource": self.sub_resource,
            "userInfo": self.user_info,
            "object": object,
            "oldObject": old_object,
            "dryRun": self.dry_run,
            "resource": self.resource,
            "requestKind": self.request_kind,
            "requestResource": self.request_resource,
            "requestSubResource": self.request_sub_resource,
            "options": self.options,
        });
        if let Some(fields) = request.as_object_mut() {
            // Absent stays absent (as Kubernetes omits empty fields); JMESPath and CEL
            // then see the same request whichever fields the API server sent.
            fields.retain(|_, v| !v.is_null());
        }
        let match_context = MatchContext {
            operation,
            user_info: Some(self.user_info.clone()),
            ..MatchContext::default()
        };
        Ok(Some(AdmissionInput {
            resource: object,
            match_context,
            request,
            json_payload: false,
        }))
    }

    /// Whether no rule of `policies` can apply to this request, decided on the object
    /// as received, before anything is copied (issue 8 item 11: a large object of a
    /// kind no policy matches must cost one parse, nothing more). `false` when unsure:
    /// when the object lacks the namespace the request names, [`Self::input`] adds it
    /// and matching must see it.
    fn matches_no_rule(
        &self,
        operation: Operation,
        policies: &PolicySet,
        namespace_labels: Option<&BTreeMap<String, String>>,
    ) -> bool {
        let Some(object) = self.object_head() else {
            return false;
        };
        let object_namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if object_namespace.is_empty() && self.namespace.as_deref().is_some_and(|ns| !ns.is_empty())
        {
            return false;
        }
        // ImageValidatingPolicies by their resource rules only (what else they match on
        // can only narrow the match).
        let sub_resource = self.sub_resource.as_deref().unwrap_or_default();
        if policies
            .image_validating()
            .iter()
            .any(|ivp| ivp.may_match(&self.operation, &object, sub_resource))
        {
            return false;
        }
        let match_context = MatchContext {
            operation,
            user_info: Some(self.user_info.clone()),
            namespace_labels: namespace_labels.cloned(),
        };
        !policies.rules().any(|(policy, rules)| {
            rules
                .iter()
                .any(|rule| rule_matches(rule, policy, &object, &match_context))
        })
    }

    /// The object's `apiVersion`, `kind` and `metadata` (as a JSON object holding those
    /// present), read from the raw object without copying the rest of it; `None` when
    /// there is no object, it is not a JSON object, or it repeats one of these fields
    /// (then only the full parse says which one counts).
    pub fn object_head(&self) -> Option<Value> {
        let raw = self.object.as_deref()?;
        // A struct also deserialises from a JSON array: only an object has a head.
        if !raw.get().starts_with('{') {
            return None;
        }
        let head: ObjectHead = serde_json::from_str(raw.get()).ok()?;
        let fields = [
            ("apiVersion", head.api_version),
            ("kind", head.kind),
            ("metadata", head.metadata),
        ];
        Some(Value::Object(
            fields
                .into_iter()
                .filter_map(|(name, value)| Some((name.to_owned(), value?)))
                .collect(),
        ))
    }
}

/// A raw JSON value of the request, parsed (`None` when absent).
fn parse_raw(raw: Option<&RawValue>) -> Result<Option<Value>, ReviewError> {
    raw.map(|raw| serde_json::from_str(raw.get()))
        .transpose()
        .map_err(|e| ReviewError::Malformed(format!("request object: {e}")))
}

/// The response to an evaluated request.
pub fn respond(uid: &str, response: &EngineResponse, phase: Phase) -> AdmissionResponse {
    if let Some(message) = response.denial_message() {
        return deny(uid, message, response.warnings());
    }
    let warnings = match phase {
        Phase::Mutate => response.warnings_without_image_validating(),
        Phase::Validate => response.warnings(),
    };
    // Audit annotations once per request: from the validating webhook, where Kyverno
    // evaluates ImageValidatingPolicies.
    let audit_annotations = if phase == Phase::Validate {
        response.audit_annotations()
    } else {
        BTreeMap::new()
    };
    let (patch, patch_type) = if phase == Phase::Mutate && !response.patches.is_empty() {
        let bytes = serde_json::to_vec(&response.patches).unwrap_or_default();
        (
            Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            Some("JSONPatch".to_owned()),
        )
    } else {
        (None, None)
    };
    AdmissionResponse {
        uid: uid.to_owned(),
        allowed: true,
        status: None,
        patch,
        patch_type,
        warnings,
        audit_annotations,
    }
}

/// A denial with `message` (HTTP 403 in the status, as Kyverno answers).
pub fn deny(uid: &str, message: String, warnings: Vec<String>) -> AdmissionResponse {
    AdmissionResponse {
        uid: uid.to_owned(),
        allowed: false,
        status: Some(json!({"code": 403, "status": "Failure", "message": message})),
        patch: None,
        patch_type: None,
        warnings,
        audit_annotations: BTreeMap::new(),
    }
}

/// The API server's default webhook timeout.
const DEFAULT_TIMEOUT_SECONDS: u32 = 10;

/// How long before the webhook timeout imagegate answers.
const MARGIN: Duration = Duration::from_secs(1);

/// The time imagegate allows itself for one review under `policies`: the policies'
/// `webhookTimeoutSeconds` (default 10 s, the API server's) minus one second (a
/// quarter of it for timeouts under four seconds), so that the API server always gets
/// imagegate's answer instead of applying its own `failurePolicy` to a timeout.
pub fn deadline(policies: &PolicySet) -> Duration {
    let timeout = Duration::from_secs(u64::from(
        policies
            .webhook_timeout_seconds()
            .unwrap_or(DEFAULT_TIMEOUT_SECONDS)
            .clamp(1, 30),
    ));
    timeout - MARGIN.min(timeout / 4)
}

/// What answering one review produced.
#[derive(Debug, Clone)]
pub struct Answered {
    /// The review to send back.
    pub review: AdmissionReview,
    /// The engine's decision, when the evaluation finished in time.
    pub evaluated: Option<EngineResponse>,
    /// `Some(denied)` when the deadline passed: denied (a matching policy has
    /// `failurePolicy: Fail`) or admitted with a warning (all `Ignore`).
    pub deadline_exceeded: Option<bool>,
}

/// Answers one review for one phase within [`deadline`]. `imagegate review` and the
/// webhook both answer through here, so they answer alike.
pub async fn review(
    engine: &Engine,
    policies: &PolicySet,
    review: &AdmissionReview,
    phase: Phase,
) -> Answered {
    let answered = |response, evaluated, deadline_exceeded| Answered {
        review: review.answer(response),
        evaluated,
        deadline_exceeded,
    };
    let Some(request) = review.request.as_ref() else {
        let response = deny(
            "",
            "malformed AdmissionReview: no request".into(),
            Vec::new(),
        );
        return answered(response, None, None);
    };
    let admit = || AdmissionResponse {
        uid: request.uid.clone(),
        allowed: true,
        ..AdmissionResponse::default()
    };
    let operation = match request.operation() {
        Ok(operation) => operation,
        Err(e) => return answered(deny(&request.uid, e.to_string(), Vec::new()), None, None),
    };
    // In cluster mode, the labels of the request's namespace (for `namespaceSelector`);
    // unknown ones (no cluster, or a namespace not seen yet) fail closed.
    let namespace_labels = request
        .namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
        .and_then(|ns| engine.namespace_labels(ns));
    if operation != Operation::Delete
        && operation != Operation::Connect
        && request.matches_no_rule(operation, policies, namespace_labels.as_ref())
    {
        return answered(admit(), None, None);
    }
    let input = match request.input() {
        Ok(Some(mut input)) => {
            input.match_context.namespace_labels = namespace_labels;
            input
        }
        Ok(None) => return answered(admit(), None, None),
        Err(e) => return answered(deny(&request.uid, e.to_string(), Vec::new()), None, None),
    };
    let deadline = deadline(policies);
    match tokio::time::timeout(deadline, engine.evaluate(policies, &input, phase)).await {
        Ok(evaluated) => {
            let response = respond(&request.uid, &evaluated, phase);
            answered(response, Some(evaluated), None)
        }
        Err(_) => {
            let (response, denied) = deadline_exceeded(&request.uid, &input, policies, deadline);
            answered(response, None, Some(denied))
        }
    }
}

/// The answer when the evaluation did not finish before `deadline`: the matching
/// policies' `failurePolicy` decides (any `Fail` denies).
fn deadline_exceeded(
    uid: &str,
    input: &AdmissionInput,
    policies: &PolicySet,
    deadline: Duration,
) -> (AdmissionResponse, bool) {
    // (name, failurePolicy is Fail) of every policy that applies, ImageValidatingPolicies
    // included: one that plans checks for this resource applies.
    let ivp_input = crate::ivp::ivp_input(input);
    let matching: Vec<(String, bool)> = policies
        .applicable(input)
        .iter()
        .map(|p| {
            (
                p.name().to_owned(),
                p.failure_policy() == FailurePolicy::Fail,
            )
        })
        .chain(policies.image_validating().iter().filter_map(|ivp| {
            let plan = ivp.plan(&ivp_input).ok()?;
            let fail = ivp.policy.spec.failure_policy() == IvpFailurePolicy::Fail;
            Some((plan.policy, fail))
        }))
        .collect();
    let failing: Vec<&str> = matching
        .iter()
        .filter(|(_, fail)| *fail)
        .map(|(name, _)| name.as_str())
        .collect();
    let resource = ResourceId::of(&input.resource).display();
    let seconds = deadline.as_secs_f64();
    if !failing.is_empty() {
        tracing::warn!(
            policies = failing.join(","),
            "deadline exceeded; denied (failurePolicy Fail)"
        );
        let message = format!(
            "imagegate could not finish verification within {seconds}s: image verification of {resource} for policies {} did not complete in time (registry slow or unreachable); denied because their failurePolicy is Fail",
            failing.join(", ")
        );
        return (deny(uid, message, Vec::new()), true);
    }
    let names: Vec<&str> = matching.iter().map(|(name, _)| name.as_str()).collect();
    tracing::warn!(
        policies = names.join(","),
        "deadline exceeded; admitted (failurePolicy Ignore)"
    );
    let warning = format!(
        "imagegate could not finish verification within {seconds}s: image verification of {resource} for policies {} did not complete in time; admitted without verification because their failurePolicy is Ignore",
        names.join(", ")
    );
    let response = AdmissionResponse {
        uid: uid.to_owned(),
        allowed: true,
        warnings: vec![warning],
        ..AdmissionResponse::default()
    };
    (response, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(value: &Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(value).unwrap()
    }

    #[test]
    fn deadline_leaves_a_margin() {
        assert_eq!(deadline(&PolicySet::default()), Duration::from_secs(9));
    }

    #[test]
    fn the_request_namespace_fills_an_object_without_one() {
        let request = |object: Value| AdmissionRequest {
            uid: "u".into(),
            operation: "CREATE".into(),
            namespace: Some("default".into()),
            object: Some(raw(&object)),
            ..AdmissionRequest::default()
        };
        let input = request(json!({"kind": "Pod", "metadata": {"name": "p"}}))
            .input()
            .unwrap()
            .unwrap();
        assert_eq!(input.resource["metadata"]["namespace"], "default");
        assert_eq!(input.request["object"]["metadata"]["namespace"], "default");
        let input =
            request(json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "other"}}))
                .input()
                .unwrap()
                .unwrap();
        assert_eq!(input.resource["metadata"]["namespace"], "other");
    }

    fn engine() -> Engine {
        let client = imagegate_oci::RegistryClient::new(
            imagegate_oci::DockerConfig::anonymous(),
            imagegate_oci::ClientOptions::default(),
        )
        .unwrap();
        Engine::builder(client).build()
    }

    fn review_of(operation: &str, object: Value) -> AdmissionReview {
        AdmissionReview {
            api_version: "admission.k8s.io/v1".into(),
            kind: "AdmissionReview".into(),
            request: Some(AdmissionRequest {
                uid: "u".into(),
                operation: operation.into(),
                namespace: Some("default".into()),
                object: Some(raw(&object)),
                ..AdmissionRequest::default()
            }),
            response: None,
        }
    }

    fn pod_policies() -> PolicySet {
        let yaml = r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: signed
spec:
  rules:
    - name: verify
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - imageReferences: ["*"]
          failureAction: Enforce
          attestors:
            - entries:
                - keyless:
                    subject: someone
                    issuer: https://issuer.example
                    rekor:
                      url: https://rekor.example
"#;
        PolicySet::new(imagegate_policy::load::load_policies(yaml, "test").unwrap())
    }

    #[tokio::test]
    async fn unknown_operations_are_errors_and_connect_is_skipped() {
        // Issue 9 item 5: an unknown operation was evaluated as a CREATE.
        let pod = json!({"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "127.0.0.1:1/x:v1"}]}});
        let (engine, policies) = (engine(), pod_policies());
        for operation in ["PATCH", "create", ""] {
            let answered = review(
                &engine,
                &policies,
                &review_of(operation, pod.clone()),
                Phase::Mutate,
            )
            .await;
            let response = answered.review.response.unwrap();
            assert!(!response.allowed, "{operation:?} admitted");
            let message = response.status.unwrap()["message"].to_string();
            assert!(message.contains("unknown admission operation"), "{message}");
        }
        let answered = review(
            &engine,
            &policies,
            &review_of("CONNECT", pod),
            Phase::Mutate,
        )
        .await;
        assert!(answered.review.response.unwrap().allowed);
        assert!(answered.evaluated.is_none());
    }

    #[tokio::test]
    async fn a_kind_no_rule_matches_is_answered_without_evaluation() {
        // Issue 8 item 11: a large object of a kind no policy matches was copied about
        // four times before the engine found nothing to do.
        let big = "x".repeat(1024 * 1024);
        let config_map = json!({"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "c", "namespace": "default"}, "data": {"big": big}});
        let (engine, policies) = (engine(), pod_policies());
        let answered = review(
            &engine,
            &policies,
            &review_of("CREATE", config_map),
            Phase::Mutate,
        )
        .await;
        assert!(answered.review.response.unwrap().allowed);
        assert!(answered.evaluated.is_none(), "evaluated a ConfigMap");
        // Without a namespace in the object, the full path decides (it adds the
        // request's namespace before matching).
        let pod = json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "127.0.0.1:1/x:v1"}]}});
        let answered = review(&engine, &policies, &review_of("CREATE", pod), Phase::Mutate).await;
        assert!(answered.evaluated.is_some());
    }

    fn ivp_policies(rule: &str) -> PolicySet {
        let yaml = format!(
            r#"apiVersion: policies.kyverno.io/v1beta1
kind: ImageValidatingPolicy
metadata:
  name: signed
spec:
  matchConstraints:
    resourceRules:
{rule}
  matchImageReferences:
  - glob: "registry.test/*"
  attestors:
  - name: cosign
    cosign:
      key:
        data: "-----BEGIN PUBLIC KEY-----\nTEST\n-----END PUBLIC KEY-----"
  validations:
  - expression: images.containers.all(i, verifyImageSignatures(i, [attestors.cosign]) > 0)
"#
        );
        let loaded = imagegate_policy::load::load_documents(&yaml, "test").unwrap();
        PolicySet::new(loaded.policies).with_image_validating(loaded.image_validating)
    }

    #[tokio::test]
    async fn a_kind_no_image_validating_policy_names_is_answered_without_evaluation() {
        // Issue 8 item 11: any ImageValidatingPolicy turned the shortcut off; now only
        // one whose resource rules name the request's kind does.
        let engine = engine();
        let config_map = json!({"kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "c", "namespace": "default"}, "data": {"big": "x"}});
        // Not matched by the image pattern: evaluated, nothing fetched.
        let pod = json!({"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "other.test/x:v1"}]}});
        let deployment = json!({"kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "d", "namespace": "default"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "other.test/x:v1"}]}}}});
        let pods = ivp_policies(
            "    - apiGroups: [\"\"]\n      apiVersions: [v1]\n      operations: [CREATE]\n      resources: [pods]",
        );
        let everything = ivp_policies(
            "    - apiGroups: [\"*\"]\n      apiVersions: [\"*\"]\n      operations: [\"*\"]\n      resources: [\"*\"]",
        );
        // (policies, object, subresource, evaluated)
        let cases = [
            (&pods, &config_map, None, false),
            (&pods, &pod, None, true),
            // The autogen variant names Deployments.
            (&pods, &deployment, None, true),
            (&pods, &pod, Some("ephemeralcontainers"), false),
            (&everything, &config_map, None, true),
            (&everything, &config_map, Some("status"), false),
        ];
        for (i, (policies, object, sub_resource, evaluated)) in cases.into_iter().enumerate() {
            let mut asked = review_of("CREATE", object.clone());
            if let Some(request) = asked.request.as_mut() {
                request.sub_resource = sub_resource.map(str::to_owned);
            }
            let answered = review(&engine, policies, &asked, Phase::Mutate).await;
            assert_eq!(answered.evaluated.is_some(), evaluated, "case {i}");
            if !evaluated {
                assert!(answered.review.response.unwrap().allowed, "case {i}");
            }
        }
    }

    #[test]
    fn the_object_head_is_read_without_the_rest() {
        let request = |object: &str| AdmissionRequest {
            uid: "u".into(),
            object: Some(RawValue::from_string(object.to_owned()).unwrap()),
            ..AdmissionRequest::default()
        };
        let head = request(
            r#"{"data": {"x": "y"}, "kind": "ConfigMap", "metadata": {"name": "c"}, "spec": [1]}"#,
        )
        .object_head()
        .unwrap();
        assert_eq!(
            head,
            json!({"kind": "ConfigMap", "metadata": {"name": "c"}})
        );
        // Not an object, or a repeated field (the full parse decides): no head.
        for object in [
            r#"["v1", "Pod", {}]"#,
            r#""Pod""#,
            r#"{"kind": "ConfigMap", "kind": "Pod"}"#,
        ] {
            assert_eq!(request(object).object_head(), None, "{object}");
        }
    }
}
