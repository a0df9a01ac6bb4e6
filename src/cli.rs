//! The command line, as clap sees it; nothing here runs anything.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgGroup, Parser, Subcommand};

use crate::report::OrdersFormat;
use crate::sandbox;

/// Outbound AI call campaigns on NXLink: contact files in, signed
/// createandcall batches out, every order recorded in a ledger.
#[derive(Debug, Parser)]
#[command(name = "nxcampaign", version, about, long_about = None)]
pub struct Cli {
    /// The ledger (SQLite file).
    #[arg(
        long,
        global = true,
        env = "NXCAMPAIGN_DB",
        default_value = "nxcampaign.db"
    )]
    pub db: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ingest what is new in the job's contact file, then send every due batch.
    ///
    /// Exit codes: 0 done, 1 done but some orders need attention, 2 bad job
    /// or input (nothing sent), 3 stopped (authentication, ledger), 75 try
    /// again later (interrupted, campaign busy).
    Run {
        /// The job file (TOML).
        job: PathBuf,
    },
    /// Rows read and counts of orders and batches by state.
    Status {
        /// Only this campaign (default: every campaign in the ledger).
        campaign: Option<String>,
        /// One JSON object per campaign, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Per-order outcomes, in input order.
    Orders {
        campaign: String,
        /// Only orders in this state (pending, sending, accepted, rejected,
        /// failed, uncertain, invalid, duplicate, suppressed).
        #[arg(long)]
        state: Option<String>,
        #[arg(long, value_enum, default_value_t = OrdersFormat::Table)]
        format: OrdersFormat,
    },
    /// Put uncertain or failed batches back to pending; the next run sends them.
    ///
    /// Re-sending an uncertain batch may call its contacts twice if the
    /// vendor did receive it: check the vendor's call records first.
    #[command(group(ArgGroup::new("which").required(true).args(["uncertain", "failed"])))]
    Resend {
        campaign: String,
        /// Re-queue the batches that may or may not have arrived.
        #[arg(long)]
        uncertain: bool,
        /// Re-queue the batches whose retries ran out.
        #[arg(long)]
        failed: bool,
    },
    /// Serve a local NXLink stand-in (for trials and tests; it calls no one).
    Sandbox {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = sandbox::DEFAULT_ACCESS_KEY)]
        access_key: String,
        /// The secret requests must be signed with.
        #[arg(long, env = "NXLINK_SANDBOX_SECRET", hide_env_values = true, default_value = sandbox::DEFAULT_ACCESS_SECRET)]
        access_secret: String,
        /// Faults as JSON, e.g. '{"http503":0.1,"slow_ms":200}' (also settable
        /// while running: POST /_sandbox/faults).
        #[arg(long, default_value = "{}")]
        faults: String,
    },
    /// Run the example campaign against an in-process sandbox.
    Demo,
}
