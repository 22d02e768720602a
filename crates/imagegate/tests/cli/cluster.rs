//! `imagegate serve` in cluster mode end to end: the real binary with `--kubeconfig`
//! against the test kit's API-server fake, and real `docker-registry`s (one behind
//! htpasswd). Policies, namespace labels, `k8s://` keys and pull secrets come from the
//! API; every wait polls, none is a fixed sleep.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use imagegate_testkit::apiserver::ApiServer;
use imagegate_testkit::fixtures::decoded_patch;
use imagegate_testkit::{CosignKey, Registry};
use serde_json::{Value, json};

use crate::serve::{Server, count, images, pod, policy, review_of};

const CPOL: &str = "clusterpolicies.kyverno.io";
/// imagegate's own namespace in these tests (the kubeconfig context's).
const OWN_NAMESPACE: &str = "imagegate-system";

/// The API server fake with the namespaces the tests use, and `imagegate serve` started
/// against it (no `--policies`: the cluster's policies only), ready.
fn start(default_labels: Value) -> (ApiServer, Server, tempfile::TempDir) {
    let api = ApiServer::start();
    // The fake has `default` already, as a cluster does.
    api.merge_patch(
        "namespaces",
        None,
        "default",
        json!({"metadata": {"labels": default_labels}}),
    )
    .unwrap();
    api.create(
        "namespaces",
        None,
        json!({"metadata": {"name": OWN_NAMESPACE}}),
    )
    .unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(Some(OWN_NAMESPACE));
    let server = Server::start(cwd.path(), &["--kubeconfig", kubeconfig.to_str().unwrap()]);
    poll(Duration::from_secs(10), "readiness", || {
        let (status, body) = server.get(&server.metrics, "/readyz");
        (status == 200).then_some(body)
    });
    (api, server, cwd)
}

/// Polls `f` every 20 ms until it answers, failing after `limit`.
fn poll<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(found) = f() {
            return found;
        }
        assert!(started.elapsed() < limit, "no {what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A policy document of `serve::policy` as the JSON object `kubectl apply` would send.
fn policy_object(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap()
}

fn ready_condition(api: &ApiServer, name: &str) -> Option<Value> {
    api.get(CPOL, None, name)
        .ok()?
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
}

/// The mutate-phase answer for a Pod `name` running `image` (more fields in `spec`).
fn admit(server: &Server, name: &str, image: &str, spec: Value) -> Value {
    let mut object = pod(name, image);
    if let (Some(target), Value::Object(extra)) = (object["spec"].as_object_mut(), spec) {
        target.extend(extra);
    }
    server
        .review("/mutate", &review_of("admission.k8s.io/v1", name, &object))
        .0
}

fn message(response: &Value) -> String {
    response["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn applied_policies_are_enforced_within_2s_and_a_broken_one_keeps_the_previous() {
    let images = images();
    let (api, server, _cwd) = start(json!({}));
    assert!(
        server
            .get(&server.metrics, "/readyz")
            .1
            .contains("0 policies"),
        "no file or bundled policies in cluster mode"
    );
    assert!(admit(&server, "before", &images.unsigned, json!({}))["allowed"] == true);

    let pattern = format!("{}/app/*", images.registry.host());
    let text = policy("signed", &pattern, &images.key, "Fail", 10, "");
    let applied = Instant::now();
    api.create(CPOL, None, policy_object(&text)).unwrap();
    let denied = poll(Duration::from_secs(2), "enforcement", || {
        let response = admit(&server, "unsigned", &images.unsigned, json!({}));
        (response["allowed"] == false).then_some(response)
    });
    eprintln!("policy applied → enforced: {:?}", applied.elapsed());
    assert!(message(&denied).contains("signed"), "{denied}");
    let signed = admit(&server, "signed", &images.signed, json!({}));
    assert_eq!(signed["allowed"], true, "{signed}");
    assert!(
        decoded_patch(&signed).iter().any(|op| op["value"]
            .as_str()
            .is_some_and(|v| v.ends_with(&images.signed_digest))),
        "{signed}"
    );
    let ready = poll(Duration::from_secs(5), "Ready=True", || {
        ready_condition(&api, "signed").filter(|c| c["status"] == "True")
    });
    assert_eq!(ready["reason"], "Loaded");

    // Broken: the previous version stays enforced, Ready=False says why, the metric
    // names it.
    api.merge_patch(
        CPOL,
        None,
        "signed",
        json!({"spec": {"validationFailureAction": "Sometimes"}}),
    )
    .unwrap();
    let not_ready = poll(Duration::from_secs(5), "Ready=False", || {
        ready_condition(&api, "signed").filter(|c| c["status"] == "False")
    });
    assert!(
        not_ready["message"]
            .as_str()
            .is_some_and(|m| m.contains("validationFailureAction")),
        "{not_ready}"
    );
    let metrics = poll(Duration::from_secs(5), "invalid-policy metric", || {
        let (_, text) = server.get(&server.metrics, "/metrics");
        (count(&text, "imagegate_policy_invalid{") == 1.0).then_some(text)
    });
    assert!(metrics.contains(r#"policy_name="signed""#), "{metrics}");
    let still = admit(&server, "still-denied", &images.unsigned, json!({}));
    assert_eq!(still["allowed"], false, "previous version kept: {still}");

    // Deleted: nothing is enforced any more, and the metric forgets it.
    api.delete(CPOL, None, "signed").unwrap();
    poll(Duration::from_secs(2), "deletion", || {
        (admit(&server, "after", &images.unsigned, json!({}))["allowed"] == true).then_some(())
    });
    let (_, text) = server.get(&server.metrics, "/metrics");
    assert_eq!(count(&text, "imagegate_policy_invalid{"), 0.0, "{text}");
}

#[test]
fn namespace_labels_decide_whether_a_namespace_selector_matches() {
    let images = images();
    let (api, server, _cwd) = start(json!({"env": "dev"}));
    let pattern = format!("{}/app/*", images.registry.host());
    let mut object = policy_object(&policy("prod-only", &pattern, &images.key, "Fail", 10, ""));
    object["spec"]["rules"][0]["match"]["any"][0]["resources"]["namespaceSelector"] =
        json!({"matchLabels": {"env": "prod"}});
    api.create(CPOL, None, object).unwrap();
    poll(Duration::from_secs(5), "the policy", || {
        let (_, body) = server.get(&server.metrics, "/readyz");
        body.contains("1 policies").then_some(())
    });
    // Loaded: still, a dev namespace is not selected.
    let dev = admit(&server, "in-dev", &images.unsigned, json!({}));
    assert_eq!(dev["allowed"], true, "{dev}");

    api.merge_patch(
        "namespaces",
        None,
        "default",
        json!({"metadata": {"labels": {"env": "prod"}}}),
    )
    .unwrap();
    let denied = poll(Duration::from_secs(2), "the label change", || {
        let response = admit(&server, "in-prod", &images.unsigned, json!({}));
        (response["allowed"] == false).then_some(response)
    });
    assert!(message(&denied).contains("prod-only"), "{denied}");
}

/// A `kubernetes.io/dockerconfigjson` Secret for `host`.
fn pull_secret(name: &str, host: &str, user: &str, password: &str) -> Value {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = json!({"auths": {host: {"auth": auth}}}).to_string();
    json!({
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": config},
    })
}

#[test]
fn keys_from_secrets_and_pull_secrets_of_pods_service_accounts_and_policies() {
    const USER: &str = "puller";
    const PASSWORD: &str = "pull-Secret-42";
    let registry = Registry::start_with_basic_auth(USER, PASSWORD);
    let host = registry.host();
    let key = CosignKey::generate();
    let pusher = registry.pusher();
    let digest = pusher.push_image("private/app", "v1");
    pusher.sign(
        "private/app",
        &format!("{host}/private/app"),
        &digest,
        &key,
        &BTreeMap::new(),
    );
    let image = format!("{host}/private/app:v1");

    let (api, server, _cwd) = start(json!({}));
    api.create("namespaces", None, json!({"metadata": {"name": "keys"}}))
        .unwrap();
    api.create(
        "secrets",
        Some("keys"),
        json!({"metadata": {"name": "cosign"}, "stringData": {"cosign.pub": key.public_pem()}}),
    )
    .unwrap();
    api.create(
        "secrets",
        Some("default"),
        pull_secret("regcred", &host, USER, PASSWORD),
    )
    .unwrap();
    api.create(
        "serviceaccounts",
        Some("default"),
        json!({"metadata": {"name": "builder"}, "imagePullSecrets": [{"name": "regcred"}]}),
    )
    .unwrap();
    let mut object = policy_object(&policy(
        "from-secrets",
        &format!("{host}/private/*"),
        &key,
        "Fail",
        10,
        "",
    ));
    object["spec"]["rules"][0]["verifyImages"][0]["attestors"][0]["entries"][0]["keys"]["publicKeys"] =
        json!("k8s://keys/cosign");
    api.create(CPOL, None, object).unwrap();
    poll(Duration::from_secs(5), "the policy", || {
        let (_, body) = server.get(&server.metrics, "/readyz");
        body.contains("1 policies").then_some(())
    });

    // The Pod's own pull secret: resolved, verified with the Secret's key, pinned.
    let with_secret = admit(
        &server,
        "with-secret",
        &image,
        json!({"imagePullSecrets": [{"name": "regcred"}]}),
    );
    assert_eq!(with_secret["allowed"], true, "{with_secret}");
    assert!(
        decoded_patch(&with_secret)
            .iter()
            .any(|op| op["value"].as_str().is_some_and(|v| v.ends_with(&digest))),
        "{with_secret}"
    );
    // Without credentials the Pod could not resolve the tag itself: no cached
    // resolution helps it (failurePolicy Fail denies the registry error).
    let without = admit(&server, "without", &image, json!({}));
    assert_eq!(without["allowed"], false, "{without}");
    assert!(message(&without).contains("unauthorized"), "{without}");
    // Its ServiceAccount's pull secrets count as its own.
    let via_account = admit(
        &server,
        "via-account",
        &image,
        json!({"serviceAccountName": "builder"}),
    );
    assert_eq!(via_account["allowed"], true, "{via_account}");

    // A pull secret named by the policy, in imagegate's own namespace.
    api.create(
        "secrets",
        Some(OWN_NAMESPACE),
        pull_secret("policy-cred", &host, USER, PASSWORD),
    )
    .unwrap();
    api.merge_patch(
        CPOL,
        None,
        "from-secrets",
        json!({"spec": {"rules": [merged_rule(&api, json!({"secrets": ["policy-cred"]}))]}}),
    )
    .unwrap();
    poll(Duration::from_secs(2), "the policy's pull secret", || {
        (admit(&server, "by-policy", &image, json!({}))["allowed"] == true).then_some(())
    });

    // The key's Secret deleted: a rule error naming it, never a pass.
    api.delete("secrets", Some("keys"), "cosign").unwrap();
    let denied = poll(Duration::from_secs(2), "the missing key", || {
        let response = admit(
            &server,
            "key-gone",
            &image,
            json!({"imagePullSecrets": [{"name": "regcred"}]}),
        );
        (response["allowed"] == false).then_some(response)
    });
    assert!(
        message(&denied).contains("secret keys/cosign not found"),
        "{denied}"
    );
    for text in [message(&denied), server.log_text()] {
        assert!(!text.contains(PASSWORD), "a pull secret leaked: {text}");
    }
}

/// The policy's first rule with `imageRegistryCredentials` set (a merge patch replaces
/// lists whole).
fn merged_rule(api: &ApiServer, credentials: Value) -> Value {
    let current = api.get(CPOL, None, "from-secrets").unwrap();
    let mut rule = current["spec"]["rules"][0].clone();
    rule["verifyImages"][0]["imageRegistryCredentials"] = credentials;
    rule
}

#[test]
fn background_scans_report_the_pods_already_running() {
    let images = images();
    let (api, server, _cwd) = start(json!({}));
    // Pods running before any policy exists: admission never saw them under one.
    let signed = api
        .create(
            "pods",
            Some("default"),
            pod("running-signed", &images.signed),
        )
        .unwrap();
    let unsigned = api
        .create(
            "pods",
            Some("default"),
            pod("running-unsigned", &images.unsigned),
        )
        .unwrap();
    // An Audit policy is applied: the change starts a scan whose results become reports.
    let pattern = format!("{}/app/*", images.registry.host());
    // Audit forbids mutateDigest; tags are then not pinned, so no digest is required.
    let text = policy(
        "audit-signed",
        &pattern,
        &images.key,
        "Fail",
        10,
        "      verifyDigest: false\n",
    )
    .replace("failureAction: Enforce", "failureAction: Audit")
    .replace("mutateDigest: true", "mutateDigest: false");
    api.create(CPOL, None, policy_object(&text)).unwrap();
    for (object, expected) in [(&signed, "pass"), (&unsigned, "fail")] {
        let name = format!("imagegate-{}", object["metadata"]["uid"].as_str().unwrap());
        let started = Instant::now();
        let report = loop {
            if let Ok(report) = api.get("policyreports.wgpolicyk8s.io", Some("default"), &name) {
                break report;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no background-scan report within 10 s; imagegate's log:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let result = &report["results"][0];
        assert_eq!(result["policy"], "audit-signed", "{report}");
        assert_eq!(result["result"], expected, "{report}");
        assert_eq!(result["properties"]["process"], "background scan");
        assert_eq!(report["scope"]["name"], object["metadata"]["name"]);
    }
    let metrics = poll(Duration::from_secs(5), "scan metrics", || {
        let text = server.get(&server.metrics, "/metrics").1;
        (count(&text, "imagegate_background_scan_resources_total") >= 2.0).then_some(text)
    });
    assert!(
        count(
            &metrics,
            "imagegate_background_scan_results_total{rule_result=\"fail\"}"
        ) >= 1.0,
        "{metrics}"
    );
}
