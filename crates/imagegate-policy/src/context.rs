//! Rule `context` entries as Kyverno defines them (`pkg/engine/context/loaders`): each
//! defines one variable, named by the entry, for the rule's preconditions, its
//! verifyImages fields and its conditions. Entries are evaluated in order, so an entry
//! may use the ones before it.
//!
//! What is pure lives here: the entries' model and validation, `variable` entries,
//! where a `configMap` or `apiCall` entry reads (its `{{ }}` substituted, the namespace
//! rules of namespaced policies applied), what is stored from what was read, and the
//! substitution of a verifyImages entry. The reading itself is the engine's (through
//! the cluster it is given).
//!
//! Messages are Kyverno's, byte for byte, where Kyverno has one.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::conditions::{
    Context, Reads, VariableError, has_variables, jmespath_search, substitute, value_reads,
};
use crate::error::FieldError;
use crate::model::ImageVerification;

/// Names Kyverno reserves: a context entry may not define them (nor `NAME.…`).
pub const RESERVED_NAMES: &[&str] = &[
    "images",
    "request",
    "serviceAccountName",
    "serviceAccountNamespace",
    "element",
    "elementIndex",
];

/// Why context entries of a kind imagegate does not evaluate are not acted on.
pub const UNSUPPORTED_ENTRY: &str = "context entries of this kind are not evaluated by imagegate; the variable they define does not resolve";

/// Why an `apiCall` to a service, or with a method other than GET, is not acted on.
pub const API_CALL_UNSUPPORTED: &str = "apiCall service calls, POST and data are not supported by imagegate (only GETs of the Kubernetes API by urlPath)";

/// One rule `context` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextEntry {
    /// The variable it defines.
    pub name: String,
    /// Where its value comes from.
    pub source: Source,
}

/// Where a context entry's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A ConfigMap: the variable is `{data, metadata}`.
    ConfigMap(ConfigMapEntry),
    /// A value or a JMESPath over the context.
    Variable(VariableEntry),
    /// A GET of the Kubernetes API.
    ApiCall(ApiCallEntry),
    /// A kind imagegate does not evaluate (`imageRegistry`, `globalReference`), named.
    Unsupported(&'static str),
}

/// `configMap: {name, namespace}` (both may hold variables).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapEntry {
    /// The ConfigMap's name.
    #[serde(default)]
    pub name: String,
    /// Its namespace (empty: the policy's, or `default` for a ClusterPolicy).
    #[serde(default)]
    pub namespace: String,
}

/// `variable: {value, jmesPath, default}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariableEntry {
    /// The value (variables substituted).
    #[serde(default)]
    pub value: Option<Value>,
    /// A JMESPath over `value`, or over the context when there is no value.
    #[serde(default, rename = "jmesPath")]
    pub jmes_path: Option<String>,
    /// The value when the JMESPath finds nothing.
    #[serde(default)]
    pub default: Option<Value>,
}

/// `apiCall: {urlPath, jmesPath, default, method, data, service}`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiCallEntry {
    /// The API path (`/api/v1/namespaces/x/pods`).
    #[serde(default)]
    pub url_path: String,
    /// `GET` (default) or `POST`.
    #[serde(default)]
    pub method: Option<String>,
    /// Request data (POST only).
    #[serde(default)]
    pub data: Option<Value>,
    /// A service to call instead of the Kubernetes API.
    #[serde(default)]
    pub service: Option<Value>,
    /// A JMESPath over the answer.
    #[serde(default, rename = "jmesPath")]
    pub jmes_path: Option<String>,
    /// The value when the call fails.
    #[serde(default)]
    pub default: Option<Value>,
}

impl ApiCallEntry {
    /// Whether imagegate can make this call: a GET of the Kubernetes API.
    pub fn is_supported(&self) -> bool {
        self.service.as_ref().is_none_or(Value::is_null)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.is_empty() || m == "GET")
            && self
                .data
                .as_ref()
                .is_none_or(|d| d.is_null() || d.as_array().is_some_and(Vec::is_empty))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    #[serde(default)]
    name: String,
    #[serde(default)]
    config_map: Option<ConfigMapEntry>,
    #[serde(default)]
    variable: Option<VariableEntry>,
    #[serde(default)]
    api_call: Option<ApiCallEntry>,
    #[serde(default)]
    image_registry: Option<Value>,
    #[serde(default)]
    global_reference: Option<Value>,
}

impl ContextEntry {
    /// One entry as written, checked as Kyverno's policy validation checks it; the
    /// error is Kyverno's message.
    pub fn parse(value: &Value) -> Result<ContextEntry, String> {
        let raw: RawEntry = serde_json::from_value(value.clone())
            .map_err(|e| format!("invalid context entry: {e}"))?;
        if raw.name.is_empty() {
            return Err("a name is required for context entries".into());
        }
        for reserved in RESERVED_NAMES {
            if raw.name == *reserved || raw.name.starts_with(&format!("{reserved}.")) {
                return Err(format!(
                    "entry name {} is invalid as it conflicts with a pre-defined variable {reserved}",
                    raw.name
                ));
            }
        }
        let present = |v: &Option<Value>| v.as_ref().is_some_and(|v| !v.is_null());
        let kinds = usize::from(raw.config_map.is_some())
            + usize::from(raw.variable.is_some())
            + usize::from(raw.api_call.is_some())
            + usize::from(present(&raw.image_registry))
            + usize::from(present(&raw.global_reference));
        if kinds != 1 {
            return Err(
                "exactly one of configMap or apiCall or imageRegistry or variable is required for context entries"
                    .into(),
            );
        }
        let source = if let Some(config_map) = raw.config_map {
            if config_map.name.is_empty() {
                return Err("a name is required for configMap context entry".into());
            }
            if config_map.namespace.is_empty() {
                return Err("a namespace is required for configMap context entry".into());
            }
            Source::ConfigMap(config_map)
        } else if let Some(variable) = raw.variable {
            let path = variable.jmes_path.as_deref().unwrap_or_default();
            check_jmes_path(path)?;
            let value = variable.value.as_ref().filter(|v| !v.is_null());
            if value.is_none() && path.is_empty() {
                return Err("a variable must define a value or a jmesPath expression".into());
            }
            if variable.default.is_some() && path.is_empty() {
                return Err(
                    "a variable must define a default value only when a jmesPath expression is defined"
                        .into(),
                );
            }
            Source::Variable(variable)
        } else if let Some(call) = raw.api_call {
            if !call.url_path.is_empty() && call.service.as_ref().is_some_and(|s| !s.is_null()) {
                return Err("a URLPath cannot be used for service API calls".into());
            }
            check_jmes_path(call.jmes_path.as_deref().unwrap_or_default())?;
            Source::ApiCall(call)
        } else if present(&raw.image_registry) {
            Source::Unsupported("imageRegistry")
        } else {
            Source::Unsupported("globalReference")
        };
        Ok(ContextEntry {
            name: raw.name,
            source,
        })
    }

    /// The entries of a rule (already validated at load: an invalid one now is an
    /// error naming it).
    pub fn parse_all(entries: &[Value]) -> Result<Vec<ContextEntry>, String> {
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| ContextEntry::parse(e).map_err(|m| format!("context[{i}]: {m}")))
            .collect()
    }
}

/// A JMESPath that holds no variable must parse (one with variables is only known
/// after substitution).
fn check_jmes_path(path: &str) -> Result<(), String> {
    if path.is_empty() || has_variables(path) {
        return Ok(());
    }
    jmespath::parse(path)
        .map(|_| ())
        .map_err(|e| format!("failed to parse JMESPath {path}: {e}"))
}

/// Validation findings of a rule's `context` (`path` is the rule's).
pub fn validate_context(entries: &[Value], path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if let Err(message) = ContextEntry::parse(entry) {
            errs.push(FieldError::new(format!("{path}.context[{i}]"), message));
        }
    }
    errs
}

/// The context entries of a rule imagegate does not act on, with the reason, by index.
pub fn unsupported_entries(entries: &[Value]) -> Vec<(usize, &'static str)> {
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match ContextEntry::parse(e).ok()?.source {
            Source::Unsupported(_) => Some((i, UNSUPPORTED_ENTRY)),
            Source::ApiCall(call) if !call.is_supported() => Some((i, API_CALL_UNSUPPORTED)),
            _ => None,
        })
        .collect()
}

/// A context entry could not be evaluated; the message is Kyverno's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ContextError {
    /// What failed.
    pub message: String,
}

impl ContextError {
    fn new(message: impl Into<String>) -> ContextError {
        ContextError {
            message: message.into(),
        }
    }
}

/// `ctx` with `value` stored as variable `name` (`a.b` nests: `{a: {b: value}}`,
/// merged into what `a` holds).
pub fn add_entry(ctx: &Context, name: &str, value: Value) -> Context {
    let mut parts = name.split('.').rev();
    let Some(first) = parts.next() else {
        return ctx.clone();
    };
    let mut nested = value;
    let mut key = first.to_owned();
    for part in parts {
        let mut map = Map::new();
        map.insert(key, nested);
        nested = Value::Object(map);
        key = part.to_owned();
    }
    let merged = match (ctx.root().get(&key), nested) {
        (Some(Value::Object(existing)), Value::Object(new)) => {
            let mut existing = existing.clone();
            merge(&mut existing, new);
            Value::Object(existing)
        }
        (_, nested) => nested,
    };
    let mut extra = Map::new();
    extra.insert(key, merged);
    ctx.with_entries(extra)
}

fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Object(a)), Value::Object(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// A string field after substitution (Kyverno: `expected string, got …`).
fn substituted_string(text: &str, ctx: &Context) -> Result<String, Result<String, VariableError>> {
    match substitute(&Value::String(text.to_owned()), ctx) {
        Ok(Value::String(s)) => Ok(s),
        Ok(other) => Err(Ok(json_type(&other).to_owned())),
        Err(e) => Err(Err(e)),
    }
}

/// A value as Kyverno's messages print it (`%v`): text as it is, anything else as JSON.
fn go_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Go's `%T` of a decoded JSON value, as Kyverno's messages print it.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// The value of a `variable` entry (Kyverno's `variableLoader`).
pub fn evaluate_variable(
    name: &str,
    variable: &VariableEntry,
    ctx: &Context,
) -> Result<Value, ContextError> {
    let written_path = variable.jmes_path.as_deref().unwrap_or_default();
    let mut path = String::new();
    if !written_path.is_empty() {
        path = match substituted_string(written_path, ctx) {
            Ok(path) => path,
            Err(Err(e)) => {
                return Err(ContextError::new(format!(
                    "failed to substitute variables in context entry {name} {written_path}: {e}"
                )));
            }
            Err(Ok(_)) => {
                return Err(ContextError::new(format!(
                    "jmespath value must be a string {name} {written_path}: <nil>"
                )));
            }
        };
    }
    let default = match variable.default.as_ref().filter(|d| !d.is_null()) {
        Some(default) => Some(substitute(default, ctx).map_err(|e| {
            ContextError::new(format!(
                "failed to substitute variables in context entry {name} {}: {e}",
                go_value(default)
            ))
        })?),
        None => None,
    };
    let mut output = default.clone();
    if let Some(value) = variable.value.as_ref().filter(|v| !v.is_null()) {
        let value = substitute(value, ctx).map_err(|e| {
            ContextError::new(format!(
                "failed to substitute variables in context entry {name} {}: {e}",
                go_value(value)
            ))
        })?;
        if path.is_empty() {
            output = Some(value);
        } else {
            match jmespath_search(&path, &value) {
                Ok(found) => output = Some(found),
                Err(e) if default.is_none() => {
                    return Err(ContextError::new(format!(
                        "failed to apply jmespath {path} to variable {}: {e}",
                        go_value(&value)
                    )));
                }
                Err(_) => {}
            }
        }
    } else if !path.is_empty() {
        match jmespath_search(&path, ctx.root()) {
            Ok(found) if !found.is_null() => output = Some(found),
            Ok(_) => {}
            Err(e) if default.is_none() => {
                return Err(ContextError::new(format!(
                    "failed to apply jmespath {path} to variable <nil>: {e}"
                )));
            }
            Err(_) => {}
        }
    }
    output.filter(|v| !v.is_null()).ok_or_else(|| {
        ContextError::new(format!(
            "failed to add context entry for variable {name} since it evaluated to nil"
        ))
    })
}

/// The namespace and name a `configMap` entry reads: variables substituted, an empty
/// namespace defaulted (the policy's, else `default`), and a namespaced policy kept
/// to its own namespace (Kyverno's `configMapLoader`; `policy_namespace` is `None`
/// for a ClusterPolicy). The error is the part after Kyverno's
/// `failed to retrieve config map for context entry NAME: `.
pub fn config_map_reference(
    name: &str,
    entry: &ConfigMapEntry,
    ctx: &Context,
    policy_namespace: Option<&str>,
) -> Result<(String, String), ContextError> {
    let field = |field: &str, written: &str| match substituted_string(written, ctx) {
        Ok(s) => Ok(s),
        Err(Err(e)) => Err(ContextError::new(format!(
            "failed to substitute variables in context {name} configMap.{field} {written}: {e}"
        ))),
        Err(Ok(got)) => Err(ContextError::new(format!(
            "failed to substitute variables in context {name} configMap.{field} {written}: expected string, got {got}"
        ))),
    };
    let cm_name = field("name", &entry.name)?;
    let mut namespace = field("namespace", &entry.namespace)?;
    if namespace.is_empty() {
        namespace = policy_namespace.unwrap_or("default").to_owned();
    }
    if let Some(own) = policy_namespace
        && namespace != own
    {
        return Err(ContextError::new(format!(
            "context entry {name}: configMap namespace {namespace:?} is different from policy namespace {own:?}"
        )));
    }
    Ok((namespace, cm_name))
}

/// The variable a ConfigMap defines: `{data, metadata}`.
pub fn config_map_value(data: Value, metadata: Value) -> Value {
    let mut map = Map::new();
    map.insert("data".into(), data);
    map.insert("metadata".into(), metadata);
    Value::Object(map)
}

/// The path an `apiCall` entry GETs: a supported call, variables substituted, and a
/// namespaced policy kept to its own namespace (Kyverno's `apiCall.Fetch`). The
/// error is the part after Kyverno's `failed to fetch data for APICall: `.
pub fn api_call_path(
    name: &str,
    call: &ApiCallEntry,
    ctx: &Context,
    policy_namespace: Option<&str>,
) -> Result<String, ContextError> {
    if !call.is_supported() {
        return Err(ContextError::new(format!(
            "context entry {name}: {API_CALL_UNSUPPORTED}"
        )));
    }
    if call.url_path.is_empty() {
        return Err(ContextError::new(format!(
            "missing service for APICall {name}"
        )));
    }
    let path = match substituted_string(&call.url_path, ctx) {
        Ok(path) => path,
        Err(Err(e)) => {
            return Err(ContextError::new(format!(
                "failed to substitute variables in context entry {name} {}: {e}",
                call.url_path
            )));
        }
        Err(Ok(got)) => {
            return Err(ContextError::new(format!(
                "failed to substitute variables in context entry {name} {}: expected string, got {got}",
                call.url_path
            )));
        }
    };
    if let Some(own) = policy_namespace {
        let clean = clean_path(&path);
        match path_namespace(&clean) {
            Some(ns) if ns == own => {}
            Some(ns) => {
                return Err(ContextError::new(format!(
                    "path {clean} refers to namespace {ns}, which is different from the policy namespace {own}"
                )));
            }
            None => {
                return Err(ContextError::new(format!(
                    "path {clean} does not contain a namespace segment, which is required for namespaced policies"
                )));
            }
        }
    }
    Ok(path)
}

/// Go's `path.Clean` for absolute API paths: no empty, `.` or `..` segments.
fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The namespace of `/api(s)/…/namespaces/NS/…` (Kyverno's `namespacePathRegex`:
/// the first `namespaces` segment after the prefix).
fn path_namespace(clean: &str) -> Option<&str> {
    let rest = clean
        .strip_prefix("/apis/")
        .or_else(|| clean.strip_prefix("/api/"))?;
    let segments: Vec<&str> = rest.split('/').collect();
    // `.*?` needs at least one segment before `namespaces`.
    let at = segments
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, s)| **s == "namespaces")
        .map(|(i, _)| i)?;
    segments.get(at + 1).copied().filter(|ns| !ns.is_empty())
}

/// What an `apiCall` entry stores from the answer (or the failure) of its GET: the
/// answer through its `jmesPath`, or its `default` when the call failed. `failure` is
/// the message after Kyverno's `failed to fetch data for APICall: `; the error is the
/// whole text after `failed to load context: `.
pub fn api_call_value(
    name: &str,
    call: &ApiCallEntry,
    ctx: &Context,
    answer: Result<Value, String>,
) -> Result<Value, ContextError> {
    let answer = match answer {
        Ok(answer) => answer,
        Err(failure) => {
            return match call.default.as_ref().filter(|d| !d.is_null()) {
                Some(default) => Ok(default.clone()),
                None => Err(ContextError::new(format!(
                    "failed to fetch data for APICall: {failure}"
                ))),
            };
        }
    };
    let written = call.jmes_path.as_deref().unwrap_or_default();
    if written.is_empty() {
        return Ok(answer);
    }
    let store =
        |message: String| ContextError::new(format!("failed to store data for APICall: {message}"));
    let path = match substituted_string(written, ctx) {
        Ok(path) => path,
        Err(Err(e)) => {
            return Err(store(format!(
                "failed to substitute variables in context entry {name} JMESPath {written}: {e}"
            )));
        }
        Err(Ok(got)) => {
            return Err(store(format!(
                "failed to substitute variables in context entry {name} JMESPath {written}: expected string, got {got}"
            )));
        }
    };
    jmespath_search(&path, &answer).map_err(|e| {
        store(format!(
            "failed to apply JMESPath {path} for context entry {name}: {e}"
        ))
    })
}

/// The names, among `entries`, whose value may depend on the request (or the clock):
/// an entry that reads one of `request_names` or an earlier such entry.
pub fn request_dependent_names(entries: &[Value], request_names: &[&str]) -> Vec<String> {
    let mut tainted: Vec<String> = Vec::new();
    for entry in entries {
        let Ok(parsed) = ContextEntry::parse(entry) else {
            continue;
        };
        let reads = entry_reads(entry);
        let depends =
            reads.clock || reads.reads_any(request_names) || tainted.iter().any(|t| reads.reads(t));
        if depends {
            tainted.push(root_name(&parsed.name).to_owned());
        }
    }
    tainted
}

/// What an entry's definition reads: its variables, and for a `variable` entry
/// without `value`, the JMESPath itself (it runs over the context).
fn entry_reads(entry: &Value) -> Reads {
    let mut reads = value_reads(entry);
    let direct = entry
        .pointer("/variable/jmesPath")
        .and_then(Value::as_str)
        .filter(|_| entry.pointer("/variable/value").is_none_or(Value::is_null));
    if let Some(path) = direct.filter(|p| !has_variables(p)) {
        let more = crate::conditions::expression_reads(path);
        reads.names.extend(more.names);
        reads.whole_root |= more.whole_root;
        reads.clock |= more.clock;
    }
    reads
}

/// The root variable an entry name defines (`a.b` defines `a`).
fn root_name(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

impl ImageVerification {
    /// This entry with its `{{ }}` variables substituted from `ctx` everywhere but in
    /// attestation conditions and `validate.deny` conditions, which are evaluated
    /// later per image (Kyverno's `substituteVariables` of image rules).
    pub fn substituted(&self, ctx: &Context) -> Result<ImageVerification, VariableError> {
        let value = substitute(&self.without_conditions(), ctx)?;
        let mut out: ImageVerification =
            serde_json::from_value(value).map_err(|e| VariableError::WrongType {
                reason: e.to_string(),
            })?;
        out.failure_action_inherited = self.failure_action_inherited;
        for (check, original) in out.attestations.iter_mut().zip(&self.attestations) {
            check.conditions = original.conditions.clone();
        }
        if let (Some(deny), Some(original)) = (
            out.validate.as_mut().and_then(|v| v.deny.as_mut()),
            self.validate.as_ref().and_then(|v| v.deny.as_ref()),
        ) {
            deny.conditions = original.conditions.clone();
        }
        Ok(out)
    }

    /// Whether [`ImageVerification::substituted`] has anything to substitute.
    pub fn has_substitutions(&self) -> bool {
        // Escaped `\{{ }}` counts: substitution removes the backslash.
        self.without_conditions().to_string().contains("{{")
    }

    fn without_conditions(&self) -> Value {
        let Ok(mut value) = serde_json::to_value(self) else {
            return Value::Null;
        };
        if let Some(checks) = value.get_mut("attestations").and_then(Value::as_array_mut) {
            for check in checks {
                if let Some(conditions) = check.get_mut("conditions") {
                    *conditions = Value::Array(Vec::new());
                }
            }
        }
        if let Some(conditions) = value.pointer_mut("/validate/deny/conditions") {
            *conditions = Value::Null;
        }
        value
    }
}
