//! Building the engine shared by the commands that evaluate policies.

use imagegate_engine::{Engine, EngineOptions, Verifier};

use crate::cli::RegistryArgs;

/// An engine fetching with the registry settings of `args`.
pub fn build(args: &RegistryArgs) -> anyhow::Result<Engine> {
    let verifier = Verifier::new(crate::registry::client(args)?);
    Ok(Engine::new(verifier, EngineOptions::default()))
}
