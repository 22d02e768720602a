//! Load-time honesty: the fields of a policy that imagegate reads but does not act
//! on, each reported as a warning with its field path, so that a policy never
//! *looks* enforced where it is not. (What imagegate cannot honour safely is an
//! error instead, in [`crate::validate`]: keys or keyless under `type: Notary`,
//! variables in `imageReferences`.)

use std::fmt;

use crate::error::FieldError;
use crate::ivp::model::ImageValidatingPolicy;
use crate::model::Policy;

/// One warning about a loaded policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWarning {
    /// The source (file name) of the policy.
    pub source: String,
    /// `Kind/name` or `Kind/namespace/name` of the policy.
    pub policy: String,
    /// Where and what.
    pub finding: FieldError,
}

impl fmt::Display for PolicyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.source, self.policy, self.finding)
    }
}

/// Why `imageRegistryCredentials.providers` is not acted on.
pub const PROVIDERS_IGNORED: &str = "credential providers are not used by imagegate yet; registry credentials come from its docker config (--docker-config)";
/// Why `webhookConfiguration.matchConditions` is not acted on.
pub const MATCH_CONDITIONS_IGNORED: &str =
    "match conditions are not evaluated by imagegate; the policy applies as if they held";

/// The fields of `policy` (as written, before normalisation) that imagegate does not
/// act on, in document order.
pub fn unsupported_fields(policy: &Policy) -> Vec<FieldError> {
    let mut found = Vec::new();
    let conditions = policy
        .spec
        .webhook_configuration
        .as_ref()
        .and_then(|w| w.match_conditions.as_ref());
    if conditions.is_some_and(|c| !c.is_empty()) {
        found.push(FieldError::new(
            "spec.webhookConfiguration.matchConditions",
            MATCH_CONDITIONS_IGNORED,
        ));
    }
    for (r, rule) in policy.spec.rules.iter().enumerate() {
        let rpath = format!("spec.rules[{r}]");
        // configMap, variable and apiCall GETs are evaluated; the other kinds are not.
        let entries = rule.context.as_deref().unwrap_or_default();
        for (i, why) in crate::context::unsupported_entries(entries) {
            found.push(FieldError::new(format!("{rpath}.context[{i}]"), why));
        }
        for kind in rule.unsupported_rule_types() {
            found.push(FieldError::new(
                format!("{rpath}.{kind}"),
                format!("{kind} rules are not evaluated by imagegate (verifyImages only)"),
            ));
        }
        for (v, iv) in rule.verify_images.iter().enumerate() {
            let Some(credentials) = &iv.image_registry_credentials else {
                continue;
            };
            let cpath = format!("{rpath}.verifyImages[{v}].imageRegistryCredentials");
            if !credentials.providers.is_empty() {
                found.push(FieldError::new(
                    format!("{cpath}.providers"),
                    PROVIDERS_IGNORED,
                ));
            }
        }
    }
    found
}

/// The fields of an ImageValidatingPolicy that imagegate does not act on, in document
/// order.
pub fn unsupported_ivp_fields(policy: &ImageValidatingPolicy) -> Vec<FieldError> {
    let mut found = Vec::new();
    if let Some(credentials) = &policy.spec.credentials
        && !credentials.providers.is_empty()
    {
        found.push(FieldError::new(
            "spec.credentials.providers",
            PROVIDERS_IGNORED,
        ));
    }
    found
}
