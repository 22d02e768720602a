//! The deployment manifests (`deploy/manifests/*.yaml`, the Helm chart rendered) parse as
//! Kubernetes objects (k8s-openapi types, v1.33) and keep the facts the chart promises.

use std::path::{Path, PathBuf};

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every document of every `deploy/manifests/*.yaml`.
fn documents() -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/manifests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            serde_saphyr::from_multiple::<Value>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
        })
        .filter(|d| !d.is_null())
        .collect()
}

/// Parses `document` as `T` and checks that nothing was lost: every field is one the
/// Kubernetes API knows (a typo would vanish in the round trip).
pub(crate) fn typed<T: DeserializeOwned + serde::Serialize>(document: &Value) -> T {
    let object: T = serde_json::from_value(document.clone())
        .unwrap_or_else(|e| panic!("{} {}: {e}", document["kind"], document["metadata"]["name"]));
    let round_trip = serde_json::to_value(&object).unwrap();
    assert_eq!(
        &round_trip, document,
        "unknown or mistyped fields in {}",
        document["kind"]
    );
    object
}

fn one<T: DeserializeOwned + serde::Serialize>(documents: &[Value], kind: &str) -> T {
    let found: Vec<&Value> = documents.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} expected");
    typed(found[0])
}

#[test]
fn manifests_parse_as_kubernetes_objects_and_keep_the_charts_promises() {
    let documents = documents();
    for document in &documents {
        let kind = document["kind"].as_str().unwrap();
        match kind {
            "ServiceAccount"
            | "ConfigMap"
            | "Service"
            | "PodDisruptionBudget"
            | "Deployment"
            | "MutatingWebhookConfiguration"
            | "ValidatingWebhookConfiguration"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "Role"
            | "RoleBinding" => {}
            "Issuer" | "Certificate" => assert_eq!(document["apiVersion"], "cert-manager.io/v1"),
            other => panic!("unexpected kind {other}"),
        }
    }

    let deployment: Deployment = one(&documents, "Deployment");
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    assert_eq!(
        pod.security_context.as_ref().unwrap().run_as_non_root,
        Some(true)
    );
    assert!(pod.affinity.unwrap().pod_anti_affinity.is_some());
    // Cluster mode (the default): the token is mounted for the API.
    assert_eq!(pod.automount_service_account_token, Some(true));
    let container = &pod.containers[0];
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.run_as_non_root, Some(true));
    assert!(container.resources.as_ref().unwrap().requests.is_some());
    let args = container.args.clone().unwrap();
    assert_eq!(args[0], "serve");
    for flag in [
        "--listen=0.0.0.0:8443",
        "--tls-cert=/etc/imagegate/tls/tls.crt",
        "--policies=/etc/imagegate/policies",
        "--docker-config=/etc/imagegate/docker/config.json",
        "--admission-reports=true",
        "--leader-election=true",
    ] {
        assert!(args.iter().any(|a| a == flag), "{flag} missing in {args:?}");
    }
    // The leader Lease names the replica by its Pod name (downward API).
    let pod_name = container
        .env
        .as_ref()
        .unwrap()
        .iter()
        .find(|e| e.name == "POD_NAME")
        .expect("POD_NAME in the environment");
    assert_eq!(
        pod_name
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path,
        "metadata.name"
    );
    assert_eq!(
        container
            .liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .as_deref(),
        Some("/healthz")
    );
    let readiness = container
        .readiness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(readiness.path.as_deref(), Some("/readyz"));
    assert_eq!(readiness.scheme.as_deref(), Some("HTTPS"));
    let volumes = pod.volumes.unwrap();
    let docker = volumes
        .iter()
        .find(|v| v.name == "docker-config")
        .unwrap()
        .secret
        .as_ref()
        .unwrap();
    assert_eq!(docker.items.as_ref().unwrap()[0].key, ".dockerconfigjson");
    assert_eq!(docker.items.as_ref().unwrap()[0].path, "config.json");
    assert!(volumes.iter().any(|v| {
        v.config_map
            .as_ref()
            .is_some_and(|c| c.name == "imagegate-policies")
    }));

    let pdb: PodDisruptionBudget = one(&documents, "PodDisruptionBudget");
    assert!(pdb.spec.unwrap().min_available.is_some());
    let service: Service = one(&documents, "Service");
    let ports = service.spec.unwrap().ports.unwrap();
    assert!(ports.iter().any(|p| p.port == 443));
    let _: ServiceAccount = one(&documents, "ServiceAccount");

    // RBAC: exactly what cluster mode uses, bound to imagegate's service account.
    let role: ClusterRole = one(&documents, "ClusterRole");
    let rules: Vec<(Vec<String>, Vec<String>, Vec<String>)> = role
        .rules
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.api_groups.unwrap_or_default(),
                r.resources.unwrap_or_default(),
                r.verbs,
            )
        })
        .collect();
    let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        rules,
        [
            (
                strings(&["kyverno.io"]),
                strings(&["clusterpolicies", "policies", "policyexceptions"]),
                strings(&["get", "list", "watch"])
            ),
            (
                strings(&["kyverno.io"]),
                strings(&["clusterpolicies/status", "policies/status"]),
                strings(&["update", "patch"])
            ),
            (
                strings(&["policies.kyverno.io"]),
                strings(&[
                    "imagevalidatingpolicies",
                    "namespacedimagevalidatingpolicies",
                    "policyexceptions"
                ]),
                strings(&["get", "list", "watch"])
            ),
            (
                strings(&["policies.kyverno.io"]),
                strings(&[
                    "imagevalidatingpolicies/status",
                    "namespacedimagevalidatingpolicies/status"
                ]),
                strings(&["update", "patch"])
            ),
            (
                strings(&[""]),
                strings(&["namespaces", "secrets", "configmaps"]),
                strings(&["get", "list", "watch"])
            ),
            (
                strings(&[""]),
                strings(&["serviceaccounts"]),
                strings(&["get"])
            ),
            (
                strings(&[""]),
                strings(&["pods", "replicationcontrollers"]),
                strings(&["get", "list", "watch"])
            ),
            (
                strings(&["apps"]),
                strings(&["deployments", "replicasets", "statefulsets", "daemonsets"]),
                strings(&["get", "list", "watch"])
            ),
            (
                strings(&["batch"]),
                strings(&["jobs", "cronjobs"]),
                strings(&["get", "list", "watch"])
            ),
            (
                strings(&["wgpolicyk8s.io"]),
                strings(&["policyreports", "clusterpolicyreports"]),
                strings(&["get", "list", "create", "patch", "update"])
            ),
            (
                strings(&["reports.kyverno.io"]),
                strings(&["ephemeralreports", "clusterephemeralreports"]),
                strings(&["get", "list", "create", "delete"])
            ),
            (
                strings(&["events.k8s.io"]),
                strings(&["events"]),
                strings(&["create", "patch"])
            ),
        ]
    );
    // Leader election: the Lease in imagegate's own namespace only.
    let lease_role: Role = one(&documents, "Role");
    assert_eq!(lease_role.metadata.namespace.as_deref(), Some("imagegate"));
    let lease_rule = &lease_role.rules.unwrap()[0];
    assert_eq!(
        (
            lease_rule.api_groups.clone().unwrap_or_default(),
            lease_rule.resources.clone().unwrap_or_default(),
            lease_rule.verbs.clone()
        ),
        (
            strings(&["coordination.k8s.io"]),
            strings(&["leases"]),
            strings(&["get", "create", "update"])
        )
    );
    let lease_binding: RoleBinding = one(&documents, "RoleBinding");
    assert_eq!(lease_binding.role_ref.name, "imagegate-leader-election");
    assert_eq!(
        lease_binding.subjects.unwrap()[0].name.as_str(),
        "imagegate"
    );
    let binding: ClusterRoleBinding = one(&documents, "ClusterRoleBinding");
    assert_eq!(binding.role_ref.name, "imagegate");
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (subject.kind.as_str(), subject.name.as_str()),
        ("ServiceAccount", "imagegate")
    );
    assert_eq!(subject.namespace.as_deref(), Some("imagegate"));

    // The ConfigMap carries the example policy as it is in policies/.
    let config_map: ConfigMap = one(&documents, "ConfigMap");
    let data = config_map.data.unwrap();
    assert_eq!(
        data["verify-signature.yaml"],
        std::fs::read_to_string(repo().join("policies/verify-signature.yaml")).unwrap()
    );

    let mutating: MutatingWebhookConfiguration = one(&documents, "MutatingWebhookConfiguration");
    let validating: ValidatingWebhookConfiguration =
        one(&documents, "ValidatingWebhookConfiguration");
    let mutating_hook = &mutating.webhooks.as_ref().unwrap()[0];
    let validating_hook = &validating.webhooks.as_ref().unwrap()[0];
    let path = |config: &k8s_openapi::api::admissionregistration::v1::WebhookClientConfig| {
        config.service.as_ref().unwrap().path.clone().unwrap()
    };
    assert_eq!(path(&mutating_hook.client_config), "/mutate");
    assert_eq!(path(&validating_hook.client_config), "/validate");
    for (annotations, versions, side_effects) in [
        (
            &mutating.metadata.annotations,
            &mutating_hook.admission_review_versions,
            &mutating_hook.side_effects,
        ),
        (
            &validating.metadata.annotations,
            &validating_hook.admission_review_versions,
            &validating_hook.side_effects,
        ),
    ] {
        assert_eq!(
            annotations.as_ref().unwrap()["cert-manager.io/inject-ca-from"],
            "imagegate/imagegate-tls"
        );
        assert_eq!(versions, &["v1".to_owned(), "v1beta1".to_owned()]);
        assert_eq!(side_effects, "None");
    }
    // Policy objects are checked at `kubectl apply` (validatePolicies.enabled).
    let policy_hook = &validating.webhooks.as_ref().unwrap()[1];
    assert_eq!(path(&policy_hook.client_config), "/validate-policy");
    let policy_rules = policy_hook.rules.as_ref().unwrap();
    assert_eq!(
        policy_rules[0].resources.as_deref().unwrap(),
        ["clusterpolicies", "policies"]
    );
    assert_eq!(
        policy_rules[0].api_groups.as_deref().unwrap(),
        ["kyverno.io"]
    );
    assert_eq!(
        policy_rules[1].resources.as_deref().unwrap(),
        [
            "imagevalidatingpolicies",
            "namespacedimagevalidatingpolicies"
        ]
    );
    // imagegate never gates its own namespace (it could not start again).
    let selector = serde_json::to_string(&mutating_hook.namespace_selector).unwrap();
    assert!(selector.contains("\"imagegate\""), "{selector}");
}

#[test]
fn chart_templates_agree_with_the_manifests() {
    let chart = repo().join("deploy/helm/imagegate");
    let values: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart.join("values.yaml")).unwrap())
            .unwrap();
    assert_eq!(values["replicaCount"], 2);
    let read = |name: &str| std::fs::read_to_string(chart.join("templates").join(name)).unwrap();
    let webhooks = read("webhooks.yaml");
    for fact in [
        "path: /mutate",
        "path: /validate",
        "cert-manager.io/inject-ca-from",
        "admissionReviewVersions: [\"v1\", \"v1beta1\"]",
    ] {
        assert!(webhooks.contains(fact), "webhooks.yaml lacks {fact}");
    }
    let deployment = read("deployment.yaml");
    for fact in [
        "readOnlyRootFilesystem: true",
        "runAsNonRoot: true",
        "podAntiAffinity",
        "path: /healthz",
        "path: /readyz",
        "--docker-config=/etc/imagegate/docker/config.json",
        "key: .dockerconfigjson",
    ] {
        assert!(deployment.contains(fact), "deployment.yaml lacks {fact}");
    }
    assert!(read("pdb.yaml").contains("kind: PodDisruptionBudget"));
    // Cluster mode switched off: --no-kubernetes, no token, no RBAC.
    for fact in [
        "automountServiceAccountToken: {{ .Values.kubernetes.enabled }}",
        "{{- if not .Values.kubernetes.enabled }}\n            - --no-kubernetes",
    ] {
        assert!(deployment.contains(fact), "deployment.yaml lacks {fact}");
    }
    assert!(read("rbac.yaml").starts_with("{{- if .Values.kubernetes.enabled }}"));
    assert!(webhooks.contains("path: /validate-policy"));
    assert!(webhooks.contains("{{- if include \"imagegate.validatePolicies\" . }}"));
    assert_eq!(values["kubernetes"]["enabled"], true);
    assert_eq!(values["reports"]["admission"], true);
    assert_eq!(values["leaderElection"]["enabled"], true);
    let rbac = read("rbac.yaml");
    for fact in [
        "kind: Role\n",
        "resources: [\"leases\"]",
        "resources: [\"policyreports\", \"clusterpolicyreports\"]",
        "resources: [\"ephemeralreports\", \"clusterephemeralreports\"]",
        "apiGroups: [\"events.k8s.io\"]",
    ] {
        assert!(rbac.contains(fact), "rbac.yaml lacks {fact}");
    }
    for fact in [
        "- --admission-reports={{ .Values.reports.admission }}",
        "- --leader-election={{ .Values.leaderElection.enabled }}",
        "fieldPath: metadata.name",
    ] {
        assert!(deployment.contains(fact), "deployment.yaml lacks {fact}");
    }
    assert_eq!(values["validatePolicies"]["enabled"], true);
}

/// The chart deploys the image of this version, and the Dockerfile builds it with the
/// pinned toolchain on a non-root distroless base.
#[test]
fn chart_image_and_dockerfile_follow_the_crate() {
    let version = env!("CARGO_PKG_VERSION");
    let chart = repo().join("deploy/helm/imagegate");
    let chart_yaml: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart.join("Chart.yaml")).unwrap())
            .unwrap();
    assert_eq!(chart_yaml["appVersion"], version);
    let values: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(chart.join("values.yaml")).unwrap())
            .unwrap();
    assert_eq!(values["image"]["tag"], version);
    for document in documents() {
        if let Some(label) = document
            .pointer("/metadata/labels/app.kubernetes.io~1version")
            .and_then(Value::as_str)
        {
            assert_eq!(label, version, "{}", document["kind"]);
        }
    }

    let workspace = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let rust_version = workspace
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let pinned = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("ARG RUST_VERSION="))
        .unwrap();
    assert!(
        pinned == rust_version || pinned.starts_with(&format!("{rust_version}.")),
        "Dockerfile builds with {pinned}, Cargo.toml pins {rust_version}"
    );
    let stages: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert!(stages[0].contains("rust:${RUST_VERSION}"), "{}", stages[0]);
    assert_eq!(stages[1], "FROM gcr.io/distroless/cc-debian12:nonroot");
    for fact in [
        "cargo build --release --locked -p imagegate",
        "USER 65532:65532",
        "ENTRYPOINT [\"/usr/local/bin/imagegate\"]",
    ] {
        assert!(dockerfile.contains(fact), "Dockerfile lacks {fact}");
    }
    // The build context leaves out build outputs and history.
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    for entry in [".git", "target"] {
        assert!(
            ignore.lines().any(|l| l == entry),
            ".dockerignore lacks {entry}"
        );
    }
}
