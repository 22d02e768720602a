//! `validationFailureActionOverrides` (issue 8 item 2): the failure action of a rule
//! for a namespace, as Kyverno resolves it.

use std::collections::BTreeMap;

use imagegate_policy::autogen::expand_rules;
use imagegate_policy::load::load_policies;
use imagegate_policy::model::{FailureAction, Policy};

use FailureAction::{Audit, Enforce};

/// A ClusterPolicy with `spec` (YAML lines, indented 2) and one verifyImages rule
/// whose entry carries `entry` (YAML lines, indented 8).
fn policy(spec: &str, entry: &str) -> Policy {
    let text = format!(
        "apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: p
spec:
{spec}
  rules:
    - name: r
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - imageReferences: [\"ghcr.io/*\"]
          mutateDigest: false
{entry}
          attestors:
            - entries:
                - keyless:
                    subject: s
                    issuer: i
                    rekor:
                      url: https://rekor.sigstore.dev
"
    );
    let mut policies = load_policies(&text, "test.yaml").unwrap_or_else(|e| panic!("{e}"));
    policies.remove(0)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn action(
    p: &Policy,
    namespace: &str,
    ns_labels: Option<&BTreeMap<String, String>>,
) -> FailureAction {
    p.rule_failure_action(&p.spec.rules[0], namespace, ns_labels)
}

#[test]
fn override_by_namespace_name_and_wildcard() {
    let p = policy(
        "  validationFailureAction: Audit
  validationFailureActionOverrides:
    - action: Enforce
      namespaces: [default, prod-*]",
        "",
    );
    let none = labels(&[]);
    assert_eq!(action(&p, "default", Some(&none)), Enforce);
    assert_eq!(action(&p, "prod-eu", Some(&none)), Enforce);
    assert_eq!(action(&p, "dev", Some(&none)), Audit);
    assert_eq!(action(&p, "", Some(&none)), Audit);
    // Names are exact: no prefix or case folding.
    assert_eq!(action(&p, "Default", Some(&none)), Audit);
    assert_eq!(action(&p, "default2", Some(&none)), Audit);
}

#[test]
fn override_to_audit_under_an_enforce_policy_and_first_match_wins() {
    let p = policy(
        "  validationFailureAction: Enforce
  validationFailureActionOverrides:
    - action: Audit
      namespaces: [dev-*]
    - action: Enforce
      namespaces: [\"*\"]",
        "",
    );
    let none = labels(&[]);
    assert_eq!(action(&p, "dev-1", Some(&none)), Audit);
    assert_eq!(action(&p, "prod", Some(&none)), Enforce);
}

#[test]
fn override_by_namespace_selector() {
    let p = policy(
        "  validationFailureAction: Audit
  validationFailureActionOverrides:
    - action: Enforce
      namespaceSelector:
        matchExpressions:
          - key: env
            operator: In
            values: [prod]",
        "",
    );
    assert_eq!(action(&p, "a", Some(&labels(&[("env", "prod")]))), Enforce);
    assert_eq!(action(&p, "a", Some(&labels(&[("env", "dev")]))), Audit);
    assert_eq!(action(&p, "a", Some(&labels(&[]))), Audit);
    // Unknown labels never weaken: an Enforce override that needs them applies.
    assert_eq!(action(&p, "a", None), Enforce);
}

#[test]
fn override_with_names_and_selector_needs_both() {
    let p = policy(
        "  validationFailureAction: Audit
  validationFailureActionOverrides:
    - action: Enforce
      namespaces: [team-*]
      namespaceSelector:
        matchLabels:
          tier: critical",
        "",
    );
    let critical = labels(&[("tier", "critical")]);
    assert_eq!(action(&p, "team-a", Some(&critical)), Enforce);
    assert_eq!(action(&p, "team-a", Some(&labels(&[]))), Audit);
    assert_eq!(action(&p, "other", Some(&critical)), Audit);
}

#[test]
fn unknown_labels_skip_an_audit_override_that_needs_them() {
    let p = policy(
        "  validationFailureAction: Enforce
  validationFailureActionOverrides:
    - action: Audit
      namespaceSelector:
        matchLabels:
          env: dev",
        "",
    );
    assert_eq!(action(&p, "a", Some(&labels(&[("env", "dev")]))), Audit);
    assert_eq!(action(&p, "a", None), Enforce);
}

#[test]
fn an_override_without_namespaces_or_selector_selects_every_namespace() {
    let p = policy(
        "  validationFailureActionOverrides:
    - action: Enforce",
        "",
    );
    assert_eq!(action(&p, "any", None), Enforce);
}

#[test]
fn a_rule_with_its_own_failure_action_ignores_overrides() {
    let p = policy(
        "  validationFailureAction: Enforce
  validationFailureActionOverrides:
    - action: Enforce
      namespaces: [default]",
        "          failureAction: Audit",
    );
    assert_eq!(action(&p, "default", None), Audit);
    let p = policy(
        "  validationFailureActionOverrides:
    - action: Audit
      namespaces: [default]",
        "          failureAction: Enforce",
    );
    assert_eq!(action(&p, "default", None), Enforce);
}

#[test]
fn without_overrides_the_policy_action_then_audit() {
    assert_eq!(
        action(&policy("  validationFailureAction: enforce", ""), "x", None),
        Enforce
    );
    assert_eq!(action(&policy("  background: false", ""), "x", None), Audit);
}

#[test]
fn autogen_rules_keep_the_overrides() {
    let p = policy(
        "  validationFailureAction: Audit
  validationFailureActionOverrides:
    - action: Enforce
      namespaces: [default]",
        "",
    );
    let rules = expand_rules(&p);
    assert!(rules.len() > 1, "autogen rules expected");
    for rule in &rules {
        assert_eq!(
            p.rule_failure_action(rule, "default", None),
            Enforce,
            "{}",
            rule.name
        );
        assert_eq!(
            p.rule_failure_action(rule, "dev", None),
            Audit,
            "{}",
            rule.name
        );
    }
}
