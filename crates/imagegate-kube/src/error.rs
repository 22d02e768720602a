//! Errors of cluster mode, named after their cause: connecting to the cluster and
//! keeping its watches. What the engine reads from the cluster (Secrets, ServiceAccounts)
//! fails in the engine's vocabulary instead, [`imagegate_engine::ClusterError`], so
//! that a missing Secret has one variant and one text whoever reads it.

/// Result of this crate's fallible functions.
pub type Result<T, E = KubeError> = std::result::Result<T, E>;

/// Why a cluster-mode operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig file could not be read or parsed.
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// Neither a kubeconfig nor an in-cluster service account is available.
    #[error("not in a cluster and no kubeconfig given: {reason}")]
    NoCluster {
        /// Why in-cluster configuration failed.
        reason: String,
    },
    /// The client could not be built from the configuration.
    #[error("building the Kubernetes client: {0}")]
    Client(String),
    /// The API answered with an error or could not be reached in time.
    #[error("Kubernetes API: {0}")]
    Api(String),
    /// The first complete list did not arrive in time.
    #[error("timed out after {seconds} s waiting for the first complete list of {what}")]
    NotReady {
        /// What was listed.
        what: &'static str,
        /// The wait.
        seconds: u64,
    },
    /// A generated CRD schema is not a valid `JSONSchemaProps` (a defect of the model's
    /// schema, caught by `imagegate crds` and its tests).
    #[error("generating the CRD schema: {0}")]
    Schema(String),
}
