//! matchConstraints (resource rules with subresources, exclusions, selectors), the
//! namespaced kind, and autogen for pod controllers.

use std::collections::BTreeMap;
use std::sync::Arc;

use imagegate_policy::ivp::matching::{RequestAttributes, rule_matches, selector_matches};
use imagegate_policy::ivp::model::{
    LabelSelector, LabelSelectorRequirement, NamedRuleWithOperations,
};
use imagegate_policy::ivp::{AdmissionInput, CompiledIvp, ResultsMap, Verdict};
use serde_json::{Value, json};

use super::support::{VERIFY_COSIGN, load, pod, policy_text};

fn rule(resources: &[&str], operations: &[&str]) -> NamedRuleWithOperations {
    NamedRuleWithOperations {
        operations: operations.iter().map(|s| s.to_string()).collect(),
        api_groups: vec!["".into()],
        api_versions: vec!["v1".into()],
        resources: resources.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn request(resource: &str, sub: &str, operation: &str) -> RequestAttributes {
    RequestAttributes {
        operation: operation.into(),
        group: String::new(),
        version: "v1".into(),
        resource: resource.into(),
        sub_resource: sub.into(),
        name: "p".into(),
        namespace: "default".into(),
    }
}

#[test]
fn resource_rules_with_subresources_table() {
    // (rule resources, rule operations, request resource, subresource, operation, match)
    type Case = (
        &'static [&'static str],
        &'static [&'static str],
        &'static str,
        &'static str,
        &'static str,
        bool,
    );
    let table: &[Case] = &[
        (&["pods"], &["CREATE"], "pods", "", "CREATE", true),
        (&["pods"], &["CREATE"], "pods", "", "UPDATE", false),
        (&["pods"], &["*"], "pods", "", "DELETE", true),
        (
            &["pods"],
            &["UPDATE"],
            "pods",
            "ephemeralcontainers",
            "UPDATE",
            false,
        ),
        (
            &["pods/ephemeralcontainers"],
            &["UPDATE"],
            "pods",
            "ephemeralcontainers",
            "UPDATE",
            true,
        ),
        (
            &["pods/ephemeralcontainers"],
            &["UPDATE"],
            "pods",
            "",
            "UPDATE",
            false,
        ),
        (&["pods/*"], &["UPDATE"], "pods", "status", "UPDATE", true),
        (
            &["*/status"],
            &["UPDATE"],
            "deployments",
            "status",
            "UPDATE",
            true,
        ),
        (&["*/status"], &["UPDATE"], "pods", "", "UPDATE", false),
        (&["*"], &["CREATE"], "configmaps", "", "CREATE", true),
        (&["*"], &["CREATE"], "pods", "exec", "CREATE", false),
        (&["*/*"], &["CONNECT"], "pods", "exec", "CONNECT", true),
        (&["deployments"], &["CREATE"], "pods", "", "CREATE", false),
    ];
    for (resources, ops, res, sub, op, want) in table {
        let got = rule_matches(&rule(resources, ops), &request(res, sub, op));
        assert_eq!(got, *want, "{resources:?} {ops:?} vs {res}/{sub} {op}");
    }
    let mut named = rule(&["pods"], &["CREATE"]);
    named.resource_names = vec!["other".into()];
    assert!(!rule_matches(&named, &request("pods", "", "CREATE")));
    let mut cluster = rule(&["pods"], &["CREATE"]);
    cluster.scope = Some("Cluster".into());
    assert!(!rule_matches(&cluster, &request("pods", "", "CREATE")));
}

#[test]
fn label_selectors_table() {
    let labels: BTreeMap<String, String> = [("env".to_string(), "prod".to_string())]
        .into_iter()
        .collect();
    let req = |key: &str, op: &str, values: &[&str]| LabelSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: values.iter().map(|s| s.to_string()).collect(),
    };
    let table = [
        (LabelSelector::default(), true),
        (
            LabelSelector {
                match_labels: labels.clone(),
                ..Default::default()
            },
            true,
        ),
        (
            LabelSelector {
                match_expressions: vec![req("env", "In", &["dev", "prod"])],
                ..Default::default()
            },
            true,
        ),
        (
            LabelSelector {
                match_expressions: vec![req("env", "NotIn", &["prod"])],
                ..Default::default()
            },
            false,
        ),
        (
            LabelSelector {
                match_expressions: vec![req("team", "Exists", &[])],
                ..Default::default()
            },
            false,
        ),
        (
            LabelSelector {
                match_expressions: vec![req("team", "DoesNotExist", &[])],
                ..Default::default()
            },
            true,
        ),
    ];
    for (i, (selector, want)) in table.iter().enumerate() {
        assert_eq!(selector_matches(selector, &labels), *want, "case {i}");
    }
}

fn verdict(policy_yaml: &str, input: &AdmissionInput) -> Verdict {
    let p = load(policy_yaml);
    p.evaluate(input, Arc::new(ResultsMap::default())).verdict
}

#[test]
fn exclusions_and_selectors_in_policies() {
    let unsigned = pod("p", &["registry.test/app:unsigned"], json!({"team": "a"}));
    let exclude = policy_text(VERIFY_COSIGN, "").replace(
        "  matchImageReferences:",
        "    excludeResourceRules:\n    - apiGroups: [\"\"]\n      apiVersions: [v1]\n      operations: [CREATE]\n      resources: [pods]\n  matchImageReferences:",
    );
    assert_eq!(
        verdict(
            &exclude,
            &AdmissionInput::from_resource(unsigned.clone(), None)
        ),
        Verdict::NotMatched
    );
    let object_selector = policy_text(VERIFY_COSIGN, "").replace(
        "  matchImageReferences:",
        "    objectSelector:\n      matchLabels:\n        team: b\n  matchImageReferences:",
    );
    assert_eq!(
        verdict(
            &object_selector,
            &AdmissionInput::from_resource(unsigned.clone(), None)
        ),
        Verdict::NotMatched
    );
    let ns_selector = policy_text(VERIFY_COSIGN, "").replace(
        "  matchImageReferences:",
        "    namespaceSelector:\n      matchExpressions:\n      - key: enforce\n        operator: In\n        values: [\"yes\"]\n  matchImageReferences:",
    );
    let ns = |v: &str| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default", "labels": {"enforce": v}}});
    assert_eq!(
        verdict(
            &ns_selector,
            &AdmissionInput::from_resource(unsigned.clone(), Some(ns("no")))
        ),
        Verdict::NotMatched
    );
    assert_ne!(
        verdict(
            &ns_selector,
            &AdmissionInput::from_resource(unsigned, Some(ns("yes")))
        ),
        Verdict::NotMatched
    );
}

#[test]
fn ephemeral_container_subresource_requests() {
    let text = policy_text(VERIFY_COSIGN, "").replace(
        "      operations: [CREATE, UPDATE]\n      resources: [pods]",
        "      operations: [UPDATE]\n      resources: [pods/ephemeralcontainers]",
    );
    let p = load(&text);
    let mut object = pod("p", &["registry.test/app:signed"], json!({}));
    object["spec"]["ephemeralContainers"] =
        json!([{"name": "debug", "image": "registry.test/debug:unsigned"}]);
    let review = |sub: &str| {
        AdmissionInput::admission(
            json!({
                "operation": "UPDATE",
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "subResource": sub,
                "name": "p", "namespace": "default",
                "object": object, "oldObject": object,
            }),
            None,
        )
    };
    assert!(p.plan(&review("")).is_err());
    let plan = p
        .plan(&review("ephemeralcontainers"))
        .unwrap_or_else(|o| panic!("{o:?}"));
    let images: Vec<&str> = plan.images.iter().map(|i| i.image.as_str()).collect();
    assert_eq!(
        images,
        ["registry.test/app:signed", "registry.test/debug:unsigned"]
    );
}

#[test]
fn namespaced_policies_apply_only_in_their_namespace() {
    let text = policy_text(VERIFY_COSIGN, "")
        .replace(
            "kind: ImageValidatingPolicy",
            "kind: NamespacedImageValidatingPolicy",
        )
        .replace(
            "name: check-images",
            "name: check-images\n  namespace: team-a",
        );
    let p = load(&text);
    let mut in_a = pod("p", &["registry.test/app:unsigned"], json!({}));
    in_a["metadata"]["namespace"] = json!("team-a");
    let in_default = pod("p", &["registry.test/app:unsigned"], json!({}));
    assert!(p.plan(&AdmissionInput::from_resource(in_a, None)).is_ok());
    assert!(
        p.plan(&AdmissionInput::from_resource(in_default, None))
            .is_err()
    );
}

fn deployment(image: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "default"},
        "spec": {"template": {"metadata": {"labels": labels},
                 "spec": {"containers": [{"name": "c", "image": image}]}}}
    })
}

fn cronjob(image: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "c", "namespace": "default"},
        "spec": {"jobTemplate": {"spec": {"template": {"metadata": {"labels": labels},
                 "spec": {"containers": [{"name": "c", "image": image}]}}}}}
    })
}

#[test]
fn autogen_applies_pod_policies_to_controllers() {
    let extra = "  matchConditions:\n  - name: prod\n    expression: has(object.metadata.labels) && object.metadata.labels.?prod.orValue('') == 'true' && object.metadata.namespace == 'default'";
    let p = load(&policy_text(VERIFY_COSIGN, extra));
    assert_eq!(p.autogen_variants(), ["cronjobs", "defaults"]);
    let defaults = p
        .autogen_spec("defaults")
        .unwrap_or_else(|| panic!("no defaults"));
    let condition = &defaults.match_conditions[0].expression;
    assert!(
        condition.contains("object.spec.template.metadata.labels"),
        "{condition}"
    );
    // The workload's own namespace is not moved into the template.
    assert!(
        condition.contains("object.metadata.namespace"),
        "{condition}"
    );
    for (resource, variant) in [
        (
            deployment("registry.test/app:unsigned", json!({"prod": "true"})),
            "defaults",
        ),
        (
            cronjob("registry.test/app:unsigned", json!({"prod": "true"})),
            "cronjobs",
        ),
    ] {
        let input = AdmissionInput::from_resource(resource, None);
        let plan = p.plan(&input).unwrap_or_else(|o| panic!("{o:?}"));
        assert_eq!(plan.images[0].image, "registry.test/app:unsigned");
        let outcome = p.evaluate(&input, Arc::new(ResultsMap::default()));
        assert_eq!(outcome.autogen.as_deref(), Some(variant));
    }
    let not_prod =
        AdmissionInput::from_resource(deployment("registry.test/app:x", json!({})), None);
    assert_eq!(
        p.evaluate(&not_prod, Arc::new(ResultsMap::default()))
            .verdict,
        Verdict::NotMatched
    );
}

#[test]
fn autogen_respects_controllers_and_its_preconditions() {
    let only = policy_text(
        VERIFY_COSIGN,
        "  autogen:\n    podControllers:\n      controllers: [deployments]",
    );
    let p = load(&only);
    assert_eq!(p.autogen_variants(), ["defaults"]);
    let rules = &p
        .autogen_spec("defaults")
        .and_then(|s| s.match_constraints.clone())
        .unwrap_or_default()
        .resource_rules;
    assert_eq!(rules[0].resources, ["deployments"]);
    let statefulset = AdmissionInput::from_resource(
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
               "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "registry.test/a:1"}]}}}}),
        None,
    );
    assert!(p.plan(&statefulset).is_err());
    let none = load(&policy_text(
        VERIFY_COSIGN,
        "  autogen:\n    podControllers:\n      controllers: []",
    ));
    assert!(none.autogen_variants().is_empty());
    let with_exclusion = load(&policy_text(VERIFY_COSIGN, "").replace(
        "  matchImageReferences:",
        "    excludeResourceRules:\n    - apiGroups: [\"\"]\n      apiVersions: [v1]\n      operations: [CREATE]\n      resources: [pods]\n      resourceNames: [x]\n  matchImageReferences:",
    ));
    assert!(with_exclusion.autogen_variants().is_empty());
}

/// The policy of [`VERIFY_COSIGN`] with its one resource rule replaced by `rule` (YAML
/// of the rule's fields, indented for the list item).
fn with_rule(rule: &str) -> String {
    policy_text(VERIFY_COSIGN, "").replace(
        "    - apiGroups: [\"\"]\n      apiVersions: [v1]\n      operations: [CREATE, UPDATE]\n      resources: [pods]\n",
        rule,
    )
}

#[test]
fn may_match_reads_only_resource_rules_and_never_rules_out_a_match() {
    // Issue 8 item 11 with ImageValidatingPolicies: a request no resource rule names is
    // answered before its object is read, so `may_match` must be false only when
    // `plan` finds the policy not matching (or skipped).
    let pods = load(&policy_text(VERIFY_COSIGN, ""));
    let everything = load(&with_rule(
        "    - apiGroups: [\"*\"]\n      apiVersions: [\"*\"]\n      operations: [\"*\"]\n      resources: [\"*\"]\n",
    ));
    let subresources = load(&with_rule(
        "    - apiGroups: [\"\"]\n      apiVersions: [v1]\n      operations: [UPDATE]\n      resources: [pods/ephemeralcontainers, \"*/status\"]\n",
    ));
    let narrowed = load(&policy_text(VERIFY_COSIGN, "").replace(
        "      resources: [pods]\n",
        "      resources: [pods]\n      resourceNames: [someone-else]\n    objectSelector:\n      matchLabels: {team: nobody}\n",
    ));
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default"}, "data": {}});
    let pod = pod("p", &["registry.test/app:v1"], json!({}));
    let mut no_version = pod.clone();
    no_version.as_object_mut().unwrap().remove("apiVersion");
    let deployment = deployment("registry.test/app:v1", json!({}));
    let cronjob = cronjob("registry.test/app:v1", json!({}));
    let ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "i", "namespace": "default"}});

    // (policy, object, operation, subresource, may match)
    let table: &[(&CompiledIvp, &Value, &str, &str, bool)] = &[
        (&pods, &pod, "CREATE", "", true),
        (&pods, &pod, "UPDATE", "", true),
        (&pods, &pod, "DELETE", "", false),
        (&pods, &pod, "UPDATE", "ephemeralcontainers", false),
        (&pods, &no_version, "CREATE", "", true),
        (&pods, &config_map, "CREATE", "", false),
        (&pods, &ingress, "CREATE", "", false),
        // Autogen variants count.
        (&pods, &deployment, "CREATE", "", true),
        (&pods, &cronjob, "UPDATE", "", true),
        (&everything, &config_map, "CREATE", "", true),
        (&everything, &ingress, "DELETE", "", true),
        (&everything, &pod, "UPDATE", "status", false),
        (&subresources, &pod, "UPDATE", "ephemeralcontainers", true),
        (&subresources, &pod, "UPDATE", "", false),
        // `*/status` of the core group only.
        (&subresources, &deployment, "UPDATE", "status", false),
        (&subresources, &config_map, "UPDATE", "status", true),
        (&subresources, &config_map, "UPDATE", "", false),
        // Names and selectors only narrow: not read, the request may match.
        (&narrowed, &pod, "CREATE", "", true),
        (&narrowed, &config_map, "CREATE", "", false),
    ];
    for (i, (policy, object, operation, sub, want)) in table.iter().enumerate() {
        let got = policy.may_match(operation, object, sub);
        assert_eq!(
            got, *want,
            "case {i}: {operation} {sub:?} {}",
            object["kind"]
        );
        let mut input = AdmissionInput::from_resource((*object).clone(), None);
        input.request["operation"] = json!(operation);
        input.request["subResource"] = json!(sub);
        if !got {
            let planned = policy.plan(&input).map(|_| ());
            assert!(
                matches!(
                    planned.as_ref().map_err(|o| &o.verdict),
                    Err(Verdict::NotMatched | Verdict::Skipped { .. })
                ),
                "case {i}: ruled out but planned: {planned:?}"
            );
        }
    }
    // The policy that names Pods but narrows them away: `plan` decides.
    let input = AdmissionInput::from_resource(pod.clone(), None);
    assert!(narrowed.plan(&input).is_err());
    assert!(pods.plan(&input).is_ok());
}
