//! One attestor entry (`keys`, `certificates`, `keyless`) checked against the evidence
//! of one image: its settings turned into checks, the evidence fetched, the checks run.

use imagegate_oci::Reference;
use imagegate_policy::model::{Attestor, CTLog, CertificateAttestor, KeylessAttestor, Rekor};
use imagegate_sigstore::{
    Attestation, BundleRequirement, GitHubWorkflow, HashAlgorithm, IdentityRequirement, Matcher,
    PublicKey, RekorKey, TrustOverrides, TrustedRoot, VerifyOptions, pem,
};

use super::{AttestorFailure, ImageSubject};
use crate::check::bundle::{BundleCheck, check_bundle_attestations, check_bundle_signatures};
use crate::check::key::{check_attestations, check_signatures};
use crate::check::keyless::{KeylessCheck, check_keyless_attestations, check_keyless_signatures};
use crate::check::notary::NotaryCheck;
use crate::check::tlog::{check_transparency_log, logged_attestation_layers};
use crate::evidence::{EvidenceKind, SignatureCheck, VerifyError, now};
use crate::fetch::Verifier;
use crate::notation::{verify_notation_attestations, verify_notation_signatures};

/// One leaf entry: its signatures on the image.
pub(super) async fn verify_entry(
    verifier: &Verifier,
    subject: &ImageSubject<'_>,
    entry: &Attestor,
    path: &str,
) -> Result<(), AttestorFailure> {
    if subject.uses_notary() {
        return verify_notary_entry(verifier, subject, entry, path).await;
    }
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
            !certificates.rekor.as_ref().is_some_and(|r| r.ignore_tlog),
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
        // The 2021 `key:` form needs no log entry (cosign 1.x), the current form does
        // unless `rekor.ignoreTlog`.
        keys_attestor.requires_tlog(),
        keys_attestor.rekor.as_ref(),
        keys_attestor.ctlog.as_ref(),
        &path,
    )
    .await
}

/// The Notation check of a `type: Notary` entry: its `certificates` (`cert` and
/// `certChain` as Kyverno combines them, `ctlog.tsaCertChain` as the TSA store), with
/// the policy path of the field (`….certificates`).
fn notary_check(entry: &Attestor, path: &str) -> Result<(String, NotaryCheck), AttestorFailure> {
    let Some(certificates) = entry.certificates.as_ref() else {
        let field = if entry.keys.is_some() {
            "keys"
        } else if entry.keyless.is_some() {
            "keyless"
        } else {
            "certificates"
        };
        return Err(AttestorFailure::config(
            &format!("{path}.{field}"),
            "type Notary verifies with certificates (cert, certChain) only",
        ));
    };
    let path = format!("{path}.certificates");
    let tsa = certificates
        .ctlog
        .as_ref()
        .and_then(|c| c.tsa_cert_chain.as_deref())
        .map(str::as_bytes);
    let check = NotaryCheck::read(
        [&certificates.cert, &certificates.cert_chain]
            .into_iter()
            .flatten()
            .map(|pem| pem.as_bytes()),
        tsa,
    )
    .map_err(|m| AttestorFailure::config(&path, m))?;
    Ok((path, check))
}

/// One `type: Notary` entry: a Notation signature of the image manifest, found among
/// its referrers, that chains to the entry's certificates.
async fn verify_notary_entry(
    verifier: &Verifier,
    subject: &ImageSubject<'_>,
    entry: &Attestor,
    path: &str,
) -> Result<(), AttestorFailure> {
    let (path, check) = notary_check(entry, path)?;
    let repository = repository_for(subject, entry)?;
    verify_notation_signatures(
        verifier,
        subject.image,
        subject.digest,
        &repository,
        check,
        subject.access(),
    )
    .await
    .map_err(|e| AttestorFailure::at(&path, e))?;
    Ok(())
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
                now(),
            )
            .map(|verified| verified.public_key)
            .map_err(|e| e.to_string())
        }
    }
}

/// Signatures (legacy `.sig` or bundles) by one of `keys`, with the transparency log
/// checked when `require_tlog`.
#[allow(clippy::too_many_arguments)] // one call per attestor kind, each field distinct
async fn verify_with_keys(
    verifier: &Verifier,
    subject: &ImageSubject<'_>,
    entry: &Attestor,
    keys: Vec<PublicKey>,
    require_tlog: bool,
    rekor: Option<&Rekor>,
    ctlog: Option<&CTLog>,
    path: &str,
) -> Result<(), AttestorFailure> {
    let ignore_tlog = !require_tlog;
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
        return bundle_signatures(verifier, subject, &repository, check, trust, path).await;
    }
    let evidence = verifier
        .evidence(
            &repository,
            EvidenceKind::Signatures,
            subject.digest,
            subject.access(),
        )
        .await
        .map_err(|e| AttestorFailure::at(path, e))?;
    let check = SignatureCheck {
        keys,
        annotations: entry.annotations.clone(),
        signature_repository: None,
    };
    let tlog_keys = if ignore_tlog {
        None
    } else {
        Some(tlog_keys(subject, rekor).map_err(|m| AttestorFailure::config(path, m))?)
    };
    let digest = subject.digest.to_owned();
    let logged = off_workers(path, move || {
        check_signatures(&evidence, &digest, &check)?;
        Ok(tlog_keys.map(|keys| check_transparency_log(&evidence, &digest, &check, &keys)))
    })
    .await?;
    if let Some(Err(message)) = logged {
        return Err(AttestorFailure::TransparencyLog {
            path: path.to_owned(),
            message,
        });
    }
    Ok(())
}

/// Sigstore bundle signatures referring to the image, signed as `check` requires.
async fn bundle_signatures(
    verifier: &Verifier,
    subject: &ImageSubject<'_>,
    repository: &Reference,
    check: BundleCheck,
    trust: Option<TrustedRoot>,
    path: &str,
) -> Result<(), AttestorFailure> {
    let evidence = verifier
        .evidence(
            repository,
            EvidenceKind::Bundles,
            subject.digest,
            subject.access(),
        )
        .await
        .map_err(|e| AttestorFailure::at(path, e))?;
    let digest = subject.digest.to_owned();
    off_workers(path, move || {
        check_bundle_signatures(&evidence, &digest, &check, trust.as_ref())
    })
    .await?;
    Ok(())
}

/// Runs a pure check on the blocking pool (issue 8 item 7): signature and certificate
/// chain checks are CPU work, and a review's deadline can only fire while the async
/// workers are free. The pool is tokio's, bounded in threads.
async fn off_workers<T: Send + 'static>(
    path: &str,
    check: impl FnOnce() -> Result<T, VerifyError> + Send + 'static,
) -> Result<T, AttestorFailure> {
    match tokio::task::spawn_blocking(check).await {
        Ok(outcome) => outcome.map_err(|e| AttestorFailure::at(path, e)),
        // The check panicked: any doubt denies.
        Err(e) => Err(AttestorFailure::config(
            path,
            format!("verification did not complete: {e}"),
        )),
    }
}

/// The Rekor keys a key-signed `.sig` entry is checked with: the attestor's
/// `rekor.pubkey`, else the trusted root's and the engine's.
fn tlog_keys(subject: &ImageSubject<'_>, rekor: Option<&Rekor>) -> Result<Vec<RekorKey>, String> {
    match rekor.and_then(|r| r.pubkey.as_deref()) {
        Some(pem) => Ok(PublicKey::from_pem(pem)
            .map_err(|e| format!("rekor.pubkey: {e}"))?
            .into_iter()
            .map(RekorKey::new)
            .collect()),
        None => Ok(crate::trust::rekor_keys(
            subject.trust(),
            subject.rekor_keys,
            None,
        )),
    }
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
        return bundle_signatures(verifier, subject, &repository, check, trust, path).await;
    }
    let check = keyless_check(keyless, entry).map_err(|m| AttestorFailure::config(path, m))?;
    let evidence = verifier
        .evidence(
            &repository,
            EvidenceKind::Signatures,
            subject.digest,
            subject.access(),
        )
        .await
        .map_err(|e| AttestorFailure::at(path, e))?;
    let digest = subject.digest.to_owned();
    let trust = subject.trust().cloned();
    off_workers(path, move || {
        check_keyless_signatures(&evidence, &digest, &check, trust.as_ref())
    })
    .await?;
    Ok(())
}

/// The statements of `predicate_type` that `entry` made about the image, with the
/// attestor's policy path (`….entries[0].keys`).
pub(crate) async fn attestation_statements(
    verifier: &Verifier,
    subject: &ImageSubject<'_>,
    entry: &Attestor,
    predicate_type: &str,
    entry_path: &str,
) -> Result<(String, Vec<Attestation>), AttestorFailure> {
    if subject.uses_notary() {
        let (path, check) = notary_check(entry, entry_path)?;
        let repository = repository_for(subject, entry)?;
        return verify_notation_attestations(
            verifier,
            &repository,
            subject.digest,
            check,
            predicate_type,
            subject.access(),
        )
        .await
        .map(|statements| (path.clone(), statements))
        .map_err(|e| AttestorFailure::at(&path, e));
    }
    let repository = repository_for(subject, entry)?;
    let bundles = subject.uses_bundles();
    let kind = if bundles {
        EvidenceKind::Bundles
    } else {
        EvidenceKind::Attestations
    };
    let fetch = |path: String| async move {
        verifier
            .evidence(&repository, kind, subject.digest, subject.access())
            .await
            .map_err(|e| AttestorFailure::at(&path, e))
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
        let digest = subject.digest.to_owned();
        let predicate = predicate_type.to_owned();
        let found = if bundles {
            let check = BundleCheck {
                requirements: keys.into_iter().map(BundleRequirement::Key).collect(),
                options: VerifyOptions {
                    ignore_tlog: !keys_attestor.requires_tlog(),
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
            off_workers(&path, move || {
                check_bundle_attestations(&evidence, &digest, &check, trust.as_ref(), &predicate)
            })
            .await?
        } else {
            // The 2021 `key:` form keeps cosign 1.x's meaning: no log needed.
            let rekor_keys = if keys_attestor.requires_tlog() {
                Some(
                    tlog_keys(subject, keys_attestor.rekor.as_ref())
                        .map_err(|m| AttestorFailure::config(&path, m))?,
                )
            } else {
                None
            };
            let evidence = match rekor_keys {
                Some(rekor_keys) => {
                    let keys = keys.clone();
                    off_workers(&path, move || {
                        Ok(logged_attestation_layers(&evidence, &keys, &rekor_keys))
                    })
                    .await?
                    .map(std::sync::Arc::new)
                    .map_err(|message| AttestorFailure::TransparencyLog {
                        path: path.clone(),
                        message,
                    })?
                }
                None => evidence,
            };
            off_workers(&path, move || {
                check_attestations(&evidence, &digest, &keys, &predicate)
            })
            .await?
        };
        (path, found)
    } else if let Some(keyless) = entry.keyless.as_ref() {
        let path = format!("{entry_path}.keyless");
        let found = if bundles {
            let check =
                bundle_identity_check(keyless).map_err(|m| AttestorFailure::config(&path, m))?;
            let trust = subject
                .bundle_trust(keyless_overrides(keyless))
                .map_err(|m| AttestorFailure::config(&path, m))?;
            let (_, evidence) = fetch(path.clone()).await?;
            let (digest, predicate) = (subject.digest.to_owned(), predicate_type.to_owned());
            off_workers(&path, move || {
                check_bundle_attestations(&evidence, &digest, &check, trust.as_ref(), &predicate)
            })
            .await?
        } else {
            let check =
                keyless_check(keyless, entry).map_err(|m| AttestorFailure::config(&path, m))?;
            let (_, evidence) = fetch(path.clone()).await?;
            let (digest, predicate) = (subject.digest.to_owned(), predicate_type.to_owned());
            let trust = subject.trust().cloned();
            off_workers(&path, move || {
                check_keyless_attestations(&evidence, &digest, &check, trust.as_ref(), &predicate)
            })
            .await?
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

/// Each PEM block of `text` as a PEM text of its own; none when `text` is not
/// well-formed PEM (the key parser then reports why).
pub(crate) fn split_pem_blocks(text: &str) -> Vec<String> {
    pem::parse_blocks(text)
        .map(|blocks| {
            blocks
                .iter()
                .map(|block| pem::encode(&block.label, &block.der))
                .collect()
        })
        .unwrap_or_default()
}
