//! Planning and evaluating a compiled ImageValidatingPolicy against one request, in two
//! pure steps around the engine's I/O:
//!
//! 1. [`CompiledIvp::plan`]: match the request (matchConstraints, autogen variant,
//!    matchConditions), extract and filter images, and list what must be verified for
//!    each matched image: the [`Check`]s the expressions can ask for (statically
//!    extracted from `verifyImageSignatures`/`verifyAttestationSignatures` calls), with
//!    attestors whose key/certificates are CEL expressions already evaluated.
//! 2. The engine verifies the plan concurrently, with its caches, into
//!    [`VerificationResults`].
//! 3. [`CompiledIvp::evaluate`]: the same matching, then variables, validations,
//!    messages and audit annotations with CEL reading those results.
//!
//! Then [`enforce_required`] applies `validationConfigurations.required` across the
//! policies of the request, as Kyverno does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cel::{Context, Value as CelValue};
use serde_json::Value;
use wildmatch::WildMatch;

use super::compile::{AttestorField, CompiledIvp, CompiledSpec, ImageMatcher, Program};
use super::library::{self, Bindings};
use super::matching::{RequestAttributes, labels_of, matches_constraints, rule_names_resource};
use super::model::{
    Attestation, Attestor, Credentials, EvaluationMode, FailurePolicy, StringOrExpression,
    ValidationAction,
};
use super::results::{Check, VerificationResults, Verifications};

/// One request as the evaluation sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionInput {
    /// The `AdmissionRequest` (`request` of an AdmissionReview), JSON as Kubernetes sends
    /// it; `object`/`oldObject` are read from it. In JSON mode: the payload itself.
    pub request: Value,
    /// The request's Namespace object, when known (for `namespaceObject` and the
    /// namespace selector).
    pub namespace_object: Option<Value>,
    /// Whether this is an admission request (Kubernetes mode) or a JSON payload.
    pub mode: EvaluationMode,
}

impl AdmissionInput {
    /// An admission request.
    pub fn admission(request: Value, namespace_object: Option<Value>) -> Self {
        Self {
            request,
            namespace_object,
            mode: EvaluationMode::Kubernetes,
        }
    }

    /// A resource applied outside admission (`imagegate apply`/`test`): a `CREATE` of it,
    /// as Kyverno's CLI builds it.
    pub fn from_resource(resource: Value, namespace_object: Option<Value>) -> Self {
        let ObjectType {
            group,
            version,
            kind,
            resource: plural,
        } = ObjectType::of(&resource);
        let name = resource
            .pointer("/metadata/name")
            .cloned()
            .unwrap_or(Value::Null);
        let namespace = resource
            .pointer("/metadata/namespace")
            .cloned()
            .unwrap_or_else(|| Value::String(String::new()));
        let gvr = serde_json::json!({"group": group, "version": version, "resource": plural});
        let request = serde_json::json!({
            "operation": "CREATE",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": gvr.clone(),
            "requestResource": gvr,
            "name": name,
            "namespace": namespace,
            "object": resource,
            "oldObject": null,
            "userInfo": {},
            "dryRun": false,
        });
        Self::admission(request, namespace_object)
    }

    /// A JSON payload for `evaluation.mode: JSON` policies.
    pub fn json(payload: Value) -> Self {
        Self {
            request: payload,
            namespace_object: None,
            mode: EvaluationMode::Json,
        }
    }

    fn attributes(&self) -> RequestAttributes {
        let text = |p: &str| {
            self.request
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        RequestAttributes {
            operation: text("/operation"),
            group: text("/resource/group"),
            version: text("/resource/version"),
            resource: text("/resource/resource"),
            sub_resource: text("/subResource"),
            name: text("/name"),
            namespace: text("/namespace"),
        }
    }

    fn object(&self) -> Option<&Value> {
        match self.mode {
            EvaluationMode::Json => Some(&self.request),
            EvaluationMode::Kubernetes => self.request.get("object").filter(|o| !o.is_null()),
        }
    }

    fn old_object(&self) -> Option<&Value> {
        self.request.get("oldObject").filter(|o| !o.is_null())
    }
}

/// What a request built from an object says the object is.
struct ObjectType<'a> {
    /// API group (`""` for core).
    group: &'a str,
    /// API version.
    version: &'a str,
    /// Kind.
    kind: &'a str,
    /// The plural resource of the kind.
    resource: String,
}

impl<'a> ObjectType<'a> {
    /// Group and version from `apiVersion` (`v1` when absent), the resource from `kind`.
    fn of(object: &'a Value) -> Self {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("v1");
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        ObjectType {
            group,
            version,
            kind,
            resource: resource_of_kind(kind),
        }
    }
}

/// The plural resource of a kind, for requests built from a resource.
fn resource_of_kind(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    match lower.as_str() {
        "" => String::new(),
        "endpoints" => lower,
        k if k.ends_with('s') || k.ends_with('x') => format!("{k}es"),
        k if k.ends_with('y') && !k.ends_with("ey") => format!("{}ies", &k[..k.len() - 1]),
        _ => format!("{lower}s"),
    }
}

/// How the policy came out for the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// matchConstraints or matchConditions do not select the request.
    NotMatched,
    /// Not evaluated (admission disabled, other evaluation mode, or a matchConditions
    /// error under `failurePolicy: Ignore`).
    Skipped {
        /// Why.
        reason: String,
    },
    /// A `policies.kyverno.io` PolicyException covers the request: nothing is verified
    /// or patched.
    Excepted {
        /// The keys (`namespace/name`) of the exceptions that matched.
        exceptions: Vec<String>,
    },
    /// Every validation held.
    Pass,
    /// A validation was false (or an image lacks a digest, or `required` failed).
    Fail {
        /// Kyverno's message.
        message: String,
        /// Index of the failed validation, when a validation failed.
        index: Option<usize>,
        /// The validation's `reason`, when set.
        reason: Option<String>,
    },
    /// An expression could not be evaluated (including a verification that could not be
    /// carried out); `failurePolicy` decides.
    Error {
        /// What failed, with the field path.
        message: String,
    },
}

/// The result of one policy for one request.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyOutcome {
    /// `Kind/name` or `Kind/namespace/name`.
    pub policy: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The autogen variant that matched (`defaults`, `cronjobs`), if any.
    pub autogen: Option<String>,
    /// `validationActions` (default `[Deny]`).
    pub actions: Vec<ValidationAction>,
    /// `failurePolicy` (default `Fail`).
    pub failure_policy: FailurePolicy,
    /// Images selected by `matchImageReferences`, in extraction order.
    pub matched_images: Vec<String>,
    /// Audit annotations produced.
    pub audit_annotations: BTreeMap<String, String>,
    /// Verifications the expressions asked for (evidence for `required`).
    pub verifications: Verifications,
    /// Whether `validationConfigurations.required` applies.
    pub required: bool,
    /// Warnings for the user (e.g. a skipped policy).
    pub warnings: Vec<String>,
}

/// What the engine must verify for one policy and request.
#[derive(Debug, Clone, PartialEq)]
pub struct VerificationPlan {
    /// `Kind/name` of the policy.
    pub policy: String,
    /// Per matched image (as extracted from the resource), the checks to run.
    pub images: Vec<PlannedImage>,
    /// The attestors, with expression-given keys and certificates evaluated.
    pub attestors: Vec<Attestor>,
    /// The attestations.
    pub attestations: Vec<Attestation>,
    /// The policy's registry credentials.
    pub credentials: Option<Credentials>,
    /// Whether `getImageData` is used (fetch image data for every matched image).
    pub image_data: bool,
    /// Matched images without a digest that `mutateDigest` pins (resolve their digest).
    pub mutate_digest: Vec<String>,
}

/// One image of a [`VerificationPlan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedImage {
    /// The image as extracted.
    pub image: String,
    /// The checks to run, sorted.
    pub checks: Vec<Check>,
}

/// Everything matching and image extraction produced.
struct Prepared<'p> {
    spec: &'p CompiledSpec,
    ctx: Context<'static, 'static>,
    matched: Vec<String>,
    outcome: PolicyOutcome,
}

impl CompiledIvp {
    /// Step 1: what must be verified. `Err` carries the final outcome when nothing is to
    /// be verified because the policy does not apply or failed before verification.
    pub fn plan(&self, input: &AdmissionInput) -> Result<VerificationPlan, Box<PolicyOutcome>> {
        let mut prepared = self.prepare(input)?;
        let spec = prepared.spec;
        let mut attestors = spec.spec.attestors.clone();
        // Attestor expressions may read variables; those that need verification results
        // fail here, and only matter if an attestor expression reads them.
        let failed = if spec.attestor_expressions.is_empty() {
            BTreeMap::new()
        } else {
            evaluate_variables(spec, &mut prepared.ctx)
        };
        for x in &spec.attestor_expressions {
            let value =
                match run_checked(&x.program, &prepared.ctx, &failed).and_then(|v| match v {
                    CelValue::String(s) => Ok(s.to_string()),
                    other => Err(format!(
                        "{}: expected a string, got {}",
                        x.program.path,
                        type_name(&other)
                    )),
                }) {
                    Ok(v) => v,
                    Err(message) => {
                        prepared.outcome.verdict = Verdict::Error { message };
                        return Err(Box::new(prepared.outcome));
                    }
                };
            if let Some(a) = attestors.get_mut(x.attestor) {
                set_attestor_value(a, x.field, value);
            }
        }
        let mut checks: Vec<Check> = spec
            .uses
            .signatures
            .iter()
            .map(|a| Check::Signature {
                attestor: a.clone(),
            })
            .chain(
                spec.uses
                    .attestations
                    .iter()
                    .map(|(attestation, attestor)| Check::Attestation {
                        attestor: attestor.clone(),
                        attestation: attestation.clone(),
                    }),
            )
            .collect();
        checks.sort();
        let mutate_digest = if spec.spec.validation_configurations.mutate_digest() {
            prepared
                .matched
                .iter()
                .filter(|i| !i.contains('@'))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        Ok(VerificationPlan {
            policy: self.display_name(),
            images: prepared
                .matched
                .iter()
                .map(|image| PlannedImage {
                    image: image.clone(),
                    checks: checks.clone(),
                })
                .collect(),
            attestors,
            attestations: spec.spec.attestations.clone(),
            credentials: spec.spec.credentials.clone(),
            image_data: spec.uses.image_data,
            mutate_digest,
        })
    }

    /// Whether an admission request to `operation` `object` (on `sub_resource`, empty for
    /// none) may match this policy: whether a resource rule of its spec or of one of its
    /// autogen variants names the operation and the object's group, version and resource,
    /// read as [`AdmissionInput::from_resource`] reads them. Exclusions, resource names,
    /// scope, selectors and matchConditions can only narrow a match and are not read, so
    /// this is cheap (only `apiVersion` and `kind` of the object) and conservative:
    /// `false` means [`Self::plan`] and [`Self::evaluate`] would find the policy not
    /// matching (or skipped), `true` only that they must be asked.
    pub fn may_match(&self, operation: &str, object: &Value, sub_resource: &str) -> bool {
        let object = ObjectType::of(object);
        let request = RequestAttributes {
            operation: operation.to_owned(),
            group: object.group.to_owned(),
            version: object.version.to_owned(),
            resource: object.resource,
            sub_resource: sub_resource.to_owned(),
            ..RequestAttributes::default()
        };
        self.specs.iter().any(|spec| {
            spec.spec.match_constraints.as_ref().is_some_and(|m| {
                m.resource_rules
                    .iter()
                    .any(|rule| rule_names_resource(rule, &request))
            })
        })
    }

    /// Step 3: the outcome, with CEL reading the engine's `results`. `required` is not
    /// applied here: see [`enforce_required`].
    pub fn evaluate(
        &self,
        input: &AdmissionInput,
        results: Arc<dyn VerificationResults + Send + Sync>,
    ) -> PolicyOutcome {
        let prepared = match self.prepare(input) {
            Ok(p) => p,
            Err(outcome) => return *outcome,
        };
        let Prepared {
            spec,
            mut ctx,
            matched,
            mut outcome,
        } = prepared;
        outcome.matched_images = matched.clone();

        if spec.spec.validation_configurations.verify_digest()
            && let Some(image) = matched.iter().find(|i| !has_digest(i))
        {
            outcome.verdict = Verdict::Fail {
                message: format!("image {image} does not have a digest"),
                index: None,
                reason: None,
            };
            return outcome;
        }

        let record = Arc::new(Mutex::new(Verifications::default()));
        let bindings = Arc::new(Bindings {
            attestations: spec.attestation_names.clone(),
            matched: matched.clone(),
            results,
            record: Arc::clone(&record),
        });
        if let Err(e) = library::register_verification(&mut ctx, &bindings) {
            outcome.verdict = Verdict::Error {
                message: format!("CEL library: {e}"),
            };
            return outcome;
        }
        let failed_variables = evaluate_variables(spec, &mut ctx);
        let take_record = |outcome: &mut PolicyOutcome| {
            if let Ok(r) = record.lock() {
                outcome.verifications = r.clone();
            }
        };

        for (i, v) in spec.validations.iter().enumerate() {
            let result = run_checked(&v.expression, &ctx, &failed_variables);
            match result {
                Ok(CelValue::Bool(true)) => {}
                Ok(CelValue::Bool(false)) => {
                    let mut message = v.message.clone().unwrap_or_default();
                    if let Some(m) = &v.message_expression {
                        message = match run_checked(m, &ctx, &failed_variables) {
                            Ok(CelValue::String(s)) => s.to_string(),
                            Ok(other) => format!(
                                "failed to convert message expression to string: got {}",
                                type_name(&other)
                            ),
                            Err(e) => format!("failed to evaluate message expression: {e}"),
                        };
                    }
                    if message.is_empty() {
                        message = format!("CEL expression validation failed at index {i}");
                    }
                    match audit_annotations(spec, &ctx, &failed_variables) {
                        Ok(a) => outcome.audit_annotations = a,
                        Err(message) => {
                            outcome.verdict = Verdict::Error { message };
                            take_record(&mut outcome);
                            return outcome;
                        }
                    }
                    outcome.verdict = Verdict::Fail {
                        message,
                        index: Some(i),
                        reason: v.reason.clone(),
                    };
                    take_record(&mut outcome);
                    return outcome;
                }
                Ok(other) => {
                    outcome.verdict = Verdict::Error {
                        message: format!(
                            "{}: expected a bool, got {}",
                            v.expression.path,
                            type_name(&other)
                        ),
                    };
                    take_record(&mut outcome);
                    return outcome;
                }
                Err(message) => {
                    outcome.verdict = Verdict::Error { message };
                    take_record(&mut outcome);
                    return outcome;
                }
            }
        }
        match audit_annotations(spec, &ctx, &failed_variables) {
            Ok(a) => {
                outcome.audit_annotations = a;
                outcome.verdict = Verdict::Pass;
            }
            Err(message) => outcome.verdict = Verdict::Error { message },
        }
        take_record(&mut outcome);
        outcome
    }

    /// `mutateDigest` patches: for each image of the resource's containers,
    /// initContainers and ephemeralContainers (pod templates included) that the policy
    /// matched and that has no digest, a JSON patch `replace` of the image with
    /// `registry/path:tag@digest` (as Kyverno writes it), `digest_of` giving the digest the engine resolved (and verified).
    /// Images without a resolved digest are returned as errors, not skipped silently.
    pub fn digest_patches(
        &self,
        input: &AdmissionInput,
        digest_of: &dyn Fn(&str) -> Option<String>,
    ) -> (Vec<Value>, Vec<String>) {
        let Ok(prepared) = self.prepare(input) else {
            return (Vec::new(), Vec::new());
        };
        if !prepared.spec.spec.validation_configurations.mutate_digest() {
            return (Vec::new(), Vec::new());
        }
        let Some(object) = input.object() else {
            return (Vec::new(), Vec::new());
        };
        let Ok(found) = crate::images::extract_images(object, None) else {
            return (Vec::new(), Vec::new());
        };
        let mut patches = Vec::new();
        let mut errors = Vec::new();
        for image in found {
            if image.info.digest.is_some() || !prepared.matched.contains(&image.text) {
                continue;
            }
            match digest_of(&image.text) {
                // Kyverno's value: the image's `ImageInfo.String()` (registry, path and
                // tag, `:latest` when none is written) with `@digest`.
                Some(digest) => patches.push(serde_json::json!({
                    "op": "replace",
                    "path": image.pointer,
                    "value": format!("{}@{digest}", image.info.reference),
                })),
                None => errors.push(format!("failed to resolve digest for image {}", image.text)),
            }
        }
        (patches, errors)
    }

    /// Matching and image extraction, shared by [`Self::plan`] and [`Self::evaluate`].
    fn prepare(&self, input: &AdmissionInput) -> Result<Prepared<'_>, Box<PolicyOutcome>> {
        let main = &self.specs[0].spec;
        let mut outcome = PolicyOutcome {
            policy: self.display_name(),
            verdict: Verdict::NotMatched,
            autogen: None,
            actions: main.validation_actions(),
            failure_policy: main.failure_policy(),
            matched_images: Vec::new(),
            audit_annotations: BTreeMap::new(),
            verifications: Verifications::default(),
            required: main.validation_configurations.required(),
            warnings: Vec::new(),
        };
        if main.evaluation_mode() != input.mode {
            outcome.verdict = Verdict::Skipped {
                reason: "the policy's evaluation mode does not apply to this input".into(),
            };
            return Err(Box::new(outcome));
        }
        if input.mode == EvaluationMode::Kubernetes && !main.admission_enabled() {
            outcome.verdict = Verdict::Skipped {
                reason: "admission is disabled for this policy".into(),
            };
            return Err(Box::new(outcome));
        }
        let attrs = input.attributes();
        let object = input.object();
        let old_object = input.old_object();

        let spec: &CompiledSpec = if input.mode == EvaluationMode::Json {
            &self.specs[0]
        } else {
            if self.policy.is_namespaced()
                && self
                    .policy
                    .metadata
                    .namespace
                    .as_deref()
                    .is_some_and(|ns| ns != attrs.namespace)
            {
                return Err(Box::new(outcome));
            }
            let labels = labels_of(if attrs.operation == "DELETE" {
                old_object
            } else {
                object.or(old_object)
            });
            let ns_labels = input.namespace_object.as_ref().map(|n| labels_of(Some(n)));
            match self.specs.iter().find(|s| {
                s.spec
                    .match_constraints
                    .as_ref()
                    .is_some_and(|m| matches_constraints(m, &attrs, &labels, ns_labels.as_ref()))
            }) {
                Some(s) => s,
                None => return Err(Box::new(outcome)),
            }
        };
        outcome.autogen = spec.autogen.clone();

        let mut ctx = match library::base_context() {
            Ok(c) => c,
            Err(message) => {
                outcome.verdict = Verdict::Error { message };
                return Err(Box::new(outcome));
            }
        };
        let to_cel = |v: Option<&Value>| match v {
            Some(v) => cel::to_value(v).unwrap_or(CelValue::Null),
            None => CelValue::Null,
        };
        ctx.add_variable_from_value("object", to_cel(object));
        if input.mode == EvaluationMode::Kubernetes {
            ctx.add_variable_from_value("oldObject", to_cel(old_object));
            ctx.add_variable_from_value("request", to_cel(Some(&input.request)));
            ctx.add_variable_from_value("namespaceObject", to_cel(input.namespace_object.as_ref()));
        }

        for (name, condition) in &spec.match_conditions {
            match run(condition, &ctx) {
                Ok(CelValue::Bool(true)) => {}
                Ok(CelValue::Bool(false)) => return Err(Box::new(outcome)),
                result => {
                    let why = match result {
                        Ok(other) => format!("expected a bool, got {}", type_name(&other)),
                        Err(e) => e,
                    };
                    let message = format!("matchConditions '{name}': {why}");
                    outcome.verdict = match outcome.failure_policy {
                        FailurePolicy::Fail => Verdict::Error { message },
                        FailurePolicy::Ignore => {
                            outcome
                                .warnings
                                .push(format!("policy {} skipped: {message}", outcome.policy));
                            Verdict::Skipped { reason: message }
                        }
                    };
                    return Err(Box::new(outcome));
                }
            }
        }

        // Exceptions are consulted once the policy matches (Kyverno: after its
        // matchConditions, before anything is extracted or verified).
        if !self.exceptions.is_empty() {
            let now = jiff::Timestamp::now();
            let mut excepted = Vec::new();
            for exception in self.exceptions.iter().filter(|e| !e.is_expired(now)) {
                let mut matches = true;
                for (name, condition) in &exception.match_conditions {
                    match run(condition, &ctx) {
                        Ok(CelValue::Bool(true)) => {}
                        Ok(CelValue::Bool(false)) => {
                            matches = false;
                            break;
                        }
                        result => {
                            let why = match result {
                                Ok(other) => format!("expected a bool, got {}", type_name(&other)),
                                Err(e) => e,
                            };
                            outcome.verdict = Verdict::Error {
                                message: format!(
                                    "policy exception {} matchConditions '{name}': {why}",
                                    exception.key()
                                ),
                            };
                            return Err(Box::new(outcome));
                        }
                    }
                }
                if matches {
                    excepted.push(exception.key());
                }
            }
            if !excepted.is_empty() {
                outcome.verdict = Verdict::Excepted {
                    exceptions: excepted,
                };
                return Err(Box::new(outcome));
            }
        }

        // Variables are visible to custom extractors: evaluate them once now, without
        // images (Kyverno's are lazy; one that needs images errors only if read here).
        let images = match self.extract(spec, &attrs, object, old_object, &mut ctx) {
            Ok(i) => i,
            Err(message) => {
                outcome.verdict = Verdict::Error { message };
                return Err(Box::new(outcome));
            }
        };
        let mut filtered: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut matched = Vec::new();
        for (category, list) in &images {
            let entry = filtered.entry(category.clone()).or_default();
            for image in list {
                match image_selected(spec, image) {
                    Ok(true) => {
                        entry.push(image.clone());
                        if !matched.contains(image) {
                            matched.push(image.clone());
                        }
                    }
                    Ok(false) => {}
                    Err(message) => {
                        outcome.verdict = Verdict::Error { message };
                        return Err(Box::new(outcome));
                    }
                }
            }
        }
        outcome.matched_images = matched.clone();
        ctx.add_variable_from_value("images", library::images_value(&filtered));
        ctx.add_variable_from_value("attestors", library::attestors_value(&spec.attestor_names));
        ctx.add_variable_from_value(
            "attestations",
            library::attestations_value(&spec.attestation_names),
        );
        Ok(Prepared {
            spec,
            ctx,
            matched,
            outcome,
        })
    }

    /// The `images` of the request: the defaults for the request's resource, then the
    /// policy's own extractors (which replace a default of the same name).
    fn extract(
        &self,
        spec: &CompiledSpec,
        attrs: &RequestAttributes,
        object: Option<&Value>,
        old_object: Option<&Value>,
        ctx: &mut Context<'static, 'static>,
    ) -> Result<BTreeMap<String, Vec<String>>, String> {
        let mut out = BTreeMap::new();
        let source = object.or(old_object);
        if attrs.group.is_empty() || !attrs.resource.is_empty() {
            let base: Option<&[&str]> = match (attrs.group.as_str(), attrs.resource.as_str()) {
                ("", "pods") => Some(&["spec"]),
                ("apps", "deployments" | "statefulsets" | "daemonsets" | "replicasets")
                | ("batch", "jobs") => Some(&["spec", "template", "spec"]),
                ("batch", "cronjobs") => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
                _ => None,
            };
            if let Some(base) = base {
                for field in ["containers", "initContainers", "ephemeralContainers"] {
                    out.insert(field.to_owned(), default_images(source, base, field)?);
                }
            }
        }
        if !spec.extractors.is_empty() {
            let failed = evaluate_variables(spec, ctx);
            for (name, program) in &spec.extractors {
                let value = run_checked(program, ctx, &failed)?;
                out.insert(name.clone(), string_list(&value, &program.path)?);
            }
        }
        Ok(out)
    }
}

/// `object.spec.<…>.<field>.map(e, e.image)` with `?` on the field, in Rust.
fn default_images(
    source: Option<&Value>,
    base: &[&str],
    field: &str,
) -> Result<Vec<String>, String> {
    let mut node = match source {
        Some(v) => v,
        None => return Err("no such key: object is null".into()),
    };
    for key in base {
        node = node.get(key).ok_or_else(|| format!("no such key: {key}"))?;
    }
    match node.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|c| match c.get("image") {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(format!("{field}[].image is not a string")),
                None => Err("no such key: image".into()),
            })
            .collect(),
        Some(_) => Err(format!("{field} is not a list")),
    }
}

fn string_list(value: &CelValue, path: &str) -> Result<Vec<String>, String> {
    match value {
        CelValue::List(items) => items
            .iter()
            .map(|v| match v {
                CelValue::String(s) => Ok(s.to_string()),
                other => Err(format!(
                    "{path}: output is expected to be of type list(string), found an element of type {}",
                    type_name(other)
                )),
            })
            .collect(),
        other => Err(format!(
            "{path}: output is expected to be of type list(string), got {}",
            type_name(other)
        )),
    }
}

fn image_selected(spec: &CompiledSpec, image: &str) -> Result<bool, String> {
    if spec.image_refs.is_empty() {
        return Ok(true);
    }
    for matcher in &spec.image_refs {
        let hit = match matcher {
            ImageMatcher::Glob(g) => WildMatch::new(g).matches(image),
            ImageMatcher::Cel(program) => {
                let mut ctx = library::base_context()?;
                ctx.add_variable_from_value("ref", image.to_owned());
                match run(program, &ctx)? {
                    CelValue::Bool(b) => b,
                    other => {
                        return Err(format!(
                            "{}: expected a bool, got {}",
                            program.path,
                            type_name(&other)
                        ));
                    }
                }
            }
        };
        if hit {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Evaluates the variables in order into `variables`; returns those that failed, with
/// their error (an expression reading one of them reports that error).
fn evaluate_variables(
    spec: &CompiledSpec,
    ctx: &mut Context<'static, 'static>,
) -> BTreeMap<String, String> {
    let mut values: Vec<(String, CelValue)> = Vec::new();
    let mut failed = BTreeMap::new();
    ctx.add_variable_from_value("variables", library::string_map(Vec::new()));
    for (name, program) in &spec.variables {
        match run_checked(program, ctx, &failed) {
            Ok(v) => values.push((name.clone(), v)),
            Err(e) => {
                failed.insert(name.clone(), e);
            }
        }
        ctx.add_variable_from_value("variables", library::string_map(values.clone()));
    }
    failed
}

fn audit_annotations(
    spec: &CompiledSpec,
    ctx: &Context<'static, 'static>,
    failed: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (key, program) in &spec.audit_annotations {
        match run_checked(program, ctx, failed) {
            Ok(CelValue::String(s)) if !s.is_empty() => {
                out.insert(key.clone(), s.to_string());
            }
            Ok(CelValue::String(_) | CelValue::Null) => {}
            Ok(other) => {
                return Err(format!(
                    "failed to convert auditAnnotation '{key}' expression: got {}",
                    type_name(&other)
                ));
            }
            Err(e) => return Err(format!("failed to evaluate auditAnnotation '{key}': {e}")),
        }
    }
    Ok(out)
}

/// Runs `program`; an error names the expression's field path.
fn run(program: &Program, ctx: &Context<'static, 'static>) -> Result<CelValue, String> {
    program
        .program
        .execute(ctx)
        .map_err(|e| format!("{}: {e}", program.path))
}

/// Like [`run`], but reports the error of a failed variable the program reads.
fn run_checked(
    program: &Program,
    ctx: &Context<'static, 'static>,
    failed: &BTreeMap<String, String>,
) -> Result<CelValue, String> {
    if let Some((name, e)) = failed.iter().find(|(n, _)| program.reads.contains(*n)) {
        return Err(format!("{}: variables.{name}: {e}", program.path));
    }
    run(program, ctx)
}

fn set_attestor_value(a: &mut Attestor, field: AttestorField, value: String) {
    let literal = || StringOrExpression {
        value: Some(value.clone()),
        expression: None,
    };
    match field {
        AttestorField::CosignKey => {
            if let Some(k) = a.cosign.as_mut().and_then(|c| c.key.as_mut()) {
                k.data = Some(value.clone());
                k.expression = None;
            }
        }
        AttestorField::CosignCertificate => {
            if let Some(c) = a.cosign.as_mut().and_then(|c| c.certificate.as_mut()) {
                c.certificate = Some(literal());
            }
        }
        AttestorField::CosignCertificateChain => {
            if let Some(c) = a.cosign.as_mut().and_then(|c| c.certificate.as_mut()) {
                c.certificate_chain = Some(literal());
            }
        }
        AttestorField::NotaryCerts => {
            if let Some(n) = a.notary.as_mut() {
                n.certs = Some(literal());
            }
        }
        AttestorField::NotaryTsaCerts => {
            if let Some(n) = a.notary.as_mut() {
                n.tsa_certs = Some(literal());
            }
        }
    }
}

fn has_digest(image: &str) -> bool {
    image.contains('@')
}

fn type_name(v: &CelValue) -> &'static str {
    match v {
        CelValue::List(_) => "list",
        CelValue::Map(_) => "map",
        CelValue::Function(..) => "function",
        CelValue::Int(_) => "int",
        CelValue::UInt(_) => "uint",
        CelValue::Float(_) => "double",
        CelValue::String(_) => "string",
        CelValue::Bytes(_) => "bytes",
        CelValue::Bool(_) => "bool",
        CelValue::Duration(_) => "duration",
        CelValue::Timestamp(_) => "timestamp",
        CelValue::Opaque(_) => "opaque",
        CelValue::Struct(_) => "struct",
        CelValue::Null => "null",
    }
}

/// Applies `validationConfigurations.required` across the outcomes of one request
/// (Kyverno 1.19): a passing policy with `required` fails unless each of its matched
/// images passed a signature or attestation verification in some policy of the request.
pub fn enforce_required(outcomes: &mut [PolicyOutcome]) {
    let mut all = Verifications::default();
    for o in outcomes.iter() {
        all.merge(&o.verifications);
    }
    for o in outcomes.iter_mut() {
        if o.verdict != Verdict::Pass || !o.required {
            continue;
        }
        for image in &o.matched_images {
            match all.images.get(image) {
                Some(true) => {}
                Some(false) => {
                    o.verdict = Verdict::Fail {
                        message: format!(
                            "image {image} failed signature or attestation verification"
                        ),
                        index: None,
                        reason: None,
                    };
                    break;
                }
                None => {
                    o.verdict = Verdict::Fail {
                        message: format!(
                            "image {image} is not verified: no policy performed a signature or attestation check on it"
                        ),
                        index: None,
                        reason: None,
                    };
                    break;
                }
            }
        }
    }
}
