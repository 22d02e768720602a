//! Building the registry client from command-line arguments.

use std::time::Duration;

use anyhow::Context as _;
use imagegate_oci::{ClientOptions, DockerConfig, RegistryClient};

use crate::cli::RegistryArgs;

/// The client every fetch of one command shares.
pub fn client(args: &RegistryArgs) -> anyhow::Result<RegistryClient> {
    let docker_config = match &args.docker_config {
        Some(path) if path.is_dir() => DockerConfig::load(&path.join("config.json"))?,
        Some(path) => DockerConfig::load(path)?,
        None => DockerConfig::from_environment()?,
    };
    let options = ClientOptions {
        request_timeout: Duration::from_secs(args.registry_timeout.max(1)),
        insecure_registries: args.allow_insecure_registry.clone(),
        ..ClientOptions::default()
    };
    RegistryClient::new(docker_config, options).context("registry client")
}
