//! Operators' writes and reads of whole campaigns on PostgreSQL (see the
//! SQLite backend's module of the same name).

use sqlx::Row as _;

use super::{seq_array, Postgres};
use crate::batch::BatchSeq;
use crate::ledger::model::{CampaignRecord, Forgotten};
use crate::ledger::{CampaignId, LedgerError};
use crate::state::BatchState;

impl Postgres {
    pub async fn cancel(
        &self,
        campaign: CampaignId,
        only: &[BatchSeq],
        now_ms: i64,
        by: &str,
    ) -> Result<Vec<BatchSeq>, LedgerError> {
        let only = (!only.is_empty()).then(|| seq_array(only));
        // Cancelling a whole campaign stops its redials too.
        let mut cancelled: Vec<i64> = sqlx::query_scalar(
            "WITH stop AS (
                 UPDATE campaigns SET redials_stopped_at_ms = COALESCE(redials_stopped_at_ms, $4)
                 WHERE id = $1 AND $6::BIGINT[] IS NULL)
             UPDATE batches SET state = $3, updated_at_ms = $4, message = $5
             WHERE campaign_id = $1 AND state = $2
               AND seq <= (SELECT batches_planned_through FROM campaigns WHERE id = $1)
               AND ($6::BIGINT[] IS NULL OR seq = ANY($6))
             RETURNING seq",
        )
        .bind(campaign.0)
        .bind(BatchState::Pending.as_str())
        .bind(BatchState::Cancelled.as_str())
        .bind(now_ms)
        .bind(format!("cancelled by {by}; never sent"))
        .bind(only)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        cancelled.sort_unstable();
        cancelled
            .into_iter()
            .map(|seq| self.batch_seq(seq))
            .collect()
    }

    pub async fn note_run(
        &self,
        campaign: CampaignId,
        job_file: &str,
        redial_policy: Option<&str>,
        now_ms: i64,
    ) -> Result<(), LedgerError> {
        sqlx::query(
            "UPDATE campaigns SET job_path = $2, last_run_at_ms = $3, redial_policy = $4 WHERE id = $1",
        )
        .bind(campaign.0)
        .bind(job_file)
        .bind(now_ms)
        .bind(redial_policy)
        .execute(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        Ok(())
    }

    pub(in crate::ledger) async fn campaign_records(
        &self,
    ) -> Result<Vec<CampaignRecord>, LedgerError> {
        let rows = sqlx::query(
            "SELECT id, name, created_at_ms, last_run_at_ms, job_path, source_path FROM campaigns ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        Ok(rows
            .into_iter()
            .map(|row| CampaignRecord {
                id: CampaignId(row.get(0)),
                name: row.get(1),
                created_at_ms: row.get(2),
                last_run_at_ms: row.get(3),
                job_file: row.get(4),
                contacts: row.get(5),
            })
            .collect())
    }

    pub async fn forget(
        &self,
        campaign: CampaignId,
        sent_anyway: bool,
    ) -> Result<Forgotten, LedgerError> {
        let e = |source| self.query_error(source);
        let mut tx = self.pool.begin().await.map_err(e)?;
        // The campaign's row, locked: runners join it with a share lock.
        sqlx::query("SELECT 1 FROM campaigns WHERE id = $1 FOR UPDATE")
            .bind(campaign.0)
            .execute(&mut *tx)
            .await
            .map_err(e)?;
        let runners: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM runners WHERE campaign_id = $1")
                .bind(campaign.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(e)?;
        if runners > 0 {
            return Ok(Forgotten::Busy);
        }
        let attempts: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM attempts WHERE campaign_id = $1")
                .bind(campaign.0)
                .fetch_one(&mut *tx)
                .await
                .map_err(e)?;
        if attempts > 0 && !sent_anyway {
            return Ok(Forgotten::Sent {
                attempts: attempts as u64,
            });
        }
        let orders = sqlx::query("DELETE FROM orders WHERE campaign_id = $1")
            .bind(campaign.0)
            .execute(&mut *tx)
            .await
            .map_err(e)?
            .rows_affected();
        for sql in [
            "DELETE FROM attempts WHERE campaign_id = $1",
            "DELETE FROM resends WHERE campaign_id = $1",
            "DELETE FROM order_keys WHERE campaign_id = $1",
            "DELETE FROM batches WHERE campaign_id = $1",
            "DELETE FROM calls WHERE campaign_id = $1",
            "DELETE FROM leases WHERE campaign_id = $1",
            "DELETE FROM suppressions WHERE scope = $1",
            "DELETE FROM campaigns WHERE id = $1",
        ] {
            sqlx::query(sql)
                .bind(campaign.0)
                .execute(&mut *tx)
                .await
                .map_err(e)?;
        }
        tx.commit().await.map_err(e)?;
        Ok(Forgotten::Deleted { orders })
    }
}
