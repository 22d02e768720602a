//! Notation (Notary Project) evidence: signature envelopes verified against the signed
//! manifest's descriptor under Kyverno's Notary trust policy, and referring artifacts
//! (attestations) accepted through their own Notation signatures. Pure.

use imagegate_notation::{TrustPolicy, VerifiedSignature, read_certificates, verify_signature};
use imagegate_oci::Descriptor;
use imagegate_sigstore::Attestation;

use crate::evidence::{Evidence, ReferrerArtifact, VerifyError, summarise};

/// What a Notation signature must satisfy: Kyverno's trust policy (strict, any
/// identity) over the attestor's certificates.
#[derive(Debug, Clone)]
pub struct NotaryCheck {
    /// The trust stores.
    pub policy: TrustPolicy,
}

impl NotaryCheck {
    /// A check trusting the certificates of `certs` (each PEM text or one DER
    /// certificate: a ClusterPolicy's `cert` and `certChain`, an ImageValidatingPolicy's
    /// `certs`, files given to the CLI), with a TSA store from `tsa_certs` when given
    /// (then a timestamp is required). Empty inputs are skipped.
    pub fn read<'a>(
        certs: impl IntoIterator<Item = &'a [u8]>,
        tsa_certs: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<NotaryCheck, String> {
        fn read_all<'a>(
            inputs: impl IntoIterator<Item = &'a [u8]>,
            what: &str,
        ) -> Result<Vec<Vec<u8>>, String> {
            let mut ders = Vec::new();
            for input in inputs {
                if input.trim_ascii().is_empty() {
                    continue;
                }
                ders.extend(read_certificates(input).map_err(|e| format!("{what}: {e}"))?);
            }
            Ok(ders)
        }
        let ca = read_all(certs, "certificates")?;
        if ca.is_empty() {
            return Err("no certificate to verify Notation signatures with".into());
        }
        Ok(NotaryCheck {
            policy: TrustPolicy::kyverno(ca, read_all(tsa_certs, "TSA certificates")?),
        })
    }
}

/// The Notation signatures of `evidence` (envelope layers) that sign `target` (the
/// manifest's descriptor) and satisfy `check` at `now` (Unix seconds).
pub fn check_notary_signatures(
    evidence: &Evidence,
    target: &Descriptor,
    check: &NotaryCheck,
    now: i64,
) -> Result<Vec<VerifiedSignature>, VerifyError> {
    if evidence.layers.is_empty() {
        return Err(VerifyError::NoSignatures);
    }
    let expected =
        imagegate_notation::Descriptor::new(&target.media_type, &target.digest, target.size);
    let mut valid = Vec::new();
    let mut reasons = Vec::new();
    for layer in &evidence.layers {
        match verify_signature(
            &layer.blob,
            &layer.descriptor.media_type,
            &expected,
            &check.policy,
            now,
        ) {
            Ok(signature) => valid.push(signature),
            Err(e) => reasons.push(format!("{} check failed: {e}", e.check().as_str())),
        }
    }
    if valid.is_empty() {
        return Err(VerifyError::InvalidSignature {
            reason: summarise(reasons),
        });
    }
    Ok(valid)
}

/// The statements of the artifacts in `artifacts` whose own Notation signatures
/// (`signatures`, per artifact in the same order) satisfy `check`: each artifact's
/// payload as the `predicate`, its `artifactType` as the predicate type, and the
/// statement shaped as Kyverno's notary verifier shapes it (the manifest descriptor
/// with `type` and `predicate`). Errors say whether no artifact of the type exists
/// ("no matching attestations") or none is validly signed ("invalid signature").
pub fn check_notary_attestations(
    artifacts: &Evidence,
    signatures: &[&Evidence],
    check: &NotaryCheck,
    artifact_type: &str,
    now: i64,
) -> Result<Vec<Attestation>, VerifyError> {
    if artifacts.artifacts.is_empty() {
        return Err(VerifyError::NoMatchingAttestations {
            reason: format!("no attestations of type {artifact_type} found"),
        });
    }
    let mut statements = Vec::new();
    let mut reasons = Vec::new();
    for (artifact, evidence) in artifacts.artifacts.iter().zip(signatures) {
        let signed = match check_notary_signatures(evidence, &artifact.manifest, check, now) {
            Ok(_) => statement(artifact, artifact_type),
            Err(VerifyError::NoSignatures) => Err("no signatures found".to_owned()),
            Err(e) => Err(e.to_string()),
        };
        match signed {
            Ok(statement) => statements.push(statement),
            Err(reason) => reasons.push(format!(
                "attestation {} ({artifact_type}): {reason}",
                artifact.manifest.digest
            )),
        }
    }
    if statements.is_empty() {
        return Err(VerifyError::InvalidSignature {
            reason: summarise(reasons),
        });
    }
    Ok(statements)
}

/// The statement of a verified artifact; its payload must be a JSON document.
fn statement(artifact: &ReferrerArtifact, artifact_type: &str) -> Result<Attestation, String> {
    let predicate: serde_json::Value = serde_json::from_slice(&artifact.payload.blob)
        .map_err(|e| format!("payload is not JSON: {e}"))?;
    let statement = serde_json::json!({
        "mediaType": artifact.manifest.media_type,
        "digest": artifact.manifest.digest,
        "size": artifact.manifest.size,
        "type": artifact_type,
        "predicate": predicate,
    });
    Ok(Attestation {
        payload_type: artifact.payload.descriptor.media_type.clone(),
        statement_type: String::new(),
        predicate_type: artifact_type.to_owned(),
        subjects: Vec::new(),
        predicate,
        statement,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_needs_certificates() {
        let err = NotaryCheck::read([&b" "[..]], []).unwrap_err();
        assert!(err.contains("no certificate"), "{err}");
        let err = NotaryCheck::read([&b"not a certificate"[..]], []).unwrap_err();
        assert!(err.starts_with("certificates: "), "{err}");
    }

    #[test]
    fn no_envelopes_is_no_signatures_and_no_artifacts_is_no_attestations() {
        let check = NotaryCheck {
            policy: TrustPolicy::default(),
        };
        let target = Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            size: 1,
            annotations: None,
            artifact_type: None,
        };
        assert!(matches!(
            check_notary_signatures(&Evidence::default(), &target, &check, 0),
            Err(VerifyError::NoSignatures)
        ));
        let err =
            check_notary_attestations(&Evidence::default(), &[], &check, "application/sbom", 0)
                .unwrap_err();
        assert!(matches!(err, VerifyError::NoMatchingAttestations { .. }));
        assert!(err.to_string().contains("application/sbom"));
    }
}
