//! One AdmissionReview answered within its deadline.
//!
//! The answer is the one `imagegate review` gives (the engine's `admission` module:
//! the request's input, the engine's evaluation, its `respond`), with two additions of
//! the server: the deadline and the metrics. The deadline is the policies'
//! `webhookTimeoutSeconds` (default 10 s, as the API server's) minus a margin, so the
//! API server always gets an answer from imagegate instead of applying its own
//! `failurePolicy` to a timeout. When the registry work does not finish in time, the
//! matching policies' `failurePolicy` decides: any `Fail` denies with a message that
//! says so, otherwise the request is admitted with a warning.

use std::time::{Duration, Instant};

use imagegate_engine::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, deny, respond,
};
use imagegate_engine::{AdmissionInput, Phase, PolicySet};
use imagegate_policy::images::extract_images;
use imagegate_policy::matching::rule_matches;
use imagegate_policy::model::{FailurePolicy, Policy};
use imagegate_policy::pattern::image_matches;

use super::State;
use super::metrics::AdmissionLabels;

/// The API server's default webhook timeout.
const DEFAULT_TIMEOUT_SECONDS: u32 = 10;

/// How long before the webhook timeout imagegate answers.
const MARGIN: Duration = Duration::from_secs(1);

/// The time imagegate allows itself for one review under `policies`: the webhook
/// timeout minus one second (a quarter of it for timeouts under four seconds).
pub fn deadline(policies: &PolicySet) -> Duration {
    let timeout = Duration::from_secs(u64::from(
        policies
            .webhook_timeout_seconds()
            .unwrap_or(DEFAULT_TIMEOUT_SECONDS)
            .clamp(1, 30),
    ));
    timeout - MARGIN.min(timeout / 4)
}

/// Answers `review` for `phase` with the current policies.
pub async fn answer(state: &State, review: &AdmissionReview, phase: Phase) -> AdmissionReview {
    let started = Instant::now();
    let policies = state.policies.snapshot();
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
            let deadline = deadline(&policies);
            let evaluation = state.engine.evaluate(&policies, &input, phase);
            match tokio::time::timeout(deadline, evaluation).await {
                Ok(evaluated) => {
                    state
                        .metrics
                        .policy_results(&evaluated, &request.operation, started.elapsed());
                    respond(&request.uid, &evaluated, phase)
                }
                Err(_) => deadline_exceeded(state, request, &input, &policies, deadline),
            }
        }
    };
    let elapsed = started.elapsed();
    let labels = admission_labels(request, response.allowed);
    tracing::info!(
        allowed = response.allowed,
        patched = response.patch.is_some(),
        warnings = response.warnings.len(),
        elapsed_ms = elapsed.as_secs_f64() * 1000.0,
        "admission review answered"
    );
    state.metrics.admission(labels, elapsed);
    review.answer(response)
}

/// The answer when the evaluation did not finish before `deadline`.
fn deadline_exceeded(
    state: &State,
    request: &AdmissionRequest,
    input: &AdmissionInput,
    policies: &PolicySet,
    deadline: Duration,
) -> AdmissionResponse {
    let matching = applicable_policies(policies, input);
    let failing: Vec<&str> = matching
        .iter()
        .filter(|p| failure_policy(p) == FailurePolicy::Fail)
        .map(|p| p.name())
        .collect();
    let resource = resource_display(input);
    let seconds = deadline.as_secs_f64();
    if !failing.is_empty() {
        tracing::warn!(
            policies = failing.join(","),
            "deadline exceeded; denied (failurePolicy Fail)"
        );
        state.metrics.deadline_exceeded(true);
        let message = format!(
            "imagegate could not finish verification within {seconds}s: image verification of {resource} for policies {} did not complete in time (registry slow or unreachable); denied because their failurePolicy is Fail",
            failing.join(", ")
        );
        return deny(&request.uid, message, Vec::new());
    }
    let names: Vec<&str> = matching.iter().map(|p| p.name()).collect();
    tracing::warn!(
        policies = names.join(","),
        "deadline exceeded; admitted (failurePolicy Ignore)"
    );
    state.metrics.deadline_exceeded(false);
    AdmissionResponse {
        uid: request.uid.clone(),
        allowed: true,
        warnings: vec![format!(
            "imagegate could not finish verification within {seconds}s: image verification of {resource} for policies {} did not complete in time; admitted without verification because their failurePolicy is Ignore",
            names.join(", ")
        )],
        ..AdmissionResponse::default()
    }
}

/// The policies with a verifyImages rule that applies to the resource and an
/// `imageReferences` pattern that one of its images matches (as the engine selects
/// them): the ones whose verification was cut off.
fn applicable_policies<'a>(policies: &'a PolicySet, input: &AdmissionInput) -> Vec<&'a Policy> {
    policies
        .rules()
        .filter(|(policy, rules)| {
            rules.iter().any(|rule| {
                if rule.verify_images.is_empty()
                    || !rule_matches(rule, policy, &input.resource, &input.match_context)
                {
                    return false;
                }
                // Images that cannot be extracted make the rule an error: it counts.
                let Ok(images) = extract_images(&input.resource, rule.image_extractors.as_ref())
                else {
                    return true;
                };
                rule.verify_images.iter().any(|verification| {
                    images.iter().any(|image| {
                        image_matches(&verification.image_references, &image.info)
                            && !image_matches(&verification.skip_image_references, &image.info)
                    })
                })
            })
        })
        .map(|(policy, _)| policy)
        .collect()
}

/// `spec.webhookConfiguration.failurePolicy`, else `spec.failurePolicy`, else `Fail`.
fn failure_policy(policy: &Policy) -> FailurePolicy {
    policy
        .spec
        .webhook_configuration
        .as_ref()
        .and_then(|w| w.failure_policy)
        .or(policy.spec.failure_policy)
        .unwrap_or(FailurePolicy::Fail)
}

fn resource_display(input: &AdmissionInput) -> String {
    imagegate_engine::ResourceId::of(&input.resource).display()
}

fn admission_labels(request: &AdmissionRequest, allowed: bool) -> AdmissionLabels {
    let kind = request
        .kind
        .get("kind")
        .and_then(|k| k.as_str())
        .or_else(|| {
            request
                .object
                .as_ref()
                .and_then(|o| o.get("kind"))
                .and_then(|k| k.as_str())
        })
        .unwrap_or_default();
    AdmissionLabels {
        resource_kind: kind.to_owned(),
        resource_namespace: request.namespace.clone().unwrap_or_default(),
        resource_request_operation: request.operation.to_ascii_lowercase(),
        request_allowed: allowed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_leaves_a_margin() {
        let empty = PolicySet::default();
        assert_eq!(deadline(&empty), Duration::from_secs(9));
    }
}
