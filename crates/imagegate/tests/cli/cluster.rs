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

const IVPOL: &str = "imagevalidatingpolicies.policies.kyverno.io";
const NIVPOL: &str = "namespacedimagevalidatingpolicies.policies.kyverno.io";
const POLEX: &str = "policyexceptions.kyverno.io";
const CEL_POLEX: &str = "policyexceptions.policies.kyverno.io";

/// An ImageValidatingPolicy (`kind` may be the namespaced one) requiring a signature by
/// the key of Secret `key_secret` (`k8s://NS/NAME`, cosign's Kubernetes key reference)
/// on images matching `glob`.
fn ivp_object(kind: &str, name: &str, glob: &str, key_secret: &str) -> Value {
    json!({
        "apiVersion": "policies.kyverno.io/v1beta1", "kind": kind,
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "validationActions": ["Deny"],
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]},
            "matchImageReferences": [{"glob": glob}],
            "attestors": [{"name": "key", "cosign": {
                "key": {"kms": key_secret},
                "ctlog": {"insecureIgnoreTlog": true, "insecureIgnoreSCT": true},
            }}],
            "validations": [{
                "expression": "images.containers.map(i, verifyImageSignatures(i, [attestors.key])).all(n, n > 0)",
                "message": "the image is not signed by the team key",
            }],
        }
    })
}

/// The mutate-phase answer for a Pod `name` running `image` in `namespace`.
fn admit_in(server: &Server, namespace: &str, name: &str, image: &str) -> Value {
    let mut object = pod(name, image);
    object["metadata"]["namespace"] = json!(namespace);
    let mut review = review_of("admission.k8s.io/v1", name, &object);
    review["request"]["namespace"] = json!(namespace);
    server.review("/mutate", &review).0
}

/// The key Secret (`cosign.pub`) in namespace `keys`.
fn key_secret(api: &ApiServer, key: &CosignKey) {
    api.create("namespaces", None, json!({"metadata": {"name": "keys"}}))
        .unwrap();
    api.create(
        "secrets",
        Some("keys"),
        json!({"metadata": {"name": "cosign"}, "stringData": {"cosign.pub": key.public_pem()}}),
    )
    .unwrap();
}

#[test]
fn image_validating_policies_from_the_api_are_enforced_kept_when_broken_and_excepted() {
    let images = images();
    let (api, server, _cwd) = start(json!({}));
    key_secret(&api, &images.key);
    let glob = format!("{}/app/*", images.registry.host());

    let applied = Instant::now();
    api.create(
        IVPOL,
        None,
        ivp_object(
            "ImageValidatingPolicy",
            "team-key",
            &glob,
            "k8s://keys/cosign",
        ),
    )
    .unwrap();
    let denied = poll(Duration::from_secs(2), "IVP enforcement", || {
        let response = admit(&server, "unsigned", &images.unsigned, json!({}));
        (response["allowed"] == false).then_some(response)
    });
    eprintln!("IVP applied → enforced: {:?}", applied.elapsed());
    assert!(
        message(&denied).contains("the image is not signed by the team key"),
        "{denied}"
    );
    // Verified with the Secret's key, and pinned (mutateDigest defaults to true).
    let signed = admit(&server, "signed", &images.signed, json!({}));
    assert_eq!(signed["allowed"], true, "{signed}");
    assert!(
        decoded_patch(&signed).iter().any(|op| op["value"]
            .as_str()
            .is_some_and(|v| v.ends_with(&images.signed_digest))),
        "{signed}"
    );
    let ready = poll(Duration::from_secs(5), "conditionStatus.ready", || {
        api.get(IVPOL, None, "team-key")
            .ok()?
            .pointer("/status/conditionStatus")
            .filter(|s| s["ready"] == true)
            .cloned()
    });
    assert_eq!(ready["conditions"][0]["reason"], "Loaded", "{ready}");

    // A CEL error: the previous version stays enforced; the status says why.
    api.merge_patch(
        IVPOL,
        None,
        "team-key",
        json!({"spec": {"validations": [{"expression": "images.containers.all(i, "}]}}),
    )
    .unwrap();
    let broken = poll(
        Duration::from_secs(5),
        "conditionStatus.ready=false",
        || {
            api.get(IVPOL, None, "team-key")
                .ok()?
                .pointer("/status/conditionStatus")
                .filter(|s| s["ready"] == false)
                .cloned()
        },
    );
    assert!(
        broken["conditions"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("spec.validations[0].expression")),
        "{broken}"
    );
    let still = admit(&server, "still-denied", &images.unsigned, json!({}));
    assert_eq!(still["allowed"], false, "previous version kept: {still}");

    // A policies.kyverno.io PolicyException from the API: the matching Pod is skipped.
    api.create(
        CEL_POLEX,
        Some("default"),
        json!({
            "apiVersion": "policies.kyverno.io/v1beta1", "kind": "PolicyException",
            "metadata": {"name": "legacy"},
            "spec": {"policyRefs": [{"name": "team-key", "kind": "ImageValidatingPolicy"}],
                     "matchConditions": [{"name": "legacy", "expression": "object.metadata.name.startsWith('legacy-')"}]},
        }),
    )
    .unwrap();
    poll(Duration::from_secs(2), "the exception", || {
        (admit(&server, "legacy-app", &images.unsigned, json!({}))["allowed"] == true).then_some(())
    });
    let other = admit(&server, "other-app", &images.unsigned, json!({}));
    assert_eq!(other["allowed"], false, "not excepted: {other}");
    // Deleted: enforced again.
    api.delete(CEL_POLEX, Some("default"), "legacy").unwrap();
    poll(Duration::from_secs(2), "the exception's deletion", || {
        (admit(&server, "legacy-again", &images.unsigned, json!({}))["allowed"] == false)
            .then_some(())
    });
}

#[test]
fn a_namespaced_image_validating_policy_applies_in_its_namespace_only() {
    let images = images();
    let (api, server, _cwd) = start(json!({}));
    key_secret(&api, &images.key);
    api.create("namespaces", None, json!({"metadata": {"name": "team"}}))
        .unwrap();
    let glob = format!("{}/app/*", images.registry.host());
    api.create(
        NIVPOL,
        Some("team"),
        ivp_object(
            "NamespacedImageValidatingPolicy",
            "team-only",
            &glob,
            "k8s://keys/cosign",
        ),
    )
    .unwrap();
    let denied = poll(Duration::from_secs(2), "NIVP enforcement", || {
        let response = admit_in(&server, "team", "unsigned", &images.unsigned);
        (response["allowed"] == false).then_some(response)
    });
    assert!(message(&denied).contains("team-only"), "{denied}");
    let elsewhere = admit_in(&server, "default", "unsigned", &images.unsigned);
    assert_eq!(elsewhere["allowed"], true, "{elsewhere}");
    let signed = admit_in(&server, "team", "signed", &images.signed);
    assert_eq!(signed["allowed"], true, "{signed}");
}

#[test]
fn kyverno_exceptions_from_the_exception_namespace_skip_cluster_policy_rules() {
    let images = images();
    let api = ApiServer::start();
    for ns in [OWN_NAMESPACE, "exceptions"] {
        api.create("namespaces", None, json!({"metadata": {"name": ns}}))
            .unwrap();
    }
    let cwd = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(Some(OWN_NAMESPACE));
    let server = Server::start(
        cwd.path(),
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--exception-namespace",
            "exceptions",
        ],
    );
    poll(Duration::from_secs(10), "readiness", || {
        let (status, body) = server.get(&server.metrics, "/readyz");
        (status == 200).then_some(body)
    });
    let pattern = format!("{}/app/*", images.registry.host());
    api.create(
        CPOL,
        None,
        policy_object(&policy("signed", &pattern, &images.key, "Fail", 10, "")),
    )
    .unwrap();
    poll(Duration::from_secs(2), "enforcement", || {
        (admit(&server, "unsigned", &images.unsigned, json!({}))["allowed"] == false).then_some(())
    });
    let exception = |name: &str, pods: &str| {
        json!({
            "apiVersion": "kyverno.io/v2", "kind": "PolicyException",
            "metadata": {"name": name},
            "spec": {"exceptions": [{"policyName": "signed", "ruleNames": ["verify"]}],
                     "match": {"any": [{"resources": {"kinds": ["Pod"], "names": [pods]}}]}},
        })
    };
    // Outside the exception namespace: ignored, as Kyverno ignores it.
    api.create(POLEX, Some("default"), exception("ignored", "other-*"))
        .unwrap();
    api.create(POLEX, Some("exceptions"), exception("legacy", "legacy-*"))
        .unwrap();
    poll(Duration::from_secs(2), "the exception", || {
        (admit(&server, "legacy-app", &images.unsigned, json!({}))["allowed"] == true).then_some(())
    });
    let other = admit(&server, "other-app", &images.unsigned, json!({}));
    assert_eq!(other["allowed"], false, "{other}");
    api.delete(POLEX, Some("exceptions"), "legacy").unwrap();
    poll(Duration::from_secs(2), "the exception's deletion", || {
        (admit(&server, "legacy-again", &images.unsigned, json!({}))["allowed"] == false)
            .then_some(())
    });
}

#[test]
fn an_image_validating_policy_reads_its_pull_secrets_from_the_cluster() {
    const USER: &str = "ivp-puller";
    const PASSWORD: &str = "ivp-Secret-7";
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
    key_secret(&api, &key);
    api.create(
        IVPOL,
        None,
        ivp_object(
            "ImageValidatingPolicy",
            "private",
            &format!("{host}/private/*"),
            "k8s://keys/cosign",
        ),
    )
    .unwrap();
    // Without credentials the registry refuses: failurePolicy Fail denies.
    let refused = poll(Duration::from_secs(2), "the policy", || {
        let response = admit(&server, "no-creds", &image, json!({}));
        (response["allowed"] == false).then_some(response)
    });
    assert!(message(&refused).contains("unauthorized"), "{refused}");

    // `credentials.secrets` names a pull secret in imagegate's own namespace.
    api.create(
        "secrets",
        Some(OWN_NAMESPACE),
        pull_secret("ivp-cred", &host, USER, PASSWORD),
    )
    .unwrap();
    api.merge_patch(
        IVPOL,
        None,
        "private",
        json!({"spec": {"credentials": {"secrets": ["ivp-cred"]}}}),
    )
    .unwrap();
    let admitted = poll(Duration::from_secs(2), "the policy's pull secret", || {
        let response = admit(&server, "with-creds", &image, json!({}));
        (response["allowed"] == true).then_some(response)
    });
    assert!(
        decoded_patch(&admitted)
            .iter()
            .any(|op| op["value"].as_str().is_some_and(|v| v.ends_with(&digest))),
        "{admitted}"
    );
    // A pull secret that does not exist: a clear error naming it, never a pass.
    api.merge_patch(
        IVPOL,
        None,
        "private",
        json!({"spec": {"credentials": {"secrets": ["missing-cred"]}}}),
    )
    .unwrap();
    let missing = poll(Duration::from_secs(2), "the missing pull secret", || {
        let response = admit(&server, "missing-creds", &image, json!({}));
        (response["allowed"] == false).then_some(response)
    });
    assert!(
        message(&missing).contains(&format!("secret {OWN_NAMESPACE}/missing-cred not found")),
        "{missing}"
    );
    for text in [message(&missing), server.log_text()] {
        assert!(!text.contains(PASSWORD), "a pull secret leaked: {text}");
    }
}
