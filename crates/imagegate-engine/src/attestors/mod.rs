//! Attestor sets: which signers must have signed an image (N of M, nested sets), and
//! which attestations they must have made, with Kyverno's paths in every message
//! (`.attestors[0].entries[1].keys: no signatures found`).

mod entry;
mod sets;

use std::sync::Arc;

use imagegate_oci::Reference;
use imagegate_policy::model::{ImageVerification, VerificationType};
use imagegate_sigstore::{RekorKey, TrustOverrides, TrustedRoot};

use crate::evidence::VerifyError;
use crate::fetch::Access;

pub use entry::identity_requirement;
pub(crate) use entry::{attestation_statements, split_pem_blocks};
pub use sets::{verify_attestations, verify_attestors};

/// The cause of a failed verification, for code and metrics to branch on (the
/// `reason` label). Ordered by precedence when several images or entries fail: any
/// failed check ranks above a registry error, so an error never hides a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// The registry could not be asked or answered with an error (the rule errors).
    Registry,
    /// The Kubernetes API could not be asked for a Secret or ServiceAccount (the rule
    /// errors).
    Cluster,
    /// The image reference in the resource cannot be parsed (the rule errors).
    InvalidReference,
    /// A `validate.deny` condition could not be evaluated (the rule errors).
    ConditionError,
    /// The policy cannot be applied as written (bad key, unsupported attestor, …).
    Configuration,
    /// The evidence itself is unusable (malformed signature manifest).
    MalformedEvidence,
    /// Signatures exist but none verified (including the transparency log check).
    InvalidSignature,
    /// No signature exists for the image.
    NoSignatures,
    /// No verified attestation of the wanted predicate type.
    NoMatchingAttestations,
    /// An attestation did not satisfy the conditions.
    ConditionsFailed,
    /// The image is not pinned to a digest although `verifyDigest` requires it.
    MissingDigest,
    /// `validate.deny` denied the image.
    Denied,
}

impl Cause {
    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Registry => "registry",
            Cause::Cluster => "cluster",
            Cause::InvalidReference => "invalid_reference",
            Cause::ConditionError => "condition_error",
            Cause::Configuration => "configuration",
            Cause::MalformedEvidence => "malformed_evidence",
            Cause::InvalidSignature => "invalid_signature",
            Cause::NoSignatures => "no_signatures",
            Cause::NoMatchingAttestations => "no_matching_attestations",
            Cause::ConditionsFailed => "conditions_failed",
            Cause::MissingDigest => "missing_digest",
            Cause::Denied => "denied",
        }
    }

    /// Whether the rule could not be evaluated (Kyverno's `error`) rather than failed.
    pub fn is_error(self) -> bool {
        matches!(
            self,
            Cause::Registry | Cause::Cluster | Cause::InvalidReference | Cause::ConditionError
        )
    }

    /// The cause of a verification error.
    pub fn of(error: &VerifyError) -> Cause {
        match error.cause() {
            VerifyError::NoSignatures => Cause::NoSignatures,
            VerifyError::InvalidSignature { .. } => Cause::InvalidSignature,
            VerifyError::NoMatchingAttestations { .. } => Cause::NoMatchingAttestations,
            VerifyError::MalformedSignatureManifest { .. }
            | VerifyError::EvidenceTooLarge { .. } => Cause::MalformedEvidence,
            VerifyError::Registry(_) | VerifyError::Shared(_) => Cause::Registry,
        }
    }
}

/// Why an image failed its attestors or attestations. `Display` is Kyverno's message
/// (`.attestors[0].entries[0].keys: no signatures found`), byte for byte.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AttestorFailure {
    /// The evidence at `path` could not be fetched or did not verify (the
    /// [`VerifyError`] keeps the registry error, if that was the cause).
    #[error("{path}: {error}")]
    Evidence {
        /// Policy path of the attestor.
        path: String,
        /// What went wrong.
        error: Arc<VerifyError>,
    },
    /// A key signature verified but the transparency log did not confirm it.
    #[error("{path}: {message}")]
    TransparencyLog {
        /// Policy path of the attestor.
        path: String,
        /// Why the log entry was not accepted.
        message: String,
    },
    /// An attestation statement did not satisfy the check's conditions.
    #[error(
        "{path}: attestation checks failed for {image} and predicate {predicate_type}: {message}"
    )]
    ConditionsFailed {
        /// Policy path of the attestor.
        path: String,
        /// The image as written.
        image: String,
        /// The predicate type checked.
        predicate_type: String,
        /// The conditions' message.
        message: String,
    },
    /// The policy cannot be applied as written.
    #[error("{path}: {message}")]
    Configuration {
        /// Policy path of the offending field.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// Fewer entries of an attestor set verified than it requires.
    #[error("{message}")]
    Unsatisfied {
        /// Kyverno's message, with the failures of the entries.
        message: String,
        /// The most significant cause among the entries' (see [`Cause`]).
        cause: Cause,
    },
}

impl AttestorFailure {
    fn at(path: &str, error: VerifyError) -> AttestorFailure {
        let error = match error {
            VerifyError::Shared(shared) => shared,
            other => Arc::new(other),
        };
        AttestorFailure::Evidence {
            path: path.to_owned(),
            error,
        }
    }

    fn config(path: &str, message: impl std::fmt::Display) -> AttestorFailure {
        AttestorFailure::Configuration {
            path: path.to_owned(),
            message: message.to_string(),
        }
    }

    /// Why it failed.
    pub fn cause(&self) -> Cause {
        match self {
            AttestorFailure::Evidence { error, .. } => Cause::of(error),
            AttestorFailure::TransparencyLog { .. } => Cause::InvalidSignature,
            AttestorFailure::ConditionsFailed { .. } => Cause::ConditionsFailed,
            AttestorFailure::Configuration { .. } => Cause::Configuration,
            AttestorFailure::Unsatisfied { cause, .. } => *cause,
        }
    }

    /// The cause of a set whose entries failed with `failures`: a registry error only
    /// when every entry failed for that reason, else the most significant failure.
    pub(crate) fn cause_of_all(failures: &[AttestorFailure]) -> Cause {
        failures
            .iter()
            .map(AttestorFailure::cause)
            .max()
            .unwrap_or(Cause::Configuration)
    }
}

/// What one image is checked against: the verifyImages entry and where the image lives.
pub struct ImageSubject<'a> {
    /// The image as written in the resource, normalised.
    pub image: &'a Reference,
    /// Its digest (resolved already).
    pub digest: &'a str,
    /// The verifyImages entry.
    pub verification: &'a ImageVerification,
    /// Rekor keys trusted for entries that do not ignore the transparency log, in
    /// addition to the trusted root's.
    pub rekor_keys: &'a [RekorKey],
    /// The configured Sigstore trusted root; `None`: the embedded public-good root.
    pub trusted_root: Option<&'a TrustedRoot>,
}

impl ImageSubject<'_> {
    /// The trusted root in force.
    fn trust(&self) -> Option<&TrustedRoot> {
        crate::trust::effective(self.trusted_root)
    }

    /// The trusted root for Sigstore bundles: the one in force with the attestor's
    /// overrides applied (derived roots are cached, see [`crate::trust::with_overrides`]).
    fn bundle_trust(&self, overrides: TrustOverrides<'_>) -> Result<Option<TrustedRoot>, String> {
        crate::trust::with_overrides(self.trust(), overrides)
    }

    /// Whether signatures and attestations are Notation signatures and signed
    /// referring artifacts (`type: Notary`).
    fn uses_notary(&self) -> bool {
        self.verification.verification_type() == VerificationType::Notary
    }

    /// How the registries of this image and its signatures may be reached (the
    /// entry's `imageRegistryCredentials.allowInsecureRegistry`).
    fn access(&self) -> Access {
        Access::of(self.verification)
    }

    /// Whether signatures and attestations are Sigstore bundles found as OCI 1.1
    /// referrers (`type: SigstoreBundle` or `cosignOCI11: true`) rather than
    /// `.sig`/`.att` tags.
    fn uses_bundles(&self) -> bool {
        self.verification.verification_type() == VerificationType::SigstoreBundle
            || self.verification.cosign_oci11 == Some(true)
    }
}
