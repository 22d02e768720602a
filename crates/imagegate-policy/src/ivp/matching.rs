//! `matchConstraints` as the Kubernetes API server applies them to a request: resource
//! rules (group, version, resource and subresource with `*`, operations, resource names,
//! scope), exclusions, and namespace and object label selectors.

use std::collections::BTreeMap;

use serde_json::Value;

use super::model::{LabelSelector, MatchResources, NamedRuleWithOperations};

/// The attributes of a request that matching reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestAttributes {
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: String,
    /// API group (`""` for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Resource (plural, lower case), e.g. `pods`.
    pub resource: String,
    /// Subresource, e.g. `ephemeralcontainers`, or empty.
    pub sub_resource: String,
    /// Object name.
    pub name: String,
    /// Namespace, empty for cluster-scoped objects.
    pub namespace: String,
}

/// Whether the request passes the resource rules, exclusions and selectors.
/// `object_labels` are those of the object (the old object for DELETE); `namespace_labels`
/// those of the request's namespace (`None` for a cluster-scoped request).
pub fn matches_constraints(
    m: &MatchResources,
    req: &RequestAttributes,
    object_labels: &BTreeMap<String, String>,
    namespace_labels: Option<&BTreeMap<String, String>>,
) -> bool {
    if !m.resource_rules.iter().any(|r| rule_matches(r, req)) {
        return false;
    }
    if m.exclude_resource_rules
        .iter()
        .any(|r| rule_matches(r, req))
    {
        return false;
    }
    if let Some(selector) = &m.object_selector
        && !selector_matches(selector, object_labels)
    {
        return false;
    }
    if let Some(selector) = &m.namespace_selector {
        // A Namespace is matched by its own labels; other cluster-scoped requests are not
        // filtered by the namespace selector (as in the API server).
        let empty = BTreeMap::new();
        let labels = if req.group.is_empty() && req.resource == "namespaces" {
            Some(object_labels)
        } else if req.namespace.is_empty() {
            None
        } else {
            Some(namespace_labels.unwrap_or(&empty))
        };
        if let Some(labels) = labels
            && !selector_matches(selector, labels)
        {
            return false;
        }
    }
    true
}

/// Whether one resource rule matches the request.
pub fn rule_matches(rule: &NamedRuleWithOperations, req: &RequestAttributes) -> bool {
    if !rule_names_resource(rule, req) {
        return false;
    }
    if !rule.resource_names.is_empty() && !rule.resource_names.contains(&req.name) {
        return false;
    }
    match rule.scope.as_deref() {
        Some("Cluster") => req.namespace.is_empty(),
        Some("Namespaced") => !req.namespace.is_empty(),
        _ => true,
    }
}

/// Whether one resource rule names the request's operation, API group, version and
/// resource (subresource included, `*` anywhere), whatever its resource names and scope:
/// the part of [`rule_matches`] that reads only the request's kind, so that a request no
/// rule names can be answered before its object is read.
pub fn rule_names_resource(rule: &NamedRuleWithOperations, req: &RequestAttributes) -> bool {
    let any = |list: &[String], value: &str| list.iter().any(|x| x == "*" || x == value);
    if !any(&rule.operations, &req.operation)
        || !any(&rule.api_groups, &req.group)
        || !any(&rule.api_versions, &req.version)
    {
        return false;
    }
    rule.resources.iter().any(|r| {
        let (res, sub) = r.split_once('/').unwrap_or((r.as_str(), ""));
        match (res, sub) {
            ("*", "*") => true,
            ("*", "") => req.sub_resource.is_empty(),
            ("*", sub) => req.sub_resource == sub,
            (res, "*") => res == req.resource,
            (res, sub) => res == req.resource && sub == req.sub_resource,
        }
    })
}

/// Whether `labels` satisfy a label selector (an empty selector matches everything).
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    selector
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
        && selector.match_expressions.iter().all(|r| {
            let value = labels.get(&r.key);
            match r.operator.as_str() {
                "In" => value.is_some_and(|v| r.values.contains(v)),
                "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                // Rejected at load; never matches if it gets here.
                _ => false,
            }
        })
}

/// `metadata.labels` of an object as a map (non-string values ignored).
pub fn labels_of(object: Option<&Value>) -> BTreeMap<String, String> {
    object
        .and_then(|o| o.pointer("/metadata/labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}
