//! Results per policy and rule, and the texts Kyverno users know: the denial message
//! (`resource Pod/default/x was blocked due to the following policies …`) and warnings.

use std::collections::BTreeMap;

use imagegate_policy::ivp::model::ValidationAction;
use imagegate_policy::model::{FailureAction, FailurePolicy};
use serde::Serialize;
use serde_json::json;

/// Outcome of one rule for one resource (Kyverno's rule statuses). The order is the one
/// ordering of outcomes in the whole engine (the worse wins, per rule across images and
/// across phases): a failed check ranks above an error, so that a registry error on one
/// image never hides another image's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RuleStatus {
    /// The rule did not apply (no matching image, preconditions not met).
    Skip,
    /// Every matching image satisfied the rule.
    Pass,
    /// A check failed but the failure only warns.
    Warn,
    /// The rule could not be evaluated (registry unreachable, bad configuration).
    Error,
    /// A check failed.
    Fail,
}

impl RuleStatus {
    /// The lowercase name used in reports and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleStatus::Skip => "skip",
            RuleStatus::Pass => "pass",
            RuleStatus::Warn => "warn",
            RuleStatus::Fail => "fail",
            RuleStatus::Error => "error",
        }
    }
}

/// [`RuleResponse::rule_type`] of verifyImages rules (the only rules evaluated).
pub const IMAGE_VERIFY: &str = "ImageVerify";

/// [`RuleResponse::rule_type`] of the skip reported for rules of other types (validate,
/// mutate, generate), which imagegate does not evaluate.
pub const UNSUPPORTED: &str = "Unsupported";

/// The result of one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleResponse {
    /// Rule name (autogen rules carry Kyverno's `autogen-` prefixes).
    pub name: String,
    /// Always `ImageVerify` here.
    pub rule_type: &'static str,
    /// Outcome.
    pub status: RuleStatus,
    /// Kyverno's message for the outcome.
    pub message: String,
    /// Whether a failure blocks (Enforce) or is only reported (Audit).
    #[serde(skip)]
    pub failure_action: FailureAction,
    /// The images the rule checked, with the digest each resolved to (for reports).
    #[serde(skip)]
    pub images: Vec<CheckedImage>,
    /// Keys (`namespace/name`) of the PolicyExceptions that made the rule skip.
    #[serde(skip)]
    pub exceptions: Vec<String>,
}

/// One image a rule checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckedImage {
    /// The image as written in the resource.
    pub image: String,
    /// The digest it resolved to, when resolution got that far.
    pub digest: Option<String>,
}

impl RuleResponse {
    /// Keeps the worse of two results for the same rule (mutate then validate phase);
    /// the images checked stay known when the worse phase checked none.
    pub fn merge(&mut self, other: RuleResponse) {
        if other.status > self.status {
            let images = std::mem::take(&mut self.images);
            *self = other;
            if self.images.is_empty() {
                self.images = images;
            }
        }
    }
}

/// The kind of a policy: a bounded label value (metrics) and what decides the texts
/// (Kyverno answers ClusterPolicies and ImageValidatingPolicies differently).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub enum PolicyKind {
    /// `kyverno.io/v1` ClusterPolicy.
    #[default]
    ClusterPolicy,
    /// `kyverno.io/v1` Policy (namespaced).
    Policy,
    /// `policies.kyverno.io` ImageValidatingPolicy.
    ImageValidatingPolicy,
    /// `policies.kyverno.io` NamespacedImageValidatingPolicy.
    NamespacedImageValidatingPolicy,
}

impl PolicyKind {
    /// The Kubernetes kind.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::ClusterPolicy => "ClusterPolicy",
            PolicyKind::Policy => "Policy",
            PolicyKind::ImageValidatingPolicy => "ImageValidatingPolicy",
            PolicyKind::NamespacedImageValidatingPolicy => "NamespacedImageValidatingPolicy",
        }
    }

    /// Whether the kind is one of the CEL ImageValidatingPolicy kinds.
    pub fn is_image_validating(self) -> bool {
        matches!(
            self,
            PolicyKind::ImageValidatingPolicy | PolicyKind::NamespacedImageValidatingPolicy
        )
    }
}

/// The results of one policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyResponse {
    /// Policy name.
    pub policy: String,
    /// Namespace of a namespaced `Policy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The policy's kind.
    #[serde(skip)]
    pub kind: PolicyKind,
    /// What to do when the policy cannot be evaluated (`failurePolicy`).
    #[serde(skip)]
    pub failure_policy: FailurePolicy,
    /// Results of the rules that applied.
    pub rules: Vec<RuleResponse>,
    /// ImageValidatingPolicy only: what its [`PolicyResponse::rules`] result does
    /// (`validationActions`: Deny, Warn, Audit).
    #[serde(skip)]
    pub validation_actions: Vec<ValidationAction>,
    /// ImageValidatingPolicy only: its `auditAnnotations`, evaluated.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
    /// ImageValidatingPolicy only: the index of the validation that failed.
    #[serde(skip)]
    pub failed_validation: Option<usize>,
}

impl PolicyResponse {
    /// A response of a `kind` policy without results yet.
    pub fn new(
        kind: PolicyKind,
        policy: String,
        namespace: Option<String>,
        failure_policy: FailurePolicy,
    ) -> PolicyResponse {
        PolicyResponse {
            policy,
            namespace,
            kind,
            failure_policy,
            rules: Vec::new(),
            validation_actions: Vec::new(),
            audit_annotations: BTreeMap::new(),
            failed_validation: None,
        }
    }

    /// `namespace/name`, or `name` for a cluster-wide policy.
    fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.policy),
            None => self.policy.clone(),
        }
    }

    fn has_action(&self, action: ValidationAction) -> bool {
        self.validation_actions.contains(&action)
    }
}

/// The audit annotation key under which failures of `validationActions: [Audit]`
/// ImageValidatingPolicies are returned (the key the API server uses for a
/// ValidatingAdmissionPolicy's, without its prefix: a webhook's keys may not have one).
pub const VALIDATION_FAILURE_ANNOTATION: &str = "validation_failure";

/// The resource a response is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceId {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.namespace`, empty for cluster-scoped resources.
    pub namespace: String,
    /// `metadata.name` (or `generateName` when the name is not set yet).
    pub name: String,
}

impl ResourceId {
    /// Reads the identity of a Kubernetes object.
    pub fn of(resource: &serde_json::Value) -> ResourceId {
        let text = |pointer: &str| {
            resource
                .pointer(pointer)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let mut name = text("/metadata/name");
        if name.is_empty() {
            name = text("/metadata/generateName");
        }
        ResourceId {
            api_version: text("/apiVersion"),
            kind: text("/kind"),
            namespace: text("/metadata/namespace"),
            name,
        }
    }

    /// `Kind/namespace/name`, or `Kind/name` for cluster-scoped resources.
    pub fn display(&self) -> String {
        if self.namespace.is_empty() {
            format!("{}/{}", self.kind, self.name)
        } else {
            format!("{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Everything the engine decided about one resource.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineResponse {
    /// The resource evaluated.
    pub resource: ResourceId,
    /// Results per policy that had at least one applicable rule.
    pub policies: Vec<PolicyResponse>,
    /// JSON patch operations (RFC 6902) to apply to the resource.
    pub patches: Vec<serde_json::Value>,
    /// The resource with the patches applied.
    pub patched: serde_json::Value,
}

impl EngineResponse {
    /// Whether admission must be denied: an Enforce rule failed, or a rule could not
    /// be evaluated under `failurePolicy: Fail`.
    pub fn blocked(&self) -> bool {
        self.policies
            .iter()
            .any(|p| p.rules.iter().any(|r| blocks(p, r)))
    }

    /// The denial text, when [`EngineResponse::blocked`]: Kyverno's ClusterPolicy text
    /// (`resource Pod/ns/x was blocked due to the following policies` and a YAML map),
    /// and for ImageValidatingPolicies Kyverno's IVP webhook text (`Policy NAME failed:
    /// MESSAGE`, several joined with `; ` as Go's multierr joins them).
    pub fn denial_message(&self) -> Option<String> {
        let mut failures: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
        let mut image_validating: Vec<String> = Vec::new();
        for policy in &self.policies {
            if !policy.rules.iter().any(|r| blocks(policy, r)) {
                continue;
            }
            if policy.kind.is_image_validating() {
                image_validating.extend(
                    policy
                        .rules
                        .iter()
                        .filter(|r| blocks(policy, r))
                        .filter_map(|r| ivp_text(policy, r)),
                );
                continue;
            }
            let rules = failures.entry(policy.policy.as_str()).or_default();
            for rule in &policy.rules {
                if rule.status != RuleStatus::Pass && rule.status != RuleStatus::Skip {
                    rules.insert(rule.name.as_str(), rule.message.as_str());
                }
            }
        }
        if failures.is_empty() && image_validating.is_empty() {
            return None;
        }
        let mut text = String::new();
        if !failures.is_empty() {
            text = format!(
                "\n\nresource {} was blocked due to the following policies\n\n",
                self.resource.display()
            );
            for (policy, rules) in failures {
                text.push_str(&yaml_scalar(policy));
                text.push_str(":\n");
                for (rule, message) in rules {
                    text.push_str("  ");
                    text.push_str(&yaml_scalar(rule));
                    text.push_str(": ");
                    text.push_str(&yaml_scalar(message));
                    text.push('\n');
                }
            }
        }
        // Kyverno collects its IVP results in a map: their order is random there. Here
        // by policy name, so that the text is stable.
        image_validating.sort();
        text.push_str(&image_validating.join("; "));
        Some(text)
    }

    /// Warnings for the API server. ClusterPolicy/Policy: failures that do not block
    /// (Audit, or errors under `failurePolicy: Ignore`). ImageValidatingPolicy, as
    /// Kyverno: failures and errors of policies with the `Warn` action (`Policy NAME
    /// failed: MESSAGE`); an Audit-only failure warns nobody (it goes to the audit
    /// annotations). In addition, imagegate admits an error under `failurePolicy:
    /// Ignore` with a warning for every kind (Kyverno's IVP webhook denies it).
    pub fn warnings(&self) -> Vec<String> {
        self.warnings_of(true)
    }

    /// [`Self::warnings`] without those of ImageValidatingPolicies: what an admitted
    /// mutating phase answers. Both phases evaluate those policies in full, so their
    /// warnings come once, from the validating phase (Kyverno's mutating webhook warns
    /// of nothing but pinning failures, which the validating phase reports too).
    pub fn warnings_without_image_validating(&self) -> Vec<String> {
        self.warnings_of(false)
    }

    fn warnings_of(&self, image_validating: bool) -> Vec<String> {
        let mut warnings = Vec::new();
        for policy in &self.policies {
            for rule in &policy.rules {
                if policy.kind.is_image_validating() {
                    if !image_validating {
                        continue;
                    }
                    let warn = policy.has_action(ValidationAction::Warn)
                        || (rule.status == RuleStatus::Error && !blocks(policy, rule));
                    if let (true, Some(text)) = (warn, ivp_text(policy, rule)) {
                        warnings.push(text);
                    }
                    continue;
                }
                if matches!(
                    rule.status,
                    RuleStatus::Fail | RuleStatus::Error | RuleStatus::Warn
                ) && !blocks(policy, rule)
                {
                    warnings.push(format!(
                        "policy {}.{}: {}",
                        policy.policy, rule.name, rule.message
                    ));
                }
            }
        }
        warnings
    }

    /// Audit annotations for the AdmissionResponse (ImageValidatingPolicies only; the
    /// API server prefixes each key with the webhook's name). Each policy's evaluated
    /// `auditAnnotations` under `POLICY.KEY` (`NAMESPACE.POLICY.KEY` for a namespaced
    /// one), and the failures of policies with the `Audit` action under
    /// [`VALIDATION_FAILURE_ANNOTATION`], as a JSON list in the shape Kubernetes
    /// writes for a ValidatingAdmissionPolicy (`message`, `policy`, `expressionIndex`,
    /// `validationActions`).
    pub fn audit_annotations(&self) -> BTreeMap<String, String> {
        let mut annotations = BTreeMap::new();
        let mut failures = Vec::new();
        for policy in self
            .policies
            .iter()
            .filter(|p| p.kind.is_image_validating())
        {
            let prefix = match &policy.namespace {
                Some(ns) => format!("{ns}.{}", policy.policy),
                None => policy.policy.clone(),
            };
            for (key, value) in &policy.audit_annotations {
                annotations.insert(format!("{prefix}.{key}"), value.clone());
            }
            if !policy.has_action(ValidationAction::Audit) {
                continue;
            }
            for rule in policy
                .rules
                .iter()
                .filter(|r| matches!(r.status, RuleStatus::Fail | RuleStatus::Error))
            {
                let mut failure = json!({
                    "message": rule.message,
                    "policy": policy.qualified_name(),
                    "validationActions": policy.validation_actions,
                });
                if let (Some(index), RuleStatus::Fail) = (policy.failed_validation, rule.status) {
                    failure["expressionIndex"] = json!(index);
                }
                failures.push(failure);
            }
        }
        if !failures.is_empty() {
            annotations.insert(
                VALIDATION_FAILURE_ANNOTATION.to_owned(),
                serde_json::Value::Array(failures).to_string(),
            );
        }
        annotations
    }

    /// The response of one rule, if it applied.
    pub fn rule(&self, policy: &str, rule: &str) -> Option<&RuleResponse> {
        self.policies
            .iter()
            .filter(|p| p.policy == policy)
            .flat_map(|p| &p.rules)
            .find(|r| r.name == rule)
    }

    /// Folds the validate-phase response into this mutate-phase one: per rule, the
    /// worse result wins; patches stay those of the mutate phase.
    pub fn merge_phase(&mut self, other: EngineResponse) {
        for policy in other.policies {
            match self
                .policies
                .iter_mut()
                .find(|p| p.policy == policy.policy && p.namespace == policy.namespace)
            {
                Some(mine) => {
                    // An ImageValidatingPolicy has one result: its details follow it.
                    let worse = |p: &PolicyResponse| p.rules.iter().map(|r| r.status).max();
                    if mine.kind.is_image_validating() && worse(&policy) > worse(mine) {
                        mine.audit_annotations = policy.audit_annotations.clone();
                        mine.failed_validation = policy.failed_validation;
                    }
                    for rule in policy.rules {
                        match mine.rules.iter_mut().find(|r| r.name == rule.name) {
                            Some(existing) => existing.merge(rule),
                            None => mine.rules.push(rule),
                        }
                    }
                }
                None => self.policies.push(policy),
            }
        }
    }
}

/// Kyverno's IVP webhook text for a failed or errored ImageValidatingPolicy result.
fn ivp_text(policy: &PolicyResponse, rule: &RuleResponse) -> Option<String> {
    let what = match rule.status {
        RuleStatus::Fail | RuleStatus::Warn => "failed",
        RuleStatus::Error => "error",
        RuleStatus::Pass | RuleStatus::Skip => return None,
    };
    Some(format!("Policy {} {what}: {}", policy.policy, rule.message))
}

/// Kyverno's `BlockRequest`: a failure blocks under Enforce; an error (the rule could
/// not be evaluated, e.g. the registry is unreachable) blocks under `failurePolicy:
/// Fail`, whatever the failure action, and only warns under `Ignore`.
fn blocks(policy: &PolicyResponse, rule: &RuleResponse) -> bool {
    match rule.status {
        RuleStatus::Fail => rule.failure_action == FailureAction::Enforce,
        RuleStatus::Error => policy.failure_policy == FailurePolicy::Fail,
        _ => false,
    }
}

/// A string as go-yaml writes it: plain when unambiguous, else single-quoted, else
/// double-quoted (Kyverno marshals its denial map with sigs.k8s.io/yaml).
pub fn yaml_scalar(text: &str) -> String {
    if is_plain_safe(text) {
        return text.to_owned();
    }
    if !text.chars().any(|c| c.is_control()) {
        return format!("'{}'", text.replace('\'', "''"));
    }
    serde_json::to_string(text).unwrap_or_default()
}

fn is_plain_safe(text: &str) -> bool {
    const INDICATORS: &[char] = &[
        '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@',
        '`',
    ];
    const RESERVED: &[&str] = &[
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", "",
    ];
    let Some(first) = text.chars().next() else {
        return false;
    };
    if INDICATORS.contains(&first)
        || first.is_whitespace()
        || text.ends_with(char::is_whitespace)
        || text.ends_with(':')
        || text.contains(": ")
        || text.contains(" #")
        || text.chars().any(|c| c.is_control())
        || RESERVED.contains(&text.to_ascii_lowercase().as_str())
        || text.parse::<f64>().is_ok()
    {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: RuleStatus, action: FailureAction) -> EngineResponse {
        EngineResponse {
            resource: ResourceId {
                api_version: "v1".into(),
                kind: "Pod".into(),
                namespace: "default".into(),
                name: "unsigned".into(),
            },
            policies: vec![PolicyResponse {
                rules: vec![RuleResponse {
                    name: "verify".into(),
                    rule_type: IMAGE_VERIFY,
                    status,
                    message: "failed to verify image ghcr.io/a/b:v1: .attestors[0].entries[0].keys: no signatures found".into(),
                    failure_action: action,
                    images: Vec::new(),
                    exceptions: Vec::new(),
                }],
                ..PolicyResponse::new(
                    PolicyKind::ClusterPolicy,
                    "check-image".into(),
                    None,
                    FailurePolicy::Fail,
                )
            }],
            ..EngineResponse::default()
        }
    }

    #[test]
    fn enforce_failure_is_denied_with_kyvernos_text() {
        let r = response(RuleStatus::Fail, FailureAction::Enforce);
        assert!(r.blocked());
        assert_eq!(
            r.denial_message().unwrap(),
            "\n\nresource Pod/default/unsigned was blocked due to the following policies\n\ncheck-image:\n  verify: 'failed to verify image ghcr.io/a/b:v1: .attestors[0].entries[0].keys: no signatures found'\n"
        );
        assert!(r.warnings().is_empty());
    }

    #[test]
    fn audit_failure_warns_and_admits() {
        let r = response(RuleStatus::Fail, FailureAction::Audit);
        assert!(!r.blocked());
        assert_eq!(r.denial_message(), None);
        assert_eq!(r.warnings().len(), 1);
    }

    #[test]
    fn errors_follow_the_failure_policy() {
        for action in [FailureAction::Audit, FailureAction::Enforce] {
            let mut r = response(RuleStatus::Error, action);
            assert!(r.blocked(), "{action:?}");
            r.policies[0].failure_policy = FailurePolicy::Ignore;
            assert!(!r.blocked(), "{action:?}");
            assert_eq!(r.denial_message(), None, "{action:?}");
            assert_eq!(r.warnings().len(), 1, "{action:?}");
        }
    }

    #[test]
    fn yaml_scalars() {
        for (text, expected) in [
            ("plain", "plain"),
            ("a: b", "'a: b'"),
            ("it's: x", "'it''s: x'"),
            ("true", "'true'"),
            ("123", "'123'"),
            ("-dash", "'-dash'"),
            ("line\nbreak", "\"line\\nbreak\""),
            ("", "''"),
        ] {
            assert_eq!(yaml_scalar(text), expected, "{text:?}");
        }
    }

    #[test]
    fn merge_keeps_the_worse_result() {
        let mut a = response(RuleStatus::Pass, FailureAction::Audit);
        a.merge_phase(response(RuleStatus::Fail, FailureAction::Audit));
        assert_eq!(a.policies[0].rules[0].status, RuleStatus::Fail);
        let mut b = response(RuleStatus::Fail, FailureAction::Audit);
        b.merge_phase(response(RuleStatus::Pass, FailureAction::Audit));
        assert_eq!(b.policies[0].rules[0].status, RuleStatus::Fail);
    }
}
