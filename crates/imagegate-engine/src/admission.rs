//! Kubernetes `AdmissionReview` (`admission.k8s.io/v1` and `v1beta1`) in and out.
//!
//! Our own serde types: kube-core's write the patch as a number array (kube-rs issue
//! 1781), the API server wants base64. `imagegate review` and `imagegate serve` both
//! answer through [`review`], so they answer alike.

use base64::Engine as _;
use imagegate_policy::matching::{MatchContext, Operation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::evaluate::{AdmissionInput, Engine, Phase, PolicySet};
use crate::response::EngineResponse;

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

/// Answers one review for one phase.
pub async fn review(
    engine: &Engine,
    policies: &PolicySet,
    review: &AdmissionReview,
    phase: Phase,
) -> AdmissionReview {
    let Some(request) = review.request.as_ref() else {
        return review.answer(deny(
            "",
            "malformed AdmissionReview: no request".into(),
            Vec::new(),
        ));
    };
    let response = match request.input() {
        None => AdmissionResponse {
            uid: request.uid.clone(),
            allowed: true,
            ..AdmissionResponse::default()
        },
        Some(input) => {
            let evaluated = engine.evaluate(policies, &input, phase).await;
            respond(&request.uid, &evaluated, phase)
        }
    };
    review.answer(response)
}

#[cfg(test)]
mod tests {
    use super::*;

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
