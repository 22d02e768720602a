//! Kyverno CLI values files (`cli.kyverno.io/v1alpha1` `Values`, Kyverno's
//! `cmd/cli/kubectl-kyverno/apis/v1alpha1/values*.go`): what `imagegate apply
//! --values-file F` and `imagegate test` (`variables: F` or `values:` in a
//! kyverno-test.yaml) are told in place of a cluster, as Kyverno's CLI is:
//!
//! - `globalValues`, `policies[].resources[].values` and `policies[].rules[].values`:
//!   variables by name (`a.b` nests) added to a rule's context in that order before its
//!   `context` entries; a `configMap` or `apiCall` entry whose variable is given is not
//!   read. `request.operation` (global or per resource) is the admission operation.
//! - `namespaceSelector[]` (`name`, `labels`) and `namespaces[]` (Namespace objects,
//!   which win): the namespaces' labels, for `namespaceSelector`s.
//!
//! The file reaches the engine through the seam cluster mode uses ([`ClusterInputs`]):
//! it answers namespace labels and the values, and holds no Secrets, ConfigMaps or API
//! (reading one is the same error as without a cluster).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::anyhow;
use futures::future::BoxFuture;
use imagegate_engine::{
    AdmissionInput, ClusterError, ClusterInputs, Engine, EngineResponse, PolicySet, ResourceId,
    SecretData,
};
use imagegate_policy::matching::{MatchContext, Operation};
use serde_json::{Map, Value};

/// The `apiVersion` of a values file (absent in Kyverno's older schema: accepted).
const API_VERSION: &str = "cli.kyverno.io/v1alpha1";
/// Its `kind`.
const KIND: &str = "Values";
/// The value Kyverno's CLI takes the admission operation from.
const OPERATION_KEY: &str = "request.operation";
/// Kyverno's reply to an operation it does not know.
const OPERATIONS: &str = "must be one of CREATE, UPDATE, DELETE, CONNECT";

/// Variables given by name, in the order they apply.
type Given = Vec<(String, Value)>;

/// A values file, checked.
#[derive(Debug, Default)]
pub struct Values {
    global: Given,
    policies: Vec<PolicyValues>,
    namespaces: BTreeMap<String, Arc<BTreeMap<String, String>>>,
    /// The operation of each resource given one (`policies[].resources[].values`).
    operations: BTreeMap<String, Operation>,
    /// `globalValues` `request.operation` (default `CREATE`).
    global_operation: Operation,
    /// Fields read but not acted on, with their path (say them, never drop silently).
    pub warnings: Vec<String>,
}

#[derive(Debug)]
struct PolicyValues {
    name: String,
    /// Resource name → values.
    resources: Vec<(String, Given)>,
    /// Rule name → values.
    rules: Vec<(String, Given)>,
}

impl Values {
    /// Reads and checks the values file `path` (at most the size of a policy file).
    /// Errors name the file and the field.
    pub fn load(path: &Path) -> anyhow::Result<Values> {
        let text = imagegate_policy::load::read_limited(path)?;
        let document: Value = serde_saphyr::from_str(&text)
            .map_err(|e| anyhow!("values file {}: {e}", path.display()))?;
        Values::from_document(&document).map_err(|e| anyhow!("values file {}: {e}", path.display()))
    }

    /// Checks a values document (a file's, or the `values:` of a kyverno-test.yaml);
    /// the error is `field.path: cause`.
    pub fn from_document(document: &Value) -> Result<Values, String> {
        let mut values = Values::default();
        let root = match document {
            Value::Null => return Ok(values),
            Value::Object(root) => root,
            other => {
                return Err(format!(
                    "expected a map (a {API_VERSION} {KIND}), found {}",
                    type_name(other)
                ));
            }
        };
        let mut selected = BTreeMap::new();
        let mut declared = BTreeMap::new();
        for (key, value) in root {
            match key.as_str() {
                "apiVersion" => expect_text(value, key, API_VERSION)?,
                "kind" => expect_text(value, key, KIND)?,
                "metadata" => {}
                "globalValues" => values.global = given(value, key)?,
                "policies" => {
                    for (i, policy) in list(value, key)?.iter().enumerate() {
                        values
                            .policies
                            .push(policy_values(policy, &format!("{key}[{i}]"), &mut values.warnings)?);
                    }
                }
                "namespaceSelector" => {
                    for (i, entry) in list(value, key)?.iter().enumerate() {
                        let path = format!("{key}[{i}]");
                        let fields = map(entry, &path)?;
                        only(fields, &path, &["name", "labels"])?;
                        let name = required_name(fields, &path)?;
                        let labels = labels(fields.get("labels"), &format!("{path}.labels"))?;
                        selected.insert(name, labels);
                    }
                }
                "namespaces" => {
                    for (i, namespace) in list(value, key)?.iter().enumerate() {
                        let path = format!("{key}[{i}]");
                        let metadata_path = format!("{path}.metadata");
                        let metadata = map(
                            map(namespace, &path)?.get("metadata").unwrap_or(&Value::Null),
                            &metadata_path,
                        )?;
                        let name = required_name(metadata, &metadata_path)?;
                        let labels =
                            labels(metadata.get("labels"), &format!("{metadata_path}.labels"))?;
                        declared.insert(name, labels);
                    }
                }
                "subresources" => values.warnings.push(format!(
                    "{key}: not used by imagegate (subresources are matched as the resources name them)"
                )),
                other => {
                    return Err(format!(
                        "{other}: unknown field (expected apiVersion, kind, metadata, globalValues, policies, namespaceSelector, namespaces or subresources)"
                    ));
                }
            }
        }
        // As Kyverno's CLI: a Namespace object wins over a namespaceSelector entry.
        selected.extend(declared);
        values.namespaces = selected
            .into_iter()
            .map(|(name, labels)| (name, Arc::new(labels)))
            .collect();
        values.global_operation = operation_of(&values.global).unwrap_or_default();
        values.operations = resource_operations(&values.policies)?;
        Ok(values)
    }

    /// The admission operation for the resource named `resource`: its values'
    /// `request.operation`, else the global one, else `CREATE`.
    pub fn operation(&self, resource: &str) -> Operation {
        self.operations
            .get(resource)
            .copied()
            .unwrap_or(self.global_operation)
    }
}

/// The values of `policies[i]`.
fn policy_values(
    policy: &Value,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<PolicyValues, String> {
    let fields = map(policy, path)?;
    only(fields, path, &["name", "resources", "rules"])?;
    let mut out = PolicyValues {
        name: required_name(fields, path)?,
        resources: Vec::new(),
        rules: Vec::new(),
    };
    if let Some(resources) = fields.get("resources") {
        for (i, resource) in list(resources, &format!("{path}.resources"))?
            .iter()
            .enumerate()
        {
            let path = format!("{path}.resources[{i}]");
            let fields = map(resource, &path)?;
            only(fields, &path, &["name", "values"])?;
            let values = given(
                fields.get("values").unwrap_or(&Value::Null),
                &format!("{path}.values"),
            )?;
            out.resources.push((required_name(fields, &path)?, values));
        }
    }
    if let Some(rules) = fields.get("rules") {
        for (i, rule) in list(rules, &format!("{path}.rules"))?.iter().enumerate() {
            let path = format!("{path}.rules[{i}]");
            let fields = map(rule, &path)?;
            only(fields, &path, &["name", "values", "foreachValues"])?;
            if fields.get("foreachValues").is_some_and(|v| !v.is_null()) {
                warnings.push(format!(
                    "{path}.foreachValues: not used by imagegate (verifyImages rules have no foreach)"
                ));
            }
            let values = given(
                fields.get("values").unwrap_or(&Value::Null),
                &format!("{path}.values"),
            )?;
            out.rules.push((required_name(fields, &path)?, values));
        }
    }
    Ok(out)
}

/// The operation of each resource given one; two policies giving one resource
/// different operations is an error (imagegate evaluates a resource once for all
/// policies, where Kyverno's CLI builds a request per policy).
fn resource_operations(policies: &[PolicyValues]) -> Result<BTreeMap<String, Operation>, String> {
    let mut found: BTreeMap<String, (Operation, String)> = BTreeMap::new();
    for (p, policy) in policies.iter().enumerate() {
        for (r, (resource, values)) in policy.resources.iter().enumerate() {
            let Some(operation) = operation_of(values) else {
                continue;
            };
            let path = format!("policies[{p}].resources[{r}].values.{OPERATION_KEY}");
            match found.get(resource) {
                Some((earlier, earlier_path)) if *earlier != operation => {
                    return Err(format!(
                        "{path}: {operation} for resource {resource}, but {earlier_path} gives {earlier}: imagegate evaluates a resource with one operation for all policies"
                    ));
                }
                Some(_) => {}
                None => {
                    found.insert(resource.clone(), (operation, path));
                }
            }
        }
    }
    Ok(found.into_iter().map(|(k, (op, _))| (k, op)).collect())
}

/// The `request.operation` among `values` (checked by [`given`]).
fn operation_of(values: &Given) -> Option<Operation> {
    values
        .iter()
        .find(|(key, _)| key == OPERATION_KEY)
        .and_then(|(_, value)| value.as_str())
        .and_then(Operation::parse)
}

/// A `values` map: variable names and their values.
fn given(value: &Value, path: &str) -> Result<Given, String> {
    let fields = match value {
        Value::Null => return Ok(Vec::new()),
        other => map(other, path)?,
    };
    let mut out = Vec::with_capacity(fields.len());
    for (key, value) in fields {
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(format!("{path}: {key:?} is not a variable name"));
        }
        if key == OPERATION_KEY && value.as_str().and_then(Operation::parse).is_none() {
            // Kyverno's text.
            return Err(format!(
                "{path}.{key}: invalid request.operation value {value}, {OPERATIONS}"
            ));
        }
        out.push((key.clone(), value.clone()));
    }
    Ok(out)
}

fn map<'a>(value: &'a Value, path: &str) -> Result<&'a Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{path}: expected a map, found {}", type_name(value)))
}

fn list<'a>(value: &'a Value, path: &str) -> Result<&'a [Value], String> {
    match value {
        Value::Null => Ok(&[]),
        Value::Array(items) => Ok(items),
        other => Err(format!(
            "{path}: expected a list, found {}",
            type_name(other)
        )),
    }
}

/// Refuses fields other than `allowed` (Kyverno reads values files strictly).
fn only(fields: &Map<String, Value>, path: &str, allowed: &[&str]) -> Result<(), String> {
    match fields.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(format!(
            "{path}.{unknown}: unknown field (expected {})",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

/// The required, non-empty `name`.
fn required_name(fields: &Map<String, Value>, path: &str) -> Result<String, String> {
    match fields.get("name") {
        Some(Value::String(name)) if !name.is_empty() => Ok(name.clone()),
        Some(other) if !other.is_null() && !other.is_string() => Err(format!(
            "{path}.name: expected a string, found {}",
            type_name(other)
        )),
        _ => Err(format!("{path}.name: required")),
    }
}

fn labels(value: Option<&Value>, path: &str) -> Result<BTreeMap<String, String>, String> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(BTreeMap::new());
    };
    map(value, path)?
        .iter()
        .map(|(key, value)| match value {
            Value::String(text) => Ok((key.clone(), text.clone())),
            other => Err(format!(
                "{path}.{key}: expected a string, found {}",
                type_name(other)
            )),
        })
        .collect()
}

fn expect_text(value: &Value, path: &str, expected: &str) -> Result<(), String> {
    match value.as_str() {
        Some(text) if text == expected => Ok(()),
        _ => Err(format!("{path}: expected {expected}, found {value}")),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// Whether the rule the engine evaluates as `rule` is the rule values name `named`
/// (Kyverno's CLI gives an autogen rule the values of the rule it comes from).
fn is_rule(rule: &str, named: &str) -> bool {
    rule == named
        || rule.strip_prefix("autogen-") == Some(named)
        || rule.strip_prefix("autogen-cronjob-") == Some(named)
}

/// What a Secret, ConfigMap or API read answers without a cluster: the offline
/// commands' usual error (the engine's own text when it has no cluster at all).
fn no_cluster<T>(reference: String) -> BoxFuture<'static, Result<T, ClusterError>>
where
    T: Send + 'static,
{
    Box::pin(async move { Err(ClusterError::NoCluster { reference }) })
}

impl ClusterInputs for Values {
    fn own_namespace(&self) -> &str {
        // Only names pull secrets, which are never read here.
        "imagegate"
    }

    fn namespace_labels(&self, namespace: &str) -> Option<Arc<BTreeMap<String, String>>> {
        // A namespace the file does not describe stays unknown: matching fails closed,
        // as for a namespace a cluster has not shown yet.
        self.namespaces.get(namespace).cloned()
    }

    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<SecretData, ClusterError>> {
        no_cluster(format!("k8s://{namespace}/{name}"))
    }

    fn service_account_pull_secrets<'a>(
        &'a self,
        _namespace: &'a str,
        _name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, ClusterError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Value>, ClusterError>> {
        no_cluster(format!("configmap {namespace}/{name}"))
    }

    fn api_get<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Value, ClusterError>> {
        no_cluster(format!("apiCall {path}"))
    }

    fn given_values(&self, policy: &str, rule: &str, resource: &str) -> Vec<(String, Value)> {
        let named: Vec<&PolicyValues> = self.policies.iter().filter(|p| p.name == policy).collect();
        let mut out = self.global.clone();
        for (_, values) in named
            .iter()
            .flat_map(|p| &p.resources)
            .filter(|(name, _)| name == resource)
        {
            out.extend(values.iter().cloned());
        }
        for (_, values) in named
            .iter()
            .flat_map(|p| &p.rules)
            .filter(|(name, _)| is_rule(rule, name))
        {
            out.extend(values.iter().cloned());
        }
        out
    }
}

/// Evaluates `resource` as `apply` and `test` do: both admission phases, with the
/// operation and namespace labels the values (the engine's inputs) give. A DELETE or
/// CONNECT checks nothing, as the webhook is given no object to check then.
pub async fn evaluate(
    engine: &Engine,
    policies: &PolicySet,
    values: Option<&Values>,
    resource: Value,
) -> EngineResponse {
    let name = resource
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let operation = values.map_or(Operation::Create, |v| v.operation(name));
    if matches!(operation, Operation::Delete | Operation::Connect) {
        return EngineResponse {
            resource: ResourceId::of(&resource),
            policies: Vec::new(),
            patches: Vec::new(),
            patched: resource,
        };
    }
    let namespace_labels = resource
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty())
        .and_then(|ns| engine.namespace_labels(ns));
    let match_context = MatchContext {
        operation,
        namespace_labels,
        ..MatchContext::default()
    };
    let mut input = AdmissionInput::for_resource(resource, match_context);
    if operation == Operation::Update
        && let Some(request) = input.request.as_object_mut()
    {
        // As Kyverno's CLI: an UPDATE of the resource to itself.
        request.insert("oldObject".into(), input.resource.clone());
    }
    engine.evaluate_both(policies, &input).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(yaml: &str) -> Result<Values, String> {
        Values::from_document(&serde_saphyr::from_str::<Value>(yaml).unwrap())
    }

    #[test]
    fn values_apply_global_then_resource_then_rule() {
        let values = parse(
            r#"
apiVersion: cli.kyverno.io/v1alpha1
kind: Values
globalValues:
  request.operation: UPDATE
  tier: global
policies:
  - name: keys
    resources:
      - name: web
        values: {tier: resource}
    rules:
      - name: verify
        values:
          keys.data.pubkey: PEM
namespaceSelector:
  - name: team
    labels: {env: dev}
  - name: prod
    labels: {env: prod}
namespaces:
  - apiVersion: v1
    kind: Namespace
    metadata: {name: team, labels: {env: staging}}
"#,
        )
        .unwrap();
        let keys =
            |given: Vec<(String, Value)>| given.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        let given = values.given_values("keys", "autogen-verify", "web");
        assert_eq!(
            keys(given.clone()),
            ["request.operation", "tier", "tier", "keys.data.pubkey"]
        );
        assert_eq!(
            given[2].1,
            json!("resource"),
            "the resource's value comes after"
        );
        assert_eq!(
            keys(values.given_values("keys", "other", "db")),
            ["request.operation", "tier"]
        );
        assert_eq!(
            keys(values.given_values("other", "verify", "web")),
            ["request.operation", "tier"]
        );
        assert_eq!(values.operation("web"), Operation::Update);
        let labels = |ns: &str| values.namespace_labels(ns).map(|l| l.as_ref().clone());
        assert_eq!(
            labels("team"),
            Some(BTreeMap::from([("env".into(), "staging".into())])),
            "a Namespace object wins over a namespaceSelector entry"
        );
        assert_eq!(
            labels("prod"),
            Some(BTreeMap::from([("env".into(), "prod".into())]))
        );
        assert_eq!(labels("elsewhere"), None);
    }

    #[test]
    fn malformed_values_name_the_field() {
        let cases = [
            ("foo: bar", "foo: unknown field"),
            (
                "- a",
                "expected a map (a cli.kyverno.io/v1alpha1 Values), found a list",
            ),
            ("kind: Test", "kind: expected Values, found \"Test\""),
            (
                "globalValues: [a]",
                "globalValues: expected a map, found a list",
            ),
            (
                "globalValues: {request.operation: PATCH}",
                "globalValues.request.operation: invalid request.operation value \"PATCH\", must be one of CREATE, UPDATE, DELETE, CONNECT",
            ),
            ("policies: [{rules: []}]", "policies[0].name: required"),
            (
                "policies: {name: x}",
                "policies: expected a list, found a map",
            ),
            (
                "policies: [{name: p, rules: [{name: r, value: {a: b}}]}]",
                "policies[0].rules[0].value: unknown field (expected name, values, foreachValues)",
            ),
            (
                "policies: [{name: p, resources: [{name: r, values: {\"a..b\": 1}}]}]",
                "policies[0].resources[0].values: \"a..b\" is not a variable name",
            ),
            (
                "namespaceSelector: [{name: team, labels: {env: [prod]}}]",
                "namespaceSelector[0].labels.env: expected a string, found a list",
            ),
            (
                "namespaces: [{metadata: {labels: {}}}]",
                "namespaces[0].metadata.name: required",
            ),
            (
                "policies: [{name: a, resources: [{name: web, values: {request.operation: UPDATE}}]}, {name: b, resources: [{name: web, values: {request.operation: DELETE}}]}]",
                "policies[1].resources[0].values.request.operation: DELETE for resource web, but policies[0].resources[0].values.request.operation gives UPDATE",
            ),
        ];
        for (yaml, expected) in cases {
            let error = parse(yaml).unwrap_err();
            assert!(error.starts_with(expected), "{yaml}\n{error}");
        }
        // Kyverno's older schema (no apiVersion and kind) still reads.
        assert!(parse("globalValues: {a: b}").is_ok());
        let warned = parse(
            "subresources: []\npolicies: [{name: p, rules: [{name: r, foreachValues: {a: [1]}}]}]",
        )
        .unwrap();
        assert_eq!(warned.warnings.len(), 2, "{:?}", warned.warnings);
    }

    #[test]
    fn autogen_rules_take_the_values_of_their_rule() {
        assert!(is_rule("check", "check"));
        assert!(is_rule("autogen-check", "check"));
        assert!(is_rule("autogen-cronjob-check", "check"));
        assert!(!is_rule("autogen-other", "check"));
        assert!(!is_rule("check", "autogen-check"));
    }
}
