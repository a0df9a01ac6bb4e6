//! Runners on a shared campaign: their rows and heartbeats, presuming one
//! dead, the ingest lease, and the shared request rate.

use sqlx::Row as _;

use super::Postgres;
use crate::ledger::model::{Fence, LeaseGrant, LeaseHolder};
use crate::ledger::{CampaignId, LedgerError};
use crate::state::{BatchState, Verdict};

const RUNNER: &str = "SELECT owner, host, pid, acquired_at_ms, heartbeat_ms, beats FROM runners";

impl Postgres {
    /// The runner holding the campaign's ingest lease, if any.
    pub async fn lease_holder(
        &self,
        campaign: CampaignId,
    ) -> Result<Option<LeaseHolder>, LedgerError> {
        let row = sqlx::query(&format!(
            "{RUNNER} WHERE owner = (SELECT owner FROM leases WHERE campaign_id = $1)"
        ))
        .bind(campaign.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        Ok(row.map(|row| holder_from_row(&row)))
    }

    /// A whole-campaign lease does not exist here: each runner registers
    /// with [`Postgres::join`], and dead runners are presumed so one by one.
    pub async fn take_lease(
        &self,
        _campaign: CampaignId,
        _me: &LeaseHolder,
        _expected: Option<&LeaseHolder>,
        _resend_after_ms: i64,
    ) -> Result<LeaseGrant, LedgerError> {
        Err(self.corrupt(
            "on PostgreSQL each runner registers on its own; there is no whole-campaign lease to take".into(),
        ))
    }

    /// Registers `me` as a runner of the campaign.
    pub async fn join(&self, campaign: CampaignId, me: &LeaseHolder) -> Result<(), LedgerError> {
        sqlx::query(
            "INSERT INTO runners (owner, campaign_id, host, pid, acquired_at_ms, heartbeat_ms, beats)
             VALUES ($1, $2, $3, $4, $5, $6, 0)",
        )
        .bind(&me.owner)
        .bind(campaign.0)
        .bind(&me.host)
        .bind(i64::from(me.pid))
        .bind(me.acquired_at_ms)
        .bind(me.heartbeat_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        Ok(())
    }

    /// Every runner of the campaign.
    pub async fn runners(&self, campaign: CampaignId) -> Result<Vec<LeaseHolder>, LedgerError> {
        let rows = sqlx::query(&format!(
            "{RUNNER} WHERE campaign_id = $1 ORDER BY acquired_at_ms"
        ))
        .bind(campaign.0)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        Ok(rows.iter().map(holder_from_row).collect())
    }

    /// Renews the runner's heartbeat; false when it was presumed dead.
    pub async fn renew_lease(&self, fence: &Fence, now_ms: i64) -> Result<bool, LedgerError> {
        let renewed = sqlx::query(
            "UPDATE runners SET heartbeat_ms = $1, beats = beats + 1 WHERE owner = $2 AND campaign_id = $3",
        )
        .bind(now_ms)
        .bind(&fence.owner)
        .bind(fence.campaign.0)
        .execute(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Unregisters the runner (its ingest lease goes with it).
    pub async fn release_lease(&self, fence: &Fence) -> Result<(), LedgerError> {
        sqlx::query("DELETE FROM runners WHERE owner = $1 AND campaign_id = $2")
            .bind(&fence.owner)
            .bind(fence.campaign.0)
            .execute(&self.pool)
            .await
            .map_err(|e| self.query_error(e))?;
        Ok(())
    }

    /// Unregisters `fence`'s runner; batches it left `sending` (an attempt
    /// whose result could not be recorded) become `uncertain` in the same
    /// transaction, not to be re-sent before `resend_after_ms`: a runner
    /// that is gone never leaves a batch `sending`. Returns how many.
    pub async fn leave(
        &self,
        fence: &Fence,
        resend_after_ms: i64,
        now_ms: i64,
    ) -> Result<u64, LedgerError> {
        let mut tx = self.transaction().await?;
        let recovered = self
            .sending_to_uncertain(
                &mut tx,
                fence.campaign,
                &fence.owner,
                resend_after_ms,
                now_ms,
            )
            .await?;
        sqlx::query("DELETE FROM runners WHERE owner = $1 AND campaign_id = $2")
            .bind(&fence.owner)
            .bind(fence.campaign.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
        tx.commit().await.map_err(|e| self.query_error(e))?;
        Ok(recovered)
    }

    /// Makes the batches `owner` is sending `uncertain` (their open
    /// attempts interrupted), in `tx`; returns how many.
    async fn sending_to_uncertain(
        &self,
        tx: &mut sqlx::PgConnection,
        campaign: CampaignId,
        owner: &str,
        resend_after_ms: i64,
        now_ms: i64,
    ) -> Result<u64, LedgerError> {
        sqlx::query(
            "UPDATE attempts a SET decision = $1, message = 'the run ended before the reply was recorded'
             FROM batches b
             WHERE b.campaign_id = $2 AND b.runner = $3 AND b.state = $4
               AND a.campaign_id = b.campaign_id AND a.batch_seq = b.seq AND a.decision IS NULL",
        )
        .bind(Verdict::Interrupted.as_str())
        .bind(campaign.0)
        .bind(owner)
        .bind(BatchState::Sending.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?;
        Ok(sqlx::query(
            "UPDATE batches SET state = $1, updated_at_ms = $2, resend_after_ms = $3,
                    message = 'a run ended or lost its lease while this batch was being sent; it may have arrived'
             WHERE campaign_id = $4 AND runner = $5 AND state = $6",
        )
        .bind(BatchState::Uncertain.as_str())
        .bind(now_ms)
        .bind(resend_after_ms)
        .bind(campaign.0)
        .bind(owner)
        .bind(BatchState::Sending.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?
        .rows_affected())
    }

    /// Presumes `gone` dead if its row is still exactly as watched (same
    /// heartbeat count): deletes it, and makes the batches it was sending
    /// `uncertain` (not to be re-sent by an operator before
    /// `resend_after_ms`), in one transaction. Returns how many batches,
    /// or `None` if the runner beat again or left meanwhile.
    pub async fn presume_dead(
        &self,
        campaign: CampaignId,
        gone: &LeaseHolder,
        resend_after_ms: i64,
        now_ms: i64,
    ) -> Result<Option<u64>, LedgerError> {
        let mut tx = self.transaction().await?;
        // A paused runner's open transaction locks its row until the
        // server ends its session: try again at the next look instead of
        // waiting here.
        sqlx::query("SET LOCAL lock_timeout = '1s'")
            .execute(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?;
        let deleted = match sqlx::query(
            "DELETE FROM runners WHERE owner = $1 AND campaign_id = $2 AND beats = $3",
        )
        .bind(&gone.owner)
        .bind(campaign.0)
        .bind(gone.beats)
        .execute(&mut *tx)
        .await
        {
            Err(e) if e.as_database_error().and_then(|e| e.code()).as_deref() == Some("55P03") => {
                return Ok(None)
            }
            deleted => deleted.map_err(|e| self.query_error(e))?,
        };
        if deleted.rows_affected() == 0 {
            return Ok(None);
        }
        let recovered = self
            .sending_to_uncertain(&mut tx, campaign, &gone.owner, resend_after_ms, now_ms)
            .await?;
        tx.commit().await.map_err(|e| self.query_error(e))?;
        Ok(Some(recovered))
    }

    /// Takes the campaign's ingest lease for `fence`'s runner if no runner
    /// holds it; true if it is (now) this runner's.
    pub async fn take_ingest_lease(&self, fence: &Fence) -> Result<bool, LedgerError> {
        sqlx::query(
            "INSERT INTO leases (campaign_id, owner)
             SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM runners WHERE owner = $2 AND campaign_id = $1)
             ON CONFLICT (campaign_id) DO NOTHING",
        )
        .bind(fence.campaign.0)
        .bind(&fence.owner)
        .execute(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        let holder: Option<String> =
            sqlx::query_scalar("SELECT owner FROM leases WHERE campaign_id = $1")
                .bind(fence.campaign.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| self.query_error(e))?;
        Ok(holder.as_deref() == Some(fence.owner.as_str()))
    }

    /// Gives the ingest lease back if `fence`'s runner holds it.
    pub async fn release_ingest_lease(&self, fence: &Fence) -> Result<(), LedgerError> {
        sqlx::query("DELETE FROM leases WHERE campaign_id = $1 AND owner = $2")
            .bind(fence.campaign.0)
            .bind(&fence.owner)
            .execute(&self.pool)
            .await
            .map_err(|e| self.query_error(e))?;
        Ok(())
    }

    /// The highest planned batch of the campaign: it grows as the ingest
    /// lease holder plans.
    pub async fn batches_planned_through(&self, campaign: CampaignId) -> Result<i64, LedgerError> {
        sqlx::query_scalar("SELECT batches_planned_through FROM campaigns WHERE id = $1")
            .bind(campaign.0)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.query_error(e))
    }

    /// Batches of the campaign that runners other than `fence`'s are
    /// sending.
    pub async fn sent_by_others(&self, fence: &Fence) -> Result<u64, LedgerError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM batches WHERE campaign_id = $1 AND state = $2 AND runner IS DISTINCT FROM $3",
        )
        .bind(fence.campaign.0)
        .bind(BatchState::Sending.as_str())
        .bind(&fence.owner)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        Ok(n as u64)
    }

    /// Fails with `LeaseLost` unless `fence`'s runner holds the campaign's
    /// ingest lease; the lease row stays locked until the transaction ends.
    pub(super) async fn check_ingest_lease(
        &self,
        tx: &mut sqlx::PgConnection,
        fence: &Fence,
    ) -> Result<(), LedgerError> {
        let holder: Option<String> =
            sqlx::query_scalar("SELECT owner FROM leases WHERE campaign_id = $1 FOR KEY SHARE")
                .bind(fence.campaign.0)
                .fetch_optional(tx)
                .await
                .map_err(|e| self.query_error(e))?;
        if holder.as_deref() == Some(fence.owner.as_str()) {
            Ok(())
        } else {
            Err(LedgerError::LeaseLost {
                path: self.shown.clone(),
                by: "(another runner took over reading the contact file)".into(),
            })
        }
    }

    /// Reserves the next request slot of the rate limit `key` (a GCRA
    /// bucket: one request per `period_us`, `tolerance_us` of burst),
    /// advanced atomically on the server's clock; returns how long to wait
    /// before sending, in microseconds.
    pub async fn reserve_request(
        &self,
        key: &str,
        period_us: i64,
        tolerance_us: i64,
    ) -> Result<i64, LedgerError> {
        let wait: i64 = sqlx::query_scalar(
            "WITH now AS (SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::BIGINT AS us)
             INSERT INTO rate_limits AS r (key, tat_us, now_us)
                 SELECT $1, now.us + $2, now.us FROM now
             ON CONFLICT (key) DO UPDATE
                 SET tat_us = GREATEST(r.tat_us, EXCLUDED.now_us) + $2, now_us = EXCLUDED.now_us
             RETURNING tat_us - $2 - $3 - now_us",
        )
        .bind(key)
        .bind(period_us)
        .bind(tolerance_us)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        Ok(wait.max(0))
    }
}

fn holder_from_row(row: &sqlx::postgres::PgRow) -> LeaseHolder {
    LeaseHolder {
        owner: row.get(0),
        host: row.get(1),
        pid: row.get::<i64, _>(2) as u32,
        acquired_at_ms: row.get(3),
        heartbeat_ms: row.get(4),
        beats: row.get(5),
    }
}
