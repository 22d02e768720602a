//! `imagegate review`: answers one AdmissionReview from stdin, offline, exactly as the
//! webhook would for that phase.

use std::io::{Read as _, Write as _};

use anyhow::Context as _;
use imagegate_engine::Phase;
use imagegate_engine::admission::{AdmissionReview, MAX_REVIEW_BYTES, review};

use super::{EXIT_FAILED, EXIT_OK};
use crate::cli::{ReviewArgs, ReviewPhase};

/// Reads the review, evaluates the phase, prints the answer.
pub async fn run(args: ReviewArgs) -> anyhow::Result<u8> {
    let mut input = Vec::new();
    std::io::stdin()
        .take(MAX_REVIEW_BYTES as u64 + 1)
        .read_to_end(&mut input)
        .context("cannot read the AdmissionReview from stdin")?;
    if input.len() > MAX_REVIEW_BYTES {
        anyhow::bail!("AdmissionReview larger than {MAX_REVIEW_BYTES} bytes");
    }
    let request = AdmissionReview::parse(&input)?;
    let policies = crate::resources::load_policies(&args.policy)?;
    let engine = crate::engine::build(
        &args.registry.engine_config(&args.trust),
        Default::default(),
    )?;
    let phase = match args.phase {
        ReviewPhase::Mutate => Phase::Mutate,
        ReviewPhase::Validate => Phase::Validate,
    };
    let answer = review(&engine, &policies, &request, phase).await.review;
    let allowed = answer.response.as_ref().is_some_and(|r| r.allowed);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?;
    Ok(if allowed { EXIT_OK } else { EXIT_FAILED })
}
