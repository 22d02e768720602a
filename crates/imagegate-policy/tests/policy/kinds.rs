//! Kind selectors in `match.resources.kinds` and pod template paths.

use crate::util::*;

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
