//! `POST /validate-policy`: policy objects imagegate would not load are denied at
//! `kubectl apply` with the loader's path-qualified errors; valid ones, deletes and other
//! kinds are admitted; hostile bodies get a clear answer, never a hang or a panic.

use serde_json::{Value, json};

use crate::deploy::repo;
use crate::webhook::Webhook;

/// An AdmissionReview for `object` (`CREATE` unless `operation` says otherwise).
fn review(uid: &str, operation: &str, object: &Value) -> Value {
    let kind = object["kind"].as_str().unwrap_or_default();
    let (group, version) = object["apiVersion"]
        .as_str()
        .unwrap_or_default()
        .split_once('/')
        .unwrap_or(("", "v1"));
    let mut request = json!({
        "uid": uid,
        "kind": {"group": group, "version": version, "kind": kind},
        "operation": operation,
        "name": object["metadata"]["name"],
        "userInfo": {"username": "admin"},
    });
    if operation == "DELETE" {
        request["oldObject"] = object.clone();
    } else {
        request["object"] = object.clone();
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

/// The example ClusterPolicy of `policies/` as JSON.
fn example_policy() -> Value {
    let text = std::fs::read_to_string(repo().join("policies/verify-signature.yaml")).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn image_validating_policy(expression: &str) -> Value {
    json!({
        "apiVersion": "policies.kyverno.io/v1beta1",
        "kind": "ImageValidatingPolicy",
        "metadata": {"name": "check-images"},
        "spec": {
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["pods"],
            }]},
            "matchImageReferences": [{"glob": "registry.example.com/*"}],
            "attestors": [{"name": "cosign", "cosign": {"key": {"data": example_policy()
                ["spec"]["rules"][0]["verifyImages"][0]["attestors"][0]["entries"][0]["keys"]["publicKeys"]}}}],
            "validations": [{"expression": expression}],
        },
    })
}

#[test]
fn valid_policies_are_admitted_invalid_ones_denied_with_the_path() {
    let server = Webhook::start(&[&repo().join("policies/verify-signature.yaml")]);

    let valid = example_policy();
    let (response, _) = server.review("/validate-policy", &review("p1", "CREATE", &valid));
    assert_eq!(response["allowed"], true, "{response}");

    // The same policy with an image pattern the loader refuses: denied on CREATE and
    // UPDATE, naming the policy, the field and the cause.
    let mut invalid = valid.clone();
    invalid["spec"]["rules"][0]["verifyImages"][0]["imageReferences"][0] =
        json!("https://registry.example.com/*");
    for (uid, operation) in [("p2", "CREATE"), ("p3", "UPDATE")] {
        let (response, _) = server.review("/validate-policy", &review(uid, operation, &invalid));
        assert_eq!(response["allowed"], false, "{response}");
        assert_eq!(response["status"]["code"], 403);
        let message = response["status"]["message"].as_str().unwrap();
        for part in [
            "invalid policy ClusterPolicy/verify-signature",
            "spec.rules[0].verifyImages[0].imageReferences[0]",
            "an image reference has no URL scheme",
        ] {
            assert!(message.contains(part), "{part:?} missing in {message}");
        }
    }
    // A namespaced Policy is checked alike.
    let mut namespaced = invalid.clone();
    namespaced["kind"] = json!("Policy");
    namespaced["metadata"]["namespace"] = json!("team-a");
    let (response, _) = server.review("/validate-policy", &review("p4", "CREATE", &namespaced));
    assert_eq!(response["allowed"], false, "{response}");
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("Policy/team-a/verify-signature"),
        "{response}"
    );

    // Deleting an invalid policy, or any other kind: nothing to judge.
    let (response, _) = server.review("/validate-policy", &review("p5", "DELETE", &invalid));
    assert_eq!(response["allowed"], true, "{response}");
    let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    let (response, _) = server.review("/validate-policy", &review("p6", "CREATE", &config_map));
    assert_eq!(response["allowed"], true, "{response}");

    // ImageValidatingPolicy: CEL compiled at load; a broken expression is denied.
    let good = image_validating_policy(
        "images.containers.map(i, verifyImageSignatures(i, [attestors.cosign])).all(n, n > 0)",
    );
    let (response, _) = server.review("/validate-policy", &review("p7", "CREATE", &good));
    assert_eq!(response["allowed"], true, "{response}");
    let broken = image_validating_policy("images.containers.map((");
    let (response, _) = server.review("/validate-policy", &review("p8", "CREATE", &broken));
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("ImageValidatingPolicy/check-images"),
        "{message}"
    );
    assert!(message.contains("spec.validations[0]"), "{message}");
}

#[test]
fn policy_exceptions_of_both_groups_are_checked_and_foreign_ones_admitted() {
    let server = Webhook::start(&[&repo().join("policies/verify-signature.yaml")]);
    let kyverno = json!({
        "apiVersion": "kyverno.io/v2", "kind": "PolicyException",
        "metadata": {"name": "legacy", "namespace": "exceptions"},
        "spec": {"exceptions": [{"policyName": "verify-signature", "ruleNames": ["*"]}],
                 "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}},
    });
    let (response, _) = server.review("/validate-policy", &review("e1", "CREATE", &kyverno));
    assert_eq!(response["allowed"], true, "{response}");
    let cel = |expression: &str| {
        json!({
            "apiVersion": "policies.kyverno.io/v1beta1", "kind": "PolicyException",
            "metadata": {"name": "legacy", "namespace": "exceptions"},
            "spec": {"policyRefs": [{"name": "check-images", "kind": "ImageValidatingPolicy"}],
                     "matchConditions": [{"name": "legacy", "expression": expression}]},
        })
    };
    let (response, _) = server.review(
        "/validate-policy",
        &review("e2", "CREATE", &cel("object.metadata.name == 'legacy'")),
    );
    assert_eq!(response["allowed"], true, "{response}");
    let (response, _) = server.review(
        "/validate-policy",
        &review("e3", "UPDATE", &cel("object.metadata.(")),
    );
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("spec.matchConditions[0].expression"),
        "{message}"
    );
    // A PolicyException of a group imagegate does not read is not its to judge.
    let foreign = json!({
        "apiVersion": "example.com/v1", "kind": "PolicyException",
        "metadata": {"name": "x"}, "spec": {},
    });
    let (response, _) = server.review("/validate-policy", &review("e4", "CREATE", &foreign));
    assert_eq!(response["allowed"], true, "{response}");
}

#[test]
fn hostile_policy_reviews_get_clear_answers() {
    let server = Webhook::start(&[&repo().join("policies/verify-signature.yaml")]);

    // Not JSON, no request, too large: refused before any validation.
    let (status, body, _) = server.post("/validate-policy", b"{not json");
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = server.post("/validate-policy", &vec![b' '; 9 * 1024 * 1024]);
    assert_eq!(status, 413);
    // Nesting far beyond any parser's depth limit, in an object that is not a policy and
    // in a ClusterPolicy's spec: answered (the first admitted, not a policy kind; the
    // second denied by the loader's parse), never a stack overflow.
    let deep_value = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for (uid, object, allowed) in [
        ("d1", deep_value.clone(), true),
        (
            "d2",
            format!(
                r#"{{"apiVersion":"kyverno.io/v1","kind":"ClusterPolicy","metadata":{{"name":"d"}},"spec":{deep_value}}}"#
            ),
            false,
        ),
    ] {
        let body = format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"{uid}","operation":"CREATE","object":{object}}}}}"#
        );
        let (status, body, _) = server.post("/validate-policy", body.as_bytes());
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["response"]["allowed"], allowed, "{body}");
    }

    // A policy that is not one: wrong types, a rule list that is a string, an operation
    // that does not exist. Each is denied with a message, none admitted.
    let mut wrong_types = example_policy();
    wrong_types["spec"]["rules"] = json!("verify everything");
    let (response, _) = server.review("/validate-policy", &review("h1", "CREATE", &wrong_types));
    assert_eq!(response["allowed"], false, "{response}");
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .contains("expected a sequence"),
        "{response}"
    );
    let mut unknown_operation = review("h2", "CREATE", &example_policy());
    unknown_operation["request"]["operation"] = json!("EXPLODE");
    let (response, _) = server.review("/validate-policy", &unknown_operation);
    assert_eq!(response["allowed"], false, "{response}");

    // Deeply nested raw JSON inside the policy (preconditions are kept as written) and a
    // policy of 2 000 rules: answered, and the verdict is the loader's.
    // 100 levels: within the AdmissionReview parser's depth limit of 128.
    let mut nested = json!("leaf");
    for _ in 0..50 {
        nested = json!({"all": [nested]});
    }
    let mut deep_policy = example_policy();
    deep_policy["spec"]["rules"][0]["preconditions"] = nested;
    let (response, _) = server.review("/validate-policy", &review("h3", "CREATE", &deep_policy));
    assert!(response["allowed"].is_boolean(), "{response}");
    let mut many = example_policy();
    let rule = many["spec"]["rules"][0].clone();
    many["spec"]["rules"] = Value::Array(
        (0..2000)
            .map(|i| {
                let mut r = rule.clone();
                r["name"] = json!(format!("rule-{i}"));
                r
            })
            .collect(),
    );
    let (response, _) = server.review("/validate-policy", &review("h4", "CREATE", &many));
    assert_eq!(response["allowed"], true, "{response}");
}
