//! Policies prepared for evaluation, once at load time: autogen rules expanded, and
//! the verdict-cache identity of every verifyImages entry.

use imagegate_policy::autogen::expand_rules;
use imagegate_policy::images::{ImageRef, extract_images};
use imagegate_policy::matching::rule_matches;
use imagegate_policy::model::{ImageVerification, Policy, Rule};
use imagegate_policy::pattern::image_matches;

use crate::cache::key_of;
use crate::evaluate::AdmissionInput;

/// Policies ready for evaluation: autogen rules expanded once, at load time.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub(crate) entries: Vec<(Policy, Vec<Rule>)>,
    /// Per policy, rule and verifyImages entry: the verdict-cache identity of the entry
    /// (a hash of its whole content), or `None` when its conditions read the request
    /// and so its verdict cannot be reused for another request.
    pub(crate) verdict_keys: Vec<Vec<Vec<Option<u64>>>>,
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
                    .map(|rule| rule.verify_images.iter().map(verdict_key).collect())
                    .collect()
            })
            .collect();
        PolicySet {
            entries,
            verdict_keys,
        }
    }

    /// The policies.
    pub fn policies(&self) -> impl Iterator<Item = &Policy> {
        self.entries.iter().map(|(p, _)| p)
    }

    /// The rules of each policy as applied (autogen included).
    pub fn rules(&self) -> impl Iterator<Item = (&Policy, &[Rule])> {
        self.entries.iter().map(|(p, r)| (p, r.as_slice()))
    }

    /// Number of policies.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no policy is loaded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The policies with a verifyImages rule that applies to the input and whose
    /// `imageReferences` one of its images matches, selected as [`Engine::evaluate`]
    /// selects them (a rule whose images cannot be extracted counts: it would error).
    pub fn applicable(&self, input: &AdmissionInput) -> Vec<&Policy> {
        self.entries
            .iter()
            .filter(|(policy, rules)| {
                rules.iter().any(|rule| {
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
                    rule.verify_images
                        .iter()
                        .any(|verification| images.iter().any(|image| covers(verification, image)))
                })
            })
            .map(|(policy, _)| policy)
            .collect()
    }

    /// The largest `webhookTimeoutSeconds` (or `webhookConfiguration.timeoutSeconds`)
    /// of the policies, if any sets one.
    pub fn webhook_timeout_seconds(&self) -> Option<u32> {
        self.policies()
            .filter_map(Policy::webhook_timeout_seconds)
            .max()
    }
}

/// Whether a verifyImages entry covers an image: `imageReferences` match it and
/// `skipImageReferences` do not.
pub(crate) fn covers(verification: &ImageVerification, image: &ImageRef) -> bool {
    image_matches(&verification.image_references, &image.info)
        && !image_matches(&verification.skip_image_references, &image.info)
}

/// The cache identity of a verifyImages entry: its whole content, so that a changed
/// policy never reuses an old verdict. `None` when its variables read the request
/// (in any spelling: `request.x`, `request | namespace`, `images`, …) or the clock,
/// as the parsed expressions say.
fn verdict_key(verification: &ImageVerification) -> Option<u64> {
    if !verification.use_cache || verification.verdict_depends_on_request() {
        return None;
    }
    let text = serde_json::to_string(verification).ok()?;
    Some(key_of(&text))
}
