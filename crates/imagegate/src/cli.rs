//! Command-line arguments (the contract of DESIGN.md "Command line").

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Verifies container image signatures (Cosign, Sigstore) under Kyverno verifyImages policies.
#[derive(Debug, Parser)]
#[command(name = "imagegate", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Verify cosign signatures (or attestations with --type) of images in a registry.
    Verify(VerifyArgs),
}

/// How to reach registries; shared by every command that fetches.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Docker config.json with registry credentials (a file, or a directory holding
    /// config.json). Default: $DOCKER_CONFIG/config.json, then ~/.docker/config.json.
    #[arg(long, value_name = "FILE")]
    pub docker_config: Option<PathBuf>,
    /// Registry (host or host:port) that may be reached over plain HTTP. Loopback
    /// registries always may.
    #[arg(long, value_name = "HOST")]
    pub allow_insecure_registry: Vec<String>,
    /// Deadline of one registry request, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub registry_timeout: u64,
}

/// `imagegate verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Public key file (PEM); several PEM blocks are several keys, any may have signed.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Repository holding the signatures (as COSIGN_REPOSITORY).
    #[arg(long, value_name = "REGISTRY/REPOSITORY", env = "COSIGN_REPOSITORY")]
    pub repository: Option<String>,
    /// Annotation the signature payload must carry (repeatable).
    #[arg(short = 'a', long = "annotations", value_name = "KEY=VALUE")]
    pub annotations: Vec<String>,
    /// Verify attestations of this predicate type (URI or cosign short name such as
    /// slsaprovenance) instead of signatures.
    #[arg(long = "type", value_name = "PREDICATE_TYPE")]
    pub predicate_type: Option<String>,
    /// Deadline for verifying each image, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
    /// Registry access.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Images to verify (tag or digest references).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}
