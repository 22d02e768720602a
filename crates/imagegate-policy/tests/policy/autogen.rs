//! Autogen: the rules Kyverno derives for pod controllers.

use crate::util::*;

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

// ---------------------------------------------------------------- image extraction
