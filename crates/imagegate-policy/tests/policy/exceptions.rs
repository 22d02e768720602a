//! PolicyExceptions (`kyverno.io/v2`, `v2beta1`): loading beside policies, which
//! policy/rule pairs they name, which resources they cover (match and conditions), and
//! validation with path-qualified errors.

use imagegate_policy::conditions::Context;
use imagegate_policy::error::PolicyError;
use imagegate_policy::exception::{PolicyException, policy_key, skip_message};
use imagegate_policy::load::{load_documents, load_policies};
use imagegate_policy::validate::validate_exception;

use super::util::*;

/// The one exception of `yaml`.
fn exception(yaml: &str) -> PolicyException {
    let mut loaded = load_documents(yaml, "exception.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.exceptions.len(), 1, "{yaml}");
    loaded.exceptions.remove(0)
}

/// The findings of loading an invalid exception, as `path: message` lines.
fn findings(yaml: &str) -> Vec<String> {
    match load_documents(yaml, "exception.yaml") {
        Err(PolicyError::Invalid { errors, policy, .. }) => {
            assert!(policy.starts_with("PolicyException/"), "{policy}");
            errors.iter().map(ToString::to_string).collect()
        }
        other => panic!("expected validation errors, got {other:?}"),
    }
}

const DELTA: &str = r#"
apiVersion: kyverno.io/v2
kind: PolicyException
metadata:
  name: delta-exception
  namespace: delta
spec:
  exceptions:
  - policyName: check-image
    ruleNames:
    - verify-signature
    - autogen-*
  match:
    any:
    - resources:
        kinds: [Pod, Deployment]
        namespaces: [delta]
        names: ["important-tool*"]
"#;

fn pod(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "tool"}},
        "spec": {"containers": [{"name": "c", "image": "ghcr.io/acme/tool:1"}]}
    })
}

fn request_context(resource: &Value) -> Context {
    Context::new(json!({"request": {"object": resource, "operation": "CREATE"}}))
}

fn covers(exception: &PolicyException, resource: &Value, ctx: &MatchContext) -> bool {
    exception.covers(resource, ctx, &request_context(resource))
}

#[test]
fn both_api_versions_load_beside_policies() {
    let policy = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: check-image}
spec:
  rules:
  - name: verify-signature
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages:
    - imageReferences: ["*"]
      mutateDigest: false
      attestors: [{entries: [{keys: {publicKeys: "k8s://ns/key"}}]}]
"#;
    let v2beta1 = DELTA.replace("kyverno.io/v2", "kyverno.io/v2beta1");
    let text = format!("{policy}---{DELTA}---{v2beta1}");
    let loaded = load_documents(&text, "mixed.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.policies.len(), 1);
    assert_eq!(loaded.exceptions.len(), 2);
    assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
    assert_eq!(loaded.exceptions[1].api_version, "kyverno.io/v2beta1");
    // Policies alone, as before: exceptions are not policies.
    assert_eq!(load_policies(&text, "mixed.yaml").unwrap().len(), 1);
    // The other group's PolicyException (CEL, policies.kyverno.io) is read as one of
    // those, never as a kyverno.io exception: this one has kyverno.io's shape, so it lacks
    // `policyRefs`.
    let cel = DELTA.replace("kyverno.io/v2", "policies.kyverno.io/v1alpha1");
    let error = load_documents(&cel, "cel.yaml").unwrap_err().to_string();
    assert!(error.contains("spec.policyRefs"), "{error}");
}

#[test]
fn names_policies_exactly_and_rules_with_wildcards() {
    let e = exception(DELTA);
    assert_eq!(e.key(), "delta/delta-exception");
    for (policy, rule, expected) in [
        ("check-image", "verify-signature", true),
        ("check-image", "autogen-verify-signature", true),
        ("check-image", "autogen-cronjob-verify-signature", true),
        ("check-image", "verify-attestation", false),
        ("check-image-2", "verify-signature", false),
        ("check-*", "verify-signature", false),
        ("other/check-image", "verify-signature", false),
    ] {
        assert_eq!(e.contains(policy, rule), expected, "{policy} {rule}");
    }
    let namespaced =
        exception(&DELTA.replace("policyName: check-image", "policyName: team/check-image"));
    assert!(namespaced.contains("team/check-image", "verify-signature"));
    assert!(!namespaced.contains("check-image", "verify-signature"));
}

#[test]
fn policy_keys_and_skip_message_are_kyvernos() {
    let policies = load_policies(
        r#"
apiVersion: kyverno.io/v1
kind: Policy
metadata: {name: p, namespace: team}
spec:
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages: [{imageReferences: ["*"], mutateDigest: false, attestors: [{entries: [{keys: {publicKeys: "k8s://ns/key"}}]}]}]
---
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: c, namespace: ignored}
spec:
  rules:
  - name: r
    match: {any: [{resources: {kinds: [Pod]}}]}
    verifyImages: [{imageReferences: ["*"], mutateDigest: false, attestors: [{entries: [{keys: {publicKeys: "k8s://ns/key"}}]}]}]
"#,
        "p.yaml",
    )
    .unwrap();
    assert_eq!(policy_key(&policies[0]), "team/p");
    assert_eq!(policy_key(&policies[1]), "c");
    let a = exception(DELTA);
    let b = exception(&DELTA.replace("namespace: delta\nspec", "namespace: other\nspec"));
    // Kyverno's text exactly, without a space after "exceptions".
    assert_eq!(
        skip_message([&a, &b]),
        "rule is skipped due to policy exceptionsdelta/delta-exception, other/delta-exception"
    );
}

#[test]
fn match_any_all_and_empty() {
    let e = exception(DELTA);
    let ctx = MatchContext::default();
    assert!(covers(&e, &pod("delta", "important-tool-1"), &ctx));
    assert!(!covers(&e, &pod("delta", "other-tool"), &ctx));
    assert!(!covers(&e, &pod("gamma", "important-tool-1"), &ctx));
    let mut deployment = pod("delta", "important-tool");
    deployment["kind"] = json!("Deployment");
    deployment["apiVersion"] = json!("apps/v1");
    assert!(covers(&e, &deployment, &ctx));
    deployment["kind"] = json!("StatefulSet");
    assert!(!covers(&e, &deployment, &ctx));

    let all = exception(&DELTA.replace("    any:\n", "    all:\n").replace(
        "        names: [\"important-tool*\"]\n",
        "        names: [\"important-tool*\"]\n    - resources:\n        selector: {matchLabels: {app: tool}}\n",
    ));
    assert!(covers(&all, &pod("delta", "important-tool"), &ctx));
    let mut unlabelled = pod("delta", "important-tool");
    unlabelled["metadata"]["labels"] = json!({"app": "other"});
    assert!(!covers(&all, &unlabelled, &ctx));

    // No filters: Kyverno accepts the exception, and it covers nothing.
    let empty = exception(&DELTA.replace(
        "  match:\n    any:\n    - resources:\n        kinds: [Pod, Deployment]\n        namespaces: [delta]\n        names: [\"important-tool*\"]\n",
        "  match: {}\n",
    ));
    assert!(!covers(&empty, &pod("delta", "important-tool"), &ctx));
    let empty_filter = exception(&DELTA.replace(
        "    - resources:\n        kinds: [Pod, Deployment]\n        namespaces: [delta]\n        names: [\"important-tool*\"]\n",
        "    - resources: {}\n",
    ));
    assert!(!covers(
        &empty_filter,
        &pod("delta", "important-tool"),
        &ctx
    ));
}

#[test]
fn unknown_facts_never_grant_an_exception() {
    let by_namespace = exception(&DELTA.replace(
        "        namespaces: [delta]\n",
        "        namespaceSelector: {matchLabels: {exempt: \"true\"}}\n",
    ));
    let resource = pod("delta", "important-tool");
    // Outside a cluster the namespace's labels are unknown: no exception.
    assert!(!covers(&by_namespace, &resource, &MatchContext::default()));
    let labelled = |value: &str| MatchContext {
        namespace_labels: Some(BTreeMap::from([("exempt".to_owned(), value.to_owned())])),
        ..MatchContext::default()
    };
    assert!(covers(&by_namespace, &resource, &labelled("true")));
    assert!(!covers(&by_namespace, &resource, &labelled("false")));

    let by_user = exception(
        &DELTA
            .replace("spec:\n", "spec:\n  background: false\n")
            .replace(
                "        names: [\"important-tool*\"]\n",
                "        names: [\"important-tool*\"]\n      subjects: [{kind: User, name: ops-*}]\n",
            ),
    );
    assert!(!covers(&by_user, &resource, &MatchContext::default()));
    let user = |name: &str| MatchContext {
        user_info: Some(json!({"username": name})),
        ..MatchContext::default()
    };
    assert!(covers(&by_user, &resource, &user("ops-alice")));
    assert!(!covers(&by_user, &resource, &user("dev-bob")));
}

#[test]
fn conditions_must_pass_and_errors_deny_the_exception() {
    let with_condition = |condition: &str| {
        exception(&format!(
            "{DELTA}  conditions:\n    any:\n    - {condition}\n"
        ))
    };
    let resource = pod("delta", "important-tool");
    let ctx = MatchContext::default();
    let holds = with_condition(
        "{key: \"{{ request.object.metadata.labels.app }}\", operator: Equals, value: tool}",
    );
    assert!(covers(&holds, &resource, &ctx));
    let fails = with_condition(
        "{key: \"{{ request.object.metadata.labels.app }}\", operator: Equals, value: web}",
    );
    assert!(!covers(&fails, &resource, &ctx));
    let broken = with_condition(
        "{key: \"{{ request.object.metadata.labels.[ }}\", operator: Equals, value: tool}",
    );
    assert!(!covers(&broken, &resource, &ctx));
}

#[test]
fn validation_errors_name_the_field() {
    let no_policy = DELTA.replace(
        "    - autogen-*\n",
        "    - autogen-*\n  - policyName: \"\"\n    ruleNames: [r]\n",
    );
    assert_eq!(
        findings(&no_policy),
        ["spec.exceptions[1].policyName: An exception requires a policy name"]
    );
    let any_and_all = DELTA.replace(
        "  match:\n    any:\n",
        "  match:\n    all:\n    - resources: {kinds: [Pod]}\n    any:\n",
    );
    assert_eq!(
        findings(&any_and_all),
        ["spec.match: Can't specify any and all together"]
    );

    let user_info = DELTA.replace(
        "        names: [\"important-tool*\"]\n",
        "        names: [\"important-tool*\"]\n      subjects: [{kind: User, name: ops}]\n      roles: [admin]\n",
    );
    assert_eq!(
        findings(&user_info),
        [
            "spec.match.any[0].roles: usage of user info is forbidden unless background is false",
            "spec.match.any[0].subjects: usage of user info is forbidden unless background is false",
        ]
    );
    let legacy = DELTA.replace(
        "  match:\n    any:\n    - resources:\n",
        "  match:\n    resources:\n      kinds: [Pod]\n    any:\n    - resources:\n",
    );
    let found = findings(&legacy);
    assert!(
        found.contains(&"spec.match: only any and all are allowed in a PolicyException (not resources, subjects, roles or clusterRoles)".to_owned()),
        "{found:?}"
    );
    let operator =
        format!("{DELTA}  conditions:\n    all:\n    - {{key: a, operator: Matches, value: b}}\n");
    assert_eq!(
        findings(&operator),
        ["spec.conditions.all[0].operator: unknown operator \"Matches\""]
    );
    let selector = DELTA.replace(
        "        namespaces: [delta]\n",
        "        selector: {matchExpressions: [{key: a, operator: Like}]}\n",
    );
    let found = findings(&selector);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("spec.match.any[0].resources.selector.matchExpressions[0].operator:"),
        "{found:?}"
    );
    let operation = DELTA.replace(
        "        namespaces: [delta]\n",
        "        operations: [PATCH]\n",
    );
    assert_eq!(
        findings(&operation),
        [
            "spec.match.any[0].resources.operations[0]: must be one of CREATE, UPDATE, DELETE, CONNECT, got \"PATCH\""
        ]
    );
    // A type error is located in the source.
    let typed = DELTA.replace(
        "    ruleNames:\n    - verify-signature\n    - autogen-*\n",
        "    ruleNames: 3\n",
    );
    match load_documents(&typed, "exception.yaml") {
        Err(PolicyError::Yaml { line: Some(_), .. }) => {}
        other => panic!("expected a located YAML error, got {other:?}"),
    }
    // The direct check covers what loading cannot reach.
    let mut wrong = exception(DELTA);
    wrong.api_version = "kyverno.io/v1".into();
    wrong.metadata.name.clear();
    let errors: Vec<String> = validate_exception(&wrong)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "apiVersion: must be kyverno.io/v2 or kyverno.io/v2beta1, got \"kyverno.io/v1\"",
            "metadata.name: is required",
        ]
    );
}
