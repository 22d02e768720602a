//! `policies.kyverno.io` `PolicyException` (v1beta1; v1alpha1 and v1 accepted): which
//! CEL policies (`policyRefs[{name, kind}]`) a request is exempt from, when all of its
//! `matchConditions` (CEL over `object`, `oldObject`, `request`, `namespaceObject`) hold
//! (Kyverno `api/policies.kyverno.io/v1beta1/policy_exception_types.go`,
//! `pkg/cel/engine/exception.go`, `pkg/image/verification/evaluator/policy.go`).
//!
//! As in Kyverno: an exception names a policy by kind and name only (the namespace of a
//! NamespacedImageValidatingPolicy is not compared), an expired one (`expiresAt` in the
//! past) is ignored, one without `matchConditions` covers every request the policy
//! matches, and a matching exception skips the whole policy — verification and the
//! `mutateDigest` patch — with `rule is skipped due to policy exception: <keys>`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::check::{Scope, check};
use super::library;
use super::model::{Metadata, NamedExpression};
use super::program::Program;
use crate::error::FieldError;

/// The kind of the document.
pub const KIND: &str = "PolicyException";

/// The `apiVersion`s of `policies.kyverno.io` PolicyExceptions imagegate reads.
pub const API_VERSIONS: [&str; 3] = [
    "policies.kyverno.io/v1beta1",
    "policies.kyverno.io/v1alpha1",
    "policies.kyverno.io/v1",
];

/// Variables an exception's `matchConditions` may read.
const MATCH_ROOTS: &[&str] = &["object", "oldObject", "request", "namespaceObject"];

/// A `policies.kyverno.io` PolicyException document.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CelPolicyException {
    /// One of [`API_VERSIONS`].
    #[serde(default)]
    pub api_version: String,
    /// [`KIND`].
    #[serde(default)]
    pub kind: String,
    /// Name and namespace make its key.
    #[serde(default)]
    pub metadata: Metadata,
    /// The exception.
    #[serde(default)]
    pub spec: CelExceptionSpec,
}

/// `spec` of a `policies.kyverno.io` PolicyException.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct CelExceptionSpec {
    /// The policies excepted.
    #[serde(default)]
    pub policy_refs: Vec<PolicyRef>,
    /// CEL conditions that must all hold for the request to be exempt.
    #[serde(default)]
    pub match_conditions: Vec<NamedExpression>,
    /// RFC 3339 time after which the exception no longer applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Images for `exceptions.allowedImages` (ValidatingPolicy CEL; kept, not read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Values for `exceptions.allowedValues` (kept, not read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_values: Vec<String>,
    /// `skip` (default) or `pass` in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_result: Option<String>,
    /// Everything else Kyverno's type has (`evaluationMode`, `properties`): kept. Not in
    /// the generated schema: its object keeps unknown fields anyway.
    #[serde(flatten)]
    #[cfg_attr(feature = "schema", schemars(skip))]
    pub other: serde_json::Map<String, Value>,
}

/// One `policyRefs[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PolicyRef {
    /// The policy's name.
    #[serde(default)]
    pub name: String,
    /// The policy's kind (`ImageValidatingPolicy`, `NamespacedImageValidatingPolicy`, …).
    #[serde(default)]
    pub kind: String,
}

/// A validated exception with its `matchConditions` compiled.
#[derive(Debug, Clone)]
pub struct CompiledCelException {
    /// The exception as written.
    pub exception: CelPolicyException,
    pub(crate) match_conditions: Vec<(String, Program)>,
    expires_at: Option<jiff::Timestamp>,
}

impl PartialEq for CompiledCelException {
    /// Programs are a function of the source: equal sources compile alike.
    fn eq(&self, other: &Self) -> bool {
        self.exception == other.exception
    }
}

impl CompiledCelException {
    /// Kyverno's key (`namespace/name`, or `name`), as skip messages name it.
    pub fn key(&self) -> String {
        match self
            .exception
            .metadata
            .namespace
            .as_deref()
            .filter(|ns| !ns.is_empty())
        {
            Some(ns) => format!("{ns}/{}", self.exception.metadata.name),
            None => self.exception.metadata.name.clone(),
        }
    }

    /// Whether a `policyRefs` entry names the policy of `kind` and `name`.
    pub fn refers_to(&self, kind: &str, name: &str) -> bool {
        self.exception
            .spec
            .policy_refs
            .iter()
            .any(|r| r.kind == kind && r.name == name)
    }

    /// Whether `expiresAt` is at or before `now`.
    pub fn is_expired(&self, now: jiff::Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Kyverno's message for a policy skipped because of the exceptions with `keys`.
pub fn skip_message(keys: &[String]) -> String {
    format!(
        "rule is skipped due to policy exception: {}",
        keys.join(", ")
    )
}

/// Validates and compiles one `policies.kyverno.io` PolicyException document; every
/// problem is returned with its field path.
pub fn compile_exception_document(value: &Value) -> Result<CompiledCelException, Vec<FieldError>> {
    let exception: CelPolicyException = serde_json::from_value(value.clone()).map_err(|e| {
        vec![FieldError::new(
            "spec",
            format!("does not match the schema: {e}"),
        )]
    })?;
    compile_exception(exception)
}

/// Validates and compiles a typed exception.
pub fn compile_exception(
    exception: CelPolicyException,
) -> Result<CompiledCelException, Vec<FieldError>> {
    let mut errors = Vec::new();
    if !API_VERSIONS.contains(&exception.api_version.as_str()) {
        errors.push(FieldError::new(
            "apiVersion",
            format!(
                "unsupported apiVersion '{}' (expected one of {})",
                exception.api_version,
                API_VERSIONS.join(", ")
            ),
        ));
    }
    if exception.kind != KIND {
        errors.push(FieldError::new("kind", format!("expected {KIND}")));
    }
    if exception.metadata.name.is_empty() {
        errors.push(FieldError::new("metadata.name", "a name is required"));
    }
    if exception.spec.policy_refs.is_empty() {
        errors.push(FieldError::new("spec.policyRefs", "Required value"));
    }
    for (i, r) in exception.spec.policy_refs.iter().enumerate() {
        if r.name.is_empty() {
            errors.push(FieldError::new(
                format!("spec.policyRefs[{i}].name"),
                "Required value",
            ));
        }
        if r.kind.is_empty() {
            errors.push(FieldError::new(
                format!("spec.policyRefs[{i}].kind"),
                "Required value",
            ));
        }
    }
    let expires_at = match exception.spec.expires_at.as_deref() {
        None => None,
        Some(text) => match text.parse::<jiff::Timestamp>() {
            Ok(at) => Some(at),
            Err(e) => {
                errors.push(FieldError::new(
                    "spec.expiresAt",
                    format!("not an RFC 3339 date-time: {e}"),
                ));
                None
            }
        },
    };
    let scope = Scope {
        roots: MATCH_ROOTS,
        variables: &[],
        attestors: &[],
        attestations: &[],
        images: None,
    };
    let mut match_conditions = Vec::new();
    for (i, m) in exception.spec.match_conditions.iter().enumerate() {
        let path = format!("spec.matchConditions[{i}].expression");
        if m.name.is_empty() {
            errors.push(FieldError::new(
                format!("spec.matchConditions[{i}].name"),
                "Required value",
            ));
        }
        match library::compile(&m.expression) {
            Err(e) => errors.push(FieldError::new(path, format!("compilation failed: {e}"))),
            Ok(program) => {
                let (problems, used) = check(program.expression(), &scope);
                if problems.is_empty() {
                    match_conditions.push((
                        m.name.clone(),
                        Program {
                            path,
                            program: Arc::new(program),
                            reads: used.variables,
                        },
                    ));
                } else {
                    errors.extend(problems.into_iter().map(|p| FieldError::new(&path, p)));
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(CompiledCelException {
        exception,
        match_conditions,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(conditions: Value) -> Value {
        json!({
            "apiVersion": "policies.kyverno.io/v1beta1", "kind": "PolicyException",
            "metadata": {"name": "allow", "namespace": "exceptions"},
            "spec": {
                "policyRefs": [{"name": "check", "kind": "ImageValidatingPolicy"}],
                "matchConditions": conditions,
                "expiresAt": "2030-01-01T00:00:00Z",
            },
        })
    }

    #[test]
    fn compiles_and_names_its_policies() {
        let e = compile_exception_document(&doc(json!([
            {"name": "ns", "expression": "object.metadata.namespace == 'legacy'"}
        ])))
        .unwrap();
        assert_eq!(e.key(), "exceptions/allow");
        assert!(e.refers_to("ImageValidatingPolicy", "check"));
        assert!(!e.refers_to("NamespacedImageValidatingPolicy", "check"));
        assert!(!e.refers_to("ImageValidatingPolicy", "other"));
        let before: jiff::Timestamp = "2029-12-31T23:59:59Z".parse().unwrap();
        let after: jiff::Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        assert!(!e.is_expired(before));
        assert!(e.is_expired(after));
        assert_eq!(
            skip_message(&["a/b".into(), "c".into()]),
            "rule is skipped due to policy exception: a/b, c"
        );
    }

    #[test]
    fn errors_carry_field_paths() {
        let errors = compile_exception_document(&doc(json!([
            {"name": "bad", "expression": "object.metadata.("},
            {"name": "unknown", "expression": "images.containers.size() > 0"}
        ])))
        .unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.matchConditions[0].expression",
                "spec.matchConditions[1].expression"
            ],
            "{errors:?}"
        );
        let mut no_refs = doc(json!([]));
        no_refs["spec"]["policyRefs"] = json!([]);
        no_refs["spec"]["expiresAt"] = json!("tomorrow");
        let errors = compile_exception_document(&no_refs).unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["spec.policyRefs", "spec.expiresAt"], "{errors:?}");
    }
}
