//! `imagegate`: verifies container image signatures for Kubernetes admission and on the
//! command line. This file only parses arguments and hands over to `command`.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser as _;

mod cli;
mod command;
mod engine;
mod registry;
mod resources;
mod serve;

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
    init_logging(&cli.command);
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
/// `serve` logs at `info` by default, as JSON unless `--log-format text`.
fn init_logging(command: &cli::Command) {
    let (default_level, json) = match command {
        cli::Command::Serve(args) => ("info", args.log_format == cli::LogFormat::Json),
        _ => ("warn", false),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("IMAGEGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        // A closed stderr must not turn every log line into a panic (the default
        // reports write errors with eprintln!, which panics then).
        .log_internal_errors(false)
        .with_target(false);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.init();
    }
}
