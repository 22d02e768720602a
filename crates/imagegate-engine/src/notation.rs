//! Notation verification of one image, over [`crate::fetch`] and [`crate::check::notary`]:
//! the image's signatures, and the signed artifacts of a type referring to it. Shared by
//! the ClusterPolicy attestors, the ImageValidatingPolicy functions and the CLI.

use std::sync::Arc;

use imagegate_notation::VerifiedSignature;
use imagegate_oci::Reference;
use imagegate_sigstore::Attestation;

use crate::check::notary::{NotaryCheck, check_notary_attestations, check_notary_signatures};
use crate::evidence::{Evidence, EvidenceKind, VerifyError, now};
use crate::fetch::{Access, Verifier};

/// The Notation signatures of the manifest `digest` of `image`, found among its
/// referrers in `repository` (the image's own or a signature repository), that
/// satisfy `check`.
pub async fn verify_notation_signatures(
    verifier: &Verifier,
    image: &Reference,
    digest: &str,
    repository: &Reference,
    check: NotaryCheck,
    access: Access,
) -> Result<Vec<VerifiedSignature>, VerifyError> {
    let (target, evidence) = futures::try_join!(
        verifier.manifest_descriptor(image, digest, access),
        verifier.evidence(repository, EvidenceKind::NotationSignatures, digest, access),
    )?;
    let now = now();
    off_workers(move || check_notary_signatures(&evidence, &target, &check, now)).await
}

/// The statements of the artifacts of `artifact_type` referring to `digest` in
/// `repository` whose own Notation signatures satisfy `check`.
pub async fn verify_notation_attestations(
    verifier: &Verifier,
    repository: &Reference,
    digest: &str,
    check: NotaryCheck,
    artifact_type: &str,
    access: Access,
) -> Result<Vec<Attestation>, VerifyError> {
    let artifacts = verifier
        .artifacts(repository, digest, artifact_type, access)
        .await?;
    let signatures: Vec<Arc<Evidence>> =
        futures::future::try_join_all(artifacts.artifacts.iter().map(|artifact| {
            verifier.evidence(
                repository,
                EvidenceKind::NotationSignatures,
                &artifact.manifest.digest,
                access,
            )
        }))
        .await?;
    let (artifact_type, now) = (artifact_type.to_owned(), now());
    off_workers(move || {
        let signatures: Vec<&Evidence> = signatures.iter().map(AsRef::as_ref).collect();
        check_notary_attestations(&artifacts, &signatures, &check, &artifact_type, now)
    })
    .await
}

/// Runs a pure check on the blocking pool (certificate chains and signatures are CPU
/// work; a review's deadline can only fire while the async workers are free).
async fn off_workers<T: Send + 'static>(
    check: impl FnOnce() -> Result<T, VerifyError> + Send + 'static,
) -> Result<T, VerifyError> {
    tokio::task::spawn_blocking(check)
        .await
        // The check panicked: any doubt denies.
        .unwrap_or_else(|e| {
            Err(VerifyError::InvalidSignature {
                reason: format!("verification did not complete: {e}"),
            })
        })
}
