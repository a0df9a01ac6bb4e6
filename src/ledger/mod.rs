//! The ledger: every campaign, order, batch and attempt, in SQLite (a
//! file, the default) or PostgreSQL (a server several runners share).
//!
//! All SQL lives under this module, one submodule per backend, each with
//! its own migrations and the one place that opens its connections. It
//! decides nothing: callers say what happened and the ledger writes it, in
//! the transactions that the invariants of ARCHITECTURE.md need (a batch is
//! durably `sending` before its request leaves; an attempt's result and its
//! batch's outcome are one transaction). Both backends take and give the
//! same types ([`model`]) and keep the same promises.

mod model;
mod postgres;
mod read_ahead;
mod redials;
mod scratch;
mod sqlite;

use std::path::PathBuf;

pub use model::{
    AttemptResult, BatchToSend, CallFilter, CallStats, CampaignStatus, CampaignSummary, Checkpoint,
    Claim, Fence, Forgotten, KeyKind, LastCall, LeaseGrant, LeaseHolder, OrderLine, OrderStream,
    PendingWindow, Planned, Preview, ReportData, Resend, Resent, Scope, StagedChunk, StagedRow,
    StoredCalls, Suppression, SuppressionEntry, UncertainBatch,
};

use crate::batch::BatchSeq;
use crate::job::CampaignName;
pub use crate::job::LedgerLocation;
use crate::state::OrderState;
use read_ahead::Chunk;
pub use redials::RedialsPlanned;
pub use scratch::Scratch;

/// Whether opening may create the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// `run` and `ingest`: create it (mode 0600) when missing.
    CreateIfMissing,
    /// Every command that re-queues or records: a missing ledger is an
    /// error naming the path.
    MustExist,
    /// Commands that only read (`status`, `orders`, `report`,
    /// `campaigns`, `suppress list`, `check`): a missing ledger is an
    /// error, and a ledger that cannot be written (an archived copy, a
    /// read-only mount) is read all the same.
    ReadOnly,
}

/// A campaign's row id in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CampaignId(i64);

/// The ledger cannot be used or a statement failed: the run cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("ledger {path}: cannot open: {source}")]
    Open { path: PathBuf, source: DbError },
    #[error("ledger {path} was migrated by a newer nxcampaign (its migration {version} is unknown to this one, which does not migrate down): use that version or a later one")]
    Newer { path: PathBuf, version: i64 },
    #[error("ledger {path}: {source}")]
    Query { path: PathBuf, source: DbError },
    #[error("ledger {path}: unknown campaign {name:?}")]
    UnknownCampaign { path: PathBuf, name: String },
    #[error("ledger {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("ledger {path} does not exist: run `nxcampaign run <job>` (or `nxcampaign migrate`) first, or name the ledger with --db, NXCAMPAIGN_DB or the job's `ledger` key")]
    Missing { path: PathBuf },
    #[error("ledger {path} cannot be written ({what}): a run must record every attempt before and after it; check the permissions of the file and of its folder (SQLite writes {path}-wal and {path}-shm beside it)")]
    ReadOnly { path: PathBuf, what: String },
    #[error("ledger {path} has {links} hard links: two paths to one ledger would let two runs each hold the campaign and call everyone twice; keep one path (remove the other links)")]
    HardLinked { path: PathBuf, links: u64 },
    #[error("ledger {path}: {what} while this run had it open; stopping without sending anything more (what was written since is not in the file that path names now)")]
    Vanished { path: PathBuf, what: &'static str },
    #[error("ledger {path}: this run lost the campaign's lease: the campaign was taken over by another run {by}; stopping without writing or sending anything more")]
    LeaseLost { path: PathBuf, by: String },
    /// Writing a report's output failed (a closed pipe, a full disk).
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
}

/// A failed statement, from either backend's driver.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Postgres(#[from] sqlx::Error),
}

impl LedgerError {
    /// Whether the failure may pass by itself: the server restarting or
    /// unreachable, a connection reset, a lock held too long. A ledger that
    /// is not a ledger, or a statement the schema refuses, is not.
    pub fn is_transient(&self) -> bool {
        match self {
            LedgerError::Open { source, .. } | LedgerError::Query { source, .. } => {
                source.is_transient()
            }
            LedgerError::LeaseLost { .. } => true,
            _ => false,
        }
    }
}

impl DbError {
    /// See [`LedgerError::is_transient`].
    pub fn is_transient(&self) -> bool {
        match self {
            DbError::Sqlite(e) => matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            DbError::Postgres(sqlx::Error::Database(e)) => e.code().is_some_and(|code| {
                // Connection exceptions, the server shutting down or not
                // yet taking connections, too many of them, a transaction
                // the server cancelled to break a conflict.
                code.starts_with("08")
                    || code.starts_with("57P")
                    || matches!(code.as_ref(), "53300" | "40001" | "40P01")
            }),
            DbError::Postgres(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Protocol(_),
            ) => true,
            DbError::Postgres(_) => false,
        }
    }

    /// SQLite's primary result code, if SQLite failed.
    fn sqlite_code(&self) -> Option<rusqlite::ErrorCode> {
        match self {
            DbError::Sqlite(e) => e.sqlite_error_code(),
            DbError::Postgres(_) => None,
        }
    }
}

/// What only a server ledger does: several runners side by side on one
/// campaign, the ingest lease they pass between them, and the rate limit
/// they share. [`Ledger::runners`] gives it for a ledger that has them, so
/// no path on SQLite can reach these and fail when it runs.
#[derive(Clone, Debug)]
pub struct Runners(postgres::Postgres);

impl Runners {
    /// Registers `me` as one of the campaign's runners.
    pub async fn join(&self, campaign: CampaignId, me: &LeaseHolder) -> Result<(), LedgerError> {
        self.0.join(campaign, me).await
    }

    /// Unregisters a runner; the batches it left `sending` become
    /// `uncertain`. Returns how many.
    pub async fn leave(
        &self,
        fence: &Fence,
        resend_after_ms: i64,
        now_ms: i64,
    ) -> Result<u64, LedgerError> {
        self.0.leave(fence, resend_after_ms, now_ms).await
    }

    /// Every runner of the campaign.
    pub async fn list(&self, campaign: CampaignId) -> Result<Vec<LeaseHolder>, LedgerError> {
        self.0.runners(campaign).await
    }

    /// Presumes runner `gone` dead if it is still exactly as watched: it
    /// is removed, and the batches it was sending become `uncertain` (not
    /// to be re-sent by an operator before `resend_after_ms`), in one
    /// transaction. Returns how many batches, or `None` if it beat again or
    /// left meanwhile.
    pub async fn presume_dead(
        &self,
        campaign: CampaignId,
        gone: &LeaseHolder,
        resend_after_ms: i64,
        now_ms: i64,
    ) -> Result<Option<u64>, LedgerError> {
        self.0
            .presume_dead(campaign, gone, resend_after_ms, now_ms)
            .await
    }

    /// Takes the campaign's ingest lease for `fence`'s runner if no runner
    /// holds it; true if it is (now) this runner's.
    pub async fn take_ingest_lease(&self, fence: &Fence) -> Result<bool, LedgerError> {
        self.0.take_ingest_lease(fence).await
    }

    /// Gives the ingest lease back if `fence`'s runner holds it.
    pub async fn release_ingest_lease(&self, fence: &Fence) -> Result<(), LedgerError> {
        self.0.release_ingest_lease(fence).await
    }

    /// Batches of the campaign that runners other than `fence`'s are
    /// sending.
    pub async fn sent_by_others(&self, fence: &Fence) -> Result<u64, LedgerError> {
        self.0.sent_by_others(fence).await
    }

    /// The campaign's highest planned batch: it grows as ingest plans.
    pub async fn batches_planned_through(&self, campaign: CampaignId) -> Result<i64, LedgerError> {
        self.0.batches_planned_through(campaign).await
    }

    /// Reserves the next request slot of the shared rate limit `key` (one
    /// request per `period`, `tolerance` of burst), on the server's clock;
    /// returns how long to wait before sending.
    pub async fn reserve_request(
        &self,
        key: &str,
        period: std::time::Duration,
        tolerance: std::time::Duration,
    ) -> Result<std::time::Duration, LedgerError> {
        let wait = self
            .0
            .reserve_request(key, period.as_micros() as i64, tolerance.as_micros() as i64)
            .await?;
        Ok(std::time::Duration::from_micros(wait as u64))
    }
}

/// A handle on the ledger; cheap to clone.
#[derive(Clone, Debug)]
pub enum Ledger {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

/// Calls the same method on whichever backend the ledger is.
macro_rules! each {
    ($ledger:expr, $backend:ident => $call:expr) => {
        match $ledger {
            Ledger::Sqlite($backend) => $call,
            Ledger::Postgres($backend) => $call,
        }
    };
}

impl Ledger {
    /// Opens (creating if needed) the ledger and brings its schema up to
    /// date.
    pub async fn open(location: &LedgerLocation) -> Result<Ledger, LedgerError> {
        Ledger::open_with(location, OpenMode::CreateIfMissing).await
    }

    /// Opens the ledger, creating it only if `mode` allows; one that a
    /// newer nxcampaign migrated is refused.
    pub async fn open_with(
        location: &LedgerLocation,
        mode: OpenMode,
    ) -> Result<Ledger, LedgerError> {
        Ok(match location {
            LedgerLocation::File(path) => {
                Ledger::Sqlite(sqlite::Sqlite::open_with(path, mode).await?)
            }
            LedgerLocation::Postgres(url) => {
                Ledger::Postgres(postgres::Postgres::open_with(url, mode).await?)
            }
        })
    }

    /// Where the ledger is, as people are shown it (a file, or a server
    /// URL without its password).
    pub fn shown(&self) -> String {
        each!(self, l => l.shown())
    }

    /// The runners' side of a server ledger; `None` on SQLite, where a
    /// campaign has one run at a time, under its lease.
    pub fn runners(&self) -> Option<Runners> {
        match self {
            Ledger::Postgres(l) => Some(Runners(l.clone())),
            Ledger::Sqlite(_) => None,
        }
    }

    /// Whether this handle created the ledger.
    pub fn created(&self) -> bool {
        each!(self, l => l.created())
    }

    /// The ledger's salt for derived order ids.
    pub fn order_id_salt(&self) -> &str {
        each!(self, l => l.order_id_salt())
    }

    /// The campaign's id, creating it on first use.
    pub async fn ensure_campaign(
        &self,
        name: &CampaignName,
        now_ms: i64,
    ) -> Result<CampaignId, LedgerError> {
        each!(self, l => l.ensure_campaign(name, now_ms).await)
    }

    /// The id of an existing campaign.
    pub async fn campaign(&self, name: &str) -> Result<CampaignId, LedgerError> {
        each!(self, l => l.campaign(name).await)
    }

    /// Every campaign name, in the order they were created.
    pub async fn campaign_names(&self) -> Result<Vec<String>, LedgerError> {
        each!(self, l => l.campaign_names().await)
    }

    /// Closes the ledger's connections.
    pub async fn close(&self) {
        each!(self, l => l.close().await)
    }

    /// The campaign's lease holder, if any.
    pub async fn lease_holder(
        &self,
        campaign: CampaignId,
    ) -> Result<Option<LeaseHolder>, LedgerError> {
        each!(self, l => l.lease_holder(campaign).await)
    }

    /// Takes the campaign's lease for `me` if its holder is still exactly
    /// `expected` (same run, same heartbeat count; `None`: no holder), in
    /// one write transaction. Batches the holder left in `sending` become
    /// `uncertain` in the same transaction, not to be re-sent by an
    /// operator before `resend_after_ms`.
    pub async fn take_lease(
        &self,
        campaign: CampaignId,
        me: &LeaseHolder,
        expected: Option<&LeaseHolder>,
        resend_after_ms: i64,
    ) -> Result<LeaseGrant, LedgerError> {
        each!(self, l => l.take_lease(campaign, me, expected, resend_after_ms).await)
    }

    /// Renews the lease (time and counter); false when it is no longer
    /// `fence`'s.
    pub async fn renew_lease(&self, fence: &Fence, now_ms: i64) -> Result<bool, LedgerError> {
        each!(self, l => l.renew_lease(fence, now_ms).await)
    }

    /// Gives the lease back if it is still `fence`'s.
    pub async fn release_lease(&self, fence: &Fence) -> Result<(), LedgerError> {
        each!(self, l => l.release_lease(fence).await)
    }

    /// Where the campaign's contacts stand with redials at `now_ms`, by
    /// `policy`, else by the `[redial]` its last run kept; `None` for a
    /// campaign without one.
    pub async fn funnel(
        &self,
        campaign: CampaignId,
        now_ms: i64,
        policy: Option<&crate::redial::Policy>,
    ) -> Result<Option<crate::redial::Funnel>, LedgerError> {
        each!(self, l => l.funnel(campaign, now_ms, policy.cloned()).await)
    }

    /// The numbers behind `report`, from one snapshot: see [`ReportData`].
    pub async fn report_data(&self, campaign: CampaignId) -> Result<ReportData, LedgerError> {
        each!(self, l => l.report_data(campaign).await)
    }

    /// Moves the campaign's planned pending batches (all, or `only`) to
    /// `cancelled`, noting who asked; returns the ones it moved. A batch
    /// being sent is not pending, so it is never cut short. Cancelling all
    /// of them also stops the campaign's redials: none is planned again.
    pub async fn cancel(
        &self,
        campaign: CampaignId,
        only: &[BatchSeq],
        now_ms: i64,
        by: &str,
    ) -> Result<Vec<BatchSeq>, LedgerError> {
        each!(self, l => l.cancel(campaign, only, now_ms, by).await)
    }

    /// Notes that a run (or ingest) of `job_file` starts now, and keeps
    /// the job's `[redial]` (JSON; `None`: no redials) for what reads the
    /// campaign without a job file.
    pub async fn note_run(
        &self,
        campaign: CampaignId,
        job_file: &str,
        redial_policy: Option<&str>,
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        each!(self, l => l.note_run(campaign, job_file, redial_policy, now_ms).await)
    }

    /// Every campaign, in the order they were created, with its counts.
    pub async fn campaigns(&self) -> Result<Vec<CampaignSummary>, LedgerError> {
        let records = each!(self, l => l.campaign_records().await)?;
        let mut summaries = Vec::with_capacity(records.len());
        for record in records {
            let mut status = self.status(record.id, &record.name).await?;
            status.calls = Some(self.call_stats(record.id).await?);
            summaries.push(CampaignSummary {
                status,
                created_at_ms: record.created_at_ms,
                last_run_at_ms: record.last_run_at_ms,
                job_file: record.job_file,
                contacts: record.contacts,
            });
        }
        Ok(summaries)
    }

    /// Deletes the campaign and everything recorded of it, unless a run
    /// holds it, or requests of it were sent and `sent_anyway` is not
    /// given (its record is what keeps its contacts from being called
    /// twice).
    pub async fn forget(
        &self,
        campaign: CampaignId,
        sent_anyway: bool,
    ) -> Result<Forgotten, LedgerError> {
        each!(self, l => l.forget(campaign, sent_anyway).await)
    }

    /// Adds `phones` (normalized as contacts are) to the do-not-call list,
    /// or renews them with `entry`'s reason, expiry and source; one
    /// transaction. Returns how many.
    pub async fn suppress(
        &self,
        phones: Vec<String>,
        entry: &SuppressionEntry,
    ) -> Result<u64, LedgerError> {
        each!(self, l => l.suppress(phones, entry).await)
    }

    /// Removes `phones` from the list in `scope`; returns how many were on it.
    pub async fn unsuppress(&self, phones: Vec<String>, scope: Scope) -> Result<u64, LedgerError> {
        each!(self, l => l.unsuppress(phones, scope).await)
    }

    /// Makes the entries of `scope` exactly `listed` (number, the list
    /// file it is in), in one transaction: entries no longer listed go,
    /// new ones come (for good), the rest stay as they are. Two of these at
    /// once take turns, so the list is never emptier than either version.
    pub async fn replace_suppressions(
        &self,
        scope: Scope,
        listed: Vec<(String, String)>,
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        let mut listed = listed;
        // In key order (each page of the list written once); a number in
        // two files keeps the first.
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        listed.dedup_by(|a, b| a.0 == b.0);
        each!(self, l => l.replace_suppressions(scope, listed, now_ms).await)
    }

    /// Up to `limit` entries of the list after `after` (phone, scope), in
    /// that order: a page of `suppress list`.
    pub async fn suppressions_after(
        &self,
        after: Option<(String, i64)>,
        limit: usize,
    ) -> Result<Vec<Suppression>, LedgerError> {
        each!(self, l => l.suppressions_after(after, limit).await)
    }

    /// Which of `phones` the list holds at `now_ms` for `campaign` (`None`:
    /// a campaign not in the ledger yet, so only entries for every one).
    pub async fn suppressed_among(
        &self,
        campaign: Option<CampaignId>,
        phones: Vec<String>,
        now_ms: i64,
    ) -> Result<Vec<String>, LedgerError> {
        let campaign = campaign.map_or(0, |id| id.0);
        each!(self, l => l.suppressed_among(campaign, phones, now_ms).await)
    }

    /// Which of `keys` (of one kind) the campaign's live orders hold, with
    /// the line of the order holding each; read only.
    pub async fn known_keys(
        &self,
        campaign: CampaignId,
        kind: KeyKind,
        keys: Vec<String>,
    ) -> Result<Vec<(String, u64)>, LedgerError> {
        each!(self, l => l.known_keys(campaign, kind, keys).await)
    }

    /// Each statement that a call, a delivery, a reconciliation or an
    /// export runs per item, with the database's plan for it: the tests
    /// hold each to an index.
    #[doc(hidden)]
    pub async fn explain_hot_statements(&self) -> Result<Vec<(String, String)>, LedgerError> {
        each!(self, l => l.explain_hot_statements().await)
    }

    /// Which of the order ids `ids` a campaign other than `except` holds,
    /// with that campaign's name; read only.
    pub async fn order_ids_elsewhere(
        &self,
        except: Option<CampaignId>,
        ids: Vec<String>,
    ) -> Result<Vec<(String, String)>, LedgerError> {
        each!(self, l => l.order_ids_elsewhere(except, ids).await)
    }

    /// Marks due batches `sending` (in sequence order, as many as `claim`
    /// allows: batches, orders all together, countries), each with a new
    /// attempt, in one durable transaction, and returns them with their
    /// orders, in sequence order; empty when no batch is due now or the
    /// next due one would pass the order cap. Nothing is taken
    /// unless `fence` still holds its run's lease, checked in the same
    /// transaction; only planned batches are taken, with only their
    /// planned orders.
    pub async fn take_due_batches(
        &self,
        fence: &Fence,
        claim: &Claim<'_>,
    ) -> Result<Vec<BatchToSend>, LedgerError> {
        each!(self, l => l.take_due_batches(fence, claim).await)
    }

    /// The earliest time a planned pending batch of the campaign becomes
    /// due, if any (batches still being planned are not due: dispatch
    /// waits for their plan instead).
    pub async fn next_due_at(
        &self,
        campaign: CampaignId,
        only: Option<&[String]>,
    ) -> Result<Option<i64>, LedgerError> {
        each!(self, l => l.next_due_at(campaign, only).await)
    }

    /// Which of `seqs` are batches of the campaign.
    pub async fn existing_batches(
        &self,
        campaign: CampaignId,
        seqs: &[BatchSeq],
    ) -> Result<Vec<BatchSeq>, LedgerError> {
        let raw: Vec<i64> = seqs.iter().map(|s| i64::from(s.get())).collect();
        let found = each!(self, l => l.existing_batches(campaign, raw).await)?;
        Ok(seqs
            .iter()
            .filter(|seq| found.contains(&i64::from(seq.get())))
            .copied()
            .collect())
    }

    /// The window keys (a country, and the zones of its numbers, see
    /// `Schedule::open_until`) of the campaign's planned pending batches,
    /// each with its orders.
    pub async fn pending_windows(
        &self,
        campaign: CampaignId,
    ) -> Result<Vec<(String, u64)>, LedgerError> {
        each!(self, l => l.pending_windows(campaign).await)
    }

    /// Records an attempt's result and its batch's new state in one
    /// transaction, unless `fence` lost its lease meanwhile (then the run
    /// that took over has made the batch `uncertain`).
    pub async fn finish_attempt(
        &self,
        fence: &Fence,
        seq: BatchSeq,
        attempt: u32,
        result: &AttemptResult,
    ) -> Result<(), LedgerError> {
        each!(self, l => l.finish_attempt(fence, seq, attempt, result).await)
    }

    /// Puts batches back to `pending` with a fresh retry budget, recording
    /// who asked; see [`Resend`].
    pub async fn resend(
        &self,
        campaign: CampaignId,
        resend: &Resend<'_>,
    ) -> Result<Resent, LedgerError> {
        each!(self, l => l.resend(campaign, resend).await)
    }

    /// Where ingest of the campaign's contact file stopped.
    pub async fn checkpoint(&self, campaign: CampaignId) -> Result<Checkpoint, LedgerError> {
        each!(self, l => l.checkpoint(campaign).await)
    }

    /// The first unused batch sequence number of the campaign.
    pub async fn next_batch_seq(&self, campaign: CampaignId) -> Result<BatchSeq, LedgerError> {
        each!(self, l => l.next_batch_seq(campaign).await)
    }

    /// Opens ingest's writer (blocking: call it off the async runtime),
    /// for the run that holds `fence`.
    pub fn ingest_writer(&self, fence: &Fence) -> Result<IngestWriter, LedgerError> {
        Ok(match self {
            Ledger::Sqlite(l) => IngestWriter::Sqlite(l.ingest_writer(fence)?),
            Ledger::Postgres(l) => IngestWriter::Postgres(l.ingest_writer(fence)?),
        })
    }

    /// Stores calls (from the webhook or the call records), each once per
    /// callId (a later report replaces the earlier), matched to their
    /// orders; in one transaction, durable when this returns.
    pub async fn store_calls(
        &self,
        calls: Vec<crate::nxlink::calls::Call>,
        source: &'static str,
        now_ms: i64,
    ) -> Result<StoredCalls, LedgerError> {
        // In one order everywhere, so that receivers storing at once on a
        // server lock rows in the same order (no deadlock); stable, so that
        // the later of two reports of one call still wins.
        let mut calls = calls;
        calls.sort_by(|a, b| a.call_id.cmp(&b.call_id));
        each!(self, l => l.store_calls(calls, source, now_ms).await)
    }

    /// The campaign's call outcomes.
    pub async fn call_stats(&self, campaign: CampaignId) -> Result<CallStats, LedgerError> {
        each!(self, l => l.call_stats(campaign).await)
    }

    /// The campaign's `uncertain` batches, their orders, and how many of
    /// those have a call in the ledger.
    pub async fn uncertain_batches(
        &self,
        campaign: CampaignId,
    ) -> Result<Vec<UncertainBatch>, LedgerError> {
        each!(self, l => l.uncertain_batches(campaign).await)
    }

    /// Marks an `uncertain` batch `accepted` because the vendor has calls
    /// of its orders; false when it was no longer uncertain.
    pub async fn accept_reconciled(
        &self,
        campaign: CampaignId,
        seq: BatchSeq,
        message: String,
        now_ms: i64,
    ) -> Result<bool, LedgerError> {
        each!(self, l => l.accept_reconciled(campaign, seq, message, now_ms).await)
    }

    /// When the campaign's first attempt started, and up to when `sync`
    /// has read the vendor's call records.
    pub async fn sync_span(
        &self,
        campaign: CampaignId,
    ) -> Result<(Option<i64>, Option<i64>), LedgerError> {
        each!(self, l => l.sync_span(campaign).await)
    }

    /// Records that `sync` has read call records up to `ms` (never moves
    /// back).
    pub async fn set_calls_synced(&self, campaign: CampaignId, ms: i64) -> Result<(), LedgerError> {
        each!(self, l => l.set_calls_synced(campaign, ms).await)
    }

    /// Counts of the campaign's orders and batches by state.
    pub async fn status(
        &self,
        campaign: CampaignId,
        name: &str,
    ) -> Result<CampaignStatus, LedgerError> {
        each!(self, l => l.status(campaign, name).await)
    }

    /// Streams the campaign's orders in input order, optionally only those
    /// in `state`, into `sink`; memory stays flat whatever the campaign's
    /// size. Blocking: call it off the async runtime.
    ///
    /// The ledger is read on a thread of its own, a few chunks of orders
    /// ahead of `sink`, which runs on this one: reading and formatting
    /// each take a core.
    pub fn for_each_order(
        &self,
        campaign: CampaignId,
        state: Option<OrderState>,
        call: Option<CallFilter>,
        sink: OrderStream<'_>,
    ) -> Result<(), LedgerError> {
        let (chunks, received) = std::sync::mpsc::sync_channel::<Chunk>(4);
        std::thread::scope(|scope| {
            let reading = scope.spawn(move || {
                let mut chunk = Chunk::default();
                let mut pass_on = |line: &OrderLine<'_>| {
                    chunk.push(line);
                    if !chunk.is_full() {
                        return Ok(());
                    }
                    // The writer stopped: its own error says why.
                    chunks
                        .send(std::mem::take(&mut chunk))
                        .map_err(|_| std::io::Error::other("the output stopped"))
                };
                each!(self, l => l.for_each_order(campaign, state, call, &mut pass_on))?;
                if !chunk.is_empty() {
                    let _ = chunks.send(chunk);
                }
                Ok(())
            });
            let written = received
                .iter()
                .try_for_each(|chunk| chunk.lines().try_for_each(|line| sink(&line)))
                .map_err(LedgerError::Output);
            // A writer that stopped early stops the reader at its next chunk.
            drop(received);
            let read = reading
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            written.and(read)
        })
    }
}

/// A caller's number as orders hold numbers (digits, country code first),
/// for matching a call without a known orderId; `None` for what is not a
/// phone number (a SIP address).
pub(crate) fn caller_digits(raw: &str) -> Option<String> {
    if raw.contains('@') {
        return None;
    }
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let digits = digits
        .strip_prefix("00")
        .map(str::to_owned)
        .unwrap_or(digits);
    (digits.len() >= 6).then_some(digits)
}

/// Calls the same method on whichever backend the writer is.
macro_rules! each_writer {
    ($writer:expr, $w:ident => $call:expr) => {
        match $writer {
            IngestWriter::Sqlite($w) => $call,
            IngestWriter::Postgres($w) => $call,
        }
    };
}

/// Ingest's own writer, for one blocking thread: it stages chunks of rows
/// and plans them (see each backend's `ingest` module).
pub enum IngestWriter {
    Sqlite(sqlite::IngestWriter),
    Postgres(postgres::IngestWriter),
}

impl IngestWriter {
    /// Says that a dispatch works on the ledger meanwhile (`run`).
    pub fn beside_dispatch(&mut self) {
        each_writer!(self, w => w.beside_dispatch())
    }

    /// Says that the order ids come from the contact file, so each is
    /// checked against every other campaign's.
    pub fn ids_from_file(&mut self) {
        each_writer!(self, w => w.ids_from_file())
    }

    /// Appends rows as staged orders (invalid ones set aside at once) and
    /// moves the checkpoint, all or nothing.
    pub fn stage_chunk(&mut self, chunk: &StagedChunk<'_>, now_ms: i64) -> Result<(), LedgerError> {
        each_writer!(self, w => w.stage_chunk(chunk, now_ms))
    }

    /// Plans every staged order of the campaign in one transaction:
    /// repeats of a phone or order id become duplicates and leave their
    /// batches; the rest claim their keys.
    pub fn plan_staged(&mut self, now_ms: i64) -> Result<Planned, LedgerError> {
        each_writer!(self, w => w.plan_staged(now_ms))
    }

    /// Plans the campaign's due redials into new batches, in one
    /// transaction; call it when nothing is staged.
    pub fn plan_redials(
        &mut self,
        policy: &crate::redial::Policy,
        campaign_name: &str,
        batch_size: u32,
        now_ms: i64,
    ) -> Result<RedialsPlanned, LedgerError> {
        each_writer!(self, w => w.plan_redials(policy, campaign_name, batch_size, now_ms))
    }
}
