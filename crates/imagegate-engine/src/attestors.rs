//! Attestor sets: which signers must have signed an image (N of M, nested sets), and
//! which attestations they must have made, with Kyverno's paths in every message
//! (`.attestors[0].entries[1].keys: no signatures found`).

use std::collections::BTreeMap;

use futures::FutureExt as _;
use futures::future::{BoxFuture, join_all};
use imagegate_oci::Reference;
use imagegate_policy::conditions::{self, Context};
use imagegate_policy::model::{AttestationCheck, Attestor, AttestorSet, ImageVerification};
use imagegate_sigstore::{HashAlgorithm, PublicKey, RekorBundle, RekorKey, cosign};

use crate::verify::{
    EvidenceKind, SignatureCheck, Verifier, VerifyError, check_attestations, check_signatures,
};

/// Why an image failed its attestors or attestations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestorFailure {
    /// The Kyverno-style message (`.attestors[0].entries[0].keys: no signatures found`).
    pub message: String,
    /// Whether the registry could not be used (an error rather than a failed check).
    pub registry_error: bool,
}

impl AttestorFailure {
    fn at(path: &str, error: &VerifyError) -> AttestorFailure {
        AttestorFailure {
            message: format!("{path}: {error}"),
            registry_error: error.is_registry_failure(),
        }
    }

    fn config(path: &str, message: impl std::fmt::Display) -> AttestorFailure {
        AttestorFailure {
            message: format!("{path}: {message}"),
            registry_error: false,
        }
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
    /// Trusted Rekor keys for entries that do not ignore the transparency log.
    pub rekor_keys: &'a [RekorKey],
}

/// Verifies every attestor set of the entry (all sets must be satisfied).
pub async fn verify_attestors(
    verifier: &Verifier,
    subject: &ImageSubject<'_>,
) -> Result<(), AttestorFailure> {
    for (i, set) in subject.verification.attestors.iter().enumerate() {
        verify_set(verifier, subject, set, format!(".attestors[{i}]")).await?;
    }
    Ok(())
}

/// Verifies every attestation check of the entry: its attestors made attestations of
/// the type, and every such statement satisfies the conditions.
pub async fn verify_attestations(
    verifier: &Verifier,
    subject: &ImageSubject<'_>,
    image_display: &str,
    context: &Context,
) -> Result<(), AttestorFailure> {
    for (i, check) in subject.verification.attestations.iter().enumerate() {
        let predicate_type = check
            .type_
            .as_deref()
            .or(check.predicate_type.as_deref())
            .unwrap_or_default();
        let path = format!(".attestations[{i}]");
        if predicate_type.is_empty() {
            return Err(AttestorFailure::config(&path, "a type is required"));
        }
        for (j, set) in check.attestors.iter().enumerate() {
            verify_attestation_set(
                verifier,
                subject,
                check,
                predicate_type,
                set,
                &format!("{path}.attestors[{j}]"),
                image_display,
                context,
            )
            .await?;
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn verify_attestation_set(
    verifier: &Verifier,
    subject: &ImageSubject<'_>,
    check: &AttestationCheck,
    predicate_type: &str,
    set: &AttestorSet,
    path: &str,
    image_display: &str,
    context: &Context,
) -> Result<(), AttestorFailure> {
    let entries = expand_static_keys(set);
    let required = required_count(set, entries.len());
    let mut verified = 0;
    let mut errors = Vec::new();
    for (k, entry) in entries.iter().enumerate() {
        let entry_path = format!("{path}.entries[{k}]");
        let Some(keys_attestor) = entry.keys.as_ref() else {
            errors.push(AttestorFailure::config(
                &entry_path,
                "only keys attestors are supported for attestations so far",
            ));
            continue;
        };
        let keys = match parse_keys(
            keys_attestor.public_keys.as_deref(),
            keys_attestor.signature_algorithm.as_deref(),
        ) {
            Ok(keys) => keys,
            Err(message) => {
                errors.push(AttestorFailure::config(
                    &format!("{entry_path}.keys"),
                    message,
                ));
                continue;
            }
        };
        let repository = match repository_for(subject, entry) {
            Ok(r) => r,
            Err(failure) => return Err(failure),
        };
        let evidence = match verifier
            .evidence(&repository, EvidenceKind::Attestations, subject.digest)
            .await
        {
            Ok(evidence) => evidence,
            Err(e) => {
                errors.push(AttestorFailure::at(&format!("{entry_path}.keys"), &e));
                continue;
            }
        };
        let statements = match check_attestations(&evidence, subject.digest, &keys, predicate_type)
        {
            Ok(statements) => statements,
            Err(e) => {
                errors.push(AttestorFailure::at(&format!("{entry_path}.keys"), &e));
                continue;
            }
        };
        for statement in &statements {
            let predicate = statement.attestation.predicate.clone();
            let scoped = match predicate {
                serde_json::Value::Object(map) => context.with_entries(map),
                _ => context.clone(),
            };
            match conditions::evaluate(&check.conditions, &scoped) {
                Ok(result) if result.passed => {}
                Ok(result) => {
                    return Err(AttestorFailure::config(
                        &format!("{entry_path}.keys"),
                        format!(
                            "attestation checks failed for {image_display} and predicate {predicate_type}: {}",
                            result.message.unwrap_or_default()
                        ),
                    ));
                }
                Err(e) => {
                    return Err(AttestorFailure::config(
                        &format!("{entry_path}.keys"),
                        format!("failed to check attestations: {e}"),
                    ));
                }
            }
        }
        verified += 1;
        if verified >= required {
            return Ok(());
        }
    }
    let mut message = format!(
        "image attestations verification failed, verifiedCount: {verified}, requiredCount: {required}"
    );
    let registry_error = !errors.is_empty() && errors.iter().all(|e| e.registry_error);
    if !errors.is_empty() {
        message.push_str(": ");
        message.push_str(&join_messages(&errors));
    }
    Err(AttestorFailure {
        message,
        registry_error,
    })
}

/// One attestor set: `count` of its (expanded) entries must verify.
fn verify_set<'a>(
    verifier: &'a Verifier,
    subject: &'a ImageSubject<'a>,
    set: &'a AttestorSet,
    path: String,
) -> BoxFuture<'a, Result<(), AttestorFailure>> {
    async move {
        let entries = expand_static_keys(set);
        let required = required_count(set, entries.len());
        // Entries are independent: verify them concurrently (their evidence fetches are
        // coalesced, so entries sharing a repository cost one fetch).
        let outcomes = join_all(entries.iter().enumerate().map(|(i, entry)| {
            let entry_path = format!("{path}.entries[{i}]");
            async move {
                match entry.attestor.as_deref() {
                    Some(nested) => {
                        verify_set(verifier, subject, nested, format!("{entry_path}.attestor")).await
                    }
                    None => verify_entry(verifier, subject, entry, &entry_path).await,
                }
            }
        }))
        .await;
        let verified = outcomes.iter().filter(|o| o.is_ok()).count();
        if verified >= required {
            return Ok(());
        }
        let errors: Vec<AttestorFailure> = outcomes.into_iter().filter_map(Result::err).collect();
        let registry_error = !errors.is_empty() && errors.iter().all(|e| e.registry_error);
        let mut message = join_messages(&errors);
        if required < entries.len() {
            message = format!(
                "{path}: image verification failed, verifiedCount: {verified}, requiredCount: {required}: {message}"
            );
        }
        Err(AttestorFailure {
            message,
            registry_error,
        })
    }
    .boxed()
}

/// One leaf entry: its signatures on the image.
async fn verify_entry(
    verifier: &Verifier,
    subject: &ImageSubject<'_>,
    entry: &Attestor,
    path: &str,
) -> Result<(), AttestorFailure> {
    let Some(keys_attestor) = entry.keys.as_ref() else {
        let kind = if entry.keyless.is_some() {
            "keyless"
        } else if entry.certificates.is_some() {
            "certificates"
        } else {
            "attestor"
        };
        return Err(AttestorFailure::config(
            &format!("{path}.{kind}"),
            format!("{kind} attestors are not supported yet"),
        ));
    };
    let path = format!("{path}.keys");
    let algorithm = keys_attestor
        .signature_algorithm
        .as_deref()
        .or(entry.signature_algorithm.as_deref());
    let keys = parse_keys(keys_attestor.public_keys.as_deref(), algorithm)
        .map_err(|message| AttestorFailure::config(&path, message))?;
    let repository = repository_for(subject, entry)?;
    let evidence = verifier
        .evidence(&repository, EvidenceKind::Signatures, subject.digest)
        .await
        .map_err(|e| AttestorFailure::at(&path, &e))?;
    let check = SignatureCheck {
        keys,
        annotations: entry.annotations.clone(),
        signature_repository: None,
    };
    let signatures = check_signatures(&evidence, subject.digest, &check)
        .map_err(|e| AttestorFailure::at(&path, &e))?;
    let ignore_tlog = keys_attestor.rekor.as_ref().is_some_and(|r| r.ignore_tlog);
    if !ignore_tlog {
        check_transparency_log(subject, keys_attestor, &evidence, &check, signatures.len())
            .map_err(|message| AttestorFailure::config(&path, message))?;
    }
    Ok(())
}

/// Kyverno verifies key signatures against Rekor unless `rekor.ignoreTlog` is set: at
/// least one valid signature layer must carry a Rekor bundle (SET) that verifies with a
/// trusted Rekor key and records that very signature.
fn check_transparency_log(
    subject: &ImageSubject<'_>,
    keys_attestor: &imagegate_policy::model::StaticKeyAttestor,
    evidence: &crate::verify::Evidence,
    check: &SignatureCheck,
    _valid: usize,
) -> Result<(), String> {
    let custom_keys;
    let rekor_keys: &[RekorKey] = match keys_attestor
        .rekor
        .as_ref()
        .and_then(|r| r.pubkey.as_deref())
    {
        Some(pem) => {
            custom_keys = PublicKey::from_pem(pem)
                .map_err(|e| format!("rekor.pubkey: {e}"))?
                .into_iter()
                .map(RekorKey::new)
                .collect::<Vec<_>>();
            &custom_keys
        }
        None => subject.rekor_keys,
    };
    if rekor_keys.is_empty() {
        return Err("no Rekor public key to verify the transparency log entry with; set rekor.pubkey, or rekor.ignoreTlog: true for signatures made without the log".into());
    }
    let mut reasons = Vec::new();
    for layer in &evidence.layers {
        let Some(signature) = layer.descriptor.annotation(cosign::SIGNATURE_ANNOTATION) else {
            continue;
        };
        let single = crate::verify::Evidence {
            layers: vec![layer.clone()],
        };
        if check_signatures(&single, subject.digest, check).is_err() {
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

/// Kyverno counts every key of a multi-key PEM as its own entry.
fn expand_static_keys(set: &AttestorSet) -> Vec<Attestor> {
    let mut entries = Vec::with_capacity(set.entries.len());
    for entry in &set.entries {
        let blocks = entry
            .keys
            .as_ref()
            .and_then(|k| k.public_keys.as_deref())
            .map(split_pem_blocks)
            .unwrap_or_default();
        if blocks.len() > 1 {
            for block in blocks {
                let mut single = entry.clone();
                if let Some(keys) = single.keys.as_mut() {
                    keys.public_keys = Some(block);
                }
                entries.push(single);
            }
        } else {
            entries.push(entry.clone());
        }
    }
    entries
}

fn split_pem_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("-----BEGIN ") {
            current.clear();
        }
        current.push_str(trimmed);
        current.push('\n');
        if trimmed.starts_with("-----END ") {
            blocks.push(std::mem::take(&mut current));
        }
    }
    blocks
}

fn required_count(set: &AttestorSet, expanded: usize) -> usize {
    match set.count {
        Some(n) if n > 0 => n,
        _ => expanded,
    }
}

fn parse_keys(pem: Option<&str>, algorithm: Option<&str>) -> Result<Vec<PublicKey>, String> {
    let pem = pem
        .filter(|p| !p.trim().is_empty())
        .ok_or("no public key given")?;
    if pem.starts_with("k8s://") || pem.contains("://") && !pem.contains("-----BEGIN") {
        return Err(format!(
            "key reference {pem:?} (Kubernetes secret or KMS) cannot be resolved here; give the PEM"
        ));
    }
    let hash = algorithm
        .filter(|a| !a.is_empty())
        .map(|a| a.parse::<HashAlgorithm>().map_err(|e| e.to_string()))
        .transpose()?;
    let keys = PublicKey::from_pem(pem).map_err(|e| e.to_string())?;
    Ok(match hash {
        Some(hash) => keys.into_iter().map(|k| k.with_hash(hash)).collect(),
        None => keys,
    })
}

/// The repository holding the signatures: the entry's, else the verifyImages entry's,
/// else the image's own.
fn repository_for(
    subject: &ImageSubject<'_>,
    entry: &Attestor,
) -> Result<Reference, AttestorFailure> {
    let configured = entry
        .repository
        .as_deref()
        .or(subject.verification.repository.as_deref())
        .filter(|r| !r.is_empty());
    match configured {
        Some(repository) => {
            Reference::parse(repository).map_err(|e| AttestorFailure::config(".repository", e))
        }
        None => Ok(subject.image.clone()),
    }
}

fn join_messages(errors: &[AttestorFailure]) -> String {
    let mut seen = BTreeMap::new();
    for (i, e) in errors.iter().enumerate() {
        seen.entry(e.message.clone()).or_insert(i);
    }
    let mut ordered: Vec<(usize, String)> = seen.into_iter().map(|(m, i)| (i, m)).collect();
    ordered.sort();
    ordered
        .into_iter()
        .map(|(_, m)| m)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_key_pem_counts_as_several_entries() {
        let pem = "-----BEGIN PUBLIC KEY-----\nAAA\n-----END PUBLIC KEY-----\n-----BEGIN PUBLIC KEY-----\nBBB\n-----END PUBLIC KEY-----\n";
        let set: AttestorSet = serde_json::from_value(serde_json::json!({
            "entries": [{"keys": {"publicKeys": pem}}, {"keys": {"publicKeys": "x"}}]
        }))
        .unwrap();
        let expanded = expand_static_keys(&set);
        assert_eq!(expanded.len(), 3);
        assert_eq!(required_count(&set, expanded.len()), 3);
        assert!(
            expanded[1]
                .keys
                .as_ref()
                .unwrap()
                .public_keys
                .as_deref()
                .unwrap()
                .contains("BBB")
        );
    }
}
