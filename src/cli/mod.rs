//! The command line, as clap sees it; nothing here runs anything.
//!
//! - `manual`: each command's exit status and environment, for `--help`
//!   and `man`.

pub mod manual;

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Parser, Subcommand};

use crate::clock::parse_duration;

use crate::output::tables::OrdersFormat;
#[cfg(feature = "sandbox")]
use crate::sandbox;

/// The heading of the options every command takes.
const GLOBAL: &str = "Global options";

/// The command line of this process, with each command's exit status and
/// environment in its `--help`; exits (2) on a command line that is wrong.
pub fn parse() -> Cli {
    use clap::FromArgMatches as _;
    let matches = manual::command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Outbound AI call campaigns on NXLink: contact files in, signed
/// createandcall batches out, every order recorded in a ledger.
#[derive(Debug, Parser)]
#[command(name = "nxcampaign", version, about, long_about = None)]
pub struct Cli {
    /// The ledger: a SQLite file, or a PostgreSQL server
    /// (`postgres://user@host/db`). Default: the job's `ledger` key, else
    /// `nxcampaign.db` beside the job file; for commands without a job
    /// file, `nxcampaign.db` in the current folder. Only `run`, `ingest`
    /// and `migrate` create a ledger.
    #[arg(
        long,
        global = true,
        env = "NXCAMPAIGN_DB",
        value_name = "FILE|URL",
        help_heading = GLOBAL
    )]
    pub db: Option<String>,

    /// Silent when all is well: no notes or progress, and `run` and
    /// `ingest` print their table only when something needs a look.
    /// Warnings and errors still show.
    #[arg(short, long, global = true, conflicts_with = "verbose", help_heading = GLOBAL)]
    pub quiet: bool,

    /// More log: -v what a run does (ledger, gateway, each batch), -vv
    /// details, -vvv everything (SQL included). NXCAMPAIGN_LOG, a
    /// tracing filter, wins.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = GLOBAL)]
    pub verbose: u8,

    /// Colour in logs: auto (only on a terminal, and not with NO_COLOR),
    /// always or never.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto, help_heading = GLOBAL)]
    pub color: Color,

    /// Every line on stderr as text, or as one JSON object per line
    /// (notes, progress, warnings, errors and -v logs alike).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, help_heading = GLOBAL)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ingest what is new in the job's contact file, plan the redials now
    /// due, then send every due batch.
    Run(RunArgs),
    /// Dry run: read the job and its whole contact file as `run` would,
    /// against the current ledger, and say what a run would send; writes
    /// nothing to the ledger and sends nothing.
    Check(CheckArgs),
    /// Ingest what is new in the job's contact file and plan the redials
    /// now due, without sending anything (no credentials needed): check a
    /// file before its campaign.
    Ingest(IngestArgs),
    /// Rows read, counts of orders and batches by state, call outcomes,
    /// and where contacts stand with redials.
    Status(StatusArgs),
    /// Per-order outcomes, in input order.
    Orders(OrdersArgs),
    /// Put uncertain or failed batches back to pending; the next run sends them.
    ///
    /// Re-sending an uncertain batch may call its contacts twice if the
    /// vendor did receive it: check the vendor's call records first.
    Resend(ResendArgs),
    /// One campaign on one page: counts by state, requests over time,
    /// attempts by outcome, the slowest attempts, the batches that need a
    /// look, why rows were set aside.
    Report(ReportArgs),
    /// Cancel pending batches: they are never sent (a final state);
    /// without --batch, also stop the campaign's redials.
    Cancel(CancelArgs),
    /// Every campaign of the ledger: created and last run, job and contact
    /// files, orders by state.
    Campaigns(CampaignsArgs),
    /// Delete a campaign and everything recorded of it; refused for one
    /// that sent anything (its record is what keeps people from being
    /// called twice) unless --i-know-it-was-sent.
    Forget(ForgetArgs),
    /// The do-not-call list: numbers never called, in any campaign of the
    /// ledger. It applies when orders are planned and again just before
    /// each batch is sent.
    Suppress(SuppressArgs),
    /// Create the ledger, or bring its schema up to date (every command
    /// does this too; this one does nothing else, for a database owner to
    /// run before the runners).
    Migrate(MigrateArgs),
    /// Print a completion script for SHELL (bash, zsh, fish, elvish,
    /// powershell), e.g. `nxcampaign completions bash > /etc/bash_completion.d/nxcampaign`.
    Completions(CompletionsArgs),
    /// Print the manual page (roff), e.g. `nxcampaign man | man -l -`, or
    /// one command's (`nxcampaign man run`).
    Man(ManArgs),
    /// Read the vendor's call records (`cdr/page`: AI outbound calls, a day
    /// at a time, 100 a page, under the job's rate limit) into the ledger,
    /// as the webhook would deliver them: a backstop for missed
    /// deliveries, safe to run from cron.
    Sync(SyncArgs),
    /// Settle `uncertain` batches from call records: a call for any of a
    /// batch's orders (in the ledger, or at the vendor now) proves it
    /// arrived, so it becomes accepted. One without any call long after it
    /// was sent is reported "probably lost", and re-queued only with
    /// --resend-lost. Safe to run from cron.
    Reconcile(ReconcileArgs),
    /// Receive NXLink's call-log webhook: each call POSTed to
    /// `/nxlink/calls` is stored in the ledger (once per callId) before it
    /// is answered 200. `GET /healthz` says it runs. Paste
    /// `<public base URL>/nxlink/calls` into the console.
    Webhook(WebhookArgs),
    /// Serve a local NXLink stand-in (for trials and tests; it calls no one).
    #[cfg(feature = "sandbox")]
    Sandbox(SandboxArgs),
    /// Run the example campaign against an in-process sandbox.
    #[cfg(feature = "sandbox")]
    Demo,
}

/// The arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The job file (TOML).
    pub job: PathBuf,
    /// Stop starting batches after this long (e.g. 90s, 10m, 1h30m) and
    /// exit 75, as SIGTERM would: for cron slots.
    #[arg(long, value_parser = parse_duration)]
    pub max_runtime: Option<Duration>,
    /// Write the rows this run set aside (invalid, duplicate, suppressed) to FILE, as
    /// CSV: the original row's columns, then `line` and `reason`.
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Send at most N orders in this run (whole batches: the batch that
    /// would pass N waits for the next run); exit 75 when more waits.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Refuse (exit 2, nothing sent) to send more than N orders in this
    /// run unless --yes is given; overrides the job's
    /// `limits.confirm_above`. The file is read first to count them.
    #[arg(long, value_name = "N")]
    pub confirm_above: Option<u64>,
    /// Send even above --confirm-above / `limits.confirm_above`.
    #[arg(long)]
    pub yes: bool,
    /// Write the run's summary as JSON to FILE (replaced whole): orders
    /// and batches by state, attempts, retries by reason, elapsed, exit
    /// code; written whatever the ending.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
    /// Write the run's metrics in Prometheus' text format to FILE
    /// (replaced whole), with the time of the last successful run: for
    /// node_exporter's textfile collector.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
}

/// The arguments of `check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The job file (TOML).
    pub job: PathBuf,
    /// Write every row a run would set aside (invalid, duplicate, suppressed) to
    /// FILE, as CSV: the original row's columns, then `line` and
    /// `reason`.
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
}

/// The arguments of `ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// The job file (TOML).
    pub job: PathBuf,
}

/// The arguments of `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Only this campaign (default: every campaign in the ledger); a job
    /// file (`*.toml`) names its campaign and its ledger.
    pub campaign: Option<String>,
    /// One JSON object per campaign, one per line (`--format jsonl`).
    #[arg(long)]
    pub json: bool,
    /// table; csv (a row of counts per campaign); or jsonl (one JSON
    /// object per line; `json` works too).
    #[arg(long, value_enum, default_value_t = OrdersFormat::Table)]
    pub format: OrdersFormat,
}

/// The arguments of `orders`.
#[derive(Debug, clap::Args)]
pub struct OrdersArgs {
    /// The campaign's name, or its job file (`*.toml`), which names its
    /// ledger too.
    pub campaign: String,
    /// Only orders in this state (pending, sending, accepted, rejected,
    /// failed, uncertain, cancelled, invalid, duplicate, suppressed;
    /// any case).
    #[arg(long)]
    pub state: Option<String>,
    #[arg(long, value_enum, default_value_t = OrdersFormat::Table)]
    pub format: OrdersFormat,
    /// Write to FILE instead of stdout (it appears whole, when done).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Only orders whose batch changed at or after TIME (a date, from
    /// its start, UTC, or an RFC 3339 time); orders set aside at
    /// ingest have no such time and are left out.
    #[arg(long, value_name = "TIME", value_parser = crate::clock::parse_since_ms)]
    pub since: Option<i64>,
    /// Only orders with an answered call, with calls none answered, or
    /// with no call recorded.
    #[arg(long, value_enum)]
    pub call: Option<CallArg>,
}

/// The arguments of `resend`.
#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("which").required(true).args(["uncertain", "failed", "rejected"])))]
pub struct ResendArgs {
    /// The campaign's name, or its job file (`*.toml`), which names its
    /// ledger too.
    pub campaign: String,
    /// Re-queue the batches that may or may not have arrived.
    #[arg(long)]
    pub uncertain: bool,
    /// Re-queue the batches whose retries ran out.
    #[arg(long)]
    pub failed: bool,
    /// Re-queue the batches the vendor refused (after the job was fixed:
    /// the next run sends them with the job's settings as they are then).
    #[arg(long)]
    pub rejected: bool,
    /// Only this batch (repeatable); default: every batch in that state.
    #[arg(long = "batch", value_name = "SEQ")]
    pub batches: Vec<crate::batch::BatchSeq>,
}

/// The arguments of `report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The campaign's name, or its job file (`*.toml`).
    pub campaign: String,
    /// Also write the page as self-contained HTML (inline SVG charts,
    /// nothing fetched) to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// The arguments of `cancel`.
#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// The campaign's name, or its job file (`*.toml`).
    pub campaign: String,
    /// Only this batch (repeatable); default: every pending batch.
    #[arg(long = "batch", value_name = "SEQ")]
    pub batches: Vec<crate::batch::BatchSeq>,
}

/// The arguments of `campaigns`.
#[derive(Debug, clap::Args)]
pub struct CampaignsArgs {
    /// One JSON object per campaign, one per line.
    #[arg(long)]
    pub json: bool,
}

/// The arguments of `forget`.
#[derive(Debug, clap::Args)]
pub struct ForgetArgs {
    /// The campaign's name, or its job file (`*.toml`).
    pub campaign: String,
    /// Delete it even though requests of it were sent.
    #[arg(long = "i-know-it-was-sent")]
    pub sent_anyway: bool,
}

/// The arguments of `suppress`.
#[derive(Debug, clap::Args)]
pub struct SuppressArgs {
    /// A job file (`*.toml`) whose ledger holds the list; or name the
    /// ledger with --db (or NXCAMPAIGN_DB). One of them is needed: a
    /// list in a ledger no campaign reads protects no one.
    #[arg(long, value_name = "JOB")]
    pub job: Option<PathBuf>,
    #[command(subcommand)]
    pub action: SuppressAction,
}

/// The arguments of `migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// A job file (`*.toml`) whose ledger to migrate; default: `--db`.
    pub job: Option<PathBuf>,
}

/// The arguments of `completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// The arguments of `sync`.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// The job file (TOML): gateway, credentials, campaign, ledger.
    pub job: PathBuf,
    /// Read from TIME (a date, from its start, UTC, or an RFC 3339
    /// time). Default: six hours before where the last sync ended, or
    /// just before the campaign's first request.
    #[arg(long, value_name = "TIME", value_parser = crate::clock::parse_since_ms)]
    pub since: Option<i64>,
}

/// The arguments of `reconcile`.
#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    /// The job file (TOML).
    pub job: PathBuf,
    /// A batch with no call this long after it was sent is probably
    /// lost (startupType 3 calls start within minutes).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1h")]
    pub lost_after: Duration,
    /// Re-queue the batches that are probably lost (the next run sends
    /// them). Never inside the vendor's window of a request that may
    /// still arrive. Needs the credentials: a batch is re-sent only
    /// after the vendor's call records were asked too.
    #[arg(long)]
    pub resend_lost: bool,
}

/// The arguments of `webhook`.
#[derive(Debug, clap::Args)]
pub struct WebhookArgs {
    /// Where to listen, e.g. 127.0.0.1:8090 behind a reverse proxy.
    #[arg(long, value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// The environment variable holding the secret the vendor sends in
    /// the `token` header (default NXCAMPAIGN_WEBHOOK_TOKEN). It must be
    /// set and not empty: the receiver refuses to start open.
    #[arg(long, value_name = "VAR", conflicts_with = "no_token")]
    pub token_env: Option<String>,
    /// Take calls without checking a token: only behind a proxy that
    /// authenticates the vendor itself.
    #[arg(long)]
    pub no_token: bool,
    /// A job file: its ledger is the one written (else --db, or
    /// nxcampaign.db in the current folder).
    #[arg(long, value_name = "JOB")]
    pub job: Option<PathBuf>,
    /// A client that takes longer to send its request gets 408 (or,
    /// still sending its headers, its connection closed). Default 30s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub request_timeout: Option<Duration>,
}

#[cfg(feature = "sandbox")]
/// The arguments of `sandbox`.
#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    #[arg(long, default_value = sandbox::DEFAULT_ACCESS_KEY)]
    pub access_key: String,
    /// The secret requests must be signed with.
    #[arg(long, env = "NXLINK_SANDBOX_SECRET", hide_env_values = true, default_value = sandbox::DEFAULT_ACCESS_SECRET)]
    pub access_secret: String,
    /// Faults (change them while it runs: POST /_sandbox/faults with the
    /// same names as JSON keys).
    #[command(flatten)]
    pub faults: FaultArgs,
}

/// The arguments of `man`.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// The command whose page to print; default: the overview.
    pub command: Option<String>,
}

/// `orders --call`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CallArg {
    Answered,
    Unanswered,
    None,
}

impl From<CallArg> for crate::ledger::CallFilter {
    fn from(arg: CallArg) -> Self {
        match arg {
            CallArg::Answered => crate::ledger::CallFilter::Answered,
            CallArg::Unanswered => crate::ledger::CallFilter::Unanswered,
            CallArg::None => crate::ledger::CallFilter::None,
        }
    }
}

/// When logs are coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What `suppress` does.
#[derive(Debug, Subcommand)]
pub enum SuppressAction {
    /// Add numbers, or files of numbers (one per line; the first field of
    /// a CSV line), to the list; numbers already on it are renewed.
    Add {
        /// Numbers (`+852 5123 4567`, or national with --country) or files.
        #[arg(required = true, value_name = "NUMBER|FILE")]
        numbers: Vec<String>,
        #[command(flatten)]
        entry: SuppressEntryArgs,
    },
    /// Add the numbers of a (large) file: the same as `add FILE`.
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        #[command(flatten)]
        entry: SuppressEntryArgs,
    },
    /// Take numbers off the list (the numbers of the campaigns' own list
    /// files stay: they follow their files).
    Remove {
        #[arg(required = true, value_name = "NUMBER|FILE")]
        numbers: Vec<String>,
        /// The country of national numbers.
        #[arg(long, value_name = "CC")]
        country: Option<String>,
    },
    /// Print the list, in number order.
    List {
        #[arg(long, value_enum, default_value_t = ListFormat::Csv)]
        format: ListFormat,
    },
}

/// How numbers are read, and what is recorded with them.
#[derive(Debug, Clone, clap::Args)]
pub struct SuppressEntryArgs {
    /// The country of national numbers; without it only international
    /// numbers (`+…`, `00…`) are accepted.
    #[arg(long, value_name = "CC")]
    pub country: Option<String>,
    /// Why (shown as the orders' reason, e.g. "asked not to be called").
    #[arg(long)]
    pub reason: Option<String>,
    /// The entry applies through this day (UTC), or until this time
    /// (`2026-12-31`, `2026-12-31T18:00:00Z`); default: for good. A number
    /// already on the list keeps the stronger entry: for good beats a date,
    /// a later date beats an earlier one (`suppress remove` weakens).
    #[arg(long, value_name = "DATE", value_parser = crate::clock::parse_until_ms)]
    pub until: Option<i64>,
    /// The column of a list file that holds the numbers, by its header
    /// (default: a header naming a phone column, else the first field
    /// holding a number).
    #[arg(long, value_name = "NAME")]
    pub column: Option<String>,
}

/// `suppress list`'s formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Csv,
    /// One JSON object per line.
    Json,
}

/// The sandbox's faults as flags; probabilities are per request, 0 to 1.
#[cfg(feature = "sandbox")]
#[derive(Debug, Clone, clap::Args)]
pub struct FaultArgs {
    /// Close the connection without processing.
    #[arg(long, default_value_t = 0.0)]
    pub drop_before: f64,
    /// Accept the task, then close the connection without replying.
    #[arg(long, default_value_t = 0.0)]
    pub drop_after: f64,
    /// Answer 503 with Retry-After, unprocessed.
    #[arg(long, default_value_t = 0.0)]
    pub http503: f64,
    /// Answer 429 with Retry-After, unprocessed.
    #[arg(long, default_value_t = 0.0)]
    pub http429: f64,
    /// Answer code 99, unprocessed.
    #[arg(long, default_value_t = 0.0)]
    pub code99: f64,
    /// Answer code 88, unprocessed.
    #[arg(long, default_value_t = 0.0)]
    pub code88: f64,
    /// Create the task, then answer code 88.
    #[arg(long, default_value_t = 0.0)]
    pub code88_processed: f64,
    /// Create the task, then answer code 99.
    #[arg(long, default_value_t = 0.0)]
    pub code99_processed: f64,
    /// Create the task, then answer HTTP 500.
    #[arg(long, default_value_t = 0.0)]
    pub http500_processed: f64,
    /// After accepting, wait this many milliseconds before replying...
    #[arg(long, default_value_t = 0)]
    pub slow_ms: u64,
    /// ...for this share of the requests.
    #[arg(long, default_value_t = 1.0)]
    pub slow_share: f64,
    /// Run the sandbox's clock this many milliseconds ahead (negative: behind).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub skew_ms: i64,
    /// Refuse a callList longer than this with 41000.
    #[arg(long)]
    pub max_list: Option<usize>,
    /// Retry-After seconds sent with 503 and 429.
    #[arg(long, default_value_t = 1)]
    pub retry_after_s: u64,
    /// Answer every request with this code, unprocessed.
    #[arg(long, allow_negative_numbers = true)]
    pub reply_code: Option<i64>,
    /// The HTTP status of every reply with an NXLink body (default 200).
    #[arg(long)]
    pub reply_status: Option<u16>,
    /// Hold every request this many milliseconds before looking at it.
    #[arg(long, default_value_t = 0)]
    pub stall_ms: u64,
    /// Send no Date header.
    #[arg(long)]
    pub omit_date: bool,
    /// How far a request's ts may be from the sandbox's clock.
    #[arg(long, default_value_t = 60_000)]
    pub ts_window_ms: i64,
    /// Seed of the fault dice, so a run can be repeated.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[cfg(feature = "sandbox")]
impl From<FaultArgs> for sandbox::Faults {
    fn from(args: FaultArgs) -> Self {
        sandbox::Faults {
            drop_before: args.drop_before,
            drop_after: args.drop_after,
            http503: args.http503,
            http429: args.http429,
            code99: args.code99,
            code88: args.code88,
            code88_processed: args.code88_processed,
            code99_processed: args.code99_processed,
            http500_processed: args.http500_processed,
            slow_ms: args.slow_ms,
            slow_share: args.slow_share,
            skew_ms: args.skew_ms,
            max_list: args.max_list,
            retry_after_s: args.retry_after_s,
            reply_code: args.reply_code,
            reply_status: args.reply_status,
            stall_ms: args.stall_ms,
            omit_date: args.omit_date,
            queries_answered: None,
            ts_window_ms: args.ts_window_ms,
            seed: args.seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        manual::command().debug_assert();
    }
}
