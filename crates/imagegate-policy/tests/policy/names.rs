//! Names, namespaces and annotations in match/exclude, with wildcards.

use crate::util::*;

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
