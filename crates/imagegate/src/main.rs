//! `imagegate`: verifies container image signatures for Kubernetes admission and on the
//! command line. This file only parses arguments and hands over to the library.

use std::process::ExitCode;

use clap::Parser as _;
use imagegate::{cli, command, logging};

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
    // The one crypto provider of every TLS connection (server and registry clients).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    logging::init(&cli.command);
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
