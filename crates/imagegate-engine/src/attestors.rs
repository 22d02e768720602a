//! Attestor sets: which signers must have signed an image (N of M, nested sets), and
//! which attestations they must have made, with Kyverno's paths in every message
//! (`.attestors[0].entries[1].keys: no signatures found`).

use std::collections::BTreeMap;

use futures::FutureExt as _;
use futures::future::{BoxFuture, join_all};
use imagegate_oci::Reference;
use imagegate_policy::conditions::{self, Context};
use imagegate_policy::model::{
    AttestationCheck, Attestor, AttestorSet, CTLog, CertificateAttestor, ImageVerification,
    KeylessAttestor, Rekor, VerificationType,
};
use imagegate_sigstore::{
    Attestation, BundleRequirement, GitHubWorkflow, HashAlgorithm, IdentityRequirement, Matcher,
    PublicKey, RekorBundle, RekorKey, TrustOverrides, TrustedRoot, VerifyOptions, cosign, pem,
};

use crate::bundles::{BundleCheck, check_bundle_attestations, check_bundle_signatures};
use crate::keyless::{KeylessCheck, check_keyless_attestations, check_keyless_signatures};
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

    /// Whether signatures and attestations are Sigstore bundles found as OCI 1.1
    /// referrers (`type: SigstoreBundle` or `cosignOCI11: true`) rather than
    /// `.sig`/`.att` tags.
    fn uses_bundles(&self) -> bool {
        self.verification.verification_type() == VerificationType::SigstoreBundle
            || self.verification.cosign_oci11 == Some(true)
    }
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
        let (kind_path, statements) =
            match attestation_statements(verifier, subject, entry, predicate_type, &entry_path)
                .await
            {
                Ok(found) => found,
                Err(failure) => {
                    errors.push(failure);
                    continue;
                }
            };
        for statement in &statements {
            let predicate = statement.predicate.clone();
            let scoped = match predicate {
                serde_json::Value::Object(map) => context.with_entries(map),
                _ => context.clone(),
            };
            match conditions::evaluate(&check.conditions, &scoped) {
                Ok(result) if result.passed => {}
                Ok(result) => {
                    return Err(AttestorFailure::config(
                        &kind_path,
                        format!(
                            "attestation checks failed for {image_display} and predicate {predicate_type}: {}",
                            result.message.unwrap_or_default()
                        ),
                    ));
                }
                Err(e) => {
                    return Err(AttestorFailure::config(
                        &kind_path,
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
    if let Some(keyless) = entry.keyless.as_ref() {
        return verify_keyless_entry(
            verifier,
            subject,
            entry,
            keyless,
            &format!("{path}.keyless"),
        )
        .await;
    }
    if let Some(certificates) = entry.certificates.as_ref() {
        let path = format!("{path}.certificates");
        let key = certificate_key(certificates)
            .map_err(|message| AttestorFailure::config(&path, message))?;
        return verify_with_keys(
            verifier,
            subject,
            entry,
            vec![key],
            certificates.rekor.as_ref(),
            certificates.ctlog.as_ref(),
            &path,
        )
        .await;
    }
    let Some(keys_attestor) = entry.keys.as_ref() else {
        return Err(AttestorFailure::config(
            &format!("{path}.attestor"),
            "entry has no keys, certificates, keyless or nested attestor",
        ));
    };
    let path = format!("{path}.keys");
    let algorithm = keys_attestor
        .signature_algorithm
        .as_deref()
        .or(entry.signature_algorithm.as_deref());
    let keys = parse_keys(keys_attestor.public_keys.as_deref(), algorithm)
        .map_err(|message| AttestorFailure::config(&path, message))?;
    verify_with_keys(
        verifier,
        subject,
        entry,
        keys,
        keys_attestor.rekor.as_ref(),
        keys_attestor.ctlog.as_ref(),
        &path,
    )
    .await
}

/// Kyverno `certificates`: the certificate's key verifies the signature; with
/// `certChain`, the certificate must also chain to the chain's root now.
fn certificate_key(certificates: &CertificateAttestor) -> Result<PublicKey, String> {
    let cert = certificates
        .cert
        .as_deref()
        .filter(|c| !c.trim().is_empty())
        .ok_or("cert is required")?;
    match certificates
        .cert_chain
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    {
        None => imagegate_sigstore::certificate_public_key(cert).map_err(|e| e.to_string()),
        Some(chain) => {
            let blocks = split_pem_blocks(chain);
            let (roots, intermediates) = blocks
                .split_last()
                .ok_or("certChain holds no certificate")?;
            imagegate_sigstore::verify_certificate_chain(
                cert,
                &intermediates.concat(),
                roots,
                crate::keyless::now(),
            )
            .map(|verified| verified.public_key)
            .map_err(|e| e.to_string())
        }
    }
}

/// Signatures (legacy `.sig` or bundles) by one of `keys`, with the transparency log
/// checked unless `rekor.ignoreTlog`.
async fn verify_with_keys(
    verifier: &Verifier,
    subject: &ImageSubject<'_>,
    entry: &Attestor,
    keys: Vec<PublicKey>,
    rekor: Option<&Rekor>,
    ctlog: Option<&CTLog>,
    path: &str,
) -> Result<(), AttestorFailure> {
    let ignore_tlog = rekor.is_some_and(|r| r.ignore_tlog);
    let repository = repository_for(subject, entry)?;
    if subject.uses_bundles() {
        let check = BundleCheck {
            requirements: keys.into_iter().map(BundleRequirement::Key).collect(),
            options: VerifyOptions {
                ignore_tlog,
                ignore_sct: true,
            },
        };
        let trust = subject
            .bundle_trust(log_overrides(None, rekor, ctlog))
            .map_err(|m| AttestorFailure::config(path, m))?;
        let evidence = verifier
            .evidence(&repository, EvidenceKind::Bundles, subject.digest)
            .await
            .map_err(|e| AttestorFailure::at(path, &e))?;
        check_bundle_signatures(&evidence, subject.digest, &check, trust.as_ref())
            .map_err(|e| AttestorFailure::at(path, &e))?;
        return Ok(());
    }
    let evidence = verifier
        .evidence(&repository, EvidenceKind::Signatures, subject.digest)
        .await
        .map_err(|e| AttestorFailure::at(path, &e))?;
    let check = SignatureCheck {
        keys,
        annotations: entry.annotations.clone(),
        signature_repository: None,
    };
    check_signatures(&evidence, subject.digest, &check)
        .map_err(|e| AttestorFailure::at(path, &e))?;
    if !ignore_tlog {
        check_transparency_log(subject, rekor, &evidence, &check)
            .map_err(|message| AttestorFailure::config(path, message))?;
    }
    Ok(())
}

/// Kyverno verifies key signatures against Rekor unless `rekor.ignoreTlog` is set: at
/// least one valid signature layer must carry a Rekor bundle (SET) that verifies with a
/// trusted Rekor key and records that very signature.
fn check_transparency_log(
    subject: &ImageSubject<'_>,
    rekor: Option<&Rekor>,
    evidence: &crate::verify::Evidence,
    check: &SignatureCheck,
) -> Result<(), String> {
    let custom_keys;
    let rekor_keys: &[RekorKey] = match rekor.and_then(|r| r.pubkey.as_deref()) {
        Some(pem) => {
            custom_keys = PublicKey::from_pem(pem)
                .map_err(|e| format!("rekor.pubkey: {e}"))?
                .into_iter()
                .map(RekorKey::new)
                .collect::<Vec<_>>();
            &custom_keys
        }
        None => {
            custom_keys = crate::trust::rekor_keys(subject.trust(), subject.rekor_keys, None);
            &custom_keys
        }
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

/// One keyless entry: legacy `.sig` layers with certificates, or Sigstore bundles.
async fn verify_keyless_entry(
    verifier: &Verifier,
    subject: &ImageSubject<'_>,
    entry: &Attestor,
    keyless: &KeylessAttestor,
    path: &str,
) -> Result<(), AttestorFailure> {
    let repository = repository_for(subject, entry)?;
    if subject.uses_bundles() {
        let check = bundle_identity_check(keyless).map_err(|m| AttestorFailure::config(path, m))?;
        let trust = subject
            .bundle_trust(keyless_overrides(keyless))
            .map_err(|m| AttestorFailure::config(path, m))?;
        let evidence = verifier
            .evidence(&repository, EvidenceKind::Bundles, subject.digest)
            .await
            .map_err(|e| AttestorFailure::at(path, &e))?;
        check_bundle_signatures(&evidence, subject.digest, &check, trust.as_ref())
            .map_err(|e| AttestorFailure::at(path, &e))?;
        return Ok(());
    }
    let check = keyless_check(keyless, entry).map_err(|m| AttestorFailure::config(path, m))?;
    let evidence = verifier
        .evidence(&repository, EvidenceKind::Signatures, subject.digest)
        .await
        .map_err(|e| AttestorFailure::at(path, &e))?;
    check_keyless_signatures(&evidence, subject.digest, &check, subject.trust())
        .map_err(|e| AttestorFailure::at(path, &e))?;
    Ok(())
}

/// The statements of `predicate_type` that `entry` made about the image, with the
/// attestor's policy path (`….entries[0].keys`).
async fn attestation_statements(
    verifier: &Verifier,
    subject: &ImageSubject<'_>,
    entry: &Attestor,
    predicate_type: &str,
    entry_path: &str,
) -> Result<(String, Vec<Attestation>), AttestorFailure> {
    let repository = repository_for(subject, entry)?;
    let bundles = subject.uses_bundles();
    let kind = if bundles {
        EvidenceKind::Bundles
    } else {
        EvidenceKind::Attestations
    };
    let fetch = |path: String| async move {
        verifier
            .evidence(&repository, kind, subject.digest)
            .await
            .map_err(|e| AttestorFailure::at(&path, &e))
            .map(|evidence| (path, evidence))
    };
    let envelopes = if let Some(keys_attestor) = entry.keys.as_ref() {
        let path = format!("{entry_path}.keys");
        let keys = parse_keys(
            keys_attestor.public_keys.as_deref(),
            keys_attestor.signature_algorithm.as_deref(),
        )
        .map_err(|m| AttestorFailure::config(&path, m))?;
        let (path, evidence) = fetch(path).await?;
        let found = if bundles {
            let check = BundleCheck {
                requirements: keys.into_iter().map(BundleRequirement::Key).collect(),
                options: VerifyOptions {
                    ignore_tlog: keys_attestor.rekor.as_ref().is_some_and(|r| r.ignore_tlog),
                    ignore_sct: true,
                },
            };
            let trust = subject
                .bundle_trust(log_overrides(
                    None,
                    keys_attestor.rekor.as_ref(),
                    keys_attestor.ctlog.as_ref(),
                ))
                .map_err(|m| AttestorFailure::config(&path, m))?;
            check_bundle_attestations(
                &evidence,
                subject.digest,
                &check,
                trust.as_ref(),
                predicate_type,
            )
        } else {
            check_attestations(&evidence, subject.digest, &keys, predicate_type)
        };
        (
            path.clone(),
            found.map_err(|e| AttestorFailure::at(&path, &e))?,
        )
    } else if let Some(keyless) = entry.keyless.as_ref() {
        let path = format!("{entry_path}.keyless");
        let found = if bundles {
            let check =
                bundle_identity_check(keyless).map_err(|m| AttestorFailure::config(&path, m))?;
            let trust = subject
                .bundle_trust(keyless_overrides(keyless))
                .map_err(|m| AttestorFailure::config(&path, m))?;
            let (_, evidence) = fetch(path.clone()).await?;
            check_bundle_attestations(
                &evidence,
                subject.digest,
                &check,
                trust.as_ref(),
                predicate_type,
            )
            .map_err(|e| AttestorFailure::at(&path, &e))?
        } else {
            let check =
                keyless_check(keyless, entry).map_err(|m| AttestorFailure::config(&path, m))?;
            let (_, evidence) = fetch(path.clone()).await?;
            check_keyless_attestations(
                &evidence,
                subject.digest,
                &check,
                subject.trust(),
                predicate_type,
            )
            .map_err(|e| AttestorFailure::at(&path, &e))?
        };
        (path, found)
    } else {
        return Err(AttestorFailure::config(
            entry_path,
            "only keys and keyless attestors are supported for attestations",
        ));
    };
    let (path, envelopes) = envelopes;
    Ok((path, envelopes.into_iter().map(|e| e.attestation).collect()))
}

/// Kyverno `keyless{subject, subjectRegExp, issuer, issuerRegExp, additionalExtensions}`
/// as cosign checks it: an absent (or empty) subject or issuer accepts any value.
pub fn identity_requirement(keyless: &KeylessAttestor) -> Result<IdentityRequirement, String> {
    let given = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    let matcher = |exact: &Option<String>, regex: &Option<String>, field: &'static str| match (
        given(exact),
        given(regex),
    ) {
        (Some(value), _) => Ok(Matcher::Exact(value)),
        (None, Some(pattern)) => Matcher::regex(field, &pattern).map_err(|e| e.to_string()),
        (None, None) => Ok(Matcher::Any),
    };
    let mut github = GitHubWorkflow::default();
    for (name, value) in keyless.additional_extensions.iter().flatten() {
        let slot = match name.as_str() {
            "githubWorkflowTrigger" => &mut github.trigger,
            "githubWorkflowSha" => &mut github.sha,
            "githubWorkflowName" => &mut github.name,
            "githubWorkflowRepository" => &mut github.repository,
            "githubWorkflowRef" => &mut github.git_ref,
            other => return Err(format!("additionalExtensions: unknown extension {other:?}")),
        };
        *slot = Some(value.clone());
    }
    Ok(IdentityRequirement {
        subject: matcher(&keyless.subject, &keyless.subject_reg_exp, "subject")?,
        issuer: matcher(&keyless.issuer, &keyless.issuer_reg_exp, "issuer")?,
        github,
    })
}

/// The legacy `.sig`/`.att` check of a keyless attestor.
fn keyless_check(keyless: &KeylessAttestor, entry: &Attestor) -> Result<KeylessCheck, String> {
    if keyless
        .ctlog
        .as_ref()
        .and_then(|c| c.tsa_cert_chain.as_deref())
        .is_some_and(|k| !k.trim().is_empty())
    {
        return Err("ctlog.tsaCertChain is not supported for legacy .sig/.att signatures (their time comes from the Rekor bundle)".into());
    }
    let ctlog_keys = match keyless.ctlog.as_ref().and_then(|c| c.pubkey.as_deref()) {
        Some(pem) if !pem.trim().is_empty() => {
            PublicKey::from_pem(pem).map_err(|e| format!("ctlog.pubkey: {e}"))?
        }
        _ => Vec::new(),
    };
    let rekor_keys = match keyless.rekor.as_ref().and_then(|r| r.pubkey.as_deref()) {
        Some(pem) if !pem.trim().is_empty() => PublicKey::from_pem(pem)
            .map_err(|e| format!("rekor.pubkey: {e}"))?
            .into_iter()
            .map(RekorKey::new)
            .collect(),
        _ => Vec::new(),
    };
    Ok(KeylessCheck {
        identity: identity_requirement(keyless)?,
        roots_pem: keyless.roots.clone().filter(|r| !r.trim().is_empty()),
        rekor_keys,
        ignore_tlog: keyless.rekor.as_ref().is_some_and(|r| r.ignore_tlog),
        ignore_sct: keyless.ctlog.as_ref().is_some_and(|c| c.ignore_sct),
        ctlog_keys,
        annotations: entry.annotations.clone(),
    })
}

/// The bundle check of a keyless attestor (its trust overrides are applied to the
/// trusted root, see [`keyless_overrides`]).
fn bundle_identity_check(keyless: &KeylessAttestor) -> Result<BundleCheck, String> {
    Ok(BundleCheck {
        requirements: vec![BundleRequirement::Identity(identity_requirement(keyless)?)],
        options: VerifyOptions {
            ignore_tlog: keyless.rekor.as_ref().is_some_and(|r| r.ignore_tlog),
            ignore_sct: keyless.ctlog.as_ref().is_some_and(|c| c.ignore_sct),
        },
    })
}

/// A keyless attestor's `roots`, `rekor.pubkey`, `ctlog.pubkey` and
/// `ctlog.tsaCertChain`, each replacing that section of the trusted root for bundles.
fn keyless_overrides(keyless: &KeylessAttestor) -> TrustOverrides<'_> {
    log_overrides(
        keyless.roots.as_deref(),
        keyless.rekor.as_ref(),
        keyless.ctlog.as_ref(),
    )
}

/// Trust overrides from an attestor's fields; empty texts override nothing.
fn log_overrides<'a>(
    roots: Option<&'a str>,
    rekor: Option<&'a Rekor>,
    ctlog: Option<&'a CTLog>,
) -> TrustOverrides<'a> {
    let given = |text: Option<&'a str>| text.filter(|t| !t.trim().is_empty());
    TrustOverrides {
        fulcio_roots_pem: given(roots),
        rekor_keys_pem: given(rekor.and_then(|r| r.pubkey.as_deref())),
        ctlog_keys_pem: given(ctlog.and_then(|c| c.pubkey.as_deref())),
        tsa_chain_pem: given(ctlog.and_then(|c| c.tsa_cert_chain.as_deref())),
    }
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

/// Each PEM block of `text` as a PEM text of its own; none when `text` is not
/// well-formed PEM (the key parser then reports why).
fn split_pem_blocks(text: &str) -> Vec<String> {
    pem::parse_blocks(text)
        .map(|blocks| {
            blocks
                .iter()
                .map(|block| pem::encode(&block.label, &block.der))
                .collect()
        })
        .unwrap_or_default()
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
        // Bodies need only be well-formed PEM here; they are not parsed as keys.
        let pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n-----BEGIN PUBLIC KEY-----\nBBBB\n-----END PUBLIC KEY-----\n";
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
                .contains("BBBB")
        );
    }
}
