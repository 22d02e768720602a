//! Legacy cosign keyless evidence: `.sig` and `.att` layers carrying a Fulcio
//! certificate (`dev.sigstore.cosign/certificate`, `dev.sigstore.cosign/chain`) and a
//! Rekor bundle (`dev.sigstore.cosign/bundle`, a signed entry timestamp).
//!
//! A layer verifies when, in this order:
//! 1. the Rekor SET verifies with a trusted Rekor key valid at its `integratedTime`
//!    (skipped with `rekor.ignoreTlog`; the certificate is then checked at the current
//!    time, as cosign does, since an unauthenticated time proves nothing);
//! 2. the certificate chains to a trusted Fulcio root (the policy's `roots`, else the
//!    trusted root's CAs valid at that time) and is itself valid at that time — i.e.
//!    the entry was integrated while the certificate was valid;
//! 3. the leaf's key verifies the signature over the payload (simple signing) or the
//!    DSSE PAE, and the payload names the image digest;
//! 4. the log entry records this payload, signature and certificate;
//! 5. the certificate's identity (SAN, OIDC issuer, GitHub extensions) meets the
//!    requirement;
//! 6. the certificate's embedded SCT verifies with a CT log key (the policy's
//!    `ctlog.pubkey`, else the trusted root's) valid at the SCT's time, bound to the
//!    issuer of the leaf in the verified chain (skipped with `ctlog.ignoreSCT`).

use std::collections::BTreeMap;

use base64::Engine as _;
use imagegate_sigstore::{
    CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, Envelope, IdentityRequirement, PublicKey,
    RekorBundle, RekorKey, SIGNATURE_ANNOTATION, SignerIdentity, SimpleSigning, TrustedLogKey,
    TrustedRoot, Validity, VerifiedCertificate, cosign, verify_attestation,
    verify_certificate_chain, verify_embedded_scts, verify_entry_matches, verify_set,
    verify_simple_signing,
};
use serde_json::Value;

use crate::evidence::{
    Evidence, Layer, VerifiedEnvelope, VerifyError, now, select_attestations, summarise,
};

/// What a keyless signer must be, and how its evidence is checked.
#[derive(Debug, Clone)]
pub struct KeylessCheck {
    /// The certificate identity required.
    pub identity: IdentityRequirement,
    /// PEM roots replacing the trusted root's Fulcio CAs (Kyverno `keyless.roots`); every
    /// certificate in it is a trust anchor.
    pub roots_pem: Option<String>,
    /// Rekor keys replacing the trusted root's (Kyverno `rekor.pubkey`).
    pub rekor_keys: Vec<RekorKey>,
    /// Do not require a verified Rekor entry (Kyverno `rekor.ignoreTlog`).
    pub ignore_tlog: bool,
    /// Do not require a certificate transparency proof (Kyverno `ctlog.ignoreSCT`).
    pub ignore_sct: bool,
    /// CT log keys replacing the trusted root's (Kyverno `ctlog.pubkey`).
    pub ctlog_keys: Vec<PublicKey>,
    /// Annotations a signature payload's `optional` section must carry.
    pub annotations: BTreeMap<String, String>,
}

impl KeylessCheck {
    /// A check for `identity` with every verification on.
    pub fn new(identity: IdentityRequirement) -> KeylessCheck {
        KeylessCheck {
            identity,
            roots_pem: None,
            rekor_keys: Vec::new(),
            ignore_tlog: false,
            ignore_sct: false,
            ctlog_keys: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }
}

/// The signature payloads of `evidence` (`.sig` layers) signed keylessly as `check`
/// requires, for `digest`.
pub fn check_keyless_signatures(
    evidence: &Evidence,
    digest: &str,
    check: &KeylessCheck,
    trust: Option<&TrustedRoot>,
) -> Result<Vec<SimpleSigning>, VerifyError> {
    if evidence.layers.is_empty() {
        return Err(VerifyError::NoSignatures);
    }
    let mut valid = Vec::new();
    let mut reasons = Vec::new();
    for layer in &evidence.layers {
        match keyless_signature(layer, digest, check, trust) {
            Ok(signing) => valid.push(signing),
            Err(reason) => reasons.push(reason),
        }
    }
    if valid.is_empty() {
        return Err(VerifyError::InvalidSignature {
            reason: summarise(reasons),
        });
    }
    Ok(valid)
}

/// The attestations of `evidence` (`.att` layers) of `predicate_type`, signed keylessly
/// as `check` requires, about `digest`.
pub fn check_keyless_attestations(
    evidence: &Evidence,
    digest: &str,
    check: &KeylessCheck,
    trust: Option<&TrustedRoot>,
    predicate_type: &str,
) -> Result<Vec<VerifiedEnvelope>, VerifyError> {
    select_attestations(evidence, predicate_type, "predicateType", |layer| {
        let attestation = keyless_attestation(layer, digest, check, trust)?;
        let envelope = serde_json::from_slice(&layer.blob).unwrap_or(Value::Null);
        Ok(Some(VerifiedEnvelope {
            attestation,
            envelope,
        }))
    })
}

fn keyless_signature(
    layer: &Layer,
    digest: &str,
    check: &KeylessCheck,
    trust: Option<&TrustedRoot>,
) -> Result<SimpleSigning, String> {
    let signature_b64 = layer
        .descriptor
        .annotation(SIGNATURE_ANNOTATION)
        .ok_or("signature layer has no signature annotation")?;
    let (certificate, bundle) = certify(layer, check, trust)?;
    let signing = verify_simple_signing(
        &layer.blob,
        signature_b64,
        std::slice::from_ref(&certificate.public_key),
        digest,
        &check.annotations,
    )
    .map_err(|e| e.to_string())?;
    if let Some(bundle) = &bundle {
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature_b64.trim())
            .map_err(|e| format!("malformed signature: {e}"))?;
        verify_entry_matches(bundle, &layer.blob, &signature, &certificate.der)
            .map_err(|e| e.to_string())?;
    }
    check_identity(&certificate, check)?;
    Ok(signing)
}

fn keyless_attestation(
    layer: &Layer,
    digest: &str,
    check: &KeylessCheck,
    trust: Option<&TrustedRoot>,
) -> Result<imagegate_sigstore::Attestation, String> {
    let (certificate, bundle) = certify(layer, check, trust)?;
    let attestation = verify_attestation(
        &layer.blob,
        std::slice::from_ref(&certificate.public_key),
        Some(digest),
    )
    .map_err(|e| e.to_string())?;
    if let Some(bundle) = &bundle {
        let envelope = Envelope::from_json(&layer.blob).map_err(|e| e.to_string())?;
        dsse_entry_matches(bundle, &envelope.payload, &certificate.der)?;
    }
    check_identity(&certificate, check)?;
    Ok(attestation)
}

/// Steps 1 and 2: the Rekor SET (unless ignored) and the certificate chain at the
/// integrated time. Returns the leaf and the verified bundle (`None` with ignoreTlog).
fn certify(
    layer: &Layer,
    check: &KeylessCheck,
    trust: Option<&TrustedRoot>,
) -> Result<(VerifiedCertificate, Option<RekorBundle>), String> {
    let certificate_pem = layer
        .descriptor
        .annotation(CERTIFICATE_ANNOTATION)
        .filter(|c| !c.trim().is_empty())
        .ok_or("signature has no certificate (keyless signatures carry one)")?;
    let chain_pem = layer.descriptor.annotation(CHAIN_ANNOTATION).unwrap_or("");
    let (at, bundle) = if check.ignore_tlog {
        (now(), None)
    } else {
        let text = layer
            .descriptor
            .annotation(cosign::BUNDLE_ANNOTATION)
            .ok_or("signature has no Rekor bundle; set rekor.ignoreTlog: true for signatures made without the transparency log")?;
        let bundle = RekorBundle::from_json(text.as_bytes()).map_err(|e| e.to_string())?;
        let at = bundle.payload.integrated_time;
        let keys = if check.rekor_keys.is_empty() {
            crate::trust::rekor_keys(trust, &[], Some(at))
        } else {
            check.rekor_keys.clone()
        };
        if keys.is_empty() {
            return Err("no Rekor public key to verify the transparency log entry with".into());
        }
        verify_set(&bundle, &keys).map_err(|e| e.to_string())?;
        (at, Some(bundle))
    };
    let certificate = match &check.roots_pem {
        Some(roots) => verify_certificate_chain(certificate_pem, chain_pem, roots, at)
            .map_err(|e| e.to_string())?,
        None => {
            let trust = trust.ok_or("no trusted root to verify the certificate with")?;
            let authorities: Vec<_> = trust
                .fulcio_authorities()
                .iter()
                .filter(|ca| ca.validity.contains(at))
                .collect();
            if authorities.is_empty() {
                return Err(format!(
                    "no Fulcio certificate authority of {} was valid at {at}",
                    trust.origin()
                ));
            }
            let roots: String = authorities.iter().map(|ca| ca.root_pem()).collect();
            let mut intermediates: String = authorities
                .iter()
                .map(|ca| ca.intermediates_pem())
                .collect();
            intermediates.push_str(chain_pem);
            verify_certificate_chain(certificate_pem, &intermediates, &roots, at)
                .map_err(|e| e.to_string())?
        }
    };
    if !check.ignore_sct {
        check_sct(&certificate, check, trust)?;
    }
    Ok((certificate, bundle))
}

/// Step 6: the embedded SCT, with the policy's CT log keys (unbounded validity) or the
/// trusted root's.
fn check_sct(
    certificate: &VerifiedCertificate,
    check: &KeylessCheck,
    trust: Option<&TrustedRoot>,
) -> Result<(), String> {
    let custom: Vec<TrustedLogKey<PublicKey>>;
    let keys: &[TrustedLogKey<PublicKey>] = if check.ctlog_keys.is_empty() {
        trust.map(TrustedRoot::ctlog_keys).unwrap_or_default()
    } else {
        custom = check
            .ctlog_keys
            .iter()
            .map(|key| TrustedLogKey {
                key: key.clone(),
                validity: Validity::default(),
            })
            .collect();
        &custom
    };
    verify_embedded_scts(&certificate.der, &certificate.issuer_spki_der, keys)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn check_identity(certificate: &VerifiedCertificate, check: &KeylessCheck) -> Result<(), String> {
    let identity =
        SignerIdentity::from_certificate_der(&certificate.der).map_err(|e| e.to_string())?;
    check.identity.check(&identity).map_err(|e| e.to_string())
}

/// Step 4 for DSSE: an `intoto` (0.0.1/0.0.2) or `dsse` log entry records the
/// envelope's payload hash and the verifier: the signing certificate (keyless) or the
/// public key's SubjectPublicKeyInfo (key-signed attestations).
pub(crate) fn dsse_entry_matches(
    bundle: &RekorBundle,
    payload: &[u8],
    verifier_der: &[u8],
) -> Result<(), String> {
    let mismatch = |what: &str| format!("Rekor entry does not match the attestation: {what}");
    let body = base64::engine::general_purpose::STANDARD
        .decode(&bundle.payload.body)
        .map_err(|e| format!("malformed Rekor entry body: {e}"))?;
    let body: Value =
        serde_json::from_slice(&body).map_err(|e| format!("malformed Rekor entry body: {e}"))?;
    let kind = body.get("kind").and_then(Value::as_str).unwrap_or_default();
    if kind != "intoto" && kind != "dsse" {
        return Err(format!(
            "unsupported Rekor entry kind \"{kind}\" for an attestation (expected intoto or dsse)"
        ));
    }
    let payload_hash = ["/spec/content/payloadHash", "/spec/payloadHash"]
        .iter()
        .find_map(|p| body.pointer(p))
        .ok_or_else(|| mismatch("the entry has no payload hash"))?;
    let wanted = imagegate_oci::sha256_digest(payload);
    let recorded = format!(
        "{}:{}",
        payload_hash
            .get("algorithm")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        payload_hash
            .get("value")
            .and_then(Value::as_str)
            .unwrap_or_default()
    );
    if !recorded.eq_ignore_ascii_case(&wanted) {
        return Err(mismatch(&format!(
            "it records payload {recorded}, the envelope's is {wanted}"
        )));
    }
    let mut verifiers = Vec::new();
    collect_verifiers(body.get("spec").unwrap_or(&Value::Null), &mut verifiers);
    if !verifiers.iter().any(|der| der == verifier_der) {
        return Err(mismatch("it records another certificate or key"));
    }
    Ok(())
}

/// Every certificate and public key found in base64-encoded PEM strings under `value`
/// (where intoto and dsse entries keep their verifiers).
fn collect_verifiers(value: &Value, out: &mut Vec<Vec<u8>>) {
    match value {
        Value::String(text) => {
            if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(text)
                && let Ok(pem) = std::str::from_utf8(&decoded)
            {
                out.extend(pem_verifiers(pem));
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_verifiers(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_verifiers(v, out)),
        _ => {}
    }
}

/// The DER of each `CERTIFICATE` and `PUBLIC KEY` block of `text` (none when it is
/// not well-formed PEM).
fn pem_verifiers(text: &str) -> Vec<Vec<u8>> {
    imagegate_sigstore::pem::parse_blocks(text)
        .map(|blocks| {
            blocks
                .into_iter()
                .filter(|block| block.label == "CERTIFICATE" || block.label == "PUBLIC KEY")
                .map(|block| block.der)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_found_in_base64_pem_strings() {
        let pem = "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n";
        let encoded = base64::engine::general_purpose::STANDARD.encode(pem);
        let spec = serde_json::json!({"signatures": [{"verifier": encoded, "sig": "x"}]});
        let mut found = Vec::new();
        collect_verifiers(&spec, &mut found);
        assert_eq!(found, vec![vec![1u8, 2, 3]]);
    }
}
