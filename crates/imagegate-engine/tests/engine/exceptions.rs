//! PolicyExceptions in the engine (issue 11): a covering exception turns a verifyImages
//! rule into `skip` with Kyverno's message, in both phases, before any registry work;
//! anything the exception does not cover is verified as before.

use imagegate_engine::{AdmissionInput, Phase, PolicySet, RuleStatus};
use imagegate_policy::matching::MatchContext;
use imagegate_testkit::{CosignKey, Registry};
use serde_json::{Value, json};

use crate::engine;

/// An Enforce policy for `{host}/*` signed by `key`, and an exception for its rule (and
/// the autogen rule) covering Pods and Deployments named `tool*` in namespace `delta`.
fn policies(host: &str, key: &CosignKey, exception_rules: &str) -> PolicySet {
    let key = key
        .public_pem()
        .lines()
        .map(|l| format!("                      {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: check-image
spec:
  validationFailureAction: Enforce
  rules:
    - name: verify-signature
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - imageReferences: ["{host}/*"]
          attestors:
            - entries:
                - keys:
                    publicKeys: |-
{key}
                    rekor:
                      ignoreTlog: true
---
apiVersion: kyverno.io/v2
kind: PolicyException
metadata:
  name: tools
  namespace: exceptions
spec:
  exceptions:
    - policyName: check-image
      ruleNames: {exception_rules}
  match:
    any:
      - resources:
          kinds: [Pod, Deployment]
          namespaces: [delta]
          names: ["tool*"]
"#
    );
    let policies = crate::policy_set(&yaml);
    assert_eq!(policies.exceptions().len(), 1);
    policies
}

fn pod(namespace: &str, name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": image}]},
    })
}

fn deployment(namespace: &str, name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
    })
}

fn input(resource: Value) -> AdmissionInput {
    AdmissionInput::for_resource(resource, MatchContext::default())
}

const SKIPPED: &str = "rule is skipped due to policy exceptionsexceptions/tools";

#[tokio::test]
async fn covered_rules_are_skipped_with_kyvernos_message_in_both_phases() {
    let registry = Registry::start();
    let host = registry.host();
    let pusher = registry.pusher();
    pusher.push_image("app/unsigned", "v1");
    drop(pusher);
    let key = CosignKey::generate();
    let policies = policies(&host, &key, "[verify-signature, autogen-*]");
    let image = format!("{host}/app/unsigned:v1");
    let engine = engine();

    for (resource, rule) in [
        (pod("delta", "tool-1", &image), "verify-signature"),
        (
            deployment("delta", "tool-2", &image),
            "autogen-verify-signature",
        ),
    ] {
        let response = engine.evaluate_both(&policies, &input(resource)).await;
        assert!(!response.blocked(), "{response:#?}");
        let result = response.rule("check-image", rule).expect("rule reported");
        assert_eq!(
            (result.status, result.message.as_str()),
            (RuleStatus::Skip, SKIPPED)
        );
        assert!(response.patches.is_empty(), "{response:#?}");
        assert!(response.warnings().is_empty(), "{response:#?}");
    }
    let validated = engine
        .evaluate(
            &policies,
            &input(pod("delta", "tool-1", &image)),
            Phase::Validate,
        )
        .await;
    let result = validated.rule("check-image", "verify-signature").unwrap();
    assert_eq!(
        (result.status, result.message.as_str()),
        (RuleStatus::Skip, SKIPPED)
    );

    // Not covered: another name, another namespace, a kind the exception does not list.
    for resource in [
        pod("delta", "web", &image),
        pod("gamma", "tool-1", &image),
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "tool-3", "namespace": "delta"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
        }),
    ] {
        let response = engine.evaluate_both(&policies, &input(resource)).await;
        assert!(response.blocked(), "{response:#?}");
    }
}

#[tokio::test]
async fn an_exception_for_other_rules_changes_nothing() {
    let registry = Registry::start();
    let host = registry.host();
    let pusher = registry.pusher();
    pusher.push_image("app/unsigned", "v1");
    drop(pusher);
    let key = CosignKey::generate();
    // Only the Pod rule is excepted: the Deployment's autogen rule still verifies.
    let policies = policies(&host, &key, "[verify-signature]");
    let image = format!("{host}/app/unsigned:v1");
    let engine = engine();
    let response = engine
        .evaluate_both(&policies, &input(deployment("delta", "tool", &image)))
        .await;
    assert!(response.blocked(), "{response:#?}");
    let result = response
        .rule("check-image", "autogen-verify-signature")
        .unwrap();
    assert_eq!(result.status, RuleStatus::Fail);
    let response = engine
        .evaluate_both(&policies, &input(pod("delta", "tool", &image)))
        .await;
    assert!(!response.blocked(), "{response:#?}");
}

#[tokio::test]
async fn an_exception_skips_before_any_registry_work() {
    // The image's registry does not exist: verifying it would be an error (and deny
    // under failurePolicy Fail); the exception skips the rule without asking.
    let key = CosignKey::generate();
    let policies = policies("127.0.0.1:9", &key, "['*']");
    let image = "127.0.0.1:9/app/gone:v1";
    let engine = engine();
    let response = engine
        .evaluate_both(&policies, &input(pod("delta", "tool", image)))
        .await;
    assert!(!response.blocked(), "{response:#?}");
    assert_eq!(
        response
            .rule("check-image", "verify-signature")
            .unwrap()
            .status,
        RuleStatus::Skip
    );
    let response = engine
        .evaluate_both(&policies, &input(pod("delta", "web", image)))
        .await;
    assert!(response.blocked(), "{response:#?}");
    assert_eq!(
        response
            .rule("check-image", "verify-signature")
            .unwrap()
            .status,
        RuleStatus::Error
    );
}
