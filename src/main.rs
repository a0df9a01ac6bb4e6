//! The `nxcampaign` binary: parse the command line, start logging, run, and
//! turn the result into an exit code. Everything else is in the library.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use nxcampaign::cli::{Cli, Color, LogFormat};
use nxcampaign::error::{self, Error};
use nxcampaign::output::{Output, Voice};
use nxcampaign::{clock, cmd};

fn main() -> ExitCode {
    fewer_malloc_arenas();
    let cli = nxcampaign::cli::parse();
    init_logs(&cli);
    let output = Output::new(
        cli.quiet,
        match cli.log_format {
            LogFormat::Text => Voice::Text,
            LogFormat::Json => Voice::Json,
        },
    );
    let result = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(cmd::execute(cli, &output)),
        Err(e) => Err(Error::Runtime(e)),
    };
    match &result {
        Err(e) if !e.is_closed_pipe() => output.error(e),
        _ => {}
    }
    ExitCode::from(error::process_exit_code(&result))
}

/// glibc's allocator gives threads arenas of their own (up to eight per
/// core), and memory one thread frees in another's arena stays there:
/// the rows the reader thread makes and the writer frees grew the peak
/// memory of a 10-million-row `run` from 57 to 67 MiB. Two arenas keep
/// it flat, at the same speed.
#[allow(unsafe_code)]
fn fewer_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` sets one of the allocator's parameters; it is
    // called first thing, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Log times as every other line shows them: UTC, to the millisecond,
/// always the same width.
struct LogTime;

impl tracing_subscriber::fmt::time::FormatTime for LogTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", clock::rfc3339(clock::now_ms()))
    }
}

/// Logs on stderr: the level from -q/-v (or `NXCAMPAIGN_LOG`, a tracing
/// filter, which wins), coloured per --color, as text or JSON lines.
fn init_logs(cli: &Cli) {
    use std::io::IsTerminal as _;
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "nxcampaign=info,warn",
        (false, 2) => "nxcampaign=debug,info",
        (false, _) => "trace",
    };
    let filter =
        EnvFilter::try_from_env("NXCAMPAIGN_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let ansi = match cli.color {
        Color::Always => true,
        Color::Never => false,
        // Only for a person at a terminal: never in cron's mail or a log
        // file, and never when NO_COLOR asks.
        Color::Auto => {
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_timer(LogTime)
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(ansi).init(),
        LogFormat::Json => logs.json().with_ansi(false).init(),
    }
}
