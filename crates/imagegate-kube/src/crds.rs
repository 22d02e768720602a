//! CustomResourceDefinitions of the kinds imagegate reads and writes (`imagegate crds`,
//! the chart's `crds/`), with Kyverno's names, short names, scopes, versions and printer
//! columns, and schemas generated from imagegate's own types (schemars, with kube-core's
//! structural-schema transforms):
//! - policies: `kyverno.io` ClusterPolicy and Policy, `policies.kyverno.io`
//!   ImageValidatingPolicy and NamespacedImageValidatingPolicy (the policy model);
//! - exceptions: `kyverno.io` and `policies.kyverno.io` PolicyException (the exception
//!   models);
//! - reports: `wgpolicyk8s.io/v1alpha2` PolicyReport and ClusterPolicyReport (the report
//!   type the writer serialises, `imagegate_engine::report`) and `reports.kyverno.io/v1`
//!   EphemeralReport and ClusterEphemeralReport (the same results under `spec`, with the
//!   resource as `spec.owner`).
//!
//! The schemas are made structural and as permissive as Kyverno's where imagegate's model
//! is narrower:
//! - every object of the model keeps unknown fields (`x-kubernetes-preserve-unknown-fields`):
//!   the model reads what imagegate evaluates and tolerates the rest, and Kyverno accepts
//!   more (`celPreconditions`, `reportProperties`, whole `validate`/`mutate`/`generate`
//!   rules), which must survive `kubectl apply` (strict field validation) and storage;
//!   other report writers (Kyverno, Policy Reporter's sources) add `severity`,
//!   `category`, `resources`, `scopeSelector` and the like;
//! - a field the model keeps as raw JSON (preconditions, context entries, condition keys and
//!   values, nested attestor sets) is "any value", as in Kyverno's CRD;
//! - no `default`s: the API server stores what the user wrote and imagegate applies Kyverno's
//!   defaults when it reads a policy, for objects from the API as for files;
//! - reports require only what the `wgpolicyk8s.io` API requires (a result's `policy`, a
//!   timestamp's `seconds` and `nanos`; an EphemeralReport's `owner`), not every field
//!   imagegate happens to write: other writers omit some.

use imagegate_engine::report::{OwnerReference, PolicyReport, ReportResult, Summary};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceSubresourceStatus,
    CustomResourceSubresources, CustomResourceValidation, JSONSchemaProps,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::schema::{OptionalEnum, StructuralSchemaRewriter};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use schemars::transform::AddNullable;
use serde_json::{Map, Value, json};

use crate::error::{KubeError, Result};

/// Kyverno's category (`kubectl get kyverno` lists every kind of it).
const CATEGORY: &str = "kyverno";
const PRESERVE: &str = "x-kubernetes-preserve-unknown-fields";

/// The sets of CRDs `imagegate crds` prints (all by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrdSet {
    /// ClusterPolicy, Policy, (Namespaced)ImageValidatingPolicy.
    Policies,
    /// PolicyException of `kyverno.io` and of `policies.kyverno.io`.
    Exceptions,
    /// PolicyReport, ClusterPolicyReport, (Cluster)EphemeralReport.
    Reports,
}

impl CrdSet {
    /// Every set, in the order they are printed.
    pub const ALL: [CrdSet; 3] = [CrdSet::Policies, CrdSet::Exceptions, CrdSet::Reports];

    /// The CRDs of the set, in a fixed order.
    pub fn crds(self) -> Result<Vec<CustomResourceDefinition>> {
        match self {
            CrdSet::Policies => policy_crds(),
            CrdSet::Exceptions => exception_crds(),
            CrdSet::Reports => report_crds(),
        }
    }
}

/// The CRDs of `sets`, in the order given.
pub fn crds(sets: &[CrdSet]) -> Result<Vec<CustomResourceDefinition>> {
    let mut all = Vec::new();
    for set in sets {
        all.extend(set.crds()?);
    }
    Ok(all)
}

/// One kind's names and where it is served.
struct KindNames {
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    /// In Kyverno's `kyverno` category.
    kyverno_category: bool,
    namespaced: bool,
    /// Served versions, the storage version first.
    versions: &'static [&'static str],
    /// Served versions Kyverno marks deprecated.
    deprecated: &'static [&'static str],
    /// Whether `status` is a subresource (written apart from the object).
    status: bool,
}

const CLUSTER_POLICY: KindNames = KindNames {
    group: "kyverno.io",
    kind: "ClusterPolicy",
    plural: "clusterpolicies",
    short: &["cpol"],
    kyverno_category: true,
    namespaced: false,
    versions: &["v1", "v2beta1"],
    deprecated: &[],
    status: true,
};
const POLICY: KindNames = KindNames {
    group: "kyverno.io",
    kind: "Policy",
    plural: "policies",
    short: &["pol"],
    kyverno_category: true,
    namespaced: true,
    versions: &["v1", "v2beta1"],
    deprecated: &[],
    status: true,
};
const IMAGE_VALIDATING_POLICY: KindNames = KindNames {
    group: "policies.kyverno.io",
    kind: "ImageValidatingPolicy",
    plural: "imagevalidatingpolicies",
    short: &["ivpol"],
    kyverno_category: true,
    namespaced: false,
    versions: &["v1beta1", "v1alpha1"],
    deprecated: &["v1alpha1"],
    status: true,
};
const NAMESPACED_IMAGE_VALIDATING_POLICY: KindNames = KindNames {
    group: "policies.kyverno.io",
    kind: "NamespacedImageValidatingPolicy",
    plural: "namespacedimagevalidatingpolicies",
    short: &["nivpol"],
    kyverno_category: true,
    namespaced: true,
    versions: &["v1beta1", "v1alpha1"],
    deprecated: &["v1alpha1"],
    status: true,
};
const POLICY_EXCEPTION: KindNames = KindNames {
    group: "kyverno.io",
    kind: "PolicyException",
    plural: "policyexceptions",
    short: &["polex"],
    kyverno_category: true,
    namespaced: true,
    versions: &["v2", "v2beta1"],
    deprecated: &["v2beta1"],
    status: false,
};
/// Kyverno gives this one neither a short name nor a category (`polex` is `kyverno.io`'s).
const CEL_POLICY_EXCEPTION: KindNames = KindNames {
    group: "policies.kyverno.io",
    kind: "PolicyException",
    plural: "policyexceptions",
    short: &[],
    kyverno_category: false,
    namespaced: true,
    versions: &["v1beta1", "v1alpha1", "v1"],
    deprecated: &["v1alpha1"],
    status: false,
};
const POLICY_REPORT: KindNames = KindNames {
    group: "wgpolicyk8s.io",
    kind: "PolicyReport",
    plural: "policyreports",
    short: &["polr"],
    kyverno_category: false,
    namespaced: true,
    versions: &["v1alpha2"],
    deprecated: &[],
    status: false,
};
const CLUSTER_POLICY_REPORT: KindNames = KindNames {
    group: "wgpolicyk8s.io",
    kind: "ClusterPolicyReport",
    plural: "clusterpolicyreports",
    short: &["cpolr"],
    kyverno_category: false,
    namespaced: false,
    versions: &["v1alpha2"],
    deprecated: &[],
    status: false,
};
const EPHEMERAL_REPORT: KindNames = KindNames {
    group: "reports.kyverno.io",
    kind: "EphemeralReport",
    plural: "ephemeralreports",
    short: &["ephr"],
    kyverno_category: true,
    namespaced: true,
    versions: &["v1"],
    deprecated: &[],
    status: false,
};
const CLUSTER_EPHEMERAL_REPORT: KindNames = KindNames {
    group: "reports.kyverno.io",
    kind: "ClusterEphemeralReport",
    plural: "clusterephemeralreports",
    short: &["cephr"],
    kyverno_category: true,
    namespaced: false,
    versions: &["v1"],
    deprecated: &[],
    status: false,
};

/// The CRDs of every policy kind imagegate reads, in a fixed order.
pub fn policy_crds() -> Result<Vec<CustomResourceDefinition>> {
    let kyverno = object_schema::<imagegate_policy::model::Spec>(Some(kyverno_status()))?;
    let ivp = object_schema::<imagegate_policy::ivp::model::Spec>(Some(ivp_status()))?;
    let kyverno_columns = kyverno_columns();
    let ivp_columns = ivp_columns();
    Ok(vec![
        crd(&CLUSTER_POLICY, &kyverno, &kyverno_columns),
        crd(&POLICY, &kyverno, &kyverno_columns),
        crd(&IMAGE_VALIDATING_POLICY, &ivp, &ivp_columns),
        crd(&NAMESPACED_IMAGE_VALIDATING_POLICY, &ivp, &ivp_columns),
    ])
}

/// The CRDs of the PolicyExceptions imagegate reads (`kyverno.io`, `policies.kyverno.io`);
/// no printer columns, as Kyverno's (`kubectl get polex` shows name and age).
pub fn exception_crds() -> Result<Vec<CustomResourceDefinition>> {
    let kyverno = object_schema::<imagegate_policy::exception::ExceptionSpec>(None)?;
    let cel = object_schema::<imagegate_policy::ivp::exception::CelExceptionSpec>(None)?;
    Ok(vec![
        crd(&POLICY_EXCEPTION, &kyverno, &[]),
        crd(&CEL_POLICY_EXCEPTION, &cel, &[]),
    ])
}

/// The CRDs of the reports imagegate writes: PolicyReports and the EphemeralReports the
/// leader merges ([`crate::admission_reports`]).
pub fn report_crds() -> Result<Vec<CustomResourceDefinition>> {
    let report = report_schema()?;
    let ephemeral = ephemeral_schema()?;
    let report_columns = report_columns();
    let ephemeral_columns = ephemeral_columns();
    Ok(vec![
        crd(&POLICY_REPORT, &report, &report_columns),
        crd(&CLUSTER_POLICY_REPORT, &report, &report_columns),
        crd(&EPHEMERAL_REPORT, &ephemeral, &ephemeral_columns),
        crd(&CLUSTER_EPHEMERAL_REPORT, &ephemeral, &ephemeral_columns),
    ])
}

fn crd(
    names: &KindNames,
    schema: &JSONSchemaProps,
    columns: &[CustomResourceColumnDefinition],
) -> CustomResourceDefinition {
    let versions = names
        .versions
        .iter()
        .enumerate()
        .map(|(i, version)| CustomResourceDefinitionVersion {
            name: (*version).to_owned(),
            served: true,
            storage: i == 0,
            deprecated: names.deprecated.contains(version).then_some(true),
            additional_printer_columns: (!columns.is_empty()).then(|| columns.to_vec()),
            schema: Some(CustomResourceValidation {
                open_api_v3_schema: Some(schema.clone()),
            }),
            subresources: names.status.then(|| CustomResourceSubresources {
                status: Some(CustomResourceSubresourceStatus(json!({}))),
                scale: None,
            }),
            ..CustomResourceDefinitionVersion::default()
        })
        .collect();
    CustomResourceDefinition {
        metadata: ObjectMeta {
            name: Some(format!("{}.{}", names.plural, names.group)),
            ..ObjectMeta::default()
        },
        spec: CustomResourceDefinitionSpec {
            group: names.group.to_owned(),
            names: CustomResourceDefinitionNames {
                kind: names.kind.to_owned(),
                list_kind: Some(format!("{}List", names.kind)),
                plural: names.plural.to_owned(),
                singular: Some(names.kind.to_ascii_lowercase()),
                short_names: (!names.short.is_empty())
                    .then(|| names.short.iter().map(|s| (*s).to_owned()).collect()),
                categories: names.kyverno_category.then(|| vec![CATEGORY.to_owned()]),
            },
            scope: if names.namespaced {
                "Namespaced"
            } else {
                "Cluster"
            }
            .to_owned(),
            versions,
            conversion: None,
            preserve_unknown_fields: None,
        },
        status: None,
    }
}

/// The schema of a whole object whose `spec` is `S` and whose `status`, if any, is
/// `status`.
fn object_schema<S: JsonSchema>(status: Option<Value>) -> Result<JSONSchemaProps> {
    let mut properties = Map::new();
    properties.insert("spec".to_owned(), schema_of::<S>());
    if let Some(status) = status {
        properties.insert("status".to_owned(), status);
    }
    to_props(object_root(properties, false))
}

/// The schema of `wgpolicyk8s.io/v1alpha2` PolicyReport and ClusterPolicyReport: the
/// fields of the report type the writer serialises beside `apiVersion`, `kind` and
/// `metadata`, keeping unknown ones (`scopeSelector` of other writers).
fn report_schema() -> Result<JSONSchemaProps> {
    let mut report = schema_of::<PolicyReport>();
    drop_required(&mut report);
    let mut properties = match report.get_mut("properties").map(Value::take) {
        Some(Value::Object(properties)) => properties,
        _ => return Err(KubeError::Schema("the report has no properties".to_owned())),
    };
    for (pointer, fields) in [
        ("/results/items", &["policy"][..]),
        ("/results/items/properties/timestamp", &["seconds", "nanos"]),
    ] {
        require(&mut properties, pointer, fields)?;
    }
    to_props(object_root(properties, true))
}

/// The schema of `reports.kyverno.io/v1` EphemeralReport and ClusterEphemeralReport as
/// [`crate::admission_reports::to_ephemeral`] writes them: `spec.owner` (the resource),
/// and the report's `summary` and `results`.
fn ephemeral_schema() -> Result<JSONSchemaProps> {
    let mut results = json!({"type": "array", "items": schema_of::<ReportResult>()});
    drop_required(&mut results);
    let mut summary = schema_of::<Summary>();
    drop_required(&mut summary);
    let mut spec = Map::new();
    spec.insert(
        "spec".to_owned(),
        json!({
            "type": "object",
            PRESERVE: true,
            "properties": {
                "owner": schema_of::<OwnerReference>(),
                "summary": summary,
                "results": results,
            },
        }),
    );
    for (pointer, fields) in [
        ("/spec", &["owner"][..]),
        ("/spec/properties/results/items", &["policy"]),
        (
            "/spec/properties/results/items/properties/timestamp",
            &["seconds", "nanos"],
        ),
    ] {
        require(&mut spec, pointer, fields)?;
    }
    to_props(object_root(spec, false))
}

/// The root of an object's schema: `apiVersion`, `kind`, `metadata` (the API server's
/// to check) and `properties`; `preserve`: unknown top-level fields are kept.
fn object_root(properties: Map<String, Value>, preserve: bool) -> Value {
    let mut all = Map::new();
    all.insert("apiVersion".to_owned(), json!({"type": "string"}));
    all.insert("kind".to_owned(), json!({"type": "string"}));
    all.insert("metadata".to_owned(), json!({"type": "object"}));
    for (name, schema) in properties {
        if !matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
            all.insert(name, schema);
        }
    }
    let mut root = json!({"type": "object", "properties": all});
    if preserve {
        root[PRESERVE] = Value::Bool(true);
    }
    root
}

fn to_props(schema: Value) -> Result<JSONSchemaProps> {
    serde_json::from_value(schema).map_err(|e| KubeError::Schema(e.to_string()))
}

/// The structural schema of `T` (see [`make_structural`]), subschemas inlined.
fn schema_of<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(AddNullable::default())
        .with_transform(StructuralSchemaRewriter)
        .with_transform(OptionalEnum)
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Some(o) = schema.as_object_mut() {
        o.remove("title");
    }
    make_structural(&mut schema);
    schema
}

/// Removes every `required` list: what imagegate always writes need not be what other
/// writers write.
fn drop_required(schema: &mut Value) {
    let Value::Object(node) = schema else {
        return;
    };
    node.remove("required");
    for (key, child) in node.iter_mut() {
        match (key.as_str(), child) {
            // Field names, each with its schema (a field may be called `required`).
            ("properties" | "patternProperties", Value::Object(fields)) => {
                fields.values_mut().for_each(drop_required);
            }
            ("anyOf" | "oneOf" | "allOf", Value::Array(branches)) => {
                branches.iter_mut().for_each(drop_required);
            }
            ("items" | "additionalProperties" | "not", child) => drop_required(child),
            _ => {}
        }
    }
}

/// Requires `fields` of the object schema at `pointer` (JSON pointer into `properties`),
/// each of which it must declare.
fn require(properties: &mut Map<String, Value>, pointer: &str, fields: &[&str]) -> Result<()> {
    let missing = || KubeError::Schema(format!("no schema at {pointer} to require {fields:?}"));
    let mut parts = pointer.trim_start_matches('/').splitn(2, '/');
    let first = parts.next().unwrap_or_default();
    let node = properties.get_mut(first).ok_or_else(missing)?;
    let node = match parts.next() {
        Some(rest) => node.pointer_mut(&format!("/{rest}")).ok_or_else(missing)?,
        None => node,
    };
    if fields
        .iter()
        .any(|f| node.pointer(&format!("/properties/{f}")).is_none())
    {
        return Err(missing());
    }
    node["required"] = json!(fields);
    Ok(())
}

/// Rewrites a generated schema so the API server takes it as structural and keeps what
/// Kyverno keeps (see the module documentation).
fn make_structural(schema: &mut Value) {
    match schema {
        // `true`: a raw JSON field.
        Value::Bool(_) => *schema = json!({ PRESERVE: true }),
        Value::Object(node) => {
            node.remove("default");
            node.remove("$schema");
            // An optional enum: `nullable` already admits null.
            if let Some(Value::Array(values)) = node.get_mut("enum") {
                values.retain(|v| !v.is_null());
            }
            let any_value = !node.contains_key("type")
                && !node.contains_key("anyOf")
                && !node.contains_key("oneOf")
                && !node.contains_key("allOf")
                && !node.contains_key("x-kubernetes-int-or-string");
            if any_value {
                node.insert(PRESERVE.to_owned(), Value::Bool(true));
                // `nullable` alone does not make a type; keep only what describes the field.
                node.retain(|k, _| k == PRESERVE || k == "description" || k == "nullable");
            }
            if node.get("type").and_then(Value::as_str) == Some("object")
                && node.contains_key("properties")
            {
                node.insert(PRESERVE.to_owned(), Value::Bool(true));
            }
            for key in ["properties", "patternProperties"] {
                if let Some(Value::Object(children)) = node.get_mut(key) {
                    children.values_mut().for_each(make_structural);
                }
            }
            for key in ["items", "additionalProperties", "not"] {
                if let Some(child) = node.get_mut(key)
                    && child.is_object()
                {
                    make_structural(child);
                }
            }
            for key in ["anyOf", "oneOf", "allOf"] {
                if let Some(Value::Array(children)) = node.get_mut(key) {
                    children.iter_mut().for_each(make_structural);
                }
            }
        }
        _ => {}
    }
}

/// What imagegate (and Kyverno) write under `status` of a ClusterPolicy/Policy: `ready`
/// and `conditions` (imagegate's `Ready`), the rest of Kyverno's status kept as is.
fn kyverno_status() -> Value {
    json!({
        "type": "object",
        PRESERVE: true,
        "properties": {
            "ready": {"type": "boolean", "description": "Deprecated by Kyverno in favour of conditions[type=Ready]."},
            "conditions": conditions_schema(),
        },
    })
}

/// Kyverno's ImageValidatingPolicy status (`conditionStatus.ready`, `.conditions`).
fn ivp_status() -> Value {
    json!({
        "type": "object",
        PRESERVE: true,
        "properties": {
            "conditionStatus": {
                "type": "object",
                PRESERVE: true,
                "properties": {
                    "ready": {"type": "boolean"},
                    "message": {"type": "string"},
                    "conditions": conditions_schema(),
                },
            },
        },
    })
}

/// `metav1.Condition` list.
fn conditions_schema() -> Value {
    let string = json!({"type": "string"});
    json!({
        "type": "array",
        "items": {
            "type": "object",
            "required": ["type", "status"],
            "properties": {
                "type": string,
                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                "reason": string,
                "message": string,
                "lastTransitionTime": {"type": "string", "format": "date-time"},
                "observedGeneration": {"type": "integer", "format": "int64"},
            },
        },
    })
}

fn column(
    name: &str,
    json_path: &str,
    type_: &str,
    priority: i32,
) -> CustomResourceColumnDefinition {
    CustomResourceColumnDefinition {
        name: name.to_owned(),
        json_path: json_path.to_owned(),
        type_: type_.to_owned(),
        priority: (priority > 0).then_some(priority),
        description: None,
        format: None,
    }
}

/// Kyverno's columns of `kubectl get clusterpolicy` (`-o wide` adds the priority-1 ones).
fn kyverno_columns() -> Vec<CustomResourceColumnDefinition> {
    vec![
        column("ADMISSION", ".spec.admission", "boolean", 0),
        column("BACKGROUND", ".spec.background", "boolean", 0),
        column(
            "READY",
            ".status.conditions[?(@.type == \"Ready\")].status",
            "string",
            0,
        ),
        column("AGE", ".metadata.creationTimestamp", "date", 0),
        column("FAILURE POLICY", ".spec.failurePolicy", "string", 1),
        column("VALIDATE", ".status.rulecount.validate", "integer", 1),
        column("MUTATE", ".status.rulecount.mutate", "integer", 1),
        column("GENERATE", ".status.rulecount.generate", "integer", 1),
        column(
            "VERIFY IMAGES",
            ".status.rulecount.verifyimages",
            "integer",
            1,
        ),
        column(
            "MESSAGE",
            ".status.conditions[?(@.type == \"Ready\")].message",
            "string",
            0,
        ),
    ]
}

/// Kyverno's columns of `kubectl get imagevalidatingpolicy`.
fn ivp_columns() -> Vec<CustomResourceColumnDefinition> {
    vec![
        column("AGE", ".metadata.creationTimestamp", "date", 0),
        column("READY", ".status.conditionStatus.ready", "string", 0),
    ]
}

/// The columns of `kubectl get policyreport` that Kyverno's and Policy Reporter's users
/// know: the resource, the counts, the age.
fn report_columns() -> Vec<CustomResourceColumnDefinition> {
    let mut columns = vec![
        column("Kind", ".scope.kind", "string", 0),
        column("Name", ".scope.name", "string", 0),
    ];
    columns.extend(summary_columns(".summary"));
    columns.push(column("Age", ".metadata.creationTimestamp", "date", 0));
    columns
}

/// Kyverno's columns of `kubectl get ephemeralreport` (Kyverno's labels name the
/// resource; imagegate's reports carry the source and uid labels and `spec.owner`).
fn ephemeral_columns() -> Vec<CustomResourceColumnDefinition> {
    let label = |name: &str| format!(".metadata.labels['audit\\.kyverno\\.io/{name}']");
    let mut columns = vec![
        column("Source", &label("source"), "string", 0),
        column("Group", &label("resource\\.group"), "string", 0),
        column("Kind", &label("resource\\.kind"), "string", 0),
        column(
            "Owner",
            ".metadata.annotations['audit\\.kyverno\\.io/resource\\.name']",
            "string",
            0,
        ),
    ];
    columns.extend(summary_columns(".spec.summary"));
    columns.push(column("Age", ".metadata.creationTimestamp", "date", 0));
    columns.push(column("Uid", &label("resource\\.uid"), "string", 1));
    columns.push(column("Hash", &label("resource\\.hash"), "string", 1));
    columns
}

/// `Pass`, `Fail`, `Warn`, `Error`, `Skip` from the summary at `path`.
fn summary_columns(path: &str) -> Vec<CustomResourceColumnDefinition> {
    ["Pass", "Fail", "Warn", "Error", "Skip"]
        .into_iter()
        .map(|name| {
            let field = name.to_ascii_lowercase();
            column(name, &format!("{path}.{field}"), "integer", 0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_json_fields_become_any_value_and_defaults_go() {
        let mut schema = json!({
            "type": "object",
            "properties": {
                "raw": true,
                "nullableRaw": {"nullable": true, "description": "d"},
                "flag": {"type": "boolean", "default": true},
                "choice": {"type": "string", "nullable": true, "enum": ["A", null]},
            },
        });
        make_structural(&mut schema);
        assert_eq!(schema["x-kubernetes-preserve-unknown-fields"], true);
        assert_eq!(
            schema["properties"]["raw"],
            json!({"x-kubernetes-preserve-unknown-fields": true})
        );
        assert_eq!(
            schema["properties"]["nullableRaw"],
            json!({"x-kubernetes-preserve-unknown-fields": true, "nullable": true, "description": "d"})
        );
        assert_eq!(schema["properties"]["flag"], json!({"type": "boolean"}));
        assert_eq!(schema["properties"]["choice"]["enum"], json!(["A"]));
    }

    #[test]
    fn required_lists_go_and_only_declared_fields_come_back() {
        let mut schema = json!({
            "type": "object",
            "required": ["a", "required"],
            "properties": {
                "a": {"type": "string"},
                "required": {
                    "type": "object",
                    "required": ["x"],
                    "properties": {"x": {"type": "string"}},
                },
                "list": {"type": "array", "items": {"type": "object", "required": ["y"],
                         "properties": {"y": {"type": "string"}}}},
            },
        });
        drop_required(&mut schema);
        // The keyword goes everywhere; a field named `required` stays.
        assert_eq!(
            schema,
            json!({
                "type": "object",
                "properties": {
                    "a": {"type": "string"},
                    "required": {"type": "object", "properties": {"x": {"type": "string"}}},
                    "list": {"type": "array", "items": {"type": "object",
                             "properties": {"y": {"type": "string"}}}},
                },
            })
        );
        let Some(Value::Object(mut properties)) = schema.get("properties").cloned() else {
            panic!("no properties");
        };
        require(&mut properties, "/list/items", &["y"]).unwrap();
        assert_eq!(properties["list"]["items"]["required"], json!(["y"]));
        require(&mut properties, "/required", &["x"]).unwrap();
        assert_eq!(properties["required"]["required"], json!(["x"]));
        assert!(require(&mut properties, "/required", &["z"]).is_err());
        assert!(require(&mut properties, "/absent", &["x"]).is_err());
    }
}
