//! Key-signed cosign evidence: `.sig` simple-signing payloads and `.att` DSSE envelopes
//! verified with public keys. Pure: bytes in, verdict out.

use imagegate_sigstore::{
    PublicKey, SimpleSigning, cosign, verify_attestation, verify_simple_signing,
};

use crate::evidence::{
    Evidence, SignatureCheck, VerifiedEnvelope, VerifyError, select_attestations, summarise,
};

/// The signatures of `evidence` that satisfy `check` for `digest`.
pub fn check_signatures(
    evidence: &Evidence,
    digest: &str,
    check: &SignatureCheck,
) -> Result<Vec<SimpleSigning>, VerifyError> {
    if evidence.layers.is_empty() {
        return Err(VerifyError::NoSignatures);
    }
    let mut valid = Vec::new();
    let mut reasons = Vec::new();
    for layer in &evidence.layers {
        let Some(signature) = layer.descriptor.annotation(cosign::SIGNATURE_ANNOTATION) else {
            reasons.push("signature layer has no signature annotation".to_owned());
            continue;
        };
        match verify_simple_signing(
            &layer.blob,
            signature,
            &check.keys,
            digest,
            &check.annotations,
        ) {
            Ok(signing) => valid.push(signing),
            // The variant's message already says "invalid signature: ".
            Err(e) => {
                let reason = e.to_string();
                reasons.push(match reason.strip_prefix("invalid signature: ") {
                    Some(rest) => rest.to_owned(),
                    None => reason,
                });
            }
        }
    }
    if valid.is_empty() {
        return Err(VerifyError::InvalidSignature {
            reason: summarise(reasons),
        });
    }
    Ok(valid)
}

/// The attestations of `evidence` of `predicate_type` signed by one of `keys` for
/// `digest`.
pub fn check_attestations(
    evidence: &Evidence,
    digest: &str,
    keys: &[PublicKey],
    predicate_type: &str,
) -> Result<Vec<VerifiedEnvelope>, VerifyError> {
    select_attestations(evidence, predicate_type, "predicateType", |layer| {
        let attestation =
            verify_attestation(&layer.blob, keys, Some(digest)).map_err(|e| e.to_string())?;
        let envelope = serde_json::from_slice(&layer.blob).unwrap_or(serde_json::Value::Null);
        Ok(Some(VerifiedEnvelope {
            attestation,
            envelope,
        }))
    })
}
