//! `nxcampaign`: contact files in, signed NXLink `createandcall` batches
//! out, every order's outcome in a ledger, so that an interrupted campaign
//! resumes without calling anyone twice.
//!
//! Codemap (one line per module; ARCHITECTURE.md draws the flow and the
//! layers). Only the modules that the binary, the tests and the benchmark
//! use are public; the rest is the crate's own.
//!
//! - [`cli`]: the command line as clap sees it; runs nothing.
//! - [`cmd`]: the commands, one file per verb.
//! - `settings`: flags, environment and job file, resolved once.
//! - `run`: one campaign run (reading and sending together, one runner or
//!   several, shutdown), and how it ended.
//! - [`clock`]: the one wall clock; everything else is handed the time.
//! - [`error`]: why a command failed, and the one mapping to exit codes.
//! - `batch`: a batch's number and its orders, as every layer sees them.
//! - `job`: the job file's exact shape, validated into a `Job`.
//! - `contacts`: streaming CSV (and gzip) reader with line numbers.
//! - [`phone`]: phone number normalization to NXLink's digits (the
//!   library's parse, step for step, on a fast path).
//! - `plan`: pure: rows into contacts with order ids, contacts into batches.
//! - `ingest`: contact file into the ledger, chunk by chunk, resumable;
//!   for `run`, planned as it goes so sending starts at once.
//! - `listen`: taking connections without spinning when accepting fails.
//! - [`nxlink`]: the only module that knows the vendor: wire, signing, client.
//! - `throttle`: request rate limit and in-flight cap.
//! - `retry`: pure: what a reply means, and the backoff schedule.
//! - `dispatch`: the run loop: take, send, classify, record.
//! - [`ledger`]: all SQL: campaigns, orders, batches, attempts, re-sends.
//! - `outcome`: the states of orders and batches.
//! - `report`: status tables, order lists and run progress (bars on a
//!   terminal); `meter`: how far reading has got, for the bars.
//! - `webhook`: the call-log receiver (`POST /nxlink/calls`).
//! - `outfile`: the files commands write (rejects, exports, reports,
//!   summaries): never over a campaign's own files, owner-only, whole.
//! - `outcomes`: call records read (`sync`), uncertain batches settled
//!   (`reconcile`).
//! - `sandbox`: a local NXLink stand-in with fault injection (cargo
//!   feature `sandbox`, on by default).
//! - `realistic`: contact rows as people export them, for the benchmark
//!   and the tests that hold the fast paths to their references.

mod batch;
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
mod outcome;
mod outcomes;
pub mod output;
pub mod phone;
mod plan;
#[doc(hidden)]
pub mod realistic;
mod retry;
mod run;
#[cfg(feature = "sandbox")]
pub mod sandbox;
mod schedule;
mod settings;
mod suppress;
mod throttle;
mod webhook;
