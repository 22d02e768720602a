//! `POST /validate-policy`: a ClusterPolicy, Policy, ImageValidatingPolicy,
//! NamespacedImageValidatingPolicy or PolicyException (`kyverno.io/v2`, `v2beta1`;
//! `policies.kyverno.io`, as Kyverno's exception webhook checks them) being created or
//! updated is checked with the loader
//! every policy goes through (files and the cluster alike), so one that imagegate would
//! refuse to load is refused at `kubectl apply`, with the path-qualified errors. What the
//! loader accepts is admitted, with its warnings (fields imagegate does not act on).

use std::time::Duration;

use imagegate_engine::admission::{AdmissionResponse, AdmissionReview, deny};
use imagegate_policy::ivp::{KIND_CLUSTER, KIND_NAMESPACED};
use imagegate_policy::load::load_documents;
use imagegate_policy::matching::Operation;
use serde_json::Value;

/// The kinds this endpoint judges; any other object is admitted untouched.
const POLICY_KINDS: [&str; 5] = [
    "ClusterPolicy",
    "Policy",
    KIND_CLUSTER,
    KIND_NAMESPACED,
    "PolicyException",
];

/// Longest validation (CEL compilation of a large ImageValidatingPolicy included), well
/// inside the API server's default 10 s webhook timeout.
const DEADLINE: Duration = Duration::from_secs(5);

/// Names the source in the loader's messages ("imagegate: invalid policy ClusterPolicy/x: …").
const SOURCE: &str = "imagegate";

/// The answer to one policy review.
pub async fn answer(review: &AdmissionReview) -> AdmissionReview {
    let Some(request) = review.request.as_ref() else {
        // `AdmissionReview::parse` guarantees a request; answer something coherent anyway.
        return review.answer(deny("", "no request".into(), Vec::new()));
    };
    let uid = request.uid.as_str();
    let operation = match request.operation() {
        Ok(op) => op,
        Err(e) => return review.answer(deny(uid, e.to_string(), Vec::new())),
    };
    let object = match operation {
        Operation::Create | Operation::Update => request.object.as_deref(),
        Operation::Delete | Operation::Connect => None,
    };
    let Some(object) = object else {
        return review.answer(allow(uid, Vec::new()));
    };
    // The kind from the object's head; the rest is parsed only by the loader.
    let Some(kind) = request
        .object_head()
        .and_then(|head| head.get("kind").and_then(Value::as_str).map(str::to_owned))
        .and_then(|k| POLICY_KINDS.into_iter().find(|p| *p == k))
    else {
        return review.answer(allow(uid, Vec::new()));
    };
    let object = object.get().to_owned();
    let checked = tokio::task::spawn_blocking(move || check(&object));
    let response = match tokio::time::timeout(DEADLINE, checked).await {
        Ok(Ok(Ok(warnings))) => allow(uid, warnings),
        Ok(Ok(Err(message))) => deny(uid, message, Vec::new()),
        Ok(Err(_)) => deny(
            uid,
            "imagegate: validating the policy failed".into(),
            Vec::new(),
        ),
        Err(_) => deny(
            uid,
            format!(
                "imagegate: validating the policy took longer than {}s",
                DEADLINE.as_secs()
            ),
            Vec::new(),
        ),
    };
    tracing::info!(
        uid = super::limits::truncate(uid, super::limits::MAX_LOGGED_FIELD),
        kind,
        allowed = response.allowed,
        "policy review answered"
    );
    review.answer(response)
}

/// Loads `object` (JSON text) as the policy loader does: its warnings when it loads, the
/// error text when it does not.
fn check(object: &str) -> Result<Vec<String>, String> {
    let loaded = load_documents(object, SOURCE).map_err(|e| e.to_string())?;
    let count = loaded.policies.len()
        + loaded.image_validating.len()
        + loaded.exceptions.len()
        + loaded.cel_exceptions.len();
    if count == 0 && loaded.skipped.len() == 1 {
        // A PolicyException of a group imagegate does not read: not ours to judge.
        return Ok(Vec::new());
    }
    if count != 1 {
        return Err(format!("{SOURCE}: expected exactly one policy object"));
    }
    Ok(loaded
        .warnings
        .iter()
        .map(|w| format!("{}: {}", w.policy, w.finding))
        .collect())
}

fn allow(uid: &str, warnings: Vec<String>) -> AdmissionResponse {
    AdmissionResponse {
        uid: uid.to_owned(),
        allowed: true,
        warnings,
        ..AdmissionResponse::default()
    }
}
