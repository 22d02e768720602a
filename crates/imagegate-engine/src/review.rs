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
use crate::fetch::Verifier;

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
            "kind": {"kind": resource.get("kind").cloned().unwrap_or(Value::Null)},
            "userInfo": match_context.user_info.clone().unwrap_or(Value::Null),
        });
        AdmissionInput {
            resource,
            match_context,
            request,
        }
    }
}

/// The digest of every image reference of one review (issue 8 item 4): a tag is
/// resolved once per set of credentials, and every rule, both phases and the patch use
/// that digest, whether or not the verifier caches digests. In cluster mode it also
/// holds the pull secrets of the reviewed Pod, read once for both phases.
#[derive(Debug, Default)]
pub(crate) struct ReviewDigests {
    resolved: std::sync::Mutex<HashMap<(String, u64), Arc<Resolution>>>,
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
    ) -> Result<String, VerifyError> {
        if let Some(digest) = image.digest() {
            return Ok(digest.to_owned());
        }
        let cell = {
            let mut resolved = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
            let key = (image.to_string(), verifier.identity(image.registry()));
            resolved.entry(key).or_default().clone()
        };
        let outcome = cell
            .get_or_init(|| async {
                verifier.resolve(image).await.map_err(|e| match e {
                    VerifyError::Shared(shared) => shared,
                    other => Arc::new(other),
                })
            })
            .await;
        outcome.clone().map_err(VerifyError::Shared)
    }
}
