//! `imagegate` as a library: the command line, the subcommands and the admission
//! webhook, so that tests and benchmarks drive them in-process (`main.rs` only parses
//! arguments, installs the crypto provider and hands over to [`command::run`]).
//!
//! - [`cli`]: the clap arguments (DESIGN.md "Command line"), and their conversion into
//!   the plain configurations below; nothing else reads clap structs.
//! - [`command`]: one module per subcommand.
//! - [`engine`]: the one place the engine is wired (registry client, trust, caches).
//! - [`serve`]: the webhook (TLS, routes, limits, metrics, hot reload), configured by
//!   [`serve::Config`].
//! - [`logging`]: the tracing subscriber of every command.
//! - `values`: Kyverno CLI values files, given to the engine in place of a cluster
//!   (`apply --values-file`, `variables:` of a kyverno-test.yaml).

pub mod cli;
pub mod command;
pub mod engine;
pub mod logging;
pub mod registry;
mod resources;
pub mod serve;
mod values;
