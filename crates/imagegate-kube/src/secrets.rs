//! Secrets the engine asks for (`k8s://NAMESPACE/NAME` and `keys.secret` keys, pull
//! secrets), read on demand and cached, invalidated by a metadata-only watch of Secrets
//! ([`crate::watched`]: an update or delete invalidates a Secret without holding any
//! Secret data beyond the ones asked for).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;

use imagegate_engine::{ClusterError, SecretData};

use crate::watched::Watched;

/// Deadline of one Secret read.
const READ_DEADLINE: Duration = Duration::from_secs(10);

/// On-demand Secret reads with a watch-invalidated cache; the watch stops when dropped.
pub struct SecretKeys {
    watched: Watched<Secret, SecretData>,
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKeys").finish_non_exhaustive()
    }
}

fn data(secret: Secret) -> SecretData {
    Arc::new(
        secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect(),
    )
}

impl SecretKeys {
    /// Starts the invalidation watch.
    pub fn start(client: kube::Client) -> SecretKeys {
        SecretKeys {
            watched: Watched::start(client, "secret", READ_DEADLINE, data),
        }
    }

    /// The data of Secret `namespace/name`, from the cache while it is current. What
    /// went wrong is said in the engine's words ([`ClusterError`]: it reads Secrets
    /// through [`imagegate_engine::ClusterInputs`] and explains the failures to users).
    pub async fn data(&self, namespace: &str, name: &str) -> Result<SecretData, ClusterError> {
        self.watched
            .get(namespace, name)
            .await
            .map_err(|e| ClusterError::Unavailable(e.to_string()))?
            .ok_or_else(|| ClusterError::SecretNotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
    }
}
