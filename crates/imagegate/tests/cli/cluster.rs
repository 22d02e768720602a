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

use crate::serve::{Images, Server, count, images, pod, policy, review_of};

const CPOL: &str = "clusterpolicies.kyverno.io";
/// imagegate's own namespace in these tests (the kubeconfig context's).
const OWN_NAMESPACE: &str = "imagegate-system";

/// The API server fake with the namespaces the tests use, and `imagegate serve` started
/// against it (no `--policies`: the cluster's policies only), ready.
fn start(default_labels: Value) -> (ApiServer, Server, tempfile::TempDir) {
    start_with(default_labels, &[])
}

/// [`start`] with more arguments for `imagegate serve`.
fn start_with(default_labels: Value, args: &[&str]) -> (ApiServer, Server, tempfile::TempDir) {
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
    let server = serve(&api, cwd.path(), args);
    (api, server, cwd)
}

/// `imagegate serve --kubeconfig` (for `api`) with `args`, in `cwd`, ready.
fn serve(api: &ApiServer, cwd: &std::path::Path, args: &[&str]) -> Server {
    let kubeconfig = api.kubeconfig(Some(OWN_NAMESPACE));
    let mut all = vec!["--kubeconfig", kubeconfig.to_str().unwrap()];
    all.extend_from_slice(args);
    let server = Server::start(cwd, &all);
    poll(Duration::from_secs(10), "readiness", || {
        let (status, body) = server.get(&server.metrics, "/readyz");
        (status == 200).then_some(body)
    });
    server
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

/// `private/app:v1` signed by a new key in a docker-registry that asks for a password.
struct PrivateImage {
    registry: Registry,
    key: CosignKey,
    digest: String,
    image: String,
}

impl PrivateImage {
    fn push(user: &str, password: &str) -> PrivateImage {
        let registry = Registry::start_with_basic_auth(user, password);
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
        PrivateImage {
            image: format!("{host}/private/app:v1"),
            registry,
            key,
            digest,
        }
    }
}

#[test]
fn keys_from_secrets_and_pull_secrets_of_pods_service_accounts_and_policies() {
    const USER: &str = "puller";
    const PASSWORD: &str = "pull-Secret-42";
    let private = PrivateImage::push(USER, PASSWORD);
    let (host, key, digest, image) = (
        private.registry.host(),
        &private.key,
        private.digest.as_str(),
        private.image.as_str(),
    );

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
        key,
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
        image,
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
    let without = admit(&server, "without", image, json!({}));
    assert_eq!(without["allowed"], false, "{without}");
    assert!(message(&without).contains("unauthorized"), "{without}");
    // Its ServiceAccount's pull secrets count as its own.
    let via_account = admit(
        &server,
        "via-account",
        image,
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
        (admit(&server, "by-policy", image, json!({}))["allowed"] == true).then_some(())
    });

    // The key's Secret deleted: a rule error naming it, never a pass.
    api.delete("secrets", Some("keys"), "cosign").unwrap();
    let denied = poll(Duration::from_secs(2), "the missing key", || {
        let response = admit(
            &server,
            "key-gone",
            image,
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
fn keys_in_a_config_map_context_entry_follow_the_config_map() {
    let images = images();
    let other = CosignKey::generate();
    let (api, server, _cwd) = start(json!({}));
    api.create("namespaces", None, json!({"metadata": {"name": "kyverno"}}))
        .unwrap();
    api.create(
        "configmaps",
        Some("kyverno"),
        json!({"metadata": {"name": "keys"}, "data": {"pubkey": images.key.public_pem()}}),
    )
    .unwrap();
    // Kyverno's documented "keys in a ConfigMap" pattern.
    let pattern = format!("{}/app/*", images.registry.host());
    let mut object = policy_object(&policy("cm-keys", &pattern, &other, "Fail", 10, ""));
    let rule = &mut object["spec"]["rules"][0];
    rule["context"] =
        json!([{"name": "keys", "configMap": {"name": "keys", "namespace": "kyverno"}}]);
    rule["verifyImages"][0]["attestors"][0]["entries"][0]["keys"]["publicKeys"] =
        json!("{{ keys.data.pubkey }}");
    api.create(CPOL, None, object).unwrap();
    let ready = poll(Duration::from_secs(5), "Ready", || {
        ready_condition(&api, "cm-keys")
    });
    assert_eq!(ready["status"], "True", "no load error or warning: {ready}");
    poll(Duration::from_secs(5), "the policy", || {
        let (_, body) = server.get(&server.metrics, "/readyz");
        body.contains("1 policies").then_some(())
    });

    // The ConfigMap's key: the signed image is admitted and pinned, the unsigned one
    // denied.
    let signed = admit(&server, "signed", &images.signed, json!({}));
    assert_eq!(signed["allowed"], true, "{signed}");
    assert!(
        decoded_patch(&signed).iter().any(|op| op["value"]
            .as_str()
            .is_some_and(|v| v.ends_with(&images.signed_digest))),
        "{signed}"
    );
    let unsigned = admit(&server, "unsigned", &images.unsigned, json!({}));
    assert_eq!(unsigned["allowed"], false, "{unsigned}");
    let path = "/api/v1/namespaces/kyverno/configmaps/keys";
    let reads = || {
        api.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path == path)
            .count()
    };
    // Once the ConfigMap watch has listed, reviews read it from the cache.
    poll(Duration::from_secs(5), "reads from the cache", || {
        let before = reads();
        let again = admit(&server, "again", &images.signed, json!({}));
        assert_eq!(again["allowed"], true, "{again}");
        (reads() == before).then_some(())
    });

    // The ConfigMap now holds another key: enforced within 2 s, and the verdict made
    // with the previous key is not reused.
    api.merge_patch(
        "configmaps",
        Some("kyverno"),
        "keys",
        json!({"data": {"pubkey": other.public_pem()}}),
    )
    .unwrap();
    let denied = poll(Duration::from_secs(2), "the new key", || {
        let response = admit(&server, "rotated", &images.signed, json!({}));
        (response["allowed"] == false).then_some(response)
    });
    assert!(
        message(&denied).contains(".attestors[0].entries[0].keys"),
        "{denied}"
    );
    api.merge_patch(
        "configmaps",
        Some("kyverno"),
        "keys",
        json!({"data": {"pubkey": images.key.public_pem()}}),
    )
    .unwrap();
    poll(Duration::from_secs(2), "the key restored", || {
        (admit(&server, "restored", &images.signed, json!({}))["allowed"] == true).then_some(())
    });

    // The ConfigMap deleted: a rule error naming it (Kyverno's text), never a pass.
    api.delete("configmaps", Some("kyverno"), "keys").unwrap();
    let missing = poll(Duration::from_secs(2), "the missing ConfigMap", || {
        let response = admit(&server, "gone", &images.signed, json!({}));
        (response["allowed"] == false).then_some(response)
    });
    assert!(
        message(&missing).contains(
            "failed to load context: failed to retrieve config map for context entry keys: failed to get configmap kyverno/keys : configmaps \"keys\" not found"
        ),
        "{missing}"
    );
}

/// Leader election flags short enough for a test (client-go's defaults are 15/10/2 s).
const FAST_ELECTION: &[&str] = &[
    "--leader-election-lease-duration",
    "2",
    "--leader-election-renew-deadline",
    "1.5",
    "--leader-election-retry-period",
    "0.2",
];

fn leader_gauge(server: &Server) -> Option<String> {
    let (_, text) = server.get(&server.metrics, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("imagegate_leader "))
        .map(str::to_owned)
}

/// Issue 11: two replicas, one leader (the Lease's holder, the only one whose
/// `imagegate_leader` is 1). An Audit failure admitted by the other replica reaches the
/// Pod's PolicyReport within 5 s through an EphemeralReport the leader merges and
/// deletes; an Enforce denial writes an Event on the policy in Kyverno's words.
#[test]
fn audit_failures_reach_the_report_through_the_leader_and_denials_write_events() {
    let images = images();
    let (api, first, _cwd) = start_with(json!({}), FAST_ELECTION);
    let cwd = tempfile::tempdir().unwrap();
    let second = serve(&api, cwd.path(), FAST_ELECTION);
    let holder = poll(Duration::from_secs(5), "a lease holder", || {
        let lease = api
            .get(
                "leases.coordination.k8s.io",
                Some(OWN_NAMESPACE),
                "imagegate-leader",
            )
            .ok()?;
        lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
    });
    let (leader, follower) = if holder.ends_with(&format!("-{}", first.pid())) {
        (&first, &second)
    } else {
        assert!(holder.ends_with(&format!("-{}", second.pid())), "{holder}");
        (&second, &first)
    };
    poll(Duration::from_secs(5), "the leader gauge", || {
        (leader_gauge(leader).as_deref() == Some("1")).then_some(())
    });
    assert_eq!(leader_gauge(follower).as_deref(), Some("0"));

    let pattern = format!("{}/app/unsigned*", images.registry.host());
    let audited = policy("audited", &pattern, &images.key, "Fail", 10, "")
        .replace("failureAction: Enforce", "failureAction: Audit")
        // Kyverno refuses mutateDigest under Audit.
        .replace("mutateDigest: true", "mutateDigest: false");
    api.create(CPOL, None, policy_object(&audited)).unwrap();
    let object = pod("audited-pod", &images.unsigned);
    let review = review_of("admission.k8s.io/v1", "req-audit", &object);
    let (response, admitted) = poll(Duration::from_secs(5), "the Audit policy", || {
        let (response, _) = follower.review("/mutate", &review);
        let admitted = Instant::now();
        (!response["warnings"].as_array().is_none_or(Vec::is_empty)).then_some((response, admitted))
    });
    assert_eq!(response["allowed"], true, "{response}");
    // The API server stores the Pod after admission; its uid names the report.
    let stored = api.create("pods", Some("default"), object).unwrap();
    let uid = stored["metadata"]["uid"].as_str().unwrap().to_owned();
    let report = poll(Duration::from_secs(5), "the PolicyReport", || {
        api.get(
            "policyreports.wgpolicyk8s.io",
            Some("default"),
            &format!("imagegate-{uid}"),
        )
        .ok()
    });
    eprintln!(
        "admitted (by the follower) → report: {:?}",
        admitted.elapsed()
    );
    assert!(admitted.elapsed() < Duration::from_secs(5));
    let result = &report["results"][0];
    assert_eq!(result["policy"], "audited", "{report}");
    assert_eq!(result["result"], "fail", "{report}");
    assert_eq!(result["properties"]["images"], images.unsigned.as_str());
    assert_eq!(report["scope"]["name"], "audited-pod");
    assert_eq!(
        report["metadata"]["ownerReferences"][0]["uid"],
        uid.as_str()
    );
    // The follower handed it over (an EphemeralReport, created then deleted).
    let handed_over = api
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/ephemeralreports"))
        .count();
    assert_eq!(handed_over, 1);
    poll(
        Duration::from_secs(5),
        "the EphemeralReport deleted",
        || {
            api.list("ephemeralreports.reports.kyverno.io", None)
                .unwrap()
                .is_empty()
                .then_some(())
        },
    );

    // Enforce: denied, and an Event on the policy says so.
    let enforced = policy("enforced", &pattern, &images.key, "Fail", 10, "");
    api.create(CPOL, None, policy_object(&enforced)).unwrap();
    let denied = poll(Duration::from_secs(5), "the Enforce policy", || {
        let response = admit(leader, "denied-pod", &images.unsigned, json!({}));
        (response["allowed"] == false).then_some(response)
    });
    assert!(message(&denied).contains("enforced"), "{denied}");
    let event = poll(Duration::from_secs(5), "the Event", || {
        api.list("events.events.k8s.io", Some("default"))
            .unwrap()
            .into_iter()
            .find(|e| e["regarding"]["name"] == "enforced")
    });
    assert_eq!(event["regarding"]["kind"], "ClusterPolicy");
    assert_eq!(event["reason"], "PolicyViolation");
    assert_eq!(event["action"], "Resource Blocked");
    assert_eq!(event["related"]["name"], "denied-pod");
    let note = event["note"].as_str().unwrap();
    assert!(
        note.starts_with(
            "Pod default/denied-pod: [verify] fail (blocked); failed to verify image "
        ),
        "{note}"
    );
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
    skips_legacy_pods_until_deleted(&api, &server, &images, (CEL_POLEX, "default"));
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
    skips_legacy_pods_until_deleted(&api, &server, &images, (POLEX, "exceptions"));
}

/// An exception `legacy` (of `resource` in `namespace`) for Pods named `legacy-*` just
/// applied: within 2 s an unsigned `legacy-` Pod is admitted and another still denied;
/// once the exception is deleted, enforced again within 2 s.
fn skips_legacy_pods_until_deleted(
    api: &ApiServer,
    server: &Server,
    images: &Images,
    (resource, namespace): (&str, &str),
) {
    poll(Duration::from_secs(2), "the exception", || {
        (admit(server, "legacy-app", &images.unsigned, json!({}))["allowed"] == true).then_some(())
    });
    let other = admit(server, "other-app", &images.unsigned, json!({}));
    assert_eq!(other["allowed"], false, "not excepted: {other}");
    api.delete(resource, Some(namespace), "legacy").unwrap();
    poll(Duration::from_secs(2), "the exception's deletion", || {
        (admit(server, "legacy-again", &images.unsigned, json!({}))["allowed"] == false)
            .then_some(())
    });
}

#[test]
fn an_image_validating_policy_reads_its_pull_secrets_from_the_cluster() {
    const USER: &str = "ivp-puller";
    const PASSWORD: &str = "ivp-Secret-7";
    let private = PrivateImage::push(USER, PASSWORD);
    let (host, key, digest, image) = (
        private.registry.host(),
        &private.key,
        private.digest.as_str(),
        private.image.as_str(),
    );
    let (api, server, _cwd) = start(json!({}));
    key_secret(&api, key);
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
        let response = admit(&server, "no-creds", image, json!({}));
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
        let response = admit(&server, "with-creds", image, json!({}));
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
        let response = admit(&server, "missing-creds", image, json!({}));
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
