//! CustomResourceDefinitions of the policy kinds imagegate reads (`imagegate crds`, the
//! chart's `crds/`): `kyverno.io` ClusterPolicy and Policy, `policies.kyverno.io`
//! ImageValidatingPolicy and NamespacedImageValidatingPolicy, with Kyverno's names, short
//! names, scopes, versions and printer columns, and schemas generated from imagegate's own
//! policy model (schemars, with kube-core's structural-schema transforms).
//!
//! The schemas are made structural and as permissive as Kyverno's where imagegate's model
//! is narrower:
//! - every object of the model keeps unknown fields (`x-kubernetes-preserve-unknown-fields`):
//!   the model reads what imagegate evaluates and tolerates the rest, and Kyverno accepts
//!   more (`celPreconditions`, `reportProperties`, whole `validate`/`mutate`/`generate`
//!   rules), which must survive `kubectl apply` (strict field validation) and storage;
//! - a field the model keeps as raw JSON (preconditions, context entries, condition keys and
//!   values, nested attestor sets) is "any value", as in Kyverno's CRD;
//! - no `default`s: the API server stores what the user wrote and imagegate applies Kyverno's
//!   defaults when it reads a policy, for objects from the API as for files.

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
use serde_json::{Value, json};

use crate::error::{KubeError, Result};

/// Kyverno's category (`kubectl get kyverno` lists every kind of it).
const CATEGORY: &str = "kyverno";
const PRESERVE: &str = "x-kubernetes-preserve-unknown-fields";

/// One kind's names and where it is served.
struct KindNames {
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    short: &'static str,
    namespaced: bool,
    /// Served versions, the storage version first.
    versions: &'static [&'static str],
    /// Served versions Kyverno marks deprecated.
    deprecated: &'static [&'static str],
}

const CLUSTER_POLICY: KindNames = KindNames {
    group: "kyverno.io",
    kind: "ClusterPolicy",
    plural: "clusterpolicies",
    short: "cpol",
    namespaced: false,
    versions: &["v1", "v2beta1"],
    deprecated: &[],
};
const POLICY: KindNames = KindNames {
    group: "kyverno.io",
    kind: "Policy",
    plural: "policies",
    short: "pol",
    namespaced: true,
    versions: &["v1", "v2beta1"],
    deprecated: &[],
};
const IMAGE_VALIDATING_POLICY: KindNames = KindNames {
    group: "policies.kyverno.io",
    kind: "ImageValidatingPolicy",
    plural: "imagevalidatingpolicies",
    short: "ivpol",
    namespaced: false,
    versions: &["v1beta1", "v1alpha1"],
    deprecated: &["v1alpha1"],
};
const NAMESPACED_IMAGE_VALIDATING_POLICY: KindNames = KindNames {
    group: "policies.kyverno.io",
    kind: "NamespacedImageValidatingPolicy",
    plural: "namespacedimagevalidatingpolicies",
    short: "nivpol",
    namespaced: true,
    versions: &["v1beta1", "v1alpha1"],
    deprecated: &["v1alpha1"],
};

/// The CRDs of every policy kind imagegate reads, in a fixed order.
pub fn policy_crds() -> Result<Vec<CustomResourceDefinition>> {
    let kyverno = object_schema::<imagegate_policy::model::Spec>(kyverno_status())?;
    let ivp = object_schema::<imagegate_policy::ivp::model::Spec>(ivp_status())?;
    let kyverno_columns = kyverno_columns();
    let ivp_columns = ivp_columns();
    Ok(vec![
        crd(&CLUSTER_POLICY, &kyverno, &kyverno_columns),
        crd(&POLICY, &kyverno, &kyverno_columns),
        crd(&IMAGE_VALIDATING_POLICY, &ivp, &ivp_columns),
        crd(&NAMESPACED_IMAGE_VALIDATING_POLICY, &ivp, &ivp_columns),
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
            additional_printer_columns: Some(columns.to_vec()),
            schema: Some(CustomResourceValidation {
                open_api_v3_schema: Some(schema.clone()),
            }),
            subresources: Some(CustomResourceSubresources {
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
                short_names: Some(vec![names.short.to_owned()]),
                categories: Some(vec![CATEGORY.to_owned()]),
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

/// The schema of a whole object whose `spec` is `S` and whose `status` is `status`.
fn object_schema<S: JsonSchema>(status: Value) -> Result<JSONSchemaProps> {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(AddNullable::default())
        .with_transform(StructuralSchemaRewriter)
        .with_transform(OptionalEnum)
        .into_generator();
    let mut spec = generator.into_root_schema_for::<S>().to_value();
    if let Some(o) = spec.as_object_mut() {
        o.remove("title");
    }
    make_structural(&mut spec);
    let root = json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    });
    serde_json::from_value(root).map_err(|e| KubeError::Schema(e.to_string()))
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
}
