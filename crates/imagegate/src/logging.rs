//! Logging of every command: stderr, level from `IMAGEGATE_LOG`.

use std::io::IsTerminal as _;

use crate::cli;

/// Logs go to stderr; `IMAGEGATE_LOG` (e.g. `debug`, `imagegate_oci=trace`) sets the level.
/// `serve` logs at `info` by default, as JSON unless `--log-format text`.
pub fn init(command: &cli::Command) {
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
