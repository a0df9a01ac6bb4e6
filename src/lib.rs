//! `nxcampaign`: contact files in, signed NXLink `createandcall` batches
//! out, every order's outcome in a ledger, so that an interrupted campaign
//! resumes without calling anyone twice.
//!
//! Codemap, top to bottom as the layers go (each module imports only
//! modules below its own; ARCHITECTURE.md draws the flow). Only what the
//! binary, the tests and the benchmark use is public.
//!
//! - [`cmd`]: the commands, one file per verb, each `run(settings, args,
//!   output) -> Result<Exit, Error>`.
//! - `check`: the dry run behind `check`: the whole file into a scratch
//!   ledger, and what a run would send.
//! - `settings`: the ledger, gateway, credentials and tokens a command
//!   uses, from flags, environment and job file, resolved once.
//! - `suppress`: the do-not-call list's files and commands.
//! - `run`: one campaign run (reading and sending together, one runner or
//!   several, the lease, shutdown), how it ended, and its summary.
//! - [`cli`]: the command line as clap sees it, and what `--help` and `man`
//!   say of each command's exit status and environment; runs nothing.
//! - [`error`]: why a command failed, and the one mapping to exit codes.
//! - [`output`]: the one voice on stderr (`-q`, JSON lines, progress
//!   bars), the tables on stdout, the files commands write.
//! - `ingest`: contact file into the ledger, chunk by chunk, resumable;
//!   for `run`, planned as it goes so sending starts at once.
//! - `dispatch`: the send loop: take, send, classify, record.
//! - `webhook`: the call-log receiver (`POST /nxlink/calls`).
//! - `call_records`: the vendor's call records read (`sync`), uncertain
//!   batches settled by them (`reconcile`).
//! - [`ledger`]: all SQL, on SQLite or PostgreSQL: campaigns, orders,
//!   batches, attempts, calls, the do-not-call list, runners.
//! - `plan`: pure: rows into contacts with order ids, contacts into batches.
//! - `retry`: pure: what a reply means (the one place that decides), and
//!   the backoff schedule.
//! - `throttle`: request rate limit and in-flight cap.
//! - `sandbox`: a local NXLink stand-in with fault injection (cargo
//!   feature `sandbox`, on by default).
//! - `contacts`: streaming CSV (and gzip) reader with line numbers.
//! - `job`: the job file's exact shape, validated into a `Job`.
//! - [`nxlink`]: the only module that knows the vendor: URLs, fields,
//!   codes, signing, the client.
//! - [`phone`]: phone number normalization to NXLink's digits (the
//!   library's parse, step for step, on a fast path).
//! - [`clock`]: the one wall clock; everything else is handed the time.
//! - `state`: the states of orders and batches.
//! - `batch`: a batch's number and its orders, as every layer sees them.
//! - `schedule`: calling windows, in each country's time zone.
//! - `redial`: pure: which contacts are called again and when, from their
//!   calls; what the claim re-checks; the funnel.
//! - `meter`: how far reading has got, for the bars.
//! - `listen`: taking connections without spinning when accepting fails.
//! - `realistic`: contact rows as people export them, for the benchmark
//!   and the tests that hold the fast paths to their references.

mod batch;
mod call_records;
mod check;
pub mod cli;
pub mod clock;
pub mod cmd;
mod contacts;
mod dispatch;
pub mod error;
mod ingest;
mod job;
pub mod ledger;
mod listen;
mod meter;
pub mod nxlink;
pub mod output;
pub mod phone;
mod plan;
#[doc(hidden)]
pub mod realistic;
mod redial;
mod retry;
mod run;
#[cfg(feature = "sandbox")]
pub mod sandbox;
mod schedule;
mod settings;
mod state;
mod suppress;
mod throttle;
mod webhook;
