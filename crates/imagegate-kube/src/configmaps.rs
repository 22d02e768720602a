//! ConfigMaps for rule `context` entries (`configMap: {name, namespace}`), read on
//! demand and cached, invalidated by a metadata-only watch of ConfigMaps
//! ([`crate::watched`]). A context entry sees a ConfigMap as Kyverno shows it:
//! `{data, metadata}`.

use std::sync::Arc;
use std::time::Duration;

use imagegate_engine::ClusterError;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};

use crate::watched::Watched;

/// Deadline of one ConfigMap read.
const READ_DEADLINE: Duration = Duration::from_secs(10);

/// On-demand ConfigMap reads with a watch-invalidated cache; the watch stops when
/// dropped.
pub struct ConfigMaps {
    watched: Watched<ConfigMap, Arc<Value>>,
}

impl std::fmt::Debug for ConfigMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigMaps").finish_non_exhaustive()
    }
}

/// `{data, metadata}` of a ConfigMap (Kyverno's `configMapLoader`: `binaryData` is
/// not part of it; `managedFields` are bookkeeping no policy reads).
fn context_value(mut config_map: ConfigMap) -> Arc<Value> {
    config_map.metadata.managed_fields = None;
    let metadata = serde_json::to_value(&config_map.metadata).unwrap_or_default();
    Arc::new(json!({
        "data": config_map.data.unwrap_or_default(),
        "metadata": metadata,
    }))
}

impl ConfigMaps {
    /// Starts the invalidation watch.
    pub fn start(client: kube::Client) -> ConfigMaps {
        ConfigMaps {
            watched: Watched::start(client, "configmap", READ_DEADLINE, context_value),
        }
    }

    /// ConfigMap `namespace/name` as `{data, metadata}`, from the cache while it is
    /// current; failures in the engine's words, as [`crate::SecretKeys::data`].
    pub async fn get(&self, namespace: &str, name: &str) -> Result<Arc<Value>, ClusterError> {
        self.watched
            .get(namespace, name)
            .await
            .map_err(|e| ClusterError::Unavailable(e.to_string()))?
            .ok_or_else(|| ClusterError::ConfigMapNotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
    }
}
