//! One AdmissionReview answered: exactly `imagegate review`'s answer (the engine's
//! `admission::review`, deadline included), plus the server's metrics and logs.

use std::borrow::Cow;
use std::time::Instant;

use imagegate_engine::Phase;
use imagegate_engine::admission::{self, AdmissionRequest, AdmissionReview};
use serde_json::Value;

use super::State;

/// Answers `review` for `phase` with the current policies, and records metrics.
pub async fn answer(state: &State, review: &AdmissionReview, phase: Phase) -> AdmissionReview {
    let started = Instant::now();
    let policies = state.policies.snapshot();
    let answered = admission::review(&state.engine, &policies, review, phase).await;
    let elapsed = started.elapsed();
    if let (Some(request), Some(evaluated)) = (review.request.as_ref(), &answered.evaluated) {
        state
            .metrics
            .policy_results(evaluated, &request.operation, elapsed);
    }
    if let Some(denied) = answered.deadline_exceeded {
        state.metrics.deadline_exceeded(denied);
    }
    if let (Some(cluster), Some(request), Some(evaluated), Some(response)) = (
        state.cluster.as_ref(),
        review.request.as_ref(),
        &answered.evaluated,
        answered.review.response.as_ref(),
    ) {
        let dropped = cluster.observe(request, phase, evaluated, response.allowed);
        state
            .metrics
            .queue_dropped("reports", u64::from(dropped.reports));
        state.metrics.queue_dropped("events", dropped.events as u64);
    }
    if let (Some(request), Some(response)) =
        (review.request.as_ref(), answered.review.response.as_ref())
    {
        tracing::info!(
            allowed = response.allowed,
            patched = response.patch.is_some(),
            warnings = response.warnings.len(),
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "admission review answered"
        );
        let labels = state.metrics.admission_labels(
            &request_kind(request),
            request.namespace.as_deref().unwrap_or_default(),
            request.operation.as_str(),
            response.allowed,
        );
        state.metrics.admission(labels, elapsed);
    }
    answered.review
}

/// The kind of the reviewed object, as the request names it (else as the object does).
pub fn request_kind(request: &AdmissionRequest) -> Cow<'_, str> {
    if let Some(kind) = request.kind.get("kind").and_then(Value::as_str) {
        return Cow::Borrowed(kind);
    }
    let head = request.object_head();
    let kind = head
        .as_ref()
        .and_then(|o| o.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    Cow::Owned(kind.to_owned())
}
