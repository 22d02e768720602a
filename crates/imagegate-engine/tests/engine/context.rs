//! Rule `context` entries as the engine applies them, against a real
//! `docker-registry`: a key held in a ConfigMap (through an in-memory cluster, the
//! API itself is imagegate-kube's tests), a verdict never reused across keys, and
//! Kyverno's messages when an entry cannot be loaded.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use imagegate_engine::{
    ClusterError, ClusterInputs, Engine, Phase, PolicySet, RuleStatus, SecretData,
};
use imagegate_testkit::{CosignKey, Registry};

use crate::{pod, policy_set};
use serde_json::{Value, json};

/// ConfigMaps in memory, and values given in place of them (as a CLI's values file
/// gives them), changed by the test.
#[derive(Debug, Default)]
struct ConfigMapsOnly {
    config_maps: Mutex<BTreeMap<(String, String), Arc<Value>>>,
    given: Mutex<Vec<(String, Value)>>,
}

impl ConfigMapsOnly {
    fn give(&self, values: &[(&str, Value)]) {
        *self.given.lock().unwrap() = values
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
    }

    fn put(&self, namespace: &str, name: &str, data: Value) {
        self.config_maps.lock().unwrap().insert(
            (namespace.into(), name.into()),
            Arc::new(json!({"data": data, "metadata": {"name": name, "namespace": namespace}})),
        );
    }
}

impl ClusterInputs for ConfigMapsOnly {
    fn own_namespace(&self) -> &str {
        "imagegate"
    }
    fn namespace_labels(&self, _: &str) -> Option<Arc<BTreeMap<String, String>>> {
        None
    }
    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<SecretData, ClusterError>> {
        Box::pin(async move {
            Err(ClusterError::SecretNotFound {
                namespace: namespace.into(),
                name: name.into(),
            })
        })
    }
    fn service_account_pull_secrets<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, ClusterError>> {
        Box::pin(async move { Ok(Vec::new()) })
    }
    fn config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Value>, ClusterError>> {
        let found = self
            .config_maps
            .lock()
            .unwrap()
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
            .ok_or_else(|| ClusterError::ConfigMapNotFound {
                namespace: namespace.into(),
                name: name.into(),
            });
        Box::pin(async move { found })
    }
    fn api_get<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Value, ClusterError>> {
        Box::pin(async move {
            Err(ClusterError::Unavailable(format!(
                "no API in this test: {path}"
            )))
        })
    }
    fn given_values(&self, _: &str, _: &str, _: &str) -> Vec<(String, Value)> {
        self.given.lock().unwrap().clone()
    }
}

fn engine_with(cluster: Option<Arc<dyn ClusterInputs>>) -> Engine {
    Engine::builder(crate::client()).cluster(cluster).build()
}

/// Kyverno's "keys in a ConfigMap" policy for images under `host`.
fn policy(host: &str) -> PolicySet {
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: cm-keys
spec:
  validationFailureAction: Enforce
  rules:
    - name: verify
      match:
        any:
          - resources:
              kinds: [Pod]
      context:
        - name: keys
          configMap: {{name: keys, namespace: kyverno}}
      verifyImages:
        - imageReferences: ["{host}/*"]
          mutateDigest: false
          attestors:
            - entries:
                - keys:
                    publicKeys: "{{{{ keys.data.pubkey }}}}"
                    rekor:
                      ignoreTlog: true
"#
    );
    policy_set(&yaml)
}

fn rule(response: &imagegate_engine::EngineResponse) -> (RuleStatus, String) {
    let rule = &response.policies[0].rules[0];
    (rule.status, rule.message.clone())
}

#[tokio::test]
async fn a_key_in_a_config_map_verifies_and_a_changed_key_is_a_new_verdict() {
    let registry = Registry::start();
    let host = registry.host();
    let pusher = registry.pusher();
    let key = CosignKey::generate();
    let other = CosignKey::generate();
    let digest = pusher.push_image("app/signed", "v1");
    pusher.sign(
        "app/signed",
        &format!("{host}/app/signed"),
        &digest,
        &key,
        &BTreeMap::new(),
    );
    pusher.push_image("app/unsigned", "v1");
    let cluster = Arc::new(ConfigMapsOnly::default());
    cluster.put("kyverno", "keys", json!({"pubkey": key.public_pem()}));
    let engine = engine_with(Some(cluster.clone()));
    let policies = policy(&host);
    let signed = pod(&format!("{host}/app/signed:v1"));

    let passed = engine.evaluate(&policies, &signed, Phase::Mutate).await;
    assert_eq!(rule(&passed).0, RuleStatus::Pass, "{:?}", rule(&passed));
    let unsigned = engine
        .evaluate(
            &policies,
            &pod(&format!("{host}/app/unsigned:v1")),
            Phase::Mutate,
        )
        .await;
    assert_eq!(rule(&unsigned).0, RuleStatus::Fail, "{:?}", rule(&unsigned));
    let cached = engine.cached_verdicts().await;

    // Another key in the ConfigMap: the verdict made with the first key is not reused.
    cluster.put("kyverno", "keys", json!({"pubkey": other.public_pem()}));
    let rotated = engine.evaluate(&policies, &signed, Phase::Mutate).await;
    let (status, message) = rule(&rotated);
    assert_eq!(status, RuleStatus::Fail, "{message}");
    assert!(
        message.contains(".attestors[0].entries[0].keys"),
        "{message}"
    );
    assert!(
        engine.cached_verdicts().await > cached,
        "a verdict of its own"
    );
    // Back to the first key: its verdict is still good.
    cluster.put("kyverno", "keys", json!({"pubkey": key.public_pem()}));
    let back = engine.evaluate(&policies, &signed, Phase::Mutate).await;
    assert_eq!(rule(&back).0, RuleStatus::Pass, "{:?}", rule(&back));

    // A missing ConfigMap: Kyverno's message naming it; the rule fails.
    cluster.config_maps.lock().unwrap().clear();
    let missing = engine.evaluate(&policies, &signed, Phase::Mutate).await;
    assert_eq!(
        rule(&missing),
        (
            RuleStatus::Fail,
            "failed to load context: failed to retrieve config map for context entry keys: failed to get configmap kyverno/keys : configmaps \"keys\" not found".to_owned()
        )
    );
    assert!(missing.blocked());

    // Without a cluster (apply, test, review): said, never an empty key.
    let offline = engine_with(None)
        .evaluate(&policies, &signed, Phase::Mutate)
        .await;
    let (status, message) = rule(&offline);
    assert_eq!(status, RuleStatus::Fail);
    assert!(
        message.ends_with(
            "configmap kyverno/keys cannot be resolved without a cluster (imagegate serve in cluster mode)"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_variable_that_does_not_resolve_is_a_rule_error_not_an_empty_key() {
    let registry = Registry::start();
    let host = registry.host();
    registry.pusher().push_image("app/x", "v1");
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: typo
spec:
  validationFailureAction: Enforce
  rules:
    - name: verify
      match:
        any:
          - resources:
              kinds: [Pod]
      context:
        - name: keys
          variable: {{value: {{pubkey: PEM}}}}
      verifyImages:
        - imageReferences: ["{host}/*"]
          attestors:
            - entries:
                - keys:
                    publicKeys: "{{{{ keys.pubky }}}}"
"#
    );
    let policies = policy_set(&yaml);
    let response = engine_with(None)
        .evaluate(&policies, &pod(&format!("{host}/app/x:v1")), Phase::Mutate)
        .await;
    let (status, message) = rule(&response);
    assert_eq!(status, RuleStatus::Error);
    assert_eq!(
        message,
        "failed to substitute variables: variable substitution failed for \"keys.pubky\": Unknown key in path"
    );
}

#[tokio::test]
async fn values_given_in_place_of_a_cluster_are_read_and_change_the_verdict() {
    let registry = Registry::start();
    let host = registry.host();
    let pusher = registry.pusher();
    let key = CosignKey::generate();
    let other = CosignKey::generate();
    let digest = pusher.push_image("app/signed", "v1");
    pusher.sign(
        "app/signed",
        &format!("{host}/app/signed"),
        &digest,
        &key,
        &BTreeMap::new(),
    );
    // No ConfigMap at all: the value given stands in for it.
    let cluster = Arc::new(ConfigMapsOnly::default());
    let engine = engine_with(Some(cluster.clone()));
    let policies = policy(&host);
    let signed = pod(&format!("{host}/app/signed:v1"));
    cluster.give(&[("keys.data.pubkey", json!(key.public_pem()))]);
    let passed = engine.evaluate(&policies, &signed, Phase::Mutate).await;
    assert_eq!(rule(&passed).0, RuleStatus::Pass, "{:?}", rule(&passed));
    cluster.give(&[("keys", json!({"data": {"pubkey": other.public_pem()}}))]);
    let other_key = engine.evaluate(&policies, &signed, Phase::Mutate).await;
    assert_eq!(
        rule(&other_key).0,
        RuleStatus::Fail,
        "{:?}",
        rule(&other_key)
    );

    // A rule without context entries sees the values too (its preconditions here).
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: tiers
spec:
  validationFailureAction: Enforce
  rules:
    - name: verify
      match:
        any:
          - resources:
              kinds: [Pod]
      preconditions:
        all:
          - key: "{{{{ tier }}}}"
            operator: Equals
            value: prod
      verifyImages:
        - imageReferences: ["{host}/*"]
          mutateDigest: false
          attestors:
            - entries:
                - keys:
                    publicKeys: |-
                      {}
                    rekor:
                      ignoreTlog: true
"#,
        key.public_pem()
            .trim()
            .replace('\n', "\n                      ")
    );
    let tiers = policy_set(&yaml);
    cluster.give(&[("tier", json!("dev"))]);
    let skipped = engine.evaluate(&tiers, &signed, Phase::Mutate).await;
    assert_eq!(
        rule(&skipped),
        (RuleStatus::Skip, "preconditions not met".to_owned())
    );
    cluster.give(&[("tier", json!("prod"))]);
    let verified = engine.evaluate(&tiers, &signed, Phase::Mutate).await;
    assert_eq!(rule(&verified).0, RuleStatus::Pass, "{:?}", rule(&verified));
}
