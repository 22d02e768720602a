//! `imagegate audit` against the test kit's API server fake and a real `docker-registry`:
//! workloads listed from the API, verified against given or in-cluster policies,
//! nothing written, exit 1 when something would be denied.

use imagegate_testkit::apiserver::ApiServer;
use serde_json::{Value, json};

use crate::serve::{images, policy};
use crate::util::imagegate;

/// The apps kinds, which the fake serves only once registered (as a CRD would).
fn serve_apps(server: &ApiServer) {
    server
        .create(
            "customresourcedefinitions.apiextensions.k8s.io",
            None,
            json!({
                "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                "metadata": {"name": "deployments.apps"},
                "spec": {"group": "apps", "scope": "Namespaced",
                         "names": {"kind": "Deployment", "plural": "deployments", "singular": "deployment"},
                         "versions": [{"name": "v1", "served": true, "storage": true}]}
            }),
        )
        .unwrap();
}

fn create(server: &ApiServer, resource: &str, namespace: &str, object: Value) {
    server.create(resource, Some(namespace), object).unwrap();
}

fn pod(name: &str, namespace: &str, image: &str, owner: Option<&str>) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"name": "app", "image": image}]}
    });
    if let Some(owner) = owner {
        pod["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": "rs-uid", "controller": true
        }]);
    }
    pod
}

#[test]
fn audit_lists_workloads_verifies_their_images_and_writes_nothing() {
    let images = images();
    let server = ApiServer::start();
    serve_apps(&server);
    // `default` exists in the fake already.
    server
        .create("namespaces", None, json!({"metadata": {"name": "legacy"}}))
        .unwrap();
    create(
        &server,
        "pods",
        "default",
        pod("signed", "default", &images.signed, None),
    );
    create(
        &server,
        "pods",
        "legacy",
        pod("unsigned", "legacy", &images.unsigned, None),
    );
    // A Pod of a ReplicaSet: audited through its controller, not on its own.
    create(
        &server,
        "pods",
        "default",
        pod(
            "web-5d8f-abcde",
            "default",
            &images.unsigned,
            Some("web-5d8f"),
        ),
    );
    create(
        &server,
        "deployments.apps",
        "default",
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": images.signed}]}}}
        }),
    );
    let dir = tempfile::tempdir().unwrap();
    let policy_file = dir.path().join("policy.yaml");
    std::fs::write(
        &policy_file,
        policy("check-image", "127.0.0.1:*", &images.key, "Fail", 10, ""),
    )
    .unwrap();
    let kubeconfig = server.kubeconfig(None);
    let writes_before = writes(&server);

    let run = imagegate(
        &[
            "audit",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--policy",
            policy_file.to_str().unwrap(),
            "-o",
            "json",
        ],
        &[],
    );
    run.assert_code(1);
    let document: Value = serde_json::from_str(&run.stdout).unwrap();
    let rows = document["results"].as_array().unwrap();
    let row = |workload: &str| {
        rows.iter()
            .find(|r| r["workload"] == workload)
            .unwrap_or_else(|| panic!("{workload} not in {rows:#?}"))
    };
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let signed = row("Pod/signed");
    assert_eq!(signed["namespace"], "default");
    assert_eq!(signed["image"], images.signed);
    assert_eq!(signed["digest"], images.signed_digest);
    assert_eq!(signed["policy"], "check-image");
    assert_eq!(signed["rule"], "verify");
    assert_eq!(signed["result"], "pass");
    let unsigned = row("Pod/unsigned");
    assert_eq!(unsigned["namespace"], "legacy");
    assert_eq!(unsigned["result"], "fail");
    assert!(
        unsigned["message"]
            .as_str()
            .unwrap()
            .ends_with(".attestors[0].entries[0].keys: no signatures found"),
        "{unsigned}"
    );
    let deployment = row("Deployment/web");
    assert_eq!(deployment["rule"], "autogen-verify");
    assert_eq!(deployment["result"], "pass");
    assert_eq!(document["summary"]["workloads"], 3);
    assert_eq!(document["summary"]["fail"], 1);
    // Read-only: no create, update, patch or delete reached the API server.
    assert_eq!(writes(&server), writes_before);

    // The cluster's own policies when none is given, and the table: an exception for
    // the legacy namespace leaves nothing that would be denied.
    server
        .create(
            "clusterpolicies.kyverno.io",
            None,
            serde_saphyr::from_str(&policy(
                "check-image",
                "127.0.0.1:*",
                &images.key,
                "Fail",
                10,
                "",
            ))
            .unwrap(),
        )
        .unwrap();
    let exception = dir.path().join("exception.yaml");
    std::fs::write(
        &exception,
        "apiVersion: kyverno.io/v2\nkind: PolicyException\nmetadata: {name: legacy, namespace: kyverno}\nspec:\n  exceptions:\n  - policyName: check-image\n    ruleNames: ['*']\n  match:\n    any:\n    - resources: {namespaces: [legacy]}\n",
    )
    .unwrap();
    let writes_before = writes(&server);
    let run = imagegate(
        &[
            "audit",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--exception",
            exception.to_str().unwrap(),
        ],
        &[],
    );
    run.assert_code(0);
    assert_eq!(writes(&server), writes_before, "audit wrote to the cluster");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines[0].starts_with("NAMESPACE"), "{}", run.stdout);
    assert!(
        lines[0].contains("WORKLOAD") && lines[0].contains("POLICY/RULE"),
        "{}",
        run.stdout
    );
    let legacy = lines
        .iter()
        .find(|l| l.starts_with("legacy"))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(
        legacy.contains("check-image/verify") && legacy.contains("skip"),
        "{legacy}"
    );
    assert!(
        legacy.contains("rule is skipped due to policy exceptionskyverno/legacy"),
        "{legacy}"
    );
    assert!(
        run.stdout
            .contains("3 workloads; pass: 2, fail: 0, warn: 0, error: 0, skip: 1"),
        "{}",
        run.stdout
    );

    // No cluster: a usage error, not a pass.
    let missing = dir.path().join("missing-kubeconfig");
    imagegate(&["audit", "--kubeconfig", missing.to_str().unwrap()], &[]).assert_code(2);
}

/// Requests that would change something.
fn writes(server: &ApiServer) -> usize {
    server
        .requests()
        .iter()
        .filter(|r| !matches!(r.method.as_str(), "GET" | "HEAD"))
        .count()
}
