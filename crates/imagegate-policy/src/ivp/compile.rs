//! Loading one ImageValidatingPolicy document: typed deserialisation, Kyverno's structural
//! rules with path-qualified errors, and compilation of every CEL expression (once, at
//! load) with the static checks of [`super::check`]. Autogen variants for pod controllers
//! are compiled here too.

use std::collections::BTreeSet;
use std::sync::Arc;

use regex::Regex;
use serde_json::Value;

use super::autogen;
use super::check::{Scope, Uses, check};
use super::exception::CompiledCelException;
use super::library;
use super::model::{
    API_VERSIONS, Attestor, ImageValidatingPolicy, KIND_CLUSTER, KIND_NAMESPACED,
    NamedRuleWithOperations, Spec, StringOrExpression, ValidationAction,
};
use crate::error::FieldError;

/// Variables of admission expressions (Kubernetes mode).
const K8S_ROOTS: &[&str] = &[
    "object",
    "oldObject",
    "request",
    "namespaceObject",
    "variables",
    "images",
    "attestors",
    "attestations",
];
/// Variables of JSON-mode expressions.
const JSON_ROOTS: &[&str] = &["object", "variables", "images", "attestors", "attestations"];
/// Variables of `matchConditions` (evaluated before images and variables exist).
const MATCH_ROOTS: &[&str] = &["object", "oldObject", "request", "namespaceObject"];
/// Variables of image extractors and attestor expressions.
const EXTRACTOR_ROOTS: &[&str] = &[
    "object",
    "oldObject",
    "request",
    "namespaceObject",
    "variables",
];
/// Variable of `matchImageReferences[].expression`.
const IMAGE_REF_ROOTS: &[&str] = &["ref"];

/// Most `matchConditions` Kubernetes allows.
const MAX_MATCH_CONDITIONS: usize = 64;

pub(crate) use super::program::Program;

/// A compiled validation.
#[derive(Debug, Clone)]
pub(crate) struct CompiledValidation {
    pub expression: Program,
    pub message: Option<String>,
    pub message_expression: Option<Program>,
    pub reason: Option<String>,
}

/// A compiled `matchImageReferences` entry.
#[derive(Debug, Clone)]
pub(crate) enum ImageMatcher {
    Glob(String),
    Cel(Program),
}

/// A compiled attestor value given by expression (key, certificate, chain, notary certs).
#[derive(Debug, Clone)]
pub(crate) struct AttestorExpression {
    /// Index into `spec.attestors`.
    pub attestor: usize,
    /// Which field.
    pub field: AttestorField,
    pub program: Program,
}

/// Fields of an attestor that may be given as a CEL expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttestorField {
    CosignKey,
    CosignCertificate,
    CosignCertificateChain,
    NotaryCerts,
    NotaryTsaCerts,
}

/// One compiled spec: the policy's own, or one autogen variant.
#[derive(Debug)]
pub(crate) struct CompiledSpec {
    /// `None` for the policy's own spec, `defaults`/`cronjobs` for autogen variants.
    pub autogen: Option<String>,
    /// The spec (rewritten for autogen variants).
    pub spec: Spec,
    pub match_conditions: Vec<(String, Program)>,
    pub variables: Vec<(String, Program)>,
    pub validations: Vec<CompiledValidation>,
    pub audit_annotations: Vec<(String, Program)>,
    pub image_refs: Vec<ImageMatcher>,
    pub extractors: Vec<(String, Program)>,
    pub attestor_expressions: Vec<AttestorExpression>,
    pub attestor_names: Vec<String>,
    pub attestation_names: Vec<String>,
    /// Verifications the expressions may ask for.
    pub uses: Uses,
}

/// A loaded, validated and compiled ImageValidatingPolicy or
/// NamespacedImageValidatingPolicy, ready for [`CompiledIvp::plan`] and
/// [`CompiledIvp::evaluate`].
#[derive(Debug, Clone)]
pub struct CompiledIvp {
    /// The policy as written.
    pub policy: ImageValidatingPolicy,
    /// The policy's spec first, then its autogen variants.
    pub(crate) specs: Vec<Arc<CompiledSpec>>,
    /// The `policies.kyverno.io` PolicyExceptions that name this policy.
    pub(crate) exceptions: Vec<Arc<CompiledCelException>>,
}

impl PartialEq for CompiledIvp {
    /// Programs are a function of the source: equal sources compile alike.
    fn eq(&self, other: &Self) -> bool {
        self.policy == other.policy && self.exceptions == other.exceptions
    }
}

impl CompiledIvp {
    /// `Kind/name` or `Kind/namespace/name`.
    pub fn display_name(&self) -> String {
        self.policy.display_name()
    }

    /// The autogen variants generated (`defaults`: Deployments, DaemonSets, …;
    /// `cronjobs`), in Kyverno's naming.
    pub fn autogen_variants(&self) -> Vec<String> {
        self.specs
            .iter()
            .filter_map(|s| s.autogen.clone())
            .collect()
    }

    /// This policy consulting those of `exceptions` that name it (by kind and name, as
    /// Kyverno selects them), instead of the ones it had.
    pub fn with_exceptions<'a>(
        &self,
        exceptions: impl IntoIterator<Item = &'a Arc<CompiledCelException>>,
    ) -> CompiledIvp {
        let (kind, name) = (&self.policy.kind, &self.policy.metadata.name);
        CompiledIvp {
            policy: self.policy.clone(),
            specs: self.specs.clone(),
            exceptions: exceptions
                .into_iter()
                .filter(|e| e.refers_to(kind, name))
                .cloned()
                .collect(),
        }
    }

    /// The exceptions this policy consults.
    pub fn exceptions(&self) -> &[Arc<CompiledCelException>] {
        &self.exceptions
    }

    /// The spec of an autogen variant, as Kyverno writes it into the policy status.
    pub fn autogen_spec(&self, variant: &str) -> Option<&Spec> {
        self.specs
            .iter()
            .find(|s| s.autogen.as_deref() == Some(variant))
            .map(|s| &s.spec)
    }
}

/// Validates and compiles one policy document (already known to be one of the two kinds).
/// Every problem is returned, each with its field path.
pub fn compile_document(value: &Value) -> Result<CompiledIvp, Vec<FieldError>> {
    let errors = enum_errors(value);
    if !errors.is_empty() {
        return Err(errors);
    }
    let policy: ImageValidatingPolicy = serde_json::from_value(value.clone()).map_err(|e| {
        vec![FieldError::new(
            "spec",
            format!("does not match the schema: {e}"),
        )]
    })?;
    compile_policy(policy)
}

/// The enumerated fields checked on the raw document, so that a wrong value is reported
/// at its path in the API server's words rather than as a deserialisation error.
fn enum_errors(value: &Value) -> Vec<FieldError> {
    const FIELDS: &[(&str, &[&str])] = &[
        ("validationActions", &["Deny", "Audit", "Warn"]),
        ("failurePolicy", &["Ignore", "Fail"]),
        ("evaluation.mode", &["Kubernetes", "JSON"]),
        ("matchConstraints.matchPolicy", &["Exact", "Equivalent"]),
    ];
    let mut errors = Vec::new();
    for (field, allowed) in FIELDS {
        let pointer = format!("/spec/{}", field.replace('.', "/"));
        let Some(found) = value.pointer(&pointer) else {
            continue;
        };
        let items: Vec<(String, &Value)> = match found {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("spec.{field}[{i}]"), v))
                .collect(),
            other => vec![(format!("spec.{field}"), other)],
        };
        for (path, v) in items {
            let ok = v.is_null() || v.as_str().is_some_and(|s| allowed.contains(&s));
            if !ok {
                let supported = allowed
                    .iter()
                    .map(|a| format!("\"{a}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                errors.push(FieldError::new(
                    path,
                    format!("Unsupported value: {v}: supported values: {supported}"),
                ));
            }
        }
    }
    errors
}

/// Validates and compiles a typed policy.
pub fn compile_policy(policy: ImageValidatingPolicy) -> Result<CompiledIvp, Vec<FieldError>> {
    let mut errors = Vec::new();
    if !API_VERSIONS.contains(&policy.api_version.as_str()) {
        errors.push(FieldError::new(
            "apiVersion",
            format!(
                "unsupported apiVersion '{}' (expected one of {})",
                policy.api_version,
                API_VERSIONS.join(", ")
            ),
        ));
    }
    if policy.kind != KIND_CLUSTER && policy.kind != KIND_NAMESPACED {
        errors.push(FieldError::new(
            "kind",
            format!("expected {KIND_CLUSTER} or {KIND_NAMESPACED}"),
        ));
    }
    if policy.metadata.name.is_empty() {
        errors.push(FieldError::new("metadata.name", "a name is required"));
    }
    validate_spec(&policy.spec, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    let main = compile_spec(&policy.spec, None, &mut errors);
    let mut specs = vec![Arc::new(main)];
    for (variant, spec) in autogen::variants(&policy.spec) {
        let mut variant_errors = Vec::new();
        let compiled = compile_spec(&spec, Some(variant.clone()), &mut variant_errors);
        // The rewrite only moves paths under `object`; an error here is one of the
        // policy's own, already reported for the original spec.
        if variant_errors.is_empty() {
            specs.push(Arc::new(compiled));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(CompiledIvp {
        policy,
        specs,
        exceptions: Vec::new(),
    })
}

fn validate_spec(spec: &Spec, errors: &mut Vec<FieldError>) {
    let mut err = |path: String, message: String| errors.push(FieldError::new(path, message));
    let json_mode = spec.evaluation_mode() == super::model::EvaluationMode::Json;
    match &spec.match_constraints {
        // JSON payloads have no resources to match.
        None if json_mode => {}
        None => err(
            "spec.matchConstraints".into(),
            "a matchConstraints with at least one resource rule is required".into(),
        ),
        Some(m) if m.resource_rules.is_empty() => err(
            "spec.matchConstraints.resourceRules".into(),
            "a matchConstraints with at least one resource rule is required".into(),
        ),
        Some(m) => {
            for (field, rules) in [
                ("resourceRules", &m.resource_rules),
                ("excludeResourceRules", &m.exclude_resource_rules),
            ] {
                for (i, rule) in rules.iter().enumerate() {
                    validate_rule(
                        &format!("spec.matchConstraints.{field}[{i}]"),
                        rule,
                        &mut err,
                    );
                }
            }
            for (field, selector) in [
                ("namespaceSelector", &m.namespace_selector),
                ("objectSelector", &m.object_selector),
            ] {
                for (i, req) in selector
                    .iter()
                    .flat_map(|s| s.match_expressions.iter())
                    .enumerate()
                {
                    let path = format!("spec.matchConstraints.{field}.matchExpressions[{i}]");
                    match req.operator.as_str() {
                        "In" | "NotIn" if req.values.is_empty() => err(
                            format!("{path}.values"),
                            "must be specified when operator is In or NotIn".into(),
                        ),
                        "Exists" | "DoesNotExist" if !req.values.is_empty() => err(
                            format!("{path}.values"),
                            "may not be specified when operator is Exists or DoesNotExist".into(),
                        ),
                        "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                        other => err(
                            format!("{path}.operator"),
                            format!("not a valid selector operator: '{other}'"),
                        ),
                    }
                }
            }
        }
    }
    let actions = &spec.validation_actions;
    let distinct: BTreeSet<_> = actions.iter().collect();
    if distinct.len() != actions.len() {
        err(
            "spec.validationActions".into(),
            "must not contain duplicates".into(),
        );
    }
    if distinct.contains(&ValidationAction::Deny) && distinct.contains(&ValidationAction::Warn) {
        err(
            "spec.validationActions".into(),
            "Deny and Warn may not be used together".into(),
        );
    }
    if let Some(t) = spec.timeout_seconds()
        && !(1..=30).contains(&t)
    {
        err(
            "spec.webhookConfiguration.timeoutSeconds".into(),
            format!("must be between 1 and 30 seconds, not {t}"),
        );
    }
    if spec.match_conditions.len() > MAX_MATCH_CONDITIONS {
        err(
            "spec.matchConditions".into(),
            format!("at most {MAX_MATCH_CONDITIONS} match conditions are allowed"),
        );
    }
    unique_names(
        "spec.matchConditions",
        spec.match_conditions.iter().map(|m| m.name.as_str()),
        &mut err,
    );
    unique_names(
        "spec.variables",
        spec.variables.iter().map(|m| m.name.as_str()),
        &mut err,
    );
    for (i, v) in spec.variables.iter().enumerate() {
        if !is_identifier(&v.name) {
            err(
                format!("spec.variables[{i}].name"),
                format!("'{}' is not a valid CEL identifier", v.name),
            );
        }
    }
    unique_names(
        "spec.images",
        spec.image_extractors.iter().map(|m| m.name.as_str()),
        &mut err,
    );
    unique_names(
        "spec.attestors",
        spec.attestors.iter().map(|m| m.name.as_str()),
        &mut err,
    );
    unique_names(
        "spec.attestations",
        spec.attestations.iter().map(|m| m.name.as_str()),
        &mut err,
    );
    unique_names(
        "spec.auditAnnotations",
        spec.audit_annotations.iter().map(|m| m.key.as_str()),
        &mut err,
    );
    for (i, m) in spec.match_image_references.iter().enumerate() {
        let path = format!("spec.matchImageReferences[{i}]");
        match (&m.glob, &m.expression) {
            (Some(g), None) if !g.is_empty() => {}
            (None, Some(e)) if !e.is_empty() => {}
            (Some(_), Some(_)) => err(path, "only one of glob or expression may be set".into()),
            _ => err(path, "one of glob or expression is required".into()),
        }
    }
    for (i, a) in spec.attestors.iter().enumerate() {
        validate_attestor(&format!("spec.attestors[{i}]"), a, &mut err);
    }
    for (i, a) in spec.attestations.iter().enumerate() {
        let path = format!("spec.attestations[{i}]");
        match (&a.in_toto, &a.referrer) {
            (Some(t), None) | (None, Some(t)) => {
                if t.type_.is_empty() {
                    let field = if a.in_toto.is_some() {
                        "intoto"
                    } else {
                        "referrer"
                    };
                    err(format!("{path}.{field}.type"), "a type is required".into());
                }
            }
            (Some(_), Some(_)) => err(path, "only one of intoto or referrer may be set".into()),
            (None, None) => err(path, "one of intoto or referrer is required".into()),
        }
    }
    if let Some(c) = &spec.credentials {
        for (i, p) in c.providers.iter().enumerate() {
            if !["default", "amazon", "azure", "google", "github"].contains(&p.as_str()) {
                err(
                    format!("spec.credentials.providers[{i}]"),
                    format!("unsupported value '{p}': default, amazon, azure, google or github"),
                );
            }
        }
    }
    for (i, v) in spec.validations.iter().enumerate() {
        if v.expression.trim().is_empty() {
            err(
                format!("spec.validations[{i}].expression"),
                "an expression is required".into(),
            );
        }
    }
}

fn validate_rule(path: &str, rule: &NamedRuleWithOperations, err: &mut impl FnMut(String, String)) {
    const OPERATIONS: &[&str] = &["CREATE", "UPDATE", "DELETE", "CONNECT", "*"];
    for (i, op) in rule.operations.iter().enumerate() {
        if !OPERATIONS.contains(&op.as_str()) {
            err(
                format!("{path}.operations[{i}]"),
                format!("unsupported value '{op}': CREATE, UPDATE, DELETE, CONNECT or *"),
            );
        }
    }
    for (field, list) in [
        ("operations", &rule.operations),
        ("apiGroups", &rule.api_groups),
        ("apiVersions", &rule.api_versions),
        ("resources", &rule.resources),
    ] {
        if list.is_empty() {
            err(format!("{path}.{field}"), "must not be empty".into());
        }
        if list.len() > 1 && list.iter().any(|x| x == "*") {
            err(
                format!("{path}.{field}"),
                "if '*' is present, it must be the only entry".into(),
            );
        }
    }
    for (i, r) in rule.resources.iter().enumerate() {
        let parts: Vec<&str> = r.split('/').collect();
        if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
            err(
                format!("{path}.resources[{i}]"),
                format!("'{r}' is not a resource or resource/subresource"),
            );
        }
    }
    if let Some(scope) = &rule.scope
        && !["Cluster", "Namespaced", "*"].contains(&scope.as_str())
    {
        err(
            format!("{path}.scope"),
            format!("unsupported value '{scope}': Cluster, Namespaced or *"),
        );
    }
}

fn validate_attestor(path: &str, a: &Attestor, err: &mut impl FnMut(String, String)) {
    if a.name.is_empty() {
        err(format!("{path}.name"), "a name is required".into());
    } else if !is_identifier(&a.name) {
        err(
            format!("{path}.name"),
            format!("'{}' is not a valid CEL identifier", a.name),
        );
    }
    match (&a.cosign, &a.notary) {
        (Some(c), None) => {
            let path = format!("{path}.cosign");
            let kinds = [
                c.key.is_some(),
                c.keyless.is_some(),
                c.certificate.is_some(),
            ];
            if kinds.iter().filter(|k| **k).count() != 1 {
                err(
                    path.clone(),
                    "exactly one of key, keyless or certificate is required".into(),
                );
            }
            if let Some(k) = &c.key {
                let set = [&k.data, &k.kms, &k.expression]
                    .iter()
                    .filter(|x| x.as_ref().is_some_and(|s| !s.is_empty()))
                    .count();
                if set != 1 {
                    err(
                        format!("{path}.key"),
                        "exactly one of data, kms or expression is required".into(),
                    );
                } else if let Some(kms) = &k.kms {
                    // cosign's Kubernetes Secret reference is read through the cluster;
                    // cloud KMS keys would need their providers' APIs.
                    match kms.trim().strip_prefix("k8s://") {
                        Some(rest) if is_secret_ref(rest) => {}
                        Some(_) => err(
                            format!("{path}.key.kms"),
                            format!("invalid Secret reference '{kms}': expected k8s://NAMESPACE/NAME"),
                        ),
                        None => err(
                            format!("{path}.key.kms"),
                            "KMS keys are not supported by imagegate; give the public key as data or as a k8s://NAMESPACE/NAME Secret"
                                .into(),
                        ),
                    }
                }
                if let Some(h) = &k.hash_algorithm
                    && !["sha224", "sha256", "sha384", "sha512"].contains(&h.as_str())
                {
                    err(
                        format!("{path}.key.hashAlgorithm"),
                        format!("unsupported value '{h}': sha224, sha256, sha384 or sha512"),
                    );
                }
            }
            if let Some(k) = &c.keyless {
                if k.identities.is_empty() {
                    err(
                        format!("{path}.keyless.identities"),
                        "at least one identity is required".into(),
                    );
                }
                for (i, id) in k.identities.iter().enumerate() {
                    let p = format!("{path}.keyless.identities[{i}]");
                    if id.issuer.is_none()
                        && id.issuer_regexp.is_none()
                        && id.subject.is_none()
                        && id.subject_regexp.is_none()
                    {
                        err(p.clone(), "an issuer or subject is required".into());
                    }
                    for (field, re) in [
                        ("issuerRegExp", &id.issuer_regexp),
                        ("subjectRegExp", &id.subject_regexp),
                    ] {
                        if let Some(re) = re
                            && let Err(e) = Regex::new(re)
                        {
                            err(
                                format!("{p}.{field}"),
                                format!("invalid regular expression: {e}"),
                            );
                        }
                    }
                }
            }
            if let Some(cert) = &c.certificate {
                if cert.certificate.is_none() {
                    err(
                        format!("{path}.certificate.cert"),
                        "a certificate is required".into(),
                    );
                }
                for (field, v) in [
                    ("cert", &cert.certificate),
                    ("certChain", &cert.certificate_chain),
                ] {
                    if let Some(v) = v {
                        one_of_value_expression(&format!("{path}.certificate.{field}"), v, err);
                    }
                }
            }
        }
        (None, Some(n)) => {
            match &n.certs {
                None => err(
                    format!("{path}.notary.certs"),
                    "certificates are required".into(),
                ),
                Some(v) => one_of_value_expression(&format!("{path}.notary.certs"), v, err),
            }
            if let Some(v) = &n.tsa_certs {
                one_of_value_expression(&format!("{path}.notary.tsaCerts"), v, err);
            }
        }
        (Some(_), Some(_)) => err(
            path.into(),
            "only one of cosign or notary may be set".into(),
        ),
        (None, None) => err(path.into(), "one of cosign or notary is required".into()),
    }
}

fn one_of_value_expression(
    path: &str,
    v: &StringOrExpression,
    err: &mut impl FnMut(String, String),
) {
    let set = [&v.value, &v.expression]
        .iter()
        .filter(|x| x.as_ref().is_some_and(|s| !s.is_empty()))
        .count();
    if set != 1 {
        err(
            path.into(),
            "exactly one of value or expression is required".into(),
        );
    }
}

fn unique_names<'a>(
    path: &str,
    names: impl Iterator<Item = &'a str>,
    err: &mut impl FnMut(String, String),
) {
    let mut seen = BTreeSet::new();
    for (i, name) in names.enumerate() {
        if name.is_empty() {
            err(format!("{path}[{i}]"), "a name is required".into());
        } else if !seen.insert(name) {
            err(format!("{path}[{i}]"), format!("duplicate name '{name}'"));
        }
    }
}

/// `NAMESPACE/NAME`: two non-empty names.
fn is_secret_ref(s: &str) -> bool {
    matches!(s.split_once('/'), Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/'))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Compiles every expression of `spec`; problems go to `errors`.
fn compile_spec(
    spec: &Spec,
    autogen: Option<String>,
    errors: &mut Vec<FieldError>,
) -> CompiledSpec {
    let attestor_names: Vec<String> = spec.attestors.iter().map(|a| a.name.clone()).collect();
    let attestation_names: Vec<String> = spec.attestations.iter().map(|a| a.name.clone()).collect();
    let variable_names: Vec<String> = spec.variables.iter().map(|v| v.name.clone()).collect();
    let json_mode = spec.evaluation_mode() == super::model::EvaluationMode::Json;
    let roots = if json_mode { JSON_ROOTS } else { K8S_ROOTS };
    // Custom extractors add to the defaults, whose names depend on the request: any
    // `images.<name>` is accepted here.
    let images_scope: Option<&[String]> = None;
    let mut uses = Uses::default();
    let mut compile =
        |path: String, source: &str, scope: &Scope<'_>, uses: &mut Uses| match library::compile(
            source,
        ) {
            Err(e) => {
                errors.push(FieldError::new(path, format!("compilation failed: {e}")));
                None
            }
            Ok(program) => {
                let (problems, used) = check(program.expression(), scope);
                if problems.is_empty() {
                    uses.extend(&used);
                    Some(Program {
                        path,
                        program: Arc::new(program),
                        reads: used.variables,
                    })
                } else {
                    for p in problems {
                        errors.push(FieldError::new(path.clone(), p));
                    }
                    None
                }
            }
        };
    fn full<'a>(
        roots: &'a [&'a str],
        variables: &'a [String],
        attestors: &'a [String],
        attestations: &'a [String],
        images: Option<&'a [String]>,
    ) -> Scope<'a> {
        Scope {
            roots,
            variables,
            attestors,
            attestations,
            images,
        }
    }

    let mut match_conditions = Vec::new();
    let match_scope = Scope {
        roots: if json_mode { &["object"] } else { MATCH_ROOTS },
        variables: &[],
        attestors: &[],
        attestations: &[],
        images: None,
    };
    for (i, m) in spec.match_conditions.iter().enumerate() {
        let path = format!("spec.matchConditions[{i}].expression");
        if let Some(p) = compile(path, &m.expression, &match_scope, &mut uses) {
            match_conditions.push((m.name.clone(), p));
        }
    }
    let mut variables = Vec::new();
    for (i, v) in spec.variables.iter().enumerate() {
        let path = format!("spec.variables[{i}].expression");
        // A variable reads only the variables declared before it.
        if let Some(p) = compile(
            path,
            &v.expression,
            &full(
                roots,
                &variable_names[..i],
                &attestor_names,
                &attestation_names,
                images_scope,
            ),
            &mut uses,
        ) {
            variables.push((v.name.clone(), p));
        }
    }
    let mut validations = Vec::new();
    for (i, v) in spec.validations.iter().enumerate() {
        let path = format!("spec.validations[{i}].expression");
        let expression = compile(
            path,
            &v.expression,
            &full(
                roots,
                &variable_names,
                &attestor_names,
                &attestation_names,
                images_scope,
            ),
            &mut uses,
        );
        let message_expression = v.message_expression.as_deref().and_then(|m| {
            compile(
                format!("spec.validations[{i}].messageExpression"),
                m,
                &full(
                    roots,
                    &variable_names,
                    &attestor_names,
                    &attestation_names,
                    images_scope,
                ),
                &mut uses,
            )
        });
        if let Some(expression) = expression {
            validations.push(CompiledValidation {
                expression,
                message: v.message.clone(),
                message_expression,
                reason: v.reason.clone(),
            });
        }
    }
    let mut audit_annotations = Vec::new();
    for (i, a) in spec.audit_annotations.iter().enumerate() {
        let path = format!("spec.auditAnnotations[{i}].valueExpression");
        if let Some(p) = compile(
            path,
            &a.value_expression,
            &full(
                roots,
                &variable_names,
                &attestor_names,
                &attestation_names,
                images_scope,
            ),
            &mut uses,
        ) {
            audit_annotations.push((a.key.clone(), p));
        }
    }
    let mut image_refs = Vec::new();
    let ref_scope = Scope {
        roots: IMAGE_REF_ROOTS,
        variables: &[],
        attestors: &[],
        attestations: &[],
        images: None,
    };
    for (i, m) in spec.match_image_references.iter().enumerate() {
        if let Some(g) = &m.glob {
            image_refs.push(ImageMatcher::Glob(g.clone()));
        } else if let Some(e) = &m.expression {
            let path = format!("spec.matchImageReferences[{i}].expression");
            if let Some(p) = compile(path, e, &ref_scope, &mut Uses::default()) {
                image_refs.push(ImageMatcher::Cel(p));
            }
        }
    }
    let extractor_scope = Scope {
        roots: if json_mode {
            &["object", "variables"]
        } else {
            EXTRACTOR_ROOTS
        },
        variables: &variable_names,
        attestors: &[],
        attestations: &[],
        images: None,
    };
    let mut extractors = Vec::new();
    for (i, x) in spec.image_extractors.iter().enumerate() {
        let path = format!("spec.images[{i}].expression");
        if let Some(p) = compile(path, &x.expression, &extractor_scope, &mut Uses::default()) {
            extractors.push((x.name.clone(), p));
        }
    }
    let mut attestor_expressions = Vec::new();
    for (i, a) in spec.attestors.iter().enumerate() {
        let mut fields: Vec<(AttestorField, String, &str)> = Vec::new();
        if let Some(c) = &a.cosign {
            if let Some(e) = c.key.as_ref().and_then(|k| k.expression.as_deref()) {
                fields.push((AttestorField::CosignKey, "cosign.key.expression".into(), e));
            }
            if let Some(cert) = &c.certificate {
                if let Some(e) = cert
                    .certificate
                    .as_ref()
                    .and_then(|v| v.expression.as_deref())
                {
                    fields.push((
                        AttestorField::CosignCertificate,
                        "cosign.certificate.cert.expression".into(),
                        e,
                    ));
                }
                if let Some(e) = cert
                    .certificate_chain
                    .as_ref()
                    .and_then(|v| v.expression.as_deref())
                {
                    fields.push((
                        AttestorField::CosignCertificateChain,
                        "cosign.certificate.certChain.expression".into(),
                        e,
                    ));
                }
            }
        }
        if let Some(n) = &a.notary {
            if let Some(e) = n.certs.as_ref().and_then(|v| v.expression.as_deref()) {
                fields.push((
                    AttestorField::NotaryCerts,
                    "notary.certs.expression".into(),
                    e,
                ));
            }
            if let Some(e) = n.tsa_certs.as_ref().and_then(|v| v.expression.as_deref()) {
                fields.push((
                    AttestorField::NotaryTsaCerts,
                    "notary.tsaCerts.expression".into(),
                    e,
                ));
            }
        }
        for (field, sub, source) in fields {
            let path = format!("spec.attestors[{i}].{sub}");
            if let Some(program) = compile(path, source, &extractor_scope, &mut Uses::default()) {
                attestor_expressions.push(AttestorExpression {
                    attestor: i,
                    field,
                    program,
                });
            }
        }
    }
    CompiledSpec {
        autogen,
        spec: spec.clone(),
        match_conditions,
        variables,
        validations,
        audit_annotations,
        image_refs,
        extractors,
        attestor_expressions,
        attestor_names,
        attestation_names,
        uses,
    }
}
