//! Kubernetes kinds as policies name them: the pod controllers and where their Pod
//! template lives, the kinds autogen writes, and the grammar of `apiVersion` and of
//! kind selectors (`Pod`, `v1/Pod`, `apps/v1/Deployment`, `Pod/ephemeralcontainers`).
//! A leaf: it depends on nothing else in this crate, so matching, autogen and image
//! extraction share one list of controllers instead of three.

/// The controllers autogen covers by default, in Kyverno's order.
pub const POD_CONTROLLERS: [&str; 7] = [
    "DaemonSet",
    "Deployment",
    "Job",
    "StatefulSet",
    "ReplicaSet",
    "ReplicationController",
    "CronJob",
];

/// The controllers of `autogen-<rule>` (all but CronJob), sorted as Kyverno sorts them.
pub(crate) const TEMPLATE_CONTROLLERS_SORTED: [&str; 6] = [
    "DaemonSet",
    "Deployment",
    "Job",
    "ReplicaSet",
    "ReplicationController",
    "StatefulSet",
];

/// JSON pointer of the Pod spec in a resource of this kind: `/spec` for `Pod`,
/// `/spec/template/spec` for `DaemonSet`, `Deployment`, `Job`, `ReplicaSet`,
/// `ReplicationController`, `StatefulSet`, `/spec/jobTemplate/spec/template/spec` for
/// `CronJob`; `None` for other kinds.
pub fn pod_template_path(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("/spec"),
        "DaemonSet"
        | "Deployment"
        | "Job"
        | "ReplicaSet"
        | "ReplicationController"
        | "StatefulSet" => Some("/spec/template/spec"),
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// The fully qualified kind Kyverno writes into autogen rules
/// (`Deployment` → `apps/v1/Deployment`); other names are kept.
pub fn controller_gvk(kind: &str) -> String {
    match kind {
        "DaemonSet" | "Deployment" | "StatefulSet" | "ReplicaSet" => format!("apps/v1/{kind}"),
        "Job" | "CronJob" => format!("batch/v1/{kind}"),
        "ReplicationController" | "Pod" => format!("v1/{kind}"),
        other => other.to_owned(),
    }
}

/// Splits an `apiVersion` into group and version: `apps/v1` → (`apps`, `v1`),
/// `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// Whether a kind-selector part is a version (`v1`, `v1beta2`) or `*`.
pub(crate) fn is_version(part: &str) -> bool {
    // Kyverno: ^(v\d+((alpha|beta)\d+)?|\*)$
    if part == "*" {
        return true;
    }
    let Some(rest) = part.strip_prefix('v') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let rest = &rest[digits..];
    if rest.is_empty() {
        return true;
    }
    let Some(rest) = rest
        .strip_prefix("alpha")
        .or_else(|| rest.strip_prefix("beta"))
    else {
        return false;
    };
    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
}

/// A kind selector split as Kyverno's `ParseKindSelector` does:
/// (group, version, kind, subresource).
pub(crate) fn parse_kind_selector(input: &str) -> (&str, &str, &str, &str) {
    let mut parts: Vec<&str> = input.split('/').collect();
    if let Some(last) = parts.pop() {
        parts.extend(last.split('.'));
    }
    match parts.as_slice() {
        [kind] => ("*", "*", kind, ""),
        ["*", "*"] => ("*", "*", "*", "*"),
        ["*", sub] if sub.to_lowercase() == *sub => ("*", "*", "*", sub),
        [version, kind] if is_version(version) => ("*", version, kind, ""),
        [kind, sub] => ("*", "*", kind, sub),
        [version, kind, sub] if is_version(version) => ("*", version, kind, sub),
        [group, version, kind] => (group, version, kind, ""),
        [group, version, kind, sub] => (group, version, kind, sub),
        _ => ("", "", "", ""),
    }
}
