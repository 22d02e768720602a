//! The failure action (Enforce or Audit) of a rule for one resource, as Kyverno
//! resolves it (`pkg/engine/api/engineresponse.go`: `ruleAction`, `matchOverride`):
//!
//! 1. A rule whose verifyImages entries write their own `failureAction` uses it:
//!    Enforce when any entry enforces, else Audit. `validationFailureActionOverrides`
//!    do not apply to it.
//! 2. Otherwise the first `spec.validationFailureActionOverrides` entry that selects
//!    the resource's namespace decides: an entry with neither `namespaces` nor
//!    `namespaceSelector` selects every namespace; one with `namespaces` selects a
//!    namespace matching one of them (wildcards), and, when it also has a
//!    `namespaceSelector`, whose labels match it; one with only a
//!    `namespaceSelector` selects namespaces whose labels match it.
//! 3. Otherwise `spec.validationFailureAction`, Audit when absent.
//!
//! Departure, on the side of denying: when the namespace's labels are unknown (no
//! cluster to ask), an entry that needs them selects the namespace if its action is
//! Enforce and does not if it is Audit, so missing information never weakens a rule.

use std::collections::BTreeMap;

use crate::matching::label_selector_matches;
use crate::model::{FailureAction, FailureActionOverride, Policy, Rule};
use crate::pattern::wildcard_match;

impl Policy {
    /// The failure action of `rule` (one of this policy's rules, autogen ones
    /// included) for a resource in `namespace` (empty for a cluster-scoped one) whose
    /// namespace carries `namespace_labels` (`None`: unknown). See the module
    /// documentation for the order of precedence.
    pub fn rule_failure_action(
        &self,
        rule: &Rule,
        namespace: &str,
        namespace_labels: Option<&BTreeMap<String, String>>,
    ) -> FailureAction {
        let mut own = rule
            .verify_images
            .iter()
            .filter(|iv| !iv.failure_action_inherited)
            .filter_map(|iv| iv.failure_action)
            .peekable();
        if own.peek().is_some() {
            return if own.any(|a| a == FailureAction::Enforce) {
                FailureAction::Enforce
            } else {
                FailureAction::Audit
            };
        }
        self.spec
            .validation_failure_action_overrides
            .iter()
            .find(|o| override_selects(o, namespace, namespace_labels))
            .map(|o| o.action)
            .or(self.spec.validation_failure_action)
            .unwrap_or(FailureAction::Audit)
    }
}

/// Whether an override entry selects the namespace (Kyverno's `matchOverride`).
fn override_selects(
    o: &FailureActionOverride,
    namespace: &str,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let selector_holds = || match (&o.namespace_selector, labels) {
        (None, _) => true,
        (Some(selector), Some(labels)) => label_selector_matches(selector, labels),
        (Some(_), None) => o.action == FailureAction::Enforce,
    };
    if o.namespaces.is_empty() {
        return selector_holds();
    }
    o.namespaces.iter().any(|p| wildcard_match(p, namespace)) && selector_holds()
}
