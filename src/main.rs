//! The `nxcampaign` binary: parse the command line, start logging, run, and
//! turn the result into an exit code. Everything else is in the library.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use nxcampaign::cli::Cli;
use nxcampaign::{app, campaign};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("NXCAMPAIGN_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: never in cron's mail or
        // a log file, and never when NO_COLOR asks.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(campaign::Exit::Stopped.code());
        }
    };
    let exit = match runtime.block_on(app::execute(cli)) {
        Ok(exit) => exit,
        // `orders … | head`: the reader has all it wanted.
        Err(e) if e.is_closed_pipe() => campaign::Exit::Done,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit()
        }
    };
    ExitCode::from(exit.code())
}
