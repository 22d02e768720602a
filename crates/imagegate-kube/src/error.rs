//! Errors of cluster mode, named after their cause.

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
    /// A `k8s://` reference is not `k8s://NAMESPACE/NAME`.
    #[error("invalid Kubernetes secret reference {reference:?}: expected k8s://NAMESPACE/NAME")]
    BadSecretReference {
        /// The reference as written.
        reference: String,
    },
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
    /// The ConfigMap does not exist (or imagegate may not read it): the API server's
    /// text, as Kyverno shows it.
    #[error("configmaps {name:?} not found")]
    ConfigMapNotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The API refused a GET of `path` (not found, forbidden, …) or answered more than
    /// imagegate reads.
    #[error("{reason}")]
    Refused {
        /// The path asked for.
        path: String,
        /// The API server's message, or the limit.
        reason: String,
    },
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
