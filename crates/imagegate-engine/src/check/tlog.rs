//! The transparency log for key-signed `.sig` evidence: a Rekor signed entry timestamp
//! (SET) that verifies with a trusted Rekor key and records that very signature. Pure.

use imagegate_sigstore::{Envelope, PublicKey, RekorBundle, RekorKey, cosign};

use super::key::check_signatures;
use super::keyless::dsse_entry_matches;
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
            artifacts: Vec::new(),
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

/// Kyverno checks the log for key-signed attestations too (unless `rekor.ignoreTlog`):
/// the `.att` layers whose Rekor bundle (SET) verifies with a trusted Rekor key and
/// whose `intoto`/`dsse` entry records that envelope's payload and one of `keys`. The
/// caller verifies the envelopes of these layers afterwards; the other layers are
/// dropped. An error when no layer is logged.
pub fn logged_attestation_layers(
    evidence: &Evidence,
    keys: &[PublicKey],
    rekor_keys: &[RekorKey],
) -> Result<Evidence, String> {
    if rekor_keys.is_empty() {
        return Err("no Rekor public key to verify the transparency log entry with; set rekor.pubkey, or rekor.ignoreTlog: true for attestations made without the log".into());
    }
    let mut reasons = Vec::new();
    let mut logged = Vec::new();
    for layer in &evidence.layers {
        let Some(bundle) = layer.descriptor.annotation(cosign::BUNDLE_ANNOTATION) else {
            reasons.push("attestation has no Rekor bundle".to_owned());
            continue;
        };
        let outcome = RekorBundle::from_json(bundle.as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|bundle| {
                imagegate_sigstore::verify_set(&bundle, rekor_keys).map_err(|e| e.to_string())?;
                let envelope = Envelope::from_json(&layer.blob).map_err(|e| e.to_string())?;
                let mut last = "no key".to_owned();
                for key in keys {
                    match dsse_entry_matches(&bundle, &envelope.payload, key.spki_der()) {
                        Ok(()) => return Ok(()),
                        Err(e) => last = e,
                    }
                }
                Err(last)
            });
        match outcome {
            Ok(()) => logged.push(layer.clone()),
            Err(e) => reasons.push(e),
        }
    }
    if logged.is_empty() {
        reasons.dedup();
        return Err(format!(
            "transparency log verification failed: {}",
            if reasons.is_empty() {
                "no attestation".to_owned()
            } else {
                reasons.join("; ")
            }
        ));
    }
    Ok(Evidence {
        layers: logged,
        artifacts: Vec::new(),
    })
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap_or_default()
}
