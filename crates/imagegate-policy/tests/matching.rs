//! Match/exclude, autogen, image extraction and image patterns, table-driven, with
//! Kyverno's semantics. Resources and policies are fixtures under
//! `tests/data/matching/`, named after the case.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use imagegate_policy::autogen::{expand_rules, pod_template_path};
use imagegate_policy::images::{ContainerKind, ImageError, ImageInfo, extract_images};
use imagegate_policy::matching::{
    MatchContext, Operation, kind_matches, kind_matches_subresource, label_selector_matches,
    rule_matches, rule_mismatch_reasons,
};
use imagegate_policy::model::{LabelSelector, Policy, Rule};
use imagegate_policy::pattern::{image_matches, wildcard_match};
use serde_json::{Value, json};

// ---------------------------------------------------------------- helpers

fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/matching")
        .join(name)
}

/// A fixture as JSON (`.json` or `.yaml`).
fn resource(name: &str) -> Value {
    let text =
        std::fs::read_to_string(data_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    if name.ends_with(".json") {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
    } else {
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
    }
}

fn policy_fixture(name: &str) -> Policy {
    let text = std::fs::read_to_string(data_path(name)).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("policy {name}: {e}"))
}

/// A ClusterPolicy (or a namespaced Policy) with one rule written as JSON.
fn policy_with_rule(kind: &str, namespace: Option<&str>, rule: Value) -> Policy {
    let mut metadata = json!({"name": "p"});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    serde_json::from_value(json!({
        "apiVersion": "kyverno.io/v1",
        "kind": kind,
        "metadata": metadata,
        "spec": {"rules": [rule]},
    }))
    .unwrap()
}

fn cluster_policy(rule: Value) -> Policy {
    policy_with_rule("ClusterPolicy", None, rule)
}

fn create() -> MatchContext {
    MatchContext::default()
}

fn matches(rule: Value, fixture: &str, ctx: &MatchContext) -> bool {
    let policy = cluster_policy(rule);
    rule_matches(&policy.spec.rules[0], &policy, &resource(fixture), ctx)
}

fn filter(resources: Value) -> Value {
    json!({"name": "r", "match": {"any": [{"resources": resources}]}})
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

// ---------------------------------------------------------------- kinds

#[test]
fn kind_patterns() {
    // (pattern, apiVersion, kind, expected)
    let table = [
        ("Pod", "v1", "Pod", true),
        ("v1/Pod", "v1", "Pod", true),
        ("v2/Pod", "v1", "Pod", false),
        ("apps/v1/Deployment", "apps/v1", "Deployment", true),
        ("Deployment", "apps/v1", "Deployment", true),
        ("apps/*/Deployment", "apps/v1beta2", "Deployment", true),
        (
            "apps/v1/Deployment",
            "extensions/v1beta1",
            "Deployment",
            false,
        ),
        ("apps/v1/*", "v1", "Pod", false),
        ("v1/*", "v1", "ConfigMap", true),
        ("*", "v1", "Pod", true),
        ("*", "apps/v1", "Deployment", true),
        ("*/*", "v1", "Pod", true),
        ("Deploy*", "apps/v1", "Deployment", true),
        ("*Set", "apps/v1", "StatefulSet", true),
        ("*Set", "apps/v1", "Deployment", false),
        ("?od", "v1", "Pod", true),
        ("Pod", "apps/v1", "Deployment", false),
        ("pod", "v1", "Pod", false),
        ("Pod/ephemeralcontainers", "v1", "Pod", false),
        ("Pod.ephemeralcontainers", "v1", "Pod", false),
        ("v1/Pod/status", "v1", "Pod", false),
        (
            "tekton.dev/v1beta1/TaskRun",
            "tekton.dev/v1beta1",
            "TaskRun",
            true,
        ),
        ("tekton.dev/*/TaskRun", "tekton.dev/v1", "TaskRun", true),
        ("batch/v1/CronJob", "batch/v1", "CronJob", true),
        ("batch/v1/CronJob", "batch/v1", "Job", false),
    ];
    for (pattern, api_version, kind, expected) in table {
        assert_eq!(
            kind_matches(pattern, api_version, kind),
            expected,
            "kind pattern {pattern:?} vs {api_version} {kind}"
        );
    }
    // Subresource requests: a plain pattern matches any subresource, a pattern with
    // a subresource only that one.
    let sub = [
        ("Pod", "ephemeralcontainers", true),
        ("Pod/ephemeralcontainers", "ephemeralcontainers", true),
        ("v1/Pod.status", "status", true),
        ("Pod/status", "ephemeralcontainers", false),
        ("Pod/*", "exec", true),
    ];
    for (pattern, subresource, expected) in sub {
        assert_eq!(
            kind_matches_subresource(pattern, "v1", "Pod", subresource),
            expected,
            "kind pattern {pattern:?} vs Pod/{subresource}"
        );
    }
}

#[test]
fn kinds_in_rules() {
    let table = [
        (json!({"kinds": ["Pod"]}), "pod-default.yaml", true),
        (json!({"kinds": ["Deployment"]}), "pod-default.yaml", false),
        (
            json!({"kinds": ["Deployment", "Pod"]}),
            "pod-default.yaml",
            true,
        ),
        (
            json!({"kinds": ["apps/v1/Deployment"]}),
            "deployment.yaml",
            true,
        ),
        (json!({"kinds": ["*"]}), "clusterrole-viewer.json", true),
    ];
    for (resources, fixture, expected) in table {
        assert_eq!(
            matches(filter(resources.clone()), fixture, &create()),
            expected,
            "{resources} vs {fixture}"
        );
    }
}

// ---------------------------------------------------------------- names, namespaces

#[test]
fn names_and_namespaces() {
    let table = [
        (
            json!({"kinds": ["Pod"], "name": "nginx"}),
            "pod-default.yaml",
            true,
        ),
        (
            json!({"kinds": ["Pod"], "name": "ng*"}),
            "pod-default.yaml",
            true,
        ),
        (
            json!({"kinds": ["Pod"], "name": "ng?nx"}),
            "pod-default.yaml",
            true,
        ),
        (
            json!({"kinds": ["Pod"], "name": "web"}),
            "pod-default.yaml",
            false,
        ),
        (
            json!({"kinds": ["Pod"], "names": ["web", "ngi*"]}),
            "pod-default.yaml",
            true,
        ),
        (
            json!({"kinds": ["Pod"], "names": ["a", "b"]}),
            "pod-default.yaml",
            false,
        ),
        // Without metadata.name, Kyverno matches names against generateName.
        (
            json!({"kinds": ["Pod"], "name": "gen-*"}),
            "pod-generate-name.json",
            true,
        ),
        (
            json!({"kinds": ["Pod"], "namespaces": ["default"]}),
            "pod-default.yaml",
            true,
        ),
        (
            json!({"kinds": ["Pod"], "namespaces": ["kube-*"]}),
            "pod-kube-system.json",
            true,
        ),
        (
            json!({"kinds": ["Pod"], "namespaces": ["kube-*"]}),
            "pod-default.yaml",
            false,
        ),
        (
            json!({"kinds": ["Pod"], "namespaces": ["prod", "def*"]}),
            "pod-default.yaml",
            true,
        ),
        (
            json!({"kinds": ["Pod"], "namespaces": ["?efault"]}),
            "pod-default.yaml",
            true,
        ),
        // Cluster-scoped resources have the empty namespace: only `*` matches it.
        (
            json!({"kinds": ["ClusterRole"], "namespaces": ["*"]}),
            "clusterrole-viewer.json",
            true,
        ),
        (
            json!({"kinds": ["ClusterRole"], "namespaces": ["default"]}),
            "clusterrole-viewer.json",
            false,
        ),
        // A Namespace is matched by its own name.
        (
            json!({"kinds": ["Namespace"], "namespaces": ["team-*"]}),
            "namespace-team-a.json",
            true,
        ),
        (
            json!({"kinds": ["Pod"], "namespaces": ["default"], "name": "nginx"}),
            "pod-default.yaml",
            true,
        ),
        (
            json!({"kinds": ["Pod"], "namespaces": ["default"], "name": "other"}),
            "pod-default.yaml",
            false,
        ),
    ];
    for (resources, fixture, expected) in table {
        assert_eq!(
            matches(filter(resources.clone()), fixture, &create()),
            expected,
            "{resources} vs {fixture}"
        );
    }
}

#[test]
fn annotations() {
    let table = [
        (json!({"team": "payments"}), true),
        (json!({"team": "pay*"}), true),
        (json!({"t?am": "*"}), true),
        (json!({"*": "payments"}), true),
        (json!({"team": "ops"}), false),
        (json!({"owner": "*"}), false),
    ];
    for (annotations, expected) in table {
        let rule = filter(json!({"kinds": ["Pod"], "annotations": annotations}));
        assert_eq!(
            matches(rule, "pod-default.yaml", &create()),
            expected,
            "annotations {annotations}"
        );
    }
}

// ---------------------------------------------------------------- selectors

#[test]
fn label_selectors() {
    let web = labels(&[("app", "web"), ("tier", "frontend")]);
    let none = labels(&[]);
    let table: Vec<(Value, &BTreeMap<String, String>, bool)> = vec![
        (json!({}), &web, true),
        (json!({}), &none, true),
        (json!({"matchLabels": {"app": "web"}}), &web, true),
        (json!({"matchLabels": {"app": "db"}}), &web, false),
        (
            json!({"matchLabels": {"app": "web", "tier": "backend"}}),
            &web,
            false,
        ),
        (json!({"matchLabels": {"app": "w*"}}), &web, true),
        (json!({"matchLabels": {"ti*": "frontend"}}), &web, true),
        (json!({"matchLabels": {"app": "w?b"}}), &web, true),
        (json!({"matchLabels": {"*": "*"}}), &web, true),
        (json!({"matchLabels": {"*": "*"}}), &none, false),
        (json!({"matchLabels": {"app": "x*"}}), &web, false),
        (
            json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}),
            &web,
            true,
        ),
        (
            json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]}),
            &web,
            false,
        ),
        (
            json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]}),
            &web,
            true,
        ),
        (
            json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}),
            &web,
            false,
        ),
        (
            json!({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["x"]}]}),
            &web,
            true,
        ),
        (
            json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}),
            &web,
            true,
        ),
        (
            json!({"matchExpressions": [{"key": "missing", "operator": "Exists"}]}),
            &web,
            false,
        ),
        (
            json!({"matchExpressions": [{"key": "missing", "operator": "DoesNotExist"}]}),
            &web,
            true,
        ),
        (
            json!({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}),
            &web,
            false,
        ),
        // Invalid selectors match nothing (Kubernetes rejects them).
        (
            json!({"matchExpressions": [{"key": "app", "operator": "In", "values": []}]}),
            &web,
            false,
        ),
        (
            json!({"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["web"]}]}),
            &web,
            false,
        ),
        (
            json!({"matchLabels": {"app": "web"},
                   "matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend"]}]}),
            &web,
            true,
        ),
    ];
    for (selector, labels, expected) in table {
        let sel: LabelSelector = serde_json::from_value(selector.clone()).unwrap();
        assert_eq!(
            label_selector_matches(&sel, labels),
            expected,
            "selector {selector} vs {labels:?}"
        );
    }
    // Operators other than In, NotIn, Exists, DoesNotExist are rejected when parsed.
    let unknown = json!({"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]});
    assert!(serde_json::from_value::<LabelSelector>(unknown).is_err());
    // The same through a rule, against the Pod's own labels.
    let rule = filter(json!({"kinds": ["Pod"], "selector": {"matchLabels": {"app": "web"}}}));
    assert!(matches(rule, "pod-default.yaml", &create()));
    let rule = filter(json!({"kinds": ["Pod"], "selector": {"matchLabels": {"app": "web"}}}));
    assert!(!matches(rule, "pod-kube-system.json", &create()));
}

#[test]
fn namespace_selector() {
    let rule =
        || filter(json!({"kinds": ["*"], "namespaceSelector": {"matchLabels": {"env": "prod"}}}));
    let prod = MatchContext {
        namespace_labels: Some(labels(&[("env", "prod")])),
        ..create()
    };
    let dev = MatchContext {
        namespace_labels: Some(labels(&[("env", "dev")])),
        ..create()
    };
    assert!(matches(rule(), "pod-default.yaml", &prod));
    assert!(!matches(rule(), "pod-default.yaml", &dev));
    // Unknown labels (no cluster to ask) never let a resource escape a policy: the
    // selector in `match` counts as satisfied, the same selector in `exclude` as not.
    assert!(matches(rule(), "pod-default.yaml", &create()));
    let excluding = json!({
        "name": "r",
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "exclude": {"any": [{"resources": {"namespaceSelector": {"matchLabels": {"env": "dev"}}}}]},
    });
    assert!(matches(excluding.clone(), "pod-default.yaml", &create()));
    assert!(!matches(excluding.clone(), "pod-default.yaml", &dev));
    assert!(matches(excluding, "pod-default.yaml", &prod));
    // Kyverno does not apply namespaceSelector to Namespace objects themselves.
    assert!(matches(rule(), "namespace-team-a.json", &dev));
}

#[test]
fn operations() {
    let update = MatchContext {
        operation: Operation::Update,
        ..create()
    };
    let table = [
        (json!(["CREATE"]), &create(), true),
        (json!(["CREATE"]), &update, false),
        (json!(["CREATE", "UPDATE"]), &update, true),
        (json!(["DELETE"]), &create(), false),
    ];
    for (ops, ctx, expected) in table {
        let rule = filter(json!({"kinds": ["Pod"], "operations": ops}));
        assert_eq!(
            matches(rule, "pod-default.yaml", ctx),
            expected,
            "operations {ops} vs {}",
            ctx.operation
        );
    }
    assert_eq!("UPDATE".parse::<Operation>().unwrap(), Operation::Update);
    assert_eq!(Operation::parse("CONNECT"), Some(Operation::Connect));
    assert!("create".parse::<Operation>().is_err());
}

// ---------------------------------------------------------------- any / all / exclude

#[test]
fn any_all_exclude() {
    let pod = json!({"kinds": ["Pod"]});
    let table = [
        (
            "any: one of two filters",
            json!({"any": [{"resources": {"kinds": ["Deployment"]}}, {"resources": pod}]}),
            None,
            true,
        ),
        (
            "any: none",
            json!({"any": [{"resources": {"kinds": ["Deployment"]}}, {"resources": {"kinds": ["Service"]}}]}),
            None,
            false,
        ),
        (
            "all: both",
            json!({"all": [{"resources": pod}, {"resources": {"namespaces": ["default"]}}]}),
            None,
            true,
        ),
        (
            "all: one fails",
            json!({"all": [{"resources": pod}, {"resources": {"namespaces": ["prod"]}}]}),
            None,
            false,
        ),
        ("legacy resources", json!({"resources": pod}), None, true),
        (
            "legacy resources, wrong kind",
            json!({"resources": {"kinds": ["Service"]}}),
            None,
            false,
        ),
        (
            "empty filter never matches",
            json!({"any": [{"resources": {}}]}),
            None,
            false,
        ),
        ("empty match never matches", json!({}), None, false),
        (
            "exclude any: namespace",
            json!({"any": [{"resources": pod}]}),
            Some(json!({"any": [{"resources": {"namespaces": ["default"]}}]})),
            false,
        ),
        (
            "exclude any: other namespace",
            json!({"any": [{"resources": pod}]}),
            Some(json!({"any": [{"resources": {"namespaces": ["kube-system"]}}]})),
            true,
        ),
        (
            "exclude any: one of two",
            json!({"any": [{"resources": pod}]}),
            Some(
                json!({"any": [{"resources": {"names": ["x"]}}, {"resources": {"names": ["ngin?"]}}]}),
            ),
            false,
        ),
        (
            "exclude all: both hold",
            json!({"any": [{"resources": pod}]}),
            Some(
                json!({"all": [{"resources": {"namespaces": ["default"]}}, {"resources": {"selector": {"matchLabels": {"app": "web"}}}}]}),
            ),
            false,
        ),
        (
            "exclude all: one fails",
            json!({"any": [{"resources": pod}]}),
            Some(
                json!({"all": [{"resources": {"namespaces": ["default"]}}, {"resources": {"selector": {"matchLabels": {"app": "db"}}}}]}),
            ),
            true,
        ),
        (
            "exclude all: empty filter breaks it",
            json!({"any": [{"resources": pod}]}),
            Some(json!({"all": [{"resources": {"namespaces": ["default"]}}, {"resources": {}}]})),
            true,
        ),
        (
            "exclude legacy",
            json!({"resources": pod}),
            Some(json!({"resources": {"names": ["nginx"]}})),
            false,
        ),
        (
            "empty exclude excludes nothing",
            json!({"resources": pod}),
            Some(json!({})),
            true,
        ),
    ];
    for (case, m, exclude, expected) in table {
        let mut rule = json!({"name": "r", "match": m});
        if let Some(exclude) = exclude {
            rule["exclude"] = exclude;
        }
        let policy = cluster_policy(rule);
        let reasons = rule_mismatch_reasons(
            &policy.spec.rules[0],
            &policy,
            &resource("pod-default.yaml"),
            &create(),
        );
        assert_eq!(reasons.is_empty(), expected, "{case}: {reasons:?}");
    }
}

#[test]
fn user_info() {
    let sa = MatchContext {
        user_info: Some(
            json!({"username": "system:serviceaccount:ci:deployer", "groups": ["system:serviceaccounts", "devs"]}),
        ),
        ..create()
    };
    let alice = MatchContext {
        user_info: Some(json!({"username": "alice", "groups": ["devs"]})),
        ..create()
    };
    let with_roles = MatchContext {
        user_info: Some(
            json!({"roles": ["ci:deployer"], "clusterRoles": ["admin"], "userInfo": {"username": "bob"}}),
        ),
        ..create()
    };
    let pod = json!({"kinds": ["Pod"]});
    let table = [
        (
            "service account",
            json!({"any": [{"resources": pod, "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"}]}]}),
            &sa,
            true,
        ),
        (
            "service account wildcard",
            json!({"any": [{"resources": pod, "subjects": [{"kind": "ServiceAccount", "name": "*", "namespace": "ci"}]}]}),
            &sa,
            true,
        ),
        (
            "service account, other user",
            json!({"any": [{"resources": pod, "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"}]}]}),
            &alice,
            false,
        ),
        (
            "user",
            json!({"any": [{"resources": pod, "subjects": [{"kind": "User", "name": "ali*"}]}]}),
            &alice,
            true,
        ),
        (
            "group",
            json!({"any": [{"resources": pod, "subjects": [{"kind": "Group", "name": "devs"}]}]}),
            &alice,
            true,
        ),
        (
            "group, not a member",
            json!({"any": [{"resources": pod, "subjects": [{"kind": "Group", "name": "ops"}]}]}),
            &alice,
            false,
        ),
        // Without request information, user criteria are ignored in match…
        (
            "no user info",
            json!({"any": [{"resources": pod, "subjects": [{"kind": "Group", "name": "ops"}]}]}),
            &create(),
            true,
        ),
        // …and roles only hold when the caller resolved them.
        (
            "roles unknown",
            json!({"any": [{"resources": pod, "roles": ["ci:deployer"]}]}),
            &alice,
            false,
        ),
        (
            "roles given",
            json!({"any": [{"resources": pod, "roles": ["ci:deployer"]}]}),
            &with_roles,
            true,
        ),
        (
            "cluster roles given",
            json!({"any": [{"resources": pod, "clusterRoles": ["admin"]}]}),
            &with_roles,
            true,
        ),
        (
            "legacy subjects",
            json!({"resources": pod, "subjects": [{"kind": "User", "name": "alice"}]}),
            &alice,
            true,
        ),
    ];
    for (case, m, ctx, expected) in table {
        assert_eq!(
            matches(json!({"name": "r", "match": m}), "pod-default.yaml", ctx),
            expected,
            "{case}"
        );
    }
    // Exclude by user.
    let rule = json!({
        "name": "r",
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "exclude": {"any": [{"subjects": [{"kind": "Group", "name": "system:serviceaccounts"}]}]},
    });
    assert!(!matches(rule.clone(), "pod-default.yaml", &sa));
    assert!(matches(rule, "pod-default.yaml", &alice));
}

#[test]
fn namespaced_policy_scope() {
    let rule = || json!({"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}});
    let table = [
        ("Policy", Some("default"), "pod-default.yaml", true),
        ("Policy", Some("default"), "pod-kube-system.json", false),
        ("Policy", Some("kube-system"), "pod-kube-system.json", true),
        ("ClusterPolicy", None, "pod-kube-system.json", true),
        ("ClusterPolicy", None, "pod-default.yaml", true),
    ];
    for (kind, ns, fixture, expected) in table {
        let policy = policy_with_rule(kind, ns, rule());
        assert_eq!(
            rule_matches(
                &policy.spec.rules[0],
                &policy,
                &resource(fixture),
                &create()
            ),
            expected,
            "{kind} {ns:?} vs {fixture}"
        );
    }
}

// ---------------------------------------------------------------- autogen

fn names(rules: &[Rule]) -> Vec<&str> {
    rules.iter().map(|r| r.name.as_str()).collect()
}

fn any_kinds(rule: &Rule) -> Vec<Vec<String>> {
    rule.match_
        .any
        .iter()
        .map(|f| f.resources.kinds.clone())
        .collect()
}

#[test]
fn autogen_default_all_controllers() {
    let policy = policy_fixture("policy-autogen-default.yaml");
    let rules = expand_rules(&policy);
    assert_eq!(
        names(&rules),
        [
            "verify-signature",
            "autogen-verify-signature",
            "autogen-cronjob-verify-signature"
        ]
    );
    assert_eq!(any_kinds(&rules[0]), [vec!["Pod".to_owned()]]);
    assert_eq!(
        any_kinds(&rules[1]),
        [vec![
            "apps/v1/DaemonSet".to_owned(),
            "apps/v1/Deployment".to_owned(),
            "batch/v1/Job".to_owned(),
            "apps/v1/ReplicaSet".to_owned(),
            "v1/ReplicationController".to_owned(),
            "apps/v1/StatefulSet".to_owned(),
        ]]
    );
    assert_eq!(any_kinds(&rules[2]), [vec!["batch/v1/CronJob".to_owned()]]);
    // Exclude filters that name Pod get the controllers too.
    let exclude = rules[2].exclude.as_ref().unwrap();
    assert_eq!(exclude.any[0].resources.kinds, ["batch/v1/CronJob"]);
    assert_eq!(exclude.any[0].resources.namespaces, ["kube-system"]);
    // Image verification settings are kept.
    for rule in &rules {
        assert_eq!(rule.verify_images, policy.spec.rules[0].verify_images);
    }
    // The autogen rules match the controllers, not the Pod, and keep the exclude.
    let ctx = create();
    let applies =
        |rule: &Rule, fixture: &str| rule_matches(rule, &policy, &resource(fixture), &ctx);
    assert!(applies(&rules[0], "pod-default.yaml"));
    assert!(!applies(&rules[1], "pod-default.yaml"));
    for fixture in [
        "deployment.yaml",
        "statefulset.json",
        "job.json",
        "replicaset.json",
    ] {
        assert!(applies(&rules[1], fixture), "autogen rule vs {fixture}");
        assert!(!applies(&rules[2], fixture), "cronjob rule vs {fixture}");
    }
    assert!(
        !applies(&rules[1], "daemonset.json"),
        "excluded namespace kube-system"
    );
    assert!(applies(&rules[2], "cronjob.yaml"));
    assert!(!applies(&rules[1], "cronjob.yaml"));
}

#[test]
fn autogen_shifts_request_object_references() {
    let policy = policy_fixture("policy-autogen-default.yaml");
    let rules = expand_rules(&policy);
    let text = |rule: &Rule| serde_json::to_string(rule).unwrap();
    assert!(text(&rules[0]).contains("request.object.metadata.labels.app"));
    assert!(text(&rules[1]).contains("request.object.spec.template.metadata.labels.app"));
    assert!(
        text(&rules[2])
            .contains("request.object.spec.jobTemplate.spec.template.metadata.labels.app")
    );
}

#[test]
fn autogen_annotation() {
    // (fixture, expected rule names, kinds of autogen-<rule> if any)
    type Case<'a> = (&'a str, Vec<&'a str>, Option<Vec<&'a str>>);
    let table: [Case; 3] = [
        ("policy-autogen-none.yaml", vec!["verify-signature"], None),
        (
            "policy-autogen-deployment-cronjob.yaml",
            vec![
                "verify-signature",
                "autogen-verify-signature",
                "autogen-cronjob-verify-signature",
            ],
            Some(vec!["apps/v1/Deployment"]),
        ),
        (
            "policy-autogen-selector.yaml",
            vec!["verify-signature"],
            None,
        ),
    ];
    for (fixture, expected, kinds) in table {
        let rules = expand_rules(&policy_fixture(fixture));
        assert_eq!(names(&rules), expected, "{fixture}");
        if let Some(kinds) = kinds {
            assert_eq!(any_kinds(&rules[1]), [kinds], "{fixture}");
        }
    }
}

#[test]
fn autogen_controller_lists() {
    // (annotation, expected names, kinds of the autogen-<rule>)
    let table: [(&str, Vec<&str>, Vec<&str>); 5] = [
        (
            "Deployment",
            vec!["r", "autogen-r"],
            vec!["apps/v1/Deployment"],
        ),
        (
            "CronJob",
            vec!["r", "autogen-cronjob-r"],
            vec!["batch/v1/CronJob"],
        ),
        (
            "StatefulSet,Deployment",
            vec!["r", "autogen-r"],
            vec!["apps/v1/Deployment", "apps/v1/StatefulSet"],
        ),
        (
            "all",
            vec!["r", "autogen-r", "autogen-cronjob-r"],
            vec![
                "apps/v1/DaemonSet",
                "apps/v1/Deployment",
                "batch/v1/Job",
                "apps/v1/ReplicaSet",
                "v1/ReplicationController",
                "apps/v1/StatefulSet",
            ],
        ),
        ("none", vec!["r"], vec!["Pod"]),
    ];
    for (annotation, expected, kinds) in table {
        let mut policy = cluster_policy(json!({
            "name": "r",
            "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
            "verifyImages": [{"imageReferences": ["*"]}],
        }));
        policy.metadata.annotations.insert(
            "pod-policies.kyverno.io/autogen-controllers".into(),
            annotation.into(),
        );
        let rules = expand_rules(&policy);
        assert_eq!(names(&rules), expected, "annotation {annotation}");
        assert_eq!(
            any_kinds(rules.get(1).unwrap_or(&rules[0])),
            [kinds],
            "annotation {annotation}"
        );
    }
}

#[test]
fn autogen_skipped() {
    let table = [
        (
            "legacy match on Pod",
            json!({"resources": {"kinds": ["Pod"]}}),
            3,
        ),
        (
            "mixed kinds",
            json!({"any": [{"resources": {"kinds": ["Pod", "Service"]}}]}),
            1,
        ),
        (
            "name",
            json!({"any": [{"resources": {"kinds": ["Pod"], "name": "x"}}]}),
            1,
        ),
        (
            "names",
            json!({"any": [{"resources": {"kinds": ["Pod"], "names": ["x"]}}]}),
            1,
        ),
        (
            "annotations",
            json!({"any": [{"resources": {"kinds": ["Pod"], "annotations": {"a": "b"}}}]}),
            1,
        ),
        (
            "not a Pod rule",
            json!({"any": [{"resources": {"kinds": ["Service"]}}]}),
            1,
        ),
        // `v1/Pod` is not in Kyverno's exact kind set, so CanAutoGen sees no need.
        (
            "qualified Pod kind",
            json!({"any": [{"resources": {"kinds": ["v1/Pod"]}}]}),
            1,
        ),
        (
            "namespaces are fine",
            json!({"any": [{"resources": {"kinds": ["Pod"], "namespaces": ["prod"]}}]}),
            3,
        ),
    ];
    for (case, m, count) in table {
        let policy = cluster_policy(
            json!({"name": "r", "match": m, "verifyImages": [{"imageReferences": ["*"]}]}),
        );
        assert_eq!(expand_rules(&policy).len(), count, "{case}");
    }
    // A generate rule anywhere in the policy stops autogen for all rules.
    let mut policy = cluster_policy(json!({
        "name": "r",
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "verifyImages": [{"imageReferences": ["*"]}],
    }));
    let generate: Rule = serde_json::from_value(json!({
        "name": "g", "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]}, "generate": {"kind": "ConfigMap"},
    }))
    .unwrap();
    policy.spec.rules.push(generate);
    assert_eq!(expand_rules(&policy).len(), 2, "generate rule");
    // The legacy match block gets the controllers in `resources.kinds`.
    let policy = cluster_policy(json!({
        "name": "r",
        "match": {"resources": {"kinds": ["Pod"]}},
        "verifyImages": [{"imageReferences": ["*"]}],
    }));
    let rules = expand_rules(&policy);
    assert_eq!(
        rules[2].match_.resources.as_ref().unwrap().kinds,
        ["batch/v1/CronJob"]
    );
}

#[test]
fn autogen_long_names_are_cut_to_63_bytes() {
    let long = "a".repeat(60);
    let policy = cluster_policy(json!({
        "name": long,
        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
        "verifyImages": [{"imageReferences": ["*"]}],
    }));
    let rules = expand_rules(&policy);
    assert_eq!(rules[1].name.len(), 63);
    assert!(rules[1].name.starts_with("autogen-aaa"));
    assert_eq!(rules[2].name, format!("autogen-cronjob-{}", &long[..47]));
}

#[test]
fn pod_template_paths() {
    let table = [
        ("Pod", Some("/spec")),
        ("Deployment", Some("/spec/template/spec")),
        ("DaemonSet", Some("/spec/template/spec")),
        ("StatefulSet", Some("/spec/template/spec")),
        ("ReplicaSet", Some("/spec/template/spec")),
        ("ReplicationController", Some("/spec/template/spec")),
        ("Job", Some("/spec/template/spec")),
        ("CronJob", Some("/spec/jobTemplate/spec/template/spec")),
        ("Service", None),
    ];
    for (kind, expected) in table {
        assert_eq!(pod_template_path(kind), expected, "{kind}");
    }
}

// ---------------------------------------------------------------- image extraction

/// (pointer, container, kind, text) of each extracted image.
fn extracted(fixture: &str) -> Vec<(String, String, ContainerKind, String)> {
    extract_images(&resource(fixture), None)
        .unwrap()
        .into_iter()
        .map(|i| (i.pointer, i.container, i.kind, i.text))
        .collect()
}

fn row(
    pointer: &str,
    container: &str,
    kind: ContainerKind,
    text: &str,
) -> (String, String, ContainerKind, String) {
    (
        pointer.to_owned(),
        container.to_owned(),
        kind,
        text.to_owned(),
    )
}

#[test]
fn extract_from_pod() {
    use ContainerKind::*;
    assert_eq!(
        extracted("pod-default.yaml"),
        [
            row("/spec/containers/0/image", "web", Container, "nginx"),
            row(
                "/spec/containers/1/image",
                "sidecar",
                Container,
                "ghcr.io/kyverno/test-verify-image:signed"
            ),
            row(
                "/spec/initContainers/0/image",
                "init",
                InitContainer,
                "busybox:1.36"
            ),
            row(
                "/spec/ephemeralContainers/0/image",
                "debugger",
                EphemeralContainer,
                "localhost:5000/tools/debug@sha256:1111111111111111111111111111111111111111111111111111111111111111"
            ),
        ]
    );
    let images = extract_images(&resource("pod-default.yaml"), None).unwrap();
    assert!(images.iter().all(|i| i.pull_secrets == ["regcred"]));
    assert_eq!(images[0].extractor, "containers");
    assert_eq!(images[2].extractor, "initContainers");
    assert_eq!(images[0].oci.to_string(), "docker.io/library/nginx:latest");
}

#[test]
fn extract_from_controllers() {
    use ContainerKind::*;
    let table = [
        (
            "deployment.yaml",
            vec![
                row(
                    "/spec/template/spec/containers/0/image",
                    "web",
                    Container,
                    "ghcr.io/acme/web:v1",
                ),
                row(
                    "/spec/template/spec/containers/1/image",
                    "proxy",
                    Container,
                    "docker.io/envoyproxy/envoy:v1.30.1",
                ),
                row(
                    "/spec/template/spec/initContainers/0/image",
                    "migrate",
                    InitContainer,
                    "ghcr.io/acme/migrate:v2",
                ),
            ],
        ),
        (
            "statefulset.json",
            vec![row(
                "/spec/template/spec/containers/0/image",
                "postgres",
                Container,
                "postgres:16",
            )],
        ),
        (
            "daemonset.json",
            vec![
                row(
                    "/spec/template/spec/containers/0/image",
                    "agent",
                    Container,
                    "quay.io/acme/agent:3.1",
                ),
                row(
                    "/spec/template/spec/initContainers/0/image",
                    "setup",
                    InitContainer,
                    "quay.io/acme/setup:3.1",
                ),
            ],
        ),
        (
            "job.json",
            vec![row(
                "/spec/template/spec/containers/0/image",
                "backup",
                Container,
                "ghcr.io/acme/backup@sha256:2222222222222222222222222222222222222222222222222222222222222222",
            )],
        ),
        (
            "cronjob.yaml",
            vec![row(
                "/spec/jobTemplate/spec/template/spec/containers/0/image",
                "report",
                Container,
                "ghcr.io/acme/report:2024.1",
            )],
        ),
        (
            "replicaset.json",
            vec![row(
                "/spec/template/spec/containers/0/image",
                "web",
                Container,
                "ghcr.io/acme/web:v1",
            )],
        ),
        // Kinds without a pod template have no standard images.
        ("clusterrole-viewer.json", vec![]),
    ];
    for (fixture, expected) in table {
        assert_eq!(extracted(fixture), expected, "{fixture}");
    }
    let cron = extract_images(&resource("cronjob.yaml"), None).unwrap();
    assert_eq!(cron[0].pull_secrets, ["ghcr"]);
}

#[test]
fn extract_with_image_extractors() {
    let extractors: BTreeMap<String, Vec<imagegate_policy::model::ImageExtractorConfig>> =
        serde_json::from_value(json!({
            "Task": [
                {"path": "/spec/steps/*/image", "key": "name", "name": "steps"},
                {"path": "/spec/sidecarImages/*", "value": "ref"},
            ],
            "Pod": [{"path": "/spec/containers/*/image", "jmesPath": "to_string(@)"}],
        }))
        .unwrap();
    let images = extract_images(&resource("custom-tekton-task.yaml"), Some(&extractors)).unwrap();
    let rows: Vec<_> = images
        .iter()
        .map(|i| {
            (
                i.pointer.as_str(),
                i.container.as_str(),
                i.kind,
                i.extractor.as_str(),
                i.text.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                "/spec/steps/0/image",
                "clone",
                ContainerKind::Custom,
                "steps",
                "ghcr.io/tektoncd/git-init:v0.40.2"
            ),
            (
                "/spec/steps/1/image",
                "build",
                ContainerKind::Custom,
                "steps",
                "gcr.io/kaniko-project/executor:v1.9.0"
            ),
            // Without `key`, Kyverno keys the image by its pointer; map keys are
            // escaped per RFC 6901.
            (
                "/spec/sidecarImages/a-proxy/ref",
                "/spec/sidecarImages/a-proxy/ref",
                ContainerKind::Custom,
                "custom",
                "docker.io/library/nginx:1.25"
            ),
            (
                "/spec/sidecarImages/cache~1redis~01/ref",
                "/spec/sidecarImages/cache~1redis~01/ref",
                ContainerKind::Custom,
                "custom",
                "redis:7"
            ),
        ]
    );
    // An extractor for the kind replaces the standard ones (jmesPath applied).
    let pod = extract_images(&resource("pod-default.yaml"), Some(&extractors)).unwrap();
    assert_eq!(pod.len(), 2);
    assert_eq!(pod[0].pointer, "/spec/containers/0/image");
    assert_eq!(pod[0].kind, ContainerKind::Custom);
    // Extractors for other kinds leave the standard extraction in place.
    assert_eq!(
        extract_images(&resource("deployment.yaml"), Some(&extractors))
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn extraction_errors_and_skips() {
    match extract_images(&resource("pod-bad-image.json"), None) {
        Err(ImageError::InvalidImage { pointer, image, .. }) => {
            assert_eq!(pointer, "/spec/containers/1/image");
            assert_eq!(image, "Nginx:Latest");
        }
        other => panic!("expected InvalidImage, got {other:?}"),
    }
    let message = extract_images(&resource("pod-bad-image.json"), None)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("/spec/containers/1/image") && message.contains("Nginx:Latest"),
        "{message}"
    );
    // Missing and blank images are skipped, as Kyverno does.
    assert_eq!(
        extracted("pod-missing-and-blank-images.json"),
        [row(
            "/spec/containers/2/image",
            "real",
            ContainerKind::Container,
            "nginx:1.25"
        )]
    );
    // A container without a name is an error (Kyverno: "invalid key").
    let nameless = json!({"kind": "Pod", "spec": {"containers": [{"image": "nginx"}]}});
    assert!(matches!(
        extract_images(&nameless, None),
        Err(ImageError::InvalidKey { .. })
    ));
    // `containers` that is not a list is an error.
    let scalar = json!({"kind": "Pod", "spec": {"containers": "nginx"}});
    assert!(matches!(
        extract_images(&scalar, None),
        Err(ImageError::InvalidType { .. })
    ));
    // An empty extractor list for the kind is an error.
    let empty: BTreeMap<String, Vec<imagegate_policy::model::ImageExtractorConfig>> =
        serde_json::from_value(json!({"Pod": []})).unwrap();
    assert!(matches!(
        extract_images(&resource("pod-default.yaml"), Some(&empty)),
        Err(ImageError::NoExtractors { .. })
    ));
}

// ---------------------------------------------------------------- ImageInfo

#[test]
fn image_info_fields() {
    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    // input | registry | path | name | tag | digest | reference | referenceWithTag
    // (`-` for none, `$D` for the digest above)
    const TABLE: &str = "
        nginx | docker.io | library/nginx | nginx | latest | - | docker.io/library/nginx:latest | docker.io/nginx:latest
        nginx:1.2 | docker.io | library/nginx | nginx | 1.2 | - | docker.io/library/nginx:1.2 | docker.io/nginx:1.2
        docker.io/library/nginx | docker.io | library/nginx | nginx | latest | - | docker.io/library/nginx:latest | docker.io/library/nginx:latest
        test/nginx | docker.io | test/nginx | nginx | latest | - | docker.io/test/nginx:latest | docker.io/test/nginx:latest
        ghcr.io/a/b:v1@$D | ghcr.io | a/b | b | v1 | $D | ghcr.io/a/b@$D | ghcr.io/a/b:v1
        ghcr.io/a/b@$D | ghcr.io | a/b | b | - | $D | ghcr.io/a/b@$D | ghcr.io/a/b:
        localhost:5000/x | localhost:5000 | x | x | latest | - | localhost:5000/x:latest | localhost:5000/x:latest
        localhost:4443/test/nginx | localhost:4443 | test/nginx | nginx | latest | - | localhost:4443/test/nginx:latest | localhost:4443/test/nginx:latest
        ghcr.io/kyverno/test-verify-image:signed | ghcr.io | kyverno/test-verify-image | test-verify-image | signed | - | ghcr.io/kyverno/test-verify-image:signed | ghcr.io/kyverno/test-verify-image:signed
        index.docker.io/user/app:1 | index.docker.io | user/app | app | 1 | - | index.docker.io/user/app:1 | index.docker.io/user/app:1
    ";
    for line in TABLE.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let line = line.replace("$D", D);
        let cols: Vec<&str> = line.split(" | ").collect();
        let [
            input,
            registry,
            path,
            name,
            tag,
            digest,
            reference,
            with_tag,
        ] = cols[..]
        else {
            panic!("bad row {line}");
        };
        let opt = |c: &str| (c != "-").then(|| c.to_owned());
        let info = ImageInfo::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(info.registry, registry, "{input} registry");
        assert_eq!(info.path, path, "{input} path");
        assert_eq!(info.name, name, "{input} name");
        assert_eq!(info.tag, opt(tag), "{input} tag");
        assert_eq!(info.digest, opt(digest), "{input} digest");
        assert_eq!(info.reference, reference, "{input} reference");
        assert_eq!(
            info.reference_with_tag, with_tag,
            "{input} referenceWithTag"
        );
    }
    assert_eq!(
        ImageInfo::parse("nginx").unwrap().to_value(),
        json!({
            "registry": "docker.io",
            "path": "library/nginx",
            "name": "nginx",
            "tag": "latest",
            "reference": "docker.io/library/nginx:latest",
            "referenceWithTag": "docker.io/nginx:latest",
        })
    );
    let digested = ImageInfo::parse(&format!("ghcr.io/a/b@{D}"))
        .unwrap()
        .to_value();
    assert_eq!(digested["digest"], json!(D));
    assert!(digested.get("tag").is_none());
    for bad in ["", "++", "Nginx", "nginx:bad tag", "ghcr.io/a@sha256:short"] {
        assert!(ImageInfo::parse(bad).is_err(), "{bad:?} should not parse");
    }
}

// ---------------------------------------------------------------- image patterns

#[test]
fn image_patterns() {
    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let tagged_and_digested = format!("ghcr.io/a/b:v1@{D}");
    // (patterns, image as written, expected)
    let table: Vec<(Vec<&str>, &str, bool)> = vec![
        (
            vec!["ghcr.io/kyverno/*"],
            "ghcr.io/kyverno/test-verify-image:signed",
            true,
        ),
        (
            vec!["ghcr.io/kyverno/test-verify-image*"],
            "ghcr.io/kyverno/test-verify-image:signed",
            true,
        ),
        (
            vec!["ghcr.io/kyverno/test-verify-image:?igned"],
            "ghcr.io/kyverno/test-verify-image:signed",
            true,
        ),
        (
            vec!["ghcr.io/kyverno/test-verify-image:signe?"],
            "ghcr.io/kyverno/test-verify-image:signed-x",
            false,
        ),
        (vec!["*"], "nginx", true),
        (vec!["docker.io/*"], "nginx", true),
        (vec!["docker.io/library/nginx:*"], "nginx", true),
        (vec!["docker.io/library/nginx:latest"], "nginx", true),
        // Kyverno matches the reference with `library/`, not referenceWithTag.
        (vec!["docker.io/nginx*"], "nginx", false),
        // Patterns must include the registry.
        (vec!["nginx*"], "nginx", false),
        (vec!["ghcr.io/a/b:v1"], "ghcr.io/a/b:v1", true),
        // With a digest, the text is registry/path@digest: the tag is not in it.
        (vec!["ghcr.io/a/b:v1*"], &tagged_and_digested, false),
        (vec!["ghcr.io/a/b@sha256:*"], &tagged_and_digested, true),
        (vec!["localhost:5000/*"], "localhost:5000/app/x:1", true),
        // Case-sensitive.
        (vec!["GHCR.io/*"], "ghcr.io/a/b:1", false),
        (vec!["quay.io/*", "ghcr.io/*"], "ghcr.io/a/b", true),
        (vec![], "nginx", false),
        // `*` crosses `/`.
        (vec!["ghcr.io/*/b:*"], "ghcr.io/a/c/b:v1", true),
        (vec!["index.docker.io/*"], "index.docker.io/user/app", true),
        (vec!["docker.io/*"], "index.docker.io/user/app", false),
    ];
    for (patterns, image, expected) in table {
        let patterns: Vec<String> = patterns.into_iter().map(str::to_owned).collect();
        let info = ImageInfo::parse(image).unwrap();
        assert_eq!(
            image_matches(&patterns, &info),
            expected,
            "{patterns:?} vs {image} ({})",
            info.reference
        );
    }
    // A string target is matched as given.
    assert!(image_matches(
        &["docker.io/*".to_owned()],
        "docker.io/library/nginx:latest"
    ));
    assert!(!image_matches(&["docker.io/*".to_owned()], "nginx"));
}

#[test]
fn wildcard_grammar() {
    let table = [
        ("", "", true),
        ("", "a", false),
        ("*", "", true),
        ("*", "anything/at:all", true),
        ("?", "", false),
        ("?", "é", true),
        ("a*b*c", "a-b-c", true),
        ("a*b*c", "a-c-b", false),
        ("a\\*", "a\\x", true),
        ("[ab]", "a", false),
        ("abc", "ABC", false),
    ];
    for (pattern, text, expected) in table {
        assert_eq!(
            wildcard_match(pattern, text),
            expected,
            "{pattern:?} vs {text:?}"
        );
    }
}
