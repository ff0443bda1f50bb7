//! The `latch` binary.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = latch::cli::Cli::parse();
    // sspi `#[instrument]`s its functions with their arguments (the buffers it seals hold
    // envelopes, a grant's password among them). Its Debug output showed no secret in our
    // trace test, but that is its choice to change: it is silenced whatever the filter says.
    let filter = EnvFilter::try_new(cli.log_filter())
        .unwrap_or_else(|_| EnvFilter::new("warn"))
        .add_directive("sspi=off".parse().expect("a valid directive"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
