//! `imagegate`: verifies container image signatures for Kubernetes admission and on the
//! command line. This file only parses arguments and hands over to `command`.

use std::process::ExitCode;

use clap::Parser as _;

mod cli;
mod command;
mod registry;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(command::EXIT_USAGE),
            };
        }
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(command::EXIT_USAGE);
        }
    };
    runtime.block_on(command::run(cli))
}

/// Logs go to stderr; `IMAGEGATE_LOG` (e.g. `debug`, `imagegate_oci=trace`) sets the level.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IMAGEGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
