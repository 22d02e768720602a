//! `imagegate crds`: the CRDs of the policy, PolicyException and report kinds, structurally
//! valid (the apiextensions v1 rules that can be checked without an API server), with
//! Kyverno's names, the chart's copy equal to the output, `--only` choosing sets,
//! registered by the API-server fake so that the real `kubectl` applies the example
//! policies, exceptions of both groups and reports as imagegate writes them, and wide
//! enough for every policy and exception of this repository and every report the writer
//! builds.
//!
//! The fake does not validate objects against CRD schemas (nor print server-side
//! tables), so what an API server would refuse or prune is checked here by
//! [`check_fits`], and the printer columns by `kubectl -o custom-columns` with the CRD's
//! own column paths.

use std::path::Path;

use imagegate_testkit::apiserver::{ApiServer, Kubectl, kubectl};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

use crate::deploy::{repo, typed};
use crate::util::imagegate;

/// The output of `imagegate crds`.
fn crds_text() -> String {
    let run = imagegate(&["crds"], &[]);
    run.assert_code(0);
    run.stdout.clone()
}

fn crds() -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(&crds_text())
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn find<'a>(crds: &'a [Value], name: &str) -> &'a Value {
    crds.iter()
        .find(|c| c["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no CRD {name}"))
}

/// The storage version's schema.
fn schema(crd: &Value) -> &Value {
    &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
}

/// The structural-schema rules of apiextensions v1 that hold node by node: a type on every
/// node (unless it preserves unknown fields or is int-or-string), `items` on arrays, never
/// `properties` with `additionalProperties`, no `$ref`, no `additionalProperties: false`,
/// `nullable` only with a type, no `default` (see imagegate_kube::crds), and value
/// validations (`anyOf`, ...) without types or descriptions inside.
fn check_structural(node: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(map) = node.as_object() else {
        problems.push(format!("{path}: not an object schema"));
        return;
    };
    let preserve = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let int_or_string = map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let type_ = map.get("type").and_then(Value::as_str);
    if type_.is_none() && !preserve && !int_or_string {
        problems.push(format!("{path}: no type"));
    }
    for forbidden in ["$ref", "definitions", "$defs", "default"] {
        if map.contains_key(forbidden) {
            problems.push(format!("{path}: has {forbidden}"));
        }
    }
    if map.contains_key("properties") && map.contains_key("additionalProperties") {
        problems.push(format!("{path}: properties and additionalProperties"));
    }
    if let Some(Value::Array(values)) = map.get("enum")
        && values.iter().any(Value::is_null)
    {
        problems.push(format!("{path}: null in enum"));
    }
    if map.get("additionalProperties") == Some(&Value::Bool(false)) {
        problems.push(format!("{path}: additionalProperties: false"));
    }
    if type_ == Some("array") && !map.contains_key("items") {
        problems.push(format!("{path}: array without items"));
    }
    if let Some(Value::Object(props)) = map.get("properties") {
        for (name, child) in props {
            check_structural(child, &format!("{path}.{name}"), problems);
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child @ Value::Object(_)) = map.get(key) {
            check_structural(child, &format!("{path}.{key}"), problems);
        }
    }
    for key in ["anyOf", "oneOf", "allOf", "not"] {
        let branches = match map.get(key) {
            Some(Value::Array(b)) => b.clone(),
            Some(other) => vec![other.clone()],
            None => continue,
        };
        for branch in branches {
            for forbidden in [
                "type",
                "description",
                "default",
                "nullable",
                "additionalProperties",
            ] {
                if branch.get(forbidden).is_some() {
                    problems.push(format!(
                        "{path}.{key}: {forbidden} inside a value validation"
                    ));
                }
            }
        }
    }
}

/// What an API server with `schema` would drop or reject from `value`: fields not in the
/// schema where unknown fields are not preserved, values of the wrong JSON type or not in
/// an `enum`, and absent `required` fields.
fn check_fits(value: &Value, schema: &Value, path: &str, problems: &mut Vec<String>) {
    if value.is_null() {
        return; // pruned unless nullable, never an error
    }
    let preserve = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let type_ok = match schema.get("type").and_then(Value::as_str) {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("boolean") => value.is_boolean(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some(other) => panic!("{path}: unexpected type {other}"),
    };
    if !type_ok {
        problems.push(format!("{path}: {value} is not of type {}", schema["type"]));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        problems.push(format!("{path}: {value} is not one of {allowed:?}"));
    }
    match value {
        Value::Object(fields) => {
            let required = schema.get("required").and_then(Value::as_array);
            for name in required.into_iter().flatten().filter_map(Value::as_str) {
                if fields.get(name).is_none_or(Value::is_null) {
                    problems.push(format!("{path}.{name}: required but absent"));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            for (name, child) in fields {
                match (
                    props.and_then(|p| p.get(name)),
                    schema.get("additionalProperties"),
                ) {
                    (Some(s), _) => check_fits(child, s, &format!("{path}.{name}"), problems),
                    (None, Some(s @ Value::Object(_))) => {
                        check_fits(child, s, &format!("{path}.{name}"), problems)
                    }
                    (None, _) if preserve => {}
                    (None, _) => problems.push(format!("{path}.{name}: unknown field")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check_fits(item, s, &format!("{path}[{i}]"), problems);
                }
            }
        }
        _ => {}
    }
}

/// Names, scope, versions of one CRD.
struct Expected {
    name: &'static str,
    kind: &'static str,
    short: &'static [&'static str],
    kyverno_category: bool,
    scope: &'static str,
    versions: &'static [&'static str],
    status: bool,
}

/// Every CRD `imagegate crds` prints, with Kyverno's names (`config/crds` of Kyverno).
const EXPECTED: [Expected; 10] = [
    Expected {
        name: "clusterpolicies.kyverno.io",
        kind: "ClusterPolicy",
        short: &["cpol"],
        kyverno_category: true,
        scope: "Cluster",
        versions: &["v1", "v2beta1"],
        status: true,
    },
    Expected {
        name: "policies.kyverno.io",
        kind: "Policy",
        short: &["pol"],
        kyverno_category: true,
        scope: "Namespaced",
        versions: &["v1", "v2beta1"],
        status: true,
    },
    Expected {
        name: "imagevalidatingpolicies.policies.kyverno.io",
        kind: "ImageValidatingPolicy",
        short: &["ivpol"],
        kyverno_category: true,
        scope: "Cluster",
        versions: &["v1beta1", "v1alpha1"],
        status: true,
    },
    Expected {
        name: "namespacedimagevalidatingpolicies.policies.kyverno.io",
        kind: "NamespacedImageValidatingPolicy",
        short: &["nivpol"],
        kyverno_category: true,
        scope: "Namespaced",
        versions: &["v1beta1", "v1alpha1"],
        status: true,
    },
    Expected {
        name: "policyexceptions.kyverno.io",
        kind: "PolicyException",
        short: &["polex"],
        kyverno_category: true,
        scope: "Namespaced",
        versions: &["v2", "v2beta1"],
        status: false,
    },
    Expected {
        name: "policyexceptions.policies.kyverno.io",
        kind: "PolicyException",
        short: &[],
        kyverno_category: false,
        scope: "Namespaced",
        versions: &["v1beta1", "v1alpha1", "v1"],
        status: false,
    },
    Expected {
        name: "policyreports.wgpolicyk8s.io",
        kind: "PolicyReport",
        short: &["polr"],
        kyverno_category: false,
        scope: "Namespaced",
        versions: &["v1alpha2"],
        status: false,
    },
    Expected {
        name: "clusterpolicyreports.wgpolicyk8s.io",
        kind: "ClusterPolicyReport",
        short: &["cpolr"],
        kyverno_category: false,
        scope: "Cluster",
        versions: &["v1alpha2"],
        status: false,
    },
    Expected {
        name: "ephemeralreports.reports.kyverno.io",
        kind: "EphemeralReport",
        short: &["ephr"],
        kyverno_category: true,
        scope: "Namespaced",
        versions: &["v1"],
        status: false,
    },
    Expected {
        name: "clusterephemeralreports.reports.kyverno.io",
        kind: "ClusterEphemeralReport",
        short: &["cephr"],
        kyverno_category: true,
        scope: "Cluster",
        versions: &["v1"],
        status: false,
    },
];

fn served_versions(crd: &Value) -> Vec<&str> {
    crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect()
}

#[test]
fn crds_name_kyverno_kinds_and_are_structural() {
    let crds = crds();
    let names: Vec<&str> = crds
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = EXPECTED.iter().map(|e| e.name).collect();
    assert_eq!(names, expected);
    for crd in &crds {
        let _: CustomResourceDefinition = typed(crd);
    }
    for expected in &EXPECTED {
        let name = expected.name;
        let crd = find(&crds, name);
        let spec = &crd["spec"];
        assert_eq!(spec["names"]["kind"], expected.kind, "{name}");
        let short = spec["names"]["shortNames"].as_array().cloned();
        assert_eq!(
            short.unwrap_or_default(),
            expected
                .short
                .iter()
                .map(|s| serde_json::json!(s))
                .collect::<Vec<_>>(),
            "{name}"
        );
        let categories = spec["names"].get("categories").cloned();
        assert_eq!(
            categories,
            expected
                .kyverno_category
                .then(|| serde_json::json!(["kyverno"])),
            "{name}"
        );
        assert_eq!(spec["scope"], expected.scope, "{name}");
        assert_eq!(served_versions(crd), expected.versions, "{name}");
        let storage: Vec<bool> = spec["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["storage"].as_bool().unwrap())
            .collect();
        assert!(
            storage[0] && storage[1..].iter().all(|s| !s),
            "{name}: one storage version, the first: {storage:?}"
        );
        for version in spec["versions"].as_array().unwrap() {
            assert_eq!(
                version["subresources"]["status"].is_object(),
                expected.status,
                "{name}"
            );
            let mut problems = Vec::new();
            check_structural(
                &version["schema"]["openAPIV3Schema"],
                &format!("{name}/{}", version["name"]),
                &mut problems,
            );
            assert!(problems.is_empty(), "{problems:#?}");
        }
    }
    // Kyverno's columns of `kubectl get cpol`, READY and MESSAGE from imagegate's condition.
    let columns = columns_of(find(&crds, "clusterpolicies.kyverno.io"));
    for (name, path) in [
        ("ADMISSION", ".spec.admission"),
        ("BACKGROUND", ".spec.background"),
        ("READY", ".status.conditions[?(@.type == \"Ready\")].status"),
        ("AGE", ".metadata.creationTimestamp"),
        (
            "MESSAGE",
            ".status.conditions[?(@.type == \"Ready\")].message",
        ),
    ] {
        assert!(
            columns.contains(&(name.to_owned(), path.to_owned())),
            "{name} missing: {columns:?}"
        );
    }
    // The model's typed fields are checked by the API server; the raw ones keep anything.
    let kyverno = schema(find(&crds, "clusterpolicies.kyverno.io"));
    let verify_images = &kyverno["properties"]["spec"]["properties"]["rules"]["items"]["properties"]
        ["verifyImages"]["items"];
    assert_eq!(
        verify_images["properties"]["imageReferences"]["items"]["type"],
        "string"
    );
    assert_eq!(
        verify_images["properties"]["failureAction"]["enum"],
        serde_json::json!(["audit", "enforce", "Audit", "Enforce"])
    );
    let rule = &kyverno["properties"]["spec"]["properties"]["rules"]["items"];
    assert_eq!(
        rule["properties"]["validate"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
    assert_eq!(rule["x-kubernetes-preserve-unknown-fields"], true);

    // Exceptions: the models' typed fields, the rest kept.
    let polex = schema(find(&crds, "policyexceptions.kyverno.io"));
    let entry = &polex["properties"]["spec"]["properties"]["exceptions"]["items"];
    assert_eq!(entry["properties"]["ruleNames"]["items"]["type"], "string");
    assert_eq!(
        polex["properties"]["spec"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
    let cel = schema(find(&crds, "policyexceptions.policies.kyverno.io"));
    let refs = &cel["properties"]["spec"]["properties"]["policyRefs"]["items"];
    assert_eq!(refs["properties"]["kind"]["type"], "string");
    assert_eq!(
        cel["properties"]["spec"]["x-kubernetes-preserve-unknown-fields"],
        true
    );

    // Reports: the columns Policy Reporter's and Kyverno's users know, the result values
    // of the wgpolicyk8s.io API, only its required fields.
    for name in [
        "policyreports.wgpolicyk8s.io",
        "clusterpolicyreports.wgpolicyk8s.io",
    ] {
        let crd = find(&crds, name);
        assert_eq!(
            columns_of(crd),
            [
                ("Kind", ".scope.kind"),
                ("Name", ".scope.name"),
                ("Pass", ".summary.pass"),
                ("Fail", ".summary.fail"),
                ("Warn", ".summary.warn"),
                ("Error", ".summary.error"),
                ("Skip", ".summary.skip"),
                ("Age", ".metadata.creationTimestamp"),
            ]
            .map(|(n, p)| (n.to_owned(), p.to_owned()))
        );
        let report = schema(crd);
        assert_eq!(report["x-kubernetes-preserve-unknown-fields"], true);
        let result = &report["properties"]["results"]["items"];
        assert_eq!(result["required"], serde_json::json!(["policy"]));
        let mut values: Vec<&str> = result["properties"]["result"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        values.sort_unstable();
        assert_eq!(values, ["error", "fail", "pass", "skip", "warn"]);
        assert_eq!(
            result["properties"]["properties"]["additionalProperties"]["type"],
            "string"
        );
    }
    let ephemeral = schema(find(&crds, "ephemeralreports.reports.kyverno.io"));
    assert_eq!(
        ephemeral["properties"]["spec"]["required"],
        serde_json::json!(["owner"])
    );
}

/// `(name, jsonPath)` of the storage version's printer columns.
fn columns_of(crd: &Value) -> Vec<(String, String)> {
    crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["jsonPath"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn only_prints_the_sets_asked_for() {
    let names = |args: &[&str]| -> Vec<String> {
        let run = imagegate(args, &[]);
        run.assert_code(0);
        serde_saphyr::from_multiple::<Value>(&run.stdout)
            .unwrap()
            .into_iter()
            .filter(|d| !d.is_null())
            .map(|d| d["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(&["crds", "--only", "exceptions"]),
        [
            "policyexceptions.kyverno.io",
            "policyexceptions.policies.kyverno.io"
        ]
    );
    // Repeated or comma-separated, printed once each in the fixed order.
    let two = names(&["crds", "--only", "reports,policies", "--only", "reports"]);
    let expected: Vec<&str> = EXPECTED
        .iter()
        .map(|e| e.name)
        .filter(|n| !n.starts_with("policyexceptions."))
        .collect();
    assert_eq!(two, expected);
    imagegate(&["crds", "--only", "everything"], &[]).assert_code(2);
}

#[test]
fn chart_crds_are_the_output_of_imagegate_crds() {
    let chart_copy = repo().join("deploy/helm/imagegate/crds/imagegate-crds.yaml");
    let chart_copy = std::fs::read_to_string(&chart_copy).unwrap_or_default();
    assert!(
        chart_copy == crds_text(),
        "deploy/helm/imagegate/crds/imagegate-crds.yaml differs from `imagegate crds`; \
         regenerate it: cargo run -p imagegate -- crds > deploy/helm/imagegate/crds/imagegate-crds.yaml"
    );
}

/// Every policy and PolicyException file of this repository (examples and Kyverno test
/// data) fits the schemas: nothing would be pruned or refused by an API server using them.
#[test]
fn every_policy_of_the_repository_fits_the_schemas() {
    let crds = crds();
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    let mut collect = |dir: &Path| {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "yaml") {
                    files.push(p);
                }
            }
        }
    };
    collect(&repo().join("policies"));
    collect(&repo().join("crates/imagegate/tests/data"));
    let mut checked = 0;
    let mut exceptions = 0;
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let Ok(documents) = serde_saphyr::from_multiple::<Value>(&text) else {
            continue;
        };
        for document in documents {
            let (Some(kind), Some(api_version)) =
                (document["kind"].as_str(), document["apiVersion"].as_str())
            else {
                continue;
            };
            let group = api_version.split_once('/').map_or("", |(g, _)| g);
            let Some(crd) = crds
                .iter()
                .find(|c| c["spec"]["names"]["kind"] == kind && c["spec"]["group"] == group)
            else {
                continue;
            };
            checked += 1;
            if kind == "PolicyException" {
                exceptions += 1;
            }
            // metadata is the API server's ObjectMeta, not the CRD schema's to check.
            let mut fields = document.clone();
            if let Some(o) = fields.as_object_mut() {
                o.remove("metadata");
            }
            check_fits(
                &fields,
                schema(crd),
                &format!("{}:{kind}", file.display()),
                &mut problems,
            );
        }
    }
    assert!(checked >= 10, "only {checked} policies found");
    assert!(exceptions >= 1, "no PolicyException found");
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn crds_register_the_kinds_at_the_api_server_and_kubectl_applies_the_examples() {
    // (Exceptions and reports: the next test.)
    let Some(bin) = kubectl() else {
        eprintln!("skipped: kubectl not installed");
        return;
    };
    // A cluster without Kyverno: the policy kinds exist only once the CRDs are created.
    let server = ApiServer::start_with_crds(Vec::new());
    let k = Kubectl::new(bin, &server, Some("default"));
    let out = k.run(&["get", "clusterpolicies"]);
    assert!(
        !out.status.success(),
        "clusterpolicies served before the CRDs"
    );

    let crds_file = k.home.path().join("crds.yaml");
    std::fs::write(&crds_file, crds_text()).unwrap();
    // `create`: a CRD this size is over the 256 KiB annotation that client-side `apply`
    // would add (as for Kyverno's CRDs).
    let created = k.ok(&["create", "-f", crds_file.to_str().unwrap()]);
    for name in EXPECTED.map(|e| e.name) {
        assert!(
            created.contains(&format!(
                "customresourcedefinition.apiextensions.k8s.io/{name} created"
            )),
            "{created}"
        );
    }

    let example = repo().join("policies/verify-signature.yaml");
    let applied = k.ok(&["apply", "-f", example.to_str().unwrap()]);
    assert!(applied.contains("clusterpolicy.kyverno.io/"), "{applied}");
    assert!(applied.contains(" created"), "{applied}");
    let listed = k.ok(&["get", "cpol", "-o", "name"]);
    assert!(listed.contains("clusterpolicy.kyverno.io/"), "{listed}");

    let namespaced = k.home.path().join("policy.yaml");
    std::fs::write(
        &namespaced,
        std::fs::read_to_string(&example)
            .unwrap()
            .replace("kind: ClusterPolicy", "kind: Policy"),
    )
    .unwrap();
    let applied = k.ok(&["apply", "-n", "default", "-f", namespaced.to_str().unwrap()]);
    assert!(applied.contains("policy.kyverno.io/"), "{applied}");
    let listed = k.ok(&["get", "pol", "-n", "default", "-o", "name"]);
    assert!(listed.contains("policy.kyverno.io/"), "{listed}");
}

/// The reports imagegate writes, built by the writer's own code: the PolicyReport of a
/// Pod and the ClusterPolicyReport of a Namespace (`imagegate_engine::PolicyReport`, every
/// result value, a skip by exception, images and digests), one merged with an older
/// report, and the EphemeralReports a follower writes for both.
fn written_reports() -> Vec<Value> {
    use imagegate_engine::{
        CheckedImage, EngineResponse, PolicyKind, PolicyReport, PolicyResponse, Process,
        ResourceId, RuleResponse, RuleStatus,
    };
    use imagegate_kube::admission_reports::to_ephemeral;
    use imagegate_kube::reports::merge_reports;
    use imagegate_policy::model::{FailureAction, FailurePolicy};

    let rule = |name: &str, status: RuleStatus, message: &str| RuleResponse {
        name: name.to_owned(),
        rule_type: imagegate_engine::response::IMAGE_VERIFY,
        status,
        message: message.to_owned(),
        failure_action: FailureAction::Audit,
        images: vec![CheckedImage {
            image: "registry.local/app:v1".to_owned(),
            digest: (status != RuleStatus::Error).then(|| format!("sha256:{}", "1".repeat(64))),
        }],
        exceptions: Vec::new(),
    };
    let mut skipped = rule(
        "verify",
        RuleStatus::Skip,
        "rule is skipped due to policy exceptionsteam/legacy",
    );
    skipped.images.clear();
    skipped.exceptions = vec!["team/legacy".to_owned()];
    let mut cluster_policy = PolicyResponse::new(
        PolicyKind::ClusterPolicy,
        "check-image".to_owned(),
        None,
        FailurePolicy::Fail,
    );
    cluster_policy.rules = vec![
        rule(
            "verify-signature",
            RuleStatus::Fail,
            "failed to verify image registry.local/app:v1: .attestors[0].entries[0].keys: no signatures found",
        ),
        rule("verify-attestation", RuleStatus::Pass, ""),
        rule(
            "registry-down",
            RuleStatus::Error,
            "failed to verify image registry.local/app:v1: registry unreachable",
        ),
        rule("warn-only", RuleStatus::Warn, "signature expires soon"),
    ];
    let mut policy = PolicyResponse::new(
        PolicyKind::Policy,
        "signed".to_owned(),
        Some("team".to_owned()),
        FailurePolicy::Ignore,
    );
    policy.rules = vec![skipped];
    let mut ivp = PolicyResponse::new(
        PolicyKind::ImageValidatingPolicy,
        "ivp".to_owned(),
        None,
        FailurePolicy::Fail,
    );
    ivp.rules = vec![rule("ivp", RuleStatus::Pass, "")];

    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": "0c7d1c2e-5d9a-4c1b-8e4f-1a2b3c4d5e6f"}});
    let namespace = serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "team", "uid": "9b8a7c6d-1e2f-4a3b-8c7d-6e5f4a3b2c1d"}});
    let mut reports = Vec::new();
    for (resource, process) in [
        (&pod, Process::Admission),
        (&namespace, Process::Background),
    ] {
        let response = EngineResponse {
            resource: ResourceId::of(resource),
            policies: vec![cluster_policy.clone(), policy.clone(), ivp.clone()],
            patches: Vec::new(),
            patched: resource.clone(),
        };
        let report =
            PolicyReport::for_resource(resource, [&response], process, 1_764_650_000).unwrap();
        reports.push(serde_json::to_value(&report).unwrap());
    }
    let mut newer = reports[0].clone();
    newer["results"] = serde_json::json!([newer["results"][0].clone()]);
    newer["results"][0]["timestamp"]["seconds"] = serde_json::json!(1_764_650_100);
    newer["results"][0]["result"] = serde_json::json!("pass");
    reports.push(merge_reports(Some(&reports[0]), newer));
    let ephemeral: Vec<Value> = reports[..2]
        .iter()
        .map(|r| to_ephemeral(r, "5f0e6d7c-8b9a-4c1d-9e2f-3a4b5c6d7e8f"))
        .collect();
    reports.extend(ephemeral);
    reports
}

/// The CRD of `object`'s kind and group.
fn crd_of<'a>(crds: &'a [Value], object: &Value) -> &'a Value {
    let kind = object["kind"].as_str().unwrap();
    let group = object["apiVersion"]
        .as_str()
        .unwrap()
        .split_once('/')
        .map_or("", |(g, _)| g);
    crds.iter()
        .find(|c| c["spec"]["names"]["kind"] == kind && c["spec"]["group"] == group)
        .unwrap_or_else(|| panic!("no CRD for {group} {kind}"))
}

fn fit_problems(crds: &[Value], object: &Value) -> Vec<String> {
    let mut fields = object.clone();
    fields.as_object_mut().unwrap().remove("metadata");
    let mut problems = Vec::new();
    check_fits(
        &fields,
        schema(crd_of(crds, object)),
        object["kind"].as_str().unwrap(),
        &mut problems,
    );
    problems
}

/// Every report the writer builds fits the report CRDs (types, enums, required fields;
/// nothing pruned), and one that breaks the wgpolicyk8s.io API does not.
#[test]
fn the_reports_imagegate_writes_fit_the_report_crds() {
    let crds = crds();
    let reports = written_reports();
    let kinds: Vec<&str> = reports
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "PolicyReport",
            "ClusterPolicyReport",
            "PolicyReport",
            "EphemeralReport",
            "ClusterEphemeralReport"
        ]
    );
    assert_eq!(reports[0]["results"].as_array().unwrap().len(), 6);
    for report in &reports {
        let problems = fit_problems(&crds, report);
        assert!(problems.is_empty(), "{report:#}\n{problems:#?}");
    }
    // Fields of other writers (Kyverno's severity, category, resources) are kept.
    let mut other = reports[0].clone();
    other["scopeSelector"] = serde_json::json!({"matchLabels": {"app": "web"}});
    other["results"][0]["severity"] = serde_json::json!("high");
    other["results"][0]["resources"] = serde_json::json!([{"kind": "Pod", "name": "web"}]);
    assert_eq!(fit_problems(&crds, &other), Vec::<String>::new());
    // The check sees what an API server would refuse.
    let mut broken = reports[0].clone();
    broken["results"][0]
        .as_object_mut()
        .unwrap()
        .remove("policy");
    broken["results"][1]["result"] = serde_json::json!("passed");
    broken["summary"]["pass"] = serde_json::json!("1");
    assert_eq!(fit_problems(&crds, &broken).len(), 3, "{broken:#}");
    let mut ownerless = reports[3].clone();
    ownerless["spec"].as_object_mut().unwrap().remove("owner");
    assert_eq!(
        fit_problems(&crds, &ownerless),
        ["EphemeralReport.spec.owner: required but absent"]
    );
}

/// Exceptions of both groups and reports as imagegate writes them, through `kubectl
/// apply` on a cluster with only `imagegate crds`' CRDs; `kubectl get polex,polr` lists
/// them, and the CRDs' printer-column paths (evaluated by kubectl itself, as
/// `custom-columns`: the fake prints no server-side tables) show the resource and counts.
#[test]
fn kubectl_applies_exceptions_and_reports_and_their_columns_show_them() {
    let Some(bin) = kubectl() else {
        eprintln!("skipped: kubectl not installed");
        return;
    };
    let server = ApiServer::start_with_crds(Vec::new());
    let k = Kubectl::new(bin, &server, Some("default"));
    let crds_file = k.home.path().join("crds.yaml");
    std::fs::write(&crds_file, crds_text()).unwrap();
    k.ok(&["create", "-f", crds_file.to_str().unwrap()]);
    let crds = crds();

    let exceptions = k.home.path().join("exceptions.yaml");
    let text = format!(
        "{}\n---\n{}",
        std::fs::read_to_string(
            repo().join("crates/imagegate/tests/data/kyverno/exceptions/exception.yaml")
        )
        .unwrap()
        .replace("namespace: delta", "namespace: default"),
        r#"apiVersion: policies.kyverno.io/v1beta1
kind: PolicyException
metadata:
  name: legacy
  namespace: default
spec:
  policyRefs:
  - name: team-key
    kind: ImageValidatingPolicy
  matchConditions:
  - name: legacy
    expression: "object.metadata.name.startsWith('legacy-')"
  expiresAt: "2030-01-01T00:00:00Z"
  reportResult: skip
"#
    );
    for document in serde_saphyr::from_multiple::<Value>(&text).unwrap() {
        let problems = fit_problems(&crds, &document);
        assert!(problems.is_empty(), "{problems:#?}");
    }
    std::fs::write(&exceptions, &text).unwrap();
    let applied = k.ok(&["apply", "-f", exceptions.to_str().unwrap()]);
    assert!(
        applied.contains("policyexception.kyverno.io/delta-exception created"),
        "{applied}"
    );
    assert!(
        applied.contains("policyexception.policies.kyverno.io/legacy created"),
        "{applied}"
    );

    let reports = written_reports();
    for (i, report) in reports.iter().enumerate() {
        // The merged report is the first one's next version.
        if i == 2 {
            continue;
        }
        let file = k.home.path().join(format!("report-{i}.json"));
        std::fs::write(&file, serde_json::to_string(report).unwrap()).unwrap();
        let applied = k.ok(&["apply", "-f", file.to_str().unwrap()]);
        assert!(applied.contains(" created"), "{applied}");
    }

    let listed = k.ok(&["get", "polex,polr", "-n", "default", "-o", "name"]);
    let pod_report = reports[0]["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        [
            "policyexception.kyverno.io/delta-exception".to_owned(),
            format!("policyreport.wgpolicyk8s.io/{pod_report}"),
        ],
        "{listed}"
    );
    let listed = k.ok(&["get", "policyexceptions.policies.kyverno.io", "-o", "name"]);
    assert_eq!(listed.trim(), "policyexception.policies.kyverno.io/legacy");
    let listed = k.ok(&["get", "polex,polr", "-n", "default"]);
    assert!(listed.contains("delta-exception"), "{listed}");
    assert!(listed.contains(pod_report), "{listed}");

    // Each kind's printer columns, as kubectl evaluates them.
    let columns = |resource: &str, namespaced: bool| -> Vec<String> {
        let crd = crds
            .iter()
            .find(|c| c["spec"]["names"]["shortNames"][0] == resource)
            .unwrap();
        let spec: Vec<String> = columns_of(crd)
            .into_iter()
            .filter(|(name, _)| name != "Age")
            .map(|(name, path)| format!("{}:{path}", name.to_ascii_uppercase()))
            .collect();
        let custom = format!("custom-columns={}", spec.join(","));
        let mut args = vec!["get", resource, "-o", custom.as_str(), "--no-headers"];
        if namespaced {
            args.extend(["-n", "default"]);
        }
        k.ok(&args).split_whitespace().map(str::to_owned).collect()
    };
    // 2 pass, 1 fail, 1 warn, 1 error, 1 skip (see written_reports).
    assert_eq!(
        columns("polr", true),
        ["Pod", "web", "2", "1", "1", "1", "1"]
    );
    assert_eq!(
        columns("cpolr", false),
        ["Namespace", "team", "2", "1", "1", "1", "1"]
    );
    // Kyverno's labels: imagegate sets the source and the resource's uid (`-o wide`).
    let uid = reports[0]["scope"]["uid"].as_str().unwrap();
    assert_eq!(
        columns("ephr", true),
        [
            "admission",
            "<none>",
            "<none>",
            "<none>",
            "2",
            "1",
            "1",
            "1",
            "1",
            uid,
            "<none>"
        ]
    );
}
