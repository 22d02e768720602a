//! Reading Kubernetes resources and policies from files for the offline commands.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use imagegate_engine::PolicySet;
use imagegate_policy::exception::{self, PolicyException};
use imagegate_policy::ivp::CompiledCelException;
use imagegate_policy::ivp::exception as cel_exception;
use imagegate_policy::load::{load_documents, load_policy_files};
use serde_json::Value;

/// Resource files larger than this are refused.
const MAX_RESOURCE_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Loads, validates and prepares the policies of `paths` (files or directories).
pub fn load_policies(paths: &[PathBuf]) -> anyhow::Result<PolicySet> {
    let loaded = load_policy_files(paths)?;
    for skipped in &loaded.skipped {
        tracing::info!("{skipped}");
    }
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    if loaded.policies.is_empty() && loaded.image_validating.is_empty() {
        bail!(
            "no ClusterPolicy, Policy or ImageValidatingPolicy found in {}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // ImageValidatingPolicies are enforced with the ClusterPolicies, never dropped;
    // PolicyExceptions written beside policies count, as in Kyverno's CLI.
    Ok(PolicySet::new(loaded.policies)
        .with_image_validating(loaded.image_validating)
        .with_exceptions(loaded.exceptions)
        .with_cel_exceptions(loaded.cel_exceptions.into_iter().map(Arc::new)))
}

/// The policies of `policy_paths` with every PolicyException Kyverno's CLI would use:
/// those of `exception_paths`, those beside the policies and those among `resources`.
pub fn load_with_exceptions(
    policy_paths: &[PathBuf],
    exception_paths: &[PathBuf],
    resources: &[Value],
) -> anyhow::Result<PolicySet> {
    let exceptions = load_exceptions(exception_paths)?;
    let among_resources = exceptions_among(resources)?;
    Ok(among_resources.add_to(exceptions.add_to(load_policies(policy_paths)?)))
}

/// PolicyExceptions of both groups, as read from files or resources: `kyverno.io`
/// (ClusterPolicy and Policy rules) and `policies.kyverno.io` (ImageValidatingPolicies).
#[derive(Debug, Default)]
pub struct Exceptions {
    /// `kyverno.io/v2`, `v2beta1`.
    pub kyverno: Vec<PolicyException>,
    /// `policies.kyverno.io` (CEL), compiled.
    pub cel: Vec<CompiledCelException>,
}

impl Exceptions {
    /// `set` with these exceptions added (each group to the policies it applies to).
    pub fn add_to(self, set: PolicySet) -> PolicySet {
        set.with_exceptions(self.kyverno)
            .with_cel_exceptions(self.cel.into_iter().map(Arc::new))
    }
}

/// Loads and validates the PolicyExceptions of `paths` (files or directories, as
/// `--exception`) through the policy loader, so both groups are read as the cluster
/// reads them; any other document in them is an error, as in Kyverno's CLI.
pub fn load_exceptions(paths: &[PathBuf]) -> anyhow::Result<Exceptions> {
    let loaded = load_policy_files(paths)?;
    let other = loaded
        .policies
        .iter()
        .map(|p| p.display_name())
        .chain(loaded.image_validating.iter().map(|p| p.display_name()))
        .chain(loaded.skipped.iter().map(|s| s.to_string()))
        .next();
    if let Some(other) = other {
        bail!(
            "exception files hold only PolicyExceptions (kyverno.io/v2, v2beta1 or \
             policies.kyverno.io), found {other}"
        );
    }
    Ok(Exceptions {
        kyverno: loaded.exceptions,
        cel: loaded.cel_exceptions,
    })
}

/// The PolicyExceptions of either group among resources (Kyverno's CLI takes exceptions
/// given with the resources too), validated like those of exception files.
pub fn exceptions_among(resources: &[Value]) -> anyhow::Result<Exceptions> {
    let mut exceptions = Exceptions::default();
    for resource in resources.iter().filter(|r| is_exception(r)) {
        let id = imagegate_engine::ResourceId::of(resource);
        let text = serde_json::to_string(resource)?;
        let loaded = load_documents(&text, &format!("resource {}", id.display()))?;
        exceptions.kyverno.extend(loaded.exceptions);
        exceptions.cel.extend(loaded.cel_exceptions);
    }
    Ok(exceptions)
}

/// Whether `resource` is a PolicyException of either group.
fn is_exception(resource: &Value) -> bool {
    let api_version = resource
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match resource.get("kind").and_then(Value::as_str) {
        Some(exception::KIND) if exception::API_VERSIONS.contains(&api_version) => true,
        Some(cel_exception::KIND) => cel_exception::API_VERSIONS.contains(&api_version),
        _ => false,
    }
}

/// Every Kubernetes object of the YAML/JSON files `paths`; `kind: List` items are
/// unpacked; empty documents are ignored.
pub fn load_resources(paths: &[PathBuf]) -> anyhow::Result<Vec<Value>> {
    let mut resources = Vec::new();
    for path in paths {
        resources.extend(read_documents(path)?);
    }
    Ok(resources)
}

/// The documents of one YAML (multi-document) or JSON file.
pub fn read_documents(path: &Path) -> anyhow::Result<Vec<Value>> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if size > MAX_RESOURCE_FILE_BYTES {
        bail!(
            "{}: larger than {MAX_RESOURCE_FILE_BYTES} bytes",
            path.display()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let documents: Vec<Value> = serde_saphyr::from_multiple(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut objects = Vec::new();
    for document in documents {
        match document {
            Value::Null => {}
            Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                if let Some(Value::Array(items)) = map.get("items") {
                    objects.extend(items.iter().filter(|i| i.is_object()).cloned());
                }
            }
            Value::Object(_) => objects.push(document),
            other => bail!("{}: a document is not an object: {other}", path.display()),
        }
    }
    Ok(objects)
}
