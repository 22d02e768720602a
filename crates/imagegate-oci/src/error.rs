//! Errors of the registry client. Messages name the registry and the cause, never a
//! secret.

use std::time::Duration;

use crate::credentials::CredentialsError;

/// What went wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No connection could be made (refused, DNS, TLS handshake).
    #[error("registry {registry} unreachable: {reason}")]
    Unreachable {
        /// The registry host.
        registry: String,
        /// The transport's explanation.
        reason: String,
    },
    /// The registry did not answer within the deadline.
    #[error("registry {registry} did not answer within {after:?}")]
    Timeout {
        /// The registry host.
        registry: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// The connection broke while reading an answer.
    #[error("registry {registry}: transfer failed: {reason}")]
    Transfer {
        /// The registry host.
        registry: String,
        /// The transport's explanation.
        reason: String,
    },
    /// The registry refused our credentials (or anonymous access).
    #[error("unauthorized: registry {registry} refused access to {repository}{hint}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The repository asked for.
        repository: String,
        /// " (no credentials configured)" or empty.
        hint: &'static str,
    },
    /// The token endpoint could not be used.
    #[error("unauthorized: token service {realm} for registry {registry}: {reason}")]
    TokenService {
        /// The registry host.
        registry: String,
        /// The token endpoint (no query string).
        realm: String,
        /// Why.
        reason: String,
    },
    /// Plain HTTP would be needed for a registry that is not allowed to use it.
    #[error(
        "registry {registry} does not speak HTTPS ({reason}); plain HTTP is only used for loopback registries or with --allow-insecure-registry {registry}"
    )]
    InsecureRefused {
        /// The registry host.
        registry: String,
        /// The HTTPS failure.
        reason: String,
    },
    /// The registry kept rate limiting or failing after the allowed retries.
    #[error("registry {registry} answered {status} after {attempts} attempts")]
    RetriesExhausted {
        /// The registry host.
        registry: String,
        /// The last status.
        status: u16,
        /// How many requests were made.
        attempts: u32,
    },
    /// The registry asked us to wait longer than we may.
    #[error("registry {registry} rate limited us and asked to retry after {retry_after:?}")]
    RateLimited {
        /// The registry host.
        registry: String,
        /// The wait it asked for.
        retry_after: Duration,
    },
    /// The manifest (tag or digest) does not exist.
    #[error("manifest unknown: {reference}")]
    ManifestUnknown {
        /// The reference asked for.
        reference: String,
    },
    /// A blob named by a manifest does not exist.
    #[error("blob unknown: {repository}@{digest} on {registry}")]
    BlobUnknown {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
        /// The blob digest.
        digest: String,
    },
    /// An answer was larger than allowed.
    #[error("{what} from {registry} is larger than the {limit}-byte limit")]
    TooLarge {
        /// The registry host.
        registry: String,
        /// "manifest", "blob sha256:…", "token response".
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// Content did not hash to the digest it was asked for by.
    #[error("{what} from {registry} has digest {actual}, expected {expected}")]
    DigestMismatch {
        /// The registry host.
        registry: String,
        /// What was fetched.
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// Content had a different size than its descriptor said.
    #[error("blob {digest} from {registry} is {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        /// The registry host.
        registry: String,
        /// The blob digest.
        digest: String,
        /// The size in the descriptor.
        expected: u64,
        /// The size received.
        actual: u64,
    },
    /// An answer could not be understood.
    #[error("malformed answer from {registry}: {reason}")]
    Malformed {
        /// The registry host.
        registry: String,
        /// What was wrong.
        reason: String,
    },
    /// An unexpected HTTP status.
    #[error("registry {registry} answered {status} to {method} {path}")]
    UnexpectedStatus {
        /// The registry host.
        registry: String,
        /// The status code.
        status: u16,
        /// HTTP method.
        method: String,
        /// Request path (no query string).
        path: String,
    },
    /// Redirects did not end.
    #[error("registry {registry}: too many redirects")]
    TooManyRedirects {
        /// The registry host.
        registry: String,
    },
    /// The answers of one call (one verification) would exceed the bytes it may read.
    #[error(
        "{what} from {registry} would take this verification's registry answers past their {limit}-byte budget"
    )]
    CallBudgetExceeded {
        /// The registry host.
        registry: String,
        /// What was being read.
        what: String,
        /// The call's budget.
        limit: u64,
    },
    /// Too many answer bodies were in flight for this one to start within the deadline.
    #[error(
        "registry {registry} not asked: the client's budget of answer bytes in flight had no room within {after:?}"
    )]
    Busy {
        /// The registry host.
        registry: String,
        /// How long the request waited.
        after: Duration,
    },
    /// Credentials could not be read.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
}

impl RegistryError {
    /// Whether the registry could not be reached at all (as opposed to answering badly).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            RegistryError::Unreachable { .. } | RegistryError::Timeout { .. }
        )
    }
}

/// Result of registry operations.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
