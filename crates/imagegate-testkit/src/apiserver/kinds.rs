//! The resource types the fake serves and the discovery documents that describe them.
//! Built-in kinds are fixed; custom kinds are added at runtime by creating a
//! `CustomResourceDefinition` (as on a real cluster) or through [`ResourceKind`] directly.

use serde_json::{Value, json};

/// One served resource type (`group/version`, plural), as discovery describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceKind {
    /// API group; empty for the core group.
    pub group: String,
    /// API version within the group (`v1`, `v1alpha2`).
    pub version: String,
    /// `kind` of the objects.
    pub kind: String,
    /// Plural resource name used in paths.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Whether a `status` subresource exists (then the main resource ignores status
    /// changes and `/status` ignores everything else).
    pub status_subresource: bool,
    /// Short names (`cpol`).
    pub short_names: Vec<String>,
}

impl ResourceKind {
    fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        ResourceKind {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            singular: kind.to_ascii_lowercase(),
            namespaced,
            status_subresource: false,
            short_names: Vec::new(),
        }
    }

    fn with_status(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    fn with_short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// `v1` or `group/version`, as in `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group` (or `plural` for the core group), as in Status messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Reads a `CustomResourceDefinition` (apiextensions.k8s.io/v1): one kind per served
    /// version. `None` when a required field is missing.
    pub(crate) fn from_crd(crd: &Value) -> Option<Vec<ResourceKind>> {
        let spec = crd.get("spec")?;
        let group = spec.get("group")?.as_str()?;
        let names = spec.get("names")?;
        let plural = names.get("plural")?.as_str()?;
        let kind = names.get("kind")?.as_str()?;
        let namespaced = spec.get("scope")?.as_str()? == "Namespaced";
        let short: Vec<&str> = names
            .get("shortNames")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut kinds = Vec::new();
        for v in spec.get("versions")?.as_array()? {
            if v.get("served").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let mut k =
                ResourceKind::new(group, v.get("name")?.as_str()?, kind, plural, namespaced)
                    .with_short(&short);
            if let Some(s) = names.get("singular").and_then(Value::as_str) {
                s.clone_into(&mut k.singular);
            }
            k.status_subresource = v.pointer("/subresources/status").is_some();
            kinds.push(k);
        }
        Some(kinds)
    }
}

/// Built-in kinds: what imagegate reads and writes, and CRDs themselves.
pub(crate) fn builtin() -> Vec<ResourceKind> {
    vec![
        ResourceKind::new("", "v1", "Namespace", "namespaces", false)
            .with_status()
            .with_short(&["ns"]),
        ResourceKind::new("", "v1", "Secret", "secrets", true),
        ResourceKind::new("", "v1", "ConfigMap", "configmaps", true).with_short(&["cm"]),
        ResourceKind::new("", "v1", "ServiceAccount", "serviceaccounts", true).with_short(&["sa"]),
        ResourceKind::new("", "v1", "Pod", "pods", true)
            .with_status()
            .with_short(&["po"]),
        ResourceKind::new("", "v1", "Event", "events", true).with_short(&["ev"]),
        // Kyverno and imagegate write Events through events.k8s.io/v1 (a real API server
        // stores both versions as one; here they are kept apart).
        ResourceKind::new("events.k8s.io", "v1", "Event", "events", true),
        ResourceKind::new("coordination.k8s.io", "v1", "Lease", "leases", true),
        ResourceKind::new(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        )
        .with_status()
        .with_short(&["crd", "crds"]),
    ]
}

/// CustomResourceDefinitions for the kinds Kyverno installs that imagegate uses
/// (`kyverno.io` policies and PolicyExceptions, `wgpolicyk8s.io/v1alpha2` reports,
/// `reports.kyverno.io/v1` ephemeral reports, `policies.kyverno.io`
/// (Namespaced)ImageValidatingPolicy and PolicyException), with Kyverno's served versions
/// (storage version first), reduced to what the fake reads.
pub fn kyverno_crds() -> Vec<Value> {
    let crd = |group: &str,
               versions: &[&str],
               kind: &str,
               plural: &str,
               scope: &str,
               short: &[&str],
               status: bool| {
        let versions: Vec<Value> = versions
            .iter()
            .enumerate()
            .map(|(i, version)| {
                let mut v = json!({"name": version, "served": true, "storage": i == 0});
                if status {
                    v["subresources"] = json!({"status": {}});
                }
                v
            })
            .collect();
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {
                "group": group,
                "scope": scope,
                "names": {"kind": kind, "plural": plural, "singular": kind.to_ascii_lowercase(), "shortNames": short},
                "versions": versions,
            }
        })
    };
    vec![
        crd(
            "kyverno.io",
            &["v1"],
            "ClusterPolicy",
            "clusterpolicies",
            "Cluster",
            &["cpol"],
            true,
        ),
        crd(
            "kyverno.io",
            &["v1"],
            "Policy",
            "policies",
            "Namespaced",
            &["pol"],
            true,
        ),
        crd(
            "kyverno.io",
            &["v2", "v2beta1"],
            "PolicyException",
            "policyexceptions",
            "Namespaced",
            &["polex"],
            false,
        ),
        crd(
            "wgpolicyk8s.io",
            &["v1alpha2"],
            "PolicyReport",
            "policyreports",
            "Namespaced",
            &["polr"],
            false,
        ),
        crd(
            "wgpolicyk8s.io",
            &["v1alpha2"],
            "ClusterPolicyReport",
            "clusterpolicyreports",
            "Cluster",
            &["cpolr"],
            false,
        ),
        crd(
            "reports.kyverno.io",
            &["v1"],
            "EphemeralReport",
            "ephemeralreports",
            "Namespaced",
            &["ephr"],
            false,
        ),
        crd(
            "reports.kyverno.io",
            &["v1"],
            "ClusterEphemeralReport",
            "clusterephemeralreports",
            "Cluster",
            &["cephr"],
            false,
        ),
        crd(
            "policies.kyverno.io",
            &["v1beta1", "v1alpha1"],
            "ImageValidatingPolicy",
            "imagevalidatingpolicies",
            "Cluster",
            &["ivpol"],
            true,
        ),
        crd(
            "policies.kyverno.io",
            &["v1beta1"],
            "NamespacedImageValidatingPolicy",
            "namespacedimagevalidatingpolicies",
            "Namespaced",
            &["nivpol"],
            true,
        ),
        crd(
            "policies.kyverno.io",
            &["v1beta1", "v1alpha1"],
            "PolicyException",
            "policyexceptions",
            "Namespaced",
            &["polex"],
            false,
        ),
    ]
}

/// `GET /api`.
pub(crate) fn core_versions(addr: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}],
    })
}

/// One `APIGroup` for the non-core kinds of `group`.
fn api_group(kinds: &[ResourceKind], group: &str) -> Value {
    let mut versions: Vec<&str> = Vec::new();
    for k in kinds.iter().filter(|k| k.group == group) {
        if !versions.contains(&k.version.as_str()) {
            versions.push(&k.version);
        }
    }
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": entries,
        "preferredVersion": entries.first().cloned().unwrap_or(Value::Null),
    })
}

/// `GET /apis/GROUP`, `None` when the group is unknown.
pub(crate) fn group(kinds: &[ResourceKind], group: &str) -> Option<Value> {
    kinds
        .iter()
        .any(|k| k.group == group && !group.is_empty())
        .then(|| api_group(kinds, group))
}

/// `GET /apis`.
pub(crate) fn group_list(kinds: &[ResourceKind]) -> Value {
    let mut groups: Vec<&str> = Vec::new();
    for k in kinds.iter().filter(|k| !k.group.is_empty()) {
        if !groups.contains(&k.group.as_str()) {
            groups.push(&k.group);
        }
    }
    let groups: Vec<Value> = groups.iter().map(|g| api_group(kinds, g)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /api/v1` or `/apis/GROUP/VERSION`, `None` when nothing is served there.
pub(crate) fn resource_list(kinds: &[ResourceKind], group: &str, version: &str) -> Option<Value> {
    let verbs = json!([
        "create", "delete", "get", "list", "patch", "update", "watch"
    ]);
    let mut resources = Vec::new();
    for k in kinds
        .iter()
        .filter(|k| k.group == group && k.version == version)
    {
        resources.push(json!({
            "name": k.plural, "singularName": k.singular, "namespaced": k.namespaced,
            "kind": k.kind, "verbs": verbs, "shortNames": k.short_names,
        }));
        if k.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", k.plural), "singularName": "", "namespaced": k.namespaced,
                "kind": k.kind, "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

/// `GET /openapi/v3`: one entry per served group-version.
pub(crate) fn openapi_root(kinds: &[ResourceKind]) -> Value {
    let mut paths = serde_json::Map::new();
    for k in kinds {
        let gv = if k.group.is_empty() {
            "api/v1".to_owned()
        } else {
            format!("apis/{}/{}", k.group, k.version)
        };
        paths.insert(
            gv.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash=fake")}),
        );
    }
    json!({"paths": paths})
}

/// `GET /openapi/v3/api/v1` or `/openapi/v3/apis/GROUP/VERSION`: a reduced document that
/// only says what clients ask of it — which operations exist per kind and that PATCH
/// takes `fieldValidation` (kubectl then leaves field validation to the server). No
/// schemas: the fake does not validate fields.
pub(crate) fn openapi_group_version(
    kinds: &[ResourceKind],
    group: &str,
    version: &str,
) -> Option<Value> {
    let mut paths = serde_json::Map::new();
    let param = json!([{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}}]);
    for k in kinds
        .iter()
        .filter(|k| k.group == group && k.version == version)
    {
        let prefix = if group.is_empty() {
            "/api/v1".to_owned()
        } else {
            format!("/apis/{group}/{version}")
        };
        let item = if k.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", k.plural)
        } else {
            format!("{prefix}/{}/{{name}}", k.plural)
        };
        let gvk = json!({"group": group, "version": version, "kind": k.kind});
        let op = |action: &str| json!({"x-kubernetes-action": action, "x-kubernetes-group-version-kind": gvk, "parameters": param, "responses": {"200": {"description": "OK"}}});
        paths.insert(item, json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete"), "parameters": param}));
    }
    if paths.is_empty() {
        return None;
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
