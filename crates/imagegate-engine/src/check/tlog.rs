//! The transparency log for key-signed `.sig` evidence: a Rekor signed entry timestamp
//! (SET) that verifies with a trusted Rekor key and records that very signature. Pure.

use imagegate_sigstore::{RekorBundle, RekorKey, cosign};

use super::key::check_signatures;
use crate::evidence::{Evidence, SignatureCheck};

/// Kyverno verifies key signatures against Rekor unless `rekor.ignoreTlog` is set: at
/// least one valid signature layer must carry a Rekor bundle (SET) that verifies with a
/// trusted Rekor key and records that very signature.
pub fn check_transparency_log(
    evidence: &Evidence,
    digest: &str,
    check: &SignatureCheck,
    rekor_keys: &[RekorKey],
) -> Result<(), String> {
    if rekor_keys.is_empty() {
        return Err("no Rekor public key to verify the transparency log entry with; set rekor.pubkey, or rekor.ignoreTlog: true for signatures made without the log".into());
    }
    let mut reasons = Vec::new();
    for layer in &evidence.layers {
        let Some(signature) = layer.descriptor.annotation(cosign::SIGNATURE_ANNOTATION) else {
            continue;
        };
        let single = Evidence {
            layers: vec![layer.clone()],
        };
        if check_signatures(&single, digest, check).is_err() {
            continue;
        }
        let Some(bundle) = layer.descriptor.annotation(cosign::BUNDLE_ANNOTATION) else {
            reasons.push("signature has no Rekor bundle".to_owned());
            continue;
        };
        let outcome = RekorBundle::from_json(bundle.as_bytes()).and_then(|bundle| {
            imagegate_sigstore::verify_set(&bundle, rekor_keys)?;
            let signature = base64_decode(signature);
            let key_der = check
                .keys
                .iter()
                .map(|k| k.spki_der().to_vec())
                .collect::<Vec<_>>();
            let mut last = None;
            for der in &key_der {
                match imagegate_sigstore::verify_entry_matches(
                    &bundle,
                    &layer.blob,
                    &signature,
                    der,
                ) {
                    Ok(()) => return Ok(()),
                    Err(e) => last = Some(e),
                }
            }
            Err(last
                .unwrap_or_else(|| imagegate_sigstore::RekorError::EntryMismatch("no key".into())))
        });
        match outcome {
            Ok(()) => return Ok(()),
            Err(e) => reasons.push(e.to_string()),
        }
    }
    reasons.dedup();
    Err(format!(
        "transparency log verification failed: {}",
        if reasons.is_empty() {
            "no valid signature".to_owned()
        } else {
            reasons.join("; ")
        }
    ))
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap_or_default()
}
