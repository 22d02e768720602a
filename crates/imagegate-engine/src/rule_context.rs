//! A rule's `context` entries loaded for one request (Kyverno's context loaders):
//! `variable` entries evaluated, `configMap` entries and `apiCall` GETs read through
//! the cluster ([`ClusterInputs`]: cached and watched there). Entries load in order,
//! each seeing the ones before it. Without a cluster an entry that reads one is a
//! clear error, never an empty variable.
//!
//! Values given in place of a cluster ([`ClusterInputs::given_values`], a CLI's values
//! file) are added first, as Kyverno's CLI adds them before the entries: a `configMap`
//! or `apiCall` entry whose variable is given is not read; a `variable` entry is
//! evaluated as always (in Kyverno it replaces a value given under its name).

use imagegate_policy::conditions::Context;
use imagegate_policy::context::{
    ContextEntry, Source, add_entry, api_call_path, api_call_value, config_map_reference,
    evaluate_variable,
};
use serde_json::{Map, Value};

use crate::cluster::{ClusterError, ClusterInputs};

/// A rule's context for one request.
#[derive(Debug, Clone)]
pub(crate) struct LoadedContext {
    /// The request's context with the entries' variables.
    pub context: Context,
    /// The entries' values by name (what a verdict made with them depends on).
    pub values: Value,
}

/// Why a rule's context could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContextFailure {
    /// Kyverno's message after `failed to load context: `.
    pub message: String,
    /// Whether the cause may pass by itself (the API was unreachable).
    pub transient: bool,
}

impl ContextFailure {
    fn of(message: impl Into<String>) -> ContextFailure {
        ContextFailure {
            message: message.into(),
            transient: false,
        }
    }
}

/// Loads `entries` (a rule's `context`, as written) over `base`, after the values
/// `given` for the rule (name → value, in order). `policy_namespace` is the namespace of
/// a namespaced Policy (its reads are kept to it), `None` for a ClusterPolicy.
pub(crate) async fn load(
    cluster: Option<&dyn ClusterInputs>,
    entries: &[Value],
    base: &Context,
    policy_namespace: Option<&str>,
    given: &[(String, Value)],
) -> Result<LoadedContext, ContextFailure> {
    let parsed = ContextEntry::parse_all(entries).map_err(ContextFailure::of)?;
    let mut context = base.clone();
    let mut values = Map::new();
    for (name, value) in given {
        context = add_entry(&context, name, value.clone());
        // A verdict made with them depends on them, as on the entries' values.
        values.insert(name.clone(), value.clone());
    }
    for entry in parsed {
        let name = entry.name.as_str();
        let is_given = given.iter().any(|(key, _)| same_variable(key, name));
        let value = match &entry.source {
            Source::ConfigMap(_) | Source::ApiCall(_) if is_given => continue,
            Source::Variable(variable) => evaluate_variable(name, variable, &context)
                .map_err(|e| ContextFailure::of(e.message))?,
            Source::ConfigMap(config_map) => {
                let retrieve = |message: String| {
                    format!("failed to retrieve config map for context entry {name}: {message}")
                };
                let (namespace, cm_name) =
                    config_map_reference(name, config_map, &context, policy_namespace)
                        .map_err(|e| ContextFailure::of(retrieve(e.message)))?;
                let read = match cluster {
                    Some(cluster) => cluster.config_map(&namespace, &cm_name).await,
                    None => Err(ClusterError::NoCluster {
                        reference: format!("configmap {namespace}/{cm_name}"),
                    }),
                };
                match read {
                    Ok(value) => value.as_ref().clone(),
                    Err(e) => {
                        return Err(ContextFailure {
                            message: retrieve(format!(
                                "failed to get configmap {namespace}/{cm_name} : {e}"
                            )),
                            transient: e.is_transient(),
                        });
                    }
                }
            }
            Source::ApiCall(call) => {
                let path = api_call_path(name, call, &context, policy_namespace).map_err(|e| {
                    ContextFailure::of(format!("failed to fetch data for APICall: {}", e.message))
                })?;
                let read = match cluster {
                    Some(cluster) => cluster.api_get(&path).await,
                    None => Err(ClusterError::NoCluster {
                        reference: format!("apiCall {path}"),
                    }),
                };
                let transient = read.as_ref().is_err_and(ClusterError::is_transient);
                let answer =
                    read.map_err(|e| format!("failed to GET resource with raw url: {path}: {e}"));
                api_call_value(name, call, &context, answer).map_err(|e| ContextFailure {
                    message: e.message,
                    transient,
                })?
            }
            // Warned at load; a variable that uses one does not resolve (named then).
            Source::Unsupported(_) => continue,
        };
        context = add_entry(&context, name, value.clone());
        values.insert(entry.name, value);
    }
    Ok(LoadedContext {
        context,
        values: Value::Object(values),
    })
}

/// Whether a value given as `key` defines (part of) the variable `name`, or the other
/// way round: `keys.data.pubkey` is part of `keys`, `keys` holds `keys.data`.
fn same_variable(key: &str, name: &str) -> bool {
    let within = |long: &str, short: &str| {
        long.strip_prefix(short)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
    };
    within(key, name) || within(name, key)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::cluster::tests::Fake;

    fn entries(yaml: &str) -> Vec<Value> {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn base() -> Context {
        Context::new(
            json!({"request": {"namespace": "team", "object": {"metadata": {"name": "web"}}}}),
        )
    }

    fn fake() -> Fake {
        let mut fake = Fake::default();
        fake.config_maps.insert(
            ("kyverno".into(), "keys".into()),
            Arc::new(json!({"data": {"pubkey": "PEM-A", "team": "keys-team"}, "metadata": {"name": "keys"}})),
        );
        fake.config_maps.insert(
            ("team".into(), "keys-team".into()),
            Arc::new(json!({"data": {"pubkey": "PEM-T"}, "metadata": {"name": "keys-team"}})),
        );
        fake.paths.insert(
            "/api/v1/namespaces/team".into(),
            json!({"metadata": {"labels": {"env": "prod"}}}),
        );
        fake
    }

    #[tokio::test]
    async fn entries_load_in_order_each_seeing_the_ones_before() {
        let fake = fake();
        let loaded = load(
            Some(&fake),
            &entries(
                r#"
- name: keys
  configMap: {name: keys, namespace: kyverno}
- name: teamKeys
  configMap: {name: "{{ keys.data.team }}", namespace: "{{ request.namespace }}"}
- name: env
  apiCall: {urlPath: "/api/v1/namespaces/{{ request.namespace }}", jmesPath: metadata.labels.env}
- name: pick
  variable: {value: "{{ teamKeys.data.pubkey }}"}
- name: nested.deep
  variable: {jmesPath: "env", default: none}
"#,
            ),
            &base(),
            None,
            &[],
        )
        .await
        .unwrap();
        let root = loaded.context.root();
        assert_eq!(root["keys"]["data"]["pubkey"], "PEM-A");
        assert_eq!(root["teamKeys"]["data"]["pubkey"], "PEM-T");
        assert_eq!(root["env"], "prod");
        assert_eq!(root["pick"], "PEM-T");
        assert_eq!(root["nested"]["deep"], "prod");
        assert_eq!(root["request"]["namespace"], "team", "the request stays");
        assert_eq!(loaded.values["pick"], "PEM-T");
        assert!(loaded.values.get("request").is_none());
    }

    #[tokio::test]
    async fn failures_are_kyverno_messages_naming_what_is_missing() {
        let fake = fake();
        let failure = |yaml: &'static str, namespace: Option<&'static str>| {
            let fake = &fake;
            async move {
                load(Some(fake), &entries(yaml), &base(), namespace, &[])
                    .await
                    .unwrap_err()
            }
        };
        let missing = failure(
            "- name: keys\n  configMap: {name: gone, namespace: kyverno}",
            None,
        )
        .await;
        assert_eq!(
            missing.message,
            "failed to retrieve config map for context entry keys: failed to get configmap kyverno/gone : configmaps \"gone\" not found"
        );
        assert!(!missing.transient);
        let crossing = failure(
            "- name: keys\n  configMap: {name: keys, namespace: kyverno}",
            Some("team"),
        )
        .await;
        assert_eq!(
            crossing.message,
            "failed to retrieve config map for context entry keys: context entry keys: configMap namespace \"kyverno\" is different from policy namespace \"team\""
        );
        let api = failure("- name: x\n  apiCall: {urlPath: /api/v1/nope}", None).await;
        assert_eq!(
            api.message,
            "failed to fetch data for APICall: failed to GET resource with raw url: /api/v1/nope: the server could not find the requested resource"
        );
        let other_namespace = failure(
            "- name: x\n  apiCall: {urlPath: /api/v1/namespaces/kyverno/configmaps}",
            Some("team"),
        )
        .await;
        assert_eq!(
            other_namespace.message,
            "failed to fetch data for APICall: path /api/v1/namespaces/kyverno/configmaps refers to namespace kyverno, which is different from the policy namespace team"
        );
        let post = failure(
            "- name: x\n  apiCall: {urlPath: /apis/x, method: POST, data: [{key: a, value: b}]}",
            None,
        )
        .await;
        assert!(post.message.contains("not supported"), "{}", post.message);
        let nil = failure("- name: x\n  variable: {jmesPath: request.nothing}", None).await;
        assert_eq!(
            nil.message,
            "failed to add context entry for variable x since it evaluated to nil"
        );

        // Without a cluster: said, never an empty variable.
        let offline = load(
            None,
            &entries("- name: keys\n  configMap: {name: keys, namespace: kyverno}"),
            &base(),
            None,
            &[],
        )
        .await
        .unwrap_err();
        assert_eq!(
            offline.message,
            "failed to retrieve config map for context entry keys: failed to get configmap kyverno/keys : configmap kyverno/keys cannot be resolved without a cluster (imagegate serve in cluster mode)"
        );
        // An apiCall default stands in for a failed call.
        let defaulted = load(
            None,
            &entries("- name: x\n  apiCall: {urlPath: /api/v1/nope, default: fallback}"),
            &base(),
            None,
            &[],
        )
        .await
        .unwrap();
        assert_eq!(defaulted.context.root()["x"], "fallback");
    }

    #[tokio::test]
    async fn given_values_stand_in_for_what_entries_would_read() {
        let given = vec![
            ("request.operation".to_owned(), json!("UPDATE")),
            ("keys.data.pubkey".to_owned(), json!("PEM-GIVEN")),
            ("env".to_owned(), json!("prod")),
        ];
        let yaml = r#"
- name: keys
  configMap: {name: keys, namespace: kyverno}
- name: env
  apiCall: {urlPath: "/api/v1/namespaces/{{ request.namespace }}", jmesPath: metadata.labels.env}
- name: pick
  variable: {value: "{{ keys.data.pubkey }}-{{ env }}"}
"#;
        // No cluster at all: nothing given is read, nothing else is needed.
        let loaded = load(None, &entries(yaml), &base(), None, &given)
            .await
            .unwrap();
        let root = loaded.context.root();
        assert_eq!(root["keys"]["data"]["pubkey"], "PEM-GIVEN");
        assert_eq!(root["pick"], "PEM-GIVEN-prod");
        assert_eq!(root["request"]["operation"], "UPDATE");
        assert_eq!(
            root["request"]["namespace"], "team",
            "a given request.* value is merged into the request"
        );
        assert_eq!(loaded.values["keys.data.pubkey"], "PEM-GIVEN");
        assert_eq!(loaded.values["pick"], "PEM-GIVEN-prod");

        // A given value does not read the cluster even when there is one.
        let fake = fake();
        let loaded = load(Some(&fake), &entries(yaml), &base(), None, &given)
            .await
            .unwrap();
        assert_eq!(loaded.context.root()["keys"]["data"]["pubkey"], "PEM-GIVEN");

        // As in Kyverno, a variable entry is evaluated and replaces a value given.
        let replaced = load(
            None,
            &entries("- name: env\n  variable: {value: staging}"),
            &base(),
            None,
            &given,
        )
        .await
        .unwrap();
        assert_eq!(replaced.context.root()["env"], "staging");

        // An entry without a value given is today's clear error.
        let missing = load(
            None,
            &entries("- name: other\n  configMap: {name: other, namespace: kyverno}"),
            &base(),
            None,
            &given,
        )
        .await
        .unwrap_err();
        assert!(
            missing
                .message
                .ends_with("configmap kyverno/other cannot be resolved without a cluster (imagegate serve in cluster mode)"),
            "{}",
            missing.message
        );
    }

    #[test]
    fn given_keys_cover_their_variable() {
        assert!(same_variable("keys", "keys"));
        assert!(same_variable("keys.data.pubkey", "keys"));
        assert!(same_variable("keys", "keys.data"));
        assert!(!same_variable("keysets", "keys"));
        assert!(!same_variable("keys", "keysets.a"));
        assert!(!same_variable("other.keys", "keys"));
    }
}
