//! Label and namespace selectors and admission operations.

use crate::util::*;

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
