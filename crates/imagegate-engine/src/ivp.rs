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
use imagegate_policy::ivp::exception::skip_message;
use imagegate_policy::ivp::model::{
    Attestation, Attestor as IvpAttestor, FailurePolicy as IvpFailurePolicy, ValidationAction,
};
use imagegate_policy::ivp::{
    AdmissionInput as IvpInput, Check, CheckOutcome, CompiledIvp, PolicyOutcome, ResultsMap,
    Verdict, VerificationPlan, enforce_required,
};
use imagegate_policy::model::{FailureAction, FailurePolicy, ImageVerification, VerificationType};
use serde_json::{Value, json};

use crate::attestors::{AttestorFailure, Cause, ImageSubject, attestation_statements};
use crate::cache::key_of;
use crate::cluster::{cluster_cause, policy_pull_secrets, resolve_key_secrets};
use crate::fetch::{Access, Verifier};
use crate::options::EngineOptions;
use crate::patch::apply_patches;
use crate::response::{PolicyKind, PolicyResponse, RuleResponse, RuleStatus};
use crate::review::{AdmissionInput, Phase, ReviewDigests};
use crate::verdicts::{DigestVerdict, VerdictCache, verification_identity};

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
/// Namespace object from what is known of it; a JSON payload as it is.
pub(crate) fn ivp_input(input: &AdmissionInput) -> IvpInput {
    if input.json_payload {
        return IvpInput::json(input.resource.clone());
    }
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
        // Every field of the AdmissionRequest but the object (the IVP input's own, with
        // its namespace filled in).
        for field in [
            "uid",
            "kind",
            "resource",
            "subResource",
            "requestKind",
            "requestResource",
            "requestSubResource",
            "name",
            "namespace",
            "operation",
            "userInfo",
            "oldObject",
            "dryRun",
            "options",
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
    pub verdicts: &'a VerdictCache,
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
                let verifier = match self.plan_verifier(&plan).await {
                    Ok(verifier) => verifier,
                    Err(error) => {
                        pin_errors.insert(i, error.reason().to_owned());
                        continue;
                    }
                };
                for image in &plan.mutate_digest {
                    let outcome = match Reference::parse(image) {
                        Ok(reference) => digests
                            .resolve(&verifier, &reference, access_of(&plan))
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
        // One verifier per plan (by address, as `per_plan` below): with the pull secrets
        // its `credentials.secrets` name.
        let address = |plan: &VerificationPlan| plan as *const VerificationPlan as usize;
        let mut verifiers: HashMap<usize, Result<Verifier, CheckVerdict>> = HashMap::new();
        for plan in planned.iter().flatten() {
            if !plan.images.is_empty() {
                verifiers.insert(address(plan), self.plan_verifier(plan).await);
            }
        }
        let verifiers = &verifiers;
        let verdicts = join_all(jobs.iter().map(|&(image, plan, check)| async move {
            match verifiers.get(&address(plan)) {
                Some(Ok(verifier)) => {
                    self.verify_check(verifier, image, plan, check, digests)
                        .await
                }
                Some(Err(error)) => error.clone(),
                None => {
                    self.verify_check(self.verifier, image, plan, check, digests)
                        .await
                }
            }
        }))
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
            let mut stage = ErrorStage::Evaluation;
            if let Some(message) = pin_errors.remove(&i)
                && matches!(
                    outcome.verdict,
                    Verdict::Pass | Verdict::Fail { index: None, .. }
                )
            {
                outcome.verdict = Verdict::Error { message };
                stage = ErrorStage::MutateDigest;
            }
            if let Some(result) = policy_response(policy, &outcome, stage) {
                response.policies.push(result);
            }
        }
        response
    }

    /// One check of one image: resolve the digest, then a cached verdict or a fresh
    /// verification. Registry errors are not cached (the next request tries again).
    async fn verify_check(
        &self,
        verifier: &Verifier,
        image: &str,
        plan: &VerificationPlan,
        check: &Check,
        digests: &ReviewDigests,
    ) -> CheckVerdict {
        let reference = match Reference::parse(image) {
            Ok(reference) => reference,
            Err(e) => return CheckVerdict::error(Cause::InvalidReference, e.to_string()),
        };
        let digest = match digests.resolve(verifier, &reference, access_of(plan)).await {
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
        let verification = match verification_of(attestor, attestation, access_of(plan)) {
            Ok(v) => v,
            Err(message) => return CheckVerdict::failed(Cause::Configuration, message),
        };
        // `cosign.key.kms: k8s://NS/NAME`: the Secret's key, read before the verdict
        // cache is asked (its identity is the key itself).
        let verification = match resolve_key_secrets(self.options.cluster.as_deref(), &verification)
            .await
        {
            Ok(Some(resolved)) => resolved,
            Ok(None) => verification,
            Err(failure) => {
                let message = format!(
                    "failed to verify image {image}: attestors[{attestor_name}].cosign.key.kms: {}",
                    failure.error
                );
                // An error (failurePolicy decides) naming the Secret, as cosign's
                // failure to load the key is in Kyverno, never "not signed".
                return CheckVerdict::error(cluster_cause(&failure.error), message);
            }
        };
        let identity = verification_identity(&verification);
        let key = key_of(&(identity, &digest, reference.name(), None::<&str>));
        let verify = || self.verify_ivp_check(verifier, &reference, &digest, &verification);
        let mut verdict = self.verdicts.get_or_verify(key, verify).await;
        if attestation.is_some() && verdict.failure.is_none() && verdict.payload.is_none() {
            // Verified by a ClusterPolicy with the same attestation check, which keeps
            // no predicate: verify again for CEL to read it (and keep that verdict).
            self.verdicts.forget(key).await;
            verdict = self.verdicts.get_or_verify(key, verify).await;
        }
        CheckVerdict::of(verdict, image)
    }

    /// Verifies one check at `digest`: the signature (`verification.attestors`), or the
    /// attestation (`verification.attestations`) with its predicate.
    async fn verify_ivp_check(
        &self,
        verifier: &Verifier,
        reference: &Reference,
        digest: &str,
        verification: &ImageVerification,
    ) -> DigestVerdict {
        let subject = ImageSubject {
            image: reference,
            digest,
            verification,
            rekor_keys: &self.options.rekor_keys,
            trusted_root: self.options.trusted_root.as_ref(),
        };
        let failed = |failure: AttestorFailure| DigestVerdict {
            failure: Some(failure),
            payload: None,
        };
        let Some(check) = verification.attestations.first() else {
            return match crate::attestors::verify_attestors(verifier, &subject).await {
                Ok(()) => DigestVerdict {
                    failure: None,
                    payload: None,
                },
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
            match attestation_statements(verifier, &subject, entry, &predicate_type, &path).await {
                Ok((_, statements)) if !statements.is_empty() => {
                    return DigestVerdict {
                        failure: None,
                        // Kyverno's extractPayload reads the first one: of an in-toto
                        // attestation the whole statement (cosign's
                        // AttestationToPayloadJSON; policies read `.predicate…`), of a
                        // Notation-signed referrer its content (the SBOM itself).
                        payload: Some(
                            statements
                                .first()
                                .map(|s| {
                                    if verification.verification_type() == VerificationType::Notary
                                    {
                                        s.predicate.clone()
                                    } else {
                                        s.statement.clone()
                                    }
                                })
                                .unwrap_or_default(),
                        ),
                    };
                }
                Ok((path, _)) => failures.push(AttestorFailure::Configuration {
                    path,
                    message: format!("no attestation of type {predicate_type} verified"),
                }),
                Err(failure) => failures.push(failure),
            }
        }
        failed(
            failures
                .into_iter()
                .max_by_key(AttestorFailure::cause)
                .unwrap_or_else(|| AttestorFailure::Configuration {
                    path: ".attestations[0].attestors[0]".into(),
                    message: "attestor has no entry".into(),
                }),
        )
    }
}

impl IvpEvaluator<'_> {
    /// The verifier for `plan`'s images: with the pull secrets its
    /// `credentials.secrets` name (read through the cluster), else the engine's.
    async fn plan_verifier(&self, plan: &VerificationPlan) -> Result<Verifier, CheckVerdict> {
        let names = plan
            .credentials
            .as_ref()
            .map(|c| c.secrets.as_slice())
            .unwrap_or_default();
        if names.is_empty() {
            return Ok(self.verifier.clone());
        }
        match policy_pull_secrets(self.options.cluster.as_deref(), names).await {
            Ok(secrets) if secrets.is_empty() => Ok(self.verifier.clone()),
            Ok(secrets) => Ok(self.verifier.with_pull_secrets(Some(Arc::new(secrets)))),
            // The registry cannot be asked as the policy says: an error (failurePolicy
            // decides), never "not signed".
            Err(e) => Err(CheckVerdict::error(
                cluster_cause(&e),
                format!("{}: spec.credentials.secrets: {e}", plan.policy),
            )),
        }
    }
}

impl CheckVerdict {
    /// Why the check did not verify, `""` when it did.
    fn reason(&self) -> &str {
        match &self.outcome {
            CheckOutcome::Failed { reason } | CheckOutcome::Error { reason } => reason,
            _ => "",
        }
    }

    /// The check's outcome from the verdict on its digest; `image` as extracted.
    fn of(verdict: DigestVerdict, image: &str) -> CheckVerdict {
        let Some(failure) = verdict.failure else {
            return CheckVerdict::verified(verdict.payload);
        };
        let cause = failure.cause();
        let message = format!("failed to verify image {image}: {failure}");
        if cause.is_error() {
            CheckVerdict::error(cause, message)
        } else {
            CheckVerdict::failed(cause, message)
        }
    }

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

/// How the registries of `plan`'s images may be reached: the policy's
/// `credentials.allowInsecureRegistry`.
fn access_of(plan: &VerificationPlan) -> Access {
    Access {
        allow_plain_http: plan
            .credentials
            .as_ref()
            .is_some_and(|c| c.allow_insecure_registry),
    }
}

/// The Kyverno `verifyImages` entry that checks what `attestor` (and `attestation`)
/// ask for: the same evidence and checks as a ClusterPolicy with that attestor.
pub(crate) fn verification_of(
    attestor: &IvpAttestor,
    attestation: Option<&Attestation>,
    access: Access,
) -> Result<ImageVerification, String> {
    let path = format!("attestors[{}]", attestor.name);
    if let Some(notary) = attestor.notary.as_ref() {
        return notary_verification_of(notary, attestation, access, &path);
    }
    if let Some(a) = attestation.filter(|a| a.referrer.is_some()) {
        return Err(format!(
            "attestations[{}]: referrer attestations are verified with notary attestors, not {path}.cosign",
            a.name
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
        // `k8s://NS/NAME` is cosign's Kubernetes Secret key reference (Kyverno hands
        // `kms` to cosign, which reads the Secret's `cosign.pub`): resolved through the
        // cluster like a ClusterPolicy's `publicKeys: k8s://…`. Cloud KMS keys are not.
        let data = match (key.data.clone(), key.kms.as_deref()) {
            (Some(data), _) => data,
            (None, Some(kms)) if kms.trim_start().starts_with("k8s://") => kms.trim().to_owned(),
            (None, Some(kms)) => {
                let scheme = kms.split("://").next().unwrap_or(kms);
                return Err(format!(
                    "{path}.cosign.key.kms: {scheme}:// keys are not supported (k8s://NAMESPACE/NAME is)"
                ));
            }
            (None, None) => return Err(format!("{path}.cosign.key: no key data")),
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
    let attestation = attestation
        .map(|a| {
            a.in_toto.as_ref().ok_or_else(|| {
                format!(
                    "attestations[{}]: only intoto attestations are supported",
                    a.name
                )
            })
        })
        .transpose()?;
    single_entry_verification("Cosign", entries, attestation, access, &path)
}

/// The verifyImages entry checking that one of `entries` signed the image (or, with
/// `attestation`, made an attestation of its type): what an IVP check asks for.
fn single_entry_verification(
    type_: &str,
    entries: Vec<Value>,
    attestation: Option<&imagegate_policy::ivp::model::TypedAttestation>,
    access: Access,
    path: &str,
) -> Result<ImageVerification, String> {
    // A signature check: one of the identities must have signed.
    let set = json!([{"count": 1, "entries": entries}]);
    let mut verification = json!({
        "type": type_,
        "imageReferences": ["*"],
        "mutateDigest": false,
        "verifyDigest": false,
        "required": false,
        "useCache": true,
        "imageRegistryCredentials": {"allowInsecureRegistry": access.allow_plain_http},
    });
    match attestation {
        None => verification["attestors"] = set,
        Some(typed) => {
            verification["attestations"] = json!([{"type": typed.type_, "attestors": set}]);
        }
    }
    serde_json::from_value(verification).map_err(|e| format!("{path}: {e}"))
}

/// The `type: Notary` entry of a `notary{certs, tsaCerts}` attestor: `certs` as the
/// trusted CAs, `tsaCerts` as the TSA store; an attestation is a `referrer` of a type.
fn notary_verification_of(
    notary: &imagegate_policy::ivp::model::Notary,
    attestation: Option<&Attestation>,
    access: Access,
    path: &str,
) -> Result<ImageVerification, String> {
    let value = |v: &Option<imagegate_policy::ivp::model::StringOrExpression>| {
        v.as_ref().and_then(|s| s.value.clone())
    };
    let Some(certs) = value(&notary.certs).filter(|c| !c.trim().is_empty()) else {
        return Err(format!("{path}.notary.certs: no certificates"));
    };
    let entry = json!({"certificates": {
        "cert": certs,
        "ctlog": {"tsaCertChain": value(&notary.tsa_certs)},
    }});
    let attestation = attestation
        .map(|a| {
            a.referrer.as_ref().ok_or_else(|| {
                format!(
                    "attestations[{}]: notary attestors verify referrer attestations, not intoto",
                    a.name
                )
            })
        })
        .transpose()?;
    single_entry_verification("Notary", vec![entry], attestation, access, path)
}

/// Where an error of an ImageValidatingPolicy arose, which decides Kyverno's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorStage {
    /// Pinning digests (`mutateDigest`): `failed to update digest: …`.
    MutateDigest,
    /// Matching, extraction, verification or CEL: `failed to evaluate policy: …`.
    Evaluation,
}

/// The result of one policy as a [`PolicyResponse`] with one rule named after the
/// policy (as Kyverno names it); `None` when it did not apply. The messages are
/// Kyverno's: a failed validation's message as is, an error behind the prefix
/// Kyverno's IVP engine gives it.
fn policy_response(
    policy: &CompiledIvp,
    outcome: &PolicyOutcome,
    stage: ErrorStage,
) -> Option<PolicyResponse> {
    let (status, message) = match &outcome.verdict {
        Verdict::NotMatched => return None,
        Verdict::Skipped { reason } => (RuleStatus::Skip, reason.clone()),
        Verdict::Excepted { exceptions } => (RuleStatus::Skip, skip_message(exceptions)),
        Verdict::Pass => (RuleStatus::Pass, "success".to_owned()),
        Verdict::Fail { message, .. } => (RuleStatus::Fail, message.clone()),
        Verdict::Error { message } => (
            RuleStatus::Error,
            match stage {
                ErrorStage::MutateDigest => format!("failed to update digest: {message}"),
                ErrorStage::Evaluation => format!("failed to evaluate policy: {message}"),
            },
        ),
    };
    let deny = outcome.actions.contains(&ValidationAction::Deny);
    let name = policy.policy.metadata.name.clone();
    let namespaced = policy.policy.is_namespaced();
    let mut response = PolicyResponse::new(
        if namespaced {
            PolicyKind::NamespacedImageValidatingPolicy
        } else {
            PolicyKind::ImageValidatingPolicy
        },
        name.clone(),
        policy
            .policy
            .metadata
            .namespace
            .clone()
            .filter(|_| namespaced),
        match outcome.failure_policy {
            IvpFailurePolicy::Fail => FailurePolicy::Fail,
            IvpFailurePolicy::Ignore => FailurePolicy::Ignore,
        },
    );
    let exceptions = match &outcome.verdict {
        Verdict::Excepted { exceptions } => exceptions.clone(),
        _ => Vec::new(),
    };
    response.rules.push(RuleResponse {
        // Kyverno names the skipped result after the exception step.
        name: if exceptions.is_empty() {
            name
        } else {
            "exception".to_owned()
        },
        rule_type: IMAGE_VALIDATING_POLICY,
        status,
        message,
        // Only Deny blocks a failure; Warn and Audit admit (see `response`).
        failure_action: if deny {
            FailureAction::Enforce
        } else {
            FailureAction::Audit
        },
        images: Vec::new(),
        exceptions,
    });
    response.validation_actions = outcome.actions.clone();
    response.audit_annotations = outcome.audit_annotations.clone();
    response.failed_validation = match &outcome.verdict {
        Verdict::Fail { index, .. } => *index,
        _ => None,
    };
    Some(response)
}
