//! `imagegate serve`: the admission webhook (the server lives in `crate::serve`).

use crate::cli::ServeArgs;

/// Runs the webhook until SIGTERM/SIGINT; exit 0 after a graceful shutdown, 2 when it
/// cannot start (bad policies, certificate or address).
pub async fn run(args: ServeArgs) -> anyhow::Result<u8> {
    crate::serve::run(args.config()).await?;
    Ok(super::EXIT_OK)
}
