//! Helpers shared by the matching modules: fixtures under `tests/data/matching/`,
//! policies with one rule written as JSON, and the imports those modules use.

pub use std::collections::BTreeMap;
pub use std::path::PathBuf;

pub use imagegate_policy::autogen::expand_rules;
pub use imagegate_policy::images::{ContainerKind, ImageError, ImageInfo, extract_images};
pub use imagegate_policy::kinds::pod_template_path;
pub use imagegate_policy::matching::{
    MatchContext, Operation, kind_matches, kind_matches_subresource, label_selector_matches,
    rule_matches, rule_mismatch_reasons,
};
pub use imagegate_policy::model::{LabelSelector, Policy, Rule};
pub use imagegate_policy::pattern::{canonical_image, image_matches, wildcard_match};
pub use serde_json::{Value, json};

/// The shared test vectors: `$IMAGEGATE_VECTORS`, else `<workspace>/../shared/vectors`
/// (the test kit's lookup; this crate keeps its tests free of the test kit's graph).
pub fn vectors_dir() -> PathBuf {
    std::env::var_os("IMAGEGATE_VECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/vectors"
            ))
        })
}

pub fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/matching")
        .join(name)
}

/// A fixture as JSON (`.json` or `.yaml`).
pub fn resource(name: &str) -> Value {
    let text =
        std::fs::read_to_string(data_path(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    if name.ends_with(".json") {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
    } else {
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
    }
}

pub fn policy_fixture(name: &str) -> Policy {
    let text = std::fs::read_to_string(data_path(name)).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("policy {name}: {e}"))
}

/// A ClusterPolicy (or a namespaced Policy) with one rule written as JSON.
pub fn policy_with_rule(kind: &str, namespace: Option<&str>, rule: Value) -> Policy {
    let mut metadata = json!({"name": "p"});
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    serde_json::from_value(json!({
        "apiVersion": "kyverno.io/v1",
        "kind": kind,
        "metadata": metadata,
        "spec": {"rules": [rule]},
    }))
    .unwrap()
}

pub fn cluster_policy(rule: Value) -> Policy {
    policy_with_rule("ClusterPolicy", None, rule)
}

pub fn create() -> MatchContext {
    MatchContext::default()
}

pub fn matches(rule: Value, fixture: &str, ctx: &MatchContext) -> bool {
    let policy = cluster_policy(rule);
    rule_matches(&policy.spec.rules[0], &policy, &resource(fixture), ctx)
}

pub fn filter(resources: Value) -> Value {
    json!({"name": "r", "match": {"any": [{"resources": resources}]}})
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
