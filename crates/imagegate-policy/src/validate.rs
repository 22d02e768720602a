//! Kyverno's validation rules for policies with `verifyImages`, reported with
//! path-qualified messages (`spec.rules[0].verifyImages[1].attestors[0].count: must be
//! <= number of entries (2)`). Every finding of a policy is returned at once.
//!
//! Two passes:
//! - [`validate_document`] checks the raw document (a `serde_json::Value`) for fields
//!   whose wrong *value* would otherwise surface as an unlocated type error: enum fields
//!   (`validationFailureAction`, `failureAction`, `failurePolicy`, `type`, selector
//!   operators) and attestor-set `count`s;
//! - [`validate`] checks a typed [`Policy`] (as written, or already normalised: legacy
//!   fields are converted on a copy, as Kyverno validates `Convert()`'s result).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::conditions::has_variables;
use crate::error::FieldError;
use crate::exception::{self, PolicyException};
use crate::model::{
    AnyAllConditions, Attestor, AttestorSet, FailureAction, ImageVerification, MatchResources,
    Policy, ResourceDescription, VerificationType, convert_legacy,
};

/// Longest rule name Kyverno accepts.
pub const MAX_RULE_NAME_LEN: usize = 63;

/// Condition operators Kyverno accepts (compared case-insensitively, as Kyverno does).
pub const CONDITION_OPERATORS: &[&str] = &[
    "Equals",
    "NotEquals",
    "Equal",
    "NotEqual",
    "In",
    "AnyIn",
    "AllIn",
    "NotIn",
    "AnyNotIn",
    "AllNotIn",
    "GreaterThanOrEquals",
    "GreaterThan",
    "LessThanOrEquals",
    "LessThan",
    "DurationGreaterThanOrEquals",
    "DurationGreaterThan",
    "DurationLessThanOrEquals",
    "DurationLessThan",
];

const SIGNATURE_ALGORITHMS: &[&str] = &["sha224", "sha256", "sha384", "sha512"];

/// Kyverno's text for Audit with `mutateDigest: true` (Kyverno ≥ 1.10, with its quotes).
pub const MUTATE_DIGEST_AUDIT: &str =
    "mutateDigest must be set to false for ‘Audit’ failure action";

/// Kyverno's text for a `{{ }}` variable in `imageReferences` (its rule-level error
/// reads "rule \"R\" should not have variables in image reference section").
pub const IMAGE_REFERENCE_VARIABLES: &str = "variables are not allowed in image reference";

// ---------------------------------------------------------------------------------------
// Pass 1: raw document
// ---------------------------------------------------------------------------------------

/// Checks a raw policy document for enum values and `count`s before typed
/// deserialisation, so that such mistakes get a field path.
pub fn validate_document(doc: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let Some(spec) = doc.get("spec") else {
        return errs;
    };
    check_action(
        spec.get("validationFailureAction"),
        "spec.validationFailureAction",
        &mut errs,
    );
    for (i, o) in array(spec.get("validationFailureActionOverrides")) {
        let path = format!("spec.validationFailureActionOverrides[{i}]");
        check_action(o.get("action"), &format!("{path}.action"), &mut errs);
        check_selector(
            o.get("namespaceSelector"),
            &format!("{path}.namespaceSelector"),
            &mut errs,
        );
    }
    check_exact(
        spec.get("failurePolicy"),
        "spec.failurePolicy",
        &["Fail", "Ignore"],
        &mut errs,
    );
    if let Some(wc) = spec.get("webhookConfiguration") {
        check_exact(
            wc.get("failurePolicy"),
            "spec.webhookConfiguration.failurePolicy",
            &["Fail", "Ignore"],
            &mut errs,
        );
    }
    for (r, rule) in array(spec.get("rules")) {
        let rpath = format!("spec.rules[{r}]");
        check_match_raw(rule.get("match"), &format!("{rpath}.match"), &mut errs);
        check_match_raw(rule.get("exclude"), &format!("{rpath}.exclude"), &mut errs);
        for (v, iv) in array(rule.get("verifyImages")) {
            let ipath = format!("{rpath}.verifyImages[{v}]");
            check_action(
                iv.get("failureAction"),
                &format!("{ipath}.failureAction"),
                &mut errs,
            );
            check_exact(
                iv.get("type"),
                &format!("{ipath}.type"),
                &["Cosign", "SigstoreBundle", "Notary"],
                &mut errs,
            );
            for (s, set) in array(iv.get("attestors")) {
                check_set_raw(set, &format!("{ipath}.attestors[{s}]"), &mut errs);
            }
            for (a, att) in array(iv.get("attestations")) {
                for (s, set) in array(att.get("attestors")) {
                    check_set_raw(
                        set,
                        &format!("{ipath}.attestations[{a}].attestors[{s}]"),
                        &mut errs,
                    );
                }
            }
        }
    }
    errs
}

fn array(value: Option<&Value>) -> impl Iterator<Item = (usize, &Value)> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

fn describe(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        let short: String = text.chars().take(57).collect();
        format!("{short}...")
    } else {
        text
    }
}

fn check_action(value: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    match value {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if FailureAction::parse(s).is_some() => {}
        Some(other) => errs.push(FieldError::new(
            path,
            format!("must be Enforce or Audit, got {}", describe(other)),
        )),
    }
}

fn check_exact(value: Option<&Value>, path: &str, allowed: &[&str], errs: &mut Vec<FieldError>) {
    match value {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if allowed.contains(&s.as_str()) => {}
        Some(other) => errs.push(FieldError::new(
            path,
            format!(
                "must be one of {}, got {}",
                allowed.join(", "),
                describe(other)
            ),
        )),
    }
}

fn check_selector(selector: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(selector) = selector else { return };
    for (i, expr) in array(selector.get("matchExpressions")) {
        check_exact(
            expr.get("operator"),
            &format!("{path}.matchExpressions[{i}].operator"),
            &["In", "NotIn", "Exists", "DoesNotExist"],
            errs,
        );
    }
}

fn check_description_raw(rd: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(rd) = rd else { return };
    check_selector(rd.get("selector"), &format!("{path}.selector"), errs);
    check_selector(
        rd.get("namespaceSelector"),
        &format!("{path}.namespaceSelector"),
        errs,
    );
}

fn check_match_raw(m: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(m) = m else { return };
    for key in ["any", "all"] {
        for (i, filter) in array(m.get(key)) {
            check_description_raw(
                filter.get("resources"),
                &format!("{path}.{key}[{i}].resources"),
                errs,
            );
        }
    }
    check_description_raw(m.get("resources"), &format!("{path}.resources"), errs);
}

fn check_set_raw(set: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match set.get("count") {
        None | Some(Value::Null) => {}
        Some(count) => match (count.as_u64(), count.as_i64()) {
            (Some(n), _) if n >= 1 => {}
            (Some(_), _) | (None, Some(_)) => errs.push(FieldError::new(
                format!("{path}.count"),
                format!("must be >= 1, got {count}"),
            )),
            _ => errs.push(FieldError::new(
                format!("{path}.count"),
                format!("must be an integer >= 1, got {}", describe(count)),
            )),
        },
    }
    for (e, entry) in array(set.get("entries")) {
        if let Some(nested) = entry.get("attestor").filter(|n| n.is_object()) {
            check_set_raw(nested, &format!("{path}.entries[{e}].attestor"), errs);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pass 2: typed policy
// ---------------------------------------------------------------------------------------

/// Checks a typed policy against Kyverno's rules for `verifyImages` policies (and a few
/// of imagegate's, marked in the messages' docs). Returns every finding, in document order;
/// an empty list means the policy is valid.
pub fn validate(policy: &Policy) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if policy.api_version.is_empty() {
        errs.push(FieldError::new("apiVersion", "is required (kyverno.io/v1)"));
    } else if !policy.api_version.starts_with("kyverno.io/") {
        errs.push(FieldError::new(
            "apiVersion",
            format!("must be kyverno.io/v1, got {:?}", policy.api_version),
        ));
    }
    if policy.metadata.name.is_empty() {
        errs.push(FieldError::new("metadata.name", "is required"));
    }
    let spec = &policy.spec;
    if let Some(t) = spec.webhook_timeout_seconds {
        check_timeout(t, "spec.webhookTimeoutSeconds", &mut errs);
    }
    if let Some(t) = spec
        .webhook_configuration
        .as_ref()
        .and_then(|w| w.timeout_seconds)
    {
        check_timeout(t, "spec.webhookConfiguration.timeoutSeconds", &mut errs);
    }
    if spec.rules.is_empty() {
        errs.push(FieldError::new(
            "spec.rules",
            "at least one rule is required",
        ));
    }
    let mut names = BTreeSet::new();
    for (r, rule) in spec.rules.iter().enumerate() {
        let rpath = format!("spec.rules[{r}]");
        let name_path = format!("{rpath}.name");
        if rule.name.is_empty() {
            errs.push(FieldError::new(&name_path, "is required"));
        } else {
            let len = rule.name.chars().count();
            if len > MAX_RULE_NAME_LEN {
                errs.push(FieldError::new(
                    &name_path,
                    format!("must be no more than {MAX_RULE_NAME_LEN} characters, got {len}"),
                ));
            }
            if !names.insert(rule.name.as_str()) {
                errs.push(FieldError::new(
                    &name_path,
                    format!("duplicate rule name {:?}", rule.name),
                ));
            }
        }

        let mut operations = Vec::new();
        if !rule.verify_images.is_empty() {
            operations.push("verifyImages");
        }
        operations.extend(rule.unsupported_rule_types());
        if operations.is_empty() {
            errs.push(FieldError::new(
                &rpath,
                "no operation defined (one of verifyImages, validate, mutate, generate is required)",
            ));
        } else if operations.len() > 1 {
            errs.push(FieldError::new(
                &rpath,
                format!(
                    "multiple operations defined ({}): only one is allowed per rule",
                    operations.join(", ")
                ),
            ));
        }

        if let Some(entries) = &rule.context {
            errs.extend(crate::context::validate_context(entries, &rpath));
        }
        validate_match(&rule.match_, &format!("{rpath}.match"), true, &mut errs);
        if let Some(exclude) = &rule.exclude {
            validate_match(exclude, &format!("{rpath}.exclude"), false, &mut errs);
        }

        for (v, iv) in rule.verify_images.iter().enumerate() {
            let action = iv
                .failure_action
                .or(spec.validation_failure_action)
                .unwrap_or(FailureAction::Audit);
            validate_image_verification(
                iv,
                action,
                &format!("{rpath}.verifyImages[{v}]"),
                &mut errs,
            );
        }
    }
    errs
}

fn check_timeout(value: i32, path: &str, errs: &mut Vec<FieldError>) {
    if !(1..=30).contains(&value) {
        errs.push(FieldError::new(
            path,
            format!("must be between 1 and 30 seconds, got {value}"),
        ));
    }
}

fn validate_match(
    m: &MatchResources,
    path: &str,
    kinds_required: bool,
    errs: &mut Vec<FieldError>,
) {
    let legacy = m.resources.is_some()
        || !m.subjects.is_empty()
        || !m.roles.is_empty()
        || !m.cluster_roles.is_empty();
    if legacy && (!m.any.is_empty() || !m.all.is_empty()) {
        errs.push(FieldError::new(
            path,
            "any/all cannot be combined with resources, subjects, roles or clusterRoles",
        ));
    }
    if kinds_required && m.is_empty() {
        errs.push(FieldError::new(
            path,
            "at least one resource filter with kinds is required (any, all or resources)",
        ));
        return;
    }
    if legacy {
        let rd = m.resources.clone().unwrap_or_default();
        validate_description(&rd, &format!("{path}.resources"), kinds_required, errs);
    }
    for (key, filters) in [("any", &m.any), ("all", &m.all)] {
        for (i, filter) in filters.iter().enumerate() {
            validate_description(
                &filter.resources,
                &format!("{path}.{key}[{i}].resources"),
                kinds_required,
                errs,
            );
        }
    }
}

fn validate_description(
    rd: &ResourceDescription,
    path: &str,
    kinds_required: bool,
    errs: &mut Vec<FieldError>,
) {
    if kinds_required && rd.kinds.is_empty() {
        errs.push(FieldError::new(
            format!("{path}.kinds"),
            "at least one kind is required",
        ));
    }
    for (i, kind) in rd.kinds.iter().enumerate() {
        if kind.trim().is_empty() {
            errs.push(FieldError::new(
                format!("{path}.kinds[{i}]"),
                "must not be empty",
            ));
        }
    }
    if rd.name.is_some() && !rd.names.is_empty() {
        errs.push(FieldError::new(path, "name and names cannot both be set"));
    }
    for (i, op) in rd.operations.iter().enumerate() {
        if !["CREATE", "UPDATE", "DELETE", "CONNECT"].contains(&op.as_str()) {
            errs.push(FieldError::new(
                format!("{path}.operations[{i}]"),
                format!("must be one of CREATE, UPDATE, DELETE, CONNECT, got {op:?}"),
            ));
        }
    }
}

fn validate_image_verification(
    raw: &ImageVerification,
    action: FailureAction,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    let mut iv = raw.clone();
    convert_legacy(&mut iv);

    if action == FailureAction::Audit && iv.mutate_digest {
        errs.push(FieldError::new(
            format!("{path}.mutateDigest"),
            MUTATE_DIGEST_AUDIT,
        ));
    }
    if iv.image_references.is_empty() {
        errs.push(FieldError::new(
            format!("{path}.imageReferences"),
            "at least one image reference is required",
        ));
    }
    if let Some(image) = raw.image.as_deref().filter(|i| !i.is_empty()) {
        check_image_reference(image, &format!("{path}.image"), errs);
    }
    for (i, pattern) in raw.image_references.iter().enumerate() {
        check_image_reference(pattern, &format!("{path}.imageReferences[{i}]"), errs);
    }
    for (i, pattern) in raw.skip_image_references.iter().enumerate() {
        check_image_pattern(pattern, &format!("{path}.skipImageReferences[{i}]"), errs);
    }
    if let Some(repository) = raw.repository.as_deref() {
        check_repository(repository, &format!("{path}.repository"), errs);
    }

    // Notation signatures verify with certificates only (keys and keyless are refused
    // per entry, below).
    let notary = iv.verification_type() == VerificationType::Notary;
    for (s, set) in iv.attestors.iter().enumerate() {
        validate_set(set, &format!("{path}.attestors[{s}]"), notary, errs);
    }
    for (a, attestation) in iv.attestations.iter().enumerate() {
        let apath = format!("{path}.attestations[{a}]");
        if attestation.type_.as_deref().is_none_or(str::is_empty) {
            errs.push(FieldError::new(
                format!("{apath}.type"),
                "missing type (or predicateType)",
            ));
        }
        for (s, set) in attestation.attestors.iter().enumerate() {
            validate_set(set, &format!("{apath}.attestors[{s}]"), notary, errs);
        }
        for (c, conditions) in attestation.conditions.iter().enumerate() {
            validate_conditions(conditions, &format!("{apath}.conditions[{c}]"), errs);
        }
    }
}

/// An `imageReferences` entry (or the legacy `image`): a pattern without variables,
/// which Kyverno refuses there ("variables are not allowed in image reference").
fn check_image_reference(pattern: &str, path: &str, errs: &mut Vec<FieldError>) {
    if has_variables(pattern) {
        errs.push(FieldError::new(path, IMAGE_REFERENCE_VARIABLES));
    } else {
        check_image_pattern(pattern, path, errs);
    }
}

/// An image pattern: a reference with optional `*`/`?` wildcards, or a `{{ }}` variable.
fn check_image_pattern(pattern: &str, path: &str, errs: &mut Vec<FieldError>) {
    if pattern.is_empty() {
        errs.push(FieldError::new(path, "image pattern must not be empty"));
        return;
    }
    if has_variables(pattern) {
        return;
    }
    if pattern.chars().any(|c| c.is_whitespace() || c.is_control()) {
        errs.push(FieldError::new(
            path,
            format!("invalid image pattern {pattern:?}: must not contain whitespace"),
        ));
        return;
    }
    if pattern.contains("://") {
        errs.push(FieldError::new(
            path,
            format!("invalid image pattern {pattern:?}: an image reference has no URL scheme"),
        ));
        return;
    }
    if !pattern.contains(['*', '?'])
        && let Err(e) = imagegate_oci::Reference::parse(pattern)
    {
        errs.push(FieldError::new(
            path,
            format!("invalid image pattern {pattern:?}: {e}"),
        ));
    }
}

fn check_repository(repository: &str, path: &str, errs: &mut Vec<FieldError>) {
    if repository.is_empty() || repository.contains("{{") {
        return;
    }
    if repository
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
        || repository.contains("://")
        || repository.contains(['*', '?'])
    {
        errs.push(FieldError::new(
            path,
            format!("invalid repository {repository:?}: expected REGISTRY/REPOSITORY"),
        ));
    }
}

fn validate_set(set: &AttestorSet, path: &str, notary: bool, errs: &mut Vec<FieldError>) {
    if let Some(count) = set.count {
        if count == 0 {
            errs.push(FieldError::new(
                format!("{path}.count"),
                "must be >= 1, got 0",
            ));
        } else if count > set.entries.len() {
            errs.push(FieldError::new(
                format!("{path}.count"),
                format!("must be <= number of entries ({})", set.entries.len()),
            ));
        }
    }
    if set.entries.is_empty() {
        errs.push(FieldError::new(
            format!("{path}.entries"),
            "at least one entry is required",
        ));
    }
    for (e, entry) in set.entries.iter().enumerate() {
        validate_attestor(entry, &format!("{path}.entries[{e}]"), notary, errs);
    }
}

fn validate_attestor(a: &Attestor, path: &str, notary: bool, errs: &mut Vec<FieldError>) {
    let present: Vec<&str> = [
        ("keys", a.keys.is_some()),
        ("certificates", a.certificates.is_some()),
        ("keyless", a.keyless.is_some()),
        ("attestor", a.attestor.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    match present.len() {
        0 => errs.push(FieldError::new(
            path,
            "one of keys, certificates, keyless or attestor is required",
        )),
        1 => {}
        _ => errs.push(FieldError::new(
            path,
            format!(
                "only one of keys, certificates, keyless or attestor may be set, found {}",
                present.join(", ")
            ),
        )),
    }
    check_signature_algorithm(
        a.signature_algorithm.as_deref(),
        &format!("{path}.signatureAlgorithm"),
        errs,
    );
    if let Some(repository) = a.repository.as_deref() {
        check_repository(repository, &format!("{path}.repository"), errs);
    }

    if let Some(keys) = &a.keys {
        let kpath = format!("{path}.keys");
        if notary {
            errs.push(FieldError::new(
                &kpath,
                "keys are not allowed for type Notary",
            ));
        }
        let has_keys = keys
            .public_keys
            .as_deref()
            .is_some_and(|k| !k.trim().is_empty());
        let has_kms = keys.kms.as_deref().is_some_and(|k| !k.is_empty());
        if !has_keys && !has_kms && keys.secret.is_none() {
            errs.push(FieldError::new(
                &kpath,
                "a public key (publicKeys), kms key or secret is required",
            ));
        }
        if let Some(secret) = &keys.secret {
            if secret.name.is_empty() {
                errs.push(FieldError::new(
                    format!("{kpath}.secret.name"),
                    "is required",
                ));
            }
            if secret.namespace.is_empty() {
                errs.push(FieldError::new(
                    format!("{kpath}.secret.namespace"),
                    "is required",
                ));
            }
        }
        check_signature_algorithm(
            keys.signature_algorithm.as_deref(),
            &format!("{kpath}.signatureAlgorithm"),
            errs,
        );
    }
    if let Some(certs) = &a.certificates {
        let has = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        if !has(&certs.cert) && !has(&certs.cert_chain) {
            errs.push(FieldError::new(
                format!("{path}.certificates"),
                "cert or certChain is required",
            ));
        }
    }
    if let Some(keyless) = &a.keyless {
        let kpath = format!("{path}.keyless");
        if notary {
            errs.push(FieldError::new(
                &kpath,
                "keyless is not allowed for type Notary",
            ));
        }
        let given = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        let has_roots = given(&keyless.roots);
        if keyless.rekor.is_none() && !has_roots {
            errs.push(FieldError::new(&kpath, "either rekor or roots is required"));
        }
        if !has_roots {
            if !given(&keyless.subject) && !given(&keyless.subject_reg_exp) {
                errs.push(FieldError::new(
                    &kpath,
                    "subject or subjectRegExp is required",
                ));
            }
            if !given(&keyless.issuer) && !given(&keyless.issuer_reg_exp) {
                errs.push(FieldError::new(
                    &kpath,
                    "issuer or issuerRegExp is required",
                ));
            }
        }
        for (field, value) in [
            ("subjectRegExp", &keyless.subject_reg_exp),
            ("issuerRegExp", &keyless.issuer_reg_exp),
        ] {
            if let Some(re) = value.as_deref().filter(|r| !r.is_empty())
                && let Err(e) = regex::Regex::new(re)
            {
                let last = e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim()
                    .to_owned();
                errs.push(FieldError::new(
                    format!("{kpath}.{field}"),
                    format!("invalid regular expression {re:?}: {last}"),
                ));
            }
        }
    }
    if let Some(nested) = &a.attestor {
        validate_set(nested, &format!("{path}.attestor"), notary, errs);
    }
}

fn check_signature_algorithm(value: Option<&str>, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(alg) = value.filter(|a| !a.is_empty())
        && !SIGNATURE_ALGORITHMS.contains(&alg)
    {
        errs.push(FieldError::new(
            path,
            format!(
                "invalid signature algorithm {alg:?}: expected sha224, sha256, sha384 or sha512"
            ),
        ));
    }
}

fn validate_conditions(conditions: &AnyAllConditions, path: &str, errs: &mut Vec<FieldError>) {
    for (key, list) in [("any", &conditions.any), ("all", &conditions.all)] {
        for (i, condition) in list.iter().enumerate() {
            let opath = format!("{path}.{key}[{i}].operator");
            if condition.operator.is_empty() {
                errs.push(FieldError::new(opath, "is required"));
            } else if !CONDITION_OPERATORS
                .iter()
                .any(|o| o.eq_ignore_ascii_case(&condition.operator))
            {
                errs.push(FieldError::new(
                    opath,
                    format!("unknown operator {:?}", condition.operator),
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// PolicyExceptions
// ---------------------------------------------------------------------------------------

/// Pass 1 for a raw `PolicyException` document: selector operators in `spec.match`.
pub fn validate_exception_document(doc: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    check_match_raw(doc.pointer("/spec/match"), "spec.match", &mut errs);
    errs
}

/// Pass 2 for a typed `PolicyException`: Kyverno's `PolicyException.Validate` (user
/// criteria forbidden unless `background: false`, `any` and `all` not together, a
/// `policyName` in every entry) plus the description and condition checks of policies.
pub fn validate_exception(exception: &PolicyException) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !exception::API_VERSIONS.contains(&exception.api_version.as_str()) {
        errs.push(FieldError::new(
            "apiVersion",
            format!(
                "must be {}, got {:?}",
                exception::API_VERSIONS.join(" or "),
                exception.api_version
            ),
        ));
    }
    if exception.metadata.name.is_empty() {
        errs.push(FieldError::new("metadata.name", "is required"));
    }
    let spec = &exception.spec;
    let m = &spec.match_;
    if m.resources.is_some()
        || !m.subjects.is_empty()
        || !m.roles.is_empty()
        || !m.cluster_roles.is_empty()
    {
        errs.push(FieldError::new(
            "spec.match",
            "only any and all are allowed in a PolicyException (not resources, subjects, roles or clusterRoles)",
        ));
    }
    if !m.any.is_empty() && !m.all.is_empty() {
        errs.push(FieldError::new(
            "spec.match",
            "Can't specify any and all together",
        ));
    }
    validate_match(m, "spec.match", false, &mut errs);
    if spec.background.unwrap_or(true) {
        for (key, filters) in [("any", &m.any), ("all", &m.all)] {
            for (i, filter) in filters.iter().enumerate() {
                for (field, empty) in [
                    ("roles", filter.roles.is_empty()),
                    ("clusterRoles", filter.cluster_roles.is_empty()),
                    ("subjects", filter.subjects.is_empty()),
                ] {
                    if !empty {
                        errs.push(FieldError::new(
                            format!("spec.match.{key}[{i}].{field}"),
                            "usage of user info is forbidden unless background is false",
                        ));
                    }
                }
            }
        }
    }
    if let Some(conditions) = &spec.conditions {
        validate_conditions(conditions, "spec.conditions", &mut errs);
    }
    for (i, entry) in spec.exceptions.iter().enumerate() {
        if entry.policy_name.is_empty() {
            errs.push(FieldError::new(
                format!("spec.exceptions[{i}].policyName"),
                "An exception requires a policy name",
            ));
        }
    }
    errs
}
