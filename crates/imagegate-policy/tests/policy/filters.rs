//! `any`/`all`/`exclude`, user info and the scope of a namespaced `Policy`.

use crate::util::*;

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
