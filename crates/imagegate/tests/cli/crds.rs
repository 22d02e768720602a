//! `imagegate crds`: the CRDs of the policy kinds, structurally valid (the apiextensions v1
//! rules that can be checked without an API server), with Kyverno's names, the chart's
//! copy equal to the output, registered by the API-server fake so that the real `kubectl`
//! applies the example policies, and wide enough for every policy of this repository.

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
/// schema where unknown fields are not preserved, and values of the wrong JSON type.
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

#[test]
fn crds_name_kyverno_kinds_and_are_structural() {
    let crds = crds();
    assert_eq!(crds.len(), 4);
    for crd in &crds {
        let _: CustomResourceDefinition = typed(crd);
    }
    for (name, kind, short, scope, versions) in [
        (
            "clusterpolicies.kyverno.io",
            "ClusterPolicy",
            "cpol",
            "Cluster",
            ["v1", "v2beta1"],
        ),
        (
            "policies.kyverno.io",
            "Policy",
            "pol",
            "Namespaced",
            ["v1", "v2beta1"],
        ),
        (
            "imagevalidatingpolicies.policies.kyverno.io",
            "ImageValidatingPolicy",
            "ivpol",
            "Cluster",
            ["v1beta1", "v1alpha1"],
        ),
        (
            "namespacedimagevalidatingpolicies.policies.kyverno.io",
            "NamespacedImageValidatingPolicy",
            "nivpol",
            "Namespaced",
            ["v1beta1", "v1alpha1"],
        ),
    ] {
        let crd = find(&crds, name);
        let spec = &crd["spec"];
        assert_eq!(spec["names"]["kind"], kind);
        assert_eq!(spec["names"]["shortNames"], serde_json::json!([short]));
        assert_eq!(spec["names"]["categories"], serde_json::json!(["kyverno"]));
        assert_eq!(spec["scope"], scope);
        let served: Vec<&str> = spec["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(served, versions);
        let storage: Vec<bool> = spec["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["storage"].as_bool().unwrap())
            .collect();
        assert_eq!(
            storage,
            [true, false],
            "{name}: one storage version, the first"
        );
        for version in spec["versions"].as_array().unwrap() {
            assert!(version["subresources"]["status"].is_object(), "{name}");
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
    let columns: Vec<(String, String)> = find(&crds, "clusterpolicies.kyverno.io")["spec"]
        ["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["jsonPath"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
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

/// Every policy file of this repository (examples and Kyverno test data) fits the schemas:
/// nothing would be pruned or refused by an API server using them.
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
            let Some(crd) = crds.iter().find(|c| {
                c["spec"]["names"]["kind"] == kind
                    && api_version.starts_with(c["spec"]["group"].as_str().unwrap())
            }) else {
                continue;
            };
            checked += 1;
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
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn crds_register_the_kinds_at_the_api_server_and_kubectl_applies_the_examples() {
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
    for name in [
        "clusterpolicies.kyverno.io",
        "policies.kyverno.io",
        "imagevalidatingpolicies.policies.kyverno.io",
        "namespacedimagevalidatingpolicies.policies.kyverno.io",
    ] {
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
