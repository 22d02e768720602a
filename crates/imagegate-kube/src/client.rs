//! Connecting to the API server and finding imagegate's own namespace.
//!
//! Cluster mode is on in a Pod (service-account token) or with `--kubeconfig`/`KUBECONFIG`.
//! Own namespace: `$POD_NAMESPACE` (downward API), else the kubeconfig context's
//! namespace, else `imagegate`.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{KubeError, Result};

/// Namespace used when neither `$POD_NAMESPACE` nor a kubeconfig context names one.
pub const DEFAULT_NAMESPACE: &str = "imagegate";

/// A connected client and imagegate's own namespace.
#[derive(Clone)]
pub struct Cluster {
    /// The client (cheap to clone).
    pub client: kube::Client,
    /// Where imagegate's own objects live (Secrets named without a namespace, Lease, Events).
    pub namespace: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// The own namespace from its sources in precedence order (pure).
pub fn own_namespace(pod_namespace: Option<&str>, context_namespace: Option<&str>) -> String {
    [pod_namespace, context_namespace]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|n| !n.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_owned()
}

/// The namespace of the kubeconfig's current context, if it names one.
fn context_namespace(kubeconfig: &Kubeconfig) -> Option<String> {
    let current = kubeconfig.current_context.as_deref()?;
    kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == current)?
        .context
        .as_ref()?
        .namespace
        .clone()
}

impl Cluster {
    /// Connects with `kubeconfig` if given, else `$KUBECONFIG`, else the in-cluster
    /// service account. Nothing is requested yet; the first request proves the connection.
    pub async fn connect(kubeconfig: Option<&Path>) -> Result<Cluster> {
        let env_path = std::env::var_os("KUBECONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let pod_namespace = std::env::var("POD_NAMESPACE").ok();
        let path = kubeconfig.map(Path::to_path_buf).or(env_path);
        let (config, context_ns) = match path {
            Some(path) => {
                let bad = |reason: String| KubeError::Kubeconfig {
                    path: path.display().to_string(),
                    reason,
                };
                let kc = Kubeconfig::read_from(&path).map_err(|e| bad(e.to_string()))?;
                let ns = context_namespace(&kc);
                let config =
                    kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                        .await
                        .map_err(|e| bad(e.to_string()))?;
                (config, ns)
            }
            None => {
                let config = kube::Config::incluster().map_err(|e| KubeError::NoCluster {
                    reason: e.to_string(),
                })?;
                (config, None)
            }
        };
        let client =
            kube::Client::try_from(config).map_err(|e| KubeError::Client(e.to_string()))?;
        Ok(Cluster {
            client,
            namespace: own_namespace(pod_namespace.as_deref(), context_ns.as_deref()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_namespace_precedence() {
        assert_eq!(own_namespace(Some("pod-ns"), Some("ctx")), "pod-ns");
        assert_eq!(own_namespace(None, Some("ctx")), "ctx");
        assert_eq!(own_namespace(Some(" "), Some("ctx")), "ctx");
        assert_eq!(own_namespace(None, None), "imagegate");
    }
}
