//! `imagegate verify`: cosign-compatible signature and attestation verification.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::future::join_all;
use imagegate_engine::{SignatureCheck, Verifier, VerifyError};
use imagegate_oci::Reference;
use imagegate_sigstore::PublicKey;

use super::{EXIT_FAILED, EXIT_OK};
use crate::cli::VerifyArgs;

/// What one image's verification printed.
enum Outcome {
    Verified {
        pinned: String,
        payloads: Vec<serde_json::Value>,
    },
    Failed(String),
}

/// Verifies every image concurrently; input errors are reported before any fetch.
pub async fn run(args: VerifyArgs) -> anyhow::Result<u8> {
    let images = args
        .images
        .iter()
        .map(|text| Reference::parse(text).with_context(|| format!("image {text:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let check = SignatureCheck {
        keys: read_keys(&args.key)?,
        annotations: parse_annotations(&args.annotations)?,
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
    let verifier = Verifier::new(crate::registry::client(&args.registry)?);
    let deadline = Duration::from_secs(args.timeout.max(1));
    let outcomes = join_all(images.iter().map(|image| {
        verify_one(
            &verifier,
            image,
            &check,
            args.predicate_type.as_deref(),
            deadline,
        )
    }))
    .await;

    let mut stdout = std::io::stdout().lock();
    let mut failed = false;
    for (image, outcome) in images.iter().zip(outcomes) {
        match outcome {
            Outcome::Verified { pinned, payloads } => {
                eprintln!("\nVerification for {pinned} --");
                eprintln!("The following checks were performed on each of these signatures:");
                eprintln!("  - The cosign claims were validated");
                eprintln!("  - The signatures were verified against the specified public key");
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

async fn verify_one(
    verifier: &Verifier,
    image: &Reference,
    check: &SignatureCheck,
    predicate_type: Option<&str>,
    deadline: Duration,
) -> Outcome {
    let work = async {
        match predicate_type {
            Some(predicate_type) => verifier
                .verify_attestations(image, check, predicate_type)
                .await
                .map(|v| {
                    let payloads = v.attestations.into_iter().map(|a| a.envelope).collect();
                    (v.image, payloads)
                }),
            None => verifier.verify_signatures(image, check).await.map(|v| {
                let payloads = v.signatures.into_iter().map(|s| s.payload).collect();
                (v.image, payloads)
            }),
        }
    };
    match tokio::time::timeout(deadline, work).await {
        Ok(Ok((pinned, payloads))) => Outcome::Verified {
            pinned: format!("{}@{}", pinned.name(), pinned.digest().unwrap_or_default()),
            payloads,
        },
        Ok(Err(e)) => Outcome::Failed(describe(&e)),
        Err(_) => Outcome::Failed(format!("verification did not finish within {deadline:?}")),
    }
}

fn describe(error: &VerifyError) -> String {
    error.to_string()
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
