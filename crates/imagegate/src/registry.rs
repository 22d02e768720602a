//! Building the registry client from its configuration.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use imagegate_oci::{ClientOptions, DockerConfig, RegistryClient};

/// How to reach registries (from `cli::RegistryArgs`, or built by hand in tests).
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Docker config.json (a file, or a directory holding config.json); `None`: the
    /// environment's (`$DOCKER_CONFIG`, then `~/.docker/config.json`).
    pub docker_config: Option<PathBuf>,
    /// Registries that may be reached over plain HTTP (loopback always may).
    pub insecure_registries: Vec<String>,
    /// Deadline of one registry request.
    pub request_timeout: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            docker_config: None,
            insecure_registries: Vec::new(),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// The client every fetch of one command shares.
pub fn client(config: &RegistryConfig) -> anyhow::Result<RegistryClient> {
    let docker_config = match &config.docker_config {
        Some(path) if path.is_dir() => DockerConfig::load(&path.join("config.json"))?,
        Some(path) => DockerConfig::load(path)?,
        None => DockerConfig::from_environment()?,
    };
    let options = ClientOptions {
        request_timeout: config.request_timeout.max(Duration::from_secs(1)),
        insecure_registries: config.insecure_registries.clone(),
        ..ClientOptions::default()
    };
    RegistryClient::new(docker_config, options).context("registry client")
}
