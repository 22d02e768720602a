//! ImageValidatingPolicy and NamespacedImageValidatingPolicy through the engine: the
//! pure plan of each policy (`imagegate_policy::ivp`), its checks verified concurrently
//! with the same fetch layer, single-flight and verdict caching as ClusterPolicy rules,
//! then the pure evaluation, `required` across the request's policies, the
//! `mutateDigest` patches, and one [`PolicyResponse`] per policy.
//!
//! An IVP attestor is verified as the equivalent Kyverno `verifyImages` attestor entry
//! (same evidence, same checks): one verification path for every policy kind.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::join_all;
use imagegate_oci::Reference;
use imagegate_policy::ivp::model::{
    Attestation, Attestor as IvpAttestor, FailurePolicy as IvpFailurePolicy, ValidationAction,
};
use imagegate_policy::ivp::{
    AdmissionInput as IvpInput, Check, CheckOutcome, CompiledIvp, PolicyOutcome, ResultsMap,
    Verdict, VerificationPlan, enforce_required,
};
use imagegate_policy::model::{FailureAction, FailurePolicy, ImageVerification};
use serde_json::{Value, json};

use crate::attestors::{AttestorFailure, Cause, ImageSubject, attestation_statements};
use crate::cache::{TtlCache, key_of};
use crate::fetch::Verifier;
use crate::options::EngineOptions;
use crate::patch::apply_patches;
use crate::response::{PolicyResponse, RuleResponse, RuleStatus};
use crate::review::{AdmissionInput, Phase, ReviewDigests};

/// [`RuleResponse::rule_type`] of the one result of an ImageValidatingPolicy.
pub const IMAGE_VALIDATING_POLICY: &str = "ImageValidatingPolicy";

/// What verifying one check of one image concluded (cached by digest, attestor and
/// check, so shared by every policy naming the same attestor).
#[derive(Debug, Clone)]
pub(crate) struct CheckVerdict {
    outcome: CheckOutcome,
    /// The predicate of a verified in-toto attestation.
    payload: Option<Value>,
    cause: Option<Cause>,
}

/// The IVP part of one phase of one request.
#[derive(Debug, Default)]
pub(crate) struct IvpResponse {
    pub policies: Vec<PolicyResponse>,
    pub patches: Vec<Value>,
}

/// The IVP view of the engine's input: a request as Kubernetes sends it (the object's
/// group/version/resource derived from the object when the caller gave none), and the
/// Namespace object from what is known of it.
pub(crate) fn ivp_input(input: &AdmissionInput) -> IvpInput {
    let namespace = input
        .resource
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty());
    let namespace_object = namespace.map(|ns| {
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": ns,
                "labels": input.match_context.namespace_labels.clone().unwrap_or_default(),
            },
        })
    });
    let mut ivp = IvpInput::from_resource(input.resource.clone(), namespace_object);
    if let (Some(mine), Some(given)) = (ivp.request.as_object_mut(), input.request.as_object()) {
        for field in [
            "uid",
            "operation",
            "userInfo",
            "oldObject",
            "subResource",
            "dryRun",
            "resource",
            "requestResource",
        ] {
            if let Some(value) = given.get(field).filter(|v| !v.is_null()) {
                mine.insert(field.to_owned(), value.clone());
            }
        }
    }
    ivp
}

/// What ImageValidatingPolicies are verified with: the engine's verifier and settings,
/// and its cache of IVP check verdicts (the engine lends them for one evaluation).
pub(crate) struct IvpEvaluator<'a> {
    pub verifier: &'a Verifier,
    pub options: &'a EngineOptions,
    pub verdicts: &'a TtlCache<CheckVerdict>,
}

impl IvpEvaluator<'_> {
    /// Plans, verifies and evaluates every ImageValidatingPolicy of `ivps` for one phase.
    pub(crate) async fn evaluate(
        &self,
        ivps: &[Arc<CompiledIvp>],
        input: &AdmissionInput,
        phase: Phase,
        digests: &ReviewDigests,
    ) -> IvpResponse {
        if ivps.is_empty() {
            return IvpResponse::default();
        }
        let mut ivp_input = ivp_input(input);
        let mut response = IvpResponse::default();
        // Mutate phase: pin first (the digest resolved once for this review, which is
        // the digest then verified), and evaluate the pinned object, as the validating
        // webhook will see it.
        // Validate phase: an image left unpinned because its registry failed is an
        // error there too, not the "no digest" failure.
        let mut pin_errors: HashMap<usize, String> = HashMap::new();
        {
            for (i, policy) in ivps.iter().enumerate() {
                let Ok(plan) = policy.plan(&ivp_input) else {
                    continue;
                };
                if plan.mutate_digest.is_empty() {
                    continue;
                }
                let mut resolved = HashMap::new();
                let mut failures = Vec::new();
                for image in &plan.mutate_digest {
                    let outcome =
                        match Reference::parse(image) {
                            Ok(reference) => digests
                                .resolve(self.verifier, &reference)
                                .await
                                .map_err(|e| {
                                    format!(
                                        "failed to resolve digest for image {image} at {}: {e}",
                                        reference.registry()
                                    )
                                }),
                            Err(e) => Err(format!("invalid image reference {image}: {e}")),
                        };
                    match outcome {
                        Ok(digest) => {
                            resolved.insert(image.clone(), digest);
                        }
                        Err(message) => failures.push(message),
                    }
                }
                let (patches, errors) =
                    policy.digest_patches(&ivp_input, &|image| resolved.get(image).cloned());
                if !errors.is_empty() {
                    if failures.is_empty() {
                        failures = errors;
                    }
                    pin_errors.insert(i, failures.join("; "));
                }
                response.patches.extend(patches);
            }
            if phase == Phase::Validate {
                response.patches.clear();
            }
            if !response.patches.is_empty() {
                match apply_patches(&input.resource, &response.patches) {
                    Ok(patched) => {
                        let mut patched_input = input.clone();
                        patched_input.resource = patched;
                        ivp_input = self::ivp_input(&patched_input);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "generated digest patch does not apply");
                    }
                }
            }
        }
        let planned: Vec<Result<VerificationPlan, Box<PolicyOutcome>>> =
            ivps.iter().map(|p| p.plan(&ivp_input)).collect();

        // Every distinct (image, policy attestor, check) once, concurrently; equal
        // attestors of different policies meet in the verdict cache and in the fetch
        // layer's single-flight.
        let mut jobs: Vec<(&str, &VerificationPlan, &Check)> = Vec::new();
        for plan in planned.iter().flatten() {
            for image in &plan.images {
                for check in &image.checks {
                    jobs.push((image.image.as_str(), plan, check));
                }
            }
        }
        let verdicts = join_all(
            jobs.iter()
                .map(|(image, plan, check)| self.verify_check(image, plan, check, digests)),
        )
        .await;
        let mut per_plan: HashMap<*const VerificationPlan, ResultsMap> = HashMap::new();
        for ((image, plan, check), verdict) in jobs.iter().zip(verdicts) {
            if let Some(cause) = verdict.cause {
                self.options.metrics.verification_failed(cause.as_str());
            }
            let results = per_plan.entry(*plan as *const _).or_default();
            if let (Check::Attestation { attestation, .. }, Some(payload)) =
                (check, verdict.payload)
            {
                results.insert_payload(image, attestation, payload);
            }
            results.insert(image, (*check).clone(), verdict.outcome);
        }

        let mut outcomes: Vec<PolicyOutcome> = Vec::with_capacity(ivps.len());
        for (policy, plan) in ivps.iter().zip(&planned) {
            let outcome = match plan {
                Err(outcome) => (**outcome).clone(),
                Ok(plan) => {
                    let results = per_plan.remove(&(plan as *const _)).unwrap_or_default();
                    policy.evaluate(&ivp_input, Arc::new(results))
                }
            };
            outcomes.push(outcome);
        }
        enforce_required(&mut outcomes);

        for (i, (policy, mut outcome)) in ivps.iter().zip(outcomes).enumerate() {
            // An image that could not be pinned because its registry failed is an
            // error (failurePolicy decides), not the "no digest" failure that follows.
            if let Some(message) = pin_errors.remove(&i)
                && matches!(
                    outcome.verdict,
                    Verdict::Pass | Verdict::Fail { index: None, .. }
                )
            {
                outcome.verdict = Verdict::Error { message };
            }
            if let Some(result) = policy_response(policy, &outcome) {
                response.policies.push(result);
            }
        }
        response
    }

    /// One check of one image: resolve the digest, then a cached verdict or a fresh
    /// verification. Registry errors are not cached (the next request tries again).
    async fn verify_check(
        &self,
        image: &str,
        plan: &VerificationPlan,
        check: &Check,
        digests: &ReviewDigests,
    ) -> CheckVerdict {
        let reference = match Reference::parse(image) {
            Ok(reference) => reference,
            Err(e) => return CheckVerdict::error(Cause::InvalidReference, e.to_string()),
        };
        let digest = match digests.resolve(self.verifier, &reference).await {
            Ok(digest) => digest,
            Err(e) => {
                return CheckVerdict::error(
                    Cause::of(&e),
                    format!("failed to resolve {image} at {}: {e}", reference.registry()),
                );
            }
        };
        let (attestor_name, attestation_name) = match check {
            Check::Signature { attestor } => (attestor, None),
            Check::Attestation {
                attestor,
                attestation,
            } => (attestor, Some(attestation)),
        };
        let Some(attestor) = plan.attestors.iter().find(|a| &a.name == attestor_name) else {
            return CheckVerdict::failed(
                Cause::Configuration,
                format!("attestor {attestor_name} is not defined"),
            );
        };
        let attestation = match attestation_name {
            None => None,
            Some(name) => match plan.attestations.iter().find(|a| &a.name == name) {
                Some(a) => Some(a),
                None => {
                    return CheckVerdict::failed(
                        Cause::Configuration,
                        format!("attestation {name} is not defined"),
                    );
                }
            },
        };
        let verification = match verification_of(attestor, attestation) {
            Ok(v) => v,
            Err(message) => return CheckVerdict::failed(Cause::Configuration, message),
        };
        let key = key_of(&(
            "ivp",
            serde_json::to_string(&verification).unwrap_or_default(),
            &digest,
            reference.name(),
        ));
        if let Some(cached) = self.verdicts.get(key).await {
            return cached;
        }
        let started = std::time::Instant::now();
        let verdict = self
            .verify_ivp_check(&reference, &digest, &verification, image)
            .await;
        self.options.metrics.verification_took(started.elapsed());
        if !matches!(verdict.outcome, CheckOutcome::Error { .. }) {
            self.verdicts.insert(key, verdict.clone()).await;
        }
        verdict
    }

    async fn verify_ivp_check(
        &self,
        reference: &Reference,
        digest: &str,
        verification: &ImageVerification,
        image: &str,
    ) -> CheckVerdict {
        let subject = ImageSubject {
            image: reference,
            digest,
            verification,
            rekor_keys: &self.options.rekor_keys,
            trusted_root: self.options.trusted_root.as_ref(),
        };
        let failed = |failure: AttestorFailure| {
            let cause = failure.cause();
            let message = format!("failed to verify image {image}: {failure}");
            if cause.is_error() {
                CheckVerdict::error(cause, message)
            } else {
                CheckVerdict::failed(cause, message)
            }
        };
        let Some(check) = verification.attestations.first() else {
            return match crate::attestors::verify_attestors(self.verifier, &subject).await {
                Ok(()) => CheckVerdict::verified(None),
                Err(failure) => failed(failure),
            };
        };
        let predicate_type = check.type_.clone().unwrap_or_default();
        let entries = check
            .attestors
            .first()
            .map(|set| set.entries.clone())
            .unwrap_or_default();
        // Any identity of the attestor may have made the attestation (Kyverno: one of).
        let mut failures = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let path = format!(".attestations[0].attestors[0].entries[{i}]");
            match attestation_statements(self.verifier, &subject, entry, &predicate_type, &path)
                .await
            {
                Ok((_, statements)) if !statements.is_empty() => {
                    let payload = statements.first().map(|s| s.predicate.clone());
                    return CheckVerdict::verified(payload);
                }
                Ok((path, _)) => failures.push(AttestorFailure::Configuration {
                    path,
                    message: format!("no attestation of type {predicate_type} verified"),
                }),
                Err(failure) => failures.push(failure),
            }
        }
        match failures.into_iter().max_by_key(AttestorFailure::cause) {
            Some(failure) => failed(failure),
            None => CheckVerdict::failed(Cause::Configuration, "attestor has no entry".into()),
        }
    }
}

impl CheckVerdict {
    fn verified(payload: Option<Value>) -> CheckVerdict {
        CheckVerdict {
            outcome: CheckOutcome::Verified,
            payload,
            cause: None,
        }
    }

    fn failed(cause: Cause, reason: String) -> CheckVerdict {
        CheckVerdict {
            outcome: CheckOutcome::Failed { reason },
            payload: None,
            cause: Some(cause),
        }
    }

    fn error(cause: Cause, reason: String) -> CheckVerdict {
        CheckVerdict {
            outcome: CheckOutcome::Error { reason },
            payload: None,
            cause: Some(cause),
        }
    }
}

/// The Kyverno `verifyImages` entry that checks what `attestor` (and `attestation`)
/// ask for: the same evidence and checks as a ClusterPolicy with that attestor.
pub(crate) fn verification_of(
    attestor: &IvpAttestor,
    attestation: Option<&Attestation>,
) -> Result<ImageVerification, String> {
    let path = format!("attestors[{}]", attestor.name);
    if attestor.notary.is_some() {
        return Err(format!(
            "{path}.notary: Notation attestors are not supported yet"
        ));
    }
    let Some(cosign) = attestor.cosign.as_ref() else {
        return Err(format!("{path}: neither cosign nor notary is set"));
    };
    let ctlog = cosign.ctlog.as_ref();
    let rekor = json!({
        "url": ctlog.and_then(|c| c.url.clone()),
        "pubkey": ctlog.and_then(|c| c.rekor_pub_key.clone()),
        "ignoreTlog": ctlog.is_some_and(|c| c.insecure_ignore_tlog),
    });
    let ct = json!({
        "pubkey": ctlog.and_then(|c| c.ct_log_pub_key.clone()),
        "tsaCertChain": ctlog.and_then(|c| c.tsa_cert_chain.clone()),
        "ignoreSCT": ctlog.is_some_and(|c| c.insecure_ignore_sct),
    });
    let repository = cosign.source.as_ref().and_then(|s| s.repository.clone());
    let mut entries = Vec::new();
    if let Some(key) = cosign.key.as_ref() {
        if key.kms.is_some() {
            return Err(format!("{path}.cosign.key.kms: KMS keys are not supported"));
        }
        let Some(data) = key.data.clone() else {
            return Err(format!("{path}.cosign.key: no key data"));
        };
        entries.push(json!({"keys": {
            "publicKeys": data,
            "signatureAlgorithm": key.hash_algorithm.clone().unwrap_or_else(|| "sha256".into()),
            "rekor": rekor, "ctlog": ct,
        }}));
    } else if let Some(keyless) = cosign.keyless.as_ref() {
        if keyless.identities.is_empty() {
            return Err(format!("{path}.cosign.keyless: no identities"));
        }
        for identity in &keyless.identities {
            entries.push(json!({"keyless": {
                "issuer": identity.issuer, "issuerRegExp": identity.issuer_regexp,
                "subject": identity.subject, "subjectRegExp": identity.subject_regexp,
                "roots": keyless.roots, "rekor": rekor, "ctlog": ct,
            }}));
        }
    } else if let Some(certificate) = cosign.certificate.as_ref() {
        let value = |v: &Option<imagegate_policy::ivp::model::StringOrExpression>| {
            v.as_ref().and_then(|s| s.value.clone())
        };
        entries.push(json!({"certificates": {
            "cert": value(&certificate.certificate),
            "certChain": value(&certificate.certificate_chain),
            "rekor": rekor, "ctlog": ct,
        }}));
    } else {
        return Err(format!(
            "{path}.cosign: one of key, keyless or certificate is required"
        ));
    }
    for entry in &mut entries {
        if let (Some(repository), Some(map)) = (&repository, entry.as_object_mut()) {
            map.insert("repository".into(), json!(repository));
        }
        if let (false, Some(map)) = (cosign.annotations.is_empty(), entry.as_object_mut()) {
            map.insert("annotations".into(), json!(cosign.annotations));
        }
    }
    // A signature check: one of the identities must have signed.
    let set = json!([{"count": 1, "entries": entries}]);
    let mut verification = json!({
        "imageReferences": ["*"],
        "mutateDigest": false,
        "verifyDigest": false,
        "required": false,
        "useCache": true,
    });
    match attestation {
        None => verification["attestors"] = set,
        Some(a) => {
            let Some(typed) = a.in_toto.as_ref() else {
                return Err(format!(
                    "attestations[{}]: only intoto attestations are supported",
                    a.name
                ));
            };
            verification["attestations"] = json!([{"type": typed.type_, "attestors": set}]);
        }
    }
    serde_json::from_value(verification).map_err(|e| format!("{path}: {e}"))
}

/// The result of one policy as a [`PolicyResponse`] with one rule named after the
/// policy; `None` when it did not apply.
fn policy_response(policy: &CompiledIvp, outcome: &PolicyOutcome) -> Option<PolicyResponse> {
    let (status, message) = match &outcome.verdict {
        Verdict::NotMatched => return None,
        Verdict::Skipped { reason } => (RuleStatus::Skip, reason.clone()),
        Verdict::Pass => (RuleStatus::Pass, String::new()),
        Verdict::Fail { message, .. } => (RuleStatus::Fail, message.clone()),
        Verdict::Error { message } => (RuleStatus::Error, message.clone()),
    };
    let deny = outcome.actions.contains(&ValidationAction::Deny);
    let warn = outcome.actions.contains(&ValidationAction::Warn);
    // Warn without Deny: a failure is returned as a warning, never a denial.
    let status = if status == RuleStatus::Fail && !deny && warn {
        RuleStatus::Warn
    } else {
        status
    };
    let name = policy.policy.metadata.name.clone();
    Some(PolicyResponse {
        policy: name.clone(),
        namespace: policy
            .policy
            .metadata
            .namespace
            .clone()
            .filter(|_| policy.policy.is_namespaced()),
        failure_policy: match outcome.failure_policy {
            IvpFailurePolicy::Fail => FailurePolicy::Fail,
            IvpFailurePolicy::Ignore => FailurePolicy::Ignore,
        },
        rules: vec![RuleResponse {
            name,
            rule_type: IMAGE_VALIDATING_POLICY,
            status,
            message,
            failure_action: if deny {
                FailureAction::Enforce
            } else {
                FailureAction::Audit
            },
        }],
    })
}
