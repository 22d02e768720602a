//! Secrets for `k8s://NAMESPACE/NAME` keys (cosign's convention: the `cosign.pub` key),
//! read on demand and cached, invalidated by a metadata-only watch of Secrets
//! ([`crate::watched`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;

use crate::error::{KubeError, Result};
use crate::watched::Watched;

pub use imagegate_engine::cluster::COSIGN_PUB;
/// Deadline of one Secret read.
const READ_DEADLINE: Duration = Duration::from_secs(10);

/// A Secret's data (decoded bytes per key).
type Data = Arc<BTreeMap<String, Vec<u8>>>;

/// On-demand Secret reads with a watch-invalidated cache; the watch stops when dropped.
pub struct SecretKeys {
    watched: Watched<Secret, Data>,
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKeys").finish_non_exhaustive()
    }
}

/// Splits `k8s://NAMESPACE/NAME` (the engine's parser, with this crate's error).
pub fn parse_reference(reference: &str) -> Result<(String, String)> {
    imagegate_engine::cluster::parse_secret_url(reference).map_err(|_| {
        KubeError::BadSecretReference {
            reference: reference.to_owned(),
        }
    })
}

fn data(secret: Secret) -> Data {
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

    /// The data of Secret `namespace/name`, from the cache while it is current.
    pub async fn data(&self, namespace: &str, name: &str) -> Result<Data> {
        self.watched
            .get(namespace, name)
            .await?
            .ok_or_else(|| KubeError::SecretNotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
    }

    /// The PEM public key a `k8s://NAMESPACE/NAME` reference names (its `cosign.pub`).
    pub async fn public_key(&self, reference: &str) -> Result<String> {
        let (namespace, name) = parse_reference(reference)?;
        let data = self.data(&namespace, &name).await?;
        let missing = || KubeError::SecretKeyMissing {
            namespace: namespace.clone(),
            name: name.clone(),
            key: COSIGN_PUB.to_owned(),
        };
        let bytes = data.get(COSIGN_PUB).ok_or_else(missing)?;
        String::from_utf8(bytes.clone()).map_err(|_| missing())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            parse_reference("k8s://ns/key").unwrap(),
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
                    parse_reference(bad),
                    Err(KubeError::BadSecretReference { .. })
                ),
                "{bad}"
            );
        }
    }
}
