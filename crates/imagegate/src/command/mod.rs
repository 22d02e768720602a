//! One module per subcommand, each `run(args) -> ExitCode`.

use std::process::ExitCode;

use crate::cli::{Cli, Command};

mod apply;
mod audit;
mod crds;
mod review;
mod serve;
mod test;
mod verify;
mod verify_bundle;

/// Everything verified / admitted.
pub const EXIT_OK: u8 = 0;
/// A verification failed or a policy denied.
pub const EXIT_FAILED: u8 = 1;
/// Usage, configuration or input error.
pub const EXIT_USAGE: u8 = 2;

/// Runs the chosen subcommand.
pub async fn run(cli: Cli) -> ExitCode {
    let code = match cli.command {
        Command::Verify(args) => verify::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Apply(args) => apply::run(args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Test(args) => test::run(args).await,
        Command::Review(args) => review::run(args).await,
        Command::VerifyBundle(args) => verify_bundle::run(args).await,
        Command::Crds(args) => crds::run(args),
    };
    match code {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
