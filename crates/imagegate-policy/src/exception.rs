//! Kyverno's `kyverno.io/v2` (and `v2beta1`) `PolicyException`: which rules of which
//! policies a set of resources is exempt from (Kyverno `api/kyverno/v2`
//! `policy_exception_types.go`, `pkg/engine/utils/exceptions.go`).
//!
//! - `spec.exceptions[]`: `policyName` is the policy's key, exactly (`name` for a
//!   `ClusterPolicy`, `namespace/name` for a `Policy`); `ruleNames` hold wildcards
//!   (`*`, `?`), autogen rules are named as Kyverno names them (`autogen-…`).
//! - `spec.match`: `any`/`all` filters as in policies; an exception without filters
//!   matches nothing. Facts imagegate does not know (namespace labels outside a
//!   cluster, the requesting user) never grant an exception.
//! - `spec.conditions`: `{any, all}` JMESPath conditions over the request; an error in
//!   them means the exception does not apply (as in Kyverno).
//!
//! The namespace of a PolicyException does not confine it to resources of that namespace
//! (Kyverno restricts where exceptions may be created, `--exception-namespace`, not what
//! they cover).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::conditions::{self, Context};
use crate::matching::{MatchContext, exception_matches};
use crate::model::{AnyAllConditions, MatchResources, ObjectMeta, Policy};
use crate::pattern::wildcard_match;

/// The kind of Kyverno's exception documents.
pub const KIND: &str = "PolicyException";

/// The `apiVersion`s of `kyverno.io` PolicyExceptions imagegate reads.
pub const API_VERSIONS: [&str; 2] = ["kyverno.io/v2", "kyverno.io/v2beta1"];

/// A `kyverno.io/v2` or `v2beta1` `PolicyException` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyException {
    /// `kyverno.io/v2` or `kyverno.io/v2beta1`.
    #[serde(default)]
    pub api_version: String,
    /// `PolicyException`.
    #[serde(default)]
    pub kind: String,
    /// Object metadata (name and namespace make its key).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What is exempt, for which resources.
    #[serde(default)]
    pub spec: ExceptionSpec,
}

/// `spec` of a PolicyException.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct ExceptionSpec {
    /// Whether the exception also applies in background scans (default true).
    #[serde(default)]
    pub background: Option<bool>,
    /// The resources it covers (`any`/`all` filters).
    #[serde(default, rename = "match")]
    pub match_: MatchResources,
    /// Conditions that must also hold.
    #[serde(default)]
    pub conditions: Option<AnyAllConditions>,
    /// The policies and rules excepted.
    #[serde(default)]
    pub exceptions: Vec<Exception>,
    /// Pod Security Standard controls (for `validate.podSecurity` rules, which imagegate
    /// does not evaluate); kept so that the document round-trips.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_security: Vec<Value>,
}

/// One `spec.exceptions[]` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Exception {
    /// `name` of a ClusterPolicy, `namespace/name` of a Policy (exact).
    #[serde(default)]
    pub policy_name: String,
    /// Rule names, with `*`/`?` wildcards.
    #[serde(default)]
    pub rule_names: Vec<String>,
}

impl PolicyException {
    /// Kyverno's key of the exception, as its skip message names it: `namespace/name`,
    /// or `name` without namespace.
    pub fn key(&self) -> String {
        match self
            .metadata
            .namespace
            .as_deref()
            .filter(|ns| !ns.is_empty())
        {
            Some(ns) => format!("{ns}/{}", self.metadata.name),
            None => self.metadata.name.clone(),
        }
    }

    /// Whether the exception names rule `rule` of the policy with key `policy_key`
    /// (see [`policy_key`]).
    pub fn contains(&self, policy_key: &str, rule: &str) -> bool {
        self.spec.exceptions.iter().any(|e| {
            e.policy_name == policy_key && e.rule_names.iter().any(|r| wildcard_match(r, rule))
        })
    }

    /// Whether the exception covers `resource`: its `match` holds and its conditions
    /// pass in `context` (the request variables). A condition that cannot be evaluated
    /// means no exception.
    pub fn covers(
        &self,
        resource: &Value,
        match_context: &MatchContext,
        context: &Context,
    ) -> bool {
        if !exception_matches(&self.spec.match_, resource, match_context) {
            return false;
        }
        match &self.spec.conditions {
            None => true,
            Some(block) => {
                conditions::evaluate(std::slice::from_ref(block), context).is_ok_and(|r| r.passed)
            }
        }
    }
}

/// The key by which exceptions name a policy: `name` for a `ClusterPolicy`,
/// `namespace/name` for a namespaced `Policy` (Kyverno's `cache.MetaObjectToName`).
pub fn policy_key(policy: &Policy) -> String {
    match policy
        .namespace()
        .filter(|ns| !ns.is_empty() && !policy.is_cluster_policy())
    {
        Some(ns) => format!("{ns}/{}", policy.name()),
        None => policy.name().to_owned(),
    }
}

/// Kyverno's message for a rule skipped because of `exceptions` (their keys), exactly as
/// Kyverno's verifyImages handlers write it: no separator after "exceptions"
/// (`pkg/engine/handlers/validation/validate_image.go`).
pub fn skip_message<'a>(exceptions: impl IntoIterator<Item = &'a PolicyException>) -> String {
    let keys: Vec<String> = exceptions.into_iter().map(PolicyException::key).collect();
    format!(
        "rule is skipped due to policy exceptions{}",
        keys.join(", ")
    )
}
