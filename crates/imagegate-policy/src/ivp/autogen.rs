//! Autogen for pod controllers as Kyverno generates it for ImageValidatingPolicies
//! (`pkg/cel/policies/ivpol/autogen`): a policy that matches exactly `pods` (core/v1, one
//! rule, no resource names, no exclusions, no object selector) also applies to the pod
//! templates of Deployments, DaemonSets, StatefulSets, ReplicaSets and Jobs (variant
//! `defaults`) and of CronJobs (variant `cronjobs`), with `object.spec`/`object.metadata`
//! in every expression moved to the template (`object.metadata.namespace` stays).

use std::collections::{BTreeMap, BTreeSet};

use super::model::{MatchResources, NamedRuleWithOperations, Spec};

/// A pod controller Kyverno generates for: its resource, group, version.
struct Controller {
    resource: &'static str,
    group: &'static str,
    version: &'static str,
    variant: &'static str,
}

const CONTROLLERS: &[Controller] = &[
    Controller {
        resource: "daemonsets",
        group: "apps",
        version: "v1",
        variant: DEFAULTS,
    },
    Controller {
        resource: "deployments",
        group: "apps",
        version: "v1",
        variant: DEFAULTS,
    },
    Controller {
        resource: "replicasets",
        group: "apps",
        version: "v1",
        variant: DEFAULTS,
    },
    Controller {
        resource: "statefulsets",
        group: "apps",
        version: "v1",
        variant: DEFAULTS,
    },
    Controller {
        resource: "jobs",
        group: "batch",
        version: "v1",
        variant: DEFAULTS,
    },
    Controller {
        resource: "cronjobs",
        group: "batch",
        version: "v1",
        variant: CRONJOBS,
    },
];

/// The variant for controllers with a pod template at `spec.template`.
pub const DEFAULTS: &str = "defaults";
/// The variant for CronJobs (`spec.jobTemplate.spec.template`).
pub const CRONJOBS: &str = "cronjobs";

/// Whether Kyverno generates pod-controller variants for these constraints.
pub fn can_autogen(m: Option<&MatchResources>) -> bool {
    let Some(m) = m else { return false };
    if m.object_selector
        .as_ref()
        .is_some_and(|s| !s.match_labels.is_empty() || !s.match_expressions.is_empty())
    {
        return false;
    }
    if !m.exclude_resource_rules.is_empty() || m.resource_rules.len() != 1 {
        return false;
    }
    let r = &m.resource_rules[0];
    r.resource_names.is_empty()
        && r.api_groups == [""]
        && r.api_versions == ["v1"]
        && r.resources == ["pods"]
}

/// The autogen variants of `spec`, by variant name, in name order.
pub fn variants(spec: &Spec) -> Vec<(String, Spec)> {
    if !can_autogen(spec.match_constraints.as_ref()) {
        return Vec::new();
    }
    let wanted: Option<BTreeSet<&str>> = spec
        .autogen_configuration
        .as_ref()
        .and_then(|a| a.pod_controllers.as_ref())
        .and_then(|p| p.controllers.as_ref())
        .map(|c| c.iter().map(String::as_str).collect());
    let mut by_variant: BTreeMap<&str, Vec<&Controller>> = BTreeMap::new();
    for c in CONTROLLERS {
        if wanted.as_ref().is_none_or(|w| w.contains(c.resource)) {
            by_variant.entry(c.variant).or_default().push(c);
        }
    }
    let mut out = Vec::new();
    for (variant, controllers) in by_variant {
        let Some(constraints) = &spec.match_constraints else {
            continue;
        };
        let operations = constraints.resource_rules[0].operations.clone();
        if operations.is_empty() {
            continue;
        }
        // One rule per group/version, resources sorted (Kyverno's CreateMatchConstraints).
        let mut groups: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
        for c in controllers {
            groups
                .entry((c.group, c.version))
                .or_default()
                .insert(c.resource);
        }
        let rules = groups
            .into_iter()
            .map(|((group, version), resources)| NamedRuleWithOperations {
                operations: operations.clone(),
                api_groups: vec![group.to_owned()],
                api_versions: vec![version.to_owned()],
                resources: resources.into_iter().map(str::to_owned).collect(),
                ..Default::default()
            })
            .collect();
        let mut generated = spec.clone();
        // The API server has applied the CRD defaults to the spec Kyverno copies.
        let vc = &mut generated.validation_configurations;
        vc.mutate_digest = Some(vc.mutate_digest());
        vc.verify_digest = Some(vc.verify_digest());
        vc.required = Some(vc.required());
        generated.match_constraints = Some(MatchResources {
            resource_rules: rules,
            namespace_selector: constraints.namespace_selector.clone(),
            ..Default::default()
        });
        let (to_spec, to_metadata) = if variant == CRONJOBS {
            (
                "spec.jobTemplate.spec.template.spec",
                "spec.jobTemplate.spec.template.metadata",
            )
        } else {
            ("spec.template.spec", "spec.template.metadata")
        };
        // Kyverno rewrites the JSON of the whole spec; the same on our serialisation
        // reaches every expression (conditions, variables, validations, extractors, …).
        if let Ok(json) = serde_json::to_string(&generated) {
            let json = rewrite(&json, "spec", to_spec);
            let json = rewrite(&json, "metadata", to_metadata);
            if let Ok(spec) = serde_json::from_str::<Spec>(&json) {
                out.push((variant.to_owned(), spec));
            }
        }
    }
    out
}

/// Replaces `object.<from>` and `oldObject.<from>` with `…<to>`, except where followed by
/// `.namespace` as a whole segment (the workload's own namespace).
pub fn rewrite(text: &str, from: &str, to: &str) -> String {
    let mut out = text.to_owned();
    for root in ["object.", "oldObject."] {
        out = replace_unprotected(&out, &format!("{root}{from}"), &format!("{root}{to}"));
    }
    out
}

fn replace_unprotected(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(from) {
        out.push_str(&rest[..i]);
        let after = &rest[i + from.len()..];
        let protected = after.strip_prefix(".namespace").is_some_and(|next| {
            next.chars()
                .next()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'))
        });
        out.push_str(if protected { from } else { to });
        rest = after;
    }
    out.push_str(rest);
    out
}
