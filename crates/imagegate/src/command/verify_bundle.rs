//! `imagegate verify-bundle`: verifies one Sigstore bundle for a file or a `sha256:`
//! digest, offline, following the sigstore-conformance CLI protocol.
//!
//! Exit codes: 0 verified; 1 the bundle does not verify (one `error:` line on stderr);
//! 2 usage or input errors (unreadable files, a key or trusted root that does not parse,
//! a malformed digest), reported by the caller from the returned error.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use imagegate_sigstore::{
    Artifact, BundleRequirement, IdentityRequirement, PublicKey, Signer, TrustedRoot,
    VerifiedBundle, verify_bundle,
};
use serde_json::json;

use super::{EXIT_FAILED, EXIT_OK};
use crate::cli::VerifyBundleArgs;

/// Largest artifact file read into memory (1 GiB).
const MAX_ARTIFACT_SIZE: u64 = 1 << 30;

/// Verifies the bundle; prints a JSON summary of the signer on stdout when it verifies.
pub async fn run(args: VerifyBundleArgs) -> anyhow::Result<u8> {
    let requirement = requirement(&args)?;
    let trust = match &args.trusted_root {
        Some(path) => TrustedRoot::from_file(path)?,
        None => TrustedRoot::public_good()?,
    };
    let bundle = std::fs::read(&args.bundle)
        .with_context(|| format!("cannot read bundle {}", args.bundle.display()))?;
    let artifact_bytes;
    let artifact = if args.artifact.starts_with("sha256:") {
        Artifact::from_digest(&args.artifact)?
    } else {
        artifact_bytes = read_artifact(Path::new(&args.artifact))?;
        Artifact::Bytes(&artifact_bytes)
    };

    match verify_bundle(&bundle, artifact, &trust, &requirement) {
        Ok(verified) => {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{}", summary(&verified))?;
            stdout.flush()?;
            eprintln!("Verified OK");
            Ok(EXIT_OK)
        }
        Err(e) => {
            let message = e.to_string().replace(['\n', '\r'], " ");
            eprintln!(
                "error: bundle {} does not verify: {message}",
                args.bundle.display()
            );
            Ok(EXIT_FAILED)
        }
    }
}

/// The signer the bundle must prove, from the flags (clap enforces "key xor identity").
fn requirement(args: &VerifyBundleArgs) -> anyhow::Result<BundleRequirement> {
    match (
        &args.key,
        &args.certificate_identity,
        &args.certificate_oidc_issuer,
    ) {
        (Some(path), None, None) => Ok(BundleRequirement::Key(read_key(path)?)),
        (None, Some(identity), Some(issuer)) => Ok(BundleRequirement::Identity(
            IdentityRequirement::exact(identity.as_str(), issuer.as_str()),
        )),
        _ => {
            bail!("give either --key, or both --certificate-identity and --certificate-oidc-issuer")
        }
    }
}

/// Reads the one public key of a PEM file.
fn read_key(path: &Path) -> anyhow::Result<PublicKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key {}", path.display()))?;
    let mut keys = PublicKey::from_pem(&text).with_context(|| format!("key {}", path.display()))?;
    if keys.len() != 1 {
        bail!(
            "key {}: expected one public key, found {}",
            path.display(),
            keys.len()
        );
    }
    Ok(keys.remove(0))
}

fn read_artifact(path: &Path) -> anyhow::Result<Vec<u8>> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read artifact {}", path.display()))?
        .len();
    if size > MAX_ARTIFACT_SIZE {
        bail!(
            "artifact {} is too large: {size} bytes (limit {MAX_ARTIFACT_SIZE}); pass its sha256: digest instead",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("cannot read artifact {}", path.display()))
}

/// One JSON line: who signed, when, and the statement's predicate type for DSSE.
fn summary(verified: &VerifiedBundle) -> serde_json::Value {
    let signer = match &verified.signer {
        Signer::Certificate(identity) => json!({
            "subjectAlternativeNames": identity.san,
            "issuer": identity.issuer,
        }),
        Signer::Key { fingerprint } => json!({ "key": fingerprint }),
    };
    json!({
        "mediaType": verified.media_type,
        "signer": signer,
        "integratedTime": verified.integrated_time,
        "timestamps": verified.timestamps,
        "predicateType": verified.statement.as_ref().map(|s| &s.predicate_type),
    })
}
