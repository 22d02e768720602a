//! `imagegate verify`: cosign-compatible signature and attestation verification.
//!
//! As cosign v3 does, both storage forms are looked at: the legacy `.sig`/`.att` tag
//! first (one request when it verifies), then Sigstore bundles referring to the image
//! (OCI 1.1 referrers API, or the `sha256-<hex>` fallback tag). Signers are public keys
//! (`--key`) or keyless identities (`--certificate-identity[-regexp]` with
//! `--certificate-oidc-issuer[-regexp]`), or Notary Project certificates
//! (`--notary-cert`, `--notary-tsa-cert`): Notation signatures referring to the image,
//! and with `--type` the signed artifacts of that type referring to it.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::future::join_all;
use imagegate_engine::{
    Access, BundleCheck, EvidenceKind, KeylessCheck, NotaryCheck, SignatureCheck, Verifier,
    VerifyError, check_attestations, check_bundle_attestations, check_bundle_signatures,
    check_keyless_attestations, check_keyless_signatures, verify_notation_attestations,
    verify_notation_signatures,
};
use imagegate_oci::Reference;
use imagegate_sigstore::{
    BundleRequirement, IdentityRequirement, Matcher, PublicKey, TrustedRoot, VerifyOptions,
};

use super::{EXIT_FAILED, EXIT_OK};
use crate::cli::VerifyArgs;

/// What one image's verification printed.
enum Outcome {
    Verified {
        pinned: String,
        payloads: Vec<serde_json::Value>,
        keyless: bool,
        notary: bool,
    },
    Failed(String),
}

/// Who must have signed.
enum Signer {
    Keys(Vec<PublicKey>),
    Keyless(Box<KeylessCheck>),
    Notary(Box<NotaryCheck>),
}

/// Everything one run checks, shared by every image.
struct Plan {
    signer: Signer,
    check: SignatureCheck,
    trust: Option<TrustedRoot>,
    ignore_tlog: bool,
    ignore_sct: bool,
    predicate_type: Option<String>,
}

impl Plan {
    fn trust(&self) -> Option<&TrustedRoot> {
        imagegate_engine::trust::effective(self.trust.as_ref())
    }

    fn bundle_check(&self) -> BundleCheck {
        let requirements = match &self.signer {
            Signer::Keys(keys) => keys.iter().cloned().map(BundleRequirement::Key).collect(),
            Signer::Keyless(check) => vec![BundleRequirement::Identity(check.identity.clone())],
            Signer::Notary(_) => Vec::new(),
        };
        BundleCheck {
            requirements,
            options: VerifyOptions {
                ignore_tlog: self.ignore_tlog,
                ignore_sct: self.ignore_sct,
            },
        }
    }
}

/// Verifies every image concurrently; input errors are reported before any fetch.
pub async fn run(args: VerifyArgs) -> anyhow::Result<u8> {
    let images = args
        .images
        .iter()
        .map(|text| Reference::parse(text).with_context(|| format!("image {text:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let annotations = parse_annotations(&args.annotations)?;
    let signer = match &args.key {
        Some(path) => Signer::Keys(read_keys(path)?),
        None if !args.notary_cert.is_empty() => Signer::Notary(Box::new(read_notary_check(
            &args.notary_cert,
            &args.notary_tsa_cert,
        )?)),
        None => {
            let mut check = KeylessCheck::new(identity_requirement(&args)?);
            check.ignore_tlog = args.insecure_ignore_tlog;
            check.ignore_sct = args.insecure_ignore_sct;
            check.annotations = annotations.clone();
            Signer::Keyless(Box::new(check))
        }
    };
    let trust = args
        .trusted_root
        .as_deref()
        .map(TrustedRoot::from_file)
        .transpose()?;
    let check = SignatureCheck {
        keys: match &signer {
            Signer::Keys(keys) => keys.clone(),
            Signer::Keyless(_) | Signer::Notary(_) => Vec::new(),
        },
        annotations,
        signature_repository: args
            .repository
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(|r| Reference::parse(r).with_context(|| format!("--repository {r:?}")))
            .transpose()?,
    };
    if args.predicate_type.as_deref() == Some("") {
        bail!("--type must not be empty");
    }
    let plan = Plan {
        signer,
        check,
        trust,
        ignore_tlog: args.insecure_ignore_tlog,
        ignore_sct: args.insecure_ignore_sct,
        predicate_type: args.predicate_type.clone(),
    };
    let verifier = Verifier::new(std::sync::Arc::new(crate::registry::client(
        &args.registry.config(),
    )?));
    let deadline = Duration::from_secs(args.timeout.max(1));
    let outcomes = join_all(
        images
            .iter()
            .map(|image| verify_one(&verifier, image, &plan, deadline)),
    )
    .await;

    let mut stdout = std::io::stdout().lock();
    let mut failed = false;
    for (image, outcome) in images.iter().zip(outcomes) {
        match outcome {
            Outcome::Verified {
                pinned,
                payloads,
                keyless,
                notary,
            } => {
                eprintln!("\nVerification for {pinned} --");
                eprintln!("The following checks were performed on each of these signatures:");
                if notary {
                    eprintln!(
                        "  - The Notation signature was verified: integrity, authenticity (the certificate chain contains a trusted certificate), authentic timestamp, expiry"
                    );
                    eprintln!("  - Revocation of the certificates was not checked (offline)");
                } else {
                    eprintln!("  - The cosign claims were validated");
                }
                if notary {
                } else if keyless {
                    eprintln!(
                        "  - The code-signing certificate was verified using trusted certificate authority certificates"
                    );
                    if !plan.ignore_tlog {
                        eprintln!(
                            "  - Existence of the claims in the transparency log was verified offline"
                        );
                    }
                } else {
                    eprintln!("  - The signatures were verified against the specified public key");
                }
                writeln!(stdout, "{pinned}")?;
                writeln!(stdout, "{}", serde_json::to_string(&payloads)?)?;
            }
            Outcome::Failed(message) => {
                failed = true;
                eprintln!("error: {image}: {message}");
            }
        }
    }
    stdout.flush()?;
    Ok(if failed { EXIT_FAILED } else { EXIT_OK })
}

/// `--certificate-identity[-regexp]` and `--certificate-oidc-issuer[-regexp]`.
fn identity_requirement(args: &VerifyArgs) -> anyhow::Result<IdentityRequirement> {
    let subject = match (
        &args.certificate_identity,
        &args.certificate_identity_regexp,
    ) {
        (Some(id), _) => Matcher::Exact(id.clone()),
        (None, Some(pattern)) => Matcher::regex("subject", pattern)?,
        (None, None) => bail!(
            "--certificate-identity or --certificate-identity-regexp is required without --key"
        ),
    };
    let issuer = match (
        &args.certificate_oidc_issuer,
        &args.certificate_oidc_issuer_regexp,
    ) {
        (Some(issuer), _) => Matcher::Exact(issuer.clone()),
        (None, Some(pattern)) => Matcher::regex("issuer", pattern)?,
        (None, None) => bail!(
            "--certificate-oidc-issuer or --certificate-oidc-issuer-regexp is required without --key"
        ),
    };
    Ok(IdentityRequirement {
        subject,
        issuer,
        github: Default::default(),
    })
}

async fn verify_one(
    verifier: &Verifier,
    image: &Reference,
    plan: &Plan,
    deadline: Duration,
) -> Outcome {
    let keyless = matches!(plan.signer, Signer::Keyless(_));
    let notary = matches!(plan.signer, Signer::Notary(_));
    match tokio::time::timeout(deadline, verify_image(verifier, image, plan)).await {
        Ok(Ok((pinned, payloads))) => Outcome::Verified {
            pinned: format!("{}@{}", pinned.name(), pinned.digest().unwrap_or_default()),
            payloads,
            keyless,
            notary,
        },
        Ok(Err(e)) => Outcome::Failed(describe(&e)),
        Err(_) => Outcome::Failed(format!("verification did not finish within {deadline:?}")),
    }
}

/// Legacy tag first, then bundles. The legacy error is reported when no bundle exists.
async fn verify_image(
    verifier: &Verifier,
    image: &Reference,
    plan: &Plan,
) -> Result<(Reference, Vec<serde_json::Value>), VerifyError> {
    let digest = verifier.resolve(image, Access::default()).await?;
    let pinned = image.with_digest(&digest);
    let repository = plan.check.signature_repository.as_ref().unwrap_or(image);
    if let Signer::Notary(check) = &plan.signer {
        let payloads = verify_notation(verifier, image, &digest, repository, check, plan).await?;
        return Ok((pinned, payloads));
    }
    let legacy = verify_legacy(verifier, repository, &digest, plan).await;
    let legacy_error = match legacy {
        Ok(payloads) => return Ok((pinned, payloads)),
        Err(e) if e.is_registry_failure() => return Err(e),
        Err(e) => e,
    };
    if !plan.check.annotations.is_empty() {
        // Bundles carry no simple-signing payload, so no annotations to check.
        return Err(legacy_error);
    }
    let evidence = verifier
        .evidence(
            repository,
            EvidenceKind::Bundles,
            &digest,
            Access::default(),
        )
        .await?;
    let bundle_check = plan.bundle_check();
    let verified = match &plan.predicate_type {
        Some(predicate_type) => check_bundle_attestations(
            &evidence,
            &digest,
            &bundle_check,
            plan.trust(),
            predicate_type,
        )
        .map(|found| found.into_iter().map(|a| a.envelope).collect()),
        None => {
            check_bundle_signatures(&evidence, &digest, &bundle_check, plan.trust()).map(|_| {
                evidence
                    .layers
                    .iter()
                    .filter_map(|l| serde_json::from_slice(&l.blob).ok())
                    .collect()
            })
        }
    };
    match verified {
        Ok(payloads) => Ok((pinned, payloads)),
        Err(VerifyError::NoSignatures) => Err(legacy_error),
        Err(VerifyError::NoMatchingAttestations { .. })
            if !matches!(legacy_error, VerifyError::NoMatchingAttestations { .. }) =>
        {
            Err(legacy_error)
        }
        Err(e) => Err(e),
    }
}

/// Notation signatures of the image (printed: signer, envelope, times), or with
/// `--type` the statements of the signed artifacts of that type.
async fn verify_notation(
    verifier: &Verifier,
    image: &Reference,
    digest: &str,
    repository: &Reference,
    check: &NotaryCheck,
    plan: &Plan,
) -> Result<Vec<serde_json::Value>, VerifyError> {
    if let Some(artifact_type) = &plan.predicate_type {
        let statements = verify_notation_attestations(
            verifier,
            repository,
            digest,
            check.clone(),
            artifact_type,
            Access::default(),
        )
        .await?;
        return Ok(statements.into_iter().map(|s| s.statement).collect());
    }
    let signatures = verify_notation_signatures(
        verifier,
        image,
        digest,
        repository,
        check.clone(),
        Access::default(),
    )
    .await?;
    Ok(signatures
        .into_iter()
        .map(|s| {
            serde_json::json!({
                "signer": s.signer,
                "envelope": s.format.name(),
                "signingScheme": s.signing_scheme.name(),
                "algorithm": s.algorithm.to_string(),
                "signingTime": s.signing_time,
                "authenticSigningTime": s.authentic_signing_time,
                "timestamped": s.timestamp.is_some(),
                "expiry": s.expiry,
                "certificateChainSha256": s.chain_sha256,
                "revocation": "not checked",
            })
        })
        .collect())
}

async fn verify_legacy(
    verifier: &Verifier,
    repository: &Reference,
    digest: &str,
    plan: &Plan,
) -> Result<Vec<serde_json::Value>, VerifyError> {
    match &plan.predicate_type {
        Some(predicate_type) => {
            let evidence = verifier
                .evidence(
                    repository,
                    EvidenceKind::Attestations,
                    digest,
                    Access::default(),
                )
                .await?;
            let found = match &plan.signer {
                Signer::Keys(keys) => check_attestations(&evidence, digest, keys, predicate_type),
                Signer::Notary(_) => return Err(VerifyError::NoSignatures),
                Signer::Keyless(check) => check_keyless_attestations(
                    &evidence,
                    digest,
                    check,
                    plan.trust(),
                    predicate_type,
                ),
            }?;
            Ok(found.into_iter().map(|a| a.envelope).collect())
        }
        None => {
            let evidence = verifier
                .evidence(
                    repository,
                    EvidenceKind::Signatures,
                    digest,
                    Access::default(),
                )
                .await?;
            let found = match &plan.signer {
                Signer::Keys(_) | Signer::Notary(_) => {
                    imagegate_engine::check_signatures(&evidence, digest, &plan.check)
                }
                Signer::Keyless(check) => {
                    check_keyless_signatures(&evidence, digest, check, plan.trust())
                }
            }?;
            Ok(found.into_iter().map(|s| s.payload).collect())
        }
    }
}

fn describe(error: &VerifyError) -> String {
    error.to_string()
}

/// `--notary-cert` and `--notary-tsa-cert` files.
fn read_notary_check(
    certs: &[std::path::PathBuf],
    tsa_certs: &[std::path::PathBuf],
) -> anyhow::Result<NotaryCheck> {
    let read = |paths: &[std::path::PathBuf]| {
        paths
            .iter()
            .map(|path| {
                std::fs::read(path)
                    .with_context(|| format!("cannot read certificate file {}", path.display()))
            })
            .collect::<anyhow::Result<Vec<_>>>()
    };
    let (certs, tsa_certs) = (read(certs)?, read(tsa_certs)?);
    NotaryCheck::read(
        certs.iter().map(Vec::as_slice),
        tsa_certs.iter().map(Vec::as_slice),
    )
    .map_err(|e| anyhow::anyhow!("--notary-cert/--notary-tsa-cert: {e}"))
}

fn read_keys(path: &std::path::Path) -> anyhow::Result<Vec<PublicKey>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    PublicKey::from_pem(&text).with_context(|| format!("key file {}", path.display()))
}

fn parse_annotations(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => bail!("annotation {pair:?} is not KEY=VALUE"),
        })
        .collect()
}
