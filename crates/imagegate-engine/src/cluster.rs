//! What the cluster tells the engine in cluster mode: namespace labels (for
//! `namespaceSelector`), Secrets (`k8s://NAMESPACE/NAME` and `keys.secret` public keys,
//! pull secrets) and ServiceAccounts' `imagePullSecrets`. The engine knows only the
//! [`ClusterInputs`] trait; `imagegate-kube` implements it over the Kubernetes API
//! (watched and cached), so nothing here does I/O of its own. The offline commands
//! implement it over a Kyverno CLI values file (namespace labels and values given for
//! rule `context` entries, no Secrets), as Kyverno's CLI stands such a file in for the
//! cluster.
//!
//! Registry credentials are gathered as Kyverno 1.18 does: the verifyImages entry's
//! `imageRegistryCredentials.secrets` (a name in imagegate's own namespace, or
//! `namespace/name`), then the Pod's `imagePullSecrets`, then its ServiceAccount's;
//! for a registry the first Secret with an entry for it wins, then the mounted docker
//! config.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use imagegate_oci::PullSecrets;
use imagegate_policy::model::{Attestor, AttestorSet, ImageVerification};
use serde_json::Value;

use crate::attestors::Cause;

/// The data of a Secret (decoded bytes per key).
pub type SecretData = Arc<BTreeMap<String, Vec<u8>>>;

/// Key of the public key in a Secret named by `k8s://` or `keys.secret` (cosign's
/// convention).
pub const COSIGN_PUB: &str = "cosign.pub";

/// Why something could not be read from the cluster: the one vocabulary for it, which
/// [`ClusterInputs`] implementations answer in (`imagegate-kube`'s `KubeError` is about
/// connecting to the cluster and watching it, not about what is read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The Secret does not exist (or imagegate may not read it).
    #[error("secret {namespace}/{name} not found")]
    SecretNotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The Secret exists but lacks the key.
    #[error("secret {namespace}/{name} has no key {key:?}")]
    SecretKeyMissing {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The missing key.
        key: String,
    },
    /// A reference is not `k8s://NAMESPACE/NAME` (or `NAMESPACE/NAME`, or a name).
    #[error("invalid secret reference {reference:?}: {expected}")]
    BadReference {
        /// The reference as written.
        reference: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A pull secret holds neither `.dockerconfigjson` nor `.dockercfg`, or it is
    /// malformed (the reason never quotes the Secret's data).
    #[error("secret {namespace}/{name} is not a usable pull secret: {reason}")]
    BadPullSecret {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The ConfigMap does not exist (or imagegate may not read it); the text is the
    /// API server's, as Kyverno shows it.
    #[error("configmaps {name:?} not found")]
    ConfigMapNotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The API answered a GET of `path` with an error status other than a server
    /// error (not found, forbidden, …), or with more than can be read.
    #[error("{reason}")]
    Refused {
        /// The path asked for.
        path: String,
        /// The API server's message.
        reason: String,
    },
    /// The API could not be asked or answered with an error.
    #[error("Kubernetes API: {0}")]
    Unavailable(String),
    /// Not in cluster mode: a reference to a Secret cannot be resolved.
    #[error("{reference} cannot be resolved without a cluster (imagegate serve in cluster mode)")]
    NoCluster {
        /// What was to be read.
        reference: String,
    },
}

impl ClusterError {
    /// Whether the cause may pass by itself (the API was not reachable), as opposed to
    /// a policy or cluster configuration that is wrong.
    pub fn is_transient(&self) -> bool {
        matches!(self, ClusterError::Unavailable(_))
    }
}

/// The cluster as the engine sees it. Implementations answer from caches kept by
/// watches wherever they can: these calls are on the admission path.
pub trait ClusterInputs: Send + Sync + fmt::Debug {
    /// imagegate's own namespace (where `imageRegistryCredentials.secrets` given by
    /// name live).
    fn own_namespace(&self) -> &str;

    /// The labels of `namespace`, `None` while it has not been seen (matching then
    /// fails closed).
    fn namespace_labels(&self, namespace: &str) -> Option<Arc<BTreeMap<String, String>>>;

    /// The data of Secret `namespace/name`.
    fn secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<SecretData, ClusterError>>;

    /// The `imagePullSecrets` names of ServiceAccount `namespace/name` (empty when it
    /// has none or does not exist).
    fn service_account_pull_secrets<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, ClusterError>>;

    /// ConfigMap `namespace/name` as a rule `context` entry sees it: `{data,
    /// metadata}`.
    fn config_map<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<Value>, ClusterError>>;

    /// The JSON answer of a GET of `path` (an `apiCall` context entry), bounded in size.
    fn api_get<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Value, ClusterError>>;

    /// Values given in place of what rule `context` entries load, as Kyverno's CLI
    /// takes them from a values file (`globalValues`, then the resource's values, then
    /// the rule's): variable name (`a.b` nests) → value, in the order they apply, for
    /// rule `rule` of policy `policy` evaluated on the resource named `resource`. A
    /// `configMap` or `apiCall` entry with a value given is not read. A cluster gives
    /// none: it loads the entries.
    fn given_values(&self, policy: &str, rule: &str, resource: &str) -> Vec<(String, Value)> {
        let _ = (policy, rule, resource);
        Vec::new()
    }
}

/// The cause of a cluster read failure: an unreachable API errors (`failurePolicy`
/// decides), a missing or unusable Secret is a policy that cannot be applied.
pub(crate) fn cluster_cause(error: &ClusterError) -> Cause {
    if error.is_transient() {
        Cause::Cluster
    } else {
        Cause::Configuration
    }
}

/// Splits `k8s://NAMESPACE/NAME`.
pub fn parse_secret_url(reference: &str) -> Result<(String, String), ClusterError> {
    let bad = || ClusterError::BadReference {
        reference: reference.to_owned(),
        expected: "expected k8s://NAMESPACE/NAME",
    };
    let rest = reference.trim().strip_prefix("k8s://").ok_or_else(bad)?;
    let (namespace, name) = rest.split_once('/').ok_or_else(bad)?;
    if !is_object_name(namespace) || !is_object_name(name) {
        return Err(bad());
    }
    Ok((namespace.to_owned(), name.to_owned()))
}

/// `imageRegistryCredentials.secrets` entry: `NAME` (in `own_namespace`) or
/// `NAMESPACE/NAME`.
fn parse_credentials_secret(
    reference: &str,
    own_namespace: &str,
) -> Result<(String, String), ClusterError> {
    let bad = || ClusterError::BadReference {
        reference: reference.to_owned(),
        expected: "expected NAME or NAMESPACE/NAME",
    };
    let (namespace, name) = match reference.trim().split_once('/') {
        Some((namespace, name)) => (namespace, name),
        None => (own_namespace, reference.trim()),
    };
    if !is_object_name(namespace) || !is_object_name(name) {
        return Err(bad());
    }
    Ok((namespace.to_owned(), name.to_owned()))
}

/// A plausible Kubernetes object name (not empty, no `/`, at most 253 bytes).
fn is_object_name(text: &str) -> bool {
    !text.is_empty() && text.len() <= 253 && !text.contains('/')
}

/// Whether a `publicKeys` text names a Secret rather than holding PEM.
fn is_secret_url(public_keys: &str) -> bool {
    public_keys.trim_start().starts_with("k8s://")
}

/// Every Secret the static keys of `verification` name, with the policy path of
/// their `keys` (`.attestors[0].entries[1].keys`), in document order.
fn key_secrets(verification: &ImageVerification) -> Vec<(String, String, String)> {
    fn walk(set: &AttestorSet, path: &str, out: &mut Vec<(String, String, String)>) {
        for (j, entry) in set.entries.iter().enumerate() {
            let path = format!("{path}.entries[{j}]");
            visit(entry, &path, out);
        }
    }
    fn visit(entry: &Attestor, path: &str, out: &mut Vec<(String, String, String)>) {
        if let Some(nested) = &entry.attestor {
            walk(nested, &format!("{path}.attestor"), out);
        }
        let Some(keys) = &entry.keys else {
            return;
        };
        let path = format!("{path}.keys");
        if let Some(secret) = &keys.secret {
            out.push((path.clone(), secret.namespace.clone(), secret.name.clone()));
        }
        if let Some(url) = keys.public_keys.as_deref().filter(|k| is_secret_url(k)) {
            // Parsed again when resolved; an invalid one is reported there.
            out.push((path, String::new(), url.to_owned()));
        }
    }
    let mut out = Vec::new();
    for (i, set) in verification.attestors.iter().enumerate() {
        walk(set, &format!(".attestors[{i}]"), &mut out);
    }
    for (a, check) in verification.attestations.iter().enumerate() {
        for (i, set) in check.attestors.iter().enumerate() {
            walk(set, &format!(".attestations[{a}].attestors[{i}]"), &mut out);
        }
    }
    out
}

/// Whether `verification` names Secrets for its keys.
pub fn names_key_secrets(verification: &ImageVerification) -> bool {
    !key_secrets(verification).is_empty()
}

/// A Secret-held key could not be resolved: the policy path and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySecretFailure {
    /// Policy path of the `keys` that name it.
    pub path: String,
    /// Why.
    pub error: ClusterError,
}

/// `verification` with every Secret-held key replaced by the PEM the Secret holds
/// (`k8s://NS/NAME` and `keys.secret: {name, namespace}`: its `cosign.pub`), so the rest
/// of the engine sees plain keys. `None` when it names no Secret.
pub async fn resolve_key_secrets(
    cluster: Option<&dyn ClusterInputs>,
    verification: &ImageVerification,
) -> Result<Option<ImageVerification>, KeySecretFailure> {
    let wanted = key_secrets(verification);
    if wanted.is_empty() {
        return Ok(None);
    }
    let mut resolved: BTreeMap<(String, String), String> = BTreeMap::new();
    for (path, namespace, name) in wanted {
        let fail = |error| KeySecretFailure {
            path: path.clone(),
            error,
        };
        let (namespace, name) = if namespace.is_empty() {
            parse_secret_url(&name).map_err(fail)?
        } else {
            (namespace, name)
        };
        let Some(cluster) = cluster else {
            return Err(fail(ClusterError::NoCluster {
                reference: format!("k8s://{namespace}/{name}"),
            }));
        };
        let data = cluster.secret(&namespace, &name).await.map_err(fail)?;
        let missing = || ClusterError::SecretKeyMissing {
            namespace: namespace.clone(),
            name: name.clone(),
            key: COSIGN_PUB.to_owned(),
        };
        let pem = data
            .get(COSIGN_PUB)
            .and_then(|bytes| String::from_utf8(bytes.clone()).ok())
            .filter(|pem| !pem.trim().is_empty())
            .ok_or_else(|| fail(missing()))?;
        resolved.insert((namespace, name), pem);
    }
    let mut out = verification.clone();
    let substitute = |set: &mut AttestorSet| substitute_set(set, &resolved);
    out.attestors.iter_mut().for_each(substitute);
    for check in &mut out.attestations {
        check
            .attestors
            .iter_mut()
            .for_each(|set| substitute_set(set, &resolved));
    }
    Ok(Some(out))
}

fn substitute_set(set: &mut AttestorSet, resolved: &BTreeMap<(String, String), String>) {
    for entry in &mut set.entries {
        if let Some(nested) = entry.attestor.as_deref_mut() {
            substitute_set(nested, resolved);
        }
        let Some(keys) = entry.keys.as_mut() else {
            continue;
        };
        let from_url = keys
            .public_keys
            .as_deref()
            .filter(|k| is_secret_url(k))
            .and_then(|k| parse_secret_url(k).ok());
        let from_secret = keys
            .secret
            .as_ref()
            .map(|s| (s.namespace.clone(), s.name.clone()));
        let mut pems: Vec<&str> = Vec::new();
        for secret in [from_url.as_ref(), from_secret.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Some(pem) = resolved.get(secret) {
                pems.push(pem);
            }
        }
        if from_url.is_some() || from_secret.is_some() {
            keys.public_keys = Some(pems.join("\n"));
            keys.secret = None;
        }
    }
}

/// The Pod spec of `resource`: its own (`Pod`), or its controller's template
/// (Deployment, Job, …; CronJob's job template).
fn pod_spec(resource: &Value) -> Option<&Value> {
    [
        "/spec",
        "/spec/template/spec",
        "/spec/jobTemplate/spec/template/spec",
    ]
    .into_iter()
    .filter_map(|pointer| resource.pointer(pointer))
    .find(|spec| spec.get("containers").is_some())
}

/// The pull secrets a Pod brings: its `imagePullSecrets`, then its ServiceAccount's.
/// A Secret that does not exist or is not a pull secret is skipped (the kubelet does
/// the same); an unreachable API is an error.
pub async fn pod_pull_secrets(
    cluster: &dyn ClusterInputs,
    resource: &Value,
) -> Result<PullSecrets, ClusterError> {
    let mut secrets = PullSecrets::default();
    let Some(spec) = pod_spec(resource) else {
        return Ok(secrets);
    };
    let namespace = resource
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty())
        .unwrap_or("default");
    let mut names: Vec<String> = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    let account = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or("default");
    names.extend(
        cluster
            .service_account_pull_secrets(namespace, account)
            .await?,
    );
    for name in names.iter().filter(|n| is_object_name(n)) {
        match add_pull_secret(cluster, &mut secrets, namespace, name).await {
            Ok(()) => {}
            Err(e) if e.is_transient() => return Err(e),
            Err(e) => tracing::debug!(error = %e, "skipping a pull secret of the Pod"),
        }
    }
    Ok(secrets)
}

/// The pull secrets a verifyImages entry names (`imageRegistryCredentials.secrets`);
/// each must exist and be a pull secret. Without a cluster there are none (the policy
/// loader warns that they are read in cluster mode only).
pub async fn entry_pull_secrets(
    cluster: Option<&dyn ClusterInputs>,
    verification: &ImageVerification,
) -> Result<PullSecrets, ClusterError> {
    let mut secrets = PullSecrets::default();
    let Some(cluster) = cluster else {
        return Ok(secrets);
    };
    let names = verification
        .image_registry_credentials
        .as_ref()
        .map(|c| c.secrets.as_slice())
        .unwrap_or_default();
    add_named_pull_secrets(cluster, &mut secrets, names).await?;
    Ok(secrets)
}

/// The pull secrets an ImageValidatingPolicy names (`credentials.secrets`: a name in
/// imagegate's own namespace, as Kyverno reads them from its own, or `namespace/name`);
/// each must exist and be a pull secret. Without a cluster there are none.
pub async fn policy_pull_secrets(
    cluster: Option<&dyn ClusterInputs>,
    names: &[String],
) -> Result<PullSecrets, ClusterError> {
    let mut secrets = PullSecrets::default();
    if let Some(cluster) = cluster {
        add_named_pull_secrets(cluster, &mut secrets, names).await?;
    }
    Ok(secrets)
}

async fn add_named_pull_secrets(
    cluster: &dyn ClusterInputs,
    secrets: &mut PullSecrets,
    names: &[String],
) -> Result<(), ClusterError> {
    for reference in names {
        let (namespace, name) = parse_credentials_secret(reference, cluster.own_namespace())?;
        match add_pull_secret(cluster, secrets, &namespace, &name).await {
            // Inputs that stand in for a cluster (a CLI's values file) hold no Secrets:
            // as without a cluster, there are none (the loader warned).
            Err(ClusterError::NoCluster { .. }) => return Ok(()),
            other => other?,
        }
    }
    Ok(())
}

async fn add_pull_secret(
    cluster: &dyn ClusterInputs,
    secrets: &mut PullSecrets,
    namespace: &str,
    name: &str,
) -> Result<(), ClusterError> {
    let data = cluster.secret(namespace, name).await?;
    let source = format!("secret {namespace}/{name}");
    let bad = |reason: String| ClusterError::BadPullSecret {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        reason,
    };
    let added = if let Some(json) = data.get(".dockerconfigjson") {
        secrets.add_docker_config_json(&source, json)
    } else if let Some(cfg) = data.get(".dockercfg") {
        secrets.add_dockercfg(&source, cfg)
    } else {
        return Err(bad("it has neither .dockerconfigjson nor .dockercfg".into()));
    };
    added.map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn secret_references() {
        assert_eq!(
            parse_secret_url("k8s://ns/key").unwrap(),
            ("ns".into(), "key".into())
        );
        for bad in [
            "k8s://ns",
            "k8s:///key",
            "k8s://ns/",
            "k8s://a/b/c",
            "https://x/y",
            "",
        ] {
            assert!(
                matches!(
                    parse_secret_url(bad),
                    Err(ClusterError::BadReference { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(
            parse_credentials_secret("regcred", "imagegate").unwrap(),
            ("imagegate".into(), "regcred".into())
        );
        assert_eq!(
            parse_credentials_secret("team/regcred", "imagegate").unwrap(),
            ("team".into(), "regcred".into())
        );
        assert!(parse_credentials_secret("a/b/c", "imagegate").is_err());
        assert!(parse_credentials_secret("", "imagegate").is_err());
    }

    /// Secrets and ServiceAccounts in memory (pure logic: no API involved).
    #[derive(Debug, Default)]
    pub(crate) struct Fake {
        secrets: BTreeMap<(String, String), SecretData>,
        accounts: BTreeMap<(String, String), Vec<String>>,
        pub(crate) config_maps: BTreeMap<(String, String), Arc<Value>>,
        pub(crate) paths: BTreeMap<String, Value>,
    }

    impl Fake {
        pub(crate) fn secret(mut self, ns: &str, name: &str, key: &str, value: &str) -> Fake {
            let data = BTreeMap::from([(key.to_owned(), value.as_bytes().to_vec())]);
            self.secrets
                .insert((ns.into(), name.into()), Arc::new(data));
            self
        }
    }

    impl ClusterInputs for Fake {
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
            let found = self
                .secrets
                .get(&(namespace.to_owned(), name.to_owned()))
                .cloned()
                .ok_or_else(|| ClusterError::SecretNotFound {
                    namespace: namespace.into(),
                    name: name.into(),
                });
            Box::pin(async move { found })
        }
        fn service_account_pull_secrets<'a>(
            &'a self,
            namespace: &'a str,
            name: &'a str,
        ) -> BoxFuture<'a, Result<Vec<String>, ClusterError>> {
            let found = self
                .accounts
                .get(&(namespace.to_owned(), name.to_owned()))
                .cloned()
                .unwrap_or_default();
            Box::pin(async move { Ok(found) })
        }
        fn config_map<'a>(
            &'a self,
            namespace: &'a str,
            name: &'a str,
        ) -> BoxFuture<'a, Result<Arc<Value>, ClusterError>> {
            let found = self
                .config_maps
                .get(&(namespace.to_owned(), name.to_owned()))
                .cloned()
                .ok_or_else(|| ClusterError::ConfigMapNotFound {
                    namespace: namespace.into(),
                    name: name.into(),
                });
            Box::pin(async move { found })
        }
        fn api_get<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Value, ClusterError>> {
            let found = self
                .paths
                .get(path)
                .cloned()
                .ok_or_else(|| ClusterError::Refused {
                    path: path.into(),
                    reason: "the server could not find the requested resource".into(),
                });
            Box::pin(async move { found })
        }
    }

    fn verification(yaml: &str) -> ImageVerification {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[tokio::test]
    async fn secret_held_keys_are_substituted_everywhere_or_named_when_missing() {
        let fake = Fake::default()
            .secret("keys", "a", COSIGN_PUB, "PEM-A")
            .secret("keys", "b", COSIGN_PUB, "PEM-B")
            .secret("keys", "empty", "other", "x");
        let entry = verification(
            r#"
imageReferences: ["*"]
attestors:
- entries:
  - keys: {publicKeys: "k8s://keys/a"}
  - attestor:
      entries:
      - keys: {secret: {name: b, namespace: keys}}
attestations:
- type: https://example.com/p
  attestors:
  - entries:
    - keys: {publicKeys: "k8s://keys/b"}
"#,
        );
        let resolved = resolve_key_secrets(Some(&fake), &entry)
            .await
            .unwrap()
            .unwrap();
        let keys = |set: &AttestorSet, i: usize| set.entries[i].keys.clone().unwrap();
        assert_eq!(
            keys(&resolved.attestors[0], 0).public_keys.as_deref(),
            Some("PEM-A")
        );
        let nested = resolved.attestors[0].entries[1]
            .attestor
            .as_deref()
            .unwrap();
        assert_eq!(keys(nested, 0).public_keys.as_deref(), Some("PEM-B"));
        assert!(keys(nested, 0).secret.is_none());
        assert_eq!(
            keys(&resolved.attestations[0].attestors[0], 0)
                .public_keys
                .as_deref(),
            Some("PEM-B")
        );

        let plain = verification(
            "imageReferences: [\"*\"]\nattestors: [{entries: [{keys: {publicKeys: PEM}}]}]",
        );
        assert_eq!(
            resolve_key_secrets(Some(&fake), &plain).await.unwrap(),
            None
        );

        let missing = verification(
            "imageReferences: [\"*\"]\nattestors: [{entries: [{keys: {publicKeys: PEM}}, {keys: {publicKeys: \"k8s://keys/gone\"}}]}]",
        );
        let failure = resolve_key_secrets(Some(&fake), &missing)
            .await
            .unwrap_err();
        assert_eq!(failure.path, ".attestors[0].entries[1].keys");
        assert_eq!(failure.error.to_string(), "secret keys/gone not found");
        let no_key = verification(
            "imageReferences: [\"*\"]\nattestors: [{entries: [{keys: {publicKeys: \"k8s://keys/empty\"}}]}]",
        );
        let failure = resolve_key_secrets(Some(&fake), &no_key).await.unwrap_err();
        assert_eq!(
            failure.error.to_string(),
            "secret keys/empty has no key \"cosign.pub\""
        );
        let failure = resolve_key_secrets(None, &entry).await.unwrap_err();
        assert!(matches!(failure.error, ClusterError::NoCluster { .. }));
    }

    #[tokio::test]
    async fn pull_secrets_come_from_the_entry_then_the_pod_then_its_service_account() {
        let config = |user: &str| {
            format!(r#"{{"auths":{{"reg.example":{{"username":"{user}","password":"p"}}}}}}"#)
        };
        let mut fake = Fake::default()
            .secret(
                "imagegate",
                "policy",
                ".dockerconfigjson",
                &config("policy"),
            )
            .secret("team", "pod", ".dockerconfigjson", &config("pod"))
            .secret(
                "team",
                "account",
                ".dockercfg",
                r#"{"other.example":{"username":"sa","password":"p"}}"#,
            )
            .secret("team", "opaque", "token", "x");
        fake.accounts
            .insert(("team".into(), "builder".into()), vec!["account".into()]);
        let pod = serde_json::json!({"kind": "Pod", "metadata": {"namespace": "team"},
            "spec": {"serviceAccountName": "builder", "containers": [],
                     "imagePullSecrets": [{"name": "missing"}, {"name": "opaque"}, {"name": "pod"}]}});
        let from_pod = pod_pull_secrets(&fake, &pod).await.unwrap();
        let user = |secrets: &PullSecrets, registry: &str| match secrets.credential_for(registry) {
            Some(imagegate_oci::Credential::UserPassword { username, .. }) => username.clone(),
            other => format!("{other:?}"),
        };
        assert_eq!(user(&from_pod, "reg.example"), "pod");
        assert_eq!(user(&from_pod, "other.example"), "sa");

        let entry =
            verification("imageReferences: [\"*\"]\nimageRegistryCredentials: {secrets: [policy]}");
        let mut all = entry_pull_secrets(Some(&fake), &entry).await.unwrap();
        all.extend(&from_pod);
        assert_eq!(user(&all, "reg.example"), "policy");
        assert!(entry_pull_secrets(None, &entry).await.unwrap().is_empty());

        let bad = verification(
            "imageReferences: [\"*\"]\nimageRegistryCredentials: {secrets: [team/opaque]}",
        );
        let err = entry_pull_secrets(Some(&fake), &bad).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("secret team/opaque is not a usable pull secret"),
            "{err}"
        );
    }

    #[test]
    fn pod_specs_of_pods_and_controllers() {
        let pod = serde_json::json!({"kind": "Pod", "spec": {"containers": [], "imagePullSecrets": [{"name": "a"}]}});
        assert!(pod_spec(&pod).is_some_and(|s| s.get("imagePullSecrets").is_some()));
        let deployment = serde_json::json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": []}}}});
        assert!(pod_spec(&deployment).is_some());
        let cron = serde_json::json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}}});
        assert!(pod_spec(&cron).is_some());
        assert!(pod_spec(&serde_json::json!({"kind": "ConfigMap"})).is_none());
    }
}
