//! Kubernetes `AdmissionReview` (`admission.k8s.io/v1` and `v1beta1`) in and out.
//!
//! Our own serde types: kube-core's write the patch as a number array (kube-rs issue
//! 1781), the API server wants base64. `imagegate review` and `imagegate serve` both
//! answer through [`review`], so they answer alike.

use base64::Engine as _;
use imagegate_policy::matching::{MatchContext, Operation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use std::time::Duration;

use imagegate_policy::model::FailurePolicy;

use crate::evaluate::{AdmissionInput, Engine, Phase, PolicySet, failure_policy};
use crate::response::{EngineResponse, ResourceId};

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
    /// The object as it will be stored.
    #[serde(default)]
    pub object: Option<Value>,
    /// The object before an update.
    #[serde(default)]
    pub old_object: Option<Value>,
    /// Whether the request is a dry run (imagegate has no side effects either way).
    #[serde(default)]
    pub dry_run: Option<bool>,
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
}

/// Why a review could not be answered at all.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The document is not an AdmissionReview with a request.
    #[error("malformed AdmissionReview: {0}")]
    Malformed(String),
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
    /// The engine input for this request; `None` when there is no object to check
    /// (DELETE, CONNECT).
    pub fn input(&self) -> Option<AdmissionInput> {
        let mut object = self.object.clone().filter(|o| o.is_object())?;
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
        let operation = match self.operation.to_ascii_uppercase().as_str() {
            "CREATE" => Operation::Create,
            "UPDATE" => Operation::Update,
            "DELETE" => Operation::Delete,
            "CONNECT" => Operation::Connect,
            _ => Operation::Create,
        };
        if operation == Operation::Delete || operation == Operation::Connect {
            return None;
        }
        let request = json!({
            "uid": self.uid,
            "operation": self.operation,
            "kind": self.kind,
            "name": self.name,
            "namespace": self.namespace,
            "subResource": self.sub_resource,
            "userInfo": self.user_info,
            "object": object,
            "oldObject": self.old_object,
            "dryRun": self.dry_run,
        });
        let match_context = MatchContext {
            operation,
            user_info: Some(self.user_info.clone()),
            ..MatchContext::default()
        };
        Some(AdmissionInput {
            resource: object,
            match_context,
            request,
        })
    }
}

/// The response to an evaluated request.
pub fn respond(uid: &str, response: &EngineResponse, phase: Phase) -> AdmissionResponse {
    let warnings = response.warnings();
    if let Some(message) = response.denial_message() {
        return deny(uid, message, warnings);
    }
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
    let Some(input) = request.input() else {
        let response = AdmissionResponse {
            uid: request.uid.clone(),
            allowed: true,
            ..AdmissionResponse::default()
        };
        return answered(response, None, None);
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
    let matching = policies.applicable(input);
    let failing: Vec<&str> = matching
        .iter()
        .filter(|p| failure_policy(p) == FailurePolicy::Fail)
        .map(|p| p.name())
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
    let names: Vec<&str> = matching.iter().map(|p| p.name()).collect();
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
            object: Some(object),
            ..AdmissionRequest::default()
        };
        let input = request(json!({"kind": "Pod", "metadata": {"name": "p"}}))
            .input()
            .unwrap();
        assert_eq!(input.resource["metadata"]["namespace"], "default");
        assert_eq!(input.request["object"]["metadata"]["namespace"], "default");
        let input =
            request(json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "other"}}))
                .input()
                .unwrap();
        assert_eq!(input.resource["metadata"]["namespace"], "other");
    }
}
