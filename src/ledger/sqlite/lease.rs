//! Ledger side of the campaign lease: who holds it, taking it (only from
//! the holder the taker watched), renewing it, giving it back, and the
//! fence every write of a run checks in its own transaction.

use sqlx::Row as _;

use super::{CampaignId, LedgerError, Sqlite};
use crate::ledger::model::{Fence, LeaseGrant, LeaseHolder};
use crate::outcome::{BatchState, Verdict};

/// Selects the holder of campaign `?1`.
const HOLDER: &str =
    "SELECT owner, host, pid, acquired_at_ms, heartbeat_ms, beats FROM leases WHERE campaign_id = ?";

impl Sqlite {
    /// The campaign's lease holder, if any.
    pub async fn lease_holder(
        &self,
        campaign: CampaignId,
    ) -> Result<Option<LeaseHolder>, LedgerError> {
        let row = sqlx::query(HOLDER)
            .bind(campaign.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.query_error(e))?;
        Ok(row.map(|row| holder_from_row(&row)))
    }

    /// Takes the campaign's lease for `me` if its holder is still exactly
    /// `expected` (same run, same heartbeat count; `None`: no holder), in
    /// one write transaction. Batches left in `sending` become `uncertain`
    /// in the same transaction, not to be re-sent by an operator before
    /// `resend_after_ms`.
    pub async fn take_lease(
        &self,
        campaign: CampaignId,
        me: &LeaseHolder,
        expected: Option<&LeaseHolder>,
        resend_after_ms: i64,
    ) -> Result<LeaseGrant, LedgerError> {
        let mut tx = self.write_transaction().await?;
        let holder = sqlx::query(HOLDER)
            .bind(campaign.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| self.query_error(e))?
            .map(|row| holder_from_row(&row));
        if holder.as_ref() != expected {
            return Ok(LeaseGrant::Changed);
        }
        sqlx::query(
            "INSERT INTO leases (campaign_id, owner, host, pid, acquired_at_ms, heartbeat_ms, beats)
             VALUES (?, ?, ?, ?, ?, ?, 0)
             ON CONFLICT (campaign_id) DO UPDATE SET owner = excluded.owner, host = excluded.host, pid = excluded.pid,
                 acquired_at_ms = excluded.acquired_at_ms, heartbeat_ms = excluded.heartbeat_ms, beats = 0",
        )
        .bind(campaign.0)
        .bind(&me.owner)
        .bind(&me.host)
        .bind(me.pid)
        .bind(me.acquired_at_ms)
        .bind(me.heartbeat_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?;
        sqlx::query(
            "UPDATE attempts SET decision = ?, message = 'the run ended before the reply was recorded'
             WHERE campaign_id = ? AND decision IS NULL",
        )
        .bind(Verdict::Interrupted.as_str())
        .bind(campaign.0)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?;
        let recovered = sqlx::query(
            "UPDATE batches SET state = ?, updated_at_ms = ?, resend_after_ms = ?,
                    message = 'a run ended or lost its lease while this batch was being sent; it may have arrived'
             WHERE campaign_id = ? AND state = ?",
        )
        .bind(BatchState::Uncertain.as_str())
        .bind(me.acquired_at_ms)
        .bind(resend_after_ms)
        .bind(campaign.0)
        .bind(BatchState::Sending.as_str())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.query_error(e))?
        .rows_affected();
        tx.commit().await.map_err(|e| self.query_error(e))?;
        Ok(LeaseGrant::Acquired {
            took_over: holder,
            recovered,
        })
    }

    /// Renews the lease (time and counter); false when it is no longer
    /// `fence`'s.
    pub async fn renew_lease(&self, fence: &Fence, now_ms: i64) -> Result<bool, LedgerError> {
        self.check_file()?;
        let renewed = sqlx::query(
            "UPDATE leases SET heartbeat_ms = ?, beats = beats + 1 WHERE campaign_id = ? AND owner = ?",
        )
        .bind(now_ms)
        .bind(fence.campaign.0)
        .bind(&fence.owner)
        .execute(&self.pool)
        .await
        .map_err(|e| self.query_error(e))?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Gives the lease back if it is still `fence`'s.
    pub async fn release_lease(&self, fence: &Fence) -> Result<(), LedgerError> {
        sqlx::query("DELETE FROM leases WHERE campaign_id = ? AND owner = ?")
            .bind(fence.campaign.0)
            .bind(&fence.owner)
            .execute(&self.pool)
            .await
            .map_err(|e| self.query_error(e))?;
        Ok(())
    }

    /// Fails with `LeaseLost` unless `fence` still holds its campaign; call
    /// it inside the write transaction it guards.
    pub(super) async fn check_fence(
        &self,
        tx: &mut sqlx::SqliteConnection,
        fence: &Fence,
    ) -> Result<(), LedgerError> {
        let holder = sqlx::query(HOLDER)
            .bind(fence.campaign.0)
            .fetch_optional(tx)
            .await
            .map_err(|e| self.query_error(e))?
            .map(|row| holder_from_row(&row));
        self.fence_holds(fence, holder)
    }

    /// The same check on one of the ledger's own (rusqlite) connections.
    pub(super) fn check_fence_on(
        &self,
        conn: &rusqlite::Connection,
        fence: &Fence,
    ) -> Result<(), LedgerError> {
        use rusqlite::OptionalExtension as _;
        let holder = conn
            .query_row(HOLDER, [fence.campaign.0], |row| {
                Ok(LeaseHolder {
                    owner: row.get(0)?,
                    host: row.get(1)?,
                    pid: row.get::<_, i64>(2)? as u32,
                    acquired_at_ms: row.get(3)?,
                    heartbeat_ms: row.get(4)?,
                    beats: row.get(5)?,
                })
            })
            .optional()
            .map_err(super::bulk_error(&self.path))?;
        self.fence_holds(fence, holder)
    }

    fn fence_holds(&self, fence: &Fence, holder: Option<LeaseHolder>) -> Result<(), LedgerError> {
        match holder {
            Some(holder) if holder.owner == fence.owner => Ok(()),
            holder => Err(LedgerError::LeaseLost {
                path: self.path.clone(),
                by: holder.map_or_else(
                    || "(which has finished since)".to_owned(),
                    |h| format!("(pid {} on {})", h.pid, h.host),
                ),
            }),
        }
    }
}

fn holder_from_row(row: &sqlx::sqlite::SqliteRow) -> LeaseHolder {
    LeaseHolder {
        owner: row.get(0),
        host: row.get(1),
        pid: row.get::<i64, _>(2) as u32,
        acquired_at_ms: row.get(3),
        heartbeat_ms: row.get(4),
        beats: row.get(5),
    }
}
