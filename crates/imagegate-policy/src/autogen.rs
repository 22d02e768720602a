//! Autogen: the rules Kyverno derives from Pod rules for pod controllers
//! (`pkg/autogen/v1`: `CanAutoGen`, `computeRules`, `generateRules`).
//!
//! - The policy qualifies when no rule has, in any match/exclude description,
//!   `name`, `names`, `selector`, `annotations` or a kind list mixing `Pod` with other
//!   kinds, and some description lists `Pod` or a controller kind.
//! - Controllers: the annotation `pod-policies.kyverno.io/autogen-controllers`
//!   (`none`, `all`, or a comma list), default all of `DaemonSet`, `Deployment`,
//!   `Job`, `StatefulSet`, `ReplicaSet`, `ReplicationController`, `CronJob`.
//! - For each rule whose match kinds include `Pod` (and whose exclude kinds, if any,
//!   include `Pod`): `autogen-<rule>` with the `Pod` filters' kinds replaced by the
//!   controllers (sorted, fully qualified, e.g. `apps/v1/Deployment`), and
//!   `autogen-cronjob-<rule>` with every filter's kinds replaced by
//!   `batch/v1/CronJob`. Names are cut to 63 bytes.
//! - `request.object.spec`/`.metadata` (and `oldObject`) in the rule text are
//!   shifted to the pod template, and `imageExtractors` is dropped, as Kyverno's
//!   `convertRule` does.

use std::collections::BTreeSet;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::kinds::{POD_CONTROLLERS, TEMPLATE_CONTROLLERS_SORTED, controller_gvk, is_version};
use crate::model::{
    MatchResources, Policy, ResourceDescription, ResourceFilter, Rule, restore_normalize_marks,
};

/// The policy annotation that selects the autogen controllers.
pub const AUTOGEN_CONTROLLERS_ANNOTATION: &str = "pod-policies.kyverno.io/autogen-controllers";

/// The rules Kyverno applies for `policy`: the policy's rules followed, when autogen
/// applies, by `autogen-<rule>` and `autogen-cronjob-<rule>` for each Pod rule (in
/// rule order). Without autogen, the rules unchanged.
pub fn expand_rules(policy: &Policy) -> Vec<Rule> {
    let rules = &policy.spec.rules;
    let Some(controllers) = effective_controllers(policy) else {
        return rules.clone();
    };
    if controllers == "none" {
        return rules.clone();
    }
    let mut generated = Vec::new();
    for rule in rules {
        let without_cronjob = strip_cronjob(&controllers);
        if let Some(r) = rule_for_controllers(rule, &without_cronjob) {
            generated.push(shift_references(r, "Pod"));
        }
        if let Some(r) = cronjob_rule(rule, &controllers) {
            generated.push(shift_references(r, "CronJob"));
        }
    }
    if generated.is_empty() {
        return rules.clone();
    }
    rules
        .iter()
        .filter(|r| !is_autogen_name(&r.name))
        .cloned()
        .chain(generated)
        .collect()
}

/// Whether Kyverno can autogen for this policy at all (`CanAutoGen`).
pub fn can_autogen(policy: &Policy) -> bool {
    let mut needed = false;
    for rule in &policy.spec.rules {
        if rule.generate.is_some() || has_json6902_patches(rule) {
            return false;
        }
        let mut subjects: Vec<&ResourceDescription> = Vec::new();
        collect_descriptions(&rule.match_, &mut subjects);
        if let Some(exclude) = &rule.exclude {
            collect_descriptions(exclude, &mut subjects);
        }
        for d in subjects {
            if d.name.as_deref().is_some_and(|n| !n.is_empty())
                || !d.names.is_empty()
                || d.selector.is_some()
                || !d.annotations.is_empty()
                || (d.kinds.len() > 1 && contains_kind(&d.kinds, "Pod"))
            {
                return false;
            }
            needed = needed
                || d.kinds
                    .iter()
                    .any(|k| k == "Pod" || POD_CONTROLLERS.contains(&k.as_str()));
        }
    }
    needed
}

/// Whether a mutate rule uses `patchesJson6902` (directly or in `foreach`), which
/// Kyverno cannot shift to pod templates.
fn has_json6902_patches(rule: &Rule) -> bool {
    let Some(mutate) = &rule.mutate else {
        return false;
    };
    let non_empty = |v: &Value| {
        v.get("patchesJson6902")
            .and_then(Value::as_str)
            .is_some_and(|p| !p.is_empty())
    };
    non_empty(mutate)
        || mutate
            .get("foreach")
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(non_empty))
}

/// The controllers to generate for, as Kyverno's comma-joined string, or `None`
/// when autogen does not apply.
fn effective_controllers(policy: &Policy) -> Option<String> {
    if !can_autogen(policy) {
        return None;
    }
    let set: BTreeSet<&str> = match policy
        .metadata
        .annotations
        .get(AUTOGEN_CONTROLLERS_ANNOTATION)
    {
        Some(value) => value.split(',').collect(),
        None => POD_CONTROLLERS.into_iter().collect(),
    };
    Some(set.into_iter().collect::<Vec<_>>().join(","))
}

fn collect_descriptions<'a>(m: &'a MatchResources, out: &mut Vec<&'a ResourceDescription>) {
    if let Some(d) = &m.resources {
        out.push(d);
    }
    out.extend(m.any.iter().map(|f| &f.resources));
    out.extend(m.all.iter().map(|f| &f.resources));
}

fn all_kinds(m: &MatchResources) -> Vec<String> {
    let mut descriptions = Vec::new();
    collect_descriptions(m, &mut descriptions);
    descriptions
        .into_iter()
        .flat_map(|d| d.kinds.iter().cloned())
        .collect()
}

/// The kind part of a kind selector, without group, version or subresource
/// (Kyverno's `GetKindFromGVK` + `SplitSubresource`).
fn bare_kind(selector: &str) -> &str {
    let parts: Vec<&str> = selector.split('/').collect();
    match parts.as_slice() {
        [k] => k.split('.').next().unwrap_or(k),
        [first, k] if is_version(first) => k.split('.').next().unwrap_or(k),
        [k, _sub] => k,
        [first, k, _sub] if is_version(first) => k,
        [_group, _version, k] => k.split('.').next().unwrap_or(k),
        [_group, _version, k, _sub] => k,
        _ => "",
    }
}

fn contains_kind(kinds: &[String], kind: &str) -> bool {
    kinds.iter().any(|k| bare_kind(k) == kind)
}

fn is_autogen_name(name: &str) -> bool {
    name.starts_with("autogen-")
}

fn autogen_name(prefix: &str, name: &str) -> String {
    let mut full = format!("{prefix}-{name}");
    if full.len() > 63 {
        let mut end = 63;
        while !full.is_char_boundary(end) {
            end -= 1;
        }
        full.truncate(end);
    }
    full
}

fn sorted_split(controllers: &str) -> Vec<String> {
    let mut kinds: Vec<String> = controllers.split(',').map(str::to_owned).collect();
    kinds.sort();
    kinds
}

fn strip_cronjob(controllers: &str) -> String {
    sorted_split(controllers)
        .into_iter()
        .filter(|c| c != "CronJob")
        .collect::<Vec<_>>()
        .join(",")
}

/// Kyverno's `generateRuleForControllers`: `autogen-<rule>` for the controllers.
fn rule_for_controllers(rule: &Rule, controllers: &str) -> Option<Rule> {
    if is_autogen_name(&rule.name) || controllers.is_empty() {
        return None;
    }
    // Kyverno's generateRule yields nothing for a rule without mutate, validate or
    // verifyImages.
    if rule.verify_images.is_empty() && rule.validate.is_none() && rule.mutate.is_none() {
        return None;
    }
    let exclude_kinds = rule.exclude.as_ref().map(all_kinds).unwrap_or_default();
    if !contains_kind(&all_kinds(&rule.match_), "Pod")
        || (!exclude_kinds.is_empty() && !contains_kind(&exclude_kinds, "Pod"))
    {
        return None;
    }
    let kinds: Vec<String> = if controllers == "all" {
        TEMPLATE_CONTROLLERS_SORTED
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    } else {
        let validated: Vec<String> = sorted_split(controllers)
            .into_iter()
            .filter(|c| TEMPLATE_CONTROLLERS_SORTED.contains(&c.as_str()))
            .collect();
        if validated.is_empty() {
            sorted_split(controllers)
        } else {
            validated
        }
    };
    let gvks: Vec<String> = kinds.iter().map(|k| controller_gvk(k)).collect();
    Some(generate_rule(
        autogen_name("autogen", &rule.name),
        rule,
        &gvks,
        true,
    ))
}

/// Kyverno's `generateCronJobRule`: `autogen-cronjob-<rule>`, derived from the
/// controllers rule.
fn cronjob_rule(rule: &Rule, controllers: &str) -> Option<Rule> {
    if !(controllers.contains("CronJob") || controllers.contains("all")) {
        return None;
    }
    let base = rule_for_controllers(rule, controllers)?;
    Some(generate_rule(
        autogen_name("autogen-cronjob", &rule.name),
        &base,
        &[controller_gvk("CronJob")],
        false,
    ))
}

/// Kyverno's `generateRule`: a copy of `rule` named `name` whose match (and
/// exclude) kinds are replaced by `kinds` — in `any`/`all` only for the filters that
/// list `Pod` when `only_pod_filters`, in every filter otherwise.
fn generate_rule(name: String, rule: &Rule, kinds: &[String], only_pod_filters: bool) -> Rule {
    let mut out = rule.clone();
    out.name = name;
    out.image_extractors = None;
    let replace = |filters: &mut Vec<ResourceFilter>| {
        for f in filters.iter_mut() {
            if !only_pod_filters || contains_kind(&f.resources.kinds, "Pod") {
                f.resources.kinds = kinds.to_vec();
            }
        }
    };
    if !out.match_.any.is_empty() {
        replace(&mut out.match_.any);
    } else if !out.match_.all.is_empty() {
        replace(&mut out.match_.all);
    } else {
        out.match_
            .resources
            .get_or_insert_with(Default::default)
            .kinds = kinds.to_vec();
    }
    if let Some(exclude) = &mut out.exclude {
        if !exclude.any.is_empty() {
            replace(&mut exclude.any);
        } else if !exclude.all.is_empty() {
            replace(&mut exclude.all);
        } else if let Some(d) = &mut exclude.resources
            && !d.kinds.is_empty()
        {
            d.kinds = kinds.to_vec();
        }
    }
    out
}

/// Kyverno's `updateFields`: shifts `request.object.spec`/`.metadata` (and
/// `request.oldObject…`) references to the pod template of the controller, in every
/// string and key of the rule. The rule is returned unchanged if it cannot be
/// round-tripped through JSON.
fn shift_references(rule: Rule, kind: &str) -> Rule {
    let template = if kind == "CronJob" {
        "spec.jobTemplate.spec.template"
    } else {
        "spec.template"
    };
    let replacements: Vec<(String, String)> = ["object", "oldObject"]
        .into_iter()
        .flat_map(|obj| {
            ["spec", "metadata"].into_iter().map(move |field| {
                (
                    format!("request.{obj}.{field}"),
                    format!("request.{obj}.{template}.{field}"),
                )
            })
        })
        .collect();
    // Kyverno applies the replacements in this order: object.spec, oldObject.spec,
    // object.metadata, oldObject.metadata.
    let ordered = [0usize, 2, 1, 3].map(|i| replacements[i].clone());
    let mut shifted = rewrite_strings(rule.clone(), &ordered);
    // The JSON round trip drops what is not YAML; restore it.
    restore_normalize_marks(&rule, &mut shifted);
    shifted
}

fn rewrite_strings<T: Serialize + DeserializeOwned + Clone>(
    value: T,
    rules: &[(String, String)],
) -> T {
    let Ok(mut json) = serde_json::to_value(&value) else {
        return value;
    };
    if !rewrite_value(&mut json, rules) {
        return value;
    }
    serde_json::from_value(json).unwrap_or(value)
}

fn rewrite_text(text: &str, rules: &[(String, String)]) -> Option<String> {
    let mut out = text.to_owned();
    for (from, to) in rules {
        if out.contains(from.as_str()) {
            out = out.replace(from.as_str(), to);
        }
    }
    (out != text).then_some(out)
}

fn rewrite_value(value: &mut Value, rules: &[(String, String)]) -> bool {
    match value {
        Value::String(s) => match rewrite_text(s, rules) {
            Some(new) => {
                *s = new;
                true
            }
            None => false,
        },
        Value::Array(items) => {
            let mut changed = false;
            for item in items {
                changed |= rewrite_value(item, rules);
            }
            changed
        }
        Value::Object(map) => {
            let mut changed = false;
            let entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
            for (k, mut v) in entries {
                changed |= rewrite_value(&mut v, rules);
                let key = match rewrite_text(&k, rules) {
                    Some(new) => {
                        changed = true;
                        new
                    }
                    None => k,
                };
                map.insert(key, v);
            }
            changed
        }
        _ => false,
    }
}
