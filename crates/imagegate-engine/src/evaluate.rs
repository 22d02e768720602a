//! Evaluating a resource against loaded policies: which rules apply, which images they
//! cover, verifying every distinct image concurrently, and the decisions and patches
//! that follow.
//!
//! Admission runs in two phases, as in Kyverno: the mutating phase verifies and pins
//! digests (patches), the validating phase re-checks `verifyDigest` and `required` on
//! the patched object from imagegate's own knowledge — never from the
//! `kyverno.io/verify-images` annotation, which a client can forge.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use std::sync::Arc;
use std::time::Instant;

use futures::future::join_all;
use imagegate_oci::{Reference, RegistryClient, RequestGate};
use imagegate_policy::conditions::{self, Context};
use imagegate_policy::exception::skip_message;
use imagegate_policy::images::{ImageRef, extract_images};
use imagegate_policy::matching::rule_matches;
use imagegate_policy::model::{FailureAction, FailurePolicy, ImageVerification};
use imagegate_sigstore::RekorKey;
use serde_json::{Value, json};

use crate::attestors::{Cause, ImageSubject, verify_attestations, verify_attestors};
use crate::cache::{CacheOptions, key_of};
use crate::cluster::{
    ClusterError, ClusterInputs, cluster_cause, entry_pull_secrets, resolve_key_secrets,
};
use crate::fetch::{Access, Verifier};
use crate::ivp::{IvpEvaluator, IvpResponse};
use crate::metrics::EngineMetrics;
use crate::options::EngineOptions;
use crate::patch::{
    apply_patches, pin_digest_patch, remove_client_annotation_patch, verified_images_patch,
};
use crate::policy_set::{PolicySet, RuleId, covers};
use crate::response::{
    CheckedImage, EngineResponse, IMAGE_VERIFY, PolicyKind, PolicyResponse, ResourceId,
    RuleResponse, RuleStatus, UNSUPPORTED,
};
use crate::review::{AdmissionInput, Phase, ReviewDigests};
use crate::rule_context::{self, ContextFailure, LoadedContext};
use crate::verdicts::{DigestVerdict, VerdictCache, verification_identity};

/// Evaluates resources against policies with a shared verifier.
#[derive(Debug, Clone)]
pub struct Engine {
    verifier: Verifier,
    options: EngineOptions,
    /// Verdicts of every policy kind (ClusterPolicy rules and ImageValidatingPolicy
    /// checks share them).
    verdicts: VerdictCache,
}

/// What one phase will check (see [`Engine::evaluate`]).
struct Plan {
    /// Per policy with an applicable rule: its response, placeholders included.
    responses: Vec<PolicyResponse>,
    /// Where the response of each rule with images to check sits: its position in
    /// `responses[rule.policy].rules`.
    rule_slots: HashMap<RuleId, usize>,
    /// The images of each such rule, as extracted from the resource.
    extracted: Vec<Vec<ImageRef>>,
    /// One check per rule, verifyImages entry and covered image.
    pending: Vec<PlannedCheck>,
    /// By rule and verifyImages entry, for entries with variables or whose
    /// rule has `context`: the entry substituted for this request (`None`: as
    /// written) and its verdict key, which includes what was substituted and the
    /// context's values.
    prepared: HashMap<(RuleId, usize), (Option<ImageVerification>, Option<u64>)>,
}

/// Per rule: its `context` loaded for this request.
type RuleContexts = HashMap<RuleId, Result<LoadedContext, ContextFailure>>;

/// One planned check, by index into the policy set and [`Plan::extracted`].
struct PlannedCheck {
    /// The rule in the policy set.
    rule: RuleId,
    /// The verifyImages entry of the rule.
    entry: usize,
    /// The rule's images in [`Plan::extracted`].
    images: usize,
    /// The image among them.
    image: usize,
}

/// One image to check under one verifyImages entry of one rule.
#[derive(Clone, Copy)]
struct ImageTask<'a> {
    rule: RuleId,
    /// Index of the verifyImages entry in the rule.
    entry: usize,
    verification: &'a ImageVerification,
    verdict_key: Option<u64>,
    /// The request's context, with the rule's `context` variables.
    context: &'a Context,
    image: &'a ImageRef,
    /// The policy's `failurePolicy` is Ignore: registry errors and the deadline only
    /// warn.
    errors_ignored: bool,
}

/// A response of [`Plan::responses`] by position: `responses[policy].rules[position]`.
/// Ordered by policy, then position, so that removing in reverse order keeps the
/// positions still to remove valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct ResponseSlot {
    policy: usize,
    position: usize,
}

/// What [`Engine::run`] checks once: one image (as written) under one verifyImages
/// entry of one rule; tasks with the same key share the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DistinctCheck<'a> {
    rule: RuleId,
    entry: usize,
    image: &'a str,
}

/// What checking one image under one verifyImages entry concluded.
#[derive(Debug, Clone)]
struct ImageOutcome {
    status: RuleStatus,
    /// Why it did not pass.
    cause: Option<Cause>,
    message: String,
    /// The verified digest, for pinning.
    digest: Option<String>,
    /// Whether signatures or attestations were actually verified.
    verified: bool,
}

/// Builds an [`Engine`]: `Engine::builder(client).caches(…).metrics(…).build()`. The one
/// place where the verifier, its caches and the metrics are wired together (the CLI,
/// the webhook and the benchmarks all use it).
#[derive(Debug)]
pub struct EngineBuilder {
    client: RegistryClient,
    options: EngineOptions,
}

impl EngineBuilder {
    /// DigestVerdict and digest caches (default: [`CacheOptions::default`]).
    pub fn caches(mut self, caches: CacheOptions) -> EngineBuilder {
        self.options.caches = caches;
        self
    }

    /// Where cache, verification and registry metrics go; the registry client reports
    /// its requests there too.
    pub fn metrics(mut self, metrics: EngineMetrics) -> EngineBuilder {
        self.options.metrics = metrics;
        self
    }

    /// The Sigstore trusted root (default: the embedded public-good root).
    pub fn trusted_root(mut self, root: Option<imagegate_sigstore::TrustedRoot>) -> EngineBuilder {
        self.options.trusted_root = root;
        self
    }

    /// Rekor keys trusted in addition to the trusted root's.
    pub fn rekor_keys(mut self, keys: Vec<RekorKey>) -> EngineBuilder {
        self.options.rekor_keys = keys;
        self
    }

    /// The cluster (cluster mode; default: none).
    pub fn cluster(mut self, cluster: Option<Arc<dyn ClusterInputs>>) -> EngineBuilder {
        self.options.cluster = cluster;
        self
    }

    /// The engine.
    pub fn build(self) -> Engine {
        let options = self.options;
        let metrics = options.metrics.clone();
        let client = Arc::new(self.client.with_observer(Arc::new(metrics.clone())));
        let verifier = Verifier::with_digest_cache(client, options.caches.digest_ttl, metrics);
        let verdicts = VerdictCache::new(&options.caches, options.metrics.clone());
        Engine {
            verifier,
            options,
            verdicts,
        }
    }
}

impl Engine {
    /// A builder for an engine fetching through `client` (a clone of a client shares its
    /// connections, tokens and caches: several engines can fetch through one client).
    pub fn builder(client: RegistryClient) -> EngineBuilder {
        EngineBuilder {
            client,
            options: EngineOptions::default(),
        }
    }

    /// This engine (the same caches, single-flight and registry client) as a
    /// background scan started at `since` uses it: verdicts, tag digests and evidence
    /// cached before `since` are fetched and verified again (and replace the cached
    /// ones), so a signature deleted or a key rotated since turns a pass into a fail at
    /// this scan; what is reached during the scan serves the rest of it, so each digest
    /// is verified once per scan. Its registry requests pass `gate` (the scan's
    /// concurrency and rate) before the registry's own permits, which admission shares.
    pub fn for_background_scan(&self, since: Instant, gate: Option<RequestGate>) -> Engine {
        Engine {
            verifier: self.verifier.fresh_since(since).with_gate(gate),
            options: self.options.clone(),
            verdicts: self.verdicts.fresh_since(since),
        }
    }

    /// The engine's metrics.
    pub fn metrics(&self) -> &EngineMetrics {
        &self.options.metrics
    }

    /// Verdicts currently cached (positive and negative).
    pub async fn cached_verdicts(&self) -> u64 {
        self.verdicts.len().await
    }

    /// The ImageValidatingPolicy side, lent this engine's verifier, settings and cache.
    fn ivp_evaluator(&self) -> IvpEvaluator<'_> {
        IvpEvaluator {
            verifier: &self.verifier,
            options: &self.options,
            verdicts: &self.verdicts,
        }
    }

    /// The verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The cluster, in cluster mode.
    pub fn cluster(&self) -> Option<&dyn ClusterInputs> {
        self.options.cluster.as_deref()
    }

    /// The labels of `namespace` as the cluster knows them (`None`: not in cluster mode,
    /// or not seen yet; matching then fails closed).
    pub fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        let labels = self.cluster()?.namespace_labels(namespace)?;
        Some(labels.as_ref().clone())
    }

    /// Both phases as the API server runs them: mutate, apply the patch, validate the
    /// patched object. Per rule the worse result wins; patches are the mutate phase's.
    pub async fn evaluate_both(
        &self,
        policies: &PolicySet,
        input: &AdmissionInput,
    ) -> EngineResponse {
        let digests = ReviewDigests::default();
        let mut response = self
            .evaluate_with(policies, input, Phase::Mutate, &digests)
            .await;
        let mut patched_input = input.clone();
        patched_input.resource = response.patched.clone();
        let validated = self
            .evaluate_with(policies, &patched_input, Phase::Validate, &digests)
            .await;
        response.merge_phase(validated);
        response
    }

    /// Evaluates one phase.
    pub async fn evaluate(
        &self,
        policies: &PolicySet,
        input: &AdmissionInput,
        phase: Phase,
    ) -> EngineResponse {
        self.evaluate_with(policies, input, phase, &ReviewDigests::default())
            .await
    }

    /// Evaluates one phase, resolving tags through `digests` (shared by the phases of
    /// one review).
    async fn evaluate_with(
        &self,
        policies: &PolicySet,
        input: &AdmissionInput,
        phase: Phase,
        digests: &ReviewDigests,
    ) -> EngineResponse {
        let resource = &input.resource;
        let base_context = Context::new(json!({ "request": input.request }));
        let contexts = self.rule_contexts(policies, input, &base_context).await;
        let plan = self.plan(policies, input, phase, &base_context, &contexts);
        let tasks: Vec<ImageTask<'_>> = plan
            .pending
            .iter()
            .map(|check| {
                let written = policies.verification(check.rule, check.entry);
                let prepared = plan.prepared.get(&(check.rule, check.entry));
                ImageTask {
                    rule: check.rule,
                    entry: check.entry,
                    verification: prepared
                        .and_then(|(substituted, _)| substituted.as_ref())
                        .unwrap_or(written),
                    verdict_key: prepared
                        .map_or(policies.verdict_key(check.rule, check.entry), |(_, key)| {
                            *key
                        }),
                    context: match contexts.get(&check.rule) {
                        Some(Ok(loaded)) => &loaded.context,
                        _ => &base_context,
                    },
                    image: &plan.extracted[check.images][check.image],
                    errors_ignored: policies.policy_of(check.rule).failure_policy()
                        == FailurePolicy::Ignore,
                }
            })
            .collect();
        let images_variable = images_variable(&plan.extracted);
        if !tasks.is_empty()
            && let Some(cluster) = self.cluster()
        {
            digests.read_pod_pull_secrets(cluster, resource).await;
        }
        let ivps = self.ivp_evaluator();
        let (outcomes, ivp) = futures::join!(
            self.run(&tasks, phase, &images_variable, digests),
            ivps.evaluate(&policies.image_validating, input, phase, digests),
        );
        assemble(
            phase,
            resource,
            plan.responses,
            &plan.rule_slots,
            &tasks,
            outcomes,
            ivp,
        )
    }

    /// The `context` of every rule that applies and has images to check, loaded
    /// concurrently (before preconditions, which may use it, as in Kyverno), with the
    /// values given for the rule in place of a cluster (a CLI's values file: they count
    /// for rules without entries too). Rules whose images are all outside their
    /// `imageReferences` read nothing.
    async fn rule_contexts(
        &self,
        policies: &PolicySet,
        input: &AdmissionInput,
        base: &Context,
    ) -> RuleContexts {
        let resource_name = input
            .resource
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut wanted = Vec::new();
        for (p, (policy, rules)) in policies.entries.iter().enumerate() {
            for (r, rule) in rules.iter().enumerate() {
                let entries = rule.context.as_deref().unwrap_or_default();
                let given = self
                    .cluster()
                    .map(|c| c.given_values(policy.name(), &rule.name, resource_name))
                    .unwrap_or_default();
                if entries.is_empty() && given.is_empty() {
                    continue;
                }
                if rule.verify_images.is_empty()
                    || !rule_matches(rule, policy, &input.resource, &input.match_context)
                {
                    continue;
                }
                let covered = extract_images(&input.resource, rule.image_extractors.as_ref())
                    .is_ok_and(|images| {
                        rule.verify_images
                            .iter()
                            .any(|v| images.iter().any(|image| covers(v, image)))
                    });
                if covered {
                    let namespace = policy.namespace().filter(|_| !policy.is_cluster_policy());
                    wanted.push((RuleId { policy: p, rule: r }, entries, namespace, given));
                }
            }
        }
        if wanted.is_empty() {
            return RuleContexts::new();
        }
        let loaded = join_all(wanted.iter().map(|(_, entries, namespace, given)| {
            rule_context::load(self.cluster(), entries, base, *namespace, given)
        }))
        .await;
        wanted
            .into_iter()
            .map(|(key, ..)| key)
            .zip(loaded)
            .collect()
    }

    /// Plan: the rules that apply, their responses (placeholders for the rules with
    /// images to check), and one check per rule, verifyImages entry and image.
    fn plan(
        &self,
        policies: &PolicySet,
        input: &AdmissionInput,
        phase: Phase,
        base_context: &Context,
        contexts: &RuleContexts,
    ) -> Plan {
        let resource = &input.resource;
        // Overrides select by the resource's namespace (empty: cluster-scoped).
        let resource_namespace = resource
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut responses: Vec<PolicyResponse> = Vec::new();
        let mut rule_slots: HashMap<RuleId, usize> = HashMap::new();
        let mut extracted: Vec<Vec<ImageRef>> = Vec::new();
        let mut pending: Vec<PlannedCheck> = Vec::new();
        let mut prepared = HashMap::new();

        for (policy_index, (policy, rules)) in policies.entries.iter().enumerate() {
            let mut policy_response = PolicyResponse::new(
                if policy.is_cluster_policy() {
                    PolicyKind::ClusterPolicy
                } else {
                    PolicyKind::Policy
                },
                policy.name().to_owned(),
                policy
                    .namespace()
                    .map(str::to_owned)
                    .filter(|_| !policy.is_cluster_policy()),
                policy.failure_policy(),
            );
            for (rule_index, rule) in rules.iter().enumerate() {
                let rule_id = RuleId {
                    policy: policy_index,
                    rule: rule_index,
                };
                if !rule_matches(rule, policy, resource, &input.match_context) {
                    continue;
                }
                if rule.verify_images.is_empty() {
                    // Said, not silently ignored: imagegate evaluates verifyImages only.
                    let unsupported = rule.unsupported_rule_types();
                    if !unsupported.is_empty() {
                        policy_response.rules.push(RuleResponse {
                            name: rule.name.clone(),
                            rule_type: UNSUPPORTED,
                            status: RuleStatus::Skip,
                            message: format!(
                                "{} rules are not evaluated by imagegate (verifyImages only)",
                                unsupported.join("/")
                            ),
                            failure_action: FailureAction::Audit,
                            images: Vec::new(),
                            exceptions: Vec::new(),
                        });
                    }
                    continue;
                }
                let action = policy.rule_failure_action(
                    rule,
                    resource_namespace,
                    input.match_context.namespace_labels.as_ref(),
                );
                let rule_response = |status, message: String| RuleResponse {
                    name: rule.name.clone(),
                    rule_type: IMAGE_VERIFY,
                    status,
                    message,
                    failure_action: action,
                    images: Vec::new(),
                    exceptions: Vec::new(),
                };
                let loaded = match contexts.get(&rule_id) {
                    Some(Ok(loaded)) => Some(loaded),
                    Some(Err(failure)) => {
                        // Kyverno's text. A missing ConfigMap is a policy that cannot be
                        // applied (as a missing key Secret: it fails, whatever
                        // failurePolicy says); an unreachable API is an error.
                        let status = if failure.transient {
                            RuleStatus::Error
                        } else {
                            RuleStatus::Fail
                        };
                        policy_response.rules.push(rule_response(
                            status,
                            format!("failed to load context: {}", failure.message),
                        ));
                        continue;
                    }
                    None => None,
                };
                let rule_context = loaded.map_or(base_context, |l| &l.context);
                if let Some(preconditions) = &rule.preconditions {
                    match conditions::evaluate_preconditions(preconditions, rule_context) {
                        Ok(result) if result.passed => {}
                        Ok(_) => {
                            policy_response.rules.push(rule_response(
                                RuleStatus::Skip,
                                "preconditions not met".into(),
                            ));
                            continue;
                        }
                        Err(e) => {
                            policy_response.rules.push(rule_response(
                                RuleStatus::Error,
                                format!("failed to evaluate preconditions: {e}"),
                            ));
                            continue;
                        }
                    }
                }
                let images = match extract_images(resource, rule.image_extractors.as_ref()) {
                    Ok(images) => images,
                    Err(e) => {
                        policy_response
                            .rules
                            .push(rule_response(RuleStatus::Error, e.to_string()));
                        continue;
                    }
                };
                let image_index = extracted.len();
                let mut checks = Vec::new();
                for (entry, verification) in rule.verify_images.iter().enumerate() {
                    for (image, extracted_image) in images.iter().enumerate() {
                        if covers(verification, extracted_image) {
                            checks.push(PlannedCheck {
                                rule: rule_id,
                                entry,
                                images: image_index,
                                image,
                            });
                        }
                    }
                }
                extracted.push(images);
                if checks.is_empty() {
                    let patterns = rule
                        .verify_images
                        .iter()
                        .flat_map(|v| v.image_references.iter().cloned())
                        .collect::<Vec<_>>()
                        .join(",");
                    if phase == Phase::Mutate {
                        policy_response.rules.push(rule_response(
                            RuleStatus::Skip,
                            format!("skip run verification as image in resource not found in imageRefs '{patterns}'"),
                        ));
                    }
                    continue;
                }
                // As Kyverno's image handlers: after match, images and preconditions,
                // a covering exception turns the rule into a skip (in both phases).
                let exceptions =
                    policies.exceptions_covering(rule_id, &rule.name, input, rule_context);
                if !exceptions.is_empty() {
                    let mut skipped =
                        rule_response(RuleStatus::Skip, skip_message(exceptions.iter().copied()));
                    skipped.exceptions = exceptions.iter().map(|e| e.key()).collect();
                    policy_response.rules.push(skipped);
                    continue;
                }
                // As Kyverno's image handlers: the entries with their variables
                // substituted (conditions excepted: they are evaluated per image).
                let used: BTreeSet<usize> = checks.iter().map(|c| c.entry).collect();
                let mut failed = None;
                for v in used {
                    let substitutes = policies.substitutes(rule_id, v);
                    if !substitutes && loaded.is_none() {
                        continue;
                    }
                    let written = &rule.verify_images[v];
                    let substituted = if substitutes {
                        match written.substituted(rule_context) {
                            Ok(substituted) => Some(substituted),
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    } else {
                        None
                    };
                    // A verdict is about what was verified: the entry as substituted,
                    // and the context values its conditions may read.
                    let verdict_key = policies.verdict_key(rule_id, v).map(|_| {
                        let identity =
                            verification_identity(substituted.as_ref().unwrap_or(written));
                        let values = loaded.map(|l| l.values.to_string()).unwrap_or_default();
                        key_of(&(identity, values))
                    });
                    prepared.insert((rule_id, v), (substituted, verdict_key));
                }
                if let Some(e) = failed {
                    policy_response.rules.push(rule_response(
                        RuleStatus::Error,
                        format!("failed to substitute variables: {e}"),
                    ));
                    continue;
                }
                pending.extend(checks);
                rule_slots.insert(rule_id, policy_response.rules.len());
                policy_response
                    .rules
                    .push(rule_response(RuleStatus::Pass, String::new()));
            }
            responses.push(policy_response);
        }

        Plan {
            responses,
            rule_slots,
            extracted,
            pending,
            prepared,
        }
    }

    /// Run: checks every distinct task concurrently; the outcome of each task, in order.
    async fn run(
        &self,
        tasks: &[ImageTask<'_>],
        phase: Phase,
        images_variable: &Value,
        digests: &ReviewDigests,
    ) -> Vec<Option<ImageOutcome>> {
        // Each distinct image is checked once per verifyImages entry (issue 8 item 8):
        // containers repeating an image share its outcome (the context of an image
        // depends on the image only, not on the container).
        let mut distinct: HashMap<DistinctCheck<'_>, usize> = HashMap::new();
        let mut to_check: Vec<&ImageTask<'_>> = Vec::new();
        let slots: Vec<usize> = tasks
            .iter()
            .map(|task| {
                let key = DistinctCheck {
                    rule: task.rule,
                    entry: task.entry,
                    image: task.image.text.as_str(),
                };
                *distinct.entry(key).or_insert_with(|| {
                    to_check.push(task);
                    to_check.len() - 1
                })
            })
            .collect();
        let checked = join_all(
            to_check
                .iter()
                .map(|task| self.check(task, phase, task.context, images_variable, digests)),
        )
        .await;
        for cause in checked.iter().flatten().filter_map(|o| o.cause) {
            self.options.metrics.verification_failed(cause.as_str());
        }
        slots.iter().map(|&slot| checked[slot].clone()).collect()
    }
}

/// Assemble: per rule the worst outcome of its images (see [`RuleStatus`]), the digest
/// pins and the verified-images annotation, the patched resource.
fn assemble(
    phase: Phase,
    resource: &Value,
    mut responses: Vec<PolicyResponse>,
    rule_slots: &HashMap<RuleId, usize>,
    tasks: &[ImageTask<'_>],
    outcomes: Vec<Option<ImageOutcome>>,
    ivp: IvpResponse,
) -> EngineResponse {
    // Assemble per rule, in task order (containers in resource order).
    let mut per_rule: BTreeMap<RuleId, Vec<(&ImageTask<'_>, ImageOutcome)>> = BTreeMap::new();
    for (task, outcome) in tasks.iter().zip(outcomes) {
        if let Some(outcome) = outcome {
            per_rule.entry(task.rule).or_default().push((task, outcome));
        }
    }
    let mut patches = Vec::new();
    let mut verified_images: BTreeMap<String, String> = BTreeMap::new();
    let mut silent: Vec<ResponseSlot> = Vec::new();
    for (rule, &position) in rule_slots {
        let rule_response = &mut responses[rule.policy].rules[position];
        let Some(outcomes) = per_rule.get(rule) else {
            // Nothing to check in this phase: the rule says nothing.
            silent.push(ResponseSlot {
                policy: rule.policy,
                position,
            });
            continue;
        };
        for (task, outcome) in outcomes {
            let checked = CheckedImage {
                image: task.image.text.clone(),
                digest: outcome.digest.clone(),
            };
            if !rule_response.images.contains(&checked) {
                rule_response.images.push(checked);
            }
        }
        let worst = outcomes
            .iter()
            .map(|(_, o)| o)
            .filter(|o| o.status != RuleStatus::Pass)
            .max_by_key(|o| o.status);
        match worst {
            Some(outcome) => {
                rule_response.status = outcome.status;
                rule_response.message = outcome.message.clone();
            }
            None => {
                let mut messages: Vec<&str> =
                    outcomes.iter().map(|(_, o)| o.message.as_str()).collect();
                messages.dedup();
                rule_response.status = RuleStatus::Pass;
                rule_response.message = messages.join("; ");
            }
        }
        if phase == Phase::Mutate {
            for (task, outcome) in outcomes {
                let Some(digest) = outcome
                    .digest
                    .as_deref()
                    .filter(|_| outcome.status == RuleStatus::Pass)
                else {
                    continue;
                };
                if outcome.verified {
                    verified_images.insert(pinned_reference(task.image, digest), "pass".into());
                }
                if task.verification.mutate_digest && task.image.info.digest.is_none() {
                    patches.push(pin_digest_patch(
                        &task.image.pointer,
                        &pinned_reference(task.image, digest),
                    ));
                }
            }
        }
    }
    silent.sort_unstable();
    for slot in silent.iter().rev() {
        responses[slot.policy].rules.remove(slot.position);
    }
    responses.retain(|p| !p.rules.is_empty());
    responses.extend(ivp.policies);
    patches.extend(ivp.patches);
    patches.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    patches.dedup();
    if phase == Phase::Mutate && !rule_slots.is_empty() {
        if !verified_images.is_empty() {
            patches.push(verified_images_patch(resource, &verified_images));
        } else if let Some(forged) = remove_client_annotation_patch(resource) {
            // Nothing was verified here: a value the client wrote must not be stored
            // as if imagegate (or Kyverno) had verified something.
            patches.push(forged);
        }
    }
    let patched = match apply_patches(resource, &patches) {
        Ok(patched) => patched,
        Err(e) => {
            tracing::error!(error = %e, "generated patch does not apply");
            resource.clone()
        }
    };
    EngineResponse {
        resource: ResourceId::of(resource),
        policies: responses,
        patches,
        patched,
    }
}

impl Engine {
    /// Checks one image under one verifyImages entry; `None` when the phase has
    /// nothing to check for it.
    async fn check(
        &self,
        task: &ImageTask<'_>,
        phase: Phase,
        base: &Context,
        images: &Value,
        digests: &ReviewDigests,
    ) -> Option<ImageOutcome> {
        let verification = task.verification;
        let display = task.image.info.reference.clone();
        let needs_verification =
            !verification.attestors.is_empty() || !verification.attestations.is_empty();
        let tagged = task.image.info.digest.is_none();
        let needs_registry = match phase {
            Phase::Mutate => needs_verification || (verification.mutate_digest && tagged),
            Phase::Validate => {
                (verification.verify_digest && tagged)
                    || (verification.required && needs_verification)
            }
        };
        let verifier = if needs_registry {
            match self.task_verifier(task, digests).await {
                Ok(verifier) => verifier,
                Err(failed) => return Some(failed),
            }
        } else {
            self.verifier.clone()
        };
        let verifier = &verifier;
        match phase {
            Phase::Mutate => {
                if needs_verification {
                    return Some(
                        self.verify_image(task, verifier, base, images, digests)
                            .await,
                    );
                }
                // Kyverno: `mutateDigest` alone still pins the tag (issue 9 item 2).
                if verification.mutate_digest && task.image.info.digest.is_none() {
                    return Some(match self.resolve(task, verifier, digests).await {
                        Ok(digest) => ImageOutcome {
                            status: RuleStatus::Pass,
                            cause: None,
                            message: "mutated image digest".into(),
                            digest: Some(digest),
                            verified: false,
                        },
                        Err(failed) => failed,
                    });
                }
                None
            }
            Phase::Validate => {
                // Admitted unpinned by the mutate phase, and verified here instead.
                let mut unpinned = false;
                if verification.verify_digest && task.image.info.digest.is_none() {
                    // Missing because the mutate phase could not reach the registry
                    // (an error: `failurePolicy` decides), or although the tag
                    // resolves (a violation)? Issue 9 item 3.
                    if let Err(failed) = self.resolve(task, verifier, digests).await
                        && failed.cause == Some(Cause::Registry)
                    {
                        return Some(failed);
                    }
                    // The registry answers now. Under Ignore, a digest `mutateDigest`
                    // would have pinned is missing because the mutate phase met a
                    // registry error or its deadline (Ignore admitted it unpinned), so
                    // the image is verified now and passes or fails on its merits.
                    // Under Fail that mutate phase denied: a missing digest means it
                    // was bypassed, and Kyverno's failure stands. So does a digest the
                    // user must write (`mutateDigest: false`).
                    if !(task.errors_ignored && verification.mutate_digest) {
                        return Some(ImageOutcome::failed(
                            Cause::MissingDigest,
                            format!("missing digest for {display}"),
                        ));
                    }
                    unpinned = true;
                }
                if (verification.required || unpinned) && needs_verification {
                    let outcome = self
                        .verify_image(task, verifier, base, images, digests)
                        .await;
                    if outcome.status != RuleStatus::Pass {
                        return Some(outcome);
                    }
                }
                if let Some(deny) = verification.validate.as_ref().and_then(|v| v.deny.as_ref()) {
                    let context = image_context(base, task.image, images);
                    let denied =
                        match conditions::evaluate_preconditions(&deny.conditions, &context) {
                            Ok(result) => result.passed,
                            Err(e) => {
                                return Some(ImageOutcome::failed(
                                    Cause::ConditionError,
                                    format!("failed to evaluate validate.deny for {display}: {e}"),
                                ));
                            }
                        };
                    if denied {
                        let message = verification
                            .validate
                            .as_ref()
                            .and_then(|v| v.message.clone())
                            .unwrap_or_else(|| format!("image {display} denied by validate.deny"));
                        return Some(ImageOutcome::failed(Cause::Denied, message));
                    }
                }
                if unpinned {
                    // Admitted, with a warning: the image runs by tag, not by the
                    // digest verified.
                    let verified = if needs_verification {
                        " was verified in the validate phase but"
                    } else {
                        ""
                    };
                    return Some(ImageOutcome {
                        status: RuleStatus::Warn,
                        cause: None,
                        message: format!(
                            "image {display}{verified} is not pinned to a digest: the mutate phase could not resolve it (failurePolicy Ignore)"
                        ),
                        digest: None,
                        verified: false,
                    });
                }
                Some(ImageOutcome {
                    status: RuleStatus::Pass,
                    cause: None,
                    message: "image verified".into(),
                    digest: task.image.info.digest.clone(),
                    verified: false,
                })
            }
        }
    }

    /// The verifier for `task`: with the entry's `imageRegistryCredentials.secrets`,
    /// then the Pod's pull secrets (cluster mode), or the outcome that says why not.
    async fn task_verifier(
        &self,
        task: &ImageTask<'_>,
        digests: &ReviewDigests,
    ) -> Result<Verifier, ImageOutcome> {
        let display = &task.image.info.reference;
        let failed = |path: &str, error: &ClusterError| {
            ImageOutcome::failed(
                cluster_cause(error),
                format!("failed to verify image {display}: {path}: {error}"),
            )
        };
        let mut secrets = entry_pull_secrets(self.cluster(), task.verification)
            .await
            .map_err(|e| failed(".imageRegistryCredentials.secrets", &e))?;
        match digests.pod_pull_secrets.get() {
            Some(Ok(pod)) => secrets.extend(pod),
            Some(Err(e)) => return Err(failed("imagePullSecrets", e)),
            None => {}
        }
        if secrets.is_empty() {
            return Ok(self.verifier.clone());
        }
        Ok(self.verifier.with_pull_secrets(Some(Arc::new(secrets))))
    }

    /// The image's reference and digest (resolved once per review and credentials),
    /// or the outcome that says why not.
    async fn reference_and_digest(
        &self,
        task: &ImageTask<'_>,
        verifier: &Verifier,
        digests: &ReviewDigests,
    ) -> Result<(Reference, String), ImageOutcome> {
        let display = &task.image.info.reference;
        let reference = Reference::parse(&task.image.text).map_err(|e| {
            ImageOutcome::failed(
                Cause::InvalidReference,
                format!("failed to verify image {display}: {e}"),
            )
        })?;
        let digest = digests
            .resolve(verifier, &reference, Access::of(task.verification))
            .await
            .map_err(|e| {
                ImageOutcome::failed(
                    Cause::of(&e),
                    format!("failed to verify image {display}: {e}"),
                )
            })?;
        Ok((reference, digest))
    }

    /// The image's digest, or the outcome that says why not.
    async fn resolve(
        &self,
        task: &ImageTask<'_>,
        verifier: &Verifier,
        digests: &ReviewDigests,
    ) -> Result<String, ImageOutcome> {
        self.reference_and_digest(task, verifier, digests)
            .await
            .map(|(_, digest)| digest)
    }

    /// Resolves the image and the keys held in Secrets, then reuses a cached verdict
    /// for its digest or verifies.
    async fn verify_image(
        &self,
        task: &ImageTask<'_>,
        verifier: &Verifier,
        base: &Context,
        images: &Value,
        digests: &ReviewDigests,
    ) -> ImageOutcome {
        let display = task.image.info.reference.clone();
        let (reference, digest) = match self.reference_and_digest(task, verifier, digests).await {
            Ok(resolved) => resolved,
            Err(failed) => return failed,
        };
        let resolved = match resolve_key_secrets(self.cluster(), task.verification).await {
            Ok(resolved) => resolved,
            Err(failure) => {
                return ImageOutcome::failed(
                    cluster_cause(&failure.error),
                    format!(
                        "failed to verify image {display}: {}: {}",
                        failure.path, failure.error
                    ),
                );
            }
        };
        // A key read from a Secret is part of what the verdict is about: a rotated key
        // is a different verdict.
        let key_material = resolved
            .as_ref()
            .map(|v| key_of(&serde_json::to_vec(v).unwrap_or_default()));
        let task = &ImageTask {
            verification: resolved.as_ref().unwrap_or(task.verification),
            ..*task
        };
        let verify = || self.verify_digest(task, verifier, &reference, &digest, base, images);
        let verdict = match task.verdict_key {
            // Conditions on attestations may name the image (`ConditionsFailed`): such
            // a verdict is the image's as written, not the digest's alone.
            Some(identity) => {
                let written = has_conditions(task.verification).then_some(display.as_str());
                // Same shape as every policy kind's key (the cache is shared): a Secret's
                // key is folded into the entry's identity.
                let identity = match key_material {
                    Some(material) => key_of(&(identity, material)),
                    None => identity,
                };
                let key = key_of(&(identity, &digest, reference.name(), written));
                self.verdicts.get_or_verify(key, verify).await
            }
            None => Box::pin(verify()).await,
        };
        match verdict.failure {
            Some(failure) => ImageOutcome::failed(
                failure.cause(),
                format!("failed to verify image {display}: {failure}"),
            ),
            None => {
                let what = if task.verification.attestors.is_empty() {
                    "attestations"
                } else {
                    "signatures"
                };
                ImageOutcome {
                    status: RuleStatus::Pass,
                    cause: None,
                    message: format!("verified image {what} for {display}"),
                    digest: Some(digest),
                    verified: true,
                }
            }
        }
    }

    /// Verifies attestors and attestations of one image at `digest`.
    async fn verify_digest(
        &self,
        task: &ImageTask<'_>,
        verifier: &Verifier,
        reference: &Reference,
        digest: &str,
        base: &Context,
        images: &Value,
    ) -> DigestVerdict {
        let display = task.image.info.reference.clone();
        let subject = ImageSubject {
            image: reference,
            digest,
            verification: task.verification,
            rekor_keys: &self.options.rekor_keys,
            trusted_root: self.options.trusted_root.as_ref(),
        };
        let failed = |failure| DigestVerdict {
            failure: Some(failure),
            payload: None,
        };
        if let Err(failure) = verify_attestors(verifier, &subject).await {
            return failed(failure);
        }
        // Built only when an attestation's conditions need it: it copies the request.
        let context = if task.verification.attestations.is_empty() {
            Context::new(Value::Null)
        } else {
            image_context(base, task.image, images)
        };
        if let Err(failure) = verify_attestations(verifier, &subject, &display, &context).await {
            return failed(failure);
        }
        DigestVerdict {
            failure: None,
            payload: None,
        }
    }
}

/// Whether an attestation check of `verification` has conditions.
fn has_conditions(verification: &ImageVerification) -> bool {
    verification
        .attestations
        .iter()
        .any(|a| !a.conditions.is_empty())
}

impl ImageOutcome {
    /// A failed check, or an error when the cause is one (see [`Cause::is_error`]).
    fn failed(cause: Cause, message: String) -> ImageOutcome {
        ImageOutcome {
            status: if cause.is_error() {
                RuleStatus::Error
            } else {
                RuleStatus::Fail
            },
            cause: Some(cause),
            message,
            digest: None,
            verified: false,
        }
    }
}

/// `REG/REPO:TAG@sha256:…` — the image as written, normalised, pinned to the digest
/// that was verified.
fn pinned_reference(image: &ImageRef, digest: &str) -> String {
    match Reference::parse(&image.text) {
        Ok(reference) => reference.with_digest(digest).to_string(),
        Err(_) => format!("{}@{digest}", image.text),
    }
}

/// The `images` variable: `{containers: {name: info}, initContainers: …}`.
fn images_variable(extracted: &[Vec<ImageRef>]) -> Value {
    let mut images = serde_json::Map::new();
    for image in extracted.iter().flatten() {
        let group = images
            .entry(image.kind.variable_group().to_owned())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        if let Value::Object(group) = group {
            group.insert(image.container.clone(), image.info.to_value());
        }
    }
    Value::Object(images)
}

fn image_context(base: &Context, image: &ImageRef, images: &Value) -> Context {
    let mut extra = serde_json::Map::new();
    extra.insert("image".into(), image.info.to_value());
    extra.insert("images".into(), images.clone());
    base.with_entries(extra)
}
