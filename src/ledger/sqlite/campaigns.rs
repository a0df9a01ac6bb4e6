//! Operators' writes and reads of whole campaigns on SQLite: cancelling
//! pending batches, noting a run, listing campaigns, forgetting one.

use rusqlite::{params, OptionalExtension as _};

use super::{CampaignId, LedgerError, Sqlite};
use crate::batch::BatchSeq;
use crate::ledger::model::{CampaignRecord, Forgotten};
use crate::state::BatchState;

impl Sqlite {
    /// Moves the campaign's planned pending batches (all, or `only`) to
    /// `cancelled`, noting who asked; returns the ones it moved.
    pub async fn cancel(
        &self,
        campaign: CampaignId,
        only: &[BatchSeq],
        now_ms: i64,
        by: &str,
    ) -> Result<Vec<BatchSeq>, LedgerError> {
        let only = (!only.is_empty()).then(|| super::dispatch::json_numbers(only));
        let message = format!("cancelled by {by}; never sent");
        self.write(move |this, tx| {
            let e = this.error();
            let mut cancelled: Vec<i64> = tx
                .prepare(
                    "UPDATE batches SET state = ?3, updated_at_ms = ?4, message = ?5
                     WHERE campaign_id = ?1 AND state = ?2
                       AND seq <= (SELECT batches_planned_through FROM campaigns WHERE id = ?1)
                       AND (?6 IS NULL OR seq IN (SELECT value FROM json_each(?6)))
                     RETURNING seq",
                )
                .map_err(e)?
                .query_map(
                    params![
                        campaign.0,
                        BatchState::Pending.as_str(),
                        BatchState::Cancelled.as_str(),
                        now_ms,
                        message,
                        only
                    ],
                    |row| row.get(0),
                )
                .map_err(e)?
                .collect::<Result<_, _>>()
                .map_err(e)?;
            cancelled.sort_unstable();
            // Cancelling a whole campaign stops its redials too.
            if only.is_none() {
                tx.execute(
                    "UPDATE campaigns SET redials_stopped_at_ms = COALESCE(redials_stopped_at_ms, ?2) WHERE id = ?1",
                    params![campaign.0, now_ms],
                )
                .map_err(e)?;
            }
            cancelled
                .into_iter()
                .map(|seq| this.batch_seq(seq))
                .collect()
        })
        .await
    }

    /// Notes that a run (or ingest) of `job_file` starts now.
    pub async fn note_run(
        &self,
        campaign: CampaignId,
        job_file: &str,
        redial_policy: Option<&str>,
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        let job_file = job_file.to_owned();
        let redial_policy = redial_policy.map(str::to_owned);
        self.write(move |this, tx| {
            tx.execute(
                "UPDATE campaigns SET job_path = ?2, last_run_at_ms = ?3, redial_policy = ?4 WHERE id = ?1",
                params![campaign.0, job_file, now_ms, redial_policy],
            )
            .map_err(this.error())?;
            Ok(())
        })
        .await
    }

    /// Every campaign's name, creation, last run, job and contact files.
    pub(in crate::ledger) async fn campaign_records(
        &self,
    ) -> Result<Vec<CampaignRecord>, LedgerError> {
        self.read(|this, conn| {
            let mut statement = conn
                .prepare(
                    "SELECT id, name, created_at_ms, last_run_at_ms, job_path, source_path FROM campaigns ORDER BY id",
                )
                .map_err(this.error())?;
            let rows = statement
                .query_map([], |row| {
                    Ok(CampaignRecord {
                        id: CampaignId(row.get(0)?),
                        name: row.get(1)?,
                        created_at_ms: row.get(2)?,
                        last_run_at_ms: row.get(3)?,
                        job_file: row.get(4)?,
                        contacts: row.get(5)?,
                    })
                })
                .map_err(this.error())?;
            rows.collect::<Result<_, _>>().map_err(this.error())
        })
        .await
    }

    /// Deletes the campaign and everything recorded of it, in one
    /// transaction, unless a run holds it, or requests of it were sent and
    /// `sent_anyway` is not given.
    pub async fn forget(
        &self,
        campaign: CampaignId,
        sent_anyway: bool,
    ) -> Result<Forgotten, LedgerError> {
        self.write(move |this, tx| {
            let e = this.error();
            let held = tx
                .query_row(
                    "SELECT 1 FROM leases WHERE campaign_id = ?",
                    [campaign.0],
                    |_| Ok(()),
                )
                .optional()
                .map_err(e)?;
            if held.is_some() {
                return Ok(Forgotten::Busy);
            }
            let attempts: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM attempts WHERE campaign_id = ?",
                    [campaign.0],
                    |row| row.get(0),
                )
                .map_err(e)?;
            if attempts > 0 && !sent_anyway {
                return Ok(Forgotten::Sent {
                    attempts: attempts as u64,
                });
            }
            let orders = tx
                .execute("DELETE FROM orders WHERE campaign_id = ?", [campaign.0])
                .map_err(e)?;
            for table in ["attempts", "resends", "order_keys", "batches", "calls"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE campaign_id = ?"),
                    [campaign.0],
                )
                .map_err(e)?;
            }
            tx.execute("DELETE FROM suppressions WHERE scope = ?", [campaign.0])
                .map_err(e)?;
            tx.execute("DELETE FROM campaigns WHERE id = ?", [campaign.0])
                .map_err(e)?;
            Ok(Forgotten::Deleted {
                orders: orders as u64,
            })
        })
        .await
    }
}
