//! Policies prepared for evaluation, once at load time: autogen rules expanded, and
//! the verdict-cache identity of every verifyImages entry.

use std::sync::Arc;

use imagegate_policy::autogen::expand_rules;
use imagegate_policy::conditions::{Context, REQUEST_VARIABLES};
use imagegate_policy::context::request_dependent_names;
use imagegate_policy::exception::{PolicyException, policy_key};
use imagegate_policy::images::{ImageRef, extract_images};
use imagegate_policy::ivp::{CompiledCelException, CompiledIvp};
use imagegate_policy::matching::rule_matches;
use imagegate_policy::model::{ImageVerification, Policy, Rule};
use imagegate_policy::pattern::image_matches;

use crate::review::AdmissionInput;
use crate::verdicts::verification_identity;

/// One rule of a [`PolicySet`] (autogen rules included), by position: the `rule`-th
/// rule of the `policy`-th policy. Ordered by policy, then rule (load order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct RuleId {
    /// Index into [`PolicySet::entries`].
    pub(crate) policy: usize,
    /// Index into the policy's rules as applied.
    pub(crate) rule: usize,
}

/// Policies ready for evaluation: autogen rules expanded once, at load time.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub(crate) entries: Vec<(Policy, Vec<Rule>)>,
    /// Per policy, rule and verifyImages entry: the verdict-cache identity of the entry
    /// (a hash of what it verifies), or `None` when its conditions read the request
    /// and so its verdict cannot be reused for another request.
    pub(crate) verdict_keys: Vec<Vec<Vec<Option<u64>>>>,
    /// Per policy, rule and verifyImages entry: whether it holds `{{ }}` variables
    /// to substitute per request (outside its conditions).
    pub(crate) substitutes: Vec<Vec<Vec<bool>>>,
    /// ImageValidatingPolicies (cluster-wide and namespaced), compiled at load.
    pub(crate) image_validating: Vec<Arc<CompiledIvp>>,
    /// PolicyExceptions (`kyverno.io/v2`), consulted for every rule that applies.
    pub(crate) exceptions: Vec<Arc<PolicyException>>,
    /// Per policy: its key as exceptions name it (`name` or `namespace/name`).
    pub(crate) policy_keys: Vec<String>,
    /// `policies.kyverno.io` PolicyExceptions; each ImageValidatingPolicy holds those
    /// that name it.
    pub(crate) cel_exceptions: Vec<Arc<CompiledCelException>>,
}

impl PolicySet {
    /// Prepares loaded (normalised, validated) policies.
    pub fn new(policies: Vec<Policy>) -> PolicySet {
        let entries: Vec<(Policy, Vec<Rule>)> = policies
            .into_iter()
            .map(|policy| {
                let rules = expand_rules(&policy);
                (policy, rules)
            })
            .collect();
        let verdict_keys = entries
            .iter()
            .map(|(_, rules)| {
                rules
                    .iter()
                    .map(|rule| {
                        let context = rule.context.as_deref().unwrap_or_default();
                        let from_request = request_dependent_names(context, REQUEST_VARIABLES);
                        rule.verify_images
                            .iter()
                            .map(|v| verdict_key(v, &from_request))
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let substitutes = entries
            .iter()
            .map(|(_, rules)| {
                rules
                    .iter()
                    .map(|rule| {
                        rule.verify_images
                            .iter()
                            .map(ImageVerification::has_substitutions)
                            .collect()
                    })
                    .collect()
            })
            .collect();
        let policy_keys = entries.iter().map(|(p, _)| policy_key(p)).collect();
        PolicySet {
            entries,
            verdict_keys,
            substitutes,
            image_validating: Vec::new(),
            exceptions: Vec::new(),
            policy_keys,
            cel_exceptions: Vec::new(),
        }
    }

    /// These policies and exceptions and those of `other` (e.g. policy files and the
    /// cluster's objects), already prepared; every ImageValidatingPolicy then consults
    /// the `policies.kyverno.io` exceptions of both that name it.
    pub fn merged(&self, other: &PolicySet) -> PolicySet {
        let mut combined = self.clone();
        combined.entries.extend(other.entries.iter().cloned());
        combined
            .verdict_keys
            .extend(other.verdict_keys.iter().cloned());
        combined
            .substitutes
            .extend(other.substitutes.iter().cloned());
        combined
            .policy_keys
            .extend(other.policy_keys.iter().cloned());
        combined.exceptions.extend(other.exceptions.iter().cloned());
        combined
            .image_validating
            .extend(other.image_validating.iter().cloned());
        combined
            .cel_exceptions
            .extend(other.cel_exceptions.iter().cloned());
        if !combined.cel_exceptions.is_empty() {
            let exceptions = &combined.cel_exceptions;
            combined.image_validating = combined
                .image_validating
                .iter()
                .map(|p| Arc::new(p.with_exceptions(exceptions)))
                .collect();
        }
        combined
    }

    /// Adds the PolicyExceptions consulted with these policies.
    pub fn with_exceptions(
        mut self,
        exceptions: impl IntoIterator<Item = PolicyException>,
    ) -> PolicySet {
        self.exceptions.extend(exceptions.into_iter().map(Arc::new));
        self
    }

    /// The PolicyExceptions.
    pub fn exceptions(&self) -> &[Arc<PolicyException>] {
        &self.exceptions
    }

    /// The policy of `rule`.
    pub(crate) fn policy_of(&self, rule: RuleId) -> &Policy {
        &self.entries[rule.policy].0
    }

    /// The verifyImages entry `entry` of `rule`.
    pub(crate) fn verification(&self, rule: RuleId, entry: usize) -> &ImageVerification {
        &self.entries[rule.policy].1[rule.rule].verify_images[entry]
    }

    /// The verdict-cache identity of verifyImages entry `entry` of `rule` (see
    /// [`PolicySet::verdict_keys`]).
    pub(crate) fn verdict_key(&self, rule: RuleId, entry: usize) -> Option<u64> {
        self.verdict_keys[rule.policy][rule.rule][entry]
    }

    /// Whether verifyImages entry `entry` of `rule` has variables to substitute per
    /// request ([`PolicySet::substitutes`]).
    pub(crate) fn substitutes(&self, rule: RuleId, entry: usize) -> bool {
        self.substitutes[rule.policy][rule.rule][entry]
    }

    /// The exceptions that name `rule` (named `rule_name`) and cover the input, in load
    /// order.
    pub(crate) fn exceptions_covering(
        &self,
        rule: RuleId,
        rule_name: &str,
        input: &AdmissionInput,
        context: &Context,
    ) -> Vec<&PolicyException> {
        let key = &self.policy_keys[rule.policy];
        self.exceptions
            .iter()
            .filter(|e| e.contains(key, rule_name))
            .filter(|e| e.covers(&input.resource, &input.match_context, context))
            .map(Arc::as_ref)
            .collect()
    }

    /// Adds the ImageValidatingPolicies evaluated with these policies (each consults
    /// the `policies.kyverno.io` PolicyExceptions of the set that name it).
    pub fn with_image_validating(
        mut self,
        policies: impl IntoIterator<Item = CompiledIvp>,
    ) -> PolicySet {
        let exceptions = &self.cel_exceptions;
        self.image_validating.extend(
            policies
                .into_iter()
                .map(|p| Arc::new(p.with_exceptions(exceptions))),
        );
        self
    }

    /// Adds `policies.kyverno.io` PolicyExceptions (they apply to the
    /// ImageValidatingPolicies they name, whenever those are added).
    pub fn with_cel_exceptions(
        mut self,
        exceptions: impl IntoIterator<Item = Arc<CompiledCelException>>,
    ) -> PolicySet {
        let before = self.cel_exceptions.len();
        self.cel_exceptions.extend(exceptions);
        if self.cel_exceptions.len() != before {
            let exceptions = &self.cel_exceptions;
            self.image_validating = self
                .image_validating
                .iter()
                .map(|p| Arc::new(p.with_exceptions(exceptions)))
                .collect();
        }
        self
    }

    /// The `policies.kyverno.io` PolicyExceptions.
    pub fn cel_exceptions(&self) -> &[Arc<CompiledCelException>] {
        &self.cel_exceptions
    }

    /// The ImageValidatingPolicies.
    pub fn image_validating(&self) -> &[Arc<CompiledIvp>] {
        &self.image_validating
    }

    /// The policies.
    pub fn policies(&self) -> impl Iterator<Item = &Policy> {
        self.entries.iter().map(|(p, _)| p)
    }

    /// The rules of each policy as applied (autogen included).
    pub fn rules(&self) -> impl Iterator<Item = (&Policy, &[Rule])> {
        self.entries.iter().map(|(p, r)| (p, r.as_slice()))
    }

    /// Number of policies (ImageValidatingPolicies included).
    pub fn len(&self) -> usize {
        self.entries.len() + self.image_validating.len()
    }

    /// Whether no policy is loaded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The policies with a verifyImages rule that applies to the input and whose
    /// `imageReferences` one of its images matches, selected as [`Engine::evaluate`]
    /// selects them (a rule whose images cannot be extracted counts: it would error; a
    /// rule a PolicyException covers does not: it would be skipped).
    pub fn applicable(&self, input: &AdmissionInput) -> Vec<&Policy> {
        // The same request variables as the evaluation gives exception conditions.
        let context = Context::new(serde_json::json!({ "request": input.request }));
        self.entries
            .iter()
            .enumerate()
            .filter(|(index, (policy, rules))| {
                rules.iter().enumerate().any(|(r, rule)| {
                    if rule.verify_images.is_empty()
                        || !rule_matches(rule, policy, &input.resource, &input.match_context)
                    {
                        return false;
                    }
                    let Ok(images) =
                        extract_images(&input.resource, rule.image_extractors.as_ref())
                    else {
                        return true;
                    };
                    let verified = rule
                        .verify_images
                        .iter()
                        .any(|verification| images.iter().any(|image| covers(verification, image)));
                    verified
                        && self
                            .exceptions_covering(
                                RuleId {
                                    policy: *index,
                                    rule: r,
                                },
                                &rule.name,
                                input,
                                &context,
                            )
                            .is_empty()
                })
            })
            .map(|(_, (policy, _))| policy)
            .collect()
    }

    /// The policies and exceptions a background scan applies: ClusterPolicies and
    /// Policies with `background` true or unset (Kyverno's default),
    /// ImageValidatingPolicies with `evaluation.background.enabled` true or unset, and
    /// the PolicyExceptions with `background` true or unset.
    pub fn for_background(&self) -> PolicySet {
        let keep: Vec<bool> = self
            .entries
            .iter()
            .map(|(policy, _)| policy.spec.background.unwrap_or(true))
            .collect();
        fn pick<T: Clone>(items: &[T], keep: &[bool]) -> Vec<T> {
            items
                .iter()
                .zip(keep)
                .filter(|(_, keep)| **keep)
                .map(|(item, _)| item.clone())
                .collect()
        }
        PolicySet {
            entries: pick(&self.entries, &keep),
            verdict_keys: pick(&self.verdict_keys, &keep),
            substitutes: pick(&self.substitutes, &keep),
            policy_keys: pick(&self.policy_keys, &keep),
            // The ImageValidatingPolicies kept carry theirs already.
            cel_exceptions: self.cel_exceptions.clone(),
            image_validating: self
                .image_validating
                .iter()
                .filter(|ivp| ivp.policy.spec.background_enabled())
                .cloned()
                .collect(),
            exceptions: self
                .exceptions
                .iter()
                .filter(|e| e.spec.background.unwrap_or(true))
                .cloned()
                .collect(),
        }
    }

    /// The largest `webhookTimeoutSeconds` (or `webhookConfiguration.timeoutSeconds`)
    /// of the policies, if any sets one.
    pub fn webhook_timeout_seconds(&self) -> Option<u32> {
        let ivps = self.image_validating.iter().filter_map(|ivp| {
            ivp.policy
                .spec
                .timeout_seconds()
                .and_then(|s| u32::try_from(s).ok())
        });
        self.policies()
            .filter_map(Policy::webhook_timeout_seconds)
            .chain(ivps)
            .max()
    }
}

/// Whether a verifyImages entry covers an image: `imageReferences` match it and
/// `skipImageReferences` do not.
pub(crate) fn covers(verification: &ImageVerification, image: &ImageRef) -> bool {
    image_matches(&verification.image_references, &image.info)
        && !image_matches(&verification.skip_image_references, &image.info)
}

/// The verdict-cache identity of a verifyImages entry ([`verification_identity`]), or
/// `None` when its variables read the request (in any spelling: `request.x`, `request |
/// namespace`, `images`, …), the clock, or a rule `context` variable defined from
/// them (`from_request`), as the parsed expressions say. (What a verdict read from
/// other context variables is folded into its key per request.)
fn verdict_key(verification: &ImageVerification, from_request: &[String]) -> Option<u64> {
    if !verification.use_cache || verification.verdict_depends_on_request() {
        return None;
    }
    if !from_request.is_empty() {
        let reads = verification.variable_reads();
        if from_request.iter().any(|name| reads.reads(name)) {
            return None;
        }
    }
    Some(verification_identity(verification))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_key_includes_the_verification_type() {
        let entry = |type_: &str| -> ImageVerification {
            serde_json::from_value(serde_json::json!({
                "type": type_,
                "imageReferences": ["*"],
                "attestors": [{"entries": [{"certificates": {"cert": "PEM"}}]}],
            }))
            .unwrap()
        };
        let notary = verdict_key(&entry("Notary"), &[]);
        assert!(notary.is_some());
        assert_ne!(notary, verdict_key(&entry("Cosign"), &[]));
        assert_ne!(notary, verdict_key(&entry("SigstoreBundle"), &[]));
    }

    #[test]
    fn count_one_of_a_two_key_pem_is_its_own_verdict() {
        let block =
            |body: &str| format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n");
        let entry = |pem: &str, count: Option<u64>| -> ImageVerification {
            serde_json::from_value(serde_json::json!({
                "imageReferences": ["*"],
                "attestors": [{"count": count, "entries": [{"keys": {"publicKeys": pem}}]}],
            }))
            .unwrap()
        };
        let one = block("AAAA");
        let two = format!("{}{}", block("AAAA"), block("BBBB"));
        // One key: `count: 1` changes nothing.
        assert_eq!(
            verdict_key(&entry(&one, Some(1)), &[]),
            verdict_key(&entry(&one, None), &[])
        );
        // Two keys are two entries: all of them, or any one.
        assert_ne!(
            verdict_key(&entry(&two, Some(1)), &[]),
            verdict_key(&entry(&two, None), &[])
        );
    }

    #[test]
    fn a_context_variable_defined_from_the_request_makes_the_verdict_per_request() {
        let policy: Policy = serde_json::from_value(serde_json::json!({
            "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy", "metadata": {"name": "p"},
            "spec": {"rules": [{
                "name": "r",
                "context": [
                    {"name": "keys", "configMap": {"name": "keys", "namespace": "kyverno"}},
                    {"name": "ns", "variable": {"jmesPath": "request.namespace"}},
                    {"name": "nsKeys", "configMap": {"name": "{{ ns }}", "namespace": "kyverno"}},
                ],
                "verifyImages": [
                    {"imageReferences": ["*"], "attestors": [{"entries": [{"keys": {"publicKeys": "{{ keys.data.pub }}"}}]}]},
                    {"imageReferences": ["*"], "attestors": [{"entries": [{"keys": {"publicKeys": "{{ nsKeys.data.pub }}"}}]}]},
                ],
            }]},
        }))
        .unwrap();
        let set = PolicySet::new(vec![policy]);
        // Autogen adds no rules for a rule without kinds.
        assert!(
            set.verdict_keys[0][0][0].is_some(),
            "a ConfigMap's key: cacheable"
        );
        assert!(
            set.verdict_keys[0][0][1].is_none(),
            "a ConfigMap named by the request: per request"
        );
        assert_eq!(set.substitutes[0][0], [true, true]);
    }

    #[test]
    fn background_scans_apply_only_background_policies_and_exceptions() {
        let policy = |name: &str, background: Option<bool>| -> Policy {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "kyverno.io/v1", "kind": "ClusterPolicy",
                "metadata": {"name": name},
                "spec": {"background": background, "rules": [{
                    "name": "verify",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [{"imageReferences": ["*"],
                        "attestors": [{"entries": [{"keys": {"publicKeys": "PEM"}}]}]}],
                }]},
            }))
            .unwrap()
        };
        let exception = |name: &str, background: Option<bool>| -> PolicyException {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "kyverno.io/v2", "kind": "PolicyException",
                "metadata": {"name": name, "namespace": "team"},
                "spec": {"background": background,
                         "exceptions": [{"policyName": "on", "ruleNames": ["verify"]}],
                         "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}},
            }))
            .unwrap()
        };
        let set = PolicySet::new(vec![
            policy("default", None),
            policy("off", Some(false)),
            policy("on", Some(true)),
        ])
        .with_exceptions([
            exception("scanned", None),
            exception("admission-only", Some(false)),
        ]);
        let background = set.for_background();
        let names: Vec<&str> = background
            .policies()
            .map(|p| p.metadata.name.as_str())
            .collect();
        assert_eq!(names, ["default", "on"]);
        assert_eq!(background.policy_keys, ["default", "on"]);
        assert_eq!(background.verdict_keys.len(), 2);
        let exceptions: Vec<&str> = background
            .exceptions()
            .iter()
            .map(|e| e.metadata.name.as_str())
            .collect();
        assert_eq!(exceptions, ["scanned"]);
    }
}
