//! What one admission review carries through the evaluation layers: the phase, the
//! input, and the digests resolved once for the whole review. A leaf below `evaluate`,
//! `ivp` and `policy_set`, which all read these and must not depend on each other.

use std::collections::HashMap;
use std::sync::Arc;

use imagegate_oci::{PullSecrets, Reference};
use imagegate_policy::matching::MatchContext;
use serde_json::{Value, json};

use crate::cluster::{ClusterError, ClusterInputs, pod_pull_secrets};
use crate::evidence::VerifyError;
use crate::fetch::{Access, Verifier};

/// Which admission phase is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Verify images, pin digests, write the annotation (mutating webhook).
    Mutate,
    /// Re-check `verifyDigest`, `required` and `validate.deny` (validating webhook).
    Validate,
}

/// The request being evaluated.
#[derive(Debug, Clone)]
pub struct AdmissionInput {
    /// The object (for a controller, its pod templates are evaluated too).
    pub resource: Value,
    /// Operation, namespace labels, user.
    pub match_context: MatchContext,
    /// The `request` variable (`request.object`, `request.operation`, …).
    pub request: Value,
    /// `resource` is a JSON payload (`imagegate apply --json`), not a Kubernetes object:
    /// only ImageValidatingPolicies with `evaluation.mode: JSON` evaluate it.
    pub json_payload: bool,
}

impl AdmissionInput {
    /// An input for a resource created outside admission (CLI `apply`/`test`).
    pub fn for_resource(resource: Value, match_context: MatchContext) -> AdmissionInput {
        let operation = match_context.operation.as_str();
        let request = json!({
            "operation": operation,
            "object": resource.clone(),
            "namespace": resource.pointer("/metadata/namespace").cloned().unwrap_or(Value::Null),
            "name": resource.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
            "kind": group_version_kind(&resource),
            "userInfo": match_context.user_info.clone().unwrap_or(Value::Null),
        });
        AdmissionInput {
            resource,
            match_context,
            request,
            json_payload: false,
        }
    }

    /// A JSON payload for `evaluation.mode: JSON` ImageValidatingPolicies (Kyverno's
    /// `kyverno apply --json`): the policies read it as `object`; there is no request.
    pub fn for_json_payload(payload: Value) -> AdmissionInput {
        AdmissionInput {
            request: json!({ "object": payload.clone() }),
            resource: payload,
            match_context: MatchContext::default(),
            json_payload: true,
        }
    }
}

/// `{group, version, kind}` of an object, as an AdmissionRequest's `kind`.
fn group_version_kind(resource: &Value) -> Value {
    let api_version = resource
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    json!({
        "group": group,
        "version": version,
        "kind": resource.get("kind").cloned().unwrap_or(Value::Null),
    })
}

/// The digest of every image reference of one review (issue 8 item 4): a tag is
/// resolved once per set of credentials, and every rule, both phases and the patch use
/// that digest, whether or not the verifier caches digests. In cluster mode it also
/// holds the pull secrets of the reviewed Pod, read once for both phases.
#[derive(Debug, Default)]
pub(crate) struct ReviewDigests {
    /// By image, [`Access`] and credential identity ([`Verifier::identity`]): a digest
    /// learned over plain HTTP for one rule is not another rule's, nor one learned with
    /// pull secrets a Pod's that does not hold them.
    resolved: std::sync::Mutex<HashMap<(String, Access, u64), Arc<Resolution>>>,
    /// The Pod's `imagePullSecrets` and its ServiceAccount's (unset: not read).
    pub(crate) pod_pull_secrets: tokio::sync::OnceCell<Result<PullSecrets, ClusterError>>,
}

type Resolution = tokio::sync::OnceCell<Result<String, Arc<VerifyError>>>;

impl ReviewDigests {
    /// Reads the pull secrets of the Pod (or Pod template) `resource`, once.
    pub(crate) async fn read_pod_pull_secrets(
        &self,
        cluster: &dyn ClusterInputs,
        resource: &Value,
    ) {
        self.pod_pull_secrets
            .get_or_init(|| pod_pull_secrets(cluster, resource))
            .await;
    }

    pub(crate) async fn resolve(
        &self,
        verifier: &Verifier,
        image: &Reference,
        access: Access,
    ) -> Result<String, VerifyError> {
        if let Some(digest) = image.digest() {
            return Ok(digest.to_owned());
        }
        let name = image.to_string();
        let cell = {
            let mut resolved = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
            // A digest resolved over HTTPS-only access serves every rule with the same
            // credentials (one digest per review where possible); one resolved over plain
            // HTTP serves only rules that allow it.
            let identity = verifier.identity(image.registry());
            let strict = resolved
                .get(&(name.clone(), Access::default(), identity))
                .and_then(|cell| cell.get())
                .and_then(|outcome| outcome.as_ref().ok())
                .filter(|_| access != Access::default());
            if let Some(digest) = strict {
                return Ok(digest.clone());
            }
            resolved
                .entry((name, access, identity))
                .or_default()
                .clone()
        };
        let outcome = cell
            .get_or_init(|| async {
                verifier.resolve(image, access).await.map_err(|e| match e {
                    VerifyError::Shared(shared) => shared,
                    other => Arc::new(other),
                })
            })
            .await;
        outcome.clone().map_err(VerifyError::Shared)
    }
}
