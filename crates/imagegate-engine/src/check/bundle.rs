//! Sigstore bundles (cosign v3) verified against the image digest: message signatures
//! over the digest or DSSE statements, with the trusted root in force. Pure.

use imagegate_sigstore::{
    Artifact, BundleRequirement, TrustedRoot, VerifiedBundle, VerifyOptions,
    predicate_type_matches, verify_bundle_with,
};

use crate::evidence::{
    COSIGN_SIGN_PREDICATE_TYPE, Evidence, Layer, VerifiedEnvelope, VerifyError,
    select_attestations, summarise,
};

/// Who must have signed a bundle (any one of the requirements) and which checks may be
/// relaxed.
#[derive(Debug, Clone)]
pub struct BundleCheck {
    /// Any of these signers is accepted (several keys of one PEM, or one identity).
    pub requirements: Vec<BundleRequirement>,
    /// `rekor.ignoreTlog` / `ctlog.ignoreSCT`.
    pub options: VerifyOptions,
}

/// The bundles of `evidence` that sign the image `digest` itself: message signatures
/// over the digest, or DSSE statements of cosign's signature predicate type
/// ([`COSIGN_SIGN_PREDICATE_TYPE`]) naming it.
pub fn check_bundle_signatures(
    evidence: &Evidence,
    digest: &str,
    check: &BundleCheck,
    trust: Option<&TrustedRoot>,
) -> Result<Vec<VerifiedBundle>, VerifyError> {
    if evidence.layers.is_empty() {
        return Err(VerifyError::NoSignatures);
    }
    let mut valid = Vec::new();
    let mut reasons = Vec::new();
    for layer in &evidence.layers {
        match verify_layer(layer, digest, check, trust) {
            Ok(bundle) => match &bundle.statement {
                Some(statement)
                    if !predicate_type_matches(
                        COSIGN_SIGN_PREDICATE_TYPE,
                        &statement.predicate_type,
                    ) =>
                {
                    // An attestation, not a signature: not evidence either way.
                }
                _ => valid.push(bundle),
            },
            Err(reason) => reasons.push(reason),
        }
    }
    if !valid.is_empty() {
        return Ok(valid);
    }
    if reasons.is_empty() {
        return Err(VerifyError::NoSignatures);
    }
    Err(VerifyError::InvalidSignature {
        reason: summarise(reasons),
    })
}

/// The DSSE bundles of `evidence` whose statement is of `predicate_type` and names
/// `digest`, signed as `check` requires.
pub fn check_bundle_attestations(
    evidence: &Evidence,
    digest: &str,
    check: &BundleCheck,
    trust: Option<&TrustedRoot>,
    predicate_type: &str,
) -> Result<Vec<VerifiedEnvelope>, VerifyError> {
    select_attestations(
        evidence,
        predicate_type,
        "dev.sigstore.bundle.predicateType",
        |layer| {
            let verified = verify_layer(layer, digest, check, trust)?;
            Ok(verified.statement.map(|attestation| VerifiedEnvelope {
                attestation,
                envelope: serde_json::from_slice::<serde_json::Value>(&layer.blob)
                    .ok()
                    .and_then(|b| b.get("dsseEnvelope").cloned())
                    .unwrap_or(serde_json::Value::Null),
            }))
        },
    )
}

/// One bundle against the image digest and any of the requirements.
fn verify_layer(
    layer: &Layer,
    digest: &str,
    check: &BundleCheck,
    trust: Option<&TrustedRoot>,
) -> Result<VerifiedBundle, String> {
    let trust = trust.ok_or("no trusted root to verify the bundle with")?;
    let artifact = Artifact::from_digest(digest).map_err(|e| e.to_string())?;
    let mut last = String::from("no signer to verify the bundle with");
    for requirement in &check.requirements {
        match verify_bundle_with(&layer.blob, artifact, trust, requirement, &check.options) {
            Ok(bundle) => return Ok(bundle),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}
